//! The runner: claims work, runs one actor per device, keeps leases alive.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use futures::StreamExt as _;
use tokio::task::JoinSet;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};
use wa_pairing_phone::PhoneParser;
use wa_pairing_store::{
    AuthStateStore, Change, ChangeStream, ClaimedDevice, CodeCache, DeviceId, DeviceStore, Lease,
    PairingBudget,
};

use crate::actor::{self, Ctx, Exit};
use crate::config::{ConfigError, RunnerConfig};
use crate::connector::Connector;
use crate::metrics;

/// How long to gather pushed changes before one claim serves them all.
const COALESCE: std::time::Duration = std::time::Duration::from_millis(5);

/// The session runner.
///
/// Build it from a device store and a connector, add the optional parts, then
/// [`run`](Self::run) it until a shutdown signal.
///
/// ```no_run
/// use std::sync::Arc;
/// use wa_pairing_runner::{Connector, Runner, RunnerConfig};
/// use wa_pairing_store::MemoryStore;
///
/// # async fn demo(connector: Arc<dyn Connector>) -> Result<(), Box<dyn std::error::Error>> {
/// let store = Arc::new(MemoryStore::new());
/// let runner = Runner::new(store.clone(), connector, RunnerConfig::default())?
///     .with_code_cache(store.clone())
///     .with_auth_state(store);
/// let summary = runner.run(async { tokio::signal::ctrl_c().await.ok(); }).await;
/// println!("claimed {} devices", summary.claimed);
/// # Ok(())
/// # }
/// ```
pub struct Runner {
    store: Arc<dyn DeviceStore>,
    connector: Arc<dyn Connector>,
    cache: Option<Arc<dyn CodeCache>>,
    budget: Option<Arc<dyn PairingBudget>>,
    auth: Option<Arc<dyn AuthStateStore>>,
    config: RunnerConfig,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("instance_id", &self.config.instance_id)
            .field("cache", &self.cache.is_some())
            .field("budget", &self.budget.is_some())
            .field("auth", &self.auth.is_some())
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
}

struct Held {
    lease: Lease,
    cancel: CancellationToken,
    lost: bool,
}

