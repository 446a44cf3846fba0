//! One replace of a file's contents, per variant and size, interleaved.
//!
//! Every round runs each variant once, starting at a different variant each
//! round so that none always follows the same neighbour. Each variant has its
//! own target file in the same directory. The contents change every round (an
//! 8-byte round counter at the front), because txfile skips commits that
//! change nothing; every variant writes the same bytes.

use std::convert::Infallible;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::time::Instant;

use camino::{Utf8Path, Utf8PathBuf};
use txfile::{Durability, Options, TxFile};

use crate::{fmt_secs, fmt_size, quantile};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Sync {
    Full,
    None,
}

impl Sync {
    fn label(self) -> &'static str {
        match self {
            Sync::Full => "full",
            Sync::None => "none",
        }
    }
}

type Op = Box<dyn FnMut(&[u8]) -> io::Result<()>>;

struct Variant {
    name: &'static str,
    sync: Sync,
    op: Op,
    secs: Vec<f64>,
}

pub(crate) fn run(dir: &Utf8Path, quick: bool) {
    // (size, measured rounds, warm-up rounds)
    let plan: &[(usize, usize, usize)] = if quick {
        &[(4 << 10, 30, 3), (1 << 20, 10, 2), (64 << 20, 3, 1)]
    } else {
        &[(4 << 10, 1000, 20), (1 << 20, 100, 5), (64 << 20, 15, 2)]
    };
    println!("## Commit: one replace of the whole contents");
    println!();
    println!(
        "Median time per operation; p10-p90 in brackets; ratio = median / raw median at the same durability."
    );
    for &(size, rounds, warmup) in plan {
        let mut variants = variants(dir);
        let mut data: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        for round in 0..warmup + rounds {
            data[..8].copy_from_slice(&(round as u64).to_le_bytes());
            let n = variants.len();
            for k in 0..n {
                let v = &mut variants[(round + k) % n];
                let start = Instant::now();
                (v.op)(&data).unwrap_or_else(|e| panic!("{} at {}: {e}", v.name, fmt_size(size)));
                let secs = start.elapsed().as_secs_f64();
                if round >= warmup {
                    v.secs.push(secs);
                }
            }
        }
        report(size, rounds, &mut variants);
    }
}

fn report(size: usize, rounds: usize, variants: &mut [Variant]) {
    let mut medians = Vec::new();
    for v in variants.iter_mut() {
        let median = quantile(&mut v.secs, 0.5);
        let p10 = quantile(&mut v.secs, 0.1);
        let p90 = quantile(&mut v.secs, 0.9);
        medians.push((median, p10, p90));
    }
    let raw = |sync: Sync| {
        variants
            .iter()
            .zip(&medians)
            .find(|(v, _)| v.sync == sync && v.name.starts_with("raw"))
            .map(|(_, m)| m.0)
            .expect("a raw variant per durability")
    };
    println!();
    println!("### {} ({rounds} rounds)", fmt_size(size));
    println!();
    println!("| variant | durability | median | p10-p90 | ratio to raw | MB/s |");
    println!("|---|---|---|---|---|---|");
    for (v, &(median, p10, p90)) in variants.iter().zip(&medians) {
        println!(
            "| {} | {} | {} | {} - {} | {:.3} | {:.0} |",
            v.name,
            v.sync.label(),
            fmt_secs(median),
            fmt_secs(p10),
            fmt_secs(p90),
            median / raw(v.sync),
            size as f64 / median / 1e6,
        );
    }
    println!();
}

