//! The oracle harness: the same calls on `wacore::store::InMemoryBackend` and on our
//! `WaBackend`, with every answer compared.

// The raw choices are small pool indexes (below 8): no cast can truncate; `a`, `b`, `c` are
// just the three choices.
#![allow(clippy::cast_possible_truncation, clippy::many_single_char_names)]

use std::sync::Arc;

use wa_pairing_store::{AuthStateStore, DeviceId, Fence};
use wa_pairing_whatsapp::WaBackend;
use wacore::appstate::hash::HashState;
use wacore::appstate::processor::AppStateMutationMAC;
use wacore::store::Device;
use wacore::store::InMemoryBackend;
use wacore::store::traits::{
    AppStateSyncKey, Backend, DeviceInfo, DeviceListRecord, LidPnMappingEntry, MsgSecretEntry,
    PendingInboundKey, PendingInboundRow, TcTokenEntry,
};
use whatsapp_rust::bytes::Bytes;

/// One random call: the operation number and the raw choices it is built from.
pub type RawOp = (u16, usize, usize, usize, Vec<u8>, bool);

/// How many kinds of call [`apply`] knows.
pub const OP_KINDS: u16 = 70;

/// Random call sequences: up to 80 calls, `OP_KINDS` itself meaning a restart.
pub fn ops() -> impl proptest::strategy::Strategy<Value = Vec<RawOp>> {
    use proptest::prelude::*;
    prop::collection::vec(
        (
            0..=OP_KINDS,
            0usize..8,
            0usize..8,
            0usize..8,
            prop::collection::vec(any::<u8>(), 0..6),
            any::<bool>(),
        ),
        1..80,
    )
}

/// Runs `ops` on both backends (restarting ours where asked) and fails at the first answer
/// that differs, with the calls so far.
pub async fn same_answers(
    store: Arc<dyn AuthStateStore>,
    device: DeviceId,
    fence: Fence,
    ops: &[RawOp],
) -> Result<(), proptest::test_runner::TestCaseError> {
    let mut pair = Pair::new(store, device, fence);
    let mut history = Vec::new();
    for op in ops {
        if op.0 == OP_KINDS {
            pair.restart();
            history.push("-- restart --".to_owned());
            continue;
        }
        let (desc, oracle, ours) = apply(&mut pair, op).await;
        history.push(desc);
        proptest::prop_assert_eq!(&ours, &oracle, "after {:#?}", history);
    }
    Ok(())
}

/// The pools every key is drawn from: small, so calls collide, and with `/` and `%` so the
/// key escaping is exercised.
const ADDRESSES: [&str; 6] = [
    "111@s.whatsapp.net",
    "111:2@s.whatsapp.net",
    "1112@s.whatsapp.net",
    "222@lid",
    "22:1@lid",
    "a/b%c@x",
];
const USERS: [&str; 5] = ["111", "11", "222", "22", "a/b%c"];
const GROUPS: [&str; 3] = ["g1@g.us", "g/2@g.us", "g%3@g.us"];
const DEVICES: [&str; 4] = [
    "111:1@s.whatsapp.net",
    "222:3@lid",
    "x/y@lid",
    "111@s.whatsapp.net",
];
const IDS: [&str; 4] = ["M1", "M2", "3EB0/ff", "%41"];
const NAMES: [&str; 3] = ["regular", "critical_block", "regular/low"];
const PHONES: [&str; 4] = ["6281234567890", "15550001", "15550002", "4915"];
const LIDS: [&str; 4] = ["100000012345678", "100000099", "7", "8/9"];
const STAMPS: [i64; 5] = [0, 50, 100, 150, 1_000];

fn pick<T: Copy>(pool: &[T], i: usize) -> T {
    pool[i % pool.len()]
}

fn bytes32(seed: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, b) in seed.iter().enumerate() {
        out[i % 32] ^= *b;
    }
    out[31] ^= u8::try_from(seed.len()).unwrap_or(0xff);
    out
}

