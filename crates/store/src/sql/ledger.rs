//! The provisioning ledger on SQL (the domain's [`ProvisioningLedger`]): trunk states and
//! leases in `sip_trunks`, the removal queue in `leg_removals`, the reconciler's lease in
//! `reconciler_lease`. Every method is one transaction; a lease is taken with one conditional
//! update, so two holders never both get it.

use chrono::NaiveDateTime;
use diesel::prelude::*;
use domain::{
    ClaimedTrunk, Lease, LegChanges, LegCommit, LegId, LegKind, LegReference, LegRemoval,
    NewSipTrunk, ProvisioningLedger, ProvisioningState, RepositoryError, RepositoryResult,
    SipTrunk, Timestamp, TrunkId, TrunkSettings, TrunkUpdate, UserId,
};

use super::rows::TrunkRow;
use super::schema::{leg_removals, reconciler_lease, sip_trunks, trunk_observations};
use super::{load_trunk, store_update, SqlStore, TxError, CREATING};

/// A new `leg_removals` row.
#[derive(Insertable)]
#[diesel(table_name = leg_removals)]
struct NewRemovalRow<'a> {
    leg_kind: &'a str,
    leg_id: &'a str,
    queued_at: NaiveDateTime,
    attempts: i32,
    due_at: NaiveDateTime,
}

/// A `leg_removals` row.
#[derive(Queryable, Selectable)]
#[diesel(table_name = leg_removals)]
struct RemovalRow {
    id: i64,
    leg_kind: String,
    leg_id: String,
    attempts: i32,
}

impl RemovalRow {
    fn into_domain(self) -> Option<LegRemoval> {
        Some(LegRemoval {
            id: self.id,
            kind: kind_of(&self.leg_kind)?,
            leg: LegId::new(self.leg_id)?,
            attempts: u32::try_from(self.attempts).unwrap_or(0),
        })
    }
}

fn kind_of(text: &str) -> Option<LegKind> {
    match text {
        "inbound" => Some(LegKind::Inbound),
        "outbound" => Some(LegKind::Outbound),
        _ => None,
    }
}

/// Queues `legs` for removal now, in the caller's transaction; gives the queued entries.
fn queue_removals(
    conn: &mut super::DbConnection,
    legs: &[(LegKind, LegId)],
    now: NaiveDateTime,
) -> QueryResult<Vec<LegRemoval>> {
    let mut queued = Vec::with_capacity(legs.len());
    // One insert per leg: batch inserts do not compile through `MultiConnection`.
    for (kind, leg) in legs {
        let id: i64 = diesel::insert_into(leg_removals::table)
            .values(&NewRemovalRow {
                leg_kind: kind.as_str(),
                leg_id: leg.as_str(),
                queued_at: now,
                attempts: 0,
                due_at: now,
            })
            .returning(leg_removals::id)
            .get_result(conn)?;
        queued.push(LegRemoval {
            id,
            kind: *kind,
            leg: leg.clone(),
            attempts: 0,
        });
    }
    Ok(queued)
}

/// The row of trunk `id` of `owner` whatever its state, if `token` holds its lease.
fn leased_row(
    conn: &mut super::DbConnection,
    owner: UserId,
    id: TrunkId,
    token: &str,
) -> Result<TrunkRow, TxError> {
    let row = sip_trunks::table
        .filter(sip_trunks::user_id.eq(owner.get()))
        .filter(sip_trunks::id.eq(id.get()))
        .filter(sip_trunks::provisioning_lease.eq(token))
        .select(TrunkRow::as_select())
        .first(conn)
        .optional()?;
    row.ok_or(TxError::Outcome(RepositoryError::LeaseLost))
}

