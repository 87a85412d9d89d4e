//! Supabase access tokens: HS256 with the project's JWT secret, or asymmetric keys (ES256,
//! RS256, EdDSA) from the project's JWKS document, given once or fetched and refreshed.

use std::fmt;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use axum::extract::{FromRef, FromRequestParts, Query};
use axum::http::request::Parts;
use chrono::{DateTime, Utc};
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;
use wa_pairing_store::UserId;

use crate::error::ApiError;
use crate::jwks::{self, JwksUrl};

/// How access tokens are checked.
///
/// # Behavior
///
/// - The issuer is always checked: every constructor takes it ([`AuthConfig::new`]) or
///   derives it from the project URL ([`AuthConfig::supabase`]); a token without `iss`, or
///   from another issuer, is refused.
/// - `exp`, `sub`, `aud` and `iss` are required; the audience must match (default
///   `authenticated`); `nbf`, when present, must have passed. Both clock checks tolerate
///   [`leeway`](Self::leeway) seconds of skew.
/// - HS256 tokens verify with the secret given to [`hs256`](Self::hs256); other algorithms
///   with a key of that algorithm (and the token's `kid`, when it names one) from the JWKS
///   documents given to [`with_jwks`](Self::with_jwks) or fetched from
///   [`jwks_url`](Self::jwks_url).
/// - A fetched JWKS is fetched again when a token names a key it does not hold, at most once
///   per [`jwks_refresh_interval`](Self::jwks_refresh_interval) (tokens arriving during a
///   fetch wait for it rather than start another). A document that is fetched and parses
///   replaces the fetched keys (so a key removed from it stops verifying); a failed fetch
///   keeps them and is logged (the URL and the reason, never a token).
/// - The JWKS is fetched over `https://` (or plain `http://` to localhost only), with
///   webpki's root certificates, a 10 s deadline, a 256 KiB limit, and without following
///   redirects.
/// - `Debug` shows no key material; error messages never contain the token.
///
/// Clones share the fetched keys, so an application can keep one for its own routes
/// (see [`Owner`]) without fetching twice.
///
/// ```
/// use wa_pairing_http::AuthConfig;
///
/// // Supabase: the issuer and the JWKS URL come from the project URL; the legacy JWT secret
/// // is accepted too while the project still signs with it.
/// let auth = AuthConfig::supabase("https://abcd.supabase.co")?
///     .hs256("the project's JWT secret");
/// assert!(!format!("{auth:?}").contains("JWT secret"));
///
/// // Any issuer, with the keys given here.
/// let auth = AuthConfig::new("https://auth.example.com").hs256("another secret");
/// # let _ = auth;
/// # Ok::<(), wa_pairing_http::AuthConfigError>(())
/// ```
#[derive(Clone)]
pub struct AuthConfig {
    inner: Arc<Inner>,
}

#[derive(Clone)]
struct Inner {
    issuer: String,
    audience: String,
    secret: Option<DecodingKey>,
    keys: Vec<Key>,
    remote: Option<Arc<RemoteKeys>>,
    refresh_every: Duration,
    leeway: u64,
}

#[derive(Clone)]
struct Key {
    kid: Option<String>,
    alg: Algorithm,
    decoding: DecodingKey,
}

impl Key {
    fn fits(&self, header: &Header) -> bool {
        self.alg == header.alg
            && (header.kid.is_none() || self.kid.as_deref() == header.kid.as_deref())
    }
}

fn names(keys: &[Key]) -> Vec<(Option<&str>, Algorithm)> {
    keys.iter().map(|k| (k.kid.as_deref(), k.alg)).collect()
}

/// Keys fetched from a JWKS URL, and when they were last fetched.
struct RemoteKeys {
    url: JwksUrl,
    keys: RwLock<Arc<[Key]>>,
    /// When the last fetch started; held during a fetch, so concurrent callers wait for it.
    last_fetch: tokio::sync::Mutex<Option<tokio::time::Instant>>,
}

