//! The store's one error type.

use std::fmt;
use std::time::Duration;

use wa_pairing_retry::{Classify, Verdict};

/// What kind of failure a [`StoreError`] is: match on this, not on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The device (or key) does not exist.
    NotFound,
    /// The write conflicts with what is stored (a duplicate id, a concurrent change).
    Conflict,
    /// The caller's lease fence is stale: another runner took the device over (or the owner
    /// changed its course). Never retryable: stop working on the device.
    LeaseLost,
    /// The status change is not allowed ([`DeviceStatus::check_transition`](crate::DeviceStatus::check_transition)).
    InvalidTransition,
    /// The input is not acceptable; the message says how to fix it.
    InvalidInput,
    /// WhatsApp throttled pairing for this number; try again after the time given.
    Throttled,
    /// The backend cannot be reached or is overloaded.
    Unavailable,
    /// The backend did not answer in time.
    Timeout,
    /// Stored data could not be read back (damaged, unknown format).
    Corrupt,
    /// Stored auth state is sealed with a key this process does not have (its key id is not
    /// configured, or the key under that id is not the one it was sealed with). An
    /// operator's configuration problem, never proof that the session is dead: the value is
    /// intact and opens where the right key is configured.
    Undecryptable,
    /// A limit on what one owner may have was reached (devices per user).
    QuotaExceeded,
    /// The owner started pairing too often (the owner's pace,
    /// [`DEFAULT_PAIRING_STARTS_PER_MINUTE`](crate::DEFAULT_PAIRING_STARTS_PER_MINUTE));
    /// try again after the time given.
    RateLimited,
    /// The credentials are wrong or lack a permission.
    PermissionDenied,
    /// The backend is misconfigured (missing table, wrong schema version...).
    Configuration,
    /// Anything else the backend reported.
    Backend,
}

impl ErrorKind {
    /// A stable lower-case name for logs, metrics and API error codes.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "not_found",
            Self::Conflict => "conflict",
            Self::LeaseLost => "lease_lost",
            Self::InvalidTransition => "invalid_transition",
            Self::InvalidInput => "invalid_input",
            Self::Throttled => "throttled",
            Self::Unavailable => "unavailable",
            Self::Timeout => "timeout",
            Self::Corrupt => "corrupt",
            Self::Undecryptable => "undecryptable",
            Self::QuotaExceeded => "quota_exceeded",
            Self::RateLimited => "rate_limited",
            Self::PermissionDenied => "permission_denied",
            Self::Configuration => "configuration",
            Self::Backend => "backend",
        }
    }

    /// The verdict an error of this kind gets unless its backend says otherwise:
    /// `Unavailable` and `Timeout` retry, everything else is permanent.
    pub const fn default_verdict(self) -> Verdict {
        match self {
            Self::Unavailable | Self::Timeout => Verdict::Retry,
            _ => Verdict::Permanent,
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a store.
///
/// Carries a [`kind`](Self::kind) to match on, a message a person can act on, a retry
/// [`Verdict`] (via [`Classify`]), and optionally the backend's own error as its source.
/// Messages never contain keys, tokens, pairing codes, auth-state contents or full phone
/// numbers.
///
/// ```
/// use wa_pairing_retry::{Classify, Verdict};
/// use wa_pairing_store::{ErrorKind, StoreError};
///
/// let err = StoreError::new(ErrorKind::Unavailable, "PostgreSQL is not reachable: check DATABASE_URL");
/// assert_eq!(err.verdict(), Verdict::Retry);
/// let lost = StoreError::lease_lost();
/// assert_eq!(lost.kind(), ErrorKind::LeaseLost);
/// assert_eq!(lost.verdict(), Verdict::Permanent);
/// ```
pub struct StoreError {
    kind: ErrorKind,
    message: String,
    verdict: Verdict,
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl StoreError {
    /// An error of `kind` with a message (what happened and what to do).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            verdict: kind.default_verdict(),
            source: None,
        }
    }

    /// The device does not exist.
    pub fn not_found(what: impl fmt::Display) -> Self {
        Self::new(ErrorKind::NotFound, format!("{what} does not exist"))
    }

    /// The caller's fence is stale.
    pub fn lease_lost() -> Self {
        Self::new(
            ErrorKind::LeaseLost,
            "the lease on this device is no longer held (another runner took it over, or the owner changed it): stop working on the device",
        )
    }

    /// WhatsApp throttled pairing; try again after `retry_after`.
    pub fn throttled(message: impl Into<String>, retry_after: Option<Duration>) -> Self {
        Self::new(ErrorKind::Throttled, message).with_verdict(Verdict::Throttled { retry_after })
    }

    /// The owner started pairing too often: the same words for every backend, and the
    /// time until the next start is allowed.
    ///
    /// ```
    /// use std::time::Duration;
    /// use wa_pairing_retry::Classify;
    /// use wa_pairing_store::{ErrorKind, StoreError};
    ///
    /// let err = StoreError::rate_limited(Duration::from_secs(9));
    /// assert_eq!(err.kind(), ErrorKind::RateLimited);
    /// assert_eq!(err.to_string(), "too many pairing actions: try again in 9 s");
    /// assert_eq!(err.verdict().retry_after(), Some(Duration::from_secs(9)));
    /// ```
    pub fn rate_limited(wait: Duration) -> Self {
        let secs = wait.as_secs_f64().ceil().max(1.0);
        // Whole seconds, at least one: what a person can act on.
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let secs = secs as u64;
        Self::new(
            ErrorKind::RateLimited,
            format!("too many pairing actions: try again in {secs} s"),
        )
        .with_verdict(Verdict::Throttled {
            retry_after: Some(Duration::from_secs(secs)),
        })
    }

    /// A companion is already stored for device `other`: the same words for every backend
    /// (the SQL function `wa_companion_register` writes them too).
    pub fn companion_elsewhere(other: impl fmt::Display) -> Self {
        Self::new(
            ErrorKind::Conflict,
            format!(
                "this WhatsApp companion is already stored for device {other}: one companion runs on one device only (two would log each other out); unlink or delete that device first"
            ),
        )
    }

    /// Overrides the retry verdict (a backend classifier knows better than the kind).
    #[must_use]
    pub fn with_verdict(mut self, verdict: Verdict) -> Self {
        self.verdict = verdict;
        self
    }

    /// Attaches the backend's own error. Its text must not contain secrets either.
    #[must_use]
    pub fn with_source(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// The kind of failure.
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message, without the source's.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this is [`ErrorKind::NotFound`].
    pub fn is_not_found(&self) -> bool {
        self.kind == ErrorKind::NotFound
    }

    /// Whether this is [`ErrorKind::LeaseLost`].
    pub fn is_lease_lost(&self) -> bool {
        self.kind == ErrorKind::LeaseLost
    }
}

impl Classify for StoreError {
    fn verdict(&self) -> Verdict {
        self.verdict
    }
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("StoreError");
        d.field("kind", &self.kind)
            .field("message", &self.message)
            .field("verdict", &self.verdict);
        if let Some(s) = &self.source {
            d.field("source", &s.to_string());
        }
        d.finish()
    }
}

impl std::error::Error for StoreError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl From<crate::TransitionError> for StoreError {
    fn from(e: crate::TransitionError) -> Self {
        Self::new(ErrorKind::InvalidTransition, e.to_string())
    }
}

/// `Result` with [`StoreError`].
pub type StoreResult<T> = Result<T, StoreError>;
