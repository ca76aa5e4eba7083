//! `ApiError`: every failure the API answers with, rendered in the contract's JSON shapes.
//! Causes are logged here (never a secret); responses carry no internals.

use actix_web::http::header::{self, HeaderValue};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use domain::{RepositoryError, ValidationErrors};

use crate::views::{ErrorBody, FieldErrors, Message, ValidationError};

/// Seconds a client is told to wait after a 503.
pub const RETRY_AFTER_SECS: u32 = 5;

/// The contract's sentence once an account's number-taken answers are spent.
pub const NUMBER_CONFLICTS_SPENT: &str =
    "Too many attempts with numbers connected elsewhere. Try again later.";

/// The sentence when a trunk's carrier was probed on demand less than 10 s ago.
pub const PROBE_TOO_SOON: &str =
    "This trunk's carrier was probed less than 10 seconds ago. Try again later.";

/// What went wrong, as the client sees it.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Missing, malformed, unknown or revoked token.
    #[error("unauthenticated")]
    Unauthenticated,
    /// No such trunk for this user.
    #[error("SIP trunk not found")]
    TrunkNotFound,
    /// No such phone number (the delete endpoint's wording).
    #[error("phone number not found")]
    PhoneNumberNotFound,
    /// No such API key for this user.
    #[error("API key not found")]
    ApiKeyNotFound,
    /// No route at this path.
    #[error("route not found")]
    RouteNotFound,
    /// The path exists but not with this method.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// Same phone number + username + address as another trunk of the user.
    #[error("duplicate trunk")]
    TrunkConflict,
    /// The account holds `limit` trunks already (403).
    #[error("trunk limit reached")]
    TrunkLimitReached {
        /// `MAX_TRUNKS_PER_USER`.
        limit: u32,
    },
    /// The account holds `limit` live API keys already (403).
    #[error("API key limit reached")]
    ApiKeyLimitReached {
        /// `MAX_API_KEYS_PER_USER`.
        limit: u32,
    },
    /// Field errors (422).
    #[error("{0}")]
    Invalid(ValidationErrors),
    /// Field errors of the phone-number endpoints (422): `message` is the first error's
    /// sentence there, as in the original.
    #[error("{0}")]
    PhoneNumberInvalid(ValidationErrors),
    /// The body is not JSON (400); the text says where it broke.
    #[error("malformed JSON: {0}")]
    MalformedJson(String),
    /// The body is JSON but not an object (400).
    #[error("the body is not a JSON object")]
    NotAnObject,
    /// A body with a content type other than JSON (415).
    #[error("unsupported content type")]
    UnsupportedMediaType,
    /// A body over the limit (413).
    #[error("payload too large")]
    PayloadTooLarge,
    /// Over a rate limit (429).
    #[error("too many requests")]
    TooManyRequests {
        /// Seconds until a request may succeed.
        retry_after_secs: u64,
        /// The per-key limit (0 for the failed-authentication limit, whose size is not told).
        limit: u32,
    },
    /// The account got its budget of number-taken answers this hour (429).
    #[error("number-taken answers spent")]
    NumberConflictsSpent {
        /// Seconds until the hour's window has room again.
        retry_after_secs: u64,
    },
    /// The trunk's carrier was probed on demand less than 10 s ago (429).
    #[error("probed too recently")]
    ProbeTooSoon {
        /// Seconds until the next probe may run.
        retry_after_secs: u64,
    },
    /// The voice infrastructure did not create the trunk's legs; nothing was stored (500).
    #[error("provisioning a new trunk failed")]
    CreateProvisioningFailed,
    /// The voice infrastructure did not re-create the legs; the trunk is as before (500).
    #[error("provisioning an update failed")]
    UpdateProvisioningFailed,
    /// The storage is unreachable (503).
    #[error("storage unavailable")]
    Unavailable,
    /// Anything else (500); the cause was logged.
    #[error("internal error")]
    Internal,
}

impl ApiError {
    /// The error for a repository failure, logging what the client will not see.
    pub fn from_repository(error: RepositoryError, not_found: ApiError) -> Self {
        match error {
            RepositoryError::NotFound => not_found,
            RepositoryError::Conflict => Self::TrunkConflict,
            RepositoryError::Rejected(errors) => Self::Invalid(errors),
            RepositoryError::LimitReached => {
                log::error!("an account limit was reported where none applies");
                Self::Internal
            }
            RepositoryError::Unavailable(reason) => {
                log::warn!("storage unavailable: {reason}");
                Self::Unavailable
            }
            RepositoryError::Corrupt(reason) => {
                log::error!("corrupt stored data: {reason}");
                Self::Internal
            }
            RepositoryError::LeaseLost => {
                log::error!("a provisioning lease was lost where none is held");
                Self::Internal
            }
            RepositoryError::Internal(reason) => {
                log::error!("storage failure: {reason}");
                Self::Internal
            }
        }
    }
}

