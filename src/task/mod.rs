//! What a task does, given the work directory, the job and its id
//! (docs/dev/architecture.md §5): a pure function of its inputs, so any attempt on any host
//! makes the same bytes, and the first attempt to commit wins.
//!
//! - `map-NNNNN`: feed split N to the mapper; partition and sort its output
//!   in the sort buffer, spilling sorted runs past it; combine; write one
//!   runs file with every partition back to back, and its index (the
//!   output side is [`crate::task::sorter`]). With `-R 0`, the mapper's output is
//!   the job's part N, order kept.
//! - `shuffle-NNNNN`: merge partition N of every map output into one file.
//! - `reduce-NNNNN`: merge partition N (from the shuffle, or straight from
//!   the map outputs) into the reducer; its output is part N.

pub mod process;
pub mod program;
pub mod report;
pub mod sample;
pub mod sorter;

use crate::data::builtin::Builtin;
use crate::data::codec::{Codec, Encoder};
use crate::data::linebuf::{self, WRITE_BUFFER};
use crate::data::merge::{self, Run, RunFile};
use crate::data::record::LineSplitter;
use crate::data::sort::Segment;
use crate::data::split::{self, Split};
use crate::error::{Error, FailureKind, TaskError};
use crate::interrupt::io_failure;
use crate::store::resources::Resources;
use crate::store::spec::{Job, JobSpec};
use crate::store::workdir::{self, AttemptGuard, WorkDir};
use crate::task::process::{ChildOutcome, InputCount};
use crate::task::program::{Context, Program};
use crate::task::report::{TaskReport, add_counters};
use crate::task::sorter::Sorter;
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

/// Identifies a task within a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TaskId {
    /// Map split N.
    Map(usize),
    /// Merge partition N into one file.
    Shuffle(u32),
    /// Reduce partition N.
    Reduce(u32),
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskId::Map(i) => write!(f, "map-{i:05}"),
            TaskId::Shuffle(p) => write!(f, "shuffle-{p:05}"),
            TaskId::Reduce(p) => write!(f, "reduce-{p:05}"),
        }
    }
}

impl FromStr for TaskId {
    type Err = Error;
    fn from_str(s: &str) -> Result<TaskId, Error> {
        let bad = || {
            Error::usage(format!(
                "`{s}` is not a task id (map-N, shuffle-N or reduce-N)"
            ))
        };
        let (kind, n) = s.split_once('-').ok_or_else(bad)?;
        let n: u32 = n.parse().map_err(|_| bad())?;
        match kind {
            "map" => Ok(TaskId::Map(n as usize)),
            "shuffle" => Ok(TaskId::Shuffle(n)),
            "reduce" => Ok(TaskId::Reduce(n)),
            _ => Err(bad()),
        }
    }
}

/// The index of a committed map output: where each partition lies in `out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MapIndex {
    /// The job that made it.
    pub job: String,
    /// Segment `p` of `out` holds partition `p`, sorted.
    pub segments: Vec<Segment>,
}

/// The report of `task` when it committed already (its report and its
/// output exist), so that a resumed job need not run it again.
pub fn committed_report(wd: &WorkDir, spec: &JobSpec, task: TaskId) -> Option<TaskReport> {
    let output = match task {
        TaskId::Map(i) if spec.reducers == 0 => spec.part_path(i),
        TaskId::Map(i) => WorkDir::map_index(&wd.map_dir(i)),
        TaskId::Shuffle(p) => wd.shuffle_part(p),
        TaskId::Reduce(p) => spec.part_path(p as usize),
    };
    if !output.exists() {
        return None;
    }
    let report: TaskReport = workdir::read_json(&wd.report_path(&task.to_string())).ok()?;
    // A commit of another job (a work directory reused by hand) is none of
    // this job's.
    if report.job != spec.job {
        return None;
    }
    // Runs, shuffle parts and parts bound for stdout are not synced to
    // disk (see `workdir::close_file`): after a crash of the machine, one
    // of another length than its index or report says is removed, and its
    // task redone. A file that cannot be read now is left alone (the task
    // is simply not reused).
    let len = |p: &Path| fs::metadata(p).ok().map(|m| m.len());
    let (target, whole) = match task {
        TaskId::Map(i) if spec.reducers > 0 => {
            let dir = wd.map_dir(i);
            let bytes = fs::read(&output).ok()?;
            let whole = serde_json::from_slice::<MapIndex>(&bytes)
                .ok()
                .map(|index| {
                    let end = index.segments.last().map_or(0, |s| s.end);
                    len(&WorkDir::map_out(&dir)) == Some(end)
                });
            (dir, whole.unwrap_or(false))
        }
        _ => {
            let have = len(&output)?;
            (output, have == report.part_bytes)
        }
    };
    if !whole {
        workdir::remove_path(&target);
        return None;
    }
    Some(report)
}

