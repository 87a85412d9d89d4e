//! The store over PostgREST.

use std::time::Duration;

use async_trait::async_trait;
use postgrest::Builder;
use reqwest::header::{HeaderMap, HeaderValue};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use wa_pairing_sql::{DEVICE_COLUMNS, update_patch};
use wa_pairing_store::{
    AuthStateStore, BudgetConfig, BudgetDecision, BudgetKey, BudgetSecret, Capabilities,
    ClaimRequest, ClaimedDevice, CompanionKey, Device, DeviceId, DeviceStore, DeviceUpdate, Entry,
    ErrorKind, Fence, Lease, NewDevice, PairingBudget, PairingRequest, StoreError, StoreResult,
    Stores, StoresBuilder, UserId, check_key, validate_device_name,
};

use crate::classify::{from_status, from_transport, unreadable};
use crate::config::{KeyKind, SupabaseConfig};

/// Devices and auth state in a Supabase project, over its REST API (PostgREST), through the
/// SQL functions of the migrations: the same functions, and so the same semantics, as the
/// PostgreSQL backend.
///
/// There is no change feed (PostgREST cannot push), so the runner polls: leave its claim
/// interval at a few seconds. Cheap to clone.
///
/// The key goes only to [`SupabaseConfig::rest_url`]'s endpoint: redirects are never followed, and a
/// 3xx answer is a permanent `Configuration` error saying to check `SUPABASE_URL`.
///
/// ```no_run
/// use wa_pairing_supabase::{SupabaseConfig, SupabaseStore};
/// use wa_pairing_store::{DeviceStore, NewDevice, UserId};
///
/// # async fn demo() -> Result<(), wa_pairing_store::StoreError> {
/// let store: SupabaseStore = SupabaseConfig::from_env()?.connect().await?;
/// let device = store.create(NewDevice::new(UserId::random(), "Shop phone")).await?;
/// # let _ = device;
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct SupabaseStore {
    http: reqwest::Client,
    headers: HeaderMap,
    rest_url: String,
    config: SupabaseConfig,
}

impl std::fmt::Debug for SupabaseStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SupabaseStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// `\x`-prefixed hex, the way PostgreSQL writes and reads `bytea` in JSON.
fn bytea(value: &[u8]) -> String {
    let mut s = String::with_capacity(2 + value.len() * 2);
    s.push_str("\\x");
    s.push_str(&hex::encode(value));
    s
}

fn unbytea(op: &str, text: &str) -> StoreResult<Vec<u8>> {
    text.strip_prefix("\\x")
        .and_then(|h| hex::decode(h).ok())
        .ok_or_else(|| {
            StoreError::new(
                ErrorKind::Corrupt,
                format!("Supabase returned {op} a value that is not hex bytea: set the database's bytea_output to hex"),
            )
        })
}

/// A device from a row; a pairing code in a shape older software wrote is not a live code.
fn device(op: &str, mut row: Value) -> StoreResult<Device> {
    if let Some(code) = row.get_mut("pairing_code")
        && code
            .as_str()
            .is_some_and(|c| wa_pairing_store::code::PairingCode::parse(c).is_err())
    {
        *code = Value::Null;
    }
    serde_json::from_value(row).map_err(|_| {
        StoreError::new(
            ErrorKind::Corrupt,
            format!("a devices row returned by {op} is unreadable: check the row and that the migrations are applied"),
        )
    })
}

/// One device from an answer that is an object (a function returning one row) or an array.
fn one_device(op: &str, v: Value) -> StoreResult<Device> {
    match v {
        Value::Array(mut rows) => match rows.len() {
            0 => Err(StoreError::not_found("the device")),
            _ => device(op, rows.swap_remove(0)),
        },
        Value::Null => Err(StoreError::not_found("the device")),
        row => device(op, row),
    }
}

impl SupabaseStore {
    /// Every store of this backend as [`Stores`]: devices, auth state (deleted with its
    /// device) and the durable budget floor (its keys made with the database's own budget
    /// secret, [`BudgetSecret`]); no change feed (the runner polls). Add a code cache and
    /// keys before [`build`](StoresBuilder::build).
    pub fn stores(&self) -> StoresBuilder {
        Stores::backend(self.clone())
            .budget(self.clone())
            .budget_secret(self.clone())
    }

