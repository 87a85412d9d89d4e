//! `wa-pairing-service token`: an owner's access token, signed with the configured JWT secret,
//! for local and development use only (a local stack, a test against a development
//! deployment). It is refused unless the HTTP API and the tokens' issuer are both on this
//! machine's loopback interface, or [`ALLOW_DEV_TOKENS`] says this deployment is a
//! development one.

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wa_pairing_store::UserId;

use crate::settings::{Settings, env};

/// `true` allows [`owner_token`] where the HTTP API or the issuer is not on loopback: a
/// development deployment's choice, never a production one (whoever holds the JWT secret
/// can act as any owner). Read by the `token` command only.
pub const ALLOW_DEV_TOKENS: &str = "WA_PAIRING_ALLOW_DEV_TOKENS";

/// How long a token lives unless `--ttl` says otherwise.
pub const DEFAULT_TOKEN_TTL: Duration = Duration::from_secs(3600);

/// The longest `--ttl` accepted.
pub const MAX_TOKEN_TTL: Duration = Duration::from_secs(24 * 3600);

/// What to mint: for whom, and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenOptions {
    /// The owner (`sub`).
    pub user: UserId,
    /// From now to `exp`.
    pub ttl: Duration,
}

impl TokenOptions {
    /// Reads `--user <uuid> [--ttl 1h]` (the arguments after `token`).
    ///
    /// # Errors
    ///
    /// A missing or malformed option, named, with what to give.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut user = None;
        let mut ttl = DEFAULT_TOKEN_TTL;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--user" => {
                    let value = args
                        .next()
                        .ok_or("--user needs the owner's user id (a UUID)")?;
                    user = Some(value.parse::<UserId>().map_err(|_| {
                        format!("--user {value}: not a user id (a UUID, as in auth.users)")
                    })?);
                }
                "--ttl" => {
                    let value = args.next().ok_or("--ttl needs a duration such as 1h")?;
                    ttl = parse_ttl(&value)?;
                }
                other => return Err(format!("token: unknown option {other}")),
            }
        }
        Ok(Self {
            user: user.ok_or("token needs --user <uuid>: the owner the token signs in")?,
            ttl,
        })
    }
}

/// `90s`, `30m`, `1h` or `2h` (seconds, minutes, hours), from 1 s to [`MAX_TOKEN_TTL`].
fn parse_ttl(value: &str) -> Result<Duration, String> {
    let bad = || {
        format!(
            "--ttl {value}: give a number and a unit, s, m or h (such as 90s, 30m, 1h), at most 24h"
        )
    };
    let split = value.find(|c: char| !c.is_ascii_digit()).ok_or_else(bad)?;
    let (number, unit) = value.split_at(split);
    let n: u64 = number.parse().map_err(|_| bad())?;
    let seconds = match unit {
        "s" => Some(n),
        "m" => n.checked_mul(60),
        "h" => n.checked_mul(3600),
        _ => None,
    }
    .ok_or_else(bad)?;
    let ttl = Duration::from_secs(seconds);
    if ttl.is_zero() || ttl > MAX_TOKEN_TTL {
        return Err(bad());
    }
    Ok(ttl)
}

/// Why no token was minted. `Display` is the message for the person who asked; it never
/// holds the secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenError(String);

impl fmt::Display for TokenError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for TokenError {}

/// An HS256 access token for `options.user`, as the service's HTTP API checks them: `iss`
/// and `aud` are the API's, `sub` the user, `role` `authenticated` (as Supabase signs), `iat`
/// now, `exp` now plus the TTL. `lookup` reads the environment: `SUPABASE_JWT_SECRET` (the
/// key) and [`ALLOW_DEV_TOKENS`].
///
/// # Errors
///
/// Without the HTTP API or its JWT secret; and, unless [`ALLOW_DEV_TOKENS`] is `true`, when
/// the API's address or the issuer's host is not loopback.
pub fn owner_token(
    settings: &Settings,
    lookup: impl Fn(&str) -> Option<String>,
    options: &TokenOptions,
    now: SystemTime,
) -> Result<String, TokenError> {
    let var = |name: &str| {
        lookup(name)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    let Some(http) = &settings.http else {
        return Err(TokenError(format!(
            "token signs owners' tokens for the service's HTTP API, which is not configured: set {} (127.0.0.1:3000 for a local stack), {} and {}",
            env::HTTP_ADDR,
            env::JWT_ISSUER,
            env::SUPABASE_JWT_SECRET
        )));
    };
    let Some(secret) = var(env::SUPABASE_JWT_SECRET) else {
        return Err(TokenError(format!(
            "token signs with the JWT secret (HS256), and {} is not set",
            env::SUPABASE_JWT_SECRET
        )));
    };
    let issuer = http.auth.expected_issuer();
    let local = http.addr.ip().is_loopback() && wa_pairing_whatsapp::is_loopback_url(issuer);
    let allowed = var(ALLOW_DEV_TOKENS)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes"));
    if !local && !allowed {
        return Err(TokenError(format!(
            "token is for local and development use only, and this configuration is not local: the HTTP API listens on {} ({}) and tokens are issued by {issuer} ({} or {}); both must be on this machine's loopback (127.0.0.1, ::1, localhost). For a development deployment, set {ALLOW_DEV_TOKENS}=true; never in production, where whoever can run this acts as any owner",
            http.addr,
            env::HTTP_ADDR,
            env::JWT_ISSUER,
            env::SUPABASE_URL,
        )));
    }
    let iat = now
        .duration_since(UNIX_EPOCH)
        .map_err(|_| TokenError("the clock is before 1970".to_owned()))?
        .as_secs();
    let claims = serde_json::json!({
        "iss": issuer,
        "aud": http.auth.expected_audience(),
        "sub": options.user.to_string(),
        "role": "authenticated",
        "iat": iat,
        "exp": iat + options.ttl.as_secs(),
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|_| TokenError("the token could not be signed".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| (*s).to_owned()).collect()
    }

    #[test]
    fn options_and_durations() {
        let user = "6f1c9a8e-2b1d-4c1e-9f00-0123456789ab";
        let o = TokenOptions::parse(args(&["--user", user])).unwrap();
        assert_eq!(o.user.to_string(), user);
        assert_eq!(o.ttl, DEFAULT_TOKEN_TTL);
        let o = TokenOptions::parse(args(&["--ttl", "15m", "--user", user])).unwrap();
        assert_eq!(o.ttl, Duration::from_secs(900));
        for (ttl, secs) in [("90s", 90), ("2h", 7200), ("24h", 86_400)] {
            assert_eq!(parse_ttl(ttl), Ok(Duration::from_secs(secs)), "{ttl}");
        }
        for bad in [
            "",
            "1",
            "h",
            "0s",
            "25h",
            "1d",
            "-1h",
            "1.5h",
            "99999999999999999999h",
        ] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert!(
            TokenOptions::parse(args(&[]))
                .unwrap_err()
                .contains("--user")
        );
        assert!(
            TokenOptions::parse(args(&["--user", "alice"]))
                .unwrap_err()
                .contains("not a user id")
        );
        assert!(
            TokenOptions::parse(args(&["--user", user, "--admin"]))
                .unwrap_err()
                .contains("unknown option --admin")
        );
    }
}
