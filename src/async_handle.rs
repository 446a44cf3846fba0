//! What [`AsyncTxFile`](crate::AsyncTxFile) and
//! [`AsyncBatch`](crate::AsyncBatch) share: the sync target, the async
//! queues of its guards, and the runner that runs queued updates.
//!
//! # Why a runner
//!
//! Handing the lock from one task's update to the next through the task
//! queue costs several thread wake-ups: the blocking thread that committed
//! gives up the queue's head, a runtime worker wakes and polls the next
//! task, which sends its update to the blocking pool, whose thread wakes.
//! On a loaded machine each wake-up waits for a core, and 8 tasks updating
//! one file reached about a third of what 8 threads do (BENCHMARKS.md).
//!
//! So `update` does not carry its own turn. It queues its update (the
//! closure, the caller's deadline, a channel for the answer) on the handle,
//! and whichever update finds no runner going starts one: a blocking-pool
//! thread that takes the queue's head and then runs the queued updates one
//! after another, each a whole transaction of its own (its own lock, its
//! own read, write, fsync, rename and release), until the queue is empty.
//! Tasks that queue meanwhile are woken only for their answer, off the path
//! from one commit to the next.
//!
//! # Why a syncer
//!
//! A durable commit releases the lock right after its rename and is
//! acknowledged once a directory fsync that started after the rename has
//! succeeded (`crate::group_sync`). A sync thread waits for that fsync
//! while another thread already holds the lock and writes the next version;
//! a runner that waited for it too would make every update pay it in turn.
//! So the runner hands the commit's answer to the handle's syncer and goes
//! on with the next update. The syncer, another blocking-pool thread while
//! answers wait for it, takes every answer handed to it so far (each given
//! after its commit's rename), waits for one directory fsync that starts
//! after that (shared with the process's other commits, as a sync thread's
//! wait is), and answers them all with its outcome: `Ok` once it succeeded,
//! the fsync's error for every one of them if it failed. Answers handed over
//! while that fsync runs wait for the next one.
//!
//! What stays as it is for sync threads:
//!
//! - each update takes and releases the in-process turn and the OS lock, so
//!   sync users of the process and other processes get the lock between two
//!   updates exactly as they would between two sync threads' updates;
//! - at most one thread per handle waits in the kernel: when the lock is
//!   held elsewhere the runner moves to a plain thread of its own and waits
//!   there (see [`async_lock`](crate::async_lock) for why a plain one);
//! - after every update the runner gives the queue's head back and takes it
//!   again only if no other task (a `begin`, another handle, a batch) waits
//!   for it; otherwise it queues again behind them, as a task;
//! - cancellation: an update whose future is gone before its turn comes is
//!   skipped, never started; one whose deadline passed before its turn is
//!   answered with [`Error::Timeout`]; one whose future is dropped while it
//!   runs rolls back if its closure had not returned, and commits otherwise.

use std::collections::VecDeque;
use std::fmt;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::runtime::Handle;
use tokio::sync::{OnceCell, oneshot};

use crate::{Error, TxFile};

use crate::async_lock::{
    self, Held, Patience, Pipe, Queue, Sink, Target, Turn, blocking, lost, until,
};
use crate::commit::DirSyncOwed;

/// An update as the runner runs it: with the target, its lock, and the
/// ticket that says whether its future is still there.
pub(crate) type Work<T> =
    Box<dyn FnOnce(&T, <T as Target>::Locks, &Ticket) -> Result<Committed, Error> + Send>;

/// What an update leaves to do after its lock is released, off the
/// runner's path.
#[derive(Default)]
pub(crate) struct Committed {
    /// The versions its commit replaced, still open: closing the last
    /// descriptor of a replaced file frees it, which can take milliseconds
    /// (the filesystem's journal), so the runner closes them on another
    /// thread and goes on with the next update, as a sync thread's close
    /// overlaps the next thread's transaction.
    pub(crate) replaced: Replaced,
    /// The directory fsync a durable commit still waits for: its answer
    /// goes to the syncer (see the module docs).
    pub(crate) owed: Option<(TxFile, DirSyncOwed)>,
}

/// Replaced versions, to be closed off the runner's path.
pub(crate) type Replaced = Vec<crate::state::OldFile>;

/// Where an update's future waits for its answer (a panic of its closure,
/// or its result).
type Answer = oneshot::Sender<std::thread::Result<Result<(), Error>>>;

/// A target whose transactions can be held across `.await`s.
pub(crate) trait Begin: Target {
    /// The transaction, owning what it borrows.
    type Tx: Sink + fmt::Debug;
    /// The transaction under `locks`. Blocking.
    fn begin_tx(self, locks: Self::Locks) -> Result<Self::Tx, Error>;
}

