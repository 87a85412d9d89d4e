//! `wa-pairing-service healthcheck`: asks the running service's health endpoint, for
//! container health checks in images that have no HTTP client.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::settings::env;

/// The address the health endpoint listens on per `WA_PAIRING_HEALTH_ADDR` (default
/// [`DEFAULT_HEALTH_ADDR`](crate::DEFAULT_HEALTH_ADDR)), as a client reaches it from the same host: an unspecified address
/// (`0.0.0.0`, `[::]`) becomes loopback.
///
/// # Errors
///
/// When the setting is not `host:port`.
pub fn local_health_addr(lookup: impl Fn(&str) -> Option<String>) -> Result<SocketAddr, String> {
    let mut addr = match lookup(env::HEALTH_ADDR).filter(|v| !v.trim().is_empty()) {
        None => crate::DEFAULT_HEALTH_ADDR,
        Some(v) => v.trim().parse().map_err(|_| {
            format!(
                "{} must be host:port, for example 0.0.0.0:9464",
                env::HEALTH_ADDR
            )
        })?,
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// `GET path` from the health endpoint at `addr` within `timeout`; the HTTP status code.
///
/// # Errors
///
/// When nothing answers in time, or the answer is not HTTP.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<u16, String> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| format!("nothing answers on {addr}: {e}"))?;
        stream
            .write_all(
                format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            )
            .await
            .map_err(|e| format!("writing to {addr}: {e}"))?;
        let mut head = Vec::with_capacity(256);
        let mut buf = [0_u8; 256];
        // The status line is all that is needed.
        while !head.contains(&b'\n') && head.len() < 4096 {
            let n = stream
                .read(&mut buf)
                .await
                .map_err(|e| format!("reading from {addr}: {e}"))?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        let line = String::from_utf8_lossy(&head);
        line.split_whitespace()
            .nth(1)
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("{addr} did not answer HTTP"))
    };
    tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| format!("{addr} did not answer within {timeout:?}"))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unspecified_addresses_are_probed_on_loopback() {
        assert_eq!(
            local_health_addr(|_| None).unwrap(),
            "127.0.0.1:9464".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            local_health_addr(|_| Some("[::]:9000".into())).unwrap(),
            "[::1]:9000".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            local_health_addr(|_| Some("10.0.0.5:8081".into())).unwrap(),
            "10.0.0.5:8081".parse::<SocketAddr>().unwrap()
        );
        assert!(local_health_addr(|_| Some("everywhere".into())).is_err());
    }

    #[tokio::test]
    async fn a_probe_reads_the_status_and_fails_on_silence() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/livez", axum::routing::get(|| async { "ok" }));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        assert_eq!(
            probe(addr, "/livez", Duration::from_secs(5)).await.unwrap(),
            200
        );
        assert_eq!(
            probe(addr, "/nothing", Duration::from_secs(5))
                .await
                .unwrap(),
            404
        );
        server.abort();
        let _ = server.await;
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gone = closed.local_addr().unwrap();
        drop(closed);
        assert!(probe(gone, "/livez", Duration::from_secs(5)).await.is_err());
    }
}
