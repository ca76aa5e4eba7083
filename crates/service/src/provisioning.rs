//! The use cases that put trunks on the voice infrastructure: create, update and delete of a
//! trunk with its legs, in one place between the handlers and the ports. A handler parses
//! and renders; these order the ledger's and the infrastructure's calls and compensate.
//!
//! The order of steps, and what a crash between two of them leaves (docs/provisioning.md):
//! - Create: the trunk is stored `Creating` (hidden) under a lease, then the inbound leg is
//!   made, then the outbound, then both ids are stored and the trunk shown. A failure rolls
//!   back (row deleted, legs made queued for removal, in one transaction); a crash leaves a
//!   hidden row whose lease runs out and which the reconciler rolls back, and legs tagged
//!   with its id, which the reconciler's scan removes as orphans.
//! - Update: the trunk is leased; a new outbound leg is made before the old is queued for
//!   removal; an inbound leg is deleted before its successor is made (LiveKit refuses two
//!   with one number), or, where the infrastructure can (Kamailio), swapped make before
//!   break, so that a failure leaves the old leg in force. New ids and the client's change
//!   are stored together. A failure after the old inbound leg is gone leaves the trunk as it
//!   was, in `Repair`: the reconciler makes an inbound leg for the stored settings again
//!   (right away, when it can).
//! - Delete: the trunk is deleted and its legs queued in one transaction; the removal is
//!   tried at once and, if the infrastructure does not answer, by the reconciler.

use std::sync::Arc;
use std::time::{Duration, Instant};

use domain::{
    Capabilities, InboundLeg, InboundStep, Lease, LegChanges, LegCheck, LegCommit, LegId, LegKind,
    LegPlan, LegRemoval, NewSipTrunk, OutboundLeg, ProvisionError, ProvisioningLedger,
    ProvisioningState, RemoteLeg, RepositoryError, SipTrunk, SipTrunkPatch, Timestamp, TrunkId,
    TrunkUpdate, UserId, VoiceInfrastructure,
};

use crate::errors::ReconcileError;
use crate::keeper::KeptLease;
use crate::ledger::Ledger;
use crate::observe::{Observe, Unobserved};

/// How long a request may spend making and removing legs: with the removals a failure
/// queues ([`DELETE_BUDGET`]) it stays under 13 s, so the API answers within 15 s whatever
/// the infrastructure does; the rest is for the database.
pub const REQUEST_BUDGET: Duration = Duration::from_secs(10);

/// How long a lease lasts. A live holder keeps renewing it ([`KeptLease`]), so it may work
/// longer; a dead holder's work is taken over within this time.
pub const LEASE: Duration = Duration::from_secs(5);

/// How long a delete waits for its legs' removal before leaving it to the reconciler.
pub const DELETE_BUDGET: Duration = Duration::from_secs(3);

/// The longest wait between two tries of one removal.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// When a removal tried `attempts` times before should be tried again: 1 s, 2 s, 4 s, ...,
/// at most five minutes.
pub fn backoff_from_now(attempts: u32) -> Timestamp {
    let wait = Duration::from_secs(1u64 << attempts.min(16)).min(MAX_BACKOFF);
    let micros = i64::try_from(wait.as_micros()).unwrap_or(i64::MAX);
    Timestamp::from_unix_micros(Timestamp::now().unix_micros().saturating_add(micros))
        .unwrap_or_else(Timestamp::now)
}

/// What carrying a [`LegPlan`] out made.
#[derive(Debug, Default)]
struct Carried {
    /// Every leg made, to be removed if the commit fails.
    made: Vec<(LegKind, LegId)>,
    /// The new inbound leg, if one was made.
    new_inbound: Option<LegId>,
    /// The new outbound leg, if one was made.
    new_outbound: Option<LegId>,
    /// Legs to queue for removal with the commit.
    remove: Vec<(LegKind, LegId)>,
}

/// The step of a [`LegPlan`] that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Step {
    /// Restyling the outbound leg (nothing was made).
    Restyle,
    /// Making the new outbound leg.
    Outbound,
    /// Swapping the inbound leg in place (the old one is untouched).
    Swap,
    /// Removing a leg that holds the number (it may be gone or not).
    RemoveOld,
    /// Making the new inbound leg after the old ones went.
    CreateInbound,
}

/// Where carrying a [`LegPlan`] out stopped.
#[derive(Debug)]
struct Stopped {
    step: Step,
    error: ProvisionError,
    /// The legs made before it.
    made: Vec<(LegKind, LegId)>,
}

