//! Windows: `LockFileEx` through fd-lock, `MoveFileExW` with write-through,
//! `FlushFileBuffers`, and the target's attributes and security descriptor
//! copied onto its replacement, through windows-sys.
//!
//! What differs from Unix, and why:
//!
//! - **Sharing.** Windows lets the opener of a file decide whether others
//!   may delete or rename it while it is open (`FILE_SHARE_DELETE`). Every
//!   file txfile opens (the target, the old version, journals, guards,
//!   temporary files) is opened with `FILE_SHARE_READ | FILE_SHARE_WRITE |
//!   FILE_SHARE_DELETE`, so txfile never keeps another program (or another
//!   txfile process) from renaming or deleting it. Replacing is stricter:
//!   `MoveFileExW` refuses to replace a file that any handle has open (NTFS
//!   without POSIX rename semantics, and Wine), so a commit closes its own
//!   handle on the old version before the rename, and a rename refused
//!   because someone has the target open (a sharing violation, or "access
//!   denied" while an open sharing nothing fails with a sharing violation)
//!   is reported as `crate::replace::HeldOpen`, which the commit retries
//!   with backoff for `Options::replace_retry`. Lockless readers
//!   (`TxFile::read`) hold the file for moments; other programs (editors,
//!   virus scanners, indexers) may hold it longer.
//! - **Locks.** `LockFileEx` on the guard's first byte (fd-lock), exclusive
//!   or shared. Windows has one kind of byte-range lock, so both
//!   `LockStyle` values take that same lock ([`locks_merged`] is always
//!   true): `Flock` and `Posix` processes exclude each other. The lock is
//!   mandatory for the locked byte (other handles cannot read or write it
//!   while it is held), which touches nothing of txfile's: only the holder
//!   reads or resizes its guard.
//! - **Durability.** `FlushFileBuffers` for the file, and
//!   `MOVEFILE_WRITE_THROUGH` for the rename: `MoveFileExW` returns only
//!   once the rename is on disk. Windows has no call that flushes a
//!   directory (`FlushFileBuffers` refuses a directory handle), so
//!   [`sync_dir`] does nothing; NTFS journals the rename itself as one
//!   metadata transaction.
//! - **Directories.** The protocol names files relative to a directory
//!   handle. Windows' documented API has no `openat`, so each call here
//!   asks the handle for its directory's current path
//!   (`GetFinalPathNameByHandleW`) and joins the name: a directory renamed
//!   after it was opened is followed, as with a Unix descriptor. (Unlike
//!   `openat`, a rename of the directory between that lookup and the call
//!   is not; the native `NtCreateFile` with a root directory would close
//!   that window.) The handle shares everything, so it never keeps the
//!   directory from being renamed or removed.
//! - **Metadata.** A replacement gets the target's file attributes
//!   (read-only, hidden, system, archive, not-content-indexed) and its
//!   security descriptor (owner and group where this process may set them,
//!   and the DACL with its protection bit), as the one "extended attribute"
//!   the seam carries: [`xattrs`] reads both, [`set_owner_and_mode`]
//!   writes them. Unix owners
//!   and modes have no meaning here: a file's mode reads as `0o600`
//!   (`0o400` when read-only) and its owner as 0, which is also this
//!   process's [`euid`].

