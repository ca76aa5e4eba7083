//! The syntax each trunk field's parser accepts, written as regular expressions, so that the
//! published API schema accepts exactly what the service accepts.
//!
//! Clients' tools (code generators, schemathesis, form validators) only know what the OpenAPI
//! document says. When it is looser than the parsers, schema-valid bodies get a 422; when it is
//! stricter, valid bodies look wrong. These patterns close that gap. They use the subset of
//! syntax that ECMA-262 (JSON Schema's dialect), Rust's `regex`/`fancy-regex` and Python's
//! `re` read alike: `^...$` anchors, `(?:...)`, bounded repeats, `\uXXXX` escapes in explicit
//! classes (never `\s`, `\d` or `.`, whose meaning differs between them), and one negative
//! lookahead in [`sip_address`]. Lengths in characters are not in the patterns where a schema
//! says them better (`minLength`/`maxLength`); each function says which bounds go with it.
//!
//! The tests below check every pattern against its parser, exhaustively over characters where
//! a pattern is a character class and with generated near-miss strings elsewhere.

use crate::{ApiKeyName, CountryCode, Nickname, PhoneNumber};

/// Characters `char::is_whitespace` (Unicode White_Space) accepts, as a class body.
const WHITESPACE: &str =
    r"\u0009-\u000D\u0020\u0085\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000";
/// Characters `char::is_control` (general category Cc) accepts, as a class body.
const CONTROL: &str = r"\u0000-\u001F\u007F-\u009F";
/// Bidirectional controls and zero-width characters refused in SIP usernames, as a class body.
const INVISIBLE_FORMAT: &str = r"\u061C\u200B-\u200F\u202A-\u202E\u2060-\u2064\u2066-\u2069\uFEFF";

/// A PBX extension (`sip_trunk_type: extension`): 1 to 15 letters, digits, `*`, `#`, `.`,
/// `_` or `-`.
pub const EXTENSION: &str = r"^[A-Za-z0-9*#._-]{1,15}$";

/// An E.164 number (`sip_trunk_type: number`): `+`, then 2 to 15 digits, the first not 0.
pub const E164: &str = r"^\+[1-9][0-9]{1,14}$";

/// An E.164 number whose country can be derived ([`PhoneNumber::derived_country`]): its
/// calling code is one of [`PhoneNumber::derivable_calling_codes`]. Goes with a length of 3 to
/// 16 characters, which makes it an [`E164`] number too.
pub fn e164_with_derivable_country() -> String {
    let codes: Vec<String> = PhoneNumber::derivable_calling_codes()
        .iter()
        .map(u16::to_string)
        .collect();
    format!(r"^\+(?:{})[0-9]*$", codes.join("|"))
}

/// A nickname before trimming: at most 50 characters once surrounding whitespace is trimmed,
/// none of them a control character. Whitespace-only (or empty) means "no nickname".
pub fn nickname() -> String {
    trimmed_text(0, Nickname::MAX_CHARS)
}

/// An API key's (or a user's) name before trimming: 1 to 255 characters once surrounding
/// whitespace is trimmed, none of them a control character.
pub fn api_key_name() -> String {
    trimmed_text(1, ApiKeyName::MAX_CHARS)
}

/// Text that is trimmed (Unicode whitespace, as `str::trim`), then must hold `min` (0 or 1) to
/// `max` characters, none of them a control character. Whitespace inside is kept and counts.
fn trimmed_text(min: usize, max: usize) -> String {
    let visible = format!("[^{WHITESPACE}{CONTROL}]");
    let text = format!("{visible}(?:[^{CONTROL}]{{0,{}}}{visible})?", max - 2);
    let text = if min == 0 {
        format!("(?:{text})?")
    } else {
        text
    };
    format!("^[{WHITESPACE}]*{text}[{WHITESPACE}]*$")
}

/// The characters of a SIP username: no whitespace, control, bidirectional-control or
/// zero-width characters. Goes with a length of 3 to 128 characters.
pub fn sip_username() -> String {
    format!("^[^{WHITESPACE}{CONTROL}{INVISIBLE_FORMAT}\"\\\\]*$")
}

