//! Executors decide *where* a task runs, never *what* it does (DESIGN.md §5).
//!
//! An executor offers slots (a local thread, a connection to a host); the
//! coordinator gives each slot one task attempt at a time. Every executor
//! ends up calling [`crate::task::run`] — in this process, or in `gmr task`
//! on another host — so output is the same wherever tasks run.

pub mod local;

use crate::error::TaskError;
use crate::health::Health;
use crate::report::TaskReport;
use crate::task::TaskId;

/// Where tasks run.
pub trait Executor: Sync {
    /// How many task attempts can run at once.
    fn slots(&self) -> usize;

    /// The host a slot belongs to (for messages, the job log and retries on
    /// another host).
    fn host_of(&self, slot: usize) -> &str;

    /// Runs one attempt of `task` in `slot`.
    fn run(&self, slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError>;

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
}
