//! Finalizer releases the watch cache may not show yet (controller-runtime calls this kind
//! of record "expectations"). The reconcile that writes a build's final status removes the
//! finalizer right after; the status write alone wakes the next reconcile, whose copy of
//! the object can come from before the removal. Removing it again from that copy would send
//! a JSON patch whose `test` fails (a 422 and a wasted write for most runs). So each release
//! is remembered with the resourceVersion it was made from, until the cache moves past it.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

/// More remembered releases than this means the cache is far behind for many runs (or runs
/// were deleted before it caught up): the record is dropped, which costs at most one
/// refused patch per run.
const MAX_REMEMBERED: usize = 10_000;

/// Run uid → the resourceVersion of the object the operator's finalizer was removed from.
#[derive(Debug, Default)]
pub struct Released(Mutex<HashMap<String, String>>);

impl Released {
    /// The finalizer of run `uid` was removed from its version `resource_version`.
    pub fn record(&self, uid: &str, resource_version: &str) {
        let mut released = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if released.len() >= MAX_REMEMBERED {
            released.clear();
        }
        released.insert(uid.to_owned(), resource_version.to_owned());
    }

    /// Whether this version of run `uid` is one its finalizer was already removed from.
    /// Any other version means the cache has moved on, and the record is forgotten.
    pub fn is_released(&self, uid: &str, resource_version: &str) -> bool {
        let mut released = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        match released.get(uid) {
            Some(version) if version == resource_version => true,
            Some(_) => {
                released.remove(uid);
                false
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_version_released_from_is_skipped_until_the_cache_moves_on() {
        let released = Released::default();
        assert!(!released.is_released("u1", "10"));
        released.record("u1", "10");
        assert!(released.is_released("u1", "10"), "a stale copy");
        assert!(released.is_released("u1", "10"), "as often as it comes");
        assert!(!released.is_released("u2", "10"), "another run");
        assert!(!released.is_released("u1", "11"), "the cache caught up");
        assert!(!released.is_released("u1", "10"), "and the record is gone");
    }

    #[test]
    fn the_record_is_bounded() {
        let released = Released::default();
        for i in 0..MAX_REMEMBERED + 1 {
            released.record(&i.to_string(), "1");
        }
        assert!(released.0.lock().unwrap().len() <= MAX_REMEMBERED);
        assert!(released.is_released(&MAX_REMEMBERED.to_string(), "1"));
    }
}
