//! `Batch`: all-or-nothing updates of several files.

use std::fmt;
use std::path::Path;
use std::thread::ThreadId;

use camino::Utf8PathBuf;

use crate::commit;
use crate::error::{BoxError, Op};
use crate::fs::DirHandle;
use crate::guard::{Locked, Mode, Wait};
use crate::handle::Handle;
use crate::journal::{self, Record};
use crate::mutants::{Mutant, active};
use crate::state::Transaction;
use crate::{Error, TxFile};

/// Several files updated as one: after a commit, or after a crash and the
/// recovery that follows it, either every member has its new contents or
/// every member has its old ones.
///
/// A batch is built from [`TxFile`] handles (or paths) on one filesystem.
/// [`begin`](Batch::begin) takes every member's lock, in one order shared by
/// all batches so that batches over overlapping members never deadlock, and
/// gives one [`Transaction`] per member. [`commit`](BatchTransaction::commit)
/// stages and fsyncs every changed member's new contents, makes an intent
/// journal reachable from every changed member (`.<name>.txjournal`), writes
/// and fsyncs it (the commit point), renames each member into place, fsyncs
/// the directories and removes the journal. The next `begin` on any member,
/// or [`recover`](crate::recover), finishes or undoes a commit a crash interrupted.
///
/// Single-file transactions on a member keep working and see batch commits
/// atomically. [`TxFile::read`] of one member takes no lock and may see a
/// member of a batch that is being committed; [`Batch::read`] takes shared
/// locks and never does.
///
/// # Examples
///
/// ```
/// use txfile::Batch;
/// # let dir = tempfile::tempdir()?;
/// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
///
/// // An index and its data, always in step.
/// let batch = Batch::open([dir.join("index"), dir.join("data")])?;
/// batch.update(|old| {
///     let data = [old[1].unwrap_or_default(), b"record\n"].concat();
///     let index = format!("{}\n", data.len()).into_bytes();
///     Ok::<_, std::io::Error>(vec![index, data])
/// })?;
/// let [index, data] = <[_; 2]>::try_from(batch.read()?).unwrap();
/// assert_eq!(index.as_deref(), Some(&b"7\n"[..]));
/// assert_eq!(data.as_deref(), Some(&b"record\n"[..]));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Batch {
    members: Vec<TxFile>,
}

impl fmt::Debug for Batch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.members.iter().map(TxFile::path))
            .finish()
    }
}

