//! The one lifecycle of a job, shared by `gmr run` and the stage commands:
//! the spec saved in the work directory, the executor made with this
//! process's [`Resources`], each phase run through the coordinator with
//! progress, the job log and resume, the counters summed, the record
//! counts checked, and the output finished and summarised.
//!
//! `gmr run` walks every step; `gmr map`, `gmr shuffle` and `gmr reduce`
//! each walk the steps of their phase, so a job run stage by stage is
//! checked and finished exactly as one run whole.

use crate::control::coordinator::{self, Policy, Skipped};
use crate::control::plan::RunOptions;
use crate::data::builtin::Builtin;
use crate::data::split::Split;
use crate::error::{Error, Result};
use crate::exec::{Executor, Pool};
use crate::observe::joblog::JobLog;
use crate::observe::observer::{Observer, Observers};
use crate::observe::progress::Progress;
use crate::observe::status::{SkippedInput, SkippedTask, State};
use crate::observe::summary::{self, PhaseTotals};
use crate::observe::tracker::{self, Tracker};
use crate::store::history::Entry;
use crate::store::output;
use crate::store::resources::Resources;
use crate::store::spec::JobSpec;
use crate::store::workdir::{self, WorkDir};
use crate::task::job::{Combiner, Job};
use crate::task::program::Program;
use crate::task::report::{Counters, TaskReport, add_counters};
use crate::task::{self, TaskId};
use std::collections::HashMap;
use std::fs;
use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Instant;

/// What finishing a job includes besides the checks and the output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ending {
    /// `gmr run`: the job report in the work directory, the summary and
    /// its hints (unless quiet).
    Run,
    /// A stage command: the summary only when `summary` (the end of a
    /// pipeline that prints no manifest), unless quiet.
    Stage {
        /// Print the summary.
        summary: bool,
    },
}

/// Where a finished job's output goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Delivery {
    /// The parts stay where they are (a stage that prints its manifest).
    Stay,
    /// The parts are in the output directory: write `_SUCCESS`.
    Directory,
    /// Copy the parts to stdout, in partition order.
    Stdout,
}

/// Where the spec [`Lifecycle::start`] is given comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SpecState {
    /// New or changed (`gmr run`, `gmr map`, `gmr reduce`): saved now,
    /// with its output directory made.
    New,
    /// As the stage before saved it (`gmr shuffle`): checked unchanged.
    Saved,
}

/// A job being run in its work directory.
pub(crate) struct Lifecycle<'a> {
    wd: &'a WorkDir,
    job: Job,
    exec: Box<dyn Executor>,
    res: Arc<Resources>,
    options: &'a RunOptions,
    joblog: Option<JobLog>,
    started: Instant,
    counters: Counters,
    map: Option<PhaseTotals>,
    reduce: Option<PhaseTotals>,
    /// The job's status document in the work directory.
    tracker: Tracker,
    /// Whether the work directory stays after success (the summary then
    /// names its report).
    kept: bool,
    /// Whether every task runs in this process (no `--hosts`, no Slurm).
    local: bool,
    /// The job's entry in the user's history, where the reports of a job
    /// whose work directory is removed are kept.
    history: Option<Entry>,
    /// Map tasks skipped after their retries (`--max-failed-tasks`).
    skipped: Vec<SkippedTask>,
    /// Each partition's bytes, read once the map side is done
    /// ([`Lifecycle::partition_sizes`]).
    partition_sizes: std::sync::OnceLock<Option<Vec<u64>>>,
}

