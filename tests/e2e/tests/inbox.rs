//! Incoming messages through the runner, with the real client against the simulator: what
//! WhatsApp kept while the runner was away reaches the application's inbox after the resume,
//! a message is acknowledged only once the inbox took it, and a message the instance was
//! handling when it died is handed over again by the instance that takes the device over.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use wa_pairing_e2e::Stack;
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_runner::Runner;
use wa_pairing_store::DeviceId;
use wa_pairing_store_testkit::skip;
use wa_pairing_whatsapp::{InboundMessage, Inbox, InboxError, IncomingText};

const WAIT: Duration = Duration::from_secs(60);

/// One text as the inbox got it: the device, the message id, the chat's number, whether the
/// account sent it, the text.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Got {
    device: DeviceId,
    id: String,
    chat: Option<String>,
    from_me: bool,
    text: String,
}

/// An inbox that keeps every text it is handed, in order.
#[derive(Clone, Default)]
struct Recorder(Arc<Mutex<Vec<Got>>>);

#[async_trait::async_trait]
impl Inbox for Recorder {
    async fn receive(&self, device: DeviceId, batch: &[InboundMessage]) -> Result<(), InboxError> {
        let mut got = self.0.lock().expect("recorder");
        for t in batch.iter().filter_map(IncomingText::from_inbound) {
            got.push(Got {
                device,
                chat: t.chat_number().map(str::to_owned),
                id: t.id,
                from_me: t.from_me,
                text: t.text,
            });
        }
        Ok(())
    }
}

impl Recorder {
    fn texts(&self) -> Vec<Got> {
        self.0.lock().expect("recorder").clone()
    }

