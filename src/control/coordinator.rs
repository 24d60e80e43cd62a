//! The coordinator: owns a phase's task queue and hands task attempts to
//! the executor's slots (docs/contracts.md §5).
//!
//! - A task that fails is retried, preferably on a host where it has not
//!   failed, up to `--retries` times; then the job stops with its error.
//! - A failure of the host rather than the task (lost connection, host
//!   unusable: [`FailureKind::Host`]) does not count against `--retries`:
//!   the task simply runs again elsewhere. The host's health counts it
//!   instead ([`crate::exec::health`]): after a few in a row the host is bad, gets
//!   no work, and is tried again after a back-off; when every host is bad
//!   or dead at once and nothing runs, the job stops, naming each host and
//!   its last error. A task that loses its host more than
//!   `retries + 1 + 2 × hosts` times stops the job too (it is probably what
//!   breaks the hosts).
//! - Stragglers: when nothing is pending and a slot is idle, it runs a
//!   backup attempt of the longest-running task, on another host, once that
//!   task has run longer than twice the phase's median task time and
//!   [`Policy::backup_after`]. The first attempt of a task to succeed is the
//!   one that counts (and commits: task output commits by rename, first
//!   wins); the others are cancelled and their results ignored.

use crate::error::{Error, FailureKind, TaskError};
use crate::exec::health::{Availability, Health};
use crate::exec::{Ended, Executor};
use crate::interrupt;
use crate::observe::observer::{Attempt, Observer};
use crate::task::TaskId;
use crate::task::report::TaskReport;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

/// How failures and stragglers are handled.
#[derive(Debug, Clone, Copy)]
pub struct Policy {
    /// Retries of a failed task before the job fails (attempts = retries + 1).
    pub retries: u32,
    /// Tasks that may still fail after their retries without failing the
    /// phase (`--max-failed-tasks`): they are skipped.
    pub skip_up_to: usize,
    /// The least time a task runs before it may get a backup attempt.
    pub backup_after: Duration,
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            retries: 3,
            skip_up_to: 0,
            backup_after: Duration::from_secs(5),
        }
    }
}

/// A task that failed after its retries and was skipped
/// ([`Policy::skip_up_to`]).
#[derive(Debug)]
pub struct Skipped {
    /// The task.
    pub task: TaskId,
    /// Its attempts.
    pub attempts: u32,
    /// Where its last attempt ran.
    pub host: String,
    /// How its last attempt failed.
    pub error: TaskError,
}

/// What a phase did.
#[derive(Debug)]
pub struct PhaseOutcome {
    /// One report per task done, in the order the tasks were given (a
    /// skipped task has none).
    pub reports: Vec<TaskReport>,
    /// The tasks skipped, in the order they were.
    pub skipped: Vec<Skipped>,
    /// Failed attempts that were retried.
    pub retries: u64,
    /// Backup attempts started for stragglers.
    pub backups: u64,
    /// Attempts killed for showing no sign of life.
    pub timeouts: u64,
}

/// An attempt in progress.
struct Running {
    task: TaskId,
    attempt: u32,
    started: Instant,
}

#[derive(Default)]
struct State {
    pending: VecDeque<TaskId>,
    attempts: HashMap<TaskId, u32>,
    task_failures: HashMap<TaskId, u32>,
    host_failures: HashMap<TaskId, u32>,
    failed_on: HashMap<TaskId, Vec<String>>,
    done: HashMap<TaskId, TaskReport>,
    skipped: Vec<Skipped>,
    /// The attempt running in each slot: looked up by slot at every end,
    /// and slots are many.
    running: Vec<Option<Running>>,
    /// How many slots run an attempt, in all and of each task.
    busy: usize,
    busy_tasks: HashMap<TaskId, u32>,
    backed_up: HashSet<TaskId>,
    /// Durations of the phase's successful attempts.
    durations: Median,
    retries: u64,
    backups: u64,
    timeouts: u64,
    fatal: Option<Error>,
    /// When an idle slot last looked for a straggler (see
    /// [`STRAGGLER_SCANS`]).
    last_scan: Option<Instant>,
}

/// The least time between two looks for a straggler, whichever slots look:
/// at the end of a large phase thousands of slots are idle, and each look
/// scans every running attempt.
const STRAGGLER_SCANS: Duration = Duration::from_millis(50);

