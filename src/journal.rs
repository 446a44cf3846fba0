//! The intent journal of a batch commit, and recovery from it.
//!
//! A batch commit stages every member's temporary file, then makes one
//! journal file reachable from every changed member under the name
//! `.<name>.txjournal` beside it (hard links: members share a filesystem),
//! then writes a *commit entry* listing the (staged, target) pairs and
//! fsyncs it. That fsync is the commit point.
//!
//! A journal is a sequence of entries, each starting at a multiple of
//! [`BLOCK`] bytes, so that writing one never touches a block of another.
//! The last entry that decodes (its CRCs match) is the journal's decision:
//! a commit entry means "roll forward", a void entry means "roll back", and
//! a journal with no entry that decodes was torn by a crash before its
//! commit point: roll back. Entries are only ever added, and an entry added
//! to a journal always repeats the decision it already reads as.
//!
//! The decision anyone acts on is durable. After a failed fsync (EIO) the
//! journal's entries may sit in the page cache without being on disk
//! (fsyncgate), so what a process reads is not necessarily what the disk
//! will show after a power loss. So:
//! - a commit whose journal fsync fails appends a void entry and fsyncs it;
//!   only if that succeeds does it remove the journal and its staged files.
//!   If it fails too, the journal is undecided and left to recovery.
//! - recovery, before it renames or removes anything, appends the decision
//!   it read (a copy of the commit entry, or a void entry) and fsyncs it. If
//!   that fails, it stops with the error and changes nothing.
//!
//! The one exception: a journal in which no entry decodes at all needs no
//! new entry, since the disk can only hold what was written, and nothing
//! complete was.
//!
//! Every `begin` on a member stats its journal name (one `lstat`), before it
//! sweeps stale temporary files. Recovery:
//! - roll back: remove this member's name; the sweep that follows removes
//!   this member's staged file. Other members do the same when they are next
//!   used, since they find the same journal under their own names.
//! - roll forward: with every member's lock, rename each staged file that
//!   still exists over its target (a missing one was renamed already),
//!   fsync the directories, then remove every name of the journal.
//!
//! Both are idempotent, so a crash during recovery is recovered from the
//! same way.
//!
//! Entry format (integers little-endian): magic `TXFJ\x02`; kind (u8: 1
//! commit, 2 void); record count (u32; 0 for a void entry); per record:
//! directory, target name and staged name, each a u16 length and UTF-8
//! bytes, then the CRC-32 of the record's bytes (u32); finally the CRC-32 of
//! everything in the entry before it (u32).
//!
//! A record's directory is absolute, or `.` ([`HERE`]): the directory the
//! journal is found in, which a batch within one directory records instead
//! of a path, so that its journal stays true when the directory is renamed
//! (see `docs/crash-model.md`, "Batches whose directory was renamed").

use std::collections::BTreeMap;
use std::io;

use camino::{Utf8Path, Utf8PathBuf};

use crate::error::Op;
use crate::frame::{Cursor, Rejected, put_text, seal};
use crate::fs::{DirHandle, Fs, Kind, Meta, WriteFile, remove_if_present};
use crate::guard::{Mode, Wait};
use crate::handle::Handle;
use crate::mutants::{Mutant, active};
use crate::{Error, Options};

const MAGIC: &[u8] = b"TXFJ\x02";
/// Entries start at multiples of this (a page and a filesystem block on
/// common systems), so that a torn write of one cannot damage another.
pub(crate) const BLOCK: usize = 4096;
const COMMIT: u8 = 1;
const VOID: u8 = 2;
/// More members than this in one batch is refused; it also bounds decoding.
pub(crate) const MAX_RECORDS: usize = 4096;
const MAX_DIR: usize = 4096;
const MAX_NAME: usize = 255;

/// A record's directory that stands for the directory the journal is
/// found in: a batch whose members all share one directory records it so,
/// and no path at all, so that its journal stays true when the directory
/// (or a parent) is renamed, before the commit or after a crash.
pub(crate) const HERE: &str = ".";

/// One member of a committed batch: `dir/staged` replaces `dir/target`.
/// `dir` is absolute, or [`HERE`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Record {
    pub(crate) dir: Utf8PathBuf,
    pub(crate) target: String,
    pub(crate) staged: String,
}