impl<'a> Lifecycle<'a> {
    /// Starts the job of `spec` in `wd` on `pool`: a new or changed spec
    /// ([`SpecState::New`]) is saved, with its output directory made, and the executor
    /// is made with this process's [`Resources`]. `started` is when the
    /// command started (for the summary); `child_nofile` the open-file
    /// limit gmr started with.
    pub(crate) fn start(
        wd: &'a WorkDir,
        spec: JobSpec,
        state: SpecState,
        pool: Pool,
        options: &'a RunOptions,
        (started, child_nofile): (Instant, Option<libc::rlimit>),
    ) -> Result<Lifecycle<'a>> {
        let job = Job::new(spec)?;
        // The digest remote tasks check: of the bytes saved now, or of the
        // spec an earlier stage saved.
        let digest = if state == SpecState::New {
            let output = &job.spec.output;
            fs::create_dir_all(output).map_err(|e| Error::io("cannot create", output, e))?;
            job.spec.save(wd)?
        } else {
            // The spec an earlier stage saved: the digest is of the bytes
            // that hold this very spec.
            let (saved, digest) = JobSpec::load_with_digest(wd)?;
            if saved != job.spec {
                return Err(Error::job(format!(
                    "the job spec {} changed while this stage started; run it again",
                    wd.spec_path().display()
                )));
            }
            digest
        };
        // Parts commit into the output only while it names this job.
        crate::store::output::claim(&job.spec.output, &job.spec.job)?;
        let local = matches!(pool, Pool::Local(_));
        let res = Arc::new(Resources::new(pool.local_slots(), child_nofile));
        let exec = pool.executor(wd, &job, &digest, Arc::clone(&res))?;
        let step = options.step.map(|s| s.number);
        let joblog = options
            .joblog
            .as_deref()
            .map(|path| JobLog::open(path, step))
            .transpose()?;
        let tracker = Tracker::new(wd, &job.spec.job, exec.as_ref());
        Ok(Lifecycle {
            tracker,
            kept: !wd.is_temporary(),
            wd,
            job,
            exec,
            res,
            options,
            joblog,
            started,
            counters: Counters::new(),
            map: None,
            reduce: None,
            local,
            history: None,
            skipped: Vec::new(),
            partition_sizes: std::sync::OnceLock::new(),
        })
    }

    /// Says whether the work directory stays after success (by default,
    /// unless marked temporary).
    pub(crate) fn keep_workdir(&mut self, kept: bool) {
        self.kept = kept;
    }

    /// Keeps the job's reports in `entry` of the history when its work
    /// directory is removed after success.
    pub(crate) fn record_in(&mut self, entry: Option<Entry>) {
        self.history = entry;
    }

    /// The job's spec.
    pub(crate) fn spec(&self) -> &JobSpec {
        &self.job.spec
    }

    /// Runs the map phase.
    pub(crate) fn map(&mut self) -> Result<Vec<TaskReport>> {
        let splits = &self.job.spec.splits;
        let tasks: Vec<TaskId> = (0..splits.len()).map(TaskId::Map).collect();
        let sizes: Vec<u64> = splits.iter().map(Split::len).collect();
        let bytes = sizes.iter().sum();
        // What an earlier run skipped is tried again.
        crate::files::remove_path(&self.wd.skipped_dir());
        let (reports, totals, skipped) = self.phase("map", &tasks, Some(bytes), Some(&sizes))?;
        self.skip(skipped)?;
        // The map phase is over: the sort buffers' memory is better left to
        // the merges and reducers.
        self.res.buffers.release();
        self.add_counters(&reports);
        self.map = Some(totals);
        Ok(reports)
    }

    /// Runs the shuffle phase: each partition merged into one file.
    pub(crate) fn shuffle(&mut self) -> Result<Vec<TaskReport>> {
        let tasks: Vec<TaskId> = (0..self.job.spec.reducers).map(TaskId::Shuffle).collect();
        let (reports, _, _) = self.phase("shuffle", &tasks, None, self.partition_sizes())?;
        Ok(reports)
    }

    /// Runs the reduce phase. A job whose map phase ran in another process
    /// (`gmr reduce`) takes the map side's totals from its committed
    /// reports, for the record count check.
    pub(crate) fn reduce(&mut self) -> Result<Vec<TaskReport>> {
        if self.map.is_none() {
            let mut map = PhaseTotals::default();
            for i in 0..self.job.spec.splits.len() {
                if let Some(r) = task::committed_report(self.wd, &self.job.spec, TaskId::Map(i)) {
                    map.add(&r);
                }
            }
            self.map = Some(map);
        }
        let tasks: Vec<TaskId> = (0..self.job.spec.reducers).map(TaskId::Reduce).collect();
        let (reports, totals, _) = self.phase("reduce", &tasks, None, self.partition_sizes())?;
        self.add_counters(&reports);
        self.reduce = Some(totals);
        Ok(reports)
    }

    /// Has the reduce tasks write their parts straight into stdout
    /// ([`output::StdoutParts`]) rather than into the work directory for a
    /// copy at the end, when they run in this process, each part's size is
    /// known once the map phase is over (a reducer that is `cat`, parts
    /// not compressed) and stdout is a file. Call it between the phases.
    pub(crate) fn parts_to_stdout(&self) {
        let spec = &self.job.spec;
        let identity = matches!(self.job.reducer, Some(Program::Builtin(Builtin::Identity)));
        if !self.local || !identity || spec.compress.is_some() || spec.reducers == 0 {
            return;
        }
        let Some(sizes) = self.partition_sizes() else {
            return;
        };
        if let Some(parts) = output::StdoutParts::take(sizes) {
            let _ = self.res.stdout_parts.set(parts);
        }
    }

    /// The bytes of each partition as the reducers get them (copies of
    /// counted lines expanded), from the map tasks' indexes, read once;
    /// `None` when one cannot be read or is another job's (a skipped map
    /// task has none). Only once the map side is done.
    fn partition_sizes(&self) -> Option<&[u64]> {
        self.partition_sizes
            .get_or_init(|| self.read_partition_sizes())
            .as_deref()
    }

    fn read_partition_sizes(&self) -> Option<Vec<u64>> {
        let spec = &self.job.spec;
        let mut sizes = vec![0u64; spec.reducers as usize];
        for i in 0..spec.splits.len() {
            let index = WorkDir::map_index(&self.wd.map_dir(i));
            let index = crate::files::read_json::<task::MapIndex>(&index).ok()?;
            if index.job != spec.job || index.segments.len() != sizes.len() {
                return None;
            }
            for (size, seg) in sizes.iter_mut().zip(&index.segments) {
                *size += seg.text_len();
            }
        }
        Some(sizes)
    }

    fn add_counters(&mut self, reports: &[TaskReport]) {
        for r in reports {
            add_counters(&mut self.counters, &r.counters);
        }
    }

    /// Runs a phase's tasks with a progress display, retries and the job
    /// log; a task that committed in an earlier run is reused when
    /// resuming. The largest tasks (by `sizes`, one per task, where known)
    /// are handed out first; the reports are in the order of `tasks`.
    fn phase(
        &self,
        name: &'static str,
        tasks: &[TaskId],
        bytes: Option<u64>,
        sizes: Option<&[u64]>,
    ) -> Result<(Vec<TaskReport>, PhaseTotals, Vec<Skipped>)> {
        let started = Instant::now();
        let reused: Vec<Option<TaskReport>> = tasks
            .iter()
            .map(|&t| {
                self.options
                    .resume
                    .then(|| task::committed_report(self.wd, &self.job.spec, t))
                    .flatten()
            })
            .collect();
        let pending: Vec<TaskId> = tasks
            .iter()
            .zip(&reused)
            .filter(|(_, r)| r.is_none())
            .map(|(t, _)| *t)
            .collect();
        let order = match sizes {
            Some(sizes) => {
                let size: HashMap<TaskId, u64> =
                    tasks.iter().copied().zip(sizes.iter().copied()).collect();
                largest_first(&pending, |t| size.get(&t).copied().unwrap_or(0))
            }
            None => pending.clone(),
        };
        let reused_reports: Vec<&TaskReport> = reused.iter().flatten().collect();
        if self.options.resume && !self.options.quiet {
            eprintln!(
                "gmr: {name}: {}",
                resumed(reused_reports.len(), tasks.len())
            );
        }
        self.tracker
            .begin_phase(name, tasks, &reused_reports, bytes.unwrap_or(0));
        let progress = Progress::new(name, !self.options.quiet, self.exec.health(), &self.tracker);
        // The tracker first: the bar draws what it just counted.
        let mut observers: Vec<&dyn Observer> = vec![&self.tracker, &progress];
        if let Some(log) = &self.joblog {
            observers.push(log);
        }
        // Only map tasks may be skipped: a reduce task's partition is
        // output that would be missing whole.
        let skip_up_to = match name {
            "map" => self.options.max_failed.map_or(0, |m| m.of(tasks.len())),
            _ => 0,
        };
        let policy = Policy {
            retries: self.options.retries,
            skip_up_to,
            ..Policy::default()
        };
        let outcome = std::thread::scope(|scope| {
            let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
            let progress = &progress;
            scope.spawn(move || self.watch(stopped, progress));
            let outcome =
                coordinator::run_phase(self.exec.as_ref(), &order, policy, &Observers(observers));
            drop(stop);
            outcome
        });
        progress.finish();
        let outcome = outcome.inspect_err(|e| self.tracker.failed(e))?;
        let skipped: std::collections::HashSet<TaskId> =
            outcome.skipped.iter().map(|s| s.task).collect();
        // The reports of the tasks done, in the order they were handed out.
        let mut fresh: HashMap<TaskId, TaskReport> = order
            .iter()
            .filter(|t| !skipped.contains(t))
            .copied()
            .zip(outcome.reports)
            .collect();
        let reports: Vec<TaskReport> = tasks
            .iter()
            .zip(reused)
            .filter_map(|(task, r)| match r {
                Some(r) => Some(r),
                None if skipped.contains(task) => None,
                None => Some(fresh.remove(task).expect("one report per task done")),
            })
            .collect();
        let mut totals = PhaseTotals {
            reused: (tasks.len() - pending.len()) as u64,
            skipped: outcome.skipped.len() as u64,
            retries: outcome.retries,
            backups: outcome.backups,
            timeouts: outcome.timeouts,
            ..PhaseTotals::default()
        };
        for r in &reports {
            totals.add(r);
        }
        totals.millis = started.elapsed().as_millis() as u64;
        self.tracker.end_phase(name, &totals, &reports);
        Ok((reports, totals, outcome.skipped))
    }

    /// Records the map tasks skipped after their retries: in the work
    /// directory (so that reduce tasks, wherever they run, leave their
    /// output out), the status, the job log and, at the end, the output.
    fn skip(&mut self, skipped: Vec<Skipped>) -> Result<()> {
        if skipped.is_empty() {
            return Ok(());
        }
        let spec = &self.job.spec;
        let dir = self.wd.skipped_dir();
        std::fs::create_dir_all(&dir).map_err(|e| Error::io("cannot create", &dir, e))?;
        for s in skipped {
            let TaskId::Map(i) = s.task else { continue };
            let inputs = spec.splits[i]
                .pieces()
                .map(|p| SkippedInput {
                    file: p.path.display().to_string(),
                    start: p.start,
                    length: p.end - p.start,
                })
                .collect();
            let record = SkippedTask {
                task: s.task.to_string(),
                inputs,
                attempts: s.attempts,
                host: s.host,
                error: s.error.message.clone(),
                stderr_tail: s.error.stderr_tail.clone(),
            };
            crate::files::write_json(&self.wd.skipped_path(&record.task), &record)?;
            if let Some(log) = &self.joblog {
                log.skipped(&record);
            }
            self.skipped.push(record);
        }
        self.tracker.skipped(&self.skipped);
        Ok(())
    }

    /// Whether `task` was skipped after its retries.
    fn was_skipped(&self, task: TaskId) -> bool {
        let name = task.to_string();
        self.skipped.iter().any(|s| s.task == name)
    }

    /// While a phase runs: redraws the progress bar, keeps the hosts'
    /// health in the status (the tracker's heartbeat writes it), and
    /// prints a status line every `--status-interval` when stderr is not a
    /// terminal (where no progress bar is drawn); until `stop` closes.
    fn watch(&self, stop: crossbeam_channel::Receiver<()>, progress: &Progress) {
        let lines = self
            .options
            .status_interval
            .filter(|_| !self.options.quiet && !std::io::stderr().is_terminal());
        // A bar moves within tasks (the input fed so far) four times a
        // second.
        let every = match std::io::stderr().is_terminal() && !self.options.quiet {
            true => std::time::Duration::from_millis(250),
            false => lines.map_or(tracker::UPDATE_EVERY, |i| i.min(tracker::UPDATE_EVERY)),
        };
        let mut last_line = Instant::now();
        while let Err(crossbeam_channel::RecvTimeoutError::Timeout) = stop.recv_timeout(every) {
            if let Some(health) = self.exec.health() {
                self.tracker.hosts_health(health);
            }
            self.tracker.fed(self.res.fed());
            progress.refresh();
            if let Some(interval) = lines
                && last_line.elapsed() >= interval
            {
                eprintln!("{}", self.tracker.snapshot().line());
                last_line = Instant::now();
            }
        }
    }

    /// Makes sure no record went missing between map and reduce.
    fn check_counts(&self) -> Result<()> {
        let Some(map) = &self.map else {
            return Ok(());
        };
        if self.job.combiner == Combiner::None && map.command_records_out != map.records_out {
            return Err(Error::job(format!(
                "internal error: mappers printed {} records but {} were written to runs; please report this",
                map.command_records_out, map.records_out
            )));
        }
        if let Some(reduce) = &self.reduce
            && reduce.records_in != map.records_out
        {
            return Err(Error::job(format!(
                "internal error: map tasks wrote {} records but reducers read {}; please report this (the work directory is kept)",
                map.records_out, reduce.records_in
            )));
        }
        Ok(())
    }

    /// Finishes the job once its phases ran: checks the record counts,
    /// writes the job report (`gmr run`), removes what failed attempts
    /// left, delivers the output, and prints the summary.
    pub(crate) fn finish(self, delivery: Delivery, ending: Ending) -> Result<()> {
        let result = self.deliver(delivery);
        // A stage that leaves its output for the next one ends its part.
        let state = match delivery {
            Delivery::Stay => State::Staged,
            Delivery::Directory | Delivery::Stdout => State::Done,
        };
        // A stage's counters are its own phases': the tracker's, carried
        // over from the earlier stages, are the job's.
        let counters = (ending == Ending::Run).then_some(&self.counters);
        match &result {
            Ok(()) => self.tracker.end(state, None, counters),
            Err(e) => self.tracker.failed(e),
        }
        result?;
        let spec = &self.job.spec;
        let summary = matches!(ending, Ending::Run | Ending::Stage { summary: true });
        // A step's reports are named once the whole job is done (steps.rs).
        let step = self.options.step.is_some();
        if summary && !self.options.quiet {
            let map = self.map.clone().unwrap_or_default();
            // This run's failed attempts (a resumed job's document has the
            // earlier runs' too).
            let since = crate::observe::status::now() - self.started.elapsed().as_secs_f64();
            let failures = self.tracker.snapshot().failures;
            let failed: Vec<summary::Retried> = failures
                .iter()
                .filter(|f| f.end >= since)
                // The last attempt of a skipped task was not retried.
                .filter(|f| {
                    !self
                        .skipped
                        .iter()
                        .any(|s| s.task == f.task && s.attempts == f.attempt)
                })
                .map(|f| summary::Retried {
                    task: &f.task,
                    attempt: f.attempt,
                    host: &f.host,
                    error: &f.error,
                })
                .collect();
            eprint!(
                "{}",
                summary::summary(
                    &self
                        .options
                        .step
                        .map_or("job".into(), |s| format!("step {} of {}", s.number, s.of)),
                    self.started.elapsed(),
                    &map,
                    self.reduce.as_ref(),
                    &self.counters,
                    spec.total_order,
                    &failed,
                )
            );
        }
        // The work directory goes after success: its reports stay in the
        // history.
        let report = match self.kept {
            true => Some(self.wd.report_html_path()),
            false => self.history.as_ref().and_then(|e| e.keep_reports(self.wd)),
        };
        if summary && !self.options.quiet {
            if let Some(report) = report.filter(|_| !step) {
                eprintln!("  report: {}", report.display());
            }
            if let Some(hint) = (ending == Ending::Run)
                .then(|| small_files_hint(&self.job))
                .flatten()
            {
                eprintln!("{hint}");
            }
        }
        // Input left out of a successful job is said even with -q.
        if !self.skipped.is_empty() {
            eprint!(
                "{}",
                skipped_warning(&self.skipped, &self.job.spec.output, delivery)
            );
        }
        Ok(())
    }

    /// Checks the record counts, removes what failed attempts left, and
    /// delivers the output.
    fn deliver(&self, delivery: Delivery) -> Result<()> {
        self.check_counts()?;
        let spec = &self.job.spec;
        // Parts are written by map-only and reduce tasks.
        if self.map.is_some() || self.reduce.is_some() {
            workdir::remove_attempt_files(&spec.output);
        }
        self.wd.remove_scratch();
        let parts = if spec.reducers == 0 {
            spec.splits.len()
        } else {
            spec.reducers as usize
        };
        match delivery {
            Delivery::Stay => {}
            Delivery::Directory => {
                if !self.skipped.is_empty() {
                    let mut lines = Vec::new();
                    for s in &self.skipped {
                        serde_json::to_writer(&mut lines, s).expect("serializable");
                        lines.push(b'\n');
                    }
                    output::write_skipped(&spec.output, &lines)?;
                }
                output::mark_success(&spec.output)?
            }
            Delivery::Stdout => match self.res.stdout_parts.get() {
                Some(written) => written.finish(),
                None => output::copy_to_stdout(
                    (0..parts)
                        // A skipped map task of a map-only job made no part.
                        .filter(|&p| spec.reducers > 0 || !self.was_skipped(TaskId::Map(p)))
                        .map(|p| spec.part_path(p)),
                )?,
            },
        }
        Ok(())
    }
}

