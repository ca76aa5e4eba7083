//! Updating a trunk: the raw partial body, its parse into a [`SipTrunkPatch`], and the rules
//! that apply a patch to a stored trunk.

use std::fmt;

use super::create::{required_message, AUTH_TAKES_NO_LIST};
use super::inbound::{ALLOWED_IPS_FIELD, ALLOW_LIST_REQUIRED};
use super::{
    AllowedIps, AuthorizationType, CallingFormat, CountryCode, InboundAuthorization, LegChanges,
    LegEffect, Nickname, PhoneNumber, SipAddress, SipPassword, SipTrunk, SipUsername, TrunkField,
    TrunkType,
};
use crate::{FieldError, Timestamp, ValidationErrors};

/// One field of a partial update as sent: left out, sent as `null`, or sent with a value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum Patch<T> {
    /// Not in the body: the field keeps its value.
    #[default]
    Absent,
    /// `null` in the body.
    Null,
    /// A value in the body.
    Value(T),
}

/// The update body as received. Every field of the create body but `sip_trunk_type`.
#[derive(Clone, Default)]
pub struct SipTrunkPatchInput {
    /// Checked against the stored trunk's type.
    pub phone_number: Patch<String>,
    /// `null` or blank clears it.
    pub nickname: Patch<String>,
    /// SIP auth username.
    pub sip_username: Patch<String>,
    /// SIP auth password (never printed by `Debug`).
    pub sip_password: Patch<String>,
    /// The carrier's SIP server host.
    pub sip_address: Patch<String>,
    /// `+e164`, `e164` or `national`.
    pub sip_calling_format: Patch<String>,
    /// `auth` or `ip`.
    pub inbound_authorization_type: Patch<String>,
    /// The new allow-list; `null` or `[]` only fits an `auth` trunk.
    pub allowed_inbound_ips: Patch<Vec<String>>,
    /// ISO 3166-1 alpha-2.
    pub country_code: Patch<String>,
    /// Fixed-IP outbound proxy.
    pub outbound_proxy: Patch<bool>,
}

impl SipTrunkPatchInput {
    /// False when the body sends only fields no leg depends on (nickname, calling format,
    /// country), whatever their values: such an update re-creates no leg on the voice
    /// infrastructure, whatever the stored trunk is.
    pub fn may_change_legs(&self) -> bool {
        TrunkField::sent(self).into_iter().any(|field| {
            let effect = field.effect();
            effect.recreates_inbound() || effect.recreates_outbound()
        })
    }

    /// True when the body sends a field that restyles the outbound leg (the calling format
    /// or the country): what an infrastructure that writes called numbers itself (Kamailio)
    /// must hear of, though no leg is re-created.
    pub fn may_change_dialing(&self) -> bool {
        TrunkField::sent(self)
            .into_iter()
            .any(|field| field.effect() == LegEffect::Restyle)
    }
}

impl fmt::Debug for SipTrunkPatchInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let password = match &self.sip_password {
            Patch::Absent => Patch::Absent,
            Patch::Null => Patch::Null,
            Patch::Value(_) => Patch::Value("[redacted]"),
        };
        f.debug_struct("SipTrunkPatchInput")
            .field("phone_number", &self.phone_number)
            .field("nickname", &self.nickname)
            .field("sip_username", &self.sip_username)
            .field("sip_password", &password)
            .field("sip_address", &self.sip_address)
            .field("sip_calling_format", &self.sip_calling_format)
            .field(
                "inbound_authorization_type",
                &self.inbound_authorization_type,
            )
            .field("allowed_inbound_ips", &self.allowed_inbound_ips)
            .field("country_code", &self.country_code)
            .field("outbound_proxy", &self.outbound_proxy)
            .finish()
    }
}

/// A validated partial update: `None` leaves a field as it is. The rules that depend on the
/// stored trunk (switching authorization type) are checked by [`SipTrunkPatch::apply`], so
/// that a store can apply a patch inside its own transaction, against the row it locked.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SipTrunkPatch {
    /// New number, of the trunk's type.
    pub phone_number: Option<PhoneNumber>,
    /// `Some(None)` clears the nickname.
    pub nickname: Option<Option<Nickname>>,
    /// New username.
    pub sip_username: Option<SipUsername>,
    /// New password.
    pub sip_password: Option<SipPassword>,
    /// New SIP server.
    pub sip_address: Option<SipAddress>,
    /// New number format.
    pub calling_format: Option<CallingFormat>,
    /// New authorization type.
    pub authorization_type: Option<AuthorizationType>,
    /// `Some(None)`: sent as `null` or `[]`; `Some(Some(list))`: a new list.
    pub allowed_ips: Option<Option<AllowedIps>>,
    /// New country.
    pub country_code: Option<CountryCode>,
    /// New proxy flag.
    pub outbound_proxy: Option<bool>,
}

