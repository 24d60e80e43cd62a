//! Man pages and shell completions, generated from the clap definitions in
//! [`crate::cli::flags`] (the one source of every flag and its help) plus the
//! sections clap cannot express: exit status, environment, the record
//! contract, files and examples. The generated files are checked in under
//! `man/` and `completions/`; a test regenerates them in memory and fails
//! when the copies are stale (`GMR_UPDATE_GENERATED=1` rewrites them).

use crate::cli::flags::{self, Cli};
use crate::data::builtin::Builtin;
use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::Man;

/// A clap_mangen section renderer.
type RenderSection = fn(&Man, &mut dyn std::io::Write) -> std::io::Result<()>;

/// One generated file: its path relative to the repository, and its bytes.
pub(crate) type Generated = (String, Vec<u8>);

const EXIT_STATUS: &[(&str, &str)] = &[
    (
        "0",
        "Success. Also when standard output is closed early (e.g. piped into head).",
    ),
    (
        "1",
        "The job failed: a task failed --retries + 1 times (the tail of its stderr is shown), a task failed in a way retrying cannot mend (a full disk or quota, an input that changed while the job ran), or no host could run tasks. The work directory is kept.",
    ),
    (
        "2",
        "Usage or input error: a bad flag, a missing or unreadable input, standard input named twice, a mapper or reducer that is not found or not executable, an output directory that exists and is not empty (or, with --force, that is or holds an input, the current directory or the work directory), a work directory that holds another job. Reported before any task runs and before anything is removed.",
    ),
    (
        "130",
        "Interrupted by SIGINT (Ctrl-C) or SIGTERM: running commands are killed and no partial part file is left; gmr exits within about a second, whatever it was waiting on.",
    ),
];

const ENVIRONMENT: &[(&str, &str)] = &[
    (
        "GMR_TASK, mapreduce_task_id",
        "Set for every command: the task id, e.g. map-00003 or reduce-00001.",
    ),
    (
        "GMR_ATTEMPT",
        "Set for every command: the attempt number, from 1.",
    ),
    (
        "mapreduce_task_attempt_id",
        "Set for every command: the task id and attempt number, e.g. map-00003_1.",
    ),
    (
        "GMR_WORKDIR",
        "Set for every command: the job's work directory.",
    ),
    (
        "mapreduce_task_partition",
        "Set for every command: the map task's split number, or the reduce task's partition.",
    ),
    (
        "GMR_INPUT_FILE, mapreduce_map_input_file, map_input_file",
        "Set for mappers: the input file the mapper reads (not with --one-mapper-per-task).",
    ),
    (
        "mapreduce_map_input_start, mapreduce_map_input_length",
        "Set for mappers: the split's byte range in that file (not with --one-mapper-per-task).",
    ),
    (
        "TMPDIR",
        "Read by gmr: where it makes a work directory when --workdir is not given.",
    ),
    (
        "HOME",
        "Read by gmr with --hosts: ~/.ssh/known_hosts and the default keys.",
    ),
];

