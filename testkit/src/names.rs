//! The names txfile gives its files beside a target, as the crate documents
//! them (`src/names.rs` of txfile), restated here so that tests check the
//! library against its documentation. For a target named `name` (the last
//! component of its path):
//!
//! - guard: `name.lock`;
//! - temporary files: `.name.XXXXXXXX.txtmp`, `X` an ASCII letter or digit;
//! - the journal of a batch commit that includes it: `.name.txjournal`.
//!
//! Names too long for `NAME_MAX` are shortened by the library; no test here
//! uses one. Every function takes the file's name first, then the target's.

/// The guard file's name for `target`.
///
/// ```
/// assert_eq!(txfile_testkit::guard_name("a"), "a.lock");
/// ```
pub fn guard_name(target: &str) -> String {
    format!("{target}.lock")
}

/// The name under which `target` finds the journal of a batch commit that
/// includes it.
///
/// ```
/// assert_eq!(txfile_testkit::journal_name("a.b"), ".a.b.txjournal");
/// ```
pub fn journal_name(target: &str) -> String {
    format!(".{target}.txjournal")
}

/// Whether `file` is a temporary file of `target`: `.` + target + `.` + 8
/// ASCII letters or digits + `.txtmp`.
///
/// ```
/// use txfile_testkit::is_temp_of;
/// assert!(is_temp_of(".a.Ab3dEf9Z.txtmp", "a"));
/// assert!(!is_temp_of(".a.b.Ab3dEf9Z.txtmp", "a"));
/// ```
pub fn is_temp_of(file: &str, target: &str) -> bool {
    file.strip_prefix('.')
        .and_then(|rest| rest.strip_prefix(target))
        .and_then(|rest| rest.strip_prefix('.'))
        .and_then(|rest| rest.strip_suffix(".txtmp"))
        .is_some_and(|random| {
            random.len() == 8 && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// Whether `file` is something a finished commit of `target` must not leave
/// behind: its journal name or one of its temporary files.
///
/// ```
/// use txfile_testkit::is_leftover_of;
/// assert!(is_leftover_of(".a.txjournal", "a"));
/// assert!(!is_leftover_of("a.lock", "a"));
/// ```
pub fn is_leftover_of(file: &str, target: &str) -> bool {
    file == journal_name(target) || is_temp_of(file, target)
}

/// Whether `file` belongs to `target`: the target itself, its guard, its
/// journal name or one of its temporary files.
///
/// ```
/// use txfile_testkit::owned_by;
/// assert!(owned_by("a.lock", "a"));
/// assert!(!owned_by("a.b.lock", "a"));
/// ```
pub fn owned_by(file: &str, target: &str) -> bool {
    file == target || file == guard_name(target) || is_leftover_of(file, target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temporary_files() {
        assert!(is_temp_of(".a.Ab3dEf9Z.txtmp", "a"));
        assert!(is_temp_of(".a.b.Ab3dEf9Z.txtmp", "a.b"));
        for not_a_temp in [
            ".a.b.Ab3dEf9Z.txtmp",
            ".a.Ab3dEf9.txtmp",
            ".a.Ab3dEf9Zz.txtmp",
            ".a.Ab3d-f9Z.txtmp",
            ".a.Ab3dEf9Z.txtmp.x",
            "a.Ab3dEf9Z.txtmp",
            ".a.tmp",
            "a",
        ] {
            assert!(!is_temp_of(not_a_temp, "a"), "{not_a_temp}");
        }
        // The order of the arguments matters: the target is not a
        // temporary file of the file.
        assert!(!is_temp_of("a", ".a.Ab3dEf9Z.txtmp"));
    }

    #[test]
    fn ownership() {
        assert!(owned_by("a", "a"));
        assert!(owned_by("a.lock", "a"));
        assert!(owned_by(".a.txjournal", "a"));
        assert!(owned_by(".a.Ab3dEf9Z.txtmp", "a"));
        assert!(!owned_by("a.b", "a"));
        assert!(!owned_by("a.b.lock", "a"));
        assert!(!owned_by(".a.b.txjournal", "a"));
        assert!(!owned_by(".a.txjournal.bak", "a"));
        assert!(!is_leftover_of("a", "a"));
        assert!(is_leftover_of(".a.Ab3dEf9Z.txtmp", "a"));
    }
}
