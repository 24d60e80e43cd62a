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

/// The commands of a man page's EXAMPLES: its lines between `.nf` and
/// `.fi`, unescaped, with a line ending in `|` joined to the next, and
/// the descriptions (lines ending in `:`) left out.
fn examples_of(page: &str) -> Vec<String> {
    let Some(at) = page.find(".SH \"EXAMPLES\"") else {
        return Vec::new();
    };
    let body = &page[at..];
    let body = &body[body.find(".nf\n").expect(".nf") + 4..body.find(".fi\n").expect(".fi")];
    let mut commands: Vec<String> = Vec::new();
    let mut joining = false;
    for line in body.lines() {
        let line = line
            .replace("\\-", "-")
            .replace("\\e", "\\")
            .replace("\\&", "");
        let line = line.trim();
        if line.is_empty() || line.ends_with(':') {
            continue;
        }
        match commands.last_mut() {
            Some(last) if joining => {
                last.push(' ');
                last.push_str(line);
            }
            _ => commands.push(line.to_string()),
        }
        joining = line.ends_with('|');
    }
    commands
}

/// A directory holding every file the examples name: a word count's
/// map.sh and reduce.sh, tok.py, big.txt, logs/, data/, x.gz, hosts.txt
/// (this machine: `:`), shared/in/.
fn example_dir() -> Dir {
    let d = Dir::new();
    let books = repo().join("examples/input");
    d.sh(&format!(
        "cp {books}/* . 2>/dev/null; mkdir -p logs data shared/in && cp {books}/* logs/ && cp {books}/* data/ \
         && cp {books}/* shared/in/ && cat {books}/* > big.txt && gzip -c big.txt > x.gz && echo : > hosts.txt \
         && cp {ex}/wordcount/map.sh {ex}/wordcount/reduce.sh .",
        books = books.display(),
        ex = repo().join("examples").display()
    ));
    d.script(
        "tok.py",
        "exec python3 -c 'import sys\nfor line in sys.stdin:\n    for w in line.split(): print(w + \"\\t1\")'",
    );
    d
}

#[test]
fn every_man_page_example_runs() {
    let bin = gmr_bin();
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut ran = 0;
    for (rel, bytes) in gmr::man_pages() {
        let page = String::from_utf8(bytes).unwrap();
        let examples = examples_of(&page);
        assert!(!examples.is_empty(), "{rel} has no example");
        for example in examples {
            let d = example_dir();
            let sh = |cmd: &str| {
                Command::new("bash")
                    .args(["-o", "pipefail", "-c", cmd])
                    .current_dir(d.path(""))
                    .env("PATH", &path)
                    .env("TMPDIR", d.path("tmp"))
                    .env("XDG_STATE_HOME", d.path("state"))
                    .stdin(std::process::Stdio::null())
                    .output()
                    .unwrap()
            };
            // gmr status and gmr report show a job: one ran in shared/w.
            if example.starts_with("gmr status") || example.starts_with("gmr report") {
                let setup = sh(
                    "gmr run -q -m ./map.sh -r ./reduce.sh --workdir shared/w big.txt > /dev/null",
                );
                assert!(
                    setup.status.success(),
                    "{}",
                    String::from_utf8_lossy(&setup.stderr)
                );
            }
            let out = sh(&example);
            assert!(
                out.status.success(),
                "{rel}: `{example}` exited with {}: {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            ran += 1;
        }
    }
    assert!(ran >= 15, "only {ran} examples");
}
