//! The exhaustive crash check shared by `crash_points.rs` and `mutants.rs`.
//!
//! Every scenario runs once to learn its seam operations, then again with a
//! power loss before every operation, after the last one, and in the middle
//! of every write. For each crash, every post-crash state the model admits
//! is built (`SimFs::crash_states`), the invariants of `docs/crash-model.md` are
//! checked on it, recovery runs on it (open + begin + rollback, then a
//! commit), and the invariants are checked again.
//!
//! Bound: at most `MAX_STATES_PER_CRASH` post-crash states per crash point,
//! paranoid half-done renames off (no rename-based protocol survives them;
//! see `paranoid_rename_loses_the_target` in crash_points.rs), writes of up
//! to 2 sectors in the scenarios, so every state is enumerated: the bound is
//! checked, never used to truncate. Crash during recovery: every crash point
//! of recovery, on every distinct post-crash state of the "replace" scenario
//! that still holds a temporary file.
#![allow(dead_code)] // each test binary uses a different subset

#[path = "harness.rs"]
pub(crate) mod harness;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::{Arc, Mutex};

use camino::{Utf8Path, Utf8PathBuf};
pub(crate) use harness::Mutant;
use txfile::sim::{Fault, OpKind, Operation, SimFs};
use txfile::{Durability, Error, Options, TxFile};

use harness::Report;
use harness::{
    Crash, Scenario as _, bound, changed_foreign, check_crash_points, commit, options, write_error,
};
use txfile_testkit::{FOREIGN, is_temp_of, show};

const DIR: &str = "/d";
const TARGET: &str = "/d/a";
const NAME: &str = "a";
const RECOVERED: &[u8] = b"recovered by the next writer";

type Version = Option<Vec<u8>>;

/// What the program saw in one run of a scenario.
type Run = harness::Run<Version>;

/// One step of a scenario, run on a fresh handle.
#[derive(Clone, Debug)]
pub(crate) enum Step {
    /// begin, write these contents, commit.
    Commit(Vec<u8>),
    /// The same with `Durability::None`: its `Ok` promises nothing about
    /// power loss, so it acknowledges nothing.
    CommitUnsynced(Vec<u8>),
    /// begin, write these contents, roll back.
    Abort(Vec<u8>),
}

#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    pub(crate) name: &'static str,
    pub(crate) initial: Version,
    pub(crate) steps: Vec<Step>,
    /// Inject this fault at the first operation of this kind inside a commit.
    pub(crate) fault: Option<(OpKind, Fault)>,
}

/// The scenarios of issue 3.
pub(crate) fn scenarios() -> Vec<Scenario> {
    let plain = |name, initial: Option<&[u8]>, steps| Scenario {
        name,
        initial: initial.map(<[u8]>::to_vec),
        steps,
        fault: None,
    };
    vec![
        plain(
            "create a new file",
            None,
            vec![Step::Commit(b"new".to_vec())],
        ),
        plain(
            "replace an existing file",
            Some(b"old"),
            vec![Step::Commit(b"new".to_vec())],
        ),
        plain(
            "replace with a torn two-sector write",
            Some(&[b'o'; 700]),
            vec![Step::Commit(vec![b'n'; 1000])],
        ),
        plain(
            "no-op commit",
            Some(b"same"),
            vec![Step::Commit(b"same".to_vec())],
        ),
        plain(
            "aborted transaction",
            Some(b"old"),
            vec![Step::Abort(b"new".to_vec())],
        ),
        plain(
            "two commits in a row",
            Some(b"old"),
            vec![Step::Commit(b"v1".to_vec()), Step::Commit(b"v2".to_vec())],
        ),
        plain(
            "a durable no-op after a commit without fsyncs",
            Some(b"v1"),
            vec![
                Step::CommitUnsynced(b"v2".to_vec()),
                Step::Commit(b"v2".to_vec()),
            ],
        ),
        Scenario {
            fault: Some((OpKind::SyncFile, Fault::Io)),
            ..plain(
                "commit whose fsync fails, then another commit",
                Some(b"old"),
                vec![
                    Step::Commit(b"new".to_vec()),
                    Step::Commit(b"newer".to_vec()),
                ],
            )
        },
        Scenario {
            fault: Some((OpKind::Write, Fault::NoSpace)),
            ..plain(
                "commit whose write hits ENOSPC",
                Some(b"old"),
                vec![Step::Commit(b"new".to_vec())],
            )
        },
        Scenario {
            fault: Some((OpKind::Rename, Fault::PermissionDenied)),
            ..plain(
                "commit whose rename hits EACCES",
                Some(b"old"),
                vec![Step::Commit(b"new".to_vec())],
            )
        },
    ]
}

