//! One actor per claimed device: the pairing state machine and the connected session.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use futures::StreamExt as _;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};
use wa_pairing_code::IssuedCode;
use wa_pairing_phone::PhoneNumber;
use wa_pairing_retry::{Backoff, Classify as _, GiveUpReason, RetryPolicy, Verdict};
use wa_pairing_store::{
    ClaimedDevice, ConnectionMethod, Device, DeviceStatus, DeviceUpdate, Lease, StoreError, Stores,
};

use crate::config::RunnerConfig;
use crate::connector::{
    Connector, ConnectorErrorKind, OpenedSession, Session, SessionEvent, SessionEvents,
    SessionMode, SessionSpec,
};
use crate::live::{LiveSession, LiveSessions};
use crate::{messages, metrics};

/// What an actor shares with the runner.
pub(crate) struct Ctx {
    pub(crate) stores: Stores,
    pub(crate) connector: Arc<dyn Connector>,
    pub(crate) config: RunnerConfig,
    pub(crate) live: LiveSessions,
}

/// Why an actor ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The device reached a state that needs no worker; the lease should be released.
    Finished,
    /// The lease is gone: another instance or the owner has the device. Do not release.
    LeaseLost,
    /// Shutdown: the session was closed; the lease should be released.
    Stopped,
    /// The store kept failing; release so another attempt (here or elsewhere) starts fresh.
    StoreFailed,
    /// The auth state is sealed with a key this process does not have (why, without
    /// secrets): nothing was written; release for an instance with the right keys.
    Unreadable(String),
    /// The actor panicked (set by the runner, never returned by an actor).
    Panicked,
}

/// Stops the current step: the actor ends with this exit.
struct Stop(Exit);

type Step<T> = Result<T, Stop>;

struct Actor {
    ctx: Arc<Ctx>,
    lease: Lease,
    device: Device,
    cancel: CancellationToken,
    started: Instant,
}

/// Runs the actor for `claimed`; a session to log in again waits for `turn` first (its lease
/// is renewed meanwhile, and a cancel ends the wait).
pub(crate) async fn run(
    ctx: Arc<Ctx>,
    claimed: ClaimedDevice,
    cancel: CancellationToken,
    turn: Option<Instant>,
) -> Exit {
    let redacted = claimed
        .device
        .phone_for_pairing
        .as_ref()
        .or(claimed.device.phone_number.as_ref())
        .map(|p| p.redacted().to_string())
        .unwrap_or_default();
    let span = info_span!(
        "device",
        device = %claimed.device.id,
        fence = claimed.lease.fence.0,
        phone = %redacted,
    );
    let actor = Actor {
        ctx,
        lease: claimed.lease,
        device: claimed.device,
        cancel,
        started: Instant::now(),
    };
    async move {
        if let Some(at) = turn {
            let queued = Instant::now();
            metrics::resume_queued();
            let cancelled = tokio::select! {
                () = tokio::time::sleep_until(at) => false,
                () = actor.cancel.cancelled() => true,
            };
            metrics::resume_started(queued.elapsed());
            if cancelled {
                debug!("stopped before its turn to log in");
                return Exit::Stopped;
            }
        }
        let exit = match actor.main().await {
            Ok(exit) | Err(Stop(exit)) => exit,
        };
        debug!(exit = ?exit, "actor ended");
        exit
    }
    .instrument(span)
    .await
}

impl Actor {
    async fn main(mut self) -> Step<Exit> {
        match self.device.status {
            DeviceStatus::Connected => self.resume().await,
            DeviceStatus::Connecting | DeviceStatus::WaitingPairing => {
                match self.device.connection_method {
                    ConnectionMethod::Pairing => self.pair_with_code().await,
                    ConnectionMethod::Qr => self.pair_with_qr().await,
                }
            }
            DeviceStatus::Unlinking => self.unlink().await,
            // Claims never return these; nothing to do.
            DeviceStatus::Disconnected | DeviceStatus::Failed => Ok(Exit::Finished),
        }
    }

