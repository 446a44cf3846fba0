//! Exhaustive crash points of batch commits (issue 7): 2- and 3-member
//! batches with every member in one directory and with members in two
//! directories; a power loss before and after every filesystem operation
//! and in the middle of every write; every post-crash state the model of
//! `docs/crash-model.md` admits; recovery from every member in turn and through
//! `Options::recover`; and a crash in the middle of recovery.
//!
//! Bound: at most `MAX_STATES_PER_CRASH` post-crash states per crash point,
//! half-done renames off (no rename-based protocol survives them), contents
//! of at most one sector per member. The bound is checked, never used to
//! truncate: more states fail the test. Run with `--nocapture` for the
//! counts.
//!
//! Invariants (numbered as in `docs/crash-model.md`), checked after recovery:
//! 1. every member old or every member new, never a mix, never a torn file;
//! 2. once `BatchTransaction::commit` returned Ok its versions survive;
//! 3. a commit whose fsync or rename failed never returns Ok;
//! 4. recovery works from any member, and afterwards no journal name and no
//!    temporary file of any member is left in any member's directory;
//! 5. no lock survives a crash;
//! 6. other files in the directories are untouched.
#![cfg(unix)] // the harness gives files Unix modes (`Options::mode`, Unix-only)
#![cfg(feature = "sim")]

#[path = "common/harness.rs"]
mod harness;

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Instant;

use harness::Mutant;
use harness::{
    Crash, MAX_STATES_PER_CRASH, Report, Scenario as _, assert_mutants_caught, bound,
    changed_foreign, check_crash_points, commit as single_commit, options, write_error,
};
use txfile::sim::{Fault, OpKind, Operation, SimFs};
use txfile::{Batch, Error, TxFile};
use txfile_testkit::{is_leftover_of, journal_name, show, show_versions};

/// The contents of every member, in member order; `None`: absent.
type Version = Vec<Option<Vec<u8>>>;

/// What the program saw in one run of a scenario.
type Run = harness::Run<Version>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Layout {
    /// `/d/a`, `/d/b`, `/d/c`.
    OneDir,
    /// `/d/a`, `/e/b`, `/d/c`.
    TwoDirs,
}

#[derive(Clone, Debug)]
enum Step {
    /// A batch commit of these contents (one per member).
    Batch(Vec<Vec<u8>>),
    /// A single-file commit on one member.
    Single(usize, Vec<u8>),
}

/// Where to inject a fault: picks an operation index from a clean run's
/// trace.
type FaultSite = fn(&[Operation]) -> Option<u64>;

#[derive(Clone)]
struct Scenario {
    name: String,
    layout: Layout,
    members: usize,
    initial: Version,
    /// Guard files that exist before the scenario (members used before).
    guards: bool,
    steps: Vec<Step>,
    fault: Option<(FaultSite, Fault)>,
    /// A second fault, this many operations after the first.
    then: Option<(u64, Fault)>,
}

impl Scenario {
    fn paths(&self) -> Vec<String> {
        let dirs = match self.layout {
            Layout::OneDir => ["/d", "/d", "/d"],
            Layout::TwoDirs => ["/d", "/e", "/d"],
        };
        ["a", "b", "c"]
            .iter()
            .zip(dirs)
            .take(self.members)
            .map(|(name, dir)| format!("{dir}/{name}"))
            .collect()
    }

    fn dirs(&self) -> Vec<&'static str> {
        match self.layout {
            Layout::OneDir => vec!["/d"],
            Layout::TwoDirs => vec!["/d", "/e"],
        }
    }

    fn names(&self) -> Vec<&'static str> {
        ["a", "b", "c"][..self.members].to_vec()
    }

    fn when(&self, mutant: Mutant) -> String {
        format!(
            "{} ({} members, {:?}) with {mutant:?}",
            self.name, self.members, self.layout
        )
    }
}

fn bytes(s: &str) -> Vec<u8> {
    s.as_bytes().to_vec()
}

