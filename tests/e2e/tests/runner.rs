//! The runner with the real whatsapp-rust client against the simulator: pairing, recovery,
//! refusals, a mistyped code, Redis down, takeovers and several instances, over the in-memory
//! store and PostgreSQL.

use std::collections::HashSet;
use std::time::Duration;

use wa_pairing_e2e::Stack;
use wa_pairing_runner::SessionChange;
use wa_pairing_sim::{EncType, Refusal};
use wa_pairing_store::DeviceStatus;
use wa_pairing_store::Stores;
use wa_pairing_store_testkit::skip;
use wa_pairing_whatsapp::{SendError, WhatsAppSession};

async fn pairs_then_resumes_after_a_restart(stores: Stores) {
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let phone = "6281234500001";
    let d = stack.device(phone).await;
    let first = stack.runner(Stack::config("runner-a"));
    let linked = stack.connected(d.id).await;
    assert_eq!(
        linked
            .phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some(phone)
    );
    assert!(linked.pairing_code.is_none());
    let stored = stack
        .stores
        .auth_state()
        .scan_prefix(d.id, "")
        .await
        .unwrap();
    assert!(!stored.is_empty(), "the client's state is stored");
    let summary = first.shutdown().await;
    assert!(summary.released >= 1);
    let released = stack.stores.devices().get(d.id).await.unwrap();
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
    pairs_then_resumes_after_a_restart(wa_pairing_e2e::memory()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_pairs_then_resumes_after_a_restart() {
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("postgres e2e", &why),
    };
    pairs_then_resumes_after_a_restart(stores).await;
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_transaction_pooler_pairs_then_resumes_after_a_restart() {
    let (stores, db, bouncer) = match wa_pairing_e2e::postgres_through_pooler().await {
        Ok(x) => x,
        Err(why) => return skip("postgres through pgbouncer e2e", &why),
    };
    assert!(
        !stores.capabilities().change_feed,
        "no change feed through a transaction pooler"
    );
    pairs_then_resumes_after_a_restart(stores).await;
    drop(bouncer);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn supabase_rest_pairs_then_resumes_after_a_restart() {
    let (stores, db, rest) = match wa_pairing_e2e::supabase_rest().await {
        Ok(x) => x,
        Err(why) => return skip("supabase rest e2e", &why),
    };
    assert!(
        !stores.capabilities().change_feed,
        "no change feed through the REST API: runners poll for work"
    );
    pairs_then_resumes_after_a_restart(stores).await;
    drop(rest);
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn refusals_end_in_the_right_status_without_a_request_storm() {
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
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
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
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
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
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

/// `names.len()` instances share 100 devices created while they run: every device is paired
/// exactly once with one code, and the simulator never sees two sockets for one account. Then
/// the busiest instance stops gracefully and the others resume its devices from stored state
/// without pairing; in the end the rest stop too and every lease is released.
async fn instances_share_devices(names: &[&str], prefix: &str) {
    const DEVICES: usize = 100;
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
    let person = stack.person();
    // A hundred pairings at once saturate a small machine for seconds (every client makes
    // and stores 812 pre-keys): leases long enough to outlast that, as production's 30 s do.
    let config = |n: &str| {
        Stack::config(n)
            .lease_for(Duration::from_secs(20))
            .heartbeat(Duration::from_secs(2))
            .shutdown_grace(Duration::from_secs(60))
    };
    let mut runners: Vec<_> = names
        .iter()
        .map(|n| (*n, stack.runner(config(n))))
        .collect();
    let phones: Vec<String> = (0..DEVICES).map(|i| format!("{prefix}{i:05}")).collect();
    let mut ids = Vec::new();
    for phone in &phones {
        ids.push(stack.device(phone).await.id);
    }
    let mut linked = Vec::new();
    for id in &ids {
        linked.push(stack.connected(*id).await);
    }
    // A device is stored as connected as soon as the client has seen pair-success; the
    // simulator counts the pairing when the client's signed answer arrives, a moment later.
    let counters = stack
        .sim
        .wait_for_counters(Duration::from_secs(30), |c| c.pairings >= DEVICES as u64)
        .await
        .expect("the simulator counts every pairing");
    assert_eq!(counters.pairings, DEVICES as u64);
    assert!(
        counters.max_sessions_any() <= 1,
        "two sockets for one account: {counters:?}"
    );
    for phone in &phones {
        assert_eq!(counters.code_requests_for(phone), 1, "one code for {phone}");
    }

    // The busiest instance stops; the others take its devices over and resume them.
    let mut share = std::collections::HashMap::<String, Vec<usize>>::new();
    for (i, id) in ids.iter().enumerate() {
        let d = stack.stores.devices().get(*id).await.unwrap();
        let owner = d.lease_owner.expect("every connected device is held");
        share.entry(owner).or_default().push(i);
    }
    println!(
        "devices per instance: {:?}",
        share.iter().map(|(k, v)| (k, v.len())).collect::<Vec<_>>()
    );
    let (busiest, handed) = share
        .into_iter()
        .max_by_key(|(_, v)| v.len())
        .expect("some instance holds devices");
    let at = runners
        .iter()
        .position(|(n, _)| *n == busiest)
        .expect("a known instance");
    let (_, stopped) = runners.remove(at);
    let summary = stopped.shutdown().await;
    assert_eq!(summary.abandoned, 0, "every session closed in time");
    assert!(
        summary.released >= handed.len() as u64,
        "{} devices held, {summary:?}",
        handed.len()
    );
    for i in &handed {
        let before = &linked[*i];
        stack
            .until(before.id, "resumed by another instance", |x| {
                x.status == DeviceStatus::Connected
                    && x.lease_owner.is_some()
                    && x.lease_owner.as_deref() != Some(busiest.as_str())
                    && x.last_connected_at > before.last_connected_at
            })
            .await;
    }
    let counters = stack.sim.counters();
    assert!(
        counters.max_sessions_any() <= 1,
        "two sockets for one account during the handover: {counters:?}"
    );
    for phone in &phones {
        assert_eq!(counters.code_requests_for(phone), 1, "{phone} paired again");
    }

    // The rest stop too: every lease is released and no account ever had two sockets.
    for (_, r) in runners {
        let summary = r.shutdown().await;
        assert_eq!(summary.abandoned, 0);
    }
    assert!(stack.sim.counters().max_sessions_any() <= 1);
    for id in &ids {
        let d = stack.stores.devices().get(*id).await.unwrap();
        assert!(d.lease_owner.is_none(), "a lease was left behind: {d:?}");
        assert_eq!(d.status, DeviceStatus::Connected);
    }
    person.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_instances_share_100_devices_each_paired_once_never_two_sockets() {
    instances_share_devices(&["r1", "r2"], "62812347").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_instances_share_100_devices_each_paired_once_never_two_sockets() {
    instances_share_devices(&["r1", "r2", "r3"], "62812346").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_mistyped_code_is_refused_and_the_right_one_still_links() {
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
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
    let still = stack.stores.devices().get(d.id).await.expect("get");
    assert_eq!(still.status, DeviceStatus::WaitingPairing);
    assert_eq!(
        still.pairing_code.map(|c| c.to_string()).as_deref(),
        Some(code.as_str()),
        "a typo does not cost the owner the code on screen"
    );
    phone.enter_code(&code).await.expect("the right code links");
    let linked = stack.connected(d.id).await;
    assert_eq!(
        linked
            .phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some("6281234500030")
    );
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
    let redis = wa_pairing_redis::RedisStore::new(&wa_pairing_redis::RedisConfig::new(format!(
        "redis://127.0.0.1:{port}"
    )))
    .expect("a lazy client");
    let cache = std::sync::Arc::new(redis.resilient_cache());
    let memory = wa_pairing_store::MemoryStore::new();
    let stores = wa_pairing_store::Stores::builder(memory.clone(), memory.clone())
        .code_cache(cache.clone())
        .budget(redis)
        .budget(memory)
        .encrypt(wa_pairing_e2e::test_keyring())
        .build();
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let runner = stack.runner(Stack::config("runner-no-redis"));
    let d = stack.device("6281234500031").await;
    let linked = stack.connected(d.id).await;
    assert_eq!(
        linked
            .phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some("6281234500031")
    );
    assert!(
        cache.is_down(),
        "the runner did try the cache, and found it down"
    );
    assert_eq!(stack.sim.counters().code_requests_for("6281234500031"), 1);
    runner.shutdown().await;
    person.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_untyped_code_is_replaced_then_the_device_fails_and_asks_for_a_refresh() {
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
    let phone = "6281234500050";
    let d = stack.device(phone).await;
    // Nobody types: each code lapses after its (shortened) lifetime and is replaced once.
    let runner = stack.runner(
        Stack::config("runner-expiry")
            .code_lifetime(Duration::from_secs(2))
            .code_refreshes(1),
    );
    let first = stack
        .until(d.id, "a code", |x| x.status == DeviceStatus::WaitingPairing)
        .await;
    let second = stack
        .until(d.id, "a fresh code", |x| {
            x.status == DeviceStatus::WaitingPairing
                && x.pairing_code_expires_at > first.pairing_code_expires_at
        })
        .await;
    assert!(second.pairing_code.is_some());
    // Failed first, then the lease released (a change feed can show the two apart).
    let failed = stack
        .until(d.id, "failed, with nothing left to hold", |x| {
            x.status == DeviceStatus::Failed && x.lease_owner.is_none()
        })
        .await;
    let message = failed.error_message.expect("a message for the owner");
    assert!(message.contains("expired"), "{message}");
    assert!(message.contains("refresh"), "{message}");
    assert!(failed.pairing_code.is_none(), "the dead code is cleared");
    let counters = stack.sim.counters();
    assert_eq!(
        counters.code_requests_for(phone),
        2,
        "one code and one refresh, no more"
    );
    assert_eq!(counters.pairings, 0);
    runner.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_postgres_connection_cut_mid_run_loses_nothing() {
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("postgres e2e", &why),
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let (before_phone, after_phone) = ("6281234500060", "6281234500061");
    let before = stack.device(before_phone).await;
    let runner = stack.runner(Stack::config("runner-cut"));
    let linked = stack.connected(before.id).await;
    let state = stack
        .stores
        .auth_state()
        .scan_prefix(before.id, "")
        .await
        .unwrap();

    // Every connection to the database goes: the pool's, and the change feed's.
    assert!(db.cut_connections().await > 0, "the runner was connected");
    // The pool replaces dead connections as it hands them out; a query caught in the cut
    // itself may fail, as it would for any client.
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while stack.stores.devices().get(before.id).await.is_err() {
        assert!(
            tokio::time::Instant::now() < end,
            "the store never recovered"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Work still flows: a device added after the cut pairs, the linked one stays linked.
    let after = stack.device(after_phone).await;
    stack.connected(after.id).await;
    let kept = stack.stores.devices().get(before.id).await.unwrap();
    assert_eq!(kept.status, DeviceStatus::Connected);
    assert_eq!(kept.lease_owner.as_deref(), Some("runner-cut"));
    assert_eq!(kept.phone_number, linked.phone_number);
    let state_after = stack
        .stores
        .auth_state()
        .scan_prefix(before.id, "")
        .await
        .unwrap();
    for (key, _) in &state {
        assert!(
            state_after.iter().any(|(k, _)| k == key),
            "auth state key {key} was lost"
        );
    }
    let summary = runner.shutdown().await;
    assert_eq!(summary.leases_lost, 0, "the cut cost no session its lease");

    // Nothing was lost: after a restart both resume from stored state without pairing.
    let logins = stack.sim.counters().logins;
    let again = stack.runner(Stack::config("runner-after"));
    for id in [before.id, after.id] {
        stack
            .until(id, "resumed", |x| {
                x.lease_owner.as_deref() == Some("runner-after")
                    && x.status == DeviceStatus::Connected
            })
            .await;
    }
    let counters = stack
        .sim
        .wait_for_counters(Duration::from_secs(30), |c| c.logins >= logins + 2)
        .await
        .expect("both devices log in again");
    assert_eq!(counters.code_requests_for(before_phone), 1);
    assert_eq!(counters.code_requests_for(after_phone), 1);
    assert!(counters.max_sessions_any() <= 1);
    again.shutdown().await;
    person.abort();
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn pairs_by_qr_end_to_end() {
    use wa_pairing_store::{ConnectionMethod, NewDevice, PairingRequest, UserId};
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
    let devices = stack.stores.devices();
    let d = devices
        .create(NewDevice::new(UserId::random(), "e2e qr").method(ConnectionMethod::Qr))
        .await
        .unwrap();
    let d = devices
        .start_pairing(d.id, PairingRequest::Qr)
        .await
        .unwrap();
    let runner = stack.runner(Stack::config("runner-qr"));
    // The simulator hands the registration connection its refs; the runner stores the QR.
    let shown = stack
        .until(d.id, "a QR code", |x| x.qr_code.is_some())
        .await;
    assert_eq!(shown.status, DeviceStatus::WaitingPairing);
    let phone = "6281234500077";
    stack
        .sim
        .phone(phone)
        .scan_qr(shown.qr_code.as_deref().unwrap())
        .await
        .expect("the stored QR links");
    let linked = stack.connected(d.id).await;
    assert_eq!(
        linked
            .phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some(phone)
    );
    let counters = stack.sim.counters();
    assert_eq!(counters.pairings, 1);
    assert_eq!(
        counters.code_requests_for(phone),
        0,
        "no code was asked for"
    );
    runner.shutdown().await;
}

/// Three instances over PostgreSQL; the one that holds every session dies. The two left take
/// every session over, each at no more than its resume rate, the longest-lapsed lease
/// first, no account ever on two sockets, and a device asking for a code meanwhile gets it
/// while the takeover is still under way.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_instances_sessions_are_taken_over_at_the_resume_rate() {
    const SESSIONS: usize = 12;
    const RATE: f64 = 1.0;
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("postgres takeover e2e", &why),
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let paced = |n: &str| {
        Stack::config(n)
            .lease_for(Duration::from_secs(6))
            .heartbeat(Duration::from_secs(1))
            .resume_rate(RATE)
            .resume_jitter(0.25)
    };
    // The first instance links every device before the others start, so it holds them all.
    let a = stack.runner(paced("dying"));
    let phones: Vec<String> = (0..SESSIONS).map(|i| format!("628123455{i:04}")).collect();
    let mut ids = Vec::new();
    for phone in &phones {
        ids.push(stack.device(phone).await.id);
    }
    for id in &ids {
        let d = stack.connected(*id).await;
        assert_eq!(d.lease_owner.as_deref(), Some("dying"));
    }
    stack
        .sim
        .wait_for_counters(Duration::from_secs(30), |c| c.logins >= SESSIONS as u64)
        .await
        .expect("every linked companion logged in");
    let b = stack.runner(paced("left-1"));
    let c = stack.runner(paced("left-2"));
    let mut logins = stack.sim.events();
    let killed = tokio::time::Instant::now();
    let killed_second = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    a.kill();

    // Each login after the kill, when it happened, for which phone.
    let mut seen: Vec<(tokio::time::Instant, String)> = Vec::new();
    next_login(&mut logins, &mut seen).await;
    // The takeover is under way: a new device asks for a code, and gets it before the
    // takeover ends (pairings are never paced).
    let newcomer = stack.device("6281234569999").await;
    stack
        .until(newcomer.id, "a code during the takeover", |d| {
            d.status == DeviceStatus::WaitingPairing
        })
        .await;
    let resumed_when_coded = seen.len();
    while seen.iter().filter(|(_, p)| phones.contains(p)).count() < SESSIONS {
        next_login(&mut logins, &mut seen).await;
    }
    assert!(
        resumed_when_coded < SESSIONS,
        "the code waited for all {SESSIONS} resumes"
    );
    let seen: Vec<(tokio::time::Instant, String)> = seen
        .into_iter()
        .filter(|(_, p)| phones.contains(p))
        .collect();
    assert_eq!(
        seen.len(),
        SESSIONS,
        "each session logged in once: {seen:?}"
    );

    // Who resumed what: every session is held by one of the two left, and connected.
    let mut by_instance = std::collections::HashMap::<String, Vec<tokio::time::Instant>>::new();
    for (at, phone) in &seen {
        let i = phones
            .iter()
            .position(|p| p == phone)
            .expect("a known phone");
        let d = stack.connected(ids[i]).await;
        let owner = d.lease_owner.expect("held");
        assert!(owner == "left-1" || owner == "left-2", "held by {owner}");
        by_instance.entry(owner).or_default().push(*at);
    }
    // Never faster than the rate: one instance logs in at most once per second, so any one
    // second holds at most two of its logins (one at each end), whatever the delivery delay.
    for (owner, times) in &by_instance {
        for (i, t) in times.iter().enumerate() {
            let within = times[i..]
                .iter()
                .take_while(|u| **u - *t < Duration::from_secs(1))
                .count();
            assert!(
                within <= 2,
                "{owner} logged in {within} sessions within a second"
            );
        }
    }
    // Together, the twelve take at least (12 / 2 instances - 1) seconds at one per second
    // each; unpaced, they would log in within a moment.
    let span = seen.last().expect("logins").0 - seen[0].0;
    assert!(
        span >= Duration::from_secs(4),
        "twelve sessions resumed within {span:?}"
    );
    let counters = stack.sim.counters();
    // The simulator's own count agrees: no second after the kill saw more logins than the
    // two instances' pace allows (two each at a second's edges), plus the newcomer's. (The
    // linking's own logins fall in the kill's second or before it; the first resume comes a
    // lease period later.)
    assert!(
        seen[0].0 - killed > Duration::from_secs(2),
        "resumed before the leases lapsed"
    );
    for (second, n) in counters.logins_by_second.range(killed_second + 1..) {
        assert!(
            *n <= 5,
            "{n} logins in second {second} (the kill in {killed_second}): {:?}; seen {seen:?} from {killed:?}",
            counters.logins_by_second
        );
    }
    assert!(
        counters.max_sessions_any() <= 1,
        "two sockets for one account: {counters:?}"
    );
    for phone in &phones {
        assert_eq!(counters.code_requests_for(phone), 1, "{phone} paired again");
    }
    println!(
        "takeover of {SESSIONS} sessions: {:?} after the kill, by instance {:?}",
        seen.last().expect("logins").0 - killed,
        by_instance
            .iter()
            .map(|(k, v)| (k, v.len()))
            .collect::<Vec<_>>()
    );
    b.shutdown().await;
    c.shutdown().await;
    person.abort();
    db.drop().await;
}

/// Waits for the simulator's next login and notes when it happened and for which phone.
async fn next_login(
    events: &mut tokio::sync::broadcast::Receiver<wa_pairing_sim::SimEvent>,
    seen: &mut Vec<(tokio::time::Instant, String)>,
) {
    loop {
        let event = tokio::time::timeout(Duration::from_secs(60), events.recv())
            .await
            .unwrap_or_else(|_| panic!("no login within a minute; {} so far", seen.len()))
            .expect("the simulator's events");
        if let wa_pairing_sim::SimEvent::LoggedIn { phone, .. } = event {
            seen.push((tokio::time::Instant::now(), phone));
            return;
        }
    }
}

/// The application gets the linked device's live WhatsApp session from the runner, and the
/// handle refuses to send the moment the owner's stop revokes the lease (nothing reaches
/// the client).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_live_whatsapp_session_refuses_to_send_once_its_lease_is_lost() {
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
    let person = stack.person();
    let phone = "6281234500040";
    let d = stack.device(phone).await;
    let runner = stack.runner(Stack::config("runner-live"));
    let mut changes = runner.sessions.subscribe();
    let linked = stack.connected(d.id).await;
    let change = tokio::time::timeout(Duration::from_secs(60), changes.recv())
        .await
        .expect("the session is offered")
        .expect("changes");
    assert_eq!(change, SessionChange::Connected { device_id: d.id });
    let live = runner.sessions.get(d.id).expect("a live session");
    assert_eq!(live.fence(), linked.lease_fence);
    let wa = WhatsAppSession::of(&live).expect("a WhatsApp session");
    assert!(wa.client().expect("live").is_connected());
    assert_eq!(wa.device_id(), d.id);

    // The owner stops the device: the lease is revoked, and the handle refuses at once.
    stack.stores.devices().disconnect(d.id).await.expect("stop");
    tokio::time::timeout(Duration::from_secs(30), live.ended())
        .await
        .expect("the handle ends with the lease");
    let to = wa_pairing_phone::parse("+6281234500041").expect("a number");
    let err = wa.send_text(&to, "hello").await.expect_err("refused");
    assert!(matches!(err, SendError::NotLive(_)), "{err}");
    assert!(!err.to_string().contains("6281234500041"), "{err}");
    assert!(wa.client().is_err());
    assert!(runner.sessions.get(d.id).is_none());
    runner.shutdown().await;
    person.abort();
}

/// Waits (at most a minute) for a text message among a session's events; returns whether it
/// came from the account itself and the chat's number.
async fn text_arrives(
    events: &mut tokio::sync::broadcast::Receiver<std::sync::Arc<wacore::types::events::Event>>,
    text: &str,
) -> (bool, String) {
    use wacore::proto_helpers::MessageExt as _;
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            let event = events.recv().await.expect("the session's events");
            if let Some(m) = event
                .messages()
                .find(|m| m.message.text_content() == Some(text))
            {
                return (
                    m.info.source.is_from_me,
                    m.info.source.chat.user.to_string(),
                );
            }
        }
    })
    .await
    .expect("the message reaches the application")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn messages_go_both_ways_through_a_live_session_and_its_signal_sessions_survive_a_restart() {
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("postgres messaging e2e", &why),
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let (owner_number, friend_number) = ("6281234500060", "6281234500061");
    let friend_to = wa_pairing_phone::parse(&format!("+{friend_number}")).expect("a number");
    let d = stack.device(owner_number).await;
    let runner = stack.runner(Stack::config("runner-messages"));
    stack.connected(d.id).await;
    let owner = stack.sim.phone(owner_number);
    let friend = stack.sim.phone(friend_number);
    // The client acknowledges the phone's key share once it has decrypted it.
    owner
        .wait_for_receipt(Duration::from_secs(60), |r| {
            r.kind.as_deref() == Some("peer_msg")
        })
        .await
        .expect("the key share is received");
    let wa = WhatsAppSession::of(&runner.live_session(d.id).await).expect("WhatsApp");
    let mut events = wa.events();

    // A number with no WhatsApp account (no one created it at the simulator): refused
    // before anything is sent, in words that name neither the number nor the text.
    let nobody = wa_pairing_phone::parse("+6281234500069").expect("a number");
    let before = stack.sim.counters().messages_from_companions;
    let err = wa
        .send_text(&nobody, "anyone there?")
        .await
        .expect_err("no account, no message");
    assert!(
        matches!(err, wa_pairing_whatsapp::SendError::NotOnWhatsApp { .. }),
        "{err:?}"
    );
    let shown = err.to_string();
    assert!(shown.contains("not on WhatsApp"), "{shown}");
    assert!(!shown.contains("6281234500069"), "{shown}");
    assert_eq!(
        stack.sim.counters().messages_from_companions,
        before,
        "nothing was sent"
    );

    // Out: the friend's phone reads the plaintext; the owner's phone gets its own copy.
    let sent = wa
        .send_text(&friend_to, "Terima kasih, your phone is linked")
        .await
        .expect("sent");
    // The server's ack reaches the application.
    wa_pairing_e2e::server_acks(&mut events, &mut HashSet::from([sent.id.clone()])).await;
    let at_friend = friend
        .wait_for_message(Duration::from_secs(60), |m| m.id == sent.id)
        .await
        .expect("the friend's phone decrypts it");
    assert_eq!(
        at_friend.text.as_deref(),
        Some("Terima kasih, your phone is linked")
    );
    assert_eq!(at_friend.from, owner_number);
    assert_eq!(
        at_friend.enc,
        EncType::PreKey,
        "the first message opens the session"
    );
    let at_owner = owner
        .wait_for_message(Duration::from_secs(60), |m| m.id == sent.id)
        .await
        .expect("the owner's phone decrypts its copy");
    assert_eq!(at_owner.chat, friend_number);
    assert_eq!(
        at_owner.enc,
        EncType::Message,
        "over the key share's session"
    );

    // In: typed on the friend's phone, and typed on the owner's own phone.
    friend
        .send_text(owner_number, "Sama-sama!")
        .await
        .expect("the friend types");
    assert_eq!(
        text_arrives(&mut events, "Sama-sama!").await,
        (false, friend_number.to_owned())
    );
    owner
        .send_text(friend_number, "typed on the phone itself")
        .await
        .expect("the owner types");
    assert_eq!(
        text_arrives(&mut events, "typed on the phone itself").await,
        (true, friend_number.to_owned())
    );

    // A restart: the session resumes from PostgreSQL and its Signal sessions still work, with
    // no pre-key fetched and no pre-key message.
    runner.shutdown().await;
    let served = stack.sim.counters().bundles_served;
    let runner = stack.runner(Stack::config("runner-messages-2"));
    let live = runner.live_session(d.id).await;
    assert!(live.resumed());
    let wa = WhatsAppSession::of(&live).expect("WhatsApp");
    let again = wa
        .send_text(&friend_to, "still linked after a restart")
        .await
        .expect("sent after the restart");
    for (phone, enc) in [(&friend, EncType::Message), (&owner, EncType::Message)] {
        let m = phone
            .wait_for_message(Duration::from_secs(60), |m| m.id == again.id)
            .await
            .expect("decrypted after the restart");
        assert_eq!(m.text.as_deref(), Some("still linked after a restart"));
        assert_eq!(m.enc, enc);
    }
    let counters = stack.sim.counters();
    assert_eq!(counters.bundles_served, served, "no pre-key fetched again");
    assert_eq!(counters.messages_undecryptable, 0);
    runner.shutdown().await;
    person.abort();
    db.drop().await;
}