    /// The store for `config`, with no request made yet, so this works before the project
    /// answers; [`SupabaseConfig::connect`] also checks that it does. The same as
    /// [`SupabaseConfig::build`].
    ///
    /// # Errors
    ///
    /// `Configuration`, saying what to write, when [`SupabaseConfig::validate`] refuses the
    /// configuration or the HTTP client cannot be built (no TLS roots).
    pub fn new(config: &SupabaseConfig) -> StoreResult<Self> {
        config.validate()?;
        let rest_url = config.rest_url()?;
        let mut headers = HeaderMap::new();
        let key = HeaderValue::from_str(config.key()).map_err(|_| {
            StoreError::new(
                ErrorKind::Configuration,
                "the Supabase service key cannot travel in a header: copy it again",
            )
        })?;
        headers.insert("apikey", key.clone());
        if config.key_kind()? == KeyKind::Jwt {
            let bearer =
                HeaderValue::from_str(&format!("Bearer {}", config.key())).map_err(|_| {
                    StoreError::new(
                        ErrorKind::Configuration,
                        "the Supabase service key cannot travel in a header",
                    )
                })?;
            headers.insert("Authorization", bearer);
        }
        for value in headers.values_mut() {
            value.set_sensitive(true);
        }
        // Never follow a redirect: reqwest would resend `apikey` to wherever the `Location`
        // points (it strips only `Authorization` and cookies, and only across hosts). A 3xx
        // comes back as an answer, and `from_status` reports it as a configuration error.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("wa-pairing-supabase/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|_| {
                StoreError::new(
                    ErrorKind::Configuration,
                    "the HTTP client for Supabase could not be built",
                )
            })?;
        Ok(Self {
            http,
            headers,
            rest_url,
            config: config.clone(),
        })
    }

    /// One request (the `devices` table, no rows) within the timeout: `Ok` when the project
    /// answers and accepts the key. A refused key or a missing schema is a permanent error
    /// that says what to change; an outage is a retryable one.
    pub async fn ping(&self) -> StoreResult<()> {
        self.send("ping", self.table("devices").select("id").limit(0))
            .await
            .map(drop)
    }

    /// The configuration.
    pub const fn config(&self) -> &SupabaseConfig {
        &self.config
    }

    // Every request goes through `Builder::new` with `self.http`, the client that follows no
    // redirects; `postgrest::Postgrest::new` would build its own client that does, so it is
    // not used.
    fn table(&self, table: &str) -> Builder {
        Builder::new(
            format!("{}/{table}", self.rest_url),
            self.config.schema.clone(),
            self.headers.clone(),
            self.http.clone(),
        )
    }

    fn rpc(&self, function: &str, params: &Value) -> Builder {
        Builder::new(
            format!("{}/rpc/{function}", self.rest_url),
            self.config.schema.clone(),
            self.headers.clone(),
            self.http.clone(),
        )
        .rpc(params.to_string())
    }

    /// Sends the request and returns the body of a success answer (`Value::Null` for an
    /// empty one, as PostgREST gives for `void` functions).
    async fn send(&self, op: &'static str, request: Builder) -> StoreResult<Value> {
        let response = request
            .execute()
            .await
            .map_err(|e| from_transport(op, &e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response.text().await.map_err(|e| from_transport(op, &e))?;
        if !status.is_success() {
            return Err(from_status(status.as_u16(), &body, retry_after.as_deref()));
        }
        if body.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&body).map_err(|_| unreadable(op))
    }

    async fn send_as<T: DeserializeOwned>(
        &self,
        op: &'static str,
        request: Builder,
    ) -> StoreResult<T> {
        let v = self.send(op, request).await?;
        serde_json::from_value(v).map_err(|_| unreadable(op))
    }

    async fn device_rpc(
        &self,
        op: &'static str,
        function: &str,
        params: &Value,
    ) -> StoreResult<Device> {
        let v = self
            .send(op, self.rpc(function, params).select(DEVICE_COLUMNS))
            .await?;
        one_device(op, v)
    }
}

