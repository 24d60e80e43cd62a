//! The coordinator at cluster scale, against a simulated executor: many
//! hosts of many slots, many tasks, random task failures, a dead host, a
//! hung host and stragglers. It measures what the coordinator itself costs:
//! scheduling time per task, its memory, and how soon a dead host stops
//! getting work; and whether that stays linear in the number of tasks.
//!
//! `cargo bench --bench coordinator [-- HOSTS SLOTS TASKS]` (default: 1000
//! hosts x 32 slots, 10,000 then 100,000 tasks). Attempts take no time
//! unless they straggle or hang, and run on no thread of their own (the
//! executor starts them, as a batch queue does), so the CPU time is the
//! coordinator's.

use gmr::schedule::{
    Done, Ended, Executor, Health, NoObserver, Policy, TaskError, TaskId, TaskReport, run_phase,
};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Per mille of attempts that fail as task failures.
const TASK_FAILURES: u64 = 10;
/// Per mille of attempts that straggle, and for how long.
const STRAGGLERS: u64 = 1;
const STRAGGLE: Duration = Duration::from_millis(300);
/// How long an attempt on the hung host hangs before its connection is
/// declared lost (an SSH keepalive timeout, scaled down).
const HANG: Duration = Duration::from_millis(500);

struct Sim {
    /// The host of each slot.
    hosts: Vec<String>,
    health: Health,
    /// Host 0 is dead: every attempt there fails at once.
    dead: String,
    /// Host 1 hangs: attempts there wait, then lose their connection.
    hung: String,
    /// When the dead host first failed, in microseconds since `start`.
    first_dead_failure: AtomicU64,
    start: Instant,
    /// Attempts that take time: they end on the timer thread, unless
    /// cancelled first. Attempts run on no thread of their own, as in a
    /// batch queue: 32,000 slots are 32,000 entries here, not threads.
    timers: Mutex<Timers>,
}

#[derive(Default)]
struct Timers {
    /// (when, slot, generation), soonest first.
    due: BinaryHeap<Reverse<(Instant, usize, u64)>>,
    /// Per slot: its attempt's generation, and what it gives when its time
    /// is up.
    waiting: HashMap<usize, (u64, Result<TaskReport, TaskError>, Done)>,
    generation: u64,
}

/// A deterministic pseudo-random number of (task, attempt).
fn roll(task: TaskId, attempt: u32) -> u64 {
    let n = match task {
        TaskId::Map(i) => i as u64,
        TaskId::Shuffle(p) | TaskId::Reduce(p) => u64::from(p) + (1 << 40),
    };
    let mut x = n.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ u64::from(attempt).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x ^= x >> 31;
    x = x.wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 29)
}

impl Sim {
    /// Ends `slot`'s attempt with `result` after `after`.
    fn later(
        &self,
        slot: usize,
        after: Duration,
        result: Result<TaskReport, TaskError>,
        done: &Done,
    ) {
        let mut t = self.timers.lock().unwrap();
        t.generation += 1;
        let generation = t.generation;
        t.due
            .push(Reverse((Instant::now() + after, slot, generation)));
        t.waiting.insert(slot, (generation, result, done.clone()));
    }

