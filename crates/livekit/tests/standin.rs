//! The LiveKit adapter against the stand-in: the mapping of a trunk onto LiveKit's two trunk
//! kinds, the registry's tag, the error mapping, the bounded retries, and no duplicate left
//! by a retried create. The stand-in speaks LiveKit's wire format; `the_wire_format_*` pins it
//! (path, content type, grant, field numbers), so a `livekit-api` upgrade that changes it
//! fails here.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use std::time::{Duration, Instant};

use domain::{
    AllowListDigest, CallingFormat, CountryCode, InboundAccess, InboundLeg, LegKind, OutboundLeg,
    ProvisionError, SipPassword, TrunkId, UserId, VoiceInfrastructure,
};
use livekit_adapter::{ApiSecret, LegTag, LiveKit, LiveKitSettings};
use livekit_standin::{Fault, StandIn};

const PASSWORD: &str = "Carrier-Secret-9";

fn livekit(standin: &StandIn) -> LiveKit {
    let mut settings = LiveKitSettings::new(
        standin.url(),
        standin.api_key(),
        ApiSecret::new(standin.api_secret()),
    );
    settings.request_timeout = Duration::from_millis(500);
    settings.first_backoff = Duration::from_millis(10);
    LiveKit::new(settings)
}

fn credentials_leg(number: &str) -> InboundLeg {
    InboundLeg {
        trunk: TrunkId::new(42).unwrap(),
        owner: UserId::new(7).unwrap(),
        number: number.into(),
        access: InboundAccess::Credentials {
            username: "acme_user".into(),
            password: SipPassword::parse(PASSWORD).unwrap(),
        },
    }
}

fn outbound_leg() -> OutboundLeg {
    OutboundLeg {
        trunk: TrunkId::new(42).unwrap(),
        owner: UserId::new(7).unwrap(),
        number: "+14155551234".into(),
        address: "sip.carrier.example".into(),
        username: "acme_user".into(),
        password: SipPassword::parse(PASSWORD).unwrap(),
        fixed_ip: true,
        calling_format: CallingFormat::PlusE164,
        country: CountryCode::parse("US").unwrap(),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn outcomes(standin: &StandIn) -> Vec<String> {
    standin
        .journal()
        .into_iter()
        .map(|call| format!("{} {}", call.method, call.outcome))
        .collect()
}

#[test]
fn a_credentials_trunk_becomes_an_inbound_and_an_outbound_trunk_carrying_the_registrys_tag() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    let inbound = rt
        .block_on(livekit.create_inbound(&credentials_leg("+14155551234")))
        .unwrap();
    let outbound = rt
        .block_on(livekit.create_outbound(&outbound_leg()))
        .unwrap();
    assert!(inbound.as_str().starts_with("ST_") && outbound.as_str().starts_with("ST_"));
    let held = &standin.inbound()[0];
    assert_eq!(held.sip_trunk_id, inbound.as_str());
    assert_eq!(held.numbers, ["+14155551234"]);
    assert_eq!(
        (held.auth_username.as_str(), held.auth_password.as_str()),
        ("acme_user", PASSWORD)
    );
    assert!(held.allowed_addresses.is_empty());
    assert_eq!(held.name, "sip-trunks 42 inbound (user 7)");
    let tag = LegTag::parse(&held.metadata).unwrap();
    assert_eq!(
        (tag.trunk.get(), tag.owner.get(), tag.kind),
        (42, 7, LegKind::Inbound)
    );
    let held = &standin.outbound()[0];
    assert_eq!(held.sip_trunk_id, outbound.as_str());
    assert_eq!(held.address, "sip.carrier.example");
    assert_eq!(held.numbers, ["+14155551234"]);
    assert_eq!(
        (held.auth_username.as_str(), held.auth_password.as_str()),
        ("acme_user", PASSWORD)
    );
    assert!(
        held.metadata.contains("\"outbound_proxy\":true"),
        "{}",
        held.metadata
    );
}

#[test]
fn an_allow_list_trunk_becomes_an_inbound_trunk_with_its_addresses_and_no_credentials() {
    let standin = StandIn::start();
    let mut leg = credentials_leg("1000");
    leg.access = InboundAccess::AllowList(vec!["203.0.113.10".into(), "2001:db8::/32".into()]);
    runtime()
        .block_on(livekit(&standin).create_inbound(&leg))
        .unwrap();
    let held = &standin.inbound()[0];
    assert_eq!(held.allowed_addresses, ["203.0.113.10", "2001:db8::/32"]);
    assert_eq!(
        (held.auth_username.as_str(), held.auth_password.as_str()),
        ("", "")
    );
}

#[test]
fn a_number_another_trunk_receives_calls_for_is_number_taken_and_not_retried() {
    let standin = StandIn::start();
    standin.insert_inbound(livekit_protocol::SipInboundTrunkInfo {
        numbers: vec!["+14155551234".into()],
        auth_username: "someone_else".into(),
        ..Default::default()
    });
    let result =
        runtime().block_on(livekit(&standin).create_inbound(&credentials_leg("+14155551234")));
    assert_eq!(result, Err(ProvisionError::NumberTaken));
    assert_eq!(
        outcomes(&standin),
        ["CreateSIPInboundTrunk error:invalid_argument"]
    );
}

#[test]
fn deleting_a_trunk_livekit_does_not_know_counts_as_removed() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    let id = rt
        .block_on(livekit.create_outbound(&outbound_leg()))
        .unwrap();
    rt.block_on(livekit.delete_leg(LegKind::Outbound, &id))
        .unwrap();
    rt.block_on(livekit.delete_leg(LegKind::Outbound, &id))
        .unwrap();
    standin.fail_next(1, Fault::Status(404, "not_found"));
    rt.block_on(livekit.delete_leg(LegKind::Outbound, &id))
        .unwrap();
    assert!(standin.trunk_ids().is_empty());
}

