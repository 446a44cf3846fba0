//! The command line, as clap parses it, and its translation into [`Options`].

use std::ffi::OsString;
use std::time::Duration;

use camino::Utf8PathBuf;
use clap::{Args, Parser, Subcommand, ValueEnum};
use txfile::{Durability, LockStyle, Options, Symlinks};

const AFTER_HELP: &str = "\
Examples:
  txfile edit counter -- sh -c 'read n; echo $((${n:-0} + 1))'
  txfile edit state.json -- jq '.n += 1'
  sort -u hosts.new | txfile write hosts
  txfile cat config.json
  txfile lock config.json ./deploy.sh

To change a file based on its current contents, use `edit`: CMD reads FILE
under the lock. `cmd FILE | txfile write FILE` is not protected: cmd reads
FILE before txfile takes the lock, so a change another writer makes in
between is lost, and when cmd fails its (partial or empty) output still
replaces FILE (empty input is refused unless --allow-empty).

Exit status: 0 on success; CMD's own status when CMD fails (nothing is
committed); 127 when CMD is not found, 126 when it cannot be executed; 75
when the lock was not acquired in time (--timeout, --no-wait); 2 for a usage
error; 1 for any other error, reported on one line (what failed, the path,
why). Locks are taken on FILE.lock, the guard file the txfile library uses.";

/// Locked, atomic, durable edits of a file from the shell.
#[derive(Debug, Parser)]
#[command(name = "txfile", version, after_help = AFTER_HELP)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Replace FILE with the output of CMD, which reads the current contents on stdin.
    ///
    /// The safe read-modify-write: under FILE's lock, CMD runs with the
    /// current contents on its standard input (nothing when FILE does not
    /// exist); its standard output becomes the new contents, committed only
    /// if CMD exits with status 0. CMD's standard error passes through. When
    /// FILE does not exist and CMD prints nothing, FILE is left missing
    /// unless --create is given. On SIGINT, SIGTERM or SIGHUP, CMD is killed
    /// and nothing changes. `--` before CMD is optional.
    #[command(after_help = "\
Examples:
  txfile edit /etc/hosts sed 's/^10\\.0\\.0\\.5 /10.0.0.6 /'
  txfile edit state.json -- jq '.n += 1'")]
    Edit {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        locking: Locking,
        #[command(flatten)]
        writing: Writing,
        /// When FILE does not exist and CMD prints nothing, create FILE
        /// empty. By default it is left missing.
        #[arg(long)]
        create: bool,
        #[command(flatten)]
        cmd: Cmd,
    },
    /// Replace FILE with standard input (a safe `sponge`), refusing empty input.
    ///
    /// The lock is taken first and held while standard input is read; the new
    /// contents are committed at end of input. Empty input is refused (exit
    /// 1, FILE unchanged) unless --allow-empty is given: it is what a failed
    /// command before the pipe leaves. On SIGINT, SIGTERM or SIGHUP nothing
    /// changes.
    ///
    /// Not for read-modify-write: in `cmd FILE | txfile write FILE`, cmd reads
    /// FILE before the lock is taken, so another writer's change made
    /// meanwhile is lost, and txfile cannot see whether cmd failed. Use
    /// `txfile edit FILE -- cmd` for that.
    #[command(after_help = "\
Examples:
  generate-config | txfile write app.conf
  txfile edit settings -- sed '/^#/d'   (not: sed '/^#/d' settings | txfile write settings)")]
    Write {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        locking: Locking,
        #[command(flatten)]
        writing: Writing,
        /// Accept empty input, making FILE empty.
        #[arg(long)]
        allow_empty: bool,
    },
    /// Print the current contents of FILE.
    ///
    /// Takes no lock and creates nothing: commits replace FILE by a rename,
    /// so what is printed is always one complete committed version.
    #[command(after_help = "\
Example:
  txfile cat state.json | jq .version")]
    Cat {
        #[command(flatten)]
        target: Target,
    },
    /// Run CMD while holding FILE's lock, like flock(1) on FILE.lock.
    ///
    /// Exits with CMD's status (127 when CMD is not found, 126 when it cannot
    /// be executed). On SIGINT, SIGTERM or SIGHUP, CMD is killed before the
    /// lock is released, so it never runs unlocked. Options go before CMD;
    /// everything from CMD on is CMD's. `--` before CMD is optional.
    #[command(after_help = "\
Examples:
  txfile lock state.json ./bump.sh
  txfile lock --timeout 30 app.db -- ./migrate.sh --verbose")]
    Lock {
        #[command(flatten)]
        target: Target,
        #[command(flatten)]
        locking: Locking,
        #[command(flatten)]
        cmd: Cmd,
    },
    /// Print a shell completion script.
    #[command(after_help = "\
