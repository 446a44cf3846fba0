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
//!
//! Which OS locks a holder takes ([`plan`]): where `flock` and POSIX locks
//! are independent (local Linux filesystems), both, `flock` first, so that
//! every txfile user excludes every other whatever its `LockStyle`, and
//! `flock(1)` and `lockf` users alike; where the filesystem makes them one
//! lock (NFS), only the chosen style's, since taking both would wait for
//! itself.
//!
//! A forked child inherits the registry, the descriptors and with them,
//! for `flock`, the parent's lock. So every entry records the process that
//! opened it: a child never locks or unlocks through an inherited entry,
//! opens its own descriptor instead, and keeps the inherited ones open for
//! as long as it lives (closing one would drop its own POSIX locks).
//!
//! The exclusive turn records the thread that holds it (on the blocking
//! path), so that a thread asking again for a lock it holds gets an error
//! at once instead of waiting for itself.

use std::collections::BTreeMap;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::{self, ThreadId};
use std::time::{Duration, Instant};

use camino::Utf8Path;

use crate::error::Op;
pub(crate) use crate::fs::Mode;
use crate::fs::{
    Blocking, DirHandle, Fs, GuardFile, GuardPerms, Kind, LockHeld, Locking, Marker, Meta,
};
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
    shared_os: Mutex<Option<OsLocks>>,
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
    /// The thread holding the exclusive turn, when it was taken for one
    /// (see [`GuardRef::lock`]).
    owner: Option<ThreadId>,
}

/// Whether a file that is not a guard may be used as one: only the
/// `MarkForeignGuard` mutant does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Foreign {
    Refuse,
    Trust,
}

/// Keyed by the process that registered the entry, then the guard: a
/// forked child finds none of its parent's entries.
static REGISTRY: Mutex<BTreeMap<(u32, Key), Slot>> = Mutex::new(BTreeMap::new());

/// Entries a forked child inherited and no longer uses. Their descriptors
/// stay open for the child's life: closing a descriptor of a guard would
/// drop the POSIX locks the child holds on it through its own.
static INHERITED: Mutex<Vec<Arc<Entry>>> = Mutex::new(Vec::new());

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
    /// The process that registered the entry.
    pid: u32,
    key: Key,
    /// `None` only inside `drop`, which must release the entry while holding
    /// the registry lock.
    entry: Option<Arc<Entry>>,
}

