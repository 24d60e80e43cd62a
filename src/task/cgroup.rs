//! `--task-memory` as a memory cgroup: where gmr can make one under its
//! own (cgroup v2's `memory.max`, or v1's `memory.limit_in_bytes`), each
//! command runs in a cgroup of its own with the limit, which covers every
//! process of a pipeline together, and a command that passes it is killed
//! by the kernel's OOM killer and said to be. Where none can be made (no
//! memory controller, no right to write there), `task/process.rs` falls
//! back to RLIMIT_DATA on each process.

use std::fs::{self, File};
use std::io::{self, Read};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// Which cgroup interface a hierarchy speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Version {
    V1,
    V2,
}

/// One command's memory cgroup, removed when dropped.
#[derive(Debug)]
pub(crate) struct Cgroup {
    dir: PathBuf,
    version: Version,
    /// `cgroup.procs`, open for the child to write its pid into before it
    /// runs the command.
    procs: File,
}

impl Cgroup {
    /// A new cgroup limited to `bytes` under gmr's own memory cgroup, or
    /// None where none can be made.
    pub(crate) fn new(bytes: u64) -> Option<Cgroup> {
        let (base, version) = own_memory_cgroup()?;
        static N: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "gmr-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let dir = base.join(name);
        fs::create_dir(&dir).ok()?;
        let made = (|| {
            match version {
                Version::V2 => {
                    fs::write(dir.join("memory.max"), bytes.to_string())?;
                    // No swap to go on past the limit, where swap is
                    // accounted.
                    let _ = fs::write(dir.join("memory.swap.max"), "0");
                }
                Version::V1 => {
                    fs::write(dir.join("memory.limit_in_bytes"), bytes.to_string())?;
                    // Memory and swap together where swap is accounted;
                    // where it is not, no swapping at all, so that a
                    // command past the limit is killed, not swapped out.
                    if fs::write(dir.join("memory.memsw.limit_in_bytes"), bytes.to_string())
                        .is_err()
                    {
                        let _ = fs::write(dir.join("memory.swappiness"), "0");
                    }
                }
            }
            fs::OpenOptions::new()
                .write(true)
                .open(dir.join("cgroup.procs"))
        })();
        match made {
            Ok(procs) => Some(Cgroup {
                dir,
                version,
                procs,
            }),
            Err(_) => {
                let _ = fs::remove_dir(&dir);
                None
            }
        }
    }

    /// The descriptor a child writes its pid into ([`join`]).
    pub(crate) fn procs_fd(&self) -> RawFd {
        self.procs.as_raw_fd()
    }

    /// Whether the kernel's OOM killer killed a process of the cgroup.
    pub(crate) fn oom_killed(&self) -> bool {
        let file = match self.version {
            Version::V2 => "memory.events",
            Version::V1 => "memory.oom_control",
        };
        let mut text = String::new();
        let read = File::open(self.dir.join(file)).and_then(|mut f| f.read_to_string(&mut text));
        read.is_ok()
            && text.lines().any(|l| {
                l.strip_prefix("oom_kill ")
                    .and_then(|n| n.trim().parse::<u64>().ok())
                    .is_some_and(|n| n > 0)
            })
    }
}

