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

/// Serialises the heavy multi-process tests of one test binary: run side by
/// side on a small machine they would starve each other's lock timeouts.
pub(crate) fn heavy() -> std::sync::MutexGuard<'static, ()> {
    static HEAVY: std::sync::Mutex<()> = std::sync::Mutex::new(());
    HEAVY
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Whether this process runs as root.
#[cfg(unix)]
pub(crate) fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The operation an `Error::Io` names; `None` for any other error.
pub(crate) fn io_op(err: &txfile::Error) -> Option<txfile::Op> {
    match err {
        txfile::Error::Io { op, .. } => Some(*op),
        _ => None,
    }
}

/// A self-checking version of a counter file: `counter N`, filler, and a
/// CRC-32 line over everything before it. Any torn, empty or mixed file fails
/// `parse_versioned`.
pub(crate) fn versioned(n: u64, filler: usize) -> Vec<u8> {
    let mut body = format!("counter {n}\n").into_bytes();
    body.extend(std::iter::repeat_n(b'a' + (n % 26) as u8, filler));
    body.push(b'\n');
    let crc = crc32fast::hash(&body);
    body.extend(format!("crc {crc:08x}\n").into_bytes());
    body
}

/// The counter of a file written by `versioned`, or why it is not one.
pub(crate) fn parse_versioned(bytes: &[u8]) -> Result<u64, String> {
    let text =
        std::str::from_utf8(bytes).map_err(|_| format!("not UTF-8 ({} bytes)", bytes.len()))?;
    let body_end = text
        .trim_end_matches('\n')
        .rfind('\n')
        .ok_or_else(|| format!("no crc line in {} bytes", bytes.len()))?
        + 1;
    let (body, crc_line) = text.split_at(body_end);
    let crc = crc_line
        .trim()
        .strip_prefix("crc ")
        .and_then(|hex| u32::from_str_radix(hex, 16).ok())
        .ok_or_else(|| format!("bad crc line {crc_line:?}"))?;
    if crc32fast::hash(body.as_bytes()) != crc {
        return Err(format!("checksum mismatch in {} bytes", bytes.len()));
    }
    body.strip_prefix("counter ")
        .and_then(|rest| rest.split('\n').next())
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| "no counter line".to_string())
}

/// A small deterministic generator (xorshift64*), seeded and printed by the
/// tests that use it so a failure can be replayed.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn from_env_or_time(name: &str) -> Rng {
        let seed = std::env::var("TXFILE_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(1, |d| d.as_nanos() as u64)
            });
        eprintln!("{name}: seed {seed} (set TXFILE_SEED to replay)");
        Rng(seed | 1)
    }

    pub(crate) fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

/// A directory on the same filesystem as the build (not a tmpfs), for tests
/// whose fsyncs should be real.
pub(crate) fn disk_tempdir() -> (TempDir, Utf8PathBuf) {
    let base = option_env!("CARGO_TARGET_TMPDIR").map_or_else(std::env::temp_dir, Into::into);
    std::fs::create_dir_all(&base).expect("create target tmpdir");
    let dir = tempfile::tempdir_in(base).expect("create a temporary directory");
    let path = Utf8PathBuf::from_path_buf(dir.path().to_owned()).expect("temp dir path is UTF-8");
    (dir, path)
}
