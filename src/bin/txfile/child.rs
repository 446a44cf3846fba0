//! Running CMD: starting it, waiting for it while watching for signals, and
//! making sure it is gone before the lock is released.

use std::ffi::OsString;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::Duration;

use crate::exit::Exit;
use crate::signals;

/// How often the wait for CMD looks at the signal flag.
pub(crate) const POLL: Duration = Duration::from_millis(20);

/// CMD as a running process. Dropping it kills and reaps the process, so no
/// early return can leave CMD running after the lock is released.
///
/// Only CMD itself is killed, not processes it started (`sh -c 'a; b'` may
/// fork `b`). Killing a whole process group would need CMD in a group of its
/// own, and then it could no longer use the terminal (an editor run through
/// `edit`, an interactive CMD under `lock`). A Ctrl-C at a terminal reaches
/// every process of the foreground group anyway.
#[derive(Debug)]
pub(crate) struct Running {
    child: Child,
    name: String,
    done: bool,
}

impl Running {
    /// Starts `argv` with the given standard input and output; standard
    /// error is inherited.
    pub(crate) fn spawn(argv: &[OsString], stdin: Stdio, stdout: Stdio) -> Result<Running, Exit> {
        let (program, args) = argv.split_first().expect("clap requires CMD");
        let name = program.to_string_lossy().into_owned();
        let child = Command::new(program)
            .args(args)
            .stdin(stdin)
            .stdout(stdout)
            .spawn()
            .map_err(|e| Exit::spawn(&name, e))?;
        Ok(Running {
            child,
            name,
            done: false,
        })
    }

    pub(crate) fn child(&mut self) -> &mut Child {
        &mut self.child
    }

    /// Waits for CMD to exit. A termination signal kills it first and
    /// returns that signal's exit.
    pub(crate) fn wait(mut self) -> Result<ExitStatus, Exit> {
        loop {
            signals::check()?;
            match self.child.try_wait() {
                Ok(Some(status)) => {
                    self.done = true;
                    return Ok(status);
                }
                Ok(None) => thread::sleep(POLL),
                Err(e) => {
                    return Err(Exit::io(
                        format_args!("failed to wait for `{}`", self.name),
                        e,
                    ));
                }
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if !self.done {
            // Errors mean it has already exited and been reaped.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
