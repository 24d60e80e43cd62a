//! The coordinator: owns a phase's task queue, hands task attempts to the
//! executor's slots, retries failures (on another host when there is one)
//! and stops the job with a clear message when a task fails too often
//! (DESIGN.md §5). The first attempt of a task to succeed is the one that
//! counts; later successes of the same task are ignored.

use crate::error::{Error, FailureKind, TaskError};
use crate::exec::Executor;
use crate::interrupt;
use crate::report::TaskReport;
use crate::task::TaskId;
use std::collections::{HashMap, VecDeque};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How failures are handled.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Retries of a failed task before the job fails (attempts = retries + 1).
    pub retries: u32,
}

/// Sees task attempts start and end (progress display, job log).
pub trait Observer: Sync {
    /// An attempt started.
    fn started(&self, _task: TaskId, _attempt: u32, _host: &str) {}
    /// An attempt ended.
    fn finished(
        &self,
        _task: TaskId,
        _attempt: u32,
        _host: &str,
        _result: &Result<TaskReport, TaskError>,
        _elapsed: Duration,
    ) {
    }
}

/// Several observers as one.
pub struct Observers<'a>(pub Vec<&'a dyn Observer>);

impl Observer for Observers<'_> {
    fn started(&self, task: TaskId, attempt: u32, host: &str) {
        self.0.iter().for_each(|o| o.started(task, attempt, host));
    }
    fn finished(
        &self,
        task: TaskId,
        attempt: u32,
        host: &str,
        result: &Result<TaskReport, TaskError>,
        elapsed: Duration,
    ) {
        self.0
            .iter()
            .for_each(|o| o.finished(task, attempt, host, result, elapsed));
    }
}

/// An observer that sees nothing.
pub struct NoObserver;
impl Observer for NoObserver {}

/// What a phase did.
#[derive(Debug)]
pub struct PhaseOutcome {
    /// One report per task, in the order the tasks were given.
    pub reports: Vec<TaskReport>,
    /// Failed attempts that were retried.
    pub retries: u64,
}

#[derive(Default)]
struct State {
    pending: VecDeque<TaskId>,
    attempts: HashMap<TaskId, u32>,
    failed_on: HashMap<TaskId, Vec<String>>,
    done: HashMap<TaskId, TaskReport>,
    running: usize,
    retries: u64,
    fatal: Option<Error>,
}

/// Runs every task of a phase to completion, or fails the phase.
pub fn run_phase(
    exec: &dyn Executor,
    tasks: &[TaskId],
    policy: Policy,
    observer: &dyn Observer,
) -> Result<PhaseOutcome, Error> {
    let state = Mutex::new(State {
        pending: tasks.iter().copied().collect(),
        ..State::default()
    });
    let wake = Condvar::new();
    let total = tasks.len();
    let hosts: std::collections::HashSet<&str> =
        (0..exec.slots()).map(|s| exec.host_of(s)).collect();
    let several_hosts = hosts.len() > 1;
    std::thread::scope(|scope| {
        for slot in 0..exec.slots().min(total.max(1)) {
            let (state, wake) = (&state, &wake);
            scope.spawn(move || {
                let host = exec.host_of(slot);
                loop {
                    let (task, attempt) = {
                        let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                        loop {
                            if st.fatal.is_none() && interrupt::is_set() {
                                st.fatal = Some(Error::Interrupted);
                            }
                            if st.fatal.is_some() || st.done.len() == total {
                                wake.notify_all();
                                return;
                            }
                            // Prefer a task that has not failed on this host.
                            let pick = st
                                .pending
                                .iter()
                                .position(|t| {
                                    !several_hosts
                                        || !st
                                            .failed_on
                                            .get(t)
                                            .is_some_and(|h| h.iter().any(|x| x == host))
                                })
                                .or(if st.running == 0 { Some(0) } else { None })
                                .filter(|_| !st.pending.is_empty());
                            if let Some(i) = pick {
                                let task = st.pending.remove(i).expect("index valid");
                                let n = st.attempts.entry(task).or_default();
                                *n += 1;
                                let attempt = *n;
                                st.running += 1;
                                break (task, attempt);
                            }
                            st = wake
                                .wait_timeout(st, Duration::from_millis(200))
                                .unwrap_or_else(|e| e.into_inner())
                                .0;
                        }
                    };
                    observer.started(task, attempt, host);
                    let t0 = Instant::now();
                    let result = exec.run(slot, task, attempt);
                    observer.finished(task, attempt, host, &result, t0.elapsed());
                    let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
                    st.running -= 1;
                    match result {
                        Ok(report) => {
                            st.done.entry(task).or_insert(report);
                        }
                        Err(_) if st.done.contains_key(&task) => {}
                        Err(e) if e.kind == FailureKind::Interrupted || interrupt::is_set() => {
                            st.fatal.get_or_insert(Error::Interrupted);
                        }
                        Err(e) => {
                            st.failed_on.entry(task).or_default().push(host.to_string());
                            if attempt > policy.retries {
                                st.fatal.get_or_insert(task_failed(task, attempt, host, &e));
                            } else {
                                st.retries += 1;
                                st.pending.push_back(task);
                            }
                        }
                    }
                    wake.notify_all();
                }
            });
        }
    });
    let mut st = state.into_inner().unwrap_or_else(|e| e.into_inner());
    if let Some(e) = st.fatal.take() {
        return Err(e);
    }
    Ok(PhaseOutcome {
        reports: tasks
            .iter()
            .map(|t| st.done.remove(t).expect("every task done"))
            .collect(),
        retries: st.retries,
    })
}

