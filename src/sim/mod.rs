//! An in-memory filesystem that loses power on request (feature `sim`).
//!
//! [`SimFs`] implements the persistence model the crate is tested against
//! (`docs/crash-model.md` in the repository), which is more pessimistic than any
//! real filesystem:
//!
//! - every file has a *volatile* view (what running processes see) and a
//!   *durable* one (what survives a crash); every directory has volatile and
//!   durable entries;
//! - writes, `chmod` and `chown` are pending until the file's fsync; creates,
//!   renames and unlinks are pending until the directory's fsync (the file's
//!   fsync does not make its name durable);
//! - a crash keeps any subset of the pending directory operations (not only
//!   a prefix), and for each file any subset of its pending writes, each
//!   possibly torn at 512-byte sectors into old, new, zero or garbage
//!   sectors; an append may show the new size with zeros or garbage;
//! - an fsync that fails with [`Fault::Io`] leaves its data in doubt and the
//!   file clean, so a retried fsync succeeds without writing anything
//!   ("fsyncgate");
//! - locks live only while the machine runs, and so does the guard file's
//!   "unclean" marker (its size): txfile must not need it after a crash;
//! - `flock` locks (owned by the open file) and POSIX locks (owned by the
//!   process) are independent, as on local Linux filesystems, unless
//!   [`SimFs::set_merged_locks`] makes them one lock, as on NFS.
//!
//! Paths are absolute UTF-8 paths. There are no symbolic links, and renames
//! work only within one directory. Every call the crate makes through its
//! filesystem seam is one counted [operation](Operation); a test can crash
//! the machine before or in the middle of the Nth one, or make it fail, and
//! then walk through [every state a crash can leave](SimFs::crash_states),
//! each a new `SimFs`.
//!
//! # Examples
//!
//! ```
//! use txfile::sim::{Enumeration, SimFs};
//! use txfile::Options;
//!
//! let sim = SimFs::new();
//! sim.create_dir_all("/data")?;
//! sim.write_file("/data/config", b"old")?;
//! let file = Options::new().filesystem(&sim).open("/data/config")?;
//! sim.crash_at(sim.op_count() + 9); // somewhere inside the commit
//! let _ = file.update(|_| Ok::<_, std::io::Error>(b"new".to_vec()));
//! assert!(sim.is_crashed());
//! for after in sim.crash_states(&Enumeration::new())? {
//!     let contents = after.read_file("/data/config")?;
//!     assert!(contents.as_deref() == Some(b"old") || contents.as_deref() == Some(b"new"));
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};

use camino::{Utf8Path, Utf8PathBuf};

mod crash;
mod fault;
mod seam;
mod state;
#[cfg(test)]
mod tests;

pub use crash::{CrashStates, Enumeration, TooManyStates};
pub use fault::Fault;

use fault::Planned;
use state::{DirNode, Disk, Inode, Node, State};

use crate::fs::Fs;

/// Ids of simulated filesystems; 0 is the real one.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// A simulated machine with one filesystem; see the [module docs](self).
///
/// Clones are handles on the same machine and the same process. Use
/// [`SimFs::process`] for a second process on the same machine.
///
/// # Examples
///
/// ```
/// let sim = txfile::sim::SimFs::new();
/// sim.create_dir_all("/d")?;
/// let file = txfile::Options::new().filesystem(&sim).open("/d/a")?;
/// file.update(|_| Ok::<_, std::io::Error>(b"x".to_vec()))?;
/// assert_eq!(sim.read_file("/d/a")?, Some(b"x".to_vec()));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct SimFs {
    shared: Arc<Shared>,
    /// This process's id, also the filesystem's id in the guard registry.
    id: u64,
}

struct Shared {
    state: Mutex<State>,
    /// Signalled when a lock is released or the machine goes down.
    freed: Condvar,
}

impl fmt::Debug for SimFs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimFs")
            .field("id", &self.id)
            .field("state", &*self.state())
            .finish()
    }
}

impl Default for SimFs {
    fn default() -> Self {
        SimFs::new()
    }
}

