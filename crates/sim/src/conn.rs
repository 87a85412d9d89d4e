//! One client connection: WebSocket, Noise XX as the responder, then stanzas.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::BytesMut;
use futures::{FutureExt as _, SinkExt as _, StreamExt as _};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_websockets::{Message, ServerBuilder};
use tracing::{debug, warn};
use wacore_binary::Node;
use wacore_binary::builder::NodeBuilder;
use wacore_binary::consts::{NOISE_PATTERN_XX, WA_MAGIC_VALUE};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::framing::{FrameDecoder, encode_frame};
use wacore_noise::{NoiseCipher, NoiseHandshake};
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::dict::{self, Dictionary};
use crate::keyshare::{self, UploadedKeys};
use crate::messaging;
use crate::model::{SimEvent, Stage, redact};
use crate::node::B64;
use crate::node::{SERVER, attr, child_bytes, error, result};
use crate::state::{ConnHandle, Finish, LinkedDevice, Out, PendingCode, Shared, State};

type Ws = tokio_websockets::WebSocketStream<TcpStream>;

/// Errors that end a connection; logged at debug level only (clients come and go).
#[derive(Debug)]
struct Closed(String);

impl<E: std::fmt::Display> From<E> for Closed {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

struct Transport {
    ws: Ws,
    decoder: FrameDecoder,
    /// The connection header the client sent (`WA 6 <dictionary version>`), once seen.
    header: Option<[u8; 4]>,
}

impl Transport {
    /// The next frame from the client (a WebSocket message may carry several, or part of one).
    async fn frame(&mut self) -> Result<Option<BytesMut>, Closed> {
        loop {
            if let Some(frame) = self.decoder.decode_frame() {
                return Ok(Some(frame));
            }
            let Some(msg) = self.ws.next().await else {
                return Ok(None);
            };
            let msg = msg?;
            if msg.is_close() {
                return Ok(None);
            }
            if !msg.is_binary() {
                continue;
            }
            let payload = msg.into_payload();
            let mut data: &[u8] = &payload;
            if self.header.is_none() {
                let (header, rest) = strip_header(data)?;
                self.header = Some(header);
                data = rest;
            }
            self.decoder.feed(data);
        }
    }

    async fn send_frame(&mut self, payload: &[u8]) -> Result<(), Closed> {
        let framed = encode_frame(payload, None)?;
        self.ws.send(Message::binary(framed)).await?;
        Ok(())
    }
}

/// Splits the optional edge-routing preamble and the `WA 6 <dict>` connection header off the
/// first message; returns the header and what follows it.
fn strip_header(data: &[u8]) -> Result<([u8; 4], &[u8]), Closed> {
    let mut rest = data;
    if rest.starts_with(b"ED\x00\x01") && rest.len() >= 7 {
        let len = (usize::from(rest[4]) << 16) | (usize::from(rest[5]) << 8) | usize::from(rest[6]);
        rest = rest
            .get(7 + len..)
            .ok_or_else(|| Closed("short edge-routing preamble".into()))?;
    }
    let Some((&header, rest)) = rest.split_first_chunk::<4>() else {
        return Err(Closed("missing the WA connection header".into()));
    };
    if header[..3] != [b'W', b'A', WA_MAGIC_VALUE] {
        warn!("a client sent no WA 6 connection header; closing");
        return Err(Closed("missing the WA connection header".into()));
    }
    if dict::dictionary(header[3]).is_none() {
        warn!(
            version = header[3],
            spoken = ?dict::VERSIONS,
            "a client asked for a binary token dictionary version the simulator does not speak; closing"
        );
        return Err(Closed(format!("unknown dictionary version {}", header[3])));
    }
    Ok((header, rest))
}

struct Ciphers {
    read: NoiseCipher,
    write: NoiseCipher,
    read_counter: u32,
    write_counter: u32,
    /// The token dictionary the connection header chose, for this socket both ways.
    dict: &'static Dictionary,
}

/// The XX handshake as the responder. Returns the ciphers and the client's static key and
/// payload.
async fn handshake(
    shared: &Shared,
    t: &mut Transport,
) -> Result<(Ciphers, [u8; 32], wa::ClientPayload), Closed> {
    let hello = t
        .frame()
        .await?
        .ok_or_else(|| Closed("closed before hello".into()))?;
    let hello = waproto::codec::handshake_message_decode(&hello)?;
    let client_hello = hello
        .client_hello
        .into_option()
        .ok_or_else(|| Closed("no client hello".into()))?;
    if client_hello.r#static.is_some() {
        // The chain's validity ended long ago, so clients never try IK against the sim.
        return Err(Closed("Noise IK is not supported by the simulator".into()));
    }
    let client_eph = client_hello
        .ephemeral
        .ok_or_else(|| Closed("no client ephemeral".into()))?;

