//! `scripts/install`: the binary, the man pages and the completions land
//! where man(1), bash, zsh and fish look for them under a prefix, each
//! shell and man finding them there, and `--uninstall` removes exactly
//! what was installed.

mod common;

use common::{gmr_bin, repo};
use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn install(prefix: &Path, args: &[&str]) -> Output {
    Command::new(repo().join("scripts/install"))
        .arg("--prefix")
        .arg(prefix)
        .args(args)
        .output()
        .unwrap()
}

fn sh(cmd: &str, prefix: &Path) -> Output {
    let path = format!(
        "{}:{}",
        prefix.join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    Command::new("sh")
        .arg("-c")
        .arg(cmd)
        .env("PATH", path)
        .env("XDG_DATA_HOME", prefix.join("share"))
        .env_remove("MANPATH")
        .output()
        .unwrap()
}

fn files(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().display().to_string());
            }
        }
    }
    out.sort();
    out
}

#[test]
fn install_puts_each_file_where_its_reader_looks_and_uninstall_removes_them() {
    let tmp = tempfile::tempdir().unwrap();
    let prefix = tmp.path().join("p r e f i x");
    let bin = gmr_bin();
    let out = install(&prefix, &["--binary", bin.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");

    let pages: Vec<String> = fs::read_dir(repo().join("man"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut want: Vec<String> = pages
        .iter()
        .map(|p| format!("share/man/man1/{p}"))
        .chain([
            "bin/gmr".to_string(),
            "share/bash-completion/completions/gmr".to_string(),
            "share/zsh/site-functions/_gmr".to_string(),
            "share/fish/vendor_completions.d/gmr.fish".to_string(),
        ])
        .collect();
    want.sort();
    assert_eq!(files(&prefix), want);
    for (installed, source) in [
        (
            "share/bash-completion/completions/gmr",
            "completions/gmr.bash",
        ),
        ("share/zsh/site-functions/_gmr", "completions/_gmr"),
        (
            "share/fish/vendor_completions.d/gmr.fish",
            "completions/gmr.fish",
        ),
        ("share/man/man1/gmr-run.1", "man/gmr-run.1"),
    ] {
        assert_eq!(
            fs::read(prefix.join(installed)).unwrap(),
            fs::read(repo().join(source)).unwrap(),
            "{installed}"
        );
    }

    // The installed binary runs; man finds the pages through PATH (man-db
    // maps PREFIX/bin to PREFIX/share/man); bash takes the completion;
    // fish loads it from XDG_DATA_HOME/fish/vendor_completions.d.
    let version = sh("gmr --version", &prefix);
    assert!(String::from_utf8_lossy(&version.stdout).starts_with("gmr "));
    let man = sh("man -w gmr-run", &prefix);
    assert_eq!(
        String::from_utf8_lossy(&man.stdout).trim(),
        prefix
            .join("share/man/man1/gmr-run.1")
            .display()
            .to_string(),
        "{}",
        String::from_utf8_lossy(&man.stderr)
    );
    let bash = sh(
        &format!(
            "bash -c '. \"{}\" && complete -p gmr'",
            prefix
                .join("share/bash-completion/completions/gmr")
                .display()
        ),
        &prefix,
    );
    assert!(
        String::from_utf8_lossy(&bash.stdout).contains("gmr"),
        "{}",
        String::from_utf8_lossy(&bash.stderr)
    );
    let fish = sh("fish -c 'complete -C \"gmr ru\"'", &prefix);
    assert!(
        String::from_utf8_lossy(&fish.stdout).starts_with("run\t"),
        "{}{}",
        String::from_utf8_lossy(&fish.stdout),
        String::from_utf8_lossy(&fish.stderr)
    );

    // Something else in the prefix stays.
    fs::write(prefix.join("share/man/man1/other.1"), "x").unwrap();
    let out = install(&prefix, &["--uninstall"]);
    assert!(out.status.success());
    assert_eq!(files(&prefix), ["share/man/man1/other.1"]);

    // A binary that is not gmr is refused, and nothing is installed.
    let empty = tmp.path().join("empty");
    let out = install(&empty, &["--binary", "/bin/false"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/bin/false"));
    assert!(!empty.exists());
}
