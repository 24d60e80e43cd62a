//! Turns parsed arguments into a job, once: where its tasks run, its
//! commands parsed and checked with the combiner decided, its inputs
//! resolved and split, its output checked. As with ripgrep's `LowArgs ->
//! HiArgs`, every decision that needs more than one flag is taken here, and
//! what is decided is the [`JobSpec`] that every task reads; the rest of
//! gmr never looks at a flag again.
//!
//! Some decisions need the work directory or the hosts first (standard
//! input is spooled into the work directory; the default split size and R
//! follow from the slots the hosts offer), so a plan is made in two steps:
//! a draft from the flags alone, checked before anything is made on disk,
//! then the complete spec once the work directory and the slots exist.

use crate::cli::flags::{
    ExecArgs, InputArgs, KeyArgs, MapArgs, MapperArgs, OutputArgs, PerfArgs, ReduceArgs, RunArgs,
};
use crate::control::manifest::{self, Entry};
use crate::data::record::KeySpec;
use crate::data::split::{self, Split};
use crate::error::{Error, Result};
use crate::exec::hosts::{self, HostEntry};
use crate::exec::remote;
use crate::exec::sbatch;
use crate::exec::slurm::Allocation;
use crate::exec::ssh::{self, HostPool};
use crate::exec::sshconfig::ConfigFiles;
use crate::exec::{Pool, Slots};
use crate::store::input;
use crate::store::output::{OutputDir, OutputLock};
use crate::store::resources;
use crate::store::spec::{self, FORMAT_VERSION, JobSpec};
use crate::store::workdir::WorkDir;
use crate::task::job::{self, Job};
use crate::task::program::Program;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Tasks to run at once on this machine: `-j`, or the cores.
pub(crate) fn jobs(exec: &ExecArgs) -> usize {
    exec.jobs.map_or_else(resources::cores, |j| j as usize)
}

/// The directory commands run in: the user's current directory.
pub(crate) fn cwd() -> Result<PathBuf> {
    std::env::current_dir().map_err(|e| Error::Usage {
        message: format!("cannot read the current directory: {e}"),
        source: Some(Box::new(e)),
    })
}

/// How the coordinator runs a job's phases: the reliability and display
/// flags.
#[derive(Debug, Clone)]
pub(crate) struct RunOptions {
    /// Retries of a failed task.
    pub(crate) retries: u32,
    /// No progress display and no summary.
    pub(crate) quiet: bool,
    /// Where one JSON line per attempt is appended.
    pub(crate) joblog: Option<PathBuf>,
    /// Status lines on a stderr that is not a terminal, this often (None:
    /// never).
    pub(crate) status_interval: Option<std::time::Duration>,
    /// Reuse the tasks that committed in an earlier run (`--resume`).
    pub(crate) resume: bool,
    /// Which step of a job of several this run is.
    pub(crate) step: Option<crate::control::steps::StepOf>,
    /// `--max-failed-tasks`: map tasks that may be skipped.
    pub(crate) max_failed: Option<crate::cli::flags::MaxFailed>,
}

impl RunOptions {
    /// The options of `--retries`, `--quiet`, `--joblog` and
    /// `--status-interval`.
    pub(crate) fn new(ex: &ExecArgs, resume: bool) -> RunOptions {
        RunOptions {
            retries: ex.retries,
            quiet: ex.quiet,
            joblog: ex.joblog.clone(),
            status_interval: (!ex.status_interval.is_zero()).then_some(ex.status_interval),
            resume,
            step: None,
            max_failed: None,
        }
    }
}

