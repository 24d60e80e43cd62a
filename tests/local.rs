//! The local engine, end to end: the real binary, real scripts, real data,
//! compared with independent references (the course's expected files, and
//! the same mapper and reducer piped through `LC_ALL=C sort` by hand).

mod common;
use common::*;
use std::fs;

fn eecs(sub: &str) -> String {
    data(&format!("eecs485/{sub}"))
}

#[test]
fn eecs485_word_count_matches_expected() {
    let d = Dir::new();
    let expected = sorted_lines(&read(data("eecs485/correct/word_count_correct.txt")));
    for r in ["1", "3", "8"] {
        let out = d.job(
            &job("eecs_wc_map.sh"),
            &sum_reduce(),
            &["-R", r, &eecs("input")],
        );
        assert_eq!(sorted_lines(out.ok()), expected, "word count with -R {r}");
    }
    assert!(
        d.leftover_workdirs().is_empty(),
        "a successful run removes its work directory"
    );
}

#[test]
fn eecs485_grep_is_byte_exact() {
    let d = Dir::new();
    let out = d.job(
        &job("eecs_grep_map.sh"),
        &job("values_reduce.sh"),
        &["-R", "1", &eecs("input")],
    );
    assert_eq!(out.ok(), read(data("eecs485/correct/grep_correct.txt")));
}

#[test]
fn eecs485_large_input_with_a_64k_line_and_no_final_newline() {
    let d = Dir::new();
    let input = eecs("input_large");
    let file02 = read(data("eecs485/input_large/file02"));
    assert_ne!(file02.last(), Some(&b'\n'), "the data has no final newline");
    let reference = d.word_count_reference(&input);
    let out = d.word_count(&["-R", "1", "--split-size", "16K", &input]);
    assert_eq!(out.ok(), reference);
}

#[test]
fn eecs485_intermediate_data_reduces_like_the_reference() {
    // Already-mapped word<TAB>1 lines: an identity mapper and a summing reducer.
    let d = Dir::new();
    let input = eecs("input_large_intermediate");
    let reference = d.sh(&format!("cat {input}/* | sort | {}", sum_reduce()));
    let out = d.job("cat", &sum_reduce(), &["-R", "4", &input]);
    assert_eq!(sorted_lines(out.ok()), sorted_lines(&reference));
}

#[test]
fn eecs485_partitions_hold_the_same_records_as_the_course_workers() {
    // The course's worker files partition with md5, gmr with XXH3: compare
    // the union, and check that gmr's partitions are sorted and disjoint.
    let d = Dir::new();
    let gmr = gmr_bin().display().to_string();
    d.sh(&format!(
        "{gmr} split {} | {gmr} map -q -m cat -R 2 --workdir w | {gmr} shuffle -q --workdir w",
        eecs("input_large_intermediate")
    ));
    let ours = d.sh("cat w/shuffle/part-00000 w/shuffle/part-00001 | sort");
    let theirs = d.sh(&format!("cat {}/* | sort", eecs("test_worker_11")));
    assert_eq!(ours, theirs);
    let keys = |p: &str| -> std::collections::BTreeSet<Vec<u8>> {
        let data = read(d.path(p));
        let lines: Vec<&[u8]> = data
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        assert!(lines.windows(2).all(|w| w[0] <= w[1]), "{p} is sorted");
        lines
            .iter()
            .map(|l| l.split(|&b| b == b'\t').next().unwrap().to_vec())
            .collect()
    };
    assert!(keys("w/shuffle/part-00000").is_disjoint(&keys("w/shuffle/part-00001")));
}

#[test]
fn gutenberg_matches_the_unix_pipeline_byte_for_byte() {
    let d = Dir::new();
    let corpus = gutenberg();
    let reference = d.word_count_reference(&corpus);
    // One partition is globally sorted: byte-identical to the pipeline.
    let out = d.word_count(&["-R", "1", &corpus]);
    assert_eq!(out.ok(), reference);
}

#[test]
fn output_is_identical_whatever_jobs_and_split_size() {
    let d = Dir::new();
    let corpus = gutenberg();
    let mut outputs = Vec::new();
    for (j, size) in [("1", "64M"), ("2", "100K"), ("4", "1M"), ("3", "7K")] {
        let out = d.word_count(&["-R", "5", "-j", j, "--split-size", size, &corpus]);
        outputs.push(out.ok().to_vec());
    }
    assert!(
        outputs.windows(2).all(|w| w[0] == w[1]),
        "outputs differ across -j / --split-size"
    );
}

#[test]
fn spilling_with_a_tiny_sort_buffer_gives_the_same_output() {
    let d = Dir::new();
    let corpus = gutenberg();
    let wc = d.gmr_run().word_count().reducers(3).jobs(2).input(&corpus);
    let plain = wc.run();
    let spilled = wc.clone().sort_buffer("64K").run();
    assert_eq!(spilled.ok(), plain.ok());
    assert!(
        spilled.stderr().contains(" spill"),
        "summary reports spills:\n{}",
        spilled.stderr()
    );
    assert!(!plain.stderr().contains(" spill"));
}

