#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod backend;
pub mod baileys;
mod classify;
mod config;
mod connector;
mod error;
mod guard;
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
pub use session::{IncomingText, SendError, SentMessage, WhatsAppSession};
