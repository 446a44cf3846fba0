//! `AsyncBatch`: the `Batch` API for tokio (feature `tokio`).

use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};

use crate::async_handle::{Begin, Committed, Core};
use crate::async_lock::{self, Held, Patience, Pipe, Sink, Target, Turn, blocking};
use crate::error::{BoxError, Op};
use crate::guard::{Locked, Mode, Wait};
use crate::{Batch, BatchTransaction, Error};

/// A [`Batch`] for async code on tokio: all-or-nothing updates of several
/// files, without ever blocking a runtime thread; see
/// [`AsyncTxFile`](crate::AsyncTxFile) for how waiting and cancellation
/// work, which is the same here with every member's lock.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
/// let batch = txfile::AsyncBatch::open([dir.join("index"), dir.join("data")]).await?;
/// batch
///     .update(|old| {
///         let data = [old[1].unwrap_or_default(), b"record\n"].concat();
///         let index = data.len().to_string().into_bytes();
///         Ok::<_, std::io::Error>(vec![index, data])
///     })
///     .await?;
/// let state = batch.read().await?;
/// assert_eq!(state[0].as_deref(), Some(&b"7"[..]));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct AsyncBatch {
    core: Arc<Core<Batch>>,
}

impl fmt::Debug for AsyncBatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("AsyncBatch").field(&self.core).finish()
    }
}

impl From<Batch> for AsyncBatch {
    /// Wraps a sync batch, keeping its members' options.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::from(txfile::Batch::open([dir.join("a"), dir.join("b")])?);
    /// assert_eq!(batch.as_sync().members().len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    fn from(batch: Batch) -> AsyncBatch {
        AsyncBatch {
            core: Core::new(batch),
        }
    }
}

