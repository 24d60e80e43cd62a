//! Distributed runs over SSH, against real sshd processes: each test starts
//! its own cluster with `scripts/test-cluster` (hosts on 127.0.0.2, .3, …,
//! on a port of its own, so tests run in parallel) and stops it, by the
//! pids the script recorded, when it ends — also when it panics.
//!
//! These tests need `sshd` (openssh-server; `scripts/test` installs it) and
//! fail, rather than pass silently, without it.

mod common;
use common::*;
use serde_json::Value;
use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// A gmr run in the background, killed if the test ends before it.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A running test cluster; stopped on drop.
struct Cluster {
    dir: PathBuf,
    port: u16,
    _tmp: tempfile::TempDir,
}

fn script() -> PathBuf {
    repo().join("scripts/test-cluster")
}

/// A TCP port nothing listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Cluster {
    fn start(hosts: usize) -> Cluster {
        Cluster::start_with(hosts, &[])
    }

    /// A cluster started with more options of `scripts/test-cluster start`.
    fn start_with(hosts: usize, options: &[&str]) -> Cluster {
        let have_sshd = Path::new("/usr/sbin/sshd").exists()
            || Command::new("sh")
                .args(["-c", "command -v sshd"])
                .output()
                .is_ok_and(|o| o.status.success());
        assert!(
            have_sshd,
            "sshd not found: the SSH tests need openssh-server (scripts/test installs it; or apt-get install openssh-server)"
        );
        let tmp = tempfile::Builder::new()
            .prefix("gmr-cluster-")
            .tempdir()
            .unwrap();
        let dir = tmp.path().join("cluster");
        let mut last = String::new();
        // A port free now may be taken by the time sshd binds it: try again.
        for _ in 0..5 {
            let port = free_port();
            let out = Command::new(script())
                .arg("start")
                .arg(&dir)
                .arg(hosts.to_string())
                .args(["--port", &port.to_string()])
                .args(options)
                .output()
                .unwrap();
            if out.status.success() {
                return Cluster {
                    dir,
                    port,
                    _tmp: tmp,
                };
            }
            last = String::from_utf8_lossy(&out.stderr).into_owned();
            if !(last.contains("in use") || last.contains("bind")) {
                break;
            }
        }
        panic!("scripts/test-cluster start failed:\n{last}");
    }

    /// `127.0.0.I+1:PORT`, as in hosts.txt (I from 1).
    fn host(&self, i: usize) -> String {
        format!("127.0.0.{}:{}", i + 1, self.port)
    }

    fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `--hosts` and the flags every distributed run here needs.
    fn args(&self, hosts: &str, workdir: &str) -> Vec<String> {
        [
            "--hosts",
            hosts,
            "--identity",
            &self.path("id_ed25519"),
            "--known-hosts",
            &self.path("known_hosts"),
            "--workdir",
            workdir,
        ]
        .map(String::from)
        .to_vec()
    }

    fn control(&self, what: &str, host: usize) {
        let out = Command::new(script())
            .arg(what)
            .arg(&self.dir)
            .arg(host.to_string())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "test-cluster {what} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(script()).arg("stop").arg(&self.dir).status();
    }
}

/// Runs gmr with `args` followed by `more`.
fn run(d: &Dir, args: &[&str], more: &[String]) -> Out {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(more.iter().map(String::as_str));
    d.run(&all)
}

/// The word count of the test books, run locally: the reference.
fn local_word_count(d: &Dir, mapper: &str) -> Vec<u8> {
    d.job(mapper, &sum_reduce(), &["-R", "3", &gutenberg()])
        .ok()
        .to_vec()
}

/// Asserts the job took at most `limit`.
#[track_caller]
fn within(t0: Instant, limit: u64) {
    let took = t0.elapsed();
    assert!(
        took < Duration::from_secs(limit),
        "took {took:?}, more than {limit} s"
    );
}

#[test]
fn word_count_over_ssh_is_byte_identical_to_the_local_run_stage_by_stage_too() {
    let c = Cluster::start(3);
    let d = Dir::new();
    let reference = local_word_count(&d, &words_map());
    let hosts = c.path("hosts.txt");
    let args = c.args(&hosts, "w");
    let wc = [
        "run",
        "-q",
        "-m",
        &words_map(),
        "-r",
        &sum_reduce(),
        "-R",
        "3",
        "--joblog",
        "log.jsonl",
    ];
    let out = run(&d, &wc, &[args.clone(), vec![gutenberg()]].concat());
    assert_eq!(out.ok(), reference);
    let hosts_used: std::collections::BTreeSet<String> = joblog(d.path("log.jsonl"))
        .iter()
        .map(|l| l["host"].as_str().unwrap().to_string())
        .collect();
    assert!(hosts_used.len() >= 2, "tasks ran on {hosts_used:?}");
    assert!(
        names(d.path("w")).iter().all(|n| !n.contains("probe")),
        "the probe file is removed"
    );

    // The same job stage by stage, each stage on the hosts.
    let pipeline = format!(
        "{gmr} split {input} | {gmr} map -q -m {map} -R 3 {a} --workdir w2 | {gmr} shuffle -q {a} --workdir w2 | {gmr} reduce -q -r {red} {a} --workdir w2",
        gmr = gmr_bin().display(),
        input = gutenberg(),
        map = words_map(),
        red = sum_reduce(),
        a = format!(
            "--hosts {hosts} --identity {} --known-hosts {}",
            c.path("id_ed25519"),
            c.path("known_hosts")
        ),
    );
    assert_eq!(d.sh(&pipeline), reference);
}

#[test]
fn a_host_down_from_the_start_is_left_out_and_local_slots_mix_in() {
    let c = Cluster::start(2);
    let d = Dir::new();
    let reference = local_word_count(&d, &words_map());
    // An inline list: two live hosts, one where no sshd listens, and one
    // slot on this machine.
    let down = format!("127.0.0.9:{}", c.port);
    let hosts = format!("{},{down},{},1/:", c.host(1), c.host(2));
    let t0 = Instant::now();
    let out = run(
        &d,
        &[
            "run",
            "-q",
            "-m",
            &words_map(),
            "-r",
            &sum_reduce(),
            "-R",
            "3",
            "--joblog",
            "log.jsonl",
        ],
        &[c.args(&hosts, "w"), vec![gutenberg()]].concat(),
    );
    assert_eq!(out.ok(), reference);
    within(t0, 30);
    let err = out.stderr();
    assert!(
        err.contains(&format!("host {down}: connection refused")),
        "{err}"
    );
    let log = joblog(d.path("log.jsonl"));
    assert!(
        log.iter()
            .any(|l| l["host"] == "local" && l["status"] == "ok"),
        "the local slot ran tasks"
    );
}

