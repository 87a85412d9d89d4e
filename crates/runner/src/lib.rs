#![doc = include_str!("../README.md")]
//!
//! ## Feature flags
//!
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod actor;
mod config;
pub mod connector;
mod live;
mod messages;
pub mod metrics;
mod pace;
mod runner;

pub use config::{ConfigError, RunnerConfig};
pub use live::{LiveSession, LiveSessionError, LiveSessions, SessionChange};
pub use runner::{RunSummary, Runner, RunnerStatus};

pub use connector::{
    Connector, ConnectorError, ConnectorErrorKind, OpenedSession, Session, SessionEvent,
    SessionEvents, SessionMode, SessionSpec,
};
#[cfg(feature = "mocks")]
#[cfg_attr(docsrs, doc(cfg(feature = "mocks")))]
pub use connector::{MockConnector, MockSession};
