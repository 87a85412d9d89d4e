//! The simulator's public vocabulary: configuration, events, faults, counters, errors.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// How the simulator runs.
///
/// # Default
/// Binds `127.0.0.1:0` (a free loopback port), sends the 515 stream error 120 ms after a
/// pair-success was acknowledged, does not record stanzas.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_sim::SimConfig;
///
/// let config = SimConfig::default()
///     .bind("127.0.0.1:0".parse().unwrap())
///     .restart_delay(Duration::from_millis(50))
///     .record_stanzas(true);
/// assert!(config.validate().is_ok());
/// assert!(SimConfig::default().bind("0.0.0.0:8080".parse().unwrap()).validate().is_err());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SimConfig {
    pub(crate) bind: SocketAddr,
    pub(crate) restart_delay: Duration,
    pub(crate) record_stanzas: bool,
    pub(crate) qr_refs: usize,
    pub(crate) qr_first_ref: Duration,
    pub(crate) qr_ref: Duration,
    pub(crate) foreign_certificate: bool,
    pub(crate) offline_expiry: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            bind: SocketAddr::from(([127, 0, 0, 1], 0)),
            restart_delay: Duration::from_millis(120),
            record_stanzas: false,
            qr_refs: 6,
            qr_first_ref: Duration::from_secs(60),
            qr_ref: Duration::from_secs(20),
            foreign_certificate: false,
            offline_expiry: Duration::from_secs(30 * 24 * 3600),
        }
    }
}

impl SimConfig {
    /// How long a message waits in the offline queue of a companion that is not connected
    /// before the server drops it (WhatsApp keeps undelivered messages about 30 days; the
    /// default).
    #[must_use]
    pub fn offline_expiry(mut self, d: Duration) -> Self {
        self.offline_expiry = d;
        self
    }

    /// The address to listen on; must be a loopback address.
    #[must_use]
    pub fn bind(mut self, addr: SocketAddr) -> Self {
        self.bind = addr;
        self
    }

    /// How long after the pair-success acknowledgement the server sends `515` and closes (the
    /// real server waits about 100 to 150 ms; sooner costs the client one harmless extra
    /// reconnect).
    #[must_use]
    pub fn restart_delay(mut self, d: Duration) -> Self {
        self.restart_delay = d;
        self
    }

    /// How many QR refs a registration connection gets in its `<pair-device>` (default 6, as
    /// the real server sends).
    #[must_use]
    pub fn qr_refs(mut self, n: usize) -> Self {
        self.qr_refs = n.max(1);
        self
    }

    /// How long the first QR ref stays valid (default 60 s, as on the real service). A scan
    /// of an expired ref fails; once the last ref expires, a registration connection with no
    /// pairing code outstanding is closed.
    #[must_use]
    pub fn qr_first_ref(mut self, d: Duration) -> Self {
        self.qr_first_ref = d;
        self
    }

    /// How long each later QR ref stays valid (default 20 s, as on the real service).
    #[must_use]
    pub fn qr_ref(mut self, d: Duration) -> Self {
        self.qr_ref = d;
        self
    }

    /// Presents a certificate chain whose leaf names another key than the one the server
    /// proves in the Noise handshake, as any server that is not WhatsApp's does (a
    /// TLS-intercepting proxy, a simulator met by a client that checks certificates). Every
    /// client refuses such a handshake, even one built to skip the chain's signatures, so a
    /// test can show what an operator sees when the client meets a server it cannot trust.
    #[must_use]
    pub fn foreign_certificate(mut self, on: bool) -> Self {
        self.foreign_certificate = on;
        self
    }

    /// Records every stanza the clients send, for debugging ([`Sim::stanzas`](crate::Sim::stanzas)).
    #[must_use]
    pub fn record_stanzas(mut self, on: bool) -> Self {
        self.record_stanzas = on;
        self
    }

    /// Checks the configuration: the simulator only ever listens on loopback.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.bind.ip().is_loopback() {
            Ok(())
        } else {
            Err(SimError::NotLoopback)
        }
    }
}

/// How a pair-code request is refused (the server's `<error code=.. text=..>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Refusal {
    /// 400 `bad-request`: the real server's per-number throttle.
    BadRequest {
        /// The `backoff` attribute in seconds, if any.
        backoff: Option<Duration>,
    },
    /// 403 `forbidden`.
    Forbidden,
    /// 429 `rate-overlimit`.
    RateOverlimit {
        /// The `backoff` attribute in seconds, if any.
        backoff: Option<Duration>,
    },
    /// 452 `feature-not-available`.
    FeatureNotAvailable,
    /// 500 `internal-server-error`.
    InternalServerError,
}

