//! The call simulator against the real edge: generated INVITEs (sources in and out of
//! allow-lists, number forms, extensions, credentials right and wrong) are sent through a
//! private Kamailio with sipp and asked of `POST …/sip-trunks/simulate`; the verdict and the
//! SIP code agree in every case (docs/diagnostics.md).

use std::collections::VecDeque;
use std::path::Path;
use std::sync::Mutex;

use kamailio_adapter::testing::sipp_call;
use serde_json::{json, Value};

use crate::harness::{create_user, Database};
use crate::kamailio::{auth_trunk, create, ip_trunk, json, rig};

const SIMULATE: &str = "/api/user/phone-numbers/sip-trunks/simulate";

/// A trunk of the generated set, and what the cases need to know of it.
struct Target {
    number: &'static str,
    credentials: Option<(&'static str, &'static str)>,
    sources_in: &'static [&'static str],
}

/// Alice's trunks. Bob's one number is never called (the edge would reach his trunk, which
/// Alice's simulator, rightly, knows nothing of).
const TARGETS: [Target; 6] = [
    Target {
        number: "+14155550101",
        credentials: None,
        sources_in: &["127.0.0.20", "127.0.0.23"],
    },
    Target {
        number: "+442079460102",
        credentials: None,
        sources_in: &["127.0.0.40", "127.0.0.41"],
    },
    Target {
        number: "1000",
        credentials: None,
        sources_in: &["127.0.0.30", "127.0.0.31"],
    },
    Target {
        number: "+14155550103",
        credentials: Some(("acme", "Alice-Pass-1")),
        sources_in: &["127.0.0.50"],
    },
    Target {
        number: "2001",
        credentials: Some(("pbx_2001", "Pbx-Pass-2001")),
        sources_in: &["127.0.0.51"],
    },
    Target {
        number: "+4930123456",
        credentials: Some(("berlin", "Berlin-Pass-1")),
        sources_in: &["127.0.0.52"],
    },
];

const BOBS_NUMBER: &str = "+14155550199";

/// Sources in no allow-list (or beside a range's edge).
const SOURCES_OUT: [&str; 4] = ["127.0.0.24", "127.0.0.32", "127.0.0.42", "127.0.0.99"];

/// One generated INVITE.
#[derive(Debug, Clone)]
struct Case {
    source: String,
    /// The Request-URI user, as sent.
    called: String,
    credentials: Option<(String, String)>,
}

/// The ways a caller writes a trunk's number: as stored, without `+`, with a `%XX` escape,
/// with a digit changed, without its first digit (a country code missing), and one the edge
/// cannot read.
fn number_forms(number: &str) -> Vec<String> {
    let bare = number.trim_start_matches('+');
    let mut changed: Vec<char> = bare.chars().collect();
    if let Some(last) = changed.last_mut() {
        *last = char::from(b'0' + (last.to_digit(10).unwrap_or(0) as u8 + 1) % 10);
    }
    let escaped = format!("%3{}{}", &bare[..1], &bare[1..]);
    vec![
        number.to_owned(),
        bare.to_owned(),
        escaped,
        changed.into_iter().collect(),
        bare[1..].to_owned(),
        format!("{bare}'"),
    ]
}

/// Every form of every trunk's number, from each of its sources (in and out of its list),
/// with each offer of credentials: over 200 cases, the same every run.
fn cases(ipv6: bool) -> Vec<Case> {
    let mut cases = Vec::new();
    for (index, target) in TARGETS.iter().enumerate() {
        let mut sources: Vec<String> = target.sources_in.iter().map(|s| (*s).to_owned()).collect();
        sources.push(SOURCES_OUT[index % SOURCES_OUT.len()].to_owned());
        if ipv6 && index == 2 {
            sources.push("::1".into());
        }
        let credentials: Vec<Option<(String, String)>> = match target.credentials {
            Some((user, password)) => vec![
                None,
                Some((user.into(), password.into())),
                Some((user.into(), format!("{password}x"))),
                Some((format!("{user}x"), password.into())),
            ],
            // An allow-list trunk never challenges: credentials offered are never asked for.
            None => vec![None, Some(("acme".into(), "Alice-Pass-1".into()))],
        };
        for called in number_forms(target.number) {
            for source in &sources {
                for offered in &credentials {
                    cases.push(Case {
                        source: source.clone(),
                        called: called.clone(),
                        credentials: offered.clone(),
                    });
                }
            }
        }
    }
    cases.retain(|case| case.called.trim_start_matches('+') != BOBS_NUMBER.trim_start_matches('+'));
    cases
}

