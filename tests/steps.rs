//! Jobs of several steps (`gmr run STEP --then STEP ... INPUT...`), each
//! checked against the same steps run as separate `gmr run`s and against
//! pipelines of GNU tools; resumed after gmr is killed in a later step;
//! with the flags of a step changed; and the mistakes a user makes.

mod common;
use common::*;
use std::process::Stdio;

/// The ten most frequent words with their counts, ties by word: a step
/// after the word count.
const TOP_TEN: [&str; 8] = [
    "-m",
    "cat",
    "-r",
    "head -10",
    "-R",
    "1",
    "--sort-key",
    "2,2nr",
];

#[test]
fn word_count_then_top_ten_equals_two_jobs() {
    let d = Dir::new();
    let corpus = gutenberg();
    // Two jobs, the second reading the first's output directory.
    d.word_count(&["-R", "3", "-o", "counts", &corpus]).ok();
    let two_jobs = d.run(&[&["run", "-q"][..], &TOP_TEN, &["counts"]].concat());
    // One job of two steps.
    let one = d
        .gmr_run()
        .quiet()
        .word_count()
        .reducers(3)
        .arg("--then")
        .args(TOP_TEN)
        .input(&corpus)
        .run();
    assert_eq!(one.ok(), two_jobs.ok());
    assert_eq!(one.ok().iter().filter(|&&b| b == b'\n').count(), 10);
    // The reference: the same counts by sort and uniq, top ten by sort.
    let reference = d.sh(&format!(
        "cat {corpus}/* | tr -s ' \\t' '\\n\\n' | grep -v '^$' | LC_ALL=C sort | uniq -c \
         | awk '{{print $2 \"\\t\" $1}}' | LC_ALL=C sort -t\"$(printf '\\t')\" -k2,2nr -k1,1 | head -10"
    ));
    assert_eq!(one.ok(), reference);
    // Nothing of the job is left: its work directory was temporary.
    assert!(d.leftover_workdirs().is_empty());
}

#[test]
fn three_steps_with_a_map_only_step_in_the_middle() {
    let d = Dir::new();
    let corpus = gutenberg();
    // Word count; the words seen more than 3 times (map-only); how many
    // words have each count.
    let frequent = "awk -F'\\t' '$2 > 3'";
    let job = d
        .gmr_run()
        .word_count()
        .output("out")
        .args(["--then", "-m", frequent, "-R", "0"])
        .args(["--then", "-m", "cut -f2", "-r", "@count", "-R", "2"])
        .input(&corpus)
        .run();
    job.ok();
    let err = job.stderr();
    // The map-only step runs in step 1's reducers.
    assert!(
        err.contains("gmr: steps 1 and 2 of 3 (-m ") && err.contains(", then -m 'awk"),
        "{err}"
    );
    assert!(
        err.contains("step 2 is map-only: step 3 partitions and sorts its output anew"),
        "{err}"
    );
    // The same as three jobs.
    d.word_count(&["-o", "s1", &corpus]).ok();
    d.run(&["run", "-q", "-m", frequent, "-R", "0", "-o", "s2", "s1"])
        .ok();
    d.run(&[
        "run", "-q", "-m", "cut -f2", "-r", "@count", "-R", "2", "-o", "s3", "s2",
    ])
    .ok();
    assert_eq!(parts(d.path("out")), parts(d.path("s3")));
    assert!(d.path("out/_SUCCESS").exists());
    // Only the last step's parts are in the output.
    let names = names(d.path("out"));
    assert_eq!(names, ["_SUCCESS", "part-00000", "part-00001"], "{names:?}");
    // In a work directory: no step-2, the fused mapper's stderr beside
    // the reducer's, and gmr status says where step 2 ran.
    d.gmr_run()
        .quiet()
        .word_count()
        .workdir("w")
        .args(["--then", "-m", frequent, "-R", "0"])
        .args(["--then", "-m", "cut -f2", "-r", "@count", "-R", "2"])
        .input(&corpus)
        .run()
        .ok();
    assert!(!d.path("w/step-2").exists());
    assert!(
        d.path("w/step-1/logs/reduce-00000.mapper.1.stderr")
            .exists()
    );
    let status = String::from_utf8(d.run(&["status", "w"]).ok().to_vec()).unwrap();
    assert!(
        status.contains("  step 2  in step 1's reducers"),
        "{status}"
    );
}

