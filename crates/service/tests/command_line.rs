//! The binary's command line: help is a success on standard output, an unknown command is
//! named, and both happen before any setting is read (nothing here sets the environment).

use std::process::Command;

fn service(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_wa-pairing-service"))
        .args(args)
        .env_clear()
        .output()
        .expect("the service binary runs")
}

#[test]
fn help_prints_the_usage_and_exits_0() {
    for flag in ["help", "--help", "-h"] {
        let out = service(&[flag]);
        assert_eq!(out.status.code(), Some(0), "{flag}");
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            stdout.starts_with("usage: wa-pairing-service"),
            "{flag}: {stdout}"
        );
        assert!(stdout.contains("import-baileys"), "{flag}: {stdout}");
        assert!(out.stderr.is_empty(), "{flag}: nothing on stderr");
    }
}

#[test]
fn an_unknown_command_is_named_and_exits_2() {
    let out = service(&["reencrypt-all"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("unknown command `reencrypt-all`"),
        "{stderr}"
    );
    assert!(stderr.contains("usage: wa-pairing-service"), "{stderr}");
    assert!(out.stdout.is_empty());
}

#[test]
fn a_command_missing_its_settings_speaks_of_itself_and_exits_2() {
    for command in ["check-keys", "reencrypt", "migrate"] {
        let out = service(&[command]);
        assert_eq!(out.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.starts_with(&format!("{command} cannot run; fix these settings:")),
            "{command}: {stderr}"
        );
        assert!(!stderr.contains("the service cannot start"), "{stderr}");
        assert!(stderr.contains("WA_PAIRING_AUTH_KEYS"), "{stderr}");
    }
    let out = service(&[]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("the service cannot start; fix these settings:"),
        "{stderr}"
    );
}
