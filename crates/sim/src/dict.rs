//! WhatsApp's binary XML, parameterised by the token dictionary a connection chose.
//!
//! The last byte of the connection header (`WA 6 <version>`) selects the dictionary both sides
//! use for that socket. The wire format is the same for every version; only the token tables
//! differ (most single-byte tokens and every double-byte one). The `wacore-binary` codec is
//! fixed to version 3, so the simulator carries its own encoder and decoder over a
//! dictionary, with both tables kept in the crate as data (version 2 from the published
//! `baileys` 6.17.16 npm package, version 3 from the published `wacore-binary` 0.7.0 crate).
//! [`encode`] and [`decode`] are the simulator's codec, for tests that drive a connection
//! by hand.

mod v2;
mod v3;

use std::collections::HashMap;
use std::sync::OnceLock;

use wacore_binary::jid::{Jid, Server};
use wacore_binary::{Attrs, Node, NodeContent, NodeValue};

use crate::model::SimError;
use crate::node::protocol;

/// The dictionary versions the simulator speaks, the ones real clients send (the last byte
/// of their `WA 6 <version>` connection header).
pub const VERSIONS: [u8; 2] = [2, 3];

const LIST_EMPTY: u8 = 0;
const DICTIONARY_0: u8 = 236;
const DICTIONARY_3: u8 = 239;
const AD_JID: u8 = 247;
const LIST_8: u8 = 248;
const LIST_16: u8 = 249;
const JID_PAIR: u8 = 250;
const HEX_8: u8 = 251;
const BINARY_8: u8 = 252;
const BINARY_20: u8 = 253;
const BINARY_32: u8 = 254;
const NIBBLE_8: u8 = 255;
const PACKED_MAX: usize = 127;
/// Nodes nested deeper than this are refused (a hostile frame must not overflow the stack).
const MAX_DEPTH: usize = 64;
/// Strings up to this length that look like `user@server` are written as JIDs.
const JID_MAX: usize = 48;

/// A malformed or unencodable stanza.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CodecError {
    #[error("stanza ends early")]
    Short,
    #[error("unknown token {0} in dictionary version {1}")]
    Token(u8, u8),
    #[error("unexpected byte {0} where a list was expected")]
    List(u8),
    #[error("malformed stanza: {0}")]
    Malformed(&'static str),
    #[error("{0} bytes left after the stanza")]
    Leftover(usize),
}

/// Encodes a stanza as the simulator writes it with dictionary `version`: the flags byte
/// (0, uncompressed), then the node.
pub fn encode(version: u8, node: &Node) -> Result<Vec<u8>, SimError> {
    let dict = dictionary(version).ok_or(SimError::Protocol(format!(
        "unknown dictionary version {version}"
    )))?;
    dict.encode(node).map_err(protocol)
}

/// Decodes a stanza (flags byte first) written with dictionary `version`.
pub fn decode(version: u8, data: &[u8]) -> Result<Node, SimError> {
    let dict = dictionary(version).ok_or(SimError::Protocol(format!(
        "unknown dictionary version {version}"
    )))?;
    dict.decode(data).map_err(protocol)
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Token {
    Single(u8),
    Double(u8, u8),
}

/// One version's token tables and their reverse index.
pub(crate) struct Dictionary {
    version: u8,
    single: &'static [&'static str],
    double: [&'static [&'static str]; 4],
    index: HashMap<&'static str, Token>,
}

/// The dictionary a connection header's version byte selects, if the simulator speaks it.
pub(crate) fn dictionary(version: u8) -> Option<&'static Dictionary> {
    static V2: OnceLock<Dictionary> = OnceLock::new();
    static V3: OnceLock<Dictionary> = OnceLock::new();
    match version {
        2 => Some(V2.get_or_init(|| Dictionary::new(2, v2::SINGLE, v2::DOUBLE))),
        3 => Some(V3.get_or_init(|| Dictionary::new(3, v3::SINGLE, v3::DOUBLE))),
        _ => None,
    }
}

