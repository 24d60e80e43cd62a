//! Executors decide *where* a task runs, never *what* it does (docs/contracts.md §5).
//!
//! An executor offers slots (a local thread, a connection to a host, a
//! place in a batch queue); the coordinator gives each slot one task
//! attempt at a time, and runs the attempt on a thread of its own
//! ([`Executor::run`]) or has the executor start it and report its end
//! ([`Executor::start`]). Every executor
//! ends up calling [`crate::task::run`] — in this process, or in `gmr task`
//! on another host — so output is the same wherever tasks run.
//!
//! - [`local`]: this machine's threads, `-j N` slots.
//! - [`ssh`]: the hosts of `--hosts`, one SSH connection per slot, and this
//!   machine's own slots when the hosts list has `:`.
//! - [`slurm`]: the nodes of the Slurm allocation gmr runs in, one job step
//!   per attempt.
//! - [`sbatch`]: outside an allocation, Slurm job arrays, an element per
//!   attempt.
//!
//! [`sshconfig`] resolves the host names of `--hosts` as ssh does (the
//! user's ssh configuration), [`connection`] is one SSH connection,
//! [`knownhosts`] checks host keys as OpenSSH decides.
//!
//! [`remote`] holds what the last two share: the `gmr task` command line
//! and reading its result.

pub(crate) mod connection;
pub(crate) mod health;
pub(crate) mod hosts;
pub(crate) mod knownhosts;
pub(crate) mod links;
pub(crate) mod local;
pub(crate) mod remote;
pub(crate) mod sbatch;
pub(crate) mod slurm;
pub(crate) mod ssh;
pub(crate) mod sshconfig;
pub(crate) mod worker;

use crate::error::TaskError;
use crate::exec::health::Health;
use crate::store::resources::Resources;
use crate::store::spec::JobSpec;
use crate::store::workdir::WorkDir;
use crate::task::TaskId;
use crate::task::job::Job;
use crate::task::report::TaskReport;
use std::sync::Arc;

/// The end of an attempt started with [`Executor::start`].
#[derive(Debug)]
pub struct Ended {
    /// The slot it ran in.
    pub slot: usize,
    /// What it gave.
    pub result: Result<TaskReport, TaskError>,
}

/// Where [`Executor::start`] sends the ends of attempts.
pub type Done = crossbeam_channel::Sender<Ended>;

/// Where tasks run.
pub trait Executor: Sync {
    /// How many task attempts can run at once.
    fn slots(&self) -> usize;

    /// The host a slot belongs to (for messages, the job log and retries on
    /// another host).
    fn host_of(&self, slot: usize) -> &str;

    /// Runs one attempt of `task` in `slot`, until it ends. The
    /// coordinator calls it on the slot's thread (made when the slot first
    /// runs an attempt, kept for the phase), unless [`Executor::start`]
    /// takes the attempt. An executor implements
    /// `run` or `start`; this default runs `start` and waits.
    fn run(&self, slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
        let (done, ended) = crossbeam_channel::bounded(1);
        assert!(
            self.start(slot, task, attempt, &done),
            "an executor implements run or start"
        );
        match ended.recv() {
            Ok(ended) => ended.result,
            Err(_) => Err(TaskError::host("the executor lost the attempt")),
        }
    }

    /// Starts an attempt of `task` in `slot` and returns at once; its end
    /// goes to `done`. For executors whose attempts need no thread of
    /// their own (a batch queue, a simulated cluster): a thread per
    /// running attempt does not scale to tens of thousands of slots
    /// (threads count against `pid_max`, their stacks against memory
    /// maps). Returns false, as this default does, when the executor has
    /// no such form: the coordinator then calls [`Executor::run`].
    fn start(&self, _slot: usize, _task: TaskId, _attempt: u32, _done: &Done) -> bool {
        false
    }

