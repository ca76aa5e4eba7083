//! The JSON Schemas of the request bodies (trunk create and update, API key create), built
//! from the domain's syntax patterns so that a body valid under the schema is one the service
//! accepts, and the other way round (see [`update_trunk`] for what an update schema cannot know).
//!
//! They are written as JSON rather than derived with utoipa because they need what utoipa's
//! object schemas cannot hold: `anyOf` branches beside `properties` (the cross-field rules),
//! `const` and a `null`/`""` choice per branch.

use domain::syntax;
use serde_json::{json, Value};

/// The `phone_number` of either trunk type.
fn phone_number_of_either_type() -> String {
    format!(
        "^(?:{}|{})$",
        unanchored(syntax::EXTENSION),
        unanchored(syntax::E164)
    )
}

/// A pattern without its `^` and `$`, to be alternated with another.
fn unanchored(pattern: &str) -> &str {
    pattern
        .strip_prefix('^')
        .and_then(|rest| rest.strip_suffix('$'))
        .unwrap_or(pattern)
}

/// The field schemas both bodies share, each stating one parser's rule exactly.
struct Fields {
    nickname: Value,
    sip_username: Value,
    sip_password: Value,
    sip_address: Value,
    allowed_inbound_ips: Value,
    country_code: String,
}

impl Fields {
    fn new() -> Self {
        Self {
            nickname: json!({
                "type": ["string", "null"],
                "description": "At most 50 characters once trimmed, no control characters; `null`, empty or blank means none.",
                "pattern": syntax::nickname(),
            }),
            sip_username: json!({
                "type": "string",
                "description": "No whitespace, control, bidirectional-control or zero-width characters, no `\"` or `\\` (SIP digest authentication cannot carry them reliably).",
                "minLength": 3,
                "maxLength": 128,
                "pattern": syntax::sip_username(),
            }),
            sip_password: json!({
                "type": "string",
                "description": "Never shown again.",
                "writeOnly": true,
                "minLength": 3,
                "maxLength": 128,
                "pattern": syntax::sip_password(),
            }),
            sip_address: json!({
                "type": "string",
                "description": "A host name, an IPv4 or an IPv6 address: no port, scheme, brackets or zone.",
                "maxLength": 253,
                "pattern": syntax::sip_address(),
            }),
            allowed_inbound_ips: json!({
                "type": ["array", "null"],
                "description": "IPv4/IPv6 addresses and CIDR ranges (IPv4 ranges /16 or narrower, IPv6 ranges /32 or narrower), returned in canonical form without duplicates.",
                "maxItems": 100,
                "items": { "type": "string", "pattern": syntax::allowed_ip_entry() },
            }),
            country_code: syntax::country_code(),
        }
    }
}

/// An enumeration, written in place rather than as a `$ref` to its component: the `anyOf`
/// branches narrow these fields with `const`, and tools that merge the branches into the
/// properties (schemathesis among them) cannot merge into a reference.
fn one_of(description: &str, values: &[&str]) -> Value {
    json!({ "type": "string", "description": description, "enum": values })
}

fn trunk_type() -> Value {
    one_of("How `phone_number` is read.", &["extension", "number"])
}

fn calling_format() -> Value {
    one_of(
        "The outbound number format.",
        &["+e164", "e164", "national"],
    )
}

fn authorization_type() -> Value {
    one_of(
        "`auth`: the trunk's username and password; `ip`: the allow-list.",
        &["auth", "ip"],
    )
}

/// `outbound_proxy`: a boolean, or the other forms the original service's boolean rule takes
/// (`1`, `0`, `"1"`, `"0"`), which its clients may send; `null` only where it means "absent".
fn outbound_proxy(nullable: bool) -> Value {
    let mut forms = vec![
        json!(true),
        json!(false),
        json!(0),
        json!(1),
        json!("0"),
        json!("1"),
    ];
    if nullable {
        forms.push(Value::Null);
    }
    json!({
        "description": "`true` or `false`; `1`, `0`, `\"1\"` and `\"0\"` are read as booleans too.",
        "enum": forms,
        "default": false,
    })
}

