//! The one entry for every trunk write: create, update, rename, delete, with or without a
//! voice infrastructure. The choice between a plain store write and a provisioning use case
//! is made here, not by the caller, and every write is told to the [`Observe`] hook
//! (`written`), which the API's caches listen to. Writes that may meet a number another trunk
//! holds are budgeted here too ([`NumberConflicts`]).

use std::sync::Arc;

use domain::{
    NewSipTrunk, NumberConflictBudget, NumberConflictLog, PasswordWithheld, RepositoryError,
    SipTrunk, SipTrunkPatch, SipTrunkPatchInput, SipTrunkRepository, Timestamp, TrunkId,
    TrunkUpdate, UserId, ValidationErrors,
};

use crate::observe::Observe;
use crate::provisioning::{Provisioner, WriteError};

/// Checks a change against the stored trunk: the patch, or every failing field.
pub type PatchParser = Box<
    dyn FnOnce(
            &SipTrunkPatchInput,
            &SipTrunk<PasswordWithheld>,
        ) -> Result<SipTrunkPatch, ValidationErrors>
        + Send,
>;

/// The number-taken answers each account may get, and where they are kept. Only an
/// infrastructure can find a number taken, so only writes through one are budgeted.
#[derive(Clone)]
pub struct NumberConflicts {
    /// The answers given.
    pub log: Arc<dyn NumberConflictLog>,
    /// How many an hour.
    pub budget: NumberConflictBudget,
}

/// Trunk writes for one process: the store, the provisioning when trunks have legs, and who
/// is told of each write.
pub struct Trunks {
    store: Arc<dyn SipTrunkRepository>,
    provisioner: Option<Arc<Provisioner>>,
    observe: Arc<dyn Observe>,
    conflicts: Option<NumberConflicts>,
}

impl Trunks {
    /// Writes to `store`, through `provisioner` when there is one, telling `observe`.
    pub fn new(
        store: Arc<dyn SipTrunkRepository>,
        provisioner: Option<Arc<Provisioner>>,
        observe: Arc<dyn Observe>,
    ) -> Self {
        Self {
            store,
            provisioner,
            observe,
            conflicts: None,
        }
    }

    /// The same writes, giving each account at most `conflicts.budget` number-taken answers
    /// an hour: past it, every write that sets a number answers
    /// [`WriteError::NumberConflictsSpent`] before anything is tried, taken or not.
    pub fn with_number_conflicts(mut self, conflicts: NumberConflicts) -> Self {
        self.conflicts = Some(conflicts);
        self
    }

    /// The budget that applies to a write setting a number: none without an infrastructure.
    fn budgeted(&self) -> Option<&NumberConflicts> {
        self.provisioner.as_ref().and(self.conflicts.as_ref())
    }

    /// `NumberConflictsSpent` when the owner's budget is spent now.
    async fn check_number_budget(&self, owner: UserId) -> Result<(), WriteError> {
        let Some(conflicts) = self.budgeted().cloned() else {
            return Ok(());
        };
        let now = Timestamp::now();
        let since = conflicts.budget.window_start(now);
        let recent = crate::blocking(self.observe.as_ref(), move || {
            conflicts.log.number_conflicts_since(owner, since)
        })
        .await?;
        match self.budgeted().and_then(|c| c.budget.wait(&recent, now)) {
            Some(retry_after) => Err(WriteError::NumberConflictsSpent { retry_after }),
            None => Ok(()),
        }
    }

    /// Passes a write's outcome on, counting a number-taken answer against the owner's
    /// budget; the answer becomes `NumberConflictsSpent` when the budget was spent meanwhile
    /// (by concurrent writes), so that no more than the budget is ever answered.
    async fn count_number_taken<T>(
        &self,
        owner: UserId,
        outcome: Result<T, WriteError>,
    ) -> Result<T, WriteError> {
        let (Err(WriteError::NumberTaken), Some(conflicts)) = (&outcome, self.budgeted().cloned())
        else {
            return outcome;
        };
        let now = Timestamp::now();
        let since = conflicts.budget.window_start(now);
        let answers = conflicts.budget.answers();
        let log = conflicts.log.clone();
        let recorded = crate::blocking(self.observe.as_ref(), move || {
            if log.record_number_conflict(owner, now, since, answers)? {
                return Ok(None);
            }
            log.number_conflicts_since(owner, since).map(Some)
        })
        .await?;
        match recorded {
            None => outcome,
            Some(recent) => Err(WriteError::NumberConflictsSpent {
                retry_after: conflicts
                    .budget
                    .wait(&recent, now)
                    .unwrap_or(std::time::Duration::from_secs(1)),
            }),
        }
    }