/// The longest the coordinator waits without looking at the interrupt flag
/// and the idle slots.
const TICK: Duration = Duration::from_millis(200);

/// What a slot does next.
enum Next {
    Run(TaskId, u32),
    Wait(Duration),
    Exit,
}

/// What does not change during a phase.
struct Phase<'a> {
    exec: &'a dyn Executor,
    health: &'a Health,
    policy: Policy,
    observer: &'a dyn Observer,
    total: usize,
    /// The distinct hosts of the slots.
    hosts: Vec<&'a str>,
}

/// Runs every task of a phase to completion, or fails the phase.
///
/// One thread decides everything: it hands attempts to idle slots and
/// takes their ends from a channel. Slots are no threads: an executor that
/// starts attempts itself ([`Executor::start`], Slurm arrays) adds none,
/// and one that runs them ([`Executor::run`]: local, SSH, steps, each
/// attempt a process or a connection anyway) gets a thread per slot that
/// has run an attempt, kept for the phase.
pub fn run_phase(
    exec: &dyn Executor,
    tasks: &[TaskId],
    policy: Policy,
    observer: &dyn Observer,
) -> Result<PhaseOutcome, Error> {
    let slots = exec.slots();
    let mut st = State {
        pending: tasks.iter().copied().collect(),
        running: (0..slots).map(|_| None).collect(),
        ..State::default()
    };
    let mut host_names: Vec<&str> = (0..slots).map(|s| exec.host_of(s)).collect();
    host_names.sort_unstable();
    host_names.dedup();
    let own_health;
    let health = match exec.health() {
        Some(h) => h,
        None => {
            own_health = Health::new(host_names.iter().copied());
            &own_health
        }
    };
    let phase = Phase {
        exec,
        health,
        policy,
        observer,
        total: tasks.len(),
        hosts: host_names,
    };
    let (done, ended) = crossbeam_channel::unbounded::<Ended>();
    // Every slot, even when there are fewer tasks: a task that fails on
    // one host must find a slot of another. A slot whose host is gone
    // leaves the queue.
    let mut idle: VecDeque<usize> = (0..slots).collect();
    std::thread::scope(|scope| {
        let mut workers = HashMap::new();
        loop {
            let now = Instant::now();
            if st.fatal.is_none() && interrupt::is_set() {
                st.fatal = Some(Error::Interrupted);
            }
            let mut wait = TICK;
            // Each idle slot is asked at most once a round, and only while
            // there may be work for it.
            for _ in 0..idle.len() {
                if !st.wants_slots(&phase, now) {
                    break;
                }
                let slot = idle.pop_front().expect("counted");
                match st.next(&phase, slot, exec.host_of(slot), now) {
                    Next::Run(task, attempt) => {
                        observer.started(&Attempt {
                            task,
                            attempt,
                            host: exec.host_of(slot),
                            slot,
                        });
                        if !exec.start(slot, task, attempt, &done) {
                            run_on_worker(scope, &mut workers, exec, &done, slot, (task, attempt));
                        }
                    }
                    Next::Wait(d) => {
                        wait = wait.min(d);
                        idle.push_back(slot);
                    }
                    Next::Exit => {}
                }
            }
            if st.busy == 0
                && (st.fatal.is_some() || st.settled() == phase.total || idle.is_empty())
            {
                break;
            }
            if st.busy == 0 && !st.pending.is_empty() {
                st.check_hosts(&phase);
            }
            let mut first = ended.recv_timeout(wait).ok();
            // Everything that ended meanwhile, before the next round.
            while let Some(Ended { slot, result }) = first.take().or_else(|| ended.try_recv().ok())
            {
                let host = exec.host_of(slot);
                let (task, attempt, elapsed) = st.ended(slot);
                let a = Attempt {
                    task,
                    attempt,
                    host,
                    slot,
                };
                observer.finished(&a, &result, elapsed);
                st.finish(&phase, slot, host, task, result, elapsed);
                idle.push_back(slot);
            }
        }
        // Their channels closed, the workers end.
        drop(workers);
    });
    if st.fatal.is_none() && st.settled() < tasks.len() {
        // Every slot gave up: their hosts are gone.
        st.fatal = Some(no_hosts(health));
    }
    if let Some(e) = st.fatal.take() {
        return Err(e);
    }
    Ok(PhaseOutcome {
        reports: tasks.iter().filter_map(|t| st.done.remove(t)).collect(),
        skipped: std::mem::take(&mut st.skipped),
        retries: st.retries,
        backups: st.backups,
        timeouts: st.timeouts,
    })
}

