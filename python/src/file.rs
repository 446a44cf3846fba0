//! `txfile.TxFile`: a handle on one target file.

use std::io::Write;
use std::time::Duration;

use pyo3::exceptions::PyOSError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString};

use crate::errors::to_py_err;
use crate::mutant::{self, Mutant};
use crate::transaction::{Owned, Transaction};
use crate::{args, wait};

/// A handle on one target file, for locked, atomic, durable updates.
#[pyclass(module = "txfile", name = "TxFile", frozen)]
#[derive(Debug)]
pub(crate) struct TxFile {
    /// Opened with a timeout of one wait slice (see `wait`).
    file: txfile::TxFile,
    /// The user's timeout: `None` waits as long as it takes.
    timeout: Option<Duration>,
}

impl TxFile {
    fn begin_owned(&self, py: Python<'_>) -> PyResult<Owned> {
        wait::locked(py, self.timeout, self.file.path(), || {
            Owned::begin(self.file.clone())
        })
    }

    /// Reads the old contents, calls `function` on them and commits what
    /// it returns.
    fn update_in(
        &self,
        py: Python<'_>,
        owned: &mut Owned,
        function: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        // Read without the GIL; the library keeps the bytes, so the second
        // call, which makes them a Python object, reads nothing.
        py.detach(|| owned.with(|tx| tx.old_bytes().map(|_| ())))
            .map_err(|e| e.into_py(py))?;
        let old = owned
            .with(|tx| {
                let old = tx.old_bytes()?;
                Ok::<_, txfile::Error>(old.map(|bytes| PyBytes::new(py, bytes)))
            })
            .map_err(|e| e.into_py(py))?;
        let new = match function.call1((old,)) {
            Ok(new) => new,
            Err(err) if mutant::active() == Mutant::SwallowUpdateError => {
                return Err(PyOSError::new_err(err.to_string()));
            }
            Err(err) => return Err(err),
        };
        let data = args::bytes_like(&new, "the update function's result")?;
        if mutant::active() == Mutant::UnlockedCallback {
            // The lock is let go of while the function runs (here: after).
            let _ = owned.finish(false);
            *owned = self.begin_owned(py)?;
        }
        let data: &[u8] = &data;
        py.detach(|| {
            owned.with(|tx| tx.write_all(data))?;
            owned.finish(true)
        })
        .map_err(|e| e.into_py(py))
    }
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
        let (options, timeout) = args::options(timeout, durability, lock_style, symlinks, mode)?;
        let options = options.timeout(wait::slice(timeout));
        let path = args::target_path(py, path)?;
        let file = py
            .detach(|| options.open(&path))
            .map_err(|e| to_py_err(py, e))?;
        Ok(TxFile { file, timeout })
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

    /// Replaces the contents with `fn(old)`, under the lock. If `fn`
    /// raises, its exception propagates and nothing is written.
    #[pyo3(signature = (r#fn, /))]
    fn update(&self, py: Python<'_>, r#fn: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut owned = self.begin_owned(py)?;
        let result = self.update_in(py, &mut owned, r#fn);
        // What did not commit rolls back here: its temporary file is
        // removed, without the GIL.
        py.detach(|| drop(owned));
        result
    }

    /// Starts a transaction, waiting for the lock as long as the timeout
    /// allows.
    fn begin(&self, py: Python<'_>) -> PyResult<Transaction> {
        self.begin_owned(py).map(Transaction::new)
    }

    /// Starts a transaction if the lock is free right now, else returns None.
    fn try_begin(&self, py: Python<'_>) -> PyResult<Option<Transaction>> {
        let owned = py
            .detach(|| Owned::try_begin(self.file.clone()))
            .map_err(|e| to_py_err(py, e))?;
        Ok(owned.map(Transaction::new))
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let path = PyString::new(py, self.file.path().as_str()).repr()?;
        Ok(format!("txfile.TxFile({path})"))
    }
}
