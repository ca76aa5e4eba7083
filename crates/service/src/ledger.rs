//! The provisioning ledger as the use cases call it: each of the port's synchronous methods
//! as an `async fn` that runs it on the blocking pool ([`crate::blocking()`]), taking
//! references and cloning what the pool's thread needs, so that a call site reads
//! `self.ledger.lease_trunk(owner, id, &lease, false).await?` and nothing more.

use std::sync::Arc;

use domain::{
    ClaimedTrunk, Lease, LegCheck, LegCommit, LegId, LegKind, LegReference, LegRemoval,
    NewSipTrunk, ProvisionError, ProvisioningFailure, ProvisioningLedger, ProvisioningState,
    RepositoryResult, SipTrunk, Timestamp, TrunkId, TrunkSettings, TrunkUpdate, UserId,
};

use crate::observe::Observe;

/// The ledger port, asynchronous. Cheap to clone.
#[derive(Clone)]
pub struct Ledger {
    port: Arc<dyn ProvisioningLedger>,
    observe: Arc<dyn Observe>,
}

impl Ledger {
    /// `port`, its storage failures told to `observe`.
    pub fn new(port: Arc<dyn ProvisioningLedger>, observe: Arc<dyn Observe>) -> Self {
        Self { port, observe }
    }

    /// The synchronous port (for the CLI and tests that call it directly).
    pub fn port(&self) -> &Arc<dyn ProvisioningLedger> {
        &self.port
    }

    async fn run<T, F>(&self, work: F) -> RepositoryResult<T>
    where
        F: FnOnce(&dyn ProvisioningLedger) -> RepositoryResult<T> + Send + 'static,
        T: Send + 'static,
    {
        let port = self.port.clone();
        crate::blocking(self.observe.as_ref(), move || work(port.as_ref())).await
    }

    /// [`ProvisioningLedger::begin_create`].
    pub async fn begin_create(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
        lease: &Lease,
    ) -> RepositoryResult<SipTrunk> {
        let (trunk, lease) = (trunk.clone(), lease.clone());
        self.run(move |port| port.begin_create(owner, &trunk, max_trunks, &lease))
            .await
    }

    /// [`ProvisioningLedger::finish_create`].
    pub async fn finish_create(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        inbound: &LegId,
        outbound: &LegId,
    ) -> RepositoryResult<SipTrunk> {
        let token = lease_token.to_owned();
        let (inbound, outbound) = (inbound.clone(), outbound.clone());
        self.run(move |port| port.finish_create(owner, id, &token, &inbound, &outbound))
            .await
    }

    /// [`ProvisioningLedger::abandon_create`].
    pub async fn abandon_create(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        made: &[(LegKind, LegId)],
    ) -> RepositoryResult<()> {
        let (token, made) = (lease_token.to_owned(), made.to_vec());
        self.run(move |port| port.abandon_create(owner, id, &token, &made))
            .await
    }

