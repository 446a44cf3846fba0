//! Load: 16 writer processes x 1000 transactions while 4 reader processes
//! call `TxFile::read` in a tight loop. The final count is exact and no
//! reader ever sees a partial or empty file (every version checks itself).
// Windows: under Wine a writer fails with HeldOpen after the 2 s retry, as
// MoveFileExW refuses to replace a file any handle has open and 4 readers in a
// tight loop always have it open (tests/windows.rs covers readers between
// commits). Unix only until the replace stops needing the file closed.
#![cfg(unix)]

mod common;

use std::io::Write;
use std::process::Child;
use std::time::Instant;

use camino::Utf8PathBuf;
use common::{check, disk_tempdir, parse_versioned, role, run_role, versioned};
use txfile::TxFile;

const WRITERS: usize = 16;
const READERS: usize = 4;

fn per_writer() -> u64 {
    txfile_testkit::process::env_or("TXFILE_LOAD_TXNS", 1000)
}

#[test]
fn load_entry() {
    let Some(role) = role() else { return };
    let dir = Utf8PathBuf::from(std::env::var("DIR").expect("DIR"));
    let file = TxFile::open(dir.join("counter")).expect("open");
    let mut out = std::io::stdout();
    match role.as_str() {
        "writer" | "in-place-writer" => {
            let count: u64 = std::env::var("COUNT")
                .expect("COUNT")
                .parse()
                .expect("number");
            for i in 0..count {
                let mut tx = file.begin().expect("begin");
                let n = tx
                    .old_bytes()
                    .expect("read")
                    .map_or(0, |b| parse_versioned(b).expect("complete"));
                // Vary the size so that versions differ in length too.
                let new = versioned(n + 1, (i as usize * 37) % 5000);
                if role == "in-place-writer" {
                    // The mutant: locked, but rewriting the target in place,
                    // in small writes as a buffered writer would.
                    let mut f = std::fs::File::create(dir.join("counter")).expect("truncate");
                    for chunk in new.chunks(256) {
                        f.write_all(chunk).expect("write in place");
                    }
                    tx.rollback();
                } else {
                    tx.write_all(&new).expect("write");
                    tx.commit().expect("commit");
                }
            }
        }
        "reader" => {
            let stop = dir.join("stop");
            let (mut reads, mut bad, mut missing) = (0u64, 0u64, 0u64);
            while !stop.exists() {
                match file.read().expect("read") {
                    Some(bytes) => {
                        reads += 1;
                        if let Err(e) = parse_versioned(&bytes) {
                            bad += 1;
                            eprintln!("torn read: {e}");
                        }
                    }
                    None => missing += 1,
                }
            }
            writeln!(out, "reads={reads} bad={bad} missing={missing}").expect("report");
        }
        other => panic!("unknown role {other}"),
    }
}

fn field(line: &str, name: &str) -> u64 {
    let at = line.find(&format!("{name}=")).expect("field") + name.len() + 1;
    line[at..]
        .split(|c: char| !c.is_ascii_digit())
        .next()
        .expect("digits")
        .parse()
        .expect("number")
}

struct Load {
    total: u64,
    final_value: u64,
    reads: u64,
    bad: u64,
    missing: u64,
    elapsed: std::time::Duration,
}

fn run_load(writer_role: &str, count: u64) -> Load {
    let (_d, dir) = disk_tempdir();
    let target = dir.join("counter");
    std::fs::write(&target, versioned(0, 0)).expect("seed");
    let env = |extra: Option<(&'static str, String)>| {
        let mut env = vec![("DIR", dir.to_string())];
        env.extend(extra);
        env
    };
    let started = Instant::now();
    let readers: Vec<Child> = (0..READERS)
        .map(|_| {
            run_role("load_entry", "reader", &env(None))
                .spawn()
                .expect("spawn reader")
        })
        .collect();
    let writers: Vec<Child> = (0..WRITERS)
        .map(|_| {
            run_role(
                "load_entry",
                writer_role,
                &env(Some(("COUNT", count.to_string()))),
            )
            .spawn()
            .expect("spawn writer")
        })
        .collect();
    for w in writers {
        check(w.wait_with_output().expect("wait"), "writer");
    }
    let elapsed = started.elapsed();
    std::fs::write(dir.join("stop"), "").expect("stop readers");
    let (mut reads, mut bad, mut missing) = (0, 0, 0);
    for r in readers {
        let out = check(r.wait_with_output().expect("wait"), "reader");
        let line = out
            .lines()
            .find(|l| l.contains("reads="))
            .expect("reader report");
        reads += field(line, "reads");
        bad += field(line, "bad");
        missing += field(line, "missing");
    }
    let total = WRITERS as u64 * count;
    let final_value = parse_versioned(&std::fs::read(&target).expect("read")).unwrap_or(0);
    Load {
        total,
        final_value,
        reads,
        bad,
        missing,
        elapsed,
    }
}

#[test]
fn sixteen_writers_four_readers() {
    if role().is_some() {
        return;
    }
    let count = per_writer();
    let load = run_load("writer", count);
    eprintln!(
        "load: {WRITERS} writers x {count} transactions = {} in {:.1}s ({:.0}/s); \
         final count {}; {READERS} readers: {} reads, torn or partial {}, missing {}",
        load.total,
        load.elapsed.as_secs_f64(),
        load.total as f64 / load.elapsed.as_secs_f64(),
        load.final_value,
        load.reads,
        load.bad,
        load.missing
    );
    assert_eq!(load.final_value, load.total, "lost updates");
    assert_eq!(load.bad, 0, "a reader saw a partial file");
    assert_eq!(load.missing, 0, "a reader found no file");
    assert!(load.reads > 0);
}

/// The readers' check can fail: in-place writes show them torn files.
#[test]
fn mutant_in_place_writes_are_seen_torn() {
    if role().is_some() {
        return;
    }
    let load = run_load("in-place-writer", 50);
    eprintln!(
        "in-place mutant: {} reads, {} torn or partial",
        load.reads,
        load.bad + load.missing
    );
    assert!(
        load.bad + load.missing > 0,
        "readers saw no torn file from in-place writers"
    );
}
