//! Platform code, chosen once. Everything above this module is portable.
//!
//! Unix and Windows are supported. Elsewhere the crate compiles, and every
//! operation returns [`std::io::ErrorKind::Unsupported`].

#[cfg(any(unix, windows))]
mod held;
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

/// Where the directory open as `dir` is now, as far as the platform can
/// tell from the descriptor alone (Linux: the `/proc/self/fd` link); the
/// caller checks that the answer names `dir`. `None` where it cannot tell.
#[cfg(not(target_os = "linux"))]
pub(crate) fn dir_path_now(_dir: &std::fs::File) -> Option<camino::Utf8PathBuf> {
    None
}
