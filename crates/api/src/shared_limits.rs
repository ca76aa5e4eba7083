//! Rate limits shared by every replica, in Redis (`--redis-url`): one GCRA cell per account
//! and per client address, updated by one Lua script (atomic: no read-modify-write between
//! replicas), on Redis's own clock (`TIME`), so replicas with skewed clocks agree. The script
//! takes a cost: [`SharedLimiter::reserve`] hands back unspent cells and reserves a batch in
//! one step ([`crate::shared_quota`] spends it locally); [`SharedLimiter::take`] is one cell.
//!
//! The algorithm is `governor`'s (the per-process limiter): `per_minute` cells a minute, a
//! burst of the whole minute's worth, `remaining` and the wait until the next cell.
//!
//! Redis unreachable: the request is served on the per-process limits instead (fail open;
//! logged once per outage; `/readyz` says `"rate_limits":"local (redis unreachable)"`). Every
//! call is bounded (250 ms to connect, [`DEFAULT_ANSWER_TIMEOUT`] for an answer: a slow Redis
//! counts as down), and for a second after a failure no request asks Redis at all: an outage
//! costs one request a second that wait, no more.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use redis::aio::{ConnectionManager, ConnectionManagerConfig};

/// The GCRA step with a cost. KEYS[1]: the cell; ARGV[1]: the period (ms); ARGV[2]: cells per
/// period; ARGV[3]: cells handed back (reserved earlier and not spent); ARGV[4]: cells wanted.
/// Hands the returned cells back first, then grants as many of those wanted as are free.
/// Gives {cells granted, wait before the next cell when none was (ms), cells left}.
///
/// `free` gets a millionth of a cell of slack: `period / interval` is not always exactly
/// `limit` in floating point, and the stored time is rounded to a microsecond.
const GCRA: &str = r"
local period = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
local returned = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local interval = period / limit
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000 + tonumber(clock[2]) / 1000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0') - returned * interval
if tat < now then tat = now end
local free = math.floor((now + period - tat) / interval + 0.000001)
local granted = math.max(0, math.min(wanted, free))
tat = tat + granted * interval
if tat > now then
  redis.call('SET', KEYS[1], string.format('%.3f', tat), 'PX', math.ceil(tat - now))
else
  redis.call('DEL', KEYS[1])
end
if granted == 0 and wanted > 0 then
  return {0, math.ceil(tat + interval - period - now), 0}
end
return {granted, 0, free - granted}
";

/// How long a connection attempt may take.
const TIMEOUT: Duration = Duration::from_millis(250);

/// How long a request waits for Redis's answer by default (`REDIS_TIMEOUT_MS`). Measured
/// before it existed: at 200 ms per answer, every request paid 200 ms.
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_millis(25);

/// The least time between two attempts to reconnect.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// What Redis said of one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Counted and let through.
    pub allowed: bool,
    /// When refused, the wait before the next cell.
    pub retry_after: Duration,
    /// When allowed, the cells left at once.
    pub remaining: u32,
}

/// What Redis granted of a reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    /// Cells reserved: from 0 to the number wanted.
    pub granted: u32,
    /// When none was granted, the wait before the next cell.
    pub retry_after: Duration,
    /// Cells still free after the grant.
    pub remaining: u32,
}

/// The shared limiter; see the module documentation.
pub struct SharedLimiter {
    client: redis::Client,
    script: redis::Script,
    connection: Mutex<Option<ConnectionManager>>,
    last_attempt: Mutex<Option<Instant>>,
    /// When a call last failed: for a second after, requests do not wait on Redis.
    last_failure: Mutex<Option<Instant>>,
    reachable: AtomicBool,
    prefix: String,
    answer_timeout: Duration,
}