/// Files at the target's own derived names that txfile did not create and
/// must leave alone: a user's file at its journal name, another user's
/// file named like its temporary file (owner, contents).
pub(crate) const PLANTED: &[(&str, u32, &[u8])] = &[
    (".a.txjournal", 1000, b"a user's notes, not a journal"),
    (".a.Zz9Zz9Zz.txtmp", 2000, b"another user's file"),
];

fn plant(sim: &SimFs, dir: &str) {
    for (name, owner, contents) in PLANTED {
        let path = format!("{dir}/{name}");
        sim.write_file(&path, contents).expect("plant");
        sim.set_owner(&path, *owner, *owner).expect("plant owner");
    }
}

fn setup(initial: &Version) -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all(DIR).expect("setup dir");
    harness::write_foreign(&sim, DIR);
    plant(&sim, DIR);
    if let Some(bytes) = initial {
        sim.write_file(TARGET, bytes).expect("setup target");
        sim.set_mode(TARGET, 0o640).expect("setup mode");
    }
    sim
}

fn abort_step(file: &TxFile, contents: &[u8]) -> Result<(), Error> {
    let mut tx = file.begin()?;
    tx.write_all(contents).map_err(|e| write_error(file, e))?;
    tx.rollback();
    Ok(())
}

/// Names of the target's temporary files: `.a.` + 8 letters or digits +
/// `.txtmp`.
pub(crate) fn temps_of_target(names: &[String]) -> Vec<String> {
    names
        .iter()
        .filter(|n| is_temp_of(n, NAME) && !PLANTED.iter().any(|(p, _, _)| p == n))
        .cloned()
        .collect()
}

/// Invariant 6 on a machine: the foreign files are there, unchanged.
fn check_foreign(sim: &SimFs, report: &mut Report, when: &str) {
    for (name, got) in changed_foreign(sim, DIR) {
        report.violate(6, format!("{when}: foreign file {name} is {}", show(&got)));
    }
    for (name, _, contents) in PLANTED {
        let got = sim
            .read_file(format!("{DIR}/{name}"))
            .expect("read planted");
        if got.as_deref() != Some(*contents) {
            report.violate(6, format!("{when}: planted file {name} is {}", show(&got)));
        }
    }
}

/// Invariants 1 and 2: the target holds one of the allowed versions. A
/// version that was never written (torn, empty, garbage) or a missing file
/// that existed before breaks atomicity (1); an older complete version, or a
/// missing file that was missing at the start, breaks durability (2).
fn check_target(
    sim: &SimFs,
    allowed: &[Version],
    history: &[Version],
    report: &mut Report,
    when: &str,
) -> Version {
    let got = sim.read_file(TARGET).expect("read target");
    // (Nothing is promised after a commit without fsyncs until a durable
    // commit acknowledges a version.)
    if !allowed.is_empty() && !allowed.contains(&got) {
        let inv = if history.contains(&got) { 2 } else { 1 };
        report.violate(
            inv,
            format!(
                "{when}: target is {}, allowed {:?}",
                show(&got),
                allowed.iter().map(show).collect::<Vec<_>>()
            ),
        );
    }
    got
}

