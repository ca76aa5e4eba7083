//! What a client does, end to end.

use serde_json::{json, Value};

use std::net::TcpListener;

use crate::harness::{create_user, file_in, run_cli_with, Database, Server};

const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";
const PASSWORD: &str = "E2e-Very-Secret-Pass";

fn number_trunk() -> Value {
    json!({
        "sip_trunk_type": "number", "phone_number": "+14155551234", "nickname": "Main line",
        "sip_username": "acme_user", "sip_password": PASSWORD, "sip_address": "sip.carrier.example",
        "sip_calling_format": "+e164", "inbound_authorization_type": "auth", "country_code": "US",
        "outbound_proxy": false
    })
}

fn extension_trunk() -> Value {
    json!({
        "sip_trunk_type": "extension", "phone_number": "1000", "sip_username": "pbx_user",
        "sip_password": PASSWORD, "sip_address": "203.0.113.10", "sip_calling_format": "national",
        "inbound_authorization_type": "ip", "allowed_inbound_ips": ["203.0.113.10", "198.51.100.0/24"],
        "country_code": "GB", "outbound_proxy": true
    })
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

pub fn the_contract_walkthrough_works_over_http(database: &Database) {
    let token = create_user(database, "ops@example.com");
    let server = Server::start(database);
    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&number_trunk()));
    assert_eq!(status, 201, "{body}");
    let first = json(&body)["data"]["id"].as_i64().unwrap();
    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&extension_trunk()));
    assert_eq!(status, 201, "{body}");
    let second = json(&body)["data"]["id"].as_i64().unwrap();

    let (status, body) = server.call("GET", TRUNKS, Some(&token), None);
    assert_eq!(status, 200);
    let ids: Vec<i64> = json(&body)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids, [first, second]);

    let (status, body) = server.call("GET", &format!("{TRUNKS}/{second}"), Some(&token), None);
    assert_eq!(status, 200);
    assert_eq!(
        json(&body)["data"]["allowed_inbound_ips"],
        json!(["203.0.113.10", "198.51.100.0/24"])
    );

    let (status, body) = server.call(
        "PATCH",
        &format!("{TRUNKS}/{first}"),
        Some(&token),
        Some(&json!({"nickname": "Renamed"})),
    );
    assert_eq!(
        (status, json(&body)["data"]["nickname"].clone()),
        (200, json!("Renamed"))
    );

    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&number_trunk()));
    assert_eq!(status, 409, "{body}");

    let (status, body) = server.call(
        "DELETE",
        &format!("/api/user/phone-numbers/{first}"),
        Some(&token),
        None,
    );
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"message":"Phone number deleted successfully."}"#)
    );
    let (status, _) = server.call("GET", &format!("{TRUNKS}/{first}"), Some(&token), None);
    assert_eq!(status, 404);

    let (status, body) = server.call(
        "POST",
        "/api/user/api-keys",
        Some(&token),
        Some(&json!({"name": "ci"})),
    );
    assert_eq!(status, 201, "{body}");
    let second_token = json(&body)["api_key"]["token"].as_str().unwrap().to_owned();
    let (status, _) = server.call("GET", TRUNKS, Some(&second_token), None);
    assert_eq!(status, 200);
    let key_id = second_token.split('|').next().unwrap();
    let (status, _) = server.call(
        "DELETE",
        &format!("/api/user/api-keys/{key_id}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    let (status, body) = server.call("GET", TRUNKS, Some(&second_token), None);
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"message":"Unauthenticated."}"#)
    );

    let (status, body) = server.call("GET", "/readyz", None, None);
    assert_eq!(
        (status, body.clone()),
        (
            200,
            format!(
                r#"{{"status":"ready","provisioning":"off","cache_coherence":"{}","rate_limits":"local"}}"#,
                crate::harness::coherence(database)
            )
        )
    );
    let (clean, log) = server.stop();
    assert!(clean, "SIGTERM should end the service cleanly:\n{log}");
}

