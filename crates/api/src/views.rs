//! Response bodies, keys in the contract's order (serde writes struct fields in order). Each
//! type is written once: it derives `Serialize` for the wire and `ToSchema` for the OpenAPI
//! document, so the document describes exactly what is sent. Doc comments on these types and
//! their fields are the schemas' descriptions, and the fields are `pub(crate)` so that no
//! rustdoc-only comment leaks into the document. The two hot trunk bodies are also written by
//! hand ([`written`]), into the same bytes, which its tests compare with serde's.

use domain::{
    AllowedIps, ApiKey, LegId, Nickname, SipTrunk, Timestamp, TrunkSettings, User, ValidationErrors,
};
use serde::ser::SerializeMap;
use serde::{Serialize, Serializer};
use utoipa::ToSchema;

mod written;

/// A timestamp as `2026-03-31T10:00:00.000000Z`.
pub struct Time(pub Timestamp);

impl Serialize for Time {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&self.0)
    }
}

/// An allow-list as a JSON array of its entries as shown, each written straight into the body.
pub struct ShownIps<'a>(&'a AllowedIps);

impl Serialize for ShownIps<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeSeq;
        let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
        for entry in self.0.shown() {
            seq.serialize_element(&format_args!("{entry}"))?;
        }
        seq.end()
    }
}

// The string values the views hold for the trunk's enums, as the document names them (the
// domain's enums stay free of utoipa); the types exist for their schemas.

/// `sip_trunk_type`: how `phone_number` is read.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum TrunkType {
    /// A PBX extension.
    Extension,
    /// An E.164 number.
    Number,
}

/// The outbound number format.
#[allow(dead_code)]
#[derive(ToSchema)]
pub enum CallingFormat {
    /// `+14155551234`
    #[schema(rename = "+e164")]
    PlusE164,
    /// `14155551234`
    #[schema(rename = "e164")]
    E164,
    /// The national format.
    #[schema(rename = "national")]
    National,
}

/// How inbound calls are authorized.
#[allow(dead_code)]
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AuthorizationType {
    /// The trunk's username and password.
    Auth,
    /// The allow-list.
    Ip,
}

/// A SIP trunk in a list: no leg ids.
#[derive(Serialize, ToSchema)]
#[schema(as = SipTrunkListItem)]
pub struct TrunkListItem<'a> {
    pub(crate) id: i64,
    pub(crate) phone_number: &'a str,
    pub(crate) nickname: Option<&'a str>,
    pub(crate) sip_username: &'a str,
    pub(crate) sip_address: &'a str,
    #[schema(value_type = CallingFormat)]
    pub(crate) sip_calling_format: &'static str,
    #[schema(value_type = AuthorizationType)]
    pub(crate) inbound_authorization_type: &'static str,
    #[schema(value_type = Option<Vec<String>>)]
    pub(crate) allowed_inbound_ips: Option<ShownIps<'a>>,
    pub(crate) outbound_proxy: bool,
    pub(crate) country_code: &'a str,
    #[schema(value_type = String, format = DateTime)]
    pub(crate) created_at: Time,
    #[schema(value_type = String, format = DateTime)]
    pub(crate) updated_at: Time,
}

impl<'a> TrunkListItem<'a> {
    /// The list form of `trunk`. Never the password.
    pub fn of<P>(trunk: &'a SipTrunk<P>) -> Self {
        // No `..`: a new setting must be shown here, or left out on purpose.
        let TrunkSettings {
            phone_number,
            nickname,
            sip_username,
            sip_password: _,
            sip_address,
            calling_format,
            inbound_authorization,
            outbound_proxy,
            country_code,
        } = &trunk.settings;
        Self {
            id: trunk.id.get(),
            phone_number: phone_number.as_str(),
            nickname: nickname.as_ref().map(Nickname::as_str),
            sip_username: sip_username.as_str(),
            sip_address: sip_address.as_str(),
            sip_calling_format: calling_format.as_str(),
            inbound_authorization_type: inbound_authorization.kind().as_str(),
            allowed_inbound_ips: inbound_authorization.allowed_ips().map(ShownIps),
            outbound_proxy: *outbound_proxy,
            country_code: country_code.as_str(),
            created_at: Time(trunk.created_at),
            updated_at: Time(trunk.updated_at),
        }
    }
}