/// Runs a word count whose mappers sleep a second, makes `fault`
/// (a `scripts/test-cluster` command) happen to host `host` while the first
/// mappers run, checks that the output equals the local run's and that the
/// job ended in bounded time, and returns its job log.
fn word_count_surviving(
    c: &Cluster,
    d: &Dir,
    extra: &[&str],
    fault: &str,
    host: usize,
) -> Vec<Value> {
    let slow = d.script("slow_map.sh", &format!("sleep 1\nexec {}", words_map()));
    let slow = slow.display().to_string();
    // Sleeping changes no output.
    let reference = local_word_count(d, &words_map());
    let reducer = sum_reduce();
    let mut args = vec![
        "run",
        "-q",
        "-m",
        &slow,
        "-r",
        &reducer,
        "-R",
        "3",
        "--joblog",
        "log.jsonl",
    ];
    args.extend_from_slice(extra);
    let t0 = Instant::now();
    let out = std::thread::scope(|s| {
        let job = s.spawn(|| {
            run(
                d,
                &args,
                &[c.args(&c.path("hosts.txt"), "w"), vec![gutenberg()]].concat(),
            )
        });
        // While the first slow mappers run (the host check takes ~0.5 s).
        std::thread::sleep(Duration::from_millis(1200));
        c.control(fault, host);
        job.join().unwrap()
    });
    assert_eq!(out.ok(), reference);
    within(t0, 40);
    joblog(d.path("log.jsonl"))
}

#[test]
fn a_host_killed_mid_job_loses_nothing() {
    let c = Cluster::start(3);
    let d = Dir::new();
    let log = word_count_surviving(&c, &d, &["--split-size", "256K"], "kill-host", 2);
    let lost: Vec<&Value> = log
        .iter()
        .filter(|l| l["host"] == c.host(2).as_str() && l["status"] == "host_failed")
        .collect();
    assert!(!lost.is_empty(), "attempts on the killed host were lost");
}

#[test]
fn a_task_failing_on_one_host_only_is_retried_on_another() {
    let c = Cluster::start(3);
    let d = Dir::new();
    let reference = local_word_count(&d, &words_map());
    // SSH_CONNECTION is "client port server port": fail on host 1.
    let picky = d.script(
        "picky_map.sh",
        &format!(
            "set -- $SSH_CONNECTION\nif [ \"$3\" = 127.0.0.2 ]; then echo \"not on $3\" >&2; exit 3; fi\nexec {}",
            words_map()
        ),
    );
    let out = run(
        &d,
        &[
            "run",
            "-q",
            "-m",
            &picky.display().to_string(),
            "-r",
            &sum_reduce(),
            "-R",
            "3",
            "--retries",
            "1",
            "--joblog",
            "log.jsonl",
        ],
        &[c.args(&c.path("hosts.txt"), "w"), vec![gutenberg()]].concat(),
    );
    assert_eq!(out.ok(), reference);
    let log = joblog(d.path("log.jsonl"));
    let failed: Vec<&Value> = log.iter().filter(|l| l["status"] == "failed").collect();
    assert!(
        failed.iter().all(|l| l["host"] == c.host(1).as_str()),
        "{failed:?}"
    );
    assert!(
        !failed.is_empty(),
        "some task was tried on host 1 first: {log:?}"
    );
}

#[test]
fn all_hosts_down_fails_in_bounded_time_naming_each_host() {
    // No cluster: nothing listens on this port.
    let port = free_port();
    let d = Dir::new();
    d.write("in.txt", "a b\n");
    d.write("known_hosts", "");
    let hosts: Vec<String> = (2..5).map(|i| format!("127.0.0.{i}:{port}")).collect();
    let t0 = Instant::now();
    let out = d.job(
        "cat",
        "cat",
        &[
            "--hosts",
            &hosts.join(","),
            "--known-hosts",
            "known_hosts",
            "--workdir",
            "w",
            "in.txt",
        ],
    );
    let err = out.fails(1);
    within(t0, 10);
    assert!(err.contains("no host can run tasks"), "{err}");
    for h in &hosts {
        assert!(
            err.contains(&format!("  {h}: connection refused")),
            "{h}: {err}"
        );
    }
}

