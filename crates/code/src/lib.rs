#![doc = include_str!("../README.md")]
//!
//! ## Feature flags
//!
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// The characters WhatsApp uses in pairing codes: Crockford-style base 32 without `0`, `I`,
/// `O` and `U`, so that no two characters look alike.
pub const ALPHABET: &str = "123456789ABCDEFGHJKLMNPQRSTVWXYZ";

/// Number of characters in a pairing code.
pub const CODE_LEN: usize = 8;

/// How long WhatsApp keeps a pairing code valid after issuing it (about 180 s), and only while
/// the socket that registered it stays open. `whatsapp-rust` reports the exact validity with
/// each code; use this only where none was given.
pub const WHATSAPP_CODE_VALIDITY: Duration = Duration::from_secs(180);

const fn in_alphabet(b: u8) -> bool {
    matches!(b, b'1'..=b'9' | b'A'..=b'H' | b'J'..=b'N' | b'P'..=b'T' | b'V'..=b'Z')
}

/// What is wrong with a pairing code a person typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CodeErrorKind {
    /// Nothing but spaces and dashes.
    Empty,
    /// Fewer than eight characters.
    TooShort,
    /// More than eight characters.
    TooLong,
    /// A character outside [`ALPHABET`] (for example `0`, `O`, `I`, `U` or punctuation).
    InvalidCharacter,
}

impl CodeErrorKind {
    /// The stable lower-case name, such as `"too_short"` (the name used in logs, metrics and
    /// API error codes, like every `as_str` in the workspace).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Empty => "empty",
            Self::TooShort => "too_short",
            Self::TooLong => "too_long",
            Self::InvalidCharacter => "invalid_character",
        }
    }
}

/// A pairing code could not be parsed.
///
/// The message says what is wrong and never repeats the code.
///
/// ```
/// use wa_pairing_code::{CodeErrorKind, PairingCode};
///
/// let err = "ABCD-EFG".parse::<PairingCode>().unwrap_err();
/// assert_eq!(err.kind(), CodeErrorKind::TooShort);
/// assert_eq!(err.to_string(), "the pairing code has 7 characters; it must have exactly 8, like ABCD-EFGH");
///
/// let err = "ABCD-EFG0".parse::<PairingCode>().unwrap_err();
/// assert_eq!(err.kind(), CodeErrorKind::InvalidCharacter);
/// assert!(err.to_string().contains("position 8"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodeError {
    /// See [`CodeErrorKind::Empty`].
    #[error("no pairing code was given: type the 8 characters WhatsApp shows, like ABCD-EFGH")]
    Empty,
    /// See [`CodeErrorKind::TooShort`] and [`CodeErrorKind::TooLong`].
    #[error("the pairing code has {len} characters; it must have exactly 8, like ABCD-EFGH")]
    WrongLength {
        /// How many code characters (not counting spaces and dashes) were given.
        len: usize,
    },
    /// See [`CodeErrorKind::InvalidCharacter`].
    #[error(
        "the pairing code has a character that pairing codes never use at position {position}: \
         they use the digits 1-9 and the letters A-Z except I, O and U"
    )]
    InvalidCharacter {
        /// One-based position among the code characters.
        position: usize,
    },
}

impl CodeError {
    /// What kind of problem this is.
    pub const fn kind(&self) -> CodeErrorKind {
        match self {
            Self::Empty => CodeErrorKind::Empty,
            Self::WrongLength { len } if *len < CODE_LEN => CodeErrorKind::TooShort,
            Self::WrongLength { .. } => CodeErrorKind::TooLong,
            Self::InvalidCharacter { .. } => CodeErrorKind::InvalidCharacter,
        }
    }
}

/// An 8-character WhatsApp pairing code.
///
/// Holding one means the code is well formed: exactly eight characters of [`ALPHABET`], stored
/// upper case. [`as_str`](Self::as_str) gives the raw characters for the WhatsApp client,
/// [`Display`](fmt::Display) shows `XXXX-XXXX` for people, and [`Debug`](fmt::Debug) shows
/// only the [redacted](Self::redacted) form, so a code never leaks into logs by accident.
///
/// ```
/// use wa_pairing_code::PairingCode;
///
/// let code: PairingCode = " abcd efgh ".parse()?;
/// assert_eq!(code.as_str(), "ABCDEFGH");
/// assert_eq!(code.to_string(), "ABCD-EFGH");
/// assert_eq!(code.redacted(), "AB**-****");
/// assert_eq!(format!("{code:?}"), "PairingCode(AB**-****)");
/// # Ok::<(), wa_pairing_code::CodeError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PairingCode([u8; CODE_LEN]);

