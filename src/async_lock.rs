//! How the async API (feature `tokio`) takes locks without blocking a
//! runtime thread, and runs the blocking steps of a transaction.
//!
//! The sync path serialises the threads of a process on the guard's turn
//! (a mutex and a condition variable) and then blocks in the kernel for the
//! OS lock. Neither may happen on a runtime worker. So, per guard:
//!
//! 1. async users queue on a tokio mutex, in FIFO order, waiting as tasks
//!    (a transaction started with `begin` queues itself; `update`s queue
//!    on their handle, whose runner queues here for them all: see
//!    [`async_handle`](crate::async_handle));
//! 2. the task at the head tries the lock without waiting, on the blocking
//!    pool (taking the lock also touches the disk: identity check, sweep,
//!    journal recovery, opening the old version);
//! 3. if it is held (by a sync user of this process or by another process),
//!    one dedicated thread waits for it in the kernel, still holding the
//!    head of the queue, so that at most one thread per guard ever blocks
//!    there however many tasks wait. A task that gives up (timeout, dropped
//!    future) leaves that thread behind: it takes the lock when it comes and
//!    lets go of it at once, then the next task in the queue tries.
//!
//! The head of the queue stays with the transaction until it ends, so the
//! next async task tries only when the lock is likely free, and never needs
//! a waiting thread just because another task of this process holds it.
//!
//! The thread is a plain thread, not one of the blocking pool: a lock that
//! another process never releases must not keep the runtime from shutting
//! down, which waits for the blocking pool.

use std::collections::BTreeMap;
use std::io;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll, ready};
use std::time::Instant;

use tokio::runtime::Handle;
use tokio::sync::{Mutex as AsyncMutex, OwnedMutexGuard, oneshot};
use tokio::task::JoinHandle;

use crate::Error;
use crate::error::Op;
use crate::trace::{step, wait_span};

/// A guard's identity, as `TxFile::order_key` gives it.
type Key = (u64, u64, u64);

/// One FIFO queue of async users per guard of this process.
pub(crate) type Queue = Arc<AsyncMutex<()>>;

/// The head of one guard's queue.
pub(crate) type Turn = OwnedMutexGuard<()>;

static QUEUES: Mutex<BTreeMap<Key, Weak<AsyncMutex<()>>>> = Mutex::new(BTreeMap::new());

/// The queue of the guard `key`, shared by every async handle on it.
pub(crate) fn queue(key: Key) -> Queue {
    let mut queues = QUEUES.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(queue) = queues.get(&key).and_then(Weak::upgrade) {
        return queue;
    }
    queues.retain(|_, queue| queue.strong_count() > 0);
    let queue = Arc::new(AsyncMutex::new(()));
    queues.insert(key, Arc::downgrade(&queue));
    queue
}

/// What the async API locks: one file or a batch of them.
pub(crate) trait Target: Clone + Send + Sync + 'static {
    /// The locks held, released on drop.
    type Locks: Send + 'static;
    /// The guards, in the order they must be locked in (deduplicated).
    /// Blocking: it may stat or open guard files.
    fn keys(&self) -> Result<Vec<Key>, Error>;
    /// The lock if it is free right now, with any pending batch journal
    /// recovered. Blocking.
    fn try_lock(&self) -> Result<Option<Self::Locks>, Error>;
    /// Waits in the kernel for the lock, with any pending batch journal
    /// recovered. Blocking.
    fn wait_lock(&self) -> Result<Self::Locks, Error>;
    /// When waiting for the lock ends with [`Error::Timeout`].
    fn deadline(&self) -> Option<Instant>;
    fn timeout_error(&self) -> Error;
    /// The path errors of the async layer itself name.
    fn path(&self) -> &camino::Utf8Path;
}

/// How long a caller is ready to wait.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Patience {
    /// `try_begin`: the lock now, or not at all.
    Now,
    /// Up to the configured timeout.
    Timeout,
}

