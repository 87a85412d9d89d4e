//! The service's settings, read from the environment and checked at once.

use std::fmt;
use std::net::SocketAddr;

use wa_pairing_http::AuthConfig;
use wa_pairing_postgres::PostgresConfig;
use wa_pairing_redis::RedisConfig;
use wa_pairing_store::Keyring;
use wa_pairing_supabase::SupabaseConfig;

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
    /// WhatsApp connection overrides: server URL, web version, device display, push name.
    pub whatsapp_server: Option<String>,
    /// `WA_PAIRING_WA_VERSION`.
    pub whatsapp_version: Option<wa_pairing_whatsapp::WebVersion>,
    /// `WA_PAIRING_WA_DISPLAY`.
    pub whatsapp_display: Option<wa_pairing_whatsapp::DeviceDisplay>,
    /// `WA_PAIRING_WA_PUSH_NAME`.
    pub whatsapp_push_name: Option<String>,
    /// The HTTP API and device page, when configured.
    pub http: Option<HttpSettings>,
    /// The region numbers typed without a country code are read in, by the HTTP API and
    /// every other part of the service (`WA_PAIRING_DEFAULT_REGION`, default `ID`).
    pub default_region: wa_pairing_phone::Region,
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
        let mut problems = crate::placeholders::found(&var);
        if var(env::PAIRING_ACTIONS_PER_MINUTE).is_some() {
            problems.push(format!(
                "{} is no longer read: how often an owner may start pairing is now the database's rule, the same for every instance and for rows written through Supabase directly; unset it, and set the pace with SQL instead: update public.wa_pairing_settings set value = '10' where name = 'pairing_starts_per_minute'",
                env::PAIRING_ACTIONS_PER_MINUTE
            ));
        }

        let store = match (
            var(env::DATABASE_URL),
            var(env::SUPABASE_URL),
            var(env::SUPABASE_SERVICE_ROLE_KEY),
        ) {
            (Some(url), _, _) => {
                if url.starts_with("postgres://") || url.starts_with("postgresql://") {
                    match PostgresConfig::new(url).with_libpq_env(|name: &str| var(name)) {
                        Ok(config) => Some(StoreSettings::Postgres(config)),
                        Err(e) => {
                            problems.push(e.message().to_owned());
                            None
                        }
                    }
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

        let redis = match (var(env::REDIS_URL), var(env::REDIS_ROOT_CERT)) {
            (Some(url), Some(ca)) => Some(RedisConfig::new(url).root_cert(ca)),
            (Some(url), None) => Some(RedisConfig::new(url)),
            (None, Some(_)) => {
                problems.push(format!(
                    "{} is set but {} is not: set the rediss:// URL too, or remove the root certificate",
                    env::REDIS_ROOT_CERT,
                    env::REDIS_URL
                ));
                None
            }
            (None, None) => None,
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

        match (store, keyring) {
            (Some(store), Some(keyring)) if problems.is_empty() => Ok(Self {
                store,
                redis,
                keyring,
                instance_id,
                health_addr,
                migrate,
                max_sessions,
                resume_rate,
                log_format,
                whatsapp_server: var(wa_pairing_whatsapp::SERVER_URL_ENV),
                whatsapp_version,
                whatsapp_display,
                whatsapp_push_name: var(wa_pairing_whatsapp::PUSH_NAME_ENV),
                http,
                default_region,
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
