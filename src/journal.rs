//! The intent journal of a batch commit, and recovery from it.
//!
//! A batch commit stages every member's temporary file, then makes one
//! journal file reachable from every changed member under the name
//! `.<name>.txjournal` beside it (hard links: members share a filesystem),
//! then writes the journal's records and fsyncs it. That fsync is the commit
//! point: a journal that decodes (every record's CRC and the whole file's CRC
//! match) means "committed, roll forward"; any other journal means "never
//! committed, roll back". A commit whose journal fsync fails voids the
//! journal by appending one byte and fsyncing again (trailing bytes never
//! decode) before it removes anything.
//!
//! Every `begin` on a member stats its journal name (one `lstat`), before it
//! sweeps stale temporary files. Recovery:
//! - torn journal: remove this member's name; the sweep that follows removes
//!   this member's staged file. Other members do the same when they are next
//!   used, since they find the same torn journal under their own names.
//! - complete journal: with every member's lock, rename each staged file
//!   that still exists over its target (a missing one was renamed already),
//!   fsync the directories, then remove every name of the journal.
//!
//! Both are idempotent, so a crash during recovery is recovered from the
//! same way.
//!
//! Format (integers little-endian): magic `TXFJ\x01`; record count (u32);
//! per record: directory, target name and staged name, each a u16 length
//! and UTF-8 bytes, then the CRC-32 of the record's bytes (u32); finally the
//! CRC-32 of everything before it (u32).

use std::collections::BTreeMap;
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Op;
use crate::fs::Fs;
use crate::guard::{Mode, Wait};
use crate::{Error, Options, TxFile};

const MAGIC: &[u8] = b"TXFJ\x01";
/// More members than this in one batch is refused; it also bounds decoding.
pub(crate) const MAX_RECORDS: usize = 4096;
const MAX_DIR: usize = 4096;
const MAX_NAME: usize = 255;

/// One member of a committed batch: `dir/staged` replaces `dir/target`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) dir: Utf8PathBuf,
    pub(crate) target: String,
    pub(crate) staged: String,
}

impl Record {
    pub(crate) fn target_path(&self) -> Utf8PathBuf {
        self.dir.join(&self.target)
    }

    pub(crate) fn staged_path(&self) -> Utf8PathBuf {
        self.dir.join(&self.staged)
    }

    pub(crate) fn journal_path(&self) -> Utf8PathBuf {
        self.dir.join(crate::names::journal_name(&self.target))
    }
}

pub(crate) fn encode(records: &[Record]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend((records.len() as u32).to_le_bytes());
    for record in records {
        let start = out.len();
        for field in [record.dir.as_str(), &record.target, &record.staged] {
            out.extend((field.len() as u16).to_le_bytes());
            out.extend(field.as_bytes());
        }
        let crc = crc32fast::hash(&out[start..]);
        out.extend(crc.to_le_bytes());
    }
    let crc = crc32fast::hash(&out);
    out.extend(crc.to_le_bytes());
    out
}

/// Why a journal does not decode: it was torn by a crash, or is not one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Torn(pub(crate) &'static str);

struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], Torn> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len());
        let end = end.ok_or(Torn("truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn u16(&mut self) -> Result<usize, Torn> {
        let b = self.take(2)?;
        Ok(usize::from(u16::from_le_bytes([b[0], b[1]])))
    }

    fn u32(&mut self) -> Result<u32, Torn> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn text(&mut self, max: usize) -> Result<&'a str, Torn> {
        let len = self.u16()?;
        if len == 0 || len > max {
            return Err(Torn("bad field length"));
        }
        std::str::from_utf8(self.take(len)?).map_err(|_| Torn("field is not UTF-8"))
    }
}

/// Decodes a journal; any damage at all is `Torn`. With `check_crc` false
/// (the `BatchIgnoreJournalChecksum` mutant) records are taken as long as
/// they parse.
pub(crate) fn decode(bytes: &[u8], check_crc: bool) -> Result<Vec<Record>, Torn> {
    let mut cursor = Cursor { bytes, at: 0 };
    if cursor.take(MAGIC.len())? != MAGIC {
        return Err(Torn("bad magic"));
    }
    let count = cursor.u32()? as usize;
    if count == 0 || count > MAX_RECORDS {
        return Err(Torn("bad record count"));
    }
    let mut records = Vec::new();
    for _ in 0..count {
        let start = cursor.at;
        let parsed = (|| {
            let dir = cursor.text(MAX_DIR)?;
            let target = cursor.text(MAX_NAME)?;
            let staged = cursor.text(MAX_NAME)?;
            Ok::<_, Torn>((dir, target, staged))
        })();
        let (dir, target, staged) = match parsed {
            Ok(fields) => fields,
            Err(_) if !check_crc => break,
            Err(e) => return Err(e),
        };
        let crc = crc32fast::hash(&bytes[start..cursor.at]);
        let stored = cursor.u32();
        if check_crc && stored? != crc {
            return Err(Torn("record checksum mismatch"));
        }
        for name in [target, staged] {
            if name.contains('/') || name == "." || name == ".." {
                return Err(Torn("bad file name"));
            }
        }
        if !dir.starts_with('/') {
            return Err(Torn("directory is not absolute"));
        }
        records.push(Record {
            dir: dir.into(),
            target: target.to_owned(),
            staged: staged.to_owned(),
        });
    }
    if check_crc {
        let body = cursor.at;
        if cursor.u32()? != crc32fast::hash(&bytes[..body]) {
            return Err(Torn("journal checksum mismatch"));
        }
        if cursor.at != bytes.len() {
            return Err(Torn("trailing bytes"));
        }
    }
    if records.is_empty() {
        return Err(Torn("no record"));
    }
    Ok(records)
}

