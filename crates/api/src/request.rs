//! From a JSON object to the domain's raw inputs. Only JSON types are checked here (a number
//! where a string belongs is a field error); every value rule is the domain's.
//! Field errors of both kinds are merged in the order of the contract's create body.

use domain::{NewSipTrunkInput, Patch, SipTrunkPatchInput, ValidationErrors};
use serde_json::{Map, Value};

/// The create body's fields, in the contract's order: the order of fields in a 422.
pub const TRUNK_FIELDS: [&str; 11] = [
    "sip_trunk_type",
    "phone_number",
    "nickname",
    "sip_username",
    "sip_password",
    "sip_address",
    "sip_calling_format",
    "inbound_authorization_type",
    "allowed_inbound_ips",
    "country_code",
    "outbound_proxy",
];

fn attribute(field: &str) -> String {
    field.replace('_', " ")
}

/// Reads one field: absent, `null`, or a value of the right JSON type; a wrong type is
/// recorded in `errors` and read as absent.
struct Reader<'a> {
    body: &'a Map<String, Value>,
    errors: ValidationErrors,
}

impl<'a> Reader<'a> {
    fn new(body: &'a Map<String, Value>) -> Self {
        Self {
            body,
            errors: ValidationErrors::new(),
        }
    }

    fn string(&mut self, field: &str) -> Patch<String> {
        match self.body.get(field) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::String(value)) => Patch::Value(value.clone()),
            Some(_) => {
                self.errors
                    .add(field, format!("The {} must be a string.", attribute(field)));
                Patch::Absent
            }
        }
    }

    /// The framework's boolean rule: `true`, `false`, `1`, `0`, `"1"`, `"0"`.
    fn boolean(&mut self, field: &str) -> Patch<bool> {
        match self.body.get(field) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::Bool(flag)) => Patch::Value(*flag),
            Some(Value::Number(n)) if n.as_u64() == Some(1) => Patch::Value(true),
            Some(Value::Number(n)) if n.as_u64() == Some(0) => Patch::Value(false),
            Some(Value::String(s)) if s == "1" => Patch::Value(true),
            Some(Value::String(s)) if s == "0" => Patch::Value(false),
            Some(_) => {
                self.errors.add(
                    field,
                    format!("The {} field must be true or false.", attribute(field)),
                );
                Patch::Absent
            }
        }
    }

    fn strings(&mut self, field: &str) -> Patch<Vec<String>> {
        match self.body.get(field) {
            None => Patch::Absent,
            Some(Value::Null) => Patch::Null,
            Some(Value::Array(items)) => {
                let mut strings = Vec::with_capacity(items.len());
                for (index, item) in items.iter().enumerate() {
                    match item {
                        Value::String(value) => strings.push(value.clone()),
                        _ => self.errors.add(
                            format!("{field}.{index}"),
                            format!("The {field}.{index} must be a string."),
                        ),
                    }
                }
                if strings.len() == items.len() {
                    Patch::Value(strings)
                } else {
                    Patch::Absent
                }
            }
            Some(_) => {
                self.errors
                    .add(field, format!("The {} must be an array.", attribute(field)));
                Patch::Absent
            }
        }
    }
}

/// On create, `null` is the same as leaving a field out.
fn optional<T>(patch: Patch<T>) -> Option<T> {
    match patch {
        Patch::Value(value) => Some(value),
        Patch::Absent | Patch::Null => None,
    }
}

/// The create input, and the JSON type errors found on the way.
pub fn create_input(body: &Map<String, Value>) -> (NewSipTrunkInput, ValidationErrors) {
    let mut read = Reader::new(body);
    let input = NewSipTrunkInput {
        sip_trunk_type: optional(read.string("sip_trunk_type")),
        phone_number: optional(read.string("phone_number")),
        nickname: optional(read.string("nickname")),
        sip_username: optional(read.string("sip_username")),
        sip_password: optional(read.string("sip_password")),
        sip_address: optional(read.string("sip_address")),
        sip_calling_format: optional(read.string("sip_calling_format")),
        inbound_authorization_type: optional(read.string("inbound_authorization_type")),
        allowed_inbound_ips: optional(read.strings("allowed_inbound_ips")),
        country_code: optional(read.string("country_code")),
        outbound_proxy: optional(read.boolean("outbound_proxy")),
    };
    (input, read.errors)
}

/// The rename body of `PUT /user/phone-numbers/{id}`: `nickname` only (other fields are
/// ignored), as a patch of the trunk.
pub fn nickname_input(body: &Map<String, Value>) -> (SipTrunkPatchInput, ValidationErrors) {
    let mut read = Reader::new(body);
    let input = SipTrunkPatchInput {
        nickname: read.string("nickname"),
        ..SipTrunkPatchInput::default()
    };
    (input, read.errors)
}

/// The update input, and the JSON type errors found on the way. `sip_trunk_type` is
/// input-only on create and ignored here, like any unknown field.
pub fn patch_input(body: &Map<String, Value>) -> (SipTrunkPatchInput, ValidationErrors) {
    let mut read = Reader::new(body);
    let input = SipTrunkPatchInput {
        phone_number: read.string("phone_number"),
        nickname: read.string("nickname"),
        sip_username: read.string("sip_username"),
        sip_password: read.string("sip_password"),
        sip_address: read.string("sip_address"),
        sip_calling_format: read.string("sip_calling_format"),
        inbound_authorization_type: read.string("inbound_authorization_type"),
        allowed_inbound_ips: read.strings("allowed_inbound_ips"),
        country_code: read.string("country_code"),
        outbound_proxy: read.boolean("outbound_proxy"),
    };
    (input, read.errors)
}