impl Dictionary {
    fn new(
        version: u8,
        single: &'static [&'static str],
        double: [&'static [&'static str]; 4],
    ) -> Self {
        let mut index = HashMap::new();
        for (i, t) in single.iter().enumerate().skip(1) {
            if let Ok(i) = u8::try_from(i) {
                index.entry(*t).or_insert(Token::Single(i));
            }
        }
        for (d, table) in (0u8..).zip(double) {
            for (i, t) in table.iter().enumerate() {
                if let Ok(i) = u8::try_from(i) {
                    index.entry(*t).or_insert(Token::Double(d, i));
                }
            }
        }
        Self {
            version,
            single,
            double,
            index,
        }
    }

    /// The version byte of this dictionary.
    pub(crate) fn version(&self) -> u8 {
        self.version
    }

    /// Encodes a stanza for the wire: the flags byte (0, uncompressed), then the node.
    pub(crate) fn encode(&self, node: &Node) -> Result<Vec<u8>, CodecError> {
        let mut out = Vec::with_capacity(256);
        out.push(0);
        self.write_node(&mut out, node)?;
        Ok(out)
    }

    /// Decodes one stanza (flags byte first; compressed stanzas are inflated).
    pub(crate) fn decode(&self, data: &[u8]) -> Result<Node, CodecError> {
        let data = wacore_binary::util::unpack(data)
            .map_err(|_| CodecError::Malformed("bad compressed stanza"))?;
        let mut r = Reader {
            data: &data,
            pos: 0,
            dict: self,
        };
        let node = r.node(0)?;
        match r.data.len() - r.pos {
            0 => Ok(node),
            n => Err(CodecError::Leftover(n)),
        }
    }

    fn write_node(&self, out: &mut Vec<u8>, node: &Node) -> Result<(), CodecError> {
        let len = 1 + 2 * node.attrs.len() + usize::from(node.content.is_some());
        write_list_start(out, len)?;
        self.write_string(out, &node.tag);
        for (k, v) in node.attrs.iter() {
            self.write_string(out, k);
            match v {
                NodeValue::String(s) => self.write_string(out, s),
                NodeValue::Jid(j) => self.write_jid(out, j),
            }
        }
        match &node.content {
            None => {}
            Some(NodeContent::String(s)) => self.write_string(out, s),
            Some(NodeContent::Bytes(b)) => write_bytes(out, b),
            Some(NodeContent::Nodes(nodes)) => {
                write_list_start(out, nodes.len())?;
                for n in nodes {
                    self.write_node(out, n)?;
                }
            }
        }
        Ok(())
    }

    fn write_string(&self, out: &mut Vec<u8>, s: &str) {
        if s.is_empty() {
            out.extend([BINARY_8, 0]);
            return;
        }
        if s.len() > PACKED_MAX {
            write_bytes(out, s.as_bytes());
            return;
        }
        match self.index.get(s) {
            Some(Token::Single(i)) => out.push(*i),
            Some(Token::Double(d, i)) => out.extend([DICTIONARY_0 + d, *i]),
            None if s
                .bytes()
                .all(|b| b.is_ascii_digit() || b == b'-' || b == b'.') =>
            {
                write_packed(out, NIBBLE_8, s.as_bytes(), pack_nibble);
            }
            None if s
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b)) =>
            {
                write_packed(out, HEX_8, s.as_bytes(), pack_hex);
            }
            None => match (s.len() <= JID_MAX).then(|| split_jid(s)).flatten() {
                Some((user, server, device)) => {
                    self.write_jid_parts(out, user, server, device);
                }
                None => write_bytes(out, s.as_bytes()),
            },
        }
    }

    fn write_jid(&self, out: &mut Vec<u8>, jid: &Jid) {
        let device = u8::try_from(jid.device).ok().filter(|d| *d > 0);
        self.write_jid_parts(out, &jid.user, jid.server.as_str(), device);
    }

    /// `AD_JID` for a device of a user server, else `JID_PAIR` (as WhatsApp's clients write).
    fn write_jid_parts(&self, out: &mut Vec<u8>, user: &str, server: &str, device: Option<u8>) {
        match (device, domain_type(server)) {
            (Some(device), Some(domain)) => {
                out.extend([AD_JID, domain, device]);
                self.write_string(out, user);
            }
            _ => {
                out.push(JID_PAIR);
                if user.is_empty() {
                    out.push(LIST_EMPTY);
                } else {
                    self.write_string(out, user);
                }
                self.write_string(out, server);
            }
        }
    }
}

