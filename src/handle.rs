//! The handle's shared state and what it does by itself: open the target's
//! directory and check the target, open and lock the guard (re-opening it
//! when its path names another inode, or in a forked child), and sweep the
//! temporary files a dead writer left. [`TxFile`](crate::TxFile) is the
//! public face over a [`Handle`]; the transaction and the commit protocol
//! below it work on the handle, never on `TxFile`, so that the modules read
//! in one direction: `txfile` -> `transaction` -> commit protocol ->
//! `handle` -> filesystem seam -> platform.

use std::fmt;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use camino::{Utf8Component, Utf8Path, Utf8PathBuf};

use crate::error::Op;
use crate::fs::shared::SharedDir;
use crate::fs::{DirHandle, Fs, GuardPerms, Kind, Marker, real::RealFs};
use crate::guard::{Foreign, Got, GuardRef, Holder, Locked, Mode, Wait};
use crate::mutants::{Mutant, active};
use crate::{Error, Options, Symlinks, names};

/// How many symbolic links [`Symlinks::Follow`] resolves before giving up
/// (Linux's `MAXSYMLINKS`).
const MAX_SYMLINKS: usize = 40;

/// How often the lock is taken again because the guard path named another
/// inode than the one locked, before giving up: each time means someone
/// replaced or removed the guard file between our open and our lock.
const MAX_GUARD_REOPENS: usize = 16;

/// A handle on one target: cheap to clone (a reference to the state all
/// clones share). What `TxFile` wraps, and what transactions, the commit
/// protocol, batch journals and in-place records work on.
#[derive(Clone)]
pub(crate) struct Handle {
    pub(crate) inner: Arc<Inner>,
}

/// The state every clone of a handle shares.
pub(crate) struct Inner {
    pub(crate) fs: Arc<dyn Fs>,
    pub(crate) options: Options,
    /// The file that is replaced, as given at open (the resolved file
    /// under `Symlinks::Follow`). Only for messages and journal records:
    /// every call goes through `dir` and `name`.
    pub(crate) path: Utf8PathBuf,
    /// `path`'s directory, as given at open (for messages).
    pub(crate) dir_path: Utf8PathBuf,
    /// The target's directory, opened once at open and shared with every
    /// handle of the process on a file in it: the target, its temporary
    /// files, its default guard and its journal are names in it, so a
    /// rename of the directory (or of any parent) changes nothing for the
    /// handle.
    pub(crate) dir: Arc<SharedDir>,
    /// The target's name in `dir`.
    pub(crate) name: String,
    pub(crate) guard_path: Utf8PathBuf,
    /// The guard's directory: `dir` for the default guard `<name>.lock`,
    /// the directory of [`Options::guard_path`] (opened at open, possibly
    /// another) for a chosen one.
    pub(crate) guard_dir: Arc<SharedDir>,
    /// The guard's name in `guard_dir`.
    pub(crate) guard_name: String,
    pub(crate) temp_prefix: String,
    /// Where a batch commit that includes this target leaves its journal
    /// (for messages and journal records).
    pub(crate) journal_path: Utf8PathBuf,
    /// The journal's name in `dir`.
    pub(crate) journal_name: String,
    /// The registered guard descriptor, opened by the first transaction (see
    /// [`Handle::guard`]); replaced when the guard path turns out to name
    /// another inode.
    guard: Mutex<Option<GuardRef>>,
    /// Whether the target is on NFS (see [`crate::stale`]).
    pub(crate) on_nfs: bool,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("path", &self.inner.path)
            .field("guard_path", &self.inner.guard_path)
            .field("options", &self.inner.options)
            .finish_non_exhaustive()
    }
}

impl Handle {
    /// Opens a handle on `path` (see [`TxFile::open`](crate::TxFile::open)
    /// for what is checked, and the errors).
    pub(crate) fn open(path: &Path, mut options: Options) -> Result<Handle, Error> {
        let real_fs = options.fs.is_none();
        let fs: Arc<dyn Fs> = options
            .fs
            .take()
            .unwrap_or_else(|| Arc::new(RealFs::new(options.mutant)));
        let path = absolute(utf8_path(path)?)?;
        let path = match options.symlinks {
            Symlinks::Follow => resolve_links(fs.as_ref(), &path)?,
            Symlinks::Reject => {
                if is_symlink(fs.as_ref(), &path)? {
                    return Err(Error::Symlink { path });
                }
                path
            }
            Symlinks::Replace => path,
        };
        let (dir_path, name) = split(&path)?;
        // The one lookup of the directory by path: from here on, every
        // name is looked up in this descriptor.
        let dir = SharedDir::open(fs.as_ref(), &dir_path)
            .map_err(|e| Error::io(Op::OpenDir, &dir_path, e))?;
        let on_nfs = if real_fs { None } else { Some(false) };
        Handle::in_dir(fs, options, path, (dir, dir_path), name, on_nfs)
    }

