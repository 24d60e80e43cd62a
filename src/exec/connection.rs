//! One SSH connection to a host (ssh2, i.e. libssh2): connect with a
//! timeout, check the host key against known_hosts, authenticate with the
//! agent or a key file (never a password), and run commands on it.
//!
//! A libssh2 session must not be driven from two threads at once, so the
//! thread that owns a connection reads both streams of a command itself: in
//! non-blocking mode, stdout then stderr until neither has data, then
//! poll(2) on the socket. So a command that fills one stream while the
//! other is quiet cannot stall (each stream has its own SSH window). The
//! same loop sends keepalives, which the server answers: a host from which
//! nothing at all arrives for the idle limit is hung, while a healthy
//! command that prints nothing for hours is not.
//!
//! A connection that failed, timed out or was cancelled is shut down at the
//! socket before libssh2 frees it: freeing a channel waits for the server's
//! reply, which a hung host never sends.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::os::fd::{AsRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use ssh2::{BlockDirections, ErrorCode, HashType, HostKeyType};

use super::remote::{Exit, Output};
use crate::exec::knownhosts::{self, KnownHosts, Verdict};

/// How much of a command's stdout and stderr is kept (the end of it).
const KEEP_OUTPUT: usize = 1 << 20;
/// What every command channel runs: the login shell, whatever it is (bash,
/// dash, zsh, fish, tcsh), only execs a POSIX shell, which reads gmr's
/// command lines from stdin; so quoting made for `sh` never meets a shell
/// it was not made for, and no path can inject a command.
const REMOTE_SHELL: &str = "exec /bin/sh -s";

/// The longest a poll waits, so that cancels and interrupts are seen soon.
const POLL_MS: i32 = 100;

/// A host to connect to, as the ssh configuration and the flags resolve
/// it (see [`crate::exec::sshconfig`]).
#[derive(Debug, Clone)]
pub(crate) struct Target {
    /// Host name or address (`HostName`).
    pub(crate) host: String,
    /// SSH port.
    pub(crate) port: u16,
    /// Login name.
    pub(crate) user: String,
    /// `HostKeyAlias`: the name known_hosts knows the host by, instead of
    /// `host` (and `[host]:port`).
    pub(crate) key_alias: Option<String>,
    /// A shell command whose stdin and stdout are the connection
    /// (`ProxyCommand`, or `ssh -W` through the hops of `ProxyJump`).
    pub(crate) proxy: Option<String>,
    /// How long connecting and logging in may take.
    pub(crate) connect_timeout: Duration,
    /// How long the host may stay silent, keepalives unanswered, before
    /// it counts as hung.
    pub(crate) idle_limit: Duration,
    /// Seconds between keepalives.
    pub(crate) keepalive: u32,
}

impl Target {
    /// The name looked up in known_hosts.
    fn key_name(&self) -> String {
        match &self.key_alias {
            Some(alias) => alias.to_ascii_lowercase(),
            None => knownhosts::host_name(&self.host, self.port),
        }
    }
}

/// Which ssh-agent to ask for keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Agent {
    /// None (`IdentityAgent none`, `IdentitiesOnly yes`).
    Off,
    /// The one `$SSH_AUTH_SOCK` names, if set.
    Env,
    /// The one at this socket (`IdentityAgent`).
    Socket(PathBuf),
}

/// How to prove who we are and who the hosts are.
#[derive(Debug, Clone)]
pub(crate) struct Credentials {
    /// Key files tried first (`--identity`): it must be usable.
    pub(crate) first_keys: Vec<PathBuf>,
    /// Key files tried after the agent's keys, those that exist
    /// (`IdentityFile`, or ssh's default key files).
    pub(crate) keys: Vec<PathBuf>,
    /// The agent whose keys are tried.
    pub(crate) agent: Agent,
    /// The user's known_hosts file: read first, and where new keys go.
    pub(crate) known_hosts: PathBuf,
    /// More known_hosts files read after it (the user's others, then the
    /// system's).
    pub(crate) more_known_hosts: Vec<PathBuf>,
    /// Accept (and record) the key of a host the file does not know.
    pub(crate) accept_new_host_keys: bool,
    /// Write new known_hosts lines hashed (`HashKnownHosts`).
    pub(crate) hash_new_lines: bool,
}

impl Credentials {
    /// The known_hosts files, the user's first.
    fn files(&self) -> Vec<PathBuf> {
        std::iter::once(self.known_hosts.clone())
            .chain(self.more_known_hosts.iter().cloned())
            .collect()
    }
}

/// Host key types libssh2 can check, in its order of preference.
const HOST_KEY_TYPES: &[&str] = &[
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-ed25519",
    "rsa-sha2-512",
    "rsa-sha2-256",
    "ssh-rsa",
];

