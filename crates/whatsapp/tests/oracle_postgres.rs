//! `WaBackend` over the PostgreSQL store against `wacore::store::InMemoryBackend`: the same
//! random call sequences give the same answers, and a restart in the middle loses nothing.
//!
//! Needs `WA_PAIRING_TEST_POSTGRES_URL` (a server where the test may create a database);
//! without it the test says why and skips, which `WA_PAIRING_TEST_STRICT=1` makes a failure.

mod common;

use std::sync::Arc;

use common::oracle::{ops, same_answers};
use proptest::test_runner::{Config, TestRunner};
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_store_testkit::{Skip, skip};
use wa_pairing_test_support::TestDb;

/// A fresh database with the migrations applied. Only a missing or unreachable server is a
/// reason to skip; a database that cannot be created or a migration that fails is a failure.
async fn database() -> Result<TestDb, Skip> {
    let db = TestDb::create("wa_oracle").await?;
    let store = PostgresStore::new(&PostgresConfig::new(&db.url)).expect("the pool");
    store
        .migrate()
        .await
        .unwrap_or_else(|e| panic!("the migrations failed: {e}"));
    Ok(db)
}

#[test]
fn same_answers_as_the_in_memory_backend_over_postgres() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let db = match rt.block_on(database()) {
        Ok(db) => db,
        Err(why) => return skip("the PostgreSQL oracle test", &why),
    };
    let store = Arc::new(PostgresStore::new(&PostgresConfig::new(&db.url)).unwrap());
    // Every call is a round trip: fewer cases than over memory, each on a fresh device.
    let mut runner = TestRunner::new(Config {
        cases: 32,
        ..Config::default()
    });
    let result = runner.run(&ops(), |ops| {
        rt.block_on(async {
            let lease = common::claimed_device(&*store).await;
            same_answers(store.clone(), lease.device_id, lease.fence, &ops).await
        })
    });
    rt.block_on(db.drop());
    if let Err(e) = result {
        panic!("{e}");
    }
}
