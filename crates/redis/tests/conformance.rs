//! The conformance suite with Redis holding the auth state, the code cache and the budget,
//! each test under its own key prefix. Redis holds no devices: the in-memory device store
//! beside it only hands out the leases whose fences the auth state checks, so the `devices`
//! group is not run here (it runs against the in-memory store in wa-pairing-store).

use wa_pairing_redis::{RedisConfig, RedisStore};
use wa_pairing_store::{MemoryStore, Stores};
use wa_pairing_store_testkit::{Skip, TestBackend};

async fn backend() -> Result<TestBackend, Skip> {
    let url = std::env::var("WA_PAIRING_TEST_REDIS_URL").map_err(|_| {
        Skip::new(
            "WA_PAIRING_TEST_REDIS_URL is not set; point it at a Redis (redis://127.0.0.1:6379)",
        )
    })?;
    let prefix = format!("wa-test-{}:", uuid::Uuid::new_v4().simple());
    let store = RedisStore::new(
        &RedisConfig::new(&url)
            .prefix(&prefix)
            .timeout(std::time::Duration::from_secs(5)),
    )
    .map_err(|e| Skip::new(e.to_string()))?;
    // Reachable? A skip says why; strict mode turns it into a failure.
    wa_pairing_store::CodeCache::get(&store, wa_pairing_store::DeviceId::random())
        .await
        .map_err(|e| Skip::new(format!("no Redis at WA_PAIRING_TEST_REDIS_URL: {e}")))?;
    let stores = Stores::builder(MemoryStore::new(), store.clone())
        .code_cache(store.clone())
        .budget(store)
        .build();
    let cleanup_url = url.clone();
    Ok(TestBackend::new(stores).with_cleanup(move || async move {
        if let Ok(client) = redis::Client::open(cleanup_url.as_str())
            && let Ok(mut c) = client.get_multiplexed_async_connection().await
        {
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg(format!("{prefix}*"))
                .query_async(&mut c)
                .await
                .unwrap_or_default();
            if !keys.is_empty() {
                let _: Result<(), _> = redis::cmd("DEL").arg(keys).query_async(&mut c).await;
            }
        }
    }))
}

// The in-memory device store beside Redis reports its change feed: that group runs too.
wa_pairing_store_testkit::conformance_tests!(backend; auth_state, code_cache, budget, change_feed);