impl Record {
    /// Whether the member is in the directory the journal is found in.
    pub(crate) fn is_here(&self) -> bool {
        self.dir == HERE
    }

    /// The member's directory, [`HERE`] read as `journal_dir`: the path of
    /// the directory the journal was found in, as the handle that found it
    /// names it (for messages, and to match records with handles).
    fn dir_in(&self, journal_dir: &Utf8Path) -> Utf8PathBuf {
        if self.is_here() {
            journal_dir.to_owned()
        } else {
            self.dir.clone()
        }
    }

    pub(crate) fn target_path(&self, journal_dir: &Utf8Path) -> Utf8PathBuf {
        self.dir_in(journal_dir).join(&self.target)
    }

    pub(crate) fn journal_path(&self, journal_dir: &Utf8Path) -> Utf8PathBuf {
        self.dir_in(journal_dir)
            .join(crate::names::journal_name(&self.target))
    }
}

fn encode_entry(kind: u8, records: &[Record]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.push(kind);
    out.extend((records.len() as u32).to_le_bytes());
    for record in records {
        let start = out.len();
        for field in [record.dir.as_str(), &record.target, &record.staged] {
            put_text(&mut out, field);
        }
        seal(&mut out, start);
    }
    seal(&mut out, 0);
    out
}

/// The commit entry for `records`: what a batch commit writes first.
pub(crate) fn encode(records: &[Record]) -> Vec<u8> {
    encode_entry(COMMIT, records)
}

/// The void entry: "this batch did not commit".
pub(crate) fn encode_void() -> Vec<u8> {
    encode_entry(VOID, &[])
}

/// A journal's decision, from its last entry that decodes.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Decision {
    /// The last entry is a commit entry with these records.
    Commit(Vec<Record>),
    /// The last entry is a void entry.
    Void,
    /// No entry decodes, or the last one could not have been written for
    /// this member (the reason is the first entry's, or why it is forged).
    Rejected(&'static str),
}

/// Decodes the entry at the start of `bytes` (what follows it is not
/// looked at): `Some(records)` for a commit entry, `None` for a void one,
/// and the entry's length. Any damage at all is `Rejected`.
fn decode_entry(bytes: &[u8]) -> Result<Entry, Rejected> {
    let mut cursor = Cursor::new(bytes);
    let (kind, count) = header(&mut cursor)?;
    let mut records = Vec::new();
    for _ in 0..count {
        let start = cursor.at();
        let fields = fields(&mut cursor)?;
        cursor.sealed(start, "record checksum mismatch")?;
        records.push(record(fields)?);
    }
    cursor.sealed(0, "journal checksum mismatch")?;
    entry(kind, records, cursor.at())
}

/// A decoded entry: its records (`None`: a void entry) and its length.
type Entry = (Option<Vec<Record>>, usize);

/// The entry's magic, kind and record count.
fn header(cursor: &mut Cursor<'_>) -> Result<(u8, usize), Rejected> {
    cursor.magic(MAGIC)?;
    let kind = cursor.u8()?;
    let count = cursor.u32()? as usize;
    match kind {
        COMMIT if (1..=MAX_RECORDS).contains(&count) => Ok((kind, count)),
        VOID if count == 0 => Ok((kind, count)),
        COMMIT | VOID => Err(Rejected("bad record count")),
        _ => Err(Rejected("bad entry kind")),
    }
}

/// One record's fields: directory, target and staged names.
fn fields<'a>(cursor: &mut Cursor<'a>) -> Result<(&'a str, &'a str, &'a str), Rejected> {
    let dir = cursor.text(MAX_DIR)?;
    let target = cursor.text(MAX_NAME)?;
    let staged = cursor.text(MAX_NAME)?;
    Ok((dir, target, staged))
}

/// A record from its fields, if they can name files of one directory.
fn record((dir, target, staged): (&str, &str, &str)) -> Result<Record, Rejected> {
    for name in [target, staged] {
        if name.contains(std::path::is_separator) || name == "." || name == ".." {
            return Err(Rejected("bad file name"));
        }
    }
    // `C:\dir` on Windows, `/dir` on Unix; or the journal's own directory.
    if dir != HERE && !Utf8Path::new(dir).is_absolute() {
        return Err(Rejected("directory is not absolute"));
    }
    Ok(Record {
        dir: dir.into(),
        target: target.to_owned(),
        staged: staged.to_owned(),
    })
}

