//! `AsyncTxFile::update` against `TxFile::update` in the same run: 4 KiB,
//! one task (one thread) alone and 8 tasks (8 threads) contending for one
//! file, durable and (to show the fixed costs, such as handing the lock
//! from one task to the next) without fsyncs. Rounds alternate between the
//! two, so noise hits both; each round's async rate is also divided by the
//! sync rate of the same round, and the median of those ratios printed,
//! which drifting load disturbs less.

use std::time::Instant;

use camino::Utf8Path;
use txfile::{AsyncTxFile, Durability};

const CONTENDERS: usize = 8;

pub(crate) fn run(dir: &Utf8Path, quick: bool) {
    let (rounds, per_round) = if quick { (3, 96) } else { (15, 160) };
    println!("## Async: `AsyncTxFile::update` against `TxFile::update`, 4 KiB");
    println!();
    println!(
        "{per_round} updates per round, {rounds} rounds alternating sync and async; median \
         updates/s; a 2-worker runtime (`new_multi_thread`); contending = {CONTENDERS} threads \
         (sync) or {CONTENDERS} tasks (async) sharing the updates of a round; last column: \
         median over the rounds of async / sync in the same round."
    );
    println!();
    println!("| case | durability | sync updates/s | async updates/s | async / sync | per round |");
    println!("|---|---|---|---|---|---|");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    let cases = [
        ("one task", 1, Durability::Full),
        ("8 contending tasks", CONTENDERS, Durability::Full),
        ("one task", 1, Durability::None),
        ("8 contending tasks", CONTENDERS, Durability::None),
    ];
    for (case, tasks, durability) in cases {
        let label = if durability == Durability::Full {
            "full"
        } else {
            "none"
        };
        let file = crate::seeded(dir, &format!("async-{tasks}-{label}"), durability);
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
        let mut ratios: Vec<f64> = async_rates
            .iter()
            .zip(&sync_rates)
            .map(|(a, s)| a / s)
            .collect();
        let per_round = crate::quantile(&mut ratios, 0.5);
        let sync = crate::quantile(&mut sync_rates, 0.5);
        let asynchronous = crate::quantile(&mut async_rates, 0.5);
        println!(
            "| {case} | {label} | {sync:.0} | {asynchronous:.0} | {:.2} | {per_round:.2} |",
            asynchronous / sync
        );
    }
    println!();
}
