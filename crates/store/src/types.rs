//! Domain types: ids, the device record, statuses, leases.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;
use wa_pairing_code::{IssuedCode, PairingCode};
use wa_pairing_phone::PhoneNumber;

use crate::error::{ErrorKind, StoreError};

macro_rules! id_type {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub Uuid);

        impl $name {
            /// A new random (v4) id.
            pub fn random() -> Self {
                Self(Uuid::new_v4())
            }

            /// The underlying UUID.
            pub const fn as_uuid(&self) -> &Uuid {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), self.0)
            }
        }

        impl FromStr for $name {
            type Err = StoreError;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s.trim()).map(Self).map_err(|_| {
                    StoreError::new(
                        ErrorKind::InvalidInput,
                        concat!("not a valid ", stringify!($name), ": expected a UUID such as 67e55044-10b1-426f-9247-bb680e5fe0c8"),
                    )
                })
            }
        }

        impl From<Uuid> for $name {
            fn from(u: Uuid) -> Self {
                Self(u)
            }
        }
    };
}

id_type!(
    /// Identifies a device row (`devices.id`).
    DeviceId
);
id_type!(
    /// Identifies the owner of devices (Supabase's `auth.users.id`, `devices.user_id`).
    UserId
);

/// Where a device is in its life.
///
/// ```text
///   connecting ──► waiting_pairing ──► connected
///       ▲  │            │  │               │
///       │  └──► failed ◄┘  │               ├──► disconnected
///       └───────────┴──────┴─── (owner) ───┘
///
///   (owner: unlink, from any status) ──► unlinking ──► disconnected
/// ```
///
/// [`DeviceStatus::check_transition`] is the one place that says which moves a runner may
/// make; [`OwnerAction::check`] says which actions the owner may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceStatus {
    /// The owner asked to link: a runner has work to do.
    Connecting,
    /// A pairing code (or QR) is shown and valid; waiting for the person to enter it.
    WaitingPairing,
    /// Linked; a runner keeps the session alive.
    Connected,
    /// Logged out, replaced, or stopped by the owner. No runner works on it.
    Disconnected,
    /// Something went wrong that needs the owner; `error_message` says what, `retry_after`
    /// says when trying again is worth it.
    Failed,
    /// The owner asked to unlink: a runner removes the companion from the WhatsApp account
    /// (when it can reach it), wipes the auth state, and the device becomes `disconnected`.
    Unlinking,
}

impl DeviceStatus {
    /// Every status.
    pub const ALL: [Self; 6] = [
        Self::Connecting,
        Self::WaitingPairing,
        Self::Connected,
        Self::Disconnected,
        Self::Failed,
        Self::Unlinking,
    ];

    /// The value stored in the `status` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Connecting => "connecting",
            Self::WaitingPairing => "waiting_pairing",
            Self::Connected => "connected",
            Self::Disconnected => "disconnected",
            Self::Failed => "failed",
            Self::Unlinking => "unlinking",
        }
    }

    /// Whether a runner should hold a device in this status: `connecting` and
    /// `waiting_pairing` (pairing to do or to re-issue after a restart), `connected` (a
    /// session to keep alive) and `unlinking` (a companion to remove).
    pub const fn needs_worker(self) -> bool {
        matches!(
            self,
            Self::Connecting | Self::WaitingPairing | Self::Connected | Self::Unlinking
        )
    }

    /// Says whether a runner may move a device from `self` to `to`, and why not.
    ///
    /// Staying in the same status is always allowed (a new code replaces the old one, a
    /// reconnect refreshes `last_connected_at`, a failure message is updated). The other
    /// allowed moves:
    ///
    /// | from | to |
    /// |---|---|
    /// | `connecting` | `waiting_pairing`, `connected`, `disconnected`, `failed` |
    /// | `waiting_pairing` | `connecting`, `connected`, `disconnected`, `failed` |
    /// | `connected` | `disconnected`, `failed` |
    /// | `disconnected` | `connecting` |
    /// | `failed` | `connecting`, `disconnected` |
    /// | `unlinking` | `disconnected` |
    ///
    /// Nothing moves to `unlinking` but the owner ([`OwnerAction::Unlink`]).
    ///
    /// ```
    /// use wa_pairing_store::DeviceStatus::*;
    ///
    /// assert!(Connecting.check_transition(WaitingPairing).is_ok());
    /// let err = Connected.check_transition(WaitingPairing).unwrap_err();
    /// assert!(err.to_string().contains("already linked"));
    /// ```
    pub fn check_transition(self, to: Self) -> Result<(), TransitionError> {
        use DeviceStatus::{
            Connected, Connecting, Disconnected, Failed, Unlinking, WaitingPairing,
        };
        let reason = match (self, to) {
            (a, b) if a == b => return Ok(()),
            (Connecting, WaitingPairing | Connected | Disconnected | Failed)
            | (WaitingPairing, Connecting | Connected | Disconnected | Failed)
            | (Connected, Disconnected | Failed)
            | (Disconnected | Failed, Connecting)
            | (Failed | Unlinking, Disconnected) => return Ok(()),
            (Unlinking, _) => {
                "the owner asked to unlink this device; it can only become disconnected"
            }
            (_, Unlinking) => "only the owner can ask to unlink a device",
            (Connected, WaitingPairing | Connecting) => {
                "the device is already linked; disconnect it before linking it again"
            }
            (Disconnected | Failed, WaitingPairing) => {
                "no pairing was requested; start pairing first (status connecting)"
            }
            (Disconnected | Failed, Connected) => {
                "the device was stopped; the owner must start it again before it can connect"
            }
            (Disconnected, Failed) => "the device was stopped; nothing is running that could fail",
            _ => "this status change is not allowed",
        };
        Err(TransitionError {
            from: self,
            to,
            reason,
        })
    }
}

