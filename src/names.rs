//! The names txfile gives its files beside a target, and how it recognises them.
//!
//! For a target `name` in directory `dir`:
//! - guard: `dir/name.lock`;
//! - temporary files: `dir/.name.XXXXXXXX.txtmp` (`X`: 8 random ASCII letters
//!   or digits);
//! - the journal of a batch commit that includes it: `dir/.name.txjournal`.
//!
//! When `name` is too long for the suffix to fit in `NAME_MAX` (255 bytes), the
//! name part is shortened to a prefix (cut at a character boundary) followed by
//! `~` and 16 hex digits of a 64-bit hash of the whole name, so that names
//! stay unique per target. A stale-temp sweep removes a file only if it parses
//! back to exactly this target's pattern.

use std::borrow::Cow;

use crate::sys::NAME_MAX;

/// Random characters in a temporary file's name.
pub(crate) const RANDOM_LEN: usize = 8;
const GUARD_SUFFIX: &str = ".lock";
const TEMP_SUFFIX: &str = ".txtmp";
const JOURNAL_SUFFIX: &str = ".txjournal";
const IN_PLACE_SUFFIX: &str = ".txinplace";

/// The guard file's name for target `name`.
pub(crate) fn guard_name(name: &str) -> String {
    let mut guard = fit(name, GUARD_SUFFIX.len()).into_owned();
    guard.push_str(GUARD_SUFFIX);
    guard
}

/// The part of a temporary file's name before the random characters.
pub(crate) fn temp_prefix(name: &str) -> String {
    format!(".{}.", fit(name, 2 + RANDOM_LEN + TEMP_SUFFIX.len()))
}

/// The part of a temporary file's name after the random characters.
pub(crate) fn temp_suffix() -> &'static str {
    TEMP_SUFFIX
}

/// The name under which target `name` finds the journal of a batch commit
/// that includes it.
pub(crate) fn journal_name(name: &str) -> String {
    format!(".{}{JOURNAL_SUFFIX}", fit(name, 1 + JOURNAL_SUFFIX.len()))
}

/// The name of the intent record of an in-place commit of target `name`
/// (see `crate::inplace`).
pub(crate) fn in_place_name(name: &str) -> String {
    format!(".{}{IN_PLACE_SUFFIX}", fit(name, 1 + IN_PLACE_SUFFIX.len()))
}

/// The target whose journal name `candidate` is, if it is one (for
/// `recover`, which scans a directory). For a shortened name this is the
/// shortened stem, whose own journal name is `candidate` again, so opening
/// it still finds and recovers the journal (recovery follows the journal's
/// records, not the name).
pub(crate) fn journal_target(candidate: &str) -> Option<&str> {
    candidate
        .strip_prefix('.')?
        .strip_suffix(JOURNAL_SUFFIX)
        .filter(|name| !name.is_empty() && journal_name(name) == candidate)
}

/// Whether `candidate` is a temporary file of target `name`, given its prefix.
pub(crate) fn is_temp_of(prefix: &str, candidate: &str) -> bool {
    candidate
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(TEMP_SUFFIX))
        .is_some_and(|random| {
            random.len() == RANDOM_LEN && random.bytes().all(|b| b.is_ascii_alphanumeric())
        })
}

/// `name` itself when `extra` more bytes still fit in `NAME_MAX`, otherwise a
/// shortened form unique to `name`.
fn fit(name: &str, extra: usize) -> Cow<'_, str> {
    if name.len() + extra <= NAME_MAX {
        return Cow::Borrowed(name);
    }
    let tag = format!("~{:016x}", hash64(name));
    let mut keep = NAME_MAX - extra - tag.len();
    while !name.is_char_boundary(keep) {
        keep -= 1;
    }
    Cow::Owned(format!("{}{tag}", &name[..keep]))
}

/// Two independent CRC-32s make a 64-bit hash: enough that two distinct long
/// names in one directory do not share a guard by accident.
fn hash64(name: &str) -> u64 {
    let first = crc32fast::hash(name.as_bytes());
    let mut salted = crc32fast::Hasher::new_with_initial(0x7478_6669); // "txfi"
    salted.update(name.as_bytes());
    (u64::from(first) << 32) | u64::from(salted.finalize())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_names_are_kept() {
        assert_eq!(guard_name("a"), "a.lock");
        assert_eq!(temp_prefix("a.b"), ".a.b.");
    }

    #[test]
    fn long_names_fit_and_stay_unique() {
        let a = "a".repeat(255);
        let mut b = "a".repeat(254);
        b.push('b');
        for name in [&a, &b] {
            assert!(guard_name(name).len() <= NAME_MAX);
            let temp = format!(
                "{}{}{}",
                temp_prefix(name),
                "x".repeat(RANDOM_LEN),
                TEMP_SUFFIX
            );
            assert!(temp.len() <= NAME_MAX, "{}", temp.len());
        }
        assert_ne!(guard_name(&a), guard_name(&b));
        assert_ne!(temp_prefix(&a), temp_prefix(&b));
        // A multi-byte character at the cut is not split.
        let wide = "é".repeat(127) + "x";
        assert!(guard_name(&wide).len() <= NAME_MAX);
    }

    #[test]
    fn sweep_pattern_is_exact() {
        let p = temp_prefix("a");
        assert!(is_temp_of(&p, ".a.Ab3dEf9Z.txtmp"));
        for foreign in [
            ".a.tmp",
            ".a.b.Ab3dEf9Z.txtmp",
            ".a.Ab3dEf9.txtmp",
            ".a.Ab3dEf9Z.txtmp.x",
            ".a.Ab3d-f9Z.txtmp",
            "a.lock",
            "a",
        ] {
            assert!(!is_temp_of(&p, foreign), "{foreign}");
        }
        assert!(!is_temp_of(&temp_prefix("a.b"), ".a.Ab3dEf9Z.txtmp"));
    }

    #[test]
    fn journal_names_map_back() {
        assert_eq!(journal_name("a"), ".a.txjournal");
        assert_eq!(journal_target(".a.txjournal"), Some("a"));
        assert_eq!(journal_target(".a.b.txjournal"), Some("a.b"));
        assert_eq!(journal_target(".txjournal"), None);
        assert_eq!(journal_target("a.txjournal"), None);
        let long = "n".repeat(255);
        assert!(journal_name(&long).len() <= NAME_MAX);
        let shortened = journal_name(&long);
        let stem = journal_target(&shortened).unwrap();
        assert_eq!(journal_name(stem), shortened);
    }
}
