//! The OpenAPI 3.1 schemas of the API's wire shapes, generated from the code with `utoipa`.
//! The document itself (its list of operations, served at `GET /api/openapi.json` and
//! committed as `docs/openapi.json`) is [`crate::routes::document`], next to the route table,
//! so that this module depends on no handler.
//!
//! The response bodies' schemas are derived from the types that render them
//! ([`crate::views`]); what is left here exists only for the document: the enums the views
//! hold as strings, the 404 union, the error sets every operation shares, and placeholders
//! for the request bodies, whose schemas come from [`request_bodies`] (built from the
//! domain's syntax patterns, so that they accept exactly what the domain's parsers accept).
//! Response schemas are checked against real answers by the tests (same keys, same order).

#![allow(dead_code)] // the types below exist for their schemas

pub(crate) mod request_bodies;

use utoipa::ToSchema;

use crate::views::{ErrorBody, Message, ValidationError};

/// The create body. Its schema is [`request_bodies::create_trunk`], written over this placeholder.
pub struct CreateSipTrunkBody;

/// The update body. Its schema is [`request_bodies::update_trunk`], written over this placeholder.
pub struct UpdateSipTrunkBody;

/// The API key create body. Its schema is [`request_bodies::create_api_key`], written over this
/// placeholder.
pub struct CreateApiKeyBody;

/// The rename body. Its schema is [`request_bodies::rename_phone_number`], written over this
/// placeholder.
pub struct RenamePhoneNumberBody;

/// The simulator's body. Its schema is [`request_bodies::simulate_call`], written over this
/// placeholder.
pub struct SimulateCallBody;

/// Registers a request body by name with an empty placeholder schema, for
/// [`crate::routes::document::json`] to replace.
macro_rules! placeholder_schema {
    ($body:ty, $name:literal) => {
        impl utoipa::PartialSchema for $body {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::schema::Object::new().into()
            }
        }

        impl ToSchema for $body {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($name)
            }
        }
    };
}

placeholder_schema!(CreateSipTrunkBody, "CreateSipTrunk");
placeholder_schema!(UpdateSipTrunkBody, "UpdateSipTrunk");
placeholder_schema!(CreateApiKeyBody, "CreateApiKey");
placeholder_schema!(RenamePhoneNumberBody, "RenamePhoneNumber");
placeholder_schema!(SimulateCallBody, "SimulateCall");

/// The 404 of an operation on `/{id}`: the resource's own (`{"error":"SIP trunk not
/// found."}`, `{"error":"Phone number not found."}`) for an integer that is no id of the
/// caller's, or the unknown route's `{"message":"Not found."}` for a segment that is not an
/// integer (docs/http-api.md, "Ids").
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
#[schema(as = IdNotFound)]
pub enum IdNotFound<'a> {
    /// No such resource of the caller.
    Resource(ErrorBody<'a>),
    /// Not a route: the segment is not an integer.
    Route(Message<'a>),
}

/// The errors every authenticated operation can answer.
#[derive(utoipa::IntoResponses)]
pub enum CommonErrors {
    /// Missing, malformed, unknown or revoked token.
    #[response(
        status = 401,
        description = "Missing, malformed, unknown or revoked token"
    )]
    Unauthenticated(Message<'static>),
    /// Over a rate limit.
    #[response(status = 429, description = "Over a rate limit; see Retry-After")]
    TooManyRequests(Message<'static>),
    /// Unexpected failure.
    #[response(status = 500, description = "Unexpected failure")]
    Internal(ErrorBody<'static>),
    /// Storage unavailable.
    #[response(status = 503, description = "Storage unavailable; see Retry-After")]
    Unavailable(Message<'static>),
}

/// The errors of an operation that reads a JSON body.
#[derive(utoipa::IntoResponses)]
pub enum BodyErrors {
    /// Malformed JSON.
    #[response(status = 400, description = "Malformed JSON, or not an object")]
    Malformed(Message<'static>),
    /// Too large.
    #[response(status = 413, description = "Body over 64 KiB")]
    TooLarge(Message<'static>),
    /// Not JSON.
    #[response(status = 415, description = "Body not sent as JSON")]
    NotJson(Message<'static>),
    /// Field errors.
    #[response(
        status = 422,
        description = "Field errors, every failing field at once"
    )]
    Invalid(ValidationError<'static>),
}
