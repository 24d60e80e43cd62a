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

pub mod aggregate;
pub mod builtin;
pub mod codec;
pub mod linebuf;
pub mod merge;
pub mod order;
pub mod partition;
pub mod record;
pub mod sort;
pub mod sortkey;
pub mod split;
