//! The JSON lines that stages print and read (docs/contracts.md §1): each stage
//! prints what it made, and the next stage reads that on stdin, so stages
//! chain in a shell pipe while the bulk data stays in the work directory.
//!
//! ```text
//! {"type":"split","index":0,"path":"/data/big.txt","start":0,"end":67108911}
//! {"type":"map","workdir":"w","job":"5f0c…","task":"map-00000","records_in":…,"records_out":…,"bytes_out":…}
//! {"type":"partition","workdir":"w","job":"5f0c…","partition":3,"path":"w/shuffle/part-00003","records":…,"bytes":…}
//! ```
//!
//! Split lines carry their `gmr split` run (`plan`: an identity and how
//! many lines it printed) and the size their file had, so that `gmr map`
//! checks them whole ([`check_splits`]): every line of a run present, and
//! each file covered exactly, as no gap and no overlap. Map and partition
//! lines carry the job's identity: a stage refuses lines of another job
//! than the one in its work directory.
//!
//! ```text
//! {"type":"part","partition":3,"path":"out/part-00003","records":…,"bytes":…}
//! ```

use crate::data::split::Split;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};

/// One manifest line.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum Entry {
    /// A split made by `gmr split`.
    Split {
        /// The work directory stdin was spooled to, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        workdir: Option<PathBuf>,
        /// The split's number.
        index: usize,
        /// The split.
        #[serde(flatten)]
        split: Split,
        /// The size the split's file had when it was planned (its `more`
        /// files are whole: each ends at its size).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        size: Option<u64>,
        /// The `gmr split` run that printed the line.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        plan: Option<SplitPlan>,
    },
    /// A committed map task.
    Map {
        /// The job's work directory.
        workdir: PathBuf,
        /// The job's identity.
        job: String,
        /// The task id.
        task: String,
        /// Records the mapper read.
        records_in: u64,
        /// Records written to the runs (after any combiner).
        records_out: u64,
        /// Bytes written.
        bytes_out: u64,
    },
    /// A merged partition made by `gmr shuffle`.
    Partition {
        /// The job's work directory.
        workdir: PathBuf,
        /// The job's identity.
        job: String,
        /// The partition.
        partition: u32,
        /// The merged file.
        path: PathBuf,
        /// Records in it.
        records: u64,
        /// Bytes in it.
        bytes: u64,
    },
    /// A committed output part.
    Part {
        /// The partition (or, map-only, the split).
        partition: u32,
        /// The part file.
        path: PathBuf,
        /// Records in it.
        records: u64,
        /// Bytes in it.
        bytes: u64,
    },
}

/// One `gmr split` run, as each of its lines names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SplitPlan {
    /// A new identity for each run.
    pub(crate) id: String,
    /// How many split lines the run printed.
    pub(crate) splits: usize,
    /// `-z`: the records end in NUL, and the splits were cut after one.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(crate) null: bool,
}

impl Entry {
    /// The job the line belongs to, if it says.
    pub(crate) fn job(&self) -> Option<&str> {
        match self {
            Entry::Map { job, .. } | Entry::Partition { job, .. } => Some(job),
            Entry::Split { .. } | Entry::Part { .. } => None,
        }
    }

    /// The work directory the line names, if any.
    pub(crate) fn workdir(&self) -> Option<&PathBuf> {
        match self {
            Entry::Split { workdir, .. } => workdir.as_ref(),
            Entry::Map { workdir, .. } | Entry::Partition { workdir, .. } => Some(workdir),
            Entry::Part { .. } => None,
        }
    }
}

/// Reads manifest lines from `input` (blank lines skipped).
pub(crate) fn read(input: impl BufRead, stage: &str) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for (n, line) in input.lines().enumerate() {
        let line =
            line.map_err(|e| Error::usage(format!("{stage} cannot read the lines on stdin: {e}")))?;
        if line.trim().is_empty() {
            continue;
        }
        let entry = serde_json::from_str(&line).map_err(|e| {
            Error::usage(format!(
                "line {} of stdin is not a gmr manifest line ({e}); pipe the previous stage's output into {stage}",
                n + 1
            ))
        })?;
        entries.push(entry);
    }
    Ok(entries)
}

