//! The SSH executor: task attempts run on the hosts of `--hosts`, as
//! `gmr task --workdir W --attempt N TASK` over one SSH connection per slot
//! (docs/contracts.md §5). A `:` entry adds this machine's slots, which run tasks
//! in-process through the local executor; the coordinator sees one pool of
//! slots either way.
//!
//! Before the job, [`HostPool::connect`] checks every host at once: it
//! connects (host key, login), and runs one command there that checks that
//! the work directory is shared (a probe file written here must be visible
//! there), that the current directory exists, and that the remote `gmr`
//! runs and is this version; it also asks the host's cores for its default
//! slot count. A host failing a check that cannot pass later is dropped
//! with a warning; one that cannot be reached now starts as bad and is
//! tried again during the job (see [`crate::exec::health`]). The connection of
//! the check becomes the first slot's.
//!
//! A slot keeps its connection from task to task and reconnects after a
//! failure. What the remote `gmr task` reports decides what kind of failure
//! an attempt was: a failed command is the task's; a lost connection, a
//! missing work directory or `gmr`, an interrupted remote task are the
//! host's ([`FailureKind::Host`]), which do not count against the task's
//! retries.

use super::connection::{Agent, Connection, Credentials, ExecError, Running, Target, Throttle};
use super::links::{Answer, Ask, Links, StartFn};
use super::local::LocalExecutor;
use super::remote::{self, Exit, NO_CWD, last_lines, shell_quote};
use super::sshconfig::{self, ConfigFiles, Proxy, Request, Strict};
use super::{Done, Ended, Executor, Slots};
use crate::error::{Error, Result, TaskError};
use crate::exec::health::Health;
use crate::exec::hosts::{HostEntry, Place};
use crate::interrupt;
use crate::store::resources::Resources;
use crate::store::workdir::{AttemptGuard, WorkDir};
use crate::task::TaskId;
use crate::task::job::Job;
use crate::task::report::TaskReport;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// SSH handshakes in flight from this process, all hosts together.
static HANDSHAKES: Throttle = Throttle::new(16);
/// Hosts checked at once before the job.
const PROBE_THREADS: usize = 32;
/// SSH handshakes in flight to one host.
const HANDSHAKES_PER_HOST: usize = 4;
/// Once one host is ready, how long the checks of the others may go
/// without any answering before the job starts without those left (they
/// are tried again later).
const PROBE_GRACE: Duration = Duration::from_secs(5);

/// How to reach the hosts.
#[derive(Debug, Clone)]
pub(crate) struct Options {
    /// What the command line says of SSH.
    pub(crate) ssh: SshFlags,
    /// The path of `gmr` on the hosts.
    pub(crate) remote_gmr: PathBuf,
    /// Its SHA-256, when it is the copy gmr made: the hosts check it
    /// before they run it.
    pub(crate) gmr_digest: Option<String>,
    /// Slots of a `:` entry without `N/`.
    pub(crate) local_slots: usize,
}

/// The SSH flags of the command line, which win over the ssh
/// configuration, as ssh's own do.
#[derive(Debug, Clone)]
pub(crate) struct SshFlags {
    /// `--ssh-config`.
    pub(crate) config: ConfigFiles,
    /// `--identity`.
    pub(crate) identity: Option<PathBuf>,
    /// `--known-hosts`.
    pub(crate) known_hosts: Option<PathBuf>,
    /// `--global-known-hosts`.
    pub(crate) global_known_hosts: Vec<PathBuf>,
    /// `--accept-new-host-keys`.
    pub(crate) accept_new_host_keys: bool,
    /// `--ssh-timeout`.
    pub(crate) timeout: Option<Duration>,
}