/// The simulated filesystem is chosen through the options, but it is the
/// simulator's part of them.
impl crate::Options {
    /// Opens handles on a simulated filesystem instead of the real one.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.create_dir_all("/data")?;
    /// let file = txfile::Options::new().filesystem(&sim).open("/data/counter")?;
    /// file.update(|_| Ok::<_, std::io::Error>(b"1".to_vec()))?;
    /// assert_eq!(sim.read_file("/data/counter")?.as_deref(), Some(&b"1"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn filesystem(mut self, fs: &crate::sim::SimFs) -> Self {
        self.fs = Some(fs.as_fs());
        self
    }
}

impl SimFs {
    /// A machine with an empty, durable root directory `/`.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// assert!(sim.list_dir("/")?.is_empty());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn new() -> SimFs {
        SimFs::from_disk(Disk::new())
    }

    fn from_disk(disk: Disk) -> SimFs {
        SimFs {
            shared: Arc::new(Shared {
                state: Mutex::new(State::new(disk)),
                freed: Condvar::new(),
            }),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    pub(crate) fn as_fs(&self) -> Arc<dyn Fs> {
        Arc::new(self.clone())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Nothing panics while the state is locked, but a test that panics
        // elsewhere must not turn every later check into a poison error.
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn wait_freed<'a>(&self, state: MutexGuard<'a, State>) -> MutexGuard<'a, State> {
        self.shared
            .freed
            .wait(state)
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// This instance's id: unique in the program, and new for every
    /// post-crash state and every [`process`](SimFs::process).
    ///
    /// # Examples
    ///
    /// ```
    /// let a = txfile::sim::SimFs::new();
    /// let b = txfile::sim::SimFs::new();
    /// assert_ne!(a.id(), b.id());
    /// assert_eq!(a.id(), a.clone().id());
    /// ```
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Another process on the same machine: same files, but its own locks
    /// (POSIX locks belong to the process) and its own guard registry entry.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.create_dir_all("/d")?;
    /// let other = sim.process();
    /// let mine = txfile::Options::new().filesystem(&sim).open("/d/a")?;
    /// let theirs = txfile::Options::new().filesystem(&other).open("/d/a")?;
    /// let tx = mine.begin()?;
    /// assert!(theirs.try_begin()?.is_none());
    /// tx.rollback();
    /// assert!(theirs.try_begin()?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn process(&self) -> SimFs {
        SimFs {
            shared: Arc::clone(&self.shared),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
        }
    }

    /// Creates a directory and its parents, durably and without counting
    /// an operation (setup for a test).
    ///
    /// # Errors
    ///
    /// When the path is not absolute or a component is a file.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.create_dir_all("/a/b")?;
    /// assert_eq!(sim.list_dir("/a")?, ["b"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn create_dir_all(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let path = utf8(path.as_ref())?;
        let mut state = self.state();
        let disk = &mut state.disk;
        let mut partial = Utf8PathBuf::from("/");
        for name in path.components().skip(1) {
            partial.push(name);
            if disk.lookup(&partial)?.is_some() {
                continue;
            }
            let (parent, name) = disk.parent(&partial)?;
            let ino = disk.next_ino;
            disk.next_ino += 1;
            let now = disk.tick();
            disk.inodes.insert(
                ino,
                Inode {
                    node: Node::Dir(DirNode {
                        volatile: BTreeMap::new(),
                        durable: BTreeMap::new(),
                        pending: Vec::new(),
                        mode: 0o755,
                    }),
                    mtime: now,
                    ctime: now,
                },
            );
            let dir = disk.dir_mut(parent)?;
            dir.volatile.insert(name.clone(), ino);
            dir.durable.insert(name, ino);
        }
        match disk.lookup(path)? {
            Some(ino) => disk.dir(ino).map(drop),
            None => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a directory path",
            )),
        }
    }

    /// Renames a directory (or a file), durably and without counting an
    /// operation: another program moving it, as `mv` would. Handles opened
    /// before keep naming the directory itself, not its old path.
    ///
    /// # Errors
    ///
    /// When `from` does not exist, `to`'s directory does not exist, or
    /// something is already at `to`.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.create_dir_all("/a/x")?;
    /// sim.rename_dir("/a", "/b")?;
    /// assert_eq!(sim.list_dir("/b")?, ["x"]);
    /// assert!(sim.list_dir("/a").is_err());
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn rename_dir(&self, from: impl AsRef<Path>, to: impl AsRef<Path>) -> io::Result<()> {
        let (from, to) = (utf8(from.as_ref())?, utf8(to.as_ref())?);
        let mut state = self.state();
        let disk = &mut state.disk;
        let (from_dir, from_name) = disk.parent(from)?;
        let (to_dir, to_name) = disk.parent(to)?;
        let ino = disk
            .entry(from_dir, &from_name)?
            .ok_or_else(|| not_found(from))?;
        if disk.entry(to_dir, &to_name)?.is_some() {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("`{to}` exists"),
            ));
        }
        let entries = disk.dir_mut(from_dir)?;
        entries.volatile.remove(&from_name);
        entries.durable.remove(&from_name);
        let entries = disk.dir_mut(to_dir)?;
        entries.volatile.insert(to_name.clone(), ino);
        entries.durable.insert(to_name, ino);
        Ok(())
    }

    /// Writes a whole file durably, as if long ago and synced, without
    /// counting an operation (setup for a test). A new file gets mode
    /// `0o644`; an existing one keeps its inode and mode.
    ///
    /// # Errors
    ///
    /// When the directory does not exist or the path names a directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.write_file("/a", b"hello")?;
    /// assert_eq!(sim.read_file("/a")?, Some(b"hello".to_vec()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn write_file(&self, path: impl AsRef<Path>, contents: &[u8]) -> io::Result<()> {
        let path = utf8(path.as_ref())?;
        let mut state = self.state();
        let disk = &mut state.disk;
        let ino = match disk.lookup(path)? {
            Some(ino) => ino,
            None => {
                let (dir, name) = disk.parent(path)?;
                let ino = disk.create_file(dir, &name, 0o644)?;
                // Only this entry is made durable, not other pending ones.
                let entries = disk.dir_mut(dir)?;
                entries.pending.pop();
                entries.durable.insert(name, ino);
                ino
            }
        };
        let now = disk.tick();
        let inode = disk.inode_mut(ino)?;
        inode.mtime = now;
        inode.ctime = now;
        let Node::File(file) = &mut inode.node else {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        };
        file.volatile.bytes = contents.to_vec();
        file.log.clear();
        file.base = file.volatile.clone();
        Ok(())
    }

    /// Sets a file's permission bits durably, without counting an operation
    /// (setup for a test).
    ///
    /// # Errors
    ///
    /// When the file does not exist or is a directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.write_file("/a", b"")?;
    /// sim.set_mode("/a", 0o600)?;
    /// assert_eq!(sim.mode("/a")?, Some(0o600));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_mode(&self, path: impl AsRef<Path>, mode: u32) -> io::Result<()> {
        let path = utf8(path.as_ref())?;
        let mut state = self.state();
        let ino = state.disk.lookup(path)?.ok_or_else(|| not_found(path))?;
        let file = state.disk.file_mut(ino)?;
        let mode = mode & 0o7777;
        file.volatile.mode = mode;
        file.base.mode = mode;
        Ok(())
    }

    /// Sets a file's owner and group durably, without counting an
    /// operation (setup for a test: a file of another user). Files the
    /// simulated process creates belong to user and group 1000.
    ///
    /// # Errors
    ///
    /// When the file does not exist or is a directory.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.write_file("/theirs", b"")?;
    /// sim.set_owner("/theirs", 2000, 2000)?;
    /// assert_eq!(sim.owner("/theirs")?, Some((2000, 2000)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn set_owner(&self, path: impl AsRef<Utf8Path>, uid: u32, gid: u32) -> io::Result<()> {
        let path = path.as_ref();
        let mut state = self.state();
        let ino = state.disk.lookup(path)?.ok_or_else(|| not_found(path))?;
        let file = state.disk.file_mut(ino)?;
        for image in [&mut file.volatile, &mut file.base] {
            image.uid = uid;
            image.gid = gid;
        }
        Ok(())
    }

    /// A file's owner and group; `None` when it does not exist. Counts no
    /// operation.
    ///
    /// # Errors
    ///
    /// When the path names a directory or a parent is missing.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.write_file("/mine", b"")?;
    /// assert_eq!(sim.owner("/mine")?, Some((1000, 1000)));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn owner(&self, path: impl AsRef<Utf8Path>) -> io::Result<Option<(u32, u32)>> {
        let state = self.state();
        match state.disk.lookup(path.as_ref())? {
            Some(ino) => {
                let image = &state.disk.file(ino)?.volatile;
                Ok(Some((image.uid, image.gid)))
            }
            None => Ok(None),
        }
    }

    /// A file's contents as running processes see them; `None` when it
    /// does not exist. Works after a crash too (showing the last volatile
    /// view) and counts no operation.
    ///
    /// # Errors
    ///
    /// When the path names a directory or a parent is missing.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// assert_eq!(sim.read_file("/missing")?, None);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn read_file(&self, path: impl AsRef<Path>) -> io::Result<Option<Vec<u8>>> {
        let state = self.state();
        match state.disk.lookup(utf8(path.as_ref())?)? {
            Some(ino) => Ok(Some(state.disk.file(ino)?.volatile.bytes.clone())),
            None => Ok(None),
        }
    }

    /// A file's permission bits; `None` when it does not exist. Counts no
    /// operation.
    ///
    /// # Errors
    ///
    /// When the path names a directory or a parent is missing.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.write_file("/a", b"")?;
    /// assert_eq!(sim.mode("/a")?, Some(0o644));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn mode(&self, path: impl AsRef<Path>) -> io::Result<Option<u32>> {
        let state = self.state();
        match state.disk.lookup(utf8(path.as_ref())?)? {
            Some(ino) => Ok(Some(state.disk.file(ino)?.volatile.mode)),
            None => Ok(None),
        }
    }

    /// The names in a directory, sorted. Counts no operation.
    ///
    /// # Errors
    ///
    /// When the directory does not exist.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.write_file("/b", b"")?;
    /// sim.write_file("/a", b"")?;
    /// assert_eq!(sim.list_dir("/")?, ["a", "b"]);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn list_dir(&self, path: impl AsRef<Path>) -> io::Result<Vec<String>> {
        let path = utf8(path.as_ref())?;
        let state = self.state();
        let ino = state.disk.lookup(path)?.ok_or_else(|| not_found(path))?;
        Ok(state.disk.dir(ino)?.volatile.keys().cloned().collect())
    }

    /// How many seam operations have run (or been refused) so far; the
    /// next one has this index.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// assert_eq!(sim.op_count(), 0);
    /// let _ = txfile::Options::new().filesystem(&sim).open("/a")?;
    /// assert!(sim.op_count() > 0);
    /// # Ok::<(), txfile::Error>(())
    /// ```
    pub fn op_count(&self) -> u64 {
        self.state().ops
    }

    /// Every seam operation so far, in order.
    ///
    /// # Examples
    ///
    /// ```
    /// use txfile::sim::{OpKind, SimFs};
    /// let sim = SimFs::new();
    /// let file = txfile::Options::new().filesystem(&sim).open("/a")?;
    /// file.begin()?.rollback();
    /// assert!(sim.trace().iter().any(|op| op.kind == OpKind::OpenGuard));
    /// # Ok::<(), txfile::Error>(())
    /// ```
    pub fn trace(&self) -> Vec<Operation> {
        self.state().trace.clone()
    }

    /// Loses power just before operation `index` (counted from 0 with
    /// [`op_count`](SimFs::op_count)) runs: it and every later operation
    /// fail, and nothing more changes. An index already past does nothing.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.crash_at(0);
    /// assert!(txfile::Options::new().filesystem(&sim).open("/a").is_err());
    /// assert!(sim.is_crashed());
    /// ```
    pub fn crash_at(&self, index: u64) {
        self.state().plan.insert(index, Planned::CrashBefore);
    }

    /// Loses power in the middle of operation `index`: a write puts down
    /// only the first half of its bytes (which a crash may tear further);
    /// any other operation completes. Either way the call fails.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.crash_during(2);
    /// assert!(txfile::Options::new().filesystem(&sim).open("/a").is_err());
    /// assert_eq!(sim.op_count(), 3);
    /// ```
    pub fn crash_during(&self, index: u64) {
        self.state().plan.insert(index, Planned::CrashDuring);
    }

    /// Makes operation `index` fail with `fault` (see [`Fault`] for what
    /// each does besides).
    ///
    /// # Examples
    ///
    /// ```
    /// use txfile::sim::{Fault, SimFs};
    /// let sim = SimFs::new();
    /// sim.fail_at(0, Fault::Io);
    /// assert!(txfile::Options::new().filesystem(&sim).open("/a").is_err());
    /// assert!(!sim.is_crashed());
    /// ```
    pub fn fail_at(&self, index: u64, fault: Fault) {
        self.state().plan.insert(index, Planned::Fail(fault));
    }

    /// Loses power now.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.crash_now();
    /// assert!(sim.is_crashed());
    /// ```
    pub fn crash_now(&self) {
        self.state().crash();
        self.shared.freed.notify_all();
    }

    /// Whether the machine has lost power.
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(!txfile::sim::SimFs::new().is_crashed());
    /// ```
    pub fn is_crashed(&self) -> bool {
        self.state().crashed
    }

    /// Runs `hook` once, right after the next release on this machine that
    /// leaves a guard with no holder (before the releasing thread goes on),
    /// unless the machine has crashed by then. Tests use it to let a competing process in at
    /// exactly that moment.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, atomic::{AtomicBool, Ordering}};
    /// let sim = txfile::sim::SimFs::new();
    /// let ran = Arc::new(AtomicBool::new(false));
    /// let flag = Arc::clone(&ran);
    /// sim.on_unlock(move || flag.store(true, Ordering::SeqCst));
    /// let file = txfile::Options::new().filesystem(&sim).open("/a")?;
    /// file.begin()?.rollback();
    /// assert!(ran.load(Ordering::SeqCst));
    /// # Ok::<(), txfile::Error>(())
    /// ```
    pub fn on_unlock(&self, hook: impl FnOnce() + Send + 'static) {
        self.state().unlock_hook = Some(Box::new(hook));
    }

    /// Makes this filesystem inject the fault of `mutant`, where the
    /// mutant is one a filesystem can produce by itself: with
    /// `IgnoreFsyncError` a failed fsync of a temporary file reports
    /// success (the data stays in doubt, as after any failed fsync). Only in
    /// the project's own test builds (`--cfg txfile_mutants`, see
    /// `src/mutants.rs`); never for real data.
    #[cfg(txfile_mutants)]
    #[doc(hidden)]
    pub fn mutant(&self, mutant: crate::mutants::Mutant) {
        self.state().mutant = mutant;
    }

    /// Makes `flock` and POSIX locks one lock on this machine, as Linux does
    /// on NFS: a lock of either kind then conflicts with every other
    /// owner's lock of either kind. By default they are independent, as on
    /// local Linux filesystems. txfile takes only one kind where they are
    /// one lock; taking both would wait for itself.
    ///
    /// # Examples
    ///
    /// ```
    /// use txfile::{LockStyle, Options};
    /// let sim = txfile::sim::SimFs::new();
    /// sim.set_merged_locks(true);
    /// let other = sim.process();
    /// let mine = Options::new().filesystem(&sim).lock_style(LockStyle::Flock).open("/a")?;
    /// let theirs = Options::new().filesystem(&other).lock_style(LockStyle::Posix).open("/a")?;
    /// let tx = mine.begin()?;
    /// assert!(theirs.try_begin()?.is_none());
    /// tx.rollback();
    /// assert!(theirs.try_begin()?.is_some());
    /// # Ok::<(), txfile::Error>(())
    /// ```
    pub fn set_merged_locks(&self, merged: bool) {
        self.state().merged_locks = merged;
    }

    /// Every state a power loss now (or at the crash, if the machine is
    /// down) can leave, each as a new machine whose files are all durable
    /// and which holds no locks.
    ///
    /// # Errors
    ///
    /// [`TooManyStates`] when there are more than the bound allows.
    ///
    /// # Examples
    ///
    /// ```
    /// use txfile::sim::{Enumeration, SimFs};
    /// let sim = SimFs::new();
    /// sim.create_dir_all("/d")?;
    /// let file = txfile::Options::new().filesystem(&sim).open("/d/a")?;
    /// file.begin()?.rollback();
    /// // The guard file, created by the first transaction, has an entry that
    /// // is not durable yet: it may or may not be there.
    /// let states: Vec<SimFs> = sim.crash_states(&Enumeration::new())?.collect();
    /// assert_eq!(states.len(), 2);
    /// assert!(states.iter().any(|s| s.list_dir("/d").unwrap().is_empty()));
    /// # drop(file);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn crash_states(&self, bound: &Enumeration) -> Result<CrashStates, TooManyStates> {
        let disk = self.state().disk.clone();
        CrashStates::new(disk, bound)
    }

    /// One post-crash state, chosen by `choose`: it is asked for each
    /// independent choice with the number of options and answers with one
    /// (taken modulo that number). For fuzzers, which steer the choices
    /// with their input.
    ///
    /// # Examples
    ///
    /// ```
    /// let sim = txfile::sim::SimFs::new();
    /// sim.write_file("/a", b"x")?;
    /// let after = sim.crash_state_with(false, |options| options - 1);
    /// assert_eq!(after.read_file("/a")?, Some(b"x".to_vec()));
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn crash_state_with(
        &self,
        paranoid_rename: bool,
        mut choose: impl FnMut(u64) -> u64,
    ) -> SimFs {
        let disk = self.state().disk.clone();
        SimFs::from_disk(crash::build(&disk, paranoid_rename, &mut choose))
    }
}

