//! k-way merge of sorted runs, streaming: memory is one buffered reader and
//! one record per run, whatever the runs' sizes (DESIGN.md §6).
//!
//! A run is a segment of a runs file (see [`crate::sort::Segment`]) or a
//! whole merged partition; each holds `\n`-terminated records already in
//! (key, value, line) order.
//!
//! A merge holds one open file per run. When there are more runs than the
//! open-file limit allows ([`fan_in`]), [`narrow`] first merges groups of
//! them into intermediate files, as many passes as it takes.

use crate::linebuf::LineBlock;
use crate::record::{Fields, KeySpec, compare};
use crate::sort::Segment;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::collections::binary_heap::PeekMut;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

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

/// A sorted run on disk: a segment of a file.
#[derive(Debug, Clone)]
pub struct RunFile {
    /// The file.
    pub path: PathBuf,
    /// The run's bytes in it.
    pub segment: Segment,
}

impl RunFile {
    /// Opens the run with a read buffer of `buffer` bytes.
    pub fn open(&self, buffer: usize) -> io::Result<Run> {
        open_segment(&self.path, self.segment, buffer)
    }
}

/// Raises this process's soft limit on open files to its hard limit, so
/// that merges of many runs need fewer passes. Failure changes nothing.
pub fn raise_open_file_limit() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// How many runs one merge may open at once: the open-file limit, less a
/// margin for everything else, shared by the tasks that may run at once in
/// this process (one per core).
pub fn fan_in() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct.
    let limit = if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    };
    let tasks = std::thread::available_parallelism().map_or(1, |n| n.get());
    (limit.saturating_sub(32) / tasks).clamp(4, 1024)
}

/// Merges groups of `fan_in` runs into files `dir/{name}-{pass}-{group}`
/// until at most `fan_in` runs are left, and returns those. Files of a pass
/// are removed once the next pass has merged them; the caller removes the
/// files it is returned.
/// Equal records are byte-equal, so grouping changes nothing in the output.
pub fn narrow(
    key: KeySpec,
    mut runs: Vec<RunFile>,
    fan_in: usize,
    dir: &Path,
    name: &str,
) -> io::Result<Vec<RunFile>> {
    let fan_in = fan_in.max(2);
    let mut made: Vec<PathBuf> = Vec::new();
    let mut pass = 0;
    while runs.len() > fan_in {
        let mut next = Vec::with_capacity(runs.len().div_ceil(fan_in));
        for (g, group) in runs.chunks(fan_in).enumerate() {
            if let [one] = group {
                next.push(one.clone());
                continue;
            }
            let path = dir.join(format!("{name}-{pass}-{g:05}"));
            let mut out = File::create(&path)?;
            let buffer = run_buffer(group.len());
            let opened = group
                .iter()
                .map(|r| r.open(buffer))
                .collect::<io::Result<Vec<Run>>>()?;
            let (records, end) = merge_into(key, opened, &mut out)?;
            made.push(path.clone());
            next.push(RunFile {
                path,
                segment: Segment {
                    start: 0,
                    end,
                    records,
                },
            });
        }
        for r in &runs {
            if made.contains(&r.path) && !next.iter().any(|n| n.path == r.path) {
                let _ = std::fs::remove_file(&r.path);
            }
        }
        runs = next;
        pass += 1;
    }
    Ok(runs)
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

/// Merges `runs` into `out` as `\n`-terminated lines; returns the number
/// of records and of bytes written. `out` is written in large blocks and
/// needs no buffer of its own.
pub fn merge_into(key: KeySpec, runs: Vec<Run>, out: impl Write) -> io::Result<(u64, u64)> {
    let mut bytes = 0u64;
    let mut block = LineBlock::new(out);
    let records = merge(key, runs, |line| {
        bytes += line.len() as u64 + 1;
        block.line(line)
    })?;
    block.flush()?;
    Ok((records, bytes))
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
    fn narrowing_merges_groups_and_keeps_the_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        let mut all = Vec::new();
        // 13 runs, 3 at a time: the 13th is carried through the first pass
        // alone, then merged in the second.
        for i in 0..13u32 {
            let lines: Vec<String> = (0..5)
                .map(|j| format!("k{:02}\t{i}", (j * 7 + i) % 23))
                .collect();
            let mut lines = lines;
            lines.sort_by(|a, b| {
                let (fa, fb) = (
                    KeySpec::default().fields(a.as_bytes()),
                    KeySpec::default().fields(b.as_bytes()),
                );
                compare(a.as_bytes(), fa, b.as_bytes(), fb)
            });
            let text: String = lines.iter().map(|l| format!("{l}\n")).collect();
            // Each run is the second segment of its file.
            let path = dir.path().join(format!("in-{i}"));
            std::fs::write(&path, format!("junk\n{text}")).unwrap();
            files.push(RunFile {
                path,
                segment: Segment {
                    start: 5,
                    end: 5 + text.len() as u64,
                    records: 5,
                },
            });
            all.push(text);
        }
        let refs: Vec<&[u8]> = all.iter().map(|t| t.as_bytes()).collect();
        let (_, want) = merged(&refs);
        let left = narrow(KeySpec::default(), files.clone(), 3, dir.path(), "m").unwrap();
        assert!(left.len() <= 3, "{} runs left", left.len());
        let runs = left.iter().map(|f| f.open(4096).unwrap()).collect();
        let mut got = Vec::new();
        merge(KeySpec::default(), runs, |l| {
            got.extend_from_slice(l);
            got.push(b'\n');
            Ok(())
        })
        .unwrap();
        assert_eq!(got, want);
        // The inputs are untouched; of the intermediate files, only those
        // returned are left.
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.iter().filter(|n| n.starts_with("in-")).count(), 13);
        let mut made: Vec<&String> = names.iter().filter(|n| n.starts_with("m-")).collect();
        made.sort();
        let mut returned: Vec<String> = left
            .iter()
            .map(|f| f.path.file_name().unwrap().to_string_lossy().into_owned())
            .filter(|n| n.starts_with("m-"))
            .collect();
        returned.sort();
        assert_eq!(made, returned.iter().collect::<Vec<_>>());
    }

    #[test]
    fn merges_in_key_value_order() {
        let (n, out) = merged(&[b"a\t1\nc\t1\n", b"a\t0\nb\t5\nd\t0\n", b"", b"b\t4\nz"]);
        assert_eq!(n, 7);
        assert_eq!(out, b"a\t0\na\t1\nb\t4\nb\t5\nc\t1\nd\t0\nz\n");
    }
}
