//! `journal_decode`: the decoder of a batch commit's intent journal
//! (`txfile::sim::decode_journal` for one entry,
//! `txfile::sim::journal_decision` for a whole journal file), on raw bytes,
//! on damaged encodings and on journal files built from entries.
//!
//! Recovery rolls a batch forward exactly when the last entry of its
//! journal that decodes is a commit entry, so the decoder must accept
//! nothing but a complete entry as it was written. Each input is used three
//! times:
//!
//! 1. as raw journal bytes: decoding never panics, and whatever decodes is
//!    well formed (1 to 4096 records, every field within its limits) and
//!    is exactly the encoding of what it decoded to (one journal, one byte
//!    string: nothing a torn write could add or lose still decodes to it);
//! 2. as a description of records, encoded as a batch commit encodes them,
//!    then damaged: the undamaged encoding of valid records decodes to
//!    exactly those records (invalid ones are rejected), and every damage
//!    the checksums are sure to catch (a truncation anywhere, bytes
//!    appended, one flipped bit, one changed byte, a burst of up to 32
//!    changed bits inside the body or inside the final checksum) is
//!    rejected. Other damage (garbage written over a range, a zeroed tail,
//!    as a torn sector may leave) is caught only with high probability, so
//!    for it the check is the one of (1);
//! 3. as a journal file: a sequence of pieces (commit entries, void
//!    entries, torn ones, garbage) placed one after another at block
//!    boundaries, with gaps, as commits and recoveries add them: the
//!    decision is the last intact entry's (and "torn" without one), unless
//!    a piece that is not an intact entry holds the magic at a block
//!    boundary inside it, where the decoder rightly looks for an entry.

use arbitrary::{Arbitrary, Unstructured};
use txfile::sim::{
    JOURNAL_BLOCK, decode_journal, encode_journal, encode_journal_void, journal_decision,
};

/// `(directory, target, staged file)`, as `txfile::sim` gives them.
pub type Record = (String, String, String);

/// The decoder's limits, as the crate documents them.
const MAX_RECORDS: usize = 4096;
const MAX_DIR: usize = 4096;
const MAX_NAME: usize = 255;

/// Records per structured case: enough for several members, few enough to
/// keep each execution fast.
const MAX_CASE_RECORDS: usize = 6;
/// Free text per field, before padding.
const MAX_TEXT: usize = 48;
/// Padding per field: past both limits, never past what a u16 length holds.
const MAX_PAD: u16 = 4200;

/// One field: fuzzer text (cut to `MAX_TEXT` bytes) and `pad` bytes of
/// `x`, to reach the length limits cheaply.
#[derive(Arbitrary, Clone, Debug)]
pub struct Field {
    pub text: String,
    pub pad: u16,
    /// Start with `/` (an absolute directory; in a name, an invalid one).
    pub slash: bool,
}

impl Field {
    fn build(&self) -> String {
        let mut cut = self.text.len().min(MAX_TEXT);
        while !self.text.is_char_boundary(cut) {
            cut -= 1;
        }
        let mut out = String::new();
        if self.slash {
            out.push('/');
        }
        out.push_str(&self.text[..cut]);
        out.extend(std::iter::repeat_n('x', usize::from(self.pad % MAX_PAD)));
        out
    }
}

/// A record built from fields; `common` picks the usual shapes (a short
/// absolute directory, a target and its temporary file's name) so that
/// most cases are valid journals.
#[derive(Arbitrary, Clone, Debug)]
pub enum RecordSpec {
    Common {
        dir: u8,
        target: u8,
        random: u32,
    },
    Fields {
        dir: Field,
        target: Field,
        staged: Field,
    },
}

impl RecordSpec {
    fn build(&self) -> Record {
        match self {
            RecordSpec::Common {
                dir,
                target,
                random,
            } => {
                let dirs = ["/", "/d", "/e/f", "/srv/data é", "."];
                let targets = ["a", "a.b", "index", "data ü", ".hidden", "..."];
                let dir = dirs[usize::from(*dir) % dirs.len()].to_owned();
                let target = targets[usize::from(*target) % targets.len()].to_owned();
                let staged = format!(".{target}.{random:08X}.txtmp");
                (dir, target, staged)
            }
            RecordSpec::Fields {
                dir,
                target,
                staged,
            } => (dir.build(), target.build(), staged.build()),
        }
    }
}