/// Whether `path` holds a public key (`ssh-ed25519 AAAA...`), not the
/// private one `--identity` needs.
fn is_public_key(path: &Path) -> bool {
    use std::io::Read;
    let mut head = [0u8; 64];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let head = &head[..n];
    ["ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| head.starts_with(p.as_bytes()))
}

/// Reduce partitions per task slot when `-R` is not given. One per slot
/// leaves the reduce phase waiting on the partition that drew the heavy
/// keys: with the word count of the benchmark corpus (its commonest word
/// 3% of the records), the largest partition holds 1.05x the even share
/// of records on 2 slots and 1.66x on 16; two per slot, handed out
/// largest first, make the busiest slot's 1.00x and 1.19x (Hadoop's
/// advice is 1.75 reducers per slot, for the same reason). More would
/// balance better still, but each partition is a reducer process and an
/// output file, and costs a task's start.
const REDUCERS_PER_SLOT: u32 = 2;

/// The reduce partitions of a job with `slots` and no `-R`.
fn default_reducers(slots: usize) -> u32 {
    let slots = u32::try_from(slots).unwrap_or(u32::MAX);
    slots
        .saturating_mul(REDUCERS_PER_SLOT)
        .clamp(1, crate::data::sort::MAX_PARTITIONS)
}

/// Where a job's tasks are to run, checked before anything is made.
pub(crate) enum Placement {
    /// This machine, `-j` slots.
    Local(usize),
    /// The hosts of `--hosts`.
    Hosts {
        /// The hosts file's or list's entries.
        entries: Vec<HostEntry>,
        /// How to connect and what to run there.
        options: ssh::Options,
        /// Copy this binary into the work directory for the hosts to run
        /// (no `--remote-gmr`).
        copy_gmr: bool,
    },
    /// Slurm (`--slurm`): the steps of the allocation gmr runs in, or job
    /// arrays outside one.
    Slurm {
        /// The allocation, or the slots and `MaxArraySize` of arrays.
        alloc: Result<Allocation, (usize, usize)>,
        /// `--remote-gmr`, if given.
        remote_gmr: Option<PathBuf>,
        /// `--slurm-args`, split at blanks.
        srun_args: Vec<String>,
    },
}

impl Placement {
    /// Reads and checks `--hosts` and the flags that go with it. `--hosts`
    /// needs an explicit work directory: remote tasks read their input and
    /// write their output there.
    pub(crate) fn new(ex: &ExecArgs, workdir: Option<&Path>) -> Result<Placement> {
        if ex.slurm {
            if workdir.is_none() {
                return Err(Error::usage(
                    "--slurm needs --workdir DIR, on a filesystem every node mounts at the same path (e.g. NFS, Lustre): the tasks read their input and write their output there",
                ));
            }
            let per_node = ex.jobs.map(|j| j as usize);
            let alloc = match Allocation::from_env(per_node)? {
                Some(alloc) => Ok(alloc),
                None => Err((
                    per_node.unwrap_or_else(sbatch::default_slots),
                    sbatch::max_array_size()?,
                )),
            };
            return Ok(Placement::Slurm {
                alloc,
                remote_gmr: ex.remote_gmr.clone(),
                srun_args: ex
                    .slurm_args
                    .as_deref()
                    .unwrap_or_default()
                    .split_whitespace()
                    .map(str::to_string)
                    .collect(),
            });
        }
        let Some(value) = &ex.hosts else {
            if ex.remote_gmr.is_some() {
                return Err(Error::usage(
                    "--remote-gmr is the gmr of the hosts or Slurm nodes: give --hosts or --slurm",
                ));
            }
            return Ok(Placement::Local(jobs(ex)));
        };
        if workdir.is_none() {
            return Err(Error::usage(
                "--hosts needs --workdir DIR, on a filesystem every host mounts at the same path (e.g. NFS): remote tasks read their input and write their output there",
            ));
        }
        let entries = hosts::load(value)?;
        let missing = |what: &str, path: &Path| {
            Error::usage(format!("{what} {} does not exist", path.display()))
        };
        if let Some(id) = &ex.identity {
            if !id.is_file() {
                return Err(missing("the identity file", id));
            }
            if is_public_key(id) {
                let private = match id.extension().is_some_and(|e| e == "pub") {
                    true => format!(" ({})", id.with_extension("").display()),
                    false => String::new(),
                };
                return Err(Error::usage(format!(
                    "--identity {} is a public key; give the private key{private}",
                    id.display()
                )));
            }
        }
        if let Some(file) = &ex.known_hosts
            && !file.is_file()
            && !ex.accept_new_host_keys
        {
            return Err(missing("the known_hosts file", file));
        }
        let config = match &ex.ssh_config {
            None => ConfigFiles::Default,
            Some(file) => {
                if file.as_os_str() != "none" && !file.is_file() {
                    return Err(missing("the ssh configuration file", file));
                }
                ConfigFiles::File(file.clone())
            }
        };
        // Without --remote-gmr, a copy in the work directory, made by
        // `connect` (the work directory does not exist yet).
        let copy_gmr = ex.remote_gmr.is_none();
        let remote_gmr = ex.remote_gmr.clone().unwrap_or_default();
        let options = ssh::Options {
            ssh: ssh::SshFlags {
                config,
                identity: ex.identity.clone(),
                known_hosts: ex.known_hosts.clone(),
                global_known_hosts: ex.global_known_hosts.clone(),
                accept_new_host_keys: ex.accept_new_host_keys,
                timeout: ex.ssh_timeout.map(Duration::from_secs),
            },
            remote_gmr,
            gmr_digest: None,
            local_slots: jobs(ex),
        };
        Ok(Placement::Hosts {
            entries,
            options,
            copy_gmr,
        })
    }

    /// The slots of the job in `wd`: this machine's, or the hosts', which
    /// are connected and checked now (see [`HostPool::connect`]).
    pub(crate) fn connect(self, wd: &WorkDir, cwd: &Path) -> Result<Pool> {
        match self {
            Placement::Local(n) => Ok(Pool::Local(n)),
            Placement::Slurm {
                alloc,
                remote_gmr,
                srun_args,
            } => {
                // The copy gmr made is checked on the node before it runs.
                let gmr = match remote_gmr {
                    Some(path) => (path, None),
                    None => {
                        let (path, digest) = remote::copy_of_gmr(wd)?;
                        (path, Some(digest))
                    }
                };
                Ok(match alloc {
                    Ok(alloc) => Pool::Steps(alloc, gmr, srun_args),
                    Err(sizes) => Pool::Arrays(sizes, gmr, srun_args),
                })
            }
            Placement::Hosts {
                entries,
                mut options,
                copy_gmr,
            } => {
                if copy_gmr {
                    let (path, digest) = remote::copy_of_gmr(wd)?;
                    options.remote_gmr = path;
                    options.gmr_digest = Some(digest);
                }
                let pool = HostPool::connect(&entries, wd, cwd, options)?;
                for warning in &pool.warnings {
                    eprintln!("gmr: {warning}");
                }
                Ok(Pool::Hosts(Box::new(pool)))
            }
        }
    }
}

/// The map side of a job as the flags give it, before its inputs are
/// known; [`MapSide::spec`] completes it with the slots.
struct MapSide<'a> {
    cwd: PathBuf,
    map: &'a MapperArgs,
    perf: &'a PerfArgs,
    key: &'a KeyArgs,
    exec: &'a ExecArgs,
    reducer: Option<&'a str>,
}