impl PairingCode {
    /// Parses loose user input: case-insensitive, spaces and dashes (including Unicode dashes)
    /// anywhere are ignored.
    ///
    /// # Behavior
    /// - `abcd-efgh`, `ABCD EFGH`, `ABCDEFGH`, `AbCd-EfGh` all give `ABCDEFGH`.
    /// - Anything else is refused with a [`CodeError`] saying what is wrong: empty, wrong
    ///   length (with the length found), or a character outside [`ALPHABET`] (with its position).
    /// - Never panics.
    pub fn parse(input: &str) -> Result<Self, CodeError> {
        let mut out = [0u8; CODE_LEN];
        let mut len = 0usize;
        let mut bad_at = None;
        for c in input.chars() {
            if c.is_whitespace() || matches!(c, '-' | '_' | '\u{2010}'..='\u{2015}' | '\u{2212}') {
                continue;
            }
            len += 1;
            let upper = c.to_ascii_uppercase();
            let ok = upper.is_ascii() && in_alphabet(upper as u8);
            if !ok && bad_at.is_none() {
                bad_at = Some(len);
            }
            if ok && len <= CODE_LEN {
                out[len - 1] = upper as u8;
            }
        }
        if len == 0 {
            return Err(CodeError::Empty);
        }
        if len != CODE_LEN {
            return Err(CodeError::WrongLength { len });
        }
        if let Some(position) = bad_at {
            return Err(CodeError::InvalidCharacter { position });
        }
        Ok(Self(out))
    }

    /// A random code, for callers that choose their own code (WhatsApp's `custom_code`).
    ///
    /// ```
    /// use wa_pairing_code::PairingCode;
    ///
    /// let a = PairingCode::generate();
    /// assert_eq!(PairingCode::parse(&a.to_string()), Ok(a));
    /// ```
    pub fn generate() -> Self {
        Self::generate_with(&mut rand::rng())
    }

    /// A random code drawn from `rng` (for deterministic tests).
    pub fn generate_with<R: rand::Rng + ?Sized>(rng: &mut R) -> Self {
        use rand::RngExt as _;
        let alphabet = ALPHABET.as_bytes();
        let mut out = [0u8; CODE_LEN];
        for b in &mut out {
            *b = alphabet[rng.random_range(0..alphabet.len())];
        }
        Self(out)
    }

    /// The eight raw characters, as the WhatsApp client takes them (`ABCDEFGH`).
    pub fn as_str(&self) -> &str {
        // Only ASCII from ALPHABET is ever stored.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// A form safe for logs: the first two characters and stars (`AB**-****`).
    pub fn redacted(&self) -> String {
        format!("{}{}**-****", char::from(self.0[0]), char::from(self.0[1]))
    }
}

impl fmt::Display for PairingCode {
    /// `XXXX-XXXX`, the way WhatsApp shows codes and people type them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.as_str();
        write!(f, "{}-{}", &s[..4], &s[4..])
    }
}

impl fmt::Debug for PairingCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PairingCode({})", self.redacted())
    }
}

impl FromStr for PairingCode {
    type Err = CodeError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<&str> for PairingCode {
    type Error = CodeError;

    fn try_from(s: &str) -> Result<Self, Self::Error> {
        Self::parse(s)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for PairingCode {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for PairingCode {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// A pairing code together with its validity window.
///
/// A cache entry for a code lives exactly as long as [`remaining`](Self::remaining) says,
/// never a fixed ten minutes: a dead code shown to a person wastes one of their attempts.
///
/// ```
/// use std::time::Duration;
/// use chrono::{TimeDelta, Utc};
/// use wa_pairing_code::{IssuedCode, PairingCode, WHATSAPP_CODE_VALIDITY};
///
/// let issued_at = Utc::now();
/// let issued = IssuedCode::new("ABCD-EFGH".parse()?, issued_at, WHATSAPP_CODE_VALIDITY);
/// assert_eq!(issued.remaining(issued_at + TimeDelta::seconds(30)), Duration::from_secs(150));
/// assert!(!issued.is_expired(issued_at + TimeDelta::seconds(179)));
/// assert!(issued.is_expired(issued_at + TimeDelta::seconds(180)));
/// assert_eq!(issued.remaining(issued_at + TimeDelta::seconds(600)), Duration::ZERO);
/// # Ok::<(), wa_pairing_code::CodeError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct IssuedCode {
    /// The code.
    pub code: PairingCode,
    /// When WhatsApp issued it.
    pub issued_at: DateTime<Utc>,
    /// When it stops being accepted.
    pub expires_at: DateTime<Utc>,
}

impl IssuedCode {
    /// A code issued at `issued_at`, valid for `validity`. A validity too large for the
    /// calendar saturates at the far future.
    pub fn new(code: PairingCode, issued_at: DateTime<Utc>, validity: Duration) -> Self {
        let expires_at = chrono::TimeDelta::from_std(validity)
            .ok()
            .and_then(|d| issued_at.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        Self {
            code,
            issued_at,
            expires_at,
        }
    }

    /// How long the code stays valid after `now`; zero once expired.
    pub fn remaining(&self, now: DateTime<Utc>) -> Duration {
        (self.expires_at - now).to_std().unwrap_or(Duration::ZERO)
    }

    /// Whether the code is no longer accepted at `now` (expiry is exclusive: at
    /// `expires_at` it is expired).
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        now >= self.expires_at
    }

    /// The full validity window.
    pub fn validity(&self) -> Duration {
        (self.expires_at - self.issued_at)
            .to_std()
            .unwrap_or(Duration::ZERO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alphabet_matches_the_predicate() {
        assert_eq!(ALPHABET.len(), 32);
        for b in 0u8..=255 {
            assert_eq!(in_alphabet(b), ALPHABET.as_bytes().contains(&b), "{b}");
        }
        for excluded in ['0', 'I', 'O', 'U'] {
            assert!(!ALPHABET.contains(excluded));
        }
    }
}
