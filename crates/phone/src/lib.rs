#![doc = include_str!("../README.md")]
//!
//! ## Feature flags
//!
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod metadata;
mod number;
mod numbering;
mod parser;

pub use error::{PhoneError, PhoneErrorKind};
pub use metadata::metadata_version;
pub use number::{NumberType, PhoneNumber, RedactedPhone};
pub use parser::{PhoneParser, Region, parse, warm_up};
