//! The fault suite: gmr under bad input and faults, on real processes and
//! real files. Each test stands for a way a job could lose data or give a
//! wrong answer with exit 0: removed inputs, a reused work directory,
//! pipes as inputs, inputs that change under the job, commands that stop
//! reading, exit early, hang, leave processes behind or flood stderr, a
//! full disk, and gmr itself killed. Outputs are checked against a
//! fault-free run or the Unix tools.

mod common;

use common::*;
use std::fs;
use std::process::Stdio;
use std::time::{Duration, Instant};

fn signal(child: &std::process::Child, sig: i32) {
    // SAFETY: signalling our own child process.
    unsafe {
        libc::kill(child.id() as i32, sig);
    }
}

/// Kills the `sleep SECS` processes a test left (those that left their
/// group with setsid survive gmr by design).
fn kill_sleeps(secs: &str) {
    let Ok(procs) = fs::read_dir("/proc") else {
        return;
    };
    for p in procs.flatten() {
        let cmdline = fs::read(p.path().join("cmdline")).unwrap_or_default();
        if cmdline == format!("sleep\0{secs}\0").as_bytes()
            && let Ok(pid) = p.file_name().to_string_lossy().parse::<i32>()
        {
            // SAFETY: kill(2) of a process this test started.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
            }
        }
    }
}

/// Whether a process still runs (a zombie does not).
fn alive(pid: &str) -> bool {
    fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| !s.contains(") Z"))
}

// 1. --force never removes what the job reads or runs in.

#[test]
fn force_never_removes_an_input_the_current_directory_or_the_work_directory() {
    let d = Dir::new();
    d.write("data/f", "1\n2\n3\n");
    d.write("keep.txt", "mine\n");
    let err = d
        .run(&[
            "run", "-q", "-m", "cat", "-R0", "-o", "data", "--force", "data",
        ])
        .fails(2);
    assert!(
        err.contains("--force would remove data") && err.contains("input"),
        "{err}"
    );
    assert_eq!(read(d.path("data/f")), b"1\n2\n3\n");
    // The current directory, and a directory holding an input.
    d.run(&[
        "run", "-q", "-m", "cat", "-R0", "-o", ".", "--force", "data/f",
    ])
    .fails(2);
    let parent = d.tmp.path().parent().unwrap().to_str().unwrap().to_string();
    d.run(&[
        "run", "-q", "-m", "cat", "-R0", "-o", &parent, "--force", "data/f",
    ])
    .fails(2);
    // The work directory, and a directory holding it.
    d.write("jobs/old", "x\n");
    d.run(&[
        "run",
        "-q",
        "-m",
        "cat",
        "-R0",
        "-o",
        "jobs",
        "--force",
        "--workdir",
        "jobs/w",
        "data/f",
    ])
    .fails(2);
    assert_eq!(read(d.path("keep.txt")), b"mine\n");
    assert_eq!(read(d.path("jobs/old")), b"x\n");
    // An old output is replaced: its parts, _SUCCESS, an attempt's
    // leftover, compressed parts.
    for old in ["part-00000", "part-00001.gz", "part-00002.zst", "_SUCCESS"] {
        d.write(&format!("out/{old}"), "old\n");
    }
    d.write("out/.part-00003.attempt-1-h-1-1", "old\n");
    d.run(&[
        "run", "-q", "-m", "cat", "-R0", "-o", "out", "--force", "data",
    ])
    .ok();
    assert_eq!(names(d.path("out")), ["_SUCCESS", "part-00000"]);
    assert_eq!(read(d.path("out/part-00000")), b"1\n2\n3\n");
}

/// `--force` replaces an old output and nothing else: a directory that also
/// holds the job's own scripts, its job log, a link to an input, notes or a
/// subdirectory is refused (exit 2), and nothing in it is removed.
#[test]
fn force_removes_only_an_old_outputs_files() {
    let d = Dir::new();
    d.write("in.txt", "a b\n");
    d.sh("mkdir -p linked && ln -s ../in.txt linked/in.txt");
    d.write("job/map.sh", "#!/bin/sh\ntr -s ' ' '\\n'\n");
    d.sh("chmod +x job/map.sh");
    for dir in ["job", "linked", "logs", "notes", "nested"] {
        d.write(&format!("{dir}/part-00000"), "old\n");
    }
    d.write("logs/log.jsonl", "{}\n");
    d.write("notes/README", "mine\n");
    d.write("nested/sub/f", "mine\n");
    let cases: [(&str, &[&str]); 5] = [
        ("job", &["-m", "job/map.sh", "-r", "@count", "in.txt"]),
        ("linked", &["-m", "cat", "-r", "cat", "linked/in.txt"]),
        (
            "logs",
            &[
                "-m",
                "cat",
                "-r",
                "cat",
                "--joblog",
                "logs/log.jsonl",
                "in.txt",
            ],
        ),
        ("notes", &["-m", "cat", "-r", "cat", "in.txt"]),
        ("nested", &["-m", "cat", "-r", "cat", "in.txt"]),
    ];
    for (out, args) in cases {
        let mut argv = vec!["run", "-q", "-o", out, "--force"];
        argv.extend_from_slice(args);
        let err = d.run(&argv).fails(2);
        assert!(
            err.starts_with("gmr: ") && err.contains("nothing was removed"),
            "{out}: {err}"
        );
        assert_eq!(
            read(d.path(&format!("{out}/part-00000"))),
            b"old\n",
            "{out}"
        );
    }
    assert!(d.path("job/map.sh").exists());
    assert_eq!(read(d.path("linked/in.txt")), b"a b\n");
    assert_eq!(read(d.path("logs/log.jsonl")), b"{}\n");
    assert_eq!(read(d.path("notes/README")), b"mine\n");
    assert_eq!(read(d.path("nested/sub/f")), b"mine\n");
}

/// Two jobs never write one output directory: the second is refused
/// (exit 2) while the first runs, even with --force, and the first's
/// output is whole.
#[test]
fn a_second_job_on_the_same_output_is_refused_while_the_first_runs() {
    let d = Dir::new();
    d.sh("seq 1000 > a.txt; seq 5000 7000 > b.txt");
    let first = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("sh -c 'sleep 2; cat'")
        .reducers(4)
        .output("out")
        .input("a.txt")
        .command()
        .spawn()
        .unwrap();
    wait_for(&d.path("out"));
    for force in [false, true] {
        let mut second = d
            .gmr_run()
            .quiet()
            .mapper("cat")
            .reducer("cat")
            .reducers(4)
            .output("out")
            .input("b.txt");
        if force {
            second = second.arg("--force");
        }
        let err = second.run().fails(2);
        assert!(
            err.contains("exists and is not empty")
                || err.contains("being written by another gmr job"),
            "{err}"
        );
    }
    assert!(first.wait_with_output().unwrap().status.success());
    assert_same_lines(
        &parts(d.path("out")),
        &d.sh("seq 1000"),
        "the first job's output",
    );
}

