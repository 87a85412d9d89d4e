//! The conformance suite with Redis holding the auth state and the code cache (beside the
//! in-memory device store for leases), each test under its own key prefix.

use std::sync::Arc;

use wa_pairing_redis::{RedisConfig, RedisStore};
use wa_pairing_store::MemoryStore;
use wa_pairing_store::testkit::{Skip, TestBackend};

async fn backend() -> Result<TestBackend, Skip> {
    let url = std::env::var("WA_PAIRING_TEST_REDIS_URL").map_err(|_| {
        Skip::new(
            "WA_PAIRING_TEST_REDIS_URL is not set; point it at a Redis (redis://127.0.0.1:6379)",
        )
    })?;
    let prefix = format!("wa-test-{}:", uuid::Uuid::new_v4().simple());
    let store = RedisStore::new(
        RedisConfig::new(&url)
            .prefix(&prefix)
            .timeout(std::time::Duration::from_secs(5)),
    )
    .map_err(|e| Skip::new(e.to_string()))?;
    // Reachable? A skip says why; strict mode turns it into a failure.
    wa_pairing_store::CodeCache::get(&store, wa_pairing_store::DeviceId::random())
        .await
        .map_err(|e| Skip::new(format!("no Redis at WA_PAIRING_TEST_REDIS_URL: {e}")))?;
    let devices = Arc::new(MemoryStore::new());
    let redis = Arc::new(store);
    let cleanup_url = url.clone();
    Ok(TestBackend::new(devices, redis.clone())
        .with_cache(redis)
        .with_separate_auth()
        .with_cleanup(move || async move {
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

wa_pairing_store::conformance_tests!(backend);
