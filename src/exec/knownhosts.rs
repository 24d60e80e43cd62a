//! Host-key checking with OpenSSH's semantics (sshd(8), "SSH_KNOWN_HOSTS
//! FILE FORMAT"), so that gmr refuses every host `ssh` would refuse and
//! records a new key only where `ssh -o StrictHostKeyChecking=accept-new`
//! would.
//!
//! What users rely on is understood: plain names and `[host]:port` (a line
//! for `host` does not cover `[host]:2222`), hashed names (`|1|salt|hash`,
//! HMAC-SHA1), comma-separated patterns with `*`, `?` and `!` negation,
//! names compared without regard to case, `@revoked` (patterns included),
//! and the user's files before the system's. A host that only
//! `@cert-authority` lines cover must show a certificate signed by one of
//! those authorities; SSH connections here see plain keys, so such a host
//! is refused, never treated as unknown (where `ssh` would ask, or with
//! `accept-new` record the plain key).

use base64::Engine as _;
use hmac::{Hmac, Mac};
use std::io;
use std::path::{Path, PathBuf};

/// Where a known_hosts line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Place {
    /// The file.
    pub(crate) file: PathBuf,
    /// The line number, from 1.
    pub(crate) line: usize,
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// What known_hosts says of the key a host offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A line for the host holds this key.
    Known,
    /// A `@revoked` line that covers the host holds this key.
    Revoked(Place),
    /// Lines name the host with keys of this key's type, none of them
    /// this key.
    Changed(Place),
    /// Lines name the host with keys of other types only: the host no
    /// longer offers the key it is known by (as `ssh` decides, a changed
    /// host, not a new one: a man in the middle need only speak another
    /// key type). The first such line, and its key type.
    OtherType(Place, String),
    /// Only `@cert-authority` lines cover the host: it must show a host
    /// certificate signed by one of them.
    CertificateRequired(Place),
    /// No line covers the host.
    Unknown,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    None,
    Revoked,
    CertAuthority,
}

#[derive(Debug, Clone)]
enum Hosts {
    /// `|1|salt|hash`: HMAC-SHA1 of the name, keyed with the salt.
    Hashed { salt: Vec<u8>, hash: Vec<u8> },
    /// Comma-separated patterns, lower-cased; `!` negates.
    Patterns(Vec<String>),
}

#[derive(Debug, Clone)]
struct Line {
    place: Place,
    marker: Marker,
    hosts: Hosts,
    /// `ssh-ed25519`, `ecdsa-sha2-nistp256`, …
    key_type: String,
    /// The key blob; None when its base64 does not decode.
    key: Option<Vec<u8>>,
}

/// The lines of one or more known_hosts files.
#[derive(Debug, Clone, Default)]
pub(crate) struct KnownHosts {
    lines: Vec<Line>,
}

/// The name a host is looked up by: `host`, or `[host]:port` off port 22,
/// lower-cased as OpenSSH looks names up.
pub(crate) fn host_name(host: &str, port: u16) -> String {
    let host = host.to_ascii_lowercase();
    if port == 22 {
        host
    } else {
        format!("[{host}]:{port}")
    }
}

/// The known_hosts line that records `key` for `name`; with a `salt`, the
/// name hashed as `ssh` writes it with HashKnownHosts on
/// (`|1|salt|HMAC-SHA1(salt, name)`).
pub(crate) fn line(name: &str, key_type: &str, key: &[u8], salt: Option<&[u8]>) -> String {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let field = match salt {
        None => name.to_string(),
        Some(salt) => {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).expect("HMAC takes any key");
            mac.update(name.as_bytes());
            format!("|1|{}|{}", b64(salt), b64(&mac.finalize().into_bytes()))
        }
    };
    format!("{field} {key_type} {}\n", b64(key))
}

impl KnownHosts {
    /// Reads `files` in order (the user's, then the system's); a file that
    /// does not exist names no host. The first (the user's) must be
    /// readable if it exists; the others are skipped when they are not, as
    /// `ssh` skips them.
    pub(crate) fn read(files: &[PathBuf]) -> io::Result<KnownHosts> {
        let mut known = KnownHosts::default();
        for (i, file) in files.iter().enumerate() {
            let text = match std::fs::read(file) {
                Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
                Err(e) if e.kind() == io::ErrorKind::NotFound || i > 0 => continue,
                Err(e) => return Err(io::Error::new(e.kind(), format!("{}: {e}", file.display()))),
            };
            known.add(file, &text);
        }
        Ok(known)
    }