impl RemoteKeys {
    fn current(&self) -> Arc<[Key]> {
        self.keys
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Fetches the document, unless `min_interval` is given and the last fetch started less
    /// than that ago (then `Ok(None)`). Returns how many keys are now known.
    async fn refresh(
        &self,
        min_interval: Option<Duration>,
    ) -> Result<Option<usize>, AuthConfigError> {
        let mut last = self.last_fetch.lock().await;
        if let (Some(every), Some(at)) = (min_interval, *last)
            && at.elapsed() < every
        {
            return Ok(None);
        }
        *last = Some(tokio::time::Instant::now());
        let fetched = jwks::fetch(&self.url)
            .await
            .map_err(|e| e.to_string())
            .and_then(|document| parse_jwks(&document).map_err(|e| e.0));
        match fetched {
            Ok(keys) => {
                let n = keys.len();
                tracing::debug!(url = %self.url, keys = ?names(&keys), "fetched the JWKS");
                *self.keys.write().unwrap_or_else(PoisonError::into_inner) = keys.into();
                Ok(Some(n))
            }
            Err(why) => {
                tracing::warn!(
                    url = %self.url,
                    error = %why,
                    "could not fetch the JWKS; keeping the keys already known"
                );
                Err(AuthConfigError(format!(
                    "could not fetch the JWKS from {}: {why}",
                    self.url
                )))
            }
        }
    }
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let i = &self.inner;
        let mut d = f.debug_struct("AuthConfig");
        d.field("issuer", &i.issuer)
            .field("audience", &i.audience)
            .field("hs256", &i.secret.is_some())
            .field("jwks", &names(&i.keys));
        if let Some(remote) = &i.remote {
            d.field("jwks_url", &remote.url)
                .field("fetched", &names(&remote.current()))
                .field("jwks_refresh_interval", &i.refresh_every);
        }
        d.field("leeway", &i.leeway).finish()
    }
}

/// An authentication setting that cannot be used: a JWKS document or URL, or a project URL.
/// The message says what to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthConfigError(String);

impl AuthConfigError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

/// What a verified token says: whose it is and until when it is valid.
///
/// ```
/// # async fn check(auth: &wa_pairing_http::AuthConfig, token: &str) -> Result<(), wa_pairing_http::ApiError> {
/// let verified = auth.verify(token).await?;
/// println!("{} until {}", verified.user, verified.expires_at);
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Verified {
    /// The token's subject.
    pub user: UserId,
    /// The token's `exp`. It is accepted until [`leeway`](AuthConfig::leeway) seconds later.
    pub expires_at: DateTime<Utc>,
}

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
    exp: u64,
}

/// The keys of a JWKS document that can verify signatures (each needs `alg`).
fn parse_jwks(document: &str) -> Result<Vec<Key>, AuthConfigError> {
    let set: JwkSet = serde_json::from_str(document).map_err(|_| {
        AuthConfigError::new(
            "the JWKS document is not valid JSON Web Key Set JSON: use the project's /auth/v1/.well-known/jwks.json",
        )
    })?;
    Ok(set
        .keys
        .iter()
        .filter_map(|jwk| {
            let alg = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())?;
            let key = DecodingKey::from_jwk(jwk).ok()?;
            Some(Key {
                kid: jwk.common.key_id.clone(),
                alg,
                decoding: key,
            })
        })
        .collect())
}

fn unknown_key() -> ApiError {
    ApiError::unauthorized("the access token is signed with a key this server does not know")
}

impl AuthConfig {
    /// Tokens from `issuer` (their `iss` must equal it), with no keys yet: add them with
    /// [`hs256`](Self::hs256), [`with_jwks`](Self::with_jwks) or
    /// [`jwks_url`](Self::jwks_url). Without any, every token is refused.
    ///
    /// # Default
    ///
    /// Audience `authenticated`, 30 s of leeway, a fetched JWKS refreshed at most every 30 s.
    ///
    /// ```
    /// use wa_pairing_http::AuthConfig;
    ///
    /// let auth = AuthConfig::new("https://abcd.supabase.co/auth/v1").hs256("secret");
    /// # let _ = auth;
    /// ```
    pub fn new(issuer: impl Into<String>) -> Self {
        Self {
            inner: Arc::new(Inner {
                issuer: issuer.into(),
                audience: "authenticated".to_owned(),
                secret: None,
                keys: Vec::new(),
                remote: None,
                refresh_every: Duration::from_secs(30),
                leeway: 30,
            }),
        }
    }

