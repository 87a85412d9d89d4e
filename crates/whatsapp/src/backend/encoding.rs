//! How values are framed in the auth-state store, and how store failures reach the client.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wa_pairing_store::StoreError;
use wacore::store::error::{Result, StoreError as WaStoreError};
use wacore::store::traits::MessageSecret;

use crate::error::Error;

pub(super) fn store_error(e: StoreError) -> WaStoreError {
    use wa_pairing_store::ErrorKind as K;
    match e.kind() {
        K::Unavailable | K::Timeout => WaStoreError::Connection(Box::new(e)),
        _ => WaStoreError::Database(Box::new(e)),
    }
}

pub(super) fn corrupt(what: &str) -> WaStoreError {
    WaStoreError::Serialization(Box::new(Error::corrupt(what)))
}

pub(super) fn to_json<T: Serialize>(value: &T) -> Result<Vec<u8>> {
    serde_json::to_vec(value).map_err(|e| WaStoreError::Serialization(Box::new(e)))
}

pub(super) fn from_json<T: DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|_| corrupt(what))
}

/// 8 bytes big-endian timestamp, then the payload.
pub(super) fn stamped(ts: i64, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(8 + payload.len());
    v.extend_from_slice(&ts.to_be_bytes());
    v.extend_from_slice(payload);
    v
}

pub(super) fn unstamp<'a>(value: &'a [u8], what: &str) -> Result<(i64, &'a [u8])> {
    if value.len() < 8 {
        return Err(corrupt(what));
    }
    let (ts, rest) = value.split_at(8);
    let ts = i64::from_be_bytes(ts.try_into().map_err(|_| corrupt(what))?);
    Ok((ts, rest))
}

pub(super) fn prekey_record(value: &[u8]) -> Result<&[u8]> {
    match value.split_first() {
        Some((0 | 1, record)) => Ok(record),
        _ => Err(corrupt("pre-key")),
    }
}

pub(super) const MSG_SECRET_LEN: usize = 32;

pub(super) fn msg_secret_value(
    secret: &MessageSecret,
    expires_at: i64,
    message_ts: i64,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(MSG_SECRET_LEN + 16);
    v.extend_from_slice(secret);
    v.extend_from_slice(&expires_at.to_be_bytes());
    v.extend_from_slice(&message_ts.to_be_bytes());
    v
}

pub(super) fn parse_msg_secret(value: &[u8]) -> Result<(MessageSecret, i64, i64)> {
    if value.len() != MSG_SECRET_LEN + 16 {
        return Err(corrupt("message secret"));
    }
    let secret: MessageSecret = value[..MSG_SECRET_LEN]
        .try_into()
        .map_err(|_| corrupt("message secret"))?;
    let expires_at = i64::from_be_bytes(
        value[MSG_SECRET_LEN..MSG_SECRET_LEN + 8]
            .try_into()
            .map_err(|_| corrupt("message secret"))?,
    );
    let message_ts = i64::from_be_bytes(
        value[MSG_SECRET_LEN + 8..]
            .try_into()
            .map_err(|_| corrupt("message secret"))?,
    );
    Ok((secret, expires_at, message_ts))
}

pub(super) fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}
