//! `GET /api/user/me`: the caller's account, as existing clients check a key with it.

use actix_web::test;

use crate::support::{caller, memory_state, named_caller, request, send};

const ME: &str = "/api/user/me";

#[actix_web::test]
async fn me_answers_the_callers_name_and_email_unwrapped_keys_in_order() {
    let (state, store) = memory_state();
    let alice = named_caller(&store, "Alice@Example.com", "Alice \"Ops\" Liddell").token;
    let bob = named_caller(&store, "bob@example.com", "Bob").token;
    let app = test::init_service(api::app(state)).await;
    let reply = send(&app, request("GET", ME, Some(&alice), None)).await;
    assert_eq!(
        (reply.status, reply.text.as_str()),
        (
            200,
            r#"{"name":"Alice \"Ops\" Liddell","email":"alice@example.com"}"#
        )
    );
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    let reply = send(&app, request("GET", ME, Some(&bob), None)).await;
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
    let app = test::init_service(api::app(state)).await;
    let revoked = send(
        &app,
        request(
            "DELETE",
            &format!("/api/user/api-keys/{id}"),
            Some(&alice.token),
            None,
        ),
    )
    .await;
    assert_eq!(revoked.status, 200, "{}", revoked.text);
    for token in [
        None,
        Some("garbage"),
        Some("1|wrong-secret"),
        Some(alice.token.as_str()),
    ] {
        let reply = send(&app, request("GET", ME, token, None)).await;
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
    let app = test::init_service(api::app(state)).await;
    for method in ["POST", "PUT", "PATCH", "DELETE"] {
        let reply = send(&app, request(method, ME, Some(&alice.token), None)).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (405, r#"{"message":"Method not allowed."}"#),
            "{method}"
        );
        assert_eq!(reply.header("allow"), Some("GET"), "{method}");
    }
}
