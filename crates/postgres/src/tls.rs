//! TLS for PostgreSQL connections: libpq's `sslmode` and `sslrootcert`, with rustls.
//!
//! tokio-postgres itself knows `sslmode` `disable`, `prefer` and `require` only, and nothing
//! of root certificates, so the TLS parameters are taken out of the connection string here
//! before tokio-postgres parses it; the certificate checks of `verify-ca` and `verify-full`
//! live in the rustls configuration this module builds.
//!
//! | `sslmode` | encrypted | server's certificate checked |
//! |---|---|---|
//! | `disable` | never | - |
//! | `prefer` (default) | when the server offers TLS, else plaintext | no |
//! | `require` | always | no (chain checked, like `verify-ca`, when a root certificate is given, as in libpq) |
//! | `verify-ca` | always | signed by a trusted CA; any host name |
//! | `verify-full` | always | signed by a trusted CA and issued for the host connected to |

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::BoxFuture;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio_postgres::config::Host;
use tokio_postgres::error::SqlState;
use tokio_postgres::tls::{MakeTlsConnect, TlsConnect};
use tokio_postgres_rustls::MakeRustlsConnect;
use tracing::{info, warn};
use wa_pairing_store::{ErrorKind, StoreError, StoreResult};

/// The environment variable [`PostgresConfig::from_env`](crate::PostgresConfig::from_env)
/// reads for the TLS mode when `DATABASE_URL` has no `sslmode` (libpq's).
pub const SSLMODE_ENV: &str = "PGSSLMODE";

/// The environment variable [`PostgresConfig::from_env`](crate::PostgresConfig::from_env)
/// reads for the root certificate file when `DATABASE_URL` has no `sslrootcert` (libpq's).
pub const SSLROOTCERT_ENV: &str = "PGSSLROOTCERT";

/// How a PostgreSQL connection uses TLS: libpq's `sslmode`, with libpq's meaning.
///
/// Set it in the URL (`?sslmode=verify-full`), with
/// [`PostgresConfig::ssl_mode`](crate::PostgresConfig::ssl_mode), in a configuration file
/// (`"ssl_mode": "verify-full"`) or with `PGSSLMODE`; the URL wins.
///
/// ```
/// use wa_pairing_postgres::SslMode;
///
/// let mode: SslMode = "verify-full".parse()?;
/// assert_eq!(mode, SslMode::VerifyFull);
/// assert_eq!(mode.as_str(), "verify-full");
/// assert_eq!(SslMode::default(), SslMode::Prefer);
/// # Ok::<(), wa_pairing_store::StoreError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum SslMode {
    /// Never TLS: the password and every value cross the network in plaintext. Only for a
    /// server on this machine or a trusted private network.
    Disable,
    /// TLS when the server offers it, plaintext otherwise, without checking the server's
    /// certificate (libpq's default). Protects against eavesdropping on a network where no one
    /// can intercept; anyone who can intercept can strip TLS or impersonate the server. A
    /// connection to another machine that ends up in plaintext logs a warning once.
    #[default]
    Prefer,
    /// Always TLS, refusing a server that does not offer it, but without checking the
    /// server's certificate: encrypted, yet anyone who can intercept the connection can
    /// impersonate the server and read the password. With a root certificate given it
    /// checks the chain, like `verify-ca` (as libpq does).
    Require,
    /// Always TLS, and the server's certificate must be signed by a trusted certificate
    /// authority (the root certificate file, else Mozilla's roots); the host name is not
    /// checked.
    VerifyCa,
    /// Always TLS, the server's certificate signed by a trusted certificate authority and
    /// issued for the host name connected to. The recommended mode across any network.
    VerifyFull,
}

