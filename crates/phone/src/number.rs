use std::fmt;

/// What kind of line a number belongs to, as the numbering plan says.
///
/// Landlines are valid: WhatsApp Business runs on them, and the pairing code is delivered to
/// the WhatsApp app, not by SMS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NumberType {
    /// A mobile number.
    Mobile,
    /// A fixed line (landline).
    FixedLine,
    /// The plan cannot tell mobile from fixed line (for example the USA).
    FixedLineOrMobile,
    /// Voice over IP.
    Voip,
    /// A personal number routed to a mobile or fixed line.
    PersonalNumber,
    /// Free phone.
    TollFree,
    /// Premium rate.
    PremiumRate,
    /// Shared cost.
    SharedCost,
    /// Universal access ("company") number.
    Uan,
    /// Pager.
    Pager,
    /// Voicemail access.
    Voicemail,
    /// Any other type the plan knows.
    Other,
    /// Not looked up: a number read back from storage with
    /// [`PhoneNumber::from_stored_digits`], whose plan was checked when it was stored.
    Unknown,
}

impl NumberType {
    /// A stable lower-case name, such as `"mobile"` or `"fixed_line"`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Mobile => "mobile",
            Self::FixedLine => "fixed_line",
            Self::FixedLineOrMobile => "fixed_line_or_mobile",
            Self::Voip => "voip",
            Self::PersonalNumber => "personal_number",
            Self::TollFree => "toll_free",
            Self::PremiumRate => "premium_rate",
            Self::SharedCost => "shared_cost",
            Self::Uan => "uan",
            Self::Pager => "pager",
            Self::Voicemail => "voicemail",
            Self::Other => "other",
            Self::Unknown => "unknown",
        }
    }
}

impl fmt::Display for NumberType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A validated phone number in E.164 form.
///
/// Built only by [`parse`](crate::parse) or [`PhoneParser::parse`](crate::PhoneParser::parse),
/// so holding one means the number exists in its country's numbering plan.
///
/// A full phone number is personal data: [`Debug`](fmt::Debug) shows the
/// [redacted](PhoneNumber::redacted) form, and there is deliberately no `Display`; ask for
/// [`digits`](PhoneNumber::digits) or [`e164`](PhoneNumber::e164) where the full number is
/// meant to be shown or sent.
///
/// ```
/// use wa_pairing_phone::{parse, NumberType};
///
/// let n = parse("0812-3456-7890")?;
/// assert_eq!(n.digits(), "6281234567890");
/// assert_eq!(n.e164(), "+6281234567890");
/// assert_eq!(n.country_code(), 62);
/// assert_eq!(n.number_type(), NumberType::Mobile);
/// assert_eq!(n.redacted().to_string(), "62812****7890");
/// assert_eq!(format!("{n:?}"), "PhoneNumber(62812****7890)");
/// # Ok::<(), wa_pairing_phone::PhoneError>(())
/// ```
///
/// Two numbers are equal when their digits are: a number read back from storage
/// ([`from_stored_digits`](Self::from_stored_digits), whose type is not looked up) equals the
/// same number parsed from what a person typed.
#[derive(Clone)]
pub struct PhoneNumber {
    digits: Box<str>,
    country_code: u16,
    number_type: NumberType,
}

impl PartialEq for PhoneNumber {
    fn eq(&self, other: &Self) -> bool {
        self.digits == other.digits
    }
}

impl Eq for PhoneNumber {}

impl std::hash::Hash for PhoneNumber {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.digits.hash(state);
    }
}

impl PartialOrd for PhoneNumber {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for PhoneNumber {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.digits.cmp(&other.digits)
    }
}

impl PhoneNumber {
    pub(crate) fn new(digits: String, country_code: u16, number_type: NumberType) -> Self {
        Self {
            digits: digits.into_boxed_str(),
            country_code,
            number_type,
        }
    }

