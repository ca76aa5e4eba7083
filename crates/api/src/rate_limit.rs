//! Rate limits, with `governor`: requests per account (all its API keys together), and
//! failed authentications per client address. Per process, unless Redis is configured
//! (`--redis-url`): then both are shared by every replica ([`crate::shared_limits`]), and the
//! per-process limiters stand in while Redis does not answer. A limit of 0 turns one off.
//! The account quota is then reserved from Redis in batches and spent locally
//! ([`crate::shared_quota`]); failed authentications ask Redis each time, so they stay exact.
//!
//! The account quota refills continuously (`per_minute` cells a minute) and allows a burst of
//! the whole minute's worth. Authenticated answers carry `X-RateLimit-Limit` and
//! `X-RateLimit-Remaining`; a refused request gets `429 {"message":"Too Many Attempts."}` with
//! `Retry-After`.
//!
//! A failed authentication is counted against the client address; past the limit further
//! failures from it answer 429 instead of 401. A valid token is never refused because of its
//! address (one bad client behind a shared NAT must not lock out the rest): the token is always
//! checked first. Tokens carry 238 random bits, so this limit is not what stops guessing; it
//! bounds the work and the noise that failed attempts cause.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use domain::UserId;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};

use crate::errors::ApiError;
use crate::shared_limits::SharedLimiter;
use crate::shared_quota::SharedQuota;

type Keyed<K> = RateLimiter<K, DefaultKeyedStateStore<K>, DefaultClock, StateInformationMiddleware>;

/// What a request left of its account's quota: the values of the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allowance {
    /// Requests a minute.
    pub limit: u32,
    /// Requests that may follow at once.
    pub remaining: u32,
}

/// The two limiters, each optional, and Redis when they are shared.
pub struct RateLimits {
    per_account: Option<(Keyed<UserId>, u32)>,
    auth_failures: Option<(Keyed<IpAddr>, u32)>,
    shared: Option<Arc<SharedLimiter>>,
    /// The account quota spent locally, when it is shared.
    quota: Option<Arc<SharedQuota>>,
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
    /// `per_minute` requests per account and `auth_failures_per_minute` failed
    /// authentications per client address; 0 turns either off.
    pub fn new(per_minute: u32, auth_failures_per_minute: u32) -> Self {
        Self {
            per_account: limiter(per_minute).map(|limiter| (limiter, per_minute)),
            auth_failures: limiter(auth_failures_per_minute)
                .map(|limiter| (limiter, auth_failures_per_minute)),
            shared: None,
            quota: None,
        }
    }

    /// The same limits, shared by every replica through `redis`.
    pub fn shared_through(mut self, redis: SharedLimiter) -> Self {
        let redis = Arc::new(redis);
        self.quota = self
            .per_account
            .as_ref()
            .map(|(_, limit)| Arc::new(SharedQuota::new(redis.clone(), *limit)));
        self.shared = Some(redis);
        self
    }

    /// The shared account quota, when there is one (its cells go back to Redis with
    /// [`SharedQuota::hand_back_expired`], which the server runs every quarter second).
    pub fn shared_quota(&self) -> Option<Arc<SharedQuota>> {
        self.quota.clone()
    }

    /// `/readyz`'s `rate_limits`: `local`, `redis`, or `local (redis unreachable)`.
    pub fn scope(&self) -> &'static str {
        match &self.shared {
            None => "local",
            Some(redis) if redis.reachable() => "redis",
            Some(_) => "local (redis unreachable)",
        }
    }

    /// [`RateLimits::check_account`], shared through Redis when it is configured and answers.
    pub async fn check_account_everywhere(
        &self,
        user: UserId,
    ) -> Result<Option<Allowance>, ApiError> {
        if let Some(quota) = &self.quota {
            match quota.take(user).await {
                Some(Ok(remaining)) => {
                    return Ok(Some(Allowance {
                        limit: quota.per_minute(),
                        remaining,
                    }))
                }
                Some(Err(wait)) => return Err(too_many(wait, quota.per_minute())),
                None => {}
            }
        }
        self.check_account(user)
    }

    /// Whether an account's allowance is decided in this process alone
    /// ([`RateLimits::check_account`]), with no quota shared through Redis to ask.
    pub fn decides_alone(&self) -> bool {
        self.quota.is_none()
    }

    /// [`RateLimits::failed`], shared through Redis when it is configured and answers.
    pub async fn failed_everywhere(&self, client: Option<IpAddr>) -> ApiError {
        if let (Some(redis), Some(client), Some((_, limit))) =
            (&self.shared, client, &self.auth_failures)
        {
            if let Some(decision) = redis.take(&format!("auth-failures:{client}"), *limit).await {
                return if decision.allowed {
                    ApiError::Unauthenticated
                } else {
                    too_many(decision.retry_after, 0)
                };
            }
        }
        self.failed(client)
    }

    /// No limits.
    pub fn off() -> Self {
        Self::new(0, 0)
    }

    /// Counts a request of account `user`: its allowance, or 429.
    pub fn check_account(&self, user: UserId) -> Result<Option<Allowance>, ApiError> {
        let Some((limiter, limit)) = &self.per_account else {
            return Ok(None);
        };
        match limiter.check_key(&user) {
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

    /// Counts a failed authentication of `client`: the error to answer with (401, or 429 once
    /// the client is over the limit).
    pub fn failed(&self, client: Option<IpAddr>) -> ApiError {
        let (Some(client), Some((limiter, _))) = (client, &self.auth_failures) else {
            return ApiError::Unauthenticated;
        };
        match limiter.check_key(&client) {
            Ok(_) => ApiError::Unauthenticated,
            Err(not_until) => too_many(not_until.wait_time_from(DefaultClock::default().now()), 0),
        }
    }

    /// Forgets idle state; run now and then so that memory stays bounded.
    pub fn housekeeping(&self) {
        if let Some((limiter, _)) = &self.per_account {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
        if let Some((limiter, _)) = &self.auth_failures {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(id: i64) -> UserId {
        UserId::new(id).unwrap()
    }

    #[test]
    fn an_account_gets_its_quota_and_then_429_with_a_retry_time() {
        let limits = RateLimits::new(3, 0);
        let remaining: Vec<u32> = (0..3)
            .map(|_| limits.check_account(user(1)).unwrap().unwrap().remaining)
            .collect();
        assert_eq!(remaining, [2, 1, 0]);
        match limits.check_account(user(1)) {
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
            limits.check_account(user(2)).is_ok(),
            "accounts are limited separately"
        );
    }

    #[test]
    fn failed_authentications_of_one_client_turn_into_429_for_that_client_only() {
        let limits = RateLimits::new(0, 2);
        let client = Some("192.0.2.1".parse().unwrap());
        assert!(matches!(limits.failed(client), ApiError::Unauthenticated));
        assert!(matches!(limits.failed(client), ApiError::Unauthenticated));
        assert!(matches!(
            limits.failed(client),
            ApiError::TooManyRequests { limit: 0, .. }
        ));
        assert!(matches!(
            limits.failed(Some("192.0.2.2".parse().unwrap())),
            ApiError::Unauthenticated
        ));
    }

    #[test]
    fn zero_turns_a_limit_off() {
        let limits = RateLimits::off();
        for _ in 0..1000 {
            assert_eq!(limits.check_account(user(1)).unwrap(), None);
            assert!(matches!(
                limits.failed(Some("192.0.2.1".parse().unwrap())),
                ApiError::Unauthenticated
            ));
        }
    }
}
