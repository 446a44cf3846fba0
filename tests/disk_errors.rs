//! Disk errors in the middle of a commit, injected by the simulator: EIO or
//! ENOSPC on a write, EIO on the fsync of the file or of the directory.
//! `commit` returns the error, naming the operation and the path, and the
//! file is old (or, for the directory fsync after the rename, new: the
//! documented exception), with no temporary file left.
#![cfg(feature = "sim")]

use std::io::Write;

use txfile::sim::{Fault, OpKind, SimFs};
use txfile::{Error, Op, Options};

const DIR: &str = "/data";
const TARGET: &str = "/data/file";

fn fresh() -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(DIR).unwrap();
    sim.write_file(TARGET, b"old contents").unwrap();
    sim
}

/// Runs one streamed commit of 200 KB (several writes); returns its result.
fn commit(sim: &SimFs) -> Result<(), Error> {
    let file = Options::new().filesystem(sim).open(TARGET)?;
    let mut tx = file.begin()?;
    for _ in 0..4 {
        tx.write_all(&[b'n'; 50_000]).map_err(|e| Error::Io {
            op: Op::Write,
            path: TARGET.into(),
            source: e,
        })?;
    }
    tx.commit()
}

/// The operations of a clean commit, to aim the faults at.
fn indices_of(kind: OpKind) -> Vec<u64> {
    let sim = fresh();
    let start = sim.op_count();
    commit(&sim).unwrap();
    sim.trace()
        .into_iter()
        .filter(|op| op.index >= start && op.kind == kind)
        .map(|op| op.index)
        .collect()
}

fn temps(sim: &SimFs) -> Vec<String> {
    sim.list_dir(DIR)
        .unwrap()
        .into_iter()
        .filter(|n| n.ends_with(".txtmp"))
        .collect()
}

#[test]
fn errors_while_writing_leave_the_old_file() {
    let writes = indices_of(OpKind::Write);
    assert!(
        writes.len() >= 2,
        "the commit writes in several calls: {writes:?}"
    );
    let mut seen = 0;
    for fault in [Fault::Io, Fault::NoSpace] {
        for &at in &writes {
            let sim = fresh();
            sim.fail_at(at, fault);
            let err = commit(&sim).unwrap_err();
            let msg = format!(
                "{err}: {}",
                std::error::Error::source(&err)
                    .map(|s| s.to_string())
                    .unwrap_or_default()
            );
            assert!(msg.contains("write"), "{msg}");
            assert!(msg.contains(DIR), "names the path: {msg}");
            assert_eq!(
                sim.read_file(TARGET).unwrap().as_deref(),
                Some(&b"old contents"[..]),
                "{fault:?} at {at}"
            );
            assert!(
                temps(&sim).is_empty(),
                "{fault:?} at {at}: {:?}",
                temps(&sim)
            );
            seen += 1;
        }
    }
    eprintln!("disk errors on write: {seen} injected, file old every time");
}

#[test]
fn eio_on_file_fsync_is_reported_and_the_file_is_old() {
    let syncs = indices_of(OpKind::SyncFile);
    assert_eq!(syncs.len(), 1, "one file fsync per commit");
    let sim = fresh();
    sim.fail_at(syncs[0], Fault::Io);
    let err = commit(&sim).unwrap_err();
    assert!(matches!(err, Error::Io { op: Op::Sync, .. }), "{err:?}");
    assert!(err.to_string().contains(DIR), "{err}");
    assert_eq!(
        sim.read_file(TARGET).unwrap().as_deref(),
        Some(&b"old contents"[..])
    );
    assert!(temps(&sim).is_empty());
    // The next commit works, and is not fooled by the page marked clean.
    commit(&sim).unwrap();
    assert_eq!(sim.read_file(TARGET).unwrap().unwrap().len(), 200_000);
}

#[test]
fn eio_on_directory_fsync_is_reported_after_the_rename() {
    let syncs = indices_of(OpKind::SyncDir);
    assert_eq!(syncs.len(), 1, "one directory fsync per commit");
    let sim = fresh();
    sim.fail_at(syncs[0], Fault::Io);
    let err = commit(&sim).unwrap_err();
    assert!(
        matches!(
            err,
            Error::Io {
                op: Op::SyncDir,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains(DIR), "{err}");
    // The rename happened: the new contents are visible, not yet durable.
    assert_eq!(sim.read_file(TARGET).unwrap().unwrap().len(), 200_000);
    assert!(temps(&sim).is_empty());
}
