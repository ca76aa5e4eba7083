//! Kamailio's JSON-RPC over HTTP (the `jsonrpcs` module behind `xhttp`): the reloads after
//! a write of what Kamailio caches. An answer is only a success when it carries a `result`:
//! Kamailio answers a failed command with HTTP 200 and an `error` member (and `kamcmd` exits
//! 0 either way), so the body is always read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

use crate::EdgeSecret;

/// The header that carries the RPC secret (the edge compares its SHA-256).
pub(crate) const SECRET_HEADER: &str = "X-Sip-Trunks-Rpc-Secret";

/// Why a command did not succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RpcFailure {
    /// No answer in time, or no connection: worth asking again.
    Unreachable(String),
    /// Kamailio answered with an error (or something that is not a JSON-RPC answer).
    Refused(String),
}

/// A small client for one Kamailio's RPC URL.
pub(crate) struct RpcClient {
    url: String,
    agent: ureq::Agent,
    next_id: AtomicU64,
    secret: Option<EdgeSecret>,
}

impl RpcClient {
    /// A client for `url` (`http://127.0.0.1:5071/RPC`), each call bounded by `timeout`,
    /// sending `secret` when there is one.
    pub(crate) fn new(url: &str, timeout: Duration, secret: Option<EdgeSecret>) -> Self {
        Self {
            url: url.to_owned(),
            agent: ureq::AgentBuilder::new()
                .timeout(timeout)
                .redirects(0)
                .build(),
            next_id: AtomicU64::new(1),
            secret,
        }
    }

    /// Calls `method` without parameters; gives its `result`.
    pub(crate) fn call(&self, method: &str) -> Result<Value, RpcFailure> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .agent
            .post(&self.url)
            .set("Content-Type", "application/json");
        if let Some(secret) = &self.secret {
            request = request.set(SECRET_HEADER, secret.expose_secret());
        }
        let answer = match request.send_string(&request_body(method, id)) {
            Ok(response) => response,
            Err(ureq::Error::Status(code, _)) => {
                return Err(if code >= 500 {
                    RpcFailure::Unreachable(format!("{method}: HTTP {code}"))
                } else {
                    RpcFailure::Refused(format!("{method}: HTTP {code}"))
                })
            }
            Err(ureq::Error::Transport(error)) => {
                return Err(RpcFailure::Unreachable(format!("{method}: {error}")))
            }
        };
        let body: Value = answer
            .into_json()
            .map_err(|error| RpcFailure::Refused(format!("{method}: not JSON: {error}")))?;
        read_answer(method, body)
    }
}

/// The one form of request the edge accepts (its configuration matches the body whole):
/// `{"jsonrpc":"2.0","method":"<method>","id":<id>}`, no parameters, no batch.
pub(crate) fn request_body(method: &str, id: u64) -> String {
    format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":{id}}}"#)
}

/// The `result` of a JSON-RPC answer, or the failure its `error` (or its absence) says.
pub(crate) fn read_answer(method: &str, mut body: Value) -> Result<Value, RpcFailure> {
    if let Some(error) = body.get("error") {
        let message = error
            .get("message")
            .and_then(Value::as_str)
            .unwrap_or("no message");
        let code = error.get("code").and_then(Value::as_i64).unwrap_or(0);
        return Err(RpcFailure::Refused(format!("{method}: {code} {message}")));
    }
    match body.get_mut("result") {
        Some(result) => Ok(result.take()),
        None => Err(RpcFailure::Refused(format!(
            "{method}: an answer without result or error"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_error_member_is_a_failure_even_though_the_http_status_was_200() {
        let body = serde_json::json!({"jsonrpc":"2.0","error":{"code":500,"message":"Reload failed"},"id":1});
        assert_eq!(
            read_answer("permissions.addressReload", body),
            Err(RpcFailure::Refused(
                "permissions.addressReload: 500 Reload failed".into()
            ))
        );
    }

    #[test]
    fn a_request_is_the_exact_form_the_edge_matches() {
        assert_eq!(
            request_body("permissions.addressReload", 7),
            r#"{"jsonrpc":"2.0","method":"permissions.addressReload","id":7}"#
        );
    }

    #[test]
    fn an_answer_without_result_is_not_taken_for_a_success() {
        use serde_json::json;
        assert!(read_answer("x", json!({"jsonrpc":"2.0","id":1})).is_err());
        assert_eq!(
            read_answer("x", json!({"jsonrpc":"2.0","result":"Reload OK","id":1})),
            Ok(json!("Reload OK"))
        );
    }
}
