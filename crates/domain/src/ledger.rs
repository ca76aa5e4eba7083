//! The provisioning ledger: what the registry persists so that its trunks and the legs on the
//! voice infrastructure converge whatever fails, the process dying between two steps
//! included. `store` implements [`ProvisioningLedger`] beside the trunks, in the same
//! transactions.
//!
//! - Each trunk has a [`ProvisioningState`]. `Creating` rows are hidden from every read and
//!   write of clients until both legs exist; `Repair` rows are visible, but the legs they
//!   reference may be missing or out of date.
//! - Whoever works on a trunk's legs (a request, the reconciler) holds its [`Lease`] first: one
//!   actor at a time per trunk, and a lease that ran out (its holder died) can be taken over.
//! - Legs to remove are queued ([`LegRemoval`]) in the transaction that stops referencing
//!   them, and removed afterwards: a removal is never lost, whenever the process dies.

use crate::{
    LegId, LegKind, NewSipTrunk, RepositoryResult, SipTrunk, SipTrunkPatch, Timestamp, TrunkId,
    TrunkNotes, TrunkSettings, TrunkUpdate, UserId,
};

/// Where a stored trunk stands with the voice infrastructure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisioningState {
    /// Its legs were made for its settings (or there is no infrastructure).
    Ready,
    /// Being created: not shown to clients; rolled back if its lease runs out.
    Creating,
    /// Its legs may be missing or out of date: the reconciler re-creates them.
    Repair,
}

impl ProvisioningState {
    /// The stored code: 0, 1, 2.
    pub fn code(self) -> i16 {
        match self {
            Self::Ready => 0,
            Self::Creating => 1,
            Self::Repair => 2,
        }
    }

    /// The state of a stored code.
    pub fn from_code(code: i16) -> Option<Self> {
        match code {
            0 => Some(Self::Ready),
            1 => Some(Self::Creating),
            2 => Some(Self::Repair),
            _ => None,
        }
    }
}

/// The right to work on a trunk's legs until `until`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// Random, per holder and occasion.
    pub token: String,
    /// When others may take it over.
    pub until: Timestamp,
}

/// A leg queued for removal from the infrastructure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegRemoval {
    /// The queue entry.
    pub id: i64,
    /// Which kind of leg.
    pub kind: LegKind,
    /// The leg.
    pub leg: LegId,
    /// Removals tried so far.
    pub attempts: u32,
}

/// A trunk whose legs someone must look at, leased to the one who claimed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedTrunk {
    /// Its owner.
    pub owner: UserId,
    /// The trunk.
    pub id: TrunkId,
    /// `Creating` (its creator died or gave up: roll back) or `Repair`.
    pub state: ProvisioningState,
}

/// Which legs a stored trunk references: what the reconciler compares with the
/// infrastructure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LegReference {
    /// Its owner.
    pub owner: UserId,
    /// The trunk.
    pub id: TrunkId,
    /// Its state.
    pub state: ProvisioningState,
    /// Its inbound leg.
    pub inbound: Option<LegId>,
    /// Its outbound leg.
    pub outbound: Option<LegId>,
    /// Whether its lease is held now (someone is working on it).
    pub leased: bool,
}

/// What [`ProvisioningLedger::commit_legs`] stores.
#[derive(Debug, Clone)]
pub struct LegCommit {
    /// A client's update to apply with the legs (`None`: a repair, settings unchanged). It is
    /// applied again to the row as it is at commit, so a concurrent rename is not lost.
    pub patch: Option<SipTrunkPatch>,
    /// The settings the legs were made for: if the row, after `patch`, needs other legs
    /// (another request changed it), nothing is stored and the answer is `LeaseLost`.
    pub provisioned: TrunkSettings,
    /// A new inbound leg (`None`: keep the stored one).
    pub inbound: Option<LegId>,
    /// A new outbound leg (`None`: keep the stored one).
    pub outbound: Option<LegId>,
    /// Legs no longer referenced: queued for removal in the same transaction.
    pub remove: Vec<(LegKind, LegId)>,
    /// The state afterwards: `Ready`, or `Repair` when a leg still needs the reconciler.
    pub state: ProvisioningState,
}

/// The provisioning state of trunks, and the queue of legs to remove.
///
/// Every method that takes a lease token fails with `LeaseLost` (and writes nothing) when the
/// row is no longer leased with that token.
pub trait ProvisioningLedger: TrunkNotes + Send + Sync {
    /// Stores a new trunk as `Creating` under `lease`, hidden from clients, with the checks
    /// of [`crate::SipTrunkRepository::create_trunk`] (`Conflict`, `LimitReached`).
    ///
    /// `Conflict` names only a trunk the client can see. A hidden create of the same identity
    /// whose lease ran out (its creator died) is deleted, as every trunk write of the owner
    /// does when it meets one, and this one stored; its legs are found by their tag later
    /// (as the dead holders of a number, or as orphans). One whose lease is still held is a
    /// create in flight: `LeaseLost`, for the caller to wait on.
    fn begin_create(
        &self,
        owner: UserId,
        trunk: &NewSipTrunk,
        max_trunks: u32,
        lease: &Lease,
    ) -> RepositoryResult<SipTrunk>;