fn variants(dir: &Utf8Path) -> Vec<Variant> {
    let variant = |name, sync, op: Op| Variant {
        name,
        sync,
        op,
        secs: Vec::new(),
    };
    let tx = |name: &str, durability| {
        Options::new()
            .durability(durability)
            .open(dir.join(name))
            .expect("open a txfile handle")
    };
    vec![
        variant("raw", Sync::Full, raw(dir, "raw-full", true)),
        variant("raw", Sync::None, raw(dir, "raw-none", false)),
        variant(
            "txfile update",
            Sync::Full,
            tx_update(tx("update-full", Durability::Full)),
        ),
        variant(
            "txfile update",
            Sync::None,
            tx_update(tx("update-none", Durability::None)),
        ),
        variant(
            "txfile begin/write_all/commit",
            Sync::Full,
            tx_stream(tx("stream-full", Durability::Full)),
        ),
        variant(
            "txfile begin/write_all/commit",
            Sync::None,
            tx_stream(tx("stream-none", Durability::None)),
        ),
        variant(
            "txfile begin/write_all/commit, change at the end",
            Sync::Full,
            tx_stream_tail(tx("tail-full", Durability::Full)),
        ),
        variant(
            "atomic-write-file",
            Sync::Full,
            atomic_write_file(dir.join("awf")),
        ),
        variant("atomicwrites", Sync::Full, atomicwrites(dir.join("aw"))),
        variant(
            "tempfile persist + sync_all + dir fsync",
            Sync::Full,
            tempfile_persist(dir, "tempfile-full", true),
        ),
        variant(
            "tempfile persist",
            Sync::None,
            tempfile_persist(dir, "tempfile-none", false),
        ),
    ]
}

/// The minimal sequence by hand: create a fixed temporary name with
/// `O_CREAT|O_EXCL`, write, fsync, rename over the target, fsync the
/// directory (opened once, as txfile does).
fn raw(dir: &Utf8Path, name: &str, sync: bool) -> Op {
    let target = dir.join(name);
    let temp = dir.join(format!(".{name}.tmp"));
    let dir_file = File::open(dir).expect("open the bench directory");
    Box::new(move |data| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(data)?;
        if sync {
            file.sync_all()?;
        }
        drop(file);
        std::fs::rename(&temp, &target)?;
        if sync {
            dir_file.sync_all()?;
        }
        Ok(())
    })
}

fn tx_update(file: TxFile) -> Op {
    Box::new(move |data| {
        file.update(|_| Ok::<_, Infallible>(data.to_vec()))
            .map_err(io::Error::other)
    })
}

fn tx_stream(file: TxFile) -> Op {
    Box::new(move |data| {
        let mut tx = file.begin().map_err(io::Error::other)?;
        tx.write_all(data)?;
        tx.commit().map_err(io::Error::other)
    })
}

/// The same bytes rotated so that the changing counter is at the end: the
/// no-op check then compares the whole file before it finds the change.
fn tx_stream_tail(file: TxFile) -> Op {
    Box::new(move |data| {
        let mut tx = file.begin().map_err(io::Error::other)?;
        tx.write_all(&data[8..])?;
        tx.write_all(&data[..8])?;
        tx.commit().map_err(io::Error::other)
    })
}

fn atomic_write_file(path: Utf8PathBuf) -> Op {
    Box::new(move |data| {
        let mut file = atomic_write_file::AtomicWriteFile::open(&path)?;
        file.write_all(data)?;
        file.commit()
    })
}

fn atomicwrites(path: Utf8PathBuf) -> Op {
    Box::new(move |data| {
        atomicwrites::AtomicFile::new(&path, atomicwrites::AllowOverwrite)
            .write(|f| f.write_all(data))
            .map_err(io::Error::other)
    })
}

/// What a careful user of tempfile writes: `NamedTempFile` in the target's
/// directory, `sync_all`, `persist`, then open and fsync the directory.
fn tempfile_persist(dir: &Utf8Path, name: &str, sync: bool) -> Op {
    let dir = dir.to_owned();
    let target = dir.join(name);
    Box::new(move |data| {
        let mut temp = tempfile::NamedTempFile::new_in(&dir)?;
        temp.write_all(data)?;
        if sync {
            temp.as_file().sync_all()?;
        }
        temp.persist(&target).map_err(|e| e.error)?;
        if sync {
            File::open(&dir)?.sync_all()?;
        }
        Ok(())
    })
}
