//! Running a user command (mapper, combiner, reducer) as a child process:
//! feed its stdin, drain its stdout and stderr concurrently, collect its
//! counters, and turn its exit into a task result.
//!
//! Commands run under `sh -c`, so a shell pipeline is a command; a command of
//! plain words (see [`plain_words`]) is started directly,
//! as the shell would start it, sparing a shell's start per run: with
//! thousands of small input files, a mapper each, process starts were most
//! of a job's time (the shell is still used when the direct start fails,
//! for a script without `#!` or a missing program, so that the outcome is
//! the shell's). stdin is fed
//! from its own thread, stdout is read on the caller's thread and stderr on a
//! third, so no pipe can fill up and deadlock: a mapper that never reads its
//! stdin, or that writes megabytes to stderr, is fine. Each child leads its
//! own process group, so an interrupt kills the whole pipeline.

use crate::error::TaskError;
use crate::interrupt;
use crate::report::{Counters, parse_reporter_line};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};

/// The `PWD` a shell started in `cwd` exports: the inherited one when it
/// names that directory (a path through a symbolic link stays as the user
/// typed it), else `cwd`.
fn shell_pwd(cwd: &Path) -> std::path::PathBuf {
    use std::os::unix::fs::MetadataExt;
    let same = |a: &Path, b: &Path| match (a.metadata(), b.metadata()) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    };
    match std::env::var_os("PWD").map(std::path::PathBuf::from) {
        Some(pwd) if pwd.is_absolute() && same(&pwd, cwd) => pwd,
        _ => cwd.to_path_buf(),
    }
}

/// Shell builtins and keywords: a command line that starts with one is left
/// to the shell.
pub const SHELL_WORDS: &[&str] = &[
    "exec", "cd", "if", "for", "while", "until", "case", "export", "set", "eval", "read", "echo",
    "printf", "test", "[", "true", "false", ":", ".", "source", "trap", "exit", "command",
    "builtin", "local", "ulimit", "umask", "wait", "time", "!", "{", "(", "pwd", "kill", "type",
    "hash", "alias", "unalias", "unset", "shift", "times", "getopts", "readonly", "return",
    "break", "continue", "jobs", "fg", "bg", "fc",
];

/// The words of a command line that `sh -c` would run as a single program
/// with these arguments: words of letters, digits and `-_./,:+@%^=` (no
/// quoting, expansion, globbing, redirection or comment), the first no
/// builtin, keyword or assignment. Running those words directly does what
/// the shell would, with one process start fewer. None for anything else.
pub fn plain_words(cmd: &str) -> Option<Vec<&str>> {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./,:+@%^= \t".contains(c);
    if !cmd.chars().all(plain) {
        return None;
    }
    let words: Vec<&str> = cmd.split_ascii_whitespace().collect();
    let first = *words.first()?;
    (!first.contains('=') && !SHELL_WORDS.contains(&first)).then_some(words)
}

/// How many stderr lines a failure message shows.
const TAIL_LINES: usize = 20;
/// How much of one stderr line a failure message shows.
const TAIL_LINE_BYTES: usize = 400;
/// The buffers between gmr and a child's pipes. A pipe holds 64 KiB, so a
/// read returns no more and larger writes pass straight through; a larger
/// buffer would be an mmap and munmap per child, which thousands of
/// small-file mappers pay.
const PIPE_CHUNK: usize = 64 << 10;

/// What a finished child left besides its output.
#[derive(Debug, Default)]
pub struct ChildOutcome {
    /// `reporter:counter:` lines, summed.
    pub counters: Counters,
    /// The last `reporter:status:` message.
    pub status: Option<String>,
}

/// One command to run.
pub struct Child<'a> {
    /// What the command is, for messages ("mapper", "reducer", …).
    pub role: &'a str,
    /// The shell command.
    pub command: &'a str,
    /// The directory it runs in.
    pub cwd: &'a Path,
    /// Extra environment.
    pub env: &'a [(String, String)],
    /// Where its whole stderr is kept.
    pub log: &'a Path,
    /// The open-file limit it gets, when not gmr's own.
    pub nofile: Option<libc::rlimit>,
}