    /// Now, on the stores' clock.
    fn now(&self) -> DateTime<Utc> {
        self.ctx.stores.clock().now()
    }

    // ------------------------------------------------------------------ store writes

    /// Writes under the lease, retrying transient store failures briefly.
    async fn write(&mut self, update: DeviceUpdate) -> Step<()> {
        let policy = RetryPolicy::default()
            .max_attempts(5)
            .backoff(Backoff::exponential(
                Duration::from_millis(200),
                Duration::from_secs(2),
            ))
            .idempotent(true)
            .attempt_timeout(Duration::from_secs(10));
        let store = Arc::clone(self.ctx.stores.devices());
        let lease = self.lease.clone();
        let result = policy
            .run_notify(
                |_| store.update(&lease, update.clone()),
                |e| warn!(attempt = e.attempt, error = %e.failure, "device write failed; retrying"),
            )
            .await;
        match result {
            Ok(device) => {
                self.device = device;
                Ok(())
            }
            Err(e) if e.last.error().is_some_and(StoreError::is_lease_lost) => {
                info!("lease lost; stopping");
                Err(Stop(Exit::LeaseLost))
            }
            Err(e) => {
                warn!(error = %e, "device write failed; giving the device up");
                Err(Stop(Exit::StoreFailed))
            }
        }
    }

    /// Ends the device in `failed` with a message (and a retry-after time).
    async fn fail(
        &mut self,
        outcome: &'static str,
        message: String,
        retry_after: Option<DateTime<Utc>>,
    ) -> Step<Exit> {
        info!(outcome, "device failed");
        metrics::outcome(outcome);
        let mut update = DeviceUpdate::status(DeviceStatus::Failed)
            .error(message)
            .clear_pairing_code()
            .clear_qr_code();
        if let Some(at) = retry_after {
            update = update.retry_after(at);
        }
        self.write(update).await?;
        self.uncache().await;
        Ok(Exit::Finished)
    }

    async fn uncache(&self) {
        if let Some(cache) = self.ctx.stores.code_cache()
            && let Err(e) = cache.delete(self.device.id).await
        {
            metrics::cache_failure("delete");
            debug!(error = %e, "code cache delete failed (ignored)");
        }
    }

    // ------------------------------------------------------------------ connecting

    /// Opens a session and waits until it is ready, a few times.
    async fn connect(&mut self, mode: SessionMode) -> Step<Result<OpenedSession, String>> {
        let attempts = self.ctx.config.connect_attempts;
        let ready_timeout = self.ctx.config.ready_timeout;
        let mut last = String::new();
        for attempt in 1..=attempts {
            let spec = SessionSpec::new(
                self.lease.clone(),
                mode,
                Arc::clone(self.ctx.stores.auth_state()),
            );
            let opened = tokio::select! {
                () = self.cancel.cancelled() => return Err(Stop(Exit::Stopped)),
                r = self.ctx.connector.open(spec) => r,
            };
            match opened {
                Ok(opened) => {
                    let ready = tokio::select! {
                        () = self.cancel.cancelled() => {
                            opened.session.disconnect().await;
                            return Err(Stop(Exit::Stopped));
                        }
                        r = opened.session.wait_ready(ready_timeout) => r,
                    };
                    match ready {
                        Ok(()) => return Ok(Ok(opened)),
                        Err(e) if e.kind() == ConnectorErrorKind::UntrustedServer => {
                            opened.session.disconnect().await;
                            // The connector logged what to change for the operator; the owner
                            // reads that the service cannot reach WhatsApp. Never retried.
                            debug!(error = %e, "the WhatsApp server is not trusted");
                            return Ok(Err(messages::UNTRUSTED_SERVER.to_owned()));
                        }
                        Err(e) => {
                            debug!(error = %e, "the WhatsApp socket was not ready");
                            opened.session.disconnect().await;
                            last = messages::unreachable(ready_timeout);
                        }
                    }
                }
                Err(e) if e.kind() == ConnectorErrorKind::Unreadable => {
                    warn!(error = %e, "the stored auth state cannot be opened with this instance's keys; leaving the device untouched for an instance that has them");
                    metrics::outcome("unreadable");
                    return Err(Stop(Exit::Unreadable(e.message().to_owned())));
                }
                Err(e) if e.kind() == ConnectorErrorKind::OtherServer => {
                    warn!(error = %e, "the device belongs to another WhatsApp server; leaving it untouched for an instance configured for that server");
                    metrics::outcome("other_server");
                    return Err(Stop(Exit::Unreadable(e.message().to_owned())));
                }
                Err(e) if e.verdict().is_retryable() => last = messages::unreachable(ready_timeout),
                Err(e) => {
                    warn!(error = %e, kind = ?e.kind(), "the session could not be opened");
                    return Ok(Err(messages::cannot_resume(&e)));
                }
            }
            warn!(attempt, "WhatsApp socket not ready");
            if attempt < attempts {
                self.pause(Duration::from_secs(u64::from(attempt) * 2))
                    .await?;
            }
        }
        Ok(Err(last))
    }

