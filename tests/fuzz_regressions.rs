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
