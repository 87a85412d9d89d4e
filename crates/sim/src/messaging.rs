//! Text messages between companions and simulated phones, end-to-end encrypted with Signal:
//! the device-list and LID queries (`usync`), pre-key fetches, a companion's `<message>` (the
//! server's ack, the phones' decryption and receipts, the copies relayed to other
//! companions), the companions' receipts, and messages typed on a phone.
//!
//! Addressing follows an account that is not LID-migrated: stanzas name users by phone number
//! (`628…@s.whatsapp.net`), while the client keys its Signal sessions by LID, so pre-key
//! fetches may name either; both resolve to the same account and device.
//! `docs/design/messaging-in-the-simulator.md` cites the client's source for each stanza.

use std::sync::Arc;

use tracing::{debug, warn};
use wacore::proto_helpers::MessageExt as _;
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::keyshare::BundleParts;
use crate::model::{EncType, SimError, SimEvent, SimMessage, SimReceipt, redact};
use crate::node::{SERVER, attr, bytes_of, error, result};
use crate::signal::address;
use crate::state::{Out, Shared, State};

/// The signature prefix of an account-signed key-index list (after `[6,0]` for a device
/// identity's account signature and `[6,1]` for its device signature). Clients do not verify
/// it today.
const KEY_INDEX_SIGNATURE_PREFIX: [u8; 2] = [6, 2];

fn pn(phone: &str) -> String {
    format!("{phone}@{SERVER}")
}

/// The logged-in account and device of a connection.
fn sender_of(st: &State, conn: u64) -> Option<(String, u32)> {
    let c = st.conns.get(&conn)?;
    Some((c.phone.clone()?, c.device?))
}

/// Answers a `usync` query with what it asks for: whether each number is on WhatsApp
/// (`<contact>`: `in` for an account that exists, `out` for a number no one created, as a
/// client's "is this number on WhatsApp?" asks), the device lists (`<devices>`) and LIDs
/// (`<lid>`); other protocols are left out. For a number no one created, `<devices>` and
/// `<lid>` answer `404 item-not-found`. A user is named by `jid`, or (a contact query) by its
/// number in `<contact>+62…</contact>`.
pub(crate) fn usync(shared: &Shared, conn: u64, id: &str, iq: &Node) {
    let mut st = shared.lock();
    st.counters.usync_queries += 1;
    let Some(usync) = iq.get_optional_child("usync") else {
        st.send(conn, Out::Node(error(id, 400, "bad-request", None)));
        return;
    };
    let query = usync.get_optional_child("query");
    let wants = |tag: &str| query.and_then(|q| q.get_optional_child(tag)).is_some();
    let (contact, devices, lid) = (wants("contact"), wants("devices"), wants("lid"));
    let users: Vec<Node> = usync
        .get_optional_child("list")
        .into_iter()
        .flat_map(|l| l.get_children_by_tag("user"))
        .filter_map(|user| {
            let jid = attr(user, "jid").or_else(|| {
                let typed = user.get_optional_child("contact").and_then(bytes_of)?;
                let digits: String = String::from_utf8_lossy(typed)
                    .chars()
                    .filter(char::is_ascii_digit)
                    .collect();
                (!digits.is_empty()).then(|| pn(&digits))
            })?;
            let mut children = Vec::new();
            let account = st
                .resolve(&jid)
                .and_then(|(p, _)| Some((st.accounts.get(&p)?, p)));
            if contact {
                let on_whatsapp = if account.is_some() { "in" } else { "out" };
                children.push(
                    NodeBuilder::new("contact")
                        .attr("type", on_whatsapp)
                        .build(),
                );
            }
            match account {
                Some((account, _)) => {
                    if devices {
                        children.push(device_list(account));
                    }
                    if lid {
                        children.push(
                            NodeBuilder::new("lid")
                                .attr("val", format!("{}@lid", account.lid))
                                .build(),
                        );
                    }
                }
                None => {
                    let not_found = || {
                        NodeBuilder::new("error")
                            .attr("code", "404")
                            .attr("text", "item-not-found")
                            .build()
                    };
                    for (wanted, tag) in [(devices, "devices"), (lid, "lid")] {
                        if wanted {
                            children.push(NodeBuilder::new(tag).children([not_found()]).build());
                        }
                    }
                }
            }
            Some(
                NodeBuilder::new("user")
                    .attr("jid", jid)
                    .children(children)
                    .build(),
            )
        })
        .collect();
    let mut echo = NodeBuilder::new("usync");
    for key in ["sid", "mode", "context", "index", "last"] {
        if let Some(v) = attr(usync, key) {
            echo = echo.attr(key, v);
        }
    }
    let answer = result(id)
        .children([echo
            .children([NodeBuilder::new("list").children(users).build()])
            .build()])
        .build();
    st.send(conn, Out::Node(answer));
}