    /// Ends the attempts whose time is up; runs until `stop`.
    fn timer(&self, stop: &AtomicBool) {
        while !stop.load(Ordering::SeqCst) {
            let now = Instant::now();
            let mut t = self.timers.lock().unwrap();
            while let Some(&Reverse((when, slot, generation))) = t.due.peek() {
                if when > now {
                    break;
                }
                t.due.pop();
                if t.waiting.get(&slot).is_some_and(|w| w.0 == generation) {
                    let (_, result, done) = t.waiting.remove(&slot).unwrap();
                    let _ = done.send(Ended { slot, result });
                }
            }
            drop(t);
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

impl Executor for Sim {
    fn slots(&self) -> usize {
        self.hosts.len()
    }

    fn host_of(&self, slot: usize) -> &str {
        &self.hosts[slot]
    }

    fn start(&self, slot: usize, task: TaskId, attempt: u32, done: &Done) -> bool {
        let host = &self.hosts[slot];
        let end = |result| {
            let _ = done.send(Ended { slot, result });
            true
        };
        if *host == self.dead {
            let t = self.start.elapsed().as_micros() as u64;
            let _ = self.first_dead_failure.compare_exchange(
                u64::MAX,
                t,
                Ordering::SeqCst,
                Ordering::SeqCst,
            );
            return end(Err(TaskError::host("connection refused")));
        }
        if *host == self.hung {
            self.later(
                slot,
                HANG,
                Err(TaskError::host("no answer to keepalives")),
                done,
            );
            return true;
        }
        let r = roll(task, attempt) % 1000;
        if r < TASK_FAILURES {
            return end(Err(TaskError::task("mapper exited with status 1")));
        }
        let ok = Ok(TaskReport {
            task: task.to_string(),
            attempt,
            host: host.clone(),
            ..TaskReport::default()
        });
        if r < TASK_FAILURES + STRAGGLERS {
            self.later(slot, STRAGGLE, ok, done);
            return true;
        }
        end(ok)
    }

    fn cancel(&self, slot: usize) {
        let waiting = self.timers.lock().unwrap().waiting.remove(&slot);
        if let Some((_, _, done)) = waiting {
            let _ = done.send(Ended {
                slot,
                result: Err(TaskError::cancelled()),
            });
        }
    }

    fn health(&self) -> Option<&Health> {
        Some(&self.health)
    }
}

/// Peak resident memory of this process, in bytes (VmHWM).
fn peak_rss() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kb| kb * 1024)
}

/// CPU time of this process so far.
fn cpu() -> Duration {
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct it is given.
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(u.ru_utime) + tv(u.ru_stime)
}

struct Outcome {
    wall: Duration,
    cpu: Duration,
    retries: u64,
    backups: u64,
    noticed: Option<Duration>,
    hung: Option<Duration>,
}

fn phase(hosts: usize, slots: usize, tasks: usize) -> Outcome {
    let names: Vec<String> = (0..hosts).map(|h| format!("h{h:04}")).collect();
    let sim = Sim {
        hosts: names
            .iter()
            .flat_map(|h| std::iter::repeat_n(h.clone(), slots))
            .collect(),
        health: Health::new(names.iter().cloned()),
        timers: Mutex::default(),
        dead: names[0].clone(),
        hung: names[1.min(hosts - 1)].clone(),
        first_dead_failure: AtomicU64::new(u64::MAX),
        start: Instant::now(),
    };
    let ids: Vec<TaskId> = (0..tasks).map(TaskId::Map).collect();
    let policy = Policy {
        retries: 5,
        skip_up_to: 0,
        backup_after: Duration::from_millis(
            std::env::var("SIM_BACKUP_MS")
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(100),
        ),
    };
    // When the dead and the hung host stop being good, watched from
    // outside.
    let noticed = std::sync::Mutex::new(None);
    let hung_noticed = std::sync::Mutex::new(None);
    let done = AtomicBool::new(false);
    let cpu0 = cpu();
    let t0 = Instant::now();
    let outcome = std::thread::scope(|s| {
        s.spawn(|| sim.timer(&done));
        s.spawn(|| {
            while !done.load(Ordering::SeqCst) {
                let mut noticed = noticed.lock().unwrap();
                if noticed.is_none() && !sim.health.is_good(&sim.dead) {
                    *noticed = Some(t0.elapsed());
                }
                let mut hung = hung_noticed.lock().unwrap();
                if hung.is_none() && !sim.health.is_good(&sim.hung) {
                    *hung = Some(t0.elapsed());
                }
                if noticed.is_some() && hung.is_some() {
                    return;
                }
                drop((noticed, hung));
                std::thread::sleep(Duration::from_micros(200));
            }
        });
        let r = run_phase(&sim, &ids, policy, &NoObserver);
        done.store(true, Ordering::SeqCst);
        r
    })
    .expect("the phase completes");
    let wall = t0.elapsed();
    let first = sim.first_dead_failure.load(Ordering::SeqCst);
    let noticed = noticed.into_inner().unwrap().map(|t| {
        t.saturating_sub(Duration::from_micros(if first == u64::MAX {
            0
        } else {
            first
        }))
    });
    Outcome {
        hung: hung_noticed.into_inner().unwrap(),
        wall,
        cpu: cpu() - cpu0,
        retries: outcome.retries,
        backups: outcome.backups,
        noticed,
    }
}

fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let hosts = args.first().copied().unwrap_or(1000).max(2);
    let slots = args.get(1).copied().unwrap_or(32);
    let sizes: Vec<usize> = match args.get(2) {
        Some(&n) => vec![n / 10, n],
        None => vec![10_000, 100_000],
    };
    println!(
        "coordinator simulation: {hosts} hosts x {slots} slots ({} slots), \
         {TASK_FAILURES}/1000 task failures, {STRAGGLERS}/1000 stragglers of {} ms, \
         host h0000 dead, h0001 hung ({} ms per attempt)",
        hosts * slots,
        STRAGGLE.as_millis(),
        HANG.as_millis()
    );
    println!(
        "| tasks | wall s | coordinator CPU s | per task us (wall) | per task us (CPU) | retries | backups | dead host out after ms | hung host out after ms | peak RSS MB |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    let mut walls = Vec::new();
    for &tasks in &sizes {
        let o = phase(hosts, slots, tasks);
        walls.push((o.wall, o.cpu));
        println!(
            "| {tasks} | {:.2} | {:.2} | {:.1} | {:.1} | {} | {} | {} | {} | {:.0} |",
            o.wall.as_secs_f64(),
            o.cpu.as_secs_f64(),
            o.wall.as_secs_f64() * 1e6 / tasks as f64,
            o.cpu.as_secs_f64() * 1e6 / tasks as f64,
            o.retries,
            o.backups,
            o.noticed
                .map_or("-".to_string(), |d| format!("{:.1}", d.as_secs_f64() * 1e3)),
            o.hung
                .map_or("-".to_string(), |d| format!("{:.0}", d.as_secs_f64() * 1e3)),
            peak_rss() as f64 / 1e6
        );
    }
    if let [(small, small_cpu), (large, large_cpu)] = walls[..] {
        // The wall time has a floor of one straggler and one hang (the
        // attempts take no time otherwise); the CPU time is all the
        // coordinator's.
        let ratio = large.as_secs_f64() / small.as_secs_f64();
        let cpu_ratio = large_cpu.as_secs_f64() / small_cpu.as_secs_f64().max(1e-3);
        let met = |r: f64| if r <= 11.0 { "met" } else { "NOT met" };
        println!(
            "\n{}x the tasks took {ratio:.2}x the wall time ({}) and {cpu_ratio:.2}x the CPU time ({}); linear: <= 11x",
            sizes[1] / sizes[0].max(1),
            met(ratio),
            met(cpu_ratio),
        );
    }
}
