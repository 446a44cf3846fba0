//! Waiting for a lock in slices, so that Ctrl-C and other signals work.
//!
//! The library waits for a lock in the kernel, where Python's signal
//! handlers cannot run: a `KeyboardInterrupt` would wait for the lock. So
//! the Rust handles behind the Python objects are opened with a timeout of
//! at most [`SLICE`], and a longer wait (or one without a timeout) is a
//! loop of slices, each with the GIL released, with Python's signal
//! handlers run in between. Between slices the library keeps this
//! process's place: a slice that times out leaves its helper thread
//! blocked in the kernel, holding the process's turn, and the next slice
//! waits for that turn.

use std::time::{Duration, Instant};

use camino::Utf8Path;
use pyo3::prelude::*;

use crate::errors::to_py_err;
use crate::mutant::{self, Mutant};

/// The longest the GIL-less wait lasts before signal handlers get to run.
pub(crate) const SLICE: Duration = Duration::from_millis(100);

/// The timeout for the Rust handles, given the user's timeout.
pub(crate) fn slice(timeout: Option<Duration>) -> Duration {
    timeout.map_or(SLICE, |timeout| timeout.min(SLICE))
}

/// Runs `attempt` (which waits at most one slice for its locks) without
/// the GIL until it returns anything but a timeout, running signal handlers
/// between attempts; after `timeout` (if any) raises `LockTimeout` for
/// `path`. The total wait is at least `timeout` and at most one slice more.
pub(crate) fn locked<T: Send>(
    py: Python<'_>,
    timeout: Option<Duration>,
    path: &Utf8Path,
    mut attempt: impl FnMut() -> Result<T, txfile::Error> + Send,
) -> PyResult<T> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
    loop {
        let result = if mutant::active() == Mutant::HoldGil {
            attempt()
        } else {
            py.detach(&mut attempt)
        };
        match result {
            Err(txfile::Error::Timeout { .. }) => {
                if mutant::active() != Mutant::NoSignalCheck {
                    py.check_signals()?;
                }
                if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                    return Err(to_py_err(
                        py,
                        txfile::Error::Timeout {
                            path: path.to_owned(),
                            timeout: timeout.unwrap_or_default(),
                        },
                    ));
                }
            }
            result => return result.map_err(|e| to_py_err(py, e)),
        }
    }
}
