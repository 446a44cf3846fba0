//! The batch journal's decoder on raw bytes and on damaged encodings; see
//! `txfile_fuzz::journal_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| txfile_fuzz::journal_decode::check(data));
