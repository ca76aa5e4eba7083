//! The carrier prober in the real binary (issue 24, docs/diagnostics.md): carriers on
//! loopback (sipp answering OPTIONS on 127.0.0.N:5060, and an address with nothing on it),
//! probed once per period per distinct address, whatever number of trunks use it, counted
//! by outcome on `/metrics`, and the trunks counted by their carrier's state.

use std::time::{Duration, Instant};

use kamailio_adapter::testing::{carrier_address, tools_present, SippServer};
use serde_json::json;

use crate::harness::{create_user, Database, Server};

const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";

/// The value of `metric{kind="kind"}` in a scrape (0 when absent).
fn series(server: &Server, metric: &str, kind: &str) -> u64 {
    let url = server.metrics_url().expect("a metrics listener");
    let text = ureq::get(&url).call().unwrap().into_string().unwrap();
    let series = format!(r#"{metric}{{kind="{kind}"}} "#);
    text.lines()
        .find_map(|line| line.strip_prefix(&series))
        .map_or(0, |count| count.parse().unwrap())
}

/// `sip_trunks_carrier_probes_total` by outcome.
fn probes(server: &Server, outcome: &str) -> u64 {
    series(server, "sip_trunks_carrier_probes_total", outcome)
}

pub fn each_carrier_is_probed_once_a_period_however_many_trunks_use_it(database: &Database) {
    if !tools_present() {
        assert!(
            std::env::var("SIP_TRUNKS_REQUIRE_SIP_TOOLS").is_err(),
            "sipp is required here (SIP_TRUNKS_REQUIRE_SIP_TOOLS is set)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alive = carrier_address().unwrap();
    let silent = carrier_address().unwrap();
    let sipp = SippServer::start(dir.path(), "options", &alive, 5060, &[]).unwrap();
    let token = create_user(database, "carriers@example.com");
    let server = Server::start_with(database, &[("CARRIER_PROBE_EVERY_SECS", "10")]);
    for (n, address) in [&alive, &alive, &silent].into_iter().enumerate() {
        let body = json!({
            "sip_trunk_type": "number", "phone_number": format!("+1415555010{n}"),
            "sip_username": "acme_user", "sip_password": "Carrier-Pass-1",
            "sip_address": address, "sip_calling_format": "+e164",
            "inbound_authorization_type": "auth"
        });
        let (status, text) = server.call("POST", TRUNKS, Some(&token), Some(&body));
        assert_eq!(status, 201, "{text}");
    }
    // The prober looks every 5 s; both addresses are due at once.
    let deadline = Instant::now() + Duration::from_secs(15);
    while (
        probes(&server, "answered"),
        probes(&server, "icmp_unreachable"),
    ) != (1, 1)
    {
        assert!(
            Instant::now() < deadline,
            "answered {}, ICMP {}",
            probes(&server, "answered"),
            probes(&server, "icmp_unreachable")
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // Two trunks share one carrier: one probe per period, not two.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(probes(&server, "answered"), 1);
    assert_eq!(
        sipp.log().matches("options via=").count(),
        1,
        "{}",
        sipp.log()
    );
    let (stopped, log) = server.stop();
    assert!(stopped, "{log}");
}

/// A trunk whose carrier is `address`.
fn trunk_at(address: &str) -> serde_json::Value {
    json!({
        "sip_trunk_type": "number", "phone_number": "+14155550150",
        "sip_username": "acme_user", "sip_password": "Carrier-Pass-1",
        "sip_address": address, "sip_calling_format": "+e164",
        "inbound_authorization_type": "auth"
    })
}

pub fn a_probe_asked_for_shows_in_the_status_at_once_and_after_a_restart(database: &Database) {
    if !tools_present() {
        assert!(
            std::env::var("SIP_TRUNKS_REQUIRE_SIP_TOOLS").is_err(),
            "sipp is required here (SIP_TRUNKS_REQUIRE_SIP_TOOLS is set)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let alive = carrier_address().unwrap();
    let sipp = SippServer::start(dir.path(), "options_404", &alive, 5060, &[]).unwrap();
    let token = create_user(database, "status@example.com");
    // Periodic probes off (the harness's default): only the asked-for probe runs.
    let server = Server::start_with(database, &[]);
    let (status, text) = server.call("POST", TRUNKS, Some(&token), Some(&trunk_at(&alive)));
    assert_eq!(status, 201, "{text}");
    let id = serde_json::from_str::<serde_json::Value>(&text).unwrap()["data"]["id"]
        .as_i64()
        .unwrap();
    let status_path = format!("{TRUNKS}/{id}/status");
    let (code, before) = server.call("GET", &status_path, Some(&token), None);
    assert_eq!(code, 200, "{before}");
    let before: serde_json::Value = serde_json::from_str(&before).unwrap();
    assert_eq!(before["data"]["provisioning"]["state"], "none");
    assert_eq!(before["data"]["carrier"]["state"], "unknown");

    let (code, probed) = server.call("POST", &format!("{status_path}/probe"), Some(&token), None);
    assert_eq!(code, 200, "{probed}");
    let probed: serde_json::Value = serde_json::from_str(&probed).unwrap();
    let carrier = probed["data"]["carrier"].clone();
    assert_eq!(
        carrier["state"], "reachable",
        "a 404 is an answer: {carrier}"
    );
    assert_eq!(
        carrier["last_response"],
        json!({"kind": "answered", "code": 404, "reason": "Not Found"})
    );
    assert!(carrier["rtt_ms"].is_u64(), "{carrier}");
    assert_eq!(
        sipp.log().matches("options via=").count(),
        1,
        "{}",
        sipp.log()
    );
    let (code, again) = server.call("POST", &format!("{status_path}/probe"), Some(&token), None);
    assert_eq!(code, 429, "{again}");

    // Stored, not remembered: a restarted process (or another replica) answers the same.
    let (stopped, log) = server.stop();
    assert!(stopped, "{log}");
    let server = Server::start_with(database, &[]);
    let (code, after) = server.call("GET", &status_path, Some(&token), None);
    assert_eq!(code, 200, "{after}");
    let after: serde_json::Value = serde_json::from_str(&after).unwrap();
    assert_eq!(after["data"]["carrier"], carrier);
    let (stopped, log) = server.stop();
    assert!(stopped, "{log}");
}
