//! How gmr writes sizes, durations and counts for people: one set of units
//! for the progress bar, the status line, `gmr status`, the summary and
//! the HTML report, so that the same input never reads as two sizes.
//!
//! Sizes are binary (KiB, MiB, GiB), as the size flags take them
//! (`--split-size 64M` is 64 MiB).

/// `512 B`, `1.5 KiB`, `2.9 MiB`, `1.2 GiB`.
pub(crate) fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// `12.3s`, `3m05s`, `1h02m`.
pub(crate) fn human_duration(secs: f64) -> String {
    let s = secs.max(0.0);
    if s < 60.0 {
        format!("{s:.1}s")
    } else if s < 3600.0 {
        format!("{}m{:02}s", (s / 60.0) as u64, (s % 60.0) as u64)
    } else {
        format!(
            "{}h{:02}m",
            (s / 3600.0) as u64,
            ((s % 3600.0) / 60.0) as u64
        )
    }
}

/// `1 task`, `2 tasks`: `n` and the noun, plural unless `n` is 1.
pub(crate) fn count(n: u64, noun: &str) -> String {
    format!("{n} {}", plural(n, noun))
}

/// The noun, plural unless `n` is 1 (`attempt` -> `attempts`).
pub(crate) fn plural(n: u64, noun: &str) -> String {
    if n == 1 {
        noun.to_string()
    } else {
        format!("{noun}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_are_binary() {
        assert_eq!(human_bytes(512), "512 B");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(3_060_000), "2.9 MiB");
        assert_eq!(human_bytes(64 << 20), "64.0 MiB");
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count(1, "task"), "1 task");
        assert_eq!(count(0, "task"), "0 tasks");
        assert_eq!(count(2, "attempt"), "2 attempts");
    }

    #[test]
    fn durations_read_as_clock_time() {
        assert_eq!(human_duration(8.25), "8.2s");
        assert_eq!(human_duration(65.0), "1m05s");
        assert_eq!(human_duration(3725.0), "1h02m");
    }
}
