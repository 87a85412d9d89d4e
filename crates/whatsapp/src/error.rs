//! The crate's one error type.

use std::fmt;

use wa_pairing_retry::{Classify, Verdict};
use wa_pairing_runner::{ConnectorError, ConnectorErrorKind};
use wa_pairing_store::StoreError;

/// What kind of failure an [`Error`] is: match on this, not on the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The configuration is not acceptable (a malformed server URL, an unrecognised device
    /// display, an invalid version...). The message says how to fix it.
    Configuration,
    /// This build skips WhatsApp's server certificate checks (feature `insecure-sim`, or
    /// `whatsapp-rust/danger-skip-cert-chain-verify` enabled elsewhere in the build) and the
    /// server URL is not on this machine's loopback interface.
    InsecureServer,
    /// The auth-state store refused or failed (includes a lost lease).
    Storage,
    /// Stored client state could not be decoded.
    Corrupt,
    /// Stored client state is sealed with a key this process does not have (an operator's
    /// configuration problem; the state itself is intact).
    Undecryptable,
    /// The WhatsApp client could not be built or started.
    Client,
}

impl ErrorKind {
    /// A stable lower-case name for logs and metrics.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Configuration => "configuration",
            Self::InsecureServer => "insecure_server",
            Self::Storage => "storage",
            Self::Corrupt => "corrupt",
            Self::Undecryptable => "undecryptable",
            Self::Client => "client",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from the WhatsApp bridge.
///
/// Messages say what happened and what to do; they never contain keys, auth state, pairing
/// codes or full phone numbers.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
#[non_exhaustive]
pub struct Error {
    kind: ErrorKind,
    message: String,
    verdict: Verdict,
    #[source]
    source: Option<Box<dyn std::error::Error + Send + Sync + 'static>>,
}

impl Error {
    /// An error of `kind` with a message; permanent.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            verdict: Verdict::Permanent,
            source: None,
        }
    }

    pub(crate) fn configuration(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Configuration, message)
    }

    pub(crate) fn corrupt(what: &str) -> Self {
        Self::new(
            ErrorKind::Corrupt,
            format!(
                "the stored WhatsApp client state ({what}) could not be decoded: the device must be linked again"
            ),
        )
    }

    pub(crate) fn with_verdict(mut self, verdict: Verdict) -> Self {
        self.verdict = verdict;
        self
    }

    pub(crate) fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        self.source = Some(Box::new(source));
        self
    }

    /// What went wrong.
    pub const fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl Classify for Error {
    fn verdict(&self) -> Verdict {
        self.verdict
    }
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        let verdict = e.verdict();
        let kind = if e.kind() == wa_pairing_store::ErrorKind::Undecryptable {
            ErrorKind::Undecryptable
        } else {
            ErrorKind::Storage
        };
        Self::new(kind, format!("the auth-state store failed: {e}"))
            .with_verdict(verdict)
            .with_source(e)
    }
}

impl From<Error> for ConnectorError {
    fn from(e: Error) -> Self {
        let kind = match e.kind {
            ErrorKind::Configuration | ErrorKind::InsecureServer => {
                ConnectorErrorKind::Configuration
            }
            ErrorKind::Storage | ErrorKind::Corrupt => ConnectorErrorKind::Storage,
            ErrorKind::Undecryptable => ConnectorErrorKind::Unreadable,
            ErrorKind::Client => ConnectorErrorKind::Other,
        };
        let (message, verdict) = (e.message.clone(), e.verdict);
        Self::new(kind, message, verdict).with_source(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_pairing_store::ErrorKind as StoreKind;

    #[test]
    fn store_errors_keep_their_verdict() {
        let e = Error::from(StoreError::new(StoreKind::Unavailable, "down"));
        assert_eq!(e.kind(), ErrorKind::Storage);
        assert_eq!(e.verdict(), Verdict::Retry);
        let e = Error::from(StoreError::lease_lost());
        assert_eq!(e.verdict(), Verdict::Permanent);
        let c = ConnectorError::from(e);
        assert_eq!(c.kind(), ConnectorErrorKind::Storage);
    }

    #[test]
    fn insecure_server_is_a_configuration_refusal() {
        let c = ConnectorError::from(Error::new(ErrorKind::InsecureServer, "no"));
        assert_eq!(c.kind(), ConnectorErrorKind::Configuration);
        assert_eq!(c.verdict(), Verdict::Permanent);
    }
}