impl SslMode {
    /// libpq's name (`disable`, `prefer`, `require`, `verify-ca`, `verify-full`).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    const fn tokio(self) -> tokio_postgres::config::SslMode {
        match self {
            Self::Disable => tokio_postgres::config::SslMode::Disable,
            Self::Prefer => tokio_postgres::config::SslMode::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = StoreError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim() {
            "disable" => Ok(Self::Disable),
            "prefer" => Ok(Self::Prefer),
            "require" => Ok(Self::Require),
            "verify-ca" => Ok(Self::VerifyCa),
            "verify-full" => Ok(Self::VerifyFull),
            "allow" => Err(StoreError::new(
                ErrorKind::Configuration,
                "sslmode=allow is not supported: use prefer (TLS when offered) or disable",
            )),
            _ => Err(StoreError::new(
                ErrorKind::Configuration,
                "sslmode must be disable, prefer, require, verify-ca or verify-full (verify-full is the safe choice across a network)",
            )),
        }
    }
}

/// The TLS parameters taken out of a connection string.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct TlsParams {
    pub(crate) mode: Option<SslMode>,
    pub(crate) root_cert: Option<PathBuf>,
    /// libpq's `sslsni`: `false` to send no server name in the handshake.
    pub(crate) sni: Option<bool>,
}

/// The connection string without its TLS parameters (which tokio-postgres does not know or
/// reads differently), and those parameters. Works on URLs (`postgres://...?sslmode=...`)
/// and on libpq's `key=value` strings.
pub(crate) fn take_params(conn: &str) -> StoreResult<(String, TlsParams)> {
    let mut params = TlsParams::default();
    let lower = conn.trim_start().to_ascii_lowercase();
    let rest = if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
        take_from_url(conn, &mut params)?
    } else {
        take_from_key_values(conn, &mut params)?
    };
    Ok((rest, params))
}

fn take_from_url(url: &str, params: &mut TlsParams) -> StoreResult<String> {
    let Some((base, query)) = url.split_once('?') else {
        return Ok(url.to_owned());
    };
    let mut kept = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let (Some(key), Some(value)) = (percent_decode(key), percent_decode(value)) else {
            kept.push(pair);
            continue;
        };
        if !take_param(&key, &value, params)? {
            kept.push(pair);
        }
    }
    Ok(if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    })
}

/// Records one parameter when it is a TLS one (`true`), refusing those not supported.
fn take_param(key: &str, value: &str, params: &mut TlsParams) -> StoreResult<bool> {
    match key {
        "sslmode" => params.mode = Some(value.parse()?),
        "sslrootcert" => params.root_cert = Some(PathBuf::from(value)),
        "sslsni" => params.sni = Some(value.trim() != "0"),
        "sslcert" | "sslkey" | "sslpassword" | "sslcertmode" => {
            return Err(StoreError::new(
                ErrorKind::Configuration,
                format!(
                    "{key}: client certificates are not supported; authenticate with a password over sslmode=verify-full"
                ),
            ));
        }
        "sslcrl" | "sslcrldir" => {
            return Err(StoreError::new(
                ErrorKind::Configuration,
                format!("{key}: certificate revocation lists are not supported; remove it"),
            ));
        }
        _ => return Ok(false),
    }
    Ok(true)
}

fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = s.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

/// libpq's `key = value` form: values may be single-quoted, with `\` escapes. Pairs that are
/// not TLS parameters are kept as written; an unparsable string is returned whole, for
/// tokio-postgres to report.
fn take_from_key_values(conn: &str, params: &mut TlsParams) -> StoreResult<String> {
    let Some(pairs) = key_values(conn) else {
        return Ok(conn.to_owned());
    };
    let mut kept = Vec::new();
    for (raw, key, value) in pairs {
        if !take_param(&key, &value, params)? {
            kept.push(raw);
        }
    }
    Ok(kept.join(" "))
}

/// Each pair as written, its key and its unquoted value; `None` when the string does not
/// parse.
fn key_values(s: &str) -> Option<Vec<(&str, String, String)>> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_ws = |mut i: usize| {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_ws(i);
        if i >= b.len() {
            return Some(out);
        }
        let start = i;
        while i < b.len() && b[i] != b'=' && !b[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = s[start..i].to_owned();
        i = skip_ws(i);
        if key.is_empty() || b.get(i) != Some(&b'=') {
            return None;
        }
        i = skip_ws(i + 1);
        let mut value = Vec::new();
        if b.get(i) == Some(&b'\'') {
            i += 1;
            loop {
                match b.get(i)? {
                    b'\\' => {
                        value.push(*b.get(i + 1)?);
                        i += 2;
                    }
                    b'\'' => {
                        i += 1;
                        break;
                    }
                    c => {
                        value.push(*c);
                        i += 1;
                    }
                }
            }
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                if b[i] == b'\\' {
                    value.push(*b.get(i + 1)?);
                    i += 2;
                } else {
                    value.push(b[i]);
                    i += 1;
                }
            }
        }
        out.push((&s[start..i], key, String::from_utf8(value).ok()?));
    }
}

