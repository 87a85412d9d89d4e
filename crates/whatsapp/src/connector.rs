//! The runner's [`Connector`] with the real `whatsapp-rust` client.

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::transport::{NoDelayTransport, OnRefused};
use async_trait::async_trait;
use chrono::Utc;
use futures::StreamExt as _;
use futures::channel::mpsc;
use tokio::sync::oneshot;
use tracing::{debug, error, info, warn};
use wa_pairing_code::{IssuedCode, PairingCode, WHATSAPP_CODE_VALIDITY};
use wa_pairing_phone::PhoneNumber;
use wa_pairing_retry::Verdict;
use wa_pairing_runner::{
    Connector, ConnectorError, ConnectorErrorKind, OpenedSession, Session, SessionEvent,
    SessionMode, SessionSpec,
};
use wacore::store::DevicePropsOverride;
use wacore::types::events::{ConnectFailureReason, Event, EventHandler, EventInterest, EventKind};
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::pair_code::{CompanionWebClientType, PairCodeOptions};
use whatsapp_rust::waproto::whatsapp::device_props::PlatformType;
use whatsapp_rust::{Client, TokioRuntime};

use crate::backend::WaBackend;
use crate::classify::classify_pair_error;
use crate::config::{Browser, WhatsAppConfig};
use crate::error::{Error, ErrorKind};
use crate::guard::check_server_url;
use crate::inbox::{Inbox, InboxHook};
use crate::keys;
use crate::session::WaApp;

/// Opens `whatsapp-rust` sessions for the runner: one client per device, with its state in
/// the auth-state store the runner hands over with each session
/// ([`SessionSpec::auth_state`], through a [`WaBackend`]), behind the lease's fence.
///
/// # Behavior
/// - [`SessionMode::PairWithCode`] and [`SessionMode::PairWithQr`] first clear the device's
///   stored state (with the fence) and start a fresh companion; [`SessionMode::Resume`]
///   logs in from the stored state and is refused (permanently) when none is stored, and
///   refused as [`Unreadable`](ConnectorErrorKind::Unreadable), before WhatsApp is dialled,
///   when any stored value cannot be opened with this process's keys.
/// - The client never fetches WhatsApp Web's version over HTTP: the configured version is
///   pinned, so nothing but the WebSocket leaves the process.
/// - [`Session::request_code`] returns the code with the validity the client reports;
///   refusals are classified by [`classify_pair_error`](crate::classify_pair_error).
/// - Events: code refresh asked, QR codes, pair success with the linked number, pairing
///   failed, connected, disconnected (unexpected drops, the client reconnects), logged out,
///   replaced, temporarily banned, client outdated, and gave up (the client stopped on its
///   own). The stream ends once the client has stopped.
/// - A server the client refuses in the Noise handshake (its certificate does not prove it is
///   WhatsApp's: a simulator met by a build that checks certificates, a TLS-intercepting
///   proxy) fails [`Session::wait_ready`] at once with a permanent
///   [`UntrustedServer`](ConnectorErrorKind::UntrustedServer) error that names the server and
///   what to change, and ends a live session with [`SessionEvent::GaveUp`], instead of the
///   client retrying for ever.
/// - A build that skips WhatsApp's certificate checks refuses any server outside loopback,
///   at [`build`](WhatsAppConfig::build) and again at every [`open`](Connector::open).
/// - Dropping a session without [`Session::disconnect`] still closes its socket (in the
///   background), so an account is never left with a forgotten connection.
///
/// ```no_run
/// use std::sync::Arc;
/// use wa_pairing_runner::{Runner, RunnerConfig};
/// use wa_pairing_store::{Keyring, MemoryStore};
/// use wa_pairing_whatsapp::WhatsAppConfig;
///
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let stores = MemoryStore::new().stores().encrypt(Keyring::from_env()?).build();
/// let connector = WhatsAppConfig::from_env()?.build()?;
/// let runner = Runner::new(stores, Arc::new(connector), RunnerConfig::default())?;
/// # let _ = runner;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct WhatsAppConnector {
    inner: Arc<Inner>,
}

