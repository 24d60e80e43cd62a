//! What runs `gmr task` somewhere else has in common, over SSH or as a
//! Slurm job step: the command line (a `cd` that fails with [`NO_CWD`],
//! then `exec gmr task`), shell quoting, and reading what the command left
//! (its exit, its report on stdout or its error on stderr) as the attempt's
//! result (docs/contracts.md §5).

use crate::error::{Error, ExitCode, FailureKind, Result, TaskError};
use crate::store::workdir::WorkDir;
use crate::task::report::TaskReport;
use std::fmt;
use std::path::{Path, PathBuf};

/// The exit status of a task command whose current directory is gone
/// there (a stale or lost mount): the host's failure, not the task's.
pub(crate) const NO_CWD: i32 = 92;

/// The shell command line that runs `gmr task` for the job in `wd` (whose
/// spec has the SHA-256 `digest`) in `cwd` with the binary `gmr` — checked
/// first ([`binary_check`]) when `gmr_digest` is known (the copy gmr
/// made); its attempt and task follow.
pub(crate) fn task_command(
    gmr: &Path,
    gmr_digest: Option<&str>,
    cwd: &Path,
    wd: &Path,
    digest: &str,
) -> String {
    let check = gmr_digest.map_or_else(String::new, |d| format!("{}; ", binary_check(gmr, d)));
    format!(
        "cd {} || exit {NO_CWD}; {check}exec {} task --spec-digest {digest} --workdir {}",
        shell_quote(&cwd.to_string_lossy()),
        shell_quote(&gmr.to_string_lossy()),
        shell_quote(&wd.to_string_lossy()),
    )
}

/// The exit status of a host-side check that found the binary to run is
/// not exactly this gmr.
pub(crate) const NOT_OURS: i32 = 93;

/// Shell lines that refuse (exit [`NOT_OURS`]) to go on unless the file
/// `gmr` is a regular file, no link, the user's own, writable by nobody
/// else, with the SHA-256 `digest`: checked on the host itself, with
/// tools every host has, right before it is run (the coordinator's checks
/// say nothing of what another host mounts).
pub(crate) fn binary_check(gmr: &Path, digest: &str) -> String {
    let f = shell_quote(&gmr.to_string_lossy());
    format!(
        "f={f}; {{ [ -f \"$f\" ] && [ ! -L \"$f\" ] && [ -O \"$f\" ]; }} || exit {NOT_OURS}; \
         case $(ls -ln -- \"$f\") in ?????w*|????????w*) exit {NOT_OURS};; esac; \
         s=$( (sha256sum -- \"$f\" || shasum -a 256 -- \"$f\") 2>/dev/null); \
         [ \"${{s%% *}}\" = {digest} ] || exit {NOT_OURS}"
    )
}

/// The shell command line that starts the worker of a host (see
/// [`crate::exec::worker`]) with `slots` slots, for the job in `wd` (spec
/// digest `digest`) in `cwd`, with the binary `gmr` — checked first when
/// `gmr_digest` is known (the copy gmr made).
pub(crate) fn worker_command(
    gmr: &Path,
    gmr_digest: Option<&str>,
    cwd: &Path,
    wd: &Path,
    digest: &str,
    slots: usize,
) -> String {
    let check = gmr_digest.map_or_else(String::new, |d| format!("{}; ", binary_check(gmr, d)));
    format!(
        "cd {} || exit {NO_CWD}; {check}exec {} task --worker {slots} --spec-digest {digest} --workdir {}",
        shell_quote(&cwd.to_string_lossy()),
        shell_quote(&gmr.to_string_lossy()),
        shell_quote(&wd.to_string_lossy()),
    )
}

/// How a remote command ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// It exited with this status.
    Code(i32),
    /// It was killed by this signal (name without SIG).
    Signal(String),
}

impl fmt::Display for Exit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exit::Code(c) => write!(f, "exited with status {c}"),
            Exit::Signal(s) => write!(f, "was killed by signal {s}"),
        }
    }
}

