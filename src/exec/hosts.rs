//! The hosts of a distributed run (`--hosts`): a hosts file, or an inline
//! comma-separated list, in GNU parallel's sshlogin syntax.
//!
//! Each entry is `[N/][user@]host[:port]`, or `[N/]:` for this machine's
//! own slots (tasks run in-process there, as without `--hosts`). `N/` gives
//! the host N slots (task attempts at once); without it a remote host gets
//! as many slots as it reports cores (`nproc`, asked over the connection)
//! and `:` gets `-j` (default: this machine's cores). An IPv6 address goes
//! in brackets, `[::1]:2222`. In a file, `#` starts a comment and blank
//! lines are ignored.
//!
//! Whether `--hosts VALUE` is a file or a list: a VALUE that names an
//! existing file is read as a hosts file; any other VALUE is an inline list.
//! Host names cannot hold `/`, so an inline VALUE with a `/` other than an
//! `N/` prefix is reported as a hosts file that does not exist.

use crate::error::{Error, Result};
use std::fmt;
use std::path::Path;

/// The SSH port used when an entry names none.
pub(crate) const DEFAULT_PORT: u16 = 22;

/// Where one entry's slots run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Place {
    /// This machine (`:`), in-process.
    Local,
    /// A host reached over SSH.
    Remote {
        /// The login name (default: the local user).
        user: Option<String>,
        /// Host name or address (IPv6 without brackets).
        host: String,
        /// The port given (`:port`); else the ssh configuration's, or 22.
        port: Option<u16>,
    },
}

impl Place {
    /// The machine and port it names, however spelled: host names are
    /// case-insensitive and may end in a dot, and one sshd is the same
    /// machine whoever logs in (two entries for it would double its load).
    fn machine(&self) -> Option<(String, u16)> {
        match self {
            Place::Local => None,
            Place::Remote { host, port, .. } => Some((
                host.trim_end_matches('.').to_ascii_lowercase(),
                port.unwrap_or(DEFAULT_PORT),
            )),
        }
    }
}

/// One entry of a hosts list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostEntry {
    /// `N/`: the number of slots, when given.
    pub(crate) slots: Option<usize>,
    /// Where they run.
    pub(crate) place: Place,
}

impl fmt::Display for HostEntry {
    /// The name used in messages and the job log: `[user@]host[:port]`
    /// (the port only when it is not 22), or `local`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.place {
            Place::Local => f.write_str("local"),
            Place::Remote { user, host, port } => {
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                let bracketed = host.contains(':');
                match (bracketed, port.filter(|&p| p != DEFAULT_PORT)) {
                    (false, None) => write!(f, "{host}"),
                    (true, None) => write!(f, "[{host}]"),
                    (false, Some(p)) => write!(f, "{host}:{p}"),
                    (true, Some(p)) => write!(f, "[{host}]:{p}"),
                }
            }
        }
    }
}

/// Reads `--hosts VALUE`: the file it names, else the inline list it is
/// (see the module documentation for the rule).
pub(crate) fn load(value: &str) -> Result<Vec<HostEntry>> {
    let path = Path::new(value);
    if path.is_file() {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::input("cannot read hosts file", path, e))?;
        return parse(&text, &format!("hosts file {value}"), '\n');
    }
    let has_path_slash = value
        .split(',')
        .any(|e| strip_slots(e.trim()).1.contains('/'));
    if has_path_slash || path.is_dir() {
        return Err(Error::usage(format!(
            "--hosts {value}: no such hosts file (an inline list is host names separated by commas, e.g. --hosts 4/node1,node2:2222,:)"
        )));
    }
    parse(value, "--hosts", ',')
}

