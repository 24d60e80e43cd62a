//! The checked-in completions (`completions/`), loaded into real bash, zsh
//! and fish, complete what a user of gmr types: subcommands (not the
//! hidden `task`), built-ins after `@`, codecs, host names from the ssh
//! configuration, directories for a work directory.

mod common;
use common::*;
use std::collections::BTreeSet;
use std::process::Command;

/// The shells, and how each is asked what it completes for a line.
const SHELLS: [&str; 3] = ["bash", "zsh", "fish"];

/// What `shell` offers for `line`, run in `d` with `d/home` as HOME: the
/// words alone (no descriptions, no trailing `/` of directories).
fn complete(d: &Dir, shell: &str, line: &str) -> BTreeSet<String> {
    let completions = repo().join("completions");
    let shells = repo().join("tests/shells");
    let mut c = match shell {
        "bash" => {
            let mut c = Command::new("bash");
            c.arg(shells.join("capture.bash")).arg(line);
            c
        }
        "zsh" => {
            let mut c = Command::new("zsh");
            c.arg("-f").arg(shells.join("capture.zsh")).arg(line);
            c
        }
        _ => {
            let mut c = Command::new("fish");
            c.arg("--no-config").arg("-c").arg(format!(
                "source {}; complete -C {}",
                completions.join("gmr.fish").display(),
                shell_quote(line)
            ));
            c
        }
    };
    let out = c
        .current_dir(d.path(""))
        .env("HOME", d.path("home"))
        .env("COMPDIR", &completions)
        .env("TMPDIR", d.path(""))
        .output()
        .unwrap_or_else(|e| panic!("{shell} (scripts/test installs it): {e}"));
    assert!(
        out.status.success(),
        "{shell} completing {line:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').next().unwrap_or("").trim_end_matches('/'))
        .filter(|w| !w.is_empty())
        .map(String::from)
        .collect()
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

fn set(words: &[&str]) -> BTreeSet<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// A directory with a home whose ssh configuration names three hosts (and
/// a pattern, which is no host name), a directory and a file.
fn setup() -> Dir {
    let d = Dir::new();
    d.write(
        "home/.ssh/config",
        "Host alpha beta *.wild\n  HostName 127.0.0.2\nHost gamma\n  Port 2222\n",
    );
    std::fs::create_dir_all(d.path("jobdir")).unwrap();
    d.write("jobfile", "");
    d
}

#[test]
fn builtins_complete_after_an_at_sign() {
    let d = setup();
    for shell in SHELLS {
        let all = set(&["@count", "@sum", "@min", "@max", "@identity"]);
        assert_eq!(complete(&d, shell, "gmr run -r @"), all, "{shell}");
        assert_eq!(
            complete(&d, shell, "gmr reduce --reducer @"),
            all,
            "{shell}"
        );
        assert_eq!(
            complete(&d, shell, "gmr run -c @"),
            set(&["@count", "@sum", "@min", "@max"]),
            "{shell}: a combiner must merge"
        );
        assert_eq!(
            complete(&d, shell, "gmr map -m @"),
            set(&["@identity"]),
            "{shell}"
        );
        // Without `@`, a command: `grep` is one.
        assert!(
            complete(&d, shell, "gmr run -m gre").contains("grep"),
            "{shell}"
        );
    }
}

#[test]
fn values_of_flags_complete() {
    let d = setup();
    for shell in SHELLS {
        assert_eq!(
            complete(&d, shell, "gmr run --compress "),
            set(&["gz", "zst"]),
            "{shell}"
        );
        // Hosts of the ssh configuration, not its patterns; after a comma
        // of an inline list too.
        assert!(
            complete(&d, shell, "gmr run --hosts al").contains("alpha"),
            "{shell}"
        );
        let after_comma = complete(&d, shell, "gmr run --hosts alpha,g");
        assert!(
            after_comma.contains("alpha,gamma") || after_comma.contains("gamma"),
            "{shell}: {after_comma:?}"
        );
        assert!(
            !complete(&d, shell, "gmr run --hosts ")
                .iter()
                .any(|h| h.contains('*')),
            "{shell}"
        );
        // A hosts file.
        assert!(
            complete(&d, shell, "gmr run --hosts jobf").contains("jobfile"),
            "{shell}"
        );
    }
}

#[test]
fn a_work_directory_completes_as_a_directory() {
    let d = setup();
    for shell in SHELLS {
        for sub in ["status", "report"] {
            let offered = complete(&d, shell, &format!("gmr {sub} job"));
            // zsh's _files -/ also tries every file as a fallback, which
            // the capture sees; bash and fish offer directories alone.
            match shell {
                "zsh" => assert!(offered.contains("jobdir"), "{shell}: {offered:?}"),
                _ => assert_eq!(offered, set(&["jobdir"]), "{shell}: gmr {sub}"),
            }
        }
    }
}

#[test]
fn subcommands_complete_without_the_hidden_one() {
    let d = setup();
    for shell in SHELLS {
        let offered = complete(&d, shell, "gmr ");
        for sub in [
            "run", "split", "map", "shuffle", "reduce", "status", "report",
        ] {
            assert!(
                offered.contains(sub),
                "{shell}: {sub} missing from {offered:?}"
            );
        }
        assert!(
            !offered.contains("task"),
            "{shell} offers the hidden task: {offered:?}"
        );
        assert_eq!(complete(&d, shell, "gmr sta"), set(&["status"]), "{shell}");
    }
}