/// The characters of a SIP password: no control characters. Goes with a length of 3 to 128
/// characters.
pub fn sip_password() -> String {
    format!("^[^{CONTROL}]*$")
}

/// A SIP server address: an IPv4 address, an IPv6 address (no brackets, no zone), or a host
/// name of dot-separated labels (letters, digits and inner hyphens, 1 to 63 each) whose last
/// label is not all digits. Goes with a maximum length of 253 characters.
pub fn sip_address() -> String {
    let label = "[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?";
    format!(
        r"^(?:{ipv4}|{ipv6}|(?:{label}\.)*(?![0-9]+$){label})$",
        ipv4 = ipv4(),
        ipv6 = ipv6()
    )
}

/// One IPv4 or IPv6 address (no range), as the standard library parses it.
pub fn ip_address() -> String {
    format!("^(?:{ipv4}|{ipv6})$", ipv4 = ipv4(), ipv6 = ipv6())
}

/// One allow-list entry: an IPv4 or IPv6 address, optionally with a prefix length from the
/// widest allowed (/16 for IPv4, /32 for IPv6) to the address's bit count, written without a
/// leading zero.
pub fn allowed_ip_entry() -> String {
    format!(
        "^(?:{ipv4}(?:/(?:1[6-9]|2[0-9]|3[0-2]))?|{ipv6}(?:/(?:3[2-9]|[4-9][0-9]|1[01][0-9]|12[0-8]))?)$",
        ipv4 = ipv4(),
        ipv6 = ipv6()
    )
}

/// An assigned ISO 3166-1 alpha-2 country code, in either case (it is stored upper-case).
pub fn country_code() -> String {
    let mut alternatives = Vec::new();
    for first in 'A'..='Z' {
        let seconds: String = CountryCode::all()
            .filter_map(|code| code.as_str().strip_prefix(first)?.chars().next())
            .collect();
        if !seconds.is_empty() {
            alternatives.push(format!(
                "[{first}{}][{seconds}{}]",
                first.to_ascii_lowercase(),
                seconds.to_ascii_lowercase()
            ));
        }
    }
    format!("^(?:{})$", alternatives.join("|"))
}

/// The standard library's IPv4 syntax: four decimal octets, no leading zeros.
fn ipv4() -> String {
    let octet = "(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])";
    format!(r"{octet}\.{octet}\.{octet}\.{octet}")
}

