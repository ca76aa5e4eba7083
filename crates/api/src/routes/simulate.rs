//! `POST /api/user/phone-numbers/sip-trunks/simulate`: what the SIP edge would do with a call,
//! among the caller's trunks only (docs/diagnostics.md). The body is read field by field so
//! that every error is reported at once; a password offered is never logged or echoed.

use std::net::IpAddr;

use actix_web::{web, HttpResponse};
use domain::simulation::{InboundCall, OfferedPassword};
use domain::{TrunkId, ValidationErrors};
use serde_json::{Map, Value};

use crate::auth::Authenticated;
use crate::body::JsonObject;
use crate::diagnostics_views::SimulationData;
use crate::errors::ApiError;
use crate::state::AppState;

/// Longest `to` and `from` accepted.
const URI_MAX_CHARS: usize = 256;
/// Longest `username` and `password` accepted (a trunk's own bound).
const CREDENTIAL_MAX_CHARS: usize = 128;

/// A call to simulate, read from the body.
enum Call {
    Inbound(InboundCall),
    Outbound { trunk: i64, to: String },
}

/// Reads an optional string field of at most `max` characters.
fn text(
    body: &Map<String, Value>,
    errors: &mut ValidationErrors,
    field: &str,
    label: &str,
    max: usize,
) -> Option<String> {
    match body.get(field) {
        None | Some(Value::Null) => None,
        Some(Value::String(value)) if value.chars().count() > max => {
            errors.add(
                field,
                format!("The {label} may not be greater than {max} characters."),
            );
            None
        }
        Some(Value::String(value)) => Some(value.clone()),
        Some(_) => {
            errors.add(field, format!("The {label} must be a string."));
            None
        }
    }
}

fn required<T>(
    errors: &mut ValidationErrors,
    field: &str,
    label: &str,
    value: Option<T>,
) -> Option<T> {
    if value.is_none() && !errors.fields().any(|(name, _)| name == field) {
        errors.add(field, format!("The {label} field is required."));
    }
    value
}

fn read_call(body: &Map<String, Value>) -> Result<Call, ValidationErrors> {
    // Every field sent is checked, whichever direction it belongs to; then each direction's
    // own fields are required.
    let mut errors = ValidationErrors::new();
    let direction = text(body, &mut errors, "direction", "direction", 16);
    let direction = match direction.as_deref() {
        None | Some("inbound" | "outbound") => direction,
        Some(_) => {
            errors.add(
                "direction",
                "The direction must be one of: inbound, outbound.",
            );
            None
        }
    };
    let direction = required(&mut errors, "direction", "direction", direction);
    let to = text(body, &mut errors, "to", "to", URI_MAX_CHARS).filter(|to| !to.is_empty());
    let to = required(&mut errors, "to", "to", to);
    let source = match text(body, &mut errors, "source_ip", "source ip", 64) {
        Some(raw) => match raw.parse::<IpAddr>() {
            Ok(ip) => Some(ip),
            Err(_) => {
                errors.add(
                    "source_ip",
                    "The source ip must be a valid IPv4 or IPv6 address.",
                );
                None
            }
        },
        None => None,
    };
    text(body, &mut errors, "from", "from", URI_MAX_CHARS);
    let username = text(
        body,
        &mut errors,
        "username",
        "username",
        CREDENTIAL_MAX_CHARS,
    );
    let password = text(
        body,
        &mut errors,
        "password",
        "password",
        CREDENTIAL_MAX_CHARS,
    );
    let trunk = match body.get("trunk_id") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => match n.as_i64() {
            Some(id) if id >= 1 => Some(id),
            _ if n.as_i64().is_some() || n.as_u64().is_some() => {
                errors.add(
                    "trunk_id",
                    "The trunk id must be between 1 and 9223372036854775807.",
                );
                None
            }
            _ => {
                errors.add("trunk_id", "The trunk id must be an integer.");
                None
            }
        },
        Some(_) => {
            errors.add("trunk_id", "The trunk id must be an integer.");
            None
        }
    };
    let call = match direction.as_deref() {
        Some("inbound") => {
            let source = required(&mut errors, "source_ip", "source ip", source);
            source.zip(to).map(|(source, to)| {
                Call::Inbound(InboundCall {
                    source,
                    to,
                    username,
                    password: password.map(OfferedPassword::new),
                })
            })
        }
        Some(_) => {
            let trunk = required(&mut errors, "trunk_id", "trunk id", trunk);
            trunk
                .zip(to)
                .map(|(trunk, to)| Call::Outbound { trunk, to })
        }
        None => None,
    };
    match call {
        Some(call) if errors.is_empty() => Ok(call),
        _ => Err(errors),
    }
}

/// `POST …/sip-trunks/simulate`.
#[utoipa::path(operation_id = "simulateSipCall", post, path = super::paths::SIMULATE, tag = "sip-trunks",
    request_body = crate::openapi::SimulateCallBody,
    responses(
        (status = 200, description = "What the edge would do with the call, and why", body = SimulationData),
        (status = 404, description = "Outbound: no such trunk of the caller", body = crate::openapi::IdNotFound),
        crate::openapi::BodyErrors,
        crate::openapi::CommonErrors
    ))]
pub async fn simulate(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let call = read_call(&body.0).map_err(ApiError::Invalid)?;
    let diagnostics = state.diagnostics();
    let (direction, simulation) = match call {
        Call::Inbound(call) => (
            "inbound",
            diagnostics.simulate_inbound(caller.user, call).await,
        ),
        Call::Outbound { trunk, to } => {
            // `read_call` admits ids from 1 only.
            let id = TrunkId::new(trunk).ok_or(ApiError::Internal)?;
            (
                "outbound",
                diagnostics.simulate_outbound(caller.user, id, to).await,
            )
        }
    };
    let simulation =
        simulation.map_err(|error| ApiError::from_repository(error, ApiError::TrunkNotFound))?;
    super::ok_json(&SimulationData::of(direction, simulation))
}
