//! The job's output (docs/contracts.md §3): the output directory checked and
//! made ready before anything runs, and, once every part is committed,
//! `_SUCCESS` written last, or the parts copied to standard output in
//! partition order.

use crate::error::{Error, Result};
use crate::store::workdir::{self, claim_marker, success_marker};
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

/// An output directory, checked; made ready by [`OutputDir::make_ready`]
/// once every other check of the job has passed, so that a refused job
/// never removed anything.
#[derive(Debug, Clone)]
pub(crate) struct OutputDir {
    path: PathBuf,
    /// The old output's files, removed to replace it (`--force`).
    replace: Vec<PathBuf>,
    /// It holds this job's own parts (a resumed job).
    own: bool,
}

/// The lock a job holds on its output directory while it runs, so that
/// two jobs never write one directory (each would take the other's parts
/// for its own); released when dropped.
#[derive(Debug)]
pub(crate) struct OutputLock {
    _lock: crate::files::DirLock,
}

impl OutputDir {
    /// Checks the output directory `dir` (None: the output goes to
    /// stdout). An existing non-empty directory is refused unless `force`,
    /// and even then when it is, or contains, one of `keep` (the inputs,
    /// the current directory, the work directory), or holds anything but
    /// an old output's files (parts and `_SUCCESS`): `--force` replaces an
    /// old output, never a script, a log or the data it is computed from.
    pub(crate) fn check(
        dir: Option<&Path>,
        force: bool,
        keep: &[(&str, &Path)],
    ) -> Result<Option<OutputDir>> {
        let Some(dir) = dir else {
            return Ok(None);
        };
        let path =
            std::path::absolute(dir).map_err(|e| Error::input("bad output directory", dir, e))?;
        let non_empty = match fs::read_dir(dir) {
            Ok(mut entries) => entries.next().is_some(),
            Err(_) if dir.exists() => {
                return Err(Error::usage(format!(
                    "output {} exists and is not a directory; choose another -o",
                    dir.display()
                )));
            }
            Err(_) => false,
        };
        if non_empty && !force {
            return Err(Error::usage(format!(
                "output directory {} exists and is not empty; remove it, choose another, or pass --force to replace it",
                dir.display()
            )));
        }
        let mut replace = Vec::new();
        if non_empty {
            refuse_to_replace(dir, keep)?;
            replace = old_output_files(dir)?;
        }
        Ok(Some(OutputDir {
            path,
            replace,
            own: false,
        }))
    }

    /// A directory that already holds this job's parts (a resumed job):
    /// kept as it is.
    pub(crate) fn keep(path: PathBuf) -> OutputDir {
        OutputDir {
            path,
            replace: Vec::new(),
            own: true,
        }
    }

    /// Its absolute path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Makes it, locks it for the job, and removes the old output's files
    /// (`--force`). A directory another gmr job holds, or that was written
    /// since it was checked, is refused: removing nothing.
    pub(crate) fn make_ready(&self) -> Result<OutputLock> {
        let dir = &self.path;
        fs::create_dir_all(dir)
            .map_err(|e| Error::input("cannot create output directory", dir, e))?;
        let lock = lock_dir(dir)?;
        if !self.own {
            let read = |e| Error::input("cannot read output directory", dir, e);
            let replaced: std::collections::HashSet<_> =
                self.replace.iter().filter_map(|r| r.file_name()).collect();
            for entry in fs::read_dir(dir).map_err(read)? {
                let path = entry.map_err(read)?.path();
                if !path.file_name().is_some_and(|n| replaced.contains(n)) {
                    return Err(Error::usage(format!(
                        "output directory {} changed since gmr looked at it ({} appeared); nothing was removed: is another job writing it? choose another output directory",
                        dir.display(),
                        path.display()
                    )));
                }
            }
        }
        // A key's directory comes after its parts: removed once empty (one
        // that is not holds what appeared since, and stays).
        for file in &self.replace {
            let removed = match fs::symlink_metadata(file) {
                Ok(m)
                    if m.is_dir()
                        && !file
                            .file_name()
                            .is_some_and(|n| workdir::is_attempt_name(&n.to_string_lossy())) =>
                {
                    fs::remove_dir(file)
                }
                Ok(_) => {
                    crate::files::remove_path(file);
                    Ok(())
                }
                Err(e) => Err(e),
            };
            match removed {
                Err(e) if e.kind() != io::ErrorKind::NotFound => {
                    return Err(Error::input("cannot replace old output", file, e));
                }
                _ => {}
            }
        }
        Ok(lock)
    }
}

