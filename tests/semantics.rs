//! One test per promise of the single-file protocol.
#![cfg(unix)] // inode numbers, Unix modes and non-UTF-8 names (Windows: tests/windows.rs)

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::time::{Duration, SystemTime};

use common::{io_op, is_root, names, role, run_role, tempdir, verify_no_leftovers};
use txfile::{Error, Op, Options, Symlinks, Transaction, TxFile};

fn set(contents: &'static [u8]) -> impl FnOnce(Option<&[u8]>) -> Result<Vec<u8>, Error> {
    move |_| Ok(contents.to_vec())
}

#[test]
fn public_types_are_send_and_sync() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<TxFile>();
    send_sync::<Options>();
    send_sync::<Error>();
    send::<Transaction<'static>>();
}

#[test]
fn update_creates_then_replaces() {
    let (_d, dir) = tempdir();
    let path = dir.join("a");
    let file = TxFile::open(&path).unwrap();
    assert_eq!(file.read().unwrap(), None);
    file.update(|old| {
        assert_eq!(old, None);
        Ok::<_, Error>(b"one".to_vec())
    })
    .unwrap();
    file.update(|old| {
        assert_eq!(old, Some(&b"one"[..]));
        Ok::<_, Error>(b"two".to_vec())
    })
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"two");
    assert_eq!(names(&dir), ["a", "a.lock"]);
    txfile::update(&path, set(b"three")).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"three");
}

#[test]
fn streams_large_contents_both_ways() {
    let (_d, dir) = tempdir();
    let path = dir.join("big");
    let file = TxFile::open(&path).unwrap();
    let chunk: Vec<u8> = (0..=255u8).cycle().take(1 << 20).collect();
    let mut tx = file.begin().unwrap();
    for _ in 0..8 {
        tx.write_all(&chunk).unwrap();
    }
    tx.write_all(b"tail").unwrap();
    tx.commit().unwrap();
    assert_eq!(std::fs::metadata(&path).unwrap().len(), 8 * (1 << 20) + 4);

    // Transform through the reader and writer with a small buffer.
    let mut tx = file.begin().unwrap();
    let mut reader = tx.old_reader().unwrap();
    let mut upper = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = reader.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        upper.extend(buf[..n].iter().map(|b| b.wrapping_add(1)));
    }
    tx.write_all(&upper).unwrap();
    tx.commit().unwrap();
    let now = std::fs::read(&path).unwrap();
    assert_eq!(now.len(), upper.len());
    assert_eq!(now[0], 1);
    assert_eq!(&now[now.len() - 4..], b"ubjm");
    verify_no_leftovers(&dir);
}

#[test]
fn rollback_and_drop_change_nothing() {
    let (_d, dir) = tempdir();
    let path = dir.join("a");
    std::fs::write(&path, "old").unwrap();
    let file = TxFile::open(&path).unwrap();
    let mut tx = file.begin().unwrap();
    tx.write_all(&vec![b'x'; 200_000]).unwrap(); // past the buffer: a temp file exists
    assert!(names(&dir).iter().any(|n| n.ends_with(".txtmp")));
    tx.rollback();
    let mut tx = file.begin().unwrap();
    tx.write_all(b"dropped").unwrap();
    drop(tx);
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    verify_no_leftovers(&dir);
    assert!(file.try_begin().unwrap().is_some(), "lock released");
}

#[test]
fn closure_error_aborts_and_keeps_the_source() {
    let (_d, dir) = tempdir();
    let path = dir.join("a");
    std::fs::write(&path, "old").unwrap();
    let file = TxFile::open(&path).unwrap();
    let err = file
        .update(|_| Err::<Vec<u8>, _>(std::io::Error::other("validation failed")))
        .unwrap_err();
    assert!(matches!(err, Error::Aborted { .. }), "{err}");
    assert!(err.to_string().contains(path.as_str()), "{err}");
    // The closure's error is written in the message, once, and kept in the
    // variant for callers who downcast it.
    assert!(err.to_string().ends_with(": validation failed"), "{err}");
    let Error::Aborted { source, .. } = &err else {
        unreachable!()
    };
    assert_eq!(source.to_string(), "validation failed");
    assert!(
        std::error::Error::source(&err).is_none(),
        "not printed twice"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    verify_no_leftovers(&dir);
}

#[test]
fn closure_panic_leaves_old_contents_no_temp_and_a_free_lock() {
    let (_d, dir) = tempdir();
    let path = dir.join("a");
    std::fs::write(&path, "old").unwrap();
    let file = TxFile::open(&path).unwrap();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut tx = file.begin().unwrap();
        tx.write_all(&vec![b'x'; 100_000]).unwrap();
        panic!("worker bug");
    }));
    assert!(result.is_err());
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        file.update(|_| -> Result<Vec<u8>, Error> { panic!("closure bug") })
    }));
    assert!(result.is_err());
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    verify_no_leftovers(&dir);
    assert!(
        file.try_begin().unwrap().is_some(),
        "lock released after the panic"
    );
}