// Win32 calls are `unsafe` FFI; every block says why it is sound.
#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::fs::{File, OpenOptions};
use std::io::{self, Seek, SeekFrom};
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::os::windows::fs::{FileExt, OpenOptionsExt};
use std::os::windows::io::AsRawHandle;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use camino::Utf8Path;
use windows_sys::Win32::Foundation::{
    ERROR_ACCESS_DENIED, ERROR_INSUFFICIENT_BUFFER, ERROR_INVALID_FUNCTION, ERROR_LOCK_VIOLATION,
    ERROR_NOT_SUPPORTED, ERROR_SHARING_VIOLATION, FILETIME, HANDLE,
};
use windows_sys::Win32::Security::{
    DACL_SECURITY_INFORMATION, GROUP_SECURITY_INFORMATION, GetKernelObjectSecurity,
    OWNER_SECURITY_INFORMATION, PSECURITY_DESCRIPTOR, SetKernelObjectSecurity,
};
use windows_sys::Win32::Storage::FileSystem::{
    BY_HANDLE_FILE_INFORMATION, DELETE, FILE_ATTRIBUTE_ARCHIVE, FILE_ATTRIBUTE_DIRECTORY,
    FILE_ATTRIBUTE_HIDDEN, FILE_ATTRIBUTE_NORMAL, FILE_ATTRIBUTE_NOT_CONTENT_INDEXED,
    FILE_ATTRIBUTE_READONLY, FILE_ATTRIBUTE_REPARSE_POINT, FILE_ATTRIBUTE_SYSTEM, FILE_BASIC_INFO,
    FILE_FLAG_BACKUP_SEMANTICS, FILE_FLAG_OPEN_REPARSE_POINT, FILE_NAME_NORMALIZED,
    FILE_READ_ATTRIBUTES, FILE_SHARE_DELETE, FILE_SHARE_READ, FILE_SHARE_WRITE, FILE_STANDARD_INFO,
    FILE_TYPE_DISK, FileBasicInfo, FileStandardInfo, GetFileAttributesW,
    GetFileInformationByHandle, GetFileInformationByHandleEx, GetFileType,
    GetFinalPathNameByHandleW, INVALID_FILE_ATTRIBUTES, MOVEFILE_REPLACE_EXISTING,
    MOVEFILE_WRITE_THROUGH, MoveFileExW, READ_CONTROL, SetFileAttributesW,
    SetFileInformationByHandle, VOLUME_NAME_DOS, WRITE_DAC, WRITE_OWNER,
};

use crate::LockStyle;
use crate::fs::{GuardPerms, Kind, Meta, Refused, Xattr};
use crate::replace::HeldOpen;

/// Everyone may read, write, and delete or rename what txfile holds open.
const SHARE_ALL: u32 = FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE;

/// `GENERIC_READ | GENERIC_WRITE` (spelled out: windows-sys puts them in a
/// module this crate does not otherwise need).
const GENERIC_READ_WRITE: u32 = 0x8000_0000 | 0x4000_0000;

/// The attributes a replacement takes over from the file it replaces.
const KEPT_ATTRIBUTES: u32 = FILE_ATTRIBUTE_READONLY
    | FILE_ATTRIBUTE_HIDDEN
    | FILE_ATTRIBUTE_SYSTEM
    | FILE_ATTRIBUTE_ARCHIVE
    | FILE_ATTRIBUTE_NOT_CONTENT_INDEXED;

fn handle(file: &File) -> HANDLE {
    file.as_raw_handle() as HANDLE
}

fn wide(path: &Path) -> Vec<u16> {
    OsStr::new(path).encode_wide().chain(Some(0)).collect()
}

fn is(e: &io::Error, code: u32) -> bool {
    e.raw_os_error() == Some(code as i32)
}

/// The current path of the directory `dir` is open on.
fn dir_path(dir: &File) -> io::Result<PathBuf> {
    let mut buf = vec![0u16; 260];
    loop {
        // SAFETY: the handle is open; the buffer is writable for its
        // stated length in UTF-16 units.
        let n = unsafe {
            GetFinalPathNameByHandleW(
                handle(dir),
                buf.as_mut_ptr(),
                buf.len() as u32,
                FILE_NAME_NORMALIZED | VOLUME_NAME_DOS,
            )
        } as usize;
        if n == 0 {
            return Err(io::Error::last_os_error());
        }
        if n < buf.len() {
            buf.truncate(n);
            return Ok(PathBuf::from(std::ffi::OsString::from_wide(&buf)));
        }
        // Too small: `n` is the size needed, with the terminating NUL.
        buf.resize(n + 1, 0);
    }
}

/// `name` in the directory `dir` is open on.
fn at(dir: &File, name: &str) -> io::Result<PathBuf> {
    Ok(dir_path(dir)?.join(name))
}

