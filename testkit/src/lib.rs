//! Test support shared by txfile's integration tests (`tests/`), its
//! benchmarks (`benches/`) and its fuzz targets (`fuzz/`), so that each
//! helper is written once:
//!
//! - [`names`]: the names txfile gives its files beside a target, restated
//!   from the crate's documentation rather than taken from the library, so
//!   that a test checks the library against what it promises;
//! - [`FOREIGN`]: files beside the targets that txfile must never touch;
//! - [`show`] and [`show_versions`]: file contents, short, for failure
//!   messages;
//! - [`process`]: what tests ask of the process and its environment (peak
//!   memory, a count from the environment, a `lockf(3)` holder in Python).
//!
//! The crate does not depend on txfile (txfile dev-depends on it; the
//! reverse edge would build a second txfile into the library's unit tests),
//! so the helpers take names, bytes and paths. Argument order, everywhere:
//! the file first, then the target it may belong to.
//!
//! It is not published: `cargo package` of txfile drops the dev-dependency.

pub mod names;
pub mod process;

pub use names::{guard_name, is_leftover_of, is_temp_of, journal_name, owned_by};

/// Files that belong to no target and must never change, written beside the
/// targets of the crash tests and the fuzz targets (invariant 6 of
/// `docs/crash-model.md`: txfile touches nothing that is not its own).
///
/// Each is a near miss of a name txfile derives: a user's own temporary
/// file, a temporary file of a target `a.b.c.d` that no test opens (another
/// writer may be alive; its name starts with every target's name below),
/// a random part one character short, backups of a guard and of a journal,
/// and the guard name of a target `x` taken by a file that holds data (a
/// `Gemfile.lock`: txfile must refuse `x` and never write to it).
///
/// It is foreign to every target the tests and fuzz targets use: `a`,
/// `a.b`, `a.b.c`, `b`, `c` (the unit tests check it). A test that opens a
/// target owning one of these names (`x`, `a.b.c.d`) must not use it.
///
/// ```
/// use txfile_testkit::{FOREIGN, owned_by};
/// assert!(FOREIGN.iter().all(|(file, _)| !owned_by(file, "a")));
/// ```
pub const FOREIGN: &[(&str, &[u8])] = &[
    (".a.tmp", b"a user's own temporary file"),
    (
        ".a.b.c.d.Ab3dEf9Z.txtmp",
        b"a temporary file of target a.b.c.d",
    ),
    (
        ".a.Ab3dEf9.txtmp",
        b"seven random characters: not a temporary file",
    ),
    ("a.lock.bak", b"a backup of a guard"),
    (
        ".a.txjournal.bak",
        b"a backup of a journal: not a journal name",
    ),
    ("other", b"an unrelated file"),
    ("x.lock", b"GEM\n  specs:\n    rails (7.1.0)\n"),
];

/// A file's contents (`None`: the file is absent), short and printable, for
/// failure messages: the first 24 bytes and the length when it is longer.
///
/// ```
/// use txfile_testkit::show;
/// assert_eq!(show(&None), "absent");
/// assert_eq!(show(&Some(b"v1".to_vec())), "\"v1\"");
/// assert_eq!(show(&Some(vec![b'x'; 30])), "30 bytes \"xxxxxxxxxxxxxxxxxxxxxxxx\"..");
/// ```
pub fn show(contents: &Option<Vec<u8>>) -> String {
    match contents {
        None => "absent".into(),
        Some(b) if b.len() > 24 => format!(
            "{} bytes {:?}..",
            b.len(),
            String::from_utf8_lossy(&b[..24])
        ),
        Some(b) => format!("{:?}", String::from_utf8_lossy(b)),
    }
}

/// Several files' contents (the members of a batch, say), each as [`show`]
/// prints it, in brackets.
///
/// ```
/// use txfile_testkit::show_versions;
/// assert_eq!(show_versions(&[Some(b"v1".to_vec()), None]), "[\"v1\", absent]");
/// ```
pub fn show_versions(versions: &[Option<Vec<u8>>]) -> String {
    let shown: Vec<String> = versions.iter().map(show).collect();
    format!("[{}]", shown.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every target a test or fuzz target opens, next to the fixture.
    const TARGETS: &[&str] = &["a", "a.b", "a.b.c", "b", "c"];

    #[test]
    fn foreign_files_belong_to_no_target_in_use() {
        for (file, _) in FOREIGN {
            for target in TARGETS {
                assert!(!owned_by(file, target), "{file} belongs to {target}");
            }
        }
    }

    #[test]
    fn foreign_files_are_near_misses() {
        // Without these, the fixture would not test the sweep's and the
        // recovery's name matching.
        assert!(is_temp_of(".a.b.c.d.Ab3dEf9Z.txtmp", "a.b.c.d"));
        assert!(owned_by("x.lock", "x"));
        let names: Vec<&str> = FOREIGN.iter().map(|(file, _)| *file).collect();
        for near_miss in [".a.Ab3dEf9.txtmp", "a.lock.bak", ".a.txjournal.bak"] {
            assert!(names.contains(&near_miss), "{near_miss}");
        }
    }
}