/// The journal's fsync: the commit point.
fn journal_sync(trace: &[Operation]) -> Option<u64> {
    trace
        .iter()
        .find(|op| op.kind == OpKind::SyncFile && op.path.as_str().ends_with(".txjournal"))
        .map(|op| op.index)
}

/// The first rename after the commit point.
fn rename_after_commit_point(trace: &[Operation]) -> Option<u64> {
    let commit_point = journal_sync(trace)?;
    trace
        .iter()
        .find(|op| op.kind == OpKind::Rename && op.index > commit_point)
        .map(|op| op.index)
}

/// The first directory fsync after the commit point.
fn dir_sync_after_commit_point(trace: &[Operation]) -> Option<u64> {
    let commit_point = journal_sync(trace)?;
    trace
        .iter()
        .find(|op| op.kind == OpKind::SyncDir && op.index > commit_point)
        .map(|op| op.index)
}

fn scenarios() -> Vec<Scenario> {
    let mut out = Vec::new();
    for layout in [Layout::OneDir, Layout::TwoDirs] {
        for members in [2, 3] {
            let new = |tag: &str| -> Vec<Vec<u8>> {
                ["a", "b", "c"][..members]
                    .iter()
                    .map(|m| bytes(&format!("{tag} {m}")))
                    .collect()
            };
            let old: Version = new("old").into_iter().map(Some).collect();
            let base = Scenario {
                name: String::new(),
                layout,
                members,
                initial: old.clone(),
                guards: true,
                steps: Vec::new(),
                fault: None,
                then: None,
            };
            out.push(Scenario {
                name: "all members new files".into(),
                initial: vec![None; members],
                guards: false,
                steps: vec![Step::Batch(new("new"))],
                ..base.clone()
            });
            out.push(Scenario {
                name: "all members existing".into(),
                steps: vec![Step::Batch(new("new"))],
                ..base.clone()
            });
            // Member 1 unchanged (with 2 members that leaves one changed
            // member: a single-file commit inside the batch); the last
            // member is new.
            let mut mixed_initial = old.clone();
            mixed_initial[members - 1] = None;
            let mut mixed = new("new");
            mixed[1] = bytes("old b");
            out.push(Scenario {
                name: "mixed: one member unchanged, one new file".into(),
                initial: mixed_initial,
                steps: vec![Step::Batch(mixed)],
                ..base.clone()
            });
            out.push(Scenario {
                name: "a batch, then a single-file commit on a member".into(),
                steps: vec![Step::Batch(new("new")), Step::Single(0, bytes("single a"))],
                ..base.clone()
            });
            if members == 2 {
                out.push(Scenario {
                    name: "the journal's fsync fails (EIO)".into(),
                    steps: vec![Step::Batch(new("new"))],
                    fault: Some((journal_sync, Fault::Io)),
                    ..base.clone()
                });
                // The journal is then undecided: recovery must make its
                // decision durable before acting on it.
                out.push(Scenario {
                    name: "the journal's fsync fails (EIO), then the voiding write (ENOSPC)".into(),
                    steps: vec![Step::Batch(new("new"))],
                    fault: Some((journal_sync, Fault::Io)),
                    then: Some((1, Fault::NoSpace)),
                    ..base.clone()
                });
                out.push(Scenario {
                    name: "the journal's fsync fails (EIO), then the voiding fsync (EIO)".into(),
                    steps: vec![Step::Batch(new("new"))],
                    fault: Some((journal_sync, Fault::Io)),
                    then: Some((2, Fault::Io)),
                    ..base.clone()
                });
                out.push(Scenario {
                    name: "a rename after the commit point fails (EACCES)".into(),
                    steps: vec![Step::Batch(new("new"))],
                    fault: Some((rename_after_commit_point, Fault::PermissionDenied)),
                    ..base.clone()
                });
                out.push(Scenario {
                    name: "the directory fsync after the renames fails (EIO)".into(),
                    steps: vec![Step::Batch(new("new"))],
                    fault: Some((dir_sync_after_commit_point, Fault::Io)),
                    ..base.clone()
                });
            }
        }
    }
    out
}