    /// Adds the lines of `text`, read from `file`. Lines that cannot be
    /// parsed are skipped, as `ssh` skips them.
    fn add(&mut self, file: &Path, text: &str) {
        for (i, raw) in text.lines().enumerate() {
            let mut words = raw.split_ascii_whitespace();
            let Some(mut first) = words.next() else {
                continue;
            };
            if first.starts_with('#') {
                continue;
            }
            let marker = match first {
                "@revoked" => Marker::Revoked,
                "@cert-authority" => Marker::CertAuthority,
                m if m.starts_with('@') => continue,
                _ => Marker::None,
            };
            if marker != Marker::None {
                let Some(next) = words.next() else {
                    continue;
                };
                first = next;
            }
            let (Some(key_type), Some(key)) = (words.next(), words.next()) else {
                continue;
            };
            let Some(hosts) = parse_hosts(first) else {
                continue;
            };
            self.lines.push(Line {
                place: Place {
                    file: file.to_path_buf(),
                    line: i + 1,
                },
                marker,
                hosts,
                key_type: key_type.to_string(),
                key: base64::engine::general_purpose::STANDARD.decode(key).ok(),
            });
        }
    }

    /// What the lines say of `key` (the blob the host offered) for `host`
    /// on `port`. A revoked key is refused first; then a line with the key
    /// accepts it; then a line naming the host with another key refuses
    /// it; then a certificate authority for the host refuses a plain key.
    /// A host on another port than 22 that no line covers is known when
    /// its key is the one recorded for the host without a port, as `ssh`
    /// checks "without port identifier" (a plain line with another key
    /// leaves it unknown: another port may well be another machine).
    ///
    /// Lines of other key types than `key_type` only make the host
    /// changed, as `ssh` decides ([`Verdict::OtherType`]); the connection
    /// first asks for a type the host is known by
    /// ([`KnownHosts::known_types`]), so that this happens only when the
    /// host no longer offers it.
    pub(crate) fn check(&self, host: &str, port: u16, key_type: &str, key: &[u8]) -> Verdict {
        match self.check_name(&host_name(host, port), key_type, key) {
            Verdict::Unknown if port != 22 => {
                match self.check_name(&host_name(host, 22), key_type, key) {
                    Verdict::Known => Verdict::Known,
                    _ => Verdict::Unknown,
                }
            }
            verdict => verdict,
        }
    }

    /// The key types that plain lines record for the host, in file order.
    pub(crate) fn known_types(&self, host: &str, port: u16) -> Vec<String> {
        self.known_types_of(&[host_name(host, port), host_name(host, 22)])
    }

    /// What [`KnownHosts::check`] says of a host known by another name
    /// (`HostKeyAlias`): that name alone is looked up, without a port.
    pub(crate) fn check_alias(&self, alias: &str, key_type: &str, key: &[u8]) -> Verdict {
        self.check_name(&alias.to_ascii_lowercase(), key_type, key)
    }

    /// The key types that plain lines record for any of `names`.
    pub(crate) fn known_types_of(&self, names: &[String]) -> Vec<String> {
        let mut types: Vec<String> = Vec::new();
        for l in &self.lines {
            let covered = names.iter().any(|n| covers(&l.hosts, n));
            if l.marker == Marker::None && covered && !types.contains(&l.key_type) {
                types.push(l.key_type.clone());
            }
        }
        types
    }

    fn check_name(&self, name: &str, key_type: &str, key: &[u8]) -> Verdict {
        let covering = || self.lines.iter().filter(|l| covers(&l.hosts, name));
        let same = |l: &&Line| l.key.as_deref() == Some(key);
        if let Some(l) = covering().find(|l| l.marker == Marker::Revoked && same(l)) {
            return Verdict::Revoked(l.place.clone());
        }
        let plain = || covering().filter(|l| l.marker == Marker::None);
        if plain().any(|l| same(&l)) {
            return Verdict::Known;
        }
        if let Some(l) = plain().find(|l| l.key_type == key_type) {
            return Verdict::Changed(l.place.clone());
        }
        if let Some(l) = plain().next() {
            // Known by another key type only.
            return Verdict::OtherType(l.place.clone(), l.key_type.clone());
        }
        match covering().find(|l| l.marker == Marker::CertAuthority) {
            Some(l) => Verdict::CertificateRequired(l.place.clone()),
            None => Verdict::Unknown,
        }
    }
}