fn entry(kind: u8, records: Vec<Record>, len: usize) -> Result<Entry, Rejected> {
    if kind == VOID {
        return Ok((None, len));
    }
    if records.is_empty() {
        return Err(Rejected("no record"));
    }
    Ok((Some(records), len))
}

/// Decodes exactly one commit entry and nothing after it: the journal as a
/// batch commit writes it. Only the simulator's codec and the tests need it.
#[cfg(any(test, feature = "sim"))]
pub(crate) fn decode(bytes: &[u8]) -> Result<Vec<Record>, Rejected> {
    let (records, len) = decode_entry(bytes)?;
    if len != bytes.len() {
        return Err(Rejected("trailing bytes"));
    }
    records.ok_or(Rejected("a void entry"))
}

/// The decision of a whole journal file: its last entry that decodes,
/// looking for entries at every multiple of [`BLOCK`] (skipping the blocks
/// an entry that decodes covers).
pub(crate) fn decide(bytes: &[u8]) -> Decision {
    decide_with(bytes, decode_entry)
}

fn decide_with(bytes: &[u8], decode_entry: fn(&[u8]) -> Result<Entry, Rejected>) -> Decision {
    let mut decision = None;
    let mut first_error = None;
    let mut at = 0;
    while at < bytes.len() {
        match decode_entry(&bytes[at..]) {
            Ok((entry, len)) => {
                decision = Some(entry);
                at = next_block(at + len);
            }
            Err(Rejected(reason)) => {
                first_error.get_or_insert(reason);
                at += BLOCK;
            }
        }
    }
    match decision {
        Some(Some(records)) => Decision::Commit(records),
        Some(None) => Decision::Void,
        None => Decision::Rejected(first_error.unwrap_or("empty")),
    }
}

/// The decoder of the `BatchIgnoreJournalChecksum` mutant (see
/// `src/mutants.rs`): it rolls forward whatever records of a torn journal
/// parse, checking no checksum.
#[cfg(txfile_mutants)]
mod lenient {
    use super::{Cursor, Decision, Entry, Rejected, entry, fields, header, record};

    pub(super) fn decode_entry(bytes: &[u8]) -> Result<Entry, Rejected> {
        let mut cursor = Cursor::new(bytes);
        let (kind, count) = header(&mut cursor)?;
        let mut records = Vec::new();
        for _ in 0..count {
            let Ok(fields) = fields(&mut cursor) else {
                break;
            };
            let _stored_crc = cursor.u32();
            records.push(record(fields)?);
        }
        entry(kind, records, cursor.at())
    }

    pub(super) fn decide(bytes: &[u8]) -> Decision {
        super::decide_with(bytes, decode_entry)
    }
}

/// The first multiple of [`BLOCK`] at or after `offset`.
pub(crate) fn next_block(offset: usize) -> usize {
    offset.div_ceil(BLOCK) * BLOCK
}

/// A journal opened by recovery: read through the descriptor that will
/// add to it, so that what is decided and what is written are one file.
struct Journal {
    file: Box<dyn WriteFile>,
    bytes: Vec<u8>,
}

impl Journal {
    /// Opens and reads the journal `name` in `dir` (`path` in messages);
    /// `None` when it is gone.
    fn open(dir: &dyn DirHandle, name: &str, path: &Utf8Path) -> Result<Option<Journal>, Error> {
        let Some(file) = dir
            .open_write(name)
            .map_err(|e| Error::io(Op::Open, path, e))?
        else {
            return Ok(None);
        };
        let mut bytes = Vec::new();
        crate::fs::read_all(|buf, at| file.read_at(buf, at), &mut bytes, 0)
            .map_err(|e| Error::io(Op::Read, path, e))?;
        Ok(Some(Journal { file, bytes }))
    }

    /// `fstat` of the opened journal.
    fn file_meta(&self) -> io::Result<Meta> {
        self.file.meta()
    }

