//! The in-place commit of a target that cannot be renamed over (issue 20,
//! items 1 and 2), on the simulated machine: a bind-mounted target
//! (`SimFs::set_mount_point`: renaming over it fails with `EBUSY`).
//!
//! For each scenario, a power loss before and in the middle of every
//! operation of the commit (stage, record, copy, truncate, fsyncs,
//! cleanup), every post-crash state the model admits, and on each:
//! - a lock-free `TxFile::read` returns one complete version, old or new;
//! - the next transaction recovers (rolls a durable record forward, drops a
//!   torn one), after which the target holds the version that read
//!   returned, and nothing but the target and its guard is left;
//! - on a sample of the states where recovery has work to do, a power loss
//!   at every operation of recovery, every state of that, and recovery
//!   again, with the same checks.
//!
//! Each mutant of the in-place protocol must fail these checks. Run with
//! `--nocapture` for the counts.
#![cfg(feature = "sim")]

/// The deliberately broken protocols exist only with `--cfg txfile_mutants`
/// (the repository's `.cargo/config.toml` sets it).
#[cfg(txfile_mutants)]
use txfile::Mutant;
use txfile::Options;
use txfile::sim::{Enumeration, SimFs};

const DIR: &str = "/d";
const TARGET: &str = "/d/config";
/// Post-crash states of recovery explored per crash point of the commit.
const NESTED_PER_POINT: usize = 2;

#[derive(Clone, Copy)]
struct Scenario {
    name: &'static str,
    old: usize,
    new: usize,
}

/// Shorter and longer new contents (the truncate matters for one, the
/// extension for the other), over several 512-byte sectors.
const SCENARIOS: [Scenario; 2] = [
    Scenario {
        name: "shrink",
        old: 1300,
        new: 700,
    },
    Scenario {
        name: "grow",
        old: 600,
        new: 1100,
    },
];

fn contents(fill: u8, len: usize) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add((i % 7) as u8)).collect()
}

fn setup(s: Scenario) -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(DIR).unwrap();
    sim.write_file(TARGET, &contents(b'o', s.old)).unwrap();
    sim.set_mount_point(TARGET, true).unwrap();
    sim
}

/// Without `--cfg txfile_mutants`, only the correct protocol.
#[cfg(not(txfile_mutants))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutant {
    None,
}

fn options(sim: &SimFs, mutant: Mutant) -> Options {
    let options = Options::new().filesystem(sim);
    #[cfg(txfile_mutants)]
    let options = options.mutant(mutant);
    #[cfg(not(txfile_mutants))]
    let Mutant::None = mutant;
    options
}

fn commit(sim: &SimFs, s: Scenario, mutant: Mutant) -> Result<(), txfile::Error> {
    let file = options(sim, mutant).open(TARGET)?;
    file.update(|_| Ok::<_, std::io::Error>(contents(b'n', s.new)))
}

#[derive(Default, Debug)]
struct Counts {
    crash_points: u64,
    states: u64,
    recovery_crash_points: u64,
    recovery_states: u64,
}

