//! Windows: the guarantees on NTFS semantics, run under Wine in CI
//! (`tests/windows/run.sh`). Only the public API, except where the test
//! plays another program (a reader without delete sharing, a file's
//! attributes and security descriptor), which needs Win32 calls.
#![cfg(windows)]

use std::time::Duration;

use txfile::TxFile;

fn tempdir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    (tmp, dir)
}

fn increment(file: &TxFile) -> Result<(), txfile::Error> {
    file.update(|old: Option<&[u8]>| {
        let n: u64 = old
            .map(|b| std::str::from_utf8(b).unwrap().trim().parse().unwrap())
            .unwrap_or(0);
        Ok::<_, std::convert::Infallible>((n + 1).to_string().into_bytes())
    })
}

#[test]
fn smoke() {
    let (_tmp, dir) = tempdir();
    let path = dir.join("counter");
    let file = TxFile::open(&path).unwrap();
    for _ in 0..3 {
        increment(&file).unwrap();
    }
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "3");
    let _ = Duration::ZERO;
}