    async fn pause(&self, d: Duration) -> Step<()> {
        tokio::select! {
            () = self.cancel.cancelled() => Err(Stop(Exit::Stopped)),
            () = tokio::time::sleep(d) => Ok(()),
        }
    }

    // ------------------------------------------------------------------ pairing by code

    /// The number to link: stored typed (checked when the owner gave it); a row whose
    /// number could not be read back holds none.
    fn phone(&self) -> Result<PhoneNumber, String> {
        self.device
            .phone_for_pairing
            .clone()
            .ok_or_else(|| messages::NO_PHONE.to_owned())
    }

    async fn pair_with_code(&mut self) -> Step<Exit> {
        let phone = match self.phone() {
            Ok(p) => p,
            Err(message) => return self.fail("invalid_phone", message, None).await,
        };
        if self.device.status == DeviceStatus::WaitingPairing {
            info!("re-issuing an interrupted pairing with a fresh code");
        }
        let opened = match self.connect(SessionMode::PairWithCode).await? {
            Ok(o) => o,
            Err(message) => return self.fail("connect_failed", message, None).await,
        };
        let OpenedSession {
            session,
            mut events,
        } = opened;
        let result = self.code_loop(&*session, &mut events, &phone).await;
        match result {
            Ok(Paired::Yes) => self.connected_loop(&*session, &mut events, false).await,
            Ok(Paired::No(exit)) => {
                session.disconnect().await;
                Ok(exit)
            }
            Err(stop) => {
                session.disconnect().await;
                Err(stop)
            }
        }
    }

