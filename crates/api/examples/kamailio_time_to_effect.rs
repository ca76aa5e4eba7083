//! How soon a change through the API is in effect on SIP traffic through Kamailio: N
//! changes (alternately an `ip` trunk's allow-list and an `auth` trunk's password), each
//! followed at once by sipp calls with the new setting until one is answered. Prints p50 and
//! p99 of the API's answer time (which includes the Kamailio reload) and of the time from
//! the 200 to the first answered call, and how many calls that took. A benchmark, not a test.
//!
//! Run by `scripts/kamailio-time-to-effect [N]` (it builds the release binary first).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kamailio_adapter::testing::{free_udp_port, sipp_call, Edge, EdgeStore, SippServer};
use serde_json::{json, Value};

const TRUNKS: &str = "/api/user/phone-numbers/sip-trunks";

fn main() {
    let n: usize = std::env::args().nth(1).map_or(100, |n| n.parse().unwrap());
    let binary =
        std::env::var("SIP_TRUNKS_BIN").unwrap_or_else(|_| "target/release/sip-trunks".into());
    let platform_port = free_udp_port().unwrap();
    let mut edge = Edge::prepare(
        EdgeStore::Sqlite,
        &format!("sip:127.0.0.1:{platform_port}"),
        "127.0.0.1",
    )
    .unwrap();
    edge.start().unwrap();
    let _platform =
        SippServer::start(edge.dir(), "answer", "127.0.0.1", platform_port, &[]).unwrap();
    let data = tempfile::tempdir().unwrap();
    let database = format!("sqlite://{}/trunks.db", data.path().display());
    let token = {
        let out = Command::new(&binary)
            .args([
                "users",
                "create",
                "--email",
                "bench@example.com",
                "--name",
                "Bench",
            ])
            .env("DATABASE_URL", &database)
            .current_dir(data.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .last()
            .unwrap()
            .to_owned()
    };
    let port = free_udp_port().unwrap();
    let mut server = Service(
        Command::new(&binary)
            .args([
                "serve",
                "--bind",
                &format!("127.0.0.1:{port}"),
                "--metrics-bind",
                "off",
            ])
            .env("DATABASE_URL", &database)
            .env("KAMAILIO_DB_URL", &edge.database_url)
            .env("KAMAILIO_RPC_URL", edge.rpc_url())
            .env("KAMAILIO_RPC_SECRET", edge.rpc_secret())
            .env("RUST_LOG", "warn")
            .current_dir(data.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let deadline = Instant::now() + Duration::from_secs(20);
    while ureq::get(&format!("{base}/healthz")).call().is_err() {
        assert!(Instant::now() < deadline, "the service did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    let call = |method: &str, path: &str, body: Value| -> (u16, Value, Duration) {
        let started = Instant::now();
        let answer = ureq::request(method, &format!("{base}{path}"))
            .set("Authorization", &format!("Bearer {token}"))
            .send_json(body);
        let elapsed = started.elapsed();
        let response = match answer {
            Ok(response) => response,
            Err(ureq::Error::Status(_, response)) => response,
            Err(error) => panic!("{error}"),
        };
        (response.status(), response.into_json().unwrap(), elapsed)
    };
    let trunk = |number: &str, auth: &str| {
        let mut body = json!({
            "sip_trunk_type": "number", "phone_number": number, "sip_username": "bench",
            "sip_password": "Bench-Pass-0", "sip_address": "127.0.0.9",
            "sip_calling_format": "+e164", "inbound_authorization_type": auth, "country_code": "US"
        });
        if auth == "ip" {
            body["allowed_inbound_ips"] = json!(["127.0.0.2"]);
        }
        let (status, created, _) = call("POST", TRUNKS, body);
        assert_eq!(status, 201, "{created}");
        created["data"]["id"].as_i64().unwrap()
    };
    let ip = trunk("+14155550901", "ip");
    let auth = trunk("+14155550902", "auth");
    let target = format!("127.0.0.1:{}", edge.sip_port);
    let (mut api, mut effect, mut calls) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let (path, body, number, source, password) = if i % 2 == 0 {
            let source = format!("127.0.0.{}", 2 + (i / 2) % 2 + 1);
            (
                format!("{TRUNKS}/{ip}"),
                json!({"allowed_inbound_ips": [source]}),
                "+14155550901",
                source,
                String::new(),
            )
        } else {
            let password = format!("Bench-Pass-{i}");
            (
                format!("{TRUNKS}/{auth}"),
                json!({"sip_password": password}),
                "+14155550902",
                "127.0.0.4".to_owned(),
                password,
            )
        };
        let (status, answer, took) = call("PUT", &path, body);
        assert_eq!(status, 200, "{answer}");
        let answered_at = Instant::now();
        let mut tries = 0;
        loop {
            tries += 1;
            let extra: Vec<&str> = if password.is_empty() {
                vec![]
            } else {
                vec!["-au", "bench", "-ap", &password]
            };
            if sipp_call(edge.dir(), "call", &source, &target, number, &extra).passed {
                break;
            }
            assert!(tries < 50, "change {i} never took effect");
        }
        api.push(took);
        effect.push(answered_at.elapsed());
        calls.push(tries);
    }
    // The probe's own cost: a call on a setting that did not change.
    let mut probe = Vec::new();
    for _ in 0..20 {
        let started = Instant::now();
        assert!(
            sipp_call(
                edge.dir(),
                "call",
                "127.0.0.4",
                &target,
                "+14155550902",
                &[
                    "-au",
                    "bench",
                    "-ap",
                    &format!("Bench-Pass-{}", if n % 2 == 0 { n - 1 } else { n - 2 })
                ]
            )
            .passed
        );
        probe.push(started.elapsed());
    }
    let report = |name: &str, mut times: Vec<Duration>| {
        times.sort();
        let at =
            |q: f64| times[((times.len() as f64 * q).ceil() as usize).clamp(1, times.len()) - 1];
        println!(
            "{name:<40} p50 {:>7.1} ms   p99 {:>7.1} ms   max {:>7.1} ms",
            ms(at(0.5)),
            ms(at(0.99)),
            ms(at(1.0))
        );
    };
    println!("{n} changes through the API, Kamailio on SQLite, sipp on loopback");
    report("API answer (PUT, reload included)", api);
    report("200 -> first answered call", effect);
    report("one answered call, nothing changed", probe);
    let retried = calls.iter().filter(|tries| **tries > 1).count();
    println!("changes whose first call after the 200 was not yet answered: {retried} of {n}");
    server.stop();
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// The service, stopped when dropped.
struct Service(Child);

impl Service {
    fn stop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
