//! Arguments from Python: options, paths and bytes-like contents.

use std::borrow::Cow;
use std::path::PathBuf;
use std::time::Duration;

use camino::Utf8PathBuf;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyByteArray, PyBytes, PyString};
use txfile::{Durability, LockStyle, Options, Symlinks};

use crate::errors::new_error;

/// The keyword arguments shared by `TxFile` and `Batch`, as `Options` and
/// the timeout (which the caller applies: see `wait`).
pub(crate) fn options(
    timeout: Option<f64>,
    durability: &str,
    lock_style: &str,
    symlinks: &str,
    mode: Option<u32>,
) -> PyResult<(Options, Option<Duration>)> {
    let mut options = Options::new();
    let timeout = match timeout {
        Some(seconds) if seconds.is_nan() || seconds < 0.0 => {
            return Err(PyValueError::new_err(format!(
                "timeout must be a number of seconds >= 0 or None, not {seconds}"
            )));
        }
        // An infinite timeout is no timeout: wait as long as it takes.
        Some(seconds) => Duration::try_from_secs_f64(seconds).ok(),
        None => None,
    };
    options = options.durability(match durability {
        "full" => Durability::Full,
        "none" => Durability::None,
        other => return Err(choice("durability", other, "'full' or 'none'")),
    });
    options = options.lock_style(match lock_style {
        "flock" => LockStyle::Flock,
        "posix" => LockStyle::Posix,
        other => return Err(choice("lock_style", other, "'flock' or 'posix'")),
    });
    options = options.symlinks(match symlinks {
        "follow" => Symlinks::Follow,
        "replace" => Symlinks::Replace,
        "reject" => Symlinks::Reject,
        other => return Err(choice("symlinks", other, "'follow', 'replace' or 'reject'")),
    });
    if let Some(mode) = mode {
        if mode > 0o7777 {
            return Err(PyValueError::new_err(format!(
                "mode must be permission bits (at most 0o7777), not {mode:#o}"
            )));
        }
        options = set_mode(options, mode)?;
    }
    Ok((options, timeout))
}

#[cfg(unix)]
fn set_mode(options: Options, mode: u32) -> PyResult<Options> {
    Ok(options.mode(mode))
}

#[cfg(not(unix))]
fn set_mode(_options: Options, _mode: u32) -> PyResult<Options> {
    Err(PyValueError::new_err("mode is only supported on Unix"))
}

fn choice(name: &str, got: &str, allowed: &str) -> PyErr {
    PyValueError::new_err(format!("{name} must be {allowed}, not '{got}'"))
}

/// A target path from a `str`, `bytes` or `os.PathLike`. The library names
/// files by UTF-8 paths; any other name is refused with `txfile.Error`.
pub(crate) fn target_path(py: Python<'_>, path: &Bound<'_, PyAny>) -> PyResult<Utf8PathBuf> {
    let path = fspath(path)?;
    Utf8PathBuf::from_path_buf(path).map_err(|path| {
        let shown = path.to_string_lossy().into_owned();
        new_error(
            py,
            "Error",
            None,
            &format!("cannot use `{shown}` as a target: the path is not valid UTF-8"),
            Some(shown),
            None,
        )
        .unwrap_or_else(|e| e)
    })
}

/// `os.fspath(path)` as a `PathBuf`: from `str` (non-UTF-8 names arrive
/// with surrogate escapes and are encoded back) or, on Unix, from `bytes`.
fn fspath(path: &Bound<'_, PyAny>) -> PyResult<PathBuf> {
    let path = path.py().import("os")?.getattr("fspath")?.call1((path,))?;
    if let Ok(bytes) = path.cast::<PyBytes>() {
        return bytes_path(bytes.as_bytes());
    }
    path.extract()
}

#[cfg(unix)]
fn bytes_path(bytes: &[u8]) -> PyResult<PathBuf> {
    use std::os::unix::ffi::OsStrExt;
    Ok(PathBuf::from(std::ffi::OsStr::from_bytes(bytes)))
}

#[cfg(not(unix))]
fn bytes_path(_bytes: &[u8]) -> PyResult<PathBuf> {
    Err(PyTypeError::new_err(
        "bytes paths are only supported on Unix",
    ))
}

/// The bytes of a bytes-like object (`bytes`, `bytearray`, `memoryview` or
/// anything else with the buffer protocol); `what` names it in the
/// `TypeError` for anything else.
pub(crate) fn bytes_like<'a>(data: &'a Bound<'_, PyAny>, what: &str) -> PyResult<Cow<'a, [u8]>> {
    if let Ok(bytes) = data.cast::<PyBytes>() {
        return Ok(Cow::Borrowed(bytes.as_bytes()));
    }
    if let Ok(array) = data.cast::<PyByteArray>() {
        return Ok(Cow::Owned(array.to_vec()));
    }
    let refused = || {
        let name = data
            .get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |name| name.to_string());
        PyTypeError::new_err(format!("{what} must be a bytes-like object, not {name}"))
    };
    if data.is_instance_of::<PyString>() {
        return Err(refused());
    }
    let view = data
        .py()
        .import("builtins")?
        .getattr("memoryview")?
        .call1((data,))
        .map_err(|_| refused())?;
    let bytes = view.call_method0("tobytes")?;
    Ok(Cow::Owned(bytes.cast::<PyBytes>()?.as_bytes().to_vec()))
}
