//! Workload for the real-kernel crash test (`tests/vm/run.sh`).
//!
//! The host script packs this program, built statically, into an initramfs
//! and boots a Linux VM on a scratch disk. The program has these modes:
//!
//! - `write`: starts several writer processes (`writer`), each running txfile
//!   commits on a few targets and printing `ACK <group> <counter> <tag>` on
//!   standard output (the serial console) after each commit returns; after
//!   `--crash-after-ms` it panics the kernel through `/proc/sysrq-trigger`.
//! - `check`: after the reboot, recovers interrupted batch commits once with
//!   `txfile::recover`, then checks that every target holds one complete
//!   version (checksum), that no acknowledged commit was lost (the counters
//!   acknowledged in the previous boot come in as `--floors`) and that the
//!   members of every batch group agree, then runs one more transaction on
//!   each group and checks that it reads back and that no temporary file and
//!   no journal is left.
//! - `floors`: runs on the host; reads serial logs and prints the highest
//!   acknowledged counter per group, to pass to the next `check`.
//!
//! Targets come in commit groups ([`Layout`]): `--files` single targets
//! `f0, f1, ..`, each committed alone (half through `TxFile::update`, half
//! through `begin`/`write_all`/`commit`), and `--groups` batch groups `g0,
//! g1, ..` of two and three members alternately (`g0a g0b`, `g1a g1b g1c`),
//! always committed together through `txfile::Batch` (half through
//! `Batch::update`, half through `Batch::begin`/`member(i)`/`commit`). A batch
//! group's members are written by nothing else, so after any crash they must
//! all carry the same `batch` stamp and counter.
//!
//! Every version is a small text document: a header (target name, counter,
//! writer, boot, batch stamp), a pseudo-random payload of varying length (so
//! that versions span one or many filesystem blocks) and a trailing checksum
//! line over all the bytes before it. A commit reads the previous versions
//! under the locks and writes `counter + 1`, so a group's counter goes up by
//! one per commit whichever writer made it.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use txfile::{Batch, Options, TxFile};

const USAGE: &str = "\
usage:
  vm_workload write  --dir DIR [--writers N] [--files N] [--groups N] [--mutant MUTANT]
                     [--boot ID] [--crash-after-ms MS] [--iterations N]
  vm_workload writer --dir DIR --id N [--files N] [--groups N] [--mutant MUTANT] [--boot ID]
                     [--iterations N]
  vm_workload check  --dir DIR [--files N] [--groups N] [--floors f0:12,g0:3] [--boot ID]
  vm_workload floors [--base f0:12,...] LOG...
MUTANT: none | no-file-fsync | no-dir-fsync | batch-no-journal-fsync | batch-rename-before-journal";

/// Targets committed together: one single target, or the members of a
/// batch group. `name` is what acknowledgements and floors refer to.
#[derive(Debug)]
struct Group {
    name: String,
    /// Indexes into [`Layout::targets`].
    members: Vec<usize>,
}

impl Group {
    fn is_batch(&self) -> bool {
        self.members.len() > 1
    }
}

/// Every target and every commit group, in the order writers and the
/// checker know them: single targets `f0..` first, then batch groups `g0..`
/// of two and three members alternately.
#[derive(Debug)]
struct Layout {
    targets: Vec<String>,
    groups: Vec<Group>,
}

impl Layout {
    fn new(files: usize, batch_groups: usize) -> Layout {
        let mut targets = Vec::new();
        let mut groups = Vec::new();
        for i in 0..files {
            groups.push(Group {
                name: format!("f{i}"),
                members: vec![targets.len()],
            });
            targets.push(format!("f{i}"));
        }
        for g in 0..batch_groups {
            let name = format!("g{g}");
            let size = if g % 2 == 0 { 2 } else { 3 };
            let mut members = Vec::new();
            for m in 0..size {
                members.push(targets.len());
                targets.push(format!("{name}{}", char::from(b'a' + m)));
            }
            groups.push(Group { name, members });
        }
        Layout { targets, groups }
    }
}

