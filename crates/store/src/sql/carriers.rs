//! Carrier health ([`CarrierHealthStore`]): one row per distinct `sip_address` of the stored
//! trunks, in the database so that every replica answers the same and each address is
//! claimed by one prober per period (the claim moves `next_probe_at` forward, guarded by its
//! old value, so of two probers racing for a row one gets it).

use diesel::dsl::not;
use diesel::prelude::*;
use diesel::sql_types;
use domain::{
    CarrierHealth, CarrierHealthStore, CarrierState, ProbeOutcome, ProbeResponse, RepositoryResult,
    Timestamp, TrunksByCarrierState,
};

use super::schema::{carrier_health, sip_trunks};
use super::{SqlStore, TxError};

/// A row as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = carrier_health)]
struct HealthRow {
    address: String,
    state: i16,
    since: Option<chrono::NaiveDateTime>,
    last_probe_at: Option<chrono::NaiveDateTime>,
    last_outcome: Option<String>,
    last_code: Option<i32>,
    last_reason: Option<String>,
    rtt_ms: Option<i32>,
    successes_in_row: i16,
    failures_in_row: i16,
}

impl HealthRow {
    fn into_health(self) -> (String, CarrierHealth) {
        let state = state_of(self.state);
        let response = match self.last_outcome.as_deref() {
            Some("answered") => self.last_code.map(|code| {
                ProbeResponse::answered(
                    u16::try_from(code).unwrap_or(0),
                    self.last_reason.as_deref().unwrap_or_default(),
                )
            }),
            Some("timeout") => Some(ProbeResponse::Timeout),
            Some("icmp_unreachable") => Some(ProbeResponse::IcmpUnreachable),
            Some("dns_failure") => Some(ProbeResponse::DnsFailure),
            _ => None,
        };
        let last_probe = response
            .zip(self.last_probe_at)
            .map(|(response, at)| ProbeOutcome {
                response,
                at: Timestamp::from_naive_utc(at),
                rtt: self
                    .rtt_ms
                    .and_then(|ms| u64::try_from(ms).ok())
                    .map(std::time::Duration::from_millis),
            });
        let health = CarrierHealth {
            state,
            since: self.since.map(Timestamp::from_naive_utc),
            last_probe,
            successes_in_row: u8::try_from(self.successes_in_row).unwrap_or(u8::MAX),
            failures_in_row: u8::try_from(self.failures_in_row).unwrap_or(u8::MAX),
        };
        (self.address, health)
    }
}

fn state_of(code: i16) -> CarrierState {
    match code {
        1 => CarrierState::Reachable,
        2 => CarrierState::Unreachable,
        _ => CarrierState::Unknown,
    }
}

fn state_code(state: CarrierState) -> i16 {
    match state {
        CarrierState::Unknown => 0,
        CarrierState::Reachable => 1,
        CarrierState::Unreachable => 2,
    }
}

/// Adds a row, due at `now`, for each carrier address of the trunks that has none. Another
/// prober adding the same address at once makes this a unique violation (one statement, no
/// `ON CONFLICT` through the multi-backend connection): then it added them, and that is fine.
fn add_missing(conn: &mut super::DbConnection, now: Timestamp) -> QueryResult<()> {
    let known = carrier_health::table.select(carrier_health::address);
    let missing = sip_trunks::table
        .filter(not(sip_trunks::sip_address.eq_any(known)))
        .select((
            sip_trunks::sip_address,
            now.naive_utc().into_sql::<sql_types::Timestamp>(),
        ))
        .distinct();
    // In a savepoint, so that the violation leaves the sync's transaction usable.
    let added = conn.transaction(|conn| {
        diesel::insert_into(carrier_health::table)
            .values(missing)
            .into_columns((carrier_health::address, carrier_health::next_probe_at))
            .execute(conn)
    });
    match added {
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        ))
        | Ok(_) => Ok(()),
        Err(error) => Err(error),
    }
}

