//! The crash check must be able to fail: every deliberately broken protocol
//! is caught by the same exhaustive check that the correct one passes.
#![cfg(unix)] // the crash check compares the simulated run with a real Unix run (modes, owners)
#![cfg(feature = "sim")]

#[path = "common/crash.rs"]
mod crash;

use crash::Mutant;

/// Each mutant with the invariants that must catch it.
const MUTANTS: &[(Mutant, &[u8])] = &[
    (Mutant::NoFileFsync, &[1]),
    (Mutant::NoDirFsync, &[2]),
    (Mutant::RenameBeforeFsync, &[1]),
    (Mutant::SweepForeignTemp, &[6]),
    (Mutant::UnlockBeforeRename, &[5]),
    (Mutant::IgnoreFsyncError, &[3]),
    (Mutant::MarkForeignGuard, &[6]),
    (Mutant::TrustForeignJournal, &[6]),
];

#[test]
fn the_correct_protocol_passes() {
    let report = crash::check_all(Mutant::None);
    assert!(report.violations.is_empty(), "{}", report.summary());
}

#[test]
fn every_mutant_is_caught() {
    crash::harness::assert_mutants_caught(
        MUTANTS,
        |mutant, _| crash::check_all(mutant),
        |report| format!("({} crash states)", report.crash_states),
    );
}
