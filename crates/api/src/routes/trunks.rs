//! `/api/user/phone-numbers/sip-trunks` and the delete at `/api/user/phone-numbers/{id}`.

use actix_web::web::{self, Bytes};
use actix_web::HttpResponse;
use domain::{
    NewSipTrunk, PasswordWithheld, RepositoryError, SipTrunk, SipTrunkPatch, TrunkId, TrunkListing,
    TrunkPage, UserId, ValidationErrors,
};
use futures_util::StreamExt;

use super::json_ok;
use crate::auth::Authenticated;
use crate::body::JsonObject;
use crate::errors::{mime_json, ApiError};
use crate::read_cache::Read;
use crate::request::{self, TRUNK_FIELDS};
use crate::state::AppState;
use crate::views::{Message, SipTrunkData, SipTrunkSaved, TrunkListItem, TrunkView};
use service::WriteError;

fn trunk_id(raw: &str, not_found: ApiError) -> Result<TrunkId, ApiError> {
    TrunkId::parse(raw).ok_or(not_found)
}

/// Trunks read from the database at a time for a list. A list of fewer is one query (one
/// snapshot); a longer one is read and sent page by page, so an account with thousands of
/// large trunks costs a few pages of memory, not the whole list at once, and holds no
/// database connection while the client reads.
pub const LIST_PAGE: usize = 200;

/// A page of a list, read and rendered.
struct RenderedPage {
    /// The page's items as JSON, comma-separated (with a leading comma unless they are the
    /// list's first).
    json: Vec<u8>,
    /// Whether the page held an item.
    any: bool,
    /// Where the next page starts, when this one was full.
    next: Option<TrunkPage>,
}

/// Reads one page of the owner's trunks and renders it. A page of large trunks is megabytes
/// of JSON, which must not hold up a worker's other requests: only a list's first page is
/// read and rendered off the blocking pool, on the worker when the store reads inline
/// (SQLite: a hop to the blocking pool costs more than the read), on the store's reader
/// thread when it queues reads (PostgreSQL: many reads in one statement, and the rows freed
/// where they were made); the pages after it, which only long lists have, on the blocking
/// pool. Unreadable rows are logged and left out.
async fn read_page(
    state: &AppState,
    owner: UserId,
    page: TrunkPage,
    first_in_list: bool,
) -> Result<RenderedPage, ApiError> {
    let trunks = state.trunks.clone();
    if first_in_list && trunks.queues_reads() {
        // Rendered on the reader thread, where the rows were made: only the bytes cross
        // threads ([`service::queued_then`]).
        return state
            .queued(
                |answer| trunks.queue_list(owner, page, answer),
                move |listing| render_page(owner, page, &listing, first_in_list),
                ApiError::TrunkNotFound,
            )
            .await;
    }
    let read = move || {
        render_page(
            owner,
            page,
            &trunks.list_trunks(owner, page)?,
            first_in_list,
        )
    };
    if first_in_list {
        state.read(read, ApiError::TrunkNotFound).await
    } else {
        // Held until the page is rendered: the rendered bytes then wait on the client
        // (backpressure), the permit does not. The semaphore is never closed.
        let _permit = state
            .long_list_pages
            .acquire()
            .await
            .map_err(|_| ApiError::Internal)?;
        state.run(read, ApiError::TrunkNotFound).await
    }
}

/// The list items of `listing` (the page `page` of `owner`'s trunks), its unreadable rows
/// logged.
fn render_page(
    owner: UserId,
    page: TrunkPage,
    listing: &TrunkListing,
    first_in_list: bool,
) -> Result<RenderedPage, RepositoryError> {
    for row in &listing.unreadable {
        log::error!(
            "trunk {} of user {owner} does not read and is left out of its list: {}",
            row.id,
            row.reason
        );
    }
    let mut json = Vec::with_capacity(listing.trunks.len() * ITEM_BYTES_GUESS);
    append_items(&mut json, &listing.trunks, first_in_list)
        .map_err(|error| RepositoryError::Internal(format!("cannot render a list: {error}")))?;
    Ok(RenderedPage {
        json,
        any: !listing.trunks.is_empty(),
        next: (listing.rows >= page.limit).then(|| TrunkPage::after(listing, LIST_PAGE)),
    })
}

