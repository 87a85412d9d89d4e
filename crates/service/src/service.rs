//! The wired service: stores, keys checked, connector, runner, health endpoint.

use std::fmt;
use std::future::{Future, IntoFuture as _};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use metrics_exporter_prometheus::PrometheusHandle;
use serde_json::json;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tracing::{error, info, warn};
use wa_pairing_http::HttpConfig;
use wa_pairing_postgres::PostgresStore;
use wa_pairing_redis::RedisStore;
use wa_pairing_retry::{Backoff, Classify as _, RetryPolicy};
use wa_pairing_runner::{RunSummary, Runner, RunnerStatus};
use wa_pairing_store::{DeviceId, DeviceStore, ErrorKind, KeyReport, StoreError, Stores};
use wa_pairing_supabase::SupabaseStore;

use crate::settings::env::AUTH_KEYS;
use crate::settings::{HttpSettings, Settings, StoreSettings};

/// How many devices the start-up key check opens every value of.
const KEY_CHECK_DEVICES: usize = 25;

/// How long `/readyz` reuses its last look at the store.
const READY_CACHE: Duration = Duration::from_secs(5);

/// How long the HTTP API waits at shutdown for its requests to finish before it closes the
/// rest (event streams never finish: browsers reconnect to another instance).
const API_DRAIN: Duration = Duration::from_secs(5);

/// How often the Prometheus recorder's histograms are drained between scrapes.
const METRICS_UPKEEP: Duration = Duration::from_secs(5);

/// Why the service (or one of its commands) could not do its work.
#[derive(Debug)]
pub struct BuildError {
    message: String,
    exit_code: u8,
}

impl BuildError {
    fn new(what: &str, e: impl fmt::Display) -> Self {
        Self {
            message: format!("{what}: {e}"),
            exit_code: 1,
        }
    }

    /// A store's error: a `Configuration` one (TLS refused, a root certificate that cannot
    /// be read, the schema missing) is a refusal (exit status 2), anything else exit 1.
    pub(crate) fn store(what: &str, e: &StoreError) -> Self {
        let mut error = Self::new(what, e);
        if e.kind() == ErrorKind::Configuration {
            error.exit_code = 2;
            if e.message().contains("apply the migrations") {
                // The stores name the backends' own ways; this service has two more.
                error.message.push_str(
                    "; with this service: set WA_PAIRING_MIGRATE=true, or run `wa-pairing-service migrate` once",
                );
            }
        }
        error
    }

    /// An operator's mistake the service refuses to start with (exit status 2, like a bad
    /// setting): nothing was changed.
    pub(crate) fn refused(message: String) -> Self {
        Self {
            message,
            exit_code: 2,
        }
    }

