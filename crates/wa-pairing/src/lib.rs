#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

pub use wa_pairing_code as code;
pub use wa_pairing_phone as phone;
pub use wa_pairing_retry as retry;
pub use wa_pairing_store as store;

#[cfg(feature = "runner")]
#[cfg_attr(docsrs, doc(cfg(feature = "runner")))]
pub use wa_pairing_runner as runner;

#[cfg(feature = "postgres")]
#[cfg_attr(docsrs, doc(cfg(feature = "postgres")))]
pub use wa_pairing_postgres as postgres;

#[cfg(feature = "supabase")]
#[cfg_attr(docsrs, doc(cfg(feature = "supabase")))]
pub use wa_pairing_supabase as supabase;

#[cfg(feature = "redis")]
#[cfg_attr(docsrs, doc(cfg(feature = "redis")))]
pub use wa_pairing_redis as redis;

#[cfg(feature = "whatsapp")]
#[cfg_attr(docsrs, doc(cfg(feature = "whatsapp")))]
pub use wa_pairing_whatsapp as whatsapp;

#[cfg(feature = "http")]
#[cfg_attr(docsrs, doc(cfg(feature = "http")))]
pub use wa_pairing_http as http;

#[cfg(feature = "testkit")]
#[cfg_attr(docsrs, doc(cfg(feature = "testkit")))]
pub use wa_pairing_store_testkit as testkit;

pub use wa_pairing_code::{IssuedCode, PairingCode};
pub use wa_pairing_phone::PhoneNumber;
pub use wa_pairing_store::{
    AuthStateStore, CodeCache, Device, DeviceId, DeviceStatus, DeviceStore, MemoryStore,
    StoreError, UserId,
};
