//! `crash_sequences`: a sequence of transactions on up to three targets in
//! one directory of the simulated filesystem, an optional injected fault, a
//! power loss at any operation (or in the middle of a write), a post-crash
//! state picked by the fuzzer's bytes, recovery (optionally crashing again in
//! the middle of it), and the invariants of `docs/crash-model.md` against a model
//! of what each target may hold.
//!
//! Steps include batches: one `Batch` commit over two or three of the
//! targets (or its rollback, or a consistent read of them), so that crashes
//! and faults land inside batch commits and inside the recovery that the
//! next `begin` on a member (or `Options::recover`) runs. The model is the
//! set of joint states of the targets that the program cannot rule out: a
//! batch moves all its members at once, so after recovery the members of a
//! batch are all old or all new, never a mix. Before recovery a mix is
//! allowed (the journal on disk decides), so right after a crash each
//! target is only checked against its own possible versions.
//!
//! Beside and behind the targets (issue 12): others' files planted at the
//! targets' own journal and temporary names (a user's notes, another user's
//! file), a file holding data at the guard name of a target `x` that every
//! check tries to open, and stale journals whose records also point into a
//! protected directory `/p`. None of them may change, and nothing in `/p`
//! may appear, change or go, through every crash and recovery.
//!
//! Every run of the sequence is deterministic (the simulated filesystem's
//! "random" temporary names come from its own state), so the sequence runs
//! once to learn its operations and again with the crash.

use std::collections::BTreeMap;
use std::io::Write;

use arbitrary::{Arbitrary, Unstructured};
use txfile::sim::{Fault, JOURNAL_BLOCK, OpKind, SimFs, encode_journal, encode_journal_void};
use txfile::{Batch, Error, LockStyle, Options, TxFile};

use txfile_testkit::{FOREIGN, is_leftover_of, is_temp_of, journal_name, owned_by, show};

use crate::{DIR, NAMES, guard_path, target_path, with_mutant};

const MAX_STEPS: usize = 8;
/// Small contents: up to a little over two 512-byte sectors, so that a torn
/// write can mix sectors.
const MAX_SMALL: usize = 1100;
/// Streamed contents: past the crate's 64 KiB in-memory buffer, twice.
const MAX_STREAM: usize = 160 * 1024;
const MAX_CHOICE_BYTES: usize = 256;

/// Files of others planted at the targets' own derived names start with
/// this: txfile must leave them exactly as they are.
const PLANTED: &[u8] = b"planted: ";

/// A directory txfile has no business in; planted journals point into it.
const PROTECTED_DIR: &str = "/p";
const PROTECTED: &[(&str, &[u8])] = &[
    ("/p/victim", b"the victim's contents"),
    (
        "/p/.victim.Zz9Yy8Xx.txtmp",
        b"a killed writer's half-written file",
    ),
    (
        "/p/.victim.txjournal",
        b"a user's file at the victim's journal name",
    ),
    ("/p/other.lock", b""),
];

/// Whether `contents` is a file of others planted at a derived name.
fn is_planted(contents: &Version) -> bool {
    contents.as_deref().is_some_and(|c| c.starts_with(PLANTED))
}

/// The name a stale temporary file of `name` gets in the initial state: a
/// writer died holding it. It is the target's own (and must be swept) only
/// when `name` is one of the targets in use; otherwise it is foreign.
fn stale_temp(name: &str) -> String {
    format!(".{name}.Zz9Yy8Xx.txtmp")
}

type Version = Option<Vec<u8>>;
/// What one commit tried to set: (target, version) pairs.
type Changes = Vec<(usize, Version)>;

/// Contents of bounded size that cost few input bytes: `pattern` repeated to
/// `len` bytes (`len` taken modulo the bound).
#[derive(Clone, Debug)]
pub struct Contents(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Contents {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let len = usize::from(u.arbitrary::<u16>()?) % (MAX_SMALL + 1);
        let pattern_len = u.int_in_range(1..=16)?;
        let pattern = u.bytes(pattern_len.min(u.len())).unwrap_or_default();
        Ok(Contents(repeat(
            if pattern.is_empty() { b"x" } else { pattern },
            len,
        )))
    }
}

fn repeat(pattern: &[u8], len: usize) -> Vec<u8> {
    pattern.iter().copied().cycle().take(len).collect()
}

/// One transaction (or handle change) on target `target % targets`.
#[derive(Arbitrary, Clone, Debug)]
pub enum Step {
    /// begin, write, commit; or the same through `TxFile::update`.
    Commit {
        target: u8,
        contents: Contents,
        via_update: bool,
    },
    /// begin, write, roll back.
    Rollback { target: u8, contents: Contents },
    /// begin, write the old contents back, commit: nothing to write.
    NoOpCommit { target: u8 },
    /// begin, stream `len` bytes (modulo the bound) in `chunk`-sized writes,
    /// commit.
    Stream {
        target: u8,
        len: u32,
        chunk: u16,
        seed: u8,
    },
    /// Drop the target's handle and open a new one, in the same process
    /// or in a new one (which shares nothing in memory with the old).
    Reopen { target: u8, new_process: bool },
    /// A batch over the targets of `members` (a bit mask; all targets when
    /// it names fewer than two), in the order `order` picks: each member
    /// gets new contents or keeps what it holds.
    Batch {
        members: u8,
        order: u8,
        contents: [Member; 3],
        how: BatchHow,
    },
    /// `Batch::read` of the targets of `members`, in the order `order`
    /// picks: one of the joint states the program cannot rule out.
    BatchRead { members: u8, order: u8 },
}

/// What a batch writes to one member.
#[derive(Arbitrary, Clone, Debug)]
pub enum Member {
    New(Contents),
    /// The member's current contents (empty when it does not exist, which
    /// creates it): nothing to write, unless it is missing.
    Keep,
}

/// How a batch step runs.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum BatchHow {
    /// `Batch::update`.
    Update,
    /// `Batch::begin`, writes through `member`, `commit`.
    Commit,
    /// `Batch::begin`, writes, `rollback`.
    Rollback,
}

