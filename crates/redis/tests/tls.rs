//! Redis over TLS against a real server with TLS only (`--port 0 --tls-port`, a certificate
//! for `localhost` from a CA made here): the code cache, the budget and the auth state pass
//! the conformance suite over `rediss://` with the CA, and a certificate the client must not
//! trust is refused with words that say what to change.

mod tls_server;

use std::time::Duration;

use tls_server::TlsRedis;
use wa_pairing_redis::{RedisConfig, RedisStore};
use wa_pairing_retry::Classify as _;
use wa_pairing_store::{CodeCache as _, DeviceId, ErrorKind, MemoryStore, StoreError, Stores};
use wa_pairing_store_testkit::{Skip, TestBackend, skip};

async fn backend() -> Result<TestBackend, Skip> {
    let server = TlsRedis::get()?;
    let prefix = format!("wa-tls-test-{}:", uuid::Uuid::new_v4().simple());
    let store = RedisStore::new(
        &RedisConfig::new(server.url("localhost"))
            .root_cert(&server.ca)
            .prefix(&prefix)
            .timeout(Duration::from_secs(5)),
    )
    .map_err(|e| Skip::new(e.to_string()))?;
    store
        .ping()
        .await
        .map_err(|e| Skip::new(format!("the TLS Redis does not answer: {e}")))?;
    let stores = Stores::builder(MemoryStore::new(), store.clone())
        .code_cache(store.clone())
        .budget(store)
        .build();
    Ok(TestBackend::new(stores).with_cleanup(move || async move {
        if let Ok(mut c) = server.client().get_multiplexed_async_connection().await {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
            }
        }
    }))
}

// The in-memory device store beside Redis reports its change feed: that group runs too.
wa_pairing_store_testkit::conformance_tests!(backend; auth_state, code_cache, budget, change_feed);

fn server(test: &str) -> Option<&'static TlsRedis> {
    match TlsRedis::get() {
        Ok(s) => Some(s),
        Err(why) => {
            skip(test, &why);
            None
        }
    }
}

/// The error a store of `config` reports on its first call, checked to be a permanent
/// configuration error without the password.
async fn refused(server: &TlsRedis, config: RedisConfig) -> StoreError {
    let store = RedisStore::new(&config.timeout(Duration::from_secs(5))).unwrap();
    let e = store.ping().await.expect_err("the connection is refused");
    assert_eq!(e.kind(), ErrorKind::Configuration, "{e}");
    assert!(!e.verdict().is_retryable(), "{e}");
    assert!(!e.to_string().contains(&server.password), "{e}");
    e
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ca_and_the_certificates_name_connect() {
    let Some(server) = server("the_ca_and_the_certificates_name_connect") else {
        return;
    };
    let store =
        RedisStore::new(&RedisConfig::new(server.url("localhost")).root_cert(&server.ca)).unwrap();
    store.ping().await.expect("rediss:// with the CA");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_from_an_untrusted_ca_is_refused() {
    let Some(server) = server("a_certificate_from_an_untrusted_ca_is_refused") else {
        return;
    };
    // Mozilla's roots only: they never signed the test CA.
    let e = refused(server, RedisConfig::new(server.url("localhost"))).await;
    assert!(
        e.message()
            .contains("not signed by a trusted certificate authority"),
        "{e}"
    );
    assert!(e.message().contains("REDIS_ROOT_CERT"), "{e}");
    // Another CA: refused the same way.
    let e = refused(
        server,
        RedisConfig::new(server.url("localhost")).root_cert(&server.other_ca),
    )
    .await;
    assert!(
        e.message()
            .contains("not signed by a trusted certificate authority"),
        "{e}"
    );

    // The resilient cache turns it into a miss, as for any other cache failure.
    let store = RedisStore::new(&RedisConfig::new(server.url("localhost"))).unwrap();
    let cache = store.resilient_cache();
    assert_eq!(cache.get(DeviceId::random()).await.unwrap(), None);
    assert!(cache.is_down());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_the_certificate_is_not_for_is_refused() {
    let Some(server) = server("a_host_the_certificate_is_not_for_is_refused") else {
        return;
    };
    let e = refused(
        server,
        RedisConfig::new(server.url("127.0.0.1")).root_cert(&server.ca),
    )
    .await;
    assert!(
        e.message()
            .contains("certificate is for localhost, not for 127.0.0.1"),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_url_to_the_wrong_kind_of_port_says_so() {
    let Some(server) = server("a_tls_url_to_the_wrong_kind_of_port_says_so") else {
        return;
    };
    // A plaintext client to the TLS port: the server drops it; an outage-like error, never a
    // hang.
    let store = RedisStore::new(
        &RedisConfig::new(format!(
            "redis://:{}@localhost:{}",
            server.password, server.port
        ))
        .timeout(Duration::from_secs(2)),
    )
    .unwrap();
    let e = tokio::time::timeout(Duration::from_secs(10), store.ping())
        .await
        .expect("returns")
        .expect_err("plaintext to a TLS port");
    assert!(!e.to_string().contains(&server.password), "{e}");
}

#[tokio::test]
async fn insecure_urls_and_unusable_root_certificates_are_refused_at_build() {
    let e = RedisStore::new(&RedisConfig::new(
        "rediss://:s3cret@cache.example.com:6380/#insecure",
    ))
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.message().contains("#insecure"), "{e}");
    assert!(!e.to_string().contains("s3cret"), "{e}");

    let e = RedisStore::new(
        &RedisConfig::new("rediss://:s3cret@cache.example.com:6380")
            .root_cert("/nonexistent/ca.pem"),
    )
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.message().contains("/nonexistent/ca.pem"), "{e}");

    let e = RedisStore::new(
        &RedisConfig::new("redis://cache.example.com:6379").root_cert("/nonexistent/ca.pem"),
    )
    .unwrap_err();
    assert!(e.message().contains("rediss://"), "{e}");
}