/// The connect and idle limit without `--ssh-timeout` or the ssh
/// configuration's.
pub(crate) const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// How to reach one host of `--hosts`: its ssh configuration under the
/// flags. The error names the host and what to change.
fn reach(
    flags: &SshFlags,
    user: Option<&str>,
    host: &str,
    port: Option<u16>,
) -> std::result::Result<(Target, Credentials), String> {
    let c = sshconfig::resolve(
        &flags.config,
        &Request {
            alias: host,
            user,
            port,
            identity: flags.identity.as_deref(),
        },
    )?;
    if let Some(cert) = c.certificate_files.first() {
        return Err(format!(
            "the ssh configuration gives host `{host}` CertificateFile {}: gmr's SSH library (libssh2) cannot log in with a certificate; give these hosts a plain key (IdentityFile), or name a configuration without it (--ssh-config FILE)",
            cert.display()
        ));
    }
    let proxy = match &c.proxy {
        None => None,
        Some(Proxy::Command(command)) => Some(command.clone()),
        Some(Proxy::Jump(hops)) => Some(sshconfig::jump_command(
            hops,
            &flags.config,
            &c.hostname,
            c.port,
        )?),
    };
    let (interval, count) = c.server_alive;
    let (idle_limit, keepalive) = match flags.timeout {
        Some(t) => (t, t.as_secs() / 3),
        None if interval > 0 => (
            Duration::from_secs(interval * count.max(1)).max(Duration::from_secs(5)),
            interval,
        ),
        None => (DEFAULT_TIMEOUT, DEFAULT_TIMEOUT.as_secs() / 3),
    };
    let connect_timeout = flags
        .timeout
        .or(c.connect_timeout.map(Duration::from_secs))
        .unwrap_or(DEFAULT_TIMEOUT);
    let mut user_files = match &flags.known_hosts {
        Some(file) => vec![file.clone()],
        None => c.user_known_hosts.clone(),
    };
    if user_files.is_empty() {
        user_files.push(sshconfig::home_dir().join(".ssh/known_hosts"));
    }
    let known_hosts = user_files.remove(0);
    let global = match flags.global_known_hosts.is_empty() {
        true => c.global_known_hosts.clone(),
        false => flags.global_known_hosts.clone(),
    };
    let agent = match c.identity_agent.as_deref() {
        _ if c.identities_only => Agent::Off,
        Some("none") => Agent::Off,
        Some(socket) => Agent::Socket(PathBuf::from(socket)),
        None => Agent::Env,
    };
    Ok((
        Target {
            host: c.hostname.clone(),
            port: c.port,
            user: c.user.clone(),
            key_alias: c.host_key_alias.clone(),
            proxy,
            connect_timeout: connect_timeout.max(Duration::from_secs(1)),
            idle_limit,
            keepalive: keepalive.clamp(2, 60) as u32,
        },
        Credentials {
            first_keys: flags.identity.iter().cloned().collect(),
            keys: c.identity_files.clone(),
            agent,
            known_hosts,
            more_known_hosts: user_files.into_iter().chain(global).collect(),
            accept_new_host_keys: flags.accept_new_host_keys || c.strict == Strict::AcceptNew,
            hash_new_lines: c.hash_known_hosts,
        },
    ))
}

struct Remote {
    name: String,
    target: Target,
    credentials: Credentials,
    throttle: Throttle,
    /// The host passed the check (see [`HostPool::connect`]): a host
    /// admitted late passes it before its first task.
    checked: AtomicBool,
    /// Its slots: its worker's.
    slots: usize,
    /// Its slots were guessed (no `N/`, not checked before the job): its
    /// worker runs at most as many attempts at once as its own check
    /// finds cores.
    guessed: bool,
    /// The cores its check found (0: not checked yet).
    cores: std::sync::atomic::AtomicUsize,
    /// The connection of its check, which its worker starts on.
    first: Mutex<Option<Connection>>,
}

enum SlotKind {
    /// Slot N of the local executor.
    Local(usize),
    /// Slot `index` of the worker of remote `remote`.
    Remote { remote: usize, index: usize },
}

struct Slot {
    host: String,
    kind: SlotKind,
}

/// The hosts of a job, checked and connected, before the job spec exists.
pub(crate) struct HostPool {
    remotes: Vec<Remote>,
    slots: Vec<Slot>,
    local_slots: usize,
    per_host: usize,
    health: Health,
    options: Options,
    /// One line per host that is not usable now, for the user.
    pub(crate) warnings: Vec<String>,
    /// The job's work directory and current directory, which a host
    /// admitted late is checked for.
    wd: WorkDir,
    cwd: PathBuf,
}

