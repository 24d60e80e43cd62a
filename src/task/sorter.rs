//! What a map task does with its mapper's output: takes it straight into
//! the sort buffer, through a built-in combiner's hash table, or, when
//! lines repeat, through a table that counts identical lines; sorts and
//! spills the buffer as a run when it is full, running a command combiner
//! on each run; and merges the runs into the task's runs file, one segment
//! per partition (docs/contracts.md §6).

use crate::data::aggregate::{self, Aggregator};
use crate::data::linebuf::{LineBlock, WRITE_BUFFER};
use crate::data::merge::{self, RunFile};
use crate::data::record::{LineSplitter, TooLong};
use crate::data::sort::{Segment, SortBuffer};
use crate::error::TaskError;
use crate::interrupt::io_failure;
use crate::store::resources::Resources;
use crate::store::workdir::WorkDir;
use crate::task::job::{Combiner, CombinerPayoff, Job};
use crate::task::program::{Context, Program};
use crate::task::report::TaskReport;
use std::fs;
use std::io::{self, BufWriter};
use std::path::{Path, PathBuf};

/// Records a map task takes before it decides whether counting identical
/// lines pays.
const GROUP_TRIAL: usize = 1 << 14;

/// Bytes of input read at a time by [`Sorter::read_input`].
const READ_CHUNK: usize = 1 << 20;

/// How mapper output reaches the sort buffer.
enum Intake {
    /// Straight in.
    Direct,
    /// Through a built-in combiner's table.
    Combine(Aggregator),
    /// Straight in, while the hashes of the first [`GROUP_TRIAL`] lines
    /// are kept to tell whether they repeat.
    Trial(Vec<u64>),
    /// Identical lines counted first ([`Aggregator::lines`]): a lookup per
    /// record, which output that repeats lines pays back in sorting.
    Group(Aggregator),
}

/// The sort buffer of a map task and the runs it spilled.
pub(crate) struct Sorter<'a> {
    res: &'a Resources,
    buffer: SortBuffer,
    limit: usize,
    dir: &'a Path,
    spills: Vec<(PathBuf, Vec<Segment>)>,
    combiner: Option<(&'a Program, &'a Context<'a>, &'a CombinerPayoff)>,
    intake: Intake,
    report: TaskReport,
    /// The longest record taken (`--max-record`).
    max_record: usize,
}

