//! Agreement with Google's libphonenumber on numbers as people type them.
//!
//! `tests/fixtures/agreement.tsv` holds inputs typed in twenty regions with libphonenumber's
//! verdict on each (written by `tools/agreement.py`, see the README). This test reads every line
//! with this crate's parser, prints the agreement rate, and fails when
//! - the rate drops below the one measured when the fixture was written, or
//! - any disagreement is not one of the deliberate ones listed in [`DELIBERATE`].

use wa_pairing_phone::{PhoneErrorKind, PhoneParser, Region, metadata_version};

const FIXTURE: &str = include_str!("fixtures/agreement.tsv");

/// The agreement measured with the fixture as written (rounded down): a floor, not a goal.
const MEASURED_AGREEMENT_PERCENT: f64 = 93.33;

/// One line of the fixture, and what this crate made of it.
struct Case<'a> {
    region: &'a str,
    input: &'a str,
    /// libphonenumber's verdict: E.164 or `invalid`.
    theirs: &'a str,
    /// This crate's: the number as E.164, or why it refused.
    ours: Result<String, PhoneErrorKind>,
}

/// A deliberate disagreement: a name, why, and how to recognise it.
struct Deliberate {
    name: &'static str,
    why: &'static str,
    applies: fn(&Case<'_>) -> bool,
}

/// Every deliberate disagreement with libphonenumber (mirrored in the README).
const DELIBERATE: &[Deliberate] = &[
    Deliberate {
        name: "letters",
        why: "libphonenumber turns letters into keypad digits (or drops one or two of them); a \
              pairing number with a letter in it is a typo, so it is refused",
        applies: |c| {
            c.ours == Err(PhoneErrorKind::Letters) && c.input.chars().any(char::is_alphabetic)
        },
    },
    Deliberate {
        name: "extension",
        why: "libphonenumber keeps an extension beside a valid number; WhatsApp accounts have \
              none, so a number with one is refused",
        applies: |c| c.ours == Err(PhoneErrorKind::Extension),
    },
    Deliberate {
        name: "own_code_after_00",
        why: "`00` and the region's own country code is read as international where `00` is not \
              the region's prefix (`0062 812...` in Indonesia), only when libphonenumber refuses \
              the input: it changes no number libphonenumber accepts",
        applies: |c| {
            let Some(code) = own_code(c.region) else {
                return false;
            };
            let own = format!("00{code}");
            let digits: String = c.input.chars().filter(char::is_ascii_digit).collect();
            c.theirs == "invalid"
                && digits.starts_with(&own)
                && c.ours
                    .as_ref()
                    .is_ok_and(|e164| e164.starts_with(&format!("+{code}")))
        },
    },
    Deliberate {
        name: "own_code_without_plus",
        why: "digits that start with the region's own country code and make a valid number both \
              ways (`62812345678` in Indonesia) are read with the country code, as WhatsApp and \
              wa.me links write numbers; libphonenumber reads them as a national number",
        applies: |c| {
            let Some(code) = own_code(c.region) else {
                return false;
            };
            let digits: String = c.input.chars().filter(char::is_ascii_digit).collect();
            !c.input.contains('+')
                && digits.starts_with(&code)
                && c.theirs == format!("+{code}{digits}")
                && c.ours
                    .as_ref()
                    .is_ok_and(|e164| *e164 == format!("+{digits}"))
        },
    },
];

/// The country calling code of the region a line was typed in.
fn own_code(region: &str) -> Option<String> {
    let region: Region = region.parse().ok()?;
    region.country_code().map(|c| c.to_string())
}

fn fixture_version() -> &'static str {
    version_of(FIXTURE).expect("the fixture names the phonenumbers version that wrote it")
}

fn version_of(text: &str) -> Option<&str> {
    text.lines()
        .find_map(|l| l.strip_prefix("# phonenumbers-version: "))
}

/// Reads every line of a fixture with this crate's parser.
fn cases(text: &str) -> Vec<Case<'_>> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "malformed fixture line: {l:?}");
            let parser = PhoneParser::new(f[0].parse().expect("a known region"));
            Case {
                region: f[0],
                input: f[2],
                theirs: f[3],
                ours: parser.parse(f[2]).map(|n| n.e164()).map_err(|e| e.kind()),
            }
        })
        .collect()
}

