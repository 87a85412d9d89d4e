//! Row-level security as Supabase's end-user roles see it: `authenticated` users A and B,
//! and `anon`, against the migrations' policies and grants.

mod common;

use common::TestDb;
use tokio_postgres::NoTls;
use wa_pairing_store::testkit::skip;
use wa_pairing_store::{DeviceStore, NewDevice, PairingRequest, UserId};

async fn as_role(url: &str, role: &str, user: Option<UserId>) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("set role {role}"))
        .await
        .unwrap();
    if let Some(u) = user {
        client
            .batch_execute(&format!("set request.jwt.claim.sub = '{u}'"))
            .await
            .unwrap();
    }
    client
}

fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_owned())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn end_users_see_and_change_only_their_own_devices() {
    let db = match TestDb::create().await {
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
        .claim("runner", 10, std::time::Duration::from_secs(60))
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