/// The 422 body: `message` is "The given data was invalid.", or the first error's sentence
/// when `first_as_message` (the phone-number endpoints).
fn invalid(errors: &ValidationErrors, first_as_message: bool) -> ValidationError<'_> {
    let first = errors
        .fields()
        .next()
        .and_then(|(_, messages)| messages.first())
        .map(String::as_str);
    let message = match (first_as_message, first) {
        (true, Some(first)) => first,
        _ => "The given data was invalid.",
    };
    ValidationError {
        message,
        errors: FieldErrors(errors),
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::TrunkNotFound
            | Self::PhoneNumberNotFound
            | Self::ApiKeyNotFound
            | Self::RouteNotFound => StatusCode::NOT_FOUND,
            Self::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            Self::TrunkConflict => StatusCode::CONFLICT,
            Self::TrunkLimitReached { .. } | Self::ApiKeyLimitReached { .. } => {
                StatusCode::FORBIDDEN
            }
            Self::Invalid(_) | Self::PhoneNumberInvalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            Self::MalformedJson(_) | Self::NotAnObject => StatusCode::BAD_REQUEST,
            Self::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            Self::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            Self::TooManyRequests { .. }
            | Self::NumberConflictsSpent { .. }
            | Self::ProbeTooSoon { .. } => StatusCode::TOO_MANY_REQUESTS,
            Self::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal | Self::CreateProvisioningFailed | Self::UpdateProvisioningFailed => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status_code());
        let message = |text: &str| serde_json::to_vec(&Message { message: text });
        let error = |text: &str| serde_json::to_vec(&ErrorBody { error: text });
        let body = match self {
            Self::Unauthenticated => message("Unauthenticated."),
            Self::TrunkNotFound => error("SIP trunk not found."),
            Self::PhoneNumberNotFound => error("Phone number not found."),
            Self::ApiKeyNotFound => message("API key not found."),
            Self::RouteNotFound => message("Not found."),
            Self::MethodNotAllowed => message("Method not allowed."),
            Self::TrunkConflict => error(
                "A SIP trunk with the same phone number, username, and address already exists.",
            ),
            Self::TrunkLimitReached { limit } => error(&format!(
                "SIP trunk limit reached: at most {limit} per account."
            )),
            Self::ApiKeyLimitReached { limit } => message(&format!(
                "API key limit reached: at most {limit} per account."
            )),
            Self::Invalid(errors) => serde_json::to_vec(&invalid(errors, false)),
            Self::PhoneNumberInvalid(errors) => serde_json::to_vec(&invalid(errors, true)),
            Self::MalformedJson(detail) => message(&format!("Malformed JSON: {detail}.")),
            Self::NotAnObject => message("The request body must be a JSON object."),
            Self::UnsupportedMediaType => {
                message("The request body must be sent as application/json.")
            }
            Self::PayloadTooLarge => message("The request body may not be larger than 64 KiB."),
            Self::TooManyRequests {
                retry_after_secs,
                limit,
            } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
                if *limit > 0 {
                    response.insert_header(("X-RateLimit-Limit", HeaderValue::from(*limit)));
                    response.insert_header(("X-RateLimit-Remaining", HeaderValue::from(0u32)));
                }
                message("Too Many Attempts.")
            }
            Self::NumberConflictsSpent { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
                message(NUMBER_CONFLICTS_SPENT)
            }
            Self::ProbeTooSoon { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(*retry_after_secs)));
                message(PROBE_TOO_SOON)
            }
            Self::Unavailable => {
                response.insert_header((header::RETRY_AFTER, HeaderValue::from(RETRY_AFTER_SECS)));
                message("Service temporarily unavailable.")
            }
            Self::CreateProvisioningFailed => {
                error("Failed to create SIP trunk. Please try again or contact support.")
            }
            Self::UpdateProvisioningFailed => {
                error("Failed to update SIP trunk. Please try again or contact support.")
            }
            Self::Internal => error("Internal server error."),
        };
        response
            .content_type(mime_json())
            .body(body.unwrap_or_default())
    }
}

/// `application/json`
pub fn mime_json() -> HeaderValue {
    HeaderValue::from_static("application/json")
}
