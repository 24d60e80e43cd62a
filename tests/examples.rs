//! The jobs in `examples/`, run as the README runs them, each checked
//! against an independent reference.

mod common;
use common::*;
use std::collections::{BTreeMap, BTreeSet};

fn ex(rel: &str) -> String {
    repo().join("examples").join(rel).display().to_string()
}

#[test]
fn word_count_example() {
    let d = Dir::new();
    d.job(
        &ex("wordcount/map.sh"),
        &ex("wordcount/reduce.sh"),
        &["-o", "wc-out", &ex("input")],
    )
    .ok();
    let reference = d.piped(
        &ex("input"),
        &ex("wordcount/map.sh"),
        &ex("wordcount/reduce.sh"),
    );
    assert_eq!(
        sorted_lines(&parts(d.path("wc-out"))),
        sorted_lines(&reference)
    );
    assert!(String::from_utf8_lossy(&reference).contains("\ngregor\t"));
}

#[test]
fn inverted_index_example() {
    let d = Dir::new();
    let out = d.job(
        &ex("invindex/map.sh"),
        &ex("invindex/reduce.sh"),
        &["-R", "3", &ex("input")],
    );
    // The reference, computed here: word -> the files it occurs in.
    let mut index: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for name in names(ex("input")) {
        let text = String::from_utf8_lossy(&read(repo().join("examples/input").join(&name)))
            .to_lowercase();
        for word in text
            .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
            .filter(|w| !w.is_empty())
        {
            index
                .entry(word.to_string())
                .or_default()
                .insert(name.clone());
        }
    }
    let expected: Vec<Vec<u8>> = index
        .iter()
        .map(|(w, docs)| {
            format!(
                "{w}\t{}",
                docs.iter().cloned().collect::<Vec<_>>().join(",")
            )
            .into_bytes()
        })
        .collect();
    assert_eq!(sorted_lines(out.ok()), expected);
}

#[test]
fn join_example() {
    let d = Dir::new();
    let out = d.job(
        &ex("join/map.sh"),
        &ex("join/reduce.sh"),
        &["-R", "2", &ex("join/users.tsv"), &ex("join/orders.tsv")],
    );
    assert_eq!(
        sorted_lines(out.ok()),
        sorted_lines(b"1\tada\tengine\n1\tada\tnotes\n2\tgrace\tcompiler\n2\tgrace\tnanoseconds\n")
    );
}

#[test]
fn grep_example() {
    let d = Dir::new();
    let out = d
        .gmr_run()
        .quiet()
        .flag("--env", "PATTERN=gregor")
        .mapper(ex("grep/map.sh"))
        .reducer("cut -f2-")
        .reducers(1)
        .input(ex("input"))
        .command()
        .output()
        .unwrap();
    assert!(out.status.success());
    let reference = d.sh(&format!(
        "cat {}/* | grep -i gregor | sed -e 's/^[ \t]*//' -e 's/[ \t]*$//' | sort",
        ex("input")
    ));
    assert_eq!(out.stdout, reference);
}

#[test]
fn one_liner_and_map_only_examples() {
    let d = Dir::new();
    let input = format!("{}/pg-metamorphosis.txt", ex("input"));
    let out = d.job("tr -s ' ' '\\n'", "@count", &[&input]);
    // uniq -c prints "  COUNT WORD"; gmr's @count prints "WORD<TAB>COUNT".
    let reference = d.uniq_count(&format!("tr -s ' ' '\\n' < {input}"));
    assert_eq!(sorted_lines(out.ok()), sorted_lines(&reference));
    let out = d
        .gmr_run()
        .quiet()
        .mapper("grep -i gregor")
        .reducers(0)
        .input(&input)
        .run();
    assert_eq!(out.ok(), d.sh(&format!("grep -i gregor {input}")));
}

/// The traffic job over `examples/logs`, referenced by the same scripts
/// piped through `sort` by hand.
fn traffic_reference(d: &Dir) -> Vec<u8> {
    d.piped(
        &ex("logs"),
        &format!("{} 2>/dev/null", ex("traffic/map.sh")),
        &ex("traffic/reduce.sh"),
    )
}

#[test]
fn traffic_example_counts_bad_lines_and_errors() {
    let d = Dir::new();
    let out = d
        .gmr_run()
        .mapper(ex("traffic/map.sh"))
        .reducer(ex("traffic/reduce.sh"))
        .reducers(2)
        .input(ex("logs"))
        .run();
    assert_eq!(sorted_lines(out.ok()), sorted_lines(&traffic_reference(&d)));
    let err = out.stderr();
    assert!(err.contains("counter traffic,malformed lines = 1"), "{err}");
    assert!(err.contains("counter traffic,server errors = 2"), "{err}");
}

#[test]
fn compressed_input_example() {
    let d = Dir::new();
    d.sh(&format!("cp -r {} logs && gzip logs/*.log", ex("logs")));
    let out = d.job(
        &ex("traffic/map.sh"),
        &ex("traffic/reduce.sh"),
        &[
            "logs/access-2024-05-01.log.gz",
            "logs/access-2024-05-02.log.gz",
            "logs/access-2024-05-03.log.gz",
        ],
    );
    assert_eq!(sorted_lines(out.ok()), sorted_lines(&traffic_reference(&d)));
}