    /// The process exit status this error calls for: 2 for a configuration the service
    /// refuses (fix the settings), 1 for everything else.
    pub const fn exit_code(&self) -> u8 {
        self.exit_code
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for BuildError {}

/// Connects the stores of `settings` (applying the migrations when asked) with the
/// auth-state keys, the Redis code cache and budget when configured.
///
/// # Errors
///
/// A store that cannot be set up, or migrations that fail.
pub async fn connect_stores(settings: &Settings) -> Result<Stores, BuildError> {
    let builder = match &settings.store {
        StoreSettings::Postgres(config) => {
            let store =
                PostgresStore::new(config).map_err(|e| BuildError::store("PostgreSQL", &e))?;
            if settings.migrate {
                let applied = migrate_when_reachable(&store).await?;
                info!(applied, "migrations applied");
            }
            store.stores()
        }
        StoreSettings::Supabase(config) => SupabaseStore::new(config)
            .map_err(|e| BuildError::store("Supabase", &e))?
            .stores(),
    };
    let mut builder = builder
        .encrypt(settings.keyring.clone())
        .default_region(settings.default_region);
    if let Some(redis) = &settings.redis {
        let redis = RedisStore::new(redis).map_err(|e| BuildError::store("Redis", &e))?;
        // Anything Redis refuses (TLS, a wrong password, a database number it does not have)
        // is a setting to change: refused now. An outage is survived (the cache is a hint,
        // and the runner carries on without it), and the log says which it was.
        match redis.ping().await {
            Ok(()) => {
                info!("Redis reached: live codes are cached and the pairing budget is kept there");
            }
            Err(e) if !e.verdict().is_retryable() => {
                return Err(BuildError::refused(format!(
                    "Redis refused the connection: {e}; fix REDIS_URL (or REDIS_ROOT_CERT), or unset REDIS_URL to run without Redis"
                )));
            }
            Err(e) => warn!(
                error = %e,
                "Redis not reached at start: pairing goes on without it (codes from the database, the database's budget) until it answers"
            ),
        }
        // Redis is the fast budget; the primary store's budget stays the durable floor.
        builder = builder.code_cache(redis.resilient_cache()).budget(redis);
    }
    Ok(builder.build())
}

/// How long the service waits at start for a database that does not answer yet, to apply
/// the migrations (`WA_PAIRING_MIGRATE=true`): a database starting beside the service (a
/// Compose file, a pod restarted with its database) is waited for, as the runner waits for
/// one that goes away later.
pub const MIGRATE_WAIT: Duration = Duration::from_secs(300);

/// Applies the migrations, waiting with backoff (1 s, doubling, at most 30 s apart) up to
/// [`MIGRATE_WAIT`] while the database cannot be reached; a setting the database refuses (a
/// wrong password, TLS) is not waited for.
async fn migrate_when_reachable(store: &PostgresStore) -> Result<usize, BuildError> {
    let policy = RetryPolicy::default()
        .max_attempts(u32::MAX)
        .backoff(Backoff::exponential(
            Duration::from_secs(1),
            Duration::from_secs(30),
        ))
        .deadline(MIGRATE_WAIT);
    policy
        .run_notify(
            |_| store.migrate(),
            |event| {
                if let Some(e) = event.failure.error() {
                    warn!(
                        attempt = event.attempt,
                        retry_in_s = event.delay.as_secs_f32(),
                        error = %e,
                        "the database cannot be reached yet to apply the migrations; waiting for it"
                    );
                }
            },
        )
        .await
        .map_err(|e| match e.into_error() {
            Some(e) => BuildError::store("applying the migrations", &e),
            None => BuildError::new(
                "applying the migrations",
                "the database did not answer in time",
            ),
        })
}

/// The `migrate` command: applies the migrations to the configured PostgreSQL database
/// (waiting for it as [`MIGRATE_WAIT`] says) and returns how many were applied.
///
/// # Errors
///
/// The store is Supabase's REST API (migrations go through `supabase db push` there), or
/// the migrations failed.
pub async fn migrate(settings: &Settings) -> Result<usize, BuildError> {
    match &settings.store {
        StoreSettings::Postgres(config) => {
            let store =
                PostgresStore::new(config).map_err(|e| BuildError::store("PostgreSQL", &e))?;
            migrate_when_reachable(&store).await
        }
        StoreSettings::Supabase(_) => Err(BuildError::refused(
            "migrate: the store is Supabase's REST API, which cannot change the schema: apply the migrations with `supabase db push`, or set DATABASE_URL to the project's database".to_owned(),
        )),
    }
}

/// Opens every stored value of up to `devices` devices with the configured keys, writing
/// nothing, and says what it found.
///
/// # Errors
///
/// The store could not be read.
pub async fn check_keys(stores: &Stores, devices: usize) -> Result<KeyReport, BuildError> {
    let sealed = stores
        .encrypted_auth_state()
        .ok_or_else(|| BuildError::refused(format!("{AUTH_KEYS} is not configured")))?;
    sealed
        .check_keys(devices)
        .await
        .map_err(|e| BuildError::store("reading the stored sessions to check the keys", &e))
}

/// Words for an operator about a key check that found values the keys cannot open.
pub fn describe_unreadable(report: &KeyReport, configured: &[u8]) -> String {
    let used: Vec<String> = report
        .values_by_key_id
        .keys()
        .map(ToString::to_string)
        .collect();
    let configured: Vec<String> = configured.iter().map(ToString::to_string).collect();
    let missing: Vec<String> = report
        .missing_key_ids
        .iter()
        .map(ToString::to_string)
        .collect();
    let cause = if missing.is_empty() {
        format!(
            "the key configured under id {} is not the one they were sealed with",
            used.join(", ")
        )
    } else {
        format!("key id {} is not configured", missing.join(", "))
    };
    format!(
        "{} of {} stored values ({} devices) cannot be opened with {AUTH_KEYS} (key ids {}): {cause}. Stored sessions use key ids {}; during a rotation keep the old key after the new one, and run `wa-pairing-service reencrypt` before removing it",
        report.unreadable,
        report.values,
        report.unreadable_devices.len(),
        configured.join(", "),
        used.join(", "),
    )
}

/// What the health endpoint reports.
struct Health {
    store: Arc<dyn DeviceStore>,
    status: RunnerStatus,
    instance_id: String,
    /// The last look at the store, so a probe every second costs one query every few seconds.
    last_probe: Mutex<Option<(Instant, bool)>>,
}

/// The HTTP API, bound and ready to serve.
struct Api {
    listener: tokio::net::TcpListener,
    app: axum::Router,
}

/// The wired service, ready to run.
pub struct Service {
    runner: Runner,
    health: Arc<Health>,
    listener: tokio::net::TcpListener,
    metrics: Option<PrometheusHandle>,
    api: Option<Api>,
}

impl fmt::Debug for Service {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Service")
            .field("instance_id", &self.health.instance_id)
            .field("health_addr", &self.listener.local_addr().ok())
            .field("http_addr", &self.http_addr())
            .field("metrics", &self.metrics.is_some())
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Connects the stores (applying the migrations when asked), checks the auth-state keys
    /// against what is stored, builds the WhatsApp connector and the runner, and binds the
    /// health endpoint.
    ///
    /// # Behavior
    /// - Keys that open none of the stored sessions are refused ([`BuildError::exit_code`]
    ///   2): nothing is changed, and the message says which key ids are stored and which are
    ///   configured. Keys that open some but not all are logged as a warning; the runner then
    ///   leaves the devices it cannot open to an instance that can.
    ///
    /// # Errors
    ///
    /// A store that cannot be set up, migrations that fail, keys that open nothing, a
    /// connector setting WhatsApp's client refuses, or a health address that cannot be bound.
    pub async fn build(settings: Settings) -> Result<Self, BuildError> {
        let stores = connect_stores(&settings).await?;
        match check_keys(&stores, KEY_CHECK_DEVICES).await {
            Ok(report) if report.opens_none() => {
                return Err(BuildError::refused(format!(
                    "the service will not start: {}. Nothing was changed",
                    describe_unreadable(&report, &settings.keyring.key_ids())
                )));
            }
            Ok(report) if report.unreadable > 0 => {
                warn!(
                    "{}; those devices are left to an instance with the right keys",
                    describe_unreadable(&report, &settings.keyring.key_ids())
                );
            }
            Ok(report) => {
                info!(
                    devices = report.devices,
                    values = report.values,
                    "the auth-state keys open the stored sessions"
                );
            }
            // A store that refuses this configuration (TLS, schema) will not start working by
            // itself: refuse to start, with what to change.
            Err(e) if e.exit_code() == 2 => {
                return Err(BuildError::refused(format!(
                    "the service will not start: {e}"
                )));
            }
            // The store may be down at start: the runner retries and reports it in /readyz.
            Err(e) => warn!(error = %e, "could not check the auth-state keys at start"),
        }

        let connector = settings
            .whatsapp
            .build()
            .map_err(|e| BuildError::new("the WhatsApp connector", e))?;

        let mut config = settings
            .runner
            .clone()
            .unwrap_or_default()
            .instance_id(settings.instance_id.clone());
        if let Some(n) = settings.max_sessions {
            config = config.max_sessions(n);
        }
        if let Some(rate) = settings.resume_rate {
            config = config.resume_rate(rate);
        }
        if !stores.capabilities().change_feed {
            // No change feed (Supabase's REST API): claim a little more often.
            config = config.claim_interval(Duration::from_secs(2));
        }
        let devices = Arc::clone(stores.devices());
        let api = match &settings.http {
            Some(http) => Some(bind_api(http, &stores).await?),
            None => None,
        };
        let runner = Runner::new(stores, Arc::new(connector), config)
            .map_err(|e| BuildError::new("the runner", e))?;

        let listener = tokio::net::TcpListener::bind(settings.health_addr)
            .await
            .map_err(|e| {
                cannot_listen(
                    "the health endpoint",
                    settings.health_addr,
                    "WA_PAIRING_HEALTH_ADDR",
                    &e,
                )
            })?;
        Ok(Self {
            health: Arc::new(Health {
                store: devices,
                status: runner.status(),
                instance_id: settings.instance_id,
                last_probe: Mutex::new(None),
            }),
            runner,
            listener,
            metrics: None,
            api,
        })
    }

    /// Serves these metrics at `GET /metrics` on the health listener, in Prometheus' text
    /// format (see [`install_metrics`](crate::install_metrics)), and drains the recorder's
    /// histograms while the service runs. Without it the service serves no `/metrics` and
    /// leaves whatever recorder the program installed alone.
    #[must_use]
    pub fn with_metrics(mut self, handle: PrometheusHandle) -> Self {
        self.metrics = Some(handle);
        self
    }

    /// Where the HTTP API and the device page listen, when configured (useful with port 0).
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.api.as_ref().and_then(|a| a.listener.local_addr().ok())
    }

    /// Where the health endpoint listens (useful with port 0).
    ///
    /// # Panics
    ///
    /// Never in practice: the listener is bound.
    pub fn health_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("a bound listener")
    }

