//! The scenarios behind txfile's fuzz targets, kept out of the
//! `fuzz_targets/` files so that the targets share the small helpers
//! below and the scenarios can be read on their own.
//!
//! The invariants are those of `docs/crash-model.md`, restated where they
//! are checked. The helpers the library's tests use too (the names txfile
//! gives its files, the foreign-file fixture, `show`) come from the
//! workspace's test-support crate, `txfile-testkit`.
//!
//! Setting `TXFILE_FUZZ_MUTANT` to the name of a `txfile::Mutant` (for
//! example `NoDirFsync`) runs the targets against that deliberately broken
//! protocol, to see them fail (in a build with `--cfg txfile_mutants`, see
//! [`with_mutant`]).

pub mod crash_sequences;
pub mod guard_registry;
pub mod journal_decode;

#[cfg(txfile_mutants)]
use std::sync::OnceLock;

use txfile::Options;
use txfile::sim::SimFs;

/// The directory every scenario works in.
pub const DIR: &str = "/d";

/// Target names. Each is a prefix of the next, so that a sweep that
/// matches temporary files too loosely deletes another target's file.
pub const NAMES: [&str; 3] = ["a", "a.b", "a.b.c"];

/// `/d/<name>`.
pub fn target_path(name: &str) -> String {
    format!("{DIR}/{name}")
}

/// `/d/<name>.lock`.
pub fn guard_path(name: &str) -> String {
    target_path(&txfile_testkit::guard_name(name))
}

/// `options` (on `sim`) running the protocol under test: the correct one,
/// or the mutant named by `TXFILE_FUZZ_MUTANT`. The mutants
/// (`src/mutants.rs` of the library) exist only in builds with
/// `--cfg txfile_mutants`: `fuzz/run.sh` adds it to the `RUSTFLAGS` that
/// cargo-fuzz passes on; a build without it refuses to run a mutant rather
/// than silently run the correct protocol.
pub fn with_mutant(options: Options, sim: &SimFs) -> Options {
    #[cfg(txfile_mutants)]
    {
        let mutant = mutant();
        // A fault the filesystem can produce by itself is injected there.
        sim.mutant(mutant);
        options.mutant(mutant)
    }
    #[cfg(not(txfile_mutants))]
    {
        let _ = sim;
        if let Ok(name) = std::env::var("TXFILE_FUZZ_MUTANT") {
            assert!(
                name.is_empty() || name == "None",
                "TXFILE_FUZZ_MUTANT={name}: this build has no mutants; build with \
                 RUSTFLAGS=\"--cfg txfile_mutants\" (fuzz/run.sh does)"
            );
        }
        options
    }
}

/// The mutant named by `TXFILE_FUZZ_MUTANT`.
#[cfg(txfile_mutants)]
fn mutant() -> txfile::Mutant {
    use txfile::Mutant;
    static MUTANT: OnceLock<Mutant> = OnceLock::new();
    *MUTANT.get_or_init(|| match std::env::var("TXFILE_FUZZ_MUTANT").as_deref() {
        Err(_) | Ok("") | Ok("None") => Mutant::None,
        Ok("NoFileFsync") => Mutant::NoFileFsync,
        Ok("NoDirFsync") => Mutant::NoDirFsync,
        Ok("RenameBeforeFsync") => Mutant::RenameBeforeFsync,
        Ok("SweepForeignTemp") => Mutant::SweepForeignTemp,
        Ok("UnlockBeforeRename") => Mutant::UnlockBeforeRename,
        Ok("IgnoreFsyncError") => Mutant::IgnoreFsyncError,
        Ok("NoGuardIdentityCheck") => Mutant::NoGuardIdentityCheck,
        Ok("BatchNoJournalFsync") => Mutant::BatchNoJournalFsync,
        Ok("BatchRenameBeforeJournal") => Mutant::BatchRenameBeforeJournal,
        Ok("BatchIgnoreJournalChecksum") => Mutant::BatchIgnoreJournalChecksum,
        Ok("BatchRecoveryTrustsCache") => Mutant::BatchRecoveryTrustsCache,
        Ok("MarkForeignGuard") => Mutant::MarkForeignGuard,
        Ok("TrustForeignJournal") => Mutant::TrustForeignJournal,
        Ok("OneLockKind") => Mutant::OneLockKind,
        Ok("NoForkCheck") => Mutant::NoForkCheck,
        Ok(other) => panic!("TXFILE_FUZZ_MUTANT={other}: not a txfile::Mutant"),
    })
}
