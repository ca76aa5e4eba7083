//! `MemoryStore`: the ports in memory, with the same semantics as the SQL store (ownership,
//! uniqueness, not-found, id order, never-reused ids, timestamps). For tests of other crates
//! and for services that embed the domain without a database.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use domain::{
    AccountRepository, ApiKey, ApiKeyId, ApiKeyName, ApiToken, CarrierHealth, CarrierHealthStore,
    CarrierState, ClaimedTrunk, Email, Lease, LegChanges, LegCheck, LegCommit, LegId, LegKind,
    LegReference, LegRemoval, NewSipTrunk, NumberConflictLog, PasswordWithheld,
    ProvisioningFailure, ProvisioningLedger, ProvisioningState, RepositoryError, RepositoryResult,
    SipTrunk, SipTrunkPatch, SipTrunkRepository, Timestamp, TokenHash, TrunkId, TrunkListing,
    TrunkNotes, TrunkPage, TrunkProvisioningRecord, TrunkUpdate, TrunksByCarrierState, User,
    UserId, UserName,
};

#[derive(Default)]
struct State {
    users: BTreeMap<UserId, User>,
    api_keys: BTreeMap<ApiKeyId, (ApiKey, TokenHash)>,
    trunks: BTreeMap<TrunkId, SipTrunk>,
    /// The provisioning state of trunks that are not `Ready` or are leased.
    provisioning: BTreeMap<TrunkId, Provisioning>,
    /// Legs to remove and when each is due.
    removals: BTreeMap<i64, (LegRemoval, Timestamp)>,
    /// The reconciler lease: holder and until when.
    reconciler: Option<(String, Timestamp)>,
    /// Number-taken answers per account, oldest first.
    number_conflicts: BTreeMap<UserId, Vec<Timestamp>>,
    /// Each carrier address's health and when its next probe is due.
    carriers: BTreeMap<String, (CarrierHealth, Timestamp)>,
    /// The reconciler's last check of a trunk's legs, and when.
    leg_checks: BTreeMap<TrunkId, (LegCheck, Timestamp)>,
    /// Each trunk's last provisioning failure, and when.
    failures: BTreeMap<TrunkId, (ProvisioningFailure, Timestamp)>,
    /// When the reconciler's last full scan began.
    last_full_scan: Option<Timestamp>,
    /// The last probe a client asked for, per trunk.
    probe_requests: BTreeMap<TrunkId, Timestamp>,
    /// The last id handed out per table, like a database sequence: ids are never reused.
    last_ids: LastIds,
}

/// A trunk's provisioning state and lease.
#[derive(Clone)]
struct Provisioning {
    state: ProvisioningState,
    lease: Option<Lease>,
    /// A failed repair's: the reconciler does not claim the trunk before it.
    retry_at: Option<Timestamp>,
}

impl Provisioning {
    fn leased_at(&self, now: Timestamp) -> bool {
        self.lease.as_ref().is_some_and(|lease| lease.until > now)
    }
}

#[derive(Default)]
struct LastIds {
    user: i64,
    api_key: i64,
    trunk: i64,
    removal: i64,
}

/// Advances a sequence and gives its new value.
fn next(sequence: &mut i64) -> i64 {
    *sequence += 1;
    *sequence
}

impl State {
    /// The owner's trunk `id`, unless it is still being created.
    fn owned_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<&SipTrunk> {
        self.trunks
            .get(&id)
            .filter(|trunk| trunk.owner == owner && !self.creating(trunk.id))
            .ok_or(RepositoryError::NotFound)
    }

    fn state_of(&self, id: TrunkId) -> ProvisioningState {
        self.provisioning
            .get(&id)
            .map_or(ProvisioningState::Ready, |p| p.state)
    }

    fn creating(&self, id: TrunkId) -> bool {
        self.state_of(id) == ProvisioningState::Creating
    }

    /// `LeaseLost` unless `token` holds the lease of the owner's trunk `id`.
    fn check_lease(&self, owner: UserId, id: TrunkId, token: &str) -> RepositoryResult<()> {
        let held = self.trunks.get(&id).is_some_and(|t| t.owner == owner)
            && self
                .provisioning
                .get(&id)
                .and_then(|p| p.lease.as_ref())
                .is_some_and(|lease| lease.token == token);
        if held {
            Ok(())
        } else {
            Err(RepositoryError::LeaseLost)
        }
    }

