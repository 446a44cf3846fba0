//! Modes and owners. Alone in its own test binary because it sets the
//! process umask, which would race with tests creating files in parallel.
#![cfg(unix)] // Unix modes, owners and umask, which Windows does not have

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};

use common::{is_root, tempdir};
use txfile::{Error, Options, TxFile};

fn mode(path: &camino::Utf8Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

fn rewrite(file: &TxFile) {
    file.update(|old| Ok::<_, Error>([old.unwrap_or_default(), b"+"].concat()))
        .unwrap();
}

#[test]
fn modes_and_owners() {
    let (_d, dir) = tempdir();
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));

    // New files: 0666 minus the umask, never a temp file's 0600.
    let file = TxFile::open(dir.join("new")).unwrap();
    rewrite(&file);
    assert_eq!(mode(&dir.join("new")), 0o644);
    assert_eq!(mode(&dir.join("new.lock")), 0o644);
    // Large enough to stream through a temporary file.
    let big = TxFile::open(dir.join("big")).unwrap();
    big.update(|_| Ok::<_, Error>(vec![0; 1 << 20])).unwrap();
    assert_eq!(mode(&dir.join("big")), 0o644);

    // An explicit mode for new files, still under the umask.
    let file = Options::new()
        .mode(0o640)
        .open(dir.join("private"))
        .unwrap();
    rewrite(&file);
    assert_eq!(mode(&dir.join("private")), 0o640);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    let file = TxFile::open(dir.join("strict")).unwrap();
    rewrite(&file);
    assert_eq!(mode(&dir.join("strict")), 0o600);
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));

    // Existing files keep their mode exactly, whatever the umask.
    for existing in [0o600, 0o640, 0o755, 0o444, 0o666] {
        let path = dir.join(format!("m{existing:o}"));
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(existing)).unwrap();
        let file = Options::new().mode(0o600).open(&path).unwrap();
        rewrite(&file);
        assert_eq!(mode(&path), existing, "{existing:o}");
        assert_eq!(std::fs::read(&path).unwrap(), b"x+");
    }

    // Guards: everyone who may write the target may lock it; the umask
    // does not narrow them (they hold no data).
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
    for (target_mode, guard_mode) in [
        (0o664, 0o664),
        (0o644, 0o644),
        (0o600, 0o600),
        (0o640, 0o640),
        (0o666, 0o666),
        (0o444, 0o644),
        (0o620, 0o660),
    ] {
        let path = dir.join(format!("g{target_mode:o}"));
        std::fs::write(&path, "x").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(target_mode)).unwrap();
        rewrite(&TxFile::open(&path).unwrap());
        let guard = dir.join(format!("g{target_mode:o}.lock"));
        assert_eq!(mode(&guard), guard_mode, "target {target_mode:o}");
        assert_eq!(mode(&path), target_mode, "target {target_mode:o}");
    }
    // A new target: the directory's bits decide.
    for (dir_mode, guard_mode) in [
        (0o775, 0o664),
        (0o2775, 0o664),
        (0o700, 0o600),
        (0o1777, 0o666),
    ] {
        let sub = dir.join(format!("d{dir_mode:o}"));
        std::fs::create_dir(&sub).unwrap();
        std::fs::set_permissions(&sub, std::fs::Permissions::from_mode(dir_mode)).unwrap();
        // The first transaction creates the guard (opening a handle does not).
        TxFile::open(sub.join("new"))
            .unwrap()
            .begin()
            .unwrap()
            .rollback();
        assert_eq!(mode(&sub.join("new.lock")), guard_mode, "dir {dir_mode:o}");
    }
    rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o022));

    // Owner and group are kept when permitted (root).
    if is_root() {
        let path = dir.join("owned");
        std::fs::write(&path, "x").unwrap();
        std::os::unix::fs::chown(&path, Some(65534), Some(65534)).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        rewrite(&TxFile::open(&path).unwrap());
        let meta = std::fs::metadata(&path).unwrap();
        assert_eq!((meta.uid(), meta.gid()), (65534, 65534));
        assert_eq!(meta.permissions().mode() & 0o7777, 0o640);
    } else {
        eprintln!("skipped the owner check: it needs root to chown");
    }
}
