//! Carrier health: whether a trunk's `sip_address` answers SIP at all, as a SIP OPTIONS probe
//! sees it, and the hysteresis that keeps one lost packet from flapping the answer.
//!
//! Any SIP response means the carrier is alive, a 401, 403, 404 or 405 included: the probe
//! asks "is a SIP server there", not "will it take our call". The state only turns
//! `unreachable` after [`FAILURES_TO_UNREACHABLE`] failed probes in a row, and back to
//! `reachable` after [`SUCCESSES_TO_REACHABLE`] answered ones in a row. The port,
//! [`CarrierProbe`], sends one probe; an adapter implements it over UDP.

use std::fmt;
use std::time::Duration;

use crate::provisioning::ProvisionFuture;
use crate::{RepositoryResult, Timestamp};

/// Failed probes in a row after which a carrier is `unreachable`.
pub const FAILURES_TO_UNREACHABLE: u8 = 3;

/// Answered probes in a row after which an `unreachable` carrier is `reachable` again.
pub const SUCCESSES_TO_REACHABLE: u8 = 2;

/// Most characters of a reason phrase kept: the carrier writes it, anyone can.
pub const REASON_LEN: usize = 64;

/// What the probes say of a carrier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CarrierState {
    /// It answers SIP.
    Reachable,
    /// It has not answered [`FAILURES_TO_UNREACHABLE`] probes in a row.
    Unreachable,
    /// Not probed yet, or not decided yet (fewer failures than that so far).
    Unknown,
}

impl CarrierState {
    /// `reachable`, `unreachable` or `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reachable => "reachable",
            Self::Unreachable => "unreachable",
            Self::Unknown => "unknown",
        }
    }
}

/// What one probe got back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProbeResponse {
    /// A SIP response: the carrier is alive, whatever the code.
    Answered {
        /// The status code (100 to 699).
        code: u16,
        /// The reason phrase, at most [`REASON_LEN`] characters, control characters as `?`.
        reason: String,
    },
    /// No response within the probe's time.
    Timeout,
    /// The carrier's host refused the datagram (ICMP port or host unreachable).
    IcmpUnreachable,
    /// The name resolves to no address (neither SRV `_sip._udp` nor A/AAAA).
    DnsFailure,
}

impl ProbeResponse {
    /// A response with `code` and the carrier's `reason`, bounded.
    pub fn answered(code: u16, reason: &str) -> Self {
        let reason = reason
            .chars()
            .take(REASON_LEN)
            .map(|c| if c.is_control() { '?' } else { c })
            .collect();
        Self::Answered { code, reason }
    }

    /// True for a SIP response (any code).
    pub fn is_alive(&self) -> bool {
        matches!(self, Self::Answered { .. })
    }
}

impl fmt::Display for ProbeResponse {
    /// `200 OK`, `timeout`, `ICMP unreachable` or `DNS failure`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Answered { code, reason } if reason.is_empty() => write!(f, "{code}"),
            Self::Answered { code, reason } => write!(f, "{code} {reason}"),
            Self::Timeout => f.write_str("timeout"),
            Self::IcmpUnreachable => f.write_str("ICMP unreachable"),
            Self::DnsFailure => f.write_str("DNS failure"),
        }
    }
}

/// One probe: what came back, when, and how long the answer took.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeOutcome {
    /// What came back.
    pub response: ProbeResponse,
    /// When the probe was sent.
    pub at: Timestamp,
    /// From the first send to the response; `None` without one.
    pub rtt: Option<Duration>,
}

/// A carrier's health as the probes so far say it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CarrierHealth {
    /// The state, after hysteresis.
    pub state: CarrierState,
    /// When the state was entered; `None` while `unknown` from the start.
    pub since: Option<Timestamp>,
    /// The last probe; `None` before the first.
    pub last_probe: Option<ProbeOutcome>,
    /// Answered probes in a row, up to the last.
    pub successes_in_row: u8,
    /// Failed probes in a row, up to the last.
    pub failures_in_row: u8,
}

