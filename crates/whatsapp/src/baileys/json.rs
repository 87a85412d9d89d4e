//! Reading Baileys' JSON: only the members the import uses, straight from the text (or from a
//! `serde_json::Value` a caller already holds), into a compact tree; its buffers in every form
//! Baileys has written them; fields with the path of each in the error, never its value.
//!
//! Memory stays a small multiple of what is kept, not of the input: members the import does
//! not read (Signal sessions, sender keys, the rest of Baileys' caches, unknown members) are
//! skipped as they are parsed, never built; key types that are not carried are only counted;
//! strings are borrowed from the input where it has no escapes; arrays of numbers (Node's
//! `Buffer.toJSON` form) are packed, one byte per byte. Parse errors say where (line and
//! column), never what.

use std::borrow::Cow;
use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::de::{self, DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Number;

use super::{ImportError, ImportErrorKind};

/// What the import keeps of a JSON value at one place of Baileys' document.
pub(super) enum Shape {
    /// A scalar, or a list of numbers: an object here is skipped (read as [`Node::Other`]).
    Leaf,
    /// An object of which only these members are kept; the rest are skipped unread.
    Object(&'static [(&'static str, Shape)]),
    /// An object of entries (`{id: value}`), every entry kept with this shape.
    Entries(&'static Shape),
    /// An object whose non-null entries are counted and skipped.
    Count,
    /// Baileys' `keys`: `{type: {id: value}}`, the carried types kept, the others counted.
    Keys,
    /// `session_data`: `{"creds": ..., "keys": ...}`, or the creds object alone (its members
    /// kept as in [`CREDS`]), or either as a JSON string.
    Session,
}

/// Baileys' key type of one-time pre-keys (carried).
pub(super) const PRE_KEY: &str = "pre-key";
/// Baileys' key type of app-state sync keys (carried).
pub(super) const SYNC_KEY: &str = "app-state-sync-key";

/// A buffer: `{"type": "Buffer", "data": ...}`, `{"buffer": true, "value": ...}` or base64.
const BUFFER: Shape = Shape::Object(&[
    ("type", Shape::Leaf),
    ("buffer", Shape::Leaf),
    ("data", Shape::Leaf),
    ("value", Shape::Leaf),
]);
/// A whole number, or protobuf.js's `Long` (`{low, high}`).
const INTEGER: Shape = Shape::Object(&[("low", Shape::Leaf), ("high", Shape::Leaf)]);
/// A key pair (`noiseKey`, a pre-key).
pub(super) const KEY_PAIR: Shape = Shape::Object(&[("private", BUFFER), ("public", BUFFER)]);
/// One app-state sync key.
pub(super) const SYNC_KEY_DATA: Shape = Shape::Object(&[
    ("keyData", BUFFER),
    (
        "fingerprint",
        Shape::Object(&[
            ("rawId", INTEGER),
            ("currentIndex", INTEGER),
            ("deviceIndexes", Shape::Leaf),
        ]),
    ),
    ("timestamp", INTEGER),
]);
const CREDS_MEMBERS: &[(&str, Shape)] = &[
    ("noiseKey", KEY_PAIR),
    ("signedIdentityKey", KEY_PAIR),
    (
        "signedPreKey",
        Shape::Object(&[
            ("keyPair", KEY_PAIR),
            ("signature", BUFFER),
            ("keyId", INTEGER),
        ]),
    ),
    ("registrationId", INTEGER),
    ("advSecretKey", BUFFER),
    (
        "me",
        Shape::Object(&[
            ("id", Shape::Leaf),
            ("lid", Shape::Leaf),
            ("name", Shape::Leaf),
        ]),
    ),
    (
        "account",
        Shape::Object(&[
            ("details", BUFFER),
            ("accountSignature", BUFFER),
            ("deviceSignature", BUFFER),
            ("accountSignatureKey", BUFFER),
        ]),
    ),
    ("firstUnuploadedPreKeyId", INTEGER),
    ("nextPreKeyId", INTEGER),
    ("myAppStateKeyId", BUFFER),
];
/// Baileys' `creds`: the members the import reads.
pub(super) const CREDS: Shape = Shape::Object(CREDS_MEMBERS);

