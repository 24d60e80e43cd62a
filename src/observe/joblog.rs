//! `--joblog FILE`: one JSON line per task attempt — task, attempt, host,
//! start time, duration, status, records and bytes, error — like GNU
//! parallel's `--joblog`, but in JSON so scripts need no column parsing.

use crate::error::{Error, Result, TaskError};
use crate::observe::observer::{Attempt, Observer};
use crate::task::report::TaskReport;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// One line of the job log.
#[derive(Debug, Serialize)]
pub(crate) struct Line<'a> {
    /// The task id.
    pub(crate) task: String,
    /// The attempt number.
    pub(crate) attempt: u32,
    /// Where it ran.
    pub(crate) host: &'a str,
    /// Start, in seconds since the epoch.
    pub(crate) start: f64,
    /// Duration in seconds.
    pub(crate) duration: f64,
    /// `ok`, `failed`, `host_failed` or `interrupted`.
    pub(crate) status: &'static str,
    /// Records and bytes in and out (zero for a failed attempt).
    pub(crate) records_in: u64,
    /// Bytes read.
    pub(crate) bytes_in: u64,
    /// Records written.
    pub(crate) records_out: u64,
    /// Bytes written.
    pub(crate) bytes_out: u64,
    /// Why it failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) error: Option<&'a str>,
    /// The Slurm job step or array element the attempt ran as.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) slurm_job: Option<&'a str>,
    /// In a job of several steps (`--then`), the step, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) step: Option<usize>,
}

/// Appends attempt lines to a file.
pub(crate) struct JobLog {
    file: Mutex<File>,
    path: std::path::PathBuf,
    /// A write failed already (and was said, once).
    failed: std::sync::atomic::AtomicBool,
    /// The step of a job of several whose attempts these are.
    step: Option<usize>,
}

impl JobLog {
    /// Opens (appends to) the job log at `path`, for the attempts of
    /// `step` of a job of several.
    pub(crate) fn open(path: &Path, step: Option<usize>) -> Result<JobLog> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| Error::input("cannot open job log", path, e))?;
        Ok(JobLog {
            file: Mutex::new(file),
            path: path.to_path_buf(),
            failed: Default::default(),
            step,
        })
    }
}

impl JobLog {
    /// A line for a map task skipped after its retries: its task, input,
    /// attempts and last error, status `skipped`.
    pub(crate) fn skipped(&self, s: &crate::observe::status::SkippedTask) {
        let mut line = serde_json::json!({
            "task": s.task,
            "status": "skipped",
            "attempts": s.attempts,
            "host": s.host,
            "inputs": s.inputs,
            "error": s.error,
        });
        if let Some(step) = self.step {
            line["step"] = step.into();
        }
        self.append(&line);
    }

    /// Appends one line, in one write: concurrent attempts never
    /// interleave. The job goes on without its log, but not silently.
    fn append(&self, line: &impl serde::Serialize) {
        let mut text = serde_json::to_vec(line).expect("serializable");
        text.push(b'\n');
        let written = self
            .file
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .write_all(&text);
        if let Err(e) = written
            && !self.failed.swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            eprintln!(
                "gmr: warning: {}; the job goes on without it",
                crate::error::io_message("cannot write job log", &self.path, &e)
            );
        }
    }
}

impl Observer for JobLog {
    fn finished(&self, a: &Attempt, result: &Result<TaskReport, TaskError>, elapsed: Duration) {
        let start = SystemTime::now()
            .checked_sub(elapsed)
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0.0, |d| d.as_secs_f64());
        let empty = TaskReport::default();
        let (report, status, error) = match result {
            Ok(r) => (r, "ok", None),
            Err(e) => (&empty, e.kind.status(), Some(e.message.as_str())),
        };
        let line = Line {
            task: a.task.to_string(),
            attempt: a.attempt,
            host: a.host,
            start,
            duration: elapsed.as_secs_f64(),
            status,
            records_in: report.records_in,
            bytes_in: report.bytes_in,
            records_out: report.records_out,
            bytes_out: report.bytes_out,
            error,
            slurm_job: report.slurm_job.as_deref(),
            step: self.step,
        };
        self.append(&line);
    }
}
