//! A job's status document: what `gmr status` shows, `status.json` holds
//! while the job runs and `report.json` holds at its end — one schema
//! (docs/status.md), written by the tracker (`tracker.rs`) in the user's gmr and
//! read here by any process that sees the work directory.
//!
//! Reading never writes: `gmr status` disturbs no job. Whether the job's gmr
//! still lives is judged from the document alone (its pid on this host, or
//! how long ago it was updated from another host).

use crate::error::{Error, Result};
use crate::observe::summary::PhaseTotals;
use crate::observe::units::{count, human_bytes, human_duration};
use crate::store::workdir::WorkDir;
use crate::task::report::Counters;
use serde::{Deserialize, Serialize};
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

/// The version of the schema; a reader refuses a newer one.
pub(crate) const SCHEMA: u32 = 1;

/// How often a running job's gmr rewrites `status.json`; a document older
/// than [`STALE_AFTER`] from a gmr on another host is reported stale.
pub(crate) const UPDATE_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// See [`UPDATE_EVERY`].
pub(crate) const STALE_AFTER: f64 = 30.0;

/// Where a job is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum State {
    /// Its gmr is running it.
    Running,
    /// It finished, with its output.
    Done,
    /// It failed (`error` says why).
    Failed,
    /// It was interrupted (Ctrl-C), or its gmr is gone: `--resume` goes on.
    Interrupted,
    /// A stage command (`gmr map`, `gmr shuffle`) finished its phase; the
    /// next stage goes on with the job.
    Staged,
}

impl State {
    pub(crate) fn name(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Done => "done",
            State::Failed => "failed",
            State::Interrupted => "interrupted",
            State::Staged => "staged (waiting for its next stage command)",
        }
    }
}

/// The gmr process that runs the job.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Coordinator {
    /// Its host name.
    pub(crate) host: String,
    /// Its process id there.
    pub(crate) pid: u32,
    /// When it took the job up (seconds since the epoch): a later stage or
    /// a resumed run is another process, later than the job's `started`.
    #[serde(default)]
    pub(crate) started: f64,
}

/// One phase: map, shuffle or reduce.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PhaseStatus {
    /// `map`, `shuffle` or `reduce`.
    pub(crate) name: String,
    /// When it started and ended, in seconds since the epoch.
    pub(crate) started: f64,
    /// None while it runs.
    pub(crate) ended: Option<f64>,
    /// Its tasks, those reused from an earlier run (`--resume`) included.
    pub(crate) tasks: u64,
    /// Tasks reused from an earlier run.
    pub(crate) reused: u64,
    /// Tasks committed (reused ones included).
    pub(crate) done: u64,
    /// Tasks with an attempt running.
    pub(crate) running: u64,
    /// Tasks neither done nor running.
    pub(crate) pending: u64,
    /// Attempts started.
    pub(crate) attempts: u64,
    /// Attempts that failed (retried or not; cancelled losers of a backup
    /// race are not failures).
    pub(crate) failed_attempts: u64,
    /// The phase's input, in bytes (the map phase; 0 for the others).
    pub(crate) bytes_total: u64,
    /// Input bytes of the tasks done (while the phase runs, plus what
    /// this process's running attempts were fed so far).
    pub(crate) bytes_done: u64,
}

/// A host (or `local`, or `slurm` for job arrays) that runs tasks.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct HostStatus {
    /// Its name.
    pub(crate) name: String,
    /// Its slots, and how many run an attempt.
    pub(crate) slots: u64,
    /// See `slots`.
    pub(crate) busy: u64,
    /// Attempts started there, and how many failed.
    pub(crate) attempts: u64,
    /// See `attempts`.
    pub(crate) failed_attempts: u64,
    /// When an attempt last started there, or ended there with word from
    /// the host (not a lost connection): seconds since the epoch; None
    /// before any did.
    pub(crate) last_heard: Option<f64>,
    /// Whether it takes work (false: bad or dead, after failures).
    pub(crate) good: bool,
}