/// Takes `dir`'s lock (on the directory itself: no file of gmr's among
/// the parts).
fn lock_dir(dir: &Path) -> Result<OutputLock> {
    match crate::files::try_lock_dir(dir) {
        Ok(Some(lock)) => Ok(OutputLock { _lock: lock }),
        Ok(None) => Err(Error::usage(format!(
            "output directory {} is being written by another gmr job; wait for it to end, or choose another output directory",
            dir.display()
        ))),
        Err(e) => Err(Error::input("cannot open output directory", dir, e)),
    }
}

/// The files of an old output in `dir`, which `--force` removes; refuses
/// a directory that holds anything else (a subdirectory, a script, a log,
/// a link to an input), naming it: that is no old output of gmr's.
fn old_output_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let read = |e| Error::input("cannot read output directory", dir, e);
    let refuse = |name: &Path| {
        Error::usage(format!(
            "--force replaces an old output (part-NNNNN files and _SUCCESS, or directories of them from --output-by-key), and {} also holds {}; nothing was removed: choose another output directory, or remove it yourself",
            dir.display(),
            name.display()
        ))
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read)? {
        let entry = entry.map_err(read)?;
        let name = entry.file_name();
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && !workdir::is_attempt_name(&name.to_string_lossy()) {
            // A key's directory of an output filed by key: its parts, and
            // then itself.
            let sub = entry.path();
            let read = |e| Error::input("cannot read output directory", &sub, e);
            for inner in fs::read_dir(&sub).map_err(read)? {
                let inner = inner.map_err(read)?;
                let inner_name = inner.file_name();
                let is_file = inner.file_type().is_ok_and(|t| !t.is_dir());
                if !is_file || !workdir::is_output_name(&inner_name.to_string_lossy()) {
                    return Err(refuse(&Path::new(&name).join(&inner_name)));
                }
                files.push(inner.path());
            }
        } else if !workdir::is_output_name(&name.to_string_lossy()) {
            return Err(refuse(Path::new(&name)));
        }
        files.push(entry.path());
    }
    Ok(files)
}

/// Refuses to replace `dir` when it is `/`, the home directory, or holds
/// any of `keep` (what each is, and its path).
fn refuse_to_replace(dir: &Path, keep: &[(&str, &Path)]) -> Result<()> {
    let real = fs::canonicalize(dir).map_err(|e| Error::input("bad output directory", dir, e))?;
    let home = std::env::var_os("HOME").and_then(|h| fs::canonicalize(h).ok());
    if real.parent().is_none() || home.as_ref().is_some_and(|h| h.starts_with(&real)) {
        return Err(Error::usage(format!(
            "--force will not replace {}: choose an output directory of its own",
            dir.display()
        )));
    }
    for (what, k) in keep {
        let Ok(k_real) = fs::canonicalize(k).or_else(|_| std::path::absolute(k)) else {
            continue;
        };
        if k_real.starts_with(&real) {
            let how = if k_real == real {
                format!("is {what}")
            } else {
                format!("holds {what} {}", k.display())
            };
            return Err(Error::usage(format!(
                "--force would remove {}, which {how}; nothing was removed: choose another output directory",
                dir.display()
            )));
        }
    }
    Ok(())
}

/// Claims `output` for `job`: from now on only attempts of that job commit
/// parts there (an attempt of an earlier job that outlived it, an array
/// element of a killed coordinator, finds another name and stops). Written
/// whole and renamed into place.
pub(crate) fn claim(output: &Path, job: &str) -> Result<()> {
    let marker = claim_marker(output);
    let tmp = workdir::attempt_path(&marker, 0);
    let written = crate::files::create_new(&tmp)
        .and_then(|mut f| {
            f.write_all(format!("{job}\n").as_bytes())?;
            crate::files::close_file(f, true)
        })
        .and_then(|()| fs::rename(&tmp, &marker))
        .and_then(|()| crate::files::sync_dir(output));
    written.map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::io("cannot write", &marker, e)
    })
}

/// Ends the claim on `output` (see [`claim`]).
pub(crate) fn release(output: &Path) {
    let _ = fs::remove_file(claim_marker(output));
}

/// The job `output` is claimed for, if any.
pub(crate) fn claimed_by(output: &Path) -> io::Result<Option<String>> {
    match fs::read_to_string(claim_marker(output)) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Writes `_SKIPPED` into `output` (a JSON line per map task skipped
/// after its retries, `--max-failed-tasks`), before `_SUCCESS`.
pub(crate) fn write_skipped(output: &Path, lines: &[u8]) -> Result<()> {
    use std::io::Write as _;
    let path = workdir::skipped_list(output);
    crate::files::remove_path(&path);
    crate::files::create_output(&path)
        .and_then(|mut f| {
            f.write_all(lines)
                .and_then(|()| crate::files::close_file(f, true))
        })
        .map_err(|e| Error::io("cannot write", &path, e))
}

/// Writes `_SUCCESS` into `output`, the last file of a finished job, once
/// every part is durable; the job's claim goes with it (no attempt of it
/// commits any more).
pub(crate) fn mark_success(output: &Path) -> Result<()> {
    let marker = success_marker(output);
    // A new file, never through a link: one left by an earlier run of the
    // job is replaced.
    match std::fs::remove_file(&marker) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            return Err(Error::io("cannot replace", &marker, e));
        }
        _ => {}
    }
    crate::files::create_output(&marker)
        .and_then(|f| crate::files::close_file(f, true))
        .and_then(|()| crate::files::sync_dir(output))
        .map_err(|e| Error::io("cannot write", &marker, e))?;
    release(output);
    Ok(())
}

