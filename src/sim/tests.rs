//! The model itself, operation by operation, through the crate's seam.

use std::collections::BTreeSet;

use camino::Utf8Path;

use super::{Enumeration, Fault, SimFs};
use crate::LockStyle;
use crate::fs::Fs;

fn machine() -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all("/d").expect("dir");
    sim
}

fn targets(sim: &SimFs, path: &str) -> BTreeSet<Option<Vec<u8>>> {
    sim.crash_states(&Enumeration::new())
        .expect("bound")
        .map(|s| s.read_file(path).expect("read"))
        .collect()
}

#[test]
fn file_fsync_does_not_make_the_name_durable() {
    let sim = machine();
    let (path, mut temp) = sim
        .create_temp(Utf8Path::new("/d"), ".t.", ".x", 0o600)
        .expect("create");
    assert_eq!(temp.write(b"data").expect("write"), 4);
    temp.sync().expect("fsync");
    assert_eq!(
        targets(&sim, path.as_str()),
        BTreeSet::from([None, Some(b"data".to_vec())])
    );
    sim.open_dir(Utf8Path::new("/d"))
        .expect("open")
        .sync()
        .expect("fsync dir");
    assert_eq!(
        targets(&sim, path.as_str()),
        BTreeSet::from([Some(b"data".to_vec())])
    );
}

#[test]
fn directory_operations_land_in_any_subset() {
    let sim = machine();
    sim.write_file("/d/x", b"x").expect("x");
    sim.write_file("/d/y", b"y").expect("y");
    sim.remove_file(Utf8Path::new("/d/x")).expect("rm x");
    sim.remove_file(Utf8Path::new("/d/y")).expect("rm y");
    let listings: BTreeSet<Vec<String>> = sim
        .crash_states(&Enumeration::new())
        .expect("bound")
        .map(|s| s.list_dir("/d").expect("list"))
        .collect();
    // Not only prefixes: y removed while x is still there.
    assert_eq!(listings.len(), 4);
    assert!(listings.contains(&vec!["x".to_owned()]));
}

#[test]
fn unsynced_writes_are_lost_torn_zeroed_or_garbage() {
    let sim = machine();
    let (path, mut temp) = sim
        .create_temp(Utf8Path::new("/d"), ".t.", ".x", 0o600)
        .expect("create");
    sim.open_dir(Utf8Path::new("/d"))
        .expect("open")
        .sync()
        .expect("fsync dir");
    let new = vec![b'n'; 1024];
    assert_eq!(temp.write(&new).expect("write"), 1024);
    let seen = targets(&sim, path.as_str());
    // Lost, plus 4 x 4 patterns of two sectors.
    // Lost, or per sector new, zeros or garbage ("old" beyond the old end
    // of file reads as zeros).
    assert_eq!(seen.len(), 1 + 3 * 3);
    assert!(seen.contains(&Some(Vec::new())));
    assert!(seen.contains(&Some(new.clone())));
    let mut torn = vec![b'n'; 512];
    torn.extend([0xA5; 512]);
    assert!(seen.contains(&Some(torn)));
    let mut grown = vec![0; 512];
    grown.extend([b'n'; 512]);
    assert!(seen.contains(&Some(grown)));
}

#[test]
fn a_failed_fsync_leaves_the_data_in_doubt_and_the_file_clean() {
    let sim = machine();
    let (path, mut temp) = sim
        .create_temp(Utf8Path::new("/d"), ".t.", ".x", 0o600)
        .expect("create");
    sim.open_dir(Utf8Path::new("/d"))
        .expect("open")
        .sync()
        .expect("fsync dir");
    temp.write(b"data").expect("write");
    sim.fail_at(sim.op_count(), Fault::Io);
    assert!(temp.sync().is_err());
    // fsyncgate: the retry succeeds without writing anything.
    temp.sync().expect("second fsync");
    let seen = targets(&sim, path.as_str());
    assert!(seen.contains(&Some(Vec::new())));
    assert!(seen.contains(&Some(b"data".to_vec())));
    // Data written after the failure is durable at the next fsync.
    temp.write(b"more").expect("write");
    temp.sync().expect("fsync");
    let seen = targets(&sim, path.as_str());
    assert!(
        seen.iter()
            .all(|v| v.as_deref().is_some_and(|b| b.ends_with(b"more")))
    );
    assert!(seen.contains(&Some(b"\0\0\0\0more".to_vec())));
}

