//! Benchmarks for txfile: per-commit cost against the raw syscalls and the
//! peers, multi-process contention, and memory of a streaming transform.
//!
//! ```text
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench txbench            # everything
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench txbench -- --quick # fewer rounds, smaller files
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench txbench -- commit  # one part: commit, contention, memory or async
//! CARGO_TARGET_DIR=/work/target-bench cargo bench --bench txbench --features tokio -- async  # async against sync
//! ```
//!
//! Its own harness (`harness = false`) rather than criterion, because every
//! variant must run interleaved, round by round, in one process on one
//! directory: disk and machine noise then hits all variants alike, and the
//! medians are comparable. `TXFILE_BENCH_QUICK=1` is the same as `--quick`;
//! `--dir DIR` (or `TXFILE_BENCH_DIR`) picks the directory, which must be on
//! the disk being measured (not tmpfs).

#[cfg(feature = "tokio")]
mod asynchronous;
mod commit;
mod contention;
mod memory;

use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use clap::Parser;

#[derive(Parser, Debug)]
#[command(about = "txfile benchmarks: commit cost, contention, memory")]
struct Args {
    /// Parts to run: commit, contention, memory, async (all when none given;
    /// async needs `--features tokio`).
    parts: Vec<String>,
    /// Fewer rounds and smaller files, for a smoke run.
    #[arg(long)]
    quick: bool,
    /// Directory to benchmark in (default: `txbench` in the target directory).
    #[arg(long)]
    dir: Option<Utf8PathBuf>,
    /// Internal: run as a child process in this role.
    #[arg(long, hide = true)]
    role: Option<String>,
    /// Internal: the child's file.
    #[arg(long, hide = true)]
    file: Option<Utf8PathBuf>,
    /// Internal: the child's iteration count.
    #[arg(long, hide = true, default_value_t = 0)]
    count: u64,
    /// Passed by `cargo bench`; ignored.
    #[arg(long, hide = true)]
    bench: bool,
}

fn main() {
    let args = Args::parse();
    if let Some(role) = &args.role {
        let file = args.file.as_deref().expect("--file goes with --role");
        match role.as_str() {
            "tx-full" | "tx-none" => contention::worker(role, file, args.count),
            "transform" => memory::transform(file),
            other => panic!("unknown role {other}"),
        }
        return;
    }
    let quick = args.quick || std::env::var_os("TXFILE_BENCH_QUICK").is_some();
    let dir = args
        .dir
        .clone()
        .or_else(|| {
            std::env::var("TXFILE_BENCH_DIR")
                .ok()
                .map(Utf8PathBuf::from)
        })
        .unwrap_or_else(default_dir);
    if dir.exists() {
        std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("clear {dir}: {e}"));
    }
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {dir}: {e}"));
    let wanted = |part: &str| args.parts.is_empty() || args.parts.iter().any(|p| p == part);

    println!("# txfile benchmarks{}", if quick { " (quick)" } else { "" });
    println!();
    println!("- machine: {} cores, {}", nproc(), cpu_model());
    println!("- directory: {dir} on {}", filesystem(&dir));
    println!();
    if wanted("commit") {
        commit::run(&dir, quick);
    }
    if wanted("contention") {
        contention::run(&dir, quick);
    }
    if wanted("memory") {
        memory::run(&dir, quick);
    }
    if wanted("async") {
        #[cfg(feature = "tokio")]
        asynchronous::run(&dir, quick);
        #[cfg(not(feature = "tokio"))]
        println!("(the async part needs `--features tokio`)\n");
    }
    std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("remove {dir}: {e}"));
}

/// `<target dir>/txbench`: the bench binary lives in `<target>/release/deps/`.
fn default_dir() -> Utf8PathBuf {
    let exe = std::env::current_exe().expect("the bench binary's path");
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the bench binary is in <target>/<profile>/deps");
    Utf8PathBuf::from_path_buf(target.join("txbench")).expect("target dir path is UTF-8")
}

fn nproc() -> usize {
    std::thread::available_parallelism().map_or(1, usize::from)
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned())
}

/// Filesystem type and device of `dir`, as `df` reports them.
fn filesystem(dir: &Utf8Path) -> String {
    let out = Command::new("df")
        .args(["--output=fstype,source", dir.as_str()])
        .output();
    match out {
        Ok(out) if out.status.success() => String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" on "))
            .unwrap_or_default(),
        _ => "unknown filesystem".to_owned(),
    }
}

/// The `q`-quantile (0..=1) of `samples`, by nearest rank.
fn quantile(samples: &mut [f64], q: f64) -> f64 {
    samples.sort_by(f64::total_cmp);
    let rank = ((samples.len() - 1) as f64 * q).round() as usize;
    samples[rank]
}

/// A duration in seconds, printed with a unit that keeps 3 significant digits.
fn fmt_secs(secs: f64) -> String {
    if secs < 1e-3 {
        format!("{:.1} µs", secs * 1e6)
    } else if secs < 1.0 {
        format!("{:.2} ms", secs * 1e3)
    } else {
        format!("{secs:.2} s")
    }
}

fn fmt_size(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{} MiB", bytes >> 20)
    } else {
        format!("{} KiB", bytes >> 10)
    }
}