/// A sipp scenario that places one INVITE and logs its final answer as `OUTCOME <code>`:
/// with `answer_challenge`, a 401/407 is answered once with `-au`/`-ap` and the answer to
/// that is logged; without, the challenge itself is the outcome. An answered call is
/// acknowledged and hung up; a refused one acknowledged.
fn probe_scenario(answer_challenge: bool) -> String {
    let invite = |cseq: u32, auth: &str| {
        format!(
            r#"  <send retrans="500">
    <![CDATA[
      INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      From: <sip:carrier@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      To: <sip:[service]@[remote_ip]:[remote_port]>
      Call-ID: [call_id]
      CSeq: {cseq} INVITE
      Contact: <sip:carrier@[local_ip]:[local_port];transport=[transport]>
      {auth}
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="100" optional="true"/>
"#
        )
    };
    let outcome = |code: u16, next: &str, extra: &str| {
        format!(
            r#"  <recv response="{code}" optional="true" next="{next}"{extra}><action><log message="OUTCOME {code}"/></action></recv>
"#
        )
    };
    let mut xml = String::from(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="probe">
"#,
    );
    xml += &invite(1, "");
    for code in [401, 407] {
        if answer_challenge {
            xml += &format!(
                r#"  <recv response="{code}" optional="true" auth="true" next="challenged"/>
"#
            );
        } else {
            xml += &outcome(code, "refused", "");
        }
    }
    for code in [403, 404, 484] {
        xml += &outcome(code, "refused", "");
    }
    xml += r#"  <recv response="180" optional="true"/>
  <recv response="200" rrs="true" next="answered"><action><log message="OUTCOME 200"/></action></recv>
  <label id="challenged"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 1 ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
"#;
    xml += &invite(2, "[authentication]");
    for code in [401, 403, 404, 407] {
        xml += &outcome(code, "refused", "");
    }
    xml += r#"  <recv response="180" optional="true"/>
  <recv response="200" rrs="true" next="answered"><action><log message="OUTCOME 200"/></action></recv>
  <label id="answered"/>
  <send>
    <![CDATA[
      ACK [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:carrier@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <send retrans="500">
    <![CDATA[
      BYE [next_url] SIP/2.0
      Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
      [routes]
      From: <sip:carrier@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
      [last_To:]
      Call-ID: [call_id]
      CSeq: 10 BYE
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <recv response="200" next="done"/>
  <label id="refused"/>
  <send>
    <![CDATA[
      ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
      [last_Via:]
      [last_From:]
      [last_To:]
      Call-ID: [call_id]
      CSeq: [cseq] ACK
      Max-Forwards: 70
      Content-Length: 0
    ]]>
  </send>
  <label id="done"/>
  <pause milliseconds="1"/>
</scenario>
"#;
    xml
}

/// The final code the edge gave `case`, as sipp logged it.
fn edge_answer(
    dir: &Path,
    target: &str,
    target_v6: &str,
    case: &Case,
    index: usize,
) -> Result<u16, String> {
    let scenario = dir.join(if case.credentials.is_some() {
        "probe_auth.xml"
    } else {
        "probe_plain.xml"
    });
    let log = dir.join(format!("case-{index}.log"));
    let scenario = scenario.display().to_string();
    let log_path = log.display().to_string();
    let mut extra: Vec<&str> = vec!["-trace_logs", "-log_file", &log_path];
    if let Some((user, password)) = &case.credentials {
        extra.extend(["-au", user, "-ap", password]);
    }
    let to = if case.source.contains(':') {
        target_v6
    } else {
        target
    };
    let run = sipp_call(dir, &scenario, &case.source, to, &case.called, &extra);
    let logged = std::fs::read_to_string(&log).unwrap_or_default();
    let outcome = logged
        .lines()
        .filter_map(|line| line.split("OUTCOME ").nth(1))
        .filter_map(|code| code.trim().parse::<u16>().ok())
        .next_back();
    match outcome {
        Some(code) if run.passed => Ok(code),
        _ => Err(format!("sipp: {} {logged}", run.errors)),
    }
}

/// What the simulator answers for `case`, as the code the edge would give (200: the call goes
/// on to the platform).
fn simulator_answer(server: &crate::harness::Server, token: &str, case: &Case) -> (u16, Value) {
    let mut body = json!({"direction": "inbound", "source_ip": case.source, "to": case.called});
    if let Some((user, password)) = &case.credentials {
        body["username"] = json!(user);
        body["password"] = json!(password);
    }
    let (status, text) = server.call("POST", SIMULATE, Some(token), Some(&body));
    assert_eq!(status, 200, "{case:?}: {text}");
    let answer = json(&text)["data"].clone();
    let code = match answer["verdict"].as_str() {
        Some("admitted") => 200,
        _ => answer["sip_code"].as_u64().unwrap_or(0) as u16,
    };
    (code, answer)
}

pub fn the_simulator_agrees_with_the_real_edge_on_every_generated_call(database: &Database) {
    let Some(rig) = rig(database) else { return };
    let alice = create_user(database, "alice@example.com");
    let bob = create_user(database, "bob@example.com");
    let server = rig.start(database, &[]);
    let allow: [&[&str]; 3] = [
        &["127.0.0.20/30"],
        &["127.0.0.40", "127.0.0.41"],
        if rig.edge.ipv6 {
            &["127.0.0.30/31", "::1"]
        } else {
            &["127.0.0.30/31"]
        },
    ];
    for (target, allowed) in TARGETS
        .iter()
        .zip(allow.iter().map(Some).chain([None, None, None]))
    {
        let mut body = match (target.credentials, allowed) {
            (Some((user, password)), _) => auth_trunk(target.number, user, password, "127.0.0.9"),
            (None, Some(allowed)) => ip_trunk(target.number, allowed),
            (None, None) => unreachable!("every allow-list trunk has a list"),
        };
        if !target.number.starts_with('+') {
            body["sip_trunk_type"] = json!("extension");
            body["country_code"] = json!("GB");
        }
        create(&server, &alice, &body);
    }
    create(&server, &bob, &ip_trunk(BOBS_NUMBER, &["127.0.0.0/16"]));
    let dir = rig.edge.dir();
    std::fs::write(dir.join("probe_plain.xml"), probe_scenario(false)).unwrap();
    std::fs::write(dir.join("probe_auth.xml"), probe_scenario(true)).unwrap();

    let cases = cases(rig.edge.ipv6);
    assert!(cases.len() >= 200, "only {} cases", cases.len());
    let queue = Mutex::new(cases.iter().cloned().enumerate().collect::<VecDeque<_>>());
    let answers = Mutex::new(Vec::new());
    std::thread::scope(|scope| {
        for _ in 0..4 {
            scope.spawn(|| loop {
                let next = queue.lock().unwrap().pop_front();
                let Some((index, case)) = next else { break };
                let edge = edge_answer(dir, &rig.target, &rig.target_v6, &case, index);
                answers.lock().unwrap().push((index, case, edge));
            });
        }
    });
    let mut answers = answers.into_inner().unwrap();
    answers.sort_by_key(|(index, _, _)| *index);
    let mut disagreements = Vec::new();
    let mut by_code = std::collections::BTreeMap::new();
    for (_, case, edge) in &answers {
        let (simulated, answer) = simulator_answer(&server, &alice, case);
        *by_code.entry(simulated).or_insert(0) += 1;
        match edge {
            Ok(code) if *code == simulated => {}
            Ok(code) => disagreements.push(format!(
                "{case:?}: the edge answered {code}, the simulator {simulated}: {answer}"
            )),
            Err(error) => disagreements.push(format!("{case:?}: no answer from the edge: {error}")),
        }
    }
    eprintln!(
        "simulator vs edge: {} cases, codes {by_code:?}, {} disagreements",
        answers.len(),
        disagreements.len()
    );
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree:\n{}",
        disagreements.len(),
        answers.len(),
        disagreements.join("\n")
    );
    // Every verdict is exercised.
    for code in [200, 403, 404, 407] {
        assert!(
            by_code.get(&code).copied().unwrap_or(0) >= 5,
            "{code}: {by_code:?}"
        );
    }
}

pub fn the_simulator_writes_outbound_numbers_as_the_real_edge_does(database: &Database) {
    use kamailio_adapter::testing::{carrier_address, SippServer};
    let Some(rig) = rig(database) else { return };
    let alice = create_user(database, "outbound@example.com");
    let server = rig.start(database, &[]);
    let carrier_ip = carrier_address().unwrap();
    let carrier = SippServer::start(
        rig.edge.dir(),
        "carrier",
        &carrier_ip,
        5060,
        &["-set", "user", "out_user", "-set", "password", "Out-Pass-1"],
    )
    .unwrap();
    let proof = rig.edge.platform_secret_header();
    let mut compared = 0;
    let mut n = 0;
    for format in ["+e164", "e164", "national"] {
        for country in ["US", "GB", "DE"] {
            n += 1;
            let mut body = auth_trunk(
                &format!("+1415555080{n}"),
                "out_user",
                "Out-Pass-1",
                &carrier_ip,
            );
            body["sip_calling_format"] = json!(format);
            body["country_code"] = json!(country);
            let trunk = create(&server, &alice, &body);
            let header = format!("X-Sip-Trunk: {trunk}");
            for called in ["+14155550123", "+442079460000", "+4930123456"] {
                let (status, text) = server.call(
                    "POST",
                    SIMULATE,
                    Some(&alice),
                    Some(&json!({"direction": "outbound", "trunk_id": trunk, "to": called})),
                );
                assert_eq!(status, 200, "{text}");
                let answer = json(&text)["data"].clone();
                let uri = answer["request_uri"].as_str().unwrap().to_owned();
                let run = sipp_call(
                    rig.edge.dir(),
                    "call",
                    "127.0.0.1",
                    &rig.target,
                    called,
                    &["-key", "extra", &header, "-key", "extra2", &proof],
                );
                assert!(run.passed, "{format} {country} {called}: {}", run.errors);
                let log = carrier.log();
                let heard = log
                    .lines()
                    .filter_map(|line| line.strip_prefix("called="))
                    .next_back()
                    .unwrap_or_default()
                    .to_owned();
                assert_eq!(
                    uri,
                    format!("sip:{heard}@{carrier_ip}"),
                    "{format} {country} {called}: the carrier heard {heard}"
                );
                compared += 1;
                assert_eq!(
                    log.matches("called=").count(),
                    compared,
                    "one call heard per call: {log}"
                );
            }
        }
    }
    eprintln!("simulator vs edge, outbound: {compared} calls agree");
}
