//! The routes: every endpoint of the contract under `/api`, the health probes, and JSON
//! answers for unknown routes (404) and wrong methods (405).

pub(crate) mod api_keys;
pub(crate) mod docs;
pub(crate) mod health;
pub(crate) mod phone_numbers;
pub(crate) mod trunks;

pub use trunks::LIST_PAGE;

use actix_web::http::header;
use actix_web::{web, HttpResponse};

use crate::errors::ApiError;

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

/// Registers every route on `cfg`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/healthz")
            .get(health::healthz)
            .to(method_not_allowed("GET")),
    )
    .service(
        web::resource("/readyz")
            .get(health::readyz)
            .to(method_not_allowed("GET")),
    )
    .service(
        web::scope("/api/user")
            .service(
                web::resource("/phone-numbers/sip-trunks")
                    .get(trunks::list)
                    .post(trunks::create)
                    .to(method_not_allowed("GET, POST")),
            )
            .service(
                web::resource("/phone-numbers/sip-trunks/{id}")
                    .get(trunks::get)
                    .put(trunks::update)
                    .patch(trunks::patch)
                    .delete(trunks::delete_at_trunk_path)
                    .to(method_not_allowed("GET, PUT, PATCH, DELETE")),
            )
            .service(
                web::resource("/phone-numbers/all")
                    .get(phone_numbers::list_all)
                    .to(method_not_allowed("GET")),
            )
            .service(
                web::resource("/phone-numbers/{id}")
                    .put(phone_numbers::rename)
                    .delete(trunks::delete)
                    .to(method_not_allowed("PUT, DELETE")),
            )
            .service(
                web::resource("/api-keys")
                    .get(api_keys::list)
                    .post(api_keys::create)
                    .to(method_not_allowed("GET, POST")),
            )
            .service(
                web::resource("/api-keys/{id}")
                    .delete(api_keys::revoke)
                    .to(method_not_allowed("DELETE")),
            ),
    )
    .service(
        web::resource("/api/docs")
            .get(docs::page)
            .to(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/docs/swagger-ui-bundle.js")
            .get(docs::bundle)
            .to(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/docs/swagger-ui.css")
            .get(docs::style)
            .to(method_not_allowed("GET")),
    )
    .service(
        web::resource("/api/openapi.json")
            .get(crate::openapi::document)
            .to(method_not_allowed("GET")),
    )
    .default_service(web::to(not_found));
}
