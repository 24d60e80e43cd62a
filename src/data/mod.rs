//! The data path: bytes, records and their order, with no knowledge of
//! jobs, tasks or hosts. Everything here is a function of its arguments.
//!
//! Inputs are cut into splits ([`split`], decompressed by [`codec`]);
//! records are lines split into key and value ([`record`]); map output is
//! partitioned ([`partition`], or by ranges with [`order`]), ordered by
//! key or by `--sort-key` ([`sortkey`]), sorted in the sort buffer
//! ([`sort`]), counted or folded in a hash table ([`aggregate`], with the
//! built-ins of [`builtin`]), and merged ([`merge`]) through line blocks
//! ([`linebuf`]).

pub(crate) mod aggregate;
pub(crate) mod builtin;
pub(crate) mod codec;
pub(crate) mod linebuf;
pub(crate) mod merge;
pub(crate) mod order;
pub(crate) mod partition;
pub(crate) mod record;
pub(crate) mod sort;
pub(crate) mod sortkey;
pub(crate) mod split;
