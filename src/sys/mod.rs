//! Platform code, chosen once. Everything above this module is portable.
//!
//! Unix and Windows are supported. Elsewhere the crate compiles, and every
//! operation returns [`std::io::ErrorKind::Unsupported`].

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(windows)]
mod windows;
#[cfg(windows)]
pub(crate) use windows::*;

#[cfg(not(any(unix, windows)))]
mod unsupported;
#[cfg(not(any(unix, windows)))]
pub(crate) use unsupported::*;
