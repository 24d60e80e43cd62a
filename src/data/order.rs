//! The order of a job's map output: how records are ordered within a
//! partition, and which partition a record goes to (docs/contracts.md §2).
//!
//! By default records order by key, value and line, and go to the
//! partition their key (or its first `--partition-fields` fields) hashes
//! to. With `--sort-key`, they order by the encoding of their sort keys
//! ([`crate::data::sortkey`]), then by the whole line. With `--total-order`,
//! they go to the partition whose range of *rank* holds theirs, between
//! the job's cut points ([`crate::task::sample`] picks them), so that the parts
//! are in order one after another: the rank is the sort keys' encoding
//! with `--sort-key`, the key without.

use crate::data::partition::partition;
use crate::data::record::KeySpec;
use crate::data::sortkey::SortKeys;
use std::sync::Arc;

/// How map output is partitioned and ordered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Order {
    /// How records split into key and value (built-ins and reducers group
    /// by the key).
    pub(crate) key: KeySpec,
    sort: Option<SortKeys>,
    cuts: Option<Arc<[Vec<u8>]>>,
}

impl Order {
    /// The default: by key, value and line, partitioned by the key's hash.
    pub(crate) fn new(key: KeySpec) -> Order {
        Order {
            key,
            sort: None,
            cuts: None,
        }
    }

    /// Orders by `keys`, then by the whole line.
    pub(crate) fn with_sort_keys(mut self, keys: SortKeys) -> Order {
        self.sort = Some(keys);
        self
    }

    /// Partitions by rank: partition `p` holds the ranks above cut
    /// `p - 1` and up to cut `p` (`cuts` ascending, at most R - 1).
    pub(crate) fn with_cuts(mut self, cuts: Vec<Vec<u8>>) -> Order {
        self.cuts = Some(cuts.into());
        self
    }

    /// The sort keys, when records order by them.
    #[inline]
    pub(crate) fn sort_keys(&self) -> Option<&SortKeys> {
        self.sort.as_ref()
    }

    /// The bytes that place a record with key `key` and sort-key encoding
    /// `encoded` (empty without sort keys) in the total order.
    #[inline]
    pub(crate) fn rank<'a>(&self, key: &'a [u8], encoded: &'a [u8]) -> &'a [u8] {
        if self.sort.is_some() { encoded } else { key }
    }

    /// The partition, among `reducers`, of a record with key `key` and
    /// sort-key encoding `encoded` (empty without sort keys).
    #[inline]
    pub(crate) fn partition(&self, key: &[u8], encoded: &[u8], reducers: u32) -> u32 {
        match &self.cuts {
            None => partition(self.key.partition_key(key), reducers),
            Some(cuts) => {
                let rank = self.rank(key, encoded);
                cuts.partition_point(|c| c.as_slice() < rank) as u32
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuts_keep_equal_ranks_together_and_in_order() {
        let order = Order::new(KeySpec::default()).with_cuts(vec![b"b".to_vec(), b"d".to_vec()]);
        let parts: Vec<u32> = ["a", "b", "b", "c", "d", "e", "zz"]
            .iter()
            .map(|k| order.partition(k.as_bytes(), b"", 3))
            .collect();
        assert_eq!(parts, [0, 0, 0, 1, 1, 2, 2]);
    }
}
