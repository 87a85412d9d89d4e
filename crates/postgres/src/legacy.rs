//! The original (Baileys-era) system's sessions, for the import into wa-pairing's auth state:
//! the `devices.session_data` column, and a lease on one device at a time for the import to
//! write under.

use std::fmt;
use std::time::Duration;

use wa_pairing_store::{DeviceId, DeviceStatus, Fence, Lease, StoreResult};

use crate::classify::from_pg;
use crate::params::p;
use crate::store::PostgresStore;

/// One device row with the original system's `session_data` (Baileys' credentials and keys).
///
/// `Debug` shows no credentials and no number.
#[derive(Clone)]
#[non_exhaustive]
pub struct LegacySession {
    /// The device.
    pub id: DeviceId,
    /// Its status now.
    pub status: DeviceStatus,
    /// Its linked number, when the original system wrote one.
    pub phone_number: Option<String>,
    /// The `session_data` JSON as stored.
    pub session_data: serde_json::Value,
}

impl fmt::Debug for LegacySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacySession")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("has_phone_number", &self.phone_number.is_some())
            .finish_non_exhaustive()
    }
}

impl PostgresStore {
    /// The devices whose `session_data` (the original system's Baileys credentials) is set,
    /// in id order, after `after`, at most `limit`: what an import of Baileys-era sessions
    /// visits. Needs the service role (end users cannot read the column).
    ///
    /// # Errors
    ///
    /// The database cannot be reached, or a row cannot be read.
    pub async fn legacy_sessions(
        &self,
        after: Option<DeviceId>,
        limit: usize,
    ) -> StoreResult<Vec<LegacySession>> {
        let after = after.map(|d| d.0);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .rows(
                "legacy sessions",
                "select id, status, phone_number, session_data from public.devices
                  where session_data is not null and jsonb_typeof(session_data) <> 'null'
                    and ($1::uuid is null or id > $1)
                  order by id limit $2",
                &[p(&after), p(&limit)],
            )
            .await?;
        rows.iter()
            .map(|r| {
                let status: String = r.try_get(1).map_err(|e| from_pg(&e))?;
                Ok(LegacySession {
                    id: DeviceId(r.try_get(0).map_err(|e| from_pg(&e))?),
                    status: status.parse()?,
                    phone_number: r.try_get(2).map_err(|e| from_pg(&e))?,
                    session_data: r.try_get(3).map_err(|e| from_pg(&e))?,
                })
            })
            .collect()
    }

    /// Takes the lease of one device for `owner` (raising its fence), but only while no one
    /// holds it (no lease, or a lapsed one): maintenance that writes a device's auth state
    /// (an import) without a runner. `None` when another holder has it.
    ///
    /// Release it with [`DeviceStore::release`](wa_pairing_store::DeviceStore::release).
    ///
    /// # Errors
    ///
    /// The database cannot be reached.
    pub async fn lease_device(
        &self,
        id: DeviceId,
        owner: &str,
        lease_for: Duration,
    ) -> StoreResult<Option<Lease>> {
        let secs = lease_for.as_secs_f64();
        let rows = self
            .rows(
                "lease one device",
                "update public.devices
                    set lease_owner = $2,
                        lease_expires_at = now() + make_interval(secs => $3),
                        lease_fence = lease_fence + 1
                  where id = $1 and (lease_owner is null or lease_expires_at < now())
                  returning lease_fence, lease_expires_at",
                &[p(&id.0), p(&owner), p(&secs)],
            )
            .await?;
        rows.first()
            .map(|r| {
                Ok(Lease {
                    device_id: id,
                    owner: owner.to_owned(),
                    fence: Fence(r.try_get(0).map_err(|e| from_pg(&e))?),
                    expires_at: r.try_get(1).map_err(|e| from_pg(&e))?,
                })
            })
            .transpose()
    }
}
