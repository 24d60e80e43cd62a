//! The sort buffer: map output is collected here, partitioned and sorted by
//! (partition, key, value); when it is full it is written out as a sorted
//! run ("spilled"), so a map task's memory is bounded by the buffer, not by
//! its input (docs/contracts.md §6).
//!
//! Records live back to back in one byte arena; the sort moves only small
//! fixed-size entries that carry the partition, the first eight bytes of key
//! and value, and their lengths. Keys and values of up to eight bytes (most
//! words, counts, ids) therefore compare without touching the arena, which
//! matters because map output repeats keys heavily and equal keys are where
//! a prefix alone cannot decide. An entry may stand for several copies of
//! one line ([`SortBuffer::push_copies`]): map output that repeats whole
//! lines is sorted once per distinct line and written out in full.
//!
//! Before comparing, entries are distributed by partition and then by the
//! bytes of the key prefix, one byte per pass, in place (an MSD radix sort,
//! "American flag" style), until a bucket is small or its prefixes are
//! exhausted; only then are the entries of a bucket compared. Profiles of
//! the awk word count showed the comparison sort as gmr's largest cost: a
//! pure comparison sort makes ~20 comparisons per record, each a branchy
//! function, over an array far larger than the cache; a radix pass costs a
//! count and a move, and the buckets that remain fit in the cache.

use crate::data::linebuf::{LineBlock, RunWriter, extend_short, huge_pages, prefetch};
use crate::data::order::Order;
use crate::data::record::{cmp_bytes, key_prefix, record_ends};
use rayon::iter::{IntoParallelIterator, ParallelIterator};
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::io::{self, Write};

/// The most bytes of records one buffer holds (entries address the arena
/// with 32-bit offsets, which keeps them small and the sort fast).
pub(crate) const MAX_ARENA: usize = 3 << 30;

/// Bytes of bookkeeping per record, counted against the buffer's size.
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();

/// The least [`SortBuffer::read_lines`] reads, even when the arena must
/// grow for it.
const MIN_READ: usize = 64 << 10;
/// Buckets of up to this many entries are sorted by comparison.
const RADIX_MIN: usize = 64;
/// Below this many records a parallel sort costs more than it saves.
const PARALLEL_SORT_MIN: usize = 1 << 16;
/// The most partitions a job may have (entries keep the partition in 29
/// bits; more than a million part files is no job this tool is for).
pub(crate) const MAX_PARTITIONS: u32 = 1 << 20;

/// Above this many partitions the first radix pass is by partition alone,
/// so that its bucket counts stay small.
const RADIX_PARTITIONS_MAX: u32 = 1 << 12;

/// The bytes of `line[from..to]` past its first eight.
#[inline]
fn tail(line: &[u8], from: u32, to: u32) -> &[u8] {
    &line[(from + 8).min(to) as usize..to as usize]
}

/// Set in `Entry::part_sep` when the line has a separator (so a value).
const HAS_SEPARATOR: u32 = 1 << 31;
/// Set in `Entry::part_sep` when the sort replaced `key_prefix` by later
/// key bytes.
const REKEYED: u32 = 1 << 30;
/// Set in `Entry::part_sep` when the entry stands for several copies of its
/// line: their number is in the four arena bytes before the line.
const GROUPED: u32 = 1 << 29;
/// Set in `Entry::part_sep` when the entry's "key" is the encoding of the
/// line's sort keys ([`crate::data::sortkey`]) and its "value" the line: the
/// arena holds the encoding, a 0 byte, then the line.
const ENCODED: u32 = 1 << 28;
/// The partition's bits of `Entry::part_sep`.
const PARTITION: u32 = !(HAS_SEPARATOR | REKEYED | GROUPED | ENCODED);

#[derive(Clone, Copy)]
struct Entry {
    /// The first eight key bytes (in a sort's radix passes over long keys
    /// that share them, eight bytes further on: see [`radix_sort`]).
    key_prefix: u64,
    value_prefix: u64,
    start: u32,
    len: u32,
    key_len: u32,
    /// The partition, [`HAS_SEPARATOR`], [`REKEYED`], [`GROUPED`] and
    /// [`ENCODED`].
    part_sep: u32,
}

impl Entry {
    fn value_start(&self) -> u32 {
        if self.part_sep & HAS_SEPARATOR != 0 {
            self.key_len + 1
        } else {
            self.len
        }
    }

