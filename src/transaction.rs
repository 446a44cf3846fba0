//! `Transaction`: the old contents in, the new contents out, under the lock.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Op;
use crate::fs::ReadFile;
use crate::guard::Locked;
use crate::handle::Handle;
pub use crate::state::Transaction;
use crate::state::{BUFFER, NewContents, OldFile};
use crate::{Error, commit};

impl<'a> Transaction<'a> {
    /// With the lock held and no journal pending: recover an interrupted
    /// in-place commit and sweep if the guard asks for it, then open the
    /// old version.
    pub(crate) fn prepare(file: &'a Handle, mut locked: Locked) -> Result<Self, Error> {
        if locked.needs_sweep() {
            // Before the sweep, which would take an interrupted in-place
            // commit's staged file for a stale temporary file.
            crate::inplace::recover(file)?;
            file.sweep(&locked)?;
            locked.swept();
        }
        let old = crate::stale::retry(|| crate::stale::open_current(file))?;
        Ok(Transaction::new(file, locked, old))
    }

    fn new(file: &'a Handle, locked: Locked, old: Option<OldFile>) -> Self {
        Transaction {
            file,
            locked: Some(locked),
            new: NewContents::new(old.as_ref().map(OldFile::existing)),
            old,
            unsynced: false,
        }
    }

    /// The target's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::TxFile::open(&path)?;
    /// let tx = file.begin()?;
    /// assert_eq!(tx.path(), path);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Utf8Path {
        &self.file.inner.path
    }

    /// Whether the target existed when the transaction began.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::TxFile::open(&path)?;
    /// assert!(!file.begin()?.exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn exists(&self) -> bool {
        self.old.is_some()
    }

    /// The contents when the transaction began, read into memory on first
    /// call; `None` when the file did not exist. Use
    /// [`old_reader`](Transaction::old_reader) for files too large for memory.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when reading fails.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// # std::fs::write(&path, "old")?;
    /// let file = txfile::TxFile::open(&path)?;
    /// let mut tx = file.begin()?;
    /// assert_eq!(tx.old_bytes()?, Some(&b"old"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn old_bytes(&mut self) -> Result<Option<&[u8]>, Error> {
        let path = &self.file.inner.path;
        match &mut self.old {
            Some(old) => old.bytes(path).map(Some),
            None => Ok(None),
        }
    }

    /// A streaming reader over the contents when the transaction began;
    /// `None` when the file did not exist. Each call starts at the beginning.
    ///
    /// The reader owns its own reference to the old version, so it can be
    /// moved to another thread while this one writes the new contents.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Read;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// # std::fs::write(&path, "old")?;
    /// let file = txfile::TxFile::open(&path)?;
    /// let tx = file.begin()?;
    /// let mut text = String::new();
    /// tx.old_reader().unwrap().read_to_string(&mut text)?;
    /// assert_eq!(text, "old");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn old_reader(&self) -> Option<OldReader> {
        self.old.as_ref().map(|old| OldReader {
            file: Arc::clone(&old.file),
            path: self.file.inner.path.clone(),
            offset: 0,
        })
    }

    /// Makes `contents` the new contents, discarding anything written so far.
    pub(crate) fn set_contents(&mut self, contents: Vec<u8>) -> Result<(), Error> {
        self.new.discard(self.file);
        self.new = NewContents::new(self.old.as_ref().map(OldFile::existing));
        if contents.len() <= BUFFER {
            self.new.len = contents.len() as u64;
            self.new.buf = contents;
            Ok(())
        } else {
            self.new
                .write_all(self.file, self.locked.as_mut(), &contents)
        }
    }

    /// Makes the new contents the target's, atomically and (with
    /// [`Durability::Full`](crate::Durability::Full)) durably, then releases
    /// the lock.
    ///
    /// Nothing is written when the new contents equal the old ones: the file,
    /// its mtime and the disk are untouched.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when a program not using txfile changed the target
    /// since [`begin`](crate::TxFile::begin) (its version is kept); [`Error::Io`]
    /// with [`Op::Lock`] in a forked child that inherited the transaction
    /// (it is the parent's); [`Error::Io`] or
    /// [`Error::Rename`] when a step fails. After any error before the rename
    /// the target has its old contents; an error of [`Op::SyncDir`] comes
    /// after the rename, when the new contents are in place but may not
    /// survive power loss. No temporary file is left in either case.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::TxFile::open(&path)?;
    /// let mut tx = file.begin()?;
    /// write!(tx, "{}", 42)?;
    /// tx.commit()?;
    /// assert_eq!(std::fs::read(&path)?, b"42");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(mut self) -> Result<(), Error> {
        self.check_process()?;
        commit::commit(&mut self)
    }

    /// Whether this process began the transaction (not a forked child that
    /// inherited it).
    fn in_this_process(&mut self) -> bool {
        self.locked.as_mut().is_none_or(Locked::in_this_process)
    }

    /// Refuses a transaction a forked child inherited: its lock and its
    /// temporary file are the parent's.
    pub(crate) fn check_process(&mut self) -> Result<(), Error> {
        if self.in_this_process() {
            return Ok(());
        }
        Err(Error::io(
            Op::Lock,
            &self.file.inner.guard_path,
            io::Error::other(
                "the transaction was begun by the parent of this forked process; \
                 only that process can commit it (begin a new one here)",
            ),
        ))
    }

    /// Abandons the transaction: the target is untouched, the temporary file
    /// removed and the lock released. Same as dropping it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::TxFile::open(&path)?;
    /// let mut tx = file.begin()?;
    /// tx.write_all(b"never mind")?;
    /// tx.rollback();
    /// assert_eq!(file.read()?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rollback(self) {}
}

