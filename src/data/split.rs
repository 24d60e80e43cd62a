//! Inputs and splits: expand input paths, spool streams, and cut files into
//! byte ranges that end on record boundaries (docs/dev/architecture.md §1-2).
//!
//! Splitting reads only the bytes around each cut. A split ends just after
//! a `\n` (or at the end of the file), so no record is ever cut, and a line
//! longer than the split size simply makes that split longer. Compressed
//! files (gzip, zstd, bzip2, xz: known by their first bytes, whatever their
//! names) cannot be cut: each is one split. Inputs that are not
//! regular files (stdin, FIFOs, `<(…)`, devices) are streams: each is
//! spooled into the work directory first, as stdin is.
//!
//! [`feed`] then writes a split's bytes to its mapper, read with pread(2)
//! (or decompressed). Inputs are never memory-mapped: a file truncated
//! while the job runs would fault a mapped read and kill gmr; a read sees
//! the end of the file instead, and the task fails naming the file, as it
//! does for a file whose size or modification time changed since the job
//! was planned.

use crate::data::codec::Codec;
use crate::error::{Error, Result, Unrecoverable};
use crate::store::workdir;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::{FileExt, MetadataExt};
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
    /// How the file is compressed, if it is; the split is then the whole
    /// file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codec: Option<Codec>,
    /// Small files fed to the same mapper after this one (see
    /// [`plan_splits`]); each is whole and has no `more` of its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub more: Vec<Split>,
    /// The compressed input this split's file is the decompressed copy of
    /// (see [`spool_compressed`]): the file mappers are told they read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<PathBuf>,
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
            Ok(InputStamp {
                path: path.clone(),
                len: meta.len(),
                mtime_ns: mtime_ns(&meta),
            })
        })
        .collect()
}

/// Whether `input` is read as a stream, spooled first: `-`, or anything
/// that is not a regular file or a directory (a FIFO, `<(…)`,
/// `/dev/stdin`, a character device).
pub fn is_stream(input: &Path) -> bool {
    input.as_os_str() == "-" || fs::metadata(input).is_ok_and(|m| !m.is_file() && !m.is_dir())
}

/// The device and inode of standard input, to tell `/dev/stdin` (or
/// `/proc/self/fd/0`) from another stream.
fn stdin_identity() -> Option<(u64, u64)> {
    // SAFETY: fstat fills a plain struct for descriptor 0.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    (unsafe { libc::fstat(0, &mut st) } == 0).then_some((st.st_dev, st.st_ino))
}

/// Expands the user's inputs into the list of files to read, in order.
///
/// A directory stands for the regular files directly inside it, in name
/// order, skipping names that start with `.` or `_` (as Hadoop does, so that
/// a job's output directory, with its `_SUCCESS`, can be the next job's
/// input). `-`, or no input at all, is standard input; it and every other
/// stream (see [`is_stream`]) is spooled into `spool_dir` (`stdin`,
/// `stream-1`, …), because a pipe can be read only once and has no size.
/// Standard input named twice (`- -`, `- /dev/stdin`) is a usage error: the
/// second would read nothing. A spool already in `spool_dir` is replaced
/// when `replace` (a new job's leftover: no lines name it), else refused
/// (`gmr split`: an earlier split's lines read it).
pub fn resolve_inputs(inputs: &[PathBuf], spool_dir: &Path, replace: bool) -> Result<Vec<PathBuf>> {
    let stdin_only = [PathBuf::from("-")];
    let inputs = if inputs.is_empty() {
        &stdin_only[..]
    } else {
        inputs
    };
    let stdin = stdin_identity();
    let mut stdin_by: Option<&Path> = None;
    let mut streams = 0;
    let mut files = Vec::new();
    for input in inputs {
        let meta = if input.as_os_str() == "-" {
            None
        } else {
            Some(fs::metadata(input).map_err(|e| Error::input("cannot read input", input, e))?)
        };
        match &meta {
            Some(m) if m.is_dir() => files.extend(list_dir(input)?),
            Some(m) if m.is_file() => {
                // Open now, so that an unreadable file is a usage error
                // before anything runs, not a task failure later.
                File::open(input).map_err(|e| Error::input("cannot read input", input, e))?;
                // `/dev/stdin` or `/dev/fd/N` on a regular file is that
                // file: its own path is the one every host can open.
                let special = input.starts_with("/dev") || input.starts_with("/proc");
                match fs::canonicalize(input) {
                    Ok(real) if special => files.push(real),
                    _ => files.push(input.clone()),
                }
            }
            _ => {
                let is_stdin = meta
                    .as_ref()
                    .is_none_or(|m| Some((m.dev(), m.ino())) == stdin);
                let spool = if is_stdin {
                    if let Some(first) = stdin_by {
                        return Err(Error::usage(format!(
                            "standard input is given twice (`{}` and `{}`); the second would read nothing: name it once",
                            first.display(),
                            input.display()
                        )));
                    }
                    stdin_by = Some(input);
                    workdir::stream_spool(spool_dir, None)
                } else {
                    streams += 1;
                    workdir::stream_spool(spool_dir, Some(streams))
                };
                files.push(spool_stream(input, is_stdin, &spool, replace)?);
            }
        }
    }
    files
        .into_iter()
        .map(|f| std::path::absolute(&f).map_err(|e| Error::input("cannot resolve input", &f, e)))
        .collect()
}

