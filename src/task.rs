//! What a task does, given the work directory, the job spec and its id
//! (DESIGN.md §5): a pure function of its inputs, so any attempt on any host
//! makes the same bytes, and the first attempt to commit wins.
//!
//! - `map-NNNNN`: feed split N to the mapper; partition and sort its output
//!   in the sort buffer, spilling sorted runs past it; combine; write one
//!   runs file with every partition back to back, and its index (the
//!   output side is [`crate::spill`]). With `-R 0`, the mapper's output is
//!   the job's part N, order kept.
//! - `shuffle-NNNNN`: merge partition N of every map output into one file.
//! - `reduce-NNNNN`: merge partition N (from the shuffle, or straight from
//!   the map outputs) into the reducer; its output is part N.

use crate::error::{Error, FailureKind, TaskError};
use crate::interrupt;
use crate::merge::{self, Run, RunFile};
use crate::process::ChildOutcome;
use crate::program::{Context, Program};
use crate::record::LineSplitter;
use crate::report::{TaskReport, add_counters};
use crate::sort::Segment;
use crate::spill::Sorter;
use crate::split::Split;
use crate::workdir::{self, AttemptGuard, JobSpec, WorkDir, part_name};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Write};
use std::path::Path;
use std::str::FromStr;
use std::time::Instant;

/// Bytes handed to a mapper per write.
const FEED_CHUNK: usize = 1 << 20;
/// Buffer for writing runs and parts.
pub(crate) const WRITE_BUFFER: usize = 1 << 20;

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
    /// Segment `p` of `out` holds partition `p`, sorted.
    pub segments: Vec<Segment>,
}

/// The report of `task` when it committed already (its report and its
/// output exist), so that a resumed job need not run it again.
pub fn committed_report(wd: &WorkDir, spec: &JobSpec, task: TaskId) -> Option<TaskReport> {
    let output = match task {
        TaskId::Map(i) if spec.reducers == 0 => spec.output.join(part_name(i)),
        TaskId::Map(i) => wd.map_dir(i).join("index.json"),
        TaskId::Shuffle(p) => wd.shuffle_part(p),
        TaskId::Reduce(p) => spec.output.join(part_name(p as usize)),
    };
    if !output.exists() {
        return None;
    }
    workdir::read_json(&wd.report_path(&task.to_string())).ok()
}

/// Runs one attempt of `task` and commits its output.
pub fn run(
    wd: &WorkDir,
    spec: &JobSpec,
    task: TaskId,
    attempt: u32,
) -> Result<TaskReport, TaskError> {
    let started = Instant::now();
    let name = task.to_string();
    let mut report = match task {
        TaskId::Map(i) => {
            let split = spec
                .splits
                .get(i)
                .ok_or_else(|| TaskError::task(format!("{name}: the job has no split {i}")))?;
            MapTask {
                wd,
                spec,
                index: i,
                split,
                name: &name,
                attempt,
            }
            .run()?
        }
        TaskId::Shuffle(p) => run_shuffle(wd, spec, p, (&name, attempt))?,
        TaskId::Reduce(p) => run_reduce(wd, spec, p, &name, attempt)?,
    };
    report.task = name.clone();
    report.attempt = attempt;
    report.host = workdir::hostname();
    report.millis = started.elapsed().as_millis() as u64;
    let path = wd.report_path(&name);
    let tmp = workdir::attempt_path(&path, attempt);
    workdir::write_json(&tmp, &report).map_err(TaskError::from)?;
    workdir::commit(&tmp, &path).map_err(TaskError::from)?;
    Ok(report)
}

/// How a task runs one of the job's commands: in the job's directory, with
/// its key spec.
fn job_context<'a>(
    spec: &'a JobSpec,
    role: &'a str,
    env: &'a [(String, String)],
    log: &'a Path,
) -> Context<'a> {
    Context {
        role,
        cwd: &spec.cwd,
        env,
        log,
        key: spec.key,
    }
}