/// Runs recovery (the next program's transaction) on a post-crash machine
/// and checks invariants 1, 2, 4, 5, 6 around it.
fn recover_and_check(
    sim: &SimFs,
    mutant: Mutant,
    allowed: &[Version],
    history: &[Version],
    report: &mut Report,
    when: &str,
) {
    let before = check_target(
        sim,
        allowed,
        history,
        report,
        &format!("{when}, before recovery"),
    );
    check_foreign(sim, report, &format!("{when}, before recovery"));
    let file = match options(sim, mutant).open(TARGET) {
        Ok(f) => f,
        Err(e) => {
            report.violate(5, format!("{when}: recovery could not open: {e}"));
            return;
        }
    };
    // Invariant 5: no lock survives a crash; a left-over guard is not held.
    match file.try_begin() {
        Ok(Some(mut tx)) => {
            let old = tx.old_bytes().ok().flatten().map(<[u8]>::to_vec);
            if old != before {
                report.violate(
                    1,
                    format!(
                        "{when}: recovery read {}, file holds {}",
                        show(&old),
                        show(&before)
                    ),
                );
            }
            tx.rollback();
        }
        Ok(None) => report.violate(5, format!("{when}: the lock is held after a crash")),
        Err(e) => report.violate(5, format!("{when}: recovery begin failed: {e}")),
    }
    let after_rollback = sim.read_file(TARGET).expect("read target");
    if after_rollback != before {
        report.violate(
            1,
            format!(
                "{when}: rollback changed the target to {}",
                show(&after_rollback)
            ),
        );
    }
    check_no_temps(sim, report, &format!("{when}, after recovery"));
    check_foreign(sim, report, &format!("{when}, after recovery"));
    // The next writer commits; recovery must not get in its way.
    match commit(&file, RECOVERED) {
        Ok(()) => {
            let got = sim.read_file(TARGET).expect("read target");
            if got.as_deref() != Some(RECOVERED) {
                report.violate(
                    2,
                    format!("{when}: commit after recovery left {}", show(&got)),
                );
            }
        }
        Err(e) => report.violate(4, format!("{when}: commit after recovery failed: {e}")),
    }
    check_no_temps(sim, report, &format!("{when}, after the next commit"));
    check_foreign(sim, report, &format!("{when}, after the next commit"));
}

fn check_no_temps(sim: &SimFs, report: &mut Report, when: &str) {
    let names = sim.list_dir(DIR).expect("list");
    let temps = temps_of_target(&names);
    if !temps.is_empty() {
        report.violate(4, format!("{when}: temporary files left: {temps:?}"));
    }
}

impl harness::Scenario for Scenario {
    type Version = Version;

    fn describe(&self, mutant: Mutant) -> String {
        format!("{} with {mutant:?}", self.name)
    }

    fn has_fault(&self) -> bool {
        self.fault.is_some()
    }

    /// The first operation of the fault's kind inside a commit (after
    /// `open` and `begin`).
    fn fault_site(&self, trace: &[Operation]) -> Option<(u64, Fault)> {
        let (kind, fault) = self.fault?;
        trace
            .iter()
            .find(|op| op.kind == kind)
            .map(|op| (op.index, fault))
    }

    fn run(&self, mutant: Mutant, fault_at: Option<(u64, Fault)>, crash: Crash) -> Run {
        let sim = setup(&self.initial);
        let mut run = Run::start(sim.clone(), self.initial.clone(), fault_at, crash);
        for step in &self.steps {
            if sim.is_crashed() {
                break;
            }
            // A fresh handle per step, as separate program runs would use.
            let Ok(file) = options(&sim, mutant).open(TARGET) else {
                continue;
            };
            match step {
                Step::Commit(contents) => {
                    run.attempted.push(Some(contents.clone()));
                    let start = sim.op_count();
                    if commit(&file, contents).is_ok() {
                        run.acknowledge(start);
                    }
                }
                Step::CommitUnsynced(contents) => {
                    run.attempted.push(Some(contents.clone()));
                    run.unsynced = true;
                    let unsynced = options(&sim, mutant).durability(Durability::None);
                    if let Ok(file) = unsynced.open(TARGET) {
                        let _ = commit(&file, contents);
                    }
                }
                Step::Abort(contents) => {
                    let _ = abort_step(&file, contents);
                }
            }
        }
        run.finish(crash)
    }