/// A step-1 mapper that logs each start, and a step-2 mapper that, on
/// its first run only, says it started and waits for `go`.
fn logging_steps(d: &Dir) -> (String, String) {
    let m1 = d.script(
        "m1.sh",
        &format!("echo \"$GMR_TASK\" >> step1.log\nexec {}", words_map()),
    );
    let m2 = d.script(
        "m2.sh",
        "if [ ! -e resumed ]; then touch started2; while [ ! -e go ]; do sleep 0.05; done; fi\nexec cat",
    );
    (m1.display().to_string(), m2.display().to_string())
}

/// The first step of the resume tests: the logging word count `m1`, R 2,
/// in work directory `w`, into `out`; with `--resume` when `resume`.
fn first_step<'d>(d: &'d Dir, m1: &str, resume: bool) -> GmrRun<'d> {
    let r = d.gmr_run().quiet();
    let r = if resume { r.arg("--resume") } else { r };
    r.mapper(m1)
        .reducer(sum_reduce())
        .reducers(2)
        .workdir("w")
        .output("out")
}

fn count_lines(bytes: &[u8]) -> usize {
    bytes.iter().filter(|&&b| b == b'\n').count()
}

#[test]
fn a_job_killed_in_step_2_resumes_there() {
    for signal in ["KILL", "INT"] {
        let d = Dir::new();
        let corpus = gutenberg();
        let (m1, m2) = logging_steps(&d);
        let job = |resume: bool| {
            first_step(&d, &m1, resume)
                .args(["--then", "-m", &m2, "-r", "sort -k2,2nr", "-R", "1"])
                .input(&corpus)
        };
        let mut child = job(false)
            .command()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&d.path("started2"));
        let starts = count_lines(&read(d.path("step1.log")));
        assert!(starts > 0);
        d.sh(&format!("kill -{signal} {}", child.id()));
        let status = child.wait().unwrap();
        assert!(!status.success(), "{signal}: {status}");
        // What gmr left running may go now; the resumed step-2 mapper does
        // not wait.
        d.write("go", "");
        d.write("resumed", "");
        let out = job(true).run();
        out.ok();
        // Step 1 committed: its mappers did not run again.
        assert_eq!(
            count_lines(&read(d.path("step1.log"))),
            starts,
            "{signal}: step 1 ran again"
        );
        // The result is the uninterrupted job's.
        let reference = d.sh(&format!(
            "cat {corpus}/* | {} | LC_ALL=C sort | {} | sort -k2,2nr",
            words_map(),
            sum_reduce()
        ));
        assert_eq!(
            sorted_lines(&parts(d.path("out"))),
            sorted_lines(&reference),
            "{signal}"
        );
    }
}

