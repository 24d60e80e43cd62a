//! What runs a job: the subcommands ([`commands`]), their plans, checked
//! before anything is made ([`plan`]), the job's life in its work directory
//! ([`lifecycle`]), the phases' scheduling ([`coordinator`]) and the stages'
//! JSON lines ([`manifest`]).

pub(crate) mod commands;
pub(crate) mod coordinator;
pub(crate) mod lifecycle;
pub(crate) mod manifest;
pub(crate) mod plan;
