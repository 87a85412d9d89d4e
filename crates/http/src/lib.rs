#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod auth;
mod error;
mod jwks;
mod router;

pub use auth::{AuthConfig, AuthConfigError, Owner, OwnerFromHeaderOrQuery, Verified};
pub use error::{ApiError, ErrorCode};
pub use router::{ApiState, DeviceView, HttpConfig, holds_link, router};
