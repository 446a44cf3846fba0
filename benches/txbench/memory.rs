//! A streaming transform of a large file through one transaction: peak
//! resident memory must not grow with the file, and throughput is compared
//! with `cp` of the same file in the same run.

use std::fs::File;
use std::io::{BufWriter, Read, Write};
use std::process::Command;
use std::time::Instant;

use camino::Utf8Path;

use txfile_testkit::process::peak_rss_kib;

use crate::fmt_size;

/// The target for peak resident memory of the transforming process.
const LIMIT_KIB: u64 = 16 * 1024;

pub(crate) fn run(dir: &Utf8Path, quick: bool) {
    let (size, rounds) = if quick { (256 << 20, 1) } else { (1 << 30, 3) };
    let source = dir.join("big");
    write_pattern(&source, size);
    let copy = dir.join("big.copy");
    println!(
        "## Memory: streaming transform of a {} file",
        fmt_size(size)
    );
    println!();
    println!(
        "txfile: a child process reads through `old_reader()` in 64 KiB chunks, flips one bit per byte, writes through the transaction's `Write`, commits with Durability::Full. \
         cp: `cp` of the same file to a new name in the same directory; `cp + sync` adds `sync FILE` (fsync). \
         {rounds} interleaved round(s); the file is in the page cache for all."
    );
    println!();
    println!("| round | method | time | MB/s | peak RSS (VmHWM) |");
    println!("|---|---|---|---|---|");
    let mb = size as f64 / 1e6;
    for round in 1..=rounds {
        let secs = command_secs(Command::new("cp").args([source.as_str(), copy.as_str()]));
        println!("| {round} | cp | {secs:.2} s | {:.0} | |", mb / secs);
        std::fs::remove_file(&copy).expect("remove the copy");

        let start = Instant::now();
        command_secs(Command::new("cp").args([source.as_str(), copy.as_str()]));
        command_secs(Command::new("sync").arg(copy.as_str()));
        let secs = start.elapsed().as_secs_f64();
        println!("| {round} | cp + sync | {secs:.2} s | {:.0} | |", mb / secs);
        std::fs::remove_file(&copy).expect("remove the copy");

        let exe = std::env::current_exe().expect("the bench binary's path");
        let out = Command::new(exe)
            .args(["--role", "transform", "--file", source.as_str()])
            .output()
            .expect("run the transform child");
        assert!(
            out.status.success(),
            "transform failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report = String::from_utf8_lossy(&out.stdout);
        let fields: Vec<f64> = report
            .split_whitespace()
            .map(|f| f.parse().expect("the child prints numbers"))
            .collect();
        let [start_kib, peak_kib, secs] = fields[..] else {
            panic!("unexpected transform report {report:?}");
        };
        let verdict = if peak_kib as u64 <= LIMIT_KIB {
            "under"
        } else {
            "OVER"
        };
        println!(
            "| {round} | txfile transform | {secs:.2} s | {:.0} | {:.1} MiB ({:.1} MiB at start; {verdict} the 16 MiB target) |",
            mb / secs,
            peak_kib / 1024.0,
            start_kib / 1024.0,
        );
    }
    println!();
}

fn write_pattern(path: &Utf8Path, size: usize) {
    let chunk: Vec<u8> = (0..1 << 20).map(|i| b'a' + (i % 26) as u8).collect();
    let mut out = BufWriter::new(File::create(path).expect("create the big file"));
    for _ in 0..size / chunk.len() {
        out.write_all(&chunk).expect("write the big file");
    }
    out.flush().expect("flush the big file");
}

fn command_secs(cmd: &mut Command) -> f64 {
    let start = Instant::now();
    let status = cmd.status().expect("run a command");
    assert!(status.success(), "{cmd:?} failed: {status}");
    start.elapsed().as_secs_f64()
}

/// The child: transform `file` in one transaction, then print the peak RSS
/// at start and at the end (KiB) and the seconds the transaction took.
pub(crate) fn transform(file: &Utf8Path) {
    let start_kib = peak_rss_kib();
    let start = Instant::now();
    let handle = txfile::TxFile::open(file).expect("open the big file");
    let mut tx = handle.begin().expect("begin");
    let mut old = tx.old_reader().expect("the big file exists");
    let mut buf = vec![0; 64 << 10];
    loop {
        let n = old.read(&mut buf).expect("read the old contents");
        if n == 0 {
            break;
        }
        buf[..n].iter_mut().for_each(|b| *b ^= 1);
        tx.write_all(&buf[..n]).expect("write the new contents");
    }
    tx.commit().expect("commit");
    let secs = start.elapsed().as_secs_f64();
    println!("{start_kib} {} {secs}", peak_rss_kib());
}
