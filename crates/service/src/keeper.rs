//! Leases kept alive while their holder works. A lease is short ([`crate::provisioning::LEASE`])
//! so that the work of a holder that died is taken over soon; a holder that lives renews it
//! every third of its length, in a task of its own, for as long as the work lasts (a slow
//! voice infrastructure may take longer than one lease).
//!
//! The holder asks [`KeptLease::held`] before each step that makes something on the
//! infrastructure: it is false once a renewal found the lease taken over, and also when no
//! renewal has succeeded for a while (storage unreachable), because then another holder may
//! take the lease over at any moment. Never creating a leg then is what keeps one leg per
//! trunk and kind.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::Instant;

use domain::{RepositoryError, Timestamp};

/// What a renewal says: held (until the time asked for), or lost.
pub type Renewal = Result<bool, RepositoryError>;

/// A lease renewed in the background until dropped.
pub struct KeptLease {
    state: Arc<Mutex<KeeperState>>,
    task: tokio::task::JoinHandle<()>,
}

struct KeeperState {
    /// Until when the lease is surely held (the last successful renewal's time plus its
    /// length, on this process's clock, less a margin).
    held_until: Instant,
    lost: bool,
}

impl KeptLease {
    /// Keeps a lease of `length`, taken just now, by calling `renew(until)` every third of
    /// `length`. `renew` answers `Ok(true)` when the lease is held until `until`, `Ok(false)`
    /// or `Err(LeaseLost)` when it is another's; any other error is retried at the next turn.
    pub fn start<F, Fut>(length: Duration, renew: F) -> Self
    where
        F: Fn(Timestamp) -> Fut + Send + 'static,
        Fut: Future<Output = Renewal> + Send,
    {
        let state = Arc::new(Mutex::new(KeeperState {
            held_until: surely_held_until(Instant::now(), length),
            lost: false,
        }));
        let kept = state.clone();
        let task = tokio::spawn(async move {
            // One line per kept lease and outage, however many renewals fail.
            let mut warned = false;
            loop {
                tokio::time::sleep(length / 3).await;
                let asked = Instant::now();
                let until = Timestamp::from_unix_micros(
                    Timestamp::now().unix_micros()
                        + i64::try_from(length.as_micros()).unwrap_or(i64::MAX / 2),
                )
                .unwrap_or_else(Timestamp::now);
                let outcome = renew(until).await;
                let mut state = lock(&kept);
                match outcome {
                    Ok(true) => {
                        state.held_until = surely_held_until(asked, length);
                        warned = false;
                    }
                    Ok(false) | Err(RepositoryError::LeaseLost) => {
                        state.lost = true;
                        return;
                    }
                    Err(error) if !warned => {
                        warned = true;
                        log::warn!("renewing a provisioning lease failed: {error}");
                    }
                    Err(_) => {}
                }
            }
        });
        Self { state, task }
    }

    /// True while the lease is surely this holder's: no renewal found it lost, and the last
    /// successful one is recent enough.
    pub fn held(&self) -> bool {
        let state = lock(&self.state);
        !state.lost && Instant::now() < state.held_until
    }
}

impl Drop for KeptLease {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A renewal asked at `asked` holds the lease until `asked + length` on the database's view;
/// a fifth of the length is kept back for the clocks of the replicas, which may differ.
fn surely_held_until(asked: Instant, length: Duration) -> Instant {
    asked + length - length / 5
}

fn lock(state: &Mutex<KeeperState>) -> std::sync::MutexGuard<'_, KeeperState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_lease_is_renewed_every_third_of_its_length_while_kept() {
        let renewals = Arc::new(AtomicU32::new(0));
        let counted = renewals.clone();
        let kept = KeptLease::start(Duration::from_secs(3), move |_| {
            counted.fetch_add(1, Ordering::Relaxed);
            async { Ok(true) }
        });
        tokio::time::sleep(Duration::from_millis(10_500)).await;
        assert_eq!(renewals.load(Ordering::Relaxed), 10);
        assert!(kept.held());
        drop(kept);
        tokio::time::sleep(Duration::from_secs(5)).await;
        assert_eq!(
            renewals.load(Ordering::Relaxed),
            10,
            "dropped: no more renewals"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_found_taken_over_is_no_longer_held() {
        let kept = KeptLease::start(Duration::from_secs(3), |_| async {
            Err(RepositoryError::LeaseLost)
        });
        assert!(kept.held());
        tokio::time::sleep(Duration::from_millis(1_100)).await;
        assert!(!kept.held());
    }

    #[tokio::test(start_paused = true)]
    async fn a_lease_that_cannot_be_renewed_stops_being_held_before_it_runs_out() {
        let kept = KeptLease::start(Duration::from_secs(5), |_| async {
            Err(RepositoryError::Unavailable("down".into()))
        });
        tokio::time::sleep(Duration::from_millis(3_900)).await;
        assert!(kept.held());
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!kept.held(), "4 s of a 5 s lease passed without a renewal");
    }
}
