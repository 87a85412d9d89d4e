#![doc = include_str!("../README.md")]
//!
//! ## Feature flags
//!
#![doc = document_features::document_features!()]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
pub mod baileys;
mod classify;
mod config;
mod connector;
mod error;
mod guard;
mod inbox;
pub mod keys;
mod session;
mod transport;

pub use backend::WaBackend;
pub use classify::classify_pair_error;
pub use config::{
    Browser, DEFAULT_SERVER_URL, DISPLAY_ENV, DeviceDisplay, Os, PUSH_NAME_ENV, SERVER_URL_ENV,
    WEB_VERSION_ENV, WebVersion, WhatsAppConfig,
};
pub use connector::WhatsAppConnector;
pub use error::{Error, ErrorKind};
pub use guard::{is_loopback_url, server_certificates_verified};
pub use inbox::{Inbox, InboxError};
pub use session::{IncomingText, SendError, SentMessage, WhatsAppSession};

// The WhatsApp client crates, at the exact version this crate is built against: the types in
// this crate's API ([`WhatsAppSession::client`], [`WhatsAppSession::events`], [`WaBackend`]'s
// storage trait, [`classify_pair_error`]) come from them, so reach them through here instead
// of pinning the same versions yourself.
pub use wacore;
/// What a live session's client reports ([`WhatsAppSession::events`]).
pub use wacore::types::events::Event;
/// A decrypted incoming message, as an [`Inbox`] receives it (and as [`Event::Messages`]
/// carries it).
pub use wacore::types::events::InboundMessage;
pub use whatsapp_rust;
/// The client a live session hands out ([`WhatsAppSession::client`]).
pub use whatsapp_rust::Client;