    /// A number stored earlier as E.164 digits without `+` (a device row, a WhatsApp
    /// address), taken as it is: the trusted way back from storage, for values that were
    /// validated when they were written.
    ///
    /// Only the shape is checked (7 to 15 ASCII digits, no leading zero, a country calling
    /// code that exists), never today's numbering plan, so a number that was valid when it
    /// was stored always reads back. Its [`number_type`](Self::number_type) is
    /// [`NumberType::Unknown`]. What a person typed goes through [`parse`](crate::parse) or
    /// [`PhoneParser::parse`](crate::PhoneParser::parse) instead.
    ///
    /// ```
    /// use wa_pairing_phone::{NumberType, PhoneNumber};
    ///
    /// let n = PhoneNumber::from_stored_digits("60123456789")?;
    /// assert_eq!(n.digits(), "60123456789");
    /// assert_eq!(n.country_code(), 60);
    /// assert_eq!(n.number_type(), NumberType::Unknown);
    /// assert!(PhoneNumber::from_stored_digits("+60123456789").is_err());
    /// assert!(PhoneNumber::from_stored_digits("0812345678").is_err());
    /// # Ok::<(), wa_pairing_phone::PhoneError>(())
    /// ```
    ///
    /// # Errors
    ///
    /// The text is not 7 to 15 digits without a leading zero, or starts with no country
    /// calling code.
    pub fn from_stored_digits(digits: &str) -> Result<Self, crate::PhoneError> {
        use crate::PhoneErrorKind as Kind;
        if digits.is_empty() {
            return Err(Kind::Empty.into());
        }
        if !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Kind::InvalidCharacter.into());
        }
        if digits.len() < 7 {
            return Err(Kind::TooShort.into());
        }
        if digits.len() > crate::numbering::MAX_E164_DIGITS {
            return Err(Kind::TooLong.into());
        }
        let code =
            crate::numbering::country_code_of_e164(digits).ok_or(Kind::UnknownCountryCode)?;
        Ok(Self::new(digits.to_owned(), code, NumberType::Unknown))
    }

    /// The number as E.164 digits without `+` (`6281234567890`): what WhatsApp's pairing
    /// request takes and what the device record stores.
    pub fn digits(&self) -> &str {
        &self.digits
    }

    /// The number with a leading `+` (`+6281234567890`).
    pub fn e164(&self) -> String {
        format!("+{}", self.digits)
    }

    /// The country calling code (`62` for Indonesia).
    pub const fn country_code(&self) -> u16 {
        self.country_code
    }

    /// The national significant number: the digits after the country code.
    pub fn national_number(&self) -> &str {
        let cc_len = self.country_code.to_string().len();
        &self.digits[cc_len..]
    }

    /// The kind of line.
    pub const fn number_type(&self) -> NumberType {
        self.number_type
    }

    /// A form safe for logs: the country code and the next three digits, the last four, and
    /// stars for the rest (`62812****7890`).
    pub fn redacted(&self) -> RedactedPhone<'_> {
        RedactedPhone {
            digits: &self.digits,
            cc_len: self.country_code.to_string().len(),
        }
    }
}

impl fmt::Debug for PhoneNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PhoneNumber({})", self.redacted())
    }
}

impl std::str::FromStr for PhoneNumber {
    type Err = crate::PhoneError;

    /// Parses with the default region (Indonesia); see [`crate::parse`].
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        crate::parse(s)
    }
}

/// The log-safe form of a [`PhoneNumber`], from [`PhoneNumber::redacted`].
#[derive(Clone, Copy)]
pub struct RedactedPhone<'a> {
    digits: &'a str,
    cc_len: usize,
}

impl RedactedPhone<'_> {
    /// Redacts a string of digits that is not (or not yet) a validated number, for example a
    /// stored value in a log line. Short strings are starred out entirely; strings longer than
    /// any phone number are cut to a fixed size and their length, so a malformed value never
    /// fills a log line.
    ///
    /// ```
    /// use wa_pairing_phone::RedactedPhone;
    ///
    /// assert_eq!(RedactedPhone::of_digits("6281234567890").to_string(), "62812****7890");
    /// assert_eq!(RedactedPhone::of_digits("12345").to_string(), "*****");
    /// let absurd = "6".repeat(5_000);
    /// assert_eq!(RedactedPhone::of_digits(&absurd).to_string(), "66666****…6666 (5000 chars)");
    /// ```
    pub fn of_digits(digits: &str) -> RedactedPhone<'_> {
        RedactedPhone { digits, cc_len: 2 }
    }
}

/// Longest string [`RedactedPhone`] renders in full (as digits and stars): E.164's 15 digits and
/// one to spare. Anything longer cannot be a phone number and is summarised instead.
const MAX_REDACTED_CHARS: usize = 16;