/// An account's `<devices>`: the phone and every linked companion, with the account-signed
/// key-index list that vouches for the companions (a client drops a user whose companions
/// come without one).
fn device_list(account: &crate::state::Account) -> Node {
    let companions: Vec<u32> = account
        .devices
        .iter()
        .filter(|(_, d)| !d.removed)
        .map(|(n, _)| *n)
        .collect();
    let mut list = vec![NodeBuilder::new("device").attr("id", "0").build()];
    list.extend(companions.iter().map(|n| {
        NodeBuilder::new("device")
            .attr("id", n.to_string())
            .attr("key-index", n.to_string())
            .build()
    }));
    let mut children = vec![NodeBuilder::new("device-list").children(list).build()];
    if !companions.is_empty() {
        let details = wa::ADVKeyIndexList {
            raw_id: Some(account.raw_id),
            timestamp: Some(account.devices_ts),
            current_index: companions.iter().copied().max(),
            valid_indexes: companions,
            ..Default::default()
        }
        .encode_to_vec();
        let mut to_sign = KEY_INDEX_SIGNATURE_PREFIX.to_vec();
        to_sign.extend_from_slice(&details);
        let signature = account
            .identity
            .private_key
            .calculate_signature(&to_sign, &mut rand::make_rng::<rand::rngs::StdRng>())
            .map(|s| s.to_vec())
            .unwrap_or_default();
        let signed = wa::ADVSignedKeyIndexList {
            details: Some(details),
            account_signature: Some(signature),
            ..Default::default()
        }
        .encode_to_vec();
        children.push(
            NodeBuilder::new("key-index-list")
                .attr("ts", account.devices_ts.to_string())
                .bytes(signed)
                .build(),
        );
    }
    NodeBuilder::new("devices").children(children).build()
}

/// Answers a pre-key fetch (`<iq xmlns="encrypt" type="get"><key><user jid/>…`): a phone's
/// bundle with a one-time key it keeps the private half of, a companion's from its upload
/// (each one-time key handed out once) with its signed device identity; `406` for a device
/// that does not exist.
pub(crate) async fn fetch_bundles(shared: &Arc<Shared>, conn: u64, id: &str, iq: &Node) {
    let jids: Vec<String> = iq
        .get_optional_child("key")
        .map(|k| {
            k.get_children_by_tag("user")
                .filter_map(|u| attr(u, "jid"))
                .collect()
        })
        .unwrap_or_default();
    let mut users = Vec::with_capacity(jids.len());
    for jid in jids {
        let node = match bundle_for(shared, &jid).await {
            Ok(Some((parts, identity))) => parts.to_node(&jid, identity.as_deref()),
            Ok(None) => NodeBuilder::new("user")
                .attr("jid", jid)
                .children([NodeBuilder::new("error")
                    .attr("code", "406")
                    .attr("text", "not-acceptable")
                    .build()])
                .build(),
            Err(e) => {
                warn!(error = %e, "could not make a phone's pre-key bundle");
                shared.lock().send(
                    conn,
                    Out::Node(error(id, 500, "internal-server-error", None)),
                );
                return;
            }
        };
        users.push(node);
    }
    let mut st = shared.lock();
    st.counters.bundles_served += users
        .iter()
        .filter(|u| u.get_optional_child("error").is_none())
        .count() as u64;
    st.send(
        conn,
        Out::Node(
            result(id)
                .children([NodeBuilder::new("list").children(users).build()])
                .build(),
        ),
    );
}

type Bundle = (BundleParts, Option<Vec<u8>>);