/// About the JSON of a list item with a nickname and no allow-list: a page's buffer is made
/// that large per trunk at once instead of growing by doubling.
const ITEM_BYTES_GUESS: usize = 400;

/// Appends the list items of `trunks` to a `{"data":[` body, with the separating commas.
fn append_items(
    body: &mut Vec<u8>,
    trunks: &[SipTrunk<PasswordWithheld>],
    mut first: bool,
) -> Result<(), serde_json::Error> {
    for trunk in trunks {
        if !first {
            body.push(b',');
        }
        first = false;
        TrunkListItem::of(trunk).write_json(body)?;
    }
    Ok(())
}

const LIST_OPEN: &[u8] = b"{\"data\":[";
const LIST_CLOSE: &[u8] = b"]}";

/// Where a streamed list is.
struct ListStream {
    state: web::Data<AppState>,
    owner: UserId,
    generation: u64,
    /// The page to read next; `None` once the last was sent.
    next: Option<TrunkPage>,
    /// Whether an item was sent (the next one needs a comma).
    sent_any: bool,
    /// The whole answer so far, while it may still fit the read cache.
    copy: Option<Vec<u8>>,
}

impl ListStream {
    /// The next chunk of the answer, or `None` at the end. A database failure after the
    /// first chunk ends the stream with an error, which cuts the connection: the client
    /// sees a broken answer, never a short list that looks whole.
    async fn next_chunk(mut self) -> Option<(Result<Bytes, ApiError>, Self)> {
        let page = self.next?;
        let mut chunk = match read_page(&self.state, self.owner, page, !self.sent_any).await {
            Ok(rendered) => {
                self.sent_any |= rendered.any;
                self.next = rendered.next;
                rendered.json
            }
            Err(error) => {
                self.next = None;
                return Some((Err(error), self));
            }
        };
        if self.next.is_none() {
            chunk.extend_from_slice(LIST_CLOSE);
        }
        self.keep_copy(&chunk);
        Some((Ok(Bytes::from(chunk)), self))
    }

    /// Adds `chunk` to the copy for the read cache (dropped once too large) and stores the
    /// copy when the answer is complete.
    fn keep_copy(&mut self, chunk: &[u8]) {
        let largest = self.state.read_cache.largest_entry();
        if let Some(copy) = &mut self.copy {
            if copy.len() + chunk.len() > largest {
                self.copy = None;
            } else {
                copy.extend_from_slice(chunk);
            }
        }
        if self.next.is_none() {
            if let Some(copy) = self.copy.take() {
                self.state.read_cache.put(
                    self.owner,
                    Read::List,
                    self.generation,
                    Bytes::from(copy),
                );
            }
        }
    }
}

/// `GET /user/phone-numbers/sip-trunks`
#[utoipa::path(operation_id = "listSipTrunks", get, path = super::paths::TRUNKS, tag = "sip-trunks",
    responses(
        (status = 200, description = "The caller's trunks by id", body = crate::views::SipTrunkList),
        crate::openapi::CommonErrors
    ))]
pub async fn list(
    state: web::Data<AppState>,
    caller: Authenticated,
) -> Result<HttpResponse, ApiError> {
    let cached = state.read_cache.get(caller.user, Read::List);
    state
        .metrics
        .cache_lookup(crate::metrics::CacheKind::Read, cached.is_some());
    if let Some(bytes) = cached {
        return Ok(json_ok(bytes));
    }
    let generation = state.read_cache.generation(caller.user);
    let first = read_page(&state, caller.user, TrunkPage::first(LIST_PAGE), true).await?;
    let mut head = Vec::with_capacity(LIST_OPEN.len() + first.json.len() + LIST_CLOSE.len());
    head.extend_from_slice(LIST_OPEN);
    head.extend_from_slice(&first.json);
    let Some(next) = first.next else {
        head.extend_from_slice(LIST_CLOSE);
        let bytes = Bytes::from(head);
        state
            .read_cache
            .put(caller.user, Read::List, generation, bytes.clone());
        return Ok(json_ok(bytes));
    };
    let mut rest = ListStream {
        state: state.clone(),
        owner: caller.user,
        generation,
        next: Some(next),
        sent_any: first.any,
        copy: None,
    };
    if head.len() <= state.read_cache.largest_entry() {
        rest.copy = Some(head.clone());
    }
    let body = futures_util::stream::once(std::future::ready(Ok::<_, ApiError>(Bytes::from(head))))
        .chain(futures_util::stream::unfold(rest, ListStream::next_chunk));
    Ok(HttpResponse::Ok().content_type(mime_json()).streaming(body))
}

