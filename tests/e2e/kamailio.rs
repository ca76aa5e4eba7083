//! The binary provisioning on a private Kamailio (`deploy/kamailio/kamailio.cfg`), proven
//! with real SIP: sipp plays the carriers, the PBX and the voice platform on 127.0.0.x. The
//! edge's tables are on the same kind of database as the service's (SQLite, or a database of
//! its own on the PostgreSQL server). Skipped with a note when `kamailio` or `sipp` is
//! missing, unless `SIP_TRUNKS_REQUIRE_SIP_TOOLS=1` (`.ci/run`), which makes that a failure.

use std::net::UdpSocket;
use std::thread;
use std::time::{Duration, Instant};

use kamailio_adapter::testing::{
    carrier_address, check_digest, free_tcp_port, free_udp_port, sipp_call, tools_present, Edge,
    EdgeStore, SippRun, SippServer,
};
use serde_json::{json, Value};

use crate::harness::{create_user, run_cli_with, Database, Server};

const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";

/// What one test needs: the edge, the platform answering its calls, and the service.
pub(crate) struct Rig {
    pub(crate) edge: Edge,
    platform: SippServer,
    pub(crate) target: String,
    pub(crate) target_v6: String,
}

pub(crate) fn rig(database: &Database) -> Option<Rig> {
    if !tools_present() {
        assert!(
            std::env::var("SIP_TRUNKS_REQUIRE_SIP_TOOLS").is_err(),
            "kamailio and sipp are required here (SIP_TRUNKS_REQUIRE_SIP_TOOLS is set)"
        );
        eprintln!("kamailio or sipp missing: skipped");
        return None;
    }
    let store = if database.url.starts_with("postgres") {
        EdgeStore::Postgres(std::env::var("TEST_DATABASE_URL").unwrap())
    } else {
        EdgeStore::Sqlite
    };
    let platform_port = free_udp_port().unwrap();
    let mut edge = Edge::prepare(
        store,
        &format!("sip:127.0.0.1:{platform_port}"),
        "127.0.0.1",
    )
    .unwrap();
    edge.start().unwrap();
    let platform =
        SippServer::start(edge.dir(), "answer", "127.0.0.1", platform_port, &[]).unwrap();
    Some(Rig {
        target: format!("127.0.0.1:{}", edge.sip_port),
        target_v6: format!("[::1]:{}", edge.sip_port),
        edge,
        platform,
    })
}

impl Rig {
    pub(crate) fn start(&self, database: &Database, extra: &[(&str, &str)]) -> Server {
        let rpc = self.edge.rpc_url();
        let mut env = vec![
            ("KAMAILIO_DB_URL", self.edge.database_url.as_str()),
            ("KAMAILIO_RPC_URL", rpc.as_str()),
            ("KAMAILIO_RPC_SECRET", self.edge.rpc_secret()),
        ];
        env.extend_from_slice(extra);
        Server::start_with(database, &env)
    }

    /// A call from `source` to `number`, expected `answered` or refused (403/404).
    fn call(&self, source: &str, number: &str, answered: bool, extra: &[&str]) -> SippRun {
        let target = if source.contains(':') {
            &self.target_v6
        } else {
            &self.target
        };
        let scenario = if answered { "call" } else { "refused" };
        sipp_call(self.edge.dir(), scenario, source, target, number, extra)
    }

    #[track_caller]
    fn expect(&self, what: &str, run: SippRun) {
        assert!(
            run.passed,
            "{what}: {}\nkamailio:\n{}",
            run.errors,
            tail(&self.edge.log())
        );
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(15)..].join("\n")
}

/// sipp's arguments to answer a digest challenge as `user` with `password`.
fn digest<'a>(user: &'a str, password: &'a str) -> [&'a str; 4] {
    ["-au", user, "-ap", password]
}

pub(crate) fn json(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|_| panic!("not JSON: {text}"))
}

pub(crate) fn create(server: &Server, token: &str, body: &Value) -> i64 {
    let (status, text) = server.call("POST", TRUNKS, Some(token), Some(body));
    assert_eq!(status, 201, "{text}");
    json(&text)["data"]["id"].as_i64().unwrap()
}

fn update(server: &Server, token: &str, id: i64, body: &Value) {
    let (status, text) = server.call("PUT", &format!("{TRUNKS}/{id}"), Some(token), Some(body));
    assert_eq!(status, 200, "{text}");
}

/// A PUT the edge cannot take: the contract's 500, nothing changed.
#[track_caller]
fn update_fails_with_500(server: &Server, token: &str, id: i64, body: &Value) {
    let (status, text) = server.call("PUT", &format!("{TRUNKS}/{id}"), Some(token), Some(body));
    assert_eq!(
        (status, json(&text)),
        (
            500,
            json!({"error": "Failed to update SIP trunk. Please try again or contact support."})
        )
    );
}

/// `/readyz` still answers 200 and names the edge unreachable.
#[track_caller]
fn says_kamailio_is_unreachable(server: &Server) {
    let (status, ready) = server.call("GET", "/readyz", None, None);
    assert_eq!(status, 200, "{ready}");
    assert_eq!(
        json(&ready)["provisioning"],
        "kamailio (unreachable)",
        "{ready}"
    );
}

pub(crate) fn ip_trunk(number: &str, allowed: &[&str]) -> Value {
    json!({
        "sip_trunk_type": "number", "phone_number": number, "sip_username": "pbx_user",
        "sip_password": "Ip-Trunk-Pass-1", "sip_address": "127.0.0.9",
        "sip_calling_format": "+e164", "inbound_authorization_type": "ip",
        "allowed_inbound_ips": allowed, "country_code": "US"
    })
}

