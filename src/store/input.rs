//! The user's inputs, expanded into the files a job reads: directories
//! listed, streams (stdin, FIFOs, `<(…)`, devices) spooled into the work
//! directory, large compressed files decompressed there so that they can
//! be cut into splits (docs/contracts.md §2).

use crate::data::codec::Codec;
use crate::data::split::{FEED_CHUNK, Split, copy, open_input};
use crate::error::{Error, Result};
use crate::store::workdir;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// Whether `input` is read as a stream, spooled first: `-`, anything that
/// is not a regular file or a directory (a FIFO, `<(…)`, `/dev/stdin`, a
/// character device), and a file whose size the kernel does not know.
/// A directory of such files (`/proc/sys/vm`) is read as streams too.
pub(crate) fn is_stream(input: &Path) -> bool {
    input.as_os_str() == "-"
        || fs::metadata(input).is_ok_and(|m| match m.is_dir() {
            true => pseudo_fs(input),
            false => !m.is_file() || size_unknown(input, &m),
        })
}

/// Whether the regular file `path` has a size that says nothing of what a
/// read gives: a file of procfs, sysfs and their kin (`/proc/cpuinfo` has
/// size 0, a sysfs attribute 4096, whatever they hold), or any file of
/// size 0 that a read finds bytes in. Split by its size, such a file would
/// read as empty, or as changed while the job ran.
fn size_unknown(path: &Path, meta: &fs::Metadata) -> bool {
    pseudo_fs(path)
        || meta.len() == 0
            && File::open(path).is_ok_and(|mut f| f.read(&mut [0u8; 1]).is_ok_and(|n| n > 0))
}

/// Whether `path` is on a filesystem whose files are made as they are
/// read.
fn pseudo_fs(path: &Path) -> bool {
    // Filesystems whose files are made as they are read (linux/magic.h).
    const PSEUDO: [u32; 12] = [
        0x9fa0,      // proc
        0x6265_6572, // sysfs
        0x6462_6720, // debugfs
        0x7472_6163, // tracefs
        0x6367_7270, // cgroup2
        0x0027_e0eb, // cgroup
        0x7363_6673, // securityfs
        0x6265_6570, // configfs
        0xcafe_4a11, // bpf
        0xde5e_81e4, // efivarfs
        0x6165_676c, // pstore
        0x6e73_6673, // nsfs
    ];
    use std::os::unix::ffi::OsStrExt;
    let Ok(c_path) = std::ffi::CString::new(path.as_os_str().as_bytes()) else {
        return false;
    };
    // SAFETY: statfs fills a plain struct for a NUL-terminated path.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    let ok = unsafe { libc::statfs(c_path.as_ptr(), &mut st) } == 0;
    // The magic numbers are 32 bits (f_type may be a signed word).
    ok && PSEUDO.contains(&(st.f_type as u32))
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
pub(crate) fn resolve_inputs(
    inputs: &[PathBuf],
    spool_dir: &Path,
    replace: bool,
) -> Result<Vec<PathBuf>> {
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
            Some(m) if m.is_dir() => {
                // Made absolute once, not once for each of its files.
                let dir = std::path::absolute(input)
                    .map_err(|e| Error::input("cannot resolve input", input, e))?;
                let listed = list_dir(&dir)?;
                if !pseudo_fs(&dir) {
                    files.extend(listed);
                    continue;
                }
                // Files of /proc or /sys: each read as a stream.
                for file in listed {
                    streams += 1;
                    let spool = workdir::stream_spool(spool_dir, Some(streams));
                    files.push(spool_stream(&file, false, &spool, replace)?);
                }
            }
            Some(m) if m.is_file() && !size_unknown(input, m) => {
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
        .map(|f| match f.is_absolute() {
            true => Ok(f),
            false => {
                std::path::absolute(&f).map_err(|e| Error::input("cannot resolve input", &f, e))
            }
        })
        .collect()
}

/// The regular files directly inside `dir`, in name order, hidden and
/// `_` names skipped.
fn list_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut names = Vec::new();
    let entries = fs::read_dir(dir).map_err(|e| Error::input("cannot list input", dir, e))?;
    for entry in entries {
        crate::interrupt::check()?;
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
    let mut out = crate::files::create_new(tmp.path())
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
pub(crate) type Copies = Vec<(PathBuf, PathBuf)>;

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
pub(crate) fn spool_compressed(
    files: &[PathBuf],
    spool_dir: &Path,
    split_size: u64,
    jobs: usize,
) -> Result<Copies> {
    let mut large = Vec::new();
    for path in files {
        // Only a file of a split or more is worth sniffing: thousands of
        // small files are not opened here.
        let len = fs::metadata(path)
            .map_err(|e| Error::input("cannot read input", path, e))?
            .len();
        if len < split_size.max(1) {
            continue;
        }
        let (file, _) = open_input(path)?;
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
    let out = crate::files::create_new(tmp.path())
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
    crate::files::close_file(out, false)
        .and_then(|()| fs::rename(tmp.path(), spool))
        .map_err(|e| Error::io("cannot decompress input to", spool, e))?;
    tmp.keep();
    Ok(())
}

/// Marks the splits of each decompressed copy with the file it came from.
pub(crate) fn mark_origins(splits: &mut [Split], spools: &[(PathBuf, PathBuf)]) {
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
