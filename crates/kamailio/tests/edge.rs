//! The adapter against a real Kamailio running `deploy/kamailio/kamailio.cfg`, proven with
//! sipp calls: what the adapter writes is what the edge enforces, on SQLite and PostgreSQL.
//! Skipped (with a note) when `kamailio` or `sipp` is missing, unless
//! `SIP_TRUNKS_REQUIRE_SIP_TOOLS` is set (`.ci/run` sets it and installs both).
#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use domain::{
    CallingFormat, CountryCode, InboundAccess, InboundLeg, LegKind, OutboundLeg, ProvisionError,
    SipPassword, TrunkId, UserId, VoiceInfrastructure,
};
use kamailio_adapter::testing::{
    carrier_address, free_udp_port, sipp_call, tools_present, Edge, EdgeStore, SippServer,
};
use kamailio_adapter::Kamailio;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

fn stores() -> Vec<(&'static str, EdgeStore)> {
    let mut stores = vec![("sqlite", EdgeStore::Sqlite)];
    match std::env::var("TEST_DATABASE_URL") {
        Ok(url) if !url.is_empty() => stores.push(("postgres", EdgeStore::Postgres(url))),
        _ => eprintln!("TEST_DATABASE_URL not set: the edge's PostgreSQL store is not tried"),
    }
    stores
}

fn inbound(trunk: i64, number: &str, access: InboundAccess) -> InboundLeg {
    InboundLeg {
        trunk: TrunkId::new(trunk).unwrap(),
        owner: UserId::new(1).unwrap(),
        number: number.into(),
        access,
    }
}

