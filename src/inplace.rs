//! Committing over a target that cannot be renamed over: a file
//! bind-mounted over another, as containers mount single files (`docker
//! run -v ./config.json:/app/config.json`, a Kubernetes `subPath`).
//! `rename` onto it fails with `EBUSY`, so the new contents are copied into
//! the target's own inode, under an intent record that makes the copy
//! crash-safe. In the order it runs:
//!
//! 1. stage: the new contents in a temporary file in the target's
//!    directory, as for a rename, fsynced (always: without it a power loss
//!    could leave a half-copied target with nothing to finish it from);
//! 2. record: `.<name>.txinplace`, created `0600` with `O_EXCL`, holding the
//!    staged file's name, the target's, the new length and the CRC-32 of
//!    the new contents, all under a CRC; fsync it, then fsync the directory
//!    (both names durable). **This is the commit point**: from here on, the
//!    new version is the one that will be there.
//! 3. copy: the staged contents over the target, from offset 0, then
//!    `ftruncate` to the new length, then fsync the target;
//! 4. cleanup: remove the record, fsync the directory, remove the staged
//!    file.
//!
//! Invariants, which the crash tests check at every operation:
//! - until the record is durable, the target has not been written: a
//!   missing or torn record (its CRC does not match) means nothing
//!   happened, and recovery removes it (the staged file is then an
//!   ordinary stale temporary file, which the sweep removes);
//! - while a complete record exists, its staged file exists and holds
//!   exactly the new contents (durably: fsynced before the record);
//! - the record is removed only after the target holds the new contents
//!   durably.
//!
//! Recovery (roll forward) runs at `begin`, under the exclusive lock,
//! whenever the guard says the last holder may not have finished (the
//! "unclean" marker, and a process's first lock, as for the sweep), before
//! the sweep. It repeats steps 3 and 4 from the record; both are
//! idempotent, so a crash during recovery is recovered the same way.
//!
//! A lock-free [`TxFile::read`](crate::TxFile::read) cannot tell a half-copied target from a
//! complete one, so a target that `fstat` shows is the root of a mount is
//! read under the shared lock instead: no writer is then copying, and a
//! record left by one that died names the staged file, which holds the
//! committed version.
//!
//! Record format (integers little-endian): magic `TXFI\x01`; staged name
//! and target name, each a u16 length and UTF-8 bytes; the new length
//! (u64); the CRC-32 of the new contents (u32); the CRC-32 of everything
//! before it (u32).
//!
//! Never-harm rules, as for batch journals: a record is only read if it is
//! a regular file of this user that nobody else may read or write (`0600`,
//! as created); it is only acted on if it names this target and a staged
//! file that is one of this target's temporary files; anything else under
//! the record's name is left alone.

use std::io;

use camino::Utf8PathBuf;

use crate::error::Op;
use crate::frame::{Cursor, Rejected, put_text, seal};
use crate::fs::remove_if_present;
use crate::fs::{read_all, write_all};
use crate::guard::{Mode, Wait};
use crate::handle::Handle;
use crate::journal::{Found, classify};
use crate::mutants::{Mutant, active};
use crate::state::{BUFFER, Transaction};
use crate::{Error, names};

const MAGIC: &[u8] = b"TXFI\x01";
const MAX_NAME: usize = 255;

/// What an in-place commit is about to do: copy `staged` over `target`
/// (both in the target's directory), `len` bytes whose CRC-32 is `crc`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) staged: String,
    pub(crate) target: String,
    pub(crate) len: u64,
    pub(crate) crc: u32,
}

pub(crate) fn encode(record: &Record) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    for field in [&record.staged, &record.target] {
        put_text(&mut out, field);
    }
    out.extend(record.len.to_le_bytes());
    out.extend(record.crc.to_le_bytes());
    seal(&mut out, 0);
    out
}

/// Decodes a record, exactly as `encode` writes it: any damage at all (a
/// torn write, a flipped bit, a byte too many) is `Rejected`.
pub(crate) fn decode(bytes: &[u8]) -> Result<Record, Rejected> {
    let mut cursor = Cursor::new(bytes);
    cursor.magic(MAGIC)?;
    let staged = cursor.text(MAX_NAME)?.to_owned();
    let target = cursor.text(MAX_NAME)?.to_owned();
    let len = cursor.u64()?;
    let crc = cursor.u32()?;
    cursor.sealed(0, "record checksum mismatch")?;
    if !cursor.is_done() {
        return Err(Rejected("trailing bytes"));
    }
    Ok(Record {
        staged,
        target,
        len,
        crc,
    })
}

/// The decoder of the `InPlaceTrustsTornRecord` mutant (see
/// `src/mutants.rs`): whatever a torn write left missing reads as zeros,
/// and neither the magic nor the checksum is looked at.
#[cfg(txfile_mutants)]
mod lenient {
    use super::{Cursor, MAGIC, MAX_NAME, Record, Rejected};

