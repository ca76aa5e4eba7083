//! The reconciler's observations of trunks' legs and their last provisioning failures
//! ([`TrunkNotes`]): a row of `trunk_observations` per trunk found divergent, repaired
//! or failed, and the time of the last full scan on the reconciler lease's row.

use diesel::dsl::not;
use diesel::prelude::*;
use domain::{
    LegCheck, LegId, ProvisioningFailure, ProvisioningState, RepositoryError, RepositoryResult,
    Timestamp, TrunkId, TrunkNotes, TrunkProvisioningRecord, UserId,
};

use super::schema::{reconciler_lease, sip_trunks, trunk_observations};
use super::{SqlStore, TxError};

/// A row of `trunk_observations` as read.
#[derive(Queryable, Selectable)]
#[diesel(table_name = trunk_observations)]
struct ObservationRow {
    trunk_id: i64,
    checked_at: Option<chrono::NaiveDateTime>,
    inbound_leg: Option<String>,
    inbound_held: Option<i16>,
    outbound_leg: Option<String>,
    outbound_held: Option<i16>,
    failure: Option<String>,
    failure_at: Option<chrono::NaiveDateTime>,
}

fn seen(leg: Option<String>, held: Option<i16>) -> Option<(LegId, bool)> {
    Some((LegId::new(leg?)?, held? == 1))
}

fn split(leg: &Option<(LegId, bool)>) -> (Option<&str>, Option<i16>) {
    match leg {
        Some((id, held)) => (Some(id.as_str()), Some(i16::from(*held))),
        None => (None, None),
    }
}