/// Whether an acknowledged group name is a batch group's.
fn is_batch_name(name: &str) -> bool {
    name.starts_with('g')
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
    groups: usize,
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
            groups: 2,
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
                "--groups" => a.groups = number(&value)? as usize,
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
        if a.groups > 26 {
            return Err("--groups must be 0..=26".into());
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
        #[cfg(not(txfile_mutants))]
        return match self.mutant.as_str() {
            "none" | "correct" => Ok(options),
            other => Err(format!(
                "mutant {other:?}: this build has no mutants (build with --cfg txfile_mutants)"
            )),
        };
        #[cfg(txfile_mutants)]
        Ok(match self.mutant.as_str() {
            "none" | "correct" => options,
            "no-file-fsync" => options.mutant(txfile::Mutant::NoFileFsync),
            "no-dir-fsync" => options.mutant(txfile::Mutant::NoDirFsync),
            "batch-no-journal-fsync" => options.mutant(txfile::Mutant::BatchNoJournalFsync),
            "batch-rename-before-journal" => {
                options.mutant(txfile::Mutant::BatchRenameBeforeJournal)
            }
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
            .args(["--groups", &a.groups.to_string()])
            .args(["--mutant", &a.mutant])
            .args(["--boot", &a.boot])
            .args(["--iterations", &a.iterations.to_string()])
            .spawn()
            .map_err(|e| format!("spawn writer {id}: {e}"))?;
        children.push(child);
    }
    say(&format!(
        "WRITERS STARTED writers={} files={} groups={} mutant={} crash_after_ms={}",
        a.writers, a.files, a.groups, a.mutant, a.crash_after_ms
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

fn writer_mode(a: &Args) -> Result<ExitCode, String> {
    let dir = a.dir()?;
    let options = a.options()?;
    let layout = Layout::new(a.files, a.groups);
    let handles = open_all(dir, &layout, &options)?;
    let batches = batches_of(&layout, &handles)?;
    let mut rng = Rng::seeded(a.id as u64 + 1);
    let writer = format!("w{}", a.id);
    let mut done = 0u64;
    while a.iterations == 0 || done < a.iterations {
        // A third of the commits are batch commits (when there are groups).
        let group = if a.groups > 0 && rng.below(3) == 0 {
            a.files + rng.below(a.groups as u64) as usize
        } else {
            rng.below(a.files as u64) as usize
        };
        let ctx = Commit {
            layout: &layout,
            group: &layout.groups[group],
            writer: &writer,
            boot: &a.boot,
        };
        let counter = match &batches[group] {
            Some(batch) => commit_batch(&ctx, batch, &mut rng)?,
            None => commit_single(&ctx, &handles[ctx.group.members[0]], &mut rng)?,
        };
        say(&ack_line(&ctx.group.name, counter));
        done += 1;
    }
    Ok(ExitCode::SUCCESS)
}

/// A handle on every target, in [`Layout::targets`] order.
fn open_all(dir: &Path, layout: &Layout, options: &Options) -> Result<Vec<TxFile>, String> {
    layout
        .targets
        .iter()
        .map(|name| {
            let path = dir.join(name);
            let path = path.to_str().ok_or("non-UTF-8 path")?.to_string();
            options.open(&path).map_err(|e| format!("open {path}: {e}"))
        })
        .collect()
}

/// The `Batch` of every batch group, `None` for single targets.
fn batches_of(layout: &Layout, handles: &[TxFile]) -> Result<Vec<Option<Batch>>, String> {
    layout
        .groups
        .iter()
        .map(|group| {
            if !group.is_batch() {
                return Ok(None);
            }
            Batch::new(group.members.iter().map(|&i| handles[i].clone()))
                .map(Some)
                .map_err(|e| format!("batch {}: {e}", group.name))
        })
        .collect()
}

/// What one commit of one group needs to know.
struct Commit<'a> {
    layout: &'a Layout,
    group: &'a Group,
    writer: &'a str,
    boot: &'a str,
}

impl Commit<'_> {
    fn member_name(&self, m: usize) -> &str {
        &self.layout.targets[self.group.members[m]]
    }

    /// The group's current counter (0 when no member exists yet), from its
    /// members' previous contents read under the locks. Members that are
    /// not complete versions of themselves, or that disagree, are an error.
    fn current(&self, old: &[Option<&[u8]>]) -> Result<u64, String> {
        let mut seen: Option<(u64, String)> = None;
        for (m, bytes) in old.iter().enumerate() {
            let name = self.member_name(m);
            let state = match bytes {
                None => (0, "missing".to_string()),
                Some(bytes) => match decode(bytes) {
                    Ok(v) if v.file == name => (v.counter, v.batch),
                    Ok(v) => return Err(format!("{name} holds a version of {}", v.file)),
                    Err(e) => return Err(format!("{name} holds no complete version: {e}")),
                },
            };
            match &seen {
                Some(first) if *first != state => {
                    return Err(format!(
                        "batch {} members disagree: {first:?} vs {name} {state:?}",
                        self.group.name
                    ));
                }
                _ => seen = Some(state),
            }
        }
        Ok(seen.map_or(0, |(counter, _)| counter))
    }

    /// Member `m`'s version for group counter `counter`.
    fn version(&self, m: usize, counter: u64, stamp: &str) -> Version {
        Version {
            file: self.member_name(m).to_string(),
            counter,
            writer: self.writer.to_string(),
            boot: self.boot.to_string(),
            batch: stamp.to_string(),
        }
    }

    /// The batch stamp shared by all members of one batch commit.
    fn stamp(&self, counter: u64, rng: &mut Rng) -> String {
        format!(
            "{}.{counter}.{}.{}.{:08x}",
            self.group.name,
            self.writer,
            self.boot,
            rng.next() as u32
        )
    }
}

/// Writes `bytes` to `w` in uneven pieces.
fn write_pieces(w: &mut impl Write, bytes: &[u8], rng: &mut Rng) -> io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = (1 + rng.below(9000) as usize).min(rest.len());
        w.write_all(&rest[..n])?;
        rest = &rest[n..];
    }
    Ok(())
}

/// Commits one new version of a single target; returns its counter once
/// the commit has returned.
fn commit_single(ctx: &Commit<'_>, handle: &TxFile, rng: &mut Rng) -> Result<u64, String> {
    let name = ctx.member_name(0).to_string();
    let size = payload_len(rng);
    if rng.below(2) == 0 {
        // The closure API.
        let mut counter = 0;
        let mut local = Rng(rng.next() | 1);
        handle
            .update(|old| -> Result<Vec<u8>, String> {
                counter = ctx.current(&[old])? + 1;
                Ok(encode(&ctx.version(0, counter, "-"), size, &mut local))
            })
            .map_err(|e| violation_or_error(&name, e))?;
        Ok(counter)
    } else {
        // The streaming API, written in uneven pieces.
        let mut tx = handle.begin().map_err(|e| format!("begin {name}: {e}"))?;
        let old = tx.old_bytes().map_err(|e| format!("read {name}: {e}"))?;
        let counter = ctx.current(&[old]).map_err(|e| format!("VIOLATION {e}"))? + 1;
        let bytes = encode(&ctx.version(0, counter, "-"), size, rng);
        write_pieces(&mut tx, &bytes, rng).map_err(|e| format!("write {name}: {e}"))?;
        tx.commit().map_err(|e| format!("commit {name}: {e}"))?;
        Ok(counter)
    }
}

/// Commits one new version of every member of a batch group as one batch
/// commit, every member carrying the same counter and batch stamp; returns
/// the counter once the commit has returned.
fn commit_batch(ctx: &Commit<'_>, batch: &Batch, rng: &mut Rng) -> Result<u64, String> {
    let name = &ctx.group.name;
    let sizes: Vec<usize> = ctx.group.members.iter().map(|_| payload_len(rng)).collect();
    if rng.below(2) == 0 {
        // The closure API.
        let mut counter = 0;
        let mut local = Rng(rng.next() | 1);
        batch
            .update(|old| -> Result<Vec<Vec<u8>>, String> {
                counter = ctx.current(old)? + 1;
                let stamp = ctx.stamp(counter, &mut local);
                Ok(sizes
                    .iter()
                    .enumerate()
                    .map(|(m, &size)| encode(&ctx.version(m, counter, &stamp), size, &mut local))
                    .collect())
            })
            .map_err(|e| violation_or_error(name, e))?;
        Ok(counter)
    } else {
        // The streaming API: every member written in uneven pieces.
        let mut tx = batch.begin().map_err(|e| format!("begin {name}: {e}"))?;
        let mut old = Vec::new();
        for m in 0..sizes.len() {
            let bytes = tx
                .member(m)
                .old_bytes()
                .map_err(|e| format!("read {}: {e}", ctx.member_name(m)))?;
            old.push(bytes.map(<[u8]>::to_vec));
        }
        let old: Vec<Option<&[u8]>> = old.iter().map(Option::as_deref).collect();
        let counter = ctx.current(&old).map_err(|e| format!("VIOLATION {e}"))? + 1;
        let stamp = ctx.stamp(counter, rng);
        for (m, &size) in sizes.iter().enumerate() {
            let bytes = encode(&ctx.version(m, counter, &stamp), size, rng);
            write_pieces(tx.member(m), &bytes, rng)
                .map_err(|e| format!("write {}: {e}", ctx.member_name(m)))?;
        }
        tx.commit().map_err(|e| format!("commit {name}: {e}"))?;
        Ok(counter)
    }
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

/// Counts the temporary files and journals in `dir` (any target's).
fn leftovers(dir: &Path) -> Result<(Vec<String>, Vec<String>), String> {
    let (mut temps, mut journals) = (Vec::new(), Vec::new());
    for entry in std::fs::read_dir(dir).map_err(|e| format!("list {}: {e}", dir.display()))? {
        let name = entry.map_err(|e| e.to_string())?.file_name();
        let name = name.to_string_lossy().into_owned();
        if name.ends_with(".txtmp") {
            temps.push(name);
        } else if name.ends_with(".txjournal") {
            journals.push(name);
        }
    }
    Ok((temps, journals))
}

fn check_mode(a: &Args) -> Result<ExitCode, String> {
    let started = Instant::now();
    let dir = a.dir()?;
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let dir_str = dir.to_str().ok_or("non-UTF-8 path")?;
    let floors = parse_floors(&a.floors)?;
    let layout = Layout::new(a.files, a.groups);

    // What the crash left, then recovery through the library, once.
    let (temps, journals) = leftovers(dir)?;
    say(&format!(
        "CRASH LEFT temps={} journals={} {journals:?}",
        temps.len(),
        journals.len()
    ));
    let recovered = txfile::recover(dir_str).map_err(|e| format!("recover: {e}"))?;
    let (_, journals) = leftovers(dir)?;
    say(&format!(
        "RECOVER journals_found={recovered} journals_left={}",
        journals.len()
    ));
    let (mut violations, found) = check_targets(dir, &layout, &floors)?;

    // One more transaction on each group, with the correct protocol: it
    // must commit durably and, with the recovery, leave neither temporary
    // files nor journals.
    let options = Options::new().timeout(Duration::from_secs(60));
    let handles = open_all(dir, &layout, &options)?;
    let batches = batches_of(&layout, &handles)?;
    let mut rng = Rng::seeded(0xc4ec);
    for (g, group) in layout.groups.iter().enumerate() {
        let ctx = Commit {
            layout: &layout,
            group,
            writer: "check",
            boot: &a.boot,
        };
        let counter = found[g].max(floors.get(&group.name).copied().unwrap_or(0)) + 1;
        let stamp = if group.is_batch() {
            ctx.stamp(counter, &mut rng)
        } else {
            "-".to_string()
        };
        let versions: Vec<Version> = (0..group.members.len())
            .map(|m| ctx.version(m, counter, &stamp))
            .collect();
        let read_back = match &batches[g] {
            Some(batch) => {
                let mut tx = batch
                    .begin()
                    .map_err(|e| format!("begin {}: {e}", group.name))?;
                for (m, version) in versions.iter().enumerate() {
                    let bytes = encode(version, payload_len(&mut rng), &mut rng);
                    tx.member(m)
                        .write_all(&bytes)
                        .map_err(|e| format!("write {}: {e}", version.file))?;
                }
                tx.commit()
                    .map_err(|e| format!("commit {}: {e}", group.name))?;
                batch
                    .read()
                    .map_err(|e| format!("read {}: {e}", group.name))?
            }
            None => {
                let handle = &handles[group.members[0]];
                let mut tx = handle
                    .begin()
                    .map_err(|e| format!("begin {}: {e}", group.name))?;
                let bytes = encode(&versions[0], payload_len(&mut rng), &mut rng);
                tx.write_all(&bytes)
                    .map_err(|e| format!("write {}: {e}", group.name))?;
                tx.commit()
                    .map_err(|e| format!("commit {}: {e}", group.name))?;
                vec![std::fs::read(dir.join(&group.name)).ok()]
            }
        };
        say(&ack_line(&group.name, counter));
        for (version, bytes) in versions.iter().zip(&read_back) {
            let got = bytes.as_deref().map(decode);
            if !matches!(&got, Some(Ok(v)) if v == version) {
                violations += 1;
                say(&format!(
                    "VIOLATION {}: after the check's commit it reads {got:?}",
                    version.file
                ));
            }
        }
    }
    let (temps, journals) = leftovers(dir)?;
    if !temps.is_empty() || !journals.is_empty() {
        violations += 1;
        say(&format!(
            "VIOLATION files remain after a transaction on every group: {temps:?} {journals:?}"
        ));
    }
    say(&format!(
        "RESULT {} violations={violations} files={} groups={} elapsed_ms={}",
        if violations == 0 { "PASS" } else { "FAIL" },
        a.files,
        a.groups,
        started.elapsed().as_millis()
    ));
    Ok(if violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// What the checker found in one target.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    Missing,
    Broken,
    /// Counter and batch stamp.
    Version(u64, String),
}

/// Checks every group after a crash and the recovery. Returns the violation
/// count and the counter found in each group (the highest among its
/// members; 0 when none is readable).
fn check_targets(
    dir: &Path,
    layout: &Layout,
    floors: &BTreeMap<String, u64>,
) -> Result<(usize, Vec<u64>), String> {
    let mut violations = 0;
    let mut found = vec![0; layout.groups.len()];
    for (g, group) in layout.groups.iter().enumerate() {
        let floor = floors.get(&group.name).copied().unwrap_or(0);
        let mut states = Vec::new();
        for &i in &group.members {
            let name = &layout.targets[i];
            let mut problem = None;
            let state = match std::fs::read(dir.join(name)) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    if floor > 0 {
                        problem = Some(format!("missing, but counter {floor} was acknowledged"));
                    }
                    say(&format!("CHECK {name} missing floor={floor}"));
                    Found::Missing
                }
                Err(e) => {
                    problem = Some(format!("unreadable: {e}"));
                    Found::Broken
                }
                Ok(bytes) => match decode(&bytes) {
                    Err(e) => {
                        problem = Some(format!("not a complete version: {e}"));
                        Found::Broken
                    }
                    Ok(v) => {
                        found[g] = found[g].max(v.counter);
                        say(&format!(
                            "CHECK {name} counter={} floor={floor} writer={} boot={} batch={} bytes={}",
                            v.counter,
                            v.writer,
                            v.boot,
                            v.batch,
                            bytes.len()
                        ));
                        if v.file != *name {
                            problem = Some(format!("holds a version of {}", v.file));
                        } else if v.counter < floor {
                            problem = Some(format!(
                                "lost acknowledged commits: counter {} < acknowledged {floor}",
                                v.counter
                            ));
                        }
                        Found::Version(v.counter, v.batch)
                    }
                },
            };
            if let Some(p) = problem {
                violations += 1;
                say(&format!("VIOLATION {name}: {p}"));
            }
            states.push(state);
        }
        // The members of a batch group are only ever committed together:
        // all missing, or all from the same batch commit.
        if group.is_batch() && states.windows(2).any(|w| w[0] != w[1]) {
            violations += 1;
            say(&format!(
                "VIOLATION batch {}: members disagree: {states:?}",
                group.name
            ));
        } else if group.is_batch() {
            say(&format!(
                "CHECK batch {} agrees: {:?}",
                group.name, states[0]
            ));
        }
    }
    Ok((violations, found))
}

// ------------------------------------------------------------------- floors

fn floors_mode(a: &Args) -> Result<ExitCode, String> {
    let mut floors = parse_floors(&a.base)?;
    let (mut acks, mut batch_acks) = (0u64, 0u64);
    for log in &a.positional {
        let bytes = std::fs::read(log).map_err(|e| format!("read {log}: {e}"))?;
        for line in String::from_utf8_lossy(&bytes).lines() {
            if let Some((name, counter)) = parse_ack(line) {
                acks += 1;
                batch_acks += u64::from(is_batch_name(&name));
                let entry = floors.entry(name).or_insert(0);
                *entry = (*entry).max(counter);
            }
        }
    }
    say(&format!(
        "floors={} acks={acks} batch_acks={batch_acks}",
        format_floors(&floors)
    ));
    Ok(ExitCode::SUCCESS)
}
