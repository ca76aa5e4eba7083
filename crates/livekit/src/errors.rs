//! What a failed LiveKit call means for the registry: worth another attempt, or final, and
//! which of the port's errors it is. `livekit-api` keeps the Twirp error code of an answer
//! but not its HTTP status, and an error answer that is not Twirp JSON (LiveKit's plain-text
//! 401 for a bad signature, a proxy's error page) reaches us as a body that did not decode.

use domain::ProvisionError;
use livekit_api::services::{ServerError, ServiceError};

/// A classified failure.
#[derive(Debug)]
pub(crate) enum Failure {
    /// Worth another attempt (no answer, timeout, 429, 5xx).
    Retry(String),
    /// The inbound number is another trunk's.
    NumberTaken,
    /// The trunk does not exist (a delete counts it done).
    NotFound,
    /// Final.
    Final(ProvisionError),
}

impl Failure {
    /// The port's error once no attempt is left.
    pub(crate) fn into_error(self) -> ProvisionError {
        match self {
            Self::Retry(reason) => ProvisionError::Unavailable(reason),
            Self::NumberTaken => ProvisionError::NumberTaken,
            Self::NotFound => ProvisionError::Refused("LiveKit does not know this trunk".into()),
            Self::Final(error) => error,
        }
    }
}

/// Most characters of a text LiveKit (or whatever answers at its URL) wrote that reach an
/// error, and so the log.
const LIVEKIT_TEXT_LEN: usize = 200;

/// `text` fit for one log line: at most `max` characters (then `…`), control characters
/// (line breaks, terminal escapes) as `?`.
pub(crate) fn bounded(text: &str, max: usize) -> String {
    let mut out: String = text
        .chars()
        .take(max)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect();
    if text.chars().nth(max).is_some() {
        out.push('…');
    }
    out
}

/// LiveKit's message when an inbound trunk's number is another's.
const CONFLICTING_INBOUND: &str = "Conflicting inbound SIP Trunks";

pub(crate) fn classify(error: ServiceError) -> Failure {
    match error {
        ServiceError::Twirp(ServerError::Twirp(twirp)) => {
            let detail = format!(
                "{}: {}",
                bounded(&twirp.code, 32),
                bounded(&twirp.msg, LIVEKIT_TEXT_LEN)
            );
            match twirp.code.as_str() {
                "invalid_argument" if twirp.msg.contains(CONFLICTING_INBOUND) => {
                    Failure::NumberTaken
                }
                "not_found" => Failure::NotFound,
                "unauthenticated" | "permission_denied" => {
                    Failure::Final(ProvisionError::Unauthorized(detail))
                }
                "resource_exhausted" | "unavailable" | "internal" | "unknown"
                | "deadline_exceeded" | "aborted" | "canceled" | "dataloss" => {
                    Failure::Retry(detail)
                }
                _ => Failure::Final(ProvisionError::Refused(detail)),
            }
        }
        ServiceError::Twirp(ServerError::Request(error)) if error.is_decode() => {
            Failure::Final(ProvisionError::Unauthorized(
                "LiveKit answered with an error that is not a Twirp error: a plain-text 401 (wrong API key or secret) or a proxy's error page".into(),
            ))
        }
        ServiceError::Twirp(ServerError::Request(error)) => {
            let kind = if error.is_timeout() {
                "timed out"
            } else if error.is_connect() {
                "could not connect"
            } else {
                "no answer"
            };
            // The reqwest message names the URL, never a header (so never the token).
            Failure::Retry(format!("{kind}: {error}"))
        }
        ServiceError::Twirp(ServerError::Prost(error)) => Failure::Final(ProvisionError::Refused(
            format!(
                "LiveKit's answer did not decode: {}",
                bounded(&error.to_string(), LIVEKIT_TEXT_LEN)
            ),
        )),
        ServiceError::Twirp(ServerError::Url(error)) => {
            Failure::Final(ProvisionError::Refused(format!("LIVEKIT_URL: {error}")))
        }
        ServiceError::AccessToken(error) => Failure::Final(ProvisionError::Refused(format!(
            "cannot sign a LiveKit token: {error}"
        ))),
        ServiceError::Env(error) => Failure::Final(ProvisionError::Refused(error.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounded_text_is_cut_with_an_ellipsis_and_loses_its_control_characters() {
        assert_eq!(bounded("short", 10), "short");
        assert_eq!(bounded("0123456789abc", 10), "0123456789…");
        assert_eq!(bounded("a\nb\u{1b}c\td", 10), "a?b?c?d");
    }
}