/// What the check of a connected host found.
enum Checked {
    /// Usable, with this many cores.
    Ready(usize),
    /// Unreachable now; may come back.
    Down(String),
    /// Unusable for this job.
    Dead(String),
}

/// What the check of one host found.
enum Probe {
    Ready {
        conn: Connection,
        cores: usize,
    },
    /// Unreachable now; may come back.
    Down(String),
    /// Unusable for this job.
    Dead(String),
}

impl HostPool {
    /// Connects to and checks every host of `entries` at once, for a job
    /// whose work directory is `wd` and whose tasks run in `cwd`. Fails
    /// when no host can run tasks, naming each host and why.
    pub(crate) fn connect(
        entries: &[HostEntry],
        wd: &WorkDir,
        cwd: &Path,
        options: Options,
    ) -> Result<HostPool> {
        let mut remotes: Vec<Remote> = Vec::new();
        for e in entries {
            if let Place::Remote { user, host, port } = &e.place {
                let (target, credentials) = reach(&options.ssh, user.as_deref(), host, *port)
                    .map_err(|why| Error::usage(format!("host {e}: {why}")))?;
                remotes.push(Remote {
                    name: e.to_string(),
                    target,
                    credentials,
                    throttle: Throttle::new(HANDSHAKES_PER_HOST),
                    checked: AtomicBool::new(false),
                    slots: 0,
                    guessed: false,
                    cores: std::sync::atomic::AtomicUsize::new(0),
                    first: Mutex::new(None),
                });
            }
        }
        // Two names for one machine would double its load.
        for (i, r) in remotes.iter().enumerate() {
            let machine = |r: &Remote| {
                (
                    r.target.host.trim_end_matches('.').to_ascii_lowercase(),
                    r.target.port,
                    r.target.proxy.clone(),
                )
            };
            if let Some(first) = remotes[..i].iter().find(|f| machine(f) == machine(r)) {
                return Err(Error::usage(format!(
                    "--hosts names one machine twice: {} and {} are both {}:{} in the ssh configuration; list it once, with more slots (N/)",
                    first.name, r.name, r.target.host, r.target.port
                )));
            }
        }
        let probe_file = AttemptGuard::new(wd.probe_path());
        crate::files::write_private(probe_file.path(), b"gmr probe\n").map_err(|e| {
            Error::io(
                "cannot write a probe file in the work directory",
                probe_file.path(),
                e,
            )
        })?;
        let check = probe_command(probe_file.path(), wd.root(), cwd, &options)?;
        let mut probes = probe_all(&remotes, &options, &check)?;
        drop(probe_file);
        // A host not checked yet gets as many slots as the largest checked
        // host, not one for the whole job; its worker runs at most as many
        // attempts at once as its own check, whenever it comes, finds
        // cores (the others wait there).
        let most_cores = probes
            .iter()
            .filter_map(|p| match p {
                Some(Probe::Ready { cores, .. }) => Some(*cores),
                _ => None,
            })
            .max()
            .unwrap_or(1);

        let mut names: Vec<String> = Vec::new();
        let mut plan: Vec<(String, Option<usize>, Option<Connection>, usize)> = Vec::new();
        let mut warnings = Vec::new();
        let mut failures: Vec<(String, String, bool)> = Vec::new();
        let mut remote_index = 0;
        for entry in entries {
            let name = entry.to_string();
            names.push(name.clone());
            match &entry.place {
                Place::Local => {
                    let n = entry.slots.unwrap_or(options.local_slots);
                    plan.push((name, None, None, n));
                }
                Place::Remote { .. } => {
                    let i = remote_index;
                    remote_index += 1;
                    match probes[i].take().expect("every host has a result") {
                        Probe::Ready { conn, cores } => {
                            remotes[i].checked.store(true, Ordering::SeqCst);
                            plan.push((name, Some(i), Some(conn), entry.slots.unwrap_or(cores)));
                        }
                        Probe::Down(why) => {
                            warnings.push(format!(
                                "host {name}: {why}; the job starts without it and tries it again later"
                            ));
                            failures.push((name.clone(), why, false));
                            remotes[i].guessed = entry.slots.is_none();
                            plan.push((name, Some(i), None, entry.slots.unwrap_or(most_cores)));
                        }
                        Probe::Dead(why) => {
                            warnings.push(format!("host {name}: {why}; the job runs without it"));
                            failures.push((name, why, true));
                        }
                    }
                }
            }
        }
        let health = Health::new(names);
        let now = Instant::now();
        for (name, why, permanent) in &failures {
            if *permanent {
                health.dead(name, why);
            } else {
                health.down(name, why, now);
            }
        }
        if health.all_down() {
            return Err(Error::job(format!(
                "no host can run tasks:\n{}",
                health.report()
            )));
        }
        let mut slots = Vec::new();
        let mut local_slots = 0;
        let mut per_host = 1;
        for (name, remote, conn, n) in plan {
            per_host = per_host.max(n);
            if let Some(r) = remote {
                remotes[r].slots = n;
                *remotes[r]
                    .first
                    .get_mut()
                    .unwrap_or_else(|e| e.into_inner()) = conn;
            }
            for index in 0..n {
                let kind = match remote {
                    None => {
                        local_slots += 1;
                        SlotKind::Local(local_slots - 1)
                    }
                    Some(remote) => SlotKind::Remote { remote, index },
                };
                slots.push(Slot {
                    host: name.clone(),
                    kind,
                });
            }
        }
        Ok(HostPool {
            remotes,
            slots,
            local_slots,
            per_host,
            health,
            options,
            warnings,
            wd: wd.clone(),
            cwd: cwd.to_path_buf(),
        })
    }