/// A journal a dead batch commit left under a target's journal name in the
/// initial state. The records name the target (and the next target in use,
/// when `pair` and there is one).
#[derive(Arbitrary, Clone, Debug)]
pub enum StaleJournal {
    /// Cut to `cut` bytes (modulo its length): never committed. Its records
    /// name the dead writer's temporary files (`stale_temps`).
    Torn { pair: bool, cut: u16 },
    /// Complete, then voided by a void entry in the next block, as a commit
    /// whose journal fsync failed leaves it: never committed.
    Voided { pair: bool },
    /// Not a journal at all.
    Garbage { bytes: Vec<u8> },
    /// Complete, every staged file already renamed (a crash after the
    /// renames were durable and before the journal was removed): committed,
    /// and the targets hold its versions already.
    Done { pair: bool },
}

/// The operation kinds a fault can be injected into.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum FaultOp {
    SyncFile,
    SyncDir,
    Rename,
    Write,
    CreateTemp,
    Remove,
    SetMode,
    List,
    Read,
    OpenGuard,
    Lock,
}

impl FaultOp {
    fn kind(self) -> OpKind {
        match self {
            FaultOp::SyncFile => OpKind::SyncFile,
            FaultOp::SyncDir => OpKind::SyncDir,
            FaultOp::Rename => OpKind::Rename,
            FaultOp::Write => OpKind::Write,
            FaultOp::CreateTemp => OpKind::CreateTemp,
            FaultOp::Remove => OpKind::Remove,
            FaultOp::SetMode => OpKind::SetMode,
            FaultOp::List => OpKind::List,
            FaultOp::Read => OpKind::Read,
            FaultOp::OpenGuard => OpKind::OpenGuard,
            FaultOp::Lock => OpKind::Lock,
        }
    }
}

#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum FaultKind {
    Io,
    NoSpace,
    PermissionDenied,
}

/// Fail the `nth` (modulo their number) operation of kind `op`.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct FaultSpec {
    pub op: FaultOp,
    pub nth: u8,
    pub fault: FaultKind,
}

/// Lose power before operation `at` (modulo the number of operations, plus
/// one for "after the last"), or in the middle of it if it is a write and
/// `mid_write` is set.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub struct CrashSpec {
    pub at: u16,
    pub mid_write: bool,
}

/// Files of others planted at a target's own derived names in the initial
/// state.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Plant {
    /// A user's own file (`0644`, data) at the journal name: not a journal.
    /// (Used only when no stale journal takes the name.)
    UserFileAtJournalName,
    /// Another user's file named like a temporary file of the target.
    OtherUsersTemp,
    /// Both.
    Both,
}

/// One fuzz case.
#[derive(Arbitrary, Clone, Debug)]
pub struct Input {
    /// 1 + `targets % 3` targets: `a`, `a.b`, `a.b.c`.
    pub targets: u8,
    pub initial: [Option<Contents>; 3],
    /// A stale temporary file of each name in the initial state.
    pub stale_temps: [bool; 3],
    /// A left-over guard file of each name in the initial state.
    pub stale_guards: [bool; 3],
    pub posix_locks: bool,
    pub steps: Vec<Step>,
    pub fault: Option<FaultSpec>,
    pub crash: CrashSpec,
    /// Whether a rename may be half done at the crash (ALICE's default
    /// model): then a target may also be absent (no rename-based protocol
    /// survives that), but never torn.
    pub paranoid: bool,
    /// Per target: recovery commits at once instead of rolling back first.
    pub recover_by_commit: [bool; 3],
    /// Lose power again in the middle of recovery.
    pub crash_in_recovery: Option<CrashSpec>,
    /// A second injected fault, among the operations of the run with the
    /// first one (two faults reach the paths where a batch commit cannot
    /// even void its journal).
    pub second_fault: Option<FaultSpec>,
    /// A journal left by a dead batch commit under each target's name.
    pub stale_journals: [Option<StaleJournal>; 3],
    /// Recovery starts with `Options::recover` of the directory.
    pub explicit_recover: bool,
    /// Others' files at each target's derived names.
    pub planted: [Option<Plant>; 3],
    /// The post-crash choices (which pending operations landed, how writes
    /// tore), read as needed.
    pub choices: Vec<u8>,
}

impl Input {
    fn target_count(&self) -> usize {
        1 + usize::from(self.targets % 3)
    }

    fn style(&self) -> LockStyle {
        if self.posix_locks {
            LockStyle::Posix
        } else {
            LockStyle::Flock
        }
    }
}

/// Answers `crash_state_with`'s questions from the fuzzer's bytes: one byte
/// per choice of up to 256 options, four for larger ones; 0 ("lost") once
/// the bytes run out.
struct Chooser<'a> {
    bytes: &'a [u8],
}

impl Chooser<'_> {
    fn choose(&mut self, options: u64) -> u64 {
        let width = if options <= 256 { 1 } else { 4 };
        let mut value = 0u64;
        for i in 0..width {
            let byte = self.bytes.first().copied().unwrap_or(0);
            self.bytes = self.bytes.get(1..).unwrap_or_default();
            value |= u64::from(byte) << (8 * i);
        }
        value % options
    }
}

/// What the program cannot rule out: the joint states of the targets
/// that may be durable. Versions are kept once in a table and states refer
/// to them by index.
#[derive(Clone, Debug)]
struct Model {
    versions: Vec<Version>,
    /// One index into `versions` per target, for every possible state.
    states: Vec<Vec<usize>>,
}

impl Model {
    fn new(initial: Vec<Version>) -> Model {
        let mut model = Model {
            versions: Vec::new(),
            states: Vec::new(),
        };
        let state = initial.into_iter().map(|v| model.intern(v)).collect();
        model.states.push(state);
        model
    }

    fn intern(&mut self, version: Version) -> usize {
        match self.versions.iter().position(|v| *v == version) {
            Some(i) => i,
            None => {
                self.versions.push(version);
                self.versions.len() - 1
            }
        }
    }

    /// A commit of `changes` (target, version) was started, as one: every
    /// target moves or none does. `acked`: it returned Ok, so every
    /// possible state now has the new versions; otherwise (an error, or
    /// the crash) the old states remain possible too.
    fn commit(&mut self, changes: &[(usize, Version)], acked: bool) {
        let changes: Vec<(usize, usize)> = changes
            .iter()
            .map(|(t, v)| (*t, self.intern(v.clone())))
            .collect();
        let moved: Vec<Vec<usize>> = self
            .states
            .iter()
            .map(|state| {
                let mut state = state.clone();
                for &(t, v) in &changes {
                    state[t] = v;
                }
                state
            })
            .collect();
        if acked {
            self.states.clear();
        }
        for state in moved {
            if !self.states.contains(&state) {
                self.states.push(state);
            }
        }
    }

