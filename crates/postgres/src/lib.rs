#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
mod config;
mod legacy;
mod migrations;
mod params;
mod store;
mod tls;

pub use config::{DATABASE_URL_ENV, PoolMode, PostgresConfig};
pub use legacy::LegacySession;
pub use migrations::MIGRATIONS;
pub use store::{CHANNEL, PostgresStore};
pub use tls::{SSLMODE_ENV, SSLROOTCERT_ENV, SslMode};
