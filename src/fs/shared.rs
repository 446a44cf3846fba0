//! Directory handles shared per directory, process-wide.
//!
//! Every [`TxFile`](crate::TxFile) holds its target's directory open for its
//! whole life (every call of the protocol goes through it, see
//! [`DirHandle`]). Opening one descriptor per handle would make the
//! directory, not the target, the limit on how many handles a process can
//! keep: 900 handles on 900 files of one directory would hold 900
//! descriptors. So handles on files of one directory share one, like they
//! share the guard: the registry below maps (filesystem id, device, inode)
//! of a directory to a weak reference of its open handle, and the last
//! [`SharedDir`] dropped closes the descriptor and leaves the registry.
//!
//! A directory descriptor carries no lock and no offset the protocol
//! uses (listing reads through a descriptor of its own), so sharing it
//! between threads, handles and a forked child is safe.

use std::collections::BTreeMap;
use std::io;
use std::ops::Deref;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};

use camino::Utf8Path;

use super::{DirHandle, Fs, Meta};

/// (filesystem id, device, inode).
type Key = (u64, u64, u64);

static DIRS: Mutex<BTreeMap<Key, Weak<SharedDir>>> = Mutex::new(BTreeMap::new());

fn registry() -> MutexGuard<'static, BTreeMap<Key, Weak<SharedDir>>> {
    // Nothing that can panic runs under this lock; a poisoned one is still
    // consistent.
    DIRS.lock().unwrap_or_else(PoisonError::into_inner)
}

/// One open directory, shared by every handle of the process on a file in
/// it. Dereferences to its [`DirHandle`].
#[derive(Debug)]
pub(crate) struct SharedDir {
    key: Key,
    meta: Meta,
    handle: Box<dyn DirHandle>,
}

impl SharedDir {
    /// Opens the directory at `path` and returns this process's shared
    /// handle of it: the one already registered for that directory (the
    /// descriptor just opened is closed again), or the new one.
    pub(crate) fn open(fs: &dyn Fs, path: &Utf8Path) -> io::Result<Arc<SharedDir>> {
        let handle = fs.open_dir(path)?;
        let meta = handle.meta()?;
        let key = (fs.id(), meta.dev, meta.ino);
        let mut dirs = registry();
        if let Some(shared) = dirs.get(&key).and_then(Weak::upgrade) {
            drop(dirs);
            return Ok(shared);
        }
        let shared = Arc::new(SharedDir { key, meta, handle });
        dirs.insert(key, Arc::downgrade(&shared));
        Ok(shared)
    }

    /// The directory's device and inode, as it was opened (the directory's
    /// identity: what two spellings of its path have in common).
    pub(crate) fn dev_ino(&self) -> (u64, u64) {
        (self.meta.dev, self.meta.ino)
    }

    /// Whether the directory `(dev, ino)` of filesystem `fs` is open
    /// through the registry (for tests).
    #[cfg(all(test, feature = "sim"))]
    pub(crate) fn is_registered(fs: u64, (dev, ino): (u64, u64)) -> bool {
        registry()
            .get(&(fs, dev, ino))
            .is_some_and(|dir| dir.strong_count() > 0)
    }
}

impl Deref for SharedDir {
    type Target = dyn DirHandle;

    fn deref(&self) -> &Self::Target {
        self.handle.as_ref()
    }
}

impl Drop for SharedDir {
    fn drop(&mut self) {
        let mut dirs = registry();
        // The entry is this one's unless a new handle of the directory was
        // registered since the last strong reference went (then it is alive).
        if dirs
            .get(&self.key)
            .is_some_and(|dir| dir.strong_count() == 0)
        {
            dirs.remove(&self.key);
        }
    }
}
