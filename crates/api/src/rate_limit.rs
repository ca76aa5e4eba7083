//! Rate limits, with `governor`: requests per API key, and failed authentications per client
//! IP (to slow token guessing). Both are per process; a limit of 0 turns one off.
//!
//! The per-key quota refills continuously (`per_minute` cells a minute) and allows a burst of
//! the whole minute's worth. Authenticated answers carry `X-RateLimit-Limit` and
//! `X-RateLimit-Remaining`; a refused request gets `429 {"message":"Too Many Attempts."}` with
//! `Retry-After`. The client IP is the TCP peer: behind a proxy, put the limit there.

use std::collections::HashMap;
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use domain::ApiKeyId;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::errors::ApiError;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// What a request left of its key's quota: the values of the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Requests a minute.
    pub limit: u32,
    /// Requests that may follow at once.
    pub remaining: u32,
}

/// The two limiters, each optional.
pub struct RateLimits {
    per_key: Option<(Keyed<ApiKeyId>, u32)>,
    auth_failures: Option<Keyed<IpAddr>>,
    /// Clients over the failure limit, until when: checked before any token work.
    blocked: Mutex<HashMap<IpAddr, Instant>>,
}

fn limiter<K: std::hash::Hash + Eq + Clone>(per_minute: u32) -> Option<Keyed<K>> {
    let per_minute = NonZeroU32::new(per_minute)?;
    Some(
        RateLimiter::keyed(Quota::per_minute(per_minute))
            .with_middleware::<StateInformationMiddleware>(),
    )
}

fn too_many(wait: Duration, limit: u32) -> ApiError {
    ApiError::TooManyRequests {
        retry_after_secs: wait.as_secs() + u64::from(wait.subsec_nanos() > 0),
        limit,
    }
}

impl RateLimits {
    /// `per_minute` requests per API key and `auth_failures_per_minute` failed
    /// authentications per client IP; 0 turns either off.
    pub fn new(per_minute: u32, auth_failures_per_minute: u32) -> Self {
        Self {
            per_key: limiter(per_minute).map(|limiter| (limiter, per_minute)),
            auth_failures: limiter(auth_failures_per_minute),
            blocked: Mutex::new(HashMap::new()),
        }
    }

    /// No limits.
    pub fn off() -> Self {
        Self::new(0, 0)
    }

    /// Counts a request of key `key`: its allowance, or 429.
    pub fn check_key(&self, key: ApiKeyId) -> Result<Option<Allowance>, ApiError> {
        let Some((limiter, limit)) = &self.per_key else {
            return Ok(None);
        };
        match limiter.check_key(&key) {
            Ok(state) => Ok(Some(Allowance {
                limit: *limit,
                remaining: state.remaining_burst_capacity(),
            })),
            Err(not_until) => Err(too_many(
                not_until.wait_time_from(DefaultClock::default().now()),
                *limit,
            )),
        }
    }

    fn blocked(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Instant>> {
        self.blocked
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// 429 when `client` is over the failure limit.
    pub fn check_client(&self, client: Option<IpAddr>) -> Result<(), ApiError> {
        let (Some(client), Some(_)) = (client, &self.auth_failures) else {
            return Ok(());
        };
        match self.blocked().get(&client) {
            Some(until) if *until > Instant::now() => Err(too_many(*until - Instant::now(), 0)),
            _ => Ok(()),
        }
    }

    /// Counts a failed authentication of `client`: the error to answer with (401, or 429 once
    /// the client is over the limit).
    pub fn failed(&self, client: Option<IpAddr>) -> ApiError {
        let (Some(client), Some(limiter)) = (client, &self.auth_failures) else {
            return ApiError::Unauthenticated;
        };
        match limiter.check_key(&client) {
            Ok(_) => ApiError::Unauthenticated,
            Err(not_until) => {
                let wait = not_until.wait_time_from(DefaultClock::default().now());
                self.blocked().insert(client, Instant::now() + wait);
                too_many(wait, 0)
            }
        }
    }

    /// Forgets idle state; run now and then so that memory stays bounded.
    pub fn housekeeping(&self) {
        if let Some((limiter, _)) = &self.per_key {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some(limiter) = &self.auth_failures {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        let now = Instant::now();
        self.blocked().retain(|_, until| *until > now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_quota_and_then_429_with_a_retry_time() {
        let limits = RateLimits::new(3, 0);
        let key = ApiKeyId::new(1).unwrap();
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check_key(key).unwrap().unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        match limits.check_key(key) {
            Err(ApiError::TooManyRequests {
                retry_after_secs,
                limit,
            }) => {
                assert_eq!(limit, 3);
                assert!((1..=20).contains(&retry_after_secs), "{retry_after_secs}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            limits.check_key(ApiKeyId::new(2).unwrap()).is_ok(),
            "keys are limited separately"
        );
    }

    #[test]
    fn failed_authentications_of_one_client_turn_into_429_and_block_it() {
        let limits = RateLimits::new(0, 2);
        let client = Some("192.0.2.1".parse().unwrap());
        assert!(matches!(limits.failed(client), ApiError::Unauthenticated));
        assert!(matches!(limits.failed(client), ApiError::Unauthenticated));
        assert!(limits.check_client(client).is_ok());
        assert!(matches!(
            limits.failed(client),
            ApiError::TooManyRequests { .. }
        ));
        assert!(limits.check_client(client).is_err());
        assert!(limits
            .check_client(Some("192.0.2.2".parse().unwrap()))
            .is_ok());
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = RateLimits::off();
        for _ in 0..1000 {
            assert_eq!(limits.check_key(ApiKeyId::new(1).unwrap()).unwrap(), None);
            assert!(matches!(
                limits.failed(Some("192.0.2.1".parse().unwrap())),
                ApiError::Unauthenticated
            ));
        }
    }
}
