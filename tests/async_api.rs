//! The async API (feature `tokio`): it never stalls the runtime, cancels
//! cleanly, and excludes sync users of the same process.
//!
//! The runtime-stall measurements run in child processes (re-executions of
//! this binary), so that the thread count of `/proc/self/task` is that of
//! one scenario only, not of the other tests running beside it.
#![cfg(unix)] // the stall checks count threads in /proc/self/task; under Wine 4 of its tests fail
#![cfg(feature = "tokio")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use camino::Utf8Path;
use common::{Rng, check, parse_counter, role, run_role, tempdir, verify_no_leftovers};
use tokio::io::AsyncWriteExt;
use txfile::{AsyncBatch, AsyncTxFile, Batch, Durability, Error, Options, TxFile};

fn runtime(workers: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()
        .expect("build a tokio runtime")
}

fn increment(old: Option<&[u8]>) -> Result<Vec<u8>, Error> {
    Ok((parse_counter(old) + 1).to_string().into_bytes())
}

#[test]
fn types_are_send_sync_and_futures_send() {
    fn send_sync_clone<T: Send + Sync + Clone>() {}
    fn send<T: Send>() {}
    fn future_is_send<F: std::future::Future + Send>(_: &F) {}
    send_sync_clone::<AsyncTxFile>();
    send_sync_clone::<AsyncBatch>();
    send::<txfile::AsyncTransaction>();
    send::<txfile::AsyncBatchTransaction>();
    let (_dir, dir) = tempdir();
    let file = AsyncTxFile::from(TxFile::open(dir.join("a")).unwrap());
    let batch = AsyncBatch::from(Batch::open([dir.join("a"), dir.join("b")]).unwrap());
    future_is_send(&file.update(increment));
    future_is_send(&file.begin());
    future_is_send(&file.read());
    future_is_send(&batch.update(|old| Ok::<_, Error>(vec![Vec::new(); old.len()])));
    future_is_send(&batch.begin());
}

#[test]
fn update_read_begin_commit_rollback() {
    let (_dir, dir) = tempdir();
    runtime(2).block_on(async {
        let file = AsyncTxFile::open(dir.join("a")).await.unwrap();
        assert_eq!(file.read().await.unwrap(), None);
        file.update(increment).await.unwrap();
        assert_eq!(file.read().await.unwrap().as_deref(), Some(&b"1"[..]));

        // Streaming: 1 MiB in 1000-byte writes goes through the temp file.
        let mut tx = file.begin().await.unwrap();
        assert!(tx.exists());
        assert_eq!(tx.old_bytes().await.unwrap(), Some(&b"1"[..]));
        let chunk: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
        for _ in 0..1024 {
            tx.write_all(&chunk).await.unwrap();
        }
        tx.flush().await.unwrap();
        tx.commit().await.unwrap();
        let read = file.read().await.unwrap().unwrap();
        assert_eq!(read.len(), 1024 * 1000);
        assert!(read.chunks(1000).all(|c| c == chunk));

        // Rollback, explicit and by drop, leaves the contents and no temp.
        let mut tx = file.begin().await.unwrap();
        tx.write_all(&vec![b'x'; 200_000]).await.unwrap();
        tx.flush().await.unwrap();
        tx.rollback().await;
        let mut tx = file.begin().await.unwrap();
        tx.write_all(&vec![b'y'; 200_000]).await.unwrap();
        tx.flush().await.unwrap();
        drop(tx);
        let tx = file.begin().await.unwrap();
        assert_eq!(
            file.read().await.unwrap().map(|r| r.len()),
            Some(1024 * 1000)
        );
        tx.rollback().await;
        verify_no_leftovers(&dir);

        // A failing closure aborts; a panicking one panics here, after the
        // rollback.
        let err = file
            .update(|_| Err::<Vec<u8>, _>(std::io::Error::other("no")))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Aborted { .. }), "{err:?}");
        let clone = file.clone();
        let panicked = tokio::spawn(async move {
            clone
                .update(|_| -> Result<Vec<u8>, Error> { panic!("closure panics") })
                .await
        })
        .await;
        assert!(panicked.unwrap_err().is_panic());
        assert!(file.try_begin().await.unwrap().is_some());
        assert_eq!(
            file.read().await.unwrap().map(|r| r.len()),
            Some(1024 * 1000)
        );
        verify_no_leftovers(&dir);
    });
}

