//! What runs as mapper, combiner or reducer: a shell command (run as a child
//! process) or a built-in (run in-process). Both take their input through the
//! same `feed` callback and give their output to the same `on_stdout`
//! callback, so task code does not care which it has.

use crate::data::builtin::{Builtin, Sink};
use crate::data::record::KeySpec;
use crate::error::{Error, Result, TaskError};
use crate::task::process::{Child, ChildOutcome, InputMeter, SHELL_WORDS};
use std::io::{self, Write};
use std::path::Path;

/// A mapper, combiner or reducer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Program {
    /// A command line: plain words start the program directly, anything
    /// else runs under `sh -c` (see [`crate::task::process`]).
    Shell(String),
    /// A built-in reducer.
    Builtin(Builtin),
}

/// Where and how a program runs.
pub(crate) struct Context<'a> {
    /// "mapper", "combiner" or "reducer", for messages.
    pub(crate) role: &'a str,
    /// The directory commands run in.
    pub(crate) cwd: &'a Path,
    /// Extra environment for commands.
    pub(crate) env: &'a [(String, String)],
    /// Where a command's stderr is kept.
    pub(crate) log: &'a Path,
    /// The job's key spec (built-ins group by key).
    pub(crate) key: KeySpec,
    /// The open-file limit a command gets, when not gmr's own.
    pub(crate) nofile: Option<libc::rlimit>,
    /// The exit statuses that mean success.
    pub(crate) ok_exit: &'a [i32],
    /// How long a command may show no sign of life.
    pub(crate) timeout: Option<std::time::Duration>,
    /// The memory each of its processes may use (`--task-memory`).
    pub(crate) memory: Option<u64>,
    /// A command's feed stops once it stops reading (see
    /// [`crate::task::process::Child::stop_feed`]); built-ins read everything.
    pub(crate) stop_feed: bool,
}

impl Program {
    /// Parses the program given to `flag` (`-m`, `-c`, `-r`): as
    /// [`Program::parse`], its error naming the flag.
    pub(crate) fn parse_flag(text: &str, flag: &str) -> Result<Program> {
        Program::parse(text).map_err(|e| e.context(|msg| format!("{flag}: {msg}")))
    }

    /// Parses a program as given on the command line: `@name` is a
    /// built-in, anything else a shell command.
    pub(crate) fn parse(text: &str) -> Result<Program> {
        let trimmed = text.trim();
        if trimmed.starts_with('@') {
            return Builtin::from_name(trimmed)
                .map(Program::Builtin)
                .ok_or_else(|| {
                    let names: Vec<&str> = Builtin::ALL.iter().map(|(_, n, _)| *n).collect();
                    Error::usage(format!(
                        "unknown built-in `{trimmed}`; the built-ins are {}",
                        names.join(", ")
                    ))
                });
        }
        if trimmed.is_empty() {
            return Err(Error::usage("an empty command cannot run"));
        }
        // `cat` copies stdin to stdout: in-process it does the same without
        // a child and two pipe copies of every byte.
        if trimmed == "cat" {
            return Ok(Program::Builtin(Builtin::Identity));
        }
        Ok(Program::Shell(text.to_string()))
    }

    /// Checks, before any task runs, that a command's program exists and is
    /// executable, so a typo is a usage error rather than N failed tasks.
    pub(crate) fn check(&self, role: &str, cwd: &Path) -> Result<()> {
        let Program::Shell(cmd) = self else {
            return Ok(());
        };
        // A command that is not plain words runs as `sh -c`: sh itself
        // must be found, or every task fails on it.
        if crate::task::process::plain_words(cmd).is_none() && !in_path("sh", cwd) {
            return Err(Error::usage(format!(
                "{role} `{cmd}` runs with sh, which is not in PATH ({}); put /bin in PATH",
                std::env::var("PATH").unwrap_or_default()
            )));
        }
        let Some(word) = first_program_word(cmd) else {
            return Ok(());
        };
        if word.contains('/') {
            let path = cwd.join(&word);
            if !path.is_file() {
                return Err(Error::usage(format!(
                    "{role} `{word}` not found (looked at {}); check the path",
                    path.display()
                )));
            }
            is_executable(&path)
                .then_some(())
                .ok_or_else(|| Error::usage(format!(
                    "{role} `{word}` is not executable; run `chmod +x {word}` or name its interpreter (e.g. `sh {word}`)"
                )))
        } else {
            in_path(&word, cwd).then_some(()).ok_or_else(|| {
                Error::usage(format!(
                    "{role} `{word}` not found in PATH; give its path (e.g. `./{word}`) or install it"
                ))
            })
        }
    }