/// Where the certificate authorities a verifying mode trusts come from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Roots {
    /// Mozilla's list, compiled in (`webpki-roots`): works in any container.
    Mozilla,
    /// The platform's store (`sslrootcert=system`, as in libpq 16).
    System,
    /// A PEM file of one or more CA certificates (`sslrootcert=/path/ca.crt`).
    File(PathBuf),
}

impl Roots {
    fn of(path: Option<&Path>) -> Self {
        match path {
            None => Self::Mozilla,
            Some(p) if p == Path::new("system") => Self::System,
            Some(p) => Self::File(p.to_owned()),
        }
    }

    fn load(&self) -> StoreResult<RootCertStore> {
        match self {
            Self::Mozilla => Ok(RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            }),
            Self::System => {
                let found = rustls_native_certs::load_native_certs();
                let mut roots = RootCertStore::empty();
                roots.add_parsable_certificates(found.certs);
                if roots.is_empty() {
                    return Err(StoreError::new(
                        ErrorKind::Configuration,
                        "sslrootcert=system, but this system has no CA certificates (install the ca-certificates package, or set sslrootcert to a CA file)",
                    ));
                }
                Ok(roots)
            }
            Self::File(path) => {
                let shown = path.display();
                let unreadable = |why: String| {
                    StoreError::new(
                        ErrorKind::Configuration,
                        format!("sslrootcert {shown} cannot be used: {why}"),
                    )
                };
                let pem = std::fs::read(path).map_err(|e| unreadable(e.to_string()))?;
                let certs = CertificateDer::pem_slice_iter(&pem)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| unreadable(format!("it is not PEM ({e})")))?;
                if certs.is_empty() {
                    return Err(unreadable(
                        "it holds no certificate (-----BEGIN CERTIFICATE-----)".to_owned(),
                    ));
                }
                let mut roots = RootCertStore::empty();
                for cert in certs {
                    roots.add(cert).map_err(|e| {
                        unreadable(format!("a certificate in it is not a usable CA ({e})"))
                    })?;
                }
                Ok(roots)
            }
        }
    }
}

/// The crypto provider: the process default when the application installed one, else
/// `ring`'s (without installing it process-wide).
fn provider() -> Arc<CryptoProvider> {
    CryptoProvider::get_default()
        .cloned()
        .unwrap_or_else(|| Arc::new(rustls::crypto::ring::default_provider()))
}

fn client_config(
    mode: SslMode,
    roots: Option<RootCertStore>,
    sni: bool,
) -> StoreResult<rustls::ClientConfig> {
    let provider = provider();
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| {
            StoreError::new(
                ErrorKind::Configuration,
                format!("the TLS library cannot be set up: {e}"),
            )
        })?;
    let mut config = match (mode, roots) {
        (SslMode::VerifyFull, Some(roots)) => {
            builder.with_root_certificates(roots).with_no_client_auth()
        }
        (SslMode::VerifyCa, Some(roots)) => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoNameCheck {
                roots: Some(Arc::new(roots)),
                provider,
            }))
            .with_no_client_auth(),
        _ => builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(NoNameCheck {
                roots: None,
                provider,
            }))
            .with_no_client_auth(),
    };
    config.enable_sni = sni;
    Ok(config)
}

