//! Workload for the NFS test (`tests/nfs/run.sh`), run on the client hosts
//! of the test VM with the shared NFS directory as working directory.
//!
//! Every version it writes is a small document: a header line
//! `txnfs <counter> <stamp>`, a pseudo-random payload of 1 to 13 KiB (so a
//! version spans several pages and a torn read shows) and a trailing
//! checksum line. A commit reads the previous version under the lock and
//! writes `counter + 1`, and appends the counter it wrote to a local
//! acknowledgement file, so `check` can tell lost, duplicated and torn
//! updates apart.
//!
//! ```text
//! nfs_workload counter --file F --style flock|posix --count N --acks DIR [--allow-local-locks]
//! nfs_workload batch   --files A,B --style S --count N --stamp S
//! nfs_workload check   --file F --expect N [--acks DIR] [--plain]
//! nfs_workload batch-check --files A,B --expect N
//! nfs_workload reader  --files F[,G] --secs S [--raw]
//! nfs_workload hold    --file F --style S --ms MS
//! nfs_workload wait    --file F --style S
//! nfs_workload try     --file F --style S
//! nfs_workload now
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;

use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::{Parser, Subcommand, ValueEnum};
use txfile::{Batch, LockStyle, Options, TxFile};

#[derive(Parser)]
#[command(about = "Workload of the NFS test (tests/nfs/run.sh)")]
struct Args {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Clone, Copy, ValueEnum)]
enum Style {
    Flock,
    Posix,
}

impl Style {
    fn options(self, allow_local_locks: bool) -> Options {
        let style = match self {
            Style::Flock => LockStyle::Flock,
            Style::Posix => LockStyle::Posix,
        };
        let options = Options::new()
            .lock_style(style)
            .allow_local_locks(allow_local_locks);
        // The deliberately broken protocol of `run.sh --mode no-nfs-revalidate`.
        if std::env::var_os("TXNFS_MUTANT").is_some_and(|m| m == "no-nfs-revalidate") {
            #[cfg(txfile_mutants)]
            return options.mutant(txfile::Mutant::NoNfsRevalidate);
            #[cfg(not(txfile_mutants))]
            panic!("TXNFS_MUTANT: this build has no mutants (build with --cfg txfile_mutants)");
        }
        options
    }
}

#[derive(Subcommand)]
enum Cmd {
    /// Increments the counter in FILE COUNT times, one transaction each.
    Counter {
        #[arg(long)]
        file: String,
        #[arg(long, value_enum)]
        style: Style,
        #[arg(long)]
        count: u64,
        /// Local directory where this process leaves a file
        /// `<hostname>-<pid>` with every counter value it committed.
        #[arg(long)]
        acks: String,
        /// Open even on a mount whose locks stay local to this host.
        #[arg(long)]
        allow_local_locks: bool,
    },
    /// Commits COUNT batches over two files, both members stamped alike.
    Batch {
        #[arg(long, value_delimiter = ',')]
        files: Vec<String>,
        #[arg(long, value_enum)]
        style: Style,
        #[arg(long)]
        count: u64,
        #[arg(long)]
        stamp: String,
    },
    /// Checks FILE: one complete version, counter EXPECT, every value in
    /// 1..=EXPECT acknowledged exactly once.
    Check {
        #[arg(long)]
        file: String,
        #[arg(long)]
        expect: u64,
        #[arg(long)]
        acks: Option<String>,
        /// The file holds a bare decimal counter (the naive program's).
        #[arg(long)]
        plain: bool,
    },
    /// Checks the members of a batch: same counter and stamp, counter EXPECT.
    BatchCheck {
        #[arg(long, value_delimiter = ',')]
        files: Vec<String>,
        #[arg(long)]
        expect: u64,
    },
    /// Reads FILE (or the batch FILES) in a loop for SECS seconds, checking
    /// every version.
    Reader {
        #[arg(long, value_delimiter = ',')]
        files: Vec<String>,
        #[arg(long)]
        secs: f64,
        /// Plain `std::fs::read` instead of `TxFile::read`: shows what a
        /// reader without the retry sees.
        #[arg(long)]
        raw: bool,
    },
    /// Takes the lock, says so, holds it MS milliseconds, commits +1.
    Hold {
        #[arg(long)]
        file: String,
        #[arg(long, value_enum)]
        style: Style,
        #[arg(long)]
        ms: u64,
    },
    /// Waits for the lock; prints when it got it (ms since the epoch).
    Wait {
        #[arg(long)]
        file: String,
        #[arg(long, value_enum)]
        style: Style,
    },
    /// Prints the time in ms since the epoch.
    Now,
    /// Tries the lock once, without waiting.
    Try {
        #[arg(long)]
        file: String,
        #[arg(long, value_enum)]
        style: Style,
    },
}

