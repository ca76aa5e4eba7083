//! Creating a trunk: the raw create body and its parse into a [`NewSipTrunk`].

use std::fmt;

use super::inbound::{ALLOWED_IPS_FIELD, ALLOW_LIST_REQUIRED};
use super::{
    AllowedIps, AuthorizationType, CallingFormat, CountryCode, InboundAuthorization, Nickname,
    PhoneNumber, SipAddress, SipPassword, SipUsername, TrunkType,
};
use crate::ValidationErrors;

/// The create body as received, every field optional so that a missing one can be reported
/// together with every other failure. The transport layer fills it and reports type errors
/// (a number where a string belongs) itself.
#[derive(Clone, Default)]
pub struct NewSipTrunkInput {
    /// `extension` or `number`.
    pub sip_trunk_type: Option<String>,
    /// Checked against `sip_trunk_type`.
    pub phone_number: Option<String>,
    /// Optional label.
    pub nickname: Option<String>,
    /// SIP auth username.
    pub sip_username: Option<String>,
    /// SIP auth password (never printed by `Debug`).
    pub sip_password: Option<String>,
    /// The carrier's SIP server host.
    pub sip_address: Option<String>,
    /// `+e164`, `e164` or `national`.
    pub sip_calling_format: Option<String>,
    /// `auth` or `ip`.
    pub inbound_authorization_type: Option<String>,
    /// The allow-list for `ip`.
    pub allowed_inbound_ips: Option<Vec<String>>,
    /// ISO 3166-1 alpha-2; derived from an E.164 number when absent.
    pub country_code: Option<String>,
    /// Defaults to false.
    pub outbound_proxy: Option<bool>,
}

impl fmt::Debug for NewSipTrunkInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSipTrunkInput")
            .field("sip_trunk_type", &self.sip_trunk_type)
            .field("phone_number", &self.phone_number)
            .field("nickname", &self.nickname)
            .field("sip_username", &self.sip_username)
            .field(
                "sip_password",
                &self.sip_password.as_ref().map(|_| "[redacted]"),
            )
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

/// A validated create request: everything a trunk needs but its id, owner, legs and times.
///
/// It is also the part of a stored [`super::SipTrunk`] that clients set
/// ([`super::SipTrunk::settings`]), so a new trunk's settings are exactly what was asked for.
pub type NewSipTrunk = TrunkSettings;

/// The client-controlled settings of a trunk; every field is a validated type.
///
/// `P` is what is held of the password: the [`SipPassword`] itself (the default), or
/// [`super::PasswordWithheld`] for reads that never show it, so that such reads need not
/// decrypt it and cannot leak it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrunkSettings<P = SipPassword> {
    /// Its kind is the trunk type.
    pub phone_number: PhoneNumber,
    /// Optional label.
    pub nickname: Option<Nickname>,
    /// SIP auth username.
    pub sip_username: SipUsername,
    /// SIP auth password (or the fact that it was withheld).
    pub sip_password: P,
    /// The carrier's SIP server.
    pub sip_address: SipAddress,
    /// Outbound number format.
    pub calling_format: CallingFormat,
    /// Credentials or allow-list.
    pub inbound_authorization: InboundAuthorization,
    /// Outbound calls leave from a fixed IP.
    pub outbound_proxy: bool,
    /// Given, or derived from the number.
    pub country_code: CountryCode,
}

/// The value of a required string field: absent and empty both count as missing.
fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|raw| !raw.is_empty())
}

/// The value of a required string field, or `None` with the field reported as missing.
fn required<'a>(
    errors: &mut ValidationErrors,
    field: &str,
    value: &'a Option<String>,
) -> Option<&'a str> {
    let found = present(value);
    if found.is_none() {
        errors.add(field, required_message(field));
    }
    found
}

pub(super) fn required_message(field: &str) -> String {
    match field {
        "sip_address" => "SIP server address is required.".to_owned(),
        _ => format!("The {} field is required.", field.replace('_', " ")),
    }
}

