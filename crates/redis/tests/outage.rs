//! Redis down or stalled never blocks a caller beyond its timeout, and the resilient cache
//! degrades to a miss; TLS URLs parse and fail cleanly; the budget refills and refuses.

use std::time::Duration;

use tokio::net::TcpListener;
use wa_pairing_code::{IssuedCode, PairingCode};
use wa_pairing_redis::{RedisConfig, RedisStore};
use wa_pairing_store::{
    AuthStateStore, BudgetConfig, BudgetDecision, BudgetKeyer, CodeCache, DeviceId, ErrorKind,
    Fence, PairingBudget,
};
use wa_pairing_store_testkit::{Skip, skip};

/// An outer bound far above the 250 ms timeout: a call that hangs would blow through it.
const HANG: Duration = Duration::from_secs(5);

fn code() -> IssuedCode {
    IssuedCode::new(
        PairingCode::generate(),
        chrono::Utc::now(),
        Duration::from_secs(180),
    )
}

async fn every_call_fails_fast_and_the_cache_degrades(url: &str) {
    let store = RedisStore::new(&RedisConfig::new(url)).unwrap();
    let id = DeviceId::random();
    let put = tokio::time::timeout(HANG, CodeCache::put(&store, id, &code()))
        .await
        .expect("returned");
    let err = put.unwrap_err();
    assert!(
        matches!(err.kind(), ErrorKind::Unavailable | ErrorKind::Timeout),
        "{err:?}"
    );
    assert!(wa_pairing_retry::Classify::verdict(&err).is_retryable());
    let get = tokio::time::timeout(HANG, CodeCache::get(&store, id))
        .await
        .expect("returned");
    assert!(get.is_err());
    let auth = tokio::time::timeout(HANG, AuthStateStore::put(&store, id, Fence(1), "k", b"v"))
        .await
        .expect("returned");
    assert!(auth.is_err());
    let key = BudgetKeyer::random().key(&wa_pairing_phone::parse("081234567890").unwrap());
    let budget = tokio::time::timeout(HANG, store.try_acquire(&key, &BudgetConfig::default()))
        .await
        .expect("returned");
    assert!(budget.is_err());

    let cache = store.resilient_cache();
    let r = tokio::time::timeout(HANG, cache.put(id, &code()))
        .await
        .expect("returned");
    assert!(r.is_ok(), "a resilient put never fails");
    let r = tokio::time::timeout(HANG, cache.get(id))
        .await
        .expect("returned");
    assert_eq!(r.unwrap(), None, "a resilient get is a miss");
    assert!(cache.is_down());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_where_nothing_listens() {
    // Bind and drop to find a free port.
    let port = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    every_call_fails_fast_and_the_cache_degrades(&format!("redis://127.0.0.1:{port}")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_accepts_and_then_stalls() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let held = std::sync::Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let h = held.clone();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            h.lock().await.push(sock); // never read, never answer
        }
    });
    every_call_fails_fast_and_the_cache_degrades(&format!("redis://127.0.0.1:{port}")).await;
    assert!(!held.lock().await.is_empty(), "the client did connect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_url_to_a_plain_port_fails_cleanly() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            drop(sock);
        }
    });
    let store = RedisStore::new(&RedisConfig::new(format!(
        "rediss://user:pw@127.0.0.1:{port}"
    )))
    .unwrap();
    let r = tokio::time::timeout(HANG, CodeCache::get(&store, DeviceId::random()))
        .await
        .expect("returned");
    let err = r.unwrap_err();
    assert!(!err.to_string().contains("pw"), "{err}");
    assert!(RedisStore::new(&RedisConfig::new("rediss://example.com:6380/0")).is_ok());
}

async fn live() -> Result<String, Skip> {
    let url = std::env::var("WA_PAIRING_TEST_REDIS_URL")
        .map_err(|_| Skip::new("WA_PAIRING_TEST_REDIS_URL is not set"))?;
    let store = RedisStore::new(&RedisConfig::new(&url)).map_err(|e| Skip::new(e.to_string()))?;
    CodeCache::get(&store, DeviceId::random())
        .await
        .map_err(|e| Skip::new(format!("no Redis at WA_PAIRING_TEST_REDIS_URL: {e}")))?;
    Ok(url)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_budget_refuses_then_refills() {
    let url = match live().await {
        Ok(u) => u,
        Err(why) => return skip("budget", &why),
    };
    let prefix = format!("wa-test-{}:", uuid::Uuid::new_v4().simple());
    let store = RedisStore::new(&RedisConfig::new(&url).prefix(&prefix)).unwrap();
    let budget = BudgetConfig::new(2, Duration::from_millis(400));
    let keyer = BudgetKeyer::random();
    let phone = keyer.key(&wa_pairing_phone::parse("081234567890").unwrap());
    let other = keyer.key(&wa_pairing_phone::parse("+447911123456").unwrap());
    assert_eq!(
        store.try_acquire(&phone, &budget).await.unwrap(),
        BudgetDecision::Allowed
    );
    assert_eq!(
        store.try_acquire(&phone, &budget).await.unwrap(),
        BudgetDecision::Allowed
    );
    let BudgetDecision::Denied { retry_after } = store.try_acquire(&phone, &budget).await.unwrap()
    else {
        panic!("a third request within the window must be refused");
    };
    assert!(
        retry_after > Duration::ZERO && retry_after <= Duration::from_millis(400),
        "{retry_after:?}"
    );
    assert_eq!(
        store.try_acquire(&other, &budget).await.unwrap(),
        BudgetDecision::Allowed,
        "budgets are per number"
    );
    // Wait for the bucket to refill (polling the condition, not a fixed sleep).
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if store.try_acquire(&phone, &budget).await.unwrap() == BudgetDecision::Allowed {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the budget never refilled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The number is never stored in clear.
    let client = redis::Client::open(url.as_str()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    assert!(
        keys.iter().all(|k| !k.contains("6281234567890")),
        "{keys:?}"
    );
    let _: () = redis::cmd("DEL")
        .arg(keys)
        .query_async(&mut c)
        .await
        .unwrap();
}

#[test]
fn the_store_is_built_outside_a_runtime_and_connects_inside_one() {
    let Ok(url) = std::env::var("WA_PAIRING_TEST_REDIS_URL") else {
        return skip(
            "built outside a runtime",
            &Skip::new("WA_PAIRING_TEST_REDIS_URL is not set"),
        );
    };
    // Built in plain synchronous code, as a settings loader does: no connection yet.
    let store = wa_pairing_redis::RedisConfig::new(&url)
        .build()
        .expect("a lazy store needs no runtime");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime
        .block_on(store.ping())
        .expect("the first call connects");
    // Refused settings are refused at build time, still without a runtime.
    let e = wa_pairing_redis::RedisConfig::new("http://127.0.0.1:6379")
        .build()
        .unwrap_err();
    assert_eq!(e.kind(), wa_pairing_store::ErrorKind::Configuration);
    assert!(e.message().contains("redis://"), "{e}");
}