/// Checks one post-crash machine: read, recover, read again, leftovers.
/// With `nested`, also crashes recovery at each of its operations.
fn check_state(
    after: &SimFs,
    s: Scenario,
    mutant: Mutant,
    nested: bool,
    counts: &mut Counts,
) -> Result<(), String> {
    let (old, new) = (contents(b'o', s.old), contents(b'n', s.new));
    let version = |bytes: &[u8]| {
        if bytes == old.as_slice() {
            Ok("old")
        } else if bytes == new.as_slice() {
            Ok("new")
        } else {
            Err(format!(
                "neither old nor new: {} bytes, starting {:?}",
                bytes.len(),
                &bytes[..bytes.len().min(8)]
            ))
        }
    };
    let file = options(after, mutant)
        .open(TARGET)
        .map_err(|e| format!("open after the crash: {e}"))?;
    let read = file
        .read()
        .map_err(|e| format!("read after the crash: {e}"))?
        .ok_or("the target vanished")?;
    let seen = version(&read).map_err(|e| format!("lock-free read: {e}"))?;
    if nested {
        // Learn recovery's operations, then crash at each of them.
        let twin = clone_of(after);
        let start = twin.op_count();
        let tx = options(&twin, mutant)
            .open(TARGET)
            .and_then(|f| f.begin().map(drop));
        tx.map_err(|e| format!("recovery (probe): {e}"))?;
        let ops = twin.op_count() - start;
        for at in 0..ops {
            for during in [false, true] {
                let machine = clone_of(after);
                let at = machine.op_count() + at;
                if during {
                    machine.crash_during(at);
                } else {
                    machine.crash_at(at);
                }
                let _ = options(&machine, mutant)
                    .open(TARGET)
                    .and_then(|f| f.begin().map(drop));
                counts.recovery_crash_points += 1;
                for again in machine
                    .crash_states(&Enumeration::new())
                    .map_err(|e| e.to_string())?
                {
                    counts.recovery_states += 1;
                    let twice = recover_and_read(&again, mutant)
                        .map_err(|e| format!("crash during recovery at +{at}: {e}"))?;
                    let now = version(&twice)
                        .map_err(|e| format!("crash during recovery at +{at}: {e}"))?;
                    if now != seen {
                        return Err(format!(
                            "crash during recovery at +{at}: read said {seen}, recovery left {now}"
                        ));
                    }
                }
            }
        }
    }
    let recovered = recover_and_read(after, mutant)?;
    let now = version(&recovered).map_err(|e| format!("after recovery: {e}"))?;
    if now != seen {
        return Err(format!("a lock-free read said {seen}, recovery left {now}"));
    }
    Ok(())
}

/// The same machine again (a post-crash state has nothing pending, so its
/// one crash state is itself).
fn clone_of(sim: &SimFs) -> SimFs {
    sim.crash_state_with(false, |_| 0)
}

/// Recovers through a transaction, then checks that nothing is left
/// beside the target and its guard and returns the target's contents.
fn recover_and_read(sim: &SimFs, mutant: Mutant) -> Result<Vec<u8>, String> {
    let file = options(sim, mutant)
        .open(TARGET)
        .map_err(|e| format!("open: {e}"))?;
    file.begin()
        .map_err(|e| format!("recovery failed: {e}"))?
        .rollback();
    let names = sim.list_dir(DIR).map_err(|e| e.to_string())?;
    let extra: Vec<_> = names
        .iter()
        .filter(|n| *n != "config" && *n != "config.lock")
        .collect();
    if !extra.is_empty() {
        return Err(format!("left behind after recovery: {extra:?}"));
    }
    sim.read_file(TARGET)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| "the target vanished".to_string())
}

/// Runs every crash point of every scenario; the first violation found,
/// or the counts.
fn check_all(mutant: Mutant) -> Result<Counts, String> {
    let mut counts = Counts::default();
    for s in SCENARIOS {
        // The full commit, to learn its operations.
        let probe = setup(s);
        let start = probe.op_count();
        commit(&probe, s, mutant).map_err(|e| format!("{}: commit: {e}", s.name))?;
        if probe.read_file(TARGET).unwrap() != Some(contents(b'n', s.new)) {
            return Err(format!("{}: the commit did not take", s.name));
        }
        let ops = probe.op_count() - start;
        for at in start..=start + ops {
            for during in [false, true] {
                let sim = setup(s);
                if during {
                    sim.crash_during(at);
                } else {
                    sim.crash_at(at);
                }
                let acknowledged = commit(&sim, s, mutant).is_ok();
                if !sim.is_crashed() {
                    sim.crash_now();
                }
                counts.crash_points += 1;
                let mut nested = 0;
                for after in sim
                    .crash_states(&Enumeration::new())
                    .map_err(|e| e.to_string())?
                {
                    counts.states += 1;
                    let pending = after
                        .list_dir(DIR)
                        .unwrap()
                        .iter()
                        .any(|n| n.ends_with(".txinplace"));
                    let nest = pending && nested < NESTED_PER_POINT;
                    nested += usize::from(nest);
                    let where_ = format!(
                        "{}: crash {} operation {at}",
                        s.name,
                        if during { "during" } else { "before" }
                    );
                    check_state(&after, s, mutant, nest, &mut counts)
                        .map_err(|e| format!("{where_}: {e}"))?;
                    if acknowledged
                        && after.read_file(TARGET).unwrap() != Some(contents(b'n', s.new))
                    {
                        return Err(format!("{where_}: an acknowledged commit was lost"));
                    }
                }
            }
        }
    }
    Ok(counts)
}

