//! Where the Supabase project is and how to authenticate.

use std::fmt;
use std::time::Duration;

use base64::Engine as _;
use wa_pairing_store::{ErrorKind, StoreError, StoreResult};

/// The environment variable holding the project URL (the original design's name).
pub const SUPABASE_URL_ENV: &str = "SUPABASE_URL";
/// The environment variable holding the service key (the original design's name).
pub const SUPABASE_SERVICE_ROLE_KEY_ENV: &str = "SUPABASE_SERVICE_ROLE_KEY";

/// How the key is sent, decided from its shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyKind {
    /// A legacy JWT key (`eyJ...`, role `service_role`): sent as `apikey` and as
    /// `Authorization: Bearer`.
    Jwt,
    /// A new secret key (`sb_secret_...`): sent as `apikey` only; Supabase's gateway turns it
    /// into the service role.
    Secret,
}

/// The project URL, the service key and the limits on every request.
///
/// `Debug` never shows the key.
///
/// ```
/// use std::time::Duration;
/// use wa_pairing_supabase::{KeyKind, SupabaseConfig};
///
/// let config = SupabaseConfig::new("https://abcd.supabase.co", "sb_secret_0123456789abcdef")?
///     .timeout(Duration::from_secs(5));
/// assert_eq!(config.key_kind(), KeyKind::Secret);
/// assert_eq!(config.rest_url(), "https://abcd.supabase.co/rest/v1");
/// assert!(!format!("{config:?}").contains("0123456789"));
/// # Ok::<(), wa_pairing_store::StoreError>(())
/// ```
///
/// Plain data: it deserialises from a configuration file (`url` and `key` required; durations
/// as `"10s"`), checked as [`SupabaseConfig::new`] checks them.
#[derive(Clone, serde::Deserialize)]
#[serde(try_from = "SupabaseConfigData")]
pub struct SupabaseConfig {
    rest_url: String,
    key: String,
    kind: KeyKind,
    pub(crate) timeout: Duration,
    pub(crate) connect_timeout: Duration,
    pub(crate) schema: Option<String>,
}

impl fmt::Debug for SupabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SupabaseConfig")
            .field("rest_url", &self.rest_url)
            .field("key", &"<redacted>")
            .field("key_kind", &self.kind)
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("schema", &self.schema)
            .finish()
    }
}

fn config_error(message: impl Into<String>) -> StoreError {
    StoreError::new(ErrorKind::Configuration, message)
}

/// What a configuration file holds, before it is checked.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SupabaseConfigData {
    url: String,
    key: String,
    #[serde(default, with = "humantime_serde")]
    timeout: Option<Duration>,
    #[serde(default, with = "humantime_serde")]
    connect_timeout: Option<Duration>,
    #[serde(default)]
    schema: Option<String>,
}

impl TryFrom<SupabaseConfigData> for SupabaseConfig {
    type Error = StoreError;

    fn try_from(data: SupabaseConfigData) -> Result<Self, StoreError> {
        let mut config = Self::new(data.url, data.key)?;
        if let Some(t) = data.timeout {
            config = config.timeout(t);
        }
        if let Some(t) = data.connect_timeout {
            config = config.connect_timeout(t);
        }
        if let Some(schema) = data.schema {
            config = config.schema(schema);
        }
        Ok(config)
    }
}

impl SupabaseConfig {
    /// The project at `url` (`https://<ref>.supabase.co`, with or without `/rest/v1`) with
    /// the service key: a new secret key (`sb_secret_...`) or the legacy `service_role` JWT.
    ///
    /// # Errors
    ///
    /// `Configuration`, saying what to fix, when the URL is not an `https` URL (plain
    /// `http` is accepted only for this machine: `localhost`, `127.0.0.0/8`, `::1`, as the
    /// local Supabase CLI serves), or the key is empty, cannot travel in a header, is a
    /// publishable key, or is a JWT for another role than `service_role`.
    ///
    /// ```
    /// use wa_pairing_supabase::SupabaseConfig;
    ///
    /// // The local Supabase CLI: plain HTTP on this machine is fine.
    /// assert!(SupabaseConfig::new("http://127.0.0.1:54321", "sb_secret_x").is_ok());
    /// // Anywhere else the key would cross the network in clear text.
    /// let refused = SupabaseConfig::new("http://abcd.supabase.co", "sb_secret_x").unwrap_err();
    /// assert!(refused.message().contains("use https://"));
    /// ```
    pub fn new(url: impl AsRef<str>, key: impl Into<String>) -> StoreResult<Self> {
        let rest_url = rest_url(url.as_ref())?;
        let key = key.into().trim().to_owned();
        let kind = key_kind(&key)?;
        Ok(Self {
            rest_url,
            key,
            kind,
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            schema: None,
        })
    }

