//! Validate phone numbers the way the runner will, before storing one.
//!
//! ```sh
//! cargo run -p wa-pairing --example validate_number -- "0812-3456-7890" "+44 7911 123456" "12"
//! ```

use wa_pairing::phone::{PhoneParser, Region};

fn main() {
    // Numbers without a country code are read in Indonesia unless told otherwise.
    let parser = PhoneParser::new(Region::INDONESIA);
    let inputs: Vec<String> = std::env::args().skip(1).collect();
    let inputs = if inputs.is_empty() {
        vec![
            "0812-3456-7890".to_owned(),
            "+44 7911 123456".to_owned(),
            "0812".to_owned(),
        ]
    } else {
        inputs
    };
    for input in inputs {
        match parser.parse(&input) {
            // What to store in `phone_for_pairing`: E.164 digits, no '+'.
            Ok(number) => println!(
                "{input:>22}  ->  {} ({})",
                number.digits(),
                number.redacted()
            ),
            // Words a person can act on, and a stable code for programs.
            Err(e) => println!("{input:>22}  ->  refused [{}]: {e}", e.kind().as_str()),
        }
    }
}
