//! What runs a job: the subcommands ([`commands`]), their plans, checked
//! before anything is made ([`plan`]), the job's life in its work directory
//! ([`lifecycle`]), the phases' scheduling ([`coordinator`]), the stages'
//! JSON lines ([`manifest`]), and jobs of several steps ([`steps`]).

pub(crate) mod commands;
pub(crate) mod coordinator;
pub(crate) mod lifecycle;
pub(crate) mod manifest;
pub(crate) mod plan;
pub(crate) mod steps;
