//! k-way merge of sorted runs, streaming: memory is one buffered reader and
//! one record per run, whatever the runs' sizes (docs/contracts.md §6).
//!
//! A run is a segment of a runs file (see [`crate::data::sort::Segment`]) or a
//! whole merged partition; each holds `\n`-terminated records already in
//! (key, value, line) order, as lines or counted (`N<SP>line`: N copies of
//! the line, [`Segment::text_bytes`]).
//!
//! A merge holds one open file per run. When there are more runs than the
//! open-file limit allows (the fan-in, decided once in
//! [`crate::store::resources`]), [`narrow`] first merges groups of them into
//! intermediate files, as many passes as it takes; [`open_narrowed`] does
//! both steps for a merge.

use crate::data::linebuf::{LineBlock, RunWriter};
use crate::data::order::Order;
use crate::data::record::{Fields, compare, key_prefix};
use crate::data::sort::Segment;
use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

/// A sorted run to merge: its bytes, and the size of its read buffer.
pub(crate) struct Run {
    src: Box<dyn Read + Send>,
    buffer: usize,
    /// Whether its records are counted (`N<SP>line`).
    counted: bool,
}

impl Run {
    /// A run read from `src` through a buffer of `buffer` bytes (it grows
    /// for a record longer than that).
    pub(crate) fn new(src: impl Read + Send + 'static, buffer: usize) -> Run {
        Run {
            src: Box::new(src),
            buffer: buffer.max(16),
            counted: false,
        }
    }

    /// The same run, its records counted (`N<SP>line`) when `counted`.
    pub(crate) fn counted(self, counted: bool) -> Run {
        Run { counted, ..self }
    }
}

/// Read buffers of one merge, all runs together: a merge's memory must not
/// grow with the number of map tasks (that is, with the input).
const MERGE_MEMORY: usize = 32 << 20;

/// The read buffer of each of `runs` runs merged at once: 256 KiB for
/// sequential reads, less when there are more than 128 runs.
pub(crate) fn run_buffer(runs: usize) -> usize {
    (MERGE_MEMORY / runs.max(1)).clamp(16 << 10, 256 << 10)
}

/// Opens one segment of a runs file, with a read buffer of `buffer` bytes.
pub(crate) fn open_segment(path: &Path, seg: Segment, buffer: usize) -> io::Result<Run> {
    let mut file = File::open(path).map_err(too_many_files)?;
    file.seek(SeekFrom::Start(seg.start))?;
    Ok(Run::new(file.take(seg.end - seg.start), buffer).counted(seg.text_bytes.is_some()))
}

/// Opens a whole file as one run.
pub(crate) fn open_file(path: &Path) -> io::Result<Run> {
    Ok(Run::new(
        File::open(path).map_err(too_many_files)?,
        run_buffer(1),
    ))
}

/// A sorted run on disk: a segment of a file.
#[derive(Debug, Clone)]
pub(crate) struct RunFile {
    /// The file.
    pub(crate) path: PathBuf,
    /// The run's bytes in it.
    pub(crate) segment: Segment,
}

impl RunFile {
    /// Opens the run with a read buffer of `buffer` bytes.
    pub(crate) fn open(&self, buffer: usize) -> io::Result<Run> {
        open_segment(&self.path, self.segment, buffer)
    }
}

/// Merges runs into files `dir/{name}-{n}` until at most `fan_in` are
/// left, and returns those. Each step merges the smallest runs, as few as
/// bring the count down to `fan_in` (at most `fan_in` at once), so that
/// the least data is written again. A file made here is removed once
/// merged again; the caller removes the files it is returned. Equal
/// records are byte-equal, so the grouping changes nothing in the output.
pub(crate) fn narrow(
    order: &Order,
    mut runs: Vec<RunFile>,
    fan_in: usize,
    dir: &Path,
    name: &str,
) -> io::Result<Vec<RunFile>> {
    let fan_in = fan_in.max(2);
    let mut made: Vec<PathBuf> = Vec::new();
    while runs.len() > fan_in {
        let take = (runs.len() - fan_in + 1).min(fan_in);
        runs.sort_by_key(|r| r.segment.end - r.segment.start);
        let group: Vec<RunFile> = runs.drain(..take).collect();
        let path = dir.join(format!("{name}-{}", made.len()));
        let buffer = run_buffer(group.len());
        let opened = group
            .iter()
            .map(|r| r.open(buffer))
            .collect::<io::Result<Vec<Run>>>()?;
        let segment = merge_runs(order, opened, crate::files::create_new(&path)?, 0)?;
        for r in group.iter().filter(|r| made.contains(&r.path)) {
            let _ = std::fs::remove_file(&r.path);
        }
        made.push(path.clone());
        runs.push(RunFile { path, segment });
    }
    Ok(runs)
}

