//! Running a user command (mapper, combiner, reducer) as a child process:
//! feed its stdin, drain its stdout and stderr, collect its counters, watch
//! it for signs of life, and turn its exit into a task result
//! (docs/contracts.md §5).
//!
//! Commands run under `sh -c`, so a shell pipeline is a command; a command of
//! plain words (see [`plain_words`]) is started directly, as the shell would
//! start it, sparing a shell's start per run: with thousands of small input
//! files, a mapper each, process starts were most of a job's time (the shell
//! is still used when the direct start fails, for a script without `#!` or a
//! missing program, so that the outcome is the shell's). Each child leads
//! its own process group, so that everything it starts can be killed.
//!
//! A run, whatever the command does:
//!
//! - stdin is fed from its own thread through an [`InputMeter`], which
//!   counts the records offered and those the command took. A command that
//!   stops reading early (`head`, `grep -m`) is no error: the rest of its
//!   input is counted as offered, not written; or, for a caller that knows
//!   its input's size without reading it ([`Child::stop_feed`]: a
//!   reducer's merge), the feed stops there, so that a `head` reducer does
//!   not wait for the rest of a large partition to be merged.
//! - stdout and stderr are read on the caller's thread with poll(2), so no
//!   pipe fills up, and the loop sees interrupts, cancels and timeouts
//!   within a tick.
//! - The run ends when the command has exited and its output is drained.
//!   What is left of its process group (a `cmd &` that outlived it) is then
//!   killed; output that a process outside the group holds open past a
//!   short grace is abandoned, so that nothing the command left behind
//!   holds the task.
//! - A run that shows no sign of life (no input taken, no output, no
//!   stderr) for the task timeout is killed.
//! - Only a bounded tail of stderr is held in memory; its log keeps the
//!   first [`LOG_CAP`] bytes of each run.

