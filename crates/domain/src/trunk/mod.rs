//! The SIP trunk: its field types, the validated create input, the update rules and the
//! voice-infrastructure legs a change re-creates.

mod calling_format;
mod country_code;
mod create;
mod field;
mod inbound;
mod legs;
mod phone_number;
mod sip_address;
mod text;
mod update;

use std::fmt;

pub use calling_format::CallingFormat;
pub use country_code::{CountryCode, NationalDialing};
pub use create::{NewSipTrunk, NewSipTrunkInput, TrunkSettings};
pub use field::{LegEffect, TrunkField};
pub use inbound::{
    AllowedIps, AuthorizationType, InboundAuthorization, ShownEntry, ALLOWED_IPS_FIELD,
    ALLOW_LIST_REQUIRED,
};
pub use legs::LegChanges;
pub use phone_number::{PhoneNumber, TrunkType};
pub use sip_address::SipAddress;
pub use text::{Nickname, SipPassword, SipUsername};
pub use update::{Patch, SipTrunkPatch, SipTrunkPatchInput, TrunkUpdate};

use compact_str::CompactString;

use crate::{Timestamp, TrunkId, UserId};

/// The id the voice infrastructure gave one leg (inbound or outbound) of a trunk.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct LegId(CompactString);

impl LegId {
    /// Wraps an id handed out by the voice infrastructure; `None` when empty.
    pub fn new(id: impl Into<CompactString>) -> Option<Self> {
        let id = id.into();
        (!id.is_empty()).then_some(Self(id))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for LegId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LegId({:?})", self.0)
    }
}

/// In place of a SIP password: the trunk was read without it (the password is write-only, so
/// the reads that answer clients never open it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordWithheld;

/// A stored SIP trunk. Every field is a validated type, so a `SipTrunk` that exists is valid.
///
/// `SipTrunk` holds the password; `SipTrunk<PasswordWithheld>` is a trunk read without it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipTrunk<P = SipPassword> {
    /// Never reused.
    pub id: TrunkId,
    /// The user the trunk belongs to; every read and write is scoped by it.
    pub owner: UserId,
    /// What the client set: number, credentials, server, formats, authorization, country.
    pub settings: TrunkSettings<P>,
    /// The inbound leg on the voice infrastructure, once provisioned.
    pub inbound_trunk_id: Option<LegId>,
    /// The outbound leg on the voice infrastructure, once provisioned.
    pub outbound_trunk_id: Option<LegId>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When a setting last really changed.
    pub updated_at: Timestamp,
}

impl SipTrunk {
    /// A freshly created trunk: `settings`, no legs yet, both timestamps `now`.
    pub fn create(id: TrunkId, owner: UserId, settings: TrunkSettings, now: Timestamp) -> Self {
        Self {
            id,
            owner,
            settings,
            inbound_trunk_id: None,
            outbound_trunk_id: None,
            created_at: now,
            updated_at: now,
        }
    }
}

impl<P> SipTrunk<P> {
    /// The trunk's `sip_trunk_type`.
    pub fn trunk_type(&self) -> TrunkType {
        self.settings.phone_number.kind()
    }

    /// The same trunk without its password.
    pub fn without_password(self) -> SipTrunk<PasswordWithheld> {
        SipTrunk {
            id: self.id,
            owner: self.owner,
            settings: self.settings.without_password(),
            inbound_trunk_id: self.inbound_trunk_id,
            outbound_trunk_id: self.outbound_trunk_id,
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

impl<P> TrunkSettings<P> {
    /// The same settings without the password.
    pub fn without_password(self) -> TrunkSettings<PasswordWithheld> {
        TrunkSettings {
            phone_number: self.phone_number,
            nickname: self.nickname,
            sip_username: self.sip_username,
            sip_password: PasswordWithheld,
            sip_address: self.sip_address,
            calling_format: self.calling_format,
            inbound_authorization: self.inbound_authorization,
            outbound_proxy: self.outbound_proxy,
            country_code: self.country_code,
        }
    }

    /// The (phone number, username, address) triple that is unique per owner.
    pub fn identity(&self) -> (&str, &str, &str) {
        (
            self.phone_number.as_str(),
            self.sip_username.as_str(),
            self.sip_address.as_str(),
        )
    }
}
