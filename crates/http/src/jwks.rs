//! Fetching a JWKS document: one `GET` with reqwest over TLS (rustls with the webpki roots),
//! or over plain HTTP to a loopback address only (a local Supabase, tests). Redirects are
//! never followed: anything but `200` is a failed fetch. The body is read in chunks and the
//! fetch fails as soon as it grows past [`MAX_DOCUMENT_BYTES`].

use std::error::Error as _;
use std::fmt;
use std::sync::OnceLock;
use std::time::Duration;

use axum::http::{StatusCode, Uri, header};

use crate::auth::AuthConfigError;

/// The largest JWKS document accepted (Supabase's has a few keys, well under 10 KiB).
const MAX_DOCUMENT_BYTES: usize = 256 * 1024;

/// How long one fetch may take, connection and TLS included.
pub(crate) const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// A checked JWKS address: `https://`, or `http://` to a loopback host.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct JwksUrl {
    uri: Uri,
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
        Ok(Self { uri, tls })
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

/// Mozilla's roots (webpki-roots) and the ring provider, whatever else the build carries:
/// neither the platform's certificate store nor another crate's provider choice changes
/// which servers are trusted. HTTP/1.1 only.
fn tls_config() -> Result<rustls::ClientConfig, String> {
    let roots = rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(|e| format!("TLS setup failed: {e}"))?
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// The one client every fetch uses: no redirects, no proxy (the connection goes straight to
/// the configured host, as the URL check assumes), the [`FETCH_TIMEOUT`] over the whole
/// fetch, and no idle connections kept between fetches (they are minutes apart).
fn client() -> Result<&'static reqwest::Client, FetchError> {
    static CLIENT: OnceLock<Result<reqwest::Client, String>> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .use_preconfigured_tls(tls_config()?)
                .redirect(reqwest::redirect::Policy::none())
                .no_proxy()
                .timeout(FETCH_TIMEOUT)
                .pool_max_idle_per_host(0)
                .user_agent("wa-pairing-http")
                .build()
                .map_err(|e| format!("cannot set up the HTTP client: {}", describe(&e)))
        })
        .as_ref()
        .map_err(|e| FetchError(e.clone()))
}

/// Words for a failed request, from the errors under reqwest's own (whose message carries
/// the URL, query included).
fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return format!("no answer within {} s", FETCH_TIMEOUT.as_secs());
    }
    let mut tls = None;
    let mut innermost = None;
    let mut source = e.source();
    while let Some(err) = source {
        if let Some(t) = rustls_error(err) {
            tls = Some(t.to_string());
        }
        innermost = Some(err.to_string());
        source = err.source();
    }
    if let Some(t) = tls {
        return format!("TLS handshake failed: {t}");
    }
    let why = innermost.unwrap_or_else(|| "unknown error".to_owned());
    if e.is_connect() {
        format!("cannot connect: {why}")
    } else if e.is_body() || e.is_decode() {
        format!("cannot read the document: {why}")
    } else {
        format!("the request failed: {why}")
    }
}

/// The rustls error in `err`, which arrives wrapped in io::Errors (whose `source` skips what
/// they wrap).
fn rustls_error<'e>(mut err: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    loop {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        err = err
            .downcast_ref::<std::io::Error>()
            .and_then(std::io::Error::get_ref)?;
    }
}

/// Fetches the document at `url` within [`FETCH_TIMEOUT`].
pub(crate) async fn fetch(url: &JwksUrl) -> Result<String, FetchError> {
    let mut response = client()?
        .get(url.uri.to_string())
        .header(header::ACCEPT, "application/json")
        .send()
        .await
        .map_err(|e| FetchError(describe(&e)))?;
    let status = response.status();
    if status != StatusCode::OK {
        return Err(FetchError(if status.is_redirection() {
            format!("answered HTTP {status}; redirects are not followed: configure the final URL")
        } else {
            format!("answered HTTP {status}")
        }));
    }
    let too_large = || {
        FetchError(format!(
            "the document is larger than {} KiB",
            MAX_DOCUMENT_BYTES / 1024
        ))
    };
    if response
        .content_length()
        .is_some_and(|n| n > MAX_DOCUMENT_BYTES as u64)
    {
        return Err(too_large());
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| FetchError(describe(&e)))?
    {
        if body.len() + chunk.len() > MAX_DOCUMENT_BYTES {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    String::from_utf8(body).map_err(|_| FetchError("the document is not UTF-8 text".into()))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

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

    /// Serves one connection on loopback: `head` (status line and headers), then `body`
    /// `repeat` times or until the client goes away. Returns the fetch URL.
    async fn serve_once(head: &'static str, body: &'static [u8], repeat: usize) -> JwksUrl {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut tcp, _) = listener.accept().await.unwrap();
            let mut request = [0; 4096];
            let _ = tcp.read(&mut request).await;
            if tcp.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            for _ in 0..repeat {
                if tcp.write_all(body).await.is_err() {
                    return;
                }
            }
        });
        JwksUrl::parse(&format!("http://127.0.0.1:{port}/jwks.json"), "JWKS URL").unwrap()
    }

    #[tokio::test]
    async fn a_document_is_read_up_to_the_limit_and_no_further() {
        const KIB: &[u8] = &[b' '; 1024];
        // Just under the limit, without a length: read to the end.
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            KIB,
            MAX_DOCUMENT_BYTES / 1024,
        )
        .await;
        assert_eq!(fetch(&url).await.unwrap().len(), MAX_DOCUMENT_BYTES);

        // An endless body without a length: the fetch stops at the limit, well before its
        // timeout.
        let url = serve_once(
            "HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n",
            KIB,
            usize::MAX,
        )
        .await;
        let started = std::time::Instant::now();
        let err = fetch(&url).await.unwrap_err().to_string();
        assert_eq!(err, "the document is larger than 256 KiB");
        assert!(
            started.elapsed() < FETCH_TIMEOUT / 2,
            "{:?}",
            started.elapsed()
        );

        // A declared length over the limit: refused before any of the body is read.
        let url = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n",
            b"",
            0,
        )
        .await;
        let err = fetch(&url).await.unwrap_err().to_string();
        assert_eq!(err, "the document is larger than 256 KiB");
    }

    #[tokio::test]
    async fn a_redirect_is_not_followed() {
        let target = serve_once(
            "HTTP/1.1 200 OK\r\ncontent-length: 11\r\n\r\n",
            b"{\"keys\":[]}",
            1,
        )
        .await;
        let head: &'static str = Box::leak(
            format!(
                "HTTP/1.1 301 Moved Permanently\r\nlocation: {target}\r\ncontent-length: 0\r\n\r\n"
            )
            .into_boxed_str(),
        );
        let url = serve_once(head, b"", 0).await;
        let err = fetch(&url).await.unwrap_err().to_string();
        assert_eq!(
            err,
            "answered HTTP 301 Moved Permanently; redirects are not followed: configure the final URL"
        );
    }

    #[tokio::test]
    async fn a_server_that_is_not_there_is_a_connection_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        drop(listener);
        let url = JwksUrl::parse(
            &format!("http://127.0.0.1:{port}/jwks.json?apikey=secret"),
            "JWKS URL",
        )
        .unwrap();
        let err = fetch(&url).await.unwrap_err().to_string();
        assert!(err.starts_with("cannot connect: "), "{err}");
        assert!(!err.contains("secret"), "{err}");
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
