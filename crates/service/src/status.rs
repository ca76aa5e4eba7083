//! "Why doesn't my trunk take calls?" (docs/diagnostics.md): one trunk's status (where its
//! legs stand with the voice infrastructure, and whether its carrier answers SIP), and the
//! call simulator (what the edge would do with a call, among the caller's trunks only).
//! Everything is read from the database, so every replica answers the same.

use std::sync::Arc;
use std::time::Duration;

use domain::simulation::{
    simulate_inbound, simulate_outbound, InboundCall, Simulation, SimulationRules,
};
use domain::{
    CarrierHealth, CarrierHealthStore, LegStatus, ProvisioningFailure, ProvisioningState,
    RepositoryError, SipTrunkRepository, Timestamp, TrunkId, TrunkNotes, TrunkPage, UserId,
};

use crate::carriers::CarrierProber;
use crate::observe::Observe;

/// At most one probe a client asks for per trunk in this time, across replicas.
pub const PROBE_SPACING: Duration = Duration::from_secs(10);

/// Where a trunk stands with the voice infrastructure, as a client is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProvisioningPhase {
    /// Its legs were made for its settings.
    Ready,
    /// Being created. A create in flight is hidden from every read, its status included, so
    /// clients meet it as a 404; the value is named for completeness.
    Creating,
    /// Its legs are being changed (an update in flight), or may be missing or out of date:
    /// the reconciler re-creates them.
    Repairing,
    /// Being deleted: like `Creating`, only ever a 404 for clients.
    Removing,
    /// No voice infrastructure is configured: the registry holds the trunk only.
    None,
}

impl ProvisioningPhase {
    /// `ready`, `creating`, `repairing`, `removing` or `none`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ready => "ready",
            Self::Creating => "creating",
            Self::Repairing => "repairing",
            Self::Removing => "removing",
            Self::None => "none",
        }
    }
}

/// The provisioning half of a status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningStatus {
    /// Where the trunk stands.
    pub phase: ProvisioningPhase,
    /// The infrastructure's name (`kamailio`, `livekit`); `None` without one.
    pub infrastructure: Option<&'static str>,
    /// Inbound then outbound; empty without an infrastructure.
    pub legs: Vec<LegStatus>,
    /// The last provisioning failure and when.
    pub last_error: Option<(ProvisioningFailure, Timestamp)>,
}

/// A trunk's status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkStatus {
    /// Its legs.
    pub provisioning: ProvisioningStatus,
    /// Its carrier: the trunk's `sip_address`.
    pub carrier_address: String,
    /// Its carrier's health as the probes saw it (the default, `unknown`, before any).
    pub carrier: CarrierHealth,
}

/// Why an on-demand probe was not run.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The trunk was probed on demand less than [`PROBE_SPACING`] ago.
    #[error("probed too recently")]
    TooSoon {
        /// When the next may run.
        retry_at: Timestamp,
    },
    /// The repository's outcome (not found, unavailable).
    #[error(transparent)]
    Repository(#[from] RepositoryError),
}

/// The status use cases.
#[derive(Clone)]
pub struct Diagnostics {
    trunks: Arc<dyn SipTrunkRepository>,
    notes: Arc<dyn TrunkNotes>,
    carriers: Arc<dyn CarrierHealthStore>,
    prober: Option<Arc<CarrierProber>>,
    infrastructure: Option<&'static str>,
    observe: Arc<dyn Observe>,
}

impl Diagnostics {
    /// Status over the stores; `infrastructure` names the voice infrastructure, if any;
    /// `prober` runs the probes clients ask for (`None`: they are refused as unavailable).
    pub fn new(
        trunks: Arc<dyn SipTrunkRepository>,
        notes: Arc<dyn TrunkNotes>,
        carriers: Arc<dyn CarrierHealthStore>,
        prober: Option<Arc<CarrierProber>>,
        infrastructure: Option<&'static str>,
        observe: Arc<dyn Observe>,
    ) -> Self {
        Self {
            trunks,
            notes,
            carriers,
            prober,
            infrastructure,
            observe,
        }
    }

