//! `WaBackend`'s own behaviours beyond the oracle: the key layout, the device props restored
//! on load, update-only pre-key marks, the per-device lock across instances, and fencing.

mod common;

use std::sync::Arc;

use wa_pairing_store::{AuthStateStore, DeviceStore as _, Fence, Lease, MemoryStore};
use wa_pairing_whatsapp::WaBackend;
use wacore::store::traits::{
    DeviceStore as _, MsgSecretEntry, MsgSecretStore as _, PendingInboundRow, ProtocolStore as _,
    SignalStore as _,
};
use whatsapp_rust::bytes::Bytes;

async fn setup() -> (Arc<MemoryStore>, Lease, WaBackend) {
    let (store, lease) = common::memory_device().await;
    let backend = WaBackend::new(store.clone(), lease.device_id, lease.fence);
    (store, lease, backend)
}

#[tokio::test]
async fn one_key_per_entry_in_the_documented_layout() {
    let (store, lease, b) = setup().await;
    b.put_session("111:2@s.whatsapp.net", b"s").await.unwrap();
    b.store_prekey(42, b"pk", false).await.unwrap();
    b.set_sender_key_status("g/1@g.us", &[("222:3@lid", true)])
        .await
        .unwrap();
    b.store_sent_message("111@s.whatsapp.net", "M1", b"payload")
        .await
        .unwrap();
    let keys: Vec<String> = AuthStateStore::scan_prefix(&*store, lease.device_id, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    // A stored pre-key is a fragment of its chunk until the next change folds it in.
    assert!(keys[0].starts_with("prekeys/00000000."), "{keys:?}");
    assert_eq!(
        keys[1..],
        [
            "sent/111@s.whatsapp.net/M1",
            "session/111:2@s.whatsapp.net",
            "skd/g%2F1@g.us/222:3@lid",
        ]
    );
}

#[tokio::test]
async fn load_restores_the_default_device_props() {
    let (_store, _lease, b) = setup().await;
    b.create().await.unwrap();
    let loaded = b.load().await.unwrap().expect("created");
    assert_eq!(
        *loaded.device_props,
        *wacore::store::device::DEVICE_PROPS,
        "device props are not serialised and must come back as the defaults"
    );
    // And they are not empty: a registration payload needs them.
    assert!(loaded.device_props.os.is_some());
}

/// The client's saver can write a snapshot taken before pair-success after the linked state
/// was written (both under the same lease): the stored companion stays linked, and a new
/// companion (other keys) is still written.
#[tokio::test]
async fn an_older_unlinked_snapshot_never_unlinks_the_stored_companion() {
    let (_store, _lease, b) = setup().await;
    let before = wacore::store::Device::new();
    let mut linked = before.clone();
    linked.pn = Some("6281234567890@s.whatsapp.net".parse().unwrap());
    b.save(&linked).await.unwrap();
    b.save(&before).await.unwrap();
    assert!(
        b.is_linked().await.unwrap(),
        "the late snapshot was written over the link"
    );
    let other = wacore::store::Device::new();
    b.save(&other).await.unwrap();
    assert!(
        !b.is_linked().await.unwrap(),
        "another companion's state is written as given"
    );
}

#[tokio::test]
async fn create_allocates_ids_across_restarts_and_keeps_the_device() {
    let (store, lease, b) = setup().await;
    assert!(!b.exists().await.unwrap());
    assert_eq!(b.create().await.unwrap(), 1);
    let first = b.load().await.unwrap().expect("created");
    let again = WaBackend::new(store, lease.device_id, lease.fence);
    assert_eq!(again.create().await.unwrap(), 2);
    let still = again.load().await.unwrap().expect("kept");
    assert_eq!(
        still.registration_id, first.registration_id,
        "a second create must not replace the stored device"
    );
}

#[tokio::test]
async fn marking_pre_keys_uploaded_never_resurrects_one() {
    let (store, lease, b) = setup().await;
    b.store_prekey(1, b"one", false).await.unwrap();
    b.store_prekey(2, b"two", false).await.unwrap();
    b.remove_prekey(2).await.unwrap();
    b.mark_prekeys_uploaded(&[1, 2, 3]).await.unwrap();
    assert!(b.load_prekey(2).await.unwrap().is_none());
    assert!(b.load_prekey(3).await.unwrap().is_none());
    let raw = AuthStateStore::get(&*store, lease.device_id, "prekeys/00000000")
        .await
        .unwrap()
        .unwrap();
    // Version 1; id 1: uploaded, not compact, a 3-byte record; id 2 is gone.
    assert_eq!(
        raw, b"\x01\x01\x01\x00\x03one",
        "the uploaded flag is set, the record kept"
    );
    assert_eq!(b.load_prekey(1).await.unwrap().unwrap().as_ref(), b"one");
}

/// The uploaded flag of pre-key `id` in its stored chunk (`None`: not stored), read with
/// the documented format.
async fn uploaded_flag(store: &MemoryStore, lease: &Lease, id: u32) -> Option<bool> {
    let key = format!("prekeys/{:08}", id >> 8);
    let raw = AuthStateStore::get(store, lease.device_id, &key)
        .await
        .unwrap()?;
    assert_eq!(raw[0], 1, "format version");
    let mut rest = &raw[1..];
    while let [offset, flags, tail @ ..] = rest {
        let (len, body) = if flags & 2 != 0 {
            (32, tail)
        } else {
            (
                usize::from(u16::from_be_bytes([tail[0], tail[1]])),
                &tail[2..],
            )
        };
        if (id >> 8) << 8 | u32::from(*offset) == id {
            return Some(flags & 1 == 1);
        }
        rest = &body[len..];
    }
    None
}

#[tokio::test]
async fn many_pre_keys_are_read_and_marked_in_the_order_asked() {
    // Ids over more chunks than are read one by one, so the backend reads them with one
    // prefix scan.
    let (store, lease, b) = setup().await;
    let ids: Vec<u32> = (1..=40u32).map(|i| i * 100).collect();
    for &id in &ids {
        b.store_prekey(id, format!("key{id}").as_bytes(), false)
            .await
            .unwrap();
    }
    b.store_signed_prekey(7, b"signed").await.unwrap();
    b.remove_prekey(1300).await.unwrap();
    let asked: Vec<u32> = ids.iter().rev().copied().chain([99, 500]).collect();
    let got = b.load_prekeys_batch(&asked).await.unwrap();
    let expected: Vec<(u32, Vec<u8>)> = ids
        .iter()
        .rev()
        .copied()
        .chain([500])
        .filter(|id| *id != 1300)
        .map(|id| (id, format!("key{id}").into_bytes()))
        .collect();
    let got: Vec<(u32, Vec<u8>)> = got.into_iter().map(|(id, r)| (id, r.to_vec())).collect();
    assert_eq!(
        got, expected,
        "found ones, in the order asked, duplicates kept"
    );

    b.mark_prekeys_uploaded(&(10..=30).map(|i| i * 100).collect::<Vec<_>>())
        .await
        .unwrap();
    for &id in &ids {
        let flag = uploaded_flag(&store, &lease, id).await;
        match id {
            1300 => assert!(flag.is_none(), "a removed pre-key stays removed"),
            1000..=3000 => assert_eq!(flag, Some(true), "pre-key {id} is marked uploaded"),
            _ => assert_eq!(flag, Some(false), "pre-key {id} was not asked to be marked"),
        }
    }
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 4000);
    assert_eq!(b.load_signed_prekey(7).await.unwrap().unwrap(), b"signed");
}

