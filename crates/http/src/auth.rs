//! Supabase access tokens: HS256 with the project's JWT secret, or asymmetric keys (ES256,
//! RS256, EdDSA) from the project's JWKS document.

use std::fmt;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use wa_pairing_store::UserId;

use crate::error::ApiError;
use crate::router::ApiState;

/// How access tokens are checked.
///
/// The user id is the token's subject (`sub`); expiry (`exp`) is required, the audience
/// must match (Supabase: `authenticated`), and the issuer too when one is set
/// (`https://<project-ref>.supabase.co/auth/v1`).
///
/// `Debug` shows no key material.
///
/// ```
/// use wa_pairing_http::AuthConfig;
///
/// let auth = AuthConfig::hs256("the project's JWT secret")
///     .issuer("https://abcd.supabase.co/auth/v1");
/// assert!(!format!("{auth:?}").contains("JWT secret"));
/// ```
#[derive(Clone)]
pub struct AuthConfig {
    secret: Option<DecodingKey>,
    keys: Vec<(Option<String>, Algorithm, DecodingKey)>,
    audience: String,
    issuer: Option<String>,
    leeway: u64,
}

impl fmt::Debug for AuthConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthConfig")
            .field("hs256", &self.secret.is_some())
            .field(
                "jwks",
                &self
                    .keys
                    .iter()
                    .map(|(kid, alg, _)| (kid, alg))
                    .collect::<Vec<_>>(),
            )
            .field("audience", &self.audience)
            .field("issuer", &self.issuer)
            .field("leeway", &self.leeway)
            .finish_non_exhaustive()
    }
}

/// A JWKS document that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthConfigError(String);

#[derive(Deserialize)]
struct Claims {
    sub: Option<String>,
}

impl AuthConfig {
    /// Tokens signed with HS256 and the project's JWT secret (Supabase's legacy secret).
    pub fn hs256(secret: impl AsRef<[u8]>) -> Self {
        Self {
            secret: Some(DecodingKey::from_secret(secret.as_ref())),
            keys: Vec::new(),
            audience: "authenticated".to_owned(),
            issuer: None,
            leeway: 30,
        }
    }

    /// Tokens signed with the asymmetric keys of a JWKS document (Supabase serves it at
    /// `https://<project-ref>.supabase.co/auth/v1/.well-known/jwks.json`).
    ///
    /// # Errors
    ///
    /// When the document is not a JWKS, or none of its keys can verify signatures.
    pub fn jwks(document: &str) -> Result<Self, AuthConfigError> {
        Self {
            secret: None,
            keys: Vec::new(),
            audience: "authenticated".to_owned(),
            issuer: None,
            leeway: 30,
        }
        .with_jwks(document)
    }

    /// Also accepts tokens signed with the keys of a JWKS document (during a move from the
    /// shared secret to asymmetric keys, both are accepted).
    ///
    /// # Errors
    ///
    /// When the document is not a JWKS, or none of its keys can verify signatures.
    pub fn with_jwks(mut self, document: &str) -> Result<Self, AuthConfigError> {
        let set: JwkSet = serde_json::from_str(document).map_err(|_| {
            AuthConfigError("the JWKS document is not valid JSON Web Key Set JSON: use the project's /auth/v1/.well-known/jwks.json".into())
        })?;
        for jwk in &set.keys {
            let Some(alg) = jwk
                .common
                .key_algorithm
                .and_then(|a| a.to_string().parse::<Algorithm>().ok())
            else {
                continue;
            };
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                self.keys.push((jwk.common.key_id.clone(), alg, key));
            }
        }
        if self.keys.is_empty() {
            return Err(AuthConfigError(
                "the JWKS document has no usable signing key (each needs `alg` and its public parameters)".into(),
            ));
        }
        Ok(self)
    }

    /// The required audience (default `authenticated`).
    #[must_use]
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = audience.into();
        self
    }

    /// The required issuer (default: not checked).
    #[must_use]
    pub fn issuer(mut self, issuer: impl Into<String>) -> Self {
        self.issuer = Some(issuer.into());
        self
    }

    /// Clock skew tolerated on expiry, in seconds (default 30).
    #[must_use]
    pub const fn leeway(mut self, seconds: u64) -> Self {
        self.leeway = seconds;
        self
    }

    /// Checks a token and returns its user.
    ///
    /// # Errors
    ///
    /// [`ApiError`] 401 with a reason (malformed, expired, bad signature, wrong audience or
    /// issuer, no subject); the token itself is never echoed.
    pub fn verify(&self, token: &str) -> Result<UserId, ApiError> {
        let header = jsonwebtoken::decode_header(token)
            .map_err(|_| ApiError::unauthorized("the access token is malformed"))?;
        let key = match header.alg {
            Algorithm::HS256 => self.secret.as_ref(),
            alg => self
                .keys
                .iter()
                .find(|(kid, a, _)| {
                    *a == alg && (header.kid.is_none() || kid.as_deref() == header.kid.as_deref())
                })
                .map(|(_, _, k)| k),
        }
        .ok_or_else(|| {
            ApiError::unauthorized(
                "the access token is signed with a key this server does not know",
            )
        })?;
        let mut validation = Validation::new(header.alg);
        validation.set_audience(&[&self.audience]);
        if let Some(iss) = &self.issuer {
            validation.set_issuer(&[iss]);
        }
        validation.leeway = self.leeway;
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        let data = jsonwebtoken::decode::<Claims>(token, key, &validation).map_err(|e| {
            use jsonwebtoken::errors::ErrorKind as K;
            ApiError::unauthorized(match e.kind() {
                K::ExpiredSignature => "the access token has expired: sign in again",
                K::InvalidSignature => "the access token's signature is not valid",
                K::InvalidAudience => "the access token is for another audience",
                K::InvalidIssuer => "the access token is from another issuer",
                K::MissingRequiredClaim(_) => {
                    "the access token lacks a required claim (exp, sub, aud)"
                }
                _ => "the access token is not valid",
            })
        })?;
        data.claims
            .sub
            .ok_or_else(|| ApiError::unauthorized("the access token lacks a required claim (sub)"))?
            .parse::<UserId>()
            .map_err(|_| ApiError::unauthorized("the access token's subject is not a user id"))
    }
}

/// The authenticated owner of the request: the token's subject.
///
/// Reads `Authorization: Bearer <token>`; for the event stream (browsers' `EventSource`
/// cannot send headers) also `?access_token=<token>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner(pub UserId);

impl FromRequestParts<ApiState> for Owner {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &ApiState) -> Result<Self, ApiError> {
        let from_header = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
                    .ok_or_else(|| {
                        ApiError::unauthorized(
                            "the Authorization header must be `Bearer <access token>`",
                        )
                    })
            })
            .transpose()?;
        let from_query = || {
            parts.uri.query().and_then(|q| {
                q.split('&')
                    .find_map(|kv| kv.strip_prefix("access_token="))
                    .map(str::to_owned)
            })
        };
        let token = match from_header {
            Some(t) => t.trim().to_owned(),
            None => from_query().ok_or_else(|| {
                ApiError::unauthorized(
                    "no access token: send `Authorization: Bearer <Supabase access token>`",
                )
            })?,
        };
        state.auth.verify(&token).map(Owner)
    }
}