/// The standard library's IPv6 syntax: eight groups of 1 to 4 hex digits, the last two
/// possibly written as an IPv4 address, with one `::` standing for at least one zero group.
fn ipv6() -> String {
    let group = "[0-9A-Fa-f]{1,4}";
    let v4 = ipv4();
    let mut forms = vec![
        format!("{group}(?::{group}){{7}}"),
        format!("{group}(?::{group}){{5}}:{v4}"),
    ];
    // `head::tail`: `head` has `n` groups (no IPv4); `tail` fills at most `7 - n` groups.
    for n in 0..=7_usize {
        let head = match n {
            0 => String::new(),
            1 => group.to_owned(),
            _ => format!("{group}(?::{group}){{{}}}", n - 1),
        };
        let room = 7 - n;
        let mut tails = Vec::new();
        if room >= 1 {
            tails.push(format!("{group}(?::{group}){{0,{}}}", room - 1));
        }
        if room >= 2 {
            tails.push(format!("(?:{group}:){{0,{}}}{v4}", room - 2));
        }
        let tail = match tails.len() {
            0 => String::new(),
            _ => format!("(?:{})?", tails.join("|")),
        };
        forms.push(format!("{head}::{tail}"));
    }
    format!("(?:{})", forms.join("|"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AllowedIps, SipAddress, SipPassword, SipUsername, TrunkType, UserName};
    use fancy_regex::Regex;
    use proptest::prelude::*;

    fn compile(pattern: &str) -> Regex {
        Regex::new(pattern).unwrap()
    }

    /// The patterns, compiled once for all proptest cases.
    struct Compiled {
        sip_address: Regex,
        allowed_ip_entry: Regex,
        nickname: Regex,
        api_key_name: Regex,
        sip_username: Regex,
        sip_password: Regex,
        extension: Regex,
        e164: Regex,
    }

    static COMPILED: std::sync::LazyLock<Compiled> = std::sync::LazyLock::new(|| Compiled {
        sip_address: compile(&sip_address()),
        allowed_ip_entry: compile(&allowed_ip_entry()),
        nickname: compile(&nickname()),
        api_key_name: compile(&api_key_name()),
        sip_username: compile(&sip_username()),
        sip_password: compile(&sip_password()),
        extension: compile(EXTENSION),
        e164: compile(E164),
    });

    fn matches(regex: &Regex, raw: &str) -> bool {
        regex.is_match(raw).unwrap()
    }

    fn within(raw: &str, min: usize, max: usize) -> bool {
        (min..=max).contains(&raw.chars().count())
    }

    /// Every Unicode scalar value in the BMP and the start of the supplementary planes.
    fn characters() -> impl Iterator<Item = char> {
        (0..=0x1_0FFF_u32).filter_map(char::from_u32)
    }

    /// Strings made of `pieces`, so that near misses (one bad character, a group too many)
    /// are as likely as hits.
    fn made_of(pieces: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
        prop::collection::vec(prop::sample::select(pieces), 0..max).prop_map(|parts| parts.concat())
    }

    const ADDRESS_PIECES: &[&str] = &[
        "0", "1", "9", "00", "01", "10", "25", "255", "256", "299", "1000", "a", "F", "ffff",
        "fffff", "g", ":", ":", "::", ".", ".", "/", "%", "1.2.3.4", "::ffff:", "-", "xn--", "A-b",
        " ", "é", "[", "]", "@", "_",
    ];
    /// IPv6-like strings around every boundary of the grammar: 0 to 8 groups on each side of
    /// an optional `::`, an optional trailing IPv4 part, a few bad groups and octets.
    fn ipv6_like() -> impl Strategy<Value = String> {
        let group = prop::sample::select(&["0", "1", "ffff", "ABCD", "0db8", "12345", "g"][..]);
        let v4 = prop::sample::select(&["", "", "1.2.3.4", "1.2.3.04", "1.2.3"][..]);
        let groups = prop::collection::vec(group, 0..=8);
        (groups.clone(), any::<bool>(), groups, v4).prop_map(|(head, compressed, tail, v4)| {
            let mut right = tail;
            if !v4.is_empty() {
                right.push(v4);
            }
            let (left, right) = (head.join(":"), right.join(":"));
            match (compressed, left.is_empty(), right.is_empty()) {
                (true, _, _) => format!("{left}::{right}"),
                (false, true, _) => right,
                (false, _, true) => left,
                (false, false, false) => format!("{left}:{right}"),
            }
        })
    }

    const PREFIX_PIECES: &[&str] = &[
        "/", "0", "1", "2", "3", "4", "5", "8", "9", "12", "15", "16", "28", "29", "31", "32", "33",
    ];
    const TEXT_PIECES: &[&str] = &[
        "a",
        "Z",
        "7",
        "é",
        "名",
        "😀",
        " ",
        "\t",
        "\n",
        "\u{0}",
        "\u{7f}",
        "\u{85}",
        "\u{a0}",
        "\u{2000}",
        "\u{3000}",
        "\u{200b}",
        "\u{202e}",
        "\u{feff}",
        "\u{061c}",
        "\u{2066}",
        "abcdefghij",
        "          ",
    ];

    #[test]
    fn the_username_and_password_classes_agree_with_their_parsers_on_every_character() {
        let username = compile(&sip_username());
        let password = compile(&sip_password());
        for c in characters() {
            let raw = format!("ab{c}");
            assert_eq!(
                matches(&username, &raw),
                SipUsername::parse(&raw).is_ok(),
                "username U+{:04X}",
                c as u32
            );
            assert_eq!(
                matches(&password, &raw),
                SipPassword::parse(&raw).is_ok(),
                "password U+{:04X}",
                c as u32
            );
        }
    }

    #[test]
    fn the_trimmed_text_patterns_agree_with_their_parsers_on_every_character() {
        let nickname = compile(&nickname());
        let name = compile(&api_key_name());
        for c in characters() {
            for raw in [
                format!("{c}"),
                format!("a{c}b"),
                format!(" {c}"),
                format!("x{c}"),
            ] {
                assert_eq!(
                    matches(&nickname, &raw),
                    Nickname::parse(&raw).is_ok(),
                    "{raw:?}"
                );
                assert_eq!(
                    matches(&name, &raw),
                    ApiKeyName::parse(&raw).is_ok(),
                    "{raw:?}"
                );
            }
        }
    }

    #[test]
    fn names_count_their_length_after_trimming() {
        let name = compile(&api_key_name());
        for raw in [
            "a".repeat(255),
            "a".repeat(256),
            format!(" \u{c}{}\n", "a".repeat(255)),
            format!("a{}a", " ".repeat(253)),
            format!("a{}a", " ".repeat(254)),
            " ".repeat(300),
            String::new(),
        ] {
            let chars = raw.chars().count();
            assert_eq!(
                matches(&name, &raw),
                ApiKeyName::parse(&raw).is_ok(),
                "{chars}"
            );
            assert_eq!(
                matches(&name, &raw),
                UserName::parse(&raw).is_ok(),
                "{chars}"
            );
        }
    }

    #[test]
    fn the_country_pattern_accepts_exactly_the_assigned_codes_in_either_case() {
        let country = compile(&country_code());
        let letters = ('A'..='Z').chain('a'..='z').chain(['1', ' ', 'É']);
        for first in letters.clone() {
            for second in letters.clone() {
                let raw = format!("{first}{second}");
                assert_eq!(
                    matches(&country, &raw),
                    CountryCode::parse(&raw).is_ok(),
                    "{raw}"
                );
            }
        }
        for raw in ["", "U", "USA", "US ", "uS1"] {
            assert!(!matches(&country, raw), "{raw:?}");
        }
    }

    #[test]
    fn known_addresses_are_classified_like_the_parsers_do() {
        let address = compile(&sip_address());
        let entry = compile(&allowed_ip_entry());
        for raw in [
            "1.2.3.4",
            "255.255.255.255",
            "::",
            "::1",
            "1::",
            "1:2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7::",
            "::1:2:3:4:5:6:7",
            "::ffff:1.2.3.4",
            "1:2:3:4:5:6:1.2.3.4",
            "1::1.2.3.4",
            "1:2:3:4:5::1.2.3.4",
            "1:2:3:4:5:6::1.2.3.4",
            "::1:2:3:4:5:6:7:8",
            "1.2.3.4::",
            "1:2:3:4:5:6:7:8:9",
            "1::2::3",
            "01.2.3.4",
            "1.2.3.256",
            "00001::",
            "fe80::1%eth0",
            "sip.example.com",
            "SIP.Example.COM",
            "a",
            "1a",
            "a.1",
            "1.a",
            "a-.b",
            "-a",
            "a..b",
            "a.",
            ".a",
            "10.0.0.256",
            "xn--bcher-kva.example",
            "host_name",
            "exämple.com",
            "sip.example.com:5060",
            "[::1]",
        ] {
            assert_eq!(
                matches(&address, raw),
                SipAddress::parse(raw).is_ok(),
                "{raw}"
            );
            assert_eq!(
                matches(&entry, raw),
                AllowedIps::parse(&[raw]).is_ok(),
                "{raw}"
            );
        }
        let long_label = "a".repeat(63);
        for raw in [
            long_label.clone(),
            format!("{long_label}a"),
            format!("{long_label}.{long_label}.{long_label}.{}", "a".repeat(61)),
            format!("{long_label}.{long_label}.{long_label}.{}", "a".repeat(62)),
        ] {
            assert_eq!(
                matches(&address, &raw) && raw.len() <= SipAddress::MAX_LEN,
                SipAddress::parse(&raw).is_ok(),
                "{} characters",
                raw.len()
            );
        }
    }

    #[test]
    fn the_derivable_number_pattern_agrees_with_derivation_for_every_calling_code() {
        let e164 = compile(E164);
        let derivable = compile(&e164_with_derivable_country());
        for code in 1..=999 {
            for rest in ["", "0", "5550100", "41555512345678"] {
                let raw = format!("+{code}{rest}");
                let parsed = PhoneNumber::parse(TrunkType::Number, &raw);
                assert_eq!(matches(&e164, &raw), parsed.is_ok(), "{raw}");
                let with_country = parsed.is_ok_and(|number| number.derived_country().is_some());
                assert_eq!(
                    matches(&derivable, &raw) && within(&raw, 3, 16),
                    with_country,
                    "{raw}"
                );
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        #[test]
        fn the_address_patterns_agree_with_the_parsers(raw in made_of(ADDRESS_PIECES, 14)) {
            prop_assert_eq!(
                matches(&COMPILED.sip_address, &raw) && raw.len() <= SipAddress::MAX_LEN,
                SipAddress::parse(&raw).is_ok(),
                "{:?}", raw
            );
            prop_assert_eq!(matches(&COMPILED.allowed_ip_entry, &raw), AllowedIps::parse(&[&raw]).is_ok(), "{:?}", raw);
        }

        #[test]
        fn the_address_patterns_agree_with_the_parsers_on_ipv6_boundaries(raw in ipv6_like()) {
            prop_assert_eq!(matches(&COMPILED.sip_address, &raw), SipAddress::parse(&raw).is_ok(), "{:?}", raw);
            prop_assert_eq!(matches(&COMPILED.allowed_ip_entry, &raw), AllowedIps::parse(&[&raw]).is_ok(), "{:?}", raw);
        }

        #[test]
        fn the_allow_list_pattern_agrees_on_prefix_lengths(
            address in prop::sample::select(&["10.1.2.3", "::", "2001:db8::1", "::ffff:1.2.3.4", "1.2.3"][..]),
            prefix in made_of(PREFIX_PIECES, 4),
        ) {
            let raw = format!("{address}{prefix}");
            prop_assert_eq!(matches(&COMPILED.allowed_ip_entry, &raw), AllowedIps::parse(&[&raw]).is_ok(), "{:?}", raw);
        }

        #[test]
        fn the_text_patterns_agree_with_the_parsers(raw in made_of(TEXT_PIECES, 20)) {
            prop_assert_eq!(matches(&COMPILED.nickname, &raw), Nickname::parse(&raw).is_ok(), "{:?}", raw);
            prop_assert_eq!(matches(&COMPILED.api_key_name, &raw), ApiKeyName::parse(&raw).is_ok(), "{:?}", raw);
            prop_assert_eq!(
                matches(&COMPILED.sip_username, &raw) && within(&raw, 3, 128),
                SipUsername::parse(&raw).is_ok(),
                "{:?}", raw
            );
            prop_assert_eq!(
                matches(&COMPILED.sip_password, &raw) && within(&raw, 3, 128),
                SipPassword::parse(&raw).is_ok(),
                "{:?}", raw
            );
        }

        #[test]
        fn the_phone_patterns_agree_with_the_parsers(raw in "[+0-9A-Za-z*#._ -]{0,17}") {
            prop_assert_eq!(
                matches(&COMPILED.extension, &raw),
                PhoneNumber::parse(TrunkType::Extension, &raw).is_ok(),
                "{:?}", raw
            );
            prop_assert_eq!(
                matches(&COMPILED.e164, &raw),
                PhoneNumber::parse(TrunkType::Number, &raw).is_ok(),
                "{:?}", raw
            );
        }
    }
}
