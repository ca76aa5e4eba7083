//! `GET /api/user/me`: the caller's account, as existing clients check a key with it.

use crate::support::{caller, memory_state, named_caller, request, TestApp, ME};

#[actix_web::test]
async fn me_answers_the_callers_name_and_email_unwrapped_keys_in_order() {
    let (state, store) = memory_state();
    let alice = named_caller(&store, "Alice@Example.com", "Alice \"Ops\" Liddell").token;
    let bob = named_caller(&store, "bob@example.com", "Bob").token;
    let app = TestApp::spawn(state).await;
    let reply = app.me(&alice).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (
            200,
            r#"{"name":"Alice \"Ops\" Liddell","email":"alice@example.com"}"#
        )
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = app.me(&bob).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (200, r#"{"name":"Bob","email":"bob@example.com"}"#)
    );
}

#[actix_web::test]
async fn me_without_a_valid_token_is_401_unauthenticated() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let (id, _) = alice.token.split_once('|').unwrap();
    let app = TestApp::spawn(state).await;
    let revoked = app
        .send(request(
            "DELETE",
            &format!("/api/user/api-keys/{id}"),
            Some(&alice.token),
            None,
        ))
        .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    for token in [
        None,
        Some("garbage"),
        Some("1|wrong-secret"),
        Some(alice.token.as_str()),
    ] {
        let reply = app.send(request("GET", ME, token, None)).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (401, r#"{"message":"Unauthenticated."}"#),
            "{token:?}"
        );
    }
}

#[actix_web::test]
async fn me_takes_get_only_and_says_so() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let reply = app
            .send(request(method, ME, Some(&alice.token), None))
            .await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (405, r#"{"message":"Method not allowed."}"#),
            "{method}"
        );
        assert_eq!(reply.header("allow"), Some("GET"), "{method}");
    }
}