#[derive(Deserialize)]
struct RenewedRow {
    device_id: uuid::Uuid,
    lease_fence: i64,
    lease_expires_at: chrono::DateTime<chrono::Utc>,
}

#[derive(Deserialize)]
struct AuthRow {
    key: String,
    value: String,
}

#[async_trait]
impl DeviceStore for SupabaseStore {
    async fn create(&self, new: NewDevice) -> StoreResult<Device> {
        let name = validate_device_name(&new.device_name)?;
        let body = json!({
            "user_id": new.user_id,
            "device_name": name,
            "status": "disconnected",
            "connection_method": new.connection_method.as_str(),
        });
        let v = self
            .send(
                "create",
                self.table("devices")
                    .select(DEVICE_COLUMNS)
                    .insert(body.to_string()),
            )
            .await?;
        one_device("create", v)
    }

    async fn get(&self, id: DeviceId) -> StoreResult<Device> {
        let v = self
            .send(
                "get",
                self.table("devices")
                    .select(DEVICE_COLUMNS)
                    .eq("id", id.to_string()),
            )
            .await?;
        one_device("get", v).map_err(|e| {
            if e.is_not_found() {
                StoreError::not_found(format!("device {id}"))
            } else {
                e
            }
        })
    }

    async fn list_for_user(&self, user: UserId) -> StoreResult<Vec<Device>> {
        let rows: Vec<Value> = self
            .send_as(
                "list",
                self.table("devices")
                    .select(DEVICE_COLUMNS)
                    .eq("user_id", user.to_string())
                    .order("created_at.asc,id.asc"),
            )
            .await?;
        rows.into_iter().map(|r| device("list", r)).collect()
    }

    async fn start_pairing(&self, id: DeviceId, request: PairingRequest) -> StoreResult<Device> {
        let (method, phone) = match request {
            PairingRequest::Code { phone } => ("pairing", Some(phone.digits().to_owned())),
            PairingRequest::Qr => ("qr", None),
            _ => {
                return Err(StoreError::new(
                    ErrorKind::InvalidInput,
                    "this pairing request is not supported by the Supabase store",
                ));
            }
        };
        // An absent argument is left out, never sent as `null` (see `put_if`).
        let mut params = json!({"p_device_id": id, "p_method": method});
        put_if(&mut params, "p_phone", phone);
        self.device_rpc("start_pairing", "wa_start_pairing", &params)
            .await
    }

    async fn refresh(&self, id: DeviceId) -> StoreResult<Device> {
        self.device_rpc("refresh", "wa_refresh_pairing", &json!({"p_device_id": id}))
            .await
    }

    async fn disconnect(&self, id: DeviceId) -> StoreResult<Device> {
        self.device_rpc("disconnect", "wa_stop_device", &json!({"p_device_id": id}))
            .await
    }

    async fn resume(&self, id: DeviceId) -> StoreResult<Device> {
        self.device_rpc("resume", "wa_resume_device", &json!({"p_device_id": id}))
            .await
    }

    async fn unlink(&self, id: DeviceId) -> StoreResult<Device> {
        self.device_rpc("unlink", "wa_unlink_device", &json!({"p_device_id": id}))
            .await
    }

