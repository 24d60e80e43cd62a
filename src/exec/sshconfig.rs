//! The user's ssh configuration, read as `ssh` reads it: which address,
//! port, user, keys, known_hosts files and proxy a host name of `--hosts`
//! stands for (ssh_config(5)).
//!
//! Where OpenSSH's client is installed, its own resolver decides: `ssh -G
//! HOST` prints the effective settings for a host, with every rule of
//! ssh_config applied (Match of every kind, Include, canonicalisation,
//! first value wins). Without it, [`builtin`] reads the files itself:
//! Host and Match (`all`, `host`, `originalhost`, `user`, `localuser`,
//! `exec`, negated with `!`), Include (globs, nested, inside blocks), the
//! first value of each keyword, and the `%` tokens and `~` of OpenSSH.
//! Both give the same `keyword value` lines, turned into one
//! [`HostConfig`] the same way; the unit tests compare the two.
//!
//! The keywords gmr honours are those of [`HostConfig`]; any other is
//! left to ssh (ciphers, forwarding, ...) and makes no difference to gmr.
//! `CertificateFile` is refused with a clear message: libssh2 cannot log
//! in with a certificate.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Which configuration files are read (`--ssh-config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ConfigFiles {
    /// `~/.ssh/config`, then `/etc/ssh/ssh_config`, as `ssh` reads them.
    Default,
    /// This file alone, as `ssh -F FILE` (`none`: no file at all).
    File(PathBuf),
}

/// What the command line says of one host, before the configuration.
#[derive(Debug, Clone)]
pub(crate) struct Request<'a> {
    /// The name as given in `--hosts` (an alias, maybe).
    pub(crate) alias: &'a str,
    /// `user@`, which wins over `User`.
    pub(crate) user: Option<&'a str>,
    /// `:port`, which wins over `Port`.
    pub(crate) port: Option<u16>,
    /// `--identity`, tried before the configuration's keys.
    pub(crate) identity: Option<&'a Path>,
}

/// `StrictHostKeyChecking`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strict {
    /// `yes`, and `ask` (gmr cannot ask): an unknown host is refused.
    Yes,
    /// `accept-new`, and `no`: an unknown host's key is recorded. A
    /// changed key is refused whatever the setting.
    AcceptNew,
}

/// How a host is reached through another program or host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Proxy {
    /// `ProxyCommand`, its tokens expanded: a shell command whose stdin
    /// and stdout are the connection.
    Command(String),
    /// `ProxyJump`: `[user@]host[:port]` hops, the first reached first.
    Jump(String),
}

