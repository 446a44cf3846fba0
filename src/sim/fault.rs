//! Faults a test schedules at the Nth seam operation.

use std::io;

/// An error the simulated filesystem returns instead of performing an
/// operation.
///
/// # Examples
///
/// ```
/// use txfile::sim::{Fault, SimFs};
/// let sim = SimFs::new();
/// sim.fail_at(0, Fault::PermissionDenied);
/// let err = txfile::Options::new().filesystem(&sim).open("/a").unwrap_err();
/// assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Fault {
    /// `EIO`. On the fsync of a file it behaves as Linux does after a
    /// writeback error ("fsyncgate"): the data written since the last fsync
    /// may or may not be on disk after a crash, and the file counts as clean,
    /// so a later fsync returns success without writing it again.
    Io,
    /// `ENOSPC`: nothing is written.
    NoSpace,
    /// `EACCES`.
    PermissionDenied,
    /// `ESTALE`: an NFS file handle whose file another client replaced.
    Stale,
}

impl Fault {
    pub(super) fn error(self) -> io::Error {
        #[cfg(unix)]
        {
            use rustix::io::Errno;
            let errno = match self {
                Fault::Io => Errno::IO,
                Fault::NoSpace => Errno::NOSPC,
                Fault::PermissionDenied => Errno::ACCESS,
                Fault::Stale => Errno::STALE,
            };
            io::Error::from_raw_os_error(errno.raw_os_error())
        }
        #[cfg(not(unix))]
        {
            let kind = match self {
                Fault::Io => io::ErrorKind::Other,
                Fault::NoSpace => io::ErrorKind::StorageFull,
                Fault::PermissionDenied => io::ErrorKind::PermissionDenied,
                Fault::Stale => io::ErrorKind::StaleNetworkFileHandle,
            };
            io::Error::new(kind, format!("simulated {self:?}"))
        }
    }
}

/// What happens at a scheduled operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Planned {
    /// Power is lost before the operation runs.
    CrashBefore,
    /// Power is lost in the middle of the operation: a write puts down only
    /// the first half of its bytes; any other operation completes.
    CrashDuring,
    /// The operation fails with this error.
    Fail(Fault),
}