Example:
  txfile completions bash > ~/.local/share/bash-completion/completions/txfile")]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub(crate) struct Target {
    /// The file to work on; its directory must exist.
    #[arg(value_name = "FILE")]
    pub(crate) file: Utf8PathBuf,
    /// What to do when FILE is a symbolic link.
    #[arg(long, value_enum, value_name = "POLICY", default_value_t = SymlinksArg::Follow)]
    pub(crate) symlinks: SymlinksArg,
}

#[derive(Debug, Args)]
pub(crate) struct Locking {
    /// Give up (exit 75) when the lock is not acquired within SECONDS.
    /// By default wait as long as it takes.
    #[arg(long, value_name = "SECONDS", value_parser = parse_seconds, conflicts_with = "no_wait")]
    pub(crate) timeout: Option<Duration>,
    /// Give up (exit 75) at once when the lock is held.
    #[arg(long)]
    pub(crate) no_wait: bool,
    /// Which OS lock to take on FILE.lock where only one kind can be taken
    /// (NFS, BSDs, macOS). On local Linux filesystems both are taken, so
    /// flock(1) and lockf(3) users are excluded either way.
    #[arg(long, value_enum, value_name = "STYLE", default_value_t = LockStyleArg::Flock)]
    pub(crate) lock_style: LockStyleArg,
}

#[derive(Debug, Args)]
pub(crate) struct Writing {
    /// Skip the fsyncs: the change stays atomic but may be lost on power failure.
    #[arg(long)]
    pub(crate) no_sync: bool,
    /// Permission bits (octal) if FILE is created, before the umask; an
    /// existing FILE keeps its own. By default 666.
    #[cfg(unix)]
    #[arg(long, value_name = "OCTAL", value_parser = parse_mode)]
    pub(crate) mode: Option<u32>,
}

#[derive(Debug, Args)]
pub(crate) struct Cmd {
    /// The command to run, and its arguments (everything after FILE, or
    /// after `--`).
    #[arg(value_name = "CMD", required = true, num_args = 1.., trailing_var_arg = true)]
    pub(crate) argv: Vec<OsString>,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum SymlinksArg {
    /// Update the file the link points to; the link stays.
    Follow,
    /// Replace the link itself with a regular file.
    Replace,
    /// Refuse to work on a link.
    Reject,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub(crate) enum LockStyleArg {
    /// flock(2), as flock(1) takes it.
    Flock,
    /// POSIX record locks (fcntl), as lockf(3) takes them.
    Posix,
}

impl Target {
    pub(crate) fn symlinks(&self) -> Symlinks {
        match self.symlinks {
            SymlinksArg::Follow => Symlinks::Follow,
            SymlinksArg::Replace => Symlinks::Replace,
            SymlinksArg::Reject => Symlinks::Reject,
        }
    }
}

/// The library options for these arguments; `writing` is absent for
/// commands that never commit.
pub(crate) fn options(target: &Target, locking: &Locking, writing: Option<&Writing>) -> Options {
    let mut options =
        Options::new()
            .symlinks(target.symlinks())
            .lock_style(match locking.lock_style {
                LockStyleArg::Flock => LockStyle::Flock,
                LockStyleArg::Posix => LockStyle::Posix,
            });
    if let Some(timeout) = locking.timeout {
        options = options.timeout(timeout);
    }
    if let Some(writing) = writing {
        if writing.no_sync {
            options = options.durability(Durability::None);
        }
        #[cfg(unix)]
        if let Some(mode) = writing.mode {
            options = options.mode(mode);
        }
    }
    options
}

fn parse_seconds(text: &str) -> Result<Duration, String> {
    let seconds: f64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of seconds"))?;
    Duration::try_from_secs_f64(seconds).map_err(|_| format!("`{text}` is not a usable timeout"))
}

#[cfg(unix)]
fn parse_mode(text: &str) -> Result<u32, String> {
    let digits = text.strip_prefix("0o").unwrap_or(text);
    match u32::from_str_radix(digits, 8) {
        Ok(mode) if mode <= 0o7777 => Ok(mode),
        _ => Err(format!("`{text}` is not an octal mode between 0 and 7777")),
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn timeouts_parse() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_seconds("-1").is_err());
        assert!(parse_seconds("soon").is_err());
    }

    #[cfg(unix)]
    #[test]
    fn modes_parse() {
        assert_eq!(parse_mode("640"), Ok(0o640));
        assert_eq!(parse_mode("0o4755"), Ok(0o4755));
        assert!(parse_mode("888").is_err());
        assert!(parse_mode("17777").is_err());
    }
}