struct Inner {
    config: WhatsAppConfig,
    /// Where incoming messages go before they are acknowledged, when the application set one.
    inbox: Option<Arc<dyn Inbox>>,
}

impl fmt::Debug for WhatsAppConnector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppConnector")
            .field("config", &self.inner.config)
            .field("inbox", &self.inner.inbox.is_some())
            .finish_non_exhaustive()
    }
}

/// The HTTP client handed to `whatsapp-rust`: it refuses every request. The version is
/// pinned, and pairing and keeping sessions alive need no HTTP; media transfers, which do,
/// are not this crate's business.
struct NoHttp;

#[async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, _request: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        Err(whatsapp_rust::anyhow::anyhow!(
            "HTTP is disabled in wa-pairing-whatsapp: the WhatsApp Web version is pinned in its configuration"
        ))
    }
}

impl WhatsAppConnector {
    /// Checks `config` ([`WhatsAppConfig::validate`]) and makes the connector; the same as
    /// [`WhatsAppConfig::build`].
    ///
    /// # Errors
    ///
    /// What [`WhatsAppConfig::validate`] refuses, and
    /// [`ErrorKind::InsecureServer`](crate::ErrorKind::InsecureServer) for a server off
    /// loopback in a build that skips certificate checks.
    pub fn new(config: &WhatsAppConfig) -> Result<Self, Error> {
        config.validate()?;
        check_server_url(&config.server_url)?;
        Ok(Self {
            inner: Arc::new(Inner {
                config: config.clone(),
                inbox: None,
            }),
        })
    }

    /// Hands every session's incoming messages to `inbox` before they are acknowledged to
    /// WhatsApp: at-least-once delivery that survives a crash (see [`Inbox`] for the
    /// contract). Without an inbox, messages are acknowledged before the application sees
    /// them ([`WhatsAppSession::events`](crate::WhatsAppSession::events) only): at most
    /// once.
    ///
    /// Sessions opened from then on use it; the events still carry every message too.
    #[must_use]
    pub fn with_inbox(self, inbox: impl Inbox) -> Self {
        Self {
            inner: Arc::new(Inner {
                config: self.inner.config.clone(),
                inbox: Some(Arc::new(inbox)),
            }),
        }
    }

    /// The configuration.
    pub fn config(&self) -> &WhatsAppConfig {
        &self.inner.config
    }

    fn props(&self) -> DevicePropsOverride {
        let display = self.inner.config.display;
        let platform = match display.browser {
            Browser::Chrome => PlatformType::CHROME,
            Browser::Edge => PlatformType::EDGE,
            Browser::Firefox => PlatformType::FIREFOX,
            Browser::Safari => PlatformType::SAFARI,
            Browser::Opera => PlatformType::OPERA,
        };
        DevicePropsOverride::new()
            .with_os(display.os.as_str())
            .with_platform_type(platform)
    }

    fn client_type(&self) -> CompanionWebClientType {
        match self.inner.config.display.browser {
            Browser::Chrome => CompanionWebClientType::Chrome,
            Browser::Edge => CompanionWebClientType::Edge,
            Browser::Firefox => CompanionWebClientType::Firefox,
            Browser::Safari => CompanionWebClientType::Safari,
            Browser::Opera => CompanionWebClientType::Opera,
        }
    }