    /// Stores both legs of a `Creating` trunk and makes it `Ready` (visible).
    fn finish_create(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        inbound: &LegId,
        outbound: &LegId,
    ) -> RepositoryResult<SipTrunk>;

    /// Rolls a `Creating` trunk back: deletes it and queues `made` for removal, atomically.
    fn abandon_create(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        made: &[(LegKind, LegId)],
    ) -> RepositoryResult<()>;

    /// Takes (or renews) the lease of a visible trunk and gives the trunk, its password
    /// opened, and its state before. With `working` the holder is about to change legs: the
    /// trunk is `Repair` until its commit or release, so that if the holder dies the
    /// reconciler takes the trunk over once the lease runs out. `LeaseLost` when another
    /// holder's lease is still running.
    fn lease_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        lease: &Lease,
        working: bool,
    ) -> RepositoryResult<(SipTrunk, ProvisioningState)>;

    /// Stores new legs (and a client's update) of a leased trunk, queues the legs it replaced,
    /// sets the state and ends the lease, atomically. `Conflict` when the update collides
    /// with another trunk of the owner.
    fn commit_legs(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        commit: &LegCommit,
    ) -> RepositoryResult<TrunkUpdate>;

    /// Gives a lease up without storing legs: the trunk's state becomes `state` (`Repair`:
    /// due at once for the reconciler), and `made` (legs made for nothing) is queued for
    /// removal.
    fn release_trunk(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        state: ProvisioningState,
        made: &[(LegKind, LegId)],
    ) -> RepositoryResult<()>;

    /// Gives a lease up after a repair failed: the trunk stays `Repair` but is not claimed
    /// again before `retry_at` (each trunk backs off on its own, so one that keeps failing
    /// does not hold up the others), and `made` is queued for removal. A client's update may
    /// still lease the trunk meanwhile.
    fn postpone_repair(
        &self,
        owner: UserId,
        id: TrunkId,
        lease_token: &str,
        made: &[(LegKind, LegId)],
        retry_at: Timestamp,
    ) -> RepositoryResult<()>;

    /// Deletes a visible trunk and queues its legs for removal, atomically; gives the queued
    /// removals. `NotFound` as [`crate::SipTrunkRepository::delete_trunk`]. A trunk whose
    /// lease is held is deleted too: its holder's commit then fails with `LeaseLost`.
    fn delete_and_queue(&self, owner: UserId, id: TrunkId) -> RepositoryResult<Vec<LegRemoval>>;

    /// Up to `limit` queued removals due at `now`, oldest first.
    fn due_removals(&self, now: Timestamp, limit: usize) -> RepositoryResult<Vec<LegRemoval>>;

    /// Removal `id` is done (or the leg was already gone).
    fn removal_done(&self, id: i64) -> RepositoryResult<()>;

    /// Removal `id` failed; try again at `retry_at`.
    fn removal_failed(&self, id: i64, retry_at: Timestamp) -> RepositoryResult<()>;

    /// Claims up to `limit` trunks that are not `Ready` and whose lease ran out at `now`,
    /// leasing each with `lease`.
    fn claim_due(
        &self,
        now: Timestamp,
        lease: &Lease,
        limit: usize,
    ) -> RepositoryResult<Vec<ClaimedTrunk>>;

    /// Every trunk's leg references, by id ascending, after `after`, at most `limit`
    /// (hidden `Creating` rows included).
    fn leg_references(
        &self,
        after: Option<TrunkId>,
        limit: usize,
    ) -> RepositoryResult<Vec<LegReference>>;

    /// Marks a `Ready` trunk `Repair`, due at once (its legs were found missing or
    /// divergent). Nothing happens to a trunk in another state or leased now.
    fn mark_for_repair(&self, owner: UserId, id: TrunkId) -> RepositoryResult<()>;

    /// True when another trunk of `owner` than `except` (hidden ones included) has the
    /// (phone number, username, address) of `settings`: checked before legs are made for an
    /// update that would then be refused with `Conflict`.
    fn identity_taken(
        &self,
        owner: UserId,
        settings: &TrunkSettings,
        except: TrunkId,
    ) -> RepositoryResult<bool>;

    /// Extends the lease `token` holds on trunk `id` (visible or being created) to `until`;
    /// `LeaseLost` when `token` no longer holds it (another holder took it over, or the
    /// trunk's work ended or it is gone). A lease that ran out but nobody took over is still
    /// `token`'s, and renewed: nobody else can have worked on the trunk meanwhile.
    fn renew_lease(&self, id: TrunkId, token: &str, until: Timestamp) -> RepositoryResult<()>;

    /// Takes (or renews) the one reconciler lease shared by every process on this database:
    /// true when `holder` holds it until `until`.
    fn take_reconciler_lease(&self, holder: &str, until: Timestamp) -> RepositoryResult<bool>;
}
