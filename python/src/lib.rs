//! The `txfile._txfile` extension module: the Rust core of the `txfile`
//! Python package. The package itself (`python/txfile/__init__.py`) defines
//! the exception classes and re-exports what is defined here.
//!
//! Every call that may wait for a lock or touch the disk runs with the GIL
//! released (`Python::detach`), so other Python threads keep running; update
//! functions written in Python are called with the GIL taken back.

mod args;
mod batch;
mod errors;
mod file;
mod mutant;
mod transaction;
mod wait;

use pyo3::prelude::*;

#[pymodule]
fn _txfile(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<file::TxFile>()?;
    m.add_class::<transaction::Transaction>()?;
    m.add_class::<batch::Batch>()?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    #[cfg(feature = "mutants")]
    m.add_function(pyo3::wrap_pyfunction!(mutant::_set_mutant, m)?)?;
    Ok(())
}
