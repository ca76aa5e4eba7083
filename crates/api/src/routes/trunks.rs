//! `/api/user/phone-numbers/sip-trunks` and the delete at `/api/user/phone-numbers/{id}`.

use actix_web::{web, HttpResponse};
use domain::{NewSipTrunk, SipTrunkPatch, TrunkId};

use crate::auth::Authenticated;
use crate::body::JsonObject;
use crate::errors::ApiError;
use crate::request::{self, TRUNK_FIELDS};
use crate::state::{run, AppState};
use crate::views::{Data, Message, MessageData, TrunkListItem, TrunkView};

fn trunk_id(raw: &str, not_found: ApiError) -> Result<TrunkId, ApiError> {
    TrunkId::parse(raw).ok_or(not_found)
}

/// `GET /user/phone-numbers/sip-trunks`
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let trunks = run(
        move || state.trunks.list_trunks(caller.user),
        ApiError::TrunkNotFound,
    )
    .await?;
    let items: Vec<TrunkListItem> = trunks.iter().map(TrunkListItem::of).collect();
    Ok(HttpResponse::Ok().json(Data { data: items }))
}

/// `GET /user/phone-numbers/sip-trunks/{id}`
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = trunk_id(&path, ApiError::TrunkNotFound)?;
    let trunk = run(
        move || state.trunks.get_trunk(caller.user, id),
        ApiError::TrunkNotFound,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Data {
        data: TrunkView::of(&trunk),
    }))
}

/// `POST /user/phone-numbers/sip-trunks`
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let (input, type_errors) = request::create_input(&body.0);
    let parsed = NewSipTrunk::parse(&input);
    let new = match parsed {
        Ok(new) if type_errors.is_empty() => new,
        Ok(_) => {
            return Err(ApiError::Invalid(request::merge(
                &TRUNK_FIELDS,
                type_errors,
                None,
            )))
        }
        Err(errors) => {
            return Err(ApiError::Invalid(request::merge(
                &TRUNK_FIELDS,
                type_errors,
                Some(errors),
            )))
        }
    };
    let trunk = run(
        move || state.trunks.create_trunk(caller.user, &new),
        ApiError::Unauthenticated,
    )
    .await?;
    Ok(HttpResponse::Created().json(MessageData {
        message: "SIP trunk created successfully.",
        data: TrunkView::of(&trunk),
    }))
}

/// `PUT` and `PATCH /user/phone-numbers/sip-trunks/{id}`: a partial update.
pub async fn update(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let id = trunk_id(&path, ApiError::TrunkNotFound)?;
    let (input, type_errors) = request::patch_input(&body.0);
    let update = run(
        move || {
            // Checked against the stored trunk so that every problem is reported at once;
            // the store checks the rules again inside its transaction.
            let current = state.trunks.get_trunk(caller.user, id)?;
            let patch = match SipTrunkPatch::parse_for(&input, &current) {
                Ok(patch) if type_errors.is_empty() => patch,
                Ok(_) => {
                    return Err(domain::RepositoryError::Rejected(request::merge(
                        &TRUNK_FIELDS,
                        type_errors,
                        None,
                    )))
                }
                Err(errors) => {
                    return Err(domain::RepositoryError::Rejected(request::merge(
                        &TRUNK_FIELDS,
                        type_errors,
                        Some(errors),
                    )))
                }
            };
            state.trunks.update_trunk(caller.user, id, &patch)
        },
        ApiError::TrunkNotFound,
    )
    .await?;
    Ok(HttpResponse::Ok().json(MessageData {
        message: "SIP trunk updated successfully.",
        data: TrunkView::of(&update.trunk),
    }))
}

/// `DELETE /user/phone-numbers/{id}`
pub async fn delete(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = trunk_id(&path, ApiError::PhoneNumberNotFound)?;
    run(
        move || state.trunks.delete_trunk(caller.user, id),
        ApiError::PhoneNumberNotFound,
    )
    .await?;
    Ok(HttpResponse::Ok().json(Message {
        message: "Phone number deleted successfully.",
    }))
}
