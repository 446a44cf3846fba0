//! `guard_registry`: 2 to 4 real threads, spread over 1 or 2 simulated
//! processes, interleave handle open / clone / drop, begin / try_begin and
//! commit / rollback on up to three targets, each target under its own lock
//! style. Checked:
//!
//! - mutual exclusion: a per-target count of transactions in progress never
//!   exceeds 1, every transaction reads exactly the number of commits so far
//!   (each commit writes that number plus one), and the file ends holding the
//!   number of commits (no update lost);
//! - one descriptor per guard: while any handle of a process on a target
//!   lives, that process never opens the guard file again (counted in the
//!   simulated filesystem's operation trace); once every handle is gone, the
//!   next open opens it anew (the descriptor was closed). Opening a handle
//!   opens no guard (the first transaction does), so the harness follows
//!   each open with a `try_begin`, which opens the guard whether or not the
//!   lock is free;
//! - no lock is left held and no temporary file is left behind at the end;
//!   a lock-free read always sees a complete version.
//!
//! Bounded in time: a thread waits without a timeout only while it holds no
//! transaction, and every thread that holds one finishes it without waiting
//! for anything, so no wait can close a cycle.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::Duration;

use arbitrary::Arbitrary;
use ouroboros::self_referencing;
use txfile::sim::{OpKind, SimFs};
use txfile::{Error, LockStyle, Options, Transaction, TxFile};

use txfile_testkit::is_temp_of;

use crate::{DIR, NAMES, guard_path, target_path, with_mutant};

const MAX_THREADS: usize = 4;
const MAX_ACTIONS: usize = 16;
/// The final check waits this long for the lock before calling it stuck.
const STUCK: Duration = Duration::from_secs(10);

/// One fuzz case.
#[derive(Arbitrary, Clone, Debug)]
pub struct Input {
    /// 1 + `processes % 2` simulated processes; thread `i` runs in process
    /// `i % processes`.
    pub processes: u8,
    /// 1 + `targets % 3` targets.
    pub targets: u8,
    /// Per target: POSIX record locks instead of `flock` in the first
    /// process; the second process uses the other style, so that two
    /// processes always mix styles (which must exclude each other too).
    pub posix: [bool; 3],
    /// One program per thread (2 to 4 threads).
    pub threads: Vec<Vec<Action>>,
}

/// One step of a thread. `handle` and `tx` pick among the thread's own
/// handles and open transactions (modulo their number); with none, the
/// step does nothing.
#[derive(Arbitrary, Clone, Copy, Debug)]
pub enum Action {
    /// Open a new handle; with a timeout of `timeout_ms % 4` milliseconds
    /// for `begin`, or none.
    Open {
        target: u8,
        timeout_ms: Option<u8>,
    },
    Clone {
        handle: u8,
    },
    Drop {
        handle: u8,
    },
    /// `begin`; a thread that already holds a transaction and whose handle
    /// has no timeout uses `try_begin` instead (it must not wait forever).
    /// A thread that holds a transaction on the same target in the same
    /// process must get `Error::HeldByThisThread` at once.
    Begin {
        handle: u8,
    },
    TryBegin {
        handle: u8,
    },
    /// Write the number of commits so far plus one, and commit.
    Commit {
        tx: u8,
    },
    Rollback {
        tx: u8,
    },
    /// Read without the lock.
    Read {
        handle: u8,
    },
    /// The next release of any lock on the machine pauses the releasing
    /// thread for a moment right after the release, so that a waiter gets
    /// in before the releaser goes on: a protocol that unlocks before its
    /// rename is caught then.
    SlowUnlock,
    Yield,
}

/// Per process and target: the handles alive, as the harness counts them.
#[derive(Debug, Default)]
struct Tracker {
    /// Handles (including those inside transactions) not yet being dropped.
    live: usize,
    /// Handles being dropped right now.
    dropping: usize,
    /// How often `live` fell to 0.
    emptied: u64,
}

/// Everything the threads share in one fuzz case.
struct World {
    /// A handle on the machine for reading the trace and the files.
    sim: SimFs,
    processes: Vec<SimFs>,
    targets: usize,
    /// `styles[process][target]`.
    styles: Vec<[LockStyle; 3]>,
    /// Transactions in progress, per target (across all processes).
    in_progress: [AtomicUsize; 3],
    /// Commits started (and, as no fault is injected, completed) per target.
    commits: [AtomicU64; 3],
    /// Serialises the harness's opens, so that the OpenGuard operations
    /// the trace gains during one belong to it. (The crate holds its own
    /// registry lock across the whole guard lookup-or-open anyway.)
    open_lock: Mutex<()>,
    /// `trackers[process][target]`.
    trackers: Vec<[Mutex<Tracker>; 3]>,
    /// A `begin` with a timeout ran: its helper thread may hold a reference
    /// to the guard for a moment after every handle is gone.
    timed_begin: AtomicBool,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A handle as a thread holds it.
struct Handle {
    process: usize,
    target: usize,
    timed: bool,
    file: TxFile,
}

/// A transaction together with the handle (a clone) it borrows, so that a
/// thread can keep several and end them in any order.
#[self_referencing]
struct Held {
    process: usize,
    target: usize,
    file: TxFile,
    #[borrows(file)]
    #[not_covariant]
    tx: Option<Transaction<'this>>,
}

fn parse(contents: Option<&[u8]>, what: &str) -> u64 {
    match contents {
        None => 0,
        Some(bytes) => std::str::from_utf8(bytes)
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("{what}: not a complete version: {bytes:?}")),
    }
}

