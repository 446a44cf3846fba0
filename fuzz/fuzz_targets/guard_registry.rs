//! Threads and processes opening, cloning and dropping handles and taking
//! and releasing the lock; see `txfile_fuzz::guard_registry`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use txfile_fuzz::guard_registry::{Input, check};

fuzz_target!(|input: Input| check(&input));
