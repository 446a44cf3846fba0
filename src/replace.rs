//! The rename that installs a new version, retried while another program
//! holds the target open in a way that forbids replacing it.
//!
//! On Windows a program that opens a file without `FILE_SHARE_DELETE`
//! (most do: editors, virus scanners, search indexers, backup tools)
//! keeps everyone from renaming over it until it closes it, usually a few
//! milliseconds to a second later. The platform layer reports that case as
//! a [`HeldOpen`] cause; [`rename`] retries it with backoff for
//! [`Options::replace_retry`](crate::Options::replace_retry) and then
//! returns [`Error::HeldOpen`]: the rename changed nothing, and the caller
//! removes its temporary file as after any failed rename. On Unix a rename
//! is never refused that way, and the first error is final.

use std::fmt;
use std::io;
use std::thread;
use std::time::{Duration, Instant};

use camino::Utf8Path;

use crate::Error;
use crate::fs::{DirHandle, Name};
use crate::mutants::{Mutant, Selected, active};

/// Default of [`Options::replace_retry`](crate::Options::replace_retry).
pub(crate) const DEFAULT_RETRY: Duration = Duration::from_secs(2);

/// The longest pause between two attempts.
const MAX_PAUSE: Duration = Duration::from_millis(100);

/// The cause of an `io::Error` (kind `ResourceBusy`) from a rename that
/// another program's open handle refused, or may have refused; it carries
/// the system's error.
#[derive(Debug)]
pub(crate) struct HeldOpen {
    cause: io::Error,
    /// The platform saw another handle on the file. When false, the refusal
    /// ("access denied") may also be a permission the user lacks; it is
    /// retried all the same (a lockless reader may have closed its handle
    /// before the check), and reported as a plain rename error if it never
    /// went away.
    certain: bool,
}

impl fmt::Display for HeldOpen {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the file is held open by another program, which keeps it from being replaced: {}",
            self.cause
        )
    }
}

impl std::error::Error for HeldOpen {}

impl HeldOpen {
    /// The `io::Error` the platform layer returns for this case.
    #[cfg_attr(not(windows), allow(dead_code))]
    pub(crate) fn error(cause: io::Error, certain: bool) -> io::Error {
        io::Error::new(io::ErrorKind::ResourceBusy, HeldOpen { cause, certain })
    }
}

/// `Some(certain)` when a rename failed because another program holds
/// (or may hold) a file open.
fn held_open(e: &io::Error) -> Option<bool> {
    e.get_ref()?
        .downcast_ref::<HeldOpen>()
        .map(|held| held.certain)
}

/// Renames `from` over `to` in `dir` (each a name and the path it is
/// reported as), retrying for up to `retry` (pauses from 1 ms doubling to
/// 100 ms) while the platform reports the target held open (not at all
/// with the `NoReplaceRetry` mutant).
pub(crate) fn rename(
    dir: &dyn DirHandle,
    (from, from_path): (&Name, &Utf8Path),
    (to, to_path): (&Name, &Utf8Path),
    retry: Duration,
    mutant: Selected,
) -> Result<(), Error> {
    let retry = if active(mutant, Mutant::NoReplaceRetry) {
        Duration::ZERO
    } else {
        retry
    };
    let start = Instant::now();
    let mut pause = Duration::from_millis(1);
    loop {
        match dir.rename(from, to) {
            Ok(()) => return Ok(()),
            Err(source) if held_open(&source).is_some() => {
                let waited = start.elapsed();
                let Some(left) = retry.checked_sub(waited).filter(|left| !left.is_zero()) else {
                    if held_open(&source) == Some(false) {
                        let cause = source
                            .into_inner()
                            .and_then(|inner| inner.downcast::<HeldOpen>().ok())
                            .map(|held| held.cause)
                            .expect("checked above");
                        return Err(Error::Rename {
                            from: from_path.to_owned(),
                            to: to_path.to_owned(),
                            source: cause,
                        });
                    }
                    return Err(Error::HeldOpen {
                        path: to_path.to_owned(),
                        waited,
                        source,
                    });
                };
                thread::sleep(pause.min(left));
                pause = (pause * 2).min(MAX_PAUSE);
            }
            Err(source) => {
                return Err(Error::Rename {
                    from: from_path.to_owned(),
                    to: to_path.to_owned(),
                    source,
                });
            }
        }
    }
}