    /// The pool's slots.
    pub(crate) fn slots(&self) -> Slots {
        Slots {
            total: self.slots.len(),
            per_host: self.per_host,
        }
    }

    /// Slots on this machine (`:` entries).
    pub(crate) fn local_slots(&self) -> usize {
        self.local_slots
    }

    /// The executor for `job` in `wd`, whose spec is saved there (remote
    /// tasks refuse it if it changes: `digest`); local slots run with
    /// `res`.
    pub(crate) fn executor(
        self,
        wd: &WorkDir,
        job: &Job,
        digest: &str,
        res: Arc<Resources>,
    ) -> SshExecutor {
        let spec = &job.spec;
        let local = (self.local_slots > 0)
            .then(|| LocalExecutor::new(wd.clone(), job.clone(), res, self.local_slots));
        // Paths were checked to be UTF-8 by `connect`. A current directory
        // gone on a host (a stale mount) is the host's failure, not the
        // task's.
        let commands: Vec<String> = self
            .remotes
            .iter()
            .map(|r| {
                remote::worker_command(
                    &self.options.remote_gmr,
                    self.options.gmr_digest.as_deref(),
                    &spec.cwd,
                    wd.root(),
                    digest,
                    r.slots.max(1),
                )
            })
            .collect();
        let first = self
            .remotes
            .iter()
            .map(|r| r.first.lock().unwrap_or_else(|e| e.into_inner()).take())
            .collect();
        let gmr = self.options.remote_gmr.clone();
        let pool = Arc::new(self);
        let starter = pool.clone();
        let start: Arc<StartFn> = Arc::new(move |host: usize, conn: Option<Connection>| {
            let mut conn = conn;
            let worker = starter.start_worker(&starter.remotes[host], &mut conn, &commands[host]);
            (conn, worker)
        });
        SshExecutor {
            links: Links::new(first, start, gmr),
            pool,
            local,
        }
    }

    /// Starts the worker of `remote` on `conn`, connecting (and checking
    /// a late host) first when there is none. A reused connection the
    /// server closed while idle gets a fresh one.
    fn start_worker(
        &self,
        remote: &Remote,
        conn: &mut Option<Connection>,
        command: &str,
    ) -> Result<Running, TaskError> {
        let stop = interrupt::is_set;
        for _ in 0..2 {
            let reused = conn.is_some();
            if conn.is_none() {
                let mut fresh = self.open(remote, &stop)?;
                self.check_late(remote, &mut fresh)?;
                *conn = Some(fresh);
            }
            // A guessed host's worker runs no more at once than its cores.
            let cores = remote.cores.load(Ordering::SeqCst);
            let command = match remote.guessed && cores > 0 {
                true => format!("{command} --cores {cores}"),
                false => command.to_string(),
            };
            match conn.as_mut().expect("connected").start(&command, &stop) {
                Ok(worker) => return Ok(worker),
                Err(e) => {
                    *conn = None;
                    match e {
                        ExecError::Start(_) if reused => continue,
                        ExecError::Cancelled => return Err(TaskError::interrupted()),
                        e => return Err(TaskError::host(e.to_string())),
                    }
                }
            }
        }
        Err(TaskError::host(
            "cannot start a command on a fresh connection either",
        ))
    }

