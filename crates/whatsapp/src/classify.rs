//! `whatsapp-rust`'s pairing-code refusals mapped onto the one classification.

use std::time::Duration;

use wa_pairing_retry::Verdict;
use wa_pairing_runner::{ConnectorError, ConnectorErrorKind};
use whatsapp_rust::IqError;
use whatsapp_rust::pair_code::{PairCodeError, PairError};

/// Classifies a refused or failed pairing-code request (the table "WhatsApp's pair-code
/// refusals" of `wa-pairing-retry`).
///
/// The server's code is read from the refusal itself (not from the code and text pair, which
/// the client classifies only when both agree):
///
/// | refusal | kind | verdict |
/// |---|---|---|
/// | 400 bad-request (also the per-number limit) | `Refused { code: 400 }` | `Throttled`, with the server's backoff if given |
/// | 429 rate-overlimit | `Refused { code: 429 }` | `Throttled`, with the server's backoff if given |
/// | 403 forbidden | `Refused { code: 403 }` | `Permanent` |
/// | 452 feature-not-available | `Refused { code: 452 }` | `Permanent` |
/// | 500 internal-server-error | `Refused { code: 500 }` | `Retry` |
/// | any other server code | `Refused { code }` | `Permanent` |
/// | a code still outstanding | `CodeOutstanding` | `Permanent` |
/// | the number is missing, too short or not international | `InvalidPhone` | `Permanent` |
/// | IQ timeout | `Timeout` | `Retry` |
/// | not connected, socket lost | `Connection` | `Retry` |
/// | anything else (cancelled, a malformed answer, a local failure) | `Other` | `Permanent` |
///
/// Messages say what to do and never carry the number or the code.
///
/// ```
/// use wa_pairing_retry::{Classify, Verdict};
/// use wa_pairing_runner::ConnectorErrorKind;
/// use wa_pairing_whatsapp::classify_pair_error;
/// use whatsapp_rust::IqError;
/// use whatsapp_rust::pair_code::PairError;
///
/// let refused = PairError::RequestFailed(IqError::ServerError {
///     code: 429,
///     text: "rate-overlimit".into(),
///     error_type: None,
///     backoff: Some(300),
/// });
/// let e = classify_pair_error(&refused);
/// assert_eq!(e.kind(), ConnectorErrorKind::Refused { code: 429 });
/// assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(300)));
/// ```
pub fn classify_pair_error(error: &PairError) -> ConnectorError {
    match error {
        PairError::RequestFailed(iq) => classify_iq(iq),
        PairError::PairCode(e) => classify_local(e),
        _ => ConnectorError::new(
            ConnectorErrorKind::Other,
            "the pairing-code request failed in an unexpected way",
            Verdict::Permanent,
        ),
    }
}

fn classify_iq(error: &IqError) -> ConnectorError {
    use ConnectorErrorKind as K;
    match error {
        IqError::ServerError { code, backoff, .. } => {
            let retry_after = backoff.map(|s| Duration::from_secs(u64::from(s)));
            let (verdict, message) = match code {
                400 => (
                    Verdict::Throttled { retry_after },
                    "WhatsApp refused the pairing request (400), which it also does when a number asks for codes too often: wait before asking again".to_owned(),
                ),
                429 => (
                    Verdict::Throttled { retry_after },
                    "WhatsApp is limiting pairing requests for this number (429): wait before asking again".to_owned(),
                ),
                403 => (
                    Verdict::Permanent,
                    "WhatsApp does not allow linking this account with a pairing code (403): link it by QR code instead".to_owned(),
                ),
                452 => (
                    Verdict::Permanent,
                    "pairing codes are not available for this account (452): link it by QR code instead".to_owned(),
                ),
                500 => (
                    Verdict::Retry,
                    "WhatsApp had an internal error (500): trying again shortly usually works".to_owned(),
                ),
                other => (
                    Verdict::Permanent,
                    format!(
                        "WhatsApp refused the pairing request with code {other}: try again later, or link by QR code"
                    ),
                ),
            };
            ConnectorError::new(K::Refused { code: *code }, message, verdict)
        }
        IqError::Timeout => ConnectorError::new(
            K::Timeout,
            "WhatsApp did not answer the pairing request in time",
            Verdict::Retry,
        ),
        IqError::NotConnected
        | IqError::Socket(_)
        | IqError::Disconnected(_)
        | IqError::InternalChannelClosed
        | IqError::ClientState(_) => ConnectorError::new(
            K::Connection,
            "the connection to WhatsApp was lost during the pairing request",
            Verdict::Retry,
        ),
        _ => ConnectorError::new(
            K::Other,
            "the pairing request could not be completed: WhatsApp's answer was not understood",
            Verdict::Permanent,
        ),
    }
}

