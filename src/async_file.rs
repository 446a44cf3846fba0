//! `AsyncTxFile`: the `TxFile` API for tokio (feature `tokio`).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};

use crate::async_handle::{Begin, Committed, Core};
use crate::async_lock::{Patience, Pipe, Sink, Target, blocking};
use crate::error::{BoxError, Op};
use crate::guard::{Locked, Mode, Wait};
use crate::{Error, Transaction, TxFile, commit};

/// A [`TxFile`] for async code on tokio: the same locked, atomic, durable
/// updates, without ever blocking a runtime thread.
///
/// Waiting tasks wait as tasks, in FIFO order, however long another process
/// holds the lock; every blocking call (the lock, reads, writes, fsyncs,
/// the rename) runs off the runtime's workers, on tokio's blocking pool (or
/// on the thread that waited for the lock), and a lock held by someone
/// else is waited for in the kernel by at most one thread per guard file,
/// whatever the number of waiting tasks. Updates queued on one handle (and
/// its clones) run one after another on the thread that holds the lock,
/// each a whole transaction of its own, without a trip through the runtime
/// between two of them. The timeout, durability, lock style
/// and every other [`Options`](crate::Options) setting apply: build one from
/// a `TxFile` with `From`.
///
/// Clones are cheap and share the process's one guard descriptor with every
/// other handle on the target, sync or async: a sync [`TxFile`] and an
/// `AsyncTxFile` of one process exclude each other like any two handles.
///
/// # Cancellation
///
/// Dropping a future of this API (a timeout, a `select!` that went the other
/// way, an aborted task) is safe at any point:
///
/// - before the lock was taken, nothing happens: no file is created, nothing
///   is committed, and the task leaves the queue;
/// - after the lock was taken and before the commit started (for
///   [`update`](AsyncTxFile::update): before the closure returned), the
///   transaction rolls back;
/// - once the commit has started, it **completes**: the rename may happen
///   after the future was dropped, and the result is not reported.
///
/// In every case the lock is released and no temporary file is left, though
/// possibly a moment after the drop: the blocking call that is running ends
/// first, and a thread still waiting in the kernel takes the lock and lets
/// go of it at once.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("counter");
/// let counter = txfile::AsyncTxFile::open(&path).await?;
/// let tasks: Vec<_> = (0..4)
///     .map(|_| {
///         let counter = counter.clone();
///         tokio::spawn(async move {
///             counter
///                 .update(|old| {
///                     let n: u64 = old.map_or(Ok(0), |b| String::from_utf8_lossy(b).parse())?;
///                     Ok::<_, std::num::ParseIntError>((n + 1).to_string().into_bytes())
///                 })
///                 .await
///         })
///     })
///     .collect();
/// for task in tasks {
///     task.await??;
/// }
/// assert_eq!(counter.read().await?.as_deref(), Some(&b"4"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncTxFile {
    core: Arc<Core<TxFile>>,
}

impl fmt::Debug for AsyncTxFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncTxFile").field(&self.core).finish()
    }
}

impl From<TxFile> for AsyncTxFile {
    /// Wraps a sync handle, keeping its options.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// use std::time::Duration;
    /// let options = txfile::Options::new().timeout(Duration::from_secs(5));
    /// let file = txfile::AsyncTxFile::from(options.open(&path)?);
    /// file.update(|_| Ok::<_, std::io::Error>(b"x".to_vec())).await?;
    /// # Ok(())
    /// # }
    /// ```
    fn from(file: TxFile) -> AsyncTxFile {
        AsyncTxFile {
            core: Core::new(file),
        }
    }
}

