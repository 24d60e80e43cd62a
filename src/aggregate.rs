//! Map-side aggregation for the built-in reducers: when the combiner is
//! `@count`, `@sum`, `@min` or `@max`, a map task keeps one running result
//! per key in a hash table instead of buffering and sorting every record,
//! and writes `key<SEP>partial` records when the table fills the sort buffer
//! and at the end. A word count's map output shrinks from one record per
//! word to one per distinct word before anything is sorted.
//!
//! The reducer then merges partial results: `@count` partials are summed
//! (see [`crate::builtin::Builtin::merge_form`]).

use crate::builtin::{Acc, Builtin};
use crate::record::{KeySpec, key_prefix};
use crate::sort::SortBuffer;
use hashbrown::HashTable;
use std::io;
use twox_hash::XxHash3_64;

/// Per-entry bookkeeping of the table, counted against the sort buffer.
const ENTRY_OVERHEAD: usize = 64;

/// One key's partial result. The key's bytes live in the arena; its first
/// eight bytes and length are kept here, so that keys of up to eight bytes
/// (most words, ids, small numbers) are found and compared without reading
/// the arena or calling memcmp — profiles of `-r @count` showed both.
struct Entry {
    hash: u64,
    prefix: u64,
    start: u32,
    len: u32,
    acc: Acc,
}

/// The hash of a key: a multiply-xorshift of the zero-padded prefix and the
/// length for keys of up to eight bytes, XXH3 for longer ones.
#[inline]
fn hash_key(key: &[u8], prefix: u64) -> u64 {
    if key.len() <= 8 {
        let x = (prefix ^ key.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        x ^ (x >> 29)
    } else {
        XxHash3_64::oneshot(key)
    }
}

/// Partial results of one built-in, per key.
pub struct Aggregator {
    builtin: Builtin,
    key: KeySpec,
    table: HashTable<Entry>,
    arena: Vec<u8>,
    bytes: usize,
    line: Vec<u8>,
}

impl Aggregator {
    /// An empty table for `builtin`, which must have a merge form.
    pub fn new(builtin: Builtin, key: KeySpec) -> Aggregator {
        debug_assert!(builtin.merge_form().is_some());
        Aggregator {
            builtin,
            key,
            table: HashTable::new(),
            arena: Vec::new(),
            bytes: 0,
            line: Vec::new(),
        }
    }

    /// Adds one record (without its `\n`).
    #[inline]
    pub fn push(&mut self, line: &[u8]) -> io::Result<()> {
        let f = self.key.fields(line);
        let (key, value) = (&line[..f.key_end], &line[f.value_start..]);
        let prefix = key_prefix(key);
        let hash = hash_key(key, prefix);
        let arena = &self.arena;
        let same = |e: &Entry| {
            e.prefix == prefix
                && e.len as usize == key.len()
                && (key.len() <= 8
                    || arena[e.start as usize + 8..(e.start + e.len) as usize] == key[8..])
        };
        if let Some(e) = self.table.find_mut(hash, same) {
            return e.acc.add(self.builtin, key, value);
        }
        let mut acc = Acc::new(self.builtin);
        acc.add(self.builtin, key, value)?;
        let start = u32::try_from(self.arena.len()).expect("aggregate keys over 4 GiB");
        self.arena.extend_from_slice(key);
        self.bytes += key.len() + ENTRY_OVERHEAD;
        let entry = Entry {
            hash,
            prefix,
            start,
            len: key.len() as u32,
            acc,
        };
        self.table.insert_unique(hash, entry, |e| e.hash);
        Ok(())
    }

    /// Memory the table takes, roughly.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// Moves every partial result into `buffer` as a `key<SEP>partial`
    /// record and empties the table; returns how many.
    pub fn drain_into(&mut self, buffer: &mut SortBuffer) -> u64 {
        let n = self.table.len() as u64;
        for e in self.table.drain() {
            self.line.clear();
            let key = &self.arena[e.start as usize..(e.start + e.len) as usize];
            e.acc.write_line(key, self.key.separator, &mut self.line);
            buffer.push(&self.line[..self.line.len() - 1]);
        }
        self.arena.clear();
        self.bytes = 0;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_counts_merge_to_the_count() {
        let spec = KeySpec::default();
        let mut agg = Aggregator::new(Builtin::Count, spec);
        for w in ["b", "a", "b", "c", "b", "a"] {
            agg.push(w.as_bytes()).unwrap();
        }
        let mut buf = SortBuffer::new(spec, 1);
        assert_eq!(agg.drain_into(&mut buf), 3);
        buf.sort();
        let mut out = Vec::new();
        buf.write_runs(&mut out, 0).unwrap();
        assert_eq!(out, b"a\t2\nb\t3\nc\t1\n");
        assert_eq!(agg.bytes(), 0);
    }

    #[test]
    fn long_and_short_keys_with_equal_prefixes_stay_apart() {
        let spec = KeySpec::default();
        let mut agg = Aggregator::new(Builtin::Sum, spec);
        let keys: [&[u8]; 6] = [
            b"abcdefgh",
            b"abcdefghX",
            b"abcdefghY",
            b"abc",
            b"abc\x00",
            b"",
        ];
        for (i, k) in keys.iter().enumerate() {
            for _ in 0..=i {
                agg.push(&[*k, b"\t1"].concat()).unwrap();
            }
        }
        let mut buf = SortBuffer::new(spec, 1);
        assert_eq!(agg.drain_into(&mut buf), 6);
        buf.sort();
        let mut out = Vec::new();
        buf.write_runs(&mut out, 0).unwrap();
        assert_eq!(
            out,
            b"\t6\nabc\t4\nabc\x00\t5\nabcdefgh\t1\nabcdefghX\t2\nabcdefghY\t3\n"
        );
    }

    #[test]
    fn bad_values_are_errors() {
        let mut agg = Aggregator::new(Builtin::Sum, KeySpec::default());
        assert!(agg.push(b"k\tx").is_err());
    }
}