/// The result of applying a patch: the trunk as it is now, whether anything changed, and the
/// legs the change re-creates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkUpdate {
    /// The trunk after the patch (the stored one when nothing changed).
    pub trunk: SipTrunk,
    /// False when the patch was empty or set every field to the value it had.
    pub changed: bool,
    /// The legs to re-create on the voice infrastructure.
    pub legs: LegChanges,
}

/// A non-null value of a non-nullable field; `null` and `""` are "required" failures.
fn value_of<'a, T>(
    errors: &mut ValidationErrors,
    field: &str,
    patch: &'a Patch<String>,
    parse: impl FnOnce(&'a str) -> Result<T, FieldError>,
) -> Option<T> {
    match patch {
        Patch::Absent => None,
        Patch::Value(raw) if !raw.is_empty() => errors.check(field, parse(raw)),
        Patch::Null | Patch::Value(_) => {
            errors.add(field, required_message(field));
            None
        }
    }
}

/// `nickname` as sent: absent (unchanged), null (removed) or a new one.
fn nickname_of(errors: &mut ValidationErrors, patch: &Patch<String>) -> Option<Option<Nickname>> {
    match patch {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(raw) => errors.check("nickname", Nickname::parse(raw)),
    }
}

/// `allowed_inbound_ips` as sent: absent (unchanged), null or empty (no list), or a list
/// whose failing entries are reported each under its index.
fn allowed_ips_of(
    errors: &mut ValidationErrors,
    patch: &Patch<Vec<String>>,
) -> Option<Option<AllowedIps>> {
    match patch {
        Patch::Absent => None,
        Patch::Null => Some(None),
        Patch::Value(entries) if entries.is_empty() => Some(None),
        Patch::Value(entries) => match AllowedIps::parse(entries) {
            Ok(list) => Some(Some(list)),
            Err(list_errors) => {
                errors.merge(list_errors);
                None
            }
        },
    }
}

/// `outbound_proxy` as sent: a flag, or absent; null is an error (it cannot be removed).
fn outbound_proxy_of(errors: &mut ValidationErrors, patch: &Patch<bool>) -> Option<bool> {
    match patch {
        Patch::Absent => None,
        Patch::Null => {
            errors.add(
                "outbound_proxy",
                "The outbound proxy field must be true or false.",
            );
            None
        }
        Patch::Value(flag) => Some(*flag),
    }
}

impl SipTrunkPatch {
    /// Checks every field sent in `input`, the phone number against `trunk_type` (a trunk's
    /// type never changes), and reports every failure at once.
    ///
    /// ```
    /// use domain::{Patch, SipTrunkPatch, SipTrunkPatchInput, TrunkType};
    ///
    /// let input = SipTrunkPatchInput { nickname: Patch::Null, ..Default::default() };
    /// let patch = SipTrunkPatch::parse(&input, TrunkType::Number).unwrap();
    /// assert_eq!(patch.nickname, Some(None));
    /// assert!(SipTrunkPatch::parse(&SipTrunkPatchInput::default(), TrunkType::Number).unwrap().is_empty());
    /// ```
    pub fn parse(
        input: &SipTrunkPatchInput,
        trunk_type: TrunkType,
    ) -> Result<Self, ValidationErrors> {
        let (patch, errors) = Self::parse_partial(input, trunk_type);
        errors.into_result(|| patch)
    }

    /// [`SipTrunkPatch::parse`] for the stored trunk `current`, also checking the rules that
    /// depend on it, so that a client learns every problem in one answer. The store checks
    /// those rules again when it applies the patch, against the row it locked.
    pub fn parse_for<P>(
        input: &SipTrunkPatchInput,
        current: &SipTrunk<P>,
    ) -> Result<Self, ValidationErrors> {
        let (patch, mut errors) = Self::parse_partial(input, current.trunk_type());
        let authorization_failed = errors.fields().any(|(field, _)| {
            field == "inbound_authorization_type" || field.starts_with(ALLOWED_IPS_FIELD)
        });
        if !authorization_failed {
            patch.inbound_authorization(current, &mut errors);
        }
        errors.into_result(|| patch)
    }

