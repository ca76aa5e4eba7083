//! The call simulator over the in-memory store, no infrastructure (`"rules": "stored"`, the
//! rules the Kamailio edge applies; tests/e2e/simulator.rs proves them against the real edge).

use serde_json::{json, Value};

use crate::support::*;

const SIMULATE: &str = "/api/user/phone-numbers/sip-trunks/simulate";

async fn simulate<S, B>(app: &TestApp<S>, token: &str, body: Value) -> Reply
where
    S: actix_web::dev::Service<
        actix_http::Request,
        Response = actix_web::dev::ServiceResponse<B>,
        Error = actix_web::Error,
    >,
    B: actix_web::body::MessageBody,
{
    app.send(request("POST", SIMULATE, Some(token), Some(&body)))
        .await
}

fn data(reply: &Reply) -> Value {
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply.json()["data"].clone()
}

#[actix_web::test]
async fn an_allow_list_trunk_admits_its_sources_and_names_the_entry_a_refused_one_needs() {
    let (state, store) = memory_state();
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    let id = app
        .create_trunk(&alice.token, &extension_trunk())
        .await
        .json()["data"]["id"]
        .as_i64()
        .unwrap();
    let inside = data(&simulate(&app, &alice.token, json!({"direction": "inbound", "source_ip": "198.51.100.77", "to": "sip:1000@edge.example"})).await);
    assert_eq!(
        (
            &inside["verdict"],
            &inside["sip_code"],
            &inside["trunk_id"],
            &inside["called_number"],
            &inside["rules"]
        ),
        (
            &json!("admitted"),
            &Value::Null,
            &json!(id),
            &json!("1000"),
            &json!("stored")
        )
    );
    assert!(
        inside["reasons"].to_string().contains("198.51.100.0/24"),
        "{inside}"
    );
    let outside = data(
        &simulate(
            &app,
            &alice.token,
            json!({"direction": "inbound", "source_ip": "192.0.2.1", "to": "1000"}),
        )
        .await,
    );
    assert_eq!(
        (&outside["verdict"], &outside["sip_code"]),
        (&json!("refused"), &json!(403))
    );
    let why = outside["reasons"].to_string();
    assert!(
        why.contains("192.0.2.1") && why.contains("203.0.113.10, 198.51.100.0/24"),
        "{why}"
    );
}

#[actix_web::test]
async fn a_credentials_trunk_challenges_then_tells_a_missing_user_from_a_wrong_password() {
    let (state, store) = memory_state();
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    app.create_trunk(&alice.token, &number_trunk()).await;
    let call = |extra: Value| {
        let mut body =
            json!({"direction": "inbound", "source_ip": "192.0.2.1", "to": "+14155551234"});
        body.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        body
    };
    let cases = [
        (json!({}), "challenged", json!(407), "offers none"),
        (
            json!({"username": "someone", "password": "Sup3r-Secret-Pass"}),
            "refused",
            json!(403),
            "does not exist",
        ),
        (
            json!({"username": "acme_user", "password": "Wrong-Pass-1"}),
            "refused",
            json!(403),
            "password does not match",
        ),
        (
            json!({"username": "acme_user"}),
            "refused",
            json!(403),
            "password does not match",
        ),
        (
            json!({"username": "acme_user", "password": "Sup3r-Secret-Pass"}),
            "admitted",
            Value::Null,
            "match the trunk's",
        ),
    ];
    for (extra, verdict, code, why) in cases {
        let reply = simulate(&app, &alice.token, call(extra.clone())).await;
        assert!(
            !reply.text.contains("Sup3r-Secret-Pass") && !reply.text.contains("Wrong-Pass-1"),
            "{}",
            reply.text
        );
        let answer = data(&reply);
        assert_eq!(
            (&answer["verdict"], &answer["sip_code"]),
            (&json!(verdict), &code),
            "{extra}: {answer}"
        );
        assert!(
            answer["reasons"].to_string().contains(why),
            "{extra}: {answer}"
        );
    }
}

#[actix_web::test]
async fn another_accounts_number_gets_exactly_the_answer_of_a_number_nobody_has() {
    let (state, store) = memory_state();
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    let bob = caller(&store, "bob@example.com");
    app.create_trunk(&alice.token, &number_trunk()).await;
    let mut bobs = number_trunk();
    bobs["phone_number"] = json!("+14155551299");
    bobs["inbound_authorization_type"] = json!("ip");
    bobs["allowed_inbound_ips"] = json!(["192.0.2.1"]);
    assert_eq!(app.create_trunk(&bob.token, &bobs).await.status, 201);
    let ask =
        |number: &str| json!({"direction": "inbound", "source_ip": "192.0.2.1", "to": number});
    let bobs_number = simulate(&app, &alice.token, ask("+14155551299")).await;
    let nobodys = simulate(&app, &alice.token, ask("+14155551288")).await;
    assert_eq!(data(&bobs_number)["verdict"], "refused");
    assert_eq!(
        bobs_number.text.replace("14155551299", "14155551288"),
        nobodys.text
    );
    // Bob's own simulation admits the same call: the rules are per account.
    assert_eq!(
        data(&simulate(&app, &bob.token, ask("+14155551299")).await)["verdict"],
        "admitted"
    );
}