/// What happens to the encoding.
#[derive(Arbitrary, Clone, Debug)]
pub enum Damage {
    /// None: it must decode to the records (if they are valid).
    Intact,
    /// Cut to `at` bytes (modulo the length): a torn append.
    Truncate { at: u32 },
    /// Bytes after the end (one at least): a journal voided by a failed
    /// fsync, or a longer old file under the same name.
    Append { bytes: Vec<u8> },
    /// One bit flipped.
    FlipBit { at: u32, bit: u8 },
    /// One byte replaced by another value.
    ReplaceByte { at: u32, value: u8 },
    /// Up to four consecutive bytes XORed with `mask` (its first byte made
    /// nonzero), inside the body or inside the final checksum.
    Burst {
        at: u32,
        len: u8,
        mask: [u8; 4],
        in_checksum: bool,
    },
    /// Garbage written over `len` bytes from `at` (not necessarily caught).
    Overwrite { at: u32, bytes: Vec<u8> },
    /// Zeros from `at` to the end, the length kept (not necessarily
    /// caught): data that never reached the disk after its size did.
    ZeroTail { at: u32 },
}

/// The structured half of a case.
#[derive(Arbitrary, Clone, Debug)]
pub struct Case {
    pub records: Vec<RecordSpec>,
    pub damage: Damage,
}

/// Whether the decoder must accept `records`: the limits and rules of the
/// journal format.
pub fn valid(records: &[Record]) -> bool {
    let name_ok = |name: &str| {
        (1..=MAX_NAME).contains(&name.len()) && !name.contains('/') && name != "." && name != ".."
    };
    (1..=MAX_RECORDS).contains(&records.len())
        && records.iter().all(|(dir, target, staged)| {
            // An absolute directory, or `.`: the directory the journal is
            // found in (a batch within one directory).
            (dir == "." || ((1..=MAX_DIR).contains(&dir.len()) && dir.starts_with('/')))
                && name_ok(target)
                && name_ok(staged)
        })
}

fn short(bytes: &[u8]) -> String {
    if bytes.len() <= 64 {
        format!("{bytes:02x?}")
    } else {
        format!("{} bytes, starting {:02x?}", bytes.len(), &bytes[..64])
    }
}

/// Part 1: any bytes.
pub fn check_raw(bytes: &[u8]) {
    if let Ok(Some(records)) = journal_decision(bytes) {
        assert!(
            valid(&records),
            "a journal file decided for records that break the format's rules: {records:?} from {}",
            short(bytes)
        );
    }
    let Ok(records) = decode_journal(bytes) else {
        return;
    };
    assert!(
        valid(&records),
        "decoded a journal that breaks the format's rules: {records:?} from {}",
        short(bytes)
    );
    let again = encode_journal(&records);
    assert!(
        again == bytes,
        "decoded {} into {records:?}, whose encoding is another byte string ({}): \
         a journal must decode only from its exact encoding",
        short(bytes),
        short(&again)
    );
}

