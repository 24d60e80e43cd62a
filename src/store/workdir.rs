//! The work directory: its layout (every file name in it is spelled here
//! and nowhere else) and commit by rename (docs/contracts.md §4).
//!
//! Everything a task needs or makes lives here, so that any host that sees
//! the directory can run any task. Nothing relies on locks or on seeing a
//! file before its writer reported success: every output is written under a
//! unique attempt name and then committed to its final name, where the first
//! commit wins and later ones are discarded. Readers only open final names.
//!
//! ```text
//! job.json                   the job spec (commands, R, separator, splits, ...)
//! input/stdin                standard input, spooled
//! input/stream-1             another stream input (a FIFO, `<(…)`), spooled
//! input/decompressed-1       a large compressed input, decompressed to be cut
//! map/map-00003/             a committed map task: `out` (all partitions,
//!                            sorted, back to back) and `index.json`
//! map/.map-00003.attempt-... a map attempt in progress; also holds its
//!                            `spill-NNNNN` runs and `merge-PPPPP-N` merges
//! shuffle/part-00003         a merged partition (only after `gmr shuffle`)
//! scratch/.reduce-00003.attempt-...
//!                            intermediate merges of one attempt
//!                            (`merge-N`), when runs outnumber the fan-in
//! reports/map-00003.json     the report of the attempt that committed
//! logs/map-00003.1.stderr    each attempt's stderr (a combiner's:
//!                            `logs/map-00003.combiner.1.stderr`)
//! sample.log                 the --total-order sample's mapper stderr
//! output/part-00003          parts, when the job's output goes to stdout
//! status.json                the live status document (`gmr status`)
//! attempts.jsonl             one line per attempt, for the report
//! report.json, report.html   the job's report, at the end
//! bin/gmr-DIGEST             the copy of gmr that remote hosts run
//! slurm/                     job-array batches (`exec/sbatch.rs` owns
//!                            the names inside)
//! temporary                  marks a work directory `gmr split` made itself
//! .gmr-probe-PID-T           written by the SSH executor to check that
//!                            hosts see the directory, removed at once
//! ```

use crate::error::{Error, Result};
use crate::files::{remove_path, sync_dir};
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The work directory of one job.
#[derive(Debug, Clone)]
pub(crate) struct WorkDir {
    root: PathBuf,
}

impl WorkDir {
    /// A work directory at `root` (not created).
    pub(crate) fn new(root: impl Into<PathBuf>) -> WorkDir {
        WorkDir { root: root.into() }
    }

    /// The work directory of a job: `given`, or a new one in `$TMPDIR`,
    /// created. Returns whether gmr made it (and so removes it after
    /// success). A `fresh` job refuses a directory that holds a job.
    pub(crate) fn open(given: Option<&Path>, fresh: bool) -> Result<(WorkDir, bool)> {
        let (wd, created) = match given {
            Some(dir) => {
                let wd = WorkDir::new(
                    std::path::absolute(dir)
                        .map_err(|e| Error::input("bad work directory", dir, e))?,
                );
                wd.check_owner()?;
                if wd.root.exists() && !wd.root.is_dir() {
                    return Err(Error::usage(format!(
                        "work directory {} exists and is not a directory; choose another --workdir",
                        dir.display()
                    )));
                }
                if fresh && wd.spec_path().exists() {
                    return Err(Error::usage(format!(
                        "work directory {} already holds a job; remove it or choose another --workdir",
                        dir.display()
                    )));
                }
                if fresh {
                    wd.check_no_stale_data(dir)?;
                }
                (wd, false)
            }
            None => (WorkDir::new(new_temp_dir()?), true),
        };
        if created {
            crate::interrupt::made_workdir(&wd.root, &wd.spec_path());
        }
        wd.create()?;
        Ok((wd, created))
    }

    /// Refuses, for a new job, a work directory whose `output/` holds files
    /// though it records no job (its job.json removed by hand, or made by
    /// someone else): a task finding its part already in place takes it as
    /// committed. (Map outputs and reports carry their job's identity, and
    /// another job's are never taken.)
    fn check_no_stale_data(&self, given: &Path) -> Result<()> {
        let dir = self.default_output();
        if let Some(Ok(entry)) = fs::read_dir(&dir).ok().and_then(|mut e| e.next()) {
            return Err(Error::usage(format!(
                "work directory {} holds output/{} but no job: gmr would take it for this job's output; remove it or choose another --workdir",
                given.display(),
                entry.file_name().to_string_lossy()
            )));
        }
        Ok(())
    }