#[test]
fn unavailable_answers_are_retried_a_bounded_number_of_times() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    standin.fail_next(2, Fault::Status(503, "unavailable"));
    rt.block_on(livekit.create_outbound(&outbound_leg()))
        .unwrap();
    standin.fail_next(5, Fault::Status(429, "resource_exhausted"));
    let refused = rt.block_on(livekit.create_outbound(&outbound_leg()));
    assert!(
        matches!(refused, Err(ProvisionError::Unavailable(_))),
        "{refused:?}"
    );
    let creates = outcomes(&standin);
    assert_eq!(
        creates,
        [
            "CreateSIPOutboundTrunk fault:unavailable",
            "CreateSIPOutboundTrunk fault:unavailable",
            "CreateSIPOutboundTrunk ok",
            // A create that took more than one request looks for its earlier attempts' legs
            // (a page, then an empty one that ends the listing).
            "ListSIPOutboundTrunk ok",
            "ListSIPOutboundTrunk ok",
            "CreateSIPOutboundTrunk fault:resource_exhausted",
            "CreateSIPOutboundTrunk fault:resource_exhausted",
            "CreateSIPOutboundTrunk fault:resource_exhausted",
        ]
    );
    assert_eq!(standin.outbound().len(), 1);
}

#[test]
fn answers_that_will_not_change_are_never_retried() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    for (status, code) in [
        (400, "invalid_argument"),
        (404, "not_found"),
        (403, "permission_denied"),
    ] {
        standin.fail_next(1, Fault::Status(status, code));
        let outcome = rt.block_on(livekit.create_outbound(&outbound_leg()));
        assert!(
            matches!(
                outcome,
                Err(ProvisionError::Refused(_) | ProvisionError::Unauthorized(_))
            ),
            "{code}: {outcome:?}"
        );
    }
    assert_eq!(standin.journal().len(), 3, "{:?}", outcomes(&standin));
}

#[test]
fn a_wrong_secret_is_unauthorized_at_once_and_never_shows_the_secret() {
    let standin = StandIn::start();
    let secret = "not-the-stand-ins-secret-0123456789";
    let wrong = LiveKit::new(LiveKitSettings::new(
        standin.url(),
        standin.api_key(),
        ApiSecret::new(secret),
    ));
    let outcome = runtime().block_on(wrong.create_inbound(&credentials_leg("+14155551234")));
    match &outcome {
        Err(ProvisionError::Unauthorized(reason)) => assert!(!reason.contains(secret)),
        other => panic!("{other:?}"),
    }
    assert!(!format!("{outcome:?} {wrong:?}").contains(secret));
    assert_eq!(outcomes(&standin), ["CreateSIPInboundTrunk unauthorized"]);
}