    // The prologue is the header this client sent, as on WhatsApp's server.
    let header = t
        .header
        .ok_or_else(|| Closed("no connection header".into()))?;
    let mut noise = NoiseHandshake::new(NOISE_PATTERN_XX, &header)?;
    noise.authenticate(&client_eph);
    let eph = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
    noise.authenticate(eph.public_key.public_key_bytes());
    noise.mix_shared_secret(eph.private_key.serialize(), &client_eph)?;
    let static_ct = noise.encrypt(shared.identity.static_kp.public_key.public_key_bytes())?;
    noise.mix_shared_secret(
        shared.identity.static_kp.private_key.serialize(),
        &client_eph,
    )?;
    let cert_ct = noise.encrypt(&shared.identity.cert_chain)?;
    let server_hello = wa::HandshakeMessage {
        server_hello: waproto::buffa::MessageField::some(wa::handshake_message::ServerHello {
            ephemeral: Some(eph.public_key.public_key_bytes().to_vec()),
            r#static: Some(static_ct),
            payload: Some(cert_ct),
            ..Default::default()
        }),
        ..Default::default()
    };
    t.send_frame(&server_hello.encode_to_vec()).await?;

    let finish = t
        .frame()
        .await?
        .ok_or_else(|| Closed("closed before finish".into()))?;
    let finish = waproto::codec::handshake_message_decode(&finish)?;
    let client_finish = finish
        .client_finish
        .into_option()
        .ok_or_else(|| Closed("no client finish".into()))?;
    let client_static = noise.decrypt(
        client_finish
            .r#static
            .as_deref()
            .ok_or_else(|| Closed("no client static".into()))?,
    )?;
    let client_static: [u8; 32] = client_static
        .try_into()
        .map_err(|_| Closed("client static is not 32 bytes".into()))?;
    noise.mix_shared_secret(eph.private_key.serialize(), &client_static)?;
    let payload = noise.decrypt(
        client_finish
            .payload
            .as_deref()
            .ok_or_else(|| Closed("no client payload".into()))?,
    )?;
    let payload = wa::ClientPayload::decode_from_slice(&payload)?;
    // The initiator writes with the first key and reads with the second.
    let (client_write, client_read) = noise.finish()?;
    let dict = dict::dictionary(header[3])
        .ok_or_else(|| Closed(format!("unknown dictionary version {}", header[3])))?;
    Ok((
        Ciphers {
            read: client_write,
            write: client_read,
            read_counter: 0,
            write_counter: 0,
            dict,
        },
        client_static,
        payload,
    ))
}

