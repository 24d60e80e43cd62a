//! Splits: files cut into byte ranges that end on record boundaries, the
//! stamps that say a file is as it was planned, and the feed of a split to
//! its mapper (docs/contracts.md §1-2). Expanding the user's inputs,
//! spooling streams and decompressing large compressed files is
//! [`crate::store::input`]'s.
//!
//! Splitting reads only the bytes around each cut. A split ends just after
//! a `\n` (or at the end of the file), so no record is ever cut, and a line
//! longer than the split size simply makes that split longer. A compressed
//! file (gzip, zstd, bzip2, xz: known by its first bytes, whatever its
//! name) cannot be cut: it is one split, unless a job decompressed it into
//! its work directory first, and then its copy is cut.
//!
//! [`feed`] then writes a split's bytes to its mapper, read with pread(2)
//! (or decompressed). Inputs are never memory-mapped: a file truncated
//! while the job runs would fault a mapped read and kill gmr; a read sees
//! the end of the file instead, and the task fails naming the file, as it
//! does for a file whose size or modification time changed since the job
//! was planned.

use crate::data::codec::Codec;
use crate::error::{Error, Result, Unrecoverable};
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

/// One map task's input: the bytes `start..end` of `path`, then the whole
/// small files in `more`, if any.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Split {
    /// The input file (absolute, so that every host sees the same path).
    pub(crate) path: PathBuf,
    /// First byte of the split.
    pub(crate) start: u64,
    /// One past the last byte of the split.
    pub(crate) end: u64,
    /// How the file is compressed, if it is; the split is then the whole
    /// file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) codec: Option<Codec>,
    /// Small files fed to the same mapper after this one (see
    /// [`plan_splits`]); each is whole and has no `more` of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) more: Vec<Split>,
    /// The compressed input this split's file is the decompressed copy of
    /// (see [`spool_compressed`]): the file mappers are told they read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) origin: Option<PathBuf>,
}

impl Split {
    /// The whole file `path`, `len` bytes long, compressed with `codec`.
    fn whole(path: &Path, len: u64, codec: Option<Codec>) -> Split {
        Split {
            path: path.to_path_buf(),
            start: 0,
            end: len,
            codec,
            more: Vec::new(),
            origin: None,
        }
    }

    /// Bytes of (possibly compressed) input in this split, `more` included.
    pub(crate) fn len(&self) -> u64 {
        self.end - self.start + self.more.iter().map(Split::len).sum::<u64>()
    }