/// Opens (creating if needed) the guard file `name` in `dir`: read-write,
/// or read-only when this user may not write it (`true` in the result).
/// Never through a symbolic link or other reparse point (the reparse point
/// itself is opened, and the caller's check of its kind refuses it).
/// `perms` has no meaning on Windows: a new guard inherits its directory's
/// ACL, as the target does.
pub(crate) fn open_guard(
    dir: &File,
    name: &str,
    _path: &Utf8Path,
    _perms: GuardPerms,
) -> io::Result<(File, bool)> {
    let path = at(dir, name)?;
    let open = |write: bool, create: bool| {
        OpenOptions::new()
            .read(true)
            .write(write)
            .create(create)
            .share_mode(SHARE_ALL)
            .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
            .open(&path)
    };
    match open(true, true) {
        Ok(file) => Ok((file, false)),
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => match open(false, false) {
            Ok(file) => Ok((file, true)),
            Err(_) => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// Windows has one kind of byte-range lock: both lock styles take it.
pub(crate) fn locks_merged(_: &File) -> bool {
    true
}

/// Opens a target (or journal) for reading, following symbolic links, with
/// every kind of sharing allowed: this handle never keeps anyone from
/// replacing the file.
pub(crate) fn open_read(dir: &File, name: &str) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .share_mode(SHARE_ALL)
        .open(at(dir, name)?)
}

/// [`open_read`] as `std::fs::File::open` opens, without delete sharing:
/// the `NoDeleteSharing` mutant (`src/mutants.rs`), which the Windows tests
/// of a transaction's handle on the target must catch.
#[cfg(txfile_mutants)]
pub(crate) fn open_read_without_delete_sharing(dir: &File, name: &str) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE)
        .open(at(dir, name)?)
}

/// This process's "user id": Windows owners are SIDs, which the protocol
/// does not compare; every file reads as owned by 0, and so does this
/// process.
pub(crate) fn euid() -> u32 {
    0
}

/// Opens a directory (`FILE_FLAG_BACKUP_SEMANTICS`: the only way to open
/// one), sharing everything, so that the directory itself can still be
/// renamed.
pub(crate) fn open_dir(path: &Utf8Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
}

/// The access a file txfile creates is opened with: read and write, its
/// security descriptor read and written (to copy the target's), and
/// `DELETE`, so that it can be renamed over the target while open.
const CREATED_ACCESS: u32 = GENERIC_READ_WRITE | READ_CONTROL | WRITE_DAC | WRITE_OWNER | DELETE;

/// Creates exactly `path`, read-write, shared so that it can be renamed or
/// removed while open. Falls back to less access when this user may not
/// change owners (`WRITE_OWNER` needs the right on the directory's ACL).
fn create_at(path: &Path) -> io::Result<File> {
    let mut last = None;
    for access in [CREATED_ACCESS, CREATED_ACCESS & !WRITE_OWNER] {
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .access_mode(access)
            .share_mode(SHARE_ALL)
            .open(path)
        {
            Ok(file) => return Ok(file),
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| io::ErrorKind::PermissionDenied.into()))
}

/// Creates a new file `<prefix><random><suffix>` in `dir`, retrying on
/// name collisions; returns its name. (Not through tempfile: its Windows
/// files carry `FILE_ATTRIBUTE_TEMPORARY`, which the renamed file would
/// keep.) `mode` has no meaning here: the file inherits the directory's
/// ACL until the target's is copied.
pub(crate) fn create_temp(
    dir: &File,
    prefix: &str,
    suffix: &str,
    random_len: usize,
    _mode: u32,
) -> io::Result<(String, File)> {
    let dir = dir_path(dir)?;
    let mut tries = 0;
    loop {
        let name = format!("{prefix}{}{suffix}", random_chars(random_len));
        match create_at(&dir.join(&name)) {
            Ok(file) => return Ok((name, file)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 100 => tries += 1,
            Err(e) => return Err(e),
        }
    }
}

/// `len` random ASCII letters and digits: std's randomly keyed hasher over
/// a process-wide counter and the time (`create_new` settles the rare
/// collision).
fn random_chars(len: usize) -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut out = String::with_capacity(len);
    let mut x = 0u64;
    for i in 0..len {
        if i % 10 == 0 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
            hasher.write_u32(std::process::id());
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

/// `FlushFileBuffers`: the file's data and metadata reach the disk.
pub(crate) fn sync_file(file: &File) -> io::Result<()> {
    file.sync_all()
}

/// The names in `dir` (names that are not valid Unicode are skipped: no
/// file of ours has one).
pub(crate) fn list(dir: &File) -> io::Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir_path(dir)?)? {
        if let Ok(name) = entry?.file_name().into_string() {
            names.push(name);
        }
    }
    Ok(names)
}