#[test]
fn every_leg_the_adapter_writes_is_enforced_by_the_edge_on_every_store() {
    if !tools_present() {
        assert!(
            std::env::var("SIP_TRUNKS_REQUIRE_SIP_TOOLS").is_err(),
            "kamailio and sipp are required here (SIP_TRUNKS_REQUIRE_SIP_TOOLS is set)"
        );
        eprintln!("kamailio or sipp missing: skipped");
        return;
    }
    for (name, store) in stores() {
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
        let kamailio = Kamailio::open(edge.adapter_settings()).unwrap();
        let rt = runtime();
        let target = format!("127.0.0.1:{}", edge.sip_port);
        let dir = edge.dir().to_owned();

        // ip: the allow-list, not the neighbour.
        let ip_leg = rt
            .block_on(kamailio.create_inbound(&inbound(
                1,
                "+14155550001",
                InboundAccess::AllowList(vec!["127.0.0.2".into(), "127.0.1.0/24".into()]),
            )))
            .unwrap();
        for source in ["127.0.0.2", "127.0.1.77"] {
            let run = sipp_call(&dir, "call", source, &target, "+14155550001", &[]);
            assert!(
                run.passed,
                "{name}: {source} is allowed: {}\n{}",
                run.errors,
                edge.log()
            );
        }
        let run = sipp_call(&dir, "refused", "127.0.0.3", &target, "+14155550001", &[]);
        assert!(
            run.passed,
            "{name}: 127.0.0.3 is not allowed: {}",
            run.errors
        );
        assert!(
            platform.log().contains("answered trunk=1"),
            "{}",
            platform.log()
        );

        // An IPv6 range (the permissions module's subnet table).
        if edge.ipv6 {
            rt.block_on(kamailio.create_inbound(&inbound(
                6,
                "+14155550006",
                InboundAccess::AllowList(vec!["::/127".into()]),
            )))
            .unwrap();
            let v6 = format!("[::1]:{}", edge.sip_port);
            let run = sipp_call(&dir, "call", "::1", &v6, "+14155550006", &[]);
            assert!(run.passed, "{name}: ::1 is in ::/127: {}", run.errors);
            let run = sipp_call(&dir, "refused", "127.0.0.2", &target, "+14155550006", &[]);
            assert!(run.passed, "{name}: 127.0.0.2 is not: {}", run.errors);
        }

        // The number is one trunk's only.
        let again = rt.block_on(kamailio.create_inbound(&inbound(
            2,
            "+14155550001",
            InboundAccess::AllowList(vec!["127.0.0.9".into()]),
        )));
        assert_eq!(again, Err(ProvisionError::NumberTaken), "{name}");

        // auth: the digest, and nothing else.
        let password = SipPassword::parse("Edge-Secret-1").unwrap();
        rt.block_on(kamailio.create_inbound(&inbound(
            3,
            "+14155550003",
            InboundAccess::Credentials {
                username: "acme".into(),
                password: password.clone(),
            },
        )))
        .unwrap();
        let right = sipp_call(
            &dir,
            "call",
            "127.0.0.4",
            &target,
            "+14155550003",
            &["-au", "acme", "-ap", "Edge-Secret-1"],
        );
        assert!(right.passed, "{name}: {}", right.errors);
        for (user, pass) in [("acme", "wrong"), ("other", "Edge-Secret-1")] {
            let run = sipp_call(
                &dir,
                "refused",
                "127.0.0.4",
                &target,
                "+14155550003",
                &["-au", user, "-ap", pass],
            );
            assert!(
                run.passed,
                "{name}: {user}/{pass} must be refused: {}",
                run.errors
            );
        }

        // Outbound: the carrier's challenge answered, the number in each format.
        let carrier_ip = carrier_address().unwrap();
        let carrier = SippServer::start(
            &dir,
            "carrier",
            &carrier_ip,
            5060,
            &[
                "-set",
                "user",
                "acme_out",
                "-set",
                "password",
                "Out-Secret-2",
            ],
        )
        .unwrap();
        let mut outbound_id = None;
        for (format, country, called, written) in [
            (
                CallingFormat::PlusE164,
                "US",
                "+14155559876",
                "+14155559876",
            ),
            (CallingFormat::E164, "US", "+14155559876", "14155559876"),
            (CallingFormat::National, "US", "+14155559876", "4155559876"),
            (
                CallingFormat::National,
                "GB",
                "+442079460000",
                "02079460000",
            ),
        ] {
            let leg = OutboundLeg {
                trunk: TrunkId::new(5).unwrap(),
                owner: UserId::new(1).unwrap(),
                number: "+14155550005".into(),
                address: carrier_ip.clone(),
                username: "acme_out".into(),
                password: SipPassword::parse("Out-Secret-2").unwrap(),
                fixed_ip: false,
                calling_format: format,
                country: CountryCode::parse(country).unwrap(),
            };
            match &outbound_id {
                None => outbound_id = Some(rt.block_on(kamailio.create_outbound(&leg)).unwrap()),
                Some(id) => rt.block_on(kamailio.restyle_outbound(id, &leg)).unwrap(),
            }
            let run = sipp_call(
                &dir,
                "call",
                "127.0.0.1",
                &target,
                called,
                &[
                    "-key",
                    "extra",
                    "X-Sip-Trunk: 5",
                    "-key",
                    "extra2",
                    &edge.platform_secret_header(),
                ],
            );
            assert!(
                run.passed,
                "{name} {format}: {}\n{}",
                run.errors,
                edge.log()
            );
            assert!(
                carrier
                    .log()
                    .lines()
                    .rev()
                    .find(|line| line.starts_with("called="))
                    .is_some_and(|line| line == format!("called={written}")),
                "{name} {format}: {}",
                carrier.log()
            );
        }

        // Listed with their owners; deleted, refused.
        let legs = rt.block_on(kamailio.list_legs()).unwrap();
        assert_eq!(
            legs.len(),
            if edge.ipv6 { 4 } else { 3 },
            "{name}: {legs:?}"
        );
        rt.block_on(kamailio.delete_leg(LegKind::Inbound, &ip_leg))
            .unwrap();
        let run = sipp_call(&dir, "refused", "127.0.0.2", &target, "+14155550001", &[]);
        assert!(
            run.passed,
            "{name}: a deleted number is refused: {}",
            run.errors
        );
        rt.block_on(kamailio.delete_leg(LegKind::Inbound, &ip_leg))
            .unwrap();
        drop(carrier);
        drop(platform);
        edge.stop();
    }
}
