//! Harness for the end-to-end tests: the simulator, a store, runners with the real
//! WhatsApp connector, and a simulated person who types every code shown.

// A test harness: it reports failures by panicking.
#![allow(clippy::missing_panics_doc)]

mod counting;

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::task::JoinHandle;
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_runner::{LiveSessions, RunSummary, Runner, RunnerConfig, RunnerStatus};
use wa_pairing_sim::{Sim, SimConfig};
use wa_pairing_store::{
    Device, DeviceId, DeviceStatus, Keyring, MemoryStore, NewDevice, PairingRequest, Stores, UserId,
};
use wa_pairing_store_testkit::Skip;
use wa_pairing_whatsapp::{WhatsAppConfig, WhatsAppConnector};

pub use counting::Counting;
/// A throwaway PostgreSQL database (the workspace's one helper).
pub use wa_pairing_test_support::TestDb as PgDb;
pub use wa_pairing_test_support::{PgBouncer, Postrust, ServiceEnv};

/// The issuer the end-to-end tests' tokens name (a Supabase project's is
/// `https://<ref>.supabase.co/auth/v1`).
pub const ISSUER: &str = "http://127.0.0.1/wa-pairing-e2e/auth/v1";

/// A Supabase-style access token for `user` from [`ISSUER`], signed with the HS256 `secret`,
/// valid for ten minutes.
pub fn access_token(secret: &str, user: UserId) -> String {
    let claims = serde_json::json!({
        "sub": user.to_string(), "aud": "authenticated", "iss": ISSUER,
        "exp": chrono::Utc::now().timestamp() + 600,
    });
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .expect("an HS256 token")
}

/// Generous deadline for anything a test waits on.
pub const DEADLINE: Duration = Duration::from_secs(90);

/// The key every stack seals its auth state with, unless a test builds its own stores.
pub fn test_keyring() -> Keyring {
    Keyring::new(1, TEST_KEY)
}

const TEST_KEY: [u8; 32] = [0x5a; 32];

/// [`test_keyring`] as `WA_PAIRING_AUTH_KEYS` writes it (`1:<base64>`).
pub fn test_keys_setting() -> String {
    use base64::Engine as _;
    format!(
        "1:{}",
        base64::engine::general_purpose::STANDARD.encode(TEST_KEY)
    )
}

/// Everything in memory, the auth state sealed with [`test_keyring`].
pub fn memory() -> Stores {
    MemoryStore::new().stores().encrypt(test_keyring()).build()
}

/// A fresh PostgreSQL database with the migrations applied, and its store (for tests that
/// build their own [`Stores`] around it).
pub async fn postgres_store() -> Result<(PostgresStore, PgDb), Skip> {
    let db = PgDb::create("wa_e2e").await?;
    let store = PostgresStore::new(&PostgresConfig::new(&db.url).pool_size(8)).expect("pool");
    store.migrate().await.expect("migrations");
    Ok((store, db))
}

/// Devices and auth state in a fresh PostgreSQL database (dropped by [`PgDb::drop`]), the
/// auth state sealed with [`test_keyring`].
pub async fn postgres() -> Result<(Stores, PgDb), Skip> {
    let (store, db) = postgres_store().await?;
    Ok((store.stores().encrypt(test_keyring()).build(), db))
}

/// Like [`postgres`], but every connection goes through a PgBouncer in transaction mode (as
/// behind Supabase's transaction pooler): no change feed, so runners poll for work. The
/// migrations are applied through the pooler too. Keep the [`PgBouncer`] alive for the test.
pub async fn postgres_through_pooler() -> Result<(Stores, PgDb, PgBouncer), Skip> {
    let db = PgDb::create("wa_e2e").await?;
    let bouncer = match PgBouncer::start(db.admin_url()) {
        Ok(b) => b,
        Err(why) => {
            db.drop().await;
            return Err(why);
        }
    };
    let config = PostgresConfig::new(bouncer.url(db.name())).pool_size(8);
    let store = PostgresStore::new(&config).expect("pool");
    store
        .migrate()
        .await
        .expect("migrations through the pooler");
    Ok((store.stores().encrypt(test_keyring()).build(), db, bouncer))
}

