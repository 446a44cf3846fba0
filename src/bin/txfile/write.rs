//! `txfile write FILE`: standard input becomes the new contents.

use std::io;

use crate::args::{self, Locking, Target, Writing};
use crate::exit::{Exit, Outcome};
use crate::{begin, pump, signals};

pub(crate) fn run(
    target: &Target,
    locking: &Locking,
    writing: &Writing,
    allow_empty: bool,
) -> Outcome {
    let file = args::options(target, locking, Some(writing)).open(&target.file)?;
    let mut tx = begin::begin(&file, locking)?;
    signals::catch()?;
    let copied = pump::copy(io::stdin(), "standard input", &mut tx)?;
    if copied == 0 && !allow_empty {
        // Empty input is what a failed command before the pipe leaves
        // (`jq` with a syntax error, a `grep` of a missing file); taking it
        // for the new contents would empty FILE and exit 0.
        let path = tx.path();
        return Err(Exit::refused(format_args!(
            "standard input was empty: refusing to {} `{path}` (did the command before the pipe fail?); \
             pass --allow-empty to write an empty file",
            if tx.exists() {
                "empty"
            } else {
                "create an empty"
            },
        )));
    }
    // The last chance to honour a signal; once the commit runs it finishes.
    signals::check()?;
    tx.commit()?;
    Ok(())
}