impl Refusal {
    /// The code and text the server sends.
    pub const fn wire(self) -> (u16, &'static str) {
        match self {
            Self::BadRequest { .. } => (400, "bad-request"),
            Self::Forbidden => (403, "forbidden"),
            Self::RateOverlimit { .. } => (429, "rate-overlimit"),
            Self::FeatureNotAvailable => (452, "feature-not-available"),
            Self::InternalServerError => (500, "internal-server-error"),
        }
    }

    pub(crate) const fn backoff(self) -> Option<Duration> {
        match self {
            Self::BadRequest { backoff } | Self::RateOverlimit { backoff } => backoff,
            _ => None,
        }
    }
}

/// A point in the protocol where a fault can be injected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Stage {
    /// Before answering the client's Noise hello.
    Handshake,
    /// Before answering a pair-code request.
    CodeRequest,
    /// Before the phone's `primary_hello` reaches the companion.
    PrimaryHello,
    /// Before sending pair-success.
    PairSuccess,
    /// Before sending `<success>` on a login connection.
    LoginSuccess,
}

/// A stream error the server can send to a connected companion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum StreamError {
    /// 515: restart now (sent after every pairing).
    Restart,
    /// 516: logged out.
    LoggedOut,
    /// 409 with `<conflict type="replaced"/>`: another connection took over.
    Replaced,
    /// 429: too many connections, reconnect later.
    TooMany,
    /// 503: service unavailable, reconnect later.
    Unavailable,
}

impl StreamError {
    pub(crate) const fn code(self) -> u16 {
        match self {
            Self::Restart => 515,
            Self::LoggedOut => 516,
            Self::Replaced => 409,
            Self::TooMany => 429,
            Self::Unavailable => 503,
        }
    }
}

/// How a login is refused (`<failure reason=..>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LoginFailure {
    /// 401: the companion is not (or no longer) linked.
    LoggedOut,
    /// 402: the account is temporarily banned.
    TemporarilyBanned {
        /// When the ban ends, from now.
        expires_in: Duration,
    },
    /// 405: the client version is refused.
    ClientOutdated,
}

impl LoginFailure {
    pub(crate) const fn reason(self) -> u16 {
        match self {
            Self::LoggedOut => 401,
            Self::TemporarilyBanned { .. } => 402,
            Self::ClientOutdated => 405,
        }
    }
}

/// Something that happened in the simulator. Tests and the demo wait on these instead of
/// sleeping. `Debug` shows phone numbers redacted and never shows codes.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimEvent {
    /// A WebSocket connection completed the Noise handshake.
    Connected {
        /// The connection's number.
        conn: u64,
    },
    /// A connection closed.
    Disconnected {
        /// The connection's number.
        conn: u64,
    },
    /// A companion asked for a pairing code for this phone and it was accepted.
    CodeRequested {
        /// The phone (E.164 digits).
        phone: String,
        /// How many code requests this phone has seen, this one included.
        count: u32,
    },
    /// A code request was refused by an injected fault.
    CodeRefused {
        /// The phone.
        phone: String,
        /// The server's code.
        code: u16,
    },
    /// The person typed a code on the phone.
    CodeEntered {
        /// The phone.
        phone: String,
        /// Whether it was the right code.
        ok: bool,
    },
    /// The companion was linked.
    Paired {
        /// The phone.
        phone: String,
        /// The companion's device number.
        device: u32,
    },
    /// A linked companion logged in.
    LoggedIn {
        /// The phone.
        phone: String,
        /// The device number.
        device: u32,
    },
    /// A login was refused.
    LoginRefused {
        /// The phone.
        phone: String,
        /// The failure reason code.
        reason: u16,
    },
    /// A stream error was sent.
    StreamErrorSent {
        /// The connection.
        conn: u64,
        /// The code.
        code: u16,
    },
    /// The phone removed a linked device.
    DeviceRemoved {
        /// The phone.
        phone: String,
        /// The device number.
        device: u32,
    },
    /// The phone sent a freshly linked companion the account's app-state sync keys.
    KeysShared {
        /// The phone.
        phone: String,
        /// The device number.
        device: u32,
    },
    /// The phone sent a freshly linked companion the initial history-sync notification
    /// (after the key share).
    HistorySent {
        /// The phone.
        phone: String,
        /// The device number.
        device: u32,
    },
    /// A phone decrypted a message a companion sent it ([`SimPhone::inbox`](crate::SimPhone::inbox)
    /// has the text).
    MessageReceived {
        /// The receiving phone.
        phone: String,
        /// The message id.
        id: String,
    },
    /// A companion sent a receipt for a message a phone sent
    /// ([`SimPhone::receipts`](crate::SimPhone::receipts) has it).
    ReceiptReceived {
        /// The phone whose message it is.
        phone: String,
        /// The message id (the first, when it covers several).
        id: String,
    },
}

