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
        "GMR_RUN",
        "Set for every command: marks this run of it, so that gmr finds and kills what it left running when it exits.",
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
        "LANG, LANGUAGE, LC_*, TZ",
        "Read by gmr and passed on to every command on every host, so that sort, awk and grep behave alike everywhere; recorded in the job (--resume needs the same). gmr's own ordering never depends on the locale.",
    ),
    (
        "PATH",
        "Read by gmr: where a command's program is found before the job starts. Commands on other hosts get the PATH of an SSH command there.",
    ),
    (
        "PWD",
        "Read by gmr: the PWD of a command started directly, when it names the current directory.",
    ),
    (
        "TMPDIR",
        "Read by gmr: where it makes a work directory when --workdir is not given.",
    ),
    (
        "XDG_STATE_HOME",
        "Read by gmr: the job history is XDG_STATE_HOME/gmr/jobs (default ~/.local/state/gmr/jobs): where gmr status and gmr report find the newest job, and the reports of a job whose temporary work directory was removed.",
    ),
    (
        "HOME",
        "Read by gmr: the job history (see XDG_STATE_HOME); with --hosts, ~/.ssh/config, ~/.ssh/known_hosts and the default keys.",
    ),
    (
        "SSH_AUTH_SOCK",
        "Read by gmr with --hosts: the ssh-agent whose keys are tried first.",
    ),
    (
        "USER",
        "Read by gmr with --hosts: the login name for a host given without user@.",
    ),
];

const RECORD_CONTRACT: &str = "\
A record is one line of bytes ending in a newline (with -z, bytes ending in NUL, newlines \
and all); a last line without one is a record too. Bytes need not be UTF-8, and a split never \
cuts a record.
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
DIR/part-NNNNN (.gz or .zst with --compress) and DIR/_SUCCESS: the output of -o DIR; _SUCCESS is written last. \
DIR/_SKIPPED: the input --max-failed-tasks left out, a JSON line per map task.
DIR/KEY/part-NNNNN: with --output-by-key, the lines of each key. KEY is the key made a safe name: ASCII \
letters and digits, - + , = @ ~, non-ASCII letters and digits, and . or _ past the first byte stay; every \
other byte (and bytes that are not UTF-8) is written %HH (a/b is a%2Fb, ../x is %2E.%2Fx); the empty key is \
_EMPTY; a name past 200 bytes is cut and ends in %% and 16 hex digits of the key's hash.
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
    let synopsis: RenderSection = match cmd.has_subcommands() {
        true => Man::render_synopsis_section,
        false => |_, _| Ok(()),
    };
    let sections: [RenderSection; 3] = [Man::render_title, Man::render_name_section, synopsis];
    for render in sections {
        render(&man, &mut out).expect("writing to memory");
    }
    if !cmd.has_subcommands() {
        grouped_synopsis(&cmd, &mut out);
    }
    man.render_description_section(&mut out)
        .expect("writing to memory");
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

