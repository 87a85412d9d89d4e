//! The PostgreSQL store.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use futures::StreamExt as _;
use tokio::sync::{OnceCell, broadcast};
use tokio_postgres::{AsyncMessage, Row};
use tracing::{debug, info, warn};
use wa_pairing_code::PairingCode;
use wa_pairing_sql::{DEVICE_COLUMNS, update_patch};
use wa_pairing_store::{
    AuthStateStore, BudgetConfig, BudgetDecision, BudgetKey, BudgetSecret, Capabilities, Change,
    ChangeStream, ClaimRequest, ClaimedDevice, CompanionKey, ConnectionMethod, Device, DeviceId,
    DeviceStatus, DeviceStore, DeviceUpdate, Entry, ErrorKind, Fence, Lease, NewDevice,
    PairingBudget, PairingRequest, StoreError, StoreResult, Stores, StoresBuilder, UserId,
    check_key, validate_device_name,
};

use crate::classify::{from_pg, from_pool, timed_out};
use crate::config::{PoolMode, PostgresConfig};
use crate::migrations;
use crate::params::{Typed, p};
use crate::tls::{PgTls, PoolConnect};

/// The change-feed channel the migrations' trigger notifies.
pub const CHANNEL: &str = "wa_device_changes";

/// Devices and auth state in PostgreSQL, through the SQL functions of the migrations (the
/// same functions the Supabase backend calls), with a change feed over LISTEN/NOTIFY.
///
/// Cheap to clone: clones share the pool and the listener.
///
/// ```no_run
/// use wa_pairing_postgres::{PostgresConfig, PostgresStore};
/// use wa_pairing_store::{DeviceStore, NewDevice, UserId};
///
/// # async fn demo() -> Result<(), wa_pairing_store::StoreError> {
/// let store = PostgresConfig::from_env()?.connect().await?;
/// store.migrate().await?;
/// let device = store.create(NewDevice::new(UserId::random(), "Shop phone")).await?;
/// # let _ = device;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

struct Inner {
    pool: Pool,
    pg: tokio_postgres::Config,
    mode: PoolMode,
    tls: PgTls,
    timeout: Duration,
    feed: OnceCell<broadcast::Sender<Change>>,
    stop: tokio_util::sync::CancellationToken,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl std::fmt::Debug for PostgresStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let status = self.inner.pool.status();
        f.debug_struct("PostgresStore")
            .field("pool_size", &status.max_size)
            .field("connections", &status.size)
            .field("sslmode", &self.inner.tls.mode())
            .finish_non_exhaustive()
    }
}

fn device(row: &Row) -> StoreResult<Device> {
    let corrupt = |what: &str| {
        StoreError::new(
            ErrorKind::Corrupt,
            format!("a devices row has an unreadable {what}: check the row or the migrations"),
        )
    };
    let status: String = row.try_get("status").map_err(|_| corrupt("status"))?;
    let method: String = row
        .try_get("connection_method")
        .map_err(|_| corrupt("connection_method"))?;
    let code: Option<String> = row
        .try_get("pairing_code")
        .map_err(|_| corrupt("pairing_code"))?;
    let mut d = Device::new_unchecked(
        DeviceId(row.try_get("id").map_err(|_| corrupt("id"))?),
        UserId(row.try_get("user_id").map_err(|_| corrupt("user_id"))?),
        row.try_get("device_name")
            .map_err(|_| corrupt("device_name"))?,
        status.parse::<DeviceStatus>()?,
        row.try_get("created_at")
            .map_err(|_| corrupt("created_at"))?,
    );
    d.connection_method = method
        .parse::<ConnectionMethod>()
        .map_err(|_| corrupt("connection_method"))?;
    let phone = |column: &str| -> StoreResult<_> {
        let text: Option<String> = row.try_get(column).map_err(|_| corrupt(column))?;
        Ok(text.as_deref().and_then(Device::stored_phone))
    };
    d.phone_for_pairing = phone("phone_for_pairing")?;
    d.phone_number = phone("phone_number")?;
    // Rows written by older software may hold codes in other shapes: not a live code then.
    d.pairing_code = code.and_then(|c| PairingCode::parse(&c).ok());
    d.pairing_code_expires_at = row
        .try_get("pairing_code_expires_at")
        .map_err(|_| corrupt("pairing_code_expires_at"))?;
    d.qr_code = row.try_get("qr_code").map_err(|_| corrupt("qr_code"))?;
    d.error_message = row
        .try_get("error_message")
        .map_err(|_| corrupt("error_message"))?;
    d.retry_after = row
        .try_get("retry_after")
        .map_err(|_| corrupt("retry_after"))?;
    d.last_connected_at = row
        .try_get("last_connected_at")
        .map_err(|_| corrupt("last_connected_at"))?;
    d.lease_owner = row
        .try_get("lease_owner")
        .map_err(|_| corrupt("lease_owner"))?;
    d.lease_expires_at = row
        .try_get("lease_expires_at")
        .map_err(|_| corrupt("lease_expires_at"))?;
    d.lease_fence = Fence(
        row.try_get("lease_fence")
            .map_err(|_| corrupt("lease_fence"))?,
    );
    d.updated_at = row
        .try_get("updated_at")
        .map_err(|_| corrupt("updated_at"))?;
    Ok(d)
}

