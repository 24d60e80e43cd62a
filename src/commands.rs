//! One function per subcommand: turn parsed arguments into a job, run its
//! phases through the coordinator, and deliver the output.

use crate::cli::{
    Cli, Command, ExecArgs, KeyArgs, MapArgs, MapperArgs, OutputArgs, PerfArgs, ReduceArgs,
    RunArgs, ShuffleArgs, SplitArgs, TaskArgs,
};
use crate::coordinator::{self, Observer, Observers, Policy};
use crate::error::{Error, Result};
use crate::exec::connection::Credentials;
use crate::exec::ssh::{self, HostPool};
use crate::exec::{Executor, Pool, Slots};
use crate::hosts::{self, HostEntry};
use crate::joblog::JobLog;
use crate::manifest::{self, Entry};
use crate::program::Program;
use crate::progress::Progress;
use crate::record::KeySpec;
use crate::report::{Counters, JobReport, PhaseTotals, TaskReport, add_counters};
use crate::split::{self, Split};
use crate::task::{self, TaskId};
use crate::workdir::{self, FORMAT_VERSION, JobSpec, WorkDir, part_name};
use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Runs a parsed command line.
pub fn dispatch(cli: Cli) -> Result<()> {
    crate::merge::raise_open_file_limit();
    match cli.command {
        Command::Run(args) => run(args),
        Command::Split(args) => split_stage(args),
        Command::Map(args) => map_stage(args),
        Command::Shuffle(args) => shuffle_stage(args),
        Command::Reduce(args) => reduce_stage(args),
        Command::Task(args) => task_command(args),
    }
}

fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The number of tasks to run at once. It also sizes rayon's pool (the
/// parallel sort within a task), so that `-j N` caps gmr's CPU use at N
/// cores rather than only its task slots.
fn jobs(exec: &ExecArgs) -> usize {
    let jobs = exec.jobs.map_or_else(cores, |j| j as usize);
    // Fails only when the pool exists already (a second call): keep it.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(jobs)
        .build_global();
    jobs
}

/// Where a job's tasks are to run, checked before anything is made.
enum Placement {
    /// This machine, `-j` slots.
    Local(usize),
    /// The hosts of `--hosts`.
    Hosts(Vec<HostEntry>, ssh::Options),
}

/// Reads and checks `--hosts` and the flags that go with it. `--hosts`
/// needs an explicit work directory: remote tasks read their input and
/// write their output there.
fn placement(ex: &ExecArgs, workdir: Option<&Path>) -> Result<Placement> {
    let Some(value) = &ex.hosts else {
        return Ok(Placement::Local(jobs(ex)));
    };
    if workdir.is_none() {
        return Err(Error::usage(
            "--hosts needs --workdir DIR, on a filesystem every host mounts at the same path (e.g. NFS): remote tasks read their input and write their output there",
        ));
    }
    let entries = hosts::load(value)?;
    let ssh_dir = std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".ssh"));
    let missing =
        |what: &str, path: &Path| Error::usage(format!("{what} {} does not exist", path.display()));
    if let Some(id) = &ex.identity
        && !id.is_file()
    {
        return Err(missing("the identity file", id));
    }
    let known_hosts = match (&ex.known_hosts, &ssh_dir) {
        (Some(file), _) => {
            if !file.is_file() && !ex.accept_new_host_keys {
                return Err(missing("the known_hosts file", file));
            }
            file.clone()
        }
        (None, Some(dir)) => dir.join("known_hosts"),
        (None, None) => {
            return Err(Error::usage(
                "no $HOME, so no ~/.ssh/known_hosts: pass --known-hosts FILE",
            ));
        }
    };
    let remote_gmr = match &ex.remote_gmr {
        Some(path) => path.clone(),
        None => std::env::current_exe().map_err(|e| {
            Error::usage(format!(
                "cannot find the path of this gmr ({e}); pass --remote-gmr PATH"
            ))
        })?,
    };
    let options = ssh::Options {
        credentials: Credentials {
            identity: ex.identity.clone(),
            default_keys: ssh_dir
                .iter()
                .flat_map(|d| [d.join("id_ed25519"), d.join("id_rsa")])
                .collect(),
            known_hosts,
            accept_new_host_keys: ex.accept_new_host_keys,
        },
        remote_gmr,
        timeout: Duration::from_secs(ex.ssh_timeout),
        local_slots: jobs(ex),
    };
    Ok(Placement::Hosts(entries, options))
}