    /// The owner's trunk `id`'s status; `NotFound` as for a read of it.
    pub async fn status(&self, owner: UserId, id: TrunkId) -> Result<TrunkStatus, RepositoryError> {
        let (trunks, notes, carriers) = (
            self.trunks.clone(),
            self.notes.clone(),
            self.carriers.clone(),
        );
        let (record, address, health) = crate::blocking(self.observe.as_ref(), move || {
            let record = notes.provisioning_record(owner, id)?;
            let trunk = trunks.get_trunk(owner, id)?;
            let address = trunk.settings.sip_address.as_str().to_owned();
            let health = carriers.carrier_health(&address)?;
            Ok((record, address, health))
        })
        .await?;
        let provisioning = match self.infrastructure {
            None => ProvisioningStatus {
                phase: ProvisioningPhase::None,
                infrastructure: None,
                legs: Vec::new(),
                last_error: None,
            },
            Some(name) => ProvisioningStatus {
                phase: match record.state {
                    ProvisioningState::Ready => ProvisioningPhase::Ready,
                    ProvisioningState::Repair => ProvisioningPhase::Repairing,
                    ProvisioningState::Creating => ProvisioningPhase::Creating,
                },
                infrastructure: Some(name),
                legs: record.legs().to_vec(),
                last_error: record.failure,
            },
        };
        Ok(TrunkStatus {
            provisioning,
            carrier_address: address,
            carrier: health.unwrap_or_default(),
        })
    }

    /// Probes the owner's trunk `id`'s carrier now and gives the new status; at most once
    /// per trunk every [`PROBE_SPACING`].
    pub async fn probe(&self, owner: UserId, id: TrunkId) -> Result<TrunkStatus, ProbeError> {
        let Some(prober) = &self.prober else {
            return Err(RepositoryError::Unavailable("no carrier prober".into()).into());
        };
        let (trunks, notes) = (self.trunks.clone(), self.notes.clone());
        let (slot, address) = crate::blocking(self.observe.as_ref(), move || {
            let slot = notes.claim_probe_slot(owner, id, Timestamp::now(), PROBE_SPACING)?;
            let trunk = trunks.get_trunk(owner, id)?;
            Ok((slot, trunk.settings.sip_address.as_str().to_owned()))
        })
        .await?;
        if let Some(retry_at) = slot {
            return Err(ProbeError::TooSoon { retry_at });
        }
        prober.probe_now(&address).await?;
        Ok(self.status(owner, id).await?)
    }

    /// What the edge would do with `call`, among the owner's trunks only: nothing about
    /// another account's trunks is read, so a number only another account has gets the
    /// answer of a number nobody has. The offered password is compared with the reached
    /// trunk's only, in constant time, and dropped with the call.
    pub async fn simulate_inbound(
        &self,
        owner: UserId,
        call: InboundCall,
    ) -> Result<Simulation, RepositoryError> {
        let rules = SimulationRules::of(self.infrastructure);
        let trunks = self.trunks.clone();
        crate::blocking(self.observe.as_ref(), move || {
            let mut all = Vec::new();
            let mut page = TrunkPage::first(SIMULATION_PAGE);
            loop {
                let listing = trunks.list_trunks(owner, page)?;
                let full = listing.rows >= page.limit;
                if full {
                    page = TrunkPage::after(&listing, SIMULATION_PAGE);
                }
                all.extend(listing.trunks);
                if !full {
                    break;
                }
            }
            let mut opened = Ok(());
            let simulation = simulate_inbound(rules, &all, &call, |id, offered| {
                match trunks.open_trunk(owner, id) {
                    Ok(trunk) => offered.matches(&trunk.settings.sip_password),
                    Err(error) => {
                        opened = Err(error);
                        false
                    }
                }
            });
            opened.map(|()| simulation)
        })
        .await
    }

    /// What the edge would do with the platform's call to `to` through the owner's trunk
    /// `id`; `NotFound` as for a read of it.
    pub async fn simulate_outbound(
        &self,
        owner: UserId,
        id: TrunkId,
        to: String,
    ) -> Result<Simulation, RepositoryError> {
        let rules = SimulationRules::of(self.infrastructure);
        let trunks = self.trunks.clone();
        crate::blocking(self.observe.as_ref(), move || {
            let trunk = trunks.get_trunk(owner, id)?;
            Ok(simulate_outbound(rules, &trunk, &to))
        })
        .await
    }
}

/// Trunks read at a time for a simulation.
const SIMULATION_PAGE: usize = 1000;