/// `GET /user/phone-numbers/sip-trunks/{id}`
#[utoipa::path(operation_id = "getSipTrunk", get, path = super::paths::TRUNK, tag = "sip-trunks", params(("id" = i64, Path, minimum = 1, description = "The trunk id")),
    responses(
        (status = 200, description = "The trunk", body = SipTrunkData),
        (status = 404, description = "No such trunk of the caller; a segment that is not an integer is an unknown route", body = crate::openapi::IdNotFound),
        crate::openapi::CommonErrors
    ))]
pub async fn get(
    state: web::Data<AppState>,
    caller: Authenticated,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = trunk_id(&path, ApiError::TrunkNotFound)?;
    let cached = state.read_cache.get(caller.user, Read::One(id));
    state
        .metrics
        .cache_lookup(crate::metrics::CacheKind::Read, cached.is_some());
    if let Some(bytes) = cached {
        return Ok(json_ok(bytes));
    }
    let generation = state.read_cache.generation(caller.user);
    let trunks = state.trunks.clone();
    let rendered = |trunk: SipTrunk<PasswordWithheld>| {
        SipTrunkData {
            data: TrunkView::of(&trunk),
        }
        .to_json()
        .map(Bytes::from)
        .map_err(|error| RepositoryError::Internal(format!("cannot render a trunk: {error}")))
    };
    let bytes = if trunks.queues_reads() {
        state
            .queued(
                |answer| trunks.queue_get(caller.user, id, answer),
                rendered,
                ApiError::TrunkNotFound,
            )
            .await?
    } else {
        state
            .read(
                move || rendered(trunks.get_trunk(caller.user, id)?),
                ApiError::TrunkNotFound,
            )
            .await?
    };
    state
        .read_cache
        .put(caller.user, Read::One(id), generation, bytes.clone());
    Ok(json_ok(bytes))
}

/// The 422 for a trunk body: type errors first-class, the domain's errors for the rest.
/// The contract's 422 when the infrastructure says another trunk has the number.
fn number_taken() -> ApiError {
    ApiError::Invalid(ValidationErrors::single(
        "phone_number",
        "The phone number is already connected to another SIP trunk.",
    ))
}

fn invalid(
    type_errors: ValidationErrors,
    domain_errors: Option<ValidationErrors>,
) -> ValidationErrors {
    request::merge(&TRUNK_FIELDS, type_errors, domain_errors)
}

/// `POST /user/phone-numbers/sip-trunks`
#[utoipa::path(operation_id = "createSipTrunk", post, path = super::paths::TRUNKS, tag = "sip-trunks",
    request_body = crate::openapi::CreateSipTrunkBody,
    responses(
        (status = 201, description = "Created", body = SipTrunkSaved),
        (status = 403, description = "The account holds MAX_TRUNKS_PER_USER trunks already; nothing was stored", body = crate::views::ErrorBody),
        (status = 409, description = "Same phone number, username and address as another trunk of the caller", body = crate::views::ErrorBody),
        crate::openapi::BodyErrors,
        crate::openapi::CommonErrors,
        (status = 429, description = "Over a rate limit; or, with a voice infrastructure, the account got NUMBER_CONFLICTS_PER_HOUR (default 20) number-taken 422s in the last hour: `{\"message\":\"Too many attempts with numbers connected elsewhere. Try again later.\"}` for every create, taken or not, until the hour's window has room (Retry-After). Nothing is tried or stored.", body = Message),
        (status = 422, description = "Field errors, every failing field at once; with a voice infrastructure (LiveKit or Kamailio), also `phone_number`: \"The phone number is already connected to another SIP trunk.\" when another trunk (of any account) receives calls for the number. Nothing is stored.", body = crate::views::ValidationError),
        (status = 500, description = "The voice infrastructure did not create both legs: `{\"error\":\"Failed to create SIP trunk. Please try again or contact support.\"}`; nothing is stored and no leg is left behind. Also any unexpected failure.", body = crate::views::ErrorBody)
    ))]