impl AsyncTxFile {
    /// Opens a handle on `path` with default [`Options`](crate::Options), on
    /// the blocking pool; see [`TxFile::open`].
    ///
    /// # Errors
    ///
    /// As for [`TxFile::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// assert_eq!(file.path(), path);
    /// assert!(txfile::AsyncTxFile::open(path.join("no/such/dir")).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open(path: impl AsRef<std::path::Path>) -> Result<AsyncTxFile, Error> {
        let path = path.as_ref().to_owned();
        let shown = Utf8PathBuf::from(path.to_string_lossy().into_owned());
        blocking(shown, move || TxFile::open(path))
            .await?
            .map(AsyncTxFile::from)
    }

    /// The file this handle replaces.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::from(txfile::TxFile::open(&path)?);
    /// assert_eq!(file.path().file_name(), Some("a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn path(&self) -> &Utf8Path {
        self.core.target().path()
    }

    /// The sync handle underneath, for code that runs on a thread of its own.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::from(txfile::TxFile::open(&path)?);
    /// assert_eq!(file.as_sync().guard_path().file_name(), Some("a.lock"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_sync(&self) -> &TxFile {
        self.core.target()
    }

    #[cfg(test)]
    pub(crate) fn core(&self) -> &Core<TxFile> {
        &self.core
    }

    /// Replaces the contents with what `f` returns for the current contents
    /// (`None` when the file does not exist), under the lock; see
    /// [`TxFile::update`]. `f` runs off the runtime's workers, on the
    /// thread that runs the handle's queued updates.
    ///
    /// Dropping the future before `f` returned rolls back; after, the
    /// commit completes (see [Cancellation](AsyncTxFile#cancellation)).
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when the configured timeout passed before the lock
    /// was taken; [`Error::Aborted`] when `f` fails; as for
    /// [`TxFile::update`] otherwise.
    ///
    /// # Panics
    ///
    /// When `f` panics, the panic resumes here, after the rollback.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("log");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// file.update(|old| {
    ///     let mut log = old.unwrap_or_default().to_vec();
    ///     log.extend_from_slice(b"started\n");
    ///     Ok::<_, std::convert::Infallible>(log)
    /// })
    /// .await?;
    /// assert_eq!(file.read().await?.unwrap(), b"started\n");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update<F, E>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(Option<&[u8]>) -> Result<Vec<u8>, E> + Send + 'static,
        E: Into<BoxError>,
    {
        self.core
            .update(Box::new(move |file: &TxFile, locked, ticket| {
                if ticket.gone() {
                    return Ok(Committed::default());
                }
                let mut tx = Transaction::prepare(&file.handle, locked)?;
                let new = f(tx.old_bytes()?).map_err(|e| Error::Aborted {
                    path: file.path().to_owned(),
                    source: e.into(),
                })?;
                tx.set_contents(new)?;
                if ticket.gone() {
                    return Ok(Committed::default());
                }
                // `Transaction::commit`, but the directory fsync a durable
                // commit waits for after its release is left to the runner,
                // which goes on with the next update meanwhile.
                tx.check_process()?;
                let owed = commit::commit_released(&mut tx)?;
                Ok(Committed {
                    replaced: tx.old.take().into_iter().collect(),
                    owed: owed.map(|owed| (file.clone(), owed)),
                })
            }))
            .await
    }

    /// Reads the current contents without taking the lock, on the blocking
    /// pool; see [`TxFile::read`].
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when the file exists but cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// assert_eq!(file.read().await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read(&self) -> Result<Option<Vec<u8>>, Error> {
        let file = self.as_sync().clone();
        blocking(self.path(), move || file.read()).await?
    }

    /// Starts a transaction, waiting for the lock as long as the configured
    /// timeout allows (forever by default); see [`TxFile::begin`].
    ///
    /// # Errors
    ///
    /// As for [`TxFile::begin`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// let mut tx = file.begin().await?;
    /// assert_eq!(tx.old_bytes().await?, None);
    /// tx.write_all(b"first").await?;
    /// tx.commit().await?;
    /// assert_eq!(file.read().await?.unwrap(), b"first");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn begin(&self) -> Result<AsyncTransaction, Error> {
        self.start(Patience::Timeout)
            .await?
            .ok_or_else(|| self.as_sync().timeout_error())
    }

    /// Starts a transaction if the lock is free right now, else returns
    /// `Ok(None)` at once; see [`TxFile::try_begin`].
    ///
    /// # Errors
    ///
    /// As for [`TxFile::begin`], except that a held lock is `Ok(None)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// let tx = file.try_begin().await?.expect("nobody holds it");
    /// assert!(file.try_begin().await?.is_none());
    /// tx.rollback().await;
    /// assert!(file.try_begin().await?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_begin(&self) -> Result<Option<AsyncTransaction>, Error> {
        self.start(Patience::Now).await
    }

    async fn start(&self, patience: Patience) -> Result<Option<AsyncTransaction>, Error> {
        let Some(pipe) = self.core.begin(patience).await? else {
            return Ok(None);
        };
        let exists = pipe.get().is_some_and(|held| held.tx.borrow_tx().exists());
        Ok(Some(AsyncTransaction {
            pipe,
            path: self.path().to_owned(),
            exists,
        }))
    }
}