    async fn delete(&self, id: DeviceId) -> StoreResult<()> {
        let rows: Vec<Value> = self
            .send_as(
                "delete",
                self.table("devices")
                    .select("id")
                    .eq("id", id.to_string())
                    .delete(),
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
        let mut params = json!({
            "p_owner": owner,
            "p_limit": i32::try_from(request.limit).unwrap_or(i32::MAX),
            "p_lease_seconds": request.lease_for.as_secs_f64(),
            "p_skip": request.skip,
        });
        // PostgREST picks the overload by argument names: the resume limit is sent only when
        // set, so the request without it matches the four-argument form.
        if let Some(n) = request.resume_limit {
            params["p_resume_limit"] = json!(i32::try_from(n).unwrap_or(i32::MAX));
        }
        let rows: Vec<Value> = self
            .send_as(
                "claim",
                self.rpc("wa_claim_devices", &params).select(DEVICE_COLUMNS),
            )
            .await?;
        rows.into_iter()
            .map(|r| {
                let device = device("claim", r)?;
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
        let params = json!({
            "p_owner": owner,
            "p_device_ids": leases.iter().map(|l| l.device_id).collect::<Vec<_>>(),
            "p_fences": leases.iter().map(|l| l.fence.0).collect::<Vec<_>>(),
            "p_lease_seconds": lease_for.as_secs_f64(),
        });
        let rows: Vec<RenewedRow> = self
            .send_as("renew", self.rpc("wa_renew_leases", &params))
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| Lease {
                device_id: DeviceId(r.device_id),
                owner: owner.to_owned(),
                fence: Fence(r.lease_fence),
                expires_at: r.lease_expires_at,
            })
            .collect())
    }

    async fn release(&self, lease: &Lease) -> StoreResult<bool> {
        let released: Option<bool> = self
            .send_as(
                "release",
                self.rpc(
                    "wa_release_lease",
                    &json!({"p_device_id": lease.device_id, "p_fence": lease.fence.0}),
                ),
            )
            .await?;
        Ok(released.unwrap_or(false))
    }

    async fn update(&self, lease: &Lease, update: DeviceUpdate) -> StoreResult<Device> {
        self.device_rpc(
            "update",
            "wa_update_device",
            &json!({
                "p_device_id": lease.device_id,
                "p_fence": lease.fence.0,
                "p_patch": update_patch(&update),
            }),
        )
        .await
    }

    /// Auth state deleted with its device; no change feed (the runner polls).
    fn capabilities(&self) -> Capabilities {
        Capabilities::new().with_auth_cascade(true)
    }
}

#[async_trait]
impl AuthStateStore for SupabaseStore {
    async fn get(&self, device: DeviceId, key: &str) -> StoreResult<Option<Vec<u8>>> {
        let value: Option<String> = self
            .send_as(
                "auth get",
                self.rpc("wa_auth_get", &json!({"p_device_id": device, "p_key": key})),
            )
            .await?;
        value.map(|v| unbytea("auth get", &v)).transpose()
    }

    async fn put_many(&self, device: DeviceId, fence: Fence, entries: &[Entry]) -> StoreResult<()> {
        // One row per key: the last value of a key given twice wins.
        let mut latest: std::collections::BTreeMap<&str, &[u8]> = std::collections::BTreeMap::new();
        for (k, v) in entries {
            check_key(k)?;
            latest.insert(k, v);
        }
        let params = json!({
            "p_device_id": device,
            "p_fence": fence.0,
            "p_keys": latest.keys().collect::<Vec<_>>(),
            "p_values": latest.values().map(|v| bytea(v)).collect::<Vec<_>>(),
        });
        self.send("auth put", self.rpc("wa_auth_put", &params))
            .await?;
        Ok(())
    }

    async fn delete_many(
        &self,
        device: DeviceId,
        fence: Fence,
        keys: &[String],
    ) -> StoreResult<()> {
        let params = json!({"p_device_id": device, "p_fence": fence.0, "p_keys": keys});
        self.send("auth delete", self.rpc("wa_auth_delete", &params))
            .await?;
        Ok(())
    }

    async fn scan_prefix(&self, device: DeviceId, prefix: &str) -> StoreResult<Vec<Entry>> {
        let rows: Vec<AuthRow> = self
            .send_as(
                "auth scan",
                self.rpc(
                    "wa_auth_scan",
                    &json!({"p_device_id": device, "p_prefix": prefix}),
                ),
            )
            .await?;
        rows.into_iter()
            .map(|r| Ok((r.key, unbytea("auth scan", &r.value)?)))
            .collect()
    }

    async fn delete_prefix(
        &self,
        device: DeviceId,
        fence: Fence,
        prefix: &str,
    ) -> StoreResult<u64> {
        let params = json!({"p_device_id": device, "p_fence": fence.0, "p_prefix": prefix});
        let n: Option<i64> = self
            .send_as(
                "auth delete prefix",
                self.rpc("wa_auth_delete_prefix", &params),
            )
            .await?;
        Ok(u64::try_from(n.unwrap_or(0)).unwrap_or(0))
    }

