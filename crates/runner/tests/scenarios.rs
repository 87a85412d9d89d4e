//! The runner's branches, one scenario each, with the mock connector on tokio's paused
//! clock (so code expiry, retries and backoffs take no real time).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures::StreamExt as _;
use tokio::sync::mpsc;
use wa_pairing_code::{IssuedCode, PairingCode};
use wa_pairing_retry::Verdict;
use wa_pairing_runner::{
    ConnectorError, ConnectorErrorKind, LiveSessionError, MockConnector, MockSession,
    OpenedSession, RunSummary, Runner, RunnerConfig, SessionChange, SessionEvent, SessionMode,
};
use wa_pairing_store::{
    AuthStateStore, BudgetConfig, ClaimRequest, ClaimedDevice, CodeCache, CompanionKey, Device,
    DeviceId, DeviceStatus, DeviceStore, DeviceUpdate, Entry, Fence, Lease, MemoryStore, NewDevice,
    PairingRequest, StoreResult, UserId,
};

const PHONE: &str = "6281234567890";

fn phone() -> wa_pairing_store::phone::PhoneNumber {
    wa_pairing_store::phone::PhoneNumber::from_stored_digits(PHONE).unwrap()
}

fn code() -> IssuedCode {
    IssuedCode::new(
        PairingCode::generate(),
        Utc::now(),
        Duration::from_secs(180),
    )
}

fn refused(code: u16, verdict: Verdict) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::Refused { code },
        format!("refused with {code}"),
        verdict,
    )
}

/// What one mock session does, and what it was asked.
#[derive(Default)]
struct Script {
    codes: Mutex<VecDeque<Result<IssuedCode, ConnectorError>>>,
    ready: Mutex<VecDeque<Result<(), ConnectorError>>>,
    requests: AtomicUsize,
    cancels: AtomicUsize,
    disconnects: AtomicUsize,
    logouts: AtomicUsize,
    opens: AtomicUsize,
    modes: Mutex<Vec<SessionMode>>,
    /// When each session was opened, with its mode (on the paused clock).
    opened_at: Mutex<Vec<(tokio::time::Instant, SessionMode, DeviceId)>>,
    opened: tokio::sync::Notify,
    /// How many sockets were closed when each session was opened.
    closed_at_open: Mutex<Vec<usize>>,
}

impl Script {
    fn codes(self, codes: impl IntoIterator<Item = Result<IssuedCode, ConnectorError>>) -> Self {
        *self.codes.lock().unwrap() = codes.into_iter().collect();
        self
    }

    /// Whether each session opened gets ready in time (then: always).
    fn ready(self, ready: impl IntoIterator<Item = bool>) -> Self {
        self.ready_as(ready.into_iter().map(|ok| {
            if ok {
                Ok(())
            } else {
                Err(ConnectorError::new(
                    ConnectorErrorKind::Timeout,
                    "not ready in time",
                    Verdict::Retry,
                ))
            }
        }))
    }

    /// What each session opened answers when the runner waits for it (then: ready).
    fn ready_as(self, ready: impl IntoIterator<Item = Result<(), ConnectorError>>) -> Self {
        *self.ready.lock().unwrap() = ready.into_iter().collect();
        self
    }
}

struct Harness {
    store: MemoryStore,
    script: Arc<Script>,
    events: mpsc::UnboundedSender<SessionEvent>,
    runner: Option<Runner>,
}

