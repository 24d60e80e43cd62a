//! What the job adds up: the totals of each phase, the job's report
//! (`report.json`), and the summary printed at the end.

use crate::observe::units::{count, human_bytes};
use crate::task::report::{Counters, TaskReport};
use serde::{Deserialize, Serialize};

/// The totals of one phase (map, shuffle or reduce).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct PhaseTotals {
    /// Tasks committed.
    pub(crate) tasks: u64,
    /// Tasks reused from an earlier run (`--resume`), among `tasks`.
    #[serde(default)]
    pub(crate) reused: u64,
    /// Map tasks skipped after their retries (`--max-failed-tasks`), not
    /// among `tasks`.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub(crate) skipped: u64,
    /// Failed attempts that were retried.
    pub(crate) retries: u64,
    /// Backup attempts started for stragglers.
    pub(crate) backups: u64,
    /// Attempts killed for showing no sign of life (`--task-timeout`).
    pub(crate) timeouts: u64,
    /// Sum of the tasks' `records_in`.
    pub(crate) records_in: u64,
    /// Sum of the tasks' `records_read`.
    pub(crate) records_read: u64,
    /// Sum of the tasks' `bytes_in`.
    pub(crate) bytes_in: u64,
    /// Sum of the tasks' `records_out`.
    pub(crate) records_out: u64,
    /// Sum of the tasks' `bytes_out`.
    pub(crate) bytes_out: u64,
    /// The largest of the tasks' `bytes_out`: with the mean, the skew of
    /// the partitions.
    #[serde(default)]
    pub(crate) largest_out: u64,
    /// Sum of the tasks' `command_records_out`.
    pub(crate) command_records_out: u64,
    /// Sum of the tasks' spills.
    pub(crate) spills: u64,
    /// Sum of combiner input records.
    pub(crate) combine_in: u64,
    /// Sum of combiner output records.
    pub(crate) combine_out: u64,
    /// Sum of runs written without the combiner.
    pub(crate) combine_skipped: u64,
    /// Wall time of the phase, in milliseconds.
    pub(crate) millis: u64,
}

impl PhaseTotals {
    /// The largest task output over the mean (1 when all are equal; 0
    /// when there is none).
    pub(crate) fn skew(&self) -> f64 {
        if self.bytes_out == 0 {
            return 0.0;
        }
        self.largest_out as f64 * self.tasks as f64 / self.bytes_out as f64
    }

    /// Adds one committed task.
    pub(crate) fn add(&mut self, r: &TaskReport) {
        self.tasks += 1;
        self.records_in += r.records_in;
        self.records_read += r.records_read;
        self.bytes_in += r.bytes_in;
        self.records_out += r.records_out;
        self.bytes_out += r.bytes_out;
        self.largest_out = self.largest_out.max(r.bytes_out);
        self.command_records_out += r.command_records_out;
        self.spills += r.spills;
        self.combine_in += r.combine_in;
        self.combine_out += r.combine_out;
        self.combine_skipped += r.combine_skipped;
    }
}

/// For serde: a zero count is left out.
fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// Partitions whose largest is this many times the mean are worth a line
/// of the summary even without `--total-order`.
const SKEW_WORTH_SAYING: f64 = 2.0;

/// A failed attempt that was retried, as the summary names it.
pub(crate) struct Retried<'a> {
    pub(crate) task: &'a str,
    pub(crate) attempt: u32,
    pub(crate) host: &'a str,
    /// Why it failed (its first line is shown).
    pub(crate) error: &'a str,
}

/// How many failed attempts the summary names; the report has them all.
const FAILURES_NAMED: usize = 5;

/// The summary of `what` (`job`, `step 2 of 3`) printed on stderr at the
/// end of a run; `total_order`
/// always shows the skew of the parts. `failed` are this run's failed
/// attempts that were retried (or lost with their host), oldest first:
/// each is named, with why it failed.
pub(crate) fn summary(
    what: &str,
    elapsed: std::time::Duration,
    map: &PhaseTotals,
    reduce: Option<&PhaseTotals>,
    counters: &Counters,
    total_order: bool,
    failed: &[Retried],
) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let all_reused = |t: &PhaseTotals| t.reused > 0 && t.reused == t.tasks;
    if all_reused(map) && reduce.is_none_or(all_reused) {
        let _ = writeln!(
            s,
            "gmr: {what} done in an earlier run: every task reused, none ran"
        );
    } else {
        let _ = writeln!(s, "gmr: {what} done in {:.2} s", elapsed.as_secs_f64());
    }
    let mut phase = |name: &str, t: &PhaseTotals| {
        let _ = write!(
            s,
            "  {name:<7}{:>6} {:<5} {:>12} records in ({}) {:>12} records out ({}) {:>6.2} s",
            t.tasks,
            if t.tasks == 1 { "task" } else { "tasks" },
            t.records_in,
            human_bytes(t.bytes_in),
            t.records_out,
            human_bytes(t.bytes_out),
            t.millis as f64 / 1000.0
        );
        if t.skipped > 0 {
            let _ = write!(s, ", {} SKIPPED (--max-failed-tasks)", t.skipped);
        }
        if t.reused > 0 {
            let _ = write!(s, ", {} reused from the earlier run", t.reused);
        }
        if t.records_read < t.records_in {
            let _ = write!(
                s,
                ", {} read (a command stopped reading early)",
                t.records_read
            );
        }
        if t.spills > 0 {
            let _ = write!(s, ", {}", count(t.spills, "spill"));
        }
        if t.combine_in > 0 {
            let _ = write!(s, ", combiner {} → {}", t.combine_in, t.combine_out);
        }
        if t.combine_skipped > 0 {
            let _ = write!(
                s,
                ", {} not combined (the combiner would not shrink them)",
                count(t.combine_skipped, "run")
            );
        }
        if t.retries > 0 {
            let _ = write!(s, ", {} retried", count(t.retries, "failed attempt"));
        }
        if t.backups > 0 {
            let _ = write!(s, ", {}", count(t.backups, "backup attempt"));
        }
        if t.timeouts > 0 {
            let _ = write!(s, ", {} timed out", t.timeouts);
        }
        s.push('\n');
    };
    phase("map", map);
    if let Some(r) = reduce {
        phase("reduce", r);
        let skew = r.skew();
        if r.tasks > 1 && (total_order || skew >= SKEW_WORTH_SAYING) {
            let _ = writeln!(
                s,
                "  parts   largest {} = {skew:.2}x the mean{}",
                human_bytes(r.largest_out),
                if total_order { " (total order)" } else { "" }
            );
        }
    }
    for f in failed.iter().take(FAILURES_NAMED) {
        let why = f.error.lines().next().unwrap_or("failed");
        let _ = writeln!(
            s,
            "  retried {} after attempt {} on {}: {why}",
            f.task, f.attempt, f.host
        );
    }
    if failed.len() > FAILURES_NAMED {
        let _ = writeln!(
            s,
            "  retried ... and {} more (gmr status or the report has them)",
            count((failed.len() - FAILURES_NAMED) as u64, "failed attempt")
        );
    }
    for (name, value) in counters {
        let _ = writeln!(s, "  counter {name} = {value}");
    }
    s
}