fn task_failed(task: TaskId, attempts: u32, host: &str, e: &TaskError) -> Error {
    let mut msg = format!(
        "task {task} failed {attempts} time{} (last on {host}): {}",
        if attempts == 1 { "" } else { "s" },
        e.message
    );
    if e.stderr_tail.trim().is_empty() {
        msg.push_str("\n  (its stderr was empty)");
    } else {
        msg.push_str("\n  last lines of its stderr:");
        for line in e.stderr_tail.lines() {
            msg.push_str("\n    ");
            msg.push_str(line);
        }
    }
    Error::Job(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    /// An executor whose tasks fail a scripted number of times.
    struct Flaky {
        fail_first: u32,
        calls: AtomicU32,
        hosts: Vec<String>,
    }

    impl Executor for Flaky {
        fn slots(&self) -> usize {
            self.hosts.len()
        }
        fn host_of(&self, slot: usize) -> &str {
            &self.hosts[slot]
        }
        fn run(&self, _slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            if attempt <= self.fail_first {
                Err(TaskError::task(format!("{task} boom")))
            } else {
                Ok(TaskReport {
                    task: task.to_string(),
                    attempt,
                    ..TaskReport::default()
                })
            }
        }
    }

    fn flaky(fail_first: u32, slots: usize) -> Flaky {
        Flaky {
            fail_first,
            calls: AtomicU32::new(0),
            hosts: (0..slots).map(|i| format!("h{i}")).collect(),
        }
    }

    #[test]
    fn retries_until_success() {
        let exec = flaky(2, 3);
        let tasks: Vec<TaskId> = (0..5).map(TaskId::Map).collect();
        let out = run_phase(&exec, &tasks, Policy { retries: 2 }, &NoObserver).unwrap();
        assert_eq!(out.reports.len(), 5);
        assert!(out.reports.iter().all(|r| r.attempt == 3));
        assert_eq!(out.retries, 10);
        assert_eq!(exec.calls.load(Ordering::SeqCst), 15);
    }

    #[test]
    fn fails_after_retries_with_the_last_error() {
        let exec = flaky(10, 2);
        let err = run_phase(
            &exec,
            &[TaskId::Reduce(1)],
            Policy { retries: 1 },
            &NoObserver,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("reduce-00001 failed 2 times"), "{msg}");
        assert!(matches!(err, Error::Job(_)));
    }
}
