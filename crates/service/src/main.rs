//! `wa-pairing-service`: the runner as a long-running service. Every setting comes from the
//! environment (see the README); logs go to stderr as JSON lines; `GET /livez` and
//! `GET /readyz` answer on `WA_PAIRING_HEALTH_ADDR`; SIGTERM or Ctrl-C stops it gracefully
//! (sessions closed, leases released, so another instance takes over at once).

use std::process::ExitCode;

use wa_pairing_service::{Service, Settings, init_logging, shutdown_signal};

#[tokio::main]
async fn main() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    let service = match Service::build(settings).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the service cannot start");
            return ExitCode::FAILURE;
        }
    };
    tracing::info!(health = %service.health_addr(), "health endpoint listening");
    service.run(shutdown_signal()).await;
    ExitCode::SUCCESS
}