    /// What recovery of `member` must do, from the journal as read: a
    /// commit entry that could not have been written for this member counts
    /// as torn.
    fn decide(&self, member: &Handle) -> Decision {
        #[cfg(txfile_mutants)]
        let decision = if active(
            member.inner.options.mutant,
            Mutant::BatchIgnoreJournalChecksum,
        ) {
            lenient::decide(&self.bytes)
        } else {
            decide(&self.bytes)
        };
        #[cfg(not(txfile_mutants))]
        let decision = decide(&self.bytes);
        match decision {
            Decision::Commit(records) => match plausible(member, records) {
                Ok(records) => Decision::Commit(records),
                Err(Rejected(reason)) => Decision::Rejected(reason),
            },
            decision => decision,
        }
    }

    /// Makes `decision` durable before anyone acts on it: adds it as a new
    /// entry at the next block boundary, where it overwrites nothing, and
    /// fsyncs. The journal read as `decision` already, so the new entry
    /// changes nothing for anyone who reads it; what it changes is that the
    /// disk now says so too, whatever became of earlier writes whose fsync
    /// failed.
    fn settle(&mut self, member: &Handle, decision: &Decision) -> Result<(), Error> {
        let path = &member.inner.journal_path;
        let entry = match decision {
            Decision::Commit(records) => encode(records),
            Decision::Void => encode_void(),
            // Nothing complete was ever written: the disk cannot say
            // otherwise.
            Decision::Rejected(_) => return Ok(()),
        };
        if active(
            member.inner.options.mutant,
            Mutant::BatchRecoveryTrustsCache,
        ) || member.inner.options.durability == crate::Durability::None
        {
            return Ok(());
        }
        let at = next_block(self.bytes.len());
        self.file
            .seek(at as u64)
            .map_err(|e| Error::io(Op::Write, path, e))?;
        crate::fs::write_all(self.file.as_mut(), &entry)
            .map_err(|e| Error::io(Op::Write, path, e))?;
        self.file.sync().map_err(|e| Error::io(Op::Sync, path, e))
    }
}

/// A journal is only acted on if it is one txfile could have written for
/// this member: it names the member it was found beside, and every staged
/// file is a temporary file of its own target (`.<target>.XXXXXXXX.txtmp`)
/// in that target's directory. Anyone who can write the directory could
/// otherwise plant a journal with valid checksums that makes recovery
/// rename arbitrary files.
fn plausible(file: &Handle, records: Vec<Record>) -> Result<Vec<Record>, Rejected> {
    if !records
        .iter()
        .any(|record| record.target_path(&file.inner.dir_path) == file.inner.path)
    {
        return Err(Rejected(
            "the journal does not name the member it was found beside",
        ));
    }
    let foreign = records.iter().any(|record| {
        !crate::names::is_temp_of(&crate::names::temp_prefix(&record.target), &record.staged)
    });
    if foreign {
        return Err(Rejected(
            "a staged name is not a temporary file of its target",
        ));
    }
    Ok(records)
}

/// What sits under a journal name, as `lstat` shows it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Found {
    /// A regular file of this user that nobody else may read or write, as
    /// batch commits create journals (`0600`): txfile may have written it.
    Ours,
    /// A file of root's, found by another user: nobody else can plant
    /// one, so it is root's batch, which only root may finish.
    Roots,
    /// Anything else (a user's own notes, another user's file, a link, a
    /// directory): txfile never wrote it, and leaves it alone.
    Foreign,
}

/// Whose the file `meta` describes, found under a journal name, is.
pub(crate) fn classify(fs: &dyn Fs, meta: &Meta) -> Found {
    let euid = fs.euid();
    if meta.kind != Kind::File {
        Found::Foreign
    } else if meta.uid == euid && meta.mode & 0o077 == 0 {
        Found::Ours
    } else if meta.uid == 0 && euid != 0 {
        Found::Roots
    } else {
        Found::Foreign
    }
}

