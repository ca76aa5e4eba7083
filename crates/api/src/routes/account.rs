//! `/api/user/me`: the caller's account. Existing clients call it to check a key.

use actix_web::{web, HttpResponse};

use crate::auth::Authenticated;
use crate::errors::ApiError;
use crate::state::AppState;
use crate::views::AccountView;

/// `GET /user/me`
#[utoipa::path(operation_id = "getAccount", get, path = super::paths::ACCOUNT, tag = "account",
    responses(
        (status = 200, description = "The caller's account, unwrapped", body = AccountView),
        crate::openapi::CommonErrors
    ))]
pub async fn me(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let accounts = state.accounts.clone();
    // A key outlives no user (users are never deleted), so a missing user is a key that
    // authenticates nobody: 401, as for any token that opens nothing.
    let user = state
        .run(
            move || accounts.find_user(caller.user),
            ApiError::Unauthenticated,
        )
        .await?;
    Ok(HttpResponse::Ok().json(AccountView::of(&user)))
}