#[test]
fn noop_commit_touches_nothing() {
    let (_d, dir) = tempdir();
    let path = dir.join("a");
    let small = b"same".to_vec();
    let large: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    for contents in [small, large] {
        std::fs::write(&path, &contents).unwrap();
        let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
        std::fs::File::options()
            .write(true)
            .open(&path)
            .unwrap()
            .set_modified(past)
            .unwrap();
        let before = std::fs::metadata(&path).unwrap();
        let file = TxFile::open(&path).unwrap();
        // Through update, with the old bytes in memory...
        file.update(|old| Ok::<_, Error>(old.unwrap().to_vec()))
            .unwrap();
        // ...and streamed without reading them.
        let mut tx = file.begin().unwrap();
        tx.write_all(&contents).unwrap();
        tx.commit().unwrap();
        let after = std::fs::metadata(&path).unwrap();
        assert_eq!(after.ino(), before.ino(), "not replaced");
        assert_eq!(after.modified().unwrap(), past, "mtime unchanged");
        verify_no_leftovers(&dir);
        // A one-byte difference at the very end is not a no-op.
        let mut changed = contents.clone();
        *changed.last_mut().unwrap() ^= 1;
        let mut tx = file.begin().unwrap();
        tx.write_all(&changed).unwrap();
        tx.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), changed);
    }
}

#[test]
fn empty_contents_create_an_empty_file() {
    let (_d, dir) = tempdir();
    let path = dir.join("a");
    let file = TxFile::open(&path).unwrap();
    file.begin().unwrap().commit().unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"");
}