    /// Checks a host admitted late, on its new connection, as every host
    /// was checked before the job: until it passes, it runs no task.
    fn check_late(&self, remote: &Remote, conn: &mut Connection) -> Result<(), TaskError> {
        if remote.checked.load(Ordering::SeqCst) {
            return Ok(());
        }
        let probe_file = AttemptGuard::new(self.wd.probe_path());
        crate::files::write_private(probe_file.path(), b"gmr probe\n")
            .map_err(|e| TaskError::task(format!("cannot write a probe file: {e}")))?;
        let command = probe_command(probe_file.path(), self.wd.root(), &self.cwd, &self.options)
            .map_err(|e| TaskError::host(e.to_string()))?;
        match check(conn, &self.options, &command) {
            Checked::Ready(cores) => {
                remote.cores.store(cores, Ordering::SeqCst);
                remote.checked.store(true, Ordering::SeqCst);
                Ok(())
            }
            Checked::Down(why) => Err(TaskError::host(why)),
            Checked::Dead(why) => {
                self.health.dead(&remote.name, &why);
                Err(TaskError::host(why))
            }
        }
    }

    fn open(&self, remote: &Remote, stop: &dyn Fn() -> bool) -> Result<Connection, TaskError> {
        let _host_turn = remote.throttle.acquire();
        let _turn = HANDSHAKES.acquire();
        Connection::open(&remote.target, &remote.credentials, stop).map_err(|e| {
            if interrupt::is_set() {
                return TaskError::interrupted();
            }
            if stop() {
                return TaskError::cancelled();
            }
            if e.is_permanent() {
                self.health.dead(&remote.name, &e.to_string());
            }
            TaskError::host(e.to_string())
        })
    }
}

/// Checks every host at once; each check runs on its own thread, so that
/// an interrupt is answered at once even while hosts time out.
fn probe_all(remotes: &[Remote], options: &Options, command: &str) -> Result<Vec<Option<Probe>>> {
    let (tx, rx) = mpsc::channel();
    let hosts: Arc<Vec<(Target, Credentials)>> = Arc::new(
        remotes
            .iter()
            .map(|r| (r.target.clone(), r.credentials.clone()))
            .collect(),
    );
    // A bounded pool of checkers, whatever the number of hosts: each takes
    // the next host not yet taken.
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..remotes.len().min(PROBE_THREADS) {
        let (tx, hosts, next) = (tx.clone(), hosts.clone(), next.clone());
        let (options, command) = (options.clone(), command.to_string());
        std::thread::spawn(move || {
            loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                if i >= hosts.len() || interrupt::is_set() {
                    return;
                }
                let (target, credentials) = &hosts[i];
                if tx
                    .send((i, probe(target, credentials, &options, &command)))
                    .is_err()
                {
                    return;
                }
            }
        });
    }
    drop(tx);
    let mut probes: Vec<Option<Probe>> = remotes.iter().map(|_| None).collect();
    let mut left = remotes.len();
    // Once one host is ready, the others have as long as they keep
    // answering: the job waits for checks that progress (however many
    // hosts queue behind the handshake limit), not for silent ones.
    let mut give_up: Option<Instant> = None;
    while left > 0 && give_up.is_none_or(|t| Instant::now() < t) {
        match rx.recv_timeout(Duration::from_millis(100)) {
            Ok((i, p)) => {
                let ready = matches!(p, Probe::Ready { .. });
                if ready || give_up.is_some() {
                    give_up = Some(Instant::now() + PROBE_GRACE);
                }
                probes[i] = Some(p);
                left -= 1;
            }
            Err(mpsc::RecvTimeoutError::Timeout) => interrupt::check()?,
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
    }
    interrupt::check()?;
    // Hosts still being checked: the job starts without them (their
    // checkers end by the timeout on their own).
    next.store(usize::MAX / 2, Ordering::SeqCst);
    for p in probes.iter_mut().filter(|p| p.is_none()) {
        *p = Some(Probe::Down(format!(
            "no answer to its check while the others answered, for {} s (slow or hung?)",
            PROBE_GRACE.as_secs()
        )));
    }
    Ok(probes)
}