    fn set_state(&mut self, id: TrunkId, state: ProvisioningState) {
        if state == ProvisioningState::Ready {
            self.provisioning.remove(&id);
        } else {
            self.provisioning.insert(
                id,
                Provisioning {
                    state,
                    lease: None,
                    retry_at: None,
                },
            );
        }
    }

    fn queue(&mut self, legs: &[(LegKind, LegId)]) -> Vec<LegRemoval> {
        let now = Timestamp::now();
        legs.iter()
            .map(|(kind, leg)| {
                let removal = LegRemoval {
                    id: next(&mut self.last_ids.removal),
                    kind: *kind,
                    leg: leg.clone(),
                    attempts: 0,
                };
                self.removals.insert(removal.id, (removal.clone(), now));
                removal
            })
            .collect()
    }

    /// [`State::identity_taken`], after clearing the owner's dead hidden creates when it is
    /// (as the SQL store does on a unique violation; see `clear_dead_creations` there).
    fn identity_taken_by_the_living(
        &mut self,
        owner: UserId,
        settings: &domain::TrunkSettings,
        except: Option<TrunkId>,
    ) -> bool {
        if !self.identity_taken(owner, settings, except) {
            return false;
        }
        let now = Timestamp::now();
        let dead: Vec<TrunkId> = self
            .provisioning
            .iter()
            .filter(|(id, p)| {
                p.state == ProvisioningState::Creating
                    && p.lease.as_ref().is_none_or(|lease| lease.until < now)
                    && self.trunks.get(id).is_some_and(|t| t.owner == owner)
            })
            .map(|(id, _)| *id)
            .collect();
        if dead.is_empty() {
            return true;
        }
        for id in &dead {
            self.trunks.remove(id);
            self.provisioning.remove(id);
        }
        self.identity_taken(owner, settings, except)
    }

    /// Whether the owner's trunk with `settings`' identity is a create in flight (hidden).
    fn identity_being_created(&self, owner: UserId, settings: &domain::TrunkSettings) -> bool {
        self.trunks.values().any(|trunk| {
            trunk.owner == owner
                && trunk.settings.identity() == settings.identity()
                && self.creating(trunk.id)
        })
    }

    /// True when another trunk of `owner` than `except` has the same identity triple.
    fn identity_taken(
        &self,
        owner: UserId,
        settings: &domain::TrunkSettings,
        except: Option<TrunkId>,
    ) -> bool {
        self.trunks.values().any(|trunk| {
            trunk.owner == owner
                && Some(trunk.id) != except
                && trunk.settings.identity() == settings.identity()
        })
    }
}

/// The repositories in memory. Every operation takes one lock, so each is atomic.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave a half-applied change: every
        // operation mutates only after all its checks passed.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn id_of<T>(make: impl FnOnce(i64) -> Option<T>, raw: i64) -> RepositoryResult<T> {
    make(raw).ok_or_else(|| RepositoryError::Internal("id counter overflowed".into()))
}

impl SipTrunkRepository for MemoryStore {
    fn reads_inline(&self) -> bool {
        true
    }

    fn list_trunks(&self, owner: UserId, page: TrunkPage) -> RepositoryResult<TrunkListing> {
        let state = self.state();
        let start = page.after.map_or(Bound::Unbounded, Bound::Excluded);
        let trunks: Vec<SipTrunk<PasswordWithheld>> = state
            .trunks
            .range((start, Bound::Unbounded))
            .map(|(_, trunk)| trunk)
            .filter(|trunk| trunk.owner == owner && !state.creating(trunk.id))
            .take(page.limit)
            .map(|trunk| trunk.clone().without_password())
            .collect();
        Ok(TrunkListing {
            rows: trunks.len(),
            last_id: trunks.last().map(|trunk| trunk.id),
            trunks,
            unreadable: Vec::new(),
        })
    }