    /// A handle on `name` in this handle's directory, through its
    /// descriptor: no path is looked up, so it is the file beside this
    /// one wherever the directory has moved since (batch recovery opens
    /// the members a journal records in its own directory this way).
    /// `options` as for [`Handle::open`].
    pub(crate) fn sibling(&self, name: &str, mut options: Options) -> Result<Handle, Error> {
        let inner = &*self.inner;
        options.fs = None;
        let dir = (Arc::clone(&inner.dir), inner.dir_path.clone());
        let handle = Handle::in_dir(
            Arc::clone(&inner.fs),
            options,
            inner.dir_path.join(name),
            dir,
            name.to_owned(),
            Some(inner.on_nfs),
        )?;
        Ok(handle)
    }

    /// A handle on `name` in the open directory `dir`; `path` and
    /// `dir_path` name them in messages and journal records. `on_nfs`:
    /// whether the directory is on NFS, or `None` to find out.
    fn in_dir(
        fs: Arc<dyn Fs>,
        options: Options,
        path: Utf8PathBuf,
        (dir, dir_path): (Arc<SharedDir>, Utf8PathBuf),
        name: String,
        on_nfs: Option<bool>,
    ) -> Result<Handle, Error> {
        // What the target is: a regular file or nothing. Under `Replace` the
        // old contents are read through a link, so what it points to counts.
        let meta = match options.symlinks {
            Symlinks::Replace => dir.stat(&name),
            Symlinks::Follow | Symlinks::Reject => dir.lstat(&name),
        };
        let meta = meta.map_err(|e| Error::io(Op::Stat, &path, e))?;
        let invalid = |reason| Error::InvalidPath {
            path: path.clone(),
            reason,
        };
        match meta.map(|meta| meta.kind) {
            Some(Kind::Dir) => return Err(invalid("it is a directory")),
            Some(Kind::Other) => {
                return Err(invalid(
                    "it is not a regular file (a device, FIFO or socket)",
                ));
            }
            // Checked by path at `open`; for a sibling, here.
            Some(Kind::Symlink) if options.symlinks == Symlinks::Reject => {
                return Err(Error::Symlink { path });
            }
            Some(Kind::File | Kind::Symlink) | None => {}
        }
        let (guard_path, guard_dir, guard_name) = match &options.guard_path {
            Some(guard) => {
                let guard_path = absolute(utf8_path(guard)?)?;
                if guard_path == path {
                    return Err(invalid("it cannot be its own lock file"));
                }
                let (guard_dir_path, guard_name) = split(&guard_path)?;
                let guard_dir = SharedDir::open(fs.as_ref(), &guard_dir_path)
                    .map_err(|e| Error::io(Op::OpenDir, &guard_dir_path, e))?;
                if Arc::ptr_eq(&guard_dir, &dir) && guard_name == name {
                    return Err(invalid("it cannot be its own lock file"));
                }
                (guard_path, guard_dir, guard_name)
            }
            None => {
                let guard_name = names::guard_name(&name);
                (dir_path.join(&guard_name), Arc::clone(&dir), guard_name)
            }
        };
        let foreign = foreign_policy(&options);
        // A first look that creates nothing: refuse a file that is not a
        // guard before anything is created. (Opening the guard checks
        // again, on the descriptor.)
        if foreign == Foreign::Refuse {
            let seen = guard_dir
                .lstat(&guard_name)
                .map_err(|e| Error::io(Op::Stat, &guard_path, e))?;
            if let Some(reason) = seen.as_ref().and_then(crate::guard::foreign_reason) {
                return Err(Error::ForeignGuard {
                    path: guard_path,
                    target: path,
                    reason,
                });
            }
        }
        let on_nfs = match on_nfs {
            Some(known) => known,
            None => crate::mountinfo::check(&dir_path, &options, &path)?,
        };
        let journal_name = names::journal_name(&name);
        Ok(Handle {
            inner: Arc::new(Inner {
                fs,
                options,
                temp_prefix: names::temp_prefix(&name),
                journal_path: dir_path.join(&journal_name),
                journal_name,
                path,
                dir_path,
                dir,
                name,
                guard_path,
                guard_dir,
                guard_name,
                guard: Mutex::new(None),
                on_nfs,
            }),
        })
    }

