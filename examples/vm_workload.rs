//! Workload for the real-kernel crash test (`tests/vm/run.sh`).
//!
//! The host script packs this program, built statically, into an initramfs
//! and boots a Linux VM on a scratch disk. The program has these modes:
//!
//! - `write`: starts several writer processes (`writer`), each running txfile
//!   transactions on a few target files and printing `ACK <file> <counter>
//!   <tag>` on standard output (the serial console) after each commit returns;
//!   after `--crash-after-ms` it panics the kernel through
//!   `/proc/sysrq-trigger`.
//! - `check`: after the reboot, checks that every target holds one complete
//!   version (checksum), that no acknowledged commit was lost (the counters
//!   acknowledged in the previous boot come in as `--floors`), then runs one
//!   more transaction on each target and checks that no temporary file is
//!   left.
//! - `floors`: runs on the host; reads serial logs and prints the highest
//!   acknowledged counter per target, to pass to the next `check`.
//!
//! Every version is a small text document: a header (target name, counter,
//! writer, boot), a pseudo-random payload of varying length (so that versions
//! span one or many filesystem blocks) and a trailing checksum line over all
//! the bytes before it. A commit reads the previous version under the lock
//! and writes `counter + 1`, so counters on one target go up by one per
//! commit whichever writer made it.
//!
//! Batch (multi-file) commits: every commit goes through [`commit_group`],
//! which takes a [`Group`] of targets. Today a group always has one member
//! and the commit is a single-file transaction; when txfile gains Batch
//! commits, groups of several targets committed together slot in there, and
//! [`check_targets`] already verifies that the members of a group carry the
//! same batch stamp (`batch` header) in their latest versions.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use txfile::Options;

const USAGE: &str = "\
usage:
  vm_workload write  --dir DIR [--writers N] [--files N] [--mutant none|no-file-fsync|no-dir-fsync]
                     [--boot ID] [--crash-after-ms MS] [--iterations N]
  vm_workload writer --dir DIR --id N [--files N] [--mutant M] [--boot ID] [--iterations N]
  vm_workload check  --dir DIR [--files N] [--floors f0:12,f1:3] [--boot ID]
  vm_workload floors [--base f0:12,...] LOG...";

/// Target names, in the order writers and the checker know them.
fn target_name(index: usize) -> String {
    format!("f{index}")
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((mode, rest)) = args.split_first() else {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    };
    let result = match mode.as_str() {
        "write" => Args::parse(rest).and_then(|a| write_mode(&a)),
        "writer" => Args::parse(rest).and_then(|a| writer_mode(&a)),
        "check" => Args::parse(rest).and_then(|a| check_mode(&a)),
        "floors" => Args::parse(rest).and_then(|a| floors_mode(&a)),
        _ => Err(format!("unknown mode {mode:?}\n{USAGE}")),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            say(&format!("WORKLOAD ERROR {mode}: {e}"));
            ExitCode::from(2)
        }
    }
}

// ---------------------------------------------------------------- arguments

#[derive(Debug, Default)]
struct Args {
    dir: Option<PathBuf>,
    writers: usize,
    files: usize,
    id: usize,
    mutant: String,
    boot: String,
    crash_after_ms: u64,
    iterations: u64,
    floors: String,
    base: String,
    positional: Vec<String>,
}

impl Args {
    fn parse(args: &[String]) -> Result<Args, String> {
        let mut a = Args {
            writers: 3,
            files: 4,
            mutant: "none".into(),
            boot: "0".into(),
            ..Args::default()
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            if !flag.starts_with("--") {
                a.positional.push(flag.clone());
                continue;
            }
            let value = it
                .next()
                .ok_or_else(|| format!("{flag} needs a value"))?
                .clone();
            let number = |v: &str| v.parse::<u64>().map_err(|e| format!("{flag} {v}: {e}"));
            match flag.as_str() {
                "--dir" => a.dir = Some(PathBuf::from(value)),
                "--writers" => a.writers = number(&value)? as usize,
                "--files" => a.files = number(&value)? as usize,
                "--id" => a.id = number(&value)? as usize,
                "--mutant" => a.mutant = value,
                "--boot" => a.boot = value,
                "--crash-after-ms" => a.crash_after_ms = number(&value)?,
                "--iterations" => a.iterations = number(&value)?,
                "--floors" => a.floors = value,
                "--base" => a.base = value,
                _ => return Err(format!("unknown flag {flag}")),
            }
        }
        if a.files == 0 || a.files > 64 {
            return Err("--files must be 1..=64".into());
        }
        Ok(a)
    }

