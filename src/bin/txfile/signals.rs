//! Termination signals, noticed instead of obeyed.
//!
//! Once a transaction or a child process is live, dying at once on SIGINT,
//! SIGTERM or SIGHUP would leave a temporary file behind or a CMD running
//! without the lock. The handlers only record which signal came; the loops
//! that copy data and wait for CMD look at it between steps, then kill CMD,
//! roll back and exit with 128 + the signal.

use std::sync::atomic::{AtomicUsize, Ordering};

use signal_hook::consts::{SIGINT, SIGTERM};

use crate::exit::{Exit, Outcome};

/// The last termination signal received, or 0.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

#[cfg(unix)]
const HANDLED: &[i32] = &[SIGINT, SIGTERM, signal_hook::consts::SIGHUP];
#[cfg(not(unix))]
const HANDLED: &[i32] = &[SIGINT, SIGTERM];

/// Replaces the default action of the termination signals with recording
/// them. Until this runs they kill the process, which is harmless before a
/// transaction exists: the kernel releases the lock.
pub(crate) fn catch() -> Outcome {
    for &signal in HANDLED {
        let value = usize::try_from(signal).expect("signal numbers are positive");
        signal_hook::flag::register_usize(signal, &RECEIVED, value)
            .map_err(|e| Exit::io(format_args!("failed to handle signal {signal}"), e))?;
    }
    Ok(())
}

/// `Err` with the signal's exit status once a termination signal came.
pub(crate) fn check() -> Outcome {
    match RECEIVED.load(Ordering::SeqCst) {
        0 => Ok(()),
        signal => Err(Exit::signal(
            i32::try_from(signal).expect("stored from a signal number"),
        )),
    }
}