#[test]
fn a_lost_reply_to_an_inbound_create_adopts_the_trunk_the_first_attempt_made() {
    let standin = StandIn::start();
    standin.fail_next_on("CreateSIPInboundTrunk", 1, Fault::LoseReply);
    let id = runtime()
        .block_on(livekit(&standin).create_inbound(&credentials_leg("+14155551234")))
        .unwrap();
    let held = standin.inbound();
    assert_eq!(held.len(), 1, "no duplicate");
    assert_eq!(
        held[0].sip_trunk_id,
        id.as_str(),
        "the leg the first attempt made"
    );
}

#[test]
fn a_lost_reply_to_an_outbound_create_leaves_no_duplicate() {
    let standin = StandIn::start();
    standin.fail_next_on("CreateSIPOutboundTrunk", 1, Fault::LoseReply);
    let id = runtime()
        .block_on(livekit(&standin).create_outbound(&outbound_leg()))
        .unwrap();
    let held = standin.outbound();
    assert_eq!(held.len(), 1, "{:?}", outcomes(&standin));
    assert_eq!(held[0].sip_trunk_id, id.as_str());
}

#[test]
fn a_slow_livekit_is_cut_off_by_the_request_timeout() {
    let standin = StandIn::start();
    standin.fail_next(3, Fault::Delay(Duration::from_secs(2)));
    let started = Instant::now();
    let outcome = runtime().block_on(livekit(&standin).create_outbound(&outbound_leg()));
    assert!(
        matches!(outcome, Err(ProvisionError::Unavailable(_))),
        "{outcome:?}"
    );
    // 3 attempts of 500 ms and 30 ms of back-off.
    assert!(
        started.elapsed() < Duration::from_millis(1900),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_dropped_connection_is_retried() {
    let standin = StandIn::start();
    standin.fail_next(1, Fault::Drop);
    runtime()
        .block_on(livekit(&standin).create_outbound(&outbound_leg()))
        .unwrap();
    assert_eq!(
        outcomes(&standin),
        [
            "CreateSIPOutboundTrunk fault:drop",
            "CreateSIPOutboundTrunk ok",
            "ListSIPOutboundTrunk ok",
            "ListSIPOutboundTrunk ok",
        ]
    );
}

#[test]
fn the_leg_list_names_the_registrys_legs_and_shows_the_others_untagged() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    let ours = rt
        .block_on(livekit.create_inbound(&credentials_leg("+14155551234")))
        .unwrap();
    let theirs = standin.insert_inbound(livekit_protocol::SipInboundTrunkInfo {
        numbers: vec!["+14155550000".into()],
        metadata: "{\"owner\":\"another system\"}".into(),
        ..Default::default()
    });
    let legs = rt.block_on(livekit.list_legs()).unwrap();
    let find = |id: &str| legs.iter().find(|leg| leg.id.as_str() == id).unwrap();
    let mine = find(ours.as_str());
    assert_eq!(
        mine.owner.map(|o| (o.trunk.get(), o.owner.get())),
        Some((42, 7))
    );
    assert!(mine.matches_inbound(&credentials_leg("+14155551234")));
    assert_eq!(find(&theirs).owner, None);
    assert!(mine.allow_list.is_empty());
}

#[test]
fn an_allow_list_is_listed_as_a_digest_of_its_entries_in_any_order() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    let mut leg = credentials_leg("1000");
    leg.access = InboundAccess::AllowList(vec!["203.0.113.10".into(), "2001:db8::/32".into()]);
    rt.block_on(livekit.create_inbound(&leg)).unwrap();
    let legs = rt.block_on(livekit.list_legs()).unwrap();
    assert_eq!(
        legs[0].allow_list,
        AllowListDigest::of(&["2001:db8::/32", "203.0.113.10"])
    );
    assert_ne!(legs[0].allow_list, AllowListDigest::of(&["203.0.113.10"]));
    assert_ne!(
        legs[0].allow_list,
        AllowListDigest::of(&["203.0.113.10", "2001:db8::/33"])
    );
    assert!(legs[0].matches_inbound(&leg));
}

