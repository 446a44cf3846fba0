//! What one transaction holds, and what the commit protocol (`commit.rs`)
//! works on: the lock, the old version, the new contents on their way to a
//! temporary file. The public methods of [`Transaction`] are in
//! `transaction.rs`, which calls the protocol; the protocol needs only this.

use std::fmt;
use std::io;
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Op;
use crate::fs::{Meta, ReadFile, WriteFile, read_all, write_all};
use crate::guard::Locked;
use crate::handle::Handle;
use crate::{Error, names};

/// New contents up to this size stay in memory until commit, so a small
/// no-op commit creates no file at all; beyond it they stream to the
/// temporary file through a buffer of this size, so memory stays constant.
pub(crate) const BUFFER: usize = 64 * 1024;

/// One locked read-modify-write of a [`TxFile`](crate::TxFile)'s target.
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
    pub(crate) file: &'a Handle,
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

/// The target as it was when the transaction began: an open descriptor, so
/// reads see that version even if the path changes.
#[derive(Debug)]
pub(crate) struct OldFile {
    pub(crate) file: Arc<dyn ReadFile>,
    pub(crate) meta: Meta,
    bytes: Option<Vec<u8>>,
}

impl OldFile {
    pub(crate) fn open(file: &Handle) -> Result<Option<OldFile>, Error> {
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

    pub(crate) fn existing(&self) -> Existing {
        Existing {
            mode: self.meta.mode,
            file: Arc::clone(&self.file),
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
    pub(crate) file: Box<dyn WriteFile>,
    /// The replaced target's access ACL, which the temporary file gets
    /// before the rename.
    pub(crate) xattrs: Vec<crate::fs::Xattr>,
}

/// What the temporary file takes over from the target it replaces.
#[derive(Clone, Debug)]
pub(crate) struct Existing {
    pub(crate) mode: u32,
    pub(crate) file: Arc<dyn ReadFile>,
}

impl NewContents {
    pub(crate) fn new(existing: Option<Existing>) -> Self {
        NewContents {
            existing,
            buf: Vec::new(),
            temp: None,
            len: 0,
            failed: false,
        }
    }

    pub(crate) fn write_all(
        &mut self,
        file: &Handle,
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
        file: &Handle,
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
        file: &Handle,
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
        file: &Handle,
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
                self.temp.insert(create_temp(file, self.existing.as_ref())?)
            }
        };
        let _write = crate::trace::step!("write", file.inner.path);
        write_all(temp.file.as_mut(), data).map_err(|e| Error::io(Op::Write, &temp.path, e))
    }

    pub(crate) fn failed_error(&self, file: &Handle) -> Error {
        let path = self.temp.as_ref().map_or(&file.inner.path, |t| &t.path);
        Error::io(
            Op::Write,
            path,
            io::Error::other("an earlier write to the new contents failed"),
        )
    }

    /// Removes the temporary file, if any; errors are left to the next
    /// sweep. Returns whether no temporary file is left.
    pub(crate) fn discard(&mut self, file: &Handle) -> bool {
        match self.temp.take() {
            Some(temp) => {
                drop(temp.file);
                file.inner.dir.remove_file(&temp.name).is_ok()
            }
            None => true,
        }
    }
}

/// Creates the temporary file. When it will replace an existing target it
/// is created with the target's permission bits (the umask can only narrow
/// them), so the new contents are never more exposed than the old, and at
/// commit it gets the target's owner, access ACL and exact mode (usually
/// with no call at all); a new target is created with the configured mode,
/// and only creation applies the umask. A target with an ACL has its ACL
/// mask in its group bits, not the owning group's rights: its temporary
/// file starts with the owner's bits only, until the ACL is copied.
pub(crate) fn create_temp(file: &Handle, existing: Option<&Existing>) -> Result<Temp, Error> {
    let inner = &*file.inner;
    let xattrs = match existing {
        Some(existing) => existing
            .file
            .xattrs()
            .map_err(|e| Error::io(Op::Read, &inner.path, e))?,
        None => Vec::new(),
    };
    let has_acl = xattrs.iter().any(crate::fs::Xattr::is_access_acl);
    let mode = match existing {
        None => inner.options.mode,
        Some(existing) if has_acl => existing.mode & 0o700,
        Some(existing) => existing.mode & 0o777,
    };
    let (name, handle) = inner
        .dir
        .create_temp(&inner.temp_prefix, names::temp_suffix(), mode)
        .map_err(|e| Error::io(Op::CreateTemp, &inner.dir_path, e))?;
    Ok(Temp {
        path: inner.dir_path.join(&name),
        name,
        file: handle,
        xattrs,
    })
}
