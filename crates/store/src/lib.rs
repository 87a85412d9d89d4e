#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod encrypted;
mod error;
mod memory;
mod traits;
mod types;

pub use encrypted::{AUTH_KEYS_ENV, EncryptedAuthState, Keyring};
pub use error::{ErrorKind, StoreError, StoreResult};
#[cfg(feature = "sql")]
#[cfg_attr(docsrs, doc(cfg(feature = "sql")))]
pub mod sql;
#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub mod testkit;

pub use memory::{BudgetConfig, MAX_AUTH_KEY_BYTES, MemoryStore, check_key};
pub use traits::{
    AuthStateStore, ChangeStream, Clock, CodeCache, DeviceStore, Entry, ManualClock, PairingBudget,
    SystemClock,
};
pub use types::{
    BudgetDecision, Change, ClaimedDevice, ConnectionMethod, Device, DeviceId, DeviceStatus,
    DeviceUpdate, Fence, Field, Lease, NewDevice, PairingRequest, TransitionError, UserId,
    validate_device_name,
};

// Re-exported so backends and callers use the same versions.
pub use async_trait::async_trait;
pub use wa_pairing_code as code;
pub use wa_pairing_phone as phone;
pub use wa_pairing_retry as retry;