    /// The runner's live status (sessions held, devices whose keys are missing here).
    pub fn status(&self) -> RunnerStatus {
        self.runner.status()
    }

    /// Serves `GET /livez` (the process runs), `GET /readyz` (the runner runs and the
    /// store answers) and, [when given](Self::with_metrics), `GET /metrics` on the health
    /// listener; serves the HTTP API and the device page when configured; and runs the
    /// runner until `shutdown` completes. Then the API stops taking requests (those in
    /// flight get a few seconds; open event streams are closed, and browsers reconnect to
    /// another instance), every session closes and every lease is released.
    pub async fn run<S>(self, shutdown: S) -> RunSummary
    where
        S: Future<Output = ()> + Send + 'static,
    {
        let mut app = axum::Router::new()
            .route("/livez", get(|| async { "ok" }))
            .route("/readyz", get(ready))
            .with_state(self.health.clone());
        let upkeep = self.metrics.clone().map(|handle| {
            app = app.clone().route(
                "/metrics",
                get({
                    let handle = handle.clone();
                    move || async move { render_metrics(&handle) }
                }),
            );
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(METRICS_UPKEEP);
                loop {
                    tick.tick().await;
                    handle.run_upkeep();
                }
            })
        });

        // One shutdown for the runner and the API.
        let (stopping, stop_seen) = tokio::sync::watch::channel(false);
        let shutdown = async move {
            shutdown.await;
            let _ = stopping.send(true);
        };
        let api = self.api.map(|api| tokio::spawn(serve_api(api, stop_seen)));

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
        info!(instance = %self.health.instance_id, "service started");
        let summary = self.runner.run(shutdown).await;
        if let Some(api) = api {
            let _ = api.await;
        }
        let _ = stop_http.send(());
        let _ = server.await;
        if let Some(upkeep) = upkeep {
            upkeep.abort();
        }
        info!(
            claimed = summary.claimed,
            released = summary.released,
            "service stopped"
        );
        summary
    }
}

