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
