//! The binary provisioning on LiveKit (the stand-in, in this test process): the walk-through
//! with legs, the configuration rules, `reconcile`, secrets kept out of the log at the most
//! verbose level, and SIGKILL between two provisioning steps healed after a restart.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use livekit_standin::{Fault, StandIn};
use serde_json::{json, Value};

use crate::harness::{create_user, run_cli_with, Database, Server};

const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";
const PASSWORD: &str = "Livekit-E2e-Secret-Pass";

fn trunk(phone: &str) -> Value {
    json!({
        "sip_trunk_type": "number", "phone_number": phone, "sip_username": "acme_user",
        "sip_password": PASSWORD, "sip_address": "sip.carrier.example",
        "sip_calling_format": "+e164", "inbound_authorization_type": "auth"
    })
}

fn livekit_env(standin: &StandIn) -> Vec<(&'static str, String)> {
    vec![
        ("LIVEKIT_URL", standin.url()),
        ("LIVEKIT_API_KEY", standin.api_key().to_owned()),
        ("LIVEKIT_API_SECRET", standin.api_secret().to_owned()),
    ]
}

fn start(database: &Database, standin: &StandIn, extra: &[(&str, &str)]) -> Server {
    let env = livekit_env(standin);
    let mut all: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    all.extend_from_slice(extra);
    Server::start_with(database, &all)
}

fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

/// The leg ids the service shows for its trunks (get of each listed one).
fn referenced(server: &Server, token: &str) -> BTreeSet<String> {
    let (_, list) = server.call("GET", TRUNKS, Some(token), None);
    let mut legs = BTreeSet::new();
    for item in json(&list)["data"].as_array().unwrap() {
        let (_, one) = server.call(
            "GET",
            &format!("{TRUNKS}/{}", item["id"]),
            Some(token),
            None,
        );
        for field in ["inbound_trunk_id", "outbound_trunk_id"] {
            legs.insert(json(&one)["data"][field].as_str().unwrap().to_owned());
        }
    }
    legs
}

fn held(standin: &StandIn) -> BTreeSet<String> {
    standin.trunk_ids().into_iter().collect()
}

pub fn livekit_holds_the_legs_of_every_trunk_through_create_update_and_delete(database: &Database) {
    let standin = StandIn::start();
    let token = create_user(database, "lk@example.com");
    let server = start(database, &standin, &[("RUST_LOG", "trace")]);
    let (status, body) = server.call("GET", "/readyz", None, None);
    assert_eq!(
        (status, body.clone()),
        (
            200,
            format!(
                r#"{{"status":"ready","provisioning":"livekit","cache_coherence":"{}","rate_limits":"local"}}"#,
                crate::harness::coherence(database)
            )
        )
    );
    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&trunk("+14155551234")));
    assert_eq!(status, 201, "{body}");
    let created = json(&body)["data"].clone();
    let id = created["id"].as_i64().unwrap();
    assert_eq!(held(&standin), referenced(&server, &token));
    let (status, body) = server.call(
        "PUT",
        &format!("{TRUNKS}/{id}"),
        Some(&token),
        Some(&json!({"sip_password": "Another-Secret-Pass-2"})),
    );
    assert_eq!(status, 200, "{body}");
    let updated = json(&body)["data"].clone();
    for field in ["inbound_trunk_id", "outbound_trunk_id"] {
        assert_ne!(updated[field], created[field], "{field} re-created");
    }
    assert_eq!(held(&standin), referenced(&server, &token));
    assert_eq!(standin.inbound()[0].auth_password, "Another-Secret-Pass-2");
    // Another trunk's number: the contract's 422.
    standin.insert_inbound(livekit_protocol::SipInboundTrunkInfo {
        numbers: vec!["+14155550000".into()],
        ..Default::default()
    });
    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&trunk("+14155550000")));
    assert_eq!(status, 422, "{body}");
    assert!(body.contains("The phone number is already connected to another SIP trunk."));
    let (status, _) = server.call(
        "DELETE",
        &format!("/api/user/phone-numbers/{id}"),
        Some(&token),
        None,
    );
    assert_eq!(status, 200);
    assert_eq!(
        held(&standin).len(),
        1,
        "only the other system's trunk is left"
    );
    let (clean, log) = server.stop();
    assert!(clean, "{log}");
    // At the most verbose level, neither SIP passwords nor the LiveKit secret nor the token.
    for secret in [
        PASSWORD,
        "Another-Secret-Pass-2",
        standin.api_secret(),
        token.split('|').nth(1).unwrap(),
    ] {
        assert!(!log.contains(secret), "a secret is in the log");
    }
    assert!(log.contains("livekit"), "the log names the infrastructure");
}