impl Default for CarrierHealth {
    fn default() -> Self {
        Self {
            state: CarrierState::Unknown,
            since: None,
            last_probe: None,
            successes_in_row: 0,
            failures_in_row: 0,
        }
    }
}

impl CarrierHealth {
    /// The health after `outcome`: a carrier not yet known is `reachable` at its first answer
    /// (it is alive); one that is `unreachable` needs [`SUCCESSES_TO_REACHABLE`] answers in a
    /// row; any carrier is `unreachable` after [`FAILURES_TO_UNREACHABLE`] failures in a row.
    #[must_use]
    pub fn after(&self, outcome: ProbeOutcome) -> Self {
        let alive = outcome.response.is_alive();
        let (successes, failures) = if alive {
            (self.successes_in_row.saturating_add(1), 0)
        } else {
            (0, self.failures_in_row.saturating_add(1))
        };
        let state = match (self.state, alive) {
            (CarrierState::Unknown, true) => CarrierState::Reachable,
            (CarrierState::Unreachable, true) if successes >= SUCCESSES_TO_REACHABLE => {
                CarrierState::Reachable
            }
            (_, false) if failures >= FAILURES_TO_UNREACHABLE => CarrierState::Unreachable,
            (state, _) => state,
        };
        let since = if state == self.state {
            self.since
        } else {
            Some(outcome.at)
        };
        Self {
            state,
            since,
            last_probe: Some(outcome),
            successes_in_row: successes,
            failures_in_row: failures,
        }
    }
}

/// Sends one SIP OPTIONS probe to a carrier.
///
/// Implementations bound the probe in time (then it is a [`ProbeResponse::Timeout`]) and
/// count only a response that belongs to the probe they sent (its Call-ID and branch, from
/// the address it was sent to): a forged datagram makes no carrier look alive.
pub trait CarrierProbe: Send + Sync {
    /// Probes `host` (a trunk's `sip_address`: a name or an IP address, no port).
    fn probe<'a>(&'a self, host: &'a str) -> ProvisionFuture<'a, ProbeOutcome>;
}

/// Where carrier health is kept: one record per distinct carrier address (`sip_address`) of
/// the stored trunks, with when it is next due for a probe. In the database, so that every
/// replica answers the same and one replica probes each address per period.
pub trait CarrierHealthStore: Send + Sync {
    /// Adds a record, due at `now`, for each carrier address of the stored trunks that has
    /// none, and removes the records of addresses no trunk uses any more. It reads every
    /// trunk (tens of milliseconds at 30,000 on SQLite, under the write lock), so a prober
    /// calls it once a period, not every tick.
    fn sync_carrier_addresses(&self, now: Timestamp) -> RepositoryResult<()>;

    /// Claims up to `limit` carrier addresses whose probe is due at `now`, oldest due first,
    /// moving each one's next probe to `hold_until` so that no other prober claims it
    /// meanwhile (if this one dies, it is due again then). Gives each address with its
    /// health so far.
    fn claim_due_carriers(
        &self,
        now: Timestamp,
        hold_until: Timestamp,
        limit: usize,
    ) -> RepositoryResult<Vec<(String, CarrierHealth)>>;

    /// Stores `health` as `address`'s, next due for a probe at `next_probe_at`.
    fn record_carrier_health(
        &self,
        address: &str,
        health: &CarrierHealth,
        next_probe_at: Timestamp,
    ) -> RepositoryResult<()>;

    /// `address`'s health; `None` when it has no record (never probed, or no trunk uses it).
    fn carrier_health(&self, address: &str) -> RepositoryResult<Option<CarrierHealth>>;

    /// How many visible trunks (not being created) have a carrier in each state, in the
    /// order reachable, unreachable, unknown (a carrier without a record is unknown).
    fn trunks_by_carrier_state(&self) -> RepositoryResult<TrunksByCarrierState>;
}

