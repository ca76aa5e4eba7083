//! An opt-in smoke test against a real LiveKit project: it runs only when `LIVEKIT_URL`,
//! `LIVEKIT_API_KEY` and `LIVEKIT_API_SECRET` are set (never in CI), and passes trivially
//! otherwise. It creates one inbound and one outbound trunk for an unused test number,
//! finds them in the list with the registry's tag, and removes them.
//!
//! `LIVEKIT_URL=wss://<project>.livekit.cloud LIVEKIT_API_KEY=... LIVEKIT_API_SECRET=... \
//!  cargo test -p sip-trunks-livekit --test real_livekit -- --nocapture`

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stderr)]

use domain::{
    CallingFormat, CountryCode, InboundAccess, InboundLeg, LegKind, OutboundLeg, SipPassword,
    TrunkId, UserId, VoiceInfrastructure,
};
use livekit_adapter::{ApiSecret, LiveKit, LiveKitSettings};

fn settings() -> Option<LiveKitSettings> {
    let url = std::env::var("LIVEKIT_URL").ok()?;
    let key = std::env::var("LIVEKIT_API_KEY").ok()?;
    let secret = std::env::var("LIVEKIT_API_SECRET").ok()?;
    Some(LiveKitSettings::new(url, key, ApiSecret::new(secret)))
}

#[test]
fn a_real_livekit_project_takes_both_legs_lists_them_tagged_and_removes_them() {
    let Some(settings) = settings() else {
        eprintln!("skipped: LIVEKIT_URL, LIVEKIT_API_KEY and LIVEKIT_API_SECRET are not all set");
        return;
    };
    let livekit = LiveKit::new(settings);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // A number in the range reserved for fiction (+1 555 01xx), unique per run.
    let number = format!("+1555010{:04}", rand_suffix());
    let trunk = TrunkId::new(999_000_000 + i64::from(rand_suffix())).unwrap();
    let owner = UserId::new(1).unwrap();
    let password = SipPassword::parse("Smoke-Test-Pass-1").unwrap();
    let inbound = rt
        .block_on(livekit.create_inbound(&InboundLeg {
            trunk,
            owner,
            number: number.clone(),
            access: InboundAccess::Credentials {
                username: "smoke_user".into(),
                password: password.clone(),
            },
        }))
        .unwrap();
    let outbound = rt
        .block_on(livekit.create_outbound(&OutboundLeg {
            trunk,
            owner,
            number: number.clone(),
            address: "sip.example.com".into(),
            username: "smoke_user".into(),
            password,
            fixed_ip: false,
            calling_format: CallingFormat::PlusE164,
            country: CountryCode::parse("US").unwrap(),
        }))
        .unwrap();
    let legs = rt.block_on(livekit.list_legs()).unwrap();
    for id in [&inbound, &outbound] {
        let leg = legs.iter().find(|leg| leg.id == *id).expect("listed");
        assert_eq!(leg.owner.map(|o| o.trunk), Some(trunk), "tagged");
        assert_eq!(leg.numbers, std::slice::from_ref(&number));
    }
    rt.block_on(livekit.delete_leg(LegKind::Inbound, &inbound))
        .unwrap();
    rt.block_on(livekit.delete_leg(LegKind::Outbound, &outbound))
        .unwrap();
    let legs = rt.block_on(livekit.list_legs()).unwrap();
    assert!(!legs
        .iter()
        .any(|leg| leg.id == inbound || leg.id == outbound));
}

fn rand_suffix() -> u16 {
    rand::random::<u16>() % 10_000
}
