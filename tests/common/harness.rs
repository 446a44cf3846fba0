//! The harness shared by the exhaustive crash checks: `crash.rs` (single
//! file commits, run by `crash_points.rs` and `mutants.rs`) and
//! `batch_crash.rs` (batch commits).
//!
//! A protocol describes its scenarios through [`Scenario`]; the crash
//! points, the enumeration of post-crash states, the bound and the report
//! are the same for all.
#![allow(dead_code)] // each test binary uses a different subset

use std::collections::BTreeMap;
use std::io::Write;

use txfile::sim::{Enumeration, Fault, OpKind, Operation, SimFs};
use txfile::{Error, Options, TxFile};
use txfile_testkit::FOREIGN;

/// The deliberately broken protocols of the library (`src/mutants.rs`),
/// compiled only with `--cfg txfile_mutants` (set by the repository's
/// `.cargo/config.toml`; a `RUSTFLAGS` environment variable replaces it).
#[cfg(txfile_mutants)]
pub(crate) use txfile::Mutant;

/// Without `--cfg txfile_mutants` the library runs only the correct
/// protocol: the same names, so that the checks compile, but
/// [`assert_mutants_caught`] skips with the reason instead of running them.
#[cfg(not(txfile_mutants))]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Mutant {
    None,
    NoFileFsync,
    NoDirFsync,
    RenameBeforeFsync,
    SweepForeignTemp,
    UnlockBeforeRename,
    IgnoreFsyncError,
    MarkForeignGuard,
    TrustForeignJournal,
    BatchNoJournalFsync,
    BatchRenameBeforeJournal,
    BatchIgnoreJournalChecksum,
    BatchRecoveryTrustsCache,
}

/// Whether this build has the mutants; when not, says so, and fails where
/// `TXFILE_REQUIRE_MUTANTS` is set (CI sets it: nothing skips there).
pub(crate) fn mutants_built() -> bool {
    if cfg!(txfile_mutants) {
        return true;
    }
    let reason = "skipped: the mutants (src/mutants.rs) are compiled only with \
        `--cfg txfile_mutants`, which the repository's .cargo/config.toml sets; \
        a RUSTFLAGS environment variable replaces it (add `--cfg txfile_mutants` to it)";
    assert!(
        std::env::var_os("TXFILE_REQUIRE_MUTANTS").is_none(),
        "{reason}"
    );
    eprintln!("{reason}");
    false
}

/// Most post-crash states enumerated for one crash point; more fails the
/// test (the bound is checked, never used to truncate). 2^15: with the
/// testkit's seven foreign files, the `SweepForeignTemp` mutant leaves up to
/// 25,600 states at one crash point (each wrongly swept file doubles them),
/// which must be enumerated for invariant 6 to catch it.
pub(crate) const MAX_STATES_PER_CRASH: u64 = 1 << 15;

/// The enumeration bound of every check.
pub(crate) fn bound() -> Enumeration {
    Enumeration::new().max_states(MAX_STATES_PER_CRASH)
}

/// Writes the foreign files ([`FOREIGN`]) into `dir`.
pub(crate) fn write_foreign(sim: &SimFs, dir: &str) {
    for (name, contents) in FOREIGN {
        sim.write_file(format!("{dir}/{name}"), contents)
            .expect("setup foreign");
    }
}

/// Invariant 6 in `dir`: the foreign files that are missing or changed, with
/// what they hold now.
pub(crate) fn changed_foreign(sim: &SimFs, dir: &str) -> Vec<(&'static str, Option<Vec<u8>>)> {
    FOREIGN
        .iter()
        .filter_map(|&(name, contents)| {
            let got = sim
                .read_file(format!("{dir}/{name}"))
                .expect("read foreign");
            (got.as_deref() != Some(contents)).then_some((name, got))
        })
        .collect()
}

/// What the checks found.
#[derive(Debug, Default)]
pub(crate) struct Report {
    /// Crash points tried.
    pub(crate) crash_points: u64,
    /// Post-crash states enumerated (each followed by recovery).
    pub(crate) crash_states: u64,
    /// Recoveries run and checked, where a state is recovered in several
    /// ways.
    pub(crate) recoveries: u64,
    /// Invariant number -> how often, and the first few messages.
    pub(crate) violations: BTreeMap<u8, (u64, Vec<String>)>,
}

impl Report {
    pub(crate) fn violate(&mut self, invariant: u8, what: String) {
        let entry = self.violations.entry(invariant).or_default();
        entry.0 += 1;
        if entry.1.len() < 3 {
            entry.1.push(what);
        }
    }

    pub(crate) fn caught(&self) -> Vec<u8> {
        self.violations.keys().copied().collect()
    }