#[test]
fn outside_writer_is_a_conflict_and_wins() {
    let (_d, dir) = tempdir();
    let path = dir.join("a");
    std::fs::write(&path, "old").unwrap();
    let file = TxFile::open(&path).unwrap();

    // Rewritten in place (same inode, other size).
    let mut tx = file.begin().unwrap();
    std::fs::write(&path, "theirs, in place").unwrap();
    tx.write_all(&vec![b'n'; 100_000]).unwrap();
    let err = tx.commit().unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert!(err.to_string().contains(path.as_str()));
    assert_eq!(std::fs::read(&path).unwrap(), b"theirs, in place");
    verify_no_leftovers(&dir);

    // Replaced by rename, deleted, and created where there was nothing.
    let mut tx = file.begin().unwrap();
    std::fs::write(dir.join("x"), "theirs, renamed").unwrap();
    std::fs::rename(dir.join("x"), &path).unwrap();
    tx.write_all(b"mine").unwrap();
    assert!(matches!(tx.commit(), Err(Error::Conflict { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"theirs, renamed");

    let tx = file.begin().unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(matches!(tx.commit(), Err(Error::Conflict { .. })));
    assert!(!path.exists());

    let tx = file.begin().unwrap();
    std::fs::write(&path, "theirs, new").unwrap();
    assert!(matches!(tx.commit(), Err(Error::Conflict { .. })));
    assert_eq!(std::fs::read(&path).unwrap(), b"theirs, new");
    verify_no_leftovers(&dir);
}

#[test]
fn sweep_removes_only_this_targets_stale_temps() {
    let (_d, dir) = tempdir();
    let foreign = [
        ".a.tmp",                 // someone else's
        ".a.b.AbCdEf12.txtmp",    // target a.b
        ".a.lock.AbCdEf12.txtmp", // target a.lock
        ".a.AbCdEf1.txtmp",       // too short to be ours
        "a.AbCdEf12.txtmp",       // not hidden
        "notes",
    ];
    for name in foreign {
        std::fs::write(dir.join(name), "keep").unwrap();
    }
    std::fs::write(dir.join(".a.Zz09Zz09.txtmp"), "stale").unwrap();
    std::fs::write(dir.join(".a.12345678.txtmp"), "stale").unwrap();
    // (Not `a.lock` as a target too: that name is `a`'s guard, and a file
    // holding data there is refused; see tests/foreign.rs.)
    for target in ["a", "a.b"] {
        std::fs::write(dir.join(target), "v1").unwrap();
    }
    let file = TxFile::open(dir.join("a")).unwrap();
    file.begin().unwrap().rollback();
    let left = names(&dir);
    for name in foreign {
        assert!(
            left.contains(&name.to_string()),
            "{name} was removed: {left:?}"
        );
    }
    assert!(
        !left
            .iter()
            .any(|n| n == ".a.Zz09Zz09.txtmp" || n == ".a.12345678.txtmp"),
        "{left:?}"
    );
    // The other targets' own stale temps go when they are used.
    TxFile::open(dir.join("a.b"))
        .unwrap()
        .begin()
        .unwrap()
        .rollback();
    assert!(!names(&dir).contains(&".a.b.AbCdEf12.txtmp".to_string()));
    assert!(names(&dir).contains(&".a.lock.AbCdEf12.txtmp".to_string()));
}

#[test]
fn a_255_byte_name_works() {
    let (_d, dir) = tempdir();
    for name in ["n".repeat(255), "é".repeat(127) + "x"] {
        let path = dir.join(&name);
        let file = TxFile::open(&path).unwrap();
        file.update(set(b"long")).unwrap();
        let mut tx = file.begin().unwrap();
        tx.write_all(&vec![b'x'; 100_000]).unwrap(); // forces a temp file
        tx.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap().len(), 100_000);
        let guard = file.guard_path().file_name().unwrap();
        assert!(guard.len() <= 255 && guard.ends_with(".lock"), "{guard}");
        verify_no_leftovers(&dir);
    }
    // Two long names sharing a prefix get distinct guards.
    let a = TxFile::open(dir.join("p".repeat(254) + "a")).unwrap();
    let b = TxFile::open(dir.join("p".repeat(254) + "b")).unwrap();
    assert_ne!(a.guard_path(), b.guard_path());
    let _held = a.begin().unwrap();
    assert!(b.try_begin().unwrap().is_some());
}

#[test]
fn symlink_follow_updates_the_real_file() {
    let (_d, dir) = tempdir();
    std::fs::create_dir(dir.join("real")).unwrap();
    let real = dir.join("real/config");
    std::fs::write(&real, "old").unwrap();
    let link = dir.join("config");
    std::os::unix::fs::symlink("real/config", &link).unwrap();
    let file = TxFile::open(&link).unwrap();
    assert_eq!(file.path(), real);
    assert_eq!(file.guard_path(), dir.join("real/config.lock"));
    file.update(set(b"new")).unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(std::fs::read(&link).unwrap(), b"new");
    assert!(!dir.join("config.lock").exists());
    // A dangling link: the file it names is created.
    let dangling = dir.join("dangling");
    std::os::unix::fs::symlink("real/created", &dangling).unwrap();
    txfile::update(&dangling, set(b"made")).unwrap();
    assert_eq!(std::fs::read(dir.join("real/created")).unwrap(), b"made");
}

#[test]
fn symlink_replace_and_reject() {
    let (_d, dir) = tempdir();
    let real = dir.join("real");
    std::fs::write(&real, "old").unwrap();
    let link = dir.join("link");
    std::os::unix::fs::symlink("real", &link).unwrap();

    let err = Options::new()
        .symlinks(Symlinks::Reject)
        .open(&link)
        .unwrap_err();
    assert!(matches!(err, Error::Symlink { .. }), "{err}");
    assert!(err.to_string().contains(link.as_str()));
    assert_eq!(names(&dir), ["link", "real"], "nothing created");

    let file = Options::new()
        .symlinks(Symlinks::Replace)
        .open(&link)
        .unwrap();
    file.update(|old| {
        assert_eq!(old, Some(&b"old"[..]), "old contents read through the link");
        Ok::<_, Error>(b"new".to_vec())
    })
    .unwrap();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_file()
    );
    assert_eq!(std::fs::read(&link).unwrap(), b"new");
    assert_eq!(std::fs::read(&real).unwrap(), b"old");
}

#[test]
fn bad_input_gets_a_clear_error_and_changes_nothing() {
    let (_d, dir) = tempdir();
    std::fs::create_dir(dir.join("sub")).unwrap();
    std::fs::create_dir(dir.join("g.lock")).unwrap();
    let before = names(&dir);

    let cases: Vec<(String, &str)> = vec![
        (dir.join("missing/a").to_string(), "missing"),
        (dir.join("sub").to_string(), "directory"),
        ("/".to_string(), "file name"),
        (dir.join("sub/..").to_string(), "file name"),
        (format!("{dir}/sub/"), "directory"),
        (format!("{dir}/sub/."), "directory"),
        (String::new(), "empty"),
    ];
    for (path, expect) in cases {
        let err = TxFile::open(&path).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains(expect), "{path}: {msg}");
        if !path.is_empty() && path != "/" {
            assert!(msg.contains(dir.as_str()), "{path}: {msg}");
        }
    }
    let err = TxFile::open(dir.join("missing/a")).unwrap_err();
    assert_eq!(io_op(&err), Some(Op::OpenDir), "{err:?}");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let err = TxFile::open(dir.join("g")).unwrap_err();
    assert!(matches!(err, Error::ForeignGuard { .. }), "{err:?}");
    assert!(err.to_string().contains("is a directory"), "{err}");
    assert_eq!(names(&dir), before, "nothing created or removed");
}

