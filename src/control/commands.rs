//! One function per subcommand: dispatch and glue. What a job is comes from
//! [`crate::control::plan`], how it runs from [`crate::control::lifecycle`]; a stage command adds
//! only the manifest it reads and the one it prints.

use crate::cli::flags::{
    Cli, Command, MapArgs, ReduceArgs, ReportArgs, RunArgs, ShuffleArgs, SplitArgs, StatusArgs,
    TaskArgs,
};
use crate::control::lifecycle::{self, Delivery, Ending, Lifecycle, SpecState};
use crate::control::manifest::{self, Entry, SplitPlan};
use crate::control::plan::{self, MapPlan, Placement, ReducePlan, RunOptions, RunPlan};
use crate::control::steps::{self, StepOf};
use crate::data::split;
use crate::error::{Error, Result};
use crate::observe::status::{JobStatus, State};
use crate::observe::tracker::{self, Tracker};
use crate::store::history::History;
use crate::store::input;
use crate::store::output::{self};
use crate::store::resources::{self, Resources};
use crate::store::spec::JobSpec;
use crate::store::workdir::WorkDir;
use crate::task::job::Job;
use crate::task::report::TaskReport;
use crate::task::{self, TaskId};
use std::io;
use std::path::Path;
use std::time::Instant;

/// When the command started, and the open-file limit it started with
/// (before [`resources::raise_open_file_limit`]), which commands get.
type Start = (Instant, Option<libc::rlimit>);

/// Runs a parsed command line.
pub(crate) fn dispatch(cli: Cli) -> Result<()> {
    let start = (Instant::now(), resources::raise_open_file_limit());
    match cli.command {
        Command::Run(args) if !args.steps.is_empty() => {
            // Each step's summary gives its own time.
            steps::run(*args, &|step_args, step| {
                run(step_args, (Instant::now(), start.1), Some(step))
            })
        }
        Command::Run(args) => run(*args, start, None),
        Command::Split(args) => split_stage(args),
        Command::Map(args) => map_stage(args, start),
        Command::Shuffle(args) => shuffle_stage(args, start),
        Command::Reduce(args) => reduce_stage(args, start),
        Command::Status(args) => status_command(args),
        Command::Report(args) => report_command(args),
        Command::Task(args) => task_command(args, start),
    }
}

/// How often `gmr status --watch` reads the status again.
const WATCH_EVERY: std::time::Duration = std::time::Duration::from_secs(2);

/// The work directory `gmr status` and `gmr report` look at: the one
/// given; else the current directory when it holds a job; else the newest
/// job of the history (its work directory while it holds the job, else
/// what the history kept of it).
fn job_to_show(given: Option<std::path::PathBuf>) -> Result<WorkDir> {
    if let Some(dir) = given {
        return Ok(WorkDir::new(dir));
    }
    let here = WorkDir::new(std::path::PathBuf::from("."));
    if here.status_path().exists() || here.spec_path().exists() || here.steps_path().exists() {
        return Ok(here);
    }
    let latest = History::new().and_then(|h| h.latest());
    match latest {
        Some(entry) => Ok(entry
            .workdir()
            .unwrap_or_else(|| WorkDir::new(entry.path().to_path_buf()))),
        None => Err(Error::usage(
            "the current directory holds no job, and no job was run yet without --workdir: \
             give the work directory of a job (its --workdir)",
        )),
    }
}

fn status_command(args: StatusArgs) -> Result<()> {
    use std::io::IsTerminal;
    let wd = job_to_show(args.workdir)?;
    let terminal = io::stdout().is_terminal();
    loop {
        // A job of several steps: its steps, then the one running (or last).
        let (status, text) = match wd.steps_path().exists() {
            true => steps::status(&wd, args.json)?,
            false => {
                let status = JobStatus::load(&wd)?;
                let text = match args.json {
                    true => {
                        String::from_utf8(crate::files::json_bytes(&status)).expect("JSON is UTF-8")
                    }
                    false => status.text(),
                };
                (status, text)
            }
        };
        if args.watch && terminal {
            // Home and clear, then the status: a display that stays put.
            output::write_stdout(format!("\x1b[H\x1b[2J{text}").as_bytes())?;
        } else {
            output::write_stdout(text.as_bytes())?;
        }
        if !args.watch || status.state != Some(State::Running) {
            return Ok(());
        }
        if !terminal {
            output::write_stdout(b"\n")?;
        }
        std::thread::sleep(WATCH_EVERY);
        if crate::interrupt::is_set() {
            return Err(Error::Interrupted);
        }
    }
}

