//! Property tests: the parser never panics, and its output is a fixed point.

use proptest::prelude::*;
use wa_pairing_phone::{PhoneParser, parse};

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn never_panics_on_any_string(input in any::<String>()) {
        let _ = parse(&input);
    }

    #[test]
    fn never_panics_on_phone_like_strings(input in "[+0-9 ()./#xext;=tel:\\-０-９]{0,40}") {
        let _ = parse(&input);
    }

    #[test]
    fn normalising_the_output_again_gives_the_same_number(
        prefix in prop_oneof![Just("0"), Just("+62"), Just("62"), Just("0062"), Just("+62 (0)")],
        operator in prop_oneof![Just("811"), Just("812"), Just("813"), Just("821"), Just("852"), Just("877"), Just("895")],
        rest in "[0-9]{6,8}",
        sep in prop_oneof![Just(""), Just(" "), Just("-"), Just(".")],
    ) {
        let input = format!("{prefix}{operator}{sep}{}{sep}{}", &rest[..3], &rest[3..]);
        if let Ok(n) = parse(&input) {
            prop_assert_eq!(&parse(&n.e164()).unwrap(), &n);
            prop_assert_eq!(&parse(n.digits()).unwrap(), &n);
            prop_assert!(n.digits().starts_with("62"));
            prop_assert!(n.digits().chars().all(|c| c.is_ascii_digit()));
            prop_assert!(n.digits().len() <= 15);
        }
    }

    #[test]
    fn e164_output_is_stable_under_any_region(
        region in prop_oneof![Just("ID"), Just("US"), Just("GB"), Just("MY"), Just("IN"), Just("BR")],
        input in "\\+[1-9][0-9]{7,13}",
    ) {
        let parser = PhoneParser::new(region.parse().unwrap());
        if let Ok(n) = parser.parse(&input) {
            prop_assert_eq!(&parser.parse(&n.e164()).unwrap(), &n);
            prop_assert_eq!(&parse(&n.e164()).unwrap(), &n);
        }
    }

    #[test]
    fn the_region_prefix_reads_like_plus(
        (region, prefix) in prop_oneof![
            Just(("US", "011")), Just(("CA", "011")), Just(("JP", "010")), Just(("AU", "0011")),
            Just(("ID", "008")), Just(("GB", "00")), Just(("BR", "0021")), Just(("KR", "001")),
            Just(("RU", "810")), Just(("SG", "001")),
        ],
        digits in "[1-9][0-9]{7,13}",
    ) {
        let parser = PhoneParser::new(region.parse().unwrap());
        let plus = parser.parse(&format!("+{digits}"));
        let idd = parser.parse(&format!("{prefix} {digits}"));
        prop_assert_eq!(plus, idd);
    }

    #[test]
    fn zero_zero_never_opens_another_country_where_it_is_no_prefix(
        region in prop_oneof![Just("US"), Just("CA"), Just("JP"), Just("RU"), Just("ID")],
        // Not 8 or 9 after `00`: Indonesia's prefixes are 008 and 009.
        digits in "[1-7][0-9]{7,13}",
    ) {
        let parser = PhoneParser::new(region.parse().unwrap());
        let own = parser.region().country_code();
        if let Ok(n) = parser.parse(&format!("00{digits}")) {
            prop_assert_eq!(Some(n.country_code()), own, "{:?}", n);
        }
    }
}

#[test]
fn the_generators_produce_valid_numbers() {
    // Guards the property above against passing vacuously: its inputs must mostly parse.
    let ok = ["0812 345 6789", "+62811-234-5678", "0062 877 1234 567"]
        .iter()
        .filter(|s| parse(s).is_ok())
        .count();
    assert_eq!(ok, 3);
    // The prefix property compares two readings; most of them must be numbers, not two
    // refusals.
    let us = PhoneParser::new("US".parse().unwrap());
    for input in ["011 44 7911 123456", "+44 7911 123456"] {
        assert!(us.parse(input).is_ok(), "{input}");
    }
    // And `00` does open the own country where the fallback applies.
    assert_eq!(
        us.parse("001 201 555 0123").map(|n| n.country_code()),
        Ok(1)
    );
}
