//! The simulated machine: inodes with a volatile and a durable view,
//! directories with volatile and durable entries, and the pending operations
//! between the two, in the order they were made.

use std::collections::BTreeMap;
use std::io;

use camino::{Utf8Component, Utf8Path, Utf8PathBuf};

use super::fault::Planned;
use super::{OpKind, Operation};
use crate::fs::{Kind, Meta};

/// The root directory's inode number.
pub(super) const ROOT: u64 = 1;
/// The simulated process's umask.
pub(super) const UMASK: u32 = 0o022;
/// Owner and group of every file the simulated process creates.
pub(super) const UID: u32 = 1000;
pub(super) const GID: u32 = 1000;
/// The one device of the simulated machine.
const DEV: u64 = 0x5153;

/// What a file holds: its bytes and the metadata the protocol copies.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Image {
    pub(super) bytes: Vec<u8>,
    pub(super) mode: u32,
    pub(super) uid: u32,
    pub(super) gid: u32,
}

impl Image {
    pub(super) fn empty(mode: u32) -> Image {
        Image {
            bytes: Vec::new(),
            mode,
            uid: UID,
            gid: GID,
        }
    }

    /// Applies `op` entirely.
    pub(super) fn apply(&mut self, op: &DataOp) {
        match op {
            DataOp::Write { offset, bytes } => {
                let start = *offset as usize;
                let end = start + bytes.len();
                if self.bytes.len() < end {
                    self.bytes.resize(end, 0);
                }
                self.bytes[start..end].copy_from_slice(bytes);
            }
            DataOp::SetMode(mode) => self.mode = *mode,
            DataOp::SetLen(len) => self.bytes.resize(*len as usize, 0),
            DataOp::SetOwner(uid, gid) => {
                self.uid = *uid;
                self.gid = *gid;
            }
        }
    }
}

/// A change to an inode that becomes durable at the inode's fsync.
#[derive(Clone, Debug)]
pub(super) enum DataOp {
    Write {
        offset: u64,
        bytes: Vec<u8>,
    },
    SetMode(u32),
    SetOwner(u32, u32),
    /// `ftruncate`: the new size (zeros when it grows).
    SetLen(u64),
}

/// Where a data operation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Fate {
    /// Not yet synced: at a crash it may be lost, land, or land torn.
    Pending,
    /// Synced after an operation that is still in doubt.
    Durable,
    /// Its fsync failed ("fsyncgate"): it may or may not have reached the
    /// disk, and no later fsync will write it again.
    Doubtful,
}

/// A regular file.
#[derive(Clone, Debug)]
pub(super) struct FileNode {
    /// What running processes see.
    pub(super) volatile: Image,
    /// What survives a crash for sure, before `log`.
    pub(super) base: Image,
    /// Operations since `base`, oldest first.
    pub(super) log: Vec<(DataOp, Fate)>,
}

/// A change to a directory's entries that becomes durable at the
/// directory's fsync.
#[derive(Clone, Debug)]
pub(super) enum EntryOp {
    Create { name: String, ino: u64 },
    Remove { name: String, ino: u64 },
    Rename { from: String, to: String, ino: u64 },
}

/// How much of one pending entry operation lands at a crash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Landing {
    Lost,
    Landed,
    /// A rename with its destination removed and its source still there.
    HalfDone,
}

impl EntryOp {
    pub(super) fn apply(&self, entries: &mut BTreeMap<String, u64>, landing: Landing) {
        match (self, landing) {
            (_, Landing::Lost) => {}
            (EntryOp::Create { name, ino }, _) => {
                entries.insert(name.clone(), *ino);
            }
            (EntryOp::Remove { name, ino }, _) => {
                if entries.get(name) == Some(ino) {
                    entries.remove(name);
                }
            }
            (EntryOp::Rename { from, to, ino }, Landing::Landed) => {
                if entries.get(from) == Some(ino) {
                    entries.remove(from);
                }
                entries.insert(to.clone(), *ino);
            }
            (EntryOp::Rename { to, .. }, Landing::HalfDone) => {
                entries.remove(to);
            }
        }
    }
}

/// A directory.
#[derive(Clone, Debug)]
pub(super) struct DirNode {
    pub(super) volatile: BTreeMap<String, u64>,
    pub(super) durable: BTreeMap<String, u64>,
    pub(super) pending: Vec<EntryOp>,
    pub(super) mode: u32,
}

