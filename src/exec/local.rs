//! The local executor: task attempts run on this machine's threads, `-j N`
//! at a time, calling the task code directly (no process per task).

use super::Executor;
use crate::error::TaskError;
use crate::interrupt::Cancel;
use crate::report::TaskReport;
use crate::task::{self, TaskId};
use crate::workdir::{JobSpec, WorkDir};
use std::sync::Arc;

/// Runs tasks in this process.
pub struct LocalExecutor {
    wd: WorkDir,
    spec: JobSpec,
    /// One per slot: stops the commands of that slot's attempt.
    cancels: Vec<Arc<Cancel>>,
    host: String,
}

impl LocalExecutor {
    /// An executor with `slots` parallel slots for the job in `wd`.
    pub fn new(wd: WorkDir, spec: JobSpec, slots: usize) -> LocalExecutor {
        crate::merge::set_concurrent_tasks(slots);
        LocalExecutor {
            wd,
            spec,
            cancels: (0..slots.max(1)).map(|_| Arc::default()).collect(),
            host: "local".to_string(),
        }
    }
}

impl Executor for LocalExecutor {
    fn slots(&self) -> usize {
        self.cancels.len()
    }

    fn host_of(&self, _slot: usize) -> &str {
        &self.host
    }

    fn run(&self, slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
        self.cancels[slot].run(|| task::run(&self.wd, &self.spec, task, attempt))
    }

    fn cancel(&self, slot: usize) {
        self.cancels[slot].cancel();
    }
}