    async fn prepare(
        &self,
        spec: &SessionSpec,
        shared: &Arc<SessionShared>,
    ) -> Result<WaBackend, ConnectorError> {
        let state = &spec.auth_state;
        let (device, fence) = (spec.device_id, spec.lease.fence);
        state.adopt_fence(device, fence).await?;
        let reporter = Arc::clone(shared);
        let backend = WaBackend::new(state.clone(), device, fence)
            .stop_writing_when(Arc::clone(&shared.logged_out))
            .quiet_when_closing(Arc::clone(&shared.closing))
            .on_undecryptable(move |e| {
            // Once: the session cannot go on without the state it needed.
            if !reporter.terminal.swap(true, Ordering::SeqCst) {
                warn!(%device, error = %e, "the client needed auth state this process's keys cannot open");
                reporter.send(SessionEvent::StateUnreadable {
                    reason: e.to_string(),
                });
            }
        });
        let server = self.inner.config.server_url.as_str();
        let bound = state.get(device, keys::SERVER).await?;
        if let Some(bound) = bound.as_deref().filter(|b| *b != server.as_bytes()) {
            return Err(other_server(&String::from_utf8_lossy(bound), server));
        }
        match spec.mode {
            SessionMode::PairWithCode | SessionMode::PairWithQr => {
                state.clear(device, fence).await?;
                state
                    .put(device, fence, keys::SERVER, server.as_bytes())
                    .await?;
            }
            SessionMode::Resume => {
                // Every stored value must open with this process's keys before WhatsApp is
                // dialled: a login that meets a value it cannot read stops anyway, after
                // logging the account in for nothing.
                if !backend
                    .check_resumable()
                    .await
                    .map_err(ConnectorError::from)?
                {
                    return Err(ConnectorError::new(
                        ConnectorErrorKind::NotLinked,
                        "no linked WhatsApp session is stored for this device: link it again",
                        Verdict::Permanent,
                    ));
                }
                if bound.is_none() {
                    // Stored before the server was recorded: it belongs to the server it
                    // logs in to now.
                    state
                        .put(device, fence, keys::SERVER, server.as_bytes())
                        .await?;
                }
            }
            _ => {
                return Err(ConnectorError::new(
                    ConnectorErrorKind::Configuration,
                    "this session mode is not supported by wa-pairing-whatsapp",
                    Verdict::Permanent,
                ));
            }
        }
        Ok(backend)
    }
}

#[async_trait]
impl Connector for WhatsAppConnector {
    async fn open(&self, spec: SessionSpec) -> Result<OpenedSession, ConnectorError> {
        let config = &self.inner.config;
        check_server_url(&config.server_url)?;
        let (tx, rx) = mpsc::unbounded();
        let shared = Arc::new(SessionShared {
            tx: Mutex::new(Some(tx)),
            last_code: Mutex::new(None),
            terminal: AtomicBool::new(false),
            closing: Arc::new(AtomicBool::new(false)),
            logged_out: Arc::new(AtomicBool::new(false)),
            app: Mutex::new(None),
            untrusted: tokio::sync::watch::Sender::new(None),
        });
        let backend = self.prepare(&spec, &shared).await?;
        let refused = Arc::clone(&shared);
        let server = config.server_url.clone();
        let on_refused: OnRefused = Arc::new(move || refused.server_refused(&server));

        let mut builder = Bot::builder()
            .with_backend(backend)
            .with_transport_factory(NoDelayTransport::new(config.server_url.clone(), on_refused))
            .with_http_client(NoHttp)
            .with_runtime(TokioRuntime)
            .with_version(config.web_version.triple())
            .with_device_props(self.props())
            .with_event_handler(Forwarder(shared.clone()));
        if let Some(name) = &config.push_name {
            builder = builder.with_push_name(name.clone());
        }
        if config.skip_history_sync {
            builder = builder.skip_history_sync();
        }
        if let Some(inbox) = &self.inner.inbox {
            builder = builder.with_inbound_durability_hook(InboxHook {
                inbox: Arc::clone(inbox),
                device: spec.device_id,
            });
        }
        let bot = builder.build().await.map_err(|e| {
            ConnectorError::from(
                Error::new(
                    ErrorKind::Client,
                    format!("the WhatsApp client could not start: {e}"),
                )
                .with_verdict(Verdict::Retry),
            )
        })?;
        let handle = bot.spawn();
        let client = handle.client();
        let app = Arc::new(WaApp::new(Arc::clone(&client)));
        *lock(&shared.app) = Some(app.events.clone());
        let (abort_tx, abort_rx) = oneshot::channel();
        let (done_tx, done_rx) = oneshot::channel();
        tokio::spawn(watch(handle, abort_rx, done_tx, shared.clone()));
        info!(device = %spec.device_id, mode = ?spec.mode, "WhatsApp session opened");
        let session = WaSession {
            client,
            app,
            shared,
            show_push_notification: config.show_push_notification,
            client_type: self.client_type(),
            close_timeout: config.close_timeout,
            stop: Mutex::new(Some((abort_tx, done_rx))),
        };
        // The runner records a device as linked (and a session as connected) when it hears
        // so; by then the client's linked state must be in the store, or an owner's stop that
        // revokes the lease at once (or a crash) would leave nothing to resume from. `then`
        // keeps the events in order.
        let persistence = session.client.persistence_manager();
        let keeper = Arc::new(
            WaBackend::new(
                Arc::clone(&spec.auth_state),
                spec.device_id,
                spec.lease.fence,
            )
            .stop_writing_when(Arc::clone(&session.shared.logged_out)),
        );
        let events = rx.then(move |event| {
            let (persistence, keeper) = (Arc::clone(&persistence), Arc::clone(&keeper));
            async move {
                match &event {
                    SessionEvent::Paired { .. } => keep_linked_state(&persistence, &keeper).await,
                    SessionEvent::Connected => {
                        if let Err(e) = persistence.flush().await {
                            warn!(error = %e, "could not save the client's state before reporting the session connected");
                        }
                    }
                    _ => {}
                }
                event
            }
        });
        Ok(OpenedSession {
            session: Box::new(session),
            events: Box::pin(events),
        })
    }
}

