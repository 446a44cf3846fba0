//! Re-derives a `crash_sequences` mutant catcher after the protocol's
//! operation count changed (a new lock call, a lazier open): every crash
//! point reachable by changing one byte of the old input, with everything
//! else decoded the same, is run under the mutant, and each one that catches
//! it is written to `/tmp/catcher-<crash>-<crash in recovery>`. Then check the
//! chosen one with `fuzz/run.sh` (it must pass with the real protocol).
//!
//! ```sh
//! TXFILE_FUZZ_MUTANT=BatchRecoveryTrustsCache \
//! INPUT=mutant-catchers/crash_sequences-BatchRecoveryTrustsCache-undecided-journal \
//! cargo test --release --test rederive_catcher -- --ignored --nocapture
//! ```
use arbitrary::{Arbitrary, Unstructured};
use txfile_fuzz::crash_sequences::{Input, check};

fn decode(bytes: &[u8]) -> Option<Input> {
    Input::arbitrary_take_rest(Unstructured::new(bytes)).ok()
}

fn norm(i: &Input) -> String {
    let mut i = i.clone();
    i.crash.at = 0;
    if let Some(c) = i.crash_in_recovery.as_mut() {
        c.at = 0;
    }
    format!("{i:?}")
}

#[test]
#[ignore]
fn rederive() {
    let path = std::env::var("INPUT").expect("INPUT names the old catcher");
    let bytes = std::fs::read(&path).unwrap();
    let orig = decode(&bytes).unwrap();
    eprintln!(
        "orig crash {:?} rec {:?}",
        orig.crash, orig.crash_in_recovery
    );
    let base = norm(&orig);
    let mut seen = std::collections::BTreeSet::new();
    let mut cands = Vec::new();
    for pos in 0..bytes.len() {
        for v in 0..=255u8 {
            let mut b = bytes.clone();
            b[pos] = v;
            let Some(i) = decode(&b) else { continue };
            if norm(&i) != base {
                continue;
            }
            let key = (i.crash.at, i.crash_in_recovery.map(|c| c.at));
            if seen.insert(key) {
                cands.push((key, b));
            }
        }
    }
    eprintln!("{} candidates", cands.len());
    std::panic::set_hook(Box::new(|_| {}));
    for (key, b) in cands {
        let i = decode(&b).unwrap();
        let caught = std::panic::catch_unwind(|| check(&i)).is_err();
        if caught {
            eprintln!("CAUGHT with {key:?}");
            let rec = key.1.map_or("none".to_string(), |at| at.to_string());
            std::fs::write(format!("/tmp/catcher-{}-{rec}", key.0), &b).unwrap();
        }
    }
}