    /// Runs the program: `feed` writes its input, `on_stdout` takes its
    /// output.
    pub(crate) fn run<F, G>(
        &self,
        ctx: &Context,
        feed: F,
        mut on_stdout: G,
    ) -> Result<ChildOutcome, TaskError>
    where
        F: FnOnce(&mut dyn Write) -> io::Result<()> + Send,
        G: FnMut(&[u8]) -> io::Result<()>,
    {
        match self {
            Program::Shell(command) => Child {
                role: ctx.role,
                command,
                cwd: ctx.cwd,
                env: ctx.env,
                log: ctx.log,
                nofile: ctx.nofile,
                ok_exit: ctx.ok_exit,
                timeout: ctx.timeout,
                memory: ctx.memory,
                stop_feed: ctx.stop_feed,
                eol: ctx.key.eol,
            }
            .run(feed, on_stdout),
            Program::Builtin(b) => {
                let failed =
                    |e: io::Error| TaskError::io(format!("{} {}: {e}", ctx.role, b.name()), &e);
                let mut sink = Sink::new(*b, ctx.key, &mut on_stdout);
                let mut meter = InputMeter::new(&mut sink).ending(ctx.key.eol);
                // Feeds write record by record: batch them. A merge's or a
                // split's blocks are larger, and pass through whole.
                let mut w =
                    io::BufWriter::with_capacity(crate::data::linebuf::WRITE_BUFFER, &mut meter);
                feed(&mut w).and_then(|()| w.flush()).map_err(failed)?;
                drop(w);
                let input = meter.finish();
                sink.finish().map_err(failed)?;
                Ok(ChildOutcome::fed(input))
            }
        }
    }
}

impl std::fmt::Display for Program {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Program::Shell(c) => f.write_str(c),
            Program::Builtin(b) => f.write_str(b.name()),
        }
    }
}

/// Whether the program `word` is found in PATH (relative entries taken
/// from `cwd`), as the shell or execvp would find it.
fn in_path(word: &str, cwd: &Path) -> bool {
    // Without PATH, execvp (and so the shell) looks in /bin and /usr/bin.
    let paths = std::env::var_os("PATH").unwrap_or_else(|| "/bin:/usr/bin".into());
    std::env::split_paths(&paths).any(|dir| {
        let p = cwd.join(dir).join(word);
        p.is_file() && is_executable(&p)
    })
}

