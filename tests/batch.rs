//! Batch commits on the real filesystem: semantics, deadlock freedom across
//! processes, consistent reads, and kill -9 in the middle of batch commits.
#![cfg(unix)] // inode numbers and Unix kill -9 of batch writers (Windows: tests/windows.rs)

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use camino::{Utf8Path, Utf8PathBuf};
use common::{
    Rng, check, disk_tempdir, names, parse_versioned, role, run_role, tempdir, versioned,
};
use txfile::{Batch, Error, LockStyle, Options, TxFile};

fn counters(batch: &Batch) -> Vec<u64> {
    batch
        .read()
        .unwrap()
        .iter()
        .map(|c| c.as_deref().map_or(0, |b| parse_versioned(b).unwrap()))
        .collect()
}

fn increment_all(batch: &Batch) -> Result<(), Error> {
    batch.update(|old| {
        let n = old[0].map_or(0, |b| parse_versioned(b).expect("complete"));
        for other in old {
            let m = other.map_or(0, |b| parse_versioned(b).expect("complete"));
            assert_eq!(m, n, "members disagree: {m} != {n}");
        }
        Ok::<_, Error>((0..old.len()).map(|i| versioned(n + 1, i * 100)).collect())
    })
}

fn leftovers(dirs: &[&Utf8Path]) -> Vec<String> {
    dirs.iter()
        .flat_map(|d| names(d))
        .filter(|n| n.ends_with(".txtmp") || n.ends_with(".txjournal"))
        .collect()
}

#[test]
fn commit_rollback_noop_and_conflict() {
    let (_d, dir) = tempdir();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let paths = [dir.join("a"), dir.join("sub/b"), dir.join("c")];
    let batch = Batch::open(&paths).unwrap();
    assert_eq!(counters(&batch), [0, 0, 0]);
    increment_all(&batch).unwrap();
    increment_all(&batch).unwrap();
    assert_eq!(counters(&batch), [2, 2, 2]);
    assert!(leftovers(&[&dir, &dir.join("sub")]).is_empty());

    // Rollback changes nothing.
    let mut tx = batch.begin().unwrap();
    tx.member(0).write_all(b"x").unwrap();
    tx.member(2).write_all(&vec![b'y'; 200_000]).unwrap();
    tx.rollback();
    assert_eq!(counters(&batch), [2, 2, 2]);
    assert!(leftovers(&[&dir, &dir.join("sub")]).is_empty());

    // Unchanged members are left alone (same inode, same mtime).
    let before: Vec<_> = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap())
        .collect();
    batch
        .update(|old| {
            let mut new: Vec<Vec<u8>> = old.iter().map(|o| o.unwrap().to_vec()).collect();
            new[1] = versioned(99, 0);
            Ok::<_, Error>(new)
        })
        .unwrap();
    let after: Vec<_> = paths
        .iter()
        .map(|p| std::fs::metadata(p).unwrap())
        .collect();
    assert_eq!(after[0].ino(), before[0].ino());
    assert_eq!(after[2].modified().unwrap(), before[2].modified().unwrap());
    assert_ne!(after[1].ino(), before[1].ino());

    // An outside writer on one member aborts the whole batch.
    let mut tx = batch.begin().unwrap();
    for (i, member) in tx.members_mut().iter_mut().enumerate() {
        member.write_all(&versioned(7, i)).unwrap();
    }
    std::fs::write(&paths[2], "theirs").unwrap();
    let err = tx.commit().unwrap_err();
    assert!(matches!(err, Error::Conflict { .. }), "{err}");
    assert_eq!(std::fs::read(&paths[2]).unwrap(), b"theirs");
    assert_eq!(
        parse_versioned(&std::fs::read(&paths[0]).unwrap()).unwrap(),
        2,
        "nothing committed"
    );
    assert!(leftovers(&[&dir, &dir.join("sub")]).is_empty());

    // A wrong number of contents is refused.
    let err = batch
        .update(|_| Ok::<_, Error>(vec![b"one".to_vec()]))
        .unwrap_err();
    assert!(matches!(err, Error::Aborted { .. }), "{err}");
}