    /// What the entry orders by: the line, or its sort keys' encoding and
    /// the line.
    fn line<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.start as usize..(self.start + self.len) as usize]
    }

    /// The record the entry stands for.
    #[inline]
    fn record<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let line = self.line(data);
        match self.part_sep & ENCODED {
            0 => line,
            _ => &line[self.key_len as usize + 1..],
        }
    }

    /// How many records the entry stands for.
    #[inline]
    fn copies(&self, data: &[u8]) -> u64 {
        if self.part_sep & GROUPED == 0 {
            return 1;
        }
        let at = self.start as usize - 4;
        u64::from(u32::from_ne_bytes(
            data[at..at + 4].try_into().expect("four bytes"),
        ))
    }

    /// Whether the entry's line is certainly `other`'s, as far as the
    /// entries alone tell: key and value of up to eight bytes, equal.
    #[inline]
    fn same_line(&self, other: &Entry) -> bool {
        self.part_sep == other.part_sep
            && self.part_sep & REKEYED == 0
            && self.len == other.len
            && self.key_len == other.key_len
            && self.key_len <= 8
            && self.len - self.value_start() <= 8
            && self.key_prefix == other.key_prefix
            && self.value_prefix == other.value_prefix
    }

    /// The record order of [`crate::data::record::compare`] (key, value, line),
    /// reading the arena only past the first eight bytes of key or value.
    #[inline]
    fn cmp(&self, other: &Entry, data: &[u8]) -> Ordering {
        let by_prefix = (self.part_sep & PARTITION)
            .cmp(&(other.part_sep & PARTITION))
            .then(self.key_prefix.cmp(&other.key_prefix));
        if by_prefix != Ordering::Equal {
            return by_prefix;
        }
        let (a, b) = (self.line(data), other.line(data));
        // Equal zero-padded prefixes: the first min(8, len) bytes are equal
        // (and a shorter key is a prefix of the longer), so the order is
        // that of what follows them.
        let by_key = if self.key_len <= 8 && other.key_len <= 8 {
            self.key_len.cmp(&other.key_len)
        } else {
            cmp_bytes(tail(a, 0, self.key_len), tail(b, 0, other.key_len))
        };
        by_key.then_with(|| self.cmp_value(other, data))
    }

    /// The order of two records with equal keys.
    #[inline]
    fn cmp_value(&self, other: &Entry, data: &[u8]) -> Ordering {
        let (va, vb) = (self.value_start(), other.value_start());
        let by_value = self.value_prefix.cmp(&other.value_prefix).then_with(|| {
            let (la, lb) = (self.len - va, other.len - vb);
            if la <= 8 && lb <= 8 {
                la.cmp(&lb)
            } else {
                cmp_bytes(
                    tail(self.line(data), va, self.len),
                    tail(other.line(data), vb, other.len),
                )
            }
        });
        // Equal key and value: the lines differ at most by a separator with
        // nothing after it, and the shorter sorts first.
        by_value.then(self.len.cmp(&other.len))
    }
}

/// Moves `entries` into buckets by `digit` (in place, in bucket order).
/// `counts[b]` is how many entries bucket `b` gets; on return it is the
/// end of bucket `b`. `next` is scratch of the same length.
fn distribute(
    entries: &mut [Entry],
    counts: &mut [usize],
    next: &mut [usize],
    digit: impl Fn(&Entry) -> usize,
) {
    let ends = counts;
    let mut sum = 0;
    for (end, next) in ends.iter_mut().zip(next.iter_mut()) {
        *next = sum;
        sum += *end;
        *end = sum;
    }
    // `next[b]`: the first slot of bucket `b` not yet holding one of its
    // own entries. Each entry taken out of place is carried along the
    // chain of buckets it displaces until one of the current bucket's
    // turns up.
    for b in 0..ends.len() {
        while next[b] < ends[b] {
            let mut carried = entries[next[b]];
            loop {
                let d = digit(&carried);
                if d == b {
                    break;
                }
                std::mem::swap(&mut carried, &mut entries[next[d]]);
                next[d] += 1;
                // Each bucket fills front to back, and the swap chain jumps
                // between buckets at random: fetch the slots the next swap
                // into bucket `d` will use, so that it finds them cached
                // rather than waiting on memory (the first pass over a
                // buffer spent three quarters of its time in that wait).
                prefetch(entries.as_ptr().wrapping_add(next[d]));
                prefetch(entries.as_ptr().wrapping_add(next[d] + 2));
            }
            entries[next[b]] = carried;
            next[b] += 1;
        }
    }
}

/// Calls `f` with the number and entries of each non-empty bucket of
/// `entries` that [`distribute`] left ending at `ends`.
fn for_each_bucket<'a>(
    entries: &'a mut [Entry],
    ends: &[usize],
    mut f: impl FnMut(usize, &'a mut [Entry]),
) {
    let (mut rest, mut start) = (entries, 0);
    for (b, &end) in ends.iter().enumerate() {
        let (bucket, tail) = rest.split_at_mut(end - start);
        if !bucket.is_empty() {
            f(b, bucket);
        }
        (rest, start) = (tail, end);
    }
}

/// Sorts entries whose partition and first `offset + depth` key bytes are
/// equal, their `key_prefix` holding the eight key bytes from `offset`: by
/// the next prefix byte while the bucket is large, then by comparison.
///
/// Only buckets smaller than the largest are sorted by recursion; the loop
/// goes on with the largest, and with the next byte when all share one. So
/// the stack holds at most log2(n) frames, whatever the keys: thousands of
/// records that share a long prefix, or keys `a`, `aa`, `aaa`, … that each
/// split one record off the rest, would otherwise recurse once per byte.
fn radix_sort(mut entries: &mut [Entry], mut depth: u32, mut offset: u32, data: &[u8]) {
    let by_comparison = |entries: &mut [Entry]| entries.sort_unstable_by(|a, b| a.cmp(b, data));
    loop {
        if entries.len() <= RADIX_MIN {
            return by_comparison(entries);
        }
        if depth == 8 {
            // Long keys that share their first `offset + 8` bytes (long
            // words, paths, URLs): rather than compare them from the arena
            // again and again, read their next eight bytes once and go on
            // by those. The comparison stays right for entries whose keys
            // agree up to the new window: it orders by the window, then by
            // the bytes past the first eight, which repeats the window's.
            offset += 8;
            for e in entries.iter_mut() {
                let key = &e.line(data)[..e.key_len as usize];
                e.key_prefix = key_prefix(&key[(offset as usize).min(key.len())..]);
                e.part_sep |= REKEYED;
            }
            depth = 0;
            continue;
        }
        let shift = 56 - 8 * depth;
        let digit = |e: &Entry| (e.key_prefix >> shift) as u8 as usize;
        let mut counts = [0; 256];
        let (mut shortest, mut longest) = (u32::MAX, 0);
        for e in entries.iter() {
            counts[digit(e)] += 1;
            shortest = shortest.min(e.key_len);
            longest = longest.max(e.key_len);
        }
        if longest <= offset + depth {
            // Every key ends within the bytes the bucket shares: what is
            // left to order by is lengths and values. When the lengths are
            // equal too, so are the keys (a frequent word's records), and
            // comparing values alone spares reading long keys from the
            // arena.
            if shortest == longest {
                return radix_sort_values(entries, 0, data);
            }
            return by_comparison(entries);
        }
        depth += 1;
        if counts.contains(&entries.len()) {
            // One bucket: a pass would move nothing.
            continue;
        }
        entries = split_by(entries, counts, digit, |bucket| {
            radix_sort(bucket, depth, offset, data)
        });
    }
}

