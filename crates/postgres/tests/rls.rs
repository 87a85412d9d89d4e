//! Row-level security as Supabase's end-user roles see it: `authenticated` users A and B,
//! and `anon`, against the migrations' policies and grants.

mod common;

use common::Store as _;
use common::{as_role, code};
use wa_pairing_store::{DeviceStore, NewDevice, PairingRequest, UserId};
use wa_pairing_store_testkit::skip;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_see_and_change_only_their_own_devices() {
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("rls", &why),
    };
    let store = db.store().await;
    let (a, b) = (UserId::random(), UserId::random());
    let mine = store.create(NewDevice::new(a, "A's phone")).await.unwrap();
    let theirs = store.create(NewDevice::new(b, "B's phone")).await.unwrap();
    store
        .start_pairing(theirs.id, PairingRequest::Qr)
        .await
        .unwrap();
    let claimed = store
        .claim(&wa_pairing_store::ClaimRequest::new(
            "runner",
            10,
            std::time::Duration::from_secs(60),
        ))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    wa_pairing_store::AuthStateStore::put(
        &store,
        theirs.id,
        claimed[0].lease.fence,
        "identity",
        b"secret",
    )
    .await
    .unwrap();

    let user_a = as_role(&db.url, "authenticated", Some(a)).await;
    // Sees only their own rows.
    let rows = user_a
        .query("select id from public.devices", &[])
        .await
        .unwrap();
    let ids: Vec<uuid::Uuid> = rows.iter().map(|r| r.get(0)).collect();
    assert_eq!(ids, [mine.id.0]);
    // Cannot read the legacy session data, lease columns are readable only through the API.
    let e = user_a
        .query("select session_data from public.devices", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    let e = user_a
        .query("select lease_owner from public.devices", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    // No access at all to auth state.
    let e = user_a
        .query("select * from public.device_auth_state", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    // Cannot change another user's device (invisible: zero rows), nor lease columns.
    let n = user_a
        .execute(
            "update public.devices set status = 'disconnected' where id = $1",
            &[&theirs.id.0],
        )
        .await
        .unwrap();
    assert_eq!(n, 0);
    let e = user_a
        .execute(
            "update public.devices set lease_owner = 'me' where id = $1",
            &[&mine.id.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    // Creates devices for themselves only.
    user_a
        .execute(
            "insert into public.devices (user_id, device_name) values ($1, 'second')",
            &[&a.0],
        )
        .await
        .unwrap();
    let e = user_a
        .execute(
            "insert into public.devices (user_id, device_name) values ($1, 'forged')",
            &[&b.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    // Starts pairing on their own device the original frontend's way; the trigger applies
    // the owner-action rules.
    let n = user_a
        .execute(
            "update public.devices set status = 'connecting', phone_for_pairing = '6281234567890' where id = $1",
            &[&mine.id.0],
        )
        .await
        .unwrap();
    assert_eq!(n, 1);
    let d = store.get(mine.id).await.unwrap();
    assert_eq!(d.status, wa_pairing_store::DeviceStatus::Connecting);
    assert_eq!(d.lease_fence.0, 1, "the end user's start revoked any lease");
    // Cannot jump to a runner's status.
    let e = user_a
        .execute(
            "update public.devices set status = 'connected' where id = $1",
            &[&mine.id.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAT01");
    // Cannot call the service's functions.
    let e = user_a
        .query("select * from public.wa_claim_devices('me', 10, 60)", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");

    // User B sees only B's device; anon sees nothing at all.
    let user_b = as_role(&db.url, "authenticated", Some(b)).await;
    let rows = user_b
        .query("select id from public.devices", &[])
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    let anon = as_role(&db.url, "anon", None).await;
    let e = anon
        .query("select id from public.devices", &[])
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    // The service role does everything.
    let service = as_role(&db.url, "service_role", None).await;
    let rows = service
        .query("select count(*) from public.device_auth_state", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1);
    drop((user_a, user_b, anon, service, store));
    db.cleanup()().await;
}

/// An end user's plain writes (the original frontend's `update devices set ...` through
/// supabase-js) meet the same rules as the API: WhatsApp's throttle window, the number's
/// shape, the name's length, the device cap, and the owner's actions (resume, unlink).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_write_under_the_owners_rules() {
    use wa_pairing_store::{ClaimRequest, DeviceStatus, DeviceUpdate};
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("rls", &why),
    };
    let store = db.store().await;
    let me = UserId::random();
    let user = as_role(&db.url, "authenticated", Some(me)).await;
    let d = store.create(NewDevice::new(me, "Shop")).await.unwrap();
    let set = |sql: &'static str| {
        let user = &user;
        let id = d.id.0;
        async move { user.execute(sql, &[&id]).await }
    };

    // WhatsApp throttled this number: starting again is refused until retry_after.
    store
        .start_pairing(
            d.id,
            PairingRequest::Code {
                phone: wa_pairing_phone::parse("+6281234567890").unwrap(),
            },
        )
        .await
        .unwrap();
    let c = store
        .claim(&ClaimRequest::new(
            "r",
            10,
            std::time::Duration::from_secs(60),
        ))
        .await
        .unwrap()
        .remove(0);
    store
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Failed)
                .retry_after(chrono::Utc::now() + chrono::TimeDelta::minutes(30)),
        )
        .await
        .unwrap();
    let e = set("update public.devices set status = 'connecting' where id = $1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAR01", "{e:?}");
    assert_eq!(
        store.get(d.id).await.unwrap().status,
        DeviceStatus::Failed,
        "the refused start changed nothing"
    );
    // ... and disconnecting is still allowed.
    set("update public.devices set status = 'disconnected' where id = $1")
        .await
        .unwrap();

    // The number: formatted input is normalised, local or absurd input refused.
    let e = set("update public.devices set phone_for_pairing = '0812 3456 7890' where id = $1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAI03", "a refused number");
    let e = user
        .execute(
            "update public.devices set phone_for_pairing = repeat('9', 5000) where id = $1",
            &[&d.id.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAI03", "a refused number");
    set("update public.devices set phone_for_pairing = '+44 7911-123456' where id = $1")
        .await
        .unwrap();
    assert_eq!(
        store
            .get(d.id)
            .await
            .unwrap()
            .phone_for_pairing
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some("447911123456")
    );

    // The name: 1 to 100 characters, no control characters, on insert and update.
    let e = user
        .execute(
            "update public.devices set device_name = repeat('x', 200000) where id = $1",
            &[&d.id.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAI02", "a refused name");
    let e = user
        .execute(
            "insert into public.devices (user_id, device_name) values ($1, '   ')",
            &[&me.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAI02", "a refused name");

    // Resume needs a linked device; unlink is always possible.
    let e = set("update public.devices set status = 'connected' where id = $1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAT01", "never linked: nothing to resume");
    set("update public.devices set status = 'unlinking' where id = $1")
        .await
        .unwrap();
    let after = store.get(d.id).await.unwrap();
    assert_eq!(after.status, DeviceStatus::Unlinking);
    assert!(after.lease_fence > c.lease.fence, "the lease was revoked");
    let e = set("update public.devices set status = 'waiting_pairing' where id = $1")
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAT01");

    // The device cap (20 by default, from wa_pairing_settings).
    for i in 1..wa_pairing_store::DEFAULT_MAX_DEVICES_PER_USER {
        user.execute(
            "insert into public.devices (user_id, device_name) values ($1, $2)",
            &[&me.0, &format!("d{i}")],
        )
        .await
        .unwrap();
    }
    let e = user
        .execute(
            "insert into public.devices (user_id, device_name) values ($1, 'one too many')",
            &[&me.0],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "WAQ01");
    // An end user cannot raise their own cap.
    let e = user
        .execute(
            "update public.wa_pairing_settings set value = '1000' where name = 'max_devices_per_user'",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    drop((user, store));
    db.cleanup()().await;
}

/// With Supabase's default privileges (every new function and table granted to `anon` and
/// `authenticated`), end-user roles still execute none of the service's functions and touch
/// none of the service's tables: the migration ledger, the budget.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_user_roles_reach_no_service_function_or_table() {
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("rls", &why),
    };
    let store = db.store().await;
    let admin = as_role(&db.url, "postgres", None).await;
    let functions: Vec<String> = admin
        .query(
            "select p.oid::regprocedure::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
              where n.nspname = 'public' and p.proname like 'wa\\_%'",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert!(functions.len() > 20, "{functions:?}");
    // Pure rule checks an end user's own write runs through (the trigger runs as them).
    let pure = [
        "wa_transition_refusal(text,text)",
        "wa_check_owner_action(devices,text)",
        "wa_apply_owner_action(devices,text,text,text)",
        "wa_device_name_check(text)",
        "wa_normalize_device_name(text)",
        "wa_normalize_phone(text)",
        // Runs as its owner and spends only the caller's own pairing starts.
        "wa_pace_acquire(uuid)",
    ];
    for role in ["anon", "authenticated"] {
        for f in &functions {
            let rows = admin
                .query(
                    "select has_function_privilege($1, $2, 'execute')",
                    &[&role, f],
                )
                .await
                .unwrap();
            let can: bool = rows[0].get(0);
            let allowed = role == "authenticated" && pure.iter().any(|p| f.ends_with(p));
            assert_eq!(can, allowed, "{role} on {f}");
        }
        for table in [
            "wa_pairing_migrations",
            "wa_pairing_budget",
            "device_auth_state",
            "wa_owner_pace",
            "device_companions",
            "wa_pairing_secrets",
        ] {
            for privilege in ["select", "insert", "update", "delete"] {
                let rows = admin
                    .query(
                        "select has_table_privilege($1, $2, $3)",
                        &[&role, &format!("public.{table}"), &privilege],
                    )
                    .await
                    .unwrap();
                let can: bool = rows[0].get(0);
                assert!(!can, "{role} may {privilege} {table}");
            }
        }
    }
    // As the role itself: a forged future migration version is refused.
    let anon = as_role(&db.url, "anon", None).await;
    let e = anon
        .execute(
            "insert into public.wa_pairing_migrations (version) values ('99999999999999_skip_me')",
            &[],
        )
        .await
        .unwrap_err();
    assert_eq!(code(&e), "42501");
    drop((anon, admin, store));
    db.cleanup()().await;
}

/// An end user's delete of a linked device is refused with what to do (unlink first): a
/// delete would wipe the keys and close the session but leave the companion listed on the
/// phone. Once unlinked (disconnected, no linked number) the same delete goes through; a
/// device that never linked is deleted at once; the service deletes as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_delete_a_linked_device_only_after_unlinking() {
    use wa_pairing_store::{ClaimRequest, DeviceStatus, DeviceUpdate, ErrorKind};
    let db = match common::test_db().await {
        Ok(db) => db,
        Err(why) => return skip("rls", &why),
    };
    let store = db.store().await;
    let me = UserId::random();
    let user = as_role(&db.url, "authenticated", Some(me)).await;
    let delete = |id: wa_pairing_store::DeviceId| {
        let user = &user;
        async move {
            let done = user
                .execute("delete from public.devices where id = $1", &[&id.0])
                .await;
            // A refused delete has locked the row (a row trigger runs on a locked row) until
            // its transaction is rolled back, which the server finishes after it has sent the
            // error: a claim that raced it skipped the locked row and claimed nothing (1 run
            // in 5). The next statement on this connection runs once the rollback is done.
            user.batch_execute("select 1")
                .await
                .expect("the connection is idle");
            done
        }
    };
    let claim = || async {
        store
            .claim(&ClaimRequest::new(
                "r",
                10,
                std::time::Duration::from_secs(60),
            ))
            .await
            .unwrap()
            .remove(0)
    };
    let number = wa_pairing_phone::parse("+6281234567890").unwrap();

    // Linked and connected: refused, the row stays.
    let linked = store.create(NewDevice::new(me, "Kasir")).await.unwrap();
    store
        .start_pairing(linked.id, PairingRequest::Qr)
        .await
        .unwrap();
    let c = claim().await;
    store
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Connected).phone_number(number.clone()),
        )
        .await
        .unwrap();
    let e = delete(linked.id).await.unwrap_err();
    assert_eq!(code(&e), "WAT01", "{e:?}");
    let message = e.as_db_error().map(|d| d.message().to_owned());
    assert!(
        message
            .as_deref()
            .is_some_and(|m| m.contains("unlink it first")),
        "{message:?}"
    );
    assert!(store.get(linked.id).await.is_ok(), "the row stays");

    // Disconnected but still linked: refused too.
    store.disconnect(linked.id).await.unwrap();
    let e = delete(linked.id).await.unwrap_err();
    assert_eq!(code(&e), "WAT01", "{e:?}");

    // Being unlinked: refused (the runner still needs the keys to log the companion out).
    user.execute(
        "update public.devices set status = 'unlinking' where id = $1",
        &[&linked.id.0],
    )
    .await
    .unwrap();
    let e = delete(linked.id).await.unwrap_err();
    assert_eq!(code(&e), "WAT01", "{e:?}");

    // The runner finished the unlink: the delete goes through.
    let c = claim().await;
    store
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Disconnected).clear_phone_number(),
        )
        .await
        .unwrap();
    assert_eq!(delete(linked.id).await.unwrap(), 1);
    assert_eq!(
        store.get(linked.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );

    // Never linked (a pairing that was abandoned): deleted at once.
    let fresh = store.create(NewDevice::new(me, "Gudang")).await.unwrap();
    store
        .start_pairing(fresh.id, PairingRequest::Code { phone: number })
        .await
        .unwrap();
    assert_eq!(delete(fresh.id).await.unwrap(), 1);

    // The service deletes a linked device as before (its API unlinks first).
    let theirs = store.create(NewDevice::new(me, "Toko")).await.unwrap();
    store
        .start_pairing(theirs.id, PairingRequest::Qr)
        .await
        .unwrap();
    let c = claim().await;
    store
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Connected)
                .phone_number(wa_pairing_phone::parse("+6281234567891").unwrap()),
        )
        .await
        .unwrap();
    store.delete(theirs.id).await.unwrap();
    drop((user, store));
    db.cleanup()().await;
}