/// What a remote command left.
#[derive(Debug)]
pub(crate) struct Output {
    /// Its stdout (the last MiB).
    pub(crate) stdout: Vec<u8>,
    /// Its stderr (the last MiB).
    pub(crate) stderr: Vec<u8>,
    /// How it ended.
    pub(crate) exit: Exit,
}

/// What a remote `gmr task` left, as the result of its attempt.
pub(crate) fn interpret(gmr: &Path, out: Output) -> std::result::Result<TaskReport, TaskError> {
    let stderr = String::from_utf8_lossy(&out.stderr);
    let tail = last_lines(&stderr, 20);
    let with_tail = |kind: FailureKind, message: String| TaskError {
        kind,
        message,
        stderr_tail: tail.clone(),
    };
    // `gmr task` ends with one of gmr's exit codes; anything else came from
    // the shell, ssh or a signal on the host.
    let status = match out.exit {
        Exit::Code(c) => ExitCode::from_status(c),
        Exit::Signal(_) => None,
    };
    match (status, &out.exit) {
        (Some(ExitCode::Success), _) => {
            let stdout = String::from_utf8_lossy(&out.stdout);
            // The last line: a login script may print something first.
            stdout
                .lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .and_then(|l| serde_json::from_str::<TaskReport>(l).ok())
                .ok_or_else(|| {
                    with_tail(
                        FailureKind::Host,
                        format!(
                            "{} task printed no report (is it another version of gmr?)",
                            gmr.display()
                        ),
                    )
                })
        }
        (Some(ExitCode::JobFailed), _) => match stderr
            .lines()
            .rev()
            .find_map(|l| serde_json::from_str::<TaskError>(l).ok())
        {
            // Stopped there, not by us: the host's doing.
            Some(mut e) if e.kind == FailureKind::Interrupted => {
                e.kind = FailureKind::Host;
                e.message = format!("the task was stopped on the host: {}", e.message);
                Err(e)
            }
            Some(e) => Err(e),
            None => Err(with_tail(
                FailureKind::Task,
                format!("{} task exited with status 1", gmr.display()),
            )),
        },
        (Some(ExitCode::Usage), _) => Err(with_tail(
            FailureKind::Host,
            format!(
                "{} task cannot run the task there: {}",
                gmr.display(),
                last_lines(&stderr, 1)
            ),
        )),
        (_, Exit::Code(NOT_OURS)) => Err(with_tail(
            FailureKind::Host,
            format!(
                "{} there is not this gmr (not a plain file of yours, writable by others, or another digest): refusing to run it; remove it, or pass --remote-gmr PATH",
                gmr.display()
            ),
        )),
        (_, Exit::Code(NO_CWD)) => Err(with_tail(
            FailureKind::Host,
            "the current directory of the job is gone there (a stale or lost mount?)".into(),
        )),
        (_, Exit::Code(c @ (126 | 127))) => Err(with_tail(
            FailureKind::Host,
            format!(
                "{} cannot be run there (exit {c}); install gmr there, or pass --remote-gmr PATH",
                gmr.display()
            ),
        )),
        (Some(ExitCode::Interrupted), Exit::Code(c)) | (_, Exit::Code(c @ (143 | 255))) => {
            Err(with_tail(
                FailureKind::Host,
                format!("{} task was stopped on the host (exit {c})", gmr.display()),
            ))
        }
        (_, exit) => Err(with_tail(
            FailureKind::Task,
            format!("{} task {exit}", gmr.display()),
        )),
    }
}