    /// This split's pieces: itself (without `more`), then each of `more`.
    pub(crate) fn pieces(&self) -> impl Iterator<Item = &Split> {
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
pub(crate) struct InputStamp {
    /// The file.
    pub(crate) path: PathBuf,
    /// Its size.
    pub(crate) len: u64,
    /// Its modification time, in nanoseconds since the epoch.
    pub(crate) mtime_ns: u128,
}

/// Each file of `splits` with where its last piece ends: its size when
/// the splits were planned.
pub(crate) fn planned_sizes(splits: &[Split]) -> std::collections::HashMap<&Path, u64> {
    let mut sizes = std::collections::HashMap::new();
    for piece in splits.iter().flat_map(Split::pieces) {
        let size = sizes.entry(piece.path.as_path()).or_default();
        *size = piece.end.max(*size);
    }
    sizes
}

/// Stamps of `files`, each file once, in path order (so that a piece
/// finds its file's stamp by binary search, however many files a job has).
pub(crate) fn stamp_inputs(files: &[PathBuf]) -> Result<Vec<InputStamp>> {
    use rayon::prelude::*;
    let mut files: Vec<&PathBuf> = files.iter().collect();
    files.sort_unstable();
    files.dedup();
    files
        .into_par_iter()
        .map(|path| {
            crate::interrupt::check()?;
            let meta =
                fs::metadata(path).map_err(|e| Error::input("cannot read input", path, e))?;
            Ok(InputStamp {
                path: path.clone(),
                len: meta.len(),
                mtime_ns: mtime_ns(&meta),
            })
        })
        .collect()
}

/// Cuts `files` into splits of about `split_size` bytes each, each ending
/// with a record's `eol` (`\n`, or NUL with `-z`) or its file's end.
pub(crate) fn plan_splits(files: &[PathBuf], split_size: u64, eol: u8) -> Result<Vec<Split>> {
    use rayon::prelude::*;
    let split_size = split_size.max(1);
    // Each file is opened and sniffed; with many files that is most of the
    // planning, done on every core (in the input's order).
    let per_file: Vec<Vec<Split>> = files
        .par_iter()
        .map(|path| file_splits(path, split_size, eol))
        .collect::<Result<_>>()?;
    let mut splits: Vec<Split> = per_file.into_iter().flatten().collect();
    if splits.len() > COMBINE_ABOVE {
        splits = combine_small(splits, split_size);
    }
    Ok(splits)
}

/// One split per file, each file whole (`--whole-files`), empty ones too.
pub(crate) fn whole_files(files: &[PathBuf]) -> Result<Vec<Split>> {
    use rayon::prelude::*;
    files
        .par_iter()
        .map(|path| {
            crate::interrupt::check()?;
            let (file, len) = open_input(path)?;
            let codec = match len {
                0 => None,
                _ => Codec::sniff(&file).map_err(|e| Error::input("cannot read input", path, e))?,
            };
            Ok(Split::whole(path, len, codec))
        })
        .collect()
}

/// The splits of one file: one if it is compressed, else cut after an
/// `eol` every `split_size` bytes or so; none if it is empty.
fn file_splits(path: &Path, split_size: u64, eol: u8) -> Result<Vec<Split>> {
    // Planning 100,000 files takes seconds: Ctrl-C is seen on the way.
    crate::interrupt::check()?;
    let (file, len) = open_input(path)?;
    if len == 0 {
        return Ok(Vec::new());
    }
    let codec = Codec::sniff(&file).map_err(|e| Error::input("cannot read input", path, e))?;
    if codec.is_some() {
        return Ok(vec![Split::whole(path, len, codec)]);
    }
    let mut splits = Vec::new();
    let mut start = 0u64;
    while start < len {
        let end = cut_after(&file, len, start + split_size, eol)
            .map_err(|e| Error::input("cannot read input", path, e))?;
        splits.push(Split {
            path: path.to_path_buf(),
            start,
            end,
            codec: None,
            more: Vec::new(),
            origin: None,
        });
        start = end;
    }
    Ok(splits)
}

/// Groups consecutive whole files smaller than half a split into splits of
/// at most `split_size` bytes; the pieces of larger files stay as they are,
/// and every piece keeps its place in the input's order.
fn combine_small(splits: Vec<Split>, split_size: u64) -> Vec<Split> {
    let mut out: Vec<Split> = Vec::new();
    // The group being filled, and its length (kept, not summed again: a
    // group may hold tens of thousands of files).
    let mut open: Option<(Split, u64)> = None;
    for split in splits {
        // A first piece shorter than half a split is its whole file: a cut
        // lands at least a split past the start.
        let len = split.len();
        let small = split.start == 0 && len < split_size / 2;
        if !small {
            // Tasks keep the input's order (a map-only job's parts do).
            out.extend(open.take().map(|(group, _)| group));
            out.push(split);
            continue;
        }
        match &mut open {
            Some((group, group_len)) if *group_len + len <= split_size => {
                group.more.push(split);
                *group_len += len;
            }
            _ => {
                if let Some((full, _)) = open.replace((split, len)) {
                    out.push(full);
                }
            }
        }
    }
    out.extend(open.map(|(group, _)| group));
    out
}

/// The end of a split of `file` (`len` bytes) that should end near
/// `target`: just past the first `eol` at or after `target - 1`, or the end
/// of the file. Reads only from there to that record end.
fn cut_after(file: &File, len: u64, target: u64, eol: u8) -> io::Result<u64> {
    if target >= len {
        return Ok(len);
    }
    let mut buf = [0u8; 16 << 10];
    let mut pos = target - 1;
    while pos < len {
        let n = match file.read_at(&mut buf, pos) {
            Ok(0) => return Ok(len),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if let Some(i) = memchr::memchr(eol, &buf[..n]) {
            return Ok((pos + i as u64 + 1).min(len));
        }
        pos += n as u64;
    }
    Ok(len)
}

/// The default split size: one map task per slot (of `jobs`) when the
/// input, `sizes` bytes file by file, cuts into tasks that keep every slot
/// busy to the end, else two per slot, so that a slot that finishes early
/// takes on another's work (files of 40, 40 and 20 MB on two slots are
/// three tasks, 60 MB against 40 MB; cut at half of that, five tasks, 55
/// against 45). Within 1M..64M.
///
/// Tasks are not made smaller than they need be: each pays its mapper's
/// start (a Python behind a version manager's shim takes 0.15 s of CPU)
/// and writes a run of its own distinct keys, which the reducers merge. On
/// two slots, the awk word count of 100 MB took 4.29 s (CPU 8.04 s) in two
/// tasks and 4.51 s (CPU 8.48 s) in four (medians of 8 alternating runs);
/// four tasks per slot had made it 7% slower than two.
pub(crate) fn default_split_size(sizes: &[u64], jobs: usize) -> u64 {
    const MIN: u64 = 1 << 20;
    const MAX: u64 = 64 << 20;
    let total: u64 = sizes.iter().sum();
    let jobs = jobs.max(1) as u64;
    // Rounded up: a cut lands past its target, at the next record's end,
    // and a size rounded down would leave a sliver of a last task.
    let even = total.div_ceil(jobs);
    let one = even.clamp(MIN, MAX);
    // Planned largest first (as the coordinator hands them out), the
    // busiest slot may run a tenth longer than an even share.
    if busiest_slot(sizes, one, jobs) * 10 <= even * 11 {
        one
    } else {
        total.div_ceil(jobs * 2).clamp(MIN, MAX)
    }
}

/// About the bytes the busiest of `jobs` slots maps when files of `sizes`
/// are cut every `split_size` bytes and the pieces handed out largest
/// first, each to the slot with the fewest bytes so far.
fn busiest_slot(sizes: &[u64], split_size: u64, jobs: u64) -> u64 {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let split_size = split_size.max(1);
    let mut pieces: Vec<u64> = sizes
        .iter()
        .flat_map(|&len| {
            let whole = len / split_size;
            let rest = len % split_size;
            std::iter::repeat_n(split_size, whole as usize).chain((rest > 0).then_some(rest))
        })
        .collect();
    pieces.sort_unstable_by(|a, b| b.cmp(a));
    let slots = (jobs as usize).min(pieces.len()).max(1);
    let mut load: BinaryHeap<Reverse<u64>> = (0..slots).map(|_| Reverse(0)).collect();
    for piece in pieces {
        let Reverse(least) = load.pop().expect("at least one slot");
        load.push(Reverse(least + piece));
    }
    load.into_iter().map(|Reverse(l)| l).max().unwrap_or(0)
}

/// The sizes of `files` (0 for one that cannot be read: planning reports
/// it).
pub(crate) fn file_sizes(files: &[PathBuf]) -> Vec<u64> {
    files
        .iter()
        .map(|f| fs::metadata(f).map_or(0, |m| m.len()))
        .collect()
}

/// Bytes handed to a mapper per write.
pub(crate) const FEED_CHUNK: usize = 1 << 20;

/// Writes the bytes of one piece of a split (`more` aside) to the mapper;
/// returns whether they end with `eol` (or are none). The file must be
/// as `stamps` recorded it when the job was planned, before and after the
/// feed; a file that changed fails with an [`Unrecoverable`] error naming
/// it (retrying would read the changed file again).
pub(crate) fn feed(
    split: &Split,
    stamps: &[InputStamp],
    eol: u8,
    w: &mut dyn Write,
) -> io::Result<bool> {
    let Some(codec) = split.codec else {
        let mut piece = Piece::open(split, stamps)?;
        let mut buf = Vec::with_capacity(((split.end - split.start) as usize).min(FEED_CHUNK));
        let mut last = eol;
        loop {
            buf.clear();
            let n = piece.read_into(&mut buf, FEED_CHUNK)?;
            if n == 0 {
                piece.finish()?;
                return Ok(last == eol);
            }
            last = buf[n - 1];
            w.write_all(&buf)?;
        }
    };
    let (file, stamp) = open_checked(split, stamps)?;
    let mut out = LastByte {
        inner: w,
        last: eol,
        failed: false,
    };
    decompress(codec, &file, &mut out).map_err(|e| match e {
        // A write that failed is the mapper's side: as is.
        e if out.failed => e,
        // The input is not what it claims: every attempt would fail.
        e => io::Error::other(Unrecoverable(format!(
            "input {} is not valid {} data: {e}",
            split.path.display(),
            codec.name()
        ))),
    })?;
    // A file rewritten while it was fed has a new modification time.
    check_unchanged(&file, split, stamp)?;
    Ok(out.last == eol)
}

/// Opens a split's file and checks that it is as planned.
fn open_checked<'a>(
    split: &Split,
    stamps: &'a [InputStamp],
) -> io::Result<(File, Option<&'a InputStamp>)> {
    // A file the job planned that is gone from its directory has changed
    // too: retrying cannot bring it back. (With its directory gone, the
    // host may not mount the input: its failure, retried elsewhere.)
    let file = File::open(&split.path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound if split.path.parent().is_some_and(Path::is_dir) => {
            changed(split, "it was removed".to_string())
        }
        _ => e,
    })?;
    // In path order (`stamp_inputs`); the spec of an older gmr may not be.
    let stamp = match stamps.binary_search_by(|s| s.path.cmp(&split.path)) {
        Ok(i) => Some(&stamps[i]),
        Err(_) => stamps.iter().find(|s| s.path == split.path),
    };
    check_unchanged(&file, split, stamp)?;
    Ok((file, stamp))
}

/// One piece of an uncompressed split (`more` aside), read in order from
/// its first byte to its last, checked against its stamp before and after
/// (see [`feed`]).
pub(crate) struct Piece<'a> {
    split: &'a Split,
    stamp: Option<&'a InputStamp>,
    file: File,
    pos: u64,
}