/// An attempt.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct AttemptStatus {
    /// The task (`map-00003`, `reduce-00001`).
    pub(crate) task: String,
    /// Its attempt number, from 1.
    pub(crate) attempt: u32,
    /// Where it ran: host and slot (the executor's slot number).
    pub(crate) host: String,
    /// See `host`.
    pub(crate) slot: u64,
    /// Start, in seconds since the epoch.
    pub(crate) start: f64,
    /// How long it ran (so far, for a running attempt).
    pub(crate) seconds: f64,
    /// `running`, `ok`, `failed`, `host_failed`, `timed_out`, `cancelled`
    /// (the loser of a backup race) or `interrupted`.
    pub(crate) status: String,
    /// Whether it was a backup of a straggler.
    pub(crate) backup: bool,
    /// Input bytes and records (an `ok` attempt).
    pub(crate) bytes_in: u64,
    /// See `bytes_in`.
    pub(crate) records_in: u64,
}

/// A failed attempt, with what its task printed last on stderr.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Failure {
    /// The task.
    pub(crate) task: String,
    /// Its attempt number.
    pub(crate) attempt: u32,
    /// Where it ran.
    pub(crate) host: String,
    /// When it ended, in seconds since the epoch.
    pub(crate) end: f64,
    /// `failed`, `host_failed` or `timed_out`.
    pub(crate) status: String,
    /// Why it failed.
    pub(crate) error: String,
    /// The last lines of its stderr.
    pub(crate) stderr_tail: String,
}

/// A map task skipped after its retries (`--max-failed-tasks`), as the
/// status, the report, the job log and `OUTPUT/_SKIPPED` give it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SkippedTask {
    /// The task.
    pub(crate) task: String,
    /// Its input: each file's path, first byte and length.
    pub(crate) inputs: Vec<SkippedInput>,
    /// Its attempts.
    pub(crate) attempts: u32,
    /// Where its last attempt ran.
    pub(crate) host: String,
    /// Why its last attempt failed.
    pub(crate) error: String,
    /// The last lines of that attempt's stderr.
    pub(crate) stderr_tail: String,
}

impl SkippedTask {
    /// Its input as people read it: `FILE bytes A..B, ...`.
    pub(crate) fn inputs_text(&self) -> String {
        let inputs: Vec<String> = self
            .inputs
            .iter()
            .map(|i| format!("{} bytes {}..{}", i.file, i.start, i.start + i.length))
            .collect();
        inputs.join(", ")
    }
}

/// A piece of a skipped task's input.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct SkippedInput {
    /// The file.
    pub(crate) file: String,
    /// Its first byte.
    pub(crate) start: u64,
    /// Its length in bytes.
    pub(crate) length: u64,
}

/// The status document (docs/status.md).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobStatus {
    /// [`SCHEMA`].
    pub(crate) schema: u32,
    /// The job's id.
    pub(crate) job: String,
    /// Its work directory.
    pub(crate) workdir: String,
    /// Where it is.
    pub(crate) state: Option<State>,
    /// The phase running (the last one run once the job ended).
    pub(crate) phase: Option<String>,
    /// Why a failed job failed.
    pub(crate) error: Option<String>,
    /// The gmr that runs it.
    pub(crate) coordinator: Coordinator,
    /// When it started, was last written, and ended (seconds since the
    /// epoch).
    pub(crate) started: f64,
    /// See `started`.
    pub(crate) updated: f64,
    /// See `started`.
    pub(crate) ended: Option<f64>,
    /// Wall time so far.
    pub(crate) seconds: f64,
    /// The phases so far.
    pub(crate) phases: Vec<PhaseStatus>,
    /// The hosts and their slots.
    pub(crate) hosts: Vec<HostStatus>,
    /// Map input bytes per second so far in a running map phase (0
    /// otherwise), and the time left in the running phase at its rate so
    /// far: by bytes in the map phase, by tasks in the others (None before
    /// a task is done, and once the job ended).
    pub(crate) throughput: f64,
    /// See `throughput`.
    pub(crate) eta_seconds: Option<f64>,
    /// User counters of the tasks done, summed (`group,name`).
    pub(crate) counters: Counters,
    /// The attempts running now, longest-running first.
    pub(crate) running: Vec<AttemptStatus>,
    /// The last failed attempts (at most [`FAILURES_KEPT`]), oldest first.
    pub(crate) failures: Vec<Failure>,
    /// Failed attempts in all (`failures` keeps the last ones).
    pub(crate) failed_attempts: u64,
    /// Map tasks that failed after their retries and were skipped
    /// (`--max-failed-tasks`): their input is not in the output.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(crate) skipped: Vec<SkippedTask>,
    /// The map and reduce phases' totals, once each ended (report.json of
    /// earlier versions had these, with `seconds` and `counters`).
    pub(crate) map: Option<PhaseTotals>,
    /// See `map`.
    pub(crate) reduce: Option<PhaseTotals>,
    /// Bytes out of each reduce task (each partition), once the reduce
    /// phase ended: the skew.
    pub(crate) partitions: Option<Vec<u64>>,
    /// Every attempt that ended (report.json and `gmr report`; None in
    /// status.json).
    pub(crate) attempts: Option<Vec<AttemptStatus>>,
}