impl PostgresStore {
    /// The store for `config`, with no connection yet: connections open on first use, so
    /// this works before the database is up. [`PostgresConfig::connect`] also checks that the
    /// database answers. The same as [`PostgresConfig::build`].
    ///
    /// # Errors
    ///
    /// `Configuration`, saying what to write, when the configuration is refused
    /// ([`PostgresConfig::validate`]).
    pub fn new(config: &PostgresConfig) -> StoreResult<Self> {
        config.validate()?;
        let (pg, tls) = config.pg()?;
        let mode = config.effective_pool_mode()?;
        if !mode.has_change_feed() {
            info!(
                pool_mode = mode.as_str(),
                "PostgreSQL through a transaction pooler: no change feed, runners poll for work"
            );
        }
        let manager = Manager::from_connect(
            pg.clone(),
            PoolConnect(tls.clone()),
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(config.pool_size)
            .wait_timeout(Some(config.operation_timeout))
            .create_timeout(Some(config.connect_timeout))
            .runtime(Runtime::Tokio1)
            .build()
            .map_err(|_| {
                StoreError::new(
                    ErrorKind::Configuration,
                    "the PostgreSQL pool could not be built",
                )
            })?;
        Ok(Self {
            inner: Arc::new(Inner {
                pool,
                pg,
                mode,
                tls,
                timeout: config.operation_timeout,
                feed: OnceCell::new(),
                stop: tokio_util::sync::CancellationToken::new(),
            }),
        })
    }

    /// Every store of this backend as [`Stores`]: devices, auth state (deleted with its
    /// device) and the durable budget floor (its keys made with the database's own budget
    /// secret, [`BudgetSecret`]), with the change feed unless connections go
    /// through a transaction pooler ([`PoolMode`]). Add a code cache (Redis)
    /// and keys ([`StoresBuilder::encrypt`]) before [`build`](StoresBuilder::build).
    pub fn stores(&self) -> StoresBuilder {
        Stores::backend(self.clone())
            .budget(self.clone())
            .budget_secret(self.clone())
    }

    /// Applies the embedded migrations (`supabase/migrations/`) that are not applied yet, in
    /// order, each in its own transaction, under an advisory lock, so concurrent calls are
    /// safe and a second call does nothing.
    pub async fn migrate(&self) -> StoreResult<usize> {
        let mut client = self.inner.pool.get().await.map_err(|e| from_pool(&e))?;
        migrations::apply(&mut client).await
    }

    /// One round trip (`select 1`) within the operation timeout: `Ok` when the database
    /// answers. Credentials or TLS refused are permanent errors that say what to change; an
    /// outage is a retryable one.
    pub async fn ping(&self) -> StoreResult<()> {
        self.rows("ping", "select 1", &[]).await.map(drop)
    }

    pub(crate) async fn rows(
        &self,
        op: &'static str,
        sql: &str,
        params: &[Typed<'_>],
    ) -> StoreResult<Vec<Row>> {
        let work = async {
            let client = self.inner.pool.get().await.map_err(|e| from_pool(&e))?;
            client
                .query_typed(sql, params)
                .await
                .map_err(|e| from_pg(&e))
        };
        tokio::time::timeout(self.inner.timeout, work)
            .await
            .map_err(|_| timed_out(op))?
    }

    async fn one_device(
        &self,
        op: &'static str,
        sql: &str,
        params: &[Typed<'_>],
    ) -> StoreResult<Device> {
        let rows = self.rows(op, sql, params).await?;
        rows.first()
            .map_or_else(|| Err(StoreError::not_found("the device")), device)
    }

    async fn listener(&self) -> broadcast::Sender<Change> {
        self.inner
            .feed
            .get_or_init(|| async {
                let (tx, _) = broadcast::channel(4096);
                tokio::spawn(listen(
                    self.inner.pg.clone(),
                    self.inner.tls.clone(),
                    tx.clone(),
                    self.inner.stop.clone(),
                ));
                tx
            })
            .await
            .clone()
    }
}

/// Keeps a LISTEN connection open, reconnecting with backoff; announces a resync after every
/// (re)connection so subscribers sweep for what they missed.
async fn listen(
    pg: tokio_postgres::Config,
    tls: PgTls,
    tx: broadcast::Sender<Change>,
    stop: tokio_util::sync::CancellationToken,
) {
    let mut backoff = FIRST_BACKOFF;
    loop {
        let attempt = async {
            let (client, mut connection) = tls.connect(&pg).await?;
            let (msgs_tx, mut msgs) = tokio::sync::mpsc::unbounded_channel();
            let driver = tokio::spawn(async move {
                let mut stream = futures::stream::poll_fn(move |cx| connection.poll_message(cx));
                while let Some(msg) = stream.next().await {
                    match msg {
                        Ok(AsyncMessage::Notification(n)) => {
                            let _ = msgs_tx.send(n.payload().to_owned());
                        }
                        Ok(_) => {}
                        Err(_) => break,
                    }
                }
            });
            client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
            let _ = tx.send(Change::Resync);
            while let Some(payload) = msgs.recv().await {
                if let Ok(id) = payload.parse::<uuid::Uuid>() {
                    let _ = tx.send(Change::Device(DeviceId(id)));
                }
            }
            driver.abort();
            drop(client);
            Ok::<(), tokio_postgres::Error>(())
        };
        // Ok: the feed was listening and its connection ended (a restart, a cut); Err: it
        // could not connect or LISTEN.
        let listened = tokio::select! {
            () = stop.cancelled() => return,
            r = attempt => match r {
                Ok(()) => {
                    debug!("change feed connection closed; reconnecting");
                    true
                }
                Err(e) => {
                    warn!(error = %from_pg(&e), "change feed connection failed; reconnecting");
                    false
                }
            },
        };
        backoff = next_backoff(backoff, listened);
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(backoff) => {}
        }
    }
}

const FIRST_BACKOFF: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The wait before the next reconnection: back to the first step after a connection that
/// worked (so a drop after hours of listening is retried at once, not after 30 s), doubling
/// up to 30 s while connecting keeps failing.
fn next_backoff(previous: Duration, listened: bool) -> Duration {
    if listened {
        FIRST_BACKOFF
    } else {
        (previous * 2).min(MAX_BACKOFF)
    }
}

#[async_trait]
impl DeviceStore for PostgresStore {
    async fn create(&self, new: NewDevice) -> StoreResult<Device> {
        let name = validate_device_name(&new.device_name)?;
        let method = new.connection_method.as_str();
        let sql = format!(
            "insert into public.devices (user_id, device_name, status, connection_method) \
             values ($1, $2, 'disconnected', $3) returning {DEVICE_COLUMNS}"
        );
        self.one_device("create", &sql, &[p(&new.user_id.0), p(&name), p(&method)])
            .await
    }

    async fn get(&self, id: DeviceId) -> StoreResult<Device> {
        let sql = format!("select {DEVICE_COLUMNS} from public.devices where id = $1");
        self.one_device("get", &sql, &[p(&id.0)])
            .await
            .map_err(|e| {
                if e.is_not_found() {
                    StoreError::not_found(format!("device {id}"))
                } else {
                    e
                }
            })
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Device>> {
        let sql = format!(
            "select {DEVICE_COLUMNS} from public.devices where user_id = $1 order by created_at, id"
        );
        self.rows("list", &sql, &[p(&user.0)])
            .await?
            .iter()
            .map(device)
            .collect()
    }

    async fn start_pairing(&self, id: DeviceId, request: PairingRequest) -> StoreResult<Device> {
        let (method, phone) = match request {
            PairingRequest::Code { phone } => ("pairing", Some(phone.digits().to_owned())),
            PairingRequest::Qr => ("qr", None),
            _ => {
                return Err(StoreError::new(
                    ErrorKind::InvalidInput,
                    "this pairing request is not supported by the PostgreSQL store",
                ));
            }
        };
        let sql = format!("select {DEVICE_COLUMNS} from public.wa_start_pairing($1, $2, $3)");
        self.one_device("start_pairing", &sql, &[p(&id.0), p(&method), p(&phone)])
            .await
    }

    async fn refresh(&self, id: DeviceId) -> StoreResult<Device> {
        let sql = format!("select {DEVICE_COLUMNS} from public.wa_refresh_pairing($1)");
        self.one_device("refresh", &sql, &[p(&id.0)]).await
    }

    async fn disconnect(&self, id: DeviceId) -> StoreResult<Device> {
        let sql = format!("select {DEVICE_COLUMNS} from public.wa_stop_device($1)");
        self.one_device("disconnect", &sql, &[p(&id.0)]).await
    }

    async fn resume(&self, id: DeviceId) -> StoreResult<Device> {
        let sql = format!("select {DEVICE_COLUMNS} from public.wa_resume_device($1)");
        self.one_device("resume", &sql, &[p(&id.0)]).await
    }

    async fn unlink(&self, id: DeviceId) -> StoreResult<Device> {
        let sql = format!("select {DEVICE_COLUMNS} from public.wa_unlink_device($1)");
        self.one_device("unlink", &sql, &[p(&id.0)]).await
    }

    async fn delete(&self, id: DeviceId) -> StoreResult<()> {
        let rows = self
            .rows(
                "delete",
                "delete from public.devices where id = $1 returning id",
                &[p(&id.0)],
            )
            .await?;
        if rows.is_empty() {
            return Err(StoreError::not_found(format!("device {id}")));
        }
        Ok(())
    }

    async fn claim(&self, request: &ClaimRequest) -> StoreResult<Vec<ClaimedDevice>> {
        if request.limit == 0 {
            return Ok(Vec::new());
        }
        let owner = request.owner.as_str();
        let limit = i32::try_from(request.limit).unwrap_or(i32::MAX);
        let secs = request.lease_for.as_secs_f64();
        let skip: Vec<uuid::Uuid> = request.skip.iter().map(|d| d.0).collect();
        let resumes: Option<i32> = request
            .resume_limit
            .map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let sql =
            format!("select {DEVICE_COLUMNS} from public.wa_claim_devices($1, $2, $3, $4, $5)");
        let rows = self
            .rows(
                "claim",
                &sql,
                &[p(&owner), p(&limit), p(&secs), p(&skip), p(&resumes)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let device = device(r)?;
                let lease = Lease {
                    device_id: device.id,
                    owner: owner.to_owned(),
                    fence: device.lease_fence,
                    expires_at: device.lease_expires_at.unwrap_or_default(),
                };
                Ok(ClaimedDevice { device, lease })
            })
            .collect()
    }

    async fn renew(
        &self,
        owner: &str,
        leases: &[Lease],
        lease_for: Duration,
    ) -> StoreResult<Vec<Lease>> {
        if leases.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<uuid::Uuid> = leases.iter().map(|l| l.device_id.0).collect();
        let fences: Vec<i64> = leases.iter().map(|l| l.fence.0).collect();
        let secs = lease_for.as_secs_f64();
        let rows = self
            .rows(
                "renew",
                "select device_id, lease_fence, lease_expires_at from public.wa_renew_leases($1, $2, $3, $4)",
                &[p(&owner), p(&ids), p(&fences), p(&secs)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(Lease {
                    device_id: DeviceId(r.try_get(0).map_err(|e| from_pg(&e))?),
                    owner: owner.to_owned(),
                    fence: Fence(r.try_get(1).map_err(|e| from_pg(&e))?),
                    expires_at: r.try_get(2).map_err(|e| from_pg(&e))?,
                })
            })
            .collect()
    }

    async fn release(&self, lease: &Lease) -> StoreResult<bool> {
        let rows = self
            .rows(
                "release",
                "select public.wa_release_lease($1, $2)",
                &[p(&lease.device_id.0), p(&lease.fence.0)],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.try_get::<_, bool>(0).ok())
            .unwrap_or(false))
    }

    async fn update(&self, lease: &Lease, update: DeviceUpdate) -> StoreResult<Device> {
        let patch = update_patch(&update);
        let sql = format!("select {DEVICE_COLUMNS} from public.wa_update_device($1, $2, $3)");
        self.one_device(
            "update",
            &sql,
            &[p(&lease.device_id.0), p(&lease.fence.0), p(&patch)],
        )
        .await
    }

    async fn subscribe(&self) -> StoreResult<Option<ChangeStream>> {
        if !self.inner.mode.has_change_feed() {
            // LISTEN needs a session of its own: a transaction pooler cannot give one.
            return Ok(None);
        }
        let rx = self.listener().await.subscribe();
        let stream = futures::stream::unfold(rx, |mut rx| async move {
            match rx.recv().await {
                Ok(c) => Some((c, rx)),
                Err(broadcast::error::RecvError::Lagged(_)) => Some((Change::Resync, rx)),
                Err(broadcast::error::RecvError::Closed) => None,
            }
        });
        Ok(Some(Box::pin(stream)))
    }

    /// Auth state deleted with its device; a change feed unless connections go through a
    /// transaction pooler ([`PoolMode`](crate::PoolMode)).
    fn capabilities(&self) -> Capabilities {
        Capabilities::new()
            .with_change_feed(self.inner.mode.has_change_feed())
            .with_auth_cascade(true)
    }
}

#[async_trait]
impl AuthStateStore for PostgresStore {
    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let rows = self
            .rows(
                "auth get",
                "select public.wa_auth_get($1, $2)",
                &[p(&device.0), p(&key)],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.try_get::<_, Option<Vec<u8>>>(0).ok())
            .flatten())
    }

    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()> {
        // One row per key: the last value of a key given twice wins.
        let mut latest: std::collections::BTreeMap<&str, &[u8]> = std::collections::BTreeMap::new();
        for (k, v) in entries {
            check_key(k)?;
            latest.insert(k, v);
        }
        let keys: Vec<&str> = latest.keys().copied().collect();
        let values: Vec<&[u8]> = latest.values().copied().collect();
        self.rows(
            "auth put",
            "select public.wa_auth_put($1, $2, $3, $4)",
            &[p(&device.0), p(&fence.0), p(&keys), p(&values)],
        )
        .await?;
        Ok(())
    }