pub(crate) fn redact(phone: &str) -> String {
    let n = phone.len();
    if n < 8 {
        return "*".repeat(n);
    }
    format!("{}{}{}", &phone[..5], "*".repeat(n - 9), &phone[n - 4..])
}

impl fmt::Debug for SimEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Connected { conn } => write!(f, "Connected({conn})"),
            Self::Disconnected { conn } => write!(f, "Disconnected({conn})"),
            Self::CodeRequested { phone, count } => {
                write!(f, "CodeRequested({}, #{count})", redact(phone))
            }
            Self::CodeRefused { phone, code } => {
                write!(f, "CodeRefused({}, {code})", redact(phone))
            }
            Self::CodeEntered { phone, ok } => write!(f, "CodeEntered({}, ok={ok})", redact(phone)),
            Self::Paired { phone, device } => write!(f, "Paired({}:{device})", redact(phone)),
            Self::LoggedIn { phone, device } => write!(f, "LoggedIn({}:{device})", redact(phone)),
            Self::LoginRefused { phone, reason } => {
                write!(f, "LoginRefused({}, {reason})", redact(phone))
            }
            Self::StreamErrorSent { conn, code } => write!(f, "StreamErrorSent({conn}, {code})"),
            Self::DeviceRemoved { phone, device } => {
                write!(f, "DeviceRemoved({}:{device})", redact(phone))
            }
            Self::HistorySent { phone, device } => {
                write!(f, "HistorySent({}:{device})", redact(phone))
            }
            Self::KeysShared { phone, device } => {
                write!(f, "KeysShared({}:{device})", redact(phone))
            }
            Self::MessageReceived { phone, id } => {
                write!(f, "MessageReceived({}, {id})", redact(phone))
            }
            Self::ReceiptReceived { phone, id } => {
                write!(f, "ReceiptReceived({}, {id})", redact(phone))
            }
        }
    }
}

/// How a copy of a message is encrypted (`<enc type>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EncType {
    /// `pkmsg`: a Signal pre-key message, which also starts the session at the recipient.
    PreKey,
    /// `msg`: a Signal message over an established session.
    Message,
}

impl EncType {
    /// The `type` attribute of `<enc>`.
    pub const fn wire(self) -> &'static str {
        match self {
            Self::PreKey => "pkmsg",
            Self::Message => "msg",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "pkmsg" => Some(Self::PreKey),
            "msg" => Some(Self::Message),
            _ => None,
        }
    }
}

/// A text message a simulated phone received from a companion, decrypted.
///
/// `Debug` shows the phone numbers redacted and the text's length only.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimMessage {
    /// The message id the companion chose.
    pub id: String,
    /// The sending account's phone number.
    pub from: String,
    /// The sending companion's device number.
    pub from_device: u32,
    /// The chat: the other party's phone number (for a copy the account's own companion sent
    /// to its phone, the number it was sent to).
    pub chat: String,
    /// The text (`conversation` or an extended text), `None` for anything else.
    pub text: Option<String>,
    /// How the copy was encrypted: a companion's first messages to a phone it has no session
    /// with are `pkmsg`s until the phone answers.
    pub enc: EncType,
}

impl fmt::Debug for SimMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimMessage")
            .field("id", &self.id)
            .field(
                "from",
                &format_args!("{}:{}", redact(&self.from), self.from_device),
            )
            .field("chat", &format_args!("{}", redact(&self.chat)))
            .field("text_len", &self.text.as_ref().map(String::len))
            .field("enc", &self.enc)
            .finish()
    }
}

/// A receipt a companion sent for a message a simulated phone sent it (`<receipt>`).
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimReceipt {
    /// The ids it covers.
    pub ids: Vec<String>,
    /// The account whose companion sent it.
    pub from: String,
    /// The companion's device number.
    pub from_device: u32,
    /// The receipt's `type`: `None` for delivered; `read`, `sender`, `retry`, ...
    pub kind: Option<String>,
}

impl fmt::Debug for SimReceipt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimReceipt")
            .field("ids", &self.ids)
            .field(
                "from",
                &format_args!("{}:{}", redact(&self.from), self.from_device),
            )
            .field("kind", &self.kind)
            .finish()
    }
}