    /// Invariants that hold without a crash: 1 and 3 (old or new, honest
    /// errors), 4 (no temporary file left, even after a failure), 5 (no lock
    /// left), 6 (foreign files).
    fn check_live(
        &self,
        _mutant: Mutant,
        live: &Run,
        fault_at: Option<(u64, Fault)>,
        report: &mut Report,
    ) {
        let when = format!("{} (no crash)", self.name);
        live.check_honest_errors(fault_at, report, &when);
        check_target(&live.sim, live.allowed(), &live.attempted, report, &when);
        check_no_temps(&live.sim, report, &when);
        check_foreign(&live.sim, report, &when);
        let other = live.sim.process();
        match Options::new()
            .filesystem(&other)
            .open(TARGET)
            .and_then(|f| f.try_begin().map(|t| t.is_some()))
        {
            Ok(true) => {}
            Ok(false) => report.violate(5, format!("{when}: the lock is still held")),
            Err(e) => report.violate(5, format!("{when}: another process cannot begin: {e}")),
        }
    }

    fn recover_and_check(
        &self,
        state: &SimFs,
        mutant: Mutant,
        allowed: &[Version],
        history: &[Version],
        report: &mut Report,
        when: &str,
    ) {
        recover_and_check(state, mutant, allowed, history, report, when);
    }
}

/// A crash in the middle of recovery, then recovery again.
pub(crate) fn check_crash_during_recovery(mutant: Mutant, report: &mut Report) {
    let sc = &scenarios()[1];
    assert_eq!(sc.name, "replace an existing file");
    let live = sc.run(mutant, None, Crash::None);
    let mut seen = BTreeSet::new();
    let mut first_states = Vec::new();
    for i in 0..=live.sim.op_count() {
        let crashed = sc.run(mutant, None, Crash::Before(i));
        for state in crashed.sim.crash_states(&bound()).expect("bound") {
            let names = state.list_dir(DIR).expect("list");
            if temps_of_target(&names).is_empty() {
                continue;
            }
            let key = (
                names.clone(),
                names
                    .iter()
                    .map(|n| state.read_file(format!("{DIR}/{n}")).ok())
                    .collect::<Vec<_>>(),
            );
            if seen.insert(key) {
                first_states.push((state, crashed.allowed().to_vec(), crashed.attempted.clone()));
            }
        }
    }
    eprintln!(
        "crash during recovery ({mutant:?}): {} distinct post-crash states that hold a temporary file",
        first_states.len()
    );
    for (n, (first, allowed, history)) in first_states.iter().enumerate() {
        // Learn recovery's operations on a copy, then crash at each.
        let probe = first.crash_state_with(false, |_| 1);
        recover_quietly(&probe, mutant);
        let ops = probe.op_count();
        for i in 0..=ops {
            report.crash_points += 1;
            let again = first.crash_state_with(false, |_| 1);
            again.crash_at(i);
            recover_quietly(&again, mutant);
            if !again.is_crashed() {
                again.crash_now();
            }
            // Recovery keeps what the first crash left, or commits its own.
            let target = first.read_file(TARGET).expect("read");
            let allowed = if allowed.contains(&target) {
                vec![target, Some(RECOVERED.to_vec())]
            } else {
                let mut a = allowed.clone();
                a.push(Some(RECOVERED.to_vec()));
                a
            };
            for (j, state) in again.crash_states(&bound()).expect("bound").enumerate() {
                report.crash_states += 1;
                let when = format!(
                    "recovery of state {n} with {mutant:?}, crash before op {i}, state {j}"
                );
                recover_and_check(&state, mutant, &allowed, history, report, &when);
            }
        }
    }
}