#[test]
fn stages_piped_equal_run() {
    let d = Dir::new();
    let corpus = gutenberg();
    let run = d.word_count(&["-R", "4", "-o", "run-out", &corpus]);
    run.ok();
    let pipeline = format!(
        "{gmr} split --split-size 256K {corpus} | {gmr} map -q -m {m} -R 4 --workdir w | {gmr} shuffle -q --workdir w | {gmr} reduce -q -r {r} --workdir w -o stage-out",
        gmr = gmr_bin().display(),
        m = words_map(),
        r = sum_reduce(),
    );
    let manifest = String::from_utf8(d.sh(&pipeline)).unwrap();
    assert_eq!(
        manifest.lines().count(),
        4,
        "one part line per partition:\n{manifest}"
    );
    assert!(manifest.lines().all(|l| l.starts_with(r#"{"type":"part""#)));
    assert_eq!(names(d.path("stage-out")), names(d.path("run-out")));
    for n in names(d.path("run-out")) {
        assert_eq!(
            read(d.path("stage-out").join(&n)),
            read(d.path("run-out").join(&n)),
            "{n} differs"
        );
    }
    // Skipping the shuffle (reduce merges straight from the map outputs) is the same too.
    let skip = format!(
        "{gmr} split {corpus} | {gmr} map -q -m {m} -R 4 --workdir w2 | {gmr} reduce -q -r {r}",
        gmr = gmr_bin().display(),
        m = words_map(),
        r = sum_reduce(),
    );
    assert_eq!(d.sh(&skip), parts(d.path("run-out")));
}

/// `gmr map` checks split lines as a whole before anything runs: two runs
/// of one file concatenated, a line dropped or given twice, a gap in lines
/// of an older version: each is refused (exit 2) naming the file or the
/// line, and no work directory is made. Runs of different files
/// concatenated, and a file named twice in one run, are read as `cat`
/// reads them.
#[test]
fn split_lines_are_checked_whole() {
    let d = Dir::new();
    d.sh("seq 1 200000 | sed 's/$/ x/' > a.txt && seq 1 1000 > b.txt");
    let gmr = gmr_bin().display().to_string();
    let split = |args: &str| d.sh(&format!("{gmr} split --split-size 64K {args}"));
    let map = |lines: &[u8]| {
        d.run_stdin(
            &["map", "-q", "-m", "cat", "-R", "2", "--workdir", "w"],
            lines,
        )
    };
    let refused = |lines: Vec<u8>, says: &str| {
        let err = map(&lines).fails(2);
        assert!(err.contains(says), "{err}");
        assert!(!d.path("w").exists(), "{err}");
    };
    let one = split("a.txt");
    let lines: Vec<&[u8]> = one.split_inclusive(|&b| b == b'\n').collect();
    assert!(lines.len() > 20);
    // Two runs of one file (other split sizes too): every record twice.
    let mut twice = one.clone();
    twice.extend(d.sh(&format!("{gmr} split --split-size 100K a.txt")));
    refused(twice, "two gmr split runs");
    // A line dropped, or given twice.
    let dropped: Vec<u8> = lines
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 5)
        .flat_map(|(_, l)| l.to_vec())
        .collect();
    refused(dropped, "missing (index 5)");
    let doubled: Vec<u8> = lines
        .iter()
        .enumerate()
        .flat_map(|(i, l)| if i == 5 { l.repeat(2) } else { l.to_vec() })
        .collect();
    refused(doubled, "index 5 of one gmr split run is on stdin twice");
    // A whole file of two dropped.
    let both = split("a.txt b.txt");
    let without_b: Vec<u8> = both
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| !String::from_utf8_lossy(l).contains("b.txt"))
        .flat_map(|l| l.to_vec())
        .collect();
    refused(without_b, "missing");
    // Lines of an older gmr (no run, no size): a gap is still seen.
    let old = d.sh(&format!("{gmr} split --split-size 64K a.txt | sed 's/,\"size\":[0-9]*,\"plan\":{{[^}}]*}}//' | sed 6d"));
    assert!(!String::from_utf8_lossy(&old).contains("plan"));
    let (start, end) = {
        let line: serde_json::Value = serde_json::from_slice(lines[5]).unwrap();
        (
            line["start"].as_u64().unwrap(),
            line["end"].as_u64().unwrap(),
        )
    };
    refused(
        old,
        &format!(
            "bytes {start}..{end} of input {}",
            d.path("a.txt").display()
        ),
    );
    // Runs of different files, and a file named twice in one run.
    let count = |lines: Vec<u8>| {
        std::fs::write(d.path("lines"), lines).unwrap();
        let out = d.sh(&format!(
            "{gmr} map -q -m cat -R 2 --workdir c < lines | {gmr} reduce -q -r @count --workdir c && rm -r c"
        ));
        sorted_lines(&out)
    };
    let mut runs = one.clone();
    runs.extend(split("b.txt"));
    assert_eq!(count(runs), sorted_lines(&d.uniq_count("cat a.txt b.txt")));
    assert_eq!(
        count(split("a.txt b.txt a.txt")),
        sorted_lines(&d.uniq_count("cat a.txt b.txt a.txt"))
    );
}

/// Twenty thousand one-line files, named on the command line as one
/// directory: every line counted once, as `find | xargs cat | sort | uniq
/// -c` counts them. (Planning them was quadratic: 100,000 files never
/// finished; `scripts/bench --only many-files` times it.)
#[test]
fn twenty_thousand_small_files_are_each_read_once() {
    let d = Dir::new();
    std::fs::create_dir(d.path("many")).unwrap();
    for i in 1..=20000 {
        std::fs::write(
            d.path(&format!("many/f{i:05}")),
            format!("line {}\n", i % 997),
        )
        .unwrap();
    }
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("@count")
        .input("many")
        .run();
    assert_eq!(
        sorted_lines(out.ok()),
        sorted_lines(&d.uniq_count("find many -type f | xargs cat"))
    );
}

/// Files whose size the kernel does not know (procfs: size 0; sysfs: 4096)
/// are read as streams, not as empty or as changed while the job ran.
#[test]
fn proc_and_sys_files_are_read_whole() {
    let d = Dir::new();
    let mut files = vec!["/proc/filesystems", "/proc/version"];
    if std::path::Path::new("/sys/devices/system/cpu/possible").exists() {
        files.push("/sys/devices/system/cpu/possible");
    }
    for file in files {
        let out = d
            .gmr_run()
            .quiet()
            .mapper("cat")
            .reducer("cat")
            .input(file)
            .run();
        // Each part is sorted; which key's part comes first is the hash's.
        assert_eq!(
            sorted_lines(out.ok()),
            sorted_lines(&d.sh(&format!("cat {file}"))),
            "{file}"
        );
        let staged = d.sh(&format!(
            "{gmr} split {file} | {gmr} map -q -m cat -R 2 | {gmr} reduce -q -r cat | LC_ALL=C sort",
            gmr = gmr_bin().display()
        ));
        assert_eq!(staged, d.sh(&format!("LC_ALL=C sort {file}")), "{file}");
    }
    // A directory of them: each file whole, in name order (-R 0).
    if std::path::Path::new("/sys/kernel/mm/transparent_hugepage").is_dir() {
        let dir = "/sys/kernel/mm/transparent_hugepage";
        let out = d
            .gmr_run()
            .quiet()
            .mapper("cat")
            .reducers(0)
            .input(dir)
            .run();
        let want = d.sh(&format!(
            "for f in {dir}/*; do [ -f \"$f\" ] && cat \"$f\"; done"
        ));
        assert_eq!(out.ok(), want);
    }
}

#[test]
fn stage_manifests_account_for_every_record() {
    let d = Dir::new();
    let input = eecs("input_large");
    let lines = |cmd: &str| json_lines(&d.sh(cmd));
    let gmr = gmr_bin().display().to_string();
    let splits = lines(&format!("{gmr} split --split-size 100K {input}"));
    assert!(splits.len() > 4);
    let maps = lines(&format!(
        "{gmr} split --split-size 100K {input} | {gmr} map -q -m {} -R 3 --workdir w | tee maps",
        words_map()
    ));
    let records_in: u64 = maps.iter().map(|m| m["records_in"].as_u64().unwrap()).sum();
    let records_out: u64 = maps
        .iter()
        .map(|m| m["records_out"].as_u64().unwrap())
        .sum();
    // `grep -c ''` counts a last line without newline too (none of these
    // files ends in one).
    let count = d.sh(&format!(
        "for f in {input}/*; do grep -c '' \"$f\"; done | awk '{{ s += $1 }} END {{ print s }}'"
    ));
    let input_records: u64 = String::from_utf8(count).unwrap().trim().parse().unwrap();
    assert_eq!(records_in, input_records);
    let words = d.sh(&format!("cat {input}/* | {} | wc -l", words_map()));
    let words: u64 = String::from_utf8(words).unwrap().trim().parse().unwrap();
    assert_eq!(records_out, words);
    let parts = lines(&format!("{gmr} shuffle -q --workdir w < maps"));
    let merged: u64 = parts.iter().map(|p| p["records"].as_u64().unwrap()).sum();
    assert_eq!(merged, records_out);
}

#[test]
fn map_only_keeps_input_order() {
    let d = Dir::new();
    let mut text = String::new();
    for i in 0..5000 {
        text.push_str(&format!("line {i}\n"));
    }
    d.write("in/a", &text);
    d.write("in/b", "b1\nb2");
    let out = d
        .gmr_run()
        .quiet()
        .mapper("sed s/^/x/")
        .reducers(0)
        .split_size("1K")
        .input("in")
        .run();
    // The last line, without a newline in the input, ends with one.
    let expected = d.sh("cat in/a in/b | sed s/^/x/; echo");
    assert_eq!(out.ok(), expected);
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducers(0)
        .split_size("10K")
        .output("o")
        .input("in")
        .run();
    out.ok();
    assert!(d.path("o/_SUCCESS").exists());
    assert!(
        names(d.path("o"))
            .iter()
            .filter(|n| n.starts_with("part-"))
            .count()
            > 2
    );
    assert_eq!(
        parts(d.path("o")),
        read(d.path("in/a"))
            .into_iter()
            .chain(*b"b1\nb2\n")
            .collect::<Vec<u8>>()
    );
}

#[test]
fn key_fields_and_separator() {
    let d = Dir::new();
    d.write(
        "sales.csv",
        "eu,fr,3\nus,ny,5\neu,fr,4\neu,de,1\nus,ny,1\nus,ca,2\n",
    );
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("awk -F, '{k=$1\",\"$2; s[k]+=$3} END {for (k in s) print k\",\"s[k]}'")
        .flag("--separator", ",")
        .flag("--key-fields", 2)
        .reducers(3)
        .input("sales.csv")
        .run();
    assert_eq!(
        sorted_lines(out.ok()),
        sorted_lines(b"eu,de,1\neu,fr,7\nus,ca,2\nus,ny,6\n")
    );
    // Every record of one key reaches one reducer: each part has distinct keys.
    let out = d.job(
        "cat",
        "@count",
        &[
            "--separator",
            ",",
            "--key-fields",
            "2",
            "-R",
            "2",
            "-o",
            "o",
            "sales.csv",
        ],
    );
    out.ok();
    assert_eq!(
        sorted_lines(&parts(d.path("o"))),
        sorted_lines(b"eu,de,1\neu,fr,2\nus,ca,1\nus,ny,2\n")
    );
}

#[test]
fn values_are_sorted_within_a_key() {
    let d = Dir::new();
    d.write("in", "k\t3\nk\t1\nj\tz\nk\t2\nj\ta\n");
    let out = d.job("cat", "cat", &["-R", "1", "--split-size", "4", "in"]);
    assert_eq!(out.ok(), b"j\ta\nj\tz\nk\t1\nk\t2\nk\t3\n");
}

#[test]
fn combiner_gives_the_same_output_and_fewer_records() {
    let d = Dir::new();
    let corpus = gutenberg();
    let plain = d.gmr_run().word_count().reducers(3).input(&corpus).run();
    let combined = d
        .gmr_run()
        .mapper(words_map())
        .combiner(sum_reduce())
        .reducer(sum_reduce())
        .reducers(3)
        .input(&corpus)
        .run();
    assert_eq!(combined.ok(), plain.ok());
    assert!(
        combined.stderr().contains("combiner"),
        "{}",
        combined.stderr()
    );
    let builtin = d
        .gmr_run()
        .quiet()
        .mapper(words_map())
        .combiner("@sum")
        .reducer("@sum")
        .reducers(3)
        .input(&corpus)
        .run();
    assert_eq!(builtin.ok(), plain.ok());
}

#[test]
fn a_combiner_runs_only_where_it_pays() {
    let d = Dir::new();
    let corpus = gutenberg();
    // Each run of the combiner leaves a line in `runs`, then sums.
    let combiner = d.script(
        "combine.sh",
        &format!("echo run >> runs\nexec {}", sum_reduce()),
    );
    let combiner = combiner.to_str().unwrap();
    let reference = d.word_count_reference(&corpus);
    let runs = |name: &str| {
        let n = std::fs::read_to_string(d.path("runs")).map_or(0, |s| s.lines().count());
        std::fs::remove_file(d.path("runs")).ok();
        eprintln!("{name}: {n} combiner runs");
        n
    };
    // `word<TAB>1` lines repeat: the map task counts their copies, and
    // each run has a line per key, so the combiner's output could not be
    // smaller than the run. It is not run at all.
    let words = d
        .gmr_run()
        .mapper(words_map())
        .combiner(combiner)
        .reducer(sum_reduce())
        .args(["-j", "1", "-R", "1", "--split-size", "256K"])
        .input(&corpus)
        .run();
    assert_eq!(words.ok(), reference);
    assert_eq!(runs("word<TAB>1"), 0);
    assert!(
        words.stderr().contains("runs not combined"),
        "{}",
        words.stderr()
    );
    // Values that differ (a word's place in its line) make most lines
    // distinct: the combiner shrinks each run and runs on all of them.
    let numbered = "awk '{ for (i = 1; i <= NF; i++) print $i \"\\t\" i % 7 }'";
    let sums = d
        .gmr_run()
        .mapper(numbered)
        .combiner(combiner)
        .reducer(sum_reduce())
        .args(["-j", "1", "-R", "1", "--split-size", "256K"])
        .input(&corpus)
        .run();
    assert!(sums.ok() == d.piped(&corpus, numbered, &sum_reduce()));
    // As many runs as map tasks (none spills), the summary says.
    let stderr = sums.stderr();
    let tasks: usize = stderr
        .lines()
        .find_map(|l| l.trim().strip_prefix("map"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no map line in {stderr}"));
    assert!(tasks > 2, "{stderr}");
    assert_eq!(runs("numbered"), tasks, "{stderr}");
    assert!(!stderr.contains("runs not combined"), "{stderr}");
    // A combiner that keeps every line (here `cat`, as a command) is
    // tried on two runs, then no more.
    let keeps = d.script("keeps.sh", "echo run >> runs\nexec cat");
    let same = d
        .gmr_run()
        .quiet()
        .mapper(numbered)
        .combiner(keeps.to_str().unwrap())
        .reducer(sum_reduce())
        .args(["-j", "1", "-R", "1", "--split-size", "256K"])
        .input(&corpus)
        .run();
    assert!(same.ok() == sums.ok());
    assert_eq!(runs("cat"), 2);
}

#[test]
fn builtin_reducers_match_their_scripts() {
    let d = Dir::new();
    d.write("in", "b 4\na 1\nb -2\nc 7\na 10\n");
    let cases: [(&str, &[u8]); 5] = [
        ("@count", b"a\t2\nb\t2\nc\t1\n"),
        ("@sum", b"a\t11\nb\t2\nc\t7\n"),
        ("@max", b"a\t10\nb\t4\nc\t7\n"),
        ("@min", b"a\t1\nb\t-2\nc\t7\n"),
        ("@identity", b"a\t1\na\t10\nb\t-2\nb\t4\nc\t7\n"),
    ];
    for (builtin, expected) in cases {
        let out = d.job("tr ' ' '\\t'", builtin, &["-R", "1", "in"]);
        assert_eq!(out.ok(), expected, "{builtin}");
    }
    let err = d
        .run(&["run", "-q", "-m", "cat", "-r", "@nope", "in"])
        .fails(2);
    assert!(err.contains("@count"), "{err}");
}

#[test]
fn non_utf8_keys_sort_bytewise() {
    let d = Dir::new();
    d.write(
        "in",
        b"\xff\xfe\t1\nabc\t1\n\x80x\t2\n\xff\xfe\t3\nABC\t1\n\x01\t1\n",
    );
    let out = d.job("cat", &sum_reduce(), &["-R", "1", "in"]);
    assert_eq!(
        out.ok(),
        b"\x01\t1\nABC\t1\nabc\t1\n\x80x\t2\n\xff\xfe\t4\n"
    );
}

#[test]
fn lines_without_separator_are_passed_unchanged() {
    let d = Dir::new();
    d.write("in", "b\na\tx\na\nb\n");
    let out = d.job("cat", "cat", &["-R", "1", "in"]);
    assert_eq!(out.ok(), b"a\na\tx\nb\nb\n");
}

#[test]
fn stdin_is_read_when_no_input_is_given() {
    let d = Dir::new();
    let count = |r: u32| {
        d.gmr_run()
            .quiet()
            .mapper("cat")
            .reducer("@count")
            .reducers(r)
    };
    let out = count(2).run_stdin(b"x\ny\nx\n");
    assert_eq!(sorted_lines(out.ok()), sorted_lines(b"x\t2\ny\t1\n"));
    let out = count(1).input("-").run_stdin(b"z\nz");
    assert_eq!(out.ok(), b"z\t2\n");
}

#[test]
fn tasks_see_their_context_in_the_environment() {
    let d = Dir::new();
    d.write("in/one", "a\n");
    d.write("in/two", "b\n");
    let m = d.script("m.sh", "cat >/dev/null; echo \"$GMR_TASK\t$GMR_ATTEMPT $(basename \"$GMR_INPUT_FILE\") $(basename \"$mapreduce_map_input_file\") $mapreduce_task_partition\"");
    let r = d.script(
        "r.sh",
        "cat; echo \"reduce\t$GMR_TASK $mapreduce_task_partition\"",
    );
    let out = d.job(m.to_str().unwrap(), r.to_str().unwrap(), &["-R", "1", "in"]);
    let text = String::from_utf8(out.ok().to_vec()).unwrap();
    assert!(text.contains("map-00000\t1 one one 0"), "{text}");
    assert!(text.contains("map-00001\t1 two two 1"), "{text}");
    assert!(text.contains("reduce\treduce-00000 0"), "{text}");
}

#[test]
fn a_mapper_that_ignores_stdin_is_fine() {
    let d = Dir::new();
    d.write("big", "x\n".repeat(2_000_000));
    let out = d.job(
        "echo hello",
        "@count",
        &["-R", "1", "--split-size", "1M", "big"],
    );
    let text = String::from_utf8(out.ok().to_vec()).unwrap();
    assert!(text.starts_with("hello\t"), "{text}");
    let out = d.job(
        "head -n 1",
        "@count",
        &["-R", "1", "--split-size", "64M", "big"],
    );
    assert_eq!(out.ok(), b"x\t1\n");
}

#[test]
fn a_task_writing_megabytes_to_stderr_does_not_hang() {
    let d = Dir::new();
    d.write("in", "a\nb\n");
    let m = d.script(
        "noisy.sh",
        "head -c 10000000 /dev/zero | tr '\\0' 'e' | fold -w 100 >&2; cat",
    );
    let out = d.job(m.to_str().unwrap(), "cat", &["-R", "1", "in"]);
    assert_eq!(out.ok(), b"a\nb\n");
}

#[test]
fn a_failing_mapper_is_retried_then_fails_the_job_with_its_stderr() {
    let d = Dir::new();
    d.write("in/good", "ok\n");
    d.write("in/bad", "boom\n");
    let m = d.script("m.sh", "echo attempt >> attempts.log; if grep -q boom; then echo 'cannot parse boom' >&2; exit 3; fi; echo fine");
    let out = d
        .gmr_run()
        .mapper(m.to_str().unwrap())
        .reducer("cat")
        .retries(2)
        .input("in")
        .run();
    let err = out.fails(1);
    assert!(err.contains("gmr: task map-00000 failed 3 times"), "{err}");
    assert!(err.contains("exited with status 3"), "{err}");
    assert!(
        err.contains("cannot parse boom"),
        "stderr tail shown: {err}"
    );
    assert!(err.contains("/in/bad"), "the split is named: {err}");
    assert!(err.contains("work directory is kept"), "{err}");
    // 3 attempts of the bad split, and the good split once (or not at all
    // if the job stopped first).
    let attempts = read(d.path("attempts.log"))
        .iter()
        .filter(|&&b| b == b'\n')
        .count();
    assert!((3..=4).contains(&attempts), "{attempts} attempts");
}

#[test]
fn a_mapper_that_fails_once_succeeds_on_retry() {
    let d = Dir::new();
    d.write("in", "a\nb\n");
    let m = d.script("m.sh", "if [ \"$GMR_ATTEMPT\" = 1 ]; then exit 1; fi; cat");
    let out = d
        .gmr_run()
        .mapper(m.to_str().unwrap())
        .reducer("cat")
        .reducers(1)
        .input("in")
        .run();
    assert_eq!(out.ok(), b"a\nb\n");
    // The summary says what was retried, and why, in the singular.
    let err = out.stderr();
    assert!(err.contains("1 failed attempt retried"), "{err}");
    let named = err
        .lines()
        .find(|l| l.starts_with("  retried map-00000 after attempt 1 on local: mapper "));
    assert!(
        named.is_some_and(|l| l.contains("exited with status 1")),
        "{err}"
    );
    assert!(err.contains("  map         1 task  "), "{err}");
}

#[test]
fn a_failing_reducer_fails_the_job() {
    let d = Dir::new();
    d.write("in", "a\n");
    let err = d
        .gmr_run()
        .mapper("cat")
        .reducer("echo no >&2; exit 9")
        .retries(0)
        .output("o")
        .input("in")
        .run()
        .fails(1);
    assert!(
        err.contains("reducer") && err.contains("status 9") && err.contains("no"),
        "{err}"
    );
    assert!(!d.path("o/_SUCCESS").exists());
    let left: Vec<String> = names(d.path("o"));
    assert!(
        left.iter().all(|n| !n.starts_with('.')),
        "no attempt files left: {left:?}"
    );
}

#[test]
fn missing_or_unusable_commands_are_usage_errors_before_any_task() {
    let d = Dir::new();
    d.write("in", "a\n");
    d.write("not-exec.sh", "#!/bin/sh\ncat\n");
    let err = d
        .run(&["run", "-m", "./not-exec.sh", "-r", "cat", "in"])
        .fails(2);
    assert!(
        err.contains("not executable") && err.contains("chmod +x"),
        "{err}"
    );
    let err = d
        .run(&["run", "-m", "./nope.sh", "-r", "cat", "in"])
        .fails(2);
    assert!(
        err.starts_with("gmr: mapper `./nope.sh` not found"),
        "{err}"
    );
    let err = d
        .run(&["run", "-m", "cat", "-r", "no-such-reducer-xyz", "in"])
        .fails(2);
    assert!(
        err.contains("reducer `no-such-reducer-xyz` not found in PATH"),
        "{err}"
    );
    assert!(d.leftover_workdirs().is_empty());
}

#[test]
fn missing_input_is_a_usage_error() {
    let d = Dir::new();
    let err = d
        .run(&["run", "-m", "cat", "-r", "cat", "nope.txt"])
        .fails(2);
    assert!(err.starts_with("gmr: cannot read input nope.txt"), "{err}");
    assert!(err.contains("No such file"), "{err}");
    assert!(d.leftover_workdirs().is_empty());
}

#[test]
fn an_existing_output_directory_is_refused_unless_forced() {
    let d = Dir::new();
    d.write("in", "a\n");
    d.write("o/keep.txt", "precious");
    let err = d
        .run(&["run", "-m", "cat", "-r", "cat", "-o", "o", "in"])
        .fails(2);
    assert!(
        err.contains("output directory o exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(read(d.path("o/keep.txt")), b"precious");
    assert_eq!(names(d.path("o")), ["keep.txt"]);
    // --force replaces an old output, not a file of the user's.
    let err = d
        .job("cat", "cat", &["-R", "2", "-o", "o", "--force", "in"])
        .fails(2);
    assert!(err.contains("also holds keep.txt"), "{err}");
    assert_eq!(read(d.path("o/keep.txt")), b"precious");
    d.job("cat", "cat", &["-R", "3", "-o", "old", "in"]).ok();
    d.job("cat", "cat", &["-R", "2", "-o", "old", "--force", "in"])
        .ok();
    assert_eq!(
        names(d.path("old")),
        ["_SUCCESS", "part-00000", "part-00001"]
    );
}

#[test]
fn empty_input_gives_empty_parts_and_success() {
    let d = Dir::new();
    d.write("empty", "");
    d.job("cat", "cat", &["-R", "3", "-o", "o", "empty"]).ok();
    assert_eq!(
        names(d.path("o")),
        ["_SUCCESS", "part-00000", "part-00001", "part-00002"]
    );
    assert!(parts(d.path("o")).is_empty());
    assert!(d.job("cat", "cat", &["empty"]).ok().is_empty());
}

#[test]
fn output_directory_holds_parts_and_success_marker() {
    let d = Dir::new();
    let corpus = gutenberg();
    d.word_count(&["-R", "4", "-o", "out", &corpus]).ok();
    assert_eq!(
        names(d.path("out")),
        [
            "_SUCCESS",
            "part-00000",
            "part-00001",
            "part-00002",
            "part-00003"
        ]
    );
    let reference = d.word_count_reference(&corpus);
    assert_eq!(
        sorted_lines(&parts(d.path("out"))),
        sorted_lines(&reference)
    );
    // Each part is sorted by key.
    for n in ["part-00000", "part-00003"] {
        let p = read(d.path("out").join(n));
        let lines: Vec<&[u8]> = p.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        assert!(lines.windows(2).all(|w| w[0] < w[1]), "{n} is sorted");
    }
}

/// Without -R a job has two partitions per slot (docs/guide.md), so that
/// the one that draws the heavy keys does not hold up the reduce phase;
/// the records are the same whatever the count.
#[test]
fn default_reducers_are_two_per_slot() {
    let d = Dir::new();
    let corpus = gutenberg();
    let reference = sorted_lines(&d.word_count_reference(&corpus));
    for (jobs, parts_made) in [(1, 2), (3, 6)] {
        let out = format!("out{jobs}");
        d.word_count(&["-j", &jobs.to_string(), "-o", &out, &corpus])
            .ok();
        let names = names(d.path(&out));
        let want: Vec<String> = std::iter::once("_SUCCESS".to_string())
            .chain((0..parts_made).map(|p| format!("part-{p:05}")))
            .collect();
        assert_eq!(names, want, "-j {jobs}");
        assert_eq!(sorted_lines(&parts(d.path(&out))), reference, "-j {jobs}");
    }
}

#[test]
fn directories_skip_hidden_and_underscore_files() {
    let d = Dir::new();
    d.write("in/a", "x\n");
    d.write("in/.hidden", "h\n");
    d.write("in/_SUCCESS", "");
    let out = d.job("cat", "cat", &["-R", "1", "in"]);
    assert_eq!(out.ok(), b"x\n");
}

#[test]
fn gzip_input_equals_plain_input() {
    let d = Dir::new();
    let corpus = gutenberg();
    d.sh(&format!(
        "mkdir gz && for f in {corpus}/*; do gzip -c \"$f\" > gz/$(basename \"$f\").gz; done"
    ));
    let wc = |input: &str| {
        d.gmr_run()
            .quiet()
            .word_count()
            .reducers(2)
            .input(input)
            .run()
    };
    let plain = wc(&corpus);
    let gz = wc("gz");
    assert_eq!(gz.ok(), plain.ok());
}

/// A stdout that is a file (which `io::copy` fills by copy_file_range)
/// gets the same
/// bytes as a pipe: after what the shell wrote there before, and at the
/// end of a file opened to append.
#[test]
fn a_stdout_redirected_to_a_file_gets_the_parts_in_order() {
    let d = Dir::new();
    let job = format!(
        "{} run -q -m cat -r cat -R 3 --total-order {}",
        gmr_bin().display(),
        gutenberg()
    );
    let sorted = d.sh(&format!("cat {}/* | LC_ALL=C sort", gutenberg()));
    assert!(
        sorted.len() > 2 << 20,
        "enough output for the copies in place"
    );
    assert_eq!(d.sh(&format!("{job} | cat")), sorted);
    d.sh(&format!("{job} > plain"));
    assert_eq!(read(d.path("plain")), sorted);
    d.sh(&format!("{{ echo first; {job}; echo last; }} > framed"));
    let framed = [&b"first\n"[..], &sorted, b"last\n"].concat();
    assert_eq!(read(d.path("framed")), framed);
    d.sh(&format!(
        "echo old > appended; {job} >> appended; {job} >> appended"
    ));
    let appended = [&b"old\n"[..], &sorted, &sorted].concat();
    assert_eq!(read(d.path("appended")), appended);
}

/// A file whose last line has no newline does not run into the next
/// file's first line, whether they are one map task's or two (-R 0: the
/// parts are read one after another).
#[test]
fn a_last_line_without_a_newline_stays_a_line_in_a_map_only_job() {
    let d = Dir::new();
    d.write("x", "a");
    d.write("y", "b\n");
    for split in ["1", "64M"] {
        let out = d
            .gmr_run()
            .quiet()
            .mapper("cat")
            .reducers(0)
            .split_size(split)
            .args(["x", "y"])
            .run();
        assert_eq!(out.ok(), b"a\nb\n", "--split-size {split}");
    }
}

/// A `-j` far above the cores (for commands that mostly wait) starts no
/// thread per slot for the sort: a tiny job stays a tiny job (it took
/// minutes at -j 20000 when it did).
#[test]
fn a_huge_j_on_a_tiny_input_is_no_burden() {
    let d = Dir::new();
    d.write("in", "b\na\n");
    let out = d
        .gmr_run()
        .quiet()
        .jobs(20000)
        .mapper("cat")
        .reducer("cat")
        .reducers(2)
        .input("in")
        .run();
    assert_same_lines(out.ok(), b"a\nb\n", "-j 20000");
}

#[test]
fn a_closed_stdout_is_not_an_error() {
    // Megabytes of output into `head -n 1`: gmr sees EPIPE and exits 0.
    let d = Dir::new();
    let cmd = format!(
        "{} run -q -m cat -R 0 {} | head -n 1 >/dev/null; echo \"${{PIPESTATUS[0]}}\"",
        gmr_bin().display(),
        gutenberg()
    );
    let out = d.sh(&format!("bash -c '{cmd}'"));
    assert_eq!(String::from_utf8(out).unwrap().trim(), "0");
}

#[test]
fn version_and_help_work() {
    let d = Dir::new();
    let v = d.run(&["--version"]);
    assert!(String::from_utf8_lossy(v.ok()).starts_with("gmr "));
    let h = d.run(&["run", "--help"]);
    let text = String::from_utf8_lossy(h.ok()).into_owned();
    assert!(
        text.contains("--reducers") && text.contains("Examples:"),
        "{text}"
    );
    d.run(&["run", "--no-such-flag"]).fails(2);
}

#[test]
fn interrupt_kills_children_and_leaves_no_partial_output() {
    use std::time::{Duration, Instant};
    let d = Dir::new();
    d.write("in", "a\nb\nc\nd\n");
    let m = d.script("slow.sh", "echo $$ >> pids; cat; exec sleep 60");
    let child = d
        .gmr_run()
        .quiet()
        .mapper(m.to_str().unwrap())
        .reducer("cat")
        .reducers(2)
        .split_size("2")
        .output("o")
        .input("in")
        .command()
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    while !d.path("pids").exists() && t0.elapsed() < Duration::from_secs(20) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    // SAFETY: signalling our own child.
    unsafe { libc_kill(child.id() as i32, 2) };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(t0.elapsed() < Duration::from_secs(30));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interrupted"), "{stderr}");
    assert!(!d.path("o/_SUCCESS").exists());
    assert!(
        names(d.path("o")).is_empty(),
        "no part or attempt files: {:?}",
        names(d.path("o"))
    );
    // The mappers (and their sleep) are gone.
    std::thread::sleep(Duration::from_millis(200));
    for pid in String::from_utf8(read(d.path("pids"))).unwrap().lines() {
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists()
                || fs::read_to_string(format!("/proc/{pid}/stat"))
                    .unwrap()
                    .contains(") Z"),
            "mapper {pid} still runs"
        );
    }
}

unsafe extern "C" {
    #[link_name = "kill"]
    fn libc_kill(pid: i32, sig: i32) -> i32;
}

#[test]
fn builtin_count_aggregates_map_side_even_when_spilling() {
    // A per-record mapper (tr -s would squeeze newlines across a split's
    // whole stream, so its output depends on where splits fall).
    let d = Dir::new();
    let corpus = gutenberg();
    let words = "awk '{ for (i = 1; i <= NF; i++) print $i }'";
    let reference = d.uniq_count(&format!("cat {corpus}/* | {words}"));
    for extra in [&[][..], &["--sort-buffer", "64K"][..]] {
        let out = d
            .gmr_run()
            .mapper(words)
            .reducer("@count")
            .reducers(3)
            .split_size("300K")
            .input(&corpus)
            .args(extra)
            .run();
        assert_same_lines(out.ok(), &reference, &format!("-r @count {extra:?}"));
        assert!(
            out.stderr().contains("combiner"),
            "@count combines map-side: {}",
            out.stderr()
        );
    }
}

#[test]
fn a_cat_mapper_read_straight_into_the_sort_buffer_loses_no_line() {
    // `-m cat` reads input straight into the sort buffer (once a task has
    // seen that its lines do not repeat: after 16384 of them). Lines of
    // every length, empty ones, one far longer than the buffer, files
    // without a last newline, small files sharing a task: spilled in the
    // middle of lines, the output is still the sorted input, every record
    // counted.
    let d = Dir::new();
    let lines = "sed 's/$/ some words to make lines longer/'";
    d.sh(&format!("mkdir in && seq 1 50000 | {lines} > in/a"));
    d.sh("head -c 300000 /dev/zero | tr '\\0' x >> in/a && echo >> in/a");
    d.sh(&format!(
        "seq 50001 100000 | {lines} >> in/a && printf '\\n\\nno newline' >> in/a"
    ));
    d.sh("printf 'no newline at the end' > in/b && printf '\\n\\n\\n' > in/c");
    d.sh("for i in 1 2 3; do printf \"small $i\\nlast $i\" > in/s$i; done");
    let want =
        d.sh("for f in in/*; do cat $f; [ -z \"$(tail -c1 $f)\" ] || echo; done | LC_ALL=C sort");
    let records = want.split(|&c| c == b'\n').count() - 1;
    for extra in [
        &[][..],
        &["--sort-buffer", "64K"],
        &["--one-mapper-per-task"],
    ] {
        let out = d
            .gmr_run()
            .mapper("cat")
            .reducer("cat")
            .reducers(3)
            .split_size("8M")
            .args(extra)
            .input("in")
            .run();
        assert_same_lines(out.ok(), &want, &format!("-m cat {extra:?}"));
        let err = out.stderr();
        let counted = format!("{records} records in");
        assert!(err.contains(&counted), "{extra:?}: {err}");
    }
    // One part: the sorted input itself.
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .reducers(1)
        .sort_buffer("64K")
        .input("in")
        .run();
    assert!(out.ok() == want, "one part is not the sorted input");
}

#[test]
fn parts_of_cat_go_straight_into_a_stdout_that_is_a_file() {
    // `-r cat` with stdout a file: each part is written at its place in the
    // file, none into the work directory. What is around gmr's output in
    // the file stays: text before it, and what is written after gmr ends.
    let d = Dir::new();
    let gmr = gmr_bin().display().to_string();
    d.sh("seq 200000 | awk '{ print ($1 * 7919) % 200003 \"\\tv\" $1 }' > in");
    let sorted = d.sh("LC_ALL=C sort in");
    let parts = |w: &str| fs::read_dir(d.path(w)).unwrap().count();
    for (order, want) in [("--total-order", Some(&sorted)), ("--key-fields=1", None)] {
        let job = format!("{gmr} run -q -m cat -r cat -R 3 --split-size 300K {order}");
        // Through a pipe, the parts are copied out of the work directory.
        let piped = d.sh(&format!("rm -rf w && {job} --workdir w in | cat"));
        assert_eq!(
            parts("w/output"),
            3,
            "{order}: parts kept in the work directory"
        );
        d.sh(&format!(
            "rm -rf w && {{ echo first; {job} --workdir w in; echo last; }} > out"
        ));
        assert_eq!(
            parts("w/output"),
            0,
            "{order}: the parts went straight to stdout"
        );
        let out = read(d.path("out"));
        assert!(
            out == [&b"first\n"[..], &piped, b"last\n"].concat(),
            "{order}"
        );
        if let Some(want) = want {
            assert!(&piped == want, "{order}: not the sorted input");
        }
        // Stderr into the same file: copied as usual, or a warning during
        // the job would land on the parts.
        d.sh(&format!("rm -rf w && {job} --workdir w in > out3 2>&1"));
        assert_eq!(parts("w/output"), 3, "{order}: 2>&1 gets copies");
        assert!(read(d.path("out3")) == piped, "{order}");
        // Two jobs at once into one stdout (`xargs -P2`): the first to get
        // there takes its range (the other, finding the file's end past its
        // length, copies its parts after it), and each output comes out
        // whole.
        d.sh(&format!(
            "rm -rf w1 w2 && {{ {job} --workdir w1 in & {job} --workdir w2 in; wait; }} > out4"
        ));
        assert!(
            read(d.path("out4")) == [&piped[..], &piped].concat(),
            "{order}: two jobs at once"
        );
        // Appended to (`>>`): copied as usual, after what was there.
        d.sh(&format!(
            "rm -rf w && echo first > out2 && {job} --workdir w in >> out2"
        ));
        assert_eq!(parts("w/output"), 3, "{order}: >> gets copies");
        assert!(
            read(d.path("out2")) == [&b"first\n"[..], &piped].concat(),
            "{order}"
        );
    }
}

#[test]
fn jobs_sharing_one_stdout_each_come_out_whole() {
    // `ls *.txt | xargs -P4 gmr run ... > all`: each job takes a range of
    // the file for its output, whether its parts go straight there (`-r
    // cat`) or are copied at the end (a command as reducer). Neither the
    // parts of two jobs nor their offsets may mix: the file is the four
    // outputs one after another, in some order.
    let d = Dir::new();
    let gmr = gmr_bin().display().to_string();
    // Large enough for a copy of one job's part to overlap another job
    // taking its range (this lost output before the copy took a range).
    for i in 1..=4 {
        let n = 300_000 * i;
        d.sh(&format!(
            "seq {n} | awk '{{ print \"job{i}-\" $1 \"\\t\" NR % 97 }}' > in{i}"
        ));
    }
    let outputs: Vec<Vec<u8>> = (1..=4).map(|i| d.sh(&format!("sort in{i}"))).collect();
    let orders: Vec<Vec<usize>> = (0..4usize.pow(4))
        .map(|n| (0..4).map(|k| n / 4usize.pow(k) % 4).collect::<Vec<_>>())
        .filter(|o| (0..4).all(|i| o.contains(&i)))
        .collect();
    for reducer in ["cat", "sh -c cat"] {
        for round in 0..3 {
            d.sh(&format!(
                "ls in? | xargs -P4 -I{{}} {gmr} run -q -m cat -r '{reducer}' --total-order -R 3 --split-size 256K {{}} > all"
            ));
            let all = read(d.path("all"));
            let whole = orders.iter().any(|o| {
                all == o
                    .iter()
                    .map(|&i| &outputs[i][..])
                    .collect::<Vec<_>>()
                    .concat()
            });
            assert!(
                whole,
                "-r {reducer:?}, round {round}: the outputs mixed ({} bytes)",
                all.len()
            );
        }
    }
}

#[test]
fn stages_on_stdin_pass_the_work_directory_along() {
    // `gmr split` spools stdin into a work directory of its own and names it
    // in its lines; the later stages find it there.
    let d = Dir::new();
    let gmr = gmr_bin().display().to_string();
    let stages = format!(
        "printf 'b\\na\\nb\\nc\\nb\\n' | {gmr} split | {gmr} map -q -m cat -R 2 | {gmr} shuffle -q"
    );
    let out = d.sh(&format!("{stages} | {gmr} reduce -q -r @count"));
    assert_eq!(sorted_lines(&out), sorted_lines(b"a\t1\nb\t3\nc\t1\n"));
    // The work directory split made for stdin is gone once reduce is done,
    // and only then.
    assert_eq!(fs::read_dir(d.path("tmp")).unwrap().count(), 0);
    let out = d.sh(&format!("{stages} >/dev/null; ls tmp"));
    assert!(String::from_utf8_lossy(&out).starts_with("gmr-"));
    let err = d.run_stdin(&["shuffle"], b"").fails(2);
    assert!(err.contains("no work directory"), "{err}");
    let err = d.run_stdin(&["map", "-m", "cat"], b"not json\n").fails(2);
    assert!(
        err.contains("line 1 of stdin is not a gmr manifest line"),
        "{err}"
    );
}

#[test]
fn merges_of_more_runs_than_open_files_take_several_passes() {
    // With 20 open files a merge may open only a few runs at once: ~200 map
    // outputs per reducer, and ~50 spills in one map task, are merged in
    // several passes. The output is that of the same job without a limit,
    // and no intermediate file is left behind.
    let d = Dir::new();
    let gmr = gmr_bin().display().to_string();
    let g = gutenberg();
    let want = d.job("cat", "cat", &["-R", "1", &g]).ok().to_vec();
    assert_eq!(
        sorted_lines(&want),
        sorted_lines(&d.sh(&format!("cat {g}/*"))),
        "every line once"
    );
    // A word mapper's lines repeat: map tasks count them and write their
    // runs counted (`N<SP>line`, docs/contracts.md §4), spilled, narrowed
    // and merged as such; every copy comes out, as `sort` orders them.
    let words = words_map();
    let want_words = d.sh(&format!("cat {g}/* | {words} | LC_ALL=C sort"));
    for (mapper, args, w, want) in [
        ("cat", "--split-size 16K -j 2", "w1", &want),
        (
            "cat",
            "--split-size 100M --sort-buffer 64K -j 1",
            "w2",
            &want,
        ),
        (
            &words,
            "--split-size 100M --sort-buffer 64K -j 1",
            "w3",
            &want_words,
        ),
        (&words, "--split-size 400K -j 2", "w4", &want_words),
    ] {
        let got = d.sh(&format!(
            "ulimit -n 20; {gmr} run -q -m {mapper} -r cat -R 1 {args} --workdir {w} {g}"
        ));
        assert!(&got == want, "-m {mapper} {args}: output differs");
        let indexes = d.sh(&format!("cat {w}/map/*/index.json"));
        assert_eq!(
            String::from_utf8_lossy(&indexes).contains("\"text_bytes\""),
            mapper != "cat",
            "-m {mapper} {args}: runs counted only where lines repeat"
        );
        let left = d.sh(&format!(
            "find {w} -type f | grep -v -e /reports/ -e /logs/ -e /index.json -e /out$ -e /job.json -e /report.json -e /report.html -e /status.json -e /attempts.jsonl -e /output/part- || true"
        ));
        assert_eq!(String::from_utf8_lossy(&left), "", "{args}: files left");
        let scratch = d.sh(&format!("find {w}/scratch -mindepth 1 2>/dev/null || true"));
        assert_eq!(
            String::from_utf8_lossy(&scratch),
            "",
            "{args}: scratch left"
        );
    }
}

#[test]
fn commands_get_the_open_file_limit_gmr_started_with() {
    // gmr raises its own soft limit for merges; mappers and reducers must
    // not inherit that (some programs walk every descriptor up to it).
    let d = Dir::new();
    d.write("in", "x\n");
    let gmr = gmr_bin().display().to_string();
    let out = d.sh(&format!(
        "ulimit -Sn 256; {gmr} run -q -m 'ulimit -Sn; cat >/dev/null' -r 'cat; ulimit -Sn' -R 1 in"
    ));
    assert_eq!(String::from_utf8_lossy(&out), "256\n256\n");
}

#[test]
fn many_small_files_share_map_tasks_and_lose_no_record() {
    // 150 files of a few lines, every third without its final newline: too
    // many for a task each, so they are fed several to a mapper, and a
    // file's last line must not run into the next file's first.
    let d = Dir::new();
    for i in 0..150 {
        let end = if i % 3 == 0 { "" } else { "\n" };
        d.write(
            &format!("in/f{i:03}"),
            format!("w{i} common\nmore{} words{end}", i % 7),
        );
    }
    let words = "awk '{ for (i = 1; i <= NF; i++) print $i }'";
    let reference = d.uniq_count(&format!("awk 1 in/* | {words}"));
    let out = d
        .gmr_run()
        .mapper(words)
        .reducer("@count")
        .reducers(2)
        .input("in")
        .run();
    assert_same_lines(out.ok(), &reference, "small files");
    let err = out.stderr();
    assert!(err.contains("300 records in"), "{err}");
    let tasks: usize = err
        .split_whitespace()
        .skip_while(|w| *w != "map")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(usize::MAX);
    assert!(tasks < 10, "150 small files in {tasks} map tasks: {err}");
    // The stages pass combined splits along in their lines.
    let gmr = gmr_bin().display().to_string();
    let staged = d.sh(&format!(
        "{gmr} split in | {gmr} map -q -m cat -R 1 --workdir w | {gmr} shuffle -q | {gmr} reduce -q -r cat"
    ));
    assert_eq!(sorted_lines(&staged), sorted_lines(&d.sh("awk 1 in/*")));
    // Map-only: each file's mapper output stays whole lines too.
    let map_only = d.run(&["run", "-q", "-m", "cat", "-R", "0", "in"]);
    assert_eq!(
        sorted_lines(map_only.ok()),
        sorted_lines(&d.sh("awk 1 in/*"))
    );
    // Every file still gets a mapper that sees it as its input file.
    let named = d
        .gmr_run()
        .quiet()
        .mapper("echo \"$(basename \"$GMR_INPUT_FILE\")\"; cat >/dev/null")
        .reducers(0)
        .input("in")
        .run();
    let names = sorted_lines(named.ok());
    assert_eq!(names.len(), 150);
    assert_eq!(names[0], b"f000");
    // --one-mapper-per-task: a mapper per task, fed the task's files one
    // after the other, each ending its last line; no GMR_INPUT_FILE.
    d.script(
        "starts.sh",
        "echo \"${GMR_INPUT_FILE-none}\" >> starts.log; awk '{ for (i = 1; i <= NF; i++) print $i }'",
    );
    let out = d
        .gmr_run()
        .mapper("./starts.sh")
        .reducer("@count")
        .reducers(2)
        .arg("--one-mapper-per-task")
        .input("in")
        .run();
    assert_same_lines(out.ok(), &reference, "one mapper per task");
    let err = out.stderr();
    assert!(err.contains("300 records in"), "{err}");
    let starts = sorted_lines(&read(d.path("starts.log")));
    assert!(starts.len() < 10, "{} mapper starts", starts.len());
    assert!(starts.iter().all(|s| s == b"none"), "{starts:?}");
    // Nor does the mapper of a task of one file.
    fs::remove_file(d.path("starts.log")).unwrap();
    let args = ["run", "-q", "-m", "./starts.sh", "--one-mapper-per-task"];
    d.run(&[&args[..], &["-R", "0", "in/f001"]].concat()).ok();
    assert_eq!(read(d.path("starts.log")), b"none\n");
}

#[test]
fn map_output_that_repeats_lines_then_stops_loses_no_record() {
    // A map task counts identical lines before sorting them when they
    // repeat, and stops when they no longer do: lines that repeat, then
    // distinct ones, then repeats again, through a sort buffer that
    // spills in every phase, must come out as `sort` orders them.
    let d = Dir::new();
    let mut input = String::new();
    let mut n = 0;
    for phase in 0..3 {
        for i in 0..40_000 {
            let line = if phase == 1 {
                format!("u{i:05}\t{}\n", i % 3)
            } else {
                format!("k{}\t{}\n", i % 40, i % 2)
            };
            input.push_str(&line);
            n += 1;
        }
    }
    d.write("in.txt", &input);
    let reference = d.sh("LC_ALL=C sort in.txt");
    for extra in [&[][..], &["--sort-buffer", "256K"][..]] {
        let out = d
            .gmr_run()
            .mapper("cat")
            .reducer("cat")
            .reducers(1)
            .input("in.txt")
            .args(extra)
            .run();
        assert!(out.ok() == &reference[..], "output differs with {extra:?}");
        let err = out.stderr();
        assert!(err.contains(&format!("{n} records out")), "{err}");
        assert_eq!(err.contains(" spill"), !extra.is_empty(), "{err}");
    }
}

#[test]
fn plain_commands_run_as_the_shell_would_run_them() {
    // Commands without shell syntax are started without `sh -c`; what
    // they see (arguments, $0, PWD) must be what the shell gives them, and
    // a script without `#!` must still run (the shell runs it).
    let d = Dir::new();
    d.write("in.txt", "x\ny\n");
    d.script("bin/show.sh", "n=$(wc -l); echo \"$0|$#|$1|$2|$PWD|$n\"");
    d.write("bare.sh", "tr xy XY\n");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(d.path("bare.sh"), fs::Permissions::from_mode(0o755)).unwrap();
    for (mapper, shell) in [
        (
            "./bin/show.sh one --two=2",
            "./bin/show.sh one --two=2 < in.txt",
        ),
        ("bin/show.sh", "bin/show.sh < in.txt"),
        ("./bare.sh", "./bare.sh < in.txt"),
        ("tr xy XY", "tr xy XY < in.txt"),
        ("printenv PWD", "printenv PWD < in.txt"),
    ] {
        let out = d.run(&["run", "-q", "-m", mapper, "-R", "0", "in.txt"]);
        assert_eq!(
            String::from_utf8_lossy(out.ok()),
            String::from_utf8_lossy(&d.sh(shell)),
            "{mapper}"
        );
    }
}

/// Which part of `out` holds each line's first `.`-field.
fn families_by_part(out: &std::path::Path) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut by_family: std::collections::BTreeMap<String, Vec<String>> = Default::default();
    for name in names(out).into_iter().filter(|n| n.starts_with("part-")) {
        let text = String::from_utf8(read(out.join(&name))).unwrap();
        for line in text.lines() {
            let family = line.split('.').next().unwrap().to_string();
            let parts = by_family.entry(family).or_default();
            if !parts.contains(&name) {
                parts.push(name.clone());
            }
        }
    }
    by_family
}

#[test]
fn partition_fields_keep_a_key_prefix_in_one_part() {
    // Hadoop's TestStreamDataProtocol: the key is the first two
    // `.`-fields, the partition is chosen by the first.
    let d = Dir::new();
    let mut input = String::new();
    for family in [
        "roses", "bunnies", "owls", "pears", "kites", "moles", "ferns", "gulls",
    ] {
        for (verb, rest) in [
            ("are", "red"),
            ("smell", "good"),
            ("need", "care"),
            ("run", "fast"),
        ] {
            input.push_str(&format!("{family}.{verb}.{rest}\n"));
        }
    }
    d.write("in.txt", &input);
    let job = |extra: &[&str], out: &str| {
        d.gmr_run()
            .quiet()
            .mapper("cat")
            .reducer("cat")
            .flag("--separator", ".")
            .flag("--key-fields", 2)
            .reducers(4)
            .output(out)
            .args(extra)
            .input("in.txt")
            .run()
            .ok();
    };
    job(&["--partition-fields", "1"], "out");
    let families = families_by_part(&d.path("out"));
    assert_eq!(families.len(), 8);
    for (family, parts) in &families {
        assert_eq!(parts.len(), 1, "{family} is in {parts:?}");
    }
    assert_same_lines(&parts(d.path("out")), input.as_bytes(), "every record");
    // Without it, some family is split: the test above can fail.
    job(&[], "whole-key");
    let split = families_by_part(&d.path("whole-key"));
    assert!(split.values().any(|p| p.len() > 1), "{split:?}");
    // The partition is XXH3-64 of the first field's bytes.
    let part_of_roses = &families["roses"][0];
    let hash = xxhash3_mod(b"roses", 4);
    assert_eq!(part_of_roses, &format!("part-{hash:05}"));
    let err = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .flag("--partition-fields", 2)
        .input("in.txt")
        .run()
        .fails(2);
    assert!(
        err.contains("--partition-fields 2 is more than the key's 1 field"),
        "{err}"
    );
}

/// XXH3-64 (seed 0) of `key`, modulo `r`.
fn xxhash3_mod(key: &[u8], r: u64) -> u64 {
    twox_hash::XxHash3_64::oneshot(key) % r
}

#[test]
fn zstd_bzip2_xz_and_gzip_inputs_are_known_by_their_bytes_not_their_names() {
    let d = Dir::new();
    let corpus = gutenberg();
    // Each book compressed by the tool itself, named without an
    // extension; one file of two gzip members, one of two zstd frames.
    d.sh(&format!(
        "mkdir z && i=0 && for f in {corpus}/*; do i=$((i+1)); case $((i % 4)) in \
         0) gzip -c \"$f\" ;; 1) zstd -q -c \"$f\" ;; 2) bzip2 -c \"$f\" ;; 3) xz -c \"$f\" ;; esac > z/book$i; done"
    ));
    d.write("two/a", "x\ny\n");
    d.sh("printf 'one\\n' | gzip -c > two/g && printf 'two\\n' | gzip -c >> two/g");
    d.sh("printf 'three\\n' | zstd -q -c > two/z && printf 'four\\n' | zstd -q -c >> two/z");
    // Text that starts like bzip2's magic stays text.
    d.write("two/text", "BZh9 is not a header\n");
    let words = |input: &str| d.word_count(&["-R", "2", input]).ok().to_vec();
    assert_eq!(words("z"), words(&corpus));
    let lines = d.run(&["run", "-q", "-m", "cat", "-r", "cat", "-R", "1", "two"]);
    assert_same_lines(
        lines.ok(),
        b"x\ny\none\ntwo\nthree\nfour\nBZh9 is not a header\n",
        "members and frames",
    );
    // A file that claims zstd and is not: the task fails naming it.
    d.sh("printf 'hello\\n' | zstd -q -c | head -c 9 > bad");
    let err = d
        .run(&["run", "-q", "-m", "cat", "-r", "cat", "bad"])
        .fails(1);
    assert!(
        err.contains("is not valid zstd data") && err.contains("/bad"),
        "{err}"
    );
    // No command ran: nothing is said of a stderr.
    assert!(!err.contains("stderr"), "{err}");
}

/// A compressed file larger than a split is decompressed once into the
/// work directory and its copy split among map tasks, so that one large
/// file keeps every slot busy; mappers are still told the file's own name,
/// and a resumed job reads the same copy.
#[test]
fn a_large_compressed_file_feeds_several_map_tasks() {
    let d = Dir::new();
    let corpus = gutenberg();
    d.sh(&format!(
        "cat {corpus}/* > all.txt && zstd -q -c all.txt > all.zst && bzip2 -c all.txt > all.bz"
    ));
    let plain = d
        .word_count(&["-R", "2", "--split-size", "256K", "all.txt"])
        .ok()
        .to_vec();
    for file in ["all.zst", "all.bz"] {
        let out = d
            .gmr_run()
            .word_count()
            .reducers(2)
            .split_size("256K")
            .input(file)
            .run();
        assert_eq!(out.ok(), plain, "{file}");
        let tasks: u32 = out
            .stderr()
            .lines()
            .find(|l| l.trim_start().starts_with("map"))
            .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
            .unwrap_or(0);
        assert!(tasks >= 4, "{file}: {} map tasks:\n{}", tasks, out.stderr());
    }
    // The mapper sees the compressed file's name.
    let names = d
        .gmr_run()
        .quiet()
        .mapper("sh -c 'cat >/dev/null; echo \"$GMR_INPUT_FILE\"'")
        .reducers(0)
        .split_size("256K")
        .input("all.zst")
        .run()
        .ok()
        .to_vec();
    let want = format!("{}\n", d.path("all.zst").display());
    assert!(
        String::from_utf8_lossy(&names)
            .lines()
            .all(|l| format!("{l}\n") == want),
        "{}",
        String::from_utf8_lossy(&names)
    );
    // Resumed, the job reuses its copy.
    let wc = |first: &[&str]| {
        d.gmr_run()
            .args(first)
            .quiet()
            .word_count()
            .reducers(2)
            .split_size("256K")
            .workdir("w")
            .output("o")
            .input("all.zst")
            .run()
    };
    wc(&[]).ok();
    assert!(d.path("w/input/decompressed-1").exists());
    wc(&["--resume"]).ok();
    assert_eq!(parts(d.path("o")), plain);
    // `gmr split` without a work directory copies nothing (it decompressed
    // into ./input once, named by a relative path): each compressed file
    // is one split, and the stages count the same words.
    let staged = d.sh(&format!(
        "{gmr} split --split-size 256K all.zst all.bz > splits && \
         {gmr} map -q -m {m} -R 2 --workdir sw < splits | \
         {gmr} reduce -q -r {r} --workdir sw | LC_ALL=C sort",
        gmr = gmr_bin().display(),
        m = words_map(),
        r = sum_reduce(),
    ));
    assert!(!d.path("input").exists());
    let splits = std::fs::read_to_string(d.path("splits")).unwrap();
    assert_eq!(splits.lines().count(), 2, "{splits}");
    assert!(
        splits.contains(&format!("\"path\":\"{}\"", d.path("all.zst").display())),
        "{splits}"
    );
    let twice = d.sh(&format!(
        "cat all.txt all.txt | {} | LC_ALL=C sort | {} | LC_ALL=C sort",
        words_map(),
        sum_reduce()
    ));
    assert_eq!(staged, twice);
}

#[test]
fn compressed_parts_decompress_to_the_plain_output_and_read_back() {
    let d = Dir::new();
    let corpus = gutenberg();
    let plain = d.word_count(&["-R", "3", &corpus]).ok().to_vec();
    for (codec, cat, ext) in [("gz", "zcat", "gz"), ("zst", "zstdcat", "zst")] {
        let out = format!("out-{codec}");
        d.word_count(&["-R", "3", "--compress", codec, "-o", &out, &corpus])
            .ok();
        assert_eq!(
            names(d.path(&out)),
            [
                "_SUCCESS",
                &format!("part-00000.{ext}"),
                &format!("part-00001.{ext}"),
                &format!("part-00002.{ext}")
            ]
        );
        let unpacked = d.sh(&format!("{cat} {out}/part-*"));
        assert_eq!(unpacked, plain, "{codec}");
        // To stdout: one stream of members or frames.
        let piped = d.word_count(&["-R", "3", "--compress", codec, &corpus]);
        let unpacked = d.sh(&format!("{} | {cat}", {
            let path = d.path(&format!("stdout.{ext}"));
            std::fs::write(&path, piped.ok()).unwrap();
            format!("cat {}", path.display())
        }));
        assert_eq!(unpacked, plain, "{codec} on stdout");
        // Read back as the next job's input.
        let again = d.run(&["run", "-q", "-m", "cat", "-r", "cat", "-R", "1", &out]);
        assert_same_lines(again.ok(), &plain, "read back");
    }
    let err = d
        .run(&["run", "-q", "-m", "cat", "-R0", "--compress", "xz", &corpus])
        .fails(2);
    assert!(err.contains("[possible values: gz, zst]"), "{err}");
}

#[test]
fn whole_files_give_each_file_whole_to_a_mapper_of_its_own() {
    let d = Dir::new();
    let big: String = (0..2000)
        .map(|i| format!("line {i} of the big file\n"))
        .collect();
    d.write("in/big.txt", &big);
    d.write("in/doc.txt", "a document\nof three\nlines");
    d.write("in/empty.txt", "");
    d.sh("printf 'zipped one\\nzipped two\\n' | gzip > in/z.gz");
    // Each mapper says which file it had and how many bytes it was fed.
    let m = "echo \"$(basename \"$GMR_INPUT_FILE\") $(wc -c)\"";
    let out = d
        .gmr_run()
        .mapper(m)
        .arg("-R")
        .arg("0")
        .arg("--whole-files")
        .split_size("4K")
        .input("in")
        .run();
    let got = String::from_utf8(out.ok().to_vec()).unwrap();
    // The reference: each file's size as wc and zcat give it.
    let reference = String::from_utf8(d.sh(
        "cd in && for f in big.txt doc.txt empty.txt; do echo \"$f $(wc -c < $f)\"; done; echo \"z.gz $(zcat z.gz | wc -c)\"",
    ))
    .unwrap();
    assert_eq!(got, reference);
    assert!(
        out.stderr().contains("  map         4 tasks "),
        "{}",
        out.stderr()
    );
    // Without it, the big file is cut at 4K.
    let cut = d
        .gmr_run()
        .mapper(m)
        .arg("-R")
        .arg("0")
        .split_size("4K")
        .input("in")
        .run();
    assert!(String::from_utf8_lossy(cut.ok()).matches("big.txt").count() > 10);
}

/// Each file of an output filed by key: (directory name, part name, bytes).
fn keyed_files(dir: &std::path::Path) -> Vec<(String, String, Vec<u8>)> {
    let mut files = Vec::new();
    for name in names(dir) {
        let sub = dir.join(&name);
        if !sub.is_dir() {
            continue;
        }
        for part in names(&sub) {
            files.push((name.clone(), part.clone(), read(sub.join(&part))));
        }
    }
    files
}

#[test]
fn output_by_key_files_each_line_under_its_key_and_nothing_outside() {
    let d = Dir::new();
    // Keys that would escape or break the directory, and 10,000 plain ones.
    let mut input: Vec<u8> =
        b"../x\tup\na/b\tslash\n\tempty key\n\xff\xfe\tnot utf-8\n_SUCCESS\tmarker\n.\tdot\n"
            .to_vec();
    for i in 0..10_000 {
        input.extend(format!("key{}\tvalue {i}\n", (i * 7919) % 10_000).as_bytes());
        input.extend(format!("key{}\tagain {i}\n", (i * 31) % 10_000).as_bytes());
    }
    d.write("in/data.txt", &input);
    let job_of = |input: &str, out: &str, extra: &[&str]| {
        d.gmr_run()
            .mapper("cat")
            .reducer("cat")
            .reducers(3)
            .split_size("64K")
            .output(out)
            .args(extra.iter().copied())
            .input(input)
            .run()
    };
    let job = |out: &str, extra: &[&str]| job_of("in", out, extra);
    job("plain", &[]).ok();
    job("bykey", &["--output-by-key", "--workdir", "wd"]).ok();
    let files = keyed_files(&d.path("bykey"));
    let dirs: std::collections::BTreeSet<&str> = files.iter().map(|f| f.0.as_str()).collect();
    assert_eq!(dirs.len(), 10_006);
    for name in [
        "%2E.%2Fx",
        "a%2Fb",
        "_EMPTY",
        "%FF%FE",
        "%5FSUCCESS",
        "%2E",
        "key42",
    ] {
        assert!(dirs.contains(name), "{name} missing");
    }
    // Nothing but key directories and _SUCCESS in the output, nothing new
    // beside it.
    assert!(d.path("bykey/_SUCCESS").is_file());
    assert_eq!(names(d.path("bykey")).len(), 10_007);
    assert_eq!(
        names(d.path("")),
        ["bykey", "in", "plain", "state", "tmp", "wd"]
    );
    // Every file holds the lines of one key, in the order of that key's
    // lines in the plain job's part of the same number; together they are
    // the plain output.
    let mut union = Vec::new();
    for (name, part, bytes) in &files {
        let plain = read(d.path("plain").join(part));
        let first_key = bytes.split(|&b| b == b'\t').next().unwrap().to_vec();
        let want: Vec<u8> = plain
            .split_inclusive(|&b| b == b'\n')
            .filter(|l| l.split(|&b| b == b'\t').next().unwrap() == first_key.as_slice())
            .flatten()
            .copied()
            .collect();
        assert_eq!(bytes, &want, "{name}/{part}");
        union.extend_from_slice(bytes);
    }
    assert_same_lines(&union, &parts(d.path("plain")), "the keys' files together");

    // Run again in the same work directory with --resume: every task's
    // files are in place, nothing runs.
    let again = job("bykey", &["--output-by-key", "--workdir", "wd", "--resume"]);
    assert!(
        again.stderr().contains("every task reused"),
        "{}",
        again.stderr()
    );
    assert_eq!(keyed_files(&d.path("bykey")), files);
    // A task that committed its files but not its report (gmr killed
    // between the two) runs again and commits over them.
    std::fs::remove_file(d.path("wd/reports/reduce-00001.json")).unwrap();
    let again = job("bykey", &["--output-by-key", "--workdir", "wd", "--resume"]);
    assert!(
        again.stderr().contains("reusing 2 of 3 tasks"),
        "{}",
        again.stderr()
    );
    assert_eq!(keyed_files(&d.path("bykey")), files);

    // Past the limit of keys per task: the job fails, saying why.
    let err = job("limited", &["--output-by-key", "--max-output-keys", "1000"]).fails(1);
    assert!(
        err.contains("more than 1000 keys with --output-by-key")
            && err.contains("--max-output-keys"),
        "{err}"
    );
    assert!(!d.path("limited/_SUCCESS").exists());

    // --force replaces an output filed by key, by one or the other kind,
    // but not a directory that holds anything else.
    d.write("small/data.txt", "k1\ta\nk2\tb\nk1\tc\n");
    job_of("small", "out", &["--output-by-key"]).ok();
    let plain = keyed_files(&d.path("out"));
    job_of(
        "small",
        "out",
        &["--output-by-key", "--force", "--compress", "gz"],
    )
    .ok();
    let gz = keyed_files(&d.path("out"));
    assert_eq!(gz.len(), plain.len());
    assert!(gz.iter().all(|f| f.1.ends_with(".gz")));
    job_of("small", "out", &["--force"]).ok();
    assert_eq!(
        names(d.path("out"))
            .iter()
            .filter(|n| n.starts_with("part-"))
            .count(),
        3
    );
    job_of("small", "out", &["--output-by-key", "--force"]).ok();
    d.write("out/k1/notes.txt", "mine");
    let err = job_of("small", "out", &["--force"]).fails(2);
    assert!(
        err.contains("notes.txt") && err.contains("nothing was removed"),
        "{err}"
    );
    assert!(d.path("out/k1/notes.txt").exists());

    // A map-only job files its mappers' lines the same way, the last line
    // of a mapper ended.
    d.write("few/a.txt", "x\t1\ny\t2\nx\t3");
    d.write("few/b.txt", "y\t4\n../x\t5\n");
    d.gmr_run()
        .mapper("cat")
        .reducers(0)
        .output("maponly")
        .arg("--output-by-key")
        .input("few")
        .run()
        .ok();
    let got: Vec<_> = keyed_files(&d.path("maponly"))
        .into_iter()
        .map(|(name, part, bytes)| format!("{name}/{part}: {}", String::from_utf8_lossy(&bytes)))
        .collect();
    assert_eq!(
        got,
        [
            "%2E.%2Fx/part-00001: ../x\t5\n",
            "x/part-00000: x\t1\nx\t3\n",
            "y/part-00000: y\t2\n",
            "y/part-00001: y\t4\n",
        ]
    );
    let err = d
        .gmr_run()
        .mapper("cat")
        .reducer("cat")
        .arg("--output-by-key")
        .input("in")
        .run()
        .fails(2);
    assert!(
        err.contains("give the output directory with -o DIR"),
        "{err}"
    );
}

#[test]
fn null_records_hold_newlines_and_tabs_across_splits_reducers_and_stages() {
    let d = Dir::new();
    // Records of several lines, keys with newlines, a last one unended.
    let mut input = Vec::new();
    for i in 0..600 {
        let key = match i % 5 {
            0 => "two\nlines".to_string(),
            k => format!("k{k}"),
        };
        input.extend(format!("{key}\tvalue {i}\nsecond line\twith a tab\0").as_bytes());
    }
    input.extend(b"k1\tlast, not ended");
    d.write("in/records", &input);
    let gmr = d.path("").join("g");
    std::os::unix::fs::symlink(gmr_bin(), &gmr).unwrap();
    // One reducer: the output is sort -z's, byte for byte (the key then
    // the value order is the whole record's here).
    let one = d
        .gmr_run()
        .arg("-z")
        .mapper("cat")
        .reducer("cat")
        .reducers(1)
        .split_size("2K")
        .input("in")
        .run();
    let sorted = d.sh("{ cat in/records; printf '\\0'; } | sort -z");
    assert_eq!(one.ok(), sorted.as_slice());
    // Records that repeat are counted and their runs stored counted
    // (`N<SP>record`, NUL-ended): spilled and merged, every copy is back.
    let kinds = ["a\nb\t1", "x\ty", "", "multi\nline\nrecord", "k\t1\n2"];
    let repeated: Vec<u8> = (0..40_000)
        .flat_map(|i| [kinds[i * 7 % 5].as_bytes(), b"\0"].concat())
        .collect();
    d.write("repeated", &repeated);
    let out = d
        .gmr_run()
        .arg("-z")
        .mapper("cat")
        .reducer("cat")
        .reducers(1)
        .arg("--sort-buffer")
        .arg("64K")
        .workdir("wz")
        .input("repeated")
        .run();
    assert_eq!(out.ok(), d.sh("sort -z repeated").as_slice());
    let index = d.sh("cat wz/map/*/index.json");
    assert!(String::from_utf8_lossy(&index).contains("text_bytes"));
    // Three reducers and a mapper of its own: the same records.
    let three = d
        .gmr_run()
        .arg("--null")
        .mapper("sed -z 's/^/>/'")
        .reducer("cat")
        .reducers(3)
        .split_size("1K")
        .input("in")
        .run();
    let want = d.sh("{ cat in/records; printf '\\0'; } | sed -z 's/^/>/' | sort -z");
    d.write("three.out", three.ok());
    let resorted = d.sh("sort -z three.out");
    assert_eq!(resorted, want);
    // A built-in reducer counts keys that hold newlines, its output NUL-ended.
    let counts = d
        .gmr_run()
        .arg("-z")
        .mapper("cat")
        .reducer("@count")
        .reducers(2)
        .split_size("1K")
        .input("in")
        .run();
    let mut got: Vec<&[u8]> = counts.ok().split(|&b| b == 0).collect();
    assert_eq!(got.pop(), Some(&b""[..]), "ends with NUL");
    got.sort();
    assert_eq!(
        got,
        [
            &b"k1\t121"[..],
            b"k2\t120",
            b"k3\t120",
            b"k4\t120",
            b"two\nlines\t120"
        ]
    );
    // The stages: gmr split -z cuts at NULs and says so to gmr map.
    let staged =
        d.sh("./g split -z --split-size 1K in/records | ./g map -m cat -R 1 | ./g reduce -r cat");
    assert_eq!(staged, sorted);
    // find -print0: a count of files per directory.
    for (dir, n) in [("tree/a", 3), ("tree/b b", 2), ("tree/c\nd", 1)] {
        for i in 0..n {
            d.write(&format!("{dir}/f{i}"), "x");
        }
    }
    let per_dir =
        d.sh("find tree -type f -print0 | ./g run -z -q -m 'sed -z \"s|/[^/]*$|\\t1|\"' -r @sum");
    let mut got: Vec<&[u8]> = per_dir
        .split(|&b| b == 0)
        .filter(|r| !r.is_empty())
        .collect();
    got.sort();
    assert_eq!(got, [&b"tree/a\t3"[..], b"tree/b b\t2", b"tree/c\nd\t1"]);
    // NUL cannot both end records and separate fields.
    let err = d
        .gmr_run()
        .arg("-z")
        .arg("--separator")
        .arg("\\0")
        .mapper("cat")
        .reducer("cat")
        .input("in")
        .run()
        .fails(2);
    assert!(err.contains("cannot also separate key and value"), "{err}");
}

/// A phase hands out its largest tasks first, so that it does not end on
/// one large task while the other slots idle: map tasks by their split's
/// bytes, reduce tasks by their partition's. With one slot the job log
/// shows the order; the output is what it always is.
#[test]
fn the_largest_tasks_run_first() {
    let d = Dir::new();
    d.write("in/a", "a\n".repeat(1500));
    d.write("in/b", "b\n".repeat(500));
    d.write("in/c", "c\n".repeat(1000));
    // Seven more keys, over the three partitions unevenly.
    d.write(
        "in/d",
        (0..2000)
            .map(|i| format!("k{}\n", i % 7))
            .collect::<String>(),
    );
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .reducers(3)
        .jobs(1)
        .split_size("3000")
        .joblog("log.jsonl")
        .output("out")
        .input("in")
        .run();
    out.ok();
    let log = joblog(d.path("log.jsonl"));
    let ran = |kind: &str| -> Vec<(String, u64)> {
        log.iter()
            .filter(|l| l["task"].as_str().unwrap().starts_with(kind))
            .map(|l| {
                let size = match kind {
                    "map" => l["bytes_in"].as_u64().unwrap(),
                    _ => l["bytes_out"].as_u64().unwrap(),
                };
                (l["task"].as_str().unwrap().to_string(), size)
            })
            .collect()
    };
    for kind in ["map", "reduce"] {
        let got = ran(kind);
        let mut want = got.clone();
        // By size, largest first; ties by task.
        want.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        assert_eq!(got, want, "{kind}");
        // Not in task order: the check above could not fail otherwise.
        let mut by_task = got.clone();
        by_task.sort();
        assert_ne!(got, by_task, "{kind}: sizes in task order");
    }
    let reference = d.sh("cat in/* | LC_ALL=C sort");
    assert_eq!(
        sorted_lines(&parts(d.path("out"))),
        sorted_lines(&reference)
    );
}
