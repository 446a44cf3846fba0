//! Mutual exclusion: processes, threads, both lock styles, and the lost-lock
//! trap of POSIX record locks.
#![cfg(unix)] // flock and POSIX locks, which Windows does not have (Windows: tests/windows.rs)

mod common;

use std::io::Write;
use std::process::Child;
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use common::{check, parse_counter, role, run_role, tempdir, verify_no_leftovers};
use txfile::{Error, LockStyle, Options, TxFile};

const STYLES: [LockStyle; 2] = [LockStyle::Flock, LockStyle::Posix];

fn style_name(style: LockStyle) -> &'static str {
    match style {
        LockStyle::Flock => "flock",
        _ => "posix",
    }
}

fn style_from_env() -> LockStyle {
    match std::env::var("STYLE").as_deref() {
        Ok("posix") => LockStyle::Posix,
        _ => LockStyle::Flock,
    }
}

fn env_path(name: &str) -> Utf8PathBuf {
    Utf8PathBuf::from(std::env::var(name).expect("path in environment"))
}

fn increment(file: &TxFile) -> Result<(), Error> {
    file.update(|old| Ok::<_, Error>(format!("{}\n", parse_counter(old) + 1).into_bytes()))
}

/// Child role: `COUNT` increments of `TARGET`, with txfile or naively.
#[test]
fn worker_entry() {
    let Some(role) = role() else { return };
    let target = env_path("TARGET");
    let count: u64 = std::env::var("COUNT")
        .expect("COUNT")
        .parse()
        .expect("number");
    match role.as_str() {
        "increment" => {
            let file = Options::new()
                .lock_style(style_from_env())
                .open(&target)
                .expect("open");
            for _ in 0..count {
                increment(&file).expect("increment");
            }
        }
        "naive" => {
            // The bug txfile exists for: read, compute, write, no lock.
            for _ in 0..count {
                let old = std::fs::read(&target).ok();
                let n = std::str::from_utf8(old.as_deref().unwrap_or_default())
                    .ok()
                    .and_then(|s| s.trim().parse::<u64>().ok())
                    .unwrap_or(0);
                std::thread::sleep(Duration::from_micros(200));
                std::fs::write(&target, format!("{}\n", n + 1)).expect("write");
            }
        }
        other => panic!("unknown role {other}"),
    }
}

