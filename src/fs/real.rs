//! The real filesystem: thin wrappers over std and `crate::sys`.

use std::any::Any;
use std::fs::File;
use std::io::{self, Write};
use std::sync::Arc;

use camino::{Utf8Path, Utf8PathBuf};

use super::{
    Blocking, DirHandle, Fs, GuardFile, GuardPerms, LockHeld, Locking, Marker, Meta, Mode, Name,
    ReadFile, Refused, WriteFile, Xattr,
};
use crate::mutants::Selected;
use crate::{LockStyle, sys};

/// The operating system's filesystem.
#[derive(Debug, Default)]
pub(crate) struct RealFs {
    /// A mutant this layer injects itself (`Mutant::NoDeleteSharing`), as
    /// the simulated filesystem injects its own (see `src/mutants.rs`).
    mutant: Selected,
}

impl RealFs {
    /// The filesystem for a handle whose options select `mutant`.
    pub(crate) fn new(mutant: Selected) -> RealFs {
        RealFs { mutant }
    }
}

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

    fn read_link(&self, path: &Utf8Path) -> io::Result<Utf8PathBuf> {
        utf8(std::fs::read_link(path)?)
    }

    fn open_dir(&self, path: &Utf8Path) -> io::Result<Box<dyn DirHandle>> {
        Ok(Box::new(RealDir {
            file: sys::open_dir(path)?,
            path: path.to_owned(),
            mutant: self.mutant,
        }))
    }

    fn link(
        &self,
        from_dir: &dyn DirHandle,
        from: &Name,
        to_dir: &dyn DirHandle,
        to: &Name,
    ) -> io::Result<()> {
        sys::link_at(&real(from_dir)?.file, from, &real(to_dir)?.file, to)
    }
}

/// The real directory behind a handle of this filesystem.
fn real(dir: &dyn DirHandle) -> io::Result<&RealDir> {
    dir.as_any().downcast_ref::<RealDir>().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "a directory of another filesystem",
        )
    })
}

#[derive(Debug)]
struct RealFile(File);

impl ReadFile for RealFile {
    fn meta(&self) -> io::Result<Meta> {
        sys::file_meta(&self.0)
    }

    fn read_at(&self, buf: &mut [u8], offset: u64) -> io::Result<usize> {
        sys::read_at(&self.0, buf, offset)
    }

    fn xattrs(&self) -> io::Result<Vec<Xattr>> {
        sys::xattrs(&self.0)
    }

    fn sync(&self) -> io::Result<()> {
        sys::sync_file(&self.0)
    }
}

impl WriteFile for RealFile {
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
        xattrs: &[Xattr],
    ) -> io::Result<Vec<Refused>> {
        sys::set_owner_and_mode(&self.0, uid, gid, mode, xattrs)
    }

    fn sync(&mut self) -> io::Result<()> {
        sys::sync_file(&self.0)
    }

    fn set_len(&mut self, len: u64) -> io::Result<()> {
        self.0.set_len(len)
    }
}

/// A directory descriptor, and the path it was opened by (for messages
/// only: nothing is resolved through it again).
#[derive(Debug)]
struct RealDir {
    file: File,
    path: Utf8PathBuf,
    #[cfg_attr(not(all(windows, txfile_mutants)), allow(dead_code))]
    mutant: Selected,
}

impl DirHandle for RealDir {
    fn meta(&self) -> io::Result<Meta> {
        sys::fstat(&self.file)
    }

    fn sync(&self) -> io::Result<()> {
        sys::sync_dir(&self.file)
    }

    fn list(&self) -> io::Result<Vec<String>> {
        sys::list(&self.file)
    }

    fn revalidate(&self) -> io::Result<()> {
        sys::revalidate(&self.file)
    }

    fn current_path(&self) -> io::Result<Utf8PathBuf> {
        let me = sys::fstat(&self.file)?;
        let names_me = |path: &Utf8Path| {
            sys::open_dir(path)
                .and_then(|dir| sys::fstat(&dir))
                .is_ok_and(|meta| meta.same_inode(&me))
        };
        if names_me(&self.path) {
            return Ok(self.path.clone());
        }
        match sys::dir_path_now(&self.file) {
            Some(path) if names_me(&path) => Ok(path),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "the directory is no longer at the path it was opened by, and where it went cannot be found",
            )),
        }
    }

    fn lstat(&self, name: &Name) -> io::Result<Option<Meta>> {
        not_found_to_none(sys::stat_at(&self.file, name, false))
    }

    fn stat(&self, name: &Name) -> io::Result<Option<Meta>> {
        not_found_to_none(sys::stat_at(&self.file, name, true))
    }

    fn open_read(&self, name: &Name) -> io::Result<Option<Box<dyn ReadFile>>> {
        #[cfg(all(windows, txfile_mutants))]
        if crate::mutants::active(self.mutant, crate::mutants::Mutant::NoDeleteSharing) {
            return Ok(
                not_found_to_none(sys::open_read_without_delete_sharing(&self.file, name))?
                    .map(|f| Box::new(RealFile(f)) as Box<dyn ReadFile>),
            );
        }
        Ok(not_found_to_none(sys::open_read(&self.file, name))?
            .map(|f| Box::new(RealFile(f)) as Box<dyn ReadFile>))
    }

    fn open_guard(&self, name: &Name, perms: GuardPerms) -> io::Result<Box<dyn GuardFile>> {
        let (file, read_only) = sys::open_guard(&self.file, name, &self.path.join(name), perms)?;
        let locking = Locking {
            merged: sys::locks_merged(&file),
            read_only,
        };
        Ok(Box::new(RealGuard {
            file: Arc::new(file),
            locking,
        }))
    }

    fn create_temp(
        &self,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> io::Result<(String, Box<dyn WriteFile>)> {
        let (name, file) =
            sys::create_temp(&self.file, prefix, suffix, crate::names::RANDOM_LEN, mode)?;
        Ok((name, Box::new(RealFile(file))))
    }

    fn create_new(&self, name: &Name, mode: u32) -> io::Result<Box<dyn WriteFile>> {
        Ok(Box::new(RealFile(sys::create_new(&self.file, name, mode)?)))
    }

    fn open_write(&self, name: &Name) -> io::Result<Option<Box<dyn WriteFile>>> {
        Ok(not_found_to_none(sys::open_write(&self.file, name))?
            .map(|f| Box::new(RealFile(f)) as Box<dyn WriteFile>))
    }

    fn rename(&self, from: &Name, to: &Name) -> io::Result<()> {
        sys::rename_at(&self.file, from, to)
    }

    fn remove_file(&self, name: &Name) -> io::Result<()> {
        sys::unlink_at(&self.file, name)
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(Debug)]
struct RealGuard {
    file: Arc<File>,
    locking: Locking,
}

impl GuardFile for RealGuard {
    fn meta(&self) -> io::Result<Meta> {
        sys::fstat(&self.file)
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
        mode: Mode,
        blocking: Blocking,
    ) -> io::Result<Option<Box<dyn LockHeld>>> {
        let shared = mode == Mode::Shared;
        let wait = blocking == Blocking::Block;
        Ok(sys::lock(&self.file, kind, shared, wait)?
            .map(|held| Box::new(held) as Box<dyn LockHeld>))
    }
}

impl LockHeld for sys::OsLock {}