#[test]
fn host_keys_are_checked_against_known_hosts() {
    let c = Cluster::start(2);
    let d = Dir::new();
    d.write("in.txt", "b a\na\n");
    let tiny = |known_hosts: &str, extra: &[&str]| {
        let mut args = vec![
            "run".to_string(),
            "-q".into(),
            "-m".into(),
            "cat".into(),
            "-r".into(),
            "cat".into(),
            "-R".into(),
            "1".into(),
            "--hosts".into(),
            c.host(1),
            "--identity".into(),
            c.path("id_ed25519"),
            "--known-hosts".into(),
            known_hosts.into(),
            "--workdir".into(),
        ];
        args.push(format!("w{}", rand_suffix()));
        args.extend(extra.iter().map(|s| s.to_string()));
        args.push("in.txt".into());
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        d.run(&args)
    };
    let name = format!("[127.0.0.2]:{}", c.port);
    let kh = read(c.dir.join("known_hosts"));
    let kh = String::from_utf8(kh).unwrap();
    let (line1, line2) = (kh.lines().next().unwrap(), kh.lines().nth(1).unwrap());

    // Unknown: refused, naming the host and the file.
    d.write("empty", "");
    let err = tiny("empty", &[]).fails(1);
    assert!(
        err.contains(&format!("the host key of {name} is not in empty")),
        "{err}"
    );

    // Changed: host 2's key under host 1's name.
    let key2 = line2.split_once(' ').unwrap().1;
    d.write("wrong", format!("{name} {key2}\n"));
    let err = tiny("wrong", &[]).fails(1);
    assert!(err.contains("does NOT match the one in wrong"), "{err}");
    // … even with --accept-new-host-keys, which only adds unknown hosts.
    let err = tiny("wrong", &["--accept-new-host-keys"]).fails(1);
    assert!(err.contains("does NOT match"), "{err}");

    // Hashed entries (`ssh-keygen -H`) are understood.
    d.write("hashed", format!("{line1}\n"));
    let hashed = Command::new("ssh-keygen")
        .args(["-H", "-f"])
        .arg(d.path("hashed"))
        .output()
        .unwrap();
    assert!(hashed.status.success());
    assert!(
        fs::read_to_string(d.path("hashed"))
            .unwrap()
            .starts_with("|1|")
    );
    assert_eq!(tiny("hashed", &[]).ok(), b"a\nb a\n");

    // Trust on first use, on request only: the key is recorded.
    d.write("tofu", "");
    let out = tiny("tofu", &["--accept-new-host-keys"]);
    assert_eq!(out.ok(), b"a\nb a\n");
    assert!(
        out.stderr().contains("added the host key"),
        "{}",
        out.stderr()
    );
    assert_eq!(tiny("tofu", &[]).ok(), b"a\nb a\n");
    // Into a directory that does not exist yet (a new ~/.ssh): made 0700.
    tiny("new-ssh/known_hosts", &["--accept-new-host-keys"]).ok();
    let mode = fs::metadata(d.path("new-ssh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o700);
    assert_eq!(tiny("new-ssh/known_hosts", &[]).ok(), b"a\nb a\n");

    // A host without gmr (where --remote-gmr points) is no use either.
    let kh = c.path("known_hosts");
    let err = tiny(&kh, &["--remote-gmr", "/nonexistent/gmr"]).fails(1);
    assert!(
        err.contains("gmr not found at /nonexistent/gmr there (remote exit 127)"),
        "{err}"
    );
}

/// A fresh suffix for work directory names.
#[test]
fn the_job_environment_reaches_every_host() {
    let c = Cluster::start(2);
    let d = Dir::new();
    let ex = |p: &str| repo().join("examples").join(p).display().to_string();
    // The README's grep example, on this machine and on the hosts.
    let grep = [
        "run",
        "-q",
        "--env",
        "PATTERN=gregor",
        "-m",
        &ex("grep/map.sh"),
        "-r",
        "cut -f2-",
        "-R",
        "1",
    ];
    let local = run(&d, &grep, &[ex("input")]).ok().to_vec();
    assert!(!local.is_empty());
    let args = c.args(&c.path("hosts.txt"), "w1");
    let remote = run(&d, &grep, &[args, vec![ex("input")]].concat());
    assert_eq!(
        remote.ok(),
        local,
        "the same output with and without --hosts"
    );
    // The locale travels by default, --env NAME takes the value here.
    d.write("in.txt", "a\nb\nc\nd\n");
    let show = [
        "run",
        "-q",
        "--env",
        "HOME",
        "--env",
        "MY_VAR=x y",
        "-m",
        "sh -c 'while read l; do echo \"$l|$LC_ALL|$MY_VAR|$HOME\"; done'",
        "-r",
        "cat",
        "-R",
        "1",
        "--split-size",
        "2",
    ];
    let args = c.args(&format!("{},{}", c.host(1), c.host(2)), "w2");
    let out = run(&d, &show, &[args, vec!["in.txt".into()]].concat());
    let home = std::env::var("HOME").unwrap();
    let want: String = ["a", "b", "c", "d"]
        .iter()
        .map(|l| format!("{l}|C|x y|{home}\n"))
        .collect();
    assert_eq!(String::from_utf8_lossy(out.ok()), want);
}

/// One host-key case: the user's and the system's known_hosts files.
struct KeyCase {
    name: &'static str,
    user: String,
    global: String,
}

/// Whether `ssh` accepts host 1 with these files and
/// StrictHostKeyChecking=`mode`, and whether it added a line to the user's
/// file.
fn ssh_decides(c: &Cluster, d: &Dir, case: &KeyCase, mode: &str) -> (bool, bool) {
    let (user, global) = (
        d.path(&format!("ssh-{}-{mode}-u", case.name)),
        d.path("ssh-g"),
    );
    fs::write(&user, &case.user).unwrap();
    fs::write(&global, &case.global).unwrap();
    let out = Command::new("ssh")
        .args([
            "-F",
            "/dev/null",
            "-o",
            "BatchMode=yes",
            "-o",
            "IdentitiesOnly=yes",
        ])
        .args(["-o", "ConnectTimeout=10", "-o", "LogLevel=ERROR"])
        .args(["-o", &format!("StrictHostKeyChecking={mode}")])
        .arg("-o")
        .arg(format!("UserKnownHostsFile={}", user.display()))
        .arg("-o")
        .arg(format!("GlobalKnownHostsFile={}", global.display()))
        .arg("-i")
        .arg(c.path("id_ed25519"))
        .args(["-p", &c.port.to_string(), "127.0.0.2", "true"])
        .output()
        .unwrap();
    let grew = fs::read_to_string(&user).unwrap().lines().count() > case.user.lines().count();
    (out.status.success(), grew)
}

/// The same for gmr: a one-host job with `--known-hosts` and
/// `--global-known-hosts`, `--accept-new-host-keys` for accept-new.
fn gmr_decides(c: &Cluster, d: &Dir, case: &KeyCase, mode: &str) -> (bool, bool, String) {
    let (user, global) = (
        d.path(&format!("gmr-{}-{mode}-u", case.name)),
        d.path("gmr-g"),
    );
    fs::write(&user, &case.user).unwrap();
    fs::write(&global, &case.global).unwrap();
    let mut args: Vec<String> = ["run", "-q", "-m", "cat", "-r", "cat", "-R", "1"]
        .map(String::from)
        .to_vec();
    args.extend([
        "--hosts".into(),
        c.host(1),
        "--identity".into(),
        c.path("id_ed25519"),
        "--known-hosts".into(),
        user.display().to_string(),
        "--global-known-hosts".into(),
        global.display().to_string(),
        "--workdir".into(),
        format!("w-{}-{mode}-{}", case.name, rand_suffix()),
    ]);
    if mode == "accept-new" {
        args.push("--accept-new-host-keys".into());
    }
    args.push("in.txt".into());
    let out = d.run(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let grew = fs::read_to_string(&user).unwrap().lines().count() > case.user.lines().count();
    (out.code() == 0, grew, out.stderr())
}

#[test]
fn host_key_decisions_are_openssh_decisions() {
    let c = Cluster::start(2);
    let d = Dir::new();
    d.write("in.txt", "x\n");
    let kh = String::from_utf8(read(c.dir.join("known_hosts"))).unwrap();
    let key = |i: usize| {
        let line = kh.lines().nth(i).unwrap();
        line.split_once(' ').unwrap().1.to_string()
    };
    let (k1, k2) = (key(0), key(1));
    let p = c.port;
    let host = format!("[127.0.0.2]:{p}");
    let hashed = {
        d.write("to-hash", format!("{host} {k1}\n"));
        let out = Command::new("ssh-keygen")
            .args(["-H", "-f"])
            .arg(d.path("to-hash"))
            .output()
            .unwrap();
        assert!(out.status.success());
        fs::read_to_string(d.path("to-hash")).unwrap()
    };
    // An ECDSA key the host never had (it offers ed25519 only).
    let ecdsa = {
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ecdsa", "-N", "", "-f"])
            .arg(d.path("other_ecdsa"))
            .output()
            .unwrap();
        assert!(out.status.success());
        let public = fs::read_to_string(d.path("other_ecdsa.pub")).unwrap();
        let mut words = public.split_whitespace();
        format!("{} {}", words.next().unwrap(), words.next().unwrap())
    };
    let case = |name, user: String, global: String| KeyCase { name, user, global };
    let none = String::new;
    let cases = [
        case("exact", format!("{host} {k1}\n"), none()),
        case("empty", none(), none()),
        case("changed", format!("{host} {k2}\n"), none()),
        case("star", format!("[127.0.0.*]:{p} {k1}\n"), none()),
        case("question", format!("[127.0.0.?]:{p} {k1}\n"), none()),
        case("negated", format!("[127.0.0.*]:{p},!{host} {k1}\n"), none()),
        case("negated-other", format!("*,!127.0.0.9 {k1}\n"), none()),
        case(
            "revoked-star",
            format!("{host} {k1}\n@revoked * {k1}\n"),
            none(),
        ),
        case(
            "revoked-pattern",
            format!("@revoked [127.0.0.*]:{p} {k1}\n"),
            none(),
        ),
        case(
            "revoked-other-key",
            format!("{host} {k1}\n@revoked * {k2}\n"),
            none(),
        ),
        case("hashed", hashed, none()),
        case("no-port", format!("127.0.0.2 {k1}\n"), none()),
        case("no-port-changed", format!("127.0.0.2 {k2}\n"), none()),
        case(
            "no-port-but-port-changed",
            format!("127.0.0.2 {k1}\n{host} {k2}\n"),
            none(),
        ),
        case("two-keys", format!("{host} {k2}\n{host} {k1}\n"), none()),
        // Known by another key type only: changed, not new.
        case("other-type", format!("{host} {ecdsa}\n"), none()),
        case(
            "other-type-hashed-system",
            none(),
            format!("{host} {ecdsa}\n"),
        ),
        case("system-only", none(), format!("{host} {k1}\n")),
        case(
            "system-revokes",
            format!("{host} {k1}\n"),
            format!("@revoked * {k1}\n"),
        ),
        case("system-changed", none(), format!("{host} {k2}\n")),
        case(
            "garbage-lines",
            format!("# comment\n\nnonsense\n|1|x|y {k2}\n{host} {k1}\n"),
            none(),
        ),
    ];
    let mut differ = Vec::new();
    for case in &cases {
        for mode in ["yes", "accept-new"] {
            let (ssh_ok, ssh_grew) = ssh_decides(&c, &d, case, mode);
            let (gmr_ok, gmr_grew, err) = gmr_decides(&c, &d, case, mode);
            if (ssh_ok, ssh_grew) != (gmr_ok, gmr_grew) {
                differ.push(format!(
                    "{} {mode}: ssh accepts {ssh_ok}, adds {ssh_grew}; gmr accepts {gmr_ok}, adds {gmr_grew}: {err}",
                    case.name
                ));
            }
        }
    }
    assert!(
        differ.is_empty(),
        "gmr and ssh differ:\n{}",
        differ.join("\n")
    );
    // Both must refuse somewhere and accept somewhere, or the table
    // proves nothing.
    let (ok, _, _) = gmr_decides(&c, &d, &cases[0], "yes");
    let (bad, _, err) = gmr_decides(&c, &d, &cases[2], "accept-new");
    assert!(ok && !bad, "{err}");

    // A host only a certificate authority covers: ssh with accept-new
    // would record its plain key; gmr refuses it, in both modes.
    let ca = KeyCase {
        name: "ca",
        user: format!("@cert-authority [127.0.0.*]:{p} {k2}\n"),
        global: String::new(),
    };
    for mode in ["yes", "accept-new"] {
        let (ok, grew, err) = gmr_decides(&c, &d, &ca, mode);
        assert!(!ok && !grew, "{mode}: {err}");
        assert!(
            err.contains("certificates signed by the authority"),
            "{err}"
        );
    }
}

/// A login name of the test hosts for this user (root, uid 0: the job's
/// files stay its own) whose login shell is `shell`, made when missing
/// (unlocked: with UsePAM off sshd refuses locked accounts).
fn login_user(name: &str, shell: &str) {
    let exists = Command::new("id")
        .arg(name)
        .output()
        .unwrap()
        .status
        .success();
    if !exists {
        let made = Command::new("useradd")
            .args(["-M", "-N", "-o", "-u", "0", "-g", "0", "-s", shell, name])
            .status()
            .unwrap();
        assert!(made.success(), "useradd {name}");
    }
    for (cmd, args) in [("usermod", ["-s", shell]), ("usermod", ["-p", "*"])] {
        let ok = Command::new(cmd).args(args).arg(name).status().unwrap();
        assert!(ok.success(), "{cmd} {name}");
    }
}

#[test]
fn any_login_shell_and_any_directory_name_run_the_same_job() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: making login users with other shells needs root");
        return;
    }
    let shells: Vec<&str> = ["/bin/bash", "/bin/dash", "/usr/bin/fish"]
        .into_iter()
        .filter(|s| Path::new(s).exists())
        .collect();
    assert!(
        shells.contains(&"/usr/bin/fish"),
        "fish is needed for this test (scripts/test installs it)"
    );
    let c = Cluster::start(1);
    let d = Dir::new();
    // `x\';touch pwned;#` is what quoting for sh turns into a command
    // under fish, which reads \' inside single quotes as a quote.
    let weird = "it's \"odd\" x\\';touch pwned;# $HOME `id` \\\nsecond line";
    let cwd = d.path(weird);
    fs::create_dir(&cwd).unwrap();
    let gmr = d.path("gmr");
    fs::copy(gmr_bin(), &gmr).unwrap();
    d.write("in.txt", "b\na\nc\n");
    for shell in shells {
        let user = format!(
            "gmr-sh-{}",
            Path::new(shell).file_name().unwrap().to_str().unwrap()
        );
        login_user(&user, shell);
        let w = d.path(&format!("w-{user}"));
        let hosts = format!("{user}@{}", c.host(1));
        let out = Command::new(&gmr)
            .args([
                "run", "-q", "-m", "cat", "-r", "cat", "-R", "1", "--hosts", &hosts,
            ])
            .arg("--identity")
            .arg(c.path("id_ed25519"))
            .arg("--known-hosts")
            .arg(c.path("known_hosts"))
            .arg("--remote-gmr")
            .arg(&gmr)
            .arg("--workdir")
            .arg(&w)
            .arg(d.path("in.txt"))
            .current_dir(&cwd)
            .env("LC_ALL", "C")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{shell}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(out.stdout, b"a\nb\nc\n", "{shell}");
        for dir in [d.tmp.path(), cwd.as_path()] {
            assert!(!dir.join("pwned").exists(), "{shell}: a path ran a command");
        }
    }
}

#[test]
fn a_vanished_current_directory_fails_the_hosts_not_the_tasks() {
    let c = Cluster::start(2);
    let d = Dir::new();
    let cwd = d.path("cwd");
    fs::create_dir(&cwd).unwrap();
    d.write("in.txt", "a\n".repeat(40));
    let started = d.path("started");
    let m = d.script(
        "m.sh",
        &format!("touch {}; sleep 0.3; cat", started.display()),
    );
    let mut args: Vec<String> = ["run", "-q", "-m", m.to_str().unwrap(), "-r", "cat"]
        .map(String::from)
        .to_vec();
    args.extend(c.args(&c.path("hosts.txt"), d.path("w").to_str().unwrap()));
    args.extend([
        "--split-size".into(),
        "2".into(),
        d.path("in.txt").display().to_string(),
    ]);
    let child = d
        .gmr(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .current_dir(&cwd)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let child = KillOnDrop(child);
    let t0 = Instant::now();
    wait_for(&started);
    // The mount the job ran from is gone on every host.
    fs::remove_dir(&cwd).unwrap();
    let mut child = child;
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(1), "{err}");
    assert!(
        err.contains("current directory of the job is gone"),
        "{err}"
    );
    assert!(
        !err.contains("failed 4 times"),
        "counted against the tasks: {err}"
    );
    within(t0, 60);
}

/// The permission bits of a path.
fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    fs::symlink_metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn work_directories_and_task_files_are_private() {
    let d = Dir::new();
    d.write("in.txt", "b\na\n");
    d.run(&[
        "run",
        "-q",
        "-m",
        "tr a-z a-z",
        "-r",
        "cat",
        "--workdir",
        "w",
        "-o",
        "out",
        "in.txt",
    ])
    .ok();
    assert_eq!(mode(&d.path("w")), 0o700);
    for f in [
        "w/job.json",
        "w/reports/map-00000.json",
        "w/logs/map-00000.1.stderr",
        "w/status.json",
        "w/report.json",
        "w/report.html",
        "w/attempts.jsonl",
    ] {
        assert_eq!(mode(&d.path(f)), 0o600, "{f}");
    }
    // The work directory gmr makes itself in $TMPDIR, while a job runs.
    let m = d.script("m.sh", "ls -ld \"$GMR_WORKDIR\" | cut -c1-10");
    let out = d.run(&["run", "-q", "-m", m.to_str().unwrap(), "-R0", "in.txt"]);
    assert_eq!(out.ok(), b"drwx------\n");
    // stdin spooled: private too.
    d.run_stdin(
        &["run", "-q", "-m", "cat", "-R0", "--workdir", "w2"],
        b"x\n",
    )
    .ok();
    assert_eq!(mode(&d.path("w2/input/stdin")), 0o600);
}

#[test]
fn a_work_directory_of_another_user_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: giving a directory to another user needs root");
        return;
    }
    let d = Dir::new();
    d.write("in.txt", "a\n");
    fs::create_dir(d.path("theirs")).unwrap();
    std::os::unix::fs::chown(d.path("theirs"), Some(65534), Some(65534)).unwrap();
    let err = d
        .run(&[
            "run",
            "-q",
            "-m",
            "cat",
            "-r",
            "cat",
            "--workdir",
            "theirs",
            "in.txt",
        ])
        .fails(2);
    assert!(err.contains("belongs to another user"), "{err}");
    assert!(names(d.path("theirs")).is_empty(), "nothing written there");
}

