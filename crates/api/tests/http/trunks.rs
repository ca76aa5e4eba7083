//! The SIP trunk endpoints.

use serde_json::{json, Value};

use crate::support::*;

const FULL_KEYS: [&str; 14] = [
    "id",
    "phone_number",
    "nickname",
    "sip_username",
    "sip_address",
    "sip_calling_format",
    "inbound_authorization_type",
    "allowed_inbound_ips",
    "outbound_proxy",
    "country_code",
    "inbound_trunk_id",
    "outbound_trunk_id",
    "created_at",
    "updated_at",
];

fn is_contract_timestamp(value: &Value) -> bool {
    let text = value.as_str().unwrap_or("");
    text.len() == 27
        && text.ends_with('Z')
        && text.as_bytes()[19] == b'.'
        && chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.6fZ").is_ok()
}

#[actix_web::test]
async fn an_empty_list_is_an_empty_data_array() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let reply = app.list_trunks(&alice.token).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, r#"{"data":[]}"#));
    assert_eq!(reply.header("content-type"), Some("application/json"));
}

#[actix_web::test]
async fn creating_the_number_example_answers_201_with_the_full_object() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let reply = app.create_trunk(&alice.token, &number_trunk()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.keys_at(""), ["message", "data"]);
    assert_eq!(reply.keys_at("/data"), FULL_KEYS);
    let body = reply.json();
    assert_eq!(body["message"], "SIP trunk created successfully.");
    let data = &body["data"];
    assert_eq!(data["id"], 1);
    assert_eq!(data["phone_number"], "+14155551234");
    assert_eq!(data["nickname"], "Main line");
    assert_eq!(data["sip_username"], "acme_user");
    assert_eq!(data["sip_address"], "sip.carrier.example");
    assert_eq!(data["sip_calling_format"], "+e164");
    assert_eq!(data["inbound_authorization_type"], "auth");
    assert_eq!(data["allowed_inbound_ips"], Value::Null);
    assert_eq!(data["outbound_proxy"], false);
    assert_eq!(data["country_code"], "US");
    assert_eq!(data["inbound_trunk_id"], Value::Null);
    assert_eq!(data["outbound_trunk_id"], Value::Null);
    assert!(
        is_contract_timestamp(&data["created_at"]),
        "{}",
        data["created_at"]
    );
    assert_eq!(data["created_at"], data["updated_at"]);
    assert!(!reply.text.contains("Sup3r-Secret-Pass"));
    assert!(!reply.text.contains("sip_password"));
    assert!(!reply.text.contains("sip_trunk_type"));
}

#[actix_web::test]
async fn creating_the_extension_example_stores_the_canonical_allow_list() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let reply = app.create_trunk(&alice.token, &extension_trunk()).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    let data = &reply.json()["data"];
    assert_eq!(data["phone_number"], "1000");
    assert_eq!(data["nickname"], Value::Null);
    assert_eq!(data["inbound_authorization_type"], "ip");
    assert_eq!(
        data["allowed_inbound_ips"],
        json!(["203.0.113.10", "198.51.100.0/24"])
    );
    assert_eq!(data["outbound_proxy"], true);
    assert_eq!(data["country_code"], "GB");
}

#[actix_web::test]
async fn the_list_holds_only_the_callers_trunks_by_id_without_leg_ids() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    app.create_trunk(&bob.token, &number_trunk()).await;
    app.create_trunk(&alice.token, &extension_trunk()).await;
    let reply = app.list_trunks(&alice.token).await;
    assert_eq!(reply.status, 200);
    let data = reply.json()["data"].clone();
    let ids: Vec<i64> = data
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [1, 3]);
    let list_keys: Vec<&str> = FULL_KEYS
        .iter()
        .copied()
        .filter(|k| !k.ends_with("_trunk_id"))
        .collect();
    assert_eq!(reply.keys_at("/data/0"), list_keys);
    assert_eq!(reply.keys_at("/data/1"), list_keys);
    assert!(!reply.text.contains("Secret-Pass"));
}

#[actix_web::test]
async fn get_returns_the_full_object_as_created() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let created = app.create_trunk(&alice.token, &extension_trunk()).await;
    let reply = app.get_trunk(&alice.token, 1).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.keys_at(""), ["data"]);
    assert_eq!(reply.keys_at("/data"), FULL_KEYS);
    assert_eq!(reply.json()["data"], created.json()["data"]);
}

#[actix_web::test]
async fn get_of_an_absent_or_impossible_id_is_404_sip_trunk_not_found() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    // Not integers ("abc", "1.5", "1%20") are unknown routes: see protocol.rs.
    for id in ["999", "0", "-1", "99999999999999999999999", "%31"] {
        let reply = app.get_trunk(&alice.token, id).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (404, r#"{"error":"SIP trunk not found."}"#),
            "{id}"
        );
    }
}

