//! The tracker: an [`Observer`] in the job's gmr that keeps the job's
//! status document ([`crate::observe::status`]) up to date in the work directory,
//! so that `gmr status` works from any terminal or host that sees it.
//!
//! - `status.json`: rewritten (a new file renamed over) every
//!   [`UPDATE_EVERY`] from the tracker's making to the job's end, within
//!   [`NUDGE_GAP`] of an attempt's start or end, and at each phase's start
//!   and end.
//! - `attempts.jsonl`: a line per attempt that ended, appended as it ends.
//! - at the end of the job, failed or not: `report.json` (the document
//!   with every attempt) and `report.html` ([`crate::observe::htmlreport`]).
//!
//! A job run stage by stage (`gmr map | gmr shuffle | gmr reduce`), or
//! resumed, continues the document its earlier processes left.

use crate::error::{Error, FailureKind, TaskError};
use crate::exec::Executor;
use crate::exec::health::Health;
use crate::observe::observer::{Attempt, Observer};
use crate::observe::status::{
    self, AttemptStatus, FAILURES_KEPT, Failure, HostStatus, JobStatus, PhaseStatus, SCHEMA, State,
};
use crate::observe::summary::PhaseTotals;
use crate::store::workdir::WorkDir;
use crate::task::TaskId;
use crate::task::report::{Counters, TaskReport, add_counters};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub(crate) use crate::observe::status::UPDATE_EVERY;

/// Keeps a job's status document: from its making to [`Tracker::end`], a
/// heartbeat thread rewrites `status.json` every [`UPDATE_EVERY`], between
/// phases too (sampling, delivering a large output), so that `gmr status`
/// on another host can tell a job that runs from one whose gmr is gone.
pub(crate) struct Tracker {
    inner: Arc<Inner>,
    heartbeat: Mutex<Option<Heartbeat>>,
}

/// The heartbeat thread, and the sender whose closing stops it.
type Heartbeat = (crossbeam_channel::Sender<()>, std::thread::JoinHandle<()>);

/// What the tracker and its heartbeat share.
struct Inner {
    root: PathBuf,
    status_path: PathBuf,
    report_path: PathBuf,
    html_path: PathBuf,
    attempts_path: PathBuf,
    live: Mutex<Live>,
    /// Held from a snapshot to its rename: the heartbeat and the job's
    /// thread write through the same temporary file.
    writing: Mutex<()>,
    /// An attempt started or ended: the heartbeat writes soon.
    nudge: crossbeam_channel::Sender<()>,
    nudged: crossbeam_channel::Receiver<()>,
}

/// The least time between two writes an attempt's start or end asks for.
const NUDGE_GAP: Duration = Duration::from_millis(250);

#[derive(Default)]
struct Live {
    /// The document, less what is computed when it is written.
    doc: JobStatus,
    /// The attempts running, by slot.
    running: HashMap<usize, AttemptStatus>,
    /// The tasks of the phase done, and those with an attempt running.
    done: HashSet<TaskId>,
    busy_tasks: HashMap<TaskId, u32>,
    /// Each host's slots, attempts, failures and last word.
    hosts: BTreeMap<String, HostStatus>,
    /// `attempts.jsonl`, appended to (None when it cannot be opened).
    attempts: Option<std::io::BufWriter<std::fs::File>>,
    /// Input bytes of the phase's reused tasks (not this run's throughput).
    reused_bytes: u64,
    /// Input bytes the running attempts of this process have fed so far:
    /// counted as done, so that the figures move within a task.
    fed: u64,
    /// Whether the job ended (the document is final).
    ended: bool,
}