impl World {
    fn new(input: &Input) -> World {
        let sim = SimFs::new();
        sim.create_dir_all(DIR).expect("setup: directory");
        let count = 1 + usize::from(input.processes % 2);
        let processes: Vec<SimFs> = (0..count)
            .map(|i| if i == 0 { sim.clone() } else { sim.process() })
            .collect();
        let style = |posix| {
            if posix {
                LockStyle::Posix
            } else {
                LockStyle::Flock
            }
        };
        World {
            trackers: (0..count).map(|_| Default::default()).collect(),
            processes,
            sim,
            targets: 1 + usize::from(input.targets % 3),
            styles: (0..count)
                .map(|p| input.posix.map(|posix| style(posix != (p == 1))))
                .collect(),
            in_progress: Default::default(),
            commits: Default::default(),
            open_lock: Mutex::new(()),
            timed_begin: AtomicBool::new(false),
        }
    }

    fn guard_opens(&self, target: usize) -> usize {
        let path = guard_path(NAMES[target]);
        self.sim
            .trace()
            .iter()
            .filter(|op| op.kind == OpKind::OpenGuard && op.path.as_str() == path)
            .count()
    }

    /// Opens a handle, makes it open its guard (a `try_begin`, rolled back
    /// at once), and checks how often the guard was opened for it.
    fn open(&self, process: usize, target: usize, timeout_ms: Option<u8>) -> Handle {
        let _serial = lock(&self.open_lock);
        let tracker = &self.trackers[process][target];
        let (live, dropping, emptied) = {
            let t = lock(tracker);
            (t.live, t.dropping, t.emptied)
        };
        let before = self.guard_opens(target);
        let sim = &self.processes[process];
        let options = Options::new()
            .filesystem(sim)
            .lock_style(self.styles[process][target]);
        let mut options = with_mutant(options, sim);
        if let Some(ms) = timeout_ms {
            options = options.timeout(Duration::from_millis(u64::from(ms % 4)));
        }
        let file = options
            .open(target_path(NAMES[target]))
            .unwrap_or_else(|e| panic!("open {} failed: {e}", NAMES[target]));
        assert_eq!(
            self.guard_opens(target),
            before,
            "{}: opening a handle opened the guard",
            NAMES[target]
        );
        // The guard is opened before the lock is tried, so this opens it
        // even when the lock is busy; it never waits.
        drop(
            file.try_begin()
                .unwrap_or_else(|e| panic!("try_begin {} failed: {e}", NAMES[target])),
        );
        let opened = self.guard_opens(target) - before;
        let mut t = lock(tracker);
        let name = NAMES[target];
        assert!(
            opened <= 1,
            "{name}: one open of a handle opened the guard {opened} times"
        );
        if live > 0 && t.emptied == emptied {
            assert!(
                opened == 0,
                "{name}: process {process} opened the guard again while {live} handles to it lived"
            );
        }
        if live == 0 && dropping == 0 && !self.timed_begin.load(SeqCst) {
            assert!(
                opened == 1,
                "{name}: process {process} had no handle left, yet the guard was not opened anew \
                 (its descriptor outlived every handle)"
            );
        }
        t.live += 1;
        Handle {
            process,
            target,
            timed: timeout_ms.is_some(),
            file,
        }
    }

    fn clone_handle(&self, h: &Handle) -> Handle {
        lock(&self.trackers[h.process][h.target]).live += 1;
        Handle {
            process: h.process,
            target: h.target,
            timed: h.timed,
            file: h.file.clone(),
        }
    }

    fn drop_file(&self, process: usize, target: usize, file: TxFile) {
        let tracker = &self.trackers[process][target];
        {
            let mut t = lock(tracker);
            t.live -= 1;
            if t.live == 0 {
                t.emptied += 1;
            }
            t.dropping += 1;
        }
        drop(file);
        lock(tracker).dropping -= 1;
    }

