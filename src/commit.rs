//! The commit protocol, in the order it runs:
//!
//! 1. no-op check: new contents equal to the old ones end the transaction
//!    with nothing written, renamed or synced;
//! 2. outside-writer check: the target must still be the inode and version
//!    the transaction began with;
//! 3. finish the temporary file: remaining bytes, owner and mode of the old
//!    target (new files were created with the configured mode minus umask);
//! 4. fsync the temporary file;
//! 5. rename it over the target;
//! 6. fsync the directory;
//! 7. release the lock (dropping the transaction).
//!
//! With `Durability::None`, steps 4 and 6 are skipped. Any failure before
//! step 5 removes the temporary file and leaves the target as it was.

use std::io;

use crate::error::Op;
use crate::fs::Meta;
use crate::guard::Locked;
use crate::transaction::{BUFFER, Existing, NewContents, OldFile, Temp, Transaction};
use crate::{Durability, Error, Symlinks, TxFile, names};

/// A deliberately broken commit protocol, for showing that the crash tests
/// catch each classic mistake. Never use one for real data.
#[doc(hidden)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[cfg_attr(not(feature = "sim"), allow(dead_code, unreachable_pub))]
pub enum Mutant {
    /// The correct protocol.
    #[default]
    None,
    /// Skip the fsync of the temporary file.
    NoFileFsync,
    /// Skip the fsync of the directory after the rename.
    NoDirFsync,
    /// Rename first, fsync the (renamed) file after.
    RenameBeforeFsync,
    /// Sweep every hidden file that starts with the target's name.
    SweepForeignTemp,
    /// Release the lock before the rename.
    UnlockBeforeRename,
    /// Carry on as if a failed fsync had succeeded.
    IgnoreFsyncError,
    /// Trust a lock on a guard file that was deleted or replaced.
    NoGuardIdentityCheck,
    /// Batch: skip the fsync of the journal (the commit point).
    BatchNoJournalFsync,
    /// Batch: rename the members before the journal is written.
    BatchRenameBeforeJournal,
    /// Batch recovery: roll forward whatever records of a torn journal parse.
    BatchIgnoreJournalChecksum,
    /// Batch recovery: act on the journal as it reads, without first making
    /// that decision durable (wrong when an earlier fsync of the journal
    /// failed: the records read may exist only in the page cache).
    BatchRecoveryTrustsCache,
    /// Use whatever sits at the guard path as the guard, writing the
    /// marker into it (a `Gemfile.lock`, another target).
    MarkForeignGuard,
    /// Batch recovery: act on every record of a journal, without checking
    /// that the record's member has the journal under its own name (so a
    /// planted journal reaches into other directories).
    TrustForeignJournal,
    /// Take only the lock kind of the chosen `LockStyle` (`flock` or POSIX),
    /// as txfile once did: users of the other style are not excluded.
    OneLockKind,
    /// A handle used in a forked child keeps using the parent's guard
    /// descriptor and in-process state.
    NoForkCheck,
    /// NFS: open the target without first revalidating its directory, so a
    /// name cached before another host's rename can open a replaced version
    /// (only the NFS test, `tests/nfs/run.sh --mode no-nfs-revalidate`,
    /// can show it).
    NoNfsRevalidate,
}

pub(crate) fn mutant(file: &TxFile) -> Mutant {
    mutant_of(&file.inner.options)
}

#[cfg(feature = "sim")]
pub(crate) fn mutant_of(options: &crate::Options) -> Mutant {
    options.mutant
}

/// Without the `sim` feature the protocol is always the correct one, and
/// the checks below fold away.
#[cfg(not(feature = "sim"))]
#[inline(always)]
pub(crate) fn mutant_of(_: &crate::Options) -> Mutant {
    Mutant::None
}

/// Whether `name` is a temporary file that a dead writer of `file`'s target
/// left behind.
pub(crate) fn is_stale_temp(file: &TxFile, name: &str) -> bool {
    #[cfg(feature = "sim")]
    if mutant(file) == Mutant::SweepForeignTemp {
        let stem = file.inner.temp_prefix.trim_end_matches('.');
        return name.starts_with(stem) && name.contains(".t");
    }
    names::is_temp_of(&file.inner.temp_prefix, name)
}

/// Creates the temporary file. When it will replace an existing target it
/// is created with the target's permission bits (the umask can only narrow
/// them), so the new contents are never more exposed than the old, and at
/// commit it gets the target's owner, access ACL and exact mode (usually
/// with no call at all); a new target is created with the configured mode,
/// and only creation applies the umask. A target with an ACL has its ACL
/// mask in its group bits, not the owning group's rights: its temporary
/// file starts with the owner's bits only, until the ACL is copied.
pub(crate) fn create_temp(file: &TxFile, existing: Option<&Existing>) -> Result<Temp, Error> {
    let inner = &*file.inner;
    let acl = match existing {
        Some(existing) => existing
            .file
            .acl()
            .map_err(|e| Error::io(Op::Read, &inner.path, e))?,
        None => None,
    };
    let mode = match (existing, &acl) {
        (None, _) => inner.options.mode,
        (Some(existing), None) => existing.mode & 0o777,
        (Some(existing), Some(_)) => existing.mode & 0o700,
    };
    let (name, handle) = inner
        .dir
        .create_temp(&inner.temp_prefix, names::temp_suffix(), mode)
        .map_err(|e| Error::io(Op::CreateTemp, &inner.dir_path, e))?;
    Ok(Temp {
        path: inner.dir_path.join(&name),
        name,
        file: handle,
        acl,
    })
}