/// The verifiers that never check the certificate's names: `verify-ca` (with `roots`: the
/// certificate must chain to a trusted root) and `prefer`/`require` (without: libpq's
/// meaning, the certificate is not checked). The handshake's signatures are always checked.
#[derive(Debug)]
struct NoNameCheck {
    roots: Option<Arc<RootCertStore>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for NoNameCheck {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(roots) = &self.roots {
            let cert = rustls::server::ParsedCertificate::try_from(end_entity)?;
            rustls::client::verify_server_cert_signed_by_trust_anchor(
                &cert,
                roots,
                intermediates,
                now,
                self.provider.signature_verification_algorithms.all,
            )?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// The TLS side of every connection a store opens (pool and change feed): the connector,
/// and the one-time warnings about connections that are not encrypted or not verified.
#[derive(Clone)]
pub(crate) struct PgTls {
    connector: MakeRustlsConnect,
    shared: Arc<Shared>,
}

struct Shared {
    mode: SslMode,
    /// The host(s) connected to, for messages (no credentials).
    hosts: String,
    /// Every host is this machine (loopback or a Unix socket): no warnings.
    local: bool,
    warned_plaintext: AtomicBool,
    noted_unverified: AtomicBool,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls")
            .field("mode", &self.shared.mode)
            .field("hosts", &self.shared.hosts)
            .finish_non_exhaustive()
    }
}

/// The connection every store connection is: a socket, maybe wrapped in rustls.
pub(crate) type PgConnection = tokio_postgres::Connection<
    tokio_postgres::Socket,
    <MakeRustlsConnect as MakeTlsConnect<tokio_postgres::Socket>>::Stream,
>;

impl PgTls {
    /// The TLS of `pg` (already parsed, TLS parameters taken out): the URL's parameters win
    /// over the configuration's (`mode`, `root_cert`). Sets tokio-postgres' own `sslmode`.
    pub(crate) fn new(
        pg: &mut tokio_postgres::Config,
        url: &TlsParams,
        mode: Option<SslMode>,
        root_cert: Option<&Path>,
    ) -> StoreResult<Self> {
        let root_cert = url.root_cert.as_deref().or(root_cert);
        let mut mode = url.mode.or(mode).unwrap_or_default();
        if mode == SslMode::Require && root_cert.is_some() {
            // libpq: "if a root CA file exists, sslmode=require behaves like verify-ca".
            mode = SslMode::VerifyCa;
        }
        let roots = match mode {
            SslMode::VerifyCa | SslMode::VerifyFull => Some(Roots::of(root_cert).load()?),
            _ => None,
        };
        pg.ssl_mode(mode.tokio());
        let config = client_config(mode, roots, url.sni.unwrap_or(true))?;
        let (hosts, local) = describe_hosts(pg);
        Ok(Self {
            connector: MakeRustlsConnect::new(config),
            shared: Arc::new(Shared {
                mode,
                hosts,
                local,
                warned_plaintext: AtomicBool::new(false),
                noted_unverified: AtomicBool::new(false),
            }),
        })
    }

    /// The mode in force (`require` with a root certificate is `verify-ca`).
    pub(crate) fn mode(&self) -> SslMode {
        self.shared.mode
    }

    /// Opens one connection, noting once when one to another machine is unencrypted (a
    /// warning) or encrypted without verifying the server (an info line).
    pub(crate) async fn connect(
        &self,
        pg: &tokio_postgres::Config,
    ) -> Result<(tokio_postgres::Client, PgConnection), tokio_postgres::Error> {
        let encrypted = Arc::new(AtomicBool::new(false));
        let tls = Tracked {
            inner: self.connector.clone(),
            encrypted: Arc::clone(&encrypted),
        };
        let connected = pg.connect(tls).await?;
        self.note(encrypted.load(Ordering::SeqCst));
        Ok(connected)
    }

    fn note(&self, encrypted: bool) {
        let s = &self.shared;
        match notice(s.local, s.mode, encrypted) {
            Some(Notice::Plaintext(why)) if !s.warned_plaintext.swap(true, Ordering::SeqCst) => {
                warn!(
                    host = %s.hosts,
                    sslmode = %s.mode,
                    "the PostgreSQL connection is NOT encrypted ({why}): the password and every stored value cross the network in plaintext; set sslmode=verify-full (with sslrootcert) or at least sslmode=require in DATABASE_URL"
                );
            }
            Some(Notice::Unverified) if !s.noted_unverified.swap(true, Ordering::SeqCst) => {
                info!(
                    host = %s.hosts,
                    sslmode = %s.mode,
                    "connected to PostgreSQL over TLS without verifying the server's certificate; set sslmode=verify-full (with sslrootcert) to authenticate the server"
                );
            }
            _ => {}
        }
    }
}

/// What a connection to another machine is worth saying once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Notice {
    /// Not encrypted, and why (a warning).
    Plaintext(&'static str),
    /// Encrypted, the server not authenticated (an info line).
    Unverified,
}

fn notice(local: bool, mode: SslMode, encrypted: bool) -> Option<Notice> {
    if local {
        return None;
    }
    match (encrypted, mode) {
        (false, SslMode::Disable) => Some(Notice::Plaintext("sslmode=disable")),
        (false, _) => Some(Notice::Plaintext(
            "the server does not offer TLS and sslmode=prefer falls back to plaintext",
        )),
        (true, SslMode::Prefer | SslMode::Require) => Some(Notice::Unverified),
        (true, _) => None,
    }
}

fn describe_hosts(pg: &tokio_postgres::Config) -> (String, bool) {
    let mut names = Vec::new();
    let mut local = true;
    for host in pg.get_hosts() {
        match host {
            Host::Tcp(name) => {
                local &= name.eq_ignore_ascii_case("localhost")
                    || name
                        .trim_matches(|c| c == '[' || c == ']')
                        .parse::<IpAddr>()
                        .is_ok_and(|ip| ip.is_loopback());
                names.push(name.clone());
            }
            #[cfg(unix)]
            Host::Unix(path) => names.push(path.display().to_string()),
        }
    }
    for addr in pg.get_hostaddrs() {
        local &= addr.is_loopback();
    }
    if names.is_empty() {
        names.push("localhost".to_owned());
    }
    (names.join(","), local)
}

/// Wraps the rustls connector of one connection attempt to record whether the server took
/// up TLS (tokio-postgres hands the socket to the TLS connector only when it did).
#[derive(Clone)]
struct Tracked {
    inner: MakeRustlsConnect,
    encrypted: Arc<AtomicBool>,
}

struct TrackedConnect<T> {
    inner: T,
    encrypted: Arc<AtomicBool>,
}

impl<S> MakeTlsConnect<S> for Tracked
where
    MakeRustlsConnect: MakeTlsConnect<S>,
{
    type Stream = <MakeRustlsConnect as MakeTlsConnect<S>>::Stream;
    type TlsConnect = TrackedConnect<<MakeRustlsConnect as MakeTlsConnect<S>>::TlsConnect>;
    type Error = <MakeRustlsConnect as MakeTlsConnect<S>>::Error;

    fn make_tls_connect(&mut self, domain: &str) -> Result<Self::TlsConnect, Self::Error> {
        Ok(TrackedConnect {
            inner: self.inner.make_tls_connect(domain)?,
            encrypted: Arc::clone(&self.encrypted),
        })
    }
}

impl<S, T: TlsConnect<S>> TlsConnect<S> for TrackedConnect<T> {
    type Stream = T::Stream;
    type Error = T::Error;
    type Future = T::Future;

    fn connect(self, stream: S) -> Self::Future {
        self.encrypted.store(true, Ordering::SeqCst);
        self.inner.connect(stream)
    }
}

/// How the pool opens connections: through [`PgTls`], so pooled connections get the same
/// TLS and warnings as the change feed's.
pub(crate) struct PoolConnect(pub(crate) PgTls);

impl deadpool_postgres::Connect for PoolConnect {
    fn connect(
        &self,
        pg_config: &tokio_postgres::Config,
    ) -> BoxFuture<
        '_,
        Result<(tokio_postgres::Client, tokio::task::JoinHandle<()>), tokio_postgres::Error>,
    > {
        let pg = pg_config.clone();
        Box::pin(async move {
            let (client, connection) = self.0.connect(&pg).await?;
            let task = tokio::spawn(async move {
                if let Err(e) = connection.await {
                    tracing::debug!(error = %crate::classify::from_pg(&e), "a pooled PostgreSQL connection ended");
                }
            });
            Ok((client, task))
        })
    }
}

/// A TLS failure of a connection, in words that say what to change; `None` for anything
/// else. Every one is a `Configuration` error: retrying does not help.
pub(crate) fn explain(e: &tokio_postgres::Error) -> Option<StoreError> {
    if let Some(tls) = rustls_error(e) {
        return Some(describe(tls));
    }
    if let Some(db) = e.as_db_error() {
        let m = db.message();
        if db.code() == &SqlState::INVALID_AUTHORIZATION_SPECIFICATION
            && (m.contains("no encryption") || m.contains("SSL off"))
        {
            return Some(StoreError::new(
                ErrorKind::Configuration,
                "the PostgreSQL server requires TLS (its pg_hba.conf accepts only encrypted connections): remove sslmode=disable from DATABASE_URL and use sslmode=verify-full (or require)",
            ));
        }
        return None;
    }
    let is_tls = e.to_string() == "error performing TLS handshake";
    let text = std::error::Error::source(e)
        .map(ToString::to_string)
        .unwrap_or_default();
    if is_tls && text.contains("server does not support TLS") {
        return Some(StoreError::new(
            ErrorKind::Configuration,
            "the PostgreSQL server does not offer TLS, but the sslmode in DATABASE_URL demands it (require, verify-ca or verify-full): turn ssl on at the server, or connect through its TLS endpoint",
        ));
    }
    if is_tls && text.contains("no hostname provided for TLS handshake") {
        return Some(StoreError::new(
            ErrorKind::Configuration,
            "TLS needs a host name, but DATABASE_URL connects through a Unix socket: use sslmode=disable for a socket, or connect to the host name",
        ));
    }
    None
}

/// The rustls error somewhere in the chain (tokio-postgres wraps the handshake's
/// `io::Error`, which holds it).
fn rustls_error(e: &tokio_postgres::Error) -> Option<&rustls::Error> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = current {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && let Some(inner) = io.get_ref()
            && let Some(tls) = inner.downcast_ref::<rustls::Error>()
        {
            return Some(tls);
        }
        current = err.source();
    }
    None
}

fn describe(e: &rustls::Error) -> StoreError {
    use rustls::CertificateError as C;
    let message = match e {
        rustls::Error::InvalidCertificate(C::UnknownIssuer) => {
            "PostgreSQL's TLS certificate is not signed by a trusted certificate authority: set sslrootcert in DATABASE_URL to the file of the CA that signed it (for Supabase, the CA certificate from the project's Database settings), or, to encrypt without verifying the server, use sslmode=require without sslrootcert".to_owned()
        }
        rustls::Error::InvalidCertificate(C::NotValidForNameContext {
            expected,
            presented,
        }) => {
            let names: Vec<String> = presented.iter().filter_map(|n| presented_name(n)).collect();
            let names = if names.is_empty() {
                "other names".to_owned()
            } else {
                names.join(", ")
            };
            format!(
                "PostgreSQL's TLS certificate is for {names}, not for {}: connect to a name the certificate is for (the host in DATABASE_URL), or use sslmode=verify-ca to check only that a trusted CA signed it",
                expected.to_str()
            )
        }
        rustls::Error::InvalidCertificate(C::NotValidForName) => {
            "PostgreSQL's TLS certificate is not for the host in DATABASE_URL: connect to a name the certificate is for, or use sslmode=verify-ca to check only that a trusted CA signed it".to_owned()
        }
        rustls::Error::InvalidCertificate(C::Expired | C::ExpiredContext { .. }) => {
            "PostgreSQL's TLS certificate has expired: renew it on the server".to_owned()
        }
        rustls::Error::InvalidCertificate(C::NotValidYet | C::NotValidYetContext { .. }) => {
            "PostgreSQL's TLS certificate is not valid yet: check this machine's clock and the server's certificate".to_owned()
        }
        rustls::Error::InvalidCertificate(other) => format!(
            "PostgreSQL's TLS certificate was refused ({other:?}): check the server's certificate and sslrootcert"
        ),
        other => format!(
            "the TLS handshake with PostgreSQL failed ({other}): check sslmode in DATABASE_URL and the server's TLS settings"
        ),
    };
    StoreError::new(ErrorKind::Configuration, message)
}

/// `DnsName("db.example.com")` (webpki's rendering) as `db.example.com`; `IpAddress(...)` as
/// the address; other kinds of names are left out.
fn presented_name(n: &str) -> Option<String> {
    if let Some(dns) = n
        .strip_prefix("DnsName(\"")
        .and_then(|r| r.strip_suffix("\")"))
    {
        return Some(dns.to_owned());
    }
    if let Some(ip) = n
        .strip_prefix("IpAddress(")
        .and_then(|r| r.strip_suffix(')'))
    {
        return Some(ip.to_owned());
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn take(s: &str) -> (String, TlsParams) {
        take_params(s).unwrap()
    }

    #[test]
    fn tls_parameters_leave_the_url_and_the_rest_stays() {
        let (url, p) = take(
            "postgres://u:p%3Fw@db.example.com:5432/app?application_name=x&sslmode=verify-full&sslrootcert=%2Fetc%2Fca.crt&connect_timeout=3",
        );
        assert_eq!(
            url,
            "postgres://u:p%3Fw@db.example.com:5432/app?application_name=x&connect_timeout=3"
        );
        assert_eq!(p.mode, Some(SslMode::VerifyFull));
        assert_eq!(p.root_cert.as_deref(), Some(Path::new("/etc/ca.crt")));

        let (url, p) = take("postgresql://h/db?sslmode=require");
        assert_eq!(url, "postgresql://h/db");
        assert_eq!(p.mode, Some(SslMode::Require));

        let (url, p) = take("postgres://h/db");
        assert_eq!(url, "postgres://h/db");
        assert_eq!(p, TlsParams::default());

        let (_, p) = take("postgres://h/db?sslsni=0");
        assert_eq!(p.sni, Some(false));
    }

    #[test]
    fn key_value_strings_too() {
        let (rest, p) = take(
            "host=db.example.com  user=app password='it\\'s secret' sslmode = verify-ca sslrootcert='/a b/ca.pem' dbname=app",
        );
        // the quoted password with an escaped quote stays as written
        assert!(
            rest.starts_with("host=db.example.com user=app password='"),
            "{rest}"
        );
        assert!(rest.ends_with(" dbname=app"), "{rest}");
        assert!(!rest.contains("ssl"), "{rest}");
        assert_eq!(p.mode, Some(SslMode::VerifyCa));
        assert_eq!(p.root_cert.as_deref(), Some(Path::new("/a b/ca.pem")));
    }

    #[test]
    fn modes_parse_like_libpq_and_unknown_ones_say_what_to_write() {
        for mode in [
            SslMode::Disable,
            SslMode::Prefer,
            SslMode::Require,
            SslMode::VerifyCa,
            SslMode::VerifyFull,
        ] {
            assert_eq!(mode.as_str().parse::<SslMode>().unwrap(), mode);
            let json = format!("\"{mode}\"");
            assert_eq!(serde_json::from_str::<SslMode>(&json).unwrap(), mode);
        }
        let e = take_params("postgres://u:secret@h/db?sslmode=verify").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.message().contains("verify-full"), "{e}");
        assert!(!e.to_string().contains("secret"));
        let e = "allow".parse::<SslMode>().unwrap_err();
        assert!(e.message().contains("not supported"), "{e}");
    }

    #[test]
    fn client_certificates_are_refused_by_name() {
        let e = take_params("postgres://h/db?sslcert=/c.pem&sslkey=/k.pem").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.message().starts_with("sslcert"), "{e}");
    }

