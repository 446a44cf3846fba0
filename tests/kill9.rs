//! kill -9 torture: writers are SIGKILLed at random moments, at least 500
//! times, and restarted. After every kill the target is a complete version,
//! no acknowledged commit is lost, the lock is free again and the dead
//! writer's temporary file is swept by the next transaction.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdout};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use camino::Utf8PathBuf;
use common::{Rng, disk_tempdir, names, parse_versioned, role, run_role, versioned};
use txfile::{Options, TxFile};

const WRITERS: usize = 4;

fn kills_wanted() -> u32 {
    txfile_testkit::process::env_or("TXFILE_KILLS", 500)
}

/// Child role: increment forever; print `ack N` after each commit returns.
#[test]
fn writer_entry() {
    let in_place = match role().as_deref() {
        Some("writer") => false,
        Some("in-place-writer") => true,
        _ => return,
    };
    let target = Utf8PathBuf::from(std::env::var("TARGET").expect("TARGET"));
    let file = TxFile::open(&target).expect("open");
    let mut out = std::io::stdout().lock();
    let mut filler = 1000;
    loop {
        let mut tx = file.begin().expect("begin");
        let n = match tx.old_bytes().expect("read") {
            Some(bytes) => parse_versioned(bytes).expect("old version is complete"),
            None => 0,
        };
        // Sizes from 1 KB to ~200 KB, so that kills land while a temporary
        // file is being written as well as between transactions.
        filler = (filler * 7 + 13) % 200_000;
        if in_place {
            // The mutant: locked, but writing the target in place.
            std::fs::write(&target, versioned(n + 1, filler)).expect("write in place");
            tx.rollback();
        } else {
            tx.write_all(&versioned(n + 1, filler)).expect("write");
            tx.commit().expect("commit");
        }
        writeln!(out, "ack {}", n + 1).expect("ack");
        out.flush().expect("flush ack");
    }
}

struct Writer {
    child: Child,
    acks: std::thread::JoinHandle<()>,
}

fn spawn_writer(role: &str, target: &Utf8PathBuf, max_acked: &Arc<AtomicU64>) -> Writer {
    let mut child = run_role("writer_entry", role, &[("TARGET", target.to_string())])
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("spawn writer");
    let stdout: ChildStdout = child.stdout.take().expect("piped stdout");
    let max_acked = Arc::clone(max_acked);
    let acks = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if let Some(n) = line
                .strip_prefix("ack ")
                .and_then(|n| n.parse::<u64>().ok())
            {
                max_acked.fetch_max(n, Ordering::SeqCst);
            }
        }
    });
    Writer { child, acks }
}

struct Outcome {
    kills: u32,
    committed: u64,
    acked: u64,
    temps_before_lock: usize,
    elapsed: Duration,
}

/// Kills random writers `kills` times; returns the first violation seen.
fn torture(role: &str, kills: u32) -> Result<Outcome, String> {
    let _heavy = common::heavy();
    let (_d, dir) = disk_tempdir();
    let target = dir.join("counter");
    let max_acked = Arc::new(AtomicU64::new(0));
    let mut rng = Rng::from_env_or_time(role);
    let mut writers: Vec<Writer> = (0..WRITERS)
        .map(|_| spawn_writer(role, &target, &max_acked))
        .collect();
    let checker = Options::new()
        .timeout(Duration::from_secs(1))
        .open(&target)
        .expect("open");
    let started = Instant::now();
    let deadline = started + Duration::from_secs(240);
    let mut outcome = Outcome {
        kills: 0,
        committed: 0,
        acked: 0,
        temps_before_lock: 0,
        elapsed: Duration::ZERO,
    };
    let mut result = Ok(());
    while outcome.kills < kills && result.is_ok() {
        assert!(
            Instant::now() < deadline,
            "only {} kills before the time bound",
            outcome.kills
        );
        std::thread::sleep(Duration::from_millis(rng.below(15)));
        let victim = rng.below(WRITERS as u64) as usize;
        let mut dead = std::mem::replace(
            &mut writers[victim],
            spawn_writer(role, &target, &max_acked),
        );
        dead.child.kill().expect("SIGKILL");
        dead.child.wait().expect("reap");
        dead.acks.join().expect("ack reader");
        outcome.kills += 1;
        result = check_after_kill(&dir, &checker, &max_acked, &mut outcome);
    }
    for mut w in writers {
        w.child.kill().expect("SIGKILL");
        w.child.wait().expect("reap");
        w.acks.join().expect("ack reader");
    }
    outcome.acked = max_acked.load(Ordering::SeqCst);
    outcome.elapsed = started.elapsed();
    result.map(|()| outcome)
}

/// The checks after one kill: lock free within a second, no temporary file
/// once it is held (live writers only have one while holding it), a complete
/// version, nothing acknowledged lost, never a step back.
fn check_after_kill(
    dir: &Utf8PathBuf,
    checker: &TxFile,
    max_acked: &AtomicU64,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let kill = outcome.kills;
    // Every ack the dead writer printed has been read by now.
    let acked = max_acked.load(Ordering::SeqCst);
    outcome.temps_before_lock += names(dir).iter().filter(|n| n.ends_with(".txtmp")).count();
    let began = Instant::now();
    let mut tx = checker
        .begin()
        .map_err(|e| format!("kill {kill}: lock not free within 1 s: {e}"))?;
    if began.elapsed() > Duration::from_secs(1) {
        return Err(format!("kill {kill}: lock took {:?}", began.elapsed()));
    }
    let temps: Vec<_> = names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".txtmp"))
        .collect();
    if !temps.is_empty() {
        return Err(format!("kill {kill}: temporary files left: {temps:?}"));
    }
    let now = match tx.old_bytes().expect("read") {
        Some(bytes) => {
            parse_versioned(bytes).map_err(|e| format!("kill {kill}: torn file: {e}"))?
        }
        None => 0,
    };
    if now < acked {
        return Err(format!(
            "kill {kill}: acknowledged {acked} but the file holds {now}"
        ));
    }
    if now < outcome.committed {
        return Err(format!(
            "kill {kill}: went back from {} to {now}",
            outcome.committed
        ));
    }
    outcome.committed = now;
    tx.rollback();
    Ok(())
}

#[test]
fn kill9_torture() {
    if role().is_some() {
        return;
    }
    let outcome = torture("writer", kills_wanted()).unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "kill9_torture: {} kills in {:.1}s, {} transactions committed, {} acknowledged; \
         temporary files seen before the checker locked {} and after 0; torn files 0; \
         lost acknowledged commits 0",
        outcome.kills,
        outcome.elapsed.as_secs_f64(),
        outcome.committed,
        outcome.acked,
        outcome.temps_before_lock,
    );
}

/// The torture can fail: writers that hold the lock but write the target in
/// place leave torn files when killed.
#[test]
fn mutant_in_place_writes_are_caught() {
    if role().is_some() {
        return;
    }
    match torture("in-place-writer", 300) {
        Ok(outcome) => panic!("{} kills of in-place writers went unnoticed", outcome.kills),
        Err(violation) => eprintln!("in-place mutant caught: {violation}"),
    }
}