impl<'a> MapSide<'a> {
    /// The map side of `gmr run` or `gmr map` in the current directory,
    /// its commands checked.
    fn checked(
        map: &'a MapperArgs,
        perf: &'a PerfArgs,
        key: &'a KeyArgs,
        exec: &'a ExecArgs,
        reducer: Option<&'a str>,
    ) -> Result<MapSide<'a>> {
        let side = MapSide {
            cwd: cwd()?,
            map,
            perf,
            key,
            exec,
            reducer,
        };
        side.check()?;
        Ok(side)
    }

    /// The spec of a new job with `slots`, its inputs and splits not yet
    /// planned. A built-in reducer that can merge partial results combines
    /// map-side too, unless the job names a combiner.
    fn spec(&self, slots: Slots, output: PathBuf) -> Result<JobSpec> {
        // A record's length is kept in 32 bits in the sort buffer.
        if !(1..=MAX_RECORD).contains(&self.perf.max_record) {
            return Err(Error::usage(format!(
                "--max-record {} is out of range: give 1 to {} bytes (e.g. 64M, 1G)",
                self.perf.max_record, MAX_RECORD
            )));
        }
        if self.key.total_order && self.key.partition_fields.is_some() {
            return Err(Error::usage(
                "--total-order partitions by ranges of the order, --partition-fields by a hash: give one of them",
            ));
        }
        let mut spec = JobSpec {
            version: FORMAT_VERSION,
            job: spec::new_job_id(),
            cwd: self.cwd.clone(),
            inputs: Vec::new(),
            splits: Vec::new(),
            mapper: self.map.mapper.clone(),
            combiner: self.map.combiner.clone(),
            reducer: self.reducer.map(str::to_string),
            reducers: self
                .map
                .reducers
                .unwrap_or_else(|| default_reducers(slots.total)),
            key: KeySpec {
                separator: self.key.separator,
                key_fields: self.key.key_fields,
                partition_fields: match self.key.partition_fields {
                    Some(n) if n > self.key.key_fields => {
                        return Err(Error::usage(format!(
                            "--partition-fields {n} is more than the key's {} field{}: give at most --key-fields",
                            self.key.key_fields,
                            if self.key.key_fields == 1 { "" } else { "s" }
                        )));
                    }
                    // All of the key's fields: the key itself.
                    Some(n) if n == self.key.key_fields => None,
                    n => n,
                },
                // Set by the plan, from the input's flags (-z).
                eol: b'\n',
            },
            sort_keys: self.key.sort_key.clone(),
            total_order: self.key.total_order,
            intermediate: false,
            then_map: None,
            cuts: Vec::new(),
            // The buffer is shared by the map tasks that run at once on a host.
            sort_buffer: (self.perf.sort_buffer / slots.per_host as u64).max(64 << 10),
            max_record: self.perf.max_record,
            one_mapper_per_task: self.perf.one_mapper_per_task,
            output,
            ok_exit: self.exec.ok_exit.0.clone(),
            task_timeout_ms: self.exec.task_timeout.as_millis() as u64,
            task_memory: self.exec.task_memory,
            memfree: self.exec.memfree,
            by_key: None,
            compress: None,
            env: spec::job_env(&self.exec.env)?,
        };
        if spec.keys_consecutive() {
            spec.combiner = job::implied_combiner(self.map.combiner.as_deref(), self.reducer)?;
        } else if let Some(c) = &spec.combiner {
            return Err(Error::usage(format!(
                "--combiner `{c}` with --sort-key {}: a key's records are not consecutive in that order, so what a combiner sees would depend on the splits; combine in the mapper, or make the sort keys start with the key (--sort-key 1,1 first)",
                spec.sort_keys.join(" --sort-key ")
            )));
        }
        Ok(spec)
    }

    /// Parses and checks every command before anything runs.
    fn check(&self) -> Result<()> {
        if self.map.reducers == Some(0) {
            // A map-only job neither combines, partitions nor sorts: a flag
            // for those would be silently without effect.
            let given = [
                (self.map.combiner.is_some(), "-c"),
                (!self.key.sort_key.is_empty(), "--sort-key"),
                (self.key.total_order, "--total-order"),
                (self.key.partition_fields.is_some(), "--partition-fields"),
            ];
            if let Some((_, flag)) = given.iter().find(|(set, _)| *set) {
                return Err(Error::usage(format!(
                    "{flag} has no effect with -R 0 (a map-only job: the mapper's output is the output); drop it, or give -R N"
                )));
            }
        }
        let one = Slots {
            total: 1,
            per_host: 1,
        };
        Job::new(self.spec(one, PathBuf::new())?)?.check()
    }
}