impl SharedLimiter {
    /// A limiter on the Redis at `url` (`redis://host:port/db`); the keys start with
    /// `prefix` (`sip-trunks:`). It connects at the first request, so a replica starts
    /// while Redis is down.
    pub fn new(url: &str, prefix: &str) -> Result<Self, String> {
        let client = redis::Client::open(url).map_err(|error| format!("REDIS_URL: {error}"))?;
        Ok(Self {
            client,
            script: redis::Script::new(GCRA),
            connection: Mutex::new(None),
            last_attempt: Mutex::new(None),
            last_failure: Mutex::new(None),
            reachable: AtomicBool::new(true),
            prefix: prefix.to_owned(),
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
        })
    }

    /// The same limiter waiting at most `timeout` for an answer; past it the request is
    /// limited by this process alone.
    pub fn with_answer_timeout(mut self, timeout: Duration) -> Self {
        self.answer_timeout = timeout;
        self
    }

    /// False after a call failed, until one succeeds.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::Relaxed)
    }

    /// Takes a cell of `key` under `per_minute`; `None` when Redis did not answer in time
    /// (the caller then limits locally).
    pub async fn take(&self, key: &str, per_minute: u32) -> Option<Decision> {
        let grant = self.reserve(key, per_minute, 0, 1).await?;
        Some(Decision {
            allowed: grant.granted == 1,
            retry_after: grant.retry_after,
            remaining: grant.remaining,
        })
    }

    /// Hands `returned` cells of `key` back and reserves up to `wanted` more, under
    /// `per_minute`, in one atomic step; `None` when Redis did not answer in time (then the
    /// returned cells stay spent: the error is on the side of admitting less).
    pub async fn reserve(
        &self,
        key: &str,
        per_minute: u32,
        returned: u32,
        wanted: u32,
    ) -> Option<Grant> {
        if lock(&self.last_failure).is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
            return None;
        }
        let mut connection = self.connection().await?;
        let mut invocation = self.script.key(format!("{}{key}", self.prefix));
        invocation
            .arg(60_000_u64)
            .arg(per_minute)
            .arg(returned)
            .arg(wanted);
        let call = invocation.invoke_async::<(i64, i64, i64)>(&mut connection);
        match actix_web::rt::time::timeout(self.answer_timeout, call).await {
            Ok(Ok((granted, wait_ms, remaining))) => {
                self.mark(true, "");
                Some(Grant {
                    granted: u32::try_from(granted).unwrap_or(0),
                    retry_after: Duration::from_millis(u64::try_from(wait_ms).unwrap_or(0)),
                    remaining: u32::try_from(remaining).unwrap_or(0),
                })
            }
            Ok(Err(error)) => {
                self.mark(false, &error.to_string());
                None
            }
            Err(_) => {
                self.mark(false, "no answer in time");
                None
            }
        }
    }

    /// Drops the connection, so that the next call connects anew on the caller's runtime. At
    /// shutdown the runtime that made the connection (a worker's) has stopped, and with it
    /// the connection's driver.
    pub fn reconnect_from_here(&self) {
        *lock(&self.connection) = None;
        *lock(&self.last_attempt) = None;
        *lock(&self.last_failure) = None;
    }

    async fn connection(&self) -> Option<ConnectionManager> {
        if let Some(connection) = lock(&self.connection).clone() {
            return Some(connection);
        }
        {
            let mut last = lock(&self.last_attempt);
            if last.is_some_and(|at| at.elapsed() < RECONNECT_EVERY) {
                return None;
            }
            *last = Some(Instant::now());
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(TIMEOUT)
            .set_response_timeout(TIMEOUT.max(self.answer_timeout))
            .set_number_of_retries(1);
        let connect = ConnectionManager::new_with_config(self.client.clone(), config);
        match actix_web::rt::time::timeout(TIMEOUT * 2, connect).await {
            Ok(Ok(connection)) => {
                *lock(&self.connection) = Some(connection.clone());
                Some(connection)
            }
            Ok(Err(error)) => {
                self.mark(false, &error.to_string());
                None
            }
            Err(_) => {
                self.mark(false, "no connection in time");
                None
            }
        }
    }

    /// Records the outcome; says so in the log when reachability changes.
    fn mark(&self, reachable: bool, why: &str) {
        *lock(&self.last_failure) = (!reachable).then(Instant::now);
        let was = self.reachable.swap(reachable, Ordering::Relaxed);
        match (was, reachable) {
            (true, false) => log::warn!(
                "redis unreachable ({why}): rate limits are per process until it answers"
            ),
            (false, true) => log::info!("redis answers again: rate limits are shared"),
            _ => {}
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prefix no other test uses.
    fn prefix(name: &str) -> String {
        format!(
            "test:{}:{name}:{}:",
            std::process::id(),
            rand::random::<u64>()
        )
    }

    fn redis_here() -> bool {
        std::net::TcpStream::connect("127.0.0.1:6379").is_ok()
            || std::env::var("SIP_TRUNKS_REQUIRE_REDIS").is_ok()
    }

    #[actix_rt::test]
    async fn a_cell_admits_the_minutes_worth_then_says_how_long_to_wait() {
        if !redis_here() {
            eprintln!("no Redis on 127.0.0.1:6379: skipped");
            return;
        }
        let limiter = SharedLimiter::new("redis://127.0.0.1:6379/0", &prefix("gcra")).unwrap();
        let mut remaining = Vec::new();
        for _ in 0..3 {
            let decision = limiter.take("account:1", 3).await.expect("redis answers");
            assert!(decision.allowed);
            remaining.push(decision.remaining);
        }
        assert_eq!(remaining, [2, 1, 0]);
        let refused = limiter.take("account:1", 3).await.unwrap();
        assert!(!refused.allowed);
        assert!(
            refused.retry_after > Duration::from_secs(15)
                && refused.retry_after <= Duration::from_secs(20),
            "{refused:?}"
        );
        assert!(
            limiter.take("account:2", 3).await.unwrap().allowed,
            "cells are per key"
        );
        assert!(limiter.reachable());
    }

    #[actix_rt::test]
    async fn an_unreachable_redis_answers_none_at_once_and_is_not_asked_again_for_a_second() {
        let limiter = SharedLimiter::new("redis://127.0.0.1:1/0", &prefix("down")).unwrap();
        let started = Instant::now();
        assert_eq!(limiter.take("account:1", 3).await, None);
        assert!(!limiter.reachable());
        assert_eq!(limiter.take("account:1", 3).await, None);
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
    }

    /// A proxy to the local Redis that holds each of Redis's answers for `delay`.
    async fn slow_redis(delay: Duration) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        actix_web::rt::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(redis) = tokio::net::TcpStream::connect("127.0.0.1:6379").await else {
                    return;
                };
                let (mut client_in, mut client_out) = client.into_split();
                let (mut redis_in, mut redis_out) = redis.into_split();
                actix_web::rt::spawn(async move {
                    let _ = tokio::io::copy(&mut client_in, &mut redis_out).await;
                });
                actix_web::rt::spawn(async move {
                    let mut buffer = vec![0_u8; 16 * 1024];
                    while let Ok(read @ 1..) = redis_in.read(&mut buffer).await {
                        actix_web::rt::time::sleep(delay).await;
                        if client_out.write_all(&buffer[..read]).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        format!("redis://{address}/0")
    }

    #[actix_rt::test]
    async fn a_redis_slower_than_the_answer_timeout_leaves_the_request_to_the_local_limits() {
        if !redis_here() {
            eprintln!("no Redis on 127.0.0.1:6379: skipped");
            return;
        }
        let url = slow_redis(Duration::from_millis(200)).await;
        // Waiting longer than Redis takes, the answer comes through the proxy...
        let patient = SharedLimiter::new(&url, &prefix("slow"))
            .unwrap()
            .with_answer_timeout(Duration::from_secs(2));
        assert!(patient.take("account:1", 3).await.is_some());
        // ...and with the default bound, it does not: the request is limited locally.
        let bounded = SharedLimiter::new(&url, &prefix("slow")).unwrap();
        assert_eq!(bounded.answer_timeout, DEFAULT_ANSWER_TIMEOUT);
        assert_eq!(bounded.take("account:1", 3).await, None);
        assert!(!bounded.reachable());
    }
}
