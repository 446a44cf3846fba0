//! Group commit of the directory fsync (issue 19), in the crash model of
//! `docs/crash-model.md`: a durable commit releases the lock right after its
//! rename and returns `Ok` only once a directory fsync that started after the
//! rename has succeeded.
//!
//! Scenarios:
//! - a second writer (another process, or another handle of the same one)
//!   takes the lock between the first one's rename and its directory fsync,
//!   reads that version and vouches for it (a no-op commit) or commits on top
//!   of it; power is lost before every operation from then on, and every
//!   post-crash state is checked: invariant 1 (old or new) and invariant 2
//!   (what either acknowledged survives);
//! - a commit that arrives while another commit's directory fsync runs
//!   waits for one that starts after its rename (threads of one process);
//! - the shared directory fsync of two waiting commits fails: both fail
//!   (invariant 3), and a later holder vouching for the version syncs
//!   before it acknowledges it.
//!
//! Each scenario catches a mutant: `AckBeforeDirSync` (the lock released
//! with the version marked durable before its rename is covered) and
//! `CoverByRunningSync` (an fsync already running counted for a later
//! rename). Bound: every post-crash state is enumerated (`Enumeration`'s
//! default bound, which fails rather than truncates); run with
//! `--nocapture` for the counts.
#![cfg(feature = "sim")]

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use txfile::sim::{Enumeration, Fault, OpKind, SimFs};
use txfile::{Options, TxFile};

/// The library's deliberately broken protocols (`src/mutants.rs`), built
/// only with `--cfg txfile_mutants` (the repository's `.cargo/config.toml`
/// sets it).
#[cfg(txfile_mutants)]
use txfile::Mutant;

/// Without `--cfg txfile_mutants` only the correct protocol exists: the
/// same names, so that the checks compile; the mutant tests skip.
#[cfg(not(txfile_mutants))]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mutant {
    None,
    AckBeforeDirSync,
    CoverByRunningSync,
}

/// Whether this build has the mutants; when not, says why, and fails where
/// `TXFILE_REQUIRE_MUTANTS` is set (CI sets it: nothing skips there).
fn mutants_built() -> bool {
    if cfg!(txfile_mutants) {
        return true;
    }
    let reason = "skipped: the mutants are compiled only with `--cfg txfile_mutants` \
        (the repository's .cargo/config.toml sets it; a RUSTFLAGS environment variable replaces it)";
    assert!(
        std::env::var_os("TXFILE_REQUIRE_MUTANTS").is_none(),
        "{reason}"
    );
    eprintln!("{reason}");
    false
}

const DIR: &str = "/d";
const TARGET: &str = "/d/a";
const OTHER: &str = "/d/b";

type Version = Option<Vec<u8>>;

fn setup() -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(DIR).expect("mkdir");
    sim.write_file(TARGET, b"v0").expect("write");
    sim.write_file(OTHER, b"w0").expect("write");
    sim
}

fn open(sim: &SimFs, mutant: Mutant, path: &str) -> Result<TxFile, txfile::Error> {
    let options = Options::new().filesystem(sim);
    #[cfg(txfile_mutants)]
    let options = options.mutant(mutant);
    #[cfg(not(txfile_mutants))]
    let _ = mutant;
    options.open(path)
}

fn append(file: &TxFile, suffix: &[u8]) -> Result<(), txfile::Error> {
    file.update(|old| {
        let mut v = old.unwrap_or_default().to_vec();
        v.extend_from_slice(suffix);
        Ok::<_, std::io::Error>(v)
    })
}

/// What the second writer does with the version it finds.
#[derive(Clone, Copy, Debug)]
enum Second {
    /// A no-op commit: it acknowledges the version it read as durable.
    Vouch,
    /// A durable commit on top of it.
    Append,
}

/// What one run of the two-writer scenario acknowledged.
#[derive(Debug, Default)]
struct Acks {
    first: bool,
    /// What the second writer did, what it read, and whether its commit
    /// returned `Ok`.
    second: Option<(Second, Version, bool)>,
}

/// The first writer commits `v0` -> `v0A`; between its rename and its
/// directory fsync (its lock already released) the second writer, in
/// another process or the same one, runs `second`.
fn two_writers(sim: &SimFs, mutant: Mutant, other_process: bool, second: Second) -> Acks {
    let acks = Arc::new(Mutex::new(Acks::default()));
    let slot = Arc::clone(&acks);
    let theirs = if other_process {
        sim.process()
    } else {
        sim.clone()
    };
    // The unlock hook runs in the first writer's thread right after its
    // lock is released, before it waits for its directory fsync.
    sim.on_unlock(move || {
        let Ok(file) = open(&theirs, mutant, TARGET) else {
            return;
        };
        let read = file.read().ok().flatten();
        let ok = match second {
            Second::Vouch => file
                .update(|old| Ok::<_, std::io::Error>(old.unwrap_or_default().to_vec()))
                .is_ok(),
            Second::Append => append(&file, b"B").is_ok(),
        };
        slot.lock().expect("slot").second = Some((second, read, ok));
    });
    let first = open(sim, mutant, TARGET).and_then(|f| append(&f, b"A"));
    let mut acks = std::mem::take(&mut *acks.lock().expect("slot"));
    acks.first = first.is_ok();
    acks
}

