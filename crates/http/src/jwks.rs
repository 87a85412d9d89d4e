//! Fetching a JWKS document: one HTTP/1.1 `GET` over TLS (rustls with the webpki roots), or
//! over plain HTTP to a loopback address only (a local Supabase, tests). Redirects are never
//! followed: anything but `200` is a failed fetch.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty, Limited};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::auth::AuthConfigError;

/// The largest JWKS document accepted (Supabase's has a few keys, well under 10 KiB).
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// How long one fetch may take, connection and TLS included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A checked JWKS address: `https://`, or `http://` to a loopback host.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct JwksUrl {
    uri: Uri,
    host: String,
    port: u16,
    tls: bool,
}

/// Shown without its query, which is never needed and could carry a key.
impl fmt::Display for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.origin(), self.uri.path())
    }
}

impl fmt::Debug for JwksUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

// Whether `host` (as in a URI: IPv6 in brackets) names this machine: the one rule of the
// workspace.
use wa_pairing_store::net::is_loopback_host as is_loopback;

impl JwksUrl {
    /// Checks `raw`: an absolute `https://` URL (or `http://` to localhost), with a host and
    /// without user info.
    pub(crate) fn parse(raw: &str, what: &str) -> Result<Self, AuthConfigError> {
        let bad = |why: &str| {
            AuthConfigError::new(format!(
                "the {what} must be an https:// URL like https://<project-ref>.supabase.co: {why}"
            ))
        };
        let uri: Uri = raw.trim().parse().map_err(|_| bad("it is not a URL"))?;
        let tls = match uri.scheme_str() {
            Some("https") => true,
            Some("http") => false,
            _ => return Err(bad("the scheme must be https")),
        };
        let authority = uri.authority().ok_or_else(|| bad("it has no host"))?;
        if authority.as_str().contains('@') {
            return Err(bad("it must not carry a user name or password"));
        }
        let host = authority.host().to_owned();
        if host.is_empty() {
            return Err(bad("it has no host"));
        }
        if !tls && !is_loopback(&host) {
            return Err(bad(
                "plain http is accepted only for localhost (a local Supabase)",
            ));
        }
        let port = authority.port_u16().unwrap_or(if tls { 443 } else { 80 });
        Ok(Self {
            uri,
            host,
            port,
            tls,
        })
    }

    /// The URL's path (no query), for deriving other addresses.
    pub(crate) fn path(&self) -> &str {
        self.uri.path()
    }

    /// The URL without a trailing `/`.
    pub(crate) fn origin(&self) -> String {
        let scheme = if self.tls { "https" } else { "http" };
        let authority = self.uri.authority().map_or("", |a| a.as_str());
        format!("{scheme}://{authority}")
    }
}

/// Why a fetch failed, in words for the log (no document content).
#[derive(Debug)]
pub(crate) struct FetchError(String);

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn tls_config() -> Result<Arc<rustls::ClientConfig>, FetchError> {
    static CONFIG: OnceLock<Result<Arc<rustls::ClientConfig>, String>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS setup failed: {e}"))?
            .with_root_certificates(roots)
            .with_no_client_auth();
            config.alpn_protocols = vec![b"http/1.1".to_vec()];
            Ok(Arc::new(config))
        })
        .clone()
        .map_err(FetchError)
}

/// Fetches the document at `url` within [`FETCH_TIMEOUT`].
pub(crate) async fn fetch(url: &JwksUrl) -> Result<String, FetchError> {
    tokio::time::timeout(FETCH_TIMEOUT, fetch_inner(url))
        .await
        .map_err(|_| FetchError(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())))?
}

async fn fetch_inner(url: &JwksUrl) -> Result<String, FetchError> {
    let tcp = TcpStream::connect((
        url.host.trim_start_matches('[').trim_end_matches(']'),
        url.port,
    ))
    .await
    .map_err(|e| FetchError(format!("cannot connect: {e}")))?;
    if url.tls {
        let name = rustls::pki_types::ServerName::try_from(url.host.clone())
            .map_err(|_| FetchError("the host is not a valid TLS server name".into()))?;
        let stream = tokio_rustls::TlsConnector::from(tls_config()?)
            .connect(name, tcp)
            .await
            .map_err(|e| FetchError(format!("TLS handshake failed: {e}")))?;
        get(TokioIo::new(stream), url).await
    } else {
        get(TokioIo::new(tcp), url).await
    }
}

/// Aborts the connection task when the fetch ends (or is dropped at its deadline).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

