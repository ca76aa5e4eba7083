//! The SIP trunk HTTP API: actix-web handlers over the use cases (`service`) and the domain's
//! ports, their wire types and OpenAPI document, and what serving HTTP needs around them
//! (authentication, rate limits, caches, metrics, the log). The binary that runs it is
//! `crates/server`.

pub mod auth;
pub mod auth_cache;
pub mod body;
pub mod client_address;
pub mod diagnostics_views;
pub mod errors;
pub mod logging;
pub mod metrics;
pub mod openapi;
pub mod rate_limit;
pub mod read_cache;
pub mod request;
pub mod routes;
pub mod shared_limits;
pub mod shared_quota;
pub mod state;
pub mod telemetry;
pub mod views;

use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::middleware::Compress;
use actix_web::{web, App, HttpMessage};

pub use state::AppState;

const RATE_LIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
const NOSNIFF: (HeaderName, HeaderValue) = (
    HeaderName::from_static("x-content-type-options"),
    HeaderValue::from_static("nosniff"),
);
const NO_STORE: HeaderValue = HeaderValue::from_static("no-store");

/// The prefix of every per-account endpoint.
const ACCOUNT_API: &str = "/api/user/";
const RATE_LIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");

/// The application: routes, shared state, security headers, request ids and the request log.
/// The log line holds method, path (route template in JSON), status, duration and the user
/// id, each bounded ([`telemetry`]); never headers, query or body. Every response carries `X-Request-Id`.
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
    let metrics = state.metrics.clone();
    App::new()
        .app_data(web::Data::new(state))
        // gzip (or another encoding the build has) when the client accepts it: a list of
        // a thousand trunks is some 400 KB of JSON, a tenth of that compressed.
        .wrap(Compress::default())
        // One middleware for the headers and the log line: each layer costs every request.
        .wrap_fn(move |req, service| {
            let id = logging::request_id(
                req.headers()
                    .get(&REQUEST_ID)
                    .and_then(|value| value.to_str().ok()),
            );
            let started = Instant::now();
            let method = telemetry::method_label(req.method());
            let logged_path =
                log::log_enabled!(log::Level::Info).then(|| telemetry::loggable_path(req.path()));
            let per_account = req.path().starts_with(ACCOUNT_API);
            let metrics = metrics.clone();
            let response = logging::with_request_id(id.clone(), service.call(req));
            logging::with_request_id(id.clone(), async move {
                let mut response = response.await;
                if let Ok(done) = &mut response {
                    add_response_headers(done, &id, per_account);
                }
                record(&metrics, &response, method, logged_path, started.elapsed());
                response
            })
        })
        .configure(routes::routes)
}

/// The headers every response gets: `nosniff`, its `X-Request-Id`, `no-store` on per-account
/// endpoints, and the rate limit's allowance when one was counted.
fn add_response_headers<B>(done: &mut ServiceResponse<B>, id: &str, per_account: bool) {
    let allowance = done
        .request()
        .extensions()
        .get::<rate_limit::Allowance>()
        .copied();
    let headers = done.headers_mut();
    headers.insert(NOSNIFF.0, NOSNIFF.1);
    if let Ok(value) = HeaderValue::from_str(id) {
        headers.insert(REQUEST_ID, value);
    }
    if per_account {
        // For one account only: no shared cache may keep it.
        headers.insert(header::CACHE_CONTROL, NO_STORE);
    }
    if let Some(allowance) = allowance {
        headers.insert(RATE_LIMIT_LIMIT, HeaderValue::from(allowance.limit));
        headers.insert(RATE_LIMIT_REMAINING, HeaderValue::from(allowance.remaining));
    }
}

/// Counts a finished request in the metrics (by route template, never the raw path) and
/// writes its log line when `logged_path` is given (the info level is on).
fn record<B>(
    metrics: &metrics::Metrics,
    response: &Result<ServiceResponse<B>, actix_web::Error>,
    method: &'static str,
    logged_path: Option<String>,
    elapsed: std::time::Duration,
) {
    let elapsed_ms = elapsed.as_secs_f64() * 1000.0;
    let (status, route, user) = match response {
        Ok(done) => (
            done.status().as_u16(),
            routes::RouteTemplate::of(done.request()),
            done.request()
                .extensions()
                .get::<auth::Authenticated>()
                .map(|caller| caller.user.get()),
        ),
        Err(error) => (error.as_response_error().status_code().as_u16(), None, None),
    };
    let route = route.unwrap_or("unmatched");
    metrics
        .requests
        .get_or_create(&metrics::RequestLabels {
            route,
            method,
            status,
        })
        .inc();
    metrics
        .durations
        .get_or_create(&metrics::RouteLabels { route, method })
        .observe(elapsed.as_secs_f64());
    let Some(path) = logged_path else {
        return;
    };
    let duration_ms = (elapsed_ms * 100.0).round() / 100.0;
    match user {
        Some(user_id) => log::info!(
            method, route, status, duration_ms, user_id;
            "{method} {path} {status} {elapsed_ms:.2}ms"
        ),
        None => log::info!(
            method, route, status, duration_ms;
            "{method} {path} {status} {elapsed_ms:.2}ms"
        ),
    }
}