fn json<T: serde::Serialize>(v: &T) -> String {
    // Through `Value` so maps print in one order whatever their hashing.
    serde_json::to_string(&serde_json::to_value(v).expect("serialisable")).expect("json")
}

fn sorted<T: Ord>(mut v: Vec<T>) -> Vec<T> {
    v.sort();
    v
}

fn lid_entry(i: usize, j: usize, k: usize) -> LidPnMappingEntry {
    LidPnMappingEntry {
        lid: pick(&LIDS, i).to_owned(),
        phone_number: pick(&PHONES, j).to_owned(),
        created_at: pick(&STAMPS, k),
        updated_at: pick(&STAMPS, k + 1),
        learning_source: "usync".to_owned(),
    }
}

fn device_list(i: usize, n: usize, hosted: bool) -> DeviceListRecord {
    DeviceListRecord {
        user: pick(&USERS, i).to_owned(),
        devices: (0..n % 4)
            .map(|d| DeviceInfo::new(u32::try_from(d).unwrap_or(0), Some(7)).with_hosting(hosted))
            .collect(),
        timestamp: pick(&STAMPS, n),
        phash: hosted.then(|| "2:abc".to_owned()),
        raw_id: (!hosted).then_some(3),
    }
}

fn msg_secret(i: usize, j: usize, k: usize, seed: &[u8]) -> MsgSecretEntry {
    MsgSecretEntry {
        chat: Arc::from(pick(&ADDRESSES, i)),
        sender: Arc::from(pick(&ADDRESSES, j)),
        msg_id: Arc::from(pick(&IDS, k)),
        secret: bytes32(seed),
        expires_at: pick(&STAMPS, k + i),
        message_ts: pick(&STAMPS, j + k),
    }
}

/// The fixed device a case saves (the same value into both backends).
pub fn saved_device() -> Device {
    let mut d = Device::new();
    d.pn = Some("6281234567890:12@s.whatsapp.net".parse().expect("jid"));
    "Shop phone".clone_into(&mut d.push_name);
    d
}

/// Both sides of one comparison.
pub struct Pair {
    pub oracle: InMemoryBackend,
    pub ours: WaBackend,
    store: Arc<dyn AuthStateStore>,
    device: DeviceId,
    fence: Fence,
    saved: Option<Device>,
}

impl Pair {
    pub fn new(store: Arc<dyn AuthStateStore>, device: DeviceId, fence: Fence) -> Self {
        Self {
            oracle: InMemoryBackend::new(),
            ours: WaBackend::new(store.clone(), device, fence),
            store,
            device,
            fence,
            saved: None,
        }
    }

    /// A new backend instance over the same store, as after a process restart.
    pub fn restart(&mut self) {
        self.ours = WaBackend::new(self.store.clone(), self.device, self.fence);
    }
}

