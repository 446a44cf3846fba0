//! What an error says when printed: what failed, on which path, and why, on
//! one line, and each cause once when a reporter also walks `source()`.
#![cfg(unix)] // asserts Unix's wording of OS errors ("No such file or directory")

mod common;

use std::error::Error as _;
use std::fmt;
use std::io;

use common::{names, tempdir};
use txfile::{Error, Op, TxFile};

/// How many times `needle` occurs in `haystack`.
fn count(haystack: &str, needle: &str) -> usize {
    haystack.matches(needle).count()
}

/// The chain as a reporter prints it: the error, then each `source()`,
/// joined by `: ` (what the `txfile` command and anyhow's `{:#}` do).
fn chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut next = err.source();
    while let Some(cause) = next {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        next = cause.source();
    }
    text
}

#[test]
fn missing_directory_says_what_where_and_why_on_one_line() {
    let (_d, dir) = tempdir();
    let missing = dir.join("missing");
    let err = TxFile::open(missing.join("state.json")).unwrap_err();
    let cause = io::Error::from(io::ErrorKind::NotFound);
    let os_cause = io::Error::from_raw_os_error(2);
    assert_eq!(
        err.to_string(),
        format!("failed to open directory `{missing}`: {os_cause}")
    );
    assert!(
        err.to_string().contains("No such file or directory"),
        "{err}"
    );
    assert_eq!(err.to_string().lines().count(), 1);
    assert_eq!(err.kind(), cause.kind());
    assert!(
        matches!(
            err,
            Error::Io {
                op: Op::OpenDir,
                ..
            }
        ),
        "{err:?}"
    );
}

#[test]
fn reporters_that_walk_the_chain_print_the_cause_once() {
    let (_d, dir) = tempdir();
    let err = TxFile::open(dir.join("missing/state.json")).unwrap_err();
    let plain = err.to_string();

    // anyhow's alternate form joins the chain with ": ".
    let report = anyhow::Error::new(err);
    let alternate = format!("{report:#}");
    assert_eq!(alternate, plain, "nothing added, nothing repeated");
    assert_eq!(
        count(&alternate, "No such file or directory"),
        1,
        "{alternate}"
    );
    // Its debug form lists causes under "Caused by:": there are none left.
    let debug = format!("{report:?}");
    assert_eq!(count(&debug, "No such file or directory"), 1, "{debug}");
    assert!(!debug.contains("Caused by"), "{debug}");

    // Through `?` into a boxed error, printed once by `main`.
    let boxed: Box<dyn std::error::Error> = TxFile::open(dir.join("missing/x")).unwrap_err().into();
    assert_eq!(
        count(&chain(boxed.as_ref()), "No such file or directory"),
        1
    );
}

/// A closure error with a cause of its own.
#[derive(Debug)]
struct Invalid {
    cause: io::Error,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid state file")
    }
}

impl std::error::Error for Invalid {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.cause)
    }
}

#[test]
fn aborted_update_prints_the_closure_error_and_its_causes_once_each() {
    let (_d, dir) = tempdir();
    let path = dir.join("state");
    std::fs::write(&path, "old").unwrap();
    let file = TxFile::open(&path).unwrap();
    let err = file
        .update(|_| {
            Err::<Vec<u8>, _>(Invalid {
                cause: io::Error::other("line 3: expected a number"),
            })
        })
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        format!("update of `{path}` was aborted: invalid state file")
    );
    // The closure's own cause still follows, once.
    let full = format!("{:#}", anyhow::Error::new(err));
    assert_eq!(
        full,
        format!("update of `{path}` was aborted: invalid state file: line 3: expected a number")
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
}

#[test]
fn errors_without_a_cause_are_unchanged_and_one_line() {
    let (_d, dir) = tempdir();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let err = TxFile::open(dir.join("sub")).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot use `{}` as a target: it is a directory",
            dir.join("sub")
        )
    );
    assert!(err.source().is_none());
    assert_eq!(format!("{:#}", anyhow::Error::new(err)).lines().count(), 1);
}

#[test]
fn io_error_conversion_keeps_message_and_kind() {
    let (_d, dir) = tempdir();
    let err = TxFile::open(dir.join("missing/a")).unwrap_err();
    let message = err.to_string();
    let io_err = io::Error::from(err);
    assert_eq!(io_err.kind(), io::ErrorKind::NotFound);
    assert_eq!(io_err.to_string(), message);
    assert_eq!(count(&chain(&io_err), "No such file or directory"), 1);
    assert_eq!(names(&dir), Vec::<String>::new(), "nothing created");
}