#[test]
fn bad_batches_are_refused() {
    let (_d, dir) = tempdir();
    let err = Batch::new(Vec::<TxFile>::new()).unwrap_err();
    assert!(matches!(err, Error::EmptyBatch), "{err:?}");
    assert!(err.to_string().contains("at least one member"), "{err}");
    let err = Batch::open([dir.join("a"), dir.join("b"), dir.join("a")]).unwrap_err();
    assert!(err.to_string().contains("twice"), "{err}");
    assert!(err.to_string().contains(dir.join("a").as_str()), "{err}");
    // Different filesystems: /dev/shm is a tmpfs on Linux.
    let shm = Utf8Path::new("/dev/shm");
    let other_fs = shm.exists()
        && std::fs::metadata(shm).unwrap().dev() != std::fs::metadata(&dir).unwrap().dev();
    if other_fs {
        let (_s, elsewhere) = {
            let d = tempfile::tempdir_in(shm).unwrap();
            let p = Utf8PathBuf::try_from(d.path().to_owned()).unwrap();
            (d, p)
        };
        let err = Batch::open([dir.join("a"), elsewhere.join("b")]).unwrap_err();
        assert!(err.to_string().contains("another filesystem"), "{err}");
    } else {
        eprintln!("skipped the cross-filesystem check: no second filesystem at /dev/shm");
    }
}

#[test]
fn single_file_transactions_see_batches_atomically() {
    let (_d, dir) = tempdir();
    let a = TxFile::open(dir.join("a")).unwrap();
    let batch = Batch::new([a.clone(), TxFile::open(dir.join("b")).unwrap()]).unwrap();
    increment_all(&batch).unwrap();
    // A single-file commit on a member between batches.
    a.update(|old| Ok::<_, Error>(versioned(parse_versioned(old.unwrap()).unwrap() + 10, 0)))
        .unwrap();
    assert_eq!(
        counters(&batch),
        [11, 1],
        "the batch sees the member's own commit"
    );
    let held = a.begin().unwrap();
    assert!(
        batch.try_begin().unwrap().is_none(),
        "a member's lock blocks the batch"
    );
    held.rollback();
    assert!(batch.try_begin().unwrap().is_some());
    assert_eq!(txfile::recover(&dir).unwrap(), 0);
}

/// Child role: `COUNT` batch increments of `MEMBERS` (comma separated, in
/// this process's order).
#[test]
fn batch_worker_entry() {
    let Some(role) = role() else { return };
    let dir = Utf8PathBuf::from(std::env::var("DIR").unwrap());
    let style = match std::env::var("STYLE").as_deref() {
        Ok("posix") => LockStyle::Posix,
        _ => LockStyle::Flock,
    };
    let members: Vec<TxFile> = std::env::var("MEMBERS")
        .unwrap()
        .split(',')
        .map(|m| Options::new().lock_style(style).open(dir.join(m)).unwrap())
        .collect();
    let batch = Batch::new(members).unwrap();
    match role.as_str() {
        "increment" => {
            let count: u64 = std::env::var("COUNT").unwrap().parse().unwrap();
            for _ in 0..count {
                increment_all(&batch).unwrap();
            }
        }
        "acking" => {
            let mut out = std::io::stdout();
            loop {
                let mut n = 0;
                batch
                    .update(|old| {
                        n = old[0].map_or(0, |b| parse_versioned(b).expect("complete")) + 1;
                        Ok::<_, Error>(
                            (0..old.len())
                                .map(|i| versioned(n, 1000 + i * 20_000))
                                .collect(),
                        )
                    })
                    .unwrap();
                writeln!(out, "ack {n}").unwrap();
                out.flush().unwrap();
            }
        }
        "reader" => {
            let stop = dir.join("stop");
            let (mut reads, mut mixed) = (0u64, 0u64);
            while !stop.exists() {
                let values = counters(&batch);
                reads += 1;
                if values.iter().any(|v| *v != values[0]) {
                    mixed += 1;
                    eprintln!("mixed read: {values:?}");
                }
            }
            println!("reads={reads} mixed={mixed}");
        }
        other => panic!("unknown role {other}"),
    }
}