/// Runs an attempt with [`Executor::run`] on the thread of `slot`, started
/// the first time the slot needs one and kept for the phase: a thread
/// started per attempt, and woken by the coordinator, cost 0.15 ms an
/// attempt, which jobs of many small tasks feel.
fn run_on_worker<'scope, 'env>(
    scope: &'scope std::thread::Scope<'scope, 'env>,
    workers: &mut HashMap<usize, crossbeam_channel::Sender<(TaskId, u32)>>,
    exec: &'env dyn Executor,
    done: &crossbeam_channel::Sender<Ended>,
    slot: usize,
    work: (TaskId, u32),
) {
    let work = match workers.get(&slot).map(|w| w.send(work)) {
        Some(Ok(())) => return,
        Some(Err(e)) => e.into_inner(),
        None => work,
    };
    let (give, take) = crossbeam_channel::unbounded::<(TaskId, u32)>();
    let sender = done.clone();
    let spawned = std::thread::Builder::new()
        .name(format!("slot-{slot}"))
        .spawn_scoped(scope, move || {
            for (task, attempt) in take {
                // A panic must still end the attempt: the phase waits for
                // every attempt it started.
                let run = std::panic::AssertUnwindSafe(|| exec.run(slot, task, attempt));
                let result = std::panic::catch_unwind(run).unwrap_or_else(|_| {
                    Err(TaskError::fatal(format!(
                        "internal error: the executor panicked running {task} (see above); please report this"
                    )))
                });
                let _ = sender.send(Ended { slot, result });
            }
        });
    match spawned {
        Ok(_) => {
            let _ = give.send(work);
            workers.insert(slot, give);
        }
        Err(e) => {
            let result = Err(TaskError::host(format!(
                "cannot start a thread for the attempt: {e}"
            )));
            let _ = done.send(Ended { slot, result });
        }
    }
}

impl State {
    /// Tasks done or skipped.
    fn settled(&self) -> usize {
        self.done.len() + self.skipped.len()
    }

    /// Whether an idle slot may find work: a pending task, or a straggler
    /// to back up when a look for one is due.
    fn wants_slots(&self, phase: &Phase, now: Instant) -> bool {
        if self.fatal.is_some() || self.settled() == phase.total {
            return false;
        }
        !self.pending.is_empty()
            || (phase.hosts.len() > 1
                && self
                    .last_scan
                    .is_none_or(|t| now.duration_since(t) >= STRAGGLER_SCANS))
    }

    /// Decides what `slot` of `host` does next.
    fn next(&mut self, phase: &Phase, slot: usize, host: &str, now: Instant) -> Next {
        match phase.health.availability(host, slot, now) {
            Availability::Ready => {}
            Availability::Gone => {
                self.check_hosts(phase);
                return Next::Exit;
            }
            Availability::WaitUntil(t) => {
                self.check_hosts(phase);
                return Next::Wait(t.saturating_duration_since(now));
            }
        }
        // A task that failed on this host goes to another host, unless no
        // good host is left where it has not failed.
        let failed_here = |t: &TaskId, h: &str| {
            self.failed_on
                .get(t)
                .is_some_and(|on| on.iter().any(|x| x == h))
        };
        // Whether another good host is left where `t` has not failed: with
        // more good hosts than it failed on, one is, without a search.
        let mut good = None;
        let elsewhere = |t: &TaskId, good: &mut Option<usize>| {
            let failed = self.failed_on.get(t).map_or(0, Vec::len);
            let good = *good.get_or_insert_with(|| phase.health.up().0);
            failed + 1 < good
                || phase
                    .hosts
                    .iter()
                    .any(|&h| h != host && !failed_here(t, h) && phase.health.is_good(h))
        };
        let pick = self
            .pending
            .iter()
            .position(|t| !failed_here(t, host) || !elsewhere(t, &mut good));
        let task = match pick {
            Some(i) => self.pending.remove(i).expect("index valid"),
            None => match self.straggler(phase, host, now) {
                Some(task) => {
                    self.backed_up.insert(task);
                    self.backups += 1;
                    task
                }
                None => return Next::Wait(TICK),
            },
        };
        let n = self.attempts.entry(task).or_default();
        *n += 1;
        let attempt = *n;
        self.running[slot] = Some(Running {
            task,
            attempt,
            started: now,
        });
        self.busy += 1;
        *self.busy_tasks.entry(task).or_default() += 1;
        Next::Run(task, attempt)
    }

