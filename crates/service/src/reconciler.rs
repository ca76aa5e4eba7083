//! The reconciler: makes the infrastructure hold exactly the legs the stored trunks
//! reference. It runs in `serve` (one process at a time per database, by the ledger's
//! reconciler lease) and as `sip-trunks reconcile [--dry-run]`.
//!
//! A pass, in order:
//! 1. queued removals that are due are tried (each failure backs off on its own);
//! 2. trunks whose lease ran out are claimed: a `Creating` one (its request died) is rolled
//!    back with the legs tagged with its id; a `Repair` one gets legs for its settings;
//! 3. now and then, a full scan: legs tagged by the registry that no trunk references (older
//!    than [`ORPHAN_GRACE`], so an in-flight create is never touched) are removed, and trunks
//!    whose legs are missing or do not match their settings are marked for repair (step 2
//!    of the next pass repairs them). Legs without the registry's tag are never touched.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use domain::{
    ClaimedTrunk, Lease, LegCheck, LegKind, LegReference, ProvisioningState, RemoteLeg,
    RepositoryError, SipTrunkRepository, Timestamp, TrunkId, UserId,
};

use crate::errors::ReconcileError;
use crate::keeper::KeptLease;
use crate::provisioning::{backoff_from_now, new_lease, Provisioner, LEASE};

/// A leg no trunk references is an orphan only once it is older than this: longer than any
/// request that could still be storing it.
pub const ORPHAN_GRACE: Duration = Duration::from_secs(60);

/// One thing a pass did (or, dry, would do).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// A queued removal done.
    Removed {
        /// Which kind.
        kind: LegKind,
        /// The leg.
        leg: String,
    },
    /// A create whose request died, rolled back.
    RolledBack {
        /// The hidden trunk.
        trunk: TrunkId,
    },
    /// A trunk given legs for its settings.
    Repaired {
        /// The trunk.
        trunk: TrunkId,
        /// What changed.
        detail: String,
    },
    /// A trunk whose repair failed (tried again later, backing off on its own).
    RepairFailed {
        /// The trunk.
        trunk: TrunkId,
        /// Why.
        error: ReconcileError,
    },
    /// A leg of the registry that no trunk references, removed.
    Orphan {
        /// Which kind.
        kind: LegKind,
        /// The leg.
        leg: String,
        /// The trunk its tag names.
        tagged: TrunkId,
    },
    /// A trunk whose legs are missing or divergent, marked for repair.
    Marked {
        /// The trunk.
        trunk: TrunkId,
        /// Why.
        reason: String,
    },
}

/// What a pass did, in order; `dry` when nothing was done.
#[derive(Debug, Default, Clone)]
pub struct Report {
    /// True for `--dry-run`.
    pub dry: bool,
    /// The actions.
    pub actions: Vec<Action>,
    /// Set when another process holds the reconciler lease (nothing was done).
    pub skipped: bool,
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Removed { kind, leg } => write!(f, "remove {} leg {leg}", kind.as_str()),
            Self::RolledBack { trunk } => {
                write!(f, "roll back trunk {trunk} (its create never finished)")
            }
            Self::Repaired { trunk, detail } => write!(f, "repair trunk {trunk}: {detail}"),
            Self::RepairFailed { trunk, error } => {
                write!(f, "repair trunk {trunk} failed: {error}")
            }
            Self::Orphan { kind, leg, tagged } => write!(
                f,
                "remove orphan {} leg {leg} (tagged for trunk {tagged}, referenced by none)",
                kind.as_str()
            ),
            Self::Marked { trunk, reason } => write!(f, "mark trunk {trunk} for repair: {reason}"),
        }
    }
}

impl Report {
    /// One line per action, `would ` before each when dry.
    pub fn lines(&self) -> Vec<String> {
        let prefix = if self.dry { "would " } else { "" };
        self.actions
            .iter()
            .map(|action| format!("{prefix}{action}"))
            .collect()
    }
}

/// Called with the owner of every trunk a pass changed (to drop cached reads).
pub type OnChange = Arc<dyn Fn(UserId) + Send + Sync>;

/// How often the reconciler works.
#[derive(Debug, Clone, Copy)]
pub struct Schedule {
    /// Between two passes when all is well.
    pub tick: Duration,
    /// Between two full scans.
    pub full_scan_every: Duration,
    /// The longest wait between passes while the infrastructure fails.
    pub max_backoff: Duration,
}

