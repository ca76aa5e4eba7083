//! The number-taken budget: how many "already connected to another SIP trunk" answers one
//! account may get in an hour, so that a tenant cannot map the numbers other tenants hold by
//! probing creates. The decision is pure; the answers given are kept by a
//! [`NumberConflictLog`] (in the database, so every replica and every restart sees them).

use std::time::Duration;

use crate::{RepositoryResult, Timestamp, UserId};

/// The window the budget counts in.
pub const NUMBER_CONFLICT_WINDOW: Duration = Duration::from_secs(3600);

/// At most `per_hour` number-taken answers per account in any hour.
///
/// ```
/// use std::time::Duration;
/// use domain::{NumberConflictBudget, Timestamp};
///
/// let budget = NumberConflictBudget::per_hour(2);
/// let t = |s: i64| Timestamp::from_unix_micros(s * 1_000_000).unwrap();
/// assert_eq!(budget.wait(&[t(0)], t(10)), None);
/// // Two answers in the hour: the next may come when the first leaves the window.
/// assert_eq!(budget.wait(&[t(0), t(5)], t(10)), Some(Duration::from_secs(3590)));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberConflictBudget {
    per_hour: u32,
}

impl NumberConflictBudget {
    /// `per_hour` answers an hour (at least one: a budget of none is read as one).
    pub fn per_hour(per_hour: u32) -> Self {
        Self {
            per_hour: per_hour.max(1),
        }
    }

    /// Answers allowed in any hour.
    pub fn answers(&self) -> u32 {
        self.per_hour
    }

    /// The start of the window that ends at `now`: answers after it count.
    pub fn window_start(&self, now: Timestamp) -> Timestamp {
        let micros = i64::try_from(NUMBER_CONFLICT_WINDOW.as_micros()).unwrap_or(i64::MAX);
        Timestamp::from_unix_micros(now.unix_micros().saturating_sub(micros)).unwrap_or(now)
    }

    /// How long until the window has room for one more answer, given the times of the
    /// answers in it (`recent`, oldest first); `None` when it has room now. Rounded up to a
    /// whole second, and never less than one, as a `Retry-After` says it.
    pub fn wait(&self, recent: &[Timestamp], now: Timestamp) -> Option<Duration> {
        let budget = usize::try_from(self.per_hour).unwrap_or(usize::MAX);
        if recent.len() < budget {
            return None;
        }
        // The window has room once all but `budget - 1` of the answers have left it.
        let leaving = recent[recent.len() - budget];
        let window = i64::try_from(NUMBER_CONFLICT_WINDOW.as_micros()).unwrap_or(i64::MAX);
        let micros = leaving
            .unix_micros()
            .saturating_add(window)
            .saturating_sub(now.unix_micros())
            .max(1);
        let seconds = u64::try_from(micros).unwrap_or(1).div_ceil(1_000_000);
        Some(Duration::from_secs(seconds))
    }
}

impl Default for NumberConflictBudget {
    /// The contract's default, `NUMBER_CONFLICTS_PER_HOUR=20`.
    fn default() -> Self {
        Self::per_hour(20)
    }
}

/// The number-taken answers given to each account.
pub trait NumberConflictLog: Send + Sync {
    /// The times of the owner's answers after `since`, oldest first.
    fn number_conflicts_since(
        &self,
        owner: UserId,
        since: Timestamp,
    ) -> RepositoryResult<Vec<Timestamp>>;

    /// Records an answer to `owner` at `at`, unless `budget` answers after `since` are
    /// recorded already (then writes nothing and gives false). Concurrent calls for one owner
    /// never record more than `budget` after one `since`. Older answers of the owner may be
    /// forgotten meanwhile.
    fn record_number_conflict(
        &self,
        owner: UserId,
        at: Timestamp,
        since: Timestamp,
        budget: u32,
    ) -> RepositoryResult<bool>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(seconds * 1_000_000).unwrap()
    }

    #[test]
    fn a_window_with_room_asks_for_no_wait() {
        let budget = NumberConflictBudget::per_hour(3);
        assert_eq!(budget.wait(&[], at(0)), None);
        assert_eq!(budget.wait(&[at(0), at(1)], at(2)), None);
    }

    #[test]
    fn a_full_window_waits_for_the_answer_whose_leaving_makes_room() {
        let budget = NumberConflictBudget::per_hour(2);
        // Three recorded (one over, from a smaller budget before): two must leave.
        let recent = [at(0), at(100), at(200)];
        assert_eq!(
            budget.wait(&recent, at(300)),
            Some(Duration::from_secs(3600 + 100 - 300))
        );
    }

    #[test]
    fn the_wait_is_rounded_up_to_a_whole_second_and_never_zero() {
        let budget = NumberConflictBudget::per_hour(1);
        let just_before = Timestamp::from_unix_micros(3_600_000_000 - 1).unwrap();
        assert_eq!(
            budget.wait(&[at(0)], just_before),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            budget.wait(&[at(0)], at(3600)),
            Some(Duration::from_secs(1))
        );
    }

    #[test]
    fn the_window_starts_an_hour_before_now() {
        let budget = NumberConflictBudget::default();
        assert_eq!(budget.window_start(at(7200)), at(3600));
        assert_eq!(budget.answers(), 20);
        assert_eq!(NumberConflictBudget::per_hour(0).answers(), 1);
    }
}
