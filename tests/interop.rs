//! Interoperation with other lockers (`flock(1)`, Python's `fcntl.lockf`) and
//! a guard file deleted while held.
#![cfg(unix)] // flock(1) and Python's fcntl.lockf, which exist only on Unix

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use common::{names, parse_versioned, role, run_role, tempdir, versioned};
use txfile::{Error, LockStyle, Options};
use txfile_testkit::process::python_lockf;

fn have(tool: &str) -> bool {
    Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// A child whose stdout lines arrive on a channel.
struct Lines {
    child: Child,
    lines: Receiver<String>,
}

impl Lines {
    fn spawn(mut cmd: Command) -> Lines {
        let mut child = cmd.stdout(Stdio::piped()).spawn().expect("spawn");
        let stdout = child.stdout.take().expect("piped");
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines { child, lines }
    }

    /// Waits for a line containing `want`; returns it.
    fn expect(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) if line.contains(want) => return line,
                Ok(_) => {}
                Err(e) => panic!("no line with {want:?}: {e}"),
            }
        }
    }

    /// Waits for the child to exit successfully; returns the lines not yet read.
    fn rest(mut self) -> Vec<String> {
        let status = self.child.wait().expect("wait");
        assert!(status.success(), "child failed: {status}");
        // The reader thread ends with the pipe; give it the last lines.
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            rest.push(line);
        }
        rest
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn flock_command_and_txfile_exclude_each_other() {
    if !have("flock") {
        eprintln!("skipped: flock(1) is not installed (util-linux)");
        return;
    }
    let (_d, dir) = tempdir();
    let target = dir.join("data");
    let file = Options::new()
        .timeout(Duration::from_millis(300))
        .open(&target)
        .unwrap();
    let guard = file.guard_path().to_owned();

    // flock(1) holds the guard: txfile stays out.
    let mut cmd = Command::new("flock");
    // -o: the lock stays with flock itself, so killing it releases the lock.
    cmd.args([
        "-o",
        "-n",
        guard.as_str(),
        "-c",
        "echo locked; exec sleep 10",
    ]);
    let holder = Lines::spawn(cmd);
    holder.expect("locked");
    assert!(file.try_begin().unwrap().is_none());
    assert!(matches!(file.begin(), Err(Error::Timeout { .. })));
    assert!(file.update(|_| Ok::<_, Error>(b"x".to_vec())).is_err());
    assert!(
        !target.exists(),
        "nothing written while flock(1) held the guard"
    );
    drop(holder);

    // txfile holds it: `flock -n` fails; released, it succeeds.
    let tx = file.begin().unwrap();
    let status = Command::new("flock")
        .args(["-n", guard.as_str(), "true"])
        .status()
        .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "flock -n got in while txfile held the lock"
    );
    tx.rollback();
    let status = Command::new("flock")
        .args(["-n", guard.as_str(), "true"])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn python_lockf_and_posix_style_exclude_each_other() {
    if !have("python3") {
        eprintln!("skipped: python3 is not installed");
        return;
    }
    let (_d, dir) = tempdir();
    let target = dir.join("data");
    let file = Options::new()
        .lock_style(LockStyle::Posix)
        .timeout(Duration::from_millis(300))
        .open(&target)
        .unwrap();
    let guard = file.guard_path().to_owned();
    // The script opens the guard without creating it: a first transaction
    // creates it (opening the handle does not).
    file.try_begin().unwrap().expect("free").rollback();
    let python = |mode: &str| python_lockf(&guard, mode);

    let holder = Lines::spawn(python("hold"));
    holder.expect("locked");
    assert!(file.try_begin().unwrap().is_none());
    assert!(matches!(file.begin(), Err(Error::Timeout { .. })));
    drop(holder);

    let tx = file.begin().unwrap();
    assert_eq!(
        python("try").status().unwrap().code(),
        Some(1),
        "lockf got in while txfile held the lock"
    );
    tx.rollback();
    assert!(python("try").status().unwrap().success());
}