/// Serves one accepted TCP connection until it closes.
pub(crate) async fn serve(shared: Arc<Shared>, stream: TcpStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    let id = {
        let mut st = shared.lock();
        st.next_conn += 1;
        st.counters.connections += 1;
        st.counters.open_connections += 1;
        let id = st.next_conn;
        st.conns.insert(
            id,
            ConnHandle {
                tx,
                phone: None,
                device: None,
                qr_refs: Vec::new(),
            },
        );
        id
    };
    if let Err(Closed(why)) = run(&shared, id, stream, rx).await {
        debug!(conn = id, %why, "connection ended");
    }
    {
        let mut st = shared.lock();
        st.conns.remove(&id);
        st.counters.open_connections = st.counters.open_connections.saturating_sub(1);
        for account in st.accounts.values_mut() {
            if account.pending.as_ref().is_some_and(|p| p.conn == id) {
                // A code dies with the socket that registered it.
                account.pending = None;
            }
        }
    }
    shared.emit(SimEvent::Disconnected { conn: id });
}

async fn run(
    shared: &Arc<Shared>,
    id: u64,
    stream: TcpStream,
    mut rx: mpsc::UnboundedReceiver<Out>,
) -> Result<(), Closed> {
    let (_request, ws) = ServerBuilder::new().accept(stream).await?;
    let mut t = Transport {
        ws,
        decoder: FrameDecoder::new(),
        header: None,
    };
    let (mut ciphers, client_static, payload) = handshake(shared, &mut t).await?;
    debug!(
        conn = id,
        dictionary = ciphers.dict.version(),
        "handshake done"
    );
    shared.emit(SimEvent::Connected { conn: id });

    if payload.device_pairing_data.is_set() || payload.username.is_none() {
        debug!(conn = id, "registration connection");
        pair_device(shared, id);
    } else {
        login(shared, id, &payload, client_static);
    }

    let mut shutdown = shared.shutdown.subscribe();
    loop {
        tokio::select! {
            _ = shutdown.changed() => return Ok(()),
            out = rx.recv() => match out {
                Some(Out::Node(node)) => {
                    let plain = ciphers.dict.encode(&node)?;
                    let ct = ciphers.write.encrypt_with_counter(ciphers.write_counter, &plain)?;
                    ciphers.write_counter += 1;
                    t.send_frame(&ct).await?;
                }
                Some(Out::Close) | None => {
                    let _ = t.ws.close().await;
                    return Ok(());
                }
                Some(Out::Flush(done)) => {
                    loop {
                        match t.frame().now_or_never() {
                            None => break,
                            Some(Ok(Some(frame))) => received(shared, id, &mut ciphers, frame).await?,
                            Some(Ok(None) | Err(_)) => {
                                shared.lock().conns.remove(&id);
                                drop(done);
                                return Ok(());
                            }
                        }
                    }
                    drop(done);
                }
            },
            frame = t.frame() => {
                let Some(frame) = frame? else { return Ok(()) };
                received(shared, id, &mut ciphers, frame).await?;
            }
        }
    }
}

/// Decrypts and dispatches one frame from the client. Messages and pre-key fetches run the
/// phones' Signal work before the next frame is read, as a server reading in order would.
async fn received(
    shared: &Arc<Shared>,
    id: u64,
    ciphers: &mut Ciphers,
    mut frame: BytesMut,
) -> Result<(), Closed> {
    ciphers
        .read
        .decrypt_in_place_with_counter(ciphers.read_counter, &mut frame)?;
    ciphers.read_counter += 1;
    let node = ciphers.dict.decode(&frame)?;
    if shared.config.record_stanzas {
        shared.lock().stanzas.push(format!("{id} <- {node:?}"));
    }
    if node.tag == "message" {
        messaging::from_companion(shared, id, node).await;
    } else if node.tag == "ack" {
        messaging::client_ack(shared, id, &node);
    } else if node.tag == "receipt" {
        messaging::receipt(shared, id, &node);
    } else if node.tag == "iq"
        && attr(&node, "xmlns").as_deref() == Some("encrypt")
        && attr(&node, "type").as_deref() == Some("get")
        && node.get_optional_child("key").is_some()
    {
        let iq = attr(&node, "id").unwrap_or_default();
        messaging::fetch_bundles(shared, id, &iq, &node).await;
    } else {
        handle(shared, id, node);
    }
    Ok(())
}