    pub(super) fn decode(bytes: &[u8]) -> Result<Record, Rejected> {
        let mut padded = bytes.to_vec();
        padded.resize(bytes.len() + 2 * MAX_NAME + 64, 0);
        let mut cursor = Cursor::new(&padded);
        cursor.take(MAGIC.len())?;
        let staged = name(&mut cursor)?;
        let target = name(&mut cursor)?;
        Ok(Record {
            staged,
            target,
            len: cursor.u64()?,
            crc: cursor.u32()?,
        })
    }

    /// A name of any length up to the maximum, also none.
    fn name(cursor: &mut Cursor<'_>) -> Result<String, Rejected> {
        let len = usize::from(cursor.u16()?);
        if len > MAX_NAME {
            return Err(Rejected("bad field length"));
        }
        let bytes = cursor.take(len)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| Rejected("field is not UTF-8"))
    }
}

/// The record's name for target `name`.
fn record_name(file: &Handle) -> String {
    names::in_place_name(&file.inner.name)
}

fn record_path(file: &Handle) -> Utf8PathBuf {
    file.inner.dir_path.join(record_name(file))
}

/// Whether `file` runs the `InPlaceTrustsTornRecord` mutant.
fn trusts_torn(file: &Handle) -> bool {
    active(file.inner.options.mutant, Mutant::InPlaceTrustsTornRecord)
}

/// Whether `tx` must commit in place from the start: its target was the
/// root of a mount when the transaction opened it.
pub(crate) fn wanted(tx: &Transaction<'_>) -> bool {
    tx.file.inner.options.in_place_fallback
        && tx.old.as_ref().is_some_and(|old| old.meta.mount_root)
}

/// Whether a rename that failed with `error` should be retried in place:
/// the target exists (`had_target`: the transaction opened one) and is
/// busy (a mount point the opened file's `fstat` did not show, as on
/// kernels before 5.8).
pub(crate) fn after_rename_error(file: &Handle, had_target: bool, error: &io::Error) -> bool {
    file.inner.options.in_place_fallback
        && had_target
        && error.kind() == io::ErrorKind::ResourceBusy
}

/// Commits the staged temporary file of `tx` by copying it over the
/// target (steps 1 to 4 of the module docs). An error before the commit
/// point leaves the target untouched (the caller's drop removes the
/// staged file); an error after it leaves the record and the staged file
/// for the next `begin` to finish, and the guard's marker set so that it
/// does.
pub(crate) fn commit(tx: &mut Transaction<'_>) -> Result<(), Error> {
    let file = tx.file;
    let inner = &*file.inner;
    let mutant = file.inner.options.mutant;
    let temp = tx.new.temp.as_mut().expect("staged before install");
    // Step 1: the staged file is durable, whatever the handle's durability
    // (`stage` synced it only for `Durability::Full`).
    if file.inner.options.durability != crate::Durability::Full
        || active(mutant, Mutant::RenameBeforeFsync)
    {
        temp.file
            .sync()
            .map_err(|e| Error::io(Op::Sync, &temp.path, e))?;
    }
    let (len, crc) = checksum(|buf, at| temp.file.read_at(buf, at), tx.new.len)
        .map_err(|e| Error::io(Op::Read, &temp.path, e))?;
    let record = Record {
        staged: temp.name.clone(),
        target: inner.name.clone(),
        len,
        crc,
    };
    // From here on the marker stays "unclean" unless the commit finishes:
    // a record may exist that the next holder must find.
    tx.unsynced = true;
    let _copy = crate::trace::step!("in_place", inner.path);
    // Step 2, the commit point.
    write_record(file, &record)?;
    // The staged file now belongs to the record: an error below must not
    // remove it with the transaction.
    let staged = tx.new.temp.take().expect("staged before install");
    copy(file, &record, |buf, at| staged.file.read_at(buf, at))?;
    drop(staged);
    cleanup(file, &record)
}

/// Step 2: writes and syncs the record and its name. On an error nothing
/// has been copied yet: the record is removed again (best effort; one left
/// behind torn is removed by recovery, one left whole is rolled forward,
/// both before the target is read again).
fn write_record(file: &Handle, record: &Record) -> Result<(), Error> {
    let inner = &*file.inner;
    let name = record_name(file);
    let path = record_path(file);
    let mutant = inner.options.mutant;
    // `O_EXCL`: whatever sits at the name already (a record an earlier
    // commit failed to remove, someone's own file) is neither used nor
    // removed here.
    let mut handle = inner
        .dir
        .create_new(&name, 0o600)
        .map_err(|e| Error::io(Op::CreateTemp, &path, e))?;
    let result = (|| {
        write_all(handle.as_mut(), &encode(record)).map_err(|e| Error::io(Op::Write, &path, e))?;
        if active(mutant, Mutant::InPlaceCopyBeforeRecord) {
            return Ok(());
        }
        handle.sync().map_err(|e| Error::io(Op::Sync, &path, e))?;
        inner
            .dir
            .sync()
            .map_err(|e| Error::io(Op::SyncDir, &inner.dir_path, e))
    })();
    if result.is_err() {
        let _ = inner.dir.remove_file(&name);
    }
    result
}

