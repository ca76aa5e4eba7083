//! `MemoryStore`: the ports in memory, with the same semantics as the SQL store (ownership,
//! uniqueness, not-found, id order, never-reused ids, timestamps). For tests of other crates
//! and for services that embed the domain without a database.

use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::{Mutex, MutexGuard};

use domain::{
    AccountRepository, ApiKey, ApiKeyId, ApiKeyName, ApiToken, Email, NewSipTrunk,
    PasswordWithheld, RepositoryError, RepositoryResult, SipTrunk, SipTrunkPatch,
    SipTrunkRepository, Timestamp, TokenHash, TrunkId, TrunkListing, TrunkPage, TrunkUpdate, User,
    UserId, UserName,
};

#[derive(Default)]
struct State {
    users: BTreeMap<UserId, User>,
    api_keys: BTreeMap<ApiKeyId, (ApiKey, TokenHash)>,
    trunks: BTreeMap<TrunkId, SipTrunk>,
    /// The last id handed out per table, like a database sequence: ids are never reused.
    last_ids: LastIds,
}

#[derive(Default)]
struct LastIds {
    user: i64,
    api_key: i64,
    trunk: i64,
}

/// Advances a sequence and gives its new value.
fn next(sequence: &mut i64) -> i64 {
    *sequence += 1;
    *sequence
}

impl State {
    fn owned_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<&SipTrunk> {
        self.trunks
            .get(&id)
            .filter(|trunk| trunk.owner == owner)
            .ok_or(RepositoryError::NotFound)
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
    fn list_trunks(&self, owner: UserId, page: TrunkPage) -> RepositoryResult<TrunkListing> {
        let state = self.state();
        let start = page.after.map_or(Bound::Unbounded, Bound::Excluded);
        let trunks: Vec<SipTrunk<PasswordWithheld>> = state
            .trunks
            .range((start, Bound::Unbounded))
            .map(|(_, trunk)| trunk)
            .filter(|trunk| trunk.owner == owner)
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
        let mut state = self.state();
        if !state.users.contains_key(&owner) {
            return Err(RepositoryError::NotFound);
        }
        // The duplicate first, as in the SQL store (which inserts, then counts).
        if state.identity_taken(owner, trunk, None) {
            return Err(RepositoryError::Conflict);
        }
        let owned = state.trunks.values().filter(|t| t.owner == owner).count();
        if owned >= max_trunks as usize {
            return Err(RepositoryError::LimitReached);
        }
        let id = id_of(TrunkId::new, next(&mut state.last_ids.trunk))?;
        let stored = SipTrunk::create(id, owner, trunk.clone(), Timestamp::now());
        state.trunks.insert(id, stored.clone());
        Ok(stored)
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
            if state.identity_taken(owner, &update.trunk.settings, Some(id)) {
                return Err(RepositoryError::Conflict);
            }
            state.trunks.insert(id, update.trunk.clone());
        }
        Ok(update)
    }

    fn delete_trunk(&self, owner: UserId, id: TrunkId) -> RepositoryResult<()> {
        let mut state = self.state();
        state.owned_trunk(owner, id)?;
        state.trunks.remove(&id);
        Ok(())
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
