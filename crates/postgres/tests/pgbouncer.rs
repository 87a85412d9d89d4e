//! The store through PgBouncer in transaction mode, as behind Supabase's transaction pooler:
//! server connections are shared between client connections at once, there is no session
//! (no LISTEN, no prepared statement that outlives a transaction), and everything but the
//! change feed must work.

mod common;

use std::time::Duration;

use wa_pairing_postgres::{PoolMode, PostgresConfig, PostgresStore};
use wa_pairing_store::{AuthStateStore, ClaimRequest, DeviceStore, Fence, NewDevice, UserId};
use wa_pairing_store_testkit::{Skip, TestBackend, skip};
use wa_pairing_test_support::PgBouncer;

/// A fresh database, a PgBouncer in front of the server, and the store through the pooler
/// with its migrations applied through it too.
async fn through_pooler() -> Result<(PostgresStore, PgBouncer, common::TestDb), Skip> {
    let db = common::test_db().await?;
    let bouncer = match PgBouncer::start(db.admin_url()) {
        Ok(b) => b,
        Err(e) => {
            db.drop().await;
            return Err(e);
        }
    };
    let config = PostgresConfig::new(bouncer.url(db.name())).pool_size(8);
    assert_eq!(config.effective_pool_mode().unwrap(), PoolMode::Transaction);
    let store = PostgresStore::new(&config).expect("pool");
    store
        .migrate()
        .await
        .expect("migrations through the pooler");
    Ok((store, bouncer, db))
}

async fn backend() -> Result<TestBackend, Skip> {
    let (store, bouncer, db) = through_pooler().await?;
    let cleanup = db.cleanup();
    Ok(
        TestBackend::new(store.stores().build()).with_cleanup(move || {
            Box::pin(async move {
                drop(bouncer);
                cleanup().await;
            })
        }),
    )
}

wa_pairing_store_testkit::conformance_tests!(backend; devices, auth_state, auth_cascade, budget);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_clients_share_two_server_connections_without_prepared_statement_errors() {
    let (store, bouncer, db) = match through_pooler().await {
        Ok(x) => x,
        Err(why) => return skip("pgbouncer concurrency", &why),
    };
    // Eight pooled client connections over two server connections: statements of different
    // clients interleave on one server connection, which breaks named prepared statements
    // ("prepared statement \"s0\" already exists" / "does not exist").
    let owner = "pooled";
    let device = store
        .create(NewDevice::new(UserId::random(), "Pooled"))
        .await
        .expect("create");
    let mut tasks = Vec::new();
    for i in 0..64_u32 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            match i % 4 {
                0 => DeviceStore::get(&store, device.id).await.map(|_| ()),
                1 => AuthStateStore::get(&store, device.id, "k")
                    .await
                    .map(|_| ()),
                2 => store
                    .claim(&ClaimRequest::new(owner, 1, Duration::from_secs(30)))
                    .await
                    .map(|_| ()),
                _ => store.list_for_user(UserId::random()).await.map(|_| ()),
            }
        }));
    }
    for t in tasks {
        t.await
            .expect("task")
            .expect("every statement works through the pooler");
    }
    // A fenced write still refuses a stale fence through the pooler.
    let err = AuthStateStore::put(&store, device.id, Fence(i64::MAX), "k", b"v")
        .await
        .expect_err("a stale fence");
    assert!(err.is_lease_lost(), "{err}");
    assert!(
        store.subscribe().await.expect("subscribe").is_none(),
        "no change feed through a transaction pooler"
    );
    drop(bouncer);
    db.drop().await;
}
