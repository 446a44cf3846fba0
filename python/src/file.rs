//! `txfile.TxFile`: a handle on one target file.

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::args;
use crate::errors::{Raised, to_py_err};
use crate::transaction::Transaction;

/// A handle on one target file, for locked, atomic, durable updates.
#[pyclass(module = "txfile", name = "TxFile", frozen)]
#[derive(Debug)]
pub(crate) struct TxFile {
    file: txfile::TxFile,
}

#[pymethods]
impl TxFile {
    #[new]
    #[pyo3(signature = (path, *, timeout=None, durability="full", lock_style="flock", symlinks="follow", mode=None))]
    fn new(
        py: Python<'_>,
        path: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        durability: &str,
        lock_style: &str,
        symlinks: &str,
        mode: Option<u32>,
    ) -> PyResult<Self> {
        let options = args::options(timeout, durability, lock_style, symlinks, mode)?;
        let path = args::target_path(py, path)?;
        let file = py
            .detach(|| options.open(&path))
            .map_err(|e| to_py_err(py, e))?;
        Ok(TxFile { file })
    }

    /// The file this handle replaces, absolute, after resolving symbolic
    /// links under `symlinks="follow"`.
    #[getter]
    fn path(&self) -> &str {
        self.file.path().as_str()
    }

    /// The guard file whose lock serialises transactions on this target.
    #[getter]
    fn guard_path(&self) -> &str {
        self.file.guard_path().as_str()
    }

    /// The current contents, or None when the file does not exist. Takes no
    /// lock: the result is one complete committed version.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Option<Bound<'py, PyBytes>>> {
        let contents = py
            .detach(|| self.file.read())
            .map_err(|e| to_py_err(py, e))?;
        Ok(contents.map(|bytes| PyBytes::new(py, &bytes)))
    }

    /// Replaces the contents with `fn(old)`, under the lock.
    #[pyo3(signature = (r#fn, /))]
    fn update(&self, py: Python<'_>, r#fn: Bound<'_, PyAny>) -> PyResult<()> {
        let function = r#fn.unbind();
        let mut raised = None;
        let result = py.detach(|| {
            self.file.update(|old| {
                Python::attach(|py| {
                    let old = old.map(|bytes| PyBytes::new(py, bytes));
                    let new = function.bind(py).call1((old,)).and_then(|new| {
                        args::bytes_like(&new, "the update function's result")
                            .map(|bytes| bytes.into_owned())
                    });
                    new.map_err(|e| {
                        raised = Some(e);
                        Raised
                    })
                })
            })
        });
        match (result, raised) {
            (_, Some(err)) => Err(err),
            (Ok(()), None) => Ok(()),
            (Err(err), None) => Err(to_py_err(py, err)),
        }
    }

    /// Starts a transaction, waiting for the lock as long as the timeout
    /// allows.
    fn begin(&self, py: Python<'_>) -> PyResult<Transaction> {
        let file = self.file.clone();
        py.detach(|| Transaction::start(file, |file| file.begin().map(Some)))
            .map_err(|e| to_py_err(py, e))?
            .ok_or_else(|| PyRuntimeError::new_err("the lock was not taken"))
    }

    /// Starts a transaction if the lock is free right now, else returns None.
    fn try_begin(&self, py: Python<'_>) -> PyResult<Option<Transaction>> {
        let file = self.file.clone();
        py.detach(|| Transaction::start(file, |file| file.try_begin()))
            .map_err(|e| to_py_err(py, e))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let path = PyString::new(py, self.file.path().as_str()).repr()?;
        Ok(format!("txfile.TxFile({path})"))
    }
}