impl AsyncBatch {
    /// A batch of `paths`, each opened with default [`Options`](crate::Options),
    /// on the blocking pool; see [`Batch::open`].
    ///
    /// # Errors
    ///
    /// As for [`Batch::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::open([dir.join("a"), dir.join("b")]).await?;
    /// assert_eq!(batch.read().await?, vec![None, None]);
    /// assert!(txfile::AsyncBatch::open([dir.join("a"), dir.join("a")]).await.is_err());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn open<P: AsRef<std::path::Path>>(
        paths: impl IntoIterator<Item = P>,
    ) -> Result<AsyncBatch, Error> {
        let paths: Vec<std::path::PathBuf> =
            paths.into_iter().map(|p| p.as_ref().to_owned()).collect();
        let first = paths.first().map_or_else(Utf8PathBuf::new, |p| {
            Utf8PathBuf::from(p.to_string_lossy().into_owned())
        });
        blocking(first, move || Batch::open(paths))
            .await?
            .map(AsyncBatch::from)
    }

    /// The sync batch underneath.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::from(txfile::Batch::open([dir.join("a")])?);
    /// assert_eq!(batch.as_sync().members()[0].path().file_name(), Some("a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn as_sync(&self) -> &Batch {
        self.core.target()
    }

    /// Replaces every member's contents with what `f` returns for their
    /// current contents, as one batch commit; see [`Batch::update`]. `f` runs
    /// off the runtime's workers, on the thread that runs the batch's queued
    /// updates. Dropping the future before `f` returned rolls
    /// back; after, the commit completes.
    ///
    /// # Errors
    ///
    /// As for [`Batch::update`].
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
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::open([dir.join("from"), dir.join("to")]).await?;
    /// batch
    ///     .update(|_| Ok::<_, std::io::Error>(vec![b"-1".to_vec(), b"1".to_vec()]))
    ///     .await?;
    /// assert_eq!(std::fs::read(dir.join("to"))?, b"1");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn update<F, E>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(&[Option<&[u8]>]) -> Result<Vec<Vec<u8>>, E> + Send + 'static,
        E: Into<BoxError>,
    {
        self.core
            .update(Box::new(move |batch: &Batch, locks, ticket| {
                if ticket.gone() {
                    return Ok(Committed::default());
                }
                let mut tx = batch.prepare(locks)?;
                batch.apply(&mut tx, |old| f(old).map(|new| (new, ())))?;
                if ticket.gone() {
                    return Ok(Committed::default());
                }
                // `BatchTransaction::commit`, keeping the replaced versions
                // open past the release of the locks.
                tx.commit_in_place()?;
                Ok(Committed {
                    replaced: tx.txs.iter_mut().filter_map(|tx| tx.old.take()).collect(),
                    owed: None,
                })
            }))
            .await
    }

    /// Reads every member under the locks, so that the result is one
    /// consistent state of the batch; see [`Batch::read`]. Unlike the sync
    /// read, async readers of one process take turns rather than share.
    ///
    /// # Errors
    ///
    /// As for [`Batch::read`].
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// # std::fs::write(dir.join("b"), "b")?;
    /// let batch = txfile::AsyncBatch::open([dir.join("a"), dir.join("b")]).await?;
    /// assert_eq!(batch.read().await?, vec![None, Some(b"b".to_vec())]);
    /// # Ok(())
    /// # }
    /// ```
    pub async fn read(&self) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let queues = self.core.queues().await?;
        let job = |reader: Reader, locks: Vec<Locked>, turns: Vec<Turn>| {
            let contents = reader.0.read_locked();
            drop(locks);
            drop(turns);
            contents
        };
        let reader = Reader(self.as_sync().clone());
        async_lock::with_lock(&reader, &queues, Patience::Timeout, job)
            .await?
            .ok_or_else(|| self.as_sync().timeout_error())
    }

    /// Starts a transaction on every member, waiting for their locks as long
    /// as the timeout allows; see [`Batch::begin`].
    ///
    /// # Errors
    ///
    /// As for [`Batch::begin`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::open([dir.join("a"), dir.join("b")]).await?;
    /// let mut tx = batch.begin().await?;
    /// tx.member(0).write_all(b"left").await?;
    /// tx.member(1).write_all(b"right").await?;
    /// tx.commit().await?;
    /// assert_eq!(std::fs::read(dir.join("b"))?, b"right");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn begin(&self) -> Result<AsyncBatchTransaction, Error> {
        self.start(Patience::Timeout)
            .await?
            .ok_or_else(|| self.as_sync().timeout_error())
    }

    /// Starts a transaction on every member if all their locks are free
    /// right now; `Ok(None)` at once otherwise. See [`Batch::try_begin`].
    ///
    /// # Errors
    ///
    /// As for [`Batch::begin`], except that a held lock is `Ok(None)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::open([dir.join("a"), dir.join("b")]).await?;
    /// let held = batch.as_sync().members()[1].begin()?;
    /// assert!(batch.try_begin().await?.is_none());
    /// held.rollback();
    /// assert!(batch.try_begin().await?.is_some());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn try_begin(&self) -> Result<Option<AsyncBatchTransaction>, Error> {
        self.start(Patience::Now).await
    }

    async fn start(&self, patience: Patience) -> Result<Option<AsyncBatchTransaction>, Error> {
        let Some(pipe) = self.core.begin(patience).await? else {
            return Ok(None);
        };
        Ok(Some(AsyncBatchTransaction {
            pipe,
            members: self.as_sync().members().len(),
        }))
    }
}

impl Begin for Batch {
    type Tx = OwnedBatchTx;

    fn begin_tx(self, locks: Vec<Locked>) -> Result<OwnedBatchTx, Error> {
        OwnedBatchTx::try_new(self, |batch| batch.prepare(locks))
    }
}

impl Batch {
    fn path(&self) -> &Utf8Path {
        self.members()[0].path()
    }

    fn keys(&self) -> Result<Vec<(u64, u64, u64)>, Error> {
        let mut keys = self
            .members()
            .iter()
            .map(|member| member.handle.order_key())
            .collect::<Result<Vec<_>, _>>()?;
        keys.sort_unstable();
        keys.dedup();
        Ok(keys)
    }

    fn deadline(&self) -> Option<Instant> {
        match self.wait() {
            Wait::Until(deadline) => Some(deadline),
            Wait::No | Wait::Forever => None,
        }
    }

