//! Scenarios the fuzz targets (`fuzz/`) found broken, replayed as plain
//! tests. Each names the input kept in `fuzz/regressions/`, which
//! `cargo fuzz run <target> <file>` replays in the fuzzer.
#![cfg(feature = "sim")]

use std::io::Write;

use txfile::sim::{Enumeration, Fault, OpKind, SimFs};
use txfile::{Error, Options, TxFile};

const TARGET: &str = "/d/a";

fn machine(initial: Option<&[u8]>) -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all("/d").expect("setup");
    if let Some(contents) = initial {
        sim.write_file(TARGET, contents).expect("setup");
    }
    sim
}

/// begin, write `contents` (the old contents for a no-op), commit.
fn commit(file: &TxFile, contents: &[u8]) -> Result<(), Error> {
    let mut tx = file.begin()?;
    tx.write_all(contents).map_err(|source| Error::Io {
        op: txfile::Op::Write,
        path: file.path().to_owned(),
        source,
    })?;
    tx.commit()
}

/// `fuzz/regressions/crash_sequences-noop-after-failed-dir-sync*`: the
/// first is a minimal form; the `-found-*` ones are the inputs the fuzzer
/// found (twice in its first 10 minutes), where the first commit creates
/// an empty file.
///
/// A commit whose directory fsync fails (EIO) has already renamed its
/// version into place, but the rename is not durable. A next commit of the
/// same contents finds nothing to write, and returned Ok without syncing
/// anything, so a power loss could then bring back the version before the
/// one that commit acknowledged (invariant 2, durability).
#[test]
fn noop_commit_after_a_failed_dir_sync_is_durable() {
    let cases: [(Option<&[u8]>, &[u8]); 2] = [(Some(b"v0"), b"v1"), (None, b"")];
    for (initial, new) in cases {
        // Where the first commit's directory fsync is.
        let probe = machine(initial);
        let file = Options::new()
            .filesystem(&probe)
            .open(TARGET)
            .expect("open");
        commit(&file, new).expect("commit");
        let sync_dir = probe
            .trace()
            .iter()
            .find(|op| op.kind == OpKind::SyncDir)
            .expect("the commit syncs the directory")
            .index;

        let sim = machine(initial);
        sim.fail_at(sync_dir, Fault::Io);
        let file = Options::new().filesystem(&sim).open(TARGET).expect("open");
        assert!(commit(&file, new).is_err(), "the directory fsync failed");
        assert_eq!(sim.read_file(TARGET).expect("read").as_deref(), Some(new));
        commit(&file, new).expect("the same contents again");
        for (i, state) in sim
            .crash_states(&Enumeration::new())
            .expect("few states")
            .enumerate()
        {
            let after = state.read_file(TARGET).expect("read");
            assert!(
                after.as_deref() == Some(new),
                "from {:?}, post-crash state {i}: commit() returned Ok for {:?}, \
                 yet the file is {:?}",
                initial.map(String::from_utf8_lossy),
                String::from_utf8_lossy(new),
                after.as_deref().map(String::from_utf8_lossy),
            );
        }
    }
}

/// `fuzz/regressions/crash_sequences-batch-undecided-journal-rolled-forward`:
/// a batch commit over `a` and `a.b` whose journal fsync fails (EIO) and
/// whose voiding fails too leaves the journal "undecided", as documented:
/// what the page cache shows need not be what the disk will show after a
/// power loss (fsyncgate). The fuzzer's case: the voiding write fails
/// (ENOSPC), the cache shows the complete commit entry, the next `begin` on
/// `a` rolled forward from it, power failed between the two renames, and
/// after the crash the journal's records were not on disk: recovery rolled
/// back, and the batch ended half applied (`a` new, `a.b` old).
///
/// (That input no longer reaches the same crash state now that recovery
/// has more operations; fuzzing the old recovery from it found a variant,
/// kept in `fuzz/mutant-catchers/`, which `fuzz/run.sh` checks still
/// catches it.)
///
/// Recovery now makes the decision it read durable before it acts on it.
/// Both ways of being undecided are replayed (the voiding write fails, so
/// the cache says "committed"; the voiding write lands but its fsync fails,
/// so the cache says "void"), with a crash at every operation of the
/// recovery that follows and every post-crash state of each: after a
/// second recovery the batch is all old or all new, with no journal and no
/// staged file left.
#[test]
fn recovery_does_not_roll_forward_an_undurable_journal() {
    let crash_points: usize = UNDECIDED
        .iter()
        .map(|&case| {
            undecided_journal_recovery(None, case).unwrap_or_else(|failure| panic!("{failure}"))
        })
        .sum();
    println!("undecided journal: {crash_points} crash points, every post-crash state whole");
}

/// The same scenarios with recovery that acts on the journal as it reads,
/// as before the fix: caught in both.
#[cfg(txfile_mutants)]
#[test]
fn recovery_that_trusts_the_page_cache_is_caught() {
    for case in UNDECIDED {
        let failure =
            undecided_journal_recovery(Some(txfile::Mutant::BatchRecoveryTrustsCache), case)
                .expect_err("the mutant must be caught");
        println!("caught: {failure}");
    }
}

