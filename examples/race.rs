//! Lost updates, live: N processes each increment one counter file M times,
//! first with a plain read-modify-write, then with txfile.
//!
//! ```text
//! cargo run --release --example race -- --workers 8 --increments 200
//! ```

use std::process::Command;
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;

#[derive(Parser)]
#[command(about = "Race N processes incrementing one counter file, without and with txfile")]
struct Args {
    /// Worker processes.
    #[arg(long, default_value_t = 8)]
    workers: u32,
    /// Increments per worker.
    #[arg(long, default_value_t = 200)]
    increments: u64,
    /// Internal: run as a worker with this method on this file.
    #[arg(long, hide = true, num_args = 2, value_names = ["METHOD", "FILE"])]
    worker: Option<Vec<String>>,
}

fn parse(bytes: &[u8]) -> u64 {
    // A naive reader can catch the file truncated mid-write: that reads as 0.
    std::str::from_utf8(bytes)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn naive(path: &Utf8Path, increments: u64) -> Result<(), Box<dyn std::error::Error>> {
    for _ in 0..increments {
        let n = std::fs::read(path).map(|b| parse(&b)).unwrap_or(0);
        std::fs::write(path, format!("{}\n", n + 1))?;
    }
    Ok(())
}

fn with_txfile(path: &Utf8Path, increments: u64) -> Result<(), Box<dyn std::error::Error>> {
    let counter = txfile::TxFile::open(path)?;
    for _ in 0..increments {
        counter.update(|old| {
            Ok::<_, txfile::Error>(format!("{}\n", old.map_or(0, parse) + 1).into_bytes())
        })?;
    }
    Ok(())
}

struct Row {
    method: &'static str,
    expected: u64,
    actual: u64,
    elapsed: Duration,
}

fn race(
    method: &'static str,
    dir: &Utf8Path,
    args: &Args,
) -> Result<Row, Box<dyn std::error::Error>> {
    let path = dir.join(format!("counter-{method}"));
    std::fs::write(&path, "0\n")?;
    let exe = std::env::current_exe()?;
    let started = Instant::now();
    let children = (0..args.workers)
        .map(|_| {
            Command::new(&exe)
                .args([
                    "--increments",
                    &args.increments.to_string(),
                    "--worker",
                    method,
                    path.as_str(),
                ])
                .spawn()
        })
        .collect::<Result<Vec<_>, _>>()?;
    for mut child in children {
        let status = child.wait()?;
        if !status.success() {
            return Err(format!("a {method} worker failed: {status}").into());
        }
    }
    let elapsed = started.elapsed();
    Ok(Row {
        method,
        expected: u64::from(args.workers) * args.increments,
        actual: parse(&std::fs::read(&path)?),
        elapsed,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    if let Some(worker) = &args.worker {
        let path = Utf8PathBuf::from(&worker[1]);
        return match worker[0].as_str() {
            "naive" => naive(&path, args.increments),
            "txfile" => with_txfile(&path, args.increments),
            other => Err(format!("unknown method {other}").into()),
        };
    }
    let dir = tempfile::tempdir()?;
    let dir = Utf8PathBuf::try_from(dir.path().to_owned())?;
    println!(
        "{} processes x {} increments of one counter file in {dir}\n",
        args.workers, args.increments
    );
    println!(
        "{:<12} {:>9} {:>7} {:>13} {:>10} {:>15}",
        "method", "expected", "final", "lost updates", "wall time", "transactions/s"
    );
    let mut txfile_lost = 0;
    for method in ["naive", "txfile"] {
        let row = race(method, &dir, &args)?;
        let lost = row.expected.saturating_sub(row.actual);
        if method == "txfile" {
            txfile_lost = lost;
        }
        println!(
            "{:<12} {:>9} {:>7} {:>13} {:>9.2}s {:>15.0}",
            row.method,
            row.expected,
            row.actual,
            lost,
            row.elapsed.as_secs_f64(),
            row.expected as f64 / row.elapsed.as_secs_f64()
        );
    }
    if txfile_lost != 0 {
        return Err(
            format!("txfile lost {txfile_lost} updates: this is a bug, please report it").into(),
        );
    }
    println!(
        "\ntxfile: every increment kept, each one durable (fsync + rename + directory fsync)."
    );
    Ok(())
}