/// Violations of invariants 1 and 2 in every state a power loss now can
/// leave; counts the states.
fn check_states(sim: &SimFs, acks: &Acks, when: &str, states: &mut u64) -> Vec<String> {
    let v = |s: &str| Some(s.as_bytes().to_vec());
    let mut must: Option<Vec<Version>> = None;
    if acks.first {
        must = Some(vec![v("v0A"), v("v0AB")]);
    }
    if let Some((second, read, true)) = &acks.second {
        // Vouching acknowledges what was read; appending, what it wrote.
        let read = read.clone().unwrap_or_default();
        let acked = match second {
            Second::Vouch => vec![Some(read.clone()), Some([read, b"B".to_vec()].concat())],
            Second::Append => vec![Some([read, b"B".to_vec()].concat())],
        };
        must = Some(match must {
            Some(m) => m.into_iter().filter(|x| acked.contains(x)).collect(),
            None => acked,
        });
    }
    let possible = [v("v0"), v("v0A"), v("v0AB"), v("v0B")];
    let mut bad = Vec::new();
    for (i, state) in sim
        .crash_states(&Enumeration::new())
        .expect("bound")
        .enumerate()
    {
        *states += 1;
        let got = state.read_file(TARGET).expect("read");
        if !possible.contains(&got) {
            bad.push(format!("invariant 1: {when}, state {i}: target {got:?}"));
        } else if must.as_ref().is_some_and(|m| !m.contains(&got)) {
            bad.push(format!(
                "invariant 2: {when}, state {i}: target {:?} after {acks:?}",
                got.as_deref().map(String::from_utf8_lossy)
            ));
        }
        let other = state.read_file(OTHER).expect("read");
        if other.as_deref() != Some(b"w0") {
            bad.push(format!(
                "invariant 6: {when}, state {i}: {OTHER} is {other:?}"
            ));
        }
    }
    bad
}

/// The two-writer scenario with a power loss before every operation from
/// the first writer's rename on, and after the last; returns the
/// violations and the number of post-crash states checked.
fn two_writers_at_every_crash_point(mutant: Mutant) -> (Vec<String>, u64) {
    let mut bad = Vec::new();
    let mut states = 0;
    for other_process in [true, false] {
        for second in [Second::Vouch, Second::Append] {
            let probe = setup();
            let start = probe.op_count();
            two_writers(&probe, mutant, other_process, second);
            let trace = probe.trace();
            let rename = trace
                .iter()
                .find(|op| op.index >= start && op.kind == OpKind::Rename)
                .expect("the first writer renames")
                .index;
            let end = probe.op_count();
            for crash in rename..=end {
                let sim = setup();
                sim.crash_at(crash);
                let acks = two_writers(&sim, mutant, other_process, second);
                if !sim.is_crashed() {
                    sim.crash_now();
                }
                let when = format!(
                    "{mutant:?}, second writer {second:?} in {} process, crash before op {crash}",
                    if other_process { "another" } else { "the same" }
                );
                bad.extend(check_states(&sim, &acks, &when, &mut states));
            }
        }
    }
    (bad, states)
}