impl Batch {
    /// A batch of `paths`, each opened with default [`Options`](crate::Options).
    ///
    /// # Errors
    ///
    /// As for [`Batch::new`] and [`TxFile::open`].
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("a"), dir.join("b")])?;
    /// assert_eq!(batch.members().len(), 2);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn open<P: AsRef<Path>>(paths: impl IntoIterator<Item = P>) -> Result<Batch, Error> {
        Batch::new(
            paths
                .into_iter()
                .map(|path| TxFile::open(path))
                .collect::<Result<Vec<_>, _>>()?,
        )
    }

    /// A batch of open handles. Each member keeps its own options; the
    /// batch waits for its locks as long as the shortest timeout among them
    /// allows (forever if none has one), and fsyncs unless every member has
    /// [`Durability::None`](crate::Durability::None).
    ///
    /// # Errors
    ///
    /// [`Error::EmptyBatch`] when there is no member; [`Error::InvalidPath`]
    /// (naming the member) when a target appears
    /// twice (however it is spelled: members are compared by their
    /// directory's identity and name, not by path), or when members are on
    /// different filesystems (a batch commit links one journal beside every
    /// member, which needs one filesystem).
    ///
    /// # Examples
    ///
    /// ```
    /// use txfile::{Batch, Options};
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let quick = Options::new().timeout(std::time::Duration::from_secs(1));
    /// let batch = Batch::new([quick.open(dir.join("a"))?, quick.open(dir.join("b"))?])?;
    /// assert!(Batch::new([quick.open(dir.join("a"))?, quick.open(dir.join("a"))?]).is_err());
    /// # let _ = batch;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(files: impl IntoIterator<Item = TxFile>) -> Result<Batch, Error> {
        let members: Vec<TxFile> = files.into_iter().collect();
        let Some(first) = members.first() else {
            return Err(Error::EmptyBatch);
        };
        if members.len() > journal::MAX_RECORDS {
            return Err(Error::InvalidPath {
                path: first.path().to_owned(),
                reason: "a batch has at most 4096 members",
            });
        }
        // Where each member's guard sits: its directory's inode and its
        // name. Two spellings of one file (`x/../x/f`, a symbolic link to
        // the directory) have the same; comparing strings would miss them,
        // and a batch holding one guard twice would wait for itself. (The
        // directories are open already: their identity costs no call.)
        fn place(file: &TxFile) -> Result<(u64, u64, &str), Error> {
            let (dev, ino) = file.handle.inner.dir.dev_ino();
            Ok((dev, ino, file.guard_path().file_name().unwrap_or_default()))
        }
        let places = members.iter().map(place).collect::<Result<Vec<_>, _>>()?;
        for (i, member) in members.iter().enumerate() {
            let invalid = |reason| Error::InvalidPath {
                path: member.path().to_owned(),
                reason,
            };
            if member.handle.inner.fs.id() != first.handle.inner.fs.id()
                || places[i].0 != places[0].0
            {
                return Err(invalid(
                    "it is on another filesystem than the batch's first member",
                ));
            }
            if places[..i].contains(&places[i]) {
                return Err(invalid(
                    "it appears twice in the batch (perhaps spelled another way)",
                ));
            }
            if members[..i]
                .iter()
                .any(|other| other.guard_path() == member.guard_path())
            {
                return Err(invalid(
                    "its lock file (`Options::guard_path`) is another member's too",
                ));
            }
        }
        Ok(Batch { members })
    }

    /// The members, in the order they were given.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("a")])?;
    /// assert_eq!(batch.members()[0].path().file_name(), Some("a"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn members(&self) -> &[TxFile] {
        &self.members
    }

    pub(crate) fn wait(&self) -> Wait {
        Wait::within(
            self.members
                .iter()
                .filter_map(|m| m.handle.inner.options.timeout)
                .min(),
        )
    }

    pub(crate) fn timeout_error(&self) -> Error {
        Error::Timeout {
            path: self.members[0].path().to_owned(),
            timeout: self
                .members
                .iter()
                .filter_map(|m| m.handle.inner.options.timeout)
                .min()
                .unwrap_or_default(),
        }
    }

    /// Starts a transaction on every member, waiting for their locks as long
    /// as the timeout allows.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when a lock was not free in time;
    /// [`Error::HeldByThisThread`] at once when this thread holds a member's
    /// lock itself; as for [`TxFile::begin`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("a"), dir.join("b")])?;
    /// let mut tx = batch.begin()?;
    /// tx.member(0).write_all(b"left")?;
    /// tx.member(1).write_all(b"right")?;
    /// tx.commit()?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn begin(&self) -> Result<BatchTransaction<'_>, Error> {
        self.start(self.wait())?.ok_or_else(|| self.timeout_error())
    }

    /// Starts a transaction on every member if all their locks are free
    /// right now; `Ok(None)` at once otherwise.
    ///
    /// # Errors
    ///
    /// As for [`Batch::begin`], except that a held lock is `Ok(None)`.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("a"), dir.join("b")])?;
    /// let held = batch.members()[1].begin()?;
    /// assert!(batch.try_begin()?.is_none());
    /// held.rollback();
    /// assert!(batch.try_begin()?.is_some());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn try_begin(&self) -> Result<Option<BatchTransaction<'_>>, Error> {
        self.start(Wait::No)
    }

    fn start(&self, wait: Wait) -> Result<Option<BatchTransaction<'_>>, Error> {
        let Some(locks) = self.lock_recovered(Mode::Exclusive, wait, Some(current_thread()))?
        else {
            return Ok(None);
        };
        self.prepare(locks).map(Some)
    }

    /// With every member's lock held and no journal pending: each member's
    /// transaction.
    pub(crate) fn prepare(&self, locks: Vec<Locked>) -> Result<BatchTransaction<'_>, Error> {
        let txs = self
            .members
            .iter()
            .zip(locks)
            .map(|(member, locked)| Transaction::prepare(&member.handle, locked))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BatchTransaction { txs })
    }

    /// Every member's lock (in member order) with no batch journal left
    /// under any member: a journal found is recovered, without the locks,
    /// and the locks taken again. `Ok(None)` when `wait` ran out. The locks
    /// are `thread`'s, or no thread's (see [`Handle::lock_for`]).
    pub(crate) fn lock_recovered(
        &self,
        mode: Mode,
        wait: Wait,
        thread: Option<ThreadId>,
    ) -> Result<Option<Vec<Locked>>, Error> {
        loop {
            let handles: Vec<&Handle> = self.members.iter().map(|m| &m.handle).collect();
            let Some(locks) = Handle::lock_all(&handles, mode, wait, thread)? else {
                return Ok(None);
            };
            let mut pending = None;
            for member in handles {
                if journal::pending(member)? {
                    pending = Some(member);
                    break;
                }
            }
            match pending {
                Some(member) => {
                    drop(locks);
                    journal::recover(member)?;
                }
                None => return Ok(Some(locks)),
            }
        }
    }

    /// Replaces every member's contents with what `f` returns for their
    /// current contents (`None` for a file that does not exist), given and
    /// returned in member order, as one batch commit.
    ///
    /// # Errors
    ///
    /// [`Error::Aborted`] when `f` fails or returns another number of
    /// contents than there are members; as for [`Batch::begin`] and
    /// [`BatchTransaction::commit`] otherwise.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("from"), dir.join("to")])?;
    /// // Move one unit from one counter to the other, atomically.
    /// batch.update(|old| {
    ///     let n = |b: Option<&[u8]>| -> i64 { b.map_or(0, |b| String::from_utf8_lossy(b).parse().unwrap_or(0)) };
    ///     Ok::<_, std::io::Error>(vec![
    ///         (n(old[0]) - 1).to_string().into_bytes(),
    ///         (n(old[1]) + 1).to_string().into_bytes(),
    ///     ])
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update<F, E>(&self, f: F) -> Result<(), Error>
    where
        F: FnOnce(&[Option<&[u8]>]) -> Result<Vec<Vec<u8>>, E>,
        E: Into<BoxError>,
    {
        self.update_returning(|old| f(old).map(|new| (new, ())))
    }

    /// [`update`](Batch::update) for a closure that also computes a value:
    /// `f` returns every member's new contents and the value, and the value
    /// is returned once the batch is committed.
    ///
    /// # Errors
    ///
    /// As for [`Batch::update`]; the value is only returned with a commit.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// let batch = txfile::Batch::open([dir.path().join("log"), dir.path().join("count")])?;
    /// let lines = batch.update_returning(|old| {
    ///     let log = [old[0].unwrap_or_default(), b"entry\n"].concat();
    ///     let lines = log.iter().filter(|&&b| b == b'\n').count();
    ///     Ok::<_, std::io::Error>((vec![log, lines.to_string().into_bytes()], lines))
    /// })?;
    /// assert_eq!(lines, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn update_returning<F, T, E>(&self, f: F) -> Result<T, Error>
    where
        F: FnOnce(&[Option<&[u8]>]) -> Result<(Vec<Vec<u8>>, T), E>,
        E: Into<BoxError>,
    {
        let mut tx = self.begin()?;
        let value = self.apply(&mut tx, f)?;
        tx.commit()?;
        Ok(value)
    }

    /// The part of [`Batch::update_returning`] under the locks, before the
    /// commit.
    pub(crate) fn apply<F, T, E>(&self, tx: &mut BatchTransaction<'_>, f: F) -> Result<T, Error>
    where
        F: FnOnce(&[Option<&[u8]>]) -> Result<(Vec<Vec<u8>>, T), E>,
        E: Into<BoxError>,
    {
        for member in &mut tx.txs {
            member.old_bytes()?;
        }
        let old: Vec<Option<&[u8]>> = tx
            .txs
            .iter()
            .map(|member| {
                member
                    .old
                    .as_ref()
                    .map(|old| old.cached().unwrap_or_default())
            })
            .collect();
        let aborted = |source: BoxError| Error::Aborted {
            path: self.members[0].path().to_owned(),
            source,
        };
        let (new, value) = f(&old).map_err(|e| aborted(e.into()))?;
        if new.len() != self.members.len() {
            return Err(aborted(
                format!(
                    "returned {} contents for {} members",
                    new.len(),
                    self.members.len()
                )
                .into(),
            ));
        }
        for (member, contents) in tx.txs.iter_mut().zip(new) {
            member.set_contents(contents)?;
        }
        Ok(value)
    }

    /// Reads every member (`None` for a file that does not exist) under
    /// shared locks, so that the result is one consistent state of the
    /// batch: never some members before a batch commit and others after.
    /// Readers share the locks with each other; writers wait for them.
    ///
    /// # Errors
    ///
    /// [`Error::Timeout`] when a lock was not free in time; [`Error::Io`]
    /// when a member cannot be read.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("a"), dir.join("b")])?;
    /// assert_eq!(batch.read()?, vec![None, None]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn read(&self) -> Result<Vec<Option<Vec<u8>>>, Error> {
        let Some(_locks) =
            self.lock_recovered(Mode::Shared, self.wait(), Some(current_thread()))?
        else {
            return Err(self.timeout_error());
        };
        self.read_locked()
    }

    /// Every member's contents, with the (shared) locks held.
    pub(crate) fn read_locked(&self) -> Result<Vec<Option<Vec<u8>>>, Error> {
        self.members
            .iter()
            .map(|member| {
                crate::stale::retry(|| match crate::stale::open_current(&member.handle)? {
                    Some(mut old) => old.take_bytes(member.path()).map(Some),
                    None => Ok(None),
                })
            })
            .collect()
    }
}

