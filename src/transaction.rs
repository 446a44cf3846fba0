//! `Transaction`: the old contents in, the new contents out, under the lock.

use std::fmt;
use std::io::{self, Read, Write};
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Op;
use crate::fs::{Meta, ReadFile, TempFile};
use crate::guard::Locked;
use crate::{Error, TxFile, commit};

/// New contents up to this size stay in memory until commit, so a small
/// no-op commit creates no file at all; beyond it they stream to the
/// temporary file through a buffer of this size, so memory stays constant.
pub(crate) const BUFFER: usize = 64 * 1024;

/// One locked read-modify-write of a [`TxFile`]'s target.
///
/// Read the old contents with [`old_bytes`](Transaction::old_bytes) or
/// [`old_reader`](Transaction::old_reader), write the new contents through
/// [`std::io::Write`] (they stream to a temporary file in the target's
/// directory), then [`commit`](Transaction::commit). Dropping the transaction
/// without committing rolls back: the target is untouched, the temporary file
/// is removed and the lock released.
///
/// # Examples
///
/// ```
/// use std::io::{Read, Write};
/// # let dir = tempfile::tempdir()?;
/// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("upper");
/// # std::fs::write(&path, "shout")?;
/// let file = txfile::TxFile::open(&path)?;
/// let mut tx = file.begin()?;
/// let mut old = String::new();
/// tx.old_reader().expect("the file exists").read_to_string(&mut old)?;
/// tx.write_all(old.to_uppercase().as_bytes())?;
/// tx.commit()?;
/// assert_eq!(std::fs::read_to_string(&path)?, "SHOUT");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a transaction changes nothing until it is committed; dropping it rolls back"]
pub struct Transaction<'a> {
    pub(crate) file: &'a TxFile,
    pub(crate) locked: Option<Locked>,
    pub(crate) old: Option<OldFile>,
    pub(crate) new: NewContents,
    /// Renamed into place, but the directory not synced yet (or its sync
    /// failed): the guard's marker must stay set for the next holder.
    pub(crate) unsynced: bool,
}

impl fmt::Debug for Transaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Transaction")
            .field("path", &self.file.inner.path)
            .field("old_len", &self.old.as_ref().map(|old| old.meta.size))
            .field("new_len", &self.new.len)
            .finish_non_exhaustive()
    }
}