    fn dir(&self) -> Result<&Path, String> {
        self.dir
            .as_deref()
            .ok_or_else(|| "--dir is required".to_string())
    }

    fn options(&self) -> Result<Options, String> {
        let options = Options::new()
            .durability(txfile::Durability::Full)
            .timeout(Duration::from_secs(120));
        Ok(match self.mutant.as_str() {
            "none" | "correct" => options,
            "no-file-fsync" => options.mutant(txfile::Mutant::NoFileFsync),
            "no-dir-fsync" => options.mutant(txfile::Mutant::NoDirFsync),
            other => return Err(format!("unknown mutant {other:?}")),
        })
    }
}

// ------------------------------------------------------------------ output

/// Writes one line to standard output in a single `write`, so that lines of
/// concurrent writer processes on the console do not interleave.
fn say(line: &str) {
    let mut out = io::stdout().lock();
    let mut buf = String::with_capacity(line.len() + 1);
    buf.push_str(line);
    buf.push('\n');
    let _ = out.write_all(buf.as_bytes());
    let _ = out.flush();
}

/// The acknowledgement of a returned commit. The tag is a checksum of the
/// rest, so that a line mangled by kernel messages on the console, or cut
/// off by the crash, is never read as a (possibly higher) counter.
fn ack_line(name: &str, counter: u64) -> String {
    let body = format!("{name} {counter}");
    format!("ACK {body} {:08x}", fnv64(body.as_bytes()) as u32)
}

fn parse_ack(line: &str) -> Option<(String, u64)> {
    let start = line.find("ACK ")?;
    let mut parts = line[start + 4..].split_whitespace();
    let (name, counter, tag) = (parts.next()?, parts.next()?, parts.next()?);
    let counter: u64 = counter.parse().ok()?;
    if ack_line(name, counter) == format!("ACK {name} {counter} {tag}") {
        Some((name.to_string(), counter))
    } else {
        None
    }
}

// ---------------------------------------------------------------- versions

