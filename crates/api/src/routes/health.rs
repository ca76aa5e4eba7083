//! `/healthz` (the process answers) and `/readyz` (the database answers).

use actix_web::{web, HttpResponse};

use crate::errors::ApiError;
use crate::state::{run, AppState};

/// Always 200 while the process serves.
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// 200 when the database answers, 503 otherwise.
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ready = state.ready.clone();
    run(move || ready(), ApiError::Unavailable).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({ "status": "ready" })))
}
