//! The one error type of the crate.

use std::fmt;
use std::io;
use std::time::Duration;

use camino::Utf8PathBuf;

/// A boxed error returned by an update closure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in txfile.
///
/// Its message says, on one line, what failed, on which path, and why:
///
/// ```text
/// failed to open directory `/srv/app/missing`: No such file or directory (os error 2)
/// ```
///
/// so printing it with `{}` is enough (`eprintln!("{err}")`, or `?` into a
/// `Box<dyn Error>` that `main` returns). The cause written after the colon
/// (the [`io::Error`], or the update closure's error) is kept in the
/// variant's `source` field and is *not* returned again by
/// [`source`](std::error::Error::source), which goes on with the cause's own
/// source, if any. So reporters that walk the chain (anyhow's `{:#}`, eyre,
/// the `txfile` command) print each cause once. [`Error::kind`] gives the
/// [`io::ErrorKind`] of the cause.
///
/// Whatever the variant, a failed operation leaves the target file with either
/// its old contents or (only for [`Error::Io`] with [`Op::SyncDir`], after the
/// rename) the new ones, and no temporary file behind. The one exception is a
/// target updated in place (a bind-mounted file) whose commit failed after its
/// commit point: see [`Transaction::commit`](crate::Transaction::commit).
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// let path = dir.path().join("missing/counter");
/// let err = txfile::TxFile::open(&path).unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// // What failed, where, and why, on one line:
/// let message = err.to_string();
/// assert!(message.starts_with("failed to open directory `"), "{message}");
/// assert!(message.contains("missing`: "), "{message}");
/// // The cause is in the message, not repeated by `source()`.
/// assert!(std::error::Error::source(&err).is_none());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    Io {
        /// What was being done.
        op: Op,
        /// The path it was done to.
        path: Utf8PathBuf,
        /// The cause (written in the message).
        source: io::Error,
    },
    /// Renaming the temporary file over the target failed; the target is unchanged.
    Rename {
        /// The temporary file.
        from: Utf8PathBuf,
        /// The target.
        to: Utf8PathBuf,
        /// The cause (written in the message).
        source: io::Error,
    },
    /// Another program held the target open, which on Windows keeps a
    /// rename from replacing it (editors, virus scanners, indexers and
    /// backup tools open files for moments or longer), for longer than
    /// [`Options::replace_retry`](crate::Options::replace_retry); the
    /// rename was retried until then. The target is unchanged and the
    /// temporary file removed (in a [`Batch`](crate::Batch) after its
    /// commit point, the journal keeps it, and recovery completes the batch
    /// once the file is free). Never returned on Unix, where a rename is not
    /// refused that way.
    HeldOpen {
        /// The target.
        path: Utf8PathBuf,
        /// How long the rename was retried.
        waited: Duration,
        /// The last refusal (written in the message).
        source: io::Error,
    },
    /// The lock was not acquired within the configured timeout.
    Timeout {
        /// The target whose lock was wanted.
        path: Utf8PathBuf,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The target was changed by a program not using txfile since the
    /// transaction began. Its version was kept and the new contents discarded.
    Conflict {
        /// The target.
        path: Utf8PathBuf,
    },
    /// The update closure returned an error; nothing was changed.
    ///
    /// The closure's error is in the message and in `source` (match the
    /// variant to downcast it to your own type).
    Aborted {
        /// The target.
        path: Utf8PathBuf,
        /// The closure's error (written in the message).
        source: BoxError,
    },
    /// The calling thread asked for a lock it holds itself (a transaction
    /// it has open on this target, through any handle, clone or batch), so
    /// waiting would wait forever. Nothing was changed; end the open
    /// transaction first.
    HeldByThisThread {
        /// The target whose lock was asked for.
        path: Utf8PathBuf,
    },
    /// A batch was asked for with no member at all (there is no path to
    /// name; a member that cannot be in a batch is [`Error::InvalidPath`]
    /// with that member's path).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = txfile::Batch::new([]).unwrap_err();
    /// assert!(matches!(err, txfile::Error::EmptyBatch));
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// # Ok::<(), txfile::Error>(())
    /// ```
    EmptyBatch,
    /// The path cannot name a target file.
    InvalidPath {
        /// The offending path (lossily converted if it is not UTF-8).
        path: Utf8PathBuf,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The target is on a mount whose locks only exclude processes on this
    /// host (NFS with `nolock` or a `local_lock=` covering the lock style),
    /// and [`Options::allow_local_locks`](crate::Options::allow_local_locks)
    /// is not set.
    LocalLock {
        /// The target.
        path: Utf8PathBuf,
        /// Where the mount is.
        mount_point: Utf8PathBuf,
        /// The mount option that makes locks local.
        option: String,
    },
    /// Something that txfile did not create sits where the target's guard
    /// file must be (by default `<name>.lock`): a file holding data, a
    /// symbolic link, a file with other hard links, a directory or a special
    /// file. txfile would lock and write to it, so it refuses, before
    /// anything is created or locked; nothing changed. Choose another guard
    /// with [`Options::guard_path`](crate::Options::guard_path) (`--guard` on
    /// the command line).
    ForeignGuard {
        /// The guard path.
        path: Utf8PathBuf,
        /// The target it would guard.
        target: Utf8PathBuf,
        /// What is there instead of a guard.
        reason: &'static str,
    },
    /// [`recover`](crate::recover) found a file under a batch journal's name
    /// (`.<name>.txjournal`) that txfile cannot prove it wrote: not a
    /// regular file of this user that only this user can read and write, as
    /// batch commits create their journals. It was left alone (not read as
    /// a journal, not removed), and transactions on `<name>` go on without
    /// it. Remove it if it is not yours; if it is another user's interrupted
    /// batch, that user's next transaction (or `recover`) finishes it.
    ForeignJournal {
        /// The first such file.
        path: Utf8PathBuf,
        /// How many were found.
        count: usize,
    },
    /// The new version could not be given one of the old version's
    /// extended attributes (a namespace this process may not write), and
    /// [`Options::require_xattrs`](crate::Options::require_xattrs) is set.
    /// Nothing changed: the target has its old contents and attributes, and
    /// the temporary file was removed.
    Xattr {
        /// The target.
        path: Utf8PathBuf,
        /// The attribute's name (lossily converted if it is not UTF-8).
        name: String,
        /// Why it could not be set (written in the message).
        source: io::Error,
    },
    /// The target is a symbolic link and [`Symlinks::Reject`](crate::Symlinks::Reject) is set.
    Symlink {
        /// The link.
        path: Utf8PathBuf,
    },
}

// Display and source are written by hand, not derived with thiserror: a
// derive returns the field named `source` from `source()`, and the cause,
// which the message already ends with, would be printed twice by every
// reporter that walks the chain.
impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io { op, path, source } => write!(f, "failed to {op} `{path}`: {source}"),
            Error::Rename { from, to, source } => {
                write!(f, "failed to rename `{from}` to `{to}`: {source}")
            }
            Error::Xattr { path, name, source } => write!(
                f,
                "failed to copy extended attribute `{name}` of `{path}` to its new version \
                 (the commit was refused, nothing changed): {source}"
            ),
            Error::HeldOpen {
                path,
                waited,
                source,
            } => write!(
                f,
                "failed to replace `{path}` (retried for {waited:?}; see Options::replace_retry): \
                 {source}; the target is unchanged"
            ),
            Error::Timeout { path, timeout } => {
                write!(
                    f,
                    "timed out after {timeout:?} waiting for the lock on `{path}`"
                )
            }
            Error::Conflict { path } => write!(
                f,
                "`{path}` was changed by another program during the transaction; its version was kept"
            ),
            Error::Aborted { path, source } => {
                write!(f, "update of `{path}` was aborted: {source}")
            }
            Error::HeldByThisThread { path } => write!(
                f,
                "this thread already holds the lock on `{path}` (it has a transaction open on it); \
                 asking for it again would wait forever"
            ),
            Error::InvalidPath { path, reason } => {
                write!(f, "cannot use `{path}` as a target: {reason}")
            }
            Error::EmptyBatch => write!(f, "a batch needs at least one member"),
            Error::Symlink { path } => write!(
                f,
                "`{path}` is a symbolic link, which the handle was told to reject"
            ),
            Error::LocalLock {
                path,
                mount_point,
                option,
            } => write!(
                f,
                "refusing `{path}`: it is on the NFS mount `{mount_point}`, mounted with \
                 `{option}`, where locks do not exclude other hosts (remount without \
                 `{option}`, or set Options::allow_local_locks if only this host updates the file)"
            ),
            Error::ForeignGuard {
                path,
                target,
                reason,
            } => write!(
                f,
                "`{path}` {reason}, so it cannot be the lock file of `{target}`; \
                 choose another with `Options::guard_path` (`--guard` on the command line)"
            ),
            Error::ForeignJournal { path, count } => write!(
                f,
                "`{path}` is not a batch journal txfile can prove it wrote \
                 ({count} such file(s) in all); left alone"
            ),
        }
    }
}