/// One attempt of one task of a job: what every kind of task needs.
#[derive(Clone, Copy)]
struct Attempt<'a> {
    wd: &'a WorkDir,
    job: &'a Job,
    res: &'a Resources,
    /// The task's name, `map-00003`.
    name: &'a str,
    attempt: u32,
}

/// Runs one attempt of `task` of `job`, with this process's resources, and
/// commits its output.
pub fn run(
    wd: &WorkDir,
    job: &Job,
    res: &Resources,
    task: TaskId,
    attempt: u32,
) -> Result<TaskReport, TaskError> {
    let started = Instant::now();
    let name = task.to_string();
    let at = Attempt {
        wd,
        job,
        res,
        name: &name,
        attempt,
    };
    let mut report = match task {
        _ if job.spec.job.is_empty() => {
            return Err(TaskError::task("the job spec has no job identity"));
        }
        TaskId::Map(i) => {
            let split = job
                .spec
                .splits
                .get(i)
                .ok_or_else(|| TaskError::task(format!("{name}: the job has no split {i}")))?;
            MapTask {
                at,
                index: i,
                split,
            }
            .run()?
        }
        TaskId::Shuffle(p) => run_shuffle(&at, p)?,
        TaskId::Reduce(p) => run_reduce(&at, p)?,
    };
    report.job = job.spec.job.clone();
    report.task = name.clone();
    report.attempt = attempt;
    report.host = workdir::hostname();
    report.slurm_job = slurm_job();
    report.millis = started.elapsed().as_millis() as u64;
    let path = wd.report_path(&name);
    let tmp = workdir::attempt_path(&path, attempt);
    workdir::write_json(&tmp, &report).map_err(TaskError::from)?;
    at.fence()?;
    if !workdir::commit(&tmp, &path).map_err(TaskError::from)? {
        // Another attempt committed first: of this job, or it is the
        // earlier job's that still ran somewhere, whose output may have
        // won too.
        let winner: TaskReport = workdir::read_json(&path).map_err(TaskError::from)?;
        if winner.job != job.spec.job {
            return Err(TaskError::fatal(format!(
                "{name}: an attempt of another job ({}) committed into the work directory {}; an attempt of an earlier job still runs on some host: stop it, then run this job again with a new --workdir",
                winner.job,
                wd.root().display()
            )));
        }
    }
    Ok(report)
}