/// Trunk counts by their carrier's state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrunksByCarrierState {
    /// Trunks whose carrier answers.
    pub reachable: u64,
    /// Trunks whose carrier does not.
    pub unreachable: u64,
    /// Trunks whose carrier is not known yet.
    pub unknown: u64,
}

impl TrunksByCarrierState {
    /// Adds `count` trunks whose carrier is in `state`.
    pub fn add(&mut self, state: CarrierState, count: u64) {
        let slot = match state {
            CarrierState::Reachable => &mut self.reachable,
            CarrierState::Unreachable => &mut self.unreachable,
            CarrierState::Unknown => &mut self.unknown,
        };
        *slot += count;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_unix_micros(second * 1_000_000).unwrap()
    }

    fn probe(second: i64, response: ProbeResponse) -> ProbeOutcome {
        ProbeOutcome {
            response,
            at: at(second),
            rtt: None,
        }
    }

    fn states(responses: &[ProbeResponse]) -> Vec<&'static str> {
        let mut health = CarrierHealth::default();
        let mut seen = Vec::new();
        for (second, response) in (1..).zip(responses) {
            health = health.after(probe(second, response.clone()));
            seen.push(health.state.as_str());
        }
        seen
    }

    #[test]
    fn any_sip_response_is_alive_and_a_first_answer_makes_a_carrier_reachable() {
        for code in [200, 401, 403, 404, 405, 503] {
            let ok = ProbeResponse::answered(code, "whatever");
            assert_eq!(states(&[ok]), ["reachable"], "{code}");
        }
    }

    #[test]
    fn a_carrier_is_unreachable_only_after_three_failures_in_a_row() {
        let ok = ProbeResponse::answered(200, "OK");
        let lost = ProbeResponse::Timeout;
        assert_eq!(
            states(&[
                ok.clone(),
                lost.clone(),
                lost.clone(),
                ok.clone(),
                lost.clone(),
                ProbeResponse::IcmpUnreachable,
                ProbeResponse::DnsFailure,
            ]),
            [
                "reachable",
                "reachable",
                "reachable",
                "reachable",
                "reachable",
                "reachable",
                "unreachable"
            ]
        );
        assert_eq!(
            states(&[lost.clone(), lost.clone(), lost]),
            ["unknown", "unknown", "unreachable"]
        );
    }

    #[test]
    fn an_unreachable_carrier_is_reachable_again_after_two_answers_in_a_row() {
        let ok = ProbeResponse::answered(404, "Not Found");
        let lost = ProbeResponse::Timeout;
        let mut seen = states(&[
            lost.clone(),
            lost.clone(),
            lost.clone(),
            ok.clone(),
            lost,
            ok.clone(),
            ok,
        ]);
        assert_eq!(
            seen.split_off(2),
            [
                "unreachable",
                "unreachable",
                "unreachable",
                "unreachable",
                "reachable"
            ]
        );
    }

    #[test]
    fn since_is_when_the_state_changed_and_the_last_probe_is_kept() {
        let lost = ProbeResponse::Timeout;
        let mut health = CarrierHealth::default();
        for second in 1..=5 {
            health = health.after(probe(second, lost.clone()));
        }
        assert_eq!(health.state, CarrierState::Unreachable);
        assert_eq!(health.since, Some(at(3)));
        assert_eq!(health.last_probe.as_ref().map(|p| p.at), Some(at(5)));
        assert_eq!(health.failures_in_row, 5);
    }

    #[test]
    fn a_reason_phrase_is_bounded_and_loses_its_control_characters() {
        let long = format!("OK\r\n{}", "x".repeat(500));
        let ProbeResponse::Answered { reason, .. } = ProbeResponse::answered(200, &long) else {
            unreachable!()
        };
        assert_eq!(reason.chars().count(), REASON_LEN);
        assert!(reason.starts_with("OK??x"), "{reason}");
        assert_eq!(ProbeResponse::answered(200, "OK").to_string(), "200 OK");
        assert_eq!(
            ProbeResponse::IcmpUnreachable.to_string(),
            "ICMP unreachable"
        );
    }
}
