//! `JsonObject`: the request body as a JSON object, read with a size limit. Type checking of
//! fields is left to `request`, so that a wrong type is a field error (422), not a 400.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest};
use futures_util::StreamExt;
use serde_json::{Map, Value};

use crate::errors::ApiError;

/// Largest accepted body.
pub const BODY_LIMIT: usize = 64 * 1024;

/// A JSON object body. An empty body reads as `{}`.
#[derive(Debug, Default)]
pub struct JsonObject(pub Map<String, Value>);

fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Checks the headers before anything is read: a body of another type is 415, a declared
/// length over the limit is 413 at once.
fn check_headers(req: &HttpRequest) -> Result<(), ApiError> {
    if let Some(content_type) = req.headers().get(header::CONTENT_TYPE) {
        let content_type = content_type
            .to_str()
            .map_err(|_| ApiError::UnsupportedMediaType)?;
        if !is_json(content_type) {
            return Err(ApiError::UnsupportedMediaType);
        }
    }
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|length| length.to_str().ok())
        .and_then(|length| length.parse::<u64>().ok());
    if declared.is_some_and(|length| length > BODY_LIMIT as u64) {
        return Err(ApiError::PayloadTooLarge);
    }
    Ok(())
}

/// Parses a body: empty is `{}`, anything but an object is refused.
pub fn parse_object(bytes: &[u8]) -> Result<Map<String, Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(Map::new());
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(object)) => Ok(object),
        Ok(_) => Err(ApiError::NotAnObject),
        // serde_json's messages name the problem and its position, never the input.
        Err(error) => Err(ApiError::MalformedJson(error.to_string())),
    }
}

impl FromRequest for JsonObject {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let checked = check_headers(req);
        let mut payload = payload.take();
        Box::pin(async move {
            checked?;
            let mut body = Vec::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk
                    .map_err(|_| ApiError::MalformedJson("the body could not be read".into()))?;
                if body.len() + chunk.len() > BODY_LIMIT {
                    return Err(ApiError::PayloadTooLarge);
                }
                body.extend_from_slice(&chunk);
            }
            parse_object(&body).map(JsonObject)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_content_types_are_recognised() {
        for ok in [
            "application/json",
            "Application/JSON; charset=utf-8",
            "application/merge-patch+json",
        ] {
            assert!(is_json(ok), "{ok}");
        }
        for bad in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
            "",
        ] {
            assert!(!is_json(bad), "{bad}");
        }
    }

    #[test]
    fn an_empty_body_is_an_empty_object_and_non_objects_are_refused() {
        assert!(parse_object(b"").unwrap().is_empty());
        assert!(parse_object(b"  \n").unwrap().is_empty());
        assert!(matches!(parse_object(b"[]"), Err(ApiError::NotAnObject)));
        assert!(matches!(parse_object(b"\"x\""), Err(ApiError::NotAnObject)));
        assert!(matches!(
            parse_object(b"{"),
            Err(ApiError::MalformedJson(_))
        ));
    }
}