impl GuardRef {
    /// Finds this process's registered descriptor for the guard `name` in
    /// `dir` (`path`, in messages), or opens (creating it with `perms` if
    /// needed), checks and registers it. `target` is only for the error that
    /// refuses a file that is not a guard.
    ///
    /// What is already at `path` must be a guard: a regular file with one
    /// link, holding nothing but the marker (see [`foreign_reason`]). That
    /// is checked on `lstat` before anything is opened, and again on the
    /// opened descriptor (`O_NOFOLLOW`, `O_NONBLOCK`), which is closed at
    /// once if it fails: no other descriptor of that inode is registered,
    /// so closing it cannot release a POSIX lock of this process.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn open(
        fs: &dyn Fs,
        dir: &dyn DirHandle,
        name: &str,
        path: &Utf8Path,
        target: &Utf8Path,
        foreign: Foreign,
        perms: impl FnOnce() -> io::Result<GuardPerms>,
    ) -> Result<GuardRef, Error> {
        let pid = std::process::id();
        let refuse = foreign == Foreign::Refuse;
        let refused = |reason| Error::ForeignGuard {
            path: path.to_owned(),
            target: target.to_owned(),
            reason,
        };
        let mut registry = lock(&REGISTRY);
        let seen = dir.lstat(name).map_err(|e| Error::io(Op::Stat, path, e))?;
        if let Some(meta) = seen {
            let key = key_of(fs, &meta);
            if let Some(slot) = registry.get_mut(&(pid, key)) {
                slot.refs += 1;
                return Ok(GuardRef {
                    pid,
                    key,
                    entry: Some(Arc::clone(&slot.entry)),
                });
            }
            if let Some(reason) = foreign_reason(&meta).filter(|_| refuse) {
                return Err(refused(reason));
            }
        }
        let perms = perms().map_err(|e| Error::io(Op::OpenGuard, path, e))?;
        let file = match dir.open_guard(name, perms) {
            Ok(file) => file,
            // A symbolic link planted after the lstat (`O_NOFOLLOW`).
            Err(e) if e.raw_os_error() == Some(ELOOP) => {
                return Err(refused("is a symbolic link"));
            }
            Err(e) => return Err(Error::io(Op::OpenGuard, path, e)),
        };
        let meta = file.meta().map_err(|e| Error::io(Op::Stat, path, e))?;
        let key = key_of(fs, &meta);
        if let Some(slot) = registry.get_mut(&(pid, key)) {
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
                pid,
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
            (pid, key),
            Slot {
                entry: Arc::clone(&entry),
                refs: 1,
            },
        );
        Ok(GuardRef {
            pid,
            key,
            entry: Some(entry),
        })
    }

    /// Whether process `pid` (this one) registered the descriptor: false
    /// in a child forked after it was opened, which must open its own.
    pub(crate) fn registered_by(&self, pid: u32) -> bool {
        self.pid == pid
    }

    fn in_this_process(&self) -> bool {
        self.registered_by(std::process::id())
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
        self.pid == other.pid && self.key == other.key
    }

    /// The key that orders guards for batches: device, then inode.
    pub(crate) fn order_key(&self) -> (u64, u64, u64) {
        self.key
    }

    /// Takes this process's turn, then the OS locks [`plan`] names.
    /// `Ok(Got::Busy)` when `wait` ran out first.
    ///
    /// Threads of one process share one descriptor, and OS locks on it
    /// cannot tell them apart, so they are serialised here first: an
    /// exclusive holder excludes everyone; shared holders share one OS shared
    /// lock, taken by the first and released by the last.
    ///
    /// `holder.thread` is the thread that will hold the turn, recorded so
    /// that it gets `Got::HeldByThisThread` at once if it asks again while
    /// it holds it (instead of waiting for itself). A lock that is taken on
    /// one thread and used and released on others (an async task) passes
    /// `None`: no thread owns it, and no request is taken for re-entry.
    pub(crate) fn lock(
        &self,
        style: LockStyle,
        mode: Mode,
        wait: Wait,
        holder: Holder,
        one_kind: bool,
    ) -> io::Result<Got> {
        let owner = holder.thread;
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
                    Wait::No => return Ok(Got::Busy),
                    _ if turn.busy && owner.is_some() && turn.owner == owner => {
                        return Ok(Got::HeldByThisThread);
                    }
                    Wait::Forever => None,
                    Wait::Until(deadline) => {
                        let left = deadline.saturating_duration_since(Instant::now());
                        if left.is_zero() {
                            return Ok(Got::Busy);
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
                return Ok(Got::Locked(Locked::new(
                    self.clone(),
                    holder.pid,
                    Release::Reader,
                )));
            }
            turn.busy = true;
            turn.owner = owner;
        }
        // From here on the turn is ours; `Locked::drop` gives it back.
        let mut locked = Locked::new(self.clone(), holder.pid, Release::Turn);
        let shared = mode == Mode::Shared;
        let file = entry.file.as_ref();
        let plan = plan(file.locking(), style, shared, one_kind);
        locked.os = match wait {
            Wait::No => try_os_lock(file, plan)?,
            Wait::Forever => Some(blocking_os_lock(file, plan)?),
            Wait::Until(deadline) => match try_os_lock(file, plan)? {
                Some(held) => Some(held),
                None => match timed_os_lock(self, plan, deadline)? {
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
                turn.owner = None;
                turn.readers = 1;
                wake(entry, &turn);
                locked.release = Release::Reader;
                return Ok(Got::Locked(locked));
            }
        }
        Ok(match locked.os.is_some() {
            true => Got::Locked(locked),
            false => Got::Busy,
        })
    }

    /// Ends this process's exclusive turn (or OS lock acquisition) and wakes
    /// the threads waiting for it.
    fn release_turn(&self) {
        let entry = self.entry();
        let mut turn = lock(&entry.turn);
        turn.busy = false;
        turn.owner = None;
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

/// Who asks for a lock: the process (`std::process::id()`, taken once by
/// the caller) and the thread that will hold it, if one will.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Holder {
    pub(crate) pid: u32,
    pub(crate) thread: Option<ThreadId>,
}

/// What [`GuardRef::lock`] got.
#[derive(Debug)]
pub(crate) enum Got {
    Locked(Locked),
    /// Someone else holds it (and `wait` ran out, or was `Wait::No`).
    Busy,
    /// The asking thread holds the exclusive turn itself.
    HeldByThisThread,
}

/// One OS lock to take: its kind and whether it is shared.
type Step = (LockStyle, Mode);

/// The OS locks a holder takes, in the one order every process uses (so
/// that two holders taking both never wait for each other crosswise):
/// `flock`, then the POSIX lock; only the chosen style's where the
/// filesystem makes them one lock, or with `one_kind` (a mutant).
///
/// On a read-only descriptor the POSIX lock is a shared one, since a POSIX
/// write lock needs a writable descriptor: txfile users still exclude each
/// other through the exclusive `flock`, and a `lockf` user, who takes a
/// write lock, is kept out by the shared one.
fn plan(locking: Locking, style: LockStyle, shared: bool, one_kind: bool) -> &'static [Step] {
    use LockStyle::{Flock, Posix};
    use Mode::{Exclusive, Shared};
    match (locking.merged || one_kind, style, shared) {
        (true, Flock, false) => &[(Flock, Exclusive)],
        (true, Flock, true) => &[(Flock, Shared)],
        (true, Posix, false) => &[(Posix, Exclusive)],
        (true, Posix, true) => &[(Posix, Shared)],
        (false, _, true) => &[(Flock, Shared), (Posix, Shared)],
        (false, _, false) if locking.read_only => &[(Flock, Exclusive), (Posix, Shared)],
        (false, _, false) => &[(Flock, Exclusive), (Posix, Exclusive)],
    }
}

