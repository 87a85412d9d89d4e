//! Every rule of the parser, one case table per rule.

use wa_pairing_phone::{NumberType, PhoneErrorKind, PhoneParser, Region, parse};

#[test]
fn indonesian_forms_all_give_the_same_digits() {
    let forms = [
        "081234567890",
        "81234567890",
        "+6281234567890",
        "6281234567890",
        "62 812-3456-7890",
        "(0812) 3456 7890",
        "+62 (0)812 3456 7890",
        "+62 (0)812-3456-7890",
        "tel:+62-812-3456-7890",
        "TEL:+6281234567890",
        "0062 812 3456 7890",
        "0812.3456.7890",
        "0812/3456/7890",
        "  0812 3456 7890  ",
        "０８１２３４５６７８９０",
        "+62\u{00a0}812\u{2011}3456\u{2011}7890",
    ];
    for input in forms {
        let n = parse(input).unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(n.digits(), "6281234567890", "{input:?}");
        assert_eq!(n.country_code(), 62, "{input:?}");
        assert_eq!(n.number_type(), NumberType::Mobile, "{input:?}");
    }
}

#[test]
fn international_input_ignores_the_default_region() {
    let cases = [
        ("+44 7911 123456", "447911123456", 44),
        ("+1 (201) 555-0123", "12015550123", 1),
        ("+60 12-345 6789", "60123456789", 60),
        ("+65 8123 4567", "6581234567", 65),
    ];
    for region in ["ID", "MY", "US", "GB"] {
        let parser = PhoneParser::new(region.parse().unwrap());
        for (input, digits, cc) in cases {
            let n = parser
                .parse(input)
                .unwrap_or_else(|e| panic!("{region} {input}: {e}"));
            assert_eq!(n.digits(), digits, "{region} {input}");
            assert_eq!(n.country_code(), cc, "{region} {input}");
        }
    }
}

/// Numbers typed after an international prefix, with libphonenumber 9.0.43's verdict: each
/// region's own prefix (from its numbering plan) opens an international number, `00` does not
/// where it is not the region's prefix, so `0044...` typed in the USA is no British number.
#[test]
fn international_prefix_follows_the_region() {
    let cases: &[(&str, &str, Option<&str>)] = &[
        ("ID", "008 44 7911 123456", Some("+447911123456")),
        ("ID", "009 1 201 555 0123", Some("+12015550123")),
        ("ID", "0044 7911 123456", None),
        ("ID", "001 44 7911 123456", None),
        ("US", "011 44 7911 123456", Some("+447911123456")),
        ("US", "+011 44 7911 123456", Some("+447911123456")),
        ("US", "0044 7911 123456", None),
        ("CA", "011 62 812 3456 7890", Some("+6281234567890")),
        ("CA", "0062 812 3456 7890", None),
        ("AU", "0011 62 812 3456 7890", Some("+6281234567890")),
        ("AU", "0062 812 3456 7890", None),
        ("JP", "010 44 7911 123456", Some("+447911123456")),
        ("JP", "0044 7911 123456", None),
        ("GB", "0062 812 3456 7890", Some("+6281234567890")),
        ("GB", "011 62 812 3456 7890", None),
        ("DE", "0062 812 3456 7890", Some("+6281234567890")),
        ("BR", "0021 62 812 3456 7890", Some("+6281234567890")),
        ("BR", "0062 812 3456 7890", None),
        ("IN", "0062 812 3456 7890", Some("+6281234567890")),
        ("SG", "001 62 812 3456 7890", Some("+6281234567890")),
        ("SG", "0062 812 3456 7890", None),
        ("SG", "0044 7911 123456", None),
        ("MY", "0062 812 3456 7890", Some("+6281234567890")),
        ("KR", "001 62 812 3456 7890", Some("+6281234567890")),
        ("RU", "810 62 812 3456 7890", Some("+6281234567890")),
        ("RU", "0062 812 3456 7890", None),
        ("MX", "0962 812 3456 7890", Some("+6281234567890")),
        ("IL", "0105 62 812 3456 7890", Some("+6281234567890")),
        ("CO", "009 62 812 3456 7890", Some("+6281234567890")),
        ("CO", "0062 812 3456 7890", None),
        ("NG", "009 44 7911 123456", Some("+447911123456")),
        ("NG", "0044 7911 123456", None),
        ("KE", "000 44 7911 123456", Some("+447911123456")),
        ("TH", "0044 7911 123456", None),
        ("CL", "1200 44 7911 123456", Some("+447911123456")),
    ];
    for &(region, input, expected) in cases {
        let parser = PhoneParser::new(region.parse().unwrap());
        let got = parser.parse(input).map(|n| n.e164());
        match expected {
            Some(e164) => assert_eq!(got.as_deref(), Ok(e164), "{region} {input:?}"),
            None => assert!(got.is_err(), "{region} {input:?} was read as {got:?}"),
        }
    }
}

#[test]
fn a_number_with_a_shared_code_follows_the_main_region_rules() {
    // +1 numbers typed in Grenada are read by the USA's rules, as libphonenumber does: the
    // seven-digit local form (which Grenada's plan completes with 473) is no +1 number.
    let gd = PhoneParser::new("GD".parse().unwrap());
    assert!(gd.parse("+1 473 269 1").is_err());
    assert_eq!(gd.parse("473 2691").unwrap().e164(), "+14734732691");
}

