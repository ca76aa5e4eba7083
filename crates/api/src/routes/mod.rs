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
/// this pattern ([`RouteTemplate`]).
const ID: &str = "{id:-?[0-9]+}";

/// The route a request matched, as the metrics and the log name it: its path in the OpenAPI
/// form (`/api/user/phone-numbers/sip-trunks/{id}`, never the segment's pattern nor the raw
/// path). Every resource carries its own as resource data ([`resource`]), so naming a
/// request's route costs a lookup, not a walk of the route table and a new string.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteTemplate(pub &'static str);

impl RouteTemplate {
    /// The route `request` matched; `None` when none did (the default service's 404).
    pub fn of(request: &actix_web::HttpRequest) -> Option<&'static str> {
        request
            .app_data::<RouteTemplate>()
            .map(|template| template.0)
    }
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

/// The resource at `path` (an `{id}` matches integers only), named `path` in the metrics and
/// the log ([`RouteTemplate`]).
fn resource(path: &'static str) -> actix_web::Resource {
    web::resource(with_integer_id(path)).app_data(RouteTemplate(path))
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

    use actix_web::test::{call_service, init_service, TestRequest};

    /// A route table of `routes`' shape whose handlers answer with the route they see.
    async fn route_of(path: &str, method: actix_web::http::Method) -> String {
        let app = init_service(actix_web::App::new().configure(|cfg| {
            let named = |req: actix_web::HttpRequest| async move {
                RouteTemplate::of(&req).unwrap_or("unmatched").to_owned()
            };
            cfg.service(resource(paths::TRUNKS).get(named))
                .service(resource(paths::TRUNK).get(named).to(named))
                .default_service(web::to(named));
        }))
        .await;
        let response = call_service(
            &app,
            TestRequest::default().method(method).uri(path).to_request(),
        )
        .await;
        String::from_utf8(actix_web::test::read_body(response).await.to_vec()).unwrap()
    }

    #[actix_web::test]
    async fn a_request_is_named_by_its_route_template_never_by_its_raw_path() {
        use actix_web::http::Method;
        assert_eq!(
            route_of("/api/user/phone-numbers/sip-trunks", Method::GET).await,
            paths::TRUNKS
        );
        assert_eq!(
            route_of("/api/user/phone-numbers/sip-trunks/42", Method::GET).await,
            paths::TRUNK
        );
        assert_eq!(
            route_of("/api/user/phone-numbers/sip-trunks/-7", Method::PATCH).await,
            paths::TRUNK
        );
        assert_eq!(
            route_of("/api/user/phone-numbers/sip-trunks/x", Method::GET).await,
            "unmatched"
        );
        assert_eq!(route_of("/nowhere", Method::GET).await, "unmatched");
    }
}