fn classify_local(error: &PairCodeError) -> ConnectorError {
    use ConnectorErrorKind as K;
    match error {
        PairCodeError::CodeAlreadyOutstanding { .. } => ConnectorError::new(
            K::CodeOutstanding,
            "a pairing code is still live on this connection: cancel it before asking for another",
            Verdict::Permanent,
        ),
        PairCodeError::PhoneNumberRequired
        | PairCodeError::PhoneNumberTooShort
        | PairCodeError::PhoneNumberNotInternational => ConnectorError::new(
            K::InvalidPhone,
            "WhatsApp needs the full international number (country code first, at least 7 digits)",
            Verdict::Permanent,
        ),
        PairCodeError::Cancelled => ConnectorError::new(
            K::Other,
            "the pairing-code request was cancelled",
            Verdict::Permanent,
        ),
        PairCodeError::MissingPairingRef => ConnectorError::new(
            K::Other,
            "WhatsApp accepted the pairing request but sent no reference for it",
            Verdict::Permanent,
        ),
        _ => ConnectorError::new(
            K::Other,
            "the pairing-code request failed on this side",
            Verdict::Permanent,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_pairing_retry::Classify;

    fn server(code: u16, text: &str, backoff: Option<u32>) -> PairError {
        PairError::RequestFailed(IqError::ServerError {
            code,
            text: text.to_owned(),
            error_type: None,
            backoff,
        })
    }

    #[test]
    #[allow(clippy::too_many_lines)] // one row per refusal
    fn the_refusal_table() {
        use ConnectorErrorKind as K;
        let secs = |s| Some(Duration::from_secs(s));
        let cases: Vec<(PairError, ConnectorErrorKind, Verdict)> = vec![
            (
                server(400, "bad-request", None),
                K::Refused { code: 400 },
                Verdict::Throttled { retry_after: None },
            ),
            (
                server(400, "bad-request", Some(120)),
                K::Refused { code: 400 },
                Verdict::Throttled {
                    retry_after: secs(120),
                },
            ),
            (
                server(429, "rate-overlimit", Some(600)),
                K::Refused { code: 429 },
                Verdict::Throttled {
                    retry_after: secs(600),
                },
            ),
            // The code decides even when the text disagrees.
            (
                server(429, "something-else", None),
                K::Refused { code: 429 },
                Verdict::Throttled { retry_after: None },
            ),
            (
                server(403, "forbidden", None),
                K::Refused { code: 403 },
                Verdict::Permanent,
            ),
            (
                server(452, "feature-not-available", None),
                K::Refused { code: 452 },
                Verdict::Permanent,
            ),
            (
                server(500, "internal-server-error", None),
                K::Refused { code: 500 },
                Verdict::Retry,
            ),
            (
                server(418, "teapot", Some(5)),
                K::Refused { code: 418 },
                Verdict::Permanent,
            ),
            (
                PairError::RequestFailed(IqError::Timeout),
                K::Timeout,
                Verdict::Retry,
            ),
            (
                PairError::RequestFailed(IqError::NotConnected),
                K::Connection,
                Verdict::Retry,
            ),
            (
                PairError::RequestFailed(IqError::InternalChannelClosed),
                K::Connection,
                Verdict::Retry,
            ),
            (
                PairCodeError::CodeAlreadyOutstanding {
                    remaining: Duration::from_secs(100),
                }
                .into(),
                K::CodeOutstanding,
                Verdict::Permanent,
            ),
            (
                PairCodeError::PhoneNumberTooShort.into(),
                K::InvalidPhone,
                Verdict::Permanent,
            ),
            (
                PairCodeError::PhoneNumberNotInternational.into(),
                K::InvalidPhone,
                Verdict::Permanent,
            ),
            (
                PairCodeError::PhoneNumberRequired.into(),
                K::InvalidPhone,
                Verdict::Permanent,
            ),
            (
                PairCodeError::Cancelled.into(),
                K::Other,
                Verdict::Permanent,
            ),
            (
                PairCodeError::MissingPairingRef.into(),
                K::Other,
                Verdict::Permanent,
            ),
        ];
        for (error, kind, verdict) in cases {
            let e = classify_pair_error(&error);
            assert_eq!(e.kind(), kind, "{error:?}");
            assert_eq!(e.verdict(), verdict, "{error:?}");
            assert!(!e.message().is_empty());
        }
    }

    #[test]
    fn throttling_carries_the_server_backoff() {
        let e = classify_pair_error(&server(429, "rate-overlimit", Some(90)));
        assert_eq!(e.retry_after(), Some(Duration::from_secs(90)));
        let e = classify_pair_error(&server(500, "internal-server-error", Some(90)));
        assert_eq!(e.retry_after(), None);
    }
}