fn run_processes(role: &str, style: LockStyle, procs: usize, count: u64) -> u64 {
    let (_dir, dir) = tempdir();
    let target = dir.join("counter");
    let env = [
        ("TARGET", target.to_string()),
        ("COUNT", count.to_string()),
        ("STYLE", style_name(style).to_string()),
    ];
    let children: Vec<_> = (0..procs)
        .map(|_| {
            run_role("worker_entry", role, &env)
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    for child in children {
        check(child.wait_with_output().expect("wait"), "worker");
    }
    verify_no_leftovers(&dir);
    parse_counter(std::fs::read(&target).ok().as_deref())
}

#[test]
fn processes_lose_no_update_under_both_styles() {
    if role().is_some() {
        return;
    }
    for style in STYLES {
        let total = run_processes("increment", style, 4, 200);
        eprintln!(
            "{}: 4 processes x 200 increments -> {total}",
            style_name(style)
        );
        assert_eq!(total, 800, "{style:?}");
    }
}

/// The harness can fail: without a lock, the same workload loses updates.
#[test]
fn mutant_naive_processes_lose_updates() {
    if role().is_some() {
        return;
    }
    let total = run_processes("naive", LockStyle::Flock, 4, 200);
    eprintln!("naive: 4 processes x 200 increments -> {total}");
    assert!(
        total < 800,
        "the naive read-modify-write lost nothing ({total}); the test cannot tell"
    );
}

#[test]
fn threads_lose_no_update_under_both_styles() {
    for style in STYLES {
        let (_dir, dir) = tempdir();
        let target = dir.join("counter");
        let shared = Options::new()
            .lock_style(style)
            .open(&target)
            .expect("open");
        let threads = 8;
        let per_thread = 100;
        let start = Arc::new(Barrier::new(threads));
        let handles: Vec<_> = (0..threads)
            .map(|i| {
                // Half share clones of one handle, half open their own.
                let file = if i % 2 == 0 {
                    shared.clone()
                } else {
                    Options::new()
                        .lock_style(style)
                        .open(&target)
                        .expect("open")
                };
                let start = Arc::clone(&start);
                std::thread::spawn(move || {
                    start.wait();
                    for _ in 0..per_thread {
                        increment(&file).expect("increment");
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().expect("thread");
        }
        let total = parse_counter(shared.read().expect("read").as_deref());
        assert_eq!(total, (threads * per_thread) as u64, "{style:?}");
        verify_no_leftovers(&dir);
    }
}

#[test]
fn try_begin_and_timeout_report_a_held_lock() {
    let (_dir, dir) = tempdir();
    let target = dir.join("a");
    for style in STYLES {
        let holder = Options::new()
            .lock_style(style)
            .open(&target)
            .expect("open");
        let tx = holder.begin().expect("begin");
        let other = Options::new()
            .lock_style(style)
            .timeout(Duration::from_millis(200))
            .open(&target)
            .expect("open");
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(other.try_begin().expect("try_begin").is_none());
                let started = Instant::now();
                let err = other.begin().expect_err("lock is held");
                assert!(matches!(err, Error::Timeout { .. }), "{err}");
                assert!(started.elapsed() >= Duration::from_millis(200));
                assert!(err.to_string().contains(target.as_str()), "{err}");
            });
        });
        tx.rollback();
        assert!(other.try_begin().expect("try_begin").is_some());
    }
}

/// Child role for the lost-lock replay: keep trying to get in until the
/// parent says stop; print how often it got in.
#[test]
fn prober_entry() {
    let Some(role) = role() else { return };
    let target = env_path("TARGET");
    let stop = env_path("STOP");
    let mut got_in = 0u32;
    let mut tries = 0u32;
    match role.as_str() {
        "txfile" => {
            let file = Options::new()
                .lock_style(LockStyle::Posix)
                .open(&target)
                .expect("open");
            while !stop.exists() {
                tries += 1;
                if file.try_begin().expect("try_begin").is_some() {
                    got_in += 1;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        "naive" => {
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&target)
                .expect("open");
            while !stop.exists() {
                tries += 1;
                if rustix::fs::fcntl_lock(
                    &file,
                    rustix::fs::FlockOperation::NonBlockingLockExclusive,
                )
                .is_ok()
                {
                    got_in += 1;
                    rustix::fs::fcntl_lock(&file, rustix::fs::FlockOperation::Unlock)
                        .expect("unlock");
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        other => panic!("unknown role {other}"),
    }
    println!("got_in={got_in} tries={tries}");
}

/// A fresh directory with the target `data` holding "0\n", and the path
/// whose creation stops the prober.
fn replay_dir() -> (tempfile::TempDir, Utf8PathBuf, Utf8PathBuf) {
    let (tmp, dir) = tempdir();
    let target = dir.join("data");
    std::fs::write(&target, "0\n").expect("seed");
    (tmp, target, dir.join("stop"))
}

/// Starts `prober_entry` in another process, locking `target` as `role`
/// until `stop` exists.
fn spawn_prober(role: &str, target: &Utf8Path, stop: &Utf8Path) -> Child {
    run_role(
        "prober_entry",
        role,
        &[("TARGET", target.to_string()), ("STOP", stop.to_string())],
    )
    .spawn()
    .expect("spawn prober")
}

/// Stops the prober and returns its report.
fn stop_prober(prober: Child, stop: &Utf8Path) -> String {
    std::fs::write(stop, "").expect("stop");
    check(prober.wait_with_output().expect("wait"), "prober")
}

fn got_in(stdout: &str) -> u32 {
    let at = stdout.find("got_in=").expect("prober output") + "got_in=".len();
    stdout[at..]
        .split(' ')
        .next()
        .expect("count")
        .parse()
        .expect("number")
}

/// While holding the lock, the process opens and drops other handles to the
/// target and opens and closes the target file itself: with POSIX record
/// locks on the target this would silently drop the lock. txfile's guard
/// descriptor is never closed, so the other process never gets in.
#[test]
fn lost_lock_replay_posix() {
    if role().is_some() {
        return;
    }
    let (_dir, target, stop) = replay_dir();
    let file = Options::new()
        .lock_style(LockStyle::Posix)
        .open(&target)
        .expect("open");
    let mut tx = file.begin().expect("begin");
    let prober = spawn_prober("txfile", &target, &stop);
    let until = Instant::now() + Duration::from_millis(1500);
    let mut cycles = 0;
    while Instant::now() < until {
        let other = Options::new()
            .lock_style(LockStyle::Posix)
            .open(&target)
            .expect("open");
        assert_eq!(other.read().expect("read").as_deref(), Some(&b"0\n"[..]));
        drop(other);
        drop(std::fs::File::open(&target).expect("open target"));
        drop(txfile::TxFile::open(&target).expect("open default handle"));
        cycles += 1;
    }
    let out = stop_prober(prober, &stop);
    eprintln!(
        "holder did {cycles} open/close cycles; prober: {}",
        out.trim()
    );
    assert_eq!(
        got_in(&out),
        0,
        "another process got the lock while it was held"
    );
    tx.write_all(b"1\n").expect("write");
    tx.commit().expect("commit");
}

/// The same replay with a naive POSIX lock on the target itself: the
/// prober gets in, which is the bug the guard file prevents. This proves the
/// replay above can fail.
#[test]
fn mutant_naive_posix_lock_is_lost() {
    if role().is_some() {
        return;
    }
    let (_dir, target, stop) = replay_dir();
    let locked = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(&target)
        .expect("open");
    rustix::fs::fcntl_lock(&locked, rustix::fs::FlockOperation::LockExclusive).expect("lock");
    let prober = spawn_prober("naive", &target, &stop);
    std::thread::sleep(Duration::from_millis(300));
    // An unrelated read of the same file, elsewhere in the program.
    drop(std::fs::read(&target).expect("read"));
    std::thread::sleep(Duration::from_millis(500));
    let out = stop_prober(prober, &stop);
    eprintln!("naive holder: prober {}", out.trim());
    assert!(
        got_in(&out) > 0,
        "the naive lock was not lost: the replay cannot tell"
    );
}
