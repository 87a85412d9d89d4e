//! The real whatsapp-rust client against the simulator, in a release build: the client's own
//! view of a pairing, from its code request to `PairingCode` and from the phone's
//! `enter_code` to the client's `Connected`, one pairing at a time; then many clients pairing
//! at once.
//!
//! `cargo bench -p wa-pairing-sim --bench client` (`WA_PAIRING_BENCH_PAIRINGS`, default 50,
//! sets the sequential pairings and `WA_PAIRING_BENCH_AT_ONCE`, default 100, the concurrent
//! ones). Figures go to standard output; `docs/benchmarks.md` keeps them.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{TestClient, env_count, ms, percentile};
use wa_pairing_sim::{Sim, SimConfig};
use wacore::store::InMemoryBackend;
use wacore::types::events::Event;

/// One pairing: (code request -> code, enter_code -> Connected).
async fn pair(sim: &Sim, phone: &str) -> (Duration, Duration) {
    let mut client = TestClient::start(&sim.url(), Arc::new(InMemoryBackend::new())).await;
    assert!(
        client
            .client
            .wait_for_socket(common::DEADLINE)
            .await
            .is_ok(),
        "socket never ready"
    );
    let asked = Instant::now();
    let code = client.request_code(phone).await.expect("a code");
    let to_code = asked.elapsed();
    let typed = Instant::now();
    sim.phone(phone)
        .enter_code(&code)
        .await
        .expect("the right code links");
    client
        .wait("connected", |e| matches!(e, Event::Connected(_)))
        .await;
    let to_connected = typed.elapsed();
    client.stop().await;
    (to_code, to_connected)
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let sim = Sim::start(SimConfig::default()).await.expect("sim");
        let n = env_count("WA_PAIRING_BENCH_PAIRINGS", 50);
        let at_once = env_count("WA_PAIRING_BENCH_AT_ONCE", 100);

        // Warm up once (connections, allocator), then one pairing at a time.
        pair(&sim, "6281230000000").await;
        let mut to_code = Vec::with_capacity(n);
        let mut to_connected = Vec::with_capacity(n);
        let mut whole = Vec::with_capacity(n);
        for i in 0..n {
            let (c, l) = pair(&sim, &format!("62812310{i:05}")).await;
            to_code.push(c);
            to_connected.push(l);
            whole.push(c + l);
        }
        for v in [&mut to_code, &mut to_connected, &mut whole] {
            v.sort();
        }
        println!("one at a time, {n} pairings (ms):");
        for (name, v) in [
            ("code request -> PairingCode", &to_code),
            ("enter_code -> Connected", &to_connected),
            ("both", &whole),
        ] {
            println!(
                "  {name:<28} p50 {:>7.1}  p99 {:>7.1}",
                ms(percentile(v, 50)),
                ms(percentile(v, 99))
            );
        }

        let started = Instant::now();
        let tasks: Vec<_> = (0..at_once)
            .map(|i| {
                let sim = sim.clone();
                tokio::spawn(async move { pair(&sim, &format!("62812320{i:05}")).await })
            })
            .collect();
        for t in tasks {
            t.await.expect("a pairing");
        }
        let took = started.elapsed();
        println!(
            "{at_once} clients at once: {:.2} s, {:.1} pairings/s",
            took.as_secs_f64(),
            f64::from(u32::try_from(at_once).unwrap_or(u32::MAX)) / took.as_secs_f64()
        );
        let counters = sim.counters();
        assert_eq!(counters.key_shares, (n + 1 + at_once) as u64);
        sim.shutdown().await;
    });
}