impl SqlStore {
    /// Gives a lease up: the trunk's state becomes `state`, `made` is queued for removal, and
    /// with `not_before` the reconciler does not claim the trunk before it (no holder, but a
    /// `provisioning_lease_until` that `claim_due` waits for; a client's `lease_trunk` only
    /// looks at the holder).
    fn give_up_lease(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        state: ProvisioningState,
        made: &[(LegKind, LegId)],
        not_before: Option<Timestamp>,
    ) -> RepositoryResult<()> {
        let now = Timestamp::now().naive_utc();
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let row = leased_row(conn, owner, id, lease_token)?;
                if row.provisioning_state() == ProvisioningState::Creating {
                    return Err(TxError::Outcome(RepositoryError::LeaseLost));
                }
                diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(id.get())))
                    .set((
                        sip_trunks::provisioning_state.eq(state.code()),
                        sip_trunks::provisioning_lease.eq(None::<String>),
                        sip_trunks::provisioning_lease_until
                            .eq(not_before.map(|at| at.naive_utc())),
                    ))
                    .execute(conn)?;
                queue_removals(conn, made, now)?;
                Ok(())
            })
        })
    }
}

impl SqlStore {
    /// Deletes the owner's hidden `Creating` rows whose lease ran out: their creators died.
    /// The reconciler would roll them back; their legs are found by tag, as the dead holders
    /// of a number or as orphans. Called after a unique violation, so that a client's retry
    /// of a create that died is not refused for a row it cannot see. Gives how many went.
    pub(crate) fn clear_dead_creations(&self, owner: UserId) -> RepositoryResult<usize> {
        let now = Timestamp::now().naive_utc();
        let cleared = self.write(|conn| {
            diesel::delete(
                sip_trunks::table
                    .filter(sip_trunks::user_id.eq(owner.get()))
                    .filter(sip_trunks::provisioning_state.eq(CREATING))
                    .filter(
                        sip_trunks::provisioning_lease_until
                            .is_null()
                            .or(sip_trunks::provisioning_lease_until.lt(now)),
                    ),
            )
            .execute(conn)
            .map_err(TxError::from)
        })?;
        if cleared > 0 {
            log::warn!("cleared {cleared} hidden create(s) of user {owner} whose creator died");
        }
        Ok(cleared)
    }

    /// Runs `write` once more when it met a unique violation and dead hidden creates of
    /// `owner` were cleared (see [`SqlStore::clear_dead_creations`]).
    pub(crate) fn past_dead_creations<T>(
        &self,
        owner: UserId,
        write: impl Fn() -> RepositoryResult<T>,
    ) -> RepositoryResult<T> {
        match write() {
            Err(RepositoryError::Conflict) if self.clear_dead_creations(owner)? > 0 => write(),
            outcome => outcome,
        }
    }

    /// Whether the trunk of `owner` with `settings`' identity is a create in flight (hidden).
    fn identity_being_created<P>(
        &self,
        owner: UserId,
        settings: &TrunkSettings<P>,
    ) -> RepositoryResult<bool> {
        let state: Option<i16> = self.with_connection(|conn| {
            sip_trunks::table
                .filter(sip_trunks::user_id.eq(owner.get()))
                .filter(sip_trunks::phone_number.eq(settings.phone_number.as_str()))
                .filter(sip_trunks::sip_username.eq(settings.sip_username.as_str()))
                .filter(sip_trunks::sip_address.eq(settings.sip_address.as_str()))
                .select(sip_trunks::provisioning_state)
                .first(conn)
                .optional()
        })?;
        Ok(state == Some(CREATING))
    }
}

impl ProvisioningLedger for SqlStore {
    fn begin_create(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
        lease: &Lease,
    ) -> RepositoryResult<SipTrunk> {
        let created = self.insert_claiming_place(owner, trunk, max_trunks, Some(lease));
        match created {
            // Only a trunk the caller can see is a conflict; a create in flight is waited for.
            Err(RepositoryError::Conflict) if self.identity_being_created(owner, trunk)? => {
                Err(RepositoryError::LeaseLost)
            }
            outcome => outcome,
        }
    }