impl Shape {
    /// The shape of member `name`, or `None` when it is skipped.
    fn member(&self, name: &str) -> Option<&Shape> {
        match self {
            Self::Object(members) => members.iter().find(|(n, _)| *n == name).map(|(_, s)| s),
            Self::Entries(entry) => Some(entry),
            Self::Keys => Some(match name {
                PRE_KEY => &Shape::Entries(&KEY_PAIR),
                SYNC_KEY => &Shape::Entries(&SYNC_KEY_DATA),
                _ => &Shape::Count,
            }),
            Self::Session => match name {
                "creds" => Some(&CREDS),
                "keys" => Some(&Shape::Keys),
                _ => CREDS.member(name),
            },
            Self::Leaf | Self::Count => None,
        }
    }
}

/// A JSON value as far as the import keeps it.
///
/// No `Debug`: it holds key material.
pub(super) enum Node<'a> {
    Null,
    Bool(bool),
    Number(Number),
    Str(Cow<'a, str>),
    /// A list of whole numbers from 0 to 255 (an empty list too).
    Bytes(Vec<u8>),
    /// A list of non-negative whole numbers, some above 255.
    Numbers(Vec<u64>),
    /// An object's kept members, in the input's order (a repeated member: the last counts).
    Object(Vec<(Cow<'a, str>, Node<'a>)>),
    /// How many non-null entries an object of a [`Shape::Count`] place has.
    Count(usize),
    /// Something the import does not read here (a list of other things, an object where a
    /// scalar belongs): skipped, only its being there is known.
    Other,
}

impl Node<'_> {
    /// The same, owning its strings (to outlive the text it was read from).
    pub(super) fn into_owned(self) -> Node<'static> {
        match self {
            Node::Null => Node::Null,
            Node::Bool(b) => Node::Bool(b),
            Node::Number(n) => Node::Number(n),
            Node::Str(s) => Node::Str(Cow::Owned(s.into_owned())),
            Node::Bytes(b) => Node::Bytes(b),
            Node::Numbers(n) => Node::Numbers(n),
            Node::Object(members) => Node::Object(
                members
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k.into_owned()), v.into_owned()))
                    .collect(),
            ),
            Node::Count(n) => Node::Count(n),
            Node::Other => Node::Other,
        }
    }

    fn get(&self, name: &str) -> Option<&Self> {
        match self {
            Node::Object(members) => members
                .iter()
                .rev()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v),
            _ => None,
        }
    }

    pub(super) const fn is_null(&self) -> bool {
        matches!(self, Node::Null)
    }
}

/// Reads a value at a place of `shape`.
pub(super) struct Seed<'s>(pub(super) &'s Shape);

impl<'de> DeserializeSeed<'de> for Seed<'_> {
    type Value = Node<'de>;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Node<'de>, D::Error> {
        deserializer.deserialize_any(NodeVisitor(self.0))
    }
}

struct NodeVisitor<'s>(&'s Shape);

