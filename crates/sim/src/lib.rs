#![doc = include_str!("../README.md")]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod conn;
pub mod dict;
mod identity;
mod keyshare;
mod messaging;
mod model;
mod node;
mod phone;
mod signal;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{broadcast, watch};

pub use model::{
    EncType, LoginFailure, Refusal, SimConfig, SimCounters, SimError, SimEvent, SimMessage,
    SimReceipt, Stage, StreamError,
};
pub use phone::SimPhone;
pub use state::OFFLINE_QUEUE_LIMIT;

use state::{Shared, State};

/// A running simulator: a WhatsApp WebSocket server on loopback and its simulated phones.
///
/// Cheap to clone; every clone controls the same server. It stops on
/// [`shutdown`](Self::shutdown) or when the last clone is dropped.
///
/// ```no_run
/// use std::time::Duration;
/// use wa_pairing_sim::{Sim, SimConfig, SimEvent};
///
/// # async fn demo() -> Result<(), wa_pairing_sim::SimError> {
/// let sim = Sim::start(SimConfig::default()).await?;
/// println!("point the client at {}", sim.url());
/// let phone = sim.phone("6281234567890");
/// phone.wait_for_code_request(Duration::from_secs(30)).await?;
/// phone.enter_code("ABCD-EFGH").await?;  // the code the client showed
/// sim.wait_for(Duration::from_secs(30), |e| matches!(e, SimEvent::LoggedIn { .. })).await?;
/// sim.shutdown().await;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Sim {
    shared: Arc<Shared>,
    _guard: Arc<Guard>,
}

struct Guard(watch::Sender<bool>);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.send(true);
    }
}

impl std::fmt::Debug for Sim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sim")
            .field("addr", &self.shared.addr)
            .finish_non_exhaustive()
    }
}

impl Sim {
    /// Starts a simulator. Refuses to listen anywhere but loopback.
    pub async fn start(config: SimConfig) -> Result<Self, SimError> {
        config.validate()?;
        let listener = TcpListener::bind(config.bind)
            .await
            .map_err(SimError::Bind)?;
        let addr = listener.local_addr().map_err(SimError::Bind)?;
        let (events, _) = broadcast::channel(4096);
        let (shutdown, mut stop) = watch::channel(false);
        let identity = identity::ServerIdentity::generate(config.foreign_certificate);
        let shared = Arc::new(Shared {
            config,
            identity,
            addr,
            state: Mutex::new(State::default()),
            events,
            shutdown: shutdown.clone(),
        });
        let accept = Arc::clone(&shared);
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.changed() => break,
                    accepted = listener.accept() => match accepted {
                        Ok((stream, _)) => {
                            let _ = stream.set_nodelay(true);
                            tokio::spawn(conn::serve(Arc::clone(&accept), stream));
                        }
                        Err(e) => tracing::warn!(error = %e, "accept failed"),
                    },
                }
            }
        });
        tracing::info!(%addr, "WhatsApp simulator listening");
        Ok(Self {
            shared,
            _guard: Arc::new(Guard(shutdown)),
        })
    }

    /// The WebSocket URL to give the client (`ws://127.0.0.1:PORT/ws/chat`).
    pub fn url(&self) -> String {
        format!("ws://{}/ws/chat", self.shared.addr)
    }

    /// The address the simulator listens on.
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The simulated phone (the WhatsApp account) of `number` (E.164 digits), created on
    /// first use.
    pub fn phone(&self, number: &str) -> SimPhone {
        let number: String = number.chars().filter(char::is_ascii_digit).collect();
        self.shared.lock().account(&number);
        SimPhone {
            shared: Arc::clone(&self.shared),
            number,
        }
    }

    /// A snapshot of the counters.
    pub fn counters(&self) -> SimCounters {
        self.shared.lock().counters.clone()
    }

    /// Every stanza received so far (only with [`SimConfig::record_stanzas`]).
    pub fn stanzas(&self) -> Vec<String> {
        self.shared.lock().stanzas.clone()
    }

    /// Subscribes to events from now on.
    pub fn events(&self) -> broadcast::Receiver<SimEvent> {
        self.shared.events.subscribe()
    }

    /// Waits for the first event from now on (from this call, not from the first poll of
    /// the future it returns, so an action started between the two is not missed) that
    /// satisfies `pred`, at most `timeout`.
    pub fn wait_for(
        &self,
        timeout: Duration,
        pred: impl Fn(&SimEvent) -> bool,
    ) -> impl Future<Output = Result<SimEvent, SimError>> {
        let mut rx = self.events();
        let waiting = tokio::time::timeout(timeout, async move {
            loop {
                match rx.recv().await {
                    Ok(e) if pred(&e) => return Ok(e),
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => {
                        return Err(SimError::ConnectionClosed);
                    }
                }
            }
        });
        async move {
            waiting
                .await
                .map_err(|_| SimError::Timeout("the awaited simulator event"))?
        }
    }

    /// Waits until the counters satisfy `pred`, at most `timeout`, and returns them.
    ///
    /// The client may see a step complete (for example pair-success) a moment before the
    /// simulator has counted it; tests that compare counters after observing the client
    /// should wait with this instead of reading [`Sim::counters`] once.
    ///
    /// # Errors
    ///
    /// [`SimError::Timeout`] when `pred` still fails after `timeout`.
    pub async fn wait_for_counters(
        &self,
        timeout: Duration,
        pred: impl Fn(&SimCounters) -> bool,
    ) -> Result<SimCounters, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let counters = self.counters();
            if pred(&counters) {
                return Ok(counters);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Timeout("the awaited simulator counters"));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Closes every connection and stops listening.
    pub async fn shutdown(&self) {
        let _ = self.shared.shutdown.send(true);
        // Let connection tasks observe the signal.
        tokio::task::yield_now().await;
    }
}
