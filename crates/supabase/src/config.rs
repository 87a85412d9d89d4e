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
/// let config = SupabaseConfig::new("https://abcd.supabase.co", "sb_secret_0123456789abcdef")
///     .timeout(Duration::from_secs(5));
/// config.validate()?;
/// assert_eq!(config.key_kind()?, KeyKind::Secret);
/// assert_eq!(config.rest_url()?, "https://abcd.supabase.co/rest/v1");
/// assert!(!format!("{config:?}").contains("0123456789"));
/// # Ok::<(), wa_pairing_store::StoreError>(())
/// ```
///
/// Plain data: it deserialises from a configuration file (`url` and `key` required; durations
/// as `"10s"`), and [`validate`](Self::validate) (which [`build`](Self::build) and
/// [`connect`](Self::connect) call) checks it.
#[derive(Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct SupabaseConfig {
    url: String,
    key: String,
    #[serde(default = "defaults::timeout", with = "humantime_serde")]
    pub(crate) timeout: Duration,
    #[serde(default = "defaults::connect_timeout", with = "humantime_serde")]
    pub(crate) connect_timeout: Duration,
    #[serde(default)]
    pub(crate) schema: Option<String>,
}

mod defaults {
    use std::time::Duration;

    pub(super) const fn timeout() -> Duration {
        Duration::from_secs(10)
    }

    pub(super) const fn connect_timeout() -> Duration {
        Duration::from_secs(5)
    }
}

impl fmt::Debug for SupabaseConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rest_url = self.rest_url();
        f.debug_struct("SupabaseConfig")
            .field(
                "rest_url",
                &rest_url.as_deref().unwrap_or("<not a valid project URL>"),
            )
            .field("key", &"<redacted>")
            .field("key_kind", &self.key_kind().ok())
            .field("timeout", &self.timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("schema", &self.schema)
            .finish_non_exhaustive()
    }
}

fn config_error(message: impl Into<String>) -> StoreError {
    StoreError::new(ErrorKind::Configuration, message)
}