/// The environment a task's commands see (Hadoop Streaming names too).
fn task_env(wd: &WorkDir, name: &str, attempt: u32, partition: usize) -> Vec<(String, String)> {
    vec![
        ("GMR_TASK".into(), name.into()),
        ("GMR_ATTEMPT".into(), attempt.to_string()),
        ("GMR_WORKDIR".into(), wd.root().display().to_string()),
        ("mapreduce_task_id".into(), name.into()),
        (
            "mapreduce_task_attempt_id".into(),
            format!("{name}_{attempt}"),
        ),
        ("mapreduce_task_partition".into(), partition.to_string()),
    ]
}

/// Turns an I/O error on `path` into a task failure that names the path
/// (and says what to do for a full disk), or into an interruption when the
/// job is being stopped.
pub(crate) fn io_err<'a>(
    what: &'a str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> TaskError + 'a {
    move |e| {
        if interrupt::is_set() {
            TaskError::interrupted()
        } else {
            TaskError::task(crate::error::io_message(what, path, &e))
        }
    }
}

struct MapTask<'a> {
    wd: &'a WorkDir,
    spec: &'a JobSpec,
    index: usize,
    split: &'a Split,
    name: &'a str,
    attempt: u32,
}

impl MapTask<'_> {
    fn run(&self) -> Result<TaskReport, TaskError> {
        let mapper = Program::parse(&self.spec.mapper)?;
        let mut inputs = (0u64, 0u64);
        let mut report = if self.spec.reducers == 0 {
            self.run_map_only(&mapper, &mut inputs)?
        } else {
            self.run_sorted(&mapper, &mut inputs)?
        };
        (report.records_in, report.bytes_in) = inputs;
        Ok(report)
    }

    /// Runs the mapper on each piece of the split in turn: a split of
    /// several small files runs one mapper per file, each with its own file
    /// in its environment, as if it had a task of its own. `on_output` gets
    /// each mapper's stdout in chunks, and `None` between one mapper's
    /// output and the next's. `inputs` counts the records and bytes fed.
    fn run_mapper(
        &self,
        mapper: &Program,
        inputs: &mut (u64, u64),
        mut on_output: impl FnMut(Option<&[u8]>) -> io::Result<()>,
    ) -> Result<ChildOutcome, TaskError> {
        let log = self.wd.log_path(self.name, self.attempt);
        if self.spec.one_mapper_per_task {
            // One mapper for every file of the split, each file's last
            // line ended so that it cannot run into the next file's first.
            // No task gets the input file variables, not even a task of
            // one file: a mapper either may read them or may not.
            let env = task_env(self.wd, self.name, self.attempt, self.index);
            let ctx = job_context(self.spec, "mapper", &env, &log);
            let (records, bytes) = (&mut inputs.0, &mut inputs.1);
            return mapper.run(
                &ctx,
                |w: &mut dyn Write| {
                    for piece in self.split.pieces() {
                        let ended = feed_split(piece, w, records, bytes).map_err(|e| {
                            io::Error::new(e.kind(), format!("{}: {e}", piece.path.display()))
                        })?;
                        if !ended {
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
                on_output(None).map_err(|e| TaskError::task(format!("mapper output: {e}")))?;
            }
            let mut env = task_env(self.wd, self.name, self.attempt, self.index);
            let input = piece.path.display().to_string();
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
            let ctx = job_context(self.spec, "mapper", &env, &log);
            let (records, bytes) = (&mut inputs.0, &mut inputs.1);
            let outcome = mapper
                .run(
                    &ctx,
                    |w: &mut dyn Write| feed_split(piece, w, records, bytes).map(drop),
                    |chunk| on_output(Some(chunk)),
                )
                .map_err(|mut e| {
                    if e.kind == FailureKind::Task {
                        e.message = format!(
                            "{} (input {} bytes {}..{})",
                            e.message,
                            piece.path.display(),
                            piece.start,
                            piece.end
                        );
                    }
                    e
                })?;
            add_counters(&mut all.counters, &outcome.counters);
            all.status = outcome.status.or(all.status);
        }
        Ok(all)
    }

    /// `-R 0`: the mapper's output is part N of the job, as it printed it.
    fn run_map_only(
        &self,
        mapper: &Program,
        inputs: &mut (u64, u64),
    ) -> Result<TaskReport, TaskError> {
        let target = self.spec.output.join(part_name(self.index));
        let (outcome, records, bytes) = write_part(&target, self.attempt, |out| {
            let mut counts = (0u64, 0u64, false);
            let outcome = self.run_mapper(mapper, inputs, |output| {
                // One mapper's last line is not the next one's first.
                let chunk = output.unwrap_or(if counts.2 { b"\n" } else { b"" });
                counts.0 += memchr::memchr_iter(b'\n', chunk).count() as u64;
                counts.1 += chunk.len() as u64;
                counts.2 = chunk.last().map_or(counts.2, |&b| b != b'\n');
                out.write_all(chunk)
            })?;
            Ok((outcome, counts.0 + u64::from(counts.2), counts.1))
        })?;
        Ok(TaskReport {
            records_out: records,
            command_records_out: records,
            bytes_out: bytes,
            counters: outcome.counters,
            status: outcome.status,
            ..TaskReport::default()
        })
    }

    /// The mapper's output partitioned, sorted, spilled and combined into
    /// one runs file.
    fn run_sorted(
        &self,
        mapper: &Program,
        inputs: &mut (u64, u64),
    ) -> Result<TaskReport, TaskError> {
        let target = self.wd.map_dir(self.index);
        let attempt_dir = AttemptGuard::new(workdir::attempt_path(&target, self.attempt));
        fs::create_dir_all(attempt_dir.path())
            .map_err(io_err("cannot create", attempt_dir.path()))?;
        let combiner = self
            .spec
            .combiner
            .as_deref()
            .map(Program::parse)
            .transpose()?;
        let combine_env = task_env(self.wd, self.name, self.attempt, self.index);
        let combine_log = self
            .wd
            .log_path(&format!("{}.combiner", self.name), self.attempt);
        let combine_ctx = job_context(self.spec, "combiner", &combine_env, &combine_log);
        let mut sorter = Sorter::new(
            self.spec,
            combiner.as_ref(),
            &combine_ctx,
            attempt_dir.path(),
        );
        let mut lines = LineSplitter::default();
        let mut spill_error = None;
        let outcome = self.run_mapper(mapper, inputs, |output| {
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
            .map_err(|e| TaskError::task(format!("combiner: {e}")))?;
        let (segments, mut report) = sorter.finish()?;
        let index = MapIndex { segments };
        workdir::write_json(&attempt_dir.path().join("index.json"), &index)?;
        report.records_out = index.segments.iter().map(|s| s.records).sum();
        report.bytes_out = index.segments.last().map_or(0, |s| s.end);
        report.counters = outcome.counters;
        report.status = outcome.status;
        workdir::commit(attempt_dir.path(), &target)?;
        attempt_dir.keep();
        Ok(report)
    }
}

/// Writes the bytes of one piece of a split (`more` aside) to the mapper,
/// counting records and bytes; returns whether they end with a newline
/// (or are none).
fn feed_split(
    split: &Split,
    w: &mut dyn Write,
    records: &mut u64,
    bytes: &mut u64,
) -> io::Result<bool> {
    let file = File::open(&split.path)?;
    let mut last = b'\n';
    let mut take = |chunk: &[u8], w: &mut dyn Write| -> io::Result<()> {
        *records += memchr::memchr_iter(b'\n', chunk).count() as u64;
        *bytes += chunk.len() as u64;
        if let Some(&b) = chunk.last() {
            last = b;
        }
        w.write_all(chunk)
    };
    if split.gzip {
        let mut dec = flate2::read::MultiGzDecoder::new(io::BufReader::new(file));
        let mut buf = vec![0u8; FEED_CHUNK];
        loop {
            let n = match dec.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("decompressing: {e}"))),
            };
            take(&buf[..n], w)?;
        }
    } else if split.start < split.end {
        let map = map_range(&file, split.start, split.end - split.start)?;
        let mut fed = 0;
        for chunk in map.chunks(FEED_CHUNK) {
            take(chunk, w)?;
            fed += chunk.len();
            map.release_before(fed);
        }
    }
    if last != b'\n' {
        *records += 1;
    }
    Ok(last == b'\n')
}

/// Maps bytes `start..start+len` of `file` (the map is page-aligned; the
/// returned slice is exactly the range).
pub struct MappedRange {
    map: memmap2::Mmap,
    skip: usize,
    page: usize,
}

impl MappedRange {
    /// Drops the pages before byte `pos` of the range from this process's
    /// resident memory once they have been fed: mapped input counts in RSS,
    /// and without this a task would hold its whole split resident.
    fn release_before(&self, pos: usize) {
        let end = (self.skip + pos) / self.page * self.page;
        if end > 0 {
            // SAFETY: the map is a read-only shared file mapping, so
            // MADV_DONTNEED only drops clean pages (reading them again would
            // fault them back in from the file); no reference into the
            // released bytes is used after this call.
            let _ = unsafe {
                self.map
                    .unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, 0, end)
            };
        }
    }
}