impl fmt::Display for DeviceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DeviceStatus {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| {
                StoreError::new(
                    ErrorKind::Corrupt,
                    "unknown device status in storage: expected connecting, waiting_pairing, connected, disconnected, failed or unlinking",
                )
            })
    }
}

/// A refused status change, from [`DeviceStatus::check_transition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("cannot move a device from {from} to {to}: {reason}")]
pub struct TransitionError {
    /// The current status.
    pub from: DeviceStatus,
    /// The refused target.
    pub to: DeviceStatus,
    /// Why, in words a person can act on.
    pub reason: &'static str,
}

/// What the owner of a device can ask for. [`OwnerAction::check`] is the one place that says
/// when each is allowed; every backend (and the SQL migrations, for rows end users write
/// directly) applies the same rules.
///
/// | action | allowed from | effect |
/// |---|---|---|
/// | `StartPairing` (and `Refresh`) | every status but `connected` and `unlinking`, and not while `retry_after` lies ahead | `connecting`; code, QR, error, retry-after and the linked number cleared |
/// | `Disconnect` | every status | `disconnected`; code and QR cleared; the link (auth state) is kept |
/// | `Resume` | `disconnected` or `failed`, when the device is linked (`phone_number` is set) | `connected`: a runner logs in again from the stored state, without a code |
/// | `Unlink` | every status | `unlinking`: a runner removes the companion from the account and wipes the auth state |
///
/// Every action takes the device away from the runner holding it (lease cleared, fence
/// bumped).
///
/// ```
/// use chrono::Utc;
/// use wa_pairing_store::{Device, DeviceId, DeviceStatus, OwnerAction, UserId};
///
/// let mut d = Device::new_unchecked(DeviceId::random(), UserId::random(), "Shop".into(), DeviceStatus::Disconnected, Utc::now());
/// // Never linked: nothing to resume.
/// assert!(OwnerAction::Resume.check(&d, Utc::now()).is_err());
/// d.phone_number = Some(wa_pairing_phone::PhoneNumber::from_stored_digits("6281234567890").unwrap());
/// assert!(OwnerAction::Resume.check(&d, Utc::now()).is_ok());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum OwnerAction {
    /// Link with a code or a QR (a fresh link; any old one is replaced).
    StartPairing,
    /// Ask for a fresh code with the stored number and method.
    Refresh,
    /// Close the session and keep the link: [`Resume`](Self::Resume) brings it back without a
    /// code.
    Disconnect,
    /// Bring a linked, disconnected device back online from its stored state.
    Resume,
    /// Remove the companion from the WhatsApp account and wipe its state.
    Unlink,
}

