//! Which reduce partition a key goes to: XXH3-64 of the key bytes, seed 0,
//! modulo the number of reducers (DESIGN.md §2).
//!
//! This function is part of the on-disk contract between hosts and releases:
//! every host of a job must agree on it, and a resumed job must too, so the
//! tests below pin known values.

use twox_hash::XxHash3_64;

/// The partition of `key` among `reducers` partitions (`reducers` > 0).
#[inline]
pub fn partition(key: &[u8], reducers: u32) -> u32 {
    debug_assert!(reducers > 0);
    (XxHash3_64::oneshot(key) % u64::from(reducers)) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_pinned() {
        // Reference values of XXH3-64 with seed 0 (xxhsum -H3).
        assert_eq!(XxHash3_64::oneshot(b""), 0x2d06800538d394c2);
        assert_eq!(XxHash3_64::oneshot(b"a"), 0xe6c632b61e964e1f);
        assert_eq!(XxHash3_64::oneshot(b"hello"), 0x9555e8555c62dcfd);
    }

    #[test]
    fn partitions_are_pinned() {
        assert_eq!(partition(b"hello", 8), (0x9555e8555c62dcfd_u64 % 8) as u32);
        assert_eq!(partition(b"anything", 1), 0);
        let spread: std::collections::BTreeSet<u32> = (0..1000)
            .map(|i| partition(format!("k{i}").as_bytes(), 4))
            .collect();
        assert_eq!(spread.len(), 4);
    }
}