/// The lock, the heads of its queues, and whatever `job` made of them on
/// the blocking pool; `Ok(None)` when `patience` is `Now` and the lock is
/// held. `job` runs once, with the lock held, and owns the turns: they end
/// when it drops them (after the locks), which may be after the returned
/// future was dropped.
pub(crate) async fn with_lock<T, J, R>(
    target: &T,
    queues: &[Queue],
    patience: Patience,
    job: J,
) -> Result<Option<R>, Error>
where
    T: Target,
    J: FnOnce(T, T::Locks, Vec<Turn>) -> Result<R, Error> + Send + 'static,
    R: Send + 'static,
{
    let deadline = match patience {
        Patience::Now => None,
        Patience::Timeout => target.deadline(),
    };
    // Waiting in the queue behind the other tasks of this process.
    let turns = {
        let _queued = wait_span!(target.path());
        let mut turns = Vec::with_capacity(queues.len());
        for queue in queues {
            let turn = match patience {
                Patience::Now => match Arc::clone(queue).try_lock_owned() {
                    Ok(turn) => turn,
                    Err(_) => return Ok(None),
                },
                Patience::Timeout => until(deadline, Arc::clone(queue).lock_owned())
                    .await
                    .ok_or_else(|| target.timeout_error())?,
            };
            turns.push(turn);
        }
        turns
    };
    // The common case, one trip to the blocking pool: the lock is free.
    let first = target.clone();
    let attempt = blocking(target.path(), move || match first.try_lock()? {
        Some(locks) => job(first, locks, turns).map(Attempt::Done),
        None => Ok(Attempt::Busy(turns, job)),
    })
    .await??;
    let (turns, job) = match attempt {
        Attempt::Done(done) => return Ok(Some(done)),
        Attempt::Busy(..) if patience == Patience::Now => return Ok(None),
        Attempt::Busy(turns, job) => (turns, job),
    };
    // Waiting for another process, or a sync user of this one.
    let (locks, turns) = {
        let _held_elsewhere = wait_span!(target.path());
        until(deadline, wait_in_kernel(target.clone(), turns))
            .await
            .ok_or_else(|| target.timeout_error())??
    };
    let target = target.clone();
    blocking(target.path().to_owned(), move || job(target, locks, turns))
        .await?
        .map(Some)
}

enum Attempt<R, J> {
    Done(R),
    Busy(Vec<Turn>, J),
}

/// `future`'s output, or `None` once `deadline` has passed.
pub(crate) async fn until<F: Future>(deadline: Option<Instant>, future: F) -> Option<F::Output> {
    match deadline {
        None => Some(future.await),
        Some(deadline) => tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), future)
            .await
            .ok(),
    }
}

/// Waits for the lock on one dedicated thread that holds `turns` meanwhile.
/// If the receiving future is gone when the lock comes, the thread drops
/// the lock, then the turns.
async fn wait_in_kernel<T: Target>(
    target: T,
    turns: Vec<Turn>,
) -> Result<(T::Locks, Vec<Turn>), Error> {
    let (send, receive) = oneshot::channel();
    let path = target.path().to_owned();
    // The turns go to the thread through this slot, so that they come back
    // if no thread can be started.
    let slot = Arc::new(Mutex::new(Some(turns)));
    let (waiter, thread_slot) = (target.clone(), Arc::clone(&slot));
    let spawned = std::thread::Builder::new()
        .name("txfile-async-lock".into())
        .spawn(move || {
            let turns = thread_slot
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .take();
            let locks = waiter.wait_lock();
            // Dropped in this order when nobody listens any more.
            let _ = send.send((locks, turns.unwrap_or_default()));
        });
    if spawned.is_ok() {
        let (locks, turns) = receive.await.map_err(|_| lost(&path))?;
        return Ok((locks?, turns));
    }
    // No thread to spare: try again and again, asynchronously. Processes
    // blocked in the kernel may get the lock first, but nothing is stuck.
    let turns = slot
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .take()
        .unwrap_or_default();
    let mut pause = std::time::Duration::from_millis(1);
    loop {
        let attempt = target.clone();
        if let Some(locks) = blocking(&path, move || attempt.try_lock()).await?? {
            return Ok((locks, turns));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(std::time::Duration::from_millis(50));
    }
}

pub(crate) fn lost(path: &camino::Utf8Path) -> Error {
    Error::io(
        Op::Lock,
        path,
        io::Error::other("the thread doing the blocking work ended without an answer"),
    )
}

/// Runs `f` on the blocking pool. A panic in `f` resumes in the caller, as
/// it would in the sync API.
pub(crate) async fn blocking<R: Send + 'static>(
    path: impl AsRef<camino::Utf8Path>,
    f: impl FnOnce() -> R + Send + 'static,
) -> Result<R, Error> {
    match tokio::task::spawn_blocking(f).await {
        Ok(result) => Ok(result),
        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
        Err(_) => Err(lost(path.as_ref())),
    }
}

