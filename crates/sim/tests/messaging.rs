//! Text messages both ways between the real whatsapp-rust client and simulated phones, with
//! real Signal encryption: the client sends to another account (whose phone decrypts it) and
//! to its own phone (a device-sent copy), the phones type back, and after a new login from
//! the stored state the existing sessions carry on without a new pre-key message.

mod common;

use std::sync::Arc;

use common::{DEADLINE, TestClient};
use wa_pairing_sim::{EncType, Sim, SimConfig, SimMessage};
use wacore::proto_helpers::MessageExt as _;
use wacore::store::InMemoryBackend;
use wacore::types::events::Event;
use wacore::types::presence::ReceiptType;
use whatsapp_rust::Jid;

const OWNER: &str = "6281234567890";
const FRIEND: &str = "6289876543210";

/// Waits for a message the client received whose text is `text`; returns (sender user, chat
/// user, from me).
async fn received(client: &mut TestClient, text: &str) -> (String, String, bool) {
    let event = client
        .wait("the typed message at the client", |e| {
            e.messages().any(|m| m.message.text_content() == Some(text))
        })
        .await;
    let m = event
        .messages()
        .find(|m| m.message.text_content() == Some(text))
        .expect("the matching message");
    let source = &m.info.source;
    (
        source.sender.user.to_string(),
        source.chat.user.to_string(),
        source.is_from_me,
    )
}

