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
//! # Limits
//!
//! - Only what is carried is built in memory: [`BaileysAuth::from_session_json`] reads the
//!   text once, keeps the members the import uses, and skips the rest as it goes (the key
//!   types that are not carried are only counted), so a `session_data` of tens of megabytes,
//!   nearly all of it Signal sessions, needs little memory beyond its text.
//!   [`MAX_SESSION_DATA_BYTES`] is the most the service's import fetches of one row.
//! - [`BaileysAuth::from_dir`] reads regular files only. A symlink is followed (Kubernetes
//!   mounts a Secret's files as symlinks) and what it points to must be a regular file; a
//!   FIFO, a device, a socket or a directory named like one of the folder's JSON files
//!   (`creds.json`, a key file, any `*.json`) is refused, naming the file, before it is
//!   opened (opening a FIFO blocks). Each file is read through a bounded reader, so one
//!   that grows or lies about its size stops at the cap: [`MAX_CREDS_FILE_BYTES`] for
//!   `creds.json`, [`MAX_KEY_FILE_BYTES`] for each key file read, [`MAX_DIR_BYTES`] for all
//!   of them together (checked before anything is read). Key files that are not carried are
//!   counted, never opened.
//! - The account's number (`creds.me.id`) must be a valid phone number
//!   ([`wa_pairing_phone::parse`]), as any number wa-pairing links.
//!
//! # Safety
//!
//! - Parsing happens first and is complete: bad or partial JSON fails with an
//!   [`ImportError`] naming the field (never its value) and nothing is written.
//! - [`import_baileys`] writes everything in one all-or-none batch, with the fence of a lease
//!   the caller holds, so it never races a runner that holds the device.
//! - A device that already has auth state is never touched unless the caller asks for it
//!   ([`Overwrite::Replace`]); state of the same companion counts as already imported.
//! - Credentials whose companion is already stored for another device are refused
//!   ([`ImportErrorKind::CompanionElsewhere`], naming that device) before anything is
//!   written: the store keeps one companion for one device
//!   ([`AuthStateStore::register_companion`]), since two sockets with one companion's keys
//!   log each other out.
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
mod dir;
mod json;

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use wa_pairing_store::{AuthStateStore, CompanionKey, DeviceId, Fence, StoreError};
use wacore::libsignal::protocol::KeyPair;
use wacore::store::Device as ClientDevice;
use wacore::store::traits::AppStateSyncKey;

use crate::keys;

/// The largest `creds.json` [`BaileysAuth::from_dir`] reads: 1 MiB. Baileys writes a few
/// kilobytes (keys, the account, some settings).
pub const MAX_CREDS_FILE_BYTES: u64 = 1 << 20;

/// The largest key file [`BaileysAuth::from_dir`] reads (`pre-key-*.json`,
/// `app-state-sync-key-*.json`): 1 MiB. Baileys writes a few hundred bytes each.
pub const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

/// The most [`BaileysAuth::from_dir`] reads from one folder in all (`creds.json` and the key
/// files it carries): 64 MiB, room for hundreds of thousands of pre-keys where Baileys keeps
/// about a thousand.
pub const MAX_DIR_BYTES: u64 = 64 << 20;

/// The largest `session_data` (as JSON text) the service's import fetches from one row:
/// 128 MiB. A heavily used account's Baileys state reaches tens of megabytes, nearly all of it
/// Signal sessions, which are not carried (trim them off a larger row and import it again).
pub const MAX_SESSION_DATA_BYTES: usize = 128 << 20;

