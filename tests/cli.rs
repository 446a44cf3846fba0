//! The `txfile` command, run as a built binary.
#![cfg(all(feature = "cli", unix))]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{PermissionsExt, symlink};
use std::process::{Child, Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::Command;
use camino::{Utf8Path, Utf8PathBuf};
use common::{names, tempdir, verify_no_leftovers};

/// Increments the number on stdin (none counts as 0).
const INCREMENT: &str = "read n || true; echo $(( ${n:-0} + 1 ))";

fn txfile() -> Command {
    Command::cargo_bin("txfile").expect("the txfile binary is built with --features cli")
}

fn txfile_path() -> Utf8PathBuf {
    Utf8PathBuf::from_path_buf(assert_cmd::cargo::cargo_bin("txfile")).expect("UTF-8 path")
}

fn read(path: &Utf8Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

/// A fresh directory holding `name` with `contents`; the `TempDir` removes
/// it when dropped.
fn dir_with(
    name: &str,
    contents: impl AsRef<[u8]>,
) -> (tempfile::TempDir, Utf8PathBuf, Utf8PathBuf) {
    let (tmp, dir) = tempdir();
    let path = dir.join(name);
    std::fs::write(&path, contents).unwrap();
    (tmp, dir, path)
}

/// `txfile edit PATH -- CMD...`.
fn edit(path: &Utf8Path, cmd: &[&str]) -> Command {
    let mut command = txfile();
    command.args(["edit", path.as_str(), "--"]).args(cmd);
    command
}

fn stderr_of(output: &std::process::Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

/// Holds `FILE.lock` with flock(1) in a shell, until dropped.
struct FlockHolder(Child);

impl FlockHolder {
    fn hold(guard: &Utf8Path) -> FlockHolder {
        let mut child = StdCommand::new("sh")
            .args([
                "-c",
                r#"exec 9>>"$1" && /usr/bin/flock -x 9 && echo locked && exec sleep 60"#,
                "sh",
                guard.as_str(),
            ])
            .stdout(Stdio::piped())
            .spawn()
            .expect("start flock(1)");
        let mut line = String::new();
        BufReader::new(child.stdout.as_mut().expect("piped"))
            .read_line(&mut line)
            .expect("read from the flock holder");
        assert_eq!(line, "locked\n", "flock(1) did not take {guard}");
        FlockHolder(child)
    }
}

impl Drop for FlockHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A directory holding `f` with "old\n", its guard held by flock(1) until
/// the `FlockHolder` is dropped.
fn locked_file() -> (tempfile::TempDir, Utf8PathBuf, Utf8PathBuf, FlockHolder) {
    let (tmp, dir, path) = dir_with("f", "old\n");
    let holder = FlockHolder::hold(&dir.join("f.lock"));
    (tmp, dir, path, holder)
}

fn send_signal(pid: u32, signal: &str) {
    let status = StdCommand::new("kill")
        .args([&format!("-{signal}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid}");
}

fn is_alive(pid: &str) -> bool {
    StdCommand::new("kill")
        .args(["-0", pid])
        .stderr(Stdio::null())
        .status()
        .expect("run kill")
        .success()
}

/// Waits until `dir` holds a txfile temporary file.
fn wait_for_temp(dir: &Utf8Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !names(dir).iter().any(|n| n.ends_with(".txtmp")) {
        assert!(
            Instant::now() < deadline,
            "no temporary file appeared in {dir}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn wait_with_deadline(child: &mut Child) -> std::process::ExitStatus {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait for txfile") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "txfile did not exit after the signal"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn cat_prints_the_contents() {
    let (_tmp, dir, path) = dir_with("f", "one\ntwo\n");
    txfile()
        .args(["cat", path.as_str()])
        .assert()
        .success()
        .stdout("one\ntwo\n");
    assert_eq!(names(&dir), ["f"], "cat creates nothing");
}

#[test]
fn cat_of_a_missing_file_fails_with_one_line() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("missing");
    let output = txfile().args(["cat", path.as_str()]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with(&format!("txfile: failed to open `{path}`: ")),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn write_replaces_the_contents_with_stdin() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("f");
    txfile()
        .args(["write", path.as_str()])
        .write_stdin("first\n")
        .assert()
        .success();
    assert_eq!(read(&path), "first\n");
    txfile()
        .args(["write", "--no-sync", path.as_str()])
        .write_stdin("second\n")
        .assert()
        .success();
    assert_eq!(read(&path), "second\n");
    assert_eq!(names(&dir), ["f", "f.lock"]);
}

#[test]
fn write_streams_large_input() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("big");
    let data: Vec<u8> = (0..5_000_000u32).map(|i| (i % 251) as u8).collect();
    txfile()
        .args(["write", path.as_str()])
        .write_stdin(data.clone())
        .assert()
        .success();
    assert!(std::fs::read(&path).unwrap() == data);
    verify_no_leftovers(&dir);
}

#[test]
fn edit_replaces_the_contents_with_cmd_output() {
    let (_tmp, dir, path) = dir_with("f", "shout\n");
    edit(&path, &["tr", "a-z", "A-Z"])
        .assert()
        .success()
        .stdout("");
    assert_eq!(read(&path), "SHOUT\n");
    verify_no_leftovers(&dir);
}

#[test]
fn edit_of_a_missing_file_reads_nothing() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("counter");
    for _ in 0..3 {
        edit(&path, &["sh", "-c", INCREMENT]).assert().success();
    }
    assert_eq!(read(&path), "3\n");
}

#[test]
fn edit_streams_large_files_both_ways() {
    // `cat` writes output before it has read all its input: reading and
    // writing must overlap or both pipes fill up and everything stops.
    let data: Vec<u8> = (0..8_000_000u32).map(|i| (i % 253) as u8).collect();
    let (_tmp, dir, path) = dir_with("big", &data);
    edit(&path, &["sh", "-c", "cat; echo end"])
        .timeout(Duration::from_secs(60))
        .assert()
        .success();
    let mut expected = data;
    expected.extend_from_slice(b"end\n");
    assert!(std::fs::read(&path).unwrap() == expected);
    verify_no_leftovers(&dir);
}

#[test]
fn edit_cmd_may_ignore_its_input() {
    let (_tmp, _dir, path) = dir_with("f", vec![b'x'; 1_000_000]);
    edit(&path, &["echo", "short"]).assert().success();
    assert_eq!(read(&path), "short\n");
}

#[test]
fn edit_cmd_failure_changes_nothing_and_passes_the_code_on() {
    let (_tmp, dir, path) = dir_with("f", "keep\n");
    // Enough output to reach a temporary file before CMD fails.
    let script = "head -c 200000 /dev/zero; echo oops >&2; exit 3";
    let output = edit(&path, &["sh", "-c", script]).output().unwrap();
    assert_eq!(output.status.code(), Some(3));
    assert_eq!(
        stderr_of(&output),
        "oops\n",
        "CMD's stderr passes through, alone"
    );
    assert_eq!(read(&path), "keep\n");
    verify_no_leftovers(&dir);
}

#[test]
fn edit_cmd_that_cannot_start_is_an_error() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("f");
    let output = edit(&path, &["/nonexistent/cmd"]).output().unwrap();
    assert_eq!(output.status.code(), Some(127), "not found, as shells say");
    let stderr = stderr_of(&output);
    assert!(
        stderr.starts_with("txfile: failed to run `/nonexistent/cmd`: "),
        "{stderr}"
    );
    assert!(!path.exists());
}

#[test]
fn errors_name_the_operation_path_and_cause() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("no/such/dir/f");
    let output = txfile()
        .args(["write", path.as_str()])
        .write_stdin("x")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.starts_with("txfile: failed to "), "{stderr}");
    assert!(
        stderr.contains(&format!("`{}`: ", dir.join("no/such/dir"))),
        "{stderr}"
    );
    assert!(stderr.contains("No such file or directory"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    txfile().args(["write"]).assert().code(2);
    txfile()
        .args(["write", "--mode", "999", "f"])
        .assert()
        .code(2);
    txfile().args(["edit", "f"]).assert().code(2);
    txfile().args(["lock", "f"]).assert().code(2);
    txfile()
        .args(["lock", "f", "--no-such-option"])
        .assert()
        .code(2);
    txfile().args(["frobnicate"]).assert().code(2);
    txfile().arg("--version").assert().code(0);
}

#[test]
fn concurrent_edits_lose_no_increment() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("counter");
    let loop_script = r#"i=0; while [ $i -lt 50 ]; do
        "$TXFILE" edit $SYNC "$FILE" -- sh -c "$INCREMENT" || exit 1
        i=$((i + 1))
    done"#;
    let loops: Vec<Child> = (0..4)
        .map(|n| {
            StdCommand::new("sh")
                .args(["-c", loop_script])
                .env("TXFILE", txfile_path())
                .env("FILE", &path)
                .env("INCREMENT", INCREMENT)
                // Half the loops skip the fsyncs; they still exclude each other.
                .env("SYNC", if n % 2 == 0 { "--no-sync" } else { "" })
                .spawn()
                .expect("start a shell loop")
        })
        .collect();
    for mut shell in loops {
        assert!(shell.wait().unwrap().success(), "a shell loop failed");
    }
    assert_eq!(read(&path), "200\n");
    verify_no_leftovers(&dir);
}

#[test]
fn flock_holding_the_guard_times_write_out_with_75() {
    let (_tmp, dir, path, _holder) = locked_file();
    let started = Instant::now();
    let output = txfile()
        .args(["write", "--timeout", "1", path.as_str()])
        .write_stdin("new\n")
        .output()
        .unwrap();
    let waited = started.elapsed();
    assert_eq!(output.status.code(), Some(75), "{}", stderr_of(&output));
    assert!(
        waited >= Duration::from_millis(900),
        "gave up after {waited:?}"
    );
    assert!(stderr_of(&output).starts_with("txfile: timed out after 1s"));
    assert_eq!(read(&path), "old\n");
    verify_no_leftovers(&dir);
}

#[test]
fn no_wait_gives_up_at_once_with_75() {
    let (_tmp, _dir, path, _holder) = locked_file();
    let started = Instant::now();
    for args in [
        vec!["write", "--no-wait"],
        vec!["edit", "--no-wait", path.as_str(), "--", "true"],
        vec!["lock", "--no-wait", path.as_str(), "--", "true"],
    ] {
        let mut cmd = txfile();
        cmd.args(&args);
        if args[0] == "write" {
            cmd.arg(path.as_str()).write_stdin("new\n");
        }
        let output = cmd.output().unwrap();
        assert_eq!(
            output.status.code(),
            Some(75),
            "{args:?}: {}",
            stderr_of(&output)
        );
        assert_eq!(
            stderr_of(&output),
            format!("txfile: `{path}` is locked by another process\n")
        );
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(read(&path), "old\n");
}

#[test]
fn lock_holds_the_guard_while_cmd_runs() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("f");
    // Inside CMD, flock(1) and a second txfile both find the lock taken.
    let script = r#"/usr/bin/flock -n "$1.lock" true; echo "flock $?"
        "$TXFILE" write --no-wait "$1" </dev/null 2>/dev/null; echo "txfile $?""#;
    txfile()
        .args([
            "lock",
            path.as_str(),
            "--",
            "sh",
            "-c",
            script,
            "sh",
            path.as_str(),
        ])
        .env("TXFILE", txfile_path())
        .assert()
        .success()
        .stdout("flock 1\ntxfile 75\n");
    // Released afterwards, and the file was never touched.
    txfile()
        .args(["write", "--no-wait", path.as_str()])
        .write_stdin("x")
        .assert()
        .success();
    assert_eq!(names(&dir), ["f", "f.lock"]);
}

#[test]
fn lock_passes_cmd_exit_code_on() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("f");
    txfile()
        .args(["lock", path.as_str(), "--", "sh", "-c", "exit 7"])
        .assert()
        .code(7);
    txfile()
        .args(["lock", path.as_str(), "--", "true"])
        .assert()
        .success();
}

#[test]
fn posix_lock_style_excludes_posix_lockers() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("f");
    let script = r#""$TXFILE" edit --lock-style posix --no-wait "$1" -- true 2>/dev/null; echo $?"#;
    txfile()
        .args(["lock", "--lock-style", "posix", path.as_str()])
        .args(["--", "sh", "-c", script, "sh", path.as_str()])
        .env("TXFILE", txfile_path())
        .assert()
        .success()
        .stdout("75\n");
    txfile()
        .args(["write", "--lock-style", "posix", path.as_str()])
        .write_stdin("posix\n")
        .assert()
        .success();
    assert_eq!(read(&path), "posix\n");
}

fn signal_during_edit(signal: &str, code: i32) {
    let (_tmp, dir, path) = dir_with("f", "old\n");
    let pid_file = dir.join("cmd.pid");
    // More output than the transaction buffers in memory, so a temporary
    // file exists when the signal comes; then CMD hangs.
    let script = r#"echo $$ > "$1"; head -c 300000 /dev/zero; exec sleep 60"#;
    let mut child = StdCommand::new(txfile_path())
        .args([
            "edit",
            path.as_str(),
            "--",
            "sh",
            "-c",
            script,
            "sh",
            pid_file.as_str(),
        ])
        .spawn()
        .unwrap();
    wait_for_temp(&dir);
    send_signal(child.id(), signal);
    let status = wait_with_deadline(&mut child);
    assert_eq!(status.code(), Some(code));
    assert_eq!(read(&path), "old\n");
    verify_no_leftovers(&dir);
    let cmd_pid = read(&pid_file);
    assert!(!is_alive(cmd_pid.trim()), "CMD (pid {cmd_pid}) still runs");
}

#[test]
fn sigterm_during_edit_rolls_back_and_kills_cmd() {
    signal_during_edit("TERM", 143);
}

#[test]
fn sigint_during_edit_rolls_back_and_kills_cmd() {
    signal_during_edit("INT", 130);
}

#[test]
fn sigterm_during_write_rolls_back() {
    let (_tmp, dir, path) = dir_with("f", "old\n");
    let mut child = StdCommand::new(txfile_path())
        .args(["write", path.as_str()])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Keep stdin open after writing, as a slow producer would.
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(&vec![b'n'; 300_000]).unwrap();
    wait_for_temp(&dir);
    send_signal(child.id(), "TERM");
    let status = wait_with_deadline(&mut child);
    assert_eq!(status.code(), Some(143));
    drop(stdin);
    assert_eq!(read(&path), "old\n");
    verify_no_leftovers(&dir);
}

#[test]
fn mode_applies_to_new_files_only() {
    let (_tmp, dir) = tempdir();
    let new = dir.join("new");
    txfile()
        .args(["write", "--mode", "600", new.as_str()])
        .write_stdin("s")
        .assert()
        .success();
    assert_eq!(new.metadata().unwrap().permissions().mode() & 0o7777, 0o600);
    let edited = dir.join("edited");
    txfile()
        .args([
            "edit",
            "--mode",
            "0o640",
            edited.as_str(),
            "--",
            "echo",
            "e",
        ])
        .assert()
        .success();
    assert_eq!(
        edited.metadata().unwrap().permissions().mode() & 0o7777,
        0o640
    );

    let existing = dir.join("existing");
    std::fs::write(&existing, "old").unwrap();
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o604)).unwrap();
    txfile()
        .args(["write", "--mode", "600", existing.as_str()])
        .write_stdin("new")
        .assert()
        .success();
    assert_eq!(read(&existing), "new");
    assert_eq!(
        existing.metadata().unwrap().permissions().mode() & 0o7777,
        0o604
    );
}

