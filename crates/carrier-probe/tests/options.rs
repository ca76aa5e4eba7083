//! The OPTIONS probe against real SIP on loopback: sipp as a carrier answering OPTIONS (200,
//! 404), a port with nothing on it (ICMP), a carrier that never answers, a forger answering
//! from another address, and the hysteresis as a carrier goes silent and comes back. Each
//! carrier gets a loopback address of its own (127.0.0.N, port 5060, as a trunk's
//! `sip_address` has no port). Needs sipp; skipped without it unless
//! `SIP_TRUNKS_REQUIRE_SIP_TOOLS` is set (`.ci/run` sets it and installs sipp).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::thread;
use std::time::Duration;

use carrier_probe::{OptionsProbe, ProbeSettings};
use domain::{CarrierHealth, CarrierProbe, CarrierState, ProbeResponse};
use kamailio_adapter::testing::{carrier_address, tools_present, SippServer};

fn sipp_present() -> bool {
    if tools_present() {
        return true;
    }
    assert!(
        std::env::var("SIP_TRUNKS_REQUIRE_SIP_TOOLS").is_err(),
        "sipp is required here (SIP_TRUNKS_REQUIRE_SIP_TOOLS is set)"
    );
    eprintln!("sipp missing: skipped");
    false
}

fn prober(timeout: Duration) -> OptionsProbe {
    OptionsProbe::new(ProbeSettings {
        timeout,
        source: "127.0.0.1".parse().unwrap(),
        ..ProbeSettings::default()
    })
}

fn probe(prober: &OptionsProbe, host: &str) -> domain::ProbeOutcome {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(prober.probe(host))
        .unwrap()
}

/// sipp answering OPTIONS on `address:5060` with 200 OK (`options`) or 404 Not Found
/// (`options_404`).
fn carrier(dir: &tempfile::TempDir, address: &str, scenario: &str) -> SippServer {
    SippServer::start(dir.path(), scenario, address, 5060, &[]).unwrap()
}

/// A socket on `address:5060` that reads what comes and hands each datagram with its source
/// to `answer`, until the test ends.
fn listener(address: &str, answer: impl Fn(&[u8], SocketAddr) + Send + 'static) {
    let socket = UdpSocket::bind((address, 5060)).unwrap();
    thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok((length, source)) = socket.recv_from(&mut buffer) {
            answer(&buffer[..length], source);
        }
    });
}

#[test]
fn a_carrier_answering_200_is_alive_with_its_reason_and_round_trip_time() {
    if !sipp_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let address = carrier_address().unwrap();
    let sipp = carrier(&dir, &address, "options");
    let outcome = probe(&prober(Duration::from_secs(3)), &address);
    assert_eq!(outcome.response, ProbeResponse::answered(200, "OK"));
    assert!(outcome.rtt.is_some_and(|rtt| rtt < Duration::from_secs(3)));
    assert!(
        sipp.log().contains("options via=UDP 127.0.0.1:"),
        "{}",
        sipp.log()
    );
}

#[test]
fn a_carrier_answering_404_is_alive_too() {
    if !sipp_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let address = carrier_address().unwrap();
    let _sipp = carrier(&dir, &address, "options_404");
    let outcome = probe(&prober(Duration::from_secs(3)), &address);
    assert_eq!(outcome.response, ProbeResponse::answered(404, "Not Found"));
    assert!(outcome.response.is_alive());
}

#[test]
fn a_host_with_nothing_on_the_port_is_icmp_unreachable() {
    let address = carrier_address().unwrap();
    let outcome = probe(&prober(Duration::from_secs(3)), &address);
    assert_eq!(outcome.response, ProbeResponse::IcmpUnreachable);
    assert_eq!(outcome.rtt, None);
}

#[test]
fn a_carrier_that_never_answers_is_a_timeout_after_retransmissions() {
    let address = carrier_address().unwrap();
    let (sent, received) = std::sync::mpsc::channel();
    listener(&address, move |_, _| {
        let _ = sent.send(());
    });
    let outcome = probe(&prober(Duration::from_millis(1_800)), &address);
    assert_eq!(outcome.response, ProbeResponse::Timeout);
    // Sent at 0, 500 ms and 1.5 s (RFC 3261's timer E); the listener may still be reading.
    let sends = std::iter::from_fn(|| received.recv_timeout(Duration::from_millis(500)).ok());
    assert_eq!(sends.count(), 3);
}