/// The host field of a line: hashed, or patterns.
fn parse_hosts(field: &str) -> Option<Hosts> {
    if let Some(rest) = field.strip_prefix("|1|") {
        let (salt, hash) = rest.split_once('|')?;
        let b64 = base64::engine::general_purpose::STANDARD;
        return Some(Hosts::Hashed {
            salt: b64.decode(salt).ok()?,
            hash: b64.decode(hash).ok()?,
        });
    }
    if field.starts_with('|') {
        return None;
    }
    Some(Hosts::Patterns(
        field
            .split(',')
            .filter(|p| !p.is_empty())
            .map(str::to_ascii_lowercase)
            .collect(),
    ))
}

/// Whether a line's hosts cover `name` (already lower-cased): a hashed
/// name that hashes the same, or a pattern list with a pattern that
/// matches and no negated one that does.
fn covers(hosts: &Hosts, name: &str) -> bool {
    match hosts {
        Hosts::Hashed { salt, hash } => {
            let Ok(mut mac) = Hmac::<sha1::Sha1>::new_from_slice(salt) else {
                return false;
            };
            mac.update(name.as_bytes());
            mac.verify_slice(hash).is_ok()
        }
        Hosts::Patterns(patterns) => {
            let mut matched = false;
            for p in patterns {
                match p.strip_prefix('!') {
                    Some(negated) if glob(negated.as_bytes(), name.as_bytes()) => return false,
                    Some(_) => {}
                    None => matched |= glob(p.as_bytes(), name.as_bytes()),
                }
            }
            matched
        }
    }
}