impl Drop for Lifecycle<'_> {
    /// A job that stops without finishing (an error between phases, a
    /// panic) leaves a final status all the same.
    fn drop(&mut self) {
        // However the job ended here, no attempt of it commits into the
        // output any more (a resume claims it again).
        crate::store::output::release(&self.job.spec.output);
        if crate::interrupt::is_set() {
            self.tracker.interrupted();
        } else {
            let why = "gmr stopped before the job finished; its error message says why";
            self.tracker.end(State::Failed, Some(why.into()), None);
        }
    }
}

/// Runs `body` for a job whose work directory `wd` was just opened
/// (`created`: made by gmr); when it fails, says where the work directory
/// is kept, or removes it after a usage error. A work directory gmr made
/// is removed after success too. `own`: the job is `wd`'s alone, not a
/// step of a job of several, whose work directory is the one to resume.
pub(crate) fn keeping_workdir<T>(
    wd: &WorkDir,
    (created, own): (bool, bool),
    body: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let result = body();
    match result {
        Ok(_) if created => crate::files::remove_path(wd.root()),
        Err(Error::Usage { .. }) if created => crate::files::remove_path(wd.root()),
        Err(e @ Error::Job { .. }) => return Err(kept_for_inspection(wd, e)),
        // Before a job was saved (a stream being read): nothing to resume.
        Err(Error::Interrupted) if created && !wd.spec_path().exists() => {
            crate::files::remove_path(wd.root())
        }
        Err(Error::Interrupted) if own => eprintln!(
            "gmr: the work directory is kept; continue the job with --resume --workdir {}",
            wd.root().display()
        ),
        _ => {}
    }
    result
}

