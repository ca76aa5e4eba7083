//! The trunk's settable fields as one enum, each with its JSON name and what changing it does
//! to the legs on the voice infrastructure. Every rule that asks "which field touches which
//! leg" is an exhaustive `match` on [`TrunkField`], and the functions that read settings or a
//! patch destructure them without `..`, so a new field is a compile error in each place that
//! must decide about it (docs/architecture.md, "Adding a trunk field").

use super::update::{Patch, SipTrunkPatchInput};
use super::TrunkSettings;

/// One field a client sets, in the contract's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrunkField {
    /// `phone_number`.
    PhoneNumber,
    /// `nickname`.
    Nickname,
    /// `sip_username`.
    SipUsername,
    /// `sip_password`.
    SipPassword,
    /// `sip_address`.
    SipAddress,
    /// `sip_calling_format`.
    CallingFormat,
    /// `inbound_authorization_type`.
    InboundAuthorizationType,
    /// `allowed_inbound_ips`.
    AllowedInboundIps,
    /// `country_code`.
    CountryCode,
    /// `outbound_proxy`.
    OutboundProxy,
}

/// What changing a field does to the trunk's legs (the contract's provisioning table).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LegEffect {
    /// Both legs are re-created.
    Both,
    /// The inbound leg is re-created.
    Inbound,
    /// The outbound leg is re-created.
    Outbound,
    /// No leg is re-created, but an infrastructure that writes the called number itself
    /// (Kamailio) must restyle the outbound leg.
    Restyle,
    /// Nothing on the infrastructure.
    None,
}

impl LegEffect {
    /// True when the inbound leg is re-created.
    pub fn recreates_inbound(self) -> bool {
        matches!(self, Self::Both | Self::Inbound)
    }

    /// True when the outbound leg is re-created.
    pub fn recreates_outbound(self) -> bool {
        matches!(self, Self::Both | Self::Outbound)
    }
}

impl TrunkField {
    /// Every field, in the contract's order.
    pub const ALL: [Self; 10] = [
        Self::PhoneNumber,
        Self::Nickname,
        Self::SipUsername,
        Self::SipPassword,
        Self::SipAddress,
        Self::CallingFormat,
        Self::InboundAuthorizationType,
        Self::AllowedInboundIps,
        Self::CountryCode,
        Self::OutboundProxy,
    ];

    /// The field's name in request and response bodies (and in validation errors).
    pub fn json_name(self) -> &'static str {
        match self {
            Self::PhoneNumber => "phone_number",
            Self::Nickname => "nickname",
            Self::SipUsername => "sip_username",
            Self::SipPassword => "sip_password",
            Self::SipAddress => "sip_address",
            Self::CallingFormat => "sip_calling_format",
            Self::InboundAuthorizationType => "inbound_authorization_type",
            Self::AllowedInboundIps => "allowed_inbound_ips",
            Self::CountryCode => "country_code",
            Self::OutboundProxy => "outbound_proxy",
        }
    }

    /// What changing the field does to the legs.
    pub fn effect(self) -> LegEffect {
        match self {
            Self::PhoneNumber | Self::SipUsername | Self::SipPassword => LegEffect::Both,
            Self::SipAddress | Self::OutboundProxy => LegEffect::Outbound,
            Self::InboundAuthorizationType | Self::AllowedInboundIps => LegEffect::Inbound,
            Self::CallingFormat | Self::CountryCode => LegEffect::Restyle,
            Self::Nickname => LegEffect::None,
        }
    }

    /// The fields whose value differs between `before` and `after`.
    pub fn changed<P: PartialEq>(before: &TrunkSettings<P>, after: &TrunkSettings<P>) -> Vec<Self> {
        // No `..`: a new setting must be compared here.
        let TrunkSettings {
            phone_number,
            nickname,
            sip_username,
            sip_password,
            sip_address,
            calling_format,
            inbound_authorization,
            outbound_proxy,
            country_code,
        } = before;
        let differs = [
            (Self::PhoneNumber, *phone_number != after.phone_number),
            (Self::Nickname, *nickname != after.nickname),
            (Self::SipUsername, *sip_username != after.sip_username),
            (Self::SipPassword, *sip_password != after.sip_password),
            (Self::SipAddress, *sip_address != after.sip_address),
            (Self::CallingFormat, *calling_format != after.calling_format),
            (
                Self::InboundAuthorizationType,
                inbound_authorization.kind() != after.inbound_authorization.kind(),
            ),
            (
                Self::AllowedInboundIps,
                inbound_authorization.allowed_ips() != after.inbound_authorization.allowed_ips(),
            ),
            (Self::CountryCode, *country_code != after.country_code),
            (Self::OutboundProxy, *outbound_proxy != after.outbound_proxy),
        ];
        differs
            .into_iter()
            .filter_map(|(field, differs)| differs.then_some(field))
            .collect()
    }

    /// The fields an update body sends (with a value or as `null`).
    pub fn sent(input: &SipTrunkPatchInput) -> Vec<Self> {
        // No `..`: a new body field must be listed here.
        let SipTrunkPatchInput {
            phone_number,
            nickname,
            sip_username,
            sip_password,
            sip_address,
            sip_calling_format,
            inbound_authorization_type,
            allowed_inbound_ips,
            country_code,
            outbound_proxy,
        } = input;
        let sent = [
            (Self::PhoneNumber, phone_number.is_sent()),
            (Self::Nickname, nickname.is_sent()),
            (Self::SipUsername, sip_username.is_sent()),
            (Self::SipPassword, sip_password.is_sent()),
            (Self::SipAddress, sip_address.is_sent()),
            (Self::CallingFormat, sip_calling_format.is_sent()),
            (
                Self::InboundAuthorizationType,
                inbound_authorization_type.is_sent(),
            ),
            (Self::AllowedInboundIps, allowed_inbound_ips.is_sent()),
            (Self::CountryCode, country_code.is_sent()),
            (Self::OutboundProxy, outbound_proxy.is_sent()),
        ];
        sent.into_iter()
            .filter_map(|(field, sent)| sent.then_some(field))
            .collect()
    }
}