pub async fn create(
    state: web::Data<AppState>,
    caller: Authenticated,
    body: JsonObject,
) -> Result<HttpResponse, ApiError> {
    let (input, type_errors) = request::create_input(&body.0);
    let new = match NewSipTrunk::parse(&input) {
        Ok(new) if type_errors.is_empty() => new,
        Ok(_) => return Err(ApiError::Invalid(invalid(type_errors, None))),
        Err(errors) => return Err(ApiError::Invalid(invalid(type_errors, Some(errors)))),
    };
    let max_trunks = state.limits.max_trunks;
    let created = state
        .trunk_writes()
        .create(caller.user, new, max_trunks)
        .await;
    let trunk = created.map_err(|failure| match failure {
        WriteError::Repository(RepositoryError::LimitReached) => {
            ApiError::TrunkLimitReached { limit: max_trunks }
        }
        WriteError::Repository(other) => {
            ApiError::from_repository(other, ApiError::Unauthenticated)
        }
        WriteError::NumberTaken => number_taken(),
        WriteError::NumberConflictsSpent { retry_after } => ApiError::NumberConflictsSpent {
            retry_after_secs: retry_after.as_secs(),
        },
        WriteError::Infrastructure(_) | WriteError::Interrupted(_) => {
            ApiError::CreateProvisioningFailed
        }
    })?;
    Ok(HttpResponse::Created().json(SipTrunkSaved {
        message: "SIP trunk created successfully.",
        data: TrunkView::of(&trunk),
    }))
}

/// The OpenAPI operation of a partial update, written once for its two methods (`PUT` and
/// `PATCH` take the same body and give the same answers).
macro_rules! partial_update_operation {
    ($operation_id:tt, $method:ident, $($handler:tt)*) => {
        #[utoipa::path(operation_id = $operation_id, $method, path = super::paths::TRUNK, tag = "sip-trunks", params(("id" = i64, Path, minimum = 1, description = "The trunk id")),
            request_body = crate::openapi::UpdateSipTrunkBody,
            responses(
                (status = 200, description = "Updated (or unchanged)", body = SipTrunkSaved),
                (status = 404, description = "No such trunk of the caller; a segment that is not an integer is an unknown route", body = crate::openapi::IdNotFound),
                (status = 409, description = "The change collides with another trunk of the caller", body = crate::views::ErrorBody),
                crate::openapi::BodyErrors,
                crate::openapi::CommonErrors,
                (status = 429, description = "Over a rate limit; or, with a voice infrastructure, a body sending `phone_number` when the account got NUMBER_CONFLICTS_PER_HOUR (default 20) number-taken 422s in the last hour: `{\"message\":\"Too many attempts with numbers connected elsewhere. Try again later.\"}` with Retry-After, taken or not. The stored trunk is unchanged.", body = Message),
                (status = 422, description = "Field errors, every failing field at once; with a voice infrastructure (LiveKit or Kamailio), also `phone_number`: \"The phone number is already connected to another SIP trunk.\" when another trunk receives calls for the new number. The stored trunk is unchanged.", body = crate::views::ValidationError),
                (status = 500, description = "The voice infrastructure did not re-create the legs the change needs: `{\"error\":\"Failed to update SIP trunk. Please try again or contact support.\"}`; the stored settings are unchanged (a leg already removed is restored by the reconciler, possibly with a new id). Also any unexpected failure.", body = crate::views::ErrorBody)
            ))]
        $($handler)*
    };
}

