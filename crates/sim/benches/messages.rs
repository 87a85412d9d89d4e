//! One linked whatsapp-rust client sending text messages to another simulated account, in a
//! release build: the latency from `send_text` to the server's ack, one message at a time,
//! and how many messages per second one session sends when it does not wait for each ack.
//! Every copy is Signal-encrypted by the client and decrypted by the simulated phones (the
//! friend's, and the owner's own device-sent copy), so the simulator's work is in the figures.
//!
//! `cargo bench -p wa-pairing-sim --bench messages` (`WA_PAIRING_BENCH_MESSAGES`, default
//! 1000, sets how many of each). Figures go to standard output; `docs/benchmarks.md` keeps
//! them.
#![allow(clippy::print_stdout, missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use common::{DEADLINE, TestClient, env_count, ms, percentile};
use wa_pairing_sim::{EncType, Sim, SimConfig};
use wacore::store::InMemoryBackend;
use wacore::types::events::Event;
use whatsapp_rust::Jid;

const OWNER: &str = "6281234567890";
const FRIEND: &str = "6289876543210";

/// Waits for the server's acks of `ids` (and nothing else), failing on a nack.
async fn acks(client: &mut TestClient, ids: &mut HashSet<String>) {
    while !ids.is_empty() {
        let event = tokio::time::timeout(DEADLINE, client.events.recv())
            .await
            .expect("an ack in time")
            .expect("events");
        if let Event::ServerAck(ack) = &*event
            && ids.remove(&ack.id)
        {
            assert!(ack.error.is_none(), "the server refused a message");
        }
    }
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let n = env_count("WA_PAIRING_BENCH_MESSAGES", 1000);
        let sim = Sim::start(SimConfig::default()).await.expect("sim");
        let mut client = TestClient::start(&sim.url(), Arc::new(InMemoryBackend::new())).await;
        let owner = client.link(&sim, OWNER).await;
        let friend = sim.phone(FRIEND);

        // Warm up: the first message opens the session, the friend's reply settles it, so
        // every measured copy is a plain Signal message.
        let first = client
            .client
            .send_text(Jid::pn(FRIEND), "hello")
            .await
            .expect("sent");
        friend
            .wait_for_message(DEADLINE, |m| m.id == first.message_id)
            .await
            .expect("decrypted");
        friend.send_text(OWNER, "hi").await.expect("reply");
        client
            .wait("the reply", |e| e.messages().next().is_some())
            .await;

        // One at a time: send, then wait for the server's ack.
        let mut latency = Vec::with_capacity(n);
        for i in 0..n {
            let started = Instant::now();
            let sent = client
                .client
                .send_text(Jid::pn(FRIEND), format!("one at a time #{i}"))
                .await
                .expect("sent");
            acks(&mut client, &mut HashSet::from([sent.message_id])).await;
            latency.push(started.elapsed());
        }
        latency.sort();
        println!("one at a time, {n} messages, send_text -> server ack (ms):");
        println!(
            "  p50 {:>7.2}  p99 {:>7.2}  max {:>7.2}",
            ms(percentile(&latency, 50)),
            ms(percentile(&latency, 99)),
            ms(latency[n - 1])
        );

        // Back to back: send every message, then wait for the last ack.
        let before = friend.inbox().len();
        let started = Instant::now();
        let mut pending = HashSet::with_capacity(n);
        for i in 0..n {
            let sent = client
                .client
                .send_text(Jid::pn(FRIEND), format!("back to back #{i}"))
                .await
                .expect("sent");
            pending.insert(sent.message_id);
        }
        let written = started.elapsed();
        acks(&mut client, &mut pending).await;
        let acked = started.elapsed();
        friend
            .wait_for_message(DEADLINE, |m| m.text.as_deref() == Some(&*format!("back to back #{}", n - 1)))
            .await
            .expect("the last one decrypted");
        let inbox = friend.inbox();
        assert_eq!(inbox.len() - before, n, "every message reached the friend");
        assert!(inbox[before..].iter().all(|m| m.enc == EncType::Message));
        let secs = acked.as_secs_f64();
        println!(
            "back to back, {n} messages: written in {:.2} s, all acked in {secs:.2} s: {:.0} messages/s",
            written.as_secs_f64(),
            f64::from(u32::try_from(n).unwrap_or(u32::MAX)) / secs
        );
        let counters = sim.counters();
        assert_eq!(counters.messages_undecryptable, 0);
        println!(
            "the phones decrypted {} copies (the friend's and the owner's own)",
            counters.messages_decrypted
        );
        assert!(owner.inbox().len() > n);
        client.stop().await;
        sim.shutdown().await;
    });
}
