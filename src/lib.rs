//! gmr: MapReduce for the shell.
//!
//! Users bring mapper and reducer executables, as with Hadoop Streaming;
//! gmr splits the input, runs the mappers in parallel, partitions and sorts
//! their output, and runs the reducers — on all local cores, on SSH hosts
//! sharing a work directory, or on Slurm.
//!
//! The folders are layers, each importing only those below it
//! (`tests/architecture.rs` enforces it; `docs/dev/architecture.md` is the
//! map): `data` (bytes, records, order) < `store` (the work directory, the
//! job spec, the output) < `task` (what one attempt does) < `exec` (where
//! attempts run) < `observe` (status, progress, reports) < `cli` (the
//! flags) < `control` (commands, plans, the job's lifecycle, the
//! coordinator). `error`, `interrupt` and `files` serve every layer.
//!
//! The library exists for the binary and the tests: it exports only what
//! `main.rs`, `tests/` and `benches/` use.

#![warn(missing_docs)]

mod cli;
mod control;
mod data;
mod error;
mod exec;
mod files;
mod interrupt;
mod observe;
mod store;
mod task;

pub use cli::flags::Cli;
pub use cli::gendoc::{completions, man_pages};
pub use cli::parse;
pub use error::{Error, ExitCode};

/// Runs a parsed command line: Ctrl-C and SIGTERM handled from here on,
/// and what the commands leave behind reparented to gmr.
pub fn run(cli: Cli) -> Result<(), Error> {
    interrupt::install();
    task::process::become_subreaper();
    control::commands::dispatch(cli)
}

/// The coordinator's scheduling, for tests and benchmarks that drive it
/// with an executor of their own (`benches/coordinator.rs`).
pub mod schedule {
    pub use crate::control::coordinator::{PhaseOutcome, Policy, run_phase};
    pub use crate::error::{FailureKind, TaskError};
    pub use crate::exec::health::Health;
    pub use crate::exec::{Done, Ended, Executor};
    pub use crate::observe::observer::{Attempt, NoObserver, Observer};
    pub use crate::task::TaskId;
    pub use crate::task::report::{Counters, TaskReport};
}
