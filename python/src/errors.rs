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

/// Turns an `io::Error` from the library's `Read`/`Write` implementations
/// back into the library error it carries.
pub(crate) fn from_io(py: Python<'_>, err: std::io::Error) -> PyErr {
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

/// Using a transaction after its commit or rollback.
pub(crate) fn finished() -> PyErr {
    PyValueError::new_err("the transaction is already committed or rolled back")
}