/// The state an async handle's clones share.
pub(crate) struct Core<T: Target> {
    target: T,
    /// The async queues of the target's guards, in locking order; found on
    /// first use (finding them may touch the disk, so once, on the blocking
    /// pool).
    queues: OnceCell<Vec<Queue>>,
    updates: Mutex<Updates<T>>,
    syncs: Mutex<Syncs>,
    #[cfg(test)]
    broken: AtomicU8,
}

/// Deliberately broken runners, for showing that the tests below catch
/// each (the `Mutant`s of the commit protocol, for the async layer).
#[cfg(test)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum Broken {
    None,
    /// Hands every update over through the task queue, as txfile 0.1's
    /// async layer did: each one waits for a runtime worker.
    HandOverEach,
    /// Keeps the queues' head from one update to the next, so that a
    /// `begin` waits until no update is queued.
    KeepHead,
    /// Runs an update whose future is gone as if it were still there.
    RunGivenUp,
    /// Waits for each durable commit's directory fsync on the runner, before
    /// the next update (the runner as it was before the syncer).
    SyncOnRunner,
    /// Answers a durable commit right after its rename, without waiting for
    /// a directory fsync.
    AckAtRename,
    /// Answers the commits handed to the syncer while its fsync ran with
    /// that fsync's outcome, though it may have started before their
    /// renames.
    AckWithRunningSync,
    /// Gives a failed fsync's error to the first commit it covered only;
    /// the others are answered `Ok`.
    FailOnlyFirst,
}

struct Updates<T: Target> {
    waiting: VecDeque<Job<T>>,
    /// A runner exists: running, waiting for the lock, or queued for the
    /// queues' head. New updates only join `waiting` then.
    running: bool,
}

struct Job<T: Target> {
    work: Work<T>,
    ticket: Ticket,
    deadline: Option<Instant>,
    answer: Answer,
    /// Time in the queue, as the `txfile.lock_wait` span: it ends when the
    /// update starts or is skipped.
    _queued: crate::trace::Waiting,
}

/// Durable commits whose lock is released, with the answers that wait for
/// a directory fsync to cover their renames.
#[derive(Default)]
struct Syncs {
    waiting: Vec<Ack>,
    /// A syncer exists: fsyncing, or about to take `waiting`. New answers
    /// only join `waiting` then.
    running: bool,
}

/// An answer handed to the syncer, after its commit's rename.
struct Ack {
    file: TxFile,
    owed: DirSyncOwed,
    answer: Answer,
}

const QUEUED: u8 = 0;
const RUNNING: u8 = 1;
const GONE: u8 = 2;

/// Where one queued update stands: queued, running, or given up by its
/// future (dropped, or timed out while queued).
#[derive(Debug, Default)]
pub(crate) struct Ticket(Arc<AtomicU8>);

impl Ticket {
    /// Whether the update's future is gone: a running update then rolls
    /// back unless its closure has returned.
    pub(crate) fn gone(&self) -> bool {
        self.0.load(Ordering::Acquire) == GONE
    }