/// Recovery as the next program runs it, ignoring errors (the machine may
/// go down in the middle).
fn recover_quietly(sim: &SimFs, mutant: Mutant) {
    if let Ok(file) = options(sim, mutant).open(TARGET) {
        if let Ok(Some(tx)) = file.try_begin() {
            tx.rollback();
        }
        let _ = commit(&file, RECOVERED);
    }
}

/// Invariant 5 with a competing process: it is let in (through the unlock
/// hook) the moment the lock is released. If that happens while the first
/// writer's commit is still in flight (its temporary file not yet renamed),
/// a live writer's exclusion was broken; the competitor's sweep then deletes
/// that file and the first commit fails, or the competitor's commit
/// overwrites it.
pub(crate) fn check_competitor(mutant: Mutant, report: &mut Report) {
    let sim = setup(&Some(b"v0".to_vec()));
    let other = sim.process();
    let seen = Arc::new(Mutex::new(None::<(Vec<String>, bool)>));
    let slot = Arc::clone(&seen);
    sim.on_unlock(move || {
        let live_temps = temps_of_target(&other.list_dir(DIR).expect("list"));
        let ok = harness::with_mutant(Options::new().filesystem(&other), mutant)
            .open(TARGET)
            .and_then(|f| {
                f.update(|old| {
                    let mut v = old.unwrap_or_default().to_vec();
                    v.extend_from_slice(b"B");
                    Ok::<_, std::io::Error>(v)
                })
            })
            .is_ok();
        *slot.lock().expect("slot") = Some((live_temps, ok));
    });
    let file = options(&sim, mutant).open(TARGET).expect("open");
    let first = file.update(|old| {
        let mut v = old.unwrap_or_default().to_vec();
        v.extend_from_slice(b"A");
        Ok::<_, std::io::Error>(v)
    });
    let when = format!("competing process with {mutant:?}");
    let Some((live_temps, second_ok)) = seen.lock().expect("slot").take() else {
        report.violate(5, format!("{when}: the competitor never ran"));
        return;
    };
    if !live_temps.is_empty() {
        report.violate(
            5,
            format!("{when}: another process got the lock while the holder's temporary file {live_temps:?} was live"),
        );
    }
    let got = sim.read_file(TARGET).expect("read");
    let want: Vec<Version> = match (first.is_ok(), second_ok) {
        (true, true) => vec![Some(b"v0AB".to_vec()), Some(b"v0BA".to_vec())],
        (true, false) => vec![Some(b"v0A".to_vec())],
        (false, true) => vec![Some(b"v0B".to_vec())],
        (false, false) => vec![Some(b"v0".to_vec())],
    };
    if !want.contains(&got) {
        report.violate(
            5,
            format!(
                "{when}: lost update: target is {}, want one of {want:?}",
                show(&got)
            ),
        );
    }
    if first.is_err() {
        report.violate(
            5,
            format!("{when}: the lock holder's commit failed under a competitor: {first:?}"),
        );
    }
    // And what was acknowledged survives a crash now.
    for (i, state) in sim.crash_states(&bound()).expect("bound").enumerate() {
        report.crash_states += 1;
        let history: Vec<Version> = ["v0", "v0A", "v0B", "v0AB", "v0BA"]
            .iter()
            .map(|v| Some(v.as_bytes().to_vec()))
            .collect();
        recover_and_check(
            &state,
            mutant,
            std::slice::from_ref(&got),
            &history,
            report,
            &format!("{when}, state {i}"),
        );
    }
}

/// Invariant 7: without a crash, the simulation and a real directory end
/// in the same state for the same operations.
pub(crate) fn check_differential(sc: &Scenario, mutant: Mutant, report: &mut Report) {
    let live = sc.run(mutant, None, Crash::None);
    let sim_view = sim_snapshot(&live.sim);
    let real_view = real_run(sc, mutant);
    // The real run happened: the target is there. (Not a count of the
    // foreign files: a mutant that sweeps them leaves fewer, and that is
    // for invariant 7 below to report, not for this check to panic on.)
    assert!(
        real_view.contains_key(NAME),
        "{}: the real run saw {real_view:?}",
        sc.name
    );
    if sim_view != real_view {
        report.violate(
            7,
            format!("{}: simulated {sim_view:?} != real {real_view:?}", sc.name),
        );
    }
}

