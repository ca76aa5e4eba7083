//! What the registry can tell a client about one trunk's legs (`GET …/{id}/status`,
//! docs/diagnostics.md): the provisioning state, each leg as the reconciler last saw it, and
//! the last provisioning failure as a sentence safe to show.
//!
//! The reconciler does not write a row per trunk per scan (30,000 rows each time): it stores
//! the time of its last full scan, and a [`LegCheck`] only for a trunk it found divergent or
//! just repaired. [`TrunkProvisioningRecord::legs`] derives each leg's answer from those.

use crate::{LegId, LegKind, ProvisionError, ProvisioningState, RepositoryResult, Timestamp};
use crate::{TrunkId, UserId};

/// Why provisioning a trunk's legs last failed, as a client may be told: a kind, never the
/// infrastructure's own words (they may name internals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisioningFailure {
    /// Another trunk on the infrastructure receives calls for the number.
    NumberTaken,
    /// The infrastructure refused the legs as they stand.
    Refused,
    /// The infrastructure refused the registry's own credentials.
    Unauthorized,
    /// The infrastructure did not answer in time, or said "not now".
    Unavailable,
}

impl ProvisioningFailure {
    /// The kind of `error`.
    pub fn of(error: &ProvisionError) -> Self {
        match error {
            ProvisionError::NumberTaken => Self::NumberTaken,
            ProvisionError::Refused(_) => Self::Refused,
            ProvisionError::Unauthorized(_) => Self::Unauthorized,
            ProvisionError::Unavailable(_) => Self::Unavailable,
        }
    }

    /// The stored code.
    pub fn code(self) -> &'static str {
        match self {
            Self::NumberTaken => "number_taken",
            Self::Refused => "refused",
            Self::Unauthorized => "unauthorized",
            Self::Unavailable => "unavailable",
        }
    }

    /// The failure of a stored code.
    pub fn from_code(code: &str) -> Option<Self> {
        [
            Self::NumberTaken,
            Self::Refused,
            Self::Unauthorized,
            Self::Unavailable,
        ]
        .into_iter()
        .find(|failure| failure.code() == code)
    }

    /// The sentence a client is shown.
    pub fn sentence(self) -> &'static str {
        match self {
            Self::NumberTaken => {
                "The voice infrastructure already routes this number to another trunk."
            }
            Self::Refused => "The voice infrastructure refused the trunk's settings.",
            Self::Unauthorized => {
                "The voice infrastructure refused the registry's credentials; the operator has been told."
            }
            Self::Unavailable => {
                "The voice infrastructure did not answer in time; the registry tries again on its own."
            }
        }
    }
}

/// What the reconciler saw of one trunk's legs at one time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegCheck {
    /// The trunk.
    pub trunk: TrunkId,
    /// Its inbound leg then, and whether the infrastructure held it as the settings need.
    pub inbound: Option<(LegId, bool)>,
    /// Its outbound leg then, and whether the infrastructure held it as the settings need.
    pub outbound: Option<(LegId, bool)>,
}

/// Everything stored about one visible trunk's provisioning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkProvisioningRecord {
    /// Its state.
    pub state: ProvisioningState,
    /// Its legs now.
    pub inbound: Option<LegId>,
    /// Its legs now.
    pub outbound: Option<LegId>,
    /// When its row last changed.
    pub updated_at: Timestamp,
    /// The last [`LegCheck`] stored for it, and when it was made.
    pub check: Option<(LegCheck, Timestamp)>,
    /// When the reconciler's last full scan began.
    pub last_full_scan: Option<Timestamp>,
    /// Its last provisioning failure, and when.
    pub failure: Option<(ProvisioningFailure, Timestamp)>,
}

/// One leg in a status answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegStatus {
    /// Which leg.
    pub kind: LegKind,
    /// Its id (`None`: the trunk has none stored).
    pub id: Option<LegId>,
    /// Whether the infrastructure held it as stored when last checked; `None`: not checked
    /// since the leg was made or the trunk changed.
    pub held: Option<bool>,
    /// When it was checked.
    pub checked_at: Option<Timestamp>,
}

impl TrunkProvisioningRecord {
    /// Each leg as last seen. A check at or after the last full scan is the newest word on
    /// the legs it names (a leg replaced since is unchecked). Without one, a trunk that was
    /// ready and unchanged when the last full scan began had its legs found as stored (the
    /// scan records only those it did not).
    pub fn legs(&self) -> [LegStatus; 2] {
        let current = [
            (LegKind::Inbound, self.inbound.clone()),
            (LegKind::Outbound, self.outbound.clone()),
        ];
        let recent_check = self.check.as_ref().filter(|(_, at)| {
            self.last_full_scan
                .is_none_or(|scan| at.unix_micros() >= scan.unix_micros())
        });
        current.map(|(kind, id)| {
            let (held, checked_at) = match (recent_check, &id) {
                (Some((check, at)), Some(leg)) => {
                    let seen = match kind {
                        LegKind::Inbound => &check.inbound,
                        LegKind::Outbound => &check.outbound,
                    };
                    match seen {
                        Some((seen_id, held)) if seen_id == leg => (Some(*held), Some(*at)),
                        _ => (None, None),
                    }
                }
                (None, Some(_)) => match self.last_full_scan {
                    Some(scan)
                        if self.state == ProvisioningState::Ready
                            && scan.unix_micros() >= self.updated_at.unix_micros() =>
                    {
                        (Some(true), Some(scan))
                    }
                    _ => (None, None),
                },
                (_, None) => (None, None),
            };
            LegStatus {
                kind,
                id,
                held,
                checked_at,
            }
        })
    }
}

