//! The OpenAPI 3.1 schemas of the API's wire shapes, generated from the code with `utoipa`.
//! The document itself (its list of operations, served at `GET /api/openapi.json` and
//! committed as `docs/openapi.json`) is [`crate::routes::document`], next to the route table,
//! so that this module depends on no handler.
//!
//! The schemas here describe the wire shapes. Response schemas are checked against real
//! answers by the tests (same keys, same order). The request bodies come from
//! [`request_bodies`], built from the domain's syntax patterns, so that they accept exactly
//! what the domain's parsers accept.

#![allow(dead_code)] // the types below exist for their schemas

pub(crate) mod request_bodies;

use std::collections::BTreeMap;
use utoipa::ToSchema;

/// `sip_trunk_type`: how `phone_number` is read.
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum TrunkType {
    /// A PBX extension.
    Extension,
    /// An E.164 number.
    Number,
}

/// The outbound number format.
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
#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum AuthorizationType {
    /// The trunk's username and password.
    Auth,
    /// The allow-list.
    Ip,
}

/// A SIP trunk in full (get, create, update). The password is never shown.
#[derive(ToSchema)]
#[schema(as = SipTrunk)]
pub struct SipTrunkDoc {
    #[schema(example = 1, minimum = 1)]
    id: i64,
    /// An extension such as `1000`, or an E.164 number such as `+14155551234`.
    #[schema(example = "+14155551234")]
    phone_number: String,
    #[schema(max_length = 50)]
    nickname: Option<String>,
    sip_username: String,
    /// Lower-case host: a name, an IPv4 or an IPv6 address.
    #[schema(example = "sip.carrier.example")]
    sip_address: String,
    sip_calling_format: CallingFormat,
    inbound_authorization_type: AuthorizationType,
    /// `null` for `auth`; the canonical allow-list for `ip`.
    allowed_inbound_ips: Option<Vec<String>>,
    outbound_proxy: bool,
    #[schema(pattern = "^[A-Z]{2}$", example = "US")]
    country_code: String,
    inbound_trunk_id: Option<String>,
    outbound_trunk_id: Option<String>,
    #[schema(format = DateTime, example = "2026-03-31T10:00:00.000000Z")]
    created_at: String,
    #[schema(format = DateTime, example = "2026-03-31T10:00:00.000000Z")]
    updated_at: String,
}

/// A SIP trunk in a list: no leg ids.
#[derive(ToSchema)]
#[schema(as = SipTrunkListItem)]
pub struct SipTrunkListItemDoc {
    id: i64,
    phone_number: String,
    nickname: Option<String>,
    sip_username: String,
    sip_address: String,
    sip_calling_format: CallingFormat,
    inbound_authorization_type: AuthorizationType,
    allowed_inbound_ips: Option<Vec<String>>,
    outbound_proxy: bool,
    country_code: String,
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
}

/// The create body. Its schema is [`request_bodies::create_trunk`], written over this placeholder.
pub struct CreateSipTrunkDoc;

/// The update body. Its schema is [`request_bodies::update_trunk`], written over this placeholder.
pub struct UpdateSipTrunkDoc;