    /// Requests a code (under the budget and the retry policy) and stores it.
    async fn issue_code(
        &mut self,
        session: &dyn Session,
        phone: &PhoneNumber,
    ) -> Step<Result<IssuedCode, Exit>> {
        if let Some(budget) = self.ctx.stores.budget() {
            let acquired = match self.ctx.stores.budget_key(phone).await {
                Ok(key) => budget.try_acquire(&key, &self.ctx.config.budget).await,
                Err(e) => Err(e),
            };
            match acquired {
                Ok(decision) if decision.retry_after().is_none() => {}
                Ok(decision) => {
                    let retry_after = decision.retry_after().unwrap_or_default();
                    let until = self.now() + to_delta(retry_after);
                    let exit = self
                        .fail("budget", messages::throttled(until, true), Some(until))
                        .await?;
                    return Ok(Err(exit));
                }
                Err(e) => {
                    metrics::cache_failure("budget");
                    warn!(error = %e, "pairing budget unavailable; allowing the request");
                }
            }
        }
        let policy = self.ctx.config.code_retry.clone();
        let requested = Instant::now();
        let result = tokio::select! {
            () = self.cancel.cancelled() => return Err(Stop(Exit::Stopped)),
            r = policy.run_notify(
                |_| session.request_code(phone),
                |e| {
                    metrics::code_retry();
                    warn!(attempt = e.attempt, delay_ms = u64::try_from(e.delay.as_millis()).unwrap_or(u64::MAX), error = %e.failure, "code request failed; retrying");
                },
            ) => r,
        };
        let issued = match result {
            Ok(code) => match self.ctx.config.code_lifetime {
                Some(lifetime) if code.validity() > lifetime => {
                    IssuedCode::new(code.code, code.issued_at, lifetime)
                }
                _ => code,
            },
            Err(err) => {
                let exit = match err.reason {
                    GiveUpReason::Throttled { retry_after } => {
                        let until = self.now() + to_delta(retry_after);
                        self.fail("throttled", messages::throttled(until, false), Some(until))
                            .await?
                    }
                    GiveUpReason::AttemptsExhausted | GiveUpReason::DeadlineExceeded => {
                        self.fail("code_request_failed", messages::gave_up(err.attempts), None)
                            .await?
                    }
                    _ => match err.into_error() {
                        Some(e) if e.verdict() == Verdict::Permanent => {
                            self.fail("refused", messages::refused(&e), None).await?
                        }
                        Some(e) => {
                            self.fail("code_request_failed", messages::refused(&e), None)
                                .await?
                        }
                        None => {
                            self.fail("code_request_failed", messages::gave_up(1), None)
                                .await?
                        }
                    },
                };
                return Ok(Err(exit));
            }
        };
        metrics::time_to_code(requested.elapsed());
        self.write(
            DeviceUpdate::status(DeviceStatus::WaitingPairing)
                .pairing_code(issued)
                .clear_error()
                .clear_retry_after(),
        )
        .await?;
        if let Some(cache) = self.ctx.stores.code_cache()
            && let Err(e) = cache.put(self.device.id, &issued).await
        {
            metrics::cache_failure("put");
            warn!(error = %e, "code cache put failed (the store has the code)");
        }
        info!(code = %issued.code.redacted(), valid_s = issued.validity().as_secs(), "pairing code issued");
        Ok(Ok(issued))
    }

    async fn code_loop(
        &mut self,
        session: &dyn Session,
        events: &mut SessionEvents,
        phone: &PhoneNumber,
    ) -> Step<Paired> {
        let mut refreshes_left = self.ctx.config.code_refreshes;
        let mut issued = match self.issue_code(session, phone).await? {
            Ok(c) => c,
            Err(exit) => return Ok(Paired::No(exit)),
        };
        loop {
            let expires_in = issued.remaining(self.now());
            let event = tokio::select! {
                () = self.cancel.cancelled() => return Err(Stop(Exit::Stopped)),
                () = tokio::time::sleep(expires_in) => None,
                e = events.next() => Some(e),
            };
            let reissue = match event {
                None => {
                    // Expired without pairing.
                    if refreshes_left == 0 {
                        let exit = self
                            .fail("expired", messages::EXPIRED.to_owned(), None)
                            .await?;
                        return Ok(Paired::No(exit));
                    }
                    refreshes_left -= 1;
                    info!(refreshes_left, "code expired; issuing a fresh one");
                    true
                }
                Some(Some(SessionEvent::CodeRefreshRequested)) => {
                    info!("WhatsApp asked for a fresh code");
                    true
                }
                Some(Some(SessionEvent::Paired { phone: linked })) => {
                    self.on_paired(&linked).await?;
                    return Ok(Paired::Yes);
                }
                Some(Some(SessionEvent::PairingFailed { reason })) => {
                    if refreshes_left == 0 {
                        let exit = self
                            .fail("pairing_failed", messages::pairing_failed(&reason), None)
                            .await?;
                        return Ok(Paired::No(exit));
                    }
                    refreshes_left -= 1;
                    true
                }
                Some(Some(SessionEvent::Disconnected { reason })) => {
                    // The code died with the socket; the client reconnects by itself.
                    info!(%reason, "socket dropped while a code was shown; re-issuing once ready");
                    if let Err(e) = session.wait_ready(self.ctx.config.ready_timeout).await {
                        let message = if e.kind() == ConnectorErrorKind::UntrustedServer {
                            messages::UNTRUSTED_SERVER.to_owned()
                        } else {
                            messages::unreachable(self.ctx.config.ready_timeout)
                        };
                        let exit = self.fail("connect_failed", message, None).await?;
                        return Ok(Paired::No(exit));
                    }
                    true
                }
                Some(Some(SessionEvent::QrCode { .. } | SessionEvent::Connected)) => false,
                Some(Some(SessionEvent::GaveUp { reason })) => {
                    let exit = self
                        .fail("connect_failed", messages::connection_lost(&reason), None)
                        .await?;
                    return Ok(Paired::No(exit));
                }
                Some(Some(other)) => return self.terminal(other).await.map(Paired::No),
                Some(None) => {
                    let exit = self
                        .fail(
                            "connect_failed",
                            messages::connection_lost("the session closed"),
                            None,
                        )
                        .await?;
                    return Ok(Paired::No(exit));
                }
            };
            if reissue {
                // Never two live codes: cancel before asking again.
                if let Err(e) = session.cancel_code().await {
                    debug!(error = %e, "cancel before refresh failed (continuing)");
                }
                issued = match self.issue_code(session, phone).await? {
                    Ok(c) => c,
                    Err(exit) => return Ok(Paired::No(exit)),
                };
            }
        }
    }

