//! What tests ask of the process and its environment.

use std::ffi::OsStr;
use std::process::Command;
use std::str::FromStr;

/// Peak resident set size of this process so far, in KiB (`VmHWM` in
/// `/proc/self/status`; Linux only).
///
/// # Panics
/// When `/proc/self/status` cannot be read or has no `VmHWM` line.
///
/// ```
/// # if cfg!(target_os = "linux") {
/// assert!(txfile_testkit::process::peak_rss_kib() > 0);
/// # }
/// ```
pub fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("read /proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status")
}

/// The value of environment variable `name` parsed as a `T` (a count of
/// runs, kills, transactions: how long a test runs), or `default` when it
/// is unset or does not parse.
///
/// ```
/// let n: u32 = txfile_testkit::process::env_or("TXFILE_TESTKIT_UNSET_EXAMPLE", 7);
/// assert_eq!(n, 7);
/// ```
pub fn env_or<T: FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A Python program that locks a file with `lockf(3)` (POSIX record locks,
/// the kind other tools take): `python3 -c LOCKF_PY FILE hold` locks it,
/// prints `locked` and sleeps 30 s; `... FILE try` exits 1 when the lock is
/// taken, 0 when it got it. The file must exist.
pub const LOCKF_PY: &str = r#"
import fcntl, sys, time
f = open(sys.argv[1], "r+")
if sys.argv[2] == "hold":
    fcntl.lockf(f, fcntl.LOCK_EX)
    print("locked", flush=True)
    time.sleep(30)
else:
    try:
        fcntl.lockf(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        sys.exit(1)
"#;

/// `python3` running [`LOCKF_PY`] on `file` in `mode` (`hold` or `try`).
///
/// ```
/// let cmd = txfile_testkit::process::python_lockf("/tmp/f.lock", "try");
/// assert_eq!(cmd.get_program(), "python3");
/// ```
pub fn python_lockf(file: impl AsRef<OsStr>, mode: &str) -> Command {
    let mut cmd = Command::new("python3");
    cmd.arg("-c").arg(LOCKF_PY).arg(file).arg(mode);
    cmd
}