/// `user[_agent][:device]@server`, the way WhatsApp's encoders split a JID-looking string.
fn split_jid(s: &str) -> Option<(&str, &str, Option<u8>)> {
    let (user, server) = s.split_once('@')?;
    let (user, device) = match user.split_once(':') {
        Some((u, d)) => match d.parse::<u8>() {
            Ok(d) => (u, Some(d)),
            Err(_) => (user, None),
        },
        None => (user, None),
    };
    let user = match user.split_once('_') {
        Some((u, agent)) if agent.parse::<u8>().is_ok() => u,
        _ => user,
    };
    Some((user, server, device))
}

/// The `AD_JID` domain byte of a server that has devices.
fn domain_type(server: &str) -> Option<u8> {
    match server {
        "s.whatsapp.net" => Some(0),
        "lid" => Some(1),
        "hosted" => Some(128),
        "hosted.lid" => Some(129),
        _ => None,
    }
}

fn write_list_start(out: &mut Vec<u8>, len: usize) -> Result<(), CodecError> {
    match len {
        0 => out.push(LIST_EMPTY),
        1..=255 => out.extend([LIST_8, u8::try_from(len).unwrap_or(u8::MAX)]),
        _ => {
            let len = u16::try_from(len).map_err(|_| CodecError::Malformed("list too long"))?;
            out.push(LIST_16);
            out.extend(len.to_be_bytes());
        }
    }
    Ok(())
}

// Each cast is bounded by its branch; a frame is at most 16 MiB, far below `u32::MAX`.
#[allow(clippy::cast_possible_truncation)]
fn write_bytes(out: &mut Vec<u8>, b: &[u8]) {
    let len = b.len();
    if len < 256 {
        out.extend([BINARY_8, len as u8]);
    } else if len < 1 << 20 {
        out.push(BINARY_20);
        out.extend(&(len as u32).to_be_bytes()[1..]);
    } else {
        out.push(BINARY_32);
        out.extend((len as u32).to_be_bytes());
    }
    out.extend_from_slice(b);
}

fn pack_nibble(c: u8) -> u8 {
    match c {
        b'-' => 10,
        b'.' => 11,
        0 => 15,
        c => c - b'0',
    }
}

fn pack_hex(c: u8) -> u8 {
    match c {
        b'A'..=b'F' => c - b'A' + 10,
        0 => 15,
        c => c - b'0',
    }
}

// Callers pack at most `PACKED_MAX` (127) characters, so the length fits in seven bits.
#[allow(clippy::cast_possible_truncation)]
fn write_packed(out: &mut Vec<u8>, tag: u8, s: &[u8], pack: fn(u8) -> u8) {
    let mut len = s.len().div_ceil(2) as u8;
    if s.len() % 2 == 1 {
        len |= 0x80;
    }
    out.extend([tag, len]);
    for pair in s.chunks(2) {
        let hi = pack(pair[0]);
        let lo = pack(pair.get(1).copied().unwrap_or(0));
        out.push((hi << 4) | lo);
    }
}

struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    dict: &'a Dictionary,
}

/// A decoded string-or-JID value.
enum Value {
    Str(String),
    Jid(Jid),
    Raw(Vec<u8>),
}

