//! `wa-pairing-service`: the runner as a long-running service, and the HTTP API when
//! `WA_PAIRING_HTTP_ADDR` is set. Every setting comes from the environment (see the
//! README); logs go to stderr as redacted JSON lines; `GET /livez`, `GET /readyz` and
//! `GET /metrics` (Prometheus) answer on `WA_PAIRING_HEALTH_ADDR`; SIGTERM or Ctrl-C stops it
//! gracefully (sessions closed, leases released, so another instance takes over at once).
//!
//! Commands: none (run the service), `migrate` (apply the database migrations and exit),
//! `check-keys` (open every stored value with the
//! configured keys and report, writing nothing), `reencrypt` (rewrite every value with the
//! current key, safe while the service runs), `import-baileys` (move the original system's
//! Baileys sessions over without linking again), `healthcheck` (ask a running service's
//! `/livez`, for container health checks), `token` (an owner's access token for a local
//! stack: development only).

use std::process::ExitCode;
use std::time::Duration;

use wa_pairing_service::{
    ImportAction, ImportOptions, Service, Settings, TokenOptions, check_keys, describe_unreadable,
    import_baileys, init_logging, install_metrics, migrate, owner_token, probe, reencrypt,
    shutdown_signal,
};
use wa_pairing_store::DeviceId;
use wa_pairing_whatsapp::baileys::Overwrite;

const USAGE: &str = "usage: wa-pairing-service [migrate | check-keys | reencrypt | import-baileys [options] | healthcheck [ready] | token --user UUID [--ttl 1h] | help]
  (no command)  run the service
  help          print this and exit 0 (also --help, -h)
  migrate       apply the database migrations (DATABASE_URL) and exit, waiting up to 5 min
                for a database that does not answer yet (exit 2 on a setting to change)
  check-keys    open every stored auth-state value with WA_PAIRING_AUTH_KEYS and report
                which key ids hold them; changes nothing (exit 1 when any value is on an
                older key or cannot be opened)
  reencrypt     rewrite every value not on the current key with it; safe while the service
                runs, idempotent, resumable (exit 1 when values cannot be opened)
  import-baileys  write the original system's Baileys sessions (devices.session_data) as
                wa-pairing auth state, so the runner resumes them without linking again;
                stop every runner first; idempotent; prints one line per device (exit 1
                when any device failed)
      --dry-run         report what would be imported and why not; write nothing
      --device ID       only this device (repeat for more)
      --from-dir DIR    read one device's credentials from a useMultiFileAuthState folder
                        (with exactly one --device)
      --overwrite       replace a device's existing wa-pairing state of another companion
  healthcheck   ask the service running on WA_PAIRING_HEALTH_ADDR for /livez (with `ready`:
                /readyz); exit 0 when it answers 200, else 1
  token         LOCAL AND DEVELOPMENT USE ONLY: print an owner's access token for the HTTP
                API, signed with SUPABASE_JWT_SECRET (HS256) for the configured issuer;
                refused (exit 2) unless WA_PAIRING_HTTP_ADDR and the issuer are on loopback,
                or WA_PAIRING_ALLOW_DEV_TOKENS=true (a development deployment, never
                production: whoever runs it acts as any owner)
      --user UUID       the owner (the token's subject)
      --ttl DURATION    how long it is valid: 90s, 30m, 1h (default), at most 24h";

#[tokio::main]
async fn main() -> ExitCode {
    let command = std::env::args().nth(1);
    if matches!(command.as_deref(), Some("help" | "--help" | "-h")) {
        println!("{USAGE}");
        return ExitCode::SUCCESS;
    }
    if command.as_deref() == Some("healthcheck") {
        return healthcheck(std::env::args().nth(2).as_deref()).await;
    }
    if command.as_deref() == Some("token") {
        return token(std::env::args().skip(2));
    }
    let import = if command.as_deref() == Some("import-baileys") {
        match import_options(std::env::args().skip(2)) {
            Ok(o) => Some(o),
            Err(e) => {
                eprintln!("{e}\n{USAGE}");
                return ExitCode::from(2);
            }
        }
    } else {
        None
    };
    if let Some(other) = command.as_deref().filter(|c| {
        !matches!(
            *c,
            "migrate" | "check-keys" | "reencrypt" | "import-baileys"
        )
    }) {
        eprintln!("unknown command `{other}`\n{USAGE}");
        return ExitCode::from(2);
    }
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            match command.as_deref() {
                Some(command) => eprint!("{}", e.report(&format!("{command} cannot run"))),
                None => eprint!("{e}"),
            }
            return ExitCode::from(2);
        }
    };
    init_logging(settings.log_format);
    match command.as_deref() {
        Some("migrate") => match migrate(&settings).await {
            Ok(applied) => {
                tracing::info!(applied, "migrations applied");
                ExitCode::SUCCESS
            }
            Err(e) => {
                tracing::error!(error = %e, "the migrations were not applied");
                ExitCode::from(e.exit_code())
            }
        },
        Some("check-keys") => keys(&settings).await,
        Some("reencrypt") => match reencrypt(&settings).await {
            Ok(report) if report.unreadable == 0 => ExitCode::SUCCESS,
            Ok(_) => ExitCode::FAILURE,
            Err(e) => {
                tracing::error!(error = %e, "re-encryption failed");
                ExitCode::from(e.exit_code())
            }
        },
        Some("import-baileys") => run_import(&settings, &import.unwrap_or_default()).await,
        _ => serve(settings).await,
    }
}

fn import_options(args: impl Iterator<Item = String>) -> Result<ImportOptions, String> {
    let mut options = ImportOptions::new();
    let mut args = args.peekable();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--dry-run" => options = options.dry_run(true),
            "--overwrite" => options = options.overwrite(Overwrite::Replace),
            "--device" => {
                let id = args.next().ok_or("--device needs a device id")?;
                let id: DeviceId = id
                    .parse()
                    .map_err(|_| format!("--device {id}: not a device id (a UUID)"))?;
                options = options.device(id);
            }
            "--from-dir" => {
                let dir = args.next().ok_or("--from-dir needs a folder")?;
                options = options.from_dir(dir);
            }
            other => return Err(format!("import-baileys: unknown option {other}")),
        }
    }
    Ok(options)
}

async fn run_import(settings: &Settings, options: &ImportOptions) -> ExitCode {
    let result = import_baileys(settings, options, |line| println!("{line}")).await;
    match result {
        Ok(report) => {
            println!(
                "{} imported, {} would be imported, {} already imported, {} skipped, {} failed{}",
                report.count(ImportAction::Imported),
                report.count(ImportAction::WouldImport),
                report.count(ImportAction::AlreadyImported),
                report.count(ImportAction::Skipped),
                report.count(ImportAction::Failed),
                if options.dry_run {
                    " (dry run: nothing was written)"
                } else {
                    ""
                }
            );
            if report.has_failures() {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            tracing::error!(error = %e, "the import could not run");
            eprintln!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}

/// Prints an owner's token on standard output (and nothing else there); every refusal is one
/// line on standard error and exit 2. Nothing is logged: the token is the output.
fn token(args: impl Iterator<Item = String>) -> ExitCode {
    let options = match TokenOptions::parse(args) {
        Ok(o) => o,
        Err(e) => {
            eprintln!("{e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprint!("{e}");
            return ExitCode::from(2);
        }
    };
    match owner_token(
        &settings,
        |n| std::env::var(n).ok(),
        &options,
        std::time::SystemTime::now(),
    ) {
        Ok(token) => {
            println!("{token}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            ExitCode::from(2)
        }
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