impl TrunkSettings {
    /// Checks every field of `input` and reports every failure at once.
    ///
    /// ```
    /// use domain::{NewSipTrunk, NewSipTrunkInput};
    ///
    /// let input = NewSipTrunkInput {
    ///     sip_trunk_type: Some("number".into()),
    ///     phone_number: Some("+14155551234".into()),
    ///     sip_username: Some("acme_user".into()),
    ///     sip_password: Some("s3cret".into()),
    ///     sip_address: Some("sip.carrier.example".into()),
    ///     sip_calling_format: Some("+e164".into()),
    ///     inbound_authorization_type: Some("auth".into()),
    ///     ..Default::default()
    /// };
    /// let trunk = NewSipTrunk::parse(&input).unwrap();
    /// assert_eq!(trunk.country_code.as_str(), "US");
    ///
    /// let errors = NewSipTrunk::parse(&NewSipTrunkInput::default()).unwrap_err();
    /// assert_eq!(errors.messages("sip_address"), ["SIP server address is required."]);
    /// ```
    pub fn parse(input: &NewSipTrunkInput) -> Result<Self, ValidationErrors> {
        let mut errors = ValidationErrors::new();
        let trunk_type = required(&mut errors, "sip_trunk_type", &input.sip_trunk_type)
            .and_then(|raw| errors.check("sip_trunk_type", TrunkType::parse(raw)));
        let phone_number = required(&mut errors, "phone_number", &input.phone_number)
            .zip(trunk_type)
            .and_then(|(raw, kind)| errors.check("phone_number", PhoneNumber::parse(kind, raw)));
        let nickname = match &input.nickname {
            Some(raw) => errors.check("nickname", Nickname::parse(raw)).flatten(),
            None => None,
        };
        let sip_username = required(&mut errors, "sip_username", &input.sip_username)
            .and_then(|raw| errors.check("sip_username", SipUsername::parse(raw)));
        let sip_password = required(&mut errors, "sip_password", &input.sip_password)
            .and_then(|raw| errors.check("sip_password", SipPassword::parse(raw)));
        let sip_address = required(&mut errors, "sip_address", &input.sip_address)
            .and_then(|raw| errors.check("sip_address", SipAddress::parse(raw)));
        let calling_format = required(&mut errors, "sip_calling_format", &input.sip_calling_format)
            .and_then(|raw| errors.check("sip_calling_format", CallingFormat::parse(raw)));
        let authorization_type = required(
            &mut errors,
            "inbound_authorization_type",
            &input.inbound_authorization_type,
        )
        .and_then(|raw| errors.check("inbound_authorization_type", AuthorizationType::parse(raw)));
        let inbound_authorization = authorization_type.and_then(|kind| {
            inbound_authorization(&mut errors, kind, input.allowed_inbound_ips.as_deref())
        });
        let country_code = country_code(&mut errors, input, trunk_type, phone_number.as_ref());
        let outbound_proxy = input.outbound_proxy.unwrap_or(false);

        match (
            phone_number,
            sip_username,
            sip_password,
            sip_address,
            calling_format,
            inbound_authorization,
            country_code,
        ) {
            (
                Some(phone_number),
                Some(sip_username),
                Some(sip_password),
                Some(sip_address),
                Some(calling_format),
                Some(inbound_authorization),
                Some(country_code),
            ) if errors.is_empty() => Ok(Self {
                phone_number,
                nickname,
                sip_username,
                sip_password,
                sip_address,
                calling_format,
                inbound_authorization,
                outbound_proxy,
                country_code,
            }),
            // Every `None` above was recorded in `errors` when it was found.
            _ => Err(errors),
        }
    }
}

/// `ip` needs a non-empty list; `auth` takes none (absent, null or empty).
fn inbound_authorization(
    errors: &mut ValidationErrors,
    kind: AuthorizationType,
    entries: Option<&[String]>,
) -> Option<InboundAuthorization> {
    let entries = entries.unwrap_or_default();
    match kind {
        AuthorizationType::Auth if entries.is_empty() => Some(InboundAuthorization::Credentials),
        AuthorizationType::Auth => {
            errors.add(ALLOWED_IPS_FIELD, AUTH_TAKES_NO_LIST);
            None
        }
        AuthorizationType::Ip if entries.is_empty() => {
            errors.add(ALLOWED_IPS_FIELD, ALLOW_LIST_REQUIRED);
            None
        }
        AuthorizationType::Ip => match AllowedIps::parse(entries) {
            Ok(list) => Some(InboundAuthorization::AllowList(list)),
            Err(list_errors) => {
                errors.merge(list_errors);
                None
            }
        },
    }
}

pub(super) const AUTH_TAKES_NO_LIST: &str =
    "The allowed inbound ips must be empty when authorization type is \"auth\".";