fn login(shared: &Arc<Shared>, id: u64, payload: &wa::ClientPayload, client_static: [u8; 32]) {
    let phone = payload.username.unwrap_or_default().to_string();
    let device = payload.device.unwrap_or(0);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        if !shared.stage(&phone, Stage::LoginSuccess, id).await {
            return;
        }
        // Sockets of this companion that its client already closed (before this one even
        // connected) are gone for a server reading in order: let their tasks catch up first.
        let older: Vec<_> = {
            let st = shared.lock();
            st.sessions_of(&phone, device)
                .into_iter()
                .filter_map(|c| {
                    let (tx, rx) = tokio::sync::oneshot::channel();
                    st.send(c, Out::Flush(tx)).then_some(rx)
                })
                .collect()
        };
        for flushed in older {
            let _ = tokio::time::timeout(Duration::from_secs(5), flushed).await;
        }
        let mut st = shared.lock();
        let account = st.account(&phone);
        let failure = account.faults.login_failure.take();
        let known = account
            .devices
            .get(&device)
            .is_some_and(|d| !d.removed && d.noise_pub == client_static);
        let failure = failure.or((!known).then_some(crate::LoginFailure::LoggedOut));
        if let Some(f) = failure {
            let mut node = NodeBuilder::new("failure").attr("reason", f.reason().to_string());
            if let crate::LoginFailure::TemporarilyBanned { expires_in } = f {
                node = node
                    .attr("expire", expires_in.as_secs().to_string())
                    .attr("code", "101");
            }
            st.send(id, Out::Node(node.build()));
            st.send(id, Out::Close);
            drop(st);
            shared.emit(SimEvent::LoginRefused {
                phone,
                reason: f.reason(),
            });
            return;
        }
        let lid = account.lid.clone();
        // A second socket for one companion: the server keeps the newest.
        let older = st.sessions_of(&phone, device);
        for old in older {
            st.send(
                old,
                Out::Node(
                    NodeBuilder::new("stream:error")
                        .children([NodeBuilder::new("conflict")
                            .attr("type", "replaced")
                            .build()])
                        .build(),
                ),
            );
            st.send(old, Out::Close);
        }
        if let Some(c) = st.conns.get_mut(&id) {
            c.phone = Some(phone.clone());
            c.device = Some(device);
        }
        let concurrent = u32::try_from(st.sessions_of(&phone, device).len()).unwrap_or(u32::MAX);
        if concurrent > 1 {
            warn!(phone = %redact(&phone), device, conn = id, concurrent, "a second socket logged in for one companion");
        }
        let max = st
            .counters
            .max_concurrent_sessions
            .entry(phone.clone())
            .or_insert(0);
        *max = (*max).max(concurrent);
        st.count_login();
        let now = wacore::time::now_secs().to_string();
        st.send(
            id,
            Out::Node(
                NodeBuilder::new("success")
                    .attr("t", now)
                    .attr("lid", format!("{lid}:{device}@lid"))
                    .attr("location", "sim")
                    .build(),
            ),
        );
        drop(st);
        shared.emit(SimEvent::LoggedIn { phone, device });
    });
}

