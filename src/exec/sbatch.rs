//! The Slurm array executor: outside an allocation (a login node),
//! `gmr run --slurm` submits its task attempts as job arrays (`sbatch
//! --parsable --array=0-N%P`) and follows them (docs/dev/architecture.md §5).
//!
//! The coordinator asks for attempts one slot at a time; attempts asked for
//! within [`BATCH_WINDOW`] of each other go into one array, split into
//! several when they are more than the cluster's `MaxArraySize`. Element
//! `i` of batch `B` reads its task and attempt from line `i + 1` of
//! `slurm/B.tasks`, runs `gmr task`, and leaves its stdout, stderr and exit
//! status in `slurm/B.I.{out,err,exit}` (the exit file renamed into place
//! last). An attempt ends when its exit file appears; one whose element
//! left `squeue` without an exit file (cancelled, timed out, its node
//! failed) is a failure of "the cluster", not of the task, and the
//! coordinator resubmits it. Ctrl-C `scancel`s every array gmr submitted.

use super::Executor;
use super::remote::{Exit, Output, interpret, read_tail, shell_quote, task_command};
use super::slurm::config_value;
use crate::error::{Error, Result, TaskError};
use crate::health::Health;
use crate::interrupt;
use crate::report::TaskReport;
use crate::spec::Job;
use crate::task::TaskId;
use crate::workdir::WorkDir;
use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

/// How long the first attempt asked for waits for others to share its
/// array: a phase's slots all ask at once.
const BATCH_WINDOW: Duration = Duration::from_millis(200);
/// How often `squeue` is asked about the arrays still running.
const POLL: Duration = Duration::from_millis(500);
/// How long an element that ended on its own (COMPLETED, FAILED: its
/// script ran to its end and wrote the exit file), or that `squeue` no
/// longer lists, may stay without an exit file: on NFS a file another node
/// made can take this long to be seen.
const GRACE: Duration = Duration::from_secs(60);
/// The same for an element stopped before its script ended (cancelled,
/// timed out, its node lost): no exit file is coming.
const GRACE_STOPPED: Duration = Duration::from_secs(5);
/// The states of an element that ended; any other is alive.
const ENDED: &[&str] = &["COMPLETED", "FAILED"];
const STOPPED: &[&str] = &[
    "CANCELLED",
    "TIMEOUT",
    "NODE_FAIL",
    "PREEMPTED",
    "OUT_OF_MEMORY",
    "BOOT_FAIL",
    "DEADLINE",
];
/// The name every host of this executor has in messages, the job log and
/// host health: Slurm places the elements, not gmr.
const CLUSTER: &str = "slurm";
/// Slots when `-j` gives none and `sinfo` tells no CPU count.
const DEFAULT_SLOTS: usize = 64;