/// Given, or for an E.164 number derived from it.
fn country_code(
    errors: &mut ValidationErrors,
    input: &NewSipTrunkInput,
    trunk_type: Option<TrunkType>,
    phone_number: Option<&PhoneNumber>,
) -> Option<CountryCode> {
    if let Some(raw) = present(&input.country_code) {
        return errors.check("country_code", CountryCode::parse(raw));
    }
    match (trunk_type, phone_number) {
        (Some(TrunkType::Extension), _) => {
            errors.add(
                "country_code",
                "The country code field is required when sip trunk type is extension.",
            );
            None
        }
        (Some(TrunkType::Number), Some(number)) => {
            let derived = number.derived_country();
            if derived.is_none() {
                errors.add(
                    "country_code",
                    "The country code field is required when it cannot be derived from the phone number.",
                );
            }
            derived
        }
        // The type or the number already failed; the country cannot be judged yet.
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn number_trunk() -> NewSipTrunkInput {
        NewSipTrunkInput {
            sip_trunk_type: Some("number".into()),
            phone_number: Some("+14155551234".into()),
            nickname: Some("Main line".into()),
            sip_username: Some("acme_user".into()),
            sip_password: Some("s3cretPass".into()),
            sip_address: Some("sip.carrier.example".into()),
            sip_calling_format: Some("+e164".into()),
            inbound_authorization_type: Some("auth".into()),
            allowed_inbound_ips: None,
            country_code: Some("US".into()),
            outbound_proxy: Some(false),
        }
    }

    fn extension_trunk() -> NewSipTrunkInput {
        NewSipTrunkInput {
            sip_trunk_type: Some("extension".into()),
            phone_number: Some("1000".into()),
            nickname: None,
            sip_username: Some("pbx_user".into()),
            sip_password: Some("pbxPass1".into()),
            sip_address: Some("203.0.113.10".into()),
            sip_calling_format: Some("national".into()),
            inbound_authorization_type: Some("ip".into()),
            allowed_inbound_ips: Some(vec!["203.0.113.10".into(), "198.51.100.0/24".into()]),
            country_code: Some("gb".into()),
            outbound_proxy: Some(true),
        }
    }

    fn failing_fields(input: &NewSipTrunkInput) -> Vec<String> {
        NewSipTrunk::parse(input)
            .unwrap_err()
            .fields()
            .map(|(field, _)| field.to_owned())
            .collect()
    }

    #[test]
    fn a_complete_number_trunk_parses() {
        let trunk = NewSipTrunk::parse(&number_trunk()).unwrap();
        assert_eq!(trunk.phone_number.kind(), TrunkType::Number);
        assert_eq!(trunk.nickname.unwrap().as_str(), "Main line");
        assert_eq!(
            trunk.inbound_authorization,
            InboundAuthorization::Credentials
        );
        assert!(!trunk.outbound_proxy);
    }

    #[test]
    fn a_complete_extension_trunk_with_an_allow_list_parses() {
        let trunk = NewSipTrunk::parse(&extension_trunk()).unwrap();
        assert_eq!(trunk.phone_number.as_str(), "1000");
        assert_eq!(trunk.country_code.as_str(), "GB");
        assert_eq!(
            trunk
                .inbound_authorization
                .allowed_ips()
                .unwrap()
                .to_strings(),
            ["203.0.113.10", "198.51.100.0/24"]
        );
        assert!(trunk.outbound_proxy);
    }

    #[test]
    fn an_empty_body_reports_every_required_field_at_once() {
        assert_eq!(
            failing_fields(&NewSipTrunkInput::default()),
            [
                "sip_trunk_type",
                "phone_number",
                "sip_username",
                "sip_password",
                "sip_address",
                "sip_calling_format",
                "inbound_authorization_type"
            ]
        );
    }

    #[test]
    fn empty_strings_count_as_missing() {
        let input = NewSipTrunkInput {
            sip_username: Some(String::new()),
            ..number_trunk()
        };
        let errors = NewSipTrunk::parse(&input).unwrap_err();
        assert_eq!(
            errors.messages("sip_username"),
            ["The sip username field is required."]
        );
    }

    #[test]
    fn several_invalid_fields_are_reported_together() {
        let input = NewSipTrunkInput {
            phone_number: Some("555".into()),
            nickname: Some("n".repeat(51)),
            sip_calling_format: Some("international".into()),
            sip_address: Some("sip:host:5060".into()),
            ..number_trunk()
        };
        assert_eq!(
            failing_fields(&input),
            [
                "phone_number",
                "nickname",
                "sip_address",
                "sip_calling_format"
            ]
        );
    }

    #[test]
    fn the_calling_format_error_uses_the_documented_message() {
        let input = NewSipTrunkInput {
            sip_calling_format: Some("bad".into()),
            ..number_trunk()
        };
        let errors = NewSipTrunk::parse(&input).unwrap_err();
        assert_eq!(
            errors.messages("sip_calling_format"),
            ["SIP calling format must be one of: +e164, e164, national."]
        );
    }

    #[test]
    fn a_missing_sip_address_uses_the_documented_message() {
        let input = NewSipTrunkInput {
            sip_address: None,
            ..number_trunk()
        };
        let errors = NewSipTrunk::parse(&input).unwrap_err();
        assert_eq!(
            errors.messages("sip_address"),
            ["SIP server address is required."]
        );
    }

    #[test]
    fn an_unknown_trunk_type_is_reported_and_the_number_is_not_judged() {
        let input = NewSipTrunkInput {
            sip_trunk_type: Some("mobile".into()),
            ..number_trunk()
        };
        assert_eq!(failing_fields(&input), ["sip_trunk_type"]);
    }

    #[test]
    fn the_phone_number_is_checked_by_the_trunk_type() {
        let input = NewSipTrunkInput {
            phone_number: Some("1000".into()),
            ..number_trunk()
        };
        assert_eq!(failing_fields(&input), ["phone_number"]);
        let input = NewSipTrunkInput {
            phone_number: Some("+14155551234".into()),
            ..extension_trunk()
        };
        assert_eq!(failing_fields(&input), ["phone_number"]);
    }

    #[test]
    fn ip_without_a_list_uses_the_documented_message() {
        for list in [None, Some(vec![])] {
            let input = NewSipTrunkInput {
                inbound_authorization_type: Some("ip".into()),
                allowed_inbound_ips: list,
                ..number_trunk()
            };
            let errors = NewSipTrunk::parse(&input).unwrap_err();
            assert_eq!(
                errors.messages("allowed_inbound_ips"),
                [ALLOW_LIST_REQUIRED]
            );
        }
    }

    #[test]
    fn auth_with_an_empty_list_is_accepted_and_stores_no_list() {
        let input = NewSipTrunkInput {
            allowed_inbound_ips: Some(vec![]),
            ..number_trunk()
        };
        assert_eq!(
            NewSipTrunk::parse(&input).unwrap().inbound_authorization,
            InboundAuthorization::Credentials
        );
    }

    #[test]
    fn auth_with_a_list_is_refused() {
        let input = NewSipTrunkInput {
            allowed_inbound_ips: Some(vec!["198.51.100.1".into()]),
            ..number_trunk()
        };
        let errors = NewSipTrunk::parse(&input).unwrap_err();
        assert_eq!(errors.messages("allowed_inbound_ips"), [AUTH_TAKES_NO_LIST]);
    }

    #[test]
    fn bad_allow_list_entries_are_reported_by_index_with_the_other_fields() {
        let input = NewSipTrunkInput {
            allowed_inbound_ips: Some(vec!["203.0.113.1".into(), "nope".into()]),
            sip_username: Some("x".into()),
            ..extension_trunk()
        };
        assert_eq!(
            failing_fields(&input),
            ["sip_username", "allowed_inbound_ips.1"]
        );
    }

    #[test]
    fn an_extension_trunk_requires_a_country_code() {
        let input = NewSipTrunkInput {
            country_code: None,
            ..extension_trunk()
        };
        assert_eq!(failing_fields(&input), ["country_code"]);
    }

    #[test]
    fn a_number_trunk_derives_its_country_when_none_is_given() {
        let input = NewSipTrunkInput {
            phone_number: Some("+442071838750".into()),
            country_code: None,
            ..number_trunk()
        };
        assert_eq!(
            NewSipTrunk::parse(&input).unwrap().country_code.as_str(),
            "GB"
        );
    }

    #[test]
    fn a_given_country_wins_over_the_derived_one() {
        let input = NewSipTrunkInput {
            country_code: Some("CA".into()),
            ..number_trunk()
        };
        assert_eq!(
            NewSipTrunk::parse(&input).unwrap().country_code.as_str(),
            "CA"
        );
    }

    #[test]
    fn a_number_without_a_derivable_country_requires_one() {
        let input = NewSipTrunkInput {
            phone_number: Some("+80012345678".into()),
            country_code: None,
            ..number_trunk()
        };
        assert_eq!(failing_fields(&input), ["country_code"]);
    }

    #[test]
    fn an_invalid_country_code_is_refused() {
        let input = NewSipTrunkInput {
            country_code: Some("XX".into()),
            ..number_trunk()
        };
        assert_eq!(failing_fields(&input), ["country_code"]);
    }

    #[test]
    fn outbound_proxy_defaults_to_false() {
        let input = NewSipTrunkInput {
            outbound_proxy: None,
            ..number_trunk()
        };
        assert!(!NewSipTrunk::parse(&input).unwrap().outbound_proxy);
    }

    #[test]
    fn a_blank_nickname_means_none() {
        let input = NewSipTrunkInput {
            nickname: Some("   ".into()),
            ..number_trunk()
        };
        assert_eq!(NewSipTrunk::parse(&input).unwrap().nickname, None);
    }

    #[test]
    fn the_input_debug_output_never_shows_the_password() {
        let debug = format!("{:?}", number_trunk());
        assert!(!debug.contains("s3cretPass"), "{debug}");
        let debug = format!("{:?}", NewSipTrunk::parse(&number_trunk()).unwrap());
        assert!(!debug.contains("s3cretPass"), "{debug}");
    }

    #[test]
    fn no_error_message_quotes_the_password() {
        let input = NewSipTrunkInput {
            sip_password: Some("bad\u{1}secretvalue".into()),
            ..number_trunk()
        };
        let errors = NewSipTrunk::parse(&input).unwrap_err();
        assert!(!errors.to_string().contains("secretvalue"));
    }
}
