//! `CountryCode`: an officially assigned ISO 3166-1 alpha-2 code, upper-case.

use std::fmt;

use crate::FieldError;

/// The 249 officially assigned ISO 3166-1 alpha-2 codes, sorted, two letters each.
///
/// The `phonenumber` crate's region list is close but not the same set: it also holds the
/// telephone-only regions AC, TA and XK and lacks regions without a numbering plan of their
/// own (AQ, BV, HM, ...). Contract says "a real ISO 3166-1 alpha-2 code", so this is the table.
const ISO_3166_1_ALPHA_2: &str = concat!(
    "ADAEAFAGAIALAMAOAQARASATAUAWAXAZ",
    "BABBBDBEBFBGBHBIBJBLBMBNBOBQBRBSBTBVBWBYBZ",
    "CACCCDCFCGCHCICKCLCMCNCOCRCUCVCWCXCYCZ",
    "DEDJDKDMDODZ",
    "ECEEEGEHERESET",
    "FIFJFKFMFOFR",
    "GAGBGDGEGFGGGHGIGLGMGNGPGQGRGSGTGUGWGY",
    "HKHMHNHRHTHU",
    "IDIEILIMINIOIQIRISIT",
    "JEJMJOJP",
    "KEKGKHKIKMKNKPKRKWKYKZ",
    "LALBLCLILKLRLSLTLULVLY",
    "MAMCMDMEMFMGMHMKMLMMMNMOMPMQMRMSMTMUMVMWMXMYMZ",
    "NANCNENFNGNINLNONPNRNUNZ",
    "OM",
    "PAPEPFPGPHPKPLPMPNPRPSPTPWPY",
    "QA",
    "RERORSRURW",
    "SASBSCSDSESGSHSISJSKSLSMSNSOSRSSSTSVSXSYSZ",
    "TCTDTFTGTHTJTKTLTMTNTOTRTTTVTWTZ",
    "UAUGUMUSUYUZ",
    "VAVCVEVGVIVNVU",
    "WFWS",
    "YEYT",
    "ZAZMZW",
);

/// [`ISO_3166_1_ALPHA_2`] as one bit per code: bit `second - 'A'` of word `first - 'A'`.
/// Every stored row's code is checked when it is read, and a scan of the table took 1% of a
/// cache-off list's CPU (docs/performance.md).
const ASSIGNED: [u32; 26] = {
    let table = ISO_3166_1_ALPHA_2.as_bytes();
    let mut bits = [0u32; 26];
    let mut at = 0;
    while at < table.len() {
        bits[(table[at] - b'A') as usize] |= 1 << (table[at + 1] - b'A');
        at += 2;
    }
    bits
};

/// Whether `code` (two upper-case ASCII letters) is an assigned code.
fn is_assigned(code: [u8; 2]) -> bool {
    let [first, second] = code;
    if !first.is_ascii_uppercase() || !second.is_ascii_uppercase() {
        return false;
    }
    ASSIGNED[usize::from(first - b'A')] & (1 << (second - b'A')) != 0
}

/// A country: an officially assigned ISO 3166-1 alpha-2 code, stored upper-case.
///
/// ```
/// use domain::CountryCode;
///
/// assert_eq!(CountryCode::parse("us").unwrap().as_str(), "US");
/// assert!(CountryCode::parse("XX").is_err());
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct CountryCode([u8; 2]);

impl CountryCode {
    /// Accepts two ASCII letters in any case that form an assigned code.
    pub fn parse(raw: &str) -> Result<Self, FieldError> {
        let invalid = || {
            FieldError::new("The country code must be a valid ISO 3166-1 alpha-2 code, such as US.")
        };
        let bytes = raw.as_bytes();
        if bytes.len() != 2 || !bytes.iter().all(u8::is_ascii_alphabetic) {
            return Err(invalid());
        }
        let code = [bytes[0].to_ascii_uppercase(), bytes[1].to_ascii_uppercase()];
        if is_assigned(code) {
            Ok(Self(code))
        } else {
            Err(invalid())
        }
    }