/// The splits of `files`: `--split-size`, or a size that gives every one
/// of `slots` tasks work. A compressed file larger than a split is
/// decompressed into `spool_dir` first, and its copy split instead
/// ([`input::spool_compressed`]); returns the splits and each such file
/// with its copy.
fn plan_splits(
    files: &[PathBuf],
    input: &InputArgs,
    slots: usize,
    spool_dir: Option<&Path>,
) -> Result<(Vec<Split>, input::Copies)> {
    if input.whole_files {
        // Nothing to cut: no compressed file is decompressed ahead either.
        return Ok((split::whole_files(files)?, Vec::new()));
    }
    let size_for = |files: &[PathBuf]| {
        input
            .split_size
            .unwrap_or_else(|| split::default_split_size(&split::file_sizes(files), slots))
    };
    // Without a work directory (`gmr split` of files) nothing is copied:
    // a compressed file is one split.
    let spools = match spool_dir {
        Some(dir) => input::spool_compressed(files, dir, size_for(files), slots)?,
        None => Vec::new(),
    };
    let files: Vec<PathBuf> = files
        .iter()
        .map(|f| {
            spools
                .iter()
                .find(|(o, _)| o == f)
                .map_or(f, |(_, s)| s)
                .clone()
        })
        .collect();
    let mut splits = split::plan_splits(&files, size_for(&files), input.eol())?;
    input::mark_origins(&mut splits, &spools);
    Ok((splits, spools))
}

/// The files to stamp: the inputs, then the decompressed copies.
fn stamped_files(files: &[PathBuf], spools: &[(PathBuf, PathBuf)]) -> Vec<PathBuf> {
    let mut all = files.to_vec();
    for (_, spool) in spools {
        if !all.contains(spool) {
            all.push(spool.clone());
        }
    }
    all
}

/// The largest `--max-record`: the sort buffer keeps a record's length in
/// 32 bits.
const MAX_RECORD: u64 = 2 << 30;

/// `gmr run`: what the flags decide, checked before anything is made.
pub(crate) struct RunPlan<'a> {
    args: &'a RunArgs,
    side: MapSide<'a>,
    /// The recorded spec of the job being resumed.
    pub(crate) recorded: Option<JobSpec>,
    /// The output directory, checked; None for stdout.
    pub(crate) output: Option<OutputDir>,
}