#[test]
fn options_apply_timeout_and_durability() {
    let (_dir, dir) = tempdir();
    let path = dir.join("a");
    let sync = Options::new()
        .timeout(Duration::from_millis(100))
        .durability(Durability::None)
        .open(&path)
        .unwrap();
    let held = sync.begin().unwrap();
    let file = AsyncTxFile::from(sync.clone());
    runtime(2).block_on(async {
        let err = file.update(increment).await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(matches!(file.begin().await, Err(Error::Timeout { .. })));
    });
    drop(held);
    runtime(2).block_on(async { file.update(increment).await.unwrap() });
    assert_eq!(std::fs::read(&path).unwrap(), b"1");
}

#[test]
fn sync_and_async_users_of_one_process_exclude_each_other() {
    let (_dir, dir) = tempdir();
    let path = dir.join("a");
    let sync = TxFile::open(&path).unwrap();
    runtime(2).block_on(async {
        // A separately opened async handle shares the guard descriptor.
        let file = AsyncTxFile::open(&path).await.unwrap();
        let held = sync.begin().unwrap();
        assert!(file.try_begin().await.unwrap().is_none());
        // An async waiter waits for the sync holder, then goes.
        let waiter = tokio::spawn({
            let file = file.clone();
            async move { file.update(increment).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(
            !waiter.is_finished(),
            "async update ran while a sync transaction held the lock"
        );
        drop(held);
        waiter.await.unwrap().unwrap();

        let tx = file.begin().await.unwrap();
        assert!(sync.try_begin().unwrap().is_none());
        let batch = Batch::open([path.clone(), dir.join("b")]).unwrap();
        assert!(batch.try_begin().unwrap().is_none());
        tx.rollback().await;
        assert!(sync.try_begin().unwrap().is_some());
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"1");
}

/// Sync threads and async tasks (through two separately made async
/// handles, so two runners) of one process updating one counter at once
/// lose no update: every queued update takes and releases the in-process
/// turn and the OS lock of its own, as a thread's does.
#[test]
fn sync_threads_and_async_tasks_lose_no_update() {
    let (_dir, dir) = tempdir();
    let path = dir.join("counter");
    let sync = Options::new()
        .durability(Durability::None)
        .open(&path)
        .unwrap();
    let handles = [
        AsyncTxFile::from(sync.clone()),
        AsyncTxFile::from(sync.clone()),
    ];
    std::thread::scope(|scope| {
        for _ in 0..4 {
            let sync = sync.clone();
            scope.spawn(move || {
                for _ in 0..50 {
                    sync.update(increment).unwrap();
                }
            });
        }
        runtime(2).block_on(async {
            let tasks: Vec<_> = (0..8)
                .map(|i| {
                    let file = handles[i % 2].clone();
                    tokio::spawn(async move {
                        for _ in 0..50 {
                            file.update(increment).await.unwrap();
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.unwrap();
            }
        });
    });
    assert_eq!(std::fs::read(&path).unwrap(), b"600");
    verify_no_leftovers(&dir);
}

#[test]
fn async_batch_update_read_begin() {
    let (_dir, dir) = tempdir();
    runtime(2).block_on(async {
        let batch = AsyncBatch::open([dir.join("a"), dir.join("b")])
            .await
            .unwrap();
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let batch = batch.clone();
                tokio::spawn(async move {
                    batch
                        .update(|old| {
                            let n = parse_counter(old[0]) + 1;
                            Ok::<_, Error>(vec![n.to_string().into_bytes(); 2])
                        })
                        .await
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        assert_eq!(
            batch.read().await.unwrap(),
            vec![Some(b"20".to_vec()), Some(b"20".to_vec())]
        );
        let mut tx = batch.begin().await.unwrap();
        assert_eq!(tx.old_bytes(1).await.unwrap(), Some(&b"20"[..]));
        tx.member(1).write_all(&vec![b'b'; 100_000]).await.unwrap();
        tx.member(0).write_all(b"a").await.unwrap();
        tx.member(1).write_all(b"end").await.unwrap();
        tx.commit().await.unwrap();
        let state = batch.read().await.unwrap();
        assert_eq!(state[0].as_deref(), Some(&b"a"[..]));
        assert_eq!(state[1].as_ref().map(Vec::len), Some(100_003));
        assert!(state[1].as_ref().unwrap().ends_with(b"bend"));

        let held = batch.as_sync().members()[0].begin().unwrap();
        assert!(batch.try_begin().await.unwrap().is_none());
        drop(held);
        let tx = batch.try_begin().await.unwrap().unwrap();
        drop(tx);
        // The drop's rollback runs on the blocking pool; begin waits for it.
        batch.begin().await.unwrap().rollback().await;
        verify_no_leftovers(&dir);
    });
}

// ---------------------------------------------------------------------------
// Another process holding the lock.

/// A child process that holds the lock on `TARGET` until its stdin closes.
struct Holder {
    child: Child,
    stdin: Option<ChildStdin>,
    /// Kept open: the child's harness still prints when it ends.
    out: BufReader<ChildStdout>,
}

impl Holder {
    fn start(target: &Utf8Path) -> Holder {
        let mut child = run_role("holder_entry", "hold", &[("TARGET", target.to_string())])
            .stdin(Stdio::piped())
            .spawn()
            .expect("spawn the lock holder");
        let stdin = child.stdin.take();
        let mut out = BufReader::new(child.stdout.take().expect("piped stdout"));
        let mut line = String::new();
        loop {
            line.clear();
            let n = out.read_line(&mut line).expect("read the holder's output");
            assert!(n > 0, "the holder exited before locking");
            if line.trim().ends_with("locked") {
                break;
            }
        }
        Holder { child, stdin, out }
    }

    fn release(mut self) {
        drop(self.stdin.take());
        let _ = std::io::copy(&mut self.out, &mut std::io::sink());
        let status = self.child.wait().expect("wait for the holder");
        assert!(status.success(), "holder failed: {status}");
    }
}

/// Child role: lock `TARGET`, say so, hold until stdin closes.
#[test]
fn holder_entry() {
    if role().is_none() {
        return;
    }
    let file = TxFile::open(std::env::var("TARGET").unwrap()).unwrap();
    let tx = file.begin().unwrap();
    println!("locked");
    std::io::stdout().flush().unwrap();
    let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
    tx.rollback();
}

fn os_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count())
}

fn lock_waiter_threads() -> usize {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| {
        d.filter_map(Result::ok)
            .filter(|t| {
                std::fs::read_to_string(t.path().join("comm"))
                    .is_ok_and(|c| c.trim() == "txfile-async-lo")
            })
            .count()
    })
}

/// How the waiting tasks call txfile.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Way {
    /// `AsyncTxFile::update`.
    Async,
    /// The naive way: sync `TxFile::update` right on the runtime.
    SyncOnRuntime,
    /// The other naive way: sync `update` in `spawn_blocking`.
    SpawnBlocking,
}

/// What one stall scenario measured.
#[derive(Debug)]
struct Stall {
    /// The heartbeat's worst lateness, from the first task to the last.
    worst_late: Duration,
    /// The worst lateness of the same heartbeat on a plain thread.
    control_late: Duration,

    /// The most threads the process had while the tasks waited.
    threads_waiting: usize,

    /// The most threads waiting in the kernel for the OS lock.
    lock_waiters: usize,
    counter: u64,
}

const TASKS: u64 = 200;
const HOLD: Duration = Duration::from_millis(1500);

/// Child role: the stall scenario for `WAY`, in a process of its own.
#[test]
fn stall_entry() {
    let Some(way) = role() else { return };
    let way = match way.as_str() {
        "async" => Way::Async,
        "sync" => Way::SyncOnRuntime,
        _ => Way::SpawnBlocking,
    };
    let (_dir, dir) = tempdir();
    let path = dir.join("counter");
    let holder = Holder::start(&path);
    let rt = runtime(2);
    let stop = Arc::new(AtomicBool::new(false));
    let waiting = Arc::new(AtomicBool::new(true));
    let [threads_waiting, threads_ever, waiters, control] =
        [(); 4].map(|()| Arc::new(AtomicU64::new(0)));
    // The same heartbeat on a plain thread: how late the machine itself
    // makes a thread that nothing blocks.
    let control_beat = std::thread::spawn({
        let (stop, control) = (stop.clone(), control.clone());
        move || {
            while !stop.load(Ordering::Relaxed) {
                let start = Instant::now();
                std::thread::sleep(Duration::from_millis(10));
                let late = start.elapsed().saturating_sub(Duration::from_millis(10));
                control.fetch_max(late.as_micros() as u64, Ordering::Relaxed);
            }
        }
    });
    // The sampler is a plain thread: it must see the process even when
    // the runtime is stalled.
    let sampler = std::thread::spawn({
        let (stop, waiting) = (stop.clone(), waiting.clone());
        let (threads_waiting, threads_ever, waiters) = (
            threads_waiting.clone(),
            threads_ever.clone(),
            waiters.clone(),
        );
        move || {
            while !stop.load(Ordering::Relaxed) {
                let threads = os_threads() as u64;
                threads_ever.fetch_max(threads, Ordering::Relaxed);
                if waiting.load(Ordering::Relaxed) {
                    threads_waiting.fetch_max(threads, Ordering::Relaxed);
                }
                waiters.fetch_max(lock_waiter_threads() as u64, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    });
    let (worst_late, worst_while_waiting) = rt.block_on(async {
        let heartbeat = tokio::spawn({
            let (stop, waiting) = (stop.clone(), waiting.clone());
            async move {
                let mut worst = (Duration::ZERO, true);
                while !stop.load(Ordering::Relaxed) {
                    let start = Instant::now();
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    let late = start.elapsed().saturating_sub(Duration::from_millis(10));
                    if late > worst.0 {
                        worst = (late, waiting.load(Ordering::Relaxed));
                    }
                }
                worst
            }
        });
        // Two handles opened separately: one queue, one kernel waiter.
        let files = [
            AsyncTxFile::open(&path).await.unwrap(),
            AsyncTxFile::open(&path).await.unwrap(),
        ];
        let tasks: Vec<_> = (0..TASKS as usize)
            .map(|i| {
                let file = files[i % 2].clone();
                tokio::spawn(async move {
                    match way {
                        Way::Async => file.update(increment).await,
                        Way::SyncOnRuntime => file.as_sync().update(increment),
                        Way::SpawnBlocking => {
                            let sync = file.as_sync().clone();
                            tokio::task::spawn_blocking(move || sync.update(increment))
                                .await
                                .unwrap()
                        }
                    }
                })
            })
            .collect();
        // A plain thread releases the holder: with the workers stuck, the
        // runtime's timers would not fire.
        let releaser = std::thread::spawn({
            let waiting = waiting.clone();
            move || {
                std::thread::sleep(HOLD);
                waiting.store(false, Ordering::Relaxed);
                holder.release();
            }
        });
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        releaser.join().unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        stop.store(true, Ordering::Relaxed);
        heartbeat.await.unwrap()
    });
    sampler.join().unwrap();
    control_beat.join().unwrap();
    let counter = parse_counter(std::fs::read(&path).ok().as_deref());
    println!(
        "RESULT late_us={} control_late_us={} late_while_waiting={} threads_waiting={} threads_ever={} waiters={} counter={counter}",
        worst_late.as_micros(),
        control.load(Ordering::Relaxed),
        u8::from(worst_while_waiting),
        threads_waiting.load(Ordering::Relaxed),
        threads_ever.load(Ordering::Relaxed),
        waiters.load(Ordering::Relaxed),
    );
    verify_no_leftovers(&dir);
}

fn stall(way: &str) -> Stall {
    let out = check(
        run_role("stall_entry", way, &[])
            .output()
            .expect("run the scenario"),
        way,
    );
    let line = out
        .lines()
        .find_map(|l| l.split_once("RESULT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no result in:\n{out}"));
    let field = |name: &str| -> u64 {
        line.split_whitespace()
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in {line}"))
    };
    let stall = Stall {
        worst_late: Duration::from_micros(field("late_us")),
        control_late: Duration::from_micros(field("control_late_us")),

        threads_waiting: field("threads_waiting") as usize,

        lock_waiters: field("waiters") as usize,
        counter: field("counter"),
    };
    eprintln!("{way}: {line}");
    stall
}

/// 200 tasks wait on a lock another process holds for 1.5 s, on a 2-worker
/// runtime: a 10 ms heartbeat is never 50 ms late, the process has at most
/// 32 threads while they wait, and one thread (not 200) waits in the kernel.
///
/// A blocked runtime makes the heartbeat late by the whole hold, every time.
/// A busy machine (CI and developers share 2 cores with compilers) makes
/// any thread late now and then by chance, so the lateness is judged
/// against a control: the same heartbeat on a plain thread, measured at the
/// same time; the heartbeat may be late by up to 50 ms beyond what the
/// control saw. It gets 3 attempts and the best counts; all are printed.
#[test]
fn waiting_tasks_never_stall_the_runtime() {
    let _heavy = common::heavy();
    let mut best = Duration::MAX;
    for _ in 0..3 {
        let stall = stall("async");
        assert_eq!(stall.counter, TASKS, "every update committed once");
        assert!(stall.threads_waiting <= 32, "{stall:?}");
        assert_eq!(
            stall.lock_waiters, 1,
            "threads waiting in the kernel: {stall:?}"
        );
        best = best.min(stall.worst_late.saturating_sub(stall.control_late));
        if best < Duration::from_millis(50) {
            break;
        }
    }
    assert!(
        best < Duration::from_millis(50),
        "heartbeat late by {best:?} beyond the control"
    );
}

/// The check above can fail: the naive ways fail it. Sync `update` on the
/// runtime blocks both workers for as long as the other process holds the
/// lock; `spawn_blocking` per task costs a blocked thread per task.
#[test]
fn naive_ways_fail_the_stall_check() {
    let _heavy = common::heavy();
    let on_runtime = stall("sync");
    assert_eq!(on_runtime.counter, TASKS);
    assert!(
        on_runtime
            .worst_late
            .saturating_sub(on_runtime.control_late)
            >= Duration::from_millis(500),
        "sync update on the runtime was expected to stall the heartbeat: {on_runtime:?}"
    );
    let per_task = stall("spawn_blocking");
    assert_eq!(per_task.counter, TASKS);
    assert!(
        per_task.threads_waiting > 32,
        "spawn_blocking per task was expected to use a thread per waiting task: {per_task:?}"
    );
}

/// 50 updates cancelled by a 200 ms timeout while another process holds the
/// lock: none commits, and the next update gets the lock at once.
#[test]
fn updates_cancelled_while_waiting_never_commit() {
    let _heavy = common::heavy();
    let (_dir, dir) = tempdir();
    let path = dir.join("counter");
    let holder = Holder::start(&path);
    let rt = runtime(2);
    let file = rt.block_on(AsyncTxFile::open(&path)).unwrap();
    let called = Arc::new(AtomicU64::new(0));
    rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (file, called) = (file.clone(), called.clone());
                tokio::spawn(async move {
                    tokio::time::timeout(
                        Duration::from_millis(200),
                        file.update(move |old| {
                            called.fetch_add(1, Ordering::SeqCst);
                            increment(old)
                        }),
                    )
                    .await
                })
            })
            .collect();
        for task in tasks {
            assert!(task.await.unwrap().is_err(), "the update should time out");
        }
    });
    holder.release();
    let released = Instant::now();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(10), file.update(increment))
            .await
            .expect("the next update got the lock")
            .unwrap();
    });
    let waited = released.elapsed();
    eprintln!("next update done {waited:?} after the holder let go");
    assert_eq!(called.load(Ordering::SeqCst), 0, "a cancelled closure ran");
    assert_eq!(
        std::fs::read(&path).unwrap(),
        b"1",
        "a cancelled update committed"
    );
    verify_no_leftovers(&dir);
    // The waiting thread is gone once it passed the lock on.
    let deadline = Instant::now() + Duration::from_secs(5);
    while lock_waiter_threads() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(lock_waiter_threads(), 0);
}

/// The check above can fail: `spawn_blocking(update)` under a timeout
/// commits every cancelled update later, invisibly.
#[test]
fn naive_cancelled_updates_commit_later() {
    let _heavy = common::heavy();
    let (_dir, dir) = tempdir();
    let path = dir.join("counter");
    let holder = Holder::start(&path);
    let file = TxFile::open(&path).unwrap();
    let rt = runtime(2);
    rt.block_on(async {
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let file = file.clone();
                tokio::time::timeout(
                    Duration::from_millis(200),
                    tokio::task::spawn_blocking(move || file.update(increment)),
                )
            })
            .collect();
        for task in tasks {
            assert!(task.await.is_err());
        }
    });
    holder.release();
    drop(rt); // waits for the blocking pool
    assert_eq!(std::fs::read(&path).unwrap(), b"50");
}