/// One radix pass: moves `entries` into the buckets of `digit` (whose sizes
/// are `counts`), sorts every bucket but the largest with `sort`, and
/// returns the largest, which the caller's loop goes on with (so that the
/// stack stays shallow whatever the keys).
fn split_by<'a>(
    entries: &'a mut [Entry],
    mut counts: [usize; 256],
    digit: impl Fn(&Entry) -> usize,
    mut sort: impl FnMut(&'a mut [Entry]),
) -> &'a mut [Entry] {
    let largest = (0..256).max_by_key(|&b| counts[b]).unwrap_or(0);
    distribute(entries, &mut counts, &mut [0; 256], digit);
    let mut rest = None;
    for_each_bucket(entries, &counts, |b, bucket| {
        if b == largest {
            rest = Some(bucket);
        } else {
            sort(bucket);
        }
    });
    rest.expect("the largest bucket is not empty")
}

/// Sorts entries whose partition and key are equal by value (then line):
/// by the value prefix's bytes while the bucket is large, then by
/// comparison. Many records of one key with different values are where a
/// comparison sort used to take most of the time: word counts ordered by
/// `--sort-key 2,2nr`, whose equal counts are most of them, or records
/// whose lines differ only after the key.
fn radix_sort_values(mut entries: &mut [Entry], mut depth: u32, data: &[u8]) {
    loop {
        if entries.len() <= RADIX_MIN || depth == 8 {
            return entries.sort_unstable_by(|a, b| a.cmp_value(b, data));
        }
        let shift = 56 - 8 * depth;
        let digit = |e: &Entry| (e.value_prefix >> shift) as u8 as usize;
        let mut counts = [0; 256];
        for e in entries.iter() {
            counts[digit(e)] += 1;
        }
        depth += 1;
        if counts.contains(&entries.len()) {
            continue;
        }
        entries = split_by(entries, counts, digit, |bucket| {
            radix_sort_values(bucket, depth, data)
        });
    }
}

/// Where one partition's records lie in a runs file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Segment {
    /// First byte.
    pub(crate) start: u64,
    /// One past the last byte.
    pub(crate) end: u64,
    /// Records in it.
    pub(crate) records: u64,
    /// Present when its records are stored counted, each as `N<SP>line`
    /// (N copies of the line, in decimal; [`crate::data::merge`] reads
    /// them): the bytes of its records written out as lines. A word
    /// count's map output is mostly copies of a few distinct lines; its
    /// runs hold each once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) text_bytes: Option<u64>,
}

impl Segment {
    /// Bytes of its records as lines (what a reducer is fed).
    pub(crate) fn text_len(&self) -> u64 {
        self.text_bytes.unwrap_or(self.end - self.start)
    }
}

/// Sort buffers given back by finished map tasks, for the next task in
/// this process. A new buffer's pages are faulted in, and zeroed by the
/// kernel, as it first fills: a tenth of gmr's time in profiles of a word
/// count with eight map tasks. A reused one's are resident.
#[derive(Default)]
pub(crate) struct BufferPool {
    /// Buffers kept at most: as many as tasks run at once, so that memory
    /// stays what the running tasks had, however many tasks the job has.
    keep: usize,
    buffers: std::sync::Mutex<Vec<SortBuffer>>,
}

impl std::fmt::Debug for BufferPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BufferPool")
            .field("keep", &self.keep)
            .finish_non_exhaustive()
    }
}

impl BufferPool {
    /// A pool keeping at most `keep` buffers.
    pub(crate) fn new(keep: usize) -> BufferPool {
        BufferPool {
            keep,
            buffers: std::sync::Mutex::default(),
        }
    }

    fn buffers(&self) -> std::sync::MutexGuard<'_, Vec<SortBuffer>> {
        self.buffers.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A buffer like [`SortBuffer::with_capacity`], reusing one a finished
    /// task gave back when there is one big enough.
    pub(crate) fn take(&self, order: Order, reducers: u32, bytes: usize) -> SortBuffer {
        // A pooled buffer too small for this task is dropped, not kept:
        // the tasks of a job all ask for the same size.
        let reused = self
            .buffers()
            .pop()
            .filter(|b| b.data.capacity() >= bytes && b.entries.capacity() >= bytes / ENTRY_BYTES);
        match reused {
            Some(mut b) => {
                assert!(reducers <= MAX_PARTITIONS, "{reducers} partitions");
                b.order = order;
                b.reducers = reducers;
                b
            }
            None => SortBuffer::with_capacity(order, reducers, bytes),
        }
    }