async fn bundle_for(shared: &Shared, jid: &str) -> Result<Option<Bundle>, SimError> {
    let crypto = {
        let mut st = shared.lock();
        let Some((phone, device)) = st.resolve(jid) else {
            return Ok(None);
        };
        let account = st.account(&phone);
        if device != 0 {
            let Some(linked) = account.devices.get_mut(&device).filter(|d| !d.removed) else {
                return Ok(None);
            };
            let identity = linked.identity.clone();
            return Ok(linked.keys.as_mut().map(|k| (k.take(), identity)));
        }
        Arc::clone(&account.crypto)
    };
    let parts = crypto.lock().await?.bundle()?;
    Ok(Some((parts, None)))
}

/// One `<to jid><enc …>` of a companion's message.
struct Copy {
    jid: String,
    kind: EncType,
    v: u8,
    bytes: Vec<u8>,
}

/// The copies a companion's message carries: one `<to jid>` each under `<participants>`, or,
/// for a message resent to one device (the answer to a retry receipt), the message's own
/// `<enc>` for the device its `to` names.
fn copies(message: &Node) -> Option<Vec<Copy>> {
    let Some(participants) = message.get_optional_child("participants") else {
        let enc = message.get_optional_child("enc")?;
        return Some(vec![Copy {
            jid: attr(message, "to")?,
            kind: EncType::parse(&attr(enc, "type")?)?,
            v: attr(enc, "v").and_then(|v| v.parse().ok()).unwrap_or(2),
            bytes: bytes_of(enc)?.to_vec(),
        }]);
    };
    participants
        .get_children_by_tag("to")
        .map(|to| {
            let enc = to.get_optional_child("enc")?;
            Some(Copy {
                jid: attr(to, "jid")?,
                kind: EncType::parse(&attr(enc, "type")?)?,
                v: attr(enc, "v").and_then(|v| v.parse().ok()).unwrap_or(2),
                bytes: bytes_of(enc)?.to_vec(),
            })
        })
        .collect()
}

/// A companion's `<message>`: the server acks it at once, each phone copy is decrypted by
/// that phone (which answers with a receipt), each companion copy is relayed to that
/// companion (now when it is online, from the offline queue when it logs in).
pub(crate) async fn from_companion(shared: &Arc<Shared>, conn: u64, message: Node) {
    let id = attr(&message, "id");
    let to = attr(&message, "to");
    let parsed = {
        let st = shared.lock();
        sender_of(&st, conn)
            .zip(id.clone())
            .zip(to.clone())
            .zip(copies(&message))
    };
    let Some(((((sender, sender_device), id), to), copies)) = parsed else {
        let mut nack = NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("error", "400")
            .attr("from", SERVER);
        if let Some(id) = id {
            nack = nack.attr("id", id);
        }
        debug!(
            conn,
            "a malformed message, or one from a connection not logged in: nacked"
        );
        shared.lock().send(conn, Out::Node(nack.build()));
        return;
    };
    let chat = to.split('@').next().unwrap_or_default().to_owned();
    let message_type = attr(&message, "type").unwrap_or_else(|| "text".into());
    let device_identity = message
        .get_optional_child("device-identity")
        .and_then(bytes_of)
        .map(<[u8]>::to_vec);
    let notify = {
        let mut st = shared.lock();
        st.counters.messages_from_companions += 1;
        let ack = NodeBuilder::new("ack")
            .attr("class", "message")
            .attr("id", id.clone())
            .attr("from", to.clone())
            .attr("t", wacore::time::now_secs().to_string())
            .build();
        st.send(conn, Out::Node(ack));
        st.account(&sender).push_name.clone()
    };
    for copy in copies {
        let target = shared.lock().resolve(&copy.jid);
        match target {
            None => debug!(
                id,
                "a copy for a device the simulator does not know: dropped"
            ),
            Some((phone, 0)) => {
                let received = Received {
                    phone,
                    sender: &sender,
                    sender_device,
                    id: &id,
                    chat: &chat,
                };
                received.decrypt(shared, &copy).await;
            }
            Some((phone, device)) => {
                let mut node = NodeBuilder::new("message")
                    .attr("from", format!("{sender}:{sender_device}@{SERVER}"))
                    .attr("id", id.clone())
                    .attr("t", wacore::time::now_secs().to_string())
                    .attr("type", message_type.clone())
                    .attr("notify", notify.clone());
                if phone == sender {
                    node = node.attr("recipient", pn(&chat));
                }
                let mut children = vec![enc(copy.kind, copy.v, copy.bytes)];
                if copy.kind == EncType::PreKey
                    && let Some(di) = &device_identity
                {
                    children.push(
                        NodeBuilder::new("device-identity")
                            .bytes(di.clone())
                            .build(),
                    );
                }
                let node = node.children(children).build();
                let mut st = shared.lock();
                match st.deliver(&phone, device, &id, node) {
                    Some(true) => st.counters.messages_relayed += 1,
                    Some(false) => {
                        debug!(id, device, "a companion copy waits in the offline queue");
                    }
                    None => debug!(id, device, "a copy for a companion that is gone: dropped"),
                }
            }
        }
    }
}