use crate::error::{FailureKind, TaskError};
use crate::interrupt;
use crate::task::cgroup::Cgroup;
use crate::task::report::{Counters, parse_reporter_line};
use std::collections::VecDeque;
use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

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
pub(crate) const SHELL_WORDS: &[&str] = &[
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
pub(crate) fn plain_words(cmd: &str) -> Option<Vec<&str>> {
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
/// The longest stderr line looked at as a `reporter:` line; of a longer
/// line (binary output, progress without newlines) only the end is kept
/// for messages, so that no line grows gmr's memory.
const LINE_CAP: usize = 64 << 10;
/// How much of one run's stderr its log keeps; past it, the log says how
/// much was dropped.
pub(crate) const LOG_CAP: u64 = 16 << 20;
/// The buffer a child's stdout and stderr are read into, a chunk at a
/// time (a full pipe takes several reads in one turn); a larger buffer
/// would be an mmap and munmap per child, which thousands of small-file
/// mappers pay.
const PIPE_CHUNK: usize = 64 << 10;
/// Chunks read from one pipe in one turn of the drain loop, at most.
const PIPE_ROUNDS: usize = 16;
/// Less than this from stdout in one turn, and the drain pauses for
/// [`GATHER_PAUSE`] before the next: output written a line at a time is
/// then read in blocks.
const GATHER: usize = 16 << 10;
const GATHER_PAUSE: Duration = Duration::from_millis(1);
/// Turns that found little output before the drain starts to pause.
const CHATTY: u32 = 32;
/// The pipes to and from commands: larger than the default 64 KiB, so
/// that a command and gmr wake each other less often (1 MiB is what
/// /proc/sys/fs/pipe-max-size allows by default).
const PIPE_SIZE: usize = 1 << 20;
/// The feeder's shortest and longest pause while a command is behind
/// (see [`InputMeter::wait_room`]).
const MIN_PAUSE: Duration = Duration::from_micros(50);
const MAX_PAUSE: Duration = Duration::from_millis(5);
/// The buffer in front of a command's stdin: feeds write large blocks (a
/// split's megabyte, a merge's [`crate::data::linebuf::PIPE_BLOCK`]), which pass
/// a smaller buffer whole (neither copied nor held back until the next
/// block); it only gathers small writes (a small file's lines).
const FEED_BUFFER: usize = 8 << 10;
/// How long a command's output may stay open after it exited (held by
/// something it started) before what is left of its process group is
/// killed.
const GRACE: Duration = Duration::from_millis(200);
/// How long output is still drained after that kill before it is abandoned
/// (held by a process that left the group, with `setsid`).
const ABANDON_AFTER: Duration = Duration::from_secs(1);
/// How often a quiet run looks at interrupts, cancels and its timeout.
const TICK: Duration = Duration::from_millis(100);

/// What a finished child left besides its output.
#[derive(Debug, Default)]
pub(crate) struct ChildOutcome {
    /// `reporter:counter:` lines, summed.
    pub(crate) counters: Counters,
    /// The last `reporter:status:` message.
    pub(crate) status: Option<String>,
    /// The input it was offered, and what it took.
    pub(crate) input: InputCount,
}

impl ChildOutcome {
    /// The outcome of a built-in that took `input` and reported nothing.
    pub(crate) fn fed(input: InputCount) -> ChildOutcome {
        ChildOutcome {
            input,
            ..ChildOutcome::default()
        }
    }
}

/// Records and bytes offered to a command, and those it took before it
/// stopped reading.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct InputCount {
    /// Records offered.
    pub(crate) records: u64,
    /// Bytes offered.
    pub(crate) bytes: u64,
    /// Records written into the command's input before it closed it (a
    /// pipe's buffer may hold a few it never read).
    pub(crate) records_taken: u64,
    /// Bytes written into the command's input before it closed it.
    pub(crate) bytes_taken: u64,
    /// The feed stopped when the command stopped reading
    /// ([`Child::stop_feed`]): `records` and `bytes` count only what was
    /// offered until then, and the caller counts the rest.
    pub(crate) stopped_early: bool,
}

impl InputCount {
    /// `records` and `bytes` offered, and all of them taken.
    pub(crate) fn whole(records: u64, bytes: u64) -> InputCount {
        InputCount {
            records,
            bytes,
            records_taken: records,
            bytes_taken: bytes,
            stopped_early: false,
        }
    }

    /// Adds another run's counts.
    pub(crate) fn add(&mut self, other: &InputCount) {
        self.records += other.records;
        self.bytes += other.bytes;
        self.records_taken += other.records_taken;
        self.bytes_taken += other.bytes_taken;
        self.stopped_early |= other.stopped_early;
    }
}

/// What the threads of one run share.
struct Watch {
    started: Instant,
    /// Milliseconds after `started` of the command's last sign of life.
    alive_ms: AtomicU64,
    /// The command exited: what is left of its input is only counted.
    exited: AtomicBool,
    /// The run is failing: writing its input fails at once.
    abort: AtomicBool,
    /// The attempt's cancel handle, seen from the feeder's thread too.
    cancel: Option<std::sync::Arc<interrupt::Cancel>>,
}

impl Watch {
    fn new() -> Watch {
        Watch {
            started: Instant::now(),
            alive_ms: AtomicU64::new(0),
            exited: AtomicBool::new(false),
            abort: AtomicBool::new(false),
            cancel: interrupt::current(),
        }
    }

    /// Feeding must stop: the run fails, the job is interrupted, or the
    /// attempt was cancelled.
    fn stopping(&self) -> bool {
        self.abort.load(Ordering::Relaxed)
            || interrupt::is_set()
            || self.cancel.as_ref().is_some_and(|c| c.is_cancelled())
    }

    fn touch(&self) {
        let ms = self.started.elapsed().as_millis() as u64;
        self.alive_ms.store(ms, Ordering::Relaxed);
    }

    /// How long since the last sign of life.
    fn idle(&self) -> Duration {
        let alive = Duration::from_millis(self.alive_ms.load(Ordering::Relaxed));
        self.started.elapsed().saturating_sub(alive)
    }
}

/// The writer a command's input is fed through: it counts the records and
/// bytes offered and those the command took. Once the command stops
/// reading (a broken pipe, or it exited), the rest is counted and dropped,
/// or, with `stop_when_closed`, writing fails so that the feed stops; once
/// its run is failing, writing fails.
pub(crate) struct InputMeter<'a, W: Write> {
    inner: W,
    /// The pipe, non-blocking, when `inner` is one: a full pipe is waited
    /// on with poll(2), so that the feeder sees the run end.
    pipe: Option<(RawFd, &'a Watch)>,
    /// How long to let the command read before writing again once it is
    /// behind; see [`InputMeter::wait_room`].
    pause: Duration,
    /// The pipe's size, once asked.
    capacity: Option<usize>,
    newlines: u64,
    bytes: u64,
    newlines_taken: u64,
    bytes_taken: u64,
    last: u8,
    /// The byte that ends a record (NUL with `-z`).
    eol: u8,
    closed: bool,
    /// Once the command stopped reading, writing fails with
    /// [`stopped_reading`] instead of counting the rest.
    stop_when_closed: bool,
    /// It did fail so.
    stopped: bool,
}

impl<W: Write> InputMeter<'_, W> {
    /// A meter in front of `inner`, which takes everything (a built-in).
    pub(crate) fn new(inner: W) -> InputMeter<'static, W> {
        InputMeter {
            inner,
            pipe: None,
            pause: MIN_PAUSE,
            capacity: None,
            newlines: 0,
            bytes: 0,
            newlines_taken: 0,
            bytes_taken: 0,
            last: b'\n',
            eol: b'\n',
            closed: false,
            stop_when_closed: false,
            stopped: false,
        }
    }

    /// The same meter, counting records that end in `eol`.
    pub(crate) fn ending(self, eol: u8) -> Self {
        InputMeter {
            last: eol,
            eol,
            ..self
        }
    }

    /// The counts, the writer closed. A last record without a newline
    /// counts as a record.
    pub(crate) fn finish(self) -> InputCount {
        let open_record = u64::from(self.last != self.eol);
        let all_taken = !self.closed && self.bytes_taken == self.bytes;
        InputCount {
            records: self.newlines + open_record,
            bytes: self.bytes,
            records_taken: self.newlines_taken + if all_taken { open_record } else { 0 },
            bytes_taken: self.bytes_taken,
            stopped_early: self.stopped,
        }
    }

    /// Waits until the pipe has room, the command exits (the rest is then
    /// dropped) or the run fails.
    ///
    /// Room means half the pipe, not a page: a command reading 4 KiB at a
    /// time from a full pipe would otherwise wake the feeder for each page
    /// it takes, a write and a failed write per page (a third of a word
    /// count's system calls). While more than half is queued the feeder
    /// sleeps, for longer each time the pipe is found as full, shorter when
    /// it is found nearly empty: the command never waits for input, and
    /// the feeder wakes a few times per half pipe.
    fn wait_room(&mut self) -> io::Result<()> {
        let Some((fd, watch)) = self.pipe else {
            return Ok(());
        };
        let capacity = *self.capacity.get_or_insert_with(|| pipe_capacity(fd));
        let mut last_queued = usize::MAX;
        loop {
            if watch.stopping() {
                return Err(stopped());
            }
            if watch.exited.load(Ordering::Relaxed) {
                self.closed = true;
                return Ok(());
            }
            let mut fds = [libc::pollfd {
                fd,
                events: libc::POLLOUT,
                revents: 0,
            }];
            if poll(&mut fds, TICK) == 0 {
                continue;
            }
            // A small pipe (the kernel refused a larger one) drains in
            // moments: pausing would starve the command.
            if capacity < PIPE_SIZE / 2 || fds[0].revents & libc::POLLOUT == 0 {
                return Ok(());
            }
            let queued = pipe_queued(fd).unwrap_or(0);
            // Taking input is a sign of life, though nothing is written.
            if queued < last_queued {
                watch.touch();
            }
            last_queued = queued;
            if queued > capacity / 2 {
                std::thread::sleep(self.pause);
                self.pause = (self.pause * 2).min(MAX_PAUSE);
                continue;
            }
            if queued < capacity / 4 {
                self.pause = (self.pause / 2).max(MIN_PAUSE);
            }
            return Ok(());
        }
    }
}