pub(crate) fn auth_trunk(number: &str, username: &str, password: &str, address: &str) -> Value {
    json!({
        "sip_trunk_type": "number", "phone_number": number, "sip_username": username,
        "sip_password": password, "sip_address": address,
        "sip_calling_format": "+e164", "inbound_authorization_type": "auth",
        "country_code": "US"
    })
}

pub fn kamailio_enforces_on_sip_traffic_what_the_api_stores(database: &Database) {
    let Some(rig) = rig(database) else { return };
    let alice = create_user(database, "alice@example.com");
    let bob = create_user(database, "bob@example.com");
    let server = rig.start(database, &[("RUST_LOG", "trace")]);
    let (_, ready) = server.call("GET", "/readyz", None, None);
    assert_eq!(json(&ready)["provisioning"], "kamailio", "{ready}");
    // The edge's database URL (which may hold a password) is in a 0600 file, not on the
    // command line every local user can read.
    let command_line = rig.edge.command_line().unwrap();
    for leak in ["DBURL", "postgres://", "sqlite://", "edge.db"] {
        assert!(!command_line.contains(leak), "{leak} in {command_line}");
    }

    // ip: the allow-list and nothing else; a change through the API takes effect.
    let ip = create(&server, &alice, &ip_trunk("+14155550101", &["127.0.0.2"]));
    rig.expect(
        "an allowed source is answered",
        rig.call("127.0.0.2", "+14155550101", true, &[]),
    );
    rig.expect(
        "another source is refused",
        rig.call("127.0.0.3", "+14155550101", false, &[]),
    );
    assert!(
        rig.platform.log().contains(&format!("answered trunk={ip}")),
        "the platform is told the trunk: {}",
        rig.platform.log()
    );
    update(
        &server,
        &alice,
        ip,
        &json!({"allowed_inbound_ips": ["127.0.0.3", "127.0.1.0/24"]}),
    );
    rig.expect(
        "the old address is refused",
        rig.call("127.0.0.2", "+14155550101", false, &[]),
    );
    rig.expect(
        "the new address is answered",
        rig.call("127.0.0.3", "+14155550101", true, &[]),
    );
    rig.expect(
        "the new range is answered",
        rig.call("127.0.1.200", "+14155550101", true, &[]),
    );
    // Carriers send the number with or without its +.
    rig.expect(
        "the number without + is the same",
        rig.call("127.0.0.3", "14155550101", true, &[]),
    );
    if rig.edge.ipv6 {
        rig.expect(
            "::1 is not allowed yet",
            rig.call("::1", "+14155550101", false, &[]),
        );
        update(
            &server,
            &alice,
            ip,
            &json!({"allowed_inbound_ips": ["::1"]}),
        );
        rig.expect(
            "IPv6 is answered once allowed",
            rig.call("::1", "+14155550101", true, &[]),
        );
        rig.expect(
            "and 127.0.0.3 no longer",
            rig.call("127.0.0.3", "+14155550101", false, &[]),
        );
    }

    // auth: the digest; a password change through the API takes effect.
    let auth = create(
        &server,
        &alice,
        &auth_trunk("+14155550102", "acme", "Alice-Pass-1", "127.0.0.9"),
    );
    rig.expect(
        "the right digest is answered",
        rig.call(
            "127.0.0.4",
            "+14155550102",
            true,
            &digest("acme", "Alice-Pass-1"),
        ),
    );
    rig.expect(
        "a wrong password is refused",
        rig.call(
            "127.0.0.4",
            "+14155550102",
            false,
            &digest("acme", "Alice-Pass-2"),
        ),
    );
    rig.expect(
        "an unknown user is refused",
        rig.call(
            "127.0.0.4",
            "+14155550102",
            false,
            &digest("mallory", "Alice-Pass-1"),
        ),
    );
    update(
        &server,
        &alice,
        auth,
        &json!({"sip_password": "Alice-Pass-2"}),
    );
    rig.expect(
        "the old password is refused",
        rig.call(
            "127.0.0.4",
            "+14155550102",
            false,
            &digest("acme", "Alice-Pass-1"),
        ),
    );
    rig.expect(
        "the new password is answered",
        rig.call(
            "127.0.0.4",
            "+14155550102",
            true,
            &digest("acme", "Alice-Pass-2"),
        ),
    );

    // Another tenant with overlapping settings: the same username, another password, an
    // allow-list that names alice's caller. Neither opens the other's trunk.
    create(
        &server,
        &bob,
        &auth_trunk("+14155550202", "acme", "Bob-Pass-1", "127.0.0.9"),
    );
    create(&server, &bob, &ip_trunk("+14155550201", &["127.0.0.5"]));
    rig.expect(
        "bob's password does not open alice's number",
        rig.call(
            "127.0.0.4",
            "+14155550102",
            false,
            &digest("acme", "Bob-Pass-1"),
        ),
    );
    rig.expect(
        "bob's password opens bob's number",
        rig.call(
            "127.0.0.4",
            "+14155550202",
            true,
            &digest("acme", "Bob-Pass-1"),
        ),
    );
    rig.expect(
        "alice's password does not open bob's number",
        rig.call(
            "127.0.0.4",
            "+14155550202",
            false,
            &digest("acme", "Alice-Pass-2"),
        ),
    );
    let (status, text) = server.call(
        "POST",
        TRUNKS,
        Some(&bob),
        Some(&ip_trunk("+14155550101", &["127.0.0.5"])),
    );
    assert_eq!(status, 422, "one number, one trunk on the edge: {text}");
    assert!(
        text.contains("The phone number is already connected to another SIP trunk."),
        "{text}"
    );
    rig.expect(
        "bob's allowed address does not open alice's ip trunk",
        rig.call("127.0.0.5", "+14155550101", false, &[]),
    );
    rig.expect(
        "nor alice's bob's",
        rig.call(
            if rig.edge.ipv6 { "::1" } else { "127.0.0.3" },
            "+14155550201",
            false,
            &[],
        ),
    );

    // Outbound: the carrier challenges, the trunk's credentials answer, the number is
    // written in the trunk's calling format, and a format change takes effect.
    let carrier_ip = carrier_address().unwrap();
    let carrier = SippServer::start(
        rig.edge.dir(),
        "carrier",
        &carrier_ip,
        5060,
        &["-set", "user", "out_user", "-set", "password", "Out-Pass-1"],
    )
    .unwrap();
    let out = create(
        &server,
        &alice,
        &auth_trunk("+14155550103", "out_user", "Out-Pass-1", &carrier_ip),
    );
    let header = format!("X-Sip-Trunk: {out}");
    let platform_proof = rig.edge.platform_secret_header();
    for (change, called, written) in [
        (json!({}), "+14155559876", "+14155559876"),
        (
            json!({"sip_calling_format": "e164"}),
            "+14155559876",
            "14155559876",
        ),
        (
            json!({"sip_calling_format": "national"}),
            "+14155559876",
            "4155559876",
        ),
        (
            json!({"country_code": "GB"}),
            "+442079460000",
            "02079460000",
        ),
        (
            json!({"country_code": "GB"}),
            "+14155559876",
            "+14155559876",
        ),
    ] {
        if change != json!({}) {
            update(&server, &alice, out, &change);
        }
        let run = rig.call(
            "127.0.0.1",
            called,
            true,
            &["-key", "extra", &header, "-key", "extra2", &platform_proof],
        );
        rig.expect(&format!("outbound after {change}"), run);
        let last = carrier
            .log()
            .lines()
            .rev()
            .find(|line| line.starts_with("called="))
            .unwrap_or_default()
            .to_owned();
        assert_eq!(
            last,
            format!("called={written}"),
            "after {change}: {}",
            carrier.log()
        );
    }
    every_retry_has_a_higher_cseq(&carrier.log(), 5);
    // A carrier that challenges as a proxy (407): the same credentials, checked here.
    let proxy_ip = carrier_address().unwrap();
    let proxy = SippServer::start(rig.edge.dir(), "carrier_407", &proxy_ip, 5060, &[]).unwrap();
    let via_proxy = create(
        &server,
        &alice,
        &auth_trunk("+14155550104", "proxy_user", "Proxy-Pass-1", &proxy_ip),
    );
    let header_407 = format!("X-Sip-Trunk: {via_proxy}");
    rig.expect(
        "a 407 is answered",
        rig.call(
            "127.0.0.1",
            "+14155559876",
            true,
            &[
                "-key",
                "extra",
                &header_407,
                "-key",
                "extra2",
                &platform_proof,
            ],
        ),
    );
    let credentials = proxy
        .log()
        .lines()
        .find_map(|line| line.strip_prefix("proxy-auth=").map(str::to_owned))
        .unwrap_or_else(|| panic!("no Proxy-Authorization: {}", proxy.log()));
    check_digest(&credentials, "INVITE", "proxy_user", "Proxy-Pass-1").unwrap();
    every_retry_has_a_higher_cseq(&proxy.log(), 1);
    // A new sip_address through the API: the next call goes there.
    update(&server, &alice, out, &json!({"sip_address": proxy_ip}));
    rig.expect(
        "the new address is called",
        rig.call(
            "127.0.0.1",
            "+14155559876",
            true,
            &["-key", "extra", &header, "-key", "extra2", &platform_proof],
        ),
    );
    let credentials = proxy
        .log()
        .lines()
        .rev()
        .find_map(|line| line.strip_prefix("proxy-auth=").map(str::to_owned))
        .unwrap();
    check_digest(&credentials, "INVITE", "out_user", "Out-Pass-1").unwrap();
    update(&server, &alice, out, &json!({"sip_address": carrier_ip}));
    drop(proxy);
    let (_, one) = server.call("GET", &format!("{TRUNKS}/{out}"), Some(&alice), None);
    assert!(
        json(&one)["data"]["outbound_trunk_id"]
            .as_str()
            .unwrap()
            .starts_with("KM_"),
        "{one}"
    );
    // The carrier refuses other credentials: a new address and username through the API.
    update(
        &server,
        &alice,
        out,
        &json!({"sip_username": "someone_else"}),
    );
    rig.expect(
        "the carrier refuses credentials it does not know",
        rig.call(
            "127.0.0.1",
            "+14155559876",
            false,
            &["-key", "extra", &header, "-key", "extra2", &platform_proof],
        ),
    );

    // Delete: every row goes; the next call is refused.
    let (status, text) = server.call("DELETE", &format!("{TRUNKS}/{auth}"), Some(&alice), None);
    assert_eq!(status, 200, "{text}");
    rig.expect(
        "a deleted trunk's number is refused",
        rig.call(
            "127.0.0.4",
            "+14155550102",
            false,
            &digest("acme", "Alice-Pass-2"),
        ),
    );
    rig.expect(
        "bob's trunk with the same username still works",
        rig.call(
            "127.0.0.4",
            "+14155550202",
            true,
            &digest("acme", "Bob-Pass-1"),
        ),
    );

    let (_, log) = server.stop();
    for secret in [
        "Alice-Pass-1",
        "Alice-Pass-2",
        "Bob-Pass-1",
        "Out-Pass-1",
        "Proxy-Pass-1",
        "Ip-Trunk-Pass-1",
        &alice,
        &bob,
    ] {
        assert!(!log.contains(secret), "a secret in the log at trace level");
    }
    assert!(
        !log.contains(&rig.edge.database_url) || !rig.edge.database_url.contains('@'),
        "the database URL is not logged"
    );
}