/// The two ways a batch commit's journal ends up undecided: after the
/// journal's fsync failed, the voiding write fails (the page cache shows
/// the commit entry) or the voiding write lands and its fsync fails (the
/// page cache shows the void entry).
#[derive(Clone, Copy, Debug)]
enum Undecided {
    VoidingWriteFails,
    VoidingFsyncFails,
}

const UNDECIDED: [Undecided; 2] = [Undecided::VoidingWriteFails, Undecided::VoidingFsyncFails];

/// `mutant`: `None` for the correct protocol (the only one without
/// `--cfg txfile_mutants`, see `src/mutants.rs`).
#[cfg(txfile_mutants)]
type Mutant = Option<txfile::Mutant>;
#[cfg(not(txfile_mutants))]
type Mutant = Option<std::convert::Infallible>;

fn undecided_journal_recovery(mutant: Mutant, case: Undecided) -> Result<usize, String> {
    let setup = || {
        let sim = SimFs::new();
        sim.create_dir_all("/d").expect("setup");
        sim.write_file("/d/a", b"a0").expect("setup");
        sim.write_file("/d/a.b", b"b0").expect("setup");
        sim
    };
    let try_open = |sim: &SimFs, name: &str| {
        let options = Options::new().filesystem(sim);
        #[cfg(txfile_mutants)]
        let options = options.mutant(mutant.unwrap_or_default());
        #[cfg(not(txfile_mutants))]
        let _ = mutant;
        options.open(format!("/d/{name}"))
    };
    let open = |sim: &SimFs, name: &str| try_open(sim, name).expect("open");
    let update = |sim: &SimFs| {
        txfile::Batch::new([open(sim, "a"), open(sim, "a.b")])
            .expect("batch")
            .update(|_| Ok::<_, std::io::Error>(vec![b"a1".to_vec(), b"b1".to_vec()]))
    };
    // Where the journal's fsync is; the voiding write and its fsync follow.
    let probe = setup();
    update(&probe).expect("the batch commits without faults");
    let journal_sync = probe
        .trace()
        .iter()
        .find(|op| op.kind == OpKind::SyncFile && op.path.as_str() == "/d/.a.txjournal")
        .expect("the journal is fsynced")
        .index;
    let mut crash_points = 0;
    let second_fault = match case {
        Undecided::VoidingWriteFails => (journal_sync + 1, Fault::NoSpace),
        Undecided::VoidingFsyncFails => (journal_sync + 2, Fault::Io),
    };
    {
        let faulty = || {
            let sim = setup();
            sim.fail_at(journal_sync, Fault::Io);
            sim.fail_at(second_fault.0, second_fault.1);
            assert!(update(&sim).is_err(), "the journal fsync failed");
            assert!(
                sim.read_file("/d/.a.txjournal").expect("read").is_some(),
                "{case:?}: the undecided journal is left to recovery"
            );
            sim
        };
        // The operations of the recovery in the next begin on `a`.
        let probe = faulty();
        let start = probe.op_count();
        open(&probe, "a")
            .begin()
            .expect("begin recovers")
            .rollback();
        let end = probe.op_count();
        for crash_at in start..=end {
            let sim = faulty();
            sim.crash_at(crash_at);
            if let Ok(file) = try_open(&sim, "a") {
                if let Ok(tx) = file.begin() {
                    tx.rollback();
                }
            }
            crash_points += 1;
            let states = sim
                .crash_states(&Enumeration::new())
                .map_err(|e| format!("{case:?}: {e}"))?;
            for (i, state) in states.enumerate() {
                let recovered: Vec<Option<Vec<u8>>> = ["a", "a.b"]
                    .iter()
                    .map(|name| {
                        let file = open(&state, name);
                        let mut tx = file.begin().expect("recovery");
                        let old = tx.old_bytes().expect("read").map(<[u8]>::to_vec);
                        tx.rollback();
                        old
                    })
                    .collect();
                let [a, b] = [&recovered[0], &recovered[1]].map(|v| v.as_deref());
                if !matches!(
                    (a, b),
                    (Some(b"a0"), Some(b"b0")) | (Some(b"a1"), Some(b"b1"))
                ) {
                    return Err(format!(
                        "{case:?}, crash at operation {crash_at}, post-crash state {i}: \
                         the batch is half applied after recovery: a = {:?}, a.b = {:?}",
                        a.map(String::from_utf8_lossy),
                        b.map(String::from_utf8_lossy),
                    ));
                }
                let left: Vec<String> = state
                    .list_dir("/d")
                    .expect("list")
                    .into_iter()
                    .filter(|name| name.ends_with(".txjournal") || name.ends_with(".txtmp"))
                    .collect();
                if !left.is_empty() {
                    return Err(format!(
                        "{case:?}, crash at operation {crash_at}, post-crash state {i}: \
                         left after recovery: {left:?}"
                    ));
                }
            }
        }
    }
    Ok(crash_points)
}
