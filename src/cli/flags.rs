//! The command line: clap definitions that are the one source of `--help`,
//! the man pages and the shell completions (docs/contracts.md §7).

// Flattened argument groups are documented by their own types; doc comments
// on the `flatten` fields themselves would be dropped by clap.
#![allow(missing_docs)]

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `--help` and man page examples.
pub(crate) const EXAMPLES_GMR: &str = "\
Examples:
  Word count over a directory of logs, on all cores, into out/:
    gmr run -m ./map.sh -r ./reduce.sh -R 4 -o out/ logs/
  Shell pipelines as mapper and reducer, result on stdout:
    gmr run -m 'tr -s \" \" \"\\n\"' -r @count big.txt > counts.txt
  The same job stage by stage:
    gmr split big.txt | gmr map -m ./map.sh -R 4 --workdir w |
      gmr shuffle --workdir w | gmr reduce -r ./reduce.sh --workdir w -o out/
  The newest job's status (one run without --workdir too):
    gmr status";

/// `--help` and man page examples. Each one runs as written (a test runs
/// every example of every man page, in a directory holding the files they
/// name); `shared/` stands for a directory every host sees (NFS).
pub(crate) const EXAMPLES_RUN: &str = "\
Examples:
  gmr run -m ./map.sh -r ./reduce.sh -R 4 -o out/ logs/
  gmr run -m 'tr -s \" \" \"\\n\"' -r @count big.txt > counts.txt
  gmr run -m ./tok.py -c @sum -r @sum -j 8 --split-size 16M data/
  zcat x.gz | gmr run -m ./map.sh -R 0 -o out/      # map-only, stdin
  gmr run -m ./map.sh -r ./reduce.sh --then -m cat -r 'head -10' -R 1 --sort-key 2,2nr logs/
  gmr run -m ./map.sh -r @sum -o counts/ --output-by-key big.txt   # counts/WORD/part-NNNNN
  find data -type f -print0 | gmr run -z -m 'sed -z \"s|/[^/]*$|\\t1|\"' -r @sum | tr '\\0' '\\n'
  gmr run -m ./map.sh -r ./reduce.sh --hosts hosts.txt --workdir shared/w -o shared/out shared/in";

/// `--help` and man page examples.
pub(crate) const EXAMPLES_SPLIT: &str = "\
Examples:
  gmr split --split-size 64M big.txt
  gmr split logs/ | gmr map -m ./map.sh -R 4 --workdir w";

/// `--help` and man page examples.
pub(crate) const EXAMPLES_MAP: &str = "\
Examples:
  gmr split big.txt | gmr map -m ./map.sh -R 4 --workdir w
  gmr split big.txt | gmr map -m ./map.sh -c @sum -R 8 --workdir w";

/// `--help` and man page examples.
pub(crate) const EXAMPLES_SHUFFLE: &str = "\
Examples:
  gmr split big.txt | gmr map -m ./map.sh -R 4 --workdir w | gmr shuffle --workdir w";

/// `--help` and man page examples.
pub(crate) const EXAMPLES_REDUCE: &str = "\
Examples:
  gmr split big.txt | gmr map -m ./map.sh -R 4 --workdir w |
    gmr shuffle --workdir w | gmr reduce -r ./reduce.sh --workdir w -o out/
  gmr split big.txt | gmr map -m ./map.sh --workdir w | gmr reduce -r @count > counts.txt";

/// `--help` and man page examples.
pub(crate) const EXAMPLES_STATUS: &str = "\
Examples:
  gmr status                           # the job here, else your newest
  gmr status shared/w                  # from any terminal or host that sees shared/w
  gmr status --watch shared/w          # refreshed every 2 s until the job ends
  gmr status --json shared/w | jq .phases   # fields: docs/status.md";

/// `--help` and man page examples.
pub(crate) const EXAMPLES_REPORT: &str = "\
Examples:
  gmr report shared/w -o job.html      # at any time, running or not
  gmr report -o - > job.html           # your newest job's";