#[test]
fn a_planted_link_never_redirects_what_a_task_writes() {
    let d = Dir::new();
    d.write("in.txt", "a\n");
    d.write("victim", "precious\n");
    // Whoever can write the work directory plants the first attempt's log.
    fs::create_dir_all(d.path("w/logs")).unwrap();
    std::os::unix::fs::symlink(d.path("victim"), d.path("w/logs/map-00000.1.stderr")).unwrap();
    let out = d.run(&[
        "run",
        "-q",
        "-m",
        "sh -c 'echo written >&2; cat'",
        "-r",
        "cat",
        "--workdir",
        "w",
        "in.txt",
    ]);
    assert_eq!(out.ok(), b"a\n", "the next attempt ran");
    assert_eq!(read(d.path("victim")), b"precious\n");
}

#[test]
fn remote_tasks_refuse_a_job_spec_that_changed() {
    let c = Cluster::start(1);
    let d = Dir::new();
    d.write("in.txt", "a\nb\nc\nd\ne\nf\n");
    let started = d.path("started");
    let m = d.script(
        "m.sh",
        &format!("touch {}; sleep 0.5; cat", started.display()),
    );
    let mut args: Vec<String> = ["run", "-q", "-m", m.to_str().unwrap(), "-r", "cat"]
        .map(String::from)
        .to_vec();
    args.extend(c.args(&c.host(1), "w"));
    args.extend(["--split-size".into(), "2".into(), "in.txt".into()]);
    let child = d
        .gmr(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    wait_for(&started);
    // Someone who can write the work directory swaps the mapper.
    let spec = fs::read_to_string(d.path("w/job.json")).unwrap();
    let evil = spec.replace(
        m.to_str().unwrap(),
        &format!("touch {}", d.path("pwned").display()),
    );
    assert_ne!(spec, evil);
    fs::write(d.path("w/job.json"), &evil).unwrap();
    // The host's worker read the spec, checked, when it started: it goes
    // on with that one, and the job ends as it began.
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    let status = child.0.wait().unwrap();
    assert_eq!(status.code(), Some(0), "{err}");
    // A worker started on the swapped spec (after a crash, say) refuses
    // it: the digest is the one the coordinator saved.
    fs::create_dir(d.path("w2")).unwrap();
    d.write("w2/job.json", &evil);
    d.write("orig.json", &spec);
    let sum = Command::new("sha256sum")
        .arg(d.path("orig.json"))
        .output()
        .unwrap();
    let digest = String::from_utf8(sum.stdout).unwrap()[..64].to_string();
    let out = d
        .gmr(&[
            "task",
            "--worker",
            "1",
            "--spec-digest",
            &digest,
            "--workdir",
            "w2",
        ])
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("changed since the job started"), "{err}");
    assert!(!d.path("pwned").exists(), "a host ran the swapped command");
}

