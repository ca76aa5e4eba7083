//! `ReadCache`: rendered answers of trunk reads (the list, one trunk), per owner, for a short
//! time. Reads on the call-set-up path then skip the database and the thread hop.
//!
//! Consistency: every write through this process bumps the owner's generation and drops the
//! owner's entries before it answers, and an answer is only stored if the owner's generation
//! did not move while it was read, so a client never reads its own write stale here. On
//! PostgreSQL a write through another replica is announced by the change feed within
//! milliseconds and invalidates the same way; on SQLite, or while the feed reconnects, it is
//! seen within the TTL (`--read-cache-ms`; 0 turns the cache off).
//!
//! Memory: the answers kept never total more than the byte budget (`--read-cache-bytes`). An
//! answer larger than an eighth of it is not kept at all (one tenant's huge list must not push
//! everyone else out); to make room, expired answers go first, then the oldest.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::web::Bytes;
use domain::{TrunkId, UserId};

/// The default byte budget.
pub const DEFAULT_BUDGET_BYTES: usize = 8 * 1024 * 1024;

/// The largest answer kept is this fraction of the budget.
const LARGEST_ENTRY_DIVISOR: usize = 8;

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
    /// Moves on every [`ReadCache::clear`]; part of every owner's generation.
    epoch: u64,
    /// Sum of the kept answers' lengths.
    bytes: usize,
}

impl State {
    /// Both counters only grow, so any write or clear changes the sum.
    fn generation(&self, owner: UserId) -> u64 {
        self.generations.get(&owner).copied().unwrap_or(0) + self.epoch
    }

    fn remove(&mut self, key: &(UserId, Read)) {
        if let Some((bytes, _)) = self.answers.remove(key) {
            self.bytes -= bytes.len();
        }
    }

    fn drop_expired(&mut self, ttl: Duration) {
        let mut freed = 0;
        self.answers.retain(|_, (bytes, stored_at)| {
            let keep = stored_at.elapsed() < ttl;
            if !keep {
                freed += bytes.len();
            }
            keep
        });
        self.bytes -= freed;
    }

    /// Drops answers until `incoming` more bytes fit in `budget`: expired ones first, then
    /// the oldest.
    fn make_room(&mut self, incoming: usize, budget: usize, ttl: Duration) {
        if self.bytes + incoming <= budget {
            return;
        }
        self.drop_expired(ttl);
        while self.bytes + incoming > budget {
            let oldest = self
                .answers
                .iter()
                .min_by_key(|(_, (_, stored_at))| *stored_at)
                .map(|(key, _)| *key);
            match oldest {
                Some(key) => self.remove(&key),
                None => break,
            }
        }
    }
}

/// Rendered read answers by owner; see the module documentation.
pub struct ReadCache {
    ttl: Duration,
    budget: usize,
    state: Mutex<State>,
}

