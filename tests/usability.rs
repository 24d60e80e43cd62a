//! What users of gmr see around a job: counters, the job log, resume, the
//! job report, and a clean stderr in pipes.

mod common;
use common::*;
use serde_json::Value;

/// A mapper that counts its words in a user counter and fails its first
/// attempt on one split, recording every execution in `runs.log`.
fn flaky_counting_mapper(d: &Dir) -> String {
    d.script(
        "count_map.sh",
        r#"echo "$GMR_TASK $GMR_ATTEMPT" >> runs.log
awk '{ for (i = 1; i <= NF; i++) { print $i "\t1"; n++ } } END { print "reporter:counter:Words,Seen," n+0 > "/dev/stderr"; print "reporter:status:done" > "/dev/stderr" }'
if [ "$GMR_TASK" = map-00001 ] && [ ! -e failed-once ]; then touch failed-once; echo "first attempt fails" >&2; exit 1; fi"#,
    )
    .display()
    .to_string()
}

#[test]
fn counters_count_each_committed_task_once() {
    let d = Dir::new();
    d.write("in/a", "one two three\nfour\n");
    d.write("in/b", "five six\n");
    d.write("in/c", "seven\n");
    let m = flaky_counting_mapper(&d);
    let out = d
        .gmr_run()
        .mapper(&m)
        .reducer("@count")
        .reducers(2)
        .workdir("w")
        .input("in")
        .run();
    out.ok();
    let err = out.stderr();
    // map-00001 ran twice, but its counter counts once: 7 words, not 9.
    assert!(err.contains("counter Words,Seen = 7"), "{err}");
    assert!(
        !err.contains("reporter:"),
        "reporter lines are not shown as log: {err}"
    );
    assert!(err.contains("1 failed attempt retried"), "{err}");
    assert!(
        err.contains("retried map-00001 after attempt 1 on local"),
        "{err}"
    );
    let report: Value = serde_json::from_slice(&read(d.path("w/report.json"))).unwrap();
    assert_eq!(report["counters"]["Words,Seen"], 7);
    assert_eq!(report["map"]["records_out"], 7);
    assert_eq!(report["reduce"]["records_in"], 7);
}

#[test]
fn the_job_log_has_one_line_per_attempt() {
    let d = Dir::new();
    d.write("in/a", "one two\n");
    d.write("in/b", "three\n");
    let m = flaky_counting_mapper(&d);
    d.job(&m, "@count", &["-R", "3", "--joblog", "log.jsonl", "in"])
        .ok();
    let log = joblog(d.path("log.jsonl"));
    let runs = String::from_utf8(read(d.path("runs.log"))).unwrap();
    let map_lines: Vec<&Value> = log
        .iter()
        .filter(|l| l["task"].as_str().unwrap().starts_with("map-"))
        .collect();
    assert_eq!(
        map_lines.len(),
        runs.lines().count(),
        "one line per map execution:\n{runs}"
    );
    assert_eq!(log.len(), map_lines.len() + 3, "plus one per reduce task");
    let failed: Vec<&&Value> = map_lines
        .iter()
        .filter(|l| l["status"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0]["task"], "map-00001");
    assert_eq!(failed[0]["attempt"], 1);
    assert!(
        failed[0]["error"]
            .as_str()
            .unwrap()
            .contains("exited with status 1")
    );
    for l in &log {
        assert!(l["start"].as_f64().unwrap() > 1.6e9 && l["duration"].as_f64().unwrap() >= 0.0);
        assert_eq!(l["host"], "local");
    }
    let ok_in: u64 = map_lines
        .iter()
        .filter(|l| l["status"] == "ok")
        .map(|l| l["records_in"].as_u64().unwrap())
        .sum();
    assert_eq!(ok_in, 2, "each input line read once by a committed attempt");
}

