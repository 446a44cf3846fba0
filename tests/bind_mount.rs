//! A file bind-mounted over another, as a container mounts a single file
//! (issue 20, item 3), on the real filesystem: renaming over it fails with
//! `EBUSY`, so txfile copies the new contents in place under an intent
//! record (`src/inplace.rs`).
//!
//! Needs root (for `mount --bind`); skips with the reason otherwise. The
//! mount is made in a scratch directory and undone by a guard, also when a
//! test panics. The kill -9 test runs `TXFILE_BIND_KILLS` kills (20 by
//! default; `TXFILE_BIND_KILLS=500 cargo test --release --test bind_mount
//! -- --nocapture` for a long run).

#![cfg(target_os = "linux")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use common::{Rng, is_root, names, parse_versioned, role, run_role, tempdir, versioned};
use txfile::{Error, Options, TxFile};

/// Multi-megabyte versions, so that kills land in the middle of copies.
const FILLER: usize = 3 << 20;

/// `source` bind-mounted over `target` until dropped.
struct BindMount {
    target: Utf8PathBuf,
}

impl BindMount {
    fn new(source: &Utf8Path, target: &Utf8Path) -> Result<BindMount, String> {
        let out = Command::new("mount")
            .args(["--bind", source.as_str(), target.as_str()])
            .output()
            .map_err(|e| format!("run mount: {e}"))?;
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        Ok(BindMount {
            target: target.to_owned(),
        })
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        let ok = Command::new("umount")
            .arg(self.target.as_str())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            // Busy (a killed writer's descriptor not yet closed): detach it.
            let _ = Command::new("umount")
                .args(["-l", self.target.as_str()])
                .status();
        }
    }
}

/// A scratch directory holding `source` (the file a container host would
/// keep) bind-mounted over `config` (the file the container sees); `None`
/// with the reason printed when this cannot be set up.
fn mounted(initial: &[u8]) -> Option<(tempfile::TempDir, Utf8PathBuf, BindMount)> {
    if !is_root() {
        println!("skipped: needs root to bind-mount a file (mount --bind)");
        return None;
    }
    let (guard, dir) = tempdir();
    let source = dir.join("source");
    let target = dir.join("config");
    std::fs::write(&source, initial).unwrap();
    std::fs::write(&target, b"underneath").unwrap();
    match BindMount::new(&source, &target) {
        Ok(mount) => Some((guard, dir, mount)),
        Err(e) => {
            println!("skipped: mount --bind failed: {e}");
            None
        }
    }
}

/// Nothing in `dir` but the target, the host's file and the guard.
fn assert_clean(dir: &Utf8Path) {
    assert_eq!(names(dir), ["config", "config.lock", "source"], "in {dir}");
}

#[test]
fn a_bind_mounted_file_is_updated_in_place() {
    let Some((_d, dir, _mount)) = mounted(b"old\n") else {
        return;
    };
    let target = dir.join("config");
    // The premise: a rename over it fails, as for every rename-based tool.
    std::fs::write(dir.join("new"), b"x").unwrap();
    let busy = std::fs::rename(dir.join("new"), &target).unwrap_err();
    assert_eq!(busy.kind(), std::io::ErrorKind::ResourceBusy, "{busy}");
    std::fs::remove_file(dir.join("new")).unwrap();

    // An attribute the in-place copy must not lose (it keeps the inode).
    rustix::fs::setxattr(
        target.as_std_path(),
        "user.origin",
        b"host",
        rustix::fs::XattrFlags::empty(),
    )
    .unwrap();
    let file = TxFile::open(&target).unwrap();
    file.update(|old| {
        assert_eq!(old, Some(&b"old\n"[..]));
        Ok::<_, Error>(b"new, and longer than the old\n".to_vec())
    })
    .unwrap();
    assert_eq!(
        file.read().unwrap().unwrap(),
        b"new, and longer than the old\n"
    );
    // The same inode: the host's file sees it too.
    assert_eq!(
        std::fs::read(dir.join("source")).unwrap(),
        b"new, and longer than the old\n"
    );
    file.update(|_| Ok::<_, Error>(b"short\n".to_vec()))
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), b"short\n");
    let mut value = [0u8; 16];
    let n = rustix::fs::getxattr(target.as_std_path(), "user.origin", &mut value[..]).unwrap();
    assert_eq!(&value[..n], b"host");
    assert_clean(&dir);
}