impl OwnerAction {
    /// The stable name (`start_pairing`, `refresh`, `disconnect`, `resume`, `unlink`), the
    /// same the SQL functions use.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::StartPairing => "start_pairing",
            Self::Refresh => "refresh",
            Self::Disconnect => "disconnect",
            Self::Resume => "resume",
            Self::Unlink => "unlink",
        }
    }

    /// Says whether the owner may take this action on `device` at `now`, and why not:
    /// [`InvalidTransition`](ErrorKind::InvalidTransition) with words the owner can act on,
    /// or [`Throttled`](ErrorKind::Throttled) while WhatsApp's `retry_after` lies ahead.
    pub fn check(self, device: &Device, now: DateTime<Utc>) -> Result<(), StoreError> {
        use DeviceStatus::{
            Connected, Connecting, Disconnected, Failed, Unlinking, WaitingPairing,
        };
        let refuse = |to: DeviceStatus, reason: &'static str| -> Result<(), StoreError> {
            Err(TransitionError {
                from: device.status,
                to,
                reason,
            }
            .into())
        };
        match (self, device.status) {
            (Self::StartPairing | Self::Refresh, Connected) => refuse(
                Connecting,
                "the device is already linked; disconnect it before linking it again",
            ),
            (Self::StartPairing | Self::Refresh, Unlinking) => refuse(
                Connecting,
                "the device is being unlinked; wait until it is disconnected, then link it again",
            ),
            (Self::StartPairing | Self::Refresh, _) => match device.retry_after {
                Some(until) if until > now => {
                    let wait = (until - now).to_std().unwrap_or_default();
                    Err(StoreError::throttled(
                        format!(
                            "WhatsApp is limiting pairing for this number: try again in {} minutes",
                            wait.as_secs().div_ceil(60)
                        ),
                        Some(wait),
                    ))
                }
                _ => Ok(()),
            },
            (Self::Disconnect | Self::Unlink, _) => Ok(()),
            (Self::Resume, Disconnected | Failed) if device.phone_number.is_some() => Ok(()),
            (Self::Resume, Disconnected | Failed) => refuse(
                Connected,
                "the device is not linked: start pairing to link it (a new code)",
            ),
            (Self::Resume, Connected) => refuse(Connected, "the device is already connected"),
            (Self::Resume, Connecting | WaitingPairing) => refuse(
                Connected,
                "a pairing is in progress; wait for it to finish or disconnect first",
            ),
            (Self::Resume, Unlinking) => refuse(
                Connected,
                "the device is being unlinked; link it again once it is disconnected",
            ),
        }
    }
}

impl fmt::Display for OwnerAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How the owner links the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionMethod {
    /// An 8-character pairing code typed on the phone.
    #[default]
    Pairing,
    /// A QR code scanned by the phone.
    Qr,
}

impl ConnectionMethod {
    /// The value stored in the `connection_method` column.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pairing => "pairing",
            Self::Qr => "qr",
        }
    }
}

impl fmt::Display for ConnectionMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionMethod {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "pairing" => Ok(Self::Pairing),
            "qr" => Ok(Self::Qr),
            _ => Err(StoreError::new(
                ErrorKind::InvalidInput,
                "unknown connection method: use pairing or qr",
            )),
        }
    }
}

/// A lease's fence: a number that grows every time the device is claimed. Every write a
/// runner makes carries the fence it was given; a write with an older fence is refused, so a
/// paused or partitioned runner can never overwrite the one that took over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Fence(pub i64);

impl fmt::Display for Fence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A runner instance's hold on one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// The device held.
    pub device_id: DeviceId,
    /// The runner instance holding it.
    pub owner: String,
    /// The fence every write must carry.
    pub fence: Fence,
    /// When the lease lapses unless renewed (server clock for SQL backends).
    pub expires_at: DateTime<Utc>,
}

/// A device as stored (the `devices` row).
///
/// `Debug` redacts the phone numbers and the pairing code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Device {
    /// Row id.
    pub id: DeviceId,
    /// Owner.
    pub user_id: UserId,
    /// The name the owner gave it.
    pub device_name: String,
    /// Where it is in its life.
    pub status: DeviceStatus,
    /// How it links.
    pub connection_method: ConnectionMethod,
    /// The number being linked, set by the owner when pairing starts.
    #[serde(with = "stored_phone")]
    pub phone_for_pairing: Option<PhoneNumber>,
    /// The linked account's number, known once connected.
    #[serde(with = "stored_phone")]
    pub phone_number: Option<PhoneNumber>,
    /// The live pairing code, if one is shown.
    pub pairing_code: Option<PairingCode>,
    /// When the live pairing code expires.
    pub pairing_code_expires_at: Option<DateTime<Utc>>,
    /// The live QR payload (QR method).
    pub qr_code: Option<String>,
    /// Why the device failed, in words the owner can act on.
    pub error_message: Option<String>,
    /// When trying again is worth it (WhatsApp throttled pairing for this number).
    pub retry_after: Option<DateTime<Utc>>,
    /// When a session last reached `connected`.
    pub last_connected_at: Option<DateTime<Utc>>,
    /// The runner instance holding the lease, if any.
    pub lease_owner: Option<String>,
    /// When that lease lapses.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// The current fence (0 before the first claim).
    pub lease_fence: Fence,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Last changed.
    pub updated_at: DateTime<Utc>,
}