/// The runs of one merge, opened, and the intermediate files made to
/// narrow them down.
pub(crate) struct Opened {
    /// The runs to merge.
    pub(crate) runs: Vec<Run>,
    /// The intermediate files [`narrow`] made in the merge's directory: the
    /// caller removes them (the open runs keep reading them).
    pub(crate) intermediate: Vec<PathBuf>,
}

/// Opens `files` for one merge: narrowed first ([`narrow`], into
/// `dir/{name}-N`) when there are more than `fan_in`, each with its share
/// of the merge's read buffers.
pub(crate) fn open_narrowed(
    order: &Order,
    files: Vec<RunFile>,
    fan_in: usize,
    dir: &Path,
    name: &str,
) -> io::Result<Opened> {
    let narrowed = files.len() > fan_in;
    let given: std::collections::HashSet<PathBuf> = match narrowed {
        true => files.iter().map(|f| f.path.clone()).collect(),
        false => Default::default(),
    };
    let files = match narrowed {
        true => narrow(order, files, fan_in, dir, name)?,
        false => files,
    };
    let buffer = run_buffer(files.len());
    let runs = files
        .iter()
        .map(|f| {
            f.open(buffer)
                .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", f.path.display())))
        })
        .collect::<io::Result<Vec<Run>>>()?;
    let intermediate = files
        .into_iter()
        .map(|f| f.path)
        .filter(|p| narrowed && !given.contains(p))
        .collect();
    Ok(Opened { runs, intermediate })
}

/// A merge holds one open file per run: say what to do when that is more
/// than the process may open.
fn too_many_files(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::EMFILE) {
        io::Error::new(
            e.kind(),
            format!(
                "{e}: a merge could not open its runs (even a few at a time); raise `ulimit -n`"
            ),
        )
    } else {
        e
    }
}

/// What reading the next record of a run found.
#[derive(PartialEq, Eq)]
enum Next {
    /// A record byte-equal to the one before it.
    Same,
    /// Another record.
    Other,
    /// The end of the run.
    End,
}

/// A run being read: records are cut from its buffer in place, so the
/// current record is a slice of the buffer, valid until the next read.
struct Reader {
    src: Box<dyn Read + Send>,
    buf: Vec<u8>,
    /// Bytes read but not yet cut into records: `buf[start..end]`.
    start: usize,
    end: usize,
    /// The current record: `buf[rec.0..rec.1]`.
    rec: (usize, usize),
    /// Whether records are counted (`N<SP>line`).
    counted: bool,
    /// How many copies of it the current record stands for.
    copies: u64,
    fields: Fields,
    /// With sort keys, the record's encoding ([`crate::data::sortkey`]).
    encoded: Vec<u8>,
    /// The first eight bytes of the key (or the encoding), zero-padded:
    /// most comparisons end here.
    prefix: u64,
    /// Whether `rec` holds a record yet.
    has_prev: bool,
    done: bool,
}

impl Reader {
    fn new(run: Run) -> Reader {
        Reader {
            src: run.src,
            buf: vec![0; run.buffer],
            start: 0,
            end: 0,
            rec: (0, 0),
            counted: run.counted,
            copies: 1,
            fields: Fields::default(),
            encoded: Vec::new(),
            prefix: 0,
            has_prev: false,
            done: false,
        }
    }

    fn record(&self) -> &[u8] {
        &self.buf[self.rec.0..self.rec.1]
    }