#[test]
fn without_the_fallback_a_bind_mounted_file_is_refused() {
    let Some((_d, dir, _mount)) = mounted(b"old\n") else {
        return;
    };
    let target = dir.join("config");
    let err = Options::new()
        .in_place_fallback(false)
        .open(&target)
        .unwrap()
        .update(|_| Ok::<_, Error>(b"new\n".to_vec()))
        .unwrap_err();
    assert!(matches!(err, Error::Rename { .. }), "{err:?}");
    assert_eq!(err.kind(), std::io::ErrorKind::ResourceBusy);
    assert!(err.to_string().contains("busy"), "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), b"old\n");
    assert_clean(&dir);
}

#[test]
fn txfile_write_updates_a_bind_mounted_file() {
    let Some((_d, dir, _mount)) = mounted(b"old\n") else {
        return;
    };
    let target = dir.join("config");
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_txfile"))
        .args(["write", target.as_str()])
        .write_stdin("from the command line\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&target).unwrap(), b"from the command line\n");
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_txfile"))
        .args(["cat", target.as_str()])
        .output()
        .unwrap();
    assert_eq!(out.stdout, b"from the command line\n");
    assert_clean(&dir);
}

/// Child role: increment the versioned counter forever, printing `ack N`
/// once each commit has returned.
#[test]
fn writer_entry() {
    if role().as_deref() != Some("bind-writer") {
        return;
    }
    let target = Utf8PathBuf::from(std::env::var("TARGET").expect("TARGET"));
    let file = TxFile::open(&target).expect("open");
    let mut out = std::io::stdout().lock();
    loop {
        let mut n = 0;
        file.update(|old| {
            n = parse_versioned(old.expect("the target exists")).expect("a complete version") + 1;
            Ok::<_, Error>(versioned(n, FILLER))
        })
        .expect("update");
        writeln!(out, "ack {n}").expect("ack");
        out.flush().expect("flush ack");
    }
}

fn kills_wanted() -> u32 {
    std::env::var("TXFILE_BIND_KILLS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20)
}

/// Writers are SIGKILLed at random moments of in-place updates of
/// multi-megabyte versions; after each kill the next transaction recovers,
/// and the file holds one complete version, no acknowledged commit is lost,
/// and nothing is left in the directory.
#[test]
fn kill_9_during_in_place_updates_leaves_one_complete_version() {
    if role().is_some() {
        return;
    }
    let Some((_d, dir, _mount)) = mounted(&versioned(0, FILLER)) else {
        return;
    };
    let _heavy = common::heavy();
    let target = dir.join("config");
    let mut rng = Rng::from_env_or_time("bind_mount kill -9");
    let kills = kills_wanted();
    let mut last_seen = 0;
    let mut recovered_records = 0;
    let start = Instant::now();
    for kill in 0..kills {
        let mut child = run_role(
            "writer_entry",
            "bind-writer",
            &[("TARGET", target.to_string())],
        )
        .spawn()
        .expect("spawn a writer");
        let acked = Arc::new(AtomicU64::new(0));
        let stdout = child.stdout.take().expect("piped");
        let reader = {
            let acked = Arc::clone(&acked);
            std::thread::spawn(move || {
                for line in BufReader::new(stdout).lines() {
                    let Ok(line) = line else { break };
                    if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse().ok()) {
                        acked.store(n, Ordering::SeqCst);
                    }
                }
            })
        };
        // Once this writer has committed (its first transaction finished
        // any copy the last one left), a random moment: a 3 MiB copy and
        // its fsyncs take tens of milliseconds, so many land inside one.
        let waited = Instant::now();
        while acked.load(Ordering::SeqCst) <= last_seen
            && waited.elapsed() < Duration::from_secs(30)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        if kill % 2 == 0 {
            std::thread::sleep(Duration::from_millis(rng.below(250)));
        } else {
            // Aimed: as soon as an intent record appears (the copy is about
            // to start or under way), then a few milliseconds more.
            let aimed = Instant::now();
            while !names(&dir).iter().any(|n| n.ends_with(".txinplace"))
                && aimed.elapsed() < Duration::from_secs(10)
            {
                std::thread::sleep(Duration::from_micros(200));
            }
            std::thread::sleep(Duration::from_millis(rng.below(15)));
        }
        child.kill().expect("SIGKILL");
        let status = child.wait().expect("reap");
        reader.join().expect("ack reader");
        let acked = acked.load(Ordering::SeqCst);
        if names(&dir).iter().any(|n| n.ends_with(".txinplace")) {
            recovered_records += 1;
        }
        // The next transaction recovers (and sweeps).
        let file = TxFile::open(&target).expect("open");
        file.begin().expect("recovery").rollback();
        let bytes = std::fs::read(&target).expect("read");
        let n = parse_versioned(&bytes)
            .unwrap_or_else(|e| panic!("kill {kill} ({status}): not one complete version: {e}"));
        assert!(
            n >= acked && n >= last_seen,
            "kill {kill}: version {n}, but {acked} was acknowledged and {last_seen} seen before"
        );
        assert_eq!(
            file.read().unwrap().unwrap(),
            bytes,
            "kill {kill}: read disagrees"
        );
        assert_clean(&dir);
        last_seen = n;
    }
    // Half the kills are aimed at the copy; optimised, most of those land
    // inside one. A debug build spends nearly all its time building and
    // checking versions, so there the aim is poorer.
    if !cfg!(debug_assertions) && kills >= 20 {
        assert!(
            recovered_records > 0,
            "no kill landed inside an in-place commit: the test did not test it"
        );
    }
    eprintln!(
        "bind_mount kill -9: {kills} kills of in-place writers ({} MiB versions) in {:.1?}: \
         {last_seen} versions committed, {recovered_records} interrupted in-place commits \
         found and finished or dropped, every recovered file complete, nothing left behind",
        FILLER >> 20,
        start.elapsed()
    );
}
