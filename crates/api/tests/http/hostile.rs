//! Hostile requests: every field, endpoint and header fed what attackers and broken clients
//! send. Each must get a 4xx JSON answer in the contract's format, echo no secret, and leave a
//! bystander trunk exactly as it was.

use actix_web::test::TestRequest;
use serde_json::{json, Value};

use crate::support::*;

const SECRET: &str = "Sup3r-Secret-Pass";

/// Values that are wrong for any string field: wrong JSON types.
fn wrong_types() -> Vec<Value> {
    vec![
        json!(0),
        json!(-1),
        json!(1.5e308),
        json!(true),
        json!([]),
        json!(["x"]),
        json!({}),
        json!({"$ne": ""}),
    ]
}

/// Strings that no field but the free-text ones accepts.
fn hostile_strings() -> Vec<String> {
    vec![
        String::new(),
        " ".into(),
        "x".repeat(10_000),
        "\u{0}".into(),
        "abc\u{0}def".into(),
        "line\nbreak".into(),
        "\u{202e}lanigiro".into(),
        "e\u{301}\u{301}\u{301}".into(),
        "１０００".into(),
        "١٠٠٠".into(),
        "' OR '1'='1".into(),
        "1; DROP TABLE sip_trunks; --".into(),
        "%s%s%s%n".into(),
        "{0}{1}${jndi:ldap://x/a}".into(),
        "<script>alert(1)</script>".into(),
        "\u{feff}+14155551234".into(),
    ]
}

/// (field, value) pairs that must each make a create fail with 422.
fn invalid_create_fields() -> Vec<(&'static str, Value)> {
    let mut cases = Vec::new();
    // Fields with a strict syntax refuse every hostile string.
    for field in [
        "sip_trunk_type",
        "phone_number",
        "sip_address",
        "sip_calling_format",
        "inbound_authorization_type",
        "country_code",
    ] {
        for value in wrong_types() {
            cases.push((field, value));
        }
        for value in hostile_strings() {
            // An empty country on a number trunk means "derive it from the number": valid.
            if !(field == "country_code" && value.is_empty()) {
                cases.push((field, Value::String(value)));
            }
        }
    }
    // A username may hold most printable text; these break its rules.
    for value in wrong_types().into_iter().chain(
        [
            "",
            "ab",
            " user",
            "us er",
            "tab\tuser",
            "user\u{0}",
            "line\nbreak",
            "' OR '1'='1",
            "admin\u{202e}txt",
            "us\u{200b}er",
        ]
        .into_iter()
        .map(|raw| json!(raw)),
    ) {
        cases.push(("sip_username", value));
    }
    cases.push(("sip_username", json!("u".repeat(129))));
    // `true`, `false`, 0, 1, "0" and "1" are the booleans the original accepts; nothing else.
    for value in [
        json!(-1),
        json!(2),
        json!(1.5),
        json!([]),
        json!(["x"]),
        json!({}),
        json!("yes"),
        json!("true"),
        json!("on"),
        json!(""),
    ] {
        cases.push(("outbound_proxy", value));
    }
    for value in [
        json!("x".repeat(51)),
        json!("a\u{0}b"),
        json!("bell\u{7}"),
        json!(5),
        json!([]),
    ] {
        cases.push(("nickname", value));
    }
    for value in [
        json!("pw"),
        json!("x".repeat(129)),
        json!("pass\u{0}word"),
        json!(12345),
        json!({}),
    ] {
        cases.push(("sip_password", value));
    }
    cases
}

fn is_contract_error(reply: &Reply) -> bool {
    let Ok(Value::Object(body)) = serde_json::from_str::<Value>(&reply.text) else {
        return false;
    };
    match reply.status {
        422 => {
            body.get("message") == Some(&json!("The given data was invalid."))
                && body.get("errors").is_some_and(Value::is_object)
        }
        _ => body
            .get("message")
            .or_else(|| body.get("error"))
            .is_some_and(Value::is_string),
    }
}