#[actix_web::test]
async fn another_users_trunk_is_404_on_get_update_and_delete_and_stays_unchanged() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let mallory = caller(&store, "mallory@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let before = app.get_trunk(&alice.token, 1).await;

    let get = app.get_trunk(&mallory.token, 1).await;
    assert_eq!(
        (get.status, get.text.as_str()),
        (404, r#"{"error":"SIP trunk not found."}"#)
    );
    for method in ["PUT", "PATCH"] {
        let update = app
            .send(request(
                method,
                &trunk_path(1),
                Some(&mallory.token),
                Some(&json!({"nickname": "pwned"})),
            ))
            .await;
        assert_eq!(
            (update.status, update.text.as_str()),
            (404, r#"{"error":"SIP trunk not found."}"#)
        );
    }
    let delete = app.delete_phone_number(&mallory.token, 1).await;
    assert_eq!(
        (delete.status, delete.text.as_str()),
        (404, r#"{"error":"Phone number not found."}"#)
    );
    let list = app.list_trunks(&mallory.token).await;
    assert_eq!(list.text, r#"{"data":[]}"#);

    let after = app.get_trunk(&alice.token, 1).await;
    assert_eq!(after.text, before.text);
}

#[actix_web::test]
async fn the_same_number_username_and_address_twice_is_409() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let again = app.create_trunk(&alice.token, &number_trunk()).await;
    assert_eq!(
        (again.status, again.text.as_str()),
        (
            409,
            r#"{"error":"A SIP trunk with the same phone number, username, and address already exists."}"#
        )
    );
    let other_user = app.create_trunk(&bob.token, &number_trunk()).await;
    assert_eq!(other_user.status, 201);
}

#[actix_web::test]
async fn an_empty_create_body_reports_every_required_field_in_contract_order() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let reply = app.create_trunk(&alice.token, &json!({})).await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.text,
        concat!(
            r#"{"message":"The given data was invalid.","errors":{"#,
            r#""sip_trunk_type":["The sip trunk type field is required."],"#,
            r#""phone_number":["The phone number field is required."],"#,
            r#""sip_username":["The sip username field is required."],"#,
            r#""sip_password":["The sip password field is required."],"#,
            r#""sip_address":["SIP server address is required."],"#,
            r#""sip_calling_format":["The sip calling format field is required."],"#,
            r#""inbound_authorization_type":["The inbound authorization type field is required."]}}"#
        )
    );
}

#[actix_web::test]
async fn the_documented_messages_are_used_verbatim() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let mut body = number_trunk();
    body["sip_calling_format"] = json!("international");
    body["inbound_authorization_type"] = json!("ip");
    body.as_object_mut().unwrap().remove("sip_address");
    let reply = app.create_trunk(&alice.token, &body).await;
    assert_eq!(reply.status, 422);
    let errors = &reply.json()["errors"];
    assert_eq!(
        errors["sip_address"],
        json!(["SIP server address is required."])
    );
    assert_eq!(
        errors["sip_calling_format"],
        json!(["SIP calling format must be one of: +e164, e164, national."])
    );
    assert_eq!(
        errors["allowed_inbound_ips"],
        json!(["At least one allowed IP address is required when authorization type is \"ip\"."])
    );
}

#[actix_web::test]
async fn wrong_json_types_are_field_errors_reported_with_the_rest() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let mut body = number_trunk();
    body["outbound_proxy"] = json!("yes");
    body["sip_username"] = json!(12345);
    body["nickname"] = json!({"a": 1});
    body["sip_address"] = json!("sip.example.com:5060");
    let reply = app.create_trunk(&alice.token, &body).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.keys_at("/errors"),
        ["nickname", "sip_username", "sip_address", "outbound_proxy"]
    );
    assert_eq!(
        reply.json()["errors"]["outbound_proxy"],
        json!(["The outbound proxy field must be true or false."])
    );
    assert_eq!(
        reply.json()["errors"]["sip_username"],
        json!(["The sip username must be a string."])
    );
}

#[actix_web::test]
async fn the_country_is_derived_from_a_number_when_not_sent() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let mut body = number_trunk();
    body.as_object_mut().unwrap().remove("country_code");
    body["phone_number"] = json!("+442071838750");
    let reply = app.create_trunk(&alice.token, &body).await;
    assert_eq!(reply.json()["data"]["country_code"], "GB");
}

