//! The simulated filesystem behind the crate's `Fs` seam: every call is one
//! counted operation, which a test can turn into a crash or an error.

use std::any::Any;
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use super::fault::Fault;
use super::state::{DataOp, Disk, EntryOp, Owner, State, Step, down};
use super::{OpKind, SimFs};
use crate::LockStyle;
use crate::fs::{
    Blocking, DirHandle, Fs, GuardFile, GuardPerms, LockHeld, Locking, Marker, Meta, Mode, Name,
    ReadFile, Refused, WriteFile, Xattr,
};

impl SimFs {
    /// Runs one counted operation on the disk, as the plan says.
    fn op<T>(
        &self,
        kind: OpKind,
        path: &Utf8Path,
        f: impl FnOnce(&mut State) -> io::Result<T>,
    ) -> io::Result<T> {
        let result = self.op_unhooked(kind, path, f);
        self.run_after_hook(kind);
        result
    }

    fn op_unhooked<T>(
        &self,
        kind: OpKind,
        path: &Utf8Path,
        f: impl FnOnce(&mut State) -> io::Result<T>,
    ) -> io::Result<T> {
        let mut state = self.state();
        match state.step(kind, path) {
            Ok(Step::Run) => f(&mut state),
            Ok(Step::RunThenCrash) => {
                let _ = f(&mut state);
                state.crash();
                drop(state);
                self.shared.freed.notify_all();
                Err(down())
            }
            Ok(Step::Fail(fault)) => Err(fault.error()),
            Err(e) => {
                drop(state);
                self.shared.freed.notify_all();
                Err(e)
            }
        }
    }
}

impl Fs for SimFs {
    fn id(&self) -> u64 {
        self.id
    }

    fn euid(&self) -> u32 {
        super::state::UID
    }

    fn lstat(&self, path: &Utf8Path) -> io::Result<Option<Meta>> {
        self.op(OpKind::Lstat, path, |s| match s.disk.lookup(path)? {
            Some(ino) => s.disk.meta(ino).map(Some),
            None => Ok(None),
        })
    }

    fn read_link(&self, path: &Utf8Path) -> io::Result<Utf8PathBuf> {
        self.op(OpKind::ReadLink, path, |_| {
            Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "the simulated filesystem has no symbolic links",
            ))
        })
    }

    /// A handle on the directory inode `path` names now: it keeps naming
    /// that inode whatever becomes of the path (see [`SimFs::rename_dir`]).
    fn open_dir(&self, path: &Utf8Path) -> io::Result<Box<dyn DirHandle>> {
        self.op(OpKind::OpenDir, path, |s| {
            let ino = s.disk.lookup(path)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no directory `{path}`"))
            })?;
            s.disk.dir(ino)?;
            Ok(Box::new(SimDir {
                fs: self.clone(),
                ino,
                path: path.to_owned(),
            }) as Box<dyn DirHandle>)
        })
    }

    /// A second name for an inode: a pending "create entry" in the new
    /// name's directory, durable at that directory's fsync.
    fn link(
        &self,
        from_dir: &dyn DirHandle,
        from: &Name,
        to_dir: &dyn DirHandle,
        to: &Name,
    ) -> io::Result<()> {
        let (from_dir, to_dir) = (sim_dir(from_dir)?, sim_dir(to_dir)?);
        self.op(OpKind::Link, &to_dir.path_of(to), |s| {
            let ino = s.disk.entry(from_dir.ino, from)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no file `{}`", from_dir.path_of(from)),
                )
            })?;
            s.disk.file(ino)?;
            let name = name_of(to)?;
            if s.disk.dir(to_dir.ino)?.volatile.contains_key(&name) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("`{}` exists", to_dir.path_of(to)),
                ));
            }
            let now = s.disk.tick();
            s.disk.inode_mut(ino)?.ctime = now;
            let entries = s.disk.dir_mut(to_dir.ino)?;
            entries.volatile.insert(name.clone(), ino);
            entries.pending.push(EntryOp::Create { name, ino });
            Ok(())
        })
    }
}

/// The simulated directory behind a handle.
fn sim_dir(dir: &dyn DirHandle) -> io::Result<&SimDir> {
    dir.as_any().downcast_ref::<SimDir>().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a directory of another filesystem",
        )
    })
}

