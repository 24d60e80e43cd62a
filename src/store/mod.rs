//! What a job keeps on disk: the work directory's names and commits
//! ([`workdir`]), the inputs with streams spooled into it ([`input`]), the job spec every task reads ([`spec`]), the output
//! directory ([`output`]), and what this machine allows ([`resources`]).

pub(crate) mod input;
pub(crate) mod output;
pub(crate) mod resources;
pub(crate) mod spec;
pub(crate) mod workdir;