/// Checks split lines as a whole, before any task runs: each `gmr split`
/// run's lines are all there, once; a file is in one run's lines only
/// (two runs of one file would read it twice); and within a run, every
/// byte of a file from 0 to its planned size is in the same number of
/// splits (once, or as many times as the file was named). Lines of older
/// versions, without `plan` and `size`, get the checks they allow.
pub(crate) fn check_splits(entries: &[Entry]) -> Result<()> {
    let lines: Vec<(usize, &Split, Option<u64>, Option<&SplitPlan>)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Split {
                index,
                split,
                size,
                plan,
                ..
            } => Some((*index, split, *size, plan.as_ref())),
            _ => None,
        })
        .collect();
    // Each run's lines: all of them, each once.
    let mut runs: HashMap<&str, (usize, Vec<usize>)> = HashMap::new();
    for (index, _, _, plan) in &lines {
        if let Some(plan) = plan {
            let run = runs.entry(&plan.id).or_insert((plan.splits, Vec::new()));
            run.1.push(*index);
        }
    }
    for (splits, indexes) in runs.values_mut() {
        indexes.sort_unstable();
        if let Some(w) = indexes.windows(2).find(|w| w[0] == w[1]) {
            return Err(Error::usage(format!(
                "the split line of index {} of one gmr split run is on stdin twice (its records would be read twice); pipe in each line once",
                w[0]
            )));
        }
        if let Some(&past) = indexes.last().filter(|&&i| i >= *splits) {
            return Err(Error::usage(format!(
                "a split line has index {past}, but its gmr split run printed {splits} lines: the lines were edited; pipe in gmr split's lines as it printed them"
            )));
        }
        // The indexes are distinct and below `splits`: this many are
        // missing; the first few named (found without walking `splits`).
        let count = *splits - indexes.len();
        if count > 0 {
            let mut shown = Vec::new();
            let mut next = 0;
            for &i in indexes.iter().chain(std::iter::once(&*splits)) {
                shown.extend((next..i).take(5 - shown.len()).map(|m| m.to_string()));
                next = i + 1;
                if shown.len() == 5 {
                    break;
                }
            }
            return Err(Error::usage(format!(
                "{count} of the {splits} split lines of one gmr split run {} missing (index{} {}{}): their records would be lost; pipe in all of its lines",
                if count == 1 { "is" } else { "are" },
                if count == 1 { "" } else { "es" },
                shown.join(", "),
                if count > 5 { ", ..." } else { "" },
            )));
        }
    }
    // Each file's byte ranges, by the run that planned them.
    let mut ranges: HashMap<&Path, FileRanges> = HashMap::new();
    for (_, split, size, plan) in &lines {
        let run = plan.map(|p| p.id.as_str());
        for (n, piece) in split.pieces().enumerate() {
            // `more` files are whole.
            let size = if n == 0 { *size } else { Some(piece.end) };
            let file = ranges
                .entry(piece.path.as_path())
                .or_insert((run, size, Vec::new()));
            if file.0 != run {
                return Err(Error::usage(format!(
                    "input {} is in the split lines of two gmr split runs, and its records would be read twice; pipe in one run's lines (to read a file twice, name it twice in one gmr split)",
                    piece.path.display()
                )));
            }
            file.1 = file.1.or(size);
            file.2.push((piece.start, piece.end));
        }
    }
    let mut files: Vec<_> = ranges.into_iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    for (path, (_, size, ranges)) in files {
        check_cover(path, size, &ranges)?;
    }
    Ok(())
}

/// A file's place in the split lines: the run that planned it, its planned
/// size, and its byte ranges.
type FileRanges<'a> = (Option<&'a str>, Option<u64>, Vec<(u64, u64)>);

/// Checks that `ranges` cover every byte of `path` from 0 to `size` (or to
/// their end, size unknown) the same number of times.
fn check_cover(path: &Path, size: Option<u64>, ranges: &[(u64, u64)]) -> Result<()> {
    // Depth of cover between the points where it changes.
    let mut events: Vec<(u64, i64)> = Vec::with_capacity(ranges.len() * 2);
    for &(start, end) in ranges {
        if start < end {
            events.push((start, 1));
            events.push((end, -1));
        }
    }
    let end = size.unwrap_or_else(|| events.iter().map(|e| e.0).max().unwrap_or(0));
    events.push((0, 0));
    events.push((end, 0));
    events.sort_unstable();
    let mut depth = 0i64;
    let mut want = None;
    let mut at = 0u64;
    for (pos, step) in events {
        if pos > at && at < end {
            let upto = pos.min(end);
            let bad = match want {
                _ if depth == 0 => Some("in no split line: a line is missing"),
                None => {
                    want = Some(depth);
                    None
                }
                Some(w) if depth > w => Some("in more split lines than the rest of the file"),
                Some(w) if depth < w => {
                    Some("in fewer split lines than the rest of the file: a line is missing")
                }
                _ => None,
            };
            if let Some(why) = bad {
                return Err(Error::usage(format!(
                    "bytes {at}..{upto} of input {} are {why}; pipe in gmr split's lines as it printed them",
                    path.display()
                )));
            }
        }
        if pos > end && depth > 0 {
            return Err(Error::usage(format!(
                "the split lines of input {} reach byte {pos}, past its size when it was split ({end}); run gmr split again",
                path.display()
            )));
        }
        at = at.max(pos);
        depth += step;
    }
    Ok(())
}

/// Writes manifest lines to `out`.
pub(crate) fn write(out: &mut impl Write, entries: &[Entry]) -> io::Result<()> {
    for e in entries {
        serde_json::to_writer(&mut *out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_round_trip() {
        let entries = vec![
            Entry::Split {
                workdir: None,
                index: 0,
                split: Split {
                    path: "/a".into(),
                    start: 0,
                    end: 9,
                    codec: None,
                    more: Vec::new(),
                    origin: None,
                },
                size: None,
                plan: None,
            },
            Entry::Partition {
                workdir: "w".into(),
                job: "0123456789abcdef".into(),
                partition: 2,
                path: "w/p".into(),
                records: 3,
                bytes: 4,
            },
        ];
        let mut buf = Vec::new();
        write(&mut buf, &entries).unwrap();
        let text = String::from_utf8(buf.clone()).unwrap();
        assert!(
            text.starts_with(r#"{"type":"split","index":0,"path":"/a","start":0,"end":9}"#),
            "{text}"
        );
        assert_eq!(read(&buf[..], "test").unwrap(), entries);
        assert!(
            read(&b"nope\n"[..], "gmr map")
                .unwrap_err()
                .to_string()
                .contains("line 1")
        );
    }
}