/// The effective settings of one host that gmr uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostConfig {
    /// The name given (ssh's `%n`).
    pub(crate) alias: String,
    /// `HostName`: what is connected to.
    pub(crate) hostname: String,
    /// `Port`.
    pub(crate) port: u16,
    /// `User`.
    pub(crate) user: String,
    /// `IdentityFile`s, expanded, in order (ssh's defaults when none).
    pub(crate) identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly`: the agent's keys are not offered.
    pub(crate) identities_only: bool,
    /// `IdentityAgent`: `None` for `$SSH_AUTH_SOCK`, `Some("none")` for no
    /// agent, else the socket.
    pub(crate) identity_agent: Option<String>,
    /// `CertificateFile`s (refused when connecting).
    pub(crate) certificate_files: Vec<PathBuf>,
    /// `UserKnownHostsFile`: the first is where new keys go.
    pub(crate) user_known_hosts: Vec<PathBuf>,
    /// `GlobalKnownHostsFile`.
    pub(crate) global_known_hosts: Vec<PathBuf>,
    /// `StrictHostKeyChecking`.
    pub(crate) strict: Strict,
    /// `HostKeyAlias`: the name known_hosts knows the host by.
    pub(crate) host_key_alias: Option<String>,
    /// `HashKnownHosts`: new known_hosts lines are written hashed.
    pub(crate) hash_known_hosts: bool,
    /// `ConnectTimeout`, in seconds.
    pub(crate) connect_timeout: Option<u64>,
    /// `ServerAliveInterval` (0: off) and `ServerAliveCountMax`.
    pub(crate) server_alive: (u64, u64),
    /// `ProxyCommand` or `ProxyJump`.
    pub(crate) proxy: Option<Proxy>,
}

/// The key files ssh tries when the configuration names none, in its
/// order (those libssh2 can use).
pub(crate) const DEFAULT_KEYS: [&str; 5] = [
    "id_rsa",
    "id_ecdsa",
    "id_ecdsa_sk",
    "id_ed25519",
    "id_ed25519_sk",
];

/// The effective settings for `req`: from `ssh -G` where OpenSSH's client
/// runs, else from [`builtin`]. The error is one line for the user.
pub(crate) fn resolve(files: &ConfigFiles, req: &Request) -> Result<HostConfig, String> {
    let lines = match openssh(files, req) {
        Some(lines) => lines?,
        None => builtin(files, req, &Local::get())?,
    };
    from_lines(req.alias, &lines, &Local::get())
}

/// This machine's side of the `%` tokens.
#[derive(Debug, Clone)]
pub(crate) struct Local {
    user: String,
    home: PathBuf,
    uid: u32,
    hostname: String,
}

impl Local {
    fn get() -> Local {
        // SAFETY: getuid cannot fail.
        let uid = unsafe { libc::getuid() };
        let mut buf = [0u8; 256];
        // SAFETY: gethostname writes at most buf.len() bytes.
        let hostname = match unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) } {
            0 => {
                let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
                String::from_utf8_lossy(&buf[..end]).into_owned()
            }
            _ => "localhost".into(),
        };
        Local {
            user: local_user(),
            home: home_dir(),
            uid,
            hostname,
        }
    }
}

/// The user name on this machine (the default login on hosts).
pub(crate) fn local_user() -> String {
    if let Some(u) = std::env::var_os("USER").and_then(|u| u.into_string().ok())
        && !u.is_empty()
    {
        return u;
    }
    // SAFETY: getpwuid returns a pointer to static storage or null; it is
    // read at once, before another call could change it.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_name.is_null() {
            return std::ffi::CStr::from_ptr((*pw).pw_name)
                .to_string_lossy()
                .into_owned();
        }
    }
    "root".to_string()
}

/// The home directory: `$HOME`, else the password database's.
pub(crate) fn home_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    // SAFETY: as in local_user.
    unsafe {
        let pw = libc::getpwuid(libc::getuid());
        if !pw.is_null() && !(*pw).pw_dir.is_null() {
            return PathBuf::from(
                std::ffi::CStr::from_ptr((*pw).pw_dir)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
    }
    PathBuf::from("/")
}

/// `ssh -G`'s answer, or `None` where no OpenSSH client runs here.
fn openssh(files: &ConfigFiles, req: &Request) -> Option<Result<Vec<(String, String)>, String>> {
    let mut cmd = Command::new("ssh");
    cmd.arg("-G");
    if let ConfigFiles::File(f) = files {
        cmd.arg("-F").arg(f);
    }
    if let Some(u) = req.user {
        cmd.args(["-l", u]);
    }
    if let Some(p) = req.port {
        cmd.args(["-p", &p.to_string()]);
    }
    if let Some(i) = req.identity {
        cmd.arg("-i").arg(i);
    }
    cmd.arg("--").arg(req.alias);
    let out = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() || !stdout.lines().any(|l| l.starts_with("hostname ")) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        let why: Vec<&str> = stderr
            .lines()
            .filter(|l| !l.starts_with("Pseudo-terminal"))
            .collect();
        return Some(Err(format!(
            "the ssh configuration for `{}` is refused by `ssh -G`: {}",
            req.alias,
            why.join("; ").trim()
        )));
    }
    Some(Ok(stdout
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()))
}

/// The `keyword value` lines `ssh -G` would print for the keywords gmr
/// uses, read by gmr itself.
pub(crate) fn builtin(
    files: &ConfigFiles,
    req: &Request,
    local: &Local,
) -> Result<Vec<(String, String)>, String> {
    let mut p = Parser {
        req,
        local,
        first: HashMap::new(),
        identity_files: Vec::new(),
        certificate_files: Vec::new(),
    };
    if let Some(u) = req.user {
        p.first.insert("user", u.to_string());
    }
    if let Some(port) = req.port {
        p.first.insert("port", port.to_string());
    }
    if let Some(i) = req.identity {
        p.identity_files.push(i.display().to_string());
    }
    match files {
        ConfigFiles::File(f) if f.as_os_str() == "none" => {}
        ConfigFiles::File(f) => p.read(f, true, 0, &mut true, false)?,
        ConfigFiles::Default => {
            let user = local.home.join(".ssh/config");
            if user.exists() {
                p.read(&user, true, 0, &mut true, true)?;
            }
            let system = Path::new("/etc/ssh/ssh_config");
            if system.exists() {
                p.read(system, false, 0, &mut true, false)?;
            }
        }
    }
    Ok(p.finish())
}

/// Keywords whose first value wins; the rest of ssh's are not gmr's.
const SINGLE: &[&str] = &[
    "hostname",
    "port",
    "user",
    "identitiesonly",
    "identityagent",
    "userknownhostsfile",
    "globalknownhostsfile",
    "stricthostkeychecking",
    "hostkeyalias",
    "hashknownhosts",
    "connecttimeout",
    "serveraliveinterval",
    "serveralivecountmax",
];

struct Parser<'a> {
    req: &'a Request<'a>,
    local: &'a Local,
    first: HashMap<&'static str, String>,
    identity_files: Vec<String>,
    certificate_files: Vec<String>,
}

impl Parser<'_> {
    /// Reads one file; `user` files resolve a relative Include against
    /// `~/.ssh`, the system's against `/etc/ssh`. `active` is whether the
    /// lines apply (a Host or Match above matched).
    fn read(
        &mut self,
        path: &Path,
        user: bool,
        depth: usize,
        active: &mut bool,
        check_perms: bool,
    ) -> Result<(), String> {
        let where_ = |n: usize| format!("{} line {n}", path.display());
        if depth > 16 {
            return Err(format!(
                "{}: Include nested too deeply (a loop?)",
                path.display()
            ));
        }
        if check_perms {
            check_owner(path)?;
        }
        let text = std::fs::read(path)
            .map_err(|e| format!("cannot read the ssh configuration {}: {e}", path.display()))?;
        let text = String::from_utf8_lossy(&text);
        for (i, line) in text.lines().enumerate() {
            let n = i + 1;
            let Some((keyword, args)) =
                split_line(line).map_err(|e| format!("{}: {e}", where_(n)))?
            else {
                continue;
            };
            let keyword = keyword.to_ascii_lowercase();
            match keyword.as_str() {
                "host" => *active = self.host_matches(&args),
                "match" => {
                    *active = self
                        .match_line(&args)
                        .map_err(|e| format!("{}: {e}", where_(n)))?;
                }
                "include" if *active => {
                    for arg in &args {
                        let expanded = tilde(arg, &self.local.home);
                        let pattern = if Path::new(&expanded).is_absolute() {
                            expanded
                        } else if user {
                            self.local
                                .home
                                .join(".ssh")
                                .join(&expanded)
                                .display()
                                .to_string()
                        } else {
                            format!("/etc/ssh/{expanded}")
                        };
                        for file in glob_files(&pattern) {
                            let saved = *active;
                            self.read(&file, user, depth + 1, active, user)?;
                            *active = saved;
                        }
                    }
                }
                _ if !*active => {}
                "identityfile" => self.identity_files.extend(args.first().cloned()),
                "certificatefile" => self.certificate_files.extend(args.first().cloned()),
                "proxycommand" | "proxyjump" => {
                    if !self.first.contains_key("proxycommand")
                        && !self.first.contains_key("proxyjump")
                    {
                        let value = match keyword.as_str() {
                            // The rest of the line is the command.
                            "proxycommand" => rest_of_line(line),
                            _ => args.join(" "),
                        };
                        let key = if keyword == "proxycommand" {
                            "proxycommand"
                        } else {
                            "proxyjump"
                        };
                        self.first.insert(key, value);
                    }
                }
                k => {
                    if let Some(&k) = SINGLE.iter().find(|&&s| s == k) {
                        self.first.entry(k).or_insert_with(|| args.join(" "));
                    }
                }
            }
        }
        Ok(())
    }

    /// `Host` patterns: one matches the name given and no negated one does.
    fn host_matches(&self, patterns: &[String]) -> bool {
        let name = self.req.alias.to_ascii_lowercase();
        let mut matched = false;
        for p in patterns {
            let p = p.to_ascii_lowercase();
            match p.strip_prefix('!') {
                Some(neg) if glob(neg, &name) => return false,
                Some(_) => {}
                None => matched |= glob(&p, &name),
            }
        }
        matched
    }

    /// The host name so far: `HostName` with `%h` expanded, or the name.
    fn hostname_now(&self) -> String {
        match self.first.get("hostname") {
            Some(h) => expand_hostname(h, self.req.alias),
            None => self.req.alias.to_string(),
        }
    }

    /// Evaluates a `Match` line: every criterion must hold.
    fn match_line(&self, args: &[String]) -> Result<bool, String> {
        let mut all = true;
        let mut i = 0;
        while i < args.len() {
            let raw = args[i].to_ascii_lowercase();
            let (negate, criterion) = match raw.strip_prefix('!') {
                Some(c) => (true, c.to_string()),
                None => (false, raw.clone()),
            };
            i += 1;
            let result = match criterion.as_str() {
                "all" => true,
                "host" | "originalhost" | "user" | "localuser" | "exec" => {
                    let Some(value) = args.get(i) else {
                        return Err(format!("Match {criterion} needs an argument"));
                    };
                    i += 1;
                    match criterion.as_str() {
                        "host" => pattern_list(value, &self.hostname_now()),
                        "originalhost" => pattern_list(value, self.req.alias),
                        "user" => {
                            let user = self.first.get("user").unwrap_or(&self.local.user);
                            pattern_list(value, user)
                        }
                        "localuser" => pattern_list(value, &self.local.user),
                        _ => {
                            let cmd = self.expand(value)?;
                            Command::new("/bin/sh")
                                .args(["-c", &cmd])
                                .stdin(Stdio::null())
                                .stdout(Stdio::null())
                                .stderr(Stdio::null())
                                .status()
                                .is_ok_and(|s| s.success())
                        }
                    }
                }
                other => {
                    return Err(format!(
                        "`Match {other}` needs OpenSSH's ssh, which is not installed here (gmr reads Match all, host, originalhost, user, localuser and exec itself)"
                    ));
                }
            };
            all &= result != negate;
        }
        Ok(all)
    }

    /// Tokens as in a `Match exec` command, with what is known so far.
    fn expand(&self, value: &str) -> Result<String, String> {
        let port = self
            .first
            .get("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(22);
        let user = self.first.get("user").unwrap_or(&self.local.user);
        Tokens {
            local: self.local,
            alias: self.req.alias,
            hostname: &self.hostname_now(),
            port,
            user,
            key_alias: self.first.get("hostkeyalias").map(String::as_str),
        }
        .expand(value)
    }

    /// The `keyword value` lines, with ssh's defaults, as `ssh -G` prints
    /// them.
    fn finish(mut self) -> Vec<(String, String)> {
        let local = self.local;
        let alias = self.req.alias;
        let mut out: Vec<(String, String)> = Vec::new();
        let mut put = |k: &str, v: String| out.push((k.to_string(), v));
        let user = self.first.remove("user").unwrap_or(local.user.clone());
        let hostname = self.hostname_now().to_ascii_lowercase();
        let port: u16 = self
            .first
            .remove("port")
            .and_then(|p| p.parse().ok())
            .unwrap_or(22);
        put("user", user.clone());
        put("hostname", hostname.clone());
        put("port", port.to_string());
        if self.identity_files.is_empty() {
            self.identity_files = DEFAULT_KEYS.iter().map(|k| format!("~/.ssh/{k}")).collect();
        }
        for f in &self.identity_files {
            put("identityfile", f.clone());
        }
        for f in &self.certificate_files {
            put("certificatefile", f.clone());
        }
        let yes_no = |v: Option<String>| match v.as_deref().map(str::to_ascii_lowercase) {
            Some(v) if v == "yes" || v == "true" => "yes".to_string(),
            _ => "no".to_string(),
        };
        put(
            "identitiesonly",
            yes_no(self.first.remove("identitiesonly")),
        );
        put(
            "hashknownhosts",
            yes_no(self.first.remove("hashknownhosts")),
        );
        let strict = match self
            .first
            .remove("stricthostkeychecking")
            .map(|s| s.to_ascii_lowercase())
            .as_deref()
        {
            Some("yes" | "true") => "true",
            Some("no" | "false" | "off") => "false",
            Some("accept-new") => "accept-new",
            _ => "ask",
        };
        put("stricthostkeychecking", strict.to_string());
        let key_alias = self.first.get("hostkeyalias").cloned();
        let tokens = Tokens {
            local,
            alias,
            hostname: &hostname,
            port,
            user: &user,
            key_alias: key_alias.as_deref(),
        };
        let known = self
            .first
            .remove("userknownhostsfile")
            .unwrap_or_else(|| "~/.ssh/known_hosts ~/.ssh/known_hosts2".into());
        let known: Vec<String> = known
            .split_whitespace()
            .map(|f| {
                let f = tilde(f, &local.home);
                tokens.expand(&f).unwrap_or(f)
            })
            .collect();
        put("userknownhostsfile", known.join(" "));
        put(
            "globalknownhostsfile",
            self.first
                .remove("globalknownhostsfile")
                .unwrap_or_else(|| "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2".into()),
        );
        if let Some(a) = key_alias {
            put("hostkeyalias", a);
        }
        put(
            "connecttimeout",
            self.first
                .remove("connecttimeout")
                .unwrap_or_else(|| "none".into()),
        );
        put(
            "serveraliveinterval",
            self.first
                .remove("serveraliveinterval")
                .unwrap_or_else(|| "0".into()),
        );
        put(
            "serveralivecountmax",
            self.first
                .remove("serveralivecountmax")
                .unwrap_or_else(|| "3".into()),
        );
        for k in ["identityagent", "proxycommand", "proxyjump"] {
            if let Some(v) = self.first.remove(k) {
                put(k, v);
            }
        }
        out
    }
}

/// The settings gmr uses, from `ssh -G`-style lines.
pub(crate) fn from_lines(
    alias: &str,
    lines: &[(String, String)],
    local: &Local,
) -> Result<HostConfig, String> {
    let get = |k: &str| {
        lines
            .iter()
            .find(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
    };
    let all = |k: &str| -> Vec<&str> {
        lines
            .iter()
            .filter(|(key, _)| key == k)
            .map(|(_, v)| v.as_str())
            .collect()
    };
    let bad = |k: &str, v: &str| format!("ssh configuration for `{alias}`: bad {k} `{v}`");
    let hostname = get("hostname").unwrap_or(alias).to_string();
    let port = match get("port") {
        Some(p) => p.parse::<u16>().map_err(|_| bad("Port", p))?,
        None => 22,
    };
    let user = get("user").unwrap_or(&local.user).to_string();
    let key_alias = get("hostkeyalias")
        .filter(|a| !a.eq_ignore_ascii_case("none"))
        .map(str::to_string);
    let tokens = Tokens {
        local,
        alias,
        hostname: &hostname,
        port,
        user: &user,
        key_alias: key_alias.as_deref(),
    };
    let path = |v: &str| -> Result<PathBuf, String> {
        Ok(PathBuf::from(tokens.expand(&tilde(v, &local.home))?))
    };
    let paths = |k: &str| -> Result<Vec<PathBuf>, String> {
        all(k)
            .into_iter()
            .filter(|v| !v.eq_ignore_ascii_case("none"))
            .map(path)
            .collect()
    };
    let words = |k: &str| -> Vec<PathBuf> {
        get(k)
            .unwrap_or("")
            .split_whitespace()
            .filter(|v| !v.eq_ignore_ascii_case("none"))
            .map(|v| PathBuf::from(tilde(v, &local.home)))
            .collect()
    };
    let secs = |k: &str| -> Result<Option<u64>, String> {
        match get(k) {
            None | Some("none") => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| bad(k, v)),
        }
    };
    let proxy = match (get("proxycommand"), get("proxyjump")) {
        (Some(c), _) if !c.eq_ignore_ascii_case("none") => Some(Proxy::Command(tokens.expand(c)?)),
        (_, Some(j)) if !j.eq_ignore_ascii_case("none") => Some(Proxy::Jump(j.to_string())),
        _ => None,
    };
    Ok(HostConfig {
        alias: alias.to_string(),
        hostname: hostname.clone(),
        port,
        user: user.clone(),
        identity_files: paths("identityfile")?,
        identities_only: get("identitiesonly") == Some("yes"),
        identity_agent: match get("identityagent") {
            None => None,
            Some(a) if a.eq_ignore_ascii_case("none") => Some("none".into()),
            Some("SSH_AUTH_SOCK") => None,
            Some(a) => Some(match a.strip_prefix('$') {
                Some(var) => std::env::var(var).unwrap_or_default(),
                None => path(a)?.display().to_string(),
            }),
        },
        certificate_files: paths("certificatefile")?,
        user_known_hosts: words("userknownhostsfile"),
        global_known_hosts: words("globalknownhostsfile"),
        strict: match get("stricthostkeychecking") {
            Some("accept-new" | "false" | "no" | "off") => Strict::AcceptNew,
            _ => Strict::Yes,
        },
        host_key_alias: key_alias.clone(),
        hash_known_hosts: get("hashknownhosts") == Some("yes"),
        connect_timeout: secs("connecttimeout")?,
        server_alive: (
            secs("serveraliveinterval")?.unwrap_or(0),
            secs("serveralivecountmax")?.unwrap_or(3),
        ),
        proxy,
    })
}

/// The values of OpenSSH's `%` tokens for one host.
struct Tokens<'a> {
    local: &'a Local,
    alias: &'a str,
    hostname: &'a str,
    port: u16,
    user: &'a str,
    key_alias: Option<&'a str>,
}

impl Tokens<'_> {
    /// Replaces `%h`, `%p`, `%r`, ... as ssh_config(5) "TOKENS" says.
    fn expand(&self, s: &str) -> Result<String, String> {
        let mut out = String::with_capacity(s.len());
        let mut chars = s.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                out.push(c);
                continue;
            }
            let short = self.local.hostname.split('.').next().unwrap_or("");
            match chars.next() {
                Some('%') => out.push('%'),
                Some('h') => out.push_str(self.hostname),
                Some('n') => out.push_str(self.alias),
                Some('p') => out.push_str(&self.port.to_string()),
                Some('r') => out.push_str(self.user),
                Some('u') => out.push_str(&self.local.user),
                Some('d') => out.push_str(&self.local.home.display().to_string()),
                Some('i') => out.push_str(&self.local.uid.to_string()),
                Some('l') => out.push_str(&self.local.hostname),
                Some('L') => out.push_str(short),
                Some('k') => out.push_str(self.key_alias.unwrap_or(self.alias)),
                Some('C') => {
                    use sha1::Digest as _;
                    let text = format!(
                        "{}{}{}{}",
                        self.local.hostname, self.hostname, self.port, self.user
                    );
                    for b in sha1::Sha1::digest(text.as_bytes()) {
                        out.push_str(&format!("{b:02x}"));
                    }
                }
                Some(t) => return Err(format!("unknown token %{t} in `{s}`")),
                None => return Err(format!("a lone % at the end of `{s}`")),
            }
        }
        Ok(out)
    }
}

/// The command that reaches `host:port` through the hops of a
/// `ProxyJump` (`[user@]host[:port]`, comma-separated, the first reached
/// first), as ssh itself does it: `ssh -W` to the last hop, through the
/// others with `-J`. That ssh reads the same configuration (`-F`), and
/// never asks anything (`BatchMode`): gmr has no terminal to answer on.
pub(crate) fn jump_command(
    hops: &str,
    files: &ConfigFiles,
    host: &str,
    port: u16,
) -> Result<String, String> {
    use crate::exec::remote::shell_quote;
    let (extra, last) = match hops.rsplit_once(',') {
        Some((extra, last)) => (Some(extra), last),
        None => (None, hops),
    };
    let last = last.strip_prefix("ssh://").unwrap_or(last);
    let entry =
        crate::exec::hosts::parse_entry(last).map_err(|e| format!("ProxyJump `{hops}`: {e}"))?;
    let crate::exec::hosts::Place::Remote {
        user,
        host: jump,
        port: jump_port,
    } = entry.place
    else {
        return Err(format!("ProxyJump `{hops}`: `{last}` is not a host"));
    };
    let mut cmd = String::from("ssh -o BatchMode=yes");
    if let ConfigFiles::File(f) = files {
        cmd.push_str(&format!(" -F {}", shell_quote(&f.display().to_string())));
    }
    if let Some(u) = user {
        cmd.push_str(&format!(" -l {}", shell_quote(&u)));
    }
    if let Some(p) = jump_port {
        cmd.push_str(&format!(" -p {p}"));
    }
    if let Some(extra) = extra {
        cmd.push_str(&format!(" -J {}", shell_quote(extra)));
    }
    cmd.push_str(&format!(
        " -W {} -- {}",
        shell_quote(&format!("[{host}]:{port}")),
        shell_quote(&jump)
    ));
    Ok(cmd)
}

/// `HostName` with `%h` (the name given) and `%%` expanded.
fn expand_hostname(value: &str, alias: &str) -> String {
    value.replace("%h", alias).replace("%%", "%")
}

/// `~/` at the start of a path is the home directory.
fn tilde(s: &str, home: &Path) -> String {
    match s.strip_prefix("~/") {
        Some(rest) => home.join(rest).display().to_string(),
        None if s == "~" => home.display().to_string(),
        None => s.to_string(),
    }
}

/// OpenSSH's pattern match, without regard to case (`*`, `?`).
fn glob(pattern: &str, text: &str) -> bool {
    crate::exec::knownhosts::glob(
        pattern.to_ascii_lowercase().as_bytes(),
        text.to_ascii_lowercase().as_bytes(),
    )
}

/// A comma-separated list of patterns with `!` negation, as Match reads
/// it: one matches and no negated one does.
fn pattern_list(list: &str, text: &str) -> bool {
    let mut matched = false;
    for p in list.split(',') {
        match p.strip_prefix('!') {
            Some(neg) if glob(neg, text) => return false,
            Some(_) => {}
            None => matched |= glob(p, text),
        }
    }
    matched
}

/// The files a glob pattern names, sorted (as glob(3) returns them).
fn glob_files(pattern: &str) -> Vec<PathBuf> {
    let path = Path::new(pattern);
    let (Some(dir), Some(name)) = (path.parent(), path.file_name()) else {
        return Vec::new();
    };
    let name = name.to_string_lossy();
    if !name.contains(['*', '?']) {
        return if path.exists() {
            vec![path.to_path_buf()]
        } else {
            Vec::new()
        };
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| {
            let n = e.file_name().to_string_lossy().into_owned();
            !n.starts_with('.') && glob(&name, &n) && e.path().is_file()
        })
        .map(|e| e.path())
        .collect();
    found.sort();
    found
}

/// As ssh: a user's configuration file writable by others is refused.
fn check_owner(path: &Path) -> Result<(), String> {
    use std::os::unix::fs::MetadataExt;
    let Ok(meta) = std::fs::metadata(path) else {
        return Ok(());
    };
    // SAFETY: getuid cannot fail.
    let me = unsafe { libc::getuid() };
    if (meta.uid() != me && meta.uid() != 0) || meta.mode() & 0o022 != 0 {
        return Err(format!(
            "bad owner or permissions on {}: it must be yours and writable by you alone (chmod go-w {}), as ssh requires",
            path.display(),
            path.display()
        ));
    }
    Ok(())
}

/// The keyword and arguments of a configuration line (`None` for a blank
/// line or a comment). `Keyword value`, `Keyword=value`; arguments may be
/// quoted with `"`.
fn split_line(line: &str) -> Result<Option<(String, Vec<String>)>, String> {
    let line = line.trim_start();
    if line.is_empty() || line.starts_with('#') {
        return Ok(None);
    }
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let keyword = line[..end].to_string();
    let mut rest = line[end..].trim_start();
    if let Some(r) = rest.strip_prefix('=') {
        rest = r.trim_start();
    }
    let mut args = Vec::new();
    let mut cur = String::new();
    let mut in_arg = false;
    let mut quote: Option<char> = None;
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), '\\') => match chars.next() {
                Some(n) => cur.push(n),
                None => cur.push('\\'),
            },
            (Some(_), c) => cur.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                in_arg = true;
            }
            (None, '#') if !in_arg => break,
            (None, c) if c.is_whitespace() => {
                if in_arg {
                    args.push(std::mem::take(&mut cur));
                    in_arg = false;
                }
            }
            (None, c) => {
                cur.push(c);
                in_arg = true;
            }
        }
    }
    if quote.is_some() {
        return Err("a quote without its end".into());
    }
    if in_arg {
        args.push(cur);
    }
    Ok(Some((keyword, args)))
}

