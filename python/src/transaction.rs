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
use crate::errors::Failure;
use crate::mutant::{self, Mutant};

#[ouroboros::self_referencing]
struct OwnedInner {
    file: txfile::TxFile,
    #[borrows(file)]
    #[covariant]
    tx: Option<txfile::Transaction<'this>>,
}

/// A library transaction that owns (a clone of) its handle, so it can live
/// in a Python object or cross a `Python::detach`. Dropping it unfinished
/// rolls back.
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

    fn path(&self) -> &camino::Utf8Path {
        self.0.borrow_file().path()
    }

    fn is_open(&self) -> bool {
        self.0.borrow_tx().is_some()
    }

    /// Runs `f` on the transaction unless it is finished.
    pub(crate) fn with<R, E: Into<Failure>>(
        &mut self,
        f: impl FnOnce(&mut txfile::Transaction<'_>) -> Result<R, E>,
    ) -> Result<R, Failure> {
        self.0.with_tx_mut(|tx| match tx {
            Some(tx) => f(tx).map_err(Into::into),
            None => Err(Failure::Finished),
        })
    }

    /// Commits the transaction or, with `commit == false`, rolls it back;
    /// either way it is finished afterwards.
    pub(crate) fn finish(&mut self, commit: bool) -> Result<(), Failure> {
        self.0.with_tx_mut(|tx| match tx.take() {
            Some(tx) if commit => tx.commit().map_err(Failure::from),
            Some(tx) => {
                tx.rollback();
                Ok(())
            }
            None => Err(Failure::Finished),
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
    state: Mutex<Owned>,
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
            state: Mutex::new(owned),
            old: OnceLock::new(),
        }
    }

    /// The transaction. Take it without the GIL: another thread may hold it
    /// while it writes.
    fn state(&self) -> MutexGuard<'_, Owned> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
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
            self.state().with(|tx| {
                tx.old_reader()
                    .map(|mut reader| {
                        let mut bytes = Vec::new();
                        reader.read_to_end(&mut bytes).map(|_| bytes)
                    })
                    .transpose()
            })
        });
        let old = read
            .map_err(|e| e.into_py(py))?
            .map(|bytes| PyBytes::new(py, &bytes).unbind());
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
        py.detach(|| self.state().with(|tx| tx.write_all(data)))
            .map_err(|e| e.into_py(py))?;
        Ok(data.len())
    }

    /// Makes the new contents the target's, atomically and durably, and
    /// releases the lock.
    fn commit(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.state().finish(true))
            .map_err(|e| e.into_py(py))
    }

    /// Abandons the transaction: the target is untouched and the lock
    /// released.
    fn rollback(&self, py: Python<'_>) -> PyResult<()> {
        py.detach(|| self.state().finish(false))
            .map_err(|e| e.into_py(py))
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
        match py.detach(|| self.state().finish(commit)) {
            Ok(()) | Err(Failure::Finished) => Ok(false),
            Err(e) => Err(e.into_py(py)),
        }
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let state = if self.state().is_open() {
            "open"
        } else {
            "finished"
        };
        let path = PyString::new(py, &self.path).repr()?;
        Ok(format!("<txfile.Transaction {path} {state}>"))
    }
}