    fn locks(&self, mode: Mode, wait: Wait) -> Result<Option<Vec<Locked>>, Error> {
        // Without recording a thread as the owner: async transactions begin
        // on one thread and end on another.
        self.lock_recovered(mode, wait, None)
    }
}

impl Target for Batch {
    type Locks = Vec<Locked>;

    fn keys(&self) -> Result<Vec<(u64, u64, u64)>, Error> {
        Batch::keys(self)
    }

    fn try_lock(&self) -> Result<Option<Vec<Locked>>, Error> {
        self.locks(Mode::Exclusive, Wait::No)
    }

    fn wait_lock(&self) -> Result<Vec<Locked>, Error> {
        self.locks(Mode::Exclusive, Wait::Forever)?
            .ok_or_else(|| Batch::timeout_error(self))
    }

    fn deadline(&self) -> Option<Instant> {
        Batch::deadline(self)
    }

    fn timeout_error(&self) -> Error {
        Batch::timeout_error(self)
    }

    fn path(&self) -> &Utf8Path {
        Batch::path(self)
    }
}

/// A batch locked to read it: shared OS locks.
#[derive(Clone)]
struct Reader(Batch);

impl Target for Reader {
    type Locks = Vec<Locked>;

    fn keys(&self) -> Result<Vec<(u64, u64, u64)>, Error> {
        self.0.keys()
    }

    fn try_lock(&self) -> Result<Option<Vec<Locked>>, Error> {
        self.0.locks(Mode::Shared, Wait::No)
    }

    fn wait_lock(&self) -> Result<Vec<Locked>, Error> {
        self.0
            .locks(Mode::Shared, Wait::Forever)?
            .ok_or_else(|| self.0.timeout_error())
    }

    fn deadline(&self) -> Option<Instant> {
        self.0.deadline()
    }

    fn timeout_error(&self) -> Error {
        self.0.timeout_error()
    }

    fn path(&self) -> &Utf8Path {
        self.0.path()
    }
}

/// A batch transaction that owns its batch, so it can move between threads.
#[ouroboros::self_referencing]
pub(crate) struct OwnedBatchTx {
    batch: Batch,
    #[borrows(batch)]
    #[covariant]
    tx: BatchTransaction<'this>,
}

impl fmt::Debug for OwnedBatchTx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.borrow_tx().fmt(f)
    }
}

impl Sink for OwnedBatchTx {
    fn write(&mut self, member: usize, data: &[u8]) -> io::Result<()> {
        self.with_tx_mut(|tx| io::Write::write_all(tx.member(member), data))
    }
}

/// One locked update of every member of an [`AsyncBatch`]; see
/// [`AsyncBatch::begin`] and the sync [`BatchTransaction`].
///
/// Write each member's new contents through [`member`](Self::member), then
/// [`commit`](Self::commit). Dropping it without committing changes nothing
/// (the rollback runs on the blocking pool).
///
/// # Examples
///
/// ```
/// use tokio::io::AsyncWriteExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
/// let batch = txfile::AsyncBatch::open([dir.join("a"), dir.join("b")]).await?;
/// let mut tx = batch.begin().await?;
/// for i in 0..2 {
///     tx.member(i).write_all(b"same everywhere").await?;
/// }
/// tx.commit().await?;
/// # Ok(())
/// # }
/// ```
#[must_use = "a batch transaction changes nothing until it is committed; dropping it rolls back"]
pub struct AsyncBatchTransaction {
    pipe: Pipe<OwnedBatchTx>,
    members: usize,
}

impl fmt::Debug for AsyncBatchTransaction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncBatchTransaction")
            .field("members", &self.members)
            .finish_non_exhaustive()
    }
}