impl Drop for Cgroup {
    /// Removes the cgroup once its processes are gone (a process the
    /// command left behind is killed: the command's run is over).
    fn drop(&mut self) {
        for _ in 0..50 {
            match fs::remove_dir(&self.dir) {
                Err(e) if e.raw_os_error() == Some(libc::EBUSY) => {
                    for pid in pids(&self.dir) {
                        // SAFETY: kill(2) has no memory effects.
                        unsafe { libc::kill(pid, libc::SIGKILL) };
                    }
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                _ => return,
            }
        }
    }
}

/// The pids in the cgroup `dir`.
fn pids(dir: &Path) -> Vec<i32> {
    fs::read_to_string(dir.join("cgroup.procs"))
        .map(|t| t.lines().filter_map(|l| l.trim().parse().ok()).collect())
        .unwrap_or_default()
}

/// Moves the calling process into the cgroup whose `cgroup.procs` is open
/// as `fd`. Called between fork and exec: only async-signal-safe calls, no
/// allocation.
pub(crate) fn join(fd: RawFd) -> io::Result<()> {
    // SAFETY: getpid and write are async-signal-safe; the buffer is ours.
    let pid = unsafe { libc::getpid() };
    let mut digits = [0u8; 20];
    let pid = crate::data::linebuf::decimal(pid as u64, &mut digits);
    // SAFETY: as above.
    let wrote = unsafe { libc::write(fd, pid.as_ptr().cast(), pid.len()) };
    if wrote != pid.len() as isize {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// gmr's own memory cgroup, as a directory it may make cgroups in: cgroup
/// v2's, when the memory controller is enabled for its children (or can
/// be), else v1's memory hierarchy.
fn own_memory_cgroup() -> Option<(PathBuf, Version)> {
    let mounts = fs::read_to_string("/proc/self/mountinfo").ok()?;
    let cgroups = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut v1 = None;
    let mut v2 = None;
    for line in mounts.lines() {
        // ID PARENT MAJ:MIN ROOT MOUNT OPTIONS... - TYPE SOURCE SUPER
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(dash) = fields.iter().position(|&f| f == "-") else {
            continue;
        };
        let (Some(root), Some(mount), Some(kind)) =
            (fields.get(3), fields.get(4), fields.get(dash + 1))
        else {
            continue;
        };
        let options = fields.get(dash + 3).copied().unwrap_or_default();
        match *kind {
            "cgroup2" if v2.is_none() => v2 = Some((root.to_string(), mount.to_string())),
            "cgroup" if options.split(',').any(|o| o == "memory") => {
                v1 = Some((root.to_string(), mount.to_string()));
            }
            _ => {}
        }
    }
    // A process's cgroup, relative to a mount of the hierarchy's root.
    let under = |(root, mount): &(String, String), path: &str| -> Option<PathBuf> {
        let rel = path.strip_prefix(root.as_str()).unwrap_or(path);
        let dir = Path::new(mount).join(rel.trim_start_matches('/'));
        dir.is_dir().then_some(dir)
    };
    // Each line of /proc/self/cgroup: ID:CONTROLLERS:PATH (v2: 0::PATH).
    let lines: Vec<(&str, &str)> = cgroups
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, ':');
            parts.next()?;
            Some((parts.next()?, parts.next()?))
        })
        .collect();
    let v2_dir = lines
        .iter()
        .filter(|(controllers, _)| controllers.is_empty())
        .find_map(|(_, path)| v2.as_ref().and_then(|m| under(m, path)))
        .filter(|dir| v2_memory_ready(dir));
    if let Some(dir) = v2_dir {
        return Some((dir, Version::V2));
    }
    let v1_dir = lines
        .iter()
        .filter(|(controllers, _)| controllers.split(',').any(|c| c == "memory"))
        .find_map(|(_, path)| v1.as_ref().and_then(|m| under(m, path)))?;
    Some((v1_dir, Version::V1))
}

/// Whether cgroup v2's `dir` gives its children the memory controller,
/// enabling it when it is available but not enabled (which the kernel
/// refuses for a cgroup that holds processes, other than the root).
fn v2_memory_ready(dir: &Path) -> bool {
    let has = |file: &str| {
        fs::read_to_string(dir.join(file))
            .is_ok_and(|t| t.split_whitespace().any(|c| c == "memory"))
    };
    if has("cgroup.subtree_control") {
        return true;
    }
    has("cgroup.controllers")
        && fs::write(dir.join("cgroup.subtree_control"), "+memory").is_ok()
        && has("cgroup.subtree_control")
}
