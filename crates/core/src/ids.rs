//! Identifiers. Every row id is a UUIDv7: time-ordered, so "newest first" is
//! "highest id first", keyset pagination needs no second column and B-tree
//! inserts land at the right edge of the index.

use chrono::{DateTime, Utc};
use uuid::Uuid;

/// A new id for a row created now.
pub fn new_id() -> Uuid {
    Uuid::now_v7()
}

/// An id for a row whose creation time lies elsewhere (seeded history,
/// imported records), so id order still follows time order.
pub fn id_at(at: DateTime<Utc>, entropy: u128) -> Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    // Low 74 bits of entropy fill rand_a/rand_b; version and variant bits are
    // set by the builder.
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6..].copy_from_slice(&entropy.to_be_bytes()[6..]);
    uuid::Builder::from_bytes(bytes)
        .with_version(uuid::Version::SortRand)
        .with_variant(uuid::Variant::RFC4122)
        .into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn ids_at_later_times_sort_after_earlier_ones() {
        let early = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 0).unwrap();
        let late = Utc.with_ymd_and_hms(2025, 1, 1, 0, 0, 1).unwrap();
        let a = id_at(early, u128::MAX);
        let b = id_at(late, 0);
        assert!(a < b);
        assert_eq!(a.get_version_num(), 7);
    }

    #[test]
    fn new_ids_are_monotonic_within_a_process() {
        let ids: Vec<Uuid> = (0..1000).map(|_| new_id()).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]));
    }
}
