//! `txfile.Batch`: all-or-nothing updates of several files.

use camino::Utf8PathBuf;
use pyo3::exceptions::{PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString};

use crate::args;
use crate::errors::{Raised, to_py_err};

/// Several files updated as one.
#[pyclass(module = "txfile", name = "Batch", frozen)]
#[derive(Debug)]
pub(crate) struct Batch {
    batch: txfile::Batch,
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
        let options = args::options(timeout, durability, lock_style, symlinks, mode)?;
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
        Ok(Batch { batch })
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
    /// their current contents, as one all-or-nothing commit.
    #[pyo3(signature = (r#fn, /))]
    fn update(&self, py: Python<'_>, r#fn: Bound<'_, PyAny>) -> PyResult<()> {
        let function = r#fn.unbind();
        let count = self.batch.members().len();
        let mut raised = None;
        let result = py.detach(|| {
            self.batch.update(|old| {
                Python::attach(|py| {
                    let old = old
                        .iter()
                        .map(|member| member.map(|bytes| PyBytes::new(py, bytes)));
                    let new = PyList::new(py, old)
                        .and_then(|old| function.bind(py).call1((old,)))
                        .and_then(|new| contents(&new, count));
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

    /// Every member's contents (None for a missing file), as one consistent
    /// state of the batch.
    fn read<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let contents = py
            .detach(|| self.batch.read())
            .map_err(|e| to_py_err(py, e))?;
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