/// Dropping a future while its commit runs lets the commit complete;
/// dropping it while the closure runs rolls back.
#[test]
fn dropped_after_commit_started_completes_before_rolls_back() {
    let (_dir, dir) = tempdir();
    let path = dir.join("a");
    runtime(2).block_on(async {
        let file = AsyncTxFile::open(&path).await.unwrap();
        let mut tx = file.begin().await.unwrap();
        tx.write_all(b"committed").await.unwrap();
        let mut commit = Box::pin(tx.commit());
        assert!(futures_poll_once(commit.as_mut()).await.is_none());
        drop(commit);
        file.begin().await.unwrap().rollback().await;
        assert_eq!(
            file.read().await.unwrap().as_deref(),
            Some(&b"committed"[..])
        );

        let slow = file.update(|_| {
            std::thread::sleep(Duration::from_millis(300));
            Ok::<_, Error>(b"too late".to_vec())
        });
        assert!(
            tokio::time::timeout(Duration::from_millis(100), slow)
                .await
                .is_err()
        );
        file.begin().await.unwrap().rollback().await;
        assert_eq!(
            file.read().await.unwrap().as_deref(),
            Some(&b"committed"[..])
        );
        verify_no_leftovers(&dir);
    });
}

/// Polls `future` once; its output if it was ready.
async fn futures_poll_once<F: std::future::Future + Unpin>(mut future: F) -> Option<F::Output> {
    std::future::poll_fn(|cx| {
        std::task::Poll::Ready(match std::pin::Pin::new(&mut future).poll(cx) {
            std::task::Poll::Ready(out) => Some(out),
            std::task::Poll::Pending => None,
        })
    })
    .await
}