impl Begin for TxFile {
    type Tx = OwnedTx;

    fn begin_tx(self, locked: Locked) -> Result<OwnedTx, Error> {
        OwnedTx::try_new(self, |file| Transaction::prepare(&file.handle, locked))
    }
}

impl Target for TxFile {
    type Locks = Locked;

    fn keys(&self) -> Result<Vec<(u64, u64, u64)>, Error> {
        Ok(vec![self.handle.order_key()?])
    }

    fn try_lock(&self) -> Result<Option<Locked>, Error> {
        self.lock_ready(Wait::No)
    }

    fn wait_lock(&self) -> Result<Locked, Error> {
        self.lock_ready(Wait::Forever)?
            .ok_or_else(|| self.timeout_error())
    }

    /// `None` waits forever: no timeout, or one too large to add to now.
    fn deadline(&self) -> Option<Instant> {
        self.handle
            .inner
            .options
            .timeout
            .and_then(|t| Instant::now().checked_add(t))
    }

    fn timeout_error(&self) -> Error {
        Error::Timeout {
            path: self.handle.inner.path.clone(),
            timeout: self.handle.inner.options.timeout.unwrap_or_default(),
        }
    }

    fn path(&self) -> &Utf8Path {
        TxFile::path(self)
    }
}

impl TxFile {
    /// The exclusive lock with no batch journal pending: a journal found is
    /// recovered (without the lock) and the lock taken again.
    ///
    /// The lock is taken without recording a thread as its owner: async
    /// transactions begin on one thread and end on another.
    fn lock_ready(&self, wait: Wait) -> Result<Option<Locked>, Error> {
        loop {
            let Some(locked) = self.handle.lock_for(Mode::Exclusive, wait, None)? else {
                return Ok(None);
            };
            if !crate::journal::pending(&self.handle)? {
                return Ok(Some(locked));
            }
            drop(locked);
            crate::journal::recover(&self.handle)?;
        }
    }
}

/// A transaction that owns its handle, so it can move between threads.
#[ouroboros::self_referencing]
pub(crate) struct OwnedTx {
    file: TxFile,
    #[borrows(file)]
    #[covariant]
    tx: Transaction<'this>,
}

impl fmt::Debug for OwnedTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.borrow_tx().fmt(f)
    }
}

impl Sink for OwnedTx {
    fn write(&mut self, _member: usize, data: &[u8]) -> io::Result<()> {
        self.with_tx_mut(|tx| io::Write::write_all(tx, data))
    }
}

/// One locked read-modify-write of an [`AsyncTxFile`]'s target; see
/// [`AsyncTxFile::begin`] and the sync [`Transaction`].
///
/// Read the old contents with [`old_bytes`](Self::old_bytes), write the new
/// contents through [`tokio::io::AsyncWrite`] (they are handed to the
/// blocking pool in 64 KiB chunks, streaming to a temporary file beyond
/// 64 KiB), then [`commit`](Self::commit). Dropping it without committing
/// rolls back, on the blocking pool.
///
/// # Examples
///
/// ```
/// use tokio::io::AsyncWriteExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("upper");
/// # std::fs::write(&path, "shout")?;
/// let file = txfile::AsyncTxFile::open(&path).await?;
/// let mut tx = file.begin().await?;
/// let upper = String::from_utf8_lossy(tx.old_bytes().await?.unwrap()).to_uppercase();
/// tx.write_all(upper.as_bytes()).await?;
/// tx.commit().await?;
/// assert_eq!(std::fs::read_to_string(&path)?, "SHOUT");
/// # Ok(())
/// # }
/// ```
#[must_use = "a transaction changes nothing until it is committed; dropping it rolls back"]
pub struct AsyncTransaction {
    pipe: Pipe<OwnedTx>,
    path: Utf8PathBuf,
    exists: bool,
}