#[test]
fn resume_reruns_only_missing_tasks_and_gives_identical_output() {
    let d = Dir::new();
    let corpus = gutenberg();
    let reference = d.word_count(&["-R", "3", "--split-size", "512K", &corpus]);
    let m = d.script("m.sh", &format!(
        "echo \"$GMR_TASK\" >> runs.log\nif [ \"$GMR_TASK\" = map-00002 ] && [ ! -e failed-once ]; then touch failed-once; exit 1; fi\nexec {}",
        words_map()
    ));
    let job = |first: &[&str]| {
        d.gmr_run()
            .args(first)
            .quiet()
            .mapper(m.to_str().unwrap())
            .reducer(sum_reduce())
            .reducers(3)
            .split_size("512K")
            .retries(0)
            .output("out")
            .workdir("w")
            .input(&corpus)
            .run()
    };
    let err = job(&[]).fails(1);
    assert!(err.contains("map-00002"), "{err}");
    let first: Vec<String> = String::from_utf8(read(d.path("runs.log")))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    job(&["--resume"]).ok();
    assert_eq!(
        parts(d.path("out")),
        reference.ok(),
        "resumed output equals an uninterrupted run"
    );
    assert!(d.path("out/_SUCCESS").exists());
    let all: Vec<String> = String::from_utf8(read(d.path("runs.log")))
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    let second = &all[first.len()..];
    let splits = names(d.path("w/map")).len();
    // Every split ran exactly once successfully; the failed one twice.
    assert_eq!(
        all.len(),
        splits + 1,
        "first run {first:?}, resume {second:?}"
    );
    assert!(
        second
            .iter()
            .all(|t| !first.contains(t) || t == "map-00002"),
        "resume re-ran a committed task: {second:?}"
    );
    assert!(second.contains(&"map-00002".to_string()));
    // Resuming a finished job runs nothing and gives the same output.
    job(&["--resume"]).ok();
    assert_eq!(
        String::from_utf8(read(d.path("runs.log")))
            .unwrap()
            .lines()
            .count(),
        all.len()
    );
    assert_eq!(parts(d.path("out")), reference.ok());
}

#[test]
fn resume_refuses_another_job() {
    let d = Dir::new();
    d.write("in", "a b\n");
    d.job("false", "cat", &["--retries", "0", "--workdir", "w", "in"])
        .fails(1);
    let resume = |mapper: &str| d.gmr_run().arg("--resume").mapper(mapper).reducer("cat");
    let err = resume("cat").workdir("w").input("in").run().fails(2);
    assert!(
        err.contains("cannot resume") && err.contains("the mapper (was `false`, now `cat`)"),
        "{err}"
    );
    let err = resume("false")
        .reducers(7)
        .workdir("w")
        .input("in")
        .run()
        .fails(2);
    assert!(err.contains("R (was"), "{err}");
    d.write("in", "changed\n");
    let err = resume("false").workdir("w").input("in").run().fails(2);
    assert!(err.contains("the input"), "{err}");
    let err = resume("cat")
        .workdir("nothing-here")
        .input("in")
        .run()
        .fails(2);
    assert!(err.contains("nothing to resume"), "{err}");
    let err = d
        .run(&["run", "-m", "cat", "-r", "cat", "--workdir", "w", "in"])
        .fails(2);
    assert!(err.contains("already holds a job"), "{err}");
}

#[test]
fn stderr_in_a_pipe_has_no_escape_codes() {
    let d = Dir::new();
    let out = d
        .gmr_run()
        .mapper("sleep 0.3; cat")
        .reducer("@count")
        .reducers(2)
        .split_size("256K")
        .input(gutenberg())
        .run();
    out.ok();
    let err = out.stderr();
    assert!(err.contains("gmr: job done"), "the summary is shown: {err}");
    assert!(
        !err.contains('\x1b') && !err.contains('\r'),
        "no progress escape codes in a pipe: {err:?}"
    );
    let quiet = d.job("cat", "@count", &[&gutenberg()]);
    quiet.ok();
    assert!(
        quiet.stderr().is_empty(),
        "-q is silent: {}",
        quiet.stderr()
    );
}

#[test]
fn progress_is_drawn_on_a_terminal() {
    // `script` gives gmr a pseudo-terminal as stderr.
    let d = Dir::new();
    let cmd = format!(
        "{} run -m 'sleep 0.5; cat' -r @count -R 2 -j 2 --split-size 256K {} > result.txt",
        gmr_bin().display(),
        gutenberg()
    );
    let screen = d.sh(&format!("script -qec \"{cmd}\" /dev/null"));
    let screen = String::from_utf8_lossy(&screen);
    assert!(
        screen.contains("map") && screen.contains('\x1b'),
        "a progress bar was drawn: {screen:?}"
    );
    assert!(
        !read(d.path("result.txt")).contains(&0x1b),
        "stdout holds only results"
    );
}

