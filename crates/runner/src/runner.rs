//! The runner: claims work, runs one actor per device, keeps leases alive.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use futures::StreamExt as _;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, error, info, info_span, warn};
use wa_pairing_store::{
    Change, ChangeStream, ClaimRequest, ClaimedDevice, Device, DeviceId, DeviceStatus, DeviceStore,
    Lease, Stores,
};

use crate::actor::{self, Ctx, Exit};
use crate::config::{ConfigError, RunnerConfig};
use crate::connector::Connector;
use crate::live::LiveSessions;
use crate::metrics::{self, StopReason};
use crate::pace::Pacer;

/// How long to gather pushed changes before one claim serves them all.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(5);

/// The session runner.
///
/// Build it from the [`Stores`] and a connector, then [`run`](Self::run) it until a shutdown
/// signal.
///
/// ```no_run
/// use std::sync::Arc;
/// use wa_pairing_runner::{Connector, Runner, RunnerConfig};
/// use wa_pairing_store::MemoryStore;
///
/// # async fn demo(connector: Arc<dyn Connector>) -> Result<(), Box<dyn std::error::Error>> {
/// let stores = MemoryStore::new().stores().build();
/// let runner = Runner::new(stores, connector, RunnerConfig::default())?;
/// let summary = runner.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
/// println!("claimed {} devices", summary.claimed);
/// # Ok(())
/// # }
/// ```
pub struct Runner {
    stores: Stores,
    connector: Arc<dyn Connector>,
    config: RunnerConfig,
    status: RunnerStatus,
    live: LiveSessions,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("instance_id", &self.config.instance_id)
            .field("stores", &self.stores)
            .finish_non_exhaustive()
    }
}

/// What a finished [`Runner::run`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RunSummary {
    /// Devices claimed over the run.
    pub claimed: u64,
    /// Leases lost to another instance or to the owner.
    pub leases_lost: u64,
    /// Leases released at shutdown or when devices finished.
    pub released: u64,
    /// Sessions that did not close within [`RunnerConfig::shutdown_grace`] at shutdown. Their
    /// leases were not released, since their sockets may still be open: they lapse after one
    /// lease period, and then another instance resumes the devices, as after a crash.
    pub abandoned: u64,
    /// Device actors that panicked (a bug): each lease was left to lapse, never renewed.
    pub panicked: u64,
}

/// A live view of a running [`Runner`], for health checks and dashboards. Cheap to clone;
/// take it with [`Runner::status`] before [`Runner::run`].
#[derive(Clone, Default)]
pub struct RunnerStatus(Arc<StatusInner>);

#[derive(Default)]
struct StatusInner {
    running: AtomicBool,
    held: AtomicUsize,
    unreadable: Mutex<HashMap<DeviceId, String>>,
}

impl std::fmt::Debug for RunnerStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunnerStatus")
            .field("running", &self.is_running())
            .field("held", &self.held())
            .field("unreadable_devices", &self.unreadable_devices())
            .finish()
    }
}

impl RunnerStatus {
    /// Whether [`Runner::run`] is running.
    pub fn is_running(&self) -> bool {
        self.0.running.load(Ordering::SeqCst)
    }

    /// Devices this instance holds now.
    pub fn held(&self) -> usize {
        self.0.held.load(Ordering::SeqCst)
    }

    /// Devices whose auth state this instance found sealed with a key it does not have, and
    /// left untouched for an instance that has it (retried after
    /// [`RunnerConfig::unreadable_retry`]).
    pub fn unreadable_devices(&self) -> usize {
        self.lock().len()
    }

    /// Why those devices cannot be opened here (which key id is missing or wrong; never a
    /// key), one line per distinct reason.
    pub fn unreadable_reasons(&self) -> Vec<String> {
        let mut reasons: Vec<String> = self.lock().values().cloned().collect();
        reasons.sort();
        reasons.dedup();
        reasons
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<DeviceId, String>> {
        self.0
            .unreadable
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set_unreadable(&self, id: DeviceId, reason: Option<String>) {
        let n = {
            let mut map = self.lock();
            match reason {
                Some(r) => {
                    map.insert(id, r);
                }
                None => {
                    map.remove(&id);
                }
            }
            map.len()
        };
        metrics::unreadable(n);
    }
}

struct Held {
    lease: Lease,
    cancel: CancellationToken,
    lost: bool,
}

/// The runner loop's own state.
struct Loop {
    held: HashMap<DeviceId, Held>,
    pending: HashMap<DeviceId, ClaimedDevice>,
    actors: JoinSet<(DeviceId, Exit)>,
    tasks: HashMap<tokio::task::Id, DeviceId>,
    /// Devices this instance must not claim until the given time.
    skip: HashMap<DeviceId, Instant>,
    /// When each claimed session may log in again.
    pacer: Pacer,
    /// The live sessions offered to the application.
    live: LiveSessions,
    summary: RunSummary,
}

impl Runner {
    /// A runner over `stores` reaching WhatsApp through `connector`. Every session it opens
    /// gets the stores' auth state with its [`SessionSpec`](crate::SessionSpec), the same
    /// state the runner wipes after a logout or an unlink.
    pub fn new(
        stores: Stores,
        connector: Arc<dyn Connector>,
        config: RunnerConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            stores,
            connector,
            config,
            status: RunnerStatus::default(),
            live: LiveSessions::default(),
        })
    }

