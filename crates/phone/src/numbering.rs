//! libphonenumber's reading of a number, step for step, on the vendored metadata.
//!
//! The `phonenumber` crate's own `parse` departs from libphonenumber in ways that matter here:
//! it strips the default region's trunk prefix from foreign numbers, strips a trunk prefix
//! twice, and does not check that the number is still viable after stripping. So this module
//! uses the crate for what it does well (loading the metadata and compiling its patterns) and
//! follows libphonenumber's `PhoneNumberUtil` for the reading itself: `maybeExtractCountryCode`,
//! `maybeStripNationalPrefixAndCarrierCode`, `testNumberLength`, `getNumberTypeHelper` and
//! `getRegionCodeForNumberFromRegionList`. The names below are theirs, so the two can be read
//! side by side.

use crate::error::PhoneErrorKind;
use crate::metadata::database;
use crate::number::NumberType;
use phonenumber::metadata::{Database, Descriptor, Metadata};

/// Where a match of a metadata pattern that starts at the first character ends (Java's
/// `lookingAt`): the leftmost match is the one at 0 whenever there is one. A macro because the
/// pattern type belongs to a crate this one does not depend on.
macro_rules! prefix_end {
    ($pattern:expr, $text:expr) => {
        $pattern
            .find($text)
            .filter(|m| m.start() == 0)
            .map(|m| m.end())
    };
}

/// libphonenumber's shortest national significant number.
const MIN_LENGTH_FOR_NSN: usize = 2;
/// libphonenumber's longest national significant number.
const MAX_LENGTH_FOR_NSN: usize = 17;
/// E.164's longest number, country calling code included.
pub(crate) const MAX_E164_DIGITS: usize = 15;
/// The longest country calling code.
const MAX_LENGTH_COUNTRY_CODE: usize = 3;

/// A number read and validated: country calling code, national significant number, type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Valid {
    pub(crate) country_code: u16,
    pub(crate) national: String,
    pub(crate) number_type: NumberType,
}

/// Reads `digits` (ASCII digits only) typed in `region`, with a leading `+` when `plus`, and
/// validates the result, as libphonenumber's `parse` followed by `isValidNumber` would.
pub(crate) fn read_valid(region: &str, plus: bool, digits: &str) -> Result<Valid, PhoneErrorKind> {
    let db = database();
    let (country_code, national) = read(db, db.by_id(region), plus, digits)?;
    match valid_type(db, country_code, &national) {
        Some(number_type) => Ok(Valid {
            country_code,
            national,
            number_type,
        }),
        None => Err(invalid_reason(db, country_code, &national)),
    }
}

/// Whether the region's international prefix (`00`, `011`, `0011`, `00[89]`, ...) starts
/// `digits`, as libphonenumber's `parsePrefixAsIdd` decides it; returns the digits after it.
pub(crate) fn strip_international_prefix<'a>(region: &str, digits: &'a str) -> Option<&'a str> {
    let meta = database().by_id(region)?;
    parse_prefix_as_idd(meta, digits)
}

/// The country calling code of `region`.
pub(crate) fn country_code_of(region: &str) -> Option<u16> {
    database().by_id(region).map(Metadata::country_code)
}

/// libphonenumber's `parse` from the point where the input is reduced to digits.
fn read(
    db: &Database,
    region: Option<&Metadata>,
    plus: bool,
    digits: &str,
) -> Result<(u16, String), PhoneErrorKind> {
    let extracted = match maybe_extract_country_code(db, region, plus, digits) {
        // "+011 44 ...": a `+` followed by an international prefix; try again without the `+`.
        Err(PhoneErrorKind::UnknownCountryCode) if plus => {
            match maybe_extract_country_code(db, region, false, digits)? {
                (0, _) => return Err(PhoneErrorKind::UnknownCountryCode),
                found => found,
            }
        }
        other => other?,
    };
    let (country_code, mut national, meta) = match extracted {
        (0, _) => {
            let meta = region.ok_or(PhoneErrorKind::UnknownCountryCode)?;
            (meta.country_code(), digits.to_owned(), meta)
        }
        (code, national) => {
            // The main region's rules, even when typed in another region of the same code
            // (a Grenadian typing +1 reads it as the USA would).
            let meta =
                metadata_for_calling_code(db, code).ok_or(PhoneErrorKind::UnknownCountryCode)?;
            (code, national, meta)
        }
    };
    if national.len() < MIN_LENGTH_FOR_NSN {
        return Err(PhoneErrorKind::TooShort);
    }
    if let Some(stripped) = maybe_strip_national_prefix(meta, &national) {
        // Keep the trunk prefix when what is left is too short to be a number of the region:
        // the original may be a valid short number.
        if !matches!(
            test_number_length(meta, &stripped),
            Length::TooShort | Length::LocalOnly | Length::Invalid
        ) {
            national = stripped;
        }
    }
    if national.len() > MAX_LENGTH_FOR_NSN {
        return Err(PhoneErrorKind::TooLong);
    }
    Ok((country_code, national))
}