    /// Keeps `buffer`'s memory for the next [`BufferPool::take`].
    pub(crate) fn give_back(&self, mut buffer: SortBuffer) {
        // Nothing of a line being read goes to the next task.
        buffer.line_start = buffer.data.len();
        buffer.clear();
        let mut buffers = self.buffers();
        if buffers.len() < self.keep {
            buffers.push(buffer);
        }
    }

    /// Frees the buffers kept for reuse: the map phase is over, and their
    /// memory is better left to the merges and reducers.
    pub(crate) fn release(&self) {
        self.buffers().clear();
    }
}

/// What [`SortBuffer::distinct`] counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Distinct {
    pub(crate) lines: usize,
    pub(crate) keys: usize,
}

/// Records waiting to be sorted and written.
pub(crate) struct SortBuffer {
    order: Order,
    /// Scratch for a record's sort-key encoding.
    encoded: Vec<u8>,
    reducers: u32,
    data: Vec<u8>,
    entries: Vec<Entry>,
    /// Records buffered: entries, counted with their copies.
    records: usize,
    /// Where the line being read into the arena starts
    /// ([`SortBuffer::read_lines`]): the bytes from here on are not a
    /// record yet. The arena's length otherwise.
    line_start: usize,
}

impl SortBuffer {
    /// An empty buffer for `reducers` partitions (> 0).
    pub(crate) fn new(order: Order, reducers: u32) -> SortBuffer {
        SortBuffer::with_capacity(order, reducers, 0)
    }

    /// Adds one record (without its `\n`). The caller spills before the
    /// arena reaches [`MAX_ARENA`].
    #[inline]
    pub(crate) fn push(&mut self, line: &[u8]) {
        debug_assert_eq!(self.line_start, self.data.len(), "a line is being read");
        if self.order.sort_keys().is_some() {
            return self.push_encoded(line);
        }
        let entry = self.entry(line, self.data.len());
        self.entries.push(entry);
        extend_short(&mut self.data, line);
        self.line_start = self.data.len();
        self.records += 1;
    }

    /// The entry of `line`, to be found in the arena at `start`.
    #[inline]
    fn entry(&self, line: &[u8], start: usize) -> Entry {
        let f = self.order.key.fields(line);
        let key = &line[..f.key_end];
        let sep = if f.value_start > f.key_end {
            HAS_SEPARATOR
        } else {
            0
        };
        Entry {
            key_prefix: key_prefix(key),
            value_prefix: key_prefix(&line[f.value_start..]),
            start: u32::try_from(start).expect("sort buffer over 4 GiB"),
            len: u32::try_from(line.len()).expect("a record over 4 GiB"),
            key_len: f.key_end as u32,
            part_sep: self.order.partition(key, &[], self.reducers) | sep,
        }
    }

    /// Whether [`SortBuffer::read_lines`] may be used: records are stored
    /// as they are, not encoded by sort keys.
    pub(crate) fn reads_lines(&self) -> bool {
        self.order.sort_keys().is_none()
    }

    /// Takes input straight into the arena, for a mapper whose output is
    /// its input (`cat`): `read` appends bytes to the arena and returns how
    /// many (0 at the end), and every line they end becomes a record, its
    /// `\n` left in the arena between records. A line not ended yet stays
    /// at the arena's end for the next read ([`SortBuffer::end_line`]
    /// takes it as it is). Returns the bytes read, the records added and
    /// the longest of them.
    /// Unlike [`SortBuffer::push`], no record is copied.
    pub(crate) fn read_lines<E>(
        &mut self,
        max: usize,
        read: impl FnOnce(&mut Vec<u8>, usize) -> Result<usize, E>,
    ) -> Result<(usize, usize, usize), E> {
        assert!(self.reads_lines(), "records are encoded");
        // At most the room left, so that the arena does not grow (it was
        // reserved at full size); more for a line longer than the arena.
        let room = self.data.capacity() - self.data.len();
        let from = self.data.len();
        let n = read(&mut self.data, max.min(room.max(MIN_READ)))?;
        let mut added = 0;
        let mut longest = 0;
        let mut start = self.line_start;
        // The arena is only read here; entries are collected apart.
        let data = std::mem::take(&mut self.data);
        let eol = self.order.key.eol;
        for end in record_ends(&data[from..], eol).map(|i| from + i) {
            let entry = self.entry(&data[start..end], start);
            self.entries.push(entry);
            longest = longest.max(end - start);
            start = end + 1;
            added += 1;
        }
        self.data = data;
        self.line_start = start;
        self.records += added;
        Ok((n, added, longest))
    }

    /// The bytes of a line [`SortBuffer::read_lines`] began and no `\n`
    /// ended yet.
    pub(crate) fn pending_len(&self) -> usize {
        self.data.len() - self.line_start
    }

    /// Ends what [`SortBuffer::read_lines`] read: a last line without a
    /// `\n` becomes a record. Returns whether there was one.
    pub(crate) fn end_line(&mut self) -> bool {
        let (start, end) = (self.line_start, self.data.len());
        if start == end {
            return false;
        }
        let entry = self.entry(&self.data[start..end], start);
        self.entries.push(entry);
        self.line_start = end;
        self.records += 1;
        true
    }

