//! The production runner service, as a library so that its own code is what the end-to-end
//! tests run: [`Settings`] from the environment, [`Service::build`] wires the stores, the
//! WhatsApp connector and the runner, [`Service::run`] serves the health endpoint and runs
//! until shutdown.
//!
//! The binary (`src/main.rs`) adds logging and the signals. See `README.md` for every
//! setting.

use std::fmt;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use serde_json::json;
use tracing::{info, warn};
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_redis::{RedisConfig, RedisStore};
use wa_pairing_runner::{RunSummary, Runner, RunnerConfig};
use wa_pairing_store::{AuthStateStore, DeviceId, DeviceStore, ErrorKind, Keyring, PairingBudget};
use wa_pairing_supabase::{SupabaseConfig, SupabaseStore};
use wa_pairing_whatsapp::WhatsAppConfig;

/// Where devices and auth state are kept.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreSettings {
    /// A direct PostgreSQL connection (`DATABASE_URL`), with the change feed.
    Postgres(PostgresConfig),
    /// Supabase's REST API (`SUPABASE_URL`, `SUPABASE_SERVICE_ROLE_KEY`), polled.
    Supabase(SupabaseConfig),
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (the default, for log collectors).
    Json,
    /// Human-readable lines.
    Text,
}

/// Everything the service needs, read and checked at once.
///
/// `Debug` shows no secret: URLs are redacted by their own types and the keyring shows only
/// key ids.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Settings {
    /// The durable store.
    pub store: StoreSettings,
    /// Redis for the code cache and the pairing budget, if configured.
    pub redis: Option<RedisConfig>,
    /// The auth-state encryption keys.
    pub keyring: Keyring,
    /// This instance's name in leases.
    pub instance_id: String,
    /// Where the health endpoint listens.
    pub health_addr: SocketAddr,
    /// Whether to apply the migrations at start (direct PostgreSQL only).
    pub migrate: bool,
    /// At most this many devices held at once.
    pub max_sessions: Option<usize>,
    /// Log line format.
    pub log_format: LogFormat,
    /// WhatsApp connection overrides: server URL, web version, device display, push name.
    pub whatsapp_server: Option<String>,
    /// `WA_PAIRING_WA_VERSION`.
    pub whatsapp_version: Option<wa_pairing_whatsapp::WebVersion>,
    /// `WA_PAIRING_WA_DISPLAY`.
    pub whatsapp_display: Option<wa_pairing_whatsapp::DeviceDisplay>,
    /// `WA_PAIRING_WA_PUSH_NAME`.
    pub whatsapp_push_name: Option<String>,
}

/// Every setting that is missing or malformed, each with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "the service cannot start; fix these settings:")?;
        for p in &self.problems {
            writeln!(f, "  - {p}")?;
        }
        Ok(())
    }
}

impl std::error::Error for SettingsError {}

/// The environment variables [`Settings`] reads.
pub mod env {
    /// A direct PostgreSQL URL (preferred store).
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// The Supabase project URL (store over REST when `DATABASE_URL` is not set).
    pub const SUPABASE_URL: &str = wa_pairing_supabase::SUPABASE_URL_ENV;
    /// The Supabase service key.
    pub const SUPABASE_SERVICE_ROLE_KEY: &str = wa_pairing_supabase::SUPABASE_SERVICE_ROLE_KEY_ENV;
    /// Redis (optional): code cache and pairing budget.
    pub const REDIS_URL: &str = wa_pairing_redis::REDIS_URL_ENV;
    /// The auth-state keys, `id:base64key[,id:base64key...]`, the first one current.
    pub const AUTH_KEYS: &str = wa_pairing_store::AUTH_KEYS_ENV;
    /// This instance's name in leases (default: `HOSTNAME`, else random).
    pub const INSTANCE_ID: &str = "WA_PAIRING_INSTANCE_ID";
    /// Health endpoint address (default `0.0.0.0:8080`).
    pub const HEALTH_ADDR: &str = "WA_PAIRING_HEALTH_ADDR";
    /// `true` to apply the migrations at start (direct PostgreSQL only).
    pub const MIGRATE: &str = "WA_PAIRING_MIGRATE";
    /// At most this many devices per instance.
    pub const MAX_SESSIONS: &str = "WA_PAIRING_MAX_SESSIONS";
    /// `json` (default) or `text`.
    pub const LOG_FORMAT: &str = "WA_PAIRING_LOG_FORMAT";
}