/// `maybeExtractCountryCode`: `(0, "")` when the number has no country calling code.
fn maybe_extract_country_code(
    db: &Database,
    region: Option<&Metadata>,
    plus: bool,
    digits: &str,
) -> Result<(u16, String), PhoneErrorKind> {
    let international = if plus {
        Some(digits)
    } else {
        region.and_then(|meta| parse_prefix_as_idd(meta, digits))
    };
    if let Some(full) = international {
        if full.len() <= MIN_LENGTH_FOR_NSN {
            return Err(PhoneErrorKind::TooShort);
        }
        return extract_country_code(db, full)
            .map(|(code, rest)| (code, rest.to_owned()))
            .ok_or(PhoneErrorKind::UnknownCountryCode);
    }
    let Some(meta) = region else {
        return Ok((0, String::new()));
    };
    // A number that starts with the region's own country code, typed without `+`: take the
    // code off when the number only makes sense without it, or is too long with it.
    let code = meta.country_code().to_string();
    if let Some(rest) = digits.strip_prefix(code.as_str()) {
        let general = meta.descriptors().general();
        let potential = maybe_strip_national_prefix(meta, rest).unwrap_or_else(|| rest.to_owned());
        if (!matches_pattern(general, digits) && matches_pattern(general, &potential))
            || test_number_length(meta, digits) == Length::TooLong
        {
            return Ok((meta.country_code(), potential));
        }
    }
    Ok((0, String::new()))
}

/// `parsePrefixAsIdd`: the digits after the region's international prefix, unless the next
/// digit is a `0` (no country calling code starts with one).
fn parse_prefix_as_idd<'a>(meta: &Metadata, digits: &'a str) -> Option<&'a str> {
    let end = prefix_end!(meta.international_prefix()?, digits)?;
    let rest = &digits[end..];
    (!rest.starts_with('0')).then_some(rest)
}

/// The country calling code E.164 `digits` (without `+`) start with, if any.
pub(crate) fn country_code_of_e164(digits: &str) -> Option<u16> {
    extract_country_code(database(), digits).map(|(code, _)| code)
}

/// `extractCountryCode`: the first one, two or three digits that are a country calling code.
fn extract_country_code<'a>(db: &Database, digits: &'a str) -> Option<(u16, &'a str)> {
    if digits.starts_with('0') {
        return None;
    }
    (1..=MAX_LENGTH_COUNTRY_CODE.min(digits.len())).find_map(|len| {
        let code: u16 = digits[..len].parse().ok()?;
        db.by_code(&code)?;
        Some((code, &digits[len..]))
    })
}

/// The metadata libphonenumber reads a number of `code` with: its main region's, or the
/// non-geographic entity's.
fn metadata_for_calling_code(db: &Database, code: u16) -> Option<&Metadata> {
    let main = *db.region(&code)?.first()?;
    if main == "001" {
        db.by_code(&code)?.into_iter().next()
    } else {
        db.by_id(main)
    }
}

/// `maybeStripNationalPrefixAndCarrierCode`: the number without its trunk prefix (and carrier
/// code), or `None` when there is none or stripping it would make a viable number unviable.
fn maybe_strip_national_prefix(meta: &Metadata, number: &str) -> Option<String> {
    let prefix = meta.national_prefix_for_parsing()?;
    if number.is_empty() {
        return None;
    }
    let captures = prefix.captures(number)?;
    let whole = captures.get(0)?;
    if whole.start() != 0 {
        return None;
    }
    let general = meta.descriptors().general();
    let viable = matches_pattern(general, number);
    let groups = captures.len() - 1;
    let last_group = (groups > 0).then(|| captures.get(groups)).flatten();
    let transform = meta
        .national_prefix_transform_rule()
        .filter(|rule| !rule.is_empty());
    let result = match (transform, last_group) {
        (Some(rule), Some(_)) => prefix.replace(number, rule).into_owned(),
        _ => number[whole.end()..].to_owned(),
    };
    if viable && !matches_pattern(general, &result) {
        return None;
    }
    Some(result)
}