    /// What target `t` may hold on its own.
    fn allowed(&self, t: usize) -> Vec<Version> {
        let mut out: Vec<Version> = Vec::new();
        for state in &self.states {
            let v = &self.versions[state[t]];
            if !out.contains(v) {
                out.push(v.clone());
            }
        }
        out
    }

    /// Whether the targets `targets` holding `seen` is one possible state.
    /// `absent_ok`: a missing target matches anything (a half-done rename
    /// in the paranoid model).
    fn contains(&self, targets: &[usize], seen: &[Version], absent_ok: bool) -> bool {
        self.states.iter().any(|state| {
            targets
                .iter()
                .zip(seen)
                .all(|(&t, v)| (absent_ok && v.is_none()) || self.versions[state[t]] == *v)
        })
    }

    fn describe(&self, targets: &[usize]) -> String {
        let states: Vec<String> = self
            .states
            .iter()
            .map(|state| {
                let parts: Vec<String> = targets
                    .iter()
                    .map(|&t| format!("{}={}", NAMES[t], show(&self.versions[state[t]])))
                    .collect();
                format!("({})", parts.join(", "))
            })
            .collect();
        states.join(" or ")
    }
}

fn describe_seen(targets: &[usize], seen: &[Version]) -> String {
    let parts: Vec<String> = targets
        .iter()
        .zip(seen)
        .map(|(&t, v)| format!("{}={}", NAMES[t], show(v)))
        .collect();
    format!("({})", parts.join(", "))
}

/// One run of the sequence.
struct Run {
    sim: SimFs,
    model: Model,
    /// Operation index ranges of commits that returned Ok.
    ok_commits: Vec<(u64, u64)>,
    /// A `Batch::read` ran after a batch commit failed: it may have
    /// recovered a torn journal, which removes the journal's names and
    /// leaves the staged files to the sweep of each member's next `begin`.
    sweep_deferred: bool,
}

fn options(sim: &SimFs, style: LockStyle) -> Options {
    let options = Options::new()
        .filesystem(sim)
        .lock_style(style)
        .mode(0o600);
    with_mutant(options, sim)
}

/// The initial machine: everything durable.
fn setup(input: &Input) -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(DIR).expect("setup: directory");
    for (name, contents) in FOREIGN {
        sim.write_file(target_path(name), contents)
            .expect("setup: foreign file");
    }
    for (i, name) in NAMES.iter().enumerate() {
        if let Some(Contents(bytes)) = &input.initial[i] {
            sim.write_file(target_path(name), bytes)
                .expect("setup: target");
        }
        if input.stale_temps[i] {
            sim.write_file(
                target_path(&stale_temp(name)),
                b"half-written by a dead writer",
            )
            .expect("setup: stale temporary file");
        }
        if input.stale_guards[i] {
            sim.write_file(guard_path(name), b"")
                .expect("setup: left-over guard");
        }
    }
    let count = input.target_count();
    for (i, stale) in input.stale_journals.iter().enumerate().take(count) {
        if let Some(stale) = stale {
            let path = target_path(&journal_name(NAMES[i]));
            sim.write_file(&path, &stale_journal(stale, i, count))
                .expect("setup: stale journal");
            // As a batch commit of this user creates it.
            sim.set_mode(&path, 0o600).expect("setup: journal mode");
        }
    }
    for (i, plant) in input.planted.iter().enumerate().take(count) {
        let name = NAMES[i];
        let (journal, temp) = match plant {
            None => continue,
            Some(Plant::UserFileAtJournalName) => (true, false),
            Some(Plant::OtherUsersTemp) => (false, true),
            Some(Plant::Both) => (true, true),
        };
        if journal && input.stale_journals[i].is_none() {
            let contents = [PLANTED, b"a user's notes at ", name.as_bytes()].concat();
            sim.write_file(target_path(&journal_name(name)), &contents)
                .expect("setup: user's file");
        }
        if temp {
            let path = target_path(&format!(".{name}.Pp7Oo6Ii.txtmp"));
            let contents = [PLANTED, b"another user's file beside ", name.as_bytes()].concat();
            sim.write_file(&path, &contents)
                .expect("setup: other user's file");
            sim.set_owner(&path, 2000, 2000).expect("setup: owner");
        }
    }
    sim.create_dir_all(PROTECTED_DIR)
        .expect("setup: protected directory");
    for (path, contents) in PROTECTED {
        sim.write_file(path, contents)
            .expect("setup: protected file");
    }
    sim
}

/// Invariant 6 outside the directory: planted journals point into the
/// protected directory, and nothing there may change, appear or go.
fn check_protected(sim: &SimFs, when: &str) {
    let mut expected: Vec<&str> = PROTECTED.iter().map(|(p, _)| &p[3..]).collect();
    expected.sort_unstable();
    let now = sim
        .list_dir(PROTECTED_DIR)
        .expect("list the protected directory");
    assert!(
        now == expected,
        "invariant 6 (collateral): {when}: the protected directory holds {now:?}"
    );
    for (path, contents) in PROTECTED {
        let now = sim.read_file(path).expect("read a protected file");
        assert!(
            now.as_deref() == Some(*contents),
            "invariant 6 (collateral): {when}: {path} is {}",
            show(&now)
        );
    }
}

/// Target `x`, whose guard name is taken by a file holding data: opening it
/// is refused, and (checked with the foreign files) `x.lock` keeps its data.
fn check_foreign_guard(input: &Input, sim: &SimFs, when: &str) {
    let result = options(sim, input.style())
        .open(target_path("x"))
        .and_then(|file| file.update(|_| Ok::<_, std::io::Error>(b"x".to_vec())));
    assert!(
        matches!(result, Err(Error::ForeignGuard { .. })),
        "invariant 6 (collateral): {when}: x.lock, which holds data, was used as a guard: {result:?}"
    );
}