/// Part 2: records, encoded, then damaged.
pub fn check_case(case: &Case) {
    let records: Vec<Record> = case
        .records
        .iter()
        .take(MAX_CASE_RECORDS)
        .map(RecordSpec::build)
        .collect();
    let encoded = encode_journal(&records);
    let decoded = decode_journal(&encoded);
    if !valid(&records) {
        assert!(
            decoded.is_err(),
            "accepted a journal of invalid records {records:?}: {decoded:?}"
        );
        return;
    }
    assert!(
        decoded.as_ref() == Ok(&records),
        "a valid journal does not round-trip: {records:?} decoded as {decoded:?}"
    );
    let len = encoded.len();
    // The final CRC covers everything before it.
    let body = len - 4;
    let index = |at: u32, n: usize| at as usize % n;
    let (damaged, must_reject) = match &case.damage {
        Damage::Intact => return,
        Damage::Truncate { at } => (encoded[..index(*at, len)].to_vec(), true),
        Damage::Append { bytes } => {
            let mut out = encoded.clone();
            out.extend(bytes.iter().take(16));
            if bytes.is_empty() {
                out.push(0);
            }
            (out, true)
        }
        Damage::FlipBit { at, bit } => {
            let mut out = encoded.clone();
            out[index(*at, len)] ^= 1 << (bit % 8);
            (out, true)
        }
        Damage::ReplaceByte { at, value } => {
            let mut out = encoded.clone();
            let i = index(*at, len);
            out[i] ^= (*value).max(1);
            (out, true)
        }
        Damage::Burst {
            at,
            len: burst,
            mask,
            in_checksum,
        } => {
            let mut out = encoded.clone();
            let (start, end) = if *in_checksum { (body, len) } else { (0, body) };
            let from = start + index(*at, end - start);
            let n = (1 + usize::from(*burst % 4)).min(end - from);
            for (k, byte) in out[from..from + n].iter_mut().enumerate() {
                *byte ^= if k == 0 { mask[0].max(1) } else { mask[k] };
            }
            (out, true)
        }
        Damage::Overwrite { at, bytes } => {
            let mut out = encoded.clone();
            let from = index(*at, len);
            for (byte, new) in out[from..].iter_mut().zip(bytes.iter().take(16)) {
                *byte = *new;
            }
            (out, false)
        }
        Damage::ZeroTail { at } => {
            let mut out = encoded.clone();
            out[index(*at, len)..].fill(0);
            (out, false)
        }
    };
    if damaged == encoded {
        // Garbage that equals what was there is no damage.
        return;
    }
    let result = decode_journal(&damaged);
    if must_reject {
        assert!(
            result.is_err(),
            "damage {:?} to the journal of {records:?} went undetected: {} decoded as {result:?}",
            case.damage,
            short(&damaged)
        );
    } else {
        check_raw(&damaged);
        assert!(
            result.as_ref() != Ok(&records),
            "damaged bytes {} decode to the undamaged records {records:?}",
            short(&damaged)
        );
    }
}

/// One piece of a journal file.
#[derive(Arbitrary, Clone, Debug)]
pub enum Piece {
    /// A commit entry (intact when its records are valid).
    Commit(Vec<RecordSpec>),
    /// A void entry.
    Void,
    /// A commit entry cut to `cut` bytes (modulo its length).
    TornCommit { records: Vec<RecordSpec>, cut: u16 },
    /// A void entry cut to `cut` bytes (modulo its length).
    TornVoid { cut: u8 },
    /// Bytes that are not an entry (unless the fuzzer makes one).
    Garbage(Vec<u8>),
}

/// A journal file: pieces, each after `gap` (modulo 3) empty blocks.
#[derive(Arbitrary, Clone, Debug)]
pub struct JournalFile {
    pub pieces: Vec<(u8, Piece)>,
}

/// What a piece's bytes are, and the decision it makes if it is an intact
/// entry.
fn piece_bytes(piece: &Piece) -> (Vec<u8>, Option<Option<Vec<Record>>>) {
    let records = |specs: &[RecordSpec]| -> Vec<Record> {
        specs
            .iter()
            .take(MAX_CASE_RECORDS)
            .map(RecordSpec::build)
            .collect()
    };
    match piece {
        Piece::Commit(specs) => {
            let records = records(specs);
            let bytes = encode_journal(&records);
            let intact = valid(&records).then_some(Some(records));
            (bytes, intact)
        }
        Piece::Void => (encode_journal_void(), Some(None)),
        Piece::TornCommit {
            records: specs,
            cut,
        } => {
            let bytes = encode_journal(&records(specs));
            let cut = usize::from(*cut) % bytes.len();
            (bytes[..cut].to_vec(), None)
        }
        Piece::TornVoid { cut } => {
            let bytes = encode_journal_void();
            let cut = usize::from(*cut) % bytes.len();
            (bytes[..cut].to_vec(), None)
        }
        Piece::Garbage(bytes) => (
            bytes.iter().copied().take(2 * JOURNAL_BLOCK).collect(),
            None,
        ),
    }
}