/// `ValidationResult` of `testNumberLength` for an unknown type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Length {
    Possible,
    LocalOnly,
    TooShort,
    TooLong,
    Invalid,
}

/// `testNumberLength` against the region's general lengths.
fn test_number_length(meta: &Metadata, number: &str) -> Length {
    let general = meta.descriptors().general();
    let possible = general.possible_length();
    let len = u16::try_from(number.len()).unwrap_or(u16::MAX);
    if general.possible_local_length().contains(&len) {
        return Length::LocalOnly;
    }
    match (possible.iter().min(), possible.iter().max()) {
        (Some(&min), _) if len < min => Length::TooShort,
        (_, Some(&max)) if len > max => Length::TooLong,
        _ if possible.contains(&len) => Length::Possible,
        _ => Length::Invalid,
    }
}

/// `matchNationalNumber` without prefix matching: the whole number matches the pattern
/// (anchored on loading, see [`crate::metadata`]).
fn matches_pattern(desc: &Descriptor, number: &str) -> bool {
    desc.national_number().is_match(number)
}

/// `isNumberMatchingDesc`: a possible length of the descriptor, and its pattern.
fn matches_desc(desc: Option<&Descriptor>, number: &str) -> bool {
    desc.is_some_and(|d| {
        let len = u16::try_from(number.len()).unwrap_or(u16::MAX);
        (d.possible_length().is_empty() || d.possible_length().contains(&len))
            && matches_pattern(d, number)
    })
}

/// `getNumberTypeHelper`; `None` is libphonenumber's `UNKNOWN`, an invalid number.
fn number_type(meta: &Metadata, national: &str) -> Option<NumberType> {
    let d = meta.descriptors();
    if !matches_desc(Some(d.general()), national) {
        return None;
    }
    let special = [
        (d.premium_rate(), NumberType::PremiumRate),
        (d.toll_free(), NumberType::TollFree),
        (d.shared_cost(), NumberType::SharedCost),
        (d.voip(), NumberType::Voip),
        (d.personal_number(), NumberType::PersonalNumber),
        (d.pager(), NumberType::Pager),
        (d.uan(), NumberType::Uan),
        (d.voicemail(), NumberType::Voicemail),
    ];
    if let Some((_, t)) = special
        .iter()
        .find(|(desc, _)| matches_desc(*desc, national))
    {
        return Some(*t);
    }
    let same_pattern = match (d.mobile(), d.fixed_line()) {
        (None, None) => true,
        (Some(m), Some(f)) => m.national_number().as_str() == f.national_number().as_str(),
        _ => false,
    };
    if matches_desc(d.fixed_line(), national) {
        return Some(if same_pattern || matches_desc(d.mobile(), national) {
            NumberType::FixedLineOrMobile
        } else {
            NumberType::FixedLine
        });
    }
    (!same_pattern && matches_desc(d.mobile(), national)).then_some(NumberType::Mobile)
}

/// `isValidNumber`: the type of the number in the region its digits belong to, or `None`.
fn valid_type(db: &Database, code: u16, national: &str) -> Option<NumberType> {
    let regions = db.region(&code)?;
    if let [only] = regions.as_slice() {
        let meta = if *only == "001" {
            db.by_code(&code)?.into_iter().next()?
        } else {
            db.by_id(*only)?
        };
        return number_type(meta, national);
    }
    // `getRegionCodeForNumberFromRegionList`: the first region whose leading digits match,
    // or (for regions without leading digits) whose plan has the number.
    // The region found decides, even when the number is not valid there.
    for region in regions {
        let Some(meta) = db.by_id(region) else {
            continue;
        };
        match meta.leading_digits() {
            Some(leading) if prefix_end!(leading, national).is_some() => {
                return number_type(meta, national);
            }
            Some(_) => {}
            None => {
                if let Some(t) = number_type(meta, national) {
                    return Some(t);
                }
            }
        }
    }
    None
}