/// Registers a request body by name with an empty placeholder schema, for [`json`] to replace.
macro_rules! placeholder_schema {
    ($doc:ty, $name:literal) => {
        impl utoipa::PartialSchema for $doc {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::Object::new().into()
            }
        }

        impl ToSchema for $doc {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

placeholder_schema!(CreateSipTrunkDoc, "CreateSipTrunk");
placeholder_schema!(UpdateSipTrunkDoc, "UpdateSipTrunk");
placeholder_schema!(CreateApiKeyDoc, "CreateApiKey");

/// `{"data": [...]}`
#[derive(ToSchema)]
#[schema(as = SipTrunkList)]
pub struct SipTrunkListDoc {
    data: Vec<SipTrunkListItemDoc>,
}

/// `{"data": {...}}`
#[derive(ToSchema)]
#[schema(as = SipTrunkData)]
pub struct SipTrunkDataDoc {
    data: SipTrunkDoc,
}

/// `{"message": ..., "data": {...}}` after a create or an update.
#[derive(ToSchema)]
#[schema(as = SipTrunkSaved)]
pub struct SipTrunkSavedDoc {
    #[schema(example = "SIP trunk created successfully.")]
    message: String,
    data: SipTrunkDoc,
}

/// The API key create body. Its schema is [`request_bodies::create_api_key`], written over this
/// placeholder.
pub struct CreateApiKeyDoc;

/// The new key, with its token shown this once.
#[derive(ToSchema)]
#[schema(as = NewApiKey)]
pub struct NewApiKeyDoc {
    name: String,
    /// `<id>|<secret>`: send as `Authorization: Bearer <token>`.
    #[schema(example = "2|Jx2w...")]
    token: String,
    #[schema(format = DateTime)]
    created_at: String,
}

/// `{"message": ..., "api_key": {...}}`
#[derive(ToSchema)]
#[schema(as = ApiKeyCreated)]
pub struct ApiKeyCreatedDoc {
    #[schema(example = "API key created successfully.")]
    message: String,
    api_key: NewApiKeyDoc,
}

/// An API key as listed: never its token.
#[derive(ToSchema)]
#[schema(as = ApiKey)]
pub struct ApiKeyDoc {
    id: i64,
    name: String,
    #[schema(format = DateTime)]
    last_used_at: Option<String>,
    #[schema(format = DateTime)]
    created_at: String,
}

/// `{"api_keys": [...]}`
#[derive(ToSchema)]
#[schema(as = ApiKeyList)]
pub struct ApiKeyListDoc {
    api_keys: Vec<ApiKeyDoc>,
}

/// `{"message": ...}`: successes without data, and most errors.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Message)]
pub struct MessageDoc {
    message: String,
}

/// `{"error": ...}`: a trunk not found, a duplicate trunk, an unexpected failure.
#[derive(serde::Serialize, ToSchema)]
#[schema(as = Error)]
pub struct ErrorDoc {
    error: String,
}

/// The 404 of an operation on `/{id}`: the resource's own (`{"error":"SIP trunk not
/// found."}`, `{"error":"Phone number not found."}`) for an integer that is no id of the
/// caller's, or the unknown route's `{"message":"Not found."}` for a segment that is not an
/// integer (docs/http-api.md, "Ids").
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = IdNotFound)]
pub enum IdNotFoundDoc {
    /// No such resource of the caller.
    Resource(ErrorDoc),
    /// Not a route: the segment is not an integer.
    Route(MessageDoc),
}

/// `{"message": "The given data was invalid.", "errors": {field: [sentences]}}`; allow-list
/// entries are reported as `allowed_inbound_ips.N`.
#[derive(ToSchema)]
#[schema(as = ValidationError)]
pub struct ValidationErrorDoc {
    #[schema(example = "The given data was invalid.")]
    message: String,
    errors: BTreeMap<String, Vec<String>>,
}

/// `{"status": ...}`
#[derive(ToSchema)]
#[schema(as = Status)]
pub struct StatusDoc {
    #[schema(example = "ok")]
    status: String,
}

/// `{"status":"ready","provisioning":...}`
#[derive(ToSchema)]
#[schema(as = Ready)]
pub struct ReadyDoc {
    #[schema(example = "ready")]
    status: String,
    /// `livekit` or `kamailio`, or `off` when trunks get no legs; `kamailio (unreachable)`
    /// while the edge's RPC does not answer (still 200: the registry serves, and writes that
    /// need the edge answer 500 until it is back).
    #[schema(example = "livekit")]
    provisioning: String,
    /// `live` (other replicas' writes reach the caches at once), `degraded` (the feed
    /// reconnects; caches rely on their TTL) or `local` (SQLite: one process).
    #[schema(example = "live")]
    cache_coherence: String,
    /// `redis` (shared by every replica), `local` (per process), or
    /// `local (redis unreachable)`.
    #[schema(example = "redis")]
    rate_limits: String,
}