fn enc(kind: EncType, v: u8, bytes: Vec<u8>) -> Node {
    NodeBuilder::new("enc")
        .attr("v", v.to_string())
        .attr("type", kind.wire())
        .bytes(bytes)
        .build()
}

/// A copy of a companion's message that reached a phone.
struct Received<'a> {
    phone: String,
    sender: &'a str,
    sender_device: u32,
    id: &'a str,
    /// The number the companion sent to.
    chat: &'a str,
}

/// How many times a phone asks for one message again before it gives up, as WhatsApp's
/// clients do.
const MAX_RETRIES: u8 = 5;

impl Received<'_> {
    /// The phone could not decrypt the copy: it sends the companion a retry receipt (`<retry
    /// count>`, its registration id and, in `<keys>`, a fresh pre-key bundle), so the
    /// companion starts a new session and sends the message again.
    async fn ask_again(&self, shared: &Shared, crypto: &Arc<crate::state::PhoneCrypto>) {
        let count = {
            let mut st = shared.lock();
            let tries = st
                .account(&self.phone)
                .retries
                .entry((
                    self.sender.to_owned(),
                    self.sender_device,
                    self.id.to_owned(),
                ))
                .or_insert(0);
            *tries += 1;
            *tries
        };
        if count > MAX_RETRIES {
            warn!(phone = %redact(&self.phone), id = self.id, "a phone gave up on a companion's message it cannot decrypt");
            return;
        }
        let bundle = match crypto.lock().await.and_then(|mut s| s.bundle()) {
            Ok(b) => b,
            Err(e) => {
                warn!(phone = %redact(&self.phone), error = %e, "a phone could not make keys for a retry receipt");
                return;
            }
        };
        let now = wacore::time::now_secs().to_string();
        let [registration, keys] = bundle.to_retry_nodes();
        let mut receipt = NodeBuilder::new("receipt")
            .attr("from", pn(&self.phone))
            .attr("id", self.id.to_owned())
            .attr("t", now.clone())
            .attr("type", "retry");
        if self.phone == self.sender {
            receipt = receipt.attr("recipient", pn(self.chat));
        }
        let receipt = receipt
            .children([
                NodeBuilder::new("retry")
                    .attr("count", count.to_string())
                    .attr("id", self.id.to_owned())
                    .attr("t", now)
                    .attr("v", "1")
                    .build(),
                registration,
                keys,
            ])
            .build();
        let mut st = shared.lock();
        st.counters.retry_receipts += 1;
        st.deliver(self.sender, self.sender_device, self.id, receipt);
    }

    async fn decrypt(self, shared: &Shared, copy: &Copy) {
        let crypto = Arc::clone(&shared.lock().account(&self.phone).crypto);
        let from = address(self.sender, self.sender_device);
        let decrypted = match crypto.lock().await {
            Ok(mut signal) => signal.decrypt(&from, copy.kind, &copy.bytes, copy.v).await,
            Err(e) => Err(e),
        };
        let message = match decrypted {
            Ok(m) => m,
            Err(e) => {
                shared.lock().counters.messages_undecryptable += 1;
                debug!(phone = %redact(&self.phone), id = self.id, error = %e, "a phone could not decrypt a companion's message; it asks for it again");
                self.ask_again(shared, &crypto).await;
                return;
            }
        };
        let own = self.phone == self.sender;
        // The account's own companion wraps its copy for the phone; the chat is where it went.
        let chat = if own {
            message
                .device_sent_message
                .as_option()
                .and_then(|d| d.destination_jid.as_deref())
                .map_or(self.chat, |j| j.split('@').next().unwrap_or_default())
                .to_owned()
        } else {
            self.sender.to_owned()
        };
        let inner = wacore::messages::unwrap_device_sent(message);
        let received = SimMessage {
            id: self.id.to_owned(),
            from: self.sender.to_owned(),
            from_device: self.sender_device,
            chat: chat.clone(),
            text: inner.text_content().map(str::to_owned),
            enc: copy.kind,
        };
        let mut receipt = NodeBuilder::new("receipt")
            .attr("from", pn(&self.phone))
            .attr("id", self.id.to_owned())
            .attr("t", wacore::time::now_secs().to_string());
        if own {
            receipt = receipt.attr("recipient", pn(&chat)).attr("type", "sender");
        }
        let receipt = receipt.build();
        {
            let mut st = shared.lock();
            st.counters.messages_decrypted += 1;
            st.account(&self.phone).inbox.push(received);
            // Kept for a sender that is away, like a message.
            st.deliver(self.sender, self.sender_device, self.id, receipt);
        }
        shared.emit(SimEvent::MessageReceived {
            phone: self.phone,
            id: self.id.to_owned(),
        });
    }
}

