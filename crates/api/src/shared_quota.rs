//! The per-account request quota shared through Redis and spent locally: Redis stays off the
//! request path while an account has room, and the limit stays within 2% of exact.
//!
//! Each replica reserves a small batch of an account's cells from Redis in one atomic step
//! ([`SharedLimiter::reserve`], GCRA with a cost) and spends it in memory. When half of a
//! batch is spent, a background task reserves the next one, so a busy account's requests do not
//! wait on Redis at all. Near the limit the batch shrinks to a quarter of what Redis has left,
//! down to one cell: an account at its limit asks Redis per request, as before batching.
//!
//! Accuracy (docs/deployment.md, "Limits that hold across replicas"):
//! - Over: every request admitted spends a cell Redis granted, so no more are admitted than a
//!   single shared GCRA grants, except that a cell may be spent up to [`LEASE`] after it was
//!   granted. Over any minute that is at most `N / 60` cells more (1.7%), however many
//!   replicas there are.
//! - Under: cells one replica holds are not available to another until they are spent or
//!   handed back, at the latest [`LEASE`] after their grant. A batch is at most 1% of the
//!   limit and a quarter of what was left. A replica that dies holding cells loses them; they
//!   come back as the account's cell refills (a GCRA has no lasting debt).
//! - A refusal is remembered until its `Retry-After` runs out, so an account over its limit
//!   costs Redis one call per refill interval and replica, not one per request.
//!
//! Redis unreachable: the caller falls back to the per-process limiter (`None`), as before.

use std::sync::Arc;
use std::time::{Duration, Instant};

use dashmap::DashMap;
use domain::UserId;

use crate::shared_limits::{Grant, SharedLimiter};

/// The longest a reserved cell may wait to be spent; past it the cell goes back to Redis.
/// It bounds the over-admission of any minute to `LEASE / 1 minute` of the limit.
pub const LEASE: Duration = Duration::from_millis(1000);

/// The most cells one reservation takes: 1% of the limit, at most 1024.
fn largest_batch(per_minute: u32) -> u32 {
    (per_minute / 100).clamp(1, 1024)
}

/// Reservations closer together than this double the batch; further apart than
/// [`SLOW_REFILL`], they halve it. The batch so lasts a tenth of a second to a second.
const FAST_REFILL: Duration = Duration::from_millis(100);
const SLOW_REFILL: Duration = Duration::from_secs(1);

/// One account's quota as this replica holds it.
#[derive(Debug)]
struct Lease {
    /// Cells reserved from Redis and not spent yet.
    cells: u32,
    /// When the oldest of `cells` must be spent by; past it they go back.
    expires: Instant,
    /// What Redis had left after this replica's last reservation.
    left_in_redis: u32,
    /// How many cells the next reservation asks for.
    batch: u32,
    /// When the last reservation was asked for.
    reserved_at: Option<Instant>,
    /// A reservation in the background is on its way.
    refilling: bool,
    /// Redis refused: every request is refused until then.
    refused_until: Option<Instant>,
}

impl Lease {
    fn new(now: Instant) -> Self {
        Self {
            cells: 0,
            expires: now,
            left_in_redis: 0,
            batch: 1,
            reserved_at: None,
            refilling: false,
            refused_until: None,
        }
    }

    /// What a request of this account does now.
    fn step(&mut self, now: Instant) -> Step {
        let returned = self.hand_back_expired(now);
        if self.cells > 0 {
            self.cells -= 1;
            let refill = (!self.refilling
                && self.left_in_redis > 0
                && self.cells <= self.batch / 2)
                .then(|| {
                    self.refilling = true;
                    self.batch
                });
            return Step::Spent {
                remaining: self.left_in_redis.saturating_add(self.cells),
                refill,
            };
        }
        if returned == 0 {
            if let Some(until) = self.refused_until {
                if now < until {
                    return Step::Refused(until - now);
                }
            }
        }
        self.refused_until = None;
        // A refill already on its way brings the batch; this request asks for itself only.
        let wanted = if self.refilling { 1 } else { self.batch };
        Step::Ask { returned, wanted }
    }