/// A directory with `real` holding "real\n" and `link` pointing to it.
fn with_link() -> (tempfile::TempDir, Utf8PathBuf, Utf8PathBuf, Utf8PathBuf) {
    let (tmp, dir) = tempdir();
    let real = dir.join("real");
    let link = dir.join("link");
    std::fs::write(&real, "real\n").unwrap();
    symlink("real", &link).unwrap();
    (tmp, dir, real, link)
}

#[test]
fn symlinks_follow_updates_the_target() {
    let (_tmp, dir, real, link) = with_link();
    txfile()
        .args([
            "edit",
            "--symlinks",
            "follow",
            link.as_str(),
            "--",
            "tr",
            "a-z",
            "A-Z",
        ])
        .assert()
        .success();
    assert_eq!(read(&real), "REAL\n");
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert!(
        dir.join("real.lock").exists(),
        "the guard sits beside the real file"
    );
}

#[test]
fn symlinks_replace_replaces_the_link() {
    let (_tmp, _dir, real, link) = with_link();
    txfile()
        .args([
            "edit",
            "--symlinks",
            "replace",
            link.as_str(),
            "--",
            "tr",
            "a-z",
            "A-Z",
        ])
        .assert()
        .success();
    assert!(link.symlink_metadata().unwrap().file_type().is_file());
    assert_eq!(
        read(&link),
        "REAL\n",
        "the old contents were read through the link"
    );
    assert_eq!(read(&real), "real\n");
}

