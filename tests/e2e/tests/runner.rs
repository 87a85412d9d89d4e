//! The runner with the real whatsapp-rust client against the simulator: pairing, recovery,
//! refusals, a mistyped code, Redis down, takeovers and several instances, over the in-memory
//! store and PostgreSQL.

use std::time::Duration;

use wa_pairing_e2e::{Stack, Stores};
use wa_pairing_sim::Refusal;
use wa_pairing_store::DeviceStatus;
use wa_pairing_store::testkit::skip;

async fn pairs_then_resumes_after_a_restart(stores: Stores) {
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let phone = "6281234500001";
    let d = stack.device(phone).await;
    let first = stack.runner(Stack::config("runner-a"));
    let linked = stack.connected(d.id).await;
    assert_eq!(linked.phone_number.as_deref(), Some(phone));
    assert!(linked.pairing_code.is_none());
    let stored = stack.stores.auth.scan_prefix(d.id, "").await.unwrap();
    assert!(!stored.is_empty(), "the client's state is stored");
    let summary = first.shutdown().await;
    assert!(summary.released >= 1);
    let released = stack.stores.devices.get(d.id).await.unwrap();
    assert!(released.lease_owner.is_none());
    assert_eq!(released.status, DeviceStatus::Connected);

    // A new runner (a restart) resumes from the stored, encrypted state without pairing.
    let logins = stack.sim.counters().logins;
    let second = stack.runner(Stack::config("runner-b"));
    stack
        .until(d.id, "resumed", |x| {
            x.lease_owner.as_deref() == Some("runner-b")
                && x.last_connected_at > linked.last_connected_at
        })
        .await;
    let counters = stack.sim.counters();
    assert_eq!(counters.code_requests_for(phone), 1, "no second pairing");
    assert!(counters.logins > logins);
    assert_eq!(
        counters.max_sessions_for(phone),
        1,
        "never two sockets for one account"
    );
    second.shutdown().await;
    person.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_pairs_then_resumes_after_a_restart() {
    pairs_then_resumes_after_a_restart(Stores::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_pairs_then_resumes_after_a_restart() {
    let (stores, db) = match Stores::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("postgres e2e", &why),
    };
    pairs_then_resumes_after_a_restart(stores).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_end_in_the_right_status_without_a_request_storm() {
    let stack = Stack::start(Stores::memory()).await;
    let cases = [
        (
            "6281234500010",
            Refusal::RateOverlimit {
                backoff: Some(Duration::from_secs(300)),
            },
            "limiting",
            true,
            1,
        ),
        (
            "6281234500011",
            Refusal::BadRequest { backoff: None },
            "limiting",
            true,
            1,
        ),
        ("6281234500012", Refusal::Forbidden, "forbidden", false, 1),
        (
            "6281234500013",
            Refusal::FeatureNotAvailable,
            "QR code",
            false,
            1,
        ),
        (
            "6281234500014",
            Refusal::InternalServerError,
            "after 3 attempts",
            false,
            3,
        ),
    ];
    for (phone, refusal, _, _, _) in &cases {
        stack.sim.phone(phone).refuse_code_requests(*refusal, None);
    }
    let mut ids = Vec::new();
    for (phone, ..) in &cases {
        ids.push(stack.device(phone).await.id);
    }
    let runner = stack.runner(Stack::config("runner-r"));
    for (id, (phone, refusal, words, throttled, requests)) in ids.into_iter().zip(cases) {
        let failed = stack
            .until(id, "failed", |d| d.status == DeviceStatus::Failed)
            .await;
        let msg = failed.error_message.unwrap_or_default();
        assert!(msg.contains(words), "{refusal:?}: {msg}");
        assert_eq!(failed.retry_after.is_some(), throttled, "{refusal:?}");
        assert_eq!(
            stack.sim.counters().code_requests_for(phone),
            requests,
            "{refusal:?}"
        );
    }
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_killed_runner_is_taken_over_and_the_session_resumes_without_pairing() {
    let stack = Stack::start(Stores::memory()).await;
    let person = stack.person();
    let phone = "6281234500020";
    let d = stack.device(phone).await;
    let a = stack.runner(Stack::config("runner-a"));
    let linked = stack.connected(d.id).await;
    a.kill();
    let b = stack.runner(Stack::config("runner-b"));
    let taken = stack
        .until(d.id, "taken over", |x| {
            x.lease_owner.as_deref() == Some("runner-b")
        })
        .await;
    assert!(taken.lease_fence > linked.lease_fence);
    assert_eq!(taken.status, DeviceStatus::Connected);
    stack
        .until(d.id, "resumed", |x| {
            x.last_connected_at > linked.last_connected_at
        })
        .await;
    assert_eq!(
        stack.sim.counters().code_requests_for(phone),
        1,
        "resumed, not paired again"
    );
    b.shutdown().await;
    person.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_runner_killed_mid_pairing_is_reissued_by_another() {
    let stack = Stack::start(Stores::memory()).await;
    let phone = "6281234500030";
    let d = stack.device(phone).await;
    let a = stack.runner(Stack::config("runner-a"));
    let shown = stack
        .until(d.id, "a code", |x| x.status == DeviceStatus::WaitingPairing)
        .await;
    a.kill();
    let person = stack.person();
    let b = stack.runner(Stack::config("runner-b"));
    let linked = stack.connected(d.id).await;
    assert_eq!(linked.lease_owner.as_deref(), Some("runner-b"));
    assert!(linked.lease_fence > shown.lease_fence);
    assert_eq!(
        stack.sim.counters().code_requests_for(phone),
        2,
        "a fresh code was issued"
    );
    b.shutdown().await;
    person.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_pair_every_device_exactly_once() {
    let stack = Stack::start(Stores::memory()).await;
    let person = stack.person();
    let mut ids = Vec::new();
    for i in 0..30 {
        ids.push(stack.device(&format!("62812346{i:05}")).await.id);
    }
    let runners: Vec<_> = ["r1", "r2", "r3"]
        .iter()
        .map(|n| stack.runner(Stack::config(n)))
        .collect();
    for id in &ids {
        stack.connected(*id).await;
    }
    // A device is stored as connected as soon as the client has seen pair-success; the
    // simulator counts the pairing when the client's signed answer arrives, a moment later.
    let counters = stack
        .sim
        .wait_for_counters(Duration::from_secs(10), |c| c.pairings >= 30)
        .await
        .expect("the simulator counts every pairing");
    assert_eq!(counters.pairings, 30);
    assert!(
        counters.max_sessions_any() <= 1,
        "two sockets for one account: {counters:?}"
    );
    for i in 0..30 {
        assert_eq!(counters.code_requests_for(&format!("62812346{i:05}")), 1);
    }
    // Shutting the instances down one by one hands devices over to the others; in the end
    // every lease is released and no account ever had two sockets.
    let mut released = 0;
    for r in runners {
        released += r.shutdown().await.released;
    }
    assert!(
        released >= 30,
        "graceful shutdown releases every lease ({released})"
    );
    assert!(stack.sim.counters().max_sessions_any() <= 1);
    for id in &ids {
        assert!(
            stack
                .stores
                .devices
                .get(*id)
                .await
                .unwrap()
                .lease_owner
                .is_none()
        );
    }
    person.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mistyped_code_is_refused_and_the_right_one_still_links() {
    let stack = Stack::start(Stores::memory()).await;
    let runner = stack.runner(Stack::config("runner-typo"));
    let d = stack.device("6281234500030").await;
    let shown = stack
        .until(d.id, "a code", |d| d.pairing_code.is_some())
        .await;
    let code = shown.pairing_code.expect("a code").to_string();
    // One character off, as a person mistypes it.
    let typo: String = code
        .chars()
        .enumerate()
        .map(|(i, c)| match (i, c) {
            (0, 'A') => 'B',
            (0, _) => 'A',
            _ => c,
        })
        .collect();
    let phone = stack.sim.phone("6281234500030");
    let refused = phone.enter_code(&typo).await;
    assert!(
        matches!(refused, Err(wa_pairing_sim::SimError::WrongCode)),
        "{refused:?}"
    );
    let still = stack.stores.devices.get(d.id).await.expect("get");
    assert_eq!(still.status, DeviceStatus::WaitingPairing);
    assert_eq!(
        still.pairing_code.map(|c| c.to_string()).as_deref(),
        Some(code.as_str()),
        "a typo does not cost the owner the code on screen"
    );
    phone.enter_code(&code).await.expect("the right code links");
    let linked = stack.connected(d.id).await;
    assert_eq!(linked.phone_number.as_deref(), Some("6281234500030"));
    assert_eq!(stack.sim.counters().code_requests_for("6281234500030"), 1);
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redis_down_for_the_whole_run_does_not_stop_pairing() {
    // Redis as configured, but nothing listens there: the code cache and the budget fail on
    // every call, and pairing carries on from the primary store.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let redis = wa_pairing_redis::RedisStore::new(wa_pairing_redis::RedisConfig::new(format!(
        "redis://127.0.0.1:{port}"
    )))
    .expect("a lazy client");
    let cache = std::sync::Arc::new(redis.resilient_cache());
    let mut stores = Stores::memory();
    stores.cache = Some(cache.clone());
    stores.budget = Some(std::sync::Arc::new(redis));
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let runner = stack.runner(Stack::config("runner-no-redis"));
    let d = stack.device("6281234500031").await;
    let linked = stack.connected(d.id).await;
    assert_eq!(linked.phone_number.as_deref(), Some("6281234500031"));
    assert!(
        cache.is_down(),
        "the runner did try the cache, and found it down"
    );
    assert_eq!(stack.sim.counters().code_requests_for("6281234500031"), 1);
    runner.shutdown().await;
    person.abort();
}
