//! Transactions on up to three targets, a power loss anywhere, a post-crash
//! state chosen by the input, recovery, and the crash invariants; see
//! `txfile_fuzz::crash_sequences`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use txfile_fuzz::crash_sequences::{Input, check};

fuzz_target!(|input: Input| check(&input));
