#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod encrypted;
mod error;
mod memory;
pub mod net;
mod stores;
mod traits;
mod types;

pub use encrypted::{AUTH_KEYS_ENV, EncryptedAuthState, KeyReport, Keyring};
pub use error::{ErrorKind, StoreError, StoreResult};

pub use memory::{MAX_AUTH_KEY_BYTES, MemoryStore, check_key};
pub use stores::{Capabilities, Stores, StoresBuilder};
pub use traits::{
    AuthStateStore, BudgetSecret, ChangeStream, Clock, CodeCache, DeviceStore, Entry, ManualClock,
    PairingBudget, SystemClock,
};
pub use types::{
    BudgetConfig, BudgetDecision, BudgetKey, BudgetKeyer, Change, ClaimRequest, ClaimedDevice,
    CompanionKey, ConnectionMethod, DEFAULT_MAX_DEVICES_PER_USER,
    DEFAULT_PAIRING_STARTS_PER_MINUTE, Device, DeviceId, DeviceStatus, DeviceUpdate, Fence, Field,
    Lease, NewDevice, OwnerAction, PairingRequest, TransitionError, UserId, is_direction_override,
    is_invisible, validate_device_name,
};

// Re-exported so backends and callers use the same versions.
pub use async_trait::async_trait;
pub use wa_pairing_code as code;
pub use wa_pairing_phone as phone;
pub use wa_pairing_retry as retry;