/// The program a shell command line starts with, when it is a plain word we
/// can look up; None when the line starts with shell syntax we do not
/// second-guess (builtins, keywords, subshells, expansions).
fn first_program_word(cmd: &str) -> Option<String> {
    let mut words = cmd.split_whitespace();
    let mut word = words.next()?;
    // Skip leading VAR=value assignments.
    while word.contains('=') && !word.starts_with('=') && !word.contains('/') {
        word = words.next()?;
    }
    let word = word.trim_matches(|c| c == '\'' || c == '"');
    let special = |c: char| "$`\\*?;|&<>(){}~".contains(c);
    if word.is_empty() || SHELL_WORDS.contains(&word) || word.chars().any(special) {
        return None;
    }
    Some(word.to_string())
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    path.metadata()
        .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::process::plain_words;

    #[test]
    fn first_words() {
        assert_eq!(
            first_program_word("./map.sh -x").as_deref(),
            Some("./map.sh")
        );
        assert_eq!(
            first_program_word("LC_ALL=C sort -k1").as_deref(),
            Some("sort")
        );
        assert_eq!(first_program_word("'tr' -s x").as_deref(), Some("tr"));
        assert_eq!(first_program_word("(cd x; ls)"), None);
        assert_eq!(first_program_word("$HOME/bin/x"), None);
        assert_eq!(first_program_word("exec awk 1"), None);
    }

    #[test]
    fn plain_commands_need_no_shell() {
        assert_eq!(
            plain_words(" ./map.sh -x  --k=v\ta/b.txt "),
            Some(vec!["./map.sh", "-x", "--k=v", "a/b.txt"])
        );
        assert_eq!(plain_words("tr -s x"), Some(vec!["tr", "-s", "x"]));
        for shell in [
            "tr -s ' ' '\\n'",
            "awk '{print}'",
            "grep foo | sort",
            "LC_ALL=C sort",
            "cut -f1 >out",
            "ls *.txt",
            "echo $HOME",
            "exec awk 1",
            "true",
            "pwd -L",
            "a && b",
            "x # comment",
            "~/bin/map",
            "cmd\nother",
            "",
            "  ",
        ] {
            assert_eq!(plain_words(shell), None, "{shell:?}");
        }
    }

    #[test]
    fn builtins_parse_and_unknown_ones_are_refused() {
        assert_eq!(
            Program::parse("@count").unwrap(),
            Program::Builtin(Builtin::Count)
        );
        assert!(
            Program::parse("@nope")
                .unwrap_err()
                .to_string()
                .contains("@count")
        );
        assert!(matches!(
            Program::parse("wc -l").unwrap(),
            Program::Shell(_)
        ));
    }

    #[test]
    fn missing_and_non_executable_commands_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("m.sh");
        std::fs::write(&script, "#!/bin/sh\n").unwrap();
        let p = Program::parse("./m.sh").unwrap();
        assert!(
            p.check("mapper", dir.path())
                .unwrap_err()
                .to_string()
                .contains("chmod +x")
        );
        assert!(
            Program::parse("./nope.sh")
                .unwrap()
                .check("mapper", dir.path())
                .is_err()
        );
        assert!(
            Program::parse("no-such-program-xyz")
                .unwrap()
                .check("mapper", dir.path())
                .is_err()
        );
        assert!(
            Program::parse("sh -c true")
                .unwrap()
                .check("mapper", dir.path())
                .is_ok()
        );
    }

    /// Runs `head -c 4` on a feed of `limit` lines; returns the feed's
    /// counts and what head printed.
    fn head_of_feed(stop_feed: bool, limit: u64) -> (crate::task::process::InputCount, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let ctx = Context {
            role: "reducer",
            cwd: dir.path(),
            env: &[],
            log: &log,
            key: KeySpec::default(),
            nofile: None,
            ok_exit: &[0],
            timeout: None,
            memory: None,
            stop_feed,
        };
        let feed = |w: &mut dyn Write| (0..limit).try_for_each(|_| w.write_all(b"line\n"));
        let mut out = Vec::new();
        let outcome = Program::parse("head -c 4")
            .unwrap()
            .run(&ctx, feed, |c| {
                out.extend_from_slice(c);
                Ok(())
            })
            .unwrap();
        (outcome.input, out)
    }

    #[test]
    fn a_feed_stops_when_the_command_stops_reading_only_if_asked() {
        // 2 GB of input: fed to its end, this test would take minutes.
        let (input, out) = head_of_feed(true, 400 << 20);
        assert_eq!(out, b"line");
        assert!(input.stopped_early);
        assert!(input.bytes < 64 << 20, "{input:?}");
        assert!(input.records_taken <= input.records);
        // Otherwise everything is offered, and counted. (2 MB: more than
        // the 1 MiB pipe holds, so that some is never taken however fast
        // the feed is.)
        let (input, out) = head_of_feed(false, 400_000);
        assert_eq!(out, b"line");
        assert!(!input.stopped_early);
        assert_eq!((input.records, input.bytes), (400_000, 2_000_000));
        assert!(input.records_taken < 400_000, "{input:?}");
    }
}