impl Child<'_> {
    /// The process to start: `words` run directly, or else the command
    /// under `sh -c`.
    fn command(&self, words: Option<&[&str]>) -> Command {
        let mut command = match words {
            Some([program, args @ ..]) => {
                // A relative path is taken from `cwd`: the child changes
                // to it before it starts the program. The path stays as
                // named: a script gets it as $0.
                let mut command = Command::new(program);
                // The shell would also export a PWD that names `cwd`.
                command.args(args).env("PWD", shell_pwd(self.cwd));
                command
            }
            _ => {
                let mut command = Command::new("sh");
                command.arg("-c").arg(self.command);
                command
            }
        };
        command
            .current_dir(self.cwd)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        if let Some(limit) = self.nofile {
            // SAFETY: setrlimit is async-signal-safe, and the closure only
            // reads a copied struct.
            unsafe {
                command.pre_exec(move || {
                    libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                    Ok(())
                });
            }
        }
        command
    }

    /// Runs the command: `feed` writes its stdin (from another thread),
    /// `on_stdout` gets its stdout in chunks. An error from either ends the
    /// child. Succeeds only when the child exits 0.
    pub fn run<F, G>(&self, feed: F, mut on_stdout: G) -> Result<ChildOutcome, TaskError>
    where
        F: FnOnce(&mut dyn Write) -> io::Result<()> + Send,
        G: FnMut(&[u8]) -> io::Result<()>,
    {
        interrupt::check()?;
        if interrupt::cancelled() {
            return Err(TaskError::cancelled());
        }
        // Appended to: a task may run its command more than once (a mapper
        // per small file, a combiner per spill), and each run's stderr is
        // kept.
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log)
            .map_err(|e| {
                TaskError::host(format!("cannot create log {}: {e}", self.log.display()))
            })?;
        let direct = plain_words(self.command);
        let mut child = match direct.and_then(|words| self.command(Some(&words)).spawn().ok()) {
            Some(child) => child,
            None => self
                .command(None)
                .spawn()
                .map_err(|e| TaskError::host(format!("cannot start sh for {}: {e}", self.role)))?,
        };
        let pid = child.id() as i32;
        interrupt::register_child(pid);
        let stdin = child.stdin.take().expect("piped");
        let mut stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");

        let (fed, drained, stderr_result) = std::thread::scope(|s| {
            let feeder = s.spawn(move || {
                let mut w = BufWriter::with_capacity(PIPE_CHUNK, stdin);
                let r = feed(&mut w).and_then(|()| w.flush());
                // A child that exits without reading all its input is not an
                // error: plenty of filters stop early (head, grep -m).
                match r {
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    other => other,
                }
            });
            let errs = s.spawn(move || drain_stderr(stderr, log));
            let mut buf = vec![0u8; PIPE_CHUNK];
            let drained = loop {
                match stdout.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        if let Err(e) = on_stdout(&buf[..n]) {
                            interrupt::kill_group(pid);
                            break Err(e);
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => break Err(e),
                }
            };
            if drained.is_err() {
                interrupt::kill_group(pid);
            }
            drop(stdout);
            let fed = feeder.join().expect("feeder thread");
            if fed.is_err() {
                interrupt::kill_group(pid);
            }
            (fed, drained, errs.join().expect("stderr thread"))
        });
        let status = child.wait();
        interrupt::unregister_child(pid);
        let (outcome, tail) = stderr_result;
        let with_tail = |mut e: TaskError| {
            e.stderr_tail = tail.clone();
            e
        };
        interrupt::check().map_err(|e| with_tail(e.into()))?;
        if interrupt::cancelled() {
            return Err(TaskError::cancelled());
        }
        let status =
            status.map_err(|e| TaskError::host(format!("cannot wait for {}: {e}", self.role)))?;
        drained.map_err(|e| with_tail(TaskError::task(format!("{} output: {e}", self.role))))?;
        fed.map_err(|e| with_tail(TaskError::task(format!("{} input: {e}", self.role))))?;
        if !status.success() {
            let how = match (status.code(), status.signal()) {
                (Some(127), _) => "exited with status 127 (command not found)".to_string(),
                (Some(126), _) => "exited with status 126 (not executable)".to_string(),
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                _ => "failed".to_string(),
            };
            return Err(with_tail(TaskError::task(format!(
                "{} `{}` {how}",
                self.role, self.command
            ))));
        }
        Ok(outcome)
    }
}

/// Reads stderr to the end: reporter lines become counters and status,
/// every line goes to the log, the last few are kept for error messages.
fn drain_stderr(stderr: impl Read, log: File) -> (ChildOutcome, String) {
    let mut outcome = ChildOutcome::default();
    let mut tail: VecDeque<String> = VecDeque::with_capacity(TAIL_LINES);
    let mut log = BufWriter::new(log);
    let mut reader = BufReader::with_capacity(64 << 10, stderr);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) => {}
        }
        let _ = log.write_all(&line);
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        if parse_reporter_line(text, &mut outcome.counters, &mut outcome.status) {
            continue;
        }
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        let shown = &text[..text.len().min(TAIL_LINE_BYTES)];
        tail.push_back(String::from_utf8_lossy(shown).into_owned());
    }
    let _ = log.flush();
    (outcome, Vec::from(tail).join("\n"))
}
