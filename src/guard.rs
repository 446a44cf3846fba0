//! The guard file `<name>.lock`: one descriptor per process, shared by every
//! handle and thread, locked in-process before the OS lock is taken.
//!
//! POSIX record locks belong to the process and vanish when it closes *any*
//! descriptor of the file. So the registry below keeps at most one descriptor
//! per guard inode (keyed by filesystem, device and inode), never closes it
//! while a handle or transaction can still use it, and never opens a guard
//! path again while that path's inode is registered. Closing happens under
//! the registry lock, so no other thread can open and lock a second
//! descriptor of the same inode while the first is being closed.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use camino::Utf8Path;

use crate::error::Op;
use crate::fs::{Fs, GuardFile, Kind, LockHeld, Marker, Meta};
use crate::{Error, LockStyle};

/// (filesystem id, device, inode).
type Key = (u64, u64, u64);

#[derive(Debug)]
struct Entry {
    file: Box<dyn GuardFile>,
    /// Who in this process holds the guard.
    turn: Mutex<Turn>,
    turn_free: Condvar,
    /// The OS shared lock, held for as long as `Turn::readers` is not zero.
    shared_os: Mutex<Option<Box<dyn LockHeld>>>,
    /// Whether a holder in this process has swept the directory yet: the
    /// first one always does, for temporary files a power loss left behind
    /// (the guard's marker is not durable).
    swept: AtomicBool,
    /// Descriptors opened by a lost race for an inode that was registered
    /// meanwhile. Closing them early could release POSIX locks held through
    /// `file`, so they are closed with the entry.
    spare: Mutex<Vec<Box<dyn GuardFile>>>,
}

#[derive(Debug)]
struct Slot {
    entry: Arc<Entry>,
    refs: usize,
}

/// This process's use of one guard.
#[derive(Debug, Default)]
struct Turn {
    /// A thread holds the exclusive lock, or is taking an OS lock.
    busy: bool,
    /// Threads sharing the OS shared lock.
    readers: usize,
    /// Threads waiting for the turn: releases wake them only when there are
    /// some (a wake-up is a syscall).
    waiting: usize,
}

/// Whether a file that is not a guard may be used as one: only the
/// `MarkForeignGuard` mutant does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Foreign {
    Refuse,
    Trust,
}

/// Exclusive for transactions, shared for consistent reads of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Exclusive,
    Shared,
}

static REGISTRY: Mutex<BTreeMap<Key, Slot>> = Mutex::new(BTreeMap::new());

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // No code that can panic runs while these mutexes are held, but a
    // poisoned registry must not take the whole process down.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key_of(fs: &dyn Fs, meta: &Meta) -> Key {
    (fs.id(), meta.dev, meta.ino)
}

/// A counted reference to a registered guard descriptor.
#[derive(Debug)]
pub(crate) struct GuardRef {
    key: Key,
    /// `None` only inside `drop`, which must release the entry while holding
    /// the registry lock.
    entry: Option<Arc<Entry>>,
}