    /// [`SortBuffer::push`] with sort keys: the entry orders by the line's
    /// encoding, then by the line.
    fn push_encoded(&mut self, line: &[u8]) {
        let mut encoded = std::mem::take(&mut self.encoded);
        encoded.clear();
        if let Some(keys) = self.order.sort_keys() {
            keys.encode(line, &mut encoded);
        }
        let key = self.order.key.key(line);
        let start = u32::try_from(self.data.len()).expect("sort buffer over 4 GiB");
        let len = encoded.len() + 1 + line.len();
        self.entries.push(Entry {
            key_prefix: key_prefix(&encoded),
            value_prefix: key_prefix(line),
            start,
            len: u32::try_from(len).expect("a record over 4 GiB"),
            key_len: encoded.len() as u32,
            part_sep: self.order.partition(key, &encoded, self.reducers) | HAS_SEPARATOR | ENCODED,
        });
        self.data.extend_from_slice(&encoded);
        self.data.push(0);
        self.data.extend_from_slice(line);
        self.line_start = self.data.len();
        self.records += 1;
        self.encoded = encoded;
    }

    /// Adds `copies` records that are all `line`, as one entry: they are
    /// sorted once and written out `copies` times. Map output that repeats
    /// whole lines (a word count's `word<TAB>1`) sorts as fast as its
    /// distinct lines.
    pub(crate) fn push_copies(&mut self, line: &[u8], mut copies: u64) {
        while copies > 1 {
            let n = u32::try_from(copies).unwrap_or(u32::MAX);
            self.data.extend_from_slice(&n.to_ne_bytes());
            self.line_start = self.data.len();
            self.push(line);
            self.entries.last_mut().expect("just pushed").part_sep |= GROUPED;
            self.records += n as usize - 1;
            copies -= u64::from(n);
        }
        if copies == 1 {
            self.push(line);
        }
    }

    /// An empty buffer that will hold about `bytes` of records without
    /// growing. Reserving address space is free (untouched pages are not
    /// resident); growing by doubling is not: every smaller buffer the
    /// vectors outgrow stays in the allocator's per-thread arena, which
    /// made a task's resident memory about 1.4 times its sort buffer.
    pub(crate) fn with_capacity(order: Order, reducers: u32, bytes: usize) -> SortBuffer {
        assert!(reducers <= MAX_PARTITIONS, "{reducers} partitions");
        let mut data: Vec<u8> = Vec::with_capacity(bytes);
        let mut entries: Vec<Entry> = Vec::with_capacity(bytes / ENTRY_BYTES);
        // The sort moves entries between buckets anywhere in the buffer and
        // reads lines anywhere in the arena: on huge pages, where the
        // kernel grants them, those accesses miss the TLB far less.
        huge_pages(data.as_mut_ptr(), data.capacity());
        huge_pages(
            entries.as_mut_ptr().cast(),
            entries.capacity() * size_of::<Entry>(),
        );
        SortBuffer {
            order,
            encoded: Vec::new(),
            reducers,
            data,
            entries,
            records: 0,
            line_start: 0,
        }
    }

    /// The number of partitions.
    pub(crate) fn reducers(&self) -> u32 {
        self.reducers
    }

    /// The order records are sorted in.
    pub(crate) fn order(&self) -> &Order {
        &self.order
    }

    /// Memory the buffered records take (a line still being read aside:
    /// it is no record yet, and spilling cannot make room for it).
    pub(crate) fn bytes(&self) -> usize {
        self.line_start + self.entries.len() * ENTRY_BYTES
    }

    /// Records buffered.
    pub(crate) fn len(&self) -> usize {
        self.records
    }

    /// Distinct records and distinct keys in the sorted buffer: equal
    /// lines, and equal keys, are adjacent once sorted, and each run of
    /// them counts once, whether its copies were pushed one by one or
    /// counted ([`SortBuffer::push_copies`]).
    pub(crate) fn distinct(&self) -> Distinct {
        let key = self.order.key;
        let (mut last, mut last_key): (Option<&[u8]>, Option<&[u8]>) = (None, None);
        let mut n = Distinct::default();
        for (_, line, _) in self.entries_with_lines() {
            if last == Some(line) {
                continue;
            }
            n.lines += 1;
            last = Some(line);
            let k = &line[..key.fields(line).key_end];
            if last_key != Some(k) {
                n.keys += 1;
                last_key = Some(k);
            }
        }
        n
    }

    /// True when nothing is buffered.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sorts the records by partition, then key, value and line.
    pub(crate) fn sort(&mut self) {
        let data = &self.data;
        // A combiner's output is usually in order already (it kept the
        // order of its sorted input); a check stops at the first record
        // out of order, at once for most other buffers.
        if self
            .entries
            .is_sorted_by(|a, b| a.cmp(b, data) != Ordering::Greater)
        {
            return;
        }
        if self.entries.len() <= RADIX_MIN {
            self.entries.sort_unstable_by(|a, b| a.cmp(b, data));
            return;
        }
        // The first pass: by partition, and the first key byte when there
        // are few enough partitions for the counts to stay small.
        let with_byte = self.reducers <= RADIX_PARTITIONS_MAX;
        let (buckets, depth) = if with_byte {
            (self.reducers as usize * 256, 1)
        } else {
            (self.reducers as usize, 0)
        };
        let digit = |e: &Entry| {
            let part = (e.part_sep & PARTITION) as usize;
            if with_byte {
                part << 8 | (e.key_prefix >> 56) as usize
            } else {
                part
            }
        };
        let parallel = self.entries.len() >= PARALLEL_SORT_MIN;
        let mut counts = vec![0; buckets];
        for e in &self.entries {
            counts[digit(e)] += 1;
        }
        distribute(&mut self.entries, &mut counts, &mut vec![0; buckets], digit);
        let sort_bucket = |bucket: &mut [Entry]| radix_sort(bucket, depth, 0, data);
        if parallel {
            let mut slices = Vec::with_capacity(buckets);
            for_each_bucket(&mut self.entries, &counts, |_, b| slices.push(b));
            slices.into_par_iter().for_each(sort_bucket);
        } else {
            for_each_bucket(&mut self.entries, &counts, |_, b| sort_bucket(b));
        }
    }