/// Reads the whole journal at `path`; `None` when it is gone.
fn read(fs: &dyn Fs, path: &Utf8Path) -> Result<Option<Vec<u8>>, Error> {
    let Some(file) = fs
        .open_read(path)
        .map_err(|e| Error::io(Op::Open, path, e))?
    else {
        return Ok(None);
    };
    let mut bytes = Vec::new();
    crate::transaction::read_all(file.as_ref(), &mut bytes, 0)
        .map_err(|e| Error::io(Op::Read, path, e))?;
    Ok(Some(bytes))
}

fn check_crc(file: &TxFile) -> bool {
    crate::commit::mutant(file) != crate::commit::Mutant::BatchIgnoreJournalChecksum
}

/// A journal is only acted on if it is one txfile could have written for
/// this member: it names the member it was found beside, and every staged
/// file is a temporary file of its own target (`.<target>.XXXXXXXX.txtmp`)
/// in that target's directory. Anyone who can write the directory could
/// otherwise plant a journal with valid checksums that makes recovery
/// rename arbitrary files.
fn plausible(file: &TxFile, records: Vec<Record>) -> Result<Vec<Record>, Torn> {
    if !records
        .iter()
        .any(|record| record.target_path() == file.inner.path)
    {
        return Err(Torn(
            "the journal does not name the member it was found beside",
        ));
    }
    let foreign = records.iter().any(|record| {
        !crate::names::is_temp_of(&crate::names::temp_prefix(&record.target), &record.staged)
    });
    if foreign {
        return Err(Torn("a staged name is not a temporary file of its target"));
    }
    Ok(records)
}

/// Recovers the journal found under `file`'s journal name. Called without
/// any lock held; takes the locks it needs.
pub(crate) fn recover(file: &TxFile) -> Result<(), Error> {
    let inner = &*file.inner;
    let fs = inner.fs.as_ref();
    let journal_path = &inner.journal_path;
    let records = {
        let Some(mut locked) = file.lock(Mode::Exclusive, Wait::Forever)? else {
            return Ok(());
        };
        let Some(bytes) = read(fs, journal_path)? else {
            return Ok(()); // someone recovered it meanwhile
        };
        match decode(&bytes, check_crc(file)).and_then(|records| plausible(file, records)) {
            Ok(records) => records,
            Err(Torn(_)) => {
                // Never committed. This member's staged file goes with the
                // sweep of the `begin` that follows: the guard's marker,
                // set here, makes sure there is one.
                locked
                    .mark()
                    .map_err(|e| Error::io(Op::MarkGuard, &inner.guard_path, e))?;
                return remove_if_present(fs, journal_path);
            }
        }
    };
    // Committed: finish it with every member's lock, taken in the batch
    // order so that recovery cannot deadlock with a batch.
    let mut options: Options = inner.options.clone();
    options.fs = Some(std::sync::Arc::clone(&inner.fs));
    let members = records
        .iter()
        .map(|record| TxFile::with_options(&record.target_path(), options.clone()))
        .collect::<Result<Vec<_>, _>>()?;
    let _locks = crate::batch::lock_all(&members, Mode::Exclusive, Wait::Forever)?;
    if read(fs, journal_path)?.is_none() {
        return Ok(());
    }
    roll_forward(file, &records, &members)?;
    // A journal names every member that has a name for it, so this is
    // normally gone already; if it were not, `begin` would find it again
    // forever.
    remove_if_present(fs, journal_path)
}

/// Renames every staged file still present over its target, makes that
/// durable, then removes every name of the journal.
pub(crate) fn roll_forward(
    file: &TxFile,
    records: &[Record],
    members: &[TxFile],
) -> Result<(), Error> {
    let fs = file.inner.fs.as_ref();
    for record in records {
        let (staged, target) = (record.staged_path(), record.target_path());
        match fs.rename(&staged, &target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // renamed before the crash
            Err(source) => {
                return Err(Error::Rename {
                    from: staged,
                    to: target,
                    source,
                });
            }
        }
    }
    sync_dirs(members)?;
    for record in records {
        remove_if_present(fs, &record.journal_path())?;
    }
    Ok(())
}

/// fsyncs each distinct directory of `members` once.
pub(crate) fn sync_dirs(members: &[TxFile]) -> Result<(), Error> {
    let mut dirs = BTreeMap::new();
    for member in members {
        dirs.entry(member.inner.dir_path.as_path())
            .or_insert(member);
    }
    for (dir, member) in dirs {
        if member.inner.options.durability == crate::Durability::Full {
            member
                .inner
                .dir
                .sync()
                .map_err(|e| Error::io(Op::SyncDir, dir, e))?;
        }
    }
    Ok(())
}

pub(crate) fn remove_if_present(fs: &dyn Fs, path: &Utf8Path) -> Result<(), Error> {
    match fs.remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(Op::Remove, path, e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            Record {
                dir: "/d".into(),
                target: "a".into(),
                staged: ".a.XXXXXXXX.txtmp".into(),
            },
            Record {
                dir: "/e/f".into(),
                target: "b é".into(),
                staged: ".b é.YYYYYYYY.txtmp".into(),
            },
        ]
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&sample());
        assert_eq!(decode(&bytes, true), Ok(sample()));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_torn() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len], true).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.clone();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad, true).is_err(), "bit {bit} of byte {i}");
            }
        }
    }

    #[test]
    fn a_trailing_byte_voids_a_journal() {
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert_eq!(decode(&bytes, true), Err(Torn("trailing bytes")));
    }

    #[test]
    fn the_lenient_mutant_accepts_a_torn_prefix() {
        let bytes = encode(&sample());
        let torn = &bytes[..bytes.len() - 20];
        assert_eq!(decode(torn, false).map(|r| r.len()), Ok(1));
    }
}