/// The bytes of a stale journal under target `t`'s name.
fn stale_journal(stale: &StaleJournal, t: usize, count: usize) -> Vec<u8> {
    let records = |pair: bool, staged: &dyn Fn(&str) -> String| {
        let mut members = vec![t];
        if pair && count > 1 {
            members.push((t + 1) % count);
        }
        let mut records: Vec<(String, String, String)> = members
            .into_iter()
            .map(|m| (DIR.to_owned(), NAMES[m].to_owned(), staged(NAMES[m])))
            .collect();
        // A record pointing into another directory, at a file whose
        // temporary file is there: the protected directory has no journal
        // of ours, so recovery must not act on it.
        records.push((
            PROTECTED_DIR.to_owned(),
            "victim".to_owned(),
            ".victim.Zz9Yy8Xx.txtmp".to_owned(),
        ));
        encode_journal(&records)
    };
    match stale {
        StaleJournal::Torn { pair, cut } => {
            let bytes = records(*pair, &stale_temp);
            bytes[..usize::from(*cut) % bytes.len()].to_vec()
        }
        StaleJournal::Voided { pair } => {
            let mut bytes = records(*pair, &stale_temp);
            bytes.resize(JOURNAL_BLOCK, 0);
            bytes.extend(encode_journal_void());
            bytes
        }
        StaleJournal::Garbage { bytes } => bytes.iter().take(16).copied().collect(),
        StaleJournal::Done { pair } => records(*pair, &|name| format!(".{name}.Qq1Ww2Ee.txtmp")),
    }
}

/// The directory's files and contents.
fn snapshot(sim: &SimFs) -> BTreeMap<String, Version> {
    sim.list_dir(DIR)
        .expect("list the directory")
        .into_iter()
        .map(|name| {
            let contents = sim.read_file(target_path(&name)).expect("read a file");
            (name, contents)
        })
        .collect()
}

fn stream_contents(len: u32, seed: u8) -> Vec<u8> {
    let len = len as usize % (MAX_STREAM + 1);
    (0..len)
        .map(|i| seed.wrapping_add((i / 509) as u8).wrapping_mul(31) ^ (i as u8))
        .collect()
}

fn write_error(file: &TxFile, e: std::io::Error) -> Error {
    Error::Io {
        op: txfile::Op::Write,
        path: file.path().to_owned(),
        source: e,
    }
}

/// The targets of a batch step: those of the bit mask `members` (all of
/// them when it names fewer than two), in the order `order` picks.
fn batch_members(members: u8, order: u8, count: usize) -> Vec<usize> {
    let mut chosen: Vec<usize> = (0..count).filter(|t| members >> t & 1 == 1).collect();
    if chosen.len() < 2 {
        chosen = (0..count).collect();
    }
    let mut order = usize::from(order);
    let n = chosen.len();
    for i in 0..n {
        chosen.swap(i, i + order % (n - i));
        order /= n - i;
    }
    chosen
}

/// Runs the steps until the machine goes down, with `faults` and `crash`
/// scheduled.
fn run(input: &Input, faults: &[(u64, Fault)], crash: Option<(u64, bool)>) -> Run {
    let sim = setup(input);
    for &(index, fault) in faults {
        sim.fail_at(index, fault);
    }
    match crash {
        Some((index, true)) => sim.crash_during(index),
        Some((index, false)) => sim.crash_at(index),
        None => {}
    }
    let count = input.target_count();
    let mut model = Model::new(
        (0..count)
            .map(|i| input.initial[i].as_ref().map(|c| c.0.clone()))
            .collect(),
    );
    let mut ok_commits = Vec::new();
    let mut batch_failed = false;
    let mut sweep_deferred = false;
    let mut handles: Vec<Option<TxFile>> = vec![None; count];
    // The process each handle was opened in.
    let mut opened_in: Vec<u64> = vec![0; count];
    // The process new handles are opened in.
    let mut process = sim.clone();
    let style = input.style();
    for step in input.steps.iter().take(MAX_STEPS) {
        if sim.is_crashed() {
            break;
        }
        let (target, batch) = match step {
            Step::Commit { target, .. }
            | Step::Rollback { target, .. }
            | Step::NoOpCommit { target }
            | Step::Stream { target, .. }
            | Step::Reopen { target, .. } => (usize::from(*target) % count, None),
            Step::Batch { members, order, .. } | Step::BatchRead { members, order } => {
                let chosen = batch_members(*members, *order, count);
                (chosen[0], Some(chosen))
            }
        };
        if let Step::Reopen { new_process, .. } = step {
            handles[target] = None;
            if *new_process {
                process = sim.process();
            }
        }
        let start = sim.op_count();
        if let Some(chosen) = batch {
            // Members' handles from this process (a batch's members share
            // one filesystem instance).
            for &t in &chosen {
                if handles[t].is_none() || opened_in[t] != process.id() {
                    handles[t] = options(&process, style).open(target_path(NAMES[t])).ok();
                    opened_in[t] = process.id();
                }
            }
            let Some(files) = chosen
                .iter()
                .map(|&t| handles[t].clone())
                .collect::<Option<Vec<TxFile>>>()
            else {
                continue;
            };
            let Ok(batch) = Batch::new(files) else {
                continue;
            };
            let (changes, result) = match step {
                Step::Batch { contents, how, .. } => run_batch(&batch, &chosen, contents, *how),
                Step::BatchRead { .. } => {
                    sweep_deferred |= batch_failed;
                    if let Ok(seen) = batch.read() {
                        assert!(
                            model.contains(&chosen, &seen, false),
                            "Batch::read saw {}, which is none of the possible states {}",
                            describe_seen(&chosen, &seen),
                            model.describe(&chosen)
                        );
                    }
                    continue;
                }
                _ => unreachable!("a batch step"),
            };
            batch_failed |= result.is_err();
            if let Some(changes) = changes {
                model.commit(&changes, result.is_ok());
                if result.is_ok() {
                    ok_commits.push((start, sim.op_count()));
                }
            }
            continue;
        }
        if handles[target].is_none() {
            handles[target] = options(&process, style)
                .open(target_path(NAMES[target]))
                .ok();
            opened_in[target] = process.id();
        }
        let Some(file) = &handles[target] else {
            continue;
        };
        let mut attempted: Option<Version> = None;
        let result = match step {
            Step::Reopen { .. } | Step::Batch { .. } | Step::BatchRead { .. } => continue,
            Step::Commit {
                contents,
                via_update,
                ..
            } => {
                attempted = Some(Some(contents.0.clone()));
                if *via_update {
                    file.update(|_| Ok::<_, std::io::Error>(contents.0.clone()))
                } else {
                    (|| {
                        let mut tx = file.begin()?;
                        tx.write_all(&contents.0)
                            .map_err(|e| write_error(file, e))?;
                        tx.commit()
                    })()
                }
            }
            Step::Rollback { contents, .. } => {
                if let Ok(mut tx) = file.begin() {
                    let _ = tx.write_all(&contents.0);
                    tx.rollback();
                }
                continue;
            }
            Step::NoOpCommit { .. } => (|| {
                let mut tx = file.begin()?;
                let old = tx.old_bytes()?.map(<[u8]>::to_vec);
                // Committing nothing to a missing target creates it empty.
                let contents = old.unwrap_or_default();
                attempted = Some(Some(contents.clone()));
                tx.write_all(&contents).map_err(|e| write_error(file, e))?;
                tx.commit()
            })(),
            Step::Stream {
                len, chunk, seed, ..
            } => {
                let contents = stream_contents(*len, *seed);
                attempted = Some(Some(contents.clone()));
                let chunk = usize::from(*chunk).max(1);
                (|| {
                    let mut tx = file.begin()?;
                    for piece in contents.chunks(chunk) {
                        tx.write_all(piece).map_err(|e| write_error(file, e))?;
                    }
                    tx.commit()
                })()
            }
        };
        if let Some(version) = attempted {
            model.commit(&[(target, version)], result.is_ok());
        }
        if result.is_ok() {
            ok_commits.push((start, sim.op_count()));
        }
    }
    drop(handles);
    Run {
        sim,
        model,
        ok_commits,
        sweep_deferred,
    }
}

