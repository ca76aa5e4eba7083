//! Response bodies, keys in the contract's order (serde writes struct fields in order).

use domain::{ApiKey, LegId, Nickname, SipTrunk, Timestamp};
use serde::{Serialize, Serializer};

/// A timestamp as `2026-03-31T10:00:00.000000Z`.
pub struct Time(pub Timestamp);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// The keys a list item and the full object share, up to `country_code`.
#[derive(Serialize)]
struct TrunkHead<'a> {
    id: i64,
    phone_number: &'a str,
    nickname: Option<&'a str>,
    sip_username: &'a str,
    sip_address: &'a str,
    sip_calling_format: &'static str,
    inbound_authorization_type: &'static str,
    allowed_inbound_ips: Option<Vec<String>>,
    outbound_proxy: bool,
    country_code: &'a str,
}

impl<'a> TrunkHead<'a> {
    fn of<P>(trunk: &'a SipTrunk<P>) -> Self {
        let settings = &trunk.settings;
        Self {
            id: trunk.id.get(),
            phone_number: settings.phone_number.as_str(),
            nickname: settings.nickname.as_ref().map(Nickname::as_str),
            sip_username: settings.sip_username.as_str(),
            sip_address: settings.sip_address.as_str(),
            sip_calling_format: settings.calling_format.as_str(),
            inbound_authorization_type: settings.inbound_authorization.kind().as_str(),
            allowed_inbound_ips: settings
                .inbound_authorization
                .allowed_ips()
                .map(|ips| ips.to_strings()),
            outbound_proxy: settings.outbound_proxy,
            country_code: settings.country_code.as_str(),
        }
    }
}

/// A trunk in a list: no leg ids. Never the password.
#[derive(Serialize)]
pub struct TrunkListItem<'a> {
    #[serde(flatten)]
    head: TrunkHead<'a>,
    created_at: Time,
    updated_at: Time,
}

impl<'a> TrunkListItem<'a> {
    /// The list form of `trunk`.
    pub fn of<P>(trunk: &'a SipTrunk<P>) -> Self {
        Self {
            head: TrunkHead::of(trunk),
            created_at: Time(trunk.created_at),
            updated_at: Time(trunk.updated_at),
        }
    }
}

/// A trunk in full (get, create, update). Never the password.
#[derive(Serialize)]
pub struct TrunkView<'a> {
    #[serde(flatten)]
    head: TrunkHead<'a>,
    inbound_trunk_id: Option<&'a str>,
    outbound_trunk_id: Option<&'a str>,
    created_at: Time,
    updated_at: Time,
}

impl<'a> TrunkView<'a> {
    /// The full form of `trunk`.
    pub fn of<P>(trunk: &'a SipTrunk<P>) -> Self {
        Self {
            head: TrunkHead::of(trunk),
            inbound_trunk_id: trunk.inbound_trunk_id.as_ref().map(LegId::as_str),
            outbound_trunk_id: trunk.outbound_trunk_id.as_ref().map(LegId::as_str),
            created_at: Time(trunk.created_at),
            updated_at: Time(trunk.updated_at),
        }
    }
}

/// A trunk as the generic phone-number endpoints show it (the contract's "Phone numbers": a
/// SIP trunk is a phone number of type `sip`).
#[derive(Serialize)]
pub struct PhoneNumberView<'a> {
    id: i64,
    phone_number: &'a str,
    nickname: Option<&'a str>,
    country_code: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
    type_label: &'static str,
    created_at: Time,
}

impl<'a> PhoneNumberView<'a> {
    /// The list form of `trunk`.
    pub fn of<P>(trunk: &'a SipTrunk<P>) -> Self {
        let settings = &trunk.settings;
        Self {
            id: trunk.id.get(),
            phone_number: settings.phone_number.as_str(),
            nickname: settings.nickname.as_ref().map(Nickname::as_str),
            country_code: settings.country_code.as_str(),
            kind: "sip",
            type_label: "SIP",
            created_at: Time(trunk.created_at),
        }
    }
}

/// The phone number in the rename's answer: `{"id","phone_number","nickname","country_code","type"}`.
#[derive(Serialize)]
pub struct PhoneNumberSaved<'a> {
    id: i64,
    phone_number: &'a str,
    nickname: Option<&'a str>,
    country_code: &'a str,
    #[serde(rename = "type")]
    kind: &'static str,
}

impl<'a> PhoneNumberSaved<'a> {
    /// The saved form of `trunk`.
    pub fn of<P>(trunk: &'a SipTrunk<P>) -> Self {
        let settings = &trunk.settings;
        Self {
            id: trunk.id.get(),
            phone_number: settings.phone_number.as_str(),
            nickname: settings.nickname.as_ref().map(Nickname::as_str),
            country_code: settings.country_code.as_str(),
            kind: "sip",
        }
    }
}

/// `{"data": ...}`
#[derive(Serialize)]
pub struct Data<T> {
    /// The payload.
    pub data: T,
}

/// `{"message": ..., "data": ...}`
#[derive(Serialize)]
pub struct MessageData<T> {
    /// What happened.
    pub message: &'static str,
    /// The payload.
    pub data: T,
}

/// `{"message": ...}`
#[derive(Serialize)]
pub struct Message {
    /// What happened.
    pub message: &'static str,
}

/// `GET /user/me`: the caller's account, unwrapped (no `data`), as the original sends it
/// less its `total_balance` (this service keeps no balance).
#[derive(Serialize)]
pub struct AccountView<'a> {
    /// The user's name.
    pub name: &'a str,
    /// The user's e-mail.
    pub email: &'a str,
}

/// An API key in a list: never its token.
#[derive(Serialize)]
pub struct ApiKeyItem<'a> {
    id: i64,
    name: &'a str,
    last_used_at: Option<Time>,
    created_at: Time,
}

impl<'a> ApiKeyItem<'a> {
    /// The list form of `key`.
    pub fn of(key: &'a ApiKey) -> Self {
        Self {
            id: key.id.get(),
            name: key.name.as_str(),
            last_used_at: key.last_used_at.map(Time),
            created_at: Time(key.created_at),
        }
    }
}

/// `{"api_keys": [...]}`
#[derive(Serialize)]
pub struct ApiKeyList<'a> {
    /// The keys.
    pub api_keys: Vec<ApiKeyItem<'a>>,
}

/// A new key with its token, shown once.
#[derive(Serialize)]
pub struct NewApiKey<'a> {
    /// Label.
    pub name: &'a str,
    /// `<id>|<secret>`.
    pub token: String,
    /// When it was created.
    pub created_at: Time,
}

/// `{"message": ..., "api_key": {...}}`
#[derive(Serialize)]
pub struct ApiKeyCreated<'a> {
    /// What happened.
    pub message: &'static str,
    /// The key and its token.
    pub api_key: NewApiKey<'a>,
}