    /// Where this target's guard stands in the order batches lock in
    /// (opening the guard if no transaction has yet).
    pub(crate) fn order_key(&self) -> Result<(u64, u64, u64), Error> {
        Ok(self.guard()?.order_key())
    }

    /// This process's registered descriptor of the guard, opened (and the
    /// guard file created if missing) at the first call, which is the first
    /// transaction's: only writers need the guard, so a handle that only
    /// reads never creates or opens it. Later calls share the descriptor,
    /// through the registry, like every other handle on the same guard.
    fn guard(&self) -> Result<GuardRef, Error> {
        let inner = &*self.inner;
        let mut slot = inner.guard.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(guard) = slot.as_ref() {
            return Ok(guard.clone());
        }
        let guard = self.open_guard()?;
        *slot = Some(guard.clone());
        Ok(guard)
    }

    /// Opens (creating if missing) and registers the guard at its path.
    fn open_guard(&self) -> Result<GuardRef, Error> {
        let inner = &*self.inner;
        let fs = inner.fs.as_ref();
        let foreign = foreign_policy(&inner.options);
        GuardRef::open(
            fs,
            &**inner.guard_dir,
            &inner.guard_name,
            &inner.guard_path,
            &inner.path,
            foreign,
            || guard_perms(&**inner.dir, &inner.name),
        )
    }

    /// Takes the lock for this thread, then checks that the guard path still
    /// names the locked inode: if someone deleted or replaced the guard
    /// file, the lock is on a file nobody else will find, so it is dropped
    /// and taken again on the file the path names now. In a child forked
    /// after the guard was opened, the child first opens its own.
    ///
    /// `Ok(None)` when `wait` ran out; [`Error::HeldByThisThread`] when this
    /// thread holds the lock already. (A lock that will be used and released
    /// by other threads than the one taking it calls [`GuardRef::lock`]
    /// with no owner instead.)
    pub(crate) fn lock(&self, mode: Mode, wait: Wait) -> Result<Option<Locked>, Error> {
        self.lock_for(mode, wait, Some(std::thread::current().id()))
    }

    /// [`Handle::lock`] for `thread`, or with no owner (`None`) for a lock
    /// that moves between threads (the async API), which is then never
    /// taken for re-entry.
    pub(crate) fn lock_for(
        &self,
        mode: Mode,
        wait: Wait,
        thread: Option<std::thread::ThreadId>,
    ) -> Result<Option<Locked>, Error> {
        let inner = &*self.inner;
        let _wait = crate::trace::step!("lock_wait", inner.path);
        let fs = inner.fs.as_ref();
        let options = &self.inner.options;
        let holder = Holder {
            pid: std::process::id(),
            thread,
        };
        let mut last_seen = None;
        for _ in 0..MAX_GUARD_REOPENS {
            let guard = self.guard()?;
            if !guard.registered_by(holder.pid) && !active(options.mutant, Mutant::NoForkCheck) {
                self.reopen_guard(&guard)?;
                continue;
            }
            let one_kind = active(options.mutant, Mutant::OneLockKind);
            let got = guard
                .lock(inner.options.lock_style, mode, wait, holder, one_kind)
                .map_err(|e| Error::io(Op::Lock, &inner.guard_path, e))?;
            let locked = match got {
                Got::Locked(locked) => locked,
                Got::Busy => return Ok(None),
                Got::HeldByThisThread => {
                    return Err(Error::HeldByThisThread {
                        path: inner.path.clone(),
                    });
                }
            };
            let now = inner
                .guard_dir
                .lstat(&inner.guard_name)
                .map_err(|e| Error::io(Op::Stat, &inner.guard_path, e))?;
            let trusted = active(options.mutant, Mutant::NoGuardIdentityCheck);
            if trusted || now.is_some_and(|meta| guard.is_inode(fs, &meta)) {
                let mut locked = locked;
                if mode == Mode::Exclusive {
                    // A size beyond the markers' (someone wrote into our
                    // guard) counts as unclean: sweep and sync.
                    let size = now.map_or(0, |meta| meta.size);
                    locked.note_marker(Marker::from_size(size).unwrap_or(Marker::Unclean));
                }
                return Ok(Some(locked));
            }
            drop(locked);
            last_seen = now;
            self.reopen_guard(&guard)?;
        }
        let seen = match last_seen {
            None => "nothing".to_string(),
            Some(meta) => format!("inode {} of device {}", meta.ino, meta.dev),
        };
        Err(Error::io(
            Op::Lock,
            &inner.guard_path,
            std::io::Error::other(format!(
                "the lock file was replaced or removed each of the {MAX_GUARD_REOPENS} times it was locked (the path last named {seen}, not the locked file); is something deleting it?"
            )),
        ))
    }

