//! A small tokio worker service that records its progress in one JSON state
//! file through `AsyncTxFile`. Run several at once; every job is done
//! exactly once, and the file is always one complete JSON document:
//!
//! ```text
//! cargo build --example worker --features tokio,cli
//! for w in a b c; do target/debug/examples/worker state.json --jobs 30 --name $w & done
//! target/debug/txfile cat state.json     # at any moment, while they run
//! wait
//! ```
//!
//! Each process runs `--tasks` tasks (3 by default). A task claims a pending
//! job, works on it in 5 steps, records each step's progress, and marks it
//! done; the first task to find no state file creates the jobs. The state:
//!
//! ```text
//! {"jobs": [{"id": 0, "state": "done", "worker": "a/1", "progress": 5}, ...],
//!  "done": 12}
//! ```

use std::time::Duration;

use serde_json::{Value, json};
use txfile::{AsyncTxFile, Error, Options};

const STEPS: u64 = 5;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let path = args
        .next()
        .ok_or("usage: worker STATE [--jobs N] [--name NAME] [--tasks N]")?;
    let (mut jobs, mut name, mut tasks) = (20u64, std::process::id().to_string(), 3usize);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--jobs" => jobs = value.parse()?,
            "--name" => name = value,
            "--tasks" => tasks = value.parse()?,
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    // Open once, on the blocking pool, with the options a service wants: a
    // task that cannot get the lock in 30 s reports an error, not a hang.
    let options = Options::new().timeout(Duration::from_secs(30));
    let state = AsyncTxFile::from(tokio::task::spawn_blocking(move || options.open(path)).await??);

    let workers: Vec<_> = (0..tasks)
        .map(|i| tokio::spawn(work(state.clone(), format!("{name}/{i}"), jobs)))
        .collect();
    let mut done = 0;
    for worker in workers {
        done += worker.await??;
    }
    println!("{name}: {done} jobs done");
    Ok(())
}

/// Claims and does jobs until none is pending; returns how many it did.
async fn work(state: AsyncTxFile, me: String, jobs: u64) -> Result<u64, Error> {
    let mut done = 0;
    loop {
        // Claim: one transaction reads the state, picks a pending job and
        // marks it ours. The closure runs on the blocking pool, so it may
        // parse and serialise freely; it must not await anything.
        let claim = me.clone();
        let claimed = std::sync::Arc::new(std::sync::Mutex::new(None));
        let slot = claimed.clone();
        state
            .update(move |old| {
                let mut doc = parse(old, jobs)?;
                let pending = doc["jobs"]
                    .as_array_mut()
                    .and_then(|all| all.iter_mut().find(|job| job["state"] == "pending"));
                if let Some(job) = pending {
                    job["state"] = json!("running");
                    job["worker"] = json!(claim);
                    *slot.lock().unwrap() = job["id"].as_u64();
                }
                serde_json::to_vec_pretty(&doc)
            })
            .await?;
        let Some(id) = *claimed.lock().unwrap() else {
            return Ok(done);
        };
        for step in 1..=STEPS {
            // The work itself: anything async, never holding a transaction.
            tokio::time::sleep(Duration::from_millis(10)).await;
            let last = step == STEPS;
            state
                .update(move |old| {
                    let mut doc = parse(old, jobs)?;
                    let job = &mut doc["jobs"][id as usize];
                    job["progress"] = json!(step);
                    if last {
                        job["state"] = json!("done");
                        doc["done"] = json!(doc["done"].as_u64().unwrap_or(0) + 1);
                    }
                    serde_json::to_vec_pretty(&doc)
                })
                .await?;
        }
        done += 1;
    }
}

/// The state document, or a fresh one with `jobs` pending jobs.
fn parse(old: Option<&[u8]>, jobs: u64) -> Result<Value, serde_json::Error> {
    match old {
        Some(bytes) => serde_json::from_slice(bytes),
        None => Ok(json!({
            "jobs": (0..jobs)
                .map(|id| json!({"id": id, "state": "pending", "worker": null, "progress": 0}))
                .collect::<Vec<_>>(),
            "done": 0,
        })),
    }
}
