//! Extended attributes and POSIX ACLs survive a replace (issue 20, item 4),
//! on the real filesystem, through the library and the command line.
//!
//! The attributes are set and read with the tools administrators use
//! (`setfattr`/`getfattr` from Debian's `attr`, `setfacl`/`getfacl` from
//! `acl`); each test skips, saying why, when a tool is missing or the
//! filesystem takes no user attributes. The tests of attributes a process
//! may not copy set them up as root and update as `nobody`; they skip when
//! not root.

#![cfg(target_os = "linux")]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::process::Command;

use camino::Utf8Path;
use common::{check, is_root, role, run_role, tempdir, verify_no_leftovers};
use txfile::{Error, Options, TxFile};

/// The uid and gid of `nobody` on Debian, who updates in the tests of
/// attributes a process may not copy.
const NOBODY: u32 = 65534;

fn tools() -> bool {
    let found = |tool: &str| Command::new(tool).arg("--version").output().is_ok();
    let ok = found("setfattr") && found("getfattr") && found("setfacl") && found("getfacl");
    if !ok {
        println!(
            "skipped: setfattr/getfattr/setfacl/getfacl are missing (Debian packages `attr`, `acl`)"
        );
    }
    ok
}

fn run(tool: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(tool)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {tool}: {e}"));
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Every attribute of `path` (all namespaces this process sees), as
/// `getfattr` dumps them, hex-encoded so binary values compare exactly.
fn dump(path: &Utf8Path) -> String {
    run(
        "getfattr",
        &[
            "--absolute-names",
            "-d",
            "-m",
            "-",
            "-e",
            "hex",
            path.as_str(),
        ],
    )
    .expect("getfattr")
}

fn acl(path: &Utf8Path) -> String {
    run("getfacl", &["--omit-header", "--numeric", path.as_str()]).expect("getfacl")
}

/// A target with two `user.*` attributes (one binary) and an ACL entry;
/// `None` (and a printed reason) when the filesystem takes none.
fn decorated(dir: &Utf8Path) -> Option<camino::Utf8PathBuf> {
    let path = dir.join("config");
    std::fs::write(&path, "old\n").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
    if let Err(e) = run(
        "setfattr",
        &["-n", "user.owner", "-v", "ops team", path.as_str()],
    ) {
        println!("skipped: no user extended attributes here: {e}");
        return None;
    }
    run(
        "setfattr",
        &["-n", "user.blob", "-v", "0x00ff10", path.as_str()],
    )
    .expect("setfattr binary value");
    if let Err(e) = run("setfacl", &["-m", "u:65534:rw", path.as_str()]) {
        println!("skipped: no ACLs here: {e}");
        return None;
    }
    Some(path)
}

fn assert_kept(path: &Utf8Path, attrs: &str, acl_before: &str) {
    let now = dump(path);
    assert_eq!(now, attrs, "the extended attributes changed");
    assert!(now.contains("user.owner=0x6f7073207465616d"), "{now}");
    assert!(now.contains("user.blob=0x00ff10"), "{now}");
    assert!(now.contains("system.posix_acl_access"), "{now}");
    assert_eq!(acl(path), acl_before, "the ACL changed");
    assert!(acl_before.contains("user:65534:rw-"), "{acl_before}");
}

#[test]
fn a_library_update_keeps_user_attributes_and_the_acl() {
    if !tools() {
        return;
    }
    let (_d, dir) = tempdir();
    let Some(path) = decorated(&dir) else {
        return;
    };
    let (attrs, acl_before) = (dump(&path), acl(&path));
    let ino = std::fs::metadata(&path).unwrap();
    TxFile::open(&path)
        .unwrap()
        .update(|_| Ok::<_, Error>(b"new\n".to_vec()))
        .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), b"new\n");
    // A new inode (the rename), which got the old one's attributes.
    use std::os::unix::fs::MetadataExt;
    assert_ne!(std::fs::metadata(&path).unwrap().ino(), ino.ino());
    assert_kept(&path, &attrs, &acl_before);
    verify_no_leftovers(&dir);
}

#[test]
fn txfile_write_keeps_user_attributes_and_the_acl() {
    if !tools() {
        return;
    }
    let (_d, dir) = tempdir();
    let Some(path) = decorated(&dir) else {
        return;
    };
    let (attrs, acl_before) = (dump(&path), acl(&path));
    let out = assert_cmd::Command::new(env!("CARGO_BIN_EXE_txfile"))
        .args(["write", path.as_str()])
        .write_stdin("written by the command\n")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::read(&path).unwrap(), b"written by the command\n");
    assert_kept(&path, &attrs, &acl_before);
    verify_no_leftovers(&dir);
}