    /// The runner takes the update; false when its future gave it up.
    fn start(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, RUNNING, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// The future gives up an update that has not started; false when it
    /// has (it then runs to its end).
    fn withdraw(&self) -> bool {
        self.0
            .compare_exchange(QUEUED, GONE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn share(&self) -> Ticket {
        Ticket(Arc::clone(&self.0))
    }
}

/// Held by the future of an update: dropping it gives the update up.
struct Leave(Ticket);

impl Drop for Leave {
    fn drop(&mut self) {
        self.0.0.store(GONE, Ordering::Release);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing that can panic runs while it is held.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<T: Target + fmt::Debug> fmt::Debug for Core<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.target.fmt(f)
    }
}

impl<T: Target> Core<T> {
    pub(crate) fn new(target: T) -> Arc<Core<T>> {
        Arc::new(Core {
            target,
            queues: OnceCell::new(),
            updates: Mutex::new(Updates {
                waiting: VecDeque::new(),
                running: false,
            }),
            syncs: Mutex::default(),
            #[cfg(test)]
            broken: AtomicU8::new(Broken::None as u8),
        })
    }

    #[cfg(test)]
    pub(crate) fn set_broken(&self, broken: Broken) {
        self.broken.store(broken as u8, Ordering::Relaxed);
    }

    #[cfg(test)]
    fn broken(&self, broken: Broken) -> bool {
        self.broken.load(Ordering::Relaxed) == broken as u8
    }

    pub(crate) fn target(&self) -> &T {
        &self.target
    }

    pub(crate) async fn queues(&self) -> Result<Vec<Queue>, Error> {
        let queues = self
            .queues
            .get_or_try_init(|| async {
                let target = self.target.clone();
                let keys = blocking(self.target.path(), move || target.keys()).await??;
                Ok::<_, Error>(keys.into_iter().map(async_lock::queue).collect())
            })
            .await?;
        Ok(queues.clone())
    }

    /// Queues `work` and waits for its answer; see the module docs.
    pub(crate) async fn update(self: &Arc<Self>, work: Work<T>) -> Result<(), Error> {
        let queues = self.queues().await?;
        let ticket = Ticket::default();
        let leave = Leave(ticket.share());
        let (answer, mut answered) = oneshot::channel();
        let deadline = self.target.deadline();
        let start = {
            let mut updates = lock(&self.updates);
            updates.waiting.push_back(Job {
                work,
                ticket: ticket.share(),
                deadline,
                answer,
                _queued: crate::trace::wait_span!(self.target.path()),
            });
            !std::mem::replace(&mut updates.running, true)
        };
        if start {
            Runner {
                core: Arc::clone(self),
                queues,
                turns: Vec::new(),
                runtime: Handle::current(),
                done: false,
            }
            .resume();
        }
        let answer = match until(deadline, &mut answered).await {
            Some(answer) => answer,
            None if ticket.withdraw() => return Err(self.target.timeout_error()),
            // Started before the deadline: the lock was taken in time.
            None => answered.await,
        };
        drop(leave);
        match answer {
            Ok(Ok(result)) => result,
            Ok(Err(panic)) => std::panic::resume_unwind(panic),
            Err(_) => Err(lost(self.target.path())),
        }
    }
}

impl<T: Begin> Core<T> {
    /// A transaction, held across `.await`s; `Ok(None)` when `patience` is
    /// `Now` and the lock is held.
    pub(crate) async fn begin(&self, patience: Patience) -> Result<Option<Pipe<T::Tx>>, Error> {
        let queues = self.queues().await?;
        let runtime = Handle::current();
        let job = move |target: T, locks: T::Locks, turns: Vec<Turn>| {
            let path = target.path().to_owned();
            let tx = target.begin_tx(locks)?;
            Ok(Pipe::new(Held { tx, _turns: turns }, runtime, path))
        };
        async_lock::with_lock(&self.target, &queues, patience, job).await
    }
}

/// The one runner of a handle's queued updates, with the heads of the
/// target's queues while it runs them. Dropped without finishing (the
/// runtime shut down under it), it fails the updates still queued.
struct Runner<T: Target> {
    core: Arc<Core<T>>,
    queues: Vec<Queue>,
    turns: Vec<Turn>,
    runtime: Handle,
    /// No update was left: `running` is cleared, by this runner.
    done: bool,
}

/// Where the runner runs, which decides how it waits for a held lock.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Place {
    /// A blocking-pool thread: it must not wait in the kernel, which could
    /// keep the runtime from shutting down.
    Pool,
    /// Its own plain thread: it waits in the kernel.
    Plain,
    /// No plain thread could be started: it tries again and again.
    Polling,
}

impl<T: Target> Runner<T> {
    /// Takes the queues' heads, at once if they are free (then straight to
    /// the blocking pool), else as a task waiting its turn behind the others.
    fn resume(mut self) {
        if self.try_turns() {
            let runtime = self.runtime.clone();
            drop(runtime.spawn_blocking(move || self.run(Place::Pool)));
            return;
        }
        self.queue_behind();
    }

    /// Waits for the queues' heads as a task, then goes on on the blocking
    /// pool.
    fn queue_behind(mut self) {
        self.turns.clear();
        let runtime = self.runtime.clone();
        drop(runtime.spawn(async move {
            for queue in &self.queues {
                self.turns.push(Arc::clone(queue).lock_owned().await);
            }
            let runtime = self.runtime.clone();
            drop(runtime.spawn_blocking(move || self.run(Place::Pool)));
        }));
    }

    /// Every head at once, or none.
    fn try_turns(&mut self) -> bool {
        debug_assert!(self.turns.is_empty());
        for queue in &self.queues {
            match Arc::clone(queue).try_lock_owned() {
                Ok(turn) => self.turns.push(turn),
                Err(_) => {
                    self.turns.clear();
                    return false;
                }
            }
        }
        true
    }

    /// Runs the queued updates until none is left. Blocking.
    fn run(mut self, mut place: Place) {
        let mut pause = Duration::from_millis(1);
        while self.any_left() {
            if self.turns.is_empty() && !self.try_turns() {
                // Someone waits for the queues' head (a `begin`, another
                // handle or batch on these guards): first come, first
                // served, so queue behind them.
                return self.resume();
            }
            let locks = match self.core.target.try_lock() {
                Ok(Some(locks)) => locks,
                Ok(None) if place == Place::Pool => match self.wait_elsewhere() {
                    Ok(()) => return,
                    Err(runner) => {
                        self = runner;
                        place = Place::Polling;
                        continue;
                    }
                },
                Ok(None) if place == Place::Polling => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(Duration::from_millis(50));
                    continue;
                }
                Ok(None) => match self.core.target.wait_lock() {
                    Ok(locks) => locks,
                    Err(e) => {
                        self.fail_first(e);
                        continue;
                    }
                },
                Err(e) => {
                    self.fail_first(e);
                    continue;
                }
            };
            pause = Duration::from_millis(1);
            let Some(job) = self.next() else {
                // Every update given up while the lock was coming.
                drop(locks);
                continue;
            };
            let (work, ticket, answer) = job.begin();
            let target = &self.core.target;
            #[cfg(test)]
            let ticket = match self.core.broken(Broken::RunGivenUp) {
                true => Ticket::default(),
                false => ticket,
            };
            let (result, owed) =
                match std::panic::catch_unwind(AssertUnwindSafe(|| work(target, locks, &ticket))) {
                    Ok(Ok(Committed { replaced, owed })) => {
                        if !replaced.is_empty() {
                            drop(self.runtime.spawn_blocking(move || drop(replaced)));
                        }
                        (Ok(Ok(())), owed)
                    }
                    Ok(Err(error)) => (Ok(Err(error)), None),
                    Err(panic) => (Err(panic), None),
                };
            #[cfg(test)]
            if self.core.broken(Broken::KeepHead) {
                self.answer(result, owed, answer);
                continue;
            }
            // The lock is free by now; the queues' heads go before the
            // answer, so that its task finds everything free, and whoever
            // waits for them gets them now.
            self.turns.clear();
            self.answer(result, owed, answer);
            #[cfg(test)]
            if self.core.broken(Broken::HandOverEach) {
                return self.queue_behind();
            }
        }
    }

    /// Answers an update that ran: at once, or once the directory fsync its
    /// commit owes has succeeded (by the syncer).
    fn answer(
        &self,
        result: std::thread::Result<Result<(), Error>>,
        owed: Option<(TxFile, DirSyncOwed)>,
        answer: Answer,
    ) {
        let Some((file, owed)) = owed else {
            let _ = answer.send(result);
            return;
        };
        #[cfg(test)]
        if self.core.broken(Broken::SyncOnRunner) {
            let _ = answer.send(Ok(owed.wait(&file.handle)));
            return;
        }
        #[cfg(test)]
        if self.core.broken(Broken::AckAtRename) {
            let _ = answer.send(result);
            return;
        }
        let ack = Ack { file, owed, answer };
        let start = {
            let mut syncs = lock(&self.core.syncs);
            syncs.waiting.push(ack);
            !std::mem::replace(&mut syncs.running, true)
        };
        if start {
            let syncer = Syncer {
                core: Arc::clone(&self.core),
                done: false,
            };
            drop(self.runtime.spawn_blocking(move || syncer.run()));
        }
    }

    /// Whether an update is left to run. When none is, the runner ends,
    /// under the same lock as updates queue under, so that an update either
    /// finds it going or starts the next one.
    fn any_left(&mut self) -> bool {
        let mut ended = Vec::new();
        let mut updates = lock(&self.core.updates);
        while let Some(job) = updates.waiting.front() {
            if !job.ticket.gone() && !job.expired() {
                break;
            }
            #[cfg(test)]
            if self.core.broken(Broken::RunGivenUp) {
                break;
            }
            ended.extend(updates.waiting.pop_front());
        }
        let left = !updates.waiting.is_empty();
        if !left {
            updates.running = false;
            self.turns.clear();
            self.done = true;
        }
        drop(updates);
        self.answer_expired(ended);
        left
    }

    /// The first update still wanted, taken by the runner.
    fn next(&mut self) -> Option<Job<T>> {
        let mut ended = Vec::new();
        let mut updates = lock(&self.core.updates);
        #[cfg(test)]
        if self.core.broken(Broken::RunGivenUp) {
            let job = updates.waiting.pop_front();
            job.as_ref().map(|job| job.ticket.start());
            return job;
        }
        let next = loop {
            match updates.waiting.pop_front() {
                Some(job) if !job.expired() && job.ticket.start() => break Some(job),
                Some(job) => ended.push(job),
                None => break None,
            }
        };
        drop(updates);
        self.answer_expired(ended);
        next
    }

    /// Answers the updates whose deadline passed while they were queued,
    /// and drops the given-up ones (their closures) outside the lock.
    fn answer_expired(&self, ended: Vec<Job<T>>) {
        for job in ended {
            if job.ticket.withdraw() {
                let _ = job.answer.send(Ok(Err(self.core.target.timeout_error())));
            }
        }
    }

    /// Gives `error` (taking the lock failed) to the first update still
    /// wanted.
    fn fail_first(&mut self, error: Error) {
        if let Some(job) = self.next() {
            self.turns.clear();
            let _ = job.answer.send(Ok(Err(error)));
        }
    }

    /// Moves to a plain thread of its own to wait for the lock in the
    /// kernel; gives the runner back when no thread can be started.
    fn wait_elsewhere(self) -> Result<(), Runner<T>> {
        // The runner goes to the thread through this slot, so that it comes
        // back if the thread cannot be started.
        let slot = Arc::new(Mutex::new(Some(self)));
        let thread_slot = Arc::clone(&slot);
        let spawned = std::thread::Builder::new()
            .name("txfile-async-lock".into())
            .spawn(move || {
                if let Some(runner) = lock(&thread_slot).take() {
                    runner.run(Place::Plain);
                }
            });
        match spawned {
            Ok(_) => Ok(()),
            Err(_) => lock(&slot).take().map_or(Ok(()), Err),
        }
    }
}

impl<T: Target> Job<T> {
    fn expired(&self) -> bool {
        self.deadline
            .is_some_and(|deadline| Instant::now() >= deadline)
    }