/// Why a number read with `code` is not valid: longer than E.164 allows, shorter or longer
/// than every number of its country, or not in its plan.
fn invalid_reason(db: &Database, code: u16, national: &str) -> PhoneErrorKind {
    let Some(metas) = db.by_code(&code) else {
        return PhoneErrorKind::UnknownCountryCode;
    };
    if code.to_string().len() + national.len() > MAX_E164_DIGITS {
        return PhoneErrorKind::TooLong;
    }
    let lengths: Vec<u16> = metas
        .iter()
        .flat_map(|m| m.descriptors().general().possible_length().iter().copied())
        .collect();
    let len = u16::try_from(national.len()).unwrap_or(u16::MAX);
    match (lengths.iter().min(), lengths.iter().max()) {
        (Some(&min), _) if len < min => PhoneErrorKind::TooShort,
        (_, Some(&max)) if len > max => PhoneErrorKind::TooLong,
        _ => PhoneErrorKind::InvalidNumber,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(region: &str) -> &'static Metadata {
        database().by_id(region).expect("a region of the metadata")
    }

    #[test]
    fn trunk_prefixes_and_carrier_codes_are_stripped_as_libphonenumber_does() {
        // Verdicts of phonenumbers 9.0.43's `_maybe_strip_national_prefix_carrier_code`.
        let cases = [
            ("GB", "07911123456", Some("7911123456")),
            ("GB", "7911123456", None),
            // Argentina: trunk 0, area 11, mobile token 15 becomes the leading 9.
            ("AR", "0111512345678", Some("91112345678")),
            // Brazil: trunk 0 and carrier code 21.
            ("BR", "0211140012345", Some("1140012345")),
            ("JP", "0312345678", Some("312345678")),
            ("RU", "89123456789", Some("9123456789")),
            ("US", "12015550123", Some("2015550123")),
            // Grenada: a seven-digit local number is completed with its area code.
            ("GD", "4732691", Some("4734732691")),
            // Italy has no trunk prefix: the leading 0 belongs to the number.
            ("IT", "0612345678", None),
        ];
        for (region, number, expected) in cases {
            assert_eq!(
                maybe_strip_national_prefix(meta(region), number).as_deref(),
                expected,
                "{region} {number}"
            );
        }
    }

    #[test]
    fn country_codes_are_the_first_digits_that_exist() {
        let db = database();
        assert_eq!(
            extract_country_code(db, "447911123456"),
            Some((44, "7911123456"))
        );
        assert_eq!(
            extract_country_code(db, "12015550123"),
            Some((1, "2015550123"))
        );
        assert_eq!(
            extract_country_code(db, "8801812345678"),
            Some((880, "1812345678"))
        );
        assert_eq!(extract_country_code(db, "0447911123456"), None);
        assert_eq!(extract_country_code(db, "999123456"), None);
    }

    #[test]
    fn the_international_prefix_is_the_region_pattern() {
        let cases = [
            ("US", "011447911", Some("447911")),
            ("US", "00447911", None),
            ("ID", "00862812", Some("62812")),
            ("ID", "00962812", Some("62812")),
            ("ID", "0062812", None),
            ("AU", "0011447911", Some("447911")),
            ("JP", "010447911", Some("447911")),
            ("GB", "00447911", Some("447911")),
            // No country code starts with 0: `00` then `0` is no prefix.
            ("GB", "000447911", None),
        ];
        for (region, digits, expected) in cases {
            assert_eq!(
                parse_prefix_as_idd(meta(region), digits),
                expected,
                "{region} {digits}"
            );
        }
    }

    #[test]
    fn lengths_are_tested_against_the_general_description() {
        // Great Britain: 7, 9 or 10 digits; 4, 5, 6 or 8 for local-only numbers.
        let gb = meta("GB");
        assert_eq!(test_number_length(gb, "7911123456"), Length::Possible);
        assert_eq!(test_number_length(gb, "79111"), Length::LocalOnly);
        assert_eq!(test_number_length(gb, "791"), Length::TooShort);
        assert_eq!(test_number_length(gb, "79111234567"), Length::TooLong);
        assert_eq!(
            gb.descriptors().general().possible_length(),
            &[7, 9, 10],
            "the metadata changed: revisit these cases"
        );
    }
}
