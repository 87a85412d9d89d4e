//! Moving from Baileys without linking again: Baileys' credentials, read from the original
//! system's `devices.session_data` or from a `useMultiFileAuthState` folder, turned into the
//! `whatsapp-rust` state of the same companion device in an [`AuthStateStore`].
//!
//! The companion is the same one the phone lists under Linked devices: the same Noise key
//! (how WhatsApp's server recognises it at login), identity key, signed pre-key, registration
//! id, ADV secret and signed device identity, and the same number and LID. Nothing is sent to
//! WhatsApp here; the runner logs in with the imported state the next time it resumes the
//! device.
//!
//! # What is carried over, and what is not
//!
//! | Baileys | here |
//! |---|---|
//! | `creds`: Noise key, identity key, signed pre-key, registration id, ADV secret, `account`, `me` (number, LID, name) | the client's device record |
//! | `nextPreKeyId`, `firstUnuploadedPreKeyId` | the client's pre-key counters (the same meaning) |
//! | `pre-key` keys | one-time pre-keys, with whether the server has them: a contact who fetched one from WhatsApp before the move can still open a session |
//! | `app-state-sync-key` keys, `myAppStateKeyId` | app-state sync keys |
//! | `session` keys (Signal sessions) | **not carried**: a contact's next message to the device fails to decrypt once, the client asks for a retry, and the contact's phone starts a new session and sends it again; our own messages start new sessions from a fetched pre-key |
//! | `sender-key` keys (groups) | **not carried**: group senders hand out their key again on the retry; our own sender key is new and distributed with the next group message |
//! | `app-state-sync-version` keys | **not carried**: the client syncs app state from scratch with the carried keys |
//! | `lid-mapping`, `device-list`, `tctoken` and the rest | **not carried**: caches the client learns again |
//!
//! [`ImportSummary::not_carried`] counts what a given device leaves behind.
//!
//! # Safety
//!
//! - Parsing happens first and is complete: bad or partial JSON fails with an
//!   [`ImportError`] naming the field (never its value) and nothing is written.
//! - [`import_baileys`] writes everything in one all-or-none batch, with the fence of a lease
//!   the caller holds, so it never races a runner that holds the device.
//! - A device that already has auth state is never touched unless the caller asks for it
//!   ([`Overwrite::Replace`]); state of the same companion counts as already imported.
//! - `Debug` of [`BaileysAuth`] shows the summary only; errors hold no key material, no
//!   code and no full number.
//!
//! ```
//! use wa_pairing_whatsapp::baileys::{BaileysAuth, ImportErrorKind};
//!
//! // A Baileys session whose pairing never finished cannot be imported:
//! let half = serde_json::json!({"creds": {"me": {"id": "6281234567890@s.whatsapp.net"}}});
//! let err = BaileysAuth::from_session_data(&half).unwrap_err();
//! assert_eq!(err.kind(), ImportErrorKind::Malformed);
//! assert!(err.to_string().contains("creds.noiseKey"));
//! ```

mod creds;
mod json;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use wa_pairing_store::{AuthStateStore, DeviceId, Fence, StoreError};
use wacore::libsignal::protocol::KeyPair;
use wacore::store::Device as ClientDevice;
use wacore::store::traits::AppStateSyncKey;

use crate::keys;

/// What kind of failure an [`ImportError`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ImportErrorKind {
    /// The JSON is not Baileys' credentials: a field is missing or has the wrong shape. The
    /// message names the field.
    Malformed,
    /// The credentials are Baileys' but were never linked (the pairing did not finish).
    NotLinked,
    /// The credentials contradict themselves (a public key that is not the private key's,
    /// a signature that does not verify): they were edited or mixed from two devices.
    Inconsistent,
    /// The device already has auth state of another companion; it is left as it is unless
    /// the caller asks to replace it.
    HasOtherState,
    /// The auth-state store failed (a lost lease, an outage, keys that cannot open what is
    /// stored).
    Storage,
    /// A `useMultiFileAuthState` folder could not be read.
    Io,
}