/// A failed job's error, saying where its work directory (kept) and its
/// report are: a stage's as much as a `gmr run`'s. Other errors as they are.
pub(crate) fn kept_for_inspection(wd: &WorkDir, e: Error) -> Error {
    if !matches!(e, Error::Job { .. }) {
        return e;
    }
    let report = wd.report_html_path();
    e.context(|msg| {
        let mut msg = format!(
            "{msg}\n  the work directory is kept for inspection: {}",
            wd.root().display()
        );
        if report.exists() {
            msg.push_str(&format!("\n  its report: {}", report.display()));
        }
        msg
    })
}

/// What a resumed phase reuses: `reused` of its `tasks` committed in an
/// earlier run.
fn resumed(reused: usize, tasks: usize) -> String {
    use crate::observe::units::count;
    match (reused, tasks - reused) {
        (0, _) => format!(
            "none of {} had committed in the earlier run; running them all",
            count(tasks as u64, "task")
        ),
        (1, 0) => "its one task had committed in the earlier run; nothing to run".into(),
        (_, 0) => format!("all {tasks} tasks had committed in the earlier run; nothing to run"),
        (_, left) => format!(
            "reusing {reused} of {} committed in the earlier run; running {left}",
            count(tasks as u64, "task")
        ),
    }
}