/// The device's state belongs to `bound`, not to `server`: what the operator must change.
fn other_server(bound: &str, server: &str) -> ConnectorError {
    ConnectorError::new(
        ConnectorErrorKind::OtherServer,
        format!(
            "this device's WhatsApp state belongs to the server at {bound}, and this instance is configured for {server}: serve it from an instance whose {} is {bound}, or unlink the device there and link it again here; it is left untouched",
            crate::SERVER_URL_ENV
        ),
        Verdict::Permanent,
    )
}

/// The client refused `server` as not WhatsApp's: what the operator must change.
fn untrusted_server(server: &str) -> ConnectorError {
    let fix = if crate::guard::server_certificates_verified() {
        "a simulator needs a build with the insecure-sim feature (loopback only); a real deployment must reach WhatsApp directly, not through a TLS-intercepting proxy"
    } else {
        "even this build, made with the insecure-sim feature to skip the certificate signatures, refused it: the server is neither WhatsApp's nor a faithful simulator"
    };
    ConnectorError::new(
        ConnectorErrorKind::UntrustedServer,
        format!(
            "the WhatsApp server at {server} did not prove it is WhatsApp's (the client refused its Noise certificate): {fix}"
        ),
        Verdict::Permanent,
    )
}

/// Makes sure the linked device is in the store before the runner hears of the link.
///
/// The client's own flush returns at once while its background saver is still writing (the
/// saver took the pending change first), and that write dies with the client if the client
/// is stopped meanwhile: so this reads the stored record back and, while it is not the
/// linked one, saves the client's current state itself. The client's current state always
/// holds the link once it reported pair-success; a write of an older state by the saver that
/// lands after this one is caught by the next read.
async fn keep_linked_state(
    persistence: &whatsapp_rust::store::persistence_manager::PersistenceManager,
    keeper: &WaBackend,
) {
    use wacore::store::traits::DeviceStore as _;
    if let Err(e) = persistence.flush().await {
        warn!(error = %e, "could not save the client's state before reporting the link");
    }
    for _ in 0..5 {
        match keeper.is_linked().await {
            Ok(true) => return,
            Ok(false) => {}
            Err(e) => {
                warn!(error = %e, "could not read back the client's linked state");
                return;
            }
        }
        let current = persistence.get_device_snapshot().to_serializable();
        if let Err(e) = keeper.save(&current).await {
            warn!(error = %e, "could not save the client's linked state before reporting the link");
            return;
        }
    }
    warn!(
        "the client's linked state did not stay in the store; the link may have to be made again"
    );
}