#[derive(Clone, Debug)]
pub(super) enum Node {
    File(FileNode),
    Dir(DirNode),
}

#[derive(Clone, Debug)]
pub(super) struct Inode {
    pub(super) node: Node,
    pub(super) mtime: i64,
    pub(super) ctime: i64,
}

/// Everything that a crash can keep or lose: the part of the state a
/// post-crash machine is built from.
#[derive(Clone, Debug)]
pub(super) struct Disk {
    pub(super) inodes: BTreeMap<u64, Inode>,
    pub(super) next_ino: u64,
    /// A logical clock for mtime and ctime.
    pub(super) clock: i64,
    /// Counter behind the "random" part of temporary names, so that runs
    /// repeat exactly.
    pub(super) names: u64,
    /// Files bind-mounted in place (see `SimFs::set_mount_point`): their
    /// names can be neither renamed over, renamed nor removed (`EBUSY`).
    /// Like a container's mount table, they are there again after a crash.
    pub(super) mounted: std::collections::BTreeSet<u64>,
}

impl Disk {
    pub(super) fn new() -> Disk {
        let root = Inode {
            node: Node::Dir(DirNode {
                volatile: BTreeMap::new(),
                durable: BTreeMap::new(),
                pending: Vec::new(),
                mode: 0o755,
            }),
            mtime: 0,
            ctime: 0,
        };
        Disk {
            inodes: BTreeMap::from([(ROOT, root)]),
            next_ino: ROOT + 1,
            clock: 1,
            names: 0,
            mounted: std::collections::BTreeSet::new(),
        }
    }

    pub(super) fn tick(&mut self) -> i64 {
        self.clock += 1;
        self.clock
    }

    /// The directory inode and the file name of `path` (the directory must
    /// exist in the volatile view).
    pub(super) fn parent(&self, path: &Utf8Path) -> io::Result<(u64, String)> {
        let name = match path.components().next_back() {
            Some(Utf8Component::Normal(name)) => name.to_owned(),
            _ => return Err(invalid(path, "has no file name")),
        };
        let dir = path
            .parent()
            .ok_or_else(|| invalid(path, "has no parent"))?;
        let ino = self.lookup(dir)?.ok_or_else(|| {
            io::Error::new(io::ErrorKind::NotFound, format!("no directory `{dir}`"))
        })?;
        self.dir(ino)?;
        Ok((ino, name))
    }

    /// The inode `path` names in the volatile view.
    pub(super) fn lookup(&self, path: &Utf8Path) -> io::Result<Option<u64>> {
        let mut components = path.components();
        if components.next() != Some(Utf8Component::RootDir) {
            return Err(invalid(path, "is not absolute"));
        }
        let mut ino = ROOT;
        for component in components {
            let Utf8Component::Normal(name) = component else {
                return Err(invalid(path, "is not normalised"));
            };
            let Node::Dir(dir) = &self.inode(ino)?.node else {
                return Err(io::Error::new(
                    io::ErrorKind::NotADirectory,
                    format!("a parent of `{path}` is not a directory"),
                ));
            };
            match dir.volatile.get(name) {
                Some(&child) => ino = child,
                None => return Ok(None),
            }
        }
        Ok(Some(ino))
    }

    /// The inode `name` names in directory `dir` (volatile view).
    pub(super) fn entry(&self, dir: u64, name: &str) -> io::Result<Option<u64>> {
        Ok(self.dir(dir)?.volatile.get(name).copied())
    }

    pub(super) fn inode(&self, ino: u64) -> io::Result<&Inode> {
        self.inodes.get(&ino).ok_or_else(stale)
    }

    pub(super) fn inode_mut(&mut self, ino: u64) -> io::Result<&mut Inode> {
        self.inodes.get_mut(&ino).ok_or_else(stale)
    }

    /// A path that names directory `ino` in the volatile view, found from
    /// the root (what `/proc/self/fd` tells of a descriptor on Linux).
    pub(super) fn path_of_dir(&self, ino: u64) -> Option<Utf8PathBuf> {
        let mut pending = vec![(ROOT, Utf8PathBuf::from("/"))];
        while let Some((dir, path)) = pending.pop() {
            if dir == ino {
                return Some(path);
            }
            let Ok(node) = self.dir(dir) else { continue };
            for (name, &child) in &node.volatile {
                if matches!(self.inode(child).map(|i| &i.node), Ok(Node::Dir(_))) {
                    pending.push((child, path.join(name)));
                }
            }
        }
        None
    }