    /// A Supabase project's tokens: the issuer is `<project_url>/auth/v1` and the keys are
    /// fetched from `<project_url>/auth/v1/.well-known/jwks.json`. Add
    /// [`hs256`](Self::hs256) while the project still signs with its legacy JWT secret.
    ///
    /// # Errors
    ///
    /// When `project_url` is not an `https://` URL without a path (plain `http://` is
    /// accepted for localhost, where the Supabase CLI runs).
    ///
    /// ```
    /// use wa_pairing_http::AuthConfig;
    ///
    /// let auth = AuthConfig::supabase("https://abcd.supabase.co")?;
    /// let shown = format!("{auth:?}");
    /// assert!(shown.contains("https://abcd.supabase.co/auth/v1"));
    /// assert!(shown.contains("/auth/v1/.well-known/jwks.json"));
    /// assert!(AuthConfig::supabase("http://abcd.supabase.co").is_err());
    /// # Ok::<(), wa_pairing_http::AuthConfigError>(())
    /// ```
    pub fn supabase(project_url: &str) -> Result<Self, AuthConfigError> {
        let project = JwksUrl::parse(project_url, "Supabase project URL")?;
        if !matches!(project.path(), "" | "/") {
            return Err(AuthConfigError::new(
                "give the Supabase project URL without a path, like https://<project-ref>.supabase.co",
            ));
        }
        let issuer = format!("{}/auth/v1", project.origin());
        Self::new(issuer.clone()).jwks_url(&format!("{issuer}/.well-known/jwks.json"))
    }

    /// Also accepts tokens signed with HS256 and this secret (Supabase's legacy JWT secret).
    #[must_use]
    pub fn hs256(mut self, secret: impl AsRef<[u8]>) -> Self {
        Arc::make_mut(&mut self.inner).secret = Some(DecodingKey::from_secret(secret.as_ref()));
        self
    }

    /// Also accepts tokens signed with the keys of this JWKS document (for a fixed set of
    /// keys; [`jwks_url`](Self::jwks_url) follows rotations).
    ///
    /// # Errors
    ///
    /// When the document is not a JWKS, or none of its keys can verify signatures.
    pub fn with_jwks(mut self, document: &str) -> Result<Self, AuthConfigError> {
        let keys = parse_jwks(document)?;
        if keys.is_empty() {
            return Err(AuthConfigError::new(
                "the JWKS document has no usable signing key (each needs `alg` and its public parameters)",
            ));
        }
        Arc::make_mut(&mut self.inner).keys.extend(keys);
        Ok(self)
    }

    /// Also accepts tokens signed with the keys of the JWKS document at `url` (Supabase:
    /// `https://<project-ref>.supabase.co/auth/v1/.well-known/jwks.json`).
    ///
    /// The keys are fetched by [`fetch_keys`](Self::fetch_keys), by
    /// [`router`](crate::router) in the background when it is built inside a Tokio runtime,
    /// or else by the first token that needs them; then again whenever a token names a key
    /// they lack, at most once per [`jwks_refresh_interval`](Self::jwks_refresh_interval).
    ///
    /// # Errors
    ///
    /// When `url` is not an `https://` URL (plain `http://` is accepted for localhost).
    pub fn jwks_url(mut self, url: &str) -> Result<Self, AuthConfigError> {
        let url = JwksUrl::parse(url, "JWKS URL")?;
        Arc::make_mut(&mut self.inner).remote = Some(Arc::new(RemoteKeys {
            url,
            keys: RwLock::new(Arc::from(Vec::new())),
            last_fetch: tokio::sync::Mutex::new(None),
        }));
        Ok(self)
    }

    /// The least time between two fetches of the JWKS URL caused by tokens with unknown
    /// keys (default 30 s). A flood of such tokens causes at most one fetch per interval.
    #[must_use]
    pub fn jwks_refresh_interval(mut self, every: Duration) -> Self {
        Arc::make_mut(&mut self.inner).refresh_every = every;
        self
    }