    fn get_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
    ) -> RepositoryResult<SipTrunk<PasswordWithheld>> {
        self.state()
            .owned_trunk(owner, id)
            .map(|trunk| trunk.clone().without_password())
    }

    fn open_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<SipTrunk> {
        self.state().owned_trunk(owner, id).cloned()
    }

    fn create_trunk(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
    ) -> RepositoryResult<SipTrunk> {
        self.insert_trunk(owner, trunk, max_trunks, None)
    }
    fn update_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        patch: &SipTrunkPatch,
    ) -> RepositoryResult<TrunkUpdate> {
        let mut state = self.state();
        let current = state.owned_trunk(owner, id)?;
        let update = patch
            .apply(current, Timestamp::now())
            .map_err(RepositoryError::Rejected)?;
        if update.changed {
            if state.identity_taken_by_the_living(owner, &update.trunk.settings, Some(id)) {
                return Err(RepositoryError::Conflict);
            }
            state.trunks.insert(id, update.trunk.clone());
        }
        Ok(update)
    }

    /// Queues the trunk's legs for removal (see [`ProvisioningLedger::delete_and_queue`]).
    fn delete_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<()> {
        self.delete_and_queue(owner, id).map(drop)
    }
}

impl MemoryStore {
    /// A new trunk: `Ready`, or `Creating` under `creating`.
    fn insert_trunk(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
        creating: Option<&Lease>,
    ) -> RepositoryResult<SipTrunk> {
        let mut state = self.state();
        if !state.users.contains_key(&owner) {
            return Err(RepositoryError::NotFound);
        }
        // The duplicate first, as in the SQL store (which inserts, then counts).
        if state.identity_taken_by_the_living(owner, trunk, None) {
            // Only a trunk the caller can see is a conflict; a create in flight is waited for.
            let in_flight = creating.is_some() && state.identity_being_created(owner, trunk);
            return Err(if in_flight {
                RepositoryError::LeaseLost
            } else {
                RepositoryError::Conflict
            });
        }
        let owned = state.trunks.values().filter(|t| t.owner == owner).count();
        if owned >= max_trunks as usize {
            return Err(RepositoryError::LimitReached);
        }
        let id = id_of(TrunkId::new, next(&mut state.last_ids.trunk))?;
        let stored = SipTrunk::create(id, owner, trunk.clone(), Timestamp::now());
        state.trunks.insert(id, stored.clone());
        if let Some(lease) = creating {
            state.provisioning.insert(
                id,
                Provisioning {
                    state: ProvisioningState::Creating,
                    lease: Some(lease.clone()),
                    retry_at: None,
                },
            );
        }
        Ok(stored)
    }
}

impl NumberConflictLog for MemoryStore {
    fn number_conflicts_since(
        &self,
        owner: UserId,
        since: Timestamp,
    ) -> RepositoryResult<Vec<Timestamp>> {
        let state = self.state();
        let answers = state
            .number_conflicts
            .get(&owner)
            .map_or(&[][..], Vec::as_slice);
        Ok(answers.iter().copied().filter(|at| *at > since).collect())
    }

    fn record_number_conflict(
        &self,
        owner: UserId,
        at: Timestamp,
        since: Timestamp,
        budget: u32,
    ) -> RepositoryResult<bool> {
        let mut state = self.state();
        if !state.users.contains_key(&owner) {
            return Err(RepositoryError::NotFound);
        }
        let answers = state.number_conflicts.entry(owner).or_default();
        answers.retain(|answer| *answer > since);
        if answers.len() >= usize::try_from(budget).unwrap_or(usize::MAX) {
            return Ok(false);
        }
        let place = answers.partition_point(|answer| *answer <= at);
        answers.insert(place, at);
        Ok(true)
    }
}

impl CarrierHealthStore for MemoryStore {
    fn sync_carrier_addresses(&self, now: Timestamp) -> RepositoryResult<()> {
        let mut state = self.state();
        let used: std::collections::BTreeSet<String> = state
            .trunks
            .values()
            .map(|trunk| trunk.settings.sip_address.as_str().to_owned())
            .collect();
        state.carriers.retain(|address, _| used.contains(address));
        for address in used {
            state
                .carriers
                .entry(address)
                .or_insert_with(|| (CarrierHealth::default(), now));
        }
        Ok(())
    }