/// `name` as one entry of a directory: not empty, no `/`, not `.` or `..`.
fn name_of(name: &Name) -> io::Result<String> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("`{name}` is not a file name"),
        ));
    }
    Ok(name.to_owned())
}

/// `rename(2)` within one directory: a pending atomic rename.
fn rename(disk: &mut Disk, dir: u64, from: &Name, to: &Name) -> io::Result<()> {
    let (from_name, to_name) = (name_of(from)?, name_of(to)?);
    let entries = disk.dir(dir)?;
    let ino = *entries
        .volatile
        .get(&from_name)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file `{from}`")))?;
    if let Some(&old) = entries.volatile.get(&to_name) {
        disk.file(old)?;
        if disk.mounted.contains(&old) {
            return Err(busy());
        }
    }
    disk.file(ino)?;
    if disk.mounted.contains(&ino) {
        return Err(busy());
    }
    if from_name == to_name {
        return Ok(());
    }
    let now = disk.tick();
    disk.inode_mut(ino)?.ctime = now;
    let entries = disk.dir_mut(dir)?;
    entries.volatile.remove(&from_name);
    entries.volatile.insert(to_name.clone(), ino);
    entries.pending.push(EntryOp::Rename {
        from: from_name,
        to: to_name,
        ino,
    });
    Ok(())
}

/// `EBUSY`: what renaming over (or removing) a mount point fails with.
fn busy() -> io::Error {
    #[cfg(unix)]
    {
        io::Error::from_raw_os_error(rustix::io::Errno::BUSY.raw_os_error())
    }
    #[cfg(not(unix))]
    {
        io::Error::new(io::ErrorKind::ResourceBusy, "the file is a mount point")
    }
}

/// An open regular file: read-only for the target, read-write for a
/// temporary file or a reopened journal.
#[derive(Debug)]
struct SimFile {
    fs: SimFs,
    ino: u64,
    path: Utf8PathBuf,
    /// Where the next write goes.
    pos: u64,
}

impl SimFile {
    /// A new open file description of inode `ino`, positioned at 0.
    fn new(fs: &SimFs, ino: u64, path: &Utf8Path) -> SimFile {
        SimFile {
            fs: fs.clone(),
            ino,
            path: path.to_owned(),
            pos: 0,
        }
    }

    fn read(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.fs.op(OpKind::Read, &self.path, |s| {
            let bytes = &s.disk.file(self.ino)?.volatile.bytes;
            let start = (offset as usize).min(bytes.len());
            let n = buf.len().min(bytes.len() - start);
            buf[..n].copy_from_slice(&bytes[start..start + n]);
            Ok(n)
        })
    }
}

impl ReadFile for SimFile {
    fn meta(&self) -> io::Result<Meta> {
        self.fs
            .op(OpKind::Fstat, &self.path, |s| s.disk.meta(self.ino))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.read(buf, offset)
    }

    /// The simulated filesystem has no extended attributes.
    fn xattrs(&self) -> io::Result<Vec<Xattr>> {
        Ok(Vec::new())
    }

    fn sync(&self) -> io::Result<()> {
        sync_file(&self.fs, self.ino, &self.path)
    }
}

/// `fsync` of inode `ino` (opened as `path`), as the plan says.
fn sync_file(fs: &SimFs, ino: u64, path: &Utf8Path) -> io::Result<()> {
    let mut state = fs.state();
    match state.step(OpKind::SyncFile, path) {
        Ok(Step::Run) => state.disk.sync_file(ino, false),
        Ok(Step::RunThenCrash) => {
            let _ = state.disk.sync_file(ino, false);
            state.crash();
            drop(state);
            fs.shared.freed.notify_all();
            Err(down())
        }
        Ok(Step::Fail(Fault::Io)) => {
            state.disk.sync_file(ino, true)?;
            #[cfg(txfile_mutants)]
            if state.mutant == crate::mutants::Mutant::IgnoreFsyncError
                && path.as_str().ends_with(crate::names::temp_suffix())
            {
                return Ok(());
            }
            Err(Fault::Io.error())
        }
        Ok(Step::Fail(fault)) => Err(fault.error()),
        Err(e) => {
            drop(state);
            fs.shared.freed.notify_all();
            Err(e)
        }
    }
}