/// A record as the client encodes it (a valid key pair).
fn client_record(id: u32, seed: u8) -> Vec<u8> {
    use wacore::libsignal::protocol::{KeyPair, PrivateKey};
    let private = PrivateKey::deserialize(&[seed; 32]).unwrap();
    let pair = KeyPair::new(private.public_key().unwrap(), private);
    let mut out = Vec::new();
    wacore::libsignal::store::record_helpers::encode_pre_key_record_to(id, &pair, &mut out);
    out
}

#[tokio::test]
async fn a_pairings_pre_keys_take_a_few_rows_and_come_back_byte_for_byte() {
    let (store, lease, b) = setup().await;
    // What the client generates and uploads after a pairing: 812 keys.
    let batch: Vec<(u32, Bytes)> = (1..=812u32)
        .map(|id| {
            (
                id,
                Bytes::from(client_record(id, u8::try_from(id % 200 + 1).unwrap())),
            )
        })
        .collect();
    b.store_prekeys_batch(&batch, false).await.unwrap();
    b.mark_prekeys_uploaded(&(1..=812).collect::<Vec<_>>())
        .await
        .unwrap();
    let rows = AuthStateStore::scan_prefix(&*store, lease.device_id, "prekeys/")
        .await
        .unwrap();
    assert_eq!(rows.len(), 4, "812 ids in chunks of 256");
    let bytes: usize = rows.iter().map(|(k, v)| k.len() + v.len()).sum();
    let records: usize = batch.iter().map(|(_, r)| r.len()).sum();
    assert!(
        bytes * 2 < records,
        "packed to the private keys: {bytes} bytes for {records} bytes of records"
    );
    let ids: Vec<u32> = (1..=812).collect();
    let back = b.load_prekeys_batch(&ids).await.unwrap();
    assert_eq!(back, batch, "the client reads exactly what it stored");
    assert_eq!(
        b.load_prekey(300).await.unwrap(),
        Some(batch[299].1.clone())
    );
}