    /// Stops the attempt running in `slot`, if it can: its `run` then
    /// returns soon (its result is ignored). The coordinator calls this for
    /// the losers once a task has committed.
    fn cancel(&self, _slot: usize) {}

    /// The health of the executor's hosts, when it keeps it across phases
    /// (and knows of hosts found unusable before any task ran). Without
    /// one, the coordinator keeps a health record per phase.
    fn health(&self) -> Option<&Health> {
        None
    }

    /// Whether the attempts still running when the job fails are cancelled
    /// rather than let finish (so that `--resume` reuses them): for
    /// attempts that may wait in a batch queue first.
    fn cancel_when_failing(&self) -> bool {
        false
    }
}

/// How many slots a job has: in all, and on its busiest host (the sort
/// buffer is shared by the map tasks running on one host).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Slots {
    /// All slots of all hosts.
    pub(crate) total: usize,
    /// The most slots one host has.
    pub(crate) per_host: usize,
}

/// Where a job's tasks run, before the job spec exists: this machine, or
/// the hosts of `--hosts`, already connected and checked.
pub(crate) enum Pool {
    /// This machine, with this many slots.
    Local(usize),
    /// SSH hosts (and maybe local slots).
    Hosts(Box<ssh::HostPool>),
    /// The nodes of a Slurm allocation, the gmr their steps run, and the
    /// options of every srun.
    Steps(
        slurm::Allocation,
        (std::path::PathBuf, Option<String>),
        Vec<String>,
    ),
    /// Slurm job arrays: attempts at once, `MaxArraySize`, the gmr the
    /// elements run, and the options of every sbatch.
    Arrays(
        (usize, usize),
        (std::path::PathBuf, Option<String>),
        Vec<String>,
    ),
}

impl Pool {
    /// The number of slots.
    pub(crate) fn slots(&self) -> Slots {
        match self {
            Pool::Local(n) => Slots {
                total: *n,
                per_host: *n,
            },
            Pool::Hosts(pool) => pool.slots(),
            Pool::Steps(alloc, ..) => alloc.slots(),
            // Slurm places the elements: none shares a host's buffer.
            Pool::Arrays((n, _), ..) => Slots {
                total: *n,
                per_host: 1,
            },
        }
    }

    /// How many tasks run at once on this machine.
    pub(crate) fn local_slots(&self) -> usize {
        match self {
            Pool::Local(n) => *n,
            Pool::Hosts(pool) => pool.local_slots(),
            // Tasks run in steps, each its own gmr; the coordinator only
            // plans and merges nothing itself.
            Pool::Steps(..) | Pool::Arrays(..) => 1,
        }
    }

    /// Refuses a job that does not fit the engine: more tasks than the
    /// Slurm cluster allows steps in one job. Called by the plans before
    /// the output directory or the spec is touched.
    pub(crate) fn check_fits(&self, spec: &JobSpec) -> crate::error::Result<()> {
        match self {
            Pool::Steps(..) => slurm::check_step_count(spec.splits.len() + spec.reducers as usize),
            _ => Ok(()),
        }
    }

    /// The executor for `job` in `wd`; tasks on this machine run with
    /// `res`. `digest` is that of the saved spec, which remote tasks check.
    pub(crate) fn executor(
        self,
        wd: &WorkDir,
        job: &Job,
        digest: &str,
        res: Arc<Resources>,
    ) -> crate::error::Result<Box<dyn Executor>> {
        Ok(match self {
            Pool::Local(n) => Box::new(local::LocalExecutor::new(wd.clone(), job.clone(), res, n)),
            Pool::Hosts(pool) => Box::new((*pool).executor(wd, job, digest, res)),
            Pool::Steps(alloc, gmr, args) => Box::new(slurm::SlurmExecutor::new(
                &alloc, wd, job, digest, gmr, args,
            )),
            Pool::Arrays(sizes, gmr, args) => Box::new(sbatch::ArrayExecutor::new(
                wd, job, digest, gmr, args, sizes,
            )),
        })
    }
}
