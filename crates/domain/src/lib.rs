//! The SIP trunk domain: what a SIP trunk is, the rules it obeys, and the ports storage and
//! transport plug into. No web, no SQL: other services depend on this crate alone.
//!
//! Every value type is parsed, not validated: a [`PhoneNumber`], a [`SipAddress`] or a
//! [`SipTrunk`] that exists is valid. Whole inputs ([`NewSipTrunkInput`],
//! [`SipTrunkPatchInput`]) parse into validated values or into [`ValidationErrors`] listing
//! every failing field at once.

mod account;
mod carrier;
mod conflicts;
mod diagnostics;
pub mod edge;
mod errors;
#[cfg(test)]
mod fixtures;
mod ids;
mod ledger;
mod plan;
mod ports;
mod provisioning;
pub mod simulation;
pub mod syntax;
mod time;
mod token;
mod trunk;

pub use account::{ApiKey, ApiKeyName, Email, User, UserName};
pub use carrier::{
    CarrierHealth, CarrierHealthStore, CarrierProbe, CarrierState, ProbeOutcome, ProbeResponse,
    TrunksByCarrierState, FAILURES_TO_UNREACHABLE, SUCCESSES_TO_REACHABLE,
};
/// The short-string type of the domain's text values (inline up to 24 bytes): what
/// `from_stored` constructors take, so that a store can read a column straight into one.
pub use compact_str::CompactString;
pub use conflicts::{NumberConflictBudget, NumberConflictLog, NUMBER_CONFLICT_WINDOW};
pub use diagnostics::{
    LegCheck, LegStatus, ProvisioningFailure, TrunkNotes, TrunkProvisioningRecord,
};
pub use errors::{FieldError, ValidationErrors};
pub use ids::{ApiKeyId, TrunkId, UserId};
pub use ledger::{
    ClaimedTrunk, Lease, LegCommit, LegReference, LegRemoval, ProvisioningLedger, ProvisioningState,
};
pub use plan::{Capabilities, InboundStep, LegPlan};
pub use ports::{
    AccountRepository, Answer, CreateAnswer, RepositoryError, RepositoryResult, SipTrunkRepository,
    TrunkListing, TrunkPage, UnreadableTrunk,
};
pub use provisioning::{
    AllowListDigest, InboundAccess, InboundLeg, LegKind, LegOwner, OutboundLeg, ProvisionError,
    ProvisionFuture, RemoteLeg, VoiceInfrastructure,
};
pub use time::Timestamp;
pub use token::{ApiToken, TokenHash, TokenSecret, SECRET_LEN};
pub use trunk::{
    AllowedIps, AuthorizationType, CallingFormat, CountryCode, InboundAuthorization, LegChanges,
    LegEffect, LegId, NationalDialing, NewSipTrunk, NewSipTrunkInput, Nickname, PasswordWithheld,
    Patch, PhoneNumber, ShownEntry, SipAddress, SipPassword, SipTrunk, SipTrunkPatch,
    SipTrunkPatchInput, SipUsername, TrunkField, TrunkSettings, TrunkType, TrunkUpdate,
    ALLOWED_IPS_FIELD, ALLOW_LIST_REQUIRED,
};