    fn tls(url: &str, mode: Option<SslMode>, root: Option<&Path>) -> StoreResult<PgTls> {
        let (rest, params) = take_params(url)?;
        let mut pg: tokio_postgres::Config = rest.parse().unwrap();
        PgTls::new(&mut pg, &params, mode, root)
    }

    #[test]
    fn the_url_wins_and_require_with_a_root_checks_the_chain() {
        let ca = std::env::temp_dir().join(format!("wa-pg-tls-unit-{}.pem", std::process::id()));
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        std::fs::write(&ca, params.self_signed(&key).unwrap().pem()).unwrap();

        assert_eq!(
            tls("postgres://h/db", None, None).unwrap().mode(),
            SslMode::Prefer
        );
        assert_eq!(
            tls(
                "postgres://h/db?sslmode=disable",
                Some(SslMode::VerifyFull),
                None
            )
            .unwrap()
            .mode(),
            SslMode::Disable
        );
        assert_eq!(
            tls("postgres://h/db", Some(SslMode::Require), None)
                .unwrap()
                .mode(),
            SslMode::Require
        );
        assert_eq!(
            tls("postgres://h/db", Some(SslMode::Require), Some(&ca))
                .unwrap()
                .mode(),
            SslMode::VerifyCa
        );
        let url = format!(
            "postgres://h/db?sslmode=require&sslrootcert={}",
            ca.display()
        );
        assert_eq!(tls(&url, None, None).unwrap().mode(), SslMode::VerifyCa);
        assert_eq!(
            tls("postgres://h/db?sslmode=verify-full", None, None)
                .unwrap()
                .mode(),
            SslMode::VerifyFull,
            "Mozilla's roots by default"
        );
        let _ = std::fs::remove_file(&ca);
    }

