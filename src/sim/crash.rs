//! Building the machines that a power loss can leave behind.
//!
//! Each post-crash state is one combination of independent choices, walked
//! in a fixed order (inodes by number; within an inode, its operations
//! oldest first):
//! - every pending directory entry operation: lost or landed (and, in
//!   paranoid mode, a rename may be half done);
//! - every data operation not known to be durable (pending, or written
//!   before a failed fsync): lost, or landed with each run of sectors new,
//!   old, zeros or garbage (a metadata operation: lost or landed).
//!
//! The same walk counts the choices and builds a state from them, so an
//! index in `0..count` names exactly one state.

use std::collections::BTreeMap;

use super::SimFs;
use super::state::{Disk, EntryOp, Fate, FileNode, Image, Inode, Landing, Node, ROOT};

/// The unit of a torn write.
pub(super) const SECTOR: u64 = 512;
/// A write over more sectors than this is torn in this many runs of
/// consecutive sectors, so that the choices stay countable.
const MAX_RUNS: u32 = 8;
/// What a garbage sector reads as.
const GARBAGE: u8 = 0xA5;

/// How many post-crash states to enumerate, and in which model.
///
/// # Examples
///
/// ```
/// use txfile::sim::Enumeration;
/// let e = Enumeration::new().max_states(1000).paranoid_rename(false);
/// # let _ = e;
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Enumeration {
    paranoid_rename: bool,
    max_states: u64,
}

impl Default for Enumeration {
    fn default() -> Self {
        Enumeration::new()
    }
}

impl Enumeration {
    /// The default bound: at most 65 536 states, renames atomic.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = txfile::sim::Enumeration::new();
    /// # let _ = e;
    /// ```
    pub fn new() -> Self {
        Enumeration {
            paranoid_rename: false,
            max_states: 1 << 16,
        }
    }

    /// Whether a rename may also be half done: its destination removed and
    /// its source still present, as in ALICE's default model. No protocol
    /// built on rename survives that (the old contents are gone and the new
    /// ones sit under the temporary name), so it is off by default, as on
    /// every journaling or copy-on-write filesystem.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = txfile::sim::Enumeration::new().paranoid_rename(true);
    /// # let _ = e;
    /// ```
    pub fn paranoid_rename(mut self, on: bool) -> Self {
        self.paranoid_rename = on;
        self
    }

    /// Refuse (with [`TooManyStates`]) to enumerate more states than this.
    /// By default 65 536.
    ///
    /// # Examples
    ///
    /// ```
    /// let e = txfile::sim::Enumeration::new().max_states(10);
    /// # let _ = e;
    /// ```
    pub fn max_states(mut self, max: u64) -> Self {
        self.max_states = max;
        self
    }
}

/// More post-crash states than the [`Enumeration`] bound allows.
///
/// # Examples
///
/// ```
/// use txfile::sim::{Enumeration, SimFs};
/// let sim = SimFs::new();
/// sim.create_dir_all("/d")?;
/// // Two guard files (created by a first transaction) whose entries are not
/// // durable yet: 2 x 2 states.
/// let a = txfile::Options::new().filesystem(&sim).open("/d/a")?;
/// let b = txfile::Options::new().filesystem(&sim).open("/d/b")?;
/// a.begin()?.rollback();
/// b.begin()?.rollback();
/// let err = sim.crash_states(&Enumeration::new().max_states(2)).unwrap_err();
/// assert_eq!((err.states, err.max), (4, 2));
/// # drop((a, b));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{states} post-crash states exceed the bound of {max}")]
pub struct TooManyStates {
    /// How many states there are (saturated at `u64::MAX`).
    pub states: u64,
    /// The bound that was asked for.
    pub max: u64,
}

/// Every post-crash state of a simulated machine, each a new [`SimFs`];
/// see [`SimFs::crash_states`].
///
/// # Examples
///
/// ```
/// use txfile::sim::{Enumeration, SimFs};
/// let sim = SimFs::new();
/// let states = sim.crash_states(&Enumeration::new())?;
/// assert_eq!(states.len(), 1); // nothing pending
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct CrashStates {
    disk: Disk,
    paranoid: bool,
    radices: Vec<u64>,
    next: u64,
    total: u64,
}

impl CrashStates {
    pub(super) fn new(disk: Disk, e: &Enumeration) -> Result<CrashStates, TooManyStates> {
        let mut radices = Vec::new();
        build(&disk, e.paranoid_rename, &mut |radix| {
            radices.push(radix);
            0
        });
        let total = radices.iter().fold(1u64, |acc, &r| acc.saturating_mul(r));
        if total > e.max_states {
            return Err(TooManyStates {
                states: total,
                max: e.max_states,
            });
        }
        Ok(CrashStates {
            disk,
            paranoid: e.paranoid_rename,
            radices,
            next: 0,
            total,
        })
    }
}

impl Iterator for CrashStates {
    type Item = SimFs;

