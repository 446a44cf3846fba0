//! Real faults on real mounts (root only; skipped with a reason otherwise):
//! a full disk, no inodes left, a read-only filesystem.
#![cfg(unix)] // mounts a full, inode-less and read-only filesystem (root on Linux)

mod common;

use std::io::Write;
use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use common::{io_op, is_root, names, tempdir, verify_no_leftovers};
use tempfile::TempDir;
use txfile::{Error, Op, TxFile};

/// A tmpfs mounted for one test, unmounted when dropped. One test at a time
/// holds one: the `mount` commands fork this process, and a forked child
/// holds copies of every descriptor until it execs, so a temporary file
/// just removed by another test's thread could keep its space on the tiny
/// filesystem a moment longer (a spurious ENOSPC, seen once).
struct Tmpfs {
    path: Utf8PathBuf,
    _dir: TempDir,
    _one_at_a_time: std::sync::MutexGuard<'static, ()>,
}

impl Tmpfs {
    /// Mounts a tmpfs with `options`, or says why it cannot.
    fn mount(options: &str) -> Option<Tmpfs> {
        let one_at_a_time = common::heavy();
        if !is_root() {
            eprintln!("skipped: mounting a tmpfs needs root");
            return None;
        }
        let (dir, path) = tempdir();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", options, "txfile-test", path.as_str()])
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs {
                path,
                _dir: dir,
                _one_at_a_time: one_at_a_time,
            }),
            other => {
                eprintln!("skipped: could not mount a tmpfs ({other:?})");
                None
            }
        }
    }

    fn remount(&self, options: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,{options}"), self.path.as_str()])
            .status()
            .expect("run mount");
        assert!(status.success(), "remount {options}");
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.path.as_str()).status();
    }
}

fn fill(dir: &Utf8Path) {
    // Fill the disk to the last block.
    let mut filler = std::fs::File::create(dir.join("filler")).expect("create filler");
    let chunk = vec![0xa5; 4096];
    while filler.write_all(&chunk).is_ok() {}
}

#[test]
fn full_disk_fails_cleanly_and_recovers() {
    let Some(fs) = Tmpfs::mount("size=1m") else {
        return;
    };
    let target = fs.path.join("data");
    let file = TxFile::open(&target).unwrap();
    file.update(|_| Ok::<_, Error>(vec![b'o'; 100_000]))
        .unwrap();

    // 2 MiB cannot fit in a 1 MiB filesystem.
    let err = file
        .update(|_| Ok::<_, Error>(vec![b'n'; 2 << 20]))
        .unwrap_err();
    eprintln!("full disk: {err}");
    assert_eq!(io_op(&err), Some(Op::Write), "{err:?}");
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    assert!(
        err.to_string().contains(".data."),
        "names the file being written: {err}"
    );
    assert_eq!(
        std::fs::read(&target).unwrap(),
        vec![b'o'; 100_000],
        "old contents intact"
    );
    verify_no_leftovers(&fs.path);

    // Streaming through Write reports the same, and commit then refuses.
    let mut tx = file.begin().unwrap();
    let mut failed = false;
    for _ in 0..64 {
        if tx.write_all(&[b's'; 64 * 1024]).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "a write hit the full disk");
    assert!(tx.commit().is_err(), "commit after a failed write");
    assert_eq!(std::fs::read(&target).unwrap().len(), 100_000);
    verify_no_leftovers(&fs.path);

    // A commit that fits succeeds afterwards.
    file.update(|_| Ok::<_, Error>(vec![b'f'; 300_000]))
        .unwrap();
    assert_eq!(std::fs::read(&target).unwrap(), vec![b'f'; 300_000]);

    // Disk completely full: even a small replacement cannot be written.
    fill(&fs.path);
    let err = file
        .update(|_| Ok::<_, Error>(vec![b'x'; 200_000]))
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull, "{err}");
    assert_eq!(std::fs::read(&target).unwrap(), vec![b'f'; 300_000]);
    verify_no_leftovers(&fs.path);
}

#[test]
fn no_inodes_left_for_the_guard_is_a_clear_error() {
    let Some(fs) = Tmpfs::mount("size=1m,nr_inodes=8") else {
        return;
    };
    let mut made = 0;
    while std::fs::write(fs.path.join(format!("f{made}")), "").is_ok() {
        made += 1;
    }
    let before = names(&fs.path);
    // Opening creates nothing; the first transaction needs the guard.
    let file = TxFile::open(fs.path.join("data")).unwrap();
    assert_eq!(file.read().unwrap(), None);
    let err = file.begin().map(drop).unwrap_err();
    eprintln!("no inodes: {err}");
    assert_eq!(io_op(&err), Some(Op::OpenGuard), "{err:?}");
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    assert!(err.to_string().contains("data.lock"), "{err}");
    assert_eq!(names(&fs.path), before, "nothing changed");

    // With the guard in place but no inode for the temporary file.
    std::fs::remove_file(fs.path.join("f0")).unwrap();
    let file = TxFile::open(fs.path.join("f1")).unwrap(); // takes the freed inode
    let err = file
        .update(|_| Ok::<_, Error>(vec![1; 100_000]))
        .unwrap_err();
    assert_eq!(io_op(&err), Some(Op::CreateTemp), "{err:?}");
    assert_eq!(std::fs::read(fs.path.join("f1")).unwrap(), b"");
}

#[test]
fn read_only_filesystem_is_a_clear_error_and_changes_nothing() {
    let Some(fs) = Tmpfs::mount("size=1m") else {
        return;
    };
    let with_guard = fs.path.join("kept");
    // Linux refuses to remount read-only while a file is open for writing,
    // as a handle's guard descriptor is: handles are dropped first.
    TxFile::open(&with_guard)
        .unwrap()
        .update(|_| Ok::<_, Error>(b"old".to_vec()))
        .unwrap();
    std::fs::write(fs.path.join("plain"), "old").unwrap();
    fs.remount("ro");
    let before = names(&fs.path);

    // Opening and reading work; whether the guard exists or not, opening
    // it for locking fails.
    for (name, contents) in [
        ("kept", Some(&b"old"[..])),
        ("plain", Some(b"old")),
        ("new", None),
    ] {
        let file = TxFile::open(fs.path.join(name)).unwrap();
        assert_eq!(file.read().unwrap().as_deref(), contents, "{name}");
        let err = file.begin().map(drop).unwrap_err();
        eprintln!("read-only: {err}");
        assert_eq!(io_op(&err), Some(Op::OpenGuard), "{name}: {err:?}");
        assert_eq!(err.kind(), std::io::ErrorKind::ReadOnlyFilesystem);
        assert!(err.to_string().contains(&format!("{name}.lock")), "{err}");
        assert!(txfile::update(fs.path.join(name), |_| Ok::<_, Error>(b"new".to_vec())).is_err());
    }
    assert_eq!(names(&fs.path), before, "nothing changed");
    assert_eq!(std::fs::read(&with_guard).unwrap(), b"old");
    assert_eq!(std::fs::read(fs.path.join("plain")).unwrap(), b"old");
    fs.remount("rw");
}