impl<'a> RunPlan<'a> {
    /// Checks the flags, the commands, the job to resume and the output
    /// directory; nothing is made in a work directory yet. Returns the plan
    /// and where its tasks are to run.
    pub(crate) fn new(args: &'a RunArgs) -> Result<(RunPlan<'a>, Placement)> {
        let placement = Placement::new(&args.exec, args.workdir.as_deref())?;
        let map_only = args.map.reducers == Some(0);
        if map_only && args.reduce.reducer.is_some() {
            return Err(Error::usage(
                "-r has no effect with -R 0 (a map-only job: the mapper's output is the output); drop it, or give -R N",
            ));
        }
        let reducer = if map_only {
            None
        } else {
            args.reduce.reducer.as_deref()
        };
        let side = MapSide::checked(&args.map, &args.perf, &args.key, &args.exec, reducer)?;
        if !map_only && reducer.is_none() {
            return Err(Error::usage("a reducer (-r CMD) is needed unless -R 0"));
        }
        let recorded = match (&args.workdir, args.resume) {
            (Some(dir), true) => Some(
                JobSpec::load(&WorkDir::new(dir))
                    .map_err(|e| e.context(|msg| format!("nothing to resume: {msg}")))?,
            ),
            _ => None,
        };
        if let Some(wd) = &args.workdir {
            crate::store::workdir::check_apart(
                wd,
                args.output.output.as_deref(),
                &args.input.inputs,
            )?;
        }
        let output = match (&recorded, &args.output.output) {
            // A resumed job keeps the parts it committed in its output
            // directory.
            (Some(old), Some(dir)) if std::path::absolute(dir).is_ok_and(|d| d == old.output) => {
                Some(OutputDir::keep(old.output.clone()))
            }
            (_, dir) => {
                // A job in a new work directory in $TMPDIR: keep all of it.
                let temp = std::env::temp_dir();
                let mut keep = vec![
                    ("the current directory", side.cwd.as_path()),
                    (
                        "the work directory",
                        args.workdir.as_deref().unwrap_or(&temp),
                    ),
                ];
                let inputs = args.input.inputs.iter().filter(|p| p.as_os_str() != "-");
                keep.extend(inputs.map(|p| ("the input", p.as_path())));
                OutputDir::check(dir.as_deref(), args.output.force, &keep)?
            }
        };
        let plan = RunPlan {
            args,
            side,
            recorded,
            output,
        };
        Ok((plan, placement))
    }

    /// Makes the output directory ready, replacing its files with
    /// `--force`: call it once every check has passed ([`RunPlan::spec`]).
    pub(crate) fn make_output_ready(&self) -> Result<Option<OutputLock>> {
        self.output.as_ref().map(OutputDir::make_ready).transpose()
    }

    /// The directory commands run in.
    pub(crate) fn cwd(&self) -> &Path {
        &self.side.cwd
    }

    /// The complete spec, once the work directory `wd` exists and the job
    /// has `slots`: inputs resolved (standard input spooled into `wd`) and
    /// stamped, splits planned, or those of the job being resumed, which
    /// must be the same job.
    pub(crate) fn spec(&self, wd: &WorkDir, slots: Slots) -> Result<JobSpec> {
        let inputs = &self.args.input.inputs;
        // Streams can be read once: a resumed job reads their spools.
        let reuse_spool = self.recorded.as_ref().is_some_and(|old| {
            inputs.iter().all(|p| input::is_stream(p))
                && old
                    .inputs
                    .iter()
                    .all(|i| i.path.starts_with(wd.input_dir()))
        });
        if reuse_spool {
            // A stream can be read once: the first run's copy is the input.
            eprintln!(
                "gmr: resuming with the input the first run saved in {}; this run's stdin (or stream) is not read",
                wd.input_dir().display()
            );
        }
        let files = match &self.recorded {
            Some(old) if reuse_spool => old.inputs.iter().map(|i| i.path.clone()).collect(),
            _ => input::resolve_inputs(inputs, &wd.input_dir(), true)?,
        };
        let output = self
            .output
            .as_ref()
            .map_or_else(|| wd.default_output(), |o| o.path().to_path_buf());
        let mut spec = self.side.spec(slots, output)?;
        spec.compress = self.args.output.compress;
        spec.by_key = by_key(&self.args.output)?;
        spec.key.eol = self.args.input.eol();
        check_record_end(&spec.key)?;
        spec.intermediate = self.args.intermediate;
        spec.then_map = self.args.then_map.clone();
        // A later step's mapper, run in this step's reducers, is checked
        // as the step's own commands are: before any task runs.
        if let Some(then) = &spec.then_map {
            Program::parse_flag(&then.mapper, "-m")?.check("mapper", &spec.cwd)?;
        }
        let (splits, spools) = match &self.recorded {
            // The recorded plan, not a new one (below), with the copies it
            // decompressed.
            Some(old) => (Vec::new(), recorded_spools(old)),
            None => plan_splits(&files, &self.args.input, slots.total, Some(&wd.input_dir()))?,
        };
        spec.inputs = split::stamp_inputs(&stamped_files(&files, &spools))?;
        spec.splits = match &self.recorded {
            Some(old) => {
                check_resumable(old, &spec)?;
                // The next step's mapper fused into the reducers changed:
                // the map tasks stand, every reduce task runs again.
                if old.then_map != spec.then_map {
                    for p in 0..old.reducers {
                        let task = crate::task::TaskId::Reduce(p).to_string();
                        crate::files::remove_path(&wd.report_path(&task));
                    }
                }
                remove_unrecorded_parts(wd, old)?;
                // The same job: its committed tasks are this one's. Its
                // --ok-exit and --task-timeout may change (a job that
                // failed on grep's status 1 resumes with --ok-exit 0,1).
                spec.job = old.job.clone();
                // The same partitions: the cuts its tasks used.
                spec.cuts = old.cuts.clone();
                // The recorded plan, not a new one: a different split size
                // would make different tasks.
                old.splits.clone()
            }
            None => splits,
        };
        if spec.total_order && self.recorded.is_none() {
            spec.cuts = total_order_cuts(&spec, wd)?;
        }
        Ok(spec)
    }
}