impl CarrierHealthStore for SqlStore {
    fn sync_carrier_addresses(&self, now: Timestamp) -> RepositoryResult<()> {
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                diesel::delete(
                    carrier_health::table.filter(not(carrier_health::address
                        .eq_any(sip_trunks::table.select(sip_trunks::sip_address)))),
                )
                .execute(conn)?;
                add_missing(conn, now)?;
                Ok(())
            })
        })
    }

    fn claim_due_carriers(
        &self,
        now: Timestamp,
        hold_until: Timestamp,
        limit: usize,
    ) -> RepositoryResult<Vec<(String, CarrierHealth)>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let due: Vec<HealthRow> = carrier_health::table
                    .filter(carrier_health::next_probe_at.le(now.naive_utc()))
                    .order((carrier_health::next_probe_at, carrier_health::address))
                    .limit(limit)
                    .select(HealthRow::as_select())
                    .load(conn)?;
                let mut claimed = Vec::with_capacity(due.len());
                for row in due {
                    // Guarded by the due time: of two probers racing for the row, one moves it.
                    let moved = diesel::update(
                        carrier_health::table
                            .filter(carrier_health::address.eq(&row.address))
                            .filter(carrier_health::next_probe_at.le(now.naive_utc())),
                    )
                    .set(carrier_health::next_probe_at.eq(hold_until.naive_utc()))
                    .execute(conn)?;
                    if moved == 1 {
                        claimed.push(row.into_health());
                    }
                }
                Ok(claimed)
            })
        })
    }

    fn record_carrier_health(
        &self,
        address: &str,
        health: &CarrierHealth,
        next_probe_at: Timestamp,
    ) -> RepositoryResult<()> {
        let probe = health.last_probe.as_ref();
        let (outcome, code, reason) = match probe.map(|p| &p.response) {
            Some(ProbeResponse::Answered { code, reason }) => (
                Some("answered"),
                Some(i32::from(*code)),
                Some(reason.as_str()),
            ),
            Some(ProbeResponse::Timeout) => (Some("timeout"), None, None),
            Some(ProbeResponse::IcmpUnreachable) => (Some("icmp_unreachable"), None, None),
            Some(ProbeResponse::DnsFailure) => (Some("dns_failure"), None, None),
            None => (None, None, None),
        };
        let rtt_ms = probe
            .and_then(|p| p.rtt)
            .map(|rtt| i32::try_from(rtt.as_millis()).unwrap_or(i32::MAX));
        let values = (
            carrier_health::state.eq(state_code(health.state)),
            carrier_health::since.eq(health.since.map(|t| t.naive_utc())),
            carrier_health::last_probe_at.eq(probe.map(|p| p.at.naive_utc())),
            carrier_health::last_outcome.eq(outcome),
            carrier_health::last_code.eq(code),
            carrier_health::last_reason.eq(reason),
            carrier_health::rtt_ms.eq(rtt_ms),
            carrier_health::successes_in_row.eq(i16::from(health.successes_in_row)),
            carrier_health::failures_in_row.eq(i16::from(health.failures_in_row)),
            carrier_health::next_probe_at.eq(next_probe_at.naive_utc()),
        );
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let updated = diesel::update(
                    carrier_health::table.filter(carrier_health::address.eq(address)),
                )
                .set(values)
                .execute(conn)?;
                if updated == 0 {
                    diesel::insert_into(carrier_health::table)
                        .values((carrier_health::address.eq(address), values))
                        .execute(conn)?;
                }
                Ok(())
            })
        })
    }

    fn carrier_health(&self, address: &str) -> RepositoryResult<Option<CarrierHealth>> {
        let row: Option<HealthRow> = self.with_connection(|conn| {
            carrier_health::table
                .filter(carrier_health::address.eq(address))
                .select(HealthRow::as_select())
                .first(conn)
                .optional()
        })?;
        Ok(row.map(|row| row.into_health().1))
    }

    fn trunks_by_carrier_state(&self) -> RepositoryResult<TrunksByCarrierState> {
        let visible = super::visible::not_creating();
        let (known, total): (Vec<(i16, i64)>, i64) = self.with_connection(|conn| {
            let known = sip_trunks::table
                .inner_join(
                    carrier_health::table.on(carrier_health::address.eq(sip_trunks::sip_address)),
                )
                .filter(visible)
                .group_by(carrier_health::state)
                .select((carrier_health::state, diesel::dsl::count_star()))
                .load(conn)?;
            let total = sip_trunks::table.filter(visible).count().get_result(conn)?;
            Ok((known, total))
        })?;
        let mut by_state = TrunksByCarrierState::default();
        let mut counted = 0;
        for (state, count) in known {
            counted += count;
            by_state.add(state_of(state), u64::try_from(count).unwrap_or(0));
        }
        // Trunks whose carrier has no row yet: not probed, unknown.
        by_state.add(
            CarrierState::Unknown,
            u64::try_from(total - counted).unwrap_or(0),
        );
        Ok(by_state)
    }
}