/// One batch step on `batch` (members `chosen`): the versions it tried to
/// commit (`None` when it never got that far, or rolled back) and how it
/// ended.
fn run_batch(
    batch: &Batch,
    chosen: &[usize],
    contents: &[Member; 3],
    how: BatchHow,
) -> (Option<Changes>, Result<(), Error>) {
    let mut changes: Option<Changes> = None;
    let new_contents = |old: &[Option<&[u8]>]| -> Vec<Vec<u8>> {
        old.iter()
            .zip(contents)
            .map(|(old, member)| match member {
                Member::New(Contents(bytes)) => bytes.clone(),
                Member::Keep => old.unwrap_or_default().to_vec(),
            })
            .collect()
    };
    let result = match how {
        BatchHow::Update => batch.update(|old| {
            let new = new_contents(old);
            changes = Some(
                chosen
                    .iter()
                    .zip(&new)
                    .map(|(&t, v)| (t, Some(v.clone())))
                    .collect(),
            );
            Ok::<_, std::io::Error>(new)
        }),
        BatchHow::Commit | BatchHow::Rollback => (|| {
            let mut tx = batch.begin()?;
            let mut old: Vec<Option<Vec<u8>>> = Vec::new();
            for (i, member) in contents.iter().enumerate().take(chosen.len()) {
                old.push(match member {
                    Member::Keep => tx.member(i).old_bytes()?.map(<[u8]>::to_vec),
                    Member::New(_) => None,
                });
            }
            let old: Vec<Option<&[u8]>> = old.iter().map(Option::as_deref).collect();
            let new = new_contents(&old);
            for (i, bytes) in new.iter().enumerate() {
                let member = &batch.members()[i];
                tx.member(i)
                    .write_all(bytes)
                    .map_err(|e| write_error(member, e))?;
            }
            if let BatchHow::Rollback = how {
                tx.rollback();
                return Ok(());
            }
            changes = Some(chosen.iter().zip(new).map(|(&t, v)| (t, Some(v))).collect());
            tx.commit()
        })(),
    };
    (changes, result)
}

/// The fault `spec` asks for among the operations of `probe`, after
/// operation `after` (if any).
fn pick_fault(probe: &Run, spec: FaultSpec, after: Option<u64>) -> Option<(u64, Fault, OpKind)> {
    let candidates: Vec<u64> = probe
        .sim
        .trace()
        .iter()
        .filter(|op| op.kind == spec.op.kind() && after.is_none_or(|a| op.index > a))
        .map(|op| op.index)
        .collect();
    let index = *candidates.get(usize::from(spec.nth) % candidates.len().max(1))?;
    let fault = match spec.fault {
        FaultKind::Io => Fault::Io,
        FaultKind::NoSpace => Fault::NoSpace,
        FaultKind::PermissionDenied => Fault::PermissionDenied,
    };
    Some((index, fault, spec.op.kind()))
}

/// Checks one fuzz case; panics with a description on a broken invariant.
pub fn check(input: &Input) {
    let mut faults: Vec<(u64, Fault, OpKind)> = Vec::new();
    if let Some(spec) = input.fault {
        faults.extend(pick_fault(&run(input, &[], None), spec, None));
    }
    if let (Some(spec), Some(&(first, ..))) = (input.second_fault, faults.first()) {
        let scheduled: Vec<(u64, Fault)> = faults.iter().map(|&(i, f, _)| (i, f)).collect();
        faults.extend(pick_fault(&run(input, &scheduled, None), spec, Some(first)));
    }
    let scheduled: Vec<(u64, Fault)> = faults.iter().map(|&(i, f, _)| (i, f)).collect();
    let live = run(input, &scheduled, None);
    // The crash: before any operation, after the last, or inside a write.
    let trace = live.sim.trace();
    check_live(input, &live, &faults);
    let at = u64::from(input.crash.at) % (trace.len() as u64 + 1);
    let during = input.crash.mid_write
        && trace
            .get(at as usize)
            .is_some_and(|op| op.kind == OpKind::Write);
    let crashed = run(input, &scheduled, Some((at, during)));
    if !crashed.sim.is_crashed() {
        crashed.sim.crash_now();
    }
    let when = format!(
        "crash at op {at}{}",
        if during { " (mid-write)" } else { "" }
    );
    let mut chooser = Chooser {
        bytes: &input.choices[..input.choices.len().min(MAX_CHOICE_BYTES)],
    };
    let state = crashed
        .sim
        .crash_state_with(input.paranoid, |options| chooser.choose(options));
    let count = input.target_count();
    let allowed: Vec<Vec<Version>> = (0..count).map(|t| crashed.model.allowed(t)).collect();
    let foreign = foreign_files(input, &setup(input));
    check_state(&state, &allowed, input.paranoid, &foreign, &when);

    match input.crash_in_recovery {
        None => {
            recover(
                input,
                &state,
                &crashed.model,
                input.paranoid,
                &foreign,
                &when,
            );
        }
        Some(spec) => {
            // Recovery on a copy first, to learn its operations, check it,
            // and see what the batches resolved to.
            let copy = || state.crash_state_with(false, |_| 0);
            let probe = copy();
            let resolved = recover(
                input,
                &probe,
                &crashed.model,
                input.paranoid,
                &foreign,
                &when,
            );
            let ops = probe.op_count();
            let at = u64::from(spec.at) % (ops + 1);
            let again = copy();
            let during = spec.mid_write
                && probe
                    .trace()
                    .get(at as usize)
                    .is_some_and(|op| op.kind == OpKind::Write);
            if during {
                again.crash_during(at);
            } else {
                again.crash_at(at);
            }
            recover_quietly(input, &again);
            if !again.is_crashed() {
                again.crash_now();
            }
            let second = again.crash_state_with(input.paranoid, |options| chooser.choose(options));
            // Each target: what the first crash left, what recovery
            // resolved it to (a batch rolled forward), or recovery's commit.
            let allowed: Vec<Vec<Version>> = (0..count)
                .map(|t| {
                    let left = state.read_file(target_path(NAMES[t])).expect("read target");
                    vec![left, resolved[t].clone(), Some(recovered(t))]
                })
                .collect();
            let when = format!(
                "{when}, then in recovery at op {at}{}",
                if during { " (mid-write)" } else { "" }
            );
            check_state(&second, &allowed, input.paranoid, &foreign, &when);
            // Jointly: the resolved state, each target perhaps already
            // replaced by recovery's commit.
            let mut expected = Model::new(resolved);
            for t in 0..count {
                expected.commit(&[(t, Some(recovered(t)))], false);
            }
            recover(input, &second, &expected, input.paranoid, &foreign, &when);
        }
    }
}

