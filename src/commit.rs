//! The commit protocol, in the order it runs:
//!
//! 1. no-op check: new contents equal to the old ones end the transaction
//!    with nothing written, renamed or synced;
//! 2. outside-writer check: the target must still be the inode and version
//!    the transaction began with;
//! 3. finish the temporary file: remaining bytes, owner and mode of the old
//!    target (new files were created with the configured mode minus umask);
//! 4. fsync the temporary file;
//! 5. rename it over the target (a target that cannot be renamed over, a
//!    bind-mounted file, is copied over in place instead: `crate::inplace`;
//!    that commit fsyncs the directory and releases the lock last, as with
//!    `Durability::None` below, and never takes part in group commit);
//! 6. release the lock, leaving the guard's marker at "unsynced": the
//!    version in place is not durable until a directory fsync covers its
//!    rename, so a next holder that vouches for it syncs first;
//! 7. wait for a directory fsync that started after the rename, shared
//!    with the other commits of this process waiting for one
//!    ([`crate::group_sync`]); `Ok` only once it succeeded.
//!
//! With `Durability::None`, steps 4 and 7 are skipped and the lock is
//! released last. Any failure before step 5 removes the temporary file and
//! leaves the target as it was. A batch keeps the lock until its directory
//! fsyncs are done (`crate::batch`).

use std::io;

use crate::error::Op;
use crate::fs::{Meta, Xattr};
use crate::group_sync::Cover;
use crate::guard::Locked;
use crate::handle::Handle;
use crate::mutants::{Mutant, active};
use crate::state::{BUFFER, NewContents, OldFile, Temp, Transaction};
use crate::{Durability, Error, Symlinks};

pub(crate) fn commit(tx: &mut Transaction<'_>) -> Result<(), Error> {
    match commit_released(tx)? {
        Some(owed) => owed.wait(tx.file),
        None => Ok(()),
    }
}

/// Steps 1 to 6; for a durable commit that renamed, step 7 is left to the
/// caller, the lock already released: [`commit`] waits for it at once, the
/// async runner on another thread, so that its next update's work overlaps
/// the directory fsync as another thread's would (`crate::async_handle`).
/// The commit is acknowledged only when step 7 succeeded.
pub(crate) fn commit_released(tx: &mut Transaction<'_>) -> Result<Option<DirSyncOwed>, Error> {
    if check(tx)? == Checked::Unchanged {
        return Ok(None);
    }
    stage(tx)?;
    if active(tx.file.inner.options.mutant, Mutant::UnlockBeforeRename) {
        drop(tx.locked.take());
    }
    let installed = install(tx)?;
    // An in-place commit has no rename for a group fsync to cover: it keeps
    // the lock to the end, its directory fsync its own.
    if !durable(tx.file) || installed == Installed::InPlace {
        return finish(tx).map(|()| None);
    }
    // The process that took the lock (checked when the commit began).
    let pid = tx.locked.as_ref().map(Locked::pid);
    release_renamed(tx);
    let selected = tx.file.inner.options.mutant;
    if active(selected, Mutant::NoDirFsync) {
        return Ok(None);
    }
    let cover = if active(selected, Mutant::CoverByRunningSync) {
        Cover::Running
    } else {
        Cover::Later
    };
    Ok(Some(DirSyncOwed { pid, cover }))
}

/// Step 7, owed by a durable commit whose rename is done and whose lock is
/// released: the commit is acknowledged only once it succeeded.
#[derive(Debug, Clone, Copy)]
#[must_use = "a renamed commit is acknowledged only after its directory fsync"]
pub(crate) struct DirSyncOwed {
    pid: Option<u32>,
    cover: Cover,
}

impl DirSyncOwed {
    /// Waits for a directory fsync of `file`'s directory that started
    /// after this call (shared with the process's other commits waiting at
    /// the same time), running it here if none is running.
    pub(crate) fn wait(self, file: &Handle) -> Result<(), Error> {
        self.wait_io(file).map_err(|e| self.error(file, e))
    }