fn current_thread() -> ThreadId {
    std::thread::current().id()
}

/// One locked update of every member of a [`Batch`]; see [`Batch::begin`].
///
/// Write each member's new contents through [`member`](Self::member), then
/// [`commit`](Self::commit). Dropping it without committing changes nothing.
///
/// # Examples
///
/// ```
/// use std::io::Write;
/// # let dir = tempfile::tempdir()?;
/// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
/// let batch = txfile::Batch::open([dir.join("a"), dir.join("b")])?;
/// let mut tx = batch.begin()?;
/// for member in tx.members_mut() {
///     member.write_all(b"same everywhere")?;
/// }
/// tx.commit()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use = "a batch transaction changes nothing until it is committed; dropping it rolls back"]
pub struct BatchTransaction<'a> {
    pub(crate) txs: Vec<Transaction<'a>>,
}

impl fmt::Debug for BatchTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.txs).finish()
    }
}

impl<'a> BatchTransaction<'a> {
    /// The transaction of member `index` (in the order the batch was given).
    ///
    /// # Panics
    ///
    /// When `index` is not less than the number of members.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// # std::fs::write(dir.join("b"), "old b")?;
    /// let batch = txfile::Batch::open([dir.join("a"), dir.join("b")])?;
    /// let mut tx = batch.begin()?;
    /// assert_eq!(tx.member(1).old_bytes()?, Some(&b"old b"[..]));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn member(&mut self, index: usize) -> &mut Transaction<'a> {
        &mut self.txs[index]
    }

    /// Every member's transaction, in member order.
    ///
    /// # Examples
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("a"), dir.join("b")])?;
    /// let mut tx = batch.begin()?;
    /// assert!(tx.members_mut().iter().all(|member| !member.exists()));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn members_mut(&mut self) -> &mut [Transaction<'a>] {
        &mut self.txs
    }

    /// Commits every member as one: afterwards, and after any crash and the
    /// recovery that follows, either all members have their new contents or
    /// all have their old ones. Members whose contents did not change are
    /// left alone; when only one changed, this is a single-file commit.
    ///
    /// # Errors
    ///
    /// [`Error::Conflict`] when a program not using txfile changed a member
    /// (nothing is committed); [`Error::Io`] or [`Error::Rename`] when a step
    /// fails. Before the commit point nothing changes. After it (an error
    /// renaming or syncing) the journal stays in place and the next `begin`
    /// on any member completes the commit. When the journal's own fsync
    /// fails, its records may be on disk anyway: the commit voids the journal
    /// durably and then rolls back; if even that fails, it leaves the journal
    /// and the staged files in place, and recovery rolls every member
    /// forward or every member back: it first makes the journal's decision
    /// durable, and acts on nothing before that succeeds.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("a"), dir.join("b")])?;
    /// let mut tx = batch.begin()?;
    /// tx.member(0).write_all(b"1")?;
    /// tx.member(1).write_all(b"2")?;
    /// tx.commit()?;
    /// assert_eq!(std::fs::read(dir.join("b"))?, b"2");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn commit(mut self) -> Result<(), Error> {
        self.commit_in_place()
    }

    /// [`commit`](Self::commit) for a transaction that cannot be moved (the
    /// async one); the caller drops it afterwards, as `commit` does.
    pub(crate) fn commit_in_place(&mut self) -> Result<(), Error> {
        for tx in &mut self.txs {
            tx.check_process()?;
        }
        let mut changed = Vec::new();
        for (i, tx) in self.txs.iter_mut().enumerate() {
            if commit::check(tx)? == commit::Checked::Changed {
                changed.push(i);
            }
        }
        let txs: Vec<&mut Transaction<'a>> = self
            .txs
            .iter_mut()
            .enumerate()
            .filter(|(i, _)| changed.contains(i))
            .map(|(_, tx)| tx)
            .collect();
        match txs.len() {
            0 => Ok(()),
            1 => {
                let tx = txs.into_iter().next().expect("one member");
                commit::stage(tx)?;
                commit::install(tx)?;
                commit::finish(tx)
            }
            _ => commit_all(txs),
        }
    }

    /// Abandons every member's transaction; same as dropping it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::io::Write;
    /// # let dir = tempfile::tempdir()?;
    /// # let dir = camino::Utf8Path::from_path(dir.path()).unwrap();
    /// let batch = txfile::Batch::open([dir.join("a")])?;
    /// let mut tx = batch.begin()?;
    /// tx.member(0).write_all(b"never mind")?;
    /// tx.rollback();
    /// assert!(!dir.join("a").exists());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn rollback(self) {}
}

