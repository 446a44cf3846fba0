//! Exhaustive crash points: every scenario of issue 3, a power loss before
//! and after every filesystem operation and in the middle of every write,
//! every post-crash state the model of `docs/crash-model.md` admits (bound:
//! `MAX_STATES_PER_CRASH` per crash point, half-done renames off), recovery
//! on each, and invariants 1-7. Run with `--nocapture` to see the count.
#![cfg(unix)] // the crash check compares the simulated run with a real Unix run (modes, owners)
#![cfg(feature = "sim")]

#[path = "common/crash.rs"]
mod crash;

use std::time::Instant;

use crash::Mutant;
use txfile::sim::{Enumeration, OpKind, SimFs};

#[test]
fn every_crash_point_of_the_correct_protocol() {
    let start = Instant::now();
    let report = crash::check_all(Mutant::None);
    eprintln!(
        "crash_points: {} crash points, {} post-crash states checked (bound: at most {} states per crash point, paranoid renames off) in {:.1?}",
        report.crash_points,
        report.crash_states,
        crash::harness::MAX_STATES_PER_CRASH,
        start.elapsed()
    );
    report.assert_passed();
}

/// The paranoid model (a rename half done: destination gone, source still
/// there) is available, and as documented no rename-based protocol survives
/// it: the target can vanish. That is why the suite runs without it.
#[test]
fn paranoid_rename_loses_the_target() {
    let setup = || {
        let sim = SimFs::new();
        sim.create_dir_all("/d").unwrap();
        sim.write_file("/d/a", b"old").unwrap();
        sim
    };
    let commit = |sim: &SimFs| {
        let file = txfile::Options::new().filesystem(sim).open("/d/a").unwrap();
        let _ = file.update(|_| Ok::<_, std::io::Error>(b"new".to_vec()));
    };
    // Learn where the directory fsync is, then crash right before it.
    let probe = setup();
    commit(&probe);
    let sync_dir = probe
        .trace()
        .iter()
        .rev()
        .find(|op| op.kind == OpKind::SyncDir)
        .unwrap()
        .index;
    let sim = setup();
    sim.crash_at(sync_dir);
    commit(&sim);
    assert!(sim.is_crashed());
    let targets = |e: Enumeration| -> Vec<Option<Vec<u8>>> {
        sim.crash_states(&e)
            .unwrap()
            .map(|s| s.read_file("/d/a").unwrap())
            .collect()
    };
    let atomic = targets(Enumeration::new());
    assert!(atomic.iter().all(Option::is_some));
    let paranoid = targets(Enumeration::new().paranoid_rename(true));
    assert!(paranoid.len() > atomic.len());
    assert!(paranoid.iter().any(Option::is_none));
}

#[test]
fn sim_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone>() {}
    check::<SimFs>();
}
