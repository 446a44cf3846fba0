//! `txfile.Batch`: all-or-nothing updates of several files.

use std::io::Write;
use std::time::Duration;

use camino::{Utf8Path, Utf8PathBuf};
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::errors::{Failure, to_py_err};
use crate::{args, wait};

/// A batch transaction that owns (a clone of) its batch, so that it can
/// cross a `Python::detach`.
#[ouroboros::self_referencing]
struct OwnedBatch {
    batch: txfile::Batch,
    #[borrows(batch)]
    #[covariant]
    tx: Option<txfile::BatchTransaction<'this>>,
}

/// Several files updated as one.
#[pyclass(module = "txfile", name = "Batch", frozen)]
#[derive(Debug)]
pub(crate) struct Batch {
    /// Members opened with a timeout of one wait slice (see `wait`).
    batch: txfile::Batch,
    /// The user's timeout: `None` waits as long as it takes.
    timeout: Option<Duration>,
}

impl Batch {
    fn first_path(&self) -> &Utf8Path {
        self.batch.members()[0].path()
    }
}

#[pymethods]
impl Batch {
    #[new]
    #[pyo3(signature = (paths, *, timeout=None, durability="full", lock_style="flock", symlinks="follow", mode=None))]
    fn new(
        py: Python<'_>,
        paths: &Bound<'_, PyAny>,
        timeout: Option<f64>,
        durability: &str,
        lock_style: &str,
        symlinks: &str,
        mode: Option<u32>,
    ) -> PyResult<Self> {
        let (options, timeout) = args::options(timeout, durability, lock_style, symlinks, mode)?;
        let options = options.timeout(wait::slice(timeout));
        // A single path is iterable too (characters or bytes), so refuse it
        // rather than open one target per character.
        let fspath = py.import("os")?.getattr("PathLike")?;
        if paths.is_instance_of::<PyString>()
            || paths.is_instance_of::<PyBytes>()
            || paths.is_instance(&fspath)?
        {
            return Err(PyTypeError::new_err(
                "Batch takes a list of paths, not a single path",
            ));
        }
        let paths = paths
            .try_iter()?
            .map(|path| args::target_path(py, &path?))
            .collect::<PyResult<Vec<Utf8PathBuf>>>()?;
        let batch = py
            .detach(|| {
                let files = paths
                    .iter()
                    .map(|path| options.open(path))
                    .collect::<Result<Vec<_>, _>>()?;
                txfile::Batch::new(files)
            })
            .map_err(|e| to_py_err(py, e))?;
        Ok(Batch { batch, timeout })
    }

    /// The members' paths, in the order given.
    #[getter]
    fn paths(&self) -> Vec<String> {
        self.batch
            .members()
            .iter()
            .map(|member| member.path().to_string())
            .collect()
    }

    /// Replaces every member's contents with what `fn(old)` returns for
    /// their current contents, as one all-or-nothing commit. If `fn`
    /// raises, its exception propagates and nothing is written.
    #[pyo3(signature = (r#fn, /))]
    fn update(&self, py: Python<'_>, r#fn: &Bound<'_, PyAny>) -> PyResult<()> {
        let mut owned = wait::locked(py, self.timeout, self.first_path(), || {
            OwnedBatch::try_new(self.batch.clone(), |batch| batch.begin().map(Some))
        })?;
        let result = update_in(py, &mut owned, r#fn);
        // What did not commit rolls back here, without the GIL.
        py.detach(|| drop(owned));
        result
    }

    /// Every member's contents (None for a missing file), as one consistent
    /// state of the batch.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let contents = wait::locked(py, self.timeout, self.first_path(), || self.batch.read())?;
        PyList::new(
            py,
            contents
                .iter()
                .map(|member| member.as_deref().map(|bytes| PyBytes::new(py, bytes))),
        )
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        let paths = PyList::new(py, self.paths())?.repr()?;
        Ok(format!("txfile.Batch({paths})"))
    }
}

/// Reads every member's old contents, calls `function` on them and
/// commits what it returns.
fn update_in(py: Python<'_>, owned: &mut OwnedBatch, function: &Bound<'_, PyAny>) -> PyResult<()> {
    // Read without the GIL; the library keeps the bytes, so the second
    // pass, which makes them Python objects, reads nothing.
    py.detach(|| {
        owned.with_tx_mut(|tx| {
            tx.iter_mut()
                .flat_map(|tx| tx.members_mut())
                .try_for_each(|member| member.old_bytes().map(|_| ()))
        })
    })
    .map_err(|e| to_py_err(py, e))?;
    let old = owned.with_tx_mut(|tx| {
        tx.iter_mut()
            .flat_map(|tx| tx.members_mut())
            .map(|member| {
                let old = member.old_bytes()?;
                Ok(old.map(|bytes| PyBytes::new(py, bytes)))
            })
            .collect::<Result<Vec<_>, txfile::Error>>()
    });
    let old = PyList::new(py, old.map_err(|e| to_py_err(py, e))?)?;
    let count = owned.borrow_batch().members().len();
    let new = contents(&function.call1((old,))?, count)?;
    py.detach(|| {
        owned.with_tx_mut(|tx| {
            let Some(mut tx) = tx.take() else {
                return Err(Failure::Finished);
            };
            for (member, contents) in tx.members_mut().iter_mut().zip(&new) {
                member.write_all(contents)?;
            }
            Ok(tx.commit()?)
        })
    })
    .map_err(|e| e.into_py(py))
}

/// The update function's result: one bytes-like object per member.
fn contents(new: &Bound<'_, PyAny>, count: usize) -> PyResult<Vec<Vec<u8>>> {
    let new = new
        .try_iter()
        .map_err(|_| PyTypeError::new_err("the batch update function must return a list of bytes"))?
        .map(|member| {
            let member = member?;
            args::bytes_like(&member, "each new content").map(|bytes| bytes.into_owned())
        })
        .collect::<PyResult<Vec<_>>>()?;
    if new.len() != count {
        return Err(PyValueError::new_err(format!(
            "the batch update function returned {} contents for {count} files",
            new.len()
        )));
    }
    Ok(new)
}