    /// The country of a telephone region known to `phonenumber`, when it is an ISO country.
    ///
    /// Ascension (AC) and Tristan da Cunha (TA) have regions of their own in the numbering
    /// plan but belong to ISO's SH; regions with no ISO code (XK) give `None`.
    pub(crate) fn from_phone_region(region: phonenumber::country::Id) -> Option<Self> {
        Self::from_region_id(region.as_ref())
    }

    /// [`CountryCode::from_phone_region`] for a region id as the metadata spells it (`"US"`,
    /// `"001"` for non-geographic codes).
    pub(crate) fn from_region_id(code: &str) -> Option<Self> {
        let code = match code {
            "AC" | "TA" => "SH",
            other => other,
        };
        Self::parse(code).ok()
    }

    /// Every assigned code, in alphabetical order.
    pub fn all() -> impl Iterator<Item = Self> {
        ISO_3166_1_ALPHA_2
            .as_bytes()
            .chunks_exact(2)
            .map(|pair| Self([pair[0], pair[1]]))
    }

    /// How a number of this country is dialled inside it: the calling code a `+e164` number
    /// starts with, and the prefix that replaces it in the national form (`0` in GB, none in
    /// US). `None` for a country without a numbering plan of its own in the metadata (AQ).
    ///
    /// ```
    /// use domain::CountryCode;
    ///
    /// let gb = CountryCode::parse("GB").unwrap().national_dialing().unwrap();
    /// assert_eq!((gb.calling_code, gb.national_prefix.as_str()), (44, "0"));
    /// let us = CountryCode::parse("US").unwrap().national_dialing().unwrap();
    /// assert_eq!((us.calling_code, us.national_prefix.as_str()), (1, ""));
    /// ```
    pub fn national_dialing(&self) -> Option<NationalDialing> {
        let metadata = phonenumber::metadata::DATABASE.by_id(self.as_str())?;
        let calling_code = metadata.country_code();
        // The prefix the national form really writes: the metadata's national prefix is not
        // always part of it (NANP's `1` is not), so it is read off a formatted example.
        let descriptors = metadata.descriptors();
        let example = descriptors
            .fixed_line()
            .and_then(|descriptor| descriptor.example())
            .or_else(|| descriptors.general().example())?;
        let number = phonenumber::parse(None, format!("+{calling_code}{example}")).ok()?;
        let national: String = number
            .format()
            .mode(phonenumber::Mode::National)
            .to_string()
            .chars()
            .filter(char::is_ascii_digit)
            .collect();
        let national_prefix = national
            .strip_suffix(example)
            .unwrap_or_default()
            .to_owned();
        Some(NationalDialing {
            calling_code,
            national_prefix,
        })
    }

    /// The two upper-case letters.
    pub fn as_str(&self) -> &str {
        // Only ASCII letters are ever stored, so this cannot fail.
        std::str::from_utf8(&self.0).unwrap_or("??")
    }
}

/// How numbers are dialled inside a country (see [`CountryCode::national_dialing`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NationalDialing {
    /// The country calling code (`44`).
    pub calling_code: u16,
    /// What the national form writes in its place (`0`; often empty).
    pub national_prefix: String,
}

impl NationalDialing {
    /// `number` (`+` and digits) in the national form when it belongs to this calling code;
    /// otherwise unchanged. What the SIP edge does to a called number, as a reference.
    pub fn national_form(&self, number: &str) -> String {
        let code = format!("+{}", self.calling_code);
        match number.strip_prefix(&code) {
            Some(rest) => format!("{}{rest}", self.national_prefix),
            None => number.to_owned(),
        }
    }
}

impl fmt::Debug for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountryCode({})", self.as_str())
    }
}