/// OpenSSH's pattern match: `*` any run of bytes, `?` one byte, anything
/// else itself (no character classes: `[` in `[host]:port` is literal).
pub(crate) fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // The last `*` seen and the text position it was tried at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == b'?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"\x00\x00\x00\x0bssh-ed25519 the key";
    const OTHER: &[u8] = b"\x00\x00\x00\x0bssh-ed25519 another";

    fn b64(k: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(k)
    }

    fn known(text: &str) -> KnownHosts {
        let mut k = KnownHosts::default();
        k.add(Path::new("kh"), text);
        k
    }

    fn hashed(name: &str, salt: &[u8]) -> String {
        let mut mac = Hmac::<sha1::Sha1>::new_from_slice(salt).unwrap();
        mac.update(name.as_bytes());
        format!("|1|{}|{}", b64(salt), b64(&mac.finalize().into_bytes()))
    }

    #[test]
    fn globs_as_openssh() {
        assert!(glob(b"*.example.org", b"a.example.org"));
        assert!(!glob(b"*.example.org", b"example.org"));
        assert!(glob(b"h?st", b"host"));
        assert!(glob(b"[10.0.0.*]:2222", b"[10.0.0.7]:2222"));
        assert!(!glob(b"[10.0.0.*]:2222", b"[10.0.0.7]:22"));
        assert!(glob(b"*", b""));
        assert!(glob(b"a*b*c", b"axxbyyc"));
        assert!(!glob(b"a*b*c", b"axxbyy"));
    }

    #[test]
    fn verdicts() {
        let k = b64(KEY);
        let o = b64(OTHER);
        let port =
            |text: &str, host: &str, port: u16| known(text).check(host, port, "ssh-ed25519", KEY);
        let ok = Verdict::Known;
        assert_eq!(port(&format!("h ssh-ed25519 {k}"), "h", 22), ok);
        assert_eq!(port(&format!("H ssh-ed25519 {k}"), "h", 22), ok, "case");
        assert_eq!(port(&format!("h ssh-ed25519 {k}"), "H", 22), ok, "case");
        assert_eq!(
            port(&format!("h ssh-ed25519 {k}"), "h", 2222),
            ok,
            "the key of the host without a port"
        );
        assert_eq!(
            port(&format!("h ssh-ed25519 {o}"), "h", 2222),
            Verdict::Unknown,
            "another key without a port: another port may be another machine"
        );
        assert_eq!(port(&format!("[h]:2222 ssh-ed25519 {k}"), "h", 2222), ok);
        assert_eq!(port(&format!("*.org,x ssh-ed25519 {k}"), "a.org", 22), ok);
        assert_eq!(
            port(&format!("*.org,!b.org ssh-ed25519 {k}"), "b.org", 22),
            Verdict::Unknown
        );
        assert!(matches!(
            port(&format!("h ssh-ed25519 {o}"), "h", 22),
            Verdict::Changed(_)
        ));
        assert_eq!(
            port(&format!("h ssh-ed25519 {o}\nh ssh-ed25519 {k}"), "h", 22),
            ok
        );
        assert!(matches!(
            port(
                &format!("h ssh-ed25519 {k}\n@revoked * ssh-ed25519 {k}"),
                "h",
                22
            ),
            Verdict::Revoked(Place { line: 2, .. })
        ));
        assert_eq!(
            port(
                &format!("h ssh-ed25519 {k}\n@revoked x ssh-ed25519 {k}"),
                "h",
                22
            ),
            ok,
            "a revocation for another host"
        );
        assert!(matches!(
            port(
                &format!("@cert-authority *.org ssh-ed25519 {o}"),
                "a.org",
                22
            ),
            Verdict::CertificateRequired(_)
        ));
        let salt = b"0123456789abcdef0123";
        assert_eq!(
            port(
                &format!("{} ssh-ed25519 {k}", hashed("[h]:2222", salt)),
                "H",
                2222
            ),
            ok
        );
        assert_eq!(
            port(&format!("{} ssh-ed25519 {k}", hashed("h", salt)), "h", 2222),
            ok
        );
        assert_eq!(
            port(&format!("{} ssh-ed25519 {k}", hashed("g", salt)), "h", 2222),
            Verdict::Unknown
        );
        // Comments, blank lines, lines that do not parse: skipped.
        assert_eq!(
            port(
                &format!("# c\n\n@bogus h x y\nh\nh ssh-ed25519 {k}"),
                "h",
                22
            ),
            ok
        );
    }

    #[test]
    fn the_user_file_comes_before_the_system_one() {
        let dir = tempfile::tempdir().unwrap();
        let (user, system) = (dir.path().join("user"), dir.path().join("system"));
        std::fs::write(&user, format!("h ssh-ed25519 {}\n", b64(OTHER))).unwrap();
        std::fs::write(&system, format!("h ssh-ed25519 {}\n", b64(KEY))).unwrap();
        let missing = dir.path().join("none");
        let k = KnownHosts::read(&[user, missing, system]).unwrap();
        assert_eq!(k.check("h", 22, "ssh-ed25519", KEY), Verdict::Known);
        assert!(
            matches!(k.check("h", 22, "ssh-ed25519", b"x"), Verdict::Changed(p) if p.line == 1)
        );
        // Another key type only: changed, as ssh decides (the known type
        // is asked for first).
        assert!(matches!(
            k.check("h", 22, "ecdsa-sha2-nistp256", b"x"),
            Verdict::OtherType(p, t) if p.line == 1 && t == "ssh-ed25519"
        ));
        assert_eq!(k.known_types("h", 22), ["ssh-ed25519"]);
    }

    #[test]
    fn entries_are_plain_lines() {
        assert_eq!(
            line(&host_name("H", 2222), "ssh-ed25519", b"k", None),
            format!("[h]:2222 ssh-ed25519 {}\n", b64(b"k"))
        );
        assert_eq!(
            line(&host_name("h", 22), "t", b"k", None),
            format!("h t {}\n", b64(b"k"))
        );
    }

    #[test]
    fn hashed_lines_are_found_by_name_only() {
        let l = line(
            "[h]:2222",
            "ssh-ed25519",
            KEY,
            Some(b"0123456789abcdefghij"),
        );
        assert!(l.starts_with("|1|") && !l.contains("[h]"), "{l}");
        assert_eq!(
            l,
            format!(
                "{} ssh-ed25519 {}\n",
                hashed("[h]:2222", b"0123456789abcdefghij"),
                b64(KEY)
            )
        );
        let k = known(&l);
        assert_eq!(k.check("h", 2222, "ssh-ed25519", KEY), Verdict::Known);
        assert_eq!(k.check("g", 2222, "ssh-ed25519", KEY), Verdict::Unknown);
        let a = known(&line("alias", "ssh-ed25519", KEY, None));
        assert_eq!(a.check_alias("ALIAS", "ssh-ed25519", KEY), Verdict::Known);
        assert_eq!(
            a.check("alias", 2222, "ssh-ed25519", OTHER),
            Verdict::Unknown
        );
    }
}