/// Parses a list of entries separated by `sep` (newline for a file, comma
/// inline); `origin` names it in messages.
pub(crate) fn parse(text: &str, origin: &str, sep: char) -> Result<Vec<HostEntry>> {
    let mut entries: Vec<HostEntry> = Vec::new();
    for (n, raw) in text.split(sep).enumerate() {
        let item = raw.split('#').next().unwrap_or("").trim();
        if item.is_empty() {
            continue;
        }
        let at = if sep == '\n' {
            format!("{origin} line {}", n + 1)
        } else {
            origin.to_string()
        };
        let entry = parse_entry(item).map_err(|e| Error::usage(format!("{at}: `{item}`: {e}")))?;
        if let Some(first) = entries
            .iter()
            .find(|e| e.place.machine() == entry.place.machine())
        {
            let same = match first.to_string() == entry.to_string() {
                true => String::new(),
                false => format!(" (as {first} before)"),
            };
            return Err(Error::usage(format!(
                "{at}: {entry} is listed twice{same}; give it more slots with N/ instead (e.g. 8/{first})"
            )));
        }
        entries.push(entry);
    }
    if entries.is_empty() {
        return Err(Error::usage(format!(
            "{origin} names no host; write one [N/][user@]host[:port] per line, or : for this machine"
        )));
    }
    Ok(entries)
}

/// Splits an optional `N/` prefix off.
fn strip_slots(item: &str) -> (Option<&str>, &str) {
    match item.split_once('/') {
        Some((n, rest)) if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) => {
            (Some(n), rest)
        }
        _ => (None, item),
    }
}

/// Parses one `[N/][user@]host[:port]` or `[N/]:`.
pub(crate) fn parse_entry(item: &str) -> std::result::Result<HostEntry, String> {
    let (slots, rest) = strip_slots(item);
    let slots = match slots {
        None => None,
        Some(n) => match n.parse::<usize>() {
            Ok(0) | Err(_) => return Err("the slot count N/ must be a positive number".into()),
            Ok(n) => Some(n),
        },
    };
    if rest == ":" {
        return Ok(HostEntry {
            slots,
            place: Place::Local,
        });
    }
    let (user, hostport) = match rest.rsplit_once('@') {
        Some((u, hp)) => {
            if u.is_empty()
                || !u
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
            {
                return Err(format!("`{u}` is not a user name"));
            }
            (Some(u.to_string()), hp)
        }
        None => (None, rest),
    };
    let (host, port) = split_host_port(hostport)?;
    let valid = |b: u8| b.is_ascii_alphanumeric() || b"._-:%".contains(&b);
    if host.is_empty() || !host.bytes().all(valid) || host.starts_with('-') {
        return Err(format!(
            "`{host}` is not a host name or address (expected [N/][user@]host[:port], or : for this machine)"
        ));
    }
    Ok(HostEntry {
        slots,
        place: Place::Remote {
            user,
            host: host.to_string(),
            port,
        },
    })
}