/// Turns an `io::Error` made from an [`Error`] (as the sync `Write` impls
/// make them) back into that `Error`.
pub(crate) fn unwrap_io(e: io::Error, path: &camino::Utf8Path) -> Error {
    if e.get_ref().is_some_and(|inner| inner.is::<Error>()) {
        if let Some(inner) = e.into_inner() {
            match inner.downcast::<Error>() {
                Ok(error) => return *error,
                Err(other) => return Error::io(Op::Write, path, io::Error::other(other)),
            }
        }
        return Error::io(Op::Write, path, io::Error::other("write failed"));
    }
    Error::io(Op::Write, path, e)
}

/// A transaction held on the blocking side, with the heads of its queues.
/// Field order matters: the transaction (and its lock) ends first.
#[derive(Debug)]
pub(crate) struct Held<T> {
    pub(crate) tx: T,
    pub(crate) _turns: Vec<Turn>,
}

/// Something new contents can be written to.
pub(crate) trait Sink: Send + 'static {
    fn write(&mut self, member: usize, data: &[u8]) -> io::Result<()>;
}

/// Bytes given before they go to the transaction in one blocking call.
pub(crate) const CHUNK: usize = 64 * 1024;

/// The async side of a transaction: either idle, here, or busy on the
/// blocking pool. Writes are gathered into `pending` and handed over in
/// chunks; an error of a handed-over chunk comes back at the next call.
#[derive(Debug)]
pub(crate) struct Pipe<T: Sink> {
    state: State<T>,
    pending: Vec<u8>,
    /// The batch member `pending` belongs to.
    member: usize,
    runtime: Handle,
    path: camino::Utf8PathBuf,
}

type Job<T> = JoinHandle<(Box<Held<T>>, Result<(), Error>)>;

#[derive(Debug)]
enum State<T> {
    Idle(Box<Held<T>>),
    Busy(Job<T>),
    /// The blocking side panicked or the runtime shut down.
    Lost,
}

impl<T: Sink> Pipe<T> {
    pub(crate) fn new(held: Held<T>, runtime: Handle, path: camino::Utf8PathBuf) -> Pipe<T> {
        Pipe {
            state: State::Idle(Box::new(held)),
            pending: Vec::new(),
            member: 0,
            runtime,
            path,
        }
    }

    /// Waits for the blocking side to be back; its error, if any.
    pub(crate) fn poll_idle(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Error>> {
        let State::Busy(job) = &mut self.state else {
            return Poll::Ready(match self.state {
                State::Lost => Err(lost(&self.path)),
                _ => Ok(()),
            });
        };
        let result = ready!(std::pin::Pin::new(job).poll(cx));
        Poll::Ready(match result {
            Ok((held, result)) => {
                self.state = State::Idle(held);
                result
            }
            Err(e) => {
                self.state = State::Lost;
                if e.is_panic() {
                    std::panic::resume_unwind(e.into_panic());
                }
                Err(lost(&self.path))
            }
        })
    }

    pub(crate) async fn idle(&mut self) -> Result<&mut Held<T>, Error> {
        std::future::poll_fn(|cx| self.poll_idle(cx)).await?;
        match &mut self.state {
            State::Idle(held) => Ok(held),
            _ => Err(lost(&self.path)),
        }
    }

    /// The transaction, when no blocking call is running on it.
    pub(crate) fn get(&self) -> Option<&Held<T>> {
        match &self.state {
            State::Idle(held) => Some(held),
            _ => None,
        }
    }

    /// Starts `f` on the blocking side (which must be idle).
    fn start(&mut self, f: impl FnOnce(&mut Held<T>) -> Result<(), Error> + Send + 'static) {
        let State::Idle(mut held) = std::mem::replace(&mut self.state, State::Lost) else {
            return;
        };
        self.state = State::Busy(self.runtime.spawn_blocking(move || {
            let result = f(&mut held);
            (held, result)
        }));
    }

    /// Hands the pending bytes over, when there are any.
    fn start_flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        let data = std::mem::take(&mut self.pending);
        let member = self.member;
        let path = self.path.clone();
        self.start(move |held| {
            let _write = step!("write", path);
            held.tx
                .write(member, &data)
                .map_err(|e| unwrap_io(e, &path))
        });
    }

