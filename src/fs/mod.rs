//! The seam between the commit protocol and the filesystem.
//!
//! Every filesystem effect of the protocol goes through [`Fs`] and the handle
//! traits below, so that the same protocol code runs on the real filesystem
//! ([`real::RealFs`], the default) and on the simulated one (`crate::sim`)
//! that models power loss. Nothing above this module touches `std::fs`.

use std::any::Any;
use std::fmt::Debug;
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use crate::Error;
use crate::error::Op;

pub(crate) mod real;
pub(crate) mod shared;
mod whole;

pub(crate) use whole::{read_all, read_exact_at, write_all};

/// What kind of directory entry a path names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    File,
    Dir,
    Symlink,
    Other,
}

/// The parts of an inode's metadata the protocol uses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Meta {
    pub(crate) kind: Kind,
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) size: u64,
    /// Hard links to the inode.
    pub(crate) nlink: u64,
    pub(crate) mtime: (i64, i64),
    pub(crate) ctime: (i64, i64),
    pub(crate) mode: u32,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
    /// The root of a mount: a file bind-mounted over another (Linux
    /// `STATX_ATTR_MOUNT_ROOT`), which cannot be renamed over. Only the
    /// `fstat` of an opened file ([`ReadFile::meta`]) tells; elsewhere it
    /// is `false`.
    pub(crate) mount_root: bool,
}

impl Meta {
    /// Same inode on the same device.
    pub(crate) fn same_inode(&self, other: &Meta) -> bool {
        self.dev == other.dev && self.ino == other.ino
    }

    /// Same inode, and nothing suggests its contents changed.
    pub(crate) fn same_version(&self, other: &Meta) -> bool {
        self.same_inode(other)
            && self.size == other.size
            && self.mtime == other.mtime
            && self.ctime == other.ctime
    }
}

/// A filesystem as the protocol sees it.
///
/// Paths are resolved here only where a user names something: at
/// [`TxFile::open`](crate::TxFile::open) (the target, symbolic links under
/// `Symlinks::Follow`, the directories it opens), by [`crate::recover`]
/// and by batch recovery for the members a journal names. Every call of the
/// protocol itself goes through a [`DirHandle`] and a [`Name`] in it, so
/// that a handle keeps working on the directory it opened when that
/// directory is renamed, and a parent component changed under it cannot
/// redirect a rename.
pub(crate) trait Fs: Send + Sync + Debug {
    /// Identifies this filesystem in the process-wide registries (guards,
    /// directories).
    fn id(&self) -> u64;
    /// The effective user id of this process: whose files txfile may
    /// consider its own.
    fn euid(&self) -> u32;
    /// `lstat`: `Ok(None)` when nothing is there.
    fn lstat(&self, path: &Utf8Path) -> io::Result<Option<Meta>>;
    /// The target of a symbolic link, as stored.
    fn read_link(&self, path: &Utf8Path) -> io::Result<Utf8PathBuf>;
    /// Opens a directory (following symbolic links on the way, as a user's
    /// path does): the handle every later call on names in it goes through.
    fn open_dir(&self, path: &Utf8Path) -> io::Result<Box<dyn DirHandle>>;
    /// Gives the file `from` in directory `from_dir` a second name `to` in
    /// directory `to_dir` (a hard link, `linkat`; the two may be one
    /// directory). Both handles come from this filesystem's
    /// [`open_dir`](Fs::open_dir).
    fn link(
        &self,
        from_dir: &dyn DirHandle,
        from: &Name,
        to_dir: &dyn DirHandle,
        to: &Name,
    ) -> io::Result<()>;
}

/// One component of a path: a file name in a directory, never `.` or `..`
/// and never containing `/` (nor, on Windows, `\\`). The protocol passes
/// its own names (the target's, `<name>.lock`, temporary files, journals)
/// relative to a [`DirHandle`].
pub(crate) type Name = str;