    /// Frees `slot`: the task and attempt that ran there, and for how long.
    fn ended(&mut self, slot: usize) -> (TaskId, u32, Duration) {
        let r = self.running[slot].take().expect("an attempt ran there");
        self.busy -= 1;
        if let Entry::Occupied(mut n) = self.busy_tasks.entry(r.task) {
            *n.get_mut() -= 1;
            if *n.get() == 0 {
                n.remove();
            }
        }
        (r.task, r.attempt, r.started.elapsed())
    }

    /// The slots running an attempt of `task` (a scan of every slot, so
    /// only when the count says one does).
    fn slots_running(&self, task: TaskId) -> Vec<usize> {
        if !self.busy_tasks.contains_key(&task) {
            return Vec::new();
        }
        self.running
            .iter()
            .enumerate()
            .filter(|(_, r)| r.as_ref().is_some_and(|r| r.task == task))
            .map(|(slot, _)| slot)
            .collect()
    }

    /// The task to back up on an idle slot of `host`: the longest-running
    /// one, running once only and on another host, for longer than twice
    /// the median task time and the policy's minimum.
    fn straggler(&mut self, phase: &Phase, host: &str, now: Instant) -> Option<TaskId> {
        if phase.hosts.len() < 2 || !self.pending.is_empty() {
            return None;
        }
        if self
            .last_scan
            .is_some_and(|t| now.duration_since(t) < STRAGGLER_SCANS)
        {
            return None;
        }
        self.last_scan = Some(now);
        let median = self.durations.get()?;
        let threshold = phase.policy.backup_after.max(median * 2);
        // The cheap tests first.
        self.running
            .iter()
            .enumerate()
            .filter_map(|(slot, r)| Some((slot, r.as_ref()?)))
            .filter(|(_, r)| now.duration_since(r.started) > threshold)
            .filter(|(slot, r)| {
                phase.exec.host_of(*slot) != host && !self.backed_up.contains(&r.task)
            })
            .filter(|(_, r)| self.busy_tasks.get(&r.task) == Some(&1))
            .max_by_key(|(_, r)| now.duration_since(r.started))
            .map(|(_, r)| r.task)
    }

    /// Cancels every running attempt.
    fn cancel_all(&self, phase: &Phase) {
        for (slot, _) in self.running.iter().enumerate().filter(|(_, r)| r.is_some()) {
            phase.exec.cancel(slot);
        }
    }

    /// Stops the phase when no host can take work and nothing runs.
    fn check_hosts(&mut self, phase: &Phase) {
        if self.fatal.is_none() && self.busy == 0 && phase.health.all_down() {
            self.fatal = Some(no_hosts(phase.health));
        }
    }