fn connector(script: &Arc<Script>, rx: mpsc::UnboundedReceiver<SessionEvent>) -> MockConnector {
    let rx = Arc::new(Mutex::new(Some(rx)));
    let script = Arc::clone(script);
    let mut connector = MockConnector::new();
    connector.expect_open().returning(move |spec| {
        script.opens.fetch_add(1, Ordering::SeqCst);
        script.modes.lock().unwrap().push(spec.mode);
        script.opened_at.lock().unwrap().push((
            tokio::time::Instant::now(),
            spec.mode,
            spec.device_id,
        ));
        script
            .closed_at_open
            .lock()
            .unwrap()
            .push(script.disconnects.load(Ordering::SeqCst));
        script.opened.notify_waiters();
        let mut session = MockSession::new();
        let s = Arc::clone(&script);
        session
            .expect_wait_ready()
            .returning(move |_| s.ready.lock().unwrap().pop_front().unwrap_or(Ok(())));
        let s = Arc::clone(&script);
        session.expect_request_code().returning(move |_| {
            s.requests.fetch_add(1, Ordering::SeqCst);
            s.codes
                .lock()
                .unwrap()
                .pop_front()
                .unwrap_or_else(|| Ok(code()))
        });
        let s = Arc::clone(&script);
        session.expect_cancel_code().returning(move || {
            s.cancels.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        let s = Arc::clone(&script);
        session.expect_disconnect().returning(move || {
            s.disconnects.fetch_add(1, Ordering::SeqCst);
        });
        session
            .expect_app_handle()
            .returning(|| Some(Arc::new(String::from("the mock client"))));
        let s = Arc::clone(&script);
        session.expect_logout().returning(move || {
            s.logouts.fetch_add(1, Ordering::SeqCst);
            Ok(())
        });
        // Each session gets the one event channel (tests open one session at a time).
        let events = match rx.lock().unwrap().take() {
            Some(rx) => {
                futures::stream::unfold(
                    rx,
                    |mut rx| async move { rx.recv().await.map(|e| (e, rx)) },
                )
                .boxed()
            }
            None => futures::stream::pending().boxed(),
        };
        Ok(OpenedSession {
            session: Box::new(session),
            events,
        })
    });
    connector
}

fn config() -> RunnerConfig {
    RunnerConfig::default()
        .instance_id("test-runner")
        .lease_for(Duration::from_secs(30))
        .heartbeat(Duration::from_secs(10))
}

impl Harness {
    fn new(script: Script) -> Self {
        Self::with_config(script, config())
    }

    fn with_config(script: Script, config: RunnerConfig) -> Self {
        let store = MemoryStore::new();
        let script = Arc::new(script);
        let (tx, rx) = mpsc::unbounded_channel();
        let runner = Runner::new(
            store.stores().build(),
            Arc::new(connector(&script, rx)),
            config,
        )
        .unwrap();
        Self {
            store,
            script,
            events: tx,
            runner: Some(runner),
        }
    }

    async fn pairing_device(&self) -> Device {
        let d = self
            .store
            .create(NewDevice::new(UserId::random(), "Shop"))
            .await
            .unwrap();
        let phone = wa_pairing_phone::parse(PHONE).unwrap();
        self.store
            .start_pairing(d.id, PairingRequest::Code { phone })
            .await
            .unwrap()
    }

    /// A device already linked (status connected, no lease), as after a restart.
    async fn connected_device(&self) -> Device {
        let d = self.pairing_device().await;
        let c = self
            .store
            .claim(&ClaimRequest::new("earlier", 10, Duration::from_secs(60)))
            .await
            .unwrap()
            .remove(0);
        self.store
            .update(
                &c.lease,
                DeviceUpdate::status(DeviceStatus::Connected).phone_number(phone()),
            )
            .await
            .unwrap();
        AuthStateStore::put(&self.store, d.id, c.lease.fence, "identity", b"secret")
            .await
            .unwrap();
        self.store.release(&c.lease).await.unwrap();
        DeviceStore::get(&self.store, d.id).await.unwrap()
    }

    fn start(
        &mut self,
    ) -> (
        tokio::task::JoinHandle<RunSummary>,
        tokio::sync::oneshot::Sender<()>,
    ) {
        let runner = self.runner.take().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(runner.run(async {
            let _ = stopped.await;
        }));
        (task, stop)
    }

    fn send(&self, e: SessionEvent) {
        self.events.send(e).unwrap();
    }

    /// Waits (on store changes, never on sleeps) until the device satisfies `pred`.
    async fn until(&self, id: DeviceId, what: &str, pred: impl Fn(&Device) -> bool) -> Device {
        let mut feed = self.store.subscribe().await.unwrap().unwrap();
        loop {
            let d = DeviceStore::get(&self.store, id).await.unwrap();
            if pred(&d) {
                return d;
            }
            let next = tokio::time::timeout(Duration::from_secs(3600), feed.next()).await;
            assert!(
                next.is_ok(),
                "timed out waiting for {what}; device is {d:?}"
            );
        }
    }

    /// Waits until the runner opened `n` sessions.
    async fn opened(&self, n: usize) {
        loop {
            let notified = self.script.opened.notified();
            if self.count(|s| &s.opens) >= n {
                return;
            }
            let r = tokio::time::timeout(Duration::from_secs(3600), notified).await;
            assert!(r.is_ok(), "the runner never opened a session");
        }
    }

    fn count(&self, f: impl Fn(&Script) -> &AtomicUsize) -> usize {
        f(&self.script).load(Ordering::SeqCst)
    }
}

/// Polls `done` every 100 ms of (paused) time, failing after an hour of it: a scenario that
/// never gets there fails with what it waited for instead of hanging.
async fn wait_for(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(3600);
    while !done() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn stop(
    task: tokio::task::JoinHandle<RunSummary>,
    stop: tokio::sync::oneshot::Sender<()>,
) -> RunSummary {
    let _ = stop.send(());
    task.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_fresh_device_is_paired_and_connected() {
    let mut h = Harness::new(Script::default());
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let waiting = h
        .until(d.id, "a code", |d| d.status == DeviceStatus::WaitingPairing)
        .await;
    let shown = waiting.pairing_code.expect("code stored");
    assert!(waiting.pairing_code_expires_at.unwrap() > Utc::now() + TimeDelta::seconds(170));
    assert_eq!(
        CodeCache::get(&h.store, d.id)
            .await
            .unwrap()
            .map(|c| c.code),
        Some(shown)
    );
    h.send(SessionEvent::Paired { phone: phone() });
    let linked = h
        .until(d.id, "connected", |d| d.status == DeviceStatus::Connected)
        .await;
    assert_eq!(
        linked
            .phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some(PHONE)
    );
    assert!(linked.pairing_code.is_none() && linked.last_connected_at.is_some());
    assert_eq!(
        CodeCache::get(&h.store, d.id).await.unwrap(),
        None,
        "cache cleared"
    );
    h.send(SessionEvent::Connected);
    assert_eq!(h.count(|s| &s.requests), 1);
    assert_eq!(*h.script.modes.lock().unwrap(), [SessionMode::PairWithCode]);
    let summary = stop(task, s).await;
    assert_eq!(summary.claimed, 1);
    assert_eq!(summary.released, 1);
    let after = DeviceStore::get(&h.store, d.id).await.unwrap();
    assert!(
        after.lease_owner.is_none(),
        "graceful shutdown releases the lease"
    );
    assert_eq!(
        after.status,
        DeviceStatus::Connected,
        "a linked session stays linked across restarts"
    );
    assert!(h.count(|s| &s.disconnects) >= 1);
}

/// A store that hands out claimed devices with a bad stored number, as rows written by the
/// original frontend may hold: read back as no number at all.
struct BadNumberStore(MemoryStore, &'static str);

#[async_trait::async_trait]
impl DeviceStore for BadNumberStore {
    async fn create(&self, new: NewDevice) -> StoreResult<Device> {
        self.0.create(new).await
    }
    async fn get(&self, id: DeviceId) -> StoreResult<Device> {
        DeviceStore::get(&self.0, id).await
    }
    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Device>> {
        self.0.list_for_user(user).await
    }
    async fn start_pairing(&self, id: DeviceId, r: PairingRequest) -> StoreResult<Device> {
        self.0.start_pairing(id, r).await
    }
    async fn refresh(&self, id: DeviceId) -> StoreResult<Device> {
        self.0.refresh(id).await
    }
    async fn disconnect(&self, id: DeviceId) -> StoreResult<Device> {
        self.0.disconnect(id).await
    }
    async fn resume(&self, id: DeviceId) -> StoreResult<Device> {
        self.0.resume(id).await
    }
    async fn unlink(&self, id: DeviceId) -> StoreResult<Device> {
        self.0.unlink(id).await
    }
    async fn delete(&self, id: DeviceId) -> StoreResult<()> {
        DeviceStore::delete(&self.0, id).await
    }
    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedDevice>> {
        let mut claimed = self.0.claim(request).await?;
        for c in &mut claimed {
            c.device.phone_for_pairing = Device::stored_phone(self.1);
        }
        Ok(claimed)
    }
    async fn renew(
        &self,
        owner: &str,
        leases: &[Lease],
        lease_for: Duration,
    ) -> StoreResult<Vec<Lease>> {
        self.0.renew(owner, leases, lease_for).await
    }
    async fn release(&self, lease: &Lease) -> StoreResult<bool> {
        self.0.release(lease).await
    }
    async fn update(&self, lease: &Lease, update: DeviceUpdate) -> StoreResult<Device> {
        self.0.update(lease, update).await
    }
    async fn subscribe(&self) -> StoreResult<Option<wa_pairing_store::ChangeStream>> {
        self.0.subscribe().await
    }
}

#[tokio::test(start_paused = true)]
async fn a_bad_number_fails_at_once_without_asking_whatsapp() {
    for stored in ["12", "0812-ABCD", "+999 1234 5678"] {
        let words = "no valid phone number is stored";
        let h = Harness::new(Script::default());
        let store = BadNumberStore(h.store.clone(), stored);
        let mut connector = MockConnector::new();
        connector.expect_open().never();
        let stores = wa_pairing_store::Stores::builder(store, h.store.clone()).build();
        let runner = Runner::new(stores, Arc::new(connector), config()).unwrap();
        let d = h.pairing_device().await;
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(runner.run(async {
            let _ = rx.await;
        }));
        let failed = h
            .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
            .await;
        let msg = failed.error_message.unwrap();
        assert!(msg.contains(words), "{stored}: {msg}");
        assert!(
            !msg.contains(stored),
            "the message repeats the number: {msg}"
        );
        let _ = tx.send(());
        task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn throttling_fails_with_the_servers_wait_and_asks_once() {
    let throttled = refused(
        429,
        Verdict::Throttled {
            retry_after: Some(Duration::from_secs(300)),
        },
    );
    let mut h = Harness::new(Script::default().codes([Err(throttled)]));
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    let retry_after = failed.retry_after.expect("retry_after set");
    let wait = (retry_after - Utc::now()).num_seconds();
    assert!((295..=301).contains(&wait), "retry_after in {wait} s");
    assert!(failed.error_message.unwrap().contains("limiting"));
    assert_eq!(h.count(|s| &s.requests), 1, "no request storm");
    // The owner pressing refresh too early is refused.
    let err = h.store.refresh(d.id).await.unwrap_err();
    assert_eq!(err.kind(), wa_pairing_store::ErrorKind::Throttled);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn permanent_refusals_are_not_retried() {
    for (code, words) in [(403, "forbidden"), (452, "QR code")] {
        let mut h = Harness::new(Script::default().codes([Err(refused(code, Verdict::Permanent))]));
        let d = h.pairing_device().await;
        let (task, s) = h.start();
        let failed = h
            .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
            .await;
        assert!(failed.error_message.unwrap().contains(words), "{code}");
        assert!(failed.retry_after.is_none());
        assert_eq!(h.count(|s| &s.requests), 1);
        stop(task, s).await;
    }
}

#[tokio::test(start_paused = true)]
async fn server_errors_are_retried_then_succeed() {
    let e500 = || Err(refused(500, Verdict::Retry));
    let mut h = Harness::new(Script::default().codes([e500(), e500(), Ok(code())]));
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    h.until(d.id, "a code", |d| d.status == DeviceStatus::WaitingPairing)
        .await;
    assert_eq!(h.count(|s| &s.requests), 3);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn server_errors_that_persist_fail_after_the_policys_attempts() {
    let e500 = || Err(refused(500, Verdict::Retry));
    let mut h = Harness::new(Script::default().codes([e500(), e500(), e500(), e500()]));
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    assert!(failed.error_message.unwrap().contains("after 3 attempts"));
    assert_eq!(h.count(|s| &s.requests), 3);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn expired_codes_are_refreshed_then_the_device_fails() {
    let mut h = Harness::with_config(Script::default(), config().code_refreshes(2));
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    assert!(failed.error_message.unwrap().contains("expired"));
    assert!(failed.pairing_code.is_none());
    assert_eq!(h.count(|s| &s.requests), 3, "one code and two refreshes");
    assert_eq!(
        h.count(|s| &s.cancels),
        2,
        "each refresh cancels the live code first"
    );
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn a_server_refresh_request_issues_a_fresh_code_at_once() {
    let mut h = Harness::new(Script::default());
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let first = h
        .until(d.id, "a code", |d| d.pairing_code.is_some())
        .await
        .pairing_code;
    h.send(SessionEvent::CodeRefreshRequested);
    h.until(d.id, "a new code", |d| {
        d.pairing_code.is_some() && d.pairing_code != first
    })
    .await;
    assert_eq!(h.count(|s| &s.requests), 2);
    assert_eq!(h.count(|s| &s.cancels), 1);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn a_dropped_socket_while_waiting_reissues_the_code() {
    let mut h = Harness::new(Script::default());
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let first = h
        .until(d.id, "a code", |d| d.pairing_code.is_some())
        .await
        .pairing_code;
    h.send(SessionEvent::Disconnected {
        reason: "stream error 503".into(),
    });
    h.until(d.id, "a new code", |d| {
        d.pairing_code.is_some() && d.pairing_code != first
    })
    .await;
    assert_eq!(h.count(|s| &s.requests), 2);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn the_budget_refuses_before_whatsapp_is_asked() {
    let mut h = Harness::with_config(
        Script::default(),
        config().budget(BudgetConfig::new(0, Duration::from_secs(600))),
    );
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    assert!(
        failed
            .error_message
            .unwrap()
            .contains("Too many pairing codes")
    );
    assert!(failed.retry_after.is_some());
    assert_eq!(h.count(|s| &s.requests), 0);
    stop(task, s).await;
}

/// A server the client refused as not WhatsApp's is an operator's setting: the attempt fails
/// at once (no second socket), and the owner reads that the service cannot reach WhatsApp.
#[tokio::test(start_paused = true)]
async fn an_untrusted_server_fails_the_pairing_at_once_without_retrying() {
    let untrusted = || {
        Err(ConnectorError::new(
            ConnectorErrorKind::UntrustedServer,
            "the WhatsApp server at ws://127.0.0.1:9/ws/chat did not prove it is WhatsApp's",
            Verdict::Permanent,
        ))
    };
    let mut h = Harness::with_config(
        Script::default().ready_as([untrusted(), untrusted(), untrusted()]),
        config().connect_attempts(3),
    );
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    let message = failed.error_message.unwrap();
    assert!(message.contains("cannot reach WhatsApp"), "{message}");
    assert!(
        !message.contains("127.0.0.1"),
        "no server address for the owner: {message}"
    );
    assert_eq!(h.count(|s| &s.opens), 1, "never retried");
    assert_eq!(h.count(|s| &s.disconnects), 1, "its socket is closed");
    assert_eq!(h.count(|s| &s.requests), 0);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn a_socket_that_never_gets_ready_fails_after_the_attempts() {
    let mut h = Harness::with_config(
        Script::default().ready([false, false, false]),
        config().connect_attempts(3),
    );
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    assert!(failed.error_message.unwrap().contains("Could not connect"));
    assert_eq!(h.count(|s| &s.opens), 3);
    assert_eq!(h.count(|s| &s.requests), 0);
    assert_eq!(
        h.count(|s| &s.disconnects),
        3,
        "every unready socket is closed"
    );
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn a_linked_device_resumes_without_pairing_and_stops_on_logout() {
    let mut h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let (task, s) = h.start();
    h.opened(1).await;
    h.send(SessionEvent::Connected);
    h.until(d.id, "reconnected", |x| {
        x.last_connected_at > d.last_connected_at
    })
    .await;
    assert_eq!(*h.script.modes.lock().unwrap(), [SessionMode::Resume]);
    assert_eq!(h.count(|s| &s.requests), 0, "no code for a linked device");
    h.send(SessionEvent::LoggedOut {
        reason: "removed from the phone".into(),
    });
    let out = h
        .until(d.id, "logged out", |d| {
            d.status == DeviceStatus::Disconnected
        })
        .await;
    assert!(out.error_message.unwrap().contains("logged out"));
    assert!(
        h.store.scan_prefix(d.id, "").await.unwrap().is_empty(),
        "auth state wiped"
    );
    h.until(d.id, "released", |d| d.lease_owner.is_none()).await;
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn replaced_stops_for_good() {
    let mut h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let (task, s) = h.start();
    h.opened(1).await;
    h.send(SessionEvent::Replaced);
    let out = h
        .until(d.id, "disconnected", |d| {
            d.status == DeviceStatus::Disconnected
        })
        .await;
    assert!(out.error_message.unwrap().contains("replaced"));
    assert_eq!(
        h.store.scan_prefix(d.id, "").await.unwrap().len(),
        1,
        "auth state kept"
    );
    assert_eq!(h.count(|s| &s.opens), 1, "never reconnects");
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn a_temporary_ban_fails_until_its_end() {
    let mut h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let (task, s) = h.start();
    h.opened(1).await;
    let until = Utc::now() + TimeDelta::hours(2);
    h.send(SessionEvent::TemporarilyBanned { until: Some(until) });
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    assert_eq!(
        failed.retry_after.map(|t| t.timestamp()),
        Some(until.timestamp())
    );
    assert!(failed.error_message.unwrap().contains("banned"));
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn an_outdated_client_fails_with_a_clear_message() {
    let mut h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let (task, s) = h.start();
    h.opened(1).await;
    h.send(SessionEvent::ClientOutdated);
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    assert!(failed.error_message.unwrap().contains("update"));
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn a_client_that_gives_up_reconnecting_leaves_the_device_disconnected() {
    let mut h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let (task, s) = h.start();
    h.opened(1).await;
    h.send(SessionEvent::Disconnected {
        reason: "network".into(),
    });
    h.send(SessionEvent::GaveUp {
        reason: "network unreachable".into(),
    });
    let out = h
        .until(d.id, "disconnected", |d| {
            d.status == DeviceStatus::Disconnected
        })
        .await;
    assert!(out.error_message.unwrap().contains("could not be restored"));
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn an_owner_stop_revokes_the_lease_and_closes_the_socket_at_once() {
    let mut h = Harness::new(Script::default());
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    h.until(d.id, "a code", |d| d.status == DeviceStatus::WaitingPairing)
        .await;
    h.store.disconnect(d.id).await.unwrap();
    // The actor notices through the change feed and closes its socket.
    wait_for("the socket to close", || h.count(|s| &s.disconnects) > 0).await;
    let after = DeviceStore::get(&h.store, d.id).await.unwrap();
    assert_eq!(
        after.status,
        DeviceStatus::Disconnected,
        "the runner did not overwrite the owner"
    );
    let summary = stop(task, s).await;
    assert_eq!(summary.leases_lost, 1);
    assert_eq!(summary.released, 0);
}

#[tokio::test(start_paused = true)]
async fn an_interrupted_pairing_is_reissued_with_a_fresh_code() {
    let mut h = Harness::new(Script::default());
    let d = h.pairing_device().await;
    // An earlier instance showed a code, then died without releasing its lease.
    let c = h
        .store
        .claim(&ClaimRequest::new("dead", 10, Duration::ZERO))
        .await
        .unwrap()
        .remove(0);
    h.store
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).pairing_code(code()),
        )
        .await
        .unwrap();
    let old = DeviceStore::get(&h.store, d.id).await.unwrap().pairing_code;
    let (task, s) = h.start();
    let fresh = h
        .until(d.id, "a fresh code", |x| {
            x.lease_owner.as_deref() == Some("test-runner")
                && x.pairing_code.is_some()
                && x.pairing_code != old
        })
        .await;
    assert!(fresh.lease_fence > c.lease.fence);
    assert_eq!(*h.script.modes.lock().unwrap(), [SessionMode::PairWithCode]);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn the_qr_method_stores_each_qr_then_links() {
    let mut h = Harness::new(Script::default());
    let d = h
        .store
        .create(NewDevice::new(UserId::random(), "Till"))
        .await
        .unwrap();
    h.store
        .start_pairing(d.id, PairingRequest::Qr)
        .await
        .unwrap();
    let (task, s) = h.start();
    h.opened(1).await;
    h.send(SessionEvent::QrCode {
        payload: "2@abc,def".into(),
        valid_for: Duration::from_secs(60),
    });
    h.until(d.id, "a QR", |d| d.qr_code.as_deref() == Some("2@abc,def"))
        .await;
    h.send(SessionEvent::QrCode {
        payload: "2@ghi,jkl".into(),
        valid_for: Duration::from_secs(20),
    });
    let w = h
        .until(d.id, "the next QR", |d| {
            d.qr_code.as_deref() == Some("2@ghi,jkl")
        })
        .await;
    assert_eq!(w.status, DeviceStatus::WaitingPairing);
    h.send(SessionEvent::Paired { phone: phone() });
    let linked = h
        .until(d.id, "connected", |d| d.status == DeviceStatus::Connected)
        .await;
    assert!(linked.qr_code.is_none());
    assert_eq!(*h.script.modes.lock().unwrap(), [SessionMode::PairWithQr]);
    assert_eq!(h.count(|s| &s.requests), 0);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn the_concurrency_limit_is_honoured() {
    let mut h = Harness::with_config(Script::default(), config().max_sessions(2));
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(h.pairing_device().await.id);
    }
    let (task, s) = h.start();
    for id in &ids[..2] {
        h.until(*id, "a code", |d| d.status == DeviceStatus::WaitingPairing)
            .await;
    }
    let third = DeviceStore::get(&h.store, ids[2]).await.unwrap();
    assert!(
        third.lease_owner.is_none(),
        "a third device was claimed beyond the limit"
    );
    let summary = stop(task, s).await;
    assert_eq!(summary.claimed, 2);
    assert_eq!(summary.released, 2);
}

#[tokio::test(start_paused = true)]
async fn a_lease_taken_over_by_another_instance_stops_the_session_at_the_next_heartbeat() {
    let script = Arc::new(Script::default());
    let (_tx, rx) = mpsc::unbounded_channel();
    let Clocked {
        store,
        clock,
        id,
        task,
        stop_tx,
    } = Clocked::start(connector(&script, rx), config()).await;
    wait_for("the session to open", || {
        script.opens.load(Ordering::SeqCst) > 0
    })
    .await;
    // The runner is paused (say, a long GC or a partition) past its lease; another takes over.
    clock.advance(Duration::from_secs(31));
    let stolen = store
        .claim(&ClaimRequest::new(
            "other-instance",
            10,
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert_eq!(stolen.len(), 1);
    // The next heartbeat finds the lease gone and closes the socket without writing.
    wait_for("the socket to close", || {
        script.disconnects.load(Ordering::SeqCst) > 0
    })
    .await;
    let after = DeviceStore::get(&store, id).await.unwrap();
    assert_eq!(after.lease_owner.as_deref(), Some("other-instance"));
    let _ = stop_tx.send(());
    let summary = task.await.unwrap();
    assert_eq!(summary.leases_lost, 1);
    assert_eq!(summary.released, 0, "never releases a lease it lost");
}

#[tokio::test(start_paused = true)]
async fn reclaiming_its_own_lapsed_lease_closes_the_old_socket_before_opening_a_new_one() {
    let script = Arc::new(Script::default());
    let (_tx, rx) = mpsc::unbounded_channel();
    let Clocked {
        store,
        clock,
        id,
        task,
        stop_tx,
    } = Clocked::start(connector(&script, rx), config()).await;
    wait_for("the session to open", || {
        script.opens.load(Ordering::SeqCst) > 0
    })
    .await;
    // Heartbeats stalled past the lease: the next claim tick hands the device back to us.
    clock.advance(Duration::from_secs(31));
    wait_for("a second session", || {
        script.opens.load(Ordering::SeqCst) >= 2
    })
    .await;
    assert_eq!(
        *script.closed_at_open.lock().unwrap(),
        [0, 1],
        "a second socket opened before the first closed"
    );
    let after = DeviceStore::get(&store, id).await.unwrap();
    assert_eq!(after.lease_owner.as_deref(), Some("test-runner"));
    assert_eq!(
        after.lease_fence.0, 3,
        "start_pairing, first claim, second claim"
    );
    let _ = stop_tx.send(());
    task.await.unwrap();
}

/// A session whose socket takes as long to close as the test says.
struct SlowToClose {
    closing: Arc<tokio::sync::Notify>,
    closed: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl wa_pairing_runner::Session for SlowToClose {
    async fn wait_ready(&self, _timeout: Duration) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn request_code(
        &self,
        _phone: &wa_pairing_phone::PhoneNumber,
    ) -> Result<IssuedCode, ConnectorError> {
        Ok(code())
    }
    async fn cancel_code(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
    async fn disconnect(&self) {
        self.closing.notify_one();
        self.closed.notified().await;
    }
    async fn logout(&self) -> Result<(), ConnectorError> {
        Ok(())
    }
}

/// A runner over a store on a manual clock, holding one device that waits for a QR scan.
struct Clocked {
    store: MemoryStore,
    clock: Arc<wa_pairing_store::ManualClock>,
    id: DeviceId,
    task: tokio::task::JoinHandle<RunSummary>,
    stop_tx: tokio::sync::oneshot::Sender<()>,
}

impl Clocked {
    async fn start(connector: MockConnector, config: RunnerConfig) -> Self {
        let clock = Arc::new(wa_pairing_store::ManualClock::new(Utc::now()));
        let store = MemoryStore::with_clock(clock.clone());
        let runner = Runner::new(store.stores().build(), Arc::new(connector), config).unwrap();
        let d = store
            .create(NewDevice::new(UserId::random(), "Shop"))
            .await
            .unwrap();
        store.start_pairing(d.id, PairingRequest::Qr).await.unwrap();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(runner.run(async {
            let _ = stop_rx.await;
        }));
        Self {
            store,
            clock,
            id: d.id,
            task,
            stop_tx,
        }
    }
}

/// A [`Clocked`] runner whose session closes only when the returned `closed` is notified
/// (never, if the test does not); `closing` is notified when the close begins.
async fn slow_to_close(
    grace: Duration,
) -> (Clocked, Arc<tokio::sync::Notify>, Arc<tokio::sync::Notify>) {
    let closing = Arc::new(tokio::sync::Notify::new());
    let closed = Arc::new(tokio::sync::Notify::new());
    let opened = Arc::new(tokio::sync::Notify::new());
    let mut connector = MockConnector::new();
    {
        let (closing, closed, opened) = (closing.clone(), closed.clone(), opened.clone());
        connector.expect_open().returning(move |_| {
            opened.notify_one();
            Ok(OpenedSession {
                session: Box::new(SlowToClose {
                    closing: closing.clone(),
                    closed: closed.clone(),
                }),
                events: futures::stream::pending().boxed(),
            })
        });
    }
    let run = Clocked::start(connector, config().shutdown_grace(grace)).await;
    opened.notified().await;
    (run, closing, closed)
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_a_lease_is_renewed_until_its_session_has_closed() {
    let (
        Clocked {
            store,
            clock,
            id,
            task,
            stop_tx,
        },
        closing,
        closed,
    ) = slow_to_close(Duration::from_secs(600)).await;
    let _ = stop_tx.send(());
    closing.notified().await;
    // The socket is still closing after the first lease period would have ended: the
    // heartbeat kept renewing, so no other instance may claim the account yet.
    clock.advance(Duration::from_secs(20));
    tokio::time::sleep(Duration::from_secs(11)).await;
    clock.advance(Duration::from_secs(20));
    let stolen = store
        .claim(&ClaimRequest::new(
            "other-instance",
            10,
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert!(
        stolen.is_empty(),
        "another instance claimed a device whose socket was still open"
    );
    assert_eq!(
        DeviceStore::get(&store, id)
            .await
            .unwrap()
            .lease_owner
            .as_deref(),
        Some("test-runner")
    );
    closed.notify_one();
    let summary = task.await.unwrap();
    assert_eq!((summary.released, summary.abandoned), (1, 0));
    assert!(
        DeviceStore::get(&store, id)
            .await
            .unwrap()
            .lease_owner
            .is_none(),
        "released once the session closed"
    );
}

#[tokio::test(start_paused = true)]
async fn at_shutdown_a_session_that_never_closes_is_abandoned_and_its_lease_left_to_lapse() {
    let (
        Clocked {
            store,
            clock,
            id,
            task,
            stop_tx,
        },
        closing,
        _closed,
    ) = slow_to_close(Duration::from_secs(5)).await;
    let _ = stop_tx.send(());
    closing.notified().await;
    let summary = task.await.unwrap();
    assert_eq!((summary.released, summary.abandoned), (0, 1));
    let d = DeviceStore::get(&store, id).await.unwrap();
    assert_eq!(
        d.lease_owner.as_deref(),
        Some("test-runner"),
        "the lease of a socket that may be open is not released"
    );
    // After one lease period another instance takes the device over, as after a crash.
    clock.advance(Duration::from_secs(31));
    let taken = store
        .claim(&ClaimRequest::new(
            "other-instance",
            10,
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].device.id, id);
}

#[tokio::test(start_paused = true)]
async fn a_shorter_code_lifetime_replaces_codes_sooner_than_whatsapp_would() {
    let mut h = Harness::with_config(
        Script::default(),
        config()
            .code_lifetime(Duration::from_secs(60))
            .code_refreshes(1),
    );
    let d = h.pairing_device().await;
    let (task, s) = h.start();
    let shown = h
        .until(d.id, "a code", |d| d.status == DeviceStatus::WaitingPairing)
        .await;
    let started = tokio::time::Instant::now();
    let shown_for = shown.pairing_code_expires_at.unwrap() - Utc::now();
    assert!(
        shown_for <= TimeDelta::seconds(60) && shown_for > TimeDelta::seconds(50),
        "the stored expiry follows the lifetime, not WhatsApp's 180 s: {shown_for}"
    );
    let failed = h
        .until(d.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    assert!(failed.error_message.unwrap().contains("expired"));
    assert_eq!(h.count(|s| &s.requests), 2, "one code and one refresh");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(110) && took < Duration::from_secs(180),
        "two 60 s codes, not 180 s ones: {took:?}"
    );
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn a_panicking_actor_ends_its_device_and_its_lease_is_never_renewed() {
    let mut connector = MockConnector::new();
    connector.expect_open().returning(|_| {
        let mut session = MockSession::new();
        session
            .expect_wait_ready()
            .returning(|_| panic!("a bug inside one device's session"));
        session.expect_disconnect().returning(|| ());
        Ok(OpenedSession {
            session: Box::new(session),
            events: futures::stream::pending().boxed(),
        })
    });
    let Clocked {
        store,
        clock,
        id,
        task,
        stop_tx,
    } = Clocked::start(connector, config()).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while DeviceStore::get(&store, id)
        .await
        .unwrap()
        .lease_owner
        .is_none()
    {
        assert!(tokio::time::Instant::now() < deadline, "never claimed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // A heartbeat comes and goes 25 s into the lease: a held lease would be pushed to 55 s.
    clock.advance(Duration::from_secs(25));
    tokio::time::sleep(Duration::from_secs(11)).await;
    clock.advance(Duration::from_secs(10));
    // 35 s after the claim: the lease was left to lapse, so another instance takes over.
    let taken = store
        .claim(&ClaimRequest::new(
            "other-instance",
            10,
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert_eq!(
        taken.iter().map(|c| c.device.id).collect::<Vec<_>>(),
        [id],
        "the panicked actor's lease was still renewed"
    );
    let _ = stop_tx.send(());
    let summary = task.await.unwrap();
    assert_eq!(summary.panicked, 1);
    assert_eq!(
        summary.released, 0,
        "a panicked actor's lease is never released"
    );
}

fn unreadable_error() -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::Unreadable,
        "a stored auth-state value was sealed with key id 1, which is not configured: add that key to WA_PAIRING_AUTH_KEYS",
        Verdict::Permanent,
    )
}

#[tokio::test(start_paused = true)]
async fn a_session_sealed_with_a_missing_key_is_left_untouched_for_another_instance() {
    left_untouched_for_another_instance(unreadable_error, "key id 1").await;
}

#[tokio::test(start_paused = true)]
async fn a_session_of_another_whatsapp_server_is_left_untouched_for_another_instance() {
    let other_server = || {
        ConnectorError::new(
            ConnectorErrorKind::OtherServer,
            "this device's WhatsApp state belongs to the server at wss://127.0.0.1:5280/ws/chat",
            Verdict::Permanent,
        )
    };
    left_untouched_for_another_instance(other_server, "127.0.0.1:5280").await;
}

/// A connected device whose session this instance cannot open (`error`) keeps its status,
/// state and number, is reported (`reason` in the status) and left for another instance.
async fn left_untouched_for_another_instance(error: fn() -> ConnectorError, reason: &'static str) {
    let opens = Arc::new(AtomicUsize::new(0));
    let mut connector = MockConnector::new();
    let o = Arc::clone(&opens);
    connector.expect_open().returning(move |_| {
        o.fetch_add(1, Ordering::SeqCst);
        Err(error())
    });
    let h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let before = h.store.scan_prefix(d.id, "").await.unwrap();
    let runner = Runner::new(h.store.stores().build(), Arc::new(connector), config()).unwrap();
    let status = runner.status();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(runner.run(async {
        let _ = rx.await;
    }));
    let released = h
        .until(d.id, "the lease released", |x| {
            x.lease_owner.is_none() && opens.load(Ordering::SeqCst) == 1
        })
        .await;
    assert_eq!(released.status, DeviceStatus::Connected, "status untouched");
    assert_eq!(released.error_message, None, "no message for the owner");
    assert_eq!(
        released
            .phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some(PHONE)
    );
    assert_eq!(h.store.scan_prefix(d.id, "").await.unwrap(), before);
    assert_eq!(status.unreadable_devices(), 1);
    assert!(
        status.unreadable_reasons()[0].contains(reason),
        "{:?}",
        status.unreadable_reasons()
    );
    // This instance does not take it again for a while: another instance (with the key) can.
    tokio::time::sleep(Duration::from_secs(60)).await;
    assert_eq!(opens.load(Ordering::SeqCst), 1, "claimed again at once");
    let other = h
        .store
        .claim(&ClaimRequest::new(
            "keyed-instance",
            10,
            Duration::from_secs(30),
        ))
        .await
        .unwrap();
    assert_eq!(other.len(), 1);
    let _ = tx.send(());
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn state_found_unreadable_mid_session_stops_it_without_touching_the_device() {
    let mut h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let status = h.runner.as_ref().unwrap().status();
    let (task, s) = h.start();
    h.opened(1).await;
    h.send(SessionEvent::Connected);
    h.until(d.id, "reconnected", |x| {
        x.last_connected_at > d.last_connected_at
    })
    .await;
    h.send(SessionEvent::StateUnreadable {
        reason: "a stored auth-state value failed authentication with key id 2".into(),
    });
    let after = h.until(d.id, "released", |x| x.lease_owner.is_none()).await;
    assert_eq!(after.status, DeviceStatus::Connected);
    assert_eq!(h.store.scan_prefix(d.id, "").await.unwrap().len(), 1);
    assert!(h.count(|s| &s.disconnects) >= 1, "the socket was closed");
    assert_eq!(status.unreadable_devices(), 1);
    stop(task, s).await;
}

#[tokio::test(start_paused = true)]
async fn unlink_logs_in_removes_the_companion_and_wipes_the_state() {
    let mut h = Harness::new(Script::default());
    let d = h.connected_device().await;
    h.store.unlink(d.id).await.unwrap();
    let (task, s) = h.start();
    h.opened(1).await;
    assert_eq!(*h.script.modes.lock().unwrap(), [SessionMode::Resume]);
    h.send(SessionEvent::Connected);
    let done = h
        .until(d.id, "disconnected", |x| {
            x.status == DeviceStatus::Disconnected
        })
        .await;
    assert_eq!(h.count(|s| &s.logouts), 1, "the companion was removed");
    assert_eq!(done.phone_number, None, "no longer linked");
    assert_eq!(done.error_message, None);
    assert!(h.store.scan_prefix(d.id, "").await.unwrap().is_empty());
    let err = h.store.resume(d.id).await.unwrap_err();
    assert!(err.to_string().contains("start pairing"), "{err}");
    stop(task, s).await;
}

/// Auth state whose every wipe is followed at once by a write under the same fence: the
/// client's last flush of a session that is still closing, landing after the runner wiped
/// the state but before the device was released.
struct LateFlush(MemoryStore);

impl LateFlush {
    async fn flush(&self, device: DeviceId, fence: Fence) {
        // Refused or not, the flush itself never fails the wipe.
        let _ = AuthStateStore::put(&self.0, device, fence, "device", b"late flush").await;
    }
}

#[async_trait::async_trait]
impl AuthStateStore for LateFlush {
    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
        AuthStateStore::get(&self.0, device, key).await
    }
    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()> {
        self.0.put_many(device, fence, entries).await
    }
    async fn delete_many(
        &self,
        device: DeviceId,
        fence: Fence,
        keys: &[String],
    ) -> StoreResult<()> {
        self.0.delete_many(device, fence, keys).await
    }
    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
        self.0.scan_prefix(device, prefix).await
    }
    async fn delete_prefix(
        &self,
        device: DeviceId,
        fence: Fence,
        prefix: &str,
    ) -> StoreResult<u64> {
        self.0.delete_prefix(device, fence, prefix).await
    }
    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.0.clear(device, fence).await?;
        self.flush(device, fence).await;
        Ok(())
    }
    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.0.seal(device, fence).await?;
        self.flush(device, fence).await;
        Ok(())
    }
    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()> {
        self.0.register_companion(device, fence, companion).await
    }
    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>> {
        self.0.devices(after, limit).await
    }
    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool> {
        self.0.replace(device, key, expected, value).await
    }
}

#[tokio::test(start_paused = true)]
async fn a_flush_landing_after_an_unlink_or_a_logout_wipes_the_state_leaves_nothing() {
    for logged_out_from_the_phone in [false, true] {
        let script = Arc::new(Script::default());
        let (tx, rx) = mpsc::unbounded_channel();
        let store = MemoryStore::new();
        let stores =
            wa_pairing_store::Stores::builder(store.clone(), LateFlush(store.clone())).build();
        let runner = Runner::new(stores, Arc::new(connector(&script, rx)), config()).unwrap();
        let mut h = Harness {
            store,
            script,
            events: tx,
            runner: Some(runner),
        };
        let d = h.connected_device().await;
        if !logged_out_from_the_phone {
            h.store.unlink(d.id).await.unwrap();
        }
        let (task, s) = h.start();
        h.opened(1).await;
        h.send(SessionEvent::Connected);
        if logged_out_from_the_phone {
            h.until(d.id, "reconnected", |x| {
                x.last_connected_at > d.last_connected_at
            })
            .await;
            h.send(SessionEvent::LoggedOut {
                reason: "removed on the phone".into(),
            });
        }
        h.until(d.id, "disconnected and released", |x| {
            x.status == DeviceStatus::Disconnected && x.lease_owner.is_none()
        })
        .await;
        let left = h.store.scan_prefix(d.id, "").await.unwrap();
        assert!(
            left.is_empty(),
            "logged out from the phone: {logged_out_from_the_phone}; left: {left:?}"
        );
        stop(task, s).await;
    }
}

#[tokio::test(start_paused = true)]
async fn unlink_without_whatsapp_wipes_and_says_to_remove_the_device_on_the_phone() {
    // The socket never gets ready, and then a session that never logs in.
    for script in [
        Script::default().ready([false, false, false]),
        Script::default(),
    ] {
        let mut h = Harness::with_config(
            script,
            config()
                .connect_attempts(3)
                .unlink_timeout(Duration::from_secs(20)),
        );
        let d = h.connected_device().await;
        h.store.unlink(d.id).await.unwrap();
        let (task, s) = h.start();
        let done = h
            .until(d.id, "disconnected", |x| {
                x.status == DeviceStatus::Disconnected
            })
            .await;
        assert_eq!(h.count(|s| &s.logouts), 0);
        assert!(
            done.error_message
                .as_deref()
                .is_some_and(|m| m.contains("remove it on the phone")),
            "{:?}",
            done.error_message
        );
        assert_eq!(done.phone_number, None);
        assert!(h.store.scan_prefix(d.id, "").await.unwrap().is_empty());
        stop(task, s).await;
    }
}

#[tokio::test(start_paused = true)]
async fn the_owners_words_never_carry_internal_errors() {
    let mut connector = MockConnector::new();
    connector.expect_open().returning(|_| {
        Err(ConnectorError::new(
            ConnectorErrorKind::Storage,
            "the auth-state store failed: relation device_auth_state does not exist (42P01)",
            Verdict::Permanent,
        ))
    });
    let h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let runner = Runner::new(h.store.stores().build(), Arc::new(connector), config()).unwrap();
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(runner.run(async {
        let _ = rx.await;
    }));
    let out = h
        .until(d.id, "disconnected", |x| {
            x.status == DeviceStatus::Disconnected
        })
        .await;
    let words = out.error_message.unwrap();
    assert!(
        !words.contains("42P01") && !words.contains("relation"),
        "{words}"
    );
    assert!(words.contains("could not be loaded"), "{words}");
    let _ = tx.send(());
    task.await.unwrap();
}

/// A dead instance's sessions are logged in again at the resume rate, the longest-lapsed
/// lease first, never claimed further ahead than the pacer's horizon, while a new pairing
/// is served at once.
#[tokio::test(start_paused = true)]
async fn a_takeover_is_paced_and_a_pairing_goes_first() {
    let mut h = Harness::with_config(
        Script::default(),
        config()
            .claim_interval(Duration::from_secs(1))
            .resume_rate(2.0)
            .resume_jitter(0.0),
    );
    // Ten linked devices whose instance died: their leases have lapsed.
    let mut dead = Vec::new();
    for _ in 0..10 {
        let d = h.pairing_device().await;
        let c = h
            .store
            .claim(&ClaimRequest::new("dead", 1, Duration::ZERO))
            .await
            .unwrap()
            .remove(0);
        assert_eq!(c.device.id, d.id);
        h.store
            .update(
                &c.lease,
                DeviceUpdate::status(DeviceStatus::Connected).phone_number(phone()),
            )
            .await
            .unwrap();
        dead.push(d.id);
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let started = tokio::time::Instant::now();
    let (task, s) = h.start();
    h.opened(1).await;
    // A claim takes only the turns within the horizon (twice the 1 s claim interval at two
    // per second), not all ten.
    let held = |h: &Harness| {
        let store = h.store.clone();
        let dead = dead.clone();
        async move {
            let mut n = 0;
            for id in dead {
                let d = DeviceStore::get(&store, id).await.unwrap();
                n += usize::from(d.lease_owner.as_deref() == Some("test-runner"));
            }
            n
        }
    };
    assert!(held(&h).await <= 4, "claimed beyond the horizon");

    // A new device asks for a code while the takeover is under way.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    let new = h.pairing_device().await;
    h.until(new.id, "a code during the takeover", |d| {
        d.status == DeviceStatus::WaitingPairing
    })
    .await;
    let resumed_before_code = h
        .script
        .opened_at
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, m, _)| *m == SessionMode::Resume)
        .count();
    assert!(
        resumed_before_code < 10,
        "the pairing waited for the takeover ({resumed_before_code} resumed first)"
    );

    h.opened(11).await;
    let opens = h.script.opened_at.lock().unwrap().clone();
    let resumes: Vec<tokio::time::Instant> = opens
        .iter()
        .filter(|(_, m, _)| *m == SessionMode::Resume)
        .map(|(at, _, _)| *at)
        .collect();
    assert_eq!(resumes.len(), 10);
    let order: Vec<DeviceId> = opens
        .iter()
        .filter(|(_, m, _)| *m == SessionMode::Resume)
        .map(|(_, _, id)| *id)
        .collect();
    assert_eq!(order, dead, "the longest-lapsed lease first");
    for pair in resumes.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(500),
            "two resumes {:?} apart at 2 per second",
            pair[1] - pair[0]
        );
    }
    // Ten logins at two per second: the last one 4.5 s after the first, not at once.
    assert!(resumes[9] - started >= Duration::from_millis(4500));
    // Every dead session is held here now, each once.
    assert_eq!(held(&h).await, 10);
    let summary = stop(task, s).await;
    assert_eq!(summary.claimed, 11);
}

/// The application sees a resumed session as soon as it is live, uses what the connector
/// offers through it, and the handle stops working the moment the owner's stop revokes the
/// lease; a linked session ending at shutdown is reported closed.
#[tokio::test(start_paused = true)]
async fn live_handles_follow_the_lease() {
    let mut h = Harness::new(Script::default());
    let d = h.connected_device().await;
    let sessions = h.runner.as_ref().unwrap().sessions();
    let mut changes = sessions.subscribe();
    assert!(sessions.get(d.id).is_none(), "nothing live before the run");
    let (task, s) = h.start();
    h.opened(1).await;
    assert!(sessions.is_empty(), "not offered before it is connected");
    h.send(SessionEvent::Connected);
    assert_eq!(
        next_change(&mut changes).await,
        SessionChange::Resumed { device_id: d.id }
    );
    let live = sessions.get(d.id).expect("a live handle");
    assert!(live.resumed());
    assert_eq!(sessions.list(), [d.id]);
    let held = DeviceStore::get(&h.store, d.id).await.unwrap();
    assert_eq!(live.fence(), held.lease_fence);
    assert_eq!(*live.app::<String>().unwrap(), "the mock client");

    // The owner stops the device: the lease is revoked, and the handle refuses at once.
    h.store.disconnect(d.id).await.unwrap();
    assert_eq!(
        next_change(&mut changes).await,
        SessionChange::Lost { device_id: d.id }
    );
    assert_eq!(live.check(), Err(LiveSessionError::NotLive(d.id)));
    assert!(live.app::<String>().is_err());
    assert!(sessions.get(d.id).is_none());

    stop(task, s).await;
}

/// A just-linked session is offered as connected, and reported closed at shutdown.
#[tokio::test(start_paused = true)]
async fn a_linked_session_is_offered_then_closed_at_shutdown() {
    let mut h = Harness::new(Script::default());
    let sessions = h.runner.as_ref().unwrap().sessions();
    let mut changes = sessions.subscribe();
    let p = h.pairing_device().await;
    let (task, s) = h.start();
    h.until(p.id, "a code", |x| x.status == DeviceStatus::WaitingPairing)
        .await;
    h.send(SessionEvent::Paired { phone: phone() });
    h.until(p.id, "linked", |x| x.status == DeviceStatus::Connected)
        .await;
    h.send(SessionEvent::Connected);
    assert_eq!(
        next_change(&mut changes).await,
        SessionChange::Connected { device_id: p.id }
    );
    let linked = sessions.get(p.id).expect("live");
    assert!(!linked.resumed());
    let summary = stop(task, s).await;
    assert_eq!(summary.released, 1);
    assert!(!linked.is_live());
    assert_eq!(
        next_change(&mut changes).await,
        SessionChange::Closed { device_id: p.id }
    );
    assert!(sessions.is_empty());
}

/// The next session change, failing after an hour of (paused) time instead of hanging.
async fn next_change(
    changes: &mut tokio::sync::broadcast::Receiver<SessionChange>,
) -> SessionChange {
    tokio::time::timeout(Duration::from_secs(3600), changes.recv())
        .await
        .expect("a session change within the hour")
        .expect("the change feed")
}