impl<'a> Piece<'a> {
    /// Opens `split`, which must not be compressed.
    pub(crate) fn open(split: &'a Split, stamps: &'a [InputStamp]) -> io::Result<Piece<'a>> {
        debug_assert!(split.codec.is_none(), "a compressed piece is decoded");
        let (file, stamp) = open_checked(split, stamps)?;
        Ok(Piece {
            split,
            stamp,
            file,
            pos: split.start,
        })
    }

    /// Appends up to `max` (> 0) more bytes of the piece to `buf`, into
    /// its spare room (reserved as needed), and returns how many: 0 at the
    /// piece's end. Nothing is copied on the way, and the room is not
    /// zeroed first: a map task's sort buffer is read into directly.
    pub(crate) fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
        let want = ((self.split.end - self.pos) as usize).min(max);
        if want == 0 {
            return Ok(0);
        }
        buf.reserve(want);
        let spare = buf.spare_capacity_mut();
        let n = loop {
            // SAFETY: the kernel writes at most `want` bytes at the spare
            // room's start, which `reserve` made at least that long; no
            // reference to the uninitialised bytes is made.
            let r = unsafe {
                libc::pread(
                    std::os::fd::AsRawFd::as_raw_fd(&self.file),
                    spare.as_mut_ptr().cast(),
                    want,
                    self.pos as libc::off_t,
                )
            };
            if r >= 0 {
                break r as usize;
            }
            let e = io::Error::last_os_error();
            if e.kind() != io::ErrorKind::Interrupted {
                return Err(e);
            }
        };
        if n == 0 {
            // Its stamp says best how it changed.
            check_unchanged(&self.file, self.split, self.stamp)?;
            let how = format!(
                "it ends at byte {}, inside split {}..{}",
                self.pos, self.split.start, self.split.end
            );
            return Err(changed(self.split, how));
        }
        // SAFETY: the kernel initialised these `n` bytes.
        unsafe { buf.set_len(buf.len() + n) };
        self.pos += n as u64;
        Ok(n)
    }

    /// Checks, once the piece is read, that its file was not rewritten
    /// meanwhile (it would have a new modification time).
    pub(crate) fn finish(self) -> io::Result<()> {
        check_unchanged(&self.file, self.split, self.stamp)
    }
}

