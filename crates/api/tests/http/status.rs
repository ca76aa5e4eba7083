//! A trunk's status and the probe a client asks for, over the in-memory store with a scripted
//! carrier probe (the real probe's SIP is proven in crates/carrier-probe and tests/e2e).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use domain::{CarrierProbe, ProbeOutcome, ProbeResponse, ProvisionFuture, Timestamp};
use serde_json::json;
use service::{CarrierProber, ProbeSchedule, Unobserved};

use crate::support::*;

/// A carrier that answers each probe with the next scripted response (then times out), and
/// counts the probes.
#[derive(Default)]
struct ScriptedCarrier {
    answers: Mutex<Vec<ProbeResponse>>,
    probes: Mutex<usize>,
}

impl CarrierProbe for ScriptedCarrier {
    fn probe<'a>(&'a self, _host: &'a str) -> ProvisionFuture<'a, ProbeOutcome> {
        Box::pin(async move {
            *self.probes.lock().unwrap() += 1;
            let mut answers = self.answers.lock().unwrap();
            let response = if answers.is_empty() {
                ProbeResponse::Timeout
            } else {
                answers.remove(0)
            };
            Ok(ProbeOutcome {
                response,
                at: Timestamp::now(),
                rtt: Some(Duration::from_millis(12)),
            })
        })
    }
}

fn with_carrier(
    answers: Vec<ProbeResponse>,
) -> (api::AppState, Arc<store::MemoryStore>, Arc<ScriptedCarrier>) {
    let (state, store) = memory_state();
    let carrier = Arc::new(ScriptedCarrier {
        answers: Mutex::new(answers),
        probes: Mutex::new(0),
    });
    let prober = Arc::new(CarrierProber::new(
        store.clone(),
        carrier.clone(),
        Arc::new(Unobserved),
        ProbeSchedule::default(),
    ));
    (state.with_prober(prober), store, carrier)
}

#[actix_web::test]
async fn without_infrastructure_the_status_says_none_and_the_carrier_is_unknown_until_probed() {
    let (state, store, _) = with_carrier(Vec::new());
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    let created = app.create_trunk(&alice.token, &number_trunk()).await;
    let id = created.json()["data"]["id"].as_i64().unwrap();
    let reply = app.trunk_status(&alice.token, id).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert_eq!(reply.header("cache-control"), Some("no-store"));
    assert_eq!(
        reply.text,
        json!({"data": {
            "provisioning": {"state": "none", "infrastructure": null, "legs": null, "last_error": null},
            "carrier": {
                "address": created.json()["data"]["sip_address"], "state": "unknown",
                "since": null, "last_probe_at": null, "last_response": null, "rtt_ms": null
            }
        }})
        .to_string(),
        "keys in the documented order"
    );
}

#[actix_web::test]
async fn a_probe_answers_the_new_status_and_a_second_within_ten_seconds_gets_429() {
    let (state, store, carrier) = with_carrier(vec![ProbeResponse::answered(404, "Not Found")]);
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    let id = app.create_trunk(&alice.token, &number_trunk()).await.json()["data"]["id"]
        .as_i64()
        .unwrap();
    let reply = app.probe_trunk(&alice.token, id).await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let carrier_view = &reply.json()["data"]["carrier"];
    assert_eq!(carrier_view["state"], "reachable", "a 404 is an answer");
    assert_eq!(
        carrier_view["last_response"],
        json!({"kind": "answered", "code": 404, "reason": "Not Found"})
    );
    assert_eq!(carrier_view["rtt_ms"], 12);
    assert!(carrier_view["since"].is_string() && carrier_view["last_probe_at"].is_string());
    // The status reads the same from the store.
    let status = app.trunk_status(&alice.token, id).await.json();
    assert_eq!(&status["data"]["carrier"], carrier_view);

    let again = app.probe_trunk(&alice.token, id).await;
    assert_eq!(
        (again.status, again.json()),
        (
            429,
            json!({"message": "This trunk's carrier was probed less than 10 seconds ago. Try again later."})
        )
    );
    let wait: u64 = again.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=10).contains(&wait), "{wait}");
    assert_eq!(
        *carrier.probes.lock().unwrap(),
        1,
        "the refused probe sent nothing"
    );
}

#[actix_web::test]
async fn another_accounts_trunk_is_a_404_for_status_and_probe_and_is_never_probed() {
    let (state, store, carrier) = with_carrier(Vec::new());
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    let mallory = caller(&store, "mallory@example.com");
    let id = app.create_trunk(&alice.token, &number_trunk()).await.json()["data"]["id"]
        .as_i64()
        .unwrap();
    for reply in [
        app.trunk_status(&mallory.token, id).await,
        app.probe_trunk(&mallory.token, id).await,
        app.probe_trunk(&alice.token, id + 1).await,
    ] {
        assert_eq!(
            (reply.status, reply.json()),
            (404, json!({"error": "SIP trunk not found."}))
        );
    }
    assert_eq!(*carrier.probes.lock().unwrap(), 0);
    // Mallory's attempts took no slot of Alice's.
    assert_eq!(app.probe_trunk(&alice.token, id).await.status, 200);
}

#[actix_web::test]
async fn status_needs_a_token_and_its_paths_take_only_their_methods() {
    let (state, store, _) = with_carrier(Vec::new());
    let app = TestApp::spawn(state).await;
    let alice = caller(&store, "alice@example.com");
    let id = app.create_trunk(&alice.token, &number_trunk()).await.json()["data"]["id"]
        .as_i64()
        .unwrap();
    let status = format!("{}/status", trunk_path(id));
    let probe = format!("{status}/probe");
    let unauthenticated = app.send(request("GET", &status, None, None)).await;
    assert_eq!(unauthenticated.status, 401);
    for (method, path, allow) in [
        ("POST", &status, "GET"),
        ("DELETE", &status, "GET"),
        ("GET", &probe, "POST"),
    ] {
        let reply = app
            .send(request(method, path, Some(&alice.token), None))
            .await;
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.header("allow"), Some(allow));
    }
    let not_an_id = app
        .send(request(
            "GET",
            "/api/user/phone-numbers/sip-trunks/abc/status",
            Some(&alice.token),
            None,
        ))
        .await;
    assert_eq!(
        (not_an_id.status, not_an_id.json()),
        (404, json!({"message": "Not found."}))
    );
}