impl<'a> Transaction<'a> {
    pub(crate) fn new(file: &'a TxFile, locked: Locked, old: Option<OldFile>) -> Self {
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
    /// since [`begin`](TxFile::begin) (its version is kept); [`Error::Io`]
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

/// The target as it was when the transaction began: an open descriptor, so
/// reads see that version even if the path changes.
#[derive(Debug)]
pub(crate) struct OldFile {
    pub(crate) file: Arc<dyn ReadFile>,
    pub(crate) meta: Meta,
    bytes: Option<Vec<u8>>,
}

impl OldFile {
    pub(crate) fn open(file: &TxFile) -> Result<Option<OldFile>, Error> {
        let inner = &*file.inner;
        let Some(handle) = inner
            .dir
            .open_read(&inner.name)
            .map_err(|e| Error::io(Op::Open, &inner.path, e))?
        else {
            return Ok(None);
        };
        let meta = handle
            .meta()
            .map_err(|e| Error::io(Op::Stat, &inner.path, e))?;
        if meta.kind != crate::fs::Kind::File {
            // Replaced by a FIFO, device or directory since `open`: opened
            // without blocking, and never read or replaced.
            return Err(Error::InvalidPath {
                path: inner.path.clone(),
                reason: "it is not a regular file (a device, FIFO or socket)",
            });
        }
        Ok(Some(OldFile {
            file: Arc::from(handle),
            meta,
            bytes: None,
        }))
    }

    pub(crate) fn bytes(&mut self, path: &Utf8Path) -> Result<&[u8], Error> {
        if self.bytes.is_none() {
            let _read = crate::trace::step!("read", path);
            let mut bytes = Vec::with_capacity(self.meta.size as usize + 1);
            read_all(
                |buf, at| self.file.read_at(buf, at),
                &mut bytes,
                self.meta.size,
            )
            .map_err(|e| Error::io(Op::Read, path, e))?;
            self.bytes = Some(bytes);
        }
        Ok(self.bytes.as_deref().unwrap_or_default())
    }

    pub(crate) fn take_bytes(&mut self, path: &Utf8Path) -> Result<Vec<u8>, Error> {
        self.bytes(path)?;
        Ok(self.bytes.take().unwrap_or_default())
    }

    pub(crate) fn cached(&self) -> Option<&[u8]> {
        self.bytes.as_deref()
    }

    fn existing(&self) -> Existing {
        Existing {
            mode: self.meta.mode,
            file: Arc::clone(&self.file),
        }
    }
}

/// Writes all of `data` (a `write` may take less than asked).
pub(crate) fn write_all(file: &mut dyn TempFile, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match file.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads to the end, straight into `out`. Asking for one byte more than
/// `size` (from `fstat`) and getting less means the end: a short read of a
/// regular file happens only there. So the usual file takes one `pread`; a
/// file that grew meanwhile is read on in chunks.
pub(crate) fn read_all(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    out: &mut Vec<u8>,
    size: u64,
) -> io::Result<()> {
    loop {
        let start = out.len();
        let left = usize::try_from(size.saturating_sub(start as u64)).unwrap_or(usize::MAX);
        let want = if left > 0 {
            left.saturating_add(1)
        } else {
            BUFFER
        };
        out.resize(start + want, 0);
        match read_at(&mut out[start..], start as u64) {
            Ok(n) => {
                out.truncate(start + n);
                if n < want {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => out.truncate(start),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
}

/// The new contents: in memory while small, then streamed to a temporary file.
#[derive(Debug)]
pub(crate) struct NewContents {
    /// The target the temporary file will replace, if any.
    pub(crate) existing: Option<Existing>,
    pub(crate) buf: Vec<u8>,
    pub(crate) temp: Option<Temp>,
    pub(crate) len: u64,
    /// Set when a write failed: the temporary file no longer holds what the
    /// caller wrote, so commit must refuse.
    pub(crate) failed: bool,
}

#[derive(Debug)]
pub(crate) struct Temp {
    /// Its name in the target's directory, which every call uses.
    pub(crate) name: String,
    /// Its path as the target's was given at open (for messages).
    pub(crate) path: Utf8PathBuf,
    pub(crate) file: Box<dyn TempFile>,
    /// The replaced target's access ACL, which the temporary file gets
    /// before the rename.
    pub(crate) acl: Option<Vec<u8>>,
}

/// What the temporary file takes over from the target it replaces.
#[derive(Clone, Debug)]
pub(crate) struct Existing {
    pub(crate) mode: u32,
    pub(crate) file: Arc<dyn ReadFile>,
}

impl NewContents {
    fn new(existing: Option<Existing>) -> Self {
        NewContents {
            existing,
            buf: Vec::new(),
            temp: None,
            len: 0,
            failed: false,
        }
    }

    fn write_all(
        &mut self,
        file: &TxFile,
        mut locked: Option<&mut Locked>,
        data: &[u8],
    ) -> Result<(), Error> {
        self.len += data.len() as u64;
        if self.buf.len() + data.len() <= BUFFER {
            self.buf.extend_from_slice(data);
            return Ok(());
        }
        self.flush(file, locked.as_deref_mut())?;
        if data.len() >= BUFFER {
            self.write_through(file, locked, data)
        } else {
            self.buf.extend_from_slice(data);
            Ok(())
        }
    }

    /// Moves buffered bytes to the temporary file, creating it if needed.
    pub(crate) fn flush(
        &mut self,
        file: &TxFile,
        locked: Option<&mut Locked>,
    ) -> Result<(), Error> {
        if self.buf.is_empty() && self.temp.is_some() {
            return Ok(());
        }
        let buf = std::mem::take(&mut self.buf);
        let result = self.write_through(file, locked, &buf);
        self.buf = buf;
        self.buf.clear();
        result
    }

    fn write_through(
        &mut self,
        file: &TxFile,
        locked: Option<&mut Locked>,
        data: &[u8],
    ) -> Result<(), Error> {
        if self.failed {
            return Err(self.failed_error(file));
        }
        let result = self.write_to_temp(file, locked, data);
        self.failed = result.is_err();
        result
    }

    fn write_to_temp(
        &mut self,
        file: &TxFile,
        locked: Option<&mut Locked>,
        data: &[u8],
    ) -> Result<(), Error> {
        let temp = match &mut self.temp {
            Some(temp) => temp,
            None => {
                // The marker first: a temporary file must never exist
                // without it, or a dead writer's file would not be swept.
                if let Some(locked) = locked {
                    locked
                        .mark()
                        .map_err(|e| Error::io(Op::MarkGuard, &file.inner.guard_path, e))?;
                }
                self.temp
                    .insert(commit::create_temp(file, self.existing.as_ref())?)
            }
        };
        let _write = crate::trace::step!("write", file.inner.path);
        write_all(temp.file.as_mut(), data).map_err(|e| Error::io(Op::Write, &temp.path, e))
    }

    pub(crate) fn failed_error(&self, file: &TxFile) -> Error {
        let path = self.temp.as_ref().map_or(&file.inner.path, |t| &t.path);
        Error::io(
            Op::Write,
            path,
            io::Error::other("an earlier write to the new contents failed"),
        )
    }

    /// Removes the temporary file, if any; errors are left to the next
    /// sweep. Returns whether no temporary file is left.
    pub(crate) fn discard(&mut self, file: &TxFile) -> bool {
        match self.temp.take() {
            Some(temp) => {
                drop(temp.file);
                file.inner.dir.remove_file(&temp.name).is_ok()
            }
            None => true,
        }
    }
}