impl Drop for Transaction<'_> {
    fn drop(&mut self) {
        if !self.in_this_process() {
            // A forked child's copy: the temporary file is the parent's.
            drop(self.new.temp.take());
            return;
        }
        // Cleanup errors are ignored: the target is untouched either way, and
        // a temporary file that could not be removed is swept by the next
        // transaction on this target.
        let clean = self.new.discard(self.file);
        if let Some(mut locked) = self.locked.take() {
            if clean && !self.unsynced {
                locked.unmark();
            }
        }
    }
}

impl Write for Transaction<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.new.write_all(self.file, self.locked.as_mut(), buf)?;
        Ok(buf.len())
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        Ok(self.new.write_all(self.file, self.locked.as_mut(), buf)?)
    }

    /// Buffered data reaches the temporary file at the latest at commit;
    /// flushing here only pushes it there early.
    fn flush(&mut self) -> io::Result<()> {
        Ok(self.new.flush(self.file, self.locked.as_mut())?)
    }
}

/// Streams the contents a [`Transaction`] began with; see
/// [`Transaction::old_reader`].
///
/// # Examples
///
/// ```
/// use std::io::Read;
/// # let dir = tempfile::tempdir()?;
/// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
/// # std::fs::write(&path, "abc")?;
/// let file = txfile::TxFile::open(&path)?;
/// let tx = file.begin()?;
/// let mut reader: txfile::OldReader = tx.old_reader().unwrap();
/// let mut first = [0; 1];
/// reader.read_exact(&mut first)?;
/// assert_eq!(&first, b"a");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub struct OldReader {
    file: Arc<dyn ReadFile>,
    path: Utf8PathBuf,
    offset: u64,
}

impl fmt::Debug for OldReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OldReader")
            .field("path", &self.path)
            .field("offset", &self.offset)
            .finish()
    }
}

impl Read for OldReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self
            .file
            .read_at(buf, self.offset)
            .map_err(|e| io::Error::from(Error::io(Op::Read, &self.path, e)))?;
        self.offset += n as u64;
        Ok(n)
    }
}
