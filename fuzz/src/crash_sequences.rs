//! `crash_sequences`: a sequence of transactions on up to three targets in
//! one directory of the simulated filesystem, an optional injected fault, a
//! power loss at any operation (or in the middle of a write), a post-crash
//! state picked by the fuzzer's bytes, recovery (optionally crashing again in
//! the middle of it), and the invariants of `CRASH_MODEL.md` against a model
//! of what each target may hold.
//!
//! Every run of the sequence is deterministic (the simulated filesystem's
//! "random" temporary names come from its own state), so the sequence runs
//! once to learn its operations and again with the crash.

use std::collections::BTreeMap;
use std::io::Write;

use arbitrary::{Arbitrary, Unstructured};
use txfile::sim::{Fault, OpKind, SimFs};
use txfile::{Error, LockStyle, Options, TxFile};

use crate::{DIR, NAMES, guard_path, is_temp_of, mutant, owned_by, show, target_path};

const MAX_STEPS: usize = 8;
/// Small contents: up to a little over two 512-byte sectors, so that a torn
/// write can mix sectors.
const MAX_SMALL: usize = 1100;
/// Streamed contents: past the crate's 64 KiB in-memory buffer, twice.
const MAX_STREAM: usize = 160 * 1024;
const MAX_CHOICE_BYTES: usize = 256;

/// Files that belong to no target and must never change. Some look like
/// temporary files but are not (a user's own, wrong length of the random
/// part, a temporary file of a target `a.b.c.d` nobody uses here).
const FOREIGN: &[(&str, &[u8])] = &[
    (".a.tmp", b"a user's own temporary file"),
    (
        ".a.b.c.d.Ab3dEf9Z.txtmp",
        b"a temporary file of target a.b.c.d",
    ),
    (
        ".a.Ab3dEf9.txtmp",
        b"seven random characters: not a temporary file",
    ),
    ("a.lock.bak", b"a backup of a guard"),
    ("other", b"an unrelated file"),
];

/// The name a stale temporary file of `name` gets in the initial state: a
/// writer died holding it. It is the target's own (and must be swept) only
/// when `name` is one of the targets in use; otherwise it is foreign.
fn stale_temp(name: &str) -> String {
    format!(".{name}.Zz9Yy8Xx.txtmp")
}

type Version = Option<Vec<u8>>;

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

/// What the program saw of one target.
#[derive(Clone, Debug)]
struct Model {
    /// `attempted[0]` is the initial version, then every version a commit
    /// was started for.
    attempted: Vec<Version>,
    /// Index into `attempted` of the last version whose commit returned Ok.
    acked: usize,
}

impl Model {
    /// What the target may hold: the last acknowledged version or any
    /// attempted after it (in flight at the crash, or failed with an error
    /// that leaves old or new).
    fn allowed(&self) -> &[Version] {
        &self.attempted[self.acked..]
    }
}

/// One run of the sequence.
struct Run {
    sim: SimFs,
    models: Vec<Model>,
    /// Operation index ranges of commits that returned Ok.
    ok_commits: Vec<(u64, u64)>,
}

