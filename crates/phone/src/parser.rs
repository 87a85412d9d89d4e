use std::fmt;
use std::str::FromStr;
use std::sync::Once;

use phonenumber::country::Id;

use crate::error::{PhoneError, PhoneErrorKind};
use crate::number::PhoneNumber;
use crate::numbering;

/// Longest input accepted before any work is done; real numbers with all the punctuation a
/// person might type stay far below this.
const MAX_INPUT_CHARS: usize = 64;
/// Most digits accepted before any work is done: E.164's 15, the longest international prefix
/// in the metadata (8 digits, Australia's `14xx0011`) and a typed trunk `0`.
const MAX_DIGITS: usize = 24;

/// The region used to read numbers typed without a country code (`0812...`).
///
/// Built from an ISO 3166-1 alpha-2 code, case-insensitive.
///
/// ```
/// use wa_pairing_phone::Region;
///
/// let my: Region = "my".parse()?;
/// assert_eq!(my.as_str(), "MY");
/// assert_eq!(Region::default(), Region::INDONESIA);
/// assert!("XX".parse::<Region>().is_err());
/// # Ok::<(), wa_pairing_phone::PhoneError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Region(Id);

impl Region {
    /// Indonesia (`ID`, +62): the default.
    pub const INDONESIA: Self = Self(Id::ID);

    /// The two-letter region code.
    pub fn as_str(&self) -> &str {
        // strum's AsRefStr yields the variant name, which is the code itself.
        self.0.as_ref()
    }

    /// The region's country calling code (`62` for Indonesia), from the numbering-plan
    /// metadata. Always `Some` for a region parsed from a string, which must be in the
    /// metadata.
    ///
    /// ```
    /// use wa_pairing_phone::Region;
    ///
    /// assert_eq!(Region::INDONESIA.country_code(), Some(62));
    /// assert_eq!("CA".parse::<Region>()?.country_code(), Some(1));
    /// # Ok::<(), wa_pairing_phone::PhoneError>(())
    /// ```
    pub fn country_code(&self) -> Option<u16> {
        numbering::country_code_of(self.as_str())
    }
}

impl Default for Region {
    fn default() -> Self {
        Self::INDONESIA
    }
}

impl FromStr for Region {
    type Err = PhoneError;

    /// Fails with [`PhoneErrorKind::UnknownCountryCode`] for anything that is not a
    /// two-letter region of the numbering-plan metadata.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(PhoneError::new(PhoneErrorKind::UnknownCountryCode));
        }
        Id::from_str(&upper)
            .ok()
            .map(Self)
            .filter(|r| r.country_code().is_some())
            .ok_or(PhoneError::new(PhoneErrorKind::UnknownCountryCode))
    }
}

impl fmt::Debug for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Region({})", self.as_str())
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Loads the numbering-plan metadata now, so the first real request does not pay for it.
///
/// Called by [`PhoneParser::new`]; safe to call any number of times.
pub fn warm_up() {
    static WARM: Once = Once::new();
    WARM.call_once(|| {
        // Load the database and compile the patterns of the default region.
        let _ = numbering::read_valid(Region::INDONESIA.as_str(), true, "6281234567890");
    });
}

/// Parses phone numbers with a configurable default region.
///
/// # Default
/// The default region is Indonesia (`ID`).
///
/// ```
/// use wa_pairing_phone::{PhoneParser, Region};
///
/// let malaysia = PhoneParser::new("MY".parse()?);
/// assert_eq!(malaysia.parse("012-345 6789")?.digits(), "60123456789");
/// // International input works whatever the default region is.
/// assert_eq!(malaysia.parse("+62 812-3456-7890")?.digits(), "6281234567890");
/// # Ok::<(), wa_pairing_phone::PhoneError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhoneParser {
    region: Region,
}

impl Default for PhoneParser {
    fn default() -> Self {
        Self::new(Region::default())
    }
}

/// Parses with the default region (Indonesia). See [`PhoneParser::parse`] for the rules.
///
/// ```
/// use wa_pairing_phone::parse;
///
/// for input in ["081234567890", "81234567890", "+6281234567890", "6281234567890",
///               "62 812-3456-7890", "(0812) 3456 7890", "+62 (0)812 3456 7890",
///               "tel:+62-812-3456-7890"] {
///     assert_eq!(parse(input)?.digits(), "6281234567890", "{input}");
/// }
/// assert_eq!(parse("+44 7911 123456")?.digits(), "447911123456");
/// # Ok::<(), wa_pairing_phone::PhoneError>(())
/// ```
pub fn parse(input: &str) -> Result<PhoneNumber, PhoneError> {
    PhoneParser::default().parse(input)
}