fn stopped() -> io::Error {
    io::Error::other("the command's run was stopped")
}

/// What writing to a command that stopped reading returns when its feed is
/// to stop ([`Child::stop_feed`]).
fn stopped_reading() -> io::Error {
    io::Error::new(
        io::ErrorKind::BrokenPipe,
        "the command stopped reading its input",
    )
}

impl<W: Write> Write for InputMeter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some((_, watch)) = self.pipe
            && watch.stopping()
        {
            return Err(stopped());
        }
        if self.closed && self.stop_when_closed {
            self.stopped = true;
            return Err(stopped_reading());
        }
        let newlines = memchr::memchr_iter(self.eol, buf).count() as u64;
        self.newlines += newlines;
        self.bytes += buf.len() as u64;
        if let Some(&b) = buf.last() {
            self.last = b;
        }
        let mut done = 0;
        while done < buf.len() && !self.closed {
            match self.inner.write(&buf[done..]) {
                Ok(0) => self.closed = true,
                Ok(n) => {
                    done += n;
                    if let Some((_, watch)) = self.pipe {
                        watch.touch();
                        // A short write filled the pipe: trying again at
                        // once would fail.
                        if done < buf.len() {
                            self.wait_room()?;
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::BrokenPipe => self.closed = true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => self.wait_room()?,
                Err(e) => return Err(e),
            }
        }
        self.newlines_taken += if done == buf.len() {
            newlines
        } else {
            memchr::memchr_iter(self.eol, &buf[..done]).count() as u64
        };
        self.bytes_taken += done as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        match self.inner.flush() {
            Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
            other => other,
        }
    }
}

/// poll(2) for at most `timeout`; the number of ready descriptors (0 on a
/// timeout or a signal).
fn poll(fds: &mut [libc::pollfd], timeout: Duration) -> i32 {
    let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
    // SAFETY: `fds` is a valid, exclusively borrowed array of pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, ms) };
    n.max(0)
}

fn set_nonblocking(fd: RawFd) {
    // SAFETY: fcntl on a descriptor this process owns; only flags change.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags >= 0 {
            libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK);
        }
    }
}

/// A descriptor that becomes readable when process `pid` exits (Linux
/// 5.3+); None where the kernel has none, and exits are then seen on the
/// next tick.
fn pidfd(pid: i32) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative result is a descriptor we now own.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// Asks for a pipe of [`PIPE_SIZE`] (the kernel may refuse: the default,
/// 64 KiB, stays).
fn grow_pipe(fd: RawFd) {
    // SAFETY: fcntl on a descriptor this process owns.
    unsafe {
        libc::fcntl(fd, libc::F_SETPIPE_SZ, PIPE_SIZE as libc::c_int);
    }
}

/// The size of pipe `fd`'s buffer (the default, 64 KiB, when unknown).
fn pipe_capacity(fd: RawFd) -> usize {
    // SAFETY: fcntl on a descriptor this process owns.
    let n = unsafe { libc::fcntl(fd, libc::F_GETPIPE_SZ) };
    usize::try_from(n).unwrap_or(64 << 10)
}

