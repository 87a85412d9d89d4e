//! Claim-and-renew cost per runner tick at 1,000, 10,000 and 100,000 device rows, and
//! auth-state get/put latency, on the PostgreSQL at `WA_PAIRING_TEST_POSTGRES_URL`.
//!
//! `cargo bench -p wa-pairing-postgres --bench claim`
#![allow(missing_docs)]

use std::time::{Duration, Instant};

use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_store::{AuthStateStore, DeviceStore, Lease};
use wa_pairing_test_support::TestDb;

const HELD: usize = 100;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    #[allow(
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss,
        clippy::cast_precision_loss
    )]
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i]
}

#[tokio::main]
async fn main() {
    println!(
        "| device rows | claim (nothing to claim) p50 | claim p99 | renew {HELD} leases p50 | renew p99 |"
    );
    println!("|---:|---:|---:|---:|---:|");
    for rows in [1_000usize, 10_000, 100_000] {
        let test_db = match TestDb::create("wa_bench").await {
            Ok(db) => db,
            Err(why) => {
                eprintln!("the benchmark needs a PostgreSQL server: {}", why.0);
                return;
            }
        };
        let store = PostgresStore::new(&PostgresConfig::new(&test_db.url)).unwrap();
        store.migrate().await.unwrap();
        let db = test_db.connect().await;
        // Every device is connected and held by some runner, as in a busy fleet.
        db.execute(
            "insert into public.devices (user_id, device_name, status, lease_owner, lease_expires_at, lease_fence)
             select gen_random_uuid(), 'd' || i, 'connected', 'other', now() + interval '1 hour', 1
               from generate_series(1, $1::int) i",
            &[&i32::try_from(rows).unwrap()],
        )
        .await
        .unwrap();
        db.batch_execute("analyze public.devices").await.unwrap();
        // This runner holds HELD of them.
        db.execute(
            "update public.devices set lease_owner = 'me' where id in (select id from public.devices limit $1)",
            &[&i64::try_from(HELD).unwrap()],
        )
        .await
        .unwrap();
        let leases: Vec<Lease> = db
            .query("select id, lease_fence, lease_expires_at from public.devices where lease_owner = 'me'", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| Lease {
                device_id: wa_pairing_store::DeviceId(r.get(0)),
                owner: "me".into(),
                fence: wa_pairing_store::Fence(r.get(1)),
                expires_at: r.get(2),
            })
            .collect();
        let (mut claims, mut renews) = (Vec::new(), Vec::new());
        for _ in 0..200 {
            let t = Instant::now();
            let got = store
                .claim(&wa_pairing_store::ClaimRequest::new(
                    "me",
                    1000,
                    Duration::from_secs(30),
                ))
                .await
                .unwrap();
            claims.push(t.elapsed());
            assert!(got.is_empty());
            let t = Instant::now();
            let kept = store
                .renew("me", &leases, Duration::from_secs(30))
                .await
                .unwrap();
            renews.push(t.elapsed());
            assert_eq!(kept.len(), HELD);
        }
        claims.sort();
        renews.sort();
        println!(
            "| {rows} | {:.2} ms | {:.2} ms | {:.2} ms | {:.2} ms |",
            percentile(&claims, 0.5).as_secs_f64() * 1e3,
            percentile(&claims, 0.99).as_secs_f64() * 1e3,
            percentile(&renews, 0.5).as_secs_f64() * 1e3,
            percentile(&renews, 0.99).as_secs_f64() * 1e3,
        );
        if rows == 100_000 {
            let plan = db
                .query(
                    "explain select * from public.wa_claim_devices('x', 10, 30)",
                    &[],
                )
                .await
                .unwrap();
            let _ = plan;
            // Auth-state latency on the same server.
            let lease = &leases[0];
            let value = vec![7u8; 1024];
            let (mut puts, mut gets) = (Vec::new(), Vec::new());
            for i in 0..500 {
                let key = format!("session/{i}");
                let t = Instant::now();
                store
                    .put(lease.device_id, lease.fence, &key, &value)
                    .await
                    .unwrap();
                puts.push(t.elapsed());
                let t = Instant::now();
                let _ = AuthStateStore::get(&store, lease.device_id, &key)
                    .await
                    .unwrap();
                gets.push(t.elapsed());
            }
            puts.sort();
            gets.sort();
            println!();
            println!("| auth state (1 KiB values) | p50 | p99 |");
            println!("|---|---:|---:|");
            println!(
                "| put (fenced) | {:.2} ms | {:.2} ms |",
                percentile(&puts, 0.5).as_secs_f64() * 1e3,
                percentile(&puts, 0.99).as_secs_f64() * 1e3
            );
            println!(
                "| get | {:.2} ms | {:.2} ms |",
                percentile(&gets, 0.5).as_secs_f64() * 1e3,
                percentile(&gets, 0.99).as_secs_f64() * 1e3
            );
        }
        drop((store, db));
        test_db.drop().await;
    }
}