impl Value {
    fn into_string(self) -> String {
        match self {
            Value::Str(s) => s,
            Value::Jid(j) => j.to_string(),
            Value::Raw(b) => String::from_utf8_lossy(&b).into_owned(),
        }
    }
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, CodecError> {
        let b = *self.data.get(self.pos).ok_or(CodecError::Short)?;
        self.pos += 1;
        Ok(b)
    }

    fn take(&mut self, n: usize) -> Result<&[u8], CodecError> {
        let end = self.pos.checked_add(n).ok_or(CodecError::Short)?;
        let s = self.data.get(self.pos..end).ok_or(CodecError::Short)?;
        self.pos = end;
        Ok(s)
    }

    fn int(&mut self, n: usize) -> Result<usize, CodecError> {
        Ok(self
            .take(n)?
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
    }

    fn list_size(&mut self, tag: u8) -> Result<usize, CodecError> {
        match tag {
            LIST_EMPTY => Ok(0),
            LIST_8 => self.int(1),
            LIST_16 => self.int(2),
            other => Err(CodecError::List(other)),
        }
    }

    fn binary_len(&mut self, tag: u8) -> Result<Option<usize>, CodecError> {
        Ok(match tag {
            BINARY_8 => Some(self.int(1)?),
            BINARY_20 => Some(self.int(3)? & 0x0f_ffff),
            BINARY_32 => Some(self.int(4)?),
            _ => None,
        })
    }

    /// A string, token, packed number or JID; `None` for `LIST_EMPTY`.
    fn value(&mut self, tag: u8) -> Result<Option<Value>, CodecError> {
        if let Some(len) = self.binary_len(tag)? {
            let raw = self.take(len)?.to_vec();
            return Ok(Some(match String::from_utf8(raw) {
                Ok(s) => Value::Str(s),
                Err(e) => Value::Raw(e.into_bytes()),
            }));
        }
        let dict = self.dict;
        let token = |t: Option<&&'static str>| {
            t.map(|s| Some(Value::Str((*s).to_owned())))
                .ok_or(CodecError::Token(tag, dict.version))
        };
        match tag {
            LIST_EMPTY => Ok(None),
            DICTIONARY_0..=DICTIONARY_3 => {
                let i = self.byte()?;
                token(dict.double[usize::from(tag - DICTIONARY_0)].get(usize::from(i)))
            }
            JID_PAIR => {
                let user = self.string()?.unwrap_or_default();
                let server = self.string()?.unwrap_or_default();
                Ok(Some(match Server::try_from(server.as_str()) {
                    Ok(server) => Value::Jid(Jid {
                        user: user.into(),
                        server,
                        agent: 0,
                        device: 0,
                        integrator: 0,
                    }),
                    Err(_) => Value::Str(format!("{user}@{server}")),
                }))
            }
            AD_JID => {
                let domain = self.byte()?;
                let device = self.byte()?;
                let user = self.string()?.ok_or(CodecError::Malformed("AD_JID user"))?;
                let server = match domain {
                    0 => Server::Pn,
                    1 => Server::Lid,
                    129 => Server::HostedLid,
                    d if d & 0x80 != 0 && d & 1 == 0 => Server::Hosted,
                    _ => return Err(CodecError::Malformed("AD_JID domain")),
                };
                Ok(Some(Value::Jid(Jid {
                    user: user.into(),
                    server,
                    agent: 0,
                    device: u16::from(device),
                    integrator: 0,
                })))
            }
            NIBBLE_8 | HEX_8 => self.packed(tag).map(|s| Some(Value::Str(s))),
            _ => token(dict.single.get(usize::from(tag)).filter(|_| tag > 0)),
        }
    }

    fn string(&mut self) -> Result<Option<String>, CodecError> {
        let tag = self.byte()?;
        Ok(self.value(tag)?.map(Value::into_string))
    }