/// A SIP trunk in full (get, create, update). The password is never shown.
#[derive(Serialize, ToSchema)]
#[schema(as = SipTrunk)]
pub struct TrunkView<'a> {
    #[schema(example = 1, minimum = 1)]
    pub(crate) id: i64,
    /// An extension such as `1000`, or an E.164 number such as `+14155551234`.
    #[schema(example = "+14155551234")]
    pub(crate) phone_number: &'a str,
    #[schema(max_length = 50)]
    pub(crate) nickname: Option<&'a str>,
    pub(crate) sip_username: &'a str,
    /// Lower-case host: a name, an IPv4 or an IPv6 address.
    #[schema(example = "sip.carrier.example")]
    pub(crate) sip_address: &'a str,
    #[schema(value_type = CallingFormat)]
    pub(crate) sip_calling_format: &'static str,
    #[schema(value_type = AuthorizationType)]
    pub(crate) inbound_authorization_type: &'static str,
    /// `null` for `auth`; the canonical allow-list for `ip`.
    #[schema(value_type = Option<Vec<String>>)]
    pub(crate) allowed_inbound_ips: Option<ShownIps<'a>>,
    pub(crate) outbound_proxy: bool,
    #[schema(pattern = "^[A-Z]{2}$", example = "US")]
    pub(crate) country_code: &'a str,
    pub(crate) inbound_trunk_id: Option<&'a str>,
    pub(crate) outbound_trunk_id: Option<&'a str>,
    #[schema(value_type = String, format = DateTime, example = "2026-03-31T10:00:00.000000Z")]
    pub(crate) created_at: Time,
    #[schema(value_type = String, format = DateTime, example = "2026-03-31T10:00:00.000000Z")]
    pub(crate) updated_at: Time,
}

impl<'a> TrunkView<'a> {
    /// The full form of `trunk`: the list form and the leg ids. Never the password.
    pub fn of<P>(trunk: &'a SipTrunk<P>) -> Self {
        let TrunkListItem {
            id,
            phone_number,
            nickname,
            sip_username,
            sip_address,
            sip_calling_format,
            inbound_authorization_type,
            allowed_inbound_ips,
            outbound_proxy,
            country_code,
            created_at,
            updated_at,
        } = TrunkListItem::of(trunk);
        Self {
            id,
            phone_number,
            nickname,
            sip_username,
            sip_address,
            sip_calling_format,
            inbound_authorization_type,
            allowed_inbound_ips,
            outbound_proxy,
            country_code,
            inbound_trunk_id: trunk.inbound_trunk_id.as_ref().map(LegId::as_str),
            outbound_trunk_id: trunk.outbound_trunk_id.as_ref().map(LegId::as_str),
            created_at,
            updated_at,
        }
    }
}

/// `{"data": [...]}`
#[derive(Serialize, ToSchema)]
#[schema(as = SipTrunkList)]
pub struct SipTrunkList<'a> {
    pub(crate) data: Vec<TrunkListItem<'a>>,
}

/// `{"data": {...}}`
#[derive(Serialize, ToSchema)]
#[schema(as = SipTrunkData)]
pub struct SipTrunkData<'a> {
    pub(crate) data: TrunkView<'a>,
}

/// `{"message": ..., "data": {...}}` after a create or an update.
#[derive(Serialize, ToSchema)]
#[schema(as = SipTrunkSaved)]
pub struct SipTrunkSaved<'a> {
    #[schema(example = "SIP trunk created successfully.")]
    pub(crate) message: &'static str,
    pub(crate) data: TrunkView<'a>,
}

/// A SIP trunk in phone-number form.
#[derive(Serialize, ToSchema)]
#[schema(as = PhoneNumber)]
pub struct PhoneNumberView<'a> {
    #[schema(example = 1)]
    pub(crate) id: i64,
    #[schema(example = "+14155551234")]
    pub(crate) phone_number: &'a str,
    /// `null` when none.
    #[schema(example = "Main line")]
    pub(crate) nickname: Option<&'a str>,
    #[schema(example = "US")]
    pub(crate) country_code: &'a str,
    /// Always `sip` here.
    #[serde(rename = "type")]
    #[schema(example = "sip")]
    pub(crate) kind: &'static str,
    /// Always `SIP` here.
    #[schema(example = "SIP")]
    pub(crate) type_label: &'static str,
    #[schema(value_type = String, example = "2026-03-31T10:00:00.000000Z")]
    pub(crate) created_at: Time,
}

impl<'a> PhoneNumberView<'a> {
    /// The list form of `trunk` (the contract's "Phone numbers": a SIP trunk is a phone
    /// number of type `sip`).
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

/// `{"data":[<phone number>...]}`
#[derive(Serialize, ToSchema)]
#[schema(as = PhoneNumberList)]
pub struct PhoneNumberList<'a> {
    pub(crate) data: Vec<PhoneNumberView<'a>>,
}

/// The renamed phone number.
#[derive(Serialize, ToSchema)]
#[schema(as = PhoneNumberSavedFields)]
pub struct SavedPhoneNumber<'a> {
    #[schema(example = 1)]
    pub(crate) id: i64,
    #[schema(example = "+14155551234")]
    pub(crate) phone_number: &'a str,
    pub(crate) nickname: Option<&'a str>,
    #[schema(example = "US")]
    pub(crate) country_code: &'a str,
    #[serde(rename = "type")]
    #[schema(example = "sip")]
    pub(crate) kind: &'static str,
}