    /// Waits (at most a minute) until the inbox holds at least `n` texts.
    async fn holds(&self, n: usize) -> Vec<Got> {
        let end = tokio::time::Instant::now() + WAIT;
        loop {
            let texts = self.texts();
            if texts.len() >= n {
                return texts;
            }
            assert!(
                tokio::time::Instant::now() < end,
                "the inbox got {} of {n} texts: {texts:?}",
                texts.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// An inbox that holds every batch with a text: it says which text it is holding and waits
/// for a permit that may never come (an application in the middle of storing it).
#[derive(Clone)]
struct Gate {
    held: mpsc::UnboundedSender<String>,
    open: Arc<Semaphore>,
}

#[async_trait::async_trait]
impl Inbox for Gate {
    async fn receive(&self, _: DeviceId, batch: &[InboundMessage]) -> Result<(), InboxError> {
        let texts: Vec<_> = batch
            .iter()
            .filter_map(IncomingText::from_inbound)
            .collect();
        if texts.is_empty() {
            // The phone's own protocol messages (the key share, history) pass.
            return Ok(());
        }
        for t in texts {
            let _ = self.held.send(t.id);
        }
        self.open.acquire().await?.forget();
        Ok(())
    }
}

fn gate() -> (Gate, mpsc::UnboundedReceiver<String>) {
    let (held, holding) = mpsc::unbounded_channel();
    let open = Arc::new(Semaphore::new(0));
    (Gate { held, open }, holding)
}

/// Waits (at most a minute) until `what` holds.
async fn until(what: &str, mut pred: impl FnMut() -> bool) {
    let end = tokio::time::Instant::now() + WAIT;
    while !pred() {
        assert!(tokio::time::Instant::now() < end, "never: {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The owner's and the friend's simulated phones, once the owner's phone has shared its keys
/// with the newly linked device (whose client acknowledged the share).
async fn linked_phones(
    stack: &Stack,
    owner_number: &str,
    friend_number: &str,
) -> (wa_pairing_sim::SimPhone, wa_pairing_sim::SimPhone) {
    let owner = stack.sim.phone(owner_number);
    owner
        .wait_for_receipt(WAIT, |r| r.kind.as_deref() == Some("peer_msg"))
        .await
        .expect("the key share is received");
    (owner, stack.sim.phone(friend_number))
}

/// The friend types `text` to the owner; returns its id once a [`Gate`] holds it.
async fn held(
    friend: &wa_pairing_sim::SimPhone,
    owner_number: &str,
    text: &str,
    holding: &mut mpsc::UnboundedReceiver<String>,
) -> String {
    let id = friend
        .send_text(owner_number, text)
        .await
        .expect("the friend types");
    let held = tokio::time::timeout(WAIT, holding.recv())
        .await
        .expect("the inbox is handed the text")
        .expect("held");
    assert_eq!(held, id, "the inbox holds the text just sent");
    id
}

/// Whether the friend's phone got a delivery receipt (the client's acknowledgement) for `id`:
/// plain, or `inactive` (what a client sends while it is not marked available).
fn acknowledged(friend: &wa_pairing_sim::SimPhone, id: &str) -> bool {
    friend.receipts().iter().any(|r| {
        matches!(r.kind.as_deref(), None | Some("inactive")) && r.ids.iter().any(|i| i == id)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn texts_sent_while_the_runner_was_stopped_reach_the_inbox_after_the_resume_in_order_once_each()
 {
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("postgres inbox e2e", &why),
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let (owner_number, friend_number) = ("6281234500070", "6281234500071");
    let d = stack.device(owner_number).await;
    let inbox = Recorder::default();
    let connector = stack.connector().with_inbox(inbox.clone());
    let first = Stack::runner_with(&stack.stores, connector.clone(), Stack::config("inbox-a"));
    stack.connected(d.id).await;
    let (owner, friend) = linked_phones(&stack, owner_number, friend_number).await;
    first.shutdown().await;

    // The runner is down: WhatsApp keeps the friend's texts for the companion.
    let mut sent = Vec::new();
    for i in 1..=3 {
        let id = friend
            .send_text(owner_number, &format!("while you were away {i}"))
            .await
            .expect("the friend types");
        sent.push(id);
    }
    assert_eq!(owner.unacknowledged(), 3, "kept for the linked device");
    assert!(inbox.texts().is_empty());

    // The resume: delivered from the offline queue, handed to the inbox in order, then
    // acknowledged.
    let second = Stack::runner_with(&stack.stores, connector, Stack::config("inbox-b"));
    let got = inbox.holds(3).await;
    assert_eq!(
        got.iter().map(|g| g.id.clone()).collect::<Vec<_>>(),
        sent,
        "in the order they were sent"
    );
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.text, format!("while you were away {}", i + 1));
        assert_eq!(g.chat.as_deref(), Some(friend_number));
        assert!(!g.from_me);
        assert_eq!(g.device, d.id);
    }
    until("the queued texts are acknowledged", || {
        owner.unacknowledged() == 0
    })
    .await;
    assert!(sent.iter().all(|id| acknowledged(&friend, id)));
    assert!(stack.sim.counters().offline_delivered >= 3);

    // And a text while the session is live.
    let live = friend
        .send_text(owner_number, "and one more")
        .await
        .expect("the friend types");
    let got = inbox.holds(4).await;
    assert_eq!(got[3].id, live);
    until("the live text is acknowledged", || {
        acknowledged(&friend, &live)
    })
    .await;
    let mut ids: Vec<_> = inbox.texts().into_iter().map(|g| g.id).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 4, "each text once: {:?}", inbox.texts());
    second.shutdown().await;
    person.abort();
    db.drop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_text_is_acknowledged_only_once_the_inbox_took_it_and_without_an_inbox_before_anyone_saw_it()
 {
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
    let person = stack.person();
    let (owner_number, friend_number) = ("6281234500072", "6281234500073");
    let d = stack.device(owner_number).await;
    let (inbox, mut holding) = gate();
    let runner = Stack::runner_with(
        &stack.stores,
        stack.connector().with_inbox(inbox.clone()),
        Stack::config("gated"),
    );
    stack.connected(d.id).await;
    let (owner, friend) = linked_phones(&stack, owner_number, friend_number).await;

    let id = held(&friend, owner_number, "hold this", &mut holding).await;
    // While the inbox holds it, WhatsApp has no acknowledgement and keeps it.
    assert!(!acknowledged(&friend, &id), "{:?}", friend.receipts());
    assert_eq!(owner.unacknowledged(), 1);
    inbox.open.add_permits(1);
    until("the text is acknowledged once the inbox took it", || {
        acknowledged(&friend, &id)
    })
    .await;
    until("it leaves WhatsApp's queue", || owner.unacknowledged() == 0).await;
    runner.shutdown().await;

    // Without an inbox the client acknowledges what it decrypted before handing it to the
    // application: with no subscriber listening, the text is acknowledged and gone.
    let runner = stack.runner(Stack::config("no-inbox"));
    let live = runner.live_session(d.id).await;
    assert!(live.resumed());
    let unheard = friend
        .send_text(owner_number, "nobody is listening")
        .await
        .expect("the friend types");
    until("acknowledged though no one saw it", || {
        acknowledged(&friend, &unheard)
    })
    .await;
    assert_eq!(
        owner.unacknowledged(),
        0,
        "WhatsApp will not deliver it again"
    );
    runner.shutdown().await;
    person.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_text_in_the_inbox_when_the_instance_dies_is_handed_over_by_the_instance_that_takes_over()
{
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("postgres inbox crash e2e", &why),
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let (owner_number, friend_number) = ("6281234500074", "6281234500075");
    let d = stack.device(owner_number).await;

    // Instance A runs on a runtime of its own, with its own connections to the database,
    // so that it can die at once: every task stops where it is, nothing is closed cleanly.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a runtime for instance A");
    let (inbox, mut holding) = gate();
    let connector = stack.connector().with_inbox(inbox);
    let url = db.url.clone();
    doomed.spawn(async move {
        let store = PostgresStore::new(&PostgresConfig::new(&url).pool_size(4)).expect("A's pool");
        let stores = store
            .stores()
            .encrypt(wa_pairing_e2e::test_keyring())
            .build();
        let runner =
            Runner::new(stores, Arc::new(connector), Stack::config("doomed")).expect("runner A");
        runner.run(std::future::pending::<()>()).await
    });
    let linked = stack.connected(d.id).await;
    assert_eq!(linked.lease_owner.as_deref(), Some("doomed"));
    let (owner, friend) = linked_phones(&stack, owner_number, friend_number).await;

    let id = held(
        &friend,
        owner_number,
        "handled when the instance died",
        &mut holding,
    )
    .await;
    // Before the inbox is asked, the decrypted text is written through the store.
    let pending = stack
        .stores
        .auth_state()
        .scan_prefix(d.id, "pending/")
        .await
        .expect("the auth state");
    assert!(
        !pending.is_empty(),
        "the decrypted text is stored before the inbox has it"
    );
    doomed.shutdown_background();
    assert!(!acknowledged(&friend, &id));
    // And while no instance holds the device, the friend writes again.
    let later = friend
        .send_text(owner_number, "sent while no instance held the device")
        .await
        .expect("the friend types");
    assert_eq!(owner.unacknowledged(), 2, "WhatsApp keeps both");

    // B takes the device over once A's lease ran out, and its inbox gets the text.
    let inbox = Recorder::default();
    let b = Stack::runner_with(
        &stack.stores,
        stack.connector().with_inbox(inbox.clone()),
        Stack::config("survivor"),
    );
    let got = inbox.holds(2).await;
    assert_eq!(
        got.iter()
            .map(|g| (g.id.as_str(), g.text.as_str()))
            .collect::<Vec<_>>(),
        [
            (id.as_str(), "handled when the instance died"),
            (later.as_str(), "sent while no instance held the device")
        ],
        "both, in the order they were sent"
    );
    assert!(got.iter().all(|g| g.chat.as_deref() == Some(friend_number)));
    let taken = stack.stores.devices().get(d.id).await.expect("the device");
    assert_eq!(taken.lease_owner.as_deref(), Some("survivor"));
    assert!(taken.lease_fence > linked.lease_fence);
    until("acknowledged by the survivor", || {
        acknowledged(&friend, &id) && acknowledged(&friend, &later)
    })
    .await;
    until("it leaves WhatsApp's queue", || owner.unacknowledged() == 0).await;
    // The stored copy is cleared once the inbox took it.
    let end = tokio::time::Instant::now() + WAIT;
    while !stack
        .stores
        .auth_state()
        .scan_prefix(d.id, "pending/")
        .await
        .expect("the auth state")
        .is_empty()
    {
        assert!(tokio::time::Instant::now() < end, "the stored copy stays");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(inbox.texts().len(), 2, "once each: {:?}", inbox.texts());
    assert_eq!(
        stack.sim.counters().code_requests_for(owner_number),
        1,
        "resumed, not paired again"
    );
    b.shutdown().await;
    person.abort();
    db.drop().await;
}
