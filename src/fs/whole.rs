//! Whole reads and writes through the seam's file handles, for every
//! module that reads or writes a file (transactions, the batch journal).

use std::io;

use super::WriteFile;

/// How much more `read_all` asks for when a file grew past its `fstat` size.
const CHUNK: usize = 64 * 1024;

/// Writes all of `data` (a `write` may take less than asked).
pub(crate) fn write_all(file: &mut dyn WriteFile, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        match file.write(data) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Reads to the end, straight into `out`. Asking for one byte more than
/// `size` (from `fstat`) and getting less means the end: a short read of a
/// regular file happens only there. So the usual file takes one `pread`; a
/// file that grew meanwhile is read on in chunks.
pub(crate) fn read_all(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    out: &mut Vec<u8>,
    size: u64,
) -> io::Result<()> {
    loop {
        let start = out.len();
        let left = usize::try_from(size.saturating_sub(start as u64)).unwrap_or(usize::MAX);
        let want = if left > 0 {
            left.saturating_add(1)
        } else {
            CHUNK
        };
        out.resize(start + want, 0);
        match read_at(&mut out[start..], start as u64) {
            Ok(n) => {
                out.truncate(start + n);
                if n < want {
                    return Ok(());
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => out.truncate(start),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
}

/// Fills `buf` from `offset` with a `pread`-like function.
pub(crate) fn read_exact_at(
    read_at: impl Fn(&mut [u8], u64) -> io::Result<usize>,
    mut buf: &mut [u8],
    mut offset: u64,
) -> io::Result<()> {
    while !buf.is_empty() {
        match read_at(buf, offset) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