fn setup(sc: &Scenario) -> SimFs {
    let sim = SimFs::new();
    for dir in sc.dirs() {
        sim.create_dir_all(dir).expect("setup dir");
        harness::write_foreign(&sim, dir);
    }
    for (path, initial) in sc.paths().iter().zip(&sc.initial) {
        if let Some(contents) = initial {
            sim.write_file(path, contents).expect("setup member");
        }
        if sc.guards {
            sim.write_file(format!("{path}.lock"), b"")
                .expect("setup guard");
        }
    }
    sim
}

fn open_all(sim: &SimFs, sc: &Scenario, mutant: Mutant) -> Result<Vec<TxFile>, Error> {
    sc.paths()
        .iter()
        .map(|path| options(sim, mutant).open(path))
        .collect()
}

fn batch_commit(files: &[TxFile], contents: &[Vec<u8>]) -> Result<(), Error> {
    let batch = Batch::new(files.to_vec())?;
    let mut tx = batch.begin()?;
    for (i, bytes) in contents.iter().enumerate() {
        tx.member(i)
            .write_all(bytes)
            .map_err(|e| write_error(&files[i], e))?;
    }
    tx.commit()
}

fn read_members(sim: &SimFs, sc: &Scenario) -> Version {
    sc.paths()
        .iter()
        .map(|p| sim.read_file(p).expect("read member"))
        .collect()
}

/// Invariants 1 and 2 on the members: one allowed version; a version that
/// was never committed as a whole (a mix, a torn file) breaks 1, an older
/// one than was acknowledged breaks 2.
fn check_members(
    got: &Version,
    allowed: &[Version],
    history: &[Version],
    report: &mut Report,
    when: &str,
) {
    if !allowed.contains(got) {
        let inv = if history.contains(got) { 2 } else { 1 };
        report.violate(
            inv,
            format!(
                "{when}: members are {}, allowed {}",
                show_versions(got),
                allowed
                    .iter()
                    .map(|v| show_versions(v))
                    .collect::<Vec<_>>()
                    .join(" or ")
            ),
        );
    }
}

/// Invariant 4: no journal name and no temporary file of any member in any
/// member directory.
fn check_clean(sim: &SimFs, sc: &Scenario, report: &mut Report, when: &str) {
    let members = sc.names();
    for dir in sc.dirs() {
        let left: Vec<String> = sim
            .list_dir(dir)
            .expect("list")
            .into_iter()
            .filter(|n| members.iter().any(|m| is_leftover_of(n, m)))
            .collect();
        if !left.is_empty() {
            report.violate(4, format!("{when}: left in {dir}: {left:?}"));
        }
    }
}

/// Invariant 6: the foreign files are there, unchanged.
fn check_foreign(sim: &SimFs, sc: &Scenario, report: &mut Report, when: &str) {
    for dir in sc.dirs() {
        for (name, got) in changed_foreign(sim, dir) {
            report.violate(
                6,
                format!("{when}: foreign file {dir}/{name} is {}", show(&got)),
            );
        }
    }
}

/// How recovery is started on a post-crash machine.
#[derive(Clone, Copy, Debug)]
enum Trigger {
    /// `begin` on this member.
    Member(usize),
    /// `Options::recover` on the first member's directory.
    RecoverDir,
}

fn triggers(sc: &Scenario) -> Vec<Trigger> {
    (0..sc.members)
        .map(Trigger::Member)
        .chain([Trigger::RecoverDir])
        .collect()
}

