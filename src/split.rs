//! Inputs and splits: expand input paths, spool stdin, and cut files into
//! byte ranges that end on record boundaries (docs/dev/architecture.md §1-2).
//!
//! Splitting memory-maps each file and looks only at the pages around each
//! cut, so it reads almost nothing and copies nothing. A split ends just
//! after a `\n` (or at the end of the file), so no record is ever cut, and a
//! line longer than the split size simply makes that split longer.
//! Compressed files (`.gz`) cannot be cut: each is one split.
//!
//! [`feed`] then writes a split's bytes to its mapper: through a read-only
//! map, released behind the feed, or decompressed.

use crate::error::{Error, Result};
use memmap2::Mmap;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// One map task's input: the bytes `start..end` of `path`, then the whole
/// small files in `more`, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Split {
    /// The input file (absolute, so that every host sees the same path).
    pub path: PathBuf,
    /// First byte of the split.
    pub start: u64,
    /// One past the last byte of the split.
    pub end: u64,
    /// The file is gzip-compressed; the split is the whole file.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub gzip: bool,
    /// Small files fed to the same mapper after this one (see
    /// [`plan_splits`]); each is whole and has no `more` of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Split>,
}

impl Split {
    /// Bytes of (possibly compressed) input in this split, `more` included.
    pub fn len(&self) -> u64 {
        self.end - self.start + self.more.iter().map(Split::len).sum::<u64>()
    }

    /// True when the split holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// This split's pieces: itself (without `more`), then each of `more`.
    pub fn pieces(&self) -> impl Iterator<Item = &Split> {
        std::iter::once(self).chain(&self.more)
    }
}

/// Above this many splits, small files are fed several to a map task:
/// starting a mapper, and the files each task writes, cost a few
/// milliseconds, which thousands of small files would multiply. Below it
/// every file keeps a task of its own (and its own `GMR_INPUT_FILE`).
const COMBINE_ABOVE: usize = 64;

/// An input file as it was when the job was planned, so that a resumed job
/// can tell whether its input changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputStamp {
    /// The file.
    pub path: PathBuf,
    /// Its size.
    pub len: u64,
    /// Its modification time, in nanoseconds since the epoch.
    pub mtime_ns: u128,
}

/// Stamps of `files`.
pub fn stamp_inputs(files: &[PathBuf]) -> Result<Vec<InputStamp>> {
    files
        .iter()
        .map(|path| {
            let meta =
                fs::metadata(path).map_err(|e| Error::input("cannot read input", path, e))?;
            let mtime_ns = meta
                .modified()
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map_or(0, |d| d.as_nanos());
            Ok(InputStamp {
                path: path.clone(),
                len: meta.len(),
                mtime_ns,
            })
        })
        .collect()
}

/// Whether a file is read through gzip, by its name.
pub fn is_gzip(path: &Path) -> bool {
    path.extension().is_some_and(|e| e == "gz")
}

/// Expands the user's inputs into the list of files to read, in order.
///
/// A directory stands for the regular files directly inside it, in name
/// order, skipping names that start with `.` or `_` (as Hadoop does, so that
/// a job's output directory, with its `_SUCCESS`, can be the next job's
/// input). `-`, or no input at all, is standard input, spooled to the file
/// `spool` because a pipe cannot be mapped.
pub fn resolve_inputs(inputs: &[PathBuf], spool: &Path) -> Result<Vec<PathBuf>> {
    let stdin_only = [PathBuf::from("-")];
    let inputs = if inputs.is_empty() {
        &stdin_only[..]
    } else {
        inputs
    };
    let mut files = Vec::new();
    for input in inputs {
        if input.as_os_str() == "-" {
            files.push(spool_stdin(spool)?);
            continue;
        }
        let meta = fs::metadata(input).map_err(|e| Error::input("cannot read input", input, e))?;
        if meta.is_dir() {
            let mut names = Vec::new();
            let entries =
                fs::read_dir(input).map_err(|e| Error::input("cannot list input", input, e))?;
            for entry in entries {
                let entry = entry.map_err(|e| Error::input("cannot list input", input, e))?;
                let name = entry.file_name();
                let hidden = name
                    .as_encoded_bytes()
                    .first()
                    .is_some_and(|&b| b == b'.' || b == b'_');
                let path = entry.path();
                if !hidden && fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                    names.push(path);
                }
            }
            names.sort();
            files.extend(names);
        } else {
            // Open now, so that an unreadable file is a usage error before
            // anything runs, not a task failure later.
            File::open(input).map_err(|e| Error::input("cannot read input", input, e))?;
            files.push(input.clone());
        }
    }
    files
        .into_iter()
        .map(|f| std::path::absolute(&f).map_err(|e| Error::input("cannot resolve input", &f, e)))
        .collect()
}