impl Attempt<'_> {
    /// Fails unless the work directory still holds this attempt's job: an
    /// attempt that outlived its job (on a host cut off from it) must
    /// never commit into a later job run in the same directory, which has
    /// another identity, or none yet.
    fn fence(&self) -> Result<(), TaskError> {
        // The identity is near the start of job.json (see
        // `JobSpec::identity_mark`): reading its head costs the same for a
        // job of a million splits as of one.
        let mut head = [0u8; 256];
        let read = fs::File::open(self.wd.spec_path()).and_then(|f| {
            use std::os::unix::fs::FileExt;
            f.read_at(&mut head, 0)
        });
        let n = match read {
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            // A read that failed says nothing of whose the directory is:
            // the attempt fails, and is retried.
            Err(e) => {
                let path = self.wd.spec_path();
                return Err(TaskError::io(
                    crate::error::io_message("cannot read", &path, &e),
                    &e,
                ));
            }
        };
        let mark = self.job.spec.identity_mark();
        let held = memchr::memmem::find(&head[..n], mark.as_bytes()).is_some();
        match held {
            true => Ok(()),
            false => Err(TaskError::fatal(format!(
                "{}: the work directory {} no longer holds job {}; this attempt of it stops without committing",
                self.name,
                self.wd.root().display(),
                self.job.spec.job
            ))),
        }
    }

    /// How the task runs one of the job's commands: in the job's
    /// directory, with its key spec and the open-file limit commands get.
    fn context<'a>(
        &'a self,
        role: &'a str,
        env: &'a [(String, String)],
        log: &'a Path,
    ) -> Context<'a> {
        Context {
            role,
            cwd: &self.job.spec.cwd,
            env,
            log,
            key: self.job.spec.key,
            nofile: self.res.child_nofile,
            ok_exit: &self.job.spec.ok_exit,
            timeout: self.job.spec.task_timeout(),
            stop_feed: false,
        }
    }

    /// The environment the task's commands see (Hadoop Streaming names
    /// too); docs/dev/architecture.md §2 lists them.
    fn env(&self, partition: usize) -> Vec<(String, String)> {
        let (name, attempt) = (self.name, self.attempt);
        // The job's variables (`--env`, the locale) first: gmr's own come
        // after them and win.
        let mut env = self.job.spec.env.clone();
        env.extend([
            ("GMR_TASK".into(), name.into()),
            ("GMR_ATTEMPT".into(), attempt.to_string()),
            ("GMR_WORKDIR".into(), self.wd.root().display().to_string()),
            ("mapreduce_task_id".into(), name.into()),
            (
                "mapreduce_task_attempt_id".into(),
                format!("{name}_{attempt}"),
            ),
            ("mapreduce_task_partition".into(), partition.to_string()),
        ]);
        env
    }

    /// Whether output parts are synced to disk: parts in the user's output
    /// directory are; parts in the work directory, which gmr copies to
    /// stdout and removes, need not be.
    fn durable_parts(&self) -> bool {
        self.job.spec.output != self.wd.default_output()
    }

    /// The stderr log of this attempt's command in `role` (a combiner's is
    /// kept apart from the mapper's).
    fn log(&self, role: &str) -> std::path::PathBuf {
        match role {
            "combiner" => self.wd.combiner_log_path(self.name, self.attempt),
            _ => self.wd.log_path(self.name, self.attempt),
        }
    }
}

struct MapTask<'a> {
    at: Attempt<'a>,
    index: usize,
    split: &'a Split,
}

