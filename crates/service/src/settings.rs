//! The service's settings, read from the environment and checked at once.

use std::fmt;
use std::net::SocketAddr;

use wa_pairing_http::AuthConfig;
use wa_pairing_postgres::PostgresConfig;
use wa_pairing_redis::RedisConfig;
use wa_pairing_runner::RunnerConfig;
use wa_pairing_store::Keyring;
use wa_pairing_supabase::SupabaseConfig;
use wa_pairing_whatsapp::WhatsAppConfig;

use crate::logging::LogFormat;

/// Where devices and auth state are kept.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum StoreSettings {
    /// A direct PostgreSQL connection (`DATABASE_URL`), with the change feed.
    Postgres(PostgresConfig),
    /// Supabase's REST API (`SUPABASE_URL`, `SUPABASE_SERVICE_ROLE_KEY`), polled.
    Supabase(SupabaseConfig),
}

/// The HTTP API and device page, served when `WA_PAIRING_HTTP_ADDR` is set.
///
/// `Debug` shows no secret: [`AuthConfig`] shows no key material.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct HttpSettings {
    /// Where the API and the page listen.
    pub addr: SocketAddr,
    /// How owners' access tokens are checked.
    pub auth: AuthConfig,
    /// Origins other than the service's own whose pages may call the API (CORS); empty:
    /// none (the device page the service serves needs none). `*` allows any origin.
    pub allowed_origins: Vec<String>,
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
    /// At most this many sessions logged in again per second (`WA_PAIRING_RESUME_RATE`).
    pub resume_rate: Option<f64>,
    /// Log line format.
    pub log_format: LogFormat,
    /// The WhatsApp connection: server URL, web version, device display, push name
    /// (`WA_PAIRING_WA_*`, read by [`WhatsAppConfig::from_lookup`]).
    pub whatsapp: WhatsAppConfig,
    /// The HTTP API and device page, when configured.
    pub http: Option<HttpSettings>,
    /// The region numbers typed without a country code are read in, by the HTTP API and
    /// every other part of the service (`WA_PAIRING_DEFAULT_REGION`, default `ID`).
    pub default_region: wa_pairing_phone::Region,
    /// The runner's configuration from the file's `[runner]` section (its instance id and,
    /// unless set there, `max_sessions` and `resume_rate` come from the fields above).
    pub runner: Option<RunnerConfig>,
}

/// The sections of the configuration file ([`env::CONFIG`]): each crate's own serde
/// configuration, read and checked by that crate.
#[derive(Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSections {
    postgres: Option<PostgresConfig>,
    supabase: Option<SupabaseConfig>,
    redis: Option<RedisConfig>,
    whatsapp: Option<WhatsAppConfig>,
    runner: Option<toml::Table>,
}

/// The file at `path`, parsed; the problem, naming the file and what to fix, otherwise.
fn read_file(path: &str) -> Result<FileSections, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("{}: {path} cannot be read: {e}", env::CONFIG))?;
    // The parser's message names the line and the field, never a value.
    toml::from_str(&text).map_err(|e| {
        let why = e.message();
        let line = e.span().map(|s| {
            text.get(..s.start)
                .map_or(0, |before| before.matches('\n').count())
                + 1
        });
        match line {
            Some(line) => format!("{}: {path}, line {line}: {why}", env::CONFIG),
            None => format!("{}: {path}: {why}", env::CONFIG),
        }
    })
}

/// A problem when a section of the file and some of the variables it replaces are both set.
fn both_set(
    var: &impl Fn(&str) -> Option<String>,
    section: &str,
    present: bool,
    names: &[&str],
) -> Option<String> {
    let set: Vec<&str> = names.iter().copied().filter(|n| var(n).is_some()).collect();
    (present && !set.is_empty()).then(|| {
        format!(
            "[{section}] in {} and {} in the environment set the same thing: keep one (unset {} or remove the section)",
            env::CONFIG,
            set.join(", "),
            set.join(", ")
        )
    })
}

