//! Bearer authentication as an extractor: `Authenticated` in a handler's arguments means the
//! request carried a live token. Every failure is the same 401.
//!
//! Verified tokens are remembered for [`AUTH_CACHE_TTL`] so that most requests do not ask the
//! database who they are. Revoking a key through this process takes effect on the next
//! request. On PostgreSQL a key revoked elsewhere (another replica, the CLI) is announced by
//! the change feed within milliseconds ([`AuthCache::revoke`]); on SQLite, or while the feed
//! reconnects, it stops working within the TTL.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use domain::{ApiToken, Timestamp};

use crate::auth_cache::is_stale;
pub use crate::auth_cache::{AuthCache, Authenticated, AUTH_CACHE_TTL, TOUCH_INTERVAL};
use crate::errors::ApiError;
use crate::state::AppState;

/// Longest `Authorization` header considered; longer ones are refused without parsing.
const MAX_HEADER_LEN: usize = 512;

/// The token of the request's one `Authorization: Bearer` header; `None` when there is no
/// such header, or more than one (which of two credentials is meant is not guessed).
fn bearer_token(req: &HttpRequest) -> Option<ApiToken> {
    let mut values = req.headers().get_all(header::AUTHORIZATION);
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    let value = value.to_str().ok()?;
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    ApiToken::parse(token.trim())
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let req = req.clone();
        Box::pin(async move {
            let state = state.ok_or(ApiError::Internal)?;
            // The token is checked before the client's failure count: a valid token is never
            // refused because someone else at the same address keeps failing.
            let caller = match verify(&state, token).await {
                Ok(caller) => caller,
                Err(ApiError::Unauthenticated) => {
                    let client = state
                        .trusted_proxies
                        .client(req.peer_addr().map(|peer| peer.ip()), req.headers());
                    let metrics = &state.metrics;
                    metrics.auth_failures.inc();
                    let answer = state.rate_limits.failed_everywhere(client).await;
                    if matches!(answer, ApiError::TooManyRequests { .. }) {
                        crate::metrics::Metrics::count(&metrics.rate_limited, "auth_failures");
                    }
                    return Err(answer);
                }
                Err(other) => return Err(other),
            };
            // The request log names the user.
            req.extensions_mut().insert(caller);
            let allowance = state
                .rate_limits
                .check_account_everywhere(caller.user)
                .await
                .inspect_err(|_| {
                    let metrics = &state.metrics;
                    crate::metrics::Metrics::count(&metrics.rate_limited, "account");
                })?;
            if let Some(allowance) = allowance {
                req.extensions_mut().insert(allowance);
            }
            Ok(caller)
        })
    }
}

/// The caller `token` belongs to: from the cache, or from the database (then remembered).
async fn verify(state: &AppState, token: Option<ApiToken>) -> Result<Authenticated, ApiError> {
    let token = token.ok_or(ApiError::Unauthenticated)?;
    let now = Timestamp::now();
    let cached = state.auth_cache.lookup(&token, now);
    state
        .metrics
        .cache_lookup(crate::metrics::CacheKind::Auth, cached.is_some());
    if let Some((caller, touch)) = cached {
        if let Some(at) = touch {
            // Off the request path: the answer does not wait for this write.
            let (accounts, state) = (state.accounts.clone(), state.clone());
            actix_web::rt::spawn(async move {
                let touched = state
                    .blocking(move || accounts.touch_api_key(caller.key, at))
                    .await;
                if let Err(error) = touched {
                    log::warn!(
                        "could not record the use of API key {}: {error}",
                        caller.key
                    );
                }
            });
        }
        return Ok(caller);
    }
    let accounts = state.accounts.clone();
    let epoch = state.auth_cache.epoch();
    let (key, token, last_used_at) = state
        .blocking(move || {
            let key = accounts.authenticate(&token)?;
            let mut last_used_at = key.last_used_at;
            if is_stale(last_used_at, now) {
                accounts.touch_api_key(key.id, now)?;
                last_used_at = Some(now);
            }
            Ok((key, token, last_used_at))
        })
        .await
        .map_err(|error| ApiError::from_repository(error, ApiError::Unauthenticated))?;
    state.auth_cache.remember(&token, &key, last_used_at, epoch);
    Ok(Authenticated {
        user: key.owner,
        key: key.id,
    })
}
