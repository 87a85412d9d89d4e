//! A fresh PostgreSQL database per test, with Supabase's roles and the migrations applied.
#![allow(dead_code, unreachable_pub, missing_docs)]

use tokio_postgres::NoTls;
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_store_testkit::{Skip, TestBackend};
pub use wa_pairing_test_support::TestDb;

/// An empty database with the Supabase roles fixture; `Err(Skip)` when no server.
pub async fn test_db() -> Result<TestDb, Skip> {
    let db = TestDb::create("wa_test").await?;
    db.connect()
        .await
        .batch_execute(wa_pairing_test_support::SUPABASE_ROLES_SQL)
        .await
        .expect("the Supabase roles fixture");
    Ok(db)
}

/// The store on a test database, its migrations applied.
pub trait Store {
    /// A pool of 8 on the database, migrated.
    async fn store(&self) -> PostgresStore;
}

impl Store for TestDb {
    async fn store(&self) -> PostgresStore {
        let store = PostgresStore::new(&PostgresConfig::new(&self.url).pool_size(8)).expect("pool");
        store.migrate().await.expect("migrations");
        store
    }
}

/// A connection to `url` acting as `role` (Supabase's `anon`, `authenticated`...), as
/// PostgREST would: `set role`, and the user's id where `auth.uid()` reads it.
pub async fn as_role(
    url: &str,
    role: &str,
    user: Option<wa_pairing_store::UserId>,
) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("set role {role}"))
        .await
        .unwrap();
    if let Some(u) = user {
        client
            .batch_execute(&format!("set request.jwt.claim.sub = '{u}'"))
            .await
            .unwrap();
    }
    client
}

/// The SQLSTATE of a database error (empty for other failures).
pub fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_owned())
        .unwrap_or_default()
}

pub async fn backend() -> Result<TestBackend, Skip> {
    let db = test_db().await?;
    let store = db.store().await;
    let cleanup = db.cleanup();
    Ok(TestBackend::new(store.stores().build()).with_cleanup(cleanup))
}
