//! A handle works on the directory it opened, not on a path: every call
//! goes through the directory descriptor opened at `TxFile::open`, and
//! handles on files of one directory share that descriptor.
//!
//! (The command-line tool opens a handle per call, so a directory renamed
//! between two calls is simply found under its new path by the next one.)
#![cfg(unix)] // open-descriptor limits (setrlimit) and Unix directory semantics

use std::io::Write;
use std::process::Command;

use camino::{Utf8Path, Utf8PathBuf};
use txfile::{Batch, TxFile};

fn tempdir() -> (tempfile::TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("UTF-8 tempdir");
    (dir, path)
}

fn names(dir: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|entry| {
            entry
                .expect("entry")
                .file_name()
                .into_string()
                .expect("UTF-8")
        })
        .collect();
    names.sort();
    names
}

/// `TxFile::open("D/a/f")`, one update, `mv D/a D/b`, a second update: it
/// lands in `D/b/f`, and nothing appears at the old path, not even when a
/// new directory (a redeploy, or someone who controls `D`) takes the old
/// name: a path resolved again at every call would have followed it there.
#[test]
fn a_handle_follows_its_directory_when_it_is_renamed() {
    let (_guard, root) = tempdir();
    std::fs::create_dir(root.join("a")).expect("mkdir");
    let file = TxFile::open(root.join("a/f")).expect("open");
    file.update(|_| Ok::<_, std::io::Error>(b"one".to_vec()))
        .expect("first update");

    std::fs::rename(root.join("a"), root.join("b")).expect("mv a b");
    file.update(|old| {
        assert_eq!(old, Some(&b"one"[..]), "the old version, read in b");
        Ok::<_, std::io::Error>(b"two".to_vec())
    })
    .expect("update after the rename");
    assert_eq!(std::fs::read(root.join("b/f")).expect("read b/f"), b"two");
    assert!(!root.join("a").exists(), "nothing at the old path");

    // Someone makes a new `a` (a symbolic link to elsewhere would do the
    // same): the handle still commits in `b`.
    std::fs::create_dir(root.join("a")).expect("mkdir a again");
    file.update(|_| Ok::<_, std::io::Error>(b"three".to_vec()))
        .expect("update with a new `a`");
    assert_eq!(std::fs::read(root.join("b/f")).expect("read b/f"), b"three");
    assert!(
        names(&root.join("a")).is_empty(),
        "the new `a` is untouched"
    );
    assert_eq!(file.read().expect("read").as_deref(), Some(&b"three"[..]));
    assert_eq!(names(&root.join("b")), ["f", "f.lock"]);
    // `path()` is the path given at open.
    assert_eq!(file.path(), root.join("a/f"));
}

/// A batch's members and its journal go through their members'
/// directories too: a batch committed after the directory moved lands in
/// it, complete, with the journal gone.
#[test]
fn a_batch_follows_its_directory_when_it_is_renamed() {
    let (_guard, root) = tempdir();
    std::fs::create_dir(root.join("a")).expect("mkdir");
    std::fs::create_dir(root.join("c")).expect("mkdir");
    let x = TxFile::open(root.join("a/x")).expect("open x");
    let y = TxFile::open(root.join("a/y")).expect("open y");
    let z = TxFile::open(root.join("c/z")).expect("open z");
    std::fs::rename(root.join("a"), root.join("b")).expect("mv a b");
    std::fs::rename(root.join("c"), root.join("d")).expect("mv c d");

    let batch = Batch::new([x, y, z]).expect("batch");
    let mut tx = batch.begin().expect("begin");
    for (i, contents) in [&b"X"[..], b"Y", b"Z"].into_iter().enumerate() {
        tx.member(i).write_all(contents).expect("write");
    }
    tx.commit().expect("commit");
    assert_eq!(std::fs::read(root.join("b/x")).expect("x"), b"X");
    assert_eq!(std::fs::read(root.join("b/y")).expect("y"), b"Y");
    assert_eq!(std::fs::read(root.join("d/z")).expect("z"), b"Z");
    assert_eq!(names(&root.join("b")), ["x", "x.lock", "y", "y.lock"]);
    assert_eq!(names(&root.join("d")), ["z", "z.lock"]);
    assert!(!root.join("a").exists() && !root.join("c").exists());
}

