//! The connector without a WhatsApp server: configuration, the loopback guard, the session
//! modes' handling of stored state, and the session lifecycle when nothing answers.

mod common;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use wa_pairing_retry::{Classify, Verdict};
use wa_pairing_runner::{Connector, ConnectorErrorKind, SessionMode, SessionSpec};
use wa_pairing_store::{AuthStateStore, Fence, Keyring, Lease, MemoryStore, Stores};
use wa_pairing_whatsapp::{
    ErrorKind, WaBackend, WhatsAppConfig, WhatsAppConnector, server_certificates_verified,
};
use wacore::store::traits::DeviceStore as _;

/// Nothing listens on port 1 of loopback: connecting fails at once.
const DEAD_LOCAL_SERVER: &str = "ws://127.0.0.1:1/ws/chat";

/// Stores around `memory`, unencrypted.
fn plain(memory: &MemoryStore) -> Stores {
    memory.stores().build()
}

fn connector() -> WhatsAppConnector {
    WhatsAppConfig::new()
        .server_url(DEAD_LOCAL_SERVER)
        .build()
        .expect("a loopback server is accepted in every build")
}

/// A session of `lease`'s device in `mode`, its state in the auth state of `stores`.
fn spec(stores: &Stores, lease: &Lease, mode: SessionMode) -> SessionSpec {
    SessionSpec::new(lease.clone(), mode, Arc::clone(stores.auth_state()))
}

/// The storage a client of `lease`'s device writes through, over `stores`.
fn backend(stores: &Stores, lease: &Lease) -> WaBackend {
    WaBackend::new(
        Arc::clone(stores.auth_state()),
        lease.device_id,
        lease.fence,
    )
}

#[test]
fn whatsapp_itself_is_refused_exactly_when_certificates_are_not_verified() {
    let result = WhatsAppConfig::new().build();
    if server_certificates_verified() {
        assert!(result.is_ok(), "a product build connects to WhatsApp");
    } else {
        let err = result.expect_err("an insecure build must refuse WhatsApp's server");
        assert_eq!(err.kind(), ErrorKind::InsecureServer);
        assert!(err.to_string().contains("loopback"), "{err}");
        let err = wa_pairing_runner::ConnectorError::from(err);
        assert_eq!(err.kind(), ConnectorErrorKind::Configuration);
        assert_eq!(err.verdict(), Verdict::Permanent);
    }
}

#[cfg(feature = "insecure-sim")]
#[test]
fn insecure_sim_refuses_whatsapp_and_accepts_loopback() {
    assert!(!server_certificates_verified());
    for url in [
        "wss://web.whatsapp.com/ws/chat",
        "ws://192.168.1.10/ws/chat",
        "ws://127.0.0.1@web.whatsapp.com/ws/chat",
    ] {
        let err = WhatsAppConfig::new()
            .server_url(url)
            .build()
            .expect_err(url);
        assert_eq!(err.kind(), ErrorKind::InsecureServer, "{url}");
    }
    for url in [
        DEAD_LOCAL_SERVER,
        "ws://localhost:9/ws/chat",
        "ws://[::1]:9/ws/chat",
    ] {
        assert!(
            WhatsAppConfig::new().server_url(url).build().is_ok(),
            "{url}"
        );
    }
}

#[test]
fn malformed_configuration_is_refused_with_a_reason() {
    for url in ["web.whatsapp.com", "https://web.whatsapp.com/ws/chat", ""] {
        let err = WhatsAppConfig::new()
            .server_url(url)
            .build()
            .expect_err(url);
        assert_eq!(err.kind(), ErrorKind::Configuration, "{url}");
    }
    let err = WhatsAppConfig::new()
        .server_url(DEAD_LOCAL_SERVER)
        .push_name("  ")
        .build()
        .expect_err("blank push name");
    assert_eq!(err.kind(), ErrorKind::Configuration);
}