/// `gmr map`: the splits of `gmr split`'s lines, the commands and the work
/// directory, checked before anything is made in it.
pub(crate) struct MapPlan<'a> {
    side: MapSide<'a>,
    splits: Vec<Split>,
    /// The records' end, as `gmr split` cut them (`-z`: NUL).
    eol: u8,
    /// The work directory: `--workdir`, else the one the lines name, else
    /// a new temporary one.
    pub(crate) workdir: WorkDir,
    /// Whether this stage made the work directory (then `gmr reduce`
    /// removes it at the end of the pipeline).
    pub(crate) created: bool,
}

impl<'a> MapPlan<'a> {
    /// Checks the flags, the commands and `entries` (the split lines on
    /// stdin), and refuses a work directory that holds a job already.
    /// Returns the plan and where its tasks are to run.
    pub(crate) fn new(args: &'a MapArgs, entries: &[Entry]) -> Result<(MapPlan<'a>, Placement)> {
        let placement = Placement::new(&args.exec, args.workdir.as_deref())?;
        let side = MapSide::checked(&args.map, &args.perf, &args.key, &args.exec, None)?;
        let mut splits: Vec<(usize, Split)> = entries
            .iter()
            .filter_map(|e| match e {
                Entry::Split { index, split, .. } => Some((*index, split.clone())),
                _ => None,
            })
            .collect();
        if splits.len() != entries.len() {
            return Err(Error::usage(
                "the stdin of gmr map must hold the split lines of `gmr split`",
            ));
        }
        manifest::check_splits(entries)?;
        splits.sort_by_key(|(i, _)| *i);
        // Records end as `gmr split -z` cut them.
        let null = entries
            .iter()
            .any(|e| matches!(e, Entry::Split { plan: Some(p), .. } if p.null));
        let (workdir, created) = match (&args.workdir, entries.iter().find_map(Entry::workdir)) {
            (None, Some(dir)) => {
                let wd = WorkDir::new(dir.clone());
                wd.check_owner()?;
                (wd, false)
            }
            (given, _) => WorkDir::open(given.as_deref(), false)?,
        };
        // A work directory belongs to one job: a new map over another job's
        // committed tasks would mix the two.
        if workdir.spec_path().exists() {
            let which = JobSpec::load(&workdir).map_or_else(
                |_| "a job".to_string(),
                |old| format!("job {} (mapper `{}`)", old.job, old.mapper),
            );
            return Err(Error::usage(format!(
                "work directory {} already holds {which}; remove it or choose another --workdir",
                workdir.root().display(),
            )));
        }
        let plan = MapPlan {
            side,
            splits: splits.into_iter().map(|(_, s)| s).collect(),
            eol: if null { 0 } else { b'\n' },
            workdir,
            created,
        };
        Ok((plan, placement))
    }

    /// The directory commands run in.
    pub(crate) fn cwd(&self) -> &Path {
        &self.side.cwd
    }

    /// The spec of the new job, with `slots`; its inputs are stamped now.
    pub(crate) fn spec(&self, slots: Slots) -> Result<JobSpec> {
        let wd = &self.workdir;
        let splits = &self.splits;
        let mut spec = self.side.spec(slots, wd.default_output())?;
        spec.key.eol = self.eol;
        check_record_end(&spec.key)?;
        // Each file once, with where its last split ends.
        let planned = split::planned_sizes(splits);
        let files: Vec<PathBuf> = planned.keys().map(|p| p.to_path_buf()).collect();
        spec.inputs = split::stamp_inputs(&files)?;
        // The split lines carry no stamp: a file is as `gmr split` planned it
        // when its last split ends at its end.
        for stamp in &spec.inputs {
            let planned = planned.get(stamp.path.as_path()).copied().unwrap_or(0);
            if planned != stamp.len {
                return Err(Error::usage(format!(
                    "input {} changed since gmr split planned it ({planned} bytes then, {} now); run gmr split again",
                    stamp.path.display(),
                    stamp.len
                )));
            }
        }
        spec.splits = splits.clone();
        if spec.total_order {
            spec.cuts = total_order_cuts(&spec, wd)?;
        }
        Ok(spec)
    }
}

/// `gmr shuffle` and `gmr reduce`: the work directory of the lines on
/// stdin (or `--workdir`) and the job it holds, which the lines must be of.
pub(crate) fn stage_job(
    given: Option<&Path>,
    entries: &[Entry],
    stage: &str,
) -> Result<(WorkDir, JobSpec)> {
    let wd = stage_workdir(given, entries, stage)?;
    let spec = JobSpec::load(&wd)?;
    check_lines_of(&spec, &wd, entries, stage)?;
    Ok((wd, spec))
}