impl MapTask<'_> {
    fn run(&self) -> Result<TaskReport, TaskError> {
        let mapper = &self.at.job.mapper;
        let (mut report, input) = if self.at.job.spec.reducers == 0 {
            self.run_map_only(mapper)?
        } else {
            self.run_sorted(mapper)?
        };
        report.records_in = input.records;
        report.bytes_in = input.bytes;
        report.records_read = input.records_taken;
        Ok(report)
    }

    /// Runs the mapper on each piece of the split in turn: a split of
    /// several small files runs one mapper per file, each with its own file
    /// in its environment, as if it had a task of its own. `on_output` gets
    /// each mapper's stdout in chunks, and `None` between one mapper's
    /// output and the next's. The outcome's input counts are summed over
    /// the mappers.
    fn run_mapper(
        &self,
        mapper: &Program,
        mut on_output: impl FnMut(Option<&[u8]>) -> io::Result<()>,
    ) -> Result<ChildOutcome, TaskError> {
        let log = self.at.log("mapper");
        let stamps = &self.at.job.spec.inputs;
        if self.at.job.spec.one_mapper_per_task {
            // One mapper for every file of the split, each file's last
            // line ended so that it cannot run into the next file's first.
            // No task gets the input file variables, not even a task of
            // one file: a mapper either may read them or may not.
            let env = self.at.env(self.index);
            let ctx = self.at.context("mapper", &env, &log);
            return mapper.run(
                &ctx,
                |w: &mut dyn Write| {
                    for piece in self.split.pieces() {
                        if !split::feed(piece, stamps, w)? {
                            w.write_all(b"\n")?;
                        }
                    }
                    Ok(())
                },
                |chunk| on_output(Some(chunk)),
            );
        }
        let mut all = ChildOutcome::default();
        for (i, piece) in self.split.pieces().enumerate() {
            if i > 0 {
                on_output(None).map_err(|e| TaskError::io(format!("mapper output: {e}"), &e))?;
            }
            let mut env = self.at.env(self.index);
            // A decompressed copy is read under its compressed file's name.
            let input = piece.origin.as_ref().unwrap_or(&piece.path);
            let input = input.display().to_string();
            env.extend([
                ("GMR_INPUT_FILE".into(), input.clone()),
                ("mapreduce_map_input_file".into(), input.clone()),
                ("map_input_file".into(), input),
                ("mapreduce_map_input_start".into(), piece.start.to_string()),
                (
                    "mapreduce_map_input_length".into(),
                    (piece.end - piece.start).to_string(),
                ),
            ]);
            let ctx = self.at.context("mapper", &env, &log);
            let outcome = mapper
                .run(
                    &ctx,
                    |w: &mut dyn Write| split::feed(piece, stamps, w).map(drop),
                    |chunk| on_output(Some(chunk)),
                )
                .map_err(|e| at_piece(e, piece))?;
            add_counters(&mut all.counters, &outcome.counters);
            all.status = outcome.status.or(all.status);
            all.input.add(&outcome.input);
        }
        Ok(all)
    }

    /// A mapper that is `cat` (`-m cat`): its output is its input, read
    /// straight into the sort buffer ([`Sorter::read_input`]) rather than
    /// through a copy for every layer of a mapper's run.
    fn read_input(&self, sorter: &mut Sorter) -> Result<ChildOutcome, TaskError> {
        let mut input = InputCount::default();
        for piece in self.split.pieces() {
            let failed = |e: io::Error| {
                let e = TaskError::io(format!("mapper {}: {e}", Builtin::Identity.name()), &e);
                at_piece(e, piece)
            };
            let mut reader = split::Piece::open(piece, &self.at.job.spec.inputs).map_err(failed)?;
            let (records, bytes) =
                sorter.read_input(|buf, max| reader.read_into(buf, max).map_err(failed))?;
            reader.finish().map_err(failed)?;
            input.add(&InputCount::whole(records, bytes));
        }
        Ok(ChildOutcome::fed(input))
    }

    /// `-R 0`: the mapper's output is part N of the job, as it printed it,
    /// a last line without a newline ended with one.
    fn run_map_only(&self, mapper: &Program) -> Result<(TaskReport, InputCount), TaskError> {
        let target = self.at.job.spec.part_path(self.index);
        let durable = self.at.durable_parts();
        let codec = self.at.job.spec.compress;
        let ((outcome, records, bytes), part_bytes) =
            write_part(&target, &self.at, (durable, codec), |out| {
                let mut counts = (0u64, 0u64, false);
                let outcome = self.run_mapper(mapper, |output| {
                    // One mapper's last line is not the next one's first.
                    let chunk = output.unwrap_or(if counts.2 { b"\n" } else { b"" });
                    counts.0 += memchr::memchr_iter(b'\n', chunk).count() as u64;
                    counts.1 += chunk.len() as u64;
                    counts.2 = chunk.last().map_or(counts.2, |&b| b != b'\n');
                    out.write_all(chunk)
                })?;
                // Nor the part's last line the next part's first: parts
                // are read one after another.
                if counts.2 {
                    out.write_all(b"\n")
                        .map_err(|e| TaskError::io(format!("{e}"), &e))?;
                    counts.1 += 1;
                }
                Ok((outcome, counts.0 + u64::from(counts.2), counts.1))
            })?;
        let report = TaskReport {
            records_out: records,
            command_records_out: records,
            bytes_out: bytes,
            part_bytes,
            counters: outcome.counters,
            status: outcome.status,
            ..TaskReport::default()
        };
        Ok((report, outcome.input))
    }

    /// The mapper's output partitioned, sorted, spilled and combined into
    /// one runs file.
    fn run_sorted(&self, mapper: &Program) -> Result<(TaskReport, InputCount), TaskError> {
        let at = &self.at;
        let target = at.wd.map_dir(self.index);
        let attempt_dir = AttemptGuard::new(workdir::attempt_path(&target, at.attempt));
        fs::create_dir_all(attempt_dir.path())
            .map_err(io_failure("cannot create", attempt_dir.path()))?;
        let combine_env = at.env(self.index);
        let combine_log = at.log("combiner");
        let combine_ctx = at.context("combiner", &combine_env, &combine_log);
        let mut sorter = Sorter::new(at.job, at.res, &combine_ctx, attempt_dir.path());
        let identity = matches!(mapper, Program::Builtin(Builtin::Identity));
        let outcome = if identity && self.split.pieces().all(|p| p.codec.is_none()) {
            self.read_input(&mut sorter)?
        } else {
            let mut lines = LineSplitter::default();
            let mut spill_error = None;
            let outcome = self.run_mapper(mapper, |output| {
                let Some(chunk) = output else {
                    // A mapper's last line, if it had no newline.
                    return lines.finish(|line| sorter.push(line));
                };
                lines.feed(chunk, |line| sorter.push(line))?;
                sorter.spill_if_full().map_err(|e| {
                    let msg = e.message.clone();
                    spill_error = Some(e);
                    io::Error::other(msg)
                })
            });
            if let Some(e) = spill_error {
                return Err(e);
            }
            let outcome: ChildOutcome = outcome?;
            lines
                .finish(|line| sorter.push(line))
                .map_err(|e| TaskError::io(format!("combiner: {e}"), &e))?;
            outcome
        };
        let (segments, mut report) = sorter.finish()?;
        let index = MapIndex {
            job: at.job.spec.job.clone(),
            segments,
        };
        workdir::write_json(&WorkDir::map_index(attempt_dir.path()), &index)?;
        report.records_out = index.segments.iter().map(|s| s.records).sum();
        report.bytes_out = index.segments.last().map_or(0, |s| s.end);
        report.counters = outcome.counters;
        report.status = outcome.status;
        // Its files' names are durable before the directory is committed.
        workdir::sync_dir(attempt_dir.path())
            .map_err(io_failure("cannot write", attempt_dir.path()))?;
        at.fence()?;
        workdir::commit(attempt_dir.path(), &target)?;
        attempt_dir.keep();
        Ok((report, outcome.input))
    }
}