/// The slots of the job in `wd`: this machine's, or the hosts', which are
/// connected and checked now (see [`HostPool::connect`]).
fn open_pool(placement: Placement, wd: &WorkDir, cwd: &Path) -> Result<Pool> {
    match placement {
        Placement::Local(n) => Ok(Pool::Local(n)),
        Placement::Hosts(entries, options) => {
            let pool = HostPool::connect(&entries, wd, cwd, options)?;
            for warning in &pool.warnings {
                eprintln!("gmr: {warning}");
            }
            Ok(Pool::Hosts(Box::new(pool)))
        }
    }
}

fn cwd() -> Result<PathBuf> {
    std::env::current_dir()
        .map_err(|e| Error::usage(format!("cannot read the current directory: {e}")))
}

/// A work directory for a job: the one given, or a new one in $TMPDIR.
/// Returns whether gmr created it (and so removes it after success).
fn open_workdir(given: Option<&Path>, fresh: bool) -> Result<(WorkDir, bool)> {
    let (wd, created) = match given {
        Some(dir) => {
            let wd = WorkDir::new(
                std::path::absolute(dir).map_err(|e| Error::input("bad work directory", dir, e))?,
            );
            if fresh && wd.spec_path().exists() {
                return Err(Error::usage(format!(
                    "work directory {} already holds a job; remove it or choose another --workdir",
                    dir.display()
                )));
            }
            (wd, false)
        }
        None => {
            let base = std::env::temp_dir();
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos());
            let root = base.join(format!(
                "gmr-{}-{:x}",
                std::process::id(),
                stamp & 0xffff_ffff
            ));
            (WorkDir::new(root), true)
        }
    };
    wd.create()?;
    Ok((wd, created))
}

/// Checks the output directory and makes it ready (empty). Nothing in an
/// existing non-empty directory is touched unless `--force`.
fn prepare_output(out: &OutputArgs) -> Result<Option<PathBuf>> {
    let Some(dir) = &out.output else {
        return Ok(None);
    };
    if let Ok(mut entries) = fs::read_dir(dir) {
        if entries.next().is_some() {
            if !out.force {
                return Err(Error::usage(format!(
                    "output directory {} exists and is not empty; remove it, choose another, or pass --force to replace it",
                    dir.display()
                )));
            }
            fs::remove_dir_all(dir)
                .map_err(|e| Error::input("cannot replace output directory", dir, e))?;
        }
    } else if dir.exists() {
        return Err(Error::usage(format!(
            "output {} exists and is not a directory",
            dir.display()
        )));
    }
    fs::create_dir_all(dir).map_err(|e| Error::input("cannot create output directory", dir, e))?;
    std::path::absolute(dir)
        .map(Some)
        .map_err(|e| Error::input("bad output directory", dir, e))
}

fn key_spec(k: &KeyArgs) -> KeySpec {
    KeySpec {
        separator: k.separator,
        key_fields: k.key_fields,
    }
}

/// Parses and checks every command of the job before anything runs.
fn check_programs(cwd: &Path, programs: &[(&str, Option<&str>)]) -> Result<()> {
    for (role, text) in programs {
        if let Some(text) = text {
            Program::parse(text)?.check(role, cwd)?;
        }
    }
    Ok(())
}

/// The spec of a new job.
fn new_spec(
    wd: &WorkDir,
    cwd: PathBuf,
    splits: Vec<Split>,
    map: &MapperArgs,
    perf: &PerfArgs,
    key: &KeyArgs,
    slots: Slots,
    output: Option<PathBuf>,
) -> JobSpec {
    JobSpec {
        version: FORMAT_VERSION,
        cwd,
        inputs: Vec::new(),
        splits,
        mapper: map.mapper.clone(),
        combiner: map.combiner.clone(),
        reducer: None,
        reducers: map.reducers.unwrap_or(slots.total as u32),
        key: key_spec(key),
        // The buffer is shared by the map tasks that run at once on a host.
        sort_buffer: (perf.sort_buffer / slots.per_host as u64).max(64 << 10),
        one_mapper_per_task: perf.one_mapper_per_task,
        output: output.unwrap_or_else(|| wd.default_output()),
    }
}

/// Runs the phases of one job on one executor.
struct Runner<'a> {
    exec: &'a dyn Executor,
    args: &'a ExecArgs,
    joblog: Option<JobLog>,
    /// When resuming: reuse the tasks of this job that committed.
    resume: Option<(&'a WorkDir, &'a JobSpec)>,
}