/// Every setting that is missing or malformed, each with what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// One line per problem.
    pub problems: Vec<String>,
}

impl SettingsError {
    /// The problems, introduced by what cannot run: `"the service cannot start"` for the
    /// service itself (the `Display` text), `"check-keys cannot run"` for a command.
    ///
    /// ```
    /// use wa_pairing_service::Settings;
    ///
    /// let err = Settings::from_lookup(|_| None).unwrap_err();
    /// assert!(err.report("reencrypt cannot run").starts_with("reencrypt cannot run; fix these settings:"));
    /// ```
    #[must_use]
    pub fn report(&self, what: &str) -> String {
        let mut text = format!("{what}; fix these settings:\n");
        for p in &self.problems {
            text.push_str("  - ");
            text.push_str(p);
            text.push('\n');
        }
        text
    }
}

impl fmt::Display for SettingsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.report("the service cannot start"))
    }
}

impl std::error::Error for SettingsError {}

/// Where `/livez`, `/readyz` and `/metrics` answer unless [`env::HEALTH_ADDR`] says otherwise:
/// `127.0.0.1:9464`, loopback (these answer without authentication), and a port of its own,
/// apart from the HTTP API's and from the demo's and the simulator's examples.
pub const DEFAULT_HEALTH_ADDR: SocketAddr =
    SocketAddr::new(std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST), 9464);