/// A user who may read the directory but not write it (a monitor, a web
/// server): opening and reading work, writing is a clear permission error.
/// Runs as an unprivileged user (re-executed through setpriv as `nobody`
/// when root, since root ignores directory permissions).
#[test]
fn unwritable_directory_is_a_clear_error() {
    if role().as_deref() == Some("unwritable") {
        let dir = camino::Utf8PathBuf::from(std::env::var("DIR").unwrap());
        // Opening creates nothing, so it works; so does reading.
        let reader = TxFile::open(dir.join("r")).expect("open without write access");
        assert_eq!(reader.read().unwrap().as_deref(), Some(&b"committed"[..]));
        let missing = TxFile::open(dir.join("a")).expect("open without write access");
        assert_eq!(missing.read().unwrap(), None);
        // A transaction needs the guard, which cannot be created.
        for file in [&reader, &missing] {
            let err = file.begin().map(drop).unwrap_err();
            assert_eq!(io_op(&err), Some(Op::OpenGuard), "{err:?}");
            assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
            let guard = format!("{}`: Permission denied", file.guard_path());
            assert!(err.to_string().contains(&guard), "{err}");
        }
        let err = reader
            .update(|_| Ok::<_, Error>(b"x".to_vec()))
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        // Still readable after the failed attempts.
        assert_eq!(reader.read().unwrap().as_deref(), Some(&b"committed"[..]));
        // With the guard present, commit fails at the temporary file.
        let err = TxFile::open(dir.join("b"))
            .unwrap()
            .update(set(b"x"))
            .unwrap_err();
        assert_eq!(io_op(&err), Some(Op::CreateTemp), "{err:?}");
        assert!(err.to_string().contains(dir.as_str()), "{err}");
        return;
    }
    if role().is_some() {
        return;
    }
    let (_d, dir) = tempdir();
    std::fs::write(dir.join("r"), "committed").unwrap();
    std::fs::set_permissions(dir.join("r"), std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(dir.join("b"), "old").unwrap();
    std::fs::write(dir.join("b.lock"), "").unwrap();
    std::fs::set_permissions(dir.join("b.lock"), std::fs::Permissions::from_mode(0o666)).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o555)).unwrap();
    let mut cmd = run_role(
        "unwritable_directory_is_a_clear_error",
        "unwritable",
        &[("DIR", dir.to_string())],
    );
    if is_root() {
        // Root ignores directory permissions: drop to nobody for the check.
        let exe = cmd.get_program().to_owned();
        let args: Vec<_> = cmd.get_args().map(|a| a.to_owned()).collect();
        let mut wrapped = std::process::Command::new("setpriv");
        wrapped
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(exe)
            .args(args)
            .envs(
                cmd.get_envs()
                    .filter_map(|(k, v)| v.map(|v| (k.to_owned(), v.to_owned()))),
            )
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        // nobody must be able to reach the test binary and the directory.
        std::fs::set_permissions(
            dir.parent().unwrap(),
            std::fs::Permissions::from_mode(0o755),
        )
        .ok();
        cmd = wrapped;
    }
    let out = cmd.output().expect("run unprivileged check");
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    common::check(out, "unprivileged check");
    assert_eq!(std::fs::read(dir.join("b")).unwrap(), b"old");
    assert_eq!(std::fs::read(dir.join("r")).unwrap(), b"committed");
    assert_eq!(names(&dir), ["b", "b.lock", "r"], "nothing created");
}

#[test]
fn every_common_path_type_opens_the_same_target() {
    use std::path::{Path, PathBuf};
    let (_d, dir) = tempdir();
    let utf8 = dir.join("state");
    let std_buf: PathBuf = dir.as_std_path().join("state");
    let as_string: String = utf8.to_string();
    let handles = [
        TxFile::open(&std_buf).unwrap(),
        TxFile::open(std_buf.as_path()).unwrap(),
        TxFile::open(Path::new(as_string.as_str())).unwrap(),
        TxFile::open(&as_string).unwrap(),
        TxFile::open(as_string.as_str()).unwrap(),
        TxFile::open(&utf8).unwrap(),
        TxFile::open(utf8.as_path()).unwrap(),
        Options::new().open(&std_buf).unwrap(),
    ];
    for file in &handles {
        assert_eq!(file.path(), utf8);
    }
    txfile::update(&std_buf, |_| Ok::<_, Error>(b"1".to_vec())).unwrap();
    let batch = txfile::Batch::open([std_buf.clone(), dir.as_std_path().join("other")]).unwrap();
    assert_eq!(batch.read().unwrap()[0].as_deref(), Some(&b"1"[..]));
    assert_eq!(txfile::recover(dir.as_std_path()).unwrap(), 0);
    // camino is re-exported for the types the accessors return.
    let _: &txfile::camino::Utf8Path = handles[0].path();
}