/// gmr - MapReduce for the shell.
#[derive(Debug, Parser)]
#[command(
    name = "gmr",
    version,
    about = "MapReduce for the shell: your mapper and reducer executables, on all cores",
    long_about = "MapReduce for the shell. Bring mapper and reducer executables (any language, \
or shell pipelines), as with Hadoop Streaming; gmr splits the input, runs mappers in parallel, \
partitions and sorts their output by key, and runs reducers. `gmr run` does the whole job; \
`gmr split | gmr map | gmr shuffle | gmr reduce` does it stage by stage.",
    after_help = EXAMPLES_GMR,
    propagate_version = true,
    arg_required_else_help = true,
    // A flag given twice takes its last value, so that a shell alias can
    // set a default the command line overrides.
    args_override_self = true
)]
pub struct Cli {
    /// The command to run.
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run a whole job: split, map, shuffle and reduce
    #[command(after_help = EXAMPLES_RUN)]
    Run(Box<RunArgs>),
    /// Cut inputs into splits on record boundaries; print one JSON line per split
    #[command(after_help = EXAMPLES_SPLIT)]
    Split(SplitArgs),
    /// Run the mapper on each split (JSON lines on stdin); partition and sort its output
    #[command(after_help = EXAMPLES_MAP)]
    Map(MapArgs),
    /// Merge the sorted runs of each partition (map JSON lines on stdin)
    #[command(after_help = EXAMPLES_SHUFFLE)]
    Shuffle(ShuffleArgs),
    /// Run the reducer on each merged partition and commit the part files
    #[command(after_help = EXAMPLES_REDUCE)]
    Reduce(ReduceArgs),
    /// Show a job's status: phase, tasks, hosts, throughput, counters, failures
    #[command(after_help = EXAMPLES_STATUS)]
    Status(StatusArgs),
    /// Write a job's HTML report: timeline of attempts, partition sizes,
    /// task durations, counters, failures
    #[command(after_help = EXAMPLES_REPORT)]
    Report(ReportArgs),
    /// Run one task of a job (used by executors on remote hosts)
    #[command(hide = true)]
    Task(TaskArgs),
}

/// `gmr status`.
#[derive(Debug, Clone, Args)]
pub(crate) struct StatusArgs {
    /// The job's work directory (its --workdir); it only reads it, so the
    /// job is never disturbed. Default: the current directory when it holds
    /// a job, else the newest job in this user's history
    /// (~/.local/state/gmr/jobs: a job run without --workdir)
    #[arg(value_name = "WORKDIR", value_hint = clap::ValueHint::DirPath)]
    pub(crate) workdir: Option<PathBuf>,

    /// Print the status document as JSON (the fields of report.json, less
    /// the attempts; docs/status.md)
    #[arg(long)]
    pub(crate) json: bool,

    /// Show it again every 2 seconds, until the job is no longer running
    #[arg(long)]
    pub(crate) watch: bool,
}

/// `gmr report`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReportArgs {
    /// The job's work directory (its --workdir). Default: as for gmr
    /// status
    #[arg(value_name = "WORKDIR", value_hint = clap::ValueHint::DirPath)]
    pub(crate) workdir: Option<PathBuf>,

    /// Where to write the page (default WORKDIR/report.html; - for stdout)
    #[arg(short = 'o', long, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
}

/// Input files and how they are split.
#[derive(Debug, Clone, Args)]
pub(crate) struct InputArgs {
    /// Input files or directories (every regular file inside, in name
    /// order, skipping names starting with `.` or `_`); none or `-` reads stdin
    #[arg(value_name = "INPUT")]
    pub(crate) inputs: Vec<PathBuf>,

    /// Bytes per split, with K, M or G suffix (default: input size / jobs, one task per job, or / (2 x jobs) when files of uneven sizes would leave jobs idle; between 1M and 64M); past 64 splits, files under half a split share map tasks (a mapper each, unless --one-mapper-per-task)
    #[arg(allow_negative_numbers = true, long, value_name = "SIZE", value_parser = parse_size, help_heading = "Input")]
    pub(crate) split_size: Option<u64>,

    /// Give each input file, whole, to a mapper of its own, whatever its
    /// size (--split-size does not cut it; GMR_INPUT_FILE names it; a
    /// compressed one is decompressed, an empty one gets a mapper too): for
    /// files that are one record each, such as documents, or that a mapper
    /// must see whole
    #[arg(long, help_heading = "Input")]
    pub(crate) whole_files: bool,

    /// Records end in NUL rather than newline, in and out of every stage,
    /// as with sort -z and xargs -0 (find -print0 lists, records that hold
    /// newlines): inputs are cut at NULs, commands read and write
    /// NUL-ended records, and so does the output
    #[arg(short = 'z', long = "null", help_heading = "Input")]
    pub(crate) null: bool,
}

impl InputArgs {
    /// The byte that ends a record: NUL with `-z`, else `\n`.
    pub(crate) fn eol(&self) -> u8 {
        if self.null { 0 } else { b'\n' }
    }
}

