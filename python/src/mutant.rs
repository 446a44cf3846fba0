//! Deliberately broken variants of the binding, compiled only with the
//! `mutants` feature and chosen at run time with `_txfile._set_mutant`, so
//! that CI can show each test fails when the behaviour it guards breaks
//! (see `.ci/run`). A normal build has no mutant and no `_set_mutant`.

/// A deliberate bug.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mutant {
    /// The real thing.
    None,
    /// Wait for locks with the GIL held.
    HoldGil,
    /// Never run Python's signal handlers between wait slices.
    NoSignalCheck,
    /// Leaving a `with` block commits even when the block raised.
    ExitAlwaysCommits,
    /// An exception of an update function becomes an `OSError`.
    SwallowUpdateError,
    /// `update` releases the lock while its function runs, then writes.
    UnlockedCallback,
}

#[cfg(feature = "mutants")]
mod imp {
    use std::sync::atomic::{AtomicU8, Ordering};

    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;

    use super::Mutant;

    const ALL: [(&str, Mutant); 6] = [
        ("none", Mutant::None),
        ("hold-gil", Mutant::HoldGil),
        ("no-signal-check", Mutant::NoSignalCheck),
        ("exit-always-commits", Mutant::ExitAlwaysCommits),
        ("swallow-update-error", Mutant::SwallowUpdateError),
        ("unlocked-callback", Mutant::UnlockedCallback),
    ];

    static ACTIVE: AtomicU8 = AtomicU8::new(0);

    pub(crate) fn active() -> Mutant {
        ALL[usize::from(ACTIVE.load(Ordering::Relaxed))].1
    }

    /// Selects a mutant by name for this process.
    #[pyfunction]
    pub(crate) fn _set_mutant(name: &str) -> PyResult<()> {
        let index = ALL
            .iter()
            .position(|(known, _)| *known == name)
            .ok_or_else(|| PyValueError::new_err(format!("no mutant named {name:?}")))?;
        ACTIVE.store(index as u8, Ordering::Relaxed);
        Ok(())
    }
}

#[cfg(feature = "mutants")]
pub(crate) use imp::{_set_mutant, active};

#[cfg(not(feature = "mutants"))]
pub(crate) fn active() -> Mutant {
    Mutant::None
}