/// 1,000 runs, each dropping a random operation after a random delay,
/// sometimes while a sync thread holds the lock: the counter is the old
/// value or the new one (the new one whenever the operation returned Ok),
/// the two batch members always agree, the lock is always free again and
/// no temporary file is left.
#[test]
fn random_drops_leave_old_or_new_and_no_trace() {
    let runs: u64 = txfile_testkit::process::env_or("TXFILE_ASYNC_RUNS", 1000);
    let mut rng = Rng::from_env_or_time("random_drops");
    let (_dir, dir) = tempdir();
    let (a, b) = (dir.join("a"), dir.join("b"));
    let rt = runtime(2);
    let file = rt.block_on(AsyncTxFile::open(&a)).unwrap();
    let batch = rt
        .block_on(AsyncBatch::open([a.clone(), b.clone()]))
        .unwrap();
    let sync = TxFile::open(&a).unwrap();
    let mut value = 0;
    let mut outcomes = [0u64; 3]; // completed, dropped with old, dropped with new
    for run in 0..runs {
        let op = rng.below(4);
        let delay = Duration::from_micros(rng.below(3000));
        let hold = (rng.below(4) == 0).then(|| Duration::from_micros(rng.below(3000)));
        let holder = hold.map(|hold| {
            let sync = sync.clone();
            let (ready_send, ready) = std::sync::mpsc::channel();
            let thread = std::thread::spawn(move || {
                let tx = sync.begin().unwrap();
                ready_send.send(()).unwrap();
                std::thread::sleep(hold);
                tx.rollback();
            });
            ready.recv().unwrap();
            thread
        });
        let result = rt.block_on(async {
            let work = async {
                let io = |e: std::io::Error| Error::Aborted {
                    path: "write".into(),
                    source: e.into(),
                };
                match op {
                    0 => file.update(increment).await,
                    1 => {
                        let mut tx = file.begin().await?;
                        let n = parse_counter(tx.old_bytes().await?);
                        tx.write_all((n + 1).to_string().as_bytes())
                            .await
                            .map_err(io)?;
                        tx.commit().await
                    }
                    2 => {
                        let Some(mut tx) = file.try_begin().await? else {
                            return Ok(false);
                        };
                        let n = parse_counter(tx.old_bytes().await?);
                        tx.write_all(&vec![b' '; 70_000]).await.map_err(io)?;
                        tx.write_all((n + 1).to_string().as_bytes())
                            .await
                            .map_err(io)?;
                        tx.commit().await
                    }
                    _ => {
                        batch
                            .update(|old| {
                                let n = parse_counter(old[0]) + 1;
                                Ok::<_, Error>(vec![n.to_string().into_bytes(); 2])
                            })
                            .await
                    }
                }
                .map(|()| true)
            };
            tokio::time::timeout(delay, work).await
        });
        if let Some(holder) = holder {
            holder.join().unwrap();
        }
        // The lock comes back: a dropped future's blocking work ends, and
        // any thread waiting in the kernel passes the lock on.
        let now = rt.block_on(async {
            let tx = tokio::time::timeout(Duration::from_secs(20), batch.begin())
                .await
                .unwrap_or_else(|_| panic!("run {run}: the lock never came back"))
                .unwrap();
            tx.rollback().await;
            batch.read().await.unwrap()
        });
        let (seen, other) = (
            parse_counter(now[0].as_deref()),
            parse_counter(now[1].as_deref()),
        );
        match result {
            Ok(Ok(true)) => {
                assert_eq!(seen, value + 1, "run {run}: op {op} returned Ok");
                outcomes[0] += 1;
            }
            Ok(Ok(false)) => assert_eq!(seen, value, "run {run}: try_begin found it held"),
            Ok(Err(e)) => panic!("run {run}: op {op} failed: {e}"),
            Err(_) => {
                assert!(
                    seen == value || seen == value + 1,
                    "run {run}: op {op} dropped: {value} became {seen}"
                );
                outcomes[if seen == value { 1 } else { 2 }] += 1;
            }
        }
        // b changes only in batch updates, which set both to one value.
        assert!(other <= seen, "run {run}: a={seen} b={other}");
        if op == 3 && seen == value + 1 {
            assert_eq!(other, seen, "run {run}: half a batch");
        }
        value = seen;
        assert!(
            sync.try_begin().unwrap().is_some(),
            "run {run}: lock still held"
        );
        verify_no_leftovers(&dir);
    }
    eprintln!(
        "random drops: {} completed, {} dropped before the commit, {} dropped after it started",
        outcomes[0], outcomes[1], outcomes[2]
    );
    assert!(
        outcomes[1] > 0 && outcomes[0] > 0,
        "the delays should hit both sides"
    );
}

