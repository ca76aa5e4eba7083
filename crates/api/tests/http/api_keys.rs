//! The API key endpoints.

use serde_json::json;

use crate::support::*;

#[actix_web::test]
async fn a_created_key_is_shown_once_with_a_working_token_and_no_caching() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let reply = app
        .create_api_key(&alice.token, &json!({"name": "ci"}))
        .await;
    assert_eq!(reply.status, 201, "{}", reply.text);
    assert_eq!(reply.keys_at(""), ["message", "api_key"]);
    assert_eq!(reply.keys_at("/api_key"), ["name", "token", "created_at"]);
    assert_eq!(reply.json()["message"], "API key created successfully.");
    assert_eq!(reply.json()["api_key"]["name"], "ci");
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let token = reply.json()["api_key"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let (id, secret) = token.split_once('|').unwrap();
    assert_eq!(id, "2");
    assert_eq!(secret.len(), 40);
    let with_new_key = app.list_trunks(&token).await;
    assert_eq!(with_new_key.status, 200);
}

#[actix_web::test]
async fn the_key_list_never_shows_a_token() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = TestApp::spawn(state).await;
    let created = app
        .create_api_key(&alice.token, &json!({"name": "deploy"}))
        .await;
    let token = created.json()["api_key"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reply = app.list_api_keys(&alice.token).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.keys_at(""), ["api_keys"]);
    assert_eq!(
        reply.keys_at("/api_keys/0"),
        ["id", "name", "last_used_at", "created_at"]
    );
    let names: Vec<String> = reply.json()["api_keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["test", "deploy"]);
    assert!(
        reply.json()["api_keys"][0]["last_used_at"].is_string(),
        "the key in use was recorded"
    );
    assert!(reply.json()["api_keys"][1]["last_used_at"].is_null());
    assert!(!reply.text.contains(token.split('|').nth(1).unwrap()));
    assert!(!reply.text.contains(alice.token.split('|').nth(1).unwrap()));
    let bobs = app.list_api_keys(&bob.token).await;
    assert_eq!(bobs.json()["api_keys"].as_array().unwrap().len(), 1);
}

#[actix_web::test]
async fn a_deleted_key_stops_working_on_the_next_request() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let created = app
        .create_api_key(&alice.token, &json!({"name": "temp"}))
        .await;
    let token = created.json()["api_key"]["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // Used once first, so that the service has verified (and may remember) it.
    let used = app.list_trunks(&token).await;
    assert_eq!(used.status, 200);
    let deleted = app.revoke_api_key(&alice.token, 2).await;
    assert_eq!(
        (deleted.status, deleted.text.as_str()),
        (200, r#"{"message":"API key deleted successfully."}"#)
    );
    let refused = app.list_trunks(&token).await;
    assert_eq!(
        (refused.status, refused.text.as_str()),
        (401, r#"{"message":"Unauthenticated."}"#)
    );
    let again = app.revoke_api_key(&alice.token, 2).await;
    assert_eq!(
        (again.status, again.text.as_str()),
        (404, r#"{"message":"API key not found."}"#)
    );
}

#[actix_web::test]
async fn another_users_key_cannot_be_deleted() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let mallory = caller(&store, "mallory@example.com");
    let app = TestApp::spawn(state).await;
    for id in ["1", "-1", "0"] {
        let reply = app
            .send(request(
                "DELETE",
                &format!("{API_KEYS}/{id}"),
                Some(&mallory.token),
                None,
            ))
            .await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (404, r#"{"message":"API key not found."}"#),
            "{id}"
        );
    }
    assert_eq!(app.list_trunks(&alice.token).await.status, 200);
}

#[actix_web::test]
async fn a_key_name_is_required_a_string_and_at_most_255_characters() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    for (body, message) in [
        (json!({}), "The name field is required."),
        (json!({"name": ""}), "The name field is required."),
        (json!({"name": null}), "The name field is required."),
        (json!({"name": 7}), "The name must be a string."),
        (
            json!({"name": "k".repeat(256)}),
            "The name may not be greater than 255 characters.",
        ),
    ] {
        let reply = app.create_api_key(&alice.token, &body).await;
        assert_eq!(reply.status, 422, "{body}");
        assert_eq!(reply.json()["errors"]["name"], json!([message]), "{body}");
        assert_eq!(reply.json()["message"], "The given data was invalid.");
    }
    let longest = app
        .create_api_key(&alice.token, &json!({"name": "k".repeat(255)}))
        .await;
    assert_eq!(longest.status, 201);
}
