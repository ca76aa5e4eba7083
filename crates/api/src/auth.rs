//! Bearer authentication as an extractor: `Authenticated` in a handler's arguments means the
//! request carried a live token. Every failure is the same 401.
//!
//! Verified tokens are remembered for [`AUTH_CACHE_TTL`] so that most requests do not ask the
//! database who they are. Revoking a key through this process takes effect on the next
//! request. On PostgreSQL a key revoked elsewhere (another replica, the CLI) is announced by
//! the change feed within milliseconds ([`AuthCache::revoke`]); on SQLite, or while the feed
//! reconnects, it stops working within the TTL.

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use domain::{ApiToken, Timestamp};
use futures_util::future::{ready, Either, LocalBoxFuture, Ready};

use crate::auth_cache::is_stale;
pub use crate::auth_cache::{AuthCache, Authenticated, AUTH_CACHE_TTL, TOUCH_INTERVAL};
use crate::errors::ApiError;
use crate::rate_limit;
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
    type Future =
        Either<Ready<Result<Self, ApiError>>, LocalBoxFuture<'static, Result<Self, ApiError>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let Some(state) = req.app_data::<web::Data<AppState>>() else {
            return Either::Left(ready(Err(ApiError::Internal)));
        };
        // Most requests: a token verified moments ago, under limits this process decides
        // alone. They are answered here, with nothing to wait for (no boxed future, no clone
        // of the state or the request).
        let known = token.as_ref().and_then(|token| remembered(state, token));
        if let Some(caller) = known {
            if state.rate_limits.decides_alone() {
                let allowance = state.rate_limits.check_account(caller.user);
                return Either::Left(ready(admitted(req, state, caller, allowance)));
            }
        }
        let (state, req) = (state.clone(), req.clone());
        Either::Right(Box::pin(async move {
            let caller = match known {
                Some(caller) => caller,
                None => verify_in_database(&state, &req, token).await?,
            };
            let allowance = state
                .rate_limits
                .check_account_everywhere(caller.user)
                .await;
            admitted(&req, &state, caller, allowance)
        }))
    }
}

/// The caller's admission: named for the request log (even when refused), then its
/// allowance recorded for the response's headers, or the refusal counted.
fn admitted(
    req: &HttpRequest,
    state: &AppState,
    caller: Authenticated,
    allowance: Result<Option<rate_limit::Allowance>, ApiError>,
) -> Result<Authenticated, ApiError> {
    req.extensions_mut().insert(caller);
    let allowance = allowance.inspect_err(|_| {
        crate::metrics::Metrics::count(&state.metrics.rate_limited, "account");
    })?;
    if let Some(allowance) = allowance {
        req.extensions_mut().insert(allowance);
    }
    Ok(caller)
}

/// The caller of `token` when the cache remembers it (the lookup is counted, hit or miss);
/// when the key's `last_used_at` is due, its write is started off the request path.
fn remembered(state: &AppState, token: &ApiToken) -> Option<Authenticated> {
    let cached = state.auth_cache.lookup(token, Timestamp::now());
    state
        .metrics
        .cache_lookup(crate::metrics::CacheKind::Auth, cached.is_some());
    let (caller, touch) = cached?;
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
    Some(caller)
}

/// The caller of `token` as the database knows it (then remembered). A missing or unknown
/// token is a 401, counted against the client's failures (which may make it a 429); the token
/// is checked before that count, so a valid token is never refused because someone else at
/// the same address keeps failing.
async fn verify_in_database(
    state: &AppState,
    req: &HttpRequest,
    token: Option<ApiToken>,
) -> Result<Authenticated, ApiError> {
    match looked_up(state, token).await {
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
            Err(answer)
        }
        other => other,
    }
}

/// The key of `token` read from the database, its `last_used_at` written when due, and
/// remembered in the cache.
async fn looked_up(state: &AppState, token: Option<ApiToken>) -> Result<Authenticated, ApiError> {
    let token = token.ok_or(ApiError::Unauthenticated)?;
    let now = Timestamp::now();
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