/// The work directory a stage uses: `--workdir`, else the one the manifest
/// names.
fn stage_workdir(given: Option<&Path>, entries: &[Entry], stage: &str) -> Result<WorkDir> {
    if let Some(dir) = given {
        // Not created: a stage after `gmr map` needs the job made there.
        let root =
            std::path::absolute(dir).map_err(|e| Error::input("bad work directory", dir, e))?;
        let wd = WorkDir::new(root);
        wd.check_owner()?;
        return Ok(wd);
    }
    match entries.iter().find_map(Entry::workdir) {
        Some(dir) => {
            let wd = WorkDir::new(dir.clone());
            wd.check_owner()?;
            Ok(wd)
        }
        None if entries.iter().any(|e| matches!(e, Entry::Split { .. })) => {
            Err(Error::usage(format!(
                "the lines on stdin are gmr split's, and {stage} takes gmr map's: pipe them through gmr map first"
            )))
        }
        None => Err(Error::usage(format!(
            "no work directory for {stage}: pass --workdir DIR, or pipe in the previous stage's lines"
        ))),
    }
}

/// Refuses manifest lines of another job than the one in `wd`, and no
/// lines at all: the stage before failed, and this one would go on with
/// whatever the work directory held.
fn check_lines_of(spec: &JobSpec, wd: &WorkDir, entries: &[Entry], stage: &str) -> Result<()> {
    if entries.is_empty() {
        return Err(Error::usage(format!(
            "no lines on stdin for {stage}; pipe in the lines of the stage before it (if that stage failed, fix it first)"
        )));
    }
    match entries
        .iter()
        .filter_map(Entry::job)
        .find(|j| *j != spec.job)
    {
        Some(other) => Err(Error::usage(format!(
            "the lines on stdin for {stage} are of job {other}, but work directory {} holds job {}; pipe in the lines of the stage that ran in it, or give that stage's --workdir",
            wd.root().display(),
            spec.job
        ))),
        None => Ok(()),
    }
}

/// `gmr reduce`: the job of the map stage with this stage's reducer,
/// output and command limits, checked before the output directory is
/// touched.
pub(crate) struct ReducePlan {
    /// The job's work directory.
    pub(crate) workdir: WorkDir,
    /// The complete spec of the reduce stage.
    pub(crate) spec: JobSpec,
    /// The output directory, checked; None for stdout.
    pub(crate) output: Option<OutputDir>,
}

impl ReducePlan {
    /// Checks the flags, the reducer, the lines on stdin and the output
    /// directory. Returns the plan and where its tasks are to run.
    pub(crate) fn new(args: &ReduceArgs, entries: &[Entry]) -> Result<(ReducePlan, Placement)> {
        let placement = Placement::new(&args.exec, args.workdir.as_deref())?;
        let cwd = cwd()?;
        Program::parse_flag(&args.reducer, "-r")?.check("reducer", &cwd)?;
        let (wd, mut spec) = stage_job(args.workdir.as_deref(), entries, "gmr reduce")?;
        if spec.reducers == 0 {
            return Err(Error::usage(
                "the job is map-only (-R 0): there is nothing for gmr reduce to do, its output is already in the parts",
            ));
        }
        let mut keep = vec![
            ("the current directory", cwd.as_path()),
            ("the work directory", wd.root()),
        ];
        keep.extend(spec.inputs.iter().map(|i| ("the input", i.path.as_path())));
        let output = OutputDir::check(args.output.output.as_deref(), args.output.force, &keep)?;
        let exec = &args.exec;
        spec.reducer = Some(args.reducer.clone());
        spec.output = output
            .as_ref()
            .map_or_else(|| wd.default_output(), |o| o.path().to_path_buf());
        spec.compress = args.output.compress;
        spec.by_key = by_key(&args.output)?;
        spec.ok_exit = exec.ok_exit.0.clone();
        spec.task_timeout_ms = exec.task_timeout.as_millis() as u64;
        spec.task_memory = exec.task_memory;
        spec.memfree = exec.memfree;
        // The reducer's variables: the map side's, with this stage's added.
        let mut env: std::collections::BTreeMap<String, String> = spec.env.into_iter().collect();
        env.extend(spec::job_env(&exec.env)?);
        spec.env = env.into_iter().collect();
        // The reducer with the map side's combiner: the one that runs.
        Job::new(spec.clone())?;
        let plan = ReducePlan {
            workdir: wd,
            spec,
            output,
        };
        Ok((plan, placement))
    }

    /// Makes the output directory ready, replacing its files with
    /// `--force`: call it once every check has passed.
    pub(crate) fn make_output_ready(&self) -> Result<Option<OutputLock>> {
        self.output.as_ref().map(OutputDir::make_ready).transpose()
    }
}