pub fn kamailio_down_during_a_write_gives_the_500_or_converges_once_it_is_back(
    database: &Database,
) {
    let Some(mut rig) = rig(database) else { return };
    let alice = create_user(database, "down@example.com");
    let server = rig.start(database, &[]);
    let ip = create(&server, &alice, &ip_trunk("+14155550301", &["127.0.0.2"]));
    rig.expect(
        "answered before",
        rig.call("127.0.0.2", "+14155550301", true, &[]),
    );

    rig.edge.stop();
    // Still ready (the registry serves), and saying the edge does not answer.
    says_kamailio_is_unreachable(&server);
    // An allow-list must be reloaded into Kamailio: without it, the contract's 500 and the
    // stored trunk as it was.
    update_fails_with_500(
        &server,
        &alice,
        ip,
        &json!({"allowed_inbound_ips": ["127.0.0.3"]}),
    );
    let (status, text) = server.call(
        "POST",
        TRUNKS,
        Some(&alice),
        Some(&ip_trunk("+14155550302", &["127.0.0.3"])),
    );
    assert_eq!(
        (status, json(&text)),
        (
            500,
            json!({"error": "Failed to create SIP trunk. Please try again or contact support."})
        )
    );
    let (_, list) = server.call("GET", TRUNKS, Some(&alice), None);
    let listed = json(&list)["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1, "{list}");
    assert_eq!(
        listed[0]["allowed_inbound_ips"],
        json!(["127.0.0.2"]),
        "{list}"
    );
    // Credentials and outbound legs are rows only: accepted while Kamailio is down, and in
    // effect once it is back.
    let auth = create(
        &server,
        &alice,
        &auth_trunk("+14155550303", "late", "Late-Pass-1", "127.0.0.9"),
    );

    rig.edge.start().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, ready) = server.call("GET", "/readyz", None, None);
        if json(&ready)["provisioning"] == "kamailio" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {ready} with Kamailio back"
        );
        thread::sleep(Duration::from_millis(200));
    }
    // The failed update never touched the old inbound leg (make before break): it is
    // answered as soon as Kamailio is back.
    let deadline = Instant::now() + Duration::from_secs(45);
    loop {
        let run = rig.call("127.0.0.2", "+14155550301", true, &[]);
        if run.passed {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the old allow-list is not answered after the restart: {}",
            run.errors
        );
        thread::sleep(Duration::from_millis(500));
    }
    rig.expect(
        "the refused change is not in effect",
        rig.call("127.0.0.3", "+14155550301", false, &[]),
    );
    rig.expect(
        "the trunk made while it was down works",
        rig.call(
            "127.0.0.4",
            "+14155550303",
            true,
            &["-au", "late", "-ap", "Late-Pass-1"],
        ),
    );
    let _ = auth;
}