#[test]
fn a_refused_resume_removes_nothing() {
    let d = Dir::new();
    d.write("in", "a\nb\n");
    d.gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .workdir("w")
        .output("out")
        .input("in")
        .run()
        .ok();
    d.write("out2/part-00000", "keep me\n");
    // Another mapper: not the same job, so the resume is refused, before
    // --force touched out2.
    let err = d
        .gmr_run()
        .quiet()
        .arg("--resume")
        .workdir("w")
        .mapper("tr a-z A-Z")
        .reducer("cat")
        .output("out2")
        .arg("--force")
        .input("in")
        .run()
        .fails(2);
    assert!(err.contains("cannot resume"), "{err}");
    assert_eq!(read(d.path("out2/part-00000")), b"keep me\n");
}

// 2. A work directory belongs to one job.

/// Two jobs in one work directory at once: the second is refused (exit 2)
/// before it runs a task or writes a file there, and the first goes on to
/// its right answer. The same for a stage.
#[test]
fn a_work_directory_in_use_by_another_job_is_refused_before_any_task() {
    let d = Dir::new();
    d.sh("seq 1000 > in");
    let first_map = d.script(
        "first.sh",
        "touch started; while [ ! -e go ]; do sleep 0.05; done; exec cat",
    );
    let first = d
        .gmr_run()
        .quiet()
        .mapper(first_map.to_str().unwrap())
        .reducer("cat")
        .reducers(1)
        .workdir("w")
        .input("in")
        .command()
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&d.path("started"));
    let second_map = d.script("second.sh", "touch second-ran; exec cat");
    let second = d
        .gmr_run()
        .quiet()
        .mapper(second_map.to_str().unwrap())
        .reducer("cat")
        .workdir("w")
        .input("in");
    second.clone().run().fails(2);
    // Even as a resume of the job that is running.
    let err = second.arg("--resume").run().fails(2);
    assert!(err.contains("is in use by another gmr job"), "{err}");
    let gmr = gmr_bin().display().to_string();
    let staged = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{gmr} split in | {gmr} map -q -m cat --workdir w"))
        .current_dir(d.tmp.path())
        .output()
        .unwrap();
    assert_ne!(staged.status.code(), Some(0));
    assert!(!d.path("second-ran").exists());
    d.write("go", "");
    let out = first.wait_with_output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout == d.sh("LC_ALL=C sort in"));
}

