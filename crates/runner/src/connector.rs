//! The connector: how the runner reaches WhatsApp, kept small so it can be mocked and so the
//! runner compiles without the WhatsApp client.
//!
//! `wa-pairing-whatsapp` implements it with the real `whatsapp-rust` client; tests use the
//! [`mockall`] mocks behind the `mocks` feature.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;
use wa_pairing_code::IssuedCode;
use wa_pairing_phone::PhoneNumber;
use wa_pairing_retry::{Classify, Verdict};
use wa_pairing_store::{AuthStateStore, DeviceId, Lease, StoreError};

/// What the runner wants a session for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionMode {
    /// Link a new companion: start from empty auth state (the connector clears what is
    /// stored) and register a pairing code.
    PairWithCode,
    /// Link a new companion by QR: start from empty auth state and report each QR.
    PairWithQr,
    /// Log in again from the stored auth state (a linked device after a restart or takeover).
    Resume,
}

/// Everything a connector needs to open one device's session, the store its state lives in
/// included: the runner hands over the auth state of its own [`Stores`](wa_pairing_store::Stores)
/// with every session, so the state a client writes is always the state the runner wipes
/// after a logout or an unlink.
#[derive(Clone)]
#[non_exhaustive]
pub struct SessionSpec {
    /// The device.
    pub device_id: DeviceId,
    /// The lease the runner holds: auth-state writes carry its fence.
    pub lease: Lease,
    /// Pair or resume.
    pub mode: SessionMode,
    /// Where the device's auth state lives (sealed when the runner's stores have keys).
    pub auth_state: Arc<dyn AuthStateStore>,
}

impl SessionSpec {
    /// A spec for `lease`'s device in `mode`, its state in `auth_state`.
    pub fn new(lease: Lease, mode: SessionMode, auth_state: Arc<dyn AuthStateStore>) -> Self {
        Self {
            device_id: lease.device_id,
            lease,
            mode,
            auth_state,
        }
    }
}

impl fmt::Debug for SessionSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SessionSpec")
            .field("device_id", &self.device_id)
            .field("lease", &self.lease)
            .field("mode", &self.mode)
            .finish_non_exhaustive()
    }
}

/// What happens on a session, as the runner needs to know it.
///
/// `Debug` never shows codes or full numbers.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// WhatsApp asked for a fresh code (the phone said the code was mistyped too often, or the
    /// person asked for another): cancel the live one and request again at once.
    CodeRefreshRequested,
    /// A QR payload to show, valid for the given time (QR method).
    QrCode {
        /// The payload to draw.
        payload: String,
        /// How long it is shown before the next one.
        valid_for: Duration,
    },
    /// The phone accepted the companion: linking succeeded (the socket reconnects right after;
    /// that is expected).
    Paired {
        /// The linked account's number.
        phone: PhoneNumber,
    },
    /// Pairing failed on the phone's side (a wrong code after the last attempt, a bad
    /// signature...). The message is safe to show.
    PairingFailed {
        /// What went wrong.
        reason: String,
    },
    /// Logged in and ready: the session is live.
    Connected,
    /// The connection dropped unexpectedly; the client reconnects by itself.
    Disconnected {
        /// Why, if known.
        reason: String,
    },
    /// The client gave up reconnecting.
    GaveUp {
        /// Why.
        reason: String,
    },
    /// The companion was removed (from the phone, or the server refused the stored
    /// identity): the auth state is dead.
    LoggedOut {
        /// Why.
        reason: String,
    },
    /// Another connection for this account took over ("replaced"): stop, never reconnect.
    Replaced,
    /// WhatsApp banned the account temporarily.
    TemporarilyBanned {
        /// When the ban ends, if WhatsApp said.
        until: Option<DateTime<Utc>>,
    },
    /// WhatsApp refuses this client version: the service needs an update.
    ClientOutdated,
    /// The client needed stored auth state that this process's keys cannot open (a key id
    /// not configured, or the wrong key under an id). The session cannot go on here; the
    /// device is left untouched for an instance with the right keys.
    StateUnreadable {
        /// Which key id is missing or wrong (never a key).
        reason: String,
    },
}

impl fmt::Debug for SessionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::CodeRefreshRequested => f.write_str("CodeRefreshRequested"),
            Self::QrCode { valid_for, .. } => f
                .debug_struct("QrCode")
                .field("valid_for", valid_for)
                .finish_non_exhaustive(),
            Self::Paired { phone } => f
                .debug_struct("Paired")
                .field("phone", &phone.redacted().to_string())
                .finish(),
            Self::PairingFailed { reason } => f
                .debug_struct("PairingFailed")
                .field("reason", reason)
                .finish(),
            Self::Connected => f.write_str("Connected"),
            Self::Disconnected { reason } => f
                .debug_struct("Disconnected")
                .field("reason", reason)
                .finish(),
            Self::GaveUp { reason } => f.debug_struct("GaveUp").field("reason", reason).finish(),
            Self::LoggedOut { reason } => {
                f.debug_struct("LoggedOut").field("reason", reason).finish()
            }
            Self::Replaced => f.write_str("Replaced"),
            Self::TemporarilyBanned { until } => f
                .debug_struct("TemporarilyBanned")
                .field("until", until)
                .finish(),
            Self::ClientOutdated => f.write_str("ClientOutdated"),
            Self::StateUnreadable { reason } => f
                .debug_struct("StateUnreadable")
                .field("reason", reason)
                .finish(),
        }
    }
}

/// The events of one session, in order. Ends when the session is closed.
pub type SessionEvents = BoxStream<'static, SessionEvent>;