/// The records recovery may act on: those whose member has this very
/// journal (`journal`, its inode) under its own journal name, as a batch
/// commit creates for every member before its commit point. A record
/// pointing elsewhere proves nothing about the directory it names, and
/// nothing there is touched: no guard created, no file renamed or removed.
/// (A member whose name is already gone was renamed and synced before
/// roll forward removed it.)
fn proven_records(
    file: &Handle,
    journal: &Meta,
    records: Vec<Record>,
    members: &[Handle],
) -> Result<Vec<Record>, Error> {
    if active(file.inner.options.mutant, Mutant::TrustForeignJournal) {
        return Ok(records);
    }
    let fs = file.inner.fs.as_ref();
    let mut proven = Vec::with_capacity(records.len());
    for record in records {
        let path = record.journal_path(&file.inner.dir_path);
        // Through the directory the member's handle holds when there is
        // one (this member's own, and every member once they are opened
        // for roll forward: what is proven is then what is renamed); this
        // journal's own directory for a record of it; a record's path
        // otherwise.
        let target = record.target_path(&file.inner.dir_path);
        let member = std::iter::once(file)
            .chain(members)
            .find(|member| member.inner.path == target);
        let name = match member {
            Some(member) => member.inner.dir.lstat(&member.inner.journal_name),
            None if record.is_here() => file
                .inner
                .dir
                .lstat(&crate::names::journal_name(&record.target)),
            None => fs.lstat(&path),
        }
        .map_err(|e| Error::io(Op::Stat, &path, e))?;
        if name.is_some_and(|name| name.kind == Kind::File && name.same_inode(journal)) {
            proven.push(record);
        }
    }
    Ok(proven)
}