    async fn delete_many(
        &self,
        device: DeviceId,
        fence: Fence,
        keys: &[String],
    ) -> StoreResult<()> {
        self.rows(
            "auth delete",
            "select public.wa_auth_delete($1, $2, $3)",
            &[p(&device.0), p(&fence.0), p(&keys)],
        )
        .await?;
        Ok(())
    }

    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
        let rows = self
            .rows(
                "auth scan",
                "select key, value from public.wa_auth_scan($1, $2)",
                &[p(&device.0), p(&prefix)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get(0).map_err(|e| from_pg(&e))?,
                    r.try_get(1).map_err(|e| from_pg(&e))?,
                ))
            })
            .collect()
    }

    async fn delete_prefix(
        &self,
        device: DeviceId,
        fence: Fence,
        prefix: &str,
    ) -> StoreResult<u64> {
        let rows = self
            .rows(
                "auth delete prefix",
                "select public.wa_auth_delete_prefix($1, $2, $3)",
                &[p(&device.0), p(&fence.0), p(&prefix)],
            )
            .await?;
        let n: i64 = rows.first().and_then(|r| r.try_get(0).ok()).unwrap_or(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.rows(
            "auth clear",
            "select public.wa_auth_clear($1, $2)",
            &[p(&device.0), p(&fence.0)],
        )
        .await?;
        Ok(())
    }

    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        self.rows(
            "auth seal",
            "select public.wa_auth_seal($1, $2)",
            &[p(&device.0), p(&fence.0)],
        )
        .await?;
        Ok(())
    }

    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()> {
        self.rows(
            "companion register",
            "select public.wa_companion_register($1, $2, $3)",
            &[p(&device.0), p(&fence.0), p(&companion.as_str())],
        )
        .await?;
        Ok(())
    }

    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>> {
        let after = after.map(|d| d.0);
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        let rows = self
            .rows(
                "auth devices",
                "select public.wa_auth_devices($1, $2)",
                &[p(&after), p(&limit)],
            )
            .await?;
        rows.iter()
            .map(|r| Ok(DeviceId(r.try_get(0).map_err(|e| from_pg(&e))?)))
            .collect()
    }

    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool> {
        check_key(key)?;
        let rows = self
            .rows(
                "auth replace",
                "select public.wa_auth_replace($1, $2, $3, $4)",
                &[p(&device.0), p(&key), p(&expected), p(&value)],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.try_get::<_, bool>(0).ok())
            .unwrap_or(false))
    }
}

