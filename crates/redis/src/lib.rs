#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
mod config;
mod resilient;
mod scripts;
mod store;

pub use config::{REDIS_ROOT_CERT_ENV, REDIS_URL_ENV, RedisConfig};
pub use resilient::ResilientCodeCache;
pub use store::RedisStore;