/// Nothing to do: no Windows filesystem txfile supports caches directory
/// attributes the way an NFS client does.
pub(crate) fn revalidate(_: &File) -> io::Result<()> {
    Ok(())
}

/// Nothing: Windows cannot flush a directory (`FlushFileBuffers` refuses a
/// directory handle). The rename's durability comes from
/// `MOVEFILE_WRITE_THROUGH` instead (see [`rename`]).
pub(crate) fn sync_dir(_: &File) -> io::Result<()> {
    Ok(())
}

/// The name of the one "extended attribute" the seam carries on Windows
/// (never a real one: Windows has none txfile copies).
const SECURITY: &[u8] = b"windows.security";

/// The "extended attributes" the seam carries on Windows: one, whose value
/// is the target's kept attributes (4 bytes, little-endian) followed by its
/// security descriptor (self-relative: owner, group and DACL).
pub(crate) fn xattrs(file: &File) -> io::Result<Vec<Xattr>> {
    let attributes = info(file)?.dwFileAttributes & KEPT_ATTRIBUTES;
    let mut value = attributes.to_le_bytes().to_vec();
    value.extend(security_descriptor(file)?);
    Ok(vec![Xattr {
        name: SECURITY.to_vec(),
        value,
    }])
}

const SD_INFO: u32 =
    OWNER_SECURITY_INFORMATION | GROUP_SECURITY_INFORMATION | DACL_SECURITY_INFORMATION;

/// The file's security descriptor, self-relative.
fn security_descriptor(file: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; 512];
    loop {
        let mut needed = 0u32;
        // SAFETY: the handle is open for the call; the buffer is writable
        // for its stated length, and `needed` is a valid out pointer.
        let ok = unsafe {
            GetKernelObjectSecurity(
                handle(file),
                SD_INFO,
                buf.as_mut_ptr().cast(),
                buf.len() as u32,
                &mut needed,
            )
        };
        if ok != 0 {
            buf.truncate(needed.max(1) as usize);
            return Ok(buf);
        }
        let e = io::Error::last_os_error();
        if is(&e, ERROR_INSUFFICIENT_BUFFER) && (needed as usize) > buf.len() {
            buf.resize(needed as usize, 0);
        } else {
            return Err(e);
        }
    }
}

/// Gives a replacement the target's attributes and security descriptor, as
/// [`xattrs`] read them. The owner and group are set only where this process
/// may (as on Unix, a rewrite by another user keeps what it can). The
/// attributes come last: a read-only attribute would refuse the rest. The
/// Unix owner and mode are ignored.
pub(crate) fn set_owner_and_mode(
    file: &File,
    _uid: u32,
    _gid: u32,
    _mode: u32,
    xattrs: &[Xattr],
) -> io::Result<Vec<Refused>> {
    let Some(acl) = xattrs
        .iter()
        .find(|x| x.name == SECURITY && x.value.len() > 4)
        .map(|x| &x.value[..])
    else {
        return Ok(Vec::new());
    };
    let attributes = u32::from_le_bytes([acl[0], acl[1], acl[2], acl[3]]);
    let mut sd = acl[4..].to_vec();
    let sd_ptr: PSECURITY_DESCRIPTOR = sd.as_mut_ptr().cast();
    for info in [SD_INFO, DACL_SECURITY_INFORMATION] {
        // SAFETY: the handle is open; `sd` holds a self-relative security
        // descriptor that GetKernelObjectSecurity produced, alive for the
        // call.
        if unsafe { SetKernelObjectSecurity(handle(file), info, sd_ptr) } != 0 {
            break;
        }
        // Not permitted to set the owner: the DACL alone, or the error.
        if info == DACL_SECURITY_INFORMATION {
            return Err(io::Error::last_os_error());
        }
    }
    set_attributes(file, attributes)?;
    Ok(Vec::new())
}