impl<T> Patch<T> {
    /// True unless the field was left out of the body.
    pub fn is_sent(&self) -> bool {
        !matches!(self, Self::Absent)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_field_is_listed_once_in_all_with_a_distinct_json_name() {
        let mut names: Vec<&str> = TrunkField::ALL.iter().map(|f| f.json_name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), TrunkField::ALL.len());
    }

    #[test]
    fn the_effects_are_the_contracts_provisioning_table() {
        let recreating = |inbound: bool, outbound: bool| -> Vec<&str> {
            TrunkField::ALL
                .into_iter()
                .filter(|f| {
                    f.effect().recreates_inbound() == inbound
                        && f.effect().recreates_outbound() == outbound
                })
                .map(TrunkField::json_name)
                .collect()
        };
        assert_eq!(
            recreating(true, true),
            ["phone_number", "sip_username", "sip_password"]
        );
        assert_eq!(recreating(false, true), ["sip_address", "outbound_proxy"]);
        assert_eq!(
            recreating(true, false),
            ["inbound_authorization_type", "allowed_inbound_ips"]
        );
        assert_eq!(
            recreating(false, false),
            ["nickname", "sip_calling_format", "country_code"]
        );
    }

    /// An update body that changes `field` of [`crate::fixtures::stored_trunk`] (`auth`, or
    /// `ip` where the field concerns the allow-list). A new field must be given one here.
    fn changing(field: TrunkField) -> (&'static str, SipTrunkPatchInput) {
        let value = |raw: &str| Patch::Value(raw.to_owned());
        let mut input = SipTrunkPatchInput::default();
        let auth = match field {
            TrunkField::PhoneNumber => {
                input.phone_number = value("+14155550000");
                "auth"
            }
            TrunkField::Nickname => {
                input.nickname = value("Other line");
                "auth"
            }
            TrunkField::SipUsername => {
                input.sip_username = value("other_user");
                "auth"
            }
            TrunkField::SipPassword => {
                input.sip_password = value("Other-Secret-2");
                "auth"
            }
            TrunkField::SipAddress => {
                input.sip_address = value("sip2.carrier.example");
                "auth"
            }
            TrunkField::CallingFormat => {
                input.sip_calling_format = value("national");
                "auth"
            }
            TrunkField::InboundAuthorizationType => {
                input.inbound_authorization_type = value("auth");
                "ip"
            }
            TrunkField::AllowedInboundIps => {
                input.allowed_inbound_ips = Patch::Value(vec!["192.0.2.1".to_owned()]);
                "ip"
            }
            TrunkField::CountryCode => {
                input.country_code = value("CA");
                "auth"
            }
            TrunkField::OutboundProxy => {
                input.outbound_proxy = Patch::Value(false);
                "auth"
            }
        };
        (auth, input)
    }

    #[test]
    fn every_field_sent_in_an_update_body_is_parsed_applied_and_seen_as_changed() {
        for field in TrunkField::ALL {
            let (auth, input) = changing(field);
            let current = crate::fixtures::stored_trunk(auth);
            assert_eq!(TrunkField::sent(&input), [field]);
            let patch = super::super::SipTrunkPatch::parse_for(&input, &current)
                .unwrap_or_else(|errors| panic!("{field:?}: {errors:?}"));
            let update = patch
                .apply(&current, crate::Timestamp::now())
                .unwrap_or_else(|errors| panic!("{field:?}: {errors:?}"));
            assert!(
                TrunkField::changed(&current.settings, &update.trunk.settings).contains(&field),
                "{field:?}"
            );
        }
    }

    #[test]
    fn a_body_lists_exactly_the_fields_it_sends_null_included() {
        let input = SipTrunkPatchInput {
            nickname: Patch::Null,
            outbound_proxy: Patch::Value(true),
            ..SipTrunkPatchInput::default()
        };
        assert_eq!(
            TrunkField::sent(&input),
            [TrunkField::Nickname, TrunkField::OutboundProxy]
        );
        assert!(TrunkField::sent(&SipTrunkPatchInput::default()).is_empty());
    }
}
