//! Map-side aggregation for the built-in reducers: when the combiner is
//! `@count`, `@sum`, `@min` or `@max`, a map task keeps one running result
//! per key in a hash table instead of buffering and sorting every record,
//! and writes `key<SEP>partial` records when the table fills the sort buffer
//! and at the end. A word count's map output shrinks from one record per
//! word to one per distinct word before anything is sorted.
//!
//! The reducer then merges partial results: `@count` partials are summed
//! (see [`crate::data::builtin::Builtin::merge_form`]).
//!
//! The same table counts identical whole lines for map tasks without a
//! built-in combiner ([`Aggregator::lines`]): each distinct line goes into
//! the sort buffer once, with its number of copies, so that a word count's
//! twelve million `word<TAB>1` records sort as its few hundred thousand
//! distinct ones. Nothing is combined; every copy is written out.

use crate::data::builtin::{Acc, Builtin};
use crate::data::linebuf::prefetch;
use crate::data::record::{KeySpec, key_prefix};
use crate::data::sort::SortBuffer;
use std::io;
use twox_hash::XxHash3_64;

/// Bytes of a key kept in its slot. Keys up to this long (every word of the
/// benchmark corpus, 99.9% of the whitespace-separated tokens of the
/// Gutenberg books in the test data) are found and compared without
/// reading the arena.
const INLINE: usize = 16;

/// Records hashed ahead of their lookup, so that the slots they need are
/// being fetched from memory while earlier ones are probed.
const BATCH: usize = 16;

/// log2 of the slots of a new table.
const FIRST_BITS: u32 = 10;

/// Marks an empty slot in [`Slot::len`].
const EMPTY: u32 = u32::MAX;

/// One key and its partial result, half a cache line. The first
/// [`INLINE`] bytes of the key are in the slot (zero-padded), the rest in
/// the arena. `acc` is the count itself for `@count`, else the index of
/// the key's [`Acc`]: a word count touches one cache line per record.
#[derive(Clone, Copy)]
#[repr(C, align(32))]
struct Slot {
    head: [u64; 2],
    len: u32,
    tail: u32,
    acc: u64,
}

const VACANT: Slot = Slot {
    head: [0; 2],
    len: EMPTY,
    tail: 0,
    acc: 0,
};

/// A table of `n` empty slots. One of megabytes is asked to be backed by
/// huge pages before its first touch: its lookups land anywhere in it,
/// and with 4 KiB pages nearly each one missed the TLB, which cost more
/// than the rest of the lookup (most of all in a virtual machine, where
/// a page walk is two).
fn vacant(n: usize) -> Vec<Slot> {
    let mut slots: Vec<Slot> = Vec::with_capacity(n);
    crate::data::linebuf::huge_pages(slots.as_mut_ptr().cast(), n * size_of::<Slot>());
    slots.resize(n, VACANT);
    slots
}

/// A record waiting in the batch: its key's hash and inline bytes, and
/// where its line was copied (when more than the inline bytes are needed).
struct Pending {
    hash: u64,
    head: [u64; 2],
    len: u32,
    line: (u32, u32),
    value_start: u32,
}

/// The first [`INLINE`] bytes of `key`, zero-padded, as two big-endian
/// words.
#[inline]
fn head(key: &[u8]) -> [u64; 2] {
    let second = key.get(8..).map_or(0, key_prefix);
    [key_prefix(key), second]
}

/// [`head`] of the key `bytes[..len]`, from the first [`INLINE`] bytes
/// there are: two loads and masks, with no branch on the key's length
/// (word lengths vary, and such branches mispredicted).
#[inline]
fn head_within(bytes: &[u8; INLINE], len: usize) -> [u64; 2] {
    // The first `k` bytes of a big-endian word, for `k` up to 8.
    let keep = |k: usize| (u128::from(u64::MAX) << (64 - 8 * k)) as u64;
    let (first, second) = bytes.split_at(8);
    let word = |b: &[u8]| u64::from_be_bytes(b.try_into().expect("eight bytes"));
    [
        word(first) & keep(len.min(8)),
        word(second) & keep(len.saturating_sub(8).min(8)),
    ]
}