impl fmt::Display for RedactedPhone<'_> {
    /// Shows the country code and the next three digits, the last four, and stars for the
    /// rest (`62812****7890`); strings shorter than 8 are all stars. A string longer than a
    /// phone number can be (more than 16 characters) is cut to its head, four stars, an
    /// ellipsis and its tail, with its length (`62812****…7890 (5000 chars)`), so a malformed
    /// value never fills a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIN_STARS: usize = 4;
        let chars = self.digits.chars().count();
        if chars > MAX_REDACTED_CHARS {
            if !self.digits.is_ascii() {
                return write!(f, "{}… ({chars} chars)", "*".repeat(MIN_STARS));
            }
            let head = &self.digits[..(self.cc_len + 3).min(MAX_REDACTED_CHARS / 2)];
            let tail = &self.digits[chars - 4..];
            return write!(f, "{head}****…{tail} ({chars} chars)");
        }
        let digits = self.digits.as_bytes();
        let n = digits.len();
        if n < 8 || !self.digits.is_ascii() {
            return f.write_str(&"*".repeat(chars));
        }
        // Keep the country code and the next three digits (the operator prefix) and the last
        // four, with at least four stars between them: shrink the head first, then the tail.
        let mut head = self.cc_len + 3;
        let mut tail = 4;
        while n.saturating_sub(head + tail) < MIN_STARS {
            if head > self.cc_len.max(1) {
                head -= 1;
            } else if tail > 2 {
                tail -= 1;
            } else {
                break;
            }
        }
        let stars = n.saturating_sub(head + tail);
        let head_s = std::str::from_utf8(&digits[..head]).unwrap_or_default();
        let tail_s = std::str::from_utf8(&digits[n - tail..]).unwrap_or_default();
        write!(f, "{head_s}{}{tail_s}", "*".repeat(stars))
    }
}

impl fmt::Debug for RedactedPhone<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl serde::Serialize for PhoneNumber {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.digits)
    }
}

#[cfg(feature = "serde")]
#[cfg_attr(docsrs, doc(cfg(feature = "serde")))]
impl<'de> serde::Deserialize<'de> for PhoneNumber {
    /// Accepts E.164 digits with or without `+` and validates them; national formats are
    /// refused because the region would be a guess.
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let trimmed = s.trim();
        let international = if trimmed.starts_with('+') {
            trimmed.to_owned()
        } else {
            format!("+{trimmed}")
        };
        crate::parse(&international).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redaction_hides_the_middle() {
        let n = PhoneNumber::new("6281234567890".into(), 62, NumberType::Mobile);
        assert_eq!(n.redacted().to_string(), "62812****7890");
        let uk = PhoneNumber::new("447911123456".into(), 44, NumberType::Mobile);
        assert_eq!(uk.redacted().to_string(), "4479****3456");
        let us = PhoneNumber::new("12015550123".into(), 1, NumberType::FixedLineOrMobile);
        assert_eq!(us.redacted().to_string(), "120****0123");
        // Never more than the digits it had, never fewer than four hidden.
        for len in 8..=15 {
            let digits: String = "123456789012345".chars().take(len).collect();
            let r = RedactedPhone::of_digits(&digits).to_string();
            assert_eq!(r.len(), len);
            assert!(r.matches('*').count() >= 4, "{r}");
        }
        assert_eq!(RedactedPhone::of_digits("1234567").to_string(), "*******");
    }

    #[test]
    fn absurd_strings_are_cut_to_a_fixed_size_with_their_length() {
        for len in [17, 64, 5_000, 100_000] {
            let digits: String = "6281234567890".chars().cycle().take(len).collect();
            let shown = RedactedPhone::of_digits(&digits).to_string();
            assert!(shown.chars().count() <= 40, "{len}: {shown}");
            assert!(shown.contains(&format!("({len} chars)")), "{shown}");
            assert!(shown.starts_with(&digits[..5]), "{shown}");
            assert!(
                shown.contains(&format!("…{}", &digits[len - 4..])),
                "{shown}"
            );
            // Never more of the digits than a valid number shows: head and tail only.
            let shown_digits = shown.split(" (").next().unwrap_or_default();
            let digit_count = shown_digits.chars().filter(char::is_ascii_digit).count();
            assert_eq!(digit_count, 9, "{shown}");
            assert_eq!(format!("{:?}", RedactedPhone::of_digits(&digits)), shown);
        }
        let wide: String = "０".repeat(5_000);
        let shown = RedactedPhone::of_digits(&wide).to_string();
        assert_eq!(shown, "****… (5000 chars)");
        // The longest string still shown in full keeps its length.
        let sixteen = "1234567890123456";
        assert_eq!(RedactedPhone::of_digits(sixteen).to_string().len(), 16);
    }

    #[test]
    fn national_number_strips_country_code() {
        let n = PhoneNumber::new("6281234567890".into(), 62, NumberType::Mobile);
        assert_eq!(n.national_number(), "81234567890");
    }
}