impl ImportErrorKind {
    /// A stable lower-case name for logs and reports.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotLinked => "not_linked",
            Self::Inconsistent => "inconsistent",
            Self::HasOtherState => "has_other_state",
            Self::Storage => "storage",
            Self::Io => "io",
        }
    }
}

/// Why one device's Baileys credentials cannot be imported. The message says what to do; it
/// never contains key material or a full number.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ImportError {
    kind: ImportErrorKind,
    message: String,
    #[source]
    source: Option<StoreError>,
}

impl ImportError {
    pub(crate) fn new(kind: ImportErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            source: None,
        }
    }

    fn store(what: &str, e: StoreError) -> Self {
        let hint = if e.kind() == wa_pairing_store::ErrorKind::Undecryptable {
            ": the configured auth-state keys cannot open what is stored for this device"
        } else {
            ""
        };
        Self {
            kind: ImportErrorKind::Storage,
            message: format!("{what}: {e}{hint}"),
            source: Some(e),
        }
    }

    /// What went wrong.
    pub const fn kind(&self) -> ImportErrorKind {
        self.kind
    }
}

/// What one device's import carries over and leaves behind (no secrets: safe to log).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportSummary {
    /// The account's number, redacted (`62812****7890`).
    pub phone: String,
    /// The companion's device number on the account (`:12` in `6281234567890:12@s.whatsapp.net`).
    pub device: u16,
    /// Whether the account's LID is known (Baileys saved it at the first login).
    pub has_lid: bool,
    /// One-time pre-keys carried over.
    pub pre_keys: usize,
    /// App-state sync keys carried over.
    pub app_state_keys: usize,
    /// What is not carried over, by Baileys' key type (`session`, `sender-key`, ...), with how
    /// many entries: the protocol re-establishes it (see the module docs).
    pub not_carried: BTreeMap<String, usize>,
}

impl fmt::Display for ImportSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} device {}: {} pre-keys, {} app-state keys",
            self.phone, self.device, self.pre_keys, self.app_state_keys
        )?;
        if !self.has_lid {
            f.write_str(", no LID yet")?;
        }
        if !self.not_carried.is_empty() {
            let left: Vec<String> = self
                .not_carried
                .iter()
                .map(|(k, n)| format!("{n} {k}"))
                .collect();
            write!(
                f,
                "; not carried (re-established by the protocol): {}",
                left.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Baileys' credentials of one linked device, parsed, checked and converted: what
/// [`import_baileys`] writes.
///
/// `Debug` shows the [`ImportSummary`] only.
pub struct BaileysAuth {
    device: ClientDevice,
    phone_number: String,
    pre_keys: Vec<(u32, KeyPair, bool)>,
    sync_keys: Vec<(Vec<u8>, AppStateSyncKey)>,
    latest_sync_key: Option<Vec<u8>>,
    summary: ImportSummary,
}

impl fmt::Debug for BaileysAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BaileysAuth")
            .field("summary", &self.summary)
            .finish_non_exhaustive()
    }
}

impl BaileysAuth {
    /// From the original system's `devices.session_data`: `{"creds": {...}, "keys": {type:
    /// {id: value}}}` with buffers as Baileys' `BufferJSON` writes them, or the `creds`
    /// object alone, or either as a JSON string.
    ///
    /// # Errors
    ///
    /// [`ImportErrorKind::Malformed`], [`ImportErrorKind::NotLinked`] or
    /// [`ImportErrorKind::Inconsistent`], naming the field.
    pub fn from_session_data(value: &serde_json::Value) -> Result<Self, ImportError> {
        creds::from_session_data(value)
    }

    /// From a `useMultiFileAuthState` folder: `creds.json` and one `<type>-<id>.json` file per
    /// key.
    ///
    /// # Errors
    ///
    /// As [`Self::from_session_data`], and [`ImportErrorKind::Io`] when the folder or a file
    /// cannot be read.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<Self, ImportError> {
        creds::from_dir(dir.as_ref())
    }

    /// What the import carries over and leaves behind.
    pub const fn summary(&self) -> &ImportSummary {
        &self.summary
    }

    /// The account's number in digits (`6281234567890`): for the device row's
    /// `phone_number`. Never log it; [`ImportSummary::phone`] is the redacted form.
    pub fn phone_number(&self) -> &str {
        &self.phone_number
    }
}