    pub(crate) fn summary(&self) -> String {
        let mut out = String::new();
        for (inv, (n, msgs)) in &self.violations {
            out.push_str(&format!("  invariant {inv}: {n} violations, e.g.\n"));
            for m in msgs {
                out.push_str(&format!("    - {m}\n"));
            }
        }
        out
    }

    /// The correct protocol's verdict: no invariant broken, and enough
    /// post-crash states that the check means something.
    pub(crate) fn assert_passed(&self) {
        assert!(
            self.violations.is_empty(),
            "invariants broken:\n{}",
            self.summary()
        );
        assert!(
            self.crash_states > 1000,
            "the enumeration is suspiciously small"
        );
    }
}

/// Runs `check` for each mutant and fails unless every mutant broke all the
/// invariants listed with it. `states` describes how far the check went.
pub(crate) fn assert_mutants_caught(
    mutants: &[(Mutant, &[u8])],
    mut check: impl FnMut(Mutant, &[u8]) -> Report,
    states: impl Fn(&Report) -> String,
) {
    if !mutants_built() {
        return;
    }
    let mut missed = Vec::new();
    for &(mutant, expected) in mutants {
        let report = check(mutant, expected);
        let caught = report.caught();
        eprintln!(
            "mutant {mutant:?}: caught by invariants {caught:?} {}\n{}",
            states(&report),
            report.summary()
        );
        if !expected.iter().all(|inv| caught.contains(inv)) {
            missed.push(format!(
                "{mutant:?}: expected invariants {expected:?}, got {caught:?}"
            ));
        }
    }
    assert!(
        missed.is_empty(),
        "mutants not caught as expected:\n{}",
        missed.join("\n")
    );
}

/// How a run is perturbed.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Crash {
    None,
    Before(u64),
    During(u64),
}

impl Crash {
    /// Every crash point of a clean run: before every operation, after the
    /// last one, and in the middle of every write.
    pub(crate) fn points(trace: &[Operation]) -> Vec<Crash> {
        let mut points: Vec<Crash> = (0..=trace.len() as u64).map(Crash::Before).collect();
        points.extend(
            trace
                .iter()
                .filter(|op| op.kind == OpKind::Write)
                .map(|op| Crash::During(op.index)),
        );
        points
    }
}

/// What the program saw in one run of a scenario.
pub(crate) struct Run<V> {
    pub(crate) sim: SimFs,
    /// attempted[0] is the initial version, then every version a step
    /// tried to commit.
    pub(crate) attempted: Vec<V>,
    /// Index into `attempted` of the last version whose commit returned Ok.
    pub(crate) acked: usize,
    /// Operation ranges of the commits that returned Ok.
    pub(crate) ok_commits: Vec<(u64, u64)>,
    /// A commit without fsyncs (`Durability::None`) ran and no durable
    /// commit acknowledged anything since: after power loss the target may
    /// hold anything, as documented, until one does.
    pub(crate) unsynced: bool,
}

impl<V> Run<V> {
    /// Arms `sim` with the fault and the crash, and starts the record.
    pub(crate) fn start(
        sim: SimFs,
        initial: V,
        fault_at: Option<(u64, Fault)>,
        crash: Crash,
    ) -> Run<V> {
        if let Some((index, fault)) = fault_at {
            sim.fail_at(index, fault);
        }
        match crash {
            Crash::None => {}
            Crash::Before(i) => sim.crash_at(i),
            Crash::During(i) => sim.crash_during(i),
        }
        Run {
            sim,
            attempted: vec![initial],
            acked: 0,
            ok_commits: Vec::new(),
            unsynced: false,
        }
    }

    /// Records that the commit of the last attempted version, started at
    /// operation `start`, returned Ok.
    pub(crate) fn acknowledge(&mut self, start: u64) {
        self.acked = self.attempted.len() - 1;
        self.ok_commits.push((start, self.sim.op_count()));
        self.unsynced = false;
    }

    /// Ends the run: a crash point after the last operation crashes now.
    pub(crate) fn finish(self, crash: Crash) -> Run<V> {
        if let Crash::Before(i) = crash {
            if !self.sim.is_crashed() && i >= self.sim.op_count() {
                self.sim.crash_now();
            }
        }
        self
    }

    /// The versions the target may hold: the acknowledged one or a later
    /// attempt. Empty when it may hold anything (see `unsynced`).
    pub(crate) fn allowed(&self) -> &[V] {
        if self.unsynced {
            return &[];
        }
        &self.attempted[self.acked..]
    }

