//! The OpenAPI document: every operation the route table serves, listed here beside it
//! (`super::routes`), with the schemas of [`crate::openapi`]; served at `GET /api/openapi.json`
//! and committed as `docs/openapi.json` (a test fails when they drift).

use std::sync::OnceLock;

use actix_web::HttpResponse;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use super::paths;
use crate::openapi::request_bodies;
use crate::views::{ErrorBody, Message, ValidationError};

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

/// The document.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "SIP trunks",
        description = "Customers' own SIP trunks (bring your own carrier) and their API keys.",
        version = "1.0.0"
    ),
    paths(
        super::trunks::list,
        super::trunks::create,
        super::trunks::get,
        super::trunks::update,
        super::trunks::patch,
        super::trunks::delete,
        super::trunks::delete_at_trunk_path,
        super::status::status,
        super::status::probe,
        super::simulate::simulate,
        super::phone_numbers::list_all,
        super::phone_numbers::rename,
        super::account::me,
        super::api_keys::list,
        super::api_keys::create,
        super::api_keys::revoke,
        super::health::healthz,
        super::health::readyz,
        document,
    ),
    components(schemas(Message, ErrorBody, ValidationError)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "sip-trunks"), (name = "phone-numbers"), (name = "account"), (name = "api-keys"), (name = "operations"))
)]
pub struct ApiDoc;

/// The document as pretty JSON, built once.
pub fn json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        let mut document = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
        add_trunk_links(&mut document);
        if let Some(schemas) = document.pointer_mut("/components/schemas") {
            schemas["CreateSipTrunk"] = request_bodies::create_trunk();
            schemas["UpdateSipTrunk"] = request_bodies::update_trunk();
            schemas["CreateApiKey"] = request_bodies::create_api_key();
            schemas["RenamePhoneNumber"] = request_bodies::rename_phone_number();
            schemas["SimulateCall"] = request_bodies::simulate_call();
        }
        // The common 429 (rate limits) says nothing of the probe's own spacing.
        if let Some(description) = document.pointer_mut(&operation(
            paths::TRUNK_STATUS_PROBE,
            "post",
            "/responses/429/description",
        )) {
            *description = serde_json::Value::String(
                "Over a rate limit, or this trunk's carrier was probed on demand less than 10 seconds ago; see Retry-After".into(),
            );
        }
        // An update without a body changes nothing, like `{}` (the contract's "empty body");
        // the same for a rename: no `nickname`, no change.
        for (path, method) in [
            (paths::TRUNK, "put"),
            (paths::TRUNK, "patch"),
            (paths::PHONE_NUMBER, "put"),
        ] {
            if let Some(body) = document.pointer_mut(&operation(path, method, "/requestBody")) {
                body["required"] = serde_json::Value::Bool(false);
            }
        }
        serde_json::to_string_pretty(&document).unwrap_or_else(|_| "{}".to_owned())
    })
}

/// The JSON pointer to `rest` (empty, or starting with `/`) of the operation `method` on
/// `path` in the document.
fn operation(path: &str, method: &str, rest: &str) -> String {
    let escaped = path.replace('~', "~0").replace('/', "~1");
    format!("/paths/{escaped}/{method}{rest}")
}

/// Links from a created trunk to the operations that take its id, for clients (and test
/// tools) that follow create -> get -> update -> delete. Written as JSON because utoipa 5.5
/// serializes `Link` with `operation_id` instead of the specification's `operationId`.
fn add_trunk_links(document: &mut serde_json::Value) {
    let links = serde_json::json!({
        "GetSipTrunk": { "operationId": "getSipTrunk", "parameters": { "id": "$response.body#/data/id" } },
        "UpdateSipTrunk": { "operationId": "updateSipTrunk", "parameters": { "id": "$response.body#/data/id" } },
        "PatchSipTrunk": { "operationId": "patchSipTrunk", "parameters": { "id": "$response.body#/data/id" } },
        "DeleteSipTrunk": { "operationId": "deleteSipTrunk", "parameters": { "id": "$response.body#/data/id" } },
    });
    if let Some(created) = document.pointer_mut(&operation(paths::TRUNKS, "post", "/responses/201"))
    {
        created["links"] = links;
    }
}

/// `GET /api/openapi.json`, without authentication.
#[utoipa::path(operation_id = "openApiDocument", get, path = paths::OPENAPI_DOCUMENT, tag = "operations", security(()),
    responses((status = 200, description = "This document", content_type = "application/json")))]
pub async fn document() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::errors::mime_json())
        .body(json())
}