    /// Replaces `stale` (a guard whose path names another inode now, or one
    /// a forked child inherited) with this process's descriptor of the
    /// guard the path names.
    fn reopen_guard(&self, stale: &GuardRef) -> Result<(), Error> {
        let fresh = self.open_guard()?;
        let mut current = self
            .inner
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if current
            .as_ref()
            .is_none_or(|current| current.same_guard(stale))
        {
            *current = Some(fresh);
        }
        Ok(())
    }

    /// Removes temporary files of this target left by a writer that died
    /// holding the lock. Only what is provably such a file goes: a name
    /// that parses back to exactly this target's pattern, naming a regular
    /// file with one link that belongs to this user (or, for root, to the
    /// target's owner, to whom a commit gives its temporary file). Anything
    /// else, and anything that cannot be removed, is left alone: it never
    /// blocks a transaction. Only while the lock is held, so a live writer's
    /// file is never among them. It runs when the guard's marker says the
    /// last holder did not finish cleanly, and at the first lock of the
    /// guard in this process (the marker does not survive power loss).
    pub(crate) fn sweep(&self, _locked: &Locked) -> Result<(), Error> {
        let inner = &*self.inner;
        let fs = inner.fs.as_ref();
        let names = inner
            .dir
            .list()
            .map_err(|e| Error::io(Op::ListDir, &inner.dir_path, e))?;
        let euid = fs.euid();
        let mut target_owner = None;
        for name in names {
            if !is_stale_temp(self, &name) {
                continue;
            }
            let Ok(Some(meta)) = inner.dir.lstat(&name) else {
                continue;
            };
            if meta.kind != Kind::File || meta.nlink != 1 {
                continue;
            }
            let ours = meta.uid == euid
                || (euid == 0
                    && *target_owner.get_or_insert_with(|| {
                        inner.dir.lstat(&inner.name).ok().flatten().map(|m| m.uid)
                    }) == Some(meta.uid));
            if ours || active(self.inner.options.mutant, Mutant::SweepForeignTemp) {
                // Gone already, or not ours to remove after all: skip.
                let _ = inner.dir.remove_file(&name);
            }
        }
        Ok(())
    }
}

/// Several handles locked together (a batch, or recovery of its journal).
impl Handle {
    /// Locks every member in the batch order (device and inode of the guard),
    /// returning the locks in member order; `Ok(None)` when `wait` ran out.
    pub(crate) fn lock_all(
        members: &[&Handle],
        mode: Mode,
        wait: Wait,
        thread: Option<std::thread::ThreadId>,
    ) -> Result<Option<Vec<Locked>>, Error> {
        let keys = members
            .iter()
            .map(|member| member.order_key())
            .collect::<Result<Vec<_>, _>>()?;
        let mut order: Vec<usize> = (0..members.len()).collect();
        order.sort_by_key(|&i| keys[i]);
        let mut locks: Vec<Option<Locked>> = (0..members.len()).map(|_| None).collect();
        for i in order {
            match members[i].lock_for(mode, wait, thread)? {
                Some(locked) => locks[i] = Some(locked),
                None => return Ok(None),
            }
        }
        Ok(Some(locks.into_iter().flatten().collect()))
    }
}

/// Whether `name` is a temporary file that a dead writer of `file`'s target
/// left behind.
fn is_stale_temp(file: &Handle, name: &str) -> bool {
    if active(file.inner.options.mutant, Mutant::SweepForeignTemp) {
        let stem = file.inner.temp_prefix.trim_end_matches('.');
        return name.starts_with(stem) && name.contains(".t");
    }
    names::is_temp_of(&file.inner.temp_prefix, name)
}