/// The secret budget keys are made with, kept in `wa_pairing_secrets` (made once, at random,
/// by the migrations).
#[async_trait]
impl BudgetSecret for PostgresStore {
    async fn budget_secret(&self) -> StoreResult<Vec<u8>> {
        let rows = self
            .rows("budget secret", "select public.wa_budget_secret()", &[])
            .await?;
        rows.first()
            .and_then(|r| r.try_get::<_, Option<String>>(0).ok())
            .flatten()
            .map(String::into_bytes)
            .ok_or_else(no_budget_secret)
    }
}

fn no_budget_secret() -> StoreError {
    StoreError::new(
        ErrorKind::Configuration,
        "the database holds no pairing-budget secret (wa_pairing_secrets): apply the migrations",
    )
}

/// The durable floor of the pairing budget: a token bucket per key in
/// `wa_pairing_budget`, so a cache restart or outage never lifts the limit.
#[async_trait]
impl PairingBudget for PostgresStore {
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        config: &BudgetConfig,
    ) -> StoreResult<BudgetDecision> {
        let capacity = i32::try_from(config.capacity).unwrap_or(i32::MAX);
        let refill = config.refill_every.as_secs_f64();
        let rows = self
            .rows(
                "budget",
                "select public.wa_budget_acquire($1, $2, $3)",
                &[p(&key.as_str()), p(&capacity), p(&refill)],
            )
            .await?;
        let wait: Option<f64> = rows.first().and_then(|r| r.try_get(0).ok()).flatten();
        Ok(match wait {
            None => BudgetDecision::Allowed,
            Some(secs) => BudgetDecision::Denied {
                retry_after: Duration::from_secs_f64(secs.max(0.0)),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_grows_while_failing_and_resets_after_a_good_connection() {
        let mut b = FIRST_BACKOFF;
        for _ in 0..10 {
            b = next_backoff(b, false);
        }
        assert_eq!(b, MAX_BACKOFF);
        assert_eq!(next_backoff(b, true), FIRST_BACKOFF);
        assert_eq!(next_backoff(FIRST_BACKOFF, false), FIRST_BACKOFF * 2);
    }
}
