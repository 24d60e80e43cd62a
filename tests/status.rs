//! Seeing a job: `gmr status` from another process while the job runs, after
//! it failed, and after its gmr was killed; status lines in a log; the HTML
//! report as headless Chromium renders it. The figures are checked against
//! the job log (`--joblog`), which gmr writes independently of the status.

mod common;

use common::*;
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `gmr status --json DIR`, parsed.
fn status(d: &Dir, w: &str) -> Value {
    let out = d.run(&["status", "--json", w]);
    serde_json::from_slice(out.ok()).unwrap()
}

/// The names of a status's phases, in order.
fn phase_names(s: &Value) -> Vec<&str> {
    s["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect()
}

/// A mapper that takes its time, and fails once (the first attempt of
/// map-00001), saying why on stderr.
fn slow_flaky_mapper(d: &Dir) -> String {
    d.script(
        "map.sh",
        "if [ \"$GMR_TASK\" = map-00001 ] && [ \"$GMR_ATTEMPT\" = 1 ]; then\n\
           echo 'bad record at line 7' >&2; exit 3\n\
         fi\n\
         sleep 0.4; tr -s ' ' '\\n'",
    )
    .display()
    .to_string()
}

/// Starts `gmr run -q` in the background on `n` inputs with a mapper that
/// sleeps `secs` seconds, two slots, work directory `w`; returns it and the
/// mapper's path.
fn slow_job(d: &Dir, n: usize, secs: &str) -> (std::process::Child, String) {
    inputs(d, n);
    let m = d.script("slow.sh", &format!("sleep {secs}; cat"));
    let m = m.display().to_string();
    let args = [
        "run",
        "-q",
        "-m",
        &m,
        "-r",
        "@count",
        "-j",
        "2",
        "--workdir",
        "w",
        "in",
    ];
    (d.gmr(&args).spawn().unwrap(), m)
}

fn inputs(d: &Dir, n: usize) {
    for i in 0..n {
        d.write(
            &format!("in/f{i:02}"),
            format!("alpha beta {i}\ngamma {i}\n"),
        );
    }
}

/// While a job is planned (here a --total-order sample through a slow
/// mapper), its status is running, in phase `plan`, with a heartbeat; then
/// the job's phases follow.
#[test]
fn a_job_being_planned_is_seen_running_in_phase_plan() {
    let d = Dir::new();
    inputs(&d, 2);
    // The sample's mapper (GMR_TASK=sample) takes its time.
    let m = d.script("m.sh", "[ \"$GMR_TASK\" = sample ] && sleep 3; exec cat");
    let m = m.display().to_string();
    let args = [
        "run",
        "-q",
        "-m",
        &m,
        "-r",
        "cat",
        "-R",
        "2",
        "--total-order",
        "--workdir",
        "w",
        "in",
    ];
    let mut job = d.gmr(&args).stdout(Stdio::null()).spawn().unwrap();
    let t0 = Instant::now();
    let mut seen = None;
    while t0.elapsed() < Duration::from_secs(10) {
        if d.path("w/status.json").exists() {
            let s = status(&d, "w");
            if s["phase"] == "plan" {
                seen = Some(s);
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let s = seen.expect("the status never showed phase plan");
    assert_eq!(s["state"], "running", "{s}");
    let text = String::from_utf8(d.run(&["status", "w"]).ok().to_vec()).unwrap();
    assert!(
        text.contains("(being planned)") && text.contains("running, plan phase"),
        "{text}"
    );
    // The heartbeat keeps it fresh while the sample runs.
    std::thread::sleep(Duration::from_millis(1500));
    let later = status(&d, "w");
    assert_eq!(later["phase"], "plan", "{later}");
    assert!(later["updated"].as_f64() > s["updated"].as_f64(), "{later}");
    assert!(job.wait().unwrap().success());
    let done = status(&d, "w");
    assert_eq!(done["state"], "done", "{done}");
    assert_eq!(phase_names(&done), ["map", "reduce"], "{done}");
}

#[test]
fn a_running_job_is_seen_from_another_process_and_its_figures_add_up() {
    let d = Dir::new();
    inputs(&d, 8);
    let m = slow_flaky_mapper(&d);
    let child = d
        .gmr(&[
            "run",
            "-m",
            &m,
            "-r",
            "@count",
            "-R",
            "3",
            "-j",
            "2",
            "--workdir",
            "w",
            "--joblog",
            "log.jsonl",
            "-o",
            "out",
            "in",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // While it runs: the map phase, tasks running on the two slots.
    let t0 = Instant::now();
    let running = loop {
        assert!(t0.elapsed() < Duration::from_secs(20), "never seen running");
        if d.path("w/status.json").exists() {
            let s = status(&d, "w");
            if s["state"] == "running" && s["phases"][0]["running"].as_u64() > Some(0) {
                break s;
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(running["phase"], "map");
    assert_eq!(running["phases"][0]["tasks"], 8);
    assert_eq!(running["hosts"][0]["name"], "local");
    assert_eq!(running["hosts"][0]["slots"], 2);
    assert!(running["hosts"][0]["busy"].as_u64().unwrap() <= 2);
    assert!(!running["running"].as_array().unwrap().is_empty());
    assert_eq!(running["coordinator"]["pid"], child.id());
    let text = String::from_utf8(d.run(&["status", "w"]).ok().to_vec()).unwrap();
    assert!(text.contains(": running, map phase"), "{text}");
    assert!(text.contains("local  "), "{text}");
    // Its stderr (the summary) is read to the end as it exits.
    let finished = child.wait_with_output().unwrap();
    assert!(finished.status.success());

    // Done: every figure agrees with the job log and the report.
    let done = status(&d, "w");
    let log = joblog(d.path("log.jsonl"));
    assert_eq!(done["state"], "done");
    assert_eq!(phase_names(&done), ["map", "reduce"]);
    assert_eq!(done["phases"][0]["done"], 8);
    assert_eq!(done["phases"][1]["done"], 3);
    let attempts: u64 = done["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["attempts"].as_u64().unwrap())
        .sum();
    assert_eq!(attempts as usize, log.len(), "one attempt per job log line");
    let failed = log.iter().filter(|l| l["status"] != "ok").count();
    assert_eq!(failed, 1);
    assert_eq!(done["failed_attempts"], 1);
    assert_eq!(done["failures"][0]["task"], "map-00001");
    assert!(
        done["failures"][0]["stderr_tail"]
            .as_str()
            .unwrap()
            .contains("bad record at line 7")
    );
    let input: u64 = (0..8)
        .map(|i| format!("alpha beta {i}\ngamma {i}\n").len() as u64)
        .sum();
    assert_eq!(done["phases"][0]["bytes_total"], input);
    assert_eq!(done["phases"][0]["bytes_done"], input);
    assert!(done["running"].as_array().unwrap().is_empty());
    // report.json: the same document, with every attempt.
    let report: Value = serde_json::from_slice(&read(d.path("w/report.json"))).unwrap();
    assert_eq!(report["attempts"].as_array().unwrap().len(), log.len());
    assert_eq!(report["state"], "done");
    assert_eq!(report["map"]["tasks"], 8);
    assert_eq!(report["partitions"].as_array().unwrap().len(), 3);
    let parts: u64 = report["partitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_u64().unwrap())
        .sum();
    assert_eq!(
        parts,
        read(d.path("out/part-00000")).len() as u64
            + read(d.path("out/part-00001")).len() as u64
            + read(d.path("out/part-00002")).len() as u64
    );
    for key in [
        "schema", "job", "state", "phases", "hosts", "counters", "failures",
    ] {
        assert_eq!(
            report[key], done[key],
            "{key} differs between report.json and status"
        );
    }
    // The summary names the report of a kept work directory.
    let err = String::from_utf8(finished.stderr).unwrap();
    assert!(
        err.contains("report: ") && err.contains("w/report.html"),
        "{err}"
    );
}

#[test]
fn a_failed_job_shows_its_failed_tasks_with_their_stderr() {
    let d = Dir::new();
    inputs(&d, 3);
    let m = d.script("bad.sh", "echo 'cannot parse field 3' >&2; exit 1");
    let err = d
        .run(&[
            "run",
            "-q",
            "-m",
            m.to_str().unwrap(),
            "-r",
            "@count",
            "--retries",
            "1",
            "--workdir",
            "w",
            "in",
        ])
        .fails(1);
    assert!(
        err.contains("its report: ") && err.contains("w/report.html"),
        "{err}"
    );
    let s = status(&d, "w");
    assert_eq!(s["state"], "failed");
    assert!(
        s["error"].as_str().unwrap().contains("failed 2 times"),
        "{s}"
    );
    let tail = s["failures"][0]["stderr_tail"].as_str().unwrap();
    assert!(tail.contains("cannot parse field 3"), "{tail}");
    let text = String::from_utf8(d.run(&["status", "w"]).ok().to_vec()).unwrap();
    assert!(text.contains(": failed, in the map phase"), "{text}");
    assert!(text.contains("| cannot parse field 3"), "{text}");
    assert!(d.path("w/report.html").exists());
}

#[test]
fn a_killed_gmr_leaves_a_job_reported_interrupted() {
    let d = Dir::new();
    let (mut child, m) = slow_job(&d, 6, "30");
    let t0 = Instant::now();
    while !(d.path("w/status.json").exists()
        && status(&d, "w")["running"]
            .as_array()
            .is_some_and(|r| !r.is_empty()))
    {
        assert!(t0.elapsed() < Duration::from_secs(20), "never ran");
        std::thread::sleep(Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let s = status(&d, "w");
    assert_eq!(s["state"], "interrupted", "{s}");
    assert!(s["error"].as_str().unwrap().contains("--resume"), "{s}");
    // Its mappers, orphaned, still run: kill them.
    let _ = Command::new("pkill").args(["-f", &m]).status();
}

#[test]
fn a_log_gets_plain_status_lines_and_quiet_silences_them() {
    let d = Dir::new();
    inputs(&d, 6);
    let m = d.script("slow.sh", "sleep 0.3; cat");
    let m = m.to_str().unwrap();
    // stderr is a pipe here, as under nohup, cron or CI.
    let every_200ms = |quiet: &[&str]| {
        let mut args = vec!["run"];
        args.extend_from_slice(quiet);
        args.extend([
            "-m",
            m,
            "-r",
            "@count",
            "-j",
            "2",
            "--status-interval",
            "200ms",
            "in",
        ]);
        d.run(&args)
    };
    let out = every_200ms(&[]);
    out.ok();
    let err = out.stderr();
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("gmr: map ")).collect();
    assert!(!lines.is_empty(), "no status line: {err}");
    assert!(
        lines[0].contains("/6 tasks") && lines[0].contains("% of "),
        "{}",
        lines[0]
    );
    assert!(!err.contains('\r') && !err.contains('\x1b'), "{err:?}");
    let quiet = every_200ms(&["-q"]);
    quiet.ok();
    assert_eq!(quiet.stderr(), "");
    // The default interval (30 s) says nothing in a job this short.
    let default = d.run(&["run", "-m", m, "-r", "@count", "-j", "2", "in"]);
    default.ok();
    assert!(
        !default.stderr().contains("gmr: map "),
        "{}",
        default.stderr()
    );
}

#[test]
fn watch_shows_the_status_again_until_the_job_ends() {
    let d = Dir::new();
    let (mut job, _) = slow_job(&d, 4, "1");
    let t0 = Instant::now();
    while !d.path("w/status.json").exists() {
        assert!(t0.elapsed() < Duration::from_secs(20), "no status");
        std::thread::sleep(Duration::from_millis(20));
    }
    // stdout is a pipe: the refreshed statuses follow each other, no
    // escape codes; it returns once the job is done.
    let watched = d.run(&["status", "--watch", "w"]);
    let text = String::from_utf8(watched.ok().to_vec()).unwrap();
    assert!(job.wait().unwrap().success());
    let shown = text.matches("\nphases:").count();
    assert!(shown >= 2, "shown {shown} times: {text}");
    assert!(text.contains(": running, map phase"), "{text}");
    assert!(
        text.trim_end()
            .rsplit("job ")
            .next()
            .unwrap()
            .contains(": done"),
        "{text}"
    );
    assert!(!text.contains('\x1b'), "{text:?}");
}

#[test]
fn a_pipeline_of_stages_keeps_one_status() {
    let d = Dir::new();
    inputs(&d, 4);
    let gmr = gmr_bin().display().to_string();
    d.script("map.sh", "echo reporter:counter:Stage,Maps,1 >&2\nexec cat");
    d.sh(&format!(
        "{gmr} split in | {gmr} map -q -m ./map.sh -R 2 --workdir w > map.jsonl"
    ));
    let s = status(&d, "w");
    assert_eq!(s["state"], "staged");
    let maps = s["counters"]["Stage,Maps"].clone();
    assert!(maps.as_i64() > Some(0), "{s}");
    d.sh(&format!(
        "{gmr} shuffle -q --workdir w < map.jsonl > shuffle.jsonl"
    ));
    // A later stage is another gmr, started well after the job (its pid
    // is no reuse): while it runs, the job is running, not interrupted.
    std::thread::sleep(Duration::from_millis(2500));
    let mut reduce = d
        .gmr(&[
            "reduce",
            "-q",
            "-r",
            "sleep 1; cat",
            "--workdir",
            "w",
            "-o",
            "out",
        ])
        .stdin(std::fs::File::open(d.path("shuffle.jsonl")).unwrap())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    loop {
        let s = status(&d, "w");
        if s["phase"] == "reduce" && s["phases"][2]["running"].as_u64() > Some(0) {
            assert_eq!(s["state"], "running", "{s}");
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(20),
            "reduce never seen: {s}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(reduce.wait().unwrap().success());
    let s = status(&d, "w");
    assert_eq!(s["state"], "done");
    assert_eq!(phase_names(&s), ["map", "shuffle", "reduce"]);
    // The map stage's counters last to the job's end.
    assert_eq!(s["counters"]["Stage,Maps"], maps, "{s}");
}

#[test]
fn status_of_a_directory_without_a_job_is_a_usage_error() {
    let d = Dir::new();
    d.write("empty/x", "");
    let err = d.run(&["status", "empty"]).fails(2);
    assert!(
        err.starts_with("gmr: ") && err.contains("holds no job"),
        "{err}"
    );
}

/// Headless Chromium, when installed (`.ci/run` installs Debian's
/// `chromium`).
fn chromium() -> Option<&'static str> {
    ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| {
            Command::new(c)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
}

/// The DOM headless `browser` makes of the page `rel` in `d` once its
/// scripts ran, and the console messages they left.
fn dump_dom(browser: &str, d: &Dir, rel: &str) -> (String, Vec<String>) {
    let url = format!("file://{}", d.path(rel).display());
    let out = Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--enable-logging=stderr",
            "--v=0",
            "--dump-dom",
            &url,
        ])
        .env("HOME", d.path("tmp"))
        .output()
        .unwrap();
    let console = String::from_utf8_lossy(&out.stderr)
        .lines()
        .filter(|l| l.contains(":CONSOLE"))
        .map(String::from)
        .collect();
    (String::from_utf8_lossy(&out.stdout).into_owned(), console)
}

#[test]
fn the_report_renders_in_chromium_with_a_bar_per_attempt() {
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium (apt-get install chromium)");
        return;
    };
    let d = Dir::new();
    inputs(&d, 5);
    let m = d.script(
        "map.sh",
        "if [ \"$GMR_TASK\" = map-00002 ] && [ \"$GMR_ATTEMPT\" = 1 ]; then echo 'no <b>html</b> here' >&2; exit 1; fi\ncat",
    );
    d.run(&[
        "run",
        "-q",
        "-m",
        m.to_str().unwrap(),
        "-r",
        "@count",
        "-R",
        "2",
        "-j",
        "2",
        "--workdir",
        "w",
        "--joblog",
        "log.jsonl",
        "in",
    ])
    .ok();
    let attempts = joblog(d.path("log.jsonl")).len();
    d.run(&["report", "w", "-o", "again.html"]).ok();
    for page in ["w/report.html", "again.html"] {
        let (dom, console) = dump_dom(browser, &d, page);
        assert!(console.is_empty(), "{page}: console messages: {console:?}");
        assert!(
            dom.contains("data-ready=\"1\""),
            "{page}: the script did not finish"
        );
        assert!(!dom.contains("data-errors"), "{page}: {dom}");
        let bars = dom.matches("data-count=\"1\"").count();
        assert_eq!(bars, attempts, "{page}: one bar per attempt");
        assert!(
            dom.contains("attempt failed"),
            "{page}: the failed attempt shows"
        );
        // Its stderr is text, not markup.
        assert!(dom.contains("no &lt;b&gt;html&lt;/b&gt; here"), "{page}");
        assert!(
            !dom.contains("http://") || !dom.contains("src=\"http"),
            "{page}: nothing from the network"
        );
    }
}

#[test]
fn a_running_state_is_believed_only_while_its_gmr_lives() {
    let d = Dir::new();
    let host = String::from_utf8(d.sh("hostname"))
        .unwrap()
        .trim()
        .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    // A process that started after the job did: it reuses the pid of a
    // gmr that is gone.
    let mut sleeper = Command::new("sleep").arg("30").spawn().unwrap();
    let cases = [
        ("elsewhere", 1, now - 1.0, "running"),
        ("elsewhere", 1, now - 120.0, "interrupted"),
        (host.as_str(), sleeper.id(), now - 1.0, "interrupted"),
        // Process 1 started before the job: as a live gmr would have.
        (host.as_str(), 1, now - 1.0, "running"),
    ];
    for (coordinator, pid, updated, want) in cases {
        let doc = serde_json::json!({
            "schema": 1, "job": "0123456789abcdef", "workdir": "w", "state": "running",
            "coordinator": {"host": coordinator, "pid": pid},
            "started": now - 100.0, "updated": updated, "seconds": 100.0,
            "phases": [], "hosts": [], "throughput": 0.0, "counters": {},
            "running": [], "failures": [], "failed_attempts": 0
        });
        d.write("w/status.json", doc.to_string());
        let s = status(&d, "w");
        assert_eq!(
            s["state"], want,
            "{coordinator} pid {pid} updated {updated}"
        );
    }
    let _ = sleeper.kill();
    let _ = sleeper.wait();
}

#[test]
fn a_job_of_steps_has_one_report_with_every_step_in_it() {
    let d = Dir::new();
    inputs(&d, 3);
    d.run(&[
        "run",
        "-q",
        "-m",
        "cat",
        "-r",
        "@count",
        "--workdir",
        "w",
        "--then",
        "-m",
        "cut -f2",
        "-r",
        "@count",
        "-R",
        "1",
        "in",
    ])
    .ok();
    let page = String::from_utf8(read(d.path("w/report.html"))).unwrap();
    assert!(page.contains("gmr job of 2 steps"), "{page}");
    assert_eq!(page.matches("<iframe").count(), 2);
    // gmr report makes the same page again, and gmr status lists the steps.
    d.run(&["report", "w", "-o", "again.html"]).ok();
    assert_eq!(read(d.path("again.html")).len(), page.len());
    let Some(browser) = chromium() else {
        eprintln!("skipped: no chromium (apt-get install chromium)");
        return;
    };
    let (dom, console) = dump_dom(browser, &d, "w/report.html");
    assert!(console.is_empty(), "console messages: {console:?}");
    assert_eq!(dom.matches("<iframe").count(), 2, "{dom}");
}

#[test]
fn bytes_done_move_within_a_running_task() {
    let d = Dir::new();
    // One split of 8 MB whose mapper reads a little, then waits.
    let line = "x".repeat(99) + "\n";
    d.write("in.txt", line.repeat(80_000));
    let m = d.script(
        "m.sh",
        "head -c 1000 > /dev/null; touch started; while [ ! -e go ]; do sleep 0.05; done; cat > /dev/null",
    );
    let mut child = d
        .gmr_run()
        .quiet()
        .mapper(m.to_str().unwrap())
        .arg("-R")
        .arg("0")
        .jobs(1)
        .workdir("w")
        .input("in.txt")
        .command()
        .spawn()
        .unwrap();
    wait_for(&d.path("started"));
    // The status is rewritten every second: within two, it counts what
    // the running task was fed.
    let mut fed = 0;
    for _ in 0..40 {
        std::thread::sleep(std::time::Duration::from_millis(100));
        let st: serde_json::Value =
            serde_json::from_slice(d.run(&["status", "--json", "w"]).ok()).unwrap();
        let map = &st["phases"][0];
        assert_eq!(map["done"], 0, "{st}");
        fed = map["bytes_done"].as_u64().unwrap_or(0);
        if fed > 0 {
            break;
        }
    }
    d.write("go", "");
    assert!(child.wait().unwrap().success());
    assert!(
        fed > 0 && fed < 8_000_000,
        "bytes_done {fed} while the task ran"
    );
}