/// Root may write every namespace: `trusted.*` and `security.*` survive too.
#[test]
fn root_keeps_trusted_and_security_attributes() {
    if !tools() {
        return;
    }
    if !is_root() {
        println!("skipped: needs root (trusted.* and security.* attributes)");
        return;
    }
    let (_d, dir) = tempdir();
    let path = dir.join("f");
    std::fs::write(&path, "old").unwrap();
    for (name, value) in [("trusted.txfile", "t"), ("security.txfiletest", "s")] {
        if let Err(e) = run("setfattr", &["-n", name, "-v", value, path.as_str()]) {
            println!("skipped: cannot set {name} here: {e}");
            return;
        }
    }
    let before = dump(&path);
    TxFile::open(&path)
        .unwrap()
        .update(|_| Ok::<_, Error>(b"new".to_vec()))
        .unwrap();
    assert_eq!(dump(&path), before);
    assert!(before.contains("trusted.txfile"), "{before}");
    assert!(before.contains("security.txfiletest"), "{before}");
}

/// A target (owned by `nobody`, in a directory `nobody` may write) with a
/// `user.*` attribute and a `security.*` one that only a privileged
/// process may write. `None` when this cannot be set up (not root, no
/// tools, no such attributes here).
fn guarded_target() -> Option<(tempfile::TempDir, camino::Utf8PathBuf)> {
    if !tools() {
        return None;
    }
    if !is_root() {
        println!("skipped: needs root to set a security.* attribute and update as `nobody`");
        return None;
    }
    let (d, top) = tempdir();
    std::fs::set_permissions(&top, std::fs::Permissions::from_mode(0o755)).unwrap();
    let dir = top.join("shared");
    std::fs::create_dir(&dir).unwrap();
    let path = dir.join("f");
    std::fs::write(&path, "old").unwrap();
    for p in [dir.as_path(), path.as_path()] {
        rustix::fs::chown(
            p.as_std_path(),
            Some(rustix::fs::Uid::from_raw(NOBODY)),
            Some(rustix::fs::Gid::from_raw(NOBODY)),
        )
        .unwrap();
    }
    for (name, value) in [("user.kept", "u"), ("security.txfiletest", "s")] {
        if let Err(e) = run("setfattr", &["-n", name, "-v", value, path.as_str()]) {
            println!("skipped: cannot set {name} here: {e}");
            return None;
        }
    }
    Some((d, path))
}

/// Runs `role` of this test binary as `nobody` on `path`.
fn as_nobody(test: &str, role: &str, path: &Utf8Path) -> String {
    let mut cmd = run_role(test, role, &[("TXFILE_PATH", path.to_string())]);
    cmd.uid(NOBODY).gid(NOBODY);
    check(cmd.output().unwrap(), role)
}

fn child_path() -> camino::Utf8PathBuf {
    std::env::var("TXFILE_PATH").unwrap().into()
}

/// By default an attribute the process may not write is left out, and the
/// rest are kept.
#[test]
fn an_attribute_the_writer_may_not_set_is_dropped_by_default() {
    if role().as_deref() == Some("update") {
        Options::new()
            .open(child_path())
            .unwrap()
            .update(|_| Ok::<_, Error>(b"new".to_vec()))
            .unwrap();
        return;
    }
    let Some((_d, path)) = guarded_target() else {
        return;
    };
    as_nobody(
        "an_attribute_the_writer_may_not_set_is_dropped_by_default",
        "update",
        &path,
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"new");
    let now = dump(&path);
    assert!(now.contains("user.kept"), "{now}");
    assert!(!now.contains("security.txfiletest"), "{now}");
    verify_no_leftovers(path.parent().unwrap());
}

/// With `require_xattrs`, the same update fails naming the attribute, the
/// path and what was refused; nothing changed and no temporary file is left.
#[test]
fn require_xattrs_refuses_to_drop_an_attribute() {
    if role().as_deref() == Some("strict") {
        let path = child_path();
        let err = Options::new()
            .require_xattrs(true)
            .open(&path)
            .unwrap()
            .update(|_| Ok::<_, Error>(b"new".to_vec()))
            .unwrap_err();
        let Error::Xattr { name, path: at, .. } = &err else {
            panic!("not an Xattr error: {err:?}");
        };
        assert_eq!(name, "security.txfiletest");
        assert_eq!(*at, path);
        assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied);
        println!("error: {err}");
        return;
    }
    let Some((_d, path)) = guarded_target() else {
        return;
    };
    let before = dump(&path);
    let out = as_nobody(
        "require_xattrs_refuses_to_drop_an_attribute",
        "strict",
        &path,
    );
    // The harness's `test ... ` may precede it on the same line.
    let message = out
        .lines()
        .find_map(|l| l.split_once("error: ").map(|(_, message)| message))
        .expect("the child printed the error");
    assert!(
        message.starts_with(&format!(
            "failed to copy extended attribute `security.txfiletest` of `{path}`"
        )),
        "{message}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), b"old");
    assert_eq!(dump(&path), before);
    verify_no_leftovers(path.parent().unwrap());
}
