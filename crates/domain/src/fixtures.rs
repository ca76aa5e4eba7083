//! Trunks the domain's unit tests share.

use crate::{NewSipTrunk, NewSipTrunkInput, SipTrunk, Timestamp, TrunkId, UserId};

/// Trunk 7 of user 3: `+14155551234`, credentials `acme_user`, carrier
/// `sip.carrier.example`, `+e164`, outbound proxy on; `auth` (credentials) or `ip` (an
/// allow-list of `198.51.100.0/24` and `203.0.113.9`). No legs.
pub(crate) fn stored_trunk(auth: &str) -> SipTrunk {
    let input = NewSipTrunkInput {
        sip_trunk_type: Some("number".into()),
        phone_number: Some("+14155551234".into()),
        sip_username: Some("acme_user".into()),
        sip_password: Some("Secret-Pass-1".into()),
        sip_address: Some("sip.carrier.example".into()),
        sip_calling_format: Some("+e164".into()),
        inbound_authorization_type: Some(auth.into()),
        allowed_inbound_ips: (auth == "ip")
            .then(|| vec!["198.51.100.0/24".into(), "203.0.113.9".into()]),
        outbound_proxy: Some(true),
        ..Default::default()
    };
    SipTrunk::create(
        TrunkId::new(7).unwrap(),
        UserId::new(3).unwrap(),
        NewSipTrunk::parse(&input).unwrap(),
        Timestamp::now(),
    )
}