#[test]
fn many_small_files_get_a_hint_for_one_mapper_per_task() {
    let d = Dir::new();
    for i in 0..300 {
        d.write(&format!("in/f{i:03}"), format!("w{i}\n"));
    }
    let hint = "--one-mapper-per-task feeds";
    let out = d.run(&["run", "-m", "tr a b", "-r", "@count", "in"]);
    assert_eq!(sorted_lines(out.ok()).len(), 300);
    assert!(
        out.stderr().contains("300 small input files"),
        "{}",
        out.stderr()
    );
    assert!(out.stderr().contains(hint), "{}", out.stderr());
    let quiet = d.run(&["run", "-q", "-m", "tr a b", "-r", "@count", "in"]);
    assert!(!quiet.stderr().contains(hint), "{}", quiet.stderr());
    let packed = d
        .gmr_run()
        .mapper("tr a b")
        .reducer("@count")
        .arg("--one-mapper-per-task")
        .input("in")
        .run();
    assert_eq!(packed.ok(), out.ok());
    assert!(!packed.stderr().contains(hint), "{}", packed.stderr());
    // A built-in mapper starts no process per file.
    let builtin = d.run(&["run", "-m", "cat", "-r", "@count", "in"]);
    assert_eq!(builtin.ok(), out.ok());
    assert!(!builtin.stderr().contains(hint), "{}", builtin.stderr());
}