impl Device {
    /// A record with these values, connection method `pairing`, fence 0 and every optional
    /// column empty; the name is taken as given. For backends that build records from rows
    /// (the fields are public to set the rest).
    pub fn new_unchecked(
        id: DeviceId,
        user_id: UserId,
        device_name: String,
        status: DeviceStatus,
        created_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            user_id,
            device_name,
            status,
            connection_method: ConnectionMethod::Pairing,
            phone_for_pairing: None,
            phone_number: None,
            pairing_code: None,
            pairing_code_expires_at: None,
            qr_code: None,
            error_message: None,
            retry_after: None,
            last_connected_at: None,
            lease_owner: None,
            lease_expires_at: None,
            lease_fence: Fence(0),
            created_at,
            updated_at: created_at,
        }
    }

    /// The pairing code and its expiry, if one is set and still valid at `now`.
    pub fn live_pairing_code(&self, now: DateTime<Utc>) -> Option<(PairingCode, DateTime<Utc>)> {
        let code = self.pairing_code?;
        let expires_at = self.pairing_code_expires_at?;
        (now < expires_at).then_some((code, expires_at))
    }

    /// Whether the current lease (if any) has lapsed at `now`.
    pub fn lease_is_free(&self, now: DateTime<Utc>) -> bool {
        match (&self.lease_owner, self.lease_expires_at) {
            (Some(_), Some(exp)) => exp < now,
            _ => true,
        }
    }
}

impl Device {
    /// Reads a number column as a backend stored it: E.164 digits, taken as they are
    /// ([`PhoneNumber::from_stored_digits`]: validated when they were written); a row an
    /// older system wrote may hold what a person typed, which is parsed
    /// ([`wa_pairing_phone::parse`]); anything else reads as no number.
    ///
    /// ```
    /// use wa_pairing_store::Device;
    ///
    /// assert_eq!(Device::stored_phone("60123456789").unwrap().digits(), "60123456789");
    /// assert_eq!(Device::stored_phone("+62 812-3456-7890").unwrap().digits(), "6281234567890");
    /// assert!(Device::stored_phone("not a number").is_none());
    /// ```
    pub fn stored_phone(text: &str) -> Option<PhoneNumber> {
        PhoneNumber::from_stored_digits(text)
            .or_else(|_| wa_pairing_phone::parse(text))
            .ok()
    }
}

/// Serde for the number columns of a [`Device`]: E.164 digits out, read back with
/// [`Device::stored_phone`].
mod stored_phone {
    use serde::{Deserialize as _, Deserializer, Serializer};
    use wa_pairing_phone::PhoneNumber;

    #[allow(clippy::ref_option)] // serde's `with` hands the field by reference
    pub(super) fn serialize<S: Serializer>(
        phone: &Option<PhoneNumber>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match phone {
            Some(p) => s.serialize_some(p.digits()),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<PhoneNumber>, D::Error> {
        Ok(Option::<String>::deserialize(d)?
            .as_deref()
            .and_then(super::Device::stored_phone))
    }
}

impl fmt::Debug for Device {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let redact = |p: &Option<PhoneNumber>| p.as_ref().map(|n| n.redacted().to_string());
        f.debug_struct("Device")
            .field("id", &self.id)
            .field("user_id", &self.user_id)
            .field("device_name", &self.device_name)
            .field("status", &self.status)
            .field("connection_method", &self.connection_method)
            .field("phone_for_pairing", &redact(&self.phone_for_pairing))
            .field("phone_number", &redact(&self.phone_number))
            .field("pairing_code", &self.pairing_code)
            .field("pairing_code_expires_at", &self.pairing_code_expires_at)
            .field("qr_code", &self.qr_code.as_ref().map(|_| "<redacted>"))
            .field("error_message", &self.error_message)
            .field("retry_after", &self.retry_after)
            .field("last_connected_at", &self.last_connected_at)
            .field("lease_owner", &self.lease_owner)
            .field("lease_expires_at", &self.lease_expires_at)
            .field("lease_fence", &self.lease_fence)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// A device a runner claimed: the record plus the lease it now holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDevice {
    /// The device as it was when claimed (its lease columns already show the new lease).
    pub device: Device,
    /// The lease to carry on every write.
    pub lease: Lease,
}

/// How many devices one user may have unless configured otherwise, in every backend (the
/// SQL migrations read the same default from `wa_pairing_settings`).
pub const DEFAULT_MAX_DEVICES_PER_USER: usize = 20;

/// How many times one owner may start (or refresh) pairing per minute, in a burst, unless
/// configured otherwise, in every backend (the SQL migrations read the same default from
/// `wa_pairing_settings`, name `pairing_starts_per_minute`). Each start makes WhatsApp
/// notify the number's phone, so one account must not start many.
pub const DEFAULT_PAIRING_STARTS_PER_MINUTE: u32 = 6;

/// A companion device as the store knows it: the SHA-256 of its Noise public key (how
/// WhatsApp's server recognises a companion at login), in hex. One companion is stored for
/// one device at most ([`AuthStateStore::register_companion`](crate::AuthStateStore::register_companion)):
/// two sockets with the same companion's keys log each other out.
///
/// Not a secret (a digest of a public key); `Debug` shows its first characters only.
///
/// ```
/// use wa_pairing_store::CompanionKey;
///
/// let key = CompanionKey::of_noise_key(&[7; 32]);
/// assert_eq!(key.as_str().len(), 64);
/// assert_eq!(key, CompanionKey::of_noise_key(&[7; 32]));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CompanionKey(String);

impl CompanionKey {
    /// The key of the companion whose Noise public key is `public_key`.
    pub fn of_noise_key(public_key: &[u8]) -> Self {
        use sha2::Digest as _;
        Self(hex::encode(sha2::Sha256::digest(public_key)))
    }

    /// A key as a backend stored it (64 lower-case hex digits), or `None`.
    pub fn from_stored(s: &str) -> Option<Self> {
        (s.len() == 64
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
        .then(|| Self(s.to_owned()))
    }

    /// The hex digits.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for CompanionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CompanionKey({}…)", &self.0[..self.0.len().min(8)])
    }
}

/// What [`DeviceStore::create`](crate::DeviceStore::create) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct NewDevice {
    /// Owner.
    pub user_id: UserId,
    /// A name for people (1 to 100 characters after trimming).
    pub device_name: String,
    /// How it will link.
    pub connection_method: ConnectionMethod,
}

impl NewDevice {
    /// A device for `user_id` named `device_name`, linking by pairing code.
    pub fn new(user_id: UserId, device_name: impl Into<String>) -> Self {
        Self {
            user_id,
            device_name: device_name.into(),
            connection_method: ConnectionMethod::Pairing,
        }
    }