/// Binds the HTTP API's address and builds its router over `stores`, with CORS for the
/// allowed origins.
async fn bind_api(http: &HttpSettings, stores: &Stores) -> Result<Api, BuildError> {
    let config = HttpConfig::new(http.auth.clone());
    let mut app = wa_pairing_http::router(stores, config);
    if !http.allowed_origins.is_empty() {
        let origins = if http.allowed_origins.iter().any(|o| o == "*") {
            AllowOrigin::any()
        } else {
            AllowOrigin::list(
                http.allowed_origins
                    .iter()
                    .filter_map(|o| HeaderValue::from_str(o).ok()),
            )
        };
        // Tokens travel in the Authorization header (never cookies), so no credentials.
        app = app.layer(
            CorsLayer::new()
                .allow_origin(origins)
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
                .expose_headers([header::RETRY_AFTER])
                .max_age(Duration::from_secs(600)),
        );
    }
    let listener = tokio::net::TcpListener::bind(http.addr)
        .await
        .map_err(|e| cannot_listen("the HTTP API", http.addr, "WA_PAIRING_HTTP_ADDR", &e))?;
    Ok(Api { listener, app })
}

/// An address the service cannot listen on: a setting to change (exit status 2), with what
/// to change.
fn cannot_listen(
    what: &str,
    addr: std::net::SocketAddr,
    setting: &str,
    e: &std::io::Error,
) -> BuildError {
    let why = match e.kind() {
        std::io::ErrorKind::AddrInUse => {
            "the port is already in use (another process, or another instance on this host)"
        }
        std::io::ErrorKind::PermissionDenied => "this process may not use that port",
        std::io::ErrorKind::AddrNotAvailable => "that address is not one of this host's",
        _ => "it cannot be opened",
    };
    BuildError::refused(format!(
        "{what} cannot listen on {addr}: {why} ({e}); set {setting} to a free address"
    ))
}

