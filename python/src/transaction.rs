//! `txfile.Transaction`: one locked read-modify-write, owned by Python.
//!
//! The library's `Transaction<'a>` borrows its `TxFile`; a Python object
//! cannot carry a borrow, so each transaction owns a clone of the handle (an
//! `Arc` inside) in one self-referential struct with the transaction that
//! borrows it.

use std::io::{Read, Write};
use std::sync::{Mutex, MutexGuard, OnceLock, PoisonError};

use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyType};

use crate::args;
use crate::errors::{finished, from_io, to_py_err};
use crate::mutant::{self, Mutant};

#[ouroboros::self_referencing]
struct OwnedInner {
    file: txfile::TxFile,
    #[borrows(file)]
    #[covariant]
    tx: Option<txfile::Transaction<'this>>,
}

/// A library transaction that owns (a clone of) its handle, so it can live
/// in a Python object or cross a `Python::detach`.
pub(crate) struct Owned(OwnedInner);

impl Owned {
    /// Starts a transaction, waiting for the lock as long as `file`'s
    /// timeout allows (one slice: see `wait`).
    pub(crate) fn begin(file: txfile::TxFile) -> Result<Owned, txfile::Error> {
        OwnedInner::try_new(file, |file| file.begin().map(Some)).map(Owned)
    }

    /// Starts a transaction if the lock is free right now.
    pub(crate) fn try_begin(file: txfile::TxFile) -> Result<Option<Owned>, txfile::Error> {
        let owned = OwnedInner::try_new(file, |file| file.try_begin())?;
        Ok(owned.borrow_tx().is_some().then_some(Owned(owned)))
    }

    pub(crate) fn path(&self) -> &camino::Utf8Path {
        self.0.borrow_file().path()
    }

    /// Runs `f` on the transaction (`None` cannot happen: only `finish`
    /// ends it, and that consumes `self`).
    pub(crate) fn with<R>(
        &mut self,
        f: impl FnOnce(&mut txfile::Transaction<'_>) -> R,
    ) -> Option<R> {
        self.0.with_tx_mut(|tx| tx.as_mut().map(f))
    }

    /// Makes `data` the new contents and commits.
    pub(crate) fn commit_with(
        mut self,
        data: &[u8],
    ) -> Result<Result<(), txfile::Error>, std::io::Error> {
        if let Some(written) = self.with(|tx| tx.write_all(data)) {
            written?;
        }
        Ok(self.finish(true))
    }

    /// Commits the transaction or, with `commit == false`, rolls it back.
    pub(crate) fn finish(mut self, commit: bool) -> Result<(), txfile::Error> {
        self.0.with_tx_mut(|tx| match tx.take() {
            Some(tx) if commit => tx.commit(),
            _ => Ok(()),
        })
    }
}

impl std::fmt::Debug for Owned {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("Owned").field(&self.path()).finish()
    }
}

/// One locked read-modify-write of a `TxFile`'s target.
#[pyclass(module = "txfile", name = "Transaction", frozen)]
pub(crate) struct Transaction {
    path: String,
    /// `None` once committed or rolled back.
    state: Mutex<Option<Owned>>,
    /// The old contents, read on first use of `old`.
    old: OnceLock<Option<Py<PyBytes>>>,
}

impl std::fmt::Debug for Transaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transaction")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Transaction {
    pub(crate) fn new(owned: Owned) -> Transaction {
        Transaction {
            path: owned.path().to_string(),
            state: Mutex::new(Some(owned)),
            old: OnceLock::new(),
        }
    }

    fn state(&self) -> MutexGuard<'_, Option<Owned>> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the open transaction; called without the GIL.
    fn with_open<R>(
        &self,
        f: impl FnOnce(&mut txfile::Transaction<'_>) -> R,
    ) -> Result<R, Finished> {
        self.state()
            .as_mut()
            .and_then(|owned| owned.with(f))
            .ok_or(Finished)
    }

    /// Ends the transaction: commits it or, with `commit == false`, rolls
    /// it back. Called without the GIL.
    fn finish(&self, commit: bool) -> Result<Result<(), txfile::Error>, Finished> {
        let owned = self.state().take().ok_or(Finished)?;
        Ok(owned.finish(commit))
    }
}

/// The transaction was already committed or rolled back.
#[derive(Debug)]
struct Finished;

impl From<Finished> for PyErr {
    fn from(_: Finished) -> PyErr {
        finished()
    }
}

#[pymethods]
impl Transaction {
    /// The target's path.
    #[getter]
    fn path(&self) -> &str {
        &self.path
    }

    /// The contents when the transaction began, or None when the file did
    /// not exist. Read on first use.
    #[getter]
    fn old(&self, py: Python<'_>) -> PyResult<Option<Py<PyBytes>>> {
        if let Some(old) = self.old.get() {
            return Ok(old.as_ref().map(|bytes| bytes.clone_ref(py)));
        }
        let read = py.detach(|| {
            self.with_open(|tx| {
                tx.old_reader().map(|mut reader| {
                    let mut bytes = Vec::new();
                    reader.read_to_end(&mut bytes).map(|_| bytes)
                })
            })
        })?;
        let old = match read {
            Some(Ok(bytes)) => Some(PyBytes::new(py, &bytes).unbind()),
            Some(Err(e)) => return Err(from_io(py, e)),
            None => None,
        };
        // Another thread may have read it meanwhile: both read the same
        // version, so either copy will do.
        let old = self.old.get_or_init(|| old);
        Ok(old.as_ref().map(|bytes| bytes.clone_ref(py)))
    }

    /// Appends `data` to the new contents; returns its length.
    #[pyo3(signature = (data, /))]
    fn write(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<usize> {
        let data = args::bytes_like(data, "data")?;
        let data: &[u8] = &data;
        py.detach(|| self.with_open(|tx| tx.write_all(data)))?
            .map_err(|e| from_io(py, e))?;
        Ok(data.len())
    }

    /// Makes the new contents the target's, atomically and durably, and
    /// releases the lock.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.finish(true))?
            .map_err(|e| to_py_err(py, e))
    }

    /// Abandons the transaction: the target is untouched and the lock
    /// released.
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.finish(false))?
            .map_err(|e| to_py_err(py, e))
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    /// Commits when the block ends normally, rolls back when it raises;
    /// does nothing if the block already committed or rolled back.
    fn __exit__(
        &self,
        py: Python<'_>,
        exc_type: Option<&Bound<'_, PyType>>,
        _exc_value: Option<&Bound<'_, PyAny>>,
        _traceback: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<bool> {
        let commit = exc_type.is_none() || mutant::active() == Mutant::ExitAlwaysCommits;
        // Already finished by the block itself: nothing left to do.
        if let Ok(result) = py.detach(|| self.finish(commit)) {
            result.map_err(|e| to_py_err(py, e))?;
        }
        Ok(false)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let state = if self.state().is_some() {
            "open"
        } else {
            "finished"
        };
        let path = PyString::new(py, &self.path).repr()?;
        Ok(format!("<txfile.Transaction {path} {state}>"))
    }
}