/// Hands a registration connection its QR refs, as the real server does right after the
/// handshake, and closes it once the last one expired unless a pairing code is outstanding on
/// it (the companion keeps that socket for the code flow).
fn pair_device(shared: &Arc<Shared>, conn: u64) {
    let config = &shared.config;
    let now = tokio::time::Instant::now();
    let refs: Vec<(String, tokio::time::Instant)> = (0..config.qr_refs)
        .map(|i| {
            use rand::RngExt as _;
            let mut rng = rand::rng();
            let raw: Vec<u8> = (0..18).map(|_| rng.random::<u8>()).collect();
            let later = config.qr_ref * u32::try_from(i).unwrap_or(u32::MAX);
            (
                format!("2@{}", B64.encode(raw)),
                now + config.qr_first_ref + later,
            )
        })
        .collect();
    let last = refs.last().map_or(now, |r| r.1);
    {
        let mut st = shared.lock();
        let id = st.next_id();
        let iq = NodeBuilder::new("iq")
            .attr("from", SERVER)
            .attr("type", "set")
            .attr("id", id)
            .attr("xmlns", "md")
            .children([NodeBuilder::new("pair-device")
                .children(
                    refs.iter()
                        .map(|(r, _)| NodeBuilder::new("ref").bytes(r.as_bytes()).build()),
                )
                .build()])
            .build();
        if let Some(c) = st.conns.get_mut(&conn) {
            c.qr_refs = refs;
        }
        st.send(conn, Out::Node(iq));
    }
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        tokio::time::sleep_until(last).await;
        let st = shared.lock();
        let Some(c) = st.conns.get(&conn) else { return };
        let code_outstanding = st
            .accounts
            .values()
            .any(|a| a.pending.as_ref().is_some_and(|p| p.conn == conn));
        if c.device.is_none() && !code_outstanding {
            debug!(conn, "QR refs used up: closing the registration connection");
            st.send(conn, Out::Close);
        }
    });
}

/// Dispatches one stanza from a client.
fn handle(shared: &Arc<Shared>, conn: u64, node: Node) {
    if node.tag != "iq" {
        // presence, unified_session...: nothing to answer.
        return;
    }
    let id = attr(&node, "id").unwrap_or_default();
    let kind = attr(&node, "type").unwrap_or_default();
    if kind == "result" || kind == "error" {
        if let Some(waiter) = shared.lock().waiting.remove(&id) {
            let _ = waiter.send(node);
        }
        return;
    }
    let xmlns = attr(&node, "xmlns").unwrap_or_default();
    let reply = |n: Node| {
        shared.lock().send(conn, Out::Node(n));
    };
    if let Some(reg) = node.get_optional_child("link_code_companion_reg") {
        match attr(reg, "stage").as_deref() {
            Some("companion_hello") => code_request(shared, conn, &id, reg),
            Some("companion_finish") => {
                // The server acknowledges the IQ first; the phone's part (and pair-success)
                // comes after a round trip to the phone. Acknowledging after handing the
                // bundle over let pair-success overtake the acknowledgement, and the client
                // wrote its companion_finish off as failed.
                reply(result(&id).build());
                companion_finish(shared, reg);
            }
            _ => reply(error(&id, 400, "bad-request", None)),
        }
        return;
    }
    if xmlns == "encrypt"
        && kind == "set"
        && let Some(keys) = UploadedKeys::parse(&node)
    {
        reply(result(&id).build());
        pre_keys_uploaded(shared, conn, keys);
        return;
    }
    if xmlns == "md"
        && kind == "set"
        && node.get_optional_child("remove-companion-device").is_some()
    {
        companion_removed(shared, conn, &id);
        return;
    }
    match (xmlns.as_str(), kind.as_str()) {
        ("passive", "set") => {
            reply(result(&id).build());
            if node.get_optional_child("active").is_some() {
                // What waited for this companion while it was away (or was never
                // acknowledged), oldest first, then the marker that the queue is empty.
                let mut st = shared.lock();
                let offline = st.offline_for(conn, shared.config.offline_expiry);
                let count = offline.len();
                for message in offline {
                    st.send(conn, Out::Node(message));
                }
                st.send(
                    conn,
                    Out::Node(
                        NodeBuilder::new("ib")
                            .attr("from", SERVER)
                            .children([NodeBuilder::new("offline")
                                .attr("count", count.to_string())
                                .build()])
                            .build(),
                    ),
                );
            }
        }
        ("encrypt", "get") if node.get_optional_child("count").is_some() => {
            let count = {
                let mut st = shared.lock();
                linked_device(&mut st, conn)
                    .and_then(|(_, _, d)| d.keys.as_ref())
                    .map_or(0, UploadedKeys::count)
            };
            reply(
                result(&id)
                    .children([NodeBuilder::new("count")
                        .attr("value", count.to_string())
                        .build()])
                    .build(),
            );
        }
        // The client checks what the server holds against its own keys; with nothing held the
        // server says 404, and the client uploads again.
        ("encrypt", "get") if node.get_optional_child("digest").is_some() => {
            let digest = {
                let mut st = shared.lock();
                linked_device(&mut st, conn)
                    .and_then(|(_, _, d)| d.keys.as_ref())
                    .map(UploadedKeys::digest)
            };
            reply(match digest {
                Some(d) => result(&id).children([d]).build(),
                None => error(&id, 404, "item-not-found", None),
            });
        }
        ("w:sync:app:state", "set") => reply(app_state_answer(&id, &node)),
        // The first queries clients send after login, answered as an account with nothing set
        // up: the server's A/B props (none beyond the hash), an empty blocklist, and the
        // default privacy settings.
        ("w", "get") if node.get_optional_child("props").is_some() => reply(
            result(&id)
                .children([NodeBuilder::new("props")
                    .attr("protocol", "2")
                    .attr("hash", "sim-props-1")
                    .build()])
                .build(),
        ),
        // The A/B experiment configuration: none, under a stable hash.
        ("abt", "get") if node.get_optional_child("props").is_some() => reply(
            result(&id)
                .children([NodeBuilder::new("props")
                    .attr("protocol", "1")
                    .attr("hash", "sim-abt-1")
                    .attr("refresh", "86400")
                    .build()])
                .build(),
        ),
        ("blocklist", "get") => reply(
            result(&id)
                .children([NodeBuilder::new("list").build()])
                .build(),
        ),
        ("privacy", "get") => reply(privacy_answer(&id)),
        ("usync", "get") => messaging::usync(shared, conn, &id, &node),
        (_, "set") | ("w:p", _) => reply(result(&id).build()),
        // Anything else is a query the simulator does not model.
        _ => reply(error(&id, 501, "feature-not-implemented", None)),
    }
}

