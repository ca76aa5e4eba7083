//! Authentication, the body's transport rules, routing and headers.

use actix_web::test::TestRequest;
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
    let app = TestApp::spawn(state).await;
    for (method, path) in every_endpoint() {
        let reply = app
            .send(request(method, &path, None, Some(&json!({}))))
            .await;
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
    let app = TestApp::spawn(state).await;
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
        let reply = app.send(request).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (401, UNAUTHENTICATED),
            "{header}"
        );
    }
    let lower_case_scheme = TestRequest::get()
        .uri(TRUNKS)
        .insert_header(("Authorization", format!("bearer {}", alice.token)));
    assert_eq!(app.send(lower_case_scheme).await.status, 200);
}

#[actix_web::test]
async fn authentication_comes_before_body_checks() {
    let (state, _) = memory_state();
    let app = TestApp::spawn(state).await;
    let request = TestRequest::post()
        .uri(TRUNKS)
        .insert_header(("Content-Type", "application/json"))
        .set_payload("{broken");
    assert_eq!(app.send(request).await.status, 401);
}

#[actix_web::test]
async fn malformed_json_is_400_and_a_non_object_is_400() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    for payload in ["{broken", "{\"a\":1,}", "nul", "\u{feff}{}"] {
        let request = TestRequest::post()
            .uri(TRUNKS)
            .insert_header(("Authorization", format!("Bearer {}", alice.token)))
            .insert_header(("Content-Type", "application/json"))
            .set_payload(payload);
        let reply = app.send(request).await;
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
        let reply = app
            .send(
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
    let app = TestApp::spawn(state).await;
    let big = json!({"nickname": "x".repeat(64 * 1024)});
    let reply = app.create_trunk(&alice.token, &big).await;
    assert_eq!(reply.status, 413);
    assert_eq!(
        reply.json()["message"],
        "The request body may not be larger than 64 KiB."
    );
    let just_under = json!({"nickname": "x".repeat(60 * 1024)});
    assert_eq!(
        app.create_trunk(&alice.token, &just_under).await.status,
        422
    );
}

#[actix_web::test]
async fn a_body_that_is_not_json_is_415() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
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
        let reply = app.send(request).await;
        assert_eq!(reply.status, 415, "{content_type}");
        assert!(reply.json()["message"].is_string());
    }
}