/// Recovery as the next program runs it: open every member, start recovery
/// with `trigger`, then begin and roll back on every member (each removes
/// what a torn journal left under its own name). Returns an error message
/// when a step fails; the machine may go down in the middle.
fn recover(sim: &SimFs, sc: &Scenario, mutant: Mutant, trigger: Trigger) -> Result<(), String> {
    let files = open_all(sim, sc, mutant).map_err(|e| format!("open: {e}"))?;
    match trigger {
        Trigger::Member(i) => match files[i].try_begin() {
            Ok(Some(tx)) => tx.rollback(),
            Ok(None) => return Err(format!("member {i}'s lock is held after a crash")),
            Err(e) => return Err(format!("begin on member {i}: {e}")),
        },
        Trigger::RecoverDir => {
            options(sim, mutant)
                .recover(sc.dirs()[0])
                .map_err(|e| format!("recover: {e}"))?;
        }
    }
    Ok(())
}

fn begin_everywhere(sim: &SimFs, sc: &Scenario, mutant: Mutant) -> Result<(), String> {
    let files = open_all(sim, sc, mutant).map_err(|e| format!("open: {e}"))?;
    for (i, file) in files.iter().enumerate() {
        match file.try_begin() {
            Ok(Some(tx)) => tx.rollback(),
            Ok(None) => return Err(format!("member {i}'s lock is held")),
            Err(e) => return Err(format!("begin on member {i}: {e}")),
        }
    }
    Ok(())
}

fn recovered(sc: &Scenario) -> Vec<Vec<u8>> {
    sc.names()
        .iter()
        .map(|m| bytes(&format!("recovered {m}")))
        .collect()
}

impl harness::Scenario for Scenario {
    type Version = Version;

    fn describe(&self, mutant: Mutant) -> String {
        self.when(mutant)
    }

    fn has_fault(&self) -> bool {
        self.fault.is_some()
    }

    fn fault_site(&self, trace: &[Operation]) -> Option<(u64, Fault)> {
        let (site, fault) = self.fault?;
        site(trace).map(|index| (index, fault))
    }

    fn run(&self, mutant: Mutant, fault_at: Option<(u64, Fault)>, crash: Crash) -> Run {
        let sim = setup(self);
        let mut run = Run::start(sim.clone(), self.initial.clone(), fault_at, crash);
        if let (Some((index, _)), Some((after, fault))) = (fault_at, self.then) {
            sim.fail_at(index + after, fault);
        }
        for step in &self.steps {
            if sim.is_crashed() {
                break;
            }
            // Fresh handles per step, as separate program runs would use.
            let Ok(files) = open_all(&sim, self, mutant) else {
                break;
            };
            let mut next = run.attempted.last().expect("initial").clone();
            let start = sim.op_count();
            let result = match step {
                Step::Batch(contents) => {
                    for (slot, bytes) in next.iter_mut().zip(contents) {
                        *slot = Some(bytes.clone());
                    }
                    run.attempted.push(next);
                    batch_commit(&files, contents)
                }
                Step::Single(i, contents) => {
                    next[*i] = Some(contents.clone());
                    run.attempted.push(next);
                    single_commit(&files[*i], contents)
                }
            };
            if result.is_ok() {
                run.acknowledge(start);
            }
        }
        run.finish(crash)
    }

    /// Invariants without a crash: 3 (honest errors), then after recovery (a
    /// failure after the commit point leaves the journal for it) 1, 4, 5, 6.
    fn check_live(
        &self,
        mutant: Mutant,
        live: &Run,
        fault_at: Option<(u64, Fault)>,
        report: &mut Report,
    ) {
        let when = format!("{} (no crash)", self.when(mutant));
        live.check_honest_errors(fault_at, report, &when);
        if live.ok_commits.len() == self.steps.len() {
            // Everything succeeded: nothing is left for recovery.
            check_members(
                &read_members(&live.sim, self),
                live.allowed(),
                &live.attempted,
                report,
                &when,
            );
            check_clean(&live.sim, self, report, &when);
        }
        // Another process can take every lock and finds one allowed version.
        let other = live.sim.process();
        if let Err(e) = begin_everywhere(&other, self, mutant) {
            report.violate(5, format!("{when}: another process: {e}"));
        }
        check_members(
            &read_members(&live.sim, self),
            live.allowed(),
            &live.attempted,
            report,
            &format!("{when}, after another process began"),
        );
        check_clean(
            &live.sim,
            self,
            report,
            &format!("{when}, after another process began"),
        );
        check_foreign(&live.sim, self, report, &when);
    }

