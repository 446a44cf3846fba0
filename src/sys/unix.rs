//! Unix: `flock` through fd-lock, POSIX record locks and fsync through rustix.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt};
use std::sync::Arc;

use camino::Utf8Path;
#[cfg(target_os = "linux")]
use camino::Utf8PathBuf;
use rustix::fs::{AtFlags, FlockOperation, OFlags};

use crate::fs::{GuardPerms, Kind, LockStyle, Meta, Refused, Xattr};

/// `openat(dir, name)`, close-on-exec, with `flags` and `mode` for a file it
/// creates.
fn open_at(dir: &File, name: &str, flags: OFlags, mode: u32) -> io::Result<File> {
    let fd = rustix::fs::openat(
        dir,
        name,
        flags | OFlags::CLOEXEC,
        rustix::fs::Mode::from_raw_mode(mode as rustix::fs::RawMode),
    )?;
    Ok(File::from(fd))
}

/// Opens (creating if needed) the guard file `name` in `dir`, close-on-exec:
/// read-write, or read-only when this user may read it but not write it
/// (`true` in the result). A guard created here gets exactly `perms`: its
/// group (when this process may set it) and its mode, whatever the umask.
/// Never through a symbolic link (`ELOOP`), never blocking on a FIFO or
/// device (`O_NOFOLLOW | O_NONBLOCK`: what it opened is checked with
/// `fstat` right after). `path` names it in messages.
pub(crate) fn open_guard(
    dir: &File,
    name: &str,
    path: &Utf8Path,
    perms: GuardPerms,
) -> io::Result<(File, bool)> {
    let mut create_refused = None;
    let guarded = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY;
    // The guard may be created or removed by others between the calls;
    // each round sees a new state, and three rounds are plenty.
    for _ in 0..3 {
        let create = OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | guarded;
        match open_at(dir, name, create, perms.mode) {
            Ok(file) => {
                share(&file, perms)?;
                return Ok((file, false));
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if refused(&e) => create_refused = Some(e),
            Err(e) => return Err(e),
        }
        match open_at(dir, name, OFlags::RDWR | guarded, 0) {
            Ok(file) => return Ok((file, false)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => match create_refused.take() {
                Some(refused) => return Err(refused),
                None => continue,
            },
            Err(e) if refused(&e) => {}
            Err(e) => return Err(e),
        }
        match open_at(dir, name, OFlags::RDONLY | guarded, 0) {
            Ok(file) => return Ok((file, true)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) if refused(&e) => return Err(not_permitted(dir, name, path, e)),
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "the lock file kept appearing and disappearing while it was opened",
    ))
}

/// No permission. (A read-only filesystem is an error of its own: nothing
/// could be committed there anyway.)
fn refused(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied
}

/// Gives a guard just created its group and exact mode. A group this
/// process may not set (it is not a member) is left as created.
fn share(file: &File, perms: GuardPerms) -> io::Result<()> {
    if file.metadata()?.gid() != perms.gid {
        match rustix::fs::fchown(file, None, Some(rustix::fs::Gid::from_raw(perms.gid))) {
            Ok(()) | Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    file.set_permissions(std::fs::Permissions::from_mode(perms.mode))
}

/// Says whose guard it is and how to fix it.
fn not_permitted(dir: &File, name: &str, path: &Utf8Path, e: io::Error) -> io::Error {
    let Ok(meta) = stat_at(dir, name, true) else {
        return e;
    };
    io::Error::new(
        e.kind(),
        format!(
            "{e}: the lock file belongs to uid {} gid {} with mode {:o}, which does not let \
             this process (uid {}) open it; its owner or root can let everyone who may write \
             the target lock it, e.g. `chgrp <the target's group> {path}` and `chmod g+rw {path}`",
            meta.uid,
            meta.gid,
            meta.mode,
            rustix::process::geteuid().as_raw(),
        ),
    )
}

/// Whether `flock` and POSIX locks are one lock on the guard's filesystem,
/// so that a process must take only one of them. On local Linux
/// filesystems they are independent; Linux emulates `flock` with POSIX
/// locks on NFS (and SMB and AFS do the same on the server), and the BSDs,
/// macOS and illumos make them one lock everywhere.
pub(crate) fn locks_merged(file: &File) -> bool {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        const NFS: u32 = 0x6969;
        const SMB: u32 = 0x517b;
        const CIFS: u32 = 0xff53_4d42;
        const SMB2: u32 = 0xfe53_4d42;
        const AFS: u32 = 0x5346_414f;
        // An unknown answer keeps both: a wrong "independent" costs a
        // deadlock, which shows at once; a wrong "merged" would let lockers
        // of the other kind in silently.
        match rustix::fs::fstatfs(file) {
            Ok(fs) => matches!(fs.f_type as u32, NFS | SMB | CIFS | SMB2 | AFS),
            Err(_) => false,
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let _ = file;
        true
    }
}

/// Opens the target `name` in `dir` for reading without blocking on a FIFO
/// or device (the caller checks with `fstat` that it is a regular file).
/// Symbolic links are followed: `Symlinks::Replace` reads through one.
pub(crate) fn open_read(dir: &File, name: &str) -> io::Result<File> {
    open_at(
        dir,
        name,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY,
        0,
    )
}

/// The effective user id.
pub(crate) fn euid() -> u32 {
    rustix::process::geteuid().as_raw()
}

/// Extended attributes, where rustix has the calls.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
mod xattr {
    use std::ffi::OsStr;
    use std::fs::File;
    use std::io;
    use std::os::unix::ffi::OsStrExt;

    use rustix::io::Errno;

    use crate::fs::{Refused, Xattr};

    /// A first guess at the size of a name list or value: one call covers
    /// every list and value of usual size.
    const FIRST_BUFFER: usize = 1024;
    /// Linux's limit for one value (`XATTR_SIZE_MAX`) and for a name list
    /// (`XATTR_LIST_MAX`): larger answers are refused rather than allocated.
    const MAX_SIZE: usize = 64 * 1024;

    /// Calls `call` with a buffer, growing it to the size the kernel asks
    /// for (`ERANGE`) a few times: the attributes may change meanwhile.
    fn with_buffer(
        mut call: impl FnMut(&mut [u8]) -> Result<usize, Errno>,
        query: impl Fn() -> Result<usize, Errno>,
    ) -> Result<Vec<u8>, Errno> {
        let mut buf = vec![0; FIRST_BUFFER];
        for _ in 0..4 {
            match call(&mut buf) {
                Ok(n) => {
                    buf.truncate(n);
                    return Ok(buf);
                }
                Err(Errno::RANGE) => {
                    let want = query()?.max(buf.len() * 2);
                    if want > MAX_SIZE {
                        return Err(Errno::TOOBIG);
                    }
                    buf.resize(want, 0);
                }
                Err(e) => return Err(e),
            }
        }
        Err(Errno::RANGE)
    }

    /// Every extended attribute of `file` that this process can read,
    /// with one `flistxattr` when it has none.
    pub(crate) fn list(file: &File) -> io::Result<Vec<Xattr>> {
        let names = match with_buffer(
            |buf| rustix::fs::flistxattr(file, buf),
            || rustix::fs::flistxattr_query(file),
        ) {
            Ok(names) => names,
            // A filesystem without extended attributes has none to keep.
            Err(Errno::OPNOTSUPP) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for name in names.split(|&b| b == 0).filter(|name| !name.is_empty()) {
            let os_name = OsStr::from_bytes(name);
            match with_buffer(
                |buf| rustix::fs::fgetxattr(file, os_name, buf),
                || rustix::fs::fgetxattr_query(file, os_name),
            ) {
                Ok(value) => out.push(Xattr {
                    name: name.to_vec(),
                    value,
                }),
                // Removed since the listing: nothing to keep.
                Err(Errno::NODATA) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    /// Sets each attribute on `file`; those the process may not set (a
    /// namespace it may not write: `trusted.*` without `CAP_SYS_ADMIN`,
    /// `security.*` without the LSM's leave, or one the filesystem does not
    /// take) are returned instead of set.
    pub(crate) fn set(file: &File, xattrs: &[Xattr]) -> io::Result<Vec<Refused>> {
        let mut refused = Vec::new();
        for xattr in xattrs {
            let name = OsStr::from_bytes(&xattr.name);
            match rustix::fs::fsetxattr(file, name, &xattr.value, rustix::fs::XattrFlags::empty()) {
                Ok(()) => {}
                Err(e @ (Errno::PERM | Errno::ACCESS | Errno::OPNOTSUPP)) => {
                    refused.push(Refused {
                        name: xattr.name.clone(),
                        error: e.into(),
                    })
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(refused)
    }
}

#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
mod xattr {
    //! No extended attribute calls here: nothing to keep.
    use std::fs::File;
    use std::io;

    use crate::fs::{Refused, Xattr};

    pub(crate) fn list(_: &File) -> io::Result<Vec<Xattr>> {
        Ok(Vec::new())
    }

    pub(crate) fn set(_: &File, _: &[Xattr]) -> io::Result<Vec<Refused>> {
        Ok(Vec::new())
    }
}

/// The file's extended attributes (POSIX ACLs and SELinux labels among
/// them on Linux), as stored; empty on a filesystem or platform without.
pub(crate) fn xattrs(file: &File) -> io::Result<Vec<Xattr>> {
    xattr::list(file)
}

/// Opens a directory by its path (the one place a directory is found by
/// path): every later call on a name in it goes through this descriptor.
pub(crate) fn open_dir(path: &Utf8Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .custom_flags(OFlags::DIRECTORY.bits() as i32)
        .open(path)
}

/// Creates a new file `<prefix><random><suffix>` in `dir` with `O_EXCL` and
/// `mode` (the kernel applies the umask), retrying on name collisions;
/// returns its name.
pub(crate) fn create_temp(
    dir: &File,
    prefix: &str,
    suffix: &str,
    random_len: usize,
    mode: u32,
) -> io::Result<(String, File)> {
    let mut tries = 0;
    loop {
        let name = format!("{prefix}{}{suffix}", random_chars(random_len));
        match create_new(dir, &name, mode) {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// `len` random ASCII letters and digits: std's randomly keyed hasher over
/// a process-wide counter and the time, so names differ between processes
/// and calls (`O_EXCL` settles the rare collision).
fn random_chars(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len);
    let mut x = 0u64;
    for i in 0..len {
        // 64 bits give 10 characters; draw again when they run out.
        if i % 10 == 0 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            if let Ok(now) = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH) {
                hasher.write_u128(now.as_nanos());
            }
            x = hasher.finish();
        }
        out.push(char::from(ALPHABET[(x % ALPHABET.len() as u64) as usize]));
        x /= ALPHABET.len() as u64;
    }
    out
}

/// `lstat` (or, with `follow`, `stat`) of `name` in `dir`.
pub(crate) fn stat_at(dir: &File, name: &str, follow: bool) -> io::Result<Meta> {
    let flags = if follow {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    Ok(meta_of(&rustix::fs::statat(dir, name, flags)?))
}

/// `fstat`.
pub(crate) fn fstat(file: &File) -> io::Result<Meta> {
    Ok(meta_of(&rustix::fs::fstat(file)?))
}

/// Where the directory open as `dir` is now: the target of its
/// `/proc/self/fd` link (the kernel's path of the descriptor, which
/// follows renames). `None` without `/proc`, for a directory that was
/// removed (" (deleted)") or one outside this process's root, and for a
/// path that is not UTF-8. The caller checks that it names `dir`.
#[cfg(target_os = "linux")]
pub(crate) fn dir_path_now(dir: &File) -> Option<Utf8PathBuf> {
    use std::os::fd::AsRawFd;
    let link = std::fs::read_link(format!("/proc/self/fd/{}", dir.as_raw_fd())).ok()?;
    Utf8PathBuf::from_path_buf(link)
        .ok()
        .filter(|path| path.is_absolute())
}

/// `renameat` within one directory.
pub(crate) fn rename_at(dir: &File, from: &str, to: &str) -> io::Result<()> {
    Ok(rustix::fs::renameat(dir, from, dir, to)?)
}

/// `linkat`, without following a symbolic link at `from`.
pub(crate) fn link_at(from_dir: &File, from: &str, to_dir: &File, to: &str) -> io::Result<()> {
    Ok(rustix::fs::linkat(
        from_dir,
        from,
        to_dir,
        to,
        AtFlags::empty(),
    )?)
}

/// `unlinkat` of a file.
pub(crate) fn unlink_at(dir: &File, name: &str) -> io::Result<()> {
    Ok(rustix::fs::unlinkat(dir, name, AtFlags::empty())?)
}

/// The names in `dir`, read through the descriptor (a new descriptor of
/// the same directory, `openat(dir, ".")`, so that listing moves no offset
/// of the shared one); names that are not UTF-8 are skipped.
pub(crate) fn list(dir: &File) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in rustix::fs::Dir::read_from(dir)? {
        let entry = entry?;
        let name = entry.file_name().to_bytes();
        if name == b"." || name == b".." {
            continue;
        }
        if let Ok(name) = std::str::from_utf8(name) {
            names.push(name.to_owned());
        }
    }
    Ok(names)
}

/// Fetches the directory's attributes from the server, whatever this
/// client cached (`AT_STATX_FORCE_SYNC`): on NFS, a directory whose change
/// attribute moved has its cached names dropped, so the next lookup of a
/// name in it asks the server. (This is what opening the directory by path
/// did, close-to-open, before the handle kept one descriptor for its life.)
/// Elsewhere, opening the directory again through its descriptor has the
/// same effect of an open.
pub(crate) fn revalidate(dir: &File) -> io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        rustix::fs::statx(
            dir,
            "",
            AtFlags::EMPTY_PATH | AtFlags::STATX_FORCE_SYNC,
            rustix::fs::StatxFlags::BASIC_STATS,
        )?;
        Ok(())
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        drop(open_at(dir, ".", OFlags::RDONLY | OFlags::DIRECTORY, 0)?);
        Ok(())
    }
}

/// Flushes a file's data and metadata to stable storage. On macOS plain
/// `fsync` only reaches the drive's cache, so `F_FULLFSYNC` is used.
pub(crate) fn sync_file(file: &File) -> io::Result<()> {
    #[cfg(target_vendor = "apple")]
    {
        rustix::fs::fcntl_fullfsync(file)?;
        Ok(())
    }
    #[cfg(not(target_vendor = "apple"))]
    {
        rustix::fs::fsync(file)?;
        Ok(())
    }
}

/// Makes the directory's entries (creates, renames, unlinks) durable.
pub(crate) fn sync_dir(dir: &File) -> io::Result<()> {
    sync_file(dir)
}

/// Copies owner, group and exact mode, with one `fstat` and only the calls
/// that change something. When the process may not give the file the
/// owner (not root), it still keeps the group if it may (it is a member):
/// the file then has the writer's owner and the old group, as a rewrite by
/// that user of a shared file should. `fchown` clears set-id bits, so
/// `fchmod` follows it. Extended attributes are set after the owner (a
/// chown clears file capabilities) and before the mode: setting an access
/// ACL also sets the group bits to its mask, and `fchmod` then only touches
/// what still differs. Returns the attributes the process may not set.
pub(crate) fn set_owner_and_mode(
    file: &File,
    uid: u32,
    gid: u32,
    mode: u32,
    xattrs: &[Xattr],
) -> io::Result<Vec<Refused>> {
    let mut ours = file.metadata()?;
    let mut chowned = false;
    if ours.uid() != uid || ours.gid() != gid {
        let (owner, group) = (
            rustix::fs::Uid::from_raw(uid),
            rustix::fs::Gid::from_raw(gid),
        );
        match rustix::fs::fchown(file, Some(owner), Some(group)) {
            Ok(()) => chowned = true,
            // Not root: keep at least the group, if this process is a member.
            Err(rustix::io::Errno::PERM) if ours.gid() != gid => {
                match rustix::fs::fchown(file, None, Some(group)) {
                    Ok(()) => chowned = true,
                    Err(rustix::io::Errno::PERM) => {}
                    Err(e) => return Err(e.into()),
                }
            }
            Err(rustix::io::Errno::PERM) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let refused = xattr::set(file, xattrs)?;
    if xattrs.iter().any(Xattr::is_access_acl) {
        ours = file.metadata()?;
    }
    if chowned || ours.mode() & 0o7777 != mode & 0o7777 {
        file.set_permissions(std::fs::Permissions::from_mode(mode & 0o7777))?;
    }
    Ok(refused)
}

/// Translates std metadata into the protocol's view of an inode.
pub(crate) fn meta(m: &Metadata) -> Meta {
    let ft = m.file_type();
    let kind = if ft.is_file() {
        Kind::File
    } else if ft.is_dir() {
        Kind::Dir
    } else if ft.is_symlink() {
        Kind::Symlink
    } else {
        Kind::Other
    };
    Meta {
        kind,
        dev: m.dev(),
        ino: m.ino(),
        size: m.size(),
        nlink: m.nlink(),
        mtime: (m.mtime(), m.mtime_nsec()),
        ctime: (m.ctime(), m.ctime_nsec()),
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
        mount_root: false,
    }
}

/// `fstat` of an open file, telling also whether it is the root of a mount
/// (a file bind-mounted over another): one `statx` on Linux, as std's
/// `metadata` makes anyway.
pub(crate) fn file_meta(file: &File) -> io::Result<Meta> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        use rustix::fs::{StatxAttributes, StatxFlags};
        let st = rustix::fs::statx(file, "", AtFlags::EMPTY_PATH, StatxFlags::BASIC_STATS)?;
        let mode = u32::from(st.stx_mode);
        let kind = match rustix::fs::FileType::from_raw_mode(mode as rustix::fs::RawMode) {
            rustix::fs::FileType::RegularFile => Kind::File,
            rustix::fs::FileType::Directory => Kind::Dir,
            rustix::fs::FileType::Symlink => Kind::Symlink,
            _ => Kind::Other,
        };
        let known = st.stx_attributes_mask.contains(StatxAttributes::MOUNT_ROOT);
        Ok(Meta {
            kind,
            dev: rustix::fs::makedev(st.stx_dev_major, st.stx_dev_minor),
            ino: st.stx_ino,
            size: st.stx_size,
            nlink: u64::from(st.stx_nlink),
            mtime: (st.stx_mtime.tv_sec, i64::from(st.stx_mtime.tv_nsec)),
            ctime: (st.stx_ctime.tv_sec, i64::from(st.stx_ctime.tv_nsec)),
            mode: mode & 0o7777,
            uid: st.stx_uid,
            gid: st.stx_gid,
            mount_root: known && st.stx_attributes.contains(StatxAttributes::MOUNT_ROOT),
        })
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        Ok(meta(&file.metadata()?))
    }
}

/// Translates rustix's `stat` into the protocol's view of an inode. (The
/// field types differ between platforms, hence the casts.)
#[allow(clippy::unnecessary_cast)]
fn meta_of(st: &rustix::fs::Stat) -> Meta {
    let mode = st.st_mode as u32;
    let kind = match rustix::fs::FileType::from_raw_mode(mode as rustix::fs::RawMode) {
        rustix::fs::FileType::RegularFile => Kind::File,
        rustix::fs::FileType::Directory => Kind::Dir,
        rustix::fs::FileType::Symlink => Kind::Symlink,
        _ => Kind::Other,
    };
    Meta {
        kind,
        dev: st.st_dev as u64,
        ino: st.st_ino as u64,
        size: st.st_size as u64,
        nlink: st.st_nlink as u64,
        mtime: (st.st_mtime as i64, st.st_mtime_nsec as i64),
        ctime: (st.st_ctime as i64, st.st_ctime_nsec as i64),
        mode: mode & 0o7777,
        uid: st.st_uid as u32,
        gid: st.st_gid as u32,
        mount_root: false,
    }
}

/// Longest file name the directory accepts (`NAME_MAX`).
pub(crate) const NAME_MAX: usize = 255;

/// An operating-system lock held on a guard descriptor; dropping it unlocks.
#[derive(Debug)]
pub(crate) struct OsLock {
    _held: Held,
}

#[derive(Debug)]
enum Held {
    /// Unlocks in fd-lock's guard when dropped.
    Flock { _guard: super::held::Exclusive },
    /// Unlocks in fd-lock's guard when dropped.
    FlockShared { _guard: super::held::Shared },
    /// Unlocked by `Held::drop`.
    Posix(Arc<File>),
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Held::Posix(file) = self {
            // Unlocking cannot fail for a lock we hold on an open descriptor;
            // if it somehow did, closing the descriptor later releases it.
            let _ = rustix::fs::fcntl_lock(&**file, FlockOperation::Unlock);
        }
    }
}

/// Takes a shared or exclusive lock of one kind on `file`. With `wait` false, returns
/// `Ok(None)` at once when a conflicting holder has it; with `wait` true,
/// blocks until it is free.
pub(crate) fn lock(
    file: &Arc<File>,
    kind: LockStyle,
    shared: bool,
    wait: bool,
) -> io::Result<Option<OsLock>> {
    let result = match kind {
        LockStyle::Flock if shared => super::held::shared(Arc::clone(file), wait)
            .map(|guard| Held::FlockShared { _guard: guard }),
        LockStyle::Flock => super::held::exclusive(Arc::clone(file), wait)
            .map(|guard| Held::Flock { _guard: guard }),
        LockStyle::Posix => {
            let op = match (shared, wait) {
                (false, true) => FlockOperation::LockExclusive,
                (false, false) => FlockOperation::NonBlockingLockExclusive,
                (true, true) => FlockOperation::LockShared,
                (true, false) => FlockOperation::NonBlockingLockShared,
            };
            rustix::fs::fcntl_lock(&**file, op)
                .map(|()| Held::Posix(Arc::clone(file)))
                .map_err(io::Error::from)
        }
    };
    match result {
        Ok(held) => Ok(Some(OsLock { _held: held })),
        Err(e) if !wait && is_contended(&e) => Ok(None),
        Err(e) => Err(e),
    }
}

fn is_contended(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::WouldBlock
        || matches!(
            e.raw_os_error(),
            Some(code) if code == rustix::io::Errno::ACCESS.raw_os_error()
                || code == rustix::io::Errno::AGAIN.raw_os_error()
        )
}

/// Creates exactly `name` in `dir` (`O_EXCL`), read-write, with `mode`
/// minus umask.
pub(crate) fn create_new(dir: &File, name: &str, mode: u32) -> io::Result<File> {
    open_at(
        dir,
        name,
        OFlags::RDWR | OFlags::CREATE | OFlags::EXCL,
        mode,
    )
}

/// Opens the existing regular file `name` in `dir` read-write, refusing a
/// symbolic link (`O_NOFOLLOW`).
pub(crate) fn open_write(dir: &File, name: &str) -> io::Result<File> {
    let file = open_at(dir, name, OFlags::RDWR | OFlags::NOFOLLOW, 0)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// `pread`.
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    std::os::unix::fs::FileExt::read_at(file, buf, offset)
}
