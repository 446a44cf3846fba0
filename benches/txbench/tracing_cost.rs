//! What the `tracing` feature costs a 4 KiB `update`: one half of a
//! comparison that takes two builds, with the feature and without, run in
//! turns by `benches/tracing-cost.sh`, which prints the ratios.
//!
//! Each run prints one machine-readable line per variant:
//! `tracing-cost <build> <variant> <median seconds per update>`, where the
//! build is `on` or `off`. Variants: durability none (the fixed costs,
//! where a span's overhead would show most) and full, each also with a
//! subscriber that formats every span at its close (to nowhere), so that
//! the spans are built, timed and recorded (in the `off` build there are no
//! spans: the same updates, for the same load on the disk).

use std::time::Instant;

use camino::Utf8Path;
use txfile::{Durability, TxFile};

pub(crate) fn run(dir: &Utf8Path, quick: bool) {
    let (rounds, per_round) = if quick { (3, 50) } else { (9, 200) };
    let build = if cfg!(feature = "tracing") {
        "on"
    } else {
        "off"
    };
    let mut variants: Vec<(String, TxFile, bool, Vec<f64>)> = Vec::new();
    for (name, durability) in [("none", Durability::None), ("full", Durability::Full)] {
        // The `off` build runs the subscriber cases too (with nothing to
        // subscribe to), so that both builds put the same load on the disk.
        for subscriber in [false, true] {
            let label = format!("{name}{}", if subscriber { "+subscriber" } else { "" });
            let file = crate::seeded(dir, &format!("tracing-{label}"), durability);
            variants.push((label, file, subscriber, Vec::new()));
        }
    }
    for round in 0..rounds {
        let n = variants.len();
        for i in 0..n {
            let (_, file, subscriber, samples) = &mut variants[(round + i) % n];
            let _default = subscriber.then(subscribe);
            for _ in 0..per_round {
                let start = Instant::now();
                file.update(crate::bump).expect("update");
                samples.push(start.elapsed().as_secs_f64());
            }
        }
    }
    for (label, _, _, samples) in &mut variants {
        println!(
            "tracing-cost {build} {label} {:.9}",
            crate::quantile(samples, 0.5)
        );
    }
}

/// A subscriber for this thread that formats every txfile span when it
/// closes, at debug level, writing nowhere.
#[cfg(feature = "tracing")]
fn subscribe() -> tracing::subscriber::DefaultGuard {
    use tracing_subscriber::fmt::format::FmtSpan;
    use tracing_subscriber::util::SubscriberInitExt;
    tracing_subscriber::fmt()
        .with_max_level(tracing::Level::DEBUG)
        .with_span_events(FmtSpan::CLOSE)
        .with_writer(std::io::sink)
        .finish()
        .set_default()
}

#[cfg(not(feature = "tracing"))]
fn subscribe() {}