/// The environment variables [`Settings`] reads.
pub mod env {
    /// A direct PostgreSQL URL (preferred store); TLS with `?sslmode=verify-full&sslrootcert=...`.
    pub const DATABASE_URL: &str = "DATABASE_URL";
    /// libpq's TLS mode, for a `DATABASE_URL` without `sslmode`.
    pub const PGSSLMODE: &str = wa_pairing_postgres::SSLMODE_ENV;
    /// libpq's root certificate file, for a `DATABASE_URL` without `sslrootcert`.
    pub const PGSSLROOTCERT: &str = wa_pairing_postgres::SSLROOTCERT_ENV;
    /// The Supabase project URL (store over REST when `DATABASE_URL` is not set).
    pub const SUPABASE_URL: &str = wa_pairing_supabase::SUPABASE_URL_ENV;
    /// The Supabase service key.
    pub const SUPABASE_SERVICE_ROLE_KEY: &str = wa_pairing_supabase::SUPABASE_SERVICE_ROLE_KEY_ENV;
    /// Redis (optional): code cache and pairing budget.
    pub const REDIS_URL: &str = wa_pairing_redis::REDIS_URL_ENV;
    /// The CA certificate file a `rediss://` server's certificate must chain to (optional).
    pub const REDIS_ROOT_CERT: &str = wa_pairing_redis::REDIS_ROOT_CERT_ENV;
    /// The auth-state keys, `id:base64key[,id:base64key...]`, the first one current.
    pub const AUTH_KEYS: &str = wa_pairing_store::AUTH_KEYS_ENV;
    /// The region (two letters, `ID`, `MY`, `SG`...) in which numbers typed without a
    /// country code are read: by the HTTP API, and by every other part of the service.
    /// Default `ID`.
    pub const DEFAULT_REGION: &str = "WA_PAIRING_DEFAULT_REGION";
    /// This instance's name in leases (default: `HOSTNAME`, else random).
    pub const INSTANCE_ID: &str = "WA_PAIRING_INSTANCE_ID";
    /// Health and metrics endpoint address (default [`DEFAULT_HEALTH_ADDR`](super::DEFAULT_HEALTH_ADDR),
    /// loopback: `/livez`, `/readyz` and `/metrics` answer without authentication, so the
    /// port is reachable only from the same host unless this is set, for example to
    /// `0.0.0.0:9464` in a Kubernetes pod, whose probes and scrapes come over the pod's
    /// address).
    pub const HEALTH_ADDR: &str = "WA_PAIRING_HEALTH_ADDR";
    /// `true` to apply the migrations at start (direct PostgreSQL only).
    pub const MIGRATE: &str = "WA_PAIRING_MIGRATE";
    /// At most this many devices per instance.
    pub const MAX_SESSIONS: &str = "WA_PAIRING_MAX_SESSIONS";
    /// At most this many sessions logged in again per second per instance, after a restart
    /// or a takeover (default 5; decimals allowed, such as `0.5`).
    pub const RESUME_RATE: &str = "WA_PAIRING_RESUME_RATE";
    /// `json` (default) or `text`.
    pub const LOG_FORMAT: &str = "WA_PAIRING_LOG_FORMAT";
    /// Where the HTTP API and the device page listen (unset: not served), for example
    /// `0.0.0.0:3000`.
    pub const HTTP_ADDR: &str = "WA_PAIRING_HTTP_ADDR";
    /// The Supabase project's legacy JWT secret (HS256 access tokens).
    pub const SUPABASE_JWT_SECRET: &str = "SUPABASE_JWT_SECRET";
    /// A JWKS URL for asymmetric access tokens (default with `SUPABASE_URL`: the project's
    /// `/auth/v1/.well-known/jwks.json`).
    pub const JWKS_URL: &str = "WA_PAIRING_JWKS_URL";
    /// The issuer access tokens must name (default with `SUPABASE_URL`:
    /// `<SUPABASE_URL>/auth/v1`).
    pub const JWT_ISSUER: &str = "WA_PAIRING_JWT_ISSUER";
    /// Comma-separated origins (`https://app.example.com`) whose pages may call the API, or
    /// `*`.
    pub const ALLOWED_ORIGINS: &str = "WA_PAIRING_ALLOWED_ORIGINS";
    /// An optional configuration file (TOML) holding the libraries' own configurations, one
    /// section each: `[postgres]` or `[supabase]`, `[redis]`, `[whatsapp]`, `[runner]`, with
    /// the field names of `PostgresConfig`, `SupabaseConfig`, `RedisConfig`,
    /// `WhatsAppConfig` and `RunnerConfig`. A section replaces that part's environment
    /// variables; giving both is refused, so there is never a question of which one wins.
    pub const CONFIG: &str = "WA_PAIRING_CONFIG";
    /// Retired: the owner's pace is the store's rule now (`pairing_starts_per_minute` in
    /// `wa_pairing_settings`); a start with it set is refused with that advice.
    pub const PAIRING_ACTIONS_PER_MINUTE: &str = "WA_PAIRING_PAIRING_ACTIONS_PER_MINUTE";
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
        let mut problems = crate::placeholders::found(var);
        if var(env::PAIRING_ACTIONS_PER_MINUTE).is_some() {
            problems.push(format!(
                "{} is no longer read: how often an owner may start pairing is now the database's rule, the same for every instance and for rows written through Supabase directly; unset it, and set the pace with SQL instead: update public.wa_pairing_settings set value = '10' where name = 'pairing_starts_per_minute'",
                env::PAIRING_ACTIONS_PER_MINUTE
            ));
        }

