#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
mod config;
mod store;

pub use config::{KeyKind, SUPABASE_SERVICE_ROLE_KEY_ENV, SUPABASE_URL_ENV, SupabaseConfig};
pub use store::SupabaseStore;
