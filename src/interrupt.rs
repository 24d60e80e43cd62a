//! Ctrl-C and SIGTERM: stop the job, kill running children, leave no partial
//! output, exit 130 (DESIGN.md §7).
//!
//! The signal handler only raises a flag and kills the process groups of
//! running children; the threads that wait on those children then see their
//! attempts fail, their attempt guards remove partial files, and the
//! coordinator stops handing out work.

use crate::error::{Error, Result};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());

/// Installs the handler for SIGINT and SIGTERM (once per process).
pub fn install() {
    let _ = ctrlc::set_handler(|| {
        INTERRUPTED.store(true, Ordering::SeqCst);
        kill_children();
    });
}

/// True once a signal arrived.
pub fn is_set() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a signal arrived.
pub fn check() -> Result<()> {
    if is_set() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Records a running child (the leader of its own process group) so that an
/// interrupt kills it and everything it started. Kills it at once if the
/// interrupt came first.
pub fn register_child(pid: i32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    if is_set() {
        kill_group(pid);
    }
}

/// Forgets a child that has been waited for.
pub fn unregister_child(pid: i32) {
    CHILDREN
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .retain(|&p| p != pid);
}

fn kill_children() {
    for &pid in CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).iter() {
        kill_group(pid);
    }
}

/// Kills the process group led by `pid`.
pub fn kill_group(pid: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; a
    // stale group id at worst signals nothing (ESRCH).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}
