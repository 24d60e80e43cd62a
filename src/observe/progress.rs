//! The progress display: one indicatif bar per phase, on stderr, only when
//! stderr is a terminal and `--quiet` is off (docs/contracts.md §7). In a pipe or a
//! log file nothing is drawn, so no escape codes end up there.
//!
//! The bar's figures are the status document's ([`Tracker::snapshot`]):
//! tasks done, bytes, throughput, ETA and elapsed time read the same in
//! the bar, in the status lines and in `gmr status`.

use crate::error::TaskError;
use crate::exec::health::Health;
use crate::observe::observer::{Attempt, Observer};
use crate::observe::tracker::Tracker;
use crate::observe::units::count;
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
    /// Where the figures come from.
    tracker: &'a Tracker,
    /// Where the last failed attempt ran.
    last_failure_on: std::sync::Mutex<Option<String>>,
}

impl<'a> Progress<'a> {
    /// A display for a phase, drawing only when `enabled` and stderr is a
    /// terminal; its figures are `tracker`'s, whose phase has begun. The
    /// bar measures the map phase in bytes, the others in tasks.
    pub(crate) fn new(
        phase: &'static str,
        enabled: bool,
        hosts: Option<&'a Health>,
        tracker: &'a Tracker,
    ) -> Progress<'a> {
        let bar = (enabled && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(1), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{prefix:>7} [{bar:30}] {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(phase);
            bar
        });
        let progress = Progress {
            bar,
            enabled,
            failed: AtomicU64::new(0),
            phase,
            hosts,
            tracker,
            last_failure_on: std::sync::Mutex::new(None),
        };
        progress.refresh();
        if let Some(bar) = &progress.bar {
            bar.enable_steady_tick(Duration::from_millis(200));
        }
        progress
    }

    /// Redraws the bar from the status document: where the phase is, and
    /// hosts up (distributed runs) and failed attempts. Called as
    /// attempts end and every second or so while the phase runs.
    pub(crate) fn refresh(&self) {
        let Some(bar) = &self.bar else { return };
        let doc = self.tracker.snapshot();
        if let Some(p) = doc.current().filter(|p| p.name == self.phase) {
            let (pos, len) = match p.bytes_total {
                0 => (p.done, p.tasks),
                total => (p.bytes_done, total),
            };
            bar.set_length(len.max(1));
            bar.set_position(pos.min(len));
        }
        let mut parts = vec![doc.progress()];
        if let Some(health) = self.hosts {
            let (up, all) = health.up();
            parts.push(format!("hosts up {up}/{all}"));
        }
        let failed = self.failed.load(Ordering::Relaxed);
        if failed > 0 {
            let on = self
                .last_failure_on
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
                .map(|h| format!(" (last on {h})"))
                .unwrap_or_default();
            parts.push(format!(
                "{} in this phase, retried{on}",
                count(failed, "failed attempt")
            ));
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
        if self.bar.is_none() {
            return;
        }
        if result.is_err() {
            self.failed.fetch_add(1, Ordering::Relaxed);
            *self
                .last_failure_on
                .lock()
                .unwrap_or_else(|e| e.into_inner()) = Some(a.host.to_string());
        }
        self.refresh();
    }

    fn host_event(&self, _host: &str, message: &str) {
        self.refresh();
        match &self.bar {
            Some(bar) => bar.println(format!("gmr: {message}")),
            None if self.enabled => eprintln!("gmr: {message}"),
            None => {}
        }
    }
}