/// Bytes written to pipe `fd` and not read yet.
fn pipe_queued(fd: RawFd) -> Option<usize> {
    let mut n: libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer.
    let r = unsafe { libc::ioctl(fd, libc::FIONREAD, &mut n) };
    (r == 0).then(|| usize::try_from(n).unwrap_or(0))
}

/// Whether child `pid` has exited, without reaping it: while it is a
/// zombie its process group cannot be reused, so killing the group stays
/// safe.
fn has_exited(pid: i32) -> bool {
    // SAFETY: waitid with WNOWAIT only fills `info`; siginfo_t is plain data.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == 0 && info.si_pid() != 0
    }
}

/// Makes this process the reaper of what its commands leave behind: a
/// process a command started that outlives its parent is reparented to
/// gmr rather than to init, so that gmr finds it ([`kill_strays`]) even
/// when it left the command's process group (`setsid`, a daemon). Called
/// once, by the binary; not where the kernel cannot list a process's
/// children (what gmr adopted could then never be found, nor reaped).
pub(crate) fn become_subreaper() {
    let tid = std::process::id();
    if std::fs::metadata(format!("/proc/self/task/{tid}/children")).is_err() {
        return;
    }
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER only sets a flag of this
    // process.
    unsafe {
        libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);
    }
}

/// A new mark for one run of a command, put in its environment
/// (`GMR_RUN`): what it starts inherits it, which tells gmr's adopted
/// processes apart by the run they belong to.
fn new_run_mark() -> String {
    static RUNS: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}.{}",
        std::process::id(),
        RUNS.fetch_add(1, Ordering::Relaxed)
    )
}

/// The children of gmr that the run `mark` of the command that was
/// process `group` left and gmr adopted (see [`become_subreaper`]): those
/// still in the command's process group, and those that left it but
/// carry the run's mark in their environment (only those, unless
/// `group_too`); and, to be reaped, any zombie that left gmr's session
/// (a `setsid` process whose mark was lost: gmr starts none in another
/// session). Commands gmr started itself are never among them. Each with
/// whether it is a zombie already.
fn adopted(mark: &str, group: i32, group_too: bool) -> Vec<(i32, bool)> {
    let mut found = Vec::new();
    let Ok(threads) = std::fs::read_dir("/proc/self/task") else {
        return found;
    };
    // SAFETY: getsid(0) only reads this process's session id.
    let session = unsafe { libc::getsid(0) };
    let needle = format!("GMR_RUN={mark}");
    for thread in threads.flatten() {
        let Ok(children) = std::fs::read_to_string(thread.path().join("children")) else {
            continue;
        };
        for pid in children
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            if pid == group || interrupt::is_child(pid) {
                continue;
            }
            // The fields after the command's name: state, ppid, pgrp,
            // session.
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
                continue;
            };
            let fields: Vec<&str> = rest.split_whitespace().collect();
            let number = |i: usize| fields.get(i).and_then(|f| f.parse::<i32>().ok());
            let zombie = fields.first() == Some(&"Z");
            let in_group = number(2) == Some(group);
            if in_group && !group_too {
                continue;
            }
            let ours = in_group
                || zombie && number(3).is_some_and(|s| s != session)
                || std::fs::read(format!("/proc/{pid}/environ"))
                    .is_ok_and(|env| env.split(|&b| b == 0).any(|var| var == needle.as_bytes()));
            if ours {
                found.push((pid, zombie));
            }
        }
    }
    found
}

