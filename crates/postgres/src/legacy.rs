//! The original (Baileys-era) system's sessions, for the import into wa-pairing's auth state:
//! the `devices.session_data` column, and a lease on one device at a time for the import to
//! write under.

use std::fmt;
use std::time::Duration;

use wa_pairing_store::{CompanionKey, DeviceId, DeviceStatus, Fence, Lease, StoreResult};

use crate::classify::from_pg;
use crate::params::p;
use crate::store::PostgresStore;

/// One device row with the original system's `session_data` (Baileys' credentials and keys),
/// as JSON text, when it is no larger than the caller's limit.
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
    /// The size of `session_data` as JSON text (`octet_length(session_data::text)`), in
    /// bytes: also when it is larger than the limit and was not fetched.
    pub session_data_len: u64,
    /// `session_data` as JSON text (`session_data::text`), or `None` when it is larger than
    /// the limit the caller gave: then it was never sent by the database, and
    /// [`Self::session_data_len`] says how large it is.
    pub session_data: Option<String>,
}

impl fmt::Debug for LegacySession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LegacySession")
            .field("id", &self.id)
            .field("status", &self.status)
            .field("has_phone_number", &self.phone_number.is_some())
            .field("session_data_len", &self.session_data_len)
            .field("fetched", &self.session_data.is_some())
            .finish_non_exhaustive()
    }
}

/// The rows of `devices` with `session_data`, each with its size as text and the text itself
/// when no larger than `$N` (the size is checked before the value is sent, so a huge row is
/// never fetched).
fn legacy_select(filter: &str, max_param: usize) -> String {
    format!(
        "select d.id, d.status, d.phone_number, s.len,
                case when s.len <= ${max_param} then d.session_data::text end
           from public.devices d
          cross join lateral (select octet_length(d.session_data::text)::bigint as len) s
          where d.session_data is not null and jsonb_typeof(d.session_data) <> 'null'
            and {filter}
          order by d.id"
    )
}

fn legacy_row(r: &tokio_postgres::Row) -> StoreResult<LegacySession> {
    let status: String = r.try_get(1).map_err(|e| from_pg(&e))?;
    let len: i64 = r.try_get(3).map_err(|e| from_pg(&e))?;
    Ok(LegacySession {
        id: DeviceId(r.try_get(0).map_err(|e| from_pg(&e))?),
        status: status.parse()?,
        phone_number: r.try_get(2).map_err(|e| from_pg(&e))?,
        session_data_len: u64::try_from(len).unwrap_or(0),
        session_data: r.try_get(4).map_err(|e| from_pg(&e))?,
    })
}

impl PostgresStore {
    /// The devices whose `session_data` (the original system's Baileys credentials) is set,
    /// in id order, after `after`, at most `limit`: what an import of Baileys-era sessions
    /// visits. Needs the service role (end users cannot read the column).
    ///
    /// Each row's `session_data` comes as JSON text, and only when it is at most
    /// `max_bytes` long: a larger one is never sent by the database (its size is, in
    /// [`LegacySession::session_data_len`]). A page holds up to `limit` times `max_bytes`:
    /// to hold one row at a time, ask for one.
    ///
    /// # Errors
    ///
    /// The database cannot be reached, or a row cannot be read.
    pub async fn legacy_sessions(
        &self,
        after: Option<DeviceId>,
        limit: usize,
        max_bytes: usize,
    ) -> StoreResult<Vec<LegacySession>> {
        let after = after.map(|d| d.0);
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let max = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let sql = format!(
            "{} limit $2",
            legacy_select("($1::uuid is null or d.id > $1)", 3)
        );
        let rows = self
            .rows("legacy sessions", &sql, &[p(&after), p(&limit), p(&max)])
            .await?;
        rows.iter().map(legacy_row).collect()
    }

    /// The device `id` with its `session_data`, as [`Self::legacy_sessions`] reads it (the
    /// text only when it is at most `max_bytes` long); `None` when there is no such device
    /// or its `session_data` is not set.
    ///
    /// # Errors
    ///
    /// The database cannot be reached, or the row cannot be read.
    pub async fn legacy_session(
        &self,
        id: DeviceId,
        max_bytes: usize,
    ) -> StoreResult<Option<LegacySession>> {
        let max = i64::try_from(max_bytes).unwrap_or(i64::MAX);
        let rows = self
            .rows(
                "legacy session",
                &legacy_select("d.id = $1", 2),
                &[p(&id.0), p(&max)],
            )
            .await?;
        rows.first().map(legacy_row).transpose()
    }

    /// The device whose auth state holds `companion`
    /// ([`AuthStateStore::register_companion`](wa_pairing_store::AuthStateStore::register_companion)),
    /// if any: what a dry run of an import checks, since the store would refuse the same
    /// companion for a second device.
    ///
    /// # Errors
    ///
    /// The database cannot be reached.
    pub async fn companion_holder(
        &self,
        companion: &CompanionKey,
    ) -> StoreResult<Option<DeviceId>> {
        let rows = self
            .rows(
                "companion holder",
                "select public.wa_companion_of($1)",
                &[p(&companion.as_str())],
            )
            .await?;
        Ok(rows
            .first()
            .and_then(|r| r.try_get::<_, Option<uuid::Uuid>>(0).ok())
            .flatten()
            .map(DeviceId))
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