/// Runs `op` on both sides and returns both answers, described.
#[allow(clippy::too_many_lines)]
pub async fn apply(pair: &mut Pair, op: &RawOp) -> (String, String, String) {
    let (kind, a, b, c, ref raw, flag) = *op;
    macro_rules! both {
        ($desc:expr, |$s:ident| $body:expr) => {{
            let o = {
                let $s: &dyn Backend = &pair.oracle;
                $body
            };
            let w = {
                let $s: &dyn Backend = &pair.ours;
                $body
            };
            ($desc, o, w)
        }};
    }
    let addr = pick(&ADDRESSES, a);
    let user = pick(&USERS, a);
    let group = pick(&GROUPS, a);
    let id = u32::try_from(a * 7 + b).unwrap_or(0);
    let bytes = raw.clone();
    let (desc, o, w): (String, String, String) = match kind {
        0 => both!(format!("put_identity({addr})"), |s| format!(
            "{:?}",
            s.put_identity(addr, bytes32(&bytes)).await.unwrap()
        )),
        1 => both!(format!("load_identity({addr})"), |s| format!(
            "{:?}",
            s.load_identity(addr).await.unwrap()
        )),
        2 => both!(format!("delete_identity({addr})"), |s| format!(
            "{:?}",
            s.delete_identity(addr).await.unwrap()
        )),
        3 => {
            let batch: Vec<(Arc<str>, [u8; 32])> = vec![
                (Arc::from(addr), bytes32(&bytes)),
                (Arc::from(pick(&ADDRESSES, b)), bytes32(&[c as u8])),
            ];
            both!(format!("put_identities_batch({batch:?})"), |s| format!(
                "{:?}",
                s.put_identities_batch(&batch).await.unwrap()
            ))
        }
        4 => both!(format!("put_session({addr})"), |s| format!(
            "{:?}",
            s.put_session(addr, &bytes).await.unwrap()
        )),
        5 => both!(format!("get_session({addr})"), |s| format!(
            "{:?}",
            s.get_session(addr).await.unwrap()
        )),
        6 => both!(format!("delete_session({addr})"), |s| format!(
            "{:?}",
            s.delete_session(addr).await.unwrap()
        )),
        7 => both!(format!("has_session({addr})"), |s| format!(
            "{:?}",
            s.has_session(addr).await.unwrap()
        )),
        8 => {
            let batch: Vec<(Arc<str>, Bytes)> = vec![
                (Arc::from(addr), Bytes::from(bytes.clone())),
                (Arc::from(pick(&ADDRESSES, b)), Bytes::from(vec![c as u8])),
            ];
            both!("put_sessions_batch".to_owned(), |s| format!(
                "{:?}",
                s.put_sessions_batch(&batch).await.unwrap()
            ))
        }
        9 => both!(format!("has_signal_state_for_user({user})"), |s| format!(
            "{:?}",
            s.has_signal_state_for_user(user).await.unwrap()
        )),
        10 => both!(format!("store_prekey({id}, {flag})"), |s| format!(
            "{:?}",
            s.store_prekey(id, &bytes, flag).await.unwrap()
        )),
        11 => {
            let batch: Vec<(u32, Bytes)> = vec![
                (id, Bytes::from(bytes.clone())),
                (id + 1, Bytes::from(vec![c as u8])),
                (
                    u32::try_from(c * 100).unwrap_or(0),
                    Bytes::from_static(b"k"),
                ),
            ];
            both!(format!("store_prekeys_batch({id}..)"), |s| format!(
                "{:?}",
                s.store_prekeys_batch(&batch, flag).await.unwrap()
            ))
        }
        12 => both!(format!("load_prekey({id})"), |s| format!(
            "{:?}",
            s.load_prekey(id).await.unwrap()
        )),
        13 => {
            let ids = [id, id + 1, u32::try_from(b).unwrap_or(0)];
            both!(format!("load_prekeys_batch({ids:?})"), |s| format!(
                "{:?}",
                sorted(s.load_prekeys_batch(&ids).await.unwrap())
            ))
        }
        14 => {
            let ids = [id, id + 1];
            both!(format!("mark_prekeys_uploaded({ids:?})"), |s| format!(
                "{:?}",
                s.mark_prekeys_uploaded(&ids).await.unwrap()
            ))
        }
        15 => both!(format!("remove_prekey({id})"), |s| format!(
            "{:?}",
            s.remove_prekey(id).await.unwrap()
        )),
        16 => both!("get_max_prekey_id".to_owned(), |s| format!(
            "{:?}",
            s.get_max_prekey_id().await.unwrap()
        )),
        17 => both!(format!("store_signed_prekey({id})"), |s| format!(
            "{:?}",
            s.store_signed_prekey(id, &bytes).await.unwrap()
        )),
        18 => both!(format!("load_signed_prekey({id})"), |s| format!(
            "{:?}",
            s.load_signed_prekey(id).await.unwrap()
        )),
        19 => both!("load_all_signed_prekeys".to_owned(), |s| format!(
            "{:?}",
            sorted(s.load_all_signed_prekeys().await.unwrap())
        )),
        20 => both!(format!("remove_signed_prekey({id})"), |s| format!(
            "{:?}",
            s.remove_signed_prekey(id).await.unwrap()
        )),
        21 => both!(format!("put_sender_key({addr})"), |s| format!(
            "{:?}",
            s.put_sender_key(addr, &bytes).await.unwrap()
        )),
        22 => {
            let batch: Vec<(Arc<str>, Bytes)> = vec![
                (Arc::from(addr), Bytes::from(bytes.clone())),
                (Arc::from(pick(&ADDRESSES, c)), Bytes::from_static(b"sk")),
            ];
            both!("put_sender_keys_batch".to_owned(), |s| format!(
                "{:?}",
                s.put_sender_keys_batch(&batch).await.unwrap()
            ))
        }
        23 => both!(format!("get_sender_key({addr})"), |s| format!(
            "{:?}",
            s.get_sender_key(addr).await.unwrap()
        )),
        24 => both!(format!("delete_sender_key({addr})"), |s| format!(
            "{:?}",
            s.delete_sender_key(addr).await.unwrap()
        )),
        25 => {
            let key_id = vec![u8::try_from(a % 3).unwrap_or(0), 0xab];
            let sync_key = AppStateSyncKey {
                key_data: bytes.clone(),
                fingerprint: vec![c as u8],
                timestamp: pick(&STAMPS, b),
            };
            both!(format!("set_sync_key({key_id:?})"), |s| format!(
                "{:?}",
                s.set_sync_key(&key_id, sync_key.clone()).await.unwrap()
            ))
        }
        26 => {
            let key_id = vec![u8::try_from(a % 3).unwrap_or(0), 0xab];
            both!(format!("get_sync_key({key_id:?})"), |s| json(
                &s.get_sync_key(&key_id).await.unwrap()
            ))
        }
        27 => both!("get_latest_sync_key_id".to_owned(), |s| format!(
            "{:?}",
            s.get_latest_sync_key_id().await.unwrap()
        )),
        28 => {
            let name = pick(&NAMES, a);
            both!(format!("get_version({name})"), |s| json(
                &s.get_version(name).await.unwrap()
            ))
        }
        29 => {
            let name = pick(&NAMES, a);
            let mut state = HashState {
                version: b as u64,
                ..HashState::default()
            };
            state.hash[0] = c as u8;
            state
                .index_value_map
                .insert(pick(&IDS, c).to_owned(), bytes.clone());
            both!(format!("set_version({name})"), |s| format!(
                "{:?}",
                s.set_version(name, state.clone()).await.unwrap()
            ))
        }
        30 => {
            let name = pick(&NAMES, a);
            let macs = vec![
                AppStateMutationMAC {
                    index_mac: vec![b as u8],
                    value_mac: bytes.clone(),
                },
                AppStateMutationMAC {
                    index_mac: vec![c as u8, 1],
                    value_mac: vec![9],
                },
            ];
            both!(format!("put_mutation_macs({name})"), |s| format!(
                "{:?}",
                s.put_mutation_macs(name, 1, &macs).await.unwrap()
            ))
        }
        31 => {
            let name = pick(&NAMES, a);
            both!(format!("get_mutation_mac({name}, {b})"), |s| format!(
                "{:?}",
                s.get_mutation_mac(name, &[b as u8]).await.unwrap()
            ))
        }
        32 => {
            let name = pick(&NAMES, a);
            let idx = [[b as u8; 32], [c as u8; 32]];
            both!(format!("get_mutation_macs({name})"), |s| format!(
                "{:?}",
                sorted(
                    s.get_mutation_macs(name, &idx)
                        .await
                        .unwrap()
                        .into_iter()
                        .collect::<Vec<_>>()
                )
            ))
        }
        33 => {
            let name = pick(&NAMES, a);
            let idx = vec![vec![b as u8], vec![c as u8, 1]];
            both!(format!("delete_mutation_macs({name})"), |s| format!(
                "{:?}",
                s.delete_mutation_macs(name, &idx).await.unwrap()
            ))
        }
        34 => {
            let name = pick(&NAMES, a);
            both!(format!("clear_mutation_macs({name})"), |s| format!(
                "{:?}",
                s.clear_mutation_macs(name).await.unwrap()
            ))
        }
        35 => {
            let entries = [(pick(&DEVICES, b), flag), (pick(&DEVICES, c), !flag)];
            both!(
                format!("set_sender_key_status({group}, {entries:?})"),
                |s| {
                    format!(
                        "{:?}",
                        s.set_sender_key_status(group, &entries).await.unwrap()
                    )
                }
            )
        }
        36 => both!(format!("get_sender_key_devices({group})"), |s| format!(
            "{:?}",
            sorted(s.get_sender_key_devices(group).await.unwrap())
        )),
        37 => both!(format!("clear_sender_key_devices({group})"), |s| format!(
            "{:?}",
            s.clear_sender_key_devices(group).await.unwrap()
        )),
        38 => {
            let devices = [pick(&DEVICES, b)];
            both!(format!("delete_sender_key_device_rows({devices:?})"), |s| {
                format!(
                    "{:?}",
                    s.delete_sender_key_device_rows(&devices).await.unwrap()
                )
            })
        }
        39 => both!("clear_all_sender_key_devices".to_owned(), |s| format!(
            "{:?}",
            s.clear_all_sender_key_devices().await.unwrap()
        )),
        40 => {
            let entry = lid_entry(a, b, c);
            both!(format!("put_lid_mapping({entry:?})"), |s| format!(
                "{:?}",
                s.put_lid_mapping(&entry).await.unwrap()
            ))
        }
        41 => {
            let entries = [lid_entry(a, b, c), lid_entry(b, c, a), lid_entry(a, c, b)];
            both!(format!("put_lid_mappings({entries:?})"), |s| format!(
                "{:?}",
                s.put_lid_mappings(&entries).await.unwrap()
            ))
        }
        42 => {
            let lid = pick(&LIDS, a);
            both!(format!("get_lid_mapping({lid})"), |s| json(
                &s.get_lid_mapping(lid).await.unwrap()
            ))
        }
        43 => {
            let phone = pick(&PHONES, a);
            both!(format!("get_pn_mapping({phone})"), |s| json(
                &s.get_pn_mapping(phone).await.unwrap()
            ))
        }
        44 => both!("get_all_lid_mappings".to_owned(), |s| format!(
            "{:?}",
            sorted(
                s.get_all_lid_mappings()
                    .await
                    .unwrap()
                    .iter()
                    .map(json)
                    .collect::<Vec<_>>()
            )
        )),
        45 => {
            let mid = pick(&IDS, b);
            both!(format!("save_base_key({addr}, {mid})"), |s| format!(
                "{:?}",
                s.save_base_key(addr, mid, &bytes).await.unwrap()
            ))
        }
        46 => {
            let mid = pick(&IDS, b);
            both!(format!("has_same_base_key({addr}, {mid})"), |s| format!(
                "{:?}",
                s.has_same_base_key(addr, mid, &bytes).await.unwrap()
            ))
        }
        47 => {
            let mid = pick(&IDS, b);
            both!(format!("delete_base_key({addr}, {mid})"), |s| format!(
                "{:?}",
                s.delete_base_key(addr, mid).await.unwrap()
            ))
        }
        48 => {
            let record = device_list(a, b, flag);
            both!(format!("update_device_list({record:?})"), |s| format!(
                "{:?}",
                s.update_device_list(record.clone()).await.unwrap()
            ))
        }
        49 => {
            let records = vec![device_list(a, b, flag), device_list(c, a, !flag)];
            both!("update_device_lists".to_owned(), |s| format!(
                "{:?}",
                s.update_device_lists(records.clone()).await.unwrap()
            ))
        }
        50 => both!(format!("get_devices({user})"), |s| json(
            &s.get_devices(user).await.unwrap()
        )),
        51 => both!(format!("delete_devices({user})"), |s| format!(
            "{:?}",
            s.delete_devices(user).await.unwrap()
        )),
        52 => match b % 3 {
            0 => both!(format!("put_group_metadata({group})"), |s| format!(
                "{:?}",
                s.put_group_metadata(group, &bytes).await.unwrap()
            )),
            1 => both!(format!("get_group_metadata({group})"), |s| format!(
                "{:?}",
                s.get_group_metadata(group).await.unwrap()
            )),
            _ => both!(format!("delete_group_metadata({group})"), |s| format!(
                "{:?}",
                s.delete_group_metadata(group).await.unwrap()
            )),
        },
        53 => {
            let entry = TcTokenEntry {
                token: bytes.clone(),
                token_timestamp: pick(&STAMPS, b),
                sender_timestamp: flag.then(|| pick(&STAMPS, c)),
            };
            both!(format!("put_tc_token({addr}, {entry:?})"), |s| format!(
                "{:?}",
                s.put_tc_token(addr, &entry).await.unwrap()
            ))
        }
        54 => both!(format!("get_tc_token({addr})"), |s| json(
            &s.get_tc_token(addr).await.unwrap()
        )),
        55 => both!(format!("delete_tc_token({addr})"), |s| format!(
            "{:?}",
            s.delete_tc_token(addr).await.unwrap()
        )),
        56 => both!("get_all_tc_token_jids".to_owned(), |s| format!(
            "{:?}",
            sorted(s.get_all_tc_token_jids().await.unwrap())
        )),
        57 => {
            let (tc, sc) = (pick(&STAMPS, b), pick(&STAMPS, c));
            both!(
                format!("delete_expired_tc_tokens({tc}, {sc})"),
                |s| format!("{:?}", s.delete_expired_tc_tokens(tc, sc).await.unwrap())
            )
        }
        58 => {
            let ts = pick(&STAMPS, b);
            both!(
                format!("touch_tc_token_sender_timestamp({addr}, {ts})"),
                |s| {
                    format!(
                        "{:?}",
                        s.touch_tc_token_sender_timestamp(addr, ts).await.unwrap()
                    )
                }
            )
        }
        59 => {
            let ts = pick(&STAMPS, b);
            both!(
                format!("store_received_tc_token({addr}, {ts})"),
                |s| format!(
                    "{:?}",
                    s.store_received_tc_token(addr, &bytes, ts).await.unwrap()
                )
            )
        }
        60 => {
            let mid = pick(&IDS, b);
            match c % 3 {
                0 => both!(format!("store_sent_message({addr}, {mid})"), |s| format!(
                    "{:?}",
                    s.store_sent_message(addr, mid, &bytes).await.unwrap()
                )),
                1 => both!(format!("take_sent_message({addr}, {mid})"), |s| format!(
                    "{:?}",
                    s.take_sent_message(addr, mid).await.unwrap()
                )),
                _ => {
                    // Far from now either way, so the second both sides stamped cannot matter.
                    let cutoff = wacore::time::now_secs() + if flag { 100_000 } else { -100_000 };
                    both!(format!("delete_expired_sent_messages(now {flag})"), |s| {
                        format!(
                            "{:?}",
                            s.delete_expired_sent_messages(cutoff).await.unwrap()
                        )
                    })
                }
            }
        }
        61 => {
            let (sender, mid) = (pick(&ADDRESSES, b), pick(&IDS, c));
            match (a + c) % 6 {
                0 => both!(
                    format!("store_pending_inbound({addr}, {sender}, {mid})"),
                    |s| {
                        format!(
                            "{:?}",
                            s.store_pending_inbound(addr, sender, mid, &bytes)
                                .await
                                .unwrap()
                        )
                    }
                ),
                1 => both!(
                    format!("get_pending_inbound({addr}, {sender}, {mid})"),
                    |s| {
                        format!(
                            "{:?}",
                            s.get_pending_inbound(addr, sender, mid).await.unwrap()
                        )
                    }
                ),
                2 => both!(
                    format!("delete_pending_inbound({addr}, {sender}, {mid})"),
                    |s| {
                        format!(
                            "{:?}",
                            s.delete_pending_inbound(addr, sender, mid).await.unwrap()
                        )
                    }
                ),
                3 => {
                    let rows = [
                        PendingInboundRow {
                            chat: addr,
                            sender,
                            id: mid,
                            message: &bytes,
                        },
                        PendingInboundRow {
                            chat: sender,
                            sender: addr,
                            id: "B",
                            message: b"m",
                        },
                    ];
                    both!("store_pending_inbound_batch".to_owned(), |s| format!(
                        "{:?}",
                        s.store_pending_inbound_batch(&rows).await.unwrap()
                    ))
                }
                4 => {
                    let ks = [PendingInboundKey {
                        chat: addr,
                        sender,
                        id: mid,
                    }];
                    both!("delete_pending_inbound_batch".to_owned(), |s| format!(
                        "{:?}",
                        s.delete_pending_inbound_batch(&ks).await.unwrap()
                    ))
                }
                _ => {
                    let cutoff = wacore::time::now_secs() + if flag { 100_000 } else { -100_000 };
                    both!(format!("delete_expired_pending_inbound(now {flag})"), |s| {
                        format!(
                            "{:?}",
                            s.delete_expired_pending_inbound(cutoff).await.unwrap()
                        )
                    })
                }
            }
        }
        62 => {
            let entries = vec![msg_secret(a, b, c, &bytes), msg_secret(b, a, c, &[1])];
            both!(format!("put_msg_secrets({entries:?})"), |s| format!(
                "{:?}",
                s.put_msg_secrets(entries.clone()).await.unwrap()
            ))
        }
        63 => {
            let e = msg_secret(a, b, c, &bytes);
            both!(format!("put_msg_secret({e:?})"), |s| format!(
                "{:?}",
                s.put_msg_secret(&e.chat, &e.sender, &e.msg_id, &e.secret)
                    .await
                    .unwrap()
            ))
        }
        64 => {
            let e = msg_secret(a, b, c, &bytes);
            both!(format!("get_msg_secret_with_ts({e:?})"), |s| format!(
                "{:?} {:?}",
                s.get_msg_secret_with_ts(&e.chat, &e.sender, &e.msg_id)
                    .await
                    .unwrap(),
                s.get_msg_secret(&e.chat, &e.sender, &e.msg_id)
                    .await
                    .unwrap()
            ))
        }
        65 => {
            let cutoff = pick(&STAMPS, a) + 25;
            both!(
                format!("delete_expired_msg_secrets({cutoff})"),
                |s| format!("{:?}", s.delete_expired_msg_secrets(cutoff).await.unwrap())
            )
        }
        66 => both!("exists".to_owned(), |s| format!(
            "{:?}",
            s.exists().await.unwrap()
        )),
        67 => both!("create".to_owned(), |s| format!(
            "{:?}",
            s.create().await.unwrap()
        )),
        68 => {
            let device = pair.saved.get_or_insert_with(saved_device).clone();
            both!("save(device)".to_owned(), |s| format!(
                "{:?}",
                s.save(&device).await.unwrap()
            ))
        }
        _ => {
            // Until a case saved its own device, `create` made a random one on each side:
            // only its presence can be compared.
            let saved = pair.saved.is_some();
            both!("load".to_owned(), |s| {
                let loaded = s.load().await.unwrap();
                match loaded {
                    Some(d) if saved => json(&d),
                    Some(_) => "some device".to_owned(),
                    None => "none".to_owned(),
                }
            })
        }
    };
    (desc, o, w)
}