fn options(sim: &SimFs, style: LockStyle) -> Options {
    Options::new()
        .filesystem(sim)
        .lock_style(style)
        .mode(0o600)
        .mutant(mutant())
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
    sim
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

/// Runs the steps until the machine goes down, with `fault` and `crash`
/// scheduled.
fn run(input: &Input, fault: Option<(u64, Fault)>, crash: Option<(u64, bool)>) -> Run {
    let sim = setup(input);
    if let Some((index, fault)) = fault {
        sim.fail_at(index, fault);
    }
    match crash {
        Some((index, true)) => sim.crash_during(index),
        Some((index, false)) => sim.crash_at(index),
        None => {}
    }
    let count = input.target_count();
    let mut models: Vec<Model> = (0..count)
        .map(|i| Model {
            attempted: vec![input.initial[i].as_ref().map(|c| c.0.clone())],
            acked: 0,
        })
        .collect();
    let mut ok_commits = Vec::new();
    let mut handles: Vec<Option<TxFile>> = vec![None; count];
    // The process new handles are opened in.
    let mut process = sim.clone();
    let style = input.style();
    for step in input.steps.iter().take(MAX_STEPS) {
        if sim.is_crashed() {
            break;
        }
        let target = usize::from(match step {
            Step::Commit { target, .. }
            | Step::Rollback { target, .. }
            | Step::NoOpCommit { target }
            | Step::Stream { target, .. }
            | Step::Reopen { target, .. } => *target,
        }) % count;
        if let Step::Reopen { new_process, .. } = step {
            handles[target] = None;
            if *new_process {
                process = sim.process();
            }
        }
        if handles[target].is_none() {
            handles[target] = options(&process, style)
                .open(target_path(NAMES[target]))
                .ok();
        }
        let Some(file) = &handles[target] else {
            continue;
        };
        let model = &mut models[target];
        let start = sim.op_count();
        let result = match step {
            Step::Reopen { .. } => continue,
            Step::Commit {
                contents,
                via_update,
                ..
            } => {
                model.attempted.push(Some(contents.0.clone()));
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
                model.attempted.push(Some(contents.clone()));
                tx.write_all(&contents).map_err(|e| write_error(file, e))?;
                tx.commit()
            })(),
            Step::Stream {
                len, chunk, seed, ..
            } => {
                let contents = stream_contents(*len, *seed);
                model.attempted.push(Some(contents.clone()));
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
        if result.is_ok() {
            model.acked = model.attempted.len() - 1;
            ok_commits.push((start, sim.op_count()));
        }
    }
    drop(handles);
    Run {
        sim,
        models,
        ok_commits,
    }
}

/// Checks one fuzz case; panics with a description on a broken invariant.
pub fn check(input: &Input) {
    let fault = input.fault.and_then(|spec| {
        let probe = run(input, None, None);
        let candidates: Vec<u64> = probe
            .sim
            .trace()
            .iter()
            .filter(|op| op.kind == spec.op.kind())
            .map(|op| op.index)
            .collect();
        let index = *candidates.get(usize::from(spec.nth) % candidates.len().max(1))?;
        let fault = match spec.fault {
            FaultKind::Io => Fault::Io,
            FaultKind::NoSpace => Fault::NoSpace,
            FaultKind::PermissionDenied => Fault::PermissionDenied,
        };
        Some((index, fault, spec.op.kind()))
    });
    let live = run(input, fault.map(|(i, f, _)| (i, f)), None);
    // The crash: before any operation, after the last, or inside a write.
    let trace = live.sim.trace();
    check_live(input, &live, fault);
    let at = u64::from(input.crash.at) % (trace.len() as u64 + 1);
    let during = input.crash.mid_write
        && trace
            .get(at as usize)
            .is_some_and(|op| op.kind == OpKind::Write);
    let crashed = run(input, fault.map(|(i, f, _)| (i, f)), Some((at, during)));
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
    let allowed: Vec<Vec<Version>> = crashed
        .models
        .iter()
        .map(|m| m.allowed().to_vec())
        .collect();
    let foreign = foreign_files(input, &setup(input));
    check_state(&state, &allowed, input.paranoid, &foreign, &when);

    match input.crash_in_recovery {
        None => recover(input, &state, &foreign, &when),
        Some(spec) => {
            // Recovery on a copy first, to learn its operations and check it.
            let copy = || state.crash_state_with(false, |_| 0);
            let probe = copy();
            recover(input, &probe, &foreign, &when);
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
            // Each target: what the first crash left, or recovery's commit.
            let allowed: Vec<Vec<Version>> = (0..input.target_count())
                .map(|t| {
                    let left = state.read_file(target_path(NAMES[t])).expect("read target");
                    vec![left, Some(recovered(t))]
                })
                .collect();
            let when = format!(
                "{when}, then in recovery at op {at}{}",
                if during { " (mid-write)" } else { "" }
            );
            check_state(&second, &allowed, input.paranoid, &foreign, &when);
            recover(input, &second, &foreign, &when);
        }
    }
}

/// The files that belong to no target in use, as set up.
fn foreign_files(input: &Input, initial: &SimFs) -> BTreeMap<String, Version> {
    let targets = &NAMES[..input.target_count()];
    snapshot(initial)
        .into_iter()
        .filter(|(name, _)| !targets.iter().any(|t| owned_by(t, name)))
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

/// Invariants 1, 3, 4, 5, 6 without a crash (with the injected fault, if
/// any).
fn check_live(input: &Input, live: &Run, fault: Option<(u64, Fault, OpKind)>) {
    let when = "no crash";
    if let Some((index, fault, kind)) = fault {
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
    let allowed: Vec<Vec<Version>> = live.models.iter().map(|m| m.allowed().to_vec()).collect();
    let foreign = foreign_files(input, &setup(input));
    check_state(&live.sim, &allowed, false, &foreign, when);
    // Invariant 4: no temporary file is left, even by a failed commit,
    // unless the fault stopped the removal itself (the next transaction
    // sweeps it).
    let cleanup_failed =
        fault.is_some_and(|(_, _, kind)| matches!(kind, OpKind::Remove | OpKind::List));
    if !cleanup_failed {
        let before = snapshot(&setup(input));
        for name in live.sim.list_dir(DIR).expect("list") {
            let target = NAMES[..input.target_count()]
                .iter()
                .find(|t| is_temp_of(t, &name));
            assert!(
                target.is_none() || before.contains_key(&name),
                "invariant 4 (clean): {when}: temporary file {name} left behind"
            );
        }
    }
    // Invariant 5: no lock is left held; another process gets in at once.
    let other = live.sim.process();
    for name in &NAMES[..input.target_count()] {
        let file = options(&other, input.style())
            .open(target_path(name))
            .expect("another process opens the target");
        let tx = file.try_begin().expect("another process begins");
        assert!(
            tx.is_some(),
            "invariant 5 (locks): {when}: the lock of {name} is still held"
        );
    }
}

/// The version recovery of target `t` commits.
fn recovered(t: usize) -> Vec<u8> {
    format!("recovered {}", NAMES[t]).into_bytes()
}

/// The next program's run on a post-crash machine, checked: for each target,
/// open, begin (the lock must be free), roll back (or commit at once), then
/// commit; no temporary file of the target may remain and no other file may
/// change.
fn recover(input: &Input, sim: &SimFs, foreign: &BTreeMap<String, Version>, when: &str) {
    for (t, name) in NAMES.iter().copied().enumerate().take(input.target_count()) {
        let path = target_path(name);
        let when = format!("{when}, recovery of {name}");
        let before = snapshot(sim);
        let file = options(sim, input.style())
            .open(&path)
            .unwrap_or_else(|e| panic!("invariant 5 (locks): {when}: open failed: {e}"));
        if !input.recover_by_commit[t] {
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
            check_recovered(sim, name, &before, &on_disk, &when);
        }
        let result = (|| {
            let mut tx = file.begin()?;
            tx.write_all(&recovered(t))
                .map_err(|e| write_error(&file, e))?;
            tx.commit()
        })();
        if let Err(e) = result {
            panic!("invariant 4 (recovery): {when}: the next commit failed: {e}");
        }
        check_recovered(sim, name, &before, &Some(recovered(t)), &when);
    }
    check_foreign(sim, foreign, when);
}

/// After a transaction on `name`: the target holds `expected`, none of its
/// temporary files is left, and every file of other names is as `before`.
fn check_recovered(
    sim: &SimFs,
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
    for file in after.keys() {
        assert!(
            !is_temp_of(name, file),
            "invariant 4 (clean): {when}: temporary file {file} survived recovery"
        );
    }
    let others = |files: &BTreeMap<String, Version>| -> BTreeMap<String, Version> {
        files
            .iter()
            .filter(|(file, _)| !owned_by(name, file))
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

/// Recovery as the next program runs it, ignoring errors: the machine may
/// go down in the middle.
fn recover_quietly(input: &Input, sim: &SimFs) {
    for (t, name) in NAMES.iter().enumerate().take(input.target_count()) {
        let Ok(file) = options(sim, input.style()).open(target_path(name)) else {
            continue;
        };
        if !input.recover_by_commit[t]
            && let Ok(Some(tx)) = file.try_begin()
        {
            tx.rollback();
        }
        if let Ok(mut tx) = file.begin()
            && tx.write_all(&recovered(t)).is_ok()
        {
            let _ = tx.commit();
        }
    }
}
