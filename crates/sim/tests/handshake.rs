//! The connection header a client sends is the one the simulator hashes and the one whose
//! token dictionary it speaks: a hand-driven client with `WA 6 2` and `WA 6 3`, and one with an
//! unknown version, which is refused.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use wa_pairing_sim::{Sim, SimConfig};
use wacore_libsignal::protocol::KeyPair;
use wacore_noise::XxHandshakeState;
use wacore_noise::framing::{FrameDecoder, encode_frame};
use waproto::buffa::Message as _;

/// A WebSocket client just big enough for the test: binary frames, masked with a zero key.
struct Ws {
    tcp: TcpStream,
    frames: FrameDecoder,
}

impl Ws {
    async fn connect(url: &str) -> Ws {
        let rest = url.strip_prefix("ws://").expect("a ws:// url");
        let (host, path) = rest.split_once('/').expect("a path");
        let mut tcp = TcpStream::connect(host).await.expect("connect");
        let request = format!(
            "GET /{path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        tcp.write_all(request.as_bytes()).await.expect("upgrade");
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            head.push(tcp.read_u8().await.expect("upgrade answer"));
        }
        assert!(head.starts_with(b"HTTP/1.1 101"), "upgrade refused");
        Ws {
            tcp,
            frames: FrameDecoder::new(),
        }
    }

    async fn send(&mut self, payload: &[u8]) -> std::io::Result<()> {
        let mut msg = vec![0x82];
        match payload.len() {
            n if n < 126 => msg.push(0x80 | u8::try_from(n).expect("short")),
            n => {
                msg.push(0x80 | 0x7e);
                msg.extend(u16::try_from(n).expect("small message").to_be_bytes());
            }
        }
        msg.extend([0, 0, 0, 0]);
        msg.extend(payload);
        self.tcp.write_all(&msg).await
    }

    /// The next Noise frame, or `None` once the server closed the socket.
    async fn frame(&mut self) -> Option<Vec<u8>> {
        loop {
            if let Some(f) = self.frames.decode_frame() {
                return Some(f.to_vec());
            }
            let op = self.tcp.read_u8().await.ok()?;
            let len = match self.tcp.read_u8().await.ok()? & 0x7f {
                126 => usize::from(self.tcp.read_u16().await.ok()?),
                127 => usize::try_from(self.tcp.read_u64().await.ok()?).ok()?,
                n => usize::from(n),
            };
            let mut payload = vec![0; len];
            self.tcp.read_exact(&mut payload).await.ok()?;
            match op & 0x0f {
                0x8 => return None,
                0x2 => self.frames.feed(&payload),
                _ => {}
            }
        }
    }
}

/// Connects with `header`, runs the XX handshake as the initiator, then sends one query in
/// the header's dictionary and reads the answer back with the same dictionary.
async fn handshake_and_ping(sim: &Sim, header: [u8; 4]) -> wacore_binary::Node {
    let mut ws = Ws::connect(&sim.url()).await;
    let static_kp = KeyPair::generate(&mut rand::rng());
    let payload = waproto::whatsapp::ClientPayload {
        passive: Some(false),
        ..Default::default()
    };
    let mut state =
        XxHandshakeState::new(static_kp, payload.encode_to_vec(), &header).expect("noise state");
    let hello = state.build_client_hello().expect("hello");
    let mut first = header.to_vec();
    first.extend(encode_frame(&hello, None).expect("frame"));
    ws.send(&first).await.expect("send hello");
    let server_hello = ws.frame().await.expect("server hello");
    // Fails to authenticate unless the server mixed this very header into its hash.
    let finish = state
        .read_server_hello_and_build_client_finish(&server_hello)
        .expect("the server hashed the header this client sent");
    ws.send(&encode_frame(&finish, None).expect("frame"))
        .await
        .expect("send finish");
    let out = state.finish().expect("handshake done");

    let dict = Dictionary::of(header[3]);
    let ping = wacore_binary::builder::NodeBuilder::new("iq")
        .attr("id", "probe-1")
        .attr("type", "get")
        .attr("xmlns", "w:p")
        .attr("to", "s.whatsapp.net")
        .children([wacore_binary::builder::NodeBuilder::new("ping").build()])
        .build();
    let plain = dict.encode(&ping);
    let ct = out
        .write_cipher
        .encrypt_with_counter(0, &plain)
        .expect("encrypt");
    ws.send(&encode_frame(&ct, None).expect("frame"))
        .await
        .expect("send ping");
    // Skip what the server pushes unasked (pair-device refs on a registration connection).
    let mut counter = 0;
    loop {
        let mut frame = bytes::BytesMut::from(&ws.frame().await.expect("an answer")[..]);
        out.read_cipher
            .decrypt_in_place_with_counter(counter, &mut frame)
            .expect("decrypt");
        counter += 1;
        let node = dict.decode(&frame);
        if node.attrs.get("id").map(|v| v.as_str().into_owned()) == Some("probe-1".into()) {
            return node;
        }
    }
}

/// The two dictionaries, from the crate's own tables, reached through a round trip of the
/// encoder the test trusts: wacore-binary for version 3, and the simulator's own data for 2.
struct Dictionary(u8);

impl Dictionary {
    fn of(version: u8) -> Self {
        Self(version)
    }
    fn encode(&self, node: &wacore_binary::Node) -> Vec<u8> {
        wa_pairing_sim::dict::encode(self.0, node).expect("encode")
    }
    fn decode(&self, data: &[u8]) -> wacore_binary::Node {
        wa_pairing_sim::dict::decode(self.0, data).expect("decode")
    }
}

#[tokio::test]
async fn both_dictionary_versions_handshake_and_talk() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    for version in [2u8, 3] {
        let answer = handshake_and_ping(&sim, [b'W', b'A', 6, version]).await;
        assert_eq!(answer.tag, "iq", "v{version}");
        assert_eq!(
            answer.attrs.get("type").map(|v| v.as_str().into_owned()),
            Some("result".into()),
            "v{version}"
        );
    }
    // Version 3 on the wire is what wacore-binary writes.
    let node = wacore_binary::builder::NodeBuilder::new("iq")
        .attr("type", "result")
        .build();
    assert_eq!(
        wa_pairing_sim::dict::encode(3, &node).expect("encode"),
        wacore_binary::marshal(&node).expect("marshal")
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn an_unknown_dictionary_version_is_refused() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    let mut ws = Ws::connect(&sim.url()).await;
    let state = XxHandshakeState::new(
        KeyPair::generate(&mut rand::rng()),
        Vec::new(),
        &[b'W', b'A', 6, 9],
    )
    .expect("noise state");
    let mut first = vec![b'W', b'A', 6, 9];
    first.extend(encode_frame(&state.build_client_hello().expect("hello"), None).expect("frame"));
    ws.send(&first).await.expect("send hello");
    let answer = tokio::time::timeout(Duration::from_secs(10), ws.frame())
        .await
        .expect("the server closes the socket");
    assert!(
        answer.is_none(),
        "no server hello for an unknown dictionary"
    );
    sim.shutdown().await;
}