#[test]
fn every_crash_point_of_the_in_place_commit() {
    let start = std::time::Instant::now();
    let counts = check_all(Mutant::None).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "in_place_crash: {} crash points of the commit, {} post-crash states; \
         {} crash points of recovery, {} post-crash states of those ({:.1?})",
        counts.crash_points,
        counts.states,
        counts.recovery_crash_points,
        counts.recovery_states,
        start.elapsed()
    );
    assert!(counts.recovery_states > 0, "recovery was never crashed");
}

#[cfg(txfile_mutants)]
/// A mutant must fail the checks; returns what caught it.
fn caught(mutant: Mutant) -> String {
    match check_all(mutant) {
        Ok(counts) => panic!("{mutant:?} was not caught ({counts:?})"),
        Err(violation) => {
            eprintln!("{mutant:?} caught: {violation}");
            violation
        }
    }
}

#[cfg(txfile_mutants)]
#[test]
fn mutant_copy_before_the_record_is_durable_is_caught() {
    let violation = caught(Mutant::InPlaceCopyBeforeRecord);
    assert!(violation.contains("neither old nor new"), "{violation}");
}

#[cfg(txfile_mutants)]
/// The record goes while the copied bytes may still be only in the page
/// cache: a power loss then leaves a half-old target with nothing to
/// finish it from, or an old one after a read returned the new.
#[test]
fn mutant_no_target_fsync_before_removing_the_record_is_caught() {
    let violation = caught(Mutant::InPlaceNoTargetFsync);
    assert!(
        violation.contains("neither old nor new") || violation.contains("recovery left old"),
        "{violation}"
    );
}

#[cfg(txfile_mutants)]
/// A torn record (a crash while it was written, before the commit point)
/// names no staged file that exists: acting on it fails every later
/// transaction and read, where the correct protocol drops it.
#[test]
fn mutant_trusting_a_torn_record_is_caught() {
    let violation = caught(Mutant::InPlaceTrustsTornRecord);
    assert!(
        violation.contains("read after the crash") || violation.contains("recovery failed"),
        "{violation}"
    );
}

/// Built without `--cfg txfile_mutants` the mutants above do not exist:
/// say so, and fail where they must run (CI sets `TXFILE_REQUIRE_MUTANTS`).
#[cfg(not(txfile_mutants))]
#[test]
fn in_place_mutants_need_the_cfg() {
    assert!(
        std::env::var_os("TXFILE_REQUIRE_MUTANTS").is_none(),
        "built without --cfg txfile_mutants: the in-place mutants cannot run"
    );
    println!(
        "skipped: built without --cfg txfile_mutants (a RUSTFLAGS variable replaces .cargo/config.toml's)"
    );
}

/// Without the fallback, the same commit fails with the rename's `EBUSY`
/// and nothing changes.
#[test]
fn without_the_fallback_the_commit_fails_and_nothing_changes() {
    let s = SCENARIOS[0];
    let sim = setup(s);
    let file = Options::new()
        .filesystem(&sim)
        .in_place_fallback(false)
        .open(TARGET)
        .unwrap();
    let err = file
        .update(|_| Ok::<_, std::io::Error>(contents(b'n', s.new)))
        .unwrap_err();
    assert!(matches!(err, txfile::Error::Rename { .. }), "{err:?}");
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
    assert_eq!(sim.read_file(TARGET).unwrap(), Some(contents(b'o', s.old)));
    assert_eq!(sim.list_dir(DIR).unwrap(), ["config", "config.lock"]);
}