/// What the event handler, the watcher and the session share.
struct SessionShared {
    tx: Mutex<Option<mpsc::UnboundedSender<SessionEvent>>>,
    /// The last code the client announced and its remaining validity.
    last_code: Mutex<Option<(String, Duration)>>,
    /// A terminal event (logged out, replaced, banned, outdated, gave up) was sent.
    terminal: AtomicBool,
    /// The session was asked to close.
    closing: Arc<AtomicBool>,
    /// The companion was logged out (by us or from the phone): its state is dead, and the
    /// backend writes nothing more.
    logged_out: Arc<AtomicBool>,
    /// Where the application hears messages and receipts (set once the client exists).
    app: Mutex<Option<tokio::sync::broadcast::Sender<Arc<Event>>>>,
    /// Why the client refused the server as not WhatsApp's, once it did.
    untrusted: tokio::sync::watch::Sender<Option<ConnectorError>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl SessionShared {
    /// The client refused `server`'s handshake: wakes a [`Session::wait_ready`] with the
    /// reason, and ends a session that was live (the client would retry for ever). Our own
    /// close is not a refusal.
    fn server_refused(&self, server: &str) {
        if self.closing.load(Ordering::SeqCst) {
            return;
        }
        let error = untrusted_server(server);
        let first = self.untrusted.send_if_modified(|why| {
            if why.is_some() {
                return false;
            }
            *why = Some(error.clone());
            true
        });
        if !first {
            return;
        }
        // The operator's one line (the client's own retries stop with the session).
        error!(error = %error, "the WhatsApp server was refused as untrusted");
        if !self.terminal.swap(true, Ordering::SeqCst) {
            self.send(SessionEvent::GaveUp {
                reason: "the service's connection to WhatsApp is misconfigured (its operator has been told)".to_owned(),
            });
        }
    }

    fn send(&self, event: SessionEvent) {
        if let Some(tx) = lock(&self.tx).as_ref() {
            let _ = tx.unbounded_send(event);
        }
    }

    fn send_terminal(&self, event: SessionEvent) {
        self.terminal.store(true, Ordering::SeqCst);
        self.send(event);
    }

    fn close(&self) {
        lock(&self.tx).take();
    }
}

/// Waits for the client's run loop to end (or aborts it on request), then ends the event
/// stream, saying "gave up" first when nobody asked it to stop and nothing said why.
async fn watch(
    mut handle: BotHandle,
    abort: oneshot::Receiver<()>,
    done: oneshot::Sender<()>,
    shared: Arc<SessionShared>,
) {
    tokio::select! {
        () = &mut handle => {}
        r = abort => {
            if r.is_ok() {
                handle.abort();
            } else {
                (&mut handle).await;
            }
        }
    }
    if !shared.closing.load(Ordering::SeqCst) && !shared.terminal.load(Ordering::SeqCst) {
        shared.send_terminal(SessionEvent::GaveUp {
            reason: "the WhatsApp client stopped".to_owned(),
        });
    }
    shared.close();
    let _ = done.send(());
}

/// Turns the client's events into ours.
struct Forwarder(Arc<SessionShared>);

fn logged_out_reason(reason: ConnectFailureReason, on_connect: bool) -> String {
    match reason {
        ConnectFailureReason::AccountLocked => {
            "WhatsApp locked the account; unlock it on the phone, then link again".to_owned()
        }
        _ if on_connect => {
            "WhatsApp refused the stored session (the device was removed or its keys are no longer valid): link it again".to_owned()
        }
        _ => "the device was logged out (removed from Linked devices on the phone): link it again"
            .to_owned(),
    }
}

impl EventHandler for Forwarder {
    fn handle_event(&self, event: Arc<Event>) {
        let s = &self.0;
        if matches!(
            &*event,
            Event::Messages(_) | Event::Receipt(_) | Event::ServerAck(_)
        ) {
            if let Some(app) = lock(&s.app).as_ref() {
                let _ = app.send(event);
            }
            return;
        }
        match &*event {
            Event::PairingCode(p) => {
                *lock(&s.last_code) = Some((p.code.clone(), p.timeout));
            }
            Event::PairingCodeRefresh(_) => s.send(SessionEvent::CodeRefreshRequested),
            Event::PairingQrCode(q) => s.send(SessionEvent::QrCode {
                payload: q.code.clone(),
                valid_for: q.timeout,
            }),
            // The client gives up on its QR refs (60 s + 5 x 20 s) and closes the socket only
            // when no pairing code is outstanding on it; a code stays good past the refs, so
            // the exhaustion of refs during a code pairing is no failure.
            Event::PairingQrCodesExhausted(e) if e.disconnected => {
                s.send(SessionEvent::PairingFailed {
                    reason: "no QR code was scanned in time".to_owned(),
                });
            }
            Event::PairingQrCodesExhausted(_) => {
                debug!("QR refs exhausted while a pairing code is outstanding; still waiting");
            }
            Event::PairSuccess(p) => match PhoneNumber::from_stored_digits(&p.id.user) {
                Ok(phone) => s.send(SessionEvent::Paired { phone }),
                // WhatsApp addresses accounts by their E.164 digits; anything else is a
                // server this service does not understand.
                Err(e) => {
                    warn!(error = %e, "WhatsApp reported a linked account whose address is not a phone number");
                    s.send(SessionEvent::PairingFailed {
                        reason: "WhatsApp reported a linked number this service cannot read; ask for a new code".to_owned(),
                    });
                }
            },
            Event::PairError(p) => {
                debug!(error = %p.error, "pairing failed on the phone's side");
                s.send(SessionEvent::PairingFailed {
                    reason: "the phone could not complete linking; ask for a new code".to_owned(),
                });
            }
            Event::Connected(_) => s.send(SessionEvent::Connected),
            Event::Disconnected(d) => s.send(SessionEvent::Disconnected {
                reason: d.reason.to_string(),
            }),
            Event::LoggedOut(l) => {
                s.logged_out.store(true, Ordering::SeqCst);
                s.send_terminal(SessionEvent::LoggedOut {
                    reason: logged_out_reason(l.reason, l.on_connect),
                });
            }
            Event::StreamReplaced(_) => s.send_terminal(SessionEvent::Replaced),
            Event::TemporaryBan(b) => s.send_terminal(SessionEvent::TemporarilyBanned {
                until: Some(Utc::now() + b.expire),
            }),
            Event::ClientOutdated(_) => s.send_terminal(SessionEvent::ClientOutdated),
            Event::ConnectFailure(f) => match f.reason {
                r if r.should_reconnect() => {}
                ConnectFailureReason::TempBanned => {
                    s.send_terminal(SessionEvent::TemporarilyBanned { until: None });
                }
                r => s.send_terminal(SessionEvent::GaveUp {
                    reason: format!("WhatsApp refused the connection ({r:?})"),
                }),
            },
            _ => {}
        }
    }

