//! The one error type of the crate.

use std::fmt;
use std::io;
use std::time::Duration;

use camino::Utf8PathBuf;

/// A boxed error returned by an update closure.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in txfile.
///
/// Every filesystem variant names the operation and the path in its message and
/// keeps the underlying [`io::Error`] as its [`source`](std::error::Error::source),
/// so the cause is printed once by error reporters that walk the chain.
/// [`Error::kind`] gives the [`io::ErrorKind`] of the cause.
///
/// Whatever the variant, a failed operation leaves the target file with either
/// its old contents or (only for [`Error::Io`] with [`Op::SyncDir`], after the
/// rename) the new ones, and no temporary file behind.
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("missing/counter");
/// let err = txfile::TxFile::open(&path).unwrap_err();
/// assert!(err.to_string().contains("missing"));
/// assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A filesystem operation failed.
    #[error("failed to {op} `{path}`")]
    Io {
        /// What was being done.
        op: Op,
        /// The path it was done to.
        path: Utf8PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// Renaming the temporary file over the target failed; the target is unchanged.
    #[error("failed to rename `{from}` to `{to}`")]
    Rename {
        /// The temporary file.
        from: Utf8PathBuf,
        /// The target.
        to: Utf8PathBuf,
        /// The cause.
        #[source]
        source: io::Error,
    },
    /// The lock was not acquired within the configured timeout.
    #[error("timed out after {timeout:?} waiting for the lock on `{path}`")]
    Timeout {
        /// The target whose lock was wanted.
        path: Utf8PathBuf,
        /// The timeout that expired.
        timeout: Duration,
    },
    /// The target was changed by a program not using txfile since the
    /// transaction began. Its version was kept and the new contents discarded.
    #[error("`{path}` was changed by another program during the transaction; its version was kept")]
    Conflict {
        /// The target.
        path: Utf8PathBuf,
    },
    /// The update closure returned an error; nothing was changed.
    #[error("update of `{path}` was aborted")]
    Aborted {
        /// The target.
        path: Utf8PathBuf,
        /// The closure's error.
        #[source]
        source: BoxError,
    },
    /// The calling thread asked for a lock it holds itself (a transaction
    /// it has open on this target, through any handle, clone or batch), so
    /// waiting would wait forever. Nothing was changed; end the open
    /// transaction first.
    #[error(
        "this thread already holds the lock on `{path}` (it has a transaction open on it); \
         asking for it again would wait forever"
    )]
    HeldByThisThread {
        /// The target whose lock was asked for.
        path: Utf8PathBuf,
    },
    /// The path cannot name a target file.
    #[error("cannot use `{path}` as a target: {reason}")]
    InvalidPath {
        /// The offending path.
        path: Utf8PathBuf,
        /// Why it cannot be used.
        reason: &'static str,
    },
    /// The target is a symbolic link and [`Symlinks::Reject`](crate::Symlinks::Reject) is set.
    #[error("`{path}` is a symbolic link, which the handle was told to reject")]
    Symlink {
        /// The link.
        path: Utf8PathBuf,
    },
}

impl Error {
    /// The [`io::ErrorKind`] that best describes this error.
    ///
    /// Filesystem variants return their cause's kind; [`Error::Timeout`] is
    /// [`TimedOut`](io::ErrorKind::TimedOut), [`Error::Conflict`] is
    /// [`AlreadyExists`](io::ErrorKind::AlreadyExists), [`Error::InvalidPath`] and
    /// [`Error::Symlink`] are [`InvalidInput`](io::ErrorKind::InvalidInput) and
    /// [`Error::Aborted`] is [`Other`](io::ErrorKind::Other) and
    /// [`Error::HeldByThisThread`] is [`Deadlock`](io::ErrorKind::Deadlock).
    ///
    /// # Examples
    ///
    /// ```
    /// let err = txfile::TxFile::open("/").unwrap_err();
    /// assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    /// ```
    pub fn kind(&self) -> io::ErrorKind {
        match self {
            Error::Io { source, .. } | Error::Rename { source, .. } => source.kind(),
            Error::Timeout { .. } => io::ErrorKind::TimedOut,
            Error::Conflict { .. } => io::ErrorKind::AlreadyExists,
            Error::InvalidPath { .. } | Error::Symlink { .. } => io::ErrorKind::InvalidInput,
            Error::Aborted { .. } => io::ErrorKind::Other,
            Error::HeldByThisThread { .. } => io::ErrorKind::Deadlock,
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
            Op::Write => "write",
            Op::SetPermissions => "set permissions of",
            Op::Sync => "sync",
            Op::SyncDir => "sync directory",
            Op::Remove => "remove",
            Op::MarkGuard => "mark lock file",
        })
    }
}