    /// Forgets what an earlier `gmr reduce` in this directory committed
    /// (its reports, and its parts here): a reduce stage run again, with
    /// another reducer or output, must not take them for its own.
    pub(crate) fn discard_reduce(&self) -> Result<()> {
        remove_named(&self.root.join("reports"), |n| n.starts_with("reduce-"))?;
        remove_named(&self.default_output(), is_output_name)
    }

    /// Refuses a work directory that belongs to another user: whoever can
    /// write it decides what the job's tasks run (its `job.json`).
    pub(crate) fn check_owner(&self) -> Result<()> {
        use std::os::unix::fs::MetadataExt;
        let Ok(meta) = fs::symlink_metadata(&self.root) else {
            return Ok(());
        };
        // SAFETY: geteuid has no preconditions.
        let me = unsafe { libc::geteuid() };
        if meta.uid() != me {
            return Err(Error::usage(format!(
                "work directory {} belongs to another user (uid {}); whoever owns it decides what the job runs: choose a directory of your own",
                self.root.display(),
                meta.uid()
            )));
        }
        Ok(())
    }

    /// Creates the directory (and its subdirectories) if missing; a new
    /// root is private to its user (0700).
    pub(crate) fn create(&self) -> Result<()> {
        use std::os::unix::fs::DirBuilderExt;
        if !self.root.exists() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(&self.root)
                .map_err(|e| Error::io("cannot create work directory", &self.root, e))?;
        }
        for sub in ["map", "shuffle", "reports", "logs"] {
            let dir = self.root.join(sub);
            fs::create_dir_all(&dir)
                .map_err(|e| Error::io("cannot create work directory", &dir, e))?;
        }
        Ok(())
    }

    /// Takes the work directory for this process's job, so that two jobs
    /// never run in it at once (each would take the other's commits for
    /// its own, or fence the other out midway): refused, exit 2, while
    /// another gmr holds it. Released when the lock is dropped.
    pub(crate) fn lock(&self) -> Result<crate::files::DirLock> {
        match crate::files::try_lock_dir(&self.root) {
            Ok(Some(lock)) => Ok(lock),
            Ok(None) => Err(Error::usage(format!(
                "work directory {} is in use by another gmr job; wait for it to end, or choose another --workdir",
                self.root.display()
            ))),
            Err(e) => Err(Error::io("cannot open work directory", &self.root, e)),
        }
    }

    /// The root of the work directory.
    pub(crate) fn root(&self) -> &Path {
        &self.root
    }

    /// Where standard input is spooled.
    pub(crate) fn input_dir(&self) -> PathBuf {
        self.root.join("input")
    }

    /// The job spec file.
    pub(crate) fn spec_path(&self) -> PathBuf {
        self.root.join("job.json")
    }

    /// The committed directory of map task `index`.
    pub(crate) fn map_dir(&self, index: usize) -> PathBuf {
        self.root.join("map").join(format!("map-{index:05}"))
    }

    /// The runs file of a map task's directory (committed or an attempt):
    /// every partition, sorted, back to back.
    pub(crate) fn map_out(map_dir: &Path) -> PathBuf {
        map_dir.join("out")
    }

    /// The index of a map task's runs file: where each partition lies.
    pub(crate) fn map_index(map_dir: &Path) -> PathBuf {
        map_dir.join("index.json")
    }

    /// A spilled run of a map attempt, before the runs are merged into
    /// [`WorkDir::map_out`].
    pub(crate) fn spill_path(attempt_dir: &Path, n: usize) -> PathBuf {
        attempt_dir.join(format!("spill-{n:05}"))
    }

    /// The name stem of the files that narrow a merge of many runs of
    /// partition `p` (or of a partition's runs, for `None`), in the merging
    /// attempt's own directory.
    pub(crate) fn merge_stem(p: Option<u32>) -> String {
        match p {
            Some(p) => format!("merge-{p:05}"),
            None => "merge".to_string(),
        }
    }

    /// A probe file the coordinator writes to check that a host sees the
    /// work directory: a name no other process uses.
    pub(crate) fn probe_path(&self) -> PathBuf {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        self.root
            .join(format!(".gmr-probe-{}-{stamp:x}", std::process::id()))
    }

    /// The committed merged partition `p` (made by `gmr shuffle`).
    pub(crate) fn shuffle_part(&self, p: u32) -> PathBuf {
        self.root.join("shuffle").join(part_name(p as usize))
    }

    /// Where one attempt of a task keeps intermediate merges of its runs:
    /// a name no other attempt, process or host uses.
    pub(crate) fn scratch_dir(&self, task: &str, attempt: u32) -> PathBuf {
        attempt_path(&self.root.join("scratch").join(task), attempt)
    }

    /// Removes what attempts left in the scratch directory (one killed
    /// before it could clean up). Run it once a phase's tasks committed.
    pub(crate) fn remove_scratch(&self) {
        remove_attempt_files(&self.root.join("scratch"));
    }

    /// The committed report of a task.
    pub(crate) fn report_path(&self, task: &str) -> PathBuf {
        self.root.join("reports").join(format!("{task}.json"))
    }

    /// The files a task filed by key (`--output-by-key`): names and sizes,
    /// written before its report.
    pub(crate) fn keys_path(&self, task: &str) -> PathBuf {
        self.root.join("reports").join(format!("{task}.keys.json"))
    }

    /// Where job arrays keep their batches' task lists and scripts, and
    /// their elements' output and exit status.
    pub(crate) fn slurm_dir(&self) -> PathBuf {
        self.root.join("slurm")
    }

    /// The directory of the copy of gmr that hosts and Slurm nodes run.
    pub(crate) fn gmr_copy_dir(&self) -> PathBuf {
        self.root.join("bin")
    }

    /// The copy of gmr that hosts and Slurm nodes run (unless
    /// `--remote-gmr`): `bin/gmr-DIGEST`, named by the start of its SHA-256,
    /// so that another build makes another copy.
    pub(crate) fn gmr_copy_path(&self, digest: &str) -> PathBuf {
        self.gmr_copy_dir().join(format!("gmr-{digest}"))
    }

    /// The mapper's stderr on the sample `--total-order` reads.
    pub(crate) fn sample_log_path(&self) -> PathBuf {
        self.root.join("sample.log")
    }

    /// The stderr log of one attempt of a task.
    pub(crate) fn log_path(&self, task: &str, attempt: u32) -> PathBuf {
        self.root
            .join("logs")
            .join(format!("{task}.{attempt}.stderr"))
    }

    /// The stderr log of the combiner of one attempt of a map task, kept
    /// apart from its mapper's.
    pub(crate) fn combiner_log_path(&self, task: &str, attempt: u32) -> PathBuf {
        self.log_path(&format!("{task}.combiner"), attempt)
    }

    /// Where parts go when the job's output is standard output.
    pub(crate) fn default_output(&self) -> PathBuf {
        self.root.join("output")
    }

    /// Marks a work directory that `gmr split` made for standard input
    /// without being asked: nobody else knows it, so the stage that ends
    /// the pipeline removes it ([`WorkDir::is_temporary`]).
    pub(crate) fn mark_temporary(&self) -> Result<()> {
        let path = self.root.join("temporary");
        crate::files::write_private(&path, b"").map_err(|e| Error::io("cannot write", &path, e))
    }

    /// Whether [`WorkDir::mark_temporary`] marked this work directory.
    pub(crate) fn is_temporary(&self) -> bool {
        self.root.join("temporary").exists()
    }

    /// The job report written at the end of a job: the status document
    /// with every attempt.
    pub(crate) fn job_report_path(&self) -> PathBuf {
        self.root.join("report.json")
    }

    /// The job's status while it runs, rewritten every second
    /// (`status.rs`).
    pub(crate) fn status_path(&self) -> PathBuf {
        self.root.join("status.json")
    }

    /// Every attempt that ended, a JSON line each, appended as they end:
    /// the timeline of `gmr report`.
    pub(crate) fn attempts_path(&self) -> PathBuf {
        self.root.join("attempts.jsonl")
    }

    /// The HTML report written at the end of a job.
    pub(crate) fn report_html_path(&self) -> PathBuf {
        self.root.join("report.html")
    }

    /// The record of map task `task` skipped after its retries
    /// (`--max-failed-tasks`): reduce tasks leave its output out.
    pub(crate) fn skipped_path(&self, task: &str) -> PathBuf {
        self.skipped_dir().join(format!("{task}.json"))
    }

    /// Where [`WorkDir::skipped_path`]s are.
    pub(crate) fn skipped_dir(&self) -> PathBuf {
        self.root.join("skipped")
    }

    /// The steps of a job of several (`control/steps.rs`), each a job in
    /// [`WorkDir::step`].
    pub(crate) fn steps_path(&self) -> PathBuf {
        self.root.join("steps.json")
    }

    /// The work directory of step `n` (from 1) of a job of several.
    pub(crate) fn step(&self, n: usize) -> WorkDir {
        WorkDir::new(self.root.join(format!("step-{n}")))
    }
}

