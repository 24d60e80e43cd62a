//! The threads that talk to the hosts' workers (see [`crate::exec::worker`]):
//! a fixed number whatever the number of hosts, so that hundreds of hosts
//! cost neither hundreds of threads nor a thread per slot.
//!
//! Each host belongs to one of [`LANES`] lanes. A lane's thread holds the
//! connection and the running worker of each of its hosts, sends them the
//! coordinator's attempts and cancels (held until the worker has spoken:
//! the shell that execs it may read its stdin ahead, as dash does), polls
//! all its hosts' sockets at once (and an eventfd that new asks ring),
//! moves every worker along without blocking ([`Connection::pump`]), and
//! hands each `Done` to whoever waits for it. Starting a worker blocks
//! (a connection, a login, a check: seconds): that is done on one of at
//! most [`STARTERS`] starter threads, whose result comes back to the lane.
//!
//! A host lost, silent for its idle limit, or whose worker ended fails
//! the attempts it had, as the host's failures; the next attempt there
//! starts a new worker. When the links are dropped the lanes end and
//! their connections close: the workers see their stdin close and exit.

use super::connection::{Connection, Running};
use super::remote;
use super::worker::{Order, Reply};
use crate::error::{FailureKind, TaskError};
use crate::interrupt;
use crate::task::TaskId;
use crate::task::report::TaskReport;
use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::collections::HashMap;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Threads that talk to workers, at most.
const LANES: usize = 8;
/// Workers being started at once, at most (each a connection, a login).
const STARTERS: usize = 16;

/// Where the end of an attempt goes.
pub(crate) type Answer = Box<dyn FnOnce(Result<TaskReport, TaskError>) + Send>;

/// What starts the worker of a host: on the connection given (or a new
/// one), it returns the connection (None when it failed) and the worker.
pub(crate) type StartFn = dyn Fn(usize, Option<Connection>) -> (Option<Connection>, Result<Running, TaskError>)
    + Send
    + Sync;

/// What the coordinator asks of a host.
pub(crate) enum Ask {
    /// Run an attempt in a slot of the host's worker.
    Run {
        /// The slot, among the host's.
        slot: usize,
        /// The task.
        task: TaskId,
        /// The attempt number.
        attempt: u32,
        /// Where its end goes.
        reply: Answer,
    },
    /// Stop the attempt in a slot.
    Cancel {
        /// The slot, among the host's.
        slot: usize,
    },
}

/// What reaches a lane.
enum Msg {
    Ask(usize, Ask),
    /// A starter's result for a host.
    Started(usize, Option<Connection>, Result<Running, TaskError>),
}

/// The threads that talk to the workers of a job's hosts.
pub(crate) struct Links {
    lanes: Vec<Lane>,
    starters: Vec<std::thread::JoinHandle<()>>,
    start_tx: Option<Sender<StartJob>>,
}

struct Lane {
    tx: Mutex<Option<Sender<Msg>>>,
    wake: Arc<Wake>,
    /// Set when the links go: the lane ends (its channel stays open, the
    /// starters hold senders to it).
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

/// A worker to start: the host, its connection if any, and where the
/// result goes.
struct StartJob {
    host: usize,
    conn: Option<Connection>,
    lane: Sender<Msg>,
    wake: Arc<Wake>,
}

impl Links {
    /// Links to `first.len()` hosts, the connections of their checks in
    /// `first`; `start` starts a host's worker, `gmr` names the binary in
    /// messages.
    pub(crate) fn new(first: Vec<Option<Connection>>, start: Arc<StartFn>, gmr: PathBuf) -> Links {
        let hosts = first.len();
        let (start_tx, start_rx) = crossbeam_channel::unbounded::<StartJob>();
        let starters = (0..hosts.min(STARTERS))
            .map(|i| {
                let (rx, start) = (start_rx.clone(), start.clone());
                std::thread::Builder::new()
                    .name(format!("gmr-start-{i}"))
                    .spawn(move || {
                        for job in rx {
                            let (conn, worker) = start(job.host, job.conn);
                            let _ = job.lane.send(Msg::Started(job.host, conn, worker));
                            job.wake.ring();
                        }
                    })
                    .expect("a thread to start workers")
            })
            .collect();
        let lanes_n = hosts.clamp(1, LANES);
        let mut mine: Vec<Vec<(usize, Option<Connection>)>> =
            (0..lanes_n).map(|_| Vec::new()).collect();
        for (host, conn) in first.into_iter().enumerate() {
            mine[host % lanes_n].push((host, conn));
        }
        let lanes = mine
            .into_iter()
            .enumerate()
            .map(|(i, hosts)| {
                let (tx, rx) = crossbeam_channel::unbounded();
                let wake = Arc::new(Wake::new().expect("an eventfd"));
                let stop = Arc::new(AtomicBool::new(false));
                let (w, starts, own_tx, gmr, stopped) = (
                    wake.clone(),
                    start_tx.clone(),
                    tx.clone(),
                    gmr.clone(),
                    stop.clone(),
                );
                let thread = std::thread::Builder::new()
                    .name(format!("gmr-lane-{i}"))
                    .spawn(move || {
                        LaneState {
                            hosts: hosts.into_iter().map(|(h, c)| (h, Host::new(c))).collect(),
                            rx,
                            own_tx,
                            wake: w,
                            starts,
                            gmr,
                            stop: stopped,
                        }
                        .run()
                    })
                    .expect("a thread for the hosts");
                Lane {
                    tx: Mutex::new(Some(tx)),
                    wake,
                    stop,
                    thread: Some(thread),
                }
            })
            .collect();
        Links {
            lanes,
            starters,
            start_tx: Some(start_tx),
        }
    }

