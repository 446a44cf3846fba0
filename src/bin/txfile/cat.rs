//! `txfile cat FILE`: print the current contents.
//!
//! This streams from one descriptor rather than calling `TxFile::read`,
//! which would hold the whole file in memory. It takes no lock and creates
//! nothing, so a reader who may not write the directory (a file in `/etc`)
//! can use it: every committed version replaces the file whole by a rename,
//! so one open descriptor always reads one complete version.

use std::fs::File;
use std::io::{self, Read, Write};

use crate::args::{SymlinksArg, Target};
use crate::exit::{Exit, Outcome};

pub(crate) fn run(target: &Target) -> Outcome {
    let path = &target.file;
    if let SymlinksArg::Reject = target.symlinks {
        let meta = path
            .symlink_metadata()
            .map_err(|e| Exit::io(format_args!("failed to stat `{path}`"), e))?;
        if meta.file_type().is_symlink() {
            return Err(Exit::from(txfile::Error::Symlink { path: path.clone() }));
        }
    }
    // `Follow` and `Replace` both read through a link.
    let mut file =
        File::open(path).map_err(|e| Exit::io(format_args!("failed to open `{path}`"), e))?;
    let mut stdout = io::stdout().lock();
    let mut chunk = vec![0; 64 * 1024];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Exit::io(format_args!("failed to read `{path}`"), e)),
        };
        stdout.write_all(&chunk[..n]).map_err(write_error)?;
    }
    stdout.flush().map_err(write_error)
}

/// A reader that went away (`txfile cat big | head`) is not an error worth a
/// message; exit as if killed by SIGPIPE, as cat(1) would.
fn write_error(err: io::Error) -> Exit {
    if err.kind() == io::ErrorKind::BrokenPipe {
        Exit {
            code: 128 + 13,
            message: None,
        }
    } else {
        Exit::io("failed to write standard output", err)
    }
}