impl ReadCache {
    /// A cache keeping answers for `ttl` (zero: keeps nothing), at most `budget` bytes in all.
    pub fn new(ttl: Duration, budget: usize) -> Self {
        Self {
            ttl,
            budget,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn enabled(&self) -> bool {
        !self.ttl.is_zero() && self.budget > 0
    }

    /// The largest answer that is kept.
    pub fn largest_entry(&self) -> usize {
        self.budget / LARGEST_ENTRY_DIVISOR
    }

    /// The stored answer, if fresh.
    pub fn get(&self, owner: UserId, read: Read) -> Option<Bytes> {
        if !self.enabled() {
            return None;
        }
        let state = self.state();
        let fresh = state
            .answers
            .get(&(owner, read))
            .filter(|(_, stored_at)| stored_at.elapsed() < self.ttl)
            .map(|(bytes, _)| bytes.clone());
        fresh
    }

    /// The owner's generation: take it before reading the database.
    pub fn generation(&self, owner: UserId) -> u64 {
        let state = self.state();
        state.generation(owner)
    }

    /// Stores an answer read at `generation`, unless a write moved the owner on since, or it
    /// is larger than [`ReadCache::largest_entry`].
    pub fn put(&self, owner: UserId, read: Read, generation: u64, bytes: Bytes) {
        if !self.enabled() || bytes.len() > self.largest_entry() {
            return;
        }
        let mut state = self.state();
        if state.generation(owner) != generation {
            return;
        }
        state.remove(&(owner, read));
        state.make_room(bytes.len(), self.budget, self.ttl);
        state.bytes += bytes.len();
        state.answers.insert((owner, read), (bytes, Instant::now()));
    }

    /// Call after every write of the owner's trunks, before answering.
    pub fn invalidate(&self, owner: UserId) {
        let mut state = self.state();
        *state.generations.entry(owner).or_insert(0) += 1;
        let mut freed = 0;
        state.answers.retain(|(who, _), (bytes, _)| {
            let keep = *who != owner;
            if !keep {
                freed += bytes.len();
            }
            keep
        });
        state.bytes -= freed;
    }

    /// Drops every answer (another process's writes are unknown); reads under way are not
    /// kept either.
    pub fn clear(&self) {
        let mut state = self.state();
        state.epoch += 1;
        state.answers.clear();
        state.bytes = 0;
    }

    /// Drops every expired answer; run now and then so that idle memory is given back.
    pub fn evict_expired(&self) {
        self.state().drop_expired(self.ttl);
    }

    /// Bytes held by kept answers.
    pub fn bytes(&self) -> usize {
        self.state().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn owner() -> UserId {
        UserId::new(1).unwrap()
    }

    fn user(id: i64) -> UserId {
        UserId::new(id).unwrap()
    }

    fn minute_cache() -> ReadCache {
        ReadCache::new(Duration::from_secs(60), DEFAULT_BUDGET_BYTES)
    }

    #[test]
    fn a_clear_drops_everything_and_a_read_begun_before_it_is_not_kept() {
        let cache = minute_cache();
        let generation = cache.generation(owner());
        cache.put(
            user(2),
            Read::List,
            cache.generation(user(2)),
            Bytes::from_static(b"x"),
        );
        cache.clear();
        assert!(cache.get(user(2), Read::List).is_none());
        cache.put(owner(), Read::List, generation, Bytes::from_static(b"[]"));
        assert!(cache.get(owner(), Read::List).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn an_answer_is_served_until_the_owner_writes() {
        let cache = minute_cache();
        let generation = cache.generation(owner());
        cache.put(owner(), Read::List, generation, Bytes::from_static(b"[]"));
        assert_eq!(
            cache.get(owner(), Read::List).unwrap(),
            Bytes::from_static(b"[]")
        );
        cache.invalidate(owner());
        assert!(cache.get(owner(), Read::List).is_none());
        assert_eq!(cache.bytes(), 0);
    }

    #[test]
    fn an_answer_read_before_a_write_is_not_stored_after_it() {
        let cache = minute_cache();
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
        let cache = ReadCache::new(Duration::from_millis(1), DEFAULT_BUDGET_BYTES);
        cache.put(owner(), Read::List, 0, Bytes::from_static(b"x"));
        std::thread::sleep(Duration::from_millis(5));
        assert!(cache.get(owner(), Read::List).is_none());
        cache.evict_expired();
        assert_eq!(cache.bytes(), 0, "an expired answer is given back");
        let off = ReadCache::new(Duration::ZERO, DEFAULT_BUDGET_BYTES);
        off.put(owner(), Read::List, 0, Bytes::from_static(b"x"));
        assert!(off.get(owner(), Read::List).is_none());
    }

    #[test]
    fn owners_do_not_see_each_others_answers() {
        let cache = minute_cache();
        cache.put(owner(), Read::List, 0, Bytes::from_static(b"mine"));
        assert!(cache.get(user(2), Read::List).is_none());
    }

    #[test]
    fn the_budget_is_never_exceeded_and_the_oldest_answers_make_room() {
        let cache = ReadCache::new(Duration::from_secs(60), 800);
        let answer = || Bytes::from(vec![b'x'; 100]);
        for id in 1..=20 {
            cache.put(user(id), Read::List, 0, answer());
            assert!(cache.bytes() <= 800, "{} bytes", cache.bytes());
        }
        assert_eq!(cache.bytes(), 800);
        assert!(
            cache.get(user(1), Read::List).is_none(),
            "the oldest went first"
        );
        assert!(cache.get(user(20), Read::List).is_some());
        assert!(cache.get(user(13), Read::List).is_some());
        assert!(cache.get(user(12), Read::List).is_none());
    }

    #[test]
    fn an_answer_over_an_eighth_of_the_budget_is_not_kept() {
        let cache = ReadCache::new(Duration::from_secs(60), 800);
        cache.put(owner(), Read::List, 0, Bytes::from(vec![b'x'; 100]));
        assert!(cache.get(owner(), Read::List).is_some());
        cache.put(user(2), Read::List, 0, Bytes::from(vec![b'x'; 101]));
        assert!(cache.get(user(2), Read::List).is_none());
        assert!(
            cache.get(owner(), Read::List).is_some(),
            "a refused answer pushes nothing out"
        );
    }

    #[test]
    fn replacing_an_answer_counts_its_bytes_once() {
        let cache = minute_cache();
        for _ in 0..3 {
            cache.put(owner(), Read::List, 0, Bytes::from(vec![b'x'; 50]));
        }
        assert_eq!(cache.bytes(), 50);
    }
}