/// How records split into key and value.
#[derive(Debug, Clone, Args)]
pub(crate) struct KeyArgs {
    /// The byte between key and value: one character (e.g. , or ' '), \t,
    /// \0 or \xHH (e.g. \x1f)
    #[arg(long, value_name = "CHAR", default_value = "\\t", value_parser = parse_separator, help_heading = "Keys")]
    pub(crate) separator: u8,

    /// How many leading fields form the key
    #[arg(allow_negative_numbers = true, long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..), help_heading = "Keys")]
    pub(crate) key_fields: u32,

    /// Choose the partition by the first N fields of the key only (1 <= N
    /// <= --key-fields): records whose first N fields are equal go to the
    /// same reducer (Hadoop's KeyFieldBasedPartitioner -k1,N)
    #[arg(allow_negative_numbers = true, long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Keys")]
    pub(crate) partition_fields: Option<u32>,

    /// Order the records of each partition by this key, in sort(1)'s -k
    /// syntax (2,2nr, 1,1, 3n; options b d f g i n r), fields split at
    /// --separator; repeat it for more keys. Ties go by the whole line, so
    /// one partition is what LC_ALL=C sort -t SEP -k KEYDEF gives. Reducers
    /// still group by --key-fields: consecutive equal keys
    #[arg(long, value_name = "KEYDEF", value_parser = parse_sort_key, help_heading = "Keys")]
    pub(crate) sort_key: Vec<String>,

    /// Partition by ranges of the order instead of by hash, so that the parts
    /// are in order one after the other (cat out/part-* is sorted): cut
    /// points are picked from a sample of the mapper's output
    #[arg(long, help_heading = "Keys")]
    pub(crate) total_order: bool,
}

/// Checks a `--sort-key` definition.
fn parse_sort_key(text: &str) -> Result<String, String> {
    crate::data::sortkey::KeyDef::parse(text).map(|_| text.to_string())
}

/// The map side of a job.
#[derive(Debug, Clone, Args)]
pub(crate) struct MapperArgs {
    /// The mapper: a command (plain words start the program directly, any
    /// other command line runs under `sh -c`, so a pipeline is fine) or
    /// @identity
    #[arg(short = 'm', long, value_name = "CMD", value_hint = clap::ValueHint::CommandString, help_heading = "Job")]
    pub(crate) mapper: String,

    /// A combiner run on each sorted map-side run: a command or a built-in
    /// (@count, @sum, @min, @max); it must be safe to apply zero or more times
    #[arg(short = 'c', long, value_name = "CMD", value_hint = clap::ValueHint::CommandString, help_heading = "Job")]
    pub(crate) combiner: Option<String>,

    /// Number of reduce partitions (default: two per job slot, so that a
    /// partition with a heavy key does not hold up the others; at most
    /// 1048576); 0 makes a map-only job whose mapper output is the output,
    /// order kept
    #[arg(allow_negative_numbers = true, short = 'R', long, value_name = "N", value_parser = clap::value_parser!(u32).range(..=crate::data::sort::MAX_PARTITIONS as i64), help_heading = "Job")]
    pub(crate) reducers: Option<u32>,
}

/// How a map task handles its input and output.
#[derive(Debug, Clone, Args)]
pub(crate) struct PerfArgs {
    /// Mapper output a map task sorts in memory before spilling a sorted run
    /// to disk, with K, M or G suffix (shared by the running tasks)
    #[arg(allow_negative_numbers = true, long, value_name = "SIZE", default_value = "192M", value_parser = parse_size, help_heading = "Performance")]
    pub(crate) sort_buffer: u64,

    /// The longest record (line) of mapper output a task takes, with K, M
    /// or G suffix: gmr holds a record whole in memory, so this bounds a
    /// task's memory; a longer record stops the job, naming its input
    #[arg(allow_negative_numbers = true, long, value_name = "SIZE", default_value = "64M", value_parser = parse_size, help_heading = "Performance")]
    pub(crate) max_record: u64,

    /// Feed the small files that share a map task to one mapper, one after
    /// the other, rather than start a mapper for each: far faster over
    /// thousands of small files. Mappers then get no GMR_INPUT_FILE (nor
    /// map_input_file): leave this off for mappers that read it
    #[arg(long, help_heading = "Performance")]
    pub(crate) one_mapper_per_task: bool,
}

/// Where the output goes.
#[derive(Debug, Clone, Args)]
pub(crate) struct OutputArgs {
    /// Write part-00000, part-00001, ... and _SUCCESS into DIR (default: the output on stdout, in partition order)
    #[arg(short = 'o', long, value_name = "DIR", help_heading = "Output")]
    pub(crate) output: Option<PathBuf>,