/// Attempts submitted at once when `-j` gives none: the CPUs of the
/// cluster's nodes (`sinfo`'s total), so that R, which defaults to the
/// slots, fits the cluster.
pub fn default_slots() -> usize {
    let cpus = Command::new("sinfo")
        .args(["-h", "-o", "%C"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .and_then(|out| {
            // `allocated/idle/other/total` per line (partition).
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .filter_map(|l| l.trim().rsplit('/').next()?.parse::<usize>().ok())
                .max()
        });
    cpus.filter(|&n| n > 0).unwrap_or(DEFAULT_SLOTS)
}

/// The cluster's `MaxArraySize` (`scontrol show config`): an array's
/// indices must be below it.
pub fn max_array_size() -> Result<usize> {
    let out = Command::new("scontrol")
        .args(["show", "config"])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| Error::Usage {
            message: format!(
                "--slurm outside an allocation submits job arrays, and scontrol does not run ({e}): run gmr on a Slurm login node, or inside salloc or an sbatch script"
            ),
            source: Some(Box::new(e)),
        })?;
    if !out.status.success() {
        return Err(Error::usage(format!(
            "--slurm outside an allocation submits job arrays, and scontrol show config failed ({}): run gmr on a Slurm login node, or inside salloc or an sbatch script",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(config_value(&String::from_utf8_lossy(&out.stdout), "MaxArraySize").unwrap_or(1001))
}

/// Where an attempt runs: element `index` of array job `job`, which runs
/// line `line` (0-based) of batch `batch`.
#[derive(Debug, Clone)]
struct Element {
    batch: usize,
    line: usize,
    job: String,
    index: usize,
}

impl Element {
    /// The element's id as Slurm shows it: `JOB_INDEX`.
    fn id(&self) -> String {
        format!("{}_{}", self.job, self.index)
    }
}

/// An attempt waiting for its element.
struct Request {
    slot: usize,
    task: TaskId,
    attempt: u32,
}

#[derive(Default)]
struct Shared {
    /// Attempts asked for and not yet submitted.
    pending: Vec<Request>,
    /// Where each slot's attempt was submitted, or why it was not.
    placed: HashMap<usize, std::result::Result<Element, String>>,
    /// Whether an attempt is gathering the others into a batch.
    gathering: bool,
    /// The last `squeue` view: element id -> state.
    states: HashMap<String, String>,
    /// When `states` was last read, whether `squeue` answered or not.
    polled: Option<Instant>,
}

/// Runs attempts as elements of job arrays.
pub struct ArrayExecutor {
    dir: PathBuf,
    gmr: PathBuf,
    /// The element's command line, without attempt and task.
    command: String,
    sbatch_args: Vec<String>,
    max_array: usize,
    slots: usize,
    name: String,
    /// What this run's batch files start with: a resumed job's run, or an
    /// element of a killed one still running, never shares their names.
    run: String,
    shared: Mutex<Shared>,
    wake: Condvar,
    batches: AtomicUsize,
    /// Every array job submitted, for Ctrl-C.
    submitted: Mutex<Vec<String>>,
    /// Each slot's running element.
    running: Vec<Mutex<Option<Element>>>,
    cancelled: Vec<AtomicBool>,
    health: Health,
}

impl ArrayExecutor {
    /// An executor of `slots` attempts at once for `job` in `wd` (spec
    /// digest `digest`), its elements running `gmr`, submitted with
    /// `sbatch_args`, in arrays of at most `max_array` elements.
    pub fn new(
        wd: &WorkDir,
        job: &Job,
        digest: &str,
        gmr: PathBuf,
        sbatch_args: Vec<String>,
        (slots, max_array): (usize, usize),
    ) -> ArrayExecutor {
        ArrayExecutor {
            dir: wd.slurm_dir(),
            command: task_command(&gmr, &job.spec.cwd, wd.root(), digest, false),
            gmr,
            sbatch_args,
            max_array: max_array.max(1),
            slots: slots.max(1),
            name: format!("gmr-{}", &job.spec.job[..job.spec.job.len().min(8)]),
            run: crate::spec::new_job_id()[..8].to_string(),
            shared: Mutex::default(),
            wake: Condvar::new(),
            batches: AtomicUsize::new(0),
            submitted: Mutex::default(),
            running: (0..slots.max(1)).map(|_| Mutex::new(None)).collect(),
            cancelled: (0..slots.max(1)).map(|_| AtomicBool::new(false)).collect(),
            health: Health::new([CLUSTER]),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Shared> {
        self.shared.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Submits `reqs` as arrays of batch `batch`; returns each one's
    /// element, or why it could not be submitted.
    fn submit(&self, reqs: &[Request]) -> Vec<(usize, std::result::Result<Element, String>)> {
        let batch = self.batches.fetch_add(1, Ordering::Relaxed);
        let mut placed = Vec::new();
        let tasks = self.dir.join(format!("{}-{batch}.tasks", self.run));
        let script = self.dir.join(format!("{}-{batch}.sh", self.run));
        let lines: String = reqs
            .iter()
            .map(|r| format!("{} {}\n", r.task, r.attempt))
            .collect();
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&tasks, lines))
            .and_then(|()| std::fs::write(&script, self.element_script(batch, &tasks)));
        if let Err(e) = written {
            let why = format!(
                "cannot write the array's files in {}: {e}",
                self.dir.display()
            );
            return reqs.iter().map(|r| (r.slot, Err(why.clone()))).collect();
        }
        // Indices run from 0 in every array: an array covers lines
        // `first..first + n` of the batch, passed as GMR_ARRAY_OFFSET.
        for (chunk_no, chunk) in reqs.chunks(self.max_array).enumerate() {
            let first = chunk_no * self.max_array;
            let result = self.sbatch(&script, chunk.len(), first);
            for (i, r) in chunk.iter().enumerate() {
                placed.push((
                    r.slot,
                    result.clone().map(|job| Element {
                        batch,
                        line: first + i,
                        job,
                        index: i,
                    }),
                ));
            }
        }
        placed
    }

    /// The shell script each element runs: its line of the batch, the task
    /// with its output in files, the exit status renamed into place last.
    fn element_script(&self, batch: usize, tasks: &std::path::Path) -> String {
        let dir = shell_quote(&self.dir.to_string_lossy());
        format!(
            "#!/bin/sh\n\
             i=$(( ${{SLURM_ARRAY_TASK_ID:?}} + ${{1:-0}} ))\n\
             set -- $(sed -n \"$((i + 1))p\" {tasks})\n\
             out={dir}/{run}-{batch}.$i\n\
             ( {command} --attempt \"$2\" \"$1\" ) >\"$out.out\" 2>\"$out.err\"\n\
             rc=$?\n\
             echo \"$rc $(hostname)\" >\"$out.exit.tmp\" && mv \"$out.exit.tmp\" \"$out.exit\"\n\
             exit $rc\n",
            tasks = shell_quote(&tasks.to_string_lossy()),
            command = self.command,
            run = self.run,
        )
    }

    /// `sbatch --parsable --array=0-(n-1)%P`; returns the array's job id.
    fn sbatch(
        &self,
        script: &std::path::Path,
        n: usize,
        offset: usize,
    ) -> std::result::Result<String, String> {
        let out = Command::new("sbatch")
            .args([
                "--parsable",
                &format!("--array=0-{}%{}", n - 1, self.slots),
                "--job-name",
                &self.name,
                "--output=/dev/null",
                "--error=/dev/null",
            ])
            .args(&self.sbatch_args)
            // The offset as the script's argument: a `--export` in
            // --slurm-args cannot hide it.
            .arg(script)
            .arg(offset.to_string())
            .stdin(Stdio::null())
            .output()
            .map_err(|e| format!("cannot run sbatch: {e}"))?;
        let said = String::from_utf8_lossy(&out.stdout);
        let job = said
            .trim()
            .split(';')
            .next()
            .unwrap_or_default()
            .to_string();
        if !out.status.success() || job.is_empty() {
            return Err(format!(
                "sbatch failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        self.submitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job.clone());
        Ok(job)
    }

    /// Waits until this slot's attempt has an element: gathers the others
    /// asked for meanwhile into the same array when it asked first.
    fn place(&self, req: Request) -> std::result::Result<Element, TaskError> {
        let slot = req.slot;
        let mut shared = self.lock();
        shared.pending.push(req);
        if !shared.gathering {
            shared.gathering = true;
            drop(shared);
            std::thread::sleep(BATCH_WINDOW);
            let reqs = std::mem::take(&mut self.lock().pending);
            let placed = self.submit(&reqs);
            let mut shared = self.lock();
            shared.gathering = false;
            shared.placed.extend(placed);
            self.wake.notify_all();
            return take_placed(&mut shared, slot);
        }
        loop {
            if shared.placed.contains_key(&slot) {
                return take_placed(&mut shared, slot);
            }
            if !shared.gathering && shared.pending.iter().any(|r| r.slot == slot) {
                // The gatherer took its batch before this one came: gather
                // the next.
                drop(shared);
                let req = {
                    let mut s = self.lock();
                    let i = s.pending.iter().position(|r| r.slot == slot);
                    i.map(|i| s.pending.remove(i))
                };
                match req {
                    Some(req) => return self.place(req),
                    None => shared = self.lock(),
                }
                continue;
            }
            shared = self
                .wake
                .wait_timeout(shared, POLL)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    /// The state `squeue` gives `element`, asked at most every [`POLL`]
    /// for all of this executor's arrays at once (outside the lock, which
    /// every slot needs); None when it is not listed. When `squeue` does
    /// not answer, the last answer stands.
    fn state(&self, element: &Element) -> Option<String> {
        let due = {
            let mut shared = self.lock();
            let due = shared.polled.is_none_or(|t| t.elapsed() >= POLL);
            if due {
                shared.polled = Some(Instant::now());
            }
            due
        };
        if due {
            let jobs = self
                .submitted
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .join(",");
            if let Some(states) = squeue(&jobs) {
                self.lock().states = states;
            }
        }
        self.lock().states.get(&element.id()).cloned()
    }

    /// Cancels `element` (it is given up on, or its attempt cancelled).
    fn scancel(&self, element: &Element) {
        let _ = Command::new("scancel")
            .arg(element.id())
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// Waits for the element's exit file; what it left.
    fn wait(&self, slot: usize, element: &Element) -> std::result::Result<Output, TaskError> {
        let base = self
            .dir
            .join(format!("{}-{}.{}", self.run, element.batch, element.line));
        let exit_path = PathBuf::from(format!("{}.exit", base.display()));
        let mut missing_since: Option<Instant> = None;
        let started = Instant::now();
        loop {
            if let Ok(text) = std::fs::read_to_string(&exit_path) {
                let code = text.split_whitespace().next().and_then(|c| c.parse().ok());
                let read = |ext: &str| {
                    std::fs::File::open(format!("{}.{ext}", base.display()))
                        .map_or_else(|_| Vec::new(), |mut f| read_tail(&mut f))
                };
                return Ok(Output {
                    stdout: read("out"),
                    stderr: read("err"),
                    exit: Exit::Code(code.unwrap_or(-1)),
                });
            }
            if interrupt::is_set() {
                return Err(TaskError::interrupted());
            }
            if self.cancelled[slot].load(Ordering::SeqCst) {
                self.scancel(element);
                return Err(TaskError::cancelled());
            }
            let state = self.state(element);
            // How long to wait for the exit file once the element ended;
            // None while it lives.
            let grace = match state.as_deref() {
                None if started.elapsed() > GRACE_STOPPED => Some(GRACE),
                None => None,
                Some(s) if ENDED.contains(&s) => Some(GRACE),
                Some(s) if STOPPED.contains(&s) => Some(GRACE_STOPPED),
                Some(_) => None,
            };
            if let Some(grace) = grace {
                let since = *missing_since.get_or_insert_with(Instant::now);
                if since.elapsed() > grace {
                    self.scancel(element);
                    return Err(TaskError::host(format!(
                        "array element {} ended without a result ({}); resubmitted",
                        element.id(),
                        state.unwrap_or_else(|| "no longer in squeue".into())
                    )));
                }
            } else {
                missing_since = None;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn take_placed(shared: &mut Shared, slot: usize) -> std::result::Result<Element, TaskError> {
    match shared.placed.remove(&slot) {
        Some(Ok(e)) => Ok(e),
        Some(Err(why)) => Err(TaskError::host(why)),
        None => Err(TaskError::host("the attempt was not submitted")),
    }
}

/// `squeue`'s states of the elements of `jobs` (comma-separated ids); None
/// when it does not answer (slurmctld busy or restarting), which says
/// nothing of the elements.
fn squeue(jobs: &str) -> Option<HashMap<String, String>> {
    if jobs.is_empty() {
        return Some(HashMap::new());
    }
    let out = Command::new("squeue")
        .args(["-h", "-r", "-t", "all", "-j", jobs, "-o", "%i %T"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    let states = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, state)| (id.trim().to_string(), state.trim().to_string()))
        .collect();
    Some(states)
}

impl Executor for ArrayExecutor {
    fn slots(&self) -> usize {
        self.slots
    }

    fn host_of(&self, _slot: usize) -> &str {
        CLUSTER
    }

    fn run(
        &self,
        slot: usize,
        task: TaskId,
        attempt: u32,
    ) -> std::result::Result<TaskReport, TaskError> {
        self.cancelled[slot].store(false, Ordering::SeqCst);
        let element = self.place(Request {
            slot,
            task,
            attempt,
        })?;
        *self.running[slot].lock().unwrap_or_else(|e| e.into_inner()) = Some(element.clone());
        let out = self.wait(slot, &element);
        *self.running[slot].lock().unwrap_or_else(|e| e.into_inner()) = None;
        let id = element.id();
        interpret(&self.gmr, out?).map_err(|mut e| {
            e.message = format!("{} (Slurm job {id})", e.message);
            e
        })
    }

    fn cancel(&self, slot: usize) {
        self.cancelled[slot].store(true, Ordering::SeqCst);
        let element = self.running[slot]
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if let Some(element) = element {
            self.scancel(&element);
        }
    }

    fn health(&self) -> Option<&Health> {
        Some(&self.health)
    }

    fn cancel_when_failing(&self) -> bool {
        true
    }
}

impl Drop for ArrayExecutor {
    /// After Ctrl-C, every array submitted is cancelled.
    fn drop(&mut self) {
        let jobs = self
            .submitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if interrupt::is_set() && !jobs.is_empty() {
            let _ = Command::new("scancel")
                .args(&jobs)
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_array_size_is_read_from_the_config() {
        let config =
            "Configuration data as of ...\nMaxArraySize            = 1001\nMaxJobCount = 10000\n";
        assert_eq!(config_value(config, "MaxArraySize"), Some(1001));
        assert_eq!(config_value(config, "MaxJobCount"), Some(10000));
        assert_eq!(config_value("nothing", "MaxArraySize"), None);
    }
}
