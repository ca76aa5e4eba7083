//! `/api/user/api-keys`: create (the token is shown once), list, revoke.

use actix_web::http::header::{self, CacheControl, CacheDirective};
use actix_web::{web, HttpResponse};
use domain::{ApiKeyId, ApiKeyName, ApiToken, RepositoryError, TokenSecret, ValidationErrors};

use crate::auth::Authenticated;
use crate::body::JsonObject;
use crate::errors::ApiError;
use crate::request;
use crate::state::AppState;
use crate::views::{ApiKeyCreated, ApiKeyItem, ApiKeyList, Message, NewApiKey, Time};

/// `POST /user/api-keys` with `{"name": ...}`
#[utoipa::path(operation_id = "createApiKey", post, path = super::paths::API_KEYS, tag = "api-keys",
    request_body = crate::openapi::CreateApiKeyBody,
    responses(
        (status = 201, description = "Created; the token is shown this once", body = ApiKeyCreated,
            headers(("Cache-Control" = String, description = "no-store"))),
        (status = 403, description = "The account holds MAX_API_KEYS_PER_USER live keys already", body = Message),
        crate::openapi::BodyErrors,
        crate::openapi::CommonErrors
    ))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let (raw, mut errors) = request::api_key_name(&body.0);
    let name = match (raw, errors.is_empty()) {
        (Some(raw), true) => errors.check("name", ApiKeyName::parse(&raw)),
        (None, true) => {
            errors.add("name", "The name field is required.");
            None
        }
        (_, false) => None,
    };
    let name = name.ok_or_else(|| {
        ApiError::Invalid(std::mem::replace(&mut errors, ValidationErrors::new()))
    })?;
    let secret = TokenSecret::generate();
    let hash = secret.hash();
    let max_keys = state.limits.max_api_keys;
    let accounts = state.accounts.clone();
    let key = state
        .blocking(move || accounts.create_api_key(caller.user, &name, &hash, max_keys))
        .await
        .map_err(|error| match error {
            RepositoryError::LimitReached => ApiError::ApiKeyLimitReached { limit: max_keys },
            other => ApiError::from_repository(other, ApiError::Unauthenticated),
        })?;
    let token = ApiToken::new(key.id, secret);
    Ok(HttpResponse::Created()
        .insert_header(CacheControl(vec![CacheDirective::NoStore]))
        .insert_header((header::PRAGMA, "no-cache"))
        .json(ApiKeyCreated {
            message: "API key created successfully.",
            api_key: NewApiKey {
                name: key.name.as_str(),
                token: token.expose_secret(),
                created_at: Time(key.created_at),
            },
        }))
}

/// `GET /user/api-keys`
#[utoipa::path(operation_id = "listApiKeys", get, path = super::paths::API_KEYS, tag = "api-keys",
    responses(
        (status = 200, description = "The caller's keys, never their tokens", body = ApiKeyList),
        crate::openapi::CommonErrors
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let keys = state
        .run(
            {
                let accounts = state.accounts.clone();
                move || accounts.list_api_keys(caller.user)
            },
            ApiError::ApiKeyNotFound,
        )
        .await?;
    Ok(HttpResponse::Ok().json(ApiKeyList {
        api_keys: keys.iter().map(ApiKeyItem::of).collect(),
    }))
}

/// `DELETE /user/api-keys/{id}`: takes effect on the next request.
#[utoipa::path(operation_id = "deleteApiKey", delete, path = super::paths::API_KEY, tag = "api-keys",
    params(("id" = i64, Path, minimum = 1, description = "The key id")),
    responses(
        (status = 200, description = "Revoked: the next request with its token is 401", body = Message),
        (status = 404, description = "No such key of the caller", body = Message),
        crate::openapi::CommonErrors
    ))]
pub async fn revoke(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = ApiKeyId::parse(&path).ok_or(ApiError::ApiKeyNotFound)?;
    let accounts = state.accounts.clone();
    state
        .run(
            move || accounts.revoke_api_key(caller.user, id),
            ApiError::ApiKeyNotFound,
        )
        .await?;
    // Immediate within this process; other instances forget it within AUTH_CACHE_TTL.
    state.auth_cache.revoke(id);
    Ok(HttpResponse::Ok().json(Message {
        message: "API key deleted successfully.",
    }))
}
