//! A program against txfile's public API that shows what Windows needs:
//! four processes counting in one file with lockless readers between their
//! updates, then another program holding the file open without delete
//! sharing (as editors and virus scanners do) for 400 ms, then for 30 s.
//!
//! ```text
//! cargo run --example held_open
//! ```
//!
//! On Windows the 400 ms holder only delays the commit (it is retried), and
//! the 30 s holder makes it fail after `Options::replace_retry` (2 s by
//! default) with `Error::HeldOpen`, the file unchanged and no temporary file
//! left. On Unix nothing keeps a rename from replacing a file, so both
//! commits go through at once. Exits non-zero if anything else happens.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

type Result<T> = std::result::Result<T, txfile::BoxError>;

const WORKERS: u32 = 4;
const INCREMENTS: u64 = 25;

fn parse(bytes: &[u8]) -> Result<u64> {
    Ok(std::str::from_utf8(bytes)?.trim().parse()?)
}

/// A worker process: `INCREMENTS` updates, each followed by a lockless read.
fn count(path: &Path) -> Result<()> {
    let counter = txfile::TxFile::open(path)?;
    for _ in 0..INCREMENTS {
        counter.update(|old| -> Result<Vec<u8>> {
            Ok((old.map_or(Ok(0), parse)? + 1).to_string().into_bytes())
        })?;
        counter.read()?;
    }
    Ok(())
}

/// Another program: opens `path` without delete sharing, says so by
/// creating `ready`, and holds it for `ms` milliseconds.
fn hold(path: &Path, ready: &Path, ms: u64) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(windows)]
    {
        use std::os::windows::fs::OpenOptionsExt;
        const FILE_SHARE_READ: u32 = 1;
        const FILE_SHARE_WRITE: u32 = 2;
        options.share_mode(FILE_SHARE_READ | FILE_SHARE_WRITE);
    }
    let file = options.open(path)?;
    std::fs::write(ready, "open")?;
    std::thread::sleep(Duration::from_millis(ms));
    drop(file);
    Ok(())
}

fn spawn(args: &[&str]) -> Result<Child> {
    Ok(Command::new(std::env::current_exe()?).args(args).spawn()?)
}

/// Starts a holder process and waits until it has the file open.
fn start_holder(dir: &Path, path: &Path, ms: u64) -> Result<Child> {
    let ready = dir.join("ready");
    let _ = std::fs::remove_file(&ready);
    let child = spawn(&[
        "--hold",
        path.to_str().ok_or("path")?,
        ready.to_str().ok_or("path")?,
        &ms.to_string(),
    ])?;
    let start = Instant::now();
    while !ready.exists() {
        if start.elapsed() > Duration::from_secs(60) {
            return Err("the holder never opened the file".into());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    std::fs::remove_file(&ready)?;
    Ok(child)
}

/// Everything in `dir` except the target and its lock file.
fn leftovers(dir: &Path) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let name = entry?.file_name().to_string_lossy().into_owned();
        if name != "counter" && name != "counter.lock" {
            names.push(name);
        }
    }
    Ok(names)
}

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["--count", path] => return count(Path::new(path)),
        ["--hold", path, ready, ms] => return hold(Path::new(path), Path::new(ready), ms.parse()?),
        [] => {}
        _ => return Err("usage: held_open (no arguments)".into()),
    }
    let tmp = tempfile::tempdir()?;
    let dir: PathBuf = tmp.path().to_owned();
    let path = dir.join("counter");
    let counter = txfile::TxFile::open(&path)?;

    // 1. Four processes, no lost update.
    let started = Instant::now();
    let workers = (0..WORKERS)
        .map(|_| spawn(&["--count", path.to_str().ok_or("path")?]))
        .collect::<Result<Vec<_>>>()?;
    for mut worker in workers {
        if !worker.wait()?.success() {
            return Err("a counting process failed".into());
        }
    }
    let n = parse(&std::fs::read(&path)?)?;
    let expected = u64::from(WORKERS) * INCREMENTS;
    println!(
        "held_open: {WORKERS} processes x {INCREMENTS} increments: {n} (expected {expected}) in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    if n != expected {
        return Err(format!("lost {} updates", expected - n).into());
    }

    // 2. Held for 400 ms: the commit waits it out.
    let mut holder = start_holder(&dir, &path, 400)?;
    let started = Instant::now();
    counter.update(|old| -> Result<Vec<u8>> {
        Ok((old.map_or(Ok(0), parse)? + 1).to_string().into_bytes())
    })?;
    println!(
        "held_open: held 400 ms: committed after {:.2} s",
        started.elapsed().as_secs_f64()
    );
    holder.wait()?;
    if parse(&std::fs::read(&path)?)? != expected + 1 {
        return Err("the 400 ms case did not commit".into());
    }

    // 3. Held for 30 s: a clear error after the bounded retry (Windows).
    let mut holder = start_holder(&dir, &path, 30_000)?;
    let started = Instant::now();
    let result = counter.update(|_| Ok::<_, txfile::Error>(b"replaced".to_vec()));
    let waited = started.elapsed();
    holder.kill()?;
    holder.wait()?;
    let now = std::fs::read(&path)?;
    match result {
        Err(err @ txfile::Error::HeldOpen { .. }) => {
            println!(
                "held_open: held 30 s: after {:.2} s: {err}",
                waited.as_secs_f64()
            );
            if parse(&now)? != expected + 1 {
                return Err("the target changed although the commit failed".into());
            }
        }
        Ok(()) if cfg!(not(windows)) => {
            println!("held_open: held 30 s: committed (nothing blocks a rename here)");
        }
        other => return Err(format!("held 30 s: expected Error::HeldOpen, got {other:?}").into()),
    }
    let left = leftovers(&dir)?;
    if !left.is_empty() {
        return Err(format!("left behind: {left:?}").into());
    }
    println!("held_open: no update lost, no temporary file left");
    Ok(())
}