impl Settings {
    /// Reads the process environment.
    ///
    /// # Errors
    ///
    /// Every missing or malformed setting, at once.
    pub fn from_env() -> Result<Self, SettingsError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a name to its value); empty values count as unset.
    ///
    /// ```
    /// use wa_pairing_service::Settings;
    ///
    /// let err = Settings::from_lookup(|_| None).unwrap_err();
    /// assert!(err.to_string().contains("DATABASE_URL"));
    /// assert!(err.to_string().contains("WA_PAIRING_AUTH_KEYS"));
    /// ```
    ///
    /// # Errors
    ///
    /// Every missing or malformed setting, at once.
    #[allow(clippy::too_many_lines)]
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let mut problems = Vec::new();

        let store = match (
            var(env::DATABASE_URL),
            var(env::SUPABASE_URL),
            var(env::SUPABASE_SERVICE_ROLE_KEY),
        ) {
            (Some(url), _, _) => {
                if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                    Some(StoreSettings::Postgres(PostgresConfig::new(url)))
                } else {
                    problems.push(format!(
                        "{} must be a postgres:// URL (postgres://user:password@host:5432/database)",
                        env::DATABASE_URL
                    ));
                    None
                }
            }
            (None, Some(url), Some(key)) => match SupabaseConfig::new(url, key) {
                Ok(c) => Some(StoreSettings::Supabase(c)),
                Err(e) => {
                    problems.push(e.message().to_owned());
                    None
                }
            },
            (None, Some(_), None) => {
                problems.push(format!(
                    "{} is set but {} is not: set the project's secret key too (or set {} for a direct connection)",
                    env::SUPABASE_URL,
                    env::SUPABASE_SERVICE_ROLE_KEY,
                    env::DATABASE_URL
                ));
                None
            }
            (None, None, _) => {
                problems.push(format!(
                    "no store: set {} (a direct PostgreSQL connection, preferred) or {} and {}",
                    env::DATABASE_URL,
                    env::SUPABASE_URL,
                    env::SUPABASE_SERVICE_ROLE_KEY
                ));
                None
            }
        };

        let redis = var(env::REDIS_URL).map(RedisConfig::new);

        let keyring = match var(env::AUTH_KEYS) {
            Some(spec) => match Keyring::parse(&spec) {
                Ok(k) => Some(k),
                Err(e) => {
                    problems.push(format!("{}: {}", env::AUTH_KEYS, e.message()));
                    None
                }
            },
            None => {
                problems.push(format!(
                    "{} is not set: set it to 1:<base64 of 32 random bytes> (`openssl rand -base64 32`); it encrypts every session's keys",
                    env::AUTH_KEYS
                ));
                None
            }
        };

        let instance_id = var(env::INSTANCE_ID)
            .or_else(|| var("HOSTNAME"))
            .unwrap_or_else(|| {
                format!("runner-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
            });

        let health_addr = match var(env::HEALTH_ADDR) {
            None => SocketAddr::from(([0, 0, 0, 0], 8080)),
            Some(a) => a.parse().unwrap_or_else(|_| {
                problems.push(format!(
                    "{} must be host:port, for example 0.0.0.0:8080",
                    env::HEALTH_ADDR
                ));
                SocketAddr::from(([0, 0, 0, 0], 8080))
            }),
        };

        let migrate = match var(env::MIGRATE).as_deref().map(str::to_ascii_lowercase) {
            None => false,
            Some(v) if matches!(v.as_str(), "1" | "true" | "yes") => true,
            Some(v) if matches!(v.as_str(), "0" | "false" | "no") => false,
            Some(_) => {
                problems.push(format!("{} must be true or false", env::MIGRATE));
                false
            }
        };
        if migrate && matches!(store, Some(StoreSettings::Supabase(_))) {
            problems.push(format!(
                "{} needs {}: apply the migrations to a Supabase project with `supabase db push`",
                env::MIGRATE,
                env::DATABASE_URL
            ));
        }

        let max_sessions = match var(env::MAX_SESSIONS) {
            None => None,
            Some(v) => match v.parse::<usize>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    problems.push(format!(
                        "{} must be a positive whole number",
                        env::MAX_SESSIONS
                    ));
                    None
                }
            },
        };

        let log_format = match var(env::LOG_FORMAT).as_deref() {
            None | Some("json") => LogFormat::Json,
            Some("text") => LogFormat::Text,
            Some(_) => {
                problems.push(format!("{} must be json or text", env::LOG_FORMAT));
                LogFormat::Json
            }
        };

        let whatsapp_version = var(wa_pairing_whatsapp::WEB_VERSION_ENV).and_then(|v| {
            v.parse()
                .map_err(|e| {
                    problems.push(format!("{}: {e}", wa_pairing_whatsapp::WEB_VERSION_ENV));
                })
                .ok()
        });
        let whatsapp_display = var(wa_pairing_whatsapp::DISPLAY_ENV).and_then(|v| {
            v.parse()
                .map_err(|e| problems.push(format!("{}: {e}", wa_pairing_whatsapp::DISPLAY_ENV)))
                .ok()
        });

        match (store, keyring) {
            (Some(store), Some(keyring)) if problems.is_empty() => Ok(Self {
                store,
                redis,
                keyring,
                instance_id,
                health_addr,
                migrate,
                max_sessions,
                log_format,
                whatsapp_server: var(wa_pairing_whatsapp::SERVER_URL_ENV),
                whatsapp_version,
                whatsapp_display,
                whatsapp_push_name: var(wa_pairing_whatsapp::PUSH_NAME_ENV),
            }),
            _ => Err(SettingsError { problems }),
        }
    }
}