pub fn a_half_livekit_configuration_refuses_to_start_and_none_means_registry_only(
    database: &Database,
) {
    let output = run_cli_with(
        database,
        &[("LIVEKIT_URL", "http://127.0.0.1:9")],
        &["serve", "--bind", "127.0.0.1:0"],
    );
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("LiveKit is half configured")
            && stderr.contains("LIVEKIT_API_KEY")
            && stderr.contains("LIVEKIT_API_SECRET"),
        "{stderr}"
    );
    let output = run_cli_with(database, &[], &["reconcile"]);
    assert_eq!(output.status.code(), Some(1));
    let help = run_cli_with(database, &[], &["reconcile", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    assert!(
        help.contains("(LiveKit or Kamailio; none is configured here: see --provisioner)"),
        "{help}"
    );
    let server = Server::start(database);
    let (_, body) = server.call("GET", "/readyz", None, None);
    assert_eq!(
        body,
        r#"{"status":"ready","provisioning":"off","cache_coherence":"local","rate_limits":"local"}"#
    );
    let (_, log) = server.stop();
    assert!(log.contains("registry only"), "{log}");
}

pub fn reconcile_lists_then_heals_what_livekit_lost(database: &Database) {
    let standin = StandIn::start();
    let token = create_user(database, "rc@example.com");
    let server = start(database, &standin, &[]);
    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&trunk("+14155551234")));
    assert_eq!(status, 201, "{body}");
    let outbound = json(&body)["data"]["outbound_trunk_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (clean, _) = server.stop();
    assert!(clean);
    assert!(standin.remove(&outbound));
    let env = livekit_env(&standin);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let help = run_cli_with(database, &env, &["help", "reconcile"]);
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    assert!(
        help.contains("Make LiveKit (the voice infrastructure configured here) hold exactly"),
        "{help}"
    );
    let dry = run_cli_with(database, &env, &["reconcile", "--dry-run"]);
    let printed = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(dry.status.success(), "{printed}");
    assert!(
        printed.contains("would mark trunk") && printed.contains("outbound leg missing"),
        "{printed}"
    );
    assert_eq!(standin.trunk_ids().len(), 1, "a dry run changes nothing");
    let run = run_cli_with(database, &env, &["reconcile"]);
    let printed = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(printed.contains("repair trunk"), "{printed}");
    assert_eq!(standin.trunk_ids().len(), 2);
    let again = run_cli_with(database, &env, &["reconcile"]);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("LiveKit holds exactly the legs the stored trunks reference"),
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
    let server = start(database, &standin, &[]);
    assert_eq!(held(&standin), referenced(&server, &token));
}

/// Polls until `check` holds or `limit` passes.
fn eventually(limit: Duration, mut check: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if check() {
            return true;
        }
        thread::sleep(Duration::from_millis(200));
    }
    check()
}