/// A companion's `<receipt>` for a message a phone sent (delivered, read, sender, retry…):
/// recorded, and acknowledged as the server does (`<ack class="receipt">`).
pub(crate) fn receipt(shared: &Shared, conn: u64, node: &Node) {
    let mut st = shared.lock();
    let Some((from, from_device)) = sender_of(&st, conn) else {
        return;
    };
    let Some(id) = attr(node, "id") else { return };
    let mut ack = NodeBuilder::new("ack")
        .attr("class", "receipt")
        .attr("id", id.clone())
        .attr(
            "from",
            attr(node, "to").unwrap_or_else(|| SERVER.to_owned()),
        );
    if let Some(kind) = attr(node, "type") {
        ack = ack.attr("type", kind);
    }
    st.send(conn, Out::Node(ack.build()));
    let Some((phone, _)) = attr(node, "to").and_then(|to| st.resolve(&to)) else {
        return;
    };
    let mut ids = vec![id.clone()];
    ids.extend(
        node.get_optional_child("list")
            .map(|l| {
                l.get_children_by_tag("item")
                    .filter_map(|i| attr(i, "id"))
                    .collect::<Vec<_>>()
            })
            .unwrap_or_default(),
    );
    // A receipt acknowledges the messages it names, as an `<ack>` does (whatsapp-rust, like
    // WhatsApp Web, sends no `<ack>` for a message it could decrypt, only the receipt); a
    // retry receipt says the opposite.
    if attr(node, "type").as_deref() != Some("retry") {
        for id in &ids {
            st.acknowledged(&from, from_device, "message", None, id);
        }
    }
    st.counters.receipts += 1;
    st.account(&phone).receipts.push(SimReceipt {
        ids,
        from,
        from_device,
        kind: attr(node, "type"),
    });
    drop(st);
    shared.emit(SimEvent::ReceiptReceived { phone, id });
}

