//! `AsyncTxFile::update` against `TxFile::update` in the same run: 4 KiB,
//! durable, one task (one thread) alone and 8 tasks (8 threads) contending
//! for one file. Rounds alternate between the two, so noise hits both.

use std::time::Instant;

use camino::Utf8Path;
use txfile::{AsyncTxFile, Options};

const SIZE: usize = 4096;
const CONTENDERS: usize = 8;

pub(crate) fn run(dir: &Utf8Path, quick: bool) {
    let (rounds, per_round) = if quick { (3, 100) } else { (7, 400) };
    println!("## Async: `AsyncTxFile::update` against `TxFile::update`, 4 KiB, durable");
    println!();
    println!(
        "{per_round} updates per round, {rounds} rounds alternating sync and async; median \
         updates/s; a 2-worker runtime (`new_multi_thread`); contending = {CONTENDERS} threads \
         (sync) or {CONTENDERS} tasks (async) sharing the updates of a round."
    );
    println!();
    println!("| case | sync updates/s | async updates/s | async / sync |");
    println!("|---|---|---|---|");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    for (case, tasks) in [("one task", 1), ("8 contending tasks", CONTENDERS)] {
        let path = dir.join(format!("async-{tasks}"));
        let file = Options::new().open(&path).expect("open");
        file.update(|_| Ok::<_, txfile::BoxError>(vec![b'0'; SIZE]))
            .expect("seed");
        let async_file = AsyncTxFile::from(file.clone());
        let (mut sync_rates, mut async_rates) = (Vec::new(), Vec::new());
        for round in 0..rounds {
            let sync_rate = || {
                let start = Instant::now();
                std::thread::scope(|scope| {
                    for _ in 0..tasks {
                        let file = file.clone();
                        scope.spawn(move || {
                            for _ in 0..per_round / tasks {
                                file.update(crate::bump).expect("sync update");
                            }
                        });
                    }
                });
                (per_round / tasks * tasks) as f64 / start.elapsed().as_secs_f64()
            };
            let async_rate = || {
                runtime.block_on(async {
                    let start = Instant::now();
                    let handles: Vec<_> = (0..tasks)
                        .map(|_| {
                            let file = async_file.clone();
                            tokio::spawn(async move {
                                for _ in 0..per_round / tasks {
                                    file.update(crate::bump).await.expect("async update");
                                }
                            })
                        })
                        .collect();
                    for handle in handles {
                        handle.await.expect("task");
                    }
                    (per_round / tasks * tasks) as f64 / start.elapsed().as_secs_f64()
                })
            };
            if round % 2 == 0 {
                sync_rates.push(sync_rate());
                async_rates.push(async_rate());
            } else {
                async_rates.push(async_rate());
                sync_rates.push(sync_rate());
            }
        }
        let sync = crate::quantile(&mut sync_rates, 0.5);
        let asynchronous = crate::quantile(&mut async_rates, 0.5);
        println!(
            "| {case} | {sync:.0} | {asynchronous:.0} | {:.2} |",
            asynchronous / sync
        );
    }
    println!();
}