    /// The sessions this instance holds live, for the embedding application: look one up by
    /// device id, list them, subscribe to sessions coming and going. Valid before, during
    /// and after [`run`](Self::run); a handle works only while this instance holds the
    /// device's lease and its session is up.
    pub fn sessions(&self) -> LiveSessions {
        self.live.clone()
    }

    /// A live view of this runner (sessions held, devices it cannot open), valid before, during
    /// and after [`run`](Self::run).
    pub fn status(&self) -> RunnerStatus {
        self.status.clone()
    }

    /// Runs until `shutdown` completes, then closes every session and releases every lease.
    ///
    /// # Behavior
    /// - One claim per tick for all work, and at once (within milliseconds) when the store
    ///   pushes a change; the tick remains as a safety sweep. A claim takes at most
    ///   [`RunnerConfig::claim_batch`] devices, and a full batch is followed at once by the
    ///   next claim, so a burst spreads over the instances that share the store.
    /// - Sessions to log in again (after a restart, or taken over from a dead instance) are
    ///   paced: they start at most [`RunnerConfig::resume_rate`] per second, with jitter, the
    ///   longest-waiting lease first, and a claim takes only those whose turn comes within
    ///   twice the claim interval (never more than a lease period), leaving the rest to other
    ///   instances. Pairings and unlinks are never paced and are claimed first; lease
    ///   renewals are never delayed by waiting sessions (their leases are renewed meanwhile).
    /// - One actor per claimed device; leases are renewed every heartbeat, and an actor whose
    ///   lease is lost (to another instance, or revoked by an owner action) stops at once,
    ///   without writing again.
    /// - When leases cannot be renewed for nearly a lease period, every session stops, so no
    ///   other instance ever finds a second socket open for one account.
    /// - Store failures are logged and retried on the next tick; they never end the run.
    /// - A device whose auth state this instance cannot open (sealed with a key it does not
    ///   have) is left exactly as it is: its lease is released, it is not claimed here again
    ///   for [`RunnerConfig::unreadable_retry`], and it is counted in
    ///   [`RunnerStatus::unreadable_devices`], so an instance with the right keys takes it.
    /// - An actor that panics ends like any other: its lease is no longer renewed and lapses
    ///   (its socket may still be closing), it is counted in [`RunSummary::panicked`], and
    ///   this instance leaves the device to others for [`RunnerConfig::unreadable_retry`].
    /// - At shutdown every session closes at once, and each lease is released as soon as its
    ///   session has closed; until then it is still renewed. A session that has not closed
    ///   within [`RunnerConfig::shutdown_grace`] is abandoned and its lease left to lapse
    ///   (counted in [`RunSummary::abandoned`]), so its account is never opened twice.
    pub async fn run<S>(self, shutdown: S) -> RunSummary
    where
        S: Future<Output = ()> + Send,
    {
        let span = info_span!("runner", instance = %self.config.instance_id);
        self.run_inner(shutdown).instrument(span).await
    }