    async fn on_paired(&mut self, linked: &PhoneNumber) -> Step<()> {
        let now = self.now();
        metrics::time_to_link(self.started.elapsed());
        metrics::outcome("linked");
        info!(phone = %linked.redacted(), "linked");
        self.write(
            DeviceUpdate::status(DeviceStatus::Connected)
                .phone_number(linked.clone())
                .clear_pairing_code()
                .clear_qr_code()
                .clear_error()
                .clear_retry_after()
                .last_connected_at(now),
        )
        .await?;
        self.uncache().await;
        Ok(())
    }

    // ------------------------------------------------------------------ pairing by QR

    async fn pair_with_qr(&mut self) -> Step<Exit> {
        let opened = match self.connect(SessionMode::PairWithQr).await? {
            Ok(o) => o,
            Err(message) => return self.fail("connect_failed", message, None).await,
        };
        let OpenedSession {
            session,
            mut events,
        } = opened;
        let result = async {
            loop {
                let event = tokio::select! {
                    () = self.cancel.cancelled() => return Err(Stop(Exit::Stopped)),
                    e = events.next() => e,
                };
                match event {
                    Some(SessionEvent::QrCode { payload, .. }) => {
                        self.write(
                            DeviceUpdate::status(DeviceStatus::WaitingPairing)
                                .qr_code(payload)
                                .clear_error(),
                        )
                        .await?;
                    }
                    Some(SessionEvent::Paired { phone }) => {
                        self.on_paired(&phone).await?;
                        return Ok(Paired::Yes);
                    }
                    Some(
                        SessionEvent::Disconnected { .. } | SessionEvent::CodeRefreshRequested,
                    ) => {}
                    Some(SessionEvent::PairingFailed { reason }) => {
                        let exit = self
                            .fail("pairing_failed", messages::pairing_failed(&reason), None)
                            .await?;
                        return Ok(Paired::No(exit));
                    }
                    Some(other) => return self.terminal(other).await.map(Paired::No),
                    None => {
                        let exit = self
                            .fail("expired", messages::EXPIRED.to_owned(), None)
                            .await?;
                        return Ok(Paired::No(exit));
                    }
                }
            }
        }
        .await;
        match result {
            Ok(Paired::Yes) => self.connected_loop(&*session, &mut events, false).await,
            Ok(Paired::No(exit)) => {
                session.disconnect().await;
                Ok(exit)
            }
            Err(stop) => {
                session.disconnect().await;
                Err(stop)
            }
        }
    }

    // ------------------------------------------------------------------ connected

