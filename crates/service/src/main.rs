//! `wa-pairing-service`: the runner as a long-running service, and the HTTP API when
//! `WA_PAIRING_HTTP_ADDR` is set. Every setting comes from the environment (see the
//! README); logs go to stderr as redacted JSON lines; `GET /livez`, `GET /readyz` and
//! `GET /metrics` (Prometheus) answer on `WA_PAIRING_HEALTH_ADDR`; SIGTERM or Ctrl-C stops it
//! gracefully (sessions closed, leases released, so another instance takes over at once).
//!
//! Commands: none (run the service), `check-keys` (open every stored value with the
//! configured keys and report, writing nothing), `reencrypt` (rewrite every value with the
//! current key, safe while the service runs), `healthcheck` (ask a running service's
//! `/livez`, for container health checks).

use std::process::ExitCode;
use std::time::Duration;

use wa_pairing_service::{
    Service, Settings, check_keys, describe_unreadable, init_logging, install_metrics, probe,
    reencrypt, shutdown_signal,
};

const USAGE: &str = "usage: wa-pairing-service [check-keys | reencrypt | healthcheck [ready]]
  (no command)  run the service
  check-keys    open every stored auth-state value with WA_PAIRING_AUTH_KEYS and report
                which key ids hold them; changes nothing (exit 1 when any value is on an
                older key or cannot be opened)
  reencrypt     rewrite every value not on the current key with it; safe while the service
                runs, idempotent, resumable (exit 1 when values cannot be opened)
  healthcheck   ask the service running on WA_PAIRING_HEALTH_ADDR for /livez (with `ready`:
                /readyz); exit 0 when it answers 200, else 1";

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    if command.as_deref() == Some("healthcheck") {
        return healthcheck(std::env::args().nth(2).as_deref()).await;
    }
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

/// Exit 0 when the local service answers 200 on `/livez` (`/readyz` with `ready`), for
/// container health checks: the image has no HTTP client.
async fn healthcheck(what: Option<&str>) -> ExitCode {
    let path = match what {
        None | Some("live") => "/livez",
        Some("ready") => "/readyz",
        Some(_) => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    let addr = match probe::local_health_addr(|n| std::env::var(n).ok()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    match probe::probe(addr, path, Duration::from_secs(3)).await {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("{path} on {addr} answered {status}");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
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
    let service = match install_metrics() {
        Ok(handle) => service.with_metrics(handle),
        Err(e) => {
            tracing::warn!(error = %e, "serving no /metrics");
            service
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