#[actix_web::test]
async fn put_and_patch_change_only_the_fields_sent() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let created = app.create_trunk(&alice.token, &number_trunk()).await.json();
    let put = app
        .update_trunk(&alice.token, 1, &json!({"nickname": "Renamed"}))
        .await;
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.keys_at(""), ["message", "data"]);
    assert_eq!(put.keys_at("/data"), FULL_KEYS);
    assert_eq!(put.json()["message"], "SIP trunk updated successfully.");
    let patch = app
        .patch_trunk(&alice.token, 1, &json!({"sip_calling_format": "e164"}))
        .await;
    let data = patch.json()["data"].clone();
    assert_eq!(data["nickname"], "Renamed");
    assert_eq!(data["sip_calling_format"], "e164");
    assert_eq!(data["sip_username"], created["data"]["sip_username"]);
    assert_eq!(data["created_at"], created["data"]["created_at"]);
    assert_ne!(data["updated_at"], created["data"]["updated_at"]);
}

#[actix_web::test]
async fn an_empty_update_changes_nothing_and_keeps_updated_at() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let created = app.create_trunk(&alice.token, &number_trunk()).await.json();
    for body in [
        None,
        Some(json!({})),
        Some(json!({"unknown_field": 1, "sip_trunk_type": "extension"})),
    ] {
        let reply = app
            .send(request(
                "PUT",
                &trunk_path(1),
                Some(&alice.token),
                body.as_ref(),
            ))
            .await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["data"], created["data"]);
    }
}

#[actix_web::test]
async fn a_null_nickname_clears_it() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let reply = app
        .update_trunk(&alice.token, 1, &json!({"nickname": null}))
        .await;
    assert_eq!(reply.json()["data"]["nickname"], Value::Null);
}

#[actix_web::test]
async fn switching_to_ip_needs_a_list_and_switching_to_auth_clears_it() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let without = app
        .update_trunk(
            &alice.token,
            1,
            &json!({"inbound_authorization_type": "ip"}),
        )
        .await;
    assert_eq!(
        without.text,
        r#"{"message":"The given data was invalid.","errors":{"allowed_inbound_ips":["At least one allowed IP address is required when authorization type is \"ip\"."]}}"#
    );
    let with = app.update_trunk(&alice.token, 1, &json!({"inbound_authorization_type": "ip", "allowed_inbound_ips": ["198.51.100.7/24"]}))
    .await;
    assert_eq!(
        with.json()["data"]["allowed_inbound_ips"],
        json!(["198.51.100.0/24"])
    );
    let back = app
        .update_trunk(
            &alice.token,
            1,
            &json!({"inbound_authorization_type": "auth"}),
        )
        .await;
    assert_eq!(back.json()["data"]["inbound_authorization_type"], "auth");
    assert_eq!(back.json()["data"]["allowed_inbound_ips"], Value::Null);
}

#[actix_web::test]
async fn an_invalid_update_is_422_and_changes_nothing() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let before = app.get_trunk(&alice.token, 1).await;
    let body = json!({"phone_number": "1000", "nickname": "ok", "outbound_proxy": "maybe", "inbound_authorization_type": "ip"});
    let reply = app.patch_trunk(&alice.token, 1, &body).await;
    assert_eq!(reply.status, 422);
    assert_eq!(
        reply.keys_at("/errors"),
        ["phone_number", "allowed_inbound_ips", "outbound_proxy"]
    );
    let after = app.get_trunk(&alice.token, 1).await;
    assert_eq!(after.text, before.text);
}

#[actix_web::test]
async fn an_update_into_another_trunks_identity_is_409() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let mut second = number_trunk();
    second["phone_number"] = json!("+14155550000");
    app.create_trunk(&alice.token, &second).await;
    let reply = app
        .update_trunk(&alice.token, 2, &json!({"phone_number": "+14155551234"}))
        .await;
    assert_eq!(reply.status, 409);
    assert_eq!(
        reply.json()["error"],
        "A SIP trunk with the same phone number, username, and address already exists."
    );
}

#[actix_web::test]
async fn an_update_of_an_absent_trunk_is_404() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    for id in ["42", "-1", "0"] {
        let reply = app
            .update_trunk(&alice.token, id, &json!({"nickname": "n"}))
            .await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (404, r#"{"error":"SIP trunk not found."}"#)
        );
    }
}