fn agrees(c: &Case<'_>) -> bool {
    match &c.ours {
        Ok(e164) => e164 == c.theirs,
        Err(_) => c.theirs == "invalid",
    }
}

/// Prints the agreement rate of `cases` and each deliberate disagreement; returns the rate and
/// the disagreements that are not deliberate.
fn measure(name: &str, cases: &[Case<'_>]) -> (f64, Vec<String>) {
    let disagreements: Vec<&Case<'_>> = cases.iter().filter(|c| !agrees(c)).collect();
    #[allow(clippy::cast_precision_loss)]
    let rate = 100.0 * (cases.len() - disagreements.len()) as f64 / cases.len() as f64;
    println!(
        "{name}: agreement with libphonenumber {rate:.2}% of {} inputs ({} disagree)",
        cases.len(),
        disagreements.len()
    );
    for d in DELIBERATE {
        let n = disagreements.iter().filter(|c| (d.applies)(c)).count();
        println!("  deliberate `{}`: {n} ({})", d.name, d.why);
    }
    let unexplained: Vec<String> = disagreements
        .iter()
        .filter(|c| !DELIBERATE.iter().any(|d| (d.applies)(c)))
        .map(|c| {
            format!(
                "{} {:?}: libphonenumber {}, ours {:?}",
                c.region, c.input, c.theirs, c.ours
            )
        })
        .collect();
    println!("  not deliberate: {}", unexplained.len());
    (rate, unexplained)
}

#[test]
fn the_fixture_was_written_with_the_shipped_metadata() {
    assert_eq!(fixture_version(), metadata_version());
}

#[test]
fn agreement_with_libphonenumber() {
    let cases = cases(FIXTURE);
    assert!(cases.len() > 2_000, "only {} cases", cases.len());
    let valid = cases.iter().filter(|c| c.theirs != "invalid").count();
    assert!(
        valid * 3 > cases.len() && valid * 3 < cases.len() * 2 + cases.len() / 2,
        "the fixture should mix valid and invalid inputs: {valid} of {} valid",
        cases.len()
    );
    let (rate, unexplained) = measure(
        &format!("fixture (libphonenumber {})", fixture_version()),
        &cases,
    );
    assert!(
        unexplained.is_empty(),
        "{} disagreements are not deliberate:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
    assert!(
        rate >= MEASURED_AGREEMENT_PERCENT,
        "agreement fell to {rate:.2}% (measured: {MEASURED_AGREEMENT_PERCENT}%)"
    );
}

/// A wider sample than the fixture, generated on demand (see the README):
/// `WA_PAIRING_PHONE_AGREEMENT=/tmp/wide.tsv cargo test -p wa-pairing-phone --test agreement
/// -- --ignored --nocapture`.
#[test]
#[ignore = "needs a sample written by tools/agreement.py, named by WA_PAIRING_PHONE_AGREEMENT"]
fn agreement_on_a_wider_sample() {
    let path = std::env::var_os("WA_PAIRING_PHONE_AGREEMENT")
        .expect("WA_PAIRING_PHONE_AGREEMENT names a sample written by tools/agreement.py");
    let text = std::fs::read_to_string(&path).expect("WA_PAIRING_PHONE_AGREEMENT names a file");
    assert_eq!(version_of(&text), Some(metadata_version()), "{path:?}");
    let cases = cases(&text);
    assert!(!cases.is_empty(), "{path:?} has no cases");
    let (_, unexplained) = measure(&path.to_string_lossy(), &cases);
    assert!(
        unexplained.is_empty(),
        "{} disagreements are not deliberate:\n{}",
        unexplained.len(),
        unexplained.join("\n")
    );
}

#[test]
fn every_deliberate_disagreement_is_exercised() {
    // A listed exception that nothing in the fixture needs is either dead or hides a bug.
    let cases = cases(FIXTURE);
    for d in DELIBERATE {
        let n = cases
            .iter()
            .filter(|c| !agrees(c) && (d.applies)(c))
            .count();
        assert!(n > 0, "deliberate disagreement `{}` never happens", d.name);
    }
}