pub fn a_sigkill_between_two_provisioning_steps_is_healed_after_a_restart(database: &Database) {
    let standin = Arc::new(StandIn::start());
    let token = create_user(database, "kill@example.com");
    let server = Arc::new(start(database, &standin, &[]));
    // A trunk whose update will die after its old inbound leg was removed.
    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&trunk("+14155550001")));
    assert_eq!(status, 201, "{body}");
    let updated_id = json(&body)["data"]["id"].as_i64().unwrap();
    // Every create now hangs for 2 s: the process is killed while waiting.
    standin.fail_next_on(
        "CreateSIPOutboundTrunk",
        1,
        Fault::Delay(Duration::from_secs(2)),
    );
    standin.fail_next_on(
        "CreateSIPInboundTrunk",
        1,
        Fault::Delay(Duration::from_secs(2)),
    );
    let creating = {
        let (server, token) = (server.clone(), token.clone());
        thread::spawn(move || {
            server.try_call("POST", TRUNKS, Some(&token), Some(&trunk("+14155550002")))
        })
    };
    let updating = {
        let (server, token) = (server.clone(), token.clone());
        thread::spawn(move || {
            server.try_call(
                "PUT",
                &format!("{TRUNKS}/{updated_id}"),
                Some(&token),
                Some(&json!({"phone_number": "+14155550003"})),
            )
        })
    };
    thread::sleep(Duration::from_millis(800));
    server.kill();
    assert_eq!(creating.join().unwrap(), None, "the create got no answer");
    assert_eq!(updating.join().unwrap(), None, "the update got no answer");
    drop(server);
    // The delayed calls complete on the stand-in after their client died.
    thread::sleep(Duration::from_millis(2000));
    let server = start(database, &standin, &[]);
    // The dead requests' leases (30 s) run out, then the reconciler rolls the create back
    // and gives the updated trunk legs for its stored settings.
    let healed = eventually(Duration::from_secs(60), || {
        held(&standin) == referenced(&server, &token)
            && standin.inbound().len() == 1
            && standin.outbound().len() == 1
    });
    let (_, list) = server.call("GET", TRUNKS, Some(&token), None);
    let (_, log) = server.stop();
    assert!(
        healed,
        "LiveKit {:?} vs stored {list}\n{log}",
        standin.trunk_ids()
    );
    let list = json(&list);
    let items = list["data"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the unfinished create is gone: {list}");
    assert_eq!(
        items[0]["phone_number"], "+14155550001",
        "the update that died changed nothing"
    );
    assert_eq!(standin.inbound()[0].numbers, ["+14155550001"]);
}

pub fn a_create_and_an_update_retried_right_after_a_sigkill_get_their_true_answers(
    database: &Database,
) {
    let standin = Arc::new(StandIn::start());
    let token = create_user(database, "retry@example.com");
    let server = Arc::new(start(database, &standin, &[]));
    let (status, body) = server.call("POST", TRUNKS, Some(&token), Some(&trunk("+14155550001")));
    assert_eq!(status, 201, "{body}");
    let updated_id = json(&body)["data"]["id"].as_i64().unwrap();
    // The inbound legs of the next create and update hang for 2 s: the process dies meanwhile.
    standin.fail_next_on(
        "CreateSIPInboundTrunk",
        2,
        Fault::Delay(Duration::from_secs(2)),
    );
    let update_path = format!("{TRUNKS}/{updated_id}");
    let new_number = json!({"phone_number": "+14155550003"});
    let dying = [
        ("POST", TRUNKS.to_owned(), trunk("+14155550002")),
        ("PUT", update_path.clone(), new_number.clone()),
    ]
    .map(|(method, path, body)| {
        let (server, token) = (server.clone(), token.clone());
        thread::spawn(move || server.try_call(method, &path, Some(&token), Some(&body)))
    });
    thread::sleep(Duration::from_millis(800));
    server.kill();
    for request in dying {
        assert_eq!(request.join().unwrap(), None, "the request got no answer");
    }
    drop(server);

    // The client retries at once, against the restarted service.
    let server = start(database, &standin, &[]);
    let retried = Instant::now();
    let (created, created_body) =
        server.call("POST", TRUNKS, Some(&token), Some(&trunk("+14155550002")));
    let (updated, updated_body) = server.call("PUT", &update_path, Some(&token), Some(&new_number));
    let waited = retried.elapsed();
    let (_, list) = server.call("GET", TRUNKS, Some(&token), None);
    let converged = eventually(Duration::from_secs(30), || {
        held(&standin) == referenced(&server, &token)
    });
    let (_, log) = server.stop();
    assert_eq!(created, 201, "the retried create: {created_body}\n{log}");
    assert_eq!(updated, 200, "the retried update: {updated_body}\n{log}");
    let numbers: BTreeSet<String> = json(&list)["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["phone_number"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        numbers,
        BTreeSet::from(["+14155550002".to_owned(), "+14155550003".to_owned()]),
        "{list}"
    );
    assert!(
        converged,
        "LiveKit {:?} vs stored {list}\n{log}",
        standin.trunk_ids()
    );
    let mut inbound: Vec<Vec<String>> = standin.inbound().into_iter().map(|l| l.numbers).collect();
    inbound.sort();
    assert_eq!(inbound, [["+14155550002"], ["+14155550003"]]);
    eprintln!("both retries answered within {waited:?} of the restart");
}
