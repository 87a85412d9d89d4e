//! A panic is logged through the service's redacting log, never printed as it is: its own
//! test binary, because the panic hook and the log subscriber are process-wide.
#![allow(missing_docs)]

mod logs;

use logs::Captured;
use wa_pairing_service::logging::{LogFormat, init_logging_with, install_panic_hook};

#[test]
fn a_panic_is_logged_redacted_with_where_it_happened() {
    let captured = Captured::default();
    let sink = captured.clone();
    init_logging_with(LogFormat::Json, "info", move || sink.clone());
    install_panic_hook();
    let number = "6281234567890";
    let code = "ABCD1234";
    let outcome = std::thread::Builder::new()
        .name("session".to_owned())
        .spawn(move || panic!("could not pair {number} with code {code}"))
        .expect("thread")
        .join();
    let _ = std::panic::take_hook();
    assert!(outcome.is_err(), "the thread panicked");
    let text = captured.text();
    let line = text
        .lines()
        .find(|l| l.contains("panic:"))
        .unwrap_or_else(|| panic!("no panic line in {text:?}"));
    let json: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
    assert_eq!(json["level"], "ERROR");
    assert_eq!(json["thread"], "session");
    assert!(
        json["location"]
            .as_str()
            .is_some_and(|l| l.contains("logs_panic.rs")),
        "{line}"
    );
    assert!(line.contains("could not pair"), "{line}");
    assert!(!line.contains(number) && !line.contains(code), "{line}");
}