/// The files that belong to no target in use, as set up.
fn foreign_files(input: &Input, initial: &SimFs) -> BTreeMap<String, Version> {
    let targets = &NAMES[..input.target_count()];
    snapshot(initial)
        .into_iter()
        .filter(|(name, contents)| {
            is_planted(contents) || !targets.iter().any(|t| owned_by(name, t))
        })
        .collect()
}

/// Invariant 6: the files of no target in use are all there, unchanged.
fn check_foreign(sim: &SimFs, foreign: &BTreeMap<String, Version>, when: &str) {
    for (name, contents) in foreign {
        let now = sim
            .read_file(target_path(name))
            .expect("read a foreign file");
        assert!(
            &now == contents,
            "invariant 6 (collateral): {when}: foreign file {name} is {}, was {}",
            show(&now),
            show(contents)
        );
    }
    check_protected(sim, when);
}

/// Invariants 1 and 2 on each target right after a crash (or without one),
/// and 6. `paranoid`: a half-done rename may have removed a target.
fn check_state(
    sim: &SimFs,
    allowed: &[Vec<Version>],
    paranoid: bool,
    foreign: &BTreeMap<String, Version>,
    when: &str,
) {
    for (t, allowed) in allowed.iter().enumerate() {
        let name = NAMES[t];
        let now = sim.read_file(target_path(name)).expect("read target");
        let half_done_rename = paranoid && now.is_none();
        assert!(
            allowed.contains(&now) || half_done_rename,
            "invariants 1/2 (atomicity, durability): {when}: target {name} is {}, allowed {:?}",
            show(&now),
            allowed.iter().map(show).collect::<Vec<_>>()
        );
    }
    check_foreign(sim, foreign, when);
}

/// The journal names and temporary files of the targets in use that are
/// in the directory.
fn leftovers(sim: &SimFs, count: usize) -> Vec<String> {
    sim.list_dir(DIR)
        .expect("list")
        .into_iter()
        .filter(|file| {
            NAMES[..count].iter().any(|name| is_leftover_of(file, name))
                && !is_planted(&sim.read_file(target_path(file)).expect("read"))
        })
        .collect()
}

/// Reads every target in use.
fn read_targets(sim: &SimFs, count: usize) -> Vec<Version> {
    (0..count)
        .map(|t| sim.read_file(target_path(NAMES[t])).expect("read target"))
        .collect()
}

/// Invariants 1, 3, 4, 5, 6 without a crash (with the injected faults, if
/// any), and, after one transaction on every target, the batches' all or
/// nothing.
fn check_live(input: &Input, live: &Run, faults: &[(u64, Fault, OpKind)]) {
    let when = "no crash";
    for &(index, fault, kind) in faults {
        // Invariant 3: an fsync, rename or write that failed makes the
        // commit fail. (Other operations may fail harmlessly, such as a
        // read of the old version that commit does not need.)
        let must_fail = matches!(
            kind,
            OpKind::SyncFile | OpKind::SyncDir | OpKind::Rename | OpKind::Write
        );
        assert!(
            !must_fail
                || !live
                    .ok_commits
                    .iter()
                    .any(|&(s, e)| (s..e).contains(&index)),
            "invariant 3 (honest errors): a commit returned Ok after {fault:?} on its {kind:?} (op {index})"
        );
    }
    let count = input.target_count();
    let allowed: Vec<Vec<Version>> = (0..count).map(|t| live.model.allowed(t)).collect();
    let foreign = foreign_files(input, &setup(input));
    check_state(&live.sim, &allowed, false, &foreign, when);
    check_foreign_guard(input, &live.sim, when);
    // Invariant 4: no temporary file is left, even by a failed commit,
    // unless the fault stopped the removal itself (the next transaction
    // sweeps it), or it is a batch member's staged file that a journal
    // (left by a batch commit that failed after its commit point, or could
    // not void its journal) hands to recovery, or whose torn journal a
    // `Batch::read` recovered (the member's next transaction sweeps it).
    let cleanup_failed = faults
        .iter()
        .any(|&(_, _, kind)| matches!(kind, OpKind::Remove | OpKind::List));
    let before = snapshot(&setup(input));
    let files = live.sim.list_dir(DIR).expect("list");
    if !cleanup_failed {
        for name in &files {
            let target = NAMES[..count].iter().find(|t| is_temp_of(name, t));
            let journaled = target.is_some_and(|t| files.contains(&journal_name(t)));
            assert!(
                target.is_none() || journaled || live.sweep_deferred || before.contains_key(name),
                "invariant 4 (clean): {when}: temporary file {name} left behind"
            );
        }
    }
    for name in &NAMES[..count] {
        let journal = journal_name(name);
        assert!(
            !files.contains(&journal) || !faults.is_empty() || before.contains_key(&journal),
            "invariant 4 (clean): {when}: journal {journal} left behind by a commit without a fault"
        );
    }
    // Invariant 5: no lock is left held; another process gets in at once.
    let other = live.sim.process();
    for name in &NAMES[..count] {
        let file = options(&other, input.style())
            .open(target_path(name))
            .expect("another process opens the target");
        let tx = file.try_begin().expect("another process begins");
        assert!(
            tx.is_some(),
            "invariant 5 (locks): {when}: the lock of {name} is still held"
        );
    }
    // After one transaction on every target: every journal recovered,
    // every temporary file swept, and a state the program cannot rule out.
    let left = leftovers(&live.sim, count);
    assert!(
        left.is_empty(),
        "invariant 4 (clean): {when}: {left:?} left after a transaction on every target"
    );
    let targets: Vec<usize> = (0..count).collect();
    let seen = read_targets(&live.sim, count);
    assert!(
        live.model.contains(&targets, &seen, false),
        "batch atomicity: {when}: after a transaction on every target they hold {}, \
         none of the possible states {}",
        describe_seen(&targets, &seen),
        live.model.describe(&targets)
    );
}

