//! The routes: every endpoint of the contract under `/api`, the health probes, and JSON
//! answers for unknown routes (404) and wrong methods (405).
//!
//! An `{id}` segment matches integers only ([`ID`]): `/phone-numbers/search` is an unknown
//! route for every method (404), not a phone number with a strange id (the contract's rule;
//! clients probing for endpoints this service lacks get the answer that says so).

pub(crate) mod account;
pub(crate) mod api_keys;
pub(crate) mod docs;
pub mod document;
pub(crate) mod health;
pub mod paths;
pub(crate) mod phone_numbers;
pub(crate) mod simulate;
pub(crate) mod status;
pub(crate) mod trunks;

pub use trunks::LIST_PAGE;

use actix_web::http::header;
use actix_web::web::Bytes;
use actix_web::{web, HttpResponse};

use crate::errors::ApiError;

/// The `{id}` segment of a resource path: an integer, optionally negative (ids that cannot
/// exist, `0`, `-1`, or past `i64`, reach the resource and get its own 404). Anything else
/// is not this resource. The metrics and the log name the route by its template without
/// this pattern ([`route_template`]).
const ID: &str = "{id:-?[0-9]+}";

/// A matched resource pattern as the metrics and the log name it: `{id:-?[0-9]+}` -> `{id}`
/// (a segment's pattern is dropped; patterns here hold no braces).
pub fn route_template(pattern: &str) -> String {
    let mut template = String::with_capacity(pattern.len());
    let mut in_pattern = false;
    for c in pattern.chars() {
        match c {
            ':' if !in_pattern && template.rfind('{') > template.rfind('}') => in_pattern = true,
            '}' => {
                in_pattern = false;
                template.push(c);
            }
            _ if in_pattern => {}
            _ => template.push(c),
        }
    }
    template
}

/// A 200 with `bytes` as its JSON body.
pub(crate) fn json_ok(bytes: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(crate::errors::mime_json())
        .body(bytes)
}

/// `body` as JSON bytes; a failure (never expected) is logged and answered as a 500.
pub(crate) fn render(body: &impl serde::Serialize) -> Result<Bytes, ApiError> {
    serde_json::to_vec(body).map(Bytes::from).map_err(|error| {
        log::error!("cannot render a response: {error}");
        ApiError::Internal
    })
}

/// A 200 with `body` rendered as JSON.
pub(crate) fn ok_json(body: &impl serde::Serialize) -> Result<HttpResponse, ApiError> {
    render(body).map(json_ok)
}

/// The 405 of a resource, with the `Allow` header RFC 9110 requires.
fn method_not_allowed(
    allow: &'static str,
) -> impl Fn() -> std::future::Ready<HttpResponse> + Clone {
    move || {
        let mut response = actix_web::ResponseError::error_response(&ApiError::MethodNotAllowed);
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static(allow));
        std::future::ready(response)
    }
}

async fn not_found() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::RouteNotFound)
}

/// `path` with its `{id}` segment narrowed to integers ([`ID`]), for the route table.
fn with_integer_id(path: &str) -> String {
    path.replace("{id}", ID)
}

/// The resource at `path` (an `{id}` matches integers only).
fn resource(path: &str) -> actix_web::Resource {
    web::resource(with_integer_id(path))
}

/// Registers every route on `cfg`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        resource(paths::HEALTHZ)
            .get(health::healthz)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::READYZ)
            .get(health::readyz)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::TRUNKS)
            .get(trunks::list)
            .post(trunks::create)
            .to(method_not_allowed("GET, POST")),
    )
    .service(
        resource(paths::TRUNK)
            .get(trunks::get)
            .put(trunks::update)
            .patch(trunks::patch)
            .delete(trunks::delete_at_trunk_path)
            .to(method_not_allowed("GET, PUT, PATCH, DELETE")),
    )
    .service(
        resource(paths::SIMULATE)
            .post(simulate::simulate)
            .to(method_not_allowed("POST")),
    )
    .service(
        resource(paths::TRUNK_STATUS)
            .get(status::status)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::TRUNK_STATUS_PROBE)
            .post(status::probe)
            .to(method_not_allowed("POST")),
    )
    .service(
        resource(paths::PHONE_NUMBERS)
            .get(phone_numbers::list_all)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::PHONE_NUMBER)
            .put(phone_numbers::rename)
            .delete(trunks::delete)
            .to(method_not_allowed("PUT, DELETE")),
    )
    .service(
        resource(paths::ACCOUNT)
            .get(account::me)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::API_KEYS)
            .get(api_keys::list)
            .post(api_keys::create)
            .to(method_not_allowed("GET, POST")),
    )
    .service(
        resource(paths::API_KEY)
            .delete(api_keys::revoke)
            .to(method_not_allowed("DELETE")),
    )
    .service(
        resource(paths::DOCS_PAGE)
            .get(docs::page)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::DOCS_SCRIPT)
            .get(docs::bundle)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::DOCS_START)
            .get(docs::start)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::DOCS_STYLE)
            .get(docs::style)
            .to(method_not_allowed("GET")),
    )
    .service(
        resource(paths::OPENAPI_DOCUMENT)
            .get(document::document)
            .to(method_not_allowed("GET")),
    )
    .default_service(web::to(not_found));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_template_drops_the_segment_pattern_and_keeps_the_rest() {
        assert_eq!(
            route_template("/api/user/phone-numbers/sip-trunks/{id:-?[0-9]+}"),
            "/api/user/phone-numbers/sip-trunks/{id}"
        );
        assert_eq!(
            route_template("/api/user/phone-numbers/sip-trunks"),
            "/api/user/phone-numbers/sip-trunks"
        );
        assert_eq!(route_template("/a/{x}/b:c"), "/a/{x}/b:c");
        assert_eq!(route_template(&format!("/k/{ID}/v")), "/k/{id}/v");
    }
}
