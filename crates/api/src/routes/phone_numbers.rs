//! The generic phone-number endpoints existing clients call beside the trunk endpoints
//! (the contract's "Phone numbers"): the caller's SIP trunks listed in phone-number form, and
//! a rename. The delete at `/api/user/phone-numbers/{id}` lives with the trunk handlers.

use actix_web::{web, HttpResponse};
use domain::{Nickname, Patch, RepositoryError, TrunkId, TrunkPage};

use crate::auth::Authenticated;
use crate::body::JsonObject;
use crate::errors::{mime_json, ApiError};
use crate::request;
use crate::routes::LIST_PAGE;
use crate::state::AppState;
use crate::views::{PhoneNumberSaved, PhoneNumberView, SavedPhoneNumber};

/// The phone-number endpoints' own sentence for a nickname over the limit.
const NICKNAME_TOO_LONG: &str = "The nickname must not exceed 50 characters.";

/// `GET /user/phone-numbers/all`: every trunk of the caller as a phone number, by id.
#[utoipa::path(operation_id = "listPhoneNumbers", get, path = super::paths::PHONE_NUMBERS, tag = "phone-numbers",
    responses(
        (status = 200, description = "The caller's SIP trunks as phone numbers of type `sip`, by id ascending", body = crate::views::PhoneNumberList),
        crate::openapi::CommonErrors
    ))]
pub async fn list_all(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let trunks = state.trunks.clone();
    let owner = caller.user;
    let body = state.run(
        move || {
            let mut body = b"{\"data\":[".to_vec();
            let mut page = TrunkPage::first(LIST_PAGE);
            let mut first = true;
            loop {
                let listing = trunks.list_trunks(owner, page)?;
                for row in &listing.unreadable {
                    log::error!(
                        "trunk {} of user {owner} does not read and is left out of its phone numbers: {}",
                        row.id,
                        row.reason
                    );
                }
                for trunk in &listing.trunks {
                    if !first {
                        body.push(b',');
                    }
                    first = false;
                    serde_json::to_writer(&mut body, &PhoneNumberView::of(trunk)).map_err(
                        |error| RepositoryError::Internal(format!("cannot render: {error}")),
                    )?;
                }
                if listing.rows < page.limit {
                    break;
                }
                page = TrunkPage::after(&listing, LIST_PAGE);
            }
            body.extend_from_slice(b"]}");
            Ok(body)
        },
        ApiError::PhoneNumberNotFound,
    )
    .await?;
    Ok(HttpResponse::Ok().content_type(mime_json()).body(body))
}

/// `PUT /user/phone-numbers/{id}`: a new nickname (`null` or blank clears it); other fields
/// are ignored, and a body without `nickname` changes nothing. No call to the voice
/// infrastructure: no leg depends on the nickname.
#[utoipa::path(operation_id = "renamePhoneNumber", put, path = super::paths::PHONE_NUMBER, tag = "phone-numbers",
    params(("id" = i64, Path, minimum = 1, description = "The trunk id")),
    request_body = crate::openapi::RenamePhoneNumberBody,
    responses(
        (status = 200, description = "Renamed (or unchanged)", body = PhoneNumberSaved),
        (status = 404, description = "No such phone number of the caller: `{\"error\":\"Phone number not found.\"}`; a segment that is not an integer: `{\"message\":\"Not found.\"}`", body = crate::openapi::IdNotFound),
        (status = 422, description = "The nickname is too long, not a string, or holds control characters; `message` is the first error's sentence", body = crate::views::ValidationError),
        crate::openapi::BodyErrors,
        crate::openapi::CommonErrors
    ))]
pub async fn rename(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let id = TrunkId::parse(&path).ok_or(ApiError::PhoneNumberNotFound)?;
    let (input, mut errors) = request::nickname_input(&body.0);
    if let Patch::Value(raw) = &input.nickname {
        if raw.trim().chars().count() > Nickname::MAX_CHARS {
            errors.add("nickname", NICKNAME_TOO_LONG);
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::PhoneNumberInvalid(errors));
    }
    let renamed = state
        .trunk_writes()
        .rename(caller.user, id, input)
        .await
        .map_err(|error| ApiError::from_repository(error, ApiError::PhoneNumberNotFound))
        .and_then(|trunk| {
            serde_json::to_vec(&PhoneNumberSaved {
                message: "Phone number updated successfully.",
                data: SavedPhoneNumber::of(&trunk),
            })
            .map_err(|error| {
                ApiError::from_repository(
                    RepositoryError::Internal(format!("cannot render: {error}")),
                    ApiError::PhoneNumberNotFound,
                )
            })
        });
    match renamed {
        Ok(body) => Ok(HttpResponse::Ok().content_type(mime_json()).body(body)),
        Err(ApiError::Invalid(errors)) => Err(ApiError::PhoneNumberInvalid(errors)),
        Err(other) => Err(other),
    }
}
