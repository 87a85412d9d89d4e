//! `wa-pairing-service token`: the binary mints an owner's token that the HTTP API, built
//! from the same settings, accepts; a configuration that is not local is refused (exit 2)
//! unless it says it is a development one. Nothing here reaches a database: `token` reads
//! the settings and never connects.

use std::process::{Command, Output};

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;
use wa_pairing_http::{HttpConfig, router};
use wa_pairing_service::Settings;
use wa_pairing_store::MemoryStore;

const SECRET: &str = "token-test-jwt-secret-0123456789abcdef0123";
const USER: &str = "3f1d2c4b-5a69-4e7f-8a9b-0c1d2e3f4a5b";

/// A local stack's settings: the API and the issuer on loopback.
fn local() -> Vec<(&'static str, &'static str)> {
    vec![
        (
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1:5432/postgres",
        ),
        (
            "WA_PAIRING_AUTH_KEYS",
            "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        ),
        ("WA_PAIRING_HTTP_ADDR", "127.0.0.1:3000"),
        ("WA_PAIRING_JWT_ISSUER", "http://127.0.0.1:3000/auth/v1"),
        ("SUPABASE_JWT_SECRET", SECRET),
    ]
}

fn token(vars: &[(&str, &str)], args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_wa-pairing-service"))
        .arg("token")
        .args(args)
        .env_clear()
        .envs(vars.iter().copied())
        .output()
        .expect("the service binary runs")
}

async fn list_devices(vars: &[(&str, &str)], token: &str) -> StatusCode {
    let settings = Settings::from_lookup(|n| {
        vars.iter()
            .find(|(k, _)| *k == n)
            .map(|(_, v)| (*v).to_owned())
    })
    .expect("the settings the binary read");
    let auth = settings.http.expect("the API is configured").auth;
    let app = router(&MemoryStore::new().stores().build(), HttpConfig::new(auth));
    let req = Request::builder()
        .uri("/api/devices")
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .expect("a request");
    app.oneshot(req).await.expect("an answer").status()
}

#[tokio::test]
async fn a_minted_token_is_accepted_by_the_api() {
    let vars = local();
    let out = token(&vars, &["--user", USER, "--ttl", "5m"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.is_empty(), "nothing but the token: {stderr}");
    let stdout = String::from_utf8(out.stdout).expect("text");
    let minted = stdout.trim_end();
    assert_eq!(stdout, format!("{minted}\n"), "one line");
    assert_eq!(minted.split('.').count(), 3, "a JWT: {minted}");
    assert!(!minted.contains(SECRET));
    assert_eq!(list_devices(&vars, minted).await, StatusCode::OK);

    // The API checks it: another secret's token is refused.
    let mut other = local();
    other.retain(|(k, _)| *k != "SUPABASE_JWT_SECRET");
    other.push((
        "SUPABASE_JWT_SECRET",
        "another-secret-0123456789abcdef0123456789",
    ));
    assert_eq!(list_devices(&other, minted).await, StatusCode::UNAUTHORIZED);
}

#[test]
fn a_configuration_that_is_not_local_is_refused() {
    let without = |name: &str| {
        let mut vars = local();
        vars.retain(|(k, _)| *k != name);
        vars
    };
    // A Supabase project's issuer, with the API on every address: production's shape.
    let mut production = without("WA_PAIRING_JWT_ISSUER");
    production.retain(|(k, _)| *k != "WA_PAIRING_HTTP_ADDR");
    production.push(("WA_PAIRING_HTTP_ADDR", "0.0.0.0:3000"));
    production.push(("SUPABASE_URL", "https://abcd.supabase.co"));
    // Either one not on loopback is enough to refuse.
    let mut remote_issuer = without("WA_PAIRING_JWT_ISSUER");
    remote_issuer.push(("WA_PAIRING_JWT_ISSUER", "https://auth.example.com"));
    let mut open_api = without("WA_PAIRING_HTTP_ADDR");
    open_api.push(("WA_PAIRING_HTTP_ADDR", "0.0.0.0:3000"));
    for vars in [&production, &remote_issuer, &open_api] {
        let out = token(vars, &["--user", USER]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{vars:?}: {stderr}");
        assert!(out.stdout.is_empty(), "no token printed");
        assert!(
            stderr.contains("local and development use only"),
            "{stderr}"
        );
        assert!(stderr.contains("WA_PAIRING_ALLOW_DEV_TOKENS"), "{stderr}");
        assert!(!stderr.contains(SECRET), "{stderr}");
        assert_eq!(stderr.lines().count(), 1, "one plain line: {stderr}");
    }

    // A development deployment that says so gets its token.
    let mut development = production.clone();
    development.push(("WA_PAIRING_ALLOW_DEV_TOKENS", "true"));
    let out = token(&development, &["--user", USER]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Without the API, or without its secret, there is nothing to sign for.
    let mut no_api = without("WA_PAIRING_HTTP_ADDR");
    no_api.retain(|(k, _)| !matches!(*k, "WA_PAIRING_JWT_ISSUER" | "SUPABASE_JWT_SECRET"));
    let out = token(&no_api, &["--user", USER]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("WA_PAIRING_HTTP_ADDR"));
    let mut no_secret = without("SUPABASE_JWT_SECRET");
    no_secret.push(("WA_PAIRING_JWKS_URL", "http://127.0.0.1:3000/jwks.json"));
    let out = token(&no_secret, &["--user", USER]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("SUPABASE_JWT_SECRET is not set"));

    // A usage mistake is named before any setting is read.
    let out = token(&[], &["--ttl", "1h"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.starts_with("token needs --user"), "{stderr}");
}
