//! Deliberately broken variants of the protocol, for showing that the
//! project's own crash, exclusion, VM and NFS tests catch each classic
//! mistake.
//!
//! They exist only in builds with `--cfg txfile_mutants`, which the
//! repository's `.cargo/config.toml` sets for the project's own builds and
//! which no dependent crate inherits: without it [`active`] is a `const
//! false`, every check folds away, and neither [`Mutant`] nor
//! `Options::mutant` is part of the API (also not with the `sim` feature,
//! which stays a crash-testing tool for users). A fault that the simulated
//! filesystem can produce by itself is injected there instead (see
//! `SimFs::mutant`), so the protocol code only names the mutants that need a
//! different decision of the protocol, and always through [`active`].

/// A deliberately broken protocol. Never use one for real data.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(not(txfile_mutants), allow(dead_code, unreachable_pub))]
pub enum Mutant {
    /// The correct protocol.
    #[default]
    None,
    /// Skip the fsync of the temporary file.
    NoFileFsync,
    /// Skip the fsync of the directory after the rename.
    NoDirFsync,
    /// Rename first, fsync the (renamed) file after.
    RenameBeforeFsync,
    /// Sweep every hidden file that starts with the target's name.
    SweepForeignTemp,
    /// Release the lock before the rename.
    UnlockBeforeRename,
    /// Carry on as if a failed fsync of the temporary file had succeeded
    /// (injected by the simulated filesystem, which reports the failed
    /// fsync as a success).
    IgnoreFsyncError,
    /// Trust a lock on a guard file that was deleted or replaced.
    NoGuardIdentityCheck,
    /// Batch: skip the fsync of the journal (the commit point).
    BatchNoJournalFsync,
    /// Batch: rename the members before the journal is written.
    BatchRenameBeforeJournal,
    /// Batch recovery: roll forward whatever records of a torn journal parse.
    BatchIgnoreJournalChecksum,
    /// Batch recovery: act on the journal as it reads, without first making
    /// that decision durable (wrong when an earlier fsync of the journal
    /// failed: the records read may exist only in the page cache).
    BatchRecoveryTrustsCache,
    /// Use whatever sits at the guard path as the guard, writing the
    /// marker into it (a `Gemfile.lock`, another target).
    MarkForeignGuard,
    /// Batch recovery: act on every record of a journal, without checking
    /// that the record's member has the journal under its own name (so a
    /// planted journal reaches into other directories).
    TrustForeignJournal,
    /// Take only the lock kind of the chosen `LockStyle` (`flock` or POSIX),
    /// as txfile once did: users of the other style are not excluded.
    OneLockKind,
    /// A handle used in a forked child keeps using the parent's guard
    /// descriptor and in-process state.
    NoForkCheck,
    /// In-place commit: copy over the target before the intent record is
    /// durable (no fsync of the record, nor of its directory entry).
    InPlaceCopyBeforeRecord,
    /// In-place commit: remove the intent record without first fsyncing
    /// the target the staged contents were copied over.
    InPlaceNoTargetFsync,
    /// In-place recovery: act on a record without checking its CRC, reading
    /// whatever a torn write left (missing bytes as zeros).
    InPlaceTrustsTornRecord,
    /// Group commit: release the lock with the marker saying the version in
    /// place is durable before a directory fsync has covered its rename,
    /// so a next holder's no-op commit acknowledges it uncovered.
    AckBeforeDirSync,
    /// Group commit: count a directory fsync that was already running (it
    /// may have started before this commit's rename) as covering it.
    CoverByRunningSync,
    /// NFS: open the target without first revalidating its directory, so a
    /// name cached before another host's rename can open a replaced version
    /// (only the NFS test, `tests/nfs/run.sh --mode no-nfs-revalidate`,
    /// can show it).
    NoNfsRevalidate,
    /// Windows: give up on the first replace that another program's open
    /// handle refuses (as every peer library does), instead of retrying for
    /// `Options::replace_retry`.
    NoReplaceRetry,
    /// Windows: open the target (and journals) for reading as
    /// `std::fs::File::open` does, without `FILE_SHARE_DELETE`, so that
    /// txfile's own handle keeps others from renaming or deleting the file
    /// (injected by the real filesystem layer, `RealFs`).
    NoDeleteSharing,
}

/// The mutant a handle's options select (`Options::mutant`); without
/// `--cfg txfile_mutants`, nothing at all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Selected(#[cfg(txfile_mutants)] pub(crate) Mutant);

/// Whether `selected` is `mutant`: `options.mutant` in the protocol.
#[cfg(txfile_mutants)]
pub(crate) fn active(selected: Selected, mutant: Mutant) -> bool {
    selected.0 == mutant
}

/// Without `--cfg txfile_mutants` the protocol is always the correct one.
#[cfg(not(txfile_mutants))]
#[inline(always)]
pub(crate) const fn active(_: Selected, _: Mutant) -> bool {
    false
}
