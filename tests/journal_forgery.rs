//! A journal planted by someone who can write the directory, with valid
//! checksums, must not make recovery rename anything.
#![cfg(unix)] // Unix owners and modes of planted journals
#![cfg(feature = "sim")]

mod common;

use std::os::unix::fs::PermissionsExt;

use common::{names, tempdir};
use txfile::TxFile;
use txfile::sim::{JOURNAL_BLOCK, encode_journal, encode_journal_void};

/// Writes `bytes` as a journal of this user, `0600`, as batch commits
/// create them (anything else is not read as a journal at all).
fn write_journal(path: &camino::Utf8Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

/// What the next program does first: begin on the member `a` (which
/// recovers whatever journal it finds under `a`'s name), then roll back.
fn recover_member(dir: &camino::Utf8Path) {
    TxFile::open(dir.join("a"))
        .unwrap()
        .begin()
        .unwrap()
        .rollback();
}

#[test]
fn forged_journals_are_not_rolled_forward() {
    let (_d, dir) = tempdir();
    let (_o, other) = tempdir();
    std::fs::write(dir.join("a"), "mine").unwrap();
    std::fs::write(other.join("victim"), "precious").unwrap();
    std::fs::write(other.join("payload"), "evil").unwrap();
    std::fs::write(dir.join("not-a-temp"), "evil").unwrap();
    let forgeries = [
        // Names a file in another directory, not the member it sits beside.
        vec![(
            other.to_string(),
            "victim".to_string(),
            "payload".to_string(),
        )],
        // Names the member, but the staged file is not one of its temporaries.
        vec![(dir.to_string(), "a".to_string(), "not-a-temp".to_string())],
    ];
    for records in forgeries {
        write_journal(&dir.join(".a.txjournal"), &encode_journal(&records));
        recover_member(&dir);
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"mine");
        assert_eq!(std::fs::read(other.join("victim")).unwrap(), b"precious");
        assert!(other.join("payload").exists() && dir.join("not-a-temp").exists());
        assert!(
            !names(&dir).contains(&".a.txjournal".to_string()),
            "the forged journal (this user's own, 0600) is removed"
        );
        // The same bytes in a file others may read are not even read as a
        // journal: left alone.
        std::fs::write(dir.join(".a.txjournal"), encode_journal(&records)).unwrap();
        recover_member(&dir);
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"mine");
        assert!(names(&dir).contains(&".a.txjournal".to_string()));
        std::fs::remove_file(dir.join(".a.txjournal")).unwrap();
    }
    // A genuine-looking journal for this member is still honoured.
    std::fs::write(dir.join(".a.AbCdEf12.txtmp"), "batched").unwrap();
    let genuine = vec![(
        dir.to_string(),
        "a".to_string(),
        ".a.AbCdEf12.txtmp".to_string(),
    )];
    write_journal(&dir.join(".a.txjournal"), &encode_journal(&genuine));
    recover_member(&dir);
    assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"batched");
}

/// A symbolic link under a member's journal name is not followed: recovery
/// neither reads nor appends to what it points to, nor removes the link
/// (txfile never made it), and transactions go on.
#[test]
fn a_symlinked_journal_is_left_alone_not_followed() {
    let (_d, dir) = tempdir();
    let (_o, other) = tempdir();
    std::fs::write(dir.join("a"), "mine").unwrap();
    std::fs::write(dir.join(".a.AbCdEf12.txtmp"), "planted").unwrap();
    // What the link points to reads as a committed journal for `a`, then
    // as a voided one: either way, recovery must not act on it.
    let records = vec![(
        dir.to_string(),
        "a".to_string(),
        ".a.AbCdEf12.txtmp".to_string(),
    )];
    let committed = encode_journal(&records);
    let mut voided = committed.clone();
    voided.resize(JOURNAL_BLOCK, 0);
    voided.extend(encode_journal_void());
    for contents in [committed, voided] {
        let elsewhere = other.join("journal");
        std::fs::write(&elsewhere, &contents).unwrap();
        std::os::unix::fs::symlink(&elsewhere, dir.join(".a.txjournal")).unwrap();
        recover_member(&dir);
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"mine");
        assert_eq!(
            std::fs::read(&elsewhere).unwrap(),
            contents,
            "the link's target is not written"
        );
        assert!(
            std::fs::symlink_metadata(dir.join(".a.txjournal"))
                .unwrap()
                .file_type()
                .is_symlink(),
            "the link is left alone"
        );
        std::fs::remove_file(dir.join(".a.txjournal")).unwrap();
    }
}