/// Whether something that is not a guard at the guard path is refused (the
/// protocol) or trusted (the `MarkForeignGuard` mutant): decided once here
/// for the early look at `open` and for the real open of the guard.
fn foreign_policy(options: &Options) -> Foreign {
    if active(options.mutant, Mutant::MarkForeignGuard) {
        Foreign::Trust
    } else {
        Foreign::Refuse
    }
}

/// `path` as camino's UTF-8 path, which the crate uses inside (and in the
/// paths it reports); a path that is not UTF-8 is refused, not mangled.
pub(crate) fn utf8_path(path: &Path) -> Result<&Utf8Path, Error> {
    Utf8Path::from_path(path).ok_or_else(|| Error::InvalidPath {
        path: Utf8PathBuf::from(path.to_string_lossy().into_owned()),
        reason: "it is not valid UTF-8 (txfile works with UTF-8 paths only)",
    })
}

/// The permissions a new guard gets: see [`GuardPerms::like`]; from the
/// target `name` in `dir`, or from the directory while it does not exist.
fn guard_perms(dir: &dyn DirHandle, name: &str) -> std::io::Result<GuardPerms> {
    match dir.stat(name)? {
        Some(meta) => Ok(GuardPerms::like(&meta)),
        None => Ok(GuardPerms::like(&dir.meta()?)),
    }
}

fn absolute(path: &Utf8Path) -> Result<Utf8PathBuf, Error> {
    if path.as_str().is_empty() {
        return Err(Error::InvalidPath {
            path: path.to_owned(),
            reason: "it is empty",
        });
    }
    if path.is_absolute() {
        return Ok(path.to_owned());
    }
    let cwd = std::env::current_dir().map_err(|e| Error::io(Op::Stat, ".", e))?;
    let cwd = Utf8PathBuf::from_path_buf(cwd).map_err(|cwd| Error::InvalidPath {
        path: Utf8PathBuf::from(cwd.to_string_lossy().into_owned()),
        reason: "the current directory is not UTF-8",
    })?;
    Ok(cwd.join(path))
}

/// The parent directory and the file name; refuses paths that cannot name a
/// file (`/`, `dir/..`, `dir/.`, `dir/`).
fn split(path: &Utf8Path) -> Result<(Utf8PathBuf, String), Error> {
    let invalid = |reason| Error::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    let Some(Utf8Component::Normal(name)) = path.components().next_back() else {
        return Err(invalid("it has no file name"));
    };
    let raw = path.as_str();
    if raw.ends_with('/') || raw.ends_with("/.") {
        return Err(invalid("it names a directory"));
    }
    let dir = path
        .parent()
        .ok_or_else(|| invalid("it has no parent directory"))?;
    Ok((dir.to_owned(), name.to_owned()))
}

fn is_symlink(fs: &dyn Fs, path: &Utf8Path) -> Result<bool, Error> {
    Ok(fs
        .lstat(path)
        .map_err(|e| Error::io(Op::Stat, path, e))?
        .is_some_and(|meta| meta.kind == Kind::Symlink))
}

/// Follows symbolic links until `path` names a regular file or nothing.
fn resolve_links(fs: &dyn Fs, path: &Utf8Path) -> Result<Utf8PathBuf, Error> {
    let mut path = path.to_owned();
    for _ in 0..MAX_SYMLINKS {
        if !is_symlink(fs, &path)? {
            return Ok(path);
        }
        let target = fs
            .read_link(&path)
            .map_err(|e| Error::io(Op::ReadLink, &path, e))?;
        path = match path.parent() {
            Some(dir) if target.is_relative() => dir.join(target),
            _ => target,
        };
    }
    Err(Error::io(
        Op::ReadLink,
        path,
        std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "too many levels of symbolic links",
        ),
    ))
}

#[cfg(all(test, feature = "sim"))]
mod tests {
    use std::io;

    use camino::{Utf8Path, Utf8PathBuf};

    use super::*;
    use crate::fs::{GuardFile, Meta, ReadFile, WriteFile};
    use crate::sim::SimFs;

    /// A filesystem on which the guard path never names the inode that was
    /// opened: as if someone replaced the guard file in a loop.
    #[derive(Debug)]
    struct Replacing(SimFs);