pub fn a_failed_reload_leaves_the_edge_taking_calls_exactly_as_before(database: &Database) {
    let Some(rig) = rig(database) else { return };
    let alice = create_user(database, "swap@example.com");
    let server = rig.start(database, &[]);
    let ip = create(&server, &alice, &ip_trunk("+14155550501", &["127.0.0.2"]));
    rig.expect(
        "answered before",
        rig.call("127.0.0.2", "+14155550501", true, &[]),
    );
    server.stop();

    // The same service with Kamailio's RPC out of reach (SIP is up): no allow-list reloads.
    let nobody = format!("http://127.0.0.1:{}/RPC", free_tcp_port().unwrap());
    let server = rig.start(database, &[("KAMAILIO_RPC_URL", nobody.as_str())]);
    says_kamailio_is_unreachable(&server);
    update_fails_with_500(
        &server,
        &alice,
        ip,
        &json!({"allowed_inbound_ips": ["127.0.0.3"]}),
    );
    // At once, and after the reconciler had its look: the old leg takes the calls, the
    // refused change is nowhere.
    for when in ["right after the 500", "a reconciler pass later"] {
        rig.expect(
            &format!("the old source is answered {when}"),
            rig.call("127.0.0.2", "+14155550501", true, &[]),
        );
        rig.expect(
            &format!("the refused source is refused {when}"),
            rig.call("127.0.0.3", "+14155550501", false, &[]),
        );
        thread::sleep(Duration::from_secs(3));
    }
    let (_, one) = server.call("GET", &format!("{TRUNKS}/{ip}"), Some(&alice), None);
    assert_eq!(
        json(&one)["data"]["allowed_inbound_ips"],
        json!(["127.0.0.2"]),
        "{one}"
    );
    server.stop();

    // With the RPC back, the same change goes through, make before break.
    let server = rig.start(database, &[]);
    update(
        &server,
        &alice,
        ip,
        &json!({"allowed_inbound_ips": ["127.0.0.3"]}),
    );
    rig.expect(
        "the new source is answered",
        rig.call("127.0.0.3", "+14155550501", true, &[]),
    );
    rig.expect(
        "the old source is refused",
        rig.call("127.0.0.2", "+14155550501", false, &[]),
    );
    let (_, one) = server.call("GET", &format!("{TRUNKS}/{ip}"), Some(&alice), None);
    // The edge holds exactly the two legs the trunk references: the old inbound leg and
    // the failed attempt's inactive rows are gone.
    let data = &json(&one)["data"];
    let mut referenced = vec![
        data["inbound_trunk_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
        data["outbound_trunk_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    ];
    referenced.sort();
    assert_eq!(rig.edge.leg_ids().unwrap(), referenced, "{one}");
}

pub fn kamailio_carries_every_value_the_api_accepts_and_the_api_refuses_the_rest(
    database: &Database,
) {
    let Some(rig) = rig(database) else { return };
    let alice = create_user(database, "values@example.com");
    let server = rig.start(database, &[]);

    // A digest username travels in a quoted-string: `"` and `\` are refused at the API.
    for username in ["quo\"te_user", "back\\slash_user"] {
        let (status, text) = server.call(
            "POST",
            TRUNKS,
            Some(&alice),
            Some(&auth_trunk(
                "+14155550600",
                username,
                "Some-Pass-1",
                "127.0.0.9",
            )),
        );
        assert_eq!(status, 422, "{username}: {text}");
        assert_eq!(
            json(&text)["errors"]["sip_username"],
            json!(["The sip username may not contain double quotes or backslashes (SIP digest authentication cannot carry them reliably)."]),
            "{text}"
        );
    }

    // A password with backslashes, an octal-looking escape and quotes: inbound and outbound.
    let password = r#"back\slash\101"q'"#;
    let proxy_ip = carrier_address().unwrap();
    let proxy = SippServer::start(rig.edge.dir(), "carrier_407", &proxy_ip, 5060, &[]).unwrap();
    let trunk = create(
        &server,
        &alice,
        &auth_trunk("+14155550601", "slash_user", password, &proxy_ip),
    );
    rig.expect(
        "the password answers the edge's challenge",
        rig.call(
            "127.0.0.4",
            "+14155550601",
            true,
            &digest("slash_user", password),
        ),
    );
    let header = format!("X-Sip-Trunk: {trunk}");
    let platform_proof = rig.edge.platform_secret_header();
    rig.expect(
        "an outbound call through the trunk",
        rig.call(
            "127.0.0.1",
            "+14155559876",
            true,
            &["-key", "extra", &header, "-key", "extra2", &platform_proof],
        ),
    );
    let credentials = proxy
        .log()
        .lines()
        .find_map(|line| line.strip_prefix("proxy-auth=").map(str::to_owned))
        .unwrap_or_else(|| panic!("no Proxy-Authorization: {}", proxy.log()));
    check_digest(&credentials, "INVITE", "slash_user", password)
        .unwrap_or_else(|error| panic!("the carrier gets the password's digest: {error}"));

    // An extension with `#`: reachable in the RFC 3261 form (`%23`) and in the raw one.
    let extension = json!({
        "sip_trunk_type": "extension", "phone_number": "9#1", "sip_username": "pbx_user",
        "sip_password": "Ext-Pass-1", "sip_address": "127.0.0.9",
        "sip_calling_format": "+e164", "inbound_authorization_type": "ip",
        "allowed_inbound_ips": ["127.0.0.6"], "country_code": "US"
    });
    create(&server, &alice, &extension);
    for called in ["9%231", "9#1"] {
        rig.expect(
            &format!("the extension called as {called}"),
            rig.call("127.0.0.6", called, true, &[]),
        );
    }
    rig.expect(
        "another extension is not it",
        rig.call("127.0.0.6", "9%232", false, &[]),
    );
}

/// The effective user id of this process, from `/proc/self/status`.
fn effective_uid() -> Option<u32> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|line| line.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The id of group `name`, from `/etc/group`.
fn group_id(name: &str) -> Option<u32> {
    let groups = std::fs::read_to_string("/etc/group").ok()?;
    groups.lines().find_map(|line| {
        let mut fields = line.split(':');
        (fields.next()? == name).then_some(())?;
        fields.nth(1)?.parse().ok()
    })
}

pub fn a_sqlite_edge_is_shared_with_kamailio_running_as_its_own_user(database: &Database) {
    use std::os::unix::fs::MetadataExt;
    let required = std::env::var("SIP_TRUNKS_REQUIRE_SIP_TOOLS").is_ok();
    if !tools_present() {
        assert!(!required, "kamailio and sipp are required here");
        eprintln!("kamailio or sipp missing: skipped");
        return;
    }
    // Switching Kamailio to its own user takes root; the user is the Debian package's.
    if effective_uid() != Some(0) {
        eprintln!("not root: Kamailio cannot be run as another user here: skipped");
        return;
    }
    let Some(gid) = group_id("kamailio") else {
        assert!(!required, "the kamailio package's group is missing");
        eprintln!("no kamailio group: skipped");
        return;
    };
    let platform_port = free_udp_port().unwrap();
    let mut edge = Edge::prepare(
        EdgeStore::Sqlite,
        &format!("sip:127.0.0.1:{platform_port}"),
        "127.0.0.1",
    )
    .unwrap();
    edge.run_as("kamailio", "kamailio", gid).unwrap();
    let file = edge.dir().join("edge.db");
    assert_eq!(
        std::fs::metadata(&file).unwrap().mode() & 0o777,
        0o600,
        "private until shared"
    );
    // The service shares the file it created with Kamailio's group, and only with it.
    let rpc = edge.rpc_url();
    let server = Server::start_with(
        database,
        &[
            ("KAMAILIO_DB_URL", edge.database_url.as_str()),
            ("KAMAILIO_RPC_URL", rpc.as_str()),
            ("KAMAILIO_RPC_SECRET", edge.rpc_secret()),
            ("KAMAILIO_DB_GROUP", "kamailio"),
        ],
    );
    for name in ["edge.db", "edge.db-wal", "edge.db-shm"] {
        let meta = std::fs::metadata(edge.dir().join(name)).unwrap();
        assert_eq!(
            (meta.mode() & 0o777, meta.gid()),
            (0o660, gid),
            "{name} is the service's and Kamailio's group's, nobody else's"
        );
    }
    edge.start().unwrap();
    let platform =
        SippServer::start(edge.dir(), "answer", "127.0.0.1", platform_port, &[]).unwrap();
    let alice = create_user(database, "shared@example.com");
    create(&server, &alice, &ip_trunk("+14155550701", &["127.0.0.2"]));
    let run = sipp_call(
        edge.dir(),
        "call",
        "127.0.0.2",
        &format!("127.0.0.1:{}", edge.sip_port),
        "+14155550701",
        &[],
    );
    assert!(
        run.passed,
        "Kamailio as user kamailio reads the trunk: {}\n{}",
        run.errors,
        tail(&edge.log())
    );
    let kamailio_uid = edge.pid().and_then(|pid| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let line = status.lines().find(|line| line.starts_with("Uid:"))?;
        line.split_whitespace().nth(2)?.parse::<u32>().ok()
    });
    assert!(
        kamailio_uid.is_some_and(|uid| uid != 0),
        "Kamailio runs as its own user, not root: {kamailio_uid:?}"
    );
    drop(platform);
}

pub fn reconcile_heals_what_kamailio_lost_and_removes_what_nobody_references(database: &Database) {
    let Some(rig) = rig(database) else { return };
    let alice = create_user(database, "heal@example.com");
    let server = rig.start(database, &[]);
    let ip = create(&server, &alice, &ip_trunk("+14155550401", &["127.0.0.2"]));
    rig.expect(
        "answered before",
        rig.call("127.0.0.2", "+14155550401", true, &[]),
    );
    let (clean, _) = server.stop();
    assert!(clean);
    // Behind the service's back: the trunk's inbound rows vanish, and an old leg of a trunk
    // that does not exist appears.
    rig.edge
        .execute(&format!(
            "DELETE FROM address WHERE tag IN (SELECT id FROM sip_trunks_legs WHERE trunk_id = {ip} AND kind = 'inbound');
             DELETE FROM sip_trunks_legs WHERE trunk_id = {ip} AND kind = 'inbound';
             INSERT INTO sip_trunks_legs (id, kind, trunk_id, user_id, created_unix, seq, number, inbound_key, access, realm, username)
               VALUES ('KM_orphan', 'inbound', 999, 1, 1000000000, 1, '+14155550499', '14155550499', 'auth', 'KM_orphan', 'ghost');
             INSERT INTO subscriber (username, domain, password, ha1, ha1b) VALUES ('ghost', 'KM_orphan', '', '{}', '');",
            kamailio_adapter::digest_ha1("ghost", "KM_orphan", "Ghost-Pass-1")
        ))
        .unwrap();
    rig.expect(
        "the orphan answers before",
        rig.call(
            "127.0.0.4",
            "+14155550499",
            true,
            &digest("ghost", "Ghost-Pass-1"),
        ),
    );
    rig.expect(
        "the lost leg's number is refused",
        rig.call("127.0.0.2", "+14155550401", false, &[]),
    );
    let rpc = rig.edge.rpc_url();
    let env = [
        ("KAMAILIO_DB_URL", rig.edge.database_url.as_str()),
        ("KAMAILIO_RPC_URL", rpc.as_str()),
        ("KAMAILIO_RPC_SECRET", rig.edge.rpc_secret()),
    ];
    let help = run_cli_with(database, &env, &["reconcile", "--help"]);
    let help = String::from_utf8_lossy(&help.stdout).to_string();
    assert!(
        help.contains("Make Kamailio (the voice infrastructure configured here) hold exactly"),
        "{help}"
    );
    let dry = run_cli_with(database, &env, &["reconcile", "--dry-run"]);
    let printed = String::from_utf8_lossy(&dry.stdout).to_string();
    assert!(
        dry.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&dry.stderr)
    );
    assert!(
        printed.contains("inbound leg missing") && printed.contains("KM_orphan"),
        "{printed}"
    );
    rig.expect(
        "a dry run changes nothing",
        rig.call("127.0.0.2", "+14155550401", false, &[]),
    );
    let run = run_cli_with(database, &env, &["reconcile"]);
    let printed = String::from_utf8_lossy(&run.stdout).to_string();
    assert!(
        run.status.success(),
        "{printed}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    rig.expect(
        "the leg is back",
        rig.call("127.0.0.2", "+14155550401", true, &[]),
    );
    rig.expect(
        "the orphan is gone",
        rig.call(
            "127.0.0.4",
            "+14155550499",
            false,
            &digest("ghost", "Ghost-Pass-1"),
        ),
    );
    let again = run_cli_with(database, &env, &["reconcile"]);
    assert!(
        String::from_utf8_lossy(&again.stdout)
            .contains("Kamailio holds exactly the legs the stored trunks reference"),
        "{}{}",
        String::from_utf8_lossy(&again.stdout),
        String::from_utf8_lossy(&again.stderr)
    );
}

/// Checks a carrier scenario's log: at least `calls` challenged INVITEs, and each re-sent
/// with credentials under a higher CSeq than the challenged one (RFC 3261 section 22.2).
#[track_caller]
fn every_retry_has_a_higher_cseq(log: &str, calls: usize) {
    let pairs: Vec<(u32, u32)> = log
        .lines()
        .filter_map(|line| line.strip_prefix("cseq="))
        .filter_map(|pair| pair.split_once("->"))
        .map(|(first, second)| (first.parse().unwrap(), second.parse().unwrap()))
        .collect();
    assert!(pairs.len() >= calls, "{log}");
    assert!(
        pairs.iter().all(|(first, second)| second > first),
        "a retry kept its CSeq: {pairs:?}"
    );
}

/// The `-key` arguments of `forged.xml` / `forged_ack.xml`.
fn forged_keys<'a>(ruri: &'a str, totag: &'a str, route: &'a str) -> Vec<&'a str> {
    vec![
        "-key", "ruri", ruri, "-key", "totag", totag, "-key", "route", route,
    ]
}

