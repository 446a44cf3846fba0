//! `txfile edit FILE -- CMD`: CMD's output replaces the contents it read.

use std::io::{self, Read, Write};
use std::process::{ChildStdin, Stdio};
use std::thread::{self, JoinHandle};

use camino::Utf8PathBuf;
use txfile::OldReader;

use crate::args::{self, Cmd, Locking, Target, Writing};
use crate::child::Running;
use crate::exit::{Exit, Outcome};
use crate::{begin, pump, signals};

pub(crate) fn run(
    target: &Target,
    locking: &Locking,
    writing: &Writing,
    create: bool,
    cmd: &Cmd,
) -> Outcome {
    let file = args::options(target, locking, Some(writing)).open(&target.file)?;
    let mut tx = begin::begin(&file, locking)?;
    signals::catch()?;
    // The reader owns its reference to the version the transaction began
    // with, so a thread can feed it to CMD while this one writes.
    let old = tx.old_reader();
    let mut child = Running::spawn(&cmd.argv, Stdio::piped(), Stdio::piped())?;
    let stdin = child.child().stdin.take().expect("stdin was piped");
    let stdout = child.child().stdout.take().expect("stdout was piped");
    let feeder = feed(old, tx.path().to_owned(), stdin);
    let output = format!("output of `{}`", cmd.argv[0].to_string_lossy());
    // Dropping `child` on an early return kills CMD, which also ends both
    // helper threads by closing their pipes.
    let copied = pump::copy(stdout, &output, &mut tx)?;
    let status = child.wait()?;
    if !status.success() {
        return Err(Exit::command(status));
    }
    feeder.join().expect("the feeder thread does not panic")?;
    if copied == 0 && !tx.exists() && !create {
        // Nothing in, nothing out (`jq .` on a missing file): creating an
        // empty file would turn "no state yet" into "corrupt state".
        eprintln!(
            "txfile: `{}` does not exist and `{}` printed nothing: left it missing (--create creates it empty)",
            tx.path(),
            cmd.argv[0].to_string_lossy(),
        );
        tx.rollback();
        return Ok(());
    }
    // The last chance to honour a signal; once the commit runs it finishes.
    signals::check()?;
    tx.commit()?;
    Ok(())
}

/// Writes the old contents (if any) to CMD's standard input from a thread,
/// so that CMD may write output before it has read all its input, then
/// closes it. CMD need not read everything: a closed pipe ends the copy.
fn feed(old: Option<OldReader>, path: Utf8PathBuf, mut stdin: ChildStdin) -> JoinHandle<Outcome> {
    thread::spawn(move || {
        let Some(mut old) = old else {
            return Ok(());
        };
        let mut chunk = vec![0; 64 * 1024];
        loop {
            let n = match old.read(&mut chunk) {
                Ok(0) => return Ok(()),
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Exit::io(format_args!("failed to read `{path}`"), e)),
            };
            match stdin.write_all(&chunk[..n]) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
                Err(e) => return Err(Exit::io("failed to write the input of CMD", e)),
            }
        }
    })
}