    /// Replace an old output in DIR: its part files and _SUCCESS (a DIR holding anything else is refused)
    #[arg(long, help_heading = "Output")]
    pub(crate) force: bool,

    /// Compress each part: gz (part-NNNNN.gz) or zst (part-NNNNN.zst);
    /// gmr reads such parts back as input
    #[arg(long, value_name = "CODEC", value_parser = codecs(), help_heading = "Output")]
    pub(crate) compress: Option<crate::data::codec::Codec>,

    /// File each output line by its key (its text before the separator,
    /// as --key-fields makes it): DIR/KEY/part-NNNNN, _SUCCESS last; needs
    /// -o. Keys become safe names: / and other bytes as %HH, the empty key
    /// as _EMPTY (FILES in gmr-run(1))
    #[arg(long, help_heading = "Output")]
    pub(crate) output_by_key: bool,

    /// With --output-by-key, the most keys a reduce task (or map-only
    /// task) may write; one more fails the job, before any of its files
    /// lands in DIR
    #[arg(
        long,
        value_name = "N",
        default_value_t = 10_000,
        help_heading = "Output"
    )]
    pub(crate) max_output_keys: u64,
}

/// How and where tasks run.
#[derive(Debug, Clone, Args)]
pub(crate) struct ExecArgs {
    /// No progress display, status lines or summary on stderr
    #[arg(short = 'q', long, help_heading = "Output")]
    pub(crate) quiet: bool,

    /// When stderr is not a terminal (nohup, cron, CI, a Slurm job's
    /// log), print a plain status line every DURATION: phase, tasks
    /// done/total, percentage of bytes, failed attempts, ETA. 0 never
    #[arg(allow_hyphen_values = true, long, value_name = "DURATION", default_value = "30s", value_parser = parse_duration, help_heading = "Output")]
    pub(crate) status_interval: std::time::Duration,

    /// Tasks to run at once on this machine (default: the number of cores);
    /// with --hosts, the slots of a `:` entry that gives no N/
    #[arg(allow_negative_numbers = true, short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Performance")]
    pub(crate) jobs: Option<u32>,