impl<'a> Runner<'a> {
    fn new(exec: &'a dyn Executor, args: &'a ExecArgs) -> Result<Runner<'a>> {
        let joblog = args.joblog.as_deref().map(JobLog::open).transpose()?;
        Ok(Runner {
            exec,
            args,
            joblog,
            resume: None,
        })
    }

    /// Runs a phase's tasks with a progress display, retries and the job
    /// log; a task that committed in an earlier run is reused when resuming.
    fn phase(
        &self,
        name: &'static str,
        tasks: &[TaskId],
        bytes: Option<u64>,
    ) -> Result<(Vec<TaskReport>, PhaseTotals)> {
        let started = Instant::now();
        let reused: Vec<Option<TaskReport>> = tasks
            .iter()
            .map(|&t| {
                self.resume
                    .and_then(|(wd, spec)| task::committed_report(wd, spec, t))
            })
            .collect();
        let pending: Vec<TaskId> = tasks
            .iter()
            .zip(&reused)
            .filter(|(_, r)| r.is_none())
            .map(|(t, _)| *t)
            .collect();
        let progress = Progress::new(
            name,
            pending.len() as u64,
            bytes,
            !self.args.quiet,
            self.exec.health(),
        );
        let mut observers: Vec<&dyn Observer> = vec![&progress];
        if let Some(log) = &self.joblog {
            observers.push(log);
        }
        let outcome = coordinator::run_phase(
            self.exec,
            &pending,
            Policy {
                retries: self.args.retries,
                ..Policy::default()
            },
            &Observers(observers),
        );
        progress.finish();
        let outcome = outcome?;
        let mut fresh = outcome.reports.into_iter();
        let reports: Vec<TaskReport> = reused
            .into_iter()
            .map(|r| r.unwrap_or_else(|| fresh.next().expect("one report per pending task")))
            .collect();
        let mut totals = PhaseTotals {
            retries: outcome.retries,
            backups: outcome.backups,
            ..PhaseTotals::default()
        };
        for r in &reports {
            totals.add(r);
        }
        totals.millis = started.elapsed().as_millis() as u64;
        Ok((reports, totals))
    }
}

/// Makes sure no record went missing between map and reduce.
fn check_counts(spec: &JobSpec, map: &PhaseTotals, reduce: Option<&PhaseTotals>) -> Result<()> {
    if spec.combiner.is_none() && map.command_records_out != map.records_out {
        return Err(Error::job(format!(
            "internal error: mappers printed {} records but {} were written to runs; please report this",
            map.command_records_out, map.records_out
        )));
    }
    if let Some(reduce) = reduce
        && reduce.records_in != map.records_out
    {
        return Err(Error::job(format!(
            "internal error: map tasks wrote {} records but reducers read {}; please report this (the work directory is kept)",
            map.records_out, reduce.records_in
        )));
    }
    Ok(())
}