impl std::ops::Deref for MappedRange {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.map[self.skip..]
    }
}

fn map_range(file: &File, start: u64, len: u64) -> io::Result<MappedRange> {
    // SAFETY: sysconf is always safe to call.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(4096) as u64;
    let aligned = start - start % page;
    let skip = (start - aligned) as usize;
    // SAFETY: read-only map of an input the job does not modify; a file
    // truncated under a running job faults, as with any mmap reader.
    let map = unsafe {
        memmap2::MmapOptions::new()
            .offset(aligned)
            .len(len as usize + skip)
            .map(file)?
    };
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(MappedRange {
        map,
        skip,
        page: page as usize,
    })
}

/// The open sorted runs of one partition, and the scratch directory of
/// any intermediate merges (removed when dropped).
struct PartitionRuns {
    runs: Vec<Run>,
    _scratch: Option<AttemptGuard>,
}

/// Opens the sorted runs of partition `p`: the shuffle's merged file when
/// `gmr shuffle` made one, else the partition's segment of every map output
/// (merged down first, in the attempt's scratch directory, when there are
/// more than one merge may open).
fn partition_runs(
    wd: &WorkDir,
    spec: &JobSpec,
    p: u32,
    from_shuffle: bool,
    (name, attempt): (&str, u32),
) -> Result<PartitionRuns, TaskError> {
    let merged = wd.shuffle_part(p);
    if from_shuffle && merged.exists() {
        return Ok(PartitionRuns {
            runs: vec![merge::open_file(&merged).map_err(io_err("cannot read", &merged))?],
            _scratch: None,
        });
    }
    let mut files = Vec::new();
    for i in 0..spec.splits.len() {
        let dir = wd.map_dir(i);
        let index: MapIndex = workdir::read_json(&dir.join("index.json")).map_err(|e| {
            TaskError::task(format!(
                "{e}; the map task map-{i:05} has not committed its output"
            ))
        })?;
        let seg = *index.segments.get(p as usize).ok_or_else(|| {
            TaskError::task(format!(
                "{} has no partition {p}: the job's R changed",
                dir.display()
            ))
        })?;
        if seg.records > 0 {
            files.push(RunFile {
                path: dir.join("out"),
                segment: seg,
            });
        }
    }
    let fan_in = merge::fan_in();
    let mut scratch = None;
    if files.len() > fan_in {
        let dir = wd.scratch_dir(name, attempt);
        fs::create_dir_all(&dir).map_err(io_err("cannot create", &dir))?;
        let guard = AttemptGuard::new(dir);
        files = merge::narrow(spec.key, files, fan_in, guard.path(), "merge")
            .map_err(io_err("cannot merge runs in", guard.path()))?;
        scratch = Some(guard);
    }
    let buffer = merge::run_buffer(files.len());
    let runs = files
        .iter()
        .map(|f| f.open(buffer).map_err(io_err("cannot read", &f.path)))
        .collect::<Result<Vec<Run>, TaskError>>()?;
    Ok(PartitionRuns {
        runs,
        _scratch: scratch,
    })
}