    /// `begin` (`blocking`) or `try_begin` on a clone of `h`; on success,
    /// checks mutual exclusion and that the old version is the last commit.
    /// `holds`: this thread holds a transaction on the same target in the
    /// same process.
    fn begin(&self, h: &Handle, blocking: bool, holds: bool) -> Option<Held> {
        let Handle {
            process,
            target,
            file,
            ..
        } = self.clone_handle(h);
        if blocking && h.timed {
            self.timed_begin.store(true, SeqCst);
        }
        let mut error = None;
        let mut held = HeldBuilder {
            process,
            target,
            file,
            tx_builder: |file: &TxFile| {
                let result = if blocking {
                    file.begin().map(Some)
                } else {
                    file.try_begin()
                };
                result.unwrap_or_else(|e| {
                    error = Some(e);
                    None
                })
            },
        }
        .build();
        let name = NAMES[target];
        match error {
            Some(Error::HeldByThisThread { .. }) if holds && blocking => {}
            Some(e @ Error::HeldByThisThread { .. }) => {
                panic!("{name}: re-entry reported, but this thread holds no lock on it: {e}")
            }
            _ if holds && blocking => {
                panic!("{name}: a thread asked again for the lock it holds, and was not told")
            }
            None | Some(Error::Timeout { .. }) => {}
            Some(e) => panic!("begin on {name} failed: {e}"),
        }
        if held.with_tx(|tx| tx.is_none()) {
            let file = held.into_heads().file;
            self.drop_file(process, target, file);
            return None;
        }
        let others = self.in_progress[target].fetch_add(1, SeqCst);
        assert!(
            others == 0,
            "mutual exclusion broken: {others} other transaction(s) on {name} in progress"
        );
        let old = held.with_tx_mut(|tx| {
            let tx = tx.as_mut().expect("checked above");
            let old = tx
                .old_bytes()
                .unwrap_or_else(|e| panic!("reading {name} failed: {e}"));
            parse(old, name)
        });
        let commits = self.commits[target].load(SeqCst);
        assert!(
            old == commits,
            "mutual exclusion broken: {name} holds {old} under the lock after {commits} commits"
        );
        Some(held)
    }

    fn commit(&self, mut held: Held) {
        let target = *held.borrow_target();
        let process = *held.borrow_process();
        let name = NAMES[target];
        held.with_tx_mut(|slot| {
            let mut tx = slot.take().expect("a held transaction");
            let old = parse(
                tx.old_bytes()
                    .unwrap_or_else(|e| panic!("reading {name} failed: {e}")),
                name,
            );
            std::io::Write::write_all(&mut tx, (old + 1).to_string().as_bytes())
                .unwrap_or_else(|e| panic!("writing {name} failed: {e}"));
            // Counted before the lock is released inside commit, so that the
            // next holder's check sees it.
            self.commits[target].fetch_add(1, SeqCst);
            self.in_progress[target].fetch_sub(1, SeqCst);
            tx.commit()
                .unwrap_or_else(|e| panic!("commit of {name} failed: {e}"));
        });
        let file = held.into_heads().file;
        self.drop_file(process, target, file);
    }

    fn rollback(&self, mut held: Held) {
        let target = *held.borrow_target();
        let process = *held.borrow_process();
        held.with_tx_mut(|slot| {
            let tx = slot.take().expect("a held transaction");
            self.in_progress[target].fetch_sub(1, SeqCst);
            tx.rollback();
        });
        let file = held.into_heads().file;
        self.drop_file(process, target, file);
    }

    fn read(&self, h: &Handle) {
        let name = NAMES[h.target];
        let contents = h
            .file
            .read()
            .unwrap_or_else(|e| panic!("read of {name} failed: {e}"));
        let seen = parse(contents.as_deref(), name);
        let commits = self.commits[h.target].load(SeqCst);
        assert!(
            seen <= commits,
            "{name}: read {seen}, but only {commits} commits were started"
        );
    }

