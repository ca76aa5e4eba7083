//! Authentication, the body's transport rules, routing and headers.

use actix_web::test::{self, TestRequest};
use serde_json::json;

use crate::support::*;

const UNAUTHENTICATED: &str = r#"{"message":"Unauthenticated."}"#;

fn every_endpoint() -> Vec<(&'static str, String)> {
    vec![
        ("GET", TRUNKS.to_owned()),
        ("POST", TRUNKS.to_owned()),
        ("GET", trunk_path(1)),
        ("PUT", trunk_path(1)),
        ("PATCH", trunk_path(1)),
        ("DELETE", "/api/user/phone-numbers/1".to_owned()),
        ("GET", "/api/user/api-keys".to_owned()),
        ("POST", "/api/user/api-keys".to_owned()),
        ("DELETE", "/api/user/api-keys/1".to_owned()),
    ]
}

#[actix_web::test]
async fn every_endpoint_needs_a_token() {
    let (state, _) = memory_state();
    let app = test::init_service(api::app(state)).await;
    for (method, path) in every_endpoint() {
        let reply = send(&app, request(method, &path, None, Some(&json!({})))).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (401, UNAUTHENTICATED),
            "{method} {path}"
        );
    }
}

#[actix_web::test]
async fn malformed_unknown_and_wrong_tokens_are_all_401() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = test::init_service(api::app(state)).await;
    let (id, secret) = alice.token.split_once('|').unwrap();
    let headers = [
        alice.token.clone(),
        format!("Basic {}", alice.token),
        "Bearer".to_owned(),
        "Bearer ".to_owned(),
        "Bearer garbage".to_owned(),
        format!("Bearer {id}|wrong-secret"),
        format!("Bearer 999|{secret}"),
        format!("Bearer {}", "9".repeat(5000)),
        format!("Bearer {id}|{secret}x"),
    ];
    for header in headers {
        let request = TestRequest::get()
            .uri(TRUNKS)
            .insert_header(("Authorization", header.clone()));
        let reply = send(&app, request).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (401, UNAUTHENTICATED),
            "{header}"
        );
    }
    let lower_case_scheme = TestRequest::get()
        .uri(TRUNKS)
        .insert_header(("Authorization", format!("bearer {}", alice.token)));
    assert_eq!(send(&app, lower_case_scheme).await.status, 200);
}

#[actix_web::test]
async fn authentication_comes_before_body_checks() {
    let (state, _) = memory_state();
    let app = test::init_service(api::app(state)).await;
    let request = TestRequest::post()
        .uri(TRUNKS)
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{broken");
    assert_eq!(send(&app, request).await.status, 401);
}

#[actix_web::test]
async fn malformed_json_is_400_and_a_non_object_is_400() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = test::init_service(api::app(state)).await;
    for payload in ["{broken", "{\"a\":1,}", "nul", "\u{feff}{}"] {
        let request = TestRequest::post()
            .uri(TRUNKS)
            .insert_header(("Authorization", format!("Bearer {}", alice.token)))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(payload);
        let reply = send(&app, request).await;
        assert_eq!(reply.status, 400, "{payload:?}");
        assert!(
            reply.json()["message"]
                .as_str()
                .unwrap()
                .starts_with("Malformed JSON"),
            "{}",
            reply.text
        );
    }
    for payload in ["[]", "\"text\"", "42", "null"] {
        let reply = send(
            &app,
            TestRequest::post()
                .uri(TRUNKS)
                .insert_header(("Authorization", format!("Bearer {}", alice.token)))
                .insert_header(("Content-Type", "application/json"))
                .set_payload(payload),
        )
        .await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (
                400,
                r#"{"message":"The request body must be a JSON object."}"#
            ),
            "{payload}"
        );
    }
}

#[actix_web::test]
async fn a_body_over_64_kib_is_413() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = test::init_service(api::app(state)).await;
    let big = json!({"nickname": "x".repeat(64 * 1024)});
    let reply = send(
        &app,
        request("POST", TRUNKS, Some(&alice.token), Some(&big)),
    )
    .await;
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.json()["message"],
        "The request body may not be larger than 64 KiB."
    );
    let just_under = json!({"nickname": "x".repeat(60 * 1024)});
    assert_eq!(
        send(
            &app,
            request("POST", TRUNKS, Some(&alice.token), Some(&just_under))
        )
        .await
        .status,
        422
    );
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_415() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = test::init_service(api::app(state)).await;
    for content_type in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
    ] {
        let request = TestRequest::post()
            .uri(TRUNKS)
            .insert_header(("Authorization", format!("Bearer {}", alice.token)))
            .insert_header(("Content-Type", content_type))
            .set_payload("{}");
        let reply = send(&app, request).await;
        assert_eq!(reply.status, 415, "{content_type}");
        assert!(reply.json()["message"].is_string());
    }
}