/// A Supabase project offline: a fresh database with Supabase's roles and the migrations,
/// and a PostgREST-compatible server in front of it (as on a Supabase project). Keep the
/// [`Postrust`] alive for the test.
pub async fn supabase_project() -> Result<(PgDb, Postrust), Skip> {
    let db = PgDb::create("wa_e2e").await?;
    db.connect()
        .await
        .batch_execute(wa_pairing_test_support::SUPABASE_ROLES_SQL)
        .await
        .expect("the Supabase roles fixture");
    PostgresStore::new(&PostgresConfig::new(&db.url))
        .expect("pool")
        .migrate()
        .await
        .expect("migrations");
    match Postrust::start(&db) {
        Ok(rest) => Ok((db, rest)),
        Err(why) => {
            db.drop().await;
            Err(why)
        }
    }
}

/// Devices and auth state through Supabase's REST API ([`supabase_project`]), the Supabase
/// backend on it as `service_role`, the auth state sealed with [`test_keyring`]. Keep the
/// [`Postrust`] alive for the test.
pub async fn supabase_rest() -> Result<(Stores, PgDb, Postrust), Skip> {
    let (db, rest) = supabase_project().await?;
    let store = wa_pairing_supabase::SupabaseConfig::new(rest.url(), rest.service_role_key())
        .build()
        .expect("the Supabase store");
    Ok((store.stores().encrypt(test_keyring()).build(), db, rest))
}

/// A Node test package under `tests/` (`tests/<name>`), when Node 20 or later is installed;
/// else why not. Installs the package's dependencies (`npm ci`, its pinned lockfile) when
/// `module` is not installed yet.
pub fn node_package(name: &str, module: &str) -> Result<std::path::PathBuf, Skip> {
    use std::process::{Command, Stdio};
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(name);
    let node = Command::new("node")
        .args(["-p", "process.versions.node.split('.')[0]"])
        .output()
        .map_err(|e| {
            Skip::new(format!(
                "Node is not installed ({e}): tests/{name} needs Node 20 or later"
            ))
        })?;
    let major: u32 = String::from_utf8_lossy(&node.stdout)
        .trim()
        .parse()
        .unwrap_or(0);
    if major < 20 {
        return Err(Skip::new(format!(
            "tests/{name} needs Node 20 or later; this is Node {major}"
        )));
    }
    if !dir.join("node_modules").join(module).is_dir() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&dir)
            .stdout(Stdio::null())
            .status()
            .map_err(|e| {
                Skip::new(format!(
                    "npm could not run ({e}): run `npm ci` in tests/{name}"
                ))
            })?;
        if !status.success() {
            return Err(Skip::new(format!("`npm ci` in tests/{name} failed")));
        }
    }
    Ok(dir)
}

/// A mobile number no earlier run used: `prefix` (Indonesian, `628...`) followed by random
/// digits, 13 digits in all. Tests that share Redis between runs use it, so the pairing
/// budget a previous run spent on a fixed number (3 codes, then one per 200 s) never makes a
/// quick re-run fail.
pub fn fresh_number(prefix: &str) -> String {
    let random = uuid::Uuid::new_v4().as_u128();
    let digits = 13_usize.saturating_sub(prefix.len());
    let tail = random % 10_u128.pow(u32::try_from(digits).unwrap_or(0));
    format!("{prefix}{tail:0digits$}")
}

/// The simulator and the stores.
pub struct Stack {
    /// The simulator.
    pub sim: Sim,
    /// The stores.
    pub stores: Stores,
    /// The devices the simulated person looks at.
    watched: Arc<std::sync::Mutex<Vec<DeviceId>>>,
    /// Every code the simulated person typed.
    typed: Arc<std::sync::Mutex<Vec<String>>>,
}

