//! Following the writes of other processes on PostgreSQL: a thread per process `LISTEN`s on
//! `sip_trunks_changes`, which triggers fill in the writing transaction (migration 000006),
//! and hands every change to a callback that drops what the process caches of it.
//!
//! The connection is its own (not the pool's), opened through the same exit gate as the pool's
//! (see `connection`). It is polled every few milliseconds without a round trip (libpq reads
//! what arrived), and pinged every second, so a dead server is noticed within a second. While
//! it is down the feed says so ([`ChangeFeed::is_live`]) and retries with back-off; after every
//! (re)connection the callback gets [`Change::Everything`], since what happened while nobody
//! listened is unknown.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use diesel::connection::SimpleConnection;
use diesel::PgConnection;
use domain::{ApiKeyId, UserId};

use super::connection::establish_postgres;

/// The channel the triggers notify on.
pub const CHANNEL: &str = "sip_trunks_changes";

/// How often arrived notifications are read.
const POLL: Duration = Duration::from_millis(5);

/// How often the connection is checked with a round trip.
const PING: Duration = Duration::from_secs(1);

/// The longest wait between two connection attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// A write some process committed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// A trunk of this user was created, changed or deleted.
    Trunks(UserId),
    /// This API key was revoked.
    KeyRevoked(ApiKeyId),
    /// Unknown changes: drop everything cached.
    Everything,
}

impl Change {
    /// Reads a notification's payload (`u:<id>`, `k:<id>`); anything else is `Everything`.
    pub fn parse(payload: &str) -> Self {
        let id = |rest: &str| rest.parse::<i64>().ok();
        match payload.split_once(':') {
            Some(("u", rest)) => id(rest)
                .and_then(UserId::new)
                .map_or(Self::Everything, Self::Trunks),
            Some(("k", rest)) => id(rest)
                .and_then(ApiKeyId::new)
                .map_or(Self::Everything, Self::KeyRevoked),
            _ => Self::Everything,
        }
    }
}

/// The listening thread; stopped when dropped.
pub struct ChangeFeed {
    live: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ChangeFeed {
    /// Starts following `url`'s notifications; `on_change` runs on the feed's thread.
    pub(crate) fn start(url: String, on_change: Box<dyn Fn(Change) + Send>) -> Self {
        let live = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (live, stop) = (live.clone(), stop.clone());
            std::thread::Builder::new()
                .name("change-feed".into())
                .spawn(move || follow(&url, &*on_change, &live, &stop))
                .ok()
        };
        Self { live, stop, thread }
    }

    /// True while the feed is connected and listening; false while it reconnects (caches
    /// then rely on their TTL alone).
    pub fn is_live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }
}

impl Drop for ChangeFeed {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn follow(url: &str, on_change: &dyn Fn(Change), live: &AtomicBool, stop: &AtomicBool) {
    let mut backoff = Duration::from_millis(100);
    let mut was_live = true;
    while !stop.load(Ordering::Relaxed) {
        match listen(url) {
            Ok(mut conn) => {
                backoff = Duration::from_millis(100);
                on_change(Change::Everything);
                live.store(true, Ordering::Relaxed);
                if !was_live {
                    log::info!("change feed: listening again");
                }
                was_live = true;
                let reason = relay(&mut conn, on_change, stop);
                live.store(false, Ordering::Relaxed);
                if let Some(reason) = reason {
                    log::warn!("change feed: lost its connection ({reason}); caches fall back to their TTL");
                    was_live = false;
                }
            }
            Err(reason) => {
                if was_live {
                    log::warn!(
                        "change feed: cannot listen ({reason}); caches fall back to their TTL"
                    );
                }
                was_live = false;
                let until = Instant::now() + backoff;
                while Instant::now() < until && !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(POLL * 4);
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
}

fn listen(url: &str) -> Result<PgConnection, String> {
    let mut conn = establish_postgres(url).map_err(|error| error.to_string())?;
    conn.batch_execute(&format!("LISTEN {CHANNEL}"))
        .map_err(|error| error.to_string())?;
    Ok(conn)
}

/// Hands notifications on until the connection fails (`Some(reason)`) or the feed stops.
fn relay(conn: &mut PgConnection, on_change: &dyn Fn(Change), stop: &AtomicBool) -> Option<String> {
    let mut pinged = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        for notification in conn.notifications_iter() {
            match notification {
                Ok(notification) => on_change(Change::parse(&notification.payload)),
                Err(error) => return Some(error.to_string()),
            }
        }
        if pinged.elapsed() >= PING {
            if let Err(error) = conn.batch_execute("SELECT 1") {
                return Some(error.to_string());
            }
            pinged = Instant::now();
        }
        std::thread::sleep(POLL);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_name_a_user_or_a_key_and_anything_else_means_everything() {
        assert_eq!(
            Change::parse("u:42"),
            Change::Trunks(UserId::new(42).unwrap())
        );
        assert_eq!(
            Change::parse("k:7"),
            Change::KeyRevoked(ApiKeyId::new(7).unwrap())
        );
        for odd in ["", "u:", "u:x", "k:-1", "z:1", "u:0"] {
            assert_eq!(Change::parse(odd), Change::Everything, "{odd}");
        }
    }
}