impl GuardRef {
    /// Finds the registered descriptor for the guard at `path`, or opens
    /// (creating if needed), checks and registers it. `target` is only for
    /// the error that refuses a file that is not a guard.
    ///
    /// What is already at `path` must be a guard: a regular file with one
    /// link, holding nothing but the marker (see [`foreign_reason`]). That
    /// is checked on `lstat` before anything is opened, and again on the
    /// opened descriptor (`O_NOFOLLOW`, `O_NONBLOCK`), which is closed at
    /// once if it fails: no other descriptor of that inode is registered,
    /// so closing it cannot release a POSIX lock of this process.
    pub(crate) fn open(
        fs: &dyn Fs,
        path: &Utf8Path,
        target: &Utf8Path,
        foreign: Foreign,
    ) -> Result<GuardRef, Error> {
        let refuse = foreign == Foreign::Refuse;
        let refused = |reason| Error::ForeignGuard {
            path: path.to_owned(),
            target: target.to_owned(),
            reason,
        };
        let mut registry = lock(&REGISTRY);
        let seen = fs.lstat(path).map_err(|e| Error::io(Op::Stat, path, e))?;
        if let Some(meta) = seen {
            let key = key_of(fs, &meta);
            if let Some(slot) = registry.get_mut(&key) {
                slot.refs += 1;
                return Ok(GuardRef {
                    key,
                    entry: Some(Arc::clone(&slot.entry)),
                });
            }
            if let Some(reason) = foreign_reason(&meta).filter(|_| refuse) {
                return Err(refused(reason));
            }
        }
        let file = match fs.open_guard(path) {
            Ok(file) => file,
            // A symbolic link planted after the lstat (`O_NOFOLLOW`).
            Err(e) if e.raw_os_error() == Some(ELOOP) => {
                return Err(refused("is a symbolic link"));
            }
            Err(e) => return Err(Error::io(Op::OpenGuard, path, e)),
        };
        let meta = file.meta().map_err(|e| Error::io(Op::Stat, path, e))?;
        let key = key_of(fs, &meta);
        if let Some(slot) = registry.get_mut(&key) {
            // The path was replaced by a registered inode between lstat and
            // open. While nobody in this process holds or is taking a lock
            // on it (the turn is free, and stays so while we hold its
            // mutex), closing the extra descriptor releases nothing; else
            // it stays open as long as the entry, since closing it would
            // release the POSIX locks held through the first.
            let turn = lock(&slot.entry.turn);
            if turn.busy || turn.readers > 0 {
                lock(&slot.entry.spare).push(file);
            } else {
                drop(file);
            }
            drop(turn);
            slot.refs += 1;
            return Ok(GuardRef {
                key,
                entry: Some(Arc::clone(&slot.entry)),
            });
        }
        if refuse {
            if let Some(reason) = foreign_reason(&meta) {
                return Err(refused(reason));
            }
            let only_marker = meta.size == 0
                || holds_only_marker(file.as_ref()).map_err(|e| Error::io(Op::Read, path, e))?;
            if !only_marker {
                return Err(refused(HOLDS_DATA));
            }
        }
        let entry = Arc::new(Entry {
            file,
            turn: Mutex::new(Turn::default()),
            turn_free: Condvar::new(),
            shared_os: Mutex::new(None),
            swept: AtomicBool::new(false),
            spare: Mutex::new(Vec::new()),
        });
        registry.insert(
            key,
            Slot {
                entry: Arc::clone(&entry),
                refs: 1,
            },
        );
        Ok(GuardRef {
            key,
            entry: Some(entry),
        })
    }

    fn entry(&self) -> &Entry {
        self.entry
            .as_deref()
            .expect("the entry is only taken in drop")
    }

    /// Extra descriptors kept open with this entry.
    #[cfg(all(test, feature = "sim"))]
    pub(crate) fn spare_count(&self) -> usize {
        lock(&self.entry().spare).len()
    }

    /// Whether `meta` describes the inode this descriptor has open.
    pub(crate) fn is_inode(&self, fs: &dyn Fs, meta: &Meta) -> bool {
        key_of(fs, meta) == self.key
    }

    pub(crate) fn same_guard(&self, other: &GuardRef) -> bool {
        self.key == other.key
    }

    /// The key that orders guards for batches: device, then inode.
    pub(crate) fn order_key(&self) -> (u64, u64, u64) {
        self.key
    }