impl AsyncBatchTransaction {
    /// A writer for the new contents of member `index` (in the order the
    /// batch was given).
    ///
    /// # Panics
    ///
    /// When `index` is not less than the number of members.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::open([dir.join("a")]).await?;
    /// let mut tx = batch.begin().await?;
    /// tx.member(0).write_all(b"new").await?;
    /// tx.commit().await?;
    /// # Ok(())
    /// # }
    /// ```
    pub fn member(&mut self, index: usize) -> AsyncMember<'_> {
        assert!(
            index < self.members,
            "member {index} of a batch of {}",
            self.members
        );
        AsyncMember { tx: self, index }
    }

    /// Member `index`'s contents when the transaction began (`None` for a
    /// file that did not exist), read on the blocking pool on first call.
    ///
    /// # Errors
    ///
    /// [`Error::Io`] when reading fails, or when an earlier write handed to
    /// the blocking pool failed.
    ///
    /// # Panics
    ///
    /// When `index` is not less than the number of members.
    ///
    /// # Examples
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// # std::fs::write(dir.join("b"), "old b")?;
    /// let batch = txfile::AsyncBatch::open([dir.join("a"), dir.join("b")]).await?;
    /// let mut tx = batch.begin().await?;
    /// assert_eq!(tx.old_bytes(1).await?, Some(&b"old b"[..]));
    /// # Ok(())
    /// # }
    /// ```
    pub async fn old_bytes(&mut self, index: usize) -> Result<Option<&[u8]>, Error> {
        assert!(
            index < self.members,
            "member {index} of a batch of {}",
            self.members
        );
        let held = self.pipe.idle().await?;
        fn old(held: &Held<OwnedBatchTx>, index: usize) -> Option<Option<&[u8]>> {
            held.tx.borrow_tx().txs[index]
                .old
                .as_ref()
                .map(|old| old.cached())
        }
        if let Some(None) = old(held, index) {
            self.pipe
                .run(move |held| {
                    held.tx
                        .with_tx_mut(|tx| tx.member(index).old_bytes().map(drop))
                })
                .await?;
        }
        let held = self.pipe.get().ok_or_else(|| {
            Error::io(
                Op::Read,
                Utf8PathBuf::new(),
                io::Error::other("transaction lost"),
            )
        })?;
        Ok(old(held, index).map(Option::unwrap_or_default))
    }

    /// Commits every member as one, on the blocking pool; see
    /// [`BatchTransaction::commit`]. Once this future has been polled, the
    /// commit completes even if it is dropped.
    ///
    /// # Errors
    ///
    /// As for [`BatchTransaction::commit`]; also an error of an earlier
    /// write handed to the blocking pool, in which case nothing is committed.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::open([dir.join("a"), dir.join("b")]).await?;
    /// let mut tx = batch.begin().await?;
    /// tx.member(0).write_all(b"1").await?;
    /// tx.member(1).write_all(b"2").await?;
    /// tx.commit().await?;
    /// assert_eq!(std::fs::read(dir.join("a"))?, b"1");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn commit(self) -> Result<(), Error> {
        self.pipe
            .finish(|mut held| held.tx.with_tx_mut(|tx| tx.commit_in_place()))
            .await
    }

    /// Abandons every member's transaction and waits until the locks are
    /// released; dropping it does the same without waiting.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokio::io::AsyncWriteExt;
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::AsyncBatch::open([dir.join("a")]).await?;
    /// let mut tx = batch.begin().await?;
    /// tx.member(0).write_all(b"never mind").await?;
    /// tx.rollback().await;
    /// assert!(!dir.join("a").exists());
    /// # Ok(())
    /// # }
    /// ```
    pub async fn rollback(self) {
        self.pipe.rollback().await;
    }
}

/// The new contents of one member of an [`AsyncBatchTransaction`], written
/// through [`tokio::io::AsyncWrite`]; see [`AsyncBatchTransaction::member`].
///
/// # Examples
///
/// ```
/// use tokio::io::AsyncWriteExt;
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let dir = tempfile::tempdir()?;
/// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
/// let batch = txfile::AsyncBatch::open([dir.join("a")]).await?;
/// let mut tx = batch.begin().await?;
/// let mut member: txfile::AsyncMember<'_> = tx.member(0);
/// member.write_all(b"x").await?;
/// tx.commit().await?;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct AsyncMember<'a> {
    tx: &'a mut AsyncBatchTransaction,
    index: usize,
}

impl tokio::io::AsyncWrite for AsyncMember<'_> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        this.tx.pipe.poll_write(cx, this.index, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tx.pipe.poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.get_mut().tx.pipe.poll_flush(cx)
    }
}
