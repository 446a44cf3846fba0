//! The framing both of txfile's on-disk records use: a batch journal's
//! entries (`journal.rs`) and an in-place commit's intent record
//! (`inplace.rs`). Integers are little-endian; a text field is a u16 length
//! and that many bytes of UTF-8; a seal is the CRC-32 of the bytes from a
//! given start up to the seal. Writing appends to a `Vec<u8>`; reading goes
//! through a [`Cursor`] that refuses anything short, too long or not UTF-8
//! with the reason, so that a record torn by a crash is never read past
//! its end.

/// Why bytes are not acted on: torn by a crash, not in txfile's format, or
/// (for a journal) an entry txfile could not have written for this member.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Rejected(pub(crate) &'static str);

/// Appends `text` as a text field. Callers bound `text` to their format's
/// maximum, which is below `u16::MAX`.
pub(crate) fn put_text(out: &mut Vec<u8>, text: &str) {
    out.extend((text.len() as u16).to_le_bytes());
    out.extend(text.as_bytes());
}

/// Appends the seal of `out[start..]`.
pub(crate) fn seal(out: &mut Vec<u8>, start: usize) {
    let crc = crc32fast::hash(&out[start..]);
    out.extend(crc.to_le_bytes());
}

/// Reads fields from the start of `bytes`, in order.
pub(crate) struct Cursor<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    /// How many bytes have been read.
    pub(crate) fn at(&self) -> usize {
        self.at
    }

    /// Whether every byte has been read.
    pub(crate) fn is_done(&self) -> bool {
        self.at == self.bytes.len()
    }

    /// The next `n` bytes.
    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], Rejected> {
        let end = self
            .at
            .checked_add(n)
            .filter(|&end| end <= self.bytes.len())
            .ok_or(Rejected("truncated"))?;
        let out = &self.bytes[self.at..end];
        self.at = end;
        Ok(out)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], Rejected> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self) -> Result<u8, Rejected> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, Rejected> {
        self.array().map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, Rejected> {
        self.array().map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self) -> Result<u64, Rejected> {
        self.array().map(u64::from_le_bytes)
    }

    /// Checks that the next bytes are `magic`.
    pub(crate) fn magic(&mut self, magic: &[u8]) -> Result<(), Rejected> {
        if self.take(magic.len())? != magic {
            return Err(Rejected("bad magic"));
        }
        Ok(())
    }

    /// A text field of 1 to `max` bytes.
    pub(crate) fn text(&mut self, max: usize) -> Result<&'a str, Rejected> {
        let len = usize::from(self.u16()?);
        if len == 0 || len > max {
            return Err(Rejected("bad field length"));
        }
        std::str::from_utf8(self.take(len)?).map_err(|_| Rejected("field is not UTF-8"))
    }

    /// Checks the seal of the bytes from `start` up to here; `mismatch` is
    /// the reason when it does not match.
    pub(crate) fn sealed(&mut self, start: usize, mismatch: &'static str) -> Result<(), Rejected> {
        let crc = crc32fast::hash(&self.bytes[start..self.at]);
        if self.u32()? != crc {
            return Err(Rejected(mismatch));
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Checks that `decode` refuses every truncation of `bytes` and every
    /// single bit flipped in it: what a record's seals must catch.
    pub(crate) fn every_truncation_and_bit_flip_is_refused<T: std::fmt::Debug>(
        bytes: &[u8],
        decode: impl Fn(&[u8]) -> Result<T, Rejected>,
    ) {
        for len in 0..bytes.len() {
            assert!(decode(&bytes[..len]).is_err(), "truncated to {len}");
        }
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut bad = bytes.to_vec();
                bad[i] ^= 1 << bit;
                assert!(decode(&bad).is_err(), "bit {bit} of byte {i}");
            }
        }
    }

    #[test]
    fn fields_round_trip_and_a_seal_catches_any_flip() {
        let mut out = b"MAG".to_vec();
        put_text(&mut out, "name é");
        out.extend(7u64.to_le_bytes());
        seal(&mut out, 0);
        let mut cursor = Cursor::new(&out);
        assert_eq!(cursor.magic(b"MAG"), Ok(()));
        assert_eq!(cursor.text(255), Ok("name é"));
        assert_eq!(cursor.u64(), Ok(7));
        assert_eq!(cursor.sealed(0, "mismatch"), Ok(()));
        assert!(cursor.is_done());
        for i in 0..out.len() {
            let mut bad = out.clone();
            bad[i] ^= 1;
            let mut cursor = Cursor::new(&bad);
            let read = (|| {
                cursor.magic(b"MAG")?;
                cursor.text(255)?;
                cursor.u64()?;
                cursor.sealed(0, "mismatch")
            })();
            assert!(read.is_err(), "byte {i}");
        }
    }

    #[test]
    fn short_empty_long_and_non_utf8_fields_are_refused() {
        assert_eq!(Cursor::new(&[1]).u16(), Err(Rejected("truncated")));
        assert_eq!(
            Cursor::new(&[3, 0, b'a']).text(9),
            Err(Rejected("truncated"))
        );
        assert_eq!(
            Cursor::new(&[0, 0]).text(9),
            Err(Rejected("bad field length"))
        );
        assert_eq!(
            Cursor::new(&[2, 0, b'a', b'b']).text(1),
            Err(Rejected("bad field length"))
        );
        assert_eq!(
            Cursor::new(&[1, 0, 0xFF]).text(9),
            Err(Rejected("field is not UTF-8"))
        );
        assert_eq!(Cursor::new(&[]).magic(b"M"), Err(Rejected("truncated")));
        assert_eq!(Cursor::new(b"N").magic(b"M"), Err(Rejected("bad magic")));
    }
}
