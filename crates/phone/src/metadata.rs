//! The numbering-plan metadata: libphonenumber's, vendored in `metadata/`, read by the
//! `phonenumber` crate's loader.
//!
//! The `phonenumber` crate's bundled copy lags libphonenumber's releases, so this crate ships its
//! own (`metadata/PhoneNumberMetadata.xml`, written by `tools/metadata.py`; see the README).
//!
//! One change is made on loading: every `nationalNumberPattern` is anchored at both ends.
//! libphonenumber matches those patterns against the whole national number; the `phonenumber`
//! crate compiles them as they are and only checks that a match starts at the first digit, so a
//! number one digit longer than its plan allows still matched wherever the plan lists that longer
//! length for some other number (Malaysian mobiles, for one). Anchoring restores libphonenumber's
//! meaning for every lookup made through this database.

use std::sync::LazyLock;

use phonenumber::metadata::Database;

/// libphonenumber's `PhoneNumberMetadata.xml`, as `tools/metadata.py` wrote it.
const XML: &str = include_str!("../metadata/PhoneNumberMetadata.xml");

/// The marker `tools/metadata.py` writes before the metadata.
const VERSION_MARKER: &str = "<!-- libphonenumber-metadata-version: ";

static DATABASE: LazyLock<Database> = LazyLock::new(|| {
    // The file is part of this crate and `tests/metadata.rs` loads it: a failure here is a
    // broken build, not bad input.
    Database::parse(anchored(XML)).expect("the vendored numbering-plan metadata loads")
});

/// The database every lookup of this crate goes through.
pub(crate) fn database() -> &'static Database {
    &DATABASE
}

/// The libphonenumber release whose numbering-plan metadata this crate ships, such as
/// `"9.0.43"`.
///
/// Numbering plans change every few weeks (new mobile ranges, longer numbers); compare this
/// with the current libphonenumber release to know how far behind a build is.
///
/// ```
/// let version = wa_pairing_phone::metadata_version();
/// assert!(version.split('.').all(|part| part.parse::<u32>().is_ok()), "{version}");
/// ```
pub fn metadata_version() -> &'static str {
    XML.find(VERSION_MARKER)
        .map(|i| &XML[i + VERSION_MARKER.len()..])
        .and_then(|rest| rest.split_once(' '))
        .map_or("unknown", |(version, _)| version)
}

/// Wraps the text of every `<nationalNumberPattern>` in `^(?:...)$`.
fn anchored(xml: &str) -> String {
    const OPEN: &str = "<nationalNumberPattern>";
    const CLOSE: &str = "</nationalNumberPattern>";
    let mut out = String::with_capacity(xml.len() + xml.matches(OPEN).count() * 6);
    let mut rest = xml;
    while let Some(start) = rest.find(OPEN) {
        let body = start + OPEN.len();
        let Some(len) = rest[body..].find(CLOSE) else {
            // Unclosed: leave it to the loader to report.
            break;
        };
        out.push_str(&rest[..body]);
        out.push_str("^(?:");
        out.push_str(&rest[body..body + len]);
        out.push_str(")$");
        rest = &rest[body + len..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anchoring_wraps_every_pattern_and_nothing_else() {
        let xml = "<a><nationalNumberPattern>1\\d{2}</nationalNumberPattern>\
                   <leadingDigits>1</leadingDigits>\
                   <nationalNumberPattern>\n  2|3\n</nationalNumberPattern></a>";
        assert_eq!(
            anchored(xml),
            "<a><nationalNumberPattern>^(?:1\\d{2})$</nationalNumberPattern>\
             <leadingDigits>1</leadingDigits>\
             <nationalNumberPattern>^(?:\n  2|3\n)$</nationalNumberPattern></a>"
        );
        assert_eq!(anchored("<x/>"), "<x/>");
    }

    #[test]
    fn every_descriptor_pattern_of_the_loaded_database_is_anchored() {
        let mut seen = 0;
        for meta in database().iter() {
            let d = meta.descriptors();
            for desc in [Some(d.general()), d.fixed_line(), d.mobile(), d.toll_free()]
                .into_iter()
                .flatten()
            {
                let p = desc.national_number().as_str();
                assert!(
                    p.starts_with("^(?:") && p.ends_with(")$"),
                    "{}: {p}",
                    meta.id()
                );
                seen += 1;
            }
        }
        assert!(seen > 500, "only {seen} patterns");
    }
}
