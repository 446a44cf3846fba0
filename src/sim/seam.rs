//! The simulated filesystem behind the crate's `Fs` seam: every call is one
//! counted operation, which a test can turn into a crash or an error.

use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use super::fault::Fault;
use super::state::{DataOp, Disk, EntryOp, Owner, State, Step, down};
use super::{OpKind, SimFs};
use crate::LockStyle;
use crate::fs::{
    DirHandle, Fs, GuardFile, GuardPerms, LockHeld, Locking, Marker, Meta, ReadFile, TempFile,
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

    fn stat(&self, path: &Utf8Path) -> io::Result<Option<Meta>> {
        // The simulation has no symbolic links, so stat is lstat.
        self.op(OpKind::Stat, path, |s| match s.disk.lookup(path)? {
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

    fn open_read(&self, path: &Utf8Path) -> io::Result<Option<Box<dyn ReadFile>>> {
        self.op(OpKind::OpenRead, path, |s| {
            let Some(ino) = s.disk.lookup(path)? else {
                return Ok(None);
            };
            s.disk.file(ino)?;
            let file = SimFile::new(self, ino, path);
            Ok(Some(Box::new(file) as Box<dyn ReadFile>))
        })
    }

    fn open_guard(&self, path: &Utf8Path, perms: GuardPerms) -> io::Result<Box<dyn GuardFile>> {
        self.op(OpKind::OpenGuard, path, |s| {
            let ino = match s.disk.lookup(path)? {
                Some(ino) => {
                    s.disk.file(ino)?;
                    ino
                }
                None => {
                    let (dir, name) = s.disk.parent(path)?;
                    s.disk.create_file(dir, &name, perms.mode)?
                }
            };
            Ok(Box::new(SimGuard {
                fs: self.clone(),
                ino,
                handle: s.handle(),
                path: path.to_owned(),
            }) as Box<dyn GuardFile>)
        })
    }

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

    fn create_temp(
        &self,
        dir: &Utf8Path,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> io::Result<(Utf8PathBuf, Box<dyn TempFile>)> {
        self.op(OpKind::CreateTemp, dir, |s| {
            let dir_ino = s.disk.lookup(dir)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no directory `{dir}`"))
            })?;
            loop {
                let name = format!(
                    "{prefix}{}{suffix}",
                    s.disk.next_random(crate::names::RANDOM_LEN)
                );
                match s.disk.create_file(dir_ino, &name, mode) {
                    Ok(ino) => {
                        let path = dir.join(&name);
                        let file = SimFile::new(self, ino, &path);
                        return Ok((path, Box::new(file) as Box<dyn TempFile>));
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e),
                }
            }
        })
    }

    fn create_new(&self, path: &Utf8Path, mode: u32) -> io::Result<Box<dyn TempFile>> {
        self.op(OpKind::CreateNew, path, |s| {
            let (dir, name) = s.disk.parent(path)?;
            let ino = s.disk.create_file(dir, &name, mode)?;
            Ok(Box::new(SimFile::new(self, ino, path)) as Box<dyn TempFile>)
        })
    }

    fn open_write(&self, path: &Utf8Path) -> io::Result<Option<Box<dyn TempFile>>> {
        self.op(OpKind::OpenWrite, path, |s| {
            let Some(ino) = s.disk.lookup(path)? else {
                return Ok(None);
            };
            s.disk.file(ino)?;
            Ok(Some(
                Box::new(SimFile::new(self, ino, path)) as Box<dyn TempFile>
            ))
        })
    }

    fn rename(&self, from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
        self.op(OpKind::Rename, from, |s| rename(&mut s.disk, from, to))
    }

    /// A second name for an inode: a pending "create entry" in the new
    /// name's directory, durable at that directory's fsync.
    fn link(&self, existing: &Utf8Path, new: &Utf8Path) -> io::Result<()> {
        self.op(OpKind::Link, new, |s| {
            let ino = s.disk.lookup(existing)?.ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no file `{existing}`"))
            })?;
            s.disk.file(ino)?;
            let (dir, name) = s.disk.parent(new)?;
            if s.disk.dir(dir)?.volatile.contains_key(&name) {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("`{new}` exists"),
                ));
            }
            let now = s.disk.tick();
            s.disk.inode_mut(ino)?.ctime = now;
            let entries = s.disk.dir_mut(dir)?;
            entries.volatile.insert(name.clone(), ino);
            entries.pending.push(EntryOp::Create { name, ino });
            Ok(())
        })
    }

    fn remove_file(&self, path: &Utf8Path) -> io::Result<()> {
        self.op(OpKind::Remove, path, |s| {
            let (dir, name) = s.disk.parent(path)?;
            let ino = *s.disk.dir(dir)?.volatile.get(&name).ok_or_else(|| {
                io::Error::new(io::ErrorKind::NotFound, format!("no file `{path}`"))
            })?;
            s.disk.file(ino)?;
            let now = s.disk.tick();
            s.disk.inode_mut(ino)?.ctime = now;
            let dir = s.disk.dir_mut(dir)?;
            dir.volatile.remove(&name);
            dir.pending.push(EntryOp::Remove { name, ino });
            Ok(())
        })
    }
}

/// `rename(2)` within one directory: a pending atomic rename. Renames across
/// directories are refused with `EXDEV`-like `CrossesDevices`, because the
/// protocol never makes one and the model would need both directories'
/// fsyncs.
fn rename(disk: &mut Disk, from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
    let (from_dir, from_name) = disk.parent(from)?;
    let (to_dir, to_name) = disk.parent(to)?;
    if from_dir != to_dir {
        return Err(io::Error::new(
            io::ErrorKind::CrossesDevices,
            "the simulated filesystem renames only within one directory",
        ));
    }
    let dir = disk.dir(from_dir)?;
    let ino = *dir
        .volatile
        .get(&from_name)
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no file `{from}`")))?;
    if let Some(&old) = dir.volatile.get(&to_name) {
        disk.file(old)?;
    }
    disk.file(ino)?;
    if from_name == to_name {
        return Ok(());
    }
    let now = disk.tick();
    disk.inode_mut(ino)?.ctime = now;
    let dir = disk.dir_mut(from_dir)?;
    dir.volatile.remove(&from_name);
    dir.volatile.insert(to_name.clone(), ino);
    dir.pending.push(EntryOp::Rename {
        from: from_name,
        to: to_name,
        ino,
    });
    Ok(())
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

    /// The simulated filesystem has no ACLs.
    fn acl(&self) -> io::Result<Option<Vec<u8>>> {
        Ok(None)
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

impl TempFile for SimFile {
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
    /// (The simulated filesystem has no ACLs: there is none to copy.)
    fn set_owner_and_mode(
        &mut self,
        uid: u32,
        gid: u32,
        mode: u32,
        _acl: Option<&[u8]>,
    ) -> io::Result<()> {
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
        Ok(())
    }

    fn sync(&mut self) -> io::Result<()> {
        sync_file(&self.fs, self.ino, &self.path)
    }
}

#[derive(Debug)]
struct SimDir {
    fs: SimFs,
    ino: u64,
    path: Utf8PathBuf,
}

impl DirHandle for SimDir {
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
        shared: bool,
        wait: bool,
    ) -> io::Result<Option<Box<dyn LockHeld>>> {
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
            if !wait {
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
