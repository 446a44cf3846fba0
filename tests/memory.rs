//! Memory stays constant when a large file streams through a transaction.
//!
//! A child process (this test binary, re-executed) transforms a 256 MiB file
//! in 64 KiB chunks and reports its peak resident set size (`VmHWM`) before
//! and after; the growth must stay under 16 MiB, a sixteenth of the file.
//! `cargo bench --bench txbench -- memory` does the same with 1 GiB.

#![cfg(target_os = "linux")]

mod common;

use std::fs::File;
use std::io::{BufWriter, Read, Write};

use camino::Utf8Path;
use common::{check, role, run_role, tempdir, verify_no_leftovers};
use txfile::{Durability, Options};
use txfile_testkit::process::peak_rss_kib;

const SIZE: usize = 256 << 20;
const CHUNK: usize = 64 << 10;
const MAX_GROWTH_KIB: u64 = 16 * 1024;

#[test]
fn streaming_transform_keeps_memory_constant() {
    if role().as_deref() == Some("transform") {
        let path = std::env::var("TXFILE_FILE").expect("TXFILE_FILE is set by the parent");
        transform(Utf8Path::new(&path));
        return;
    }
    let (_guard, dir) = tempdir();
    let path = dir.join("big");
    let pattern: Vec<u8> = (0..CHUNK).map(|i| b'a' + (i % 26) as u8).collect();
    let mut out = BufWriter::new(File::create(&path).expect("create the big file"));
    for _ in 0..SIZE / CHUNK {
        out.write_all(&pattern).expect("write the big file");
    }
    out.flush().expect("flush the big file");
    drop(out);

    let output = run_role(
        "streaming_transform_keeps_memory_constant",
        "transform",
        &[("TXFILE_FILE", path.to_string())],
    )
    .output()
    .expect("run the transforming child");
    let stdout = check(output, "the transforming child");
    let report = stdout
        .lines()
        // The harness prints the test's name on the same line first.
        .find_map(|l| l.split_once("vmhwm_kib ").map(|(_, numbers)| numbers))
        .unwrap_or_else(|| panic!("no report in the child's output:\n{stdout}"));
    let [before, after] = report
        .split_whitespace()
        .take(2)
        .map(|n| n.parse::<u64>().expect("a number"))
        .collect::<Vec<_>>()[..]
    else {
        panic!("malformed report {report:?}");
    };
    println!(
        "peak RSS {before} KiB before, {after} KiB after a {} MiB transform",
        SIZE >> 20
    );
    assert!(
        after - before < MAX_GROWTH_KIB,
        "peak RSS grew by {} KiB (from {before} to {after}) for a {} MiB file",
        after - before,
        SIZE >> 20
    );

    let mut head = [0; 4];
    File::open(&path)
        .and_then(|mut f| f.read_exact(&mut head))
        .expect("read the new contents");
    assert_eq!(&head, b"`cbe", "every byte had its lowest bit flipped");
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), SIZE as u64);
    verify_no_leftovers(&dir);
}

/// The child: flip the lowest bit of every byte in one transaction, then
/// print `vmhwm_kib BEFORE AFTER`.
/// Durability::None keeps the test fast; fsync does not change memory use.
fn transform(path: &Utf8Path) {
    let before = peak_rss_kib();
    let file = Options::new()
        .durability(Durability::None)
        .open(path)
        .expect("open the big file");
    let mut tx = file.begin().expect("begin");
    let mut old = tx.old_reader().expect("the big file exists");
    let mut buf = vec![0; CHUNK];
    loop {
        let n = old.read(&mut buf).expect("read the old contents");
        if n == 0 {
            break;
        }
        buf[..n].iter_mut().for_each(|b| *b ^= 1);
        tx.write_all(&buf[..n]).expect("write the new contents");
    }
    tx.commit().expect("commit");
    println!("vmhwm_kib {before} {}", peak_rss_kib());
}