fn report_command(args: ReportArgs) -> Result<()> {
    let wd = job_to_show(args.workdir)?;
    // A job of several steps: every step's report in one page.
    let page = match wd.steps_path().exists() {
        true => steps::report_page(&wd)?,
        false => crate::observe::htmlreport::render(&tracker::with_attempts(
            JobStatus::load(&wd)?,
            &wd.attempts_path(),
        )),
    };
    match args.output.as_deref() {
        Some(p) if p == Path::new("-") => output::write_stdout(page.as_bytes()),
        given => {
            let path = given.map_or_else(|| wd.report_html_path(), Path::to_path_buf);
            // In the work directory, private as the rest of it.
            let private = given.is_none();
            write_page(&path, page.as_bytes(), private)
                .map_err(|e| Error::io("cannot write", &path, e))?;
            eprintln!("gmr: wrote {}", path.display());
            Ok(())
        }
    }
}

/// Writes a page to `path`: in the work directory (`private`), 0600 and
/// never through a link; else where the user said, with the umask's mode.
fn write_page(path: &Path, bytes: &[u8], private: bool) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(if private { 0o600 } else { 0o666 })
        .custom_flags(if private { libc::O_NOFOLLOW } else { 0 })
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
}

/// `gmr run`: the whole job, or one step of a job of several (`step`).
fn run(args: RunArgs, start: Start, step: Option<StepOf>) -> Result<()> {
    let (plan, placement) = RunPlan::new(&args)?;
    let resume = plan.recorded.is_some();
    let mut options = RunOptions::new(&args.exec, resume);
    options.step = step;
    options.max_failed = args.max_failed_tasks;
    let delivery = match plan.output {
        Some(_) => Delivery::Directory,
        None => Delivery::Stdout,
    };
    let (wd, created) = WorkDir::open(args.workdir.as_deref(), !resume)?;
    // Before anything is written in it (a spooled stdin, job.json).
    let _lock = wd.lock()?;
    lifecycle::keeping_workdir(&wd, (created, step.is_none()), || {
        // Connecting hosts and planning many files take a while: the
        // status says so meanwhile.
        let planning = Tracker::planning(&wd, plan.recorded.as_ref().map(|r| r.job.as_str()));
        let planned = placement.connect(&wd, plan.cwd()).and_then(|pool| {
            let spec = plan.spec(&wd, pool.slots())?;
            pool.check_fits(&spec)?;
            // Held until the job ends: no other job writes its output.
            let lock = plan.make_output_ready()?;
            Ok((spec, pool, lock))
        });
        let (spec, pool, _lock) = planned.inspect_err(|e| planning.failed(e))?;
        // Ended, for a resumed job whose status keeps its phases.
        planning.end_phase("plan", &Default::default(), &[]);
        drop(planning);
        let mut job = Lifecycle::start(&wd, spec, SpecState::New, pool, &options, start)?;
        job.keep_workdir(!created);
        // A step's job is recorded as the whole job's (steps.rs).
        if step.is_none() {
            job.record_in(History::new().and_then(|h| h.record(wd.root())));
        }
        if created && !options.quiet {
            // Where to look while it runs: `gmr status` finds it too.
            eprintln!(
                "gmr: job {} in {} (removed after success; `gmr status` shows it)",
                crate::observe::status::short(&job.spec().job),
                wd.root().display()
            );
        }
        job.map()?;
        if job.spec().reducers > 0 {
            // A resumed job's committed parts are in the work directory.
            if delivery == Delivery::Stdout && !resume {
                job.parts_to_stdout();
            }
            job.reduce()?;
        }
        job.finish(delivery, Ending::Run)
    })
}

