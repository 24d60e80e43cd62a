//! What a job keeps on disk: the work directory's names and commits
//! ([`workdir`]), the inputs with streams spooled into it ([`input`]), the job spec every task reads ([`spec`]), the output
//! directory ([`output`]) with its parts filed by key ([`keyed`]), what
//! this machine allows ([`resources`]), and the user's history of jobs
//! ([`history`]).

pub(crate) mod history;
pub(crate) mod input;
pub(crate) mod keyed;
pub(crate) mod output;
pub(crate) mod resources;
pub(crate) mod spec;
pub(crate) mod workdir;