    /// Recovers a copy of `state` with every trigger and checks invariants 1,
    /// 2, 4, 5 and 6 after each.
    fn recover_and_check(
        &self,
        state: &SimFs,
        mutant: Mutant,
        allowed: &[Version],
        history: &[Version],
        report: &mut Report,
        when: &str,
    ) {
        check_foreign(state, self, report, &format!("{when}, before recovery"));
        for trigger in triggers(self) {
            report.recoveries += 1;
            let when = format!("{when}, recovery by {trigger:?}");
            // An identical copy: the state has nothing pending.
            let sim = state.crash_state_with(false, |_| 1);
            if let Err(e) = recover(&sim, self, mutant, trigger) {
                let inv = if e.contains("lock is held") { 5 } else { 4 };
                report.violate(inv, format!("{when}: {e}"));
                continue;
            }
            // Atomicity right after the recovery that one member started. A
            // member that no step changes is in no journal and rightly recovers
            // nothing: it is checked after every member began.
            let got = read_members(&sim, self);
            let in_journal = match trigger {
                Trigger::Member(i) => history.iter().any(|v| v[i] != history[0][i]),
                Trigger::RecoverDir => true,
            };
            if in_journal {
                check_members(&got, allowed, history, report, &when);
            }
            // Every other member cleans up after itself.
            if let Err(e) = begin_everywhere(&sim, self, mutant) {
                let inv = if e.contains("lock is held") { 5 } else { 4 };
                report.violate(inv, format!("{when}, then begin on every member: {e}"));
                continue;
            }
            let again = read_members(&sim, self);
            check_members(
                &again,
                allowed,
                history,
                report,
                &format!("{when}, then begin on every member"),
            );
            // What the member that started recovery sees is final. (A member
            // that the batch left unchanged is not in its journal and rightly
            // recovers nothing: its contents are the same either way.)
            let settled = match trigger {
                Trigger::Member(i) => again[i] == got[i],
                Trigger::RecoverDir => again == got,
            };
            if !settled {
                report.violate(
                    1,
                    format!(
                        "{when}: members went from {} to {} when the others began",
                        show_versions(&got),
                        show_versions(&again)
                    ),
                );
            }
            check_clean(&sim, self, report, &format!("{when}, after recovery"));
            check_foreign(&sim, self, report, &format!("{when}, after recovery"));
            // The next batch commits; recovery must not be in its way.
            let next = recovered(self);
            let committed = open_all(&sim, self, mutant)
                .map_err(|e| e.to_string())
                .and_then(|files| batch_commit(&files, &next).map_err(|e| e.to_string()));
            match committed {
                Ok(()) => {
                    let want: Version = next.into_iter().map(Some).collect();
                    let got = read_members(&sim, self);
                    if got != want {
                        report.violate(
                            2,
                            format!(
                                "{when}: the batch after recovery left {}",
                                show_versions(&got)
                            ),
                        );
                    }
                }
                Err(e) => {
                    report.violate(4, format!("{when}: the batch after recovery failed: {e}"))
                }
            }
            check_clean(&sim, self, report, &format!("{when}, after the next batch"));
            check_foreign(&sim, self, report, &format!("{when}, after the next batch"));
        }
    }
}

/// Everything on the machine that recovery can depend on: per directory,
/// every name with its contents.
type Key = Vec<(String, Option<Vec<u8>>, Option<u32>)>;