/// Sets a file's attributes through its handle (times unchanged).
fn set_attributes(file: &File, attributes: u32) -> io::Result<()> {
    let basic = FILE_BASIC_INFO {
        CreationTime: 0,
        LastAccessTime: 0,
        LastWriteTime: 0,
        ChangeTime: 0,
        FileAttributes: if attributes == 0 {
            FILE_ATTRIBUTE_NORMAL
        } else {
            attributes
        },
    };
    // SAFETY: the handle is open; `basic` is a valid FILE_BASIC_INFO of
    // the stated size, alive for the call (zero times mean "unchanged").
    let ok = unsafe {
        SetFileInformationByHandle(
            handle(file),
            FileBasicInfo,
            (&raw const basic).cast(),
            size_of::<FILE_BASIC_INFO>() as u32,
        )
    };
    if ok == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn info(file: &File) -> io::Result<BY_HANDLE_FILE_INFORMATION> {
    // SAFETY: an all-zero BY_HANDLE_FILE_INFORMATION is a valid value of
    // this plain C struct.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open and `info` is a valid out pointer.
    if unsafe { GetFileInformationByHandle(handle(file), &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(info)
}

/// `(seconds, nanoseconds)` since 1601 of a FILETIME-style count of 100 ns.
fn time(ticks: i64) -> (i64, i64) {
    (
        ticks.div_euclid(10_000_000),
        ticks.rem_euclid(10_000_000) * 100,
    )
}

fn filetime(t: FILETIME) -> i64 {
    (i64::from(t.dwHighDateTime) << 32) | i64::from(t.dwLowDateTime)
}

/// The protocol's view of an open file: the volume serial number as the
/// device, the file index as the inode (the pair names one file, as
/// `(st_dev, st_ino)` does), the link count, size, last-write time, and
/// the change time (`FILE_BASIC_INFO`), which a rename or attribute change
/// moves too. A reparse point (a symbolic link or junction opened without
/// following it) is [`Kind::Symlink`].
pub(crate) fn fstat(file: &File) -> io::Result<Meta> {
    let info = info(file)?;
    // SAFETY: an all-zero FILE_BASIC_INFO is a valid value of this plain
    // C struct.
    let mut basic: FILE_BASIC_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open; `basic` is a writable FILE_BASIC_INFO of
    // the stated size.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            handle(file),
            FileBasicInfo,
            (&raw mut basic).cast(),
            size_of::<FILE_BASIC_INFO>() as u32,
        )
    };
    let change = if ok != 0 {
        basic.ChangeTime
    } else {
        filetime(info.ftLastWriteTime)
    };
    let attributes = info.dwFileAttributes;
    // SAFETY: the handle is open.
    let disk = unsafe { GetFileType(handle(file)) } == FILE_TYPE_DISK;
    let kind = if !disk {
        Kind::Other
    } else if attributes & FILE_ATTRIBUTE_REPARSE_POINT != 0 {
        Kind::Symlink
    } else if attributes & FILE_ATTRIBUTE_DIRECTORY != 0 {
        Kind::Dir
    } else {
        Kind::File
    };
    Ok(Meta {
        kind,
        dev: u64::from(info.dwVolumeSerialNumber),
        ino: (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
        size: (u64::from(info.nFileSizeHigh) << 32) | u64::from(info.nFileSizeLow),
        nlink: u64::from(info.nNumberOfLinks),
        mtime: time(filetime(info.ftLastWriteTime)),
        ctime: time(change),
        mode: if attributes & FILE_ATTRIBUTE_READONLY != 0 {
            0o400
        } else {
            0o600
        },
        uid: 0,
        gid: 0,
        mount_root: false,
    })
}

/// [`fstat`]: Windows has no bind-mounted files to commit in place.
pub(crate) fn file_meta(file: &File) -> io::Result<Meta> {
    fstat(file)
}

/// `lstat` (or, with `follow`, `stat`) of `name` in `dir`.
pub(crate) fn stat_at(dir: &File, name: &str, follow: bool) -> io::Result<Meta> {
    stat_path(&at(dir, name)?, follow)
}

/// `lstat` (or, with `follow`, `stat`) of a path: the file opened for its
/// attributes only, sharing everything, and [`fstat`].
pub(crate) fn stat_path(path: &Path, follow: bool) -> io::Result<Meta> {
    let flags = FILE_FLAG_BACKUP_SEMANTICS
        | if follow {
            0
        } else {
            FILE_FLAG_OPEN_REPARSE_POINT
        };
    let file = OpenOptions::new()
        .access_mode(FILE_READ_ATTRIBUTES)
        .share_mode(SHARE_ALL)
        .custom_flags(flags)
        .open(path)?;
    if delete_pending(&file) {
        // Deleted while someone still has it open: Windows keeps the name
        // until the last handle closes, but the file is gone for everyone
        // else (a commit must see the deletion as the change it is).
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "the file was deleted (its name stays until its last handle is closed)",
        ));
    }
    fstat(&file)
}