    /// Records the end of an attempt of `task` in `slot`.
    fn finish(
        &mut self,
        phase: &Phase,
        slot: usize,
        host: &str,
        task: TaskId,
        result: Result<TaskReport, TaskError>,
        elapsed: Duration,
    ) {
        let another_running = self.busy_tasks.contains_key(&task);
        // The loser of a race with a backup, however it ended (a killed
        // step or connection says "host"): neither the task's failure nor
        // its host's.
        let lost_race = result.is_err() && self.done.contains_key(&task);
        let event = match &result {
            _ if lost_race => None,
            Err(e) if e.kind == FailureKind::Host => {
                phase.health.failed(host, slot, &e.message, Instant::now())
            }
            Err(e) if matches!(e.kind, FailureKind::Interrupted | FailureKind::Fatal) => None,
            _ => phase.health.succeeded(host),
        };
        if let Some(message) = event {
            phase.observer.host_event(host, &message);
        }
        match result {
            Ok(report) => {
                self.durations.push(elapsed);
                if let Entry::Vacant(slot) = self.done.entry(task) {
                    slot.insert(report);
                    // The losers of a race with a backup: stop them.
                    for other in self.slots_running(task) {
                        phase.exec.cancel(other);
                    }
                }
            }
            Err(_) if self.done.contains_key(&task) => {}
            Err(e) if e.kind == FailureKind::Interrupted || interrupt::is_set() => {
                self.fatal.get_or_insert(Error::Interrupted);
            }
            Err(e) if e.kind == FailureKind::Fatal => {
                // Retrying cannot mend it: stop now, and the running
                // attempts with the job.
                self.fatal.get_or_insert(task_failed(task, 1, host, &e));
                self.cancel_all(phase);
            }
            Err(e) if e.kind == FailureKind::Host => {
                self.failed_on
                    .entry(task)
                    .or_default()
                    .push(host.to_string());
                let lost = self.host_failures.entry(task).or_default();
                *lost += 1;
                let limit = phase.policy.retries as usize + 1 + 2 * phase.hosts.len();
                if *lost as usize > limit {
                    self.fatal.get_or_insert(Error::job(format!(
                        "task {task} lost its host {lost} times (last on {host}: {}); it may be what breaks the hosts",
                        e.message
                    )));
                } else if !another_running {
                    self.retries += 1;
                    self.pending.push_front(task);
                }
            }
            Err(e) => {
                if e.kind == FailureKind::Timeout {
                    self.timeouts += 1;
                }
                self.failed_on
                    .entry(task)
                    .or_default()
                    .push(host.to_string());
                let failures = self.task_failures.entry(task).or_default();
                *failures += 1;
                if *failures > phase.policy.retries && self.skipped.len() < phase.policy.skip_up_to
                {
                    // Skipped rather than failing the job; an attempt of it
                    // still running (a backup) may yet succeed.
                    if !another_running {
                        self.skipped.push(Skipped {
                            task,
                            attempts: *self.attempts.get(&task).unwrap_or(&0),
                            host: host.to_string(),
                            error: e,
                        });
                    }
                } else if *failures > phase.policy.retries {
                    let n = *failures;
                    self.fatal.get_or_insert(task_failed(task, n, host, &e));
                    // The job fails. Attempts that still run finish (what
                    // they commit, --resume reuses), unless they may wait
                    // for hours in a batch queue first.
                    if phase.exec.cancel_when_failing() {
                        self.cancel_all(phase);
                    }
                } else {
                    self.retries += 1;
                    if !another_running {
                        self.pending.push_back(task);
                    }
                }
            }
        }
    }
}

/// The median of a growing set of durations, in O(log n) per value: every
/// idle slot asks for it at the end of a phase, and sorting 100,000
/// durations for each ask made the end of a large phase quadratic.
#[derive(Default)]
struct Median {
    /// The smaller half (a max-heap) and the larger half (a min-heap);
    /// `low` holds the median, and at most one more value than `high`.
    low: std::collections::BinaryHeap<Duration>,
    high: std::collections::BinaryHeap<std::cmp::Reverse<Duration>>,
}

impl Median {
    fn push(&mut self, d: Duration) {
        match self.low.peek() {
            Some(&top) if d > top => self.high.push(std::cmp::Reverse(d)),
            _ => self.low.push(d),
        }
        if self.low.len() > self.high.len() + 1 {
            let moved = self.low.pop().expect("not empty");
            self.high.push(std::cmp::Reverse(moved));
        } else if self.high.len() > self.low.len() {
            let std::cmp::Reverse(moved) = self.high.pop().expect("not empty");
            self.low.push(moved);
        }
    }

    /// The median (of an even count, the upper of the two middle values,
    /// as `sorted[len / 2]` is); None before any value.
    fn get(&self) -> Option<Duration> {
        let n = self.low.len() + self.high.len();
        if n == 0 {
            return None;
        }
        if n % 2 == 0 {
            self.high.peek().map(|r| r.0)
        } else {
            self.low.peek().copied()
        }
    }
}

/// The job's end when no host is left.
fn no_hosts(health: &Health) -> Error {
    Error::job(format!(
        "no host can run tasks; each host's last error:\n{}",
        health.report()
    ))
}