/// `host`, `host:port`, `[v6]`, `[v6]:port`, or a bare IPv6 address.
fn split_host_port(s: &str) -> std::result::Result<(&str, Option<u16>), String> {
    let parse_port = |p: &str| match p.parse::<u16>() {
        Ok(0) | Err(_) => Err(format!("`{p}` is not a port number (1-65535)")),
        Ok(p) => Ok(Some(p)),
    };
    if let Some(inner) = s.strip_prefix('[') {
        let (host, after) = inner
            .split_once(']')
            .ok_or_else(|| "a `[` without its `]`".to_string())?;
        return match after {
            "" => Ok((host, None)),
            _ => match after.strip_prefix(':') {
                Some(p) => Ok((host, parse_port(p)?)),
                None => Err(format!("unexpected `{after}` after `]`")),
            },
        };
    }
    match s.matches(':').count() {
        0 => Ok((s, None)),
        1 => {
            let (h, p) = s.split_once(':').expect("one colon");
            Ok((h, parse_port(p)?))
        }
        // A bare IPv6 address: write [addr]:port to give a port.
        _ => Ok((s, None)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(slots: Option<usize>, user: Option<&str>, host: &str, port: u16) -> HostEntry {
        HostEntry {
            slots,
            place: Place::Remote {
                user: user.map(str::to_string),
                host: host.into(),
                port: (port != 0).then_some(port),
            },
        }
    }

    #[test]
    fn entries_in_sshlogin_syntax() {
        assert_eq!(
            parse_entry("node1").unwrap(),
            remote(None, None, "node1", 0)
        );
        assert_eq!(
            parse_entry("8/alice@node2.example.org:2222").unwrap(),
            remote(Some(8), Some("alice"), "node2.example.org", 2222)
        );
        assert_eq!(
            parse_entry("127.0.0.2:2222").unwrap(),
            remote(None, None, "127.0.0.2", 2222)
        );
        assert_eq!(
            parse_entry("[::1]:2200").unwrap(),
            remote(None, None, "::1", 2200)
        );
        assert_eq!(
            parse_entry("fe80::1").unwrap(),
            remote(None, None, "fe80::1", 0)
        );
        assert_eq!(
            parse_entry(":").unwrap(),
            HostEntry {
                slots: None,
                place: Place::Local
            }
        );
        assert_eq!(parse_entry("4/:").unwrap().slots, Some(4));
    }

    #[test]
    fn bad_entries_say_what_is_wrong() {
        for (item, says) in [
            ("0/node", "positive"),
            ("node:0", "port"),
            ("node:ssh", "port"),
            ("node:99999", "port"),
            ("@node", "user"),
            ("a b", "host name"),
            ("no;de", "host name"),
            ("[::1", "`]`"),
            ("[::1]x", "unexpected"),
            ("-oProxyCommand=x", "host name"),
        ] {
            let e = parse_entry(item).unwrap_err();
            assert!(e.contains(says), "{item}: {e}");
        }
    }

    #[test]
    fn display_is_the_name_in_messages() {
        for s in ["node1", "alice@node:2222", "[::1]:2200", "[fe80::1]"] {
            let e = parse_entry(s).unwrap();
            assert_eq!(e.to_string(), s);
        }
        assert_eq!(parse_entry("3/node:22").unwrap().to_string(), "node");
        assert_eq!(parse_entry("2/:").unwrap().to_string(), "local");
    }

    #[test]
    fn files_have_comments_and_blank_lines() {
        let text = "# the cluster\n\n4/node1   # fast one\nnode2:2222\n  :\n";
        let hosts = parse(text, "hosts file h.txt", '\n').unwrap();
        assert_eq!(hosts.len(), 3);
        assert_eq!(hosts[0], remote(Some(4), None, "node1", 0));
        assert_eq!(hosts[2].place, Place::Local);
        let e = parse("node1\nnode 2\n", "hosts file h.txt", '\n').unwrap_err();
        assert!(e.to_string().contains("hosts file h.txt line 2"), "{e}");
        let e = parse("node1\n2/node1\n", "hosts file h.txt", '\n').unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        // However spelled: a user, the default port, case, a final dot.
        for (a, b) in [
            ("root@host:2255", "host:2255"),
            ("node1", "node1:22"),
            ("Node1", "node1."),
            (":", ":"),
        ] {
            let e = parse(&format!("{a},{b}"), "--hosts", ',').unwrap_err();
            assert!(e.to_string().contains("listed twice"), "{a} {b}: {e}");
        }
        assert_eq!(
            parse("node1:22,node1:2222", "--hosts", ',').unwrap().len(),
            2
        );
        let e = parse("# nothing\n", "hosts file h.txt", '\n').unwrap_err();
        assert!(e.to_string().contains("names no host"), "{e}");
    }

    #[test]
    fn a_value_is_a_file_when_one_exists_else_a_list() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("hosts.txt");
        std::fs::write(&file, "2/a\nb:2200\n").unwrap();
        let from_file = load(file.to_str().unwrap()).unwrap();
        assert_eq!(from_file.len(), 2);
        let inline = load("2/a, b:2200").unwrap();
        assert_eq!(inline, from_file);
        assert_eq!(load(":").unwrap()[0].place, Place::Local);
        let missing = dir.path().join("nope.txt");
        let e = load(missing.to_str().unwrap()).unwrap_err();
        assert!(e.to_string().contains("no such hosts file"), "{e}");
        assert!(matches!(e, Error::Usage { .. }));
    }
}