/// How many failed attempts the document keeps.
pub(crate) const FAILURES_KEPT: usize = 20;

/// Now, in seconds since the epoch.
pub(crate) fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// This host's name.
pub(crate) fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most `len` bytes into `buf`.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    if rc != 0 {
        return "localhost".into();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

impl JobStatus {
    /// Reads the status of the job in `wd`: `status.json`, which its gmr
    /// keeps up to date; for a job whose gmr is gone while running, the
    /// state says interrupted.
    pub(crate) fn load(wd: &WorkDir) -> Result<JobStatus> {
        let path = wd.status_path();
        let root = wd.root();
        if !root.is_dir() {
            let what = match root.exists() {
                true => "is not a directory",
                false => "does not exist",
            };
            return Err(Error::usage(format!(
                "{} {what}: give the work directory of a job (its --workdir)",
                root.display()
            )));
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let what = if wd.spec_path().exists() {
                    "has no status.json yet (a job still being planned or sampled, a stage that has not run, or a job of an older gmr)"
                } else {
                    "holds no job"
                };
                return Err(Error::usage(format!(
                    "{} {what}: give the work directory of a job (its --workdir)",
                    wd.root().display()
                )));
            }
            Err(e) => return Err(Error::io("cannot read", &path, e)),
        };
        let mut status: JobStatus = serde_json::from_slice(&bytes).map_err(|e| {
            Error::job(format!(
                "{} is not a gmr status document ({e}); is a job of another gmr version running there?",
                path.display()
            ))
        })?;
        if status.schema > SCHEMA {
            return Err(Error::job(format!(
                "{} has status schema {}, newer than this gmr's {SCHEMA}: use the gmr that runs the job",
                path.display(),
                status.schema
            )));
        }
        if status.state == Some(State::Running) && !status.coordinator_alive() {
            status.state = Some(State::Interrupted);
            status.error = Some(format!(
                "gmr (pid {} on {}) stopped without finishing the job; continue it with --resume",
                status.coordinator.pid, status.coordinator.host
            ));
        }
        Ok(status)
    }

    /// Whether the job's gmr lives: on this host, its pid names a process
    /// that started before the job (not a later one that reuses the pid);
    /// from another host, an update within [`STALE_AFTER`] (its gmr
    /// rewrites the document every second while it lives).
    fn coordinator_alive(&self) -> bool {
        if self.coordinator.host != host_name() {
            return now() - self.updated < STALE_AFTER;
        }
        let pid = self.coordinator.pid as libc::pid_t;
        // SAFETY: kill with signal 0 only checks that the pid exists.
        let exists = pid > 0
            && (unsafe { libc::kill(pid, 0) } == 0
                || std::io::Error::last_os_error().raw_os_error() == Some(libc::EPERM));
        let took_up = if self.coordinator.started > 0.0 {
            self.coordinator.started
        } else {
            self.started
        };
        // A second's slack: /proc's start time, from boot time and clock
        // ticks, is up to about a second off the wall clock.
        exists && process_start(pid).is_none_or(|t| t <= took_up + 1.0)
    }

    /// The phase running, or the last one.
    pub(crate) fn current(&self) -> Option<&PhaseStatus> {
        self.phases.last()
    }

    /// One plain line: phase, tasks done of all, bytes, failed attempts,
    /// ETA. For logs: no escape codes, no carriage returns.
    pub(crate) fn line(&self) -> String {
        match self.current() {
            Some(p) => format!("gmr: {} {}", p.name, self.progress()),
            None => "gmr: starting".into(),
        }
    }

    /// The running phase's progress, as the status line and the progress
    /// bar show it: `12/40 tasks (4 running), 31% of 1.2 GiB at 45.0 MiB/s,
    /// 2 failed attempts, ETA 1m05s, 8.3s elapsed`.
    pub(crate) fn progress(&self) -> String {
        let mut line = String::new();
        if let Some(p) = self.current() {
            let _ = write!(line, "{}/{} tasks", p.done, p.tasks);
            if p.running > 0 {
                let _ = write!(line, " ({} running)", p.running);
            }
            if p.bytes_total > 0 {
                let _ = write!(
                    line,
                    ", {:.0}% of {}",
                    100.0 * p.bytes_done as f64 / p.bytes_total as f64,
                    human_bytes(p.bytes_total)
                );
                if self.throughput > 0.0 {
                    let _ = write!(line, " at {}/s", human_bytes(self.throughput as u64));
                }
            }
            line.push_str(", ");
        }
        if self.failed_attempts > 0 {
            let _ = write!(line, "{}, ", count(self.failed_attempts, "failed attempt"));
        }
        if let Some(eta) = self.eta_seconds {
            let _ = write!(line, "ETA {}, ", human_duration(eta));
        }
        let _ = write!(line, "{} elapsed", human_duration(self.seconds));
        line
    }

    /// What `gmr status` prints.
    pub(crate) fn text(&self) -> String {
        let mut t = String::new();
        let state = self.state.map_or("unknown", State::name);
        let phase = match (&self.phase, self.state) {
            (Some(p), Some(State::Running)) => format!(", {p} phase"),
            (Some(p), Some(State::Failed | State::Interrupted)) => format!(", in the {p} phase"),
            _ => String::new(),
        };
        // A new job has no identity before its plan is made.
        let job = match self.job.is_empty() {
            true => "(being planned)",
            false => short(&self.job),
        };
        let _ = writeln!(t, "job {job} in {}: {state}{phase}", self.workdir);
        let when = match self.ended {
            Some(end) => format!(
                "ran {}, ended {} ago",
                human_duration(self.seconds),
                human_duration((now() - end).max(0.0))
            ),
            None => format!(
                "started {} ago, updated {} ago",
                human_duration(now() - self.started),
                human_duration((now() - self.updated).max(0.0))
            ),
        };
        let _ = writeln!(
            t,
            "  gmr pid {} on {}, {when}",
            self.coordinator.pid, self.coordinator.host
        );
        if let Some(e) = &self.error {
            for (i, l) in e.lines().enumerate() {
                let _ = writeln!(t, "  {}{l}", if i == 0 { "error: " } else { "  " });
            }
        }
        let _ = writeln!(t, "phases:");
        for p in &self.phases {
            let secs = p.ended.unwrap_or(self.updated) - p.started;
            let _ = write!(
                t,
                "  {:<8} {}/{} done, {} running, {} pending; {}, {} failed",
                p.name,
                p.done,
                p.tasks,
                p.running,
                p.pending,
                count(p.attempts, "attempt"),
                p.failed_attempts
            );
            if p.reused > 0 {
                let _ = write!(t, "; {} reused", p.reused);
            }
            if p.bytes_total > 0 {
                let _ = write!(
                    t,
                    "; {} of {} ({:.0}%)",
                    human_bytes(p.bytes_done),
                    human_bytes(p.bytes_total),
                    100.0 * p.bytes_done as f64 / p.bytes_total as f64
                );
            }
            let _ = writeln!(
                t,
                "; {}{}",
                human_duration(secs),
                if p.ended.is_none() { " so far" } else { "" }
            );
        }
        if self.state == Some(State::Running) {
            let mut rate = String::new();
            if self.throughput > 0.0 {
                let _ = write!(rate, "{}/s", human_bytes(self.throughput as u64));
            }
            if let Some(eta) = self.eta_seconds {
                let _ = write!(rate, ", ETA {}", human_duration(eta));
            }
            if !rate.is_empty() {
                let _ = writeln!(t, "  throughput {rate}");
            }
        }
        if !self.hosts.is_empty() {
            let _ = writeln!(t, "hosts (slots busy, attempts, failed, last heard from):");
            let width = self.hosts.iter().map(|h| h.name.len()).max().unwrap_or(0);
            for h in &self.hosts {
                let heard = h.last_heard.map_or("never".to_string(), |at| {
                    format!("{} ago", human_duration((now() - at).max(0.0)))
                });
                let _ = writeln!(
                    t,
                    "  {:<width$}  {}/{} busy, {}, {} failed, {heard}{}",
                    h.name,
                    h.busy,
                    h.slots,
                    count(h.attempts, "attempt"),
                    h.failed_attempts,
                    if h.good {
                        ""
                    } else {
                        ", BAD (no work until its back-off ends)"
                    }
                );
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(
                t,
                "skipped after their retries (--max-failed-tasks; not in the output):"
            );
            for s in &self.skipped {
                let _ = writeln!(t, "  {} ({}): {}", s.task, s.inputs_text(), s.error);
            }
        }
        if !self.running.is_empty() {
            let _ = writeln!(t, "running (longest first):");
            for a in self.running.iter().take(10) {
                let _ = writeln!(
                    t,
                    "  {} attempt {} on {}, {}{}",
                    a.task,
                    a.attempt,
                    a.host,
                    human_duration(a.seconds),
                    if a.backup { " (backup)" } else { "" }
                );
            }
            if self.running.len() > 10 {
                let _ = writeln!(t, "  ... and {} more", self.running.len() - 10);
            }
        }
        if !self.counters.is_empty() {
            let _ = writeln!(t, "counters:");
            for (name, n) in &self.counters {
                let _ = writeln!(t, "  {name} = {n}");
            }
        }
        if !self.failures.is_empty() {
            let _ = writeln!(
                t,
                "failed attempts ({} in all; the last {}):",
                self.failed_attempts,
                self.failures.len()
            );
            for f in &self.failures {
                let _ = writeln!(
                    t,
                    "  {} attempt {} on {} ({}): {}",
                    f.task, f.attempt, f.host, f.status, f.error
                );
                for l in f.stderr_tail.lines() {
                    let _ = writeln!(t, "    | {l}");
                }
            }
        }
        t
    }
}

/// When process `pid` started, in seconds since the epoch (Linux's
/// `/proc`); None where that cannot be read.
fn process_start(pid: libc::pid_t) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Field 22, counting from the pid; the command (field 2) may hold
    // spaces and parentheses, so count from the last ')'.
    let ticks: f64 = stat
        .rsplit_once(')')?
        .1
        .split_whitespace()
        .nth(19)?
        .parse()
        .ok()?;
    let boot: f64 = std::fs::read_to_string("/proc/stat")
        .ok()?
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (hz > 0).then(|| boot + ticks / hz as f64)
}

