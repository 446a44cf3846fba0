//! `txfile write FILE`: standard input becomes the new contents.

use std::io;

use crate::args::{self, Locking, Target, Writing};
use crate::exit::Outcome;
use crate::{begin, pump, signals};

pub(crate) fn run(target: &Target, locking: &Locking, writing: &Writing) -> Outcome {
    let file = args::options(target, locking, Some(writing)).open(&target.file)?;
    let mut tx = begin::begin(&file, locking)?;
    signals::catch()?;
    pump::copy(io::stdin(), "standard input", &mut tx)?;
    // The last chance to honour a signal; once the commit runs it finishes.
    signals::check()?;
    tx.commit()?;
    Ok(())
}