fn fnv64(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

/// xorshift64*: enough randomness for sizes and choices.
#[derive(Debug)]
struct Rng(u64);

impl Rng {
    fn seeded(salt: u64) -> Rng {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        Rng((nanos
            ^ (u64::from(std::process::id()) << 32)
            ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15))
            | 1)
    }

    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

/// One committed version of one target, as decoded from its bytes.
#[derive(Debug, PartialEq, Eq)]
struct Version {
    file: String,
    counter: u64,
    writer: String,
    boot: String,
    /// Stamp shared by the members of one batch commit; `-` for a
    /// single-file commit.
    batch: String,
}

fn encode(v: &Version, payload_len: usize, rng: &mut Rng) -> Vec<u8> {
    let mut text = format!(
        "txvm 1\nfile {}\ncounter {}\nwriter {}\nboot {}\nbatch {}\npayload {}\n",
        v.file, v.counter, v.writer, v.boot, v.batch, payload_len
    );
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut payload = Vec::with_capacity(payload_len);
    while payload.len() < payload_len {
        if payload.len() % 64 == 63 {
            payload.push(b'\n');
        } else {
            payload.push(ALPHABET[rng.below(ALPHABET.len() as u64) as usize]);
        }
    }
    let mut bytes = std::mem::take(&mut text).into_bytes();
    bytes.extend_from_slice(&payload);
    bytes.push(b'\n');
    let sum = fnv64(&bytes);
    bytes.extend_from_slice(format!("sum {sum:016x}\n").as_bytes());
    bytes
}

fn decode(bytes: &[u8]) -> Result<Version, String> {
    if bytes.is_empty() {
        return Err("empty file".into());
    }
    let body_end = bytes
        .strip_suffix(b"\n")
        .and_then(|b| b.iter().rposition(|&c| c == b'\n'))
        .map(|i| i + 1)
        .ok_or_else(|| format!("no checksum line ({} bytes)", bytes.len()))?;
    let (body, sum_line) = bytes.split_at(body_end);
    let sum_line =
        std::str::from_utf8(sum_line).map_err(|_| "checksum line is not text".to_string())?;
    let want = sum_line
        .trim_end()
        .strip_prefix("sum ")
        .and_then(|h| u64::from_str_radix(h, 16).ok())
        .ok_or_else(|| format!("bad checksum line ({} bytes)", bytes.len()))?;
    if fnv64(body) != want {
        return Err(format!("checksum mismatch ({} bytes)", bytes.len()));
    }
    let text = std::str::from_utf8(body).map_err(|_| "body is not text".to_string())?;
    let mut fields = BTreeMap::new();
    let mut lines = text.lines();
    if lines.next() != Some("txvm 1") {
        return Err("bad magic".into());
    }
    for line in lines.by_ref() {
        let (k, v) = line.split_once(' ').ok_or("bad header line")?;
        fields.insert(k, v);
        if k == "payload" {
            break;
        }
    }
    let get = |k: &str| {
        fields
            .get(k)
            .map(|s| s.to_string())
            .ok_or(format!("no {k}"))
    };
    Ok(Version {
        file: get("file")?,
        counter: get("counter")?.parse().map_err(|_| "bad counter")?,
        writer: get("writer")?,
        boot: get("boot")?,
        batch: get("batch")?,
    })
}

/// Payload sizes: half fit in one 4 KiB block, half span up to twelve.
fn payload_len(rng: &mut Rng) -> usize {
    if rng.below(2) == 0 {
        rng.below(3500) as usize
    } else {
        4096 + rng.below(44 * 1024) as usize
    }
}

// ------------------------------------------------------------ write/writer

fn write_mode(a: &Args) -> Result<ExitCode, String> {
    let dir = a.dir()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut children = Vec::new();
    for id in 0..a.writers {
        let child = Command::new(&exe)
            .arg("writer")
            .args(["--dir", &dir.to_string_lossy()])
            .args(["--id", &id.to_string()])
            .args(["--files", &a.files.to_string()])
            .args(["--mutant", &a.mutant])
            .args(["--boot", &a.boot])
            .args(["--iterations", &a.iterations.to_string()])
            .spawn()
            .map_err(|e| format!("spawn writer {id}: {e}"))?;
        children.push(child);
    }
    say(&format!(
        "WRITERS STARTED writers={} files={} mutant={} crash_after_ms={}",
        a.writers, a.files, a.mutant, a.crash_after_ms
    ));
    if a.crash_after_ms > 0 {
        std::thread::sleep(Duration::from_millis(a.crash_after_ms));
        say("CRASH NOW");
        // Panics the kernel: nothing after this write runs.
        std::fs::write("/proc/sysrq-trigger", b"c").map_err(|e| format!("sysrq: {e}"))?;
        std::thread::sleep(Duration::from_secs(60));
        return Err("still alive 60 s after the sysrq crash".into());
    }
    let mut failed = 0;
    for mut child in children {
        if !child.wait().map_err(|e| e.to_string())?.success() {
            failed += 1;
        }
    }
    say(&format!("WRITERS DONE failed={failed}"));
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Targets committed together. One member today; several once txfile has
/// Batch commits.
#[derive(Debug)]
struct Group {
    members: Vec<usize>,
}

fn writer_mode(a: &Args) -> Result<ExitCode, String> {
    let dir = a.dir()?;
    let options = a.options()?;
    let handles = (0..a.files)
        .map(|i| {
            let path = dir.join(target_name(i));
            let path = path.to_str().ok_or("non-UTF-8 path")?.to_string();
            options.open(&path).map_err(|e| format!("open {path}: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    let mut rng = Rng::seeded(a.id as u64 + 1);
    let writer = format!("w{}", a.id);
    let mut done = 0u64;
    while a.iterations == 0 || done < a.iterations {
        let group = Group {
            members: vec![rng.below(a.files as u64) as usize],
        };
        for (name, counter) in commit_group(&handles, &group, &writer, &a.boot, &mut rng)? {
            say(&ack_line(&name, counter));
        }
        done += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// Commits one new version of every member of `group` and returns
/// `(target, counter)` for each, once the commit has returned.
fn commit_group(
    handles: &[txfile::TxFile],
    group: &Group,
    writer: &str,
    boot: &str,
    rng: &mut Rng,
) -> Result<Vec<(String, u64)>, String> {
    // Batch commits slot in here: lock all members, write each, commit them
    // as one, with a shared `batch` stamp. Until then: one member.
    let [index] = group.members[..] else {
        return Err("batch commits are not supported yet".into());
    };
    let handle = &handles[index];
    let name = target_name(index);
    let size = payload_len(rng);
    let next = |old: Option<&[u8]>| -> Result<u64, String> {
        match old {
            None => Ok(1),
            Some(bytes) => match decode(bytes) {
                Ok(v) if v.file == name => Ok(v.counter + 1),
                Ok(v) => Err(format!("{name} holds a version of {}", v.file)),
                Err(e) => Err(format!("{name} holds no complete version: {e}")),
            },
        }
    };
    let version = |counter| Version {
        file: name.clone(),
        counter,
        writer: writer.to_string(),
        boot: boot.to_string(),
        batch: "-".into(),
    };
    let committed = if rng.below(2) == 0 {
        // The closure API.
        let mut counter = 0;
        let mut local = Rng(rng.next() | 1);
        handle
            .update(|old| -> Result<Vec<u8>, String> {
                counter = next(old)?;
                Ok(encode(&version(counter), size, &mut local))
            })
            .map_err(|e| violation_or_error(&name, e))?;
        counter
    } else {
        // The streaming API, written in uneven pieces.
        let mut tx = handle.begin().map_err(|e| format!("begin {name}: {e}"))?;
        let old = tx.old_bytes().map_err(|e| format!("read {name}: {e}"))?;
        let counter = next(old).map_err(|e| format!("VIOLATION {e}"))?;
        let bytes = encode(&version(counter), size, rng);
        let mut rest = &bytes[..];
        while !rest.is_empty() {
            let n = (1 + rng.below(9000) as usize).min(rest.len());
            tx.write_all(&rest[..n])
                .map_err(|e| format!("write {name}: {e}"))?;
            rest = &rest[n..];
        }
        tx.commit().map_err(|e| format!("commit {name}: {e}"))?;
        counter
    };
    Ok(vec![(name, committed)])
}

fn violation_or_error(name: &str, e: txfile::Error) -> String {
    match e {
        txfile::Error::Aborted { source, .. } => format!("VIOLATION {source}"),
        e => format!("update {name}: {e}"),
    }
}

// -------------------------------------------------------------------- check

fn parse_floors(text: &str) -> Result<BTreeMap<String, u64>, String> {
    let mut floors = BTreeMap::new();
    for item in text.split(',').filter(|s| !s.is_empty() && *s != "-") {
        let (name, n) = item
            .split_once(':')
            .ok_or_else(|| format!("bad floor {item:?}"))?;
        let n: u64 = n.parse().map_err(|_| format!("bad floor {item:?}"))?;
        let entry = floors.entry(name.to_string()).or_insert(0);
        *entry = (*entry).max(n);
    }
    Ok(floors)
}

fn format_floors(floors: &BTreeMap<String, u64>) -> String {
    if floors.is_empty() {
        return "-".into();
    }
    let mut out = String::new();
    for (name, n) in floors {
        if !out.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "{name}:{n}");
    }
    out
}

fn is_temp_of(target: &str, candidate: &str) -> bool {
    candidate
        .strip_prefix(&format!(".{target}."))
        .and_then(|rest| rest.strip_suffix(".txtmp"))
        .is_some_and(|r| r.len() == 8 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

fn temps(dir: &Path, target: &str) -> Result<Vec<String>, String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(|e| format!("list {}: {e}", dir.display()))? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy();
        if is_temp_of(target, &name) {
            found.push(name.into_owned());
        }
    }
    Ok(found)
}

fn check_mode(a: &Args) -> Result<ExitCode, String> {
    let started = Instant::now();
    let dir = a.dir()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let floors = parse_floors(&a.floors)?;
    let groups: Vec<Group> = (0..a.files).map(|i| Group { members: vec![i] }).collect();
    let (mut violations, found) = check_targets(dir, &groups, &floors)?;

    // One more transaction on each target, with the correct protocol: it
    // must sweep the temporary files the crash left and commit durably.
    let options = Options::new().timeout(Duration::from_secs(60));
    let mut rng = Rng::seeded(0xc4ec);
    for (i, &found) in found.iter().enumerate() {
        let name = target_name(i);
        let path = dir.join(&name);
        let path = path.to_str().ok_or("non-UTF-8 path")?;
        let handle = options
            .open(path)
            .map_err(|e| format!("open {name}: {e}"))?;
        let counter = found.max(floors.get(&name).copied().unwrap_or(0)) + 1;
        let version = Version {
            file: name.clone(),
            counter,
            writer: "check".into(),
            boot: a.boot.clone(),
            batch: "-".into(),
        };
        let mut tx = handle.begin().map_err(|e| format!("begin {name}: {e}"))?;
        let bytes = encode(&version, payload_len(&mut rng), &mut rng);
        tx.write_all(&bytes)
            .map_err(|e| format!("write {name}: {e}"))?;
        tx.commit().map_err(|e| format!("commit {name}: {e}"))?;
        drop(handle);
        say(&ack_line(&name, counter));
        match std::fs::read(path).map(|b| decode(&b)) {
            Ok(Ok(v)) if v == version => {}
            other => {
                violations += 1;
                say(&format!(
                    "VIOLATION {name}: after the check's commit it reads {other:?}"
                ));
            }
        }
        let left = temps(dir, &name)?;
        if !left.is_empty() {
            violations += 1;
            say(&format!(
                "VIOLATION {name}: temporary files remain after a transaction: {left:?}"
            ));
        }
    }
    say(&format!(
        "RESULT {} violations={violations} files={} elapsed_ms={}",
        if violations == 0 { "PASS" } else { "FAIL" },
        a.files,
        started.elapsed().as_millis()
    ));
    Ok(if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Checks every target after a crash. Returns the violation count and the
/// counter found in each target (0 when missing or unreadable).
fn check_targets(
    dir: &Path,
    groups: &[Group],
    floors: &BTreeMap<String, u64>,
) -> Result<(usize, Vec<u64>), String> {
    let mut violations = 0;
    let count = groups
        .iter()
        .flat_map(|g| &g.members)
        .max()
        .map_or(0, |m| m + 1);
    let mut found = vec![0; count];
    for group in groups {
        let mut stamps = Vec::new();
        for &i in &group.members {
            let name = target_name(i);
            let floor = floors.get(&name).copied().unwrap_or(0);
            let left = temps(dir, &name)?.len();
            let mut problem = None;
            match std::fs::read(dir.join(&name)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if floor > 0 {
                        problem = Some(format!("missing, but counter {floor} was acknowledged"));
                    }
                    say(&format!("CHECK {name} missing floor={floor} temps={left}"));
                }
                Err(e) => problem = Some(format!("unreadable: {e}")),
                Ok(bytes) => match decode(&bytes) {
                    Err(e) => problem = Some(format!("not a complete version: {e}")),
                    Ok(v) => {
                        found[i] = v.counter;
                        say(&format!(
                            "CHECK {name} counter={} floor={floor} writer={} boot={} bytes={} temps={left}",
                            v.counter,
                            v.writer,
                            v.boot,
                            bytes.len()
                        ));
                        if v.file != name {
                            problem = Some(format!("holds a version of {}", v.file));
                        } else if v.counter < floor {
                            problem = Some(format!(
                                "lost acknowledged commits: counter {} < acknowledged {floor}",
                                v.counter
                            ));
                        }
                        stamps.push(v.batch);
                    }
                },
            }
            if let Some(p) = problem {
                violations += 1;
                say(&format!("VIOLATION {name}: {p}"));
            }
        }
        // Members of one batch commit must come from the same batch.
        if group.members.len() > 1 && stamps.windows(2).any(|w| w[0] != w[1]) {
            violations += 1;
            say(&format!(
                "VIOLATION batch {:?}: members disagree: {stamps:?}",
                group.members
            ));
        }
    }
    Ok((violations, found))
}

// ------------------------------------------------------------------- floors

fn floors_mode(a: &Args) -> Result<ExitCode, String> {
    let mut floors = parse_floors(&a.base)?;
    let mut acks = 0u64;
    for log in &a.positional {
        let bytes = std::fs::read(log).map_err(|e| format!("read {log}: {e}"))?;
        for line in String::from_utf8_lossy(&bytes).lines() {
            if let Some((name, counter)) = parse_ack(line) {
                acks += 1;
                let entry = floors.entry(name).or_insert(0);
                *entry = (*entry).max(counter);
            }
        }
    }
    say(&format!("floors={} acks={acks}", format_floors(&floors)));
    Ok(ExitCode::SUCCESS)
}