impl Tracker {
    /// Starts (or, for the same job, continues) the status of job `job` in
    /// `wd`, run on `exec`'s slots.
    pub(crate) fn new(wd: &WorkDir, job: &str, exec: &dyn Executor) -> Tracker {
        let mut hosts: BTreeMap<String, HostStatus> = BTreeMap::new();
        for slot in 0..exec.slots() {
            let name = exec.host_of(slot);
            let h = hosts.entry(name.to_string()).or_insert_with(|| HostStatus {
                name: name.to_string(),
                good: true,
                ..HostStatus::default()
            });
            h.slots += 1;
        }
        Tracker::with_hosts(wd, job, hosts)
    }

    /// The status of a job whose plan is being made (inputs listed,
    /// stamped and cut, streams saved, a total order's sample run): phase
    /// `plan`, with the heartbeat, so that `gmr status` sees a job planning
    /// 100,000 files as running. `job` is the job being resumed, if any
    /// (its history is kept); the job's own tracker takes over once the
    /// plan is made.
    pub(crate) fn planning(wd: &WorkDir, job: Option<&str>) -> Tracker {
        let tracker = Tracker::with_hosts(wd, job.unwrap_or_default(), BTreeMap::new());
        tracker.begin_phase("plan", &[], &[], 0);
        tracker
    }