#[test]
fn a_doubled_plus_is_one_plus() {
    let cases = [
        ("ID", "++62 812 3456 7890", "+6281234567890"),
        ("GB", "+++44 7911 123456", "+447911123456"),
        ("US", "++1 (201) 555-0123", "+12015550123"),
        ("ID", "\u{FF0B}+62 812 3456 7890", "+6281234567890"),
    ];
    for (region, input, e164) in cases {
        let parser = PhoneParser::new(region.parse().unwrap());
        let single = parser.parse(&input.replace("++", "+").replace("++", "+"));
        let n = parser
            .parse(input)
            .unwrap_or_else(|e| panic!("{input:?}: {e}"));
        assert_eq!(n.e164(), e164, "{input:?}");
        assert_eq!(Ok(n), single, "{input:?}");
    }
    for input in ["+ +62 812 3456 7890", "+62 +812 3456 7890"] {
        assert_eq!(
            parse(input).unwrap_err().kind(),
            PhoneErrorKind::InvalidCharacter,
            "{input:?}"
        );
    }
}

/// The deliberate differences from libphonenumber that read a number with the region's own
/// country code (listed in the README).
#[test]
fn the_region_own_code_is_read_as_people_write_it() {
    // `00` and the own code where `00` is not the region's prefix: libphonenumber refuses.
    assert_eq!(
        parse("0062 812 3456 7890").unwrap().e164(),
        "+6281234567890"
    );
    let us = PhoneParser::new("US".parse().unwrap());
    assert_eq!(us.parse("001 201 555 0123").unwrap().e164(), "+12015550123");
    // Only the own code: another country's stays refused.
    assert!(us.parse("0044 7911 123456").is_err());
    // Own code without `+` where the digits are also a national number: the code wins, as
    // in wa.me links (libphonenumber reads a landline in 0628).
    assert_eq!(parse("62812345678").unwrap().e164(), "+62812345678");
    assert_eq!(parse("0628 1234 5678").unwrap().e164(), "+6262812345678");
}

#[test]
fn national_numbers_follow_the_configured_region() {
    let my = PhoneParser::new("MY".parse().unwrap());
    assert_eq!(my.parse("012-345 6789").unwrap().digits(), "60123456789");
    let gb = PhoneParser::new("gb".parse().unwrap());
    assert_eq!(gb.parse("07911 123456").unwrap().digits(), "447911123456");
    assert_eq!(PhoneParser::default().region(), Region::INDONESIA);
}

#[test]
fn landlines_are_valid_and_typed() {
    // Jakarta fixed line.
    let n = parse("021 5794 8888").unwrap();
    assert_eq!(n.digits(), "622157948888");
    assert_eq!(n.number_type(), NumberType::FixedLine);
}

#[test]
fn refusals_have_the_right_kind() {
    let cases = [
        ("", PhoneErrorKind::Empty),
        ("   ", PhoneErrorKind::Empty),
        ("+", PhoneErrorKind::Empty),
        ("- ( ) -", PhoneErrorKind::Empty),
        ("0812-ABCD-7890", PhoneErrorKind::Letters),
        ("1-800-FLOWERS", PhoneErrorKind::Letters),
        ("phone: 0812", PhoneErrorKind::Letters),
        ("0812 3456 7890 ext. 12", PhoneErrorKind::Extension),
        ("0812 3456 7890 x12", PhoneErrorKind::Extension),
        ("tel:+6281234567890;ext=99", PhoneErrorKind::Extension),
        ("0812 3456 7890 #12", PhoneErrorKind::Extension),
        ("0812*3456", PhoneErrorKind::InvalidCharacter),
        ("0812_3456_7890", PhoneErrorKind::InvalidCharacter),
        ("62+81234567890", PhoneErrorKind::InvalidCharacter),
        ("+ +6281234567890", PhoneErrorKind::InvalidCharacter),
        ("12", PhoneErrorKind::TooShort),
        ("0812", PhoneErrorKind::TooShort),
        ("+62 812", PhoneErrorKind::TooShort),
        ("+62 812 3456 7890 1234 5", PhoneErrorKind::TooLong),
        ("08123456789012345678", PhoneErrorKind::TooLong),
        ("+999 1234 5678", PhoneErrorKind::UnknownCountryCode),
        ("+80 1234 5678", PhoneErrorKind::UnknownCountryCode),
        ("+62 999 9999 9999", PhoneErrorKind::InvalidNumber),
    ];
    for (input, kind) in cases {
        match parse(input) {
            Ok(n) => panic!("{input:?} was accepted as {n:?}, expected {kind:?}"),
            Err(e) => assert_eq!(e.kind(), kind, "{input:?}: {e}"),
        }
    }
}

#[test]
fn errors_never_repeat_the_input() {
    // Digits that appear in none of the messages' examples.
    for input in [
        "0877-ABCD-5555",
        "+62 877 5555 6666 9999 0",
        "+999 5555 6666",
        "0877",
    ] {
        let e = parse(input).unwrap_err();
        let text = format!("{e} {e:?}");
        assert!(!text.contains("877"), "{text}");
        assert!(!text.contains("5555"), "{text}");
    }
}

#[test]
fn debug_is_redacted() {
    let n = parse("081234567890").unwrap();
    let dbg = format!("{n:?}");
    assert!(!dbg.contains("6281234567890"), "{dbg}");
    assert!(dbg.contains("****"), "{dbg}");
    assert_eq!(n.e164(), "+6281234567890");
    assert_eq!(n.national_number(), "81234567890");
}

#[test]
fn unknown_regions_are_refused() {
    assert!("XX".parse::<Region>().is_err());
    assert!("IDN".parse::<Region>().is_err());
    assert!("".parse::<Region>().is_err());
}

#[test]
fn from_str_uses_the_default_region() {
    let n: wa_pairing_phone::PhoneNumber = "0812 3456 7890".parse().unwrap();
    assert_eq!(n.digits(), "6281234567890");
}
