//! `GET /api/user/phone-numbers/sip-trunks/{id}/status` and `POST …/status/probe`: why a
//! trunk may not take calls (docs/diagnostics.md). Never cached: the answer is about now.

use actix_web::{web, HttpResponse};
use domain::Timestamp;
use service::ProbeError;

use crate::auth::Authenticated;
use crate::diagnostics_views::TrunkStatusData;
use crate::errors::ApiError;
use crate::state::AppState;

fn answer(status: &service::TrunkStatus) -> Result<HttpResponse, ApiError> {
    super::ok_json(&TrunkStatusData::of(status))
}

/// `GET …/{id}/status`: the trunk's legs and its carrier's health.
#[utoipa::path(operation_id = "getSipTrunkStatus", get, path = super::paths::TRUNK_STATUS, tag = "sip-trunks", params(("id" = i64, Path, minimum = 1, description = "The trunk id")),
    responses(
        (status = 200, description = "Where the trunk's legs stand with the voice infrastructure, and whether its carrier answers SIP", body = TrunkStatusData),
        (status = 404, description = "No such trunk of the caller", body = crate::openapi::IdNotFound),
        crate::openapi::CommonErrors
    ))]
pub async fn status(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = domain::TrunkId::parse(&path).ok_or(ApiError::TrunkNotFound)?;
    let status = state
        .diagnostics()
        .status(caller.user, id)
        .await
        .map_err(|error| ApiError::from_repository(error, ApiError::TrunkNotFound))?;
    answer(&status)
}

/// `POST …/{id}/status/probe`: probes the trunk's carrier now (one SIP OPTIONS, up to 5 s),
/// then answers the status; at most once per trunk every 10 s.
#[utoipa::path(operation_id = "probeSipTrunkCarrier", post, path = super::paths::TRUNK_STATUS_PROBE, tag = "sip-trunks", params(("id" = i64, Path, minimum = 1, description = "The trunk id")),
    responses(
        (status = 200, description = "The status after one probe of the carrier", body = TrunkStatusData),
        (status = 404, description = "No such trunk of the caller", body = crate::openapi::IdNotFound),
        (status = 429, description = "The trunk's carrier was probed on demand less than 10 seconds ago; `Retry-After` says when to ask again", body = crate::views::Message),
        crate::openapi::CommonErrors
    ))]
pub async fn probe(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = domain::TrunkId::parse(&path).ok_or(ApiError::TrunkNotFound)?;
    match state.diagnostics().probe(caller.user, id).await {
        Ok(status) => answer(&status),
        Err(ProbeError::TooSoon { retry_at }) => {
            let micros = retry_at.unix_micros() - Timestamp::now().unix_micros();
            // Rounded up, at least 1: a client that waits as told is not refused again.
            let retry_after_secs = u64::try_from(micros.max(1))
                .unwrap_or(1)
                .div_ceil(1_000_000);
            Err(ApiError::ProbeTooSoon { retry_after_secs })
        }
        Err(ProbeError::Repository(error)) => {
            Err(ApiError::from_repository(error, ApiError::TrunkNotFound))
        }
    }
}