/// An open directory: the anchor of every name the protocol uses.
///
/// On Unix it is an `O_DIRECTORY` descriptor and the calls are `openat`,
/// `renameat`, `unlinkat`, `statx`/`fstatat` and `fsync` on it. It names a
/// directory inode, not a path: renaming the directory (or any parent)
/// after it was opened changes nothing for it. A platform without `*at`
/// calls can implement it with a directory handle and calls relative to it
/// (Windows: `NtCreateFile` with `RootDirectory`,
/// `FILE_RENAME_INFORMATION` with a root directory), or, at worst, a handle
/// plus the path it was opened by, checking that the path still names the
/// handle's directory.
///
/// Handles are shared per directory through [`shared::SharedDir`]: every
/// [`TxFile`](crate::TxFile) of the process on a file in one directory
/// uses one descriptor.
pub(crate) trait DirHandle: Send + Sync + Debug + Any {
    /// `fstat` of the directory itself.
    fn meta(&self) -> io::Result<Meta>;
    /// `fsync` of the directory: its pending entry operations become durable.
    fn sync(&self) -> io::Result<()>;
    /// The names in the directory (names that are not UTF-8 are skipped: no
    /// file of ours has one).
    fn list(&self) -> io::Result<Vec<String>>;
    /// Makes this client's view of the directory current (NFS: its cached
    /// attributes are fetched again from the server, so that a name a
    /// later open looks up under it is not resolved from a stale cache).
    /// Local filesystems have nothing to do.
    fn revalidate(&self) -> io::Result<()>;
    /// The directory's path now, checked to name this very directory: the
    /// path it was opened by if that still does, else where the platform
    /// can tell from the descriptor that it went (renamed since). An error
    /// of kind `NotFound` when neither names it (the platform cannot tell,
    /// or it was removed). Not a counted operation of the protocol: it
    /// changes nothing.
    fn current_path(&self) -> io::Result<Utf8PathBuf>;
    /// `lstat` of `name` in this directory: `Ok(None)` when nothing is there.
    fn lstat(&self, name: &Name) -> io::Result<Option<Meta>>;
    /// `stat` of `name` (follows a symbolic link): `Ok(None)` when nothing
    /// is there.
    fn stat(&self, name: &Name) -> io::Result<Option<Meta>>;
    /// Opens `name` for reading, without blocking on a FIFO or device
    /// (`O_NONBLOCK`); `Ok(None)` when it does not exist. A symbolic link is
    /// followed (`Symlinks::Replace` reads through one).
    fn open_read(&self, name: &Name) -> io::Result<Option<Box<dyn ReadFile>>>;
    /// Opens or creates the guard file `name`, close-on-exec: read-write, or
    /// read-only when this user may not write it. A guard it creates gets
    /// exactly `perms` (the umask does not apply: the guard holds no data).
    /// It refuses a symbolic link (`O_NOFOLLOW`) and never blocks on a FIFO
    /// or device (`O_NONBLOCK`).
    fn open_guard(&self, name: &Name, perms: GuardPerms) -> io::Result<Box<dyn GuardFile>>;
    /// Creates `<prefix><random><suffix>` in this directory with `O_EXCL`
    /// and `mode` (umask applied); returns its name.
    fn create_temp(
        &self,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> io::Result<(String, Box<dyn WriteFile>)>;
    /// Creates exactly `name` with `O_EXCL` and `mode` (umask applied).
    fn create_new(&self, name: &Name, mode: u32) -> io::Result<Box<dyn WriteFile>>;
    /// Opens an existing regular file for reading and writing, without
    /// following a symbolic link; `Ok(None)` when it does not exist. Writes
    /// start at offset 0 until [`WriteFile::seek`] moves them.
    fn open_write(&self, name: &Name) -> io::Result<Option<Box<dyn WriteFile>>>;
    /// Atomically replaces `to` with `from`, both in this directory (the
    /// protocol never renames across directories).
    fn rename(&self, from: &Name, to: &Name) -> io::Result<()>;
    /// Unlinks the file `name`.
    fn remove_file(&self, name: &Name) -> io::Result<()>;
    /// For [`Fs::link`], which needs the other directory's own handle.
    fn as_any(&self) -> &dyn Any;
}

/// Unlinks `name` in `dir` (reported as `path`); a file already gone is
/// fine (someone else, or an earlier attempt, removed it).
pub(crate) fn remove_if_present(
    dir: &dyn DirHandle,
    name: &Name,
    path: &Utf8Path,
) -> Result<(), Error> {
    match dir.remove_file(name) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(Op::Remove, path, e)),
    }
}