/// Kills and reaps what the run `mark` of the command that was process
/// `group` left behind and gmr adopted (see [`become_subreaper`]): what
/// is killed may leave children of its own, adopted in turn, so this goes
/// on until none is left (a few rounds at most). Those still in the
/// command's group are spared unless `group_too` (a `cmd &` may still be
/// writing the command's output: the group gets a grace).
fn kill_strays(mark: &str, group: i32, group_too: bool) {
    for _ in 0..16 {
        let found = adopted(mark, group, group_too);
        if found.is_empty() {
            return;
        }
        for &(pid, zombie) in &found {
            if !zombie {
                // SAFETY: kill(2) on a child of ours that has not been
                // reaped: its pid cannot have been reused.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        }
        for &(pid, _) in &found {
            // Reaped, or it would stay a zombie of gmr's for good.
            let deadline = Instant::now() + Duration::from_millis(100);
            loop {
                let mut status = 0;
                // SAFETY: waitpid on one child of ours, without blocking.
                let r = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
                if r != 0 || Instant::now() >= deadline {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// How the loop over a run's output ended.
enum End {
    /// The command exited and its output is drained (or abandoned).
    Done,
    /// The job is being interrupted.
    Interrupted,
    /// Another attempt of the task won.
    Cancelled,
    /// No sign of life for the timeout.
    TimedOut,
    /// Handling its output failed.
    Output(io::Error),
}

/// One command to run.
pub(crate) struct Child<'a> {
    /// What the command is, for messages ("mapper", "reducer", …).
    pub(crate) role: &'a str,
    /// The shell command.
    pub(crate) command: &'a str,
    /// The directory it runs in.
    pub(crate) cwd: &'a Path,
    /// Extra environment.
    pub(crate) env: &'a [(String, String)],
    /// Where its stderr is kept.
    pub(crate) log: &'a Path,
    /// The open-file limit it gets, when not gmr's own.
    pub(crate) nofile: Option<libc::rlimit>,
    /// The exit statuses that mean success.
    pub(crate) ok_exit: &'a [i32],
    /// How long it may show no sign of life before it is killed.
    pub(crate) timeout: Option<Duration>,
    /// The memory each of its processes may use (`--task-memory`).
    pub(crate) memory: Option<u64>,
    /// Once the command stops reading, the feed is stopped (its writes
    /// fail) rather than counted to its end; the outcome's input then says
    /// [`InputCount::stopped_early`]. For a feed whose size its caller
    /// knows without reading it.
    pub(crate) stop_feed: bool,
    /// The byte that ends its input's records, which it is fed (NUL with
    /// `-z`), for the record counts.
    pub(crate) eol: u8,
}
impl Child<'_> {
    /// The process to start: `words` run directly, or else the command
    /// under `sh -c`.
    fn command(&self, words: Option<&[&str]>, mark: &str, cgroup: Option<&Cgroup>) -> Command {
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
            .env("GMR_RUN", mark)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .process_group(0);
        let nofile = self.nofile;
        // RLIMIT_DATA, not RLIMIT_AS: it bounds what a process writes to
        // (heap and private mappings), while runtimes that reserve address
        // space up front (the JVM, Go) would fail at start under an
        // address-space limit.
        // Used only where no cgroup holds the limit.
        let memory = self
            .memory
            .filter(|_| cgroup.is_none())
            .map(|bytes| libc::rlimit {
                rlim_cur: bytes as libc::rlim_t,
                rlim_max: bytes as libc::rlim_t,
            });
        let procs = cgroup.map(Cgroup::procs_fd);
        if nofile.is_some() || memory.is_some() || procs.is_some() {
            // SAFETY: setrlimit, getpid and write are async-signal-safe,
            // and the closure only reads copied values.
            unsafe {
                command.pre_exec(move || {
                    if let Some(limit) = nofile {
                        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                    }
                    if let Some(limit) = memory
                        && libc::setrlimit(libc::RLIMIT_DATA, &limit) != 0
                    {
                        return Err(io::Error::last_os_error());
                    }
                    if let Some(fd) = procs {
                        crate::task::cgroup::join(fd)?;
                    }
                    Ok(())
                });
            }
        }
        command
    }

    /// Runs the command: `feed` writes its stdin (from another thread),
    /// `on_stdout` gets its stdout in chunks. An error from `on_stdout`
    /// ends the run. Succeeds when the command exits with one of the
    /// statuses that mean success.
    pub(crate) fn run<F, G>(&self, feed: F, mut on_stdout: G) -> Result<ChildOutcome, TaskError>
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
        let log = crate::files::open_append(self.log).map_err(|e| {
            let message = format!("cannot create log {}: {e}", self.log.display());
            match TaskError::io(message.clone(), &e) {
                fatal if fatal.kind == FailureKind::Fatal => fatal,
                _ => TaskError::host(message),
            }
        })?;
        let direct = plain_words(self.command);
        let mark = new_run_mark();
        // --task-memory: a cgroup of the command's own where one can be
        // made, which holds every process of a pipeline to the limit.
        let cgroup = self.memory.and_then(Cgroup::new);
        let cgroup = cgroup.as_ref();
        let spawned =
            direct.and_then(|words| self.command(Some(&words), &mark, cgroup).spawn().ok());
        let mut child = match spawned {
            Some(child) => child,
            None => self
                .command(None, &mark, cgroup)
                .spawn()
                .map_err(|e| TaskError::host(format!("cannot start sh for {}: {e}", self.role)))?,
        };
        let pid = child.id() as i32;
        interrupt::register_child(pid);
        let stdin = child.stdin.take().expect("piped");
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        set_nonblocking(stdin.as_raw_fd());
        grow_pipe(stdin.as_raw_fd());
        let watch = Watch::new();
        let mut errs = StderrLog::new(log);
        let mut printed = 0u64;

        let (fed, end) = std::thread::scope(|s| {
            let watch = &watch;
            let feeder = s.spawn(move || {
                let fd = stdin.as_raw_fd();
                let mut meter = InputMeter {
                    pipe: Some((fd, watch)),
                    stop_when_closed: self.stop_feed,
                    ..InputMeter::new(stdin).ending(self.eol)
                };
                let mut w = BufWriter::with_capacity(FEED_BUFFER, &mut meter);
                let r = feed(&mut w).and_then(|()| w.flush());
                // What is still buffered is not offered: the command
                // stopped reading.
                let _ = w.into_parts();
                // The feed's error is the meter's own when it stopped it.
                let r = if meter.stopped { Ok(()) } else { r };
                // Dropping the meter closes stdin: the command sees its end.
                r.map(|()| meter.finish())
            });
            let end = self.drain((pid, &mark), watch, (stdout, stderr), &mut errs, |chunk| {
                printed += chunk.len() as u64;
                on_stdout(chunk)
            });
            if !matches!(end, End::Done) {
                watch.abort.store(true, Ordering::Relaxed);
            }
            (feeder.join().expect("feeder thread"), end)
        });
        // What is left of the command's process group goes: a `cmd &` that
        // outlived it, or the whole pipeline when the run failed.
        interrupt::kill_group(pid);
        // Forgotten before it is reaped: its group id may be reused after.
        interrupt::unregister_child(pid);
        let status = reap(&mut child);
        // Once the command is gone, what it started is gmr's (the members
        // of its group just killed, what left the group): killed and
        // reaped, or they would stay gmr's zombies.
        kill_strays(&mark, pid, true);
        let (mut outcome, tail) = errs.finish();
        let failure = |kind: FailureKind, message: String| TaskError {
            kind,
            message,
            stderr_tail: tail.clone(),
        };
        // A command killed by a cancel or an interrupt may be seen gone
        // before the flag is: the flag says why it died.
        let end = match end {
            End::Done if interrupt::is_set() => End::Interrupted,
            End::Done if interrupt::cancelled() => End::Cancelled,
            end => end,
        };
        match end {
            End::Interrupted => return Err(TaskError::interrupted()),
            End::Cancelled => return Err(TaskError::cancelled()),
            End::TimedOut => {
                let limit = self.timeout.unwrap_or_default();
                return Err(failure(
                    FailureKind::Timeout,
                    format!(
                        "{} `{}` showed no sign of life (no input taken, no output, no stderr) for {}; killed (--task-timeout)",
                        self.role,
                        self.command,
                        crate::task::report::human_duration(limit)
                    ),
                ));
            }
            End::Output(e) => {
                let kind = TaskError::io("", &e).kind;
                return Err(failure(kind, format!("{} output: {e}", self.role)));
            }
            End::Done => {}
        }
        interrupt::check().map_err(TaskError::from)?;
        let status = status.ok_or_else(|| {
            TaskError::host(format!("cannot wait for {} `{}`", self.role, self.command))
        })?;
        let input = fed.map_err(|e| {
            failure(
                TaskError::io("", &e).kind,
                format!("{} input: {e}", self.role),
            )
        })?;
        outcome.input = input;
        let ok = status.code().is_some_and(|c| self.ok_exit.contains(&c));
        // In a cgroup, the kernel says whether its OOM killer struck: a
        // process killed for the limit fails the run even when the command
        // exits 0 (a pipeline whose first stage was killed).
        let oom_killed = cgroup.is_some_and(Cgroup::oom_killed);
        if ok && oom_killed {
            return Err(failure(
                FailureKind::Task,
                format!(
                    "a process of {} `{}` was killed: over --task-memory {} (the kernel's OOM killer, in the command's memory cgroup), though the command exited with status {}",
                    self.role,
                    self.command,
                    human_size(self.memory.unwrap_or_default()),
                    status.code().unwrap_or_default()
                ),
            ));
        }
        if !ok {
            // Under --task-memory, an allocation that failed (or a kill)
            // is said as such: the limit is the likely cause.
            let memory = self.memory.filter(|_| match cgroup {
                Some(_) => oom_killed || over_memory(None, &tail),
                None => over_memory(status.signal(), &tail),
            });
            let how = match (status.code(), status.signal()) {
                (Some(127), _) => "exited with status 127 (command not found)".to_string(),
                (Some(126), _) => "exited with status 126 (not executable)".to_string(),
                (Some(1), _) if printed == 0 && memory.is_none() => format!(
                    "exited with status 1 having printed nothing; if status 1 means \"nothing matched\" (as for grep), pass --ok-exit {}",
                    ok_exit_with_one(self.ok_exit)
                ),
                (Some(code), _) => format!("exited with status {code}"),
                (None, Some(sig)) => format!("was killed by signal {sig}"),
                _ => "failed".to_string(),
            };
            let memory = memory.map_or(String::new(), |limit| match oom_killed {
                true => format!(
                    ": killed: over --task-memory {} (the kernel's OOM killer, in the command's memory cgroup)",
                    human_size(limit)
                ),
                false => format!(
                    ": over --task-memory {} (it could not allocate more)",
                    human_size(limit)
                ),
            });
            return Err(failure(
                FailureKind::Task,
                format!("{} `{}` {how}{memory}", self.role, self.command),
            ));
        }
        Ok(outcome)
    }

    /// Reads the command's stdout (to `on_stdout`) and stderr (to `errs`)
    /// until it has exited and both are drained, or the run must end.
    fn drain(
        &self,
        (pid, mark): (i32, &str),
        watch: &Watch,
        (mut stdout, mut stderr): (std::process::ChildStdout, std::process::ChildStderr),
        errs: &mut StderrLog,
        mut on_stdout: impl FnMut(&[u8]) -> io::Result<()>,
    ) -> End {
        let exit_fd = pidfd(pid);
        // Read without blocking: each wake-up takes all a ready pipe holds
        // (a writer of a line per write(2) would cost a poll per line),
        // and larger pipes let the command run ahead between wake-ups.
        for fd in [stdout.as_raw_fd(), stderr.as_raw_fd()] {
            set_nonblocking(fd);
        }
        grow_pipe(stdout.as_raw_fd());
        let (mut out_open, mut err_open) = (true, true);
        let mut exited_at: Option<Instant> = None;
        let mut killed_at: Option<Instant> = None;
        let mut buf = vec![0u8; PIPE_CHUNK];
        // With a pidfd the exit is asked about only when it fires (a
        // waitid per wake-up cost as much as the reads); without one, on
        // every turn.
        let mut check_exit = true;
        let mut small_turns = 0u32;
        loop {
            if exited_at.is_none() && (check_exit || exit_fd.is_none()) && has_exited(pid) {
                exited_at = Some(Instant::now());
                watch.exited.store(true, Ordering::Relaxed);
                // What it started that left its group (a daemon) ends with
                // it: nothing it writes from now on is the task's output.
                kill_strays(mark, pid, false);
            }
            if let Some(at) = exited_at {
                if !out_open && !err_open {
                    return End::Done;
                }
                match killed_at {
                    None if at.elapsed() >= GRACE => {
                        interrupt::kill_group(pid);
                        kill_strays(mark, pid, true);
                        killed_at = Some(Instant::now());
                    }
                    Some(k) if k.elapsed() >= ABANDON_AFTER => {
                        errs.note("output still open after the command exited, held by a process outside its group; abandoned");
                        return End::Done;
                    }
                    _ => {}
                }
            }
            if interrupt::is_set() {
                interrupt::kill_group(pid);
                return End::Interrupted;
            }
            if interrupt::cancelled() {
                interrupt::kill_group(pid);
                return End::Cancelled;
            }
            if let Some(limit) = self.timeout
                && exited_at.is_none()
                && watch.idle() >= limit
            {
                interrupt::kill_group(pid);
                return End::TimedOut;
            }
            let pollfd = |fd: RawFd| libc::pollfd {
                fd,
                events: libc::POLLIN,
                revents: 0,
            };
            let mut fds = Vec::with_capacity(3);
            if out_open {
                fds.push(pollfd(stdout.as_raw_fd()));
            }
            if err_open {
                fds.push(pollfd(stderr.as_raw_fd()));
            }
            let mut tick = TICK;
            match (&exit_fd, exited_at) {
                (Some(fd), None) => fds.push(pollfd(fd.as_raw_fd())),
                // Without a pidfd, an exit is seen by looking again soon.
                (None, None) if !out_open && !err_open => tick = Duration::from_millis(2),
                (_, Some(at)) if killed_at.is_none() => {
                    tick = tick.min(GRACE.saturating_sub(at.elapsed()));
                }
                _ => {}
            }
            check_exit = false;
            if poll(&mut fds, tick) == 0 {
                continue;
            }
            let ready = |fd: RawFd| {
                fds.iter().any(|p| {
                    p.fd == fd && p.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
                })
            };
            check_exit = exit_fd.as_ref().is_some_and(|fd| ready(fd.as_raw_fd()));
            // At most so many chunks a turn from one pipe, so that stderr,
            // the exit and cancels are looked at while a fast writer runs.
            let mut chunks = 0;
            let mut got = 0;
            while out_open && ready(stdout.as_raw_fd()) && chunks < PIPE_ROUNDS {
                chunks += 1;
                match stdout.read(&mut buf) {
                    Ok(0) => out_open = false,
                    Ok(n) => {
                        got += n;
                        watch.touch();
                        if let Err(e) = on_stdout(&buf[..n]) {
                            interrupt::kill_group(pid);
                            return End::Output(e);
                        }
                        // gmr's own work on the output (a sort, a spill)
                        // is no silence of the command's.
                        watch.touch();
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        interrupt::kill_group(pid);
                        return End::Output(e);
                    }
                }
            }
            // A writer of a line per write(2) wakes gmr per line: when a
            // turn found little, let output gather a moment (the pipe
            // holds a MiB, so the command does not wait for it).
            if got > 0 && got < GATHER && exited_at.is_none() {
                // Only once it proved chatty: a short command (a mapper of
                // one small file) pays nothing.
                small_turns += 1;
                if small_turns > CHATTY {
                    std::thread::sleep(GATHER_PAUSE);
                }
            }
            let mut chunks = 0;
            while err_open && ready(stderr.as_raw_fd()) && chunks < PIPE_ROUNDS {
                chunks += 1;
                match stderr.read(&mut buf) {
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Ok(0) | Err(_) => err_open = false,
                    Ok(n) => {
                        watch.touch();
                        errs.take(&buf[..n]);
                    }
                }
            }
        }
    }
}

/// Reaps a child that exited or was killed; None when it would not die
/// within a second (stuck in the kernel, on a dead mount).
fn reap(child: &mut std::process::Child) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => return None,
        }
    }
}

/// `--ok-exit` with status 1 added, for a hint.
fn ok_exit_with_one(ok: &[i32]) -> String {
    let mut codes = ok.to_vec();
    codes.extend([0, 1]);
    codes.sort_unstable();
    codes.dedup();
    codes
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",")
}

