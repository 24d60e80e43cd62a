//! The key/value view of a record: one line of bytes, split into key and
//! value by a separator byte (docs/contracts.md §2), and the order records sort in.
//!
//! The key is the text before the `key_fields`-th separator; the value is the
//! rest. A line with fewer separators is all key, with an empty value. The
//! order is key bytewise, then value bytewise, then the whole line — the last
//! step only separates lines such as `a` and `a<TAB>` that have equal key and
//! value but different bytes, so that the order is total and output is
//! reproducible.

use serde::{Deserialize, Serialize};
use std::cmp::Ordering;

/// How a line splits into key and value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct KeySpec {
    /// The separator byte (TAB by default).
    pub(crate) separator: u8,
    /// How many leading fields make the key (1 by default).
    pub(crate) key_fields: u32,
    /// How many leading fields choose the partition, when fewer than the
    /// key's (`--partition-fields`, Hadoop's KeyFieldBasedPartitioner
    /// `-k1,N`): records whose first N fields are equal meet in one
    /// partition, so one reducer sees all of them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) partition_fields: Option<u32>,
    /// The byte that ends a record: `\n`, or NUL with `-z/--null`.
    #[serde(default = "newline", skip_serializing_if = "is_newline")]
    pub(crate) eol: u8,
}

fn newline() -> u8 {
    b'\n'
}

fn is_newline(b: &u8) -> bool {
    *b == b'\n'
}

impl Default for KeySpec {
    fn default() -> Self {
        KeySpec {
            separator: b'\t',
            key_fields: 1,
            partition_fields: None,
            eol: b'\n',
        }
    }
}

/// Where key and value lie inside a line (without its `\n`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Fields {
    /// The key is `line[..key_end]`.
    pub(crate) key_end: usize,
    /// The value is `line[value_start..]`.
    pub(crate) value_start: usize,
}

impl KeySpec {
    /// Finds key and value in `line` (which must not include its `\n`).
    #[inline]
    pub(crate) fn fields(&self, line: &[u8]) -> Fields {
        // Most records are short words: a plain loop beats memchr's SIMD
        // set-up there (it showed in profiles of word counts).
        if self.key_fields == 1 && line.len() <= 32 {
            return match line.iter().position(|&b| b == self.separator) {
                Some(pos) => Fields {
                    key_end: pos,
                    value_start: pos + 1,
                },
                None => Fields {
                    key_end: line.len(),
                    value_start: line.len(),
                },
            };
        }
        let mut seen = 0;
        for pos in memchr::memchr_iter(self.separator, line) {
            seen += 1;
            if seen == self.key_fields {
                return Fields {
                    key_end: pos,
                    value_start: pos + 1,
                };
            }
        }
        Fields {
            key_end: line.len(),
            value_start: line.len(),
        }
    }

    /// The key of `line`.
    #[inline]
    pub(crate) fn key<'a>(&self, line: &'a [u8]) -> &'a [u8] {
        &line[..self.fields(line).key_end]
    }

    /// The bytes that choose the partition of a record whose key is
    /// `key`: the key, or its first `--partition-fields` fields.
    #[inline]
    pub(crate) fn partition_key<'a>(&self, key: &'a [u8]) -> &'a [u8] {
        match self.partition_fields {
            Some(n) if n < self.key_fields => {
                let end = memchr::memchr_iter(self.separator, key)
                    .nth(n as usize - 1)
                    .unwrap_or(key.len());
                &key[..end]
            }
            _ => key,
        }
    }
}

/// Compares two lines whose fields are already known: key, value, line.
#[inline]
pub(crate) fn compare(a: &[u8], fa: Fields, b: &[u8], fb: Fields) -> Ordering {
    cmp_bytes(&a[..fa.key_end], &b[..fb.key_end])
        .then_with(|| cmp_bytes(&a[fa.value_start..], &b[fb.value_start..]))
        .then_with(|| a.cmp(b))
}

/// Bytewise order, like `a.cmp(b)`, without a memcmp call for slices of up
/// to 16 bytes (most keys and values): zero-padded big-endian words, then
/// length, order such slices exactly as bytewise comparison does.
#[inline]
pub(crate) fn cmp_bytes(a: &[u8], b: &[u8]) -> Ordering {
    if a.len() > 16 || b.len() > 16 {
        return a.cmp(b);
    }
    let rest = |s: &[u8]| key_prefix(s.get(8..).unwrap_or_default());
    key_prefix(a)
        .cmp(&key_prefix(b))
        .then_with(|| rest(a).cmp(&rest(b)))
        .then(a.len().cmp(&b.len()))
}

