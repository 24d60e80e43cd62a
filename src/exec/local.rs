//! The local executor: task attempts run on this machine's threads, `-j N`
//! at a time, calling the task code directly (no process per task).

use super::Executor;
use crate::error::TaskError;
use crate::interrupt::Cancel;
use crate::store::resources::Resources;
use crate::store::workdir::WorkDir;
use crate::task::job::Job;
use crate::task::report::TaskReport;
use crate::task::{self, TaskId};
use std::sync::Arc;

/// Runs tasks in this process.
pub(crate) struct LocalExecutor {
    wd: WorkDir,
    job: Job,
    res: Arc<Resources>,
    /// One per slot: stops the commands of that slot's attempt.
    cancels: Vec<Arc<Cancel>>,
    host: String,
}

impl LocalExecutor {
    /// An executor with `slots` parallel slots for `job` in `wd`, running
    /// tasks with this process's resources.
    pub(crate) fn new(wd: WorkDir, job: Job, res: Arc<Resources>, slots: usize) -> LocalExecutor {
        LocalExecutor {
            wd,
            job,
            res,
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
        self.cancels[slot].run(|| task::run(&self.wd, &self.job, &self.res, task, attempt))
    }

    fn cancel(&self, slot: usize) {
        self.cancels[slot].cancel();
    }
}