#[tokio::test]
async fn debug_never_shows_keys() {
    let (keyring, encoded) = Keyring::generate(1);
    let stores = MemoryStore::new().stores().encrypt(keyring).build();
    let config = WhatsAppConfig::new().server_url(DEAD_LOCAL_SERVER);
    let (_, lease) = common::memory_device().await;
    let shown = format!(
        "{config:?} {:?} {:?}",
        config.clone().build().unwrap(),
        spec(&stores, &lease, SessionMode::Resume)
    );
    assert!(!shown.contains(&encoded), "{shown}");
    assert!(shown.contains(DEAD_LOCAL_SERVER));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_without_stored_state_is_refused_for_good() {
    let (store, lease) = common::memory_device().await;
    let err = connector()
        .open(spec(&plain(&store), &lease, SessionMode::Resume))
        .await
        .expect_err("nothing to resume");
    assert_eq!(err.kind(), ConnectorErrorKind::NotLinked);
    assert_eq!(err.verdict(), Verdict::Permanent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_sealed_with_a_key_this_process_lacks_is_unreadable_and_left_alone() {
    let (store, lease) = common::memory_device().await;
    let sealed_with = store.stores().encrypt(Keyring::new(1, [1; 32])).build();
    // A linked device's state, written with key 1.
    let backend = backend(&sealed_with, &lease);
    let mut device = wacore::store::Device::new();
    device.pn = Some("6281234567890@s.whatsapp.net".parse().unwrap());
    backend.save(&device).await.unwrap();
    let before = AuthStateStore::scan_prefix(&*store, lease.device_id, "")
        .await
        .unwrap();
    for keys in [Keyring::new(2, [2; 32]), Keyring::new(1, [9; 32])] {
        let wrong = store.stores().encrypt(keys).build();
        let err = connector()
            .open(spec(&wrong, &lease, SessionMode::Resume))
            .await
            .expect_err("the state cannot be opened");
        assert_eq!(err.kind(), ConnectorErrorKind::Unreadable, "{err}");
        assert!(err.to_string().contains("key id"), "{err}");
        assert!(
            std::error::Error::source(&err).is_some(),
            "the store error is kept"
        );
    }
    assert_eq!(
        AuthStateStore::scan_prefix(&*store, lease.device_id, "")
            .await
            .unwrap(),
        before,
        "nothing was written"
    );
}

/// A rotation half done: the device record is sealed with the new key, a Signal value still
/// with the old one, and this instance has only the new key. Nothing is dialled: the login
/// would only meet the unreadable value later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_is_refused_before_dialling_when_any_stored_value_cannot_be_opened() {
    let (store, lease) = common::memory_device().await;
    let old = store.stores().encrypt(Keyring::new(1, [1; 32])).build();
    let new_only = store.stores().encrypt(Keyring::new(2, [2; 32])).build();
    old.auth_state()
        .put(lease.device_id, lease.fence, "session/friend", b"ratchet")
        .await
        .unwrap();
    let backend = backend(&new_only, &lease);
    let mut device = wacore::store::Device::new();
    device.pn = Some("6281234567890@s.whatsapp.net".parse().unwrap());
    backend.save(&device).await.unwrap();
    assert!(
        backend.is_linked().await.unwrap(),
        "the record itself opens"
    );
    let err = connector()
        .open(spec(&new_only, &lease, SessionMode::Resume))
        .await
        .expect_err("a value cannot be opened");
    assert_eq!(err.kind(), ConnectorErrorKind::Unreadable, "{err}");
    assert!(err.to_string().contains("key id 1"), "{err}");
    // With both keys it resumes (the dead server is only dialled then).
    let both = store
        .stores()
        .encrypt(Keyring::new(2, [2; 32]).with_old_key(1, [1; 32]))
        .build();
    let opened = connector()
        .open(spec(&both, &lease, SessionMode::Resume))
        .await
        .expect("everything opens");
    opened.session.disconnect().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_lease_writes_nothing() {
    let (store, lease) = common::memory_device().await;
    let stale = Lease {
        fence: Fence(lease.fence.0 - 1),
        ..lease.clone()
    };
    store
        .put(lease.device_id, lease.fence, "session/keep", b"theirs")
        .await
        .unwrap();
    let err = connector()
        .open(spec(&plain(&store), &stale, SessionMode::PairWithCode))
        .await
        .expect_err("a lost lease cannot open a pairing session");
    assert_eq!(err.kind(), ConnectorErrorKind::Storage);
    assert!(!err.verdict().is_retryable());
    assert_eq!(
        AuthStateStore::get(&*store, lease.device_id, "session/keep")
            .await
            .unwrap(),
        Some(b"theirs".to_vec())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairing_starts_from_empty_state_and_a_dead_server_is_never_ready() {
    let (store, lease) = common::memory_device().await;
    store
        .put(
            lease.device_id,
            lease.fence,
            "session/old@s.whatsapp.net",
            b"old",
        )
        .await
        .unwrap();
    let stores = plain(&store);
    let opened = connector()
        .open(spec(&stores, &lease, SessionMode::PairWithCode))
        .await
        .expect("open never waits for the server");
    // The old state is gone; the fresh companion's identity is stored.
    let backend = backend(&stores, &lease);
    assert!(backend.exists().await.unwrap());
    assert!(!backend.is_linked().await.unwrap());
    assert_eq!(
        AuthStateStore::get(&*store, lease.device_id, "session/old@s.whatsapp.net")
            .await
            .unwrap(),
        None
    );
    let not_ready = opened
        .session
        .wait_ready(Duration::from_millis(300))
        .await
        .expect_err("nothing answers");
    assert!(not_ready.verdict().is_retryable(), "{not_ready}");
    opened.session.disconnect().await;
    // After a close the stream ends (whatever it said before).
    let rest: Vec<_> = opened.events.collect().await;
    assert!(
        rest.iter()
            .all(|e| matches!(e, wa_pairing_runner::SessionEvent::Disconnected { .. })),
        "{rest:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_is_encrypted_at_rest_when_the_stores_have_keys() {
    let (store, lease) = common::memory_device().await;
    let (keyring, _) = Keyring::generate(1);
    let stores = store.stores().encrypt(keyring).build();
    let opened = connector()
        .open(spec(&stores, &lease, SessionMode::PairWithCode))
        .await
        .unwrap();
    opened.session.disconnect().await;
    // Readable through the stores the session was handed, sealed in the raw store.
    let through = stores
        .auth_state()
        .get(lease.device_id, "device")
        .await
        .unwrap();
    let raw = AuthStateStore::get(&*store, lease.device_id, "device")
        .await
        .unwrap();
    let (through, raw) = (through.expect("device stored"), raw.expect("device stored"));
    assert!(serde_json::from_slice::<serde_json::Value>(&through).is_ok());
    assert!(serde_json::from_slice::<serde_json::Value>(&raw).is_err());
    assert_ne!(through, raw);
}

#[test]
fn the_config_is_plain_data_and_refuses_nonsense_by_name() {
    let from_file: WhatsAppConfig = serde_json::from_str(
        r#"{"server": "wss://127.0.0.1:5280/ws/chat", "display": "Edge (Windows)", "close_timeout": "5s"}"#,
    )
    .unwrap();
    assert_eq!(from_file.server(), "wss://127.0.0.1:5280/ws/chat");
    assert!(from_file.validate().is_ok());
    assert!(
        serde_json::from_str::<WhatsAppConfig>(r#"{"display": "Netscape (BeOS)"}"#).is_err(),
        "a display the client cannot announce is refused while reading"
    );
    assert!(
        serde_json::from_str::<WhatsAppConfig>(r#"{"sever": "wss://x"}"#).is_err(),
        "unknown fields are refused"
    );
    let zero = WhatsAppConfig::new().close_timeout(std::time::Duration::ZERO);
    let e = zero.validate().unwrap_err();
    assert!(e.to_string().contains("close_timeout is 0"), "{e}");
    assert_eq!(zero.build().unwrap_err().kind(), ErrorKind::Configuration);
    let blank = WhatsAppConfig::new()
        .push_name("  ")
        .validate()
        .unwrap_err();
    assert!(blank.to_string().contains("push_name is empty"), "{blank}");
}

#[test]
fn the_environment_is_read_by_one_function_that_names_the_variable() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| (*v).to_owned())
        }
    };
    let config = WhatsAppConfig::from_lookup(env(&[])).unwrap();
    assert_eq!(config.server(), wa_pairing_whatsapp::DEFAULT_SERVER_URL);
    for (pairs, variable) in [
        (
            &[("WA_PAIRING_WA_SERVER_URL", "http://127.0.0.1:5280/ws/chat")][..],
            "WA_PAIRING_WA_SERVER_URL",
        ),
        (
            &[("WA_PAIRING_WA_VERSION", "two")][..],
            "WA_PAIRING_WA_VERSION",
        ),
        (
            &[("WA_PAIRING_WA_DISPLAY", "Netscape (BeOS)")][..],
            "WA_PAIRING_WA_DISPLAY",
        ),
    ] {
        let e = WhatsAppConfig::from_lookup(env(pairs)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration, "{variable}");
        assert!(e.to_string().starts_with(variable), "{variable}: {e}");
    }
}

/// A device linked (or pairing) with one server is never dialled to another: a simulator's
/// device met by an instance configured for WhatsApp, or the reverse, is left untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_device_of_another_server_is_left_untouched_and_never_dialled() {
    const SIMULATOR: &str = "wss://127.0.0.1:5280/ws/chat";
    let (store, lease) = common::memory_device().await;
    let stores = plain(&store);
    let mut device = wacore::store::Device::new();
    device.pn = Some("6281234567890@s.whatsapp.net".parse().unwrap());
    backend(&stores, &lease).save(&device).await.unwrap();
    stores
        .auth_state()
        .put(lease.device_id, lease.fence, "server", SIMULATOR.as_bytes())
        .await
        .unwrap();
    let before = AuthStateStore::scan_prefix(&*store, lease.device_id, "")
        .await
        .unwrap();
    for mode in [
        SessionMode::Resume,
        SessionMode::PairWithCode,
        SessionMode::PairWithQr,
    ] {
        let err = connector()
            .open(spec(&stores, &lease, mode))
            .await
            .expect_err("another server's device");
        assert_eq!(
            err.kind(),
            ConnectorErrorKind::OtherServer,
            "{mode:?}: {err}"
        );
        assert_eq!(err.verdict(), Verdict::Permanent);
        let text = err.to_string();
        assert!(
            text.contains(SIMULATOR) && text.contains(DEAD_LOCAL_SERVER),
            "{text}"
        );
        assert!(text.contains("WA_PAIRING_WA_SERVER_URL"), "{text}");
    }
    assert_eq!(
        AuthStateStore::scan_prefix(&*store, lease.device_id, "")
            .await
            .unwrap(),
        before,
        "nothing was wiped or written"
    );
}

/// State stored before the server was recorded belongs to the server it next logs in to; a
/// pairing records its server from the start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_server_is_recorded_by_a_pairing_and_adopted_by_an_older_linked_state() {
    let server_of = async |store: &MemoryStore, lease: &Lease| {
        AuthStateStore::get(store, lease.device_id, "server")
            .await
            .unwrap()
            .map(|v| String::from_utf8(v).unwrap())
    };
    let (store, lease) = common::memory_device().await;
    let stores = plain(&store);
    let mut device = wacore::store::Device::new();
    device.pn = Some("6281234567890@s.whatsapp.net".parse().unwrap());
    backend(&stores, &lease).save(&device).await.unwrap();
    assert_eq!(server_of(&store, &lease).await, None);
    let opened = connector()
        .open(spec(&stores, &lease, SessionMode::Resume))
        .await
        .expect("an older linked state resumes");
    opened.session.disconnect().await;
    assert_eq!(
        server_of(&store, &lease).await.as_deref(),
        Some(DEAD_LOCAL_SERVER)
    );

    let (store, lease) = common::memory_device().await;
    let opened = connector()
        .open(spec(&plain(&store), &lease, SessionMode::PairWithCode))
        .await
        .expect("a pairing opens");
    opened.session.disconnect().await;
    assert_eq!(
        server_of(&store, &lease).await.as_deref(),
        Some(DEAD_LOCAL_SERVER)
    );
}
