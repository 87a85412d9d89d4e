//! The third hardening round, where the database itself must hold the rule: device names
//! (the same rule as Rust's, for every Unicode character), the owner's pace for end users
//! writing rows through Supabase, one companion per device, and a budget secret that a
//! rotation of the auth-state keys does not change.

mod common;

use std::collections::BTreeMap;

use common::Store as _;
use common::{as_role, code};
use wa_pairing_store::{
    DeviceStore, ErrorKind, Keyring, NewDevice, PairingRequest, UserId, validate_device_name,
};
use wa_pairing_store_testkit::skip;

/// What a name rule made of a name: the stored name, or the refusal's words.
type Verdict = Result<String, String>;

/// Rust's verdict on `name(c)` for every character whose verdict is not "stored as typed".
fn rust_verdicts(name: impl Fn(char) -> String) -> BTreeMap<u32, Verdict> {
    (1..=0x10_FFFF_u32)
        .filter_map(char::from_u32)
        .filter_map(|c| {
            let typed = name(c);
            match validate_device_name(&typed) {
                Ok(stored) if stored == typed => None,
                Ok(stored) => Some((u32::from(c), Ok(stored))),
                Err(e) => Some((u32::from(c), Err(e.message().to_owned()))),
            }
        })
        .collect()
}

