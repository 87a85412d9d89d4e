#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
mod config;
mod migrations;
mod store;

pub use config::{DATABASE_URL_ENV, PostgresConfig};
pub use migrations::MIGRATIONS;
pub use store::{CHANNEL, PostgresStore};