#[actix_web::test]
async fn unknown_routes_are_404_and_wrong_methods_405_in_json() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    for path in [
        "/",
        "/api",
        "/api/user/phone-numbers",
        "/api/user/sip-trunks",
        "/api/user/phone-numbers/sip-trunks/1/extra",
    ] {
        let reply = app
            .send(request("GET", path, Some(&alice.token), None))
            .await;
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
        let reply = app
            .send(request(method, &path, Some(&alice.token), None))
            .await;
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
async fn a_segment_where_an_id_belongs_that_is_not_an_integer_is_an_unknown_route_for_every_method()
{
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    // What clients of the original call, and endpoints this service does not have.
    for (method, path) in [
        ("GET", "/api/user/phone-numbers/search"),
        ("POST", "/api/user/phone-numbers/purchase"),
        ("GET", "/api/user/phone-numbers/available"),
    ] {
        let reply = app
            .send(request(method, path, Some(&alice.token), None))
            .await;
        assert_eq!(
            (reply.status, reply.text.as_str(), reply.header("allow")),
            (404, r#"{"message":"Not found."}"#, None),
            "{method} {path}"
        );
    }
    for base in [
        "/api/user/phone-numbers/sip-trunks/",
        "/api/user/phone-numbers/",
        "/api/user/api-keys/",
    ] {
        for segment in [
            "search",
            "purchase",
            "abc",
            "1.5",
            "1e3",
            "0x1",
            "+1",
            "1%20",
            "%E2%80%AE1",
            "1a",
            "--1",
            "1-",
        ] {
            for method in ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"] {
                let path = format!("{base}{segment}");
                let reply = app
                    .send(request(method, &path, Some(&alice.token), Some(&json!({}))))
                    .await;
                assert_eq!(
                    (reply.status, reply.text.as_str(), reply.header("allow")),
                    (404, r#"{"message":"Not found."}"#, None),
                    "{method} {path}"
                );
            }
        }
    }
    // Integers reach their resource: its own 404 for ids that cannot exist, its 405.
    for (method, path, status, text) in [
        (
            "GET",
            trunk_path(-1),
            404,
            r#"{"error":"SIP trunk not found."}"#,
        ),
        (
            "GET",
            trunk_path(0),
            404,
            r#"{"error":"SIP trunk not found."}"#,
        ),
        (
            "GET",
            trunk_path("99999999999999999999"),
            404,
            r#"{"error":"SIP trunk not found."}"#,
        ),
        (
            "DELETE",
            "/api/user/phone-numbers/-1".to_owned(),
            404,
            r#"{"error":"Phone number not found."}"#,
        ),
        (
            "DELETE",
            "/api/user/api-keys/0".to_owned(),
            404,
            r#"{"message":"API key not found."}"#,
        ),
        (
            "GET",
            "/api/user/phone-numbers/7".to_owned(),
            405,
            r#"{"message":"Method not allowed."}"#,
        ),
    ] {
        let reply = app
            .send(request(method, &path, Some(&alice.token), None))
            .await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (status, text),
            "{method} {path}"
        );
    }
}

#[actix_web::test]
async fn health_and_readiness_answer_without_a_token() {
    let (state, _) = memory_state();
    let app = TestApp::spawn(state).await;
    let health = app.send(TestRequest::get().uri("/healthz")).await;
    assert_eq!(
        (health.status, health.text.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    let ready = app.send(TestRequest::get().uri("/readyz")).await;
    assert_eq!(
        (ready.status, ready.text.as_str()),
        (
            200,
            r#"{"status":"ready","provisioning":"off","cache_coherence":"local","rate_limits":"local"}"#
        )
    );
}

#[actix_web::test]
async fn every_answer_says_nosniff() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    for reply in [
        app.list_trunks(&alice.token).await,
        app.send(request("GET", TRUNKS, None, None)).await,
        app.send(request("GET", "/nowhere", None, None)).await,
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
    let app = TestApp::spawn(state).await;
    let mut remaining = Vec::new();
    for _ in 0..3 {
        let reply = app.list_trunks(&alice.token).await;
        assert_eq!(reply.status, 200);
        assert_eq!(reply.header("x-ratelimit-limit"), Some("3"));
        remaining.push(reply.header("x-ratelimit-remaining").unwrap().to_owned());
    }
    assert_eq!(remaining, ["2", "1", "0"]);
    let refused = app.list_trunks(&alice.token).await;
    assert_eq!(
        (refused.status, refused.text.as_str()),
        (429, r#"{"message":"Too Many Attempts."}"#)
    );
    let retry_after: u64 = refused.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry_after), "{retry_after}");
    assert_eq!(refused.header("x-ratelimit-remaining"), Some("0"));
    let other_account = app.list_trunks(&bob.token).await;
    assert_eq!(other_account.status, 200, "limits are per account");
}

#[actix_web::test]
async fn the_rate_limit_counts_all_keys_of_an_account_together() {
    let (state, store) = memory_state();
    let state = state.with_rate_limits(api::rate_limit::RateLimits::new(4, 0));
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let mut tokens = vec![alice.token.clone()];
    for name in ["second", "third"] {
        let created = app
            .create_api_key(&alice.token, &json!({ "name": name }))
            .await;
        assert_eq!(created.status, 201, "{}", created.text);
        tokens.push(
            created.json()["api_key"]["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    // Two creates spent two of the four; one more request on each new key is one too many.
    let second = app.list_trunks(&tokens[1]).await;
    assert_eq!(second.status, 200);
    assert_eq!(second.header("x-ratelimit-remaining"), Some("1"));
    let third = app.list_trunks(&tokens[2]).await;
    assert_eq!(third.status, 200);
    let over = app.list_trunks(&tokens[2]).await;
    assert_eq!(over.status, 429, "a fresh key does not bring a fresh quota");
    let first = app.list_trunks(&tokens[0]).await;
    assert_eq!(first.status, 429);
}

fn from(address: &str, token: &str) -> TestRequest {
    TestRequest::get()
        .uri(TRUNKS)
        .peer_addr(address.parse().unwrap())
        .insert_header(("Authorization", format!("Bearer {token}")))
}

#[actix_web::test]
async fn repeated_failed_authentications_from_one_address_get_429() {
    let (state, store) = memory_state();
    let state = state.with_rate_limits(api::rate_limit::RateLimits::new(0, 3));
    caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let mut statuses = Vec::new();
    for _ in 0..5 {
        statuses.push(app.send(from("192.0.2.7:4000", "1|guess")).await.status);
    }
    assert_eq!(statuses, [401, 401, 401, 429, 429]);
    let blocked = app.send(from("192.0.2.7:4000", "1|guess")).await;
    assert_eq!(blocked.json()["message"], "Too Many Attempts.");
    assert!(blocked.header("retry-after").is_some());
    let elsewhere = app.send(from("192.0.2.8:4000", "1|guess")).await;
    assert_eq!(
        elsewhere.status, 401,
        "other addresses keep their own count"
    );
}

#[actix_web::test]
async fn a_client_failing_behind_a_shared_address_never_locks_out_a_valid_token() {
    let (state, store) = memory_state();
    let state = state.with_rate_limits(api::rate_limit::RateLimits::new(0, 3));
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let nat = "198.51.100.1:4000";
    let mut good = Vec::new();
    let mut bad = Vec::new();
    for _ in 0..20 {
        bad.push(app.send(from(nat, "1|not-the-secret")).await.status);
        good.push(app.send(from(nat, &alice.token)).await.status);
    }
    assert!(good.iter().all(|&status| status == 200), "{good:?}");
    assert_eq!(&bad[..4], [401, 401, 401, 429]);
}

#[actix_web::test]
async fn behind_a_trusted_proxy_the_forwarded_address_is_the_client() {
    let (state, _) = memory_state();
    let state = state
        .with_rate_limits(api::rate_limit::RateLimits::new(0, 2))
        .with_trusted_proxies(api::client_address::TrustedProxies::parse(&["10.0.0.1"]).unwrap());
    let app = TestApp::spawn(state).await;
    let via_proxy = |client: &str| {
        from("10.0.0.1:5000", "1|guess").insert_header(("X-Forwarded-For", client.to_owned()))
    };
    let mut first = Vec::new();
    for _ in 0..3 {
        first.push(app.send(via_proxy("203.0.113.5")).await.status);
    }
    assert_eq!(first, [401, 401, 429]);
    let second = app.send(via_proxy("203.0.113.6")).await;
    assert_eq!(second.status, 401, "another client behind the same proxy");
    // An untrusted peer cannot pick its address by sending the header itself.
    let spoofing = |claimed: &str| {
        from("192.0.2.50:5000", "1|guess").insert_header(("X-Forwarded-For", claimed.to_owned()))
    };
    let mut spoofed = Vec::new();
    for claimed in ["203.0.113.7", "203.0.113.8", "203.0.113.9"] {
        spoofed.push(app.send(spoofing(claimed)).await.status);
    }
    assert_eq!(spoofed, [401, 401, 429]);
}

#[actix_web::test]
async fn two_authorization_headers_are_401_even_when_one_is_valid() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    for pair in [
        [alice.token.as_str(), alice.token.as_str()],
        [alice.token.as_str(), "1|other"],
        ["1|other", alice.token.as_str()],
    ] {
        let request = TestRequest::get()
            .uri(TRUNKS)
            .append_header(("Authorization", format!("Bearer {}", pair[0])))
            .append_header(("Authorization", format!("Bearer {}", pair[1])));
        let reply = app.send(request).await;
        assert_eq!(
            (reply.status, reply.text.as_str()),
            (401, r#"{"message":"Unauthenticated."}"#)
        );
    }
}

#[actix_web::test]
async fn a_key_id_written_with_leading_zeros_is_not_the_same_key() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let (id, secret) = alice.token.split_once('|').unwrap();
    for padded in [format!("0{id}|{secret}"), format!("00{id}|{secret}")] {
        let reply = app.list_trunks(&padded).await;
        assert_eq!(reply.status, 401, "{padded}");
    }
    let exact = app.list_trunks(&alice.token).await;
    assert_eq!(exact.status, 200);
}

#[actix_web::test]
async fn every_answer_under_the_account_api_says_no_store() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let created = app.create_trunk(&alice.token, &number_trunk()).await;
    assert_eq!(created.status, 201);
    for reply in [
        created,
        app.list_trunks(&alice.token).await,
        app.get_trunk(&alice.token, 1).await,
        app.get_trunk(&alice.token, 99).await,
        app.list_api_keys(&alice.token).await,
        app.delete_phone_number(&alice.token, 1).await,
        app.send(request("GET", TRUNKS, None, None)).await,
    ] {
        assert_eq!(reply.header("cache-control"), Some("no-store"), "{reply:?}");
    }
}

#[actix_web::test]
async fn a_new_token_is_never_cached_by_the_client() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    let reply = app
        .create_api_key(&alice.token, &json!({"name": "x"}))
        .await;
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(reply.header("x-content-type-options"), Some("nosniff"));
}

#[actix_web::test]
async fn the_openapi_document_is_served_without_a_token() {
    let (state, _) = memory_state();
    let app = TestApp::spawn(state).await;
    let reply = app.send(TestRequest::get().uri("/api/openapi.json")).await;
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["openapi"], "3.1.0");
    assert_eq!(reply.text, api::routes::document::json());
}