/// The database's verdicts for the same names (`sql_name` builds the name from `chr(cp)`).
async fn sql_verdicts(db: &tokio_postgres::Client, sql_name: &str) -> BTreeMap<u32, Verdict> {
    let query = format!(
        "select cp, c.name, c.problem
           from generate_series(1, 1114111) cp
           cross join lateral public.wa_device_name_check({sql_name}) c
          where cp not between 55296 and 57343
            and (c.problem is not null or c.name <> {sql_name})"
    );
    db.query(&query, &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let cp: i32 = r.get(0);
            let verdict = match r.get::<_, Option<String>>(2) {
                Some(problem) => Err(problem),
                None => Ok(r.get::<_, String>(1)),
            };
            (u32::try_from(cp).unwrap(), verdict)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_and_rust_apply_one_name_rule_to_every_character() {
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("name rule", &why),
    };
    let store = db.store().await;
    let admin = as_role(&db.url, "postgres", None).await;
    // Alone, and at both ends and inside a name.
    for (sql_name, name) in [
        (
            "chr(cp)",
            &(|c: char| c.to_string()) as &dyn Fn(char) -> String,
        ),
        ("chr(cp) || 'a' || chr(cp) || 'b' || chr(cp)", &|c: char| {
            format!("{c}a{c}b{c}")
        }),
    ] {
        let sql = sql_verdicts(&admin, sql_name).await;
        let rust = rust_verdicts(name);
        // White space, controls, direction controls and the default-ignorable characters
        // (4,096 tags among them): the rest of Unicode is stored as typed.
        assert!(
            (4_000..6_000).contains(&rust.len()),
            "{} characters are trimmed or refused",
            rust.len()
        );
        let differ: Vec<String> = rust
            .keys()
            .chain(sql.keys())
            .filter(|cp| rust.get(cp) != sql.get(cp))
            .map(|cp| format!("U+{cp:04X}: rust {:?}, sql {:?}", rust.get(cp), sql.get(cp)))
            .collect();
        assert!(
            differ.is_empty(),
            "{sql_name}: {} differences, first: {:?}",
            differ.len(),
            &differ[..differ.len().min(10)]
        );
    }
    drop((admin, store));
    db.cleanup()().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_writing_rows_directly_are_paced_like_the_api() {
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("owner's pace", &why),
    };
    let store = db.store().await;
    let (a, b) = (UserId::random(), UserId::random());
    let admin = as_role(&db.url, "postgres", None).await;
    // Two starts a minute: one is earned back only after 30 s, far beyond this test.
    admin
        .execute(
            "update public.wa_pairing_settings set value = '2' where name = 'pairing_starts_per_minute'",
            &[],
        )
        .await
        .unwrap();
    let user_a = as_role(&db.url, "authenticated", Some(a)).await;
    let starts: i32 = 2;
    // The original frontend's way: rows inserted as connecting, each with its own number.
    for i in 0..starts {
        user_a
            .execute(
                "insert into public.devices (user_id, device_name, status, phone_for_pairing) values ($1, $2, 'connecting', $3)",
                &[&a.0, &format!("phone {i}"), &format!("62812345600{i:02}")],
            )
            .await
            .unwrap_or_else(|e| panic!("start {i}: {e}"));
    }
    let e = user_a
        .execute(
            "insert into public.devices (user_id, device_name, status, phone_for_pairing) values ($1, 'one more', 'connecting', '6281234560099')",
            &[&a.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAP01", "{e}");
    let db_error = e.as_db_error().unwrap();
    assert!(
        db_error
            .message()
            .starts_with("too many pairing actions: try again in"),
        "the API's words: {}",
        db_error.message()
    );
    let wait: u64 = db_error.hint().unwrap().parse().unwrap();
    assert!((1..=30).contains(&wait), "{wait}");
    // Nothing was written by the refused insert; a stopped row may still be added.
    let rows = user_a
        .query("select count(*) from public.devices", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), i64::from(starts));
    user_a
        .execute(
            "insert into public.devices (user_id, device_name, status) values ($1, 'later', 'disconnected')",
            &[&a.0],
        )
        .await
        .unwrap();
    // Restarting an existing row is a start too.
    let e = user_a
        .execute(
            "update public.devices set status = 'connecting', phone_for_pairing = '6281234560098' where device_name = 'later'",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAP01", "{e}");
    // The service's API path counts against the same pace (one rule, every replica).
    let later = store
        .list_for_user(a)
        .await
        .unwrap()
        .into_iter()
        .find(|d| d.device_name == "later")
        .unwrap();
    let err = store
        .start_pairing(later.id, PairingRequest::Qr)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
    // An end user cannot spend another owner's starts, nor reset their own.
    let e = user_a
        .query("select public.wa_pace_acquire($1)", &[&b.0])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501", "{e}");
    let e = user_a
        .execute("delete from public.wa_owner_pace", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501", "{e}");
    let anon = as_role(&db.url, "anon", None).await;
    let e = anon
        .query("select public.wa_pace_acquire($1)", &[&a.0])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501", "{e}");
    // Another owner has a pace of their own.
    let user_b = as_role(&db.url, "authenticated", Some(b)).await;
    user_b
        .execute(
            "insert into public.devices (user_id, device_name, status, phone_for_pairing) values ($1, 'b', 'connecting', '6281234560001')",
            &[&b.0],
        )
        .await
        .unwrap();
    // The operator changes the pace with SQL.
    admin
        .execute(
            "update public.wa_pairing_settings set value = '1000' where name = 'pairing_starts_per_minute'",
            &[],
        )
        .await
        .unwrap();
    admin
        .execute("delete from public.wa_owner_pace", &[])
        .await
        .unwrap();
    store
        .start_pairing(later.id, PairingRequest::Qr)
        .await
        .unwrap();
    drop((user_a, user_b, anon, admin, store));
    db.cleanup()().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_refuses_a_second_device_for_one_companion() {
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("companions", &why),
    };
    let store = db.store().await;
    let user = UserId::random();
    let one = store.create(NewDevice::new(user, "one")).await.unwrap();
    let two = store.create(NewDevice::new(user, "two")).await.unwrap();
    // Whoever writes the table (an operator's SQL too), one companion has one device.
    let admin = as_role(&db.url, "postgres", None).await;
    admin
        .execute(
            "insert into public.device_companions (device_id, companion) values ($1, 'abc')",
            &[&one.id.0],
        )
        .await
        .unwrap();
    let e = admin
        .execute(
            "insert into public.device_companions (device_id, companion) values ($1, 'abc')",
            &[&two.id.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "23505", "{e}");
    // Deleting the device forgets its companion.
    store.delete(one.id).await.unwrap();
    admin
        .execute(
            "insert into public.device_companions (device_id, companion) values ($1, 'abc')",
            &[&two.id.0],
        )
        .await
        .unwrap();
    drop((admin, store));
    db.cleanup()().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn budget_keys_do_not_change_when_the_auth_state_keys_rotate() {
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("budget keys", &why),
    };
    let store = db.store().await;
    let phone = wa_pairing_phone::parse("+6281234567890").unwrap();
    let (before, _) = Keyring::generate(1);
    let (new, _) = Keyring::generate(2);
    let after = new.with_old_key(1, [0; 32]);
    let a = store.stores().encrypt(before).build();
    let rotated = store.stores().encrypt(after).build();
    let key = a.budget_key(&phone).await.unwrap();
    assert_eq!(rotated.budget_key(&phone).await.unwrap(), key, "rotation");
    // Another instance of the service counts under the same key.
    let other_instance = db.store().await.stores().build();
    assert_eq!(other_instance.budget_key(&phone).await.unwrap(), key);
    // Another number, another key; another database, another secret.
    let other = wa_pairing_phone::parse("+6281234567891").unwrap();
    assert_ne!(a.budget_key(&other).await.unwrap(), key);
    let elsewhere = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("budget keys", &why),
    };
    let there = elsewhere.store().await.stores().build();
    assert_ne!(there.budget_key(&phone).await.unwrap(), key);
    drop((store, there));
    db.cleanup()().await;
    elsewhere.cleanup()().await;
}