    /// Each entry in the current order, with its line and how many records
    /// it stands for.
    fn entries_with_lines(&self) -> impl Iterator<Item = (&Entry, &[u8], u64)> {
        // Sorted map output repeats lines (a word count's is mostly runs
        // of `word\t1`): a line known equal to the one before is taken
        // from that one, which is in the cache, rather than from its own
        // place in the arena, which is likely not.
        let mut last: Option<(&Entry, &[u8])> = None;
        self.entries.iter().enumerate().map(move |(i, e)| {
            // The arena is read in sorted order, that is at random: ask for
            // a line (and its count) a few records ahead.
            if let Some(ahead) = self.entries.get(i + 16) {
                let at = ahead.start.saturating_sub(4) as usize;
                let end = (ahead.start + ahead.len) as usize;
                let base = self.data.as_ptr();
                prefetch(base.wrapping_add(at));
                // A line over a cache line: ask for the rest of it too.
                let mut next = (at | 63) + 1;
                while next < end {
                    prefetch(base.wrapping_add(next));
                    next += 64;
                }
            }
            let line = match last {
                Some((prev, line)) if e.same_line(prev) => line,
                _ => e.record(&self.data),
            };
            last = Some((e, line));
            (e, line, e.copies(&self.data))
        })
    }

    /// Calls `f` with each record in the current order.
    pub(crate) fn for_each(&self, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        for (_, line, copies) in self.entries_with_lines() {
            for _ in 0..copies {
                f(line)?;
            }
        }
        Ok(())
    }

    /// Writes the (sorted) records and returns each partition's segment of
    /// what was written, starting at byte `offset`: as lines, or counted
    /// (`N<SP>line`, see [`Segment::text_bytes`]) when an entry stands for
    /// several copies of its line.
    pub(crate) fn write_runs(&self, out: &mut impl Write, offset: u64) -> io::Result<Vec<Segment>> {
        // Counted, the copies of a line in several entries (pushed one by
        // one before the task began counting lines, or over u32::MAX) are
        // written once.
        let counted = self.records != self.entries.len();
        let mut runs = RunWriter::new(LineBlock::new(out).ending(self.order.key.eol), counted);
        let mut segments = Vec::with_capacity(self.reducers as usize);
        let (mut start, mut records, mut text) = (offset, 0u64, 0u64);
        let mut entries = self.entries_with_lines().peekable();
        for part in 0..self.reducers {
            while let Some((_, line, copies)) =
                entries.next_if(|(e, _, _)| e.part_sep & PARTITION == part)
            {
                runs.push(line, copies)?;
                text += (line.len() as u64 + 1) * copies;
                records += copies;
            }
            let end = offset + runs.written()?;
            segments.push(Segment {
                start,
                end,
                records,
                text_bytes: counted.then_some(text),
            });
            (start, records, text) = (end, 0, 0);
        }
        runs.finish()?;
        Ok(segments)
    }