/// `forged.xml` for `verb` (sipp takes no keyword for the method), written into `dir`.
fn forged_scenario(dir: &std::path::Path, verb: &str) -> String {
    let template = std::fs::read_to_string(format!(
        "{}/forged.xml",
        kamailio_adapter::testing::SCENARIOS
    ))
    .unwrap();
    let path = dir.join(format!("forged-{verb}.xml"));
    std::fs::write(&path, template.replace("VERB", verb)).unwrap();
    path.display().to_string()
}

pub fn kamailio_relays_nothing_a_stranger_dresses_as_in_dialog(database: &Database) {
    let Some(rig) = rig(database) else { return };
    let alice = create_user(database, "relay@example.com");
    let server = rig.start(database, &[]);
    create(&server, &alice, &ip_trunk("+14155550601", &["127.0.0.2"]));
    // A carrier-like host that must hear nothing: a bare socket, which never answers.
    let witness_ip = carrier_address().unwrap();
    let witness = UdpSocket::bind((witness_ip.as_str(), 5060)).unwrap();
    witness
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let answered = |rig: &Rig| rig.platform.log().matches("answered").count();
    let answered_before = answered(&rig);
    let edge_route = format!("Route: <sip:{};lr>", rig.target);
    let platform = format!("sip:+19005550199@127.0.0.1:{}", rig.platform.port);
    let carrier = format!("sip:+19005550100@{witness_ip}:5060");
    let mut cases = 0;
    // 127.0.0.66 is nobody; 127.0.0.2 is a carrier the ip trunk admits: neither may use the
    // edge as a relay by dressing a request as part of a dialog.
    for source in ["127.0.0.66", "127.0.0.2"] {
        for target in [&platform, &carrier] {
            for route in [edge_route.as_str(), "X-No-Route: 1"] {
                for verb in ["INVITE", "BYE", "MESSAGE", "OPTIONS", "REFER"] {
                    let keys = forged_keys(target, ";tag=forged-1", route);
                    let scenario = forged_scenario(rig.edge.dir(), verb);
                    let run = sipp_call(rig.edge.dir(), &scenario, source, &rig.target, "x", &keys);
                    rig.expect(
                        &format!("{source} in-dialog {verb} to {target} ({route})"),
                        run,
                    );
                    cases += 1;
                }
                let keys = forged_keys(target, ";tag=forged-1", route);
                let run = sipp_call(
                    rig.edge.dir(),
                    "forged_ack",
                    source,
                    &rig.target,
                    "x",
                    &keys,
                );
                rig.expect(&format!("{source} in-dialog ACK to {target}"), run);
            }
            // Outside a dialog: only INVITE to a trunk's number is ever routed.
            for verb in [
                "MESSAGE",
                "OPTIONS",
                "REGISTER",
                "SUBSCRIBE",
                "BYE",
                "INVITE",
            ] {
                let keys = forged_keys(target, ";x=1", &edge_route);
                let scenario = forged_scenario(rig.edge.dir(), verb);
                let run = sipp_call(rig.edge.dir(), &scenario, source, &rig.target, "x", &keys);
                rig.expect(&format!("{source} {verb} to {target}"), run);
                cases += 1;
            }
        }
    }
    let mut buffer = [0_u8; 4096];
    let heard = witness.recv_from(&mut buffer);
    assert!(
        heard.is_err(),
        "the carrier-like host received {:?}",
        heard.map(|(n, from)| (from, String::from_utf8_lossy(&buffer[..n]).into_owned()))
    );
    assert_eq!(
        answered(&rig),
        answered_before,
        "the platform answered a forged request: {}",
        rig.platform.log()
    );
    assert!(cases >= 40, "{cases}");
    // The edge still routes what it should: the admitted carrier's call, ACK and BYE.
    rig.expect(
        "a real call still goes through",
        rig.call("127.0.0.2", "+14155550601", true, &[]),
    );
}