/// A running runner instance.
pub struct RunningRunner {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: JoinHandle<RunSummary>,
    /// Its live status.
    pub status: RunnerStatus,
    /// The sessions it holds live, as the embedding application sees them.
    pub sessions: LiveSessions,
}

impl RunningRunner {
    /// Waits (at most [`DEADLINE`]) until this runner offers a live session for `id`.
    pub async fn live_session(&self, id: DeviceId) -> wa_pairing_runner::LiveSession {
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            if let Some(live) = self.sessions.get(id) {
                return live;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "the runner never offered the session"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Graceful shutdown: closes sessions and releases leases.
    pub async fn shutdown(mut self) -> RunSummary {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task.await.expect("runner task")
    }

    /// A crash: the task is aborted without releasing anything.
    pub fn kill(self) {
        self.task.abort();
    }
}

impl Stack {
    /// Starts a simulator over these stores. Logs go to the test's output, filtered by
    /// `RUST_LOG` (nothing when it is unset).
    pub async fn start(stores: Stores) -> Self {
        Self::start_with(stores, SimConfig::default()).await
    }

    /// [`start`](Self::start) with a simulator configured so.
    pub async fn start_with(stores: Stores, sim: SimConfig) -> Self {
        if std::env::var_os("RUST_LOG").is_some() {
            let _ = tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
                .with_test_writer()
                .try_init();
        }
        Self {
            sim: Sim::start(sim).await.expect("sim"),
            stores,
            watched: Arc::default(),
            typed: Arc::default(),
        }
    }

    /// Short leases so takeovers happen within a test.
    pub fn config(instance: &str) -> RunnerConfig {
        RunnerConfig::default()
            .instance_id(instance)
            .claim_interval(Duration::from_millis(500))
            .lease_for(Duration::from_secs(4))
            .heartbeat(Duration::from_secs(1))
    }

    /// Starts a runner instance with the real connector pointed at the simulator.
    pub fn runner(&self, config: RunnerConfig) -> RunningRunner {
        self.runner_over(&self.stores, config)
    }

    /// Starts a runner instance over other stores (other keys, say) with the real connector
    /// pointed at the simulator.
    pub fn runner_over(&self, stores: &Stores, config: RunnerConfig) -> RunningRunner {
        Self::runner_with(stores, self.connector(), config)
    }

    /// The real connector, pointed at the simulator.
    pub fn connector(&self) -> WhatsAppConnector {
        WhatsAppConfig::new()
            .server_url(self.sim.url())
            .push_name("wa-pairing e2e")
            .close_timeout(Duration::from_secs(5))
            .build()
            .expect("connector")
    }

    /// Starts a runner instance over `stores` with `connector`, on the current runtime.
    pub fn runner_with(
        stores: &Stores,
        connector: WhatsAppConnector,
        config: RunnerConfig,
    ) -> RunningRunner {
        let runner = Runner::new(stores.clone(), Arc::new(connector), config).expect("runner");
        let status = runner.status();
        let sessions = runner.sessions();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(runner.run(async {
            let _ = stopped.await;
        }));
        RunningRunner {
            stop: Some(stop),
            task,
            status,
            sessions,
        }
    }

    /// A device whose owner asked to link `phone`.
    pub async fn device(&self, phone: &str) -> Device {
        let d = self
            .stores
            .devices()
            .create(NewDevice::new(UserId::random(), "e2e"))
            .await
            .expect("create");
        let phone = wa_pairing_phone::parse(phone).expect("valid phone");
        let d = self
            .stores
            .devices()
            .start_pairing(d.id, PairingRequest::Code { phone })
            .await
            .expect("start pairing");
        self.watched.lock().expect("watched").push(d.id);
        d
    }

    /// A person who types every code shown for a device on its simulated phone.
    pub fn person(&self) -> JoinHandle<()> {
        let devices = Arc::clone(self.stores.devices());
        let sim = self.sim.clone();
        let watched = self.watched.clone();
        let typed_codes = self.typed.clone();
        tokio::spawn(async move {
            let mut feed = devices.subscribe().await.ok().flatten();
            let mut typed = std::collections::HashSet::new();
            let mut tick = tokio::time::interval(Duration::from_millis(200));
            loop {
                // Wake on a change (where the store pushes) or on the tick (where it polls).
                match &mut feed {
                    Some(f) => {
                        tokio::select! {
                            c = f.next() => if c.is_none() { return },
                            _ = tick.tick() => {}
                        }
                    }
                    None => {
                        tick.tick().await;
                    }
                }
                let ids = watched.lock().map(|w| w.clone()).unwrap_or_default();
                for id in ids {
                    let Ok(d) = devices.get(id).await else {
                        continue;
                    };
                    if d.status != DeviceStatus::WaitingPairing {
                        continue;
                    }
                    let (Some(code), Some(phone)) = (d.pairing_code, d.phone_for_pairing) else {
                        continue;
                    };
                    if typed.insert((id, code.to_string())) {
                        if let Ok(mut t) = typed_codes.lock() {
                            t.push(code.to_string());
                        }
                        let phone = sim.phone(phone.digits());
                        tokio::spawn(async move {
                            let _ = phone.enter_code(&code.to_string()).await;
                        });
                    }
                }
            }
        })
    }

    /// Every code the simulated person typed so far (`XXXX-XXXX`).
    pub fn typed_codes(&self) -> Vec<String> {
        self.typed.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// Waits until `id` satisfies `pred`.
    pub async fn until(&self, id: DeviceId, what: &str, pred: impl Fn(&Device) -> bool) -> Device {
        let end = tokio::time::Instant::now() + DEADLINE;
        loop {
            let d = self.stores.devices().get(id).await.expect("get");
            if pred(&d) {
                return d;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "timed out waiting for {what}; the device is {d:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until the device is connected.
    pub async fn connected(&self, id: DeviceId) -> Device {
        self.until(id, "connected", |d| d.status == DeviceStatus::Connected)
            .await
    }
}

/// Reads the HTTP API's server-sent events from `body` (with `buf` keeping a partial event
/// between calls) until one's device view satisfies `pred`; panics after 60 s naming `what`.
pub async fn until_event(
    body: &mut axum::body::Body,
    buf: &mut String,
    what: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            while let Some(end) = buf.find("\n\n") {
                let event: String = buf.drain(..end + 2).collect();
                if let Some(data) = event.lines().find_map(|l| l.strip_prefix("data:"))
                    && let Ok(v) = serde_json::from_str::<serde_json::Value>(data.trim())
                    && pred(&v)
                {
                    return v;
                }
            }
            let frame = http_body_util::BodyExt::frame(body)
                .await
                .expect("the stream stays open")
                .expect("a frame");
            if let Some(data) = frame.data_ref() {
                buf.push_str(&String::from_utf8_lossy(data));
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no event with {what} in time"))
}

/// Waits (at most [`DEADLINE`] for each) for the server's acks of `ids` among a session's
/// events, failing on a refusal.
pub async fn server_acks<S: std::hash::BuildHasher>(
    events: &mut tokio::sync::broadcast::Receiver<Arc<wacore::types::events::Event>>,
    ids: &mut std::collections::HashSet<String, S>,
) {
    while !ids.is_empty() {
        let event = tokio::time::timeout(DEADLINE, events.recv())
            .await
            .expect("an ack within the deadline")
            .expect("the session's events");
        if let wacore::types::events::Event::ServerAck(ack) = &*event
            && ids.remove(&ack.id)
        {
            assert!(ack.error.is_none(), "the server refused a message");
        }
    }
}
