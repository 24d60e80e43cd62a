//! What this process may use, decided once when a command starts and
//! passed down to every task: how many tasks run at once (`-j`, or the
//! cores), the open-file limit and how many runs a merge may open, the
//! open-file limit commands get, the pool of sort buffers, and stdout when
//! parts go straight into it. Nothing on the data path reads a
//! process-wide setting of its own.

use crate::data::sort::BufferPool;
use crate::store::output::StdoutParts;

/// This machine's cores (the default `-j`).
pub(crate) fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// What the tasks this process runs may use.
#[derive(Debug)]
pub(crate) struct Resources {
    /// How many runs one merge may open at once.
    pub(crate) fan_in: usize,
    /// The open-file limit commands get: the one gmr started with, when it
    /// raised its own (some programs walk or `select()` every descriptor up
    /// to the soft limit).
    pub(crate) child_nofile: Option<libc::rlimit>,
    /// Sort buffers of finished map tasks, for the next ones.
    pub(crate) buffers: BufferPool,
    /// Stdout, when reduce tasks write their parts straight into it: set
    /// once, before the reduce phase (`control::lifecycle`'s `parts_to_stdout`).
    pub(crate) stdout_parts: std::sync::OnceLock<StdoutParts>,
    /// Input bytes the map attempts running in this process have fed so
    /// far ([`Feeding`]): the progress of tasks not yet done.
    feeding: std::sync::atomic::AtomicU64,
}

/// What one attempt feeds, counted into [`Resources`]'s running total and
/// taken out of it when the attempt ends (its task's bytes then count as
/// done, or not at all).
pub(crate) struct Feeding<'a> {
    res: &'a Resources,
    total: u64,
}

impl Feeding<'_> {
    /// `n` more bytes fed.
    pub(crate) fn add(&mut self, n: u64) {
        self.total += n;
        self.res
            .feeding
            .fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Drop for Feeding<'_> {
    fn drop(&mut self) {
        self.res
            .feeding
            .fetch_sub(self.total, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Resources {
    /// The resources of a process that runs `slots` tasks at once, whose
    /// open-file limit was `child_nofile` before [`raise_open_file_limit`]
    /// raised it. Sizes the thread pool of the parallel sort to `slots`, so
    /// that `-j N` caps gmr's CPU use at N cores rather than only its task
    /// slots, and never past the cores (a `-j` far above them, for
    /// commands that wait, would otherwise start a thread per slot here).
    /// Call it once per process.
    pub(crate) fn new(slots: usize, child_nofile: Option<libc::rlimit>) -> Resources {
        let slots = slots.max(1);
        // Fails only when the pool exists already (a second call): keep it.
        let _ = rayon::ThreadPoolBuilder::new()
            .num_threads(slots.min(cores()))
            .build_global();
        Resources {
            fan_in: fan_in(open_file_limit(), slots),
            child_nofile,
            buffers: BufferPool::new(slots),
            stdout_parts: std::sync::OnceLock::new(),
            feeding: Default::default(),
        }
    }

    /// Counts what an attempt feeds (see [`Feeding`]).
    pub(crate) fn feeding(&self) -> Feeding<'_> {
        Feeding {
            res: self,
            total: 0,
        }
    }

    /// Input bytes the running attempts have fed so far.
    pub(crate) fn fed(&self) -> u64 {
        self.feeding.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// The memory this host can give new work without swapping, in bytes
/// (MemAvailable of /proc/meminfo); None where it cannot be read.
pub(crate) fn available_memory() -> Option<u64> {
    let info = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = info.lines().find(|l| l.starts_with("MemAvailable:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Raises the soft limit on open files to the hard limit, so that merges
/// of many runs need fewer passes and many hosts can be connected at once;
/// returns the limit it started with when it raised it (the one commands
/// get). Failure changes nothing. Call it once, when the process starts.
pub(crate) fn raise_open_file_limit() -> Option<libc::rlimit> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one rlimit struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return Some(lim);
            }
        }
    }
    None
}

/// The soft limit on open files now.
fn open_file_limit() -> usize {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit struct.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } == 0 {
        usize::try_from(lim.rlim_cur).unwrap_or(usize::MAX)
    } else {
        1024
    }
}

/// How many runs one merge may open at once: the open-file limit, less a
/// margin for the process, shared by the `tasks` that may run at once,
/// less a margin for each task's own pipes, log and output.
fn fan_in(limit: usize, tasks: usize) -> usize {
    (limit.saturating_sub(32) / tasks.max(1))
        .saturating_sub(8)
        .clamp(4, 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fan_in_shares_the_limit_between_tasks() {
        assert_eq!(fan_in(1024, 1), 984);
        assert_eq!(fan_in(1024, 4), 240);
        assert_eq!(fan_in(20, 2), 4);
        assert_eq!(fan_in(1 << 20, 1), 1024);
    }
}