    pub(super) fn dir(&self, ino: u64) -> io::Result<&DirNode> {
        match &self.inode(ino)?.node {
            Node::Dir(dir) => Ok(dir),
            Node::File(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
        }
    }

    pub(super) fn dir_mut(&mut self, ino: u64) -> io::Result<&mut DirNode> {
        match &mut self.inode_mut(ino)?.node {
            Node::Dir(dir) => Ok(dir),
            Node::File(_) => Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                "not a directory",
            )),
        }
    }

    pub(super) fn file(&self, ino: u64) -> io::Result<&FileNode> {
        match &self.inode(ino)?.node {
            Node::File(file) => Ok(file),
            Node::Dir(_) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )),
        }
    }

    pub(super) fn file_mut(&mut self, ino: u64) -> io::Result<&mut FileNode> {
        match &mut self.inode_mut(ino)?.node {
            Node::File(file) => Ok(file),
            Node::Dir(_) => Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            )),
        }
    }

    pub(super) fn meta(&self, ino: u64) -> io::Result<Meta> {
        let inode = self.inode(ino)?;
        let (kind, size, mode, uid, gid) = match &inode.node {
            Node::File(file) => {
                let v = &file.volatile;
                (Kind::File, v.bytes.len() as u64, v.mode, v.uid, v.gid)
            }
            Node::Dir(dir) => (Kind::Dir, dir.volatile.len() as u64, dir.mode, UID, GID),
        };
        let nlink = self
            .inodes
            .values()
            .filter_map(|inode| match &inode.node {
                Node::Dir(dir) => Some(dir.volatile.values().filter(|&&i| i == ino).count()),
                Node::File(_) => None,
            })
            .sum::<usize>() as u64;
        Ok(Meta {
            kind,
            dev: DEV,
            ino,
            size,
            nlink,
            mtime: (inode.mtime, 0),
            ctime: (inode.ctime, 0),
            mode,
            uid,
            gid,
            mount_root: self.mounted.contains(&ino),
        })
    }

    /// Adds a new empty file to a directory: a new inode plus a pending
    /// "create entry".
    pub(super) fn create_file(&mut self, dir: u64, name: &str, mode: u32) -> io::Result<u64> {
        if self.dir(dir)?.volatile.contains_key(name) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("`{name}` exists"),
            ));
        }
        let ino = self.next_ino;
        self.next_ino += 1;
        let now = self.tick();
        let image = Image::empty(mode & !UMASK);
        self.inodes.insert(
            ino,
            Inode {
                node: Node::File(FileNode {
                    volatile: image.clone(),
                    base: image,
                    log: Vec::new(),
                }),
                mtime: now,
                ctime: now,
            },
        );
        let entries = self.dir_mut(dir)?;
        entries.volatile.insert(name.to_owned(), ino);
        entries.pending.push(EntryOp::Create {
            name: name.to_owned(),
            ino,
        });
        Ok(ino)
    }

    /// Records a data operation on a file: visible now, durable at fsync.
    pub(super) fn record(&mut self, ino: u64, op: DataOp) -> io::Result<()> {
        let now = self.tick();
        let inode = self.inode_mut(ino)?;
        if matches!(op, DataOp::Write { .. } | DataOp::SetLen(_)) {
            inode.mtime = now;
        }
        inode.ctime = now;
        let Node::File(file) = &mut inode.node else {
            return Err(io::Error::new(
                io::ErrorKind::IsADirectory,
                "is a directory",
            ));
        };
        file.volatile.apply(&op);
        file.log.push((op, Fate::Pending));
        Ok(())
    }

    /// fsync of a file: every pending operation becomes durable. When
    /// `failed`, they become doubtful instead, and the inode counts as clean.
    pub(super) fn sync_file(&mut self, ino: u64, failed: bool) -> io::Result<()> {
        let file = self.file_mut(ino)?;
        for (_, fate) in &mut file.log {
            if *fate == Fate::Pending {
                *fate = if failed {
                    Fate::Doubtful
                } else {
                    Fate::Durable
                };
            }
        }
        // Durable operations with nothing in doubt before them are simply
        // part of the durable image.
        let settled = file
            .log
            .iter()
            .take_while(|(_, fate)| *fate == Fate::Durable)
            .count();
        for (op, _) in file.log.drain(..settled) {
            file.base.apply(&op);
        }
        Ok(())
    }

    /// fsync of a directory: every pending entry operation becomes durable.
    pub(super) fn sync_dir(&mut self, ino: u64) -> io::Result<()> {
        let dir = self.dir_mut(ino)?;
        for op in std::mem::take(&mut dir.pending) {
            op.apply(&mut dir.durable, Landing::Landed);
        }
        Ok(())
    }

    /// The next "random" part of a temporary file name.
    pub(super) fn next_random(&mut self, len: usize) -> String {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
        self.names += 1;
        // A fixed odd multiplier spreads consecutive counters over the
        // alphabet; the names only need to be distinct and repeatable.
        let mut x = self.names.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        (0..len)
            .map(|_| {
                let c = ALPHABET[(x % ALPHABET.len() as u64) as usize];
                x = x / ALPHABET.len() as u64 + self.names;
                char::from(c)
            })
            .collect()
    }
}