/// Finishes the output: `_SUCCESS` in an output directory, or the parts on
/// stdout in order. A closed stdout (`| head`) is not an error.
fn deliver_output(spec: &JobSpec, parts: usize, to_stdout: bool) -> Result<()> {
    if !to_stdout {
        let marker = spec.output.join("_SUCCESS");
        return File::create(&marker)
            .map(drop)
            .map_err(|e| Error::io("cannot write", &marker, e));
    }
    let stdout = io::stdout();
    let mut out = stdout.lock();
    for p in 0..parts {
        let path = spec.output.join(part_name(p));
        let mut f = File::open(&path).map_err(|e| Error::io("cannot read part", &path, e))?;
        match io::copy(&mut f, &mut out) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => return Ok(()),
            Err(e) => return Err(Error::io("cannot copy to stdout", &path, e)),
        }
    }
    match out.flush() {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Error::job(format!("cannot write stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// Runs `body`; when it fails after the work directory was made, says
/// where the work directory is kept (or removes it after a usage error).
fn keeping_workdir<T>(wd: &WorkDir, created: bool, body: impl FnOnce() -> Result<T>) -> Result<T> {
    let result = body();
    match result {
        Ok(_) if created => workdir::remove_path(wd.root()),
        Err(Error::Usage { .. }) if created => workdir::remove_path(wd.root()),
        Err(e @ Error::Job { .. }) => {
            return Err(e.context(|msg| {
                format!(
                    "{msg}\n  the work directory is kept for inspection: {}",
                    wd.root().display()
                )
            }));
        }
        Err(Error::Interrupted) => eprintln!(
            "gmr: the work directory is kept; continue the job with --resume --workdir {}",
            wd.root().display()
        ),
        _ => {}
    }
    result
}

fn run(args: RunArgs) -> Result<()> {
    let started = Instant::now();
    let placement = placement(&args.exec, args.workdir.as_deref())?;
    let cwd = cwd()?;
    let map_only = args.map.reducers == Some(0);
    let reducer = if map_only {
        None
    } else {
        args.reducer.as_deref()
    };
    check_programs(
        &cwd,
        &[
            ("mapper", Some(&args.map.mapper)),
            ("combiner", args.map.combiner.as_deref()),
            ("reducer", reducer),
        ],
    )?;
    if !map_only && reducer.is_none() {
        return Err(Error::usage(
            "a reducer (-r CMD) is needed unless -R 0",
        ));
    }
    let recorded = match (&args.workdir, args.resume) {
        (Some(dir), true) => Some(
            WorkDir::new(dir)
                .load_spec()
                .map_err(|e| Error::usage(format!("nothing to resume: {e}")))?,
        ),
        _ => None,
    };
    let output = match (&recorded, &args.output.output) {
        // A resumed job keeps the parts it committed in its output directory.
        (Some(old), Some(dir)) if std::path::absolute(dir).is_ok_and(|d| d == old.output) => {
            Some(old.output.clone())
        }
        _ => prepare_output(&args.output)?,
    };
    let to_stdout = output.is_none();
    let (wd, created) = open_workdir(args.workdir.as_deref(), recorded.is_none())?;
    keeping_workdir(&wd, created, || {
        let pool = open_pool(placement, &wd, &cwd)?;
        let slots = pool.slots();
        let reuse_spool = recorded.as_ref().is_some_and(|old| {
            args.input.inputs.iter().all(|p| p.as_os_str() == "-")
                && old
                    .inputs
                    .iter()
                    .all(|i| i.path.starts_with(wd.input_dir()))
        });
        let files = match &recorded {
            Some(old) if reuse_spool => old.inputs.iter().map(|i| i.path.clone()).collect(),
            _ => split::resolve_inputs(&args.input.inputs, &wd.input_dir())?,
        };
        let inputs = split::stamp_inputs(&files)?;
        let mut spec = new_spec(
            &wd,
            cwd.clone(),
            Vec::new(),
            &args.map,
            &args.perf,
            &args.key,
            slots,
            output.clone(),
        );
        spec.inputs = inputs;
        spec.reducer = reducer.map(str::to_string);
        // A built-in reducer that can merge partial results combines
        // map-side too, in a hash table: far fewer records to sort.
        if spec.combiner.is_none()
            && let Some(Program::Builtin(b)) = reducer.map(Program::parse).transpose()?
            && b.merge_form().is_some()
        {
            spec.combiner = Some(b.name().to_string());
        }
        if let Some(old) = &recorded {
            check_resumable(old, &spec)?;
            // The recorded plan, not a new one: a different split size
            // would make different tasks.
            spec.splits = old.splits.clone();
        } else {
            let total = split::total_size(&files);
            let size = args
                .input
                .split_size
                .unwrap_or_else(|| split::default_split_size(total, slots.total));
            spec.splits = split::plan_splits(&files, size)?;
        }
        fs::create_dir_all(&spec.output)
            .map_err(|e| Error::io("cannot create", &spec.output, e))?;
        wd.save_spec(&spec)?;
        let exec = pool.executor(&wd, &spec);
        let mut runner = Runner::new(exec.as_ref(), &args.exec)?;
        if recorded.is_some() {
            runner.resume = Some((&wd, &spec));
        }
        let map_tasks: Vec<TaskId> = (0..spec.splits.len()).map(TaskId::Map).collect();
        let input_bytes = spec.splits.iter().map(Split::len).sum();
        let (map_reports, map) = runner.phase("map", &map_tasks, Some(input_bytes))?;
        crate::sort::release_buffers();
        let mut counters = Counters::new();
        map_reports
            .iter()
            .for_each(|r| add_counters(&mut counters, &r.counters));
        let (parts, reduce) = if spec.reducers == 0 {
            (spec.splits.len(), None)
        } else {
            let tasks: Vec<TaskId> = (0..spec.reducers).map(TaskId::Reduce).collect();
            let (reports, totals) = runner.phase("reduce", &tasks, None)?;
            reports
                .iter()
                .for_each(|r| add_counters(&mut counters, &r.counters));
            (spec.reducers as usize, Some(totals))
        };
        check_counts(&spec, &map, reduce.as_ref())?;
        let report = JobReport {
            seconds: started.elapsed().as_secs_f64(),
            map,
            reduce,
            counters,
        };
        workdir::write_json(&wd.job_report_path(), &report)?;
        workdir::remove_attempt_files(&spec.output);
        wd.remove_scratch();
        deliver_output(&spec, parts, to_stdout)?;
        if !args.exec.quiet {
            eprint!(
                "{}",
                crate::report::summary(
                    started.elapsed(),
                    &report.map,
                    report.reduce.as_ref(),
                    &report.counters
                )
            );
            if let Some(hint) = small_files_hint(&spec) {
                eprintln!("{hint}");
            }
        }
        Ok(())
    })
}

/// Past this many small files sharing map tasks, each with a mapper of its
/// own, starting mappers is most of a job's time (about a millisecond each).
const SMALL_FILES_HINT: usize = 256;

/// A hint when many small files each started a mapper: the job could have
/// fed them to one mapper per task, unless its mapper reads the file name.
fn small_files_hint(spec: &JobSpec) -> Option<String> {
    let files: usize = spec
        .splits
        .iter()
        .filter(|s| !s.more.is_empty())
        .map(|s| 1 + s.more.len())
        .sum();
    // A built-in mapper starts no process per file.
    let command = matches!(Program::parse(&spec.mapper), Ok(Program::Shell(_)));
    (files >= SMALL_FILES_HINT && command && !spec.one_mapper_per_task).then(|| {
        format!(
            "gmr: hint: {files} small input files each started a mapper; unless the mapper \
             reads GMR_INPUT_FILE, --one-mapper-per-task feeds each map task's files to one \
             mapper, which is much faster"
        )
    })
}

/// Refuses to resume a job with another job's settings: its committed
/// tasks would not fit.
fn check_resumable(old: &JobSpec, new: &JobSpec) -> Result<()> {
    let show = |o: &Option<String>| o.clone().unwrap_or_else(|| "none".into());
    let mut diffs = Vec::new();
    if old.mapper != new.mapper {
        diffs.push(format!(
            "the mapper (was `{}`, now `{}`)",
            old.mapper, new.mapper
        ));
    }
    if old.combiner != new.combiner {
        diffs.push(format!(
            "the combiner (was `{}`, now `{}`)",
            show(&old.combiner),
            show(&new.combiner)
        ));
    }
    if old.reducer != new.reducer {
        diffs.push(format!(
            "the reducer (was `{}`, now `{}`)",
            show(&old.reducer),
            show(&new.reducer)
        ));
    }
    if old.reducers != new.reducers {
        diffs.push(format!("R (was {}, now {})", old.reducers, new.reducers));
    }
    if old.key != new.key {
        diffs.push("the separator or key fields".into());
    }
    if old.inputs != new.inputs {
        diffs.push("the input (other files, or files changed since)".into());
    }
    if old.output != new.output {
        diffs.push(format!("the output (was {})", old.output.display()));
    }
    if diffs.is_empty() {
        return Ok(());
    }
    Err(Error::usage(format!(
        "cannot resume: this work directory was made for another job: {} differ{}; run it again without --resume, with a new --workdir",
        diffs.join(", "),
        if diffs.len() == 1 { "s" } else { "" }
    )))
}

fn split_stage(args: SplitArgs) -> Result<()> {
    let reads_stdin =
        args.input.inputs.is_empty() || args.input.inputs.iter().any(|p| p.as_os_str() == "-");
    let wd = if reads_stdin || args.workdir.is_some() {
        let (wd, created) = open_workdir(args.workdir.as_deref(), false)?;
        if created {
            wd.mark_temporary()?;
        }
        Some(wd)
    } else {
        None
    };
    let spool = wd
        .as_ref()
        .map_or_else(|| PathBuf::from("."), WorkDir::input_dir);
    let files = split::resolve_inputs(&args.input.inputs, &spool)?;
    let jobs = args.jobs.map_or_else(cores, |j| j as usize);
    let size = args
        .input
        .split_size
        .unwrap_or_else(|| split::default_split_size(split::total_size(&files), jobs));
    let entries: Vec<Entry> = split::plan_splits(&files, size)?
        .into_iter()
        .enumerate()
        .map(|(index, split)| Entry::Split {
            workdir: wd.as_ref().map(|w| w.root().to_path_buf()),
            index,
            split,
        })
        .collect();
    print_manifest(&entries)
}

fn print_manifest(entries: &[Entry]) -> Result<()> {
    match manifest::write(&mut io::stdout().lock(), entries) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => {
            Err(Error::job(format!("cannot write stdout: {e}")))
        }
        _ => Ok(()),
    }
}

/// The work directory a stage uses: `--workdir`, else the one the manifest
/// names.
fn stage_workdir(given: Option<&Path>, entries: &[Entry], stage: &str) -> Result<WorkDir> {
    if let Some(dir) = given {
        return Ok(open_workdir(Some(dir), false)?.0);
    }
    match entries.iter().find_map(Entry::workdir) {
        Some(dir) => Ok(WorkDir::new(dir.clone())),
        None => Err(Error::usage(format!(
            "{stage}: no work directory: pass --workdir DIR, or pipe in the previous stage's lines"
        ))),
    }
}

fn map_stage(args: MapArgs) -> Result<()> {
    let placement = placement(&args.exec, args.workdir.as_deref())?;
    let cwd = cwd()?;
    check_programs(
        &cwd,
        &[
            ("mapper", Some(&args.map.mapper)),
            ("combiner", args.map.combiner.as_deref()),
        ],
    )?;
    let entries = manifest::read(io::stdin().lock(), "gmr map")?;
    let mut splits: Vec<(usize, Split)> = entries
        .iter()
        .filter_map(|e| match e {
            Entry::Split { index, split, .. } => Some((*index, split.clone())),
            _ => None,
        })
        .collect();
    if splits.len() != entries.len() {
        return Err(Error::usage(
            "gmr map: stdin must hold the split lines of `gmr split`",
        ));
    }
    splits.sort_by_key(|(i, _)| *i);
    let wd = match (&args.workdir, entries.iter().find_map(Entry::workdir)) {
        (None, Some(dir)) => WorkDir::new(dir.clone()),
        (given, _) => open_workdir(given.as_deref(), false)?.0,
    };
    wd.create()?;
    let pool = open_pool(placement, &wd, &cwd)?;
    let splits = splits.into_iter().map(|(_, s)| s).collect();
    let spec = new_spec(
        &wd,
        cwd,
        splits,
        &args.map,
        &args.perf,
        &args.key,
        pool.slots(),
        None,
    );
    fs::create_dir_all(&spec.output).map_err(|e| Error::io("cannot create", &spec.output, e))?;
    wd.save_spec(&spec)?;
    let exec = pool.executor(&wd, &spec);
    let tasks: Vec<TaskId> = (0..spec.splits.len()).map(TaskId::Map).collect();
    let bytes = spec.splits.iter().map(Split::len).sum();
    let (reports, totals) =
        Runner::new(exec.as_ref(), &args.exec)?.phase("map", &tasks, Some(bytes))?;
    check_counts(&spec, &totals, None)?;
    workdir::remove_attempt_files(&spec.output);
    let lines: Vec<Entry> = if spec.reducers == 0 {
        reports
            .iter()
            .enumerate()
            .map(|(i, r)| part_entry(&spec, i, r))
            .collect()
    } else {
        reports
            .iter()
            .map(|r| Entry::Map {
                workdir: wd.root().to_path_buf(),
                task: r.task.clone(),
                records_in: r.records_in,
                records_out: r.records_out,
                bytes_out: r.bytes_out,
            })
            .collect()
    };
    print_manifest(&lines)
}

fn part_entry(spec: &JobSpec, p: usize, r: &TaskReport) -> Entry {
    Entry::Part {
        partition: p as u32,
        path: spec.output.join(part_name(p)),
        records: r.records_out,
        bytes: r.bytes_out,
    }
}

fn shuffle_stage(args: ShuffleArgs) -> Result<()> {
    let placement = placement(&args.exec, args.workdir.as_deref())?;
    let entries = manifest::read(io::stdin().lock(), "gmr shuffle")?;
    let wd = stage_workdir(args.workdir.as_deref(), &entries, "gmr shuffle")?;
    let spec = wd.load_spec()?;
    let exec = open_pool(placement, &wd, &spec.cwd)?.executor(&wd, &spec);
    let tasks: Vec<TaskId> = (0..spec.reducers).map(TaskId::Shuffle).collect();
    let (reports, _) = Runner::new(exec.as_ref(), &args.exec)?.phase("shuffle", &tasks, None)?;
    wd.remove_scratch();
    let lines: Vec<Entry> = reports
        .iter()
        .enumerate()
        .map(|(p, r)| Entry::Partition {
            workdir: wd.root().to_path_buf(),
            partition: p as u32,
            path: wd.shuffle_part(p as u32),
            records: r.records_out,
            bytes: r.bytes_out,
        })
        .collect();
    print_manifest(&lines)
}

fn reduce_stage(args: ReduceArgs) -> Result<()> {
    let started = Instant::now();
    let placement = placement(&args.exec, args.workdir.as_deref())?;
    let cwd = cwd()?;
    check_programs(&cwd, &[("reducer", Some(&args.reducer))])?;
    let entries = manifest::read(io::stdin().lock(), "gmr reduce")?;
    let wd = stage_workdir(args.workdir.as_deref(), &entries, "gmr reduce")?;
    let mut spec = wd.load_spec()?;
    if spec.reducers == 0 {
        return Err(Error::usage(
            "gmr reduce: the job is map-only (-R 0); its output is already in the parts",
        ));
    }
    let output = prepare_output(&args.output)?;
    let to_stdout = output.is_none();
    spec.reducer = Some(args.reducer.clone());
    spec.output = output.unwrap_or_else(|| wd.default_output());
    fs::create_dir_all(&spec.output).map_err(|e| Error::io("cannot create", &spec.output, e))?;
    wd.save_spec(&spec)?;
    let exec = open_pool(placement, &wd, &spec.cwd)?.executor(&wd, &spec);
    let tasks: Vec<TaskId> = (0..spec.reducers).map(TaskId::Reduce).collect();
    let (reports, totals) =
        Runner::new(exec.as_ref(), &args.exec)?.phase("reduce", &tasks, None)?;
    let mut map = PhaseTotals::default();
    for i in 0..spec.splits.len() {
        if let Some(r) = task::committed_report(&wd, &spec, TaskId::Map(i)) {
            map.add(&r);
        }
    }
    check_counts(&spec, &map, Some(&totals))?;
    workdir::remove_attempt_files(&spec.output);
    wd.remove_scratch();
    deliver_output(&spec, spec.reducers as usize, to_stdout)?;
    // The pipeline ends here: a work directory only `gmr split` knew of
    // (stdin, no --workdir) would otherwise stay in $TMPDIR for good. To
    // reduce the same map output again, give the stages a --workdir.
    if args.workdir.is_none() && wd.is_temporary() {
        workdir::remove_path(wd.root());
    }
    if to_stdout {
        if !args.exec.quiet {
            let mut counters = Counters::new();
            reports
                .iter()
                .for_each(|r| add_counters(&mut counters, &r.counters));
            eprint!(
                "{}",
                crate::report::summary(started.elapsed(), &map, Some(&totals), &counters)
            );
        }
        return Ok(());
    }
    let lines: Vec<Entry> = reports
        .iter()
        .enumerate()
        .map(|(p, r)| part_entry(&spec, p, r))
        .collect();
    print_manifest(&lines)
}

/// `gmr task`: run one attempt of one task and print its report as one
/// JSON line; the protocol between the coordinator and remote hosts.
fn task_command(args: TaskArgs) -> Result<()> {
    if args.watch_stdin {
        // The SSH executor never writes to stdin; it closes when the
        // connection goes away (coordinator gone, attempt cancelled).
        std::thread::spawn(|| {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            crate::interrupt::trigger();
        });
    }
    // A host runs one task per core already: a task's parallel sort would
    // only oversubscribe it.
    let _ = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build_global();
    let wd = WorkDir::new(args.workdir);
    let spec = wd.load_spec()?;
    let id: TaskId = args.task.parse()?;
    match task::run(&wd, &spec, id, args.attempt) {
        Ok(report) => {
            println!("{}", serde_json::to_string(&report).expect("serializable"));
            Ok(())
        }
        Err(e) => {
            eprintln!("{}", serde_json::to_string(&e).expect("serializable"));
            Err(Error::job(format!("task {id} failed: {}", e.message)))
        }
    }
}
