//! Code-cache latency and throughput on loopback, and how long a call takes while Redis is
//! down. `cargo bench -p wa-pairing-redis --bench cache` (needs `WA_PAIRING_TEST_REDIS_URL`).
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use wa_pairing_code::{IssuedCode, PairingCode};
use wa_pairing_redis::{RedisConfig, RedisStore};
use wa_pairing_store::{CodeCache, DeviceId};

fn pct(v: &mut [Duration], p: f64) -> f64 {
    v.sort();
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i].as_secs_f64() * 1e3
}

#[tokio::main]
async fn main() {
    let Ok(url) = std::env::var("WA_PAIRING_TEST_REDIS_URL") else {
        eprintln!("set WA_PAIRING_TEST_REDIS_URL to run this benchmark");
        return;
    };
    let store = RedisStore::new(&RedisConfig::new(&url).prefix("wa-bench:")).unwrap();
    let code = IssuedCode::new(
        PairingCode::generate(),
        chrono::Utc::now(),
        Duration::from_secs(180),
    );
    let ids: Vec<DeviceId> = (0..2000).map(|_| DeviceId::random()).collect();
    let (mut puts, mut gets) = (Vec::new(), Vec::new());
    for id in &ids {
        let t = Instant::now();
        store.put(*id, &code).await.unwrap();
        puts.push(t.elapsed());
        let t = Instant::now();
        store.get(*id).await.unwrap();
        gets.push(t.elapsed());
    }
    // Throughput with 32 concurrent callers over one connection manager.
    let t = Instant::now();
    let mut tasks = Vec::new();
    for chunk in ids.chunks(ids.len() / 32) {
        let (store, chunk) = (store.clone(), chunk.to_vec());
        tasks.push(tokio::spawn(async move {
            for id in chunk {
                store.get(id).await.unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    #[allow(clippy::cast_precision_loss)]
    let ops = ids.len() as f64 / t.elapsed().as_secs_f64();
    for id in &ids {
        store.delete(*id).await.unwrap();
    }
    // Down: a port where nothing listens, with the default 250 ms timeout.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let down = RedisStore::new(&RedisConfig::new(format!("redis://127.0.0.1:{port}"))).unwrap();
    let cache = down.resilient_cache();
    let mut misses = Vec::new();
    for id in ids.iter().take(50) {
        let t = Instant::now();
        assert_eq!(cache.get(*id).await.unwrap(), None);
        misses.push(t.elapsed());
    }
    println!("| operation | p50 | p99 |");
    println!("|---|---:|---:|");
    println!(
        "| put | {:.3} ms | {:.3} ms |",
        pct(&mut puts, 0.5),
        pct(&mut puts, 0.99)
    );
    println!(
        "| get | {:.3} ms | {:.3} ms |",
        pct(&mut gets, 0.5),
        pct(&mut gets, 0.99)
    );
    println!(
        "| get while Redis is down (resilient: a miss) | {:.3} ms | {:.3} ms |",
        pct(&mut misses, 0.5),
        pct(&mut misses, 0.99)
    );
    println!();
    println!("gets per second, 32 concurrent callers: {ops:.0}");
}