    #[test]
    fn an_unreadable_root_certificate_says_which_file() {
        let e = tls(
            "postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent/ca.crt",
            None,
            None,
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Configuration);
        assert!(e.message().contains("/nonexistent/ca.crt"), "{e}");

        let not_pem = std::env::temp_dir().join(format!("wa-pg-tls-notpem-{}", std::process::id()));
        std::fs::write(&not_pem, "hello").unwrap();
        let e = tls("postgres://h/db", Some(SslMode::VerifyCa), Some(&not_pem)).unwrap_err();
        assert!(e.message().contains("no certificate"), "{e}");
        let _ = std::fs::remove_file(&not_pem);
    }

    #[test]
    fn local_hosts_are_told_apart() {
        let pg = |s: &str| s.parse::<tokio_postgres::Config>().unwrap();
        assert!(describe_hosts(&pg("postgres://localhost/db")).1);
        assert!(describe_hosts(&pg("postgres://127.0.0.1/db")).1);
        assert!(describe_hosts(&pg("postgres://[::1]/db")).1);
        assert!(describe_hosts(&pg("host=/var/run/postgresql dbname=db")).1);
        let (hosts, local) = describe_hosts(&pg("postgres://db.example.com/db"));
        assert!(!local);
        assert_eq!(hosts, "db.example.com");
    }

