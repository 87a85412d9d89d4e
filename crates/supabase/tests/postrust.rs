//! The whole conformance suite through a live PostgREST-compatible server, as `service_role`:
//! `wa-pairing-postrust` (postrust-server, `tools/postrust`) on loopback, in front of a
//! database of its own per test with Supabase's roles and the migrations, configured as
//! Supabase configures PostgREST (anon role, JWT secret, schema `public`, `/rest/v1`).
//!
//! Needs `WA_PAIRING_TEST_POSTGRES_URL` and the server installed (`.ci/run` installs it;
//! `cargo install --locked --path tools/postrust`); without them each test says why it
//! skipped, and `WA_PAIRING_TEST_STRICT=1` makes that a failure.
#![allow(missing_docs)]

use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_store_testkit::{Skip, TestBackend};
use wa_pairing_supabase::SupabaseConfig;
use wa_pairing_test_support::{Postrust, SUPABASE_ROLES_SQL, TestDb};

async fn postrust_backend() -> Result<TestBackend, Skip> {
    let db = TestDb::create("wa_rest").await?;
    db.connect()
        .await
        .batch_execute(SUPABASE_ROLES_SQL)
        .await
        .expect("the Supabase roles fixture");
    PostgresStore::new(&PostgresConfig::new(&db.url))
        .expect("a pool")
        .migrate()
        .await
        .expect("the migrations");
    let rest = match Postrust::start(&db) {
        Ok(rest) => rest,
        Err(why) => {
            db.drop().await;
            return Err(why);
        }
    };
    let store = SupabaseConfig::new(rest.url(), rest.service_role_key())
        .build()
        .expect("the Supabase store");
    let cleanup = db.cleanup();
    Ok(
        TestBackend::new(store.stores().build()).with_cleanup(move || async move {
            drop(rest);
            cleanup().await;
        }),
    )
}

wa_pairing_store_testkit::conformance_tests!(postrust_backend; devices, auth_state, auth_cascade, budget);
