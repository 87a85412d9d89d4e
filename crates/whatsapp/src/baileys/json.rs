//! Reading Baileys' JSON: its buffers in every form Baileys has written them, and fields
//! with the path of each in the error, never its value.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::Value;

use super::{ImportError, ImportErrorKind};

/// A field of the credentials, with its path for error messages (`creds.noiseKey.private`).
#[derive(Clone)]
pub(super) struct Field<'a> {
    pub(super) value: Option<&'a Value>,
    pub(super) path: String,
}

pub(super) fn malformed(path: &str, what: impl std::fmt::Display) -> ImportError {
    ImportError::new(ImportErrorKind::Malformed, format!("{path}: {what}"))
}

impl<'a> Field<'a> {
    pub(super) fn root(value: &'a Value, path: &str) -> Self {
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
                .and_then(Value::as_object)
                .and_then(|o| o.get(name))
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

    pub(super) fn required(&self) -> Result<&'a Value, ImportError> {
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
        if self.value.is_none_or(Value::is_null) {
            Ok(default)
        } else {
            self.u32()
        }
    }

    pub(super) fn i64_or(&self, default: i64) -> Result<i64, ImportError> {
        match self.value.filter(|v| !v.is_null()) {
            None => Ok(default),
            Some(v) => integer(v).ok_or_else(|| malformed(&self.path, "expected a whole number")),
        }
    }

    pub(super) fn str(&self) -> Result<&'a str, ImportError> {
        self.required()?
            .as_str()
            .ok_or_else(|| malformed(&self.path, "expected a string"))
    }

    pub(super) fn object(&self) -> Result<&'a serde_json::Map<String, Value>, ImportError> {
        self.required()?
            .as_object()
            .ok_or_else(|| malformed(&self.path, "expected an object"))
    }
}

fn integer(v: &Value) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64().or_else(|| {
            // Whole numbers JavaScript wrote as floats (`3.0` never happens, `1e3` might).
            n.as_f64()
                .filter(|f| f.fract() == 0.0 && f.abs() < 9.0e15)
                .map(|f| {
                    #[allow(clippy::cast_possible_truncation)]
                    let n = f as i64;
                    n
                })
        }),
        Value::String(s) => s.parse().ok(),
        Value::Object(o) => {
            // protobuf.js's Long: {low, high, unsigned}.
            let low = o.get("low")?.as_i64()?;
            let high = o.get("high")?.as_i64()?;
            let low = u32::try_from(low & 0xffff_ffff).ok()?;
            let high = i32::try_from(high).ok()?;
            Some((i64::from(high) << 32) | i64::from(low))
        }
        _ => None,
    }
}

pub(super) fn decode_bytes(v: &Value, path: &str) -> Result<Vec<u8>, ImportError> {
    match v {
        Value::String(s) => STANDARD
            .decode(s.trim())
            .map_err(|_| malformed(path, "expected base64")),
        Value::Object(o) => {
            let is_buffer = o.get("type").and_then(Value::as_str) == Some("Buffer")
                || o.get("buffer").and_then(Value::as_bool) == Some(true);
            if !is_buffer {
                return Err(malformed(path, "expected a buffer"));
            }
            match o.get("data").or_else(|| o.get("value")) {
                Some(Value::String(s)) => STANDARD
                    .decode(s.trim())
                    .map_err(|_| malformed(path, "the buffer's data is not base64")),
                Some(Value::Array(items)) => items
                    .iter()
                    .map(|b| b.as_u64().and_then(|b| u8::try_from(b).ok()))
                    .collect::<Option<Vec<u8>>>()
                    .ok_or_else(|| malformed(path, "the buffer's data holds a non-byte")),
                None | Some(Value::Null) => Ok(Vec::new()),
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

    #[test]
    fn buffers_in_every_form_baileys_writes() {
        let want = vec![1u8, 2, 255];
        for v in [
            json!({"type": "Buffer", "data": "AQL/"}),
            json!({"type": "Buffer", "data": [1, 2, 255]}),
            json!({"buffer": true, "value": "AQL/"}),
            json!("AQL/"),
        ] {
            assert_eq!(decode_bytes(&v, "x").unwrap(), want, "{v}");
        }
    }

    #[test]
    fn bad_buffers_name_the_field_and_never_the_value() {
        for v in [
            json!({"type": "Buffer", "data": "not base64 !"}),
            json!({"type": "Buffer", "data": [1, 256]}),
            json!({"type": "Other", "data": "AQL/"}),
            json!(42),
        ] {
            let e = decode_bytes(&v, "creds.noiseKey.private").unwrap_err();
            assert_eq!(e.kind(), ImportErrorKind::Malformed);
            assert!(e.to_string().starts_with("creds.noiseKey.private: "), "{e}");
            assert!(!e.to_string().contains("AQL"), "{e}");
        }
    }

    #[test]
    fn numbers_longs_and_decimal_strings() {
        assert_eq!(integer(&json!(7)), Some(7));
        assert_eq!(integer(&json!("1700000000")), Some(1_700_000_000));
        assert_eq!(
            integer(&json!({"low": 5, "high": 1, "unsigned": false})),
            Some((1 << 32) | 5)
        );
        assert_eq!(integer(&json!(true)), None);
    }
}