/// A batch across directories names each directory in its journal by the
/// path it has at the commit (renamed since open: found from the
/// descriptor). When a member's directory has no path any more (removed),
/// the batch is refused before anything is written: the error names the
/// directory, and no member, journal or temporary file changes.
#[cfg(target_os = "linux")]
#[test]
fn a_batch_across_directories_is_refused_when_a_directory_is_gone() {
    let (_guard, root) = tempdir();
    std::fs::create_dir(root.join("a")).expect("mkdir");
    std::fs::create_dir(root.join("c")).expect("mkdir");
    std::fs::write(root.join("a/x"), "old").expect("x");
    let x = TxFile::open(root.join("a/x")).expect("open x");
    let z = TxFile::open(root.join("c/z")).expect("open z");
    let batch = Batch::new([x, z]).expect("batch");
    let mut tx = batch.begin().expect("begin");
    for member in tx.members_mut() {
        member.write_all(b"new").expect("write");
    }
    std::fs::remove_dir_all(root.join("c")).expect("rm -r c");

    let err = tx.commit().expect_err("nowhere to name `c`");
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{err}");
    let shown = format!("{err:?}");
    assert!(
        shown.contains(root.join("c").as_str()) && shown.contains("renamed or removed"),
        "{shown}"
    );
    assert_eq!(std::fs::read(root.join("a/x")).expect("x"), b"old");
    assert_eq!(names(&root.join("a")), ["x", "x.lock"]);
}

/// Files in the one directory the test fills.
const HANDLES: usize = 900;
/// The soft limit on open descriptors the child runs under: the common
/// default.
const NOFILE: u64 = 1024;