impl<'de> Visitor<'de> for NodeVisitor<'_> {
    type Value = Node<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Node<'de>, E> {
        Ok(Node::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Node<'de>, E> {
        Ok(Node::Number(v.into()))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Node<'de>, E> {
        Ok(Number::from_f64(v).map_or(Node::Other, Node::Number))
    }

    fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Borrowed(v)))
    }

    fn visit_str<E>(self, v: &str) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v.to_owned())))
    }

    fn visit_string<E>(self, v: String) -> Result<Node<'de>, E> {
        Ok(Node::Str(Cow::Owned(v)))
    }

    fn visit_unit<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_none<E>(self) -> Result<Node<'de>, E> {
        Ok(Node::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Node<'de>, D::Error> {
        Seed(self.0).deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node<'de>, A::Error> {
        // Only lists of numbers are read (a buffer's bytes, a fingerprint's indexes); any other
        // list is skipped.
        let mut bytes = Vec::new();
        while let Some(n) = seq.next_element::<Whole>()? {
            match n {
                Whole::Number(n) => match u8::try_from(n) {
                    Ok(b) => bytes.push(b),
                    Err(_) => {
                        let mut numbers: Vec<u64> = bytes.into_iter().map(u64::from).collect();
                        numbers.push(n);
                        while let Some(n) = seq.next_element::<Whole>()? {
                            match n {
                                Whole::Number(n) => numbers.push(n),
                                Whole::Other => return skip_rest(seq),
                            }
                        }
                        return Ok(Node::Numbers(numbers));
                    }
                },
                Whole::Other => return skip_rest(seq),
            }
        }
        Ok(Node::Bytes(bytes))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node<'de>, A::Error> {
        match self.0 {
            Shape::Leaf => {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Node::Other)
            }
            Shape::Count => {
                let mut n = 0usize;
                while let Some((IgnoredAny, present)) = map.next_entry::<IgnoredAny, Present>()? {
                    n += usize::from(present.0);
                }
                Ok(Node::Count(n))
            }
            shape => {
                let mut members = Vec::new();
                while let Some(Key(name)) = map.next_key::<Key<'de>>()? {
                    match shape.member(&name) {
                        Some(member) => {
                            let value = map.next_value_seed(Seed(member))?;
                            // Entries that are null are deleted keys (Baileys writes null).
                            if !(matches!(shape, Shape::Entries(_)) && value.is_null()) {
                                members.push((name, value));
                            }
                        }
                        None => {
                            map.next_value::<IgnoredAny>()?;
                        }
                    }
                }
                Ok(Node::Object(members))
            }
        }
    }
}

fn skip_rest<'de, A: SeqAccess<'de>>(mut seq: A) -> Result<Node<'de>, A::Error> {
    while seq.next_element::<IgnoredAny>()?.is_some() {}
    Ok(Node::Other)
}

/// A list element: a non-negative whole number, or anything else (skipped).
enum Whole {
    Number(u64),
    Other,
}

impl<'de> de::Deserialize<'de> for Whole {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Whole;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_u64<E>(self, v: u64) -> Result<Whole, E> {
                Ok(Whole::Number(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Whole, E> {
                Ok(u64::try_from(v).map_or(Whole::Other, Whole::Number))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Whole, E> {
                Ok(Whole::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Whole, E> {
                Ok(Whole::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Whole, E> {
                Ok(Whole::Other)
            }
            fn visit_unit<E>(self) -> Result<Whole, E> {
                Ok(Whole::Other)
            }
            fn visit_none<E>(self) -> Result<Whole, E> {
                Ok(Whole::Other)
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Whole, D::Error> {
                d.deserialize_any(self)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Whole, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Whole::Other)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Whole, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Whole::Other)
            }
        }
        d.deserialize_any(V)
    }
}

/// Whether an entry's value is not null (read and dropped).
struct Present(bool);

impl<'de> de::Deserialize<'de> for Present {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Present;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_none<E>(self) -> Result<Present, E> {
                Ok(Present(false))
            }
            fn visit_unit<E>(self) -> Result<Present, E> {
                Ok(Present(false))
            }
            fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Present, D::Error> {
                <IgnoredAny as de::Deserialize>::deserialize(d)?;
                Ok(Present(true))
            }
        }
        d.deserialize_option(V)
    }
}

/// An object member's name, borrowed from the input when it can be.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a member name")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v)))
            }
        }
        d.deserialize_str(V)
    }
}