/// A logged-in companion asks to be removed from its account (the client's logout): the
/// server forgets it, so a later login with its keys is refused, as WhatsApp's server does.
fn companion_removed(shared: &Arc<Shared>, conn: u64, id: &str) {
    let removed = {
        let mut st = shared.lock();
        let removed = match linked_device(&mut st, conn) {
            Some((phone, device, linked)) if !linked.removed => {
                linked.removed = true;
                Some((phone, device))
            }
            _ => None,
        };
        if let Some((phone, _)) = &removed {
            st.account(phone).devices_ts = wacore::time::now_secs_u64();
            st.counters.device_removals += 1;
        }
        let answer = if removed.is_some() {
            result(id).build()
        } else {
            error(id, 401, "not-authorized", None)
        };
        st.send(conn, Out::Node(answer));
        removed
    };
    if let Some((phone, device)) = removed {
        debug!(phone = %redact(&phone), device, "companion removed by its own client");
        shared.emit(SimEvent::DeviceRemoved { phone, device });
    }
}

/// The phone, device number and linked device a logged-in connection belongs to.
fn linked_device(st: &mut State, conn: u64) -> Option<(String, u32, &mut LinkedDevice)> {
    let c = st.conns.get(&conn)?;
    let (phone, device) = (c.phone.clone()?, c.device?);
    let linked = st.accounts.get_mut(&phone)?.devices.get_mut(&device)?;
    Some((phone, device, linked))
}