/// Serves the API until `stop` turns true, then gives requests in flight [`API_DRAIN`] and
/// closes what is left.
async fn serve_api(api: Api, stop: tokio::sync::watch::Receiver<bool>) {
    if let Ok(addr) = api.listener.local_addr() {
        info!(http = %addr, "HTTP API listening");
    }
    let stopped = |mut rx: tokio::sync::watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|s| *s).await;
    };
    let served = axum::serve(api.listener, api.app)
        .with_graceful_shutdown(stopped(stop.clone()))
        .into_future();
    tokio::select! {
        r = served => {
            if let Err(e) = r {
                warn!(error = %e, "the HTTP API stopped");
            }
        }
        () = async {
            stopped(stop).await;
            tokio::time::sleep(API_DRAIN).await;
        } => {
            info!("closing the HTTP API's open event streams");
        }
    }
}

/// `GET /metrics`: Prometheus' text format.
fn render_metrics(handle: &PrometheusHandle) -> impl IntoResponse + use<> {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        handle.render(),
    )
}

impl Health {
    /// Whether the store answers, looking at most once every [`READY_CACHE`].
    async fn store_ok(&self) -> bool {
        let cached = *self
            .last_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((at, ok)) = cached
            && at.elapsed() < READY_CACHE
        {
            return ok;
        }
        // A lookup of a device that cannot exist: "not found" proves the store answers.
        let probe = tokio::time::timeout(
            Duration::from_secs(3),
            self.store.get(DeviceId(uuid::Uuid::nil())),
        )
        .await;
        let ok = matches!(&probe, Ok(Ok(_)))
            || matches!(&probe, Ok(Err(e)) if e.kind() == ErrorKind::NotFound);
        *self
            .last_probe
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), ok));
        ok
    }
}

async fn ready(State(health): State<Arc<Health>>) -> (StatusCode, Json<serde_json::Value>) {
    let running = health.status.is_running();
    let store_ok = health.store_ok().await;
    let status = if running && store_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let unreadable = health.status.unreadable_devices();
    (
        status,
        Json(json!({
            "instance": health.instance_id,
            "runner": if running { "running" } else { "stopped" },
            "store": if store_ok { "ok" } else { "unavailable" },
            "sessions": health.status.held(),
            "unreadable_devices": unreadable,
            "unreadable_reasons": health.status.unreadable_reasons(),
        })),
    )
}

/// Re-encrypts every stored value with the current key (`wa-pairing-service reencrypt`):
/// safe while runners write, idempotent and resumable; progress is logged. Returns what it
/// did; the old key may be removed once the report shows nothing left on it and nothing
/// unreadable.
///
/// # Errors
///
/// The stores could not be reached or read.
pub async fn reencrypt(settings: &Settings) -> Result<KeyReport, BuildError> {
    let stores = connect_stores(settings).await?;
    let sealed = stores
        .encrypted_auth_state()
        .ok_or_else(|| BuildError::refused(format!("{AUTH_KEYS} is not configured")))?;
    info!(
        current_key_id = settings.keyring.current_id(),
        "re-encrypting every stored value with the current key"
    );
    let mut last = Instant::now();
    let report = sealed
        .reencrypt(|r| {
            if last.elapsed() >= Duration::from_secs(2) {
                last = Instant::now();
                info!(
                    devices = r.devices,
                    values = r.values,
                    rewritten = r.rewritten,
                    unreadable = r.unreadable,
                    "re-encrypting"
                );
            }
        })
        .await
        .map_err(|e| BuildError::store("re-encrypting", &e))?;
    if report.unreadable > 0 {
        error!(
            "{}",
            describe_unreadable(&report, &settings.keyring.key_ids())
        );
    }
    info!(
        devices = report.devices,
        values = report.values,
        rewritten = report.rewritten,
        already_current = report.on_current_key,
        changed_meanwhile = report.changed,
        unreadable = report.unreadable,
        "re-encryption finished"
    );
    Ok(report)
}