    /// Creates `new` for `owner`, with both legs when trunks have legs (nothing is stored
    /// unless both exist); `max_trunks` per account.
    pub async fn create(
        &self,
        owner: UserId,
        new: NewSipTrunk,
        max_trunks: u32,
    ) -> Result<SipTrunk, WriteError> {
        self.check_number_budget(owner).await?;
        let created = match &self.provisioner {
            Some(provisioner) => {
                let created = provisioner.create(owner, new, max_trunks).await;
                self.count_number_taken(owner, created).await
            }
            None if self.store.queues_creates() => crate::queued(self.observe.as_ref(), |answer| {
                self.store.queue_create(owner, new, max_trunks, answer);
            })
            .await
            .map_err(WriteError::Repository),
            None => {
                let store = self.store.clone();
                crate::blocking(self.observe.as_ref(), move || {
                    store.create_trunk(owner, &new, max_trunks)
                })
                .await
                .map_err(WriteError::Repository)
            }
        };
        self.observe.written(owner);
        created
    }

    /// Applies `input` to the owner's trunk `id`, checked by `parse` against the stored
    /// trunk. Through the provisioning when the change may touch a leg (or, on an
    /// infrastructure that writes called numbers, the calling format or country); a plain
    /// store write otherwise (the store checks the rules again inside its transaction).
    pub async fn update(
        &self,
        owner: UserId,
        id: TrunkId,
        input: SipTrunkPatchInput,
        parse: PatchParser,
    ) -> Result<TrunkUpdate, WriteError> {
        if !matches!(input.phone_number, domain::Patch::Absent) {
            self.check_number_budget(owner).await?;
        }
        let with_legs = self.provisioner.as_ref().filter(|provisioner| {
            input.may_change_legs()
                || (provisioner.writes_called_numbers() && input.may_change_dialing())
        });
        let store = self.store.clone();
        let updated = match with_legs {
            Some(provisioner) => {
                let current =
                    crate::blocking(self.observe.as_ref(), move || store.get_trunk(owner, id))
                        .await;
                match current
                    .and_then(|current| parse(&input, &current).map_err(RepositoryError::Rejected))
                {
                    Ok(patch) => {
                        let updated = provisioner.update(owner, id, patch).await;
                        self.count_number_taken(owner, updated).await
                    }
                    Err(error) => Err(WriteError::Repository(error)),
                }
            }
            None => crate::blocking(self.observe.as_ref(), move || {
                let current = store.get_trunk(owner, id)?;
                let patch = parse(&input, &current).map_err(RepositoryError::Rejected)?;
                store.update_trunk(owner, id, &patch)
            })
            .await
            .map_err(WriteError::Repository),
        };
        self.observe.written(owner);
        updated
    }

    /// Gives the owner's trunk `id` the nickname `input` sends (no nickname sent: the trunk
    /// as it is). No leg ever carries the nickname.
    pub async fn rename(
        &self,
        owner: UserId,
        id: TrunkId,
        input: SipTrunkPatchInput,
    ) -> Result<SipTrunk<PasswordWithheld>, RepositoryError> {
        let store = self.store.clone();
        let renamed = crate::blocking(self.observe.as_ref(), move || {
            let current = store.get_trunk(owner, id)?;
            if matches!(input.nickname, domain::Patch::Absent) {
                return Ok(current);
            }
            let patch =
                SipTrunkPatch::parse_for(&input, &current).map_err(RepositoryError::Rejected)?;
            Ok(store
                .update_trunk(owner, id, &patch)?
                .trunk
                .without_password())
        })
        .await;
        self.observe.written(owner);
        renamed
    }

    /// Deletes the owner's trunk `id`; its legs are removed now, or by the reconciler.
    pub async fn delete(&self, owner: UserId, id: TrunkId) -> Result<(), RepositoryError> {
        let deleted = match &self.provisioner {
            Some(provisioner) => provisioner.delete(owner, id).await,
            None => {
                let store = self.store.clone();
                crate::blocking(self.observe.as_ref(), move || store.delete_trunk(owner, id)).await
            }
        };
        self.observe.written(owner);
        deleted
    }
}