/// A mapper's failure, with the piece of input it was reading when the
/// failure is the task's (a retry may get past it).
fn at_piece(mut e: TaskError, piece: &Split) -> TaskError {
    if matches!(e.kind, FailureKind::Task | FailureKind::Timeout) {
        e.message = format!(
            "{} (input {} bytes {}..{})",
            e.message,
            piece.path.display(),
            piece.start,
            piece.end
        );
    }
    e
}

/// The open sorted runs of one partition, and the scratch directory of
/// any intermediate merges (removed when dropped).
struct PartitionRuns {
    runs: Vec<Run>,
    /// The records and bytes the runs hold, from their indexes: what a
    /// reducer that stopped reading early was offered all the same.
    size: (u64, u64),
    _scratch: Option<AttemptGuard>,
}

/// Opens the sorted runs of partition `p`: the shuffle's merged file when
/// `gmr shuffle` made one, else the partition's segment of every map output
/// (merged down first, in the attempt's scratch directory, when there are
/// more than one merge may open).
fn partition_runs(at: &Attempt, p: u32, from_shuffle: bool) -> Result<PartitionRuns, TaskError> {
    let (wd, spec) = (at.wd, &at.job.spec);
    let merged = wd.shuffle_part(p);
    if from_shuffle && let Some(shuffled) = committed_report(wd, spec, TaskId::Shuffle(p)) {
        return Ok(PartitionRuns {
            runs: vec![merge::open_file(&merged).map_err(io_failure("cannot read", &merged))?],
            size: (shuffled.records_out, shuffled.bytes_out),
            _scratch: None,
        });
    }
    let mut files = Vec::new();
    for i in 0..spec.splits.len() {
        let dir = wd.map_dir(i);
        let index: MapIndex = workdir::read_json(&WorkDir::map_index(&dir)).map_err(|e| {
            TaskError::task(format!(
                "{e}; the map task map-{i:05} has not committed its output"
            ))
        })?;
        if index.job != spec.job {
            return Err(TaskError::fatal(format!(
                "{} holds the map output of another job ({}, not {}); the work directory {} was reused: run the job with a new --workdir",
                dir.display(),
                index.job,
                spec.job,
                wd.root().display()
            )));
        }
        let seg = *index.segments.get(p as usize).ok_or_else(|| {
            TaskError::task(format!(
                "{} has no partition {p}: the job's R changed",
                dir.display()
            ))
        })?;
        if seg.records > 0 {
            files.push(RunFile {
                path: WorkDir::map_out(&dir),
                segment: seg,
            });
        }
    }
    let size = files.iter().fold((0, 0), |(records, bytes), f| {
        let seg = f.segment;
        (records + seg.records, bytes + (seg.end - seg.start))
    });
    let mut scratch = None;
    if files.len() > at.res.fan_in {
        let dir = wd.scratch_dir(at.name, at.attempt);
        fs::create_dir_all(&dir).map_err(io_failure("cannot create", &dir))?;
        scratch = Some(AttemptGuard::new(dir));
    }
    let dir = scratch.as_ref().map_or(wd.root(), |g| g.path());
    let opened = merge::open_narrowed(
        &at.job.order,
        files,
        at.res.fan_in,
        dir,
        &WorkDir::merge_stem(None),
    )
    .map_err(io_failure("cannot merge runs in", dir))?;
    Ok(PartitionRuns {
        runs: opened.runs,
        size,
        _scratch: scratch,
    })
}

