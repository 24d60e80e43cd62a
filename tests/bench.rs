//! The benchmark script still runs and its methods still agree: a smoke
//! run on a 2 MB corpus. No timing is asserted here; speed is measured by
//! `scripts/bench` itself and recorded in BENCHMARKS.md.

mod common;
use common::*;
use std::process::Command;

#[test]
fn bench_smoke_run_agrees() {
    let d = Dir::new();
    let out = Command::new(repo().join("scripts/bench"))
        .args(["--smoke", "--only", "awk-wc,identity,oneliner", "--gmr"])
        .arg(gmr_bin())
        .arg("--cache")
        .arg(d.path("cache"))
        .arg("--tmpdir")
        .arg(d.path("tmp"))
        .output()
        .expect("python3 runs scripts/bench");
    // Tables go to stdout, verification notes to stderr.
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "bench failed:\n{text}");
    assert_eq!(text.matches("outputs agree").count(), 3, "{text}");
    assert!(text.contains("== targets"), "{text}");
    // The awk word count's programs ran alone and side by side.
    assert!(text.contains("limit share"), "{text}");
    assert!(text.contains("side share"), "{text}");
}