    /// The required audience (default `authenticated`).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        Arc::make_mut(&mut self.inner).audience = audience.into();
        self
    }

    /// The issuer a token must name (`iss`).
    ///
    /// ```
    /// use wa_pairing_http::AuthConfig;
    ///
    /// let auth = AuthConfig::supabase("https://abcd.supabase.co")?;
    /// assert_eq!(auth.expected_issuer(), "https://abcd.supabase.co/auth/v1");
    /// assert_eq!(auth.expected_audience(), "authenticated");
    /// # Ok::<(), wa_pairing_http::AuthConfigError>(())
    /// ```
    pub fn expected_issuer(&self) -> &str {
        &self.inner.issuer
    }

    /// The audience a token must name (`aud`): `authenticated` unless
    /// [`audience`](Self::audience) set another.
    pub fn expected_audience(&self) -> &str {
        &self.inner.audience
    }

    /// Clock skew tolerated on `exp` and `nbf`, in seconds (default 30).
    #[must_use]
    pub fn leeway(mut self, seconds: u64) -> Self {
        Arc::make_mut(&mut self.inner).leeway = seconds;
        self
    }

    pub(crate) fn leeway_duration(&self) -> Duration {
        Duration::from_secs(self.inner.leeway)
    }

    /// Fetches the JWKS URL now, whatever the refresh interval: call it at start to find a
    /// wrong URL before the first sign-in. Returns how many usable keys the document holds
    /// (0 when there is no JWKS URL, or the project signs with its JWT secret only).
    ///
    /// # Errors
    ///
    /// When the document cannot be fetched or is not a JWKS; the keys already known are
    /// kept.
    ///
    /// ```no_run
    /// # async fn start() -> Result<(), wa_pairing_http::AuthConfigError> {
    /// let auth = wa_pairing_http::AuthConfig::supabase("https://abcd.supabase.co")?;
    /// let keys = auth.fetch_keys().await?;
    /// println!("{keys} signing keys");
    /// # Ok(())
    /// # }
    /// ```
    pub async fn fetch_keys(&self) -> Result<usize, AuthConfigError> {
        match &self.inner.remote {
            Some(remote) => Ok(remote.refresh(None).await?.unwrap_or_default()),
            None => Ok(0),
        }
    }

    /// Starts fetching the JWKS in the background if it was never fetched and a Tokio
    /// runtime is running.
    pub(crate) fn prefetch(&self) {
        let Some(remote) = self.inner.remote.clone() else {
            return;
        };
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                // Counted as the first fetch, so tokens arriving meanwhile wait for it.
                let _ = remote.refresh(Some(Duration::MAX)).await;
            });
        }
    }

    fn find(&self, header: &Header) -> Option<DecodingKey> {
        if let Some(k) = self.inner.keys.iter().find(|k| k.fits(header)) {
            return Some(k.decoding.clone());
        }
        let remote = self.inner.remote.as_ref()?.current();
        remote
            .iter()
            .find(|k| k.fits(header))
            .map(|k| k.decoding.clone())
    }

    async fn key_for(&self, header: &Header) -> Result<DecodingKey, ApiError> {
        if header.alg == Algorithm::HS256 {
            return self.inner.secret.clone().ok_or_else(unknown_key);
        }
        if let Some(key) = self.find(header) {
            return Ok(key);
        }
        if let Some(remote) = &self.inner.remote {
            // A rotated key: fetch again (rate-limited), then look once more. Failures are
            // logged by `refresh`; the answer stays "unknown key".
            let _ = remote.refresh(Some(self.inner.refresh_every)).await;
            if let Some(key) = self.find(header) {
                return Ok(key);
            }
        }
        Err(unknown_key())
    }

    /// Checks a token and returns its user and expiry.
    ///
    /// # Errors
    ///
    /// [`ApiError`] 401 with a reason (malformed, expired, not valid yet, bad signature,
    /// unknown key, wrong audience or issuer, a required claim missing): code
    /// `session_expired` for an expired token, `unauthorized` for the others. The token
    /// itself is never echoed.
    pub async fn verify(&self, token: &str) -> Result<Verified, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::unauthorized("the access token is malformed"))?;
        let key = self.key_for(&header).await?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.inner.audience]);
        validation.set_issuer(&[&self.inner.issuer]);
        validation.leeway = self.inner.leeway;
        validation.validate_nbf = true;
        validation.set_required_spec_claims(&["exp", "sub", "aud", "iss"]);
        let data = jsonwebtoken::decode::<Claims>(token, &key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            ApiError::unauthorized(match e.kind() {
                // Its own code, so that a page can say "your session expired".
                K::ExpiredSignature => return ApiError::session_expired(),
                K::ImmatureSignature => {
                    "the access token is not valid yet (nbf): check the clocks, or sign in again"
                }
                K::InvalidSignature => "the access token's signature is not valid",
                K::InvalidAudience => "the access token is for another audience",
                K::InvalidIssuer => "the access token is from another issuer",
                K::MissingRequiredClaim(_) => {
                    "the access token lacks a required claim (exp, sub, aud, iss)"
                }
                _ => "the access token is not valid",
            })
        })?;
        let user = data
            .claims
            .sub
            .ok_or_else(|| ApiError::unauthorized("the access token lacks a required claim (sub)"))?
            .parse::<UserId>()
            .map_err(|_| ApiError::unauthorized("the access token's subject is not a user id"))?;
        let expires_at = i64::try_from(data.claims.exp)
            .ok()
            .and_then(|exp| DateTime::from_timestamp(exp, 0))
            .ok_or_else(|| ApiError::unauthorized("the access token's expiry is out of range"))?;
        Ok(Verified { user, expires_at })
    }
}