    /// Every field that parsed, and the failures of those that did not (in field order).
    fn parse_partial(
        input: &SipTrunkPatchInput,
        trunk_type: TrunkType,
    ) -> (Self, ValidationErrors) {
        let mut errors = ValidationErrors::new();
        let e = &mut errors;
        let patch = Self {
            phone_number: value_of(e, "phone_number", &input.phone_number, |raw| {
                PhoneNumber::parse(trunk_type, raw)
            }),
            nickname: nickname_of(e, &input.nickname),
            sip_username: value_of(e, "sip_username", &input.sip_username, SipUsername::parse),
            sip_password: value_of(e, "sip_password", &input.sip_password, SipPassword::parse),
            sip_address: value_of(e, "sip_address", &input.sip_address, SipAddress::parse),
            calling_format: value_of(
                e,
                "sip_calling_format",
                &input.sip_calling_format,
                CallingFormat::parse,
            ),
            authorization_type: value_of(
                e,
                "inbound_authorization_type",
                &input.inbound_authorization_type,
                AuthorizationType::parse,
            ),
            allowed_ips: allowed_ips_of(e, &input.allowed_inbound_ips),
            country_code: value_of(e, "country_code", &input.country_code, CountryCode::parse),
            outbound_proxy: outbound_proxy_of(e, &input.outbound_proxy),
        };
        (patch, errors)
    }

    /// True when the patch sets nothing.
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// Applies the patch to `current`, enforcing the rules that depend on it:
    /// switching to `ip` needs a list in the same patch, switching to `auth` clears the list,
    /// a list sent for an `auth` trunk is refused, and the phone number must keep the trunk's
    /// type. When nothing really changes, the stored trunk comes back untouched (same
    /// `updated_at`); otherwise `updated_at` becomes `now`.
    pub fn apply(
        &self,
        current: &SipTrunk,
        now: Timestamp,
    ) -> Result<TrunkUpdate, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        if let Some(number) = &self.phone_number {
            if number.kind() != current.trunk_type() {
                errors.add(
                    "phone_number",
                    match current.trunk_type() {
                        TrunkType::Extension => {
                            "The phone number must be an extension, like the trunk's."
                        }
                        TrunkType::Number => {
                            "The phone number must be an E.164 number, like the trunk's."
                        }
                    },
                );
            }
        }
        let inbound_authorization = self.inbound_authorization(current, &mut errors);
        let Some(inbound_authorization) = inbound_authorization.filter(|_| errors.is_empty())
        else {
            return Err(errors);
        };

        let mut next = current.clone();
        if let Some(number) = &self.phone_number {
            next.settings.phone_number = number.clone();
        }
        if let Some(nickname) = &self.nickname {
            next.settings.nickname = nickname.clone();
        }
        if let Some(username) = &self.sip_username {
            next.settings.sip_username = username.clone();
        }
        if let Some(password) = &self.sip_password {
            next.settings.sip_password = password.clone();
        }
        if let Some(address) = &self.sip_address {
            next.settings.sip_address = address.clone();
        }
        if let Some(format) = self.calling_format {
            next.settings.calling_format = format;
        }
        if let Some(country) = self.country_code {
            next.settings.country_code = country;
        }
        if let Some(flag) = self.outbound_proxy {
            next.settings.outbound_proxy = flag;
        }
        next.settings.inbound_authorization = inbound_authorization;