#[test]
fn symlinks_reject_refuses_and_changes_nothing() {
    let (_tmp, _dir, real, link) = with_link();
    for args in [
        vec!["write", "--symlinks", "reject", link.as_str()],
        vec!["cat", "--symlinks", "reject", link.as_str()],
        vec!["lock", "--symlinks", "reject", link.as_str(), "--", "true"],
    ] {
        let output = txfile().args(&args).write_stdin("new\n").output().unwrap();
        assert_eq!(output.status.code(), Some(1), "{args:?}");
        let stderr = stderr_of(&output);
        assert!(stderr.contains("is a symbolic link"), "{args:?}: {stderr}");
    }
    assert!(link.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(read(&real), "real\n");
    // Reading through the link is allowed otherwise.
    txfile()
        .args(["cat", link.as_str()])
        .assert()
        .success()
        .stdout("real\n");
}

#[test]
fn help_shows_an_example_per_command() {
    for command in ["edit", "write", "cat", "lock", "completions"] {
        let output = txfile().args([command, "--help"]).output().unwrap();
        assert!(output.status.success());
        let help = String::from_utf8(output.stdout).unwrap();
        let example = help
            .split_once("Example:\n  ")
            .or_else(|| help.split_once("Examples:\n  "))
            .map(|(_, example)| example)
            .unwrap_or_default();
        assert!(
            example.contains(&format!("txfile {command} ")),
            "{command}: {help}"
        );
    }
    txfile().arg("--help").assert().success();
}

#[test]
fn completions_are_generated() {
    let output = txfile().args(["completions", "bash"]).output().unwrap();
    assert!(output.status.success());
    let script = String::from_utf8(output.stdout).unwrap();
    assert!(script.contains("txfile") && script.contains("--no-wait"));
    txfile().args(["completions", "zsh"]).assert().success();
}

/// The `cmd FILE | txfile write FILE` trap: when cmd fails, its empty output
/// must not replace FILE.
#[test]
fn write_refuses_empty_input_and_changes_nothing() {
    let (_tmp, dir, path) = dir_with("s.json", "{\"n\": 1}\n");
    let output = txfile()
        .args(["write", path.as_str()])
        .write_stdin("")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("standard input was empty"), "{stderr}");
    assert!(stderr.contains(path.as_str()), "{stderr}");
    assert!(stderr.contains("--allow-empty"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert_eq!(read(&path), "{\"n\": 1}\n");
    verify_no_leftovers(&dir);

    // A missing file is not created empty either.
    let fresh = dir.join("fresh");
    txfile()
        .args(["write", fresh.as_str()])
        .write_stdin("")
        .assert()
        .code(1);
    assert!(!fresh.exists());

    // Asked for explicitly, empty input is written; and the lock was free.
    txfile()
        .args(["write", "--no-wait", "--allow-empty", path.as_str()])
        .write_stdin("")
        .assert()
        .success();
    assert_eq!(read(&path), "");
}

#[test]
fn a_failing_pipeline_leaves_the_file_intact() {
    let (_tmp, dir, path) = dir_with("settings", "# comment\nkey = 1\n");
    // sed fails on its script and prints nothing; the shell still runs
    // txfile write, whose exit status is the pipeline's.
    let output = StdCommand::new("sh")
        .args([
            "-c",
            r#"sed 's/unterminated' "$1" | "$TXFILE" write "$1""#,
            "sh",
            path.as_str(),
        ])
        .env("TXFILE", txfile_path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1), "{}", stderr_of(&output));
    assert!(stderr_of(&output).contains("standard input was empty"));
    assert_eq!(read(&path), "# comment\nkey = 1\n");
    verify_no_leftovers(&dir);

    // The same change through `edit`, the protected form: the failure
    // is CMD's status, and nothing changes either.
    edit(&path, &["sed", "s/unterminated"]).assert().failure();
    assert_eq!(read(&path), "# comment\nkey = 1\n");
    edit(&path, &["sed", "/^#/d"]).assert().success();
    assert_eq!(read(&path), "key = 1\n");
}

#[test]
fn edit_of_a_missing_file_with_no_output_leaves_it_missing() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("fresh.json");
    let output = edit(&path, &["cat"]).output().unwrap();
    assert!(output.status.success(), "{}", stderr_of(&output));
    let stderr = stderr_of(&output);
    assert!(stderr.contains("left it missing"), "{stderr}");
    assert!(!path.exists(), "no empty file created");
    verify_no_leftovers(&dir);

    // --create asks for the empty file.
    txfile()
        .args(["edit", "--create", path.as_str(), "--", "cat"])
        .assert()
        .success()
        .stderr("");
    assert_eq!(read(&path), "");

    // An existing file emptied by a successful CMD is CMD's decision.
    std::fs::write(&path, "x").unwrap();
    edit(&path, &["sh", "-c", "cat >/dev/null"])
        .assert()
        .success();
    assert_eq!(read(&path), "");
}