    /// What running it takes; its time in the queue ends here.
    fn begin(self) -> (Work<T>, Ticket, Answer) {
        (self.work, self.ticket, self.answer)
    }
}

impl<T: Target> Drop for Runner<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        // Dropped without finishing: nobody would run what is queued. The
        // futures waiting for it get an error; a later update starts anew.
        let waiting = {
            let mut updates = lock(&self.core.updates);
            updates.running = false;
            std::mem::take(&mut updates.waiting)
        };
        self.turns.clear();
        drop(waiting);
    }
}

/// The syncer of a handle's durable commits (see the module docs). Dropped
/// without finishing (the runtime shut down before it ran), it drops the
/// answers waiting for it: their futures get an error, never `Ok`.
struct Syncer<T: Target> {
    core: Arc<Core<T>>,
    /// No answer was left: `running` is cleared, by this syncer.
    done: bool,
}

impl<T: Target> Syncer<T> {
    /// Answers the commits handed over until none is left. Blocking.
    fn run(mut self) {
        loop {
            let mut acks = {
                let mut syncs = lock(&self.core.syncs);
                if syncs.waiting.is_empty() {
                    syncs.running = false;
                    self.done = true;
                    return;
                }
                std::mem::take(&mut syncs.waiting)
            };
            let Some(first) = acks.first() else {
                continue;
            };
            // Every one of `acks` was handed over after its rename, so a
            // directory fsync that starts after this call covers them all.
            // (They are commits of this handle: one file, one directory.)
            #[cfg_attr(not(test), allow(unused_mut))]
            let mut synced = first.owed.wait_io(&first.file.handle);
            #[cfg(test)]
            if self.core.broken(Broken::AckWithRunningSync) {
                acks.append(&mut lock(&self.core.syncs).waiting);
            }
            for ack in acks.drain(..) {
                let result = match &synced {
                    Ok(()) => Ok(()),
                    Err(e) => Err(ack.owed.error(&ack.file.handle, same_error(e))),
                };
                let _ = ack.answer.send(Ok(result));
                #[cfg(test)]
                if self.core.broken(Broken::FailOnlyFirst) {
                    synced = Ok(());
                }
            }
        }
    }
}

