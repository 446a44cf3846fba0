//! Group commit of the directory fsync.
//!
//! A durable commit makes its temporary file durable before the rename
//! (that is what makes the rename atomic at a power cut), but the directory
//! fsync that makes the rename itself durable needs no lock: the commit
//! releases the lock right after the rename and then waits here for a
//! directory fsync that *started after* its rename. Commits of this process
//! that wait at the same time share one: a waiter that finds no fsync
//! running becomes the leader and fsyncs the directory for everyone whose
//! rename came before it started; a commit that arrives while an fsync runs
//! waits for the next one (the running one may have started before its
//! rename, and then does not cover it). Across processes there is nothing to
//! share here, but concurrent directory fsyncs merge in the filesystem's
//! journal.
//!
//! An fsync that fails fails every commit it was covering, and none of them
//! is retried by a later fsync (after a failed fsync the kernel may have
//! given up on what it was writing, and a later one can succeed without it).
//! What the lock holder left in the guard's marker says the version in
//! place may not be durable yet, so the next holder that vouches for it
//! syncs first (see `crate::commit`).
//!
//! Each directory's coordinator lives in its [`SharedDir`](crate::fs::shared::SharedDir),
//! the process's one open handle of that directory (by device and inode), so
//! every handle of the process on a file in it shares it.

use std::io;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

/// The directory fsyncs of one directory in this process.
#[derive(Debug)]
pub(crate) struct GroupSync {
    /// The process whose threads share the fsyncs: a forked child inherits
    /// the coordinator as it was at the fork, with rounds that no thread of
    /// its own will finish, and must not use it.
    pid: u32,
    state: Mutex<State>,
    /// Signalled when an fsync finishes.
    finished: Condvar,
}

#[derive(Debug, Default)]
struct State {
    /// The fsync that will start next: a commit whose rename is done joins
    /// it.
    next: Arc<Round>,
    /// The fsync running now, if any.
    running: Option<Arc<Round>>,
}

/// One directory fsync and the commits it covers.
#[derive(Debug, Default)]
struct Round {
    /// Set (under the state lock) when the fsync has returned.
    outcome: OnceLock<Outcome>,
}

/// An fsync's result, as every commit it covered reports it.
#[derive(Debug, Clone)]
enum Outcome {
    Synced,
    Failed {
        kind: io::ErrorKind,
        code: Option<i32>,
        message: String,
    },
}

impl Outcome {
    fn of(result: &io::Result<()>) -> Outcome {
        match result {
            Ok(()) => Outcome::Synced,
            Err(e) => Outcome::Failed {
                kind: e.kind(),
                code: e.raw_os_error(),
                message: e.to_string(),
            },
        }
    }

    fn result(&self) -> io::Result<()> {
        match self {
            Outcome::Synced => Ok(()),
            Outcome::Failed {
                code: Some(code), ..
            } => Err(io::Error::from_raw_os_error(*code)),
            Outcome::Failed { kind, message, .. } => Err(io::Error::new(*kind, message.clone())),
        }
    }
}

