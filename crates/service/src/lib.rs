//! The production runner service, as a library so that its own code is what the end-to-end
//! tests run: [`Settings`] from the environment, [`Service::build`] wires the stores (with the
//! auth-state keys checked against what is stored), the WhatsApp connector and the runner,
//! [`Service::run`] serves the health endpoint (and `/metrics` with
//! [`Service::with_metrics`]), the HTTP API when configured, and runs until shutdown;
//! [`reencrypt`] and [`check_keys`] are the key-rotation commands; [`import_baileys`]
//! moves the original system's Baileys sessions over without linking again; [`probe`] is
//! the container health check; [`owner_token`] signs an owner's access token for a local
//! stack (development only).
//!
//! The binary (`src/main.rs`) adds logging (redacted: see [`logging`]), the signals and the
//! commands. See `README.md` for every setting.

mod import;
pub mod logging;
mod placeholders;
pub mod probe;
pub mod prometheus;
mod service;
mod settings;
mod token;

use tracing::info;

pub use import::{ImportAction, ImportLine, ImportOptions, ImportReport, import_baileys};
pub use logging::{LogFormat, init_logging};
pub use prometheus::{MetricsError, install_metrics, prometheus_builder};
pub use service::{
    BuildError, MIGRATE_WAIT, Service, check_keys, connect_stores, describe_unreadable, migrate,
    reencrypt,
};
pub use settings::{
    DEFAULT_HEALTH_ADDR, HttpSettings, Settings, SettingsError, StoreSettings, env,
};
pub use token::{
    ALLOW_DEV_TOKENS, DEFAULT_TOKEN_TTL, MAX_TOKEN_TTL, TokenError, TokenOptions, owner_token,
};

/// Completes on SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    info!("shutdown requested: closing sessions and releasing leases");
}