partial_update_operation!(
    "updateSipTrunk",
    put,
    /// `PUT /user/phone-numbers/sip-trunks/{id}`: a partial update (only the fields sent change).
    pub async fn update(
        state: web::Data<AppState>,
        caller: Authenticated,
        path: web::Path<String>,
        body: JsonObject,
    ) -> Result<HttpResponse, ApiError> {
        let id = trunk_id(&path, ApiError::TrunkNotFound)?;
        let (input, type_errors) = request::patch_input(&body.0);
        // Checked against the stored trunk, so that every problem is reported at once.
        let parse: service::PatchParser =
            Box::new(
                move |input, current| match SipTrunkPatch::parse_for(input, current) {
                    Ok(patch) if type_errors.is_empty() => Ok(patch),
                    Ok(_) => Err(invalid(type_errors, None)),
                    Err(errors) => Err(invalid(type_errors, Some(errors))),
                },
            );
        let updated = state
            .trunk_writes()
            .update(caller.user, id, input, parse)
            .await;
        let update = updated.map_err(|failure| match failure {
            WriteError::Repository(error) => {
                ApiError::from_repository(error, ApiError::TrunkNotFound)
            }
            WriteError::NumberTaken => number_taken(),
            WriteError::NumberConflictsSpent { retry_after } => ApiError::NumberConflictsSpent {
                retry_after_secs: retry_after.as_secs(),
            },
            WriteError::Infrastructure(_) | WriteError::Interrupted(_) => {
                ApiError::UpdateProvisioningFailed
            }
        })?;
        Ok(HttpResponse::Ok().json(SipTrunkSaved {
            message: "SIP trunk updated successfully.",
            data: TrunkView::of(&update.trunk),
        }))
    }
);

partial_update_operation!(
    "patchSipTrunk",
    patch,
    /// `PATCH /user/phone-numbers/sip-trunks/{id}`: the same partial update as `PUT`.
    pub async fn patch(
        state: web::Data<AppState>,
        caller: Authenticated,
        path: web::Path<String>,
        body: JsonObject,
    ) -> Result<HttpResponse, ApiError> {
        update(state, caller, path, body).await
    }
);

/// The OpenAPI operation of a delete, written once for its two paths (the contract's
/// `/phone-numbers/{id}` and the trunk's own address take the same request and give the
/// same answers).
macro_rules! delete_operation {
    ($operation_id:tt, $path:ident, $($handler:tt)*) => {
        #[utoipa::path(operation_id = $operation_id, delete, path = super::paths::$path, tag = "sip-trunks",
            params(("id" = i64, Path, minimum = 1, description = "The trunk id")),
            responses(
                (status = 200, description = "Deleted", body = Message),
                (status = 404, description = "No such trunk of the caller; a segment that is not an integer is an unknown route", body = crate::openapi::IdNotFound),
                crate::openapi::CommonErrors
            ))]
        $($handler)*
    };
}

delete_operation!(
    "deletePhoneNumber",
    PHONE_NUMBER,
    /// `DELETE /user/phone-numbers/{id}`
    pub async fn delete(
        state: web::Data<AppState>,
        caller: Authenticated,
        path: web::Path<String>,
    ) -> Result<HttpResponse, ApiError> {
        let id = trunk_id(&path, ApiError::PhoneNumberNotFound)?;
        let deleted = state
            .trunk_writes()
            .delete(caller.user, id)
            .await
            .map_err(|error| ApiError::from_repository(error, ApiError::PhoneNumberNotFound));
        deleted?;
        Ok(HttpResponse::Ok().json(Message {
            message: "Phone number deleted successfully.",
        }))
    }
);

delete_operation!(
    "deleteSipTrunk",
    TRUNK,
    /// `DELETE /user/phone-numbers/sip-trunks/{id}` [ours]: the same delete at the trunk's own
    /// address, with the same answers, for clients and tools that expect a resource to be
    /// deleted where it is read (the contract's path is kept for existing clients).
    pub async fn delete_at_trunk_path(
        state: web::Data<AppState>,
        caller: Authenticated,
        path: web::Path<String>,
    ) -> Result<HttpResponse, ApiError> {
        delete(state, caller, path).await
    }
);