#[test]
fn stage_by_stage_and_combiner_examples_match_the_word_count() {
    let d = Dir::new();
    let (map, reduce) = (ex("wordcount/map.sh"), ex("wordcount/reduce.sh"));
    let whole = d.job(&map, &reduce, &[&ex("input")]).ok().to_vec();
    d.sh(&format!(
        "{gmr} split --split-size 64K {input} | {gmr} map -q -m {map} -R 4 --workdir w \
         | {gmr} shuffle -q --workdir w | {gmr} reduce -q -r {reduce} --workdir w -o out",
        gmr = gmr_bin().display(),
        input = ex("input"),
    ));
    assert_same_lines(&parts(d.path("out")), &whole, "stage by stage");
    let combined = d.job(&map, "@sum", &["-c", "@sum", &ex("input")]);
    assert_same_lines(combined.ok(), &whole, "with @sum as combiner");
}

/// The secondary sort: each page's three largest responses, as `sort -k1,1
/// -k2,2nr` and the same awk give them; in one part exactly, and in three
/// the same lines.
#[test]
fn secondary_sort_example() {
    let d = Dir::new();
    let reference = d.sh(&format!(
        "cat {}/* | {} 2>/dev/null | LC_ALL=C sort -t \"$(printf '\\t')\" -k1,1 -k2,2nr | {}",
        ex("logs"),
        ex("traffic/map.sh"),
        ex("secondary/reduce.sh")
    ));
    let run = |r: &str| {
        d.gmr_run()
            .quiet()
            .mapper(ex("traffic/map.sh"))
            .reducer(ex("secondary/reduce.sh"))
            .flag("--sort-key", "1,1")
            .flag("--sort-key", "2,2nr")
            .reducers(r)
            .input(ex("logs"))
            .run()
            .ok()
            .to_vec()
    };
    assert_eq!(run("1"), reference);
    assert_eq!(sorted_lines(&run("3")), sorted_lines(&reference));
    assert!(reference.len() > 100);
}

/// The top-N list: the ten most frequent words of the counts job, as
/// `sort -k2,2nr | head` gives them.
#[test]
fn top_n_example() {
    let d = Dir::new();
    d.gmr_run()
        .quiet()
        .mapper("tr -s ' ' '\\n'")
        .reducer("@count")
        .output("counts")
        .input(ex("input"))
        .run()
        .ok();
    let top = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer(ex("topn/reduce.sh"))
        .reducers(1)
        .flag("--sort-key", "2,2nr")
        .input("counts")
        .run()
        .ok()
        .to_vec();
    let reference =
        d.sh("cat counts/part-* | LC_ALL=C sort -t \"$(printf '\\t')\" -k2,2nr | head -n 10");
    assert_eq!(top, reference);
    assert!(String::from_utf8_lossy(&top).starts_with("the\t"));
}

/// The parallel external sort: the parts one after another are the sorted
/// input.
#[test]
fn total_order_example() {
    let d = Dir::new();
    d.gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .reducers(4)
        .arg("--total-order")
        .output("sorted")
        .input(ex("input"))
        .run()
        .ok();
    assert_eq!(
        parts(d.path("sorted")),
        d.sh(&format!("cat {}/* | LC_ALL=C sort", ex("input")))
    );
}

#[test]
fn by_day_example_files_each_log_line_under_its_day() {
    let d = Dir::new();
    d.gmr_run()
        .quiet()
        .mapper(ex("byday/map.sh"))
        .reducers(0)
        .output("by-day")
        .arg("--output-by-key")
        .input(ex("logs"))
        .run()
        .ok();
    // Each day's directory holds that day's log, each line after its day.
    assert_eq!(
        names(d.path("by-day")),
        ["2024-May-01", "2024-May-02", "2024-May-03", "_SUCCESS"]
    );
    for day in 1..=3 {
        let got = parts(d.path(&format!("by-day/2024-May-0{day}")));
        let want = d.sh(&format!(
            "sed 's/^/2024-May-0{day}\t/' {}",
            ex(&format!("logs/access-2024-05-0{day}.log"))
        ));
        assert_eq!(got, want, "day {day}");
    }
}

/// The shell block of the README's quick tour.
fn readme_tour() -> String {
    let readme = String::from_utf8(read(repo().join("README.md"))).unwrap();
    let tour = &readme[readme.find("## A quick tour").expect("a quick tour")..];
    let start = tour.find("```sh\n").expect("a sh block") + 6;
    tour[start..start + tour[start..].find("```").expect("its end")].to_string()
}

#[test]
fn the_readme_tour_runs_twice_and_leaves_the_repository_alone() {
    let d = Dir::new();
    let tour = readme_tour();
    assert!(tour.contains("cd \"$(mktemp -d)\""), "{tour}");
    let top = || -> Vec<String> {
        names(repo())
            .into_iter()
            .filter(|n| n != "target")
            .collect()
    };
    let before = top();
    let path = format!(
        "{}:{}",
        gmr_bin().parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    for run in 1..=2 {
        // As pasted at the repository root, with gmr on PATH.
        let out = std::process::Command::new("bash")
            .args(["-e", "-o", "pipefail", "-c", &tour])
            .current_dir(repo())
            .env("PATH", &path)
            .env("TMPDIR", d.path(""))
            .env("XDG_STATE_HOME", d.path("state"))
            .env("LC_ALL", "C")
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "run {run} of the tour: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    assert_eq!(top(), before, "the tour wrote into the repository");
    // Each run had its own scratch directory, with every output in it.
    let scratch: Vec<String> = names(d.path(""))
        .into_iter()
        .filter(|n| n.starts_with("tmp."))
        .collect();
    assert_eq!(scratch.len(), 2, "{scratch:?}");
    for s in scratch {
        for out in [
            "words/_SUCCESS",
            "counts.txt",
            "sorted/_SUCCESS",
            "traffic/_SUCCESS",
            "by-day/_SUCCESS",
            "by-day/2024-May-01/part-00000",
        ] {
            assert!(d.path(&format!("{s}/{out}")).exists(), "{s}/{out}");
        }
    }
}