/// What the health endpoint reports.
struct Health {
    store: Arc<dyn DeviceStore>,
    running: AtomicBool,
    instance_id: String,
}

/// The wired service, ready to run.
pub struct Service {
    runner: Runner,
    health: Arc<Health>,
    listener: tokio::net::TcpListener,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("instance_id", &self.health.instance_id)
            .field("health_addr", &self.listener.local_addr().ok())
            .finish_non_exhaustive()
    }
}

/// Why the service could not be built.
#[derive(Debug)]
pub struct BuildError(String);

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BuildError {}

fn build_error(what: &str, e: impl fmt::Display) -> BuildError {
    BuildError(format!("{what}: {e}"))
}

impl Service {
    /// Connects the stores (applying the migrations when asked), builds the WhatsApp
    /// connector and the runner, and binds the health endpoint.
    ///
    /// # Errors
    ///
    /// A store that cannot be set up, migrations that fail, a connector setting WhatsApp's
    /// client refuses, or a health address that cannot be bound.
    pub async fn build(settings: Settings) -> Result<Self, BuildError> {
        let (devices, auth): (Arc<dyn DeviceStore>, Arc<dyn AuthStateStore>) = match &settings.store
        {
            StoreSettings::Postgres(config) => {
                let store =
                    PostgresStore::connect(config).map_err(|e| build_error("PostgreSQL", e))?;
                if settings.migrate {
                    let applied = store
                        .migrate()
                        .await
                        .map_err(|e| build_error("applying the migrations", e))?;
                    info!(applied, "migrations applied");
                }
                let store = Arc::new(store);
                (store.clone(), store)
            }
            StoreSettings::Supabase(config) => {
                let store = Arc::new(
                    SupabaseStore::new(config.clone()).map_err(|e| build_error("Supabase", e))?,
                );
                (store.clone(), store)
            }
        };

        let mut whatsapp = WhatsAppConfig::new(auth.clone()).keyring(settings.keyring.clone());
        if let Some(url) = &settings.whatsapp_server {
            whatsapp = whatsapp.server_url(url.clone());
        }
        if let Some(v) = settings.whatsapp_version {
            whatsapp = whatsapp.web_version(v);
        }
        if let Some(d) = settings.whatsapp_display {
            whatsapp = whatsapp.display(d);
        }
        if let Some(n) = &settings.whatsapp_push_name {
            whatsapp = whatsapp.push_name(n.clone());
        }
        let connector = whatsapp
            .build()
            .map_err(|e| build_error("the WhatsApp connector", e))?;

        let mut config = RunnerConfig::default().instance_id(settings.instance_id.clone());
        if let Some(n) = settings.max_sessions {
            config = config.max_sessions(n);
        }
        if matches!(settings.store, StoreSettings::Supabase(_)) {
            // No change feed over REST: claim a little more often.
            config = config.claim_interval(Duration::from_secs(2));
        }
        let mut runner = Runner::new(devices.clone(), Arc::new(connector), config)
            .map_err(|e| build_error("the runner", e))?
            .with_auth_state(auth);
        if let Some(redis) = &settings.redis {
            let redis = RedisStore::new(redis.clone()).map_err(|e| build_error("Redis", e))?;
            let budget: Arc<dyn PairingBudget> = Arc::new(redis.clone());
            runner = runner
                .with_code_cache(Arc::new(redis.resilient_cache()))
                .with_budget(budget);
        }

        let listener = tokio::net::TcpListener::bind(settings.health_addr)
            .await
            .map_err(|e| {
                build_error(
                    &format!(
                        "the health endpoint cannot listen on {}",
                        settings.health_addr
                    ),
                    e,
                )
            })?;
        Ok(Self {
            runner,
            health: Arc::new(Health {
                store: devices,
                running: AtomicBool::new(false),
                instance_id: settings.instance_id,
            }),
            listener,
        })
    }