/// The answer a carrier would send to `request` (its Via, Call-ID and CSeq copied).
fn answer_to(request: &[u8], status: &str) -> Vec<u8> {
    let text = String::from_utf8_lossy(request);
    let header = |name: &str| {
        text.lines()
            .find(|line| line.starts_with(name))
            .unwrap_or_default()
            .to_owned()
    };
    format!(
        "SIP/2.0 {status}\r\n{}\r\n{}\r\n{};tag=forged\r\n{}\r\n{}\r\nContent-Length: 0\r\n\r\n",
        header("Via:"),
        header("From:"),
        header("To:"),
        header("Call-ID:"),
        header("CSeq:"),
    )
    .into_bytes()
}

#[test]
fn a_perfect_answer_forged_from_another_address_does_not_make_a_carrier_alive() {
    let address = carrier_address().unwrap();
    let forger_address = carrier_address().unwrap();
    let forger = UdpSocket::bind((forger_address.as_str(), 5060)).unwrap();
    listener(&address, move |request, source| {
        // Right Call-ID and branch, but from 127.0.0.M:5060, not from the carrier's address.
        forger
            .send_to(&answer_to(request, "200 OK"), source)
            .unwrap();
    });
    let outcome = probe(&prober(Duration::from_millis(1_200)), &address);
    assert_eq!(outcome.response, ProbeResponse::Timeout);
}

#[test]
fn an_answer_to_another_transaction_from_the_carrier_does_not_count() {
    let address = carrier_address().unwrap();
    let carrier_socket = UdpSocket::bind((address.as_str(), 5060)).unwrap();
    thread::spawn(move || {
        let mut buffer = [0u8; 8192];
        while let Ok((length, source)) = carrier_socket.recv_from(&mut buffer) {
            let stale = String::from_utf8(answer_to(&buffer[..length], "200 OK"))
                .unwrap()
                .replace("branch=z9hG4bK", "branch=z9hG4bKstale");
            carrier_socket.send_to(stale.as_bytes(), source).unwrap();
        }
    });
    let outcome = probe(&prober(Duration::from_millis(1_200)), &address);
    assert_eq!(outcome.response, ProbeResponse::Timeout);
}

#[test]
fn the_health_follows_a_carrier_that_answers_goes_silent_and_answers_again() {
    if !sipp_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let address = carrier_address().unwrap();
    let prober = prober(Duration::from_millis(600));
    let mut health = CarrierHealth::default();
    let mut seen = Vec::new();
    let mut step = |health: &mut CarrierHealth| {
        *health = health.after(probe(&prober, &address));
        let last = health.last_probe.as_ref().unwrap().response.to_string();
        seen.push(format!("{} ({last})", health.state.as_str()));
    };
    let sipp = carrier(&dir, &address, "options");
    step(&mut health);
    drop(sipp);
    // Silent: a socket that reads and never answers.
    let silent = UdpSocket::bind((address.as_str(), 5060)).unwrap();
    for _ in 0..3 {
        step(&mut health);
    }
    drop(silent);
    let _sipp = carrier(&dir, &address, "options_404");
    step(&mut health);
    step(&mut health);
    assert_eq!(
        seen,
        [
            "reachable (200 OK)",
            "reachable (timeout)",
            "reachable (timeout)",
            "unreachable (timeout)",
            "unreachable (404 Not Found)",
            "reachable (404 Not Found)",
        ]
    );
    assert_eq!(health.state, CarrierState::Reachable);
}

#[test]
fn a_name_that_does_not_resolve_is_a_dns_failure() {
    // A resolver whose only server is a loopback port with nothing on it.
    let closed = UdpSocket::bind("127.0.0.1:0").unwrap();
    let server = closed.local_addr().unwrap();
    drop(closed);
    let prober = OptionsProbe::with_nameserver(
        ProbeSettings {
            source: IpAddr::from([127, 0, 0, 1]),
            dns_timeout: Duration::from_millis(500),
            ..ProbeSettings::default()
        },
        server,
    );
    let outcome = probe(&prober, "sip.carrier.invalid");
    assert_eq!(outcome.response, ProbeResponse::DnsFailure);
}

