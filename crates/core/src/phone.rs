//! Phone numbers in E.164, the one form Switchboard stores and compares.
//!
//! Input arrives in every shape people type (`(202) 555-0123`,
//! `202.555.0123`, `+1 202 555 0123`, `001 202 555 0123`); the
//! `phonenumber` crate (a port of Google's libphonenumber) parses it against
//! a default region and we keep only numbers it considers valid.

use std::{fmt, str::FromStr, sync::LazyLock};

use serde::{Deserialize, Serialize};

/// A validated phone number in E.164 form (`+12025550123`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

/// Why input is not a phone number Switchboard accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    /// Not readable as a phone number (empty, over 40 bytes, not a number),
    /// or, for [`E164::parse_strict`], not exactly in E.164 form.
    #[error("not a phone number")]
    Unparseable,
    /// Readable, but not a valid number for its country.
    #[error("not a valid phone number for its country")]
    Invalid,
}

impl E164 {
    /// Parses what a person typed, reading numbers without a country code as
    /// numbers of `default_region` (ISO 3166 alpha-2, e.g. `US`).
    ///
    /// Results are remembered (a bounded [`Memo`](crate::memo::Memo)):
    /// validating against libphonenumber's metadata costs about 20 µs, a
    /// quarter of a cached phone lookup's CPU, and the same numbers arrive
    /// again and again (repeat callers, a conversation's every message).
    pub fn parse(input: &str, default_region: &str) -> Result<Self, PhoneError> {
        static PARSED: LazyLock<crate::memo::Memo<String, Result<E164, PhoneError>>> =
            LazyLock::new(|| crate::memo::Memo::new("phone_parse", 20_000));
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.len() > 40 {
            return Err(PhoneError::Unparseable);
        }
        // The region is at most a few letters and never contains the NUL
        // that separates it from the number.
        let key = format!("{default_region}\0{trimmed}");
        if let Some(parsed) = PARSED.get(key.as_str()) {
            return parsed;
        }
        let parsed = Self::parse_uncached(trimmed, default_region);
        PARSED.insert(key, parsed.clone());
        parsed
    }

    fn parse_uncached(trimmed: &str, default_region: &str) -> Result<Self, PhoneError> {
        let region = phonenumber::country::Id::from_str(default_region).ok();
        let mut number =
            phonenumber::parse(region, trimmed).map_err(|_| PhoneError::Unparseable)?;
        if let Some(own) = own_country_form(&number, trimmed, region) {
            number = phonenumber::parse(None, own).map_err(|_| PhoneError::Unparseable)?;
        }
        if !phonenumber::is_valid(&number) {
            return Err(PhoneError::Invalid);
        }
        Ok(Self(
            number.format().mode(phonenumber::Mode::E164).to_string(),
        ))
    }

    /// Accepts only a number already in E.164 form (what carriers send).
    pub fn parse_strict(input: &str) -> Result<Self, PhoneError> {
        if !input.starts_with('+') {
            return Err(PhoneError::Unparseable);
        }
        let parsed = Self::parse(input, "ZZ")?;
        if parsed.0 != input {
            return Err(PhoneError::Unparseable);
        }
        Ok(parsed)
    }

    /// The number in E.164 form (`+12025550123`).
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The `+`-prefixed form of a number that carries a country code other than
/// `region`'s, for a second parse under its own country's rules.
///
/// libphonenumber reads the national part of `+44 (0)20 7946 0123` with the
/// rules of the number's own country (GB: trunk prefix `0`, dropped). The
/// `phonenumber` crate reads it with the *default region's* rules instead
/// whenever one is given, so with `US` it keeps the `0` (`+4402079460123`,
/// invalid) and, worse, drops a leading `1` that is part of the number
/// (`+33 1 42 68 53 00` became `+3342685300`). Parsing the `+` form without
/// a region makes the crate pick the metadata from the country code, which is
/// what libphonenumber does. `None` when the first parse already used the
/// right country's rules.
fn own_country_form(
    number: &phonenumber::PhoneNumber,
    input: &str,
    region: Option<phonenumber::country::Id>,
) -> Option<String> {
    use phonenumber::{country::Source, metadata::DATABASE};

    let meta = region.and_then(|id| DATABASE.by_id(id.as_ref()));
    let code = number.code();
    if meta.map(|m| m.country_code()) == Some(code.value()) {
        return None;
    }
    match code.source() {
        Source::Plus => Some(input.to_string()),
        // `011 44 (0)20 ...` dialled from the US: replace the international
        // dialling prefix the first parse recognised with a `+`.
        Source::Idd => {
            let idd = meta?.international_prefix()?;
            let digits: String = input.chars().filter(char::is_ascii_digit).collect();
            let end = idd.find(&digits).filter(|m| m.start() == 0)?.end();
            let mut seen = 0;
            let rest = input.trim_start_matches(|c: char| {
                if seen == end {
                    return false;
                }
                if c.is_ascii_digit() {
                    seen += 1;
                }
                true
            });
            Some(format!("+{rest}"))
        }
        Source::Number | Source::Default => None,
    }
}

impl fmt::Display for E164 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<E164> for String {
    fn from(value: E164) -> Self {
        value.0
    }
}

impl TryFrom<String> for E164 {
    type Error = PhoneError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse_strict(&value)
    }
}

