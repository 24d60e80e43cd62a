//! The job's output (docs/dev/architecture.md §3): the output directory checked and
//! made ready before anything runs, and, once every part is committed,
//! `_SUCCESS` written last, or the parts copied to standard output in
//! partition order.

use crate::error::{Error, Result};
use crate::workdir::{self, success_marker};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// An output directory, checked; made ready by [`OutputDir::make_ready`]
/// once every other check of the job has passed, so that a refused job
/// never removed anything.
#[derive(Debug, Clone)]
pub struct OutputDir {
    path: PathBuf,
    /// Its files are replaced (`--force`).
    replace: bool,
}

impl OutputDir {
    /// Checks the output directory `dir` (None: the output goes to
    /// stdout). An existing non-empty directory is refused unless `force`,
    /// and even then when it is, or contains, one of `keep` (the inputs,
    /// the current directory, the work directory): `--force` replaces an
    /// old output, never the data it is computed from.
    pub fn check(
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
        if non_empty {
            refuse_to_replace(dir, keep)?;
        }
        Ok(Some(OutputDir {
            path,
            replace: non_empty,
        }))
    }

    /// A directory that already holds this job's parts (a resumed job):
    /// kept as it is.
    pub fn keep(path: PathBuf) -> OutputDir {
        OutputDir {
            path,
            replace: false,
        }
    }

    /// Its absolute path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Empties it (`--force`) and makes it.
    pub fn make_ready(&self) -> Result<()> {
        let dir = &self.path;
        if self.replace {
            fs::remove_dir_all(dir)
                .map_err(|e| Error::input("cannot replace output directory", dir, e))?;
        }
        fs::create_dir_all(dir).map_err(|e| Error::input("cannot create output directory", dir, e))
    }
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

/// Writes `_SUCCESS` into `output`, the last file of a finished job, once
/// every part is durable.
pub fn mark_success(output: &Path) -> Result<()> {
    let marker = success_marker(output);
    File::create(&marker)
        .and_then(|f| workdir::close_file(f, true))
        .and_then(|()| workdir::sync_dir(output))
        .map_err(|e| Error::io("cannot write", &marker, e))
}

/// Writes `bytes` to stdout. A closed stdout (`| head`) is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<()> {
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

/// Copies `parts` to stdout, in order. A closed stdout (`| head`) is not
/// an error.
pub fn copy_to_stdout(parts: &[PathBuf]) -> Result<()> {
    let stdout = io::stdout();
    let mut out = stdout.lock();
    if out.flush().is_ok() && copy_in_place(parts)? {
        return Ok(());
    }
    for path in parts {
        let mut f = File::open(path).map_err(|e| Error::io("cannot read part", path, e))?;
        match io::copy(&mut f, &mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::io("cannot copy to stdout", path, e)),
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

/// Below this much output, parts are copied one after another.
const IN_PLACE_MIN: u64 = 1 << 20;

/// When stdout is a regular file written at its offset (`> out`, not
/// `>> out`), copies every part straight to its place in it, several at
/// once, with copy_file_range(2) at explicit offsets, then moves stdout's
/// offset past them: the same bytes as a copy one part after another, in
/// a fraction of the time on several cores (the copies are the kernel's
/// page copies, one core's worth each). Returns false, having changed
/// nothing that a copy from the start would not write again, where stdout
/// is something else or the kernel cannot copy so (another filesystem).
fn copy_in_place(parts: &[PathBuf]) -> Result<bool> {
    use std::os::fd::AsRawFd;
    use std::sync::atomic::{AtomicUsize, Ordering};
    const OUT: i32 = libc::STDOUT_FILENO;
    if parts.len() < 2 || !stdout_is_seekable_file() {
        return Ok(false);
    }
    let mut files = Vec::with_capacity(parts.len());
    let mut offsets = Vec::with_capacity(parts.len());
    // SAFETY: lseek on stdout only reads its offset.
    let start = unsafe { libc::lseek(OUT, 0, libc::SEEK_CUR) };
    if start < 0 {
        return Ok(false);
    }
    let mut at = start as u64;
    for path in parts {
        let read = |e| Error::io("cannot read part", path, e);
        let f = File::open(path).map_err(read)?;
        let len = f.metadata().map_err(read)?.len();
        files.push((f, len));
        offsets.push(at);
        at += len;
    }
    if at - (start as u64) < IN_PLACE_MIN {
        return Ok(false);
    }
    let next = AtomicUsize::new(0);
    let workers = crate::resources::cores().min(parts.len());
    let copied: Vec<std::result::Result<bool, (usize, io::Error)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                s.spawn(|| {
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some((f, len)) = files.get(i) else {
                            return Ok(true);
                        };
                        match copy_range(f.as_raw_fd(), *len, offsets[i]) {
                            Ok(true) => {}
                            Ok(false) => return Ok(false),
                            Err(e) => return Err((i, e)),
                        }
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("copy thread"))
            .collect()
    });
    for r in copied {
        match r {
            Ok(true) => {}
            Ok(false) => return Ok(false),
            Err((i, e)) => {
                return Err(Error::Job {
                    message: format!("cannot write stdout (copying {}): {e}", parts[i].display()),
                    source: Some(Box::new(e)),
                });
            }
        }
    }
    // SAFETY: lseek on stdout only moves its offset.
    if unsafe { libc::lseek(OUT, at as libc::off_t, libc::SEEK_SET) } < 0 {
        let e = io::Error::last_os_error();
        return Err(Error::Job {
            message: format!("cannot write stdout: {e}"),
            source: Some(Box::new(e)),
        });
    }
    Ok(true)
}

/// Whether stdout is a regular file opened for writing without
/// `O_APPEND` (which copy_file_range refuses at an offset).
fn stdout_is_seekable_file() -> bool {
    // SAFETY: fstat and fcntl only read the descriptor's state into plain data.
    unsafe {
        let mut st: libc::stat = std::mem::zeroed();
        if libc::fstat(libc::STDOUT_FILENO, &mut st) != 0
            || st.st_mode & libc::S_IFMT != libc::S_IFREG
        {
            return false;
        }
        let flags = libc::fcntl(libc::STDOUT_FILENO, libc::F_GETFL);
        flags >= 0 && flags & libc::O_APPEND == 0 && flags & libc::O_ACCMODE != libc::O_RDONLY
    }
}

/// Copies `len` bytes of `fd` from its start to stdout at `at`. Ok(false)
/// when the kernel cannot copy between the two (nothing to undo: stdout's
/// offset is untouched, and a copy from the start writes the same bytes).
fn copy_range(fd: i32, len: u64, mut at: u64) -> io::Result<bool> {
    let mut from: i64 = 0;
    let mut left = len;
    while left > 0 {
        let mut to = at as i64;
        // SAFETY: copy_file_range reads and advances the two offsets we
        // pass; the descriptors are open for the call's length.
        let n = unsafe {
            libc::syscall(
                libc::SYS_copy_file_range,
                fd,
                &mut from as *mut i64,
                libc::STDOUT_FILENO,
                &mut to as *mut i64,
                left.min(1 << 30) as usize,
                0u32,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            return match e.raw_os_error() {
                Some(libc::EINTR) => continue,
                Some(
                    libc::EXDEV | libc::ENOSYS | libc::EINVAL | libc::EOPNOTSUPP | libc::EBADF,
                ) => Ok(false),
                _ => Err(e),
            };
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the part ended before its length",
            ));
        }
        left -= n as u64;
        at += n as u64;
    }
    Ok(true)
}