/// The version recovery of target `t` commits.
fn recovered(t: usize) -> Vec<u8> {
    format!("recovered {}", NAMES[t]).into_bytes()
}

/// The next program's run on a post-crash machine, checked: optionally
/// `Options::recover` of the directory; then one transaction on every
/// target (open, begin: the lock must be free; roll back, or commit at
/// once), after which no journal and no temporary file of a target may
/// remain and the targets must hold one of the `expected` states (`absent_ok`:
/// a target a half-done rename removed matches any); then a commit on every
/// target rolled back. No other file may change. Returns what the targets
/// held after their first transaction began.
fn recover(
    input: &Input,
    sim: &SimFs,
    expected: &Model,
    absent_ok: bool,
    foreign: &BTreeMap<String, Version>,
    when: &str,
) -> Vec<Version> {
    let count = input.target_count();
    if input.explicit_recover {
        let names = snapshot(sim);
        let is_journal = |file: &String| {
            NAMES[..count]
                .iter()
                .any(|name| *file == journal_name(name))
        };
        let journals = names
            .iter()
            .filter(|(file, contents)| is_journal(file) && !is_planted(contents))
            .count();
        let planted = names
            .iter()
            .filter(|(file, contents)| is_journal(file) && is_planted(contents))
            .count();
        match options(sim, input.style()).recover(DIR) {
            Ok(found) => assert!(
                found == journals && planted == 0,
                "recovery: {when}: recover found {found} journals, the directory had {journals} (and {planted} planted files)"
            ),
            Err(Error::ForeignJournal { count, .. }) => assert!(
                count == planted && planted > 0,
                "recovery: {when}: recover reported {count} foreign journals, {planted} were planted"
            ),
            Err(e) => panic!("invariant 4 (recovery): {when}: recover failed: {e}"),
        }
        let left: Vec<String> = leftovers(sim, count)
            .into_iter()
            .filter(|file| file.ends_with(".txjournal"))
            .collect();
        assert!(
            left.is_empty(),
            "invariant 4 (recovery): {when}: journals {left:?} survived recover"
        );
        check_foreign(sim, foreign, when);
    }
    let mut files = Vec::new();
    let mut seen = Vec::new();
    for (t, name) in NAMES.iter().copied().enumerate().take(count) {
        let path = target_path(name);
        let when = format!("{when}, recovery of {name}");
        let before = snapshot(sim);
        let file = options(sim, input.style())
            .open(&path)
            .unwrap_or_else(|e| panic!("invariant 5 (locks): {when}: open failed: {e}"));
        if input.recover_by_commit[t] {
            let result = (|| {
                let mut tx = file.begin()?;
                // What the begin found, once it recovered any journal.
                seen.push(sim.read_file(&path).expect("read target"));
                tx.write_all(&recovered(t))
                    .map_err(|e| write_error(&file, e))?;
                tx.commit()
            })();
            if let Err(e) = result {
                panic!("invariant 4 (recovery): {when}: the first commit failed: {e}");
            }
            check_recovered(sim, input, name, &before, &Some(recovered(t)), &when);
        } else {
            let mut tx = match file.try_begin() {
                Ok(Some(tx)) => tx,
                Ok(None) => panic!("invariant 5 (locks): {when}: a lock survived the crash"),
                Err(e) => panic!("invariant 4 (recovery): {when}: begin failed: {e}"),
            };
            let old = tx
                .old_bytes()
                .unwrap_or_else(|e| panic!("{when}: reading the old version failed: {e}"))
                .map(<[u8]>::to_vec);
            let on_disk = sim.read_file(&path).expect("read target");
            assert!(
                old == on_disk,
                "invariant 1: {when}: the transaction read {}, the file holds {}",
                show(&old),
                show(&on_disk)
            );
            tx.rollback();
            check_recovered(sim, input, name, &before, &on_disk, &when);
            seen.push(on_disk);
        }
        files.push(file);
    }
    let left = leftovers(sim, count);
    assert!(
        left.is_empty(),
        "invariant 4 (recovery): {when}: {left:?} left after a transaction on every target"
    );
    let targets: Vec<usize> = (0..count).collect();
    assert!(
        expected.contains(&targets, &seen, absent_ok),
        "batch atomicity: {when}: after recovery the targets held {}, none of the possible states {}",
        describe_seen(&targets, &seen),
        expected.describe(&targets)
    );
    for (t, file) in files.iter().enumerate() {
        if input.recover_by_commit[t] {
            continue;
        }
        let name = NAMES[t];
        let when = format!("{when}, commit after recovery of {name}");
        let before = snapshot(sim);
        let result = (|| {
            let mut tx = file.begin()?;
            tx.write_all(&recovered(t))
                .map_err(|e| write_error(file, e))?;
            tx.commit()
        })();
        if let Err(e) = result {
            panic!("invariant 4 (recovery): {when}: the next commit failed: {e}");
        }
        check_recovered(sim, input, name, &before, &Some(recovered(t)), &when);
    }
    check_foreign(sim, foreign, when);
    check_foreign_guard(input, sim, when);
    seen
}