/// Why a trunk write did not happen. The first three are answers for the client; the last two
/// are the contract's "failed to create/update" 500, with their cause for the log.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// A repository outcome for the client (not found, conflict, limit, rejected,
    /// unavailable).
    #[error(transparent)]
    Repository(#[from] RepositoryError),
    /// Another trunk already receives calls for the number.
    #[error("another trunk already receives calls for this number")]
    NumberTaken,
    /// The account got its budget of number-taken answers in the last hour; nothing was
    /// tried. The client may try again after `retry_after`.
    #[error("the account's number-taken answers are spent for now")]
    NumberConflictsSpent {
        /// Until the window has room again.
        retry_after: Duration,
    },
    /// The voice infrastructure refused or did not answer; nothing the client asked for was
    /// stored.
    #[error("the voice infrastructure: {0}")]
    Infrastructure(ProvisionError),
    /// The legs were made (or some were), but the outcome could not be stored: another
    /// holder took the trunk, or the database failed. What was made is queued for removal.
    #[error("storing the outcome: {0}")]
    Interrupted(RepositoryError),
}

/// The trunks' legs on one voice infrastructure, and the ledger that keeps them consistent.
pub struct Provisioner {
    infrastructure: Arc<dyn VoiceInfrastructure>,
    ledger: Ledger,
    budget: Duration,
    observe: Arc<dyn Observe>,
    /// The last answer to "does the infrastructure answer?" and when it was had: `/readyz`
    /// asks at most once per [`REACHABILITY_TTL`], whoever polls it and how often.
    reachability: tokio::sync::Mutex<Option<(Instant, bool)>>,
}

/// How long `/readyz` reuses the infrastructure's last answer.
const REACHABILITY_TTL: Duration = Duration::from_secs(1);

/// How long `/readyz` waits for the infrastructure's answer.
const REACHABILITY_TIMEOUT: Duration = Duration::from_millis(800);

impl std::fmt::Debug for Provisioner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Provisioner({})", self.infrastructure.name())
    }
}

/// `lease`'s token, held for [`LEASE`] from now: what a holder asks for when it takes its
/// lease again (a lease's `until` is fixed when it is made; the keeper has moved it on since).
pub fn renewed(lease: &Lease) -> Lease {
    Lease {
        token: lease.token.clone(),
        until: new_lease(LEASE).until,
    }
}

/// How long a write waits for another holder of its trunk's lease (an update), or for a create
/// in flight of the same trunk (a create): a little longer than a lease, so that a dead
/// holder's is taken over.
const HOLDER_WAIT: Duration = Duration::from_millis(6_000);

/// How often a waiting write looks again.
const HOLDER_POLL: Duration = Duration::from_millis(200);

/// The reason given when a step finds its lease gone: nothing was made.
const LEASE_GONE: &str = "the provisioning lease was lost; nothing was made";

/// A fresh lease for `length` from now.
pub fn new_lease(length: Duration) -> Lease {
    let micros = i64::try_from(length.as_micros()).unwrap_or(i64::MAX);
    Lease {
        token: format!("{:016x}", rand::random::<u64>()),
        until: Timestamp::from_unix_micros(Timestamp::now().unix_micros().saturating_add(micros))
            .unwrap_or_else(Timestamp::now),
    }
}

impl Provisioner {
    /// Provisioning on `infrastructure`, its state in `ledger`.
    pub fn new(
        infrastructure: Arc<dyn VoiceInfrastructure>,
        ledger: Arc<dyn ProvisioningLedger>,
    ) -> Self {
        let observe: Arc<dyn Observe> = Arc::new(Unobserved);
        Self {
            infrastructure,
            ledger: Ledger::new(ledger, observe.clone()),
            budget: REQUEST_BUDGET,
            observe,
            reachability: tokio::sync::Mutex::new(None),
        }
    }

    /// The same, reporting to `observe` (the API's metrics).
    pub fn with_observer(mut self, observe: Arc<dyn Observe>) -> Self {
        self.ledger = Ledger::new(self.ledger.port().clone(), observe.clone());
        self.observe = observe;
        self
    }

    /// What the provisioning reports to.
    pub fn observer(&self) -> &dyn Observe {
        self.observe.as_ref()
    }

