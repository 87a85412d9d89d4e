//! The simulator's shared state: connections, accounts, faults, counters.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot, watch};
use wacore_binary::Node;
use wacore_libsignal::protocol::KeyPair;

use crate::identity::ServerIdentity;
use crate::keyshare::{AppStateKey, UploadedKeys};
use crate::model::{
    LoginFailure, Refusal, SimConfig, SimCounters, SimError, SimEvent, SimMessage, SimReceipt,
    Stage,
};
use crate::signal::PhoneSignal;

/// What a connection task is told to do.
pub(crate) enum Out {
    /// Encrypt and send this stanza.
    Node(Node),
    /// Close the socket.
    Close,
    /// Handle whatever the client has already sent (a close, say) before answering: a real
    /// server reads in arrival order, the simulator's per-socket tasks do not. The sender is
    /// dropped once that is done, after the connection is forgotten if it closed.
    Flush(oneshot::Sender<()>),
}

pub(crate) struct ConnHandle {
    pub(crate) tx: mpsc::UnboundedSender<Out>,
    /// The phone this connection belongs to, once known.
    pub(crate) phone: Option<String>,
    /// The companion's device number, for logged-in connections.
    pub(crate) device: Option<u32>,
    /// The QR refs handed to this registration connection, each with the moment it expires.
    pub(crate) qr_refs: Vec<(String, tokio::time::Instant)>,
}

/// A companion linked to an account.
pub(crate) struct LinkedDevice {
    /// The companion's Noise static key: a login must present it.
    pub(crate) noise_pub: [u8; 32],
    /// Removed from the phone: its next login is refused.
    pub(crate) removed: bool,
    /// The pre-keys the companion uploaded, handed out one by one.
    pub(crate) keys: Option<UploadedKeys>,
    /// Whether the phone has sent it the app-state sync keys.
    pub(crate) keys_shared: bool,
    /// The `ADVSignedDeviceIdentity` it returned in `pair-device-sign`, served with its
    /// pre-key bundle so senders can check the account vouches for its identity key.
    pub(crate) identity: Option<Vec<u8>>,
    /// Messages for it that its client has not acknowledged yet, oldest first: kept while it
    /// is not connected, delivered (again) when it logs in, removed by its `<ack>`.
    pub(crate) queue: VecDeque<Queued>,
}

/// A stanza for a companion (a message, or a phone's receipt for one the companion sent),
/// kept until its client acknowledges it.
pub(crate) struct Queued {
    pub(crate) id: String,
    /// The stanza's tag, which the client's `<ack class>` names: `message` or `receipt`.
    pub(crate) class: String,
    /// A receipt's `type` (`read`...; `None` for a delivery receipt), which the client's ack
    /// repeats: a delivery and a read receipt for one message are acknowledged apart.
    pub(crate) kind: Option<String>,
    pub(crate) node: Node,
    pub(crate) at: Instant,
    /// The connection it was last sent on.
    pub(crate) sent_on: Option<u64>,
}

/// The most messages the offline queue keeps for one companion; beyond it the oldest goes.
pub const OFFLINE_QUEUE_LIMIT: usize = 1000;

/// The companion's answer to `primary_hello`.
pub(crate) struct Finish {
    pub(crate) wrapped_bundle: Vec<u8>,
    pub(crate) identity_pub: Vec<u8>,
}

/// A pairing code a companion registered (the server never learns the code itself).
pub(crate) struct PendingCode {
    pub(crate) pairing_ref: Vec<u8>,
    pub(crate) wrapped_companion_ephemeral: Vec<u8>,
    pub(crate) companion_noise_pub: [u8; 32],
    pub(crate) conn: u64,
    pub(crate) finish_tx: Option<oneshot::Sender<Finish>>,
}

#[derive(Default)]
pub(crate) struct Faults {
    /// Refuse code requests: the refusal and how many more times (`None`: always).
    pub(crate) refuse: Option<(Refusal, Option<u32>)>,
    pub(crate) delays: HashMap<Stage, Duration>,
    pub(crate) drops: HashSet<Stage>,
    pub(crate) login_failure: Option<LoginFailure>,
    pub(crate) silent: bool,
}

/// A phone's Signal state, created on first use (pairing-only runs never pay for it).
pub(crate) struct PhoneCrypto {
    identity: KeyPair,
    signal: tokio::sync::Mutex<Option<PhoneSignal>>,
}

impl PhoneCrypto {
    /// Locks the phone's Signal state, in arrival order.
    pub(crate) async fn lock(
        &self,
    ) -> Result<tokio::sync::MappedMutexGuard<'_, PhoneSignal>, SimError> {
        let mut guard = self.signal.lock().await;
        if guard.is_none() {
            *guard = Some(PhoneSignal::new(&self.identity)?);
        }
        tokio::sync::MutexGuard::try_map(guard, Option::as_mut)
            .map_err(|_| SimError::Protocol("the phone's Signal state is missing".into()))
    }
}