    fn packed(&mut self, tag: u8) -> Result<String, CodecError> {
        let head = self.byte()?;
        let bytes = self.take(usize::from(head & 0x7f))?;
        let mut s = String::with_capacity(bytes.len() * 2);
        for b in bytes {
            for n in [b >> 4, b & 0x0f] {
                let c = match (tag, n) {
                    (_, 0..=9) => char::from(b'0' + n),
                    (NIBBLE_8, 10) => '-',
                    (NIBBLE_8, 11) => '.',
                    (NIBBLE_8, 15) => '\0',
                    (HEX_8, 10..=15) => char::from(b'A' + n - 10),
                    _ => return Err(CodecError::Malformed("bad packed digit")),
                };
                s.push(c);
            }
        }
        if head & 0x80 != 0 {
            s.pop();
        }
        Ok(s)
    }

    fn node(&mut self, depth: usize) -> Result<Node, CodecError> {
        if depth >= MAX_DEPTH {
            return Err(CodecError::Malformed("nested too deep"));
        }
        let tag = self.byte()?;
        let size = self.list_size(tag)?;
        if size == 0 {
            return Err(CodecError::Malformed("empty node"));
        }
        let tag = self.string()?.ok_or(CodecError::Malformed("no tag"))?;
        let mut attrs = Attrs::with_capacity((size - 1) / 2);
        for _ in 0..(size - 1) / 2 {
            let key = self.string()?.ok_or(CodecError::Malformed("no key"))?;
            let t = self.byte()?;
            let value = match self.value(t)? {
                None => NodeValue::String(wacore_binary::CompactString::default()),
                Some(Value::Jid(j)) => NodeValue::Jid(j),
                Some(v) => NodeValue::String(v.into_string().into()),
            };
            attrs.push(key, value);
        }
        let content = if size % 2 == 0 {
            let t = self.byte()?;
            match t {
                LIST_8 | LIST_16 => {
                    let n = self.list_size(t)?;
                    let mut nodes = Vec::with_capacity(n.min(1024));
                    for _ in 0..n {
                        nodes.push(self.node(depth + 1)?);
                    }
                    Some(NodeContent::Nodes(nodes))
                }
                BINARY_8 | BINARY_20 | BINARY_32 => {
                    let len = self.binary_len(t)?.unwrap_or_default();
                    Some(NodeContent::Bytes(self.take(len)?.to_vec()))
                }
                _ => self
                    .value(t)?
                    .map(|v| NodeContent::String(v.into_string().into())),
            }
        } else {
            None
        };
        Ok(Node::new(tag, attrs, content))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wacore_binary::builder::NodeBuilder;

    /// Attribute values as text, so nodes built by hand compare with decoded ones (which
    /// carry JIDs as JIDs).
    fn plain(node: &Node) -> Node {
        let mut attrs = Attrs::new();
        for (k, v) in node.attrs.iter() {
            attrs.push(k.clone(), NodeValue::String(v.as_str().as_ref().into()));
        }
        let content = match &node.content {
            Some(NodeContent::Nodes(n)) => Some(NodeContent::Nodes(n.iter().map(plain).collect())),
            other => other.clone(),
        };
        Node::new(node.tag.clone(), attrs, content)
    }

    fn sample() -> Node {
        NodeBuilder::new("iq")
            .attr("id", "3EB0A1B2C3D4")
            .attr("type", "set")
            .attr("xmlns", "md")
            .attr("to", "s.whatsapp.net")
            .attr("from", "6281234567890:12@s.whatsapp.net")
            .attr("participant", "123456789012345@lid")
            .attr("t", "1733000000")
            .attr("empty", "")
            .attr("odd", "12.3-4")
            .children([
                NodeBuilder::new("pair-device")
                    .children((0..6).map(|i| {
                        NodeBuilder::new("ref")
                            .bytes(format!("2@ref-{i},with,commas").into_bytes())
                            .build()
                    }))
                    .build(),
                NodeBuilder::new("text")
                    .bytes("Ünïcode and a long text ".repeat(8))
                    .build(),
                NodeBuilder::new("count").string_content("42").build(),
                NodeBuilder::new("big").bytes(vec![7u8; 70_000]).build(),
                NodeBuilder::new("g").attr("jid", "120363@g.us").build(),
            ])
            .build()
    }

    #[test]
    fn every_token_of_each_version_round_trips() {
        for version in VERSIONS {
            let dict = dictionary(version).expect("a spoken version");
            assert_eq!(dict.version(), version);
            assert_eq!(dict.single.len(), 236, "v{version}");
            let doubles = dict.double.iter().flat_map(|d| d.iter());
            for &token in dict.single.iter().skip(1).chain(doubles) {
                let node = NodeBuilder::new(token)
                    .attr(token, token)
                    .string_content(token)
                    .build();
                let wire = dict.encode(&node).expect("encode");
                // tag, key, value and content: one or two bytes each after the list header.
                assert!(
                    wire.len() <= 3 + 4 * 2,
                    "v{version} {token:?} is not a token"
                );
                assert_eq!(
                    plain(&dict.decode(&wire).expect("decode")),
                    node,
                    "v{version}"
                );
            }
        }
    }

    #[test]
    fn a_node_round_trips_in_each_version() {
        let node = sample();
        for version in VERSIONS {
            let dict = dictionary(version).expect("a spoken version");
            let wire = dict.encode(&node).expect("encode");
            assert_eq!(
                plain(&dict.decode(&wire).expect("decode")),
                node,
                "v{version}"
            );
        }
    }

    #[test]
    fn versions_disagree_on_the_wire() {
        let node = NodeBuilder::new("iq").attr("type", "result").build();
        let v2 = dictionary(2).expect("v2").encode(&node).expect("encode");
        let v3 = dictionary(3).expect("v3").encode(&node).expect("encode");
        assert_ne!(v2, v3);
        // Read with the wrong dictionary, a stanza means something else (or nothing).
        let misread = dictionary(3)
            .expect("v3")
            .decode(&v2)
            .ok()
            .map(|n| plain(&n));
        assert_ne!(misread, Some(node));
    }

    #[test]
    fn version_3_matches_wacore_binary_both_ways() {
        let dict = dictionary(3).expect("v3");
        let node = sample();
        let ours = dict.encode(&node).expect("encode");
        assert_eq!(ours, wacore_binary::marshal(&node).expect("marshal"));
        let data = wacore_binary::util::unpack(&ours).expect("unpack");
        let theirs = wacore_binary::marshal::unmarshal_ref(&data)
            .expect("unmarshal")
            .to_owned();
        assert_eq!(dict.decode(&ours).expect("decode"), theirs);
        for i in 0..=255u8 {
            let ours = dict.single.get(usize::from(i)).copied();
            assert_eq!(
                ours,
                wacore_binary::token::get_single_token(i),
                "single {i}"
            );
            for d in 0..4u8 {
                let ours = dict.double[usize::from(d)].get(usize::from(i)).copied();
                assert_eq!(ours, wacore_binary::token::get_double_token(d, i));
            }
        }
    }

    #[test]
    fn unknown_versions_and_bad_stanzas_are_refused() {
        assert!(dictionary(1).is_none());
        assert!(dictionary(4).is_none());
        let dict = dictionary(2).expect("v2");
        assert!(matches!(
            dict.decode(&[0, LIST_8, 1, 240]),
            Err(CodecError::Token(240, 2))
        ));
        assert!(matches!(
            dict.decode(&[0, LIST_8, 3]),
            Err(CodecError::Short)
        ));
        let mut wire = dict.encode(&sample()).expect("encode");
        wire.push(0);
        assert!(matches!(dict.decode(&wire), Err(CodecError::Leftover(1))));
    }
}
