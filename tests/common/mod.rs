//! Helpers shared by the integration tests.
#![allow(dead_code)] // each test binary uses a different subset

use std::process::{Command, Output, Stdio};

use camino::{Utf8Path, Utf8PathBuf};
use tempfile::TempDir;

/// A fresh directory; the `TempDir` removes it when dropped.
pub(crate) fn tempdir() -> (TempDir, Utf8PathBuf) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("temp dir path is UTF-8");
    (dir, path)
}

/// Names in `dir`, sorted.
pub(crate) fn names(dir: &Utf8Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("list {dir}: {e}"))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("UTF-8 name")
        })
        .collect();
    names.sort();
    names
}

/// Panics if `dir` holds any txfile temporary file.
pub(crate) fn verify_no_leftovers(dir: &Utf8Path) {
    let temps: Vec<_> = names(dir)
        .into_iter()
        .filter(|n| n.ends_with(".txtmp"))
        .collect();
    assert!(temps.is_empty(), "temporary files left in {dir}: {temps:?}");
}

/// Reads a decimal counter file; a missing file counts as 0.
pub(crate) fn parse_counter(bytes: Option<&[u8]>) -> u64 {
    match bytes {
        None => 0,
        Some(b) => std::str::from_utf8(b)
            .expect("counter is UTF-8")
            .trim()
            .parse()
            .expect("counter is a number"),
    }
}

/// Runs the named test of the current test binary in a child process, with
/// `TXFILE_ROLE` set to `role` and extra environment.
pub(crate) fn run_role(test_name: &str, role: &str, env: &[(&str, String)]) -> Command {
    let exe = std::env::current_exe().expect("current test binary");
    let mut cmd = Command::new(exe);
    // Output is piped so that the child's own test-harness lines never mix
    // with the parent's.
    cmd.args([test_name, "--exact", "--nocapture", "--test-threads=1"])
        .env("TXFILE_ROLE", role)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// The role this process plays, when re-executed by `run_role`.
pub(crate) fn role() -> Option<String> {
    std::env::var("TXFILE_ROLE").ok()
}

/// Panics with the child's output when it failed.
pub(crate) fn check(output: Output, what: &str) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{what} failed: {}\nstdout:\n{stdout}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Whether this process runs as root.
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}
