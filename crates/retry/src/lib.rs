#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod classify;
mod policy;
mod readiness;
mod run;

pub use classify::{Classify, Verdict};
pub use policy::{Backoff, Delays, RetryPolicy};
pub use readiness::{Readiness, ReadinessWait};
pub use run::{Failure, GiveUpReason, RetryError, RetryEvent};
