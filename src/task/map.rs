//! A map task: feed its split to the mapper, partition and sort the
//! output (through [`crate::task::sorter`]), or with `-R 0` write it as the
//! job's part, order kept.

use crate::data::builtin::Builtin;
use crate::data::record::LineSplitter;
use crate::data::sort::Segment;
use crate::data::split::{self, Split};
use crate::error::{FailureKind, TaskError};
use crate::interrupt::io_failure;
use crate::store::resources::Feeding;
use crate::store::workdir::{self, AttemptGuard, WorkDir};
use crate::task::process::{ChildOutcome, InputCount};
use crate::task::program::Program;
use crate::task::report::{TaskReport, add_counters};
use crate::task::sorter::Sorter;
use serde::{Deserialize, Serialize};
use std::fs::{self};
use std::io::{self, Write};

use super::attempt::{Attempt, write_output};

pub(super) struct MapTask<'a> {
    pub(super) at: Attempt<'a>,
    pub(super) index: usize,
    pub(super) split: &'a Split,
}

impl MapTask<'_> {
    pub(super) fn run(&self) -> Result<TaskReport, TaskError> {
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
    pub(super) fn run_mapper(
        &self,
        mapper: &Program,
        mut on_output: impl FnMut(Option<&[u8]>) -> io::Result<()>,
    ) -> Result<ChildOutcome, TaskError> {
        let log = self.at.log("mapper");
        let stamps = &self.at.job.spec.inputs;
        let eol = self.at.job.spec.key.eol;
        // Counted until the mappers are done, not only until their input
        // is in the pipe.
        let mut feeding = self.at.res.feeding();
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
                    let w = &mut Counted::new(w, &mut feeding);
                    for piece in self.split.pieces() {
                        if !split::feed(piece, stamps, eol, w)? {
                            w.write_all(&[eol])?;
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
                    |w: &mut dyn Write| {
                        let w = &mut Counted::new(w, &mut feeding);
                        split::feed(piece, stamps, eol, w).map(drop)
                    },
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
    pub(super) fn read_input(&self, sorter: &mut Sorter) -> Result<ChildOutcome, TaskError> {
        let mut input = InputCount::default();
        let mut feeding = self.at.res.feeding();
        for piece in self.split.pieces() {
            let failed = |e: io::Error| {
                let e = TaskError::io(format!("mapper {}: {e}", Builtin::Identity.name()), &e);
                at_piece(e, piece)
            };
            let mut reader = split::Piece::open(piece, &self.at.job.spec.inputs).map_err(failed)?;
            let (records, bytes) = sorter
                .read_input(piece.start, |buf, max| {
                    let n = reader.read_into(buf, max).map_err(failed)?;
                    feeding.add(n as u64);
                    Ok(n)
                })
                .map_err(|e| at_piece(e, piece))?;
            reader.finish().map_err(failed)?;
            input.add(&InputCount::whole(records, bytes));
        }
        Ok(ChildOutcome::fed(input))
    }

    /// `-R 0`: the mapper's output is part N of the job, as it printed it,
    /// a last line without a newline ended with one.
    pub(super) fn run_map_only(
        &self,
        mapper: &Program,
    ) -> Result<(TaskReport, InputCount), TaskError> {
        let eol = self.at.job.spec.key.eol;
        let end = [eol];
        let ((outcome, records, bytes), part_bytes) = write_output(&self.at, self.index, |out| {
            let mut counts = (0u64, 0u64, false);
            let outcome = self.run_mapper(mapper, |output| {
                // One mapper's last line is not the next one's first.
                let chunk = output.unwrap_or(if counts.2 { &end } else { &[] });
                counts.0 += memchr::memchr_iter(eol, chunk).count() as u64;
                counts.1 += chunk.len() as u64;
                counts.2 = chunk.last().map_or(counts.2, |&b| b != eol);
                out.write_all(chunk)
            })?;
            // Nor the part's last line the next part's first: parts
            // are read one after another.
            if counts.2 {
                out.write_all(&end)
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
    pub(super) fn run_sorted(
        &self,
        mapper: &Program,
    ) -> Result<(TaskReport, InputCount), TaskError> {
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
            let max = at.job.spec.max_record_len();
            let mut lines = LineSplitter::with_max(max).ending(at.job.spec.key.eol);
            let mut spill_error = None;
            let outcome = self.run_mapper(mapper, |output| {
                let Some(chunk) = output else {
                    // A mapper's last line, if it had no newline.
                    return lines.finish(|line| sorter.push(line));
                };
                lines.feed_within(chunk, |bytes, len| sorter.push_within(bytes, len))?;
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
        // Neither the index nor the runs are synced: a resumed job reuses
        // them only when the index parses and the runs have the length it
        // gives (`task::commit`). The task's report, its commit record, is.
        let index_path = WorkDir::map_index(attempt_dir.path());
        crate::files::write_private(&index_path, &crate::files::json_bytes(&index))
            .map_err(io_failure("cannot write", &index_path))?;
        report.records_out = index.segments.iter().map(|s| s.records).sum();
        report.bytes_out = index.segments.iter().map(|s| s.text_len()).sum();
        report.counters = outcome.counters;
        report.status = outcome.status;
        at.fence()?;
        workdir::commit_unsynced(attempt_dir.path(), &target)?;
        attempt_dir.keep();
        Ok((report, outcome.input))
    }
}

/// A mapper's failure, with the piece of input it was reading when the
/// failure is the task's (a retry may get past it), or when a fatal one
/// does not name the file itself (a record past --max-record).
pub(super) fn at_piece(mut e: TaskError, piece: &Split) -> TaskError {
    let path = piece.path.display().to_string();
    let at = format!(" (input {path} bytes {}..{})", piece.start, piece.end);
    if e.message.contains(&at) {
        // Placed already (an error of a read, wrapped once more).
        return e;
    }
    let fatal = e.kind == FailureKind::Fatal && !e.message.contains(&path);
    if fatal || matches!(e.kind, FailureKind::Task | FailureKind::Timeout) {
        e.message.push_str(&at);
    }
    e
}

/// The index of a committed map output: where each partition lies in `out`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct MapIndex {
    /// The job that made it.
    pub(crate) job: String,
    /// Segment `p` of `out` holds partition `p`, sorted.
    pub(crate) segments: Vec<Segment>,
}

/// The writer a mapper is fed through, counting what it takes into the
/// process's running total of input fed (the progress of running tasks).
struct Counted<'w, 'f, 'r> {
    inner: &'w mut dyn Write,
    feeding: &'f mut Feeding<'r>,
}

impl<'w, 'f, 'r> Counted<'w, 'f, 'r> {
    fn new(inner: &'w mut dyn Write, feeding: &'f mut Feeding<'r>) -> Counted<'w, 'f, 'r> {
        Counted { inner, feeding }
    }
}

impl Write for Counted<'_, '_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.feeding.add(n as u64);
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        self.inner.write_all(buf)?;
        self.feeding.add(buf.len() as u64);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}