/// The cut points of a `--total-order` job, in hex for its spec.
fn total_order_cuts(spec: &JobSpec, wd: &WorkDir) -> Result<Vec<String>> {
    let job = Job::new(spec.clone())?;
    let cuts = crate::task::sample::cut_points(&job, wd)?;
    Ok(cuts.iter().map(|c| spec::to_hex(c)).collect())
}

/// `gmr split`: the splits of the inputs, planned for `jobs` tasks;
/// streams are spooled into `spool_dir`.
/// Without a work directory (`spool_dir` None) no input is a stream and
/// nothing is spooled.
pub(crate) fn split_inputs(
    input: &InputArgs,
    spool_dir: Option<&Path>,
    jobs: usize,
) -> Result<Vec<Split>> {
    let none = PathBuf::new();
    let files = input::resolve_inputs(&input.inputs, spool_dir.unwrap_or(&none), false)?;
    plan_splits(&files, input, jobs, spool_dir).map(|(splits, _)| splits)
}

/// The decompressed copies a recorded job made: each with its file.
fn recorded_spools(old: &JobSpec) -> input::Copies {
    let mut spools = Vec::new();
    for piece in old.splits.iter().flat_map(Split::pieces) {
        if let Some(origin) = &piece.origin {
            let pair = (origin.clone(), piece.path.clone());
            if !spools.contains(&pair) {
                spools.push(pair);
            }
        }
    }
    spools
}

/// Removes from a resumed job's output directory the parts that no report
/// of this job records, so that their tasks run again: a part committed
/// just before a crash took its report, or one another job wrote there
/// since (`--force` onto the same output). Left in place, either would be
/// taken for this job's, as a task that finds its part in place takes it
/// as committed. A part this job recorded at another length (cut short
/// by a crash) is redone too (`task::committed_report`); parts bound for
/// stdout, in the work directory, are gmr's own.
fn remove_unrecorded_parts(wd: &WorkDir, old: &JobSpec) -> Result<()> {
    use crate::task::TaskId;
    // Parts filed by key are replaced when their task runs again.
    if old.output == wd.default_output() || old.by_key.is_some() {
        return Ok(());
    }
    let map_only = old.reducers == 0;
    let parts = if map_only {
        old.splits.len()
    } else {
        old.reducers as usize
    };
    for p in 0..parts {
        let path = old.part_path(p);
        if !path.exists() {
            continue;
        }
        let task = match map_only {
            true => TaskId::Map(p),
            false => TaskId::Reduce(p as u32),
        };
        let report: Option<crate::task::report::TaskReport> =
            crate::files::read_json(&wd.report_path(&task.to_string())).ok();
        if report.is_some_and(|r| r.job == old.job) {
            continue;
        }
        std::fs::remove_file(&path).map_err(|e| Error::io("cannot remove", &path, e))?;
    }
    Ok(())
}

/// Refuses a separator that is also the record end (`--separator '\0'`
/// with `-z`): no record could have a value.
fn check_record_end(key: &KeySpec) -> Result<()> {
    if key.separator == key.eol {
        return Err(Error::usage(
            "--separator '\\0' with -z: NUL ends the records, so it cannot also separate key and value; choose another separator (TAB by default)",
        ));
    }
    Ok(())
}

/// `--output-by-key`'s limit, when it is given: it needs an output
/// directory.
fn by_key(output: &OutputArgs) -> Result<Option<u64>> {
    if !output.output_by_key {
        return Ok(None);
    }
    if output.output.is_none() {
        return Err(Error::usage(
            "--output-by-key writes DIR/KEY/part-NNNNN: give the output directory with -o DIR",
        ));
    }
    if output.max_output_keys == 0 {
        return Err(Error::usage(
            "--max-output-keys 0 allows no output: give 1 or more",
        ));
    }
    Ok(Some(output.max_output_keys))
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
    if old.sort_keys != new.sort_keys || old.total_order != new.total_order {
        diffs.push("the order (--sort-key, --total-order)".into());
    }
    if old.env != new.env {
        diffs.push("the environment (--env, or the locale)".into());
    }
    // In path order, each once, as `stamp_inputs` makes them now (an older
    // gmr kept the inputs' order).
    let mut old_inputs = old.inputs.clone();
    old_inputs.sort_by(|a, b| a.path.cmp(&b.path));
    old_inputs.dedup_by(|a, b| a.path == b.path);
    if old_inputs != new.inputs {
        diffs.push("the input (other files, or files changed since)".into());
    }
    if old.compress != new.compress {
        diffs.push("--compress".into());
    }
    if old.by_key.is_some() != new.by_key.is_some() {
        diffs.push("--output-by-key".into());
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
