//! The command line: clap's definitions of every flag ([`flags`]), the one
//! source of `--help`, the man pages and the completions ([`gendoc`]).

pub(crate) mod flags;
pub(crate) mod gendoc;