impl SupabaseConfig {
    /// The project at `url` (`https://<ref>.supabase.co`, with or without `/rest/v1`) with
    /// the service key: a new secret key (`sb_secret_...`) or the legacy `service_role` JWT.
    /// Nothing is checked yet: [`validate`](Self::validate) does, and so do
    /// [`build`](Self::build) and [`connect`](Self::connect).
    pub fn new(url: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            key: key.into().trim().to_owned(),
            timeout: defaults::timeout(),
            connect_timeout: defaults::connect_timeout(),
            schema: None,
        }
    }

    /// Checks the configuration.
    ///
    /// # Errors
    ///
    /// `Configuration`, saying what to fix, when the URL is not an `https` URL (plain
    /// `http` is accepted only for this machine: `localhost`, `127.0.0.0/8`, `::1`, as the
    /// local Supabase CLI serves), the key is empty, cannot travel in a header, is a
    /// publishable key, or is a JWT for another role than `service_role`, a timeout is zero
    /// or the schema is empty.
    ///
    /// ```
    /// use wa_pairing_supabase::SupabaseConfig;
    ///
    /// // The local Supabase CLI: plain HTTP on this machine is fine.
    /// assert!(SupabaseConfig::new("http://127.0.0.1:54321", "sb_secret_x").validate().is_ok());
    /// // Anywhere else the key would cross the network in clear text.
    /// let refused = SupabaseConfig::new("http://abcd.supabase.co", "sb_secret_x")
    ///     .validate()
    ///     .unwrap_err();
    /// assert!(refused.message().contains("use https://"));
    /// ```
    pub fn validate(&self) -> StoreResult<()> {
        self.rest_url()?;
        self.key_kind()?;
        for (name, d) in [
            ("timeout", self.timeout),
            ("connect_timeout", self.connect_timeout),
        ] {
            if d.is_zero() {
                return Err(config_error(format!(
                    "{name} is 0: give Supabase time to answer, such as 5s"
                )));
            }
        }
        if self.schema.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(config_error(
                "schema is empty: leave it unset for `public`, or name an exposed schema",
            ));
        }
        Ok(())
    }

    /// Reads [`SUPABASE_URL_ENV`] and [`SUPABASE_SERVICE_ROLE_KEY_ENV`], and checks them.
    ///
    /// # Errors
    ///
    /// `Configuration` naming the variable that is missing or malformed.
    pub fn from_env() -> StoreResult<Self> {
        Self::from_lookup(|name| std::env::var(name).ok())?.ok_or_else(|| {
            config_error(
                "SUPABASE_URL is not set: set it to your project's URL, https://<project-ref>.supabase.co",
            )
        })
    }

    /// Reads [`SUPABASE_URL_ENV`] and [`SUPABASE_SERVICE_ROLE_KEY_ENV`] through `lookup` (a
    /// variable's name to its value; empty counts as unset), and checks them: `None` when
    /// neither is set. The one reader of these variables: [`from_env`](Self::from_env) and
    /// the service both use it.
    ///
    /// # Errors
    ///
    /// `Configuration` naming the variable that is missing or malformed.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> StoreResult<Option<Self>> {
        let var = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        match (var(SUPABASE_URL_ENV), var(SUPABASE_SERVICE_ROLE_KEY_ENV)) {
            (None, None) => Ok(None),
            (Some(url), Some(key)) => {
                let config = Self::new(url, key);
                config.validate()?;
                Ok(Some(config))
            }
            (Some(_), None) => Err(config_error(
                "SUPABASE_SERVICE_ROLE_KEY is not set: set it to the project's secret key (sb_secret_...) or legacy service_role key, from Project Settings > API Keys",
            )),
            (None, Some(_)) => Err(config_error(
                "SUPABASE_SERVICE_ROLE_KEY is set but SUPABASE_URL is not: set it to your project's URL, https://<project-ref>.supabase.co",
            )),
        }
    }

    /// The store for this configuration, with no request made yet; the same as
    /// [`SupabaseStore::new`](crate::SupabaseStore::new).
    ///
    /// # Errors
    ///
    /// `Configuration` when [`validate`](Self::validate) refuses the configuration.
    pub fn build(&self) -> StoreResult<crate::SupabaseStore> {
        crate::SupabaseStore::new(self)
    }

    /// The store for this configuration, once the project's REST API has answered one
    /// request with the key ([`SupabaseStore::ping`](crate::SupabaseStore::ping)).
    ///
    /// # Errors
    ///
    /// `Configuration` when [`validate`](Self::validate) refuses the configuration; the
    /// ping's error when the project does not answer (retryable) or refuses the key
    /// (permanent, saying what to change).
    pub async fn connect(&self) -> StoreResult<crate::SupabaseStore> {
        let store = self.build()?;
        store.ping().await?;
        Ok(store)
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
    ///
    /// # Errors
    ///
    /// `Configuration` when the URL is refused (see [`validate`](Self::validate)).
    pub fn rest_url(&self) -> StoreResult<String> {
        rest_url(&self.url)
    }

    /// How the key is sent.
    ///
    /// # Errors
    ///
    /// `Configuration` when the key is refused (see [`validate`](Self::validate)).
    pub fn key_kind(&self) -> StoreResult<KeyKind> {
        key_kind(&self.key)
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
            let c = SupabaseConfig::new(given, "sb_secret_x");
            assert_eq!(c.rest_url().unwrap(), want, "{given}");
        }
        for bad in [
            "",
            "abc.supabase.co",
            "ftp://abc",
            "https://u:p@abc.supabase.co",
            "https://abc?x=1",
        ] {
            let e = SupabaseConfig::new(bad, "sb_secret_x")
                .validate()
                .unwrap_err();
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
                SupabaseConfig::new(local, "sb_secret_x").validate().is_ok(),
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
            let e = SupabaseConfig::new(remote, "sb_secret_TOPSECRET")
                .validate()
                .unwrap_err();
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
                .key_kind()
                .unwrap(),
            KeyKind::Secret
        );
        assert_eq!(
            SupabaseConfig::new(url, jwt("service_role"))
                .key_kind()
                .unwrap(),
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
            let e = SupabaseConfig::new(url, key.clone())
                .validate()
                .unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Configuration);
            assert!(e.message().contains(why), "{why}: {e}");
            if key.len() > 4 {
                assert!(!e.message().contains(&key), "the key leaked: {e}");
            }
        }
    }

    #[test]
    fn one_shape_new_never_fails_and_validate_names_the_setting() {
        let ok = SupabaseConfig::new("https://abc.supabase.co", "sb_secret_abc");
        assert!(ok.validate().is_ok());
        for (config, needle) in [
            (ok.clone().timeout(Duration::ZERO), "timeout is 0"),
            (
                ok.clone().connect_timeout(Duration::ZERO),
                "connect_timeout is 0",
            ),
            (ok.clone().schema(" "), "schema is empty"),
        ] {
            let e = config.validate().unwrap_err();
            assert!(e.message().contains(needle), "{needle}: {e}");
            assert_eq!(config.build().unwrap_err().message(), e.message());
        }
        let from_file: SupabaseConfig = serde_json::from_str(
            r#"{"url": "http://abc.supabase.co", "key": "sb_secret_abc", "timeout": "3s"}"#,
        )
        .unwrap();
        assert_eq!(from_file.timeout, Duration::from_secs(3));
        assert!(
            from_file
                .validate()
                .unwrap_err()
                .message()
                .contains("https://")
        );
        assert!(
            serde_json::from_str::<SupabaseConfig>(
                r#"{"url": "https://a", "key": "k", "tiemout": "3s"}"#
            )
            .is_err(),
            "unknown fields are refused"
        );
    }

    #[test]
    fn the_environment_is_read_by_one_function() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| (*v).to_owned())
            }
        };
        assert!(SupabaseConfig::from_lookup(env(&[])).unwrap().is_none());
        assert!(
            SupabaseConfig::from_lookup(env(&[
                ("SUPABASE_URL", "https://abc.supabase.co"),
                ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_abc"),
            ]))
            .unwrap()
            .is_some()
        );
        let e = SupabaseConfig::from_lookup(env(&[("SUPABASE_URL", "https://abc.supabase.co")]))
            .unwrap_err();
        assert!(e.message().starts_with("SUPABASE_SERVICE_ROLE_KEY"), "{e}");
        let e = SupabaseConfig::from_lookup(env(&[("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_x")]))
            .unwrap_err();
        assert!(e.message().contains("SUPABASE_URL is not"), "{e}");
        assert!(!e.message().contains("sb_secret_x"), "{e}");
    }

    #[test]
    fn debug_hides_the_key() {
        let c = SupabaseConfig::new("https://abc.supabase.co", "sb_secret_TOPSECRET");
        let shown = format!("{c:?}");
        assert!(!shown.contains("TOPSECRET"));
        assert!(shown.contains("redacted"));
    }
}