type Result<T> = std::result::Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn now_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

/// A version: header, payload, checksum.
fn render(counter: u64, stamp: &str) -> Vec<u8> {
    let mut body = format!("txnfs {counter} {stamp}\n").into_bytes();
    let len = 1024 + (counter.wrapping_mul(7919) % 12288) as usize;
    let mut x = counter.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    body.extend((0..len).map(|_| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b'a' + (x % 26) as u8
    }));
    body.push(b'\n');
    let crc = crc32fast::hash(&body);
    body.extend_from_slice(format!("{crc:08x}\n").as_bytes());
    body
}

/// The counter and stamp of a complete version, or why it is not one.
fn parse(bytes: &[u8]) -> std::result::Result<(u64, String), String> {
    if bytes.len() < 9 {
        return Err(format!("torn: {} bytes", bytes.len()));
    }
    let (body, tail) = bytes.split_at(bytes.len() - 9);
    let want = format!("{:08x}\n", crc32fast::hash(body));
    if tail != want.as_bytes() {
        return Err(format!("torn: checksum mismatch in {} bytes", bytes.len()));
    }
    let header = body.split(|&b| b == b'\n').next().unwrap_or_default();
    let header = std::str::from_utf8(header).map_err(|e| e.to_string())?;
    let mut words = header.split(' ');
    match (words.next(), words.next(), words.next()) {
        (Some("txnfs"), Some(n), Some(stamp)) => Ok((
            n.parse().map_err(|_| format!("bad counter {n:?}"))?,
            stamp.to_owned(),
        )),
        _ => Err(format!("bad header {header:?}")),
    }
}

fn counter_of(old: Option<&[u8]>) -> Result<u64> {
    match old {
        None => Ok(0),
        Some(bytes) => Ok(parse(bytes)?.0),
    }
}

fn counter(file: &str, style: Style, count: u64, acks: &str, allow: bool) -> Result<()> {
    let handle = match style.options(allow).open(file) {
        Ok(handle) => handle,
        Err(err) => {
            println!("REFUSED {err}");
            std::process::exit(3);
        }
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let acks = format!("{acks}/{}-{}", host.trim(), std::process::id());
    let mut acks = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(acks)?;
    let started = Instant::now();
    let mut last = started;
    let mut max_gap = Duration::ZERO;
    let mut log = String::new();
    let mut deleted_opens = 0;
    let mut failed = None;
    for _ in 0..count {
        let mut wrote = 0;
        let result = handle.update(|old| {
            deleted_opens += u64::from(holds_deleted(file));
            wrote = counter_of(old)? + 1;
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(render(wrote, "c"))
        });
        if let Err(err) = result {
            failed = Some(err);
            break;
        }
        log.push_str(&format!("{wrote}\n"));
        let now = Instant::now();
        max_gap = max_gap.max(now - last);
        last = now;
    }
    // The acknowledgements of the commits that succeeded, even when a later
    // one failed.
    acks.write_all(log.as_bytes())?;
    if let Some(err) = failed {
        return Err(err.into());
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "COUNTER commits={count} secs={secs:.2} max_gap_ms={} deleted_opens={deleted_opens}",
        max_gap.as_millis()
    );
    Ok(())
}

/// Whether this process has `file` open as an unlinked inode (link count 0
/// through its descriptor): the open, under the lock, found a version that
/// another host had already replaced.
#[cfg(unix)]
fn holds_deleted(file: &str) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return false;
    };
    let name = format!("/{file}");
    fds.flatten().any(|fd| {
        std::fs::read_link(fd.path()).is_ok_and(|target| {
            let target = target.to_string_lossy();
            (target.ends_with(&name) || target.ends_with(&format!("{name} (deleted)")))
                && std::fs::metadata(fd.path()).is_ok_and(|m| m.nlink() == 0)
        })
    })
}