impl WriteFile for SimFile {
    fn meta(&self) -> io::Result<Meta> {
        ReadFile::meta(self)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut state = self.fs.state();
        let (len, crash) = match state.step(OpKind::Write, &self.path) {
            Ok(Step::Run) => (buf.len(), false),
            Ok(Step::RunThenCrash) => (buf.len() / 2, true),
            Ok(Step::Fail(fault)) => return Err(fault.error()),
            Err(e) => {
                drop(state);
                self.fs.shared.freed.notify_all();
                return Err(e);
            }
        };
        let op = DataOp::Write {
            offset: self.pos,
            bytes: buf[..len].to_vec(),
        };
        let recorded = state.disk.record(self.ino, op);
        if crash {
            state.crash();
            drop(state);
            self.fs.shared.freed.notify_all();
            return Err(down());
        }
        recorded?;
        self.pos += len as u64;
        Ok(len)
    }

    fn seek(&mut self, offset: u64) -> io::Result<()> {
        self.pos = offset;
        Ok(())
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.read(buf, offset)
    }

    /// As on a real system: one look at the inode (an `fstat`, not a
    /// counted operation), then `fchown` only when the owner differs and
    /// `fchmod` only when the mode differs or a `fchown` cleared set-id bits.
    /// (The simulated filesystem has no extended attributes: there are none
    /// to copy.)
    fn set_owner_and_mode(
        &mut self,
        uid: u32,
        gid: u32,
        mode: u32,
        _xattrs: &[Xattr],
    ) -> io::Result<Vec<Refused>> {
        let mode = mode & 0o7777;
        let (owner_differs, mode_differs) = {
            let state = self.fs.state();
            let image = &state.disk.file(self.ino)?.volatile;
            ((image.uid, image.gid) != (uid, gid), image.mode != mode)
        };
        if owner_differs {
            self.fs.op(OpKind::SetOwner, &self.path, |s| {
                s.disk.record(self.ino, DataOp::SetOwner(uid, gid))
            })?;
        }
        if owner_differs || mode_differs {
            self.fs.op(OpKind::SetMode, &self.path, |s| {
                s.disk.record(self.ino, DataOp::SetMode(mode))
            })?;
        }
        Ok(Vec::new())
    }

    fn sync(&mut self) -> io::Result<()> {
        sync_file(&self.fs, self.ino, &self.path)
    }

    /// `ftruncate`: pending until the file's fsync, like a write.
    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.fs.op(OpKind::SetLen, &self.path, |s| {
            s.disk.record(self.ino, DataOp::SetLen(len))
        })
    }
}

/// An open directory: it names a directory inode, not a path. `path` is
/// the path it was opened by, only to name operations in the trace.
#[derive(Debug)]
struct SimDir {
    fs: SimFs,
    ino: u64,
    path: Utf8PathBuf,
}

impl SimDir {
    /// How the trace names `name` in this directory.
    fn path_of(&self, name: &Name) -> Utf8PathBuf {
        self.path.join(name)
    }

    /// One counted operation on `name` in this directory.
    fn op<T>(
        &self,
        kind: OpKind,
        name: &Name,
        f: impl FnOnce(&mut State, String) -> io::Result<T>,
    ) -> io::Result<T> {
        let path = self.path_of(name);
        self.fs.op(kind, &path, |s| f(s, name_of(name)?))
    }

    fn stat(&self, kind: OpKind, name: &Name) -> io::Result<Option<Meta>> {
        self.op(kind, name, |s, name| {
            match s.disk.entry(self.ino, &name)? {
                Some(ino) => s.disk.meta(ino).map(Some),
                None => Ok(None),
            }
        })
    }
}

impl DirHandle for SimDir {
    /// `fstat` of the directory: a counted operation, as the real one is a
    /// system call.
    fn meta(&self) -> io::Result<Meta> {
        self.fs
            .op(OpKind::Fstat, &self.path, |s| s.disk.meta(self.ino))
    }

    /// A failed directory fsync leaves the entry operations pending: they
    /// may or may not land at a crash, and a later fsync makes them durable.
    fn sync(&self) -> io::Result<()> {
        self.fs
            .op(OpKind::SyncDir, &self.path, |s| s.disk.sync_dir(self.ino))
    }

