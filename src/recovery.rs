//! Recovery of every batch journal left in a directory: the public
//! [`recover`] (`txfile recover` on the command line). Each journal is
//! recovered the way `begin` of one of its members does it (`journal.rs`).

use std::path::Path;

use crate::error::Op;
use crate::{Error, Options, journal};

/// Completes or undoes every batch commit whose journal a crash left in
/// `dir`, with default [`Options`]; returns how many journals it found.
/// The next `begin` on any member does the same for that member's batch,
/// so calling this is never needed for correctness: it only cleans up
/// early, for example at startup.
///
/// # Errors
///
/// [`Error::Io`] when `dir` cannot be listed or a step of recovery fails;
/// [`Error::ForeignJournal`] when a file under a journal's name is not a
/// journal txfile can prove it wrote (it is left alone; every other journal
/// was still recovered).
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
/// assert_eq!(txfile::recover(dir)?, 0);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn recover(dir: impl AsRef<Path>) -> Result<usize, Error> {
    Options::new().recover(dir)
}

impl Options {
    /// [`recover`] with these options (lock style, filesystem).
    ///
    /// # Errors
    ///
    /// As for [`recover`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let found = txfile::Options::new().lock_style(txfile::LockStyle::Posix).recover(dir)?;
    /// assert_eq!(found, 0);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn recover(&self, dir: impl AsRef<Path>) -> Result<usize, Error> {
        let dir = crate::handle::utf8_path(dir.as_ref())?;
        let fs = self
            .fs
            .clone()
            .unwrap_or_else(|| std::sync::Arc::new(crate::fs::real::RealFs::new(self.mutant)));
        let handle = fs
            .open_dir(dir)
            .map_err(|e| Error::io(Op::ListDir, dir, e))?;
        let names = handle.list().map_err(|e| Error::io(Op::ListDir, dir, e))?;
        let mut found = 0;
        let mut foreign = Vec::new();
        for name in names {
            if let Some(target) = crate::names::journal_target(&name) {
                let path = dir.join(&name);
                let meta = handle
                    .lstat(&name)
                    .map_err(|e| Error::io(Op::Stat, &path, e))?;
                if meta.is_some_and(|meta| {
                    journal::classify(fs.as_ref(), &meta) == journal::Found::Foreign
                }) {
                    foreign.push(path);
                    continue;
                }
                // `begin` recovers the journal before anything else (it may
                // be gone already: recovering another member's finished it).
                self.open(dir.join(target))?.begin()?.rollback();
                found += 1;
            }
        }
        match foreign.first() {
            None => Ok(found),
            Some(path) => Err(Error::ForeignJournal {
                path: path.clone(),
                count: foreign.len(),
            }),
        }
    }
}