/// The regular files directly inside `dir`, in name order, hidden and
/// `_` names skipped.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::input("cannot list input", dir, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::input("cannot list input", dir, e))?;
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
    // An input that gives nothing is a mistake to say, as a glob that
    // matches nothing is, rather than an empty output.
    if names.is_empty() {
        return Err(Error::usage(format!(
            "input {} holds no file gmr reads (the regular files directly inside it, but for names that start with . or _); give the files, or a directory of them",
            dir.display()
        )));
    }
    names.sort();
    Ok(names)
}

/// Copies the stream `input` (standard input when `is_stdin`) to `spool`.
/// Opening a FIFO waits for its writer; Ctrl-C still ends gmr (see
/// [`crate::interrupt`]).
fn spool_stream(input: &Path, is_stdin: bool, spool: &Path, replace: bool) -> Result<PathBuf> {
    if let Some(dir) = spool.parent() {
        fs::create_dir_all(dir).map_err(|e| Error::io("cannot create spool directory", dir, e))?;
    }
    // Another split's saved input, which its lines name: never replaced.
    let taken = || {
        Error::usage(format!(
            "{} already holds a saved input (of an earlier gmr split or job, whose lines read it); choose another --workdir",
            spool.display()
        ))
    };
    if spool.exists() {
        if !replace {
            return Err(taken());
        }
        fs::remove_file(spool).map_err(|e| Error::io("cannot replace", spool, e))?;
    }
    // A new private file, committed into place once whole.
    let tmp = workdir::AttemptGuard::new(workdir::attempt_path(spool, 0));
    let mut out = workdir::create_new(tmp.path())
        .map_err(|e| Error::io("cannot spool input to", spool, e))?;
    let copied = if is_stdin {
        copy_interruptible(&mut io::stdin().lock(), &mut out)
    } else {
        let mut stream =
            File::open(input).map_err(|e| Error::input("cannot read input", input, e))?;
        copy_interruptible(&mut stream, &mut out)
    };
    crate::interrupt::check()?;
    copied
        .and_then(|_| out.sync_all())
        .map_err(|e| Error::io(&format!("cannot spool {} to", input.display()), spool, e))?;
    // Closed before its attempt name is unlinked: on NFS, unlinking an open
    // file is a rename whose removal comes later, changing the spool after
    // it was stamped.
    drop(out);
    if !workdir::commit(tmp.path(), spool)? {
        return Err(taken());
    }
    tmp.keep();
    crate::interrupt::check()?;
    Ok(spool.to_path_buf())
}

/// `io::copy` that stops at an interrupt (a stream never ends: a device,
/// a producer that runs on), checked after each read.
fn copy_interruptible(from: &mut impl Read, to: &mut impl Write) -> io::Result<u64> {
    let mut buf = vec![0u8; FEED_CHUNK];
    let mut total = 0u64;
    while !crate::interrupt::is_set() {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        to.write_all(&buf[..n])?;
        total += n as u64;
    }
    Ok(total)
}

/// Compressed inputs, each with its decompressed copy.
pub type Copies = Vec<(PathBuf, PathBuf)>;