#[test]
fn a_changed_step_runs_again_with_the_steps_after_it_and_not_before() {
    let d = Dir::new();
    let corpus = gutenberg();
    let (m1, _) = logging_steps(&d);
    let m2 = d.script("m2.sh", "echo x >> step2.log\nexec cat");
    let m3 = d.script("m3.sh", "echo x >> step3.log\nexec cat");
    let job = |resume: bool, keep: &str| {
        first_step(&d, &m1, resume)
            .args(["--then", "-m", m2.to_str().unwrap(), "-r", keep, "-R", "1"])
            .args(["--then", "-m", m3.to_str().unwrap(), "-r", "cat", "-R", "1"])
            .input(&corpus)
            .run()
    };
    job(false, "awk -F'\\t' '$2 > 100'").ok();
    let logs = || ["step1.log", "step2.log", "step3.log"].map(|f| count_lines(&read(d.path(f))));
    let first = logs();
    // The same job again: nothing runs.
    job(true, "awk -F'\\t' '$2 > 100'").ok();
    assert_eq!(logs(), first);
    // Step 2's reducer changed: steps 2 and 3 run again, step 1 does not.
    job(true, "awk -F'\\t' '$2 > 500'").ok();
    let after = logs();
    assert_eq!(after[0], first[0], "step 1 ran again");
    assert!(
        after[1] > first[1] && after[2] > first[2],
        "{first:?} {after:?}"
    );
    let reference = d.sh(&format!(
        "cat {corpus}/* | {} | LC_ALL=C sort | {} | awk -F'\\t' '$2 > 500'",
        words_map(),
        sum_reduce()
    ));
    assert_eq!(
        sorted_lines(&parts(d.path("out"))),
        sorted_lines(&reference)
    );
    // A new job in the same work directory is refused.
    let err = d
        .run(&[
            "run",
            "-m",
            "cat",
            "-r",
            "cat",
            "--workdir",
            "w",
            "--then",
            "-m",
            "cat",
            "-R",
            "0",
            &corpus,
        ])
        .fails(2);
    assert!(err.contains("already holds a job"), "{err}");
}

#[test]
fn intermediate_outputs_stay_in_the_work_directory_unless_kept() {
    let d = Dir::new();
    let corpus = gutenberg();
    d.gmr_run()
        .quiet()
        .word_count()
        .reducers(2)
        .output("out")
        .arg("--keep-intermediate")
        .arg("between")
        .arg("--then")
        .args(TOP_TEN)
        .input(&corpus)
        .run()
        .ok();
    // Step 1's output, kept: the word count.
    let counts = parts(d.path("between/step-1"));
    assert_eq!(counts, d.word_count(&["-R", "2", &corpus]).ok());
    assert_eq!(count_lines(&parts(d.path("out"))), 10);
    assert!(d.leftover_workdirs().is_empty());
    // With --workdir, in it.
    d.gmr_run()
        .quiet()
        .word_count()
        .workdir("w")
        .arg("--then")
        .args(TOP_TEN)
        .input(&corpus)
        .run()
        .ok();
    assert!(d.path("w/intermediate/step-1/_SUCCESS").exists());
    assert!(d.path("w/steps.json").exists());
    // gmr status shows the steps.
    let status = String::from_utf8(d.run(&["status", "w"]).ok().to_vec()).unwrap();
    assert!(
        status.contains("job of 2 steps in ") && status.contains("  step 2  done"),
        "{status}"
    );
}

#[test]
fn steps_given_wrong_are_usage_errors_that_say_where_things_go() {
    let d = Dir::new();
    d.write("in", "a b\n");
    let err = d
        .run(&["run", "-m", "cat", "-r", "cat", "in", "--then"])
        .fails(2);
    assert!(err.contains("--then needs the flags of a step"), "{err}");
    let err = d
        .run(&[
            "run", "-m", "cat", "-r", "cat", "--then", "-m", "cat", "-R", "0", "-o", "x", "in",
        ])
        .fails(2);
    assert!(
        err.contains("-o (in step 2) is the job's, not a step's: give it before the first --then"),
        "{err}"
    );
    let err = d
        .run(&[
            "run", "-m", "cat", "-r", "cat", "--then", "-m", "cat", "-R", "0", "in", "--then",
            "-m", "cat", "-R", "0",
        ])
        .fails(2);
    assert!(err.contains("the inputs go after the last step"), "{err}");
    // A step that fails stops the job and names the step.
    let err = d
        .run(&[
            "run",
            "-q",
            "-m",
            "cat",
            "-r",
            "cat",
            "--retries",
            "0",
            "--then",
            "-m",
            "false",
            "-R",
            "0",
            "in",
        ])
        .fails(1);
    // (A map-only step after a reduce runs in its reducers: both are named.)
    assert!(
        err.starts_with("gmr: steps 1 and 2 of 2 (-m cat -r cat, then -m false -R 0): ")
            && err.contains("mapper `false` exited with status 1"),
        "{err}"
    );
    assert!(
        err.contains("continue the job with --resume --workdir "),
        "{err}"
    );
    // A step with no output: the next runs on nothing, and says so.
    let out = d.run(&[
        "run",
        "-m",
        "grep nothing-matches",
        "--ok-exit",
        "0,1",
        "-R",
        "0",
        "--then",
        "-m",
        "cat",
        "-r",
        "@count",
        "in",
    ]);
    assert_eq!(out.ok(), b"");
    assert!(
        out.stderr()
            .contains("step 1 wrote no records: step 2 runs on nothing"),
        "{}",
        out.stderr()
    );
}

