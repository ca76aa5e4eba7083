//! Property tests: no parser panics on any string, and every accepted value parses back to
//! itself from its own string form (canonical forms are fixed points).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed unwrap is a failed test

use domain::{
    AllowedIps, ApiKeyName, ApiToken, AuthorizationType, CallingFormat, CountryCode, Email,
    Nickname, PhoneNumber, SipAddress, SipPassword, SipUsername, TrunkId, TrunkType,
};
use proptest::prelude::*;

/// Arbitrary Unicode, plus strings built from the characters the parsers care about, so that
/// accepted values are actually reached.
fn interesting() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-zA-Z0-9*#._\\-+:/@;\\[\\] ]{0,20}",
        "\\+[0-9]{0,16}",
        "([a-z0-9-]{1,10}\\.){0,3}[a-z]{1,5}",
        "[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}(/[0-9]{1,2})?",
        "[0-9a-fA-F:]{2,20}(/[0-9]{1,3})?",
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn phone_numbers_never_panic_and_round_trip(raw in interesting()) {
        for kind in [TrunkType::Extension, TrunkType::Number] {
            if let Ok(number) = PhoneNumber::parse(kind, &raw) {
                prop_assert_eq!(number.as_str(), raw.as_str());
                prop_assert_eq!(PhoneNumber::parse(kind, number.as_str()).unwrap(), number.clone());
                let _ = number.derived_country();
            }
        }
    }

    #[test]
    fn sip_addresses_never_panic_and_are_canonical(raw in interesting()) {
        if let Ok(address) = SipAddress::parse(&raw) {
            prop_assert_eq!(SipAddress::parse(address.as_str()).unwrap(), address.clone());
            prop_assert_eq!(address.as_str().to_lowercase(), address.as_str());
        }
    }

    #[test]
    fn allowed_ip_lists_never_panic_and_are_canonical(entries in prop::collection::vec(interesting(), 0..8)) {
        if let Ok(list) = AllowedIps::parse(&entries) {
            let canonical = list.to_strings();
            let reparsed = AllowedIps::parse(&canonical).unwrap();
            prop_assert_eq!(reparsed.to_strings(), canonical);
            prop_assert!(!list.is_empty() && list.len() <= AllowedIps::MAX_ENTRIES);
        }
    }

    #[test]
    fn text_fields_never_panic_and_round_trip(raw in interesting()) {
        if let Ok(Some(nickname)) = Nickname::parse(&raw) {
            prop_assert_eq!(Nickname::parse(nickname.as_str()).unwrap(), Some(nickname.clone()));
            prop_assert!(nickname.as_str().chars().count() <= Nickname::MAX_CHARS);
        }
        if let Ok(username) = SipUsername::parse(&raw) {
            prop_assert_eq!(SipUsername::parse(username.as_str()).unwrap(), username);
        }
        if let Ok(password) = SipPassword::parse(&raw) {
            prop_assert_eq!(SipPassword::parse(password.expose_secret()).unwrap(), password.clone());
            let shown = format!("{:?} {}", password, password);
            prop_assert_eq!(shown, "SipPassword([redacted]) [redacted]");
        }
        if let Ok(name) = ApiKeyName::parse(&raw) {
            prop_assert_eq!(ApiKeyName::parse(name.as_str()).unwrap(), name);
        }
        if let Ok(email) = Email::parse(&raw) {
            prop_assert_eq!(Email::parse(email.as_str()).unwrap(), email);
        }
    }

    #[test]
    fn enumerations_never_panic_and_round_trip(raw in interesting()) {
        if let Ok(kind) = TrunkType::parse(&raw) {
            prop_assert_eq!(kind.as_str(), raw.as_str());
        }
        if let Ok(format) = CallingFormat::parse(&raw) {
            prop_assert_eq!(format.as_str(), raw.as_str());
        }
        if let Ok(kind) = AuthorizationType::parse(&raw) {
            prop_assert_eq!(kind.as_str(), raw.as_str());
        }
        if let Ok(country) = CountryCode::parse(&raw) {
            prop_assert_eq!(CountryCode::parse(country.as_str()).unwrap(), country);
        }
    }

    #[test]
    fn every_two_letter_string_parses_as_a_country_or_fails_cleanly(a in "[a-zA-Z]", b in "[a-zA-Z]") {
        let raw = format!("{a}{b}");
        if let Ok(country) = CountryCode::parse(&raw) {
            prop_assert_eq!(country.as_str(), raw.to_ascii_uppercase());
        }
    }

    #[test]
    fn tokens_and_ids_never_panic_and_round_trip(raw in interesting(), id in 1i64..) {
        if let Some(token) = ApiToken::parse(&raw) {
            prop_assert_eq!(ApiToken::parse(&token.expose_secret()).unwrap(), token);
        }
        let _ = TrunkId::parse(&raw);
        prop_assert_eq!(TrunkId::parse(&id.to_string()).map(TrunkId::get), Some(id));
    }
}
