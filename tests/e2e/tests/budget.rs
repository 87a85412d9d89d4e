//! The per-number budget keeps its limit through a Redis restart or outage: the primary
//! store (PostgreSQL) holds a durable floor, and both count numbers under keyed hashes.
#![allow(missing_docs)]

use std::time::Duration;

use wa_pairing_redis::{RedisConfig, RedisStore};
use wa_pairing_store::{BudgetConfig, BudgetKeyer, PairingBudget, Stores};
use wa_pairing_store_testkit::{Skip, skip};

fn redis_at(url: &str) -> RedisStore {
    let prefix = format!("wa-test-{}:", uuid::Uuid::new_v4().simple());
    RedisStore::new(&RedisConfig::new(url).prefix(prefix)).expect("a lazy client")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_restart_or_outage_does_not_lift_the_limit() {
    let (pg, db) = match wa_pairing_e2e::postgres_store().await {
        Ok(x) => x,
        Err(why) => return skip("budget floor", &why),
    };
    let Ok(url) = std::env::var("WA_PAIRING_TEST_REDIS_URL") else {
        db.drop().await;
        return skip(
            "budget floor",
            &Skip::new("WA_PAIRING_TEST_REDIS_URL is not set"),
        );
    };
    let keyer = BudgetKeyer::new(b"the deployment's secret");
    let config = BudgetConfig::new(3, Duration::from_secs(200));
    let key = keyer.key(&wa_pairing_phone::parse("+6281234500061").unwrap());
    let with = |redis: RedisStore| {
        pg.stores()
            .budget(redis)
            .budget_keyer(keyer.clone())
            .build()
    };
    let ask = |stores: Stores| {
        let key = key.clone();
        async move {
            stores
                .budget()
                .expect("a budget")
                .try_acquire(&key, &config)
                .await
                .expect("a decision")
                .retry_after()
        }
    };
    let first = with(redis_at(&url));
    for i in 0..3 {
        assert_eq!(ask(first.clone()).await, None, "request {i} is allowed");
    }
    assert!(ask(first.clone()).await.is_some(), "the fourth is denied");
    // Redis restarted: it remembers nothing (a fresh namespace), the floor still does.
    let restarted = with(redis_at(&url));
    assert!(
        ask(restarted).await.is_some(),
        "an empty Redis lifted the limit"
    );
    // Redis down: the floor decides alone.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .unwrap()
        .port();
    let down = with(redis_at(&format!("redis://127.0.0.1:{port}")));
    assert!(ask(down).await.is_some(), "a Redis outage lifted the limit");
    // Another number is counted apart.
    let other = keyer.key(&wa_pairing_phone::parse("+6281234500062").unwrap());
    let decision = first
        .budget()
        .unwrap()
        .try_acquire(&other, &config)
        .await
        .unwrap();
    assert_eq!(decision.retry_after(), None);
    db.drop().await;
}