pub(crate) struct Account {
    pub(crate) lid: String,
    /// The name the account's owner chose (WhatsApp's push name): in the initial history
    /// sync's `pushnames` and as `notify` on every message the account sends.
    pub(crate) push_name: String,
    /// The account's ADV key-index list id, stable for the account's life.
    pub(crate) raw_id: u32,
    /// When the account's device list last changed (Unix seconds): the key-index list's `ts`.
    pub(crate) devices_ts: u64,
    pub(crate) identity: KeyPair,
    pub(crate) crypto: Arc<PhoneCrypto>,
    /// Messages the phone received from companions, oldest first.
    pub(crate) inbox: Vec<SimMessage>,
    /// Receipts companions sent for the phone's messages, oldest first.
    pub(crate) receipts: Vec<SimReceipt>,
    /// How many times the phone asked for each message it could not decrypt (by sending
    /// companion and message id).
    pub(crate) retries: HashMap<(String, u32, String), u8>,
    pub(crate) app_state_key: AppStateKey,
    pub(crate) next_device: u32,
    pub(crate) devices: BTreeMap<u32, LinkedDevice>,
    pub(crate) pending: Option<PendingCode>,
    pub(crate) faults: Faults,
    pub(crate) code_waiters: Vec<oneshot::Sender<()>>,
}

impl Account {
    fn new(lid_seq: u64, phone: &str) -> Self {
        use rand::RngExt as _;
        let mut rng = rand::make_rng::<rand::rngs::StdRng>();
        let identity = KeyPair::generate(&mut rng);
        Self {
            lid: format!("{}", 100_000_000_000_000u64 + lid_seq),
            push_name: default_push_name(phone),
            raw_id: rng.random_range(1..u32::MAX),
            devices_ts: wacore::time::now_secs_u64(),
            crypto: Arc::new(PhoneCrypto {
                identity: identity.clone(),
                signal: tokio::sync::Mutex::new(None),
            }),
            identity,
            inbox: Vec::new(),
            receipts: Vec::new(),
            retries: HashMap::new(),
            app_state_key: AppStateKey::generate(),
            next_device: 1,
            devices: BTreeMap::new(),
            pending: None,
            faults: Faults::default(),
            code_waiters: Vec::new(),
        }
    }
}

/// How many seconds of [`SimCounters::logins_by_second`] are kept (the last hour with logins).
const LOGIN_SECONDS_KEPT: usize = 3600;

#[derive(Default)]
pub(crate) struct State {
    pub(crate) next_conn: u64,
    pub(crate) next_id: u64,
    pub(crate) conns: HashMap<u64, ConnHandle>,
    pub(crate) accounts: HashMap<String, Account>,
    /// Phone numbers by LID user.
    pub(crate) lids: HashMap<String, String>,
    /// Server-initiated IQs awaiting the client's answer, by id.
    pub(crate) waiting: HashMap<String, oneshot::Sender<Node>>,
    pub(crate) counters: SimCounters,
    pub(crate) stanzas: Vec<String>,
    /// When the logins of the last second happened, oldest first.
    pub(crate) recent_logins: VecDeque<Instant>,
}

