//! `wa-pairing-service`: the runner as a long-running service. Every setting comes from the
//! environment (see the README); logs go to stderr as redacted JSON lines; `GET /livez` and
//! `GET /readyz` answer on `WA_PAIRING_HEALTH_ADDR`; SIGTERM or Ctrl-C stops it gracefully
//! (sessions closed, leases released, so another instance takes over at once).
//!
//! Commands: none (run the service), `check-keys` (open every stored value with the
//! configured keys and report, writing nothing), `reencrypt` (rewrite every value with the
//! current key, safe while the service runs).

use std::process::ExitCode;

use wa_pairing_service::{
    Service, Settings, check_keys, describe_unreadable, init_logging, reencrypt, shutdown_signal,
};

const USAGE: &str = "usage: wa-pairing-service [check-keys | reencrypt]
  (no command)  run the service
  check-keys    open every stored auth-state value with WA_PAIRING_AUTH_KEYS and report
                which key ids hold them; changes nothing (exit 1 when any value is on an
                older key or cannot be opened)
  reencrypt     rewrite every value not on the current key with it; safe while the service
                runs, idempotent, resumable (exit 1 when values cannot be opened)";

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    if !matches!(command.as_deref(), None | Some("check-keys" | "reencrypt")) {
        eprintln!("{USAGE}");
        return ExitCode::from(2);
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    match command.as_deref() {
        Some("check-keys") => keys(&settings).await,
        Some("reencrypt") => match reencrypt(&settings).await {
            Ok(report) if report.unreadable == 0 => ExitCode::SUCCESS,
            Ok(_) => ExitCode::FAILURE,
            Err(e) => {
                tracing::error!(error = %e, "re-encryption failed");
                ExitCode::from(e.exit_code())
            }
        },
        _ => serve(settings).await,
    }
}

async fn serve(settings: Settings) -> ExitCode {
    let service = match Service::build(settings).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "the service cannot start");
            eprintln!("{e}");
            return ExitCode::from(e.exit_code());
        }
    };
    tracing::info!(health = %service.health_addr(), "health endpoint listening");
    service.run(shutdown_signal()).await;
    ExitCode::SUCCESS
}

async fn keys(settings: &Settings) -> ExitCode {
    let stores = match wa_pairing_service::connect_stores(settings).await {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot reach the stores");
            return ExitCode::from(e.exit_code());
        }
    };
    match check_keys(&stores, usize::MAX).await {
        Ok(report) => {
            let by_id: Vec<String> = report
                .values_by_key_id
                .iter()
                .map(|(id, n)| format!("key id {id}: {n} values"))
                .collect();
            tracing::info!(
                devices = report.devices,
                values = report.values,
                current_key_id = report.current_key_id,
                on_older_keys = report.on_older_keys,
                unreadable = report.unreadable,
                "{}",
                by_id.join(", ")
            );
            if report.unreadable > 0 {
                tracing::error!(
                    "{}",
                    describe_unreadable(&report, &settings.keyring.key_ids())
                );
            }
            if report.unreadable > 0 || report.on_older_keys > 0 {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "the key check failed");
            ExitCode::from(e.exit_code())
        }
    }
}