    fn claim_due_carriers(
        &self,
        now: Timestamp,
        hold_until: Timestamp,
        limit: usize,
    ) -> RepositoryResult<Vec<(String, CarrierHealth)>> {
        let mut state = self.state();
        let mut due: Vec<(Timestamp, String)> = state
            .carriers
            .iter()
            .filter(|(_, (_, next))| *next <= now)
            .map(|(address, (_, next))| (*next, address.clone()))
            .collect();
        due.sort();
        due.truncate(limit);
        Ok(due
            .into_iter()
            .filter_map(|(_, address)| {
                let (health, next) = state.carriers.get_mut(&address)?;
                *next = hold_until;
                Some((address, health.clone()))
            })
            .collect())
    }

    fn record_carrier_health(
        &self,
        address: &str,
        health: &CarrierHealth,
        next_probe_at: Timestamp,
    ) -> RepositoryResult<()> {
        self.state()
            .carriers
            .insert(address.to_owned(), (health.clone(), next_probe_at));
        Ok(())
    }

    fn carrier_health(&self, address: &str) -> RepositoryResult<Option<CarrierHealth>> {
        Ok(self
            .state()
            .carriers
            .get(address)
            .map(|(health, _)| health.clone()))
    }

    fn trunks_by_carrier_state(&self) -> RepositoryResult<TrunksByCarrierState> {
        let state = self.state();
        let mut by_state = TrunksByCarrierState::default();
        for trunk in state.trunks.values().filter(|t| !state.creating(t.id)) {
            let carrier = state
                .carriers
                .get(trunk.settings.sip_address.as_str())
                .map_or(CarrierState::Unknown, |(health, _)| health.state);
            by_state.add(carrier, 1);
        }
        Ok(by_state)
    }
}

impl TrunkNotes for MemoryStore {
    fn record_leg_checks(
        &self,
        checks: &[LegCheck],
        at: Timestamp,
        full_scan: bool,
    ) -> RepositoryResult<()> {
        let mut state = self.state();
        for check in checks {
            state.leg_checks.insert(check.trunk, (check.clone(), at));
        }
        if full_scan {
            let State {
                trunks,
                leg_checks,
                failures,
                ..
            } = &mut *state;
            leg_checks.retain(|id, _| trunks.contains_key(id));
            failures.retain(|id, _| trunks.contains_key(id));
            state.last_full_scan = Some(at);
        }
        Ok(())
    }

    fn record_provisioning_failure(
        &self,
        trunk: TrunkId,
        failure: ProvisioningFailure,
        at: Timestamp,
    ) -> RepositoryResult<()> {
        let mut state = self.state();
        if state.trunks.contains_key(&trunk) {
            state.failures.insert(trunk, (failure, at));
        }
        Ok(())
    }

    fn provisioning_record(
        &self,
        owner: UserId,
        id: TrunkId,
    ) -> RepositoryResult<TrunkProvisioningRecord> {
        let state = self.state();
        let trunk = state.owned_trunk(owner, id)?;
        Ok(TrunkProvisioningRecord {
            state: state.state_of(id),
            inbound: trunk.inbound_trunk_id.clone(),
            outbound: trunk.outbound_trunk_id.clone(),
            updated_at: trunk.updated_at,
            check: state.leg_checks.get(&id).cloned(),
            last_full_scan: state.last_full_scan,
            failure: state.failures.get(&id).copied(),
        })
    }

    fn claim_probe_slot(
        &self,
        owner: UserId,
        id: TrunkId,
        now: Timestamp,
        spacing: std::time::Duration,
    ) -> RepositoryResult<Option<Timestamp>> {
        let mut state = self.state();
        state.owned_trunk(owner, id)?;
        if let Some(next) = state
            .probe_requests
            .get(&id)
            .map(|last| last.plus(spacing))
            .filter(|next| *next > now)
        {
            return Ok(Some(next));
        }
        state.probe_requests.insert(id, now);
        Ok(None)
    }
}

impl AccountRepository for MemoryStore {
    fn create_user(&self, email: &Email, name: &UserName) -> RepositoryResult<User> {
        let mut state = self.state();
        if state.users.values().any(|user| user.email == *email) {
            return Err(RepositoryError::Conflict);
        }
        let user = User {
            id: id_of(UserId::new, next(&mut state.last_ids.user))?,
            email: email.clone(),
            name: name.clone(),
            created_at: Timestamp::now(),
        };
        state.users.insert(user.id, user.clone());
        Ok(user)
    }

