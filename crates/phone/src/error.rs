use std::fmt;

/// What is wrong with a phone number a person typed.
///
/// Each kind has a stable, machine-readable [`name`](PhoneErrorKind::as_str) that an API can
/// return and a front end can translate; the [`Display`](fmt::Display) text of [`PhoneError`]
/// is a message a person can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PhoneErrorKind {
    /// Nothing was typed (or only spaces and punctuation).
    Empty,
    /// The input contains letters. The underlying parser would silently map them to
    /// keypad digits (`1-800-FLOWERS`), which is never what a person means here.
    Letters,
    /// The input contains a character that never appears in a phone number.
    InvalidCharacter,
    /// The input has an extension (`ext. 12`, `x12`, `;ext=12`); WhatsApp accounts have none.
    Extension,
    /// Fewer digits than any number of its country has.
    TooShort,
    /// More digits than any number of its country has (or more than E.164's 15).
    TooLong,
    /// The country calling code does not exist.
    UnknownCountryCode,
    /// The digits do not form a number that exists in its country's numbering plan.
    InvalidNumber,
}

impl PhoneErrorKind {
    /// A stable, machine-readable code for this kind, such as `"too_short"`.
    ///
    /// ```
    /// use wa_pairing_phone::{parse, PhoneErrorKind};
    ///
    /// assert_eq!(parse("0812").unwrap_err().kind().as_str(), "too_short");
    /// assert_eq!(PhoneErrorKind::Letters.as_str(), "letters");
    /// ```
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::Letters => "letters",
            Self::InvalidCharacter => "invalid_character",
            Self::Extension => "extension",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::UnknownCountryCode => "unknown_country_code",
            Self::InvalidNumber => "invalid_number",
        }
    }

    /// Every kind, for exhaustive tests and documentation tables.
    pub const ALL: [Self; 8] = [
        Self::Empty,
        Self::Letters,
        Self::InvalidCharacter,
        Self::Extension,
        Self::TooShort,
        Self::TooLong,
        Self::UnknownCountryCode,
        Self::InvalidNumber,
    ];

    fn message(self) -> &'static str {
        match self {
            Self::Empty => {
                "no phone number was given: enter the WhatsApp number to link, for example 0812 3456 7890 or +62 812 3456 7890"
            }
            Self::Letters => {
                "the phone number contains letters: enter digits only, for example 0812 3456 7890"
            }
            Self::InvalidCharacter => {
                "the phone number contains a character that is not part of a phone number: use digits, spaces, '+', '-', '.', '/' or brackets only"
            }
            Self::Extension => {
                "the phone number has an extension: WhatsApp numbers have none, so remove the extension"
            }
            Self::TooShort => {
                "the phone number is too short for its country: check that no digit is missing and that the country code is right"
            }
            Self::TooLong => {
                "the phone number is too long for its country: check for extra digits, or a country code typed twice"
            }
            Self::UnknownCountryCode => {
                "the phone number starts with a country code that does not exist: check the digits after '+' (Indonesia is +62)"
            }
            Self::InvalidNumber => {
                "the phone number does not exist in its country's numbering plan: check the digits and the country code"
            }
        }
    }
}

impl fmt::Display for PhoneErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A phone number could not be accepted.
///
/// The message never repeats the input: a full phone number is personal data and must not end
/// up in logs through an error.
///
/// ```
/// use wa_pairing_phone::{parse, PhoneErrorKind};
///
/// let err = parse("0812-ABCD-7890").unwrap_err();
/// assert_eq!(err.kind(), PhoneErrorKind::Letters);
/// assert!(err.to_string().contains("digits only"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", .kind.message())]
pub struct PhoneError {
    kind: PhoneErrorKind,
}

impl PhoneError {
    pub(crate) const fn new(kind: PhoneErrorKind) -> Self {
        Self { kind }
    }

    /// What is wrong.
    pub const fn kind(&self) -> PhoneErrorKind {
        self.kind
    }

    /// Shorthand for `self.kind().as_str()`.
    pub const fn as_str(&self) -> &'static str {
        self.kind.as_str()
    }
}

impl From<PhoneErrorKind> for PhoneError {
    fn from(kind: PhoneErrorKind) -> Self {
        Self::new(kind)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn codes_are_unique_and_snake_case() {
        let codes: HashSet<_> = PhoneErrorKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(codes.len(), PhoneErrorKind::ALL.len());
        for code in codes {
            assert!(
                code.chars().all(|c| c.is_ascii_lowercase() || c == '_'),
                "{code}"
            );
        }
    }

    #[test]
    fn every_message_says_what_to_do() {
        for kind in PhoneErrorKind::ALL {
            let msg = PhoneError::new(kind).to_string();
            assert!(
                msg.starts_with("the phone number") || msg.starts_with("no phone number"),
                "{msg}"
            );
            assert!(msg.contains(':'), "message lacks advice: {msg}");
        }
    }
}
