//! The words a device's owner reads in `error_message`: what happened and what to do.

use std::time::Duration;

use crate::connector::{ConnectorError, ConnectorErrorKind};
use chrono::{DateTime, Utc};

/// No usable number is stored for a pairing-code device (none was given, or a row written
/// by older software holds one that cannot be read).
pub(crate) const NO_PHONE: &str = "no valid phone number is stored for pairing: enter the WhatsApp number to link, with its country code, and start again";

/// Throttled by WhatsApp or by our own per-number budget.
pub(crate) fn throttled(until: DateTime<Utc>, ours: bool) -> String {
    let who = if ours {
        "Too many pairing codes were requested for this number"
    } else {
        "WhatsApp is limiting pairing requests for this number"
    };
    format!(
        "{who}: try again after {} UTC. Asking sooner extends the wait.",
        until.format("%H:%M")
    )
}

/// A refusal that retrying cannot fix.
pub(crate) fn refused(err: &ConnectorError) -> String {
    match err.kind() {
        ConnectorErrorKind::Refused { code: 403 } => {
            "WhatsApp refused to link this number (forbidden). Check the number, open WhatsApp on the phone once, and try again later.".into()
        }
        ConnectorErrorKind::Refused { code: 452 } => {
            "Pairing codes are not available for this WhatsApp account: link it with a QR code instead.".into()
        }
        ConnectorErrorKind::Refused { code } => {
            format!("WhatsApp refused the pairing request (code {code}). Press refresh to try again.")
        }
        ConnectorErrorKind::InvalidPhone => {
            format!("WhatsApp did not accept the phone number: {err}. Fix the number and start again.")
        }
        ConnectorErrorKind::CodeOutstanding => {
            "A pairing code is still active for this device. Wait for it to expire, then press refresh.".into()
        }
        _ => "The pairing request failed. Press refresh to try again; if it keeps failing, the service's operator can see why in its logs.".into(),
    }
}

/// Retries were used up on transient failures.
pub(crate) fn gave_up(attempts: u32) -> String {
    format!(
        "WhatsApp did not issue a pairing code after {attempts} attempts. Press refresh to try again; if it keeps failing, WhatsApp may be unavailable."
    )
}

/// The socket never became ready.
pub(crate) fn unreachable(waited: Duration) -> String {
    format!(
        "Could not connect to WhatsApp (waited {} s). Press refresh to try again; if it keeps failing, check the service's network.",
        waited.as_secs()
    )
}

/// The client refused the server as not WhatsApp's: the operator has a setting to change,
/// the owner can only wait.
pub(crate) const UNTRUSTED_SERVER: &str = "The service cannot reach WhatsApp right now: its connection to WhatsApp is misconfigured, and its operator has been told. Try again later.";

/// Codes expired too many times.
pub(crate) const EXPIRED: &str =
    "The pairing code expired before it was entered. Press refresh for a new code.";

/// The phone side failed to complete pairing.
pub(crate) fn pairing_failed(reason: &str) -> String {
    format!("Linking failed on the phone: {reason}. Press refresh for a new code.")
}

/// Logged out from the phone.
pub(crate) fn logged_out(reason: &str) -> String {
    format!("This device was logged out ({reason}). Link it again to reconnect.")
}

/// Another connection took over.
pub(crate) const REPLACED: &str = "Another connection took over this WhatsApp account (replaced). Stop the other connection, then link again.";

/// Temporarily banned.
pub(crate) fn banned(until: Option<DateTime<Utc>>) -> String {
    match until {
        Some(t) => format!(
            "WhatsApp banned this account temporarily, until {} UTC. Wait, then link again.",
            t.format("%Y-%m-%d %H:%M")
        ),
        None => "WhatsApp banned this account temporarily. Wait, then link again.".into(),
    }
}

/// The client version is refused.
pub(crate) const OUTDATED: &str =
    "WhatsApp refuses this service's client version: the service needs an update.";

/// The client stopped reconnecting.
pub(crate) fn connection_lost(reason: &str) -> String {
    format!(
        "The WhatsApp connection was lost and could not be restored ({reason}). Link the device again."
    )
}

/// A linked device whose session could not be opened (the details go to the logs, never to
/// the owner: they may name storage or configuration internals).
pub(crate) fn cannot_resume(err: &ConnectorError) -> String {
    match err.kind() {
        ConnectorErrorKind::NotLinked => {
            "No linked WhatsApp session is stored for this device. Link it again.".into()
        }
        ConnectorErrorKind::Configuration => {
            "The service cannot connect to WhatsApp because of its configuration; its operator has been told. Try again later.".into()
        }
        _ => "The stored WhatsApp session could not be loaded. Try again later; if it keeps failing, link the device again.".into(),
    }
}

/// Unlinked here, but WhatsApp could not be told.
pub(crate) const UNLINKED_HERE_ONLY: &str = "Unlinked from this service, but WhatsApp could not be reached to remove it from the account: also remove it on the phone (WhatsApp > Linked devices).";
