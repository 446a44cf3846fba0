//! Processes incrementing one counter file: 8 at once against 1 alone doing
//! the same total, for txfile and for a `flock(1)` + temp file + `mv` shell
//! loop with the same fsyncs; and the group-commit goal of issue 19 (part
//! `group`): 400 durable increments by 8 processes, and by 8 threads of one
//! process, against one process doing all 400, best of three interleaved
//! rounds.

use std::process::{Child, Command, Stdio};
use std::time::Instant;

use camino::Utf8Path;
use txfile::{Durability, Options};

const WORKERS: u64 = 8;

/// The shell baseline, one increment per `flock` call: read the counter,
/// write counter + 1 to a temp file, `sync FILE` (coreutils: fsync of that
/// file), `mv` over the counter, `sync DIR` (fsync of the directory). The
/// same two fsyncs and one rename as a durable txfile commit, plus the
/// fork/exec of flock, sh, cat, sync, mv and sync.
const SHELL_LOOP: &str = r#"
file=$1; dir=$2; n=$3; i=0
while [ "$i" -lt "$n" ]; do
  flock "$file.lock" sh -c '
    v=$(cat "$1" 2>/dev/null || echo 0)
    echo $((v + 1)) > "$1.tmp.$$"
    sync "$1.tmp.$$"
    mv "$1.tmp.$$" "$1"
    sync "$2"' sh "$file" "$dir"
  i=$((i + 1))
done
"#;

pub(crate) fn run(dir: &Utf8Path, quick: bool) {
    let per_worker = if quick { 50 } else { 500 };
    let total = WORKERS * per_worker;
    println!("## Contention: {WORKERS} processes x {per_worker} increments of one counter file");
    println!();
    println!(
        "Wall time from the first spawn to the last exit; alone = one process doing all {total} increments."
    );
    println!();
    println!("| method | {WORKERS} processes | tx/s | alone | tx/s alone | ratio |");
    println!("|---|---|---|---|---|---|");
    for method in ["tx-full", "tx-none", "shell"] {
        let many = timed(dir, method, WORKERS, per_worker);
        let alone = timed(dir, method, 1, total);
        println!(
            "| {} | {:.2} s | {:.0} | {:.2} s | {:.0} | {:.2} |",
            label(method),
            many,
            total as f64 / many,
            alone,
            total as f64 / alone,
            alone / many,
        );
    }
    println!();
}

fn label(method: &str) -> &'static str {
    match method {
        "tx-full" => "txfile update, Durability::Full",
        "tx-none" => "txfile update, Durability::None",
        _ => "flock(1) + temp + sync + mv + sync dir (sh)",
    }
}

/// Issue 19's goal: 8 writers finish 400 durable increments at least 1.7x
/// as fast as one writer doing all 400 alone. Rounds interleave the three
/// ways (alone, 8 processes, 8 threads), each starting at a different one;
/// the best time of each is kept.
pub(crate) fn run_group(dir: &Utf8Path, quick: bool) {
    let total = if quick { 80 } else { 400 };
    let rounds = 3;
    let per_worker = total / WORKERS;
    println!(
        "## Group commit: {total} durable increments of one counter file, best of {rounds} interleaved rounds"
    );
    println!();
    println!("load average at start: {}", load_average());
    println!();
    let ways = ["alone", "8 processes", "8 threads"];
    let mut best = [f64::INFINITY; 3];
    for round in 0..rounds {
        for k in 0..ways.len() {
            let way = (round + k) % ways.len();
            let secs = match way {
                0 => timed(dir, "tx-full", 1, total),
                1 => timed(dir, "tx-full", WORKERS, per_worker),
                _ => threaded(dir, WORKERS, per_worker),
            };
            best[way] = best[way].min(secs);
        }
    }
    println!("| writers | best time | tx/s | speed-up over alone | goal |");
    println!("|---|---|---|---|---|");
    for (way, secs) in ways.iter().zip(best) {
        let speedup = best[0] / secs;
        let goal = if *way == "alone" {
            "-".to_owned()
        } else if speedup >= 1.7 {
            ">= 1.7: met".to_owned()
        } else {
            ">= 1.7: missed".to_owned()
        };
        println!(
            "| {way} | {secs:.2} s | {:.0} | {speedup:.2} | {goal} |",
            total as f64 / secs
        );
    }
    println!();
    println!("load average at end: {}", load_average());
    println!();
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".to_owned())
}

/// `workers` threads of this process, each with its own handle, doing
/// `count` durable increments each on a fresh counter; checks the total
/// and returns the wall time in seconds.
fn threaded(dir: &Utf8Path, workers: u64, count: u64) -> f64 {
    let file = dir.join(format!("counter-threads-{workers}"));
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..workers {
            s.spawn(|| worker("tx-full", &file, count));
        }
    });
    let secs = start.elapsed().as_secs_f64();
    let value: u64 = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("read {file}: {e}"))
        .trim()
        .parse()
        .expect("the counter is a number");
    assert_eq!(value, workers * count, "threads: increments were lost");
    std::fs::remove_file(&file).unwrap_or_else(|e| panic!("remove {file}: {e}"));
    secs
}

/// Runs `workers` processes of `count` increments each on a fresh counter;
/// checks that no increment was lost and returns the wall time in seconds.
fn timed(dir: &Utf8Path, method: &str, workers: u64, count: u64) -> f64 {
    let file = dir.join(format!("counter-{method}-{workers}"));
    let exe = std::env::current_exe().expect("the bench binary's path");
    let start = Instant::now();
    let children: Vec<Child> = (0..workers)
        .map(|_| {
            let mut cmd = if method == "shell" {
                let mut cmd = Command::new("sh");
                cmd.args(["-c", SHELL_LOOP, "sh", file.as_str(), dir.as_str()])
                    .arg(count.to_string());
                cmd
            } else {
                let mut cmd = Command::new(&exe);
                cmd.args(["--role", method, "--file", file.as_str(), "--count"])
                    .arg(count.to_string());
                cmd
            };
            cmd.stdin(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {method} worker: {e}"))
        })
        .collect();
    for mut child in children {
        let status = child.wait().expect("wait for a worker");
        assert!(status.success(), "{method} worker failed: {status}");
    }
    let secs = start.elapsed().as_secs_f64();
    let value: u64 = std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("read {file}: {e}"))
        .trim()
        .parse()
        .expect("the counter is a number");
    assert_eq!(value, workers * count, "{method}: increments were lost");
    std::fs::remove_file(&file).unwrap_or_else(|e| panic!("remove {file}: {e}"));
    secs
}

/// A worker process: `count` increments with one kept handle.
pub(crate) fn worker(role: &str, file: &Utf8Path, count: u64) {
    let durability = if role == "tx-full" {
        Durability::Full
    } else {
        Durability::None
    };
    let counter = Options::new()
        .durability(durability)
        .open(file)
        .expect("open the counter");
    for _ in 0..count {
        counter
            .update(|old| {
                let n: u64 = match old {
                    Some(bytes) => std::str::from_utf8(bytes)?.trim().parse()?,
                    None => 0,
                };
                Ok::<_, txfile::BoxError>(format!("{}\n", n + 1).into_bytes())
            })
            .expect("increment the counter");
    }
}
