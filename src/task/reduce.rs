//! Shuffle and reduce tasks: the sorted runs of one partition, merged
//! into one file (`gmr shuffle`) or into the reducer, whose output is the
//! part.

use crate::data::builtin::Builtin;
use crate::data::linebuf::{self};
use crate::data::merge::{self, Run, RunFile};
use crate::error::{FailureKind, TaskError};
use crate::interrupt::io_failure;
use crate::store::workdir::{AttemptGuard, WorkDir};
use crate::task::process::{ChildOutcome, InputCount};
use crate::task::program::{Context, Program};
use crate::task::report::TaskReport;
use std::fs::{self};
use std::io::Write;

use super::attempt::{Attempt, write_output, write_part};
use crate::task::TaskId;
use crate::task::commit::committed_report;
use crate::task::map::MapIndex;

/// The open sorted runs of one partition, and the scratch directory of
/// any intermediate merges (removed when dropped).
pub(super) struct PartitionRuns {
    pub(super) runs: Vec<Run>,
    /// The records and bytes the runs hold, from their indexes: what a
    /// reducer that stopped reading early was offered all the same.
    pub(super) size: (u64, u64),
    pub(super) _scratch: Option<AttemptGuard>,
}

/// Opens the sorted runs of partition `p`: the shuffle's merged file when
/// `gmr shuffle` made one, else the partition's segment of every map output
/// (merged down first, in the attempt's scratch directory, when there are
/// more than one merge may open).
pub(super) fn partition_runs(
    at: &Attempt,
    p: u32,
    from_shuffle: bool,
) -> Result<PartitionRuns, TaskError> {
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
        // A map task skipped after its retries (--max-failed-tasks) has
        // no output to merge.
        if wd.skipped_path(&TaskId::Map(i).to_string()).exists() {
            continue;
        }
        let index: MapIndex = crate::files::read_json(&WorkDir::map_index(&dir)).map_err(|e| {
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
        (records + seg.records, bytes + seg.text_len())
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

pub(super) fn run_shuffle(at: &Attempt, p: u32) -> Result<TaskReport, TaskError> {
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

pub(super) fn run_reduce(at: &Attempt, p: u32) -> Result<TaskReport, TaskError> {
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
    let eol = order.key.eol;
    // A command gets its input a pipe's worth at a time; a built-in
    // takes large blocks whole.
    let block = match reducer {
        Program::Shell(_) => linebuf::PIPE_BLOCK,
        Program::Builtin(_) => linebuf::BLOCK,
    };
    let reduce_into = |out: &mut dyn Write| {
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
                    lines.0 += memchr::memchr_iter(eol, chunk).count() as u64;
                    lines.1 += chunk.len() as u64;
                    lines.2 = chunk.last() != Some(&eol);
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
    // The next step's mapper fused into the reducers: the reducer's
    // output is its input, and its output is the part.
    let reduce = |out: &mut dyn Write| match &at.job.then_mapper {
        None => reduce_into(out),
        Some(mapper) => chained(at, p, &env, mapper, reduce_into, out),
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
        None => write_output(at, p as usize, reduce)?,
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

/// What a reduce attempt made: its outcome (the reducer's input and
/// counters), and the records and bytes of the part.
type Reduced = (ChildOutcome, u64, u64);

/// Runs the fused step's `mapper` on what `reduce_into` makes (the
/// reducer's output, fed to the mapper as it comes) into `out`. The
/// outcome is the reducer's, with the mapper's counters added; the part
/// is the mapper's output. A failing reducer is the error, not the feed
/// it broke.
fn chained(
    at: &Attempt,
    p: u32,
    env: &[(String, String)],
    mapper: &Program,
    reduce_into: impl FnOnce(&mut dyn Write) -> Result<Reduced, TaskError> + Send,
    out: &mut dyn Write,
) -> Result<Reduced, TaskError> {
    let then = at.job.spec.then_map.as_ref().expect("a fused step");
    let eol = at.job.spec.key.eol;
    // Its stderr is kept apart from the reducer's.
    let log = at.wd.log_path(&format!("{}.mapper", at.name), at.attempt);
    let ctx = Context {
        ok_exit: &then.ok_exit,
        ..at.context("mapper", env, &log)
    };
    let reduced: std::sync::Mutex<Option<Result<Reduced, TaskError>>> = Default::default();
    let feed = |w: &mut dyn Write| {
        let result = reduce_into(w);
        let fed = match &result {
            Ok(_) => Ok(()),
            Err(e) => Err(std::io::Error::other(e.message.clone())),
        };
        *reduced.lock().unwrap_or_else(|e| e.into_inner()) = Some(result);
        fed
    };
    let mut lines = (0u64, 0u64, false);
    let mapped = mapper.run(&ctx, feed, |chunk| {
        lines.0 += memchr::memchr_iter(eol, chunk).count() as u64;
        lines.1 += chunk.len() as u64;
        lines.2 = chunk.last() != Some(&eol);
        out.write_all(chunk)
    });
    let reduced = reduced.into_inner().unwrap_or_else(|e| e.into_inner());
    let (mut outcome, _, _) = match reduced {
        Some(Err(e)) => return Err(e),
        Some(Ok(r)) => r,
        None => {
            return Err(mapped
                .err()
                .unwrap_or_else(|| TaskError::task("the reducer never ran")));
        }
    };
    let mapped = mapped.map_err(|mut e| {
        e.message = format!("{} (after the reducer of partition {p})", e.message);
        e
    })?;
    crate::task::report::add_counters(&mut outcome.counters, &mapped.counters);
    outcome.status = mapped.status.or(outcome.status);
    Ok((outcome, lines.0 + u64::from(lines.2), lines.1))
}