impl fmt::Display for CountryCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_national_form_drops_the_calling_code_for_the_prefix_the_country_dials() {
        let form = |country: &str, number: &str| {
            CountryCode::parse(country)
                .unwrap()
                .national_dialing()
                .unwrap()
                .national_form(number)
        };
        assert_eq!(form("US", "+14155551234"), "4155551234");
        assert_eq!(form("GB", "+442079460000"), "02079460000");
        assert_eq!(form("DE", "+4930123456"), "030123456");
        assert_eq!(form("FR", "+33142685300"), "0142685300");
        // Italy keeps its leading zero inside the international form: no prefix is added.
        assert_eq!(form("IT", "+390612345678"), "0612345678");
        assert_eq!(
            form("GB", "+14155551234"),
            "+14155551234",
            "a number of another country is left as it is"
        );
    }

    #[test]
    fn every_country_with_a_numbering_plan_has_a_national_dialing() {
        let dialed = CountryCode::all()
            .filter(|code| code.national_dialing().is_some())
            .count();
        assert!(dialed > 230, "{dialed}");
    }

    #[test]
    fn the_table_holds_exactly_249_sorted_unique_codes() {
        let codes: Vec<&[u8]> = ISO_3166_1_ALPHA_2.as_bytes().chunks_exact(2).collect();
        assert_eq!(codes.len(), 249);
        assert!(codes.windows(2).all(|pair| pair[0] < pair[1]));
    }

    #[test]
    fn the_bit_table_accepts_exactly_the_codes_of_the_table() {
        let listed: Vec<&[u8]> = ISO_3166_1_ALPHA_2.as_bytes().chunks_exact(2).collect();
        for first in b'A'..=b'Z' {
            for second in b'A'..=b'Z' {
                let code = [first, second];
                assert_eq!(is_assigned(code), listed.contains(&&code[..]), "{code:?}");
            }
        }
        assert!(!is_assigned(*b"a@") && !is_assigned(*b"[Z") && !is_assigned(*b"us"));
    }

    #[test]
    fn an_upper_case_code_is_accepted() {
        assert_eq!(CountryCode::parse("GB").unwrap().as_str(), "GB");
    }

    #[test]
    fn a_lower_or_mixed_case_code_is_stored_upper_case() {
        assert_eq!(CountryCode::parse("de").unwrap().as_str(), "DE");
        assert_eq!(CountryCode::parse("fR").unwrap().as_str(), "FR");
    }

    #[test]
    fn codes_without_a_phone_plan_of_their_own_are_still_countries() {
        assert!(CountryCode::parse("AQ").is_ok());
        assert!(CountryCode::parse("BV").is_ok());
    }

    #[test]
    fn unassigned_and_user_assigned_codes_are_refused() {
        for code in ["XX", "XK", "AC", "TA", "UK", "EU", "ZZ", "AA"] {
            assert!(CountryCode::parse(code).is_err(), "{code}");
        }
    }

    #[test]
    fn wrong_lengths_digits_and_padding_are_refused() {
        for code in ["", "U", "USA", "1A", " US", "US ", "U S", "Ｕ"] {
            assert!(CountryCode::parse(code).is_err(), "{code:?}");
        }
    }

    #[test]
    fn every_phone_region_but_the_non_iso_ones_is_an_iso_country() {
        use phonenumber::country::Id;
        for region in [Id::US, Id::GB, Id::DE, Id::JP, Id::BR, Id::ZA, Id::SH] {
            assert!(
                CountryCode::from_phone_region(region).is_some(),
                "{region:?}"
            );
        }
        assert_eq!(
            CountryCode::from_phone_region(Id::AC).unwrap().as_str(),
            "SH"
        );
        assert_eq!(
            CountryCode::from_phone_region(Id::TA).unwrap().as_str(),
            "SH"
        );
        assert_eq!(CountryCode::from_phone_region(Id::XK), None);
    }
}