    /// Reads [`SUPABASE_URL_ENV`] and [`SUPABASE_SERVICE_ROLE_KEY_ENV`].
    ///
    /// # Errors
    ///
    /// `Configuration` naming the variable that is missing or malformed.
    pub fn from_env() -> StoreResult<Self> {
        let url = std::env::var(SUPABASE_URL_ENV).map_err(|_| {
            config_error("SUPABASE_URL is not set: set it to your project's URL, https://<project-ref>.supabase.co")
        })?;
        let key = std::env::var(SUPABASE_SERVICE_ROLE_KEY_ENV).map_err(|_| {
            config_error("SUPABASE_SERVICE_ROLE_KEY is not set: set it to the project's secret key (sb_secret_...) or legacy service_role key, from Project Settings > API Keys")
        })?;
        Self::new(url, key)
    }

    /// The store for this configuration; the same as
    /// [`SupabaseStore::new`](crate::SupabaseStore::new).
    pub fn build(self) -> StoreResult<crate::SupabaseStore> {
        crate::SupabaseStore::new(self)
    }

    /// The limit on every request, connecting included (default 10 s).
    #[must_use]
    pub fn timeout(mut self, d: Duration) -> Self {
        self.timeout = d;
        self
    }

    /// The limit on opening a connection (default 5 s).
    #[must_use]
    pub fn connect_timeout(mut self, d: Duration) -> Self {
        self.connect_timeout = d;
        self
    }

    /// A schema other than `public` (sent as `Accept-Profile`/`Content-Profile`; it must be
    /// in the project's exposed schemas).
    #[must_use]
    pub fn schema(mut self, schema: impl Into<String>) -> Self {
        self.schema = Some(schema.into());
        self
    }

    /// The REST endpoint, `<project URL>/rest/v1`.
    pub fn rest_url(&self) -> &str {
        &self.rest_url
    }

    /// How the key is sent.
    pub const fn key_kind(&self) -> KeyKind {
        self.kind
    }

    pub(crate) fn key(&self) -> &str {
        &self.key
    }
}

fn rest_url(raw: &str) -> StoreResult<String> {
    let bad = || {
        config_error(
            "SUPABASE_URL is not a valid project URL: write https://<project-ref>.supabase.co",
        )
    };
    let url = reqwest::Url::parse(raw.trim()).map_err(|_| bad())?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(bad());
    }
    if url.query().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(config_error(
            "SUPABASE_URL must be the bare project URL, without credentials or a query: https://<project-ref>.supabase.co",
        ));
    }
    if url.scheme() == "http" && !is_loopback(&url) {
        return Err(config_error(
            "SUPABASE_URL uses plain http:// for a host that is not this machine, which would send the service key unencrypted: use https://<project-ref>.supabase.co (http:// is accepted only for 127.0.0.1, ::1 and localhost)",
        ));
    }
    let mut s = url.as_str().trim_end_matches('/').to_owned();
    if !s.ends_with("/rest/v1") {
        s.push_str("/rest/v1");
    }
    Ok(s)
}

/// Whether `url` names this machine: `localhost`, 127.0.0.0/8 or `::1`, where plain HTTP
/// never crosses a network (the local Supabase CLI and tests).
fn is_loopback(url: &reqwest::Url) -> bool {
    url.host_str()
        .is_some_and(wa_pairing_store::net::is_loopback_host)
}

