//! What every part of the backend uses.

pub(super) use std::collections::{BTreeMap, HashMap};
pub(super) use std::sync::Arc;

pub(super) use wa_pairing_store::{DeviceId, Entry, Fence};
pub(super) use wacore::appstate::hash::HashState;
pub(super) use wacore::appstate::processor::AppStateMutationMAC;
pub(super) use wacore::store::Device;
pub(super) use wacore::store::error::{Result, StoreError as WaStoreError};
pub(super) use wacore::store::traits::{
    AppStateSyncKey, AppSyncStore, DeviceListRecord, DeviceStore, LidPnMappingEntry, MessageSecret,
    MsgSecretEntry, MsgSecretStore, PendingInboundKey, PendingInboundRow, ProtocolStore,
    SignalStore, TcTokenEntry, merge_msg_secret_expiry, merge_msg_secret_message_ts,
};
pub(super) use whatsapp_rust::bytes::Bytes;

pub(super) use super::WaBackend;
pub(super) use super::encoding::*;
pub(super) use crate::keys::{self, key, prefix};