    /// Moves to the next record.
    fn advance(&mut self, order: &Order) -> io::Result<Next> {
        let prev = self.rec;
        let mut moved = false;
        let (start, stop) = loop {
            if let Some(i) = memchr::memchr(order.key.eol, &self.buf[self.start..self.end]) {
                break (self.start, self.start + i);
            }
            // No whole record left: keep the partial one, read more.
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
                moved = true;
            }
            if self.end == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = loop {
                match self.src.read(&mut self.buf[self.end..]) {
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    r => break r?,
                }
            };
            if n == 0 {
                if self.start == self.end {
                    self.done = true;
                    return Ok(Next::End);
                }
                // A last record without its newline.
                break (self.start, self.end);
            }
            self.end += n;
        };
        self.start = (stop + 1).min(self.end);
        let start = match self.counted {
            true => self.count(start, stop)?,
            false => start,
        };
        self.rec = (start, stop);
        // Still in place, the record before can be compared for free.
        if self.has_prev && !moved && self.buf[prev.0..prev.1] == self.buf[start..stop] {
            return Ok(Next::Same);
        }
        self.has_prev = true;
        let line = &self.buf[start..stop];
        if let Some(keys) = order.sort_keys() {
            self.encoded.clear();
            keys.encode(line, &mut self.encoded);
            self.prefix = key_prefix(&self.encoded);
        } else {
            self.fields = order.key.fields(line);
            self.prefix = key_prefix(&line[..self.fields.key_end]);
        }
        Ok(Next::Other)
    }

    /// Reads the count of the counted record `buf[start..stop]` into
    /// `copies`; returns where its line starts.
    fn count(&mut self, start: usize, stop: usize) -> io::Result<usize> {
        let mut copies = 0u64;
        for (i, &b) in self.buf[start..stop].iter().enumerate() {
            match b {
                b'0'..=b'9' => {
                    match copies
                        .checked_mul(10)
                        .and_then(|c| c.checked_add(u64::from(b - b'0')))
                    {
                        Some(c) => copies = c,
                        None => break,
                    }
                }
                b' ' if copies > 0 => {
                    self.copies = copies;
                    return Ok(start + i + 1);
                }
                _ => break,
            }
        }
        Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "a record of a counted run has no count (the runs file is damaged)",
        ))
    }
}

/// Whether run `a`'s record goes before run `b`'s: record order (by sort
/// keys then line when `encoded`), then run order; an ended run goes last.
#[inline]
fn before(readers: &[Reader], a: usize, b: usize, encoded: bool) -> bool {
    let (ra, rb) = (&readers[a], &readers[b]);
    if ra.done || rb.done {
        return rb.done && !ra.done;
    }
    match ra.prefix.cmp(&rb.prefix) {
        Ordering::Equal if encoded => {
            (ra.encoded.cmp(&rb.encoded))
                .then_with(|| ra.record().cmp(rb.record()))
                .then(a.cmp(&b))
                == Ordering::Less
        }
        Ordering::Equal => {
            compare(ra.record(), ra.fields, rb.record(), rb.fields).then(a.cmp(&b))
                == Ordering::Less
        }
        other => other == Ordering::Less,
    }
}

/// Merges `runs` and calls `emit` with each record (without `\n`) in order,
/// and how many copies of it to make (more than 1 from counted runs).
/// Returns the number of records, copies counted.
///
/// A loser tree picks the next record: internal node `n` (1 ≤ n < k) holds
/// the run that lost the match played there, leaf `k + i` is run `i`, and
/// only the path from the winner's leaf is replayed when it moves on.
pub(crate) fn merge(
    order: &Order,
    runs: Vec<Run>,
    mut emit: impl FnMut(&[u8], u64) -> io::Result<()>,
) -> io::Result<u64> {
    let k = runs.len();
    if k == 0 {
        return Ok(0);
    }
    let mut readers: Vec<Reader> = runs.into_iter().map(Reader::new).collect();
    for r in &mut readers {
        r.advance(order)?;
    }
    let encoded = order.sort_keys().is_some();
    let mut losers = vec![0usize; k];
    let mut winners = vec![0usize; 2 * k];
    for (i, w) in winners[k..].iter_mut().enumerate() {
        *w = i;
    }
    for n in (1..k).rev() {
        let (a, b) = (winners[2 * n], winners[2 * n + 1]);
        (winners[n], losers[n]) = if before(&readers, a, b, encoded) {
            (a, b)
        } else {
            (b, a)
        };
    }
    let mut winner = if k == 1 { 0 } else { winners[1] };
    let mut count = 0u64;
    while !readers[winner].done {
        let r = &readers[winner];
        emit(r.record(), r.copies)?;
        count += r.copies;
        // Runs repeat records (a word count's map output is `word\t1` over
        // and over): a record equal to the one just emitted goes out at
        // once, without a trip through the tree. Equal lines from other
        // runs may then come after it rather than before, which changes
        // nothing in the output.
        while readers[winner].advance(order)? == Next::Same {
            let r = &readers[winner];
            emit(r.record(), r.copies)?;
            count += r.copies;
        }
        let mut n = (winner + k) / 2;
        while n >= 1 {
            if before(&readers, losers[n], winner, encoded) {
                std::mem::swap(&mut losers[n], &mut winner);
            }
            n /= 2;
        }
    }
    Ok(count)
}

