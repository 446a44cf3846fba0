//! A lock taken through fd-lock, owned together with its `RwLock`.
//!
//! fd-lock's guards borrow the `RwLock` they came from, but a transaction
//! must own both for as long as it holds the lock, so each guard lives with
//! its `RwLock` in one self-referential struct. fd-lock takes `flock` on
//! Unix and `LockFileEx` on Windows; both platforms use these two types.

use std::fs::File;
use std::io;
use std::sync::Arc;

/// An exclusive lock; dropping it unlocks.
#[ouroboros::self_referencing]
pub(crate) struct Exclusive {
    lock: fd_lock::RwLock<Arc<File>>,
    #[borrows(mut lock)]
    #[covariant]
    guard: fd_lock::RwLockWriteGuard<'this, Arc<File>>,
}

impl std::fmt::Debug for Exclusive {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fd_lock(exclusive)")
    }
}

/// A shared lock; dropping it unlocks.
#[ouroboros::self_referencing]
pub(crate) struct Shared {
    lock: fd_lock::RwLock<Arc<File>>,
    #[borrows(lock)]
    #[covariant]
    guard: fd_lock::RwLockReadGuard<'this, Arc<File>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("fd_lock(shared)")
    }
}

/// Takes the shared lock; with `wait` false, fails at once
/// (`WouldBlock`) when a conflicting holder has it.
pub(crate) fn shared(file: Arc<File>, wait: bool) -> io::Result<Shared> {
    SharedTryBuilder {
        lock: fd_lock::RwLock::new(file),
        guard_builder: |lock: &fd_lock::RwLock<Arc<File>>| {
            if wait { lock.read() } else { lock.try_read() }
        },
    }
    .try_build()
}

/// Takes the exclusive lock; with `wait` false, fails at once
/// (`WouldBlock`) when another holder has it.
pub(crate) fn exclusive(file: Arc<File>, wait: bool) -> io::Result<Exclusive> {
    ExclusiveTryBuilder {
        lock: fd_lock::RwLock::new(file),
        guard_builder: |lock: &mut fd_lock::RwLock<Arc<File>>| {
            if wait { lock.write() } else { lock.try_write() }
        },
    }
    .try_build()
}