    /// Sets the connection method.
    #[must_use]
    pub fn method(mut self, method: ConnectionMethod) -> Self {
        self.connection_method = method;
        self
    }

    /// Checks the name; returns the trimmed name.
    pub fn validated_name(&self) -> Result<String, StoreError> {
        validate_device_name(&self.device_name)
    }
}

/// Checks a device name and returns it as stored.
///
/// The rule, the same as the database's (`wa_device_name_check` in the migrations; a test
/// compares the two for every Unicode character):
/// - white space ([`char::is_whitespace`]) and invisible characters ([`is_invisible`]: zero
///   width spaces and joiners, direction marks, variation selectors, fillers, tags) are
///   trimmed from both ends; inside the name they stay (an emoji sequence needs its joiners);
/// - what is left must have 1 to 100 characters (a name made only of invisible characters
///   is empty);
/// - no control character ([`char::is_control`]);
/// - no direction override, embedding or isolate ([`is_direction_override`]): they make a
///   name read differently from how it is stored.
///
/// ```
/// use wa_pairing_store::validate_device_name;
///
/// assert_eq!(validate_device_name("  victim\u{200B} ").unwrap(), "victim");
/// assert!(validate_device_name("\u{200B}\u{200D}").is_err());
/// assert!(validate_device_name("Shop \u{202E}enohp").is_err());
/// assert_eq!(validate_device_name("👩\u{200D}💻 desk").unwrap(), "👩\u{200D}💻 desk");
/// ```
pub fn validate_device_name(name: &str) -> Result<String, StoreError> {
    let trimmed = name.trim_matches(|c: char| c.is_whitespace() || is_invisible(c));
    let len = trimmed.chars().count();
    if len == 0 {
        return Err(StoreError::new(
            ErrorKind::InvalidInput,
            "the device name is empty: give the device a name such as \"Shop phone\"",
        ));
    }
    if len > 100 {
        return Err(StoreError::new(
            ErrorKind::InvalidInput,
            "the device name is longer than 100 characters: choose a shorter name",
        ));
    }
    if trimmed.chars().any(char::is_control) {
        return Err(StoreError::new(
            ErrorKind::InvalidInput,
            "the device name contains control characters: use letters, digits, spaces and punctuation",
        ));
    }
    if trimmed.chars().any(is_direction_override) {
        return Err(StoreError::new(
            ErrorKind::InvalidInput,
            "the device name contains invisible direction overrides (they make text read differently from how it is stored): type the name again without them",
        ));
    }
    Ok(trimmed.to_owned())
}

/// Whether `c` is invisible: one of Unicode's default-ignorable code points (soft hyphen,
/// combining grapheme joiner, Arabic letter mark, Hangul fillers, Khmer inherent vowels,
/// Mongolian variation selectors and vowel separator, zero-width space, non-joiner and
/// joiner, direction marks, embeddings, overrides and isolates, word joiner and the
/// invisible operators, variation selectors, the byte-order mark, musical formatting
/// characters, tags). A device name loses them at its ends.
pub const fn is_invisible(c: char) -> bool {
    matches!(
        c,
        '\u{00AD}'
            | '\u{034F}'
            | '\u{061C}'
            | '\u{115F}'
            | '\u{1160}'
            | '\u{17B4}'
            | '\u{17B5}'
            | '\u{180B}'..='\u{180F}'
            | '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{206F}'
            | '\u{3164}'
            | '\u{FE00}'..='\u{FE0F}'
            | '\u{FEFF}'
            | '\u{FFA0}'
            | '\u{FFF0}'..='\u{FFF8}'
            | '\u{1BCA0}'..='\u{1BCA3}'
            | '\u{1D173}'..='\u{1D17A}'
            | '\u{E0000}'..='\u{E0FFF}'
    )
}

/// Whether `c` overrides the direction of the text around it: the embeddings and overrides
/// (U+202A to U+202E) and the isolates (U+2066 to U+2069). A device name may not hold one.
pub const fn is_direction_override(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// What the owner asks for when starting to link a device.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PairingRequest {
    /// Link with a pairing code sent to WhatsApp on this (validated) number.
    Code {
        /// The number to link.
        phone: PhoneNumber,
    },
    /// Link by scanning a QR code.
    Qr,
}

/// A change a runner makes to a device under its lease.
///
/// Only the fields that are set change. Clearing the pairing code clears its expiry too.
///
/// ```
/// use wa_pairing_store::{DeviceStatus, DeviceUpdate};
///
/// let update = DeviceUpdate::status(DeviceStatus::Failed)
///     .error("WhatsApp refused the pairing request: try again later")
///     .clear_pairing_code();
/// assert_eq!(update.status, Some(DeviceStatus::Failed));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeviceUpdate {
    /// New status (checked with [`DeviceStatus::check_transition`]).
    pub status: Option<DeviceStatus>,
    /// New linked number.
    pub phone_number: Option<Field<PhoneNumber>>,
    /// New pairing code and expiry.
    pub pairing_code: Option<Field<IssuedCode>>,
    /// New QR payload.
    pub qr_code: Option<Field<String>>,
    /// New error message.
    pub error_message: Option<Field<String>>,
    /// New retry-after time.
    pub retry_after: Option<Field<DateTime<Utc>>>,
    /// New last-connected time.
    pub last_connected_at: Option<Field<DateTime<Utc>>>,
}

