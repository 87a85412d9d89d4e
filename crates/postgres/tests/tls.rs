//! PostgreSQL over TLS against a real server with TLS on (a throwaway cluster with a
//! certificate for `localhost` from a CA made here, accepting TCP connections over TLS only):
//! every sslmode, the errors that say what is wrong, and the whole conformance suite (change
//! feed included) over `verify-full`.

mod tls_server;

use std::time::Duration;

use tls_server::TlsServer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wa_pairing_postgres::{PostgresConfig, PostgresStore, SslMode};
use wa_pairing_retry::Classify as _;
use wa_pairing_store::{DeviceId, DeviceStore, ErrorKind, StoreError};
use wa_pairing_store_testkit::skip;

wa_pairing_store_testkit::conformance_tests!(tls_server::backend; devices, auth_state, auth_cascade, budget, change_feed);

/// The cluster, or a printed skip (a failure under `WA_PAIRING_TEST_STRICT=1`).
fn server(test: &str) -> Option<&'static TlsServer> {
    match TlsServer::get() {
        Ok(s) => Some(s),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// The migrations (idempotent, safe concurrently) and one lookup through a store of
/// `config`: `Ok` when the server answered (a device that does not exist is "not found").
async fn probe(config: &PostgresConfig) -> Result<(), StoreError> {
    let store = PostgresStore::new(config)?;
    let work = async {
        store.migrate().await?;
        match store.get(DeviceId::random()).await {
            Err(e) if e.kind() != ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    };
    tokio::time::timeout(Duration::from_secs(30), work)
        .await
        .expect("the probe returns")
}

/// The error a store of `config` reports, checked to be a permanent configuration error
/// without the password.
async fn refused(server: &TlsServer, config: &PostgresConfig) -> StoreError {
    let e = probe(config).await.expect_err("the connection is refused");
    assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    assert!(
        !e.verdict().is_retryable(),
        "a TLS misconfiguration is not an outage to retry: {e}"
    );
    assert!(!e.to_string().contains(&server.password), "{e}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_with_the_ca_and_the_certificates_name_connects() {
    let Some(server) = server("verify_full_with_the_ca_and_the_certificates_name_connects") else {
        return;
    };
    let url = server.url("localhost", "postgres", &server.verify_full());
    probe(&PostgresConfig::new(url))
        .await
        .expect("verify-full to localhost");

    // The same through the settings instead of the URL, and through PGSSLMODE/PGSSLROOTCERT.
    let plain = server.url("localhost", "postgres", "");
    probe(
        &PostgresConfig::new(&plain)
            .ssl_mode(SslMode::VerifyFull)
            .ssl_root_cert(&server.ca),
    )
    .await
    .expect("verify-full from the setters");
    let ca = server.ca.display().to_string();
    let from_env = PostgresConfig::new(&plain)
        .with_libpq_env(|name| match name {
            "PGSSLMODE" => Some("verify-full".to_owned()),
            "PGSSLROOTCERT" => Some(ca.clone()),
            _ => None,
        })
        .unwrap();
    probe(&from_env).await.expect("verify-full from PGSSLMODE");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_host_the_certificate_is_not_for() {
    let Some(server) = server("verify_full_refuses_a_host_the_certificate_is_not_for") else {
        return;
    };
    // The certificate is for localhost only; 127.0.0.1 is the same server by another name.
    let url = server.url("127.0.0.1", "postgres", &server.verify_full());
    let e = refused(server, &PostgresConfig::new(url)).await;
    let m = e.message();
    assert!(
        m.contains("certificate is for localhost, not for 127.0.0.1"),
        "{m}"
    );
    assert!(m.contains("verify-ca"), "{m}");

    // verify-ca checks the chain only: the same address is accepted.
    let url = format!(
        "{}?sslmode=verify-ca&sslrootcert={}",
        server.url("127.0.0.1", "postgres", ""),
        server.ca.display()
    );
    probe(&PostgresConfig::new(url))
        .await
        .expect("verify-ca to 127.0.0.1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_full_refuses_a_certificate_from_an_untrusted_ca() {
    let Some(server) = server("verify_full_refuses_a_certificate_from_an_untrusted_ca") else {
        return;
    };
    // No root certificate: Mozilla's roots, which never signed this test CA.
    let url = server.url("localhost", "postgres", "sslmode=verify-full");
    let e = refused(server, &PostgresConfig::new(url)).await;
    assert!(
        e.message()
            .contains("not signed by a trusted certificate authority"),
        "{e}"
    );
    assert!(e.message().contains("sslrootcert"), "{e}");

    // Another CA given: refused the same way, in verify-ca as in verify-full.
    for mode in ["verify-full", "verify-ca", "require"] {
        let url = format!(
            "{}?sslmode={mode}&sslrootcert={}",
            server.url("localhost", "postgres", ""),
            server.other_ca.display()
        );
        let e = refused(server, &PostgresConfig::new(url)).await;
        assert!(
            e.message()
                .contains("not signed by a trusted certificate authority"),
            "{mode}: {e}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_and_prefer_encrypt_without_a_ca() {
    let Some(server) = server("require_and_prefer_encrypt_without_a_ca") else {
        return;
    };
    // The server takes TCP connections over TLS only, so getting in proves TLS.
    for params in ["sslmode=require", "sslmode=prefer", ""] {
        let url = server.url("127.0.0.1", "postgres", params);
        probe(&PostgresConfig::new(url))
            .await
            .unwrap_or_else(|e| panic!("{params:?}: {e}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disable_against_a_server_that_requires_tls_says_so() {
    let Some(server) = server("disable_against_a_server_that_requires_tls_says_so") else {
        return;
    };
    let url = server.url("localhost", "postgres", "sslmode=disable");
    let e = refused(server, &PostgresConfig::new(url)).await;
    assert!(e.message().contains("requires TLS"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrate_reports_the_tls_problem_not_an_outage() {
    let Some(server) = server("migrate_reports_the_tls_problem_not_an_outage") else {
        return;
    };
    let url = server.url("localhost", "postgres", "sslmode=verify-full");
    let store = PostgresStore::new(&PostgresConfig::new(url)).unwrap();
    let e = store.migrate().await.expect_err("untrusted certificate");
    assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    assert!(!e.message().contains("could not be reached"), "{e}");
    assert!(e.message().contains("sslrootcert"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_change_feed_listens_over_tls() {
    use futures::StreamExt as _;
    use wa_pairing_store::{Change, NewDevice, UserId};

    let Some(server) = server("the_change_feed_listens_over_tls") else {
        return;
    };
    let db = server.create_db().await;
    let store = PostgresStore::new(&PostgresConfig::new(server.url(
        "localhost",
        &db,
        &server.verify_full(),
    )))
    .unwrap();
    store.migrate().await.unwrap();
    let mut feed = store.subscribe().await.unwrap().expect("a change feed");
    let first = tokio::time::timeout(Duration::from_secs(20), feed.next())
        .await
        .expect("the feed connects");
    assert_eq!(first, Some(Change::Resync));
    // The feed's own connection is a TLS session: ask the server about it.
    let admin = server.admin(&db).await;
    let row = admin
        .query_one(
            "select count(*) filter (where s.ssl) as tls, count(*) as all \
             from pg_stat_activity a join pg_stat_ssl s using (pid) \
             where a.datname = current_database() and a.query ilike 'LISTEN%'",
            &[],
        )
        .await
        .unwrap();
    let (tls, all): (i64, i64) = (row.get(0), row.get(1));
    assert_eq!((tls, all), (1, 1), "one LISTEN connection, over TLS");

    let device = store
        .create(NewDevice::new(UserId::random(), "Shop phone"))
        .await
        .unwrap();
    store.delete(device.id).await.unwrap();
    let next = tokio::time::timeout(Duration::from_secs(20), feed.next())
        .await
        .expect("a notification over TLS");
    assert!(
        matches!(next, Some(Change::Device(_) | Change::Resync)),
        "{next:?}"
    );
    drop(feed);
    drop(store);
    server.drop_db(db).await;
}

/// A server that answers the TLS request with "no" (as one with `ssl = off` does).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_against_a_server_without_tls_says_so() {
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
    let url = format!("postgres://app:s3cret@127.0.0.1:{port}/app?sslmode=require");
    let e = probe(&PostgresConfig::new(url)).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    assert!(e.message().contains("does not offer TLS"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}

#[tokio::test]
async fn an_unreadable_root_certificate_is_refused_at_build() {
    let e = PostgresStore::new(
        &PostgresConfig::new("postgres://app:s3cret@db.example.com/app?sslmode=verify-full")
            .ssl_root_cert("/nonexistent/supabase-ca.crt"),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.message().contains("/nonexistent/supabase-ca.crt"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");
}
