//! Files gmr writes, wherever they are: new and private (0600) unless
//! they are the user's output, never opened through a symbolic link (so
//! that nobody who can write a directory can redirect what gmr writes),
//! closed so that a failed write on its way to the disk or the file
//! server is seen, and synced where a crash must not leave them short
//! (docs/dev/architecture.md, "Invariants").

use crate::error::{Error, Result};
use serde::{Serialize, de::DeserializeOwned};
use std::fs;
use std::io::{self, Write};
use std::path::Path;

/// Creates a new task file, private to its user (0600): never one that
/// exists, and never through a symbolic link (O_EXCL, O_NOFOLLOW), so that
/// nobody who can write the directory can redirect what a task writes.
pub(crate) fn create_new(path: &Path) -> io::Result<fs::File> {
    create_new_mode(path, 0o600)
}

/// Creates a new file of the user's output directory: as [`create_new`],
/// but with the permissions the umask gives, as any tool's output.
pub(crate) fn create_output(path: &Path) -> io::Result<fs::File> {
    create_new_mode(path, 0o666)
}

fn create_new_mode(path: &Path, mode: u32) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Opens a file to append to (a task's log), private to its user, never
/// through a symbolic link.
pub(crate) fn open_append(path: &Path) -> io::Result<fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
}

/// Removes a file or directory tree, ignoring errors (cleanup paths).
pub(crate) fn remove_path(path: &Path) {
    if path.is_dir() {
        let _ = fs::remove_dir_all(path);
    } else {
        let _ = fs::remove_file(path);
    }
}

/// Writes `value` as JSON to `path`, durably (see [`close_file`]).
pub(crate) fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    write_new(path, &json_bytes(value))
}

/// `value` as the JSON gmr writes (pretty, a final newline).
pub(crate) fn json_bytes<T: Serialize>(value: &T) -> Vec<u8> {
    let mut bytes = serde_json::to_vec_pretty(value).expect("serializable");
    bytes.push(b'\n');
    bytes
}

/// Writes `bytes` to the new private file `path` (see [`create_new`]), not
/// synced: what a crash may lose is made again (probes, batch files).
pub(crate) fn write_private(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut file = create_new(path)?;
    file.write_all(bytes)?;
    close_file(file, false)
}

/// Writes `bytes` to the new file `path`, durably.
pub(crate) fn write_new(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut file = create_new(path).map_err(|e| Error::io("cannot write", path, e))?;
    file.write_all(bytes)
        .and_then(|()| close_file(file, true))
        .map_err(|e| Error::io("cannot write", path, e))
}

/// Closes a written file, returning what the kernel reports: a write that
/// failed on its way to the disk or the file server (NFS reports a full
/// disk or quota at close) fails here, so that a short file is never
/// committed. A `durable` file is synced to disk first, so that not even a
/// crash of the machine leaves it short once committed: output parts and
/// commit records are; the bulk intermediate data in the work directory
/// (map runs, shuffle parts) is not, as in Hadoop and Spark, because a
/// sync of every byte costs I/O-bound jobs a quarter of their time, and a
/// resumed job checks those files' lengths against their indexes.
pub(crate) fn close_file(file: fs::File, durable: bool) -> io::Result<()> {
    use std::os::fd::IntoRawFd;
    if durable {
        file.sync_all()?;
    }
    let fd = file.into_raw_fd();
    // SAFETY: `fd` was just released by the File, so it is closed once.
    if unsafe { libc::close(fd) } != 0 {
        let e = io::Error::last_os_error();
        // After EINTR the descriptor is closed on Linux; the data is synced.
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
    Ok(())
}

/// Makes the names in `dir` durable (after a rename or link into it).
/// Filesystems that cannot sync a directory are left as they are.
pub(crate) fn sync_dir(dir: &Path) -> io::Result<()> {
    match fs::File::open(dir).and_then(|d| d.sync_all()) {
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EINVAL | libc::EBADF | libc::EROFS)
            ) =>
        {
            Ok(())
        }
        other => other,
    }
}

/// Makes everything written to the filesystem of `path` durable
/// (syncfs(2)): one call for the thousands of small files of an output
/// filed by key, where a sync of each file and directory took seconds.
pub(crate) fn sync_filesystem(path: &Path) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let dir = fs::File::open(path)?;
    // SAFETY: the descriptor is open for the call.
    if unsafe { libc::syncfs(dir.as_raw_fd()) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Reads JSON from `path`.
pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = fs::read(path).map_err(|e| Error::io("cannot read", path, e))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::job(format!("cannot parse {}: {e}", path.display())))
}

/// A lock on a directory (flock(2) on the directory itself, so no file of
/// gmr's need be in it), released when dropped.
#[derive(Debug)]
pub(crate) struct DirLock {
    _dir: Option<fs::File>,
}

/// Takes `dir`'s lock without waiting: None when another process holds
/// it. A filesystem without locks goes without one, and on NFS a lock on
/// a directory may hold on one machine only: a guard against the common
/// mistake, not a guarantee across hosts.
pub(crate) fn try_lock_dir(dir: &Path) -> io::Result<Option<DirLock>> {
    use std::os::fd::AsRawFd;
    let file = fs::File::open(dir)?;
    // SAFETY: flock on a descriptor we own; it only takes a lock.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        return Ok(Some(DirLock { _dir: Some(file) }));
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EWOULDBLOCK) => Ok(None),
        _ => Ok(Some(DirLock { _dir: None })),
    }
}