#[test]
fn a_repeated_flag_takes_its_last_value() {
    // An alias such as `alias gmr='gmr run -R 8 --split-size 1M'` sets
    // defaults that the command line overrides.
    let d = Dir::new();
    d.write("in", "b\na\nc\n");
    let out = d.run(&[
        "run",
        "-q",
        "-m",
        "cat",
        "-r",
        "cat",
        "-R",
        "8",
        "-R",
        "2",
        "--split-size",
        "1M",
        "--split-size",
        "4M",
        "-o",
        "out",
        "in",
    ]);
    out.ok();
    let mut parts: Vec<String> = std::fs::read_dir(d.path("out"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("part-"))
        .collect();
    parts.sort();
    assert_eq!(
        parts,
        ["part-00000", "part-00001"],
        "-R 2, the last -R, wins"
    );
}

#[test]
fn help_lists_flags_in_groups_that_follow_the_job() {
    let d = Dir::new();
    let help = String::from_utf8_lossy(d.run(&["run", "--help"]).ok()).into_owned();
    let at = |heading: &str| {
        help.find(&format!("\n{heading}:\n"))
            .unwrap_or_else(|| panic!("no `{heading}:` group in:\n{help}"))
    };
    let order = [
        at("Job"),
        at("Input"),
        at("Output"),
        at("Keys"),
        at("Performance"),
        at("Reliability"),
        at("Distributed runs"),
    ];
    assert!(order.is_sorted(), "groups out of order:\n{help}");
    let job = &help[order[0]..order[1]];
    for flag in [
        "--mapper",
        "--reducer",
        "--combiner",
        "--reducers",
        "--workdir",
    ] {
        assert!(job.contains(flag), "{flag} not under Job:\n{help}");
    }
    assert!(help[order[4]..order[5]].contains("--jobs"), "{help}");
    assert!(help[order[5]..order[6]].contains("--retries"), "{help}");
}

#[test]
fn a_work_directory_without_a_job_is_a_usage_error() {
    // A wrong --workdir is the user's mistake (exit 2); on a host it means
    // the host does not see the work directory, a host failure.
    let d = Dir::new();
    std::fs::create_dir(d.path("empty")).unwrap();
    let err = d
        .run_stdin(&["shuffle", "--workdir", "empty"], b"")
        .fails(2);
    assert!(
        err.contains("is ") && err.contains("the work directory of a gmr job"),
        "{err}"
    );
}

#[test]
fn env_is_refused_where_no_command_runs() {
    let d = Dir::new();
    let err = d
        .run_stdin(&["shuffle", "--env", "X=1", "--workdir", "w"], b"")
        .fails(2);
    assert!(err.contains("gmr shuffle runs no command"), "{err}");
}

/// Setup mistakes are usage errors (exit 2), one `gmr:` line that says
/// what to do, not a failed job's exit 1 with an OS error.
#[test]
fn setup_mistakes_are_usage_errors_that_say_what_to_do() {
    let d = Dir::new();
    d.write("in.txt", "a\n");
    // A directory of nothing gmr reads: a subdirectory, hidden files.
    d.write("sub/deeper/f", "a\n");
    d.write("sub/.hidden", "a\n");
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "run",
                "-q",
                "-m",
                "cat",
                "-r",
                "cat",
                "--workdir",
                "in.txt",
                "in.txt",
            ],
            "is not a directory; choose another --workdir",
        ),
        (&["status", "in.txt"], "in.txt is not a directory"),
        (
            &["report", "in.txt", "-o", "-"],
            "in.txt is not a directory",
        ),
        (&["status", "nowhere"], "nowhere does not exist"),
        (
            &["run", "-q", "-m", "cat", "-r", "cat", "sub"],
            "sub holds no file gmr reads",
        ),
    ];
    for (args, says) in cases {
        let err = d.run(args).fails(2);
        assert!(
            err.starts_with("gmr: ") && err.contains(says),
            "{args:?}: {err}"
        );
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    }
    let err = Out(d
        .gmr(&["run", "-q", "-m", "cat", "-r", "cat", "in.txt"])
        .env("TMPDIR", d.path("no/such/dir"))
        .output()
        .unwrap())
    .fails(2);
    assert!(
        err.contains("set TMPDIR to a directory you can write"),
        "{err}"
    );
    // A program that cannot run: the message names its flag.
    for (flag, says) in [
        ("-m", "-m: an empty command"),
        ("-r", "-r: unknown built-in `@nope`"),
    ] {
        let program = if flag == "-m" { "" } else { "@nope" };
        let other = if flag == "-m" { "-r" } else { "-m" };
        let err = d
            .run(&["run", "-q", flag, program, other, "cat", "in.txt"])
            .fails(2);
        assert!(err.contains(says), "{flag}: {err}");
    }
    // Flags a map-only job would ignore.
    for extra in [
        &["-r", "cat"][..],
        &["-c", "cat"],
        &["--sort-key", "1,1"],
        &["--total-order"],
    ] {
        let mut args = vec!["run", "-q", "-m", "cat", "-R", "0", "in.txt"];
        args.extend_from_slice(extra);
        let err = d.run(&args).fails(2);
        assert!(err.contains("has no effect with -R 0"), "{extra:?}: {err}");
    }
    // A negative number is a bad value, not an unknown flag to pass after
    // `--`.
    for (flag, value) in [
        ("-R", "-1"),
        ("-j", "-3"),
        ("--retries", "-1"),
        ("--task-timeout", "-1s"),
    ] {
        let err = d
            .run(&["run", "-m", "cat", "-r", "cat", flag, value, "in.txt"])
            .fails(2);
        assert!(
            err.contains(&format!("invalid value '{value}'")),
            "{flag} {value}: {err}"
        );
        assert!(!err.contains("tip:"), "{err}");
    }
}

/// A job log that cannot be written is said once; the job goes on.
#[test]
fn a_job_log_that_cannot_be_written_is_said_once() {
    let d = Dir::new();
    d.write("in.txt", "b\na\n");
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .reducers(2)
        .joblog("/dev/full")
        .input("in.txt")
        .run();
    assert_same_lines(out.ok(), b"a\nb\n", "the output");
    let err = out.stderr();
    assert_eq!(
        err.matches("cannot write job log /dev/full").count(),
        1,
        "{err}"
    );
}

/// Stages piped in the wrong order say which stage comes first, once
/// prefixed with `gmr:`.
#[test]
fn stages_in_the_wrong_order_say_which_comes_first() {
    let d = Dir::new();
    d.write("in.txt", "a\n");
    let splits = d.run(&["split", "in.txt"]).ok().to_vec();
    for stage in ["shuffle", "reduce"] {
        let mut args = vec![stage];
        if stage == "reduce" {
            args.extend(["-r", "cat"]);
        }
        let err = d.run_stdin(&args, &splits).fails(2);
        assert!(err.contains("pipe them through gmr map first"), "{err}");
        assert!(!err.contains("gmr: gmr"), "{err}");
    }
}