pub fn kamailio_sends_the_platforms_calls_out_only_with_its_secret(database: &Database) {
    let Some(rig) = rig(database) else { return };
    let alice = create_user(database, "secret@example.com");
    let server = rig.start(database, &[]);
    let carrier_ip = carrier_address().unwrap();
    let carrier = SippServer::start(
        rig.edge.dir(),
        "carrier",
        &carrier_ip,
        5060,
        &["-set", "user", "sec_user", "-set", "password", "Sec-Pass-1"],
    )
    .unwrap();
    let out = create(
        &server,
        &alice,
        &auth_trunk("+14155550701", "sec_user", "Sec-Pass-1", &carrier_ip),
    );
    let header = format!("X-Sip-Trunk: {out}");
    let heard = |carrier: &SippServer| carrier.log().matches("called=").count();
    // From the platform's own address, the trunk named, but no secret or a wrong one.
    for proof in [
        "X-None: 1".to_owned(),
        "X-Sip-Trunk-Secret: guessed".to_owned(),
        format!("X-Sip-Trunk-Secret: {}x", rig.edge.platform_secret()),
    ] {
        rig.expect(
            &format!("the platform's address with {proof:?} is refused"),
            rig.call(
                "127.0.0.1",
                "+14155559876",
                false,
                &["-key", "extra", &header, "-key", "extra2", &proof],
            ),
        );
    }
    // The right secret from another address is not the platform: an inbound call to a
    // number nobody has.
    let proof = rig.edge.platform_secret_header();
    rig.expect(
        "another address with the secret is not outbound",
        rig.call(
            "127.0.0.66",
            "+14155559876",
            false,
            &["-key", "extra", &header, "-key", "extra2", &proof],
        ),
    );
    assert_eq!(heard(&carrier), 0, "the carrier heard: {}", carrier.log());
    rig.expect(
        "the platform with its secret is called out",
        rig.call(
            "127.0.0.1",
            "+14155559876",
            true,
            &["-key", "extra", &header, "-key", "extra2", &proof],
        ),
    );
    assert_eq!(heard(&carrier), 1, "{}", carrier.log());
    assert!(
        carrier.log().contains("leaked=") && !carrier.log().contains("leaked=X-Sip-Trunk"),
        "a header of the platform reached the carrier: {}",
        carrier.log()
    );
    assert!(
        !rig.edge.log().contains(rig.edge.platform_secret()),
        "the edge logged the secret"
    );
}

