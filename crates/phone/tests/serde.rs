//! The `serde` feature: digits out, validated digits in.
#![cfg(feature = "serde")]

use wa_pairing_phone::{PhoneNumber, parse};

#[test]
fn serializes_as_digits_and_validates_on_the_way_in() {
    let n = parse("0812 3456 7890").unwrap();
    let json = serde_json::to_string(&n).unwrap();
    assert_eq!(json, "\"6281234567890\"");
    let back: PhoneNumber = serde_json::from_str(&json).unwrap();
    assert_eq!(back, n);
    let plus: PhoneNumber = serde_json::from_str("\"+447911123456\"").unwrap();
    assert_eq!(plus.country_code(), 44);
    let err = serde_json::from_str::<PhoneNumber>("\"12\"").unwrap_err();
    assert!(err.to_string().contains("too short"), "{err}");
}