    /// Sends `ask` to `host`'s lane; an attempt that cannot be sent ends
    /// at once as the host's failure.
    pub(crate) fn ask(&self, host: usize, ask: Ask) {
        let lane = &self.lanes[host % self.lanes.len()];
        let sent = match &*lane.tx.lock().unwrap_or_else(|e| e.into_inner()) {
            Some(tx) => tx.send(Msg::Ask(host, ask)).map_err(|e| e.0),
            None => Err(Msg::Ask(host, ask)),
        };
        lane.wake.ring();
        if let Err(Msg::Ask(_, Ask::Run { reply, .. })) = sent {
            reply(Err(TaskError::host("the link to the host ended")));
        }
    }
}

impl Drop for Links {
    /// Ends the lanes, which closes every connection: the workers see
    /// their stdin close and exit. A starter still connecting ends by its
    /// own timeout, its result unread.
    fn drop(&mut self) {
        self.start_tx.take();
        for lane in &mut self.lanes {
            lane.tx.lock().unwrap_or_else(|e| e.into_inner()).take();
            lane.stop.store(true, Ordering::SeqCst);
            lane.wake.ring();
            if let Some(t) = lane.thread.take() {
                let _ = t.join();
            }
        }
        // Not joined: one may be in a handshake for its timeout.
        self.starters.clear();
    }
}

/// One host, as its lane sees it.
struct Host {
    conn: Option<Connection>,
    worker: Option<Running>,
    /// A starter has it.
    starting: bool,
    /// Its worker has spoken: orders may go.
    ready: bool,
    /// Orders not sent yet.
    held: Vec<String>,
    /// Attempts sent, by slot.
    waiting: HashMap<usize, Answer>,
    /// Attempts waiting for the worker to start.
    pending: Vec<(usize, TaskId, u32, Answer)>,
}

impl Host {
    fn new(conn: Option<Connection>) -> Host {
        Host {
            conn,
            worker: None,
            starting: false,
            ready: false,
            held: Vec::new(),
            waiting: HashMap::new(),
            pending: Vec::new(),
        }
    }

    /// Ends every attempt it has with `e`.
    fn fail_all(&mut self, e: &TaskError) {
        for (_, reply) in self.waiting.drain() {
            reply(Err(e.clone()));
        }
        for (_, _, _, reply) in self.pending.drain(..) {
            reply(Err(e.clone()));
        }
        self.held.clear();
    }

    /// Queues an attempt for its worker.
    fn send_run(&mut self, slot: usize, task: TaskId, attempt: u32, reply: Answer) {
        let order = Order::Run {
            slot,
            task: task.to_string(),
            attempt,
        };
        self.held
            .push(serde_json::to_string(&order).expect("serializable"));
        self.waiting.insert(slot, reply);
    }
}

struct LaneState {
    hosts: HashMap<usize, Host>,
    rx: Receiver<Msg>,
    /// Its own sender, for the starters' results.
    own_tx: Sender<Msg>,
    wake: Arc<Wake>,
    starts: Sender<StartJob>,
    gmr: PathBuf,
    stop: Arc<AtomicBool>,
}

impl LaneState {
    fn run(mut self) {
        let mut lines = Vec::new();
        loop {
            // The links are gone: the connections close with the lane.
            if self.stop.load(Ordering::SeqCst) {
                return;
            }
            let busy = self.hosts.values().any(|h| h.worker.is_some());
            let msg = if busy {
                self.rx
                    .try_recv()
                    .map_err(|e| e == TryRecvError::Disconnected)
            } else {
                self.rx
                    .recv_timeout(Duration::from_millis(200))
                    .map_err(|e| e == RecvTimeoutError::Disconnected)
            };
            match msg {
                Ok(msg) => {
                    self.take(msg);
                    continue;
                }
                // The executor is gone: the connections close with the lane.
                Err(true) => return,
                Err(false) => {}
            }
            if interrupt::is_set() {
                for h in self.hosts.values_mut() {
                    if let Some(c) = h.conn.take() {
                        c.cut();
                    }
                    h.worker = None;
                    h.fail_all(&TaskError::interrupted());
                }
                continue;
            }
            let mut moved = false;
            for h in self.hosts.values_mut() {
                lines.clear();
                moved |= pump(h, &self.gmr, &mut lines);
            }
            if !moved {
                self.wait();
            }
        }
    }