#[test]
fn stages_refuse_a_work_directory_of_another_job() {
    let d = Dir::new();
    d.write("in1", "a\n");
    d.write("in2", "z\n");
    let gmr = gmr_bin().display().to_string();
    d.sh(&format!(
        "{gmr} split in1 | {gmr} map -q -m cat -R1 --workdir w > maps1"
    ));
    // The same pipeline over in2 into the same work directory: refused,
    // and the stages after it do not go on with the old job's data.
    let second = std::process::Command::new("bash")
        .arg("-c")
        .arg(format!(
            "set -o pipefail; {gmr} split in2 | {gmr} map -q -m cat -R1 --workdir w | {gmr} shuffle -q --workdir w | {gmr} reduce -q -r cat --workdir w"
        ))
        .current_dir(d.tmp.path())
        .env("TMPDIR", d.path("tmp"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&second.stderr);
    assert_ne!(second.status.code(), Some(0), "{err}");
    assert!(second.stdout.is_empty(), "printed another job's output");
    assert!(err.contains("already holds job"), "{err}");
    // Lines of one job piped into a stage over another job's directory.
    d.sh(&format!(
        "{gmr} split in2 | {gmr} map -q -m cat -R1 --workdir w2 > maps2"
    ));
    let lines = read(d.path("maps2"));
    let err = d
        .run_stdin(&["shuffle", "-q", "--workdir", "w"], &lines)
        .fails(2);
    assert!(
        err.contains("are of job") && err.contains("holds job"),
        "{err}"
    );
    let err = d
        .run_stdin(&["reduce", "-q", "-r", "cat", "--workdir", "w"], &lines)
        .fails(2);
    assert!(err.contains("are of job"), "{err}");
    // Each directory still gives its own job's answer.
    let maps1 = read(d.path("maps1"));
    assert_eq!(
        d.run_stdin(&["reduce", "-q", "-r", "cat", "--workdir", "w"], &maps1)
            .ok(),
        b"a\n"
    );
    assert_eq!(
        d.run_stdin(&["reduce", "-q", "-r", "cat", "--workdir", "w2"], &lines)
            .ok(),
        b"z\n"
    );
}

/// Nothing already lying in a work directory or an output directory is
/// taken for a job's work: a reduce stage run again with another reducer
/// computes its answer again; files in a work directory that records no
/// job, and a work directory that overlaps the output or is an input are
/// refused; a resume whose output another job has rewritten writes its
/// own parts again.
#[test]
fn nothing_left_in_a_directory_is_taken_for_this_jobs_work() {
    let d = Dir::new();
    d.write("in.txt", "a\nb\na\n");
    let gmr = gmr_bin().display().to_string();
    d.sh(&format!(
        "{gmr} split in.txt | {gmr} map -q -m cat -R 2 --workdir w > maps"
    ));
    let maps = read(d.path("maps"));
    let counted = d.run_stdin(&["reduce", "-q", "-r", "@count", "--workdir", "w"], &maps);
    assert_same_lines(counted.ok(), b"a\t2\nb\t1\n", "@count");
    let lines = d.run_stdin(&["reduce", "-q", "-r", "wc -l", "--workdir", "w"], &maps);
    let total: u64 = String::from_utf8_lossy(lines.ok())
        .split_whitespace()
        .map(|n| n.parse::<u64>().unwrap())
        .sum();
    assert_eq!(total, 3, "wc -l per partition, not @count's parts again");

    // A work directory with an output no job recorded.
    d.write("p/output/part-00000", "NOT JOB OUTPUT\n");
    let err = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .workdir("p")
        .input("in.txt")
        .run()
        .fails(2);
    assert!(err.contains("holds output/part-00000 but no job"), "{err}");
    // Work and output directories apart; no work directory in an input.
    d.write("data/x", "1\n");
    for args in [
        ["--workdir", "o9", "-o", "o9", "in.txt"],
        ["--workdir", "w9", "-o", "w9/out", "in.txt"],
        ["--workdir", "o8/w", "-o", "o8", "in.txt"],
        ["--workdir", "data", "-o", "o7", "data"],
    ] {
        let err = d
            .gmr_run()
            .quiet()
            .mapper("cat")
            .reducer("cat")
            .args(args)
            .run()
            .fails(2);
        assert!(
            err.contains("overlap") || err.contains("is the input"),
            "{args:?}: {err}"
        );
    }
    assert_eq!(names(d.path("data")), ["x"]);

    // A failed job's output rewritten by another job before the resume.
    d.sh("seq 1000 > a.txt; seq 5000 7000 > b.txt");
    // Partition 1 fails while the file `fail` exists.
    let failing = "sh -c '[ $mapreduce_task_partition = 1 ] && [ -e fail ] && exit 3; cat'";
    d.write("fail", "");
    let job = |reducer: &str, input: &str, extra: &[&str]| {
        d.gmr_run()
            .quiet()
            .mapper("cat")
            .reducer(reducer)
            .reducers(2)
            .output("out")
            .workdir("wa")
            .retries(0)
            .input(input)
            .args(extra)
            .run()
    };
    job(failing, "a.txt", &[]).fails(1);
    d.gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .reducers(2)
        .output("out")
        .arg("--force")
        .input("b.txt")
        .run()
        .ok();
    fs::remove_file(d.path("fail")).unwrap();
    job(failing, "a.txt", &["--resume"]).ok();
    assert_same_lines(
        &parts(d.path("out")),
        &d.sh("seq 1000"),
        "the resumed job's own parts",
    );
}

// 3. Streams are read as stdin is.

/// A second `gmr split` of stdin into the same work directory is refused:
/// it would replace the saved input that the first split's lines read.
#[test]
fn a_second_split_of_stdin_never_replaces_the_first_ones_input() {
    let d = Dir::new();
    let first = d.run_stdin(&["split", "--workdir", "w"], b"one\n");
    let lines = first.ok().to_vec();
    let err = d.run_stdin(&["split", "--workdir", "w"], b"two\n").fails(2);
    assert!(err.contains("already holds a saved input"), "{err}");
    let gmr = gmr_bin().display().to_string();
    d.write("lines", &lines);
    let out = d.sh(&format!(
        "{gmr} map -q -m cat -R 1 < lines | {gmr} reduce -q -r cat"
    ));
    assert_eq!(out, b"one\n");
}

#[test]
fn pipes_process_substitution_and_dev_stdin_are_read_not_skipped() {
    let d = Dir::new();
    let gmr = gmr_bin().display().to_string();
    let run = |cmd: &str| {
        let out = std::process::Command::new("bash")
            .arg("-c")
            .arg(cmd)
            .current_dir(d.tmp.path())
            .env("TMPDIR", d.path("tmp"))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{cmd}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let five = b"1\n2\n3\n4\n5\n".to_vec();
    assert_eq!(run(&format!("{gmr} run -q -m cat -R0 <(seq 5)")), five);
    assert_eq!(
        run(&format!("seq 5 | {gmr} run -q -m cat -R0 /dev/stdin")),
        five
    );
    assert_eq!(
        run(&format!("seq 3 | {gmr} run -q -m cat -R0 <(seq 4 5) - ")),
        b"4\n5\n1\n2\n3\n"
    );
    assert_eq!(
        run(&format!(
            "{gmr} split <(seq 5) | {gmr} map -q -m cat -R1 | {gmr} reduce -q -r cat"
        )),
        five
    );
    let err = d
        .run_stdin(&["run", "-q", "-m", "cat", "-R0", "-", "-"], b"1\n")
        .fails(2);
    assert!(err.contains("standard input is given twice"), "{err}");
    assert!(
        d.leftover_workdirs().is_empty(),
        "{:?}",
        d.leftover_workdirs()
    );
}

/// Ctrl-C while a stream is being read ends gmr within about a second,
/// exit 130, whether the stream never comes (a FIFO without a writer, a
/// terminal left alone) or never ends (/dev/zero), and leaves no work
/// directory: there is no job yet to resume.
#[test]
fn ctrl_c_while_a_stream_is_read_exits_130_and_leaves_nothing_behind() {
    let d = Dir::new();
    d.sh("mkfifo fifo");
    let sources = ["fifo", "/dev/zero", "silent stdin"];
    // `gmr run`, and `gmr split` of a stream (whose lines would name it).
    let runs = sources.map(|s| (s, vec!["run", "-q", "-m", "cat", "-r", "cat"]));
    let splits = ["/dev/zero", "silent stdin"].map(|s| (s, vec!["split"]));
    for (source, mut args) in runs.into_iter().chain(splits) {
        let stdin = match source {
            "fifo" => {
                args.push("fifo");
                Stdio::null()
            }
            "/dev/zero" => Stdio::from(fs::File::open("/dev/zero").unwrap()),
            _ => Stdio::piped(),
        };
        let mut child = d
            .gmr(&args)
            .stdin(stdin)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Held open, never written: the read blocks.
        let _stdin = child.stdin.take();
        std::thread::sleep(Duration::from_millis(500));
        let t0 = Instant::now();
        signal(&child, libc::SIGINT);
        let out = child.wait_with_output().unwrap();
        assert!(
            t0.elapsed() < Duration::from_secs(3),
            "{source}: took {:?}",
            t0.elapsed()
        );
        assert_eq!(out.status.code(), Some(130), "{args:?} {source}");
        assert!(
            d.leftover_workdirs().is_empty(),
            "{args:?} {source}: {:?}",
            d.leftover_workdirs()
        );
    }
}

// 4. Inputs that change under the job.

#[test]
fn an_input_truncated_between_split_and_map_is_refused_naming_it() {
    let d = Dir::new();
    d.sh("seq 200000 > in");
    let gmr = gmr_bin().display().to_string();
    d.sh(&format!("{gmr} split --split-size 100K in > s"));
    d.sh("truncate -s 100 in");
    let s = read(d.path("s"));
    let out = d.run_stdin(&["map", "-q", "-m", "cat", "-R1", "--workdir", "w"], &s);
    // Caught before any task runs: the last split no longer ends at the
    // file's end.
    let err = out.fails(2);
    assert!(
        err.contains("changed since gmr split planned it") && err.contains("/in"),
        "{err}"
    );
}

#[test]
fn an_input_truncated_or_rewritten_while_the_job_runs_fails_it() {
    for how in [
        "truncate -s 1000 in",
        "seq 100000 | tr 0-9 a-j > x && cat x > in",
        "rm in",
    ] {
        let d = Dir::new();
        d.sh("seq 100000 > in");
        // The first mapper to start waits until the input changed.
        let m = d.script(
            "m.sh",
            "if mkdir started 2>/dev/null; then while [ ! -e changed ]; do sleep 0.05; done; fi; exec cat",
        );
        let child = d
            .gmr_run()
            .quiet()
            .jobs(2)
            .mapper(m.to_str().unwrap())
            .reducer("cat")
            .split_size("64K")
            .output("out")
            .workdir("w")
            .input("in")
            .command()
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        wait_for(&d.path("started"));
        d.sh(how);
        d.sh("touch changed");
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{how}: {err}");
        assert!(err.contains("changed while the job ran"), "{how}: {err}");
        // At once: a retry cannot mend it.
        assert!(err.contains("failed on local:"), "{how}: {err}");
        assert!(err.contains("work directory is kept"), "{err}");
        assert!(!d.path("out/_SUCCESS").exists());
    }
}

// 5. Commands that stop reading early.

#[test]
fn a_reducer_or_mapper_that_stops_reading_succeeds_and_counts_still_add_up() {
    let d = Dir::new();
    d.sh("seq 300000 > in");
    let out = d.run(&["run", "-m", "cat", "-r", "head -n1", "-R1", "in"]);
    assert_eq!(out.ok(), b"1\n");
    let err = out.stderr();
    assert!(err.contains("300000 records in"), "{err}");
    assert!(err.contains("stopped reading early"), "{err}");
    // A mapper too: each map task's first line.
    let out = d
        .gmr_run()
        .quiet()
        .mapper("head -n1")
        .reducer("cat")
        .arg("-R1")
        .split_size("200K")
        .input("in")
        .run();
    let firsts = out.ok().iter().filter(|&&b| b == b'\n').count();
    assert!(firsts >= 5, "one line per map task: {firsts}");
    // The job report still accounts for every record.
    d.gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("head -n2")
        .arg("-R2")
        .workdir("w")
        .output("o")
        .input("in")
        .run()
        .ok();
    let report: serde_json::Value = serde_json::from_slice(&read(d.path("w/report.json"))).unwrap();
    assert_eq!(report["map"]["records_out"], 300000);
    assert_eq!(report["reduce"]["records_in"], 300000);
    let size = fs::metadata(d.path("in")).unwrap().len();
    assert_eq!(report["reduce"]["bytes_in"], size);
    assert!(report["reduce"]["records_read"].as_u64().unwrap() < 300000);
    // Staged, the reducer reads the shuffle's merged partition: its
    // records are accounted for too.
    let gmr = gmr_bin().display().to_string();
    d.sh(&format!(
        "{gmr} split in | {gmr} map -q -m cat -R1 --workdir s | {gmr} shuffle -q --workdir s | {gmr} reduce -r 'head -n1' --workdir s > staged 2> staged.err"
    ));
    assert_eq!(read(d.path("staged")), b"1\n");
    let err = String::from_utf8(read(d.path("staged.err"))).unwrap();
    assert!(err.contains("300000 records in"), "{err}");
    assert!(err.contains("stopped reading early"), "{err}");
}

// 6. Exit statuses that mean success.

#[test]
fn grep_as_mapper_needs_ok_exit_and_the_error_says_so() {
    let d = Dir::new();
    let books = gutenberg();
    let grep = || {
        d.gmr_run()
            .quiet()
            .mapper("grep -w Frankenstein")
            .reducer("cat")
    };
    let err = grep().retries(0).input(&books).run().fails(1);
    assert!(err.contains("--ok-exit 0,1"), "{err}");
    let ours = grep()
        .arg("-R1")
        .flag("--ok-exit", "0,1")
        .input(&books)
        .run()
        .ok()
        .to_vec();
    let want = d.sh(&format!(
        "cat {books}/* | grep -w Frankenstein | LC_ALL=C sort"
    ));
    assert!(!want.is_empty());
    assert_eq!(ours, want);
}

// 7. A command that hangs.

#[test]
fn a_hung_attempt_is_killed_after_the_task_timeout_and_retried() {
    let d = Dir::new();
    d.write("in", "b\na\n");
    // The first attempt hangs without a sign of life; the next works.
    let m = d.script(
        "m.sh",
        "if [ \"$GMR_ATTEMPT\" = 1 ]; then exec sleep 60; fi; exec cat",
    );
    let t0 = Instant::now();
    let out = d
        .gmr_run()
        .mapper(m.to_str().unwrap())
        .reducer("cat")
        .flag("--task-timeout", "1s")
        .joblog("log")
        .input("in")
        .run();
    assert_eq!(out.ok(), b"a\nb\n");
    assert!(t0.elapsed() < Duration::from_secs(15));
    assert!(out.stderr().contains("1 timed out"), "{}", out.stderr());
    let log = String::from_utf8(read(d.path("log"))).unwrap();
    assert!(
        log.contains("\"timed_out\"") && log.contains("no sign of life"),
        "{log}"
    );
}

// 8. Commands that leave processes behind.

#[test]
fn a_task_ends_when_its_command_does_whatever_it_left_running() {
    let d = Dir::new();
    d.write("in", "x\n");
    for (m, within) in [
        ("sleep 301 & cat", 5),
        ("setsid sleep 302 & cat", 6),
        ("(sleep 303; echo late) & cat", 5),
    ] {
        let t0 = Instant::now();
        let out = d.run(&["run", "-q", "-m", m, "-r", "cat", "in"]);
        assert_eq!(out.ok(), b"x\n", "{m}");
        assert!(
            t0.elapsed() < Duration::from_secs(within),
            "{m}: {:?}",
            t0.elapsed()
        );
    }
    // What stayed in the group was killed; setsid's sleep left it.
    for secs in ["301", "302", "303"] {
        kill_sleeps(secs);
    }
}

/// A daemon a mapper starts (setsid: out of the command's process group)
/// is found and killed when the mapper exits: one that would write into
/// the task's output once the mapper is gone (it waits for that) writes
/// nothing, and holds the task no second; one that holds no output
/// (`setsid sleep`) does not outlive it either.
#[test]
fn a_daemon_a_command_starts_is_killed_when_the_command_exits() {
    let d = Dir::new();
    d.write("in", "a\nb\n");
    let m = d.script(
        "m.sh",
        "p=$$\n\
         setsid sh -c \"while kill -0 $p 2>/dev/null; do sleep 0.01; done; while :; do echo daemon305; sleep 0.02; done\" &\n\
         setsid sleep 306 &\n\
         cat\n",
    );
    let t0 = Instant::now();
    let out = d
        .gmr_run()
        .quiet()
        .mapper(m.to_str().unwrap())
        .reducers(0)
        .input("in")
        .run();
    assert_eq!(out.ok(), b"a\nb\n");
    // The build before drained the daemon's pipe for 1.2 s.
    assert!(t0.elapsed() < Duration::from_secs(1), "{:?}", t0.elapsed());
    std::thread::sleep(Duration::from_millis(100));
    let left = d.sh("ps -eo args | grep -c '[d]aemon305\\|^sleep 306' || true");
    kill_sleeps("306");
    assert_eq!(
        String::from_utf8_lossy(&left).trim(),
        "0",
        "a daemon still runs"
    );
}

#[test]
fn ctrl_c_ends_gmr_within_a_second_whatever_the_children_do() {
    let d = Dir::new();
    d.write("in", "x\ny\n");
    let m = d.script(
        "m.sh",
        "touch started; setsid sleep 304 & trap '' INT TERM; cat; sleep 304",
    );
    let child = d
        .gmr_run()
        .quiet()
        .mapper(m.to_str().unwrap())
        .reducer("cat")
        .workdir("w")
        .input("in")
        .command()
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&d.path("started"));
    std::thread::sleep(Duration::from_millis(200));
    let t0 = Instant::now();
    signal(&child, libc::SIGINT);
    let out = child.wait_with_output().unwrap();
    let waited = t0.elapsed();
    kill_sleeps("304");
    assert_eq!(
        out.status.code(),
        Some(130),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(waited < Duration::from_millis(2500), "took {waited:?}");
}

// 9. A flood of stderr.

/// The most resident memory process `pid` had, in KiB (VmHWM).
fn peak_kib(pid: u32) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[test]
fn gigabytes_of_stderr_without_newlines_keep_memory_bounded() {
    let d = Dir::new();
    d.write("in", "x\n");
    // 512 MiB of stderr in one "line", then a progress bar drawn with \r.
    let m = d.script(
        "m.sh",
        "head -c 512M /dev/zero >&2; i=0; while [ $i -lt 2000 ]; do printf 'progress %d\\r' $i >&2; i=$((i+1)); done; echo 'last words' >&2; cat; exit 3",
    );
    let mut child = d
        .gmr_run()
        .quiet()
        .mapper(m.to_str().unwrap())
        .reducer("cat")
        .retries(0)
        .workdir("w")
        .input("in")
        .command()
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let pid = child.id();
    let mut peak = 0;
    let stderr = std::thread::spawn({
        let mut e = child.stderr.take().unwrap();
        move || {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut e, &mut s).unwrap();
            s
        }
    });
    while child.try_wait().unwrap().is_none() {
        peak = peak.max(peak_kib(pid).unwrap_or(0));
        std::thread::sleep(Duration::from_millis(5));
    }
    let err = stderr.join().unwrap();
    assert!(peak < 100 << 10, "gmr peaked at {peak} KiB");
    assert!(
        err.contains("last words") && err.contains("exited with status 3"),
        "{err}"
    );
    assert!(
        err.len() < 64 << 10,
        "the message holds a bounded tail: {} bytes",
        err.len()
    );
    // The log kept its first 16 MiB and says what it dropped.
    let log = d.path("w/logs/map-00000.1.stderr");
    let len = fs::metadata(&log).unwrap().len();
    assert!(
        (16 << 20..(16 << 20) + 4096).contains(&len),
        "log of {len} bytes"
    );
    let tail = read(&log);
    let tail = String::from_utf8_lossy(&tail[tail.len() - 200..]);
    assert!(tail.contains("more bytes were not kept"), "{tail}");
}

// 10. A full filesystem.

/// A 1 MB filesystem mounted at `small` in `d`, unmounted when the value
/// is dropped; None when it cannot be mounted (not root).
fn small_filesystem(d: &Dir) -> Option<impl Drop> {
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount").arg(&self.0).status();
        }
    }
    fs::create_dir(d.path("small")).unwrap();
    // SAFETY: geteuid has no preconditions.
    let root = unsafe { libc::geteuid() } == 0;
    let mounted = root
        && std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
            .arg(d.path("small"))
            .status()
            .is_ok_and(|s| s.success());
    mounted.then(|| Unmount(d.path("small")))
}