/// The journaled commit of two or more changed members.
fn commit_all(mut txs: Vec<&mut Transaction<'_>>) -> Result<(), Error> {
    // A member that cannot be renamed over would leave a journal that
    // recovery could never finish: refused before anything is written.
    if let Some(tx) = txs
        .iter()
        .find(|tx| tx.old.as_ref().is_some_and(|old| old.meta.mount_root))
    {
        return Err(Error::io(
            Op::Stat,
            &tx.file.inner.path,
            std::io::Error::new(
                std::io::ErrorKind::ResourceBusy,
                "it is a mount point (a bind-mounted file), which a batch cannot replace: \
                 update it on its own (in place)",
            ),
        ));
    }
    let dirs = record_dirs(&txs)?;
    for tx in txs.iter_mut() {
        commit::stage(tx)?;
    }
    let first = txs[0].file;
    let fs = first.inner.fs.as_ref();
    let options = &first.inner.options;
    let members: Vec<Handle> = txs.iter().map(|tx| tx.file.clone()).collect();
    let records: Vec<Record> = txs
        .iter()
        .zip(dirs)
        .map(|(tx, dir)| {
            let staged = tx
                .new
                .temp
                .as_ref()
                .expect("staged")
                .path
                .file_name()
                .unwrap_or_default();
            Record {
                dir,
                target: tx.file.inner.name.clone(),
                staged: staged.to_owned(),
            }
        })
        .collect();
    if active(options.mutant, Mutant::BatchRenameBeforeJournal) {
        rename_all(&mut txs)?;
    }

    // Every changed member can find the journal before it says anything.
    let names: Vec<Utf8PathBuf> = txs
        .iter()
        .map(|tx| tx.file.inner.journal_path.clone())
        .collect();
    // Every journal name is made and removed in its member's directory,
    // through the handle's descriptor (the paths above are for messages).
    let dirs: Vec<(&dyn DirHandle, &str)> = txs
        .iter()
        .map(|tx| (&**tx.file.inner.dir, tx.file.inner.journal_name.as_str()))
        .collect();
    let mut created: Vec<usize> = Vec::new();
    // Set when the journal's fsync failed and voiding it failed too.
    let mut undecided = false;
    let result = (|| {
        let (first_dir, first_name) = dirs[0];
        let mut journal = first_dir
            .create_new(first_name, 0o600)
            .map_err(|e| Error::io(Op::CreateJournal, &names[0], e))?;
        created.push(0);
        for (i, &(dir, name)) in dirs.iter().enumerate().skip(1) {
            fs.link(first_dir, first_name, dir, name)
                .map_err(|e| Error::io(Op::LinkJournal, &names[i], e))?;
            created.push(i);
        }
        // The staged files' names and the journal's, durable.
        journal::sync_dirs(&members)?;
        // The commit point: the journal's records, durable.
        let entry = journal::encode(&records);
        crate::fs::write_all(journal.as_mut(), &entry)
            .map_err(|e| Error::io(Op::Write, &names[0], e))?;
        if commit::durable(first) && !active(options.mutant, Mutant::BatchNoJournalFsync) {
            if let Err(e) = journal.sync() {
                // The records may have reached the disk anyway. Removing the
                // names and staged files now could leave, after a crash, one
                // name on a complete journal whose other members' staged
                // files are gone (removed here, or swept by a member whose
                // name went first): a partial roll forward. So first void
                // the journal durably, with a void entry after the commit
                // entry (in a block of its own: a torn write of it cannot
                // damage the commit entry).
                let voided = journal
                    .seek(journal::next_block(entry.len()) as u64)
                    .and_then(|()| crate::fs::write_all(journal.as_mut(), &journal::encode_void()))
                    .and_then(|()| journal.sync())
                    .is_ok();
                undecided = !voided;
                return Err(Error::io(Op::Sync, &names[0], e));
            }
        }
        Ok(())
    })();
    if let Err(e) = result {
        if undecided {
            // Whether the batch committed is up to what reached the disk:
            // leave the journal and every staged file to recovery, which
            // rolls the whole batch forward or back.
            for tx in txs.iter_mut() {
                drop(tx.new.temp.take());
                tx.unsynced = true;
            }
            return Err(e);
        }
        // Not committed: the journal goes; the staged files go with the
        // transactions.
        for i in created {
            let _ = crate::fs::remove_if_present(dirs[i].0, dirs[i].1, &names[i]);
        }
        return Err(e);
    }
    // Committed. From here on the staged files belong to the journal:
    // an error leaves them for recovery to rename, and the guards' markers
    // set for the next holders.
    for tx in txs.iter_mut() {
        tx.unsynced = true;
    }
    if !active(options.mutant, Mutant::BatchRenameBeforeJournal) {
        rename_all(&mut txs)?;
    }
    journal::sync_dirs(&members)?;
    for (&(dir, name), path) in dirs.iter().zip(&names) {
        crate::fs::remove_if_present(dir, name, path)?;
    }
    for tx in txs.iter_mut() {
        tx.unsynced = false;
        if let Some(locked) = tx.locked.as_mut() {
            if commit::durable(first) {
                locked.synced();
            }
            locked.set_version_synced(commit::durable(first));
        }
    }
    Ok(())
}