/// Set or clear one column in a [`DeviceUpdate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field<T> {
    /// Set the column to this value.
    Set(T),
    /// Set the column to NULL.
    Clear,
}

impl<T> Field<T> {
    /// The value to store, `None` for NULL.
    pub fn into_option(self) -> Option<T> {
        match self {
            Self::Set(v) => Some(v),
            Self::Clear => None,
        }
    }

    /// Borrowing form of [`into_option`](Self::into_option).
    pub fn as_option(&self) -> Option<&T> {
        match self {
            Self::Set(v) => Some(v),
            Self::Clear => None,
        }
    }
}

impl DeviceUpdate {
    /// An update that changes nothing yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// An update that moves to `status`.
    pub fn status(status: DeviceStatus) -> Self {
        Self {
            status: Some(status),
            ..Self::default()
        }
    }

    /// Moves to `status` as well.
    #[must_use]
    pub fn with_status(mut self, status: DeviceStatus) -> Self {
        self.status = Some(status);
        self
    }

    /// Records the linked number.
    #[must_use]
    pub fn phone_number(mut self, phone: PhoneNumber) -> Self {
        self.phone_number = Some(Field::Set(phone));
        self
    }

    /// Forgets the linked number (the link is gone: logged out or unlinked).
    #[must_use]
    pub fn clear_phone_number(mut self) -> Self {
        self.phone_number = Some(Field::Clear);
        self
    }

    /// Shows a pairing code with its expiry.
    #[must_use]
    pub fn pairing_code(mut self, code: IssuedCode) -> Self {
        self.pairing_code = Some(Field::Set(code));
        self
    }

    /// Removes the pairing code and its expiry.
    #[must_use]
    pub fn clear_pairing_code(mut self) -> Self {
        self.pairing_code = Some(Field::Clear);
        self
    }

    /// Shows a QR payload.
    #[must_use]
    pub fn qr_code(mut self, qr: impl Into<String>) -> Self {
        self.qr_code = Some(Field::Set(qr.into()));
        self
    }

    /// Removes the QR payload.
    #[must_use]
    pub fn clear_qr_code(mut self) -> Self {
        self.qr_code = Some(Field::Clear);
        self
    }

    /// Sets the error message.
    #[must_use]
    pub fn error(mut self, message: impl Into<String>) -> Self {
        self.error_message = Some(Field::Set(message.into()));
        self
    }

    /// Removes the error message.
    #[must_use]
    pub fn clear_error(mut self) -> Self {
        self.error_message = Some(Field::Clear);
        self
    }