/// Writes `bytes` to stdout. A closed stdout (`| head`) is not an error.
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Job {
            message: format!("cannot write stdout: {e}"),
            source: Some(Box::new(e)),
        }),
        _ => Ok(()),
    }
}

/// Copies the `parts` parts of `output` to stdout, in order. A closed
/// stdout (`| head`) is not an error. A stdout that is a file gets them in
/// a range of its own ([`StdoutParts`]): other writers of the same file
/// (`xargs -P4 gmr run ... > all`) cannot land between the parts, nor
/// race with the copy for the file's offset (copy_file_range(2) reads and
/// sets it without the lock that write(2) and lseek(2) take), and a copy
/// that fails is taken back.
pub(crate) fn copy_to_stdout(parts: impl Iterator<Item = PathBuf>) -> Result<()> {
    let parts: Vec<PathBuf> = parts.collect();
    let sizes = parts
        .iter()
        .map(|p| fs::metadata(p).map(|m| m.len()))
        .collect::<io::Result<Vec<u64>>>();
    if let Some(ranges) = sizes.ok().and_then(|s| StdoutParts::take(&s)) {
        // A large buffer: a read and a pwrite per MiB.
        let mut buf = vec![0u8; 1 << 20];
        for (p, path) in parts.iter().enumerate() {
            let mut f = File::open(path).map_err(|e| Error::io("cannot read part", path, e))?;
            let mut out = ranges.part(p);
            loop {
                let n = f
                    .read(&mut buf)
                    .map_err(|e| Error::io("cannot read part", path, e))?;
                if n == 0 {
                    break;
                }
                out.write_all(&buf[..n])
                    .map_err(|e| Error::io("cannot copy to stdout", path, e))?;
            }
            out.finish()
                .map_err(|e| Error::io("cannot copy to stdout", path, e))?;
        }
        ranges.finish();
        return Ok(());
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for path in parts {
        let mut f = File::open(&path).map_err(|e| Error::io("cannot read part", &path, e))?;
        match io::copy(&mut f, &mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::io("cannot copy to stdout", &path, e)),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Job {
            message: format!("cannot write stdout: {e}"),
            source: Some(Box::new(e)),
        }),
        _ => Ok(()),
    }
}

/// Parts written straight into standard output, each at its place, when
/// stdout is a file (`gmr run ... > sorted.txt`) and each part's size is
/// known before it is made (a reducer that is `cat`: a part is its
/// partition's records, whose bytes the map indexes count). That spares
/// writing every part into the work directory and copying it out again:
/// for a parallel sort, a third of the bytes it writes.
///
/// The output's range of the file is taken at once: stdout's offset moves
/// past it, atomically, so that whatever else writes through the same
/// stdout (`xargs -P4 gmr run ... > all`, a command after gmr) writes
/// after it. Any number of attempts of a part may write it, each the same
/// bytes, in its range only. Until [`StdoutParts::finish`], dropping this
/// (or an interrupt that abandons the process) cuts stdout back to where
/// the job found it, when nothing was written after the range meanwhile:
/// a failed job leaves no partial output.
#[derive(Debug)]
pub(crate) struct StdoutParts {
    file: File,
    /// Where the output starts in the file.
    base: u64,
    /// Each part's offset from `base`, and its end.
    ranges: Vec<(u64, u64)>,
}

