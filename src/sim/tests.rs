//! The model itself, operation by operation, through the crate's seam.

use std::collections::BTreeSet;

use camino::Utf8Path;

use super::{Enumeration, Fault, SimFs};
use crate::LockStyle;
use crate::fs::{Blocking, DirHandle, Fs, GuardFile, Mode, WriteFile};

/// The seam's calls by path, for tests that think in paths: each opens the
/// parent directory (a counted operation) and calls the name in it.
trait ByPath {
    fn dir_of(&self, path: &str) -> (Box<dyn DirHandle>, String);
    fn create_temp(
        &self,
        dir: &str,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> std::io::Result<(String, Box<dyn WriteFile>)>;
    fn create_new(&self, path: &str, mode: u32) -> std::io::Result<Box<dyn WriteFile>>;
    fn open_guard(
        &self,
        path: &str,
        perms: crate::fs::GuardPerms,
    ) -> std::io::Result<Box<dyn GuardFile>>;
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()>;
    fn remove_file(&self, path: &str) -> std::io::Result<()>;
    fn link_path(&self, existing: &str, new: &str) -> std::io::Result<()>;
}

impl ByPath for SimFs {
    fn dir_of(&self, path: &str) -> (Box<dyn DirHandle>, String) {
        let path = Utf8Path::new(path);
        let dir = self
            .open_dir(path.parent().expect("a parent"))
            .expect("open the parent");
        (dir, path.file_name().expect("a name").to_owned())
    }
    fn create_temp(
        &self,
        dir: &str,
        prefix: &str,
        suffix: &str,
        mode: u32,
    ) -> std::io::Result<(String, Box<dyn WriteFile>)> {
        let handle = self.open_dir(Utf8Path::new(dir))?;
        let (name, file) = handle.create_temp(prefix, suffix, mode)?;
        Ok((format!("{dir}/{name}"), file))
    }
    fn create_new(&self, path: &str, mode: u32) -> std::io::Result<Box<dyn WriteFile>> {
        let (dir, name) = self.dir_of(path);
        dir.create_new(&name, mode)
    }
    fn open_guard(
        &self,
        path: &str,
        perms: crate::fs::GuardPerms,
    ) -> std::io::Result<Box<dyn GuardFile>> {
        let (dir, name) = self.dir_of(path);
        dir.open_guard(&name, perms)
    }
    fn rename(&self, from: &str, to: &str) -> std::io::Result<()> {
        let (dir, from) = self.dir_of(from);
        let to = Utf8Path::new(to).file_name().expect("a name");
        dir.rename(&from, to)
    }
    fn remove_file(&self, path: &str) -> std::io::Result<()> {
        let (dir, name) = self.dir_of(path);
        dir.remove_file(&name)
    }
    fn link_path(&self, existing: &str, new: &str) -> std::io::Result<()> {
        let (from_dir, from) = self.dir_of(existing);
        let (to_dir, to) = self.dir_of(new);
        Fs::link(self, &*from_dir, &from, &*to_dir, &to)
    }
}

fn machine() -> SimFs {
    let sim = SimFs::new();
    sim.create_dir_all("/d").expect("dir");
    sim
}

fn targets(sim: &SimFs, path: &str) -> BTreeSet<Option<Vec<u8>>> {
    sim.crash_states(&Enumeration::new())
        .expect("bound")
        .map(|s| s.read_file(path).expect("read"))
        .collect()
}

const PERMS: crate::fs::GuardPerms = crate::fs::GuardPerms {
    mode: 0o644,
    gid: 0,
};

#[test]
fn file_fsync_does_not_make_the_name_durable() {
    let sim = machine();
    let (path, mut temp) = sim.create_temp("/d", ".t.", ".x", 0o600).expect("create");
    assert_eq!(temp.write(b"data").expect("write"), 4);
    temp.sync().expect("fsync");
    assert_eq!(
        targets(&sim, path.as_str()),
        BTreeSet::from([None, Some(b"data".to_vec())])
    );
    sim.open_dir(Utf8Path::new("/d"))
        .expect("open")
        .sync()
        .expect("fsync dir");
    assert_eq!(
        targets(&sim, path.as_str()),
        BTreeSet::from([Some(b"data".to_vec())])
    );
}

#[test]
fn directory_operations_land_in_any_subset() {
    let sim = machine();
    sim.write_file("/d/x", b"x").expect("x");
    sim.write_file("/d/y", b"y").expect("y");
    sim.remove_file("/d/x").expect("rm x");
    sim.remove_file("/d/y").expect("rm y");
    let listings: BTreeSet<Vec<String>> = sim
        .crash_states(&Enumeration::new())
        .expect("bound")
        .map(|s| s.list_dir("/d").expect("list"))
        .collect();
    // Not only prefixes: y removed while x is still there.
    assert_eq!(listings.len(), 4);
    assert!(listings.contains(&vec!["x".to_owned()]));
}

#[test]
fn unsynced_writes_are_lost_torn_zeroed_or_garbage() {
    let sim = machine();
    let (path, mut temp) = sim.create_temp("/d", ".t.", ".x", 0o600).expect("create");
    sim.open_dir(Utf8Path::new("/d"))
        .expect("open")
        .sync()
        .expect("fsync dir");
    let new = vec![b'n'; 1024];
    assert_eq!(temp.write(&new).expect("write"), 1024);
    let seen = targets(&sim, path.as_str());
    // Lost, plus 4 x 4 patterns of two sectors.
    // Lost, or per sector new, zeros or garbage ("old" beyond the old end
    // of file reads as zeros).
    assert_eq!(seen.len(), 1 + 3 * 3);
    assert!(seen.contains(&Some(Vec::new())));
    assert!(seen.contains(&Some(new.clone())));
    let mut torn = vec![b'n'; 512];
    torn.extend([0xA5; 512]);
    assert!(seen.contains(&Some(torn)));
    let mut grown = vec![0; 512];
    grown.extend([b'n'; 512]);
    assert!(seen.contains(&Some(grown)));
}

#[test]
fn a_failed_fsync_leaves_the_data_in_doubt_and_the_file_clean() {
    let sim = machine();
    let (path, mut temp) = sim.create_temp("/d", ".t.", ".x", 0o600).expect("create");
    sim.open_dir(Utf8Path::new("/d"))
        .expect("open")
        .sync()
        .expect("fsync dir");
    temp.write(b"data").expect("write");
    sim.fail_at(sim.op_count(), Fault::Io);
    assert!(temp.sync().is_err());
    // fsyncgate: the retry succeeds without writing anything.
    temp.sync().expect("second fsync");
    let seen = targets(&sim, path.as_str());
    assert!(seen.contains(&Some(Vec::new())));
    assert!(seen.contains(&Some(b"data".to_vec())));
    // Data written after the failure is durable at the next fsync.
    temp.write(b"more").expect("write");
    temp.sync().expect("fsync");
    let seen = targets(&sim, path.as_str());
    assert!(
        seen.iter()
            .all(|v| v.as_deref().is_some_and(|b| b.ends_with(b"more")))
    );
    assert!(seen.contains(&Some(b"\0\0\0\0more".to_vec())));
}

#[test]
fn no_space_writes_nothing() {
    let sim = machine();
    let (path, mut temp) = sim.create_temp("/d", ".t.", ".x", 0o600).expect("create");
    sim.fail_at(sim.op_count(), Fault::NoSpace);
    let err = temp.write(b"data").expect_err("ENOSPC");
    assert_eq!(err.kind(), std::io::ErrorKind::StorageFull);
    assert_eq!(sim.read_file(&path).expect("read"), Some(Vec::new()));
}

#[test]
fn a_crash_in_the_middle_of_a_write_puts_down_half() {
    let sim = machine();
    let (path, mut temp) = sim.create_temp("/d", ".t.", ".x", 0o600).expect("create");
    sim.crash_during(sim.op_count());
    assert!(temp.write(b"abcd").is_err());
    assert!(sim.is_crashed());
    assert_eq!(sim.read_file(&path).expect("read"), Some(b"ab".to_vec()));
    assert!(temp.write(b"more").is_err());
}

#[test]
fn locks_vanish_at_a_crash() {
    let sim = machine();
    let guard = sim.open_guard("/d/a.lock", PERMS).expect("guard");
    let held = guard
        .lock(LockStyle::Posix, Mode::Exclusive, Blocking::Try)
        .expect("lock")
        .expect("free");
    let other = sim.process();
    let theirs = other.open_guard("/d/a.lock", PERMS).expect("guard");
    assert!(
        theirs
            .lock(LockStyle::Posix, Mode::Exclusive, Blocking::Try)
            .expect("try")
            .is_none()
    );
    sim.crash_now();
    for after in sim.crash_states(&Enumeration::new()).expect("bound") {
        assert_ne!(after.id(), sim.id());
        let guard = after.open_guard("/d/a.lock", PERMS).expect("guard");
        assert!(
            guard
                .lock(LockStyle::Posix, Mode::Exclusive, Blocking::Try)
                .expect("lock")
                .is_some()
        );
    }
    drop(held);
}

#[test]
fn renames_are_atomic_unless_paranoid() {
    let sim = machine();
    sim.write_file("/d/a", b"old").expect("a");
    sim.write_file("/d/t", b"new").expect("t");
    sim.rename("/d/t", "/d/a").expect("rename");
    assert_eq!(
        targets(&sim, "/d/a"),
        BTreeSet::from([Some(b"old".to_vec()), Some(b"new".to_vec())])
    );
    let paranoid: BTreeSet<_> = sim
        .crash_states(&Enumeration::new().paranoid_rename(true))
        .expect("bound")
        .map(|s| {
            (
                s.read_file("/d/a").expect("a"),
                s.read_file("/d/t").expect("t"),
            )
        })
        .collect();
    assert!(paranoid.contains(&(None, Some(b"new".to_vec()))));
}

#[test]
fn the_bound_is_enforced() {
    let sim = machine();
    for i in 0..20 {
        sim.remove_file("/d/nothing").expect_err("missing");
        sim.write_file(format!("/d/f{i}"), b"").expect("f");
        sim.remove_file(&format!("/d/f{i}")).expect("rm");
    }
    let err = sim
        .crash_states(&Enumeration::new().max_states(1000))
        .expect_err("2^20 states");
    assert_eq!(err.states, 1 << 20);
}

/// Every post-crash listing of `dirs`, with each name's contents.
fn views(sim: &SimFs, dirs: &[&str]) -> BTreeSet<Vec<(String, Option<Vec<u8>>)>> {
    sim.crash_states(&Enumeration::new())
        .expect("bound")
        .map(|s| {
            let mut view = Vec::new();
            for dir in dirs {
                for name in s.list_dir(dir).expect("list") {
                    let path = format!("{dir}/{name}");
                    let contents = s.read_file(&path).expect("read");
                    view.push((path, contents));
                }
            }
            view
        })
        .collect()
}

fn sync_dir(sim: &SimFs, dir: &str) {
    sim.open_dir(Utf8Path::new(dir))
        .expect("open dir")
        .sync()
        .expect("fsync dir");
}

#[test]
fn a_link_is_a_second_name_for_the_same_inode() {
    let sim = machine();
    let mut file = sim.create_new("/d/j", 0o600).expect("create");
    sim.link_path("/d/j", "/d/k").expect("link");
    assert_eq!(
        sim.link_path("/d/j", "/d/k").expect_err("exists").kind(),
        std::io::ErrorKind::AlreadyExists
    );
    assert_eq!(
        sim.link_path("/d/none", "/d/l")
            .expect_err("missing")
            .kind(),
        std::io::ErrorKind::NotFound
    );
    // Written through one name, seen through both, now and after a crash.
    file.write(b"data").expect("write");
    assert_eq!(sim.read_file("/d/k").expect("k"), Some(b"data".to_vec()));
    let j = sim.lstat(Utf8Path::new("/d/j")).expect("j").expect("j");
    let k = sim.lstat(Utf8Path::new("/d/k")).expect("k").expect("k");
    assert_eq!((j.dev, j.ino), (k.dev, k.ino));
    file.sync().expect("fsync");
    sync_dir(&sim, "/d");
    for after in sim.crash_states(&Enumeration::new()).expect("bound") {
        assert_eq!(after.read_file("/d/j").expect("j"), Some(b"data".to_vec()));
        assert_eq!(after.read_file("/d/k").expect("k"), Some(b"data".to_vec()));
    }
}

#[test]
fn a_link_is_durable_at_its_own_directory_fsync_only() {
    let sim = machine();
    sim.create_dir_all("/e").expect("e");
    sim.write_file("/d/j", b"data").expect("j");
    sim.link_path("/d/j", "/e/k")
        .expect("link across directories");
    assert_eq!(sim.read_file("/e/k").expect("k"), Some(b"data".to_vec()));
    // The fsync of the existing name's directory does not make it durable.
    sync_dir(&sim, "/d");
    assert_eq!(
        targets(&sim, "/e/k"),
        BTreeSet::from([None, Some(b"data".to_vec())])
    );
    sync_dir(&sim, "/e");
    assert_eq!(
        targets(&sim, "/e/k"),
        BTreeSet::from([Some(b"data".to_vec())])
    );
}

#[test]
fn a_new_inode_survives_through_whichever_of_its_names_lands() {
    let sim = machine();
    sim.create_dir_all("/e").expect("e");
    let mut file = sim.create_new("/d/j", 0o600).expect("create");
    file.write(b"x").expect("write");
    file.sync().expect("fsync");
    sim.link_path("/d/j", "/e/k").expect("link");
    let j = || ("/d/j".to_owned(), Some(b"x".to_vec()));
    let k = || ("/e/k".to_owned(), Some(b"x".to_vec()));
    // The pending ops of both directories land independently; the inode is
    // dropped only when no name reaches it.
    assert_eq!(
        views(&sim, &["/d", "/e"]),
        BTreeSet::from([vec![], vec![j()], vec![k()], vec![j(), k()]])
    );
    let states: Vec<SimFs> = sim
        .crash_states(&Enumeration::new())
        .expect("bound")
        .collect();
    assert_eq!(states.len(), 4);
    let only_k = states
        .iter()
        .find(|s| {
            s.list_dir("/d").expect("d").is_empty() && !s.list_dir("/e").expect("e").is_empty()
        })
        .expect("only the link landed");
    assert_eq!(only_k.read_file("/e/k").expect("k"), Some(b"x".to_vec()));
}

#[test]
fn removing_one_name_keeps_the_inode_for_the_others() {
    let sim = machine();
    sim.create_dir_all("/e").expect("e");
    sim.write_file("/d/j", b"data").expect("j");
    sim.link_path("/d/j", "/e/k").expect("link");
    sync_dir(&sim, "/e");
    sim.remove_file("/d/j").expect("rm j");
    assert_eq!(sim.read_file("/d/j").expect("j"), None);
    assert_eq!(sim.read_file("/e/k").expect("k"), Some(b"data".to_vec()));
    let j = || ("/d/j".to_owned(), Some(b"data".to_vec()));
    let k = || ("/e/k".to_owned(), Some(b"data".to_vec()));
    assert_eq!(
        views(&sim, &["/d", "/e"]),
        BTreeSet::from([vec![k()], vec![j(), k()]])
    );
    // Both names removed, neither durably: any subset of the removals.
    sim.remove_file("/e/k").expect("rm k");
    assert_eq!(
        views(&sim, &["/d", "/e"]),
        BTreeSet::from([vec![], vec![j()], vec![k()], vec![j(), k()]])
    );
    sync_dir(&sim, "/d");
    sync_dir(&sim, "/e");
    assert_eq!(views(&sim, &["/d", "/e"]), BTreeSet::from([vec![]]));
}

#[test]
fn a_member_renamed_within_its_directory_beside_a_linked_journal() {
    // The batch protocol in miniature: staged files in two directories, one
    // journal with a name beside each member, renames within each directory.
    let sim = machine();
    sim.create_dir_all("/e").expect("e");
    sim.write_file("/d/a", b"old a").expect("a");
    sim.write_file("/e/b", b"old b").expect("b");
    sim.write_file("/d/.a.t", b"new a").expect("staged a");
    sim.write_file("/e/.b.t", b"new b").expect("staged b");
    let mut journal = sim.create_new("/d/.a.j", 0o600).expect("journal");
    sim.link_path("/d/.a.j", "/e/.b.j").expect("link");
    sync_dir(&sim, "/d");
    sync_dir(&sim, "/e");
    journal.write(b"commit").expect("write");
    journal.sync().expect("fsync");
    sim.rename("/d/.a.t", "/d/a").expect("rename a");
    sim.rename("/e/.b.t", "/e/b").expect("rename b");
    let states: Vec<SimFs> = sim
        .crash_states(&Enumeration::new())
        .expect("bound")
        .collect();
    // Each directory's rename lands or not, independently.
    assert_eq!(states.len(), 4);
    let pairs: BTreeSet<_> = states
        .iter()
        .map(|s| {
            assert_eq!(s.read_file("/d/.a.j").expect("j"), Some(b"commit".to_vec()));
            assert_eq!(s.read_file("/e/.b.j").expect("j"), Some(b"commit".to_vec()));
            (
                s.read_file("/d/a").expect("a").expect("a"),
                s.read_file("/e/b").expect("b").expect("b"),
            )
        })
        .collect();
    assert!(pairs.contains(&(b"new a".to_vec(), b"old b".to_vec())));
    sync_dir(&sim, "/d");
    sync_dir(&sim, "/e");
    sim.remove_file("/d/.a.j").expect("rm");
    sim.remove_file("/e/.b.j").expect("rm");
    for s in sim.crash_states(&Enumeration::new()).expect("bound") {
        assert_eq!(s.read_file("/d/a").expect("a"), Some(b"new a".to_vec()));
        assert_eq!(s.read_file("/e/b").expect("b"), Some(b"new b".to_vec()));
        assert_eq!(s.read_file("/d/.a.t").expect("t"), None);
        // A journal name that survives still shows the whole journal.
        for j in ["/d/.a.j", "/e/.b.j"] {
            let got = s.read_file(j).expect("j");
            assert!(got.is_none() || got.as_deref() == Some(b"commit"));
        }
    }
}

/// A directory handle names the directory, not its path: a handle whose
/// directory is renamed commits in it, under its new name, and nothing
/// appears at the old path, not even in a new directory that takes the old
/// name; what it committed is durable there.
#[test]
fn a_handle_follows_its_directory_when_it_is_renamed() {
    let sim = SimFs::new();
    sim.create_dir_all("/d/a").expect("dir");
    let file = crate::Options::new()
        .filesystem(&sim)
        .open("/d/a/f")
        .expect("open");
    file.update(|_| Ok::<_, std::io::Error>(b"one".to_vec()))
        .expect("first update");
    sim.rename_dir("/d/a", "/d/b").expect("mv a b");
    file.update(|old| {
        assert_eq!(old, Some(&b"one"[..]));
        Ok::<_, std::io::Error>(b"two".to_vec())
    })
    .expect("update after the rename");
    assert_eq!(sim.list_dir("/d").expect("d"), ["b"]);
    sim.create_dir_all("/d/a").expect("a new `a`");
    file.update(|_| Ok::<_, std::io::Error>(b"three".to_vec()))
        .expect("update with a new `a`");
    assert_eq!(sim.read_file("/d/b/f").expect("f"), Some(b"three".to_vec()));
    assert!(sim.list_dir("/d/a").expect("a").is_empty());
    for after in sim.crash_states(&Enumeration::new()).expect("bound") {
        assert_eq!(
            after.read_file("/d/b/f").expect("f"),
            Some(b"three".to_vec())
        );
        assert!(after.list_dir("/d/a").expect("a").is_empty());
    }
}

/// Handles on files of one directory share one directory handle, which
/// goes (and leaves the registry) with the last of them; a chosen guard in
/// the same directory shares it too; another process has its own.
#[test]
fn handles_on_one_directory_share_its_handle() {
    use crate::fs::shared::SharedDir;
    use std::sync::Arc;
    let sim = machine();
    let open = |fs: &SimFs, path: &str| {
        crate::Options::new()
            .filesystem(fs)
            .open(path)
            .expect("open")
    };
    let a = open(&sim, "/d/a");
    let b = open(&sim, "/d/b");
    assert!(Arc::ptr_eq(&a.handle.inner.dir, &b.handle.inner.dir));
    assert!(Arc::ptr_eq(&a.handle.inner.dir, &a.handle.inner.guard_dir));
    let dir = a.handle.inner.dir.dev_ino();
    let c = crate::Options::new()
        .filesystem(&sim)
        .guard_path("/d/c.guard")
        .open("/d/c")
        .expect("open c");
    assert!(Arc::ptr_eq(&a.handle.inner.dir, &c.handle.inner.guard_dir));
    let other = sim.process();
    let theirs = open(&other, "/d/a");
    assert!(!Arc::ptr_eq(&a.handle.inner.dir, &theirs.handle.inner.dir));
    drop((a, c));
    assert!(SharedDir::is_registered(Fs::id(&sim), dir));
    drop(b);
    assert!(
        !SharedDir::is_registered(Fs::id(&sim), dir),
        "closed with the last"
    );
    assert!(SharedDir::is_registered(Fs::id(&other), dir));
}