/// Child role for the guard-deletion test: take the lock, mark the critical
/// section, report any other process inside, wait to be released, commit an
/// increment.
#[test]
fn holder_entry() {
    if role().as_deref() != Some("holder") {
        return;
    }
    let env = |k: &str| std::env::var(k).unwrap_or_else(|_| panic!("{k}"));
    let dir = Utf8PathBuf::from(env("DIR"));
    let me = env("NAME");
    let options = Options::new();
    #[cfg(txfile_mutants)]
    let options = if std::env::var_os("MUTANT").is_some() {
        options.mutant(txfile::Mutant::NoGuardIdentityCheck)
    } else {
        options
    };
    let file = options.open(dir.join("counter")).unwrap();
    let mut out = std::io::stdout();
    writeln!(out, "OPENED {me}").unwrap();
    let mut tx = file.begin().unwrap();
    for other in names(&dir).iter().filter_map(|n| n.strip_prefix("inside.")) {
        writeln!(out, "OVERLAP {me} with {other}").unwrap();
    }
    std::fs::write(dir.join(format!("inside.{me}")), "").unwrap();
    writeln!(out, "IN {me}").unwrap();
    while !dir.join(format!("release.{me}")).exists() {
        std::thread::sleep(Duration::from_millis(5));
    }
    let n = parse_versioned(tx.old_bytes().unwrap().unwrap()).unwrap();
    tx.write_all(&versioned(n + 1, 10)).unwrap();
    std::fs::remove_file(dir.join(format!("inside.{me}"))).unwrap();
    match tx.commit() {
        Ok(()) => writeln!(out, "COMMITTED {me}").unwrap(),
        Err(Error::Conflict { .. }) => writeln!(out, "CONFLICT {me}").unwrap(),
        Err(e) => panic!("{me}: {e}"),
    }
}

fn holder(dir: &Utf8Path, name: &str, mutant: bool) -> Lines {
    let mut env = vec![("DIR", dir.to_string()), ("NAME", name.to_string())];
    if mutant {
        env.push(("MUTANT", "1".to_string()));
    }
    let mut cmd = run_role("holder_entry", "holder", &env);
    cmd.stderr(Stdio::inherit());
    Lines::spawn(cmd)
}

/// P1 holds the lock; P3 has the guard open and waits for it; the guard file
/// is deleted; P4 arrives, creates a fresh guard and gets in (the overlap of
/// P4 with P1 is the documented cost of deleting a held guard). When P1
/// commits, P3 gets the lock on the deleted inode: the identity check must
/// send it to the fresh guard, behind P4. Returns every line the holders
/// printed and the final counter.
fn delete_guard_while_held(mutant: bool) -> (Vec<String>, u64) {
    let (_d, dir) = tempdir();
    std::fs::write(dir.join("counter"), versioned(0, 10)).unwrap();
    let guard = dir.join("counter.lock");
    let p1 = holder(&dir, "P1", mutant);
    p1.expect("IN P1");
    let p3 = holder(&dir, "P3", mutant);
    p3.expect("OPENED P3");
    std::fs::write(dir.join("release.P3"), "").unwrap(); // P3 leaves as soon as it is in
    std::thread::sleep(Duration::from_millis(300)); // P3 is now blocked on the old guard
    std::fs::remove_file(&guard).unwrap();
    let p4 = holder(&dir, "P4", mutant);
    p4.expect("IN P4");
    std::fs::write(dir.join("release.P1"), "").unwrap();
    p1.expect("COMMITTED P1");
    std::thread::sleep(Duration::from_millis(500)); // P3 would get in now, if it could
    std::fs::write(dir.join("release.P4"), "").unwrap();
    let mut lines = Vec::new();
    for p in [p1, p3, p4] {
        // Only the holders' own reports, not their test harness's lines.
        lines.extend(
            p.rest()
                .into_iter()
                .filter(|l| l.starts_with(char::is_uppercase)),
        );
    }
    let counter = parse_versioned(&std::fs::read(dir.join("counter")).unwrap()).unwrap();
    (lines, counter)
}

#[test]
fn guard_deleted_while_held_keeps_waiters_out() {
    if role().is_some() {
        return;
    }
    let (lines, counter) = delete_guard_while_held(false);
    eprintln!("guard deleted while held: {lines:?}, counter {counter}");
    assert!(
        !lines.iter().any(|l| l.starts_with("OVERLAP P3")),
        "P3 got in beside another holder: {lines:?}"
    );
    let committed = lines.iter().filter(|l| l.starts_with("COMMITTED")).count() as u64;
    // P1 commits; P4 began before P1's commit, so its commit is a conflict
    // (no lost update); P3 commits last.
    assert_eq!(counter, 1 + committed, "{lines:?}");
    assert!(lines.iter().any(|l| l == "CONFLICT P4"), "{lines:?}");
}

/// Without the identity check, P3 gets in on the deleted guard while P4 is
/// inside: the test above can fail.
#[cfg(txfile_mutants)]
#[test]
fn mutant_without_identity_check_is_caught() {
    if role().is_some() {
        return;
    }
    let (lines, _) = delete_guard_while_held(true);
    eprintln!("identity-check mutant: {lines:?}");
    assert!(
        lines.iter().any(|l| l.starts_with("OVERLAP P3")),
        "{lines:?}"
    );
}
