#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod error;
mod number;
mod parser;

pub use error::{PhoneError, PhoneErrorKind};
pub use number::{NumberType, PhoneNumber, RedactedPhone};
pub use parser::{PhoneParser, Region, parse, warm_up};