    /// Retries of a failed task before the job fails (an attempt lost with
    /// its host, e.g. a dropped connection, is rerun elsewhere and not counted)
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        allow_negative_numbers = true,
        help_heading = "Reliability"
    )]
    pub(crate) retries: u32,

    /// Set a variable for every command of the job, on every host:
    /// NAME=VALUE, or NAME for its value here (repeatable). The locale
    /// (LANG, LANGUAGE, LC_*) and TZ are passed on by default
    #[arg(long, value_name = "NAME[=VALUE]", help_heading = "Job")]
    pub(crate) env: Vec<String>,

    /// Exit statuses of the job's commands that mean success, comma-separated
    /// (e.g. 0,1 for grep, which exits 1 when nothing matched)
    #[arg(long, value_name = "CODES", default_value = "0", value_parser = parse_exit_codes, help_heading = "Reliability")]
    pub(crate) ok_exit: ExitCodes,

    /// Kill and retry an attempt whose command shows no sign of life (takes
    /// no input, prints nothing, writes nothing to stderr) for DURATION:
    /// 90s, 10m, 1h; 0 never
    #[arg(allow_hyphen_values = true, long, value_name = "DURATION", default_value = "10m", value_parser = parse_duration, help_heading = "Reliability")]
    pub(crate) task_timeout: std::time::Duration,

    /// The memory a command (mapper, combiner, reducer) may use, with K, M
    /// or G suffix: a memory cgroup of its own where gmr can make one (all
    /// of a pipeline; past it the kernel kills it), else RLIMIT_DATA on each
    /// process (allocations fail); with --slurm also srun's and sbatch's
    /// --mem. An attempt that fails so is reported as over --task-memory
    /// and retried
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Reliability")]
    pub(crate) task_memory: Option<u64>,

    /// Start no attempt on a host while its available memory (MemAvailable)
    /// is below SIZE, with K, M or G suffix, as GNU parallel's --memfree
    #[arg(long, value_name = "SIZE", value_parser = parse_size, help_heading = "Reliability")]
    pub(crate) memfree: Option<u64>,

    /// Append one JSON line per task attempt to FILE (task, attempt, host,
    /// start, duration, status, records and bytes, error)
    #[arg(long, value_name = "FILE", help_heading = "Reliability")]
    pub(crate) joblog: Option<PathBuf>,

    /// Run tasks on these hosts over SSH. HOSTS is a file with one
    /// `[N/][user@]host[:port]` per line (N/: N tasks at once, default the
    /// host's cores; `:` is this machine; `#` comments), or, when no such
    /// file exists, the same entries inline, comma-separated. Needs
    /// --workdir on a filesystem every host shares (e.g. NFS)
    #[arg(long, value_name = "HOSTS", value_hint = clap::ValueHint::Hostname, help_heading = "Distributed runs")]
    pub(crate) hosts: Option<String>,

    /// The private key for SSH logins, tried before the keys of ssh-agent
    /// and those of the ssh configuration (default: the agent's keys, then
    /// the configuration's IdentityFile, else ~/.ssh/id_rsa, id_ecdsa,
    /// id_ecdsa_sk, id_ed25519, id_ed25519_sk, as ssh tries them)
    #[arg(
        long,
        value_name = "FILE",
        requires = "hosts",
        help_heading = "Distributed runs"
    )]
    pub(crate) identity: Option<PathBuf>,

    /// The user's known_hosts file, read before --global-known-hosts, where
    /// --accept-new-host-keys adds keys; an unknown, changed or revoked key
    /// refuses the host (default: the configuration's UserKnownHostsFile,
    /// else ~/.ssh/known_hosts, then ~/.ssh/known_hosts2)
    #[arg(
        long,
        value_name = "FILE",
        requires = "hosts",
        help_heading = "Distributed runs"
    )]
    pub(crate) known_hosts: Option<PathBuf>,

    /// Known_hosts files read after the user's (default: the
    /// configuration's GlobalKnownHostsFile, else /etc/ssh/ssh_known_hosts
    /// and /etc/ssh/ssh_known_hosts2); repeat for several
    #[arg(
        long,
        value_name = "FILE",
        requires = "hosts",
        help_heading = "Distributed runs"
    )]
    pub(crate) global_known_hosts: Vec<PathBuf>,

    /// Accept the key of a host that no line of the known_hosts files
    /// covers, and add it to the user's (trust on first use; hashed with
    /// HashKnownHosts), as StrictHostKeyChecking=accept-new in the ssh
    /// configuration does; a changed or revoked key is still refused
    #[arg(long, requires = "hosts", help_heading = "Distributed runs")]
    pub(crate) accept_new_host_keys: bool,

    /// The path of gmr on the hosts or Slurm nodes (default: a copy of this
    /// gmr that gmr makes in the work directory, WORKDIR/bin/gmr-DIGEST,
    /// which must then be writable by you alone)
    #[arg(long, value_name = "PATH", help_heading = "Distributed runs")]
    pub(crate) remote_gmr: Option<PathBuf>,

    /// Run the tasks on Slurm: inside an allocation (salloc, an sbatch
    /// script) as job steps (srun) on its nodes, per node as many at once as
    /// it has allocated CPUs (or -j); outside one (a login node) as job
    /// arrays (sbatch), -j at once (default: the cluster's CPUs)
    #[arg(long, conflicts_with = "hosts", help_heading = "Distributed runs")]
    pub(crate) slurm: bool,

    /// Options every srun or sbatch gets, split at blanks: partition,
    /// account, time limit, QOS (e.g. "--partition=short --time=10")
    #[arg(
        long,
        value_name = "ARGS",
        requires = "slurm",
        allow_hyphen_values = true,
        help_heading = "Distributed runs"
    )]
    pub(crate) slurm_args: Option<String>,

    /// Seconds to wait when connecting to a host, and the longest a host may
    /// stay silent (not even answering keepalives) before it counts as hung;
    /// a quiet task on a live host is never cut short (at least 5; default:
    /// the configuration's ConnectTimeout and ServerAliveInterval x
    /// ServerAliveCountMax, else 30)
    #[arg(
        long,
        value_name = "SECS",
        value_parser = clap::value_parser!(u64).range(5..),
        allow_negative_numbers = true,
        help_heading = "Distributed runs"
    )]
    pub(crate) ssh_timeout: Option<u64>,

    /// The ssh configuration to read instead of ~/.ssh/config and
    /// /etc/ssh/ssh_config, as `ssh -F FILE` (`none`: none). Host names
    /// of --hosts are resolved as ssh resolves them: aliases, HostName,
    /// Port, User, IdentityFile, ProxyJump, ProxyCommand, known_hosts files
    /// and StrictHostKeyChecking, HostKeyAlias, HashKnownHosts, timeouts
    #[arg(
        long,
        value_name = "FILE",
        requires = "hosts",
        help_heading = "Distributed runs"
    )]
    pub(crate) ssh_config: Option<PathBuf>,
}