/// `examples/worker.rs`, three processes at once on one JSON state file,
/// while the state is read (and, with the `cli` feature, `txfile cat` reads
/// it): every read is one complete JSON document, and every job is done
/// exactly once.
#[test]
fn worker_example_runs_as_several_processes() {
    let _heavy = common::heavy();
    let exe = std::env::current_exe().expect("test binary");
    let example = exe
        .parent()
        .and_then(|deps| deps.parent())
        .map(|profile| profile.join("examples").join("worker"))
        .expect("target directory");
    if !example.exists() {
        // `cargo test` builds the examples, `cargo test --test async_api` not.
        let status = std::process::Command::new(std::env::var("CARGO").unwrap_or("cargo".into()))
            .args(["build", "--example", "worker", "--features", "tokio"])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build");
        assert!(
            status.success() && example.exists(),
            "build {}",
            example.display()
        );
    }
    let (_dir, dir) = tempdir();
    let state = dir.join("state.json");
    let workers: Vec<Child> = ["a", "b", "c"]
        .iter()
        .map(|name| {
            std::process::Command::new(&example)
                .args([state.as_str(), "--jobs", "30", "--name", name])
                .stdout(Stdio::piped())
                .spawn()
                .expect("start a worker")
        })
        .collect();
    let reader = TxFile::open(&state).unwrap();
    let mut reads = 0;
    while reads < 10_000
        && !std::fs::read(&state).is_ok_and(|b| b.windows(10).any(|w| w == b"\"done\": 30"))
    {
        if let Some(bytes) = reader.read().unwrap() {
            serde_json::from_slice::<serde_json::Value>(&bytes).expect("a complete document");
            reads += 1;
        }
        #[cfg(feature = "cli")]
        if reads % 50 == 1 {
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_txfile"))
                .args(["cat", state.as_str()])
                .output()
                .expect("run txfile cat");
            assert!(out.status.success());
            serde_json::from_slice::<serde_json::Value>(&out.stdout)
                .expect("txfile cat: one document");
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut total = 0;
    for worker in workers {
        let out = check(worker.wait_with_output().unwrap(), "worker");
        total += out
            .split_whitespace()
            .nth(1)
            .and_then(|n| n.parse::<u64>().ok())
            .expect("the worker's count");
    }
    assert_eq!(total, 30, "jobs done by the three workers");
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&state).unwrap()).unwrap();
    assert_eq!(doc["done"], 30);
    for job in doc["jobs"].as_array().unwrap() {
        assert_eq!(job["state"], "done", "{job}");
        assert_eq!(job["progress"], 5, "{job}");
    }
    eprintln!("worker example: {reads} consistent reads while it ran");
    verify_no_leftovers(&dir);
}

/// An async transaction belongs to no thread: a sync user on the blocking
/// thread that took the lock for it waits (here: until its timeout) instead
/// of being told it holds the lock itself.
#[test]
fn async_lock_is_not_mistaken_for_reentry() {
    let (_dir, dir) = tempdir();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let file = AsyncTxFile::open(dir.join("a")).await.unwrap();
        let tx = file.begin().await.unwrap();
        let sync = Options::new()
            .timeout(Duration::from_millis(100))
            .open(dir.join("a"))
            .unwrap();
        let waited = tokio::task::spawn_blocking(move || sync.begin().map(drop))
            .await
            .unwrap();
        assert!(
            matches!(waited, Err(Error::Timeout { .. })),
            "the lock is busy, not re-entered: {waited:?}"
        );
        tx.rollback().await;
    });
}