/// One call through the crate's filesystem seam.
///
/// # Examples
///
/// ```
/// let sim = txfile::sim::SimFs::new();
/// let _ = txfile::Options::new().filesystem(&sim).open("/a")?;
/// let first = &sim.trace()[0];
/// assert_eq!(first.index, 0);
/// # Ok::<(), txfile::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Operation {
    /// Its position, from 0; what [`SimFs::crash_at`] takes.
    pub index: u64,
    /// What it did.
    pub kind: OpKind,
    /// The path it was done to (the directory for
    /// [`OpKind::CreateTemp`]; the source for [`OpKind::Rename`]).
    pub path: Utf8PathBuf,
}

/// The kinds of seam operations.
///
/// # Examples
///
/// ```
/// use txfile::sim::OpKind;
/// assert!(OpKind::Write.changes_state());
/// assert!(!OpKind::Read.changes_state());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OpKind {
    /// `lstat`.
    Lstat,
    /// `stat`.
    Stat,
    /// `readlink`.
    ReadLink,
    /// Open the target for reading.
    OpenRead,
    /// Open or create the guard file.
    OpenGuard,
    /// Open a directory.
    OpenDir,
    /// Create a temporary file (`O_EXCL`).
    CreateTemp,
    /// Create a file at an exact name (`O_EXCL`).
    CreateNew,
    /// Open an existing file for writing (a journal, by recovery).
    OpenWrite,
    /// `link`.
    Link,
    /// `rename`.
    Rename,
    /// `unlink`.
    Remove,
    /// `fstat`.
    Fstat,
    /// `pread`.
    Read,
    /// `write`.
    Write,
    /// `fchown`.
    SetOwner,
    /// `fchmod`.
    SetMode,
    /// `ftruncate` (the guard file's "unclean" marker).
    SetLen,
    /// `fsync` of a file.
    SyncFile,
    /// `fsync` of a directory.
    SyncDir,
    /// List a directory.
    List,
    /// Take a lock.
    Lock,
}

