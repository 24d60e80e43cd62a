//! `--total-order`: the cut points between partitions, picked from a
//! sample of the mapper's output before the job runs
//! (docs/contracts.md §2).
//!
//! The cut points must be ranks of *map output*, which only the mapper
//! makes: so gmr reads a bounded sample of the input, [`sample_bytes`]
//! (from 1 to 8 MiB, by R) in [`WINDOWS`] windows spread evenly over the input
//! files (not over the splits, so that `--split-size` changes nothing),
//! runs the mapper on it once, and cuts the ranks of what it printed, in
//! order, into R ranges of about equal bytes: parts of about equal size. A compressed file cannot be read from the middle:
//! its share of the sample comes from its start. The cut points only
//! balance the parts: whatever they are, the parts are in order and hold
//! every record.

use crate::data::record::LineSplitter;
use crate::data::split::{self, Split};
use crate::error::{Error, Result};
use crate::store::workdir::WorkDir;
use crate::task::job::Job;
use crate::task::program::Context;
use std::io::{self, Write};

/// Input bytes the sample reads per partition, and at least and at most:
/// a cut's error shrinks with the sample lines per range (about 1 in
/// sqrt(n)), so two parts are as well balanced by 1 MiB (some 10,000 lines
/// of text, 5,000 a part) as 128 parts by 8 MiB, and sampling no more
/// than that keeps it a few milliseconds.
const PER_PARTITION: u64 = 256 << 10;
const MIN_SAMPLE: u64 = 1 << 20;
/// See [`PER_PARTITION`].
pub(crate) const MAX_SAMPLE: u64 = 8 << 20;

/// The input bytes the sample of a job of `reducers` partitions reads.
pub(crate) fn sample_bytes(reducers: usize) -> u64 {
    (reducers as u64 * PER_PARTITION).clamp(MIN_SAMPLE, MAX_SAMPLE)
}
/// Windows of the input the sample reads.
pub(crate) const WINDOWS: u64 = 256;
/// Ranks kept at most: mapper output beyond them is thinned, evenly.
const MAX_RANKS: usize = 1 << 20;

/// The cut points of `job`'s total order among its R partitions: at most
/// R - 1 ranks, ascending. The mapper's stderr goes to `sample.log` in
/// `wd`.
pub(crate) fn cut_points(job: &Job, wd: &WorkDir) -> Result<Vec<Vec<u8>>> {
    let reducers = job.spec.reducers as usize;
    if reducers < 2 {
        return Ok(Vec::new());
    }
    let eol = job.spec.key.eol;
    let sample = read_sample(
        &job.spec.splits,
        &job.spec.inputs,
        sample_bytes(reducers),
        eol,
    )?;
    let mut env = job.spec.env.clone();
    env.push(("GMR_TASK".into(), "sample".into()));
    let log = wd.sample_log_path();
    let ctx = Context {
        role: "mapper",
        cwd: &job.spec.cwd,
        env: &env,
        log: &log,
        key: job.spec.key,
        nofile: None,
        ok_exit: &job.spec.ok_exit,
        timeout: job.spec.task_timeout(),
        memory: job.spec.task_memory,
        stop_feed: false,
    };
    // Each line's rank and its bytes (with its newline).
    let mut ranks: Vec<(Vec<u8>, u64)> = Vec::new();
    let mut lines = LineSplitter::with_max(job.spec.max_record_len()).ending(eol);
    let mut encoded = Vec::new();
    // Every `stride`-th line is kept, doubling as the ranks fill up.
    let (mut stride, mut seen) = (1usize, 0usize);
    let mut take = |line: &[u8]| -> io::Result<()> {
        seen += 1;
        if seen % stride != 0 {
            return Ok(());
        }
        encoded.clear();
        if let Some(keys) = job.order.sort_keys() {
            keys.encode(line, &mut encoded);
        }
        let key = job.spec.key.key(line);
        ranks.push((
            job.order.rank(key, &encoded).to_vec(),
            line.len() as u64 + 1,
        ));
        if ranks.len() == MAX_RANKS {
            let mut i = 0;
            ranks.retain(|_| {
                i += 1;
                i % 2 == 0
            });
            stride *= 2;
        }
        Ok(())
    };
    let feed = |w: &mut dyn Write| w.write_all(&sample);
    job.mapper
        .run(&ctx, feed, |chunk| lines.feed(chunk, &mut take))
        .map_err(|e| {
            Error::job(format!(
                "--total-order: the mapper failed on the sample that picks the cut points ({e}); its stderr is in {}",
                log.display()
            ))
        })?;
    lines
        .finish(&mut take)
        .map_err(|e| Error::job(format!("sampling for --total-order: {e}")))?;
    ranks.sort_unstable();
    Ok(cuts_by_bytes(&ranks, reducers))
}