fn key(sim: &SimFs, sc: &Scenario) -> Key {
    let mut out = Vec::new();
    for dir in sc.dirs() {
        for name in sim.list_dir(dir).expect("list") {
            let path = format!("{dir}/{name}");
            let contents = sim.read_file(&path).expect("read");
            let mode = sim.mode(&path).expect("mode");
            out.push((path, contents, mode));
        }
    }
    out
}

/// A crash in the middle of recovery, then recovery again: for every
/// distinct post-crash state of `sc` that holds a journal name of a member,
/// recovery started from each member in turn, with a power loss before each
/// of its operations. The second recovery must end where an uninterrupted
/// first one does. Every post-crash state is enumerated; one that is
/// identical (names, contents, modes) to one already checked with the same
/// expectation is counted but not recovered again, since recovery depends
/// on nothing else.
fn check_crash_during_recovery(sc: &Scenario, mutant: Mutant, report: &mut Report) -> (u64, u64) {
    let live = sc.run(mutant, None, Crash::None);
    let members = sc.names();
    let mut seen = BTreeSet::new();
    let mut firsts = Vec::new();
    for i in 0..=live.sim.op_count() {
        let crashed = sc.run(mutant, None, Crash::Before(i));
        for state in crashed.sim.crash_states(&bound()).expect("bound") {
            let k = key(&state, sc);
            let journal = k.iter().any(|(path, _, _)| {
                let name = path.rsplit('/').next().unwrap_or_default();
                members.iter().any(|m| name == journal_name(m))
            });
            if journal && seen.insert(k) {
                firsts.push((state, crashed.allowed().to_vec(), crashed.attempted.clone()));
            }
        }
    }
    let distinct = firsts.len() as u64;
    let mut checked: BTreeSet<(Key, Vec<Version>)> = BTreeSet::new();
    let mut recovered_states = 0;
    for (n, (first, allowed, history)) in firsts.iter().enumerate() {
        for trigger in triggers(sc) {
            // Where an uninterrupted recovery ends, and how many operations
            // it takes.
            let probe = first.crash_state_with(false, |_| 1);
            let ops_before = probe.op_count();
            let _ = recover(&probe, sc, mutant, trigger);
            let _ = begin_everywhere(&probe, sc, mutant);
            let outcome = read_members(&probe, sc);
            let ops = probe.op_count() - ops_before;
            let expect: Vec<Version> = if allowed.contains(&outcome) {
                vec![outcome]
            } else {
                allowed.clone()
            };
            for i in 0..=ops {
                report.crash_points += 1;
                let again = first.crash_state_with(false, |_| 1);
                again.crash_at(again.op_count() + i);
                let _ = recover(&again, sc, mutant, trigger);
                let _ = begin_everywhere(&again, sc, mutant);
                if !again.is_crashed() {
                    again.crash_now();
                }
                let when = format!(
                    "{}: recovery of state {n} by {trigger:?}, crash before its op {i}",
                    sc.when(mutant)
                );
                let states = again
                    .crash_states(&bound())
                    .unwrap_or_else(|e| panic!("{when}: {e}"));
                for (j, state) in states.enumerate() {
                    report.crash_states += 1;
                    if !checked.insert((key(&state, sc), expect.clone())) {
                        continue;
                    }
                    recovered_states += 1;
                    sc.recover_and_check(
                        &state,
                        mutant,
                        &expect,
                        history,
                        report,
                        &format!("{when}, state {j}"),
                    );
                }
            }
        }
    }
    (distinct, recovered_states)
}

