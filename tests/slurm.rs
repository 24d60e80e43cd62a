//! `--slurm` on a real one-node Slurm cluster (slurmctld, slurmd and munged
//! started by `scripts/test-slurm` in a private network namespace): output
//! byte-identical to a local run, a step lost counted against the node, a
//! task that always fails failing the job with its stderr, and Ctrl-C
//! leaving nothing of gmr's in `squeue`.
//!
//! One test runs every scenario in turn, on one cluster that it starts and
//! stops: the cluster is a machine-wide fixture (a namespace, ports).

mod common;
use common::*;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// The cluster, stopped when dropped (a failing test too).
struct Cluster {
    dir: PathBuf,
    /// Its network namespace, this test's own.
    ns: String,
}

impl Cluster {
    fn script(&self) -> Command {
        let mut c = Command::new(repo().join("scripts/test-slurm"));
        c.env("GMR_SLURM_NS", &self.ns);
        c
    }

    fn start(dir: &Path) -> Cluster {
        let cluster = Cluster {
            dir: dir.to_path_buf(),
            ns: format!("gmr-test-{}", std::process::id()),
        };
        let out = cluster.script().arg("start").arg(dir).output().unwrap();
        assert!(
            out.status.success(),
            "scripts/test-slurm start failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        cluster
    }

    /// `cmd` (a shell command line) run in the cluster's namespace, in `d`.
    fn sh(&self, d: &Dir, cmd: &str) -> Output {
        self.script()
            .arg("exec")
            .arg(&self.dir)
            .args(["--", "sh", "-c", cmd])
            .current_dir(d.path(""))
            .env("TMPDIR", d.path("tmp"))
            .env("LC_ALL", "C")
            .env("GMR", gmr_bin())
            .stdin(Stdio::null())
            .output()
            .unwrap()
    }

    /// The steps and jobs `squeue` shows.
    fn queue(&self, d: &Dir) -> String {
        let out = self.sh(d, "squeue -h -o '%i %j %T'; squeue -h -s -o '%i %j'");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Waits (20 s at most) until nothing is queued or running: what
    /// Ctrl-C must leave.
    fn wait_for_empty_queue(&self, d: &Dir) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let queue = self.queue(d);
            if queue.trim().is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "still queued after Ctrl-C: {queue}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self.script().arg("stop").arg(&self.dir).output();
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// What runs gmr in an allocation (its tasks then run as steps); arrays
/// need nothing.
const STEPS: &str = "salloc -Q -N1 -n2 ";

/// Runs the word count with `mapper` through `launch` ([`STEPS`], or ""
/// for arrays) in work directory `w` with `flags`; checks that it succeeds
/// with the local run's output (`local/`), and returns its job log.
fn word_count(
    cluster: &Cluster,
    d: &Dir,
    launch: &str,
    w: &str,
    mapper: &str,
    flags: &str,
) -> String {
    let cmd = format!(
        "{launch}\"$GMR\" run -q --slurm {flags} --workdir {w} --joblog {w}.log -m {mapper} -r {} -R 3 -o {w}.out {}",
        sum_reduce(),
        gutenberg()
    );
    let out = cluster.sh(d, &cmd);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(parts(d.path(&format!("{w}.out"))), parts(d.path("local")));
    String::from_utf8_lossy(&read(d.path(&format!("{w}.log")))).into_owned()
}

/// The first attempt of map-00001, its step or element cancelled under it,
/// counts against the host, not the task.
fn assert_lost_host(log: &str) {
    assert!(
        log.lines()
            .any(|l| l.contains("map-00001") && l.contains("host_failed")),
        "{log}"
    );
}

#[test]
fn jobs_run_as_steps_of_a_slurm_allocation() {
    let d = Dir::new();
    let cluster = Cluster::start(&d.path("cluster"));
    let books = gutenberg();

    // Byte-identical to a local run, in an allocation of both CPUs.
    let local = d
        .word_count(&["-R", "3", "-o", "local", &books])
        .ok()
        .to_vec();
    assert!(local.is_empty());
    let log = word_count(&cluster, &d, STEPS, "w1", &words_map(), "");
    // Every attempt ran as a step on the node, from the copy of gmr the
    // job made in its work directory.
    assert!(log.lines().count() >= 4, "{log}");
    assert!(
        log.lines().all(|l| l.contains("\"host\":\"localhost\"")),
        "{log}"
    );
    // The copy of gmr the nodes ran: named by its digest, the user's alone.
    let copies: Vec<_> = std::fs::read_dir(d.path("w1/bin"))
        .unwrap()
        .flatten()
        .collect();
    assert_eq!(copies.len(), 1, "{copies:?}");
    let name = copies[0].file_name().to_string_lossy().into_owned();
    assert!(name.starts_with("gmr-") && name.len() == 20, "{name}");
    // `gmr status` reads the work directory: the node, its slots, every
    // attempt of the job log.
    let st: serde_json::Value =
        serde_json::from_slice(d.run(&["status", "--json", "w1"]).ok()).unwrap();
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(st["hosts"][0]["name"], "localhost", "{st}");
    assert_eq!(st["hosts"][0]["slots"], 2, "{st}");
    assert_eq!(
        st["hosts"][0]["attempts"].as_u64(),
        Some(log.lines().count() as u64),
        "{st}"
    );

    // A job of two steps (gmr's --then), each step's tasks Slurm steps:
    // what the same job gives here. Step 2's mapper runs in step 1's
    // reducers.
    let top = |launch: &str, slurm: &str| {
        format!(
            "{launch}\"$GMR\" run -q {slurm} -m {} -r {} --then -m 'awk 1' -r 'head -10' -R 1 --sort-key 2,2nr {books}",
            words_map(),
            sum_reduce()
        )
    };
    let here = cluster.sh(&d, &top("", ""));
    assert!(here.status.success(), "{}", text(&here));
    let there = cluster.sh(&d, &top(STEPS, "--slurm --workdir w7 --joblog w7.log"));
    assert!(there.status.success(), "{}", text(&there));
    assert_eq!(there.stdout, here.stdout);
    assert_eq!(String::from_utf8_lossy(&here.stdout).lines().count(), 10);
    let log = String::from_utf8_lossy(&read(d.path("w7.log"))).into_owned();
    assert!(
        log.contains("reduce-00000") && log.lines().all(|l| l.contains("\"host\":\"localhost\"")),
        "{log}"
    );
    assert!(d.path("w7/step-2/report.json").exists());
    assert!(
        d.path("w7/step-1/logs/reduce-00000.mapper.1.stderr")
            .exists()
    );

    // A step cancelled under its task counts against the node, not the
    // task: with --retries 0 the job still succeeds.
    d.script(
        "killed.sh",
        "if [ \"$GMR_TASK\" = map-00001 ] && [ \"$GMR_ATTEMPT\" = 1 ]; then\n  \
         if [ -n \"$SLURM_ARRAY_JOB_ID\" ]; then scancel \"${SLURM_ARRAY_JOB_ID}_$SLURM_ARRAY_TASK_ID\"; \
         else scancel \"$SLURM_JOB_ID.$SLURM_STEP_ID\"; fi\n  sleep 10\nfi\nexec \"$0.real\"",
    );
    std::fs::copy(words_map(), d.path("killed.sh.real")).unwrap();
    let log = word_count(&cluster, &d, STEPS, "w2", "./killed.sh", "--retries 0");
    assert_lost_host(&log);

    // A task that fails on every attempt fails the job, naming the task,
    // the Slurm job and its stderr.
    let out = cluster.sh(
        &d,
        &format!(
            "salloc -Q -N1 -n2 \"$GMR\" run -q --slurm --retries 1 --workdir w3 -m 'sh -c \"echo no such record >&2; exit 3\"' -r cat {books}"
        ),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("failed 2 times")
            && err.contains("(Slurm job ")
            && err.contains("no such record"),
        "{err}"
    );

    // --task-memory, as a step and as an array element (which Slurm also
    // gets --mem for): a mapper over it fails saying so, one under it runs,
    // and more than the node has is refused by sbatch, saying what to do.
    d.write("one.txt", "x\n");
    let alloc =
        |mb: u32| format!("\"python3 -c 'b = bytearray({mb} * 1024 * 1024); print(len(b))'\"");
    for (i, launch) in [STEPS, ""].into_iter().enumerate() {
        let run = |w: String, flags: String| {
            cluster.sh(
                &d,
                &format!("{launch}\"$GMR\" run -q --slurm --workdir {w} -R 0 {flags} one.txt"),
            )
        };
        let out = run(
            format!("mem{i}a"),
            format!("--retries 0 --task-memory 100M -m {}", alloc(400)),
        );
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));
        assert!(
            text(&out).contains("over --task-memory 100M"),
            "{}",
            text(&out)
        );
        let out = run(
            format!("mem{i}b"),
            format!("--task-memory 200M -m {}", alloc(40)),
        );
        assert!(out.status.success(), "{}", text(&out));
        assert_eq!(out.stdout, b"41943040\n");
    }
    let out = cluster.sh(
        &d,
        "\"$GMR\" run -q --slurm --workdir mem2 -R 0 --task-memory 2G -m cat one.txt",
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(
        text(&out).contains("--task-memory asks Slurm for --mem=2048M per element"),
        "{}",
        text(&out)
    );

    // Ctrl-C: gmr stops, and nothing of its steps is left in the queue.
    d.script("slow.sh", "sleep 60\nexec cat");
    let started = Instant::now();
    let out = cluster.sh(
        &d,
        &format!(
            "salloc -Q -N1 -n2 sh -c '\"$GMR\" run -q --slurm --workdir w4 -m ./slow.sh -r cat {books} >/dev/null & \
             pid=$!; sleep 3; squeue -h -s > steps-before; kill -INT $pid; wait $pid; echo \"gmr $?\"'"
        ),
    );
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(said.contains("gmr 130"), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&read(d.path("steps-before"))).contains("gmr-"),
        "no step was running before Ctrl-C"
    );
    cluster.wait_for_empty_queue(&d);
    assert!(started.elapsed() < Duration::from_secs(40));

    // More tasks than the cluster allows steps in a job (the test cluster's
    // MaxStepCount is 200): refused before any runs, saying what to do,
    // before --force empties the output directory or job.json is written.
    d.write("out6/part-00000", "an earlier job's part\n");
    let out = cluster.sh(
        &d,
        &format!(
            "salloc -Q -N1 -n2 \"$GMR\" run -q --slurm --workdir w6 --split-size 10K -m cat -r cat -o out6 --force {books}"
        ),
    );
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("MaxStepCount") && err.contains("--split-size"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(d.path("out6/part-00000")).unwrap(),
        "an earlier job's part\n"
    );
    assert!(!d.path("w6/job.json").exists());

    // Outside an allocation: job arrays, byte-identical too, each attempt
    // an element the job log names.
    let log = word_count(&cluster, &d, "", "a1", &words_map(), "");
    let st: serde_json::Value =
        serde_json::from_slice(d.run(&["status", "--json", "a1"]).ok()).unwrap();
    assert_eq!(st["state"], "done", "{st}");
    assert_eq!(st["hosts"][0]["name"], "slurm", "{st}");
    assert!(
        log.lines()
            .all(|l| l.contains("\"slurm_job\":\"") && l.contains('_')),
        "{log}"
    );

    // An element cancelled under its task is resubmitted, without counting
    // against the task.
    let log = word_count(&cluster, &d, "", "a2", "./killed.sh", "--retries 0");
    assert_lost_host(&log);

    // squeue failing as a controller that times out does: an element
    // still running is not taken for gone. With GMR_SLURM_GRACE=3, the
    // old rule gave up on map-00000 (12 s) about 8 s after submitting it,
    // cancelled and resubmitted it; now nothing is resubmitted.
    d.script(
        "fakebin/squeue",
        "echo 'slurm_load_jobs error: Socket timed out on send/recv operation' >&2\nexit 1",
    );
    d.script(
        "sleepy.sh",
        "if [ \"$GMR_TASK\" = map-00000 ]; then sleep 12; fi\nexec \"$0.real\"",
    );
    std::fs::copy(words_map(), d.path("sleepy.sh.real")).unwrap();
    let log = word_count(
        &cluster,
        &d,
        "PATH=$PWD/fakebin:$PATH GMR_SLURM_GRACE=3 ",
        "a4",
        "./sleepy.sh",
        "",
    );
    assert!(
        log.lines().all(|l| l.contains("\"status\":\"ok\"")),
        "an attempt was given up on while squeue failed:\n{log}"
    );

    // Ctrl-C cancels every array gmr submitted.
    let out = cluster.sh(
        &d,
        &format!(
            "\"$GMR\" run -q --slurm --workdir a3 -m ./slow.sh -r cat {books} >/dev/null 2>a3.err & \
             pid=$!; sleep 4; squeue -h -r > arrays-before; kill -INT $pid; wait $pid; echo \"gmr $?\""
        ),
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("gmr 130"),
        "{}",
        text(&out)
    );
    assert!(
        String::from_utf8_lossy(&read(d.path("arrays-before"))).contains("gmr-"),
        "no element was queued before Ctrl-C"
    );
    cluster.wait_for_empty_queue(&d);

    // Without Slurm to talk to (outside the cluster's namespace), --slurm
    // says what to do.
    let out = d.run(&[
        "run",
        "--slurm",
        "--workdir",
        "w5",
        "-m",
        "cat",
        "-r",
        "cat",
        &books,
    ]);
    let err = out.fails(2);
    assert!(err.contains("salloc"), "{err}");
}
