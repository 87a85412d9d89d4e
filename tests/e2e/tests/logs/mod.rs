//! Shared by the log tests: each is its own test binary, because the log subscriber is
//! process-wide.
#![allow(dead_code, unreachable_pub)]

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use wa_pairing_e2e::ServiceEnv;
use wa_pairing_e2e::Stack;
use wa_pairing_service::logging::{LogFormat, init_logging_with};
use wa_pairing_service::{Service, Settings};
use wa_pairing_sim::SimEvent;
use wa_pairing_store_testkit::{Skip, skip};

/// Everything the process logs, kept in memory.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Everything captured so far.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

/// Installs the service's logging with `filter` into a buffer, pairs one device through the
/// service (PostgreSQL, Redis, the simulator), and checks every line written.
pub async fn pair_and_check(filter: &str, dependencies_at_info: bool) {
    let captured = Captured::default();
    let sink = captured.clone();
    init_logging_with(LogFormat::Json, filter, move || sink.clone());
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("logs e2e", &why),
    };
    let Ok(redis_url) = std::env::var("WA_PAIRING_TEST_REDIS_URL") else {
        db.drop().await;
        return skip(
            "logs e2e",
            &Skip::new("WA_PAIRING_TEST_REDIS_URL is not set"),
        );
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let env = ServiceEnv::new(&db.url, &wa_pairing_e2e::test_keys_setting())
        .set("REDIS_URL", redis_url)
        .set("WA_PAIRING_INSTANCE_ID", "logs-e2e")
        .set("WA_PAIRING_WA_SERVER_URL", stack.sim.url());
    let settings = Settings::from_lookup(|n| env.get(n)).expect("settings");
    let service = Service::build(settings).await.expect("the service builds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));
    let phone = wa_pairing_e2e::fresh_number("6281255");
    let device = stack.device(&phone).await;
    stack.connected(device.id).await;
    // The owner disconnects: the runner closes the session (the client's last flush is then
    // refused, as the lease is gone); that is no error either.
    let closed = stack.sim.wait_for(Duration::from_secs(30), |e| {
        matches!(e, SimEvent::Disconnected { .. })
    });
    stack
        .stores
        .devices()
        .disconnect(device.id)
        .await
        .expect("the owner's disconnect");
    closed.await.expect("the session's socket closed");
    let _ = stop.send(());
    running.await.expect("the service task");
    person.abort();
    db.drop().await;

    let text = captured.text();
    assert!(
        text.contains("service started"),
        "nothing was captured:\n{text}"
    );
    if dependencies_at_info {
        assert!(
            text.contains("pair code authentication"),
            "the client's own lines about the number were not logged, so nothing was tested:\n{text}"
        );
    }
    // A successful link and an owner's disconnect are no errors, in our lines or the
    // client's.
    let errors: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"level\":\"ERROR\""))
        .collect();
    assert!(
        errors.is_empty(),
        "error lines on a successful link: {errors:#?}"
    );
    let codes = stack.typed_codes();
    assert!(!codes.is_empty(), "a code was shown and typed");
    for code in &codes {
        let bare = code.replace('-', "");
        assert!(
            !text.contains(code.as_str()) && !text.contains(&bare),
            "the code {code} was logged:\n{text}"
        );
    }
    assert!(
        !text.contains(&phone),
        "the full number was logged:\n{text}"
    );
    assert!(
        !text.contains(&phone[2..]),
        "the national number was logged:\n{text}"
    );
}
