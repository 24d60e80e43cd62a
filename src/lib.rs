//! gmr: MapReduce for the shell.
//!
//! Users bring mapper and reducer executables, as with Hadoop Streaming;
//! gmr splits the input, runs the mappers in parallel, partitions and sorts
//! their output, and runs the reducers — on all local cores, on SSH hosts
//! sharing a work directory, or on Slurm.
//!
//! The folders are layers, each importing only those below it
//! (`tests/architecture.rs` enforces it; `docs/dev/architecture.md` is the
//! map): [`data`] (bytes, records, order) < [`store`] (the work directory,
//! the job spec, the output) < [`task`] (what one attempt does) < [`exec`]
//! (where attempts run) < [`observe`] (status, progress, reports) < [`cli`]
//! (the flags) < [`control`] (commands, plans, the job's lifecycle, the
//! coordinator). [`error`] and [`interrupt`] serve every layer.

#![warn(missing_docs)]

pub mod cli;
pub mod control;
pub mod data;
pub mod error;
pub mod exec;
pub mod files;
pub mod interrupt;
pub mod observe;
pub mod store;
pub mod task;
