//! Every path the service serves, written once: the route table ([`super::routes`]) and the
//! handlers' OpenAPI attributes both name these constants. `{id}` is the OpenAPI form; the
//! route table narrows it to integers ([`super::with_integer_id`]).

/// The liveness probe.
pub const HEALTHZ: &str = "/healthz";
/// The readiness probe.
pub const READYZ: &str = "/readyz";
/// List and create SIP trunks.
pub const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";
/// One SIP trunk: get, update, patch, delete.
pub const TRUNK: &str = "/api/user/phone-numbers/sip-trunks/{id}";
/// One SIP trunk's status: its legs and its carrier.
pub const TRUNK_STATUS: &str = "/api/user/phone-numbers/sip-trunks/{id}/status";
/// Probe one SIP trunk's carrier now.
pub const TRUNK_STATUS_PROBE: &str = "/api/user/phone-numbers/sip-trunks/{id}/status/probe";
/// Simulate a call through the caller's trunks.
pub const SIMULATE: &str = "/api/user/phone-numbers/sip-trunks/simulate";
/// The caller's trunks in phone-number form.
pub const PHONE_NUMBERS: &str = "/api/user/phone-numbers/all";
/// One phone number: rename, delete.
pub const PHONE_NUMBER: &str = "/api/user/phone-numbers/{id}";
/// The caller's account.
pub const ACCOUNT: &str = "/api/user/me";
/// List and create API keys.
pub const API_KEYS: &str = "/api/user/api-keys";
/// Revoke one API key.
pub const API_KEY: &str = "/api/user/api-keys/{id}";
/// The OpenAPI document.
pub const OPENAPI_DOCUMENT: &str = "/api/openapi.json";
/// The API documentation page.
pub const DOCS_PAGE: &str = "/api/docs";
/// The documentation page's script.
pub const DOCS_SCRIPT: &str = "/api/docs/swagger-ui-bundle.js";
/// The documentation page's own start-up script (no inline script: the page's CSP forbids it).
pub const DOCS_START: &str = "/api/docs/start.js";
/// The documentation page's style sheet.
pub const DOCS_STYLE: &str = "/api/docs/swagger-ui.css";
