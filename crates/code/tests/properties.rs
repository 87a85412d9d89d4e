//! Property tests for parsing and display.

use proptest::prelude::*;
use wa_pairing_code::{ALPHABET, CodeErrorKind, PairingCode};

fn valid_code() -> impl Strategy<Value = String> {
    proptest::collection::vec(proptest::sample::select(ALPHABET.as_bytes().to_vec()), 8)
        .prop_map(|v| String::from_utf8(v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn parse_display_round_trips(raw in valid_code()) {
        let code = PairingCode::parse(&raw).unwrap();
        prop_assert_eq!(code.as_str(), raw.as_str());
        prop_assert_eq!(PairingCode::parse(&code.to_string()).unwrap(), code);
        prop_assert_eq!(PairingCode::parse(&raw.to_lowercase()).unwrap(), code);
        let spaced = format!(" {} {} ", &raw[..4], &raw[4..]);
        prop_assert_eq!(PairingCode::parse(&spaced).unwrap(), code);
    }

    #[test]
    fn never_panics(input in any::<String>()) {
        let _ = PairingCode::parse(&input);
    }

    #[test]
    fn anything_accepted_is_eight_alphabet_characters(input in "[0-9A-Za-z \\-]{0,12}") {
        if let Ok(code) = PairingCode::parse(&input) {
            prop_assert_eq!(code.as_str().len(), 8);
            prop_assert!(code.as_str().bytes().all(|b| ALPHABET.as_bytes().contains(&b)));
            let display = code.to_string();
            prop_assert_eq!(display.len(), 9);
            prop_assert_eq!(display.as_bytes()[4], b'-');
        }
    }

    #[test]
    fn generated_codes_are_valid(seed in any::<u64>()) {
        use rand::SeedableRng;
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let code = PairingCode::generate_with(&mut rng);
        prop_assert_eq!(PairingCode::parse(code.as_str()).unwrap(), code);
    }
}

#[test]
fn loose_forms_are_the_same_code() {
    let expected = PairingCode::parse("ABCDEFGH").unwrap();
    for input in [
        "abcd-efgh",
        "ABCD EFGH",
        "ABCDEFGH",
        "AbCd-EfGh",
        " abcd – efgh ",
        "A B C D E F G H",
    ] {
        assert_eq!(PairingCode::parse(input).unwrap(), expected, "{input:?}");
    }
}

#[test]
fn refusals_say_what_is_wrong() {
    let cases = [
        ("", CodeErrorKind::Empty),
        (" - ", CodeErrorKind::Empty),
        ("WXYZ-KLM", CodeErrorKind::TooShort),
        ("WXYZ-KLMNP", CodeErrorKind::TooLong),
        ("WXYZ-KLM0", CodeErrorKind::InvalidCharacter),
        ("WXYZ-KLMI", CodeErrorKind::InvalidCharacter),
        ("OXYZ-KLMN", CodeErrorKind::InvalidCharacter),
        ("WXYZ-UKLM", CodeErrorKind::InvalidCharacter),
        ("WXYZ.KLMN", CodeErrorKind::TooLong),
        ("WXYZÉKLM", CodeErrorKind::InvalidCharacter),
    ];
    for (input, kind) in cases {
        let err = PairingCode::parse(input).unwrap_err();
        assert_eq!(err.kind(), kind, "{input:?}: {err}");
        assert!(
            !err.to_string().contains("XYZ"),
            "message repeats the code: {err}"
        );
        assert!(
            !err.to_string().contains("KLM"),
            "message repeats the code: {err}"
        );
    }
    let err = PairingCode::parse("ABCD-EFG0").unwrap_err();
    assert!(err.to_string().contains("position 8"), "{err}");
    assert_eq!(CodeErrorKind::TooShort.as_str(), "too_short");
}

#[test]
fn debug_never_shows_the_code() {
    let code = PairingCode::parse("WXYZ-2345").unwrap();
    let dbg = format!("{code:?}");
    assert!(!dbg.contains("2345"), "{dbg}");
    assert!(!dbg.contains("WXYZ"), "{dbg}");
}

#[cfg(feature = "serde")]
#[test]
fn serde_round_trip() {
    use chrono::{TimeZone, Utc};
    use wa_pairing_code::IssuedCode;

    let code = PairingCode::parse("ABCD-EFGH").unwrap();
    assert_eq!(serde_json::to_string(&code).unwrap(), "\"ABCDEFGH\"");
    let back: PairingCode = serde_json::from_str("\"abcd-efgh\"").unwrap();
    assert_eq!(back, code);
    assert!(serde_json::from_str::<PairingCode>("\"ABCD\"").is_err());

    let at = Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap();
    let issued = IssuedCode::new(code, at, std::time::Duration::from_secs(180));
    let json = serde_json::to_string(&issued).unwrap();
    assert!(json.contains("2026-01-02T03:07:05Z"), "{json}");
    assert_eq!(serde_json::from_str::<IssuedCode>(&json).unwrap(), issued);
}

#[test]
fn validity_window() {
    use chrono::{TimeDelta, Utc};
    use std::time::Duration;
    use wa_pairing_code::IssuedCode;

    let at = Utc::now();
    let issued = IssuedCode::new(PairingCode::generate(), at, Duration::from_secs(180));
    assert_eq!(issued.validity(), Duration::from_secs(180));
    assert_eq!(issued.remaining(at), Duration::from_secs(180));
    assert_eq!(
        issued.remaining(at - TimeDelta::seconds(10)),
        Duration::from_secs(190)
    );
    assert!(issued.is_expired(at + TimeDelta::seconds(180)));
    let forever = IssuedCode::new(PairingCode::generate(), at, Duration::MAX);
    assert!(!forever.is_expired(at + TimeDelta::days(365 * 1000)));
}