/// The first eight key bytes as a big-endian number, zero-padded: comparing
/// two prefixes orders keys correctly unless the prefixes are equal.
#[inline]
pub(crate) fn key_prefix(key: &[u8]) -> u64 {
    if let Some(word) = key.first_chunk::<8>() {
        return u64::from_be_bytes(*word);
    }
    // Shorter than eight bytes: two loads that overlap (or three bytes),
    // not a loop or a memcpy call; overlapping bytes land on themselves.
    let n = key.len();
    if n >= 4 {
        let first = u32::from_be_bytes(key[..4].try_into().expect("four bytes"));
        let last = u32::from_be_bytes(key[n - 4..].try_into().expect("four bytes"));
        return u64::from(first) << 32 | u64::from(last) << (64 - 8 * n);
    }
    if n == 0 {
        return 0;
    }
    let at = |i: usize| u64::from(key[i]) << (56 - 8 * i);
    at(0) | at(n / 2) | at(n - 1)
}

/// Where the records of `bytes` end: the positions of `eol`, in order.
///
/// Records of a word count are a few bytes long, and a `memchr` call for
/// each (8 ns) was a fifth of all a map task did with a record. This finds
/// the `eol`s of 64 bytes at once and walks their bits (3 ns a record); a
/// block with none hands over to `memchr`, which is faster over long
/// records.
pub(crate) fn record_ends(bytes: &[u8], eol: u8) -> RecordEnds<'_> {
    RecordEnds {
        bytes,
        eol,
        block: 0,
        found: 0,
        next: 0,
    }
}

/// The iterator of [`record_ends`].
pub(crate) struct RecordEnds<'a> {
    bytes: &'a [u8],
    eol: u8,
    /// Where the block of `found` begins.
    block: usize,
    /// One bit per byte of the block (bit `i`: byte `block + i`): the
    /// `eol`s not yet returned.
    found: u64,
    /// Where the next block begins.
    next: usize,
}

/// Bytes of a [`RecordEnds`] block.
const BLOCK: usize = 64;

/// One bit per byte of `block` that is `eol` (bit `i`: byte `i`).
#[inline]
fn eol_bits(block: &[u8; BLOCK], eol: u8) -> u64 {
    #[cfg(target_arch = "x86_64")]
    return eol_bits_sse2(block, eol);
    #[cfg(not(target_arch = "x86_64"))]
    return eol_bits_words(block, eol);
}

/// [`eol_bits`] with SSE2, which every x86-64 has: 16 bytes at a time.
#[cfg(target_arch = "x86_64")]
#[inline]
fn eol_bits_sse2(block: &[u8; BLOCK], eol: u8) -> u64 {
    use std::arch::x86_64::{_mm_cmpeq_epi8, _mm_movemask_epi8, _mm_set_epi64x, _mm_set1_epi8};
    let word = |b: &[u8]| i64::from_le_bytes(b.try_into().expect("eight bytes"));
    let mut bits = 0;
    // SAFETY: SSE2 is part of x86-64 itself, and these take no pointer.
    unsafe {
        let pattern = _mm_set1_epi8(eol as i8);
        for (i, lane) in block.chunks_exact(16).enumerate() {
            let v = _mm_set_epi64x(word(&lane[8..]), word(&lane[..8]));
            let found = _mm_movemask_epi8(_mm_cmpeq_epi8(v, pattern)) as u16;
            bits |= u64::from(found) << (16 * i);
        }
    }
    bits
}

/// [`eol_bits`] on any machine: eight bytes to a word.
#[cfg_attr(all(target_arch = "x86_64", not(test)), allow(dead_code))]
#[inline]
fn eol_bits_words(block: &[u8; BLOCK], eol: u8) -> u64 {
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let pattern = 0x0101_0101_0101_0101 * u64::from(eol);
    let mut bits = 0;
    for (i, word) in block.chunks_exact(8).enumerate() {
        let v = u64::from_le_bytes(word.try_into().expect("eight bytes")) ^ pattern;
        // The high bit of each byte that is zero, with no carry from one
        // byte into the next (unlike the shorter `(v - 0x01..) & !v`).
        let zero = !(((v & LOW7) + LOW7) | v | LOW7);
        // Gathers the eight high bits into one byte: each lands on its
        // own bit of the top byte, and no two products overlap.
        let byte = (zero >> 7).wrapping_mul(0x0102_0408_1020_4080) >> 56;
        bits |= byte << (8 * i);
    }
    bits
}