impl StdoutParts {
    /// Takes stdout for parts of `sizes` bytes, when it is a regular file
    /// not opened for appending, whose offset is at or past its end (so
    /// nothing of the file lies past the output), and not where stderr
    /// goes (a warning during the job would land on the parts). None
    /// otherwise: the parts are then written at stdout's offset.
    pub(crate) fn take(sizes: &[u64]) -> Option<StdoutParts> {
        use std::os::fd::{AsFd, AsRawFd};
        use std::os::unix::fs::MetadataExt;
        let file = File::from(io::stdout().as_fd().try_clone_to_owned().ok()?);
        let fd = file.as_raw_fd();
        // SAFETY: fcntl(F_GETFL) on a descriptor this process owns.
        let flags = unsafe { libc::fcntl(fd, libc::F_GETFL) };
        if flags < 0 || flags & libc::O_APPEND != 0 || flags & libc::O_ACCMODE == libc::O_RDONLY {
            return None;
        }
        // Nothing of the file past its offset (a file opened with `1<>`
        // may hold more: cut back, it would lose it). Past its end is
        // fine: another job's range, reserved and not written yet.
        let meta = file.metadata().ok()?;
        if !meta.is_file() || offset(fd).is_none_or(|at| at < meta.len()) {
            return None;
        }
        let stderr = File::from(io::stderr().as_fd().try_clone_to_owned().ok()?);
        if stderr
            .metadata()
            .is_ok_and(|m| (m.dev(), m.ino()) == (meta.dev(), meta.ino()))
        {
            return None;
        }
        let mut at = 0;
        let ranges: Vec<(u64, u64)> = sizes
            .iter()
            .map(|&n| {
                at += n;
                (at - n, at)
            })
            .collect();
        // Moves the shared offset past the output, atomically (the file's
        // position lock), so that the range is this job's alone.
        // SAFETY: lseek on a descriptor this value owns.
        let end = unsafe { libc::lseek(fd, at as libc::off_t, libc::SEEK_CUR) };
        if end < 0 {
            return None;
        }
        let (base, end) = (end as u64 - at, end as u64);
        crate::interrupt::on_abandon(Some(Box::new(move || cut_back(fd, base, end))));
        Some(StdoutParts { file, base, ranges })
    }

    /// A writer of part `p`, in its range of stdout.
    pub(crate) fn part(&self, p: usize) -> PartRange<'_> {
        let (start, end) = self.ranges[p];
        PartRange {
            parts: self,
            p,
            at: start,
            end,
        }
    }

    /// The job succeeded: the output stays.
    pub(crate) fn finish(&self) {
        crate::interrupt::on_abandon(None);
    }
}

impl Drop for StdoutParts {
    /// A job that did not finish takes back what it wrote.
    fn drop(&mut self) {
        // The undo set in `take`: done here unless `finish` cleared it, and
        // done once even if the signal thread is about to abandon gmr.
        crate::interrupt::undo_now();
    }
}

/// The offset of `fd`.
fn offset(fd: std::os::fd::RawFd) -> Option<u64> {
    // SAFETY: lseek(SEEK_CUR, 0) only reads the offset.
    let at = unsafe { libc::lseek(fd, 0, libc::SEEK_CUR) };
    u64::try_from(at).ok()
}

/// Cuts the file of `fd` back to `base` and puts its offset there, when
/// nothing was written past `end`, the end of the output that took
/// `base..end`; else leaves it (what others wrote after it stays). A
/// process that writes at `end` between the check and the cut loses that
/// write: the cut is for a job that fails while it has its stdout to
/// itself.
fn cut_back(fd: std::os::fd::RawFd, base: u64, end: u64) {
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat fills `st`; ftruncate and lseek act on `fd` only.
    unsafe {
        if offset(fd) == Some(end)
            && libc::fstat(fd, &mut st) == 0
            && st.st_size as u64 <= end
            && libc::ftruncate(fd, base as libc::off_t) == 0
        {
            libc::lseek(fd, base as libc::off_t, libc::SEEK_SET);
        }
    }
}

/// One part's range of stdout ([`StdoutParts::part`]): written front to
/// back, never past its end.
pub(crate) struct PartRange<'a> {
    parts: &'a StdoutParts,
    p: usize,
    at: u64,
    end: u64,
}

impl PartRange<'_> {
    /// Checks that the part filled its range exactly.
    pub(crate) fn finish(self) -> io::Result<()> {
        match self.at == self.end {
            true => Ok(()),
            false => Err(self.mismatch()),
        }
    }

    fn mismatch(&self) -> io::Error {
        let (start, end) = self.parts.ranges[self.p];
        io::Error::other(crate::error::Unrecoverable(format!(
            "internal error: part {} of stdout is not the {} bytes its partition holds; please report this",
            self.p,
            end - start
        )))
    }
}

impl Write for PartRange<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        use std::os::unix::fs::FileExt;
        // Stopped soon enough for the output to be cut back before an
        // interrupted gmr is abandoned.
        if crate::interrupt::is_set() {
            return Err(io::Error::other("interrupted"));
        }
        if self.at + buf.len() as u64 > self.end {
            return Err(self.mismatch());
        }
        // At most 1 MiB a write, the interrupt checked between them: a
        // long line is no long write that could land after a cut back.
        let buf = &buf[..buf.len().min(1 << 20)];
        self.parts
            .file
            .write_all_at(buf, self.parts.base + self.at)
            .map_err(|e| {
                let message = crate::error::io_message("cannot write", Path::new("stdout"), &e);
                io::Error::new(e.kind(), message)
            })?;
        self.at += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}
