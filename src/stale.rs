//! Stale names and handles on NFS. When another client renames a new
//! version over the target, this client may still map the name to the old
//! file handle: its directory entry cache trusts the directory's cached
//! attributes. Opening the name then either fails with `ESTALE` (the server
//! freed the old file) or, worse, opens the old, already replaced version
//! (the server still holds it, e.g. in nfsd's open-file cache), which under
//! the lock would be a lost update. Two defences:
//!
//! - [`open_current`]: on NFS, revalidate the target's directory first:
//!   its attributes are fetched from the server (`statx` with
//!   `AT_STATX_FORCE_SYNC` on the directory descriptor the handle holds),
//!   and a changed directory invalidates the cached names under it, so the
//!   target's name is looked up afresh. (Before handles kept their
//!   directory open, opening the directory by path did this, close-to-open;
//!   a descriptor held for the handle's life is opened once, so it no
//!   longer would, and the revalidation is asked for explicitly.)
//! - [`retry`]: an `ESTALE` from the open, `fstat` or `read` starts over, a
//!   bounded number of times. The path names a complete version all the
//!   while, so opening it again is the fix.

use std::io;

use crate::handle::Handle;
use crate::mutants::{Mutant, active};
use crate::state::OldFile;
use crate::{Error, Op};

/// Opens the target's current version, making sure first, on NFS, that
/// its name is not resolved from a stale cache.
pub(crate) fn open_current(file: &Handle) -> Result<Option<OldFile>, Error> {
    let inner = &*file.inner;
    if inner.on_nfs && !active(inner.options.mutant, Mutant::NoNfsRevalidate) {
        inner
            .dir
            .revalidate()
            .map_err(|e| Error::io(Op::OpenDir, &inner.dir_path, e))?;
    }
    OldFile::open(file)
}

/// How many times a read starts over after `ESTALE` before returning it. Each
/// retry opens the path afresh, so only a file replaced again and again
/// faster than one read completes exhausts them.
pub(crate) const RETRIES: usize = 5;

/// Runs `op`, again while it fails with `ESTALE`, at most [`RETRIES`] more
/// times.
pub(crate) fn retry<T>(mut op: impl FnMut() -> Result<T, Error>) -> Result<T, Error> {
    let mut left = RETRIES;
    loop {
        match op() {
            Err(err) if left > 0 && is_stale(&err) => left -= 1,
            result => return result,
        }
    }
}

fn is_stale(err: &Error) -> bool {
    match err {
        Error::Io { source, .. } => source.kind() == io::ErrorKind::StaleNetworkFileHandle,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stale() -> Error {
        Error::io(
            Op::Read,
            "/f",
            io::Error::from(io::ErrorKind::StaleNetworkFileHandle),
        )
    }

    #[test]
    fn retries_stale_handles_a_bounded_number_of_times() {
        let mut calls = 0;
        let got = retry(|| {
            calls += 1;
            if calls <= RETRIES {
                Err(stale())
            } else {
                Ok(calls)
            }
        });
        assert_eq!(got.ok(), Some(RETRIES + 1));

        let mut calls = 0;
        let err = retry(|| -> Result<(), Error> {
            calls += 1;
            Err(stale())
        })
        .unwrap_err();
        assert_eq!(calls, RETRIES + 1);
        assert_eq!(err.kind(), io::ErrorKind::StaleNetworkFileHandle);
    }

    #[test]
    fn other_errors_are_returned_at_once() {
        let mut calls = 0;
        let err = retry(|| -> Result<(), Error> {
            calls += 1;
            Err(Error::io(
                Op::Read,
                "/f",
                io::Error::from(io::ErrorKind::PermissionDenied),
            ))
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
}