/// A run's stderr: every byte to the log up to [`LOG_CAP`], reporter lines
/// to counters and status, the last few other lines kept for messages.
struct StderrLog {
    log: BufWriter<File>,
    logged: u64,
    dropped: u64,
    /// The line being read, up to [`LINE_CAP`] bytes of it.
    line: Vec<u8>,
    /// The line being read is longer than [`LINE_CAP`].
    long: bool,
    tail: VecDeque<String>,
    outcome: ChildOutcome,
}

impl StderrLog {
    fn new(log: File) -> StderrLog {
        StderrLog {
            log: BufWriter::new(log),
            logged: 0,
            dropped: 0,
            line: Vec::new(),
            long: false,
            tail: VecDeque::with_capacity(TAIL_LINES),
            outcome: ChildOutcome::default(),
        }
    }

    fn take(&mut self, chunk: &[u8]) {
        let keep = chunk
            .len()
            .min(LOG_CAP.saturating_sub(self.logged) as usize);
        let _ = self.log.write_all(&chunk[..keep]);
        self.logged += keep as u64;
        self.dropped += (chunk.len() - keep) as u64;
        for piece in chunk.split_inclusive(|&b| b == b'\n') {
            let (text, ended) = match piece.strip_suffix(b"\n") {
                Some(text) => (text, true),
                None => (piece, false),
            };
            if self.line.len() + text.len() > LINE_CAP {
                // Too long for a reporter line: keep its end, which is
                // what a message shows.
                self.long = true;
                let keep = LINE_CAP / 2;
                if text.len() >= keep {
                    self.line.clear();
                    self.line.extend_from_slice(&text[text.len() - keep..]);
                } else {
                    let drop = (self.line.len() + text.len() - keep).min(self.line.len());
                    self.line.drain(..drop);
                    self.line.extend_from_slice(text);
                }
            } else {
                self.line.extend_from_slice(text);
            }
            if ended {
                self.end_line();
            }
        }
    }