impl State {
    /// Counts a successful login, and the most seen within any one second.
    pub(crate) fn count_login(&mut self) {
        let now = Instant::now();
        while self
            .recent_logins
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.recent_logins.pop_front();
        }
        self.recent_logins.push_back(now);
        self.counters.logins += 1;
        let second = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        *self.counters.logins_by_second.entry(second).or_insert(0) += 1;
        while self.counters.logins_by_second.len() > LOGIN_SECONDS_KEPT {
            self.counters.logins_by_second.pop_first();
        }
        let in_window = self.recent_logins.len() as u64;
        self.counters.max_logins_per_second = self.counters.max_logins_per_second.max(in_window);
    }

    /// `phone`'s account, created on first use.
    pub(crate) fn account(&mut self, phone: &str) -> &mut Account {
        let seq = self.accounts.len() as u64;
        let lids = &mut self.lids;
        self.accounts.entry(phone.to_owned()).or_insert_with(|| {
            let account = Account::new(seq, phone);
            lids.insert(account.lid.clone(), phone.to_owned());
            account
        })
    }

    /// The account (phone number) and device a JID names, PN (`628…[:N]@s.whatsapp.net`) or
    /// LID (`1000…[:N]@lid`); `None` for an account no one created or another server.
    pub(crate) fn resolve(&self, jid: &str) -> Option<(String, u32)> {
        let (user, server) = jid.split_once('@')?;
        let (user, device) = match user.split_once(':') {
            Some((u, d)) => (u, d.parse().ok()?),
            None => (user, 0),
        };
        let user = user.split_once('.').map_or(user, |(u, _)| u);
        let phone = match server {
            crate::node::SERVER => self.accounts.contains_key(user).then(|| user.to_owned())?,
            "lid" => self.lids.get(user)?.clone(),
            _ => return None,
        };
        Some((phone, device))
    }

    pub(crate) fn next_id(&mut self) -> String {
        self.next_id += 1;
        format!("sim-{}", self.next_id)
    }

    /// Logged-in connections of `phone`'s companion `device`.
    pub(crate) fn sessions_of(&self, phone: &str, device: u32) -> Vec<u64> {
        self.conns
            .iter()
            .filter(|(_, c)| c.phone.as_deref() == Some(phone) && c.device == Some(device))
            .map(|(id, _)| *id)
            .collect()
    }

    /// Hands the `<message>` or `<receipt>` `node` (whose id is `id`) to `phone`'s companion
    /// `device`: kept until its client acknowledges it, and sent now to its live connections. Returns
    /// whether it went out now (`false`: it waits in the offline queue); `None` when the
    /// companion does not exist.
    pub(crate) fn deliver(
        &mut self,
        phone: &str,
        device: u32,
        id: &str,
        node: Node,
    ) -> Option<bool> {
        let live = self.sessions_of(phone, device);
        let mut sent_on = None;
        for c in &live {
            if self.send(*c, Out::Node(node.clone())) {
                sent_on = Some(*c);
            }
        }
        let linked = self.accounts.get_mut(phone)?.devices.get_mut(&device)?;
        if linked.queue.len() >= OFFLINE_QUEUE_LIMIT {
            linked.queue.pop_front();
            self.counters.offline_dropped += 1;
        }
        linked.queue.push_back(Queued {
            id: id.to_owned(),
            class: node.tag.to_string(),
            kind: (node.tag == "receipt")
                .then(|| crate::node::attr(&node, "type"))
                .flatten(),
            node,
            at: Instant::now(),
            sent_on,
        });
        if sent_on.is_none() {
            self.counters.offline_queued += 1;
        }
        Some(sent_on.is_some())
    }

    /// The companion's client acknowledged the `class` stanza (`message`, `receipt` of type
    /// `kind`) `id`: it leaves the queue.
    pub(crate) fn acknowledged(
        &mut self,
        phone: &str,
        device: u32,
        class: &str,
        kind: Option<&str>,
        id: &str,
    ) {
        if let Some(linked) = self
            .accounts
            .get_mut(phone)
            .and_then(|a| a.devices.get_mut(&device))
        {
            linked.queue.retain(|q| {
                q.id != id || q.class != class || (class == "receipt" && q.kind.as_deref() != kind)
            });
        }
    }

    /// What connection `conn`'s companion has not acknowledged and was not sent on `conn`
    /// yet, each marked `offline`, oldest first (now counted as sent on `conn`); expired
    /// messages are dropped.
    pub(crate) fn offline_for(&mut self, conn: u64, expiry: Duration) -> Vec<Node> {
        let Some((phone, device)) = self
            .conns
            .get(&conn)
            .and_then(|c| Some((c.phone.clone()?, c.device?)))
        else {
            return Vec::new();
        };
        let Some(linked) = self
            .accounts
            .get_mut(&phone)
            .and_then(|a| a.devices.get_mut(&device))
        else {
            return Vec::new();
        };
        let before = linked.queue.len();
        linked.queue.retain(|q| q.at.elapsed() < expiry);
        let expired = (before - linked.queue.len()) as u64;
        let mut out = Vec::new();
        for q in &mut linked.queue {
            if q.sent_on != Some(conn) {
                q.sent_on = Some(conn);
                let mut node = q.node.clone();
                node.attrs.insert("offline", "1");
                out.push(node);
            }
        }
        self.counters.offline_dropped += expired;
        self.counters.offline_delivered += out.len() as u64;
        out
    }

    pub(crate) fn send(&self, conn: u64, out: Out) -> bool {
        self.conns
            .get(&conn)
            .is_some_and(|c| c.tx.send(out).is_ok())
    }
}

pub(crate) struct Shared {
    pub(crate) config: SimConfig,
    pub(crate) identity: ServerIdentity,
    pub(crate) addr: SocketAddr,
    pub(crate) state: Mutex<State>,
    pub(crate) events: broadcast::Sender<SimEvent>,
    pub(crate) shutdown: watch::Sender<bool>,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the state consistent before it could panic.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn emit(&self, event: SimEvent) {
        tracing::debug!(?event, "sim event");
        let _ = self.events.send(event);
    }

    /// The configured delay for `stage` on `phone`, if any.
    pub(crate) fn delay(&self, phone: &str, stage: Stage) -> Option<Duration> {
        self.lock()
            .accounts
            .get(phone)
            .and_then(|a| a.faults.delays.get(&stage).copied())
    }

    /// Whether the connection must be dropped at `stage` for `phone`.
    pub(crate) fn drops(&self, phone: &str, stage: Stage) -> bool {
        self.lock()
            .accounts
            .get(phone)
            .is_some_and(|a| a.faults.drops.contains(&stage))
    }

    /// Applies the delay and drop faults of `stage`; returns whether to go on.
    pub(crate) async fn stage(&self, phone: &str, stage: Stage, conn: u64) -> bool {
        if let Some(d) = self.delay(phone, stage) {
            tokio::time::sleep(d).await;
        }
        if self.drops(phone, stage) {
            self.lock().send(conn, Out::Close);
            return false;
        }
        true
    }
}

/// The push name a simulated account starts with: `Sim` and the number's last four digits.
pub(crate) fn default_push_name(phone: &str) -> String {
    let tail = phone.get(phone.len().saturating_sub(4)..).unwrap_or(phone);
    format!("Sim {tail}")
}