impl<T: Target> Drop for Syncer<T> {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let waiting = {
            let mut syncs = lock(&self.core.syncs);
            syncs.running = false;
            std::mem::take(&mut syncs.waiting)
        };
        drop(waiting);
    }
}

/// One fsync's error, for each of the commits it failed.
fn same_error(error: &std::io::Error) -> std::io::Error {
    match error.raw_os_error() {
        Some(code) => std::io::Error::from_raw_os_error(code),
        None => std::io::Error::new(error.kind(), error.to_string()),
    }
}

#[cfg(test)]
// The tests print what they measured, for the closing notes.
#[allow(clippy::print_stdout)]
mod tests {
    use std::path::Path;
    use std::sync::{Arc, Condvar, Mutex};
    use std::time::{Duration, Instant};

    use super::Broken;
    use crate::{AsyncTxFile, Durability, Error, Options};

    fn increment(old: Option<&[u8]>) -> Result<Vec<u8>, Error> {
        Ok((count(old) + 1).to_string().into_bytes())
    }

    fn count(bytes: Option<&[u8]>) -> u64 {
        bytes.map_or(0, |b| String::from_utf8_lossy(b).parse().expect("a count"))
    }

    fn read_count(path: &Path) -> u64 {
        count(std::fs::read(path).ok().as_deref())
    }

