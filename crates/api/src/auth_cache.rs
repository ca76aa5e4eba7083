//! The cache of verified API keys behind [`crate::auth`]: a token verified less than
//! [`AUTH_CACHE_TTL`] ago is taken at its word, a revoked key is forgotten at once. A leaf of
//! the HTTP crate: the shared state holds it, authentication reads it, and it depends on
//! neither.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::{ApiKey, ApiKeyId, ApiToken, Timestamp, UserId};

/// The caller: the owner every query is scoped by, and the key used.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    /// The user.
    pub user: UserId,
    /// The API key the request used.
    pub key: ApiKeyId,
}

/// `last_used_at` is written at most this often per key, so reads stay reads.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// How long a verified token is trusted without asking the database again.
pub const AUTH_CACHE_TTL: Duration = Duration::from_secs(5);

/// Most tokens remembered; past that the cache starts over.
const AUTH_CACHE_CAPACITY: usize = 10_000;

struct CachedKey {
    key: ApiKeyId,
    owner: UserId,
    verified_at: Instant,
    last_used_at: Option<Timestamp>,
}

#[derive(Default)]
struct CacheState {
    /// By the SHA-256 of the token's secret (never the secret itself).
    entries: HashMap<[u8; 32], CachedKey>,
    /// Keys revoked through this process or announced by the change feed: never cached
    /// again (ids are never reused).
    revoked: HashSet<ApiKeyId>,
    /// Moves on every [`AuthCache::clear`]: a verification that began before it is not kept.
    epoch: u64,
}

/// Tokens verified recently, by the hash of their secret.
#[derive(Default)]
pub struct AuthCache {
    state: Mutex<CacheState>,
}

impl AuthCache {
    fn state(&self) -> std::sync::MutexGuard<'_, CacheState> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The caller, when `token` was verified less than the TTL ago; and, when the key's
    /// `last_used_at` is due for a write, the time to write (recorded as written).
    pub(crate) fn lookup(
        &self,
        token: &ApiToken,
        now: Timestamp,
    ) -> Option<(Authenticated, Option<Timestamp>)> {
        let mut state = self.state();
        let entry = state.entries.get_mut(token.hash().as_bytes())?;
        if entry.key != token.key_id() || entry.verified_at.elapsed() > AUTH_CACHE_TTL {
            return None;
        }
        let touch = is_stale(entry.last_used_at, now).then(|| {
            entry.last_used_at = Some(now);
            now
        });
        Some((
            Authenticated {
                user: entry.owner,
                key: entry.key,
            },
            touch,
        ))
    }

    /// The epoch to pass to [`AuthCache::remember`]: take it before asking the database.
    pub(crate) fn epoch(&self) -> u64 {
        self.state().epoch
    }

    pub(crate) fn remember(
        &self,
        token: &ApiToken,
        key: &ApiKey,
        last_used_at: Option<Timestamp>,
        epoch: u64,
    ) {
        let mut state = self.state();
        if state.revoked.contains(&key.id) || state.epoch != epoch {
            return;
        }
        if state.entries.len() >= AUTH_CACHE_CAPACITY {
            state.entries.clear();
        }
        state.entries.insert(
            *token.hash().as_bytes(),
            CachedKey {
                key: key.id,
                owner: key.owner,
                verified_at: Instant::now(),
                last_used_at,
            },
        );
    }

    /// Forgets every token (another process's writes are unknown); verifications under way
    /// are not kept either.
    pub fn clear(&self) {
        let mut state = self.state();
        state.entries.clear();
        state.epoch += 1;
    }

    /// Forgets every token of key `id`, now and for good: call after revoking it.
    pub fn revoke(&self, id: ApiKeyId) {
        let mut state = self.state();
        state.entries.retain(|_, entry| entry.key != id);
        if state.revoked.len() >= AUTH_CACHE_CAPACITY {
            state.revoked.clear();
        }
        state.revoked.insert(id);
    }
}

/// Whether a key last used at `last_used_at` is due for a new `last_used_at` at `now`.
pub(crate) fn is_stale(last_used_at: Option<Timestamp>, now: Timestamp) -> bool {
    last_used_at.is_none_or(|last| {
        now.unix_micros() - last.unix_micros() >= TOUCH_INTERVAL.as_micros() as i64
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(id: i64) -> ApiKey {
        ApiKey {
            id: ApiKeyId::new(id).unwrap(),
            owner: UserId::new(9).unwrap(),
            name: domain::ApiKeyName::parse("k").unwrap(),
            last_used_at: None,
            created_at: Timestamp::now(),
        }
    }

    fn token(id: i64, secret: &str) -> ApiToken {
        ApiToken::parse(&format!("{id}|{secret}")).unwrap()
    }

    #[test]
    fn a_verification_that_began_before_a_clear_is_not_kept() {
        let cache = AuthCache::default();
        let before = cache.epoch();
        cache.clear();
        cache.remember(&token(1, "s"), &key(1), None, before);
        assert!(cache.lookup(&token(1, "s"), Timestamp::now()).is_none());
        cache.remember(&token(1, "s"), &key(1), None, cache.epoch());
        assert!(cache.lookup(&token(1, "s"), Timestamp::now()).is_some());
    }

    #[test]
    fn a_remembered_token_is_recognised_and_a_different_secret_is_not() {
        let cache = AuthCache::default();
        let now = Timestamp::now();
        cache.remember(&token(1, "right"), &key(1), Some(now), cache.epoch());
        let (caller, touch) = cache.lookup(&token(1, "right"), now).unwrap();
        assert_eq!((caller.user.get(), caller.key.get(), touch), (9, 1, None));
        assert!(cache.lookup(&token(1, "wrong"), now).is_none());
        assert!(
            cache.lookup(&token(2, "right"), now).is_none(),
            "the key id must match too"
        );
    }

    #[test]
    fn a_revoked_key_is_forgotten_and_never_cached_again() {
        let cache = AuthCache::default();
        cache.remember(&token(1, "s"), &key(1), None, cache.epoch());
        cache.revoke(ApiKeyId::new(1).unwrap());
        assert!(cache.lookup(&token(1, "s"), Timestamp::now()).is_none());
        cache.remember(&token(1, "s"), &key(1), None, cache.epoch());
        assert!(cache.lookup(&token(1, "s"), Timestamp::now()).is_none());
    }

    #[test]
    fn a_stale_last_used_at_is_due_once() {
        let cache = AuthCache::default();
        cache.remember(&token(1, "s"), &key(1), None, cache.epoch());
        let now = Timestamp::now();
        assert_eq!(cache.lookup(&token(1, "s"), now).unwrap().1, Some(now));
        assert_eq!(cache.lookup(&token(1, "s"), now).unwrap().1, None);
    }

    #[test]
    fn last_used_at_is_written_when_absent_or_older_than_the_interval() {
        let now = Timestamp::from_unix_micros(100_000_000).unwrap();
        assert!(is_stale(None, now));
        assert!(is_stale(
            Timestamp::from_unix_micros(100_000_000 - 60_000_000),
            now
        ));
        assert!(!is_stale(
            Timestamp::from_unix_micros(100_000_000 - 59_000_000),
            now
        ));
    }
}