    fn end_line(&mut self) {
        let line = std::mem::take(&mut self.line);
        let reporter = !self.long
            && parse_reporter_line(&line, &mut self.outcome.counters, &mut self.outcome.status);
        if !reporter {
            // A progress line redrawn with `\r` shows as it was last drawn.
            let shown = line
                .rsplit(|&b| b == b'\r')
                .find(|s| !s.is_empty())
                .unwrap_or_default();
            if self.tail.len() == TAIL_LINES {
                self.tail.pop_front();
            }
            let shown = &shown[..shown.len().min(TAIL_LINE_BYTES)];
            self.tail
                .push_back(String::from_utf8_lossy(shown).into_owned());
        }
        self.line = line;
        self.line.clear();
        self.long = false;
    }

    /// Adds a note of gmr's to the log.
    fn note(&mut self, what: &str) {
        let _ = writeln!(self.log, "\n[gmr: {what}]");
    }

    fn finish(mut self) -> (ChildOutcome, String) {
        if !self.line.is_empty() || self.long {
            self.end_line();
        }
        if self.dropped > 0 {
            let what = format!(
                "stderr cut at {} bytes; {} more bytes were not kept",
                LOG_CAP, self.dropped
            );
            self.note(&what);
        }
        let _ = self.log.flush();
        (self.outcome, Vec::from(self.tail).join("\n"))
    }
}