/// The API key body's `name`, and its type error if any.
pub fn api_key_name(body: &Map<String, Value>) -> (Option<String>, ValidationErrors) {
    let mut read = Reader::new(body);
    let name = optional(read.string("name"));
    (name, read.errors)
}

/// One 422 map from the type errors and the domain's errors, fields in `order`: a field with
/// a type error shows only that (the domain saw it as absent and may have said "required").
pub fn merge(
    order: &[&str],
    type_errors: ValidationErrors,
    domain_errors: Option<ValidationErrors>,
) -> ValidationErrors {
    let domain_errors = domain_errors.unwrap_or_default();
    let belongs = |key: &str, field: &str| {
        key == field
            || key
                .strip_prefix(field)
                .is_some_and(|rest| rest.starts_with('.'))
    };
    let mut merged = ValidationErrors::new();
    let mut copy = |from: &ValidationErrors, field: &str| {
        for (key, messages) in from.fields().filter(|(key, _)| belongs(key, field)) {
            for message in messages {
                merged.add(key, message.clone());
            }
        }
    };
    for field in order {
        if type_errors.fields().any(|(key, _)| belongs(key, field)) {
            copy(&type_errors, field);
        } else {
            copy(&domain_errors, field);
        }
    }
    // Anything outside `order` (none today) still reaches the client.
    for (key, messages) in type_errors.fields().chain(domain_errors.fields()) {
        if !order.iter().any(|field| belongs(key, field)) {
            for message in messages {
                merged.add(key, message.clone());
            }
        }
    }
    merged
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> Map<String, Value> {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    /// A value of the right JSON type for every settable field.
    fn sample(field: domain::TrunkField) -> Value {
        match field.json_name() {
            "allowed_inbound_ips" => json!(["203.0.113.9"]),
            "outbound_proxy" => json!(true),
            _ => json!("x"),
        }
    }

    #[test]
    fn every_trunk_field_is_read_from_an_update_body_by_its_json_name() {
        for field in domain::TrunkField::ALL {
            let body = object(json!({ field.json_name(): sample(field) }));
            let (input, errors) = patch_input(&body);
            assert!(errors.is_empty(), "{field:?}");
            assert_eq!(domain::TrunkField::sent(&input), [field]);
        }
    }

    #[test]
    fn every_trunk_field_has_its_place_in_the_order_of_a_422() {
        for field in domain::TrunkField::ALL {
            assert!(TRUNK_FIELDS.contains(&field.json_name()), "{field:?}");
        }
    }

    #[test]
    fn wrong_json_types_are_field_errors() {
        let (_, errors) = create_input(&object(json!({
            "phone_number": 14155551234u64,
            "outbound_proxy": "yes",
            "allowed_inbound_ips": "10.0.0.1",
            "nickname": ["x"],
        })));
        assert_eq!(
            errors.messages("phone_number"),
            ["The phone number must be a string."]
        );
        assert_eq!(
            errors.messages("outbound_proxy"),
            ["The outbound proxy field must be true or false."]
        );
        assert_eq!(
            errors.messages("allowed_inbound_ips"),
            ["The allowed inbound ips must be an array."]
        );
        assert_eq!(
            errors.messages("nickname"),
            ["The nickname must be a string."]
        );
    }

    #[test]
    fn the_frameworks_boolean_forms_are_accepted() {
        for (raw, expected) in [
            (json!(true), true),
            (json!(0), false),
            (json!("1"), true),
            (json!("0"), false),
        ] {
            let (input, errors) = create_input(&object(json!({ "outbound_proxy": raw })));
            assert!(errors.is_empty());
            assert_eq!(input.outbound_proxy, Some(expected));
        }
    }

    #[test]
    fn a_non_string_list_entry_is_reported_by_index() {
        let (input, errors) = create_input(&object(
            json!({ "allowed_inbound_ips": ["10.0.0.1", 5, null] }),
        ));
        assert_eq!(input.allowed_inbound_ips, None);
        let fields: Vec<&str> = errors.fields().map(|(field, _)| field).collect();
        assert_eq!(fields, ["allowed_inbound_ips.1", "allowed_inbound_ips.2"]);
    }

    #[test]
    fn null_is_absent_on_create_and_null_on_update() {
        let body = object(json!({ "nickname": null }));
        assert_eq!(create_input(&body).0.nickname, None);
        assert_eq!(patch_input(&body).0.nickname, Patch::Null);
    }

    #[test]
    fn merge_orders_fields_and_lets_type_errors_replace_required() {
        let mut types = ValidationErrors::new();
        types.add("outbound_proxy", "bool");
        types.add("phone_number", "string");
        let mut domain = ValidationErrors::new();
        domain.add("phone_number", "required");
        domain.add("allowed_inbound_ips.1", "bad ip");
        domain.add("sip_trunk_type", "required");
        let merged = merge(&TRUNK_FIELDS, types, Some(domain));
        let fields: Vec<(&str, &[String])> = merged.fields().collect();
        assert_eq!(fields[0].0, "sip_trunk_type");
        assert_eq!(fields[1], ("phone_number", &["string".to_string()][..]));
        assert_eq!(fields[2].0, "allowed_inbound_ips.1");
        assert_eq!(fields[3].0, "outbound_proxy");
    }
}
