//! The numbering-plan metadata: current libphonenumber data, matched as libphonenumber does.

use wa_pairing_phone::{PhoneErrorKind, metadata_version, parse};

/// A valid mobile number of each region (libphonenumber's example) and the same number with
/// one digit more, which libphonenumber refuses. The `phonenumber` crate accepted every one of
/// the longer numbers: it matches a plan's pattern against the start of the number only.
const ONE_DIGIT_TOO_LONG: &[(&str, &str)] = &[
    ("+60 12-345 6789", "+60 12-345 67891"),
    ("+387 61 123 456", "+387 61 123 4561"),
    ("+359 43 012 345", "+359 43 012 3451"),
    ("+855 91 234 567", "+855 91 234 5671"),
    ("+95 9 212 3456", "+95 9 212 34561"),
    ("+381 60 1234567", "+381 60 12345671"),
    ("+688 90 1234", "+688 90 12341"),
];

#[test]
fn mobile_numbers_one_digit_too_long_are_refused() {
    for &(valid, longer) in ONE_DIGIT_TOO_LONG {
        let n = parse(valid).unwrap_or_else(|e| panic!("{valid}: {e}"));
        let digits: String = longer.chars().filter(char::is_ascii_digit).collect();
        assert_eq!(digits.len(), n.digits().len() + 1, "{longer}");
        let err = parse(longer).expect_err(longer);
        assert!(
            matches!(
                err.kind(),
                PhoneErrorKind::TooLong | PhoneErrorKind::InvalidNumber
            ),
            "{longer}: {err:?}"
        );
    }
}

#[test]
fn the_phonenumber_crate_alone_still_accepts_them() {
    // Why this crate does not use the `phonenumber` crate's validation: if this starts failing,
    // the crate has fixed its matching and the anchoring in `src/metadata.rs` can go.
    let accepted = ONE_DIGIT_TOO_LONG
        .iter()
        .filter(|(_, longer)| {
            phonenumber::parse(None, longer).is_ok_and(|n| phonenumber::is_valid(&n))
        })
        .count();
    assert_eq!(accepted, ONE_DIGIT_TOO_LONG.len());
}

/// Mobile ranges opened after libphonenumber 9.0.33 (the `phonenumber` crate's bundled
/// metadata), valid in the metadata this crate ships.
const NEWER_RANGES: &[&str] = &[
    // Australia 496x (9.0.43: 4(?:...|9(?:5[0-3]|6[0-4]))).
    "+61 496 012 345",
    // Germany 15410.
    "+49 15410 123456",
    // China 1610.
    "+86 161 0123 4567",
];

#[test]
fn mobile_ranges_newer_than_the_bundled_metadata_are_accepted() {
    for input in NEWER_RANGES {
        let n = parse(input).unwrap_or_else(|e| panic!("{input}: {e}"));
        assert_eq!(
            n.number_type(),
            wa_pairing_phone::NumberType::Mobile,
            "{input}"
        );
        // The bundled copy refuses them: the reason the metadata is vendored.
        let bundled = phonenumber::parse(None, input).is_ok_and(|n| phonenumber::is_valid(&n));
        assert!(!bundled, "{input} is valid in the bundled metadata too");
    }
}

#[test]
fn the_shipped_metadata_is_newer_than_the_bundled_copy() {
    let version: Vec<u32> = metadata_version()
        .split('.')
        .map(|p| p.parse().expect("a numeric version"))
        .collect();
    // The `phonenumber` crate 0.3.10 bundles libphonenumber 9.0.33.
    assert!(version > vec![9, 0, 33], "{}", metadata_version());
}