#[test]
fn a_changed_map_only_step_reruns_the_reducers_it_runs_in_not_the_maps() {
    let d = Dir::new();
    let corpus = gutenberg();
    let (m1, _) = logging_steps(&d);
    let job = |resume: bool, least: u32| {
        first_step(&d, &m1, resume)
            .args([
                "--then",
                "-m",
                &format!("awk -F'\\t' '$2 > {least}'"),
                "-R",
                "0",
            ])
            .args(["--then", "-m", "cat", "-r", "cat", "-R", "1"])
            .input(&corpus)
            .run()
    };
    job(false, 100).ok();
    let starts = count_lines(&read(d.path("step1.log")));
    job(true, 500).ok();
    assert_eq!(
        count_lines(&read(d.path("step1.log"))),
        starts,
        "step 1's mappers ran again"
    );
    let reference = d.sh(&format!(
        "cat {corpus}/* | {} | LC_ALL=C sort | {} | awk -F'\\t' '$2 > 500' | LC_ALL=C sort",
        words_map(),
        sum_reduce()
    ));
    assert_eq!(parts(d.path("out")), reference);
}

/// The job's output filed by key (--output-by-key) when its last step is
/// map-only and runs in the reducers before it: keyed by that step's own
/// separator (the reduce step's TAB would make a key of each whole line).
#[test]
fn a_fused_last_step_files_its_output_by_its_own_key() {
    let d = Dir::new();
    d.write("in.txt", "a b a\nc a\n");
    let steps = d.run(&[
        "run",
        "-q",
        "--output-by-key",
        "-o",
        "bykey",
        "-m",
        "tr ' ' '\\n'",
        "-r",
        "@count",
        "--then",
        "-m",
        "sed 's/\t/,/'",
        "-R",
        "0",
        "--separator",
        ",",
        "in.txt",
    ]);
    steps.ok();
    let mut got = Vec::new();
    for name in names(d.path("bykey")) {
        if name != "_SUCCESS" {
            got.push(format!(
                "{name}: {}",
                String::from_utf8_lossy(&parts(d.path("bykey").join(&name)))
            ));
        }
    }
    assert_eq!(got, ["a: a,3\n", "b: b,1\n", "c: c,1\n"]);
}