/// Part 3: a journal file built from pieces.
pub fn check_file(file: &JournalFile) {
    let mut bytes = Vec::new();
    let mut expected: Option<Option<Vec<Record>>> = None;
    // Whether a piece that is not an intact entry has the magic at a block
    // boundary (its own start included): the decoder may find an entry
    // there, so the decision is not predictable from the pieces alone.
    let mut ambiguous = false;
    for (gap, piece) in file.pieces.iter().take(8) {
        let at = bytes.len().div_ceil(JOURNAL_BLOCK) * JOURNAL_BLOCK
            + usize::from(gap % 3) * JOURNAL_BLOCK;
        let (piece, intact) = piece_bytes(piece);
        if piece.is_empty() {
            continue;
        }
        bytes.resize(at, 0);
        bytes.extend(&piece);
        match intact {
            Some(decision) => expected = Some(decision),
            None => {
                ambiguous |= (0..piece.len())
                    .step_by(JOURNAL_BLOCK)
                    .any(|offset| piece[offset..].starts_with(b"TXFJ"));
            }
        }
    }
    let got = journal_decision(&bytes);
    if ambiguous {
        return;
    }
    match expected {
        Some(decision) => assert!(
            got.as_ref() == Ok(&decision),
            "the journal file {file:?} ({}) decides {got:?}, not its last intact entry's {decision:?}",
            short(&bytes)
        ),
        None => assert!(
            got.is_err(),
            "the journal file {file:?} ({}) has no intact entry, yet decides {got:?}",
            short(&bytes)
        ),
    }
}

/// One fuzz input: the raw bytes, then the same bytes as a structured case
/// and as a journal file.
pub fn check(data: &[u8]) {
    check_raw(data);
    if let Ok(case) = Case::arbitrary_take_rest(Unstructured::new(data)) {
        check_case(&case);
    }
    if let Ok(file) = JournalFile::arbitrary_take_rest(Unstructured::new(data)) {
        check_file(&file);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Record> {
        vec![
            ("/d".into(), "a".into(), ".a.Ab3dEf9Z.txtmp".into()),
            ("/d".into(), "a.b".into(), ".a.b.Qq1Ww2Ee.txtmp".into()),
        ]
    }

    #[test]
    fn a_sample_journal_round_trips() {
        let bytes = encode_journal(&sample());
        check_raw(&bytes);
        assert_eq!(decode_journal(&bytes), Ok(sample()));
    }

    #[test]
    fn the_checks_reject_damage() {
        let bytes = encode_journal(&sample());
        for at in 0..bytes.len() as u32 {
            for damage in [
                Damage::Truncate { at },
                Damage::FlipBit { at, bit: 5 },
                Damage::ReplaceByte { at, value: 0 },
                Damage::ZeroTail { at },
                Damage::Burst {
                    at,
                    len: 3,
                    mask: [0, 1, 2, 3],
                    in_checksum: at % 2 == 0,
                },
            ] {
                check_case(&Case {
                    records: vec![RecordSpec::Common {
                        dir: 1,
                        target: 2,
                        random: at,
                    }],
                    damage,
                });
            }
        }
    }

    #[test]
    fn journal_files_decide_by_their_last_intact_entry() {
        let commit = || {
            Piece::Commit(vec![RecordSpec::Common {
                dir: 1,
                target: 0,
                random: 7,
            }])
        };
        let cases = [
            vec![(0, commit())],
            vec![(0, commit()), (0, Piece::Void)],
            vec![(0, commit()), (1, Piece::TornVoid { cut: 9 })],
            vec![(0, Piece::Garbage(vec![0xA5; 300])), (0, commit())],
            vec![(
                0,
                Piece::TornCommit {
                    records: vec![],
                    cut: 3,
                },
            )],
            vec![
                (2, Piece::Void),
                (0, commit()),
                (1, Piece::Garbage(vec![1; 5000])),
            ],
        ];
        for pieces in cases {
            check_file(&JournalFile { pieces });
        }
    }

    #[test]
    fn invalid_records_are_rejected() {
        assert!(!valid(&[]));
        assert!(!valid(&[("d".into(), "a".into(), "b".into())]));
        assert!(!valid(&[("/d".into(), "..".into(), "b".into())]));
        assert!(!valid(&[("/d".into(), "a".into(), "x".repeat(256))]));
        // `.`, the journal's own directory, is the one relative directory.
        assert!(valid(&[(".".into(), "a".into(), "b".into())]));
        assert!(!valid(&[("..".into(), "a".into(), "b".into())]));
        assert!(!valid(&[("./d".into(), "a".into(), "b".into())]));
        for records in [
            vec![("d".to_string(), "a".to_string(), "b".to_string())],
            vec![("/d".into(), "a/b".into(), "c".into())],
            vec![("/d".into(), "a".into(), String::new())],
            vec![("..".into(), "a".into(), "b".into())],
            vec![("./d".into(), "a".into(), "b".into())],
        ] {
            assert!(decode_journal(&encode_journal(&records)).is_err());
        }
    }
}
