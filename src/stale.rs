//! `ESTALE`: on NFS a file handle dies when another client replaces or
//! removes the file it names. A lock-free reader that opened (or looked up)
//! the previous version while another host renamed a new one over it gets
//! `ESTALE` from `open`, `fstat` or `read`. The path names a complete
//! version all the while, so opening it again is the whole fix.

use std::io;

use crate::Error;

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
    use crate::Op;

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
            if calls <= RETRIES { Err(stale()) } else { Ok(calls) }
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
            Err(Error::io(Op::Read, "/f", io::Error::from(io::ErrorKind::PermissionDenied)))
        })
        .unwrap_err();
        assert_eq!(calls, 1);
        assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    }
}
