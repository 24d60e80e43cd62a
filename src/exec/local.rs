//! The local executor: task attempts run on this machine's threads, `-j N`
//! at a time, calling the task code directly (no process per task).

use super::Executor;
use crate::error::TaskError;
use crate::report::TaskReport;
use crate::task::{self, TaskId};
use crate::workdir::{JobSpec, WorkDir};

/// Runs tasks in this process.
pub struct LocalExecutor {
    wd: WorkDir,
    spec: JobSpec,
    slots: usize,
    host: String,
}

impl LocalExecutor {
    /// An executor with `slots` parallel slots for the job in `wd`.
    pub fn new(wd: WorkDir, spec: JobSpec, slots: usize) -> LocalExecutor {
        LocalExecutor {
            wd,
            spec,
            slots: slots.max(1),
            host: "local".to_string(),
        }
    }
}

impl Executor for LocalExecutor {
    fn slots(&self) -> usize {
        self.slots
    }

    fn host_of(&self, _slot: usize) -> &str {
        &self.host
    }

    fn run(&self, _slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
        task::run(&self.wd, &self.spec, task, attempt)
    }
}