    pub(crate) fn poll_write(
        &mut self,
        cx: &mut Context<'_>,
        member: usize,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        loop {
            ready!(self.poll_idle(cx))?;
            if member != self.member && !self.pending.is_empty() {
                self.start_flush();
                continue;
            }
            self.member = member;
            if self.pending.len() < CHUNK {
                let n = buf.len().min(CHUNK - self.pending.len());
                self.pending.extend_from_slice(&buf[..n]);
                if self.pending.len() == CHUNK {
                    self.start_flush();
                }
                return Poll::Ready(Ok(n));
            }
            self.start_flush();
        }
    }

    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_idle(cx))?;
            if self.pending.is_empty() {
                return Poll::Ready(Ok(()));
            }
            self.start_flush();
        }
    }

    /// Runs `f` on the transaction on the blocking pool, after the pending
    /// bytes. If the returned future is dropped, `f` still runs to the end.
    pub(crate) async fn run(
        &mut self,
        f: impl FnOnce(&mut Held<T>) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        std::future::poll_fn(|cx| self.poll_flush(cx))
            .await
            .map_err(|e| unwrap_io(e, &self.path))?;
        self.start(f);
        std::future::poll_fn(|cx| self.poll_idle(cx)).await
    }

    /// Ends the transaction on the blocking pool with `f`, after the pending
    /// bytes; the lock and the turns go when `f` returns. If the returned
    /// future is dropped, `f` still runs to the end.
    pub(crate) async fn finish(
        mut self,
        f: impl FnOnce(Held<T>) -> Result<(), Error> + Send + 'static,
    ) -> Result<(), Error> {
        let held = std::mem::replace(&mut self.state, State::Lost);
        let data = std::mem::take(&mut self.pending);
        let (member, path) = (self.member, self.path.clone());
        let job = async move {
            let held = match held {
                State::Idle(held) => *held,
                State::Busy(job) => match job.await {
                    Ok((held, result)) => {
                        result?;
                        *held
                    }
                    Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                    Err(_) => return Err(lost(&path)),
                },
                State::Lost => return Err(lost(&path)),
            };
            let mut held = held;
            blocking(path.clone(), move || {
                if !data.is_empty() {
                    let _write = step!("write", path);
                    held.tx
                        .write(member, &data)
                        .map_err(|e| unwrap_io(e, &path))?;
                }
                f(held)
            })
            .await?
        };
        // Once started, it runs to the end even if this future is dropped.
        match self.runtime.spawn(job).await {
            Ok(result) => result,
            Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
            Err(_) => Err(lost(&self.path)),
        }
    }
}

impl<T: Sink> Pipe<T> {
    /// Abandons the transaction and waits until it is rolled back and the
    /// lock and the turns are released.
    pub(crate) async fn rollback(self) {
        let _ = self
            .finish(|held| {
                drop(held);
                Ok(())
            })
            .await;
    }
}

impl<T: Sink> Drop for Pipe<T> {
    fn drop(&mut self) {
        // Rolling back removes a file and unlocks: blocking calls, so they
        // go to the blocking pool. A busy job drops its transaction itself
        // when it ends; with the runtime gone, the drop happens here.
        if let State::Idle(held) = std::mem::replace(&mut self.state, State::Lost) {
            drop(self.runtime.spawn_blocking(move || drop(held)));
        }
    }
}