/// After a transaction on `name`: the target holds `expected`, none of its
/// temporary files is left, and every file of other names is as `before`
/// (when `before` had a journal of a batch, the files of the targets in use
/// may change too: recovering it finishes or undoes the whole batch).
fn check_recovered(
    sim: &SimFs,
    input: &Input,
    name: &str,
    before: &BTreeMap<String, Version>,
    expected: &Version,
    when: &str,
) {
    let after = snapshot(sim);
    let now = after.get(name).cloned().flatten();
    assert!(
        &now == expected,
        "invariant 1/2: {when}: target is {}, expected {}",
        show(&now),
        show(expected)
    );
    for (file, contents) in &after {
        assert!(
            is_planted(contents) || !is_leftover_of(file, name),
            "invariant 4 (clean): {when}: {file} survived recovery"
        );
    }
    let targets = &NAMES[..input.target_count()];
    let journaled = before.iter().any(|(file, contents)| {
        !is_planted(contents) && targets.iter().any(|t| *file == journal_name(t))
    });
    let others = |files: &BTreeMap<String, Version>| -> BTreeMap<String, Version> {
        files
            .iter()
            .filter(|(file, _)| {
                let batch_member = journaled && targets.iter().any(|t| owned_by(file, t));
                is_planted(files.get(*file).unwrap_or(&None))
                    || (!owned_by(file, name) && !batch_member)
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    };
    let (was, is) = (others(before), others(&after));
    assert!(
        was == is,
        "invariant 6 (collateral): {when}: other files changed from {:?} to {:?}",
        was.keys().collect::<Vec<_>>(),
        is.keys().collect::<Vec<_>>()
    );
}

/// Recovery as the next program runs it (the operations of `recover`),
/// ignoring errors: the machine may go down in the middle.
fn recover_quietly(input: &Input, sim: &SimFs) {
    let count = input.target_count();
    if input.explicit_recover {
        let _ = options(sim, input.style()).recover(DIR);
    }
    let mut files = Vec::new();
    for (t, name) in NAMES.iter().enumerate().take(count) {
        let Ok(file) = options(sim, input.style()).open(target_path(name)) else {
            files.push(None);
            continue;
        };
        if input.recover_by_commit[t] {
            if let Ok(mut tx) = file.begin()
                && tx.write_all(&recovered(t)).is_ok()
            {
                let _ = tx.commit();
            }
        } else if let Ok(Some(mut tx)) = file.try_begin() {
            let _ = tx.old_bytes();
            tx.rollback();
        }
        files.push(Some(file));
    }
    for (t, file) in files.iter().enumerate() {
        if input.recover_by_commit[t] {
            continue;
        }
        if let Some(file) = file
            && let Ok(mut tx) = file.begin()
            && tx.write_all(&recovered(t)).is_ok()
        {
            let _ = tx.commit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn contents(bytes: &[u8]) -> Contents {
        Contents(bytes.to_vec())
    }

    fn batch_input(steps: Vec<Step>, fault: Option<FaultSpec>, at: u16) -> Input {
        Input {
            targets: 2,
            initial: [Some(contents(b"a0")), Some(contents(b"b0")), None],
            stale_temps: [true, false, false],
            stale_guards: [false; 3],
            posix_locks: false,
            steps,
            fault,
            crash: CrashSpec {
                at,
                mid_write: false,
            },
            paranoid: false,
            recover_by_commit: [false, true, false],
            crash_in_recovery: None,
            second_fault: None,
            stale_journals: [
                Some(StaleJournal::Torn {
                    pair: true,
                    cut: 40,
                }),
                None,
                None,
            ],
            explicit_recover: false,
            planted: [None; 3],
            choices: vec![1; 64],
        }
    }

    fn batch_step(how: BatchHow) -> Step {
        Step::Batch {
            members: 0b111,
            order: 0,
            contents: [
                Member::New(contents(b"a1")),
                Member::Keep,
                Member::New(contents(b"c1")),
            ],
            how,
        }
    }

    #[test]
    fn a_batch_step_commits_through_a_journal() {
        let input = batch_input(vec![batch_step(BatchHow::Commit)], None, 0);
        let live = run(&input, &[], None);
        let trace = live.sim.trace();
        assert!(trace.iter().any(|op| op.kind == OpKind::Link), "no journal");
        let targets = [0, 1, 2];
        let after: Vec<Version> = vec![
            Some(b"a1".to_vec()),
            Some(b"b0".to_vec()),
            Some(b"c1".to_vec()),
        ];
        assert!(live.model.contains(&targets, &after, false));
        assert_eq!(live.model.states.len(), 1);
        assert!(leftovers(&live.sim, 3).is_empty());
    }

    #[test]
    fn batch_cases_pass_at_every_crash_point() {
        let steps = vec![
            batch_step(BatchHow::Update),
            Step::BatchRead {
                members: 0b011,
                order: 0,
            },
            batch_step(BatchHow::Rollback),
        ];
        let ops = run(&batch_input(steps.clone(), None, 0), &[], None)
            .sim
            .op_count();
        for at in 0..=ops as u16 {
            check(&batch_input(steps.clone(), None, at));
        }
        let rename_fails = FaultSpec {
            op: FaultOp::Rename,
            nth: 1,
            fault: FaultKind::Io,
        };
        check(&batch_input(steps, Some(rename_fails), 40));
    }

    #[test]
    fn the_model_keeps_a_failed_batch_whole() {
        let mut model = Model::new(vec![Some(b"a0".to_vec()), Some(b"b0".to_vec())]);
        model.commit(
            &[(0, Some(b"a1".to_vec())), (1, Some(b"b1".to_vec()))],
            false,
        );
        let both = [0, 1];
        assert!(model.contains(&both, &[Some(b"a1".to_vec()), Some(b"b1".to_vec())], false));
        assert!(model.contains(&both, &[Some(b"a0".to_vec()), Some(b"b0".to_vec())], false));
        assert!(!model.contains(&both, &[Some(b"a1".to_vec()), Some(b"b0".to_vec())], false));
        model.commit(&[(1, Some(b"b2".to_vec()))], true);
        assert_eq!(model.allowed(1), vec![Some(b"b2".to_vec())]);
        assert_eq!(model.allowed(0).len(), 2);
    }
}