    fn with_hosts(wd: &WorkDir, job: &str, hosts: BTreeMap<String, HostStatus>) -> Tracker {
        let now = status::now();
        let earlier = std::fs::read(wd.status_path())
            .ok()
            .and_then(|b| serde_json::from_slice::<JobStatus>(&b).ok())
            .filter(|s| s.job == job && s.schema == SCHEMA);
        let mut doc = JobStatus {
            schema: SCHEMA,
            job: job.to_string(),
            workdir: wd.root().display().to_string(),
            started: now,
            ..JobStatus::default()
        };
        if let Some(e) = earlier {
            // What the earlier stages or runs of this job did.
            doc.started = e.started;
            doc.phases = e.phases;
            doc.failures = e.failures;
            doc.failed_attempts = e.failed_attempts;
            doc.map = e.map;
            doc.reduce = e.reduce;
            doc.partitions = e.partitions;
            doc.counters = e.counters;
        }
        doc.state = Some(State::Running);
        doc.coordinator = status::Coordinator {
            host: status::host_name(),
            pid: std::process::id(),
            started: now,
        };
        let attempts = crate::files::open_append(&wd.attempts_path())
            .ok()
            .map(std::io::BufWriter::new);
        let (nudge, nudged) = crossbeam_channel::bounded(1);
        let inner = Arc::new(Inner {
            root: wd.root().to_path_buf(),
            status_path: wd.status_path(),
            report_path: wd.job_report_path(),
            html_path: wd.report_html_path(),
            attempts_path: wd.attempts_path(),
            live: Mutex::new(Live {
                doc,
                hosts,
                attempts,
                ..Live::default()
            }),
            writing: Mutex::new(()),
            nudge,
            nudged,
        });
        inner.write();
        let (stop, stopped) = crossbeam_channel::bounded::<()>(0);
        let nudged = inner.nudged.clone();
        let beating = Arc::clone(&inner);
        let heartbeat = std::thread::Builder::new()
            .name("status".into())
            .spawn(move || {
                let mut last = std::time::Instant::now();
                loop {
                    // Every second, and soon after an attempt starts or
                    // ends, but not more often than every NUDGE_GAP: a
                    // large job's document is megabytes.
                    crossbeam_channel::select! {
                        recv(stopped) -> _ => return,
                        recv(nudged) -> _ => {
                            let gap = NUDGE_GAP.saturating_sub(last.elapsed());
                            if stopped.recv_timeout(gap)
                                != Err(crossbeam_channel::RecvTimeoutError::Timeout)
                            {
                                return;
                            }
                        }
                        default(UPDATE_EVERY) => {}
                    }
                    beating.write();
                    last = std::time::Instant::now();
                }
            })
            .ok()
            .map(|h| (stop, h));
        Tracker {
            inner,
            heartbeat: Mutex::new(heartbeat),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.inner.lock()
    }

    /// Stops the heartbeat (the document is final, or the job's gmr ends).
    fn stop_heartbeat(&self) {
        let beat = self
            .heartbeat
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        if let Some((stop, thread)) = beat {
            drop(stop);
            let _ = thread.join();
        }
    }

    /// A phase starts: `tasks` in all, of which `reused` committed in an
    /// earlier run; `bytes` its input (the map phase).
    pub(crate) fn begin_phase(
        &self,
        name: &str,
        tasks: &[TaskId],
        reused: &[&TaskReport],
        bytes: u64,
    ) {
        {
            let mut live = self.lock();
            let reused_bytes: u64 = reused.iter().map(|r| r.bytes_in).sum();
            live.doc.phases.retain(|p| p.name != name);
            live.doc.phases.push(PhaseStatus {
                name: name.to_string(),
                started: status::now(),
                tasks: tasks.len() as u64,
                reused: reused.len() as u64,
                done: reused.len() as u64,
                bytes_total: bytes,
                bytes_done: if bytes > 0 { reused_bytes } else { 0 },
                ..PhaseStatus::default()
            });
            live.doc.phase = Some(name.to_string());
            live.reused_bytes = if bytes > 0 { reused_bytes } else { 0 };
            // The counters of reused tasks are in the document of the run
            // that committed them (and the job's end sets the job's own).
            live.done.clear();
        }
        self.write();
    }

    /// The phase ended with these totals and reports.
    pub(crate) fn end_phase(&self, name: &str, totals: &PhaseTotals, reports: &[TaskReport]) {
        {
            let mut live = self.lock();
            if let Some(p) = live.doc.phases.iter_mut().find(|p| p.name == name) {
                p.ended = Some(status::now());
            }
            match name {
                "map" => live.doc.map = Some(totals.clone()),
                "reduce" => {
                    live.doc.reduce = Some(totals.clone());
                    live.doc.partitions = Some(reports.iter().map(|r| r.bytes_out).collect());
                }
                _ => {}
            }
        }
        self.write();
    }

    /// Notes the map tasks skipped after their retries.
    pub(crate) fn skipped(&self, skipped: &[status::SkippedTask]) {
        self.lock().doc.skipped = skipped.to_vec();
        self.write();
    }

    /// Notes how many input bytes the running attempts have fed so far.
    pub(crate) fn fed(&self, bytes: u64) {
        self.lock().fed = bytes;
    }

    /// Notes which hosts are good, as `health` says.
    pub(crate) fn hosts_health(&self, health: &Health) {
        for h in self.lock().hosts.values_mut() {
            h.good = health.is_good(&h.name);
        }
    }

    /// The document as of now, as the next write will have it.
    pub(crate) fn snapshot(&self) -> JobStatus {
        self.lock().snapshot()
    }

    /// Rewrites `status.json` now; returns the document written.
    pub(crate) fn write(&self) -> JobStatus {
        self.inner.write()
    }

    /// The job ended: `state`, with `error` for a failed job; `counters`
    /// and `seconds` are the job's own figures. Writes the last
    /// `status.json`, `report.json` and `report.html`. Only the first call
    /// counts.
    pub(crate) fn end(&self, state: State, error: Option<String>, counters: Option<&Counters>) {
        {
            let mut live = self.lock();
            if live.ended {
                return;
            }
            live.ended = true;
            let now = status::now();
            live.doc.state = Some(state);
            live.doc.error = error;
            live.doc.ended = Some(now);
            if let Some(c) = counters {
                live.doc.counters = c.clone();
            }
            for p in &mut live.doc.phases {
                p.ended.get_or_insert(now);
            }
        }
        self.stop_heartbeat();
        let doc = self.write();
        let report = with_attempts(doc, &self.inner.attempts_path);
        let (json, html) = (&self.inner.report_path, &self.inner.html_path);
        let _ = write_renamed(json, &crate::files::json_bytes(&report));
        let _ = write_renamed(html, crate::observe::htmlreport::render(&report).as_bytes());
    }

    /// The job failed with `e` (or was interrupted).
    pub(crate) fn failed(&self, e: &Error) {
        match e {
            Error::Interrupted => self.interrupted(),
            e => self.end(State::Failed, Some(e.to_string()), None),
        }
    }

    /// The job was interrupted (Ctrl-C, SIGTERM).
    pub(crate) fn interrupted(&self) {
        let how = format!(
            "interrupted; continue the job with --resume --workdir {}",
            self.inner.root.display()
        );
        self.end(State::Interrupted, Some(how), None);
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        self.stop_heartbeat();
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, Live> {
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Rewrites `status.json`; returns the document written.
    fn write(&self) -> JobStatus {
        let _writing = self.writing.lock().unwrap_or_else(|e| e.into_inner());
        let doc = {
            let mut live = self.lock();
            if let Some(a) = live.attempts.as_mut() {
                let _ = a.flush();
            }
            live.snapshot()
        };
        // A new file renamed over: a reader never sees half a document.
        // No fsync: it is rewritten every second, and a crash leaves the
        // last one whole.
        let _ = write_renamed(&self.status_path, &crate::files::json_bytes(&doc));
        doc
    }
}

/// Writes `bytes` to `path` through a file renamed over it, private to
/// its user as everything in the work directory is (0600).
fn write_renamed(path: &std::path::Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(format!(".{}", std::process::id()));
    let tmp = PathBuf::from(tmp);
    // A new private file, never through a link (one an earlier writer of
    // this process left is replaced).
    let _ = std::fs::remove_file(&tmp);
    let written =
        crate::files::write_private(&tmp, bytes).and_then(|()| std::fs::rename(&tmp, path));
    if written.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

/// `doc` with every attempt of `attempts.jsonl` (what `report.json` and
/// `gmr report` show); lines that do not parse (a line cut short by a
/// crash) are skipped.
pub(crate) fn with_attempts(mut doc: JobStatus, attempts: &std::path::Path) -> JobStatus {
    let text = std::fs::read(attempts).unwrap_or_default();
    let mut all: Vec<AttemptStatus> = text
        .split(|&b| b == b'\n')
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect();
    // The attempts still running, as they are so far.
    all.extend(doc.running.iter().cloned());
    all.sort_by(|a, b| a.start.total_cmp(&b.start));
    doc.attempts = Some(all);
    doc
}

impl Live {
    /// The document as of now.
    fn snapshot(&mut self) -> JobStatus {
        let now = status::now();
        let mut doc = self.doc.clone();
        doc.updated = now;
        doc.seconds = doc.ended.unwrap_or(now) - doc.started;
        for h in self.hosts.values_mut() {
            h.busy = 0;
        }
        for a in self.running.values() {
            if let Some(h) = self.hosts.get_mut(&a.host) {
                h.busy += 1;
            }
        }
        doc.hosts = self.hosts.values().cloned().collect();
        let mut running: Vec<AttemptStatus> = self
            .running
            .values()
            .map(|a| AttemptStatus {
                seconds: now - a.start,
                ..a.clone()
            })
            .collect();
        running.sort_by(|a, b| b.seconds.total_cmp(&a.seconds));
        doc.running = running;
        let ended = doc.ended.is_some();
        if let Some(p) = doc.phases.last_mut() {
            // A task done may still have a loser of its backup race running.
            p.running = self
                .busy_tasks
                .keys()
                .filter(|t| !self.done.contains(t))
                .count() as u64;
            p.pending = p.tasks.saturating_sub(p.done + p.running);
            if p.bytes_total > 0 && p.ended.is_none() {
                p.bytes_done = (p.bytes_done + self.fed).min(p.bytes_total);
            }
            // Throughput and ETA: by bytes in the map phase, by tasks in
            // the others.
            let elapsed = now - p.started;
            doc.throughput = 0.0;
            doc.eta_seconds = None;
            if p.ended.is_none() && !ended && elapsed > 0.0 {
                let fresh = p.done - p.reused;
                if p.bytes_total > 0 {
                    doc.throughput =
                        p.bytes_done.saturating_sub(self.reused_bytes) as f64 / elapsed;
                    if doc.throughput > 0.0 {
                        doc.eta_seconds = Some(
                            p.bytes_total.saturating_sub(p.bytes_done) as f64 / doc.throughput,
                        );
                    }
                } else if fresh > 0 {
                    doc.eta_seconds = Some((p.tasks - p.done) as f64 * elapsed / fresh as f64);
                }
            }
        }
        doc
    }
}

impl Observer for Tracker {
    fn started(&self, a: &Attempt) {
        let mut live = self.lock();
        let now = status::now();
        let backup = live.busy_tasks.contains_key(&a.task);
        *live.busy_tasks.entry(a.task).or_default() += 1;
        live.running.insert(
            a.slot,
            AttemptStatus {
                task: a.task.to_string(),
                attempt: a.attempt,
                host: a.host.to_string(),
                slot: a.slot as u64,
                start: now,
                status: "running".into(),
                backup,
                ..AttemptStatus::default()
            },
        );
        if let Some(h) = live.hosts.get_mut(a.host) {
            h.attempts += 1;
            h.last_heard = Some(now);
        }
        if let Some(p) = live.doc.phases.last_mut() {
            p.attempts += 1;
        }
        let _ = self.inner.nudge.try_send(());
    }

    fn finished(&self, a: &Attempt, result: &Result<TaskReport, TaskError>, elapsed: Duration) {
        let mut live = self.lock();
        let live = &mut *live;
        let now = status::now();
        let Some(mut attempt) = live.running.remove(&a.slot) else {
            return;
        };
        if let Some(n) = live.busy_tasks.get_mut(&a.task) {
            *n -= 1;
            if *n == 0 {
                live.busy_tasks.remove(&a.task);
            }
        }
        attempt.seconds = elapsed.as_secs_f64();
        let host = live.hosts.get_mut(a.host);
        match result {
            Ok(r) => {
                attempt.status = "ok".into();
                attempt.bytes_in = r.bytes_in;
                attempt.records_in = r.records_in;
                if live.done.insert(a.task)
                    && let Some(p) = live.doc.phases.last_mut()
                {
                    p.done += 1;
                    if p.bytes_total > 0 {
                        p.bytes_done += r.bytes_in;
                    }
                    add_counters(&mut live.doc.counters, &r.counters);
                }
                if let Some(h) = host {
                    h.last_heard = Some(now);
                }
            }
            // The loser of a race with a backup, however it ended (a
            // killed step or connection says "host"), as the coordinator
            // counts it: no failure.
            Err(_) if live.done.contains(&a.task) => {
                attempt.status = "cancelled".into();
            }
            Err(e) => {
                attempt.status = e.kind.status().into();
                if e.kind != FailureKind::Interrupted {
                    if let Some(h) = host {
                        h.failed_attempts += 1;
                        if e.kind != FailureKind::Host {
                            h.last_heard = Some(now);
                        }
                    }
                    if let Some(p) = live.doc.phases.last_mut() {
                        p.failed_attempts += 1;
                    }
                    live.doc.failed_attempts += 1;
                    if live.doc.failures.len() >= FAILURES_KEPT {
                        live.doc.failures.remove(0);
                    }
                    live.doc.failures.push(Failure {
                        task: a.task.to_string(),
                        attempt: a.attempt,
                        host: a.host.to_string(),
                        end: now,
                        status: e.kind.status().into(),
                        error: e.message.clone(),
                        stderr_tail: e.stderr_tail.clone(),
                    });
                }
            }
        }
        if let Some(log) = live.attempts.as_mut() {
            let mut line = serde_json::to_vec(&attempt).expect("serializable");
            line.push(b'\n');
            let _ = log.write_all(&line);
        }
        let _ = self.inner.nudge.try_send(());
    }
}