/// The file in `spool_dir` that large compressed input `n` (1, 2, …) is
/// decompressed to.
pub(crate) fn decompressed_spool(spool_dir: &Path, n: usize) -> PathBuf {
    spool_dir.join(format!("decompressed-{n}"))
}

/// The file in `spool_dir` that stream input `n` (1, 2, …) is spooled to,
/// or standard input for `None`.
pub(crate) fn stream_spool(spool_dir: &Path, n: Option<usize>) -> PathBuf {
    match n {
        None => spool_dir.join("stdin"),
        Some(n) => spool_dir.join(format!("stream-{n}")),
    }
}

/// A new private directory (0700) in `$TMPDIR` for a work directory: made
/// here, never one that exists (another user's, or a link), so its name
/// may be guessed without harm.
pub(crate) fn new_temp_dir() -> Result<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let base = std::env::temp_dir();
    let mut last = None;
    for n in 0..100u32 {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let root = base.join(format!(
            "gmr-{}-{:x}",
            std::process::id(),
            (stamp as u32) ^ n.wrapping_mul(0x9e37_79b9)
        ));
        match fs::DirBuilder::new().mode(0o700).create(&root) {
            Ok(()) => return Ok(root),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => last = Some(e),
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::PermissionDenied
                        | io::ErrorKind::NotADirectory
                ) =>
            {
                return Err(Error::usage(format!(
                    "cannot make a work directory in {} ({e}): set TMPDIR to a directory you can write, or pass --workdir",
                    base.display()
                )));
            }
            Err(e) => return Err(Error::io("cannot create work directory", &root, e)),
        }
    }
    let e = last.unwrap_or_else(|| io::Error::other("no free name"));
    Err(Error::io("cannot create a work directory in", &base, e))
}