/// Whether a command that failed under a memory limit failed for it:
/// killed (the kernel's OOM killer, or a runtime that aborts), or its
/// stderr says an allocation failed, in the words of the common runtimes
/// and tools (Python's MemoryError, malloc's ENOMEM, C++'s bad_alloc, GNU
/// sort's and awk's "memory exhausted", Go's and Rust's "out of memory").
fn over_memory(signal: Option<i32>, stderr_tail: &str) -> bool {
    const WORDS: [&str; 7] = [
        "memoryerror",
        "cannot allocate memory",
        "out of memory",
        "memory exhausted",
        "bad_alloc",
        "memory allocation failed",
        "failed to allocate",
    ];
    let tail = stderr_tail.to_lowercase();
    matches!(
        signal,
        Some(libc::SIGKILL | libc::SIGABRT | libc::SIGSEGV | libc::SIGBUS)
    ) || WORDS.iter().any(|w| tail.contains(w))
}

/// `100M`, `2G`, `4096`: a size as the size flags take it.
fn human_size(bytes: u64) -> String {
    const UNITS: [(u64, &str); 3] = [(1 << 30, "G"), (1 << 20, "M"), (1 << 10, "K")];
    UNITS
        .iter()
        .find(|(n, _)| bytes >= *n && bytes % n == 0)
        .map_or_else(|| bytes.to_string(), |(n, u)| format!("{}{u}", bytes / n))
}