pub fn data_and_tokens_survive_a_restart(database: &Database) {
    let token = create_user(database, "ops@example.com");
    let server = Server::start(database);
    let (status, created) = server.call("POST", TRUNKS, Some(&token), Some(&extension_trunk()));
    assert_eq!(status, 201);
    let id = json(&created)["data"]["id"].as_i64().unwrap();
    let (_, before) = server.call("GET", &format!("{TRUNKS}/{id}"), Some(&token), None);
    let (clean, log) = server.stop();
    assert!(clean, "{log}");

    let server = Server::start(database);
    let (status, after) = server.call("GET", &format!("{TRUNKS}/{id}"), Some(&token), None);
    assert_eq!(status, 200, "{after}");
    assert_eq!(after, before);
    // The password is still readable (same key): changing only the username keeps it.
    let (status, _) = server.call(
        "PUT",
        &format!("{TRUNKS}/{id}"),
        Some(&token),
        Some(&json!({"sip_username": "pbx_user2"})),
    );
    assert_eq!(status, 200);
}

pub fn the_password_never_appears_in_a_response_or_the_log(database: &Database) {
    let token = create_user(database, "ops@example.com");
    let server = Server::start_with(database, &[("RUST_LOG", "trace")]);
    let mut bodies = Vec::new();
    bodies.push(
        server
            .call("POST", TRUNKS, Some(&token), Some(&number_trunk()))
            .1,
    );
    bodies.push(
        server
            .call("POST", TRUNKS, Some(&token), Some(&number_trunk()))
            .1,
    );
    let mut bad = number_trunk();
    bad["sip_username"] = json!(PASSWORD.replace('-', " "));
    bad["sip_address"] = json!(format!("{PASSWORD}@host"));
    bodies.push(server.call("POST", TRUNKS, Some(&token), Some(&bad)).1);
    bodies.push(server.call("GET", TRUNKS, Some(&token), None).1);
    bodies.push(
        server
            .call("GET", &format!("{TRUNKS}/1"), Some(&token), None)
            .1,
    );
    bodies.push(
        server
            .call(
                "PUT",
                &format!("{TRUNKS}/1"),
                Some(&token),
                Some(&json!({"sip_password": PASSWORD})),
            )
            .1,
    );
    bodies.push(
        server
            .call("GET", TRUNKS, Some(&format!("{token}x")), None)
            .1,
    );
    // The simulator compares offered passwords, right and wrong, and shows neither.
    for offered in [PASSWORD, "E2e-Very-Secret-Wrong"] {
        let call = json!({
            "direction": "inbound", "source_ip": "192.0.2.1", "to": "+14155551234",
            "username": "acme_user", "password": offered
        });
        let (status, body) = server.call(
            "POST",
            &format!("{TRUNKS}/simulate"),
            Some(&token),
            Some(&call),
        );
        assert_eq!(status, 200, "{body}");
        bodies.push(body);
    }
    bodies.push(
        server
            .call("GET", &format!("{TRUNKS}/1/status"), Some(&token), None)
            .1,
    );
    let (_, log) = server.stop();
    let secret = token.split('|').nth(1).unwrap();
    for body in &bodies {
        assert!(!body.contains("E2e-Very-Secret"), "{body}");
        assert!(!body.contains(secret), "{body}");
    }
    assert!(
        log.contains("POST /api/user/phone-numbers/sip-trunks 201"),
        "{log}"
    );
    assert!(!log.contains("E2e-Very-Secret"), "{log}");
    assert!(!log.contains(secret), "{log}");
}

pub fn a_sqlite_database_gets_a_private_key_file(database: &Database) {
    let server = Server::start(database);
    let key_file = file_in(database, "trunks.db.key");
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    assert!(log.contains("created the key file"), "{log}");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(!log.contains(key.trim()), "the key itself is never logged");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&key_file).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    let again = Server::start(database);
    let (_, log) = again.stop();
    assert!(log.contains("using the key file"), "{log}");
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), key);
}