/// The ranks that cut `ranks` (sorted, with their bytes) into `reducers`
/// ranges of about equal bytes: cut `i` is the rank at which the bytes so
/// far reach `i / reducers` of all. A rank that alone holds more than a
/// range's share may end several ranges: the parts between are empty.
fn cuts_by_bytes(ranks: &[(Vec<u8>, u64)], reducers: usize) -> Vec<Vec<u8>> {
    let total: u64 = ranks.iter().map(|r| r.1).sum();
    let mut cuts = Vec::with_capacity(reducers - 1);
    let mut sum = 0u64;
    let mut i = 1;
    for (rank, bytes) in ranks {
        sum += bytes;
        while i < reducers && sum as u128 * reducers as u128 >= total as u128 * i as u128 {
            cuts.push(rank.clone());
            i += 1;
        }
    }
    cuts
}

/// Whole lines from [`WINDOWS`] windows spread over the input files,
/// `bytes` at most; all of the input when it is smaller.
fn read_sample(
    splits: &[Split],
    stamps: &[split::InputStamp],
    bytes: u64,
    eol: u8,
) -> Result<Vec<u8>> {
    // Each file once, whole, in the order of the splits.
    let mut files: Vec<Split> = Vec::new();
    let mut seen: std::collections::HashMap<&std::path::Path, usize> = Default::default();
    for piece in splits.iter().flat_map(Split::pieces) {
        match seen.get(piece.path.as_path()) {
            Some(&i) => {
                let f = &mut files[i];
                f.start = f.start.min(piece.start);
                f.end = f.end.max(piece.end);
            }
            None => {
                seen.insert(&piece.path, files.len());
                files.push(Split {
                    more: Vec::new(),
                    ..piece.clone()
                });
            }
        }
    }
    let total: u64 = files.iter().map(|f| f.end - f.start).sum();
    let window = (bytes / WINDOWS).max(1);
    let step = (total / WINDOWS).max(window);
    let mut sample = Vec::new();
    let mut at = 0u64;
    for file in &files {
        let len = file.end - file.start;
        // The windows that start in this file.
        let first = at.div_ceil(step) * step;
        let starts: Vec<u64> = (first..at + len)
            .step_by(step as usize)
            .map(|s| s - at)
            .collect();
        at += len;
        if starts.is_empty() {
            continue;
        }
        if file.codec.is_some() {
            // From its start: as many windows' worth as fall in it.
            let want = window * starts.len() as u64;
            let bytes = read_window(file, file.start, want, stamps, eol)?;
            push_lines(&mut sample, &bytes, true, eol);
            continue;
        }
        for s in starts {
            let from = file.start + s;
            let piece = Split {
                start: from,
                end: (from + window).min(file.end),
                ..file.clone()
            };
            let bytes = read_window(&piece, from, window, stamps, eol)?;
            push_lines(&mut sample, &bytes, from == file.start, eol);
        }
    }
    Ok(sample)
}

/// At most `want` bytes of `piece` from its start.
fn read_window(
    piece: &Split,
    from: u64,
    want: u64,
    stamps: &[split::InputStamp],
    eol: u8,
) -> Result<Vec<u8>> {
    let mut out = Bounded {
        bytes: Vec::new(),
        want: want as usize,
    };
    match split::feed(piece, stamps, eol, &mut out) {
        Ok(_) => {}
        // The window is full: the rest is not needed.
        Err(e) if e.kind() == io::ErrorKind::WriteZero && out.bytes.len() >= out.want => {}
        Err(e) => {
            return Err(Error::io(
                &format!("cannot sample byte {from} of"),
                &piece.path,
                e,
            ));
        }
    }
    out.bytes.truncate(out.want);
    Ok(out.bytes)
}

/// Appends the whole lines of `bytes`: a line cut at either end is
/// dropped, except at the start of a file (`at_start`), where lines start.
fn push_lines(sample: &mut Vec<u8>, bytes: &[u8], at_start: bool, eol: u8) {
    let begin = match at_start {
        true => 0,
        false => memchr::memchr(eol, bytes).map_or(bytes.len(), |i| i + 1),
    };
    let end = memchr::memrchr(eol, bytes).map_or(0, |i| i + 1);
    if begin < end {
        sample.extend_from_slice(&bytes[begin..end]);
    }
}

/// A writer that takes `want` bytes, then refuses more.
struct Bounded {
    bytes: Vec<u8>,
    want: usize,
}

impl Write for Bounded {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.bytes.len() >= self.want {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "sample window full",
            ));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_split_bytes_evenly() {
        let ranks: Vec<(Vec<u8>, u64)> = (0..100u8).map(|i| (vec![i], 1)).collect();
        let cuts = cuts_by_bytes(&ranks, 4);
        assert_eq!(cuts, vec![vec![24], vec![49], vec![74]]);
        // One rank holding half of the bytes fills a part alone; the last
        // part is empty.
        let mut skewed: Vec<(Vec<u8>, u64)> = (0..50u8).map(|i| (vec![i], 1)).collect();
        skewed.push((vec![50], 50));
        let cuts = cuts_by_bytes(&skewed, 4);
        assert_eq!(cuts, vec![vec![24], vec![49], vec![50]]);
        assert!(cuts_by_bytes(&[], 3).is_empty());
    }

    #[test]
    fn windows_keep_whole_lines() {
        let mut s = Vec::new();
        push_lines(&mut s, b"ab\ncd\nef", false, b'\n');
        push_lines(&mut s, b"gh\nij", true, b'\n');
        assert_eq!(s, b"cd\ngh\n");
    }
}