/// Refuses a work directory `workdir` that is, holds or lies inside the
/// output directory, or is an input directory: gmr's own files (job.json,
/// logs, reports) would be mixed with the output, or read as input by the
/// next job. (A subdirectory of an input directory is never read.)
pub(crate) fn check_apart(workdir: &Path, output: Option<&Path>, inputs: &[PathBuf]) -> Result<()> {
    // The real path, also of a path not made yet (its parent's).
    let real = |p: &Path| {
        let parent = || match (p.parent(), p.file_name()) {
            (Some(parent), Some(name)) if !parent.as_os_str().is_empty() => {
                fs::canonicalize(parent).map(|d| d.join(name))
            }
            _ => Err(io::ErrorKind::NotFound.into()),
        };
        fs::canonicalize(p)
            .or_else(|_| parent())
            .or_else(|_| std::path::absolute(p))
            .unwrap_or_else(|_| p.to_path_buf())
    };
    let wd = real(workdir);
    if let Some(out) = output {
        let o = real(out);
        if o.starts_with(&wd) || wd.starts_with(&o) {
            return Err(Error::usage(format!(
                "the output directory {} and the work directory {} overlap: gmr's own files would be mixed with the output; choose them apart",
                out.display(),
                workdir.display()
            )));
        }
    }
    for input in inputs.iter().filter(|i| i.is_dir()) {
        if wd == real(input) {
            return Err(Error::usage(format!(
                "the work directory {} is the input {}: the next job over it would read gmr's files as input; choose another --workdir",
                workdir.display(),
                input.display()
            )));
        }
    }
    Ok(())
}

/// `part-00003`.
pub(crate) fn part_name(p: usize) -> String {
    format!("part-{p:05}")
}

