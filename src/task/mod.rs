//! What a task does, given the work directory, the job and its id
//! (docs/contracts.md §5): a pure function of its inputs, so any attempt on any host
//! makes the same bytes, and the first attempt to commit wins.
//!
//! - `map-NNNNN`: feed split N to the mapper; partition and sort its output
//!   in the sort buffer, spilling sorted runs past it; combine; write one
//!   runs file with every partition back to back, and its index (the
//!   output side is [`crate::task::sorter`]). With `-R 0`, the mapper's output is
//!   the job's part N, order kept.
//! - `shuffle-NNNNN`: merge partition N of every map output into one file.
//! - `reduce-NNNNN`: merge partition N (from the shuffle, or straight from
//!   the map outputs) into the reducer; its output is part N.

mod attempt;
pub(crate) mod cgroup;
mod commit;
pub(crate) mod job;
mod map;
pub(crate) mod process;
pub(crate) mod program;
mod reduce;
pub(crate) mod report;
pub(crate) mod sample;
pub(crate) mod sorter;

use crate::error::Error;
use crate::error::TaskError;
use crate::store::resources::Resources;
use crate::store::workdir;
use crate::store::workdir::WorkDir;
use crate::task::job::Job;
use crate::task::report::TaskReport;
use std::fmt;
use std::str::FromStr;
use std::time::Instant;

pub(crate) use commit::committed_report;
pub(crate) use map::MapIndex;

/// Identifies a task within a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskId {
    /// Map split N.
    Map(usize),
    /// Merge partition N into one file.
    Shuffle(u32),
    /// Reduce partition N.
    Reduce(u32),
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskId::Map(i) => write!(f, "map-{i:05}"),
            TaskId::Shuffle(p) => write!(f, "shuffle-{p:05}"),
            TaskId::Reduce(p) => write!(f, "reduce-{p:05}"),
        }
    }
}

impl FromStr for TaskId {
    type Err = Error;
    fn from_str(s: &str) -> Result<TaskId, Error> {
        let bad = || {
            Error::usage(format!(
                "`{s}` is not a task id (map-N, shuffle-N or reduce-N)"
            ))
        };
        let (kind, n) = s.split_once('-').ok_or_else(bad)?;
        let n: u32 = n.parse().map_err(|_| bad())?;
        match kind {
            "map" => Ok(TaskId::Map(n as usize)),
            "shuffle" => Ok(TaskId::Shuffle(n)),
            "reduce" => Ok(TaskId::Reduce(n)),
            _ => Err(bad()),
        }
    }
}

/// `--memfree`: waits until this host has `floor` bytes of memory
/// available (MemAvailable), as GNU parallel's --memfree does, or until
/// gmr is interrupted or the attempt cancelled. A host whose memory is
/// unknown does not wait.
fn wait_for_memory(floor: u64) -> Result<(), TaskError> {
    loop {
        match crate::store::resources::available_memory() {
            Some(free) if free < floor => {}
            _ => return Ok(()),
        }
        if crate::interrupt::is_set() {
            return Err(TaskError::interrupted());
        }
        if crate::interrupt::cancelled() {
            return Err(TaskError::cancelled());
        }
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

/// Runs one attempt of `task` of `job`, with this process's resources, and
/// commits its output.
pub(crate) fn run(
    wd: &WorkDir,
    job: &Job,
    res: &Resources,
    task: TaskId,
    attempt: u32,
) -> Result<TaskReport, TaskError> {
    if let Some(floor) = job.spec.memfree {
        wait_for_memory(floor)?;
    }
    let started = Instant::now();
    let name = task.to_string();
    let at = attempt::Attempt {
        wd,
        job,
        res,
        name: &name,
        attempt,
    };
    let mut report = match task {
        _ if job.spec.job.is_empty() => {
            return Err(TaskError::task("the job spec has no job identity"));
        }
        TaskId::Map(i) => {
            let split = job
                .spec
                .splits
                .get(i)
                .ok_or_else(|| TaskError::task(format!("{name}: the job has no split {i}")))?;
            map::MapTask {
                at,
                index: i,
                split,
            }
            .run()?
        }
        TaskId::Shuffle(p) => reduce::run_shuffle(&at, p)?,
        TaskId::Reduce(p) => reduce::run_reduce(&at, p)?,
    };
    report.job = job.spec.job.clone();
    report.task = name.clone();
    report.attempt = attempt;
    report.host = workdir::hostname();
    report.slurm_job = attempt::slurm_job();
    report.millis = started.elapsed().as_millis() as u64;
    let path = wd.report_path(&name);
    let tmp = workdir::attempt_path(&path, attempt);
    crate::files::write_json(&tmp, &report).map_err(TaskError::from)?;
    at.fence()?;
    if !workdir::commit(&tmp, &path).map_err(TaskError::from)? {
        // Another attempt committed first: of this job, or it is the
        // earlier job's that still ran somewhere, whose output may have
        // won too.
        let winner: TaskReport = crate::files::read_json(&path).map_err(TaskError::from)?;
        if winner.job != job.spec.job {
            return Err(TaskError::fatal(format!(
                "{name}: an attempt of another job ({}) committed into the work directory {}; an attempt of an earlier job still runs on some host: stop it, then run this job again with a new --workdir",
                winner.job,
                wd.root().display()
            )));
        }
    }
    Ok(report)
}