/// 900 handles on 900 files of one directory, each doing one update, under
/// `ulimit -n 1024`: the handles share one directory descriptor, and each
/// holds its guard's, about 901 in all. (With a directory descriptor per
/// handle, 1,800, the 509th handle failed with `EMFILE`.) Runs in a child
/// process, which alone has the lowered limit.
#[test]
fn nine_hundred_handles_fit_under_ulimit_1024() {
    if std::env::var("TXFILE_ROLE").as_deref() == Ok("nofile") {
        nine_hundred_handles();
        return;
    }
    let exe = std::env::current_exe().expect("current test binary");
    let output = Command::new(exe)
        .args([
            "nine_hundred_handles_fit_under_ulimit_1024",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("TXFILE_ROLE", "nofile")
        .output()
        .expect("run the child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "the child failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    if let Some(line) = stdout.lines().find(|line| line.starts_with("skipped:")) {
        println!("{line}");
    }
}

fn nine_hundred_handles() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    if limit.maximum.is_some_and(|max| max < NOFILE) {
        println!("skipped: the hard limit on open files is below {NOFILE}");
        return;
    }
    setrlimit(
        Resource::Nofile,
        rustix::process::Rlimit {
            current: Some(NOFILE),
            maximum: limit.maximum,
        },
    )
    .expect("lower RLIMIT_NOFILE");
    let (_guard, dir) = tempdir();
    let handles: Vec<TxFile> = (0..HANDLES)
        .map(|i| {
            let file = TxFile::open(dir.join(format!("f{i}")))
                .unwrap_or_else(|e| panic!("open handle {i}: {e}"));
            file.update(|_| Ok::<_, std::io::Error>(i.to_string().into_bytes()))
                .unwrap_or_else(|e| panic!("update through handle {i}: {e}"));
            file
        })
        .collect();
    // Every handle still works, and wrote its own file.
    for (i, file) in handles.iter().enumerate() {
        assert_eq!(file.read().expect("read"), Some(i.to_string().into_bytes()));
    }
    assert_eq!(names(&dir).len(), 2 * HANDLES, "targets and guards only");
}

/// A batch journal names each member's directory, for recovery after a
/// crash. Committed after the members' directory was renamed, it must name
/// the directory where the members are now (for a batch within one
/// directory: that directory, whatever its path), or recovery from the new
/// path rolls back members a crash had not yet renamed while others were:
/// a half-committed batch. On the simulated machine, with a power loss
/// right after the first member's rename, every state the loss can leave
/// must recover all new or all old.
#[cfg(feature = "sim")]
mod batch_after_a_directory_rename {
    use std::io::Write;

    use txfile::sim::{Enumeration, OpKind, SimFs};
    use txfile::{Batch, Options};

    /// Opens `members` on `sim`, renames each directory of `moves`, commits
    /// a batch writing `new` into every member with a power loss right
    /// after its first rename, and returns the machine, crashed.
    fn crash_mid_batch(sim: &SimFs, members: &[&str], moves: &[(&str, &str)]) -> SimFs {
        let files: Vec<_> = members
            .iter()
            .map(|path| {
                Options::new()
                    .filesystem(sim)
                    .open(path)
                    .expect("open a member")
            })
            .collect();
        for (from, to) in moves {
            sim.rename_dir(from, to).expect("mv");
        }
        let batch = Batch::new(files).expect("batch");
        let mut tx = batch.begin().expect("begin");
        for member in tx.members_mut() {
            member.write_all(b"new").expect("write");
        }
        let crasher = sim.clone();
        sim.after_next(OpKind::Rename, move || crasher.crash_now());
        assert!(tx.commit().is_err(), "the power went mid-commit");
        assert!(sim.is_crashed());
        sim.clone()
    }

    /// Recovers every state through handles opened at the members' new
    /// paths, and checks each: all old or all new, and no journal left.
    fn check_every_state(crashed: &SimFs, now: &[&str]) {
        let mut states = 0;
        let mut rolled_forward = 0;
        for state in crashed
            .crash_states(&Enumeration::new())
            .expect("within the bound")
        {
            states += 1;
            let files: Vec<_> = now
                .iter()
                .map(|path| {
                    Options::new()
                        .filesystem(&state)
                        .open(path)
                        .expect("reopen")
                })
                .collect();
            for file in &files {
                file.begin().expect("begin recovers").rollback();
            }
            let seen: Vec<_> = files
                .iter()
                .map(|file| file.read().expect("read"))
                .collect();
            let all = |v: &[u8]| seen.iter().all(|s| s.as_deref() == Some(v));
            assert!(
                all(b"old") || all(b"new"),
                "state {states}: a half-committed batch: {:?}",
                seen.iter()
                    .map(|s| s.as_deref().map(String::from_utf8_lossy))
                    .collect::<Vec<_>>()
            );
            rolled_forward += usize::from(all(b"new"));
            for path in now {
                let dir = camino::Utf8Path::new(path).parent().expect("dir");
                let names = state.list_dir(dir).expect("list");
                assert!(
                    !names
                        .iter()
                        .any(|n| n.ends_with(".txjournal") || n.ends_with(".txtmp")),
                    "state {states}: left behind in {dir}: {names:?}"
                );
            }
        }
        assert!(
            states > 0 && rolled_forward > 0,
            "{states} states, {rolled_forward} rolled forward"
        );
    }

    #[test]
    fn within_one_directory() {
        let sim = SimFs::new();
        sim.create_dir_all("/D/a").expect("mkdir");
        sim.write_file("/D/a/x", b"old").expect("x");
        sim.write_file("/D/a/y", b"old").expect("y");
        let crashed = crash_mid_batch(&sim, &["/D/a/x", "/D/a/y"], &[("/D/a", "/D/b")]);
        check_every_state(&crashed, &["/D/b/x", "/D/b/y"]);
    }

    #[test]
    fn across_directories() {
        let sim = SimFs::new();
        sim.create_dir_all("/D/a").expect("mkdir");
        sim.create_dir_all("/D/c").expect("mkdir");
        sim.write_file("/D/a/x", b"old").expect("x");
        sim.write_file("/D/c/z", b"old").expect("z");
        let crashed = crash_mid_batch(&sim, &["/D/a/x", "/D/c/z"], &[("/D/a", "/D/b")]);
        check_every_state(&crashed, &["/D/b/x", "/D/c/z"]);
    }
}