    fn next(&mut self) -> Option<SimFs> {
        if self.next >= self.total {
            return None;
        }
        let mut rest = self.next;
        self.next += 1;
        let mut digits = self.radices.iter().map(|&radix| {
            let digit = rest % radix;
            rest /= radix;
            digit
        });
        let disk = build(&self.disk, self.paranoid, &mut |_| {
            digits.next().unwrap_or(0)
        });
        Some(SimFs::from_disk(disk))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let left = usize::try_from(self.total - self.next).unwrap_or(usize::MAX);
        (left, Some(left))
    }
}

impl ExactSizeIterator for CrashStates {}

/// Builds one post-crash disk, asking `choose(radix)` for every choice (an
/// answer at or above `radix` is taken modulo `radix`).
pub(super) fn build(disk: &Disk, paranoid: bool, choose: &mut dyn FnMut(u64) -> u64) -> Disk {
    let mut inodes = BTreeMap::new();
    for (&ino, inode) in &disk.inodes {
        let node = match &inode.node {
            Node::Dir(dir) => {
                let mut entries = dir.durable.clone();
                for op in &dir.pending {
                    let rename = matches!(op, EntryOp::Rename { .. });
                    let radix = if paranoid && rename { 3 } else { 2 };
                    let landing = match choose(radix) % radix {
                        0 => Landing::Lost,
                        1 => Landing::Landed,
                        _ => Landing::HalfDone,
                    };
                    op.apply(&mut entries, landing);
                }
                Node::Dir(super::state::DirNode {
                    volatile: entries.clone(),
                    durable: entries,
                    pending: Vec::new(),
                    mode: dir.mode,
                })
            }
            Node::File(file) => {
                let image = crash_image(file, choose);
                Node::File(FileNode {
                    volatile: image.clone(),
                    base: image,
                    log: Vec::new(),
                })
            }
        };
        inodes.insert(
            ino,
            Inode {
                node,
                mtime: inode.mtime,
                ctime: inode.ctime,
            },
        );
    }
    keep_reachable(&mut inodes);
    Disk {
        inodes,
        next_ino: disk.next_ino,
        clock: disk.clock + 1,
        names: disk.names,
        mounted: disk.mounted.clone(),
    }
}

fn crash_image(file: &FileNode, choose: &mut dyn FnMut(u64) -> u64) -> Image {
    let mut image = file.base.clone();
    for (op, fate) in &file.log {
        if *fate == Fate::Durable {
            image.apply(op);
            continue;
        }
        match op {
            super::state::DataOp::Write { offset, bytes } => {
                let runs = runs(bytes.len() as u64);
                let radix = 1 + 4u64.pow(runs);
                let choice = choose(radix) % radix;
                if choice > 0 {
                    tear(&mut image, *offset, bytes, choice - 1, runs);
                }
            }
            _ => {
                if choose(2) % 2 == 1 {
                    image.apply(op);
                }
            }
        }
    }
    image
}

fn sectors(offset: u64, len: u64) -> u64 {
    if len == 0 {
        return 0;
    }
    (offset + len - 1) / SECTOR - offset / SECTOR + 1
}

fn runs(len: u64) -> u32 {
    // Runs are counted on the write's own length; an unaligned write may
    // touch one sector more, which then joins the last run.
    (len.div_ceil(SECTOR)).min(u64::from(MAX_RUNS)) as u32
}

/// Lands a write with each run of sectors as chosen by `pattern` (base 4,
/// run 0 first): new, old, zeros, garbage. The file grows to cover the
/// write whatever lands (an append whose data did not make it reads as
/// zeros).
fn tear(image: &mut Image, offset: u64, bytes: &[u8], pattern: u64, runs: u32) {
    let start = offset;
    let end = offset + bytes.len() as u64;
    if (image.bytes.len() as u64) < end {
        image.bytes.resize(end as usize, 0);
    }
    let first = start / SECTOR;
    let count = sectors(offset, bytes.len() as u64);
    for i in 0..count {
        let sector = first + i;
        let run = if runs == 0 {
            0
        } else {
            (i * u64::from(runs) / count) as u32
        };
        let how = (pattern / 4u64.pow(run)) % 4;
        let from = start.max(sector * SECTOR);
        let to = end.min((sector + 1) * SECTOR);
        let target = &mut image.bytes[from as usize..to as usize];
        match how {
            0 => target.copy_from_slice(&bytes[(from - start) as usize..(to - start) as usize]),
            1 => {}
            2 => target.fill(0),
            _ => target.fill(GARBAGE),
        }
    }
}

/// Drops inodes that no surviving directory entry reaches.
fn keep_reachable(inodes: &mut BTreeMap<u64, Inode>) {
    let mut seen = std::collections::BTreeSet::from([ROOT]);
    let mut todo = vec![ROOT];
    while let Some(ino) = todo.pop() {
        if let Some(Inode {
            node: Node::Dir(dir),
            ..
        }) = inodes.get(&ino)
        {
            for &child in dir.volatile.values() {
                if seen.insert(child) {
                    todo.push(child);
                }
            }
        }
    }
    inodes.retain(|ino, _| seen.contains(ino));
}