    #[allow(clippy::too_many_lines)]
    async fn run_inner<S>(self, shutdown: S) -> RunSummary
    where
        S: Future<Output = ()> + Send,
    {
        let config = self.config.clone();
        let ctx = Arc::new(Ctx {
            stores: self.stores.clone(),
            connector: Arc::clone(&self.connector),
            config: config.clone(),
            live: self.live.clone(),
        });
        let store = Arc::clone(self.stores.devices());
        let status = self.status.clone();
        let root = CancellationToken::new();
        let mut st = Loop {
            held: HashMap::new(),
            pending: HashMap::new(),
            actors: JoinSet::new(),
            tasks: HashMap::new(),
            skip: HashMap::new(),
            pacer: Pacer::new(
                config.resume_rate,
                config.resume_jitter,
                config.resume_horizon(),
            ),
            live: self.live.clone(),
            summary: RunSummary::default(),
        };

        let mut feed: Option<ChangeStream> = match store.subscribe().await {
            Ok(feed) => feed,
            Err(e) => {
                warn!(error = %e, "change feed unavailable; polling only");
                None
            }
        };
        status.0.running.store(true, Ordering::SeqCst);
        info!(change_feed = feed.is_some(), "runner started");

        let mut claim_tick = tokio::time::interval(config.claim_interval);
        claim_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let mut heartbeat = tokio::time::interval(config.heartbeat);
        heartbeat.set_missed_tick_behavior(MissedTickBehavior::Delay);
        heartbeat.reset();
        let mut last_renewed = Instant::now();
        let mut claim_at: Option<Instant> = None;
        tokio::pin!(shutdown);

        loop {
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                // Renewals come before everything else: a busy change feed must never delay
                // them until a lease lapses while its socket is still open.
                _ = heartbeat.tick() => {
                    renew(&*store, &config, &mut st.held, &mut last_renewed).await;
                }
                Some(joined) = st.actors.join_next_with_id(), if !st.actors.is_empty() => {
                    let Some((id, exit)) = st.joined(joined, &config, &status) else { continue };
                    ended(&*store, &mut st, id, &exit).await;
                    // A device reclaimed while its old actor was still closing starts now.
                    if let Some(next) = st.pending.remove(&id) {
                        spawn(&ctx, &root, &mut st, next);
                    }
                    publish_held(&status, st.held.len());
                    claim_at.get_or_insert_with(|| Instant::now() + COALESCE);
                }
                () = sleep_until_opt(claim_at) => {
                    claim_at = None;
                    let n = claim(&store, &ctx, &root, &mut st, &status).await;
                    st.summary.claimed += n;
                    if n >= config.claim_batch as u64 {
                        claim_at = Some(Instant::now() + COALESCE);
                    }
                }
                _ = claim_tick.tick() => {
                    let n = claim(&store, &ctx, &root, &mut st, &status).await;
                    st.summary.claimed += n;
                    if n >= config.claim_batch as u64 {
                        claim_at.get_or_insert_with(|| Instant::now() + COALESCE);
                    }
                }
                change = next_change(&mut feed) => match change {
                    Some(Change::Device(id)) if st.held.contains_key(&id) => {
                        check_held(&*store, &config.instance_id, &mut st.held, id).await;
                    }
                    Some(_) => {
                        claim_at.get_or_insert_with(|| Instant::now() + COALESCE);
                    }
                    None => {
                        warn!("change feed ended; polling only");
                        feed = None;
                    }
                },
            }
        }

        info!(sessions = st.held.len(), "shutting down");
        root.cancel();
        // Sessions close concurrently; until each has, its lease is still renewed, so no other
        // instance can claim the account while this one's socket is open.
        let grace = tokio::time::sleep(config.shutdown_grace);
        tokio::pin!(grace);
        while !st.actors.is_empty() {
            tokio::select! {
                biased;
                Some(joined) = st.actors.join_next_with_id() => {
                    if let Some((id, exit)) = st.joined(joined, &config, &status) {
                        ended(&*store, &mut st, id, &exit).await;
                    }
                }
                _ = heartbeat.tick() => {
                    renew(&*store, &config, &mut st.held, &mut last_renewed).await;
                }
                () = &mut grace => {
                    warn!(
                        left = st.actors.len(),
                        "sessions did not close in time; abandoning them and leaving their leases to lapse"
                    );
                    st.actors.shutdown().await;
                }
            }
        }
        // What is left was abandoned: its socket may still be open, so its lease is not
        // released but left to lapse (one lease period), as after a crash.
        let mut summary = st.summary;
        summary.abandoned = st.held.len() as u64;
        for (id, c) in st.pending.drain() {
            if !st.held.contains_key(&id) && release(&*store, &c.lease).await {
                summary.released += 1;
            }
        }
        publish_held(&status, 0);
        status.0.running.store(false, Ordering::SeqCst);
        info!(?summary, "runner stopped");
        summary
    }
}