    /// Takes this process's turn, then the OS lock. `Ok(None)` when `wait`
    /// ran out first.
    ///
    /// Threads of one process share one descriptor, and OS locks on it
    /// cannot tell them apart, so they are serialised here first: an
    /// exclusive holder excludes everyone; shared holders share one OS shared
    /// lock, taken by the first and released by the last.
    pub(crate) fn lock(
        &self,
        style: LockStyle,
        mode: Mode,
        wait: Wait,
    ) -> io::Result<Option<Locked>> {
        let entry = self.entry();
        {
            let mut turn = lock(&entry.turn);
            loop {
                let free = match mode {
                    Mode::Exclusive => !turn.busy && turn.readers == 0,
                    Mode::Shared => !turn.busy,
                };
                if free {
                    break;
                }
                let left = match wait {
                    Wait::No => return Ok(None),
                    Wait::Forever => None,
                    Wait::Until(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Ok(None);
                        }
                        Some(left)
                    }
                };
                turn.waiting += 1;
                turn = match left {
                    None => entry
                        .turn_free
                        .wait(turn)
                        .unwrap_or_else(PoisonError::into_inner),
                    Some(left) => {
                        entry
                            .turn_free
                            .wait_timeout(turn, left)
                            .unwrap_or_else(PoisonError::into_inner)
                            .0
                    }
                };
                turn.waiting -= 1;
            }
            if mode == Mode::Shared && turn.readers > 0 {
                // The OS shared lock is already held for this process.
                turn.readers += 1;
                return Ok(Some(Locked::new(self.clone(), Release::Reader)));
            }
            turn.busy = true;
        }
        // From here on the turn is ours; `Locked::drop` gives it back.
        let mut locked = Locked::new(self.clone(), Release::Turn);
        let shared = mode == Mode::Shared;
        let file = entry.file.as_ref();
        locked.os = match wait {
            Wait::No => try_os_lock(file, style, shared)?,
            Wait::Forever => Some(blocking_os_lock(file, style, shared)?),
            Wait::Until(deadline) => match try_os_lock(file, style, shared)? {
                Some(held) => Some(held),
                None => match timed_os_lock(self, style, shared, deadline)? {
                    Timed::Got(held) => Some(held),
                    Timed::GaveUp => None,
                    Timed::TurnHandedOver => {
                        locked.release = Release::Nothing;
                        None
                    }
                },
            },
        };
        if shared {
            if let Some(held) = locked.os.take() {
                // Shared from now on: the lock lives in the entry until the
                // last reader of this process leaves.
                *lock(&entry.shared_os) = Some(held);
                let mut turn = lock(&entry.turn);
                turn.busy = false;
                turn.readers = 1;
                wake(entry, &turn);
                locked.release = Release::Reader;
                return Ok(Some(locked));
            }
        }
        Ok(locked.os.is_some().then_some(locked))
    }

    /// Ends this process's exclusive turn (or OS lock acquisition) and wakes
    /// the threads waiting for it.
    fn release_turn(&self) {
        let entry = self.entry();
        let mut turn = lock(&entry.turn);
        turn.busy = false;
        wake(entry, &turn);
    }

    /// One reader of this process leaves; the last releases the OS lock.
    fn release_reader(&self) {
        let entry = self.entry();
        let mut turn = lock(&entry.turn);
        turn.readers -= 1;
        if turn.readers == 0 {
            drop(lock(&entry.shared_os).take());
            wake(entry, &turn);
        }
    }
}

const HOLDS_DATA: &str = "already exists and holds data";

/// Why what `meta` describes cannot be a guard file; `None` when it can be
/// one as far as its metadata tells (a guard of one or two bytes must also
/// hold only zeros: [`holds_only_marker`]). A guard is a regular file with
/// one link, no bigger than its marker: txfile writes its marker into it,
/// so anything else would be somebody's data, or a name for somebody's file
/// elsewhere. An empty file (as `flock(1)` creates) is a guard.
pub(crate) fn foreign_reason(meta: &Meta) -> Option<&'static str> {
    match meta.kind {
        Kind::Symlink => Some("is a symbolic link"),
        Kind::Dir => Some("is a directory"),
        Kind::Other => Some("is not a regular file"),
        Kind::File if Marker::from_size(meta.size).is_none() => Some(HOLDS_DATA),
        Kind::File if meta.nlink > 1 => Some("has other hard links"),
        Kind::File => None,
    }
}