pub fn the_phone_number_endpoints_list_and_rename_the_callers_trunks(database: &Database) {
    let alice = create_user(database, "phones@example.com");
    let bob = create_user(database, "phones-bob@example.com");
    let server = Server::start(database);
    let mut ids = Vec::new();
    for body in [number_trunk(), extension_trunk()] {
        let (status, text) = server.call("POST", TRUNKS, Some(&alice), Some(&body));
        assert_eq!(status, 201, "{text}");
        ids.push(json(&text)["data"]["id"].as_i64().unwrap());
    }
    server.call("POST", TRUNKS, Some(&bob), Some(&number_trunk()));
    let (status, text) = server.call("GET", "/api/user/phone-numbers/all", Some(&alice), None);
    assert_eq!(status, 200, "{text}");
    let listed = json(&text)["data"].as_array().unwrap().clone();
    assert_eq!(
        listed
            .iter()
            .map(|p| p["id"].as_i64().unwrap())
            .collect::<Vec<_>>(),
        ids
    );
    assert!(listed
        .iter()
        .all(|p| p["type"] == "sip" && p["type_label"] == "SIP"));
    // The trunk list is cached by now; the rename shows at once in both.
    server.call("GET", TRUNKS, Some(&alice), None);
    let (status, text) = server.call(
        "PUT",
        &format!("/api/user/phone-numbers/{}", ids[0]),
        Some(&alice),
        Some(&json!({"nickname": "Reception"})),
    );
    assert_eq!(
        (status, json(&text)["message"].clone()),
        (200, json!("Phone number updated successfully.")),
        "{text}"
    );
    let (_, list) = server.call("GET", TRUNKS, Some(&alice), None);
    assert_eq!(json(&list)["data"][0]["nickname"], "Reception");
    let (_, all) = server.call("GET", "/api/user/phone-numbers/all", Some(&alice), None);
    assert_eq!(json(&all)["data"][0]["nickname"], "Reception");
    let (status, text) = server.call(
        "PUT",
        &format!("/api/user/phone-numbers/{}", ids[0]),
        Some(&bob),
        Some(&json!({"nickname": "Not mine"})),
    );
    assert_eq!(
        (status, text.as_str()),
        (404, r#"{"error":"Phone number not found."}"#)
    );
}

pub fn the_json_log_is_one_object_per_line_with_request_ids_and_no_secret(database: &Database) {
    let token = create_user(database, "logs@example.com");
    let server = Server::start_with(database, &[("LOG_FORMAT", "json"), ("RUST_LOG", "trace")]);
    let (status, text, echoed) = server.call_as(
        Some("e2e-create-1"),
        "POST",
        TRUNKS,
        Some(&token),
        Some(&number_trunk()),
    );
    assert_eq!(
        (status, echoed.as_deref()),
        (201, Some("e2e-create-1")),
        "{text}"
    );
    let id = json(&text)["data"]["id"].as_i64().unwrap();
    let (status, _, echoed) = server.call_as(
        Some("e2e-update-2"),
        "PUT",
        &format!("{TRUNKS}/{id}"),
        Some(&token),
        Some(&json!({"sip_password": "Another-E2e-Secret-9"})),
    );
    assert_eq!((status, echoed.as_deref()), (200, Some("e2e-update-2")));
    let (status, key, _) = server.call_as(
        None,
        "POST",
        "/api/user/api-keys",
        Some(&token),
        Some(&json!({"name": "logged"})),
    );
    assert_eq!(status, 201, "{key}");
    let second = json(&key)["api_key"]["token"].as_str().unwrap().to_owned();
    // An id the service will not take: a fresh one instead.
    let (status, _, fresh) = server.call_as(
        Some("bad id with spaces"),
        "GET",
        TRUNKS,
        Some(&second),
        None,
    );
    assert_eq!(status, 200);
    let fresh = fresh.unwrap();
    assert_eq!(fresh.len(), 32, "{fresh}");
    let (status, _, unauthenticated) = server.call_as(None, "GET", TRUNKS, Some("1|wrong"), None);
    assert_eq!(status, 401);
    let unauthenticated = unauthenticated.unwrap();
    let (status, _, _) = server.call_as(
        None,
        "DELETE",
        &format!("/api/user/phone-numbers/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    let (clean, log) = server.stop();
    assert!(clean);

    let lines: Vec<Value> = log
        .lines()
        .map(|line| {
            serde_json::from_str(line).unwrap_or_else(|_| panic!("not one JSON object: {line}"))
        })
        .collect();
    assert!(lines.iter().all(|line| line["timestamp"].is_string()
        && line["level"].is_string()
        && line["message"].is_string()));
    let request_line = |id: &str| {
        lines
            .iter()
            .find(|line| line["request_id"] == id && line["route"].is_string())
            .unwrap_or_else(|| panic!("no request line for {id}:\n{log}"))
            .clone()
    };
    let create = request_line("e2e-create-1");
    assert_eq!(
        (&create["method"], &create["route"], &create["status"]),
        (&json!("POST"), &json!(TRUNKS), &json!(201))
    );
    assert!(
        create["duration_ms"].is_number() && create["user_id"].is_number(),
        "{create}"
    );
    let update = request_line("e2e-update-2");
    assert_eq!(
        update["route"], "/api/user/phone-numbers/sip-trunks/{id}",
        "the template, not the path"
    );
    assert_eq!(request_line(&fresh)["status"], 200);
    let refused = request_line(&unauthenticated);
    assert_eq!(refused["status"], 401);
    assert!(refused.get("user_id").is_none(), "{refused}");
    for secret in [
        PASSWORD,
        "Another-E2e-Secret-9",
        token.as_str(),
        second.as_str(),
    ] {
        assert!(!log.contains(secret), "a secret in the trace-level log");
    }
    let secret_part = token.split('|').nth(1).unwrap();
    assert!(!log.contains(secret_part));
}

pub fn the_metrics_listener_counts_requests_by_route_template_away_from_the_api(
    database: &Database,
) {
    let token = create_user(database, "metrics@example.com");
    let server = Server::start(database);
    let (status, text) = server.call("POST", TRUNKS, Some(&token), Some(&number_trunk()));
    assert_eq!(status, 201, "{text}");
    let id = json(&text)["data"]["id"].as_i64().unwrap();
    for _ in 0..3 {
        server.call("GET", &format!("{TRUNKS}/{id}"), Some(&token), None);
    }
    server.call("GET", TRUNKS, Some("1|wrong"), None);
    // Not on the public listener.
    let (status, _) = server.call("GET", "/metrics", None, None);
    assert_eq!(status, 404);
    let url = server
        .metrics_url()
        .expect("the log names the metrics address");
    let scraped = ureq::get(&url).call().unwrap();
    assert!(
        scraped.content_type().contains("openmetrics"),
        "{}",
        scraped.content_type()
    );
    let text = scraped.into_string().unwrap();
    for expected in [
        r#"sip_trunks_http_requests_total{route="/api/user/phone-numbers/sip-trunks/{id}",method="GET",status="200"} 3"#,
        r#"sip_trunks_http_requests_total{route="/api/user/phone-numbers/sip-trunks",method="POST",status="201"} 1"#,
        "sip_trunks_http_request_duration_seconds_bucket{",
        "sip_trunks_auth_failures_total 1",
        "sip_trunks_db_pool_connections ",
        "sip_trunks_db_pool_wait_seconds_total ",
        r#"sip_trunks_cache_lookups_total{cache="read",outcome="hit"}"#,
        "sip_trunks_change_feed_live ",
        "# EOF",
    ] {
        assert!(text.contains(expected), "{expected} missing:\n{text}");
    }
    assert!(
        !text.contains(&format!("/sip-trunks/{id}\"")),
        "never a raw path with an id"
    );
}

/// Where the service serves its metrics when nobody chose an address.
const DEFAULT_METRICS_BIND: &str = "127.0.0.1:9090";

pub fn a_taken_default_metrics_port_costs_the_metrics_not_the_service(database: &Database) {
    // Held by this test, or by some other process already: taken either way.
    let _holder = TcpListener::bind(DEFAULT_METRICS_BIND).ok();
    assert!(
        TcpListener::bind(DEFAULT_METRICS_BIND).is_err(),
        "the default metrics port must be taken for this test"
    );
    let server = Server::start_with(database, &[("METRICS_BIND", "")]);
    let (status, _) = server.call("GET", "/readyz", None, None);
    assert_eq!(status, 200);
    assert_eq!(server.metrics_url(), None, "no metrics listener");
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    let warnings: Vec<&str> = log
        .lines()
        .filter(|line| line.contains("WARN") && line.contains("metrics"))
        .collect();
    assert_eq!(warnings.len(), 1, "{log}");
    assert!(
        warnings[0].contains("127.0.0.1:9090 is taken by another process: serving without metrics"),
        "{log}"
    );

    // An address the operator chose is a promise: taken, the service does not start.
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let chosen = taken.local_addr().unwrap().to_string();
    let flag = run_cli_with(
        database,
        &[],
        &["serve", "--bind", "127.0.0.1:0", "--metrics-bind", &chosen],
    );
    let stderr = String::from_utf8_lossy(&flag.stderr);
    assert_eq!(flag.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot serve the metrics on {chosen}")),
        "{stderr}"
    );
    // The default address, named explicitly, is a choice too.
    let named = run_cli_with(
        database,
        &[("METRICS_BIND", DEFAULT_METRICS_BIND)],
        &["serve", "--bind", "127.0.0.1:0"],
    );
    let stderr = String::from_utf8_lossy(&named.stderr);
    assert_eq!(named.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot serve the metrics on 127.0.0.1:9090"),
        "{stderr}"
    );
}

pub fn existing_clients_check_their_key_with_me_and_get_404_for_endpoints_this_service_lacks(
    database: &Database,
) {
    let token = create_user(database, "Me.Myself@Example.com");
    let server = Server::start(database);
    let (status, body) = server.call("GET", "/api/user/me", Some(&token), None);
    assert_eq!(
        (status, body.as_str()),
        (200, r#"{"name":"E2E","email":"me.myself@example.com"}"#)
    );
    let (status, body) = server.call("GET", "/api/user/me", Some("1|not-the-secret"), None);
    assert_eq!(
        (status, body.as_str()),
        (401, r#"{"message":"Unauthenticated."}"#)
    );
    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&number_trunk()));
    assert_eq!(status, 201, "{body}");
    for (method, path) in [
        ("GET", "/api/user/phone-numbers/search"),
        ("POST", "/api/user/phone-numbers/purchase"),
        ("PUT", "/api/user/phone-numbers/search"),
        ("DELETE", "/api/user/api-keys/all"),
        ("GET", "/api/user/phone-numbers/sip-trunks/1.0"),
    ] {
        let (status, body) = server.call(method, path, Some(&token), Some(&json!({})));
        assert_eq!(
            (status, body.as_str()),
            (404, r#"{"message":"Not found."}"#),
            "{method} {path}"
        );
    }
    let (status, _) = server.call("GET", &format!("{TRUNKS}/1"), Some(&token), None);
    assert_eq!(status, 200, "an integer id still reaches its trunk");
}

pub fn concurrent_uncached_reads_of_many_accounts_each_answer_that_accounts_own_trunks(
    database: &Database,
) {
    let accounts: Vec<String> = (0..4)
        .map(|n| create_user(database, &format!("reader{n}@example.com")))
        .collect();
    // No read cache: every read goes to the database (on PostgreSQL, reads queued together
    // share one statement, whoever asked them).
    let server = Server::start_with(database, &[("READ_CACHE_MS", "0")]);
    // Account n holds n + 1 trunks, with numbers of its own.
    let owned: Vec<Vec<i64>> = accounts
        .iter()
        .enumerate()
        .map(|(n, token)| {
            (0..=n)
                .map(|k| {
                    let mut body = number_trunk();
                    body["phone_number"] = json!(format!("+1415555{n}{k:03}"));
                    let (status, text) = server.call("POST", TRUNKS, Some(token), Some(&body));
                    assert_eq!(status, 201, "{text}");
                    json(&text)["data"]["id"].as_i64().unwrap()
                })
                .collect()
        })
        .collect();
    std::thread::scope(|scope| {
        for thread in 0..16 {
            let (server, accounts, owned) = (&server, &accounts, &owned);
            scope.spawn(move || {
                for round in 0..30 {
                    let n = (thread + round) % accounts.len();
                    let token = Some(accounts[n].as_str());
                    let (status, text) = server.call("GET", TRUNKS, token, None);
                    assert_eq!(status, 200, "{text}");
                    let listed: Vec<i64> = json(&text)["data"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|trunk| trunk["id"].as_i64().unwrap())
                        .collect();
                    assert_eq!(listed, owned[n], "account {n}'s list");
                    let id = owned[n][round % owned[n].len()];
                    let (status, text) = server.call("GET", &format!("{TRUNKS}/{id}"), token, None);
                    assert_eq!(status, 200, "{text}");
                    assert_eq!(json(&text)["data"]["id"], id);
                    let foreign = owned[(n + 1) % accounts.len()][0];
                    let (status, text) =
                        server.call("GET", &format!("{TRUNKS}/{foreign}"), token, None);
                    assert_eq!(status, 404, "account {n} read trunk {foreign}: {text}");
                }
            });
        }
    });
    // A write is in the very next read.
    let renamed = owned[0][0];
    let (status, text) = server.call(
        "PUT",
        &format!("{TRUNKS}/{renamed}"),
        Some(&accounts[0]),
        Some(&json!({"nickname": "Renamed"})),
    );
    assert_eq!(status, 200, "{text}");
    let (_, text) = server.call("GET", TRUNKS, Some(&accounts[0]), None);
    assert_eq!(json(&text)["data"][0]["nickname"], "Renamed");
    let (_, text) = server.call(
        "GET",
        &format!("{TRUNKS}/{renamed}"),
        Some(&accounts[0]),
        None,
    );
    assert_eq!(json(&text)["data"]["nickname"], "Renamed");
}