/// The whole simulated machine: the disk, plus what only lives while it
/// runs (locks, the operation count, scheduled faults).
pub(super) struct State {
    pub(super) disk: Disk,
    /// Seam operations so far.
    pub(super) ops: u64,
    pub(super) trace: Vec<Operation>,
    pub(super) plan: BTreeMap<u64, Planned>,
    pub(super) crashed: bool,
    /// Guard inode -> holder.
    /// Per guard inode, its holders and whether each holds it shared.
    pub(super) locks: BTreeMap<u64, Vec<(Owner, bool)>>,
    /// `flock` and POSIX locks are one lock, as on NFS; by default they
    /// are independent, as on local Linux filesystems.
    pub(super) merged_locks: bool,
    pub(super) next_handle: u64,
    pub(super) unlock_hook: Option<Box<dyn FnOnce() + Send>>,
    /// The mutant whose fault this filesystem injects (see `SimFs::mutant`).
    #[cfg(txfile_mutants)]
    pub(super) mutant: crate::mutants::Mutant,
    /// Run after the next operation of their kind (`SimFs::after_next`).
    pub(super) after_hooks: Vec<(OpKind, Box<dyn FnOnce() + Send>)>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("ops", &self.ops)
            .field("crashed", &self.crashed)
            .field("locks", &self.locks)
            .finish_non_exhaustive()
    }
}

/// Who holds a lock: the open file for `flock`, the process for POSIX locks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Owner {
    File(u64),
    Process(u64),
}

impl Owner {
    /// Both `flock` locks, or both POSIX locks.
    pub(super) fn same_kind(self, other: Owner) -> bool {
        matches!(
            (self, other),
            (Owner::File(_), Owner::File(_)) | (Owner::Process(_), Owner::Process(_))
        )
    }
}

/// What the operation that was just counted should do.
#[derive(Debug)]
pub(super) enum Step {
    Run,
    /// Run (a write only partly), then the machine loses power.
    RunThenCrash,
    Fail(super::Fault),
}

impl State {
    pub(super) fn new(disk: Disk) -> State {
        State {
            disk,
            ops: 0,
            trace: Vec::new(),
            plan: BTreeMap::new(),
            crashed: false,
            locks: BTreeMap::new(),
            merged_locks: false,
            next_handle: 1,
            unlock_hook: None,
            #[cfg(txfile_mutants)]
            mutant: crate::mutants::Mutant::None,
            after_hooks: Vec::new(),
        }
    }

    /// Counts one seam operation and says what it should do.
    pub(super) fn step(&mut self, kind: OpKind, path: &Utf8Path) -> io::Result<Step> {
        if self.crashed {
            return Err(down());
        }
        let index = self.ops;
        self.ops += 1;
        self.trace.push(Operation {
            index,
            kind,
            path: path.to_owned(),
        });
        Ok(match self.plan.remove(&index) {
            None => Step::Run,
            Some(Planned::CrashBefore) => {
                self.crash();
                return Err(down());
            }
            Some(Planned::CrashDuring) => Step::RunThenCrash,
            Some(Planned::Fail(fault)) => Step::Fail(fault),
        })
    }

    pub(super) fn crash(&mut self) {
        self.crashed = true;
        self.locks.clear();
    }

    pub(super) fn handle(&mut self) -> u64 {
        self.next_handle += 1;
        self.next_handle
    }
}

/// The error every operation returns once the machine has lost power.
pub(super) fn down() -> io::Error {
    io::Error::other("simulated power loss: the machine is down")
}

fn stale() -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, "stale inode")
}

fn invalid(path: &Utf8Path, why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, format!("`{path}` {why}"))
}
