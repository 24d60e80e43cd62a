//! What a task reports: records and bytes in and out, and user counters
//! from `reporter:counter:` lines. The job's totals are
//! [`crate::observe::summary`]'s.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// User counters, keyed `GROUP,NAME` (Hadoop Streaming's reporter syntax).
pub type Counters = BTreeMap<String, i64>;

/// What one committed task did.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    /// The identity of the job the task belongs to.
    pub job: String,
    /// The task id, e.g. `map-00003`.
    pub task: String,
    /// The attempt that committed (1-based).
    pub attempt: u32,
    /// Where it ran.
    pub host: String,
    /// The Slurm job step (`JOB.STEP`) or array element (`JOB_INDEX`) it
    /// ran as, when it ran under Slurm.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// Records offered to the task's command (split lines for a map task,
    /// merged records for a reduce).
    pub records_in: u64,
    /// Records the command took: fewer than offered when it stopped
    /// reading early (`head`), which is no error.
    pub records_read: u64,
    /// Bytes read.
    pub bytes_in: u64,
    /// Records written (after the combiner, for a map task).
    pub records_out: u64,
    /// Bytes written.
    pub bytes_out: u64,
    /// The length of the part file written (compressed with `--compress`),
    /// for a task that writes one: what `--resume` checks it against.
    #[serde(default)]
    pub part_bytes: u64,
    /// Lines the user's command printed (the mapper, for a map task).
    pub command_records_out: u64,
    /// Sorted runs spilled to disk past the sort buffer (map tasks).
    pub spills: u64,
    /// Records into and out of the combiner (map tasks with `-c`).
    pub combine_in: u64,
    /// Records out of the combiner.
    pub combine_out: u64,
    /// Sorted runs written without the combiner: it did not shrink the
    /// runs it was tried on (a command combiner is applied while it pays).
    #[serde(default)]
    pub combine_skipped: u64,
    /// User counters.
    pub counters: Counters,
    /// The last `reporter:status:` message.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// Wall time of the attempt, in milliseconds.
    pub millis: u64,
}

/// Parses one stderr line; returns true when it was a reporter line.
///
/// `reporter:counter:GROUP,NAME,AMOUNT` adds AMOUNT to `GROUP,NAME`;
/// `reporter:status:MSG` sets the status.
pub(crate) fn parse_reporter_line(
    line: &[u8],
    counters: &mut Counters,
    status: &mut Option<String>,
) -> bool {
    if let Some(rest) = line.strip_prefix(b"reporter:counter:") {
        let rest = String::from_utf8_lossy(rest);
        if let Some((name, amount)) = rest.rsplit_once(',')
            && let Ok(amount) = amount.trim().parse::<i64>()
            && name.contains(',')
        {
            *counters.entry(name.to_string()).or_default() += amount;
            return true;
        }
        false
    } else if let Some(msg) = line.strip_prefix(b"reporter:status:") {
        *status = Some(String::from_utf8_lossy(msg).into_owned());
        true
    } else {
        false
    }
}

/// Adds `from` into `into`.
pub(crate) fn add_counters(into: &mut Counters, from: &Counters) {
    for (k, v) in from {
        *into.entry(k.clone()).or_default() += v;
    }
}

/// `90s`, `10m`, `1h`, `250ms`: a duration as `--task-timeout` takes it.
pub(crate) fn human_duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    match ms {
        0..=999 => format!("{ms}ms"),
        _ if ms % 3_600_000 == 0 => format!("{}h", ms / 3_600_000),
        _ if ms % 60_000 == 0 => format!("{}m", ms / 60_000),
        _ if ms % 1000 == 0 => format!("{}s", ms / 1000),
        _ => format!("{:.1}s", d.as_secs_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reporter_lines_are_parsed() {
        let mut c = Counters::new();
        let mut s = None;
        assert!(parse_reporter_line(
            b"reporter:counter:Words,Seen,3",
            &mut c,
            &mut s
        ));
        assert!(parse_reporter_line(
            b"reporter:counter:Words,Seen,-1",
            &mut c,
            &mut s
        ));
        assert!(parse_reporter_line(
            b"reporter:status:half way",
            &mut c,
            &mut s
        ));
        assert!(!parse_reporter_line(
            b"reporter:counter:bad",
            &mut c,
            &mut s
        ));
        assert!(!parse_reporter_line(b"warning: x", &mut c, &mut s));
        assert_eq!(c.get("Words,Seen"), Some(&2));
        assert_eq!(s.as_deref(), Some("half way"));
    }
}