    /// Empties the buffer of records, keeping its memory for reuse, and a
    /// line still being read ([`SortBuffer::read_lines`]).
    pub(crate) fn clear(&mut self) {
        let reading = self.data.len() - self.line_start;
        self.data.copy_within(self.line_start.., 0);
        self.data.truncate(reading);
        self.line_start = 0;
        self.entries.clear();
        self.records = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::partition::partition;
    use crate::data::record::{KeySpec, compare};

    #[test]
    fn entry_order_equals_record_order() {
        // Short and long keys and values, prefixes of each other, bytes
        // below and above the separator, missing separators.
        let atoms: [&[u8]; 8] = [
            b"",
            b"a",
            b"a\x00",
            b"ab",
            b"abcdefgh",
            b"abcdefghi",
            b"\x01",
            b"\xff",
        ];
        let mut lines = Vec::new();
        for k in atoms {
            lines.push(k.to_vec());
            for v in atoms {
                lines.push([k, b"\t", v].concat());
            }
        }
        let spec = KeySpec::default();
        let mut b = SortBuffer::new(Order::new(spec), 1);
        for l in &lines {
            b.push(l);
        }
        for x in &b.entries {
            for y in &b.entries {
                let (lx, ly) = (x.line(&b.data), y.line(&b.data));
                assert_eq!(
                    x.cmp(y, &b.data),
                    compare(lx, spec.fields(lx), ly, spec.fields(ly)),
                    "{lx:?} vs {ly:?}"
                );
            }
        }
    }

    /// Reads `input` into a buffer `step` bytes at a time, clearing it
    /// (as a spill does) after every `clear_every` reads.
    fn read_in_steps(input: &[u8], step: usize, clear_every: usize) -> Vec<u8> {
        let order = Order::new(KeySpec::default());
        let mut b = SortBuffer::with_capacity(order, 3, 16);
        let mut out = Vec::new();
        let mut flush = |b: &mut SortBuffer| {
            b.sort();
            b.write_runs(&mut out, 0).unwrap();
            b.clear();
        };
        let mut rest = input;
        for reads in 1.. {
            let (n, _, _) = b
                .read_lines(step, |arena, max| -> io::Result<usize> {
                    let n = rest.len().min(max);
                    arena.extend_from_slice(&rest[..n]);
                    rest = &rest[n..];
                    Ok(n)
                })
                .unwrap();
            if n == 0 {
                break;
            }
            if reads % clear_every == 0 {
                flush(&mut b);
            }
        }
        b.end_line();
        flush(&mut b);
        out
    }

    #[test]
    fn lines_read_into_the_arena_are_the_records_pushed() {
        let input = b"b\t2\na\t9\n\nlong line, longer than a read\na\t10\n\xff\t1\nc";
        // The records, pushed one by one, sorted: what every way of reading
        // them must give.
        let mut b = SortBuffer::new(Order::new(KeySpec::default()), 3);
        for line in input.split(|&c| c == b'\n') {
            b.push(line);
        }
        b.sort();
        let mut want = Vec::new();
        b.write_runs(&mut want, 0).unwrap();
        assert_eq!(b.len(), 7);
        assert_eq!(read_in_steps(input, input.len(), usize::MAX), want);
        for step in [1, 2, 3, 7] {
            // Read in pieces that cut lines anywhere, but never cleared: one
            // sorted run.
            assert_eq!(read_in_steps(input, step, usize::MAX), want, "{step}");
            // Cleared in the middle of lines: several runs, the same lines.
            let lines = |out: &[u8]| {
                let mut v: Vec<Vec<u8>> = out.split(|&c| c == b'\n').map(<[u8]>::to_vec).collect();
                v.sort_unstable();
                v
            };
            assert_eq!(
                lines(&read_in_steps(input, step, 3)),
                lines(&want),
                "{step}"
            );
        }
    }

    #[test]
    fn sorts_by_partition_then_key_then_value() {
        let mut b = SortBuffer::new(Order::new(KeySpec::default()), 3);
        let lines: Vec<&[u8]> = vec![
            b"b\t2",
            b"a\t9",
            b"a\t10",
            b"c",
            b"b\t1",
            b"a\x01\t0",
            b"\xff\t1",
            b"",
        ];
        for l in &lines {
            b.push(l);
        }
        b.sort();
        let mut out = Vec::new();
        let segs = b.write_runs(&mut out, 0).unwrap();
        assert_eq!(segs.len(), 3);
        assert_eq!(
            segs.iter().map(|s| s.records).sum::<u64>(),
            lines.len() as u64
        );
        assert_eq!(segs.last().unwrap().end as usize, out.len());
        let spec = KeySpec::default();
        for s in &segs {
            let part = &out[s.start as usize..s.end as usize];
            let recs: Vec<&[u8]> = part.split(|&c| c == b'\n').filter(|_| true).collect();
            let recs = &recs[..recs.len().saturating_sub(1)];
            for w in recs.windows(2) {
                let (a, b2) = (w[0], w[1]);
                assert!(compare(a, spec.fields(a), b2, spec.fields(b2)) != Ordering::Greater);
            }
            for r in recs {
                let p = partition(spec.key(r), 3);
                assert_eq!(segs[p as usize], *s);
            }
        }
    }

    /// Sorts `lines` through a buffer and checks the order against
    /// [`compare`] and that no record is lost.
    fn sorts_like_compare(lines: &[Vec<u8>], reducers: u32) {
        let spec = KeySpec::default();
        let mut b = SortBuffer::new(Order::new(spec), reducers);
        for l in lines {
            b.push(l);
        }
        b.sort();
        let mut out = Vec::new();
        let segs = b.write_runs(&mut out, 0).unwrap();
        let mut expected: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        expected.sort_by(|x, y| {
            partition(spec.key(x), reducers)
                .cmp(&partition(spec.key(y), reducers))
                .then_with(|| compare(x, spec.fields(x), y, spec.fields(y)))
        });
        let got: Vec<&[u8]> = out.split(|&c| c == b'\n').collect();
        assert!(got[..got.len() - 1] == expected[..], "order differs");
        assert_eq!(
            segs.iter().map(|s| s.records).sum::<u64>(),
            lines.len() as u64
        );
    }

    /// Deterministic pseudo-random numbers (xorshift).
    fn numbers(seed: u64) -> impl Iterator<Item = u64> {
        std::iter::successors(Some(seed), |x| {
            let x = x ^ (x << 13);
            let x = x ^ (x >> 7);
            Some(x ^ (x << 17))
        })
    }

    /// Records of 500 keys: numbers, keys longer than the prefix that
    /// share it (or several prefixes' worth), keys that differ only past
    /// it or by zero bytes, runs of one letter; with no value, empty,
    /// equal or varied values.
    fn repeated_keys(records: usize) -> Vec<Vec<u8>> {
        let keys: Vec<Vec<u8>> = (0..500)
            .map(|i| match i % 7 {
                0 => format!("{i}").into_bytes(),
                1 => format!("longer-key-{i}").into_bytes(),
                2 => format!("longer-key-{i}\x00").into_bytes(),
                3 => format!("/a/path/longer/than/three/prefixes/{}", i % 7).into_bytes(),
                4 => [&b"/a/path/longer/than/three/prefixes/"[..], &vec![0; i % 5]].concat(),
                // Differ first at byte 16, and after it in the other order.
                5 => format!("0123456789abcdef{}{}", i % 10, 9 - i % 10).into_bytes(),
                _ => vec![b'k'; i % 13],
            })
            .collect();
        numbers(7)
            .take(records)
            .map(|n| {
                let key: &[u8] = &keys[(n % 500) as usize];
                match (n >> 20) % 5 {
                    0 => key.to_vec(),
                    1 => [key, &b"\t1"[..]].concat(),
                    2 => [key, &b"\t"[..]].concat(),
                    3 => [key, b"\t", format!("{}", (n >> 30) % 7).as_bytes()].concat(),
                    _ => [key, b"\tvalue-", format!("{}", (n >> 30) % 11).as_bytes()].concat(),
                }
            })
            .collect()
    }

    #[test]
    fn radix_passes_sort_like_comparison() {
        let lines = repeated_keys(100_000);
        for reducers in [1, 3] {
            sorts_like_compare(&lines, reducers);
        }
        // Too many partitions for the first pass to use a key byte too.
        sorts_like_compare(&lines[..20_000], RADIX_PARTITIONS_MAX + 1);
        let distinct: Vec<Vec<u8>> = numbers(11)
            .take(50_000)
            .map(|n| format!("{n:x}\t{}", n % 3).into_bytes())
            .collect();
        sorts_like_compare(&distinct, 2);
    }

    /// Records pushed as copies of one entry sort and come out as the
    /// records themselves, mixed with records pushed one by one.
    #[test]
    fn copies_come_out_as_their_records() {
        let lines = repeated_keys(50_000);
        let spec = KeySpec::default();
        let mut plain = SortBuffer::new(Order::new(spec), 3);
        let mut grouped = SortBuffer::new(Order::new(spec), 3);
        let mut counts = std::collections::BTreeMap::new();
        for (i, l) in lines.iter().enumerate() {
            plain.push(l);
            // A third straight in, the rest counted.
            if i % 3 == 0 {
                grouped.push(l);
            } else {
                *counts.entry(l.clone()).or_insert(0u64) += 1;
            }
        }
        for (l, n) in &counts {
            grouped.push_copies(l, *n);
        }
        assert!(
            grouped.entries.len() < lines.len() / 2,
            "copies share entries"
        );
        assert_eq!(grouped.len(), lines.len());
        // The runs as lines, read back through a merge of each segment,
        // and each segment's records and bytes as lines.
        let written = |b: &mut SortBuffer| {
            b.sort();
            let mut out = vec![b'x'; 5];
            let segs = b.write_runs(&mut out, 5).unwrap();
            let mut lines = Vec::new();
            for seg in &segs {
                let bytes = out[seg.start as usize..seg.end as usize].to_vec();
                let run = crate::data::merge::Run::new(std::io::Cursor::new(bytes), 4096)
                    .counted(seg.text_bytes.is_some());
                crate::data::merge::merge(b.order(), vec![run], |l, copies| {
                    for _ in 0..copies {
                        lines.extend_from_slice(l);
                        lines.push(b'\n');
                    }
                    Ok(())
                })
                .unwrap();
            }
            let mut each = Vec::new();
            b.for_each(|l| {
                each.extend_from_slice(l);
                each.push(b'\n');
                Ok(())
            })
            .unwrap();
            assert_eq!(each, lines, "for_each and write_runs agree");
            let sizes: Vec<(u64, u64)> = segs.iter().map(|s| (s.records, s.text_len())).collect();
            (lines, sizes, segs.iter().all(|s| s.text_bytes.is_some()))
        };
        let (grouped, plain) = (written(&mut grouped), written(&mut plain));
        assert!(grouped.0 == plain.0, "output differs");
        assert_eq!(grouped.1, plain.1);
        assert!(
            grouped.2 && !plain.2,
            "copies are written counted, lines as lines"
        );
    }

    /// More copies than an entry counts take more entries.
    #[test]
    fn copies_past_u32_take_two_entries() {
        let mut b = SortBuffer::new(Order::new(KeySpec::default()), 1);
        let n = u64::from(u32::MAX) + 2;
        b.push_copies(b"w\t1", n);
        b.push_copies(b"v", 1);
        assert_eq!(b.len() as u64, n + 1);
        assert_eq!(b.entries.len(), 3);
        let total: u64 = b.entries.iter().map(|e| e.copies(&b.data)).sum();
        assert_eq!(total, n + 1);
    }

    /// Keys that split one record off at each byte (`a`, `aa`, `aaa`, …)
    /// and many records of one long key sort in a 256 KiB stack: the sort
    /// must not recurse once per key byte.
    #[test]
    fn long_shared_prefixes_sort_in_a_small_stack() {
        let mut lines: Vec<Vec<u8>> = (1..3000).map(|n| vec![b'a'; n]).collect();
        lines.extend(
            (0..500).map(|i| [&vec![b'b'; 4000][..], format!("\t{}", i % 3).as_bytes()].concat()),
        );
        std::thread::Builder::new()
            .stack_size(256 << 10)
            .spawn(move || sorts_like_compare(&lines, 1))
            .unwrap()
            .join()
            .unwrap();
    }
}