impl PhoneParser {
    /// A parser reading national numbers in `region`. Warms the metadata (see [`warm_up`]).
    pub fn new(region: Region) -> Self {
        warm_up();
        Self { region }
    }

    /// The region used for numbers typed without a country code.
    pub const fn region(&self) -> Region {
        self.region
    }

    /// Turns whatever a person typed into a validated number.
    ///
    /// # Behavior
    /// - Spaces, `-`, `.`, `/`, brackets and a `tel:` prefix are ignored; full-width and
    ///   Arabic-Indic digits are read as digits.
    /// - A number with a country code is read in that country: after `+` (or `++`), or after
    ///   the international prefix of [`region`](Self::region) as its numbering plan defines it
    ///   (`00` in Malaysia and most of Europe, `011` in the USA and Canada, `0011` in
    ///   Australia, `010` in Japan, `008` or `009` in Indonesia). Digits that are not the
    ///   region's prefix are never taken for one: `0044...` typed in the USA is not a British
    ///   number.
    /// - A number without one is read in [`region`](Self::region), with or without its trunk
    ///   prefix, and a number that already starts with the region's country code (`62812...`)
    ///   is recognised, the country code winning when the digits would also make a national
    ///   number; a trunk prefix after a country code (`+62 (0)812...`) is dropped.
    /// - `00` followed by the region's own country code (`0062 812...` in Indonesia) is read
    ///   as international even where `00` is not the region's prefix, but only when the
    ///   reading above refuses the input and the number read this way is valid: it never
    ///   changes a number the region's plan accepts, and `00` with another country's code stays
    ///   refused.
    /// - Refused with a typed [`PhoneError`]: empty input, letters, other characters,
    ///   extensions, too short, too long, unknown country codes, numbers that do not exist in
    ///   their plan. Landlines are accepted; [`PhoneNumber::number_type`] says what it is.
    /// - Never panics, and parsing [`PhoneNumber::e164`] again gives the same number.
    ///
    /// The reading follows libphonenumber's (see the crate's README for the measured
    /// agreement and each deliberate difference).
    pub fn parse(&self, input: &str) -> Result<PhoneNumber, PhoneError> {
        let Cleaned { plus, digits } = clean(input)?;
        let region = self.region.as_str();
        let read = numbering::read_valid(region, plus, &digits);
        let valid = match read {
            Ok(valid) => own_code_without_plus(region, plus, &digits, &valid).unwrap_or(valid),
            Err(kind) => own_code_after_00(region, plus, &digits).ok_or(kind)?,
        };
        let mut e164 = valid.country_code.to_string();
        e164.push_str(&valid.national);
        if e164.len() > numbering::MAX_E164_DIGITS {
            return Err(PhoneErrorKind::TooLong.into());
        }
        Ok(PhoneNumber::new(
            e164,
            valid.country_code,
            valid.number_type,
        ))
    }
}

/// Digits that start with the region's own country code and are valid both as a national
/// number and after that code (`62812345678` in Indonesia: a landline in 0628, or +62 812 345
/// 678): read the way WhatsApp shows numbers and `wa.me` links carry them, international.
fn own_code_without_plus(
    region: &str,
    plus: bool,
    digits: &str,
    national: &numbering::Valid,
) -> Option<numbering::Valid> {
    let code = numbering::country_code_of(region)?;
    if plus || national.country_code != code || national.national != digits {
        return None;
    }
    digits.strip_prefix(&code.to_string())?;
    numbering::read_valid(region, true, digits)
        .ok()
        .filter(|v| v.country_code == code)
}

/// `00` and the region's own country code, where `00` is not the region's international
/// prefix: read as `+` and the code when that gives a valid number of the region itself.
fn own_code_after_00(region: &str, plus: bool, digits: &str) -> Option<numbering::Valid> {
    let after = digits.strip_prefix("00").filter(|_| !plus)?;
    if numbering::strip_international_prefix(region, digits).is_some() {
        // `00` is (the start of) the region's prefix: the reading already used it.
        return None;
    }
    let code = numbering::country_code_of(region)?;
    if !after.starts_with(&code.to_string()) {
        return None;
    }
    numbering::read_valid(region, true, after)
        .ok()
        .filter(|v| v.country_code == code)
}

/// The input reduced to its digits, and whether a `+` came first.
#[derive(Debug, PartialEq, Eq)]
struct Cleaned {
    plus: bool,
    digits: String,
}