    /// Acts on a message.
    fn take(&mut self, msg: Msg) {
        match msg {
            Msg::Ask(
                host,
                Ask::Run {
                    slot,
                    task,
                    attempt,
                    reply,
                },
            ) => {
                let Some(h) = self.hosts.get_mut(&host) else {
                    reply(Err(TaskError::host("no such host")));
                    return;
                };
                if h.worker.is_some() {
                    h.send_run(slot, task, attempt, reply);
                    return;
                }
                h.pending.push((slot, task, attempt, reply));
                if !h.starting {
                    h.starting = true;
                    let job = StartJob {
                        host,
                        conn: h.conn.take(),
                        lane: self.own_tx.clone(),
                        wake: self.wake.clone(),
                    };
                    if let Err(e) = self.starts.send(job) {
                        h.starting = false;
                        h.conn = e.0.conn;
                        h.fail_all(&TaskError::host("cannot start the host's worker"));
                    }
                }
            }
            Msg::Ask(host, Ask::Cancel { slot }) => {
                let Some(h) = self.hosts.get_mut(&host) else {
                    return;
                };
                if h.waiting.contains_key(&slot) {
                    let order = Order::Cancel { slot };
                    h.held
                        .push(serde_json::to_string(&order).expect("serializable"));
                } else if let Some(i) = h.pending.iter().position(|p| p.0 == slot) {
                    let (_, _, _, reply) = h.pending.remove(i);
                    reply(Err(TaskError::cancelled()));
                }
            }
            Msg::Started(host, conn, worker) => {
                let Some(h) = self.hosts.get_mut(&host) else {
                    return;
                };
                h.starting = false;
                h.conn = conn;
                match worker {
                    Ok(w) => {
                        h.worker = Some(w);
                        h.ready = false;
                        for (slot, task, attempt, reply) in std::mem::take(&mut h.pending) {
                            h.send_run(slot, task, attempt, reply);
                        }
                    }
                    Err(e) => h.fail_all(&e),
                }
            }
        }
    }

    /// Waits (100 ms at most) for any of the lane's sockets, or a ring.
    fn wait(&self) {
        let mut fds: Vec<libc::pollfd> = self
            .hosts
            .values()
            .filter(|h| h.worker.is_some())
            .filter_map(|h| h.conn.as_ref().map(Connection::pollfd))
            .collect();
        fds.push(libc::pollfd {
            fd: self.wake.fd(),
            events: libc::POLLIN,
            revents: 0,
        });
        // SAFETY: a valid array of pollfds; every descriptor outlives the
        // call (the lane owns the connections).
        unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, 100);
        }
        self.wake.drain();
    }
}

/// Moves one host's worker along: sends what it may, reads its replies,
/// and ends its attempts when it is lost or ended. Whether anything came.
fn pump(h: &mut Host, gmr: &std::path::Path, lines: &mut Vec<String>) -> bool {
    let (Some(c), Some(w)) = (h.conn.as_ref(), h.worker.as_mut()) else {
        return false;
    };
    if h.ready {
        for order in h.held.drain(..) {
            w.send_line(&order);
        }
    }
    let pumped = c.pump(w, lines);
    for line in lines.iter() {
        match serde_json::from_str::<Reply>(line) {
            Ok(Reply::Done { slot, result }) => {
                if let Some(reply) = h.waiting.remove(&slot) {
                    reply((*result).map_err(stopped_there));
                }
            }
            Ok(Reply::Alive) => h.ready = true,
            Err(_) => {}
        }
    }
    match pumped {
        Ok(None) => {}
        Ok(Some(out)) => {
            h.worker = None;
            let e = match remote::interpret(gmr, out) {
                Err(e) => e,
                Ok(_) => TaskError::host("the worker there ended"),
            };
            h.fail_all(&e);
        }
        Err(e) => {
            let tail = w.stderr_tail();
            h.conn = None;
            h.worker = None;
            let mut e = TaskError::host(e.to_string());
            e.stderr_tail = tail;
            h.fail_all(&e);
        }
    }
    !lines.is_empty()
}

/// A task stopped on the host, not by us (the worker saw an interrupt
/// there): the host's doing.
fn stopped_there(mut e: TaskError) -> TaskError {
    if e.kind == FailureKind::Interrupted {
        e.kind = FailureKind::Host;
        e.message = format!("the task was stopped on the host: {}", e.message);
    }
    e
}

/// An eventfd that wakes a lane from poll(2) when something is asked of it.
struct Wake(OwnedFd);

impl Wake {
    fn new() -> std::io::Result<Wake> {
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: a fresh descriptor this process owns.
        Ok(Wake(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }

    fn ring(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a u64 to an eventfd.
        unsafe { libc::write(self.fd(), (&one as *const u64).cast(), 8) };
    }

    fn drain(&self) {
        let mut n: u64 = 0;
        // SAFETY: reads 8 bytes into a u64 from a non-blocking eventfd.
        unsafe { libc::read(self.fd(), (&mut n as *mut u64).cast(), 8) };
    }
}