    async fn resume(&mut self) -> Step<Exit> {
        let opened = match self.connect(SessionMode::Resume).await? {
            Ok(o) => o,
            Err(message) => {
                metrics::outcome("resume_failed");
                let exit = self.end_disconnected(message).await?;
                return Ok(exit);
            }
        };
        metrics::outcome("resumed");
        let OpenedSession {
            session,
            mut events,
        } = opened;
        self.connected_loop(&*session, &mut events, true).await
    }

    async fn end_disconnected(&mut self, message: String) -> Step<Exit> {
        self.write(
            DeviceUpdate::status(DeviceStatus::Disconnected)
                .error(message)
                .clear_pairing_code()
                .clear_qr_code(),
        )
        .await?;
        Ok(Exit::Finished)
    }

    /// The live session: kept up until it ends or the lease is lost. From its first
    /// `Connected` it is offered to the application ([`LiveSessions`]), as `resumed` or
    /// just linked, until it ends.
    async fn connected_loop(
        &mut self,
        session: &dyn Session,
        events: &mut SessionEvents,
        resumed: bool,
    ) -> Step<Exit> {
        metrics::session_opened();
        // Cancelled with the actor (lease lost, shutdown) and when the session ends here.
        let live = self.cancel.child_token();
        let mut offered = false;
        let result = async {
            loop {
                let event = tokio::select! {
                    () = self.cancel.cancelled() => return Err(Stop(Exit::Stopped)),
                    e = events.next() => e,
                };
                match event {
                    Some(SessionEvent::Connected) => {
                        debug!("session connected");
                        let now = self.now();
                        self.write(
                            DeviceUpdate::status(DeviceStatus::Connected).last_connected_at(now),
                        )
                        .await?;
                        if !offered {
                            offered = true;
                            self.ctx.live.insert(LiveSession::new(
                                self.lease.device_id,
                                self.lease.fence,
                                resumed,
                                session.app_handle(),
                                live.clone(),
                            ));
                        }
                    }
                    Some(SessionEvent::Disconnected { reason }) => {
                        metrics::reconnect();
                        info!(%reason, "connection dropped; the client reconnects");
                    }
                    Some(
                        SessionEvent::Paired { .. }
                        | SessionEvent::QrCode { .. }
                        | SessionEvent::CodeRefreshRequested
                        | SessionEvent::PairingFailed { .. },
                    ) => {}
                    Some(SessionEvent::GaveUp { reason }) => {
                        metrics::outcome("connection_lost");
                        return self
                            .end_disconnected(messages::connection_lost(&reason))
                            .await;
                    }
                    Some(other) => return self.terminal(other).await,
                    None => {
                        metrics::outcome("connection_lost");
                        return self
                            .end_disconnected(messages::connection_lost("the session closed"))
                            .await;
                    }
                }
            }
        }
        .await;
        live.cancel();
        metrics::session_closed();
        session.disconnect().await;
        result
    }

    /// Events that end a device whatever it was doing.
    async fn terminal(&mut self, event: SessionEvent) -> Step<Exit> {
        match event {
            SessionEvent::LoggedOut { reason } => {
                metrics::outcome("logged_out");
                info!(%reason, "logged out; wiping auth state");
                self.wipe().await?;
                self.write(
                    DeviceUpdate::status(DeviceStatus::Disconnected)
                        .error(messages::logged_out(&reason))
                        .clear_phone_number()
                        .clear_pairing_code()
                        .clear_qr_code(),
                )
                .await?;
                Ok(Exit::Finished)
            }
            SessionEvent::StateUnreadable { reason } => {
                warn!(%reason, "the client needed auth state this instance's keys cannot open; leaving the device untouched for an instance that has them");
                metrics::outcome("unreadable");
                Ok(Exit::Unreadable(reason))
            }
            SessionEvent::Replaced => {
                metrics::outcome("replaced");
                info!("replaced by another connection; stopping for good");
                self.end_disconnected(messages::REPLACED.to_owned()).await
            }
            SessionEvent::TemporarilyBanned { until } => {
                self.fail("banned", messages::banned(until), until).await
            }
            SessionEvent::ClientOutdated => {
                self.fail("outdated", messages::OUTDATED.to_owned(), None)
                    .await
            }
            other => {
                debug!(?other, "unexpected event; ignoring");
                Ok(Exit::Finished)
            }
        }
    }
}