/// Merges `runs` into `out` as lines (ended by the order's `eol`: `\n`,
/// or NUL with `-z`); returns the number
/// of records and of bytes written. `out` is written in blocks of `block`
/// bytes ([`crate::data::linebuf::BLOCK`] for a file,
/// [`crate::data::linebuf::PIPE_BLOCK`] for a command's input) and needs no
/// buffer of its own.
pub(crate) fn merge_into(
    order: &Order,
    runs: Vec<Run>,
    out: impl Write,
    block: usize,
) -> io::Result<(u64, u64)> {
    let mut bytes = 0u64;
    let mut block = LineBlock::with_size(out, block).ending(order.key.eol);
    let records = merge(order, runs, |line, copies| {
        bytes += (line.len() as u64 + 1) * copies;
        if copies == 1 {
            return block.line(line);
        }
        (0..copies).try_for_each(|_| block.line(line))
    })?;
    block.flush()?;
    Ok((records, bytes))
}

/// Merges `runs` into `out` as one more run, starting at byte `start` of
/// its file: counted when any of them is (copies of one line that meet
/// are counted once), else lines. Returns its segment.
pub(crate) fn merge_runs(
    order: &Order,
    runs: Vec<Run>,
    out: impl Write,
    start: u64,
) -> io::Result<Segment> {
    let counted = runs.iter().any(|r| r.counted);
    let mut out = RunWriter::new(LineBlock::new(out).ending(order.key.eol), counted);
    let mut text = 0u64;
    let records = merge(order, runs, |line, copies| {
        text += (line.len() as u64 + 1) * copies;
        out.push(line, copies)
    })?;
    let written = out.written()?;
    out.finish()?;
    Ok(Segment {
        start,
        end: start + written,
        records,
        text_bytes: counted.then_some(text),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::record::KeySpec;

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
            .map(|r| Run::new(io::Cursor::new(r.to_vec()), 4096))
            .collect();
        let mut out = Vec::new();
        let n = merge(&Order::new(KeySpec::default()), runs, |l, copies| {
            for _ in 0..copies {
                out.extend_from_slice(l);
                out.push(b'\n');
            }
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
        // 13 runs, 3 at a time: runs made by one step are merged again by
        // later ones, and must go; the inputs must stay.
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
                    text_bytes: None,
                },
            });
            all.push(text);
        }
        let refs: Vec<&[u8]> = all.iter().map(|t| t.as_bytes()).collect();
        let (_, want) = merged(&refs);
        let left = narrow(
            &Order::new(KeySpec::default()),
            files.clone(),
            3,
            dir.path(),
            "m",
        )
        .unwrap();
        assert!(left.len() <= 3, "{} runs left", left.len());
        let runs = left.iter().map(|f| f.open(4096).unwrap()).collect();
        let mut got = Vec::new();
        merge(&Order::new(KeySpec::default()), runs, |l, copies| {
            for _ in 0..copies {
                got.extend_from_slice(l);
                got.push(b'\n');
            }
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

    /// Random runs of 1 to 9 records sets, with empty lines, repeats, keys
    /// that share prefixes, lines longer than the read buffer and a last
    /// line without newline, through buffers from tiny to roomy: the merge
    /// is the sorted union.
    #[test]
    fn merges_random_runs_through_any_buffer() {
        let spec = KeySpec::default();
        let mut state = 11u64;
        let mut next = move |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let atoms: [&[u8]; 7] = [b"", b"a", b"abcdefgh", b"abcdefghi", b"\t", b"z", b"x\x00"];
        for round in 0..60 {
            let k = 1 + round % 9;
            let buffer = [16, 17, 64, 4096][round % 4];
            let mut all: Vec<Vec<u8>> = Vec::new();
            let mut texts = Vec::new();
            for _ in 0..k {
                let mut run: Vec<Vec<u8>> = (0..next(40))
                    .map(|_| {
                        let mut l: Vec<u8> = (0..next(4))
                            .flat_map(|_| atoms[next(7) as usize].to_vec())
                            .collect();
                        if next(50) == 0 {
                            l.extend(std::iter::repeat_n(b'q', 100));
                        }
                        l
                    })
                    .collect();
                run.sort_by(|a, b| compare(a, spec.fields(a), b, spec.fields(b)));
                let mut text: Vec<u8> = run.iter().flat_map(|l| [&l[..], b"\n"].concat()).collect();
                // A last line may lack its newline (not an empty one: that
                // would be no line at all).
                if run.last().is_some_and(|l| !l.is_empty()) && next(2) == 0 {
                    text.pop();
                }
                all.extend(run);
                texts.push(text);
            }
            all.sort_by(|a, b| compare(a, spec.fields(a), b, spec.fields(b)));
            let want: Vec<u8> = all.iter().flat_map(|l| [&l[..], b"\n"].concat()).collect();
            let runs = texts
                .into_iter()
                .map(|t| Run::new(io::Cursor::new(t), buffer))
                .collect();
            let mut got = Vec::new();
            let n = merge(&Order::new(spec), runs, |l, copies| {
                for _ in 0..copies {
                    got.extend_from_slice(l);
                    got.push(b'\n');
                }
                Ok(())
            })
            .unwrap();
            assert_eq!(n as usize, all.len(), "round {round}");
            assert!(got == want, "round {round}: k {k}, buffer {buffer}");
        }
    }

    /// Counted runs (`N<SP>line`) merge with runs of lines as the copies
    /// they stand for; merged as a run, copies that meet are counted once.
    #[test]
    fn counted_runs_merge_as_their_copies() {
        let order = Order::new(KeySpec::default());
        let runs = || {
            vec![
                Run::new(io::Cursor::new(b"3 a\t1\n1 b\t1\n".to_vec()), 16).counted(true),
                Run::new(io::Cursor::new(b"a\t1\nc\n".to_vec()), 16),
                Run::new(io::Cursor::new(b"1 \n2 a\t1\n12 c\n".to_vec()), 16).counted(true),
            ]
        };
        let mut lines = Vec::new();
        let n = merge(&order, runs(), |l, copies| {
            for _ in 0..copies {
                lines.extend_from_slice(l);
                lines.push(b'\n');
            }
            Ok(())
        })
        .unwrap();
        let want = [
            &b"\n"[..],
            &b"a\t1\n".repeat(6),
            b"b\t1\n",
            &b"c\n".repeat(13),
        ]
        .concat();
        assert_eq!((n, &lines), (21, &want));
        let mut out = b"head".to_vec();
        let seg = merge_runs(&order, runs(), &mut out, 4).unwrap();
        assert_eq!(&out[4..], b"1 \n6 a\t1\n1 b\t1\n13 c\n");
        assert_eq!(
            seg,
            Segment {
                start: 4,
                end: out.len() as u64,
                records: 21,
                text_bytes: Some(want.len() as u64),
            }
        );
        // Runs of lines alone stay lines.
        let mut out = Vec::new();
        let seg = merge_runs(&order, vec![runs().swap_remove(1)], &mut out, 0).unwrap();
        assert_eq!((&out[..], seg.text_bytes), (&b"a\t1\nc\n"[..], None));
        // A record without its count is an error, not a line.
        for damaged in [&b"a\t1\n"[..], b"x a\n", b"0 a\n", b"12"] {
            let run = Run::new(io::Cursor::new(damaged.to_vec()), 16).counted(true);
            let err = merge(&order, vec![run], |_, _| Ok(())).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidData, "{damaged:?}");
        }
    }

    #[test]
    fn merges_in_key_value_order() {
        let (n, out) = merged(&[b"a\t1\nc\t1\n", b"a\t0\nb\t5\nd\t0\n", b"", b"b\t4\nz"]);
        assert_eq!(n, 7);
        assert_eq!(out, b"a\t0\na\t1\nb\t4\nb\t5\nc\t1\nd\t0\nz\n");
    }
}