/// Whether the file is deleted but still open somewhere.
fn delete_pending(file: &File) -> bool {
    // SAFETY: an all-zero FILE_STANDARD_INFO is a valid value of this
    // plain C struct.
    let mut standard: FILE_STANDARD_INFO = unsafe { std::mem::zeroed() };
    // SAFETY: the handle is open; `standard` is a writable
    // FILE_STANDARD_INFO of the stated size.
    let ok = unsafe {
        GetFileInformationByHandleEx(
            handle(file),
            FileStandardInfo,
            (&raw mut standard).cast(),
            size_of::<FILE_STANDARD_INFO>() as u32,
        )
    };
    ok != 0 && standard.DeletePending
}

/// Whether another handle has `path` open: opening it for reading and
/// sharing nothing fails with a sharing violation exactly then (whatever
/// sharing the other handle allows). A rename refused with "access denied"
/// is retried only then; otherwise it is a real refusal (permissions).
fn open_elsewhere(path: &Path) -> bool {
    match OpenOptions::new()
        .read(true)
        .share_mode(0)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT | FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)
    {
        Ok(_) => false,
        Err(e) => is(&e, ERROR_SHARING_VIOLATION) || is(&e, ERROR_LOCK_VIOLATION),
    }
}

fn attributes_of(path: &Path) -> Option<u32> {
    let name = wide(path);
    // SAFETY: `name` is a NUL-terminated wide string alive for the call.
    let attributes = unsafe { GetFileAttributesW(name.as_ptr()) };
    (attributes != INVALID_FILE_ATTRIBUTES).then_some(attributes)
}