    /// Takes the cells out whose lease ran out: they are to go back to Redis.
    fn hand_back_expired(&mut self, now: Instant) -> u32 {
        if self.cells > 0 && now >= self.expires {
            std::mem::take(&mut self.cells)
        } else {
            0
        }
    }

    /// Adds what Redis granted to a reservation asked for at `asked_at`, and sizes the next.
    fn add(&mut self, grant: Grant, wanted: u32, asked_at: Instant, largest: u32) {
        let since_last = self
            .reserved_at
            .map(|at| asked_at.saturating_duration_since(at));
        if grant.granted >= wanted && since_last.is_some_and(|since| since < FAST_REFILL) {
            self.batch = self.batch.saturating_mul(2);
        } else if since_last.is_some_and(|since| since > SLOW_REFILL) {
            self.batch /= 2;
        }
        self.batch = self.batch.min(largest).min(grant.remaining / 4).max(1);
        self.reserved_at = Some(asked_at);
        self.left_in_redis = grant.remaining;
        if grant.granted > 0 {
            // Cells already held keep their earlier deadline: none outlives its own lease.
            let deadline = asked_at + LEASE;
            self.expires = if self.cells > 0 {
                self.expires.min(deadline)
            } else {
                deadline
            };
            self.cells = self.cells.saturating_add(grant.granted);
        }
    }
}

/// What one request does, decided under the account's lock.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    /// A reserved cell was spent; `refill` cells are to be reserved in the background.
    Spent { remaining: u32, refill: Option<u32> },
    /// Redis refused a moment ago and the wait has not run out.
    Refused(Duration),
    /// No cell here: hand `returned` back and ask Redis for `wanted`, waiting for the answer.
    Ask { returned: u32, wanted: u32 },
}

/// The account quotas of this replica; see the module documentation.
pub struct SharedQuota {
    redis: Arc<SharedLimiter>,
    per_minute: u32,
    largest: u32,
    leases: DashMap<UserId, Lease>,
}

impl SharedQuota {
    /// `per_minute` requests per account (more than 0), shared through `redis`.
    pub fn new(redis: Arc<SharedLimiter>, per_minute: u32) -> Self {
        Self {
            redis,
            per_minute,
            largest: largest_batch(per_minute),
            leases: DashMap::new(),
        }
    }

    /// The same quota with reservations of at most `largest` cells (tests use it to batch
    /// under small limits).
    pub fn with_largest_batch(mut self, largest: u32) -> Self {
        self.largest = largest.max(1);
        self
    }

    /// The limit, a minute.
    pub fn per_minute(&self) -> u32 {
        self.per_minute
    }

    /// Counts a request of `user`: `Ok(remaining)`, `Err(wait)` when over the limit, or `None`
    /// when Redis was needed and did not answer (the caller then limits locally).
    pub async fn take(self: &Arc<Self>, user: UserId) -> Option<Result<u32, Duration>> {
        let step = self
            .leases
            .entry(user)
            .or_insert_with(|| Lease::new(Instant::now()))
            .step(Instant::now());
        match step {
            Step::Spent { remaining, refill } => {
                if let Some(wanted) = refill {
                    let quota = self.clone();
                    actix_web::rt::spawn(async move { quota.refill(user, wanted).await });
                }
                Some(Ok(remaining))
            }
            Step::Refused(wait) => Some(Err(wait)),
            Step::Ask { returned, wanted } => {
                let asked_at = Instant::now();
                let grant = self.reserve(user, returned, wanted).await?;
                let mut lease = self
                    .leases
                    .entry(user)
                    .or_insert_with(|| Lease::new(asked_at));
                lease.add(grant, wanted, asked_at, self.largest);
                if lease.cells > 0 {
                    lease.cells -= 1;
                    Some(Ok(lease.left_in_redis.saturating_add(lease.cells)))
                } else {
                    lease.refused_until = Some(asked_at + grant.retry_after);
                    Some(Err(grant.retry_after))
                }
            }
        }
    }