/// Exit statuses of the check command.
const NO_WORKDIR: i32 = 91;

/// The check run on each host before the job (see the module docs).
fn probe_command(probe: &Path, wd: &Path, cwd: &Path, options: &Options) -> Result<String> {
    let gmr = &options.remote_gmr;
    let utf8 = |what: &str, p: &Path| {
        p.to_str().map(shell_quote).ok_or_else(|| {
            Error::usage(format!(
                "{what} {} is not valid UTF-8, which remote command lines need; use another path",
                p.display()
            ))
        })
    };
    utf8("the work directory", wd)?;
    let (probe, cwd, gmr) = (
        utf8("the work directory", probe)?,
        utf8("the current directory", cwd)?,
        utf8("--remote-gmr", gmr)?,
    );
    // The copy gmr made is not run here: the worker's command checks its
    // digest right before it runs it (which says its version too); here
    // only that it is there and the user's. Another gmr says its version.
    let ours = match &options.gmr_digest {
        Some(_) => format!(
            "{{ [ -f {gmr} ] && [ ! -L {gmr} ] && [ -O {gmr} ]; }} || exit {}; echo {}",
            remote::NOT_OURS,
            shell_quote(concat!("gmr ", env!("CARGO_PKG_VERSION")))
        ),
        None => format!("{gmr} --version || exit 126"),
    };
    Ok(format!(
        "test -f {probe} || exit {NO_WORKDIR}; cd {cwd} || exit {NO_CWD}; \
         command -v {gmr} >/dev/null || exit 127; {ours}; \
         nproc 2>/dev/null || getconf _NPROCESSORS_ONLN"
    ))
}

fn probe(target: &Target, credentials: &Credentials, options: &Options, command: &str) -> Probe {
    let stop = interrupt::is_set;
    let conn = {
        let _turn = HANDSHAKES.acquire();
        Connection::open(target, credentials, &stop)
    };
    let mut conn = match conn {
        Ok(c) => c,
        Err(e) if e.is_permanent() => return Probe::Dead(e.to_string()),
        Err(e) => return Probe::Down(e.to_string()),
    };
    match check(&mut conn, options, command) {
        Checked::Ready(cores) => Probe::Ready { conn, cores },
        Checked::Down(why) => Probe::Down(why),
        Checked::Dead(why) => Probe::Dead(why),
    }
}

