//! Stanza helpers every part of the simulator shares: a leaf module (it imports none of
//! the others), so connections, the phone and the key share never import each other for them.

use std::time::Duration;

use wacore_binary::builder::NodeBuilder;
use wacore_binary::{Node, NodeContent};

use crate::model::{SimError, StreamError};

/// Standard base64 with padding, as in QR payloads.
pub(crate) const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// The server's JID, the `from` of everything it sends.
pub(crate) const SERVER: &str = "s.whatsapp.net";

/// A protocol error with the peer's words.
pub(crate) fn protocol(e: impl std::fmt::Display) -> SimError {
    SimError::Protocol(e.to_string())
}

pub(crate) fn attr(node: &Node, key: &str) -> Option<String> {
    node.attrs.get(key).map(|v| v.as_str().into_owned())
}

pub(crate) fn bytes_of(node: &Node) -> Option<&[u8]> {
    match &node.content {
        Some(NodeContent::Bytes(b)) => Some(b),
        Some(NodeContent::String(s)) => Some(s.as_bytes()),
        _ => None,
    }
}

pub(crate) fn child_bytes(node: &Node, tag: &str) -> Option<Vec<u8>> {
    node.get_optional_child(tag)
        .and_then(bytes_of)
        .map(<[u8]>::to_vec)
}

pub(crate) fn result(id: &str) -> NodeBuilder {
    NodeBuilder::new("iq")
        .attr("type", "result")
        .attr("id", id.to_owned())
        .attr("from", SERVER)
}

pub(crate) fn error(id: &str, code: u16, text: &str, backoff: Option<Duration>) -> Node {
    let mut err = NodeBuilder::new("error")
        .attr("code", code.to_string())
        .attr("text", text.to_owned());
    if let Some(b) = backoff {
        err = err.attr("backoff", b.as_secs().to_string());
    }
    NodeBuilder::new("iq")
        .attr("type", "error")
        .attr("id", id.to_owned())
        .attr("from", SERVER)
        .children([err.build()])
        .build()
}

pub(crate) fn stream_error(e: StreamError) -> Node {
    let mut node = NodeBuilder::new("stream:error");
    if e == StreamError::Replaced {
        node = node.children([NodeBuilder::new("conflict")
            .attr("type", "replaced")
            .build()]);
    } else {
        node = node.attr("code", e.code().to_string());
    }
    node.build()
}