    /// [`ProvisioningLedger::lease_trunk`].
    pub async fn lease_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        working: bool,
    ) -> RepositoryResult<(SipTrunk, ProvisioningState)> {
        let lease = lease.clone();
        self.run(move |port| port.lease_trunk(owner, id, &lease, working))
            .await
    }

    /// [`ProvisioningLedger::renew_lease`].
    pub async fn renew_lease(
        &self,
        id: TrunkId,
        token: &str,
        until: Timestamp,
    ) -> RepositoryResult<()> {
        let token = token.to_owned();
        self.run(move |port| port.renew_lease(id, &token, until))
            .await
    }

    /// [`ProvisioningLedger::commit_legs`].
    pub async fn commit_legs(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        commit: LegCommit,
    ) -> RepositoryResult<TrunkUpdate> {
        let token = lease_token.to_owned();
        self.run(move |port| port.commit_legs(owner, id, &token, &commit))
            .await
    }

    /// [`ProvisioningLedger::release_trunk`].
    pub async fn release_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        state: ProvisioningState,
        made: &[(LegKind, LegId)],
    ) -> RepositoryResult<()> {
        let (token, made) = (lease_token.to_owned(), made.to_vec());
        self.run(move |port| port.release_trunk(owner, id, &token, state, &made))
            .await
    }

    /// [`ProvisioningLedger::postpone_repair`].
    pub async fn postpone_repair(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        made: &[(LegKind, LegId)],
        retry_at: Timestamp,
    ) -> RepositoryResult<()> {
        let (token, made) = (lease_token.to_owned(), made.to_vec());
        self.run(move |port| port.postpone_repair(owner, id, &token, &made, retry_at))
            .await
    }

    /// [`ProvisioningLedger::delete_and_queue`].
    pub async fn delete_and_queue(
        &self,
        owner: UserId,
        id: TrunkId,
    ) -> RepositoryResult<Vec<LegRemoval>> {
        self.run(move |port| port.delete_and_queue(owner, id)).await
    }

    /// [`ProvisioningLedger::due_removals`].
    pub async fn due_removals(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> RepositoryResult<Vec<LegRemoval>> {
        self.run(move |port| port.due_removals(now, limit)).await
    }

    /// [`ProvisioningLedger::removal_done`].
    pub async fn removal_done(&self, id: i64) -> RepositoryResult<()> {
        self.run(move |port| port.removal_done(id)).await
    }

    /// [`ProvisioningLedger::removal_failed`].
    pub async fn removal_failed(&self, id: i64, retry_at: Timestamp) -> RepositoryResult<()> {
        self.run(move |port| port.removal_failed(id, retry_at))
            .await
    }

    /// [`ProvisioningLedger::claim_due`].
    pub async fn claim_due(
        &self,
        now: Timestamp,
        lease: &Lease,
        limit: usize,
    ) -> RepositoryResult<Vec<ClaimedTrunk>> {
        let lease = lease.clone();
        self.run(move |port| port.claim_due(now, &lease, limit))
            .await
    }

    /// [`ProvisioningLedger::leg_references`].
    pub async fn leg_references(
        &self,
        after: Option<TrunkId>,
        limit: usize,
    ) -> RepositoryResult<Vec<LegReference>> {
        self.run(move |port| port.leg_references(after, limit))
            .await
    }

    /// [`ProvisioningLedger::mark_for_repair`].
    pub async fn mark_for_repair(&self, owner: UserId, id: TrunkId) -> RepositoryResult<()> {
        self.run(move |port| port.mark_for_repair(owner, id)).await
    }

    /// [`ProvisioningLedger::identity_taken`].
    pub async fn identity_taken(
        &self,
        owner: UserId,
        settings: &TrunkSettings,
        except: TrunkId,
    ) -> RepositoryResult<bool> {
        let settings = settings.clone();
        self.run(move |port| port.identity_taken(owner, &settings, except))
            .await
    }

    /// [`ProvisioningLedger::take_reconciler_lease`].
    pub async fn take_reconciler_lease(
        &self,
        holder: &str,
        until: Timestamp,
    ) -> RepositoryResult<bool> {
        let holder = holder.to_owned();
        self.run(move |port| port.take_reconciler_lease(&holder, until))
            .await
    }

    /// [`TrunkNotes::record_leg_checks`].
    pub async fn record_leg_checks(
        &self,
        checks: Vec<LegCheck>,
        at: Timestamp,
        full_scan: bool,
    ) -> RepositoryResult<()> {
        self.run(move |port| port.record_leg_checks(&checks, at, full_scan))
            .await
    }

    /// [`TrunkNotes::record_provisioning_failure`], logged rather than answered: the note
    /// is for clients' eyes, and failing to take it must not change what the caller does.
    pub async fn note_failure(&self, trunk: TrunkId, error: &ProvisionError) {
        let failure = ProvisioningFailure::of(error);
        let noted = self
            .run(move |port| port.record_provisioning_failure(trunk, failure, Timestamp::now()))
            .await;
        if let Err(error) = noted {
            log::warn!("trunk {trunk}: its provisioning failure was not noted: {error}");
        }
    }
}