/// `count` inbound trunks of another system, each with its own number.
fn insert_inbound_trunks(standin: &StandIn, count: usize) {
    for n in 0..count {
        standin.insert_inbound(livekit_protocol::SipInboundTrunkInfo {
            numbers: vec![format!("+1415555{n:04}")],
            ..Default::default()
        });
    }
}

/// The `page` (field 3: after_id = 1, limit = 2) of each list call of `method`.
fn pages_asked(standin: &StandIn, method: &str) -> Vec<Option<(String, u64)>> {
    standin
        .journal()
        .iter()
        .filter(|call| call.method == method)
        .map(|call| {
            let request = fields(&call.body);
            let page = request.iter().find(|(field, _, _)| *field == 3)?;
            let page = fields(&page.2);
            let after = string_field(&page, 1).pop().unwrap_or_default();
            let limit = page
                .iter()
                .find(|(field, wire, _)| *field == 2 && *wire == 0)
                .map_or(0, |(_, _, value)| {
                    u64::from_le_bytes(value[..].try_into().unwrap())
                });
            Some((after, limit))
        })
        .collect()
}

#[test]
fn the_leg_list_is_read_a_page_of_1000_at_a_time_and_misses_none() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    insert_inbound_trunks(&standin, 2_345);
    rt.block_on(livekit.create_outbound(&outbound_leg()))
        .unwrap();
    let legs = rt.block_on(livekit.list_legs()).unwrap();
    let mut ids: Vec<&str> = legs.iter().map(|leg| leg.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 2_346, "every leg once");
    assert_eq!(ids, standin.trunk_ids());
    // Pages of 1000, each after the last id of the one before, until an empty one.
    let mut inbound: Vec<String> = standin
        .inbound()
        .into_iter()
        .map(|t| t.sip_trunk_id)
        .collect();
    inbound.sort_unstable();
    let asked = pages_asked(&standin, "ListSIPInboundTrunk");
    let expected: Vec<Option<(String, u64)>> = [
        String::new(),
        inbound[999].clone(),
        inbound[1_999].clone(),
        inbound[2_344].clone(),
    ]
    .into_iter()
    .map(|after| Some((after, 1000)))
    .collect();
    assert_eq!(asked, expected);
    assert_eq!(pages_asked(&standin, "ListSIPOutboundTrunk").len(), 2);
}

#[test]
fn a_livekit_that_ignores_paging_is_listed_in_full_once() {
    let standin = StandIn::start();
    standin.ignore_paging();
    let livekit = livekit(&standin);
    insert_inbound_trunks(&standin, 1_500);
    let legs = runtime().block_on(livekit.list_legs()).unwrap();
    let mut ids: Vec<&str> = legs.iter().map(|leg| leg.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 1_500);
    // The second answer had nothing after the first's largest id: the listing ended.
    assert_eq!(pages_asked(&standin, "ListSIPInboundTrunk").len(), 2);
}

#[test]
fn the_legs_holding_a_number_are_asked_with_livekits_number_filter() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    insert_inbound_trunks(&standin, 50);
    let ours = rt
        .block_on(livekit.create_inbound(&credentials_leg("+14155559999")))
        .unwrap();
    let held = rt
        .block_on(livekit.inbound_legs_holding("+14155559999"))
        .unwrap();
    assert_eq!(
        held.iter().map(|leg| leg.id.as_str()).collect::<Vec<_>>(),
        [ours.as_str()]
    );
    let call = standin.journal().pop().unwrap();
    assert_eq!(call.method, "ListSIPInboundTrunk");
    // ListSIPInboundTrunkRequest { numbers = 2 }, no page: LiveKit filters after paging.
    let request = fields(&call.body);
    assert_eq!(string_field(&request, 2), ["+14155559999"]);
    assert!(request.iter().all(|(field, _, _)| *field != 3));
}