impl<'a> SavedPhoneNumber<'a> {
    /// The rename's form of `trunk`: `{"id","phone_number","nickname","country_code","type"}`.
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

/// `{"message":"Phone number updated successfully.","data":{...}}`
#[derive(Serialize, ToSchema)]
#[schema(as = PhoneNumberSaved)]
pub struct PhoneNumberSaved<'a> {
    #[schema(example = "Phone number updated successfully.")]
    pub(crate) message: &'static str,
    pub(crate) data: SavedPhoneNumber<'a>,
}

/// `{"message": ...}`: successes without data, and most errors.
#[derive(Serialize, ToSchema)]
#[schema(as = Message)]
pub struct Message<'a> {
    pub(crate) message: &'a str,
}

/// `{"error": ...}`: a trunk not found, a duplicate trunk, an unexpected failure.
#[derive(Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorBody<'a> {
    pub(crate) error: &'a str,
}

/// `{"message": "The given data was invalid.", "errors": {field: [sentences]}}`; allow-list
/// entries are reported as `allowed_inbound_ips.N`.
#[derive(Serialize, ToSchema)]
#[schema(as = ValidationError)]
pub struct ValidationError<'a> {
    #[schema(example = "The given data was invalid.")]
    pub(crate) message: &'a str,
    #[schema(value_type = std::collections::BTreeMap<String, Vec<String>>)]
    pub(crate) errors: FieldErrors<'a>,
}

/// The failing fields, in the order they were found, each with its sentences.
pub struct FieldErrors<'a>(pub &'a ValidationErrors);

impl Serialize for FieldErrors<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        for (field, messages) in self.0.fields() {
            map.serialize_entry(field, messages)?;
        }
        map.end()
    }
}

/// `{"status": ...}`
#[derive(Serialize, ToSchema)]
#[schema(as = Status)]
pub struct Status {
    #[schema(example = "ok")]
    pub(crate) status: &'static str,
}

/// `{"status":"ready","provisioning":...}`
#[derive(Serialize, ToSchema)]
#[schema(as = Ready)]
pub struct Ready {
    #[schema(example = "ready")]
    pub(crate) status: &'static str,
    /// `livekit` or `kamailio`, or `off` when trunks get no legs; `kamailio (unreachable)`
    /// while the edge's RPC does not answer (still 200: the registry serves, and writes that
    /// need the edge answer 500 until it is back).
    #[schema(example = "livekit")]
    pub(crate) provisioning: String,
    /// `live` (other replicas' writes reach the caches at once), `degraded` (the feed
    /// reconnects; caches rely on their TTL) or `local` (SQLite: one process).
    #[schema(example = "live")]
    pub(crate) cache_coherence: &'static str,
    /// `redis` (shared by every replica), `local` (per process), or
    /// `local (redis unreachable)`.
    #[schema(example = "redis")]
    pub(crate) rate_limits: &'static str,
}

/// The caller's account: `{"name":...,"email":...}`, not wrapped in `data`.
#[derive(Serialize, ToSchema)]
#[schema(as = Account)]
pub struct AccountView<'a> {
    #[schema(example = "Ops")]
    pub(crate) name: &'a str,
    #[schema(example = "ops@example.com")]
    pub(crate) email: &'a str,
}

impl<'a> AccountView<'a> {
    /// `GET /user/me`: the account as the original sends it, less its `total_balance` (this
    /// service keeps no balance).
    pub fn of(user: &'a User) -> Self {
        Self {
            name: user.name.as_str(),
            email: user.email.as_str(),
        }
    }
}

/// An API key as listed: never its token.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyItem<'a> {
    pub(crate) id: i64,
    pub(crate) name: &'a str,
    #[schema(value_type = Option<String>, format = DateTime)]
    pub(crate) last_used_at: Option<Time>,
    #[schema(value_type = String, format = DateTime)]
    pub(crate) created_at: Time,
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
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKeyList)]
pub struct ApiKeyList<'a> {
    pub(crate) api_keys: Vec<ApiKeyItem<'a>>,
}

/// The new key, with its token shown this once.
#[derive(Serialize, ToSchema)]
#[schema(as = NewApiKey)]
pub struct NewApiKey<'a> {
    pub(crate) name: &'a str,
    /// `<id>|<secret>`: send as `Authorization: Bearer <token>`.
    #[schema(example = "2|Jx2w...")]
    pub(crate) token: String,
    #[schema(value_type = String, format = DateTime)]
    pub(crate) created_at: Time,
}

/// `{"message": ..., "api_key": {...}}`
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKeyCreated)]
pub struct ApiKeyCreated<'a> {
    #[schema(example = "API key created successfully.")]
    pub(crate) message: &'static str,
    pub(crate) api_key: NewApiKey<'a>,
}