/// The first 8 characters of a job id.
pub(crate) fn short(id: &str) -> &str {
    id.char_indices().nth(8).map_or(id, |(at, _)| &id[..at])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_plain() {
        let s = JobStatus {
            phases: vec![PhaseStatus {
                name: "map".into(),
                tasks: 40,
                done: 12,
                running: 4,
                bytes_total: 1_200_000_000,
                bytes_done: 372_000_000,
                ..PhaseStatus::default()
            }],
            throughput: 45e6,
            eta_seconds: Some(65.0),
            failed_attempts: 2,
            seconds: 8.3,
            ..JobStatus::default()
        };
        assert_eq!(
            s.line(),
            "gmr: map 12/40 tasks (4 running), 31% of 1.1 GiB at 42.9 MiB/s, 2 failed attempts, ETA 1m05s, 8.3s elapsed"
        );
    }

    #[test]
    fn the_document_reads_back() {
        let s = JobStatus {
            schema: SCHEMA,
            state: Some(State::Failed),
            failures: vec![Failure {
                task: "map-00001".into(),
                stderr_tail: "boom\n".into(),
                ..Failure::default()
            }],
            ..JobStatus::default()
        };
        let json = serde_json::to_string(&s).unwrap();
        assert!(json.contains("\"state\":\"failed\""), "{json}");
        assert_eq!(serde_json::from_str::<JobStatus>(&json).unwrap(), s);
    }
}