/// The reducer of a job or of a step (`--then`).
#[derive(Debug, Clone, Args)]
pub(crate) struct ReducerArgs {
    /// The reducer: a command, as for -m, or a built-in (@count, @sum, @min,
    /// @max, @identity)
    #[arg(
        short = 'r',
        long,
        value_name = "CMD",
        value_hint = clap::ValueHint::CommandString,
        required_unless_present = "reducers",
        help_heading = "Job"
    )]
    pub(crate) reducer: Option<String>,
}

/// `gmr run`.
#[derive(Debug, Clone, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    pub(crate) map: MapperArgs,

    #[command(flatten)]
    pub(crate) reduce: ReducerArgs,

    #[command(flatten)]
    pub(crate) input: InputArgs,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    #[command(flatten)]
    pub(crate) perf: PerfArgs,
    #[command(flatten)]
    pub(crate) exec: ExecArgs,

    /// The work directory (default: a new one in $TMPDIR, removed after a successful run)
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub(crate) workdir: Option<PathBuf>,

    /// Continue the failed or interrupted job in --workdir: tasks that
    /// committed are reused, only the rest run (the job must be the same:
    /// commands, inputs, R, key, output). In a job of several steps, a
    /// step whose flags changed runs again, and so do the steps after it
    #[arg(long, requires = "workdir", help_heading = "Reliability")]
    pub(crate) resume: bool,

    /// Map tasks that may still fail after their retries without failing
    /// the job: N, or N% of the map tasks. Their input is skipped, and
    /// named in the summary, the job log, gmr status, the report and
    /// OUTPUT/_SKIPPED; one more fails the job [default: 0]
    #[arg(long, value_name = "N|N%", value_parser = parse_max_failed, help_heading = "Reliability")]
    pub(crate) max_failed_tasks: Option<MaxFailed>,

    /// Then another step, which reads this one's output: the flags after
    /// --then, up to the next --then, are the step's (-m, -c, -r, -R,
    /// --separator, --key-fields, --partition-fields, --sort-key,
    /// --total-order, --ok-exit). All other flags are the job's: give them
    /// before the first --then. The inputs, which the first step reads,
    /// go there too or after the last step
    #[arg(long = "then", value_name = "STEP", help_heading = "Job")]
    pub(crate) then_help: bool,

    /// Keep each step's output but the last, in DIR/step-N (default: in the
    /// work directory, removed with it)
    #[arg(long, value_name = "DIR", help_heading = "Output")]
    pub(crate) keep_intermediate: Option<PathBuf>,

    /// The steps after the first, one per --then (cli::parse splits them
    /// off before clap sees the command line).
    #[arg(skip)]
    pub(crate) steps: Vec<StepArgs>,

    /// Set by a job of several steps for all but its last: the output is
    /// the next step's input, in the work directory.
    #[arg(skip)]
    pub(crate) intermediate: bool,

    /// Set by a job of several steps: the mapper of the step after this
    /// one (a map-only step, or one with reducers whose map tasks then
    /// read its output), run inside this one's reducers.
    #[arg(skip)]
    pub(crate) then_map: Option<crate::store::spec::ThenMap>,
}

/// The flags of a step after `--then`: those that describe a step of a
/// job; the rest of `gmr run`'s are the job's.
#[derive(Debug, Clone, Args)]
pub(crate) struct StepArgs {
    #[command(flatten)]
    pub(crate) map: MapperArgs,

    #[command(flatten)]
    pub(crate) reduce: ReducerArgs,

    #[command(flatten)]
    pub(crate) key: KeyArgs,

    /// Exit statuses of this step's commands that mean success (default 0)
    #[arg(long, value_name = "CODES", value_parser = parse_exit_codes)]
    pub(crate) ok_exit: Option<ExitCodes>,

    /// The job's inputs, after the last step (as `gmr run STEP --then STEP
    /// INPUT...` reads)
    #[arg(value_name = "INPUT")]
    pub(crate) inputs: Vec<PathBuf>,
}

/// A step after `--then`, parsed alone.
#[derive(Debug, Parser)]
#[command(
    name = "gmr run ... --then",
    no_binary_name = true,
    disable_help_flag = true,
    args_override_self = true
)]
pub(crate) struct StepCli {
    #[command(flatten)]
    pub(crate) step: StepArgs,
}

/// `gmr split`.
#[derive(Debug, Clone, Args)]
pub(crate) struct SplitArgs {
    #[command(flatten)]
    pub(crate) input: InputArgs,

    /// Work directory to spool stdin into (default: a new one in $TMPDIR, when stdin is read; `gmr reduce` removes it after success)
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub(crate) workdir: Option<PathBuf>,

