//! The Slurm array executor: outside an allocation (a login node),
//! `gmr run --slurm` submits its task attempts as job arrays (`sbatch
//! --parsable --array=0-N%P`) and follows them (docs/contracts.md §5).
//!
//! The coordinator asks for attempts one slot at a time; attempts asked for
//! within [`BATCH_WINDOW`] of each other go into one array, split into
//! several when they are more than the cluster's `MaxArraySize`. Element
//! `i` of batch `B` reads its task and attempt from line `i + 1` of
//! `slurm/RUN-B/tasks`, runs `gmr task`, and leaves its stdout, stderr and
//! exit status in `slurm/RUN-B/I.{out,err,exit}` (the exit file renamed
//! into place last). One watcher thread follows every element: an attempt
//! ends when its exit file appears; one whose element
//! left `squeue` without an exit file (cancelled, timed out, its node
//! failed) is a failure of "the cluster", not of the task, and the
//! coordinator resubmits it. Ctrl-C `scancel`s every array gmr submitted.

use super::remote::{Exit, Output, interpret, read_tail, shell_quote, task_command};
use super::slurm::config_value;
use super::{Done, Ended, Executor};
use crate::error::{Error, Result, TaskError};
use crate::exec::health::Health;
use crate::exec::slurm::slurm_mem;
use crate::interrupt;
use crate::store::workdir::WorkDir;
use crate::task::TaskId;
use crate::task::job::Job;
use crate::task::report::TaskReport;
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long the first attempt asked for waits for others to share its
/// array: a phase's slots all ask at once.
const BATCH_WINDOW: Duration = Duration::from_millis(200);
/// How often the watcher looks for ended elements.
const TICK: Duration = Duration::from_millis(100);
/// How often `squeue` is asked about the arrays still running.
const POLL: Duration = Duration::from_millis(500);
/// How long an element that ended on its own (COMPLETED, FAILED: its
/// script ran to its end and wrote the exit file), or that `squeue` no
/// longer lists, may stay without an exit file: on NFS a file another node
/// made can take this long to be seen. `GMR_SLURM_GRACE` (seconds) sets
/// another (a slower NFS; the tests).
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
pub(crate) fn default_slots() -> usize {
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
pub(crate) fn max_array_size() -> Result<usize> {
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

/// An attempt not yet submitted.
struct Request {
    slot: usize,
    task: TaskId,
    attempt: u32,
    done: Done,
}

/// A submitted attempt, until its element ends.
struct Flight {
    element: Element,
    done: Done,
    submitted: Instant,
    /// Since when its element has ended (or left `squeue`) without an exit
    /// file.
    missing_since: Option<Instant>,
}

/// What the watcher and the coordinator share.
#[derive(Default)]
struct Queue {
    /// Attempts asked for and not yet submitted, and since when the first
    /// of them waits.
    waiting: Vec<Request>,
    since: Option<Instant>,
    /// The slots of the batch being submitted, and which of them were
    /// cancelled meanwhile.
    submitting: HashSet<usize>,
    cancelled: HashSet<usize>,
    /// Each slot's submitted attempt.
    flights: HashMap<usize, Flight>,
}

/// What the executor and its watcher thread share.
struct Arrays {
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
    queue: Mutex<Queue>,
    batches: AtomicUsize,
    /// Every array job submitted, for Ctrl-C.
    submitted: Mutex<Vec<String>>,
    stop: AtomicBool,
    /// [`GRACE`], or `GMR_SLURM_GRACE`.
    grace: Duration,
}

/// What the cluster last said of the elements out: `squeue`'s (or, when
/// it does not answer, `sacct`'s) states, and when. A view that failed says
/// nothing: an element it does not list is not gone.
struct View {
    states: HashMap<String, String>,
    /// When the states were read.
    at: Instant,
    /// The last poll answered (a controller that times out does not).
    fresh: bool,
}

/// Runs attempts as elements of job arrays. The attempts need no thread of
/// their own: one watcher thread submits the batches and follows every
/// element, however many slots there are.
pub(crate) struct ArrayExecutor {
    arrays: Arc<Arrays>,
    watcher: Option<std::thread::JoinHandle<()>>,
    health: Health,
}

impl ArrayExecutor {
    /// An executor of `slots` attempts at once for `job` in `wd` (spec
    /// digest `digest`), its elements running `gmr`, submitted with
    /// `sbatch_args`, in arrays of at most `max_array` elements.
    pub(crate) fn new(
        wd: &WorkDir,
        job: &Job,
        digest: &str,
        gmr: (PathBuf, Option<String>),
        mut sbatch_args: Vec<String>,
        (slots, max_array): (usize, usize),
    ) -> ArrayExecutor {
        // --task-memory is the element's memory too (before the user's
        // own options, which may override it).
        if let Some(mem) = slurm_mem(job.spec.task_memory) {
            sbatch_args.insert(0, mem);
        }
        let arrays = Arc::new(Arrays {
            dir: wd.slurm_dir(),
            command: task_command(&gmr.0, gmr.1.as_deref(), &job.spec.cwd, wd.root(), digest),
            gmr: gmr.0,
            sbatch_args,
            max_array: max_array.max(1),
            slots: slots.max(1),
            name: format!("gmr-{}", &job.spec.job[..job.spec.job.len().min(8)]),
            run: crate::store::spec::new_job_id()[..8].to_string(),
            queue: Mutex::default(),
            batches: AtomicUsize::new(0),
            submitted: Mutex::default(),
            stop: AtomicBool::new(false),
            grace: std::env::var("GMR_SLURM_GRACE")
                .ok()
                .and_then(|s| s.parse().ok())
                .map_or(GRACE, Duration::from_secs),
        });
        let watcher = {
            let arrays = Arc::clone(&arrays);
            std::thread::Builder::new()
                .name("slurm-arrays".into())
                .spawn(move || arrays.watch())
                .ok()
        };
        ArrayExecutor {
            arrays,
            watcher,
            health: Health::new([CLUSTER]),
        }
    }
}

impl Arrays {
    fn lock(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Where batch `batch`'s elements leave their files: a directory per
    /// batch, so that following a batch lists few names.
    fn batch_dir(&self, batch: usize) -> PathBuf {
        self.dir.join(format!("{}-{batch}", self.run))
    }

    /// Submits `reqs` as arrays of a new batch; returns each one's
    /// element, or why it could not be submitted.
    fn submit(&self, reqs: &[Request]) -> Vec<std::result::Result<Element, String>> {
        let batch = self.batches.fetch_add(1, Ordering::Relaxed);
        let dir = self.batch_dir(batch);
        let tasks = dir.join("tasks");
        let script = dir.join("element.sh");
        let lines: String = reqs
            .iter()
            .map(|r| format!("{} {}\n", r.task, r.attempt))
            .collect();
        let written = std::fs::create_dir_all(&dir)
            .and_then(|()| crate::files::write_private(&tasks, lines.as_bytes()))
            .and_then(|()| {
                crate::files::write_private(&script, self.element_script(&dir, &tasks).as_bytes())
            });
        if let Err(e) = written {
            let why = format!("cannot write the array's files in {}: {e}", dir.display());
            return reqs.iter().map(|_| Err(why.clone())).collect();
        }
        // Indices run from 0 in every array: an array covers lines
        // `first..first + n` of the batch, passed as the script's argument.
        let mut placed = Vec::with_capacity(reqs.len());
        for (chunk_no, chunk) in reqs.chunks(self.max_array).enumerate() {
            let first = chunk_no * self.max_array;
            let result = self.sbatch(&script, chunk.len(), first);
            placed.extend((0..chunk.len()).map(|i| {
                result.clone().map(|job| Element {
                    batch,
                    line: first + i,
                    job,
                    index: i,
                })
            }));
        }
        placed
    }

    /// The shell script each element runs: its line of the batch, the task
    /// with its output in files, the exit status renamed into place last.
    fn element_script(&self, dir: &std::path::Path, tasks: &std::path::Path) -> String {
        format!(
            "#!/bin/sh\n\
             i=$(( ${{SLURM_ARRAY_TASK_ID:?}} + ${{1:-0}} ))\n\
             set -- $(sed -n \"$((i + 1))p\" {tasks})\n\
             out={dir}/$i\n\
             ( {command} --attempt \"$2\" \"$1\" ) >\"$out.out\" 2>\"$out.err\"\n\
             rc=$?\n\
             echo \"$rc $(hostname)\" >\"$out.exit.tmp\" && mv \"$out.exit.tmp\" \"$out.exit\"\n\
             exit $rc\n",
            tasks = shell_quote(&tasks.to_string_lossy()),
            dir = shell_quote(&dir.to_string_lossy()),
            command = self.command,
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
            return Err(sbatch_refusal(
                &String::from_utf8_lossy(&out.stderr),
                &self.sbatch_args,
            ));
        }
        self.submitted
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(job.clone());
        Ok(job)
    }

    /// The watcher: every [`TICK`], submits the attempts that waited
    /// [`BATCH_WINDOW`], and ends those whose element left an exit file or
    /// ended without one; until the executor is dropped.
    fn watch(&self) {
        let mut view = View {
            states: HashMap::new(),
            at: Instant::now(),
            fresh: false,
        };
        let mut polled: Option<Instant> = None;
        while !self.stop.load(Ordering::SeqCst) {
            if interrupt::is_set() {
                let ends: Vec<(usize, Done)> = {
                    let mut q = self.lock();
                    let q = &mut *q;
                    let flights = q.flights.drain().map(|(slot, f)| (slot, f.done));
                    let waiting = q.waiting.drain(..).map(|r| (r.slot, r.done));
                    flights.chain(waiting).collect()
                };
                for (slot, done) in ends {
                    let _ = done.send(Ended {
                        slot,
                        result: Err(TaskError::interrupted()),
                    });
                }
                std::thread::sleep(TICK);
                continue;
            }
            self.submit_waiting();
            if polled.is_none_or(|t: Instant| t.elapsed() >= POLL) {
                // Only the arrays with elements out: every array ever
                // submitted would outgrow an argument (a batch forms every
                // 200 ms while a phase runs).
                let jobs: std::collections::BTreeSet<String> = self
                    .lock()
                    .flights
                    .values()
                    .map(|f| f.element.job.clone())
                    .collect();
                if !jobs.is_empty() {
                    polled = Some(Instant::now());
                    let jobs: Vec<String> = jobs.into_iter().collect();
                    let jobs = jobs.join(",");
                    match squeue(&jobs).or_else(|| sacct(&jobs)) {
                        Some(states) => {
                            view = View {
                                states,
                                at: Instant::now(),
                                fresh: true,
                            }
                        }
                        None => view.fresh = false,
                    }
                }
            }
            self.end_finished(&view);
            std::thread::sleep(TICK);
        }
    }

    /// Submits the waiting attempts once the first has waited
    /// [`BATCH_WINDOW`] (a phase's slots all ask at once: one array).
    fn submit_waiting(&self) {
        let reqs = {
            let mut q = self.lock();
            if q.since.is_none_or(|t| t.elapsed() < BATCH_WINDOW) {
                return;
            }
            q.since = None;
            let reqs = std::mem::take(&mut q.waiting);
            q.submitting = reqs.iter().map(|r| r.slot).collect();
            reqs
        };
        let placed = self.submit(&reqs);
        let mut q = self.lock();
        q.submitting.clear();
        let mut ends = Vec::new();
        let mut cancels = Vec::new();
        for (req, placed) in reqs.into_iter().zip(placed) {
            let cancelled = q.cancelled.remove(&req.slot);
            match placed {
                Ok(element) if cancelled => {
                    cancels.push(element);
                    ends.push((req.slot, req.done, Err(TaskError::cancelled())));
                }
                Ok(element) => {
                    q.flights.insert(
                        req.slot,
                        Flight {
                            element,
                            done: req.done,
                            submitted: Instant::now(),
                            missing_since: None,
                        },
                    );
                }
                Err(why) => ends.push((req.slot, req.done, Err(TaskError::host(why)))),
            }
        }
        drop(q);
        for element in cancels {
            scancel(&element);
        }
        for (slot, done, result) in ends {
            let _ = done.send(Ended { slot, result });
        }
    }

    /// Ends the flights whose element left its exit file, or ended without
    /// one for longer than its grace (`states`: the last `squeue` view).
    fn end_finished(&self, view: &View) {
        // One listing per batch with elements out, not a lookup per
        // element: thousands of elements are out at once.
        let batches: HashSet<usize> = self
            .lock()
            .flights
            .values()
            .map(|f| f.element.batch)
            .collect();
        let exits: HashSet<(usize, usize)> = batches
            .into_iter()
            .flat_map(|batch| {
                let names = std::fs::read_dir(self.batch_dir(batch))
                    .into_iter()
                    .flatten()
                    .flatten()
                    .filter_map(|e| {
                        let name = e.file_name();
                        name.to_str()?.strip_suffix(".exit")?.parse::<usize>().ok()
                    });
                names.map(move |line| (batch, line)).collect::<Vec<_>>()
            })
            .collect();
        let mut ended = Vec::new();
        {
            let mut q = self.lock();
            let now = Instant::now();
            for (&slot, f) in q.flights.iter_mut() {
                let e = &f.element;
                let exit = self.batch_dir(e.batch).join(format!("{}.exit", e.line));
                let state = view.states.get(&e.id()).map(String::as_str);
                // Only a view read since the element was submitted, by a
                // poll that answered, says it ended or is gone.
                let known = view.fresh && view.at > f.submitted;
                // How long to wait for the exit file once the element
                // ended; None while it lives, or nobody knows.
                let grace = match state {
                    _ if !known => None,
                    None if view.at.duration_since(f.submitted) > GRACE_STOPPED => Some(self.grace),
                    None => None,
                    Some(s) if ENDED.contains(&s) => Some(self.grace),
                    Some(s) if STOPPED.contains(&s) => Some(GRACE_STOPPED),
                    Some(_) => None,
                };
                // A listing may be stale on NFS; opening the file is not.
                if exits.contains(&(e.batch, e.line)) || (grace.is_some() && exit.exists()) {
                    ended.push((slot, None));
                    continue;
                }
                match grace {
                    Some(grace) => {
                        let since = *f.missing_since.get_or_insert(now);
                        if now.duration_since(since) > grace {
                            let why = state.unwrap_or("no longer in squeue").to_string();
                            ended.push((slot, Some(why)));
                        }
                    }
                    None => f.missing_since = None,
                }
            }
        }
        for (slot, why) in ended {
            let Some(f) = self.lock().flights.remove(&slot) else {
                continue;
            };
            let result = match why {
                Some(why) => {
                    scancel(&f.element);
                    Err(TaskError::host(format!(
                        "array element {} ended without a result ({why}); resubmitted",
                        f.element.id()
                    )))
                }
                None => self.result(&f.element),
            };
            let _ = f.done.send(Ended { slot, result });
        }
    }

    /// What an element that left its exit file gave.
    fn result(&self, element: &Element) -> std::result::Result<TaskReport, TaskError> {
        let base = self.batch_dir(element.batch).join(element.line.to_string());
        let read = |ext: &str| {
            std::fs::File::open(format!("{}.{ext}", base.display()))
                .map_or_else(|_| Vec::new(), |mut f| read_tail(&mut f))
        };
        let exit = String::from_utf8_lossy(&read("exit")).into_owned();
        let code = exit.split_whitespace().next().and_then(|c| c.parse().ok());
        let out = Output {
            stdout: read("out"),
            stderr: read("err"),
            exit: Exit::Code(code.unwrap_or(-1)),
        };
        interpret(&self.gmr, out).map_err(|mut e| {
            e.message = format!("{} (Slurm job {})", e.message, element.id());
            e
        })
    }
}

/// Cancels `element` (it is given up on, or its attempt cancelled).
fn scancel(element: &Element) {
    let _ = Command::new("scancel")
        .arg(element.id())
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `sacct`'s states of the elements of `jobs` (from the accounting
/// database, which answers while slurmctld does not); None where it does
/// not answer either (no accounting storage).
fn sacct(jobs: &str) -> Option<HashMap<String, String>> {
    let out = Command::new("sacct")
        .args(["-n", "-P", "-X", "-j", jobs, "-o", "JobID,State"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())?;
    let states: HashMap<String, String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('|'))
        // `CANCELLED by 0` is CANCELLED.
        .map(|(id, state)| {
            let state = state.split_whitespace().next().unwrap_or("");
            (id.trim().to_string(), state.to_string())
        })
        .collect();
    // An empty answer is no answer: accounting may lag behind the queue.
    (!states.is_empty()).then_some(states)
}

/// `squeue`'s states of the elements of `jobs` (comma-separated ids); None
/// when it does not answer (slurmctld busy or restarting: "slurm_load_jobs
/// error: Socket timed out"), which says nothing of the elements.
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
        self.arrays.slots
    }

    fn host_of(&self, _slot: usize) -> &str {
        CLUSTER
    }

    fn start(&self, slot: usize, task: TaskId, attempt: u32, done: &Done) -> bool {
        if self.watcher.is_none() {
            let result = Err(TaskError::host(
                "cannot start the thread that follows the job arrays",
            ));
            let _ = done.send(Ended { slot, result });
            return true;
        }
        let mut q = self.arrays.lock();
        q.since.get_or_insert_with(Instant::now);
        q.waiting.push(Request {
            slot,
            task,
            attempt,
            done: done.clone(),
        });
        true
    }

    fn cancel(&self, slot: usize) {
        let mut q = self.arrays.lock();
        let end = if let Some(i) = q.waiting.iter().position(|r| r.slot == slot) {
            Some(q.waiting.remove(i).done)
        } else if q.submitting.contains(&slot) {
            q.cancelled.insert(slot);
            None
        } else if let Some(f) = q.flights.remove(&slot) {
            // scancel after the lock: the watcher and the coordinator
            // need it meanwhile.
            drop(q);
            scancel(&f.element);
            Some(f.done)
        } else {
            None
        };
        if let Some(done) = end {
            let _ = done.send(Ended {
                slot,
                result: Err(TaskError::cancelled()),
            });
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
    /// Stops the watcher; after Ctrl-C, every array submitted is cancelled.
    fn drop(&mut self) {
        self.arrays.stop.store(true, Ordering::SeqCst);
        if let Some(w) = self.watcher.take() {
            let _ = w.join();
        }
        let jobs = self
            .arrays
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

/// What to say when sbatch refused an array: its error lines on one line,
/// and when it could not give the memory that `--task-memory` asked for
/// (gmr's `--mem`, the only one among `args`), what to do.
fn sbatch_refusal(stderr: &str, args: &[String]) -> String {
    let why = stderr
        .lines()
        .map(|l| l.trim().trim_start_matches("sbatch: error: ").trim())
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let mems: Vec<&String> = args.iter().filter(|a| a.starts_with("--mem")).collect();
    let hint = match mems[..] {
        [mem] if why.to_lowercase().contains("memory") => format!(
            " (--task-memory asks Slurm for {mem} per element: lower it, or name a partition of larger nodes with --slurm-args)"
        ),
        _ => String::new(),
    };
    format!("sbatch failed: {why}{hint}")
}

#[cfg(test)]
mod tests {

    #[test]
    fn a_refused_array_says_why_on_one_line_and_names_task_memory() {
        let stderr = "sbatch: error: Memory specification can not be satisfied\nsbatch: error: Batch job submission failed: Requested node configuration is not available\n";
        let ours = vec!["--mem=2048M".to_string()];
        let said = sbatch_refusal(stderr, &ours);
        assert_eq!(
            said,
            "sbatch failed: Memory specification can not be satisfied; Batch job submission failed: Requested node configuration is not available (--task-memory asks Slurm for --mem=2048M per element: lower it, or name a partition of larger nodes with --slurm-args)"
        );
        // The user's own --mem in --slurm-args: no word about --task-memory.
        let both = vec!["--mem=2048M".to_string(), "--mem=1G".to_string()];
        assert!(!sbatch_refusal(stderr, &both).contains("--task-memory"));
        assert!(
            !sbatch_refusal("sbatch: error: invalid partition", &ours).contains("--task-memory")
        );
    }

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