    /// A directory of [`Replacing`].
    #[derive(Debug)]
    struct ReplacingDir(Box<dyn DirHandle>);

    impl Fs for Replacing {
        fn id(&self) -> u64 {
            Fs::id(&self.0)
        }
        fn euid(&self) -> u32 {
            self.0.euid()
        }
        fn lstat(&self, path: &Utf8Path) -> io::Result<Option<Meta>> {
            self.0.lstat(path)
        }
        fn read_link(&self, path: &Utf8Path) -> io::Result<Utf8PathBuf> {
            self.0.read_link(path)
        }
        fn open_dir(&self, path: &Utf8Path) -> io::Result<Box<dyn DirHandle>> {
            Ok(Box::new(ReplacingDir(self.0.open_dir(path)?)))
        }
        fn link(&self, _: &dyn DirHandle, _: &str, _: &dyn DirHandle, _: &str) -> io::Result<()> {
            Err(io::ErrorKind::Unsupported.into())
        }
    }

    impl DirHandle for ReplacingDir {
        fn meta(&self) -> io::Result<Meta> {
            self.0.meta()
        }
        fn sync(&self) -> io::Result<()> {
            self.0.sync()
        }
        fn list(&self) -> io::Result<Vec<String>> {
            self.0.list()
        }
        fn revalidate(&self) -> io::Result<()> {
            self.0.revalidate()
        }
        fn current_path(&self) -> io::Result<Utf8PathBuf> {
            self.0.current_path()
        }
        fn lstat(&self, name: &str) -> io::Result<Option<Meta>> {
            let meta = self.0.lstat(name)?;
            Ok(meta.map(|mut meta| {
                if name.ends_with(".lock") {
                    meta.ino += 1_000_000;
                }
                meta
            }))
        }
        fn stat(&self, name: &str) -> io::Result<Option<Meta>> {
            self.0.stat(name)
        }
        fn open_read(&self, name: &str) -> io::Result<Option<Box<dyn ReadFile>>> {
            self.0.open_read(name)
        }
        fn open_guard(
            &self,
            name: &str,
            perms: crate::fs::GuardPerms,
        ) -> io::Result<Box<dyn GuardFile>> {
            self.0.open_guard(name, perms)
        }
        fn create_temp(
            &self,
            prefix: &str,
            suffix: &str,
            mode: u32,
        ) -> io::Result<(String, Box<dyn WriteFile>)> {
            self.0.create_temp(prefix, suffix, mode)
        }
        fn create_new(&self, name: &str, mode: u32) -> io::Result<Box<dyn WriteFile>> {
            self.0.create_new(name, mode)
        }
        fn open_write(&self, name: &str) -> io::Result<Option<Box<dyn WriteFile>>> {
            self.0.open_write(name)
        }
        fn rename(&self, from: &str, to: &str) -> io::Result<()> {
            self.0.rename(from, to)
        }
        fn remove_file(&self, name: &str) -> io::Result<()> {
            self.0.remove_file(name)
        }
        fn as_any(&self) -> &dyn std::any::Any {
            self
        }
    }

    /// The identity check retries a bounded number of times, then fails
    /// saying what it saw, having opened the guard once per retry and kept
    /// none of those descriptors.
    #[test]
    fn a_guard_replaced_in_a_loop_is_a_clear_error_not_a_loop() {
        let sim = SimFs::new();
        sim.create_dir_all("/d").expect("mkdir");
        let mut options = Options::new();
        options.fs = Some(Arc::new(Replacing(sim.clone())));
        let file = Handle::open(std::path::Path::new("/d/a"), options).expect("open");
        let err = file
            .lock(Mode::Exclusive, Wait::Forever)
            .expect_err("the guard never stays put");
        assert!(matches!(&err, Error::Io { op: Op::Lock, .. }), "{err:?}");
        assert!(err.to_string().contains("replaced or removed"), "{err}");
        let opens = sim
            .trace()
            .iter()
            .filter(|op| op.kind == crate::sim::OpKind::OpenGuard)
            .count();
        assert_eq!(opens, 1 + MAX_GUARD_REOPENS, "one open per retry");
        let entry = file
            .inner
            .guard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .expect("the first transaction opened the guard");
        assert_eq!(entry.spare_count(), 0, "no descriptor kept");
    }
}