impl std::error::Error for Error {
    /// The cause's own source: the cause itself is already in the message.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. }
            | Error::Rename { source, .. }
            | Error::Xattr { source, .. }
            | Error::HeldOpen { source, .. } => source.source(),
            Error::Aborted { source, .. } => source.source(),
            Error::Timeout { .. }
            | Error::Conflict { .. }
            | Error::HeldByThisThread { .. }
            | Error::InvalidPath { .. }
            | Error::EmptyBatch
            | Error::LocalLock { .. }
            | Error::Symlink { .. }
            | Error::ForeignGuard { .. }
            | Error::ForeignJournal { .. } => None,
        }
    }
}

impl Error {
    /// The [`io::ErrorKind`] that best describes this error.
    ///
    /// Filesystem variants (and [`Error::Xattr`]) return their cause's kind; [`Error::Timeout`] is
    /// [`TimedOut`](io::ErrorKind::TimedOut), [`Error::Conflict`] is
    /// [`AlreadyExists`](io::ErrorKind::AlreadyExists), [`Error::InvalidPath`] and
    /// [`Error::Symlink`] are [`InvalidInput`](io::ErrorKind::InvalidInput) and
    /// [`Error::Aborted`] is [`Other`](io::ErrorKind::Other),
    /// [`Error::HeldByThisThread`] is [`Deadlock`](io::ErrorKind::Deadlock),
    /// [`Error::LocalLock`] is [`Unsupported`](io::ErrorKind::Unsupported),
    /// [`Error::ForeignGuard`] and [`Error::ForeignJournal`] are
    /// [`AlreadyExists`](io::ErrorKind::AlreadyExists), [`Error::HeldOpen`]
    /// is [`ResourceBusy`](io::ErrorKind::ResourceBusy).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = txfile::TxFile::open("/").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Io { source, .. }
            | Error::Rename { source, .. }
            | Error::Xattr { source, .. } => source.kind(),
            Error::HeldOpen { .. } => io::ErrorKind::ResourceBusy,
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Conflict { .. } | Error::ForeignGuard { .. } => io::ErrorKind::AlreadyExists,
            Error::InvalidPath { .. } | Error::EmptyBatch | Error::Symlink { .. } => {
                io::ErrorKind::InvalidInput
            }
            Error::ForeignJournal { .. } => io::ErrorKind::AlreadyExists,
            Error::Aborted { .. } => io::ErrorKind::Other,
            Error::HeldByThisThread { .. } => io::ErrorKind::Deadlock,
            Error::LocalLock { .. } => io::ErrorKind::Unsupported,
        }
    }

    pub(crate) fn io(op: Op, path: impl Into<Utf8PathBuf>, source: io::Error) -> Self {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

impl From<Error> for io::Error {
    fn from(err: Error) -> io::Error {
        io::Error::new(err.kind(), err)
    }
}

/// The filesystem operation named by [`Error::Io`].
///
/// # Examples
///
/// ```
/// assert_eq!(txfile::Op::Sync.to_string(), "sync");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// Opening or creating the `.lock` guard file.
    OpenGuard,
    /// Taking or releasing the lock on the guard file.
    Lock,
    /// Inspecting a path.
    Stat,
    /// Resolving a symbolic link.
    ReadLink,
    /// Opening the target for reading.
    Open,
    /// Reading the target.
    Read,
    /// Opening the target's directory.
    OpenDir,
    /// Listing the target's directory for stale temporary files.
    ListDir,
    /// Creating the temporary file.
    CreateTemp,
    /// Creating a batch commit's journal (beside the first member).
    CreateJournal,
    /// Linking a batch commit's journal beside another member.
    LinkJournal,
    /// Writing the temporary file.
    Write,
    /// Copying the target's permissions or owner to the temporary file.
    SetPermissions,
    /// Flushing the temporary file to stable storage.
    Sync,
    /// Flushing the directory (the rename) to stable storage.
    SyncDir,
    /// Removing a temporary file.
    Remove,
    /// Setting or clearing the guard file's "unclean" marker (its size).
    MarkGuard,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::OpenGuard => "open lock file",
            Op::Lock => "lock",
            Op::Stat => "stat",
            Op::ReadLink => "read symbolic link",
            Op::Open => "open",
            Op::Read => "read",
            Op::OpenDir => "open directory",
            Op::ListDir => "list directory",
            Op::CreateTemp => "create temporary file in",
            Op::CreateJournal => "create batch journal",
            Op::LinkJournal => "link batch journal",
            Op::Write => "write",
            Op::SetPermissions => "set permissions of",
            Op::Sync => "sync",
            Op::SyncDir => "sync directory",
            Op::Remove => "remove",
            Op::MarkGuard => "mark lock file",
        })
    }
}