#[test]
fn a_full_filesystem_names_the_file_and_is_not_retried_in_the_same_place() {
    let d = Dir::new();
    let Some(_unmount) = small_filesystem(&d) else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    d.sh("seq 1000000 > in");
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("@identity")
        .arg("-R1")
        .joblog("log")
        .output("small/out")
        .input("in")
        .run();
    let err = out.fails(1);
    assert!(err.contains("No space left on device"), "{err}");
    assert!(err.contains("small/out/"), "names the file: {err}");
    assert!(err.contains("free some space"), "says what to do: {err}");
    let log = String::from_utf8(read(d.path("log"))).unwrap();
    let reduce_attempts = log.lines().filter(|l| l.contains("reduce-00000")).count();
    assert_eq!(reduce_attempts, 1, "not retried in the same place: {log}");
    assert!(!d.path("small/out/_SUCCESS").exists());
    // The work directory on a full filesystem: the map side says so too.
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .arg("-R1")
        .workdir("small/w")
        .input("in")
        .run();
    let err = out.fails(1);
    assert!(
        err.contains("No space left on device") && err.contains("small/w"),
        "{err}"
    );
}

#[test]
fn parts_written_into_a_stdout_that_fills_up_are_taken_back() {
    // With `-r cat` and stdout a file, parts go straight into it: on a full
    // disk the job fails, and the file is cut back to what it held before.
    let d = Dir::new();
    let Some(_unmount) = small_filesystem(&d) else {
        eprintln!("skipped: mounting a small tmpfs needs root");
        return;
    };
    d.sh("seq 1000000 > in");
    let gmr = gmr_bin().display().to_string();
    let job = format!("{gmr} run -q -m cat -r cat -R 3 --total-order --workdir w in");
    let status = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("{{ echo before; {job}; }} > small/out 2> err"))
        .current_dir(d.path(""))
        // As `d.sh` runs the resume: the same environment.
        .env("TMPDIR", d.path("tmp"))
        .env("LC_ALL", "C")
        .status()
        .unwrap();
    let err = String::from_utf8(read(d.path("err"))).unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("cannot write stdout: No space left on device")
            && err.contains("free some space"),
        "{err}"
    );
    assert_eq!(read(d.path("small/out")), b"before\n", "cut back: {err}");
    // Resumed with room, every part is written again: none was committed
    // as a file.
    let out = d.sh(&format!("{job} --resume"));
    assert!(
        out == d.sh("LC_ALL=C sort in"),
        "the resumed job's output is the sorted input"
    );
}