async fn get<I>(io: I, url: &JwksUrl) -> Result<String, FetchError>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake::<_, Empty<Bytes>>(io)
        .await
        .map_err(|e| FetchError(format!("HTTP handshake failed: {e}")))?;
    let _connection = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let host = url.uri.authority().map_or("", |a| a.as_str());
    let request = Request::get(url.uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(header::HOST, host)
        .header(header::ACCEPT, "application/json")
        .header(header::USER_AGENT, "wa-pairing-http")
        .body(Empty::<Bytes>::new())
        .map_err(|e| FetchError(format!("cannot build the request: {e}")))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| FetchError(format!("the request failed: {e}")))?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(FetchError(if status.is_redirection() {
            format!("answered HTTP {status}; redirects are not followed: configure the final URL")
        } else {
            format!("answered HTTP {status}")
        }));
    }
    let body = Limited::new(response.into_body(), MAX_DOCUMENT_BYTES)
        .collect()
        .await
        .map_err(|e| FetchError(format!("cannot read the document: {e}")))?
        .to_bytes();
    String::from_utf8(body.to_vec())
        .map_err(|_| FetchError("the document is not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http_urls_are_accepted() {
        for ok in [
            "https://abcd.supabase.co/auth/v1/.well-known/jwks.json",
            "http://127.0.0.1:54321/auth/v1/.well-known/jwks.json",
            "http://localhost:54321/x",
            "http://[::1]:8080/x",
        ] {
            assert!(JwksUrl::parse(ok, "JWKS URL").is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("http://abcd.supabase.co/jwks.json", "localhost"),
            ("ftp://abcd.supabase.co/jwks.json", "scheme"),
            ("https://user:pw@abcd.supabase.co/jwks.json", "password"),
            ("/auth/v1/.well-known/jwks.json", "scheme"),
            ("not a url", "not a URL"),
        ] {
            let e = JwksUrl::parse(bad, "JWKS URL").unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("pw@"), "{e}");
        }
        let shown = JwksUrl::parse("https://a.supabase.co/jwks.json?apikey=secret", "JWKS URL")
            .unwrap()
            .to_string();
        assert_eq!(shown, "https://a.supabase.co/jwks.json");
    }

    /// A self-signed certificate for localhost, made for this test only.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBmzCCAUGgAwIBAgIUKGYbgJW1jNRFPB2vQ/7OjHAP3SwwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJbG9jYWxob3N0MCAXDTI2MTIwMTE3NTQwN1oYDzIxMjYxMTA3
MTc1NDA3WjAUMRIwEAYDVQQDDAlsb2NhbGhvc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAAT42H2LuELoWupyA9sXc2h6Ovu2hn3cArLWB7Rl//QccyoiZvAmR6Cm
38orMZ2BmrOyJRJjdhN7J3XX0FvMfu7Ko28wbTAdBgNVHQ4EFgQUkp7bstO7CuFV
dXdMi+qAtFe8UiowHwYDVR0jBBgwFoAUkp7bstO7CuFVdXdMi+qAtFe8UiowDwYD
VR0TAQH/BAUwAwEB/zAaBgNVHREEEzARgglsb2NhbGhvc3SHBH8AAAEwCgYIKoZI
zj0EAwIDSAAwRQIgNLU53rHO+6Qbqa/9uC6VhamoG8BxPK10dCtpaSL5BOECIQCR
d8hm5K3gzCW7Wh/v7IiKR9eVEUehcykkzd3O2xdliw==
-----END CERTIFICATE-----";
    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg63BehTqPzY4Ebxa7
7/0MXjuFjleEwCLbdXs7cutQhjuhRANCAAT42H2LuELoWupyA9sXc2h6Ovu2hn3c
ArLWB7Rl//QccyoiZvAmR6Cm38orMZ2BmrOyJRJjdhN7J3XX0FvMfu7K
-----END PRIVATE KEY-----";

    #[tokio::test]
    async fn a_server_whose_certificate_is_not_trusted_is_refused() {
        use rustls::pki_types::pem::PemObject as _;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};

        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![CertificateDer::from_pem_slice(CERT.as_bytes()).unwrap()],
            PrivateKeyDer::from_pem_slice(KEY.as_bytes()).unwrap(),
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let server = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            // The handshake fails on the client's side; nothing is served.
            let _ = tokio_rustls::TlsAcceptor::from(Arc::new(config))
                .accept(tcp)
                .await;
        });
        let url =
            JwksUrl::parse(&format!("https://localhost:{port}/jwks.json"), "JWKS URL").unwrap();
        let err = fetch(&url).await.unwrap_err().to_string();
        assert!(err.contains("TLS handshake failed"), "{err}");
        assert!(err.contains("invalid peer certificate"), "{err}");
        server.await.unwrap();
    }
}