/// The API key create body: a name of 1 to 255 characters once trimmed.
pub fn create_api_key() -> Value {
    json!({
        "type": "object",
        "description": "`{\"name\": ...}`",
        "required": ["name"],
        "properties": {
            "name": {
                "type": "string",
                "description": "1 to 255 characters once surrounding whitespace is trimmed; no control characters.",
                "pattern": syntax::api_key_name(),
            },
        },
        "example": { "name": "production" },
    })
}

/// A create branch: `sip_trunk_type` is `trunk_type`, the number matches `phone_pattern` and
/// the country is given (`iso`).
fn with_country(title: &str, trunk_type: &str, phone_pattern: &str, iso: &str) -> Value {
    json!({
        "title": title,
        "properties": {
            "sip_trunk_type": { "const": trunk_type },
            "phone_number": { "pattern": phone_pattern },
            "country_code": { "type": "string", "pattern": iso },
        },
        "required": ["country_code"],
    })
}

/// The create body: the field rules, then one `anyOf` per cross-field rule.
pub fn create_trunk() -> Value {
    let fields = Fields::new();
    let iso = fields.country_code.clone();
    json!({
        "type": "object",
        "description": "The create body. `phone_number` is read by `sip_trunk_type`; `country_code` is required for an extension, and for a number may be left out (or `null`, or `\"\"`) when its calling code has a country, which is then derived; `allowed_inbound_ips` is required for `ip` and must be absent, `null` or empty for `auth`.",
        "required": [
            "sip_trunk_type", "phone_number", "sip_username", "sip_password", "sip_address",
            "sip_calling_format", "inbound_authorization_type"
        ],
        "properties": {
            "sip_trunk_type": trunk_type(),
            "phone_number": {
                "type": "string",
                "description": "An extension (1 to 15 letters, digits, `*`, `#`, `.`, `_`, `-`) or an E.164 number, by `sip_trunk_type`.",
                "pattern": phone_number_of_either_type(),
            },
            "nickname": fields.nickname,
            "sip_username": fields.sip_username,
            "sip_password": fields.sip_password,
            "sip_address": fields.sip_address,
            "sip_calling_format": calling_format(),
            "inbound_authorization_type": authorization_type(),
            "allowed_inbound_ips": fields.allowed_inbound_ips,
            "country_code": {
                "type": ["string", "null"],
                "description": "ISO 3166-1 alpha-2, either case; stored upper-case.",
                "pattern": format!("^(?:|{})$", unanchored(&iso)),
            },
            "outbound_proxy": outbound_proxy(true),
        },
        "allOf": [
            { "anyOf": [
                with_country("Extension", "extension", syntax::EXTENSION, &iso),
                with_country("Number with its country", "number", syntax::E164, &iso),
                {
                    "title": "Number, country derived",
                    "properties": {
                        "sip_trunk_type": { "const": "number" },
                        "phone_number": {
                            "minLength": 3,
                            "maxLength": 16,
                            "pattern": syntax::e164_with_derivable_country(),
                        },
                        "country_code": { "enum": [null, ""] },
                    },
                },
            ]},
            authorization_rule(),
        ],
        "example": {
            "sip_trunk_type": "number",
            "phone_number": "+14155551234",
            "nickname": "Main line",
            "sip_username": "acme-main",
            "sip_password": "correct-horse",
            "sip_address": "sip.carrier.example",
            "sip_calling_format": "+e164",
            "inbound_authorization_type": "ip",
            "allowed_inbound_ips": ["203.0.113.0/24"],
            "outbound_proxy": false,
        },
    })
}

/// The create body's rule between the authorization type and the allow-list: `auth` with no
/// list, `ip` with one.
fn authorization_rule() -> Value {
    json!({ "anyOf": [
        {
            "title": "Authorized by credentials",
            "properties": {
                "inbound_authorization_type": { "const": "auth" },
                "allowed_inbound_ips": { "maxItems": 0 },
            },
        },
        {
            "title": "Authorized by allow-list",
            "properties": {
                "inbound_authorization_type": { "const": "ip" },
                "allowed_inbound_ips": { "type": "array", "minItems": 1 },
            },
            "required": ["allowed_inbound_ips"],
        },
    ]})
}