#[actix_web::test]
async fn hostile_requests_get_4xx_json_answers_and_leave_a_bystander_unchanged() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    let app = TestApp::spawn(state).await;
    let bystander = app.create_trunk(&bob.token, &number_trunk()).await;
    assert_eq!(bystander.status, 201);
    app.create_trunk(&alice.token, &extension_trunk()).await;
    let before = app.get_trunk(&bob.token, 1).await.text;
    let bearer = format!("Bearer {}", alice.token);
    let mut count = 0;
    let mut check = |what: String, reply: Reply| {
        count += 1;
        assert!(
            (400..500).contains(&reply.status),
            "{what}: {} {}",
            reply.status,
            reply.text
        );
        assert!(is_contract_error(&reply), "{what}: {}", reply.text);
        assert!(!reply.text.contains(SECRET), "{what}: {}", reply.text);
        assert!(
            !reply.text.contains(alice.token.split('|').nth(1).unwrap()),
            "{what}"
        );
        assert_eq!(
            reply.header("content-type"),
            Some("application/json"),
            "{what}"
        );
    };

    // Every field of a create and of an update.
    for (field, value) in invalid_create_fields() {
        let mut body = number_trunk();
        body[field] = value.clone();
        let reply = app.create_trunk(&alice.token, &body).await;
        check(format!("create {field}={value}"), reply);
        if field != "sip_trunk_type" {
            let patch = json!({ field: value });
            let reply = app.patch_trunk(&alice.token, 2, &patch).await;
            check(format!("update {field}={value}"), reply);
        }
    }

    // Allow-lists.
    for list in [
        json!("203.0.113.1"),
        json!([1, 2]),
        json!([null]),
        json!(["0.0.0.0/0"]),
        json!(["::/0"]),
        json!(["0.0.0.0/1", "128.0.0.0/1"]),
        json!(["::/1", "8000::/1"]),
        json!(["10.0.0.0/15"]),
        json!(["203.0.113.1; DROP TABLE x"]),
        json!(["999.1.1.1"]),
        json!(["10.0.0.0/33"]),
        json!(["fe80::1%eth0"]),
        json!([" 203.0.113.1"]),
        json!((0..101).map(|i| format!("10.1.{i}.1")).collect::<Vec<_>>()),
        json!(["１.１.１.１"]),
    ] {
        let mut body = extension_trunk();
        body["allowed_inbound_ips"] = list.clone();
        let reply = app.create_trunk(&alice.token, &body).await;
        check(format!("allow-list {list}"), reply);
    }

    // Hostile path ids on every endpoint with an id.
    for id in [
        "0",
        "-1",
        "abc",
        "1.0",
        "1e3",
        "0x1",
        "99999999999999999999",
        "%00",
        "%2e%2e",
        "1%20",
        "%E2%80%AE1",
        "' OR 1=1",
        "1;DROP",
    ] {
        let id = id
            .replace(' ', "%20")
            .replace('\'', "%27")
            .replace(';', "%3B")
            .replace('=', "%3D");
        for (method, path) in [
            ("GET", trunk_path(&id)),
            ("PUT", trunk_path(&id)),
            ("DELETE", format!("/api/user/phone-numbers/{id}")),
            ("DELETE", format!("/api/user/api-keys/{id}")),
        ] {
            let reply = app
                .send(request(
                    method,
                    &path,
                    Some(&alice.token),
                    Some(&json!({"nickname": "x"})),
                ))
                .await;
            check(format!("{method} {path}"), reply);
        }
    }

    // Bodies: malformed, deep, duplicated, wrong types, wrong content types, invalid UTF-8.
    let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_object = format!("{}1{}", "{\"a\":".repeat(5_000), "}".repeat(5_000));
    let raw_bodies: Vec<(&str, Vec<u8>)> = vec![
        ("application/json", b"{".to_vec()),
        ("application/json", b"{\"phone_number\":}".to_vec()),
        ("application/json", deep.into_bytes()),
        ("application/json", deep_object.into_bytes()),
        ("application/json", b"{\"a\":1}{\"b\":2}".to_vec()),
        ("application/json", b"[1,2,3]".to_vec()),
        ("application/json", b"\"string\"".to_vec()),
        ("application/json", b"{\"nickname\":\"\xff\xfe\"}".to_vec()),
        ("application/json", b"\xef\xbb\xbf{}".to_vec()),
        ("application/json", b"{\"nickname\":\"\\ud800\"}".to_vec()),
        (
            "application/json",
            b"{\"nickname\":\"a\",\"nickname\":7,\"name\":7}".to_vec(),
        ),
        ("text/plain", b"{}".to_vec()),
        ("application/xml", b"<a/>".to_vec()),
        (
            "application/x-www-form-urlencoded",
            b"phone_number=1000".to_vec(),
        ),
        ("application/json", vec![b' '; 70 * 1024]),
    ];
    for (content_type, payload) in raw_bodies {
        for (method, path) in [
            ("POST", TRUNKS.to_owned()),
            ("PUT", trunk_path(2)),
            ("POST", "/api/user/api-keys".to_owned()),
        ] {
            let request = TestRequest::default()
                .method(method.parse().unwrap())
                .uri(&path)
                .insert_header(("Authorization", bearer.clone()))
                .insert_header(("Content-Type", content_type))
                .set_payload(payload.clone());
            let reply = app.send(request).await;
            check(
                format!(
                    "{method} {path} {content_type} {:?}",
                    String::from_utf8_lossy(&payload[..payload.len().min(30)])
                ),
                reply,
            );
        }
    }

    // Authorization headers.
    let long = format!("Bearer {}|{}", "9".repeat(30), "a".repeat(100_000));
    for header in [
        String::new(),
        "Bearer".into(),
        "Bearer  ".into(),
        "Basic dXNlcjpwYXNz".into(),
        format!("Bearer {}", alice.token.replace('|', "")),
        format!("Bearer {}é", alice.token),
        format!("Bearer 0|{}", alice.token.split('|').nth(1).unwrap()),
        format!("Bearer -1|{}", alice.token.split('|').nth(1).unwrap()),
        format!("Bearer {}' OR '1'='1", alice.token),
        long,
        "Bearer %s%s%s%n".into(),
    ] {
        let request = TestRequest::get()
            .uri(TRUNKS)
            .insert_header(("Authorization", header.clone()));
        let reply = app.send(request).await;
        assert_eq!(reply.status, 401, "{header:.40}");
        check(format!("authorization {header:.40}"), reply);
    }

    let after = app.get_trunk(&bob.token, 1).await.text;
    assert_eq!(after, before, "the bystander trunk changed");
    assert!(count >= 150, "only {count} hostile requests");
}

#[actix_web::test]
async fn hostile_but_valid_text_is_stored_literally() {
    let (state, store) = memory_state();
    let alice = caller(&store, "alice@example.com");
    let app = TestApp::spawn(state).await;
    for (n, nickname) in [
        "Robert'); DROP TABLE sip_trunks;--",
        "%s%n{0}",
        "\u{202e}evil",
        "<b>bold</b>",
        "ｆｕｌｌ",
    ]
    .iter()
    .enumerate()
    {
        let mut body = number_trunk();
        body["nickname"] = json!(nickname);
        body["phone_number"] = json!(format!("+1415555000{n}"));
        let reply = app.create_trunk(&alice.token, &body).await;
        assert_eq!(reply.status, 201, "{}", reply.text);
        assert_eq!(reply.json()["data"]["nickname"], json!(nickname));
    }
    let list = app.list_trunks(&alice.token).await;
    assert_eq!(list.json()["data"].as_array().unwrap().len(), 5);
}
