//! The client's WebSocket to WhatsApp, with `TCP_NODELAY` set.
//!
//! `whatsapp-rust`'s own transport leaves Nagle's algorithm on. A message is written as
//! more than one segment (WebSocket header and payload), so a lone message can wait for the
//! server's delayed acknowledgement of the first one (about 40 ms on Linux) before the rest
//! leaves: measured against the simulator, a message sent one at a time took 44 ms to be
//! acknowledged, and a burst of them did not wait at all. Setting `TCP_NODELAY` sends each
//! write at once; everything else (TLS, the upgrade, the `Origin` header, the read pump) is
//! the client crate's own.
//!
//! Each connection is also watched for one thing the client does not report: a Noise
//! handshake it refused. The client answers the server's first message either with its
//! finish message (the handshake goes on) or, when the server could not prove it is
//! WhatsApp's (a certificate it cannot verify, a key the certificate does not name), by
//! closing the socket and retrying for ever, logging each failure. A connection that the
//! client closes after exactly one message each way, having received exactly the server's
//! first frame, is that refusal: the connector then fails the session at once, as an
//! operator's setting to change, instead of letting it retry until the ready timeout.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokio::net::TcpStream;
use tokio_websockets::{ClientBuilder, Connector};
use wacore::net::{Transport, TransportEvent, TransportFactory, WHATSAPP_WEB_ORIGIN};
use whatsapp_rust::anyhow::{self, Context as _};
use whatsapp_rust::bytes::Bytes;
use whatsapp_rust_tokio_transport::{default_tls_connector, from_websocket};

/// Called once per connection whose handshake the client refused.
pub(crate) type OnRefused = Arc<dyn Fn() + Send + Sync>;

/// Dials `url` (`wss://` in production, `ws://` for the simulator) with `TCP_NODELAY`, and
/// watches each connection's handshake.
pub(crate) struct NoDelayTransport {
    url: String,
    on_refused: OnRefused,
}

impl NoDelayTransport {
    pub(crate) fn new(url: String, on_refused: OnRefused) -> Self {
        Self { url, on_refused }
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
        let (inner, inner_events) = from_websocket(ws);
        let watch = Arc::new(Handshake::default());
        let (tx, events) = whatsapp_rust::async_channel::unbounded();
        let seen = Arc::clone(&watch);
        tokio::spawn(async move {
            while let Ok(event) = inner_events.recv().await {
                match &event {
                    TransportEvent::DataReceived(data) => seen.received(data),
                    TransportEvent::Disconnected(_) => {
                        seen.remote_closed.store(true, Ordering::SeqCst);
                    }
                    TransportEvent::Connected => {}
                }
                if tx.send(event).await.is_err() {
                    break;
                }
            }
        });
        let watched = Watched {
            inner,
            watch,
            on_refused: Arc::clone(&self.on_refused),
        };
        Ok((Arc::new(watched), events))
    }
}

/// What one connection's handshake has exchanged so far.
#[derive(Default)]
struct Handshake {
    /// Messages the client sent.
    sent: AtomicUsize,
    /// Bytes the server sent.
    received: AtomicUsize,
    /// The server's first frame, header included, once its 3-byte length header is in.
    first_frame: AtomicUsize,
    /// The first bytes the server sent, until the length header is complete.
    header: std::sync::Mutex<Vec<u8>>,
    /// The server (or the network) closed the connection.
    remote_closed: AtomicBool,
}

impl Handshake {
    fn received(&self, data: &[u8]) {
        self.received.fetch_add(data.len(), Ordering::SeqCst);
        if self.first_frame.load(Ordering::SeqCst) != 0 {
            return;
        }
        let mut header = self
            .header
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let missing = 3usize.saturating_sub(header.len());
        header.extend(data.iter().take(missing));
        if let [a, b, c] = header[..] {
            let len = usize::from(a) << 16 | usize::from(b) << 8 | usize::from(c);
            self.first_frame.store(3 + len, Ordering::SeqCst);
        }
    }

    /// The client is closing a connection on which it sent its first message and received
    /// exactly the server's first frame, without answering it: it refused the handshake.
    fn refused_by_client(&self) -> bool {
        let first = self.first_frame.load(Ordering::SeqCst);
        !self.remote_closed.load(Ordering::SeqCst)
            && self.sent.load(Ordering::SeqCst) == 1
            && first != 0
            && self.received.load(Ordering::SeqCst) == first
    }
}

/// The client crate's transport, watched.
struct Watched {
    inner: Arc<dyn Transport>,
    watch: Arc<Handshake>,
    on_refused: OnRefused,
}

#[whatsapp_rust::async_trait]
impl Transport for Watched {
    async fn send(&self, data: Bytes) -> anyhow::Result<()> {
        self.watch.sent.fetch_add(1, Ordering::SeqCst);
        self.inner.send(data).await
    }

    async fn disconnect(&self) {
        if self.watch.refused_by_client() {
            (self.on_refused)();
        }
        self.inner.disconnect().await;
    }

    fn resource_report(&self) -> Option<wacore::stats::TransportResourceReport> {
        self.inner.resource_report()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_close_right_after_the_servers_first_frame_is_a_refusal() {
        let h = Handshake::default();
        h.sent.store(1, Ordering::SeqCst);
        // A 5-byte frame arriving in two pieces, the header split.
        h.received(&[0, 0]);
        assert!(!h.refused_by_client(), "the frame is not complete");
        h.received(&[5, 1, 2, 3, 4, 5]);
        assert!(h.refused_by_client());
        // More from the server (a stanza after an IK handshake): not a refusal.
        h.received(&[0, 0, 1, 9]);
        assert!(!h.refused_by_client());
    }

    #[test]
    fn a_finished_timed_out_or_remotely_closed_handshake_is_not_a_refusal() {
        let answered = Handshake::default();
        answered.sent.store(2, Ordering::SeqCst);
        answered.received(&[0, 0, 1, 7]);
        assert!(!answered.refused_by_client(), "the client finished it");
        let silent = Handshake::default();
        silent.sent.store(1, Ordering::SeqCst);
        assert!(!silent.refused_by_client(), "the server never answered");
        let closed = Handshake::default();
        closed.sent.store(1, Ordering::SeqCst);
        closed.received(&[0, 0, 1, 7]);
        closed.remote_closed.store(true, Ordering::SeqCst);
        assert!(!closed.refused_by_client(), "the server closed it");
    }
}
