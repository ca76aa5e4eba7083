//! The two hot trunk bodies, a list item and `{"data": trunk}`, written straight into the
//! response's bytes. Through serde_json every key is escaped again on every item, and every
//! timestamp and address goes through an escaping adapter of the formatting machinery: a
//! tenth of a cache-off list's CPU (docs/performance.md, issue 25). Here a key is a literal,
//! and a value is copied as it is once a scan shows it needs no escaping; a value that does
//! is handed to serde_json itself, so the bytes are serde's in every case. The views'
//! derived `Serialize` stays the definition (and the OpenAPI document's): the tests here
//! compare both writings over generated views.

use std::fmt::Display;
use std::io::Write;

use super::{ShownIps, SipTrunkData, Time, TrunkListItem, TrunkView};

/// Whether JSON carries `byte` in a string as it is (serde_json escapes the rest: control
/// characters, `"` and `\`).
fn needs_no_escape(byte: u8) -> bool {
    byte >= 0x20 && byte != b'"' && byte != b'\\'
}

/// `value` as a JSON string.
fn string(out: &mut Vec<u8>, value: &str) -> Result<(), serde_json::Error> {
    if value.bytes().all(needs_no_escape) {
        out.reserve(value.len() + 2);
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
        Ok(())
    } else {
        serde_json::to_writer(&mut *out, value)
    }
}

/// `value` as a JSON string, or `null`.
fn optional_string(out: &mut Vec<u8>, value: Option<&str>) -> Result<(), serde_json::Error> {
    match value {
        Some(value) => string(out, value),
        None => {
            out.extend_from_slice(b"null");
            Ok(())
        }
    }
}

/// `value`'s text as a JSON string, written in place and escaped only if it must be.
fn shown(out: &mut Vec<u8>, value: impl Display) -> Result<(), serde_json::Error> {
    let start = out.len();
    out.push(b'"');
    write!(out, "{value}").map_err(serde_json::Error::io)?;
    if out[start + 1..].iter().copied().all(needs_no_escape) {
        out.push(b'"');
        Ok(())
    } else {
        out.truncate(start);
        serde_json::to_writer(&mut *out, &format_args!("{value}"))
    }
}

/// An allow-list as a JSON array, or `null`.
fn allow_list(out: &mut Vec<u8>, ips: Option<&ShownIps<'_>>) -> Result<(), serde_json::Error> {
    let Some(ShownIps(ips)) = ips else {
        out.extend_from_slice(b"null");
        return Ok(());
    };
    out.push(b'[');
    for (index, entry) in ips.shown().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        shown(out, entry)?;
    }
    out.push(b']');
    Ok(())
}

/// `key` (a literal: `,"name":`) and `value` as a JSON string.
fn string_field(out: &mut Vec<u8>, key: &[u8], value: &str) -> Result<(), serde_json::Error> {
    out.extend_from_slice(key);
    string(out, value)
}

/// `key` (a literal: `,"name":`) and `value` as a JSON string, or `null`.
fn optional_field(
    out: &mut Vec<u8>,
    key: &[u8],
    value: Option<&str>,
) -> Result<(), serde_json::Error> {
    out.extend_from_slice(key);
    optional_string(out, value)
}

/// Writes the keys and values a list item and a full trunk share, from `{` to
/// `country_code`, of `$trunk`: either view, whose fields have the same names. A field added
/// to a view and not written makes its test fail (the bytes then differ from serde's).
macro_rules! write_head {
    ($out:expr, $trunk:expr) => {{
        let (out, trunk): (&mut Vec<u8>, _) = (&mut *$out, $trunk);
        out.extend_from_slice(b"{\"id\":");
        write!(out, "{}", trunk.id).map_err(serde_json::Error::io)?;
        string_field(out, b",\"phone_number\":", trunk.phone_number)?;
        optional_field(out, b",\"nickname\":", trunk.nickname)?;
        string_field(out, b",\"sip_username\":", trunk.sip_username)?;
        string_field(out, b",\"sip_address\":", trunk.sip_address)?;
        string_field(out, b",\"sip_calling_format\":", trunk.sip_calling_format)?;
        string_field(
            out,
            b",\"inbound_authorization_type\":",
            trunk.inbound_authorization_type,
        )?;
        out.extend_from_slice(b",\"allowed_inbound_ips\":");
        allow_list(out, trunk.allowed_inbound_ips.as_ref())?;
        out.extend_from_slice(if trunk.outbound_proxy {
            b",\"outbound_proxy\":true"
        } else {
            b",\"outbound_proxy\":false"
        });
        string_field(out, b",\"country_code\":", trunk.country_code)?;
    }};
}

/// The two timestamps and the closing `}`.
fn times(out: &mut Vec<u8>, created_at: &Time, updated_at: &Time) -> Result<(), serde_json::Error> {
    out.extend_from_slice(b",\"created_at\":");
    shown(out, created_at.0)?;
    out.extend_from_slice(b",\"updated_at\":");
    shown(out, updated_at.0)?;
    out.push(b'}');
    Ok(())
}

impl TrunkListItem<'_> {
    /// Appends this item's JSON to `out`: the bytes `serde_json::to_writer` would write.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        write_head!(out, self);
        times(out, &self.created_at, &self.updated_at)
    }
}