// 11. The crash test: commands that fail and stall at random.

/// A mapper or reducer that, decided by a hash of the seed, the task and
/// the attempt, exits 1 after part of its output in a third of attempts
/// and stalls for seconds in another third.
fn crashy(d: &Dir, name: &str, body: &str) -> String {
    d.script(
        name,
        &format!(
            "r=$(printf '%s' \"$SEED $GMR_TASK $GMR_ATTEMPT\" | cksum | cut -d' ' -f1)\n\
             case $((r % 3)) in\n\
             0) {body} | head -n 5; exit 1 ;;\n\
             1) sleep 3; exec {body} ;;\n\
             *) exec {body} ;;\n\
             esac"
        ),
    )
    .display()
    .to_string()
}

#[test]
fn random_crashes_and_stalls_give_the_fault_free_output() {
    let d = Dir::new();
    let books = gutenberg();
    let words = words_map();
    let sum = sum_reduce();
    let reference = d
        .word_count(&["-R", "3", "--split-size", "300K", &books])
        .ok()
        .to_vec();
    let m = crashy(&d, "m.sh", &words);
    let r = crashy(&d, "r.sh", &sum);
    for seed in ["1", "2", "3"] {
        let out = d
            .gmr_run()
            .quiet()
            .mapper(&m)
            .reducer(&r)
            .reducers(3)
            .split_size("300K")
            .jobs(4)
            .retries(12)
            .flag("--task-timeout", "1s")
            .output(&format!("out{seed}"))
            .input(&books)
            .command()
            .env("SEED", seed)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "seed {seed}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            parts(d.path(&format!("out{seed}"))),
            reference,
            "seed {seed}"
        );
        assert!(d.path(&format!("out{seed}/_SUCCESS")).exists());
    }
    // With retries exhausted: exit 1, no _SUCCESS.
    let always = d.script("bad.sh", &format!("{words} | head -n 5; exit 1"));
    let err = d
        .gmr_run()
        .quiet()
        .mapper(always.to_str().unwrap())
        .reducer(&sum)
        .retries(1)
        .output("bad")
        .input(&books)
        .run()
        .fails(1);
    assert!(err.contains("failed 2 times"), "{err}");
    assert!(!d.path("bad/_SUCCESS").exists());
}

