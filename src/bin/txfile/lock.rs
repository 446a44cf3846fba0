//! `txfile lock FILE -- CMD`: CMD runs while FILE's guard is locked.

use std::process::Stdio;

use crate::args::{self, Cmd, Locking, Target};
use crate::child::Running;
use crate::exit::{Exit, Outcome};
use crate::{begin, signals};

pub(crate) fn run(target: &Target, locking: &Locking, cmd: &Cmd) -> Outcome {
    let file = args::options(target, locking, None).open(&target.file)?;
    // The library locks only through a transaction; this one is never
    // written to and is rolled back, so it changes nothing.
    let tx = begin::begin(&file, locking)?;
    signals::catch()?;
    let status = Running::spawn(&cmd.argv, Stdio::inherit(), Stdio::inherit())?.wait()?;
    tx.rollback();
    if status.success() {
        Ok(())
    } else {
        Err(Exit::command(status))
    }
}