/// The OS locks of one holder; dropping it releases them in reverse order.
#[derive(Debug)]
pub(crate) struct OsLocks(Vec<Box<dyn LockHeld>>);

impl Drop for OsLocks {
    fn drop(&mut self) {
        while let Some(held) = self.0.pop() {
            drop(held);
        }
    }
}

/// One non-blocking attempt at every step (each retried only on `EINTR`);
/// what was taken is released again if a later step is busy.
fn try_os_lock(file: &dyn GuardFile, plan: &[Step]) -> io::Result<Option<OsLocks>> {
    let mut held = OsLocks(Vec::with_capacity(plan.len()));
    for &(kind, mode) in plan {
        let got = loop {
            match file.lock(kind, mode, Blocking::Try) {
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(EDEADLK) => break None,
                Err(e) => return Err(explain(file, e)),
                Ok(got) => break got,
            }
        };
        match got {
            Some(one) => held.0.push(one),
            None => return Ok(None),
        }
    }
    Ok(Some(held))
}

/// Blocks until every step is taken, retrying on `EINTR` and on `EDEADLK`
/// (a POSIX lock deadlock reported by the kernel resolves once the other
/// side moves).
fn blocking_os_lock(file: &dyn GuardFile, plan: &[Step]) -> io::Result<OsLocks> {
    let mut held = OsLocks(Vec::with_capacity(plan.len()));
    for &(kind, mode) in plan {
        loop {
            match file.lock(kind, mode, Blocking::Block) {
                Ok(Some(one)) => {
                    held.0.push(one);
                    break;
                }
                Ok(None) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.raw_os_error() == Some(EDEADLK) => {
                    thread::sleep(Duration::from_millis(1));
                }
                Err(e) => return Err(explain(file, e)),
            }
        }
    }
    Ok(held)
}