/// `bytes` for a person: `512 bytes`, `1 MiB`, `3.2 GiB`.
pub(crate) fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if bytes < 1024 {
        return format!("{bytes} bytes");
    }
    #[allow(clippy::cast_precision_loss)]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let unit = UNITS[unit];
    if value.fract() == 0.0 {
        format!("{value:.0} {unit}")
    } else {
        format!("{value:.1} {unit}")
    }
}

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
    /// A `useMultiFileAuthState` folder could not be read: it or a file is missing or
    /// unreadable, or a file is not a regular file (a FIFO, a device, a directory). The
    /// message names the file.
    Io,
    /// The input is larger than Baileys' credentials can be: a file of the folder, the
    /// folder's files together, or a row's `session_data`. The message says how large and
    /// what the limit is.
    TooLarge,
    /// The same companion (the same Noise key) is already stored for another device: one
    /// companion runs on one device only, since two sockets with its keys log each other out.
    /// The message names the other device.
    CompanionElsewhere,
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
            Self::TooLarge => "too_large",
            Self::CompanionElsewhere => "companion_elsewhere",
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

    /// The error for a `session_data` of `bytes` bytes (as JSON text) that is not read
    /// because it is larger than `max` (usually [`MAX_SESSION_DATA_BYTES`]): what an import
    /// reports for a row it does not fetch.
    ///
    /// ```
    /// use wa_pairing_whatsapp::baileys::{ImportError, ImportErrorKind, MAX_SESSION_DATA_BYTES};
    ///
    /// let e = ImportError::session_data_too_large(300 << 20, MAX_SESSION_DATA_BYTES);
    /// assert_eq!(e.kind(), ImportErrorKind::TooLarge);
    /// assert!(e.to_string().starts_with("session_data is 300 MiB, more than the 128 MiB"));
    /// ```
    pub fn session_data_too_large(bytes: u64, max: usize) -> Self {
        Self::new(
            ImportErrorKind::TooLarge,
            format!(
                "session_data is {}, more than the {} the import reads: nothing was written. Nearly all of a large Baileys state is Signal sessions and sender keys, which are not carried: remove them from the row (docs/migrating-from-baileys.md shows how) and import it again",
                human_size(bytes),
                human_size(u64::try_from(max).unwrap_or(u64::MAX)),
            ),
        )
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
    phone: wa_pairing_phone::PhoneNumber,
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
    /// For a value already parsed; [`Self::from_session_json`] reads the text without building
    /// a `serde_json::Value` (what a large row needs).
    ///
    /// # Errors
    ///
    /// [`ImportErrorKind::Malformed`], [`ImportErrorKind::NotLinked`] or
    /// [`ImportErrorKind::Inconsistent`], naming the field.
    pub fn from_session_data(value: &serde_json::Value) -> Result<Self, ImportError> {
        creds::from_session_value(value)
    }

    /// Like [`Self::from_session_data`], from the JSON text (`session_data::text`): reads it
    /// once and keeps only what the import uses, so the memory it needs beyond the text is
    /// about the size of the carried keys, not of the Signal sessions it skips.
    ///
    /// ```
    /// use wa_pairing_whatsapp::baileys::{BaileysAuth, ImportErrorKind};
    ///
    /// let err = BaileysAuth::from_session_json(r#"{"creds": {"noiseKey": "#).unwrap_err();
    /// assert_eq!(err.kind(), ImportErrorKind::Malformed);
    /// assert!(err.to_string().contains("line 1"), "says where, never what: {err}");
    /// ```
    ///
    /// # Errors
    ///
    /// As [`Self::from_session_data`], and [`ImportErrorKind::Malformed`] when the text is not
    /// JSON (with the line and column).
    pub fn from_session_json(json: &str) -> Result<Self, ImportError> {
        creds::from_session_json(json)
    }

    /// From a `useMultiFileAuthState` folder: `creds.json` and one `<type>-<id>.json` file per
    /// key.
    ///
    /// Reads regular files only, within [`MAX_CREDS_FILE_BYTES`], [`MAX_KEY_FILE_BYTES`] and
    /// [`MAX_DIR_BYTES`] (see the module's limits); never blocks on a FIFO.
    ///
    /// # Errors
    ///
    /// As [`Self::from_session_data`]; [`ImportErrorKind::Io`] when the folder or a file
    /// cannot be read or a file is not a regular file; [`ImportErrorKind::TooLarge`] when a
    /// file, or all of them, exceed the caps. The message names the file, never its content.
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
        self.phone.digits()
    }

    /// The account's number (validated when the credentials were read).
    pub const fn phone(&self) -> &wa_pairing_phone::PhoneNumber {
        &self.phone
    }

    /// The companion these credentials are (by its Noise key), as the store registers it:
    /// one companion is stored for one device at most.
    pub fn companion(&self) -> CompanionKey {
        CompanionKey::of_noise_key(self.device.noise_key.public_key.public_key_bytes())
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
/// [`Overwrite::Never`]; [`ImportErrorKind::CompanionElsewhere`] when the companion is
/// already stored for another device (nothing is written); [`ImportErrorKind::Storage`] when
/// the store fails (a stale fence included).
pub async fn import_baileys(
    store: &dyn AuthStateStore,
    device: DeviceId,
    fence: Fence,
    auth: &BaileysAuth,
    overwrite: Overwrite,
) -> Result<ImportOutcome, ImportError> {
    let existing = existing_state(store, device, auth).await?;
    if existing == Existing::Other && overwrite == Overwrite::Never {
        return Err(ImportError::new(
            ImportErrorKind::HasOtherState,
            "the device already has wa-pairing state of another companion (linked again, or imported from other credentials): it was left as it is; replace it only if you are sure the Baileys credentials are the ones to keep",
        ));
    }
    // Before anything is touched: the companion must not be stored for another device.
    let companion = auth.companion();
    register(store, device, fence, &companion).await?;
    match existing {
        Existing::SameCompanion => return Ok(ImportOutcome::AlreadyImported),
        Existing::Other => {
            store
                .clear(device, fence)
                .await
                .map_err(|e| ImportError::store("clearing the device's previous state", e))?;
            // Clearing forgot the device's companion: this one again.
            register(store, device, fence, &companion).await?;
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

/// Registers `companion` for `device`; another device holding it is a `CompanionElsewhere`
/// refusal that names that device.
async fn register(
    store: &dyn AuthStateStore,
    device: DeviceId,
    fence: Fence,
    companion: &CompanionKey,
) -> Result<(), ImportError> {
    match store.register_companion(device, fence, companion).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == wa_pairing_store::ErrorKind::Conflict => Err(ImportError::new(
            ImportErrorKind::CompanionElsewhere,
            format!("{e}; nothing was imported"),
        )),
        Err(e) => Err(ImportError::store("registering the companion", e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(human_size(0), "0 bytes");
        assert_eq!(human_size(1023), "1023 bytes");
        assert_eq!(human_size(1024), "1 KiB");
        assert_eq!(human_size(1536), "1.5 KiB");
        assert_eq!(human_size(MAX_CREDS_FILE_BYTES), "1 MiB");
        assert_eq!(human_size(MAX_DIR_BYTES), "64 MiB");
        assert_eq!(human_size(3_200_000_000), "3.0 GiB");
        assert_eq!(human_size(u64::MAX), "16384 PiB");
    }

    #[test]
    fn a_row_too_large_to_read_is_reported_with_its_size() {
        let e = ImportError::session_data_too_large(41_943_040, 1 << 20);
        assert_eq!(e.kind(), ImportErrorKind::TooLarge);
        assert_eq!(e.kind().as_str(), "too_large");
        assert!(
            e.to_string().starts_with(
                "session_data is 40 MiB, more than the 1 MiB the import reads: nothing was written"
            ),
            "{e}"
        );
    }
}