/// A SIP trunk in phone-number form.
#[derive(utoipa::ToSchema)]
#[schema(as = PhoneNumber)]
pub struct PhoneNumberDoc {
    #[schema(example = 1)]
    id: i64,
    #[schema(example = "+14155551234")]
    phone_number: String,
    /// `null` when none.
    #[schema(example = "Main line")]
    nickname: Option<String>,
    #[schema(example = "US")]
    country_code: String,
    /// Always `sip` here.
    #[schema(rename = "type", example = "sip")]
    kind: String,
    /// Always `SIP` here.
    #[schema(example = "SIP")]
    type_label: String,
    #[schema(example = "2026-03-31T10:00:00.000000Z")]
    created_at: String,
}

/// `{"data":[<phone number>...]}`
#[derive(utoipa::ToSchema)]
#[schema(as = PhoneNumberList)]
pub struct PhoneNumberListDoc {
    data: Vec<PhoneNumberDoc>,
}

/// The rename body: only `nickname` is read.
#[derive(utoipa::ToSchema)]
#[schema(as = RenamePhoneNumber)]
pub struct RenamePhoneNumberDoc {
    /// At most 50 characters, trimmed; `null` or empty clears it; left out changes nothing.
    #[schema(max_length = 50, example = "Main line")]
    nickname: Option<String>,
}

/// The renamed phone number.
#[derive(utoipa::ToSchema)]
#[schema(as = PhoneNumberSavedFields)]
pub struct PhoneNumberSavedFieldsDoc {
    #[schema(example = 1)]
    id: i64,
    #[schema(example = "+14155551234")]
    phone_number: String,
    nickname: Option<String>,
    #[schema(example = "US")]
    country_code: String,
    #[schema(rename = "type", example = "sip")]
    kind: String,
}

/// `{"message":"Phone number updated successfully.","data":{...}}`
#[derive(utoipa::ToSchema)]
#[schema(as = PhoneNumberSaved)]
pub struct PhoneNumberSavedDoc {
    #[schema(example = "Phone number updated successfully.")]
    message: String,
    data: PhoneNumberSavedFieldsDoc,
}

/// The caller's account: `{"name":...,"email":...}`, not wrapped in `data`.
#[derive(utoipa::ToSchema)]
#[schema(as = Account)]
pub struct AccountDoc {
    #[schema(example = "Ops")]
    name: String,
    #[schema(example = "ops@example.com")]
    email: String,
}

/// The errors every authenticated operation can answer.
#[derive(utoipa::IntoResponses)]
pub enum CommonErrors {
    /// Missing, malformed, unknown or revoked token.
    #[response(
        status = 401,
        description = "Missing, malformed, unknown or revoked token"
    )]
    Unauthenticated(MessageDoc),
    /// Over a rate limit.
    #[response(status = 429, description = "Over a rate limit; see Retry-After")]
    TooManyRequests(MessageDoc),
    /// Unexpected failure.
    #[response(status = 500, description = "Unexpected failure")]
    Internal(ErrorDoc),
    /// Storage unavailable.
    #[response(status = 503, description = "Storage unavailable; see Retry-After")]
    Unavailable(MessageDoc),
}

/// The errors of an operation that reads a JSON body.
#[derive(utoipa::IntoResponses)]
pub enum BodyErrors {
    /// Malformed JSON.
    #[response(status = 400, description = "Malformed JSON, or not an object")]
    Malformed(MessageDoc),
    /// Too large.
    #[response(status = 413, description = "Body over 64 KiB")]
    TooLarge(MessageDoc),
    /// Not JSON.
    #[response(status = 415, description = "Body not sent as JSON")]
    NotJson(MessageDoc),
    /// Field errors.
    #[response(
        status = 422,
        description = "Field errors, every failing field at once"
    )]
    Invalid(ValidationErrorDoc),
}