#[test]
fn a_version_read_before_its_directory_fsync_is_acknowledged_only_once_covered() {
    let (bad, states) = two_writers_at_every_crash_point(Mutant::None);
    println!("two writers, correct protocol: {states} post-crash states");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn releasing_the_lock_as_if_synced_is_caught() {
    if !mutants_built() {
        return;
    }
    let (bad, states) = two_writers_at_every_crash_point(Mutant::AckBeforeDirSync);
    println!(
        "two writers, AckBeforeDirSync: caught by {} of {states} post-crash states",
        bad.len()
    );
    assert!(
        bad.iter().any(|b| b.starts_with("invariant 2")),
        "AckBeforeDirSync not caught in {states} states"
    );
}

/// The first writer's directory fsync is running (held by the hook after
/// the simulated fsync, before it returns) while a second thread of the same process commits on top of its
/// version and waits. Then power is lost; returns the violations and the
/// number of states checked.
fn late_follower(mutant: Mutant) -> (Vec<String>, u64) {
    let sim = setup();
    let second = Arc::new(Mutex::new(None));
    let (slot, theirs) = (Arc::clone(&second), sim.clone());
    let handle = Arc::new(Mutex::new(None));
    let handle_slot = Arc::clone(&handle);
    sim.after_next(OpKind::SyncDir, move || {
        // This thread leads an fsync that has run but not yet returned; the
        // second writer's rename comes after its start.
        let (released_tx, released) = mpsc::channel();
        let t = thread::spawn(move || {
            let file = open(&theirs, mutant, TARGET).expect("open");
            let read = file.read().expect("read");
            theirs.on_unlock(move || {
                let _ = released_tx.send(());
            });
            let ok = append(&file, b"B").is_ok();
            *slot.lock().expect("slot") = Some((Second::Append, read, ok));
        });
        released.recv().expect("the second writer unlocks");
        // Its commit is now on its way into the coordinator, with no
        // filesystem operation left before it waits there.
        thread::sleep(Duration::from_millis(200));
        *handle_slot.lock().expect("slot") = Some(t);
    });
    let first = open(&sim, mutant, TARGET).and_then(|f| append(&f, b"A"));
    let t = handle.lock().expect("slot").take().expect("hook ran");
    t.join().expect("second writer");
    sim.crash_now();
    let acks = Acks {
        first: first.is_ok(),
        second: second.lock().expect("slot").take(),
    };
    let mut states = 0;
    let bad = check_states(
        &sim,
        &acks,
        &format!("late follower, {mutant:?}"),
        &mut states,
    );
    (bad, states)
}

#[test]
fn a_commit_waits_for_a_directory_fsync_that_started_after_its_rename() {
    let (bad, states) = late_follower(Mutant::None);
    println!("late follower, correct protocol: {states} post-crash states");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn counting_a_running_fsync_for_a_later_rename_is_caught() {
    if !mutants_built() {
        return;
    }
    let (bad, states) = late_follower(Mutant::CoverByRunningSync);
    println!(
        "late follower, CoverByRunningSync: caught by {} of {states} post-crash states",
        bad.len()
    );
    assert!(
        bad.iter().any(|b| b.starts_with("invariant 2")),
        "CoverByRunningSync not caught in {states} states"
    );
}

/// While one commit's directory fsync runs, two more (one per target) wait
/// for the next; that one fails. Both must fail; a later durable no-op
/// commit of each target must sync before it acknowledges.
fn failing_shared_fsync(mutant: Mutant) -> (Vec<String>, u64) {
    let sim = setup();
    sim.write_file("/d/c", b"c0").expect("write");
    let results = Arc::new(Mutex::new(Vec::new()));
    let (slot, theirs) = (Arc::clone(&results), sim.clone());
    let handles = Arc::new(Mutex::new(Vec::new()));
    let handles_slot = Arc::clone(&handles);
    sim.after_next(OpKind::SyncDir, move || {
        for (path, suffix) in [(TARGET, b"A"), (OTHER, b"B")] {
            let (released_tx, released) = mpsc::channel();
            theirs.on_unlock(move || {
                let _ = released_tx.send(());
            });
            let (fs, slot) = (theirs.clone(), Arc::clone(&slot));
            handles_slot
                .lock()
                .expect("slot")
                .push(thread::spawn(move || {
                    let r = open(&fs, mutant, path).and_then(|f| append(&f, suffix));
                    slot.lock()
                        .expect("slot")
                        .push((path, r.map_err(|e| e.to_string())));
                }));
            released.recv().expect("unlocks");
        }
        thread::sleep(Duration::from_millis(200));
        // The next operation is the shared fsync of the two waiting
        // commits.
        theirs.fail_at(theirs.op_count(), Fault::Io);
    });
    let lead = open(&sim, mutant, "/d/c").and_then(|f| append(&f, b"C"));
    for t in handles.lock().expect("slot").drain(..) {
        t.join().expect("writer");
    }
    let mut bad = Vec::new();
    if let Err(e) = lead {
        bad.push(format!("the leading commit failed: {e}"));
    }
    let results = results.lock().expect("slot");
    for (path, r) in results.iter() {
        if r.is_ok() {
            bad.push(format!(
                "invariant 3: {mutant:?}: the commit of {path} returned Ok after its directory fsync failed"
            ));
        }
    }
    // The next holder of each target vouches for the version it finds.
    let mut vouched = Vec::new();
    for path in [TARGET, OTHER] {
        let file = open(&sim, mutant, path).expect("open");
        let found = file.read().expect("read");
        let ok = file
            .update(|old| Ok::<_, std::io::Error>(old.unwrap_or_default().to_vec()))
            .is_ok();
        if ok {
            vouched.push((path, found));
        }
    }
    sim.crash_now();
    let mut states = 0;
    for (i, state) in sim
        .crash_states(&Enumeration::new())
        .expect("bound")
        .enumerate()
    {
        states += 1;
        for (path, found) in &vouched {
            let got = state.read_file(path).expect("read");
            if &got != found {
                bad.push(format!(
                    "invariant 2: {mutant:?}, state {i}: {path} is {got:?}, the next holder acknowledged {found:?}"
                ));
            }
        }
    }
    (bad, states)
}

#[test]
fn a_failed_shared_directory_fsync_fails_every_commit_it_covered() {
    let (bad, states) = failing_shared_fsync(Mutant::None);
    println!("failing shared fsync, correct protocol: {states} post-crash states");
    assert!(bad.is_empty(), "{}", bad.join("\n"));
}

#[test]
fn a_failed_shared_fsync_with_the_version_marked_synced_is_caught() {
    if !mutants_built() {
        return;
    }
    let (bad, states) = failing_shared_fsync(Mutant::AckBeforeDirSync);
    println!(
        "failing shared fsync, AckBeforeDirSync: caught by {} of {states} post-crash states",
        bad.len()
    );
    assert!(
        bad.iter().any(|b| b.starts_with("invariant 2")),
        "AckBeforeDirSync not caught in {states} states"
    );
}