fn spool_stdin(path: &Path) -> Result<PathBuf> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("cannot create spool directory", dir, e))?;
    }
    let path = path.to_path_buf();
    let mut out = File::create(&path).map_err(|e| Error::io("cannot spool stdin to", &path, e))?;
    io::copy(&mut io::stdin().lock(), &mut out)
        .map_err(|e| Error::io("cannot spool stdin to", &path, e))?;
    Ok(path)
}

/// Cuts `files` into splits of about `split_size` bytes each.
pub fn plan_splits(files: &[PathBuf], split_size: u64) -> Result<Vec<Split>> {
    let split_size = split_size.max(1);
    let mut splits = Vec::new();
    for path in files {
        let file = File::open(path).map_err(|e| Error::input("cannot read input", path, e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::input("cannot read input", path, e))?
            .len();
        if len == 0 {
            continue;
        }
        if is_gzip(path) {
            splits.push(Split {
                path: path.clone(),
                start: 0,
                end: len,
                gzip: true,
                more: Vec::new(),
            });
            continue;
        }
        // SAFETY: the map is read-only and dropped before we return; a file
        // truncated under us would fault, the usual caveat of mmap tools.
        let map =
            unsafe { Mmap::map(&file) }.map_err(|e| Error::input("cannot map input", path, e))?;
        let mut start = 0u64;
        while start < len {
            let end = cut_after(&map, start + split_size);
            splits.push(Split {
                path: path.clone(),
                start,
                end,
                gzip: false,
                more: Vec::new(),
            });
            start = end;
        }
    }
    if splits.len() > COMBINE_ABOVE {
        splits = combine_small(splits, split_size);
    }
    Ok(splits)
}

/// Groups consecutive whole files smaller than half a split into splits of
/// at most `split_size` bytes; the pieces of larger files stay as they are,
/// and every piece keeps its place in the input's order.
fn combine_small(splits: Vec<Split>, split_size: u64) -> Vec<Split> {
    let mut out: Vec<Split> = Vec::new();
    let mut open: Option<Split> = None;
    for split in splits {
        // A first piece shorter than half a split is its whole file: a cut
        // lands at least a split past the start.
        let small = split.start == 0 && split.len() < split_size / 2;
        if !small {
            // Tasks keep the input's order (a map-only job's parts do).
            out.extend(open.take());
            out.push(split);
            continue;
        }
        match &mut open {
            Some(group) if group.len() + split.len() <= split_size => group.more.push(split),
            _ => {
                if let Some(full) = open.replace(split) {
                    out.push(full);
                }
            }
        }
    }
    out.extend(open);
    out
}

/// The end of a split that should end near `target`: just past the first
/// `\n` at or after `target - 1`, or the end of the data.
fn cut_after(data: &[u8], target: u64) -> u64 {
    let len = data.len() as u64;
    if target >= len {
        return len;
    }
    match memchr::memchr(b'\n', &data[(target - 1) as usize..]) {
        Some(i) => target + i as u64,
        None => len,
    }
}

/// A split size that gives every one of `jobs` slots several tasks (for
/// balance) without making tasks so small that start-up costs dominate.
pub fn default_split_size(total_bytes: u64, jobs: usize) -> u64 {
    const MIN: u64 = 1 << 20;
    const MAX: u64 = 64 << 20;
    (total_bytes / (jobs as u64 * 4).max(1)).clamp(MIN, MAX)
}

/// Total bytes of `files`.
pub fn total_size(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .filter_map(|f| fs::metadata(f).ok())
        .map(|m| m.len())
        .sum()
}

/// Bytes handed to a mapper per write.
const FEED_CHUNK: usize = 1 << 20;

/// Writes the bytes of one piece of a split (`more` aside) to the mapper,
/// counting records and bytes; returns whether they end with a newline
/// (or are none).
pub fn feed(
    split: &Split,
    w: &mut dyn Write,
    records: &mut u64,
    bytes: &mut u64,
) -> io::Result<bool> {
    let file = File::open(&split.path)?;
    let mut last = b'\n';
    let mut take = |chunk: &[u8], w: &mut dyn Write| -> io::Result<()> {
        *records += memchr::memchr_iter(b'\n', chunk).count() as u64;
        *bytes += chunk.len() as u64;
        if let Some(&b) = chunk.last() {
            last = b;
        }
        w.write_all(chunk)
    };
    if split.gzip {
        let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
        let mut buf = vec![0u8; FEED_CHUNK];
        loop {
            let n = match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("decompressing: {e}"))),
            };
            take(&buf[..n], w)?;
        }
    } else if split.start < split.end {
        let map = map_range(&file, split.start, split.end - split.start)?;
        let mut fed = 0;
        for chunk in map.chunks(FEED_CHUNK) {
            take(chunk, w)?;
            fed += chunk.len();
            map.release_before(fed);
        }
    }
    if last != b'\n' {
        *records += 1;
    }
    Ok(last == b'\n')
}