impl Iterator for RecordEnds<'_> {
    type Item = usize;

    #[inline]
    fn next(&mut self) -> Option<usize> {
        while self.found == 0 {
            let rest = self.bytes.get(self.next..).filter(|r| !r.is_empty())?;
            self.block = self.next;
            match rest.first_chunk::<BLOCK>() {
                Some(block) => {
                    self.found = eol_bits(block, self.eol);
                    self.next += BLOCK;
                    if self.found == 0 {
                        // A long record: skip to its end.
                        let at = memchr::memchr(self.eol, &rest[BLOCK..])?;
                        self.next += at;
                    }
                }
                None => {
                    // The last bytes, padded with a byte that is not `eol`.
                    let mut block = [!self.eol; BLOCK];
                    block[..rest.len()].copy_from_slice(rest);
                    self.found = eol_bits(&block, self.eol);
                    self.next = self.bytes.len();
                }
            }
        }
        let at = self.block + self.found.trailing_zeros() as usize;
        self.found &= self.found - 1;
        Some(at)
    }
}

/// Cuts a stream of chunks into records: a record may span chunks.
#[derive(Debug)]
pub(crate) struct LineSplitter {
    partial: Vec<u8>,
    /// The longest record taken: a longer one is an error, not memory
    /// without bound (usize::MAX: no limit).
    max: usize,
    /// Where the bytes fed so far began in their file, when they are an
    /// input file's (then a record too long is placed in it).
    base: Option<u64>,
    /// Bytes fed so far, and where the record in `partial` began.
    fed: u64,
    partial_at: u64,
    /// The byte that ends a record.
    eol: u8,
}

impl Default for LineSplitter {
    fn default() -> LineSplitter {
        LineSplitter::with_max(usize::MAX)
    }
}

/// A record longer than the job's `--max-record`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TooLong {
    /// The limit.
    pub(crate) max: u64,
    /// Where the record begins in the input file, when that is known (the
    /// `cat` mapper's input).
    pub(crate) at: Option<u64>,
}

impl std::fmt::Display for TooLong {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let at = self
            .at
            .map_or_else(String::new, |at| format!(" (the line at byte {at})"));
        write!(
            f,
            "a record{at} is longer than --max-record ({} bytes): gmr holds a record whole in memory; raise --max-record, or end the records with newlines",
            self.max
        )
    }
}

impl From<TooLong> for std::io::Error {
    /// Retrying cannot mend it: the job stops.
    fn from(e: TooLong) -> std::io::Error {
        std::io::Error::other(crate::error::Unrecoverable(e.to_string()))
    }
}

impl LineSplitter {
    /// A splitter that refuses records longer than `max` bytes.
    pub(crate) fn with_max(max: usize) -> LineSplitter {
        LineSplitter {
            partial: Vec::new(),
            max,
            base: None,
            fed: 0,
            partial_at: 0,
            eol: b'\n',
        }
    }

    /// The same splitter, for records that end in `eol` (NUL with `-z`).
    pub(crate) fn ending(self, eol: u8) -> LineSplitter {
        LineSplitter { eol, ..self }
    }

    /// A splitter of an input file's bytes from byte `start` on, which
    /// refuses records longer than `max` bytes naming where they begin.
    pub(crate) fn for_input(max: usize, start: u64) -> LineSplitter {
        LineSplitter {
            base: Some(start),
            ..LineSplitter::with_max(max)
        }
    }

    /// Calls `f` with each record completed by `chunk` (without `\n`).
    #[inline]
    pub(crate) fn feed<E: From<TooLong>>(
        &mut self,
        chunk: &[u8],
        mut f: impl FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        self.feed_within(chunk, |bytes, len| f(&bytes[..len]))
    }

