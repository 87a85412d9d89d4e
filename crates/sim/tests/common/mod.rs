//! A real whatsapp-rust client wired to the simulator, with its events in a channel.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use wacore::store::InMemoryBackend;
use wacore::types::events::{Event, EventHandler};
use whatsapp_rust::bot::{Bot, BotHandle};
use whatsapp_rust::http::{HttpClient, HttpRequest, HttpResponse};
use whatsapp_rust::pair_code::PairCodeOptions;
use whatsapp_rust::transport::TokioWebSocketTransportFactory;
use whatsapp_rust::{Client, TokioRuntime};

pub const DEADLINE: Duration = Duration::from_secs(60);

/// A count from the environment (benchmarks' sizes), `default` when unset or not positive.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(default)
}

/// The `percent`th percentile of sorted durations.
pub fn percentile(sorted: &[Duration], percent: usize) -> Duration {
    sorted[(sorted.len() - 1) * percent / 100]
}

/// Milliseconds, for printing.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

struct NoHttp;

#[whatsapp_rust::async_trait]
impl HttpClient for NoHttp {
    async fn execute(&self, _: HttpRequest) -> whatsapp_rust::anyhow::Result<HttpResponse> {
        Err(whatsapp_rust::anyhow::anyhow!("no HTTP offline"))
    }
}

struct Forward(mpsc::UnboundedSender<Arc<Event>>);

impl EventHandler for Forward {
    fn handle_event(&self, event: Arc<Event>) {
        let _ = self.0.send(event);
    }
}

pub struct TestClient {
    pub handle: BotHandle,
    pub client: Arc<Client>,
    pub events: mpsc::UnboundedReceiver<Arc<Event>>,
    pub backend: Arc<InMemoryBackend>,
}

impl TestClient {
    pub async fn start(url: &str, backend: Arc<InMemoryBackend>) -> Self {
        Self::build(url, backend, false).await
    }

    /// A client that processes WhatsApp's history sync (the others skip it, as a pairing
    /// gateway does).
    #[allow(dead_code)] // Not every test binary uses it.
    pub async fn start_with_history(url: &str, backend: Arc<InMemoryBackend>) -> Self {
        Self::build(url, backend, true).await
    }

    async fn build(url: &str, backend: Arc<InMemoryBackend>, history: bool) -> Self {
        // The client's and the simulator's logs in the test's output, filtered by `RUST_LOG`
        // (nothing when it is unset).
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let mut bot = Bot::builder()
            .with_backend_arc(backend.clone())
            .with_transport_factory(TokioWebSocketTransportFactory::new().with_url(url.to_owned()))
            .with_http_client(NoHttp)
            .with_runtime(TokioRuntime)
            .with_version((2, 3000, 1_042_742_319));
        if !history {
            bot = bot.skip_history_sync();
        }
        let bot = bot
            // The simulator's app state carries no push name; a client without one waits
            // for it on every login.
            .with_push_name("wa-pairing sim test")
            .with_event_handler(Forward(tx))
            .build()
            .await
            .expect("client builds");
        let handle = bot.spawn();
        let client = handle.client();
        Self {
            handle,
            client,
            events: rx,
            backend,
        }
    }

    /// Waits for the first event matching `pred`, failing after the deadline.
    ///
    /// A timeout names the events seen meanwhile, so a failure explains itself without a
    /// second run under `RUST_LOG`.
    pub async fn wait(&mut self, what: &str, pred: impl Fn(&Event) -> bool) -> Arc<Event> {
        let mut seen: Vec<String> = Vec::new();
        let found = tokio::time::timeout(DEADLINE, async {
            while let Some(e) = self.events.recv().await {
                if pred(&e) {
                    return Some(e);
                }
                let name = format!("{e:?}");
                seen.push(name.chars().take(80).collect());
            }
            None
        })
        .await;
        match found {
            Ok(Some(e)) => e,
            Ok(None) => panic!("event stream ended while waiting for {what}; seen: {seen:?}"),
            Err(tokio::time::error::Elapsed { .. }) => panic!(
                "timed out waiting for {what}; seen meanwhile: {seen:?}; client connected: {}, logged in: {}",
                self.client.is_connected(),
                self.client.is_logged_in()
            ),
        }
    }

    pub async fn request_code(
        &self,
        phone: &str,
    ) -> Result<String, whatsapp_rust::pair_code::PairError> {
        assert!(
            self.client.wait_for_socket(DEADLINE).await.is_ok(),
            "socket never ready"
        );
        self.client
            .pair_with_code(PairCodeOptions {
                phone_number: phone.to_owned(),
                ..PairCodeOptions::default()
            })
            .await
    }

    /// Pairs this client with `phone`'s account by code and waits until it is connected and
    /// holds the app-state keys the phone shares.
    pub async fn link(
        &mut self,
        sim: &wa_pairing_sim::Sim,
        phone: &str,
    ) -> wa_pairing_sim::SimPhone {
        let shares = sim.counters().key_shares;
        let code = self.request_code(phone).await.expect("a code");
        let account = sim.phone(phone);
        account
            .enter_code(&code)
            .await
            .expect("the right code links");
        self.wait("connected", |e| matches!(e, Event::Connected(_)))
            .await;
        sim.wait_for_counters(DEADLINE, |c| c.key_shares > shares)
            .await
            .expect("the phone shares its keys");
        // The client has decrypted the share (and so holds the session it opened) once the key
        // is stored.
        let key = account.app_state_key_id();
        let deadline = tokio::time::Instant::now() + DEADLINE;
        while wacore::store::traits::AppSyncStore::get_sync_key(&*self.backend, &key)
            .await
            .expect("the store answers")
            .is_none()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "the client never stored the shared key"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        account
    }

    pub async fn stop(self) {
        self.client.disconnect().await;
        let _ = tokio::time::timeout(Duration::from_secs(10), self.handle).await;
    }
}
