//! The progress display: one indicatif bar per phase, on stderr, only when
//! stderr is a terminal and `--quiet` is off (docs/contracts.md §7). In a pipe or a
//! log file nothing is drawn, so no escape codes end up there.

use crate::error::TaskError;
use crate::exec::health::Health;
use crate::observe::observer::{Attempt, Observer};
use crate::task::report::TaskReport;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Progress of one phase.
pub(crate) struct Progress<'a> {
    bar: Option<ProgressBar>,
    /// Not `--quiet`: host events are shown even without a bar.
    enabled: bool,
    failed: AtomicU64,
    phase: &'static str,
    /// In a distributed run, the hosts, to show how many are up.
    hosts: Option<&'a Health>,
}

impl<'a> Progress<'a> {
    /// A display for a phase of `tasks` tasks, drawing only when `enabled`
    /// and stderr is a terminal. `bytes` is the phase's input size when the
    /// phase is measured in bytes (map), for throughput and ETA.
    pub(crate) fn new(
        phase: &'static str,
        tasks: u64,
        bytes: Option<u64>,
        enabled: bool,
        hosts: Option<&'a Health>,
    ) -> Progress<'a> {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let (len, template) = match bytes {
                Some(b) => (
                    b,
                    "{prefix:>7} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta} {msg}",
                ),
                None => (tasks, "{prefix:>7} [{bar:30}] {pos}/{len} {msg}"),
            };
            let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(phase);
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        let progress = Progress {
            bar,
            enabled,
            failed: AtomicU64::new(0),
            phase,
            hosts,
        };
        progress.show_status(None);
        progress
    }

    /// The bar's message: hosts up (distributed runs) and failed attempts.
    fn show_status(&self, last_failure_on: Option<&str>) {
        let Some(bar) = &self.bar else { return };
        let mut parts = Vec::new();
        if let Some(health) = self.hosts {
            let (up, all) = health.up();
            parts.push(format!("hosts up {up}/{all}"));
        }
        let failed = self.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let on = last_failure_on
                .map(|h| format!(" (last on {h})"))
                .unwrap_or_default();
            parts.push(format!("{failed} failed attempt(s), retried{on}"));
        }
        bar.set_message(parts.join(", "));
    }

    /// Removes the bar.
    pub(crate) fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress<'_> {
    fn finished(&self, a: &Attempt, result: &Result<TaskReport, TaskError>, _elapsed: Duration) {
        let Some(bar) = &self.bar else { return };
        match result {
            Ok(r) => {
                let by_bytes = bar.length() != Some(0) && self.phase == "map";
                bar.inc(if by_bytes { r.bytes_in.max(1) } else { 1 });
            }
            Err(_) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                self.show_status(Some(a.host));
            }
        }
    }

    fn host_event(&self, _host: &str, message: &str) {
        self.show_status(None);
        match &self.bar {
            Some(bar) => bar.println(format!("gmr: {message}")),
            None if self.enabled => eprintln!("gmr: {message}"),
            None => {}
        }
    }
}
