//! Which legs on the voice infrastructure a change of a trunk re-creates.

use super::TrunkSettings;

/// The legs a change re-creates, per the contract's table:
///
/// | field changed | inbound | outbound |
/// |---|---|---|
/// | sip_username, sip_password, phone_number | yes | yes |
/// | sip_address, outbound_proxy | | yes |
/// | inbound_authorization_type, allowed_inbound_ips | yes | |
///
/// nickname, sip_calling_format and country_code re-create nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegChanges {
    /// The inbound leg is re-created (gets a new id).
    pub inbound: bool,
    /// The outbound leg is re-created (gets a new id).
    pub outbound: bool,
}

impl LegChanges {
    /// Both legs: what a new trunk needs.
    pub const BOTH: Self = Self {
        inbound: true,
        outbound: true,
    };

    /// The legs that going from `before` to `after` re-creates.
    pub fn between(before: &TrunkSettings, after: &TrunkSettings) -> Self {
        let credentials = before.sip_username != after.sip_username
            || before.sip_password != after.sip_password
            || before.phone_number != after.phone_number;
        let outbound_route = before.sip_address != after.sip_address
            || before.outbound_proxy != after.outbound_proxy;
        let inbound_rule = before.inbound_authorization != after.inbound_authorization;
        Self {
            inbound: credentials || inbound_rule,
            outbound: credentials || outbound_route,
        }
    }

    /// True when at least one leg is re-created.
    pub fn any(self) -> bool {
        self.inbound || self.outbound
    }
}
