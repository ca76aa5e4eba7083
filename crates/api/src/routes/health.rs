//! `/healthz` (the process answers) and `/readyz` (the database answers).

use actix_web::{web, HttpResponse};

use crate::errors::ApiError;
use crate::state::AppState;
use crate::views::{Ready, Status};

/// Always 200 while the process serves.
#[utoipa::path(operation_id = "healthz", get, path = super::paths::HEALTHZ, tag = "operations", security(()),
    responses((status = 200, description = "The process answers", body = Status)))]
pub async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Status { status: "ok" })
}

/// 200 when the database answers, 503 otherwise.
#[utoipa::path(operation_id = "readyz", get, path = super::paths::READYZ, tag = "operations", security(()),
    responses(
        (status = 200, description = "The database answers; `provisioning` names the voice infrastructure trunks get their legs on (`livekit` or `kamailio`; `kamailio (unreachable)` while the edge's RPC does not answer), or `off` (registry only); `cache_coherence` is `live` while other replicas' writes reach this one's caches (PostgreSQL), `degraded` while that feed reconnects (caches rely on their TTL), `local` on SQLite; `rate_limits` is `redis` when shared by every replica, `local` when per process, `local (redis unreachable)` while Redis does not answer", body = Ready),
        (status = 503, description = "The database does not answer", body = crate::views::Message)
    ))]
pub async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let ready = state.ready.clone();
    state.run(move || ready(), ApiError::Unavailable).await?;
    Ok(HttpResponse::Ok().json(Ready {
        status: "ready",
        provisioning: match &state.provisioner {
            Some(provisioner) => provisioner.readiness().await,
            None => "off".to_owned(),
        },
        cache_coherence: state.cache_coherence(),
        rate_limits: state.rate_limits.scope(),
    }))
}
