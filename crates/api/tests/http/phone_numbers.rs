//! The generic phone-number endpoints (the contract's "Phone numbers"): the list in
//! phone-number form and the rename, on the in-memory store (the provisioning tests check
//! that a rename calls no voice infrastructure, on every backend).

use serde_json::{json, Value};

use crate::support::*;

const LIST_KEYS: [&str; 7] = [
    "id",
    "phone_number",
    "nickname",
    "country_code",
    "type",
    "type_label",
    "created_at",
];

const SAVED_KEYS: [&str; 5] = ["id", "phone_number", "nickname", "country_code", "type"];

async fn created<S, B>(app: &TestApp<S>, token: &str, body: &Value) -> Value
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    let reply = app.create_trunk(token, body).await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    reply.json()["data"].clone()
}

#[actix_web::test]
async fn the_list_shows_only_the_callers_trunks_as_sip_phone_numbers_by_id() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = TestApp::spawn(state).await;
    let reply = app.list_phone_numbers(&alice.token).await;
    assert_eq!((reply.status, reply.text.as_str()), (200, r#"{"data":[]}"#));
    let number = created(&app, &alice.token, &number_trunk()).await;
    created(&app, &bob.token, &number_trunk()).await;
    let extension = created(&app, &alice.token, &extension_trunk()).await;

    let reply = app.list_phone_numbers(&alice.token).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("content-type"), Some("application/json"));
    assert_eq!(reply.keys_at(""), ["data"]);
    assert_eq!(reply.keys_at("/data/0"), LIST_KEYS);
    let body = reply.json();
    let items = body["data"].as_array().unwrap();
    assert_eq!(items.len(), 2, "bob's trunk is not alice's");
    for (item, trunk) in items.iter().zip([&number, &extension]) {
        assert_eq!(
            item,
            &json!({
                "id": trunk["id"], "phone_number": trunk["phone_number"],
                "nickname": trunk["nickname"], "country_code": trunk["country_code"],
                "type": "sip", "type_label": "SIP", "created_at": trunk["created_at"],
            })
        );
    }
    assert!(items[0]["id"].as_i64() < items[1]["id"].as_i64());
}

#[actix_web::test]
async fn a_rename_changes_the_nickname_and_updated_at_and_answers_the_short_form() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let trunk = created(&app, &alice.token, &number_trunk()).await;
    let id = trunk["id"].as_i64().unwrap();
    // The list is cached now: the rename must show in it at once.
    app.list_trunks(&alice.token).await;
    std::thread::sleep(std::time::Duration::from_millis(2));

    let reply = app
        .rename_phone_number(
            &alice.token,
            id,
            &json!({"nickname": "  Front desk  ", "sip_username": "ignored_user"}),
        )
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.keys_at(""), ["message", "data"]);
    assert_eq!(reply.keys_at("/data"), SAVED_KEYS);
    assert_eq!(
        reply.json(),
        json!({"message": "Phone number updated successfully.", "data": {
            "id": id, "phone_number": "+14155551234", "nickname": "Front desk",
            "country_code": trunk["country_code"], "type": "sip"}})
    );
    let one = app.get_trunk(&alice.token, id).await.json();
    assert_eq!(one["data"]["nickname"], "Front desk");
    assert_eq!(
        one["data"]["sip_username"], trunk["sip_username"],
        "other fields are ignored"
    );
    assert_ne!(one["data"]["updated_at"], trunk["updated_at"]);
    let list = app.list_trunks(&alice.token).await.json();
    assert_eq!(
        list["data"][0]["nickname"], "Front desk",
        "the read cache let go"
    );

    for clear in [
        json!({"nickname": null}),
        json!({"nickname": ""}),
        json!({"nickname": "   "}),
    ] {
        let reply = app.rename_phone_number(&alice.token, id, &clear).await;
        assert_eq!(reply.status, 200, "{clear}: {}", reply.text);
        assert_eq!(reply.json()["data"]["nickname"], Value::Null, "{clear}");
    }
}

#[actix_web::test]
async fn a_body_without_nickname_changes_nothing_and_answers_200() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let trunk = created(&app, &alice.token, &number_trunk()).await;
    let id = trunk["id"].as_i64().unwrap();
    for body in [json!({}), json!({"phone_number": "+14155550000"})] {
        let reply = app.rename_phone_number(&alice.token, id, &body).await;
        assert_eq!(reply.status, 200, "{}", reply.text);
        assert_eq!(reply.json()["data"]["nickname"], trunk["nickname"]);
    }
    let one = app.get_trunk(&alice.token, id).await.json();
    assert_eq!(one["data"]["updated_at"], trunk["updated_at"]);
    assert_eq!(one["data"]["phone_number"], "+14155551234");
}

#[actix_web::test]
async fn a_nickname_over_50_characters_is_the_contracts_422_and_changes_nothing() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let trunk = created(&app, &alice.token, &number_trunk()).await;
    let id = trunk["id"].as_i64().unwrap();
    let reply = app
        .rename_phone_number(&alice.token, id, &json!({"nickname": "x".repeat(51)}))
        .await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (
            422,
            r#"{"message":"The nickname must not exceed 50 characters.","errors":{"nickname":["The nickname must not exceed 50 characters."]}}"#
        )
    );
    // 50 after trimming is fine.
    let fifty = format!("  {}  ", "y".repeat(50));
    let reply = app
        .rename_phone_number(&alice.token, id, &json!({"nickname": fifty}))
        .await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let reply = app
        .rename_phone_number(&alice.token, id, &json!({"nickname": 7}))
        .await;
    assert_eq!(reply.status, 422);
    assert_eq!(reply.json()["message"], "The nickname must be a string.");
    let one = app.get_trunk(&alice.token, id).await.json();
    assert_eq!(one["data"]["nickname"], "y".repeat(50));
}

#[actix_web::test]
async fn an_absent_impossible_or_other_users_id_is_404_phone_number_not_found() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = TestApp::spawn(state).await;
    let bobs = created(&app, &bob.token, &number_trunk()).await;
    for path in [
        phone_path(bobs["id"].clone()),
        phone_path(999),
        phone_path(-1),
        phone_path(0),
    ] {
        let reply = app
            .send(request(
                "PUT",
                &path,
                Some(&alice.token),
                Some(&json!({"nickname": "mine"})),
            ))
            .await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (404, r#"{"error":"Phone number not found."}"#),
            "{path}"
        );
    }
    let one = app.get_trunk(&bob.token, bobs["id"].clone()).await.json();
    assert_eq!(one["data"]["nickname"], bobs["nickname"]);
}

#[actix_web::test]
async fn both_endpoints_need_a_token_and_other_methods_are_405_with_allow() {
    let (state, _store) = memory_state();
    let app = TestApp::spawn(state).await;
    let reply = app.send(request("GET", PHONE_NUMBERS, None, None)).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (401, r#"{"message":"Unauthenticated."}"#)
    );
    let reply = app
        .send(request(
            "PUT",
            &phone_path(1),
            None,
            Some(&json!({"nickname": "x"})),
        ))
        .await;
    assert_eq!(reply.status, 401);
    let reply = app.send(request("POST", PHONE_NUMBERS, None, None)).await;
    assert_eq!((reply.status, reply.header("allow")), (405, Some("GET")));
    let reply = app.send(request("GET", &phone_path(1), None, None)).await;
    assert_eq!(
        (reply.status, reply.header("allow")),
        (405, Some("PUT, DELETE"))
    );
}