    /// [`LineSplitter::feed`], calling `f(bytes, len)`: the record is
    /// `bytes[..len]`, and `bytes` goes on to the end of what was fed, so
    /// that a reader may load a record's first bytes in whole words.
    #[inline]
    pub(crate) fn feed_within<E: From<TooLong>>(
        &mut self,
        chunk: &[u8],
        mut f: impl FnMut(&[u8], usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut rest = chunk;
        // Where `rest` begins in the stream.
        let mut at = self.fed;
        self.fed += chunk.len() as u64;
        if !self.partial.is_empty() {
            let Some(i) = memchr::memchr(self.eol, rest) else {
                return Ok(self.keep(rest, at)?);
            };
            self.keep(&rest[..i], at)?;
            f(&self.partial, self.partial.len())?;
            self.partial.clear();
            rest = &rest[i + 1..];
            at += i as u64 + 1;
        }
        let mut start = 0;
        for end in record_ends(rest, self.eol) {
            let len = end - start;
            if len > self.max {
                return Err(self.too_long(at + start as u64).into());
            }
            f(&rest[start..], len)?;
            start = end + 1;
        }
        Ok(self.keep(&rest[start..], at + start as u64)?)
    }

    /// Keeps the start of a record not ended yet (`bytes`, at stream
    /// offset `at`), unless it is too long.
    fn keep(&mut self, bytes: &[u8], at: u64) -> Result<(), TooLong> {
        if self.partial.is_empty() {
            self.partial_at = at;
        }
        if self.partial.len() + bytes.len() > self.max {
            self.partial = Vec::new();
            return Err(self.too_long(self.partial_at));
        }
        self.partial.extend_from_slice(bytes);
        Ok(())
    }

    /// The error for a record at stream offset `at`.
    fn too_long(&self, at: u64) -> TooLong {
        TooLong {
            max: self.max as u64,
            at: self.base.map(|base| base + at),
        }
    }

    /// Takes the start of a record not ended yet, leaving none.
    pub(crate) fn take_partial(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.partial)
    }

