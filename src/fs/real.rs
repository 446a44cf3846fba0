//! The real filesystem: thin wrappers over std and `crate::sys`.

use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use super::{
    DirHandle, Fs, GuardFile, GuardPerms, LockHeld, Locking, Marker, Meta, ReadFile, TempFile,
};
use crate::{LockStyle, sys};

/// The operating system's filesystem.
#[derive(Debug, Default)]
pub(crate) struct RealFs;

fn not_found_to_none<T>(result: io::Result<T>) -> io::Result<Option<T>> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

fn utf8(path: std::path::PathBuf) -> io::Result<Utf8PathBuf> {
    Utf8PathBuf::from_path_buf(path).map_err(|p| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("path is not UTF-8: {}", p.display()),
        )
    })
}

impl Fs for RealFs {
    fn id(&self) -> u64 {
        0
    }

    fn euid(&self) -> u32 {
        sys::euid()
    }

    fn lstat(&self, path: &Utf8Path) -> io::Result<Option<Meta>> {
        #[cfg(windows)]
        return not_found_to_none(sys::stat_path(path.as_std_path(), false));
        #[cfg(not(windows))]
        not_found_to_none(std::fs::symlink_metadata(path)).map(|m| m.map(|m| sys::meta(&m)))
    }

    fn stat(&self, path: &Utf8Path) -> io::Result<Option<Meta>> {
        #[cfg(windows)]
        return not_found_to_none(sys::stat_path(path.as_std_path(), true));
        #[cfg(not(windows))]
        not_found_to_none(std::fs::metadata(path)).map(|m| m.map(|m| sys::meta(&m)))
    }

    fn read_link(&self, path: &Utf8Path) -> io::Result<Utf8PathBuf> {
        utf8(std::fs::read_link(path)?)
    }

    fn open_read(&self, path: &Utf8Path) -> io::Result<Option<Box<dyn ReadFile>>> {
        Ok(not_found_to_none(sys::open_read(path))?
            .map(|f| Box::new(RealFile(f)) as Box<dyn ReadFile>))
    }

    fn open_guard(&self, path: &Utf8Path, perms: GuardPerms) -> io::Result<Box<dyn GuardFile>> {
        let (file, read_only) = sys::open_guard(path, perms)?;
        let locking = Locking {
            merged: sys::locks_merged(&file),
            read_only,
        };
        Ok(Box::new(RealGuard {
            file: Arc::new(file),
            locking,
        }))
    }

    fn open_dir(&self, path: &Utf8Path) -> io::Result<Box<dyn DirHandle>> {
        Ok(Box::new(RealDir {
            file: sys::open_dir(path)?,
            path: path.to_owned(),
        }))
    }

    fn create_temp(
        &self,
        dir: &Utf8Path,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> io::Result<(Utf8PathBuf, Box<dyn TempFile>)> {
        let (path, file) = sys::create_temp(dir, prefix, suffix, crate::names::RANDOM_LEN, mode)?;
        Ok((utf8(path)?, Box::new(RealFile(file))))
    }

    fn create_new(&self, path: &Utf8Path, mode: u32) -> io::Result<Box<dyn TempFile>> {
        Ok(Box::new(RealFile(sys::create_new(path, mode)?)))
    }

    fn open_write(&self, path: &Utf8Path) -> io::Result<Option<Box<dyn TempFile>>> {
        Ok(not_found_to_none(sys::open_write(path))?
            .map(|f| Box::new(RealFile(f)) as Box<dyn TempFile>))
    }

    fn rename(&self, from: &Utf8Path, to: &Utf8Path) -> io::Result<()> {
        #[cfg(windows)]
        return sys::rename(from.as_std_path(), to.as_std_path());
        #[cfg(not(windows))]
        std::fs::rename(from, to)
    }

    fn link(&self, existing: &Utf8Path, new: &Utf8Path) -> io::Result<()> {
        #[cfg(windows)]
        return sys::link(existing.as_std_path(), new.as_std_path());
        #[cfg(not(windows))]
        std::fs::hard_link(existing, new)
    }

    fn remove_file(&self, path: &Utf8Path) -> io::Result<()> {
        #[cfg(windows)]
        return sys::remove(path.as_std_path());
        #[cfg(not(windows))]
        std::fs::remove_file(path)
    }
}

#[derive(Debug)]
struct RealFile(File);

impl ReadFile for RealFile {
    fn meta(&self) -> io::Result<Meta> {
        #[cfg(windows)]
        return sys::fstat(&self.0);
        #[cfg(not(windows))]
        Ok(sys::meta(&self.0.metadata()?))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        sys::read_at(&self.0, buf, offset)
    }

    fn acl(&self) -> io::Result<Option<Vec<u8>>> {
        sys::acl(&self.0)
    }

    fn sync(&self) -> io::Result<()> {
        sys::sync_file(&self.0)
    }
}

impl TempFile for RealFile {
    fn meta(&self) -> io::Result<Meta> {
        ReadFile::meta(self)
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.write(buf)
    }

    fn seek(&mut self, offset: u64) -> io::Result<()> {
        io::Seek::seek(&mut self.0, io::SeekFrom::Start(offset)).map(drop)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        sys::read_at(&self.0, buf, offset)
    }

    fn set_owner_and_mode(
        &mut self,
        uid: u32,
        gid: u32,
        mode: u32,
        acl: Option<&[u8]>,
    ) -> io::Result<()> {
        sys::set_owner_and_mode(&self.0, uid, gid, mode, acl)
    }

    fn sync(&mut self) -> io::Result<()> {
        sys::sync_file(&self.0)
    }
}

#[derive(Debug)]
struct RealDir {
    file: File,
    path: Utf8PathBuf,
}

impl DirHandle for RealDir {
    fn sync(&self) -> io::Result<()> {
        sys::sync_dir(&self.file)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                names.push(name);
            }
        }
        Ok(names)
    }
}

#[derive(Debug)]
struct RealGuard {
    file: Arc<File>,
    locking: Locking,
}

impl GuardFile for RealGuard {
    fn meta(&self) -> io::Result<Meta> {
        #[cfg(windows)]
        return sys::fstat(&self.file);
        #[cfg(not(windows))]
        Ok(sys::meta(&self.file.metadata()?))
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        sys::read_at(&self.file, buf, offset)
    }

    fn set_marker(&self, marker: Marker) -> io::Result<()> {
        self.file.set_len(marker as u64)
    }

    fn locking(&self) -> Locking {
        self.locking
    }

    fn lock(
        &self,
        kind: LockStyle,
        shared: bool,
        wait: bool,
    ) -> io::Result<Option<Box<dyn LockHeld>>> {
        Ok(sys::lock(&self.file, kind, shared, wait)?
            .map(|held| Box::new(held) as Box<dyn LockHeld>))
    }
}

impl LockHeld for sys::OsLock {}
