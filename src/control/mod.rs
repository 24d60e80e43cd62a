//! What runs a job: the subcommands ([`commands`]), their plans, checked
//! before anything is made ([`plan`]), the job's life in its work directory
//! ([`lifecycle`]), the phases' scheduling ([`coordinator`]) and the stages'
//! JSON lines ([`manifest`]).

pub mod commands;
pub mod coordinator;
pub mod lifecycle;
pub mod manifest;
pub mod plan;