    /// One thread's program; everything it holds is released at the end.
    fn run_thread(&self, process: usize, program: &[Action]) {
        let mut handles: Vec<Handle> = Vec::new();
        let mut txs: Vec<Held> = Vec::new();
        let pick = |i: u8, len: usize| (len > 0).then(|| usize::from(i) % len);
        for action in program.iter().take(MAX_ACTIONS) {
            match *action {
                Action::Open { target, timeout_ms } => {
                    let target = usize::from(target) % self.targets;
                    handles.push(self.open(process, target, timeout_ms));
                }
                Action::Clone { handle } => {
                    if let Some(i) = pick(handle, handles.len()) {
                        let copy = self.clone_handle(&handles[i]);
                        handles.push(copy);
                    }
                }
                Action::Drop { handle } => {
                    if let Some(i) = pick(handle, handles.len()) {
                        let h = handles.swap_remove(i);
                        self.drop_file(h.process, h.target, h.file);
                    }
                }
                Action::Begin { handle } | Action::TryBegin { handle } => {
                    if let Some(i) = pick(handle, handles.len()) {
                        let h = &handles[i];
                        let blocking =
                            matches!(action, Action::Begin { .. }) && (h.timed || txs.is_empty());
                        let holds = txs.iter().any(|held| {
                            *held.borrow_process() == h.process && *held.borrow_target() == h.target
                        });
                        txs.extend(self.begin(h, blocking, holds));
                    }
                }
                Action::Commit { tx } => {
                    if let Some(i) = pick(tx, txs.len()) {
                        self.commit(txs.swap_remove(i));
                    }
                }
                Action::Rollback { tx } => {
                    if let Some(i) = pick(tx, txs.len()) {
                        self.rollback(txs.swap_remove(i));
                    }
                }
                Action::Read { handle } => {
                    if let Some(i) = pick(handle, handles.len()) {
                        self.read(&handles[i]);
                    }
                }
                Action::SlowUnlock => self
                    .sim
                    .on_unlock(|| std::thread::sleep(Duration::from_micros(300))),
                Action::Yield => std::thread::yield_now(),
            }
        }
        for held in txs {
            self.rollback(held);
        }
        for h in handles {
            self.drop_file(h.process, h.target, h.file);
        }
    }

    /// After every thread is done: files, locks, temporary files, and that
    /// every guard descriptor was closed with its last handle.
    fn check_end(&self) {
        for (process, trackers) in self.trackers.iter().enumerate() {
            for (target, tracker) in trackers.iter().enumerate().take(self.targets) {
                {
                    let t = lock(tracker);
                    assert!(t.live == 0 && t.dropping == 0, "handles leaked: {t:?}");
                }
                let h = self.open(process, target, None);
                let name = NAMES[target];
                let file = Options::new()
                    .filesystem(&self.processes[process])
                    .lock_style(self.styles[process][target])
                    .timeout(STUCK)
                    .open(target_path(name))
                    .unwrap_or_else(|e| panic!("open {name} failed: {e}"));
                match file.begin() {
                    Ok(mut tx) => {
                        let old = parse(tx.old_bytes().expect("read"), name);
                        let commits = self.commits[target].load(SeqCst);
                        assert!(
                            old == commits,
                            "{name}: {old} after {commits} commits: an update was lost"
                        );
                        tx.rollback();
                    }
                    Err(e) => panic!("{name}: the lock is still held at the end: {e}"),
                }
                drop(file);
                self.drop_file(h.process, h.target, h.file);
            }
        }
        for file in self.sim.list_dir(DIR).expect("list") {
            assert!(
                !NAMES.iter().any(|name| is_temp_of(&file, name)),
                "temporary file {file} left behind"
            );
        }
    }
}

/// Checks one fuzz case; panics with a description on a broken property.
pub fn check(input: &Input) {
    let world = Arc::new(World::new(input));
    let mut programs: Vec<Vec<Action>> = input
        .threads
        .iter()
        .take(MAX_THREADS)
        .map(|program| program.iter().take(MAX_ACTIONS).copied().collect())
        .collect();
    while programs.len() < 2 {
        programs.push(Vec::new());
    }
    let start = Arc::new(Barrier::new(programs.len()));
    // Joined threads rather than scoped ones: a scoped thread counts as done
    // before its thread-local destructors have run, which LeakSanitizer then
    // reports as a leak.
    let threads: Vec<_> = programs
        .into_iter()
        .enumerate()
        .map(|(i, program)| {
            let (world, start) = (Arc::clone(&world), Arc::clone(&start));
            let process = i % world.processes.len();
            std::thread::spawn(move || {
                start.wait();
                world.run_thread(process, &program);
            })
        })
        .collect();
    for thread in threads {
        if let Err(panic) = thread.join() {
            std::panic::resume_unwind(panic);
        }
    }
    world.check_end();
    if world.timed_begin.load(SeqCst) {
        wait_for_lock_helpers();
    }
}

/// A `begin` with a timeout may leave the crate's helper thread (named
/// `txfile-lock-wait`) finishing after the case ends; wait for it to exit,
/// so that its last allocations are not reported as leaks of the next case.
fn wait_for_lock_helpers() {
    let deadline = std::time::Instant::now() + STUCK;
    while std::time::Instant::now() < deadline {
        let helpers = std::fs::read_dir("/proc/self/task")
            .map(|tasks| {
                tasks
                    .flatten()
                    .filter(|task| {
                        std::fs::read_to_string(task.path().join("comm"))
                            .is_ok_and(|name| name.starts_with("txfile-lock"))
                    })
                    .count()
            })
            .unwrap_or(0);
        if helpers == 0 {
            return;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    panic!(
        "a txfile-lock-wait helper thread is still waiting {STUCK:?} after every lock was released"
    );
}