/// What gmr says of the map tasks a successful job skipped: each task,
/// its input, its attempts and why its last one failed, and where the
/// list is kept.
fn skipped_warning(
    skipped: &[SkippedTask],
    output: &std::path::Path,
    delivery: Delivery,
) -> String {
    use crate::observe::units::count;
    use std::fmt::Write as _;
    let mut s = format!(
        "gmr: warning: {} failed after its retries and was skipped (--max-failed-tasks): its input is not in the output\n",
        count(skipped.len() as u64, "map task")
    );
    for t in skipped {
        let _ = writeln!(
            s,
            "  skipped {} ({}) after {} on {}: {}",
            t.task,
            t.inputs_text(),
            count(t.attempts.into(), "attempt"),
            t.host,
            t.error.lines().next().unwrap_or("failed")
        );
    }
    if delivery == Delivery::Directory {
        let _ = writeln!(
            s,
            "  the list: {}",
            crate::store::workdir::skipped_list(output).display()
        );
    }
    s
}

/// Past this many small files sharing map tasks, each with a mapper of its
/// own, starting mappers is most of a job's time (about a millisecond each).
const SMALL_FILES_HINT: usize = 256;

/// A hint when many small files each started a mapper: the job could have
/// fed them to one mapper per task, unless its mapper reads the file name.
fn small_files_hint(job: &Job) -> Option<String> {
    let spec = &job.spec;
    let files: usize = spec
        .splits
        .iter()
        .filter(|s| !s.more.is_empty())
        .map(|s| 1 + s.more.len())
        .sum();
    // A built-in mapper starts no process per file.
    let command = matches!(job.mapper, Program::Shell(_));
    (files >= SMALL_FILES_HINT && command && !spec.one_mapper_per_task).then(|| {
        format!(
            "gmr: hint: {files} small input files each started a mapper; unless the mapper \
             reads GMR_INPUT_FILE, --one-mapper-per-task feeds each map task's files to one \
             mapper, which is much faster"
        )
    })
}

/// `tasks` in the order a phase hands them out: the largest first (ties
/// in their order), so that the phase does not end with one large task
/// running while the other slots idle (the longest-processing-time rule).
/// Which task runs when changes nothing in the output.
fn largest_first(tasks: &[TaskId], size: impl Fn(TaskId) -> u64) -> Vec<TaskId> {
    let mut order = tasks.to_vec();
    order.sort_by_key(|&t| std::cmp::Reverse(size(t)));
    order
}