    #[test]
    fn plaintext_to_another_machine_is_worth_a_warning_and_loopback_nothing() {
        assert_eq!(notice(true, SslMode::Disable, false), None);
        assert_eq!(notice(true, SslMode::Prefer, false), None);
        assert!(matches!(
            notice(false, SslMode::Prefer, false),
            Some(Notice::Plaintext(why)) if why.contains("prefer")
        ));
        assert!(matches!(
            notice(false, SslMode::Disable, false),
            Some(Notice::Plaintext(why)) if why.contains("disable")
        ));
        assert_eq!(
            notice(false, SslMode::Prefer, true),
            Some(Notice::Unverified)
        );
        assert_eq!(
            notice(false, SslMode::Require, true),
            Some(Notice::Unverified)
        );
        assert_eq!(notice(false, SslMode::VerifyCa, true), None);
        assert_eq!(notice(false, SslMode::VerifyFull, true), None);
    }

    #[test]
    fn presented_names_read_plainly() {
        assert_eq!(
            presented_name("DnsName(\"localhost\")").as_deref(),
            Some("localhost")
        );
        assert_eq!(
            presented_name("IpAddress(127.0.0.1)").as_deref(),
            Some("127.0.0.1")
        );
        assert_eq!(presented_name("DirectoryName"), None);
    }
}
