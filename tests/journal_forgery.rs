//! A journal planted by someone who can write the directory, with valid
//! checksums, must not make recovery rename anything.
#![cfg(feature = "sim")]

mod common;

use common::{names, tempdir};
use txfile::TxFile;
use txfile::sim::encode_journal;

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
        std::fs::write(dir.join(".a.txjournal"), encode_journal(&records)).unwrap();
        TxFile::open(dir.join("a"))
            .unwrap()
            .begin()
            .unwrap()
            .rollback();
        assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"mine");
        assert_eq!(std::fs::read(other.join("victim")).unwrap(), b"precious");
        assert!(other.join("payload").exists() && dir.join("not-a-temp").exists());
        assert!(
            !names(&dir).contains(&".a.txjournal".to_string()),
            "the forged journal is removed"
        );
    }
    // A genuine-looking journal for this member is still honoured.
    std::fs::write(dir.join(".a.AbCdEf12.txtmp"), "batched").unwrap();
    let genuine = vec![(
        dir.to_string(),
        "a".to_string(),
        ".a.AbCdEf12.txtmp".to_string(),
    )];
    std::fs::write(dir.join(".a.txjournal"), encode_journal(&genuine)).unwrap();
    TxFile::open(dir.join("a"))
        .unwrap()
        .begin()
        .unwrap()
        .rollback();
    assert_eq!(std::fs::read(dir.join("a")).unwrap(), b"batched");
}
