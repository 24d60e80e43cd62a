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
    let reference = d.sh(&format!(
        "cat {}/* | {} | sort | {}",
        ex("input"),
        ex("wordcount/map.sh"),
        ex("wordcount/reduce.sh")
    ));
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
        .gmr(&[
            "run",
            "-q",
            "-m",
            &ex("grep/map.sh"),
            "-r",
            "cut -f2-",
            "-R",
            "1",
            &ex("input"),
        ])
        .env("PATTERN", "gregor")
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
    let reference = d.sh(&format!(
        "tr -s ' ' '\\n' < {input} | sort | uniq -c | sed -E 's/^ *([0-9]+) (.*)$/\\2\t\\1/'"
    ));
    assert_eq!(sorted_lines(out.ok()), sorted_lines(&reference));
    let out = d.run(&["run", "-q", "-m", "grep -i gregor", "-R", "0", &input]);
    assert_eq!(out.ok(), d.sh(&format!("grep -i gregor {input}")));
}