/// The SYNOPSIS of a subcommand's page: its usage line, then its options
/// in the groups (and order) of its `--help`, rather than clap_mangen's
/// one flat list of every flag.
fn grouped_synopsis(cmd: &clap::Command, out: &mut Vec<u8>) {
    let word = |a: &clap::Arg| {
        let name = match (a.get_short(), a.get_long()) {
            (Some(c), _) => format!("\\fB-{c}\\fR"),
            (None, Some(l)) => format!("\\fB--{}\\fR", escape(l)),
            (None, None) => String::new(),
        };
        let value = a
            .get_value_names()
            .and_then(|v| v.first())
            .filter(|_| a.get_action().takes_values())
            .map(|v| format!(" \\fI{}\\fR", escape(v)))
            .unwrap_or_default();
        let repeat = match a.get_action() {
            clap::ArgAction::Append => "...",
            _ => "",
        };
        match a.is_required_set() {
            true => format!("{name}{value}{repeat}"),
            false => format!("[{name}{value}]{repeat}"),
        }
    };
    let shown: Vec<&clap::Arg> = cmd
        .get_arguments()
        .filter(|a| !a.is_hide_set() && !["help", "version"].contains(&a.get_id().as_str()))
        .collect();
    let required: Vec<String> = shown
        .iter()
        .filter(|a| !a.is_positional() && a.is_required_set())
        .map(|a| word(a))
        .collect();
    let positionals: Vec<String> = shown
        .iter()
        .filter(|a| a.is_positional())
        .map(|a| {
            let name = a
                .get_value_names()
                .and_then(|v| v.first())
                .map_or("ARG", |v| v.as_str());
            let many = a.get_num_args().is_some_and(|n| n.max_values() > 1);
            let name = format!("\\fI{}\\fR{}", escape(name), if many { "..." } else { "" });
            match a.is_required_set() {
                true => name,
                false => format!("[{name}]"),
            }
        })
        .collect();
    section(out, "SYNOPSIS");
    // No hyphenation inside flag names.
    out.extend_from_slice(b".nh\n");
    let mut usage = vec![format!("\\fB{}\\fR", man_name(cmd).replace('-', " "))];
    usage.extend(required);
    usage.push("[\\fIOPTIONS\\fR]".into());
    usage.extend(positionals);
    out.extend_from_slice(format!("{}\n", usage.join(" ")).as_bytes());
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for a in shown
        .iter()
        .filter(|a| !a.is_positional() && !a.is_required_set())
    {
        let heading = a.get_help_heading().unwrap_or("Options").to_string();
        match groups.iter_mut().find(|(h, _)| *h == heading) {
            Some((_, words)) => words.push(word(a)),
            None => groups.push((heading, vec![word(a)])),
        }
    }
    for (heading, words) in groups {
        out.extend_from_slice(
            format!(".TP\n{}:\n{}\n", escape(&heading), words.join(" ")).as_bytes(),
        );
    }
    out.extend_from_slice(b".hy\n");
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

/// Completions for bash, zsh and fish: clap_complete's, of the commands
/// users type (not the hidden `task`), with what clap cannot say added by
/// [`Patches`]: the built-ins after `@` for -m, -c and -r, host names from
/// the ssh configuration (and hosts files) for --hosts, directories for the
/// WORKDIR of gmr status and gmr report.
pub fn completions() -> Vec<Generated> {
    [
        (Shell::Bash, "completions/gmr.bash"),
        (Shell::Zsh, "completions/_gmr"),
        (Shell::Fish, "completions/gmr.fish"),
    ]
    .into_iter()
    .map(|(shell, path)| {
        let mut buf = Vec::new();
        clap_complete::generate(shell, &mut completable(), "gmr", &mut buf);
        let text = String::from_utf8(buf).expect("clap_complete writes UTF-8");
        (
            path.to_string(),
            Patches::new(path, text).apply(shell).into_bytes(),
        )
    })
    .collect()
}

/// gmr's command as completions know it: clap_complete offers hidden
/// subcommands, so the root is rebuilt with the visible ones only.
fn completable() -> clap::Command {
    let full = Cli::command();
    let visible: Vec<clap::Command> = full
        .get_subcommands()
        .filter(|c| !c.is_hide_set())
        .cloned()
        .collect();
    clap::Command::new("gmr")
        .version(env!("CARGO_PKG_VERSION"))
        .about(full.get_about().cloned().unwrap_or_default())
        .subcommands(visible)
}

/// The built-ins each command flag takes, space-separated: the mapper only
/// `@identity`, a combiner those with a merge form, a reducer all.
fn builtins_for(flag: &str) -> String {
    let names = Builtin::ALL.iter().filter(|(b, _, _)| match flag {
        "mapper" => *b == Builtin::Identity,
        "combiner" => b.merge_form().is_some(),
        _ => true,
    });
    names.map(|(_, n, _)| *n).collect::<Vec<_>>().join(" ")
}

/// Edits of clap_complete's text. Each edit must find what it replaces, so
/// that a clap_complete that writes otherwise fails the generated-files
/// test instead of losing a completion quietly.
struct Patches {
    path: &'static str,
    text: String,
}

/// What bash runs for values clap cannot describe.
const BASH_HELPERS: &str = r#"# A command, or after `@` one of the built-ins given.
_gmr_command() {
    if [[ ${cur} == @* ]]; then
        COMPREPLY=( $(compgen -W "$1" -- "${cur}") )
    else
        COMPREPLY=( $(compgen -c -- "${cur}") $(compgen -f -- "${cur}") )
    fi
}

# Host names of the ssh configuration and /etc/hosts, after the last comma
# of an inline list; or a hosts file.
_gmr_hosts() {
    local prefix="" word="${cur}" names
    if [[ ${cur} == *,* ]]; then
        prefix="${cur%,*},"
        word="${cur##*,}"
    fi
    names="$(awk 'tolower($1) == "host" { for (i = 2; i <= NF; i++) if ($i !~ /[*?!]/) print $i }' ~/.ssh/config 2>/dev/null) $(compgen -A hostname)"
    COMPREPLY=( $(compgen -P "${prefix}" -W "${names}" -- "${word}") )
    if [[ -z ${prefix} ]]; then
        COMPREPLY+=( $(compgen -f -- "${cur}") )
    fi
}

"#;

/// What zsh runs for values clap cannot describe.
const ZSH_HELPERS: &str = r#"# A command, or after `@` one of the built-ins given.
(( $+functions[_gmr_command] )) ||
_gmr_command() {
    if [[ $PREFIX == @* ]]; then
        compadd -- "$@"
    else
        _cmdstring
    fi
}

# Host names of the ssh configuration and zsh's own, comma-separated; or a
# hosts file.
(( $+functions[_gmr_hosts] )) ||
_gmr_hosts() {
    local -a names
    names=(${(f)"$(awk 'tolower($1) == "host" { for (i = 2; i <= NF; i++) if ($i !~ /[*?!]/) print $i }' ~/.ssh/config 2>/dev/null)"})
    _alternative \
        'config-hosts:host:_sequence compadd -a names' \
        'hosts:host:_sequence _hosts' \
        'files:hosts file:_files'
}

"#;

/// What fish runs for values clap cannot describe.
const FISH_HELPERS: &str = r#"# Host names of the ssh configuration and fish's own, after the last comma
# of an inline list.
function __fish_gmr_hosts
    set -l token (commandline -ct)
    set -l prefix ''
    if string match -q -- '*,*' $token
        set prefix (string replace -r '[^,]*$' '' -- $token)
    end
    for name in (awk 'tolower($1) == "host" { for (i = 2; i <= NF; i++) if ($i !~ /[*?!]/) print $i }' ~/.ssh/config 2>/dev/null) (__fish_print_hostnames)
        echo $prefix$name
    end
end

"#;

impl Patches {
    fn new(path: &'static str, text: String) -> Patches {
        Patches { path, text }
    }

    /// Replaces every `from` with `to`; `from` must occur.
    fn replace(&mut self, from: &str, to: &str) {
        assert!(
            self.text.contains(from),
            "{}: clap_complete no longer writes {from:?}",
            self.path
        );
        self.text = self.text.replace(from, to);
    }

    fn apply(mut self, shell: Shell) -> String {
        let flags = [("m", "mapper"), ("c", "combiner"), ("r", "reducer")];
        match shell {
            Shell::Bash => {
                self.replace("_gmr() {\n", &format!("{BASH_HELPERS}_gmr() {{\n"));
                for (short, long) in flags {
                    let call = format!("_gmr_command \"{}\"", builtins_for(long));
                    for flag in [format!("-{short}"), format!("--{long}")] {
                        self.replace(
                            &format!("                {flag})\n                    COMPREPLY=($(compgen -f \"${{cur}}\"))"),
                            &format!("                {flag})\n                    {call}"),
                        );
                    }
                }
                self.replace(
                    "                --hosts)\n                    COMPREPLY=($(compgen -f \"${cur}\"))",
                    "                --hosts)\n                    _gmr_hosts",
                );
                // A WORKDIR, not the options, after `gmr status` and
                // `gmr report` (bash would insert their common `-`).
                for sub in ["status", "report"] {
                    let head = format!("        gmr__subcmd__{sub})\n");
                    let at = self.text.find(&head).expect("a block per subcommand");
                    let end = at
                        + self.text[at..]
                            .find("\n            ;;\n")
                            .expect("block end");
                    let block = self.text[at..end]
                        .replace(
                            "if [[ ${cur} == -* || ${COMP_CWORD} -eq 2 ]] ; then",
                            "if [[ ${cur} == -* ]] ; then",
                        )
                        .replace(
                            "            COMPREPLY=( $(compgen -W \"${opts}\" -- \"${cur}\") )\n            return 0",
                            "            COMPREPLY=( $(compgen -d -- \"${cur}\") )\n            return 0",
                        );
                    self.text.replace_range(at..end, &block);
                }
            }
            Shell::Zsh => {
                self.replace(
                    "autoload -U is-at-least\n\n",
                    &format!("autoload -U is-at-least\n\n{ZSH_HELPERS}"),
                );
                for (short, long) in flags {
                    let call = format!(":CMD:_gmr_command {}'", builtins_for(long));
                    for flag in [format!("'-{short}+["), format!("'--{long}=[")] {
                        // The same line in several subcommands: each once.
                        let lines: std::collections::BTreeSet<String> = self
                            .text
                            .lines()
                            .filter(|l| l.starts_with(&flag) && l.ends_with(":CMD:_cmdstring' \\"))
                            .map(String::from)
                            .collect();
                        assert!(!lines.is_empty(), "{}: no {flag} line", self.path);
                        for line in lines {
                            let patched = line.replace(":CMD:_cmdstring'", &call);
                            self.replace(&line, &patched);
                        }
                    }
                }
                self.replace(":HOSTS:_hosts'", ":HOSTS:_gmr_hosts'");
            }
            Shell::Fish => {
                self.text.insert_str(0, FISH_HELPERS);
                for (short, long) in flags {
                    let lines: std::collections::BTreeSet<String> = self
                        .text
                        .lines()
                        .filter(|l| l.contains(&format!(" -s {short} -l {long} ")))
                        .map(String::from)
                        .collect();
                    assert!(!lines.is_empty(), "{}: no -{short} line", self.path);
                    for line in lines {
                        let with =
                            format!("-a \"{} (__fish_complete_command)\"", builtins_for(long));
                        let patched = line.replace("-a \"(__fish_complete_command)\"", &with);
                        self.replace(&line, &patched);
                    }
                }
                self.replace(
                    "-r -f -a \"(__fish_print_hostnames)\"",
                    "-r -F -a \"(__fish_gmr_hosts)\"",
                );
                // clap_complete writes nothing for positionals in fish.
                for sub in ["status", "report"] {
                    self.text.push_str(&format!(
                        "complete -c gmr -n \"__fish_gmr_using_subcommand {sub}\" -f -a \"(__fish_complete_directories)\"\n"
                    ));
                }
            }
            _ => unreachable!("bash, zsh and fish only"),
        }
        self.text
    }
}
