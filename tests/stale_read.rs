//! `TxFile::read` on NFS: when another host replaces the file, the reader's
//! file handle can go stale (`ESTALE`) at the open, the fstat or the read.
//! The simulator injects `ESTALE` at each of them; `read` must start over and
//! return the complete file, and give up with the error after a bounded
//! number of attempts.
#![cfg(feature = "sim")]

use std::io::ErrorKind;

use txfile::Options;
use txfile::sim::{Fault, OpKind, SimFs};

const TARGET: &str = "/data/file";

fn fresh() -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all("/data").unwrap();
    sim.write_file(TARGET, b"one complete version").unwrap();
    sim
}

/// The operations one clean `read` performs, from `start`.
fn read_ops() -> Vec<(u64, OpKind)> {
    let sim = fresh();
    let file = Options::new().filesystem(&sim).open(TARGET).unwrap();
    let start = sim.op_count();
    file.read().unwrap();
    sim.trace()
        .into_iter()
        .filter(|op| op.index >= start)
        .map(|op| (op.index, op.kind))
        .collect()
}

#[test]
fn a_stale_handle_at_any_step_of_a_read_is_retried() {
    let ops = read_ops();
    for kind in [OpKind::OpenRead, OpKind::Fstat, OpKind::Read] {
        assert!(
            ops.iter().any(|op| op.1 == kind),
            "a read does {kind:?}: {ops:?}"
        );
    }
    for &(at, kind) in &ops {
        let sim = fresh();
        let file = Options::new().filesystem(&sim).open(TARGET).unwrap();
        sim.fail_at(at, Fault::Stale);
        let got = file.read();
        assert_eq!(
            got.unwrap_or_else(|e| panic!("ESTALE at {kind:?} was not retried: {e}")),
            Some(b"one complete version".to_vec())
        );
    }
}

#[test]
fn a_handle_that_stays_stale_gives_up_with_the_error() {
    let sim = fresh();
    let file = Options::new().filesystem(&sim).open(TARGET).unwrap();
    let start = sim.op_count();
    for at in start..start + 1000 {
        sim.fail_at(at, Fault::Stale);
    }
    let err = file.read().unwrap_err();
    assert_eq!(err.kind(), ErrorKind::StaleNetworkFileHandle);
    assert!(err.to_string().contains(TARGET), "{err}");
    let attempts = sim
        .trace()
        .into_iter()
        .filter(|op| op.index >= start && op.kind == OpKind::OpenRead)
        .count();
    assert!(
        (2..=10).contains(&attempts),
        "bounded retries, more than one: {attempts}"
    );
}

#[test]
fn other_errors_are_not_retried() {
    let sim = fresh();
    let file = Options::new().filesystem(&sim).open(TARGET).unwrap();
    let start = sim.op_count();
    sim.fail_at(start, Fault::PermissionDenied);
    assert_eq!(file.read().unwrap_err().kind(), ErrorKind::PermissionDenied);
    let opens = sim
        .trace()
        .into_iter()
        .filter(|op| op.index >= start && op.kind == OpKind::OpenRead)
        .count();
    assert_eq!(opens, 1);
}

#[test]
fn batch_read_retries_a_stale_member() {
    let sim = fresh();
    sim.write_file("/data/other", b"other version").unwrap();
    let members = ["/data/file", "/data/other"]
        .into_iter()
        .map(|p| Options::new().filesystem(&sim).open(p))
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let batch = txfile::Batch::new(members).unwrap();
    // The first read opens the guards (lazily); measure a later one.
    batch.read().unwrap();
    let start = sim.op_count();
    batch.read().unwrap();
    let opens: Vec<u64> = sim
        .trace()
        .into_iter()
        .filter(|op| op.index >= start && op.kind == OpKind::OpenRead)
        .map(|op| op.index)
        .collect();
    assert_eq!(opens.len(), 2, "one open per member");
    for (i, &at) in opens.iter().enumerate() {
        // The same read again, with ESTALE at member i's open.
        let from = sim.op_count();
        sim.fail_at(from + (at - start), Fault::Stale);
        let got = batch
            .read()
            .unwrap_or_else(|e| panic!("ESTALE at member {i} was not retried: {e}"));
        assert_eq!(
            got,
            vec![
                Some(b"one complete version".to_vec()),
                Some(b"other version".to_vec())
            ]
        );
        let reopened = sim
            .trace()
            .into_iter()
            .filter(|op| op.index >= from && op.kind == OpKind::OpenRead)
            .count();
        assert_eq!(reopened, 3, "member {i} was opened again after ESTALE");
    }
}
