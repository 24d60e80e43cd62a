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
//! Map and partition lines carry the job's identity: a stage refuses lines
//! of another job than the one in its work directory.
//!
//! ```text
//! {"type":"part","partition":3,"path":"out/part-00003","records":…,"bytes":…}
//! ```

use crate::data::split::Split;
use crate::error::{Error, Result};
use serde::{Deserialize, Serialize};
use std::io::{self, BufRead, Write};
use std::path::PathBuf;

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