/// Whether `name` is one gmr writes into an output directory: a part
/// (`part-00003`, `.gz` or `.zst`), `_SUCCESS`, or what an attempt left
/// (`.part-00003.attempt-...`). `--force` replaces only these.
pub(crate) fn is_output_name(name: &str) -> bool {
    let part = |n: &str| {
        n.strip_prefix("part-")
            .is_some_and(|d| d.len() >= 5 && d.bytes().all(|b| b.is_ascii_digit()))
    };
    let stem = name
        .strip_suffix(".gz")
        .or_else(|| name.strip_suffix(".zst"))
        .unwrap_or(name);
    name == "_SUCCESS"
        || name == "_SKIPPED"
        || name == ".gmr-job"
        || part(stem)
        || (is_attempt_name(name) && name.starts_with(".part-"))
}

/// Part `p` of the job's output directory `output`, its name ending in
/// `ext` (`.gz`, `.zst`, or nothing).
pub(crate) fn output_part(output: &Path, p: usize, ext: &str) -> PathBuf {
    output.join(format!("{}{ext}", part_name(p)))
}

/// The marker written into the output directory last, once every part is
/// committed.
pub(crate) fn success_marker(output: &Path) -> PathBuf {
    output.join("_SUCCESS")
}

/// The list of the input a job skipped (`--max-failed-tasks`), beside
/// `_SUCCESS`: a JSON line per skipped map task.
pub(crate) fn skipped_list(output: &Path) -> PathBuf {
    output.join("_SKIPPED")
}

/// The file that names the job whose parts the output directory takes
/// while it runs (docs/contracts.md §3): a part commits only while it
/// names the attempt's job.
pub(crate) fn claim_marker(output: &Path) -> PathBuf {
    output.join(".gmr-job")
}

/// A unique name beside `target` for one attempt at writing it:
/// `.NAME.attempt-A-HOST-PID-N`. Hidden, so that readers of the directory
/// (and jobs that take it as input) skip it.
pub(crate) fn attempt_path(target: &Path, attempt: u32) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let host = hostname();
    let pid = std::process::id();
    target.with_file_name(format!(".{name}.attempt-{attempt}-{host}-{pid}-{n}"))
}

/// True for names made by [`attempt_path`].
pub(crate) fn is_attempt_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(".attempt-")
}

/// This host's name, for attempt names and reports.
pub(crate) fn hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: the buffer is valid for its length; gethostname NUL-terminates
    // on success when the name fits.
    let ok = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } == 0;
    let end = buf.iter().position(|&b| b == 0).unwrap_or(0);
    if ok && end > 0 {
        String::from_utf8_lossy(&buf[..end]).replace('/', "_")
    } else {
        "localhost".to_string()
    }
}

/// Commits a finished attempt (a file or a directory) to its final name,
/// durably. Returns false, and removes the attempt, when another attempt
/// committed first: that one's bytes are the same, since tasks are pure.
pub(crate) fn commit(attempt: &Path, target: &Path) -> Result<bool> {
    commit_as(attempt, target, true)
}

/// [`commit`], but the new name is not synced to disk: for what a resumed
/// job checks before it reuses it (a map task's runs and index, see
/// `task::commit`), which a crash of the machine can at worst have it
/// redo. A sync of the directory per map task was most of a small task's
/// time.
pub(crate) fn commit_unsynced(attempt: &Path, target: &Path) -> Result<bool> {
    commit_as(attempt, target, false)
}

fn commit_as(attempt: &Path, target: &Path, durable: bool) -> Result<bool> {
    let is_dir = attempt.is_dir();
    let result = if is_dir {
        // rename(2) of a directory onto a non-empty one fails: first wins.
        fs::rename(attempt, target)
    } else {
        // link(2) never replaces: first wins. Fall back to rename where the
        // filesystem has no hard links.
        match fs::hard_link(attempt, target) {
            Ok(()) => fs::remove_file(attempt),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(e),
            Err(_) => rename_noreplace(attempt, target),
        }
    };
    match result {
        Ok(()) => {
            // The new name is durable before anyone is told of it.
            if let Some(dir) = target.parent().filter(|_| durable) {
                sync_dir(dir).map_err(|e| Error::io("cannot commit", target, e))?;
            }
            Ok(true)
        }
        Err(e)
            if target.exists()
                && (e.kind() == io::ErrorKind::AlreadyExists
                    || e.raw_os_error() == Some(libc::ENOTEMPTY)
                    || e.raw_os_error() == Some(libc::EEXIST)) =>
        {
            remove_path(attempt);
            Ok(false)
        }
        Err(e) => Err(Error::io("cannot commit", target, e)),
    }
}