#[tokio::test]
async fn storing_and_removing_pre_keys_reads_nothing_and_never_piles_up_rows() {
    let (store, lease, b) = setup().await;
    let counting = |s: &Arc<MemoryStore>| {
        let s = s.clone();
        async move {
            AuthStateStore::scan_prefix(&*s, lease.device_id, "prekeys/")
                .await
                .unwrap()
                .len()
        }
    };
    let batch: Vec<(u32, Bytes)> = (1..=40u32)
        .map(|id| {
            (
                id,
                Bytes::from(client_record(id, u8::try_from(id).unwrap())),
            )
        })
        .collect();
    b.store_prekeys_batch(&batch, false).await.unwrap();
    b.mark_prekeys_uploaded(&(1..=40).collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(counting(&store).await, 1, "folded into one chunk");
    // Keys consumed one by one, as contacts open sessions: a removal each.
    for id in 1..=20u32 {
        assert!(b.load_prekey(id).await.unwrap().is_some(), "{id} is there");
        b.remove_prekey(id).await.unwrap();
        assert!(b.load_prekey(id).await.unwrap().is_none(), "{id} is gone");
        assert!(
            counting(&store).await <= 9,
            "removals are folded when a read finds eight"
        );
    }
    let left: Vec<u32> = b
        .load_prekeys_batch(&(1..=40).collect::<Vec<_>>())
        .await
        .unwrap()
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(left, (21..=40).collect::<Vec<_>>());
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 40);
}