/// The update body (PUT and PATCH): any create field but `sip_trunk_type`, each by its rule.
///
/// `PUT /user/phone-numbers/{id}`: `nickname` only; other fields are ignored, a body without
/// it changes nothing.
pub fn rename_phone_number() -> Value {
    let mut nickname = Fields::new().nickname;
    nickname["description"] = json!(
        "At most 50 characters once trimmed, no control characters; `null`, empty or blank clears it. Left out: nothing changes."
    );
    json!({
        "type": "object",
        "description": "Only `nickname` is read; other fields are ignored.",
        "properties": { "nickname": nickname },
        "example": { "nickname": "Reception" },
    })
}

/// Three rules depend on the stored trunk, which no schema of the request can see: the phone
/// number must keep the trunk's type, switching to `ip` needs a list in the same request, and a
/// list fits only an `ip` trunk. Bodies breaking them are schema-valid and get a 422; the
/// schema is as strict as it can be without refusing a body that some trunk accepts.
pub fn update_trunk() -> Value {
    let fields = Fields::new();
    json!({
        "type": "object",
        "description": "Only the fields sent change; an empty body changes nothing. `phone_number` must be of the trunk's type; switching to `ip` needs `allowed_inbound_ips` in the same request; switching to `auth` clears the list.",
        "properties": {
            "phone_number": {
                "type": "string",
                "description": "An extension or an E.164 number, like the trunk's.",
                "pattern": phone_number_of_either_type(),
            },
            "nickname": fields.nickname,
            "sip_username": fields.sip_username,
            "sip_password": fields.sip_password,
            "sip_address": fields.sip_address,
            "sip_calling_format": calling_format(),
            "inbound_authorization_type": authorization_type(),
            "allowed_inbound_ips": fields.allowed_inbound_ips,
            "country_code": {
                "type": "string",
                "description": "ISO 3166-1 alpha-2, either case; stored upper-case.",
                "pattern": fields.country_code,
            },
            "outbound_proxy": outbound_proxy(false),
        },
        "example": { "nickname": "Support line", "outbound_proxy": true },
    })
}

/// The simulator's body: one branch per direction, each with the fields it needs required;
/// the other direction's fields may be sent (they are checked, then ignored).
pub fn simulate_call() -> Value {
    let optional_text = |max: u32, description: &str| json!({"type": ["string", "null"], "maxLength": max, "description": description});
    let properties = |direction: &str| {
        json!({
            "direction": {"const": direction},
            "source_ip": {
                "type": ["string", "null"],
                "description": "Inbound: the address the INVITE comes from.",
                "pattern": syntax::ip_address(),
            },
            "to": {
                "type": "string", "minLength": 1, "maxLength": 256,
                "description": "The called number: the Request-URI's user part (`+14155550100`, `1000`) or a whole `sip:` URI; outbound, E.164 with `+`.",
            },
            "from": optional_text(256, "Inbound: the caller (not used by the rules)."),
            "username": optional_text(128, "Inbound: the digest username offered."),
            "password": {
                "type": ["string", "null"], "maxLength": 128, "writeOnly": true,
                "description": "Inbound: the password offered; compared in constant time, never stored, logged or shown.",
            },
            "trunk_id": {
                "type": ["integer", "null"], "minimum": 1, "maximum": i64::MAX,
                "description": "Outbound: your trunk.",
            },
        })
    };
    let mut inbound = properties("inbound");
    inbound["source_ip"]["type"] = json!("string");
    let mut outbound = properties("outbound");
    outbound["trunk_id"]["type"] = json!("integer");
    json!({
        "description": "A call to simulate: `inbound` (a carrier's INVITE to one of your numbers) needs `source_ip` and `to`; `outbound` (the platform's call through one of your trunks) needs `trunk_id` and `to`.",
        "oneOf": [
            {"title": "inbound", "type": "object", "required": ["direction", "source_ip", "to"], "properties": inbound},
            {"title": "outbound", "type": "object", "required": ["direction", "trunk_id", "to"], "properties": outbound},
        ]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_create_and_update_schemas_name_every_trunk_field() {
        for (name, schema) in [("create", create_trunk()), ("update", update_trunk())] {
            for field in domain::TrunkField::ALL {
                assert!(
                    schema["properties"].get(field.json_name()).is_some(),
                    "{name}: {field:?}"
                );
            }
        }
    }
}