/// One extended attribute: name and value, as the kernel stores them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Xattr {
    pub(crate) name: Vec<u8>,
    pub(crate) value: Vec<u8>,
}

impl Xattr {
    /// Whether this is the POSIX access ACL, whose mask is the file's
    /// group bits.
    pub(crate) fn is_access_acl(&self) -> bool {
        self.name == b"system.posix_acl_access"
    }

    /// The name as text, for messages.
    pub(crate) fn name_text(name: &[u8]) -> String {
        String::from_utf8_lossy(name).into_owned()
    }
}

/// An extended attribute the process may not set on the new version (a
/// namespace it may not write).
#[derive(Debug)]
pub(crate) struct Refused {
    pub(crate) name: Vec<u8>,
    pub(crate) error: io::Error,
}

/// The permission bits and group a new guard file gets: everyone who may
/// write the target may lock it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GuardPerms {
    pub(crate) mode: u32,
    pub(crate) gid: u32,
}

impl GuardPerms {
    /// The rule, from the target's metadata (the directory's for a target
    /// that does not exist yet): read and write for the owner and for every
    /// class that may write it, read for every class that may read it. The
    /// group is its group.
    pub(crate) fn like(meta: &Meta) -> GuardPerms {
        let write = meta.mode & 0o222;
        GuardPerms {
            mode: 0o600 | (meta.mode & 0o444) | write | (write << 1),
            gid: meta.gid,
        }
    }
}

/// How a guard descriptor can be locked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Locking {
    /// `flock` and POSIX locks are one lock here (NFS and SMB on Linux,
    /// the BSDs, macOS, illumos): a process taking both would wait for
    /// itself.
    pub(crate) merged: bool,
    /// The descriptor is open read-only (this user may not write the
    /// guard): POSIX write locks and the marker need a writable one.
    pub(crate) read_only: bool,
}

/// A file opened for reading at fixed offsets.
pub(crate) trait ReadFile: Send + Sync + Debug {
    /// `fstat`.
    fn meta(&self) -> io::Result<Meta>;
    /// `pread`.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Its extended attributes that this process can read (`flistxattr`,
    /// then `fgetxattr` for each: none, one call), the POSIX access ACL
    /// (`system.posix_acl_access`) and the SELinux label among them; empty
    /// where the filesystem or platform has none.
    fn xattrs(&self) -> io::Result<Vec<Xattr>>;
    /// `fsync`, through this read-only descriptor (`F_FULLFSYNC` on macOS).
    fn sync(&self) -> io::Result<()>;
}

/// A file open for writing: a freshly created temporary file or journal,
/// or a journal reopened by recovery.
pub(crate) trait WriteFile: Send + Sync + Debug {
    /// `fstat`.
    fn meta(&self) -> io::Result<Meta>;
    /// Writes at the current position and moves it; may write less than
    /// asked.
    fn write(&mut self, buf: &[u8]) -> io::Result<usize>;
    /// Moves the position of the next write (`lseek`); writing beyond the
    /// end leaves a hole, and touches none of the blocks before it.
    fn seek(&mut self, offset: u64) -> io::Result<()>;
    /// `pread` of what was written.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Gives the file this owner (`fchown`, quietly keeping ours when not
    /// permitted), these extended attributes, and exactly this mode
    /// (`fchmod`), calling each only when the file does not have it already
    /// (chown clears set-id bits, so a chown is always followed by a chmod).
    /// The attributes the process may not set are returned, not set.
    fn set_owner_and_mode(
        &mut self,
        uid: u32,
        gid: u32,
        mode: u32,
        xattrs: &[Xattr],
    ) -> io::Result<Vec<Refused>>;
    /// `fsync` (`F_FULLFSYNC` on macOS).
    fn sync(&mut self) -> io::Result<()>;
    /// `ftruncate`: cuts the file to `len` bytes (or extends it with zeros).
    fn set_len(&mut self, len: u64) -> io::Result<()>;
}