        let mut file_unread = false;
        let file = match var(env::CONFIG) {
            None => FileSections::default(),
            Some(path) => read_file(&path).unwrap_or_else(|p| {
                problems.push(p);
                file_unread = true;
                FileSections::default()
            }),
        };
        let store_vars = [
            env::DATABASE_URL,
            env::PGSSLMODE,
            env::PGSSLROOTCERT,
            env::SUPABASE_URL,
            env::SUPABASE_SERVICE_ROLE_KEY,
        ];
        let file_store = file.postgres.is_some() || file.supabase.is_some();
        problems.extend(both_set(
            &var,
            "postgres] or [supabase",
            file_store,
            &store_vars,
        ));
        problems.extend(both_set(
            &var,
            "redis",
            file.redis.is_some(),
            &[env::REDIS_URL, env::REDIS_ROOT_CERT],
        ));
        problems.extend(both_set(
            &var,
            "whatsapp",
            file.whatsapp.is_some(),
            &[
                wa_pairing_whatsapp::SERVER_URL_ENV,
                wa_pairing_whatsapp::WEB_VERSION_ENV,
                wa_pairing_whatsapp::DISPLAY_ENV,
                wa_pairing_whatsapp::PUSH_NAME_ENV,
            ],
        ));
        problems.extend(both_set(
            &var,
            "runner",
            file.runner.is_some(),
            &[env::MAX_SESSIONS, env::RESUME_RATE],
        ));
        let mut checked = |what: Result<(), String>| what.map_err(|p| problems.push(p)).is_ok();
        let file_postgres = file.postgres.filter(|c| {
            checked(
                c.validate()
                    .map_err(|e| format!("[postgres] {}", e.message())),
            )
        });
        let file_supabase = file.supabase.filter(|c| {
            checked(
                c.validate()
                    .map_err(|e| format!("[supabase] {}", e.message())),
            )
        });
        let file_redis = file
            .redis
            .filter(|c| checked(c.validate().map_err(|e| format!("[redis] {}", e.message()))));
        let file_whatsapp = file
            .whatsapp
            .filter(|c| checked(c.validate().map_err(|e| format!("[whatsapp] {e}"))));
        let runner = file.runner.and_then(|table| {
            if table.contains_key("instance_id") {
                problems.push(format!(
                    "[runner] instance_id in {}: name the instance with {} (or the HOSTNAME) instead, so every instance can share the file",
                    env::CONFIG,
                    env::INSTANCE_ID
                ));
                return None;
            }
            let runner: RunnerConfig = table
                .try_into()
                .map_err(|e: toml::de::Error| {
                    problems.push(format!("[runner] in {}: {}", env::CONFIG, e.message()));
                })
                .ok()?;
            runner
                .validate()
                .map_err(|e| problems.push(format!("[runner] {e}")))
                .ok()?;
            Some(runner)
        });
        if file_postgres.is_some() && file_supabase.is_some() {
            problems.push(format!(
                "[postgres] and [supabase] in {}: give one store",
                env::CONFIG
            ));
        }

        // Each crate reads its own variables (one parser per setting); this only decides
        // between the two stores and gathers every problem.
        let store = if file_store {
            file_postgres
                .map(StoreSettings::Postgres)
                .or(file_supabase.map(StoreSettings::Supabase))
        } else if var(env::DATABASE_URL).is_some() {
            PostgresConfig::from_lookup(var)
                .map_err(|e| problems.push(e.message().to_owned()))
                .ok()
                .flatten()
                .map(StoreSettings::Postgres)
        } else {
            match SupabaseConfig::from_lookup(var) {
                Ok(Some(config)) => Some(StoreSettings::Supabase(config)),
                // The file that could not be read may hold the store: its problem says so.
                Ok(None) if file_unread => None,
                Ok(None) => {
                    problems.push(format!(
                        "no store: set {} (a direct PostgreSQL connection, preferred) or {} and {}",
                        env::DATABASE_URL,
                        env::SUPABASE_URL,
                        env::SUPABASE_SERVICE_ROLE_KEY
                    ));
                    None
                }
                Err(e) => {
                    problems.push(e.message().to_owned());
                    None
                }
            }
        };

