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
        ("0044 7911 123456", "447911123456", 44),
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
        ("++6281234567890", PhoneErrorKind::InvalidCharacter),
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