/// Parses `text` as JSON of `shape`; a syntax error says where, never what.
pub(super) fn parse<'a>(text: &'a [u8], shape: &Shape) -> Result<Node<'a>, serde_json::Error> {
    let mut de = serde_json::Deserializer::from_slice(text);
    let node = Seed(shape).deserialize(&mut de)?;
    de.end()?;
    Ok(node)
}

/// Where in the text a parse error is (line and column), and nothing of the text.
pub(super) fn position(e: &serde_json::Error) -> String {
    format!("line {}, column {}", e.line(), e.column())
}

/// A field of the credentials, with its path for error messages (`creds.noiseKey.private`).
#[derive(Clone)]
pub(super) struct Field<'a> {
    pub(super) value: Option<&'a Node<'a>>,
    pub(super) path: String,
}

pub(super) fn malformed(path: &str, what: impl fmt::Display) -> ImportError {
    ImportError::new(ImportErrorKind::Malformed, format!("{path}: {what}"))
}

impl<'a> Field<'a> {
    pub(super) fn root(value: &'a Node<'a>, path: &str) -> Self {
        Self {
            value: Some(value),
            path: path.to_owned(),
        }
    }

    /// The member `name` of this object (absent when this is not an object).
    pub(super) fn at(&self, name: &str) -> Field<'a> {
        Field {
            value: self
                .value
                .and_then(|v| v.get(name))
                .filter(|v| !v.is_null()),
            path: format!("{}.{name}", self.path),
        }
    }

    /// Whether the field is present (and not null).
    pub(super) fn is_present(&self) -> bool {
        self.value.is_some_and(|v| !v.is_null())
    }

    fn missing(&self) -> ImportError {
        malformed(&self.path, "missing")
    }

    pub(super) fn required(&self) -> Result<&'a Node<'a>, ImportError> {
        self.value
            .filter(|v| !v.is_null())
            .ok_or_else(|| self.missing())
    }

    /// A buffer: `{"type": "Buffer", "data": "<base64>"}` (Baileys' `BufferJSON`),
    /// `{"type": "Buffer", "data": [bytes]}` (Node's own `Buffer.toJSON`),
    /// `{"buffer": true, "value": ...}` (older Baileys), or a base64 string (protobuf
    /// messages, such as the signed device identity, serialise their bytes that way).
    pub(super) fn bytes(&self) -> Result<Vec<u8>, ImportError> {
        decode_bytes(self.required()?, &self.path)
    }

    /// A buffer of exactly `len` bytes.
    pub(super) fn bytes_of<const N: usize>(&self) -> Result<[u8; N], ImportError> {
        let bytes = self.bytes()?;
        let found = bytes.len();
        bytes
            .try_into()
            .map_err(|_| malformed(&self.path, format!("expected {N} bytes, found {found}")))
    }

    /// A non-negative integer that fits in `u32` (numbers, or protobuf's decimal strings
    /// for 64-bit values, or `{"low", "high"}` longs).
    pub(super) fn u32(&self) -> Result<u32, ImportError> {
        let v = self.required()?;
        let n = integer(v).ok_or_else(|| malformed(&self.path, "expected a whole number"))?;
        u32::try_from(n).map_err(|_| malformed(&self.path, "out of range"))
    }

    /// Like [`Self::u32`], or `default` when the field is absent.
    pub(super) fn u32_or(&self, default: u32) -> Result<u32, ImportError> {
        if self.is_present() {
            self.u32()
        } else {
            Ok(default)
        }
    }

    pub(super) fn i64_or(&self, default: i64) -> Result<i64, ImportError> {
        match self.value.filter(|v| !v.is_null()) {
            None => Ok(default),
            Some(v) => integer(v).ok_or_else(|| malformed(&self.path, "expected a whole number")),
        }
    }

    pub(super) fn str(&self) -> Result<&'a str, ImportError> {
        match self.required()? {
            Node::Str(s) => Ok(&**s),
            _ => Err(malformed(&self.path, "expected a string")),
        }
    }

    /// The string, when the field is one.
    pub(super) fn as_str(&self) -> Option<&'a str> {
        match self.value {
            Some(Node::Str(s)) => Some(&**s),
            _ => None,
        }
    }

    /// The members of this object (the ones the import keeps).
    pub(super) fn object(&self) -> Result<&'a [(Cow<'a, str>, Node<'a>)], ImportError> {
        match self.required()? {
            Node::Object(members) => Ok(members),
            _ => Err(malformed(&self.path, "expected an object")),
        }
    }

    /// How many entries this object of skipped entries has.
    pub(super) fn count(&self) -> Result<usize, ImportError> {
        match self.required()? {
            Node::Count(n) => Ok(*n),
            _ => Err(malformed(&self.path, "expected an object")),
        }
    }

    /// A list of whole numbers that fit in `u32`; empty when absent.
    pub(super) fn u32_list(&self) -> Result<Vec<u32>, ImportError> {
        match self.value {
            None => Ok(Vec::new()),
            Some(Node::Bytes(b)) => Ok(b.iter().copied().map(u32::from).collect()),
            Some(Node::Numbers(n)) => n
                .iter()
                .map(|n| u32::try_from(*n).ok())
                .collect::<Option<Vec<u32>>>()
                .ok_or_else(|| malformed(&self.path, "expected whole numbers")),
            Some(Node::Other) => Err(malformed(&self.path, "expected whole numbers")),
            Some(_) => Err(malformed(&self.path, "expected a list")),
        }
    }
}