impl AsRef<str> for E164 {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_common_us_format_normalises_to_the_same_number() {
        for input in [
            "+12025550123",
            "+1 202 555 0123",
            "(202) 555-0123",
            "202-555-0123",
            "202.555.0123",
            "2025550123",
            "1 (202) 555-0123",
            "  +1-202-555-0123 ",
        ] {
            assert_eq!(
                E164::parse(input, "US").map(String::from),
                Ok("+12025550123".to_string()),
                "{input}"
            );
        }
    }

    #[test]
    fn the_demo_number_range_is_valid() {
        assert!(E164::parse("+12025550100", "US").is_ok());
        assert!(E164::parse("+12025550199", "US").is_ok());
    }

    #[test]
    fn international_numbers_keep_their_country() {
        assert_eq!(
            E164::parse("+44 20 7946 0958", "US").map(String::from),
            Ok("+442079460958".to_string())
        );
        assert_eq!(
            E164::parse("020 7946 0958", "GB").map(String::from),
            Ok("+442079460958".to_string())
        );
    }

    #[test]
    fn garbage_and_impossible_numbers_are_refused() {
        assert!(E164::parse("", "US").is_err());
        assert!(E164::parse("hello", "US").is_err());
        assert!(E164::parse("123", "US").is_err());
        assert!(E164::parse("+1 000 000 0000", "US").is_err());
        assert!(E164::parse(&"9".repeat(60), "US").is_err());
    }

    #[test]
    fn an_international_number_keeps_its_own_countrys_trunk_prefix_rules() {
        // What business cards print: the national trunk prefix in parentheses
        // after the country code, which libphonenumber drops.
        for (input, expected) in [
            ("+44 (0)20 7946 0123", "+442079460123"),
            ("+44 (0) 20 7946 0123", "+442079460123"),
            ("+44(0)2079460123", "+442079460123"),
            ("+44 020 7946 0123", "+442079460123"),
            ("+44 (0)7400 123456", "+447400123456"),
            ("+49 (0)30 123456", "+4930123456"),
            ("+49 (0) 30 123456", "+4930123456"),
            ("+33 (0)1 42 68 53 00", "+33142685300"),
            ("+61 (0)2 9374 4000", "+61293744000"),
            ("+41 (0)44 668 18 00", "+41446681800"),
            ("+31 (0)20 555 1234", "+31205551234"),
            ("+7 (8)495 123 4567", "+74951234567"),
            // Italy keeps its leading zero: it is part of the number there.
            ("+39 06 6988 4857", "+390669884857"),
            // Numbers whose first digit is the default region's trunk prefix.
            ("+33 1 42 68 53 00", "+33142685300"),
            ("+44 113 496 0000", "+441134960000"),
            // Dialled with an international prefix rather than a `+`.
            ("011 44 (0)20 7946 0123", "+442079460123"),
            ("011 49 30 123456", "+4930123456"),
        ] {
            for region in ["US", "GB", "DE"] {
                let idd_from_elsewhere = input.starts_with("011") && region != "US";
                if idd_from_elsewhere {
                    continue;
                }
                assert_eq!(
                    E164::parse(input, region).map(String::from),
                    Ok(expected.to_string()),
                    "{input} with default region {region}"
                );
            }
        }
        assert_eq!(
            E164::parse("00 44 (0)20 7946 0123", "FR").map(String::from),
            Ok("+442079460123".to_string())
        );
    }

    #[test]
    fn a_trunk_prefix_does_not_make_garbage_a_number() {
        for input in [
            "+44 (0)",
            "+44 (0)20",
            "+44 (0)20 7946 0123 4567 89",
            "+49 (0)",
            "+999 (0)20 7946 0123",
            "+44 (1)20 7946 0123",
            "(0)20 7946 0123",
            "+44 (0)20 7946 012x",
        ] {
            assert!(E164::parse(input, "US").is_err(), "{input}");
        }
    }

    #[test]
    fn strict_parsing_wants_exact_e164() {
        assert!(E164::parse_strict("+12025550123").is_ok());
        assert!(E164::parse_strict("2025550123").is_err());
        assert!(E164::parse_strict("+1 202 555 0123").is_err());
        assert!(E164::parse_strict("+44 (0)20 7946 0123").is_err());
        assert!(E164::parse_strict("+4402079460123").is_err());
    }
}