impl Default for Schedule {
    fn default() -> Self {
        Self {
            tick: Duration::from_secs(1),
            full_scan_every: Duration::from_secs(60),
            max_backoff: Duration::from_secs(30),
        }
    }
}

/// The reconciler of one process.
pub struct Reconciler {
    provisioner: Arc<Provisioner>,
    trunks: Arc<dyn SipTrunkRepository>,
    holder: String,
    on_change: OnChange,
    /// A pass's budget on the infrastructure.
    budget: Duration,
    /// See [`ORPHAN_GRACE`].
    orphan_grace: Duration,
    /// Each trunk's repairs that failed in a row (kube-rs requeues per object): the time
    /// before it is claimed again grows with them, without slowing the other trunks. In
    /// memory only: a new reconciler starts each trunk afresh, and the time itself is in the
    /// ledger, so every replica keeps to it.
    failures: Mutex<HashMap<TrunkId, u32>>,
}

/// Trunks whose failures a reconciler remembers at most; past it, it forgets them all (they
/// start again at the shortest wait).
const REMEMBERED_FAILURES: usize = 10_000;

/// Most trunks one pass claims.
const CLAIMS_PER_PASS: usize = 20;

/// The time one trunk's rollback or repair may take, whatever is left of the pass's budget.
const REPAIR_BUDGET: Duration = Duration::from_secs(30);

/// When a trunk whose repair failed `failures` times in a row is claimed again: at once
/// after the first (a one-off, such as a timeout), then 2 s, 4 s, ... up to five minutes.
pub fn repair_retry_at(failures: u32) -> Timestamp {
    if failures <= 1 {
        Timestamp::now()
    } else {
        backoff_from_now(failures - 1)
    }
}