/// A snapshot of what the simulator has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SimCounters {
    /// WebSocket connections accepted.
    pub connections: u64,
    /// Connections open now.
    pub open_connections: u64,
    /// Pair-code requests per phone (refused ones included).
    pub code_requests: BTreeMap<String, u32>,
    /// Completed pairings.
    pub pairings: u64,
    /// Successful logins.
    pub logins: u64,
    /// The most successful logins within any one second (a sliding window): how fast
    /// companions logged in at their busiest, which a takeover must keep under its pace.
    pub max_logins_per_second: u64,
    /// Successful logins per wall-clock second (Unix time, whole seconds; the last hour
    /// that had logins), so a test can see the pace of one period, a takeover say.
    pub logins_by_second: BTreeMap<u64, u64>,
    /// App-state key shares the phones sent to freshly linked companions.
    pub key_shares: u64,
    /// Initial history-sync notifications the phones sent to freshly linked companions
    /// (each right after the key share).
    pub history_notifications: u64,
    /// Messages kept for a companion that was not connected when they arrived.
    pub offline_queued: u64,
    /// Messages delivered from the offline queue when a companion logged in (again, for one
    /// it had not acknowledged).
    pub offline_delivered: u64,
    /// Messages the offline queue dropped: expired, or the oldest of a full queue
    /// ([`OFFLINE_QUEUE_LIMIT`](crate::OFFLINE_QUEUE_LIMIT) per companion).
    pub offline_dropped: u64,
    /// The most logged-in connections ever open at once for one account, per phone.
    pub max_concurrent_sessions: BTreeMap<String, u32>,
    /// `<message>` stanzas companions sent (each acknowledged at once).
    pub messages_from_companions: u64,
    /// Copies of those the phones decrypted.
    pub messages_decrypted: u64,
    /// Copies the phones could not decrypt or decode.
    pub messages_undecryptable: u64,
    /// Retry receipts the phones sent for copies they could not decrypt (each asks the
    /// sending companion for the message again, with keys for a new session).
    pub retry_receipts: u64,
    /// Copies relayed to the recipients' or the sender's other live companions.
    pub messages_relayed: u64,
    /// Copies of messages typed on the phones, sent to live companions.
    pub messages_from_phones: u64,
    /// Receipts the companions sent.
    pub receipts: u64,
    /// Device-list and LID queries (`usync`).
    pub usync_queries: u64,
    /// Pre-key bundles handed out (phones' and companions').
    pub bundles_served: u64,
    /// Companions removed from their accounts: by their own client (a logout, as an unlink
    /// does) or by the person on the phone.
    pub device_removals: u64,
}

impl SimCounters {
    /// Pair-code requests seen for `phone`.
    pub fn code_requests_for(&self, phone: &str) -> u32 {
        self.code_requests.get(phone).copied().unwrap_or(0)
    }

    /// The most concurrent logged-in sessions seen for `phone`'s account.
    pub fn max_sessions_for(&self, phone: &str) -> u32 {
        self.max_concurrent_sessions
            .get(phone)
            .copied()
            .unwrap_or(0)
    }

    /// The most concurrent logged-in sessions seen for any account.
    pub fn max_sessions_any(&self) -> u32 {
        self.max_concurrent_sessions
            .values()
            .copied()
            .max()
            .unwrap_or(0)
    }
}

/// What went wrong in the simulator.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// The configured address is not loopback.
    #[error(
        "the simulator only listens on loopback (127.0.0.0/8 or ::1): it skips WhatsApp's certificate checks and must never be reachable from outside"
    )]
    NotLoopback,
    /// Binding the listener failed.
    #[error("the simulator could not listen: {0}")]
    Bind(#[source] std::io::Error),
    /// No companion has a live code for this phone.
    #[error("no companion has asked for a pairing code for this phone: request a code first")]
    NoCodeRequested,
    /// The typed code does not match the companion's code.
    #[error("the code typed on the phone is not the companion's code")]
    WrongCode,
    /// The companion did not answer in time.
    #[error("the companion did not answer {0} in time")]
    Timeout(&'static str),
    /// The companion's connection closed.
    #[error("the companion's connection closed")]
    ConnectionClosed,
    /// The phone has no such linked device.
    #[error("the phone has no linked device {0}")]
    NoSuchDevice(u32),
    /// A message typed on a phone has no companion to go to: neither the recipient nor the
    /// sending account has a linked companion (online or not; one that is not online gets it
    /// from the offline queue when it logs in).
    #[error("neither the recipient nor the sender has a linked companion to receive the message")]
    NoCompanion,
    /// The phone received no message with this id (from a companion), so it cannot read it.
    #[error("the phone received no message {0} from a companion")]
    NoSuchMessage(String),
    /// A protocol step failed.
    #[error("protocol error: {0}")]
    Protocol(String),
}