    /// Sets when trying again is worth it.
    #[must_use]
    pub fn retry_after(mut self, at: DateTime<Utc>) -> Self {
        self.retry_after = Some(Field::Set(at));
        self
    }

    /// Removes the retry-after time.
    #[must_use]
    pub fn clear_retry_after(mut self) -> Self {
        self.retry_after = Some(Field::Clear);
        self
    }

    /// Records when the session connected.
    #[must_use]
    pub fn last_connected_at(mut self, at: DateTime<Utc>) -> Self {
        self.last_connected_at = Some(Field::Set(at));
        self
    }

    /// Applies this update to a record in memory (after the transition was checked). Used by
    /// the in-memory backend and by tests that predict a backend's answer.
    pub fn apply_to(&self, device: &mut Device) {
        if let Some(s) = self.status {
            device.status = s;
        }
        if let Some(f) = &self.phone_number {
            device.phone_number = f.as_option().cloned();
        }
        if let Some(f) = &self.pairing_code {
            device.pairing_code = f.as_option().map(|c| c.code);
            device.pairing_code_expires_at = f.as_option().map(|c| c.expires_at);
        }
        if let Some(f) = &self.qr_code {
            device.qr_code = f.as_option().cloned();
        }
        if let Some(f) = &self.error_message {
            device.error_message = f.as_option().cloned();
        }
        if let Some(f) = &self.retry_after {
            device.retry_after = f.as_option().copied();
        }
        if let Some(f) = &self.last_connected_at {
            device.last_connected_at = f.as_option().copied();
        }
    }
}

/// What a runner asks of [`DeviceStore::claim`](crate::DeviceStore::claim).
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_store::{ClaimRequest, DeviceId};
///
/// let unreadable = DeviceId::random();
/// let request = ClaimRequest::new("runner-a", 25, Duration::from_secs(30))
///     .skip([unreadable])
///     .resume_limit(5);
/// assert_eq!(request.skip, [unreadable]);
/// assert_eq!(request.resumes_allowed(), 5);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClaimRequest {
    /// The runner instance claiming (its name in leases).
    pub owner: String,
    /// At most this many devices.
    pub limit: usize,
    /// How long each lease lasts without renewal.
    pub lease_for: Duration,
    /// Devices this instance must not be given (it cannot work on them, for example because
    /// their auth state was sealed with a key it does not have), so that another instance
    /// can.
    pub skip: Vec<DeviceId>,
    /// At most this many of the devices returned may be `connected` ones, sessions to log in
    /// again (`None`: no bound beyond `limit`). Each is a login to WhatsApp, so a runner
    /// taking over a dead instance's devices asks only for as many as it can log in at its
    /// pace; pairings and unlinks are not counted and come first.
    pub resume_limit: Option<usize>,
}

impl ClaimRequest {
    /// Up to `limit` devices for `owner`, each leased for `lease_for`.
    pub fn new(owner: impl Into<String>, limit: usize, lease_for: Duration) -> Self {
        Self {
            owner: owner.into(),
            limit,
            lease_for,
            skip: Vec::new(),
            resume_limit: None,
        }
    }

    /// Returns at most `n` `connected` devices (sessions to log in again) among the `limit`.
    ///
    /// A claim always serves the devices that need a person first: pairings (`connecting`,
    /// `waiting_pairing`) and unlinks, oldest change first. The rest of `limit`, up to `n`,
    /// goes to sessions to resume, the one whose lease has waited longest first (a lapsed
    /// lease by when it lapsed, a released one by when it last changed).
    #[must_use]
    pub fn resume_limit(mut self, n: usize) -> Self {
        self.resume_limit = Some(n);
        self
    }

    /// How many `connected` devices this request may return: `limit`, or less when
    /// [`resume_limit`](Self::resume_limit) says so.
    pub fn resumes_allowed(&self) -> usize {
        self.resume_limit.map_or(self.limit, |n| n.min(self.limit))
    }

    /// Never returns these devices.
    #[must_use]
    pub fn skip(mut self, ids: impl IntoIterator<Item = DeviceId>) -> Self {
        self.skip.extend(ids);
        self
    }
}

/// The key a [`PairingBudget`](crate::PairingBudget) counts a phone number under: a keyed
/// hash (HMAC-SHA256) of the number, so that no budget record reveals the number, and
/// nobody without the secret can tell which number a record belongs to by hashing
/// candidates. Made by a [`BudgetKeyer`].
///
/// `Debug` shows only the first characters.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct BudgetKey(String);

impl BudgetKey {
    /// The key as 32 lower-case hex characters.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for BudgetKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BudgetKey({}…)", &self.0[..6.min(self.0.len())])
    }
}