/// Why a connection could not be made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// DNS failed.
    #[error("cannot resolve host name `{host}`: {source}; check the name in --hosts")]
    Resolve {
        /// The name.
        host: String,
        /// Why.
        source: io::Error,
    },
    /// Nothing listens on the port.
    #[error("connection refused at {addr} (is sshd running there, on port {port}?)")]
    Refused {
        /// The address tried.
        addr: SocketAddr,
        /// The port.
        port: u16,
    },
    /// No answer in time.
    #[error("no answer from {addr} within {secs} s {doing} (host down, hung or firewalled?)")]
    Timeout {
        /// Where.
        addr: String,
        /// The limit.
        secs: u64,
        /// When: "while connecting", "during the SSH handshake".
        doing: &'static str,
    },
    /// Another socket error.
    #[error("cannot connect to {addr}: {source}")]
    Connect {
        /// Where.
        addr: String,
        /// Why.
        source: io::Error,
    },
    /// The SSH protocol failed.
    #[error("SSH connection to {addr} failed: {message}")]
    Handshake {
        /// Where.
        addr: String,
        /// libssh2's message.
        message: String,
    },
    /// The host's key is not in known_hosts.
    #[error(
        "the host key of {name} is not in {file}; check its fingerprint ({fingerprint}) and add it (e.g. ssh-keyscan -p {port} {host} >> {file}), or pass --accept-new-host-keys"
    )]
    UnknownHostKey {
        /// The name looked up (`[host]:port`).
        name: String,
        /// The host alone.
        host: String,
        /// The port.
        port: u16,
        /// The known_hosts file.
        file: PathBuf,
        /// SHA256 fingerprint of the key offered.
        fingerprint: String,
    },
    /// The host's key differs from the recorded one (or is revoked).
    #[error(
        "the host key of {name} ({fingerprint}) does NOT match the one in {file}{why}: refusing to connect. Someone may be intercepting the connection, or the host was reinstalled; check with its administrator, then remove the old key (ssh-keygen -R '{name}' -f {file})"
    )]
    HostKeyMismatch {
        /// The name looked up.
        name: String,
        /// The known_hosts file.
        file: PathBuf,
        /// SHA256 fingerprint of the key offered.
        fingerprint: String,
        /// Where, and why (" (it is marked @revoked at FILE:LINE)").
        why: String,
    },
    /// Only certificate authorities cover the host, and it showed a plain
    /// key.
    #[error(
        "the host {name} showed a plain key ({fingerprint}), but known_hosts trusts only host certificates signed by the authority at {place} for it: refusing to connect; add the host's own key to known_hosts, or give the host a certificate"
    )]
    CertificateRequired {
        /// The name looked up.
        name: String,
        /// SHA256 fingerprint of the key offered.
        fingerprint: String,
        /// The `@cert-authority` line.
        place: knownhosts::Place,
    },
    /// known_hosts could not be used.
    #[error("cannot check the host key of {name} against {file}: {message}")]
    KnownHosts {
        /// The name looked up.
        name: String,
        /// The known_hosts file.
        file: PathBuf,
        /// Why.
        message: String,
    },
    /// Every way to log in failed.
    #[error(
        "authentication as {user} failed (tried {tried}): {message}; add your public key to ~{user}/.ssh/authorized_keys on the host, load your key into ssh-agent, or pass --identity FILE"
    )]
    Auth {
        /// The login name.
        user: String,
        /// What was tried.
        tried: String,
        /// The last error.
        message: String,
    },
}

impl ConnectError {
    /// True for problems that cannot go away during a job (keys, login):
    /// the host should not be tried again.
    pub(crate) fn is_permanent(&self) -> bool {
        matches!(
            self,
            ConnectError::UnknownHostKey { .. }
                | ConnectError::HostKeyMismatch { .. }
                | ConnectError::CertificateRequired { .. }
                | ConnectError::KnownHosts { .. }
                | ConnectError::Auth { .. }
        )
    }
}

/// Why a command did not run to its end.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ExecError {
    /// The command could not be started (on a reused connection: it may
    /// have been closed by the server while idle).
    #[error("cannot start a command: {0}")]
    Start(String),
    /// The connection broke while the command ran.
    #[error("lost the connection: {0}")]
    Lost(String),
    /// Nothing arrived for the idle limit, not even keepalive replies.
    #[error("no sign of life for {0} s (host hung, or the network is down)")]
    Hung(u64),
    /// `stop` said so.
    #[error("cancelled")]
    Cancelled,
}

/// Limits the number of SSH handshakes in flight, so that many slots
/// starting at once do not trip sshd's MaxStartups (which drops
/// connections that have not authenticated yet beyond 10 by default).
#[derive(Debug)]
pub(crate) struct Throttle {
    max: usize,
    busy: Mutex<usize>,
    freed: Condvar,
}

impl Throttle {
    /// At most `max` at once.
    pub(crate) const fn new(max: usize) -> Throttle {
        Throttle {
            max,
            busy: Mutex::new(0),
            freed: Condvar::new(),
        }
    }

    /// Waits for a turn; the turn ends when the permit drops.
    pub(crate) fn acquire(&self) -> Permit<'_> {
        let mut busy = self.busy.lock().unwrap_or_else(|e| e.into_inner());
        while *busy >= self.max {
            busy = self.freed.wait(busy).unwrap_or_else(|e| e.into_inner());
        }
        *busy += 1;
        Permit(self)
    }
}

/// A turn of a [`Throttle`].
pub(crate) struct Permit<'a>(&'a Throttle);

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        *self.0.busy.lock().unwrap_or_else(|e| e.into_inner()) -= 1;
        self.0.freed.notify_one();
    }
}

/// An authenticated SSH connection.
pub(crate) struct Connection {
    session: ssh2::Session,
    /// The socket the session owns, for poll(2) and shutdown(2).
    fd: RawFd,
    /// How long silence may last before the host counts as hung.
    idle_limit: Duration,
    /// The proxy command the socket leads to, if any: killed with the
    /// connection.
    proxy: Option<ProxyChild>,
}

