//! The client's WebSocket to WhatsApp, with `TCP_NODELAY` set.
//!
//! `whatsapp-rust`'s own transport leaves Nagle's algorithm on. A message is written as
//! more than one segment (WebSocket header and payload), so a lone message can wait for the
//! server's delayed acknowledgement of the first one (about 40 ms on Linux) before the rest
//! leaves: measured against the simulator, a message sent one at a time took 44 ms to be
//! acknowledged, and a burst of them did not wait at all. Setting `TCP_NODELAY` sends each
//! write at once; everything else (TLS, the upgrade, the `Origin` header, the read pump) is
//! the client crate's own.

use std::sync::Arc;

use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, Connector};
use wacore::net::{Transport, TransportEvent, TransportFactory, WHATSAPP_WEB_ORIGIN};
use whatsapp_rust::anyhow::{self, Context as _};
use whatsapp_rust_tokio_transport::{default_tls_connector, from_websocket};

/// Dials `url` (`wss://` in production, `ws://` for the simulator) with `TCP_NODELAY`.
pub(crate) struct NoDelayTransport {
    url: String,
}

impl NoDelayTransport {
    pub(crate) const fn new(url: String) -> Self {
        Self { url }
    }
}

#[whatsapp_rust::async_trait]
impl TransportFactory for NoDelayTransport {
    async fn create_transport(
        &self,
    ) -> anyhow::Result<(
        Arc<dyn Transport>,
        whatsapp_rust::async_channel::Receiver<TransportEvent>,
    )> {
        let uri: http::Uri = self.url.parse().context("the server URL does not parse")?;
        let tls = match uri.scheme_str() {
            Some("wss") => true,
            Some("ws") => false,
            _ => anyhow::bail!("the server URL must be ws:// or wss://"),
        };
        let host = uri
            .host()
            .context("the server URL has no host")?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
        let tcp = TcpStream::connect((host.as_str(), port))
            .await
            .context("could not reach the WhatsApp server")?;
        tcp.set_nodelay(true)
            .context("could not set TCP_NODELAY on the socket")?;
        let connector = if tls {
            default_tls_connector()
        } else {
            Connector::Plain
        };
        let stream = connector
            .wrap(&host, tcp)
            .await
            .context("the TLS handshake with the WhatsApp server failed")?;
        let (ws, _) = ClientBuilder::from_uri(uri)
            .add_header(
                http::header::ORIGIN,
                http::HeaderValue::from_static(WHATSAPP_WEB_ORIGIN),
            )
            .context("the Origin header")?
            .connect_on(stream)
            .await
            .context("the WebSocket upgrade failed")?;
        Ok(from_websocket(ws))
    }
}
