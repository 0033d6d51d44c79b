//! Per-device state with a ceiling: a map that keeps at most about `capacity` keys, forgetting
//! the ones untouched longest. Ingest's dedupe windows and the registry's sequence state use it,
//! so that a flood of device ids cannot grow them without bound; a device that comes back after
//! being forgotten has its state restored from PostgreSQL (`device_sequences`).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// How many devices' state each of ingest and the registry sink keep in memory.
pub const DEVICE_STATE_CAPACITY: usize = 100_000;

#[derive(Debug, Clone)]
pub struct IdleMap<K, V> {
    map: HashMap<K, (V, u64), foldhash::fast::RandomState>,
    tick: u64,
    capacity: usize,
    forgot: bool,
}

impl<K: Hash + Eq, V> Default for IdleMap<K, V> {
    fn default() -> Self {
        Self::new(DEVICE_STATE_CAPACITY)
    }
}

impl<K: Hash + Eq, V> IdleMap<K, V> {
    pub fn new(capacity: usize) -> Self {
        Self {
            map: HashMap::default(),
            tick: 0,
            capacity: capacity.max(1),
            forgot: false,
        }
    }

    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.get(key).map(|(v, _)| v)
    }

    /// The value, marked as used now.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.tick += 1;
        let tick = self.tick;
        self.map.get_mut(key).map(|(v, t)| {
            *t = tick;
            v
        })
    }

    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.map.contains_key(key)
    }

    /// Inserts, marked as used now; past the capacity by a tenth, forgets the tenth used
    /// longest ago (one pass every `capacity / 10` new keys).
    pub fn insert(&mut self, key: K, value: V) {
        self.tick += 1;
        self.map.insert(key, (value, self.tick));
        if self.map.len() > self.capacity + self.capacity / 10 {
            let excess = self.map.len() - self.capacity;
            let mut ticks: Vec<u64> = self.map.values().map(|(_, t)| *t).collect();
            let (_, &mut threshold, _) = ticks.select_nth_unstable(excess - 1);
            self.map.retain(|_, (_, t)| *t > threshold);
            self.forgot = true;
        }
    }

    /// Whether any key was ever forgotten: only then can a missing key have had state.
    pub fn has_forgotten(&self) -> bool {
        self.forgot
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_recently_used_and_forgets_the_idle_past_its_capacity() {
        let mut map = IdleMap::new(10);
        for i in 0..11 {
            map.insert(i, i);
        }
        assert!(!map.has_forgotten(), "within a tenth over");
        // 0 is used again: it is not among the idle ones.
        assert_eq!(map.get_mut(&0), Some(&mut 0));
        map.insert(11, 11);
        map.insert(12, 12);
        assert!(map.has_forgotten());
        assert!(map.len() <= 11, "{}", map.len());
        assert!(map.contains_key(&0));
        assert!(map.contains_key(&12));
        assert!(!map.contains_key(&1), "the longest idle went");
    }
}