/// Whether the guard's bytes are all zeros, as `ftruncate` leaves them.
fn holds_only_marker(file: &dyn GuardFile) -> io::Result<bool> {
    let mut buf = [0u8; 4];
    let mut filled = 0;
    loop {
        match file.read_at(&mut buf[filled..], filled as u64) {
            Ok(0) => break,
            Ok(n) => {
                filled += n;
                if filled == buf.len() {
                    break;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled <= Marker::Unsynced as usize && buf[..filled].iter().all(|&b| b == 0))
}

/// Wakes the threads waiting for the turn, if any.
fn wake(entry: &Entry, turn: &Turn) {
    if turn.waiting > 0 {
        entry.turn_free.notify_all();
    }
}

/// One non-blocking attempt (retried only on `EINTR`).
fn try_os_lock(
    file: &dyn GuardFile,
    style: LockStyle,
    shared: bool,
) -> io::Result<Option<Box<dyn LockHeld>>> {
    loop {
        match file.lock(style, shared, false) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(EDEADLK) => return Ok(None),
            other => return other,
        }
    }
}

/// Blocks until the lock is ours, retrying on `EINTR` and on `EDEADLK` (a
/// POSIX lock deadlock reported by the kernel resolves once the other side
/// moves).
fn blocking_os_lock(
    file: &dyn GuardFile,
    style: LockStyle,
    shared: bool,
) -> io::Result<Box<dyn LockHeld>> {
    loop {
        match file.lock(style, shared, true) {
            Ok(Some(held)) => return Ok(held),
            Ok(None) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) if e.raw_os_error() == Some(EDEADLK) => thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(e),
        }
    }
}

enum Timed {
    Got(Box<dyn LockHeld>),
    GaveUp,
    /// A helper thread is still blocked in the kernel on our behalf; it owns
    /// this process's turn now and gives it back once it gets (and at once
    /// releases) the lock.
    TurnHandedOver,
}

/// State shared between a timed waiter and its helper thread.
#[derive(Default)]
struct Handoff {
    state: Mutex<HandoffState>,
    ready: Condvar,
}

#[derive(Default)]
enum HandoffState {
    #[default]
    Waiting,
    Done(io::Result<Box<dyn LockHeld>>),
    Abandoned,
}

/// Waits for the OS lock until `deadline`.
///
/// Neither `flock` nor `fcntl` can time out, and polling with try-locks
/// starves against processes blocked in the kernel, which get the lock the
/// moment it is released. So a helper thread blocks in the kernel, like
/// everyone else, while this thread waits for it with a timeout. A helper
/// that outlives its waiter keeps the in-process turn until the lock comes,
/// then releases both: no other thread of the process may lock the same
/// descriptor meanwhile, because the lock the helper gets would be theirs too.
fn timed_os_lock(
    guard: &GuardRef,
    style: LockStyle,
    shared: bool,
    deadline: Instant,
) -> io::Result<Timed> {
    let handoff = Arc::new(Handoff::default());
    let helper_handoff = Arc::clone(&handoff);
    let helper_guard = guard.clone();
    let spawned = thread::Builder::new()
        .name("txfile-lock-wait".into())
        .spawn(move || {
            let result = blocking_os_lock(helper_guard.entry().file.as_ref(), style, shared);
            let mut state = lock(&helper_handoff.state);
            if matches!(*state, HandoffState::Abandoned) {
                drop(result);
                drop(state);
                helper_guard.release_turn();
            } else {
                *state = HandoffState::Done(result);
                helper_handoff.ready.notify_one();
            }
        });
    if spawned.is_err() {
        return poll_os_lock(guard.entry().file.as_ref(), style, shared, deadline);
    }
    let mut state = lock(&handoff.state);
    loop {
        match std::mem::take(&mut *state) {
            HandoffState::Done(result) => return result.map(Timed::Got),
            HandoffState::Waiting | HandoffState::Abandoned => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            *state = HandoffState::Abandoned;
            return Ok(Timed::TurnHandedOver);
        }
        state = handoff
            .ready
            .wait_timeout(state, left)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
}

/// Fallback when no thread can be spawned: try-locks with backoff.
fn poll_os_lock(
    file: &dyn GuardFile,
    style: LockStyle,
    shared: bool,
    deadline: Instant,
) -> io::Result<Timed> {
    let mut pause = Duration::from_micros(500);
    loop {
        if let Some(held) = try_os_lock(file, style, shared)? {
            return Ok(Timed::Got(held));
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Timed::GaveUp);
        }
        thread::sleep(pause.min(left));
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}

#[cfg(unix)]
const EDEADLK: i32 = rustix::io::Errno::DEADLK.raw_os_error();
#[cfg(not(unix))]
const EDEADLK: i32 = -1;
#[cfg(unix)]
const ELOOP: i32 = rustix::io::Errno::LOOP.raw_os_error();
#[cfg(not(unix))]
const ELOOP: i32 = -1;

impl Clone for GuardRef {
    fn clone(&self) -> Self {
        let mut registry = lock(&REGISTRY);
        if let Some(slot) = registry.get_mut(&self.key) {
            slot.refs += 1;
        }
        GuardRef {
            key: self.key,
            entry: self.entry.clone(),
        }
    }
}

impl Drop for GuardRef {
    fn drop(&mut self) {
        let mut registry = lock(&REGISTRY);
        let last = match registry.get_mut(&self.key) {
            Some(slot) => {
                slot.refs -= 1;
                slot.refs == 0
            }
            None => false,
        };
        let removed = if last {
            registry.remove(&self.key)
        } else {
            None
        };
        // Both the slot's reference and ours go while the registry is locked,
        // so the descriptor closes before anyone can register the inode anew.
        drop(removed);
        drop(self.entry.take());
        drop(registry);
    }
}

/// How long to wait for the lock.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Wait {
    No,
    Until(Instant),
    Forever,
}

impl Wait {
    /// Waiting at most `timeout` from now (`None`: forever). A timeout
    /// beyond what the clock can represent is forever, not a panic.
    pub(crate) fn within(timeout: Option<std::time::Duration>) -> Wait {
        match timeout.and_then(|timeout| Instant::now().checked_add(timeout)) {
            Some(deadline) => Wait::Until(deadline),
            None => Wait::Forever,
        }
    }
}

/// This process's turn on a guard plus the OS lock. Dropping it unlocks the
/// OS lock first, then hands the turn to the next thread.
#[derive(Debug)]
pub(crate) struct Locked {
    /// The OS lock of an exclusive holder (a shared one lives in the entry).
    os: Option<Box<dyn LockHeld>>,
    guard: GuardRef,
    release: Release,
    /// The guard's marker as it is on disk now (found, or set by us).
    marker: Marker,
    /// The marker was "unclean" when we locked: an earlier transaction may
    /// have renamed without syncing the directory.
    owe_sync: bool,
    /// The current version may not be durable: it was committed without
    /// fsyncs, or by a writer that did not finish. A durable holder that
    /// vouches for it syncs it first.
    unsynced: bool,
    /// Temporary files of a dead writer may be lying around.
    sweep: bool,
}

impl Locked {
    fn new(guard: GuardRef, release: Release) -> Locked {
        Locked {
            os: None,
            guard,
            release,
            marker: Marker::Clean,
            owe_sync: false,
            unsynced: false,
            sweep: false,
        }
    }

    /// Records what the identity check saw of the guard: its marker (size),
    /// and whether this is the first holder of this process.
    pub(crate) fn note_marker(&mut self, marker: Marker) {
        let first = !self.guard.entry().swept.load(Ordering::Relaxed);
        self.marker = marker;
        self.owe_sync = marker == Marker::Unclean;
        self.unsynced = marker != Marker::Clean;
        self.sweep = marker == Marker::Unclean || first;
    }

    pub(crate) fn needs_sweep(&self) -> bool {
        self.sweep
    }

    /// The directory was swept under this lock.
    pub(crate) fn swept(&mut self) {
        self.sweep = false;
        self.guard.entry().swept.store(true, Ordering::Relaxed);
    }

    pub(crate) fn owes_sync(&self) -> bool {
        self.owe_sync
    }

    /// The directory was synced: nothing earlier is owed any more.
    pub(crate) fn synced(&mut self) {
        self.owe_sync = false;
    }

    /// Whether the current version may not be durable.
    pub(crate) fn version_unsynced(&self) -> bool {
        self.unsynced
    }

    /// Records whether the version now in place is durable: a commit with
    /// fsyncs (or a durable no-op that synced it) makes it so; a commit
    /// without fsyncs does not.
    pub(crate) fn set_version_synced(&mut self, synced: bool) {
        self.unsynced = !synced;
    }

    /// Sets the "unclean" marker before a temporary file is created.
    pub(crate) fn mark(&mut self) -> io::Result<()> {
        if self.marker != Marker::Unclean {
            self.guard.entry().file.set_marker(Marker::Unclean)?;
            self.marker = Marker::Unclean;
        }
        Ok(())
    }

    /// Leaves the marker for the next holder: clean when nothing of this
    /// transaction, nor of any earlier one, is left to clean up or to sync;
    /// "unsynced" when the version in place was committed without fsyncs.
    /// A failure only costs the next holder a sweep and a sync.
    pub(crate) fn unmark(&mut self) {
        if self.owe_sync {
            return;
        }
        let want = if self.unsynced {
            Marker::Unsynced
        } else {
            Marker::Clean
        };
        if self.marker != want && self.guard.entry().file.set_marker(want).is_ok() {
            self.marker = want;
        }
    }
}

/// What dropping a `Locked` gives back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Release {
    /// The exclusive turn (or the turn taken to acquire).
    Turn,
    /// One share of the shared lock.
    Reader,
    /// Nothing: a timed-out wait handed the turn to its helper thread.
    Nothing,
}

impl Drop for Locked {
    fn drop(&mut self) {
        drop(self.os.take());
        match self.release {
            Release::Turn => self.guard.release_turn(),
            Release::Reader => self.guard.release_reader(),
            Release::Nothing => {}
        }
    }
}
