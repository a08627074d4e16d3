//! Bounded memo tables for pure computations on the hot path (parsing a
//! phone number against libphonenumber's metadata, verifying an access
//! token's signature): a hit costs one hash and an uncontended lock instead
//! of the computation. Only the computation's own input decides its result,
//! so nothing ever needs invalidating; a full table is emptied and refills
//! with what is hot.

use std::{
    borrow::Borrow,
    collections::HashMap,
    hash::Hash,
    sync::{Mutex, PoisonError},
};

/// The hasher for in-memory tables keyed by what clients send: fast, and
/// seeded per process so keys cannot be chosen to collide.
pub type FastHasher = foldhash::fast::RandomState;

/// A memo table of at most `capacity` entries, emptied when full.
pub struct Memo<K, V> {
    name: &'static str,
    capacity: usize,
    map: Mutex<HashMap<K, V, FastHasher>>,
}

impl<K: Eq + Hash, V: Clone> Memo<K, V> {
    /// An empty table; `name` labels its `memo_resets_total` counter.
    pub fn new(name: &'static str, capacity: usize) -> Self {
        Self {
            name,
            capacity,
            map: Mutex::new(HashMap::with_hasher(FastHasher::default())),
        }
    }

    /// The remembered value for `key`.
    pub fn get<Q>(&self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(key)
            .cloned()
    }

    /// Remembers `value` for `key`.
    pub fn insert(&self, key: K, value: V) {
        let mut map = self.map.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= self.capacity {
            map.clear();
            metrics::counter!("memo_resets_total", "memo" => self.name).increment(1);
        }
        map.insert(key, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_memo_starts_over_instead_of_growing() {
        let memo = Memo::new("test", 2);
        memo.insert("a".to_string(), 1);
        memo.insert("b".to_string(), 2);
        assert_eq!(memo.get("a"), Some(1));
        memo.insert("c".to_string(), 3);
        assert_eq!(memo.get("a"), None);
        assert_eq!(memo.get("c"), Some(3));
    }
}