    /// Where the health endpoint listens (useful with port 0).
    ///
    /// # Panics
    ///
    /// Never in practice: the listener is bound.
    pub fn health_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener")
    }

    /// Serves `GET /livez` (the process runs) and `GET /readyz` (the runner runs and the
    /// store answers), and runs the runner until `shutdown` completes; then every session
    /// closes and every lease is released.
    pub async fn run<S>(self, shutdown: S) -> RunSummary
    where
        S: Future<Output = ()> + Send + 'static,
    {
        let app = axum::Router::new()
            .route("/livez", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .with_state(self.health.clone());
        let (stop_http, http_stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            let served = axum::serve(self.listener, app)
                .with_graceful_shutdown(async {
                    let _ = http_stopped.await;
                })
                .await;
            if let Err(e) = served {
                warn!(error = %e, "the health endpoint stopped");
            }
        });
        self.health.running.store(true, Ordering::SeqCst);
        info!(instance = %self.health.instance_id, "service started");
        let summary = self.runner.run(shutdown).await;
        self.health.running.store(false, Ordering::SeqCst);
        let _ = stop_http.send(());
        let _ = server.await;
        info!(
            claimed = summary.claimed,
            released = summary.released,
            "service stopped"
        );
        summary
    }
}

async fn ready(State(health): State<Arc<Health>>) -> (StatusCode, Json<serde_json::Value>) {
    let running = health.running.load(Ordering::SeqCst);
    // A lookup of a device that cannot exist: "not found" proves the store answers.
    let probe = tokio::time::timeout(
        Duration::from_secs(3),
        health.store.get(DeviceId(uuid::Uuid::nil())),
    )
    .await;
    let store_ok = matches!(&probe, Ok(Ok(_)))
        || matches!(&probe, Ok(Err(e)) if e.kind() == ErrorKind::NotFound);
    let status = if running && store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({
            "instance": health.instance_id,
            "runner": if running { "running" } else { "stopped" },
            "store": if store_ok { "ok" } else { "unavailable" },
        })),
    )
}

/// Installs the global log subscriber: `RUST_LOG` filters (default `info`), `format` shapes.
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Text => builder.try_init(),
    };
}

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

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    const KEYS: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        Settings::from_lookup(|n| map.get(n).cloned())
    }

    #[test]
    fn a_direct_connection_with_keys_is_enough() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://svc:pw@db:5432/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("WA_PAIRING_INSTANCE_ID", "runner-7"),
        ])
        .unwrap();
        assert!(matches!(s.store, StoreSettings::Postgres(_)));
        assert!(s.redis.is_none());
        assert_eq!(s.instance_id, "runner-7");
        assert_eq!(s.health_addr.port(), 8080);
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(!s.migrate);
        let shown = format!("{s:?}");
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(!shown.contains("AAECAwQF"), "{shown}");
    }

    #[test]
    fn supabase_is_used_without_a_database_url() {
        let s = settings(&[
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_abc"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("REDIS_URL", "redis://127.0.0.1:6379"),
        ])
        .unwrap();
        assert!(matches!(s.store, StoreSettings::Supabase(_)));
        assert!(s.redis.is_some());
    }

    #[test]
    fn every_problem_is_reported_at_once_with_what_to_do() {
        let e = settings(&[
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("WA_PAIRING_HEALTH_ADDR", "everywhere"),
            ("WA_PAIRING_MIGRATE", "perhaps"),
            ("WA_PAIRING_MAX_SESSIONS", "0"),
            ("WA_PAIRING_LOG_FORMAT", "xml"),
        ])
        .unwrap_err();
        let text = e.to_string();
        for needle in [
            "SUPABASE_SERVICE_ROLE_KEY",
            "WA_PAIRING_AUTH_KEYS",
            "WA_PAIRING_HEALTH_ADDR",
            "WA_PAIRING_MIGRATE",
            "WA_PAIRING_MAX_SESSIONS",
            "WA_PAIRING_LOG_FORMAT",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(e.problems.len(), 6, "{text}");
    }

    #[test]
    fn malformed_values_are_refused_without_echoing_secrets() {
        let e = settings(&[
            ("DATABASE_URL", "mysql://root:hunter2@db/app"),
            ("WA_PAIRING_AUTH_KEYS", "1:hunter2"),
        ])
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("postgres://"), "{text}");
        assert!(!text.contains("hunter2"), "{text}");
        let e = settings(&[
            ("DATABASE_URL", "postgres://db/app"),
            ("SUPABASE_URL", "https://abc.supabase.co"),
            ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_abc"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("WA_PAIRING_MIGRATE", "true"),
        ]);
        assert!(
            e.is_ok(),
            "DATABASE_URL wins over Supabase, so migrating is possible"
        );
    }
}