/// What follows the keyword (and `=`) of a line, as is: ProxyCommand's
/// command.
fn rest_of_line(line: &str) -> String {
    let line = line.trim_start();
    let end = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let rest = line[end..].trim_start();
    rest.strip_prefix('=').unwrap_or(rest).trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn local() -> Local {
        Local {
            user: "me".into(),
            home: PathBuf::from("/home/me"),
            uid: 1000,
            hostname: "here.example".into(),
        }
    }

    fn lines_of(config: &str, alias: &str, user: Option<&str>, port: Option<u16>) -> HostConfig {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("config");
        std::fs::write(&file, config).unwrap();
        let req = Request {
            alias,
            user,
            port,
            identity: None,
        };
        let lines = builtin(&ConfigFiles::File(file), &req, &local()).unwrap();
        from_lines(alias, &lines, &local()).unwrap()
    }

    #[test]
    fn first_value_wins_and_flags_win_over_the_file() {
        let c = lines_of(
            "Host a*\n  Port 2200\n  User bob\nHost *\n  Port 9\n  HostName %h.example\n",
            "alpha",
            None,
            None,
        );
        assert_eq!(
            (c.hostname.as_str(), c.port, c.user.as_str()),
            ("alpha.example", 2200, "bob")
        );
        let c = lines_of("Host *\n Port=9\n User = bob\n", "x", Some("eve"), Some(7));
        assert_eq!((c.port, c.user.as_str()), (7, "eve"));
    }

    #[test]
    fn negated_patterns_and_match() {
        let cfg = "Host * !skip\n  Port 1\nMatch originalhost m* user bob\n  Port 2\nMatch !host x*\n  User bob\n";
        assert_eq!(lines_of(cfg, "skip", None, None).port, 22);
        assert_eq!(lines_of(cfg, "keep", None, None).port, 1);
        let c = lines_of(
            "Match originalhost m* user bob\n  Port 2\n",
            "mine",
            Some("bob"),
            None,
        );
        assert_eq!(c.port, 2);
        let c = lines_of(
            "Match originalhost m* user bob\n  Port 2\n",
            "mine",
            None,
            None,
        );
        assert_eq!(c.port, 22);
    }

    #[test]
    fn tokens_and_tildes() {
        let c = lines_of(
            "Host n\n HostName 10.0.0.5\n User u\n Port 2\n IdentityFile ~/k/%h-%r-%p-%n-%u\n ProxyCommand nc %h %p\n UserKnownHostsFile ~/kh /x/%k\n",
            "n",
            None,
            None,
        );
        assert_eq!(
            c.identity_files,
            vec![PathBuf::from("/home/me/k/10.0.0.5-u-2-n-me")]
        );
        assert_eq!(c.proxy, Some(Proxy::Command("nc 10.0.0.5 2".into())));
        assert_eq!(
            c.user_known_hosts,
            vec![PathBuf::from("/home/me/kh"), PathBuf::from("/x/n")]
        );
    }

    #[test]
    fn lines_split_as_ssh_splits_them() {
        let l = |s: &str| split_line(s).unwrap();
        assert_eq!(l("  # c"), None);
        assert_eq!(
            l("IdentityFile \"/a b/k\" # c"),
            Some(("IdentityFile".into(), vec!["/a b/k".into()]))
        );
        assert_eq!(l("Port=22"), Some(("Port".into(), vec!["22".into()])));
        assert!(split_line("User \"x").is_err());
    }

    /// The table of configurations the builtin reader and `ssh -G` must
    /// agree on, key by key.
    #[test]
    fn the_builtin_reader_agrees_with_ssh_g() {
        if Command::new("ssh").arg("-V").output().is_err() {
            panic!(
                "OpenSSH's ssh is needed to check the reader against `ssh -G` (scripts/test installs openssh-client)"
            );
        }
        let dir = tempfile::tempdir().unwrap();
        let inc = dir.path().join("inc.d");
        std::fs::create_dir(&inc).unwrap();
        std::fs::write(
            inc.join("a.conf"),
            "Host inc*\n  HostName included.example\n  Port 2201\n",
        )
        .unwrap();
        std::fs::write(inc.join("b.conf"), "Host inc2\n  User fromb\n").unwrap();
        let configs = [
            "Host node1\n  HostName 10.0.0.5\n  Port 2288\n  User alice\n  IdentityFile /keys/%h-%r\n  IdentitiesOnly yes\n",
            "Host *.lab !bad.lab\n  User lab\n  StrictHostKeyChecking accept-new\nHost *\n  HashKnownHosts yes\n  ConnectTimeout 7\n",
            "Host a b c\n  HostKeyAlias shared\n  UserKnownHostsFile /tmp/kh1 /tmp/kh-%h-%p\n  GlobalKnownHostsFile /etc/g1\n",
            "Match host 10.* user alice\n  Port 3000\nHost x\n  HostName 10.1.1.1\n  User alice\nHost *\n  ServerAliveInterval 5\n  ServerAliveCountMax 2\n",
            "Host j\n  ProxyJump bob@jump1:2200,jump2\nHost p\n  ProxyCommand nc %h %p\n  ProxyJump ignored\n",
            "Host y\n  StrictHostKeyChecking no\n  IdentityAgent none\nMatch originalhost x* !localuser nobody\n  User m\n",
            "Port 1234\nHost *\n  User=eq\n",
            &format!(
                "Include {}/inc.d/*.conf\nHost *\n  Port 9\n",
                dir.path().display()
            ),
            &format!(
                "Host inc*\n  Include {}/inc.d/b.conf\n",
                dir.path().display()
            ),
        ];
        let hosts = [
            "node1", "a.lab", "bad.lab", "b", "x", "j", "p", "y", "x1", "inc1", "inc2", "other",
        ];
        // Every keyword gmr reads: the single-valued ones and the rest.
        let keys: Vec<&str> = SINGLE
            .iter()
            .copied()
            .chain(["identityfile", "proxyjump", "proxycommand"])
            .collect();
        let local = Local::get();
        for (n, config) in configs.iter().enumerate() {
            let file = dir.path().join(format!("config{n}"));
            std::fs::write(&file, config).unwrap();
            let files = ConfigFiles::File(file);
            for host in hosts {
                for user in [None, Some("alice")] {
                    let req = Request {
                        alias: host,
                        user,
                        port: None,
                        identity: None,
                    };
                    let ours = builtin(&files, &req, &local).unwrap();
                    let theirs = openssh(&files, &req).unwrap().unwrap();
                    for &key in &keys {
                        let pick = |l: &[(String, String)]| -> Vec<String> {
                            l.iter()
                                .filter(|(k, v)| {
                                    k == key
                                        && !(k == "identityfile"
                                            && (v.ends_with("id_xmss") || v.ends_with("id_dsa")))
                                })
                                .map(|(_, v)| v.clone())
                                .collect()
                        };
                        assert_eq!(
                            pick(&ours),
                            pick(&theirs),
                            "{key} for {host} (user {user:?}) with config:\n{config}"
                        );
                    }
                }
            }
        }
    }
}