impl Loop {
    /// Takes a finished actor's result: its device and how it ended. A panic (a bug) ends the
    /// device like any other exit, but its lease is left to lapse and this instance leaves the
    /// device to others for a while. Returns the device whose lease to settle, if any.
    fn joined(
        &mut self,
        joined: Result<(tokio::task::Id, (DeviceId, Exit)), tokio::task::JoinError>,
        config: &RunnerConfig,
        status: &RunnerStatus,
    ) -> Option<(DeviceId, Exit)> {
        let (id, exit) = match joined {
            Ok((task, (id, exit))) => {
                self.tasks.remove(&task);
                (id, exit)
            }
            Err(e) => {
                let id = self.tasks.remove(&e.id())?;
                if e.is_panic() {
                    // The payload is not logged: a panic message may carry anything.
                    error!(device = %id, "a device's actor panicked; its lease is left to lapse");
                    metrics::actor_panicked();
                    self.summary.panicked += 1;
                    (id, Exit::Panicked)
                } else {
                    (id, Exit::Stopped)
                }
            }
        };
        match &exit {
            Exit::Unreadable(reason) => {
                status.set_unreadable(id, Some(reason.clone()));
                self.skip
                    .insert(id, Instant::now() + config.unreadable_retry);
            }
            Exit::Panicked => {
                self.skip
                    .insert(id, Instant::now() + config.unreadable_retry);
            }
            _ => status.set_unreadable(id, None),
        }
        Some((id, exit))
    }
}

/// Renews every held lease; stops the sessions whose leases were lost, and every session when
/// renewals have failed for nearly a lease period.
async fn renew(
    store: &dyn DeviceStore,
    config: &RunnerConfig,
    held: &mut HashMap<DeviceId, Held>,
    last_renewed: &mut Instant,
) {
    let leases: Vec<Lease> = held
        .values()
        .filter(|h| !h.lost)
        .map(|h| h.lease.clone())
        .collect();
    if leases.is_empty() {
        *last_renewed = Instant::now();
        return;
    }
    let since = last_renewed.elapsed();
    if since > config.heartbeat * 2 {
        warn!(
            since_ms = u64::try_from(since.as_millis()).unwrap_or(u64::MAX),
            lease_ms = u64::try_from(config.lease_for.as_millis()).unwrap_or(u64::MAX),
            "lease renewal is late: this process is overloaded, and leases lapse (to other instances) once it is later than the lease length"
        );
    }
    let started = Instant::now();
    match store
        .renew(&config.instance_id, &leases, config.lease_for)
        .await
    {
        Ok(kept) => {
            metrics::renew_latency(started.elapsed());
            *last_renewed = Instant::now();
            let kept: std::collections::HashSet<DeviceId> =
                kept.iter().map(|l| l.device_id).collect();
            let gone: Vec<DeviceId> = held
                .iter()
                .filter(|(id, h)| !h.lost && !kept.contains(id))
                .map(|(id, _)| *id)
                .collect();
            for id in gone {
                // An owner's action (refresh, disconnect, unlink, delete) also ends a lease:
                // the device tells which it was.
                let reason = why_gone(store, &config.instance_id, id).await;
                if let Some(h) = held.get_mut(&id) {
                    info!(device = %id, reason = reason.label(), "lease ended; stopping its session");
                    lose(h, reason);
                }
            }
        }
        Err(e) => {
            warn!(error = %e, "lease renewal failed");
            if last_renewed.elapsed() + config.heartbeat >= config.lease_for {
                warn!("leases may lapse before the next renewal; stopping every session");
                for h in held.values_mut() {
                    lose(h, StopReason::RenewalFailed);
                }
            }
        }
    }
}

/// An actor ended: its lease is released unless it was lost, or left to lapse when its
/// actor panicked (a socket may still be closing).
async fn ended(store: &dyn DeviceStore, st: &mut Loop, id: DeviceId, exit: &Exit) {
    let Some(h) = st.held.remove(&id) else { return };
    // The application hears of it (the handle itself stopped working when the lease was
    // lost or the session ended).
    if h.lost || *exit == Exit::LeaseLost {
        st.live.lost(id);
    } else {
        st.live.closed(id, h.lease.fence);
    }
    match exit {
        Exit::Panicked => {}
        Exit::LeaseLost => st.summary.leases_lost += 1,
        _ if h.lost => st.summary.leases_lost += 1,
        _ => {
            if release(store, &h.lease).await {
                st.summary.released += 1;
            }
        }
    }
}

fn publish_held(status: &RunnerStatus, n: usize) {
    status.0.held.store(n, Ordering::SeqCst);
    metrics::leases(n);
}

fn lose(h: &mut Held, reason: StopReason) {
    if !h.lost {
        h.lost = true;
        metrics::session_stopped(reason);
        h.cancel.cancel();
    }
}