/// Waits (at most [`DEADLINE`]) until the clients of `owner`'s companions have acknowledged
/// everything the server sent them; panics with `what` otherwise.
async fn all_acknowledged(owner: &wa_pairing_sim::SimPhone, what: &str) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while owner.unacknowledged() > 0 {
        assert!(tokio::time::Instant::now() < deadline, "{what}");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

async fn at_phone(phone: &wa_pairing_sim::SimPhone, id: &str) -> SimMessage {
    phone
        .wait_for_message(DEADLINE, |m| m.id == id)
        .await
        .unwrap_or_else(|e| panic!("the phone never decrypted {id}: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_go_both_ways_with_real_signal_sessions() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend.clone()).await;
    let owner = client.link(&sim, OWNER).await;
    let friend = sim.phone(FRIEND);

    // The client's first message to the friend: its phone decrypts a pre-key message; the
    // owner's phone gets the device-sent copy over the session the key share opened.
    let first = client
        .client
        .send_text(Jid::pn(FRIEND), "hello from the linked device")
        .await
        .expect("the send goes out");
    let got = at_phone(&friend, &first.message_id).await;
    assert_eq!(got.text.as_deref(), Some("hello from the linked device"));
    assert_eq!((got.from.as_str(), got.from_device), (OWNER, 1));
    assert_eq!(got.chat, OWNER);
    assert_eq!(got.enc, EncType::PreKey);
    let own = at_phone(&owner, &first.message_id).await;
    assert_eq!(own.text.as_deref(), Some("hello from the linked device"));
    assert_eq!(
        own.chat, FRIEND,
        "the own phone reads the chat from the wrapper"
    );
    assert_eq!(
        own.enc,
        EncType::Message,
        "the key share opened this session"
    );
    client
        .wait("the friend's delivery receipt", |e| {
            matches!(e, Event::Receipt(r) if r.message_ids.contains(&first.message_id)
                && r.source.chat.user == FRIEND && r.r#type == ReceiptType::Delivered)
        })
        .await;

    // Unanswered, the client keeps sending pre-key messages to the friend.
    let second = client
        .client
        .send_text(Jid::pn(FRIEND), "still there?")
        .await
        .unwrap();
    assert_eq!(
        at_phone(&friend, &second.message_id).await.enc,
        EncType::PreKey
    );

    // The friend types back; the client decrypts it and answers with a receipt.
    let reply = friend.send_text(OWNER, "yes, hello").await.unwrap();
    let (sender, chat, from_me) = received(&mut client, "yes, hello").await;
    assert_eq!(
        (sender.as_str(), chat.as_str(), from_me),
        (FRIEND, FRIEND, false)
    );
    let receipt = friend
        .wait_for_receipt(DEADLINE, |r| r.ids.contains(&reply))
        .await
        .unwrap();
    assert_eq!((receipt.from.as_str(), receipt.from_device), (OWNER, 1));

    // Having heard back, the client's next message is a plain Signal message.
    let third = client
        .client
        .send_text(Jid::pn(FRIEND), "good")
        .await
        .unwrap();
    assert_eq!(
        at_phone(&friend, &third.message_id).await.enc,
        EncType::Message
    );

    // Typed on the owner's own phone to the friend: the client sees it as its own message.
    owner
        .send_text(FRIEND, "sent from the phone")
        .await
        .unwrap();
    let (_, chat, from_me) = received(&mut client, "sent from the phone").await;
    assert_eq!((chat.as_str(), from_me), (FRIEND, true));

    // A new login from the stored state: the sessions survive, no new pre-key message.
    client.stop().await;
    let served = sim.counters().bundles_served;
    let mut again = TestClient::start(&sim.url(), backend).await;
    again
        .wait("connected again", |e| matches!(e, Event::Connected(_)))
        .await;
    let fourth = again
        .client
        .send_text(Jid::pn(FRIEND), "back again")
        .await
        .unwrap();
    let got = at_phone(&friend, &fourth.message_id).await;
    assert_eq!(got.text.as_deref(), Some("back again"));
    assert_eq!(got.enc, EncType::Message);
    assert_eq!(
        at_phone(&owner, &fourth.message_id).await.enc,
        EncType::Message
    );
    let counters = sim.counters();
    assert_eq!(counters.bundles_served, served, "no pre-key fetched again");
    // The client could decrypt what the friend's phone sent: a delivery receipt (`inactive`
    // while the client has not announced itself available), no retry receipt.
    let receipts = friend.receipts();
    assert_eq!(receipts.len(), 1, "{receipts:?}");
    assert!(
        matches!(receipts[0].kind.as_deref(), None | Some("inactive")),
        "{receipts:?}"
    );
    assert_eq!(counters.messages_undecryptable, 0);
    assert_eq!(counters.messages_from_companions, 4);
    assert_eq!(counters.messages_decrypted, 8, "two copies of each of four");
    again.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_with_no_companion_to_go_to_is_refused() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let friend = sim.phone(FRIEND);
    let err = friend.send_text(OWNER, "anyone?").await.unwrap_err();
    assert!(
        matches!(err, wa_pairing_sim::SimError::NoCompanion),
        "{err}"
    );
    assert_eq!(sim.counters().messages_from_phones, 0);
}

/// The texts the client receives, in order, until (and with) `last`.
async fn texts_until(client: &mut TestClient, last: &str) -> Vec<String> {
    let mut texts = Vec::new();
    tokio::time::timeout(DEADLINE, async {
        while let Some(event) = client.events.recv().await {
            for m in event.messages() {
                if let Some(text) = m.message.text_content() {
                    texts.push(text.to_owned());
                }
            }
            if texts.last().map(String::as_str) == Some(last) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{last:?} never arrived; received {texts:?}"));
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn texts_for_a_companion_that_is_away_arrive_after_its_login_in_order_once_each() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend.clone()).await;
    let owner = client.link(&sim, OWNER).await;
    let friend = sim.phone(FRIEND);
    client.stop().await;
    sim.wait_for_counters(DEADLINE, |c| c.open_connections == 0)
        .await
        .expect("the client's socket closes");

    // The friend writes while the companion is away: the server keeps the copies.
    for text in ["satu", "dua", "tiga"] {
        friend
            .send_text(OWNER, text)
            .await
            .expect("kept for the companion");
    }
    assert_eq!(sim.counters().offline_queued, 3);
    assert_eq!(owner.unacknowledged(), 3);

    // At its next login they arrive, in order, once each, and its acks empty the queue.
    let mut again = TestClient::start(&sim.url(), backend.clone()).await;
    assert_eq!(
        texts_until(&mut again, "tiga").await,
        ["satu", "dua", "tiga"]
    );
    assert_eq!(sim.counters().offline_delivered, 3);
    all_acknowledged(
        &owner,
        "the client never acknowledged the delivered messages",
    )
    .await;
    again.stop().await;
    sim.wait_for_counters(DEADLINE, |c| c.open_connections == 0)
        .await
        .expect("the client's socket closes");

    // Acknowledged is delivered: the login after that gets only what is new.
    let mut third = TestClient::start(&sim.url(), backend).await;
    third
        .wait("connected", |e| matches!(e, Event::Connected(_)))
        .await;
    friend.send_text(OWNER, "empat").await.expect("sent");
    assert_eq!(texts_until(&mut third, "empat").await, ["empat"]);
    assert_eq!(
        sim.counters().offline_delivered,
        3,
        "nothing delivered twice"
    );
    third.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_companion_asks_whether_a_number_is_on_whatsapp() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend).await;
    client.link(&sim, OWNER).await;
    sim.phone(FRIEND);
    let nobody = "6281299990000";
    let answers = client
        .client
        .contacts()
        .is_on_whatsapp(&[Jid::pn(FRIEND), Jid::pn(nobody)])
        .await
        .expect("the server answers");
    let registered = |user: &str| {
        answers
            .iter()
            .find(|r| r.jid.user == user)
            .map(|r| r.is_registered)
    };
    assert_eq!(registered(FRIEND), Some(true), "{answers:?}");
    assert_eq!(registered(nobody), Some(false), "{answers:?}");
    client.stop().await;
    sim.shutdown().await;
}

/// Whether `e` is a receipt of `kind` for message `id` from the friend's phone.
fn receipt_for(e: &Event, id: &str, kind: &ReceiptType) -> bool {
    matches!(e, Event::Receipt(r) if r.message_ids.iter().any(|m| m == id)
        && r.source.chat.user == FRIEND && r.r#type == *kind)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phones_read_receipt_reaches_the_companion_and_waits_in_the_queue_while_it_is_away() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend.clone()).await;
    let owner = client.link(&sim, OWNER).await;
    let friend = sim.phone(FRIEND);

    // Online: delivered, then read.
    let first = client
        .client
        .send_text(Jid::pn(FRIEND), "read me")
        .await
        .expect("sent")
        .message_id;
    at_phone(&friend, &first).await;
    client
        .wait("the delivery receipt", |e| {
            receipt_for(e, &first, &ReceiptType::Delivered)
        })
        .await;
    friend.read(&first).expect("the friend reads it");
    let read = client
        .wait("the read receipt", |e| {
            receipt_for(e, &first, &ReceiptType::Read)
        })
        .await;
    let Event::Receipt(read) = &*read else {
        unreachable!()
    };
    assert!(!read.offline, "sent at once to a companion that is online");

    // Away: the friend reads while the companion is not connected; the read receipt waits
    // in its queue and arrives at its next login, marked offline, and its ack empties it.
    let second = client
        .client
        .send_text(Jid::pn(FRIEND), "read me later")
        .await
        .expect("sent")
        .message_id;
    at_phone(&friend, &second).await;
    client
        .wait("the second delivery receipt", |e| {
            receipt_for(e, &second, &ReceiptType::Delivered)
        })
        .await;
    all_acknowledged(&owner, "the client never acknowledged the receipts").await;
    client.stop().await;
    sim.wait_for_counters(DEADLINE, |c| c.open_connections == 0)
        .await
        .expect("the client's socket closes");
    friend.read(&second).expect("the friend reads it");
    assert_eq!(owner.unacknowledged(), 1, "the read receipt waits");
    let mut again = TestClient::start(&sim.url(), backend).await;
    let read = again
        .wait("the read receipt from the offline queue", |e| {
            receipt_for(e, &second, &ReceiptType::Read)
        })
        .await;
    let Event::Receipt(read) = &*read else {
        unreachable!()
    };
    assert!(read.offline, "delivered from the offline queue");
    all_acknowledged(&owner, "the client never acknowledged the read receipt").await;

    // A message the phone never received cannot be read.
    let err = friend
        .read("3EB0000000000000")
        .expect_err("no such message");
    assert!(
        matches!(err, wa_pairing_sim::SimError::NoSuchMessage(_)),
        "{err}"
    );
    again.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_that_lost_its_session_asks_again_and_decrypts_the_resent_message() {
    let sim = Sim::start(SimConfig::default()).await.unwrap();
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend.clone()).await;
    client.link(&sim, OWNER).await;
    let friend = sim.phone(FRIEND);

    // A session both ways: the client's pre-key message, then the friend's answer.
    let first = client
        .client
        .send_text(Jid::pn(FRIEND), "hello")
        .await
        .expect("sent")
        .message_id;
    assert_eq!(at_phone(&friend, &first).await.enc, EncType::PreKey);
    friend.send_text(OWNER, "hi back").await.expect("sent");
    received(&mut client, "hi back").await;

    // The friend's phone loses its sessions: the client's next message cannot be decrypted,
    // the phone asks for it again with keys, and the client resends it as a pre-key message.
    friend.forget_sessions().await.expect("forgotten");
    let second = client
        .client
        .send_text(Jid::pn(FRIEND), "after the phone lost its sessions")
        .await
        .expect("sent")
        .message_id;
    let got = at_phone(&friend, &second).await;
    assert_eq!(
        got.text.as_deref(),
        Some("after the phone lost its sessions")
    );
    assert_eq!(got.enc, EncType::PreKey, "over a new session");
    let counters = sim.counters();
    assert_eq!(counters.messages_undecryptable, 1);
    assert_eq!(counters.retry_receipts, 1);
    client
        .wait("the delivery receipt for the resent message", |e| {
            receipt_for(e, &second, &ReceiptType::Delivered)
        })
        .await;

    // And the new session carries the next message as a plain one.
    let third = client
        .client
        .send_text(Jid::pn(FRIEND), "and on")
        .await
        .expect("sent")
        .message_id;
    friend.send_text(OWNER, "got it").await.expect("sent");
    received(&mut client, "got it").await;
    assert_eq!(
        at_phone(&friend, &third).await.text.as_deref(),
        Some("and on")
    );
    assert_eq!(
        sim.counters().messages_undecryptable,
        1,
        "nothing else failed"
    );
    client.stop().await;
    sim.shutdown().await;
}
