//! `TxFile`: a long-lived handle on one target file, the public face over
//! [`Handle`] (`handle.rs`), which holds its state.

use std::fmt;
use std::path::Path;

use camino::Utf8Path;

use crate::error::BoxError;
use crate::guard::{Mode, Wait};
use crate::handle::Handle;
use crate::transaction::Transaction;
use crate::{Error, Options, journal};

/// A handle on one target file, for locked, atomic, durable updates.
///
/// Open it once and keep it for the life of a worker: it holds the target's
/// directory (one descriptor per directory, shared by every handle of the
/// process on a file in it; every call is relative to it, so the handle
/// follows the directory if it is renamed, see [`TxFile::path`]) and, from
/// its first transaction on, the process's one descriptor of the guard file
/// `<name>.lock`. It is cheap to clone, and
/// clones (and handles opened separately on the same target) share that
/// descriptor and exclude each other.
///
/// # Examples
///
/// ```
/// use txfile::TxFile;
/// # let dir = tempfile::tempdir()?;
/// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("counter");
///
/// let counter = TxFile::open(&path)?;
/// for _ in 0..3 {
///     counter.update(|old| {
///         let n: u64 = match old {
///             Some(bytes) => std::str::from_utf8(bytes)?.trim().parse()?,
///             None => 0,
///         };
///         Ok::<_, Box<dyn std::error::Error + Send + Sync>>(format!("{}\n", n + 1).into_bytes())
///     })?;
/// }
/// assert_eq!(counter.read()?.as_deref(), Some(&b"3\n"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct TxFile {
    pub(crate) handle: Handle,
}

impl fmt::Debug for TxFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TxFile")
            .field("path", &self.handle.inner.path)
            .field("guard_path", &self.handle.inner.guard_path)
            .field("options", &self.handle.inner.options)
            .finish_non_exhaustive()
    }
}