impl OpKind {
    /// Whether the operation can change what a crash leaves (which makes a
    /// crash right after it different from a crash right before it).
    ///
    /// # Examples
    ///
    /// ```
    /// assert!(txfile::sim::OpKind::SyncDir.changes_state());
    /// ```
    pub fn changes_state(self) -> bool {
        matches!(
            self,
            OpKind::OpenGuard
                | OpKind::CreateTemp
                | OpKind::CreateNew
                | OpKind::Link
                | OpKind::Rename
                | OpKind::Remove
                | OpKind::Write
                | OpKind::SetOwner
                | OpKind::SetMode
                | OpKind::SetLen
                | OpKind::SyncFile
                | OpKind::SyncDir
        )
    }
}

/// The simulator names files by UTF-8 paths, like the rest of the crate.
fn utf8(path: &Path) -> io::Result<&Utf8Path> {
    Utf8Path::from_path(path).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{}` is not valid UTF-8", path.display()),
        )
    })
}

fn not_found(path: &Utf8Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("`{path}` does not exist"))
}

/// Journal records as (directory, target, staged file).
fn tuples(records: Vec<crate::journal::Record>) -> Vec<(String, String, String)> {
    records
        .into_iter()
        .map(|r| (r.dir.into_string(), r.target, r.staged))
        .collect()
}

/// Decodes a batch commit's journal as the commit writes it (one commit
/// entry, nothing after it): `Ok` with its records (directory, target,
/// staged file) for a complete one, `Err` with the reason for a torn or
/// foreign one. For fuzzing the decoder; recovery reads whole journal files
/// with [`journal_decision`].
///
/// # Examples
///
/// ```
/// use txfile::sim::{decode_journal, encode_journal};
/// let records = vec![("/d".to_string(), "a".to_string(), ".a.x.txtmp".to_string())];
/// let bytes = encode_journal(&records);
/// assert_eq!(decode_journal(&bytes), Ok(records));
/// assert!(decode_journal(&bytes[..bytes.len() - 1]).is_err());
/// ```
pub fn decode_journal(bytes: &[u8]) -> Result<Vec<(String, String, String)>, String> {
    crate::journal::decode(bytes)
        .map(tuples)
        .map_err(|torn| torn.0.to_string())
}

/// Entries of a journal file start at multiples of this many bytes.
pub const JOURNAL_BLOCK: usize = crate::journal::BLOCK;

/// What [`journal_decision`] returns: `Ok(Some(records))`, `Ok(None)` or
/// `Err(reason)`.
///
/// # Examples
///
/// ```
/// let torn: txfile::sim::JournalDecision = txfile::sim::journal_decision(b"");
/// assert!(torn.is_err());
/// ```
pub type JournalDecision = Result<Option<Vec<(String, String, String)>>, String>;

/// The decision recovery takes from a whole journal file: its last entry
/// that decodes, looking at every multiple of [`JOURNAL_BLOCK`]. `Ok(Some)`
/// with the records of a commit entry (roll forward), `Ok(None)` for a void
/// entry (roll back), `Err` with the reason when no entry decodes (torn:
/// roll back).
///
/// # Examples
///
/// ```
/// use txfile::sim::{JOURNAL_BLOCK, encode_journal, encode_journal_void, journal_decision};
/// let records = vec![("/d".to_string(), "a".to_string(), ".a.x.txtmp".to_string())];
/// let mut file = encode_journal(&records);
/// assert_eq!(journal_decision(&file), Ok(Some(records)));
/// file.resize(JOURNAL_BLOCK, 0);
/// file.extend(encode_journal_void());
/// assert_eq!(journal_decision(&file), Ok(None));
/// assert!(journal_decision(b"torn").is_err());
/// ```
pub fn journal_decision(bytes: &[u8]) -> JournalDecision {
    use crate::journal::Decision;
    match crate::journal::decide(bytes) {
        Decision::Commit(records) => Ok(Some(tuples(records))),
        Decision::Void => Ok(None),
        Decision::Rejected(reason) => Err(reason.to_string()),
    }
}

/// The void entry a journal gets when its batch did not commit.
///
/// # Examples
///
/// ```
/// assert_eq!(txfile::sim::journal_decision(&txfile::sim::encode_journal_void()), Ok(None));
/// ```
pub fn encode_journal_void() -> Vec<u8> {
    crate::journal::encode_void()
}

/// Encodes a journal from records (directory, target, staged file), as a
/// batch commit writes it; the counterpart of [`decode_journal`].
///
/// # Examples
///
/// ```
/// let bytes = txfile::sim::encode_journal(&[("/d".into(), "a".into(), ".a.x.txtmp".into())]);
/// assert!(bytes.starts_with(b"TXFJ"));
/// ```
pub fn encode_journal(records: &[(String, String, String)]) -> Vec<u8> {
    let records: Vec<crate::journal::Record> = records
        .iter()
        .map(|(dir, target, staged)| crate::journal::Record {
            dir: dir.into(),
            target: target.clone(),
            staged: staged.clone(),
        })
        .collect();
    crate::journal::encode(&records)
}