#[actix_web::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_json() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = test::init_service(api::app(state)).await;
    for path in [
        "/",
        "/api",
        "/api/user/phone-numbers",
        "/api/user/sip-trunks",
        "/api/user/phone-numbers/sip-trunks/1/extra",
    ] {
        let reply = send(&app, request("GET", path, Some(&alice.token), None)).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (404, r#"{"message":"Not found."}"#),
            "{path}"
        );
    }
    for (method, path) in [
        ("DELETE", TRUNKS.to_owned()),
        ("POST", trunk_path(1)),
        ("GET", "/api/user/phone-numbers/1".to_owned()),
        ("PUT", "/api/user/api-keys".to_owned()),
    ] {
        let reply = send(&app, request(method, &path, Some(&alice.token), None)).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (405, r#"{"message":"Method not allowed."}"#),
            "{method} {path}"
        );
        assert!(
            reply
                .header("allow")
                .is_some_and(|allow| !allow.contains(method)),
            "{method} {path}"
        );
    }
}

#[actix_web::test]
async fn health_and_readiness_answer_without_a_token() {
    let (state, _) = memory_state();
    let app = test::init_service(api::app(state)).await;
    let health = send(&app, TestRequest::get().uri("/healthz")).await;
    assert_eq!(
        (health.status, health.text.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    let ready = send(&app, TestRequest::get().uri("/readyz")).await;
    assert_eq!(
        (ready.status, ready.text.as_str()),
        (200, r#"{"status":"ready"}"#)
    );
}

#[actix_web::test]
async fn every_answer_says_nosniff() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = test::init_service(api::app(state)).await;
    for reply in [
        send(&app, request("GET", TRUNKS, Some(&alice.token), None)).await,
        send(&app, request("GET", TRUNKS, None, None)).await,
        send(&app, request("GET", "/nowhere", None, None)).await,
    ] {
        assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(reply.header("content-type"), Some("application/json"));
    }
}

#[actix_web::test]
async fn answers_carry_the_rate_limit_and_the_limit_gives_429_with_retry_after() {
    let (state, store) = memory_state();
    let state = state.with_rate_limits(api::rate_limit::RateLimits::new(3, 0));
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = test::init_service(api::app(state)).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let reply = send(&app, request("GET", TRUNKS, Some(&alice.token), None)).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-ratelimit-limit"), Some("3"));
        remaining.push(reply.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = send(&app, request("GET", TRUNKS, Some(&alice.token), None)).await;
    assert_eq!(
        (refused.status, refused.text.as_str()),
        (429, r#"{"message":"Too Many Attempts."}"#)
    );
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    let other_key = send(&app, request("GET", TRUNKS, Some(&bob.token), None)).await;
    assert_eq!(other_key.status, 200, "limits are per key");
}

#[actix_web::test]
async fn repeated_failed_authentications_from_one_address_get_429() {
    let (state, store) = memory_state();
    let state = state.with_rate_limits(api::rate_limit::RateLimits::new(0, 3));
    let alice = caller(&store, "alice@example.com");
    let app = test::init_service(api::app(state)).await;
    let from = |address: &str, token: &str| {
        TestRequest::get()
            .uri(TRUNKS)
            .peer_addr(address.parse().unwrap())
            .insert_header(("Authorization", format!("Bearer {token}")))
    };
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(send(&app, from("192.0.2.7:4000", "1|guess")).await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let blocked = send(&app, from("192.0.2.7:4000", &alice.token)).await;
    assert_eq!(
        blocked.status, 429,
        "a blocked client is refused even with a good token"
    );
    assert_eq!(blocked.json()["message"], "Too Many Attempts.");
    assert!(blocked.header("retry-after").is_some());
    let elsewhere = send(&app, from("192.0.2.8:4000", &alice.token)).await;
    assert_eq!(elsewhere.status, 200);
}

#[actix_web::test]
async fn a_new_token_is_never_cached_by_the_client() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = test::init_service(api::app(state)).await;
    let reply = send(
        &app,
        request(
            "POST",
            "/api/user/api-keys",
            Some(&alice.token),
            Some(&json!({"name": "x"})),
        ),
    )
    .await;
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
}

#[actix_web::test]
async fn the_openapi_document_is_served_without_a_token() {
    let (state, _) = memory_state();
    let app = test::init_service(api::app(state)).await;
    let reply = send(&app, TestRequest::get().uri("/api/openapi.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["openapi"], "3.1.0");
    assert_eq!(reply.text, api::openapi::json());
}