    /// Reserves `wanted` cells of `user` ahead of need.
    async fn refill(&self, user: UserId, wanted: u32) {
        let asked_at = Instant::now();
        let grant = self.reserve(user, 0, wanted).await;
        if let Some(mut lease) = self.leases.get_mut(&user) {
            lease.refilling = false;
            if let Some(grant) = grant {
                lease.add(grant, wanted, asked_at, self.largest);
            }
        } else if let Some(grant) = grant.filter(|grant| grant.granted > 0) {
            // The lease was forgotten meanwhile: the cells go straight back.
            self.reserve(user, grant.granted, 0).await;
        }
    }

    async fn reserve(&self, user: UserId, returned: u32, wanted: u32) -> Option<Grant> {
        self.redis
            .reserve(
                &format!("account:{user}"),
                self.per_minute,
                returned,
                wanted,
            )
            .await
    }

    /// Hands back to Redis every cell whose lease ran out, and forgets accounts idle for a
    /// minute. Run it often (a quarter of a second): a cell's wait to go back is [`LEASE`]
    /// plus that period.
    pub async fn hand_back_expired(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        self.leases.retain(|user, lease| {
            let returned = lease.hand_back_expired(now);
            if returned > 0 {
                expired.push((*user, returned));
            }
            let idle = lease
                .reserved_at
                .is_none_or(|at| now.saturating_duration_since(at) > Duration::from_secs(60));
            lease.cells > 0 || lease.refilling || !idle
        });
        for (user, returned) in expired {
            self.reserve(user, returned, 0).await;
        }
    }