pub(crate) fn commit(tx: &mut Transaction<'_>) -> Result<(), Error> {
    if !check(tx)? {
        return Ok(());
    }
    stage(tx)?;
    if mutant(tx.file) == Mutant::UnlockBeforeRename {
        drop(tx.locked.take());
    }
    install(tx)?;
    finish(tx)
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

/// Steps 1 and 2: refuses a transaction whose writes failed or whose target
/// an outside writer changed; `Ok(false)` when there is nothing to do.
pub(crate) fn check(tx: &mut Transaction<'_>) -> Result<bool, Error> {
    if tx.new.failed {
        return Err(tx.new.failed_error(tx.file));
    }
    // An outside writer's version is theirs, whether or not ours differs
    // from what we began with.
    let began = tx.old.as_ref().map(|old| &old.meta);
    if unchanged(tx)? {
        check_no_outside_writer(tx.file, began)?;
        vouch(tx)?;
        return Ok(false);
    }
    check_no_outside_writer(tx.file, began)?;
    Ok(true)
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
    let temp = tx
        .new
        .temp
        .as_mut()
        .expect("flush creates the temporary file");
    if let Some(old) = tx.old.as_ref().map(|old| old.meta) {
        copy_owner_and_mode(temp, &old)?;
    }
    let mutant = mutant(file);
    if durable(file) && mutant != Mutant::NoFileFsync && mutant != Mutant::RenameBeforeFsync {
        let _sync = crate::trace::step!("fsync", file.inner.path);
        sync(temp, mutant)?;
    }
    Ok(())
}

/// Step 5: the rename. Afterwards the file is the target's, no longer a
/// temporary file to clean up.
pub(crate) fn install(tx: &mut Transaction<'_>) -> Result<(), Error> {
    let inner = &*tx.file.inner;
    let temp = tx.new.temp.as_ref().expect("staged before install");
    let _rename = crate::trace::step!("rename", inner.path);
    // Close our handle on the old version first: on Windows any open
    // handle, even one that allows deletion, keeps a rename from replacing
    // the file (an `OldReader` still alive holds it open too, and the
    // rename then waits for it like for another program's handle).
    tx.old = None;
    tx.new.existing = None;
    crate::replace::rename(
        &**inner.dir,
        (&temp.name, &temp.path),
        (&inner.name, &inner.path),
        inner.options.replace_retry,
    )?;
    let mut temp = tx.new.temp.take().expect("still there after the rename");
    let mutant = mutant(tx.file);
    if durable(tx.file) && mutant == Mutant::RenameBeforeFsync {
        sync(&mut temp, mutant)?;
    }
    Ok(())
}

/// Step 6: the rename made durable, when the handle's durability asks for
/// it or `owed` says an earlier rename needs it. Returns whether it synced.
pub(crate) fn sync_dir(file: &TxFile, owed: bool) -> Result<bool, Error> {
    let inner = &*file.inner;
    let wanted = (durable(file) || owed) && mutant(file) != Mutant::NoDirFsync;
    if wanted {
        let _sync = crate::trace::step!("sync_dir", inner.path);
        inner
            .dir
            .sync()
            .map_err(|e| Error::io(Op::SyncDir, &inner.dir_path, e))?;
    }
    Ok(wanted)
}

pub(crate) fn durable(file: &TxFile) -> bool {
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
        read_exact_at(|buf, at| old.file.read_at(buf, at), &mut a[..want], offset)?;
        // The new contents: the temporary file, then the buffered tail.
        let mut filled = 0;
        if offset < temp_len {
            let from_temp = want.min((temp_len - offset) as usize);
            if let Some(temp) = &new.temp {
                read_exact_at(
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

/// Fills `buf` from `offset` with a `pread`-like function.
fn read_exact_at(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Someone not using txfile replaced, removed, created or rewrote the target
/// since the transaction began: keep their version.
fn check_no_outside_writer(file: &TxFile, began: Option<&Meta>) -> Result<(), Error> {
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

fn copy_owner_and_mode(temp: &mut Temp, old: &Meta) -> Result<(), Error> {
    temp.file
        .set_owner_and_mode(old.uid, old.gid, old.mode, temp.acl.as_deref())
        .map_err(|e| Error::io(Op::SetPermissions, &temp.path, e))
}

/// One fsync, never retried: after a failure the kernel may have dropped the
/// dirty pages and marked them clean, so a second fsync could report success
/// for data that is gone ("fsyncgate").
pub(crate) fn sync(temp: &mut Temp, mutant: Mutant) -> Result<(), Error> {
    match temp.file.sync() {
        Ok(()) => Ok(()),
        Err(_) if mutant == Mutant::IgnoreFsyncError => Ok(()),
        Err(e) => Err(Error::io(Op::Sync, &temp.path, e)),
    }
}
