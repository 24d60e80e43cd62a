//! Test helpers: run the real `gmr` binary in a fresh temporary directory,
//! with real scripts, and build independent reference outputs with the
//! shell (`LC_ALL=C sort`, the mapper and reducer piped by hand).

#![allow(dead_code)]

use std::fs;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The `gmr` binary under test.
pub fn gmr_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_gmr"))
}

/// The repository root.
pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A data set of `tests/data` (see `tests/data/README.md` for where each
/// comes from and its licence).
pub fn data(rel: &str) -> String {
    repo().join("tests/data").join(rel).display().to_string()
}

/// A job script from `tests/jobs`.
pub fn job(name: &str) -> String {
    repo().join("tests/jobs").join(name).display().to_string()
}

/// The Project Gutenberg books of `tests/data` (a directory of a few MB).
pub fn gutenberg() -> String {
    data("gutenberg")
}

/// The word count's mapper, `tests/jobs/words_map.sh`.
pub fn words_map() -> String {
    job("words_map.sh")
}

/// The word count's reducer, `tests/jobs/sum_reduce.sh`.
pub fn sum_reduce() -> String {
    job("sum_reduce.sh")
}

/// Lines of JSON (a job log, stage manifests), parsed; the bytes must be
/// UTF-8.
pub fn json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    std::str::from_utf8(bytes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The lines of a job log (`--joblog`), parsed.
pub fn joblog(path: impl AsRef<Path>) -> Vec<serde_json::Value> {
    json_lines(&read(path))
}

/// A temporary directory to run gmr in.
pub struct Dir {
    pub tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Dir {
        let tmp = tempfile::Builder::new()
            .prefix("gmr-test-")
            .tempdir()
            .unwrap();
        fs::create_dir(tmp.path().join("tmp")).unwrap();
        Dir { tmp }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.tmp.path().join(rel)
    }

    /// Writes a file (creating parent directories).
    pub fn write(&self, rel: &str, contents: impl AsRef<[u8]>) -> PathBuf {
        let p = self.path(rel);
        fs::create_dir_all(p.parent().unwrap()).unwrap();
        fs::write(&p, contents).unwrap();
        p
    }

    /// Writes an executable script.
    pub fn script(&self, rel: &str, body: &str) -> PathBuf {
        let p = self.write(rel, format!("#!/bin/sh\n{body}\n"));
        fs::set_permissions(&p, fs::Permissions::from_mode(0o755)).unwrap();
        p
    }

    /// A `gmr` command run in this directory, with temporary work
    /// directories inside it.
    pub fn gmr(&self, args: &[&str]) -> Command {
        let mut c = Command::new(gmr_bin());
        c.args(args)
            .current_dir(self.tmp.path())
            .env("TMPDIR", self.path("tmp"))
            // The history of jobs (~/.local/state/gmr) is the test's own.
            .env("XDG_STATE_HOME", self.path("state"))
            .env("LC_ALL", "C")
            .stdin(Stdio::null());
        c
    }

    /// Runs gmr and returns its output.
    pub fn run(&self, args: &[&str]) -> Out {
        Out(self.gmr(args).output().unwrap())
    }

    /// A `gmr run` command line to build, run in this directory.
    pub fn gmr_run(&self) -> GmrRun<'_> {
        GmrRun::new(self)
    }

    /// Runs the whitespace word count job (`tests/jobs/words_map.sh` and
    /// `sum_reduce.sh`) quietly, with `args` after the commands.
    pub fn word_count(&self, args: &[&str]) -> Out {
        self.job(&words_map(), &sum_reduce(), args)
    }

    /// Runs `gmr run -q -m mapper -r reducer` with `args` after them.
    pub fn job(&self, mapper: &str, reducer: &str, args: &[&str]) -> Out {
        self.gmr_run()
            .quiet()
            .mapper(mapper)
            .reducer(reducer)
            .args(args)
            .run()
    }

    /// A job's reference, run by the shell: `cat INPUT/* | MAPPER | sort |
    /// REDUCER` (bytewise sort), what one reduce partition must give byte
    /// for byte. `mapper` and `reducer` are shell text (a redirection may
    /// follow the command).
    pub fn piped(&self, input_dir: &str, mapper: &str, reducer: &str) -> Vec<u8> {
        self.sh(&format!("cat {input_dir}/* | {mapper} | sort | {reducer}"))
    }

    /// The word count's reference: [`Dir::piped`] with
    /// `tests/jobs/words_map.sh` and `sum_reduce.sh`.
    pub fn word_count_reference(&self, input_dir: &str) -> Vec<u8> {
        self.piped(input_dir, &words_map(), &sum_reduce())
    }

    /// `PRODUCER | sort | uniq -c`, rewritten to `WORD<TAB>COUNT` lines:
    /// what `-r @count` gives for the words `producer` (shell text) prints
    /// one a line.
    pub fn uniq_count(&self, producer: &str) -> Vec<u8> {
        self.sh(&format!(
            "{producer} | sort | uniq -c | sed -E 's/^ *([0-9]+) (.*)$/\\2\t\\1/'"
        ))
    }

    /// Runs gmr with `input` on stdin.
    pub fn run_stdin(&self, args: &[&str], input: &[u8]) -> Out {
        let mut child = self
            .gmr(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let data = input.to_vec();
        let feeder = std::thread::spawn(move || {
            let _ = stdin.write_all(&data);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        Out(out)
    }

    /// Runs a shell command line in this directory (for references, and
    /// for gmr in pipelines), with temporary files inside it.
    pub fn sh(&self, cmd: &str) -> Vec<u8> {
        let out = Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(self.tmp.path())
            .env("TMPDIR", self.path("tmp"))
            // The history of jobs (~/.local/state/gmr) is the test's own.
            .env("XDG_STATE_HOME", self.path("state"))
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "reference `{cmd}` failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Files left in the temporary work area (should be none after success).
    pub fn leftover_workdirs(&self) -> Vec<String> {
        fs::read_dir(self.path("tmp"))
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect()
    }
}

/// A `gmr run` command line, built in the order the calls are written
/// (each call appends its flag and value), then run in a [`Dir`]:
///
/// ```ignore
/// d.gmr_run().quiet().mapper("cat").reducer("@count").reducers(2).input("in").run()
/// ```
///
/// is `gmr run -q -m cat -r @count -R 2 in`. It can be cloned to run the
/// same job twice with something added.
#[derive(Clone)]
pub struct GmrRun<'d> {
    dir: &'d Dir,
    args: Vec<String>,
}

impl<'d> GmrRun<'d> {
    /// `gmr run` in `dir`, no arguments yet.
    pub fn new(dir: &'d Dir) -> GmrRun<'d> {
        GmrRun {
            dir,
            args: vec!["run".into()],
        }
    }

    /// One argument.
    pub fn arg(mut self, a: impl AsRef<str>) -> Self {
        self.args.push(a.as_ref().to_string());
        self
    }

    /// Arguments, in order.
    pub fn args<S: AsRef<str>>(mut self, args: impl IntoIterator<Item = S>) -> Self {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_string()));
        self
    }

    /// A flag and its value.
    pub fn flag(self, flag: &str, value: impl std::fmt::Display) -> Self {
        self.arg(flag).arg(value.to_string())
    }

    /// An input file or directory.
    pub fn input(self, path: impl AsRef<str>) -> Self {
        self.arg(path)
    }

    /// `-q`.
    pub fn quiet(self) -> Self {
        self.arg("-q")
    }

    /// `-m MAPPER`.
    pub fn mapper(self, m: impl AsRef<str>) -> Self {
        self.arg("-m").arg(m)
    }

    /// `-c COMBINER`.
    pub fn combiner(self, c: impl AsRef<str>) -> Self {
        self.arg("-c").arg(c)
    }

    /// `-r REDUCER`.
    pub fn reducer(self, r: impl AsRef<str>) -> Self {
        self.arg("-r").arg(r)
    }

    /// `-m tests/jobs/words_map.sh -r tests/jobs/sum_reduce.sh`.
    pub fn word_count(self) -> Self {
        self.mapper(words_map()).reducer(sum_reduce())
    }

    /// `-R N`.
    pub fn reducers(self, n: impl std::fmt::Display) -> Self {
        self.flag("-R", n)
    }

    /// `-j N`.
    pub fn jobs(self, n: impl std::fmt::Display) -> Self {
        self.flag("-j", n)
    }

    /// `--split-size SIZE`.
    pub fn split_size(self, size: &str) -> Self {
        self.flag("--split-size", size)
    }

    /// `--sort-buffer SIZE`.
    pub fn sort_buffer(self, size: &str) -> Self {
        self.flag("--sort-buffer", size)
    }

    /// `--retries N`.
    pub fn retries(self, n: impl std::fmt::Display) -> Self {
        self.flag("--retries", n)
    }

    /// `-o DIR`.
    pub fn output(self, dir: &str) -> Self {
        self.flag("-o", dir)
    }

    /// `--workdir DIR`.
    pub fn workdir(self, dir: &str) -> Self {
        self.flag("--workdir", dir)
    }

    /// `--joblog PATH`.
    pub fn joblog(self, path: &str) -> Self {
        self.flag("--joblog", path)
    }

    /// The arguments so far, `run` first.
    pub fn argv(&self) -> Vec<&str> {
        self.args.iter().map(String::as_str).collect()
    }

    /// The command, to spawn or to change (environment, stdio).
    pub fn command(&self) -> Command {
        self.dir.gmr(&self.argv())
    }

    /// Runs it and returns its output.
    pub fn run(&self) -> Out {
        self.dir.run(&self.argv())
    }

    /// Runs it with `input` on stdin.
    pub fn run_stdin(&self, input: &[u8]) -> Out {
        self.dir.run_stdin(&self.argv(), input)
    }
}

/// The output of one gmr run.
pub struct Out(pub Output);

impl Out {
    pub fn code(&self) -> i32 {
        self.0.status.code().unwrap_or(-1)
    }
    pub fn stdout(&self) -> &[u8] {
        &self.0.stdout
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.0.stderr).into_owned()
    }
    /// Asserts success and returns stdout.
    #[track_caller]
    pub fn ok(&self) -> &[u8] {
        assert_eq!(self.code(), 0, "gmr failed; stderr:\n{}", self.stderr());
        &self.0.stdout
    }
    /// Asserts the exit code and returns stderr.
    #[track_caller]
    pub fn fails(&self, code: i32) -> String {
        assert_eq!(
            self.code(),
            code,
            "expected exit {code}; stderr:\n{}",
            self.stderr()
        );
        self.stderr()
    }
}

/// The lines of `bytes`, sorted bytewise (for order-free comparisons).
pub fn sorted_lines(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut lines: Vec<Vec<u8>> = bytes.split(|&b| b == b'\n').map(<[u8]>::to_vec).collect();
    if lines.last().is_some_and(Vec::is_empty) {
        lines.pop();
    }
    lines.sort();
    lines
}

/// Asserts that two outputs hold the same lines in any order, showing the
/// first difference rather than both outputs.
#[track_caller]
pub fn assert_same_lines(got: &[u8], want: &[u8], what: &str) {
    let (g, w) = (sorted_lines(got), sorted_lines(want));
    if g == w {
        return;
    }
    let i = g
        .iter()
        .zip(&w)
        .position(|(a, b)| a != b)
        .unwrap_or(g.len().min(w.len()));
    let show = |v: &[Vec<u8>]| v.get(i).map(|l| String::from_utf8_lossy(l).into_owned());
    panic!(
        "{what}: {} lines vs {} expected; first difference at sorted line {i}: got {:?}, want {:?}",
        g.len(),
        w.len(),
        show(&g),
        show(&w)
    );
}

/// Waits for `path` to exist (a command's sign that it started), up to
/// 30 s.
#[track_caller]
pub fn wait_for(path: &Path) {
    let t0 = std::time::Instant::now();
    while !path.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(30),
            "{path:?} never came"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Reads a file.
pub fn read(p: impl AsRef<Path>) -> Vec<u8> {
    fs::read(p.as_ref()).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.as_ref().display()))
}

/// Names in a directory, sorted.
pub fn names(dir: impl AsRef<Path>) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// The concatenation of `part-*` files of an output directory, in order.
pub fn parts(dir: impl AsRef<Path>) -> Vec<u8> {
    let mut out = Vec::new();
    for n in names(&dir) {
        if n.starts_with("part-") {
            out.extend(read(dir.as_ref().join(n)));
        }
    }
    out
}
