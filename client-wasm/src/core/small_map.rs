//! [`SmallMap`]: a map kept in a `Vec`. The SDK's maps hold a handful of entries (requests
//! in flight, rooms), where a linear scan is as fast as a tree, and each `BTreeMap`
//! instantiation would add kilobytes to the wasm download.

/// A map of a few entries, in insertion order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmallMap<K, V> {
    entries: Vec<(K, V)>,
}

impl<K, V> Default for SmallMap<K, V> {
    fn default() -> Self {
        Self {
            entries: Vec::new(),
        }
    }
}

impl<K: PartialEq, V> SmallMap<K, V> {
    /// How many entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether `key` has an entry.
    pub fn contains_key(&self, key: &K) -> bool {
        self.entries.iter().any(|(k, _)| k == key)
    }

    /// The value of `key`.
    pub fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        self.entries
            .iter_mut()
            .find_map(|(k, v)| (k == key).then_some(v))
    }

    /// Sets `key` to `value`, replacing an earlier value.
    pub fn insert(&mut self, key: K, value: V) {
        match self.get_mut(&key) {
            Some(slot) => *slot = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes `key`, returning its value.
    pub fn remove(&mut self, key: &K) -> Option<V> {
        let at = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(at).1)
    }

    /// The value of `key`, inserting the default first if there is none.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        let at = match self.entries.iter().position(|(k, _)| *k == key) {
            Some(at) => at,
            None => {
                self.entries.push((key, V::default()));
                self.entries.len() - 1
            }
        };
        &mut self.entries[at].1
    }

    /// Every entry, in insertion order.
    pub fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    /// Every key.
    pub fn keys(&self) -> impl Iterator<Item = &K> {
        self.entries.iter().map(|(k, _)| k)
    }

    /// Every entry, values mutable.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (&K, &mut V)> {
        self.entries.iter_mut().map(|(k, v)| (&*k, v))
    }

    /// Every value.
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }

    /// Removes every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }

    /// Removes the entries `take` accepts and returns them.
    pub fn extract_if(&mut self, mut take: impl FnMut(&K, &V) -> bool) -> Vec<(K, V)> {
        let (taken, kept) = std::mem::take(&mut self.entries)
            .into_iter()
            .partition(|(k, v)| take(k, v));
        self.entries = kept;
        taken
    }
}

impl<K, V> IntoIterator for SmallMap<K, V> {
    type Item = (K, V);
    type IntoIter = std::vec::IntoIter<(K, V)>;

    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map() {
        let mut map = SmallMap::default();
        map.insert(1, "a");
        map.insert(2, "b");
        map.insert(1, "c");
        assert_eq!(map.len(), 2);
        assert_eq!(map.iter().collect::<Vec<_>>(), [(&1, &"c"), (&2, &"b")]);
        assert_eq!(map.remove(&1), Some("c"));
        assert_eq!(map.remove(&1), None);
        assert!(map.contains_key(&2));
        let mut lists: SmallMap<&str, Vec<u8>> = SmallMap::default();
        lists.entry_or_default("x").push(1);
        lists.entry_or_default("x").push(2);
        assert_eq!(lists.values().collect::<Vec<_>>(), [&vec![1, 2]]);
        let mut numbers: SmallMap<u8, u8> = (0..5).fold(SmallMap::default(), |mut m, n| {
            m.insert(n, n);
            m
        });
        let odd = numbers.extract_if(|k, _| k % 2 == 1);
        assert_eq!(odd, [(1, 1), (3, 3)]);
        assert_eq!(numbers.len(), 3);
    }
}