    /// [`wait`](Self::wait) with the fsync's own error, for a caller that
    /// answers several commits with one wait (the async runner's).
    pub(crate) fn wait_io(self, file: &Handle) -> io::Result<()> {
        let inner = &*file.inner;
        let _sync = crate::trace::step!("sync_dir", inner.path);
        inner.dir.sync_shared(self.pid, self.cover)
    }

    /// The commit's error for a failed directory fsync.
    pub(crate) fn error(self, file: &Handle, error: io::Error) -> Error {
        Error::io(Op::SyncDir, &file.inner.dir_path, error)
    }
}

/// Step 6 for a durable commit: the lock goes right after the rename. The
/// marker left says "unsynced" (the rename is not durable yet), so the next
/// holder never vouches for this version without a directory fsync of its
/// own; the fsync this commit waits for covers whatever an earlier holder
/// owed, too.
fn release_renamed(tx: &mut Transaction<'_>) {
    let clean = active(tx.file.inner.options.mutant, Mutant::AckBeforeDirSync);
    if let Some(locked) = tx.locked.take() {
        locked.release_renamed(clean);
    }
}

/// Step 6 for one transaction: sync the directory (also when this handle
/// skips fsyncs, if an earlier transaction left a rename unsynced). The
/// guard's marker then tells the next holder whether the version in place
/// is durable.
pub(crate) fn finish(tx: &mut Transaction<'_>) -> Result<(), Error> {
    tx.unsynced = true;
    let owed = tx.locked.as_ref().is_some_and(Locked::owes_sync);
    let synced = sync_dir(tx.file, owed)?;
    if let Some(locked) = tx.locked.as_mut() {
        if synced {
            locked.synced();
        }
        locked.set_version_synced(durable(tx.file));
    }
    tx.unsynced = false;
    Ok(())
}

/// What steps 1 and 2 found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Checked {
    /// The new contents equal the old ones: nothing to write (the version
    /// in place is vouched for, see `vouch`).
    Unchanged,
    /// The new contents differ: stage, install and finish them.
    Changed,
}

/// Steps 1 and 2: refuses a transaction whose writes failed or whose target
/// an outside writer changed; says whether there is anything to do.
pub(crate) fn check(tx: &mut Transaction<'_>) -> Result<Checked, Error> {
    if tx.new.failed {
        return Err(tx.new.failed_error(tx.file));
    }
    // An outside writer's version is theirs, whether or not ours differs
    // from what we began with.
    let began = tx.old.as_ref().map(|old| &old.meta);
    if unchanged(tx)? {
        check_no_outside_writer(tx.file, began)?;
        vouch(tx)?;
        return Ok(Checked::Unchanged);
    }
    check_no_outside_writer(tx.file, began)?;
    Ok(Checked::Changed)
}

/// A no-op commit says the version in place is the caller's, so a durable
/// handle makes it durable first when it may not be: the directory, if an
/// earlier transaction renamed without syncing it (its sync failed, or it
/// died), and the file too, if it was committed without fsyncs
/// (`Durability::None`) or by a writer that did not finish.
fn vouch(tx: &mut Transaction<'_>) -> Result<(), Error> {
    let Some(locked) = tx.locked.as_mut() else {
        return Ok(());
    };
    if durable(tx.file) && locked.version_unsynced() {
        if let Some(old) = &tx.old {
            let path = &tx.file.inner.path;
            old.file.sync().map_err(|e| Error::io(Op::Sync, path, e))?;
        }
        if sync_dir(tx.file, true)? {
            locked.synced();
            locked.set_version_synced(true);
        }
    } else if locked.owes_sync() && sync_dir(tx.file, true)? {
        locked.synced();
    }
    Ok(())
}