#[actix_web::test]
async fn a_number_matching_none_lists_the_closest_stored_numbers_with_how_they_differ() {
    let (state, store) = memory_state();
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    app.create_trunk(&alice.token, &number_trunk()).await;
    app.create_trunk(&alice.token, &extension_trunk()).await;
    let ask =
        |number: &str| json!({"direction": "inbound", "source_ip": "192.0.2.1", "to": number});
    for (called, nearest, why) in [
        ("4155551234", "+14155551234", "lacks the leading 1"),
        ("+14155551235", "+14155551234", "one digit differs"),
        ("+442079461000", "1000", "an extension"),
    ] {
        let answer = data(&simulate(&app, &alice.token, ask(called)).await);
        assert_eq!(
            (&answer["verdict"], &answer["sip_code"]),
            (&json!("refused"), &json!(404))
        );
        let first = &answer["closest_numbers"][0];
        assert_eq!(first["phone_number"], nearest, "{called}: {answer}");
        assert!(
            first["why"].as_str().unwrap().contains(why),
            "{called}: {answer}"
        );
    }
    let far = data(&simulate(&app, &alice.token, ask("999")).await);
    assert_eq!(far["closest_numbers"], json!([]));
    let unreadable = data(&simulate(&app, &alice.token, ask("41 55")).await);
    assert_eq!(
        (&unreadable["sip_code"], &unreadable["called_number"]),
        (&json!(404), &Value::Null)
    );
}

#[actix_web::test]
async fn an_outbound_call_is_written_in_the_trunks_format_with_its_username_and_never_a_password() {
    let (state, store) = memory_state();
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    let mallory = caller(&store, "mallory@example.com");
    let mut gb = extension_trunk();
    gb["phone_number"] = json!("2000");
    let id = app.create_trunk(&alice.token, &gb).await.json()["data"]["id"]
        .as_i64()
        .unwrap();
    let reply = simulate(
        &app,
        &alice.token,
        json!({"direction": "outbound", "trunk_id": id, "to": "+442079460000"}),
    )
    .await;
    assert!(!reply.text.contains("Pbx-Secret-Pass"));
    assert_eq!(
        reply.json(),
        json!({"data": {
            "direction": "outbound", "rules": "stored", "verdict": "sent", "sip_code": null,
            "trunk_id": id, "called_number": null, "closest_numbers": null,
            "request_uri": "sip:02079460000@203.0.113.10", "to_user": "02079460000",
            "auth_username": "pbx_user", "outbound_proxy": true,
            "reasons": data(&reply)["reasons"]
        }})
    );
    let bare = data(
        &simulate(
            &app,
            &alice.token,
            json!({"direction": "outbound", "trunk_id": id, "to": "02079460000"}),
        )
        .await,
    );
    assert_eq!(
        (&bare["verdict"], &bare["sip_code"]),
        (&json!("refused"), &json!(484))
    );
    for (token, trunk) in [(&mallory.token, id), (&alice.token, id + 1)] {
        let reply = simulate(
            &app,
            token,
            json!({"direction": "outbound", "trunk_id": trunk, "to": "+442079460000"}),
        )
        .await;
        assert_eq!(
            (reply.status, reply.json()),
            (404, json!({"error": "SIP trunk not found."}))
        );
    }
}

#[actix_web::test]
async fn a_bad_body_gets_every_error_at_once() {
    let (state, store) = memory_state();
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    let reply = simulate(
        &app,
        &alice.token,
        json!({"direction": "inbound", "source_ip": "300.1.1.1", "password": 5}),
    )
    .await;
    assert_eq!(
        (reply.status, reply.json()),
        (
            422,
            json!({"message": "The given data was invalid.", "errors": {
                "to": ["The to field is required."],
                "source_ip": ["The source ip must be a valid IPv4 or IPv6 address."],
                "password": ["The password must be a string."]
            }})
        )
    );
    let reply = simulate(
        &app,
        &alice.token,
        json!({"direction": "sideways", "to": "1"}),
    )
    .await;
    assert_eq!(
        reply.json()["errors"],
        json!({"direction": ["The direction must be one of: inbound, outbound."]})
    );
    let reply = simulate(
        &app,
        &alice.token,
        json!({"direction": "outbound", "trunk_id": "1", "to": "+1"}),
    )
    .await;
    assert_eq!(
        reply.json()["errors"],
        json!({"trunk_id": ["The trunk id must be an integer."]})
    );
    let reply = simulate(&app, &alice.token, json!({})).await;
    assert_eq!(
        reply.json()["errors"],
        json!({"direction": ["The direction field is required."], "to": ["The to field is required."]})
    );
    let get = app
        .send(request("GET", SIMULATE, Some(&alice.token), None))
        .await;
    assert_eq!((get.status, get.header("allow")), (405, Some("POST")));
}