    /// The number of jobs the default split size plans for (default: the number of cores)
    #[arg(allow_negative_numbers = true, short = 'j', long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..), help_heading = "Performance")]
    pub(crate) jobs: Option<u32>,
}

/// `gmr map`.
#[derive(Debug, Clone, Args)]
pub(crate) struct MapArgs {
    #[command(flatten)]
    pub(crate) map: MapperArgs,
    #[command(flatten)]
    pub(crate) key: KeyArgs,
    #[command(flatten)]
    pub(crate) perf: PerfArgs,
    #[command(flatten)]
    pub(crate) exec: ExecArgs,

    /// The work directory (default: the one in the split lines, else a new one in $TMPDIR)
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub(crate) workdir: Option<PathBuf>,
}

/// `gmr shuffle`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ShuffleArgs {
    #[command(flatten)]
    pub(crate) exec: ExecArgs,

    /// The work directory (default: the one in the map lines on stdin)
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub(crate) workdir: Option<PathBuf>,
}

/// `gmr reduce`.
#[derive(Debug, Clone, Args)]
pub(crate) struct ReduceArgs {
    /// The reducer: a command, as for -m, or a built-in (@count, @sum, @min,
    /// @max, @identity)
    #[arg(short = 'r', long, value_name = "CMD", value_hint = clap::ValueHint::CommandString, help_heading = "Job")]
    pub(crate) reducer: String,

    #[command(flatten)]
    pub(crate) output: OutputArgs,
    #[command(flatten)]
    pub(crate) exec: ExecArgs,

    /// The work directory (default: the one in the lines on stdin)
    #[arg(long, value_name = "DIR", help_heading = "Job")]
    pub(crate) workdir: Option<PathBuf>,
}

/// `gmr task` (hidden).
#[derive(Debug, Clone, Args)]
pub(crate) struct TaskArgs {
    /// The job's work directory
    #[arg(long, value_name = "DIR")]
    pub(crate) workdir: PathBuf,

    /// The attempt number
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub(crate) attempt: u32,

    /// Stop the task when stdin closes (the SSH executor keeps it open, so
    /// a task dies with its connection)
    #[arg(long)]
    pub(crate) watch_stdin: bool,

    /// Refuse to run unless job.json has this SHA-256 digest (hex): the
    /// spec the coordinator saved
    #[arg(long, value_name = "HEX")]
    pub(crate) spec_digest: Option<String>,

    /// Serve task attempts sent as JSON lines on stdin, N at once, until
    /// stdin closes (the SSH executor's worker: one per host per job)
    #[arg(long, value_name = "N", conflicts_with_all = ["task", "watch_stdin"])]
    pub(crate) worker: Option<usize>,

    /// With --worker: run at most C of its attempts at once (the others
    /// wait in the worker), for a host whose slots were guessed
    #[arg(long, value_name = "C", requires = "worker")]
    pub(crate) cores: Option<usize>,

    /// The task id: map-N, shuffle-N or reduce-N
    #[arg(value_name = "TASK", required_unless_present = "worker")]
    pub(crate) task: Option<String>,
}

/// Parses `64M`, `1G`, `512K`, `100` (binary units).
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let (num, mult) = match t.char_indices().last() {
        Some((i, c)) if c.is_ascii_alphabetic() => {
            let mult: u64 = match c.to_ascii_uppercase() {
                'B' => 1,
                'K' => 1 << 10,
                'M' => 1 << 20,
                'G' => 1 << 30,
                'T' => 1 << 40,
                _ => return Err(format!("`{s}`: unknown size suffix `{c}` (use K, M or G)")),
            };
            (&t[..i], mult)
        }
        _ => (t, 1),
    };
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a size (e.g. 64M, 1G, 4096)"))?;
    if n.is_nan() || n <= 0.0 {
        return Err(format!("`{s}`: a size must be positive"));
    }
    Ok((n * mult as f64) as u64)
}

/// `--compress`: gz or zst (gzip and zstd too); completions offer the two.
fn codecs() -> impl clap::builder::TypedValueParser<Value = crate::data::codec::Codec> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("gz").alias("gzip"),
        PossibleValue::new("zst").alias("zstd"),
    ])
    .try_map(|s| crate::data::codec::Codec::parse_output(&s))
}

/// `--max-failed-tasks`: how many map tasks may be skipped.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum MaxFailed {
    /// At most this many.
    Count(usize),
    /// At most this share of the map tasks, in percent (rounded down).
    Percent(f64),
}