/// Steps 3 and 4: the temporary file complete, with the old target's owner
/// and mode, and on stable storage.
pub(crate) fn stage(tx: &mut Transaction<'_>) -> Result<(), Error> {
    let file = tx.file;
    tx.new.flush(file, tx.locked.as_mut())?;
    // A target copied over in place keeps its own inode, owner, mode and
    // attributes: its staged file never takes its place.
    let in_place = crate::inplace::wanted(tx);
    let temp = tx
        .new
        .temp
        .as_mut()
        .expect("flush creates the temporary file");
    if let Some(old) = tx.old.as_ref().map(|old| old.meta).filter(|_| !in_place) {
        copy_owner_and_mode(file, temp, &old)?;
    }
    let options = &file.inner.options;
    let skip = active(options.mutant, Mutant::NoFileFsync)
        || active(options.mutant, Mutant::RenameBeforeFsync);
    if durable(file) && !skip {
        let _sync = crate::trace::step!("fsync", file.inner.path);
        sync(temp)?;
    }
    Ok(())
}

/// Step 5: the rename. Afterwards the file is the target's, no longer a
/// temporary file to clean up.
/// A target that cannot be renamed over (a bind-mounted file) is copied
/// over in place instead (see `crate::inplace`), unless
/// `Options::in_place_fallback` is off.
pub(crate) fn install(tx: &mut Transaction<'_>) -> Result<Installed, Error> {
    if crate::inplace::wanted(tx) {
        return crate::inplace::commit(tx).map(|()| Installed::InPlace);
    }
    let inner = &*tx.file.inner;
    let temp = tx.new.temp.as_ref().expect("staged before install");
    let _rename = crate::trace::step!("rename", inner.path);
    // Whether there is a target: our handle on it goes first, below.
    let had_target = tx.old.is_some();
    // Close our handle on the old version first: on Windows any open
    // handle, even one that allows deletion, keeps a rename from replacing
    // the file (an `OldReader` still alive holds it open too, and the
    // rename then waits for it like for another program's handle).
    tx.old = None;
    tx.new.existing = None;
    if let Err(error) = crate::replace::rename(
        &**inner.dir,
        (&temp.name, &temp.path),
        (&inner.name, &inner.path),
        inner.options.replace_retry,
        inner.options.mutant,
    ) {
        // A busy target (a bind-mounted file) is copied over in place; a
        // target held open by another program (Windows) is not.
        if let Error::Rename { source, .. } = &error {
            if crate::inplace::after_rename_error(tx.file, had_target, source) {
                return crate::inplace::commit(tx).map(|()| Installed::InPlace);
            }
        }
        return Err(error);
    }
    let mut temp = tx.new.temp.take().expect("still there after the rename");
    if durable(tx.file) && active(inner.options.mutant, Mutant::RenameBeforeFsync) {
        sync(&mut temp)?;
    }
    Ok(Installed::Renamed)
}

/// How step 5 put the new version in place.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Installed {
    /// Renamed over the target: durable once a directory fsync covers it.
    Renamed,
    /// Copied over the target in place (`crate::inplace`), which synced
    /// the target and removed its record.
    InPlace,
}

/// Step 6: the rename made durable, when the handle's durability asks for
/// it or `owed` says an earlier rename needs it. Returns whether it synced.
pub(crate) fn sync_dir(file: &Handle, owed: bool) -> Result<bool, Error> {
    let inner = &*file.inner;
    let wanted = (durable(file) || owed) && !active(inner.options.mutant, Mutant::NoDirFsync);
    if wanted {
        let _sync = crate::trace::step!("sync_dir", inner.path);
        inner
            .dir
            .sync()
            .map_err(|e| Error::io(Op::SyncDir, &inner.dir_path, e))?;
    }
    Ok(wanted)
}

pub(crate) fn durable(file: &Handle) -> bool {
    file.inner.options.durability == Durability::Full
}