    fn finish_create(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        inbound: &LegId,
        outbound: &LegId,
    ) -> RepositoryResult<SipTrunk> {
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let touched = diesel::update(
                    sip_trunks::table
                        .filter(sip_trunks::id.eq(id.get()))
                        .filter(sip_trunks::user_id.eq(owner.get()))
                        .filter(sip_trunks::provisioning_state.eq(CREATING))
                        .filter(sip_trunks::provisioning_lease.eq(lease_token)),
                )
                .set((
                    sip_trunks::inbound_trunk_id.eq(inbound.as_str()),
                    sip_trunks::outbound_trunk_id.eq(outbound.as_str()),
                    sip_trunks::provisioning_state.eq(ProvisioningState::Ready.code()),
                    sip_trunks::provisioning_lease.eq(None::<String>),
                    sip_trunks::provisioning_lease_until.eq(None::<NaiveDateTime>),
                ))
                .execute(conn)?;
                if touched == 0 {
                    return Err(TxError::Outcome(RepositoryError::LeaseLost));
                }
                Ok(load_trunk(conn, owner, id)?)
            })
        })?
        .into_domain(&self.keys)
    }

    fn abandon_create(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        made: &[(LegKind, LegId)],
    ) -> RepositoryResult<()> {
        let now = Timestamp::now().naive_utc();
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let deleted = diesel::delete(
                    sip_trunks::table
                        .filter(sip_trunks::id.eq(id.get()))
                        .filter(sip_trunks::user_id.eq(owner.get()))
                        .filter(sip_trunks::provisioning_state.eq(CREATING))
                        .filter(sip_trunks::provisioning_lease.eq(lease_token)),
                )
                .execute(conn)?;
                if deleted == 0 {
                    return Err(TxError::Outcome(RepositoryError::LeaseLost));
                }
                queue_removals(conn, made, now)?;
                Ok(())
            })
        })
    }

    fn renew_lease(&self, id: TrunkId, token: &str, until: Timestamp) -> RepositoryResult<()> {
        let renewed = self.write(|conn| {
            diesel::update(
                sip_trunks::table
                    .filter(sip_trunks::id.eq(id.get()))
                    .filter(sip_trunks::provisioning_lease.eq(token)),
            )
            .set(sip_trunks::provisioning_lease_until.eq(until.naive_utc()))
            .execute(conn)
            .map_err(TxError::from)
        })?;
        if renewed == 1 {
            Ok(())
        } else {
            Err(RepositoryError::LeaseLost)
        }
    }

    fn lease_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        working: bool,
    ) -> RepositoryResult<(SipTrunk, ProvisioningState)> {
        let now = Timestamp::now().naive_utc();
        let row = self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let mine = sip_trunks::provisioning_lease
                    .is_null()
                    .or(sip_trunks::provisioning_lease_until.lt(now))
                    .or(sip_trunks::provisioning_lease.eq(&lease.token));
                let taken = diesel::update(
                    sip_trunks::table
                        .filter(sip_trunks::id.eq(id.get()))
                        .filter(sip_trunks::user_id.eq(owner.get()))
                        .filter(super::visible::not_creating())
                        .filter(mine),
                )
                .set((
                    sip_trunks::provisioning_lease.eq(&lease.token),
                    sip_trunks::provisioning_lease_until.eq(lease.until.naive_utc()),
                ))
                .execute(conn)?;
                match (taken, load_trunk(conn, owner, id).optional()?) {
                    (1, Some(row)) => {
                        if working {
                            diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(id.get())))
                                .set(
                                    sip_trunks::provisioning_state
                                        .eq(ProvisioningState::Repair.code()),
                                )
                                .execute(conn)?;
                        }
                        Ok(row)
                    }
                    (_, Some(_)) => Err(TxError::Outcome(RepositoryError::LeaseLost)),
                    (_, None) => Err(TxError::Outcome(RepositoryError::NotFound)),
                }
            })
        })?;
        let state = row.provisioning_state();
        Ok((row.into_domain(&self.keys)?, state))
    }

    fn commit_legs(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        commit: &LegCommit,
    ) -> RepositoryResult<TrunkUpdate> {
        let keys = &self.keys;
        let now = Timestamp::now();
        self.past_dead_creations(owner, || {
            self.write(|conn| {
                conn.transaction::<_, TxError, _>(|conn| {
                    let row = leased_row(conn, owner, id, lease_token)?;
                    if row.provisioning_state() == ProvisioningState::Creating {
                        return Err(TxError::Outcome(RepositoryError::LeaseLost));
                    }
                    let current = row.into_domain(keys).map_err(TxError::Outcome)?;
                    let mut update = match &commit.patch {
                        Some(patch) => patch.apply(&current, now).map_err(|errors| {
                            TxError::Outcome(RepositoryError::Rejected(errors))
                        })?,
                        None => TrunkUpdate {
                            trunk: current,
                            changed: false,
                            legs: LegChanges::default(),
                        },
                    };
                    if LegChanges::between(&commit.provisioned, &update.trunk.settings).any() {
                        // Changed since the legs were made for it: they are not its legs.
                        return Err(TxError::Outcome(RepositoryError::LeaseLost));
                    }
                    store_update(conn, keys, owner, id, &update)?;
                    if let Some(leg) = &commit.inbound {
                        update.trunk.inbound_trunk_id = Some(leg.clone());
                    }
                    if let Some(leg) = &commit.outbound {
                        update.trunk.outbound_trunk_id = Some(leg.clone());
                    }
                    diesel::update(sip_trunks::table.filter(sip_trunks::id.eq(id.get())))
                        .set((
                            sip_trunks::inbound_trunk_id.eq(update
                                .trunk
                                .inbound_trunk_id
                                .as_ref()
                                .map(LegId::as_str)),
                            sip_trunks::outbound_trunk_id.eq(update
                                .trunk
                                .outbound_trunk_id
                                .as_ref()
                                .map(LegId::as_str)),
                            sip_trunks::provisioning_state.eq(commit.state.code()),
                            sip_trunks::provisioning_lease.eq(None::<String>),
                            // A trunk left in repair is due for the reconciler at once.
                            sip_trunks::provisioning_lease_until.eq(None::<NaiveDateTime>),
                        ))
                        .execute(conn)?;
                    queue_removals(conn, &commit.remove, now.naive_utc())?;
                    Ok(update)
                })
            })
        })
    }

    fn release_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        state: ProvisioningState,
        made: &[(LegKind, LegId)],
    ) -> RepositoryResult<()> {
        self.give_up_lease(owner, id, lease_token, state, made, None)
    }

    fn postpone_repair(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        made: &[(LegKind, LegId)],
        retry_at: Timestamp,
    ) -> RepositoryResult<()> {
        let repair = ProvisioningState::Repair;
        self.give_up_lease(owner, id, lease_token, repair, made, Some(retry_at))
    }

    fn delete_and_queue(&self, owner: UserId, id: TrunkId) -> RepositoryResult<Vec<LegRemoval>> {
        let now = Timestamp::now().naive_utc();
        self.write(|conn| {
            conn.transaction::<_, TxError, _>(|conn| {
                let legs: Option<(Option<String>, Option<String>)> = sip_trunks::table
                    .filter(sip_trunks::id.eq(id.get()))
                    .filter(sip_trunks::user_id.eq(owner.get()))
                    .filter(super::visible::not_creating())
                    .select((sip_trunks::inbound_trunk_id, sip_trunks::outbound_trunk_id))
                    .first(conn)
                    .optional()?;
                let Some((inbound, outbound)) = legs else {
                    return Err(TxError::Outcome(RepositoryError::NotFound));
                };
                let deleted = diesel::delete(
                    sip_trunks::table
                        .filter(sip_trunks::id.eq(id.get()))
                        .filter(sip_trunks::user_id.eq(owner.get()))
                        .filter(super::visible::not_creating()),
                )
                .execute(conn)?;
                if deleted == 0 {
                    return Err(TxError::Outcome(RepositoryError::NotFound));
                }
                // Its notes go with it (the status endpoint's; nothing else reads them).
                diesel::delete(
                    trunk_observations::table.filter(trunk_observations::trunk_id.eq(id.get())),
                )
                .execute(conn)?;
                let legs: Vec<(LegKind, LegId)> = [
                    (LegKind::Inbound, inbound.and_then(LegId::new)),
                    (LegKind::Outbound, outbound.and_then(LegId::new)),
                ]
                .into_iter()
                .filter_map(|(kind, leg)| leg.map(|leg| (kind, leg)))
                .collect();
                Ok(queue_removals(conn, &legs, now)?)
            })
        })
    }

    fn due_removals(&self, now: Timestamp, limit: usize) -> RepositoryResult<Vec<LegRemoval>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self.with_connection(|conn| {
            leg_removals::table
                .filter(leg_removals::due_at.le(now.naive_utc()))
                .order((leg_removals::due_at.asc(), leg_removals::id.asc()))
                .limit(limit)
                .select(RemovalRow::as_select())
                .load(conn)
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|row| {
                let id = row.id;
                let removal = row.into_domain();
                if removal.is_none() {
                    log::error!("leg_removals row {id} does not read; it is skipped");
                }
                removal
            })
            .collect())
    }

    fn removal_done(&self, id: i64) -> RepositoryResult<()> {
        self.write(|conn| {
            diesel::delete(leg_removals::table.filter(leg_removals::id.eq(id)))
                .execute(conn)
                .map(drop)
                .map_err(TxError::Query)
        })
    }

    fn removal_failed(&self, id: i64, retry_at: Timestamp) -> RepositoryResult<()> {
        self.write(|conn| {
            diesel::update(leg_removals::table.filter(leg_removals::id.eq(id)))
                .set((
                    leg_removals::attempts.eq(leg_removals::attempts + 1),
                    leg_removals::due_at.eq(retry_at.naive_utc()),
                ))
                .execute(conn)
                .map(drop)
                .map_err(TxError::Query)
        })
    }

    fn claim_due(
        &self,
        now: Timestamp,
        lease: &Lease,
        limit: usize,
    ) -> RepositoryResult<Vec<ClaimedTrunk>> {
        let now = now.naive_utc();
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let due = |conn: &mut super::DbConnection| {
            sip_trunks::table
                .filter(sip_trunks::provisioning_state.ne(ProvisioningState::Ready.code()))
                .filter(
                    sip_trunks::provisioning_lease_until
                        .is_null()
                        .or(sip_trunks::provisioning_lease_until.lt(now)),
                )
                .order(sip_trunks::id.asc())
                .limit(limit)
                .select((
                    sip_trunks::id,
                    sip_trunks::user_id,
                    sip_trunks::provisioning_state,
                ))
                .load::<(i64, i64, i16)>(conn)
        };
        let candidates = self.with_connection(due)?;
        let mut claimed = Vec::new();
        for (id, user_id, state) in candidates {
            let taken = self.write(|conn| {
                diesel::update(
                    sip_trunks::table
                        .filter(sip_trunks::id.eq(id))
                        .filter(sip_trunks::provisioning_state.eq(state))
                        .filter(
                            sip_trunks::provisioning_lease_until
                                .is_null()
                                .or(sip_trunks::provisioning_lease_until.lt(now)),
                        ),
                )
                .set((
                    sip_trunks::provisioning_lease.eq(&lease.token),
                    sip_trunks::provisioning_lease_until.eq(lease.until.naive_utc()),
                ))
                .execute(conn)
                .map_err(TxError::Query)
            })?;
            let (Some(owner), Some(id), Some(state)) = (
                UserId::new(user_id),
                TrunkId::new(id),
                ProvisioningState::from_code(state),
            ) else {
                continue;
            };
            if taken == 1 {
                claimed.push(ClaimedTrunk { owner, id, state });
            }
        }
        Ok(claimed)
    }

    fn leg_references(
        &self,
        after: Option<TrunkId>,
        limit: usize,
    ) -> RepositoryResult<Vec<LegReference>> {
        let after = after.map_or(0, TrunkId::get);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let now = Timestamp::now().naive_utc();
        type Columns = (
            i64,
            i64,
            i16,
            Option<String>,
            Option<String>,
            Option<String>,
            Option<NaiveDateTime>,
        );
        let rows = self.with_connection(|conn| {
            sip_trunks::table
                .filter(sip_trunks::id.gt(after))
                .order(sip_trunks::id.asc())
                .limit(limit)
                .select((
                    sip_trunks::id,
                    sip_trunks::user_id,
                    sip_trunks::provisioning_state,
                    sip_trunks::inbound_trunk_id,
                    sip_trunks::outbound_trunk_id,
                    sip_trunks::provisioning_lease,
                    sip_trunks::provisioning_lease_until,
                ))
                .load::<Columns>(conn)
        })?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, user, state, inbound, outbound, lease, until)| {
                Some(LegReference {
                    owner: UserId::new(user)?,
                    id: TrunkId::new(id)?,
                    state: ProvisioningState::from_code(state)?,
                    inbound: inbound.and_then(LegId::new),
                    outbound: outbound.and_then(LegId::new),
                    leased: lease.is_some() && until.is_some_and(|until| until > now),
                })
            })
            .collect())
    }

    fn mark_for_repair(&self, owner: UserId, id: TrunkId) -> RepositoryResult<()> {
        let now = Timestamp::now().naive_utc();
        self.write(|conn| {
            diesel::update(
                sip_trunks::table
                    .filter(sip_trunks::id.eq(id.get()))
                    .filter(sip_trunks::user_id.eq(owner.get()))
                    .filter(sip_trunks::provisioning_state.eq(ProvisioningState::Ready.code()))
                    .filter(
                        sip_trunks::provisioning_lease_until
                            .is_null()
                            .or(sip_trunks::provisioning_lease_until.lt(now)),
                    ),
            )
            .set((
                sip_trunks::provisioning_state.eq(ProvisioningState::Repair.code()),
                sip_trunks::provisioning_lease.eq(None::<String>),
                sip_trunks::provisioning_lease_until.eq(None::<NaiveDateTime>),
            ))
            .execute(conn)
            .map(drop)
            .map_err(TxError::Query)
        })
    }

    fn identity_taken(
        &self,
        owner: UserId,
        settings: &TrunkSettings,
        except: TrunkId,
    ) -> RepositoryResult<bool> {
        let (phone_number, username, address) = settings.identity();
        let found: i64 = self.with_connection(|conn| {
            sip_trunks::table
                .filter(sip_trunks::user_id.eq(owner.get()))
                .filter(sip_trunks::phone_number.eq(phone_number))
                .filter(sip_trunks::sip_username.eq(username))
                .filter(sip_trunks::sip_address.eq(address))
                .filter(sip_trunks::id.ne(except.get()))
                .count()
                .get_result(conn)
        })?;
        Ok(found > 0)
    }

    fn take_reconciler_lease(&self, holder: &str, until: Timestamp) -> RepositoryResult<bool> {
        let now = Timestamp::now().naive_utc();
        let taken = self.write(|conn| {
            diesel::update(
                reconciler_lease::table
                    .filter(reconciler_lease::name.eq("reconciler"))
                    .filter(
                        reconciler_lease::holder
                            .eq(holder)
                            .or(reconciler_lease::lease_until.lt(now)),
                    ),
            )
            .set((
                reconciler_lease::holder.eq(holder),
                reconciler_lease::lease_until.eq(until.naive_utc()),
            ))
            .execute(conn)
            .map_err(TxError::Query)
        })?;
        Ok(taken == 1)
    }
}