#[test]
fn no_space_writes_nothing() {
    let sim = machine();
    let (path, mut temp) = sim
        .create_temp(Utf8Path::new("/d"), ".t.", ".x", 0o600)
        .expect("create");
    sim.fail_at(sim.op_count(), Fault::NoSpace);
    let err = temp.write(b"data").expect_err("ENOSPC");
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    assert_eq!(sim.read_file(&path).expect("read"), Some(Vec::new()));
}

#[test]
fn a_crash_in_the_middle_of_a_write_puts_down_half() {
    let sim = machine();
    let (path, mut temp) = sim
        .create_temp(Utf8Path::new("/d"), ".t.", ".x", 0o600)
        .expect("create");
    sim.crash_during(sim.op_count());
    assert!(temp.write(b"abcd").is_err());
    assert!(sim.is_crashed());
    assert_eq!(sim.read_file(&path).expect("read"), Some(b"ab".to_vec()));
    assert!(temp.write(b"more").is_err());
}

#[test]
fn locks_vanish_at_a_crash() {
    let sim = machine();
    let guard = sim.open_guard(Utf8Path::new("/d/a.lock")).expect("guard");
    let held = guard
        .lock(LockStyle::Posix, false, false)
        .expect("lock")
        .expect("free");
    let other = sim.process();
    let theirs = other.open_guard(Utf8Path::new("/d/a.lock")).expect("guard");
    assert!(
        theirs
            .lock(LockStyle::Posix, false, false)
            .expect("try")
            .is_none()
    );
    sim.crash_now();
    for after in sim.crash_states(&Enumeration::new()).expect("bound") {
        assert_ne!(after.id(), sim.id());
        let guard = after.open_guard(Utf8Path::new("/d/a.lock")).expect("guard");
        assert!(
            guard
                .lock(LockStyle::Posix, false, false)
                .expect("lock")
                .is_some()
        );
    }
    drop(held);
}

#[test]
fn renames_are_atomic_unless_paranoid() {
    let sim = machine();
    sim.write_file("/d/a", b"old").expect("a");
    sim.write_file("/d/t", b"new").expect("t");
    sim.rename(Utf8Path::new("/d/t"), Utf8Path::new("/d/a"))
        .expect("rename");
    assert_eq!(
        targets(&sim, "/d/a"),
        BTreeSet::from([Some(b"old".to_vec()), Some(b"new".to_vec())])
    );
    let paranoid: BTreeSet<_> = sim
        .crash_states(&Enumeration::new().paranoid_rename(true))
        .expect("bound")
        .map(|s| {
            (
                s.read_file("/d/a").expect("a"),
                s.read_file("/d/t").expect("t"),
            )
        })
        .collect();
    assert!(paranoid.contains(&(None, Some(b"new".to_vec()))));
}

#[test]
fn the_bound_is_enforced() {
    let sim = machine();
    for i in 0..20 {
        sim.remove_file(Utf8Path::new("/d/nothing"))
            .expect_err("missing");
        sim.write_file(format!("/d/f{i}"), b"").expect("f");
        sim.remove_file(Utf8Path::new(&format!("/d/f{i}")))
            .expect("rm");
    }
    let err = sim
        .crash_states(&Enumeration::new().max_states(1000))
        .expect_err("2^20 states");
    assert_eq!(err.states, 1 << 20);
}