// gmr itself killed mid-job, then resumed.

#[test]
fn kill_9_mid_job_then_resume_gives_the_same_output() {
    let d = Dir::new();
    let books = gutenberg();
    let reference = d
        .word_count(&["-R", "2", "--split-size", "400K", &books])
        .ok()
        .to_vec();
    // Map tasks after the first few are slow, so that the kill lands
    // mid-phase with some tasks committed.
    let m = d.script(
        "m.sh",
        &format!("touch started-$GMR_TASK; case $GMR_TASK in map-0000[0-2]) ;; *) sleep 1 ;; esac; exec {}", words_map()),
    );
    let job = |resume: bool| {
        let mut j = d.gmr_run().quiet();
        if resume {
            j = j.arg("--resume");
        }
        j.mapper(m.to_str().unwrap())
            .reducer(sum_reduce())
            .reducers(2)
            .split_size("400K")
            .jobs(2)
            .workdir("w")
            .output("out")
            .input(&books)
    };
    let mut child = job(false).command().stderr(Stdio::null()).spawn().unwrap();
    wait_for(&d.path("started-map-00004"));
    signal(&child, libc::SIGKILL);
    child.wait().unwrap();
    assert!(!d.path("out/_SUCCESS").exists());
    job(true).run().ok();
    assert_eq!(parts(d.path("out")), reference);
    assert!(d.path("out/_SUCCESS").exists());
    assert_eq!(
        names(d.path("out"))
            .iter()
            .filter(|n| n.starts_with('.'))
            .count(),
        0,
        "no attempt files left: {:?}",
        names(d.path("out"))
    );
}

#[test]
fn children_of_a_killed_attempt_are_gone() {
    let d = Dir::new();
    d.write("in", "x\n");
    let m = d.script("m.sh", "sleep 305 & echo $! > child; exec sleep 306");
    let out = d
        .gmr_run()
        .quiet()
        .mapper(m.to_str().unwrap())
        .reducer("cat")
        .flag("--task-timeout", "500ms")
        .retries(0)
        .input("in")
        .run();
    out.fails(1);
    let pid = String::from_utf8(read(d.path("child"))).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    assert!(!alive(pid.trim()), "the mapper's background child survived");
}

#[test]
fn a_runs_file_cut_short_by_a_crash_is_redone_on_resume() {
    // Map runs are not synced to disk; a machine that crashed can leave a
    // committed runs file shorter than its index says.
    let d = Dir::new();
    let books = gutenberg();
    let reference = d
        .word_count(&["-R", "2", "--split-size", "400K", &books])
        .ok()
        .to_vec();
    let run = |resume: bool| {
        let mut j = d.gmr_run().quiet();
        if resume {
            j = j.arg("--resume");
        }
        j.word_count()
            .reducers(2)
            .split_size("400K")
            .workdir("w")
            .output("out")
            .input(&books)
            .run()
    };
    run(false).ok();
    // The crash: a runs file cut, the output not yet there.
    d.sh("truncate -s 100 w/map/map-00001/out && rm -r out/* w/reports/reduce-*");
    run(true).ok();
    assert_eq!(parts(d.path("out")), reference);
    // A part cut short, its report kept: redone too.
    d.sh("truncate -s 10 out/part-00001 && rm out/_SUCCESS");
    run(true).ok();
    assert_eq!(parts(d.path("out")), reference);
    // A part committed, the crash before its report (here: a part of
    // another content): removed and redone.
    d.sh("echo not-this-jobs > out/part-00001.x && mv out/part-00001.x out/part-00001 && rm w/reports/reduce-00001.json out/_SUCCESS");
    run(true).ok();
    assert_eq!(parts(d.path("out")), reference);
    // A map task's index.json and its directory's commit are not synced
    // either: an index left empty, a directory whose commit was lost
    // (its report synced), both redone.
    d.sh(
        "rm -r out/* w/reports/reduce-* && : > w/map/map-00002/index.json && rm -r w/map/map-00000",
    );
    run(true).ok();
    assert_eq!(parts(d.path("out")), reference);
    for map in ["map-00000", "map-00002"] {
        let index = std::fs::read_to_string(d.path(&format!("w/map/{map}/index.json"))).unwrap();
        assert!(index.contains("segments"), "{map} redone: {index}");
    }
}

