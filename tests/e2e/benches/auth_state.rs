//! Auth state at rest per linked device, on PostgreSQL: devices paired by the runner with the
//! real `whatsapp-rust` client against the simulator, then their rows and bytes in
//! `device_auth_state`, in today's layout and in the layout of earlier versions (one row per
//! pre-key, rebuilt from the same state), and the store round trips per pairing.
//!
//! ```sh
//! cargo bench -p wa-pairing-e2e --bench auth_state
//! WA_PAIRING_BENCH_DEVICES=50 cargo bench -p wa-pairing-e2e --bench auth_state
//! ```
//!
//! The earlier layout is rebuilt, not remembered: each device's entries are copied to a
//! second device with its pre-keys written one per key (`prekey/<id>`: the uploaded flag,
//! then the record), exactly as the backend wrote them before they were packed. A pre-key
//! write to that copy then packs them (the upgrade path), and it is measured again.
#![allow(missing_docs, clippy::cast_precision_loss)]

use std::sync::Arc;
use std::time::Duration;

use tokio_postgres::NoTls;
use wa_pairing_e2e::{Counting, Stack};
use wa_pairing_store::{
    AuthStateStore, ClaimRequest, DeviceId, DeviceStore, Entry, NewDevice, PairingRequest, UserId,
};
use wa_pairing_whatsapp::WaBackend;
use wacore::store::traits::SignalStore as _;

const DEVICES_ENV: &str = "WA_PAIRING_BENCH_DEVICES";

/// Rows, bytes of the rows (`pg_column_size` of each tuple) and of the table with its
/// indexes (after `VACUUM FULL`), for `ids`.
struct AtRest {
    rows: f64,
    row_bytes: f64,
}

async fn at_rest(client: &tokio_postgres::Client, ids: &[DeviceId]) -> AtRest {
    let ids: Vec<uuid::Uuid> = ids.iter().map(|d| d.0).collect();
    let row = client
        .query_one(
            "select count(*)::float8, coalesce(sum(pg_column_size(t.*)), 0)::float8
               from public.device_auth_state t where device_id = any($1)",
            &[&ids],
        )
        .await
        .expect("rows and bytes");
    let n = ids.len() as f64;
    AtRest {
        rows: row.get::<_, f64>(0) / n,
        row_bytes: row.get::<_, f64>(1) / n,
    }
}

async fn table_bytes(client: &tokio_postgres::Client) -> f64 {
    client
        .batch_execute("vacuum full public.device_auth_state")
        .await
        .expect("vacuum");
    let row = client
        .query_one(
            "select pg_total_relation_size('public.device_auth_state')::float8",
            &[],
        )
        .await
        .expect("size");
    row.get(0)
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(bench());
}

