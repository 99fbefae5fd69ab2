//! A short-lived, bounded memory of key ids the store does not know.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lock;
use crate::key::KeyId;

/// Remembers unknown ids for `ttl`, at most `capacity` of them, so repeated
/// requests with a bad id reach the store once per `ttl`.
#[derive(Debug)]
pub(crate) struct MissCache {
    ttl: Duration,
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Id to the time its entry expires.
    expiry: HashMap<KeyId, Instant>,
    /// Insertion order; with one ttl this is also expiry order.
    order: VecDeque<(KeyId, Instant)>,
}

impl MissCache {
    pub(crate) fn new(ttl: Duration, capacity: usize) -> Self {
        Self {
            ttl,
            capacity: capacity.max(1),
            inner: Mutex::default(),
        }
    }

    /// Whether `id` was found missing less than `ttl` before `now`.
    pub(crate) fn contains(&self, id: &KeyId, now: Instant) -> bool {
        lock(&self.inner)
            .expiry
            .get(id)
            .is_some_and(|&expires| expires > now)
    }

    /// Remembers `id` as missing from `now` on; the oldest entries go first
    /// when full.
    pub(crate) fn insert(&self, id: KeyId, now: Instant) {
        let mut inner = lock(&self.inner);
        inner.evict(now, self.capacity - 1);
        let expires = now + self.ttl;
        inner.expiry.insert(id.clone(), expires);
        inner.order.push_back((id, expires));
    }

    /// Forgets `id` (it was just created).
    pub(crate) fn remove(&self, id: &KeyId) {
        lock(&self.inner).expiry.remove(id);
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.inner).expiry.len()
    }
}

impl Inner {
    /// Drops expired entries, then the oldest until at most `keep` remain.
    fn evict(&mut self, now: Instant, keep: usize) {
        while let Some((id, expires)) = self.order.front() {
            let expired = *expires <= now;
            if !expired && self.order.len() <= keep {
                break;
            }
            // A removed or re-inserted id has another (or no) expiry: leave it.
            if self.expiry.get(id) == Some(expires) {
                self.expiry.remove(id);
            }
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: usize) -> KeyId {
        format!("{n:012}").parse().unwrap()
    }

    #[test]
    fn entries_expire_after_ttl() {
        let cache = MissCache::new(Duration::from_secs(30), 10);
        let t0 = Instant::now();
        cache.insert(id(1), t0);
        assert!(cache.contains(&id(1), t0 + Duration::from_secs(29)));
        assert!(!cache.contains(&id(1), t0 + Duration::from_secs(30)));
        assert!(!cache.contains(&id(2), t0));
    }

    #[test]
    fn size_stays_bounded() {
        let cache = MissCache::new(Duration::from_secs(30), 3);
        let t0 = Instant::now();
        for n in 0..10 {
            cache.insert(id(n), t0);
        }
        assert_eq!(cache.len(), 3);
        assert!(cache.contains(&id(9), t0));
        assert!(!cache.contains(&id(0), t0));
    }

    #[test]
    fn removed_ids_are_forgotten() {
        let cache = MissCache::new(Duration::from_secs(30), 3);
        let t0 = Instant::now();
        cache.insert(id(1), t0);
        cache.remove(&id(1));
        assert!(!cache.contains(&id(1), t0));
    }
}