/// The directory each member's record names (see [`journal::HERE`]).
///
/// A batch within one directory records none: its journal is found in that
/// directory, and recovery opens every member through the descriptor of
/// the handle that found it, so the journal stays true wherever the
/// directory moves, before the commit or after a crash. Across directories
/// a journal must say where the others are, by path: the path each
/// directory has now (it may have been renamed since its handle was
/// opened; see [`DirHandle::current_path`]). Where that cannot be known, the
/// batch is refused before anything is written: a journal naming a path
/// that is no longer the member's directory would make recovery from the
/// new path roll that member back while others roll forward, or look in a
/// directory that is not the batch's.
fn record_dirs(txs: &[&mut Transaction<'_>]) -> Result<Vec<Utf8PathBuf>, Error> {
    let first = txs[0].file.inner.dir.dev_ino();
    if txs.iter().all(|tx| tx.file.inner.dir.dev_ino() == first) {
        return Ok(vec![journal::HERE.into(); txs.len()]);
    }
    txs.iter()
        .map(|tx| {
            let inner = &*tx.file.inner;
            inner.dir.current_path().map_err(|e| {
                Error::io(
                    Op::OpenDir,
                    &inner.dir_path,
                    std::io::Error::new(
                        e.kind(),
                        format!(
                            "a batch across directories names each directory in its journal, \
                             and this one's path cannot be found ({e}): it was renamed or removed \
                             since the handle was opened; open the members again, or keep a \
                             batch's members in one directory"
                        ),
                    ),
                )
            })
        })
        .collect()
}

/// Renames every staged file over its target; the transactions no longer
/// own their temporary files afterwards (nor after an error: the journal
/// does).
fn rename_all(txs: &mut [&mut Transaction<'_>]) -> Result<(), Error> {
    let staged: Vec<_> = txs
        .iter_mut()
        .filter_map(|tx| {
            // Our handle on the old version would keep Windows from
            // replacing it (see `commit::install`).
            tx.old = None;
            tx.new.existing = None;
            Some((tx.new.temp.take()?, tx.file))
        })
        .collect();
    for (temp, file) in &staged {
        let inner = &*file.inner;
        crate::replace::rename(
            &**inner.dir,
            (&temp.name, &temp.path),
            (&inner.name, &inner.path),
            inner.options.replace_retry,
            inner.options.mutant,
        )?;
    }
    Ok(())
}