fn run_shuffle(at: &Attempt, p: u32) -> Result<TaskReport, TaskError> {
    let order = &at.job.order;
    let PartitionRuns { runs, _scratch, .. } = partition_runs(at, p, false)?;
    let ((records, bytes), part_bytes) =
        write_part(&at.wd.shuffle_part(p), at, (false, None), |out| {
            merge::merge_into(order, runs, out, linebuf::BLOCK)
                .map_err(|e| TaskError::io(format!("merging partition {p}: {e}"), &e))
        })?;
    Ok(TaskReport {
        records_in: records,
        records_read: records,
        part_bytes,
        bytes_in: bytes,
        records_out: records,
        bytes_out: bytes,
        ..TaskReport::default()
    })
}

fn run_reduce(at: &Attempt, p: u32) -> Result<TaskReport, TaskError> {
    let spec = &at.job.spec;
    let reducer = at
        .job
        .reducer
        .as_ref()
        .ok_or_else(|| TaskError::task("the job spec names no reducer"))?;
    let PartitionRuns {
        runs,
        size,
        _scratch,
    } = partition_runs(at, p, true)?;
    let env = at.env(p as usize);
    let log = at.log("reducer");
    // A reducer that stops reading (`head`) ends the merge: the
    // partition's size is known from its runs.
    let ctx = Context {
        stop_feed: true,
        ..at.context("reducer", &env, &log)
    };
    let order = &at.job.order;
    // A command gets its input a pipe's worth at a time; a built-in
    // takes large blocks whole.
    let block = match reducer {
        Program::Shell(_) => linebuf::PIPE_BLOCK,
        Program::Builtin(_) => linebuf::BLOCK,
    };
    let reduce = |out: &mut dyn Write| {
        let ran = if matches!(reducer, Program::Builtin(Builtin::Identity)) {
            // `-r cat`: the merge is the part, written as it is made, its
            // records counted once.
            merge::merge_into(order, runs, out, block)
                .map(|(records, bytes)| {
                    let input = InputCount::whole(records, bytes);
                    (ChildOutcome::fed(input), records, bytes)
                })
                .map_err(|e| match crate::interrupt::is_set() {
                    true => TaskError::interrupted(),
                    false => TaskError::io(format!("reducer {reducer}: {e}"), &e),
                })
        } else {
            let feed = |w: &mut dyn Write| merge::merge_into(order, runs, w, block).map(drop);
            let mut lines = (0u64, 0u64, false);
            reducer
                .run(&ctx, feed, |chunk| {
                    lines.0 += memchr::memchr_iter(b'\n', chunk).count() as u64;
                    lines.1 += chunk.len() as u64;
                    lines.2 = chunk.last() != Some(&b'\n');
                    out.write_all(chunk)
                })
                .map(|outcome| (outcome, lines.0 + u64::from(lines.2), lines.1))
        };
        ran.map_err(|mut e| {
            if matches!(e.kind, FailureKind::Task | FailureKind::Timeout) {
                e.message = format!("{} (partition {p})", e.message);
            }
            e
        })
    };
    let ((outcome, records_out, bytes_out), part_bytes) = match at.res.stdout_parts.get() {
        // The part goes straight into its place in stdout.
        Some(parts) => {
            let mut out = parts.part(p as usize);
            let done = reduce(&mut out)?;
            out.finish().map_err(|e| TaskError::io(e.to_string(), &e))?;
            let bytes = done.2;
            (done, bytes)
        }
        None => {
            let target = spec.part_path(p as usize);
            let durable = at.durable_parts();
            write_part(&target, at, (durable, spec.compress), |out| reduce(out))?
        }
    };
    let input = outcome.input;
    // The record check compares the map side's counts with what reducers
    // were offered: a reducer that stopped early was offered the whole
    // partition, of which the merge cannot have made more than there is.
    let (records_in, bytes_in) = match input.stopped_early {
        true if input.records > size.0 || input.bytes > size.1 => {
            return Err(TaskError::fatal(format!(
                "internal error: the merge of partition {p} made {} records ({} bytes) of {} ({} bytes); please report this",
                input.records, input.bytes, size.0, size.1
            )));
        }
        true => size,
        false => (input.records, input.bytes),
    };
    Ok(TaskReport {
        part_bytes,
        records_in,
        bytes_in,
        records_read: input.records_taken,
        records_out,
        command_records_out: records_out,
        bytes_out,
        counters: outcome.counters,
        status: outcome.status,
        ..TaskReport::default()
    })
}

