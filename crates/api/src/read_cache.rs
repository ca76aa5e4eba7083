//! `ReadCache`: rendered answers of trunk reads (the list, one trunk), per owner, for a short
//! time. Reads on the call-set-up path then skip the database and the thread hop.
//!
//! Consistency: every write through this process bumps the owner's generation and drops the
//! owner's entries before it answers, and an answer is only stored if the owner's generation
//! did not move while it was read, so a client never reads its own write stale here. A write
//! through another instance is seen within the TTL (`--read-cache-ms`; 0 turns the cache off).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use domain::{TrunkId, UserId};

/// Most answers kept (each a few KiB); past that the cache starts over.
const CAPACITY: usize = 1024;

/// Which read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Read {
    /// `GET /user/phone-numbers/sip-trunks`
    List,
    /// `GET /user/phone-numbers/sip-trunks/{id}`
    One(TrunkId),
}

#[derive(Default)]
struct State {
    answers: HashMap<(UserId, Read), (Bytes, Instant)>,
    generations: HashMap<UserId, u64>,
}

/// Rendered read answers by owner; see the module documentation.
pub struct ReadCache {
    ttl: Duration,
    state: Mutex<State>,
}

impl ReadCache {
    /// A cache keeping answers for `ttl` (zero: keeps nothing).
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The stored answer, if fresh.
    pub fn get(&self, owner: UserId, read: Read) -> Option<Bytes> {
        if self.ttl.is_zero() {
            return None;
        }
        let state = self.state();
        let (bytes, stored_at) = state.answers.get(&(owner, read))?;
        (stored_at.elapsed() < self.ttl).then(|| bytes.clone())
    }

    /// The owner's generation: take it before reading the database.
    pub fn generation(&self, owner: UserId) -> u64 {
        self.state().generations.get(&owner).copied().unwrap_or(0)
    }

    /// Stores an answer read at `generation`, unless a write moved the owner on since.
    pub fn put(&self, owner: UserId, read: Read, generation: u64, bytes: Bytes) {
        if self.ttl.is_zero() {
            return;
        }
        let mut state = self.state();
        if state.generations.get(&owner).copied().unwrap_or(0) != generation {
            return;
        }
        if state.answers.len() >= CAPACITY {
            state.answers.clear();
        }
        state.answers.insert((owner, read), (bytes, Instant::now()));
    }

    /// Call after every write of the owner's trunks, before answering.
    pub fn invalidate(&self, owner: UserId) {
        let mut state = self.state();
        *state.generations.entry(owner).or_insert(0) += 1;
        state.answers.retain(|(who, _), _| *who != owner);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> UserId {
        UserId::new(1).unwrap()
    }

    #[test]
    fn an_answer_is_served_until_the_owner_writes() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let generation = cache.generation(owner());
        cache.put(owner(), Read::List, generation, Bytes::from_static(b"[]"));
        assert_eq!(
            cache.get(owner(), Read::List).unwrap(),
            Bytes::from_static(b"[]")
        );
        cache.invalidate(owner());
        assert!(cache.get(owner(), Read::List).is_none());
    }

    #[test]
    fn an_answer_read_before_a_write_is_not_stored_after_it() {
        let cache = ReadCache::new(Duration::from_secs(60));
        let generation = cache.generation(owner());
        cache.invalidate(owner());
        cache.put(
            owner(),
            Read::List,
            generation,
            Bytes::from_static(b"stale"),
        );
        assert!(cache.get(owner(), Read::List).is_none());
    }

    #[test]
    fn answers_expire_and_a_zero_ttl_keeps_nothing() {
        let cache = ReadCache::new(Duration::from_millis(1));
        cache.put(owner(), Read::List, 0, Bytes::from_static(b"x"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get(owner(), Read::List).is_none());
        let off = ReadCache::new(Duration::ZERO);
        off.put(owner(), Read::List, 0, Bytes::from_static(b"x"));
        assert!(off.get(owner(), Read::List).is_none());
    }

    #[test]
    fn owners_do_not_see_each_others_answers() {
        let cache = ReadCache::new(Duration::from_secs(60));
        cache.put(owner(), Read::List, 0, Bytes::from_static(b"mine"));
        assert!(cache.get(UserId::new(2).unwrap(), Read::List).is_none());
    }
}
