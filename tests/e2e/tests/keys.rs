//! An operator's key mistakes never lose a session, and a key rotation can be finished, with
//! the production service's own code, PostgreSQL, the real client and the simulator: pair;
//! restart with a wrong key (refused, devices untouched); a runner with the wrong key leaves
//! the device alone; restart with the right key (resumes without pairing); rotate;
//! re-encrypt while the service runs; drop the old key; resume.
#![allow(missing_docs)]

use std::time::Duration;

use wa_pairing_e2e::ServiceEnv;
use wa_pairing_e2e::{PgDb, Stack};
use wa_pairing_postgres::PostgresStore;
use wa_pairing_service::{Service, Settings, check_keys, connect_stores, reencrypt};
use wa_pairing_store::{AuthStateStore, Device, DeviceStatus, KeyReport, Keyring};
use wa_pairing_store_testkit::skip;

const PHONE: &str = "6281234500071";

struct World {
    stack: Stack,
    raw: PostgresStore,
    db: PgDb,
}

impl World {
    fn settings(&self, keys: &str, instance: &str) -> Settings {
        let env = ServiceEnv::new(&self.db.url, keys)
            .set("WA_PAIRING_INSTANCE_ID", instance)
            .set("WA_PAIRING_WA_SERVER_URL", self.stack.sim.url());
        Settings::from_lookup(|n| env.get(n)).expect("settings")
    }

    /// Runs the service with `keys` until the device is connected under it (logged in after
    /// `after`), then stops it gracefully.
    async fn serve_until_resumed(&self, keys: &str, instance: &str, after: &Device) -> Device {
        let service = Service::build(self.settings(keys, instance))
            .await
            .expect("the service starts");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let running = tokio::spawn(service.run(async {
            let _ = stopped.await;
        }));
        let d = self
            .stack
            .until(after.id, "resumed", |x| {
                x.status == DeviceStatus::Connected
                    && x.lease_owner.as_deref() == Some(instance)
                    && x.last_connected_at > after.last_connected_at
            })
            .await;
        let _ = stop.send(());
        tokio::time::timeout(Duration::from_secs(40), running)
            .await
            .expect("stops in time")
            .expect("the service task");
        d
    }

    async fn raw_values(&self, d: &Device) -> Vec<(String, Vec<u8>)> {
        self.raw
            .scan_prefix(d.id, "")
            .await
            .expect("raw auth state")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_wrong_key_never_loses_a_session_and_a_rotation_can_be_finished() {
    let (raw, db) = match wa_pairing_e2e::postgres_store().await {
        Ok(x) => x,
        Err(why) => return skip("keys e2e", &why),
    };
    let stack = Stack::start(raw.stores().encrypt(wa_pairing_e2e::test_keyring()).build()).await;
    let w = World { stack, raw, db };
    let old = wa_pairing_e2e::test_keys_setting();
    let person = w.stack.person();

    // Pair with the service on key 1.
    let d = w.stack.device(PHONE).await;
    let service = Service::build(w.settings(&old, "svc-pair")).await.unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));
    let linked = w.stack.connected(d.id).await;
    let _ = stop.send(());
    running.await.unwrap();
    person.abort();
    let sealed = w.raw_values(&linked).await;
    assert!(!sealed.is_empty());

    // A valid-looking key that is not the one, and a key id that is not configured: the
    // service refuses to start, in plain words, and changes nothing.
    let (_, wrong) = Keyring::generate(1);
    let (_, other_id) = Keyring::generate(2);
    for keys in [format!("1:{wrong}"), format!("2:{other_id}")] {
        let err = Service::build(w.settings(&keys, "svc-wrong"))
            .await
            .expect_err("keys that open nothing are refused");
        assert_eq!(err.exit_code(), 2, "{err}");
        let text = err.to_string();
        assert!(text.contains("key id"), "{text}");
        assert!(
            !text.contains(&wrong) && !text.contains(&other_id),
            "{text}"
        );
    }
    // A runner with the wrong key (past the service's check) leaves the device alone.
    let logins = w.stack.sim.counters().logins;
    let wrong_stores = w
        .raw
        .stores()
        .encrypt(Keyring::parse(&format!("1:{wrong}")).unwrap())
        .build();
    let runner = w
        .stack
        .runner_over(&wrong_stores, Stack::config("runner-wrong-key"));
    let end = tokio::time::Instant::now() + wa_pairing_e2e::DEADLINE;
    while runner.status.unreadable_devices() == 0 {
        assert!(tokio::time::Instant::now() < end, "never tried the device");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    runner.shutdown().await;
    let untouched = w
        .stack
        .until(d.id, "released", |x| x.lease_owner.is_none())
        .await;
    assert_eq!(untouched.status, DeviceStatus::Connected);
    assert_eq!(untouched.error_message, None);
    assert_eq!(
        untouched
            .phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some(PHONE)
    );
    assert_eq!(
        w.raw_values(&untouched).await,
        sealed,
        "auth state untouched"
    );
    assert_eq!(w.stack.sim.counters().logins, logins, "never logged in");

    // The right key again: the session resumes without pairing.
    let resumed = w.serve_until_resumed(&old, "svc-right", &untouched).await;
    assert_eq!(w.stack.sim.counters().code_requests_for(PHONE), 1);

    // Rotate: the new key first, the old one after it; re-encrypt while the service runs.
    let (_, new) = Keyring::generate(2);
    let rotating = format!("2:{new},{old}");
    let service = Service::build(w.settings(&rotating, "svc-rotating"))
        .await
        .unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));
    let report: KeyReport = reencrypt(&w.settings(&rotating, "reencrypt"))
        .await
        .unwrap();
    assert_eq!(report.unreadable, 0);
    assert!(report.rewritten > 0, "{report:?}");
    let again = reencrypt(&w.settings(&rotating, "reencrypt"))
        .await
        .unwrap();
    assert_eq!(again.rewritten, 0, "idempotent: {again:?}");
    let _ = stop.send(());
    running.await.unwrap();
    let stores = connect_stores(&w.settings(&rotating, "check"))
        .await
        .unwrap();
    let check = check_keys(&stores, usize::MAX).await.unwrap();
    assert_eq!(
        (check.on_older_keys, check.unreadable),
        (0, 0),
        "nothing is left on the old key: {check:?}"
    );

    // The old key removed: the session still resumes, still without pairing.
    let after = w
        .stack
        .until(d.id, "released", |x| x.lease_owner.is_none())
        .await;
    assert!(after.last_connected_at >= resumed.last_connected_at);
    w.serve_until_resumed(&format!("2:{new}"), "svc-new-key", &after)
        .await;
    let counters = w.stack.sim.counters();
    assert_eq!(counters.code_requests_for(PHONE), 1, "never paired again");
    assert_eq!(counters.pairings, 1);
    w.db.drop().await;
}