/// Step 3: copies `len` bytes from `read_at` over the target, cuts it to
/// that length and syncs it.
fn copy(
    file: &Handle,
    record: &Record,
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
) -> Result<(), Error> {
    let inner = &*file.inner;
    let path = &inner.path;
    let mut target = inner
        .dir
        .open_write(&inner.name)
        .map_err(|e| Error::io(Op::Open, path, e))?
        .ok_or_else(|| {
            Error::io(
                Op::Open,
                path,
                io::Error::new(io::ErrorKind::NotFound, "the target disappeared"),
            )
        })?;
    let mut buf = vec![0; BUFFER];
    let mut offset = 0;
    while offset < record.len {
        let want = BUFFER.min((record.len - offset) as usize);
        crate::fs::read_exact_at(&read_at, &mut buf[..want], offset)
            .map_err(|e| Error::io(Op::Read, inner.dir_path.join(&record.staged), e))?;
        write_all(target.as_mut(), &buf[..want]).map_err(|e| Error::io(Op::Write, path, e))?;
        offset += want as u64;
    }
    target
        .set_len(record.len)
        .map_err(|e| Error::io(Op::Write, path, e))?;
    if !active(inner.options.mutant, Mutant::InPlaceNoTargetFsync) {
        target.sync().map_err(|e| Error::io(Op::Sync, path, e))?;
    }
    Ok(())
}

/// Step 4: the record goes (durably: the target is complete), then the
/// staged file.
fn cleanup(file: &Handle, record: &Record) -> Result<(), Error> {
    let inner = &*file.inner;
    remove_if_present(&**inner.dir, &record_name(file), &record_path(file))?;
    inner
        .dir
        .sync()
        .map_err(|e| Error::io(Op::SyncDir, &inner.dir_path, e))?;
    remove_if_present(
        &**inner.dir,
        &record.staged,
        &inner.dir_path.join(&record.staged),
    )
}

/// Length and CRC-32 of the first `len` bytes read through `read_at`.
fn checksum(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    len: u64,
) -> io::Result<(u64, u32)> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0; BUFFER];
    let mut offset = 0;
    while offset < len {
        let want = BUFFER.min((len - offset) as usize);
        crate::fs::read_exact_at(&read_at, &mut buf[..want], offset)?;
        hasher.update(&buf[..want]);
        offset += want as u64;
    }
    Ok((len, hasher.finalize()))
}

/// What sits under the record's name, read and judged.
enum Pending {
    /// Nothing, or something txfile never wrote (left alone).
    None,
    /// A record that does not decode, or not for this target: nothing was
    /// copied under it.
    Torn,
    /// A complete record of this target.
    Record(Record),
}

/// Looks for a record of this target.
fn pending(file: &Handle) -> Result<Pending, Error> {
    let inner = &*file.inner;
    let name = record_name(file);
    let path = record_path(file);
    let Some(meta) = inner
        .dir
        .lstat(&name)
        .map_err(|e| Error::io(Op::Stat, &path, e))?
    else {
        return Ok(Pending::None);
    };
    match classify(inner.fs.as_ref(), &meta) {
        Found::Ours => {}
        Found::Foreign => return Ok(Pending::None),
        Found::Roots => {
            return Err(Error::io(
                Op::Open,
                &path,
                io::Error::new(
                    io::ErrorKind::PermissionDenied,
                    "an in-place commit by root was interrupted here; a transaction on this file as root finishes it",
                ),
            ));
        }
    }
    let Some(handle) = inner
        .dir
        .open_write(&name)
        .map_err(|e| Error::io(Op::Open, &path, e))?
    else {
        return Ok(Pending::None);
    };
    let mut bytes = Vec::new();
    read_all(|buf, at| handle.read_at(buf, at), &mut bytes, meta.size)
        .map_err(|e| Error::io(Op::Read, &path, e))?;
    #[cfg(txfile_mutants)]
    let decoded = if trusts_torn(file) {
        lenient::decode(&bytes)
    } else {
        decode(&bytes)
    };
    #[cfg(not(txfile_mutants))]
    let decoded = decode(&bytes);
    let Ok(record) = decoded else {
        return Ok(Pending::Torn);
    };
    let own = record.target == inner.name && names::is_temp_of(&inner.temp_prefix, &record.staged);
    Ok(if own || trusts_torn(file) {
        Pending::Record(record)
    } else {
        Pending::Torn
    })
}