fn split_stage(args: SplitArgs) -> Result<()> {
    // Streams (stdin, FIFOs, `<(…)`) are spooled into a work directory.
    let streams =
        args.input.inputs.is_empty() || args.input.inputs.iter().any(|p| input::is_stream(p));
    let (wd, created) = if streams || args.workdir.is_some() {
        let (wd, created) = WorkDir::open(args.workdir.as_deref(), false)?;
        if created {
            wd.mark_temporary()?;
        }
        (Some(wd), created)
    } else {
        (None, false)
    };
    // Without a work directory no input is a stream: nothing is spooled.
    let spool = wd.as_ref().map(WorkDir::input_dir);
    let jobs = args
        .jobs
        .map_or_else(crate::store::resources::cores, |j| j as usize);
    let splits = plan::split_inputs(&args.input, spool.as_deref(), jobs);
    // A work directory made for a stream that was not saved (an interrupt,
    // a bad input) serves no later stage.
    if let (Err(_), Some(wd), true) = (&splits, &wd, created) {
        crate::files::remove_path(wd.root());
    }
    let splits = splits?;
    // What gmr map checks the lines against: the run, and each file's size
    // (where its last split ends).
    let plan = SplitPlan {
        id: crate::store::spec::new_job_id(),
        splits: splits.len(),
        null: args.input.null,
    };
    let sizes = split::planned_sizes(&splits);
    let entries: Vec<Entry> = splits
        .iter()
        .enumerate()
        .map(|(index, split)| Entry::Split {
            workdir: wd.as_ref().map(|w| w.root().to_path_buf()),
            index,
            size: sizes.get(split.path.as_path()).copied(),
            split: split.clone(),
            plan: Some(plan.clone()),
        })
        .collect();
    print_manifest(&entries)
}

fn print_manifest(entries: &[Entry]) -> Result<()> {
    match manifest::write(&mut io::stdout().lock(), entries) {
        Err(e) if e.kind() != io::ErrorKind::BrokenPipe => Err(Error::Job {
            message: format!("cannot write stdout: {e}"),
            source: Some(Box::new(e)),
        }),
        _ => Ok(()),
    }
}

fn map_stage(args: MapArgs, start: Start) -> Result<()> {
    let entries = manifest::read(io::stdin().lock(), "gmr map")?;
    let (plan, placement) = MapPlan::new(&args, &entries)?;
    let wd = &plan.workdir;
    wd.create()?;
    let _lock = wd.lock()?;
    if plan.created {
        // Only this pipeline knows it: `gmr reduce` removes it at the end.
        wd.mark_temporary()?;
    }
    // Stamping many files takes a while: the status says so meanwhile.
    let planning = Tracker::planning(wd, None);
    let planned = placement.connect(wd, plan.cwd()).and_then(|pool| {
        let spec = plan.spec(pool.slots())?;
        pool.check_fits(&spec)?;
        Ok((spec, pool))
    });
    let (spec, pool) = match planned {
        Ok(planned) => planned,
        Err(e) => {
            planning.failed(&e);
            // No job was saved in it: a directory this stage made serves
            // nothing.
            if plan.created {
                crate::files::remove_path(wd.root());
            }
            return Err(e);
        }
    };
    drop(planning);
    let options = RunOptions::new(&args.exec, false);
    let mut job = Lifecycle::start(wd, spec, SpecState::New, pool, &options, start)?;
    let reports = job
        .map()
        .map_err(|e| lifecycle::kept_for_inspection(wd, e))?;
    let lines: Vec<Entry> = if job.spec().reducers == 0 {
        reports
            .iter()
            .enumerate()
            .map(|(i, r)| part_entry(job.spec(), i, r))
            .collect()
    } else {
        reports
            .iter()
            .map(|r| Entry::Map {
                workdir: wd.root().to_path_buf(),
                job: r.job.clone(),
                task: r.task.clone(),
                records_in: r.records_in,
                records_out: r.records_out,
                bytes_out: r.bytes_out,
            })
            .collect()
    };
    job.finish(Delivery::Stay, Ending::Stage { summary: false })?;
    print_manifest(&lines)
}

fn part_entry(spec: &JobSpec, p: usize, r: &TaskReport) -> Entry {
    Entry::Part {
        partition: p as u32,
        path: spec.part_path(p),
        records: r.records_out,
        bytes: r.bytes_out,
    }
}