/// Recovers the journal found under `file`'s journal name. Called without
/// any lock held; takes the locks it needs. Returns without having removed
/// the journal only when someone else changed it meanwhile (the caller
/// looks again: a file that is not provably txfile's is then left alone).
pub(crate) fn recover(file: &Handle) -> Result<(), Error> {
    let inner = &*file.inner;
    let fs = inner.fs.as_ref();
    let journal_path = &inner.journal_path;
    let (records, journal_meta) = {
        let Some(mut locked) = file.lock(Mode::Exclusive, Wait::Forever)? else {
            return Ok(());
        };
        let meta = inner
            .dir
            .lstat(&inner.journal_name)
            .map_err(|e| Error::io(Op::Stat, journal_path, e))?;
        let Some(meta) = meta else {
            return Ok(()); // someone recovered it meanwhile
        };
        // A link, a directory, a user's own file, another user's file: a
        // batch commit of this user never made it, so it is neither read,
        // followed, written nor removed.
        match classify(fs, &meta) {
            Found::Ours => {}
            Found::Foreign => return Ok(()),
            Found::Roots => {
                return Err(Error::io(
                    Op::Open,
                    journal_path,
                    io::Error::new(
                        io::ErrorKind::PermissionDenied,
                        "a batch commit by root was interrupted here; a transaction on this file (or `txfile::recover`) as root finishes it",
                    ),
                ));
            }
        }
        let Some(mut journal) = Journal::open(&**inner.dir, &inner.journal_name, journal_path)?
        else {
            return Ok(()); // someone recovered it meanwhile
        };
        let opened = journal
            .file_meta()
            .map_err(|e| Error::io(Op::Stat, journal_path, e))?;
        if !opened.same_inode(&meta) {
            return Ok(()); // replaced meanwhile: look again
        }
        match journal.decide(file) {
            Decision::Commit(records) => (proven_records(file, &opened, records, &[])?, opened),
            decision => {
                // Never committed. Once that is durable, this member's name
                // goes, and its staged file goes with the sweep of the
                // `begin` that follows: the guard's marker, set here, makes
                // sure there is one.
                journal.settle(file, &decision)?;
                locked
                    .mark()
                    .map_err(|e| Error::io(Op::MarkGuard, &inner.guard_path, e))?;
                return remove_if_present(&**inner.dir, &inner.journal_name, journal_path);
            }
        }
    };
    // Committed: finish it with every proven member's lock, taken in the
    // batch order so that recovery cannot deadlock with a batch, then read
    // the journal again: it may have been recovered meanwhile. Members
    // other than this one use their default guards, as the batch did; a
    // member of this journal's own directory is opened through this
    // handle's descriptor, where the journal was found.
    let mut options: Options = inner.options.clone();
    options.fs = Some(std::sync::Arc::clone(&inner.fs));
    options.guard_path = None;
    let members = records
        .iter()
        .map(|record| {
            let target = record.target_path(&inner.dir_path);
            if target == inner.path {
                Ok(file.clone())
            } else if record.is_here() {
                file.sibling(&record.target, options.clone())
            } else {
                Handle::open(target.as_std_path(), options.clone())
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    let _locks = Handle::lock_all(
        &members.iter().collect::<Vec<_>>(),
        Mode::Exclusive,
        Wait::Forever,
        Some(std::thread::current().id()),
    )?;
    let Some(mut journal) = Journal::open(&**inner.dir, &inner.journal_name, journal_path)? else {
        return Ok(());
    };
    let opened = journal
        .file_meta()
        .map_err(|e| Error::io(Op::Stat, journal_path, e))?;
    if !opened.same_inode(&journal_meta) {
        return Ok(()); // changed meanwhile: the caller looks again
    }
    let Decision::Commit(all) = journal.decide(file) else {
        return Ok(()); // changed meanwhile: the caller looks again
    };
    if proven_records(file, &opened, all.clone(), &members)? != records {
        return Ok(());
    }
    // The decision made durable is the journal's own, every record of it.
    journal.settle(file, &Decision::Commit(all))?;
    roll_forward(&records, &members)?;
    // A journal names every member that has a name for it, so this is
    // normally gone already; if it were not, `begin` would find it again
    // forever.
    remove_if_present(&**inner.dir, &inner.journal_name, journal_path)
}

/// Whether a batch commit that includes `file`'s target left a journal:
/// one `lstat`, the only cost batches add to single-file transactions.
pub(crate) fn pending(file: &Handle) -> Result<bool, Error> {
    let inner = &*file.inner;
    let found = inner
        .dir
        .lstat(&inner.journal_name)
        .map_err(|e| Error::io(Op::Stat, &inner.journal_path, e))?;
    // A file txfile could not have written is no journal: left alone.
    Ok(found.is_some_and(|meta| classify(inner.fs.as_ref(), &meta) != Found::Foreign))
}

/// Renames every staged file still present over its target, makes that
/// durable, then removes every name of the journal. `members` are the
/// records' members, in the records' order: each rename and removal goes
/// through its member's directory.
pub(crate) fn roll_forward(records: &[Record], members: &[Handle]) -> Result<(), Error> {
    for (record, member) in records.iter().zip(members) {
        match member.inner.dir.rename(&record.staged, &record.target) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {} // renamed before the crash
            Err(source) => {
                return Err(Error::Rename {
                    from: member.inner.dir_path.join(&record.staged),
                    to: member.inner.path.clone(),
                    source,
                });
            }
        }
    }
    sync_dirs(members)?;
    for member in members {
        let inner = &*member.inner;
        remove_if_present(&**inner.dir, &inner.journal_name, &inner.journal_path)?;
    }
    Ok(())
}

/// fsyncs each distinct directory of `members` once.
pub(crate) fn sync_dirs(members: &[Handle]) -> Result<(), Error> {
    let mut dirs = BTreeMap::new();
    for member in members {
        dirs.entry(member.inner.dir.dev_ino()).or_insert(member);
    }
    for member in dirs.into_values() {
        if member.inner.options.durability == crate::Durability::Full {
            member
                .inner
                .dir
                .sync()
                .map_err(|e| Error::io(Op::SyncDir, &member.inner.dir_path, e))?;
        }
    }
    Ok(())
}

/// The journal's codec as the simulator offers it to fuzzers and tests
/// (`txfile::sim::{encode_journal, decode_journal, journal_decision, ...}`):
/// records as (directory, target, staged file) tuples.
#[cfg(feature = "sim")]
pub(crate) mod codec {
    use super::Decision;

    /// Journal records as (directory, target, staged file).
    fn tuples(records: Vec<super::Record>) -> Vec<(String, String, String)> {
        records
            .into_iter()
            .map(|r| (r.dir.into_string(), r.target, r.staged))
            .collect()
    }

    /// Decodes a batch commit's journal as the commit writes it (one commit
    /// entry, nothing after it): `Ok` with its records (directory, target,
    /// staged file) for a complete one, `Err` with the reason for a torn or
    /// foreign one. For fuzzing the decoder; recovery reads whole journal files
    /// with [`journal_decision`].
    ///
    /// # Examples
    ///
    /// ```
    /// use txfile::sim::{decode_journal, encode_journal};
    /// let records = vec![("/d".to_string(), "a".to_string(), ".a.x.txtmp".to_string())];
    /// let bytes = encode_journal(&records);
    /// assert_eq!(decode_journal(&bytes), Ok(records));
    /// assert!(decode_journal(&bytes[..bytes.len() - 1]).is_err());
    /// ```
    pub fn decode_journal(bytes: &[u8]) -> Result<Vec<(String, String, String)>, String> {
        super::decode(bytes)
            .map(tuples)
            .map_err(|torn| torn.0.to_string())
    }

    /// Entries of a journal file start at multiples of this many bytes.
    pub const JOURNAL_BLOCK: usize = super::BLOCK;

    /// What [`journal_decision`] returns: `Ok(Some(records))`, `Ok(None)` or
    /// `Err(reason)`.
    ///
    /// # Examples
    ///
    /// ```
    /// let torn: txfile::sim::JournalDecision = txfile::sim::journal_decision(b"");
    /// assert!(torn.is_err());
    /// ```
    pub type JournalDecision = Result<Option<Vec<(String, String, String)>>, String>;

    /// The decision recovery takes from a whole journal file: its last entry
    /// that decodes, looking at every multiple of [`JOURNAL_BLOCK`]. `Ok(Some)`
    /// with the records of a commit entry (roll forward), `Ok(None)` for a void
    /// entry (roll back), `Err` with the reason when no entry decodes (torn:
    /// roll back).
    ///
    /// # Examples
    ///
    /// ```
    /// use txfile::sim::{JOURNAL_BLOCK, encode_journal, encode_journal_void, journal_decision};
    /// let records = vec![("/d".to_string(), "a".to_string(), ".a.x.txtmp".to_string())];
    /// let mut file = encode_journal(&records);
    /// assert_eq!(journal_decision(&file), Ok(Some(records)));
    /// file.resize(JOURNAL_BLOCK, 0);
    /// file.extend(encode_journal_void());
    /// assert_eq!(journal_decision(&file), Ok(None));
    /// assert!(journal_decision(b"torn").is_err());
    /// ```
    pub fn journal_decision(bytes: &[u8]) -> JournalDecision {
        match super::decide(bytes) {
            Decision::Commit(records) => Ok(Some(tuples(records))),
            Decision::Void => Ok(None),
            Decision::Rejected(reason) => Err(reason.to_string()),
        }
    }

    /// The void entry a journal gets when its batch did not commit.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(txfile::sim::journal_decision(&txfile::sim::encode_journal_void()), Ok(None));
    /// ```
    pub fn encode_journal_void() -> Vec<u8> {
        super::encode_void()
    }

    /// Encodes a journal from records (directory, target, staged file), as a
    /// batch commit writes it; the counterpart of [`decode_journal`].
    ///
    /// # Examples
    ///
    /// ```
    /// let bytes = txfile::sim::encode_journal(&[("/d".into(), "a".into(), ".a.x.txtmp".into())]);
    /// assert!(bytes.starts_with(b"TXFJ"));
    /// ```
    pub fn encode_journal(records: &[(String, String, String)]) -> Vec<u8> {
        let records: Vec<super::Record> = records
            .iter()
            .map(|(dir, target, staged)| super::Record {
                dir: dir.into(),
                target: target.clone(),
                staged: staged.clone(),
            })
            .collect();
        super::encode(&records)
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
        assert_eq!(decode(&bytes), Ok(sample()));
    }

    #[test]
    fn every_truncation_and_bit_flip_is_torn() {
        crate::frame::tests::every_truncation_and_bit_flip_is_refused(&encode(&sample()), decode);
    }

    #[test]
    fn the_journals_own_directory_is_the_one_relative_directory() {
        let here = vec![Record {
            dir: HERE.into(),
            target: "a".into(),
            staged: ".a.XXXXXXXX.txtmp".into(),
        }];
        assert_eq!(decode(&encode(&here)), Ok(here.clone()));
        assert_eq!(here[0].target_path("/now".into()), "/now/a");
        for dir in ["..", "./d", "d", "./"] {
            let mut other = here.clone();
            other[0].dir = dir.into();
            assert_eq!(
                decode(&encode(&other)),
                Err(Rejected("directory is not absolute")),
                "{dir}"
            );
        }
    }

    #[test]
    fn the_strict_decoder_refuses_trailing_bytes() {
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(Rejected("trailing bytes")));
    }

    /// `bytes` at block `n` of a journal file that is `len` bytes long so
    /// far (zeros in between: a hole).
    fn put(file: &mut Vec<u8>, n: usize, bytes: &[u8]) {
        let at = n * BLOCK;
        if file.len() < at + bytes.len() {
            file.resize(at + bytes.len(), 0);
        }
        file[at..at + bytes.len()].copy_from_slice(bytes);
    }

    #[test]
    fn the_last_entry_that_decodes_decides() {
        let commit = encode(&sample());
        assert_eq!(decide(&commit), Decision::Commit(sample()));
        // A commit, then a void entry in the next block.
        let mut file = commit.clone();
        put(&mut file, 1, &encode_void());
        assert_eq!(decide(&file), Decision::Void);
        // Then a commit copy after that would be a bug, but the rule is the
        // rule: the last one.
        put(&mut file, 2, &commit);
        assert_eq!(decide(&file), Decision::Commit(sample()));
    }

    #[test]
    fn a_torn_entry_decides_nothing() {
        let commit = encode(&sample());
        let void = encode_void();
        for len in 0..void.len() {
            // A void entry torn by a crash while it was being added.
            let mut file = commit.clone();
            put(&mut file, 1, &void[..len]);
            assert_eq!(decide(&file), Decision::Commit(sample()), "{len}");
            // A commit copy torn likewise.
            let mut file = commit.clone();
            put(&mut file, 1, &void);
            put(&mut file, 2, &commit[..len]);
            assert_eq!(decide(&file), Decision::Void, "{len}");
        }
        // A trailing byte (the voiding of the previous format) decides
        // nothing either.
        let mut file = commit.clone();
        file.push(0);
        assert_eq!(decide(&file), Decision::Commit(sample()));
    }

    #[test]
    fn a_lost_first_entry_leaves_the_later_ones() {
        // The commit entry's fsync failed and it never reached the disk
        // (zeros or garbage), but a copy added later did.
        let commit = encode(&sample());
        for fill in [0u8, 0xA5] {
            let mut file = vec![fill; commit.len()];
            put(&mut file, 1, &commit);
            assert_eq!(decide(&file), Decision::Commit(sample()));
            let mut file = vec![fill; commit.len()];
            put(&mut file, 1, &encode_void());
            assert_eq!(decide(&file), Decision::Void);
        }
    }

    #[test]
    fn nothing_that_decodes_is_torn() {
        let commit = encode(&sample());
        assert_eq!(decide(&[]), Decision::Rejected("empty"));
        for len in 0..commit.len() {
            assert!(matches!(decide(&commit[..len]), Decision::Rejected(_)));
        }
        assert!(matches!(decide(&[0; 3 * BLOCK]), Decision::Rejected(_)));
        // An entry that is not at a block boundary is not an entry.
        let mut file = vec![0; 100];
        file.extend(&commit);
        assert!(matches!(decide(&file), Decision::Rejected(_)));
    }

    #[test]
    fn a_void_entry_is_not_a_commit() {
        assert_eq!(decode(&encode_void()), Err(Rejected("a void entry")));
        assert_eq!(decide(&encode_void()), Decision::Void);
    }

    #[cfg(txfile_mutants)]
    #[test]
    fn the_lenient_mutant_accepts_a_torn_prefix() {
        let bytes = encode(&sample());
        let torn = &bytes[..bytes.len() - 20];
        assert_eq!(decode(torn), Err(Rejected("truncated")));
        let lenient = super::lenient::decode_entry(torn);
        assert_eq!(
            lenient.map(|(records, _)| records.map(|r| r.len())),
            Ok(Some(1))
        );
    }
}
