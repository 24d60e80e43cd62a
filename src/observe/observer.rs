//! [`Observer`]: what sees task attempts start and end, and hosts go bad
//! or come back (the progress display, the job log, the status document).
//! The coordinator calls observers; they never steer it.

use crate::error::TaskError;
use crate::task::TaskId;
use crate::task::report::TaskReport;
use std::time::Duration;

/// One attempt of a task, as observers see it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The task.
    pub task: TaskId,
    /// Its attempt number, from 1.
    pub attempt: u32,
    /// The host it runs on.
    pub host: &'a str,
    /// The executor's slot it runs in.
    pub slot: usize,
}

/// Sees task attempts start and end (progress display, job log, status).
pub trait Observer: Sync {
    /// An attempt started.
    fn started(&self, _a: &Attempt) {}
    /// An attempt ended.
    fn finished(&self, _a: &Attempt, _result: &Result<TaskReport, TaskError>, _elapsed: Duration) {}
    /// A host went bad, stays bad, or works again.
    fn host_event(&self, _host: &str, _message: &str) {}
}

/// Several observers as one.
pub(crate) struct Observers<'a>(pub Vec<&'a dyn Observer>);

impl Observer for Observers<'_> {
    fn started(&self, a: &Attempt) {
        self.0.iter().for_each(|o| o.started(a));
    }
    fn finished(&self, a: &Attempt, result: &Result<TaskReport, TaskError>, elapsed: Duration) {
        self.0.iter().for_each(|o| o.finished(a, result, elapsed));
    }
    fn host_event(&self, host: &str, message: &str) {
        self.0.iter().for_each(|o| o.host_event(host, message));
    }
}

/// An observer that sees nothing.
pub struct NoObserver;
impl Observer for NoObserver {}