impl TrunkNotes for SqlStore {
    fn record_leg_checks(
        &self,
        checks: &[LegCheck],
        at: Timestamp,
        full_scan: bool,
    ) -> RepositoryResult<()> {
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                for check in checks {
                    let (inbound_leg, inbound_held) = split(&check.inbound);
                    let (outbound_leg, outbound_held) = split(&check.outbound);
                    let values = (
                        trunk_observations::checked_at.eq(Some(at.naive_utc())),
                        trunk_observations::inbound_leg.eq(inbound_leg),
                        trunk_observations::inbound_held.eq(inbound_held),
                        trunk_observations::outbound_leg.eq(outbound_leg),
                        trunk_observations::outbound_held.eq(outbound_held),
                    );
                    let row = trunk_observations::table
                        .filter(trunk_observations::trunk_id.eq(check.trunk.get()));
                    if diesel::update(row).set(values).execute(conn)? == 0 {
                        diesel::insert_into(trunk_observations::table)
                            .values((trunk_observations::trunk_id.eq(check.trunk.get()), values))
                            .execute(conn)?;
                    }
                }
                if full_scan {
                    diesel::delete(
                        trunk_observations::table.filter(not(trunk_observations::trunk_id
                            .eq_any(sip_trunks::table.select(sip_trunks::id)))),
                    )
                    .execute(conn)?;
                    diesel::update(reconciler_lease::table)
                        .set(reconciler_lease::last_full_scan_at.eq(Some(at.naive_utc())))
                        .execute(conn)?;
                }
                Ok(())
            })
        })
    }

    fn record_provisioning_failure(
        &self,
        trunk: TrunkId,
        failure: ProvisioningFailure,
        at: Timestamp,
    ) -> RepositoryResult<()> {
        let values = (
            trunk_observations::failure.eq(Some(failure.code())),
            trunk_observations::failure_at.eq(Some(at.naive_utc())),
        );
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let exists: i64 = sip_trunks::table
                    .filter(sip_trunks::id.eq(trunk.get()))
                    .count()
                    .get_result(conn)?;
                if exists == 0 {
                    return Ok(());
                }
                let row =
                    trunk_observations::table.filter(trunk_observations::trunk_id.eq(trunk.get()));
                if diesel::update(row).set(values).execute(conn)? == 0 {
                    diesel::insert_into(trunk_observations::table)
                        .values((trunk_observations::trunk_id.eq(trunk.get()), values))
                        .execute(conn)?;
                }
                Ok(())
            })
        })
    }

    fn provisioning_record(
        &self,
        owner: UserId,
        id: TrunkId,
    ) -> RepositoryResult<TrunkProvisioningRecord> {
        type TrunkPart = (i16, Option<String>, Option<String>, chrono::NaiveDateTime);
        let (trunk, observation, last_scan): (
            Option<TrunkPart>,
            Option<ObservationRow>,
            Option<Option<chrono::NaiveDateTime>>,
        ) = self.read(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let trunk = sip_trunks::table
                    .filter(sip_trunks::user_id.eq(owner.get()))
                    .filter(sip_trunks::id.eq(id.get()))
                    .filter(super::visible::not_creating())
                    .select((
                        sip_trunks::provisioning_state,
                        sip_trunks::inbound_trunk_id,
                        sip_trunks::outbound_trunk_id,
                        sip_trunks::updated_at,
                    ))
                    .first(conn)
                    .optional()?;
                let observation = trunk_observations::table
                    .filter(trunk_observations::trunk_id.eq(id.get()))
                    .select(ObservationRow::as_select())
                    .first(conn)
                    .optional()?;
                let last_scan = reconciler_lease::table
                    .select(reconciler_lease::last_full_scan_at)
                    .first(conn)
                    .optional()?;
                Ok((trunk, observation, last_scan))
            })
        })?;
        let Some((state, inbound, outbound, updated_at)) = trunk else {
            return Err(RepositoryError::NotFound);
        };
        let state = ProvisioningState::from_code(state).ok_or_else(|| {
            RepositoryError::Internal(format!("trunk {id} has an unknown provisioning state"))
        })?;
        let (check, failure) = match observation {
            None => (None, None),
            Some(row) => {
                let check = row.checked_at.map(|at| {
                    (
                        LegCheck {
                            trunk: id,
                            inbound: seen(row.inbound_leg, row.inbound_held),
                            outbound: seen(row.outbound_leg, row.outbound_held),
                        },
                        Timestamp::from_naive_utc(at),
                    )
                });
                debug_assert_eq!(row.trunk_id, id.get());
                let failure = row
                    .failure
                    .as_deref()
                    .and_then(ProvisioningFailure::from_code)
                    .zip(row.failure_at.map(Timestamp::from_naive_utc));
                (check, failure)
            }
        };
        Ok(TrunkProvisioningRecord {
            state,
            inbound: inbound.and_then(LegId::new),
            outbound: outbound.and_then(LegId::new),
            updated_at: Timestamp::from_naive_utc(updated_at),
            check,
            last_full_scan: last_scan.flatten().map(Timestamp::from_naive_utc),
            failure,
        })
    }

    fn claim_probe_slot(
        &self,
        owner: UserId,
        id: TrunkId,
        now: Timestamp,
        spacing: std::time::Duration,
    ) -> RepositoryResult<Option<Timestamp>> {
        let Some(free_before) = Timestamp::from_unix_micros(
            now.unix_micros()
                .saturating_sub(i64::try_from(spacing.as_micros()).unwrap_or(i64::MAX)),
        ) else {
            return Ok(None);
        };
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let visible: i64 = sip_trunks::table
                    .filter(sip_trunks::user_id.eq(owner.get()))
                    .filter(sip_trunks::id.eq(id.get()))
                    .filter(super::visible::not_creating())
                    .count()
                    .get_result(conn)?;
                if visible == 0 {
                    return Err(TxError::Outcome(RepositoryError::NotFound));
                }
                // Guarded by the last request's time: PostgreSQL checks the guard again
                // after waiting for a racing writer's row lock, so one of two gets the slot.
                let row =
                    trunk_observations::table.filter(trunk_observations::trunk_id.eq(id.get()));
                let taken =
                    diesel::update(
                        row.filter(trunk_observations::probe_requested_at.is_null().or(
                            trunk_observations::probe_requested_at.le(free_before.naive_utc()),
                        )),
                    )
                    .set(trunk_observations::probe_requested_at.eq(Some(now.naive_utc())))
                    .execute(conn)?;
                if taken == 1 {
                    return Ok(None);
                }
                let last: Option<Option<chrono::NaiveDateTime>> = row
                    .select(trunk_observations::probe_requested_at)
                    .first(conn)
                    .optional()?;
                match last {
                    Some(Some(last)) => Ok(Some(Timestamp::from_naive_utc(last).plus(spacing))),
                    _ => {
                        // No row yet: a racing insert of the same row fails on the primary
                        // key, and the transaction with it (its caller is told to wait).
                        let inserted = conn.transaction(|conn| {
                            diesel::insert_into(trunk_observations::table)
                                .values((
                                    trunk_observations::trunk_id.eq(id.get()),
                                    trunk_observations::probe_requested_at
                                        .eq(Some(now.naive_utc())),
                                ))
                                .execute(conn)
                        });
                        match inserted {
                            Ok(_) => Ok(None),
                            Err(diesel::result::Error::DatabaseError(
                                diesel::result::DatabaseErrorKind::UniqueViolation,
                                _,
                            )) => Ok(Some(now.plus(spacing))),
                            Err(error) => Err(error.into()),
                        }
                    }
                }
            })
        })
    }
}