/// A lock refused because the descriptor is read-only (`EBADF`: on a
/// filesystem where an exclusive lock needs write access) says so.
fn explain(file: &dyn GuardFile, e: io::Error) -> io::Error {
    match e.raw_os_error() {
        Some(EBADF) if file.locking().read_only => io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{e}: this process may only read the lock file, and an exclusive lock \
                     on this filesystem needs write access to it; its owner or root can \
                     let everyone who may write the target write it (`chmod g+w`, and \
                     `chgrp` to the target's group)"
            ),
        ),
        _ => e,
    }
}

enum Timed {
    Got(OsLocks),
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
    Done(io::Result<OsLocks>),
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
fn timed_os_lock(guard: &GuardRef, plan: &'static [Step], deadline: Instant) -> io::Result<Timed> {
    let handoff = Arc::new(Handoff::default());
    let helper_handoff = Arc::clone(&handoff);
    let helper_guard = guard.clone();
    let spawned = thread::Builder::new()
        .name("txfile-lock-wait".into())
        .spawn(move || {
            let result = blocking_os_lock(helper_guard.entry().file.as_ref(), plan);
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
        return poll_os_lock(guard.entry().file.as_ref(), plan, deadline);
    }
    let mut state = lock(&handoff.state);
    loop {
        match std::mem::take(&mut *state) {
            HandoffState::Done(result) => return result.map(Timed::Got),
            HandoffState::Waiting | HandoffState::Abandoned => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            // The helper holds the turn from now on, for no thread of the
            // caller's (cleared before the helper can give the turn back).
            lock(&guard.entry().turn).owner = None;
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
fn poll_os_lock(file: &dyn GuardFile, plan: &[Step], deadline: Instant) -> io::Result<Timed> {
    let mut pause = Duration::from_micros(500);
    loop {
        if let Some(held) = try_os_lock(file, plan)? {
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
#[cfg(unix)]
const EBADF: i32 = rustix::io::Errno::BADF.raw_os_error();
#[cfg(not(unix))]
const EBADF: i32 = -2;

impl Clone for GuardRef {
    fn clone(&self) -> Self {
        let mut registry = lock(&REGISTRY);
        if let Some(slot) = registry.get_mut(&(self.pid, self.key)) {
            slot.refs += 1;
        }
        GuardRef {
            pid: self.pid,
            key: self.key,
            entry: self.entry.clone(),
        }
    }
}

impl Drop for GuardRef {
    fn drop(&mut self) {
        let mut registry = lock(&REGISTRY);
        let at = (self.pid, self.key);
        let last = match registry.get_mut(&at) {
            Some(slot) => {
                slot.refs -= 1;
                slot.refs == 0
            }
            None => false,
        };
        let mut removed = if last { registry.remove(&at) } else { None };
        if removed.is_some() && !self.in_this_process() {
            // Inherited through fork: never closed in this process.
            if let Some(slot) = removed.take() {
                lock(&INHERITED).push(slot.entry);
            }
        }
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
    /// The OS locks of an exclusive holder (a shared one lives in the entry).
    os: Option<OsLocks>,
    /// The process that took the lock.
    pid: u32,
    /// `pid` was found to be this process's, at the end of the
    /// transaction (commit or drop), after which no copy of it can be made
    /// by a fork: so one `getpid` per transaction is enough.
    verified: bool,
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
    fn new(guard: GuardRef, pid: u32, release: Release) -> Locked {
        Locked {
            os: None,
            pid,
            verified: false,
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
        // A read-only descriptor cannot set the marker, so this holder
        // cannot tell others what it leaves; nor can it trust that a
        // holder like it told it: it sweeps and syncs every time.
        let unknown = self.read_only();
        self.marker = marker;
        self.owe_sync = marker == Marker::Unclean || unknown;
        self.unsynced = marker != Marker::Clean || unknown;
        self.sweep = marker == Marker::Unclean || first || unknown;
    }

    fn read_only(&self) -> bool {
        self.guard.entry().file.locking().read_only
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

    /// Unlocks after a durable commit's rename, before the directory fsync
    /// that will make it durable: the marker says "unsynced" (or, for the
    /// `AckBeforeDirSync` mutant, `clean`), as the version in place may not
    /// survive power loss until that fsync succeeds. What an earlier holder
    /// owed is covered by the same fsync.
    pub(crate) fn release_renamed(mut self, clean: bool) {
        self.owe_sync = false;
        self.unsynced = !clean;
        self.unmark();
    }

    /// The process that took the lock.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Whether this lock was taken by this process: false for a transaction
    /// a forked child inherited, which it must neither commit nor clean up.
    /// Called only where the transaction ends (commit, drop).
    pub(crate) fn in_this_process(&mut self) -> bool {
        if !self.verified {
            self.verified = self.pid == std::process::id();
        }
        self.verified
    }

    /// Sets the "unclean" marker before a temporary file is created.
    pub(crate) fn mark(&mut self) -> io::Result<()> {
        if self.marker != Marker::Unclean && !self.read_only() {
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
        if self.owe_sync || self.read_only() {
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
        if !self.in_this_process() {
            // A forked child's copy of its parent's lock: unlocking the
            // `flock` would unlock the parent's (one open file description),
            // and the parent's in-process turn is none of the child's business.
            std::mem::forget(self.os.take());
            return;
        }
        drop(self.os.take());
        match self.release {
            Release::Turn => self.guard.release_turn(),
            Release::Reader => self.guard.release_reader(),
            Release::Nothing => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use camino::Utf8PathBuf;

    use super::*;
    use crate::fs::real::RealFs;

    fn holder(thread: Option<ThreadId>) -> Holder {
        Holder {
            pid: std::process::id(),
            thread,
        }
    }

    fn take(guard: &GuardRef, wait: Wait, thread: Option<ThreadId>) -> Got {
        guard
            .lock(
                LockStyle::Flock,
                Mode::Exclusive,
                wait,
                holder(thread),
                false,
            )
            .expect("lock")
    }

    /// A lock taken for no thread (as the async API takes it, to be used
    /// and released on other threads) is never mistaken for re-entry: the
    /// thread that took it waits like anyone else. One taken for a thread
    /// makes that thread, and only that one, fail at once.
    #[test]
    fn only_the_owning_thread_is_told_it_holds_the_lock() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = Utf8PathBuf::from_path_buf(dir.path().join("a.lock")).expect("UTF-8");
        let parent = RealFs::default()
            .open_dir(path.parent().expect("parent"))
            .expect("open dir");
        let perms = || {
            Ok(GuardPerms {
                mode: 0o644,
                gid: 0,
            })
        };
        let guard = GuardRef::open(
            &RealFs::default(),
            &*parent,
            "a.lock",
            &path,
            &path,
            Foreign::Refuse,
            perms,
        )
        .expect("open");
        let me = Some(thread::current().id());
        let soon = || Wait::Until(Instant::now() + Duration::from_millis(50));

        let Got::Locked(unowned) = take(&guard, Wait::No, None) else {
            panic!("free")
        };
        assert!(matches!(take(&guard, soon(), me), Got::Busy));
        drop(unowned);

        let Got::Locked(owned) = take(&guard, Wait::No, me) else {
            panic!("free")
        };
        assert!(matches!(take(&guard, soon(), me), Got::HeldByThisThread));
        // try-lock: busy, whoever holds it.
        assert!(matches!(take(&guard, Wait::No, me), Got::Busy));
        thread::scope(|s| {
            s.spawn(|| {
                let other = Some(thread::current().id());
                assert!(matches!(take(&guard, soon(), other), Got::Busy));
            });
        });
        drop(owned);
        assert!(matches!(take(&guard, Wait::No, me), Got::Locked(_)));
    }
}
