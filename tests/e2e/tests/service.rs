//! The production service's own code (settings, wiring, health endpoint, graceful shutdown)
//! against the real PostgreSQL and Redis and the simulator: a device is paired end to end.
#![allow(missing_docs)]

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use wa_pairing_e2e::ServiceEnv;
use wa_pairing_e2e::Stack;
use wa_pairing_service::{Service, Settings};
use wa_pairing_store::DeviceStatus;
use wa_pairing_store_testkit::{Skip, skip};

async fn http_get(addr: std::net::SocketAddr, path: &str) -> (u16, String) {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .expect("write");
    let mut buf = String::new();
    s.read_to_string(&mut buf).await.expect("read");
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .expect("a status line");
    let body = buf.split("\r\n\r\n").nth(1).unwrap_or("").to_owned();
    (status, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_service_pairs_a_device_on_postgres_and_redis_then_stops_cleanly() {
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("service e2e", &why),
    };
    let Ok(redis_url) = std::env::var("WA_PAIRING_TEST_REDIS_URL") else {
        db.drop().await;
        return skip(
            "service e2e",
            &Skip::new("WA_PAIRING_TEST_REDIS_URL is not set"),
        );
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();

    let env = ServiceEnv::new(&db.url, &wa_pairing_e2e::test_keys_setting())
        .set("REDIS_URL", redis_url)
        .set("WA_PAIRING_INSTANCE_ID", "service-e2e")
        .set("WA_PAIRING_MIGRATE", "true")
        .set("WA_PAIRING_WA_SERVER_URL", stack.sim.url())
        .set("WA_PAIRING_LOG_FORMAT", "text");
    let settings = Settings::from_lookup(|n| env.get(n)).expect("settings");
    let service = Service::build(settings).await.expect("the service builds");
    let health = service.health_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));

    let (status, _) = http_get(health, "/livez").await;
    assert_eq!(status, 200);
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = http_get(health, "/readyz").await;
        if status == 200 {
            assert!(body.contains("\"store\":\"ok\""), "{body}");
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "never ready: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let number = wa_pairing_e2e::fresh_number("6281255");
    // Written as a person types it: 0812-5550-1234 style.
    let typed = format!("0{}-{}-{}", &number[2..5], &number[5..9], &number[9..]);
    let device = stack.device(&typed).await;
    let linked = stack.connected(device.id).await;
    assert_eq!(linked.lease_owner.as_deref(), Some("service-e2e"));
    assert_eq!(
        linked
            .phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some(number.as_str())
    );
    let stored = stack
        .stores
        .auth_state()
        .scan_prefix(device.id, "")
        .await
        .expect("auth state");
    assert!(!stored.is_empty(), "the session's keys are stored");
    assert_eq!(stack.sim.counters().code_requests_for(&number), 1);

    // SIGTERM in production: the same graceful path.
    let _ = stop.send(());
    let summary = tokio::time::timeout(Duration::from_secs(30), running)
        .await
        .expect("stops in time")
        .expect("the service task");
    assert!(summary.released >= 1, "{summary:?}");
    let after = stack.stores.devices().get(device.id).await.expect("get");
    assert!(after.lease_owner.is_none(), "the lease is released");
    assert_eq!(after.status, DeviceStatus::Connected);
    assert!(
        tokio::net::TcpStream::connect(health).await.is_err(),
        "the health endpoint is closed"
    );
    person.abort();
    db.drop().await;
}

/// `url` with its host and port replaced by `127.0.0.1:port`, and the original `host:port`.
fn through_port(url: &str, port: u16) -> (String, String) {
    let (scheme, rest) = url.split_once("://").expect("a URL");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let (user, host) = authority
        .rsplit_once('@')
        .map_or((None, authority), |(u, h)| (Some(u), h));
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    let user = user.map(|u| format!("{u}@")).unwrap_or_default();
    (format!("{scheme}://{user}127.0.0.1:{port}/{path}"), host)
}

/// A database that answers only after the service started waits for it, when the service
/// applies the migrations at start, instead of exiting (as a Compose file or a pod starting
/// beside its database needs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn migrations_at_start_wait_for_a_database_that_answers_later() {
    let (store, db) = match wa_pairing_e2e::postgres_store().await {
        Ok(x) => x,
        Err(why) => return skip("migrate wait e2e", &why),
    };
    drop(store);
    // A port nothing listens on yet; the database appears there a moment later.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
        l.local_addr().expect("its address").port()
    };
    let (url, upstream) = through_port(&db.url, port);
    let env = ServiceEnv::new(&url, &wa_pairing_e2e::test_keys_setting())
        .set("WA_PAIRING_INSTANCE_ID", "migrate-wait-e2e")
        // Never dialled: the service is built, not run.
        .set("WA_PAIRING_WA_SERVER_URL", "ws://127.0.0.1:9/ws/chat")
        .set("WA_PAIRING_MIGRATE", "true");
    let settings = Settings::from_lookup(|n| env.get(n)).expect("settings");
    let building = tokio::spawn(Service::build(settings));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !building.is_finished(),
        "the service gave up on a database that does not answer yet: {:?}",
        building.await.map(|r| r.map(|_| ()))
    );
    // The database comes up: a forwarder to the real server on the port the service dials.
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("the port is still free");
    let forwarder = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    let service = tokio::time::timeout(Duration::from_secs(120), building)
        .await
        .expect("the service builds once the database answers")
        .expect("the build task")
        .expect("the service builds");
    drop(service);
    forwarder.abort();
    db.drop().await;
}
