//! One `gmr task --worker N` per host for the whole job: the SSH executor
//! starts it once per host (one login, one check of the binary), then
//! sends it task attempts as JSON lines on its stdin; it runs up to N at
//! once, in-process, through the [`LocalExecutor`] — so a task runs there
//! exactly as it would on this machine — and answers each with a line on
//! its stdout (docs/contracts.md §5).
//!
//! Orders: `{"Run":{"slot":S,"task":"map-3","attempt":1}}` and
//! `{"Cancel":{"slot":S}}`. Replies: `{"Done":{"slot":S,"result":...}}`,
//! the attempt's [`TaskReport`] or [`TaskError`], and `"Alive"` every
//! [`HEARTBEAT`], by which the coordinator tells a live worker running
//! quiet tasks from a hung host. Lines that are not orders (what a login
//! shell prints, the `exit` of the script) are skipped.
//!
//! When its stdin closes — the coordinator exited, was killed, or cut the
//! connection — the worker stops every task it runs, as an interrupt
//! does, and exits: no worker outlives its coordinator.

use super::Executor;
use super::connection::Throttle;
use super::local::LocalExecutor;
use crate::error::{Result, TaskError};
use crate::store::resources::Resources;
use crate::store::workdir::WorkDir;
use crate::task::TaskId;
use crate::task::job::Job;
use crate::task::report::TaskReport;
use serde::{Deserialize, Serialize};
use std::io::{BufRead, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often an idle worker says it is alive.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// What the coordinator sends a worker.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Order {
    /// Run an attempt of a task in a slot (free until its `Done`).
    Run {
        /// The slot, from 0, below the worker's N.
        slot: usize,
        /// The task id: `map-N`, `reduce-N`, ...
        task: String,
        /// The attempt number.
        attempt: u32,
    },
    /// Stop the attempt running in a slot (its `Done` follows).
    Cancel {
        /// The slot.
        slot: usize,
    },
}

/// What a worker answers.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) enum Reply {
    /// Nothing new; still here.
    Alive,
    /// The attempt in a slot ended.
    Done {
        /// The slot.
        slot: usize,
        /// Its report or error.
        result: Box<std::result::Result<TaskReport, TaskError>>,
    },
}

/// Serves orders from stdin until it closes, running tasks of `job` in
/// `wd` in `slots` slots, at most `at_once` at a time (a host whose slots
/// were guessed before its cores were known: the others wait here).
pub(crate) fn serve(
    wd: WorkDir,
    job: Job,
    res: Arc<Resources>,
    slots: usize,
    at_once: usize,
) -> Result<()> {
    let turns = Arc::new(Throttle::new(at_once.max(1)));
    // Per slot: cancelled before its attempt got a turn.
    let cancelled: Arc<Vec<AtomicBool>> =
        Arc::new((0..slots).map(|_| AtomicBool::new(false)).collect());
    let cwd = Arc::new(job.spec.cwd.clone());
    let local = Arc::new(LocalExecutor::new(wd, job, res, slots));
    let out = Arc::new(Mutex::new(std::io::stdout()));
    let done = Arc::new(AtomicBool::new(false));
    let heartbeat = {
        let (out, done) = (out.clone(), done.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::SeqCst) {
                send(&out, &Reply::Alive);
                std::thread::sleep(HEARTBEAT);
            }
        })
    };
    send(&out, &Reply::Alive);
    let mut running = Vec::new();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let Ok(order) = serde_json::from_str::<Order>(&line) else {
            continue;
        };
        match order {
            Order::Run {
                slot,
                task,
                attempt,
            } => {
                let (local, out, cwd) = (local.clone(), out.clone(), cwd.clone());
                let (turns, cancelled) = (turns.clone(), cancelled.clone());
                if let Some(c) = cancelled.get(slot) {
                    c.store(false, Ordering::SeqCst);
                }
                running.push(std::thread::spawn(move || {
                    let _turn = turns.acquire();
                    let result = match task.parse::<TaskId>() {
                        _ if slot >= local.slots() => Err(TaskError::host(format!(
                            "slot {slot} of a worker with {} slots",
                            local.slots()
                        ))),
                        _ if cancelled[slot].load(Ordering::SeqCst) => {
                            Err(TaskError::cancelled())
                        }
                        // Its commands would fail to start: the host's
                        // failure (a stale or lost mount), not the task's.
                        _ if !cwd.is_dir() => Err(TaskError::host(
                            "the current directory of the job is gone there (a stale or lost mount?)",
                        )),
                        Ok(id) => local.run(slot, id, attempt),
                        Err(e) => Err(TaskError::host(e.to_string())),
                    };
                    send(
                        &out,
                        &Reply::Done {
                            slot,
                            result: Box::new(result),
                        },
                    );
                }));
                running.retain(|t| !t.is_finished());
            }
            Order::Cancel { slot } if slot < local.slots() => {
                cancelled[slot].store(true, Ordering::SeqCst);
                local.cancel(slot);
            }
            Order::Cancel { .. } => {}
        }
    }
    // The coordinator is gone: stop everything, as an interrupt does.
    crate::interrupt::trigger();
    for t in running {
        let _ = t.join();
    }
    done.store(true, Ordering::SeqCst);
    let _ = heartbeat.join();
    Ok(())
}

/// Writes one reply line; a closed stdout (the coordinator gone) is seen
/// on stdin soon after.
fn send(out: &Mutex<std::io::Stdout>, reply: &Reply) {
    let line = serde_json::to_string(reply).expect("serializable");
    let mut out = out.lock().unwrap_or_else(|e| e.into_inner());
    let _ = writeln!(out, "{line}").and_then(|()| out.flush());
}