    fn find_user_by_email(&self, email: &Email) -> RepositoryResult<User> {
        self.state()
            .users
            .values()
            .find(|user| user.email == *email)
            .cloned()
            .ok_or(RepositoryError::NotFound)
    }

    fn find_user(&self, id: UserId) -> RepositoryResult<User> {
        self.state()
            .users
            .get(&id)
            .cloned()
            .ok_or(RepositoryError::NotFound)
    }

    fn create_api_key(
        &self,
        owner: UserId,
        name: &ApiKeyName,
        token_hash: &TokenHash,
        max_keys: u32,
    ) -> RepositoryResult<ApiKey> {
        let mut state = self.state();
        if !state.users.contains_key(&owner) {
            return Err(RepositoryError::NotFound);
        }
        let owned = state
            .api_keys
            .values()
            .filter(|(key, _)| key.owner == owner)
            .count();
        if owned >= max_keys as usize {
            return Err(RepositoryError::LimitReached);
        }
        if state.api_keys.values().any(|(_, hash)| hash == token_hash) {
            return Err(RepositoryError::Conflict);
        }
        let key = ApiKey {
            id: id_of(ApiKeyId::new, next(&mut state.last_ids.api_key))?,
            owner,
            name: name.clone(),
            last_used_at: None,
            created_at: Timestamp::now(),
        };
        state.api_keys.insert(key.id, (key.clone(), *token_hash));
        Ok(key)
    }

    fn list_api_keys(&self, owner: UserId) -> RepositoryResult<Vec<ApiKey>> {
        Ok(self
            .state()
            .api_keys
            .values()
            .filter(|(key, _)| key.owner == owner)
            .map(|(key, _)| key.clone())
            .collect())
    }

    fn revoke_api_key(&self, owner: UserId, id: ApiKeyId) -> RepositoryResult<()> {
        let mut state = self.state();
        match state.api_keys.get(&id) {
            Some((key, _)) if key.owner == owner => {
                state.api_keys.remove(&id);
                Ok(())
            }
            _ => Err(RepositoryError::NotFound),
        }
    }

    fn revoke_any_api_key(&self, id: ApiKeyId) -> RepositoryResult<()> {
        self.state()
            .api_keys
            .remove(&id)
            .map(drop)
            .ok_or(RepositoryError::NotFound)
    }

    fn authenticate(&self, token: &ApiToken) -> RepositoryResult<ApiKey> {
        match self.state().api_keys.get(&token.key_id()) {
            // TokenHash equality is constant-time.
            Some((key, hash)) if *hash == token.hash() => Ok(key.clone()),
            _ => Err(RepositoryError::NotFound),
        }
    }

    fn touch_api_key(&self, id: ApiKeyId, at: Timestamp) -> RepositoryResult<()> {
        if let Some((key, _)) = self.state().api_keys.get_mut(&id) {
            key.last_used_at = Some(at);
        }
        Ok(())
    }
}

impl ProvisioningLedger for MemoryStore {
    fn begin_create(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
        lease: &Lease,
    ) -> RepositoryResult<SipTrunk> {
        self.insert_trunk(owner, trunk, max_trunks, Some(lease))
    }

    fn finish_create(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        inbound: &LegId,
        outbound: &LegId,
    ) -> RepositoryResult<SipTrunk> {
        let mut state = self.state();
        state.check_lease(owner, id, lease_token)?;
        if !state.creating(id) {
            return Err(RepositoryError::LeaseLost);
        }
        state.set_state(id, ProvisioningState::Ready);
        let trunk = state
            .trunks
            .get_mut(&id)
            .ok_or(RepositoryError::LeaseLost)?;
        trunk.inbound_trunk_id = Some(inbound.clone());
        trunk.outbound_trunk_id = Some(outbound.clone());
        Ok(trunk.clone())
    }