impl Runner {
    /// A runner over `store` reaching WhatsApp through `connector`.
    pub fn new(
        store: Arc<dyn DeviceStore>,
        connector: Arc<dyn Connector>,
        config: RunnerConfig,
    ) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            store,
            connector,
            cache: None,
            budget: None,
            auth: None,
            config,
        })
    }

    /// Also caches each code (Redis); cache failures are only logged.
    #[must_use]
    pub fn with_code_cache(mut self, cache: Arc<dyn CodeCache>) -> Self {
        self.cache = Some(cache);
        self
    }

    /// Asks this budget before every code request.
    #[must_use]
    pub fn with_budget(mut self, budget: Arc<dyn PairingBudget>) -> Self {
        self.budget = Some(budget);
        self
    }

    /// Wipes a device's auth state here when it is logged out.
    #[must_use]
    pub fn with_auth_state(mut self, auth: Arc<dyn AuthStateStore>) -> Self {
        self.auth = Some(auth);
        self
    }

    /// Runs until `shutdown` completes, then closes every session and releases every lease.
    ///
    /// # Behavior
    /// - One claim per tick for all work, and at once (within milliseconds) when the store
    ///   pushes a change; the tick remains as a safety sweep. A claim takes at most
    ///   [`RunnerConfig::claim_batch`] devices, and a full batch is followed at once by the
    ///   next claim, so a burst spreads over the instances that share the store.
    /// - One actor per claimed device; leases are renewed every heartbeat, and an actor whose
    ///   lease is lost (to another instance, or revoked by an owner action) stops at once,
    ///   without writing again.
    /// - When leases cannot be renewed for nearly a lease period, every session stops, so no
    ///   other instance ever finds a second socket open for one account.
    /// - Store failures are logged and retried on the next tick; they never end the run.
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
            store: Arc::clone(&self.store),
            cache: self.cache.clone(),
            budget: self.budget.clone(),
            auth: self.auth.clone(),
            connector: Arc::clone(&self.connector),
            parser: PhoneParser::new(config.default_region),
            config: config.clone(),
        });
        let store = self.store;
        let root = CancellationToken::new();
        let mut held: HashMap<DeviceId, Held> = HashMap::new();
        let mut pending: HashMap<DeviceId, ClaimedDevice> = HashMap::new();
        let mut actors: JoinSet<(DeviceId, Exit)> = JoinSet::new();
        let mut summary = RunSummary::default();

        let mut feed: Option<ChangeStream> = match store.subscribe().await {
            Ok(feed) => feed,
            Err(e) => {
                warn!(error = %e, "change feed unavailable; polling only");
                None
            }
        };
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
                    renew(&*store, &config, &mut held, &mut last_renewed).await;
                }
                Some(joined) = actors.join_next(), if !actors.is_empty() => {
                    let Ok((id, exit)) = joined else { continue };
                    ended(&*store, &mut held, &mut summary, id, exit).await;
                    // A device reclaimed while its old actor was still closing starts now.
                    if let Some(next) = pending.remove(&id) {
                        spawn(&ctx, &root, &mut held, &mut actors, next);
                    }
                    metrics::leases(held.len());
                    claim_at.get_or_insert_with(|| Instant::now() + COALESCE);
                }
                () = sleep_until_opt(claim_at) => {
                    claim_at = None;
                    let n = claim(&store, &ctx, &root, &mut held, &mut pending, &mut actors).await;
                    summary.claimed += n;
                    if n >= config.claim_batch as u64 {
                        claim_at = Some(Instant::now() + COALESCE);
                    }
                }
                _ = claim_tick.tick() => {
                    let n = claim(&store, &ctx, &root, &mut held, &mut pending, &mut actors).await;
                    summary.claimed += n;
                    if n >= config.claim_batch as u64 {
                        claim_at.get_or_insert_with(|| Instant::now() + COALESCE);
                    }
                }
                change = next_change(&mut feed) => match change {
                    Some(Change::Device(id)) if held.contains_key(&id) => {
                        check_held(&*store, &config.instance_id, &mut held, id).await;
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

        info!(sessions = held.len(), "shutting down");
        root.cancel();
        // Sessions close concurrently; until each has, its lease is still renewed, so no other
        // instance can claim the account while this one's socket is open.
        let grace = tokio::time::sleep(config.shutdown_grace);
        tokio::pin!(grace);
        while !actors.is_empty() {
            tokio::select! {
                biased;
                Some(joined) = actors.join_next() => {
                    let Ok((id, exit)) = joined else { continue };
                    ended(&*store, &mut held, &mut summary, id, exit).await;
                }
                _ = heartbeat.tick() => {
                    renew(&*store, &config, &mut held, &mut last_renewed).await;
                }
                () = &mut grace => {
                    warn!(
                        left = actors.len(),
                        "sessions did not close in time; abandoning them and leaving their leases to lapse"
                    );
                    actors.shutdown().await;
                }
            }
        }
        // What is left was abandoned: its socket may still be open, so its lease is not
        // released but left to lapse (one lease period), as after a crash.
        summary.abandoned = held.len() as u64;
        for (id, c) in pending.drain() {
            if !held.contains_key(&id) && release(&*store, &c.lease).await {
                summary.released += 1;
            }
        }
        metrics::leases(0);
        info!(?summary, "runner stopped");
        summary
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
    match store
        .renew(&config.instance_id, &leases, config.lease_for)
        .await
    {
        Ok(kept) => {
            *last_renewed = Instant::now();
            let kept: std::collections::HashSet<DeviceId> =
                kept.iter().map(|l| l.device_id).collect();
            for (id, h) in held.iter_mut() {
                if !h.lost && !kept.contains(id) {
                    info!(device = %id, "lease lost; stopping its session");
                    lose(h);
                }
            }
        }
        Err(e) => {
            warn!(error = %e, "lease renewal failed");
            if last_renewed.elapsed() + config.heartbeat >= config.lease_for {
                warn!("leases may lapse before the next renewal; stopping every session");
                for h in held.values_mut() {
                    lose(h);
                }
            }
        }
    }
}

/// An actor ended: its lease is released unless it was lost.
async fn ended(
    store: &dyn DeviceStore,
    held: &mut HashMap<DeviceId, Held>,
    summary: &mut RunSummary,
    id: DeviceId,
    exit: Exit,
) {
    let Some(h) = held.remove(&id) else { return };
    if exit == Exit::LeaseLost || h.lost {
        summary.leases_lost += 1;
    } else if release(store, &h.lease).await {
        summary.released += 1;
    }
}

fn lose(h: &mut Held) {
    if !h.lost {
        h.lost = true;
        metrics::lease_lost();
        h.cancel.cancel();
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
        Ok(_) => {
            info!(device = %id, "lease revoked; stopping its session");
            lose(h);
        }
        Err(e) if e.is_not_found() => lose(h),
        Err(e) => debug!(device = %id, error = %e, "could not check a changed device"),
    }
}

async fn claim(
    store: &Arc<dyn DeviceStore>,
    ctx: &Arc<Ctx>,
    root: &CancellationToken,
    held: &mut HashMap<DeviceId, Held>,
    pending: &mut HashMap<DeviceId, ClaimedDevice>,
    actors: &mut JoinSet<(DeviceId, Exit)>,
) -> u64 {
    let room = ctx
        .config
        .max_sessions
        .saturating_sub(held.len())
        .min(ctx.config.claim_batch);
    if room == 0 {
        return 0;
    }
    let started = Instant::now();
    let claimed = match store
        .claim(&ctx.config.instance_id, room, ctx.config.lease_for)
        .await
    {
        Ok(c) => c,
        Err(e) => {
            warn!(error = %e, "claim failed; retrying on the next tick");
            return 0;
        }
    };
    metrics::claim_latency(started.elapsed());
    let n = claimed.len() as u64;
    for c in claimed {
        match held.get_mut(&c.device.id) {
            // Our own lease lapsed and we claimed the device again: the old actor must close
            // its socket before a new one opens, never two sockets for one account.
            Some(old) => {
                lose(old);
                pending.insert(c.device.id, c);
            }
            None => spawn(ctx, root, held, actors, c),
        }
    }
    if n > 0 {
        debug!(claimed = n, held = held.len(), "claimed work");
        metrics::leases(held.len());
    }
    n
}

fn spawn(
    ctx: &Arc<Ctx>,
    root: &CancellationToken,
    held: &mut HashMap<DeviceId, Held>,
    actors: &mut JoinSet<(DeviceId, Exit)>,
    c: ClaimedDevice,
) {
    let id = c.device.id;
    let cancel = root.child_token();
    held.insert(
        id,
        Held {
            lease: c.lease.clone(),
            cancel: cancel.clone(),
            lost: false,
        },
    );
    let ctx = Arc::clone(ctx);
    actors.spawn(async move { (id, actor::run(ctx, c, cancel).await) });
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