/// A value a built-in cannot take fails the task at once, naming the key
/// and the value: retrying the same records cannot help.
#[test]
fn a_value_a_builtin_cannot_take_fails_at_once() {
    let d = Dir::new();
    d.write("in.txt", "a\t1\nb\tx\n");
    for (reducer, says) in [("@sum", "is not an integer"), ("@max", "is not a number")] {
        let err = d
            .run(&["run", "-q", "-m", "cat", "-r", reducer, "in.txt"])
            .fails(1);
        assert!(
            err.contains(says) && err.contains("`x` of key `b`"),
            "{err}"
        );
        assert!(err.contains("failed on local:"), "not retried: {err}");
    }
}

/// A resumed job whose input was stdin reads the copy its first run
/// saved, and says that this run's stdin is not read.
#[test]
fn a_resume_of_a_stdin_job_says_it_reads_the_saved_input() {
    let d = Dir::new();
    d.write("fail", "");
    let m = "sh -c '[ -e fail ] && exit 1; cat'";
    let job = || {
        d.gmr_run()
            .quiet()
            .mapper(m)
            .reducer("cat")
            .retries(0)
            .workdir("w")
    };
    job().run_stdin(b"first\n").fails(1);
    std::fs::remove_file(d.path("fail")).unwrap();
    let out = job().arg("--resume").run_stdin(b"second\n");
    assert_eq!(out.ok(), b"first\n");
    assert!(
        out.stderr()
            .contains("this run's stdin (or stream) is not read"),
        "{}",
        out.stderr()
    );
}

/// A stage whose task fails says where its work directory is kept, as
/// `gmr run` does.
#[test]
fn a_failed_stage_says_where_its_work_directory_is_kept() {
    let d = Dir::new();
    d.write("in.txt", "a\n");
    let gmr = gmr_bin().display().to_string();
    let out = Out(std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{gmr} split in.txt | {gmr} map -q -m false -R 1 --retries 0"
        ))
        .current_dir(d.tmp.path())
        .env("TMPDIR", d.path("tmp"))
        .output()
        .unwrap());
    let err = out.fails(1);
    assert!(
        err.contains("the work directory is kept for inspection"),
        "{err}"
    );
}

/// A command line that runs with `sh -c` needs sh in PATH: without it the
/// check before the job says so (exit 2) instead of every task failing
/// on "cannot start sh" and the job blaming the hosts.
#[test]
fn a_shell_command_without_sh_in_path_is_a_usage_error() {
    let d = Dir::new();
    d.write("in", "a\n");
    let out = d
        .gmr(&["run", "-q", "-m", "tr a b | cat", "-r", "cat", "in"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("runs with sh, which is not in PATH"), "{err}");
    // Plain words need no shell: a program given by its path runs.
    let out = d
        .gmr(&["run", "-q", "-m", "/usr/bin/tr a b", "-r", "cat", "in"])
        .env("PATH", "")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout, b"b\n");
}

/// One machine twice in --hosts, however spelled, is refused before any
/// connection is made: its load would be doubled.
#[test]
fn a_host_listed_twice_however_spelled_is_a_usage_error() {
    let d = Dir::new();
    d.write("in", "a\n");
    for hosts in [
        "root@127.0.0.2:2255,127.0.0.2:2255",
        "HOST1,host1.",
        "node1,2/node1:22",
    ] {
        let args = [
            "run",
            "-q",
            "--hosts",
            hosts,
            "--workdir",
            "w",
            "-m",
            "cat",
            "-r",
            "cat",
            "in",
        ];
        let err = d.run(&args).fails(2);
        assert!(err.contains("is listed twice"), "{hosts}: {err}");
        assert!(!d.path("w").exists(), "{hosts}");
    }
}