/// Runs the check `command` on a connected host and reads its answer.
fn check(conn: &mut Connection, options: &Options, command: &str) -> Checked {
    let out = match conn.run(command, &interrupt::is_set) {
        Ok(out) => out,
        Err(e) => return Checked::Down(e.to_string()),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let gmr = options.remote_gmr.display();
    let tail = last_lines(&stderr, 3);
    let ours = concat!("gmr ", env!("CARGO_PKG_VERSION"));
    match out.exit {
        Exit::Code(0) => {
            let theirs = stdout
                .lines()
                .map(str::trim)
                .find(|l| l.starts_with("gmr "))
                .unwrap_or("no version");
            if theirs != ours {
                return Checked::Dead(format!(
                    "{gmr} there is {theirs}, this is {ours}; install the same version there, or pass --remote-gmr PATH"
                ));
            }
            let cores = stdout
                .lines()
                .rev()
                .find_map(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .max(1);
            Checked::Ready(cores)
        }
        Exit::Code(NO_WORKDIR) => Checked::Dead(
            "the work directory is not visible there (a probe file written in it is missing); \
             --workdir must be on a filesystem every host mounts at the same path (e.g. NFS)"
                .into(),
        ),
        Exit::Code(NO_CWD) => Checked::Dead(
            "the current directory does not exist there; tasks run in it, so it must be at the same path on every host (e.g. on NFS)"
                .into(),
        ),
        Exit::Code(127) => Checked::Dead(format!(
            "gmr not found at {gmr} there (remote exit 127); install gmr there, or pass --remote-gmr PATH"
        )),
        Exit::Code(126) => Checked::Dead(format!("{gmr} does not run there: {tail}")),
        Exit::Code(remote::NOT_OURS) => Checked::Dead(format!(
            "{gmr} there is not this gmr (not a plain file of yours, writable by others, or another digest): refusing to run it"
        )),
        exit => Checked::Dead(format!("the check of the host {exit}: {tail}")),
    }
}

/// Runs tasks on SSH hosts (and local slots): a worker per host, started
/// on the first attempt given to it and kept for the job, fed by a few
/// threads whatever the number of hosts ([`Links`]).
pub(crate) struct SshExecutor {
    pool: Arc<HostPool>,
    local: Option<LocalExecutor>,
    links: Links,
}

impl Executor for SshExecutor {
    fn slots(&self) -> usize {
        self.pool.slots.len()
    }

    fn host_of(&self, slot: usize) -> &str {
        &self.pool.slots[slot].host
    }

    /// Local slots run on the coordinator's thread for the slot.
    fn run(&self, slot: usize, task: TaskId, attempt: u32) -> Result<TaskReport, TaskError> {
        match &self.pool.slots[slot].kind {
            SlotKind::Local(i) => self
                .local
                .as_ref()
                .expect("local slots have an executor")
                .run(*i, task, attempt),
            SlotKind::Remote { .. } => {
                let (done, ended) = crossbeam_channel::bounded(1);
                self.start(slot, task, attempt, &done);
                match ended.recv() {
                    Ok(ended) => ended.result,
                    Err(_) => Err(TaskError::host("the link to the host ended")),
                }
            }
        }
    }

    /// A remote slot's attempt goes to its host's thread, which sends its
    /// end to `done`: no coordinator thread waits per remote slot, however
    /// many hosts and slots.
    fn start(&self, slot: usize, task: TaskId, attempt: u32, done: &Done) -> bool {
        let SlotKind::Remote { remote, index } = &self.pool.slots[slot].kind else {
            return false;
        };
        let done = done.clone();
        let reply: Answer = Box::new(move |result| {
            let _ = done.send(Ended { slot, result });
        });
        let ask = Ask::Run {
            slot: *index,
            task,
            attempt,
            reply,
        };
        self.links.ask(*remote, ask);
        true
    }

    fn cancel(&self, slot: usize) {
        match &self.pool.slots[slot].kind {
            SlotKind::Local(i) => {
                if let Some(local) = &self.local {
                    local.cancel(*i);
                }
            }
            SlotKind::Remote { remote, index } => {
                self.links.ask(*remote, Ask::Cancel { slot: *index });
            }
        }
    }

    fn health(&self) -> Option<&Health> {
        Some(&self.pool.health)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_command_quotes_its_paths() {
        let options = Options {
            ssh: SshFlags {
                config: ConfigFiles::Default,
                identity: None,
                known_hosts: None,
                global_known_hosts: Vec::new(),
                accept_new_host_keys: false,
                timeout: None,
            },
            remote_gmr: PathBuf::from("/opt/gmr bin/gmr"),
            gmr_digest: Some("ab12".into()),
            local_slots: 1,
        };
        let cmd = probe_command(
            Path::new("/w d/.gmr-probe-1"),
            Path::new("/w d"),
            Path::new("/home/o'neil"),
            &options,
        )
        .unwrap();
        assert!(
            cmd.contains("[ -O '/opt/gmr bin/gmr' ]; } || exit 93"),
            "{cmd}"
        );
        assert!(
            cmd.starts_with("test -f '/w d/.gmr-probe-1' || exit 91; "),
            "{cmd}"
        );
        assert!(cmd.contains(r"cd '/home/o'\''neil' || exit 92"), "{cmd}");
        let installed = probe_command(
            Path::new("/w/.gmr-probe-1"),
            Path::new("/w"),
            Path::new("/"),
            &Options {
                gmr_digest: None,
                ..options
            },
        )
        .unwrap();
        assert!(
            installed.contains("'/opt/gmr bin/gmr' --version"),
            "{installed}"
        );
    }
}