/// The one open descriptor of a guard file.
pub(crate) trait GuardFile: Send + Sync + Debug {
    /// `fstat`.
    fn meta(&self) -> io::Result<Meta>;
    /// `pread`: to check that a guard holds nothing but the marker.
    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize>;
    /// Sets the guard's marker: its size (see [`Marker`]). Changing the
    /// size allocates nothing, so it works on a full disk.
    fn set_marker(&self, marker: Marker) -> io::Result<()>;
    /// How this descriptor can be locked.
    fn locking(&self) -> Locking;
    /// Takes one kind of lock (`flock` or POSIX), shared or exclusive;
    /// `Ok(None)` with [`Blocking::Try`] when a conflicting holder has it.
    /// Dropping the returned value unlocks.
    fn lock(
        &self,
        kind: LockStyle,
        mode: Mode,
        blocking: Blocking,
    ) -> io::Result<Option<Box<dyn LockHeld>>>;
}

/// Exclusive for transactions, shared for consistent reads of a batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mode {
    Exclusive,
    Shared,
}

/// Whether one OS lock call waits for a conflicting holder. (The guard's
/// `Wait` also has a deadline, which no single lock call can honour: the
/// guard polls or hands the blocking call to a helper thread for it.)
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Blocking {
    /// Wait until the lock is free.
    Block,
    /// Return `Ok(None)` at once when it is not.
    Try,
}

/// What the guard's size says about the target, for the next holder. A
/// guard holds nothing but this: zero bytes, one or two.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Marker {
    /// Size 0: nothing to clean up, and the current version is durable (or
    /// nobody asked it to be).
    Clean = 0,
    /// Size 1, "unclean": a holder sets it before it creates a temporary
    /// file and clears it once nothing of its transaction is left to clean
    /// up or to sync; the next holder finds it set if a writer died (or a
    /// commit failed after its rename) and then sweeps and syncs.
    Unclean = 1,
    /// Size 2, "unsynced": the current version was committed without
    /// fsyncs (`Durability::None`). A `Durability::Full` holder that vouches
    /// for it (a no-op commit) fsyncs the target and its directory first.
    Unsynced = 2,
}

impl Marker {
    /// The marker a guard of `size` bytes holds; `None` when the size is
    /// none of them (the file holds data).
    pub(crate) fn from_size(size: u64) -> Option<Marker> {
        match size {
            0 => Some(Marker::Clean),
            1 => Some(Marker::Unclean),
            2 => Some(Marker::Unsynced),
            _ => None,
        }
    }
}

/// A held operating-system lock; dropping it unlocks.
pub(crate) trait LockHeld: Send + Debug {}

/// Which operating-system lock txfile takes on the guard file where it can
/// take only one.
///
/// Every txfile user excludes every other, whatever style each chose: on
/// filesystems where `flock` locks and POSIX record locks are independent
/// (local Linux filesystems: ext4, xfs, btrfs, tmpfs), txfile takes both,
/// `flock` first, so that `flock(1)` users and `lockf`/`fcntl` users are
/// excluded too. Where the filesystem makes them one lock (NFS, SMB and AFS
/// on Linux; the BSDs, macOS and illumos everywhere), taking both would wait
/// for itself, so only the kind this chooses is taken; there it excludes
/// users of either kind anyway.
///
/// Both are taken on the guard file `<name>.lock`, which the process opens once
/// and never closes while a lock is held, so neither can be lost by an
/// unrelated `close`.
///
/// # Examples
///
/// ```
/// use txfile::{LockStyle, Options};
/// let opts = Options::new().lock_style(LockStyle::Posix);
/// # let _ = opts;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LockStyle {
    /// `flock(2)` through the `fd-lock` crate, where only one kind is taken.
    /// Interoperates with `flock(1)`.
    #[default]
    Flock,
    /// POSIX record locks (`fcntl(F_SETLKW)` on the whole file), where only one
    /// kind is taken. Interoperates with `lockf(3)`, `fcntl` users and Python's
    /// `fcntl.lockf`; on Solaris, illumos and Linux NFS `flock` is one with
    /// it anyway.
    Posix,
}
