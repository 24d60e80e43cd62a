//! gmr: MapReduce for the shell.
//!
//! Users bring mapper and reducer executables, as with Hadoop Streaming;
//! gmr splits the input, runs the mappers in parallel, partitions and sorts
//! their output, and runs the reducers — on all local cores, or on SSH
//! hosts sharing a work directory. The modules follow the data:
//! [`split`] → [`task`] (with [`program`], [`sort`], [`partition`],
//! [`merge`]) → output, with [`coordinator`] and [`exec`] deciding when and
//! where tasks run, and [`commands`] tying it to the [`cli`].

#![warn(missing_docs)]

pub mod aggregate;
pub mod builtin;
pub mod cli;
pub mod codec;
pub mod commands;
pub mod coordinator;
pub mod error;
pub mod exec;
pub mod gendoc;
pub mod health;
pub mod hosts;
pub mod htmlreport;
pub mod interrupt;
pub mod job;
pub mod joblog;
pub mod knownhosts;
pub mod linebuf;
pub mod manifest;
pub mod merge;
pub mod order;
pub mod output;
pub mod partition;
pub mod plan;
pub mod process;
pub mod program;
pub mod progress;
pub mod record;
pub mod report;
pub mod resources;
pub mod sample;
pub mod sort;
pub mod sortkey;
pub mod spec;
pub mod spill;
pub mod split;
pub mod status;
pub mod task;
pub mod tracker;
pub mod workdir;
