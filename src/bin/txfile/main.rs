//! The `txfile` command: locked, atomic edits of a file from the shell.
//!
//! Each subcommand lives in its own module; this one parses the command line
//! and turns the outcome into an exit status.

mod args;
mod begin;
mod cat;
mod child;
mod edit;
mod exit;
mod lock;
mod pump;
mod signals;
mod write;

use std::io;
use std::process::ExitCode;

use clap::{CommandFactory, Parser};

use crate::args::{Cli, Command};
use crate::exit::Outcome;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        // Usage errors are 2, as for clap and getopt-based tools; --help
        // and --version print to standard output and succeed.
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { exit::USAGE } else { 0 });
        }
    };
    match run(cli.command) {
        Ok(()) => ExitCode::SUCCESS,
        Err(exit) => exit.report(),
    }
}

fn run(command: Command) -> Outcome {
    match command {
        Command::Edit {
            target,
            locking,
            writing,
            create,
            cmd,
        } => edit::run(&target, &locking, &writing, create, &cmd),
        Command::Write {
            target,
            locking,
            writing,
            allow_empty,
        } => write::run(&target, &locking, &writing, allow_empty),
        Command::Cat { target } => cat::run(&target),
        Command::Lock {
            target,
            locking,
            cmd,
        } => lock::run(&target, &locking, &cmd),
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "txfile", &mut io::stdout());
            Ok(())
        }
    }
}