    /// Ends the stream: calls `f` with a last record that had no `\n`.
    pub(crate) fn finish<E>(&mut self, mut f: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        if self.partial.is_empty() {
            return Ok(());
        }
        let last = std::mem::take(&mut self.partial);
        f(&last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_ends_are_memchrs() {
        // Records from empty to a few blocks long, every byte value, at
        // every offset from a block's start, with `\n` and NUL ending them.
        let mut seed = 7u64;
        let mut byte = || {
            seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            (seed >> 56) as u8
        };
        for eol in [b'\n', 0] {
            for density in [2u8, 16, 255] {
                let bytes: Vec<u8> = (0..5000)
                    .map(|_| match byte() {
                        b if b < density => eol,
                        b => b,
                    })
                    .collect();
                for from in 0..70 {
                    for to in [from, from + 1, from + 63, from + 64, from + 65, 5000] {
                        let b = &bytes[from..to.min(5000)];
                        let want: Vec<usize> = memchr::memchr_iter(eol, b).collect();
                        assert_eq!(record_ends(b, eol).collect::<Vec<_>>(), want);
                        if let Some(block) = b.first_chunk::<BLOCK>() {
                            let bits = want.iter().filter(|&&i| i < BLOCK);
                            let bits = bits.fold(0u64, |m, i| m | 1 << i);
                            assert_eq!(eol_bits_words(block, eol), bits);
                            assert_eq!(eol_bits(block, eol), bits);
                        }
                    }
                }
            }
        }
    }

    fn cmp(spec: KeySpec, a: &[u8], b: &[u8]) -> Ordering {
        compare(a, spec.fields(a), b, spec.fields(b))
    }

    #[test]
    fn key_is_before_the_nth_separator() {
        let two = KeySpec {
            separator: b',',
            key_fields: 2,
            ..KeySpec::default()
        };
        assert_eq!(two.key(b"a,b,c"), b"a,b");
        assert_eq!(two.key(b"a,b"), b"a,b");
        assert_eq!(two.partition_key(b"a,b"), b"a,b");
        let first = KeySpec {
            partition_fields: Some(1),
            ..two
        };
        assert_eq!(first.partition_key(first.key(b"roses,are,red")), b"roses");
        assert_eq!(first.partition_key(b"roses"), b"roses");
        assert_eq!(KeySpec::default().key(b"k\tv\tw"), b"k");
        assert_eq!(KeySpec::default().key(b"no-sep"), b"no-sep");
    }

    #[test]
    fn order_is_key_then_value_not_line() {
        let spec = KeySpec::default();
        // Bytewise on whole lines, "a\x01\tz" < "a\tb"; by key, "a" < "a\x01".
        assert_eq!(cmp(spec, b"a\tb", b"a\x01\tz"), Ordering::Less);
        assert_eq!(cmp(spec, b"a\tb", b"a\tc"), Ordering::Less);
        assert_eq!(cmp(spec, b"b\ta", b"a\tz"), Ordering::Greater);
        // Equal key and value, different bytes: still a total order.
        assert_eq!(cmp(spec, b"a", b"a\t"), Ordering::Less);
    }

    #[test]
    fn cmp_bytes_is_bytewise_order() {
        let atoms: [&[u8]; 6] = [b"", b"\x00", b"a", b"\xff", b"abcdefgh", b"z\x00"];
        let mut slices = vec![Vec::new()];
        for _ in 0..3 {
            let longer: Vec<Vec<u8>> = slices
                .iter()
                .flat_map(|s| atoms.iter().map(move |a| [s.as_slice(), a].concat()))
                .collect();
            slices.extend(longer);
        }
        slices.sort();
        slices.dedup();
        for a in &slices {
            for b in &slices {
                assert_eq!(cmp_bytes(a, b), a.cmp(b), "{a:?} vs {b:?}");
            }
        }
    }

    /// Every length up to past eight bytes, every byte at every position:
    /// the prefix is the first eight bytes, zero-padded, big-endian.
    #[test]
    fn prefixes_are_the_first_eight_bytes() {
        for len in 0..=10 {
            for pos in 0..len {
                for byte in [1u8, 0x80, 0xff] {
                    let mut key = vec![0x5a; len];
                    key[pos] = byte;
                    let mut padded = [0u8; 8];
                    let n = len.min(8);
                    padded[..n].copy_from_slice(&key[..n]);
                    assert_eq!(key_prefix(&key), u64::from_be_bytes(padded), "{key:?}");
                }
            }
        }
        assert_eq!(key_prefix(b""), 0);
    }

    #[test]
    fn prefixes_order_like_keys() {
        assert!(key_prefix(b"ab") < key_prefix(b"b"));
        assert!(key_prefix(b"abcdefgh1") == key_prefix(b"abcdefgh2"));
        assert!(key_prefix(b"\xff") > key_prefix(b"zzzz"));
    }

    #[test]
    fn records_span_chunks_and_a_last_line_needs_no_newline() {
        let mut split = LineSplitter::default();
        let mut pieces = Vec::new();
        for chunk in [&b"ab"[..], b"c\nd", b"", b"\n\ne", b"f"] {
            split
                .feed(chunk, |l| -> Result<(), TooLong> {
                    pieces.push(l.to_vec());
                    Ok(())
                })
                .unwrap();
        }
        split
            .finish(|l| -> Result<(), ()> {
                pieces.push(l.to_vec());
                Ok(())
            })
            .unwrap();
        assert_eq!(
            pieces,
            vec![b"abc".to_vec(), b"d".to_vec(), b"".to_vec(), b"ef".to_vec()]
        );
    }

    #[test]
    fn a_record_past_the_limit_is_refused_whether_ended_or_not() {
        let keep = |_: &[u8]| -> Result<(), TooLong> { Ok(()) };
        // Ended within one chunk.
        let mut split = LineSplitter::with_max(3);
        assert!(split.feed(b"abc\nabcd\n", keep).is_err());
        // Begun in one chunk, going on in the next, never ended.
        let mut split = LineSplitter::with_max(3);
        assert!(split.feed(b"ab", keep).is_ok());
        assert_eq!(split.feed(b"cd", keep).unwrap_err().max, 3);
        // In an input from byte 100: placed in it, whether it ended
        // within a chunk or went on past it.
        let mut split = LineSplitter::for_input(3, 100);
        assert_eq!(split.feed(b"ab\nabcd\n", keep).unwrap_err().at, Some(103));
        let mut split = LineSplitter::for_input(3, 100);
        assert!(split.feed(b"ab\nab", keep).is_ok());
        assert_eq!(split.feed(b"cd", keep).unwrap_err().at, Some(103));
        // At the limit: taken.
        let mut split = LineSplitter::with_max(3);
        assert!(split.feed(b"a\nab", keep).is_ok());
        assert!(split.feed(b"c\n", keep).is_ok());
    }
}