/// Opens sessions. One per process; cheap to share.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Connector: Send + Sync + 'static {
    /// Opens the socket for one device and starts its client. Returns at once with the
    /// session and its event stream; readiness is awaited with [`Session::wait_ready`].
    async fn open(&self, spec: SessionSpec) -> Result<OpenedSession, ConnectorError>;
}

/// A session and its events, from [`Connector::open`].
pub struct OpenedSession {
    /// The controls.
    pub session: Box<dyn Session>,
    /// The events.
    pub events: SessionEvents,
}

impl fmt::Debug for OpenedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpenedSession").finish_non_exhaustive()
    }
}

/// One device's live connection.
#[cfg_attr(feature = "mocks", mockall::automock)]
#[async_trait]
pub trait Session: Send + Sync + 'static {
    /// Waits until the socket can carry a pairing request (the Noise handshake is done), at
    /// most `timeout`.
    ///
    /// # Errors
    ///
    /// Not ready in time: a retryable [`ConnectorErrorKind::Timeout`] (or
    /// [`Connection`](ConnectorErrorKind::Connection)). A server the client cannot trust:
    /// a permanent [`ConnectorErrorKind::UntrustedServer`], as soon as the client refused it.
    async fn wait_ready(&self, timeout: Duration) -> Result<(), ConnectorError>;

    /// Asks WhatsApp for a pairing code for `phone`. Returns the code once the server accepted
    /// the request, with its validity. Refusals are classified ([`Classify`]): throttling
    /// carries the server's backoff; a code still outstanding is refused, never re-requested.
    async fn request_code(&self, phone: &PhoneNumber) -> Result<IssuedCode, ConnectorError>;

    /// Cancels the live code, if any (before requesting a fresh one).
    async fn cancel_code(&self) -> Result<(), ConnectorError>;

    /// Closes the socket for good (no reconnect). The stored auth state stays.
    async fn disconnect(&self);

    /// Removes the companion from the account (WhatsApp logout) and closes the socket.
    async fn logout(&self) -> Result<(), ConnectorError>;

    /// What the embedding application may use of this session while it is live (the
    /// WhatsApp connector offers its client), handed out through
    /// [`LiveSession::app`](crate::LiveSession::app). `None` (the default): nothing.
    fn app_handle(&self) -> Option<std::sync::Arc<dyn std::any::Any + Send + Sync>> {
        None
    }
}

/// What went wrong in a connector call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnectorErrorKind {
    /// WhatsApp refused the request with this code (400, 403, 429, 452, 500...).
    Refused {
        /// The server's code.
        code: u16,
    },
    /// A code is still live for this session: cancel it before asking again.
    CodeOutstanding,
    /// The number is not acceptable to WhatsApp.
    InvalidPhone,
    /// The socket is not ready, or the connection was lost.
    Connection,
    /// The server did not answer in time.
    Timeout,
    /// The stored auth state could not be read or written (includes a lost lease).
    Storage,
    /// No linked session is stored for the device (resume or unlink of a device that is not
    /// linked).
    NotLinked,
    /// The stored auth state is sealed with a key this process does not have: an operator's
    /// configuration problem. The device is left untouched for an instance that has the key.
    Unreadable,
    /// The configuration refuses this server (for example a non-loopback URL in a build that
    /// skips certificate checks).
    Configuration,
    /// The device's state belongs to another WhatsApp server than this instance's (linked,
    /// or pairing, with a simulator, and now met by an instance configured for WhatsApp, or
    /// the reverse): an operator's configuration problem. Nothing is dialled; the device is
    /// left untouched, like an [`Unreadable`](Self::Unreadable) one, for an instance
    /// configured for its server.
    OtherServer,
    /// The server did not prove it is WhatsApp's: the client refused its Noise certificate
    /// (a simulator met by a build that checks certificates, or a TLS-intercepting proxy in
    /// the way). An operator's setting to change; never retried. The WhatsApp connector logs one
    /// error line naming the server and the fix.
    UntrustedServer,
    /// Anything else.
    Other,
}

/// An error from a connector, with its retry verdict and, where there is one, the
/// underlying error as its [`source`](std::error::Error::source).
///
/// Messages are safe to show and to log: no codes, keys or full numbers.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct ConnectorError {
    kind: ConnectorErrorKind,
    message: String,
    verdict: Verdict,
    #[source]
    source: Option<std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>>,
}

impl ConnectorError {
    /// An error of `kind` with a message and a verdict.
    pub fn new(kind: ConnectorErrorKind, message: impl Into<String>, verdict: Verdict) -> Self {
        Self {
            kind,
            message: message.into(),
            verdict,
            source: None,
        }
    }

    /// Attaches the underlying error (its text must be free of secrets too).
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(std::sync::Arc::new(source));
        self
    }

    /// What went wrong.
    pub const fn kind(&self) -> ConnectorErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The server's backoff, for throttling refusals that carried one.
    pub const fn retry_after(&self) -> Option<Duration> {
        self.verdict.retry_after()
    }
}

impl Classify for ConnectorError {
    fn verdict(&self) -> Verdict {
        self.verdict
    }
}

impl From<StoreError> for ConnectorError {
    fn from(e: StoreError) -> Self {
        let verdict = e.verdict();
        let kind = if e.kind() == wa_pairing_store::ErrorKind::Undecryptable {
            ConnectorErrorKind::Unreadable
        } else {
            ConnectorErrorKind::Storage
        };
        Self::new(kind, e.to_string(), verdict).with_source(e)
    }
}