impl MaxFailed {
    /// How many of `tasks` map tasks may be skipped.
    pub(crate) fn of(self, tasks: usize) -> usize {
        match self {
            MaxFailed::Count(n) => n,
            MaxFailed::Percent(p) => (tasks as f64 * p / 100.0).floor() as usize,
        }
    }
}

/// Parses `3` or `5%`.
pub(crate) fn parse_max_failed(s: &str) -> Result<MaxFailed, String> {
    let bad = || format!("`{s}` is not a number of tasks or a percentage (e.g. 3, 5%)");
    match s.trim().strip_suffix('%') {
        Some(p) => match p.trim().parse::<f64>() {
            Ok(p) if (0.0..=100.0).contains(&p) => Ok(MaxFailed::Percent(p)),
            _ => Err(bad()),
        },
        None => s.trim().parse().map(MaxFailed::Count).map_err(|_| bad()),
    }
}

/// The exit statuses that mean success.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ExitCodes(pub Vec<i32>);

impl Default for ExitCodes {
    /// 0 alone, as `--ok-exit` defaults to.
    fn default() -> ExitCodes {
        ExitCodes(vec![0])
    }
}

/// Parses `0,1`: exit statuses, 0 to 255.
pub(crate) fn parse_exit_codes(s: &str) -> Result<ExitCodes, String> {
    let mut codes = s
        .split(',')
        .map(|c| match c.trim().parse::<i32>() {
            Ok(n) if (0..=255).contains(&n) => Ok(n),
            _ => Err(format!(
                "`{c}` is not an exit status (0 to 255); give a list such as 0,1"
            )),
        })
        .collect::<Result<Vec<i32>, String>>()?;
    codes.sort_unstable();
    codes.dedup();
    Ok(ExitCodes(codes))
}

/// Parses `90s`, `10m`, `1h`, `500ms`, `30` (seconds); `0` is no limit.
pub(crate) fn parse_duration(s: &str) -> Result<std::time::Duration, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}` is not a duration (e.g. 90s, 10m, 1h)"))?;
    let secs = match unit {
        "" | "s" => 1.0,
        "ms" => 0.001,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    if !n.is_finite() || n < 0.0 {
        return Err(format!("`{s}`: a duration cannot be negative"));
    }
    std::time::Duration::try_from_secs_f64(n * secs)
        .map_err(|_| format!("`{s}` is too long a duration"))
}

/// Parses a separator: one byte, or the escapes `\t`, `\0`, `\xHH`.
pub(crate) fn parse_separator(s: &str) -> Result<u8, String> {
    let b = match s {
        "\\t" | "tab" | "TAB" => b'\t',
        "\\0" => 0,
        _ if s.len() == 4 && s.starts_with("\\x") => {
            u8::from_str_radix(&s[2..], 16).map_err(|_| format!("`{s}` is not a \\xHH escape"))?
        }
        _ if s.len() == 1 => s.as_bytes()[0],
        _ => {
            return Err(format!(
                "`{s}`: the separator must be one byte: a character (e.g. ',', ' '), \\t, \\0 or \\xHH"
            ));
        }
    };
    if b == b'\n' {
        return Err("the separator cannot be a newline: records are lines".into());
    }
    Ok(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn sizes_and_separators() {
        assert_eq!(parse_size("64M").unwrap(), 64 << 20);
        assert_eq!(parse_size("1g").unwrap(), 1 << 30);
        assert_eq!(parse_size("0.5K").unwrap(), 512);
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert!(parse_size("12X").is_err());
        assert!(parse_size("0").is_err());
        assert_eq!(parse_separator("\\t").unwrap(), b'\t');
        assert_eq!(parse_separator(",").unwrap(), b',');
        assert_eq!(parse_separator("\\x1f").unwrap(), 0x1f);
        assert!(parse_separator("ab").is_err());
    }

    #[test]
    fn exit_codes_and_durations() {
        assert_eq!(parse_exit_codes("1,0").unwrap(), ExitCodes(vec![0, 1]));
        assert!(parse_exit_codes("0,256").is_err());
        assert!(parse_exit_codes("x").is_err());
        let d = |s| parse_duration(s).unwrap().as_millis();
        assert_eq!(d("90s"), 90_000);
        assert_eq!(d("10m"), 600_000);
        assert_eq!(d("1h"), 3_600_000);
        assert_eq!(d("250ms"), 250);
        assert_eq!(d("1.5"), 1500);
        assert_eq!(d("0"), 0);
        assert!(parse_duration("10 parsecs").is_err());
        assert!(parse_duration("-1s").is_err());
    }
}