fn shuffle_stage(args: ShuffleArgs, start: Start) -> Result<()> {
    if !args.exec.env.is_empty() {
        return Err(Error::usage(
            "gmr shuffle runs no command: give --env to gmr map and gmr reduce",
        ));
    }
    let placement = Placement::new(&args.exec, args.workdir.as_deref())?;
    let entries = manifest::read(io::stdin().lock(), "gmr shuffle")?;
    let (wd, spec) = plan::stage_job(args.workdir.as_deref(), &entries, "gmr shuffle")?;
    let _lock = wd.lock()?;
    let pool = placement.connect(&wd, &spec.cwd)?;
    pool.check_fits(&spec)?;
    let options = RunOptions::new(&args.exec, false);
    let mut job = Lifecycle::start(&wd, spec, SpecState::Saved, pool, &options, start)?;
    let reports = job
        .shuffle()
        .map_err(|e| lifecycle::kept_for_inspection(&wd, e))?;
    let lines: Vec<Entry> = reports
        .iter()
        .enumerate()
        .map(|(p, r)| Entry::Partition {
            workdir: wd.root().to_path_buf(),
            job: r.job.clone(),
            partition: p as u32,
            path: wd.shuffle_part(p as u32),
            records: r.records_out,
            bytes: r.bytes_out,
        })
        .collect();
    job.finish(Delivery::Stay, Ending::Stage { summary: false })?;
    print_manifest(&lines)
}

fn reduce_stage(args: ReduceArgs, start: Start) -> Result<()> {
    let entries = manifest::read(io::stdin().lock(), "gmr reduce")?;
    let (plan, placement) = ReducePlan::new(&args, &entries)?;
    let wd = &plan.workdir;
    let _lock = wd.lock()?;
    let to_stdout = plan.output.is_none();
    let pool = placement.connect(wd, &plan.spec.cwd)?;
    pool.check_fits(&plan.spec)?;
    // Held until the stage ends: no other job writes its output.
    let _lock = plan.make_output_ready()?;
    wd.discard_reduce()?;
    let options = RunOptions::new(&args.exec, false);
    let spec = plan.spec.clone();
    let mut job = Lifecycle::start(wd, spec, SpecState::New, pool, &options, start)?;
    let reports = job
        .reduce()
        .map_err(|e| lifecycle::kept_for_inspection(wd, e))?;
    let lines: Vec<Entry> = reports
        .iter()
        .enumerate()
        .map(|(p, r)| part_entry(job.spec(), p, r))
        .collect();
    let delivery = if to_stdout {
        Delivery::Stdout
    } else {
        Delivery::Directory
    };
    job.finish(delivery, Ending::Stage { summary: to_stdout })?;
    // The pipeline ends here: a work directory only `gmr split` knew of
    // (stdin, no --workdir) would otherwise stay in $TMPDIR for good. To
    // reduce the same map output again, give the stages a --workdir.
    if args.workdir.is_none() && wd.is_temporary() {
        crate::files::remove_path(wd.root());
    }
    if to_stdout {
        return Ok(());
    }
    print_manifest(&lines)
}

/// `gmr task`: run one attempt of one task and print its report as one
/// JSON line; the protocol between the coordinator and remote hosts
/// (docs/contracts.md §5).
fn task_command(args: TaskArgs, (_, child_nofile): Start) -> Result<()> {
    if args.watch_stdin {
        // Past the script the remote shell read, the SSH executor writes
        // nothing to stdin; it closes when the connection goes away
        // (coordinator gone, attempt cancelled).
        std::thread::spawn(|| {
            let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            crate::interrupt::trigger();
        });
    }
    let wd = WorkDir::new(args.workdir);
    let spec = match &args.spec_digest {
        Some(digest) => JobSpec::load_checked(&wd, digest)?,
        None => JobSpec::load(&wd)?,
    };
    let job = Job::new(spec)?;
    if let Some(slots) = args.worker {
        let res = Resources::new(slots, child_nofile);
        let at_once = args.cores.unwrap_or(slots).clamp(1, slots);
        return crate::exec::worker::serve(wd, job, std::sync::Arc::new(res), slots, at_once);
    }
    // A host runs one task per slot, each in a process of its own: a
    // task's parallel sort would only oversubscribe it.
    let res = Resources::new(1, child_nofile);
    let id: TaskId = args.task.unwrap_or_default().parse()?;
    match task::run(&wd, &job, &res, id, args.attempt) {
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
