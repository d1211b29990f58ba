//! Counter handles of a metric family resolved once per label set, so that
//! counting a request builds no label value: a label set is a small `Copy`
//! key (the labels from closed sets) and one name borrowed at each count
//! (an action, an upstream). The first count of a set creates its series
//! in the family; later ones find its handle under a read lock.
//!
//! The handles live as long as the family's series do (bounded by the
//! config, see [`super::metrics`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

use prometheus_client::metrics::counter::Counter;

/// The handles of one family, by key and name.
#[derive(Debug)]
pub struct Handles<K> {
    by_key: RwLock<HashMap<K, HashMap<Box<str>, Counter>>>,
}

impl<K> Default for Handles<K> {
    fn default() -> Self {
        Handles {
            by_key: RwLock::new(HashMap::new()),
        }
    }
}

impl<K: Hash + Eq + Copy> Handles<K> {
    /// Adds one to the counter of (`key`, `name`); `series` gives the
    /// family's counter the first time.
    pub fn inc(&self, key: K, name: &str, series: impl FnOnce() -> Counter) {
        let found = self.by_key.read().ok().and_then(|by_key| {
            let counter = by_key.get(&key)?.get(name)?;
            counter.inc();
            Some(())
        });
        if found.is_some() {
            return;
        }
        let counter = series();
        counter.inc();
        if let Ok(mut by_key) = self.by_key.write() {
            by_key.entry(key).or_default().insert(name.into(), counter);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[test]
    fn a_label_set_is_resolved_once_and_counted_every_time() {
        let handles = Handles::<(&str, bool)>::default();
        let shared = Counter::default();
        let resolved = Cell::new(0);
        let series = || {
            resolved.set(resolved.get() + 1);
            shared.clone()
        };
        for _ in 0..3 {
            handles.inc(("http", true), "send", series);
        }
        assert_eq!((shared.get(), resolved.get()), (3, 1));
        let other = Counter::default();
        handles.inc(("http", false), "send", || other.clone());
        handles.inc(("http", true), "read", || other.clone());
        assert_eq!(
            (shared.get(), other.get()),
            (3, 2),
            "other sets, other series"
        );
    }
}