/// An attempt of a part file being written (compressed with
/// `--compress`): write errors name the file.
struct PartOut {
    out: Encoder<BufWriter<File>>,
    path: std::path::PathBuf,
}

impl Write for PartOut {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.out.write(buf).map_err(|e| self.named(e))
    }
    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.out.write_all(buf).map_err(|e| self.named(e))
    }
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush().map_err(|e| self.named(e))
    }
}

impl PartOut {
    /// `e`, its message naming the file (its kind kept: a full disk still
    /// reads as one).
    fn named(&self, e: io::Error) -> io::Error {
        io::Error::new(
            e.kind(),
            crate::error::io_message("cannot write", &self.path, &e),
        )
    }
}

/// Writes an attempt of the file `target` with `write` (compressed with
/// `codec`), closes it (synced to disk when `durable`: a part of the
/// user's output directory), then commits it: a part is never committed
/// short. Returns what `write` returned and the file's length.
fn write_part<T>(
    target: &Path,
    at: &Attempt,
    (durable, codec): (bool, Option<Codec>),
    write: impl FnOnce(&mut PartOut) -> Result<T, TaskError>,
) -> Result<(T, u64), TaskError> {
    let guard = AttemptGuard::new(workdir::attempt_path(target, at.attempt));
    // A part of the user's output directory gets the umask's permissions;
    // anything in the work directory stays private.
    let create = if durable {
        workdir::create_output
    } else {
        workdir::create_new
    };
    let file = create(guard.path()).map_err(io_failure("cannot create", guard.path()))?;
    let encoder = Encoder::new(codec, BufWriter::with_capacity(WRITE_BUFFER, file))
        .map_err(io_failure("cannot write", guard.path()))?;
    let mut out = PartOut {
        out: encoder,
        path: guard.path().to_path_buf(),
    };
    let value = write(&mut out)?;
    let file = out
        .out
        .finish()
        .map_err(io_failure("cannot write", guard.path()))?
        .into_inner()
        .map_err(|e| e.into_error())
        .map_err(io_failure("cannot write", guard.path()))?;
    let len = file
        .metadata()
        .map_err(io_failure("cannot write", guard.path()))?
        .len();
    workdir::close_file(file, durable).map_err(io_failure("cannot write", guard.path()))?;
    at.fence()?;
    workdir::commit(guard.path(), target)?;
    guard.keep();
    Ok((value, len))
}

/// The Slurm job step or array element this process runs as, from
/// Slurm's environment: `JOB_INDEX` for an array element, `JOB.STEP` for
/// a step.
fn slurm_job() -> Option<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(job), Some(index)) = (var("SLURM_ARRAY_JOB_ID"), var("SLURM_ARRAY_TASK_ID")) {
        return Some(format!("{job}_{index}"));
    }
    let job = var("SLURM_JOB_ID")?;
    Some(match var("SLURM_STEP_ID") {
        Some(step) => format!("{job}.{step}"),
        None => job,
    })
}
