//! The use cases of the SIP trunk service, below HTTP and above the ports: every trunk write
//! ([`trunks`], the one entry for each; [`provisioning`] when trunks have legs on the voice
//! infrastructure), the reconciler that keeps
//! the infrastructure and the store in agreement ([`reconciler`]), the carrier prober
//! ([`carriers`]), a trunk's [`status`], and what they need around
//! them (the request [`context`], the [`blocking`] pool, the [`observe`] hook). No actix, no
//! SQL, no serde: the API and the CLI call these; the store and the adapters implement the
//! domain's ports these call.

pub mod blocking;
pub mod carriers;
pub mod context;
pub mod errors;
pub mod keeper;
pub mod ledger;
pub mod observe;
pub mod provisioning;
pub mod reconciler;
pub mod status;
pub mod trunks;

pub use blocking::{blocking, queued, queued_then};
pub use carriers::{CarrierProber, ProbeSchedule};
pub use errors::ReconcileError;
pub use observe::{Observe, Unobserved};
pub use provisioning::{new_lease, Provisioner, WriteError};
pub use status::{Diagnostics, ProbeError, ProvisioningPhase, TrunkStatus};
pub use trunks::{NumberConflicts, PatchParser, Trunks};