/// The mapper of a step with reducers, after a step with its default
/// reducers, runs inside them, on each partition as it is made; the
/// step's own map tasks read its output. The output is the separate
/// jobs', byte for byte; a change to that mapper reruns the reducers it
/// runs in, not the maps before them; with the output between the steps
/// kept, the mapper runs in map tasks of its own.
#[test]
fn a_later_steps_mapper_runs_in_the_reducers_before_it() {
    let d = Dir::new();
    let corpus = gutenberg();
    let (m1, _) = logging_steps(&d);
    // How many words are seen each number of times, over `least` times.
    let m2 = d.script(
        "m2.sh",
        "echo \"$GMR_TASK\" >> step2.log\nexec awk -F'\\t' -v least=\"$1\" '$2 > least {print $2}'",
    );
    let m2 = |least: u32| format!("{} {least}", m2.display());
    let job = |resume: bool, least: u32| {
        let r = d.gmr_run().quiet();
        let r = if resume { r.arg("--resume") } else { r };
        r.mapper(&m1)
            .reducer(sum_reduce())
            .workdir("w")
            .output("out")
            .args(["--then", "-m", &m2(least), "-r", "@count", "-R", "2"])
            .input(&corpus)
            .run()
    };
    let reference = |least: u32| {
        d.sh(&format!(
            "cat {corpus}/* | {} | LC_ALL=C sort | {} | awk -F'\\t' '$2 > {least} {{print $2}}' \
             | LC_ALL=C sort | uniq -c | awk '{{print $2 \"\\t\" $1}}'",
            words_map(),
            sum_reduce()
        ))
    };
    let tasks = || String::from_utf8(read(d.path("step2.log"))).unwrap();
    job(false, 3).ok();
    assert!(
        !tasks().is_empty() && tasks().lines().all(|t| t.starts_with("reduce-")),
        "{}",
        tasks()
    );
    assert_eq!(
        sorted_lines(&parts(d.path("out"))),
        sorted_lines(&reference(3))
    );
    let status = String::from_utf8(d.run(&["status", "w"]).ok().to_vec()).unwrap();
    assert!(
        status.contains("  step 2  done ") && status.contains("(its mapper in step 1's reducers)"),
        "{status}"
    );
    // The same as two jobs, part for part.
    d.run(&[
        "run",
        "-q",
        "-m",
        &m1,
        "-r",
        &sum_reduce(),
        "-o",
        "s1",
        &corpus,
    ])
    .ok();
    d.run(&[
        "run",
        "-q",
        "-m",
        &m2(3),
        "-r",
        "@count",
        "-R",
        "2",
        "-o",
        "s2",
        "s1",
    ])
    .ok();
    for part in ["part-00000", "part-00001"] {
        assert_eq!(
            read(d.path("out").join(part)),
            read(d.path("s2").join(part)),
            "{part}"
        );
    }
    // Step 2's mapper changed: step 1's reducers run again, its maps not.
    let starts = count_lines(&read(d.path("step1.log")));
    job(true, 10).ok();
    assert_eq!(
        count_lines(&read(d.path("step1.log"))),
        starts,
        "step 1's mappers ran again"
    );
    assert_eq!(
        sorted_lines(&parts(d.path("out"))),
        sorted_lines(&reference(10))
    );
    // The output between the steps kept: it is step 1's, and step 2's
    // mapper runs in its own map tasks.
    std::fs::remove_file(d.path("step2.log")).unwrap();
    d.gmr_run()
        .quiet()
        .mapper(&m1)
        .reducer(sum_reduce())
        .output("kept")
        .args(["--keep-intermediate", "between"])
        .args(["--then", "-m", &m2(3), "-r", "@count", "-R", "2"])
        .input(&corpus)
        .run()
        .ok();
    assert!(
        tasks().lines().all(|t| t.starts_with("map-")),
        "{}",
        tasks()
    );
    assert_eq!(parts(d.path("between/step-1")), parts(d.path("s1")));
    assert_eq!(parts(d.path("kept")), parts(d.path("s2")));
    // A failing mapper there names the step it runs in and its own.
    d.write("in", "a b\n");
    let err = d
        .run(&[
            "run", "-m", "cat", "-r", "cat", "--then", "-m", "false", "-r", "cat", "in",
        ])
        .fails(1);
    assert!(
        err.contains("\ngmr: step 1 of 2 (-m cat -r cat, then step 2's mapper): task reduce-")
            && err.contains("mapper `false` exited with status 1"),
        "{err}"
    );
    // One that is not there is a usage error before any task runs, as a
    // step's own mapper is, wherever it runs.
    for then in [["-r", "cat"], ["-R", "0"]] {
        let err = d
            .run(
                &[
                    &[
                        "run",
                        "-m",
                        "cat",
                        "-r",
                        "cat",
                        "--then",
                        "-m",
                        "./no-such-mapper",
                    ][..],
                    &then,
                    &["in"],
                ]
                .concat(),
            )
            .fails(2);
        assert!(err.contains("mapper `./no-such-mapper` not found"), "{err}");
    }
}