/// A DNS server on `127.0.0.1:<port>` that knows `records` (name, SRV target and port, or
/// an A address; a name may have several) and answers every other question with "no such
/// name". Gives its address and the names it was asked, in order.
fn dns_server(
    records: Vec<(&'static str, DnsAnswer)>,
) -> (SocketAddr, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use hickory_proto::op::{Message, MessageType, ResponseCode};
    use hickory_proto::rr::rdata::{A, SRV};
    use hickory_proto::rr::{Name, RData, Record, RecordType};
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    let address = socket.local_addr().unwrap();
    let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = asked.clone();
    thread::spawn(move || {
        let mut buffer = [0u8; 4096];
        while let Ok((length, source)) = socket.recv_from(&mut buffer) {
            let Ok(question) = Message::from_vec(&buffer[..length]) else {
                continue;
            };
            let mut answer = question.clone();
            answer.set_message_type(MessageType::Response);
            answer.set_recursion_available(true);
            let mut known = false;
            for query in question.queries() {
                let name = query.name().to_ascii();
                log.lock()
                    .unwrap()
                    .push(name.trim_end_matches('.').to_owned());
                for (record_name, record) in &records {
                    if name.trim_end_matches('.') != *record_name {
                        continue;
                    }
                    known = true;
                    let owner = Name::from_ascii(&name).unwrap();
                    let rdata = match (record, query.query_type()) {
                        (DnsAnswer::Srv(target, port), RecordType::SRV) => RData::SRV(SRV::new(
                            10,
                            5,
                            *port,
                            Name::from_ascii(format!("{target}.")).unwrap(),
                        )),
                        (DnsAnswer::A(ip), RecordType::A) => RData::A(A(*ip)),
                        _ => continue,
                    };
                    answer.add_answer(Record::from_rdata(owner, 60, rdata));
                }
            }
            if !known {
                answer.set_response_code(ResponseCode::NXDomain);
            }
            let _ = socket.send_to(&answer.to_vec().unwrap(), source);
        }
    });
    (address, asked)
}

/// What the test's DNS server answers for a name.
enum DnsAnswer {
    /// An SRV record: target name and port.
    Srv(String, u16),
    /// An A record.
    A(std::net::Ipv4Addr),
}

fn resolving_prober(server: SocketAddr) -> OptionsProbe {
    OptionsProbe::with_nameserver(
        ProbeSettings {
            timeout: Duration::from_secs(3),
            source: IpAddr::from([127, 0, 0, 1]),
            dns_timeout: Duration::from_secs(1),
            ..ProbeSettings::default()
        },
        server,
    )
}

#[test]
fn a_name_with_an_srv_record_is_probed_at_its_target_and_port_and_one_without_on_5060() {
    if !sipp_present() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let srv_host = carrier_address().unwrap();
    let srv_port = kamailio_adapter::testing::free_udp_port().unwrap();
    let plain_host = carrier_address().unwrap();
    let ip = |text: &str| text.parse::<std::net::Ipv4Addr>().unwrap();
    let (server, _) = dns_server(vec![
        (
            "_sip._udp.sip.srv.test",
            DnsAnswer::Srv("edge.srv.test".into(), srv_port),
        ),
        ("edge.srv.test", DnsAnswer::A(ip(&srv_host))),
        ("sip.srv.test", DnsAnswer::A(ip(&plain_host))),
        ("sip.plain.test", DnsAnswer::A(ip(&plain_host))),
    ]);
    let prober = resolving_prober(server);
    // The SRV target answers 404 on its port; the name's own address answers 200 on 5060.
    let _srv = SippServer::start(dir.path(), "options_404", &srv_host, srv_port, &[]).unwrap();
    let _plain = carrier(&dir, &plain_host, "options");
    assert_eq!(
        probe(&prober, "sip.srv.test").response,
        ProbeResponse::answered(404, "Not Found"),
        "SRV first"
    );
    assert_eq!(
        probe(&prober, "sip.plain.test").response,
        ProbeResponse::answered(200, "OK"),
        "no SRV: the name's address on 5060"
    );
    assert_eq!(
        probe(&prober, "sip.nowhere.test").response,
        ProbeResponse::DnsFailure
    );
}

#[test]
fn a_name_with_many_srv_targets_has_only_the_first_three_looked_up() {
    // The trunk owner writes the name's DNS: 8 targets that do not resolve (more would not
    // fit a plain UDP answer).
    let records = (0..8)
        .map(|n| {
            (
                "_sip._udp.many.test",
                DnsAnswer::Srv(format!("t{n}.many.test"), 5060),
            )
        })
        .collect();
    let (server, asked) = dns_server(records);
    let outcome = probe(&resolving_prober(server), "many.test");
    assert_eq!(outcome.response, ProbeResponse::DnsFailure);
    let mut targets: Vec<String> = asked
        .lock()
        .unwrap()
        .iter()
        .filter(|name| name.starts_with('t'))
        .cloned()
        .collect();
    targets.sort();
    targets.dedup();
    assert_eq!(targets, ["t0.many.test", "t1.many.test", "t2.many.test"]);
}
