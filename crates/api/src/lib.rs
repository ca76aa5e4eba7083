//! The SIP trunk HTTP API: actix-web handlers over the domain's ports, and the pieces of the
//! `sip-trunks` binary (configuration, start-up, administration commands).

pub mod auth;
pub mod body;
pub mod cli;
pub mod client_address;
pub mod errors;
pub mod infrastructure;
pub mod keys;
pub mod openapi;
pub mod provisioning;
pub mod rate_limit;
pub mod read_cache;
pub mod request;
pub mod routes;
pub mod server;
pub mod shared_limits;
pub mod state;
pub mod views;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Compress;
use actix_web::{web, App, HttpMessage};

pub use state::AppState;

const RATE_LIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const NOSNIFF: (HeaderName, HeaderValue) = (
    HeaderName::from_static("x-content-type-options"),
    HeaderValue::from_static("nosniff"),
);
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// The prefix of every per-account endpoint.
const ACCOUNT_API: &str = "/api/user/";
const RATE_LIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// Longest path written to the request log.
const LOGGED_PATH_LEN: usize = 200;

/// The application: routes, shared state, security headers and the request log.
/// The log line holds method, path, status and duration; never headers, query or body.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::new(state))
        // gzip (or another encoding the build has) when the client accepts it: a list of
        // a thousand trunks is some 400 KB of JSON, a tenth of that compressed.
        .wrap(Compress::default())
        // One middleware for the headers and the log line: each layer costs every request.
        .wrap_fn(|req, service| {
            let logged = log::log_enabled!(log::Level::Info).then(|| {
                (
                    Instant::now(),
                    req.method().clone(),
                    req.path().chars().take(LOGGED_PATH_LEN).collect::<String>(),
                )
            });
            let per_account = req.path().starts_with(ACCOUNT_API);
            let response = service.call(req);
            async move {
                let mut response = response.await;
                if let Ok(done) = &mut response {
                    let allowance = done
                        .request()
                        .extensions()
                        .get::<rate_limit::Allowance>()
                        .copied();
                    let headers = done.headers_mut();
                    headers.insert(NOSNIFF.0, NOSNIFF.1);
                    if per_account {
                        // For one account only: no shared cache may keep it.
                        headers.insert(header::CACHE_CONTROL, NO_STORE);
                    }
                    if let Some(allowance) = allowance {
                        headers.insert(RATE_LIMIT_LIMIT, HeaderValue::from(allowance.limit));
                        headers
                            .insert(RATE_LIMIT_REMAINING, HeaderValue::from(allowance.remaining));
                    }
                }
                let Some((started, method, path)) = logged else {
                    return response;
                };
                let elapsed_ms = started.elapsed().as_secs_f64() * 1000.0;
                match &response {
                    Ok(done) => log::info!(
                        "{method} {path} {} {elapsed_ms:.2}ms",
                        done.status().as_u16()
                    ),
                    Err(error) => log::info!(
                        "{method} {path} {} {elapsed_ms:.2}ms",
                        error.as_response_error().status_code().as_u16()
                    ),
                }
                response
            }
        })
        .configure(routes::routes)
}