#[tokio::test]
async fn pre_keys_stored_one_per_key_are_read_as_before_and_packed_by_the_next_write() {
    let (store, lease, b) = setup().await;
    // Rows as the backend wrote them before pre-keys were packed: "uploaded", then the record.
    let old = [
        (1u32, true, b"legacy".to_vec()),
        (300, false, client_record(300, 9)),
        (301, false, client_record(301, 10)),
    ];
    for (id, uploaded, record) in &old {
        let mut value = vec![u8::from(*uploaded)];
        value.extend_from_slice(record);
        AuthStateStore::put(
            &*store,
            lease.device_id,
            lease.fence,
            &format!("prekey/{id:010}"),
            &value,
        )
        .await
        .unwrap();
    }
    // Read as they were, one by one and in a batch.
    for (id, _, record) in &old {
        assert_eq!(
            b.load_prekey(*id).await.unwrap().as_deref(),
            Some(record.as_slice())
        );
    }
    let batch = b.load_prekeys_batch(&[301, 1, 300]).await.unwrap();
    assert_eq!(batch.len(), 3);
    assert_eq!(b.get_max_prekey_id().await.unwrap(), 301);

    // A removal reads nothing; the next change that reads (an upload mark) packs them all:
    // no old row is left, nothing is lost, the removed key stays removed.
    b.remove_prekey(301).await.unwrap();
    assert!(b.load_prekey(301).await.unwrap().is_none(), "removed");
    b.mark_prekeys_uploaded(&[1]).await.unwrap();
    assert!(
        AuthStateStore::scan_prefix(&*store, lease.device_id, "prekey/")
            .await
            .unwrap()
            .is_empty(),
        "the old rows are gone"
    );
    assert!(b.load_prekey(301).await.unwrap().is_none(), "removed");
    for (id, uploaded, record) in &old[..2] {
        assert_eq!(
            b.load_prekey(*id).await.unwrap().as_deref(),
            Some(record.as_slice())
        );
        assert_eq!(uploaded_flag(&store, &lease, *id).await, Some(*uploaded));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sent_message_is_taken_once_even_by_two_instances() {
    let (store, lease, b) = setup().await;
    for round in 0..20 {
        let id = format!("M{round}");
        b.store_sent_message("111@s.whatsapp.net", &id, b"payload")
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for _ in 0..4 {
            let other = WaBackend::new(store.clone(), lease.device_id, lease.fence);
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                other
                    .take_sent_message("111@s.whatsapp.net", &id)
                    .await
                    .unwrap()
            }));
        }
        let mut taken = 0;
        for t in tasks {
            if t.await.unwrap().is_some() {
                taken += 1;
            }
        }
        assert_eq!(taken, 1, "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_tc_token_writers_both_land() {
    let (store, lease, b) = setup().await;
    for round in 0..20_i64 {
        let jid = format!("{round}@lid");
        let (x, y) = (
            WaBackend::new(store.clone(), lease.device_id, lease.fence),
            WaBackend::new(store.clone(), lease.device_id, lease.fence),
        );
        let (j1, j2) = (jid.clone(), jid.clone());
        let t1 = tokio::spawn(async move {
            x.touch_tc_token_sender_timestamp(&j1, 500).await.unwrap();
        });
        let t2 = tokio::spawn(async move {
            y.store_received_tc_token(&j2, b"token", 400).await.unwrap();
        });
        t1.await.unwrap();
        t2.await.unwrap();
        let entry = b.get_tc_token(&jid).await.unwrap().expect("stored");
        assert_eq!(entry.token, b"token", "round {round}");
        assert_eq!(entry.sender_timestamp, Some(500), "round {round}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_message_secret_merges_keep_the_longest_window() {
    let (store, lease, b) = setup().await;
    let mut tasks = Vec::new();
    for expires in [100_i64, 400, 300, 200] {
        let w = WaBackend::new(store.clone(), lease.device_id, lease.fence);
        tasks.push(tokio::spawn(async move {
            let chat: Arc<str> = Arc::from("111@s.whatsapp.net");
            w.put_msg_secrets(vec![MsgSecretEntry {
                chat: chat.clone(),
                sender: chat,
                msg_id: Arc::from("M1"),
                secret: [7; 32],
                expires_at: expires,
                message_ts: expires / 100,
            }])
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 1);
    }
    // Nothing removed before the longest deadline, everything after it.
    assert_eq!(b.delete_expired_msg_secrets(399).await.unwrap(), 0);
    let (secret, ts) = b
        .get_msg_secret_with_ts("111@s.whatsapp.net", "111@s.whatsapp.net", "M1")
        .await
        .unwrap()
        .expect("kept");
    assert_eq!((secret, ts), (vec![7; 32], 4));
    assert_eq!(b.delete_expired_msg_secrets(400).await.unwrap(), 1);
}

#[tokio::test]
async fn lid_mappings_keep_the_phone_index_in_step() {
    let (_store, _lease, b) = setup().await;
    let entry = |lid: &str, pn: &str| wacore::store::traits::LidPnMappingEntry {
        lid: lid.to_owned(),
        phone_number: pn.to_owned(),
        created_at: 1,
        updated_at: 2,
        learning_source: "usync".to_owned(),
    };
    b.put_lid_mapping(&entry("100", "62811")).await.unwrap();
    b.put_lid_mapping(&entry("100", "62822")).await.unwrap();
    assert!(b.get_pn_mapping("62811").await.unwrap().is_none());
    assert_eq!(b.get_pn_mapping("62822").await.unwrap().unwrap().lid, "100");
}

#[tokio::test]
async fn a_lost_lease_cannot_write() {
    let (store, lease, b) = setup().await;
    b.put_session("a@s.whatsapp.net", b"mine").await.unwrap();
    // The owner acts (or another runner takes the device over): the lease ends.
    store.disconnect(lease.device_id).await.unwrap();
    // The client's late write is answered as done (the runner, not the client, reports a
    // lost lease and closes the session), and nothing of it is kept.
    b.put_session("a@s.whatsapp.net", b"late")
        .await
        .expect("refused quietly");
    let stale = WaBackend::new(store.clone(), lease.device_id, Fence(lease.fence.0));
    assert_eq!(
        stale
            .get_session("a@s.whatsapp.net")
            .await
            .unwrap()
            .unwrap()
            .as_ref(),
        b"mine"
    );
}

/// The client's retention sweeps skip the scan when nothing stored through this backend can
/// be due, and still delete every row that is: rows stored before and after a sweep, and
/// rows an earlier session left (a new session's first sweep scans).
#[tokio::test]
async fn retention_sweeps_delete_what_is_due_and_nothing_else() {
    let (store, lease, b) = setup().await;
    let now = wacore::time::now_secs();
    let chat = "111@s.whatsapp.net";
    b.store_sent_message(chat, "M1", b"payload").await.unwrap();
    assert_eq!(b.delete_expired_sent_messages(now - 100).await.unwrap(), 0);
    assert_eq!(b.delete_expired_sent_messages(now + 1).await.unwrap(), 1);
    assert_eq!(b.delete_expired_sent_messages(now + 2).await.unwrap(), 0);
    b.store_sent_message(chat, "M2", b"payload").await.unwrap();
    assert_eq!(
        b.delete_expired_sent_messages(now + 3).await.unwrap(),
        1,
        "a row stored after a sweep is swept"
    );
    assert!(b.take_sent_message(chat, "M2").await.unwrap().is_none());

    b.store_pending_inbound(chat, "222@s.whatsapp.net", "P1", b"m")
        .await
        .unwrap();
    assert_eq!(b.delete_expired_pending_inbound(now - 1).await.unwrap(), 0);
    assert_eq!(b.delete_expired_pending_inbound(now + 1).await.unwrap(), 1);
    b.store_pending_inbound_batch(&[PendingInboundRow {
        chat,
        sender: "222@s.whatsapp.net",
        id: "P2",
        message: b"m",
    }])
    .await
    .unwrap();
    assert_eq!(
        b.delete_expired_pending_inbound(now + 2).await.unwrap(),
        1,
        "a batch counts too"
    );

    let secret = |id: &str, seed: u8, expires_at: i64| MsgSecretEntry {
        chat: Arc::from(chat),
        sender: Arc::from("222@s.whatsapp.net"),
        msg_id: Arc::from(id),
        secret: [seed; 32],
        expires_at,
        message_ts: now,
    };
    b.put_msg_secrets(vec![secret("S1", 7, now + 10), secret("S2", 8, 0)])
        .await
        .unwrap();
    assert_eq!(b.delete_expired_msg_secrets(now).await.unwrap(), 0);
    assert_eq!(b.delete_expired_msg_secrets(now + 10).await.unwrap(), 1);
    assert!(
        b.get_msg_secret(chat, "222@s.whatsapp.net", "S2")
            .await
            .unwrap()
            .is_some(),
        "a secret that never expires stays"
    );

    // An earlier session left a sent message behind; the next session's first sweep finds it.
    b.store_sent_message(chat, "M3", b"payload").await.unwrap();
    let next = WaBackend::new(store.clone(), lease.device_id, lease.fence);
    assert_eq!(next.delete_expired_sent_messages(now + 5).await.unwrap(), 1);
}

/// The client reads the recipient's trusted-contact token before every message it sends: a
/// token the backend read or wrote, or knows to be absent, is answered from memory. Shown
/// by changing the store behind the backend's back (which the lease rules out in service):
/// the backend keeps answering what it knows, and a new backend reads the store.
#[tokio::test]
async fn known_trusted_contact_tokens_are_answered_without_the_store() {
    use wacore::store::traits::TcTokenEntry;
    let (store, lease, b) = setup().await;
    let entry = |ts: i64| TcTokenEntry {
        token: b"token".to_vec(),
        token_timestamp: ts,
        sender_timestamp: None,
    };
    let behind_its_back = |jid: &str, ts: i64| {
        let (store, key) = (store.clone(), format!("tc/{jid}"));
        let (device, fence) = (lease.device_id, lease.fence);
        let value = serde_json::to_vec(&entry(ts)).unwrap();
        async move {
            store.put(device, fence, &key, &value).await.unwrap();
        }
    };

    // Absent, then stored behind its back: still absent for this backend.
    assert!(b.get_tc_token("1@lid").await.unwrap().is_none());
    behind_its_back("1@lid", 7).await;
    assert!(b.get_tc_token("1@lid").await.unwrap().is_none());
    // Written through the backend: known at once, whatever the store holds later.
    b.put_tc_token("2@lid", &entry(10)).await.unwrap();
    behind_its_back("2@lid", 11).await;
    assert_eq!(
        b.get_tc_token("2@lid")
            .await
            .unwrap()
            .unwrap()
            .token_timestamp,
        10
    );
    // A read-modify-write reads through the cache and keeps it in step.
    b.touch_tc_token_sender_timestamp("2@lid", 50)
        .await
        .unwrap();
    let touched = b.get_tc_token("2@lid").await.unwrap().unwrap();
    assert_eq!(
        (touched.token_timestamp, touched.sender_timestamp),
        (10, Some(50))
    );
    // Deleted and swept through the backend: known absent.
    b.delete_tc_token("2@lid").await.unwrap();
    assert!(b.get_tc_token("2@lid").await.unwrap().is_none());
    b.store_received_tc_token("3@lid", b"t", 5).await.unwrap();
    assert_eq!(b.delete_expired_tc_tokens(100, 100).await.unwrap(), 2);
    assert!(b.get_tc_token("3@lid").await.unwrap().is_none());

    // A new backend (a new session) reads what the store holds.
    let fresh = WaBackend::new(store.clone(), lease.device_id, lease.fence);
    assert!(
        fresh.get_tc_token("1@lid").await.unwrap().is_none(),
        "swept"
    );
    behind_its_back("4@lid", 9).await;
    assert_eq!(
        fresh
            .get_tc_token("4@lid")
            .await
            .unwrap()
            .unwrap()
            .token_timestamp,
        9
    );
}