/// The token of `Authorization: Bearer <token>`, if the header is there.
fn bearer(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    value
        .to_str()
        .ok()
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(|t| Some(t.trim()))
        .ok_or_else(|| {
            ApiError::unauthorized("the Authorization header must be `Bearer <access token>`")
        })
}

#[derive(Deserialize)]
struct TokenQuery {
    access_token: Option<String>,
}

/// The `access_token` query parameter, percent-decoded, if there is one.
fn query_token(parts: &Parts) -> Option<String> {
    Query::<TokenQuery>::try_from_uri(&parts.uri)
        .ok()
        .and_then(|Query(q)| q.access_token)
}

fn no_token() -> ApiError {
    ApiError::unauthorized("no access token: send `Authorization: Bearer <Supabase access token>`")
}

/// The authenticated owner of the request: the subject of the token in
/// `Authorization: Bearer <token>`.
///
/// Works in any router whose state gives an [`AuthConfig`] through axum's [`FromRef`], so
/// an application's own routes can use it beside [`router`](crate::router)'s.
///
/// # Behavior
///
/// - The token comes from the `Authorization` header only; a request with
///   `?access_token=` and no header is refused (401) with a message saying to send the
///   header. Only [`OwnerFromHeaderOrQuery`] reads the query.
/// - A token that does not verify ([`AuthConfig::verify`]) is refused (401).
///
/// ```
/// use std::sync::Arc;
/// use axum::extract::{FromRef, State};
/// use axum::routing::get;
/// use wa_pairing_http::{AuthConfig, HttpConfig, Owner};
/// use wa_pairing_store::MemoryStore;
///
/// #[derive(Clone)]
/// struct AppState {
///     auth: AuthConfig,
///     greeting: &'static str,
/// }
///
/// impl FromRef<AppState> for AuthConfig {
///     fn from_ref(state: &AppState) -> Self {
///         state.auth.clone()
///     }
/// }
///
/// async fn hello(State(state): State<AppState>, Owner(user): Owner) -> String {
///     format!("{}, {user}", state.greeting)
/// }
///
/// let auth = AuthConfig::new("https://abcd.supabase.co/auth/v1").hs256("the JWT secret");
/// let app: axum::Router = axum::Router::new()
///     .route("/hello", get(hello))
///     .with_state(AppState { auth: auth.clone(), greeting: "Halo" })
///     .merge(wa_pairing_http::router(&MemoryStore::new().stores().build(), HttpConfig::new(auth)));
/// # let _ = app;
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner(pub UserId);

impl<S> FromRequestParts<S> for Owner
where
    AuthConfig: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = AuthConfig::from_ref(state);
        let Some(token) = bearer(parts)? else {
            return Err(if query_token(parts).is_some() {
                ApiError::unauthorized(
                    "send the access token in the Authorization header (`Authorization: Bearer <access token>`): `?access_token=` is accepted only by the event stream and the QR image",
                )
            } else {
                no_token()
            });
        };
        Ok(Owner(auth.verify(token).await?.user))
    }
}

/// Like [`Owner`], but also reads `?access_token=<token>` when there is no `Authorization`
/// header, and keeps the token's expiry: for the routes a browser opens without headers
/// (`EventSource`, `<img>`), which are the event stream and the QR image.
///
/// Query strings end up in access logs and browser history, so use it only where a header
/// cannot be sent, and end anything long-lived when the token stops being accepted
/// ([`Verified::expires_at`] plus the [leeway](AuthConfig::leeway)): the event stream closes
/// then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnerFromHeaderOrQuery(pub Verified);

impl<S> FromRequestParts<S> for OwnerFromHeaderOrQuery
where
    AuthConfig: FromRef<S>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        let auth = AuthConfig::from_ref(state);
        let verified = match bearer(parts)? {
            Some(token) => auth.verify(token).await?,
            None => {
                let token = query_token(parts).ok_or_else(no_token)?;
                auth.verify(&token).await?
            }
        };
        Ok(Self(verified))
    }
}