/// rename(2) that never replaces `target` (renameat2 with
/// RENAME_NOREPLACE): where a filesystem has no hard links, first commit
/// still wins. Fails with EEXIST when `target` exists.
fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let cstr = |p: &Path| {
        std::ffi::CString::new(p.as_os_str().as_bytes())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "a NUL in a path"))
    };
    let (from, to) = (cstr(from)?, cstr(to)?);
    // The system call itself: musl, which a static build links, has no
    // renameat2 wrapper.
    // SAFETY: both are NUL-terminated paths that live across the call.
    let r = unsafe {
        libc::syscall(
            libc::SYS_renameat2,
            libc::AT_FDCWD,
            from.as_ptr(),
            libc::AT_FDCWD,
            to.as_ptr(),
            libc::RENAME_NOREPLACE,
        )
    };
    if r == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Removes what attempts left in `dir` (an attempt on a host that died
/// cannot clean up after itself), so that an output directory holds only
/// committed parts. Run it once the job's tasks have all committed: an
/// attempt still running on a lost host could only lose the race anyway.
pub(crate) fn remove_attempt_files(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if is_attempt_name(&entry.file_name().to_string_lossy()) {
            remove_path(&entry.path());
        }
    }
}

/// Removes the files of `dir` whose names are `old`; a missing `dir` has
/// none.
fn remove_named(dir: &Path, old: impl Fn(&str) -> bool) -> Result<()> {
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if !old(&entry.file_name().to_string_lossy()) {
            continue;
        }
        match fs::remove_file(&path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(Error::io("cannot remove", &path, e));
            }
            _ => {}
        }
    }
    Ok(())
}

/// Removes an attempt's files when dropped, unless [`AttemptGuard::keep`]
/// was called: a failed or interrupted attempt leaves nothing behind.
pub(crate) struct AttemptGuard {
    path: Option<PathBuf>,
}

impl AttemptGuard {
    /// Guards `path`.
    pub(crate) fn new(path: PathBuf) -> AttemptGuard {
        AttemptGuard { path: Some(path) }
    }

    /// The guarded path.
    pub(crate) fn path(&self) -> &Path {
        self.path.as_deref().expect("guard is armed")
    }

    /// Stops guarding (the attempt was committed or discarded).
    pub(crate) fn keep(mut self) {
        self.path = None;
    }
}

impl Drop for AttemptGuard {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            remove_path(path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_names_are_parts_success_and_attempts() {
        for name in [
            "part-00000",
            "part-123456",
            "part-00001.gz",
            "part-00002.zst",
            "_SUCCESS",
            ".part-00003.attempt-1-host-42-7",
        ] {
            assert!(is_output_name(name), "{name}");
        }
        for name in [
            "map.sh",
            "part-0",
            "part-0000x",
            "part-00000.txt",
            "part-00000.gz.bak",
            ".job.json.attempt-1-h-1-1",
            "_SUCCESS.gz",
            "README",
        ] {
            assert!(!is_output_name(name), "{name}");
        }
    }

    #[test]
    fn first_commit_wins_for_files_and_dirs() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("part-00000");
        let a = attempt_path(&target, 1);
        let b = attempt_path(&target, 2);
        assert_ne!(a, b);
        fs::write(&a, "first").unwrap();
        fs::write(&b, "second").unwrap();
        assert!(commit(&a, &target).unwrap());
        assert!(!commit(&b, &target).unwrap());
        assert_eq!(fs::read_to_string(&target).unwrap(), "first");
        assert!(!a.exists() && !b.exists());

        let target = dir.path().join("map-00000");
        let (a, b) = (attempt_path(&target, 1), attempt_path(&target, 2));
        for (d, text) in [(&a, "first"), (&b, "second")] {
            fs::create_dir(d).unwrap();
            fs::write(d.join("out"), text).unwrap();
        }
        assert!(commit(&a, &target).unwrap());
        assert!(!commit(&b, &target).unwrap());
        assert_eq!(fs::read_to_string(target.join("out")).unwrap(), "first");
        assert!(!b.exists());
    }

    #[test]
    fn attempt_names_are_hidden() {
        let p = attempt_path(Path::new("/x/part-00001"), 3);
        let name = p.file_name().unwrap().to_str().unwrap();
        assert!(is_attempt_name(name), "{name}");
        assert!(!is_attempt_name("part-00001"));
    }
}