        let changed = next.settings != current.settings;
        if changed {
            next.updated_at = now;
        }
        let legs = LegChanges::between(&current.settings, &next.settings);
        Ok(TrunkUpdate {
            trunk: next,
            changed,
            legs,
        })
    }

    fn inbound_authorization<P>(
        &self,
        current: &SipTrunk<P>,
        errors: &mut ValidationErrors,
    ) -> Option<InboundAuthorization> {
        let kind = self
            .authorization_type
            .unwrap_or_else(|| current.settings.inbound_authorization.kind());
        match (kind, &self.allowed_ips) {
            (AuthorizationType::Ip, Some(Some(list))) => {
                Some(InboundAuthorization::AllowList(list.clone()))
            }
            (AuthorizationType::Ip, None)
                if current.settings.inbound_authorization.kind() == AuthorizationType::Ip =>
            {
                Some(current.settings.inbound_authorization.clone())
            }
            (AuthorizationType::Ip, _) => {
                errors.add(ALLOWED_IPS_FIELD, ALLOW_LIST_REQUIRED);
                None
            }
            (AuthorizationType::Auth, Some(Some(_))) => {
                errors.add(ALLOWED_IPS_FIELD, AUTH_TAKES_NO_LIST);
                None
            }
            (AuthorizationType::Auth, _) => Some(InboundAuthorization::Credentials),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{NewSipTrunk, NewSipTrunkInput, TrunkId, UserId};

    #[test]
    fn only_a_body_sending_a_field_a_leg_depends_on_may_change_legs() {
        let quiet = SipTrunkPatchInput {
            nickname: Patch::Value("Head office".into()),
            sip_calling_format: Patch::Value("e164".into()),
            country_code: Patch::Value("CA".into()),
            ..Default::default()
        };
        assert!(!quiet.may_change_legs());
        assert!(!SipTrunkPatchInput::default().may_change_legs());
        let with = |change: fn(&mut SipTrunkPatchInput)| {
            let mut input = quiet.clone();
            change(&mut input);
            input.may_change_legs()
        };
        assert!(with(
            |i| i.phone_number = Patch::Value("+14155550000".into())
        ));
        assert!(with(|i| i.sip_username = Patch::Null));
        assert!(with(|i| i.sip_password = Patch::Value("x".into())));
        assert!(with(|i| i.sip_address = Patch::Value("h".into())));
        assert!(with(
            |i| i.inbound_authorization_type = Patch::Value("ip".into())
        ));
        assert!(with(|i| i.allowed_inbound_ips = Patch::Null));
        assert!(with(|i| i.outbound_proxy = Patch::Value(true)));
    }

    fn stored(auth: &str, ips: Option<Vec<&str>>) -> SipTrunk {
        let input = NewSipTrunkInput {
            sip_trunk_type: Some("number".into()),
            phone_number: Some("+14155551234".into()),
            nickname: Some("Main".into()),
            sip_username: Some("acme_user".into()),
            sip_password: Some("s3cretPass".into()),
            sip_address: Some("sip.carrier.example".into()),
            sip_calling_format: Some("+e164".into()),
            inbound_authorization_type: Some(auth.into()),
            allowed_inbound_ips: ips.map(|ips| ips.into_iter().map(String::from).collect()),
            country_code: None,
            outbound_proxy: None,
        };
        SipTrunk::create(
            TrunkId::new(1).unwrap(),
            UserId::new(7).unwrap(),
            NewSipTrunk::parse(&input).unwrap(),
            Timestamp::from_unix_micros(1_000_000).unwrap(),
        )
    }

    fn later() -> Timestamp {
        Timestamp::from_unix_micros(2_000_000).unwrap()
    }

    fn patch(input: SipTrunkPatchInput) -> SipTrunkPatch {
        SipTrunkPatch::parse(&input, TrunkType::Number).unwrap()
    }

    fn value(raw: &str) -> Patch<String> {
        Patch::Value(raw.to_owned())
    }

    fn ips(entries: &[&str]) -> Patch<Vec<String>> {
        Patch::Value(entries.iter().map(|entry| entry.to_string()).collect())
    }

    #[test]
    fn an_empty_patch_changes_nothing_and_keeps_updated_at() {
        let current = stored("auth", None);
        let update = patch(SipTrunkPatchInput::default())
            .apply(&current, later())
            .unwrap();
        assert!(!update.changed);
        assert_eq!(update.trunk, current);
        assert_eq!(update.legs, LegChanges::default());
    }

    #[test]
    fn setting_fields_to_their_current_values_is_not_a_change() {
        let current = stored("auth", None);
        let input = SipTrunkPatchInput {
            sip_username: value("acme_user"),
            sip_password: value("s3cretPass"),
            sip_address: value("SIP.carrier.example"),
            ..Default::default()
        };
        let update = patch(input).apply(&current, later()).unwrap();
        assert!(!update.changed);
        assert_eq!(update.trunk.updated_at, current.updated_at);
    }

    #[test]
    fn only_the_fields_sent_change_and_updated_at_moves() {
        let current = stored("auth", None);
        let input = SipTrunkPatchInput {
            sip_calling_format: value("national"),
            ..Default::default()
        };
        let update = patch(input).apply(&current, later()).unwrap();
        assert!(update.changed);
        assert_eq!(
            update.trunk.settings.calling_format,
            CallingFormat::National
        );
        assert_eq!(update.trunk.updated_at, later());
        assert_eq!(update.trunk.created_at, current.created_at);
        assert_eq!(
            update.trunk.settings.sip_username,
            current.settings.sip_username
        );
    }

    #[test]
    fn a_null_nickname_clears_it() {
        let current = stored("auth", None);
        let update = patch(SipTrunkPatchInput {
            nickname: Patch::Null,
            ..Default::default()
        })
        .apply(&current, later())
        .unwrap();
        assert_eq!(update.trunk.settings.nickname, None);
    }

    #[test]
    fn switching_to_ip_without_a_list_is_refused_with_the_documented_message() {
        let current = stored("auth", None);
        let errors = patch(SipTrunkPatchInput {
            inbound_authorization_type: value("ip"),
            ..Default::default()
        })
        .apply(&current, later())
        .unwrap_err();
        assert_eq!(
            errors.messages("allowed_inbound_ips"),
            [ALLOW_LIST_REQUIRED]
        );
    }

    #[test]
    fn switching_to_ip_with_a_list_sets_it_and_recreates_the_inbound_leg_only() {
        let current = stored("auth", None);
        let update = patch(SipTrunkPatchInput {
            inbound_authorization_type: value("ip"),
            allowed_inbound_ips: ips(&["198.51.100.1"]),
            ..Default::default()
        })
        .apply(&current, later())
        .unwrap();
        assert_eq!(
            update
                .trunk
                .settings
                .inbound_authorization
                .allowed_ips()
                .unwrap()
                .to_strings(),
            ["198.51.100.1"]
        );
        assert_eq!(
            update.legs,
            LegChanges {
                inbound: true,
                outbound: false
            }
        );
    }

    #[test]
    fn switching_to_auth_clears_the_list() {
        let current = stored("ip", Some(vec!["198.51.100.1"]));
        let update = patch(SipTrunkPatchInput {
            inbound_authorization_type: value("auth"),
            ..Default::default()
        })
        .apply(&current, later())
        .unwrap();
        assert_eq!(
            update.trunk.settings.inbound_authorization,
            InboundAuthorization::Credentials
        );
    }

    #[test]
    fn an_ip_trunk_may_replace_its_list_alone() {
        let current = stored("ip", Some(vec!["198.51.100.1"]));
        let update = patch(SipTrunkPatchInput {
            allowed_inbound_ips: ips(&["203.0.113.0/24"]),
            ..Default::default()
        })
        .apply(&current, later())
        .unwrap();
        assert_eq!(
            update
                .trunk
                .settings
                .inbound_authorization
                .allowed_ips()
                .unwrap()
                .to_strings(),
            ["203.0.113.0/24"]
        );
    }

    #[test]
    fn an_ip_trunk_cannot_empty_its_list_without_switching_to_auth() {
        let current = stored("ip", Some(vec!["198.51.100.1"]));
        for list in [Patch::Null, ips(&[])] {
            let errors = patch(SipTrunkPatchInput {
                allowed_inbound_ips: list,
                ..Default::default()
            })
            .apply(&current, later())
            .unwrap_err();
            assert_eq!(
                errors.messages("allowed_inbound_ips"),
                [ALLOW_LIST_REQUIRED]
            );
        }
    }

    #[test]
    fn a_list_for_an_auth_trunk_is_refused() {
        let current = stored("auth", None);
        let errors = patch(SipTrunkPatchInput {
            allowed_inbound_ips: ips(&["198.51.100.1"]),
            ..Default::default()
        })
        .apply(&current, later())
        .unwrap_err();
        assert_eq!(errors.messages("allowed_inbound_ips"), [AUTH_TAKES_NO_LIST]);
    }

    #[test]
    fn the_phone_number_is_checked_against_the_stored_trunk_type() {
        let errors = SipTrunkPatch::parse(
            &SipTrunkPatchInput {
                phone_number: value("1000"),
                ..Default::default()
            },
            TrunkType::Number,
        )
        .unwrap_err();
        assert!(errors.contains("phone_number"));
    }

    #[test]
    fn a_patch_built_for_another_trunk_type_is_refused_when_applied() {
        let current = stored("auth", None);
        let wrong = SipTrunkPatch {
            phone_number: Some(PhoneNumber::parse(TrunkType::Extension, "1000").unwrap()),
            ..Default::default()
        };
        assert!(wrong
            .apply(&current, later())
            .unwrap_err()
            .contains("phone_number"));
    }

    #[test]
    fn null_or_empty_for_a_required_field_is_refused() {
        let errors = SipTrunkPatch::parse(
            &SipTrunkPatchInput {
                sip_username: Patch::Null,
                sip_address: value(""),
                country_code: Patch::Null,
                outbound_proxy: Patch::Null,
                ..Default::default()
            },
            TrunkType::Number,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.fields().map(|(field, _)| field).collect();
        assert_eq!(
            fields,
            [
                "sip_username",
                "sip_address",
                "country_code",
                "outbound_proxy"
            ]
        );
        assert_eq!(
            errors.messages("sip_address"),
            ["SIP server address is required."]
        );
    }

    #[test]
    fn every_invalid_field_of_a_patch_is_reported_at_once() {
        let errors = SipTrunkPatch::parse(
            &SipTrunkPatchInput {
                sip_calling_format: value("x"),
                country_code: value("XX"),
                allowed_inbound_ips: ips(&["bad"]),
                ..Default::default()
            },
            TrunkType::Number,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.fields().map(|(field, _)| field).collect();
        assert_eq!(
            fields,
            [
                "sip_calling_format",
                "allowed_inbound_ips.0",
                "country_code"
            ]
        );
    }

    #[test]
    fn parsing_for_a_stored_trunk_reports_field_and_rule_failures_together() {
        let current = stored("auth", None);
        let errors = SipTrunkPatch::parse_for(
            &SipTrunkPatchInput {
                inbound_authorization_type: value("ip"),
                sip_calling_format: value("bad"),
                ..Default::default()
            },
            &current,
        )
        .unwrap_err();
        let fields: Vec<&str> = errors.fields().map(|(field, _)| field).collect();
        assert_eq!(fields, ["sip_calling_format", "allowed_inbound_ips"]);
    }

    #[test]
    fn parsing_for_a_stored_trunk_accepts_what_apply_accepts() {
        let current = stored("ip", Some(vec!["198.51.100.1"]));
        let input = SipTrunkPatchInput {
            allowed_inbound_ips: ips(&["203.0.113.1"]),
            ..Default::default()
        };
        let patch = SipTrunkPatch::parse_for(&input, &current).unwrap();
        assert!(patch.apply(&current, later()).is_ok());
    }

    #[test]
    fn credentials_changes_recreate_both_legs() {
        let current = stored("auth", None);
        for input in [
            SipTrunkPatchInput {
                sip_username: value("other_user"),
                ..Default::default()
            },
            SipTrunkPatchInput {
                sip_password: value("newPass1"),
                ..Default::default()
            },
            SipTrunkPatchInput {
                phone_number: value("+14155550000"),
                ..Default::default()
            },
        ] {
            assert_eq!(
                patch(input).apply(&current, later()).unwrap().legs,
                LegChanges::BOTH
            );
        }
    }

    #[test]
    fn address_and_proxy_changes_recreate_the_outbound_leg_only() {
        let current = stored("auth", None);
        for input in [
            SipTrunkPatchInput {
                sip_address: value("sip2.carrier.example"),
                ..Default::default()
            },
            SipTrunkPatchInput {
                outbound_proxy: Patch::Value(true),
                ..Default::default()
            },
        ] {
            assert_eq!(
                patch(input).apply(&current, later()).unwrap().legs,
                LegChanges {
                    inbound: false,
                    outbound: true
                }
            );
        }
    }

    #[test]
    fn label_format_and_country_changes_recreate_no_leg_but_are_changes() {
        let current = stored("auth", None);
        for input in [
            SipTrunkPatchInput {
                nickname: value("Other"),
                ..Default::default()
            },
            SipTrunkPatchInput {
                sip_calling_format: value("e164"),
                ..Default::default()
            },
            SipTrunkPatchInput {
                country_code: value("CA"),
                ..Default::default()
            },
        ] {
            let update = patch(input).apply(&current, later()).unwrap();
            assert!(update.changed);
            assert_eq!(update.legs, LegChanges::default());
        }
    }

    #[test]
    fn the_patch_input_debug_output_never_shows_the_password() {
        let input = SipTrunkPatchInput {
            sip_password: value("topSecret9"),
            ..Default::default()
        };
        assert!(!format!("{input:?}").contains("topSecret9"));
        assert!(!format!("{:?}", patch(input)).contains("topSecret9"));
    }
}
