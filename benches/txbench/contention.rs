//! Processes incrementing one counter file: 8 at once against 1 alone doing
//! the same total, for txfile and for a `flock(1)` + temp file + `mv` shell
//! loop with the same fsyncs.

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
