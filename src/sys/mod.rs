//! Platform code, chosen once. Everything above this module is portable.
//!
//! Unix is supported. Elsewhere the crate compiles, and every operation
//! returns [`std::io::ErrorKind::Unsupported`].

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub(crate) use unix::*;

#[cfg(not(unix))]
mod unsupported;
#[cfg(not(unix))]
pub(crate) use unsupported::*;