impl Reconciler {
    /// A reconciler of `provisioner`'s trunks.
    pub fn new(
        provisioner: Arc<Provisioner>,
        trunks: Arc<dyn SipTrunkRepository>,
        on_change: OnChange,
    ) -> Self {
        Self {
            provisioner,
            trunks,
            holder: new_lease(LEASE).token,
            on_change,
            budget: Duration::from_secs(60),
            orphan_grace: ORPHAN_GRACE,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The same with another orphan grace (tests, which cannot wait a minute).
    pub fn with_orphan_grace(mut self, grace: Duration) -> Self {
        self.orphan_grace = grace;
        self
    }

    /// Gives the reconciler lease up (on a clean stop), so that another process or
    /// `sip-trunks reconcile` need not wait for it to run out.
    pub async fn give_up_lease(&self) {
        let past = Timestamp::from_unix_micros(0).unwrap_or_else(Timestamp::now);
        if let Err(error) = self
            .provisioner
            .ledger()
            .take_reconciler_lease(&self.holder, past)
            .await
        {
            log::warn!("reconciler: giving its lease up failed: {error}");
        }
    }

    /// Runs passes forever on `schedule`, backing off while they fail.
    pub async fn run(self: Arc<Self>, schedule: Schedule) {
        let mut wait = schedule.tick;
        let mut last_scan: Option<Instant> = None;
        loop {
            tokio::time::sleep(wait).await;
            let full = last_scan.is_none_or(|at| at.elapsed() >= schedule.full_scan_every);
            match self.pass(full, false).await {
                Ok(report) => {
                    for line in report.lines() {
                        log::info!("reconciler: {line}");
                    }
                    if full && !report.skipped {
                        last_scan = Some(Instant::now());
                    }
                    // A failed repair backs off on its own trunk (see `failures`): the
                    // pass itself went through, so the others are not kept waiting.
                    wait = schedule.tick;
                }
                Err(error) => {
                    self.provisioner
                        .observer()
                        .reconciler_failed(error.metric_label());
                    wait = (wait * 2).min(schedule.max_backoff);
                    log::warn!("reconciler: pass failed ({error}); next in {wait:?}");
                }
            }
        }
    }

    /// One pass; with `full`, the full scan too; with `dry_run`, nothing is changed and the
    /// report says what would be.
    pub async fn pass(&self, full: bool, dry_run: bool) -> Result<Report, ReconcileError> {
        let mut report = Report {
            dry: dry_run,
            ..Report::default()
        };
        let deadline = Instant::now() + self.budget;
        let kept = if dry_run {
            None
        } else {
            let until = new_lease(LEASE).until;
            let held = self
                .provisioner
                .ledger()
                .take_reconciler_lease(&self.holder, until)
                .await?;
            if !held {
                report.skipped = true;
                return Ok(report);
            }
            Some(self.keep_reconciler_lease())
        };
        let still_held = || kept.as_ref().is_none_or(KeptLease::held);
        self.removals(&mut report, dry_run, deadline).await?;
        let mut remote: Option<Vec<RemoteLeg>> = None;
        if !dry_run {
            self.claims(&mut report, &mut remote, &still_held, deadline)
                .await?;
        }
        if (full || dry_run) && still_held() {
            self.scan(&mut report, &mut remote, dry_run, deadline)
                .await?;
        }
        Ok(report)
    }

    /// Keeps the one reconciler lease while a pass runs: a pass may take longer than a lease
    /// (a slow infrastructure), and another process must not start a pass meanwhile.
    fn keep_reconciler_lease(&self) -> KeptLease {
        let ledger = self.provisioner.ledger().clone();
        let holder = self.holder.clone();
        KeptLease::start(LEASE, move |until| {
            let (ledger, holder) = (ledger.clone(), holder.clone());
            async move { ledger.take_reconciler_lease(&holder, until).await }
        })
    }

    /// The failures of `trunk`'s repair in a row so far, counting one more when `count`.
    fn failed_again(&self, trunk: TrunkId, count: bool) -> u32 {
        let mut failures = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if count && failures.len() >= REMEMBERED_FAILURES && !failures.contains_key(&trunk) {
            failures.clear();
        }
        let entry = failures.entry(trunk).or_insert(0);
        if count {
            *entry = entry.saturating_add(1);
        }
        let so_far = *entry;
        if so_far == 0 {
            failures.remove(&trunk);
        }
        so_far
    }

    fn forget_failures(&self, trunk: TrunkId) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(&trunk);
    }

    async fn remote_legs<'a>(
        &self,
        remote: &'a mut Option<Vec<RemoteLeg>>,
        deadline: Instant,
    ) -> Result<&'a [RemoteLeg], ReconcileError> {
        if remote.is_none() {
            let infrastructure = self.provisioner.infrastructure().clone();
            let legs = self
                .provisioner
                .call(deadline, "list legs", infrastructure.list_legs())
                .await?;
            *remote = Some(legs);
        }
        Ok(remote.as_deref().unwrap_or_default())
    }

    async fn removals(
        &self,
        report: &mut Report,
        dry_run: bool,
        deadline: Instant,
    ) -> Result<(), ReconcileError> {
        let due = self
            .provisioner
            .ledger()
            .due_removals(Timestamp::now(), 200)
            .await?;
        self.provisioner.observer().due_removals(due.len());
        for removal in due {
            if !dry_run {
                let done = self
                    .provisioner
                    .remove(vec![removal.clone()], deadline)
                    .await;
                if done == 0 {
                    continue;
                }
            }
            report.actions.push(Action::Removed {
                kind: removal.kind,
                leg: removal.leg.as_str().to_owned(),
            });
        }
        Ok(())
    }

    /// Claims the trunks that are due and rolls back or repairs each, while the reconciler
    /// lease is held. Their leases are taken at the claim and run out while earlier ones are
    /// worked on (a slow infrastructure): each is taken again when its turn comes, unless
    /// another holder (a client's update) has it by then, and kept while it is worked on.
    async fn claims(
        &self,
        report: &mut Report,
        remote: &mut Option<Vec<RemoteLeg>>,
        still_held: &(dyn Fn() -> bool + Sync),
        deadline: Instant,
    ) -> Result<(), ReconcileError> {
        let lease = new_lease(LEASE);
        let claimed = self
            .provisioner
            .ledger()
            .claim_due(Timestamp::now(), &lease, CLAIMS_PER_PASS)
            .await?;
        self.provisioner.observer().due_trunks(claimed.len());
        self.work_claimed(report, remote, claimed, &lease, still_held, deadline)
            .await?;
        if !report.actions.is_empty() {
            self.provisioner
                .remove_due_now(Duration::from_secs(5))
                .await;
        }
        Ok(())
    }

    /// Rolls back or repairs each of `claimed` (leased with `lease`), while the reconciler
    /// lease is held.
    async fn work_claimed(
        &self,
        report: &mut Report,
        remote: &mut Option<Vec<RemoteLeg>>,
        claimed: Vec<ClaimedTrunk>,
        lease: &Lease,
        still_held: &(dyn Fn() -> bool + Sync),
        deadline: Instant,
    ) -> Result<(), ReconcileError> {
        for trunk in claimed {
            // Past the pass's budget, the rest are claimed again by a later pass. A trunk
            // begun gets a budget of its own, so that no call of it is cut short (a create
            // cut short may still happen, and leave a leg nobody knows of until the scan).
            if !still_held() || Instant::now() >= deadline {
                break;
            }
            let deadline = Instant::now() + REPAIR_BUDGET;
            match trunk.state {
                ProvisioningState::Creating => {
                    let legs = self.remote_legs(remote, deadline).await?;
                    let made: Vec<_> = legs
                        .iter()
                        .filter(|leg| leg.owner.is_some_and(|o| o.trunk == trunk.id))
                        .map(|leg| (leg.kind, leg.id.clone()))
                        .collect();
                    let abandoned = self
                        .provisioner
                        .ledger()
                        .abandon_create(trunk.owner, trunk.id, &lease.token, &made)
                        .await;
                    match abandoned {
                        Ok(()) => report.actions.push(Action::RolledBack { trunk: trunk.id }),
                        // A client's retry took the create over (or ended it) meanwhile.
                        Err(RepositoryError::LeaseLost | RepositoryError::NotFound) => {}
                        Err(error) => return Err(error.into()),
                    }
                }
                ProvisioningState::Repair | ProvisioningState::Ready => {
                    let legs = self.remote_legs(remote, deadline).await?.to_vec();
                    let retry_at = repair_retry_at(self.failed_again(trunk.id, false) + 1);
                    let outcome = self
                        .provisioner
                        .repair(
                            trunk.owner,
                            trunk.id,
                            lease,
                            Some(&legs),
                            deadline,
                            retry_at,
                        )
                        .await;
                    match outcome {
                        Ok(detail) => {
                            self.forget_failures(trunk.id);
                            (self.on_change)(trunk.owner);
                            report.actions.push(Action::Repaired {
                                trunk: trunk.id,
                                detail,
                            });
                            // The legs changed: list again before the next use.
                            *remote = None;
                        }
                        // Another holder (a client's update) took the trunk: its work.
                        Err(ReconcileError::Storage(RepositoryError::LeaseLost)) => {}
                        Err(error) => {
                            self.failed_again(trunk.id, true);
                            self.provisioner
                                .observer()
                                .reconciler_failed(error.metric_label());
                            report.actions.push(Action::RepairFailed {
                                trunk: trunk.id,
                                error,
                            });
                        }
                    }
                }
            }
        }
        Ok(())
    }

    async fn scan(
        &self,
        report: &mut Report,
        remote: &mut Option<Vec<RemoteLeg>>,
        dry_run: bool,
        deadline: Instant,
    ) -> Result<(), ReconcileError> {
        // The references first, then a fresh listing: a trunk that is ready when its
        // reference is read had its legs made before, so the listing shows them. (Listed
        // first, a trunk created in between looked as if it had lost both legs, and was
        // marked for repair: seen with 4 clients creating 30,000 trunks beside the running
        // reconciler.) A leg made after the references were read looks unreferenced: the
        // orphan grace covers it.
        let began = Timestamp::now();
        let references = self.all_references().await?;
        *remote = None;
        self.remote_legs(remote, deadline).await?;
        let legs = remote.take().unwrap_or_default();
        self.remove_orphans(report, &legs, &references, dry_run, deadline)
            .await?;
        let checks = self
            .mark_divergent(report, &legs, &references, dry_run)
            .await?;
        if !dry_run {
            // What the status endpoint tells clients: the divergent trunks' legs, and for
            // every other trunk, the time this scan began.
            self.provisioner
                .ledger()
                .record_leg_checks(checks, began, true)
                .await?;
        }
        Ok(())
    }

    /// Removes the registry's legs that no trunk references, none is queued to remove, no
    /// busy trunk (leased, or being created) may be about to store, and that are older than
    /// the orphan grace.
    async fn remove_orphans(
        &self,
        report: &mut Report,
        legs: &[RemoteLeg],
        references: &[LegReference],
        dry_run: bool,
        deadline: Instant,
    ) -> Result<(), ReconcileError> {
        let far = backoff_from_now(30);
        let queued: HashSet<String> = self
            .provisioner
            .ledger()
            .due_removals(far, 1_000_000)
            .await?
            .into_iter()
            .map(|removal| removal.leg.as_str().to_owned())
            .collect();
        let referenced: HashSet<&str> = references
            .iter()
            .flat_map(|r| [r.inbound.as_ref(), r.outbound.as_ref()])
            .flatten()
            .map(|leg| leg.as_str())
            .collect();
        let busy: HashSet<TrunkId> = references
            .iter()
            .filter(|r| r.leased || r.state == ProvisioningState::Creating)
            .map(|r| r.id)
            .collect();
        let now_unix = Timestamp::now().unix_micros() / 1_000_000;
        let grace = i64::try_from(self.orphan_grace.as_secs()).unwrap_or(i64::MAX);
        for leg in legs {
            let Some(tag) = leg.owner else { continue };
            let id = leg.id.as_str();
            if referenced.contains(id) || queued.contains(id) || busy.contains(&tag.trunk) {
                continue;
            }
            if now_unix - tag.created_unix < grace {
                continue;
            }
            if !dry_run {
                let outcome = self
                    .provisioner
                    .remove_leg(deadline, leg.kind, &leg.id)
                    .await;
                if outcome.is_err() {
                    continue;
                }
            }
            report.actions.push(Action::Orphan {
                kind: leg.kind,
                leg: id.to_owned(),
                tagged: tag.trunk,
            });
        }
        Ok(())
    }

    /// Marks for repair each idle trunk whose legs are missing or do not match its settings
    /// (step 2 of the next pass repairs it); a trunk already in `Repair` is only reported.
    /// Gives what was seen of those trunks' legs.
    async fn mark_divergent(
        &self,
        report: &mut Report,
        legs: &[RemoteLeg],
        references: &[LegReference],
        dry_run: bool,
    ) -> Result<Vec<LegCheck>, ReconcileError> {
        let by_id: HashMap<&str, &RemoteLeg> =
            legs.iter().map(|leg| (leg.id.as_str(), leg)).collect();
        let mut checks = Vec::new();
        for reference in references {
            if reference.state == ProvisioningState::Creating || reference.leased {
                continue;
            }
            let found = self.divergence(reference, &by_id).await;
            let reason = if reference.state == ProvisioningState::Repair {
                Some("waiting for repair".to_owned())
            } else {
                found.as_ref().map(|(reason, _)| reason.clone())
            };
            let Some(reason) = reason else { continue };
            if let Some((_, check)) = found {
                checks.push(check);
            }
            if reference.state == ProvisioningState::Ready && !dry_run {
                self.provisioner
                    .ledger()
                    .mark_for_repair(reference.owner, reference.id)
                    .await?;
            }
            report.actions.push(Action::Marked {
                trunk: reference.id,
                reason,
            });
        }
        Ok(checks)
    }

    /// Why a trunk's legs are not what its settings need, and what was seen of each, if
    /// they are not.
    async fn divergence(
        &self,
        reference: &LegReference,
        legs: &HashMap<&str, &RemoteLeg>,
    ) -> Option<(String, LegCheck)> {
        let find =
            |id: &Option<domain::LegId>| id.as_ref().and_then(|id| legs.get(id.as_str()).copied());
        let (inbound, outbound) = (find(&reference.inbound), find(&reference.outbound));
        let check = |inbound_held: bool, outbound_held: bool| LegCheck {
            trunk: reference.id,
            inbound: reference.inbound.clone().map(|leg| (leg, inbound_held)),
            outbound: reference.outbound.clone().map(|leg| (leg, outbound_held)),
        };
        if inbound.is_none() || outbound.is_none() {
            let reason = match (inbound, outbound) {
                (None, None) => "both legs missing",
                (None, _) => "inbound leg missing",
                _ => "outbound leg missing",
            };
            return Some((reason.into(), check(inbound.is_some(), outbound.is_some())));
        }
        let trunks = self.trunks.clone();
        let (owner, id) = (reference.owner, reference.id);
        let trunk = self
            .provisioner
            .blocking(move || trunks.get_trunk(owner, id))
            .await
            .ok()?;
        let inbound_held = inbound.is_some_and(|leg| leg.serves_inbound_of(&trunk));
        let outbound_held = outbound.is_some_and(|leg| leg.serves_outbound_of(&trunk));
        let reason = match (inbound_held, outbound_held) {
            (true, true) => return None,
            (false, _) => "inbound leg does not match the trunk's settings",
            (true, false) => "outbound leg does not match the trunk's settings",
        };
        Some((reason.into(), check(inbound_held, outbound_held)))
    }

    async fn all_references(&self) -> Result<Vec<LegReference>, ReconcileError> {
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .provisioner
                .ledger()
                .leg_references(after, 1000)
                .await?;
            let full = page.len() == 1000;
            after = page.last().map(|r| r.id);
            all.extend(page);
            if !full {
                return Ok(all);
            }
        }
    }
}
