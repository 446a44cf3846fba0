//! Library errors as the package's exceptions (`txfile.Error`,
//! `txfile.LockTimeout`, `txfile.ConflictError`, defined in Python in
//! `txfile/__init__.py`).

use std::error::Error as _;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

/// The exception for `err`: its class follows the variant, its message is
/// the library's (operation, path, cause), and `errno`, `filename` and
/// `filename2` are set where they apply.
pub(crate) fn to_py_err(py: Python<'_>, err: txfile::Error) -> PyErr {
    build(py, &err).unwrap_or_else(|e| e)
}

fn build(py: Python<'_>, err: &txfile::Error) -> PyResult<PyErr> {
    use txfile::Error as E;
    let path = |p: &camino::Utf8Path| (!p.as_str().is_empty()).then(|| p.to_string());
    let (class, errno, filename, filename2) = match err {
        E::Io {
            path: p, source, ..
        } => ("Error", source.raw_os_error(), path(p), None),
        E::Rename { from, to, source } => ("Error", source.raw_os_error(), path(from), path(to)),
        E::Timeout { path: p, .. } => {
            let errno: i32 = py.import("errno")?.getattr("ETIMEDOUT")?.extract()?;
            ("LockTimeout", Some(errno), path(p), None)
        }
        E::Conflict { path: p } => ("ConflictError", None, path(p), None),
        E::HeldByThisThread { path: p } => {
            let errno: i32 = py.import("errno")?.getattr("EDEADLK")?.extract()?;
            ("Error", Some(errno), path(p), None)
        }
        E::Aborted { path: p, .. } | E::InvalidPath { path: p, .. } | E::Symlink { path: p } => {
            ("Error", None, path(p), None)
        }
        _ => ("Error", None, None, None),
    };
    new_error(py, class, errno, &message(err), filename, filename2)
}

/// An instance of the package's exception `class`, built like an `OSError`:
/// `(errno, strerror, filename, winerror, filename2)`.
pub(crate) fn new_error(
    py: Python<'_>,
    class: &str,
    errno: Option<i32>,
    message: &str,
    filename: Option<String>,
    filename2: Option<String>,
) -> PyResult<PyErr> {
    let class = py.import("txfile")?.getattr(class)?;
    let value = class.call1((errno, message, filename, None::<i32>, filename2))?;
    Ok(PyErr::from_value(value))
}

/// The library's message followed by each cause it does not already
/// include, on one line.
fn message(err: &txfile::Error) -> String {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    message
}

/// A failure of work done without the GIL, turned into an exception once
/// the GIL is back.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The library failed.
    Txfile(txfile::Error),
    /// The library's `Read` or `Write` implementation failed (it wraps a
    /// library error).
    Io(std::io::Error),
    /// The transaction was already committed or rolled back.
    Finished,
}

impl From<txfile::Error> for Failure {
    fn from(err: txfile::Error) -> Failure {
        Failure::Txfile(err)
    }
}

impl From<std::io::Error> for Failure {
    fn from(err: std::io::Error) -> Failure {
        Failure::Io(err)
    }
}

impl Failure {
    pub(crate) fn into_py(self, py: Python<'_>) -> PyErr {
        match self {
            Failure::Txfile(err) => to_py_err(py, err),
            Failure::Io(err) => from_io(py, err),
            Failure::Finished => {
                PyValueError::new_err("the transaction is already committed or rolled back")
            }
        }
    }
}

/// The library error an `io::Error` from its `Read`/`Write` carries.
fn from_io(py: Python<'_>, err: std::io::Error) -> PyErr {
    if err.get_ref().is_none() {
        return PyErr::from(err);
    }
    let kind = err.kind();
    match err
        .into_inner()
        .map(|inner| inner.downcast::<txfile::Error>())
    {
        Some(Ok(err)) => to_py_err(py, *err),
        Some(Err(other)) => PyErr::from(std::io::Error::new(kind, other)),
        None => PyErr::from(std::io::Error::from(kind)),
    }
}