/// Decompresses into `spool_dir` each compressed file of `files` of at
/// least `split_size` bytes, up to `jobs` at a time, and returns each such
/// file with its copy (`decompressed-N`, N from 1 in input order).
///
/// A compressed file cannot be cut into splits: read directly, it is one
/// map task on one core, however large. Its decompressed copy is cut like
/// any file, so its records go to as many map tasks as it has splits, and
/// it is decompressed once. A file smaller than a split stays as it is (one
/// task each, decompressed as it is read, no copy on disk): many small
/// compressed files already make many tasks. The copy is not synced: it
/// can be made again from its file, and a copy cut short by a crash fails
/// its stamp check.
pub fn spool_compressed(
    files: &[PathBuf],
    spool_dir: &Path,
    split_size: u64,
    jobs: usize,
) -> Result<Copies> {
    let mut large = Vec::new();
    for path in files {
        let (file, len) = open_input(path)?;
        // Only a file of a split or more is worth sniffing: thousands of
        // small files are not read here.
        if len < split_size.max(1) {
            continue;
        }
        let codec = Codec::sniff(&file).map_err(|e| Error::input("cannot read input", path, e))?;
        if let Some(codec) = codec {
            let spool = workdir::decompressed_spool(spool_dir, large.len() + 1);
            large.push((path.clone(), spool, codec));
        }
    }
    if large.is_empty() {
        return Ok(Vec::new());
    }
    fs::create_dir_all(spool_dir)
        .map_err(|e| Error::io("cannot create spool directory", spool_dir, e))?;
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results: Vec<Result<()>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..jobs.clamp(1, large.len()))
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some((path, spool, codec)) = large.get(i) else {
                            return Ok(());
                        };
                        decompress_to(path, *codec, spool)?;
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    results.into_iter().collect::<Result<()>>()?;
    crate::interrupt::check()?;
    Ok(large
        .into_iter()
        .map(|(path, spool, _)| (path, spool))
        .collect())
}

/// Writes what `path`, compressed with `codec`, holds to the new file
/// `spool`, renamed into place once whole.
fn decompress_to(path: &Path, codec: Codec, spool: &Path) -> Result<()> {
    let file = File::open(path).map_err(|e| Error::input("cannot read input", path, e))?;
    let tmp = workdir::AttemptGuard::new(workdir::attempt_path(spool, 0));
    let out = workdir::create_new(tmp.path())
        .map_err(|e| Error::io("cannot decompress input to", spool, e))?;
    let mut out = io::BufWriter::with_capacity(FEED_CHUNK, out);
    // Ctrl-C ends gmr within a second whatever it waits on (the interrupt
    // watchdog), a decompression included.
    let reader = io::BufReader::with_capacity(FEED_CHUNK, &file);
    let copied = codec
        .decoder(reader)
        .and_then(|mut d| copy(&mut d, &mut out));
    copied.map_err(|e| {
        Error::job(format!(
            "cannot decompress input {} ({}) to {}: {e}",
            path.display(),
            codec.name(),
            spool.display()
        ))
    })?;
    let out = out
        .into_inner()
        .map_err(|e| Error::io("cannot decompress input to", spool, e.into_error()))?;
    workdir::close_file(out, false)
        .and_then(|()| fs::rename(tmp.path(), spool))
        .map_err(|e| Error::io("cannot decompress input to", spool, e))?;
    tmp.keep();
    Ok(())
}

/// Marks the splits of each decompressed copy with the file it came from.
pub fn mark_origins(splits: &mut [Split], spools: &[(PathBuf, PathBuf)]) {
    let mark = |piece: &mut Split| {
        if let Some((origin, _)) = spools.iter().find(|(_, s)| *s == piece.path) {
            piece.origin = Some(origin.clone());
        }
    };
    for split in splits {
        mark(split);
        split.more.iter_mut().for_each(mark);
    }
}