/// What a device's auth state holds before an import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Existing {
    /// Nothing: the import writes.
    Nothing,
    /// The same companion (same Noise key): imported before, or linked since; left alone.
    SameCompanion,
    /// State of another companion, or partial state: left alone unless replaced.
    Other,
}

/// Whether an import may replace a device's existing auth state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overwrite {
    /// Never: a device with another companion's state is refused
    /// ([`ImportErrorKind::HasOtherState`]). The default.
    #[default]
    Never,
    /// Wipe the device's state and import (the operator's explicit choice, for example after
    /// a failed experiment with a new pairing).
    Replace,
}

/// What [`import_baileys`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportOutcome {
    /// The state was written.
    Imported,
    /// The device already had this companion's state; nothing was written.
    AlreadyImported,
}

/// What the device's auth state holds now, compared with `auth` (reads only: the dry run).
///
/// # Errors
///
/// [`ImportErrorKind::Storage`] when the store cannot be read or its keys cannot open the
/// stored device record.
pub async fn existing_state(
    store: &dyn AuthStateStore,
    device: DeviceId,
    auth: &BaileysAuth,
) -> Result<Existing, ImportError> {
    let stored = store
        .get(device, keys::DEVICE)
        .await
        .map_err(|e| ImportError::store("reading the device's auth state", e))?;
    match stored {
        Some(bytes) => {
            let same = serde_json::from_slice::<ClientDevice>(&bytes).is_ok_and(|d| {
                d.noise_key.public_key.public_key_bytes()
                    == auth.device.noise_key.public_key.public_key_bytes()
            });
            Ok(if same {
                Existing::SameCompanion
            } else {
                Existing::Other
            })
        }
        None => {
            let any = store
                .scan_prefix(device, "")
                .await
                .map_err(|e| ImportError::store("reading the device's auth state", e))?;
            Ok(if any.is_empty() {
                Existing::Nothing
            } else {
                Existing::Other
            })
        }
    }
}

/// Writes `auth` as `device`'s client state in `store`, with `fence` (the fence of a lease
/// the caller holds on the device, so no runner works on it meanwhile).
///
/// Idempotent: state of the same companion is left alone
/// ([`ImportOutcome::AlreadyImported`]). Everything is written in one all-or-none batch.
///
/// # Errors
///
/// [`ImportErrorKind::HasOtherState`] when the device has other state and `overwrite` is
/// [`Overwrite::Never`]; [`ImportErrorKind::Storage`] when the store fails (a stale fence
/// included).
pub async fn import_baileys(
    store: &dyn AuthStateStore,
    device: DeviceId,
    fence: Fence,
    auth: &BaileysAuth,
    overwrite: Overwrite,
) -> Result<ImportOutcome, ImportError> {
    match existing_state(store, device, auth).await? {
        Existing::SameCompanion => return Ok(ImportOutcome::AlreadyImported),
        Existing::Other if overwrite == Overwrite::Never => {
            return Err(ImportError::new(
                ImportErrorKind::HasOtherState,
                "the device already has wa-pairing state of another companion (linked again, or imported from other credentials): it was left as it is; replace it only if you are sure the Baileys credentials are the ones to keep",
            ));
        }
        Existing::Other => {
            store
                .clear(device, fence)
                .await
                .map_err(|e| ImportError::store("clearing the device's previous state", e))?;
        }
        Existing::Nothing => {}
    }
    let entries = crate::backend::import_entries(
        &auth.device,
        &auth.pre_keys,
        &auth.sync_keys,
        auth.latest_sync_key.as_deref(),
    )
    .map_err(|e| ImportError::new(ImportErrorKind::Malformed, e.to_string()))?;
    store
        .put_many(device, fence, &entries)
        .await
        .map_err(|e| ImportError::store("writing the imported state", e))?;
    Ok(ImportOutcome::Imported)
}