impl TxFile {
    /// Opens a handle on `path` with default [`Options`].
    ///
    /// `path` may be anything that converts to a [`Path`]: `&str`, `String`,
    /// [`Path`], [`PathBuf`](std::path::PathBuf), or camino's `Utf8Path` and
    /// `Utf8PathBuf`. It must be valid UTF-8 (txfile names its guard and
    /// temporary files from it, and reports paths as text); a relative path
    /// is taken from the current directory, once, here.
    ///
    /// The target need not exist; its directory must. Opening creates
    /// nothing: the guard file `<name>.lock` is opened by the first
    /// transaction, so a user who may read the target but not write its
    /// directory can still [`read`](TxFile::read) it. That transaction
    /// creates the guard beside the target if missing, so that everyone who
    /// may write the target may lock it: read and write for the owner and
    /// for every class (group, others) with write permission on the target
    /// (on the directory, while the target does not exist), read for every
    /// class that may read it, and the target's (directory's) group when
    /// this process may set it. The umask does not apply: the guard holds
    /// no data. A user who may read an existing guard but not write it
    /// opens it read-only, which still gives exclusion on local Linux
    /// filesystems (an exclusive `flock` and a shared POSIX lock); where
    /// that is not enough (NFS), or where the guard cannot be opened at all,
    /// the error names its owner and mode and how to fix them.
    /// (See [`Options::guard_path`] to choose another guard.)
    ///
    /// # Errors
    ///
    /// [`Error::InvalidPath`] when the path is not UTF-8, has no file name or
    /// names (after following symbolic links under [`Symlinks::Follow`](crate::Symlinks::Follow)) a
    /// directory, a device, a FIFO or a socket: only regular files are
    /// targets; [`Error::Symlink`] under [`Symlinks::Reject`](crate::Symlinks::Reject);
    /// [`Error::ForeignGuard`] when something that is not a guard sits at the
    /// guard path (a file holding data such as a `Gemfile.lock`, a symbolic
    /// link, a file with other links, a directory): choose another with
    /// [`Options::guard_path`]; [`Error::Io`] when the directory cannot be
    /// opened (missing, no permission); [`Error::LocalLock`] on an NFS mount
    /// whose locks would stay on this host (see
    /// [`Options::allow_local_locks`]). Nothing on disk changes on error.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::path::PathBuf;
    /// # let dir = tempfile::tempdir()?;
    /// let path: PathBuf = dir.path().join("state.json");
    /// let file = txfile::TxFile::open(&path)?;
    /// assert_eq!(file.path().as_std_path(), path);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(path: impl AsRef<Path>) -> Result<TxFile, Error> {
        Handle::open(path.as_ref(), Options::new()).map(|handle| TxFile { handle })
    }

    /// The file this handle replaces, as given at open (absolute, and after
    /// resolving symbolic links under [`Symlinks::Follow`](crate::Symlinks::Follow)).
    ///
    /// It is the path at open, not now: the handle works on the directory
    /// it opened, not on a path. If that directory (or a parent) is renamed
    /// afterwards, the handle keeps reading and committing the file in it,
    /// under its new path, while `path()` still shows the old one; nothing
    /// appears at the old path.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::TxFile::open(&path)?;
    /// assert_eq!(file.path().file_name(), Some("a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Utf8Path {
        &self.handle.inner.path
    }

    /// The guard file whose lock serialises transactions on this target.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::TxFile::open(&path)?;
    /// assert_eq!(file.guard_path().file_name(), Some("a.lock"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn guard_path(&self) -> &Utf8Path {
        &self.handle.inner.guard_path
    }

    /// Starts a transaction, waiting for the lock as long as the configured
    /// timeout allows (forever by default).
    ///
    /// Taking the lock also removes temporary files that a crashed writer of
    /// this target left behind.
    ///
    /// The first transaction of a process on this target opens the guard
    /// file `<name>.lock`, creating it if missing (see [`TxFile::open`]).
    ///
    /// The lock is not re-entrant. A thread that already holds this target's
    /// lock (a transaction open on it through this handle, a clone, another
    /// handle on the same file, an enclosing [`update`](TxFile::update) or a
    /// [`Batch`](crate::Batch) transaction) gets [`Error::HeldByThisThread`]
    /// at once: waiting would wait for itself. Other threads wait as usual.
    /// ([`try_begin`](TxFile::try_begin) returns `Ok(None)` then, as for any
    /// holder.)
    ///
    /// A handle opened before `fork` works in the child: the child opens its
    /// own guard descriptor at its first transaction and excludes its
    /// parent and siblings. A transaction the child inherited belongs to the
    /// parent: dropping it in the child does nothing, committing it fails.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the timeout passed first;
    /// [`Error::HeldByThisThread`] when this thread holds the lock itself;
    /// [`Error::Io`] when the lock, the directory listing or reading the
    /// target fails, or with [`Op::OpenGuard`](crate::Op::OpenGuard) when the guard cannot be
    /// opened or created (kind
    /// [`PermissionDenied`](std::io::ErrorKind::PermissionDenied) for a user
    /// who may read the target but not write its directory, when no guard
    /// exists yet).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("log");
    /// let file = txfile::TxFile::open(&path)?;
    /// let mut tx = file.begin()?;
    /// assert_eq!(tx.old_bytes()?, None);
    /// tx.write_all(b"first line\n")?;
    /// tx.commit()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn begin(&self) -> Result<Transaction<'_>, Error> {
        let wait = Wait::within(self.handle.inner.options.timeout);
        self.start(wait)?.ok_or_else(|| Error::Timeout {
            path: self.handle.inner.path.clone(),
            timeout: self.handle.inner.options.timeout.unwrap_or_default(),
        })
    }

    /// Starts a transaction if the lock is free right now, else returns
    /// `Ok(None)` at once, also when this thread is the holder.
    ///
    /// # Errors
    ///
    /// As for [`TxFile::begin`], except that a held lock is `Ok(None)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::TxFile::open(&path)?;
    /// let tx = file.try_begin()?.expect("nobody else holds it");
    /// assert!(file.try_begin()?.is_none());
    /// tx.rollback();
    /// assert!(file.try_begin()?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_begin(&self) -> Result<Option<Transaction<'_>>, Error> {
        self.start(Wait::No)
    }

    /// The exclusive lock with no batch journal pending (a journal found is
    /// recovered, without the lock, and the lock taken again), then the
    /// transaction.
    fn start(&self, wait: Wait) -> Result<Option<Transaction<'_>>, Error> {
        let handle = &self.handle;
        loop {
            let Some(locked) = handle.lock(Mode::Exclusive, wait)? else {
                return Ok(None);
            };
            if journal::pending(handle)? {
                drop(locked);
                journal::recover(handle)?;
                continue;
            }
            return Transaction::prepare(handle, locked).map(Some);
        }
    }

    /// Replaces the contents with what `f` returns for the current contents
    /// (`None` when the file does not exist), under the lock.
    ///
    /// If `f` returns the current contents unchanged, nothing is written.
    /// If `f` fails or panics, nothing changes and the lock is released.
    ///
    /// # Errors
    ///
    /// [`Error::Aborted`] with `f`'s error as its source when `f` fails; any
    /// error of [`TxFile::begin`] or [`Transaction::commit`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("names");
    /// let file = txfile::TxFile::open(&path)?;
    /// file.update(|old| {
    ///     let mut list = old.unwrap_or_default().to_vec();
    ///     list.extend_from_slice(b"alice\n");
    ///     Ok::<_, std::convert::Infallible>(list)
    /// })?;
    /// assert_eq!(file.read()?.unwrap(), b"alice\n");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update<F, E>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(Option<&[u8]>) -> Result<Vec<u8>, E>,
        E: Into<BoxError>,
    {
        self.update_returning(|old| f(old).map(|new| (new, ())))
    }

    /// [`update`](TxFile::update) for a closure that also computes a value:
    /// `f` returns the new contents and the value, and the value is returned
    /// once the new contents are committed.
    ///
    /// The value is what `f` computed from the version it was given, which
    /// is the version the commit replaced: no other transaction came between.
    /// If `f` returns the current contents unchanged, nothing is written and
    /// the value is still returned.
    ///
    /// # Errors
    ///
    /// As for [`TxFile::update`]; the value is only returned with a commit.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = dir.path().join("counter");
    /// let counter = txfile::TxFile::open(&path)?;
    /// let next = |old: Option<&[u8]>| -> Result<(Vec<u8>, u64), txfile::BoxError> {
    ///     let n: u64 = match old {
    ///         Some(bytes) => std::str::from_utf8(bytes)?.trim().parse()?,
    ///         None => 0,
    ///     };
    ///     Ok(((n + 1).to_string().into_bytes(), n + 1))
    /// };
    /// assert_eq!(counter.update_returning(next)?, 1);
    /// assert_eq!(counter.update_returning(next)?, 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_returning<F, T, E>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(Option<&[u8]>) -> Result<(Vec<u8>, T), E>,
        E: Into<BoxError>,
    {
        let mut tx = self.begin()?;
        let (new, value) = f(tx.old_bytes()?).map_err(|e| Error::Aborted {
            path: self.handle.inner.path.clone(),
            source: e.into(),
        })?;
        tx.set_contents(new)?;
        tx.commit()?;
        Ok(value)
    }

    /// Reads the current contents without taking the lock: `None` when the
    /// file does not exist.
    ///
    /// The result is always one complete committed version, because commits
    /// replace the file with a rename. A target that cannot be renamed over
    /// (a bind-mounted file, which commits update in place: see
    /// [`Options::in_place_fallback`]) is the exception: it is read under the
    /// shared lock, which needs its guard file (and waits while a writer
    /// copies), and if a writer died after its commit point, the version it
    /// committed is read from its staged file. Reading needs only read permission on
    /// the target and search permission on its directory: no lock is taken
    /// and no guard file is opened or created, so a process that may not
    /// write the directory (a monitor, a web server) reads with this
    /// guarantee too. It may be stale by the time it returns,
    /// and while a [`Batch`](crate::Batch) that includes this file is being
    /// committed (or awaits recovery after a crash) it may be this member's
    /// new version while other members still show their old ones: use
    /// [`Batch::read`](crate::Batch::read) to read several files consistently.
    ///
    /// On NFS, a read that races with another host replacing the file can
    /// find its file handle stale (`ESTALE`); it then starts over on the new
    /// version, a bounded number of times.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file exists but cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::TxFile::open(&path)?;
    /// assert_eq!(file.read()?, None);
    /// file.update(|_| Ok::<_, std::io::Error>(b"x".to_vec()))?;
    /// assert_eq!(file.read()?, Some(b"x".to_vec()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(&self) -> Result<Option<Vec<u8>>, Error> {
        crate::stale::retry(|| match crate::stale::open_current(&self.handle)? {
            // A bind-mounted target is updated in place: read it under the
            // shared lock (see `Options::in_place_fallback`).
            Some(old) if old.meta.mount_root => {
                drop(old);
                crate::inplace::read(&self.handle)
            }
            Some(mut old) => Ok(Some(old.take_bytes(&self.handle.inner.path)?)),
            None => Ok(None),
        })
    }
}

/// Opening a handle is the handle's business; the options only describe it.
impl Options {
    /// Opens a handle on `path` with these options.
    ///
    /// # Errors
    ///
    /// As for [`TxFile::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("data");
    /// let file = txfile::Options::new().open(&path)?;
    /// assert_eq!(file.read()?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open(&self, path: impl AsRef<Path>) -> Result<TxFile, Error> {
        Handle::open(path.as_ref(), self.clone()).map(|handle| TxFile { handle })
    }
}

/// Reads, changes and commits `path` in one locked transaction; shorthand for
/// [`TxFile::open`] then [`TxFile::update`]. Keep a [`TxFile`] instead when
/// updating the same file repeatedly.
///
/// # Errors
///
/// As for [`TxFile::open`] and [`TxFile::update`].
///
/// # Examples
///
/// ```
/// # let dir = tempfile::tempdir()?;
/// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("greeting");
/// txfile::update(&path, |_| Ok::<_, std::io::Error>(b"hello".to_vec()))?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn update<F, E>(path: impl AsRef<Path>, f: F) -> Result<(), Error>
where
    F: FnOnce(Option<&[u8]>) -> Result<Vec<u8>, E>,
    E: Into<BoxError>,
{
    TxFile::open(path)?.update(f)
}