/// The fallback keeps the target's inode: a rename would have replaced it.
#[test]
fn the_in_place_commit_keeps_the_inode_and_leaves_nothing() {
    let s = SCENARIOS[1];
    let sim = setup(s);
    commit(&sim, s, Mutant::None).unwrap();
    assert_eq!(sim.read_file(TARGET).unwrap(), Some(contents(b'n', s.new)));
    assert_eq!(sim.list_dir(DIR).unwrap(), ["config", "config.lock"]);
    // Unmounted, the same handle's next commit renames again.
    sim.set_mount_point(TARGET, false).unwrap();
    commit(&sim, s, Mutant::None).unwrap();
}

/// A batch cannot replace a bind-mounted member (its journal could never
/// be rolled forward): the commit is refused before anything is written.
#[test]
fn a_batch_with_a_bind_mounted_member_is_refused_unchanged() {
    let s = SCENARIOS[0];
    let sim = setup(s);
    sim.write_file("/d/other", b"other").unwrap();
    let files = [TARGET, "/d/other"].map(|p| Options::new().filesystem(&sim).open(p).unwrap());
    let batch = txfile::Batch::new(files).unwrap();
    let err = batch
        .update(|_| Ok::<_, std::io::Error>(vec![b"x".to_vec(), b"y".to_vec()]))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy, "{err}");
    assert!(err.to_string().contains("mount point"), "{err}");
    assert_eq!(sim.read_file(TARGET).unwrap(), Some(contents(b'o', s.old)));
    assert_eq!(sim.read_file("/d/other").unwrap(), Some(b"other".to_vec()));
    let left: Vec<_> = sim
        .list_dir(DIR)
        .unwrap()
        .into_iter()
        .filter(|n| n.contains(".tx"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

/// A bind-mounted target is read under the shared lock; inside a
/// transaction of the same thread (which holds the lock) it is read
/// directly, not refused.
#[test]
fn reading_a_bind_mounted_target_inside_a_transaction_works() {
    let s = SCENARIOS[0];
    let sim = setup(s);
    let file = Options::new().filesystem(&sim).open(TARGET).unwrap();
    assert_eq!(file.read().unwrap(), Some(contents(b'o', s.old)));
    let tx = file.begin().unwrap();
    assert_eq!(file.read().unwrap(), Some(contents(b'o', s.old)));
    tx.rollback();
}

/// Someone's own file under the intent record's name is never read as a
/// record, written, nor removed: the in-place commit is refused, naming
/// it, and both files keep their contents.
#[test]
fn a_foreign_file_at_the_record_name_is_left_alone() {
    let s = SCENARIOS[0];
    let sim = setup(s);
    sim.write_file("/d/.config.txinplace", b"notes").unwrap();
    sim.set_mode("/d/.config.txinplace", 0o644).unwrap();
    let file = Options::new().filesystem(&sim).open(TARGET).unwrap();
    assert_eq!(file.read().unwrap(), Some(contents(b'o', s.old)));
    let err = file
        .update(|_| Ok::<_, std::io::Error>(contents(b'n', s.new)))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AlreadyExists, "{err}");
    assert!(err.to_string().contains(".config.txinplace"), "{err}");
    assert_eq!(sim.read_file(TARGET).unwrap(), Some(contents(b'o', s.old)));
    assert_eq!(
        sim.read_file("/d/.config.txinplace").unwrap(),
        Some(b"notes".to_vec())
    );
    // The staged file went with the failed transaction.
    assert_eq!(
        sim.list_dir(DIR).unwrap(),
        [".config.txinplace", "config", "config.lock"]
    );
}