/// Why a lease this instance renewed is no longer its own, read from the device.
async fn why_gone(store: &dyn DeviceStore, instance: &str, id: DeviceId) -> StopReason {
    match store.get(id).await {
        Ok(d) => revoked_or_taken(&d, instance),
        Err(e) if e.is_not_found() => StopReason::Deleted,
        // Unknown: counted as lost, the side an alert should err on.
        Err(_) => StopReason::TakenOver,
    }
}

/// A device whose lease is not this instance's any more: held by another instance (taken
/// over), or by nobody (an owner's action released it).
fn revoked_or_taken(device: &Device, instance: &str) -> StopReason {
    match device.lease_owner.as_deref() {
        Some(owner) if owner != instance => StopReason::TakenOver,
        _ => StopReason::OwnerAction,
    }
}

async fn release(store: &dyn DeviceStore, lease: &Lease) -> bool {
    match store.release(lease).await {
        Ok(released) => released,
        Err(e) => {
            warn!(device = %lease.device_id, error = %e, "release failed; the lease will lapse");
            false
        }
    }
}

/// Checks whether a held device's lease is still ours after a pushed change (the owner may
/// have revoked it).
async fn check_held(
    store: &dyn DeviceStore,
    instance: &str,
    held: &mut HashMap<DeviceId, Held>,
    id: DeviceId,
) {
    let Some(h) = held.get_mut(&id) else {
        return;
    };
    match store.get(id).await {
        Ok(d) if d.lease_fence == h.lease.fence && d.lease_owner.as_deref() == Some(instance) => {}
        Ok(d) => {
            let reason = revoked_or_taken(&d, instance);
            info!(device = %id, reason = reason.label(), "lease ended; stopping its session");
            lose(h, reason);
        }
        Err(e) if e.is_not_found() => lose(h, StopReason::Deleted),
        Err(e) => debug!(device = %id, error = %e, "could not check a changed device"),
    }
}

async fn claim(
    store: &Arc<dyn DeviceStore>,
    ctx: &Arc<Ctx>,
    root: &CancellationToken,
    st: &mut Loop,
    status: &RunnerStatus,
) -> u64 {
    let room = ctx
        .config
        .max_sessions
        .saturating_sub(st.held.len())
        .min(ctx.config.claim_batch);
    if room == 0 {
        return 0;
    }
    let now = Instant::now();
    st.skip.retain(|_, until| *until > now);
    // Pairings take the whole room; sessions to log in again only the turns left within the
    // pacer's horizon, so the rest stay with the store for other instances.
    let request = ClaimRequest::new(&ctx.config.instance_id, room, ctx.config.lease_for)
        .skip(st.skip.keys().copied())
        .resume_limit(st.pacer.room(now));
    let started = Instant::now();
    let claimed = match store.claim(&request).await {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "claim failed; retrying on the next tick");
            return 0;
        }
    };
    metrics::claim_latency(started.elapsed());
    let n = claimed.len() as u64;
    for c in claimed {
        match st.held.get_mut(&c.device.id) {
            // Our own lease lapsed and we claimed the device again: the old actor must close
            // its socket before a new one opens, never two sockets for one account.
            Some(old) => {
                lose(old, StopReason::Lapsed);
                st.pending.insert(c.device.id, c);
            }
            None => spawn(ctx, root, st, c),
        }
    }
    if n > 0 {
        debug!(claimed = n, held = st.held.len(), "claimed work");
        publish_held(status, st.held.len());
    }
    n
}

/// Starts `c`'s actor. A session to log in again gets its turn from the pacer; a pairing or
/// unlink starts at once.
fn spawn(ctx: &Arc<Ctx>, root: &CancellationToken, st: &mut Loop, c: ClaimedDevice) {
    let id = c.device.id;
    let turn = (c.device.status == DeviceStatus::Connected).then(|| st.pacer.slot(Instant::now()));
    let cancel = root.child_token();
    st.held.insert(
        id,
        Held {
            lease: c.lease.clone(),
            cancel: cancel.clone(),
            lost: false,
        },
    );
    let ctx = Arc::clone(ctx);
    let handle = st
        .actors
        .spawn(async move { (id, actor::run(ctx, c, cancel, turn).await) });
    st.tasks.insert(handle.id(), id);
}

async fn next_change(feed: &mut Option<ChangeStream>) -> Option<Change> {
    match feed {
        Some(f) => f.next().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until_opt(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
