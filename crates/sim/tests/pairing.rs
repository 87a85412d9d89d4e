//! The real whatsapp-rust client pairs with the simulator and logs in again from its state.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestClient;
use wa_pairing_sim::{Sim, SimConfig};
use wacore::store::InMemoryBackend;
use wacore::store::traits::AppSyncStore as _;
use wacore::types::events::Event;

const PHONE: &str = "6281234567890";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_from_nothing_then_logs_in_from_stored_state() {
    let sim = Sim::start(SimConfig::default().record_stanzas(true))
        .await
        .unwrap();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend.clone()).await;
    let code = client.request_code(PHONE).await.expect("a code");
    assert_eq!(code.len(), 8);
    let phone = sim.phone(PHONE);
    assert!(phone.has_pending_code());
    phone.enter_code(&code).await.expect("the right code links");
    let success = client
        .wait("pair success", |e| matches!(e, Event::PairSuccess(_)))
        .await;
    let Event::PairSuccess(p) = &*success else {
        unreachable!()
    };
    assert_eq!(p.id.user, PHONE);
    client
        .wait("connected", |e| matches!(e, Event::Connected(_)))
        .await;
    assert_eq!(phone.linked_devices(), [1]);
    // The phone shared the account's app-state keys end to end, so the client did not have
    // to wait for them or ask.
    assert_eq!(sim.counters().key_shares, 1);
    let key = backend
        .get_sync_key(&phone.app_state_key_id())
        .await
        .unwrap();
    assert!(key.is_some(), "the client stored the shared key");
    // Then the initial history-sync notification, which a client that skips history (as a
    // pairing gateway does) acknowledges with a `hist_sync` receipt.
    sim.wait_for_counters(Duration::from_secs(30), |c| c.history_notifications == 1)
        .await
        .expect("the phone sends the history-sync notification");
    phone
        .wait_for_receipt(Duration::from_secs(30), |r| {
            r.kind.as_deref() == Some("hist_sync")
        })
        .await
        .expect("the client acknowledges the history notification");
    client.stop().await;

    // A new client over the same stored state logs in without pairing.
    let mut again = TestClient::start(&sim.url(), backend).await;
    again
        .wait("connected again", |e| matches!(e, Event::Connected(_)))
        .await;
    let counters = sim.counters();
    assert_eq!(counters.pairings, 1);
    assert!(counters.logins >= 2, "{counters:?}");
    assert_eq!(counters.code_requests_for(PHONE), 1);
    assert_eq!(
        counters.max_sessions_for(PHONE),
        1,
        "never two sockets at once"
    );
    assert!(!sim.stanzas().is_empty(), "stanzas are recorded");
    again.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pairs_by_qr_then_logs_in() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend.clone()).await;
    // The server hands the registration connection its refs; the client shows the first.
    let shown = client
        .wait("a QR code", |e| matches!(e, Event::PairingQrCode(_)))
        .await;
    let Event::PairingQrCode(qr) = &*shown else {
        unreachable!()
    };
    let phone = sim.phone(PHONE);
    assert!(
        phone.scan_qr("2@not-a-ref,AAAA,AAAA,AAAA").await.is_err(),
        "a malformed payload is refused"
    );
    phone.scan_qr(&qr.code).await.expect("the shown QR links");
    let success = client
        .wait("pair success", |e| matches!(e, Event::PairSuccess(_)))
        .await;
    let Event::PairSuccess(p) = &*success else {
        unreachable!()
    };
    assert_eq!(p.id.user, PHONE);
    client
        .wait("connected", |e| matches!(e, Event::Connected(_)))
        .await;
    assert_eq!(phone.linked_devices(), [1]);
    assert_eq!(sim.counters().pairings, 1);
    assert_eq!(sim.counters().code_requests_for(PHONE), 0);
    // The same QR cannot link twice.
    assert!(phone.scan_qr(&qr.code).await.is_err());
    client.stop().await;

    let mut again = TestClient::start(&sim.url(), backend).await;
    again
        .wait("connected again", |e| matches!(e, Event::Connected(_)))
        .await;
    again.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_connection_closes_when_its_refs_run_out() {
    let sim = Sim::start(
        SimConfig::default()
            .qr_refs(2)
            .qr_first_ref(std::time::Duration::from_millis(300))
            .qr_ref(std::time::Duration::from_millis(100)),
    )
    .await
    .unwrap();
    let mut events = sim.events();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend).await;
    let shown = client
        .wait("a QR code", |e| matches!(e, Event::PairingQrCode(_)))
        .await;
    let Event::PairingQrCode(qr) = &*shown else {
        unreachable!()
    };
    // The server's clock ran out for every ref: the socket closes and the QR no longer links.
    loop {
        if let wa_pairing_sim::SimEvent::Disconnected { .. } = events.recv().await.unwrap() {
            break;
        }
    }
    assert!(sim.phone(PHONE).scan_qr(&qr.code).await.is_err());
    client.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_link_gets_the_key_share_then_a_history_bootstrap_the_client_reads() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start_with_history(&sim.url(), backend.clone()).await;
    let code = client.request_code(PHONE).await.expect("a code");
    let phone = sim.phone(PHONE);
    assert_eq!(
        phone.push_name(),
        format!("Sim {}", &PHONE[PHONE.len() - 4..])
    );
    phone.set_push_name("Warung Sari");
    phone.enter_code(&code).await.expect("the right code links");
    let got = client
        .wait("the initial history sync", |e| {
            matches!(e, Event::HistorySync(_))
        })
        .await;
    // The key share came first: the client holds the key when the history is read.
    let key = backend
        .get_sync_key(&phone.app_state_key_id())
        .await
        .unwrap();
    assert!(key.is_some(), "the client stored the shared key first");
    let Event::HistorySync(history) = &*got else {
        unreachable!()
    };
    assert_eq!(
        history.sync_type(),
        waproto::whatsapp::message::HistorySyncType::INITIAL_BOOTSTRAP as i32
    );
    let parsed = history
        .get()
        .expect("the inline payload inflates and decodes");
    assert!(
        parsed.conversations.is_empty(),
        "a simulated account has no chats"
    );
    let lid = phone.lid();
    assert_eq!(
        parsed
            .phone_number_to_lid_mappings
            .iter()
            .map(|m| (m.pn_jid.clone(), m.lid_jid.clone()))
            .collect::<Vec<_>>(),
        [(
            Some(format!("{PHONE}@s.whatsapp.net")),
            Some(format!("{lid}@lid"))
        )],
        "the account's own number and LID"
    );
    assert_eq!(
        parsed
            .pushnames
            .iter()
            .map(|p| (p.id.clone(), p.pushname.clone()))
            .collect::<Vec<_>>(),
        [(
            Some(format!("{PHONE}@s.whatsapp.net")),
            Some("Warung Sari".to_owned())
        )],
        "the owner's chosen name"
    );
    // The client takes its own name from the history.
    let end = tokio::time::Instant::now() + Duration::from_secs(30);
    while client.client.push_name() != "Warung Sari" {
        assert!(
            tokio::time::Instant::now() < end,
            "the client's own name is {:?}",
            client.client.push_name()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    phone
        .wait_for_receipt(Duration::from_secs(30), |r| {
            r.kind.as_deref() == Some("hist_sync")
        })
        .await
        .expect("the client acknowledges the history notification");
    assert_eq!(sim.counters().history_notifications, 1);
    client.stop().await;
    sim.shutdown().await;
}
