//! A PostgreSQL TLS mistake stops the service at start with what to change (exit status 2),
//! instead of "service started" followed by an endless "could not be reached" loop.

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wa_pairing_service::{Service, Settings};
use wa_pairing_test_support::ServiceEnv;

const KEYS: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// A server that answers the TLS request with "no", as one with `ssl = off` does.
async fn server_without_tls() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                if sock.read_exact(&mut request).await.is_ok() {
                    let _ = sock.write_all(b"N").await;
                    let mut rest = [0u8; 1024];
                    let _ = sock.read(&mut rest).await;
                }
            });
        }
    });
    port
}

fn settings(url: &str, migrate: bool) -> Settings {
    let env = ServiceEnv::new(url, KEYS).set("WA_PAIRING_MIGRATE", migrate.to_string());
    Settings::from_lookup(|name| env.get(name)).expect("settings")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sslmode_require_against_a_server_without_tls_refuses_to_start() {
    let port = server_without_tls().await;
    let url = format!("postgres://svc:s3cret@127.0.0.1:{port}/app?sslmode=require");
    for migrate in [false, true] {
        let err = Service::build(settings(&url, migrate))
            .await
            .expect_err("the service must not start");
        let text = err.to_string();
        assert_eq!(err.exit_code(), 2, "migrate={migrate}: {text}");
        assert!(
            text.contains("does not offer TLS"),
            "migrate={migrate}: {text}"
        );
        assert!(!text.contains("could not be reached"), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreadable_root_certificate_refuses_to_start() {
    let url = "postgres://svc:s3cret@db.example.com:5432/app?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt";
    let err = Service::build(settings(url, false))
        .await
        .expect_err("the service must not start");
    assert_eq!(err.exit_code(), 2, "{err}");
    assert!(err.to_string().contains("/nonexistent/ca.crt"), "{err}");
}

/// The test Redis, or why the test cannot run (a failure under `WA_PAIRING_TEST_STRICT=1`).
fn test_redis() -> Option<String> {
    match std::env::var("WA_PAIRING_TEST_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) => {
            assert!(
                std::env::var("WA_PAIRING_TEST_STRICT").as_deref() != Ok("1"),
                "WA_PAIRING_TEST_REDIS_URL is required (WA_PAIRING_TEST_STRICT=1)"
            );
            eprintln!("skipped: WA_PAIRING_TEST_REDIS_URL is not set");
            None
        }
    }
}

/// Redis refusing the connection is a setting to change, like PostgreSQL's: a wrong
/// password, a database number the server does not have, `rediss://` (TLS) to the plaintext
/// port of a server that does not speak TLS. The
/// database is never reached: Redis is checked first, and nothing is written.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_mistakes_refuse_to_start() {
    let Some(redis) = test_redis() else { return };
    let (host, port) = redis
        .trim_start_matches("redis://")
        .trim_end_matches('/')
        .rsplit_once(':')
        .map(|(h, p)| (h.to_owned(), p.to_owned()))
        .expect("redis://host:port");
    for (url, needle) in [
        (
            format!("redis://:not-the-password@{host}:{port}"),
            "password",
        ),
        (format!("redis://{host}:{port}/999"), "database number"),
        (format!("rediss://{host}:{port}"), "answers in plain text"),
    ] {
        let env =
            ServiceEnv::new("postgres://svc@127.0.0.1:1/app", KEYS).set("REDIS_URL", url.clone());
        let settings = Settings::from_lookup(|name| env.get(name)).expect("settings");
        let err = Service::build(settings)
            .await
            .expect_err("the service must not start");
        let text = err.to_string();
        assert_eq!(err.exit_code(), 2, "{url}: {text}");
        assert!(text.contains("Redis refused"), "{url}: {text}");
        assert!(text.contains(needle), "{url}: {text}");
        assert!(!text.contains("not-the-password"), "{text}");
    }
}

/// A port already taken is a setting to change (exit status 2), naming the setting.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_in_use_refuses_to_start_naming_the_setting() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let env = ServiceEnv::new("postgres://svc@127.0.0.1:1/app", KEYS)
        .set("WA_PAIRING_HEALTH_ADDR", addr.clone())
        .set("WA_PAIRING_WA_SERVER_URL", "wss://127.0.0.1:1/ws/chat");
    let settings = Settings::from_lookup(|name| env.get(name)).expect("settings");
    let err = Service::build(settings)
        .await
        .expect_err("the port is taken");
    let text = err.to_string();
    assert_eq!(err.exit_code(), 2, "{text}");
    assert!(text.contains("already in use"), "{text}");
    assert!(text.contains("WA_PAIRING_HEALTH_ADDR"), "{text}");
    assert!(text.contains(&addr), "{text}");
    drop(taken);
}