#[test]
fn an_attempt_of_an_earlier_job_never_commits_into_a_later_one() {
    let d = Dir::new();
    d.write("in.txt", "x\ny\n");
    // Job A's mapper fails, except in the attempt that outlives A (on a
    // host cut off from it), which waits for `go`.
    let a = d.script(
        "a.sh",
        "[ -n \"$STALE\" ] || exit 1; touch a-started; while [ ! -e go ]; do sleep 0.05; done; sed 's/^/A:/'",
    );
    let b = d.script(
        "b.sh",
        "touch b-started; while [ ! -e go-b ]; do sleep 0.05; done; sed 's/^/B:/'",
    );
    let job = |m: &Path| {
        [
            "run",
            "-q",
            "-m",
            m.to_str().unwrap(),
            "-r",
            "cat",
            "-R",
            "1",
            "--retries",
            "0",
            "--workdir",
            "w",
            "-o",
            "out",
            "in.txt",
        ]
        .map(String::from)
    };
    d.run(&job(&a).iter().map(String::as_str).collect::<Vec<_>>())
        .fails(1);
    let stale = d
        .gmr(&["task", "--workdir", "w", "--attempt", "7", "map-00000"])
        .env("STALE", "1")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stale = KillOnDrop(stale);
    let wait = |f: &str| wait_for(&d.path(f));
    wait("a-started");
    // The user runs job B in the same work directory.
    fs::remove_file(d.path("w/job.json")).unwrap();
    fs::remove_dir_all(d.path("out")).unwrap();
    let b_run = d
        .gmr(&job(&b).iter().map(String::as_str).collect::<Vec<_>>())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let b_run = KillOnDrop(b_run);
    wait("b-started");
    // A's attempt finishes first: it must not commit into job B.
    d.write("go", "");
    let mut stale = stale;
    let out = std::mem::replace(&mut stale.0, Command::new("true").spawn().unwrap());
    let out = out.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("no longer holds job"), "{err}");
    d.write("go-b", "");
    let mut b_run = b_run;
    let out = std::mem::replace(&mut b_run.0, Command::new("true").spawn().unwrap());
    let out = out.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(parts(d.path("out")), b"B:x\nB:y\n");
}