const RECORD_CONTRACT: &str = "\
A record is one line of bytes ending in a newline; a last line without one is a record too. \
Bytes need not be UTF-8, and a split never cuts a record.
The key is the text before the first separator (TAB unless --separator), or before the N-th \
with --key-fields N; the value is the rest. A line without a separator is all key.
A record goes to partition XXH3-64(key, seed 0) mod R (of the key's first N fields with \
--partition-fields N), the same on every host and release.
Within a partition records are sorted by key, then value, bytewise, whatever the locale; \
so the output is byte-identical whatever the number of splits, jobs or retries.
The reducer gets exactly the lines the mappers printed, in that order. \
Lines reporter:counter:GROUP,NAME,AMOUNT and reporter:status:MSG on a task's stderr are \
counters and status, as in Hadoop Streaming; other stderr lines are its log.";

const FILES: &str = "\
DIR/part-NNNNN (.gz or .zst with --compress) and DIR/_SUCCESS: the output of -o DIR; _SUCCESS is written last.
WORKDIR/job.json: the job spec. WORKDIR/map/, WORKDIR/shuffle/: sorted runs and merged partitions. \
WORKDIR/reports/: one report per committed task. WORKDIR/logs/TASK.ATTEMPT.stderr: each attempt's stderr \
(the first 16 MiB of each command run). WORKDIR/input/: standard input and other streams, spooled. \
WORKDIR/status.json: the job's status, rewritten every second while it runs (gmr status reads it). \
WORKDIR/attempts.jsonl: every attempt that ended. WORKDIR/report.json and WORKDIR/report.html: \
at the end of the job, the status with every attempt, and the HTML report.";

/// Every man page: `gmr.1` and one page per subcommand.
pub fn man_pages() -> Vec<Generated> {
    let mut pages = vec![(
        "man/gmr.1".to_string(),
        render_page(documented(), flags::EXAMPLES_GMR, true),
    )];
    for sub in page_commands() {
        let examples = match sub.get_name() {
            "run" => flags::EXAMPLES_RUN,
            "split" => flags::EXAMPLES_SPLIT,
            "map" => flags::EXAMPLES_MAP,
            "shuffle" => flags::EXAMPLES_SHUFFLE,
            "status" => flags::EXAMPLES_STATUS,
            "report" => flags::EXAMPLES_REPORT,
            _ => flags::EXAMPLES_REDUCE,
        };
        let name = format!("gmr-{}", sub.get_name());
        let sub = sub.clone().version(env!("CARGO_PKG_VERSION"));
        let page = render_page(sub.clone(), examples, sub.get_name() == "run");
        pages.push((format!("man/{name}.1"), page));
    }
    pages
}

/// The command line as its pages document it: no `help` subcommand (it
/// has no page of its own; `--help` is an option of every command).
fn documented() -> clap::Command {
    let mut cmd = Cli::command().disable_help_subcommand(true);
    cmd.build();
    cmd
}

/// The subcommands that have a page: not the hidden ones.
fn page_commands() -> impl Iterator<Item = clap::Command> {
    documented()
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect::<Vec<_>>()
        .into_iter()
}

fn render_page(cmd: clap::Command, examples: &str, full: bool) -> Vec<u8> {
    // The footer names the page as its title does: `gmr-run 0.1.0`.
    let man = Man::new(cmd.clone()).manual("gmr manual").source(format!(
        "{} {}",
        man_name(&cmd),
        env!("CARGO_PKG_VERSION")
    ));
    let mut out = Vec::new();
    let sections: [RenderSection; 4] = [
        Man::render_title,
        Man::render_name_section,
        Man::render_synopsis_section,
        Man::render_description_section,
    ];
    for render in sections {
        render(&man, &mut out).expect("writing to memory");
    }
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out)
            .expect("writing to memory");
    }
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut out)
            .expect("writing to memory");
    }
    if full {
        section(&mut out, "BUILT-IN REDUCERS");
        for (_, name, what) in Builtin::ALL {
            item(&mut out, name, what);
        }
        section(&mut out, "RECORD CONTRACT");
        paragraphs(&mut out, RECORD_CONTRACT);
    }
    section(&mut out, "EXIT STATUS");
    for (code, what) in EXIT_STATUS {
        item(&mut out, code, what);
    }
    section(&mut out, "ENVIRONMENT");
    for (name, what) in ENVIRONMENT {
        item(&mut out, name, what);
    }
    if full {
        section(&mut out, "FILES");
        paragraphs(&mut out, FILES);
    }
    section(&mut out, "EXAMPLES");
    let examples = examples.strip_prefix("Examples:\n").unwrap_or(examples);
    out.extend_from_slice(b".nf\n");
    for line in examples.lines() {
        out.extend_from_slice(escape(line).as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(b".fi\n");
    section(&mut out, "SEE ALSO");
    // Every page that exists, from the same list that makes them.
    let see: Vec<String> = std::iter::once("gmr".to_string())
        .chain(page_commands().map(|s| format!("gmr-{}", s.get_name())))
        .filter(|n| *n != man_name(&cmd))
        .map(|n| format!("\\fB{n}\\fR(1)"))
        .collect();
    out.extend_from_slice(
        format!("{}, \\fBsort\\fR(1), \\fBparallel\\fR(1)\n", see.join(", ")).as_bytes(),
    );
    man.render_version_section(&mut out)
        .expect("writing to memory");
    out
}

fn man_name(cmd: &clap::Command) -> String {
    cmd.get_display_name().unwrap_or(cmd.get_name()).to_string()
}

fn section(out: &mut Vec<u8>, title: &str) {
    out.extend_from_slice(format!(".SH \"{title}\"\n").as_bytes());
}

fn item(out: &mut Vec<u8>, tag: &str, text: &str) {
    out.extend_from_slice(format!(".TP\n\\fB{}\\fR\n{}\n", escape(tag), escape(text)).as_bytes());
}

fn paragraphs(out: &mut Vec<u8>, text: &str) {
    for p in text.lines() {
        out.extend_from_slice(format!(".PP\n{}\n", escape(p)).as_bytes());
    }
}

/// Escapes text for roff: backslashes, and control characters at the start
/// of a line; hyphens in options stay minus signs.
fn escape(text: &str) -> String {
    let t = text.replace('\\', "\\e").replace('-', "\\-");
    if t.starts_with('.') || t.starts_with('\'') {
        format!("\\&{t}")
    } else {
        t
    }
}

/// Completions for bash, zsh and fish.
pub fn completions() -> Vec<Generated> {
    [
        (Shell::Bash, "completions/gmr.bash"),
        (Shell::Zsh, "completions/_gmr"),
        (Shell::Fish, "completions/gmr.fish"),
    ]
    .into_iter()
    .map(|(shell, path)| {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut Cli::command(), "gmr", &mut buf);
        (path.to_string(), buf)
    })
    .collect()
}