    fn list(&self) -> io::Result<Vec<String>> {
        self.fs.op(OpKind::List, &self.path, |s| {
            Ok(s.disk.dir(self.ino)?.volatile.keys().cloned().collect())
        })
    }

    /// The simulated machine has no client cache: nothing to do, and not
    /// an operation.
    fn revalidate(&self) -> io::Result<()> {
        Ok(())
    }

    /// As on Linux: the path it was opened by if that still names it, else
    /// where it is now (found from the root, as `/proc/self/fd` would say).
    /// Not an operation: it changes nothing.
    fn current_path(&self) -> io::Result<Utf8PathBuf> {
        let state = self.fs.state();
        if state.disk.lookup(&self.path).ok().flatten() == Some(self.ino) {
            return Ok(self.path.clone());
        }
        state
            .disk
            .path_of_dir(self.ino)
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "the directory was removed"))
    }

    fn lstat(&self, name: &Name) -> io::Result<Option<Meta>> {
        self.stat(OpKind::Lstat, name)
    }

    /// The simulation has no symbolic links, so stat is lstat.
    fn stat(&self, name: &Name) -> io::Result<Option<Meta>> {
        self.stat(OpKind::Stat, name)
    }

    fn open_read(&self, name: &Name) -> io::Result<Option<Box<dyn ReadFile>>> {
        self.op(OpKind::OpenRead, name, |s, name| {
            let Some(ino) = s.disk.entry(self.ino, &name)? else {
                return Ok(None);
            };
            s.disk.file(ino)?;
            let file = SimFile::new(&self.fs, ino, &self.path_of(&name));
            Ok(Some(Box::new(file) as Box<dyn ReadFile>))
        })
    }

    fn open_guard(&self, name: &Name, perms: GuardPerms) -> io::Result<Box<dyn GuardFile>> {
        self.op(OpKind::OpenGuard, name, |s, name| {
            let ino = match s.disk.entry(self.ino, &name)? {
                Some(ino) => {
                    s.disk.file(ino)?;
                    ino
                }
                None => s.disk.create_file(self.ino, &name, perms.mode)?,
            };
            Ok(Box::new(SimGuard {
                fs: self.fs.clone(),
                ino,
                handle: s.handle(),
                path: self.path_of(&name),
            }) as Box<dyn GuardFile>)
        })
    }

    fn create_temp(
        &self,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> io::Result<(String, Box<dyn WriteFile>)> {
        self.fs.op(OpKind::CreateTemp, &self.path, |s| {
            loop {
                let name = format!(
                    "{prefix}{}{suffix}",
                    s.disk.next_random(crate::names::RANDOM_LEN)
                );
                let name = name_of(&name)?;
                match s.disk.create_file(self.ino, &name, mode) {
                    Ok(ino) => {
                        let file = SimFile::new(&self.fs, ino, &self.path_of(&name));
                        return Ok((name, Box::new(file) as Box<dyn WriteFile>));
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn create_new(&self, name: &Name, mode: u32) -> io::Result<Box<dyn WriteFile>> {
        self.op(OpKind::CreateNew, name, |s, name| {
            let ino = s.disk.create_file(self.ino, &name, mode)?;
            let file = SimFile::new(&self.fs, ino, &self.path_of(&name));
            Ok(Box::new(file) as Box<dyn WriteFile>)
        })
    }

    fn open_write(&self, name: &Name) -> io::Result<Option<Box<dyn WriteFile>>> {
        self.op(OpKind::OpenWrite, name, |s, name| {
            let Some(ino) = s.disk.entry(self.ino, &name)? else {
                return Ok(None);
            };
            s.disk.file(ino)?;
            let file = SimFile::new(&self.fs, ino, &self.path_of(&name));
            Ok(Some(Box::new(file) as Box<dyn WriteFile>))
        })
    }

    fn rename(&self, from: &Name, to: &Name) -> io::Result<()> {
        self.op(OpKind::Rename, from, |s, _| {
            rename(&mut s.disk, self.ino, from, to)
        })
    }

    fn remove_file(&self, name: &Name) -> io::Result<()> {
        self.op(OpKind::Remove, name, |s, name| {
            let ino = s.disk.entry(self.ino, &name)?.ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::NotFound,
                    format!("no file `{}`", self.path_of(&name)),
                )
            })?;
            s.disk.file(ino)?;
            if s.disk.mounted.contains(&ino) {
                return Err(busy());
            }
            let now = s.disk.tick();
            s.disk.inode_mut(ino)?.ctime = now;
            let dir = s.disk.dir_mut(self.ino)?;
            dir.volatile.remove(&name);
            dir.pending.push(EntryOp::Remove { name, ino });
            Ok(())
        })
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(Debug)]
struct SimGuard {
    fs: SimFs,
    ino: u64,
    /// This open file description.
    handle: u64,
    path: Utf8PathBuf,
}

impl GuardFile for SimGuard {
    /// The marker is volatile in the model: always lost at a crash. That
    /// is the pessimistic choice (after a power loss txfile must find a dead
    /// writer's files without it), and it keeps the guard out of the crash
    /// enumeration.
    fn set_marker(&self, marker: Marker) -> io::Result<()> {
        self.fs.op(OpKind::SetLen, &self.path, |s| {
            s.disk
                .file_mut(self.ino)?
                .volatile
                .apply(&DataOp::SetLen(marker as u64));
            Ok(())
        })
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        self.fs.op(OpKind::Read, &self.path, |s| {
            let bytes = &s.disk.file(self.ino)?.volatile.bytes;
            let start = (offset as usize).min(bytes.len());
            let n = buf.len().min(bytes.len() - start);
            buf[..n].copy_from_slice(&bytes[start..start + n]);
            Ok(n)
        })
    }

    fn meta(&self) -> io::Result<Meta> {
        self.fs
            .op(OpKind::Fstat, &self.path, |s| s.disk.meta(self.ino))
    }

    fn locking(&self) -> Locking {
        Locking {
            merged: self.fs.state().merged_locks,
            read_only: false,
        }
    }

    fn lock(
        &self,
        kind: LockStyle,
        mode: Mode,
        blocking: Blocking,
    ) -> io::Result<Option<Box<dyn LockHeld>>> {
        let shared = mode == Mode::Shared;
        let owner = match kind {
            LockStyle::Flock => Owner::File(self.handle),
            LockStyle::Posix => Owner::Process(self.fs.id),
        };
        self.fs.op(OpKind::Lock, &self.path, |_| Ok(()))?;
        let mut state = self.fs.state();
        loop {
            if state.crashed {
                return Err(down());
            }
            let merged = state.merged_locks;
            let holders = state.locks.entry(self.ino).or_default();
            // A lock conflicts with other owners' locks of its kind (of
            // either kind where the kinds are one lock) unless both are
            // shared; the same owner's new request converts its lock.
            let conflict = holders.iter().any(|&(holder, holder_shared)| {
                holder != owner && (merged || holder.same_kind(owner)) && !(shared && holder_shared)
            });
            if !conflict {
                holders.retain(|&(holder, _)| holder != owner);
                holders.push((owner, shared));
                return Ok(Some(Box::new(SimLock {
                    fs: self.fs.clone(),
                    ino: self.ino,
                    owner,
                })));
            }
            if blocking == Blocking::Try {
                return Ok(None);
            }
            state = self.fs.wait_freed(state);
        }
    }
}

/// A held lock. Dropping it unlocks, then runs the unlock hook, if any.
#[derive(Debug)]
struct SimLock {
    fs: SimFs,
    ino: u64,
    owner: Owner,
}

impl LockHeld for SimLock {}

impl Drop for SimLock {
    fn drop(&mut self) {
        let (hook, crashed) = {
            let mut state = self.fs.state();
            let mut freed = false;
            if let Some(holders) = state.locks.get_mut(&self.ino) {
                holders.retain(|&(holder, _)| holder != self.owner);
                if holders.is_empty() {
                    state.locks.remove(&self.ino);
                    freed = true;
                }
            }
            // Only a release that frees the guard (the last of a holder's
            // two kinds) lets a competitor in.
            let hook = if freed {
                state.unlock_hook.take()
            } else {
                None
            };
            (hook, state.crashed)
        };
        self.fs.shared.freed.notify_all();
        if let Some(hook) = hook {
            if !crashed {
                hook();
            }
        }
    }
}