/// Maps bytes `start..start+len` of `file` (the map is page-aligned; the
/// returned slice is exactly the range).
pub struct MappedRange {
    map: memmap2::Mmap,
    skip: usize,
    page: usize,
}

impl MappedRange {
    /// Drops the pages before byte `pos` of the range from this process's
    /// resident memory once they have been fed: mapped input counts in RSS,
    /// and without this a task would hold its whole split resident.
    fn release_before(&self, pos: usize) {
        let end = (self.skip + pos) / self.page * self.page;
        if end > 0 {
            // SAFETY: the map is a read-only shared file mapping, so
            // MADV_DONTNEED only drops clean pages (reading them again would
            // fault them back in from the file); no reference into the
            // released bytes is used after this call.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, end)
            };
        }
    }
}

impl std::ops::Deref for MappedRange {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.skip..]
    }
}

fn map_range(file: &File, start: u64, len: u64) -> io::Result<MappedRange> {
    // SAFETY: sysconf is always safe to call.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let aligned = start - start % page;
    let skip = (start - aligned) as usize;
    // SAFETY: read-only map of an input the job does not modify; a file
    // truncated under a running job faults, as with any mmap reader.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(aligned)
            .len(len as usize + skip)
            .map(file)?
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(MappedRange {
        map,
        skip,
        page: page as usize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_land_after_newlines() {
        let data = b"aaaa\nbb\ncccccccccc\nd";
        assert_eq!(cut_after(data, 1), 5);
        assert_eq!(cut_after(data, 5), 5);
        assert_eq!(cut_after(data, 6), 8);
        assert_eq!(cut_after(data, 10), 19);
        assert_eq!(cut_after(data, 19), 19);
        assert_eq!(cut_after(data, 20), 20);
        assert_eq!(cut_after(data, 100), 20);
    }

    #[test]
    fn splits_cover_the_file_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        let mut text = Vec::new();
        for i in 0..1000 {
            text.extend_from_slice(format!("line {i} {}\n", "x".repeat(i % 37)).as_bytes());
        }
        text.extend_from_slice(b"no newline at the end");
        fs::write(&path, &text).unwrap();
        for size in [1, 7, 100, 4096, 1 << 20] {
            let splits = plan_splits(std::slice::from_ref(&path), size).unwrap();
            let mut pos = 0;
            for s in &splits {
                assert_eq!(s.start, pos);
                assert!(s.end > s.start);
                assert!(s.end as usize == text.len() || text[s.end as usize - 1] == b'\n');
                pos = s.end;
            }
            assert_eq!(pos as usize, text.len());
        }
    }

    #[test]
    fn many_small_files_are_grouped_and_large_ones_cut() {
        let dir = tempfile::tempdir().unwrap();
        let mut files = Vec::new();
        for i in 0..100 {
            let path = dir.path().join(format!("small-{i:03}"));
            fs::write(&path, format!("file {i}\n").repeat(1 + i % 5)).unwrap();
            files.push(path);
            if i == 50 {
                let big = dir.path().join("big");
                fs::write(&big, "a line of the big file\n".repeat(1000)).unwrap();
                files.push(big);
            }
        }
        let size = 1000;
        let splits = plan_splits(&files, size).unwrap();
        assert!(splits.len() < 60, "{} splits", splits.len());
        // Every file, in order, whole or cut, exactly once.
        let pieces: Vec<&Split> = splits.iter().flat_map(Split::pieces).collect();
        let mut covered: Vec<(PathBuf, u64)> = Vec::new();
        for p in &pieces {
            match covered.last_mut() {
                Some((path, end)) if *path == p.path => {
                    assert_eq!(*end, p.start);
                    *end = p.end;
                }
                _ => covered.push((p.path.clone(), p.end)),
            }
        }
        let lens: Vec<(PathBuf, u64)> = files
            .iter()
            .map(|f| (f.clone(), fs::metadata(f).unwrap().len()))
            .collect();
        assert_eq!(covered, lens);
        for s in &splits {
            assert!(
                s.more.is_empty() || s.len() <= size,
                "a group of {}",
                s.len()
            );
            assert!(s.more.iter().all(|m| m.more.is_empty()));
        }
    }
}