/// libssh2's LIBSSH2_ERROR_EAGAIN: a non-blocking call would block.
fn is_eagain(e: &ssh2::Error) -> bool {
    e.code() == ErrorCode::Session(-37)
}

impl Connection {
    /// Connects to `target`, checks its host key and logs in. `timeout`
    /// bounds the whole of it, and is the idle limit of commands run later;
    /// `stop` (an interrupt) ends it early.
    pub(crate) fn open(
        target: &Target,
        creds: &Credentials,
        stop: &dyn Fn() -> bool,
    ) -> Result<Connection, ConnectError> {
        let timeout = target.connect_timeout;
        let deadline = Instant::now() + timeout;
        let addr = format!("{}:{}", target.host, target.port);
        let mut session = ssh2::Session::new().map_err(|e| ConnectError::Handshake {
            addr: addr.clone(),
            message: e.to_string(),
        })?;
        let (fd, proxy) = match &target.proxy {
            None => {
                let stream = connect_tcp(target, deadline, stop)?;
                let _ = stream.set_nodelay(true);
                let fd = stream.as_raw_fd();
                session.set_tcp_stream(stream);
                (fd, None)
            }
            Some(command) => {
                let (stream, child) =
                    ProxyChild::spawn(command).map_err(|e| ConnectError::Connect {
                        addr: format!("{addr} through `{command}`"),
                        source: e,
                    })?;
                let fd = stream.as_raw_fd();
                session.set_tcp_stream(stream);
                (fd, Some(child))
            }
        };
        // Ask for a host key of a type known_hosts has for the host, as
        // ssh does: else a host known by its ed25519 key that offers ECDSA
        // first would look unknown.
        let files = creds.files();
        if let Ok(known) = KnownHosts::read(&files) {
            let known = match &target.key_alias {
                Some(alias) => known.known_types_of(&[alias.to_ascii_lowercase()]),
                None => known.known_types(&target.host, target.port),
            };
            let mut prefs: Vec<&str> = HOST_KEY_TYPES
                .iter()
                .copied()
                // An RSA key (`ssh-rsa` in known_hosts) signs with SHA-2 too.
                .filter(|t| {
                    known
                        .iter()
                        .any(|k| k == t || (k == "ssh-rsa" && t.starts_with("rsa-")))
                })
                .collect();
            let rest: Vec<&str> = HOST_KEY_TYPES
                .iter()
                .copied()
                .filter(|t| !prefs.contains(t))
                .collect();
            prefs.extend(rest);
            let _ = session.method_pref(ssh2::MethodType::HostKey, &prefs.join(","));
        }
        // Non-blocking throughout: every step waits in poll(2), where a
        // deadline or an interrupt can end it.
        session.set_blocking(false);
        let conn = Connection {
            session,
            fd,
            idle_limit: target.idle_limit,
            proxy,
        };
        let step_err = |doing: &'static str| {
            let addr = addr.clone();
            let proxy = &conn.proxy;
            move |e: Waited| match e {
                // What the proxy printed says more than libssh2's "socket
                // disconnect".
                Waited::Failed(_) | Waited::TimedOut
                    if proxy.as_ref().is_some_and(ProxyChild::failed) =>
                {
                    ConnectError::Handshake {
                        addr,
                        message: format!(
                            "the proxy command failed: {}",
                            proxy.as_ref().map(ProxyChild::said).unwrap_or_default()
                        ),
                    }
                }
                Waited::TimedOut => ConnectError::Timeout {
                    addr,
                    secs: timeout.as_secs(),
                    doing,
                },
                Waited::Stopped => ConnectError::Handshake {
                    addr,
                    message: "interrupted".into(),
                },
                Waited::Failed(e) => ConnectError::Handshake {
                    addr,
                    message: e.message().to_string(),
                },
            }
        };
        // handshake() takes `&mut`; a clone is a handle to the same session.
        let mut session = conn.session.clone();
        conn.wait_for(deadline, stop, || session.handshake())
            .map_err(step_err("during the SSH handshake"))?;
        conn.check_host_key(target, creds)?;
        conn.authenticate(target, creds, deadline, stop)
            .map_err(|e| match e {
                AuthFailure::Waited(w) => step_err("while logging in")(w),
                AuthFailure::Refused(e) => e,
            })?;
        // Keepalives both detect a hung host (a live one answers them) and
        // keep NAT and firewall state alive for long silent tasks.
        conn.session.set_keepalive(true, target.keepalive.max(2));
        Ok(conn)
    }

    /// Repeats a non-blocking libssh2 call until it is done, waiting for the
    /// socket in between.
    fn wait_for<T>(
        &self,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
        mut op: impl FnMut() -> Result<T, ssh2::Error>,
    ) -> Result<T, Waited> {
        loop {
            match op() {
                Err(e) if is_eagain(&e) => {}
                Ok(v) => return Ok(v),
                Err(e) => return Err(Waited::Failed(e)),
            }
            if stop() {
                return Err(Waited::Stopped);
            }
            if Instant::now() >= deadline {
                return Err(Waited::TimedOut);
            }
            self.wait_socket();
        }
    }

    /// Checks the key the host offered against the known_hosts files,
    /// with OpenSSH's semantics (see [`crate::exec::knownhosts`]); records it in
    /// the user's file, with `--accept-new-host-keys`, only for a host that
    /// no line of any file covers.
    fn check_host_key(&self, target: &Target, creds: &Credentials) -> Result<(), ConnectError> {
        let name = target.key_name();
        let file = &creds.known_hosts;
        let (key, key_type) = self
            .session
            .host_key()
            .ok_or_else(|| ConnectError::KnownHosts {
                name: name.clone(),
                file: file.clone(),
                message: "the server offered no host key".into(),
            })?;
        let fingerprint = self
            .session
            .host_key_hash(HashType::Sha256)
            .map_or_else(String::new, |h| {
                format!("SHA256:{}", STANDARD_NO_PAD.encode(h))
            });
        let known_err = |message: String| ConnectError::KnownHosts {
            name: name.clone(),
            file: file.clone(),
            message,
        };
        let known = KnownHosts::read(&creds.files()).map_err(|e| known_err(e.to_string()))?;
        let verdict = match &target.key_alias {
            Some(alias) => known.check_alias(alias, key_type_name(key_type), key),
            None => known.check(&target.host, target.port, key_type_name(key_type), key),
        };
        match verdict {
            Verdict::Known => Ok(()),
            Verdict::Revoked(place) => Err(ConnectError::HostKeyMismatch {
                name,
                file: place.file.clone(),
                fingerprint,
                why: format!(" (it is marked @revoked at {place})"),
            }),
            Verdict::Changed(place) => Err(ConnectError::HostKeyMismatch {
                name,
                file: place.file.clone(),
                fingerprint,
                why: format!(" (line {})", place.line),
            }),
            Verdict::OtherType(place, known_type) => Err(ConnectError::HostKeyMismatch {
                name,
                file: place.file.clone(),
                fingerprint,
                why: format!(
                    " (line {} records its {known_type} key, and it offered a {} key only)",
                    place.line,
                    key_type_name(key_type)
                ),
            }),
            Verdict::CertificateRequired(place) => Err(ConnectError::CertificateRequired {
                name,
                fingerprint,
                place,
            }),
            Verdict::Unknown if creds.accept_new_host_keys => {
                let salt = creds.hash_new_lines.then(random_salt).transpose();
                let line = salt.map(|salt| {
                    knownhosts::line(
                        &name,
                        key_type_name(key_type),
                        key,
                        salt.as_ref().map(|s| &s[..]),
                    )
                });
                line.and_then(|line| append_line(file, &line))
                    .map_err(|e| known_err(format!("cannot add the new host key: {e}")))?;
                eprintln!(
                    "gmr: added the host key of {name} ({fingerprint}) to {}",
                    file.display()
                );
                Ok(())
            }
            Verdict::Unknown => Err(ConnectError::UnknownHostKey {
                name,
                host: target.host.clone(),
                port: target.port,
                file: file.clone(),
                fingerprint,
            }),
        }
    }

    /// Logs in as ssh would: with the given key file, then each key of the
    /// agent, then (no key file given) each default key file. Passwords
    /// are never tried.
    fn authenticate(
        &self,
        target: &Target,
        creds: &Credentials,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), AuthFailure> {
        let user = target.user.as_str();
        let mut tried = Vec::new();
        let mut last = String::from("no key to try");
        // As ssh: the key named on the command line first, then the
        // agent's keys, then the configuration's key files (or ssh's
        // default ones) that exist. Passwords are never tried.
        let try_file = |key: &Path, tried: &mut Vec<String>, last: &mut String| {
            tried.push(key.display().to_string());
            let r = self.wait_for(deadline, stop, || {
                self.session.userauth_pubkey_file(user, None, key, None)
            });
            auth_outcome(r, last)
        };
        for key in &creds.first_keys {
            if try_file(key, &mut tried, &mut last)? {
                return Ok(());
            }
        }
        let socket = match &creds.agent {
            Agent::Off => None,
            Agent::Env => std::env::var_os("SSH_AUTH_SOCK").map(|_| None),
            Agent::Socket(path) => Some(Some(path.as_path())),
        };
        if let Some(socket) = socket {
            tried.push(match socket {
                None => "ssh-agent".to_string(),
                Some(p) => format!("ssh-agent at {}", p.display()),
            });
            if self.agent_auth(user, socket, deadline, stop, &mut last)? {
                return Ok(());
            }
        }
        let rest = creds
            .keys
            .iter()
            .filter(|k| !creds.first_keys.contains(k) && k.is_file());
        for key in rest {
            if try_file(key, &mut tried, &mut last)? {
                return Ok(());
            }
        }
        Err(AuthFailure::Refused(ConnectError::Auth {
            user: user.to_string(),
            tried: if tried.is_empty() {
                "nothing: no ssh-agent and no key file".into()
            } else {
                tried.join(", ")
            },
            message: last,
        }))
    }

    /// Tries each identity of the agent (ssh2's own helper tries only the
    /// first).
    fn agent_auth(
        &self,
        user: &str,
        socket: Option<&Path>,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
        last: &mut String,
    ) -> Result<bool, AuthFailure> {
        let identities = self.session.agent().and_then(|mut agent| {
            if let Some(socket) = socket {
                agent.set_identity_path(socket)?;
            }
            agent.connect()?;
            agent.list_identities()?;
            Ok((agent.identities()?, agent))
        });
        let (identities, agent) = match identities {
            Ok(found) => found,
            Err(e) => {
                *last = format!("ssh-agent: {}", e.message());
                return Ok(false);
            }
        };
        for id in &identities {
            let r = self.wait_for(deadline, stop, || agent.userauth(user, id));
            if auth_outcome(r, last)? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Runs `script` (command lines for a POSIX `sh`, given on its stdin:
    /// see [`REMOTE_SHELL`]) to its end, collecting its stdout and stderr.
    /// `stop` is asked often; when it says so the command is abandoned (the
    /// connection goes away with it, and the caller must drop it).
    ///
    /// Past the script, stdin stays open and empty while the command runs,
    /// and closes when the connection does: `gmr task --watch-stdin` stops
    /// there.
    pub(crate) fn run(
        &mut self,
        script: &str,
        stop: &dyn Fn() -> bool,
    ) -> Result<Output, ExecError> {
        let deadline = Instant::now() + self.idle_limit;
        let start_err = |e: Waited| match e {
            Waited::Stopped => ExecError::Cancelled,
            Waited::TimedOut => ExecError::Hung(self.idle_limit.as_secs()),
            Waited::Failed(e) => ExecError::Start(e.message().to_string()),
        };
        let result = match self.open_shell(deadline, stop) {
            Ok(mut channel) => self
                .send(&mut channel, script, deadline, stop)
                .and_then(|()| self.drain(&mut channel, stop)),
            Err(e) => Err(start_err(e)),
        };
        if matches!(
            result,
            Err(ExecError::Lost(_) | ExecError::Hung(_) | ExecError::Cancelled)
        ) {
            self.shutdown();
        }
        result
    }

    /// Opens a channel that runs [`REMOTE_SHELL`], which reads its script
    /// on stdin.
    fn open_shell(
        &self,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<ssh2::Channel, Waited> {
        self.wait_for(deadline, stop, || self.session.channel_session())
            .and_then(|mut channel| {
                self.wait_for(deadline, stop, || channel.exec(REMOTE_SHELL))
                    .map(|()| channel)
            })
    }

    /// Writes the script, then `exit`, to the remote shell's stdin; stdin
    /// stays open (a `gmr task --watch-stdin` it execs watches it).
    fn send(
        &self,
        channel: &mut ssh2::Channel,
        script: &str,
        deadline: Instant,
        stop: &dyn Fn() -> bool,
    ) -> Result<(), ExecError> {
        let text = format!("{script}\nexit\n");
        let mut sent = 0;
        while sent < text.len() {
            match channel.write(&text.as_bytes()[sent..]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    if stop() {
                        return Err(ExecError::Cancelled);
                    }
                    if Instant::now() >= deadline {
                        return Err(ExecError::Hung(self.idle_limit.as_secs()));
                    }
                    self.wait_socket();
                }
                Err(e) => return Err(ExecError::Lost(e.to_string())),
            }
        }
        Ok(())
    }

    fn drain(
        &self,
        channel: &mut ssh2::Channel,
        stop: &dyn Fn() -> bool,
    ) -> Result<Output, ExecError> {
        let mut stdout = Tail::default();
        let mut stderr = Tail::default();
        let mut stderr_stream = channel.stderr();
        let (mut out_done, mut err_done) = (false, false);
        let mut buf = vec![0u8; 64 << 10];
        let mut heard = Instant::now();
        let mut next_keepalive = Instant::now();
        let lost = |e: io::Error| ExecError::Lost(e.to_string());
        loop {
            let mut progressed = false;
            if !out_done {
                progressed |=
                    read_available(channel, &mut buf, &mut stdout, &mut out_done).map_err(lost)?;
            }
            if !err_done {
                progressed |=
                    read_available(&mut stderr_stream, &mut buf, &mut stderr, &mut err_done)
                        .map_err(lost)?;
            }
            // After both streams end, the server's close carries the exit
            // status.
            if out_done && err_done {
                match channel.close().and_then(|()| channel.wait_close()) {
                    Ok(()) => break,
                    Err(e) if is_eagain(&e) => {}
                    Err(e) => return Err(ExecError::Lost(e.message().to_string())),
                }
            }
            if stop() {
                return Err(ExecError::Cancelled);
            }
            let now = Instant::now();
            if now >= next_keepalive {
                match self.session.keepalive_send() {
                    Ok(secs) => {
                        next_keepalive = now + Duration::from_secs(u64::from(secs.max(1)));
                    }
                    Err(e) if is_eagain(&e) => next_keepalive = now + Duration::from_secs(1),
                    Err(e) => return Err(ExecError::Lost(e.message().to_string())),
                }
            }
            if progressed {
                heard = now;
                continue;
            }
            if now.duration_since(heard) > self.idle_limit {
                return Err(ExecError::Hung(self.idle_limit.as_secs()));
            }
            if self.wait_socket() {
                heard = Instant::now();
            }
        }
        let exit = exit_of(channel)?;
        Ok(Output {
            stdout: stdout.0,
            stderr: stderr.0,
            exit,
        })
    }

    /// Starts `script` (as [`Connection::run`] does) and leaves it
    /// running: a worker that reads orders on its stdin and answers in
    /// lines on its stdout, moved along by [`Connection::pump`].
    pub(crate) fn start(
        &mut self,
        script: &str,
        stop: &dyn Fn() -> bool,
    ) -> Result<Running, ExecError> {
        let deadline = Instant::now() + self.idle_limit;
        match self.open_shell(deadline, stop) {
            Ok(channel) => Ok(Running {
                channel,
                to_send: format!("{script}\n").into_bytes(),
                stdout: Vec::new(),
                stderr: Tail::default(),
                heard: Instant::now(),
                next_keepalive: Instant::now(),
                out_done: false,
                err_done: false,
            }),
            Err(Waited::Stopped) => Err(ExecError::Cancelled),
            Err(Waited::TimedOut) => {
                self.shutdown();
                Err(ExecError::Hung(self.idle_limit.as_secs()))
            }
            Err(Waited::Failed(e)) => Err(ExecError::Start(e.message().to_string())),
        }
    }

    /// Moves a running command along without waiting: sends what is
    /// queued for its stdin, and adds the whole lines it printed to
    /// `lines`. `Ok(Some(out))` once it ended; an error when the host is
    /// lost, or has sent nothing for the idle limit (a live worker prints
    /// a heartbeat well within it).
    pub(crate) fn pump(
        &self,
        run: &mut Running,
        lines: &mut Vec<String>,
    ) -> Result<Option<Output>, ExecError> {
        let lost = |e: io::Error| ExecError::Lost(e.to_string());
        while !run.to_send.is_empty() {
            match run.channel.write(&run.to_send) {
                Ok(n) => {
                    run.to_send.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(lost(e)),
            }
        }
        let mut buf = [0u8; 16 << 10];
        while !run.out_done {
            match run.channel.read(&mut buf) {
                Ok(0) => run.out_done = true,
                Ok(n) => {
                    run.heard = Instant::now();
                    run.stdout.extend_from_slice(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => return Err(lost(e)),
            }
        }
        while let Some(end) = memchr::memchr(b'\n', &run.stdout) {
            let line: Vec<u8> = run.stdout.drain(..=end).collect();
            lines.push(String::from_utf8_lossy(&line[..end]).into_owned());
        }
        // No answer is this long: whatever prints it is not the worker.
        if run.stdout.len() > KEEP_OUTPUT {
            run.stdout.clear();
        }
        if !run.err_done {
            let mut stderr = run.channel.stderr();
            if read_available(&mut stderr, &mut buf, &mut run.stderr, &mut run.err_done)
                .map_err(lost)?
            {
                run.heard = Instant::now();
            }
        }
        if run.out_done && run.err_done {
            match run.channel.close().and_then(|()| run.channel.wait_close()) {
                Ok(()) => {}
                Err(e) if is_eagain(&e) => return Ok(None),
                Err(e) => return Err(ExecError::Lost(e.message().to_string())),
            }
            let exit = exit_of(&run.channel)?;
            return Ok(Some(Output {
                stdout: std::mem::take(&mut run.stdout),
                stderr: std::mem::take(&mut run.stderr.0),
                exit,
            }));
        }
        let now = Instant::now();
        if now >= run.next_keepalive {
            match self.session.keepalive_send() {
                Ok(secs) => {
                    run.next_keepalive = now + Duration::from_secs(u64::from(secs.max(1)));
                }
                Err(e) if is_eagain(&e) => run.next_keepalive = now + Duration::from_secs(1),
                Err(e) => return Err(ExecError::Lost(e.message().to_string())),
            }
        }
        if now.duration_since(run.heard) > self.idle_limit {
            self.shutdown();
            return Err(ExecError::Hung(self.idle_limit.as_secs()));
        }
        Ok(None)
    }

    /// The socket, and the events libssh2 waits for on it, for a poll(2)
    /// over many connections.
    pub(crate) fn pollfd(&self) -> libc::pollfd {
        let mut events = libc::POLLIN;
        if matches!(
            self.session.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            events |= libc::POLLOUT;
        }
        libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        }
    }

    /// Cuts the connection at once (what runs on it sees its stdin close).
    pub(crate) fn cut(&self) {
        self.shutdown();
    }

    /// Waits (a little) for the socket to be ready the way libssh2 wants
    /// it; true when something arrived.
    fn wait_socket(&self) -> bool {
        let mut events = libc::POLLIN;
        if matches!(
            self.session.block_directions(),
            BlockDirections::Outbound | BlockDirections::Both
        ) {
            events |= libc::POLLOUT;
        }
        let mut pfd = libc::pollfd {
            fd: self.fd,
            events,
            revents: 0,
        };
        // SAFETY: one valid pollfd; the socket stays open while the session
        // (which owns it) lives.
        let n = unsafe { libc::poll(&mut pfd, 1, POLL_MS) };
        n > 0 && pfd.revents & (libc::POLLIN | libc::POLLHUP | libc::POLLERR) != 0
    }

    /// Cuts the TCP connection (the server then ends the session and the
    /// commands it runs see their stdin close); what is left of the
    /// session can be freed without waiting on the host.
    fn shutdown(&self) {
        // SAFETY: shutdown(2) on the session's own socket; the descriptor
        // stays valid (it is closed when the session drops).
        unsafe {
            libc::shutdown(self.fd, libc::SHUT_RDWR);
        }
    }
}

/// How a closed channel's command ended: the signal that killed it, or
/// its exit status.
fn exit_of(channel: &ssh2::Channel) -> Result<Exit, ExecError> {
    match channel.exit_signal() {
        Ok(sig) if sig.exit_signal.is_some() => {
            Ok(Exit::Signal(sig.exit_signal.unwrap_or_default()))
        }
        _ => channel
            .exit_status()
            .map(Exit::Code)
            .map_err(|e| ExecError::Lost(e.message().to_string())),
    }
}

/// A command left running by [`Connection::start`].
pub(crate) struct Running {
    channel: ssh2::Channel,
    /// Queued for its stdin.
    to_send: Vec<u8>,
    /// Its stdout past the last whole line.
    stdout: Vec<u8>,
    stderr: Tail,
    /// When it last printed anything.
    heard: Instant,
    next_keepalive: Instant,
    out_done: bool,
    err_done: bool,
}

impl Running {
    /// Queues `line` (and a newline) for its stdin.
    pub(crate) fn send_line(&mut self, line: &str) {
        self.to_send.extend_from_slice(line.as_bytes());
        self.to_send.push(b'\n');
    }

    /// The end of its stderr, for messages.
    pub(crate) fn stderr_tail(&self) -> String {
        super::remote::last_lines(&String::from_utf8_lossy(&self.stderr.0), 3)
    }
}

/// How a wait for a non-blocking libssh2 call ended, other than done.
enum Waited {
    Stopped,
    TimedOut,
    Failed(ssh2::Error),
}

enum AuthFailure {
    Waited(Waited),
    Refused(ConnectError),
}

/// Whether one login attempt got in; a refusal is remembered in `last`,
/// and a timeout or an interrupt ends the login.
fn auth_outcome(r: Result<(), Waited>, last: &mut String) -> Result<bool, AuthFailure> {
    match r {
        Ok(()) => Ok(true),
        Err(Waited::Failed(e)) => {
            *last = e.message().to_string();
            if last.contains("Unable to extract public key") || last.contains("passphrase") {
                last.push_str(" (a key with a passphrase must be loaded into ssh-agent instead)");
            }
            Ok(false)
        }
        Err(w) => Err(AuthFailure::Waited(w)),
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.session.set_blocking(false);
        let _ = self
            .session
            .disconnect(None, "gmr is done with this connection", None);
        self.shutdown();
    }
}

/// Connects to the first address of `target` that answers by `deadline`,
/// trying each address of its name in order, as ssh does.
fn connect_tcp(
    target: &Target,
    deadline: Instant,
    stop: &dyn Fn() -> bool,
) -> Result<TcpStream, ConnectError> {
    let addrs: Vec<SocketAddr> = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|source| ConnectError::Resolve {
            host: target.host.clone(),
            source,
        })?
        .collect();
    connect_addrs(&addrs, target, deadline, stop)
}

/// Connects to the first of `addrs` that answers by `deadline`. An address
/// that refuses (or fails otherwise at once) is not tried again; one that
/// does not answer is, each round waiting a little longer (1 s, 2 s, …),
/// so that an interrupt is seen between tries even when a host swallows
/// packets.
fn connect_addrs(
    addrs: &[SocketAddr],
    target: &Target,
    deadline: Instant,
    stop: &dyn Fn() -> bool,
) -> Result<TcpStream, ConnectError> {
    let total = deadline.saturating_duration_since(Instant::now());
    let mut last = None;
    let mut wait = Duration::from_secs(1);
    let mut failed = vec![false; addrs.len()];
    'tries: while Instant::now() < deadline && !stop() {
        for (i, &addr) in addrs.iter().enumerate() {
            if failed[i] {
                continue;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break 'tries;
            }
            match TcpStream::connect_timeout(&addr, wait.min(left)) {
                Ok(s) => return Ok(s),
                Err(e) => {
                    let timed_out = matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
                    );
                    failed[i] = !timed_out;
                    last = Some((addr, e));
                }
            }
        }
        if failed.iter().all(|&f| f) {
            break;
        }
        wait *= 2;
    }
    Err(match last {
        None => ConnectError::Timeout {
            addr: format!("{}:{}", target.host, target.port),
            secs: total.as_secs(),
            doing: "while connecting",
        },
        Some((addr, e)) => match e.kind() {
            io::ErrorKind::ConnectionRefused => ConnectError::Refused {
                addr,
                port: target.port,
            },
            io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock => ConnectError::Timeout {
                addr: addr.to_string(),
                secs: total.as_secs(),
                doing: "while connecting",
            },
            _ => ConnectError::Connect {
                addr: addr.to_string(),
                source: e,
            },
        },
    })
}

/// Reads what one stream has now. Returns whether anything was read; sets
/// `done` at its end.
fn read_available(
    r: &mut impl Read,
    buf: &mut [u8],
    into: &mut Tail,
    done: &mut bool,
) -> io::Result<bool> {
    let mut any = false;
    loop {
        match r.read(buf) {
            Ok(0) => {
                *done = true;
                return Ok(any);
            }
            Ok(n) => {
                into.push(&buf[..n]);
                any = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(any),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// The last [`KEEP_OUTPUT`] bytes of a stream.
#[derive(Default)]
struct Tail(Vec<u8>);

impl Tail {
    fn push(&mut self, bytes: &[u8]) {
        self.0.extend_from_slice(bytes);
        if self.0.len() > 2 * KEEP_OUTPUT {
            let cut = self.0.len() - KEEP_OUTPUT;
            self.0.drain(..cut);
        }
    }
}

/// The known_hosts name of a key type.
fn key_type_name(t: HostKeyType) -> &'static str {
    match t {
        HostKeyType::Rsa => "ssh-rsa",
        HostKeyType::Dss => "ssh-dss",
        HostKeyType::Ecdsa256 => "ecdsa-sha2-nistp256",
        HostKeyType::Ecdsa384 => "ecdsa-sha2-nistp384",
        HostKeyType::Ecdsa521 => "ecdsa-sha2-nistp521",
        HostKeyType::Ed25519 => "ssh-ed25519",
        HostKeyType::Unknown => "unknown",
    }
}

/// 20 random bytes, the salt of a hashed known_hosts name (as ssh's).
fn random_salt() -> io::Result<[u8; 20]> {
    let mut salt = [0u8; 20];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut salt)?;
    Ok(salt)
}

/// A proxy command (`ProxyCommand`, or `ssh -W` for `ProxyJump`): its
/// stdin and stdout are one end of a socket pair, whose other end the
/// SSH session reads and writes. Killed when the connection goes.
struct ProxyChild {
    child: Mutex<std::process::Child>,
    stderr: Mutex<Option<std::process::ChildStderr>>,
}

impl ProxyChild {
    /// Starts `command` with `sh -c`, as ssh starts a ProxyCommand.
    fn spawn(command: &str) -> io::Result<(std::os::unix::net::UnixStream, ProxyChild)> {
        use std::os::fd::OwnedFd;
        use std::process::Stdio;
        let (ours, theirs) = std::os::unix::net::UnixStream::pair()?;
        let theirs_out = theirs.try_clone()?;
        let mut child = std::process::Command::new("/bin/sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(Stdio::from(OwnedFd::from(theirs)))
            .stdout(Stdio::from(OwnedFd::from(theirs_out)))
            .stderr(Stdio::piped())
            .spawn()?;
        let stderr = child.stderr.take();
        if let Some(e) = &stderr {
            // SAFETY: fcntl on a pipe this process owns.
            unsafe {
                let fd = e.as_raw_fd();
                libc::fcntl(
                    fd,
                    libc::F_SETFL,
                    libc::fcntl(fd, libc::F_GETFL) | libc::O_NONBLOCK,
                );
            }
        }
        Ok((
            ours,
            ProxyChild {
                child: Mutex::new(child),
                stderr: Mutex::new(stderr),
            },
        ))
    }

    /// Whether the command ended (within a second) other than well.
    fn failed(&self) -> bool {
        let mut child = self.child.lock().unwrap_or_else(|e| e.into_inner());
        for _ in 0..20 {
            match child.try_wait() {
                Ok(Some(status)) => return !status.success(),
                Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                Err(_) => return false,
            }
        }
        false
    }

    /// The last lines the command wrote on stderr.
    fn said(&self) -> String {
        let mut text = Vec::new();
        if let Some(e) = self
            .stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_mut()
        {
            let mut buf = [0u8; 4096];
            while let Ok(n @ 1..) = e.read(&mut buf) {
                text.extend_from_slice(&buf[..n]);
                if text.len() > 1 << 16 {
                    break;
                }
            }
        }
        super::remote::last_lines(&String::from_utf8_lossy(&text), 3)
    }
}

impl Drop for ProxyChild {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// Appends `line` to `file` (made if missing, on a line of its own).
fn append_line(file: &Path, line: &str) -> io::Result<()> {
    // As ssh makes ~/.ssh for its first known host: private.
    if let Some(dir) = file
        .parent()
        .filter(|d| !d.as_os_str().is_empty() && !d.exists())
    {
        use std::os::unix::fs::DirBuilderExt;
        std::fs::DirBuilder::new()
            .mode(0o700)
            .recursive(true)
            .create(dir)?;
    }
    let ends_open = std::fs::read(file).is_ok_and(|b| b.last().is_some_and(|&c| c != b'\n'));
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    if ends_open {
        f.write_all(b"\n")?;
    }
    f.write_all(line.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_address_of_a_name_is_tried_in_order() {
        // One that refuses (a port nothing listens on), then one that
        // answers: the second is reached.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let refusing = closed.local_addr().unwrap();
        drop(closed);
        let open = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target {
            host: "h".into(),
            port: 22,
            user: "u".into(),
            key_alias: None,
            proxy: None,
            connect_timeout: Duration::from_secs(5),
            idle_limit: Duration::from_secs(5),
            keepalive: 2,
        };
        let deadline = Instant::now() + Duration::from_secs(5);
        let addrs = [refusing, open.local_addr().unwrap()];
        let s = connect_addrs(&addrs, &target, deadline, &|| false).unwrap();
        assert_eq!(s.peer_addr().unwrap(), addrs[1]);
        // All refusing: refused, at once.
        let t0 = Instant::now();
        let e = connect_addrs(&[refusing], &target, deadline, &|| false).unwrap_err();
        assert!(matches!(e, ConnectError::Refused { .. }), "{e}");
        assert!(t0.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn the_throttle_bounds_turns() {
        let t = Throttle::new(2);
        let in_flight = std::sync::atomic::AtomicUsize::new(0);
        let most = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let _p = t.acquire();
                    let n = in_flight.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                    most.fetch_max(n, std::sync::atomic::Ordering::SeqCst);
                    std::thread::sleep(Duration::from_millis(10));
                    in_flight.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                });
            }
        });
        assert!(most.load(std::sync::atomic::Ordering::SeqCst) <= 2);
    }
}
