//! Which reduce partition a key goes to: XXH3-64 of the key bytes, seed 0,
//! modulo the number of reducers (docs/contracts.md §2).
//!
//! This function is part of the on-disk contract between hosts and releases:
//! every host of a job must agree on it, and a resumed job must too, so the
//! tests below pin known values.

use twox_hash::XxHash3_64;

/// The partition of `key` among `reducers` partitions (`reducers` > 0).
#[inline]
pub(crate) fn partition(key: &[u8], reducers: u32) -> u32 {
    debug_assert!(reducers > 0);
    if reducers == 1 {
        return 0;
    }
    let hash = XxHash3_64::oneshot(key);
    // The same remainder without a 64-bit division, the costliest step of
    // taking a record in profiles, when R is a power of two (as R = the
    // number of cores usually is).
    if reducers.is_power_of_two() {
        return (hash & u64::from(reducers - 1)) as u32;
    }
    (hash % u64::from(reducers)) as u32
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

    #[test]
    fn powers_of_two_take_the_remainder_too() {
        for r in [1, 2, 3, 4, 6, 8, 1024, 1000, 1 << 20] {
            for i in 0..200 {
                let key = format!("key{i}");
                let want = XxHash3_64::oneshot(key.as_bytes()) % u64::from(r);
                assert_eq!(
                    u64::from(partition(key.as_bytes(), r)),
                    want,
                    "{key} of {r}"
                );
            }
        }
    }
}