/// Writes what `file`, compressed with `codec`, holds to `out`.
fn decompress(codec: Codec, file: &File, out: &mut LastByte) -> io::Result<()> {
    let reader = io::BufReader::with_capacity(FEED_CHUNK, file);
    copy(&mut codec.decoder(reader)?, out)
}

/// An input file, open, and its length.
pub(crate) fn open_input(path: &Path) -> Result<(File, u64)> {
    let read = |e| Error::input("cannot read input", path, e);
    let file = File::open(path).map_err(read)?;
    let len = file.metadata().map_err(read)?.len();
    Ok((file, len))
}

/// `io::copy` in chunks of [`FEED_CHUNK`].
pub(crate) fn copy(from: &mut dyn Read, to: &mut impl Write) -> io::Result<()> {
    let mut buf = vec![0u8; FEED_CHUNK];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buf[..n])?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// A writer that remembers the last byte through it, and whether a write
/// failed (the mapper's side) rather than the decompression.
struct LastByte<'a> {
    inner: &'a mut dyn Write,
    last: u8,
    failed: bool,
}

impl Write for LastByte<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf).inspect_err(|_| self.failed = true)?;
        if n > 0 {
            self.last = buf[n - 1];
        }
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush().inspect_err(|_| self.failed = true)
    }
}

/// Fails when `file` is no longer as the job planned it: shorter than the
/// split, or another size or modification time than its stamp.
fn check_unchanged(file: &File, split: &Split, stamp: Option<&InputStamp>) -> io::Result<()> {
    let meta = file.metadata()?;
    match stamp {
        Some(stamp) if meta.len() != stamp.len => {
            let how = format!("it had {} bytes, now {}", stamp.len, meta.len());
            Err(changed(split, how))
        }
        Some(stamp) if mtime_ns(&meta) != stamp.mtime_ns => {
            Err(changed(split, "it was modified".to_string()))
        }
        None if meta.len() < split.end => {
            let how = format!(
                "it has {} bytes, the split ends at {}",
                meta.len(),
                split.end
            );
            Err(changed(split, how))
        }
        _ => Ok(()),
    }
}