fn run_shuffle(
    wd: &WorkDir,
    spec: &JobSpec,
    p: u32,
    task: (&str, u32),
) -> Result<TaskReport, TaskError> {
    let PartitionRuns { runs, _scratch } = partition_runs(wd, spec, p, false, task)?;
    let (records, bytes) = write_part(&wd.shuffle_part(p), 0, |out| {
        merge::merge_into(spec.key, runs, out)
            .map_err(|e| TaskError::task(format!("merging partition {p}: {e}")))
    })?;
    Ok(TaskReport {
        records_in: records,
        bytes_in: bytes,
        records_out: records,
        bytes_out: bytes,
        ..TaskReport::default()
    })
}

fn run_reduce(
    wd: &WorkDir,
    spec: &JobSpec,
    p: u32,
    name: &str,
    attempt: u32,
) -> Result<TaskReport, TaskError> {
    let reducer_text = spec
        .reducer
        .as_deref()
        .ok_or_else(|| TaskError::task("the job spec names no reducer"))?;
    let reducer = effective_reducer(Program::parse(reducer_text)?, spec)?;
    let PartitionRuns { runs, _scratch } = partition_runs(wd, spec, p, true, (name, attempt))?;
    let env = task_env(wd, name, attempt, p as usize);
    let log = wd.log_path(name, attempt);
    let ctx = job_context(spec, "reducer", &env, &log);
    let (mut records_in, mut bytes_in) = (0u64, 0u64);
    let feed = |w: &mut dyn Write| {
        (records_in, bytes_in) = merge::merge_into(spec.key, runs, w)?;
        Ok(())
    };
    let target = spec.output.join(part_name(p as usize));
    let (outcome, records_out, bytes_out) = write_part(&target, attempt, |out| {
        let mut lines = (0u64, 0u64, false);
        let outcome = reducer
            .run(&ctx, feed, |chunk| {
                lines.0 += memchr::memchr_iter(b'\n', chunk).count() as u64;
                lines.1 += chunk.len() as u64;
                lines.2 = chunk.last() != Some(&b'\n');
                out.write_all(chunk)
            })
            .map_err(|mut e| {
                if e.kind == FailureKind::Task {
                    e.message = format!("{} (partition {p})", e.message);
                }
                e
            })?;
        Ok((outcome, lines.0 + u64::from(lines.2), lines.1))
    })?;
    Ok(TaskReport {
        records_in,
        bytes_in,
        records_out,
        command_records_out: records_out,
        bytes_out,
        counters: outcome.counters,
        status: outcome.status,
        ..TaskReport::default()
    })
}

/// The reducer that actually runs: a built-in reducer whose own built-in
/// ran map-side as combiner gets partial results, so it runs its merge
/// form (`@count` partials are summed).
fn effective_reducer(reducer: Program, spec: &JobSpec) -> Result<Program, TaskError> {
    let combiner = spec.combiner.as_deref().map(Program::parse).transpose()?;
    Ok(match (reducer, combiner) {
        (Program::Builtin(r), Some(Program::Builtin(c))) if r == c => {
            Program::Builtin(r.merge_form().unwrap_or(r))
        }
        (reducer, _) => reducer,
    })
}

/// Writes an attempt of the file `target` with `write`, then commits it.
fn write_part<T>(
    target: &Path,
    attempt: u32,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<T, TaskError>,
) -> Result<T, TaskError> {
    let guard = AttemptGuard::new(workdir::attempt_path(target, attempt));
    let file = File::create(guard.path()).map_err(io_err("cannot create", guard.path()))?;
    let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
    let value = write(&mut out)?;
    out.flush().map_err(io_err("cannot write", guard.path()))?;
    workdir::commit(guard.path(), target)?;
    guard.keep();
    Ok(value)
}