impl fmt::Debug for AsyncTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncTransaction")
            .field("path", &self.path)
            .field("exists", &self.exists)
            .finish_non_exhaustive()
    }
}

impl AsyncTransaction {
    /// The target's path.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// assert_eq!(file.begin().await?.path(), path);
    /// # Ok(())
    /// # }
    /// ```
    pub fn path(&self) -> &Utf8Path {
        &self.path
    }

    /// Whether the target existed when the transaction began.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// assert!(!file.begin().await?.exists());
    /// # Ok(())
    /// # }
    /// ```
    pub fn exists(&self) -> bool {
        self.exists
    }

    /// The contents when the transaction began, read into memory (on the
    /// blocking pool) on first call; `None` when the file did not exist.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when reading fails, or when an earlier write handed to
    /// the blocking pool failed.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// # std::fs::write(&path, "old")?;
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// let mut tx = file.begin().await?;
    /// assert_eq!(tx.old_bytes().await?, Some(&b"old"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn old_bytes(&mut self) -> Result<Option<&[u8]>, Error> {
        let held = self.pipe.idle().await?;
        let cached = held.tx.borrow_tx().old.as_ref().map(|old| old.cached());
        if let Some(None) = cached {
            self.pipe
                .run(|held| {
                    let _read = crate::trace::step!("read", held.tx.borrow_file().path());
                    held.tx.with_tx_mut(|tx| tx.old_bytes().map(drop))
                })
                .await?;
        }
        let held = self
            .pipe
            .get()
            .ok_or_else(|| Error::io(Op::Read, &self.path, io::Error::other("transaction lost")))?;
        Ok(held
            .tx
            .borrow_tx()
            .old
            .as_ref()
            .map(|old| old.cached().unwrap_or_default()))
    }

    /// Makes the new contents the target's, on the blocking pool; see
    /// [`Transaction::commit`]. Once this future has been polled, the commit
    /// completes even if it is dropped.
    ///
    /// # Errors
    ///
    /// As for [`Transaction::commit`]; also an error of an earlier write
    /// handed to the blocking pool, in which case nothing is committed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// let mut tx = file.begin().await?;
    /// tx.write_all(b"42").await?;
    /// tx.commit().await?;
    /// assert_eq!(std::fs::read(&path)?, b"42");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn commit(self) -> Result<(), Error> {
        self.pipe
            .finish(|mut held| held.tx.with_tx_mut(commit::commit))
            .await
    }

    /// Abandons the transaction and waits until the temporary file is
    /// removed and the lock released. Dropping it does the same without
    /// waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let path = camino::Utf8Path::from_path(dir.path()).unwrap().join("a");
    /// let file = txfile::AsyncTxFile::open(&path).await?;
    /// let mut tx = file.begin().await?;
    /// tx.write_all(b"never mind").await?;
    /// tx.rollback().await;
    /// assert_eq!(file.read().await?, None);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rollback(self) {
        self.pipe.rollback().await;
    }
}

impl tokio::io::AsyncWrite for AsyncTransaction {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        self.get_mut().pipe.poll_write(cx, 0, buf)
    }

    /// Hands the written bytes to the transaction; they reach the temporary
    /// file at the latest at commit.
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().pipe.poll_flush(cx)
    }

    /// The same as flushing: only [`commit`](AsyncTransaction::commit) ends
    /// the transaction.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().pipe.poll_flush(cx)
    }
}