    /// Runs the ledger's blocking `work` on the pool (see [`crate::blocking()`]).
    pub async fn blocking<T, F>(&self, work: F) -> Result<T, RepositoryError>
    where
        F: FnOnce() -> domain::RepositoryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        crate::blocking(self.observe.as_ref(), work).await
    }

    /// `/readyz`'s `provisioning`: the infrastructure's name (`kamailio`), with
    /// ` (unreachable)` while it does not answer. Asked at most once a second; one probe at
    /// a time (the others wait for its answer), cut off after 800 ms.
    pub async fn readiness(&self) -> String {
        let mut last = self.reachability.lock().await;
        let reachable = match *last {
            Some((asked, reachable)) if asked.elapsed() < REACHABILITY_TTL => reachable,
            _ => {
                let answer = tokio::time::timeout(
                    REACHABILITY_TIMEOUT,
                    self.infrastructure.check_reachable(),
                )
                .await;
                let reachable = matches!(answer, Ok(Ok(())));
                *last = Some((Instant::now(), reachable));
                reachable
            }
        };
        if reachable {
            self.name().to_owned()
        } else {
            format!("{} (unreachable)", self.name())
        }
    }

    /// The same with another budget per request (tests).
    pub fn with_budget(mut self, budget: Duration) -> Self {
        self.budget = budget;
        self
    }

    /// The infrastructure's name (`livekit`, `kamailio`).
    pub fn name(&self) -> &'static str {
        self.infrastructure.name()
    }

    /// The ledger.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// The infrastructure.
    pub fn infrastructure(&self) -> &Arc<dyn VoiceInfrastructure> {
        &self.infrastructure
    }

    /// True when the infrastructure writes the called number in the trunk's calling format
    /// itself, so that a change of the format or the country is provisioned too.
    pub fn writes_called_numbers(&self) -> bool {
        self.infrastructure.writes_called_numbers()
    }

    /// What the infrastructure can do that changes a plan.
    fn capabilities(&self) -> Capabilities {
        Capabilities {
            writes_called_numbers: self.infrastructure.writes_called_numbers(),
            replaces_inbound_in_place: self.infrastructure.replaces_inbound_in_place(),
        }
    }

    /// Gives outbound leg `id` `trunk`'s calling format and country, in place.
    async fn restyle(
        &self,
        deadline: Instant,
        kept: &KeptLease,
        id: &LegId,
        trunk: &SipTrunk,
    ) -> Result<(), ProvisionError> {
        Self::still_held(kept)?;
        let leg = OutboundLeg::of(trunk);
        self.call(
            deadline,
            "restyle outbound leg",
            self.infrastructure.restyle_outbound(id, &leg),
        )
        .await
    }

    /// Runs `call` on the infrastructure until `deadline`: a call cut off counts as
    /// "unavailable" (and may still have happened: see the port's documentation).
    pub(crate) async fn call<T>(
        &self,
        deadline: Instant,
        what: &str,
        call: domain::ProvisionFuture<'_, T>,
    ) -> Result<T, ProvisionError> {
        let left = deadline.saturating_duration_since(Instant::now());
        let outcome = self.timed_call(left, what, call).await;
        let label = match &outcome {
            Ok(_) => "ok",
            Err(ProvisionError::NumberTaken) => "number_taken",
            Err(ProvisionError::Refused(_)) => "refused",
            Err(ProvisionError::Unauthorized(_)) => "unauthorized",
            Err(ProvisionError::Unavailable(_)) => "unavailable",
        };
        self.observe
            .infrastructure_call(self.infrastructure.name(), what, label);
        outcome
    }

    async fn timed_call<T>(
        &self,
        left: Duration,
        what: &str,
        call: domain::ProvisionFuture<'_, T>,
    ) -> Result<T, ProvisionError> {
        match tokio::time::timeout(left, call).await {
            Ok(outcome) => outcome.inspect_err(|error| {
                log::warn!("{} {what}: {error}", self.infrastructure.name());
            }),
            Err(_) => {
                log::warn!(
                    "{} {what}: no answer within the request's budget",
                    self.infrastructure.name()
                );
                Err(ProvisionError::Unavailable(
                    "no answer within the request's budget".into(),
                ))
            }
        }
    }

    /// Keeps the lease `token` holds on trunk `id` alive until the returned guard is dropped.
    pub(crate) fn keep(&self, id: TrunkId, token: &str) -> KeptLease {
        let (ledger, token) = (self.ledger.clone(), token.to_owned());
        KeptLease::start(LEASE, move |until| {
            let (ledger, token) = (ledger.clone(), token.clone());
            async move { ledger.renew_lease(id, &token, until).await.map(|()| true) }
        })
    }

    /// `Unavailable` unless `kept` is still held: asked before every step that changes the
    /// infrastructure, so that no leg is made for a trunk another holder has taken over.
    fn still_held(kept: &KeptLease) -> Result<(), ProvisionError> {
        if kept.held() {
            Ok(())
        } else {
            Err(ProvisionError::Unavailable(LEASE_GONE.into()))
        }
    }

    /// Makes the inbound leg `trunk`'s settings need, within `deadline` (see
    /// [`Provisioner::freeing_dead_holders`]), while `kept` is held.
    pub(crate) async fn make_inbound(
        &self,
        deadline: Instant,
        kept: &KeptLease,
        trunk: &SipTrunk,
    ) -> Result<LegId, ProvisionError> {
        Self::still_held(kept)?;
        let leg = InboundLeg::of(trunk);
        let keep = trunk.inbound_trunk_id.as_ref();
        self.freeing_dead_holders(deadline, "create inbound leg", &leg, keep, || {
            self.infrastructure.create_inbound(&leg)
        })
        .await
    }

    /// Puts the inbound leg `trunk`'s settings need in force in place of `old`, make before
    /// break, within `deadline` (only on an infrastructure that
    /// [replaces inbound legs in place](VoiceInfrastructure::replaces_inbound_in_place); see
    /// [`Provisioner::freeing_dead_holders`]).
    async fn swap_inbound(
        &self,
        deadline: Instant,
        kept: &KeptLease,
        old: &LegId,
        trunk: &SipTrunk,
    ) -> Result<LegId, ProvisionError> {
        Self::still_held(kept)?;
        let leg = InboundLeg::of(trunk);
        self.freeing_dead_holders(deadline, "replace inbound leg", &leg, Some(old), || {
            self.infrastructure.replace_inbound(old, &leg)
        })
        .await
    }

    /// Runs `attempt` (an inbound leg's create or swap). When the number is taken by a leg
    /// the registry made for a trunk that no longer exists (a create that died, a call that
    /// completed after its client gave up), or for this very trunk but not referenced by it
    /// (`keep`: an update that died; the caller holds the trunk's lease now, so nobody else
    /// works on its legs), that leg is removed and `attempt` run once more, instead of
    /// refusing the number until the reconciler's scan.
    async fn freeing_dead_holders<'a>(
        &'a self,
        deadline: Instant,
        what: &str,
        leg: &InboundLeg,
        keep: Option<&LegId>,
        attempt: impl Fn() -> domain::ProvisionFuture<'a, LegId>,
    ) -> Result<LegId, ProvisionError> {
        let first = self.call(deadline, what, attempt()).await;
        if first != Err(ProvisionError::NumberTaken)
            || !self.clear_dead_holders(deadline, leg, keep).await
        {
            return first;
        }
        self.call(deadline, what, attempt()).await
    }

    /// Removes the registry's inbound legs for `wanted`'s number whose trunk no longer exists,
    /// and those of `wanted`'s own trunk other than `keep`; true when one was removed.
    async fn clear_dead_holders(
        &self,
        deadline: Instant,
        wanted: &InboundLeg,
        keep: Option<&LegId>,
    ) -> bool {
        let number = wanted.number.as_str();
        let Ok(legs) = self
            .call(
                deadline,
                "list legs holding a number",
                self.infrastructure.inbound_legs_holding(number),
            )
            .await
        else {
            return false;
        };
        let mut cleared = false;
        for leg in legs {
            let Some(tag) = leg.owner else { continue };
            if leg.kind != LegKind::Inbound || !leg.numbers.iter().any(|n| n == number) {
                continue;
            }
            let dead = if tag.trunk == wanted.trunk {
                keep != Some(&leg.id)
            } else {
                let before = TrunkId::new(tag.trunk.get() - 1);
                let exists = self.ledger.leg_references(before, 1).await;
                // Ids are never reused: a trunk that is not there now never will be.
                exists.is_ok_and(|found| found.first().is_none_or(|r| r.id != tag.trunk))
            };
            if dead
                && self
                    .remove_leg(deadline, LegKind::Inbound, &leg.id)
                    .await
                    .is_ok()
            {
                log::warn!(
                    "removed inbound leg {} of trunk {}, which no trunk references, to free its number",
                    leg.id.as_str(),
                    tag.trunk
                );
                cleared = true;
            }
        }
        cleared
    }

    /// Makes the outbound leg `trunk`'s settings need, within `deadline`.
    pub(crate) async fn make_outbound(
        &self,
        deadline: Instant,
        kept: &KeptLease,
        trunk: &SipTrunk,
    ) -> Result<LegId, ProvisionError> {
        Self::still_held(kept)?;
        let leg = OutboundLeg::of(trunk);
        self.call(
            deadline,
            "create outbound leg",
            self.infrastructure.create_outbound(&leg),
        )
        .await
    }

    /// Removes leg `leg` within `deadline` ("not found" counts as removed).
    pub(crate) async fn remove_leg(
        &self,
        deadline: Instant,
        kind: LegKind,
        leg: &LegId,
    ) -> Result<(), ProvisionError> {
        self.call(
            deadline,
            "remove leg",
            self.infrastructure.delete_leg(kind, leg),
        )
        .await
    }

    /// Creates `new` for `owner` with both legs; nothing is stored unless both exist.
    pub async fn create(
        &self,
        owner: UserId,
        new: NewSipTrunk,
        max_trunks: u32,
    ) -> Result<SipTrunk, WriteError> {
        let lease = new_lease(LEASE);
        let pending = match self.begin_when_free(owner, &new, max_trunks, &lease).await {
            Ok(pending) => pending,
            Err(RepositoryError::LeaseLost) => {
                log::warn!("user {owner}: a create of the same trunk is still in flight");
                return Err(WriteError::Interrupted(RepositoryError::LeaseLost));
            }
            Err(other) => return Err(other.into()),
        };
        // As for an update, the legs' budget starts once the row is stored.
        let deadline = Instant::now() + self.budget;
        let kept = self.keep(pending.id, &lease.token);
        let inbound = self.make_inbound(deadline, &kept, &pending).await;
        let inbound = match inbound {
            Ok(id) => id,
            Err(error) => {
                self.abandon(owner, pending.id, &lease, Vec::new()).await;
                return Err(match error {
                    ProvisionError::NumberTaken => WriteError::NumberTaken,
                    other => WriteError::Infrastructure(other),
                });
            }
        };
        let outbound = self.make_outbound(deadline, &kept, &pending).await;
        let outbound = match outbound {
            Ok(id) => id,
            Err(error) => {
                let made = vec![(LegKind::Inbound, inbound)];
                self.abandon(owner, pending.id, &lease, made).await;
                return Err(WriteError::Infrastructure(error));
            }
        };
        let id = pending.id;
        let finished = self
            .ledger
            .finish_create(owner, id, &lease.token, &inbound, &outbound)
            .await;
        match finished {
            Ok(trunk) => Ok(trunk),
            Err(error) => {
                log::error!("trunk {id}: storing its new legs failed ({error}); removing them");
                let made = vec![(LegKind::Inbound, inbound), (LegKind::Outbound, outbound)];
                self.abandon(owner, id, &lease, made).await;
                Err(WriteError::Interrupted(error))
            }
        }
    }

    /// Stores `new` as a hidden create, waiting while a create of the same trunk (same number,
    /// username and address) is in flight: a client's retry beside its own earlier request,
    /// or right after the process handling it died (the store takes a dead creator's row
    /// over once its lease ran out, within [`LEASE`]). Either way the answer is then the
    /// truth: 409 only for a trunk the client can see. Gives up with `LeaseLost` after
    /// [`HOLDER_WAIT`].
    async fn begin_when_free(
        &self,
        owner: UserId,
        new: &NewSipTrunk,
        max_trunks: u32,
        lease: &Lease,
    ) -> Result<SipTrunk, RepositoryError> {
        let give_up = Instant::now() + HOLDER_WAIT;
        loop {
            match self
                .ledger
                .begin_create(owner, new, max_trunks, &renewed(lease))
                .await
            {
                Err(RepositoryError::LeaseLost) if Instant::now() < give_up => {
                    tokio::time::sleep(HOLDER_POLL).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// Rolls a create back; the legs it made are removed now if the infrastructure answers.
    async fn abandon(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        made: Vec<(LegKind, LegId)>,
    ) {
        let rolled_back = self
            .ledger
            .abandon_create(owner, id, &lease.token, &made)
            .await;
        match rolled_back {
            Ok(()) => self.remove_due_now(DELETE_BUDGET).await,
            Err(error) => {
                // The row is gone or its lease was taken over: the reconciler rolls it
                // back; the legs made here are removed now, or found as orphans later.
                log::error!("trunk {id}: rolling back its create failed: {error}");
                let deadline = Instant::now() + DELETE_BUDGET;
                for (kind, leg) in &made {
                    let _ = self.remove_leg(deadline, *kind, leg).await;
                }
            }
        }
    }

    /// Applies `patch` to the owner's trunk `id`, re-creating the legs it changes.
    pub async fn update(
        &self,
        owner: UserId,
        id: TrunkId,
        patch: SipTrunkPatch,
    ) -> Result<TrunkUpdate, WriteError> {
        let lease = new_lease(LEASE);
        let leased = self.lease_when_free(owner, id, &lease).await;
        // The budget for the legs starts once the trunk is ours: a wait for another holder
        // (at most HOLDER_WAIT) comes on top.
        let deadline = Instant::now() + self.budget;
        let (current, state) = match leased {
            Ok(leased) => leased,
            Err(RepositoryError::LeaseLost) => {
                log::warn!("trunk {id}: another request or the reconciler is working on its legs");
                return Err(WriteError::Interrupted(RepositoryError::LeaseLost));
            }
            Err(other) => return Err(other.into()),
        };
        let kept = self.keep(id, &lease.token);
        let next = match patch.apply(&current, Timestamp::now()) {
            Ok(next) => next,
            Err(errors) => {
                self.release(owner, id, &lease, state, Vec::new()).await;
                return Err(RepositoryError::Rejected(errors).into());
            }
        };
        let legs = next.legs;
        if !legs.any() {
            return self
                .update_without_legs(owner, &current, state, patch, next, &lease, &kept, deadline)
                .await;
        }
        self.hold_for_legs(owner, id, &next.trunk, state, &lease)
            .await?;
        self.replace_legs(
            owner, &current, state, &patch, next, legs, &lease, &kept, deadline,
        )
        .await
    }

    /// Takes the trunk's lease for an update, waiting while another holder has it: a live one
    /// (a concurrent update, the reconciler) usually finishes within seconds, and a dead one's
    /// lease runs out within [`LEASE`], so a client's retry right after a crash succeeds
    /// instead of failing. Gives up with `LeaseLost` after [`HOLDER_WAIT`].
    async fn lease_when_free(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
    ) -> Result<(SipTrunk, ProvisioningState), RepositoryError> {
        let give_up = Instant::now() + HOLDER_WAIT;
        loop {
            match self
                .ledger
                .lease_trunk(owner, id, &renewed(lease), false)
                .await
            {
                Err(RepositoryError::LeaseLost) if Instant::now() < give_up => {
                    tokio::time::sleep(HOLDER_POLL).await;
                }
                outcome => return outcome,
            }
        }
    }

    /// An update that re-creates no leg (nickname, calling format, country): at most the
    /// outbound leg is restyled in place, on an infrastructure that writes called numbers;
    /// then the change is stored under `lease`.
    #[allow(clippy::too_many_arguments)]
    async fn update_without_legs(
        &self,
        owner: UserId,
        current: &SipTrunk,
        state: ProvisioningState,
        patch: SipTrunkPatch,
        next: TrunkUpdate,
        lease: &Lease,
        kept: &KeptLease,
        deadline: Instant,
    ) -> Result<TrunkUpdate, WriteError> {
        let id = current.id;
        let plan = LegPlan::for_update(current, &next.trunk, next.legs, self.capabilities());
        if let Some(outbound) = &plan.restyle_outbound {
            if let Err(error) = self.restyle(deadline, kept, outbound, &next.trunk).await {
                self.release(owner, id, lease, state, Vec::new()).await;
                return Err(WriteError::Infrastructure(error));
            }
        }
        let commit = LegCommit {
            patch: Some(patch),
            provisioned: next.trunk.settings.clone(),
            inbound: None,
            outbound: None,
            remove: Vec::new(),
            state,
        };
        let committed = self
            .ledger
            .commit_legs(owner, id, &lease.token, commit)
            .await;
        match committed {
            Ok(update) => Ok(update),
            Err(error) => {
                self.release(owner, id, lease, state, Vec::new()).await;
                Err(error.into())
            }
        }
    }

    /// Before an update makes legs: the new settings must not be another trunk's identity
    /// (409), and the trunk is marked `Repair` under `lease`, so that from here on a death
    /// leaves it to the reconciler. On a refusal the lease is given up.
    async fn hold_for_legs(
        &self,
        owner: UserId,
        id: TrunkId,
        next: &SipTrunk,
        state: ProvisioningState,
        lease: &Lease,
    ) -> Result<(), WriteError> {
        let taken = self.ledger.identity_taken(owner, &next.settings, id).await;
        let refused = match taken {
            Ok(false) => {
                return self
                    .ledger
                    .lease_trunk(owner, id, &renewed(lease), true)
                    .await
                    .map(|_| ())
                    .map_err(|error| match error {
                        RepositoryError::LeaseLost => WriteError::Interrupted(error),
                        other => other.into(),
                    });
            }
            Ok(true) => RepositoryError::Conflict,
            Err(error) => error,
        };
        self.release(owner, id, lease, state, Vec::new()).await;
        Err(refused.into())
    }

    /// The leg steps of an update, under `lease`.
    #[allow(clippy::too_many_arguments)]
    async fn replace_legs(
        &self,
        owner: UserId,
        current: &SipTrunk,
        state: ProvisioningState,
        patch: &SipTrunkPatch,
        next: TrunkUpdate,
        legs: LegChanges,
        lease: &Lease,
        kept: &KeptLease,
        deadline: Instant,
    ) -> Result<TrunkUpdate, WriteError> {
        let id = current.id;
        let plan = LegPlan::for_update(current, &next.trunk, legs, self.capabilities());
        let carried = match self.carry_out(&plan, &next.trunk, kept, deadline).await {
            Ok(carried) => carried,
            Err(stopped) => {
                return Err(self
                    .update_stopped(owner, id, lease, state, stopped, deadline)
                    .await)
            }
        };
        let after = if state == ProvisioningState::Ready {
            ProvisioningState::Ready
        } else {
            ProvisioningState::Repair
        };
        let stored_made = carried.made.clone();
        let commit = LegCommit {
            patch: Some(patch.clone()),
            provisioned: next.trunk.settings.clone(),
            inbound: carried.new_inbound,
            outbound: carried.new_outbound,
            remove: carried.remove,
            state: after,
        };
        let committed = self
            .ledger
            .commit_legs(owner, id, &lease.token, commit)
            .await;
        match committed {
            Ok(update) => {
                self.remove_due_now(DELETE_BUDGET).await;
                Ok(update)
            }
            Err(error) => {
                log::error!("trunk {id}: storing its new legs failed: {error}");
                let left = if legs.inbound {
                    ProvisioningState::Repair
                } else {
                    state
                };
                self.release(owner, id, lease, left, stored_made).await;
                if legs.inbound {
                    self.repair_soon(owner, id, deadline).await;
                }
                Err(match error {
                    RepositoryError::Conflict | RepositoryError::NotFound => error.into(),
                    _ => WriteError::Interrupted(error),
                })
            }
        }
    }

    /// An update's plan stopped at a step: the lease is given up with what the step leaves
    /// (the trunk as it was, or in `Repair` once the old inbound leg may be gone, repaired
    /// at once when the budget allows), and the client's failure.
    async fn update_stopped(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        state: ProvisioningState,
        stopped: Stopped,
        deadline: Instant,
    ) -> WriteError {
        let Stopped { step, error, made } = stopped;
        self.ledger.note_failure(id, &error).await;
        let left = match step {
            Step::Restyle | Step::Outbound => state,
            // The old leg is still in force, untouched. An answer cut off by the deadline may
            // hide a swap that happened after all: the reconciler looks at the trunk soon
            // (Repair) and puts the stored settings back.
            Step::Swap => match error {
                ProvisionError::NumberTaken | ProvisionError::Refused(_) => state,
                _ => ProvisioningState::Repair,
            },
            // The old inbound leg may be gone: the stored trunk stays as it was and gets an
            // inbound leg for those settings again.
            Step::RemoveOld | Step::CreateInbound => ProvisioningState::Repair,
        };
        self.release(owner, id, lease, left, made).await;
        if matches!(step, Step::RemoveOld | Step::CreateInbound) {
            self.repair_soon(owner, id, deadline).await;
        }
        match (step, error) {
            (Step::Swap | Step::CreateInbound, ProvisionError::NumberTaken) => {
                WriteError::NumberTaken
            }
            (_, error) => WriteError::Infrastructure(error),
        }
    }

    /// Carries `plan` out for `trunk`'s settings within `deadline`: restyle, outbound,
    /// inbound. Stops at the first step that fails, saying which and what was made so far.
    async fn carry_out(
        &self,
        plan: &LegPlan,
        trunk: &SipTrunk,
        kept: &KeptLease,
        deadline: Instant,
    ) -> Result<Carried, Stopped> {
        let mut carried = Carried::default();
        let stop = |step, error, made| Stopped { step, error, made };
        if let Some(outbound) = &plan.restyle_outbound {
            if let Err(error) = self.restyle(deadline, kept, outbound, trunk).await {
                return Err(stop(Step::Restyle, error, carried.made));
            }
        }
        if let Some(replaced) = &plan.new_outbound {
            match self.make_outbound(deadline, kept, trunk).await {
                Ok(leg) => {
                    carried.made.push((LegKind::Outbound, leg.clone()));
                    carried.new_outbound = Some(leg);
                    if let Some(old) = replaced {
                        carried.remove.push((LegKind::Outbound, old.clone()));
                    }
                }
                Err(error) => return Err(stop(Step::Outbound, error, carried.made)),
            }
        }
        let inbound = match &plan.new_inbound {
            None => None,
            Some(InboundStep::Swap { old }) => Some(
                self.swap_inbound(deadline, kept, old, trunk)
                    .await
                    .map_err(|error| (Step::Swap, error)),
            ),
            Some(InboundStep::RemoveThenCreate { remove_first }) => {
                let mut removed = Self::still_held(kept);
                for leg in remove_first {
                    if removed.is_err() {
                        break;
                    }
                    removed = self.remove_leg(deadline, LegKind::Inbound, leg).await;
                }
                Some(match removed {
                    Ok(()) => self
                        .make_inbound(deadline, kept, trunk)
                        .await
                        .map_err(|error| (Step::CreateInbound, error)),
                    Err(error) => Err((Step::RemoveOld, error)),
                })
            }
        };
        match inbound {
            None => {}
            Some(Ok(leg)) => {
                carried.made.push((LegKind::Inbound, leg.clone()));
                carried.new_inbound = Some(leg);
            }
            Some(Err((step, error))) => return Err(stop(step, error, carried.made)),
        }
        carried.remove.extend(plan.stray.iter().cloned());
        Ok(carried)
    }

    /// Gives the lease up; `made` is queued for removal, and removed now if it can be.
    async fn release(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        state: ProvisioningState,
        made: Vec<(LegKind, LegId)>,
    ) {
        let released = self
            .ledger
            .release_trunk(owner, id, &lease.token, state, &made)
            .await;
        if let Err(error) = released {
            log::error!("trunk {id}: giving its lease up failed: {error}");
        }
        if !made.is_empty() {
            self.remove_due_now(DELETE_BUDGET).await;
        }
    }

    /// After a failed update took the old inbound leg away: repairs the trunk now if the
    /// budget allows (the reconciler does it otherwise).
    async fn repair_soon(&self, owner: UserId, id: TrunkId, deadline: Instant) {
        if deadline.saturating_duration_since(Instant::now()) < Duration::from_millis(500) {
            return;
        }
        let lease = new_lease(LEASE);
        if self
            .ledger
            .lease_trunk(owner, id, &lease, true)
            .await
            .is_err()
        {
            return;
        }
        let retry_now = Timestamp::now();
        match self
            .repair(owner, id, &lease, None, deadline, retry_now)
            .await
        {
            Ok(_) => log::info!("trunk {id}: its legs were restored at once"),
            Err(error) => log::warn!("trunk {id}: left to the reconciler: {error}"),
        }
    }

    /// Gives the owner's trunk `id` (leased with `lease`) legs that serve its stored settings
    /// ([`LegPlan::for_repair`]: keeps each leg that does, replaces each that does not,
    /// outbound: create, then queue the old; inbound: delete, then create), and stores the
    /// result. `remote` is the infrastructure's legs when the caller listed them already.
    /// Gives what changed; on failure the trunk is left in repair, not to be claimed again
    /// before `retry_at`.
    pub async fn repair(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        remote: Option<&[RemoteLeg]>,
        deadline: Instant,
        retry_at: Timestamp,
    ) -> Result<String, ReconcileError> {
        let (current, _) = self
            .ledger
            .lease_trunk(owner, id, &renewed(lease), true)
            .await?;
        let kept = self.keep(id, &lease.token);
        let infrastructure = self.infrastructure().clone();
        let listed;
        let remote = match remote {
            Some(remote) => remote,
            None => {
                listed = self
                    .call(deadline, "list legs", infrastructure.list_legs())
                    .await?;
                &listed[..]
            }
        };
        let plan = LegPlan::for_repair(&current, remote);
        let carried = match self.carry_out(&plan, &current, &kept, deadline).await {
            Ok(carried) => carried,
            Err(stopped) => {
                self.ledger.note_failure(id, &stopped.error).await;
                self.leave_for_repair(owner, id, lease, stopped.made, retry_at)
                    .await;
                return Err(stopped.error.into());
            }
        };
        let mut detail = Vec::new();
        if let Some(leg) = &carried.new_outbound {
            detail.push(replaced(LegKind::Outbound, &current.outbound_trunk_id, leg));
        }
        if let Some(leg) = &carried.new_inbound {
            detail.push(replaced(LegKind::Inbound, &current.inbound_trunk_id, leg));
        }
        let made = carried.made.clone();
        let commit = LegCommit {
            patch: None,
            provisioned: current.settings.clone(),
            inbound: carried.new_inbound,
            outbound: carried.new_outbound,
            remove: carried.remove,
            state: ProvisioningState::Ready,
        };
        let committed = self
            .ledger
            .commit_legs(owner, id, &lease.token, commit)
            .await;
        match committed {
            Ok(update) => {
                // The repair saw (or made) both legs as the settings need them: the status
                // endpoint says so until the next full scan looks again.
                let check = LegCheck {
                    trunk: id,
                    inbound: update.trunk.inbound_trunk_id.map(|leg| (leg, true)),
                    outbound: update.trunk.outbound_trunk_id.map(|leg| (leg, true)),
                };
                let noted = self
                    .ledger
                    .record_leg_checks(vec![check], Timestamp::now(), false)
                    .await;
                if let Err(error) = noted {
                    log::warn!("trunk {id}: its repaired legs were not noted: {error}");
                }
                Ok(if detail.is_empty() {
                    "its legs were right".into()
                } else {
                    detail.join(", ")
                })
            }
            Err(error) => {
                self.leave_for_repair(owner, id, lease, made, retry_at)
                    .await;
                Err(error.into())
            }
        }
    }

    /// A repair that could not finish gives its lease up: the trunk stays `Repair`, to be
    /// claimed again from `retry_at`, and the legs it `made` are queued for removal.
    async fn leave_for_repair(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        made: Vec<(LegKind, LegId)>,
        retry_at: Timestamp,
    ) {
        if let Err(release) = self
            .ledger
            .postpone_repair(owner, id, &lease.token, &made, retry_at)
            .await
        {
            log::error!("trunk {id}: giving its lease up failed: {release}");
        }
    }

    /// Deletes the owner's trunk `id` and removes its legs (now if the infrastructure
    /// answers within [`DELETE_BUDGET`], later by the reconciler otherwise).
    pub async fn delete(&self, owner: UserId, id: TrunkId) -> Result<(), RepositoryError> {
        let queued = self.ledger.delete_and_queue(owner, id).await?;
        let _ = self.remove(queued, Instant::now() + DELETE_BUDGET).await;
        Ok(())
    }

    /// Works the due removals off until `budget` is spent.
    pub async fn remove_due_now(&self, budget: Duration) {
        let due = self.ledger.due_removals(Timestamp::now(), 20).await;
        match due {
            Ok(due) => {
                self.remove(due, Instant::now() + budget).await;
            }
            Err(error) => log::warn!("reading the removal queue failed: {error}"),
        }
    }

    /// Removes `removals` until `deadline`; each done is taken off the queue, each failed is
    /// put back with a back-off.
    pub async fn remove(&self, removals: Vec<LegRemoval>, deadline: Instant) -> usize {
        let mut done = 0;
        for removal in removals {
            if Instant::now() >= deadline {
                break;
            }
            let outcome = self.remove_leg(deadline, removal.kind, &removal.leg).await;
            let entry = removal.id;
            let recorded = match outcome {
                Ok(()) => {
                    done += 1;
                    self.ledger.removal_done(entry).await
                }
                Err(_) => {
                    let retry_at = backoff_from_now(removal.attempts);
                    self.ledger.removal_failed(entry, retry_at).await
                }
            };
            if let Err(error) = recorded {
                log::warn!("recording removal {entry} failed: {error}");
            }
        }
        done
    }
}

/// `inbound ST_old -> ST_new` (`none` when there was no leg).
fn replaced(kind: LegKind, old: &Option<LegId>, new: &LegId) -> String {
    let old = old.as_ref().map_or("none", |leg| leg.as_str());
    format!("{} {old} -> {}", kind.as_str(), new.as_str())
}
