//! Termination signals (Unix) and console control events (Windows),
//! noticed instead of obeyed.
//!
//! Once a transaction or a child process is live, dying at once on SIGINT,
//! SIGTERM or SIGHUP (Ctrl-C or Ctrl-Break on a Windows console) would
//! leave a temporary file behind or a CMD running without the lock. The
//! handlers only record what came; the loops that copy data and wait for
//! CMD look at it between steps, then kill CMD, roll back and exit with
//! 128 + the signal (on Windows 130, SIGINT's, for Ctrl-C and Ctrl-Break
//! alike: see [`catch`]).
//!
//! Tested on Windows by `tests/windows/run.sh` under Wine, which delivers a
//! SIGINT to a Windows process as `CTRL_C_EVENT` to its console control
//! handlers: `edit` and `lock` exit 130, kill CMD, leave the target and no
//! temporary file. Not tested: Ctrl-Break and the close event (Wine can
//! deliver neither: `GenerateConsoleCtrlEvent` fails under it), and the
//! event coming from a real console (`tests/windows.rs`'s
//! `ctrl_break_rolls_back`, ignored, does that on Windows).

use std::sync::atomic::{AtomicUsize, Ordering};

use crate::exit::{Exit, Outcome};

/// The last termination signal received, or 0.
static RECEIVED: AtomicUsize = AtomicUsize::new(0);

/// Replaces the default action of the termination signals with recording
/// them. Until this runs they kill the process, which is harmless before a
/// transaction exists: the kernel releases the lock.
#[cfg(unix)]
pub(crate) fn catch() -> Outcome {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        let value = usize::try_from(signal).expect("signal numbers are positive");
        signal_hook::flag::register_usize(signal, &RECEIVED, value)
            .map_err(|e| Exit::io(format_args!("failed to handle signal {signal}"), e))?;
    }
    Ok(())
}

/// Windows: a console control handler (through `ctrlc`, whose handler
/// runs on a thread of its own and is told Ctrl-C and Ctrl-Break alike, and
/// the console being closed) records the event; without one, the default
/// handler ends the process at once. (`signal-hook` covers only the C
/// runtime's SIGINT there, not Ctrl-Break.) `ctrlc` reports which event
/// came only as "a termination", so both are recorded as Ctrl-C's SIGINT.
#[cfg(windows)]
pub(crate) fn catch() -> Outcome {
    const SIGINT: usize = 2;
    match ctrlc::set_handler(|| RECEIVED.store(SIGINT, Ordering::SeqCst)) {
        Ok(()) | Err(ctrlc::Error::MultipleHandlers) => Ok(()),
        Err(e) => Err(Exit::io(
            "failed to handle Ctrl-C and Ctrl-Break",
            std::io::Error::other(e.to_string()),
        )),
    }
}

/// Elsewhere: nothing to catch.
#[cfg(not(any(unix, windows)))]
pub(crate) fn catch() -> Outcome {
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