    fn interest(&self) -> EventInterest {
        EventInterest::of(&[
            EventKind::PairingCode,
            EventKind::PairingCodeRefresh,
            EventKind::PairingQrCode,
            EventKind::PairingQrCodesExhausted,
            EventKind::PairSuccess,
            EventKind::PairError,
            EventKind::Connected,
            EventKind::Disconnected,
            EventKind::LoggedOut,
            EventKind::StreamReplaced,
            EventKind::TemporaryBan,
            EventKind::ClientOutdated,
            EventKind::ConnectFailure,
            // For the application (`WhatsAppSession::events`).
            EventKind::Messages,
            EventKind::Receipt,
            EventKind::ServerAck,
        ])
    }
}

type Stop = (oneshot::Sender<()>, oneshot::Receiver<()>);

/// One device's live client.
struct WaSession {
    client: Arc<Client>,
    /// What the application gets while the session is live (the runner's `LiveSession`).
    app: Arc<WaApp>,
    shared: Arc<SessionShared>,
    show_push_notification: bool,
    client_type: CompanionWebClientType,
    close_timeout: Duration,
    stop: Mutex<Option<Stop>>,
}

impl WaSession {
    async fn close(&self) {
        self.shared.closing.store(true, Ordering::SeqCst);
        let Some((abort, done)) = lock(&self.stop).take() else {
            return;
        };
        let graceful = tokio::time::timeout(self.close_timeout, async {
            self.client.disconnect().await;
        })
        .await
        .is_ok();
        if !graceful {
            warn!("the WhatsApp client did not stop in time; aborting it");
            let _ = abort.send(());
        }
        let mut done = done;
        if tokio::time::timeout(self.close_timeout, &mut done)
            .await
            .is_err()
        {
            warn!("the WhatsApp client's run loop did not end in time; aborting it");
            // The watcher may already have taken the abort channel's place; ending the
            // stream here keeps the contract either way.
            self.shared.close();
        }
    }
}

impl Drop for WaSession {
    fn drop(&mut self) {
        if lock(&self.stop).is_some() {
            self.shared.closing.store(true, Ordering::SeqCst);
            if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                let client = self.client.clone();
                runtime.spawn(async move { client.disconnect().await });
            }
        }
    }
}