/// Cuts `files` into splits of about `split_size` bytes each.
pub fn plan_splits(files: &[PathBuf], split_size: u64) -> Result<Vec<Split>> {
    let split_size = split_size.max(1);
    let mut splits = Vec::new();
    for path in files {
        let (file, len) = open_input(path)?;
        if len == 0 {
            continue;
        }
        let codec = Codec::sniff(&file).map_err(|e| Error::input("cannot read input", path, e))?;
        if codec.is_some() {
            splits.push(Split {
                path: path.clone(),
                start: 0,
                end: len,
                codec,
                more: Vec::new(),
                origin: None,
            });
            continue;
        }
        let mut start = 0u64;
        while start < len {
            let end = cut_after(&file, len, start + split_size)
                .map_err(|e| Error::input("cannot read input", path, e))?;
            splits.push(Split {
                path: path.clone(),
                start,
                end,
                codec: None,
                more: Vec::new(),
                origin: None,
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

/// The end of a split of `file` (`len` bytes) that should end near
/// `target`: just past the first `\n` at or after `target - 1`, or the end
/// of the file. Reads only from there to that newline.
fn cut_after(file: &File, len: u64, target: u64) -> io::Result<u64> {
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
        if let Some(i) = memchr::memchr(b'\n', &buf[..n]) {
            return Ok((pos + i as u64 + 1).min(len));
        }
        pos += n as u64;
    }
    Ok(len)
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

/// Writes the bytes of one piece of a split (`more` aside) to the mapper;
/// returns whether they end with a newline (or are none). The file must be
/// as `stamps` recorded it when the job was planned, before and after the
/// feed; a file that changed fails with an [`Unrecoverable`] error naming
/// it (retrying would read the changed file again).
pub fn feed(split: &Split, stamps: &[InputStamp], w: &mut dyn Write) -> io::Result<bool> {
    let Some(codec) = split.codec else {
        let mut piece = Piece::open(split, stamps)?;
        let mut buf = Vec::with_capacity(((split.end - split.start) as usize).min(FEED_CHUNK));
        let mut last = b'\n';
        loop {
            buf.clear();
            let n = piece.read_into(&mut buf, FEED_CHUNK)?;
            if n == 0 {
                piece.finish()?;
                return Ok(last == b'\n');
            }
            last = buf[n - 1];
            w.write_all(&buf)?;
        }
    };
    let (file, stamp) = open_checked(split, stamps)?;
    let mut out = LastByte {
        inner: w,
        last: b'\n',
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
    Ok(out.last == b'\n')
}

/// Opens a split's file and checks that it is as planned.
fn open_checked<'a>(
    split: &Split,
    stamps: &'a [InputStamp],
) -> io::Result<(File, Option<&'a InputStamp>)> {
    let file = File::open(&split.path)?;
    let stamp = stamps.iter().find(|s| s.path == split.path);
    check_unchanged(&file, split, stamp)?;
    Ok((file, stamp))
}

/// One piece of an uncompressed split (`more` aside), read in order from
/// its first byte to its last, checked against its stamp before and after
/// (see [`feed`]).
pub struct Piece<'a> {
    split: &'a Split,
    stamp: Option<&'a InputStamp>,
    file: File,
    pos: u64,
}

impl<'a> Piece<'a> {
    /// Opens `split`, which must not be compressed.
    pub fn open(split: &'a Split, stamps: &'a [InputStamp]) -> io::Result<Piece<'a>> {
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
    pub fn read_into(&mut self, buf: &mut Vec<u8>, max: usize) -> io::Result<usize> {
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
    pub fn finish(self) -> io::Result<()> {
        check_unchanged(&self.file, self.split, self.stamp)
    }
}

/// Writes what `file`, compressed with `codec`, holds to `out`.
fn decompress(codec: Codec, file: &File, out: &mut LastByte) -> io::Result<()> {
    let reader = io::BufReader::with_capacity(FEED_CHUNK, file);
    copy(&mut codec.decoder(reader)?, out)
}

/// An input file, open, and its length.
fn open_input(path: &Path) -> Result<(File, u64)> {
    let read = |e| Error::input("cannot read input", path, e);
    let file = File::open(path).map_err(read)?;
    let len = file.metadata().map_err(read)?.len();
    Ok((file, len))
}

/// `io::copy` in chunks of [`FEED_CHUNK`].
fn copy(from: &mut dyn Read, to: &mut impl Write) -> io::Result<()> {
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
        let cut = |target| cut_after(&file, 20, target).unwrap();
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
