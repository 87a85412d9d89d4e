//! A connection cut mid-operation surfaces a retryable error and loses nothing.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::Store as _;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_retry::Classify as _;
use wa_pairing_store::{
    AuthStateStore, DeviceStatus, DeviceStore, DeviceUpdate, NewDevice, PairingRequest, UserId,
};
use wa_pairing_store_testkit::skip;

/// A TCP proxy to PostgreSQL that can stall (stop forwarding) and cut every connection.
struct Proxy {
    port: u16,
    stalled: Arc<AtomicBool>,
    /// Told when bytes arrive while stalled: a request is then in flight and held here.
    held: Arc<tokio::sync::Notify>,
    conns: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Proxy {
    async fn start(target: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let stalled = Arc::new(AtomicBool::new(false));
        let held = Arc::new(tokio::sync::Notify::new());
        let conns: Arc<Mutex<Vec<JoinHandle<()>>>> = Arc::default();
        let (s, c, h) = (stalled.clone(), conns.clone(), held.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let target = target.clone();
                let stalled = s.clone();
                let held = h.clone();
                c.lock().await.push(tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    let pipe = |mut r: tokio::net::tcp::OwnedReadHalf,
                                mut w: tokio::net::tcp::OwnedWriteHalf,
                                stalled: Arc<AtomicBool>,
                                held: Arc<tokio::sync::Notify>| async move {
                        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = match r.read(&mut buf).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => n,
                            };
                            if stalled.load(Ordering::SeqCst) {
                                held.notify_one();
                            }
                            while stalled.load(Ordering::SeqCst) {
                                tokio::task::yield_now().await;
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                            if w.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    tokio::select! {
                        () = pipe(cr, sw, stalled.clone(), held.clone()) => {}
                        () = pipe(sr, cw, stalled, held) => {}
                    }
                }));
            }
        });
        Self {
            port,
            stalled,
            held,
            conns,
        }
    }

    async fn cut(&self) {
        for c in self.conns.lock().await.drain(..) {
            c.abort();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_connection_is_retryable_and_loses_nothing() {
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("connection_cut", &why),
    };
    db.store().await; // migrations
    let target = {
        let cfg: tokio_postgres::Config = db.url.parse().unwrap();
        let host = match &cfg.get_hosts()[0] {
            tokio_postgres::config::Host::Tcp(h) => h.clone(),
            tokio_postgres::config::Host::Unix(_) => "127.0.0.1".to_owned(),
        };
        format!(
            "{host}:{}",
            cfg.get_ports().first().copied().unwrap_or(5432)
        )
    };
    let proxy = Proxy::start(target).await;
    let via_proxy = db.url.replacen(
        &db.url[db.url.find('@').map_or(0, |i| i + 1)..]
            .split('/')
            .next()
            .unwrap()
            .to_owned(),
        &format!("127.0.0.1:{}", proxy.port),
        1,
    );
    let store = PostgresStore::new(
        &PostgresConfig::new(&via_proxy)
            .pool_size(2)
            .operation_timeout(Duration::from_secs(3)),
    )
    .unwrap();

    let d = store
        .create(NewDevice::new(UserId::random(), "cut"))
        .await
        .unwrap();
    store.start_pairing(d.id, PairingRequest::Qr).await.unwrap();
    let c = store
        .claim(&wa_pairing_store::ClaimRequest::new(
            "r",
            1,
            Duration::from_secs(600),
        ))
        .await
        .unwrap()
        .remove(0);
    store
        .put(d.id, c.lease.fence, "kept", b"before the cut")
        .await
        .unwrap();

    // An update is in flight when the connection stalls and is cut.
    proxy.stalled.store(true, Ordering::SeqCst);
    let update = {
        let store = store.clone();
        let lease = c.lease.clone();
        tokio::spawn(async move {
            store
                .update(
                    &lease,
                    DeviceUpdate::status(DeviceStatus::WaitingPairing).qr_code("qr"),
                )
                .await
        })
    };
    // Cut once the proxy holds the update's bytes, not after a guess of how long that takes.
    tokio::time::timeout(Duration::from_secs(10), proxy.held.notified())
        .await
        .expect("the update reached the proxy while it was stalled");
    proxy.cut().await;
    proxy.stalled.store(false, Ordering::SeqCst);
    let err = update
        .await
        .unwrap()
        .expect_err("the cut surfaces as an error");
    assert!(err.verdict().is_retryable(), "{err:?}");

    // After reconnecting: the retried update succeeds and nothing stored before is lost.
    let mut last = None;
    for _ in 0..5 {
        match store
            .update(
                &c.lease,
                DeviceUpdate::status(DeviceStatus::WaitingPairing).qr_code("qr"),
            )
            .await
        {
            Ok(d) => {
                last = Some(d);
                break;
            }
            Err(e) => {
                assert!(e.verdict().is_retryable(), "{e:?}");
                last = None;
            }
        }
    }
    let updated = last.expect("the retried update succeeds");
    assert_eq!(updated.status, DeviceStatus::WaitingPairing);
    assert_eq!(
        AuthStateStore::get(&store, d.id, "kept")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"before the cut"[..])
    );
    drop(store);
    db.cleanup()().await;
}