#[cfg(not(unix))]
fn holds_deleted(_file: &str) -> bool {
    false
}

fn batch(files: &[String], style: Style, count: u64, stamp: &str) -> Result<()> {
    let members = files
        .iter()
        .map(|f| style.options(false).open(f))
        .collect::<std::result::Result<Vec<TxFile>, _>>()?;
    let batch = Batch::new(members)?;
    let started = Instant::now();
    for i in 0..count {
        batch.update(|olds| {
            let n = counter_of(olds[0])?;
            for old in &olds[1..] {
                if counter_of(*old)? != n {
                    return Err("members disagree before the commit".into());
                }
            }
            let version = render(n + 1, &format!("{stamp}-{i}"));
            Ok::<_, Box<dyn std::error::Error + Send + Sync>>(vec![version; olds.len()])
        })?;
    }
    println!(
        "BATCH commits={count} secs={:.2}",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

fn check(file: &str, expect: u64, acks: Option<&str>, plain: bool) -> Result<bool> {
    let bytes = std::fs::read(file)?;
    let (value, torn) = if plain {
        match std::str::from_utf8(&bytes)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            Some(n) => (n, 0),
            None => (0, 1),
        }
    } else {
        match parse(&bytes) {
            Ok((n, _)) => (n, 0),
            Err(_) => (0, 1),
        }
    };
    let mut seen: BTreeMap<u64, u64> = BTreeMap::new();
    if let Some(dir) = acks {
        for entry in std::fs::read_dir(dir)? {
            for line in std::fs::read_to_string(entry?.path())?.lines() {
                *seen.entry(line.parse()?).or_default() += 1;
            }
        }
    }
    let dups = seen.values().filter(|&&n| n > 1).count();
    // With acknowledgements: every commit that happened is an acknowledged
    // one or a counter value nobody acknowledged (its process failed after
    // the rename); those that do not show in the final count were lost.
    // Without, every missing increment counts (the naive program has no
    // acknowledgements).
    let acked: u64 = seen.values().sum();
    let (lost, unacked) = if acks.is_some() {
        let unacked = (1..=value).filter(|n| !seen.contains_key(n)).count();
        ((acked + unacked as u64).saturating_sub(value), unacked)
    } else {
        (expect.saturating_sub(value), 0)
    };
    println!(
        "CHECK value={value} expect={expect} lost={lost} torn={torn} dup_acks={dups} \
         unacked={unacked} acked={acked}"
    );
    let complete = acks.is_none() || acked == expect;
    Ok(lost == 0 && torn == 0 && dups == 0 && unacked == 0 && value == expect && complete)
}

fn batch_check(files: &[String], expect: u64) -> Result<bool> {
    let versions = files
        .iter()
        .map(|f| {
            std::fs::read(f)
                .map_err(|e| e.to_string())
                .and_then(|b| parse(&b))
        })
        .collect::<Vec<_>>();
    let agree = versions.windows(2).all(|w| w[0] == w[1]);
    let value = versions[0].as_ref().map_or(0, |v| v.0);
    println!(
        "BATCHCHECK value={value} expect={expect} agree={} torn={}",
        u8::from(agree),
        versions.iter().filter(|v| v.is_err()).count()
    );
    Ok(agree && value == expect && versions.iter().all(|v| v.is_ok()))
}

fn reader(files: &[String], secs: f64, raw: bool) -> Result<bool> {
    let deadline = Instant::now() + Duration::from_secs_f64(secs);
    let (mut reads, mut torn, mut mixed, mut errors, mut stale) = (0u64, 0u64, 0u64, 0u64, 0u64);
    let mut last_error = String::new();
    let batch = if files.len() > 1 {
        Some(Batch::open(files)?)
    } else {
        None
    };
    let single = TxFile::open(&files[0])?;
    while Instant::now() < deadline {
        let got: std::result::Result<Vec<Option<Vec<u8>>>, std::io::Error> = if raw {
            match std::fs::read(&files[0]) {
                Ok(b) => Ok(vec![Some(b)]),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(vec![None]),
                Err(e) => Err(e),
            }
        } else if let Some(batch) = &batch {
            batch.read().map_err(std::io::Error::from)
        } else {
            single.read().map(|v| vec![v]).map_err(std::io::Error::from)
        };
        match got {
            Ok(versions) => {
                reads += 1;
                let parsed: Vec<_> = versions.iter().flatten().map(|b| parse(b)).collect();
                torn += parsed.iter().filter(|p| p.is_err()).count() as u64;
                if parsed.windows(2).any(|w| w[0] != w[1]) {
                    mixed += 1;
                }
            }
            Err(e) => {
                if e.kind() == std::io::ErrorKind::StaleNetworkFileHandle {
                    stale += 1;
                }
                errors += 1;
                last_error = e.to_string();
            }
        }
    }
    println!(
        "READER raw={} reads={reads} torn={torn} mixed={mixed} errors={errors} estale={stale} last_error={last_error:?}",
        u8::from(raw)
    );
    Ok(torn == 0 && mixed == 0 && (raw || errors == 0))
}

fn main() -> ExitCode {
    let args = Args::parse();
    let result = match args.cmd {
        Cmd::Counter {
            file,
            style,
            count,
            acks,
            allow_local_locks,
        } => counter(&file, style, count, &acks, allow_local_locks).map(|()| true),
        Cmd::Batch {
            files,
            style,
            count,
            stamp,
        } => batch(&files, style, count, &stamp).map(|()| true),
        Cmd::Check {
            file,
            expect,
            acks,
            plain,
        } => check(&file, expect, acks.as_deref(), plain),
        Cmd::BatchCheck { files, expect } => batch_check(&files, expect),
        Cmd::Reader { files, secs, raw } => reader(&files, secs, raw),
        Cmd::Hold { file, style, ms } => (|| {
            let handle = style.options(false).open(&file)?;
            let mut tx = handle.begin()?;
            println!("LOCKED pid={} at_ms={}", std::process::id(), now_ms());
            std::thread::sleep(Duration::from_millis(ms));
            let n = counter_of(tx.old_bytes()?)?;
            tx.write_all(&render(n + 1, "hold"))?;
            tx.commit()?;
            println!("RELEASED at_ms={}", now_ms());
            Ok(true)
        })(),
        Cmd::Wait { file, style } => (|| {
            let handle = style.options(false).open(&file)?;
            let asked = now_ms();
            let mut tx = handle.begin()?;
            println!("GOT at_ms={} waited_ms={}", now_ms(), now_ms() - asked);
            let n = counter_of(tx.old_bytes()?)?;
            tx.write_all(&render(n + 1, "wait"))?;
            tx.commit()?;
            Ok(true)
        })(),
        Cmd::Now => {
            println!("{}", now_ms());
            Ok(true)
        }
        Cmd::Try { file, style } => (|| {
            let handle = style.options(false).open(&file)?;
            let got = handle.try_begin()?.is_some();
            println!("TRY got={}", if got { "yes" } else { "no" });
            Ok(true)
        })(),
    };
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(err) => {
            let mut msg = err.to_string();
            let mut source = err.source();
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            println!("ERROR {msg}");
            ExitCode::from(2)
        }
    }
}