/// Checks the characters and reduces the input to its digits and a leading `+`.
fn clean(input: &str) -> Result<Cleaned, PhoneError> {
    let mut s = input.trim();
    if s.chars().count() > MAX_INPUT_CHARS {
        return Err(if s.chars().any(char::is_alphabetic) {
            PhoneErrorKind::Letters.into()
        } else {
            PhoneErrorKind::TooLong.into()
        });
    }
    if s.get(..4).is_some_and(|p| p.eq_ignore_ascii_case("tel:")) {
        s = s[4..].trim_start();
    }
    if let Some(kind) = extension_or_letters(s) {
        return Err(kind.into());
    }

    let mut digits = String::with_capacity(s.len());
    let mut plus = false;
    // Pluses are accepted as one run before the first digit: `+62`, `++62` (a doubled `+` is
    // a common slip), but not `+ +62` or `62+812`.
    let mut last_was_plus = false;
    for c in s.chars() {
        if let Some(d) = decimal_digit(c) {
            digits.push(d);
            last_was_plus = false;
        } else if c == '+' || c == '\u{FF0B}' {
            if !digits.is_empty() || (plus && !last_was_plus) {
                return Err(PhoneErrorKind::InvalidCharacter.into());
            }
            plus = true;
            last_was_plus = true;
        } else if is_separator(c) {
            last_was_plus = false;
        } else {
            return Err(PhoneErrorKind::InvalidCharacter.into());
        }
    }
    if digits.is_empty() {
        return Err(PhoneErrorKind::Empty.into());
    }
    if digits.len() > MAX_DIGITS {
        return Err(PhoneErrorKind::TooLong.into());
    }
    Ok(Cleaned { plus, digits })
}

/// If the input has letters, tells whether they form an extension or are letters proper.
fn extension_or_letters(s: &str) -> Option<PhoneErrorKind> {
    let start = s.find(|c: char| c.is_alphabetic() || c == '#' || c == ';')?;
    let tail = s[start..].to_lowercase();
    let marker_len = [";ext=", "extension", "ext.", "ext", "x.", "x", "#"]
        .iter()
        .find(|m| tail.starts_with(**m))
        .map(|m| m.len());
    if let Some(len) = marker_len {
        let after = tail[len..].trim();
        if !after.is_empty() && after.chars().all(|c| decimal_digit(c).is_some()) {
            return Some(PhoneErrorKind::Extension);
        }
    }
    if s[start..].chars().any(char::is_alphabetic) {
        Some(PhoneErrorKind::Letters)
    } else {
        Some(PhoneErrorKind::InvalidCharacter)
    }
}

fn decimal_digit(c: char) -> Option<char> {
    let zero = match c {
        '0'..='9' => '0',
        '\u{FF10}'..='\u{FF19}' => '\u{FF10}',
        '\u{0660}'..='\u{0669}' => '\u{0660}',
        '\u{06F0}'..='\u{06F9}' => '\u{06F0}',
        _ => return None,
    };
    let v = u32::from(c) - u32::from(zero);
    char::from_digit(v, 10)
}

fn is_separator(c: char) -> bool {
    c.is_whitespace()
        || matches!(
            c,
            '-' | '.' | '(' | ')' | '/' | '\u{2010}'..='\u{2015}' | '\u{2212}' | '\u{30FC}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimal_digits_of_other_scripts() {
        assert_eq!(decimal_digit('７'), Some('7'));
        assert_eq!(decimal_digit('٣'), Some('3'));
        assert_eq!(decimal_digit('۹'), Some('9'));
        assert_eq!(decimal_digit('a'), None);
    }

    #[test]
    fn clean_keeps_the_digits_and_one_run_of_plus() {
        let c = |s: &str| clean(s).map(|c| (c.plus, c.digits)).map_err(|e| e.kind());
        assert_eq!(c("0062 812"), Ok((false, "0062812".to_owned())));
        assert_eq!(c("+62 (0)812"), Ok((true, "620812".to_owned())));
        assert_eq!(c("++62 812"), Ok((true, "62812".to_owned())));
        assert_eq!(c("(+62) 812"), Ok((true, "62812".to_owned())));
        assert_eq!(c("\u{FF0B}\u{FF0B}62"), Ok((true, "62".to_owned())));
        for bad in ["+ +62 812", "62+812", "+62+812", "+62 +812"] {
            assert_eq!(c(bad), Err(PhoneErrorKind::InvalidCharacter), "{bad}");
        }
    }
}