fn changed(split: &Split, how: String) -> io::Error {
    io::Error::other(Unrecoverable(format!(
        "input {} changed while the job ran ({how}); rerun the job on a copy that stays put (a log being rotated: copy it first)",
        split.path.display()
    )))
}

/// A file's modification time, in nanoseconds since the epoch.
fn mtime_ns(meta: &fs::Metadata) -> u128 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_split_size_gives_a_slot_one_task_when_that_keeps_slots_even() {
        const M: u64 = 1 << 20;
        // One file: one task per slot, rounded up so that no sliver is left.
        assert_eq!(default_split_size(&[100 * M + 1], 2), 50 * M + 1);
        assert_eq!(default_split_size(&[90 * M], 3), 30 * M);
        // Files that cut unevenly: two per slot.
        assert_eq!(default_split_size(&[40 * M, 40 * M, 20 * M], 2), 25 * M);
        assert_eq!(busiest_slot(&[40 * M, 40 * M, 20 * M], 50 * M, 2), 60 * M);
        assert_eq!(busiest_slot(&[40 * M, 40 * M, 20 * M], 25 * M, 2), 55 * M);
        // Many small files pack evenly: one per slot.
        assert_eq!(default_split_size(&[M / 4; 400], 4), 25 * M);
        // Within 1M..64M, and no slot count divides by zero.
        assert_eq!(default_split_size(&[M], 8), M);
        assert_eq!(default_split_size(&[10_000 * M], 2), 64 * M);
        assert_eq!(default_split_size(&[], 0), M);
    }

    #[test]
    fn a_piece_read_while_its_file_shrinks_or_changes_fails_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        fs::write(&path, b"aaaa\nbbbb\ncccc\n").unwrap();
        let stamps = stamp_inputs(std::slice::from_ref(&path)).unwrap();
        let split = Split {
            path: path.clone(),
            start: 5,
            end: 15,
            codec: None,
            more: Vec::new(),
            origin: None,
        };
        // Read whole, in pieces, appended to what the buffer held.
        let mut piece = Piece::open(&split, &stamps).unwrap();
        let mut buf = b"x".to_vec();
        while piece.read_into(&mut buf, 3).unwrap() > 0 {}
        assert_eq!(buf, b"xbbbb\ncccc\n");
        piece.finish().unwrap();
        // Cut short after the first read.
        let mut piece = Piece::open(&split, &stamps).unwrap();
        let mut buf = Vec::new();
        piece.read_into(&mut buf, 3).unwrap();
        fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(6)
            .unwrap();
        let err = piece.read_into(&mut buf, 3).unwrap_err().to_string();
        assert!(
            err.contains("changed while the job ran") && err.contains("it had 15 bytes, now 6"),
            "{err}"
        );
        assert!(err.contains(&path.display().to_string()), "{err}");
        // Rewritten, same size, while it was read: its time tells.
        fs::write(&path, b"aaaa\nbbbb\ncccc\n").unwrap();
        let stamps = stamp_inputs(std::slice::from_ref(&path)).unwrap();
        let mut piece = Piece::open(&split, &stamps).unwrap();
        while piece.read_into(&mut buf, 64).unwrap() > 0 {}
        std::thread::sleep(std::time::Duration::from_millis(20));
        fs::write(&path, b"AAAA\nBBBB\nCCCC\n").unwrap();
        let err = piece.finish().unwrap_err().to_string();
        assert!(err.contains("it was modified"), "{err}");
    }

    #[test]
    fn cuts_land_after_newlines() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in");
        fs::write(&path, b"aaaa\nbb\ncccccccccc\nd").unwrap();
        let file = File::open(&path).unwrap();
        let cut = |target| cut_after(&file, 20, target, b'\n').unwrap();
        assert_eq!(cut(1), 5);
        assert_eq!(cut(5), 5);
        assert_eq!(cut(6), 8);
        assert_eq!(cut(10), 19);
        assert_eq!(cut(19), 19);
        assert_eq!(cut(20), 20);
        assert_eq!(cut(100), 20);
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
            let splits = plan_splits(std::slice::from_ref(&path), size, b'\n').unwrap();
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
        let splits = plan_splits(&files, size, b'\n').unwrap();
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