/// A public key given as --identity is named as such, before any host is
/// tried (libssh2 would ask for a passphrase it cannot use).
#[test]
fn a_public_key_as_identity_is_a_usage_error() {
    let d = Dir::new();
    d.write("in", "a\n");
    d.write(
        "id.pub",
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDdsw1 me@host\n",
    );
    let args = [
        "run",
        "-q",
        "--hosts",
        "node1",
        "--workdir",
        "w",
        "--identity",
        "id.pub",
        "-m",
        "cat",
        "-r",
        "cat",
        "in",
    ];
    let err = d.run(&args).fails(2);
    assert!(
        err.contains("--identity id.pub is a public key; give the private key (id)"),
        "{err}"
    );
}

#[test]
fn a_job_without_workdir_is_found_while_it_runs_and_its_report_kept() {
    let d = Dir::new();
    d.write("in/a", "x y\n");
    d.write("in/b", "y z\n");
    // The mapper of map-00001 waits until the test has looked.
    let m = d.script(
        "m.sh",
        "if [ \"$GMR_TASK\" = map-00001 ]; then touch started; while [ ! -e go ]; do sleep 0.05; done; fi\ntr ' ' '\\n'",
    );
    let child = d
        .gmr_run()
        .mapper(m.to_str().unwrap())
        .reducer("@count")
        .reducers(1)
        .input("in")
        .command()
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&d.path("started"));
    // Plain `gmr status`, from a directory that holds no job, finds it.
    let status = d.run(&["status"]);
    let text = String::from_utf8_lossy(status.ok()).into_owned();
    assert!(text.contains(": running, map phase"), "{text}");
    d.write("go", "");
    let out = Out(child.wait_with_output().unwrap());
    assert_eq!(out.ok(), b"x\t1\ny\t2\nz\t1\n");
    let err = out.stderr();
    // The work directory was named when the job started ...
    let tmp = d.path("tmp").display().to_string();
    let named = err.lines().next().unwrap_or_default();
    assert!(
        named.starts_with("gmr: job ") && named.contains(&format!(" in {tmp}/")),
        "{err}"
    );
    // ... and is gone, but the report stays in the history.
    assert!(d.leftover_workdirs().is_empty(), "{err}");
    let report = err
        .lines()
        .find_map(|l| l.strip_prefix("  report: "))
        .unwrap_or_else(|| panic!("no report line: {err}"));
    assert!(
        report.starts_with(&format!("{}/gmr/jobs/", d.path("state").display())),
        "{report}"
    );
    assert!(read(report).starts_with(b"<!DOCTYPE html>"));
    let text = String::from_utf8_lossy(d.run(&["status"]).ok()).into_owned();
    assert!(text.contains(": done"), "{text}");
    d.run(&["report", "-o", "again.html"]).ok();
    assert!(read(d.path("again.html")).starts_with(b"<!DOCTYPE html>"));
}

#[test]
fn resume_says_what_it_reused() {
    let d = Dir::new();
    d.write("in/a", "x y\n");
    d.write("in/b", "y z\n");
    d.write("in/c", "z z\n");
    let m = d.script(
        "m.sh",
        "if [ \"$GMR_TASK\" = map-00002 ] && [ ! -e failed-once ]; then touch failed-once; exit 1; fi\ntr ' ' '\\n'",
    );
    let job = |resume: bool| {
        d.gmr_run()
            .args(if resume { vec!["--resume"] } else { vec![] })
            .mapper(m.to_str().unwrap())
            .reducer("@count")
            .reducers(1)
            .retries(0)
            .workdir("w")
            .output("out")
            .input("in")
            .run()
    };
    job(false).fails(1);
    let out = job(true);
    out.ok();
    let err = out.stderr();
    assert!(
        err.contains("gmr: map: reusing 2 of 3 tasks committed in the earlier run; running 1\n")
            && err.contains("gmr: reduce: none of 1 task had committed"),
        "{err}"
    );
    assert!(err.contains(", 2 reused from the earlier run"), "{err}");
    let out = job(true);
    out.ok();
    let err = out.stderr();
    assert!(
        err.contains("gmr: reduce: its one task had committed in the earlier run; nothing to run")
            && err.contains("gmr: job done in an earlier run: every task reused, none ran"),
        "{err}"
    );
    assert_eq!(read(d.path("out/part-00000")), b"x\t1\ny\t2\nz\t3\n");
}