/// A text typed on `phone` to `to`: one copy for each companion of `to` and, wrapped as sent
/// by the account, for each of `phone`'s own (now to those online, from the offline queue to
/// the others when they log in); returns the message id.
pub(crate) async fn send_from_phone(
    shared: &Shared,
    phone: &str,
    to: &str,
    text: &str,
) -> Result<String, SimError> {
    use rand::RngExt as _;
    let id = format!("3A{:018X}", rand::rng().random::<u128>() & ((1 << 72) - 1));
    let message = wa::Message {
        conversation: Some(text.to_owned()),
        ..Default::default()
    };
    let (crypto, targets, sender_lid, notify) = {
        let mut st = shared.lock();
        st.account(to);
        let targets = |st: &State, account: &str| -> Vec<(String, u32)> {
            st.accounts
                .get(account)
                .map(|a| {
                    a.devices
                        .iter()
                        .filter(|(_, d)| !d.removed && d.keys.is_some())
                        .map(|(n, _)| (account.to_owned(), *n))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut all = targets(&st, to);
        if to != phone {
            all.extend(targets(&st, phone));
        }
        let sender = st.account(phone);
        (
            Arc::clone(&sender.crypto),
            all,
            sender.lid.clone(),
            sender.push_name.clone(),
        )
    };
    let mut signal = crypto.lock().await?;
    let mut sent = 0u64;
    for (account, device) in targets {
        let own = account == phone;
        let addr = address(&account, device);
        if !signal.has_session(&addr) {
            let bundle = {
                let mut st = shared.lock();
                st.accounts
                    .get_mut(&account)
                    .and_then(|a| a.devices.get_mut(&device))
                    .and_then(|d| d.keys.as_mut())
                    .map(|k| k.take().to_bundle(device))
            };
            let Some(bundle) = bundle else { continue };
            signal.start_session(&addr, &bundle?).await?;
        }
        let plain = if own {
            wacore::messages::wrap_device_sent(message.clone(), pn(to))
        } else {
            message.clone()
        };
        let (kind, bytes) = signal.encrypt(&addr, &plain).await?;
        let mut node = NodeBuilder::new("message")
            .attr("from", pn(phone))
            .attr("id", id.clone())
            .attr("t", wacore::time::now_secs().to_string())
            .attr("type", "text")
            .attr("notify", notify.clone());
        node = if own {
            node.attr("recipient", pn(to))
        } else {
            node.attr("sender_lid", format!("{sender_lid}@lid"))
        };
        let node = node.children([enc(kind, 2, bytes)]).build();
        if shared.lock().deliver(&account, device, &id, node).is_some() {
            sent += 1;
        }
    }
    drop(signal);
    shared.lock().counters.messages_from_phones += sent;
    debug!(phone = %redact(phone), copies = sent, "a phone sent a message");
    if sent == 0 {
        return Err(SimError::NoCompanion);
    }
    Ok(id)
}

/// The phone's first messages to its freshly linked companion `device` (the key share, then
/// the history-sync notification): a session started over the bundle the companion uploaded
/// (kept, so the companion's first message to its phone is a `msg`), and each message
/// encrypted over it in order (a `pkmsg`, then `msg`s).
pub(crate) async fn encrypt_first_messages(
    crypto: &crate::state::PhoneCrypto,
    phone: &str,
    device: u32,
    bundle: wacore_libsignal::protocol::PreKeyBundle,
    messages: &[wa::Message],
) -> Result<Vec<(EncType, Vec<u8>)>, SimError> {
    let addr = address(phone, device);
    let mut signal = crypto.lock().await?;
    signal.forget(&addr);
    signal.start_session(&addr, &bundle).await?;
    let mut out = Vec::with_capacity(messages.len());
    for message in messages {
        out.push(signal.encrypt(&addr, message).await?);
    }
    Ok(out)
}

/// A client's `<ack>` of a stanza the server sent it: an acknowledged message or receipt
/// leaves the companion's offline queue (an unacknowledged one is delivered again on its next
/// login).
/// A receipt for the message acknowledges it too ([`receipt`]).
pub(crate) fn client_ack(shared: &Shared, conn: u64, node: &Node) {
    let Some(class) = attr(node, "class").filter(|c| c == "message" || c == "receipt") else {
        return;
    };
    let mut st = shared.lock();
    let (Some((phone, device)), Some(id)) = (sender_of(&st, conn), attr(node, "id")) else {
        return;
    };
    st.acknowledged(&phone, device, &class, attr(node, "type").as_deref(), &id);
}

/// `phone` reads the message `id` it received from a companion: the sending companion gets a
/// read receipt (`<receipt type="read">`, through the offline queue when it is away), as
/// WhatsApp relays a phone's read receipt.
pub(crate) fn read(shared: &Shared, phone: &str, id: &str) -> Result<(), SimError> {
    let mut st = shared.lock();
    let Some((from, from_device)) = st
        .account(phone)
        .inbox
        .iter()
        .find(|m| m.id == id)
        .map(|m| (m.from.clone(), m.from_device))
    else {
        return Err(SimError::NoSuchMessage(id.to_owned()));
    };
    let receipt = NodeBuilder::new("receipt")
        .attr("from", pn(phone))
        .attr("id", id.to_owned())
        .attr("t", wacore::time::now_secs().to_string())
        .attr("type", "read")
        .build();
    st.deliver(&from, from_device, id, receipt);
    Ok(())
}