/// The fields of a protobuf message: (field number, wire type, bytes for length-delimited,
/// the value's 8 little-endian bytes for a varint).
fn fields(mut bytes: &[u8]) -> Vec<(u64, u8, Vec<u8>)> {
    fn varint(bytes: &mut &[u8]) -> u64 {
        let mut value = 0;
        let mut shift = 0;
        loop {
            let byte = bytes[0];
            *bytes = &bytes[1..];
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return value;
            }
            shift += 7;
        }
    }
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let key = varint(&mut bytes);
        let (field, wire) = (key >> 3, (key & 7) as u8);
        match wire {
            0 => {
                let value = varint(&mut bytes);
                out.push((field, wire, value.to_le_bytes().to_vec()));
            }
            2 => {
                let length = varint(&mut bytes) as usize;
                out.push((field, wire, bytes[..length].to_vec()));
                bytes = &bytes[length..];
            }
            other => panic!("unexpected wire type {other}"),
        }
    }
    out
}

fn string_field(message: &[(u64, u8, Vec<u8>)], number: u64) -> Vec<String> {
    message
        .iter()
        .filter(|(field, wire, _)| *field == number && *wire == 2)
        .map(|(_, _, bytes)| String::from_utf8(bytes.clone()).unwrap())
        .collect()
}

#[test]
fn the_wire_format_is_livekits_path_content_type_grant_and_field_numbers() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let rt = runtime();
    rt.block_on(livekit.create_inbound(&credentials_leg("+14155551234")))
        .unwrap();
    rt.block_on(livekit.create_outbound(&outbound_leg()))
        .unwrap();
    let journal = standin.journal();
    let (inbound, outbound) = (&journal[0], &journal[1]);
    assert_eq!(inbound.path, "/twirp/livekit.SIP/CreateSIPInboundTrunk");
    assert_eq!(outbound.path, "/twirp/livekit.SIP/CreateSIPOutboundTrunk");
    assert_eq!(inbound.content_type, "application/protobuf");
    // The token: HS256, issued by the API key, with the sip.admin grant.
    let mut parts = inbound.token.split('.');
    let header = parts.next().unwrap();
    let claims = parts.next().unwrap();
    let decode = |text: &str| {
        use base64::Engine;
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(text)
            .unwrap();
        serde_json::from_slice::<serde_json::Value>(&bytes).unwrap()
    };
    assert_eq!(decode(header)["alg"], "HS256");
    let claims = decode(claims);
    assert_eq!(claims["iss"], standin.api_key());
    assert_eq!(claims["sip"]["admin"], true);
    // CreateSIPInboundTrunkRequest { trunk = 1 } / SIPInboundTrunkInfo { name = 2,
    // metadata = 3, numbers = 4, auth_username = 7, auth_password = 8 }.
    let request = fields(&inbound.body);
    assert_eq!(request.len(), 1);
    assert_eq!((request[0].0, request[0].1), (1, 2));
    let trunk = fields(&request[0].2);
    assert_eq!(string_field(&trunk, 2), ["sip-trunks 42 inbound (user 7)"]);
    assert!(string_field(&trunk, 3)[0].contains("\"trunk_id\":42"));
    assert_eq!(string_field(&trunk, 4), ["+14155551234"]);
    assert_eq!(string_field(&trunk, 7), ["acme_user"]);
    assert_eq!(string_field(&trunk, 8), [PASSWORD]);
    // CreateSIPOutboundTrunkRequest { trunk = 1 } / SIPOutboundTrunkInfo { address = 4,
    // numbers = 6, auth_username = 7, auth_password = 8 }.
    let request = fields(&outbound.body);
    let trunk = fields(&request[0].2);
    assert_eq!(string_field(&trunk, 4), ["sip.carrier.example"]);
    assert_eq!(string_field(&trunk, 6), ["+14155551234"]);
    assert_eq!(string_field(&trunk, 7), ["acme_user"]);
    assert_eq!(string_field(&trunk, 8), [PASSWORD]);
}

#[test]
fn an_error_text_livekit_writes_reaches_the_log_bounded_and_on_one_line() {
    let standin = StandIn::start();
    let livekit = livekit(&standin);
    let huge: &'static str = Box::leak("bad\ncode\u{1b}[31m".repeat(5_000).into_boxed_str());
    standin.fail_next(1, Fault::Status(400, huge));
    let outcome = runtime().block_on(livekit.create_outbound(&outbound_leg()));
    let text = match outcome {
        Err(error) => error.to_string(),
        Ok(id) => panic!("created {id:?}"),
    };
    assert!(text.chars().count() < 400, "{} characters", text.len());
    assert!(!text.contains('\n') && !text.contains('\u{1b}'), "{text}");
}