/// The hash of a key: a folded multiply of its inline bytes and length for
/// short keys, XXH3 for longer ones.
#[inline]
fn hash_key(key: &[u8], head: [u64; 2]) -> u64 {
    #[cfg(test)]
    if tests::COLLIDE.get() {
        return 0;
    }
    if key.len() <= INLINE {
        let a = head[0] ^ 0x243f_6a88_85a3_08d3;
        let b = head[1] ^ (key.len() as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let m = u128::from(a) * u128::from(b ^ 0x1319_8a2e_0370_7344);
        (m as u64) ^ ((m >> 64) as u64)
    } else {
        XxHash3_64::oneshot(key)
    }
}

/// The hash [`Aggregator::lines`] files `line` under.
pub(crate) fn hash_line(line: &[u8]) -> u64 {
    hash_key(line, head(line))
}

/// Partial results of one built-in, per key: an open-addressing table
/// with linear probing, at most half full.
pub(crate) struct Aggregator {
    builtin: Builtin,
    key: KeySpec,
    /// Counts whole lines rather than aggregating values by key.
    lines: bool,
    /// Records taken since the table was last drained.
    records: u64,
    slots: Vec<Slot>,
    /// `64 - log2(slots.len())`: a hash's top bits pick its first slot.
    shift: u32,
    used: usize,
    /// The bytes of keys beyond [`INLINE`].
    arena: Vec<u8>,
    /// Results of built-ins other than `@count`.
    accs: Vec<Acc>,
    /// Memory the results take (kept as they change: summing it on demand
    /// would cost a pass over every key per chunk of mapper output).
    acc_bytes: usize,
    /// What the slots may take; past it the table fills up to 3/4 and then
    /// reports itself full, so that the map task spills it.
    budget: usize,
    full: bool,
    /// Records being gathered; their slots are being fetched.
    filling: Batch,
    /// The batch before, looked up when `filling` is full: a whole batch
    /// after its slots were asked for, so that they have arrived.
    fetched: Batch,
    line: Vec<u8>,
}

/// Records waiting for their lookup.
#[derive(Default)]
struct Batch {
    records: Vec<Pending>,
    /// Bytes of the records whose key or value must be read again.
    lines: Vec<u8>,
}

impl Aggregator {
    /// An empty table for `builtin`, which must have a merge form, whose
    /// slots may take about `budget` bytes.
    pub(crate) fn new(builtin: Builtin, key: KeySpec, budget: usize) -> Aggregator {
        debug_assert!(builtin.merge_form().is_some());
        Aggregator {
            builtin,
            key,
            lines: false,
            records: 0,
            slots: vacant(1 << FIRST_BITS),
            shift: 64 - FIRST_BITS,
            used: 0,
            arena: Vec::new(),
            accs: Vec::new(),
            acc_bytes: 0,
            budget,
            full: false,
            filling: Batch::default(),
            fetched: Batch::default(),
            line: Vec::new(),
        }
    }

    /// An empty table that counts the copies of each distinct line; it
    /// drains them into the sort buffer with [`SortBuffer::push_copies`].
    pub(crate) fn lines(key: KeySpec, budget: usize) -> Aggregator {
        Aggregator {
            lines: true,
            ..Aggregator::new(Builtin::Count, key, budget)
        }
    }

    /// Records taken since the table was last drained.
    pub(crate) fn records(&self) -> u64 {
        self.records
    }

    /// Adds one record (without its `\n`): [`Aggregator::push_within`]
    /// with nothing after it.
    #[cfg(test)]
    pub(crate) fn push(&mut self, line: &[u8]) -> io::Result<()> {
        self.push_within(line, line.len())
    }

    /// Adds the record `bytes[..len]` (without its `\n`); the bytes after
    /// it, when there are any, let its key's first bytes be read in whole
    /// words. Records are taken in batches: an error in a value may be
    /// reported a few records late.
    #[inline]
    pub(crate) fn push_within(&mut self, bytes: &[u8], len: usize) -> io::Result<()> {
        let line = &bytes[..len];
        self.records += 1;
        let f = if self.lines {
            crate::data::record::Fields {
                key_end: line.len(),
                value_start: line.len(),
            }
        } else {
            self.key.fields(line)
        };
        let key = &line[..f.key_end];
        let head = match bytes.first_chunk::<INLINE>() {
            Some(words) => head_within(words, key.len()),
            None => head(key),
        };
        let hash = hash_key(key, head);
        prefetch(&self.slots[(hash >> self.shift) as usize]);
        // The key's tail is read again for long keys, the value for the
        // built-ins other than `@count`.
        let needed = match self.builtin {
            Builtin::Count if key.len() <= INLINE => &line[..0],
            Builtin::Count => key,
            _ => line,
        };
        let batch = &mut self.filling;
        let at = batch.lines.len() as u32;
        // Most records of a word count need nothing copied: not even a
        // call that copies nothing.
        if !needed.is_empty() {
            batch.lines.extend_from_slice(needed);
        }
        let copied = (at, needed.len() as u32);
        batch.records.push(Pending {
            hash,
            head,
            len: key.len() as u32,
            line: copied,
            value_start: f.value_start as u32,
        });
        if batch.records.len() == BATCH {
            let looked_up = self.look_up_fetched();
            std::mem::swap(&mut self.filling, &mut self.fetched);
            return looked_up;
        }
        Ok(())
    }

    /// Looks up the records of the fetched batch.
    fn look_up_fetched(&mut self) -> io::Result<()> {
        let mut batch = std::mem::take(&mut self.fetched);
        let count = self.builtin == Builtin::Count;
        let mut result = Ok(());
        for p in &batch.records {
            // Most records of a word count: a short key found in its first
            // slot, with nothing else to look at.
            if count && p.len as usize <= INLINE {
                let slot = &mut self.slots[(p.hash >> self.shift) as usize];
                if slot.len == p.len && slot.head == p.head {
                    slot.acc += 1;
                    continue;
                }
            }
            if let Err(e) = self.add(p, &batch.lines) {
                result = Err(e);
                break;
            }
        }
        batch.records.clear();
        batch.lines.clear();
        self.fetched = batch;
        result
    }

    /// Looks up every waiting record.
    fn flush(&mut self) -> io::Result<()> {
        self.look_up_fetched()?;
        std::mem::swap(&mut self.filling, &mut self.fetched);
        self.look_up_fetched()
    }

    /// Adds one pending record to its key's slot.
    #[inline]
    fn add(&mut self, p: &Pending, lines: &[u8]) -> io::Result<()> {
        let line = &lines[p.line.0 as usize..][..p.line.1 as usize];
        let key_len = p.len as usize;
        let mask = self.slots.len() - 1;
        let mut i = (p.hash >> self.shift) as usize;
        loop {
            let slot = &self.slots[i];
            if slot.len == EMPTY {
                break;
            }
            if slot.head == p.head
                && slot.len == p.len
                && (key_len <= INLINE
                    || self.arena[slot.tail as usize..][..key_len - INLINE]
                        == line[INLINE..key_len])
            {
                // A count, the common case, is added here: through
                // `accumulate` (not inlined) it cost a call per record.
                if self.builtin == Builtin::Count {
                    self.slots[i].acc += 1;
                    return Ok(());
                }
                return self.accumulate(i, line, p);
            }
            i = (i + 1) & mask;
        }
        // A new key.
        let tail = if key_len > INLINE {
            let at = u32::try_from(self.arena.len()).expect("aggregate keys over 4 GiB");
            self.arena.extend_from_slice(&line[INLINE..key_len]);
            at
        } else {
            0
        };
        let acc = if self.builtin == Builtin::Count {
            0
        } else {
            let acc = Acc::new(self.builtin);
            self.acc_bytes += acc.bytes();
            self.accs.push(acc);
            (self.accs.len() - 1) as u64
        };
        self.slots[i] = Slot {
            head: p.head,
            len: p.len,
            tail,
            acc,
        };
        self.used += 1;
        self.accumulate(i, line, p)?;
        let slots = self.slots.len();
        if self.used * 2 > slots {
            // Within the budget the table stays at most half full. Past it,
            // it fills to 3/4 and reports itself full; it grows anyway
            // before 7/8, when keys keep coming before the task can spill.
            if 2 * slots * size_of::<Slot>() <= self.budget || self.used * 8 > slots * 7 {
                self.grow();
            } else if self.used * 4 > slots * 3 {
                self.full = true;
            }
        }
        Ok(())
    }

    #[inline]
    fn accumulate(&mut self, i: usize, line: &[u8], p: &Pending) -> io::Result<()> {
        let slot = &mut self.slots[i];
        if self.builtin == Builtin::Count {
            slot.acc += 1;
            return Ok(());
        }
        let key = &line[..p.len as usize];
        let value = &line[p.value_start as usize..];
        let acc = &mut self.accs[slot.acc as usize];
        let before = acc.bytes();
        acc.add(self.builtin, key, value)?;
        self.acc_bytes = self.acc_bytes + acc.bytes() - before;
        Ok(())
    }

    /// The key of a slot, into `out`.
    fn key_of(&self, slot: &Slot, out: &mut Vec<u8>) {
        let len = slot.len as usize;
        let mut inline = [0u8; INLINE];
        inline[..8].copy_from_slice(&slot.head[0].to_be_bytes());
        inline[8..].copy_from_slice(&slot.head[1].to_be_bytes());
        out.extend_from_slice(&inline[..len.min(INLINE)]);
        if len > INLINE {
            out.extend_from_slice(&self.arena[slot.tail as usize..][..len - INLINE]);
        }
    }

    /// Doubles the table.
    fn grow(&mut self) {
        let doubled = vacant(self.slots.len() * 2);
        let old = std::mem::replace(&mut self.slots, doubled);
        self.shift -= 1;
        let mask = self.slots.len() - 1;
        let mut key = Vec::new();
        for slot in old.into_iter().filter(|s| s.len != EMPTY) {
            key.clear();
            self.key_of(&slot, &mut key);
            let mut i = (hash_key(&key, slot.head) >> self.shift) as usize;
            while self.slots[i].len != EMPTY {
                i = (i + 1) & mask;
            }
            self.slots[i] = slot;
        }
    }

    /// Memory the table takes, roughly; `usize::MAX` once it is full.
    pub(crate) fn bytes(&self) -> usize {
        if self.full {
            return usize::MAX;
        }
        self.slots.len() * size_of::<Slot>() + self.arena.len() + self.acc_bytes
    }

    /// Moves every partial result into `buffer` as a `key<SEP>partial`
    /// record and empties the table; returns how many. The table shrinks to
    /// its first size, so that memory is again that of the keys it holds.
    pub(crate) fn drain_into(&mut self, buffer: &mut SortBuffer) -> io::Result<u64> {
        self.flush()?;
        let (mut key, mut line) = (Vec::new(), std::mem::take(&mut self.line));
        for slot in self.slots.iter().filter(|s| s.len != EMPTY) {
            key.clear();
            self.key_of(slot, &mut key);
            if self.lines {
                buffer.push_copies(&key, slot.acc);
                continue;
            }
            line.clear();
            match self.builtin {
                Builtin::Count => Acc::Count(slot.acc).write_line(&key, self.key, &mut line),
                _ => self.accs[slot.acc as usize].write_line(&key, self.key, &mut line),
            }
            buffer.push(&line[..line.len() - 1]);
        }
        self.line = line;
        let n = self.used as u64;
        self.records = 0;
        self.slots = vacant(1 << FIRST_BITS);
        self.shift = 64 - FIRST_BITS;
        self.used = 0;
        self.arena.clear();
        self.accs.clear();
        self.acc_bytes = 0;
        self.full = false;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::order::Order;

    thread_local! {
        /// Makes every key hash alike, so that every lookup compares keys.
        pub(crate) static COLLIDE: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// The buffer's records, sorted.
    fn sorted(buf: &mut SortBuffer) -> Vec<Vec<u8>> {
        buf.sort();
        let mut lines = Vec::new();
        buf.for_each(|l| {
            lines.push(l.to_vec());
            Ok(())
        })
        .unwrap();
        lines
    }

    #[test]
    fn keys_that_collide_are_told_apart() {
        COLLIDE.set(true);
        let spec = KeySpec::default();
        let mut agg = Aggregator::new(Builtin::Count, spec, 1 << 20);
        // Keys that differ only in length (trailing zero bytes), around the
        // inline bytes' end, and only in their tails.
        let mut want = Vec::new();
        for base in [
            &b""[..],
            b"abcdefgh",
            b"abcdefghijklmnop",
            b"abcdefghijklmnopqrst",
        ] {
            for zeros in 0..3 {
                let key = [base, &vec![0; zeros]].concat();
                want.push(key.clone());
                want.push([&key[..], b"x"].concat());
            }
        }
        want.sort();
        want.dedup();
        for (i, key) in want.iter().enumerate() {
            for _ in 0..=i {
                agg.push(key).unwrap();
            }
        }
        let mut buf = SortBuffer::new(Order::new(spec), 1);
        assert_eq!(agg.drain_into(&mut buf).unwrap() as usize, want.len());
        let got = sorted(&mut buf);
        COLLIDE.set(false);
        let want: Vec<Vec<u8>> = want
            .iter()
            .enumerate()
            .map(|(i, k)| [&k[..], format!("\t{}", i + 1).as_bytes()].concat())
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn keys_read_in_words_are_the_keys() {
        // Any length, next to any bytes: the words read past the key's end
        // are masked to what `head` gives.
        let bytes: Vec<u8> = (0u8..40).map(|b| b.wrapping_mul(97) | 1).collect();
        for len in 0..=24 {
            for from in 0..8 {
                let within = &bytes[from..];
                let words = within.first_chunk::<INLINE>().unwrap();
                assert_eq!(
                    head_within(words, len),
                    head(&within[..len]),
                    "{len} at {from}"
                );
            }
        }
        // A table fed records with what follows them counts what one fed
        // the records alone counts.
        let text = b"to\tbe\nor\nnot\nto\tbe\nthat is the question\nor\nto\tbe\n";
        let mut within = Aggregator::lines(KeySpec::default(), 1 << 20);
        let mut alone = Aggregator::lines(KeySpec::default(), 1 << 20);
        let mut start = 0;
        for end in crate::data::record::record_ends(text, b'\n') {
            within.push_within(&text[start..], end - start).unwrap();
            alone.push(&text[start..end]).unwrap();
            start = end + 1;
        }
        let order = Order::new(KeySpec::default());
        let (mut a, mut b) = (SortBuffer::new(order.clone(), 1), SortBuffer::new(order, 1));
        within.drain_into(&mut a).unwrap();
        alone.drain_into(&mut b).unwrap();
        assert_eq!(sorted(&mut a), sorted(&mut b));
        assert_eq!(sorted(&mut a).len(), 7);
    }

    #[test]
    fn partial_counts_merge_to_the_count() {
        let spec = KeySpec::default();
        let mut agg = Aggregator::new(Builtin::Count, spec, 1 << 20);
        for w in ["b", "a", "b", "c", "b", "a"] {
            agg.push(w.as_bytes()).unwrap();
        }
        let mut buf = SortBuffer::new(Order::new(spec), 1);
        assert_eq!(agg.drain_into(&mut buf).unwrap(), 3);
        buf.sort();
        let mut out = Vec::new();
        buf.write_runs(&mut out, 0).unwrap();
        assert_eq!(out, b"a\t2\nb\t3\nc\t1\n");
        assert_eq!(agg.drain_into(&mut buf).unwrap(), 0, "drained");
        assert_eq!(
            agg.bytes(),
            Aggregator::new(Builtin::Count, spec, 1 << 20).bytes()
        );
    }

    /// Counting whole lines keeps apart lines of one key, lines that
    /// differ only past the inline bytes, and empty lines; the buffer gets
    /// every record back.
    #[test]
    fn counted_lines_come_back_whole() {
        let spec = KeySpec::default();
        let lines: [&[u8]; 8] = [
            b"a\t1",
            b"a\t2",
            b"a",
            b"",
            b"abcdefghijklmnop\t1",
            b"abcdefghijklmnop\t2",
            b"abcdefghijklmnopqrstuvwxyz",
            b"abcdefghijklmnopqrstuvwxyZ",
        ];
        let mut agg = Aggregator::lines(spec, 1 << 20);
        let mut want = Vec::new();
        for (i, l) in lines.iter().enumerate() {
            for _ in 0..=i {
                agg.push(l).unwrap();
                want.push(l.to_vec());
            }
        }
        assert_eq!(agg.records(), want.len() as u64);
        let mut buf = SortBuffer::new(Order::new(spec), 2);
        assert_eq!(agg.drain_into(&mut buf).unwrap(), lines.len() as u64);
        assert_eq!(buf.len(), want.len());
        let mut plain = SortBuffer::new(Order::new(spec), 2);
        want.iter().for_each(|l| plain.push(l));
        let (got, expected) = (sorted(&mut buf), sorted(&mut plain));
        assert_eq!(got, expected);
        assert_eq!(agg.records(), 0, "drained");
    }

    #[test]
    fn long_and_short_keys_with_equal_prefixes_stay_apart() {
        let spec = KeySpec::default();
        let mut agg = Aggregator::new(Builtin::Sum, spec, 1 << 20);
        let keys: [&[u8]; 10] = [
            b"abcdefgh",
            b"abcdefghX",
            b"abcdefghY",
            b"abc",
            b"abc\x00",
            b"",
            b"abcdefghijklmnop",
            b"abcdefghijklmnop\x00",
            b"abcdefghijklmnopq",
            b"abcdefghijklmnopr",
        ];
        for (i, k) in keys.iter().enumerate() {
            for _ in 0..=i {
                agg.push(&[*k, b"\t1"].concat()).unwrap();
            }
        }
        let mut buf = SortBuffer::new(Order::new(spec), 1);
        assert_eq!(agg.drain_into(&mut buf).unwrap(), 10);
        buf.sort();
        let mut out = Vec::new();
        buf.write_runs(&mut out, 0).unwrap();
        assert_eq!(
            out,
            b"\t6\nabc\t4\nabc\x00\t5\nabcdefgh\t1\nabcdefghX\t2\nabcdefghY\t3\n\
              abcdefghijklmnop\t7\nabcdefghijklmnop\x00\t8\nabcdefghijklmnopq\t9\nabcdefghijklmnopr\t10\n"
        );
    }

    /// Every built-in over many keys of every length (the table grows
    /// several times), drained twice midway, against a BTreeMap.
    #[test]
    fn many_keys_give_what_a_sorted_map_gives() {
        use std::collections::BTreeMap;
        let spec = KeySpec::default();
        let mut state = 7u64;
        let mut next = move || {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            state >> 33
        };
        let records: Vec<(Vec<u8>, i64)> = (0..60_000)
            .map(|_| {
                let len = (next() % 24) as usize;
                let id = next() % 5000;
                // Shared prefixes and zero bytes: keys that differ late.
                let key = (0..len)
                    .map(|i| match i + 4 < len {
                        true => b'a',
                        false => b"\0\x01\x02abcdefghijklm"[(id >> (i % 4 * 4)) as usize & 15],
                    })
                    .collect();
                (key, next() as i64 % 1000 - 500)
            })
            .collect();
        for builtin in [Builtin::Count, Builtin::Sum, Builtin::Min, Builtin::Max] {
            let mut agg = Aggregator::new(builtin, spec, 1 << 20);
            let mut buf = SortBuffer::new(Order::new(spec), 1);
            let mut partials = 0;
            let mut want: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            for (i, (key, value)) in records.iter().enumerate() {
                agg.push(&[key.as_slice(), b"\t", value.to_string().as_bytes()].concat())
                    .unwrap();
                let v = if builtin == Builtin::Count { 1 } else { *value };
                want.entry(key.clone())
                    .and_modify(|w| match builtin {
                        Builtin::Min => *w = (*w).min(v),
                        Builtin::Max => *w = (*w).max(v),
                        _ => *w += v,
                    })
                    .or_insert(v);
                if i % 25_000 == 24_999 {
                    partials += agg.drain_into(&mut buf).unwrap();
                }
            }
            partials += agg.drain_into(&mut buf).unwrap();
            assert_eq!(partials as usize, buf.len());
            // Merge the partial results as the reducer would.
            let mut got: BTreeMap<Vec<u8>, i64> = BTreeMap::new();
            buf.for_each(|line| {
                let tab = line.iter().rposition(|&b| b == b'\t').unwrap();
                let v: i64 = std::str::from_utf8(&line[tab + 1..])
                    .unwrap()
                    .parse()
                    .unwrap();
                got.entry(line[..tab].to_vec())
                    .and_modify(|w| match builtin {
                        Builtin::Min => *w = (*w).min(v),
                        Builtin::Max => *w = (*w).max(v),
                        _ => *w += v,
                    })
                    .or_insert(v);
                Ok(())
            })
            .unwrap();
            let differ = got.iter().zip(&want).find(|(g, w)| g != w);
            assert_eq!(differ, None, "{}", builtin.name());
            assert_eq!(got.len(), want.len(), "{}", builtin.name());
        }
    }

    /// Past its budget the table fills up and reports itself full instead
    /// of growing, and a map task that spills whenever it is full (checked
    /// once per chunk of records, as map tasks do) loses no record.
    #[test]
    fn the_table_stays_within_its_budget() {
        let spec = KeySpec::default();
        let budget = 64 << 10;
        let mut agg = Aggregator::new(Builtin::Count, spec, budget);
        let mut buf = SortBuffer::new(Order::new(spec), 1);
        let (mut spills, mut partials, mut largest) = (0, 0, 0);
        for chunk in 0..100 {
            for i in 0..100 {
                agg.push(format!("key-{}", (chunk * 100 + i) % 7919).as_bytes())
                    .unwrap();
            }
            largest = largest.max(agg.slots.len() * size_of::<Slot>());
            if agg.bytes() >= 2 * budget {
                partials += agg.drain_into(&mut buf).unwrap();
                spills += 1;
            }
        }
        partials += agg.drain_into(&mut buf).unwrap();
        assert!(largest <= budget, "slots took {largest} bytes");
        assert!(spills >= 3, "{spills} spills");
        let mut total = 0;
        buf.for_each(|l| {
            let tab = l.iter().position(|&b| b == b'\t').unwrap();
            total += std::str::from_utf8(&l[tab + 1..])
                .unwrap()
                .parse::<u64>()
                .unwrap();
            Ok(())
        })
        .unwrap();
        assert_eq!(total, 10_000);
        assert_eq!(partials as usize, buf.len());
    }

    #[test]
    fn bad_values_are_errors() {
        let mut agg = Aggregator::new(Builtin::Sum, KeySpec::default(), 1 << 20);
        agg.push(b"k\t1").unwrap();
        agg.push(b"k\tx").unwrap();
        let err = agg
            .drain_into(&mut SortBuffer::new(Order::new(KeySpec::default()), 1))
            .unwrap_err();
        assert!(err.to_string().contains("integer"), "{err}");
    }
}