/// Which directory fsync a commit may count as covering its rename.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cover {
    /// One that starts after this call (the protocol).
    Later,
    /// Also one already running, which may have started before the
    /// rename (a mutant: wrong).
    #[cfg_attr(not(txfile_mutants), allow(dead_code))]
    Running,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // Nothing panics while these are held; a panic elsewhere must not
    // turn every later commit into a poison error.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl GroupSync {
    /// A coordinator for the threads of process `pid`.
    pub(crate) fn new(pid: u32) -> GroupSync {
        GroupSync {
            pid,
            state: Mutex::default(),
            finished: Condvar::new(),
        }
    }

    /// The process whose threads may use it.
    pub(crate) fn pid(&self) -> u32 {
        self.pid
    }

    /// Returns once a directory fsync that started after this call has
    /// succeeded (with `Cover::Later`), running it here if no other thread
    /// is; fails if that fsync failed.
    /// `fsync` is the directory's fsync.
    pub(crate) fn sync(
        &self,
        fsync: impl FnOnce() -> io::Result<()>,
        cover: Cover,
    ) -> io::Result<()> {
        let mut state = lock(&self.state);
        let mine = match (&state.running, cover) {
            (Some(running), Cover::Running) => Arc::clone(running),
            _ => Arc::clone(&state.next),
        };
        loop {
            if let Some(outcome) = mine.outcome.get() {
                return outcome.result();
            }
            if state.running.is_none() && Arc::ptr_eq(&state.next, &mine) {
                return self.lead(state, mine, fsync);
            }
            state = self
                .finished
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// Runs the fsync of `round`: it starts now, after the rename of
    /// everyone who joined it, and later arrivals join a new round.
    fn lead(
        &self,
        mut state: MutexGuard<'_, State>,
        round: Arc<Round>,
        fsync: impl FnOnce() -> io::Result<()>,
    ) -> io::Result<()> {
        state.next = Arc::new(Round::default());
        state.running = Some(Arc::clone(&round));
        drop(state);
        let result = fsync();
        let mut state = lock(&self.state);
        let _ = round.outcome.set(Outcome::of(&result));
        state.running = None;
        drop(state);
        self.finished.notify_all();
        result
    }

    /// How many threads wait for an fsync now, besides a leader (for
    /// tests): the state holds one reference to each round, a leader one
    /// more to the running one.
    #[cfg(test)]
    fn waiting(&self) -> usize {
        let state = lock(&self.state);
        let running = state
            .running
            .as_ref()
            .map_or(0, |r| Arc::strong_count(r) - 2);
        Arc::strong_count(&state.next) - 1 + running
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::mpsc;
    use std::thread;
    use std::time::Duration;

    use super::*;

    /// A directory whose fsyncs block until the test lets each one finish,
    /// failing the ones it is told to.
    #[derive(Debug)]
    struct Gate {
        started: AtomicUsize,
        started_tx: Mutex<mpsc::Sender<usize>>,
        release: Mutex<mpsc::Receiver<io::Result<()>>>,
    }

    impl Gate {
        fn sync(&self) -> io::Result<()> {
            let n = self.started.fetch_add(1, Ordering::SeqCst) + 1;
            lock(&self.started_tx).send(n).expect("test alive");
            lock(&self.release).recv().expect("test alive")
        }
    }

    fn gate() -> (Gate, mpsc::Receiver<usize>, mpsc::Sender<io::Result<()>>) {
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel();
        let gate = Gate {
            started: AtomicUsize::new(0),
            started_tx: Mutex::new(started_tx),
            release: Mutex::new(release_rx),
        };
        (gate, started, release)
    }

    fn wait_for_waiters(group: &GroupSync, n: usize) {
        while group.waiting() < n {
            thread::sleep(Duration::from_millis(1));
        }
    }

    /// Commits that arrive while an fsync runs wait for the next one (it
    /// may have started before their rename), and share it: three commits,
    /// two fsyncs.
    #[test]
    fn late_arrivals_share_the_next_fsync() {
        let group = GroupSync::new(std::process::id());
        let (dir, started, release) = gate();
        thread::scope(|s| {
            let first = s.spawn(|| group.sync(|| dir.sync(), Cover::Later));
            assert_eq!(started.recv().expect("first fsync"), 1);
            let late: Vec<_> = (0..2)
                .map(|_| s.spawn(|| group.sync(|| dir.sync(), Cover::Later)))
                .collect();
            wait_for_waiters(&group, 2);
            release.send(Ok(())).expect("release");
            first.join().expect("first").expect("synced");
            // The late ones are not done: they wait for an fsync of their own.
            assert_eq!(started.recv().expect("second fsync"), 2);
            assert!(late.iter().all(|t| !t.is_finished()));
            release.send(Ok(())).expect("release");
            for t in late {
                t.join().expect("late").expect("synced");
            }
        });
        assert_eq!(dir.started.load(Ordering::SeqCst), 2);
    }

    /// The mutant that counts the running fsync for a late arrival returns
    /// before any fsync started after it: what the test above catches.
    #[test]
    fn counting_a_running_fsync_acknowledges_early() {
        let group = GroupSync::new(std::process::id());
        let (dir, started, release) = gate();
        thread::scope(|s| {
            let first = s.spawn(|| group.sync(|| dir.sync(), Cover::Later));
            started.recv().expect("first fsync");
            let late = s.spawn(|| group.sync(|| dir.sync(), Cover::Running));
            wait_for_waiters(&group, 1);
            release.send(Ok(())).expect("release");
            first.join().expect("first").expect("synced");
            late.join().expect("late").expect("synced");
        });
        assert_eq!(
            dir.started.load(Ordering::SeqCst),
            1,
            "acknowledged on one fsync"
        );
    }

    /// A failed fsync fails every commit it covered, with the error's
    /// code; the next round is a new fsync.
    #[test]
    fn a_failed_fsync_fails_everyone_it_covered() {
        let group = GroupSync::new(std::process::id());
        let (dir, started, release) = gate();
        thread::scope(|s| {
            let first = s.spawn(|| group.sync(|| dir.sync(), Cover::Later));
            started.recv().expect("first fsync");
            let late: Vec<_> = (0..3)
                .map(|_| s.spawn(|| group.sync(|| dir.sync(), Cover::Later)))
                .collect();
            wait_for_waiters(&group, 3);
            release.send(Ok(())).expect("release");
            first.join().expect("first").expect("synced");
            started.recv().expect("second fsync");
            release
                .send(Err(io::Error::from_raw_os_error(5)))
                .expect("release");
            for t in late {
                let err = t
                    .join()
                    .expect("late")
                    .expect_err("covered by a failed fsync");
                assert_eq!(err.raw_os_error(), Some(5));
            }
            let after = s.spawn(|| group.sync(|| dir.sync(), Cover::Later));
            assert_eq!(started.recv().expect("third fsync"), 3);
            release.send(Ok(())).expect("release");
            after.join().expect("after").expect("synced");
        });
    }
}
