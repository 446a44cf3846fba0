//! Platforms without an implementation: everything compiles and every
//! operation returns `ErrorKind::Unsupported`.

use std::fs::{File, Metadata};
use std::io;
use std::sync::Arc;

use camino::Utf8Path;

use crate::fs::{GuardPerms, Kind, LockStyle, Meta};

fn unsupported() -> io::Error {
    io::Error::new(io::ErrorKind::Unsupported, "txfile supports Unix only")
}

pub(crate) fn open_guard(
    _: &File,
    _: &str,
    _: &Utf8Path,
    _: GuardPerms,
) -> io::Result<(File, bool)> {
    Err(unsupported())
}
pub(crate) fn locks_merged(_: &File) -> bool {
    true
}
pub(crate) fn open_dir(_: &Utf8Path) -> io::Result<File> {
    Err(unsupported())
}
pub(crate) fn create_temp(
    _: &File,
    _: &str,
    _: &str,
    _: usize,
    _: u32,
) -> io::Result<(String, File)> {
    Err(unsupported())
}
pub(crate) fn sync_file(_: &File) -> io::Result<()> {
    Err(unsupported())
}
pub(crate) fn sync_dir(_: &File) -> io::Result<()> {
    Err(unsupported())
}
pub(crate) fn set_owner_and_mode(
    _: &File,
    _: u32,
    _: u32,
    _: u32,
    _: &[crate::fs::Xattr],
) -> io::Result<Vec<crate::fs::Refused>> {
    Err(unsupported())
}
pub(crate) fn open_read(_: &File, _: &str) -> io::Result<File> {
    Err(unsupported())
}
pub(crate) fn euid() -> u32 {
    0
}
pub(crate) fn xattrs(_: &File) -> io::Result<Vec<crate::fs::Xattr>> {
    Err(unsupported())
}
pub(crate) fn meta(m: &Metadata) -> Meta {
    Meta {
        kind: if m.is_dir() {
            Kind::Dir
        } else if m.is_file() {
            Kind::File
        } else {
            Kind::Other
        },
        dev: 0,
        ino: 0,
        size: m.len(),
        nlink: 1,
        mtime: (0, 0),
        ctime: (0, 0),
        mode: 0,
        uid: 0,
        gid: 0,
        mount_root: false,
    }
}
pub(crate) const NAME_MAX: usize = 255;

#[derive(Debug)]
pub(crate) struct OsLock;

pub(crate) fn create_new(_: &File, _: &str, _: u32) -> io::Result<File> {
    Err(unsupported())
}

pub(crate) fn lock(_: &Arc<File>, _: LockStyle, _: bool, _: bool) -> io::Result<Option<OsLock>> {
    Err(unsupported())
}

pub(crate) fn open_write(_: &File, _: &str) -> io::Result<File> {
    Err(unsupported())
}

pub(crate) fn read_at(_: &File, _: &mut [u8], _: u64) -> io::Result<usize> {
    Err(unsupported())
}

pub(crate) fn stat_at(_: &File, _: &str, _: bool) -> io::Result<Meta> {
    Err(unsupported())
}

pub(crate) fn file_meta(_: &File) -> io::Result<Meta> {
    Err(unsupported())
}
pub(crate) fn fstat(_: &File) -> io::Result<Meta> {
    Err(unsupported())
}

pub(crate) fn rename_at(_: &File, _: &str, _: &str) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn link_at(_: &File, _: &str, _: &File, _: &str) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn unlink_at(_: &File, _: &str) -> io::Result<()> {
    Err(unsupported())
}

pub(crate) fn list(_: &File) -> io::Result<Vec<String>> {
    Err(unsupported())
}

pub(crate) fn revalidate(_: &File) -> io::Result<()> {
    Err(unsupported())
}