/// A commit that fails leaves its journal to recovery without any crash,
/// and after a failed fsync the page cache and the disk may disagree about
/// that journal. So, for a scenario with a fault: the failed commit, then
/// recovery in the same boot (started by each trigger) with a power loss
/// before each of its operations, then every post-crash state recovered and
/// checked. Returns how many post-crash states that was.
fn check_crash_during_live_recovery(sc: &Scenario, mutant: Mutant, report: &mut Report) -> u64 {
    let Some(fault_at) = harness::fault_index(sc, mutant) else {
        return 0;
    };
    let failed = || sc.run(mutant, Some(fault_at), Crash::None);
    let members = sc.names();
    let journal_left = failed()
        .sim
        .list_dir("/d")
        .expect("list")
        .iter()
        .any(|name| members.iter().any(|m| *name == journal_name(m)));
    if !journal_left {
        return 0;
    }
    let mut states = 0;
    for trigger in triggers(sc) {
        let probe = failed();
        let ops_before = probe.sim.op_count();
        let _ = recover(&probe.sim, sc, mutant, trigger);
        let ops = probe.sim.op_count() - ops_before;
        for i in 0..=ops {
            report.crash_points += 1;
            let run = failed();
            run.sim.crash_at(run.sim.op_count() + i);
            let _ = recover(&run.sim, sc, mutant, trigger);
            if !run.sim.is_crashed() {
                run.sim.crash_now();
            }
            let when = format!(
                "{}: recovery in the same boot by {trigger:?}, crash before its op {i}",
                sc.when(mutant)
            );
            states += harness::check_every_state(sc, mutant, &run, report, &when);
        }
    }
    states
}

/// The whole suite for one protocol. With `stop_when`, returns after the
/// first scenario at which all of those invariants have been broken.
fn check_all(mutant: Mutant, stop_when: Option<&[u8]>) -> Report {
    let done = |report: &Report| {
        stop_when.is_some_and(|invs| invs.iter().all(|i| report.violations.contains_key(i)))
    };
    let mut report = Report::default();
    for sc in scenarios() {
        let start = Instant::now();
        let before = report.crash_states;
        check_crash_points(&sc, mutant, &mut report);
        let same_boot = if sc.fault.is_some() {
            check_crash_during_live_recovery(&sc, mutant, &mut report)
        } else {
            0
        };
        eprintln!(
            "  {}: {} post-crash states ({same_boot} after a crash during recovery in the same boot) in {:.1?}",
            sc.when(mutant),
            report.crash_states - before,
            start.elapsed()
        );
        if done(&report) {
            return report;
        }
    }
    for sc in scenarios()
        .into_iter()
        .filter(|sc| sc.members == 3 && sc.name == "all members existing")
    {
        let start = Instant::now();
        let before = report.crash_states;
        let (distinct, recovered) = check_crash_during_recovery(&sc, mutant, &mut report);
        eprintln!(
            "  crash during recovery, {}: {distinct} distinct first states with a journal, {} post-crash states ({recovered} distinct, recovered) in {:.1?}",
            sc.when(mutant),
            report.crash_states - before,
            start.elapsed()
        );
        if done(&report) {
            return report;
        }
    }
    report
}

#[test]
fn every_crash_point_of_batch_commits() {
    let start = Instant::now();
    let report = check_all(Mutant::None, None);
    eprintln!(
        "batch_crash: {} crash points, {} post-crash states checked, {} recoveries (bound: at most {} states per crash point, paranoid renames off) in {:.1?}",
        report.crash_points,
        report.crash_states,
        report.recoveries,
        MAX_STATES_PER_CRASH,
        start.elapsed()
    );
    report.assert_passed();
}

/// Each batch mutant with the invariants that must catch it.
const MUTANTS: &[(Mutant, &[u8])] = &[
    (Mutant::BatchNoJournalFsync, &[1]),
    (Mutant::BatchRenameBeforeJournal, &[1]),
    (Mutant::BatchIgnoreJournalChecksum, &[1]),
    (Mutant::BatchRecoveryTrustsCache, &[1]),
];

#[test]
fn every_batch_mutant_is_caught() {
    assert_mutants_caught(
        MUTANTS,
        |mutant, expected| check_all(mutant, Some(expected)),
        |report| format!("after {} post-crash states", report.crash_states),
    );
}
