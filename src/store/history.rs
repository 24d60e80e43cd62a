//! The job history: a directory per `gmr run`, under
//! `$XDG_STATE_HOME/gmr/jobs` (by default `~/.local/state/gmr/jobs`), so
//! that a job run without `--workdir` can be found while it runs and its
//! report read after it succeeded, though its temporary work directory is
//! gone.
//!
//! An entry is named by its start (milliseconds since the epoch) and
//! gmr's pid, so that names sort by age. It holds `workdir`, the path of
//! the job's work directory; once a job whose temporary work directory is
//! removed succeeded, it also holds the job's `status.json`,
//! `attempts.jsonl`, `report.json` and `report.html`, and so reads as a
//! work directory to `gmr status` and `gmr report`. The newest
//! [`KEPT`] entries are kept; the history is best effort and never fails
//! a job.

use crate::store::workdir::WorkDir;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Path, PathBuf};

/// Entries kept; older ones are removed as new ones are made.
const KEPT: usize = 50;

/// The file of an entry that names the job's work directory.
const WORKDIR: &str = "workdir";

/// The history directory of this user.
pub(crate) struct History {
    dir: PathBuf,
}

/// One job of the history.
pub(crate) struct Entry {
    dir: PathBuf,
}

impl History {
    /// `$XDG_STATE_HOME/gmr/jobs`, or `$HOME/.local/state/gmr/jobs`; None
    /// when neither is set to an absolute path.
    pub(crate) fn new() -> Option<History> {
        let absolute = |v: std::ffi::OsString| Some(PathBuf::from(v)).filter(|p| p.is_absolute());
        let state = std::env::var_os("XDG_STATE_HOME")
            .and_then(absolute)
            .or_else(|| {
                std::env::var_os("HOME")
                    .and_then(absolute)
                    .map(|h| h.join(".local/state"))
            })?;
        Some(History {
            dir: state.join("gmr").join("jobs"),
        })
    }

    /// Records a job that runs in `workdir`; None when the history cannot
    /// be written (a read-only home is no reason to stop a job).
    pub(crate) fn record(&self, workdir: &Path) -> Option<Entry> {
        let millis = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?
            .as_millis();
        let dir = self
            .dir
            .join(format!("{millis:013}-{}", std::process::id()));
        // Private: the names of a user's jobs and their reports are theirs.
        std::os::unix::fs::DirBuilderExt::mode(std::fs::DirBuilder::new().recursive(true), 0o700)
            .create(&dir)
            .ok()?;
        crate::files::write_private(&dir.join(WORKDIR), workdir.as_os_str().as_bytes()).ok()?;
        self.prune();
        Some(Entry { dir })
    }

    /// The entries, oldest first.
    fn entries(&self) -> Vec<PathBuf> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.join(WORKDIR).is_file())
            .collect();
        names.sort();
        names
    }

    /// Removes all but the newest [`KEPT`] entries.
    fn prune(&self) {
        let entries = self.entries();
        let extra = entries.len().saturating_sub(KEPT);
        for old in &entries[..extra] {
            crate::files::remove_path(old);
        }
    }

    /// The newest entry.
    pub(crate) fn latest(&self) -> Option<Entry> {
        self.entries().pop().map(|dir| Entry { dir })
    }
}

impl Entry {
    /// The entry's directory.
    pub(crate) fn path(&self) -> &Path {
        &self.dir
    }

    /// The job's work directory, while it holds the job's status.
    pub(crate) fn workdir(&self) -> Option<WorkDir> {
        let bytes = std::fs::read(self.dir.join(WORKDIR)).ok()?;
        let wd = WorkDir::new(PathBuf::from(std::ffi::OsString::from_vec(bytes)));
        (wd.status_path().is_file() || wd.steps_path().is_file()).then_some(wd)
    }

    /// Copies the finished job's status, attempts and reports out of `wd`
    /// (about to be removed); returns where its HTML report now is.
    pub(crate) fn keep_reports(&self, wd: &WorkDir) -> Option<PathBuf> {
        Entry::keep_reports_in(wd, &self.dir)
    }

    /// Copies step `n`'s status, attempts and reports out of `wd` into
    /// `step-N` of the entry, as a job of several steps has them.
    pub(crate) fn keep_step_reports(&self, wd: &WorkDir, n: usize) -> Option<PathBuf> {
        let dir = self.dir.join(format!("step-{n}"));
        std::fs::create_dir_all(&dir).ok()?;
        Entry::keep_reports_in(wd, &dir)
    }

    fn keep_reports_in(wd: &WorkDir, dir: &Path) -> Option<PathBuf> {
        let kept = WorkDir::new(dir.to_path_buf());
        let files = [
            (wd.status_path(), kept.status_path()),
            (wd.attempts_path(), kept.attempts_path()),
            (wd.job_report_path(), kept.job_report_path()),
            (wd.report_html_path(), kept.report_html_path()),
        ];
        for (from, to) in &files {
            if from.exists() {
                std::fs::copy(from, to).ok()?;
            }
        }
        let html = kept.report_html_path();
        html.exists().then_some(html)
    }
}
