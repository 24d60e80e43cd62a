//! Ctrl-C and SIGTERM: stop the job, kill running children, leave no partial
//! output, exit 130 (docs/contracts.md §7).
//!
//! The signal handler only raises a flag and kills the process groups of
//! running children; the threads that wait on those children then see their
//! attempts fail, their attempt guards remove partial files, and the
//! coordinator stops handing out work.
//!
//! A [`Cancel`] does the same for one task attempt only: the coordinator
//! stops the loser of a race between a task and its backup attempt without
//! stopping the job.

use crate::error::{Error, Result, TaskError};
use std::cell::RefCell;
use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

static INTERRUPTED: AtomicBool = AtomicBool::new(false);
static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());
/// A work directory gmr made, removed if the process is abandoned (see
/// [`STOP_WITHIN`]) while it holds no job yet: a stream being saved that
/// blocked the main thread (a terminal's stdin) leaves nothing behind.
/// Held with the file whose presence says a job was saved in it.
static MADE_DIR: Mutex<Option<(std::path::PathBuf, std::path::PathBuf)>> = Mutex::new(None);

/// What to undo if the process is abandoned: stdout cut back to where the
/// job found it, when parts were being written straight into it
/// (`output::StdoutParts`).
type Undo = Box<dyn Fn() + Send>;
static ON_ABANDON: Mutex<Option<Undo>> = Mutex::new(None);

thread_local! {
    /// The cancel handle of the attempt this thread runs, if any.
    static CURRENT: RefCell<Option<Arc<Cancel>>> = const { RefCell::new(None) };
}

/// How long gmr may take to stop after a signal: what its threads have
/// not finished by then (a FIFO that no writer opens, a pipe that a
/// process outside a child's group holds open, a child stuck on a dead
/// mount) is abandoned, and gmr exits 130.
pub(crate) const STOP_WITHIN: std::time::Duration = std::time::Duration::from_secs(1);

/// Installs the handler for SIGINT and SIGTERM (once per process).
pub(crate) fn install() {
    // ctrlc runs the handler on a thread of its own, so it may wait.
    let _ = ctrlc::set_handler(|| {
        trigger();
        std::thread::sleep(STOP_WITHIN);
        if let Some((dir, spec)) = lock(&MADE_DIR).take()
            && !spec.exists()
        {
            let _ = std::fs::remove_dir_all(dir);
        }
        // Under the lock: whoever set it waits, its file still open.
        if let Some(undo) = lock(&ON_ABANDON).as_ref() {
            undo();
        }
        // Nothing is printed: stderr may be what another thread is stuck on.
        // SAFETY: _exit ends the process at once; nothing is shared with
        // code that runs after it.
        unsafe { libc::_exit(crate::error::ExitCode::Interrupted as i32) }
    });
}

/// Names the work directory gmr just made, to remove if the process is
/// abandoned before a job is saved in it (before `spec` exists).
pub(crate) fn made_workdir(dir: &Path, spec: &Path) {
    *lock(&MADE_DIR) = Some((dir.to_path_buf(), spec.to_path_buf()));
}

/// Sets what to undo if the process is abandoned after a signal (None:
/// nothing). Setting it waits for an undo already running.
pub(crate) fn on_abandon(undo: Option<Undo>) {
    *lock(&ON_ABANDON) = undo;
}

/// Runs what [`on_abandon`] set, if anything, and clears it: under the same
/// lock as the signal thread, so that the undo is done once, before the
/// process may be abandoned.
pub(crate) fn undo_now() {
    if let Some(undo) = lock(&ON_ABANDON).take() {
        undo();
    }
}

/// Acts as if a signal arrived: `gmr task --watch-stdin` calls this when
/// its SSH connection goes away, so a remote task dies with its connection.
pub(crate) fn trigger() {
    INTERRUPTED.store(true, Ordering::SeqCst);
    kill_children();
}

/// True once a signal arrived.
pub(crate) fn is_set() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// `Err(Interrupted)` once a signal arrived.
pub(crate) fn check() -> Result<()> {
    if is_set() {
        Err(Error::Interrupted)
    } else {
        Ok(())
    }
}

/// Records a running child (the leader of its own process group) so that an
/// interrupt kills it and everything it started. Kills it at once if the
/// interrupt came first.
pub(crate) fn register_child(pid: i32) {
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(pid);
    if is_set() {
        kill_group(pid);
    }
    CURRENT.with(|c| {
        if let Some(cancel) = c.borrow().as_ref() {
            lock(&cancel.children).push(pid);
            // After the push: a cancel either sees the pid or is seen here.
            if cancel.is_cancelled() {
                kill_group(pid);
            }
        }
    });
}

/// Whether `pid` is a command gmr started and has not waited for yet.
pub(crate) fn is_child(pid: i32) -> bool {
    lock(&CHILDREN).contains(&pid)
}

/// Forgets a child that has been waited for.
pub(crate) fn unregister_child(pid: i32) {
    lock(&CHILDREN).retain(|&p| p != pid);
    CURRENT.with(|c| {
        if let Some(cancel) = c.borrow().as_ref() {
            lock(&cancel.children).retain(|&p| p != pid);
        }
    });
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Stops one task attempt that runs on this machine: kills the commands it
/// started (and those it starts later), so that it fails soon.
#[derive(Debug, Default)]
pub(crate) struct Cancel {
    cancelled: AtomicBool,
    children: Mutex<Vec<i32>>,
}

impl Cancel {
    /// Runs one attempt, `body`, on this thread under this handle (which
    /// starts out not cancelled).
    pub(crate) fn run<T>(self: &Arc<Self>, body: impl FnOnce() -> T) -> T {
        self.cancelled.store(false, Ordering::SeqCst);
        CURRENT.with(|c| *c.borrow_mut() = Some(Arc::clone(self)));
        struct Reset;
        impl Drop for Reset {
            fn drop(&mut self) {
                CURRENT.with(|c| *c.borrow_mut() = None);
            }
        }
        let _reset = Reset;
        body()
    }

    /// Cancels the attempt running under this handle.
    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::SeqCst);
        for &pid in lock(&self.children).iter() {
            kill_group(pid);
        }
    }

    /// Whether the attempt was cancelled.
    pub(crate) fn is_cancelled(&self) -> bool {
        self.cancelled.load(Ordering::SeqCst)
    }
}

/// The cancel handle of the attempt this thread runs, for the threads it
/// starts (a command's feeder).
pub(crate) fn current() -> Option<Arc<Cancel>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// True when the attempt this thread runs was cancelled.
pub(crate) fn cancelled() -> bool {
    CURRENT.with(|c| c.borrow().as_ref().is_some_and(|c| c.is_cancelled()))
}

fn kill_children() {
    for &pid in lock(&CHILDREN).iter() {
        kill_group(pid);
    }
}

/// Kills the process group led by `pid`.
pub(crate) fn kill_group(pid: i32) {
    // SAFETY: kill(2) with a negative pid signals that process group; a
    // stale group id at worst signals nothing (ESRCH).
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
    }
}

/// Turns an I/O error on `path` into a task failure that names the path
/// (and says what to do for a full disk), or into an interruption when the
/// job is being stopped.
pub(crate) fn io_failure<'a>(
    what: &'a str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> TaskError + 'a {
    move |e| {
        if is_set() {
            TaskError::interrupted()
        } else {
            TaskError::io(crate::error::io_message(what, path, &e), &e)
        }
    }
}