        let redis = if file_redis.is_some() {
            file_redis
        } else {
            RedisConfig::from_lookup(var)
                .map_err(|e| problems.push(e.message().to_owned()))
                .ok()
                .flatten()
        };
        let whatsapp = if file_whatsapp.is_some() {
            file_whatsapp
        } else {
            WhatsAppConfig::from_lookup(var)
                .map_err(|e| problems.push(e.message().to_owned()))
                .ok()
        };

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
            None => DEFAULT_HEALTH_ADDR,
            Some(a) => a.parse().unwrap_or_else(|_| {
                problems.push(format!(
                    "{} must be host:port, for example 0.0.0.0:9464",
                    env::HEALTH_ADDR
                ));
                DEFAULT_HEALTH_ADDR
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

        let resume_rate = match var(env::RESUME_RATE) {
            None => None,
            Some(v) => match v.parse::<f64>() {
                Ok(n) if n.is_finite() && n > 0.0 => Some(n),
                _ => {
                    problems.push(format!(
                        "{} must be a number of logins per second above zero, such as 5",
                        env::RESUME_RATE
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

        let http = http_settings(&var, health_addr, &mut problems);

        let default_region = match var(env::DEFAULT_REGION) {
            None => wa_pairing_phone::Region::default(),
            Some(v) => v.parse().unwrap_or_else(|_| {
                problems.push(format!(
                    "{} must be a two-letter region code such as ID, MY or SG (the country whose numbers owners type without a country code)",
                    env::DEFAULT_REGION
                ));
                wa_pairing_phone::Region::default()
            }),
        };

        match (store, keyring, whatsapp) {
            (Some(store), Some(keyring), Some(whatsapp)) if problems.is_empty() => Ok(Self {
                store,
                redis,
                keyring,
                instance_id,
                health_addr,
                migrate,
                max_sessions,
                resume_rate,
                log_format,
                whatsapp,
                http,
                default_region,
                runner,
            }),
            _ => Err(SettingsError { problems }),
        }
    }
}

/// The HTTP settings, when `WA_PAIRING_HTTP_ADDR` is set; each problem goes to `problems`.
fn http_settings(
    var: &impl Fn(&str) -> Option<String>,
    health_addr: SocketAddr,
    problems: &mut Vec<String>,
) -> Option<HttpSettings> {
    let Some(addr) = var(env::HTTP_ADDR) else {
        // Settings that only the API reads, without the API: a forgotten address.
        for name in [
            env::SUPABASE_JWT_SECRET,
            env::JWKS_URL,
            env::JWT_ISSUER,
            env::ALLOWED_ORIGINS,
        ] {
            if var(name).is_some() {
                problems.push(format!(
                    "{name} is set but {} is not: set it (for example 0.0.0.0:3000) to serve the HTTP API, or unset {name}",
                    env::HTTP_ADDR
                ));
            }
        }
        return None;
    };
    let before = problems.len();
    let addr = addr.parse::<SocketAddr>().ok().or_else(|| {
        problems.push(format!(
            "{} must be host:port, for example 0.0.0.0:3000",
            env::HTTP_ADDR
        ));
        None
    });
    if let Some(a) = addr
        && a.port() != 0
        && a.port() == health_addr.port()
        && (a.ip() == health_addr.ip()
            || a.ip().is_unspecified()
            || health_addr.ip().is_unspecified())
    {
        problems.push(format!(
            "{} and {} use the same port {}: give the API its own port (the health port stays off the internet)",
            env::HTTP_ADDR,
            env::HEALTH_ADDR,
            a.port()
        ));
    }

    let secret = var(env::SUPABASE_JWT_SECRET);
    let jwks_url = var(env::JWKS_URL);
    let auth = match (var(env::JWT_ISSUER), var(env::SUPABASE_URL)) {
        (Some(issuer), _) => Some(AuthConfig::new(issuer)),
        (None, Some(project)) => AuthConfig::supabase(&project)
            .map_err(|e| problems.push(format!("{}: {e}", env::SUPABASE_URL)))
            .ok(),
        (None, None) => {
            problems.push(format!(
                "the HTTP API needs the tokens' issuer: set {} (your project's URL, https://<project-ref>.supabase.co) or {}",
                env::SUPABASE_URL,
                env::JWT_ISSUER
            ));
            None
        }
    };
    let from_supabase = var(env::JWT_ISSUER).is_none() && var(env::SUPABASE_URL).is_some();
    if secret.is_none() && jwks_url.is_none() && !from_supabase {
        problems.push(format!(
            "the HTTP API has no key to check tokens with: set {} (the project's JWT secret) or {}",
            env::SUPABASE_JWT_SECRET,
            env::JWKS_URL
        ));
    }
    let auth = auth.and_then(|auth| {
        let auth = match &jwks_url {
            Some(url) => auth
                .jwks_url(url)
                .map_err(|e| problems.push(format!("{}: {e}", env::JWKS_URL)))
                .ok()?,
            None => auth,
        };
        Some(match &secret {
            Some(s) => auth.hs256(s),
            None => auth,
        })
    });

    let listed: Vec<String> = var(env::ALLOWED_ORIGINS)
        .map(|list| {
            list.split(',')
                .map(|o| o.trim().trim_end_matches('/').to_owned())
                .filter(|o| !o.is_empty())
                .collect()
        })
        .unwrap_or_default();
    if listed.len() > 1 && listed.iter().any(|o| o == "*") {
        problems.push(format!(
            "{}: `*` allows every origin; give it alone or list the origins",
            env::ALLOWED_ORIGINS
        ));
    }
    let allowed_origins: Vec<String> = listed
        .into_iter()
        .filter(|o| {
            let ok = o == "*" || is_origin(o);
            if !ok {
                problems.push(format!(
                    "{}: `{o}` is not an origin: give scheme://host[:port] with no path, like https://app.example.com, or *",
                    env::ALLOWED_ORIGINS
                ));
            }
            ok
        })
        .collect();

    match (addr, auth) {
        (Some(addr), Some(auth)) if problems.len() == before => Some(HttpSettings {
            addr,
            auth,
            allowed_origins,
        }),
        _ => None,
    }
}

/// `scheme://host[:port]` with an `http` or `https` scheme and nothing after.
fn is_origin(o: &str) -> bool {
    let Some((scheme, rest)) = o.split_once("://") else {
        return false;
    };
    matches!(scheme, "http" | "https")
        && !rest.is_empty()
        && !rest.contains(['/', '?', '#', '@', ' '])
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
        assert_eq!(s.health_addr, DEFAULT_HEALTH_ADDR);
        assert!(s.health_addr.ip().is_loopback(), "private by default");
        assert_eq!(s.log_format, LogFormat::Json);
        assert!(!s.migrate);
        let shown = format!("{s:?}");
        assert!(!shown.contains("pw@"), "{shown}");
        assert!(!shown.contains("AAECAwQF"), "{shown}");
    }

    #[test]
    fn one_default_region_for_every_number_typed() {
        let base = [
            ("DATABASE_URL", "postgres://svc:pw@db:5432/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ];
        assert_eq!(settings(&base).unwrap().default_region.as_str(), "ID");
        let mut vars = base.to_vec();
        vars.push(("WA_PAIRING_DEFAULT_REGION", "my"));
        assert_eq!(settings(&vars).unwrap().default_region.as_str(), "MY");
        vars.pop();
        vars.push(("WA_PAIRING_DEFAULT_REGION", "Malaysia"));
        let e = settings(&vars).unwrap_err().to_string();
        assert!(
            e.contains("WA_PAIRING_DEFAULT_REGION must be a two-letter region code"),
            "{e}"
        );
    }

    #[test]
    fn whatsapp_settings_are_read_by_the_connector_crate_and_refused_with_the_others() {
        let e = settings(&[
            ("DATABASE_URL", "postgres://svc:pw@db:5432/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("WA_PAIRING_WA_SERVER_URL", "http://127.0.0.1:5280/ws/chat"),
            ("REDIS_URL", "http://cache:6379"),
        ])
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("WA_PAIRING_WA_SERVER_URL: "), "{text}");
        assert!(text.contains("must start with wss://"), "{text}");
        assert!(
            text.contains("REDIS_URL is not a valid Redis URL"),
            "{text}"
        );
        assert_eq!(e.problems.len(), 2, "{text}");
        let s = settings(&[
            ("DATABASE_URL", "postgres://svc:pw@db:5432/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("WA_PAIRING_WA_DISPLAY", "Firefox (Windows)"),
        ])
        .unwrap();
        assert!(format!("{:?}", s.whatsapp).contains("Firefox"), "{s:?}");
    }

    /// A configuration file with `text`, removed when dropped.
    struct ConfigFile(std::path::PathBuf);

    impl ConfigFile {
        fn new(text: &str) -> Self {
            let path = std::env::temp_dir().join(format!(
                "wa-pairing-settings-{}.toml",
                uuid::Uuid::new_v4().simple()
            ));
            std::fs::write(&path, text).unwrap();
            Self(path)
        }

        fn path(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }

    impl Drop for ConfigFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    #[test]
    fn a_configuration_file_holds_the_libraries_own_configurations() {
        let file = ConfigFile::new(
            r#"
[postgres]
url = "postgres://svc:pw@db.example.com:5432/app"
pool_size = 32
operation_timeout = "3s"

[redis]
url = "redis://127.0.0.1:6379"
prefix = "shop-a:"

[whatsapp]
display = "Edge (Windows)"

[runner]
max_sessions = 200
lease_for = "20s"
heartbeat = "5s"
"#,
        );
        let s = settings(&[
            ("WA_PAIRING_CONFIG", file.path()),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(matches!(s.store, StoreSettings::Postgres(_)), "{shown}");
        assert!(shown.contains("pool_size: 32"), "{shown}");
        assert!(!shown.contains(":pw@"), "the password is redacted: {shown}");
        assert!(shown.contains("shop-a:"), "{shown}");
        assert!(shown.contains("Edge"), "{shown}");
        assert!(shown.contains("max_sessions: 200"), "{shown}");
    }

    #[test]
    fn the_readme_example_file_is_accepted() {
        let readme = include_str!("../README.md");
        let section = &readme[readme.find("### A configuration file").unwrap()..];
        let start = section.find("```toml\n").unwrap() + "```toml\n".len();
        let example = &section[start..start + section[start..].find("```").unwrap()];
        let file = ConfigFile::new(example);
        let s = settings(&[
            ("WA_PAIRING_CONFIG", file.path()),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ])
        .unwrap();
        assert!(s.redis.is_some() && s.runner.is_some(), "{s:?}");
    }

    #[test]
    fn a_file_and_the_environment_never_set_the_same_thing_and_mistakes_name_the_line() {
        let file = ConfigFile::new(
            "[postgres]\nurl = \"postgres://svc@db/app\"\npool_size = 0\n\n[runner]\ninstance_id = \"a\"\n",
        );
        let e = settings(&[
            ("WA_PAIRING_CONFIG", file.path()),
            ("DATABASE_URL", "postgres://svc@db/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ])
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("DATABASE_URL in the environment set the same thing"),
            "{text}"
        );
        assert!(text.contains("[postgres] pool_size is 0"), "{text}");
        assert!(text.contains("[runner] instance_id"), "{text}");

        let typo = ConfigFile::new("[postgres]\nurl = \"postgres://svc@db/app\"\npool_sise = 4\n");
        let e = settings(&[
            ("WA_PAIRING_CONFIG", typo.path()),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ])
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("line 3"), "{text}");
        assert!(text.contains("pool_sise"), "{text}");

        let e = settings(&[
            ("WA_PAIRING_CONFIG", "/nonexistent/wa-pairing.toml"),
            ("DATABASE_URL", "postgres://svc@db/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("cannot be read"), "{e}");
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
            ("WA_PAIRING_RESUME_RATE", "fast"),
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
            "WA_PAIRING_RESUME_RATE",
            "WA_PAIRING_LOG_FORMAT",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert_eq!(e.problems.len(), 7, "{text}");
    }

    #[test]
    fn tls_settings_are_read_and_checked() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://svc:pw@db.example.com:5432/app"),
            ("PGSSLMODE", "verify-full"),
            ("PGSSLROOTCERT", "/etc/ssl/supabase-ca.crt"),
            ("REDIS_URL", "rediss://default:pw@cache.example.com:6380"),
            ("REDIS_ROOT_CERT", "/etc/ssl/redis-ca.crt"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ])
        .unwrap();
        let shown = format!("{s:?}");
        assert!(shown.contains("VerifyFull"), "{shown}");
        assert!(shown.contains("supabase-ca.crt"), "{shown}");
        assert!(shown.contains("redis-ca.crt"), "{shown}");

        let e = settings(&[
            ("DATABASE_URL", "postgres://svc:pw@db.example.com:5432/app"),
            ("PGSSLMODE", "sometimes"),
            ("REDIS_ROOT_CERT", "/etc/ssl/redis-ca.crt"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ])
        .unwrap_err();
        let text = e.to_string();
        assert!(text.contains("PGSSLMODE: sslmode must be"), "{text}");
        assert!(
            text.contains("REDIS_ROOT_CERT is set but REDIS_URL"),
            "{text}"
        );
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

    #[test]
    fn the_http_api_is_served_when_its_address_is_set() {
        let base = [
            ("DATABASE_URL", "postgres://svc:pw@db:5432/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ];
        assert!(settings(&base).unwrap().http.is_none());

        let mut vars = base.to_vec();
        vars.extend([
            ("WA_PAIRING_HTTP_ADDR", "0.0.0.0:3000"),
            ("SUPABASE_URL", "https://abcd.supabase.co"),
            ("SUPABASE_JWT_SECRET", "super-secret-jwt-value"),
            (
                "WA_PAIRING_ALLOWED_ORIGINS",
                "https://app.example.com/, http://localhost:5173",
            ),
        ]);
        let s = settings(&vars).unwrap();
        assert!(
            matches!(s.store, StoreSettings::Postgres(_)),
            "DATABASE_URL stays the store"
        );
        let http = s.http.as_ref().unwrap();
        assert_eq!(http.addr.port(), 3000);
        assert_eq!(
            http.allowed_origins,
            ["https://app.example.com", "http://localhost:5173"]
        );
        let shown = format!("{s:?}");
        assert!(
            shown.contains("https://abcd.supabase.co/auth/v1"),
            "the issuer comes from the project: {shown}"
        );
        assert!(!shown.contains("super-secret-jwt-value"), "{shown}");
    }

    #[test]
    fn http_problems_are_reported_with_the_others() {
        let e = settings(&[
            ("WA_PAIRING_HTTP_ADDR", "0.0.0.0:9464"),
            (
                "WA_PAIRING_ALLOWED_ORIGINS",
                "https://app.example.com/login,*",
            ),
            ("WA_PAIRING_PAIRING_ACTIONS_PER_MINUTE", "10"),
        ])
        .unwrap_err();
        let text = e.to_string();
        for needle in [
            "same port 9464",
            "the tokens' issuer",
            "no key to check tokens",
            "`https://app.example.com/login` is not an origin",
            "`*` allows every origin",
            "WA_PAIRING_PAIRING_ACTIONS_PER_MINUTE is no longer read",
            "pairing_starts_per_minute",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }

        let e = settings(&[
            ("DATABASE_URL", "postgres://db/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("SUPABASE_JWT_SECRET", "super-secret-jwt-value"),
        ])
        .unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("SUPABASE_JWT_SECRET is set but WA_PAIRING_HTTP_ADDR is not"),
            "{text}"
        );
        assert!(!text.contains("super-secret-jwt-value"), "{text}");
    }

    #[test]
    fn any_issuer_with_a_secret_or_a_jwks_url() {
        let s = settings(&[
            ("DATABASE_URL", "postgres://db/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("WA_PAIRING_HTTP_ADDR", "127.0.0.1:0"),
            ("WA_PAIRING_JWT_ISSUER", "https://auth.example.com"),
            ("WA_PAIRING_JWKS_URL", "https://auth.example.com/jwks.json"),
        ])
        .unwrap();
        let shown = format!("{:?}", s.http.unwrap());
        assert!(
            shown.contains("https://auth.example.com/jwks.json"),
            "{shown}"
        );

        let e = settings(&[
            ("DATABASE_URL", "postgres://db/app"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("WA_PAIRING_HTTP_ADDR", "127.0.0.1:0"),
            ("WA_PAIRING_JWT_ISSUER", "https://auth.example.com"),
            ("WA_PAIRING_JWKS_URL", "http://auth.example.com/jwks.json"),
        ])
        .unwrap_err();
        assert!(e.to_string().contains("WA_PAIRING_JWKS_URL"), "{e}");
    }
}