/// Keeps a companion's uploaded pre-keys; after a fresh pairing, the phone then sends it the
/// app-state sync keys over one of them, as WhatsApp's primary device does.
fn pre_keys_uploaded(shared: &Arc<Shared>, conn: u64, keys: UploadedKeys) {
    let mut st = shared.lock();
    let Some((phone, device, linked)) = linked_device(&mut st, conn) else {
        debug!(conn, "pre-keys from a connection that is not logged in");
        return;
    };
    match &mut linked.keys {
        Some(held) => held.merge(keys),
        None => linked.keys = Some(keys),
    }
    if std::mem::replace(&mut linked.keys_shared, true) {
        return;
    }
    let Some(bundle) = linked.keys.as_mut().map(|k| k.take_bundle(device)) else {
        return;
    };
    let history_id = st.next_id();
    let account = st.account(&phone);
    let notify = account.push_name.clone();
    let (crypto, first) = (
        Arc::clone(&account.crypto),
        [
            keyshare::message(device, &account.app_state_key),
            keyshare::history_bootstrap(&phone, &account.lid, &account.push_name, &history_id),
        ],
    );
    drop(st);
    let shared = Arc::clone(shared);
    tokio::spawn(async move {
        let ciphertexts = match bundle {
            Ok(bundle) => {
                messaging::encrypt_first_messages(&crypto, &phone, device, bundle, &first).await
            }
            Err(e) => Err(e),
        };
        let ciphertexts = match ciphertexts {
            Ok(c) => c,
            Err(e) => {
                warn!(phone = %redact(&phone), device, error = %e, "could not share the app-state keys");
                return;
            }
        };
        // The key share, then the history-sync notification, in this order (as from a real
        // phone): a client that starts its app-state sync on the notification has the key.
        let sent = {
            let mut st = shared.lock();
            let mut sent = 0;
            for (n, (kind, ciphertext)) in ciphertexts.into_iter().enumerate() {
                let id = if n == 1 {
                    history_id.clone()
                } else {
                    st.next_id()
                };
                let message = NodeBuilder::new("message")
                    .attr("from", format!("{phone}@{SERVER}"))
                    .attr("id", id)
                    .attr("t", wacore::time::now_secs().to_string())
                    .attr("type", "text")
                    .attr("category", "peer")
                    .attr("notify", notify.clone())
                    .children([NodeBuilder::new("enc")
                        .attr("v", "2")
                        .attr("type", kind.wire())
                        .bytes(ciphertext)
                        .build()])
                    .build();
                if !st.send(conn, Out::Node(message)) {
                    break;
                }
                sent += 1;
            }
            if sent > 0 {
                st.counters.key_shares += 1;
            }
            if sent > 1 {
                st.counters.history_notifications += 1;
            }
            sent
        };
        if sent > 0 {
            debug!(phone = %redact(&phone), device, "app-state keys shared");
            shared.emit(SimEvent::KeysShared {
                phone: phone.clone(),
                device,
            });
        }
        if sent > 1 {
            debug!(phone = %redact(&phone), device, "initial history-sync notification sent");
            shared.emit(SimEvent::HistorySent { phone, device });
        }
    });
}

/// The privacy settings of a fresh account, as the real server lists them.
fn privacy_answer(id: &str) -> Node {
    const DEFAULTS: [(&str, &str); 8] = [
        ("last", "all"),
        ("online", "all"),
        ("profile", "all"),
        ("status", "contacts"),
        ("groupadd", "all"),
        ("readreceipts", "all"),
        ("calladd", "all"),
        ("messages", "all"),
    ];
    let categories = DEFAULTS.iter().map(|(name, value)| {
        NodeBuilder::new("category")
            .attr("name", *name)
            .attr("value", *value)
            .build()
    });
    result(id)
        .children([NodeBuilder::new("privacy").children(categories).build()])
        .build()
}

/// Answers an app-state sync request with version 0 and no patches for every collection.
fn app_state_answer(id: &str, node: &Node) -> Node {
    let collections: Vec<Node> = node
        .get_optional_child("sync")
        .and_then(Node::children)
        .unwrap_or_default()
        .iter()
        .filter(|c| c.tag == "collection")
        .map(|c| {
            NodeBuilder::new("collection")
                .attr("name", attr(c, "name").unwrap_or_default())
                .attr("version", "0")
                .build()
        })
        .collect();
    result(id)
        .children([NodeBuilder::new("sync").children(collections).build()])
        .build()
}

