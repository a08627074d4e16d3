//! Phone numbers in E.164, the one form Switchboard stores and compares.
//!
//! Input arrives in every shape people type (`(202) 555-0123`,
//! `202.555.0123`, `+1 202 555 0123`, `001 202 555 0123`); the
//! `phonenumber` crate (a port of Google's libphonenumber) parses it against
//! a default region and we keep only numbers it considers valid.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};

/// A validated phone number in E.164 form (`+12025550123`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[serde(try_from = "String", into = "String")]
pub struct E164(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PhoneError {
    #[error("not a phone number")]
    Unparseable,
    #[error("not a valid phone number for its country")]
    Invalid,
}

impl E164 {
    /// Parses what a person typed, reading numbers without a country code as
    /// numbers of `default_region` (ISO 3166 alpha-2, e.g. `US`).
    pub fn parse(input: &str, default_region: &str) -> Result<Self, PhoneError> {
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.len() > 40 {
            return Err(PhoneError::Unparseable);
        }
        let region = phonenumber::country::Id::from_str(default_region).ok();
        let number = phonenumber::parse(region, trimmed).map_err(|_| PhoneError::Unparseable)?;
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

    pub fn as_str(&self) -> &str {
        &self.0
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
    fn strict_parsing_wants_exact_e164() {
        assert!(E164::parse_strict("+12025550123").is_ok());
        assert!(E164::parse_strict("2025550123").is_err());
        assert!(E164::parse_strict("+1 202 555 0123").is_err());
    }
}
