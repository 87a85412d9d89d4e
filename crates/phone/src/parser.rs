use std::fmt;
use std::str::FromStr;
use std::sync::Once;

use phonenumber::country::Id;
use phonenumber::metadata::DATABASE;

use crate::error::{PhoneError, PhoneErrorKind};
use crate::number::{NumberType, PhoneNumber};

/// Longest input accepted before any work is done; real numbers with all the punctuation a
/// person might type stay far below this.
const MAX_INPUT_CHARS: usize = 64;
/// E.164 allows at most 15 digits; a little slack for an international prefix (`00`).
const MAX_DIGITS: usize = 17;

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
}

impl Default for Region {
    fn default() -> Self {
        Self::INDONESIA
    }
}

impl FromStr for Region {
    type Err = PhoneError;

    /// Fails with [`PhoneErrorKind::UnknownCountryCode`] for anything that is not a known
    /// two-letter region.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let upper = s.trim().to_ascii_uppercase();
        if upper.len() != 2 {
            return Err(PhoneError::new(PhoneErrorKind::UnknownCountryCode));
        }
        Id::from_str(&upper)
            .map(Self)
            .map_err(|_| PhoneError::new(PhoneErrorKind::UnknownCountryCode))
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
        // Touch the database and compile the regular expressions of the default region.
        let _ = phonenumber::parse(Some(Id::ID), "+6281234567890").map(|n| n.is_valid());
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
    /// - Spaces, `-`, `.`, `/`, brackets, a leading `+` or `00`, a `tel:` prefix and a `(0)`
    ///   trunk marker are ignored; full-width and Arabic-Indic digits are read as digits.
    /// - A number with a country code (`+44...`, `0044...`) is read in that country; one
    ///   without is read in [`region`](Self::region), with or without its trunk `0`, and a
    ///   number that already starts with the region's country code (`62812...`) is recognised.
    /// - Refused with a typed [`PhoneError`]: empty input, letters, other characters,
    ///   extensions, too short, too long, unknown country codes, numbers that do not exist in
    ///   their plan. Landlines are accepted; [`PhoneNumber::number_type`] says what it is.
    /// - Never panics, and parsing [`PhoneNumber::e164`] again gives the same number.
    pub fn parse(&self, input: &str) -> Result<PhoneNumber, PhoneError> {
        let cleaned = clean(input)?;
        // International input is parsed without a default region: phonenumber 0.3 would
        // otherwise strip the default region's trunk prefix from the foreign number.
        let region = (!cleaned.starts_with('+')).then_some(self.region.0);
        let parsed = phonenumber::parse(region, &cleaned).map_err(|e| map_parse_error(&e))?;
        if parsed.extension().is_some() {
            return Err(PhoneErrorKind::Extension.into());
        }
        if !parsed.is_valid() {
            return Err(invalid_reason(&parsed).into());
        }
        let e164 = parsed.format().mode(phonenumber::Mode::E164).to_string();
        let digits: String = e164.chars().filter(char::is_ascii_digit).collect();
        if digits.len() > 15 {
            return Err(PhoneErrorKind::TooLong.into());
        }
        let number_type = NumberType::from_lib(parsed.number_type(&DATABASE));
        Ok(PhoneNumber::new(digits, parsed.code().value(), number_type))
    }
}

/// Checks the characters and reduces the input to `+digits` or `digits`.
fn clean(input: &str) -> Result<String, PhoneError> {
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

    let mut out = String::with_capacity(s.len() + 1);
    let mut digits = 0usize;
    let mut rest = s;
    // A "(0)" trunk marker after an international number: "+62 (0)812...".
    let mut seen_plus = false;
    while let Some(c) = rest.chars().next() {
        if rest.starts_with("(0)") && seen_plus {
            rest = &rest[3..];
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if let Some(d) = decimal_digit(c) {
            out.push(d);
            digits += 1;
        } else if c == '+' || c == '\u{FF0B}' {
            if seen_plus || digits > 0 {
                return Err(PhoneErrorKind::InvalidCharacter.into());
            }
            seen_plus = true;
            out.push('+');
        } else if !is_separator(c) {
            return Err(PhoneErrorKind::InvalidCharacter.into());
        }
    }
    if digits == 0 {
        return Err(PhoneErrorKind::Empty.into());
    }
    if digits > MAX_DIGITS {
        return Err(PhoneErrorKind::TooLong.into());
    }
    if !seen_plus && out.starts_with("00") {
        // International dialling prefix used in most of the world, Indonesia included.
        out.replace_range(..2, "+");
    }
    Ok(out)
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

fn map_parse_error(e: &phonenumber::ParseError) -> PhoneError {
    use phonenumber::ParseError as E;
    match e {
        E::InvalidCountryCode => PhoneErrorKind::UnknownCountryCode,
        E::TooLong => PhoneErrorKind::TooLong,
        // NoNumber means fewer than three digits survived: too short to be anything.
        _ => PhoneErrorKind::TooShort,
    }
    .into()
}

/// Why a parsed number is not valid: wrong length for its country, or not in its plan.
fn invalid_reason(n: &phonenumber::PhoneNumber) -> PhoneErrorKind {
    let Some(metas) = DATABASE.by_code(&n.code().value()) else {
        return PhoneErrorKind::UnknownCountryCode;
    };
    let national_len = n.national().to_string().len();
    let lengths: Vec<usize> = metas
        .iter()
        .flat_map(|m| {
            let d = m.descriptors();
            [
                Some(d.general()),
                d.fixed_line(),
                d.mobile(),
                d.voip(),
                d.toll_free(),
                d.premium_rate(),
                d.shared_cost(),
                d.personal_number(),
                d.pager(),
                d.uan(),
                d.voicemail(),
            ]
        })
        .flatten()
        .flat_map(|d| d.possible_length().iter().map(|&l| usize::from(l)))
        .collect();
    match (lengths.iter().min(), lengths.iter().max()) {
        (Some(&min), _) if national_len < min => PhoneErrorKind::TooShort,
        (_, Some(&max)) if national_len > max => PhoneErrorKind::TooLong,
        _ => PhoneErrorKind::InvalidNumber,
    }
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
    fn idd_prefix_becomes_plus() {
        assert_eq!(clean("0062 812").unwrap(), "+62812");
        assert_eq!(clean("+62 (0)812").unwrap(), "+62812");
    }
}