    /// Invariant 3: no commit returned Ok across the injected fault.
    pub(crate) fn check_honest_errors(
        &self,
        fault_at: Option<(u64, Fault)>,
        report: &mut Report,
        when: &str,
    ) {
        if let Some((index, _)) = fault_at {
            if self
                .ok_commits
                .iter()
                .any(|&(start, end)| (start..end).contains(&index))
            {
                report.violate(
                    3,
                    format!("{when}: commit returned Ok after the injected fault at op {index}"),
                );
            }
        }
    }
}

/// A protocol's scenario, as the crash-point check runs it.
pub(crate) trait Scenario {
    /// What the targets hold.
    type Version: Clone;

    /// The scenario's name and the mutant, for messages.
    fn describe(&self, mutant: Mutant) -> String;

    /// Whether the scenario injects a fault.
    fn has_fault(&self) -> bool;

    /// Where to inject the fault, from a clean run's trace.
    fn fault_site(&self, trace: &[Operation]) -> Option<(u64, Fault)>;

    /// Runs the scenario on a fresh machine.
    fn run(
        &self,
        mutant: Mutant,
        fault_at: Option<(u64, Fault)>,
        crash: Crash,
    ) -> Run<Self::Version>;

    /// The invariants of the uncrashed run.
    fn check_live(
        &self,
        mutant: Mutant,
        live: &Run<Self::Version>,
        fault_at: Option<(u64, Fault)>,
        report: &mut Report,
    );

    /// Recovers a post-crash state and checks the invariants around it.
    fn recover_and_check(
        &self,
        state: &SimFs,
        mutant: Mutant,
        allowed: &[Self::Version],
        history: &[Self::Version],
        report: &mut Report,
        when: &str,
    );
}

/// Where to inject the scenario's fault, learnt from a clean run.
pub(crate) fn fault_index<S: Scenario>(sc: &S, mutant: Mutant) -> Option<(u64, Fault)> {
    if !sc.has_fault() {
        return None;
    }
    let probe = sc.run(mutant, None, Crash::None);
    sc.fault_site(&probe.sim.trace())
}

/// Checks one scenario uncrashed, then under every crash point, recovering
/// every post-crash state.
pub(crate) fn check_crash_points<S: Scenario>(sc: &S, mutant: Mutant, report: &mut Report) {
    let fault_at = fault_index(sc, mutant);
    if sc.has_fault() && fault_at.is_none() {
        // The mutant never reaches the faulty operation: nothing to inject.
        return;
    }
    // The uncrashed run: live invariants.
    let live = sc.run(mutant, fault_at, Crash::None);
    sc.check_live(mutant, &live, fault_at, report);
    for crash in Crash::points(&live.sim.trace()) {
        report.crash_points += 1;
        let crashed = sc.run(mutant, fault_at, crash);
        let when = format!("{}, crash {crash:?}", sc.describe(mutant));
        check_every_state(sc, mutant, &crashed, report, &when);
    }
}

/// Recovers every post-crash state of `crashed`'s machine and checks the
/// invariants around it; returns how many states that was.
pub(crate) fn check_every_state<S: Scenario>(
    sc: &S,
    mutant: Mutant,
    crashed: &Run<S::Version>,
    report: &mut Report,
    when: &str,
) -> u64 {
    let states = crashed
        .sim
        .crash_states(&bound())
        .unwrap_or_else(|e| panic!("{when}: {e}"));
    let mut checked = 0;
    for (i, state) in states.enumerate() {
        report.crash_states += 1;
        checked += 1;
        sc.recover_and_check(
            &state,
            mutant,
            crashed.allowed(),
            &crashed.attempted,
            report,
            &format!("{when}, state {i}"),
        );
    }
    checked
}

/// The handle options of every check.
pub(crate) fn options(sim: &SimFs, mutant: Mutant) -> Options {
    // A fault the filesystem can produce by itself is injected there.
    #[cfg(txfile_mutants)]
    sim.mutant(mutant);
    with_mutant(Options::new().filesystem(sim).mode(0o600), mutant)
}

/// `options` running `mutant` (without `--cfg txfile_mutants`, the
/// correct protocol: see [`mutants_built`]).
pub(crate) fn with_mutant(options: Options, mutant: Mutant) -> Options {
    #[cfg(txfile_mutants)]
    return options.mutant(mutant);
    #[cfg(not(txfile_mutants))]
    {
        let _ = mutant;
        options
    }
}

/// A failed write into a transaction of `file`.
pub(crate) fn write_error(file: &TxFile, e: std::io::Error) -> Error {
    Error::Io {
        op: txfile::Op::Write,
        path: file.path().to_owned(),
        source: e,
    }
}

/// begin, write `contents`, commit.
pub(crate) fn commit(file: &TxFile, contents: &[u8]) -> Result<(), Error> {
    let mut tx = file.begin()?;
    tx.write_all(contents).map_err(|e| write_error(file, e))?;
    tx.commit()
}