/// A record longer than --max-record stops the job at once (a retry would
/// meet it again), naming the input, whatever path the records take: the
/// `cat` mapper read into the sort buffer, a command's output, a
/// built-in's table. Under the limit the same records are sorted as
/// `sort` sorts them. Memory stays near the limit, not the record.
#[test]
fn a_record_past_max_record_stops_the_job_naming_its_input() {
    let d = Dir::new();
    d.sh("echo first > long.txt && head -c 3000000 /dev/zero | tr '\\0' x >> long.txt && echo >> long.txt && seq 1 1000 >> long.txt");
    for (mapper, reducer) in [("cat", "cat"), ("tr a a", "cat"), ("cat", "@count")] {
        let args = [
            "run",
            "-q",
            "-m",
            mapper,
            "-r",
            reducer,
            "--max-record",
            "1M",
            "long.txt",
        ];
        let err = d.run(&args).fails(1);
        assert!(
            err.contains("longer than --max-record (1048576 bytes)")
                && err.contains(&d.path("long.txt").display().to_string())
                && err.contains("failed on local:"),
            "{mapper} {reducer}: {err}"
        );
        // The `cat` mapper reads the input itself: the line is placed.
        if (mapper, reducer) == ("cat", "cat") {
            assert!(err.contains("(the line at byte 6)"), "{err}");
        }
    }
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .reducer("cat")
        .reducers(1)
        .flag("--max-record", "4M")
        .input("long.txt")
        .run();
    // (Not assert_eq!, which would print 3 MB.)
    assert!(out.ok() == d.sh("LC_ALL=C sort long.txt").as_slice());
    let err = d
        .run(&[
            "run",
            "-m",
            "cat",
            "-r",
            "cat",
            "--max-record",
            "3G",
            "long.txt",
        ])
        .fails(2);
    assert!(err.contains("is out of range"), "{err}");
}

/// An attempt of an earlier job that outlived it (the array element of a
/// killed coordinator, say) never commits into the output of a later job
/// that took the directory over from a work directory of its own: the
/// output directory names the job whose parts it takes.
#[test]
fn a_stray_attempt_never_commits_into_a_later_jobs_output() {
    let d = Dir::new();
    d.write("in.txt", "b\na\nc\n");
    // Job 1 fails in its reducer, leaving w1 (its spec, its map output).
    d.script("r1.sh", "[ -e ok ] || exit 3\ntr a-z A-Z");
    d.run(&[
        "run",
        "-q",
        "-m",
        "cat",
        "-r",
        "./r1.sh",
        "-R",
        "1",
        "--retries",
        "0",
        "-o",
        "out",
        "--workdir",
        "w1",
        "in.txt",
    ])
    .fails(1);
    // Job 2 takes the output directory over; its reducer is slow.
    let mut job2 = d
        .gmr(&[
            "run",
            "-q",
            "-m",
            "cat",
            "-r",
            "touch started2; sleep 3; cat",
            "-R",
            "1",
            "-o",
            "out",
            "--force",
            "--workdir",
            "w2",
            "in.txt",
        ])
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    wait_for(&d.path("started2"));
    // Job 1's reduce runs now, as its orphaned array element would.
    d.write("ok", "");
    let stray = d
        .gmr(&["task", "--workdir", "w1", "reduce-00000"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&stray.stderr);
    assert_eq!(stray.status.code(), Some(1), "{err}");
    assert!(err.contains("is no longer job"), "{err}");
    let status = job2.wait().unwrap();
    assert!(status.success());
    assert_eq!(read(d.path("out/part-00000")), b"a\nb\nc\n");
    assert!(d.path("out/_SUCCESS").exists());
    assert!(
        !d.path("out/.gmr-job").exists(),
        "the claim goes with success"
    );
}

/// A mapper that fails on any input holding POISON, saying so on stderr.
fn poison_sensitive_mapper(d: &Dir) -> String {
    d.script(
        "m.sh",
        "if grep -q POISON < \"$GMR_INPUT_FILE\"; then echo \"bad record in $GMR_INPUT_FILE\" >&2; exit 3; fi\ntr ' ' '\\n'",
    )
    .display()
    .to_string()
}

#[test]
fn a_poisoned_split_is_skipped_within_max_failed_tasks_and_named_everywhere() {
    let d = Dir::new();
    d.write("in/a", "alpha beta\ngamma\n");
    d.write("in/b", "POISON here\n");
    d.write("in/c", "beta delta\n");
    d.write("good/a", "alpha beta\ngamma\n");
    d.write("good/c", "beta delta\n");
    let m = poison_sensitive_mapper(&d);
    let job = |more: &[&str], input: &str| {
        d.gmr_run()
            .mapper(&m)
            .reducer("@count")
            .reducers(2)
            .retries(1)
            .args(more)
            .input(input)
            .run()
    };
    let reference = job(&["-q"], "good");
    let out = job(
        &[
            "--max-failed-tasks",
            "1",
            "--joblog",
            "log.jsonl",
            "--workdir",
            "w",
            "-o",
            "out",
        ],
        "in",
    );
    out.ok();
    // The output is the job's over the other two files.
    assert_eq!(parts(d.path("out")), reference.ok());
    assert!(d.path("out/_SUCCESS").exists());
    // Named on stderr, in the output, the job log and the report.
    let err = out.stderr();
    let b = d.path("in/b").display().to_string();
    assert!(
        err.contains("1 map task failed after its retries and was skipped")
            && err.contains(&format!(
                "skipped map-00001 ({b} bytes 0..12) after 2 attempts"
            ))
            && err.contains("1 SKIPPED"),
        "{err}"
    );
    let listed = json_lines(&read(d.path("out/_SKIPPED")));
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0]["inputs"][0]["file"], b.as_str());
    assert_eq!(listed[0]["stderr_tail"], format!("bad record in {b}"));
    let log = joblog(d.path("log.jsonl"));
    assert!(
        log.iter()
            .any(|l| l["status"] == "skipped" && l["inputs"][0]["file"] == b.as_str()),
        "{log:?}"
    );
    let report: serde_json::Value = serde_json::from_slice(&read(d.path("w/report.json"))).unwrap();
    assert_eq!(report["skipped"][0]["task"], "map-00001", "{report}");
    assert_eq!(report["map"]["skipped"], 1);
    // A map-only job to stdout leaves the skipped split's records out.
    let map_only = d
        .gmr_run()
        .mapper(&m)
        .arg("-R")
        .arg("0")
        .retries(0)
        .arg("--max-failed-tasks")
        .arg("50%")
        .input("in")
        .run();
    assert_eq!(map_only.ok(), b"alpha\nbeta\ngamma\nbeta\ndelta\n");
    // One failure more than allowed fails the job.
    d.write("in/d", "more POISON\n");
    let err = job(&["-q", "--max-failed-tasks", "1"], "in").fails(1);
    assert!(err.contains("failed 2 times"), "{err}");
}

