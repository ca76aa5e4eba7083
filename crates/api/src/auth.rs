//! Bearer authentication as an extractor: `Authenticated` in a handler's arguments means the
//! request carried a live token. Every failure is the same 401.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{web, FromRequest, HttpRequest};
use domain::{ApiKeyId, ApiToken, Timestamp, UserId};

use crate::errors::ApiError;
use crate::state::{blocking, AppState};

/// `last_used_at` is written at most this often per key, so reads stay reads.
pub const TOUCH_INTERVAL: Duration = Duration::from_secs(60);

/// Longest `Authorization` header considered; longer ones are refused without parsing.
const MAX_HEADER_LEN: usize = 512;

/// The caller: the owner every query is scoped by, and the key used.
#[derive(Debug, Clone, Copy)]
pub struct Authenticated {
    /// The user.
    pub user: UserId,
    /// The API key the request used.
    pub key: ApiKeyId,
}

fn bearer_token(req: &HttpRequest) -> Option<ApiToken> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    if value.len() > MAX_HEADER_LEN {
        return None;
    }
    let (scheme, token) = value.split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return None;
    }
    ApiToken::parse(token.trim())
}

fn is_stale(last_used_at: Option<Timestamp>, now: Timestamp) -> bool {
    last_used_at.is_none_or(|last| {
        now.unix_micros() - last.unix_micros() >= TOUCH_INTERVAL.as_micros() as i64
    })
}

impl FromRequest for Authenticated {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let token = bearer_token(req);
        let state = req.app_data::<web::Data<AppState>>().cloned();
        Box::pin(async move {
            let token = token.ok_or(ApiError::Unauthenticated)?;
            let state = state.ok_or(ApiError::Internal)?;
            let key = blocking(move || {
                let key = state.accounts.authenticate(&token)?;
                let now = Timestamp::now();
                if is_stale(key.last_used_at, now) {
                    state.accounts.touch_api_key(key.id, now)?;
                }
                Ok(key)
            })
            .await
            .map_err(|error| ApiError::from_repository(error, ApiError::Unauthenticated))?;
            Ok(Authenticated {
                user: key.owner,
                key: key.id,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn last_used_at_is_written_when_absent_or_older_than_the_interval() {
        let now = Timestamp::from_unix_micros(100_000_000).unwrap();
        assert!(is_stale(None, now));
        assert!(is_stale(
            Timestamp::from_unix_micros(100_000_000 - 60_000_000),
            now
        ));
        assert!(!is_stale(
            Timestamp::from_unix_micros(100_000_000 - 59_000_000),
            now
        ));
    }
}