    fn abandon_create(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        made: &[(LegKind, LegId)],
    ) -> RepositoryResult<()> {
        let mut state = self.state();
        state.check_lease(owner, id, lease_token)?;
        if !state.creating(id) {
            return Err(RepositoryError::LeaseLost);
        }
        state.trunks.remove(&id);
        state.provisioning.remove(&id);
        state.queue(made);
        Ok(())
    }

    fn renew_lease(&self, id: TrunkId, token: &str, until: Timestamp) -> RepositoryResult<()> {
        let mut state = self.state();
        let held = state
            .provisioning
            .get_mut(&id)
            .and_then(|p| p.lease.as_mut())
            .filter(|lease| lease.token == token)
            .ok_or(RepositoryError::LeaseLost)?;
        held.until = until;
        Ok(())
    }

    fn lease_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        working: bool,
    ) -> RepositoryResult<(SipTrunk, ProvisioningState)> {
        let now = Timestamp::now();
        let mut state = self.state();
        let trunk = state.owned_trunk(owner, id)?.clone();
        let current = state.provisioning.get(&id).cloned();
        if let Some(held) = &current {
            let mine = held.lease.as_ref().is_some_and(|l| l.token == lease.token);
            if held.leased_at(now) && !mine {
                return Err(RepositoryError::LeaseLost);
            }
        }
        let provisioning_state = current.map_or(ProvisioningState::Ready, |p| p.state);
        state.provisioning.insert(
            id,
            Provisioning {
                state: if working {
                    ProvisioningState::Repair
                } else {
                    provisioning_state
                },
                lease: Some(lease.clone()),
                retry_at: None,
            },
        );
        Ok((trunk, provisioning_state))
    }

    fn commit_legs(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        commit: &LegCommit,
    ) -> RepositoryResult<TrunkUpdate> {
        let mut state = self.state();
        state.check_lease(owner, id, lease_token)?;
        if state.creating(id) {
            return Err(RepositoryError::LeaseLost);
        }
        let current = state.owned_trunk(owner, id)?.clone();
        let mut update = match &commit.patch {
            Some(patch) => patch
                .apply(&current, Timestamp::now())
                .map_err(RepositoryError::Rejected)?,
            None => TrunkUpdate {
                trunk: current,
                changed: false,
                legs: LegChanges::default(),
            },
        };
        if LegChanges::between(&commit.provisioned, &update.trunk.settings).any() {
            return Err(RepositoryError::LeaseLost);
        }
        if update.changed
            && state.identity_taken_by_the_living(owner, &update.trunk.settings, Some(id))
        {
            return Err(RepositoryError::Conflict);
        }
        if let Some(leg) = &commit.inbound {
            update.trunk.inbound_trunk_id = Some(leg.clone());
        }
        if let Some(leg) = &commit.outbound {
            update.trunk.outbound_trunk_id = Some(leg.clone());
        }
        state.trunks.insert(id, update.trunk.clone());
        state.set_state(id, commit.state);
        state.queue(&commit.remove);
        Ok(update)
    }

    fn release_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        next: ProvisioningState,
        made: &[(LegKind, LegId)],
    ) -> RepositoryResult<()> {
        let mut state = self.state();
        state.check_lease(owner, id, lease_token)?;
        if state.creating(id) {
            return Err(RepositoryError::LeaseLost);
        }
        state.set_state(id, next);
        state.queue(made);
        Ok(())
    }

    fn postpone_repair(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        made: &[(LegKind, LegId)],
        retry_at: Timestamp,
    ) -> RepositoryResult<()> {
        let mut state = self.state();
        state.check_lease(owner, id, lease_token)?;
        if state.creating(id) {
            return Err(RepositoryError::LeaseLost);
        }
        state.provisioning.insert(
            id,
            Provisioning {
                state: ProvisioningState::Repair,
                lease: None,
                retry_at: Some(retry_at),
            },
        );
        state.queue(made);
        Ok(())
    }

    fn delete_and_queue(&self, owner: UserId, id: TrunkId) -> RepositoryResult<Vec<LegRemoval>> {
        let mut state = self.state();
        let trunk = state.owned_trunk(owner, id)?.clone();
        state.trunks.remove(&id);
        state.provisioning.remove(&id);
        state.leg_checks.remove(&id);
        state.failures.remove(&id);
        state.probe_requests.remove(&id);
        let legs: Vec<(LegKind, LegId)> = [
            (LegKind::Inbound, trunk.inbound_trunk_id),
            (LegKind::Outbound, trunk.outbound_trunk_id),
        ]
        .into_iter()
        .filter_map(|(kind, leg)| leg.map(|leg| (kind, leg)))
        .collect();
        Ok(state.queue(&legs))
    }

    fn due_removals(&self, now: Timestamp, limit: usize) -> RepositoryResult<Vec<LegRemoval>> {
        let state = self.state();
        let mut due: Vec<&(LegRemoval, Timestamp)> = state
            .removals
            .values()
            .filter(|(_, due_at)| *due_at <= now)
            .collect();
        due.sort_by_key(|(removal, due_at)| (*due_at, removal.id));
        Ok(due
            .into_iter()
            .take(limit)
            .map(|(removal, _)| removal.clone())
            .collect())
    }

    fn removal_done(&self, id: i64) -> RepositoryResult<()> {
        self.state().removals.remove(&id);
        Ok(())
    }

    fn removal_failed(&self, id: i64, retry_at: Timestamp) -> RepositoryResult<()> {
        if let Some((removal, due_at)) = self.state().removals.get_mut(&id) {
            removal.attempts += 1;
            *due_at = retry_at;
        }
        Ok(())
    }

    fn claim_due(
        &self,
        now: Timestamp,
        lease: &Lease,
        limit: usize,
    ) -> RepositoryResult<Vec<ClaimedTrunk>> {
        let mut state = self.state();
        let due: Vec<TrunkId> = state
            .provisioning
            .iter()
            .filter(|(_, p)| p.state != ProvisioningState::Ready && !p.leased_at(now))
            .filter(|(_, p)| p.retry_at.is_none_or(|at| at < now))
            .map(|(id, _)| *id)
            .take(limit)
            .collect();
        let mut claimed = Vec::new();
        for id in due {
            let Some(owner) = state.trunks.get(&id).map(|t| t.owner) else {
                state.provisioning.remove(&id);
                continue;
            };
            if let Some(provisioning) = state.provisioning.get_mut(&id) {
                provisioning.lease = Some(lease.clone());
                claimed.push(ClaimedTrunk {
                    owner,
                    id,
                    state: provisioning.state,
                });
            }
        }
        Ok(claimed)
    }

    fn leg_references(
        &self,
        after: Option<TrunkId>,
        limit: usize,
    ) -> RepositoryResult<Vec<LegReference>> {
        let now = Timestamp::now();
        let state = self.state();
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(state
            .trunks
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(id, trunk)| {
                let provisioning = state.provisioning.get(id);
                LegReference {
                    owner: trunk.owner,
                    id: *id,
                    state: provisioning.map_or(ProvisioningState::Ready, |p| p.state),
                    inbound: trunk.inbound_trunk_id.clone(),
                    outbound: trunk.outbound_trunk_id.clone(),
                    leased: provisioning.is_some_and(|p| p.leased_at(now)),
                }
            })
            .collect())
    }

    fn mark_for_repair(&self, owner: UserId, id: TrunkId) -> RepositoryResult<()> {
        let now = Timestamp::now();
        let mut state = self.state();
        if state.owned_trunk(owner, id).is_err() {
            return Ok(());
        }
        let ready_and_free = state
            .provisioning
            .get(&id)
            .is_none_or(|p| p.state == ProvisioningState::Ready && !p.leased_at(now));
        if ready_and_free {
            state.set_state(id, ProvisioningState::Repair);
        }
        Ok(())
    }

    fn identity_taken(
        &self,
        owner: UserId,
        settings: &domain::TrunkSettings,
        except: TrunkId,
    ) -> RepositoryResult<bool> {
        Ok(self.state().identity_taken(owner, settings, Some(except)))
    }

    fn take_reconciler_lease(&self, holder: &str, until: Timestamp) -> RepositoryResult<bool> {
        let now = Timestamp::now();
        let mut state = self.state();
        let free = state
            .reconciler
            .as_ref()
            .is_none_or(|(current, current_until)| current == holder || *current_until < now);
        if free {
            state.reconciler = Some((holder.to_owned(), until));
        }
        Ok(free)
    }
}
