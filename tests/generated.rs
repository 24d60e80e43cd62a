//! The checked-in man pages and completions match the CLI, render cleanly,
//! and every command's help shows an example. `GMR_UPDATE_GENERATED=1 cargo
//! test --test generated` rewrites stale copies.

mod common;
use common::*;
use std::process::Command;

#[test]
fn generated_files_are_up_to_date() {
    let update = std::env::var_os("GMR_UPDATE_GENERATED").is_some_and(|v| v == "1");
    let mut stale = Vec::new();
    for (rel, bytes) in gmr::man_pages().into_iter().chain(gmr::completions()) {
        // Servers, containers and cron jobs often run in the C locale:
        // what a man page or a completion shows there must be ASCII.
        if let Some(at) = bytes.iter().position(|b| !b.is_ascii()) {
            panic!("{rel}: a non-ASCII byte at offset {at}: use ASCII in help texts");
        }
        let path = repo().join(&rel);
        if std::fs::read(&path).ok().as_deref() != Some(&bytes[..]) {
            if update {
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &bytes).unwrap();
            } else {
                stale.push(rel);
            }
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `GMR_UPDATE_GENERATED=1 cargo test --test generated` and commit them"
    );
}

#[test]
fn man_pages_render_without_warnings() {
    let pages = gmr::man_pages();
    assert!(pages.len() >= 6, "gmr.1 and one page per subcommand");
    for (rel, _) in pages {
        let out = Command::new("man")
            .args(["--warnings", "-l"])
            .arg(repo().join(&rel))
            .env("MANWIDTH", "80")
            .env("LC_ALL", "C")
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .output()
            .expect("man is installed (apt-get install man-db groff-base)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && stderr.trim().is_empty(),
            "{rel}: {stderr}"
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains("EXIT STATUS") && text.contains("EXAMPLES"),
            "{rel} lacks sections"
        );
    }
}

#[test]
fn bash_accepts_the_bash_completion() {
    let out = Command::new("bash")
        .arg("-n")
        .arg(repo().join("completions/gmr.bash"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_help_shows_an_example() {
    let d = Dir::new();
    for sub in [
        &[][..],
        &["run"],
        &["split"],
        &["map"],
        &["shuffle"],
        &["reduce"],
    ] {
        let mut args = sub.to_vec();
        args.push("--help");
        let out = d.run(&args);
        let text = String::from_utf8_lossy(out.ok()).into_owned();
        assert!(
            text.contains("Examples:\n  "),
            "gmr {sub:?} --help has no example:\n{text}"
        );
    }
}

/// Each page's SEE ALSO names every other gmr page and none that does not
/// exist (once `gmr-help(1)`), and its title and footer name the page
/// (once `run 0.1.0` at the foot of gmr-run(1)).
#[test]
fn man_pages_refer_to_pages_that_exist() {
    let pages = gmr::man_pages();
    let names: Vec<String> = pages
        .iter()
        .map(|(rel, _)| {
            rel.trim_start_matches("man/")
                .trim_end_matches(".1")
                .to_string()
        })
        .collect();
    for (rel, bytes) in &pages {
        let text = String::from_utf8_lossy(bytes);
        let name = rel.trim_start_matches("man/").trim_end_matches(".1");
        let see = text
            .split(".SH \"SEE ALSO\"")
            .nth(1)
            .and_then(|s| s.split(".SH").next())
            .unwrap_or_else(|| panic!("{rel}: no SEE ALSO"));
        let gmr_refs: Vec<&str> = see
            .split("\\fB")
            .skip(1)
            .filter_map(|s| s.split("\\fR").next())
            .filter(|s| s.starts_with("gmr"))
            .collect();
        let mut want: Vec<&str> = names
            .iter()
            .map(String::as_str)
            .filter(|n| *n != name)
            .collect();
        want.sort_unstable();
        let mut got = gmr_refs.clone();
        got.sort_unstable();
        assert_eq!(got, want, "{rel}: SEE ALSO");
        let th = text.lines().find(|l| l.starts_with(".TH ")).unwrap();
        let version = env!("CARGO_PKG_VERSION");
        assert!(
            th.starts_with(&format!(".TH {name} 1"))
                && th.contains(&format!("\"{name} {version}\"")),
            "{rel}: {th}"
        );
    }
}
