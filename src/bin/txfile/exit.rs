//! How a command ends when it does not succeed: the exit status and the one
//! line, if any, printed on standard error.

use std::error::Error as StdError;
use std::fmt::Display;
use std::io;
use std::process::{ExitCode, ExitStatus};

/// `EX_TEMPFAIL` from sysexits.h: the lock was busy, try again later.
pub(crate) const LOCK_BUSY: u8 = 75;
/// Any failure of txfile itself.
const FAILED: u8 = 1;
/// A command line that does not parse (clap's and getopt tools' custom).
pub(crate) const USAGE: u8 = 2;
/// CMD exists but cannot be executed (the shell's status for this).
const CANNOT_EXECUTE: u8 = 126;
/// CMD was not found (the shell's status for this).
const NOT_FOUND: u8 = 127;

/// A command that did not succeed.
#[derive(Debug)]
pub(crate) struct Exit {
    pub(crate) code: u8,
    /// The line for standard error, without the `txfile: ` prefix; `None`
    /// when CMD's own exit status says it all.
    pub(crate) message: Option<String>,
}

pub(crate) type Outcome = Result<(), Exit>;

impl Exit {
    /// A failure of `what` (which names the operation and the path), with
    /// `cause` and its sources appended.
    pub(crate) fn failed(what: impl Display, cause: &dyn StdError) -> Exit {
        Exit {
            code: FAILED,
            message: Some(format!("{what}: {}", chain(cause))),
        }
    }

    /// An I/O failure of an operation the tool does itself.
    pub(crate) fn io(what: impl Display, cause: io::Error) -> Exit {
        Exit::failed(what, &cause)
    }

    /// CMD could not be started: 127 when it does not exist, 126 when it
    /// exists but cannot be executed, as shells report it; 1 otherwise (no
    /// process could be created, for example).
    pub(crate) fn spawn(name: &str, cause: io::Error) -> Exit {
        #[cfg(unix)]
        let not_executable = cause.raw_os_error() == Some(rustix::io::Errno::NOEXEC.raw_os_error());
        #[cfg(not(unix))]
        let not_executable = false;
        let code = match cause.kind() {
            io::ErrorKind::NotFound => NOT_FOUND,
            io::ErrorKind::PermissionDenied => CANNOT_EXECUTE,
            _ if not_executable => CANNOT_EXECUTE,
            _ => FAILED,
        };
        Exit {
            code,
            ..Exit::io(format_args!("failed to run `{name}`"), cause)
        }
    }

    /// A refusal to do what was asked, for the reason `why`; nothing changed.
    pub(crate) fn refused(why: impl Display) -> Exit {
        Exit {
            code: FAILED,
            message: Some(why.to_string()),
        }
    }

    /// The lock on `path` was held and `--no-wait` was given.
    pub(crate) fn busy(path: impl Display) -> Exit {
        Exit {
            code: LOCK_BUSY,
            message: Some(format!("`{path}` is locked by another process")),
        }
    }

    /// CMD ended unsuccessfully with `status`: pass its code on, or
    /// 128 + the signal that killed it, as shells report it.
    pub(crate) fn command(status: ExitStatus) -> Exit {
        #[cfg(unix)]
        let signal = std::os::unix::process::ExitStatusExt::signal(&status);
        #[cfg(not(unix))]
        let signal: Option<i32> = None;
        let code = match (status.code(), signal) {
            (Some(code), _) => u8::try_from(code).ok().filter(|&c| c != 0),
            (None, Some(signal)) => u8::try_from(128 + signal).ok(),
            (None, None) => None,
        };
        Exit {
            code: code.unwrap_or(FAILED),
            message: None,
        }
    }

    /// Stopped by `signal` before anything was committed.
    pub(crate) fn signal(signal: i32) -> Exit {
        Exit {
            code: u8::try_from(128 + signal).unwrap_or(FAILED),
            message: Some(format!("stopped by signal {signal}; nothing was committed")),
        }
    }

    /// Reports the exit on standard error and turns it into the status.
    pub(crate) fn report(self) -> ExitCode {
        if let Some(message) = &self.message {
            eprintln!("txfile: {message}");
        }
        ExitCode::from(self.code)
    }
}

/// Library errors say what failed, on which path, and why in their message;
/// their `source()` goes on past the cause they already print, so the chain
/// prints each cause once. A timeout has its own code.
impl From<txfile::Error> for Exit {
    fn from(err: txfile::Error) -> Exit {
        let code = match err {
            txfile::Error::Timeout { .. } => LOCK_BUSY,
            _ => FAILED,
        };
        Exit {
            code,
            message: Some(chain(&err)),
        }
    }
}

/// `err` and its sources, joined by `: `.
fn chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