#[test]
fn a_command_over_task_memory_fails_saying_so_and_one_under_it_runs() {
    let d = Dir::new();
    d.write("in.txt", "x\n");
    let alloc = |mb: u32| format!("python3 -c 'b = bytearray({mb} * 1024 * 1024); print(len(b))'");
    // 400 MB under a 100 MB limit: the allocation fails, every attempt.
    let err = d
        .gmr_run()
        .quiet()
        .mapper(alloc(400))
        .arg("-R")
        .arg("0")
        .arg("--task-memory")
        .arg("100M")
        .retries(1)
        .joblog("log.jsonl")
        .input("in.txt")
        .run()
        .fails(1);
    assert!(
        err.contains("failed 2 times") && err.contains("over --task-memory 100M"),
        "{err}"
    );
    let log = joblog(d.path("log.jsonl"));
    assert!(
        log.iter().all(|l| l["error"]
            .as_str()
            .is_some_and(|e| e.contains("over --task-memory 100M"))),
        "{log:?}"
    );
    // A pipeline of two processes of 60 MB each under 100M: in a memory
    // cgroup (where gmr can make one) the limit is the command's, and the
    // kernel's OOM killer is named; with RLIMIT_DATA, where none can be
    // made (here: /sys/fs/cgroup hidden in a mount namespace of its own),
    // each process has the limit to itself and the pipeline runs. The
    // first holds its 60 MB until the second is gone, and the second
    // allocates only once the first has: both are alive with their memory
    // together, however the machine schedules them.
    let first = d.write(
        "first.py",
        "import os\nb = bytearray(60 << 20)\nos.write(1, b'ready\\n')\n\
         try:\n    os.write(1, b'.' * (1 << 20))\nexcept OSError:\n    pass\n",
    );
    let second = d.write(
        "second.py",
        "import sys\nsys.stdin.readline()\nb = bytearray(60 << 20)\nprint(len(b))\n",
    );
    let pipeline = format!("python3 {} | python3 {}", first.display(), second.display());
    let run = |wrap: &str, m: &str| {
        let cmd = format!(
            "{wrap} {} run -q -R 0 --retries 0 --task-memory 100M -m \"{m}\" in.txt",
            gmr_bin().display()
        );
        std::process::Command::new("sh")
            .arg("-c")
            .arg(cmd)
            .current_dir(d.path(""))
            .env("TMPDIR", d.path("tmp"))
            .env("XDG_STATE_HOME", d.path("state"))
            .output()
            .unwrap()
    };
    let stderr = |o: &std::process::Output| String::from_utf8_lossy(&o.stderr).into_owned();
    if memory_cgroup_available() {
        let out = run("", &pipeline);
        assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("killed: over --task-memory 100M (the kernel's OOM killer"),
            "{}",
            stderr(&out)
        );
    } else {
        eprintln!("no memory cgroup gmr can make here: the cgroup case is not checked");
    }
    let hide = "unshare -m sh -c 'mount -t tmpfs none /sys/fs/cgroup && exec \"$0\" \"$@\"'";
    let out = run(hide, &alloc(400));
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("over --task-memory 100M (it could not allocate more)"),
        "{}",
        stderr(&out)
    );
    let out = run(hide, &pipeline);
    assert!(out.status.success(), "{}", stderr(&out));
    // 40 MB under 200 MB runs.
    let out = d
        .gmr_run()
        .quiet()
        .mapper(alloc(40))
        .arg("-R")
        .arg("0")
        .arg("--task-memory")
        .arg("200M")
        .input("in.txt")
        .run();
    assert_eq!(out.ok(), b"41943040\n");
    // --memfree below what the machine has starts attempts as usual.
    let out = d
        .gmr_run()
        .quiet()
        .mapper("cat")
        .arg("-R")
        .arg("0")
        .arg("--memfree")
        .arg("1K")
        .input("in.txt")
        .run();
    assert_eq!(out.ok(), b"x\n");
    // More than any machine has: the attempt waits, its mapper never
    // starts, and Ctrl-C still ends the job at once.
    let m = d.script("m.sh", "touch started\ncat");
    let mut child = d
        .gmr_run()
        .quiet()
        .mapper(m.to_str().unwrap())
        .arg("-R")
        .arg("0")
        .arg("--memfree")
        .arg("1000000G")
        .input("in.txt")
        .command()
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(1500));
    assert!(!d.path("started").exists(), "the mapper started");
    let t0 = std::time::Instant::now();
    d.sh(&format!("kill -INT {}", child.id()));
    assert_eq!(child.wait().unwrap().code(), Some(130));
    assert!(t0.elapsed() < std::time::Duration::from_secs(5));
}

/// Whether this machine gives gmr a memory cgroup to make cgroups in: v1's
/// memory hierarchy with a directory for this process, or v2 with the
/// memory controller for children (as `ls` and `cat` would tell).
fn memory_cgroup_available() -> bool {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").unwrap_or_default();
    cgroups.lines().any(|l| {
        let parts: Vec<&str> = l.splitn(3, ':').collect();
        match parts[..] {
            [_, c, path] if c.split(',').any(|c| c == "memory") => {
                std::path::Path::new("/sys/fs/cgroup/memory")
                    .join(path.trim_start_matches('/'))
                    .join("memory.limit_in_bytes")
                    .exists()
            }
            [_, "", path] => std::fs::read_to_string(
                std::path::Path::new("/sys/fs/cgroup")
                    .join(path.trim_start_matches('/'))
                    .join("cgroup.subtree_control"),
            )
            .is_ok_and(|t| t.split_whitespace().any(|c| c == "memory")),
            _ => false,
        }
    })
}