impl TrunkView<'_> {
    /// Appends this trunk's JSON to `out`: the bytes `serde_json::to_writer` would write.
    pub(crate) fn write_json(&self, out: &mut Vec<u8>) -> Result<(), serde_json::Error> {
        write_head!(out, self);
        optional_field(out, b",\"inbound_trunk_id\":", self.inbound_trunk_id)?;
        optional_field(out, b",\"outbound_trunk_id\":", self.outbound_trunk_id)?;
        times(out, &self.created_at, &self.updated_at)
    }
}

impl SipTrunkData<'_> {
    /// This body's JSON: the bytes `serde_json::to_vec` would make.
    pub(crate) fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        let mut out = Vec::with_capacity(512);
        out.extend_from_slice(b"{\"data\":");
        self.data.write_json(&mut out)?;
        out.push(b'}');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use domain::{AllowedIps, Timestamp};
    use proptest::prelude::*;

    use super::*;

    /// Any text at all: control characters, quotes, backslashes, any Unicode.
    fn any_text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,40}",
            "[\\x00-\\x7f]{0,40}",
            Just(String::new()),
            Just("\"\\\u{7f}\u{1f}\u{2028}é😀".to_string()),
        ]
    }

    /// Instants from year 0 to far past 9999 (Timestamp's general path), micros and all.
    fn any_time() -> impl Strategy<Value = Timestamp> {
        (-62_167_219_200_000_000i64..=8_210_298_412_799_999_999i64)
            .prop_filter_map("an instant chrono can hold", Timestamp::from_unix_micros)
    }

    fn any_allow_list() -> impl Strategy<Value = Option<AllowedIps>> {
        prop_oneof![
            Just(None),
            Just(Some(
                AllowedIps::from_stored(&[
                    "203.0.113.10",
                    "198.51.100.0/24",
                    "2001:db8::/48",
                    "2001:db8::1"
                ])
                .expect("an allow-list that parses")
            )),
            Just(Some(
                AllowedIps::from_stored(&["10.0.0.0/8"]).expect("a one-entry allow-list")
            )),
        ]
    }

    #[derive(Debug, Clone)]
    struct Generated {
        id: i64,
        texts: [String; 4],
        nickname: Option<String>,
        legs: [Option<String>; 2],
        ips: Option<AllowedIps>,
        proxy: bool,
        times: [Timestamp; 2],
    }

    fn any_view() -> impl Strategy<Value = Generated> {
        (
            any::<i64>(),
            [any_text(), any_text(), any_text(), any_text()],
            proptest::option::of(any_text()),
            [
                proptest::option::of(any_text()),
                proptest::option::of(any_text()),
            ],
            any_allow_list(),
            any::<bool>(),
            [any_time(), any_time()],
        )
            .prop_map(|(id, texts, nickname, legs, ips, proxy, times)| Generated {
                id,
                texts,
                nickname,
                legs,
                ips,
                proxy,
                times,
            })
    }

    fn list_item(generated: &Generated) -> TrunkListItem<'_> {
        let [phone_number, sip_username, sip_address, country_code] = &generated.texts;
        TrunkListItem {
            id: generated.id,
            phone_number,
            nickname: generated.nickname.as_deref(),
            sip_username,
            sip_address,
            sip_calling_format: "+e164",
            inbound_authorization_type: if generated.ips.is_some() {
                "ip"
            } else {
                "auth"
            },
            allowed_inbound_ips: generated.ips.as_ref().map(ShownIps),
            outbound_proxy: generated.proxy,
            country_code,
            created_at: Time(generated.times[0]),
            updated_at: Time(generated.times[1]),
        }
    }

    fn view(generated: &Generated) -> TrunkView<'_> {
        let item = list_item(generated);
        TrunkView {
            id: item.id,
            phone_number: item.phone_number,
            nickname: item.nickname,
            sip_username: item.sip_username,
            sip_address: item.sip_address,
            sip_calling_format: item.sip_calling_format,
            inbound_authorization_type: item.inbound_authorization_type,
            allowed_inbound_ips: item.allowed_inbound_ips,
            outbound_proxy: item.outbound_proxy,
            country_code: item.country_code,
            inbound_trunk_id: generated.legs[0].as_deref(),
            outbound_trunk_id: generated.legs[1].as_deref(),
            created_at: item.created_at,
            updated_at: item.updated_at,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn a_list_item_written_by_hand_is_byte_for_byte_what_serde_writes(generated in any_view()) {
            let item = list_item(&generated);
            let mut by_hand = b"[".to_vec();
            item.write_json(&mut by_hand).expect("writes");
            let mut by_serde = b"[".to_vec();
            serde_json::to_writer(&mut by_serde, &item).expect("serializes");
            prop_assert_eq!(String::from_utf8_lossy(&by_hand), String::from_utf8_lossy(&by_serde));
        }

        #[test]
        fn a_trunk_body_written_by_hand_is_byte_for_byte_what_serde_writes(generated in any_view()) {
            let body = SipTrunkData { data: view(&generated) };
            let by_hand = body.to_json().expect("writes");
            let by_serde = serde_json::to_vec(&body).expect("serializes");
            prop_assert_eq!(String::from_utf8_lossy(&by_hand), String::from_utf8_lossy(&by_serde));
        }
    }
}
