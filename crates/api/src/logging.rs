//! The log: request ids, and the two formats (`--log-format text|json`).
//!
//! Every request gets an id, the client's `X-Request-Id` when it is sane (1 to 64 of
//! `A-Z a-z 0-9 . _ : -`) or a fresh one (32 hex digits) otherwise, and every response carries
//! it back. The id is the request's for as long as its future runs ([`with_request_id`]) and in
//! the blocking work it hands to the pool ([`service::blocking`]), so every log line of
//! the request carries it, whichever module writes it.
//!
//! `json` writes one object per line: `timestamp`, `level`, `target`, `message`, and
//! `request_id` inside a request; the request's own line adds `method`, `route` (the route's
//! template, never the raw path with ids), `status`, `duration_ms` and `user_id`. Nothing
//! secret is ever a log argument (docs/security.md); the formats add none.

use std::io::Write;
use std::sync::Arc;

use clap::ValueEnum;

/// The log's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum LogFormat {
    /// `[timestamp LEVEL target] message request_id=…`.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

pub use service::context::{current_request_id, in_request, with_request_id, WithRequestId};

/// The client's id when it is sane, else a fresh one.
pub fn request_id(sent: Option<&str>) -> Arc<str> {
    match sent {
        Some(id) if is_sane(id) => Arc::from(id),
        _ => request_id_of(rand::random::<u128>()),
    }
}

/// `bits` in 32 lower-case hex digits, written in place (one allocation, the id's own).
fn request_id_of(bits: u128) -> Arc<str> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut hex = [0u8; 32];
    for (at, digit) in hex.iter_mut().enumerate() {
        *digit = DIGITS[((bits >> (124 - 4 * at)) & 0xf) as usize];
    }
    Arc::from(std::str::from_utf8(&hex).unwrap_or_default())
}

fn is_sane(id: &str) -> bool {
    (1..=64).contains(&id.len())
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
}

/// Installs the logger: `RUST_LOG` (default `info`) in `format`.
pub fn init(format: LogFormat) {
    let mut builder =
        env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"));
    match format {
        LogFormat::Text => builder.format(|out, record| {
            let id = current_request_id();
            write!(
                out,
                "[{} {:<5} {}] {}",
                out.timestamp_micros(),
                record.level(),
                record.target(),
                record.args()
            )?;
            if let Some(id) = id {
                write!(out, " request_id={id}")?;
            }
            writeln!(out)
        }),
        LogFormat::Json => builder.format(|out, record| {
            let mut line = serde_json::Map::new();
            line.insert(
                "timestamp".into(),
                out.timestamp_micros().to_string().into(),
            );
            line.insert("level".into(), record.level().as_str().into());
            line.insert("target".into(), record.target().into());
            line.insert("message".into(), record.args().to_string().into());
            if let Some(id) = current_request_id() {
                line.insert("request_id".into(), id.as_ref().into());
            }
            let mut fields = Fields(&mut line);
            let _ = record.key_values().visit(&mut fields);
            serde_json::to_writer(&mut *out, &line)?;
            writeln!(out)
        }),
    };
    builder.init();
}

/// Copies a record's key-values (the request line's fields) into the JSON object.
struct Fields<'a>(&'a mut serde_json::Map<String, serde_json::Value>);

impl<'kvs> log::kv::VisitSource<'kvs> for Fields<'_> {
    fn visit_pair(
        &mut self,
        key: log::kv::Key<'kvs>,
        value: log::kv::Value<'kvs>,
    ) -> Result<(), log::kv::Error> {
        let json = if let Some(number) = value.to_u64() {
            serde_json::Value::from(number)
        } else if let Some(number) = value.to_f64() {
            serde_json::Value::from(number)
        } else {
            serde_json::Value::from(value.to_string())
        };
        self.0.insert(key.as_str().to_owned(), json);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sane_client_id_is_kept_and_anything_else_replaced_by_a_fresh_one() {
        assert_eq!(&*request_id(Some("abc-123_X.y:z")), "abc-123_X.y:z");
        for insane in [
            "",
            "has space",
            "new\nline",
            &"x".repeat(65),
            "quote\"",
            "é",
        ] {
            let fresh = request_id(Some(insane));
            assert_eq!(fresh.len(), 32, "{insane:?}");
            assert!(fresh.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(request_id(None), request_id(None));
    }

    #[test]
    fn a_fresh_id_is_its_bits_in_32_lower_case_hex_digits() {
        for bits in [
            0,
            1,
            0xabc,
            u128::MAX,
            0x0123_4567_89ab_cdef_fedc_ba98_7654_3210,
            1 << 127,
        ] {
            assert_eq!(&*request_id_of(bits), format!("{bits:032x}"));
        }
    }

    #[test]
    fn the_id_is_the_requests_only_while_its_work_runs() {
        assert_eq!(current_request_id(), None);
        let inside = in_request(Some(Arc::from("r1")), current_request_id);
        assert_eq!(inside.as_deref(), Some("r1"));
        assert_eq!(current_request_id(), None);
    }
}