    async fn clear(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        let params = json!({"p_device_id": device, "p_fence": fence.0});
        self.send("auth clear", self.rpc("wa_auth_clear", &params))
            .await?;
        Ok(())
    }

    async fn seal(&self, device: DeviceId, fence: Fence) -> StoreResult<()> {
        let params = json!({"p_device_id": device, "p_fence": fence.0});
        self.send("auth seal", self.rpc("wa_auth_seal", &params))
            .await?;
        Ok(())
    }

    async fn register_companion(
        &self,
        device: DeviceId,
        fence: Fence,
        companion: &CompanionKey,
    ) -> StoreResult<()> {
        let params = json!({
            "p_device_id": device,
            "p_fence": fence.0,
            "p_companion": companion.as_str(),
        });
        self.send(
            "companion register",
            self.rpc("wa_companion_register", &params),
        )
        .await?;
        Ok(())
    }

    async fn devices(&self, after: Option<DeviceId>, limit: usize) -> StoreResult<Vec<DeviceId>> {
        let mut params = json!({"p_limit": i32::try_from(limit).unwrap_or(i32::MAX)});
        put_if(&mut params, "p_after", after);
        self.send_as("auth devices", self.rpc("wa_auth_devices", &params))
            .await
    }

    async fn replace(
        &self,
        device: DeviceId,
        key: &str,
        expected: &[u8],
        value: &[u8],
    ) -> StoreResult<bool> {
        check_key(key)?;
        let params = json!({
            "p_device_id": device,
            "p_key": key,
            "p_expected": bytea(expected),
            "p_value": bytea(value),
        });
        self.send_as("auth replace", self.rpc("wa_auth_replace", &params))
            .await
    }
}

/// The budget keys' secret, through the same SQL function the PostgreSQL store calls.
#[async_trait]
impl BudgetSecret for SupabaseStore {
    async fn budget_secret(&self) -> StoreResult<Vec<u8>> {
        let secret: Option<String> = self
            .send_as("budget secret", self.rpc("wa_budget_secret", &json!({})))
            .await?;
        secret.map(String::into_bytes).ok_or_else(|| {
            StoreError::new(
                ErrorKind::Configuration,
                "the project holds no pairing-budget secret (wa_pairing_secrets): apply the migrations with `supabase db push`",
            )
        })
    }
}

/// The durable budget floor, through the same SQL function the PostgreSQL store calls.
#[async_trait]
impl PairingBudget for SupabaseStore {
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        config: &BudgetConfig,
    ) -> StoreResult<BudgetDecision> {
        let params = json!({
            "p_key": key.as_str(),
            "p_capacity": i32::try_from(config.capacity).unwrap_or(i32::MAX),
            "p_refill_seconds": config.refill_every.as_secs_f64(),
        });
        let wait: Option<f64> = self
            .send_as("budget", self.rpc("wa_budget_acquire", &params))
            .await?;
        Ok(match wait {
            None => BudgetDecision::Allowed,
            Some(secs) => BudgetDecision::Denied {
                retry_after: Duration::from_secs_f64(secs.max(0.0)),
            },
        })
    }
}

/// Sets the RPC argument `name` when there is a value, and leaves it out otherwise: the SQL
/// functions have an overload without such an argument, and PostgREST matches a call by the
/// names of the arguments given. Never sent as JSON `null`, which PostgREST hands to PostgreSQL as NULL
/// but not every PostgREST-compatible server does (postrust passes the text `null`; see the
/// crate's README).
fn put_if<T: serde::Serialize>(params: &mut Value, name: &str, value: Option<T>) {
    if let Some(v) = value {
        params[name] = json!(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytea_round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let text = bytea(&all);
        assert!(text.starts_with("\\x00010203"));
        assert_eq!(unbytea("t", &text).unwrap(), all);
        assert_eq!(unbytea("t", "\\x").unwrap(), Vec::<u8>::new());
        assert_eq!(unbytea("t", "AAEC").unwrap_err().kind(), ErrorKind::Corrupt);
    }
}