/// Whether the new contents equal the old ones: lengths first; when both
/// are in memory (new contents up to 64 KiB), their CRC-32s, then the bytes;
/// otherwise the bytes chunk by chunk, stopping at the first difference. (A
/// CRC of streamed contents would cost a pass over every byte of every
/// commit, about 6 ms per 64 MiB, for a check that usually stops at the
/// first chunk.) A missing file never equals new contents, even empty ones.
fn unchanged(tx: &Transaction<'_>) -> Result<bool, Error> {
    let Some(old) = &tx.old else {
        return Ok(false);
    };
    if old.meta.size != tx.new.len {
        return Ok(false);
    }
    if let (Some(bytes), None) = (old.cached(), &tx.new.temp) {
        let new = tx.new.buf.as_slice();
        return Ok(crc32fast::hash(bytes) == crc32fast::hash(new) && bytes == new);
    }
    let path = &tx.file.inner.path;
    same_bytes(old, &tx.new).map_err(|e| Error::io(Op::Read, path, e))
}

/// Compares the old file with the new contents chunk by chunk, stopping at
/// the first difference.
fn same_bytes(old: &OldFile, new: &NewContents) -> io::Result<bool> {
    let mut a = vec![0; BUFFER];
    let mut b = vec![0; BUFFER];
    let mut offset = 0u64;
    let temp_len = new.len - new.buf.len() as u64;
    while offset < new.len {
        let want = BUFFER.min((new.len - offset) as usize);
        crate::fs::read_exact_at(|buf, at| old.file.read_at(buf, at), &mut a[..want], offset)?;
        // The new contents: the temporary file, then the buffered tail.
        let mut filled = 0;
        if offset < temp_len {
            let from_temp = want.min((temp_len - offset) as usize);
            if let Some(temp) = &new.temp {
                crate::fs::read_exact_at(
                    |buf, at| temp.file.read_at(buf, at),
                    &mut b[..from_temp],
                    offset,
                )?;
            }
            filled = from_temp;
        }
        if filled < want {
            let start = (offset + filled as u64 - temp_len) as usize;
            b[filled..want].copy_from_slice(&new.buf[start..start + want - filled]);
        }
        if a[..want] != b[..want] {
            return Ok(false);
        }
        offset += want as u64;
    }
    Ok(true)
}

/// Someone not using txfile replaced, removed, created or rewrote the target
/// since the transaction began: keep their version.
fn check_no_outside_writer(file: &Handle, began: Option<&Meta>) -> Result<(), Error> {
    let inner = &*file.inner;
    let now = match inner.options.symlinks {
        Symlinks::Replace => inner.dir.stat(&inner.name),
        Symlinks::Follow | Symlinks::Reject => inner.dir.lstat(&inner.name),
    }
    .map_err(|e| Error::io(Op::Stat, &inner.path, e))?;
    let same = match (began, now) {
        (None, None) => true,
        (Some(began), Some(now)) => began.same_version(&now),
        _ => false,
    };
    if same {
        Ok(())
    } else {
        Err(Error::Conflict {
            path: inner.path.clone(),
        })
    }
}

/// Gives the temporary file the old target's owner, extended attributes and
/// mode. An attribute the process may not set is dropped, unless
/// [`Options::require_xattrs`](crate::Options::require_xattrs) makes that
/// an error.
fn copy_owner_and_mode(file: &Handle, temp: &mut Temp, old: &Meta) -> Result<(), Error> {
    let refused = temp
        .file
        .set_owner_and_mode(old.uid, old.gid, old.mode, &temp.xattrs)
        .map_err(|e| Error::io(Op::SetPermissions, &temp.path, e))?;
    match refused.into_iter().next() {
        Some(refused) if file.inner.options.require_xattrs => Err(Error::Xattr {
            path: file.inner.path.clone(),
            name: Xattr::name_text(&refused.name),
            source: refused.error,
        }),
        _ => Ok(()),
    }
}

/// One fsync, never retried: after a failure the kernel may have dropped the
/// dirty pages and marked them clean, so a second fsync could report success
/// for data that is gone ("fsyncgate").
pub(crate) fn sync(temp: &mut Temp) -> Result<(), Error> {
    temp.file
        .sync()
        .map_err(|e| Error::io(Op::Sync, &temp.path, e))
}