    fn two_workers() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime")
    }

    fn open(path: &Path, broken: Broken, timeout: Option<Duration>) -> AsyncTxFile {
        let mut options = Options::new().durability(Durability::None);
        if let Some(timeout) = timeout {
            options = options.timeout(timeout);
        }
        let file = AsyncTxFile::from(options.open(path).expect("open"));
        file.core().set_broken(broken);
        file
    }

    /// Queues an update from each of 8 tasks on a one-thread runtime, then
    /// blocks that thread for up to `patience`: how many updates committed
    /// meanwhile (plus the first, made before).
    fn committed_while_runtime_blocked(broken: Broken, patience: Duration) -> u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("counter");
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(async {
            let file = open(&path, broken, None);
            file.update(increment).await.expect("first update");
            let tasks: Vec<_> = (0..8)
                .map(|_| {
                    let file = file.clone();
                    tokio::spawn(async move { file.update(increment).await })
                })
                .collect();
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            // Deliberately blocking the runtime's only thread.
            let deadline = Instant::now() + patience;
            while read_count(&path) < 9 && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            let seen = read_count(&path);
            for task in tasks {
                task.await.expect("task").expect("update");
            }
            assert_eq!(read_count(&path), 9);
            seen
        })
    }

    /// The updates queued on a handle go one after another on the runner's
    /// thread: none waits for a runtime worker to hand it over, so all
    /// commit while the runtime cannot run a single task.
    #[test]
    fn queued_updates_run_without_a_runtime_worker() {
        let seen = committed_while_runtime_blocked(Broken::None, Duration::from_secs(30));
        println!("updates committed with the runtime blocked: {seen} of 9");
        assert_eq!(seen, 9);
        // The hand-over of txfile 0.1 (through the task queue) gets at
        // most one update through, then waits for the runtime.
        let seen = committed_while_runtime_blocked(Broken::HandOverEach, Duration::from_secs(1));
        println!("handing over through the task queue: {seen} of 9");
        assert!(seen <= 2, "{seen}");
    }

    /// 200 tasks queue an update each, whose closure waits at a gate; a
    /// `begin` comes after them, then the gate opens: how many updates
    /// commit before the `begin` gets the lock.
    fn updates_before_begin(broken: Broken) -> u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("counter");
        two_workers().block_on(async {
            let file = open(&path, broken, None);
            let gate = Arc::new((Mutex::new(false), Condvar::new()));
            let updaters: Vec<_> = (0..200)
                .map(|_| {
                    let (file, gate) = (file.clone(), Arc::clone(&gate));
                    tokio::spawn(async move {
                        file.update(move |old| {
                            let (open, opened) = &*gate;
                            let open = open.lock().expect("gate");
                            drop(opened.wait_while(open, |open| !*open).expect("gate"));
                            increment(old)
                        })
                        .await
                        .expect("update");
                    })
                })
                .collect();
            // The first update now waits at the gate, holding the lock.
            tokio::time::sleep(Duration::from_millis(200)).await;
            let begin = tokio::spawn({
                let file = file.clone();
                async move {
                    let mut tx = file.begin().await.expect("begin");
                    let seen = count(tx.old_bytes().await.expect("old bytes"));
                    tx.rollback().await;
                    seen
                }
            });
            tokio::time::sleep(Duration::from_millis(300)).await;
            *gate.0.lock().expect("gate") = true;
            gate.1.notify_all();
            let seen = begin.await.expect("begin task");
            for updater in updaters {
                updater.await.expect("updater");
            }
            assert_eq!(read_count(&path), 200);
            seen
        })
    }

    /// A `begin` waits behind the update that holds the lock, not behind
    /// every update queued on the handle: the runner gives the queues' head
    /// back after each update.
    #[test]
    fn begin_is_not_starved_by_queued_updates() {
        let (fair, keep_head) = (
            updates_before_begin(Broken::None),
            updates_before_begin(Broken::KeepHead),
        );
        println!("updates committed before the begin: {fair}; keeping the head: {keep_head}");
        assert!(fair <= 2, "{fair}");
        assert!(keep_head > 100, "{keep_head}");
    }

    /// An update held in the runner's queue behind a slow one, whose
    /// future then times out (after the handle's 300 ms) or is dropped:
    /// what the file counts once a last update went through.
    fn count_after_given_up_updates(broken: Broken) -> u64 {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("counter");
        two_workers().block_on(async {
            let file = open(&path, broken, Some(Duration::from_millis(300)));
            let slow = tokio::spawn({
                let file = file.clone();
                async move {
                    file.update(|old| {
                        std::thread::sleep(Duration::from_secs(1));
                        increment(old)
                    })
                    .await
                }
            });
            tokio::time::sleep(Duration::from_millis(100)).await;
            let timed_out = file.update(increment).await;
            assert!(
                matches!(timed_out, Err(Error::Timeout { .. })),
                "{timed_out:?}"
            );
            let dropped = tokio::time::timeout(Duration::from_millis(100), file.update(increment));
            assert!(dropped.await.is_err(), "the update is still queued");
            slow.await.expect("slow task").expect("slow update");
            file.update(increment).await.expect("last update");
            read_count(&path)
        })
    }

    /// Given-up updates never run: neither the one that timed out in the
    /// queue nor the one whose future was dropped.
    #[test]
    fn given_up_updates_never_run() {
        assert_eq!(count_after_given_up_updates(Broken::None), 2);
        assert_eq!(count_after_given_up_updates(Broken::RunGivenUp), 4);
    }

    /// What the runner and the syncer did with three durable updates of one
    /// handle on the simulated disk: the first update's directory fsync is
    /// held (after it ran, before it returned) while two more are queued,
    /// until both have renamed or 2 s have passed; then it returns and, if
    /// `fail` says so, the next directory fsync fails. Power is lost once
    /// all three are answered.
    #[cfg(feature = "sim")]
    #[derive(Debug)]
    struct HeldSync {
        /// The first update's directory fsync was held.
        held: bool,
        /// The two others renamed while it was held.
        overlapped: bool,
        /// The first update was answered while its fsync was held.
        answered_early: bool,
        /// The answers of the others (`Ok` or the error's text).
        others: Vec<Result<(), String>>,
        /// A directory fsync ran after the last rename before the last
        /// answer.
        last_covered: bool,
        /// Post-crash states that lack an update answered `Ok`, of how many.
        lost: usize,
        states: usize,
    }

    #[cfg(feature = "sim")]
    fn held_sync(broken: Broken, fail: bool) -> HeldSync {
        use std::sync::mpsc;

        use crate::sim::{Enumeration, Fault, OpKind, SimFs};

        fn append(
            suffix: u8,
        ) -> impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, Error> + Send + 'static {
            move |old| Ok([old.unwrap_or_default(), &[suffix]].concat())
        }

        let sim = SimFs::new();
        sim.create_dir_all("/d").expect("mkdir");
        let sync = Options::new().filesystem(&sim).open("/d/a").expect("open");
        // The guard file and a first version, before the fsync is held.
        sync.update(|_| Ok::<_, Error>(b"v".to_vec()))
            .expect("seed");
        let (held_tx, held) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        sim.after_next(OpKind::SyncDir, move || {
            let _ = held_tx.send(());
            let _ = release_rx.recv_timeout(Duration::from_secs(10));
        });
        let start = sim.op_count();
        two_workers().block_on(async {
            let file = AsyncTxFile::from(sync);
            file.core().set_broken(broken);
            let update = |suffix| {
                let file = file.clone();
                tokio::spawn(async move { file.update(append(suffix)).await })
            };
            let first = update(b'A');
            let held = tokio::task::spawn_blocking(move || {
                held.recv_timeout(Duration::from_secs(2)).is_ok()
            })
            .await
            .expect("waiting for the hold");
            let others = [update(b'B'), update(b'C')];
            let deadline = Instant::now() + Duration::from_secs(2);
            let renamed = |sim: &SimFs| {
                sim.read_file("/d/a")
                    .expect("read")
                    .is_some_and(|v| v.len() == 4)
            };
            while !renamed(&sim) && Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            let overlapped = renamed(&sim);
            let answered_early = first.is_finished();
            if fail {
                // Once the runner has ended (after the last release), the
                // next operation is the syncer's fsync for both.
                while super::lock(&file.core().updates).running && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                sim.fail_at(sim.op_count(), Fault::Io);
            }
            let _ = release.send(());
            let within = Duration::from_secs(20);
            let first = tokio::time::timeout(within, first).await.expect("answered");
            first.expect("first task").expect("first update");
            let mut answers = Vec::new();
            for other in others {
                let answer = tokio::time::timeout(within, other).await.expect("answered");
                answers.push(answer.expect("task").map_err(|e| e.to_string()));
            }
            let trace = sim.trace();
            let last_rename = trace
                .iter()
                .filter(|op| op.index >= start && op.kind == OpKind::Rename)
                .map(|op| op.index)
                .max()
                .expect("renames");
            let last_covered = trace
                .iter()
                .any(|op| op.index > last_rename && op.kind == OpKind::SyncDir);
            sim.crash_now();
            let must: Vec<u8> = [(b'A', &Ok(())), (b'B', &answers[0]), (b'C', &answers[1])]
                .into_iter()
                .filter(|(_, answer)| answer.is_ok())
                .map(|(suffix, _)| suffix)
                .collect();
            let (mut lost, mut states) = (0, 0);
            for state in sim.crash_states(&Enumeration::new()).expect("bound") {
                states += 1;
                let got = state.read_file("/d/a").expect("read").unwrap_or_default();
                if !must.iter().all(|suffix| got.contains(suffix)) {
                    lost += 1;
                }
            }
            HeldSync {
                held,
                overlapped,
                answered_early,
                others: answers,
                last_covered,
                lost,
                states,
            }
        })
    }

    /// While a durable update waits for its directory fsync, the runner
    /// already runs the next updates (as a second sync thread would); the
    /// waiting update is answered only after that fsync returned, the later
    /// ones after a fsync that started after their renames, and a power cut
    /// then loses none of them. The runner that waits for each fsync itself
    /// (as before the syncer) runs nothing meanwhile.
    #[cfg(feature = "sim")]
    #[test]
    fn the_runner_goes_on_while_a_commit_waits_for_its_directory_fsync() {
        let fixed = held_sync(Broken::None, false);
        println!("syncer: {fixed:?}");
        assert!(
            fixed.held && fixed.overlapped && fixed.last_covered,
            "{fixed:?}"
        );
        assert!(!fixed.answered_early, "{fixed:?}");
        assert!(fixed.others.iter().all(Result::is_ok), "{fixed:?}");
        assert!(fixed.lost == 0 && fixed.states > 0, "{fixed:?}");
        let serial = held_sync(Broken::SyncOnRunner, false);
        println!("fsync on the runner: {serial:?}");
        assert!(serial.held && !serial.overlapped, "{serial:?}");
    }

    /// The answers given too early are caught: right after the rename, or
    /// with the outcome of an fsync already running when their commits
    /// were handed over (it may have started before their renames).
    #[cfg(feature = "sim")]
    #[test]
    fn early_answers_are_caught_by_the_held_fsync() {
        let at_rename = held_sync(Broken::AckAtRename, false);
        println!("answered at the rename: {at_rename:?}");
        assert!(at_rename.answered_early, "{at_rename:?}");
        assert!(at_rename.lost > 0, "{at_rename:?}");
        let running = held_sync(Broken::AckWithRunningSync, false);
        println!("answered with the running fsync: {running:?}");
        assert!(!running.last_covered, "{running:?}");
        assert!(running.lost > 0, "{running:?}");
    }

    /// The fsync the syncer ran for two commits fails: both are answered
    /// with its error (invariant 3), and the first, covered before, is
    /// kept. Answering only one of them with it is caught.
    #[cfg(feature = "sim")]
    #[test]
    fn a_failed_directory_fsync_fails_every_answer_it_covered() {
        let failed = held_sync(Broken::None, true);
        println!("failed fsync: {failed:?}");
        assert!(failed.held && failed.overlapped, "{failed:?}");
        assert!(failed.others.iter().all(Result::is_err), "{failed:?}");
        assert!(
            failed
                .others
                .iter()
                .all(|answer| answer.as_ref().is_err_and(|e| e.contains("/d"))),
            "{failed:?}"
        );
        assert_eq!(failed.lost, 0, "{failed:?}");
        let only_first = held_sync(Broken::FailOnlyFirst, true);
        println!("failing only the first: {only_first:?}");
        assert!(
            only_first.others.iter().any(Result::is_ok),
            "{only_first:?}"
        );
        assert!(only_first.lost > 0, "{only_first:?}");
    }
}
