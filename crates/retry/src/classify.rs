use std::fmt;
use std::time::Duration;

/// What a caller should do about an error: the one classification every error in wa-pairing
/// gives.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_retry::Verdict;
///
/// assert!(Verdict::Retry.is_retryable());
/// assert!(Verdict::Throttled { retry_after: Some(Duration::from_secs(60)) }.is_retryable());
/// assert!(!Verdict::Permanent.is_retryable());
/// assert!(!Verdict::Exhausted.is_retryable());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Verdict {
    /// Transient: connection lost, a timeout on an idempotent step, a server error (500).
    /// Trying again soon may work.
    Retry,
    /// The other side is limiting us. Try again no sooner than `retry_after` when it is given;
    /// otherwise wait minutes, not seconds.
    Throttled {
        /// The wait the server asked for, if it said.
        retry_after: Option<Duration>,
    },
    /// Trying again cannot help (bad input, forbidden, a feature the account lacks). This is
    /// the default for anything not known to be transient.
    Permanent,
    /// Retries were already made and used up below; nothing above may retry again.
    Exhausted,
}

impl Verdict {
    /// Whether another attempt may succeed: `Retry` and `Throttled`.
    pub const fn is_retryable(self) -> bool {
        matches!(self, Self::Retry | Self::Throttled { .. })
    }

    /// The server's requested wait, for `Throttled` verdicts that carry one.
    pub const fn retry_after(self) -> Option<Duration> {
        match self {
            Self::Throttled { retry_after } => retry_after,
            _ => None,
        }
    }

    /// A stable lower-case name (`retry`, `throttled`, `permanent`, `exhausted`) for metrics
    /// labels and logs.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Retry => "retry",
            Self::Throttled { .. } => "throttled",
            Self::Permanent => "permanent",
            Self::Exhausted => "exhausted",
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Throttled {
                retry_after: Some(d),
            } => write!(f, "throttled (retry after {} s)", d.as_secs()),
            other => f.write_str(other.as_str()),
        }
    }
}

/// An error that knows what should be done about it.
///
/// Every error type in wa-pairing implements this, so the runner decides with one rule
/// instead of reading error text.
///
/// ```
/// use wa_pairing_retry::{Classify, Verdict};
///
/// #[derive(Debug)]
/// enum MyError { ConnectionReset, BadInput }
///
/// impl Classify for MyError {
///     fn verdict(&self) -> Verdict {
///         match self {
///             MyError::ConnectionReset => Verdict::Retry,
///             MyError::BadInput => Verdict::Permanent,
///         }
///     }
/// }
/// assert!(MyError::ConnectionReset.verdict().is_retryable());
/// ```
pub trait Classify {
    /// What to do about this error.
    fn verdict(&self) -> Verdict;
}

impl<T: Classify + ?Sized> Classify for &T {
    fn verdict(&self) -> Verdict {
        (**self).verdict()
    }
}

impl<T: Classify + ?Sized> Classify for Box<T> {
    fn verdict(&self) -> Verdict {
        (**self).verdict()
    }
}

impl<T: Classify + ?Sized> Classify for std::sync::Arc<T> {
    fn verdict(&self) -> Verdict {
        (**self).verdict()
    }
}

impl Classify for Verdict {
    fn verdict(&self) -> Verdict {
        *self
    }
}

impl Classify for std::io::Error {
    /// I/O errors that mean "the connection or the other side hiccupped" retry; the rest
    /// (not found, permission denied, invalid input...) are permanent.
    fn verdict(&self) -> Verdict {
        use std::io::ErrorKind as K;
        match self.kind() {
            K::ConnectionRefused
            | K::ConnectionReset
            | K::ConnectionAborted
            | K::NotConnected
            | K::BrokenPipe
            | K::TimedOut
            | K::Interrupted
            | K::UnexpectedEof
            | K::WouldBlock
            | K::AddrNotAvailable
            | K::HostUnreachable
            | K::NetworkUnreachable
            | K::NetworkDown
            | K::ResourceBusy => Verdict::Retry,
            _ => Verdict::Permanent,
        }
    }
}

impl Classify for tokio::time::error::Elapsed {
    /// A timeout retries. Callers whose step is not idempotent must wrap the timeout in their
    /// own error and classify it themselves.
    fn verdict(&self) -> Verdict {
        Verdict::Retry
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_classify() {
        let cases = [
            (std::io::ErrorKind::ConnectionRefused, Verdict::Retry),
            (std::io::ErrorKind::ConnectionReset, Verdict::Retry),
            (std::io::ErrorKind::TimedOut, Verdict::Retry),
            (std::io::ErrorKind::UnexpectedEof, Verdict::Retry),
            (std::io::ErrorKind::PermissionDenied, Verdict::Permanent),
            (std::io::ErrorKind::InvalidInput, Verdict::Permanent),
            (std::io::ErrorKind::NotFound, Verdict::Permanent),
        ];
        for (kind, verdict) in cases {
            assert_eq!(std::io::Error::from(kind).verdict(), verdict, "{kind:?}");
        }
    }

    #[test]
    fn display_and_names() {
        let t = Verdict::Throttled {
            retry_after: Some(Duration::from_secs(90)),
        };
        assert_eq!(t.to_string(), "throttled (retry after 90 s)");
        assert_eq!(t.retry_after(), Some(Duration::from_secs(90)));
        assert_eq!(Verdict::Retry.retry_after(), None);
        assert_eq!(Verdict::Exhausted.to_string(), "exhausted");
        assert_eq!(
            Verdict::Throttled { retry_after: None }.to_string(),
            "throttled"
        );
    }
}