fn key_kind(key: &str) -> StoreResult<KeyKind> {
    if key.is_empty() {
        return Err(config_error(
            "the Supabase service key is empty: set SUPABASE_SERVICE_ROLE_KEY to the project's secret key",
        ));
    }
    if !key.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(config_error(
            "the Supabase service key contains spaces or characters a header cannot carry: copy it again from Project Settings > API Keys",
        ));
    }
    if key.starts_with("sb_publishable_") {
        return Err(config_error(
            "the Supabase key is a publishable key, which end users' browsers use: the runner needs the secret key (sb_secret_...) or the legacy service_role key",
        ));
    }
    if key.starts_with("sb_secret_") {
        return Ok(KeyKind::Secret);
    }
    let parts: Vec<&str> = key.split('.').collect();
    if parts.len() == 3 && parts[0].starts_with("eyJ") {
        let role = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1].trim_end_matches('='))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("role").and_then(|r| r.as_str()).map(str::to_owned));
        return match role.as_deref() {
            Some("service_role") => Ok(KeyKind::Jwt),
            Some(other) => Err(config_error(format!(
                "the Supabase key is for the `{other}` role: the runner needs the service_role key (or a secret key, sb_secret_...)"
            ))),
            None => Err(config_error(
                "the Supabase key looks like a JWT but its claims cannot be read: copy the service_role key again",
            )),
        };
    }
    Err(config_error(
        "the Supabase key is neither a secret key (sb_secret_...) nor a service_role JWT (eyJ...): copy it from Project Settings > API Keys",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use wa_pairing_retry::Classify as _;

    fn jwt(role: &str) -> String {
        let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
        format!(
            "{}.{}.c2lnbmF0dXJl",
            enc(r#"{"alg":"HS256","typ":"JWT"}"#),
            enc(&format!(r#"{{"iss":"supabase","role":"{role}"}}"#))
        )
    }

    #[test]
    fn urls_are_normalised() {
        for (given, want) in [
            ("https://abc.supabase.co", "https://abc.supabase.co/rest/v1"),
            (
                "https://abc.supabase.co/",
                "https://abc.supabase.co/rest/v1",
            ),
            (
                " https://abc.supabase.co/rest/v1/ ",
                "https://abc.supabase.co/rest/v1",
            ),
            ("http://127.0.0.1:54321", "http://127.0.0.1:54321/rest/v1"),
        ] {
            let c = SupabaseConfig::new(given, "sb_secret_x").unwrap();
            assert_eq!(c.rest_url(), want, "{given}");
        }
        for bad in [
            "",
            "abc.supabase.co",
            "ftp://abc",
            "https://u:p@abc.supabase.co",
            "https://abc?x=1",
        ] {
            let e = SupabaseConfig::new(bad, "sb_secret_x").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration, "{bad}");
            assert!(e.message().contains("SUPABASE_URL"), "{bad}: {e}");
        }
    }

    #[test]
    fn plain_http_is_refused_except_on_this_machine() {
        for local in [
            "http://127.0.0.1:54321",
            "http://127.8.9.10:8000/rest/v1",
            "http://[::1]:54321",
            "http://localhost:54321",
            "http://LOCALHOST",
            // 127.0.0.1 written as an IPv4-mapped IPv6 address is this machine too.
            "http://[::ffff:127.0.0.1]",
            "https://abc.supabase.co",
            "https://10.0.0.5:8443",
        ] {
            assert!(
                SupabaseConfig::new(local, "sb_secret_x").is_ok(),
                "{local} should be allowed"
            );
        }
        for remote in [
            "http://abc.supabase.co",
            "http://abc.supabase.co:80/rest/v1",
            "http://10.0.0.5:8000",
            "http://192.168.1.2",
            "http://[2001:db8::1]:8000",
            "http://[::ffff:10.0.0.5]",
            "http://localhost.example.com",
            "http://kong:8000",
            "http://0.0.0.0:54321",
        ] {
            let e = SupabaseConfig::new(remote, "sb_secret_TOPSECRET").unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration, "{remote}");
            assert!(!e.verdict().is_retryable(), "{remote}");
            let m = e.message();
            assert!(m.contains("SUPABASE_URL"), "{remote}: {e}");
            assert!(
                m.contains("https://<project-ref>.supabase.co"),
                "{remote}: {e}"
            );
            assert!(!m.contains("TOPSECRET"), "{remote}: {e}");
        }
    }

    #[test]
    fn keys_are_recognised_and_wrong_ones_refused_with_a_reason() {
        let url = "https://abc.supabase.co";
        assert_eq!(
            SupabaseConfig::new(url, "sb_secret_abc")
                .unwrap()
                .key_kind(),
            KeyKind::Secret
        );
        assert_eq!(
            SupabaseConfig::new(url, jwt("service_role"))
                .unwrap()
                .key_kind(),
            KeyKind::Jwt
        );
        let cases = [
            (String::new(), "empty"),
            ("sb_secret_a b".to_owned(), "header"),
            ("sb_publishable_abc".to_owned(), "publishable"),
            (jwt("anon"), "`anon` role"),
            ("eyJ.notbase64!.x".to_owned(), "claims"),
            ("hunter2".to_owned(), "neither"),
        ];
        for (key, why) in cases {
            let e = SupabaseConfig::new(url, key.clone()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration);
            assert!(e.message().contains(why), "{why}: {e}");
            if key.len() > 4 {
                assert!(!e.message().contains(&key), "the key leaked: {e}");
            }
        }
    }

    #[test]
    fn debug_hides_the_key() {
        let c = SupabaseConfig::new("https://abc.supabase.co", "sb_secret_TOPSECRET").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("TOPSECRET"));
        assert!(shown.contains("redacted"));
    }
}