#[test]
fn opposite_orders_never_deadlock() {
    if role().is_some() {
        return;
    }
    let _heavy = common::heavy();
    for (style, count) in [("flock", 1000u64), ("posix", 300)] {
        let (_d, dir) = tempdir();
        let env = |members: &str| {
            vec![
                ("DIR", dir.to_string()),
                ("MEMBERS", members.to_string()),
                ("COUNT", count.to_string()),
                ("STYLE", style.to_string()),
            ]
        };
        let started = Instant::now();
        let reader = run_role("batch_worker_entry", "reader", &env("a,b"))
            .spawn()
            .unwrap();
        let one = run_role("batch_worker_entry", "increment", &env("a,b"))
            .spawn()
            .unwrap();
        let two = run_role("batch_worker_entry", "increment", &env("b,a"))
            .spawn()
            .unwrap();
        // A deadlock would hang here; the bound makes it a failure instead.
        let deadline = Instant::now() + Duration::from_secs(300);
        for mut child in [one, two] {
            loop {
                if let Some(status) = child.try_wait().unwrap() {
                    assert!(status.success(), "{style}: a batch worker failed");
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{style}: batches over {{a,b}} and {{b,a}} deadlocked"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        std::fs::write(dir.join("stop"), "").unwrap();
        let out = check(reader.wait_with_output().unwrap(), "reader");
        let batch = Batch::open([dir.join("a"), dir.join("b")]).unwrap();
        assert_eq!(counters(&batch), [2 * count, 2 * count], "{style}");
        eprintln!(
            "{style}: 2 processes x {count} batches over {{a,b}} and {{b,a}} in {:.1}s; concurrent Batch::read: {}",
            started.elapsed().as_secs_f64(),
            &out[out.find("reads=").unwrap_or(0)..].trim()
        );
        assert!(out.contains("mixed=0"), "{out}");
    }
}

#[test]
fn kill9_during_batch_commits() {
    if role().is_some() {
        return;
    }
    let _heavy = common::heavy();
    let kills: u32 = txfile_testkit::process::env_or("TXFILE_BATCH_KILLS", 200);
    let (_d, dir) = disk_tempdir();
    std::fs::create_dir(dir.join("sub")).unwrap();
    let members = "a,sub/b,c";
    let env = vec![("DIR", dir.to_string()), ("MEMBERS", members.to_string())];
    let max_acked = Arc::new(AtomicU64::new(0));
    let spawn = || {
        let mut child = run_role("batch_worker_entry", "acking", &env)
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let acked = Arc::clone(&max_acked);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(n) = line.strip_prefix("ack ").and_then(|n| n.parse().ok()) {
                    acked.fetch_max(n, Ordering::SeqCst);
                }
            }
        });
        (child, reader)
    };
    let mut writers: Vec<_> = (0..3).map(|_| spawn()).collect();
    let checker = Batch::open(members.split(',').map(|m| dir.join(m))).unwrap();
    let mut rng = Rng::from_env_or_time("kill9_during_batch_commits");
    let started = Instant::now();
    let mut last = 0;
    for kill in 1..=kills {
        std::thread::sleep(Duration::from_millis(rng.below(20)));
        let victim = rng.below(writers.len() as u64) as usize;
        let (mut child, reader) = std::mem::replace(&mut writers[victim], spawn());
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
        let acked = max_acked.load(Ordering::SeqCst);
        // Reading recovers any journal the dead writer left, then sees
        // every member at the same version.
        let values = counters(&checker);
        assert!(
            values.iter().all(|v| *v == values[0]),
            "kill {kill}: members disagree: {values:?}"
        );
        assert!(
            values[0] >= acked,
            "kill {kill}: acknowledged {acked}, members hold {}",
            values[0]
        );
        assert!(values[0] >= last, "kill {kill}: went back");
        last = values[0];
    }
    for (mut child, reader) in writers {
        child.kill().unwrap();
        child.wait().unwrap();
        reader.join().unwrap();
    }
    // One transaction later nothing of any dead writer remains.
    checker.begin().unwrap().rollback();
    let left = leftovers(&[&dir, &dir.join("sub")]);
    assert!(left.is_empty(), "{left:?}");
    eprintln!(
        "kill9_during_batch_commits: {kills} kills in {:.1}s, {last} batch commits, {} acknowledged, members always agreed",
        started.elapsed().as_secs_f64(),
        max_acked.load(Ordering::SeqCst)
    );
}

#[test]
fn update_returning_gives_back_the_value_with_the_commit() {
    let (_d, dir) = tempdir();
    let batch = Batch::open([dir.as_std_path().join("a"), dir.as_std_path().join("b")]).unwrap();
    // Move one unit from a to b and report the new balances.
    type Balances = (i64, i64);
    let transfer = |old: &[Option<&[u8]>]| -> Result<(Vec<Vec<u8>>, Balances), Error> {
        let n = |i: usize| common::parse_counter(old[i]) as i64;
        let (a, b) = (n(0) + 10 - 1, n(1) + 1);
        Ok((
            vec![a.to_string().into_bytes(), b.to_string().into_bytes()],
            (a, b),
        ))
    };
    assert_eq!(batch.update_returning(transfer).unwrap(), (9, 1));
    assert_eq!(
        batch.read().unwrap(),
        [Some(b"9".to_vec()), Some(b"1".to_vec())]
    );
    // A wrong number of contents aborts: no value, nothing changed.
    let err = batch
        .update_returning(|_| Ok::<_, Error>((vec![b"x".to_vec()], 0)))
        .unwrap_err();
    assert!(matches!(err, Error::Aborted { .. }), "{err:?}");
    assert_eq!(
        batch.read().unwrap(),
        [Some(b"9".to_vec()), Some(b"1".to_vec())]
    );
}