type View = BTreeMap<String, (Vec<u8>, Option<u32>)>;

fn sim_snapshot(sim: &SimFs) -> View {
    let root_user = rustix::process::geteuid().is_root();
    sim.list_dir(DIR)
        .expect("list")
        .into_iter()
        // Another user's file is planted in the real run only as root.
        .filter(|n| root_user || !PLANTED.iter().any(|(p, owner, _)| p == n && *owner != 1000))
        .map(|n| {
            let path = format!("{DIR}/{n}");
            let bytes = sim.read_file(&path).expect("read").unwrap_or_default();
            // Modes are compared for the target only: the guard's depends
            // on the real process's umask.
            let mode = (n == NAME).then(|| sim.mode(&path).expect("mode").unwrap_or(0));
            (n, (bytes, mode))
        })
        .collect()
}

fn real_run(sc: &Scenario, mutant: Mutant) -> View {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("tempdir");
    let root = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("utf8");
    for (name, contents) in FOREIGN {
        std::fs::write(root.join(name), contents).expect("write foreign");
    }
    let root_user = rustix::process::geteuid().is_root();
    for (name, owner, contents) in PLANTED {
        if *owner != 1000 && !root_user {
            continue; // cannot plant another user's file; see `sim_snapshot`
        }
        std::fs::write(root.join(name), contents).expect("write planted");
        if *owner != 1000 {
            std::os::unix::fs::lchown(root.join(name), Some(*owner), Some(*owner)).expect("chown");
        }
    }
    let target = root.join(NAME);
    if let Some(bytes) = &sc.initial {
        std::fs::write(&target, bytes).expect("write target");
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    }
    for step in &sc.steps {
        let file = harness::with_mutant(Options::new().mode(0o600), mutant)
            .open(&target)
            .expect("open real");
        let _ = match step {
            Step::Commit(c) => commit(&file, c),
            Step::CommitUnsynced(c) => {
                harness::with_mutant(Options::new().durability(Durability::None), mutant)
                    .open(&target)
                    .and_then(|f| commit(&f, c))
            }
            Step::Abort(c) => abort_step(&file, c),
        };
    }
    let mut view = View::new();
    for entry in std::fs::read_dir(&root).expect("read_dir") {
        let entry = entry.expect("entry");
        let n = entry.file_name().into_string().expect("utf8");
        let path: &Utf8Path = &root.join(&n);
        let bytes = std::fs::read(path).expect("read");
        let mode =
            (n == NAME).then(|| entry.metadata().expect("meta").permissions().mode() & 0o7777);
        view.insert(n, (bytes, mode));
    }
    view
}

/// Invariant 6 beside another target, `x`, whose guard name `x.lock` is
/// taken by a file holding data (a `Gemfile.lock`): txfile refuses to open
/// `x`, and nothing changes, however often it is asked.
pub(crate) fn check_foreign_guard(mutant: Mutant, report: &mut Report) {
    let sim = setup(&Some(b"v0".to_vec()));
    let lock: &[u8] = b"GEM\n  specs:\n";
    sim.write_file("/d/x.lock", lock).expect("plant x.lock");
    sim.write_file("/d/x", b"x's contents").expect("write x");
    for round in 0..2 {
        let result = options(&sim, mutant)
            .open("/d/x")
            .and_then(|f| commit(&f, format!("x, round {round}").as_bytes()));
        let got = sim.read_file("/d/x.lock").expect("read x.lock");
        if got.as_deref() != Some(lock) {
            report.violate(
                6,
                format!(
                    "foreign guard with {mutant:?}, round {round}: x.lock is {}",
                    show(&got)
                ),
            );
        }
        if !matches!(result, Err(Error::ForeignGuard { .. })) {
            report.violate(
                6,
                format!("foreign guard with {mutant:?}: x.lock used as a guard"),
            );
        }
    }
}