fn set_attributes_of(path: &Path, attributes: u32) -> io::Result<()> {
    let name = wide(path);
    // SAFETY: `name` is a NUL-terminated wide string alive for the call.
    if unsafe { SetFileAttributesW(name.as_ptr(), attributes) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Replaces `to` with `from` atomically: `MoveFileExW` with
/// `MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH`, after
/// [`set_owner_and_mode`] gave `from` the target's attributes and security
/// descriptor.
///
/// Why not `ReplaceFileW`: chosen by the test
/// `replacefilew_and_movefileexw_compared` (tests/windows.rs), which runs
/// both, each tried once, on the same cases. Under Wine 8 it measured:
///
/// | case                       | `ReplaceFileW`              | this (`MoveFileExW`)          |
/// |----------------------------|-----------------------------|-------------------------------|
/// | read-only + hidden target  | fails, "access denied"      | replaced, both attributes kept|
/// | target with its own DACL   | replaced, DACL **not** kept | replaced, DACL kept           |
/// | reader sharing delete      | replaced                    | refused ("access denied")     |
/// | reader not sharing delete  | refused (sharing violation) | refused                       |
/// | no target                  | fails, "file not found"     | created                       |
///
/// `ReplaceFileW` wins one case: a reader that shares delete (as txfile's
/// own readers do) does not block it, where `MoveFileExW` is refused until
/// that reader closes and the commit's retry has to absorb it (under Wine
/// four readers in a tight loop outlast the 2 s default: `tests/load.rs`
/// is Unix-only for that reason). It loses the others, and more that
/// Microsoft documents: it cannot create the target (the first commit),
/// it has no write-through (`REPLACEFILE_WRITE_THROUGH` is documented as
/// unsupported, so the result's durability is up to the lazy writer), and
/// its `ERROR_UNABLE_TO_MOVE_REPLACEMENT` without a backup name leaves *no*
/// file under the target's name, which breaks "a reader sees the old
/// version or the new one". One `MoveFileExW` is one rename in NTFS's
/// journal. Where Wine may differ from NTFS: Windows documents that
/// `ReplaceFileW` keeps the replaced file's ACL (Wine dropped it), and
/// NTFS may treat a read-only target differently; the choice rests on the
/// documented failures (no target, no write-through, no name), not on
/// those two. (Not compared: `SetFileInformationByHandle` with
/// `FILE_RENAME_FLAG_POSIX_SEMANTICS`, Windows 10 1809 and later on NTFS,
/// which would replace a file open with delete sharing.)
///
/// A read-only target cannot be replaced (Windows refuses to delete a
/// read-only file), so its read-only attribute is cleared first and set
/// again if the rename fails; the replacement already carries it. A crash
/// in between leaves the old contents without the attribute.
///
/// When another handle refuses the rename, the error is a [`HeldOpen`]
/// (`ErrorKind::ResourceBusy`): the caller retries. `MoveFileExW` (like
/// NTFS before POSIX rename semantics, and Wine) refuses to replace a file
/// that any handle has open, even one that allows deletion: txfile closes
/// its own before the rename, and lockless readers (`TxFile::read`) hold
/// theirs for moments, which the retry absorbs.
pub(crate) fn rename_at(dir: &File, from: &str, to: &str) -> io::Result<()> {
    let dir = dir_path(dir)?;
    rename(&dir.join(from), &dir.join(to))
}

fn rename(from: &Path, to: &Path) -> io::Result<()> {
    let cleared = match attributes_of(to) {
        Some(attributes) if attributes & FILE_ATTRIBUTE_READONLY != 0 => {
            set_attributes_of(to, attributes & !FILE_ATTRIBUTE_READONLY)?;
            Some(attributes)
        }
        _ => None,
    };
    let (from_w, to_w) = (wide(from), wide(to));
    // SAFETY: both are NUL-terminated wide strings alive for the call.
    let ok = unsafe {
        MoveFileExW(
            from_w.as_ptr(),
            to_w.as_ptr(),
            MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH,
        )
    };
    if ok != 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if let Some(attributes) = cleared {
        // Best effort: the rename changed nothing, so put the attribute back.
        let _ = set_attributes_of(to, attributes);
    }
    if is(&e, ERROR_SHARING_VIOLATION) || is(&e, ERROR_LOCK_VIOLATION) {
        return Err(HeldOpen::error(e, true));
    }
    if is(&e, ERROR_ACCESS_DENIED) {
        // Someone has the target open, or this user may not replace it;
        // a reader that already closed its handle looks like the latter,
        // so both are retried, and only the first is reported as held.
        let held = open_elsewhere(to);
        return Err(HeldOpen::error(e, held));
    }
    Err(e)
}

/// A hard link (`CreateHardLinkW`), from `from` in `from_dir` to `to` in
/// `to_dir`. FAT and exFAT have none: the error says so, since a `Batch`
/// needs them for its journal.
pub(crate) fn link_at(from_dir: &File, from: &str, to_dir: &File, to: &str) -> io::Result<()> {
    match std::fs::hard_link(at(from_dir, from)?, at(to_dir, to)?) {
        Err(e) if is(&e, ERROR_INVALID_FUNCTION) || is(&e, ERROR_NOT_SUPPORTED) => {
            Err(io::Error::new(
                io::ErrorKind::Unsupported,
                format!(
                    "this filesystem has no hard links, which a batch's journal needs \
                     (NTFS and ReFS have them; FAT and exFAT do not): {e}"
                ),
            ))
        }
        other => other,
    }
}

/// Deletes a file; a read-only one too (as `unlink` would on Unix), by
/// clearing the attribute first. A file someone holds open without delete
/// sharing cannot be deleted: the sharing violation is returned (the sweep
/// of stale temporary files skips such a file: its writer may be alive).
pub(crate) fn unlink_at(dir: &File, name: &str) -> io::Result<()> {
    let path = &at(dir, name)?;
    match std::fs::remove_file(path) {
        Err(e) if e.kind() == io::ErrorKind::PermissionDenied => match attributes_of(path) {
            Some(attributes)
                if attributes & FILE_ATTRIBUTE_READONLY != 0
                    && attributes & FILE_ATTRIBUTE_DIRECTORY == 0 =>
            {
                set_attributes_of(path, attributes & !FILE_ATTRIBUTE_READONLY)?;
                std::fs::remove_file(path).inspect_err(|_| {
                    let _ = set_attributes_of(path, attributes);
                })
            }
            _ => Err(e),
        },
        other => other,
    }
}

/// Longest file name NTFS accepts, in UTF-16 units (counted here in bytes
/// of UTF-8, which is never fewer).
pub(crate) const NAME_MAX: usize = 255;

/// A `LockFileEx` lock held on a guard handle; dropping it unlocks.
#[derive(Debug)]
pub(crate) struct OsLock {
    _held: Held,
}

#[derive(Debug)]
enum Held {
    /// Unlocks in fd-lock's guard when dropped.
    Exclusive { _guard: super::held::Exclusive },
    /// Unlocks in fd-lock's guard when dropped.
    Shared { _guard: super::held::Shared },
}

/// Takes `LockFileEx` on the guard, shared or exclusive (the style does not
/// matter: Windows has one lock). With `wait` false, `Ok(None)` at once when
/// another handle holds a conflicting lock; with `wait` true, blocks until
/// it is free.
pub(crate) fn lock(
    file: &Arc<File>,
    _kind: LockStyle,
    shared: bool,
    wait: bool,
) -> io::Result<Option<OsLock>> {
    let result = if shared {
        super::held::shared(Arc::clone(file), wait).map(|guard| Held::Shared { _guard: guard })
    } else {
        super::held::exclusive(Arc::clone(file), wait)
            .map(|guard| Held::Exclusive { _guard: guard })
    };
    match result {
        Ok(held) => Ok(Some(OsLock { _held: held })),
        Err(e)
            if !wait && (e.kind() == io::ErrorKind::WouldBlock || is(&e, ERROR_LOCK_VIOLATION)) =>
        {
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Creates exactly `name` in `dir`, read-write (a journal): shared like a
/// temporary file, so that recovery elsewhere can open it.
pub(crate) fn create_new(dir: &File, name: &str, _mode: u32) -> io::Result<File> {
    create_at(&at(dir, name)?)
}

/// Opens the existing regular file `name` in `dir` read-write, not through
/// a reparse point, sharing everything.
pub(crate) fn open_write(dir: &File, name: &str) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .share_mode(SHARE_ALL)
        .custom_flags(FILE_FLAG_OPEN_REPARSE_POINT)
        .open(at(dir, name)?)?;
    if fstat(&file)?.kind != Kind::File {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    Ok(file)
}

/// Reads at `offset` without moving the position the next write uses
/// (Windows' positioned read moves it on a synchronous handle, so it is put
/// back).
pub(crate) fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut f = file;
    let position = f.stream_position()?;
    let result = file.seek_read(buf, offset);
    f.seek(SeekFrom::Start(position))?;
    result
}