/// Runs gmr with `args` (a job log in `log`) while host 2 is paused: once
/// the log exists, host 2 resumes. Returns gmr's stderr; the job must
/// succeed.
fn run_resuming_host_2(d: &Dir, c: &Cluster, args: &[String]) -> String {
    let child = d
        .gmr(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    wait_for(&d.path("log"));
    c.control("resume-host", 2);
    let status = child.0.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(child.0.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(status.success(), "{err}");
    err
}

#[test]
fn a_host_admitted_late_is_checked_before_its_first_task() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: making a second login user needs root");
        return;
    }
    let c = Cluster::start(2);
    let d = Dir::new();
    // Host 2 logs in as another user, who cannot see the job's private
    // work directory: its check must fail, whenever it comes.
    let other = "gmr-other";
    if !Command::new("id")
        .arg(other)
        .output()
        .unwrap()
        .status
        .success()
    {
        let made = Command::new("useradd")
            .args(["-M", "-N", "-s", "/bin/sh", other])
            .status()
            .unwrap();
        assert!(made.success());
    }
    assert!(
        Command::new("usermod")
            .args(["-p", "*", other])
            .status()
            .unwrap()
            .success()
    );
    for p in [c.dir.parent().unwrap(), c.dir.as_path()] {
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(p, fs::Permissions::from_mode(0o755)).unwrap();
    }
    {
        use std::os::unix::fs::PermissionsExt;
        let keys = c.dir.join("authorized_keys");
        fs::set_permissions(keys, fs::Permissions::from_mode(0o644)).unwrap();
    }
    d.write("in.txt", "a\n".repeat(24));
    let m = d.script("m.sh", "sleep 0.4; cat");
    // Down when the job starts: a hung host.
    c.control("hang-host", 2);
    let hosts = format!("{},{other}@{}", c.host(1), c.host(2));
    let mut args: Vec<String> = ["run", "-q", "-m", m.to_str().unwrap(), "-r", "cat"]
        .map(String::from)
        .to_vec();
    args.extend(c.args(&hosts, "w"));
    args.extend(
        [
            "--ssh-timeout",
            "5",
            "--split-size",
            "2",
            "--joblog",
            "log",
            "in.txt",
        ]
        .map(String::from),
    );
    run_resuming_host_2(&d, &c, &args);
    let late: Vec<Value> = joblog(d.path("log"))
        .into_iter()
        .filter(|l| l["host"].as_str().unwrap().starts_with(other))
        .collect();
    assert!(
        !late.is_empty(),
        "host 2 came back during the job and was tried"
    );
    assert!(
        late.iter().all(|l| l["status"] != "ok"),
        "a host whose check fails runs no task: {late:?}"
    );
    assert!(
        late.iter().any(|l| l["error"]
            .as_str()
            .unwrap_or("")
            .contains("not visible there")),
        "the late host failed the work directory check: {late:?}"
    );
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[test]
fn ten_megabytes_on_stderr_stall_nothing() {
    let c = Cluster::start(2);
    let d = Dir::new();
    let reference = local_word_count(&d, &words_map());
    // The remote gmr itself writes 10 MB to the SSH channel's stderr
    // before it runs (also for the host check), and the mappers 10 MB each
    // to their stderr logs.
    let gmr = d.script(
        "noisy-gmr",
        &format!(
            "head -c 10000000 /dev/zero | tr '\\0' x >&2\nexec {} \"$@\"",
            gmr_bin().display()
        ),
    );
    let noisy_map = d.script(
        "noisy_map.sh",
        &format!(
            "head -c 10000000 /dev/zero | tr '\\0' y >&2\nexec {}",
            words_map()
        ),
    );
    let t0 = Instant::now();
    let out = run(
        &d,
        &[
            "run",
            "-q",
            "-m",
            &noisy_map.display().to_string(),
            "-r",
            &sum_reduce(),
            "-R",
            "3",
            "--remote-gmr",
            &gmr.display().to_string(),
        ],
        &[c.args(&c.path("hosts.txt"), "w"), vec![gutenberg()]].concat(),
    );
    assert_eq!(out.ok(), reference);
    within(t0, 40);
}

#[test]
fn a_hung_host_is_given_up_on_and_its_tasks_run_elsewhere() {
    let c = Cluster::start(3);
    let d = Dir::new();
    let extra = ["--split-size", "512K", "--ssh-timeout", "5"];
    let log = word_count_surviving(&c, &d, &extra, "hang-host", 3);
    assert!(
        log.iter()
            .any(|l| l["host"] == c.host(3).as_str() && l["status"] == "host_failed"),
        "{log:?}"
    );
}

#[test]
fn a_straggler_gets_a_backup_and_the_loser_is_killed() {
    let c = Cluster::start(2);
    let d = Dir::new();
    let reference = local_word_count(&d, &words_map());
    // The first attempt of map-00000 hangs (wherever it runs); its backup
    // on the other host is quick.
    let straggling = d.script(
        "straggling_map.sh",
        &format!(
            "if [ \"$GMR_TASK\" = map-00000 ] && [ \"$GMR_ATTEMPT\" = 1 ]; then echo $$ > straggler.pid; exec sleep 120; fi\nexec {}",
            words_map()
        ),
    );
    let t0 = Instant::now();
    let out = run(
        &d,
        &[
            "run",
            "-q",
            "-m",
            &straggling.display().to_string(),
            "-r",
            &sum_reduce(),
            "-R",
            "3",
            "--joblog",
            "log.jsonl",
        ],
        &[c.args(&c.path("hosts.txt"), "w"), vec![gutenberg()]].concat(),
    );
    assert_eq!(out.ok(), reference);
    within(t0, 30);
    let log = joblog(d.path("log.jsonl"));
    let map0: Vec<&Value> = log.iter().filter(|l| l["task"] == "map-00000").collect();
    assert!(
        map0.iter()
            .any(|l| l["attempt"] == 2 && l["status"] == "ok"),
        "{map0:?}"
    );
    assert!(
        map0.iter()
            .any(|l| l["attempt"] == 1
                && l["error"].as_str().is_some_and(|e| e.contains("cancelled"))),
        "{map0:?}"
    );
    let report: Value =
        serde_json::from_slice(&fs::read(d.path("w/report.json")).unwrap()).unwrap();
    assert!(
        report["map"]["backups"].as_u64() >= Some(1),
        "backups counted: {report}"
    );
    // The report's timeline has the race: the backup, and the loser
    // cancelled (not a failure); both hosts with their slots.
    let attempts = report["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), log.len(), "an attempt per job log line");
    assert!(
        attempts.iter().any(|a| a["task"] == "map-00000"
            && a["attempt"] == 2
            && a["backup"] == true
            && a["status"] == "ok"),
        "{attempts:?}"
    );
    assert!(
        attempts
            .iter()
            .any(|a| a["task"] == "map-00000" && a["attempt"] == 1 && a["status"] == "cancelled"),
        "{attempts:?}"
    );
    assert_eq!(
        report["failed_attempts"], 0,
        "a cancelled loser is no failure"
    );
    assert_eq!(report["hosts"].as_array().unwrap().len(), 2, "{report}");
    // The loser's command was killed on its host.
    let pid = fs::read_to_string(d.path("straggler.pid")).unwrap();
    let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
    let t1 = Instant::now();
    while proc.exists() && t1.elapsed() < Duration::from_secs(5) {
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(!proc.exists(), "the losing attempt's sleep still runs");
}

#[test]
fn hosts_need_a_work_directory() {
    let d = Dir::new();
    d.write("in.txt", "a\n");
    let err = d
        .run(&[
            "run", "-m", "cat", "-r", "cat", "--hosts", "node1", "in.txt",
        ])
        .fails(2);
    assert!(err.contains("--hosts needs --workdir"), "{err}");
}

#[test]
fn ctrl_c_stops_the_remote_tasks_and_exits_130() {
    let c = Cluster::start(2);
    let d = Dir::new();
    fs::create_dir(d.path("pids")).unwrap();
    let sleepy = d.script(
        "sleepy_map.sh",
        "echo $$ > pids/$GMR_TASK.$GMR_ATTEMPT\nexec sleep 120",
    );
    let mut args: Vec<String> = [
        "run",
        "-q",
        "-m",
        &sleepy.display().to_string(),
        "-r",
        "cat",
        "--split-size",
        "512K",
    ]
    .map(String::from)
    .to_vec();
    args.extend(c.args(&c.path("hosts.txt"), "w"));
    args.push(gutenberg());
    let child = d
        .gmr(&args.iter().map(String::as_str).collect::<Vec<_>>())
        .stdout(std::process::Stdio::null())
        .stderr(fs::File::create(d.path("stderr.txt")).unwrap())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    // Wait until every slot (2 hosts × their cores) runs a mapper.
    let t0 = Instant::now();
    let slots = 2 * std::thread::available_parallelism().map_or(1, |n| n.get());
    while names(d.path("pids")).len() < slots.min(7) {
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "mappers never started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let kill = Command::new("kill")
        .args(["-INT", &child.0.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let t1 = Instant::now();
    let status = child.0.wait().unwrap();
    let stderr = fs::read_to_string(d.path("stderr.txt")).unwrap();
    assert_eq!(status.code(), Some(130), "{stderr}");
    within(t1, 5);
    // The remote commands die with their connections.
    for name in names(d.path("pids")) {
        let pid = fs::read_to_string(d.path("pids").join(&name)).unwrap();
        let proc = PathBuf::from(format!("/proc/{}", pid.trim()));
        let t2 = Instant::now();
        while proc.exists() && t2.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert!(!proc.exists(), "the mapper of {name} still runs");
    }
}

/// No binary runs on a host unless it is this gmr: a file planted where
/// the copy goes (under this build's very name) is replaced, never run; a
/// work directory others can write, or a `bin/` that is a link, is
/// refused (exit 2) before any host runs anything; `--remote-gmr` still
/// works there.
#[test]
fn only_this_gmr_runs_on_the_hosts() {
    let c = Cluster::start(1);
    let d = Dir::new();
    d.write("in.txt", "b\na\n");
    let job = |w: &str, more: &[&str]| {
        let mut args = vec!["run", "-q", "-m", "cat", "-r", "cat", "-R", "1"];
        args.extend(more);
        args.push("in.txt");
        run(&d, &args, &c.args(&c.host(1), w))
    };
    // This build's copy name, as gmr derives it: the digest's start.
    let sum = Command::new("sha256sum").arg(gmr_bin()).output().unwrap();
    let digest = String::from_utf8(sum.stdout).unwrap()[..16].to_string();
    fs::create_dir_all(d.path("w/bin")).unwrap();
    fs::set_permissions(d.path("w"), fs::Permissions::from_mode(0o700)).unwrap();
    let planted = d.path(&format!("w/bin/gmr-{digest}"));
    fs::write(
        &planted,
        format!(
            "#!/bin/sh\ntouch {}\nexec {} \"$@\"\n",
            d.path("planted-ran").display(),
            gmr_bin().display()
        ),
    )
    .unwrap();
    fs::set_permissions(&planted, fs::Permissions::from_mode(0o700)).unwrap();
    assert_eq!(job("w", &[]).ok(), b"a\nb\n");
    assert!(!d.path("planted-ran").exists(), "the planted file ran");
    let copy = fs::read(&planted).unwrap();
    assert!(
        copy == fs::read(gmr_bin()).unwrap(),
        "the planted file stayed"
    );

    // A work directory its group can write: refused before any host runs.
    fs::create_dir(d.path("shared")).unwrap();
    fs::set_permissions(d.path("shared"), fs::Permissions::from_mode(0o770)).unwrap();
    let err = job("shared", &[]).fails(2);
    assert!(err.contains("is writable by others than you"), "{err}");
    assert!(!d.path("shared/bin").exists());
    // ... unless gmr is installed on the hosts.
    let gmr = gmr_bin().display().to_string();
    assert_eq!(job("shared", &["--remote-gmr", &gmr]).ok(), b"a\nb\n");

    // bin/ a link to a directory of someone else's choosing: refused.
    fs::create_dir(d.path("elsewhere")).unwrap();
    fs::create_dir(d.path("linked")).unwrap();
    fs::set_permissions(d.path("linked"), fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink(d.path("elsewhere"), d.path("linked/bin")).unwrap();
    let err = job("linked", &[]).fails(2);
    assert!(err.contains("is not a directory (a link?)"), "{err}");
    assert_eq!(fs::read_dir(d.path("elsewhere")).unwrap().count(), 0);
}

/// Host names as the user's ssh configuration gives them (`--ssh-config`,
/// as `ssh -F`): aliases with HostName and Port, keys and known_hosts
/// files set in a `Match` block, `HostKeyAlias`, `ProxyJump` through
/// another host, and `StrictHostKeyChecking accept-new` with
/// `HashKnownHosts` (the new line hashed, and OpenSSH finds it there).
#[test]
fn hosts_are_named_as_the_ssh_configuration_names_them() {
    let c = Cluster::start(4);
    let d = Dir::new();
    let key2 = {
        let kh = fs::read_to_string(c.dir.join("known_hosts")).unwrap();
        kh.lines()
            .nth(1)
            .unwrap()
            .split_once(' ')
            .unwrap()
            .1
            .to_string()
    };
    d.write("kh-alias", format!("keyalias-b {key2}\n"));
    d.write("kh-new", "");
    let port = c.port;
    let config = format!(
        "Host node-a\n  HostName 127.0.0.2\n\
         Host node-b\n  HostName 127.0.0.3\n  HostKeyAlias keyalias-b\n  UserKnownHostsFile {kh_alias}\n\
         Host node-c\n  HostName 127.0.0.4\n  ProxyJump node-a\n\
         Host node-d\n  HostName 127.0.0.5\n  UserKnownHostsFile {kh_new}\n  StrictHostKeyChecking accept-new\n  HashKnownHosts yes\n\
         Match originalhost node-*\n  Port {port}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  UserKnownHostsFile {kh}\n",
        kh_alias = d.path("kh-alias").display(),
        kh_new = d.path("kh-new").display(),
        key = c.path("id_ed25519"),
        kh = c.path("known_hosts"),
    );
    d.write("config", &config);
    let job = |hosts: &str, w: &str| {
        d.run(&[
            "run",
            "-q",
            "-m",
            &words_map(),
            "-r",
            &sum_reduce(),
            "-R",
            "3",
            "--split-size",
            "64K",
            "--hosts",
            hosts,
            "--ssh-config",
            d.path("config").to_str().unwrap(),
            "--workdir",
            w,
            "--joblog",
            &format!("{w}.jsonl"),
            &gutenberg(),
        ])
    };
    let reference = local_word_count(&d, &words_map());
    let out = job("1/node-a,1/node-b,1/node-c,1/node-d", "w1");
    assert_eq!(out.ok(), reference);
    let used: std::collections::BTreeSet<String> = joblog(d.path("w1.jsonl"))
        .iter()
        .map(|l| l["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        used.into_iter().collect::<Vec<_>>(),
        ["node-a", "node-b", "node-c", "node-d"],
        "every host ran tasks"
    );
    // The new key went in hashed, where OpenSSH finds it.
    let kh_new = fs::read_to_string(d.path("kh-new")).unwrap();
    assert!(
        kh_new.starts_with("|1|") && !kh_new.contains("127.0.0.5"),
        "{kh_new}"
    );
    let found = Command::new("ssh-keygen")
        .args(["-F", &format!("[127.0.0.5]:{port}"), "-f"])
        .arg(d.path("kh-new"))
        .output()
        .unwrap();
    assert!(found.status.success(), "ssh-keygen -F finds the new line");
    // Known under the alias only: with that line gone, node-b is unknown
    // (its address's line in the cluster's file is not looked up).
    d.write("kh-alias", "");
    let err = job("node-b", "w2").fails(1);
    assert!(
        err.contains("the host key of keyalias-b is not in"),
        "{err}"
    );

    // node-c is reached through node-a: with node-a gone, node-c cannot
    // be reached, though its own sshd still runs.
    c.control("kill-host", 1);
    let err = job("node-c", "w3").fails(1);
    assert!(err.contains("node-c") && err.contains("proxy"), "{err}");
    let direct = Command::new(script())
        .args(["ssh"])
        .arg(&c.dir)
        .args(["3", "true"])
        .output()
        .unwrap();
    assert!(direct.status.success(), "node-c itself is up");
}

/// Many hosts: 64 of them on 127.0.1.x, served by 4 sshd processes of 16
/// addresses each (sshd listens on 16 at most). The job's output equals
/// the local run's, and every host ran tasks.
#[test]
fn sixty_four_hosts_share_one_job() {
    let c = Cluster::start_with(64, &["--subnet", "1", "--per-sshd", "16"]);
    let d = Dir::new();
    let hosts: Vec<String> = fs::read_to_string(c.dir.join("hosts.txt"))
        .unwrap()
        .lines()
        .map(|h| format!("1/{h}"))
        .collect();
    assert_eq!(hosts.len(), 64);
    assert!(hosts[63].starts_with("1/127.0.1.65:"), "{}", hosts[63]);
    let reference = local_word_count(&d, &words_map());
    let t0 = Instant::now();
    let out = run(
        &d,
        &[
            "run",
            "-q",
            "-m",
            &words_map(),
            "-r",
            &sum_reduce(),
            "-R",
            "3",
            "--split-size",
            "24K",
            "--joblog",
            "log.jsonl",
        ],
        &[c.args(&hosts.join(","), "w"), vec![gutenberg()]].concat(),
    );
    assert_eq!(out.ok(), reference);
    within(t0, 120);
    let used: std::collections::BTreeSet<String> = joblog(d.path("log.jsonl"))
        .iter()
        .map(|l| l["host"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        used.len(),
        64,
        "tasks ran on {} hosts: {used:?}",
        used.len()
    );
}

/// A host that answers its check only after the job started (hung, then
/// resumed) is admitted with the slots of the largest checked host, its
/// worker running no more at once than its own check finds cores: it runs
/// tasks, and the output is whole.
#[test]
fn a_host_that_answers_late_gets_slots_and_runs_tasks() {
    let c = Cluster::start(2);
    let d = Dir::new();
    d.write("in.txt", "a\nb\n".repeat(40));
    let m = d.script("m.sh", "sleep 0.3; cat");
    c.control("hang-host", 2);
    let mut args: Vec<String> = ["run", "-q", "-m", m.to_str().unwrap(), "-r", "cat"]
        .map(String::from)
        .to_vec();
    args.extend(c.args(&c.path("hosts.txt"), "w"));
    args.extend(
        [
            "--ssh-timeout",
            "5",
            "--split-size",
            "4",
            "--joblog",
            "log",
            "-o",
            "out",
            "in.txt",
        ]
        .map(String::from),
    );
    let err = run_resuming_host_2(&d, &c, &args);
    assert!(err.contains("tries it again later"), "{err}");
    let late = joblog(d.path("log"))
        .into_iter()
        .filter(|l| l["host"].as_str() == Some(c.host(2).as_str()) && l["status"] == "ok")
        .count();
    assert!(late > 0, "the late host ran no task");
    let mut want = "a\nb\n".repeat(40).into_bytes();
    want.sort_unstable();
    let mut got = parts(d.path("out"));
    got.sort_unstable();
    assert_eq!(got, want);
}

/// No worker outlives its coordinator: with gmr killed (SIGKILL, no
/// chance to clean up), every host's worker sees its connection close,
/// stops its tasks' commands and exits.
#[test]
fn workers_die_with_a_killed_coordinator() {
    let c = Cluster::start(2);
    let d = Dir::new();
    d.write("in.txt", "a\n".repeat(20));
    let m = d.script("m.sh", "sleep 30; cat");
    // The shell running the mapper script, by its unique path.
    let marker = m.display().to_string();
    let mut args: Vec<String> = ["run", "-q", "-m", m.to_str().unwrap(), "-r", "cat"]
        .map(String::from)
        .to_vec();
    args.extend(c.args(&c.path("hosts.txt"), "w"));
    args.extend(["--split-size", "4", "in.txt"].map(String::from));
    let mut child = KillOnDrop(
        d.gmr(&args.iter().map(String::as_str).collect::<Vec<_>>())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let w = fs::canonicalize(d.path("")).unwrap().join("w");
    let count = |pattern: &str| {
        let out = Command::new("pgrep")
            .args(["-fc", pattern])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse::<usize>()
            .unwrap_or(0)
    };
    let workers = format!("task --worker .*--workdir {}", w.display());
    let t0 = Instant::now();
    // A worker on each host, and mappers running.
    while count(&marker) < 2 || count(&workers) < 2 {
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "{} workers and {} mappers after 30 s",
            count(&workers),
            count(&marker)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    child.0.kill().unwrap();
    child.0.wait().unwrap();
    let t1 = Instant::now();
    while count(&workers) + count(&marker) > 0 {
        assert!(
            t1.elapsed() < Duration::from_secs(10),
            "{} workers and {} mappers outlived the coordinator",
            count(&workers),
            count(&marker)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_job_of_several_steps_runs_on_the_hosts_as_it_runs_here() {
    let c = Cluster::start(2);
    let d = Dir::new();
    // `gmr run -q` with `first` (step 1), the placement `more`, `then`
    // (the later steps) and the books.
    let job = |first: &[&str], more: Vec<String>, then: &[&str]| {
        let (map, reduce) = (words_map(), sum_reduce());
        let mut args: Vec<&str> = vec!["run", "-q", "-m", &map, "-r", &reduce];
        args.extend(first);
        args.extend(more.iter().map(String::as_str));
        args.extend(then);
        let books = gutenberg();
        args.push(&books);
        d.run(&args)
    };
    let steps = |more: Vec<String>| {
        job(
            &["-R", "3", "--joblog", "log.jsonl"],
            more,
            &[
                "--then",
                "-m",
                "awk -F'\\t' '$2 > 2'",
                "-R",
                "0",
                "--then",
                "-m",
                "cat",
                "-r",
                "head -10",
                "-R",
                "1",
                "--sort-key",
                "2,2nr",
            ],
        )
    };
    let local = steps(vec![]).ok().to_vec();
    assert_eq!(local.iter().filter(|&&b| b == b'\n').count(), 10);
    let remote = steps(c.args(&c.path("hosts.txt"), "w"));
    assert_eq!(
        remote.ok(),
        local,
        "the same output with and without --hosts"
    );
    // Every step's tasks ran on the hosts.
    let hosts_used: std::collections::BTreeSet<String> = joblog(d.path("log.jsonl"))
        .iter()
        .map(|l| l["host"].as_str().unwrap().to_string())
        .collect();
    assert!(hosts_used.iter().any(|h| h != "local"), "{hosts_used:?}");
    assert!(d.path("w/step-3/report.json").exists());
    // The mapper of a later step with reducers runs in the reducers
    // before it, on the hosts as here.
    let then = [
        "--then",
        "-m",
        "awk -F'\\t' '$2 > 2 {print $2}'",
        "-r",
        "@count",
        "-R",
        "2",
    ];
    let local = job(&[], vec![], &then).ok().to_vec();
    assert!(!local.is_empty());
    let remote = job(&[], c.args(&c.path("hosts.txt"), "w2"), &then);
    assert_eq!(remote.ok(), local);
    assert!(
        d.path("w2/step-1/logs/reduce-00000.mapper.1.stderr")
            .exists()
    );
}