/// Finishes (or, for a torn record, forgets) an in-place commit a crash or
/// an error interrupted. Called under the exclusive lock, before the sweep
/// (which would remove the staged file as stale).
pub(crate) fn recover(file: &Handle) -> Result<(), Error> {
    let inner = &*file.inner;
    match pending(file)? {
        Pending::None => Ok(()),
        Pending::Torn => remove_if_present(&**inner.dir, &record_name(file), &record_path(file)),
        Pending::Record(record) => {
            let _recover = crate::trace::step!("in_place_recover", inner.path);
            let staged_path = inner.dir_path.join(&record.staged);
            match inner
                .dir
                .open_read(&record.staged)
                .map_err(|e| Error::io(Op::Open, &staged_path, e))?
            {
                Some(staged) => {
                    if !trusts_torn(file) {
                        verify(|buf, at| staged.read_at(buf, at), &record)
                            .map_err(|e| Error::io(Op::Read, &staged_path, e))?;
                    }
                    copy(file, &record, |buf, at| staged.read_at(buf, at))?;
                }
                // Both names became durable together at the commit point's
                // directory fsync, and the staged file goes only after the
                // record's removal is durable: a record without its staged
                // file was never committed (the staged file's entry was
                // lost at a crash before that fsync), and nothing was
                // copied under it.
                None => {
                    return remove_if_present(&**inner.dir, &record_name(file), &record_path(file));
                }
            }
            cleanup(file, &record)
        }
    }
}

/// Checks that `read_at` holds exactly the record's contents.
fn verify(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    record: &Record,
) -> io::Result<()> {
    let mut end = [0u8; 1];
    let (_, crc) = checksum(&read_at, record.len)?;
    if crc != record.crc || read_at(&mut end, record.len)? != 0 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "the contents do not match the in-place commit's record (length or CRC)",
        ));
    }
    Ok(())
}

/// [`TxFile::read`](crate::TxFile::read) of a target that is the root of a mount: under the
/// shared lock, so that no copy is under way; from the staged file if a
/// writer died after the commit point.
pub(crate) fn read(file: &Handle) -> Result<Option<Vec<u8>>, Error> {
    let wait = Wait::within(file.inner.options.timeout);
    let shared = match file.lock(Mode::Shared, wait) {
        Ok(Some(shared)) => Some(shared),
        Ok(None) => {
            return Err(Error::Timeout {
                path: file.inner.path.clone(),
                timeout: file.inner.options.timeout.unwrap_or_default(),
            });
        }
        // This thread is inside a transaction on the target: nobody else
        // is copying, and its `begin` finished any interrupted copy.
        Err(Error::HeldByThisThread { .. }) => None,
        Err(e) => return Err(e),
    };
    let record = match shared {
        Some(_) => pending(file)?,
        None => Pending::None,
    };
    if let Pending::Record(record) = record {
        let inner = &*file.inner;
        let staged_path = inner.dir_path.join(&record.staged);
        if let Some(staged) = inner
            .dir
            .open_read(&record.staged)
            .map_err(|e| Error::io(Op::Open, &staged_path, e))?
        {
            let mut bytes = Vec::new();
            read_all(|buf, at| staged.read_at(buf, at), &mut bytes, record.len)
                .map_err(|e| Error::io(Op::Read, &staged_path, e))?;
            if bytes.len() as u64 == record.len && crc32fast::hash(&bytes) == record.crc {
                return Ok(Some(bytes));
            }
        }
    }
    match crate::stale::open_current(file)? {
        Some(mut old) => Ok(Some(old.take_bytes(&file.inner.path)?)),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Record {
        Record {
            staged: ".config.AbCdEfGh.txtmp".into(),
            target: "config".into(),
            len: 1 << 20,
            crc: 0xDEAD_BEEF,
        }
    }

    #[test]
    fn round_trips() {
        assert_eq!(decode(&encode(&sample())), Ok(sample()));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_torn() {
        let bytes = encode(&sample());
        crate::frame::tests::every_truncation_and_bit_flip_is_refused(&bytes, decode);
        let mut long = bytes.clone();
        long.push(0);
        assert_eq!(decode(&long), Err(Rejected("trailing bytes")));
    }

    #[cfg(txfile_mutants)]
    #[test]
    fn the_trusting_mutant_reads_a_torn_tail_as_zeros() {
        let bytes = encode(&sample());
        let torn = &bytes[..bytes.len() - 16];
        assert_eq!(decode(torn), Err(Rejected("truncated")));
        let trusted = super::lenient::decode(torn).expect("lenient");
        assert_eq!((trusted.target.as_str(), trusted.len), ("config", 0));
    }
}
