//! k-way merge of sorted runs, streaming: memory is one buffered reader and
//! one record per run, whatever the runs' sizes (DESIGN.md §6).
//!
//! A run is a segment of a runs file (see [`crate::sort::Segment`]) or a
//! whole merged partition; each holds `\n`-terminated records already in
//! (key, value, line) order.

use crate::record::{Fields, KeySpec, compare};
use crate::sort::Segment;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

/// A sorted run being read.
pub type Run = Box<dyn BufRead + Send>;

/// Read buffers of one merge, all runs together: a merge's memory must not
/// grow with the number of map tasks (that is, with the input).
const MERGE_MEMORY: usize = 32 << 20;

/// The read buffer of each of `runs` runs merged at once: 256 KiB for
/// sequential reads, less when there are more than 128 runs.
pub fn run_buffer(runs: usize) -> usize {
    (MERGE_MEMORY / runs.max(1)).clamp(16 << 10, 256 << 10)
}

/// Opens one segment of a runs file, with a read buffer of `buffer` bytes.
pub fn open_segment(path: &Path, seg: Segment, buffer: usize) -> io::Result<Run> {
    let mut file = File::open(path).map_err(too_many_files)?;
    file.seek(SeekFrom::Start(seg.start))?;
    Ok(Box::new(BufReader::with_capacity(
        buffer,
        file.take(seg.end - seg.start),
    )))
}

/// Opens a whole file as one run.
pub fn open_file(path: &Path) -> io::Result<Run> {
    Ok(Box::new(BufReader::with_capacity(
        run_buffer(1),
        File::open(path).map_err(too_many_files)?,
    )))
}

/// A merge holds one open file per run: say what to do when that is more
/// than the process may open.
fn too_many_files(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::EMFILE) {
        io::Error::new(
            e.kind(),
            format!(
                "{e}: the merge has more runs than open files allowed; raise `ulimit -n` or use a larger --split-size"
            ),
        )
    } else {
        e
    }
}

struct Head {
    line: Vec<u8>,
    fields: Fields,
    run: usize,
}

impl Ord for Head {
    fn cmp(&self, other: &Self) -> Ordering {
        // BinaryHeap is a max-heap: reverse, so the smallest record is on top.
        compare(&other.line, other.fields, &self.line, self.fields).then(other.run.cmp(&self.run))
    }
}
impl PartialOrd for Head {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl PartialEq for Head {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Head {}

/// Reads the next record of `run` into `line` (without `\n`); false at end.
fn next_record(run: &mut Run, line: &mut Vec<u8>) -> io::Result<bool> {
    line.clear();
    if run.read_until(b'\n', line)? == 0 {
        return Ok(false);
    }
    if line.last() == Some(&b'\n') {
        line.pop();
    }
    Ok(true)
}

/// Merges `runs` and calls `emit` with each record (without `\n`) in order.
/// Returns the number of records.
pub fn merge(
    key: KeySpec,
    mut runs: Vec<Run>,
    mut emit: impl FnMut(&[u8]) -> io::Result<()>,
) -> io::Result<u64> {
    let mut heap = BinaryHeap::with_capacity(runs.len());
    for (i, run) in runs.iter_mut().enumerate() {
        let mut line = Vec::new();
        if next_record(run, &mut line)? {
            heap.push(Head {
                fields: key.fields(&line),
                line,
                run: i,
            });
        }
    }
    let mut count = 0u64;
    let mut next = Vec::new();
    while let Some(mut top) = heap.peek_mut() {
        emit(&top.line)?;
        count += 1;
        let run = top.run;
        // Runs repeat records (a word count's map output is `word\t1` over
        // and over): a record equal to the one just emitted goes out at
        // once, without a trip through the heap. Equal lines from other
        // runs may then come after it rather than before, which changes
        // nothing in the output.
        let mut more = next_record(&mut runs[run], &mut next)?;
        while more && next == top.line {
            emit(&next)?;
            count += 1;
            more = next_record(&mut runs[run], &mut next)?;
        }
        if more {
            std::mem::swap(&mut top.line, &mut next);
            top.fields = key.fields(&top.line);
        } else {
            PeekMut::pop(top);
        }
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merge_memory_is_bounded_whatever_the_number_of_runs() {
        assert_eq!(run_buffer(1), 256 << 10);
        assert_eq!(run_buffer(128), 256 << 10);
        for runs in [129, 1000, 2048] {
            assert!(runs * run_buffer(runs) <= MERGE_MEMORY, "{runs} runs");
        }
        assert_eq!(run_buffer(100_000), 16 << 10);
    }

    /// Merges runs given as bytes; returns the record count and output.
    fn merged(runs: &[&[u8]]) -> (u64, Vec<u8>) {
        let runs: Vec<Run> = runs
            .iter()
            .map(|r| Box::new(io::Cursor::new(r.to_vec())) as Run)
            .collect();
        let mut out = Vec::new();
        let n = merge(KeySpec::default(), runs, |l| {
            out.extend_from_slice(l);
            out.push(b'\n');
            Ok(())
        })
        .unwrap();
        (n, out)
    }

    #[test]
    fn repeated_records_keep_the_order() {
        let (n, out) = merged(&[
            b"a\t1\na\t1\na\t1\nb\t1\nb\t1\nc\n",
            b"a\t0\na\t1\nb\t1\nb\t2\nb\t2\n",
            b"a\t1\na\t1\nb\t0\nc\nc",
        ]);
        assert_eq!(n, 16);
        assert_eq!(
            out,
            b"a\t0\na\t1\na\t1\na\t1\na\t1\na\t1\na\t1\nb\t0\nb\t1\nb\t1\nb\t1\nb\t2\nb\t2\nc\nc\nc\n"
        );
    }

    #[test]
    fn merges_in_key_value_order() {
        let (n, out) = merged(&[b"a\t1\nc\t1\n", b"a\t0\nb\t5\nd\t0\n", b"", b"b\t4\nz"]);
        assert_eq!(n, 7);
        assert_eq!(out, b"a\t0\na\t1\nb\t4\nb\t5\nc\t1\nd\t0\nz\n");
    }
}
