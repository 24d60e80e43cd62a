//! The sort buffer: map output is collected here, partitioned and sorted by
//! (partition, key, value); when it is full it is written out as a sorted
//! run ("spilled"), so a map task's memory is bounded by the buffer, not by
//! its input (DESIGN.md §6).
//!
//! Records live back to back in one byte arena; the sort moves only small
//! fixed-size entries that carry the partition and the first eight key bytes,
//! so most comparisons never touch the arena.

use crate::partition::partition;
use crate::record::{Fields, KeySpec, compare, key_prefix};
use rayon::slice::ParallelSliceMut;
use serde::{Deserialize, Serialize};
use std::cmp::Ordering;
use std::io::{self, Write};

/// Bytes of bookkeeping per record, counted against the buffer's size.
const ENTRY_BYTES: usize = std::mem::size_of::<Entry>();
/// Below this many records a parallel sort costs more than it saves.
const PARALLEL_SORT_MIN: usize = 1 << 16;

#[derive(Clone, Copy)]
struct Entry {
    prefix: u64,
    start: usize,
    len: u32,
    key_end: u32,
    value_start: u32,
    part: u32,
}

impl Entry {
    fn fields(&self) -> Fields {
        Fields {
            key_end: self.key_end as usize,
            value_start: self.value_start as usize,
        }
    }
}

/// Where one partition's records lie in a runs file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// First byte.
    pub start: u64,
    /// One past the last byte.
    pub end: u64,
    /// Records in it.
    pub records: u64,
}

/// Records waiting to be sorted and written.
pub struct SortBuffer {
    key: KeySpec,
    reducers: u32,
    data: Vec<u8>,
    entries: Vec<Entry>,
}

impl SortBuffer {
    /// An empty buffer for `reducers` partitions (> 0).
    pub fn new(key: KeySpec, reducers: u32) -> SortBuffer {
        SortBuffer {
            key,
            reducers,
            data: Vec::new(),
            entries: Vec::new(),
        }
    }

    /// Adds one record (without its `\n`).
    #[inline]
    pub fn push(&mut self, line: &[u8]) {
        let f = self.key.fields(line);
        let key = &line[..f.key_end];
        let len = u32::try_from(line.len()).expect("a record over 4 GiB");
        self.entries.push(Entry {
            prefix: key_prefix(key),
            start: self.data.len(),
            len,
            key_end: f.key_end as u32,
            value_start: f.value_start as u32,
            part: partition(key, self.reducers),
        });
        self.data.extend_from_slice(line);
    }

    /// The number of partitions.
    pub fn reducers(&self) -> u32 {
        self.reducers
    }

    /// The key spec records are sorted by.
    pub fn key(&self) -> KeySpec {
        self.key
    }

    /// Memory the buffered records take.
    pub fn bytes(&self) -> usize {
        self.data.len() + self.entries.len() * ENTRY_BYTES
    }

    /// Records buffered.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Sorts the records by partition, then key, value and line.
    pub fn sort(&mut self) {
        let data = &self.data;
        let cmp = |a: &Entry, b: &Entry| -> Ordering {
            a.part
                .cmp(&b.part)
                .then(a.prefix.cmp(&b.prefix))
                .then_with(|| {
                    let la = &data[a.start..a.start + a.len as usize];
                    let lb = &data[b.start..b.start + b.len as usize];
                    compare(la, a.fields(), lb, b.fields())
                })
        };
        if self.entries.len() >= PARALLEL_SORT_MIN {
            self.entries.par_sort_unstable_by(cmp);
        } else {
            self.entries.sort_unstable_by(cmp);
        }
    }

    /// Calls `f` with each record in the current order.
    pub fn for_each(&self, mut f: impl FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
        for e in &self.entries {
            f(&self.data[e.start..e.start + e.len as usize])?;
        }
        Ok(())
    }

    /// Writes the (sorted) records as lines and returns each partition's
    /// segment of what was written, starting at byte `offset`.
    pub fn write_runs(&self, out: &mut impl Write, offset: u64) -> io::Result<Vec<Segment>> {
        let mut segments = vec![Segment::default(); self.reducers as usize];
        let mut pos = offset;
        let mut seg_start = offset;
        let mut current = 0u32;
        let mut records = 0u64;
        for e in &self.entries {
            while e.part != current {
                segments[current as usize] = Segment {
                    start: seg_start,
                    end: pos,
                    records,
                };
                current += 1;
                seg_start = pos;
                records = 0;
            }
            out.write_all(&self.data[e.start..e.start + e.len as usize])?;
            out.write_all(b"\n")?;
            pos += u64::from(e.len) + 1;
            records += 1;
        }
        while (current as usize) < segments.len() {
            segments[current as usize] = Segment {
                start: seg_start,
                end: pos,
                records,
            };
            current += 1;
            seg_start = pos;
            records = 0;
        }
        Ok(segments)
    }

    /// Empties the buffer, keeping its memory for reuse.
    pub fn clear(&mut self) {
        self.data.clear();
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sorts_by_partition_then_key_then_value() {
        let mut b = SortBuffer::new(KeySpec::default(), 3);
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
}