#[allow(clippy::too_many_lines)]
async fn bench() {
    let devices: usize = std::env::var(DEVICES_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let (raw, db) = match wa_pairing_e2e::postgres_store().await {
        Ok(x) => x,
        Err(skip) => {
            println!("auth_state: skipped ({})", skip.0);
            return;
        }
    };
    let (client, conn) = tokio_postgres::connect(&db.url, NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let counting = Arc::new(Counting::new(
        Arc::new(raw.clone()) as Arc<dyn AuthStateStore>
    ));
    let stores = raw
        .stores()
        .auth_state(Arc::clone(&counting))
        .encrypt(wa_pairing_e2e::test_keyring())
        .build();
    let empty = table_bytes(&client).await;
    let stack = Stack::start(stores.clone()).await;
    let person = stack.person();
    let runner = stack.runner(Stack::config("bench").lease_for(Duration::from_secs(30)));
    let mut ids = Vec::with_capacity(devices);
    for i in 0..devices {
        ids.push(
            stack
                .device(&format!("62813{:08}", 40_000_000 + i))
                .await
                .id,
        );
    }
    for id in &ids {
        stack.connected(*id).await;
    }
    // After `connected` the client uploads its pre-keys and the phone shares the app-state
    // key over them: the state a linked device keeps.
    stack
        .sim
        .wait_for_counters(Duration::from_secs(120), |c| c.key_shares >= devices as u64)
        .await
        .expect("every device got the phone's key share");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (reads, writes) = counting.counts();
    let families = counting.by_family();
    runner.shutdown().await;
    person.abort();
    let now = at_rest(&client, &ids).await;
    let paired = table_bytes(&client).await;
    let now_table = (paired - empty) / devices as f64;

    // The same state in the earlier layout: one row per pre-key.
    let auth = Arc::clone(stores.auth_state());
    let user = UserId::random();
    let mut copies = Vec::with_capacity(devices);
    for i in 0..devices {
        let copy = stores
            .devices()
            .create(NewDevice::new(user, format!("copy {i}")))
            .await
            .expect("create");
        let phone = wa_pairing_phone::parse(&format!("+62814{:08}", 40_000_000 + i)).unwrap();
        stores
            .devices()
            .start_pairing(copy.id, PairingRequest::Code { phone })
            .await
            .expect("start");
        copies.push(copy.id);
    }
    let claimed = stores
        .devices()
        .claim(
            &ClaimRequest::new("bench-copy", devices, Duration::from_secs(600))
                .skip(ids.iter().copied()),
        )
        .await
        .expect("claim the copies");
    assert_eq!(claimed.len(), devices, "every copy claimed");
    let fence_of = |copy: DeviceId| {
        claimed
            .iter()
            .find(|c| c.device.id == copy)
            .expect("claimed")
            .lease
            .fence
    };
    for (id, copy) in ids.iter().zip(&copies) {
        let source = WaBackend::new(Arc::clone(&auth), *id, wa_pairing_store::Fence(0));
        let max = source.get_max_prekey_id().await.expect("max pre-key id");
        let all: Vec<u32> = (1..=max).collect();
        let mut entries: Vec<Entry> = auth
            .scan_prefix(*id, "")
            .await
            .expect("entries")
            .into_iter()
            .filter(|(k, _)| !k.starts_with("prekeys/"))
            .collect();
        for (pid, record) in source.load_prekeys_batch(&all).await.expect("pre-keys") {
            let mut value = vec![1u8];
            value.extend_from_slice(&record);
            entries.push((format!("prekey/{pid:010}"), value));
        }
        auth.put_many(*copy, fence_of(*copy), &entries)
            .await
            .expect("write the copy");
    }
    let before = at_rest(&client, &copies).await;
    let before_table = (table_bytes(&client).await - paired) / devices as f64;

    // The first pre-key write after an upgrade packs a device's pre-keys.
    for copy in &copies {
        WaBackend::new(Arc::clone(&auth), *copy, fence_of(*copy))
            .mark_prekeys_uploaded(&[1])
            .await
            .expect("a pre-key write");
    }
    let upgraded = at_rest(&client, &copies).await;

    let kib = |b: f64| b / 1024.0;
    println!("\n## auth state at rest per linked device ({devices} devices, PostgreSQL)\n");
    println!(
        "| | one row per pre-key (earlier) | packed pre-keys (now) | after the first pre-key write |"
    );
    println!("|---|---:|---:|---:|");
    println!(
        "| rows | {:.1} | {:.1} | {:.1} |",
        before.rows, now.rows, upgraded.rows
    );
    println!(
        "| row bytes (`pg_column_size`) | {:.1} KiB | {:.1} KiB | {:.1} KiB |",
        kib(before.row_bytes),
        kib(now.row_bytes),
        kib(upgraded.row_bytes)
    );
    println!(
        "| table and indexes (after `VACUUM FULL`) | {:.1} KiB | {:.1} KiB | |",
        kib(before_table),
        kib(now_table)
    );
    println!(
        "\nauth-state round trips per pairing: {:.1} reads, {:.1} writes",
        reads as f64 / devices as f64,
        writes as f64 / devices as f64
    );
    let per = |n: u64| n as f64 / devices as f64;
    let shown: Vec<String> = families
        .iter()
        .map(|(f, (r, w))| {
            format!(
                "{}: {:.1}/{:.1}",
                if f.is_empty() { "(all)" } else { f },
                per(*r),
                per(*w)
            )
        })
        .collect();
    println!(
        "by key family (reads/writes per pairing): {}",
        shown.join(", ")
    );
    stack.sim.shutdown().await;
    db.drop().await;
}