fn task_failed(task: TaskId, attempts: u32, host: &str, e: &TaskError) -> Error {
    let mut msg = if e.kind == FailureKind::Fatal {
        format!("task {task} failed on {host}: {}", e.message)
    } else {
        format!(
            "task {task} failed {attempts} time{} (last on {host}): {}",
            if attempts == 1 { "" } else { "s" },
            e.message
        )
    };
    if e.stderr_tail.trim().is_empty() {
        // Only a command's failure has a stderr to speak of: a bad input,
        // a full disk or a lost host are said in the message itself.
        if matches!(e.kind, FailureKind::Task | FailureKind::Timeout) {
            msg.push_str("\n  (its stderr was empty)");
        }
    } else {
        msg.push_str("\n  last lines of its stderr:");
        for line in e.stderr_tail.lines() {
            msg.push_str("\n    ");
            msg.push_str(line);
        }
    }
    Error::job(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observe::observer::NoObserver;

    #[test]
    fn the_median_is_the_sorted_middle() {
        let mut m = Median::default();
        assert_eq!(m.get(), None);
        let mut all = Vec::new();
        let mut x = 12345u64;
        for _ in 0..500 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let d = Duration::from_micros(x >> 54);
            m.push(d);
            all.push(d);
            let mut sorted = all.clone();
            sorted.sort();
            assert_eq!(m.get(), Some(sorted[sorted.len() / 2]));
        }
    }
    use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};

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
        let out = run_phase(
            &exec,
            &tasks,
            Policy {
                retries: 2,
                ..Policy::default()
            },
            &NoObserver,
        )
        .unwrap();
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
            Policy {
                retries: 1,
                ..Policy::default()
            },
            &NoObserver,
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("reduce-00001 failed 2 times"), "{msg}");
        assert!(matches!(err, Error::Job { .. }));
    }

    fn ok(task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
        Ok(TaskReport {
            task: task.to_string(),
            attempt,
            ..TaskReport::default()
        })
    }

    /// Slots on hosts `h0`, `h1`, …; `broken` hosts fail every attempt as
    /// the host's fault.
    struct Hosts {
        slots: Vec<String>,
        broken: Vec<&'static str>,
        calls_on_broken: AtomicU32,
    }

    impl Executor for Hosts {
        fn slots(&self) -> usize {
            self.slots.len()
        }
        fn host_of(&self, slot: usize) -> &str {
            &self.slots[slot]
        }
        fn run(&self, slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
            if self.broken.contains(&self.slots[slot].as_str()) {
                self.calls_on_broken.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(5));
                return Err(TaskError::host(format!(
                    "connection refused by {}",
                    self.slots[slot]
                )));
            }
            std::thread::sleep(Duration::from_millis(5));
            ok(task, attempt)
        }
    }

    fn hosts(slots: &[&str], broken: &[&'static str]) -> Hosts {
        Hosts {
            slots: slots.iter().map(|s| s.to_string()).collect(),
            broken: broken.to_vec(),
            calls_on_broken: AtomicU32::new(0),
        }
    }

    #[test]
    fn host_failures_do_not_use_up_retries_and_bad_hosts_get_no_work() {
        let exec = hosts(&["h0", "h0", "h1", "h1"], &["h0"]);
        let tasks: Vec<TaskId> = (0..40).map(TaskId::Map).collect();
        let policy = Policy {
            retries: 0,
            ..Policy::default()
        };
        let out = run_phase(&exec, &tasks, policy, &NoObserver).unwrap();
        assert_eq!(out.reports.len(), 40);
        // Three failures in a row make h0 bad; it is not tried again within
        // its first back-off (1 s), far longer than this phase.
        let calls = exec.calls_on_broken.load(Ordering::SeqCst);
        assert!(
            (3..=4).contains(&calls),
            "{calls} attempts on the broken host"
        );
    }

    #[test]
    fn a_pool_whose_hosts_all_fail_stops_naming_each_host() {
        let exec = hosts(&["h0", "h1", "h1"], &["h0", "h1"]);
        let tasks: Vec<TaskId> = (0..10).map(TaskId::Map).collect();
        let t0 = Instant::now();
        let err = run_phase(&exec, &tasks, Policy::default(), &NoObserver).unwrap_err();
        assert!(t0.elapsed() < Duration::from_secs(2), "bounded time");
        let msg = err.to_string();
        assert!(msg.contains("no host can run tasks"), "{msg}");
        assert!(msg.contains("h0: connection refused by h0"), "{msg}");
        assert!(msg.contains("h1: connection refused by h1"), "{msg}");
    }

    /// The first attempt of task 0 hangs until cancelled; everything else
    /// is quick.
    struct Straggler {
        slots: Vec<String>,
        cancelled: Vec<AtomicBool>,
        cancels: AtomicU32,
    }

    impl Executor for Straggler {
        fn slots(&self) -> usize {
            self.slots.len()
        }
        fn host_of(&self, slot: usize) -> &str {
            &self.slots[slot]
        }
        fn run(&self, slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
            self.cancelled[slot].store(false, Ordering::SeqCst);
            if task == TaskId::Map(0) && attempt == 1 {
                let t0 = Instant::now();
                while !self.cancelled[slot].load(Ordering::SeqCst) {
                    assert!(t0.elapsed() < Duration::from_secs(10), "never cancelled");
                    std::thread::sleep(Duration::from_millis(5));
                }
                return Err(TaskError::cancelled());
            }
            std::thread::sleep(Duration::from_millis(20));
            ok(task, attempt)
        }
        fn cancel(&self, slot: usize) {
            self.cancels.fetch_add(1, Ordering::SeqCst);
            self.cancelled[slot].store(true, Ordering::SeqCst);
        }
    }

    #[test]
    fn a_straggler_gets_a_backup_on_another_host_and_the_loser_is_cancelled() {
        let slots = ["h0", "h1"];
        let exec = Straggler {
            slots: slots.iter().map(|s| s.to_string()).collect(),
            cancelled: slots.iter().map(|_| AtomicBool::new(false)).collect(),
            cancels: AtomicU32::new(0),
        };
        let tasks: Vec<TaskId> = (0..6).map(TaskId::Map).collect();
        let policy = Policy {
            retries: 0,
            backup_after: Duration::from_millis(100),
            ..Policy::default()
        };
        let t0 = Instant::now();
        let out = run_phase(&exec, &tasks, policy, &NoObserver).unwrap();
        assert!(t0.elapsed() < Duration::from_secs(3));
        assert_eq!(out.backups, 1);
        assert_eq!(out.retries, 0, "the cancelled loser is no failure");
        assert_eq!(out.reports[0].attempt, 2, "the backup won");
        assert_eq!(exec.cancels.load(Ordering::SeqCst), 1);
    }

    /// Every task fails on host h0, as the task's fault.
    struct FailsOnH0(Vec<String>);

    impl Executor for FailsOnH0 {
        fn slots(&self) -> usize {
            self.0.len()
        }
        fn host_of(&self, slot: usize) -> &str {
            &self.0[slot]
        }
        fn run(&self, slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
            std::thread::sleep(Duration::from_millis(2));
            if self.0[slot] == "h0" {
                return Err(TaskError::task("not on h0"));
            }
            ok(task, attempt)
        }
    }

    #[test]
    fn a_task_that_failed_on_a_host_goes_to_another_one() {
        for tasks in [1, 2, 7] {
            let exec = FailsOnH0(["h0", "h0", "h0", "h1"].map(String::from).to_vec());
            let tasks: Vec<TaskId> = (0..tasks).map(TaskId::Map).collect();
            let policy = Policy {
                retries: 1,
                ..Policy::default()
            };
            let out = run_phase(&exec, &tasks, policy, &NoObserver).unwrap();
            assert!(out.reports.iter().all(|r| r.attempt <= 2));
        }
    }

    /// Attempts that end as they start, reported on the channel: no thread
    /// of their own.
    struct Queued {
        slots: Vec<String>,
        started: AtomicU32,
    }

    impl Executor for Queued {
        fn slots(&self) -> usize {
            self.slots.len()
        }
        fn host_of(&self, slot: usize) -> &str {
            &self.slots[slot]
        }
        fn start(&self, slot: usize, task: TaskId, attempt: u32, done: &crate::exec::Done) -> bool {
            self.started.fetch_add(1, Ordering::SeqCst);
            let _ = done.send(Ended {
                slot,
                result: ok(task, attempt),
            });
            true
        }
    }

    #[test]
    fn slots_are_no_threads() {
        // More slots than a machine gives threads (pid_max is 32,768 by
        // default): a thread per slot could not start this phase.
        let exec = Queued {
            slots: (0..40_000).map(|i| format!("h{}", i / 32)).collect(),
            started: AtomicU32::new(0),
        };
        let tasks: Vec<TaskId> = (0..60_000).map(TaskId::Map).collect();
        let out = run_phase(&exec, &tasks, Policy::default(), &NoObserver).unwrap();
        assert_eq!(out.reports.len(), 60_000);
        assert_eq!(exec.started.load(Ordering::SeqCst), 60_000);
        // And `run` still works for an executor that only starts.
        assert_eq!(exec.run(7, TaskId::Map(3), 1).unwrap().task, "map-00003");
    }
}