/// Turns phone numbers into [`BudgetKey`]s with a secret.
///
/// Every instance that shares a budget must use the same secret: derive it from the
/// auth-state keys with [`Keyring::budget_keyer`](crate::Keyring::budget_keyer), or give one
/// with [`BudgetKeyer::new`]. `Debug` never shows the secret.
///
/// ```
/// use wa_pairing_store::BudgetKeyer;
///
/// let keyer = BudgetKeyer::new(b"a secret shared by every instance");
/// let phone = wa_pairing_phone::parse("+62 812 3456 7890").unwrap();
/// let key = keyer.key(&phone);
/// assert_eq!(key.as_str().len(), 32);
/// assert!(!key.as_str().contains("6281234567890"));
/// assert_eq!(key, BudgetKeyer::new(b"a secret shared by every instance").key(&phone));
/// assert_ne!(key, BudgetKeyer::new(b"another secret").key(&phone));
/// ```
#[derive(Clone)]
pub struct BudgetKeyer {
    secret: std::sync::Arc<zeroize::Zeroizing<Vec<u8>>>,
}

impl BudgetKeyer {
    /// A keyer with this secret.
    pub fn new(secret: &[u8]) -> Self {
        Self {
            secret: std::sync::Arc::new(zeroize::Zeroizing::new(secret.to_vec())),
        }
    }

    /// A keyer with a random secret: budgets are then private to this process (enough for
    /// one instance, or for tests).
    pub fn random() -> Self {
        let secret: [u8; 32] = rand::random();
        Self::new(&secret)
    }

    /// The budget key of `phone`.
    pub fn key(&self, phone: &PhoneNumber) -> BudgetKey {
        use hmac::{KeyInit as _, Mac as _};
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&self.secret)
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        mac.update(b"wa-pairing budget v1\0");
        mac.update(phone.digits().as_bytes());
        let digest = mac.finalize().into_bytes();
        BudgetKey(hex::encode(&digest[..16]))
    }
}

impl fmt::Debug for BudgetKeyer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BudgetKeyer(<secret>)")
    }
}

/// The shape of the per-number pairing budget: a token bucket.
///
/// # Default
/// 3 requests per phone number in a burst, one more earned back every 200 s (3 per 10
/// minutes).
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct BudgetConfig {
    /// Requests allowed in a burst.
    pub capacity: u32,
    /// Time to earn back one request (`"200s"` in a configuration file).
    #[serde(with = "humantime_serde")]
    pub refill_every: Duration,
}

impl BudgetConfig {
    /// `capacity` requests in a burst, one more earned back every `refill_every`.
    pub const fn new(capacity: u32, refill_every: Duration) -> Self {
        Self {
            capacity,
            refill_every,
        }
    }
}

impl Default for BudgetConfig {
    fn default() -> Self {
        Self {
            capacity: 3,
            refill_every: Duration::from_secs(200),
        }
    }
}

/// What a pairing budget answers before a code request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BudgetDecision {
    /// Go ahead; one unit of budget was spent.
    Allowed,
    /// Over budget for this number; ask again after this long.
    Denied {
        /// How long until a request will be allowed.
        retry_after: Duration,
    },
}

impl BudgetDecision {
    /// How long to wait when the request was denied; `None` when it was allowed.
    pub const fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Allowed => None,
            Self::Denied { retry_after } => Some(*retry_after),
        }
    }
}

/// A change to a device, from a store's change feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Change {
    /// This device changed (any column).
    Device(DeviceId),
    /// Changes may have been missed (the feed lagged or reconnected): look at everything.
    Resync,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_round_trips_through_text() {
        for s in DeviceStatus::ALL {
            assert_eq!(s.as_str().parse::<DeviceStatus>().unwrap(), s);
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("connected ".parse::<DeviceStatus>().is_err());
    }

    #[test]
    fn every_refusal_has_a_reason() {
        for from in DeviceStatus::ALL {
            for to in DeviceStatus::ALL {
                if let Err(e) = from.check_transition(to) {
                    assert_ne!(
                        e.reason, "this status change is not allowed",
                        "{from} -> {to}"
                    );
                }
            }
        }
    }

    #[test]
    fn names_are_validated() {
        assert_eq!(validate_device_name("  Shop  ").unwrap(), "Shop");
        assert_eq!(validate_device_name("Toko Ibu 📱").unwrap(), "Toko Ibu 📱");
        for bad in ["", "   ", "a\u{0}b"] {
            assert_eq!(
                validate_device_name(bad).unwrap_err().kind(),
                ErrorKind::InvalidInput
            );
        }
        assert!(validate_device_name(&"x".repeat(101)).is_err());
        assert!(validate_device_name(&"é".repeat(100)).is_ok());
    }
}