#[async_trait]
impl Session for WaSession {
    async fn wait_ready(&self, timeout: Duration) -> Result<(), ConnectorError> {
        let mut untrusted = self.shared.untrusted.subscribe();
        let refused = async move {
            match untrusted.wait_for(Option::is_some).await {
                Ok(why) => why.clone(),
                Err(_) => None,
            }
        };
        tokio::select! {
            ready = self.client.wait_for_socket(timeout) => ready.map_err(|e| {
                ConnectorError::new(
                    ConnectorErrorKind::Timeout,
                    format!("the WhatsApp socket was not ready in time: {e}"),
                    Verdict::Retry,
                )
            }),
            Some(why) = refused => Err(why),
        }
    }

    async fn request_code(&self, phone: &PhoneNumber) -> Result<IssuedCode, ConnectorError> {
        let options = PairCodeOptions {
            phone_number: phone.digits().to_owned(),
            show_push_notification: self.show_push_notification,
            custom_code: None,
            platform_id: Some(self.client_type),
            display_os: None,
        };
        lock(&self.shared.last_code).take();
        let code = self
            .client
            .pair_with_code(options)
            .await
            .map_err(|e| classify_pair_error(&e))?;
        // The client announces the code with its remaining validity just before returning it.
        let validity = lock(&self.shared.last_code)
            .take()
            .filter(|(c, _)| *c == code)
            .map_or(WHATSAPP_CODE_VALIDITY, |(_, t)| t);
        let code = PairingCode::parse(&code).map_err(|_| {
            ConnectorError::new(
                ConnectorErrorKind::Other,
                "the WhatsApp client returned a pairing code outside WhatsApp's alphabet",
                Verdict::Permanent,
            )
        })?;
        Ok(IssuedCode::new(code, Utc::now(), validity))
    }

    async fn cancel_code(&self) -> Result<(), ConnectorError> {
        self.client.cancel_pair_code().await;
        Ok(())
    }

    async fn disconnect(&self) {
        self.close().await;
    }

    fn app_handle(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        Some(self.app.clone())
    }

    async fn logout(&self) -> Result<(), ConnectorError> {
        let connected = self.client.is_connected();
        // From here on the companion's state is dead: nothing more is written for it.
        self.shared.logged_out.store(true, Ordering::SeqCst);
        // Sends the removal when connected, then closes; the client reports LoggedOut.
        self.client.logout().await;
        self.close().await;
        if connected {
            Ok(())
        } else {
            Err(ConnectorError::new(
                ConnectorErrorKind::Connection,
                "not connected to WhatsApp, so the linked device could not be removed from the account: remove it on the phone (Linked devices)",
                Verdict::Retry,
            ))
        }
    }
}
