//! Streaming a pipe into a transaction without missing a signal.
//!
//! A blocking `read` on a pipe is restarted after a signal handler runs, so
//! the main thread never reads pipes itself: a helper thread does, and hands
//! over chunks through a short queue. The main thread writes them into the
//! transaction and looks at the signal flag whenever a chunk arrives or
//! [`POLL`] passes. The queue holds at most [`QUEUED`] chunks, so memory stays
//! constant whatever the size of the stream.

use std::io::{self, Read, Write};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;

use crate::child::POLL;
use crate::exit::Exit;
use crate::signals;

const CHUNK: usize = 64 * 1024;
const QUEUED: usize = 4;

/// Copies everything `source` yields into `tx` (the transaction's writer)
/// and returns how many bytes that was. `source_name` names the stream in a
/// read error ("standard input", "output of `sort`").
///
/// On error or signal the helper thread may still be blocked reading; it
/// ends when its pipe closes or the process exits.
pub(crate) fn copy(
    source: impl Read + Send + 'static,
    source_name: &str,
    tx: &mut impl Write,
) -> Result<u64, Exit> {
    let (sender, chunks) = mpsc::sync_channel(QUEUED);
    thread::spawn(move || read_chunks(source, &sender));
    let mut copied = 0;
    loop {
        signals::check()?;
        match chunks.recv_timeout(POLL) {
            Ok(Ok(chunk)) => {
                tx.write_all(&chunk).map_err(transaction_error)?;
                copied += chunk.len() as u64;
            }
            Ok(Err(e)) => return Err(Exit::io(format_args!("failed to read {source_name}"), e)),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return Ok(copied),
        }
    }
}

/// Sends `source` in chunks until end of input (by hanging up), a read
/// error (sent), or the receiver is gone.
fn read_chunks(mut source: impl Read, sender: &mpsc::SyncSender<io::Result<Vec<u8>>>) {
    loop {
        let mut chunk = vec![0; CHUNK];
        match source.read(&mut chunk) {
            Ok(0) => return,
            Ok(n) => {
                chunk.truncate(n);
                if sender.send(Ok(chunk)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = sender.send(Err(e));
                return;
            }
        }
    }
}

/// A transaction's `Write` wraps its [`txfile::Error`] in an `io::Error`;
/// unwrap it so the message names the operation and path as usual.
fn transaction_error(err: io::Error) -> Exit {
    if err
        .get_ref()
        .is_some_and(|inner| inner.is::<txfile::Error>())
    {
        let inner = err.into_inner().expect("checked above");
        let err = inner.downcast::<txfile::Error>().expect("checked above");
        return Exit::from(*err);
    }
    Exit::io("failed to write the new contents", err)
}