impl Actor {
    /// Deletes the device's auth state under the lease and seals it
    /// ([`AuthStateStore::seal`](wa_pairing_store::AuthStateStore::seal)): nothing this
    /// lease's session still writes (a write in flight, the client's last flush) can land
    /// after the wipe, however late it comes.
    async fn wipe(&self) -> Step<()> {
        match self
            .ctx
            .stores
            .auth_state()
            .seal(self.device.id, self.lease.fence)
            .await
        {
            Ok(()) => Ok(()),
            Err(e) if e.is_lease_lost() => Err(Stop(Exit::LeaseLost)),
            Err(e) => {
                warn!(error = %e, "could not wipe the auth state");
                Err(Stop(Exit::StoreFailed))
            }
        }
    }

    // ------------------------------------------------------------------ unlinking

    /// The owner asked to unlink: log in from the stored state, remove the companion from the
    /// account, wipe the auth state, and leave the device `disconnected`. When WhatsApp cannot
    /// be reached (or nothing is stored), the state is wiped anyway and the owner is told to
    /// remove the device on the phone too.
    async fn unlink(&mut self) -> Step<Exit> {
        info!("unlinking");
        let removed = match self.connect(SessionMode::Resume).await? {
            Ok(opened) => self.remove_companion(opened).await?,
            Err(_) => Removal::NotReached,
        };
        self.wipe().await?;
        let mut update = DeviceUpdate::status(DeviceStatus::Disconnected)
            .clear_phone_number()
            .clear_pairing_code()
            .clear_qr_code();
        update = match removed {
            Removal::Removed => update.clear_error(),
            Removal::NotReached if self.device.phone_number.is_none() => update.clear_error(),
            Removal::NotReached => update.error(messages::UNLINKED_HERE_ONLY),
        };
        info!(?removed, "unlinked");
        metrics::outcome("unlinked");
        self.write(update).await?;
        self.uncache().await;
        Ok(Exit::Finished)
    }

    /// Waits for the resumed session to log in, then asks WhatsApp to remove the companion.
    async fn remove_companion(&mut self, opened: OpenedSession) -> Step<Removal> {
        let OpenedSession {
            session,
            mut events,
        } = opened;
        let deadline = tokio::time::sleep(self.ctx.config.unlink_timeout);
        tokio::pin!(deadline);
        let logged_in = loop {
            let event = tokio::select! {
                () = self.cancel.cancelled() => {
                    session.disconnect().await;
                    return Err(Stop(Exit::Stopped));
                }
                () = &mut deadline => break false,
                e = events.next() => e,
            };
            match event {
                Some(SessionEvent::Connected) => break true,
                // Already removed on the phone or refused: nothing left to remove.
                Some(SessionEvent::LoggedOut { .. }) => {
                    session.disconnect().await;
                    return Ok(Removal::Removed);
                }
                Some(SessionEvent::StateUnreadable { reason }) => {
                    session.disconnect().await;
                    return Err(Stop(Exit::Unreadable(reason)));
                }
                Some(
                    SessionEvent::GaveUp { .. }
                    | SessionEvent::Replaced
                    | SessionEvent::TemporarilyBanned { .. }
                    | SessionEvent::ClientOutdated,
                )
                | None => break false,
                Some(_) => {}
            }
        };
        if !logged_in {
            session.disconnect().await;
            return Ok(Removal::NotReached);
        }
        match session.logout().await {
            Ok(()) => Ok(Removal::Removed),
            Err(e) => {
                warn!(error = %e, "WhatsApp did not confirm the removal of the companion");
                Ok(Removal::NotReached)
            }
        }
    }
}

/// What an unlink achieved on WhatsApp's side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// The companion is gone from the account.
    Removed,
    /// WhatsApp could not be told; the phone may still list the device.
    NotReached,
}

enum Paired {
    Yes,
    No(Exit),
}

fn to_delta(d: Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}