#[actix_web::test]
async fn delete_answers_the_contract_messages_and_ids_are_not_reused() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let deleted = app.delete_phone_number(&alice.token, 1).await;
    assert_eq!(
        (deleted.status, deleted.text.as_str()),
        (200, r#"{"message":"Phone number deleted successfully."}"#)
    );
    let again = app.delete_phone_number(&alice.token, 1).await;
    assert_eq!(
        (again.status, again.text.as_str()),
        (404, r#"{"error":"Phone number not found."}"#)
    );
    let gone = app.get_trunk(&alice.token, 1).await;
    assert_eq!(gone.status, 404);
    let recreated = app.create_trunk(&alice.token, &number_trunk()).await;
    assert_eq!(recreated.json()["data"]["id"], 2);
}

#[actix_web::test]
async fn delete_at_the_trunks_own_path_answers_like_the_contracts_delete() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let by_bob = app.delete_trunk(&bob.token, 1).await;
    assert_eq!(
        (by_bob.status, by_bob.text.as_str()),
        (404, r#"{"error":"Phone number not found."}"#)
    );
    let deleted = app.delete_trunk(&alice.token, 1).await;
    assert_eq!(
        (deleted.status, deleted.text.as_str()),
        (200, r#"{"message":"Phone number deleted successfully."}"#)
    );
    let gone = app.get_trunk(&alice.token, 1).await;
    assert_eq!(gone.status, 404);
    let by_contract_path = app.delete_phone_number(&alice.token, 1).await;
    assert_eq!(by_contract_path.status, 404);
}

#[actix_web::test]
async fn the_password_never_appears_in_any_response() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let mut replies = vec![
        app.create_trunk(&alice.token, &number_trunk()).await,
        app.create_trunk(&alice.token, &number_trunk()).await,
        app.list_trunks(&alice.token).await,
        app.get_trunk(&alice.token, 1).await,
        app.update_trunk(&alice.token, 1, &json!({"sip_password": "An0ther-Secret"}))
            .await,
    ];
    // A password typed into the wrong fields must not come back in the errors.
    let wrong = json!({"sip_username": "Sup3r-Secret Pass", "sip_address": "Sup3r-Secret-Pass@x", "sip_password": "Sup3r\u{0}Secret"});
    replies.push(app.update_trunk(&alice.token, 1, &wrong).await);
    for reply in replies {
        assert!(!reply.text.contains("Sup3r"), "{}", reply.text);
        assert!(!reply.text.contains("An0ther-Secret"), "{}", reply.text);
    }
}

#[actix_web::test]
async fn a_read_after_a_write_sees_the_write_even_with_the_read_cache() {
    let (state, store) = memory_state();
    let state = state.with_read_cache(
        std::time::Duration::from_secs(3600),
        api::read_cache::DEFAULT_BUDGET_BYTES,
    );
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    app.create_trunk(&alice.token, &number_trunk()).await;
    let list = app.list_trunks(&alice.token).await;
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 1);

    app.create_trunk(&alice.token, &extension_trunk()).await;
    let list = app.list_trunks(&alice.token).await;
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 2);

    // Cached now: the next write must not leave this answer behind.
    let one = app.get_trunk(&alice.token, 1).await;
    assert_eq!(one.json()["data"]["nickname"], "Main line");

    app.patch_trunk(&alice.token, 1, &json!({"nickname": "Fresh"}))
        .await;
    let again = app.get_trunk(&alice.token, 1).await;
    assert_ne!(again.text, one.text);
    assert_eq!(again.json()["data"]["nickname"], "Fresh");

    app.delete_phone_number(&alice.token, 1).await;
    let gone = app.get_trunk(&alice.token, 1).await;
    assert_eq!(gone.status, 404);
    let list = app.list_trunks(&alice.token).await;
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn ranges_wider_than_a_slash_16_or_a_slash_32_get_the_contracts_sentence_per_entry() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let mut body = extension_trunk();
    body["allowed_inbound_ips"] = json!(["0.0.0.0/1", "128.0.0.0/1", "10.1.0.0/16", "::/1"]);
    let reply = app.create_trunk(&alice.token, &body).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    let errors = &reply.json()["errors"];
    let sentence = "Each allowed IP range must be at most a /16 (IPv4) or a /32 (IPv6).";
    for field in [
        "allowed_inbound_ips.0",
        "allowed_inbound_ips.1",
        "allowed_inbound_ips.3",
    ] {
        assert_eq!(errors[field], json!([sentence]), "{field}: {}", reply.text);
    }
    assert_eq!(errors["allowed_inbound_ips.2"], Value::Null);

    let created = app.create_trunk(&alice.token, &extension_trunk()).await;
    assert_eq!(created.status, 201, "{}", created.text);
    let patch = json!({"allowed_inbound_ips": ["2001:db8::/31"]});
    let reply = app.patch_trunk(&alice.token, 1, &patch).await;
    assert_eq!(reply.status, 422, "{}", reply.text);
    assert_eq!(
        reply.json()["errors"]["allowed_inbound_ips.0"],
        json!([sentence])
    );
}