/// The last `n` non-empty lines of `text`.
pub(crate) fn last_lines(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// Quotes `s` for a POSIX shell: as is when it holds only characters no
/// shell treats specially, else in single quotes (a `'` inside becomes
/// `'\''`). Remote command lines are made only of fixed words and quoted
/// strings.
pub(crate) fn shell_quote(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "_./:@%+,-".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// The most bytes of a remote command's stdout or stderr kept: its report
/// is its last stdout line, its error its last stderr lines.
const KEEP: usize = 1 << 20;

/// Reads `r` to its end, keeping the last [`KEEP`] bytes (what cannot be
/// read is left out).
pub(crate) fn read_tail(r: &mut impl std::io::Read) -> Vec<u8> {
    let mut kept = Vec::new();
    let mut buf = vec![0u8; 64 << 10];
    loop {
        match r.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                kept.extend_from_slice(&buf[..n]);
                if kept.len() > 2 * KEEP {
                    kept.drain(..kept.len() - KEEP);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
    if kept.len() > KEEP {
        kept.drain(..kept.len() - KEEP);
    }
    kept
}

/// The copy of this gmr in the work directory that nodes and hosts run
/// unless `--remote-gmr` says otherwise: `WORKDIR/bin/gmr-DIGEST`.
///
/// Whoever could replace that file would run code as the user on every
/// host, so no file is run unless it is this gmr: the work directory and
/// `bin/` must be the user's and writable by nobody else (refused
/// otherwise, saying why); a file already there is reused only when it is
/// a regular file of the user's, writable by nobody else, with this gmr's
/// digest, and is replaced otherwise; a new copy is written fresh (O_EXCL,
/// O_NOFOLLOW) and renamed into place. The name carries the digest, so a
/// rebuilt gmr (a resume after `cargo build`) gets a copy of its own.
pub(crate) fn copy_of_gmr(wd: &WorkDir) -> Result<(PathBuf, String)> {
    let me = std::env::current_exe().map_err(|e| Error::Usage {
        message: format!("cannot find the path of this gmr ({e}); pass --remote-gmr PATH"),
        source: Some(Box::new(e)),
    })?;
    let digest = file_digest(&me).map_err(|e| Error::io("cannot read", &me, e))?;
    // The work directory as named (a link to it is the user's choice).
    let root =
        std::fs::canonicalize(wd.root()).map_err(|e| Error::io("cannot read", wd.root(), e))?;
    check_private(&root)?;
    let dir = root.join(wd.gmr_copy_dir().file_name().expect("bin/ has a name"));
    match std::fs::symlink_metadata(&dir) {
        Ok(meta) => {
            // One of the user's that others may write (made under an
            // umask of 002): made private rather than refused.
            if meta.is_dir() && !ours_alone(&meta) && owned(&meta) {
                use std::os::unix::fs::PermissionsExt;
                std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                    .map_err(|e| Error::io("cannot make private", &dir, e))?;
            }
            check_private(&dir)?
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .mode(0o700)
                .create(&dir)
                .map_err(|e| Error::io("cannot create", &dir, e))?;
        }
        Err(e) => return Err(Error::io("cannot read", &dir, e)),
    }
    let target = dir.join(
        wd.gmr_copy_path(&digest[..16])
            .file_name()
            .expect("the copy has a name"),
    );
    if let Ok(meta) = std::fs::symlink_metadata(&target) {
        if ours_alone(&meta) && meta.is_file() && file_digest(&target).is_ok_and(|d| d == digest) {
            return Ok((target, digest));
        }
        // Not exactly this gmr: never run, replaced.
        std::fs::remove_file(&target).map_err(|e| Error::io("cannot replace", &target, e))?;
    }
    copy_executable(&me, &target)?;
    Ok((target, digest))
}

/// The SHA-256 of a file, in hex.
fn file_digest(path: &Path) -> std::io::Result<String> {
    use sha2::Digest;
    let mut hash = sha2::Sha256::new();
    std::io::copy(&mut std::fs::File::open(path)?, &mut hash)?;
    Ok(crate::store::spec::to_hex(&hash.finalize()))
}

/// Whether a file or directory is this user's and nobody else can write it.
fn ours_alone(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    owned(meta) && meta.mode() & 0o022 == 0
}

/// Whether a file or directory is this user's.
fn owned(meta: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    // SAFETY: geteuid has no failure and no side effect.
    meta.uid() == unsafe { libc::geteuid() }
}

/// Refuses a directory the copy of gmr would be in when another user could
/// write it (and so replace what the hosts run).
fn check_private(dir: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|e| Error::io("cannot read", dir, e))?;
    if meta.is_dir() && ours_alone(&meta) {
        return Ok(());
    }
    let why = match meta.is_dir() {
        false => "is not a directory (a link?)".to_string(),
        true => format!(
            "is writable by others than you (owner uid {}, mode {:o})",
            meta.uid(),
            meta.mode() & 0o7777
        ),
    };
    Err(Error::usage(format!(
        "{} {why}: whoever can write it could replace the gmr that runs on the hosts; make it yours alone (chmod go-w), or install gmr on the hosts and pass --remote-gmr PATH",
        dir.display()
    )))
}

/// Copies `from` to the new executable `to`: written to a new file of its
/// own (never through a link), made whole and durable, then renamed into
/// place.
fn copy_executable(from: &Path, to: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let tmp = crate::store::workdir::attempt_path(to, 0);
    let copied = std::fs::File::open(from).and_then(|mut src| {
        let mut out = crate::files::create_new(&tmp)?;
        std::io::copy(&mut src, &mut out)?;
        out.set_permissions(std::fs::Permissions::from_mode(0o700))?;
        crate::files::close_file(out, true)
    });
    copied
        .and_then(|()| std::fs::rename(&tmp, to))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(&format!("cannot copy {} to", from.display()), to, e)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_keeps_every_string_one_word() {
        assert_eq!(shell_quote("/usr/bin/gmr"), "/usr/bin/gmr");
        assert_eq!(shell_quote("map-00003"), "map-00003");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote("$HOME"), "'$HOME'");
        assert_eq!(shell_quote("~/x"), "'~/x'");
        assert_eq!(shell_quote("a=b"), "'a=b'");
        // The shell gives back exactly what was quoted.
        for s in [
            "plain",
            "two words",
            "it's",
            "'",
            "''",
            "$(touch /tmp/pwned) `id` $HOME \\ \" ; | & > < * ? [ ] { } ! #",
            "new\nline\ttab",
            "ünïcödé",
        ] {
            let out = std::process::Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    fn output(code: i32, stdout: &str, stderr: &str) -> Output {
        Output {
            stdout: stdout.as_bytes().to_vec(),
            stderr: stderr.as_bytes().to_vec(),
            exit: Exit::Code(code),
        }
    }

    #[test]
    fn remote_exits_say_whose_failure_it_was() {
        let gmr = Path::new("/usr/bin/gmr");
        let report = TaskReport {
            task: "map-00001".into(),
            attempt: 2,
            ..TaskReport::default()
        };
        let line = serde_json::to_string(&report).unwrap();
        let ok = interpret(gmr, output(0, &format!("motd noise\n{line}\n"), "")).unwrap();
        assert_eq!(ok, report);

        let failed = TaskError::task("mapper `x` exited with status 3");
        let stderr = format!(
            "{}\ngmr: task map-00001 failed: mapper\n",
            serde_json::to_string(&failed).unwrap()
        );
        let e = interpret(gmr, output(1, "", &stderr)).unwrap_err();
        assert_eq!(
            (e.kind, e.message.as_str()),
            (FailureKind::Task, failed.message.as_str())
        );

        for code in [2, 126, 127, 130, 255] {
            let e = interpret(gmr, output(code, "", "boom\n")).unwrap_err();
            assert_eq!(e.kind, FailureKind::Host, "exit {code}: {}", e.message);
        }
        let e = interpret(gmr, output(0, "not json\n", "")).unwrap_err();
        assert_eq!(e.kind, FailureKind::Host);
        let e = interpret(gmr, output(101, "", "panicked\n")).unwrap_err();
        assert_eq!(e.kind, FailureKind::Task);
        assert_eq!(e.stderr_tail, "panicked");
    }
}