/// What the registry notes about a trunk beside its settings: the reconciler's observations,
/// the last provisioning failure, the last probe a client asked for.
pub trait TrunkNotes: Send + Sync {
    /// Stores `checks` made at `at` (each replaces the trunk's previous one). With
    /// `full_scan`, `at` is when a full scan began and it is recorded as the last one, and the
    /// checks of trunks that are gone are dropped.
    fn record_leg_checks(
        &self,
        checks: &[LegCheck],
        at: Timestamp,
        full_scan: bool,
    ) -> RepositoryResult<()>;

    /// Stores `failure` as trunk `trunk`'s last, at `at` (nothing for a trunk that is gone).
    fn record_provisioning_failure(
        &self,
        trunk: TrunkId,
        failure: ProvisioningFailure,
        at: Timestamp,
    ) -> RepositoryResult<()>;

    /// The owner's visible trunk `id`'s record; `NotFound` as for a read of the trunk.
    fn provisioning_record(
        &self,
        owner: UserId,
        id: TrunkId,
    ) -> RepositoryResult<TrunkProvisioningRecord>;

    /// Takes the owner's visible trunk `id`'s slot for a probe a client asked for at `now`:
    /// `None` when taken, or the time the next one may be taken when one was taken less than
    /// `spacing` ago (by any replica: of two racing, one gets it). `NotFound` as for a read.
    fn claim_probe_slot(
        &self,
        owner: UserId,
        id: TrunkId,
        now: Timestamp,
        spacing: std::time::Duration,
    ) -> RepositoryResult<Option<Timestamp>>;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> Timestamp {
        Timestamp::from_unix_micros(seconds * 1_000_000).unwrap()
    }

    fn leg(id: &str) -> LegId {
        LegId::new(id).unwrap()
    }

    fn record() -> TrunkProvisioningRecord {
        TrunkProvisioningRecord {
            state: ProvisioningState::Ready,
            inbound: Some(leg("in-1")),
            outbound: Some(leg("out-1")),
            updated_at: at(100),
            check: None,
            last_full_scan: None,
            failure: None,
        }
    }

    fn held(record: &TrunkProvisioningRecord) -> [(Option<bool>, Option<Timestamp>); 2] {
        record.legs().map(|leg| (leg.held, leg.checked_at))
    }

    #[test]
    fn a_trunk_no_scan_has_looked_at_is_unchecked() {
        assert_eq!(held(&record()), [(None, None), (None, None)]);
    }

    #[test]
    fn a_ready_trunk_unchanged_since_a_scan_that_found_nothing_holds_both_legs() {
        let mut record = record();
        record.last_full_scan = Some(at(200));
        assert_eq!(
            held(&record),
            [(Some(true), Some(at(200))), (Some(true), Some(at(200)))]
        );
        // Changed after the scan began: not checked since.
        record.updated_at = at(201);
        assert_eq!(held(&record), [(None, None), (None, None)]);
        // Waiting for a repair: the scan's silence says nothing.
        record.updated_at = at(100);
        record.state = ProvisioningState::Repair;
        assert_eq!(held(&record), [(None, None), (None, None)]);
    }

    #[test]
    fn a_check_from_the_last_scan_names_the_missing_leg() {
        let mut record = record();
        record.last_full_scan = Some(at(200));
        record.check = Some((
            LegCheck {
                trunk: TrunkId::new(1).unwrap(),
                inbound: Some((leg("in-1"), false)),
                outbound: Some((leg("out-1"), true)),
            },
            at(200),
        ));
        assert_eq!(
            held(&record),
            [(Some(false), Some(at(200))), (Some(true), Some(at(200)))]
        );
        // A later scan that found nothing wrong outdates the check.
        record.last_full_scan = Some(at(300));
        assert_eq!(
            held(&record),
            [(Some(true), Some(at(300))), (Some(true), Some(at(300)))]
        );
    }

    #[test]
    fn a_leg_replaced_since_its_check_is_unchecked() {
        let mut record = record();
        record.check = Some((
            LegCheck {
                trunk: TrunkId::new(1).unwrap(),
                inbound: Some((leg("in-0"), false)),
                outbound: Some((leg("out-1"), true)),
            },
            at(150),
        ));
        assert_eq!(held(&record), [(None, None), (Some(true), Some(at(150)))]);
    }

    #[test]
    fn failures_keep_their_code_and_never_carry_the_infrastructures_words() {
        let failure =
            ProvisioningFailure::of(&ProvisionError::Refused("db host 10.0.0.7 said no".into()));
        assert_eq!(failure, ProvisioningFailure::Refused);
        assert_eq!(
            ProvisioningFailure::from_code(failure.code()),
            Some(failure)
        );
        assert!(!failure.sentence().contains("10.0.0.7"));
        assert_eq!(ProvisioningFailure::from_code("other"), None);
    }
}