fn integer(v: &Node<'_>) -> Option<i64> {
    match v {
        Node::Number(n) => n.as_i64().or_else(|| {
            // Whole numbers JavaScript wrote as floats (`3.0` never happens, `1e3` might).
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| {
                    #[allow(clippy::cast_possible_truncation)]
                    let n = f as i64;
                    n
                })
        }),
        Node::Str(s) => s.parse().ok(),
        Node::Object(_) => {
            // protobuf.js's Long: {low, high, unsigned}.
            let low = match v.get("low")? {
                Node::Number(n) => n.as_i64()?,
                _ => return None,
            };
            let high = match v.get("high")? {
                Node::Number(n) => n.as_i64()?,
                _ => return None,
            };
            let low = u32::try_from(low & 0xffff_ffff).ok()?;
            let high = i32::try_from(high).ok()?;
            Some((i64::from(high) << 32) | i64::from(low))
        }
        _ => None,
    }
}

pub(super) fn decode_bytes(v: &Node<'_>, path: &str) -> Result<Vec<u8>, ImportError> {
    match v {
        Node::Str(s) => STANDARD
            .decode(s.trim())
            .map_err(|_| malformed(path, "expected base64")),
        Node::Object(_) => {
            let is_buffer = matches!(v.get("type"), Some(Node::Str(t)) if t == "Buffer")
                || matches!(v.get("buffer"), Some(Node::Bool(true)));
            if !is_buffer {
                return Err(malformed(path, "expected a buffer"));
            }
            match v.get("data").or_else(|| v.get("value")) {
                Some(Node::Str(s)) => STANDARD
                    .decode(s.trim())
                    .map_err(|_| malformed(path, "the buffer's data is not base64")),
                Some(Node::Bytes(b)) => Ok(b.clone()),
                Some(Node::Numbers(_) | Node::Other) => {
                    Err(malformed(path, "the buffer's data holds a non-byte"))
                }
                None | Some(Node::Null) => Ok(Vec::new()),
                Some(_) => Err(malformed(
                    path,
                    "the buffer's data is neither base64 nor bytes",
                )),
            }
        }
        _ => Err(malformed(path, "expected a buffer")),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn node(v: &serde_json::Value, shape: &Shape) -> Node<'static> {
        Seed(shape)
            .deserialize(v)
            .expect("a Value always reads")
            .into_owned()
    }

    #[test]
    fn buffers_in_every_form_baileys_writes() {
        let want = vec![1u8, 2, 255];
        for v in [
            json!({"type": "Buffer", "data": "AQL/"}),
            json!({"type": "Buffer", "data": [1, 2, 255]}),
            json!({"buffer": true, "value": "AQL/"}),
            json!("AQL/"),
        ] {
            assert_eq!(decode_bytes(&node(&v, &BUFFER), "x").unwrap(), want, "{v}");
            // The same from the text.
            let text = v.to_string();
            let parsed = parse(text.as_bytes(), &BUFFER).unwrap();
            assert_eq!(decode_bytes(&parsed, "x").unwrap(), want, "{v}");
        }
    }

    #[test]
    fn bad_buffers_name_the_field_and_never_the_value() {
        for v in [
            json!({"type": "Buffer", "data": "not base64 !"}),
            json!({"type": "Buffer", "data": [1, 256]}),
            json!({"type": "Buffer", "data": [1, "AQL/"]}),
            json!({"type": "Other", "data": "AQL/"}),
            json!(42),
        ] {
            let e = decode_bytes(&node(&v, &BUFFER), "creds.noiseKey.private").unwrap_err();
            assert_eq!(e.kind(), ImportErrorKind::Malformed);
            assert!(e.to_string().starts_with("creds.noiseKey.private: "), "{e}");
            assert!(!e.to_string().contains("AQL"), "{e}");
        }
    }

    #[test]
    fn numbers_longs_and_decimal_strings() {
        let int = |v: serde_json::Value| integer(&node(&v, &INTEGER));
        assert_eq!(int(json!(7)), Some(7));
        assert_eq!(int(json!("1700000000")), Some(1_700_000_000));
        assert_eq!(
            int(json!({"low": 5, "high": 1, "unsigned": false})),
            Some((1 << 32) | 5)
        );
        assert_eq!(int(json!(true)), None);
    }

    #[test]
    fn only_what_the_import_reads_is_kept() {
        let text = r#"{
            "creds": {"me": {"id": "1:2@s.whatsapp.net", "extra": [1, 2]},
                      "processedHistoryMessages": [{"key": {"id": "x"}}]},
            "keys": {"session": {"a": {"x": 1}, "b": null, "c": "s"},
                     "pre-key": {"1": {"private": "AQ==", "junk": [1]}, "2": null},
                     "sender-key": {}},
            "unknown": {"deep": [[[]]]}
        }"#;
        let root = parse(text.as_bytes(), &Shape::Session).unwrap();
        let top = Field::root(&root, "session_data");
        let names: Vec<&str> = top.object().unwrap().iter().map(|(k, _)| &**k).collect();
        assert_eq!(names, ["creds", "keys"]);
        let creds = top.at("creds");
        assert_eq!(creds.object().unwrap().len(), 1, "only `me`");
        assert_eq!(creds.at("me").object().unwrap().len(), 1, "only `me.id`");
        assert!(matches!(
            creds.at("me").at("id").value,
            Some(Node::Str(Cow::Borrowed(_)))
        ));
        let keys = top.at("keys");
        assert_eq!(keys.at("session").count().unwrap(), 2, "non-null entries");
        assert_eq!(keys.at("sender-key").count().unwrap(), 0);
        let pre_keys = keys.at("pre-key").object().unwrap();
        assert_eq!(pre_keys.len(), 1, "the null entry is a deleted key");
        assert_eq!(keys.at("pre-key").at("1").object().unwrap().len(), 1);
    }

    #[test]
    fn syntax_errors_say_where_never_what() {
        let e = parse(br#"{"creds": {"noiseKey": "SECRETSECRET"#, &Shape::Session)
            .err()
            .expect("cut short");
        assert!(!position(&e).contains("SECRET"));
        assert!(position(&e).starts_with("line 1, column "));
    }
}