/// POSTs `body` to the edge's RPC URL from `source` with `secret` (if any) by curl (which
/// can choose its source address); gives the HTTP status and the body.
fn rpc_from(rig: &Rig, source: &str, secret: Option<&str>, body: &str) -> (u16, String) {
    let mut command = std::process::Command::new("curl");
    command.args([
        "-s",
        "--max-time",
        "5",
        "--interface",
        source,
        "-w",
        "\n%{http_code}",
        "-H",
        "Content-Type: application/json",
        "--data-binary",
        body,
    ]);
    if let Some(secret) = secret {
        command.args(["-H", &format!("X-Sip-Trunks-Rpc-Secret: {secret}")]);
    }
    let output = command.arg(rig.edge.rpc_url()).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_owned())
}

pub fn kamailio_rpc_answers_only_the_service_and_only_its_methods(database: &Database) {
    let Some(rig) = rig(database) else { return };
    let secret = rig.edge.rpc_secret().to_owned();
    let call = |method: &str| format!(r#"{{"jsonrpc":"2.0","method":"{method}","id":1}}"#);
    // The service's own calls work (an allow-list change reloads through them).
    let alice = create_user(database, "rpc@example.com");
    let server = rig.start(database, &[]);
    create(&server, &alice, &ip_trunk("+14155550801", &["127.0.0.2"]));
    rig.expect(
        "a trunk made through the reload answers",
        rig.call("127.0.0.2", "+14155550801", true, &[]),
    );
    let (status, body) = rpc_from(&rig, "127.0.0.1", Some(&secret), &call("core.uptime"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"result\""), "{body}");
    // Everything else is refused, whoever asks.
    let refused = [
        (
            "no secret",
            "127.0.0.1",
            None,
            call("permissions.addressReload"),
        ),
        (
            "a wrong secret",
            "127.0.0.1",
            Some("nope"),
            call("core.uptime"),
        ),
        (
            "another address",
            "127.0.0.2",
            Some(secret.as_str()),
            call("core.uptime"),
        ),
        (
            "core.kill",
            "127.0.0.1",
            Some(secret.as_str()),
            call("core.kill"),
        ),
        (
            "send any SIP",
            "127.0.0.1",
            Some(secret.as_str()),
            call("tm.t_uac_start"),
        ),
        (
            "every tenant's allow-list",
            "127.0.0.1",
            Some(secret.as_str()),
            call("permissions.addressDump"),
        ),
        (
            "the method list",
            "127.0.0.1",
            Some(secret.as_str()),
            call("system.listMethods"),
        ),
        (
            "a batch",
            "127.0.0.1",
            Some(secret.as_str()),
            format!("[{}]", call("permissions.addressReload")),
        ),
        (
            "a second method",
            "127.0.0.1",
            Some(secret.as_str()),
            r#"{"jsonrpc":"2.0","method":"core.uptime","method":"core.kill","id":1}"#.to_owned(),
        ),
        (
            "parameters",
            "127.0.0.1",
            Some(secret.as_str()),
            r#"{"jsonrpc":"2.0","method":"core.uptime","params":["x"],"id":1}"#.to_owned(),
        ),
    ];
    for (what, source, secret, body) in refused {
        let (status, answer) = rpc_from(&rig, source, secret, &body);
        assert_eq!(status, 403, "{what}: {answer}");
        assert!(!answer.contains("result"), "{what}: {answer}");
    }
    assert!(
        rig.edge.answers_options(),
        "the edge is still up after core.kill"
    );
    let log = rig.edge.log();
    assert!(log.contains("RPC refused"), "{}", tail(&log));
    assert!(!log.contains(&secret), "the edge logged the RPC secret");
}