    /// Hands every reserved cell back (at shutdown, so that the other replicas get them).
    pub async fn hand_back_all(&self) {
        self.redis.reconnect_from_here();
        let held: Vec<(UserId, u32)> = self
            .leases
            .iter_mut()
            .filter_map(|mut lease| {
                let cells = std::mem::take(&mut lease.cells);
                (cells > 0).then(|| (*lease.key(), cells))
            })
            .collect();
        for (user, returned) in held {
            self.reserve(user, returned, 0).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grant(granted: u32, remaining: u32) -> Grant {
        Grant {
            granted,
            retry_after: Duration::ZERO,
            remaining,
        }
    }

    #[test]
    fn a_new_account_asks_redis_for_one_cell() {
        let now = Instant::now();
        let mut lease = Lease::new(now);
        assert_eq!(
            lease.step(now),
            Step::Ask {
                returned: 0,
                wanted: 1
            }
        );
    }

    #[test]
    fn reservations_in_quick_succession_double_the_batch_up_to_the_largest() {
        let now = Instant::now();
        let mut lease = Lease::new(now);
        let mut batches = Vec::new();
        for i in 0..8 {
            let wanted = lease.batch;
            lease.add(
                grant(wanted, 1_000_000),
                wanted,
                now + Duration::from_millis(i * 10),
                16,
            );
            batches.push(lease.batch);
        }
        assert_eq!(batches, [1, 2, 4, 8, 16, 16, 16, 16]);
    }

    #[test]
    fn the_batch_halves_when_reservations_are_far_apart_and_shrinks_near_the_limit() {
        let now = Instant::now();
        let mut lease = Lease::new(now);
        lease.batch = 64;
        lease.reserved_at = Some(now);
        lease.add(grant(64, 1_000_000), 64, now + Duration::from_secs(2), 1024);
        assert_eq!(lease.batch, 32);
        lease.add(grant(32, 40), 32, now + Duration::from_millis(2010), 1024);
        assert_eq!(lease.batch, 10, "a quarter of what Redis has left");
        lease.add(grant(10, 2), 10, now + Duration::from_millis(2020), 1024);
        assert_eq!(lease.batch, 1, "at the limit, one cell a request");
    }

    #[test]
    fn cells_are_spent_locally_and_the_next_batch_is_asked_for_at_half() {
        let now = Instant::now();
        let mut lease = Lease::new(now);
        lease.batch = 8;
        lease.add(grant(8, 500), 8, now, 1024);
        let steps: Vec<Step> = (0..5).map(|_| lease.step(now)).collect();
        assert_eq!(
            steps,
            [
                Step::Spent {
                    remaining: 507,
                    refill: None
                },
                Step::Spent {
                    remaining: 506,
                    refill: None
                },
                Step::Spent {
                    remaining: 505,
                    refill: None
                },
                Step::Spent {
                    remaining: 504,
                    refill: Some(8)
                },
                Step::Spent {
                    remaining: 503,
                    refill: None
                },
            ],
            "one refill at a time"
        );
    }

    #[test]
    fn cells_past_their_lease_are_handed_back_instead_of_spent() {
        let now = Instant::now();
        let mut lease = Lease::new(now);
        lease.batch = 4;
        lease.add(grant(4, 500), 4, now, 1024);
        assert_eq!(
            lease.step(now + LEASE),
            Step::Ask {
                returned: 4,
                wanted: 4
            }
        );
    }

    #[test]
    fn a_later_grant_does_not_extend_the_lease_of_cells_already_held() {
        let now = Instant::now();
        let mut lease = Lease::new(now);
        lease.add(grant(4, 500), 4, now, 1024);
        lease.add(grant(4, 500), 4, now + Duration::from_millis(600), 1024);
        assert_eq!(lease.cells, 8);
        assert_eq!(lease.expires, now + LEASE);
    }

    #[test]
    fn a_refusal_is_remembered_until_its_wait_runs_out() {
        let now = Instant::now();
        let mut lease = Lease::new(now);
        lease.refused_until = Some(now + Duration::from_millis(300));
        assert_eq!(
            lease.step(now + Duration::from_millis(100)),
            Step::Refused(Duration::from_millis(200))
        );
        assert_eq!(
            lease.step(now + Duration::from_millis(300)),
            Step::Ask {
                returned: 0,
                wanted: 1
            }
        );
    }

    /// Replicas of one quota on the local Redis, under a prefix no other test uses; `None`
    /// (the test is skipped) without a Redis.
    fn replicas(per_minute: u32, largest: u32, n: usize) -> Option<Vec<Arc<SharedQuota>>> {
        let here = std::net::TcpStream::connect("127.0.0.1:6379").is_ok();
        if !here {
            assert!(
                std::env::var("SIP_TRUNKS_REQUIRE_REDIS").is_err(),
                "Redis is required here"
            );
            eprintln!("no Redis on 127.0.0.1:6379: skipped");
            return None;
        }
        let prefix = format!(
            "test:{}:quota:{}:",
            std::process::id(),
            rand::random::<u64>()
        );
        Some(
            (0..n)
                .map(|_| {
                    let redis = SharedLimiter::new("redis://127.0.0.1:6379/0", &prefix)
                        .unwrap()
                        .with_answer_timeout(Duration::from_secs(2));
                    Arc::new(
                        SharedQuota::new(Arc::new(redis), per_minute).with_largest_batch(largest),
                    )
                })
                .collect(),
        )
    }

    fn user(id: i64) -> UserId {
        UserId::new(id).unwrap()
    }

    /// Admits `requests` of `user` on `quota`, lets the refill they start land, and gives the
    /// cells `quota` then holds.
    async fn spend(quota: &Arc<SharedQuota>, user: UserId, requests: u32) -> u32 {
        for _ in 0..requests {
            quota.take(user).await.unwrap().unwrap();
        }
        actix_web::rt::time::sleep(Duration::from_millis(50)).await;
        quota.leases.get(&user).unwrap().cells
    }

    /// Takes cells of `user` on `quota` until it refuses; how many it admitted.
    async fn take_until_refused(quota: &Arc<SharedQuota>, user: UserId) -> u32 {
        let mut admitted = 0;
        while quota.take(user).await.unwrap().is_ok() {
            admitted += 1;
        }
        admitted
    }

    #[actix_rt::test]
    async fn three_replicas_taken_round_robin_admit_at_least_n_and_at_most_two_percent_more() {
        const N: u32 = 6000;
        let Some(quotas) = replicas(N, largest_batch(N), 3) else {
            return;
        };
        let started = Instant::now();
        let mut admitted = 0_u32;
        let mut refused = 0_u32;
        for i in 0..3 * N as usize {
            match quotas[i % 3].take(user(1)).await.expect("redis answers") {
                Ok(_) => admitted += 1,
                Err(_) => refused += 1,
            }
        }
        let elapsed = started.elapsed();
        // What one shared cell grants over the run: the minute's burst and the refill since.
        let refilled = (f64::from(N) * elapsed.as_secs_f64() / 60.0).ceil() as u32;
        let slack = (N / 50).max(3);
        eprintln!("admitted {admitted}, refused {refused} in {elapsed:?} (refill {refilled})");
        assert!(admitted >= N, "admitted {admitted} of {N}");
        assert!(
            admitted <= N + refilled + slack,
            "admitted {admitted}: more than {N} + {refilled} refilled + {slack}"
        );
    }

    #[actix_rt::test]
    async fn an_account_refused_on_one_replica_is_admitted_on_another_once_retry_after_passed() {
        // 600 a minute: a cell every 100 ms.
        let Some(quotas) = replicas(600, 8, 3) else {
            return;
        };
        let mut wait = None;
        for i in 0..3000 {
            if let Err(retry_after) = quotas[i % 3].take(user(2)).await.unwrap() {
                wait = Some(retry_after);
                break;
            }
        }
        let wait = wait.expect("the quota runs out");
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // The others may still hold a few cells: spend them, so only the refill can admit.
        for quota in &quotas {
            take_until_refused(quota, user(2)).await;
        }
        actix_web::rt::time::sleep(Duration::from_millis(250)).await;
        let admitted = quotas[1].take(user(2)).await.unwrap();
        assert!(admitted.is_ok(), "{admitted:?}");
    }

    #[actix_rt::test]
    async fn cells_not_spent_within_their_lease_go_back_to_redis_for_the_others() {
        const N: u32 = 100;
        let Some(quotas) = replicas(N, 16, 2) else {
            return;
        };
        let (holder, other) = (&quotas[0], &quotas[1]);
        let held = spend(holder, user(3), 20).await;
        assert!(held > 0, "the holder keeps some cells");
        let before = take_until_refused(other, user(3)).await;
        assert!(
            before + 20 + held <= N + 1,
            "{before} + 20 + {held} cells out of {N}"
        );
        actix_web::rt::time::sleep(LEASE).await;
        holder.hand_back_expired().await;
        assert_eq!(holder.leases.get(&user(3)).unwrap().cells, 0);
        // Past the refusal the other remembers, the handed-back cells are there to take.
        actix_web::rt::time::sleep(Duration::from_millis(700)).await;
        let after = take_until_refused(other, user(3)).await;
        assert!(after >= held, "{after} taken after {held} went back");
    }

    #[actix_rt::test]
    async fn a_replica_stopping_hands_its_cells_back_at_once() {
        const N: u32 = 100;
        let Some(quotas) = replicas(N, 16, 2) else {
            return;
        };
        let (stopping, other) = (&quotas[0], &quotas[1]);
        assert!(spend(stopping, user(4), 20).await > 0);
        stopping.hand_back_all().await;
        let taken = take_until_refused(other, user(4)).await;
        assert!(
            (N - 20..=N - 20 + 1).contains(&taken),
            "{taken} taken: all but the 20 spent"
        );
    }
}