impl<'a> Sorter<'a> {
    /// A sorter for a map task of `job` that spills into `dir`, with a sort
    /// buffer from `res`'s pool. A table combiner aggregates records as
    /// they arrive; a command combiner runs, in `ctx`, on each sorted run.
    pub(crate) fn new(
        job: &'a Job,
        res: &'a Resources,
        ctx: &'a Context<'a>,
        dir: &'a Path,
    ) -> Sorter<'a> {
        let spec = &job.spec;
        let limit = (spec.sort_buffer as usize).min(crate::data::sort::MAX_ARENA);
        let (intake, combiner) = match &job.combiner {
            Combiner::Table(b) => (
                Intake::Combine(Aggregator::new(*b, spec.key, limit / 2)),
                None,
            ),
            Combiner::None => (Intake::Trial(Vec::new()), None),
            Combiner::Command(command) => (
                Intake::Trial(Vec::new()),
                Some((command, ctx, &job.combiner_payoff)),
            ),
        };
        Sorter {
            res,
            buffer: res.buffers.take(job.order.clone(), spec.reducers, limit),
            limit,
            dir,
            spills: Vec::new(),
            combiner,
            intake,
            report: TaskReport::default(),
            max_record: spec.max_record_len(),
        }
    }

    /// Spills the buffer when it holds as much as it may.
    pub(crate) fn spill_if_full(&mut self) -> Result<(), TaskError> {
        if self.bytes() >= self.limit {
            self.spill()?;
        }
        Ok(())
    }

    /// Writes the task's runs file `out` in `dir`, gives the buffer back
    /// for the next task, and returns each partition's segment and the
    /// record counts.
    pub(crate) fn finish(mut self) -> Result<(Vec<Segment>, TaskReport), TaskError> {
        let segments = self.write_out()?;
        self.res.buffers.give_back(self.buffer);
        Ok((segments, self.report))
    }

    /// Takes the output of a mapper that is `cat`: its input, which
    /// `read(buf, max)` appends to `buf`, at most `max` bytes at a time,
    /// returning how many (0 at the input's end). Once records go straight
    /// into the sort buffer ([`Intake::Direct`]) they are read into it
    /// ([`SortBuffer::read_lines`]) rather than copied there one by one.
    /// Returns the records and bytes taken; a last line without a `\n` is
    /// a record.
    pub(crate) fn read_input(
        &mut self,
        start: u64,
        mut read: impl FnMut(&mut Vec<u8>, usize) -> Result<usize, TaskError>,
    ) -> Result<(u64, u64), TaskError> {
        let (mut records, mut bytes) = (0u64, 0u64);
        let mut chunk = Vec::new();
        let max = self.max_record;
        let mut lines = LineSplitter::for_input(max, start).ending(self.buffer.order().key.eol);
        let failed = |e: io::Error| TaskError::io(format!("mapper output: {e}"), &e);
        loop {
            let n = if matches!(self.intake, Intake::Direct) && self.buffer.reads_lines() {
                // A line begun in `chunk` goes on in the sort buffer.
                let begun = lines.take_partial();
                if !begun.is_empty() {
                    self.buffer.read_lines(
                        begun.len(),
                        |arena, _| -> Result<usize, TaskError> {
                            arena.extend_from_slice(&begun);
                            Ok(begun.len())
                        },
                    )?;
                }
                let (n, added, longest) = self.buffer.read_lines(READ_CHUNK, &mut read)?;
                if longest > max {
                    // Ended within this read: where is not kept.
                    let too_long = TooLong {
                        max: max as u64,
                        at: None,
                    };
                    return Err(failed(io::Error::from(too_long)));
                }
                let pending = self.buffer.pending_len();
                if pending > max {
                    // `start` is where the input began in its file.
                    let at = start + bytes + n as u64 - pending as u64;
                    let too_long = TooLong {
                        max: max as u64,
                        at: Some(at),
                    };
                    return Err(failed(io::Error::from(too_long)));
                }
                records += added as u64;
                self.report.command_records_out += added as u64;
                n
            } else {
                chunk.clear();
                let n = read(&mut chunk, READ_CHUNK)?;
                lines
                    .feed(&chunk, |line| {
                        records += 1;
                        self.push(line)
                    })
                    .map_err(failed)?;
                n
            };
            if n == 0 {
                break;
            }
            bytes += n as u64;
            self.spill_if_full()?;
        }
        // A last line without its `\n`: in the sort buffer or in `lines`.
        if self.buffer.reads_lines() && self.buffer.end_line() {
            records += 1;
            self.report.command_records_out += 1;
        }
        lines
            .finish(|line| {
                records += 1;
                self.push(line)
            })
            .map_err(failed)?;
        Ok((records, bytes))
    }

    /// Takes one record of mapper output.
    #[inline]
    pub(crate) fn push(&mut self, line: &[u8]) -> io::Result<()> {
        self.push_within(line, line.len())
    }

    /// Takes the record `bytes[..len]` of mapper output; the bytes after
    /// it (see [`LineSplitter::feed_within`]) speed up a table's lookup.
    #[inline]
    pub(crate) fn push_within(&mut self, bytes: &[u8], len: usize) -> io::Result<()> {
        let line = &bytes[..len];
        self.report.command_records_out += 1;
        match &mut self.intake {
            Intake::Direct => self.buffer.push(line),
            Intake::Combine(agg) => {
                self.report.combine_in += 1;
                return agg.push_within(bytes, len);
            }
            Intake::Trial(hashes) => {
                hashes.push(aggregate::hash_line(line));
                self.buffer.push(line);
                if hashes.len() == GROUP_TRIAL {
                    self.end_trial();
                }
            }
            Intake::Group(table) => return table.push_within(bytes, len),
        }
        Ok(())
    }

    /// Ends the trial: lines are counted from then on when at most half of
    /// those seen were distinct.
    fn end_trial(&mut self) {
        let Intake::Trial(hashes) = &mut self.intake else {
            return;
        };
        let seen = hashes.len();
        hashes.sort_unstable();
        hashes.dedup();
        self.intake = if hashes.len() * 2 <= seen {
            Intake::Group(Aggregator::lines(self.buffer.order().key, self.limit / 2))
        } else {
            Intake::Direct
        };
    }

    /// Memory held: buffered records or aggregated keys.
    fn bytes(&self) -> usize {
        let table = match &self.intake {
            Intake::Direct | Intake::Trial(_) => 0,
            Intake::Combine(table) | Intake::Group(table) => table.bytes(),
        };
        // Saturating: a full aggregation table reports usize::MAX.
        self.buffer.bytes().saturating_add(table)
    }

    /// Moves aggregated keys (or counted lines) into the sort buffer.
    fn drain_intake(&mut self) -> Result<(), TaskError> {
        let err = |e: io::Error| TaskError::io(format!("combiner: {e}"), &e);
        match &mut self.intake {
            Intake::Direct | Intake::Trial(_) => {}
            Intake::Combine(agg) => {
                self.report.combine_out += agg.drain_into(&mut self.buffer).map_err(err)?
            }
            Intake::Group(table) => {
                // Lines that stopped repeating go straight in from now on.
                let seen = table.records();
                let distinct = table.drain_into(&mut self.buffer).map_err(err)?;
                if distinct * 2 > seen {
                    self.intake = Intake::Direct;
                }
            }
        }
        Ok(())
    }

    /// Sorts (and combines) the buffer and writes it to `path`.
    fn write_buffer(&mut self, path: &Path) -> Result<Vec<Segment>, TaskError> {
        self.buffer.sort();
        let combiner = self.combiner.and_then(|(combiner, ctx, payoff)| {
            let distinct = self.buffer.distinct();
            let worth = payoff.worth_running(distinct);
            self.report.combine_skipped += u64::from(!worth);
            worth.then_some((combiner, ctx, payoff, distinct))
        });
        if let Some((combiner, ctx, payoff, distinct)) = combiner {
            let mut combined = SortBuffer::new(self.buffer.order().clone(), self.buffer.reducers());
            let eol = self.buffer.order().key.eol;
            let mut lines = LineSplitter::with_max(self.max_record).ending(eol);
            let buffer = &self.buffer;
            self.report.combine_in += buffer.len() as u64;
            combiner.run(
                ctx,
                |w| {
                    let mut block = LineBlock::new(w).ending(eol);
                    buffer.for_each(|l| block.line(l))?;
                    block.flush()
                },
                |chunk| {
                    lines.feed(chunk, |l| {
                        combined.push(l);
                        Ok(())
                    })
                },
            )?;
            lines
                .finish(|l| -> Result<(), ()> {
                    combined.push(l);
                    Ok(())
                })
                .expect("infallible");
            // A combiner's output need not be sorted (nor keep every key in
            // its partition): partition and sort it again.
            combined.sort();
            self.report.combine_out += combined.len() as u64;
            payoff.record(distinct, combined.distinct());
            // Write the combined records; the task's own buffer, reserved
            // at full size, takes the next records (and goes back to the
            // pool at the end, not this smaller one).
            std::mem::swap(&mut self.buffer, &mut combined);
            let written = self.write_sorted(path);
            std::mem::swap(&mut self.buffer, &mut combined);
            self.buffer.clear();
            return written;
        }
        let written = self.write_sorted(path);
        self.buffer.clear();
        written
    }

    /// Writes the sorted buffer to `path` (write_runs writes in large
    /// blocks: the file needs no buffer of its own).
    fn write_sorted(&self, path: &Path) -> Result<Vec<Segment>, TaskError> {
        let mut out = crate::files::create_new(path).map_err(io_failure("cannot create", path))?;
        let segments = self
            .buffer
            .write_runs(&mut out, 0)
            .map_err(io_failure("cannot write", path))?;
        // The runs file is committed: its close is checked. A spill is
        // only ever read by this attempt.
        if path == WorkDir::map_out(self.dir) {
            crate::files::close_file(out, false).map_err(io_failure("cannot write", path))?;
        }
        Ok(segments)
    }

    /// Writes the buffer as one more spilled run.
    fn spill(&mut self) -> Result<(), TaskError> {
        self.drain_intake()?;
        let path = WorkDir::spill_path(self.dir, self.spills.len());
        let segments = self.write_buffer(&path)?;
        self.spills.push((path, segments));
        self.report.spills += 1;
        Ok(())
    }

    /// Writes the final runs file `out` and returns its segments.
    fn write_out(&mut self) -> Result<Vec<Segment>, TaskError> {
        self.drain_intake()?;
        let out_path = WorkDir::map_out(self.dir);
        if self.spills.is_empty() {
            return self.write_buffer(&out_path);
        }
        if !self.buffer.is_empty() {
            self.spill()?;
        }
        let mut out = BufWriter::with_capacity(
            WRITE_BUFFER,
            crate::files::create_new(&out_path).map_err(io_failure("cannot create", &out_path))?,
        );
        let mut segments = Vec::new();
        let mut pos = 0u64;
        for p in 0..self.buffer.reducers() as usize {
            let files: Vec<RunFile> = self
                .spills
                .iter()
                .filter(|(_, segs)| segs[p].records > 0)
                .map(|(path, segs)| RunFile {
                    path: path.clone(),
                    segment: segs[p],
                })
                .collect();
            let opened = merge::open_narrowed(
                self.buffer.order(),
                files,
                self.res.fan_in,
                self.dir,
                &WorkDir::merge_stem(Some(p as u32)),
            )
            .map_err(io_failure("cannot merge spills in", self.dir))?;
            // Intermediate merges are unlinked now; the open runs keep them.
            for path in &opened.intermediate {
                let _ = fs::remove_file(path);
            }
            let segment = merge::merge_runs(self.buffer.order(), opened.runs, &mut out, pos)
                .map_err(io_failure("cannot merge spills into", &out_path))?;
            pos = segment.end;
            segments.push(segment);
        }
        let out = out
            .into_inner()
            .map_err(|e| e.into_error())
            .map_err(io_failure("cannot write", &out_path))?;
        crate::files::close_file(out, false).map_err(io_failure("cannot write", &out_path))?;
        for (path, _) in &self.spills {
            let _ = fs::remove_file(path);
        }
        Ok(segments)
    }
}
