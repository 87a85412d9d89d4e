//! The SQL migrations, embedded from the crate's `migrations/` folder, the one source of the
//! SQL (the repository's `supabase/migrations/` links to these files for the Supabase CLI; a
//! test checks the two folders list the same migrations).

use wa_pairing_store::{StoreError, StoreResult};

use crate::classify::from_pg;

/// Every migration, in order: (version, SQL).
pub const MIGRATIONS: &[(&str, &str)] = &[
    (
        "20261124000000_wa_pairing",
        include_str!("../migrations/20261124000000_wa_pairing.sql"),
    ),
    (
        "20261201000000_wa_pairing_hardening",
        include_str!("../migrations/20261201000000_wa_pairing_hardening.sql"),
    ),
    (
        "20261202000000_wa_pairing_paced_claims",
        include_str!("../migrations/20261202000000_wa_pairing_paced_claims.sql"),
    ),
    (
        "20261207000000_wa_pairing_hardening_3",
        include_str!("../migrations/20261207000000_wa_pairing_hardening_3.sql"),
    ),
    (
        "20261209000000_wa_pairing_owner_delete",
        include_str!("../migrations/20261209000000_wa_pairing_owner_delete.sql"),
    ),
    (
        "20261210000000_wa_pairing_rest_defaults",
        include_str!("../migrations/20261210000000_wa_pairing_rest_defaults.sql"),
    ),
    (
        "20261211000000_wa_pairing_error_codes",
        include_str!("../migrations/20261211000000_wa_pairing_error_codes.sql"),
    ),
];

/// A constant key for `pg_advisory_xact_lock`, so concurrent migrations run one at a time.
const LOCK_KEY: i64 = 0x7761_7061_6972_0001;

pub(crate) async fn apply(client: &mut deadpool_postgres::Client) -> StoreResult<usize> {
    let tx = client.transaction().await.map_err(|e| from_pg(&e))?;
    tx.execute("select pg_advisory_xact_lock($1)", &[&LOCK_KEY])
        .await
        .map_err(|e| from_pg(&e))?;
    tx.batch_execute(
        "create table if not exists public.wa_pairing_migrations (
             version text primary key,
             applied_at timestamptz not null default now())",
    )
    .await
    .map_err(|e| from_pg(&e))?;
    let mut applied = 0;
    for (version, sql) in MIGRATIONS {
        let done = tx
            .query_opt(
                "select 1 from public.wa_pairing_migrations where version = $1",
                &[version],
            )
            .await
            .map_err(|e| from_pg(&e))?
            .is_some();
        if done {
            continue;
        }
        tx.batch_execute(sql).await.map_err(|e| {
            let inner = from_pg(&e);
            StoreError::new(inner.kind(), format!("migration {version} failed: {inner}"))
        })?;
        tx.execute(
            "insert into public.wa_pairing_migrations (version) values ($1)",
            &[version],
        )
        .await
        .map_err(|e| from_pg(&e))?;
        applied += 1;
    }
    tx.commit().await.map_err(|e| from_pg(&e))?;
    Ok(applied)
}