/// A journal planted in `/d` (by this user, with valid checksums) whose
/// records also point into `/p`, where a killed writer left a temporary
/// file of `/p/victim`: recovery from `/d/a`, crashed at every operation and
/// recovered again from every post-crash state, never changes, creates or
/// removes anything in `/p`.
pub(crate) fn check_planted_journal(mutant: Mutant, report: &mut Report) {
    const PROTECTED: &[(&str, &[u8])] = &[
        ("/p/victim", b"the victim's contents"),
        (
            "/p/.victim.QwErTy12.txtmp",
            b"a killed writer's half-written file",
        ),
        ("/p/.victim.txjournal", b"a user's file"),
        ("/p/other.lock", b""),
    ];
    let setup = || {
        let sim = setup(&Some(b"v0".to_vec()));
        sim.create_dir_all("/p").expect("mkdir /p");
        for (path, contents) in PROTECTED {
            sim.write_file(path, contents).expect("protected file");
        }
        sim.write_file("/d/.a.AbCdEf12.txtmp", b"staged for a")
            .expect("staged");
        let journal = txfile::sim::encode_journal(&[
            ("/d".into(), "a".into(), ".a.AbCdEf12.txtmp".into()),
            (
                "/p".into(),
                "victim".into(),
                ".victim.QwErTy12.txtmp".into(),
            ),
            ("/p".into(), "other".into(), ".other.ZxCvBn34.txtmp".into()),
        ]);
        // Replaces the user's notes planted at the journal name.
        sim.write_file("/d/.a.txjournal", &journal)
            .expect("journal");
        sim.set_mode("/d/.a.txjournal", 0o600)
            .expect("journal mode");
        sim
    };
    let recover = |sim: &SimFs| {
        if let Ok(file) = options(sim, mutant).open(TARGET) {
            if let Ok(tx) = file.begin() {
                tx.rollback();
            }
        }
    };
    let check = |sim: &SimFs, report: &mut Report, when: &str| {
        let mut names: Vec<String> = PROTECTED.iter().map(|(p, _)| p[3..].to_string()).collect();
        names.sort();
        let now = sim.list_dir("/p").expect("list /p");
        if now != names {
            report.violate(6, format!("{when}: /p now holds {now:?}"));
        }
        for (path, contents) in PROTECTED {
            let got = sim.read_file(path).expect("read protected");
            if got.as_deref() != Some(*contents) {
                report.violate(6, format!("{when}: {path} is {}", show(&got)));
            }
        }
    };
    let probe = setup();
    recover(&probe);
    check(
        &probe,
        report,
        &format!("planted journal with {mutant:?} (no crash)"),
    );
    for i in 0..=probe.op_count() {
        report.crash_points += 1;
        let sim = setup();
        sim.crash_at(i);
        recover(&sim);
        if !sim.is_crashed() {
            sim.crash_now();
        }
        for (j, state) in sim.crash_states(&bound()).expect("bound").enumerate() {
            report.crash_states += 1;
            let when = format!("planted journal with {mutant:?}, crash before op {i}, state {j}");
            check(&state, report, &when);
            recover(&state);
            check(&state, report, &format!("{when}, after recovery"));
        }
    }
}

/// The whole suite for one protocol.
pub(crate) fn check_all(mutant: Mutant) -> Report {
    let mut report = Report::default();
    for sc in scenarios() {
        check_crash_points(&sc, mutant, &mut report);
        if sc.fault.is_none() {
            check_differential(&sc, mutant, &mut report);
        }
    }
    check_crash_during_recovery(mutant, &mut report);
    check_competitor(mutant, &mut report);
    check_foreign_guard(mutant, &mut report);
    check_planted_journal(mutant, &mut report);
    report
}