#[test]
fn lock_runs_cmd_without_a_double_dash_like_flock() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("state.json");
    // Everything from CMD on is CMD's, options included.
    let script = r#"/usr/bin/flock -n "$1.lock" true; echo "flock $? $2""#;
    for dash in [&[][..], &["--"][..]] {
        txfile()
            .args(["lock", path.as_str()])
            .args(dash)
            .args(["sh", "-c", script, "sh", path.as_str(), "--verbose"])
            .assert()
            .success()
            .stdout("flock 1 --verbose\n");
    }
    // Options before CMD still apply.
    txfile()
        .args([
            "lock",
            path.as_str(),
            "--timeout",
            "5",
            "sh",
            "-c",
            "exit 7",
        ])
        .assert()
        .code(7);
    // And edit takes CMD the same way.
    edit(&path, &["sh", "-c", "echo one"]).assert().success();
    txfile()
        .args(["edit", path.as_str(), "tr", "a-z", "A-Z"])
        .assert()
        .success();
    assert_eq!(read(&path), "ONE\n");
}

#[test]
fn exit_codes_for_cmd_that_cannot_run_follow_the_shell() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("f");
    let not_executable = dir.join("script.sh");
    std::fs::write(&not_executable, "#!/bin/sh\necho hi\n").unwrap();
    std::fs::set_permissions(&not_executable, std::fs::Permissions::from_mode(0o644)).unwrap();
    let no_format = dir.join("garbage");
    std::fs::write(&no_format, [0u8, 1, 2, 3]).unwrap();
    std::fs::set_permissions(&no_format, std::fs::Permissions::from_mode(0o755)).unwrap();
    let cases = [
        (dir.join("no-such-cmd"), 127),
        (not_executable.clone(), 126),
        (no_format, 126),
        (dir.clone(), 126),
    ];
    for (cmd, code) in &cases {
        for command in ["lock", "edit"] {
            let output = txfile()
                .args([command, path.as_str(), cmd.as_str()])
                .output()
                .unwrap();
            let stderr = stderr_of(&output);
            assert_eq!(
                output.status.code(),
                Some(*code),
                "{command} {cmd}: {stderr}"
            );
            assert!(
                stderr.starts_with(&format!("txfile: failed to run `{cmd}`: ")),
                "{stderr}"
            );
            assert_eq!(stderr.lines().count(), 1, "{stderr}");
        }
    }
    // A name looked up in PATH and not found.
    txfile()
        .args(["lock", path.as_str(), "txfile-no-such-command-anywhere"])
        .assert()
        .code(127);
    assert!(!path.exists());
    // The lock was released each time.
    txfile()
        .args(["lock", "--no-wait", path.as_str(), "true"])
        .assert()
        .success();
}