#[test]
fn a_path_that_is_not_utf8_is_refused_clearly_and_creates_nothing() {
    use std::ffi::OsStr;
    use std::os::unix::ffi::OsStrExt;
    let (_d, dir) = tempdir();
    let path = dir.as_std_path().join(OsStr::from_bytes(b"caf\xe9"));
    let err = TxFile::open(&path).unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    let msg = err.to_string();
    assert!(msg.contains("caf\u{fffd}"), "{msg}");
    assert!(msg.contains("not valid UTF-8"), "{msg}");
    let err = txfile::update(&path, |_| Ok::<_, Error>(Vec::new())).unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
    let err = txfile::recover(dir.as_std_path().join(OsStr::from_bytes(b"\xff"))).unwrap_err();
    assert!(matches!(err, Error::InvalidPath { .. }), "{err:?}");
    assert_eq!(names(&dir), Vec::<String>::new());
}

#[test]
fn update_returning_gives_back_the_value_computed_under_the_lock() {
    let (_d, dir) = tempdir();
    let path = dir.join("counter");
    let file = TxFile::open(&path).unwrap();
    let bump = |old: Option<&[u8]>| -> Result<(Vec<u8>, u64), Error> {
        let n = common::parse_counter(old) + 1;
        Ok((n.to_string().into_bytes(), n))
    };
    assert_eq!(file.update_returning(bump).unwrap(), 1);
    assert_eq!(file.update_returning(bump).unwrap(), 2);
    assert_eq!(file.read().unwrap().as_deref(), Some(&b"2"[..]));

    // Unchanged contents: nothing written, the value still returned.
    let mtime = std::fs::metadata(&path).unwrap().modified().unwrap();
    let seen = file
        .update_returning(|old| {
            Ok::<_, Error>((old.unwrap_or_default().to_vec(), old.map(<[u8]>::len)))
        })
        .unwrap();
    assert_eq!(seen, Some(1));
    assert_eq!(std::fs::metadata(&path).unwrap().modified().unwrap(), mtime);

    // A failing closure: no value, nothing changed.
    let err = file
        .update_returning(|_| Err::<(Vec<u8>, u64), _>(std::io::Error::other("no")))
        .unwrap_err();
    assert!(matches!(err, Error::Aborted { .. }), "{err:?}");
    assert_eq!(file.read().unwrap().as_deref(), Some(&b"2"[..]));

    // Across threads, each value belongs to the version its commit replaced:
    // every increment is seen by exactly one caller.
    let mut values: Vec<u64> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                let file = file.clone();
                scope.spawn(move || {
                    (0..25)
                        .map(|_| file.update_returning(bump).unwrap())
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    values.sort_unstable();
    assert_eq!(values, (3..=102).collect::<Vec<_>>());
    verify_no_leftovers(&dir);
}

#[test]
fn open_and_read_create_nothing_the_first_transaction_creates_the_guard() {
    let (_d, dir) = tempdir();
    std::fs::write(dir.join("present"), "v1").unwrap();
    let present = TxFile::open(dir.join("present")).unwrap();
    let missing = TxFile::open(dir.join("missing")).unwrap();
    assert_eq!(present.read().unwrap().as_deref(), Some(&b"v1"[..]));
    assert_eq!(missing.read().unwrap(), None);
    assert_eq!(names(&dir), ["present"], "open and read create nothing");

    // The first transaction opens (creating) the guard; a second handle and
    // a clone share it and exclude each other.
    let tx = present.begin().unwrap();
    assert_eq!(names(&dir), ["present", "present.lock"]);
    let other = TxFile::open(dir.join("present")).unwrap();
    assert!(other.try_begin().unwrap().is_none());
    assert!(present.clone().try_begin().unwrap().is_none());
    tx.rollback();
    other.update(set(b"v2")).unwrap();
    assert_eq!(present.read().unwrap().as_deref(), Some(&b"v2"[..]));
    assert_eq!(names(&dir), ["present", "present.lock"]);
}