fn code_request(shared: &Arc<Shared>, conn: u64, id: &str, reg: &Node) {
    let jid = attr(reg, "jid").unwrap_or_default();
    let phone = jid.split('@').next().unwrap_or_default().to_owned();
    let wrapped = child_bytes(reg, "link_code_pairing_wrapped_companion_ephemeral_pub");
    let noise_pub = child_bytes(reg, "companion_server_auth_key_pub")
        .and_then(|b| <[u8; 32]>::try_from(b.as_slice()).ok());
    let (Some(wrapped), Some(noise_pub)) = (wrapped, noise_pub) else {
        shared
            .lock()
            .send(conn, Out::Node(error(id, 400, "bad-request", None)));
        return;
    };
    let shared = Arc::clone(shared);
    let id = id.to_owned();
    tokio::spawn(async move {
        if !shared.stage(&phone, Stage::CodeRequest, conn).await {
            return;
        }
        let mut st = shared.lock();
        let count = {
            let n = st.counters.code_requests.entry(phone.clone()).or_insert(0);
            *n += 1;
            *n
        };
        if let Some(c) = st.conns.get_mut(&conn) {
            c.phone = Some(phone.clone());
        }
        let account = st.account(&phone);
        let refusal = match &mut account.faults.refuse {
            Some((r, None)) => Some(*r),
            Some((r, Some(n))) if *n > 0 => {
                *n -= 1;
                Some(*r)
            }
            _ => None,
        };
        if let Some(r) = refusal {
            let (code, text) = r.wire();
            st.send(conn, Out::Node(error(&id, code, text, r.backoff())));
            drop(st);
            debug!(phone = %redact(&phone), code, "code request refused (fault)");
            shared.emit(SimEvent::CodeRefused { phone, code });
            return;
        }
        let pairing_ref: Vec<u8> = {
            use rand::RngExt as _;
            let mut rng = rand::rng();
            (0..32).map(|_| rng.random::<u8>()).collect()
        };
        account.pending = Some(PendingCode {
            pairing_ref: pairing_ref.clone(),
            wrapped_companion_ephemeral: wrapped,
            companion_noise_pub: noise_pub,
            conn,
            finish_tx: None,
        });
        for w in account.code_waiters.drain(..) {
            let _ = w.send(());
        }
        st.send(
            conn,
            Out::Node(
                result(&id)
                    .children([NodeBuilder::new("link_code_companion_reg")
                        .children([NodeBuilder::new("link_code_pairing_ref")
                            .bytes(pairing_ref)
                            .build()])
                        .build()])
                    .build(),
            ),
        );
        drop(st);
        shared.emit(SimEvent::CodeRequested { phone, count });
    });
}

fn companion_finish(shared: &Shared, reg: &Node) {
    let jid = attr(reg, "jid").unwrap_or_default();
    let phone = jid.split('@').next().unwrap_or_default().to_owned();
    let bundle = child_bytes(reg, "link_code_pairing_wrapped_key_bundle");
    let identity = child_bytes(reg, "companion_identity_public");
    let reference = child_bytes(reg, "link_code_pairing_ref");
    let mut st = shared.lock();
    let Some(pending) = st.accounts.get_mut(&phone).and_then(|a| a.pending.as_mut()) else {
        warn!(phone = %redact(&phone), "companion_finish without a pending code");
        return;
    };
    if reference.as_deref() != Some(pending.pairing_ref.as_slice()) {
        warn!("companion_finish for another pairing reference");
        return;
    }
    if let (Some(tx), Some(wrapped_bundle), Some(identity_pub)) =
        (pending.finish_tx.take(), bundle, identity)
    {
        let _ = tx.send(Finish {
            wrapped_bundle,
            identity_pub,
        });
    }
}
