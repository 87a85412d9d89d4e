//! The owner's disconnect, resume, unlink and delete, end to end with the real client, the
//! runner, PostgreSQL and the simulator: a disconnect keeps the link (resuming needs no new
//! code), an unlink removes the companion from the account and wipes its keys, and the API's
//! delete of a linked device unlinks it first.
#![allow(missing_docs)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use tower::ServiceExt as _;
use wa_pairing_e2e::{ISSUER, Stack, access_token};
use wa_pairing_http::{AuthConfig, HttpConfig, router};
use wa_pairing_store::{DeviceStatus, ErrorKind, PairingRequest};
use wa_pairing_store_testkit::skip;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn disconnect_keeps_the_link_resume_needs_no_code_and_unlink_removes_the_companion() {
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("owner actions e2e", &why),
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let runner = stack.runner(Stack::config("owner-actions"));
    let phone = "6281234500051";
    let d = stack.device(phone).await;
    let linked = stack.connected(d.id).await;
    let devices = stack.stores.devices();
    let auth = stack.stores.auth_state();
    let keys = auth.scan_prefix(d.id, "").await.unwrap().len();
    assert!(keys > 0, "the session's keys are stored");

    // Disconnect: the socket closes, the link stays.
    devices.disconnect(d.id).await.unwrap();
    let off = stack
        .until(d.id, "disconnected and released", |x| {
            x.status == DeviceStatus::Disconnected && x.lease_owner.is_none()
        })
        .await;
    assert_eq!(
        off.phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some(phone),
        "still linked"
    );
    assert!(stack.sim.phone(phone).is_linked());
    assert!(auth.scan_prefix(d.id, "").await.unwrap().len() >= keys);

    // Resume: logs in again from the stored keys, no code, no new pairing.
    let logins = stack.sim.counters().logins;
    devices.resume(d.id).await.unwrap();
    let back = stack
        .until(d.id, "resumed", |x| {
            x.status == DeviceStatus::Connected
                && x.lease_owner.is_some()
                && x.last_connected_at > linked.last_connected_at
        })
        .await;
    assert_eq!(
        back.phone_number
            .as_ref()
            .map(wa_pairing_store::phone::PhoneNumber::digits),
        Some(phone)
    );
    let counters = stack.sim.counters();
    assert!(counters.logins > logins, "logged in again");
    assert_eq!(counters.code_requests_for(phone), 1, "no new code");
    assert_eq!(counters.pairings, 1, "no new pairing");

    // Unlink: the companion is removed from the account and its keys are wiped.
    devices.unlink(d.id).await.unwrap();
    let gone = stack
        .until(d.id, "unlinked", |x| {
            x.status == DeviceStatus::Disconnected && x.phone_number.is_none()
        })
        .await;
    assert_eq!(
        gone.error_message, None,
        "WhatsApp was told: nothing to do on the phone"
    );
    let left: Vec<String> = auth
        .scan_prefix(d.id, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(left.is_empty(), "keys wiped: {left:?}");
    assert!(
        !stack.sim.phone(phone).is_linked(),
        "the simulator no longer knows the companion"
    );
    let err = devices.resume(d.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTransition);
    assert!(err.to_string().contains("start pairing"), "{err}");

    runner.shutdown().await;
    person.abort();
    db.drop().await;
}

/// Unlinks, each right after the session came up (while the client still writes its state),
/// many times in a row: each leaves no auth state behind, whatever the client was writing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_unlinks_in_a_row_leave_no_auth_state_behind() {
    const DEVICES: usize = 6;
    // Each round is one more pairing for each number and its owner: within the per-number
    // budget (3 by default) and the owner's pace (6 a minute).
    const ROUNDS: usize = 3;
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("many unlinks e2e", &why),
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let runner = stack.runner(Stack::config("many-unlinks"));
    let devices = stack.stores.devices();
    let auth = stack.stores.auth_state();
    let phones: Vec<String> = (0..DEVICES).map(|i| format!("62812345006{i}")).collect();
    let mut ids = Vec::new();
    for phone in &phones {
        ids.push(stack.device(phone).await.id);
    }
    let mut unlinks = 0;
    for round in 0..ROUNDS {
        for (id, phone) in ids.iter().zip(&phones) {
            if round > 0 {
                let number = wa_pairing_store::phone::parse(phone).unwrap();
                devices
                    .start_pairing(*id, PairingRequest::Code { phone: number })
                    .await
                    .unwrap();
            }
            stack.connected(*id).await;
        }
        // All at once, while each client is still busy after its login.
        for id in &ids {
            devices.unlink(*id).await.unwrap();
        }
        for (id, phone) in ids.iter().zip(&phones) {
            stack
                .until(*id, "unlinked and released", |x| {
                    x.status == DeviceStatus::Disconnected
                        && x.phone_number.is_none()
                        && x.lease_owner.is_none()
                })
                .await;
            let left: Vec<String> = auth
                .scan_prefix(*id, "")
                .await
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert!(left.is_empty(), "round {round}: keys left: {left:?}");
            assert!(
                !stack.sim.phone(phone).is_linked(),
                "round {round}: the companion was removed"
            );
            unlinks += 1;
        }
    }
    assert_eq!(unlinks, DEVICES * ROUNDS);
    // Nothing comes back later either (a flush that was still on its way).
    runner.shutdown().await;
    for id in &ids {
        assert!(auth.scan_prefix(*id, "").await.unwrap().is_empty());
    }
    person.abort();
    db.drop().await;
}

/// The API's delete of a linked device logs the companion out of the account first (the
/// simulator counts one device removal, the phone no longer lists it), then removes the row
/// and its keys. A plain delete of the row (what an end user's delete through Supabase did
/// before the database refused it) removes nothing at WhatsApp: the phone keeps listing the
/// companion.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_api_delete_of_a_linked_device_logs_the_companion_out_first() {
    const SECRET: &str = "owner-actions-e2e-jwt-secret-0123456789";
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("API delete e2e", &why),
    };
    let stack = Stack::start(stores).await;
    let person = stack.person();
    let runner = stack.runner(Stack::config("api-delete"));
    let devices = stack.stores.devices();
    let auth = stack.stores.auth_state();
    let app = router(
        &stack.stores,
        HttpConfig::new(AuthConfig::new(ISSUER).hs256(SECRET)),
    );

    // A plain row delete: the socket closes and the keys go, WhatsApp is never told.
    let plain = "6281234500081";
    let d = stack.device(plain).await;
    stack.connected(d.id).await;
    let before = stack.sim.counters().device_removals;
    devices.delete(d.id).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_secs(2)).await;
    assert_eq!(
        stack.sim.counters().device_removals,
        before,
        "a plain delete removes no companion"
    );
    assert!(
        stack.sim.phone(plain).is_linked(),
        "the phone still lists it"
    );

    // The API's delete of a linked device.
    let phone = "6281234500082";
    let d = stack.device(phone).await;
    stack.connected(d.id).await;
    assert!(!auth.scan_prefix(d.id, "").await.unwrap().is_empty());
    let before = stack.sim.counters().device_removals;
    let res = app
        .clone()
        .oneshot(
            Request::delete(format!("/api/devices/{}", d.id))
                .header(
                    header::AUTHORIZATION,
                    format!("Bearer {}", access_token(SECRET, d.user_id)),
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED, "unlinking first");
    let end = tokio::time::Instant::now() + wa_pairing_e2e::DEADLINE;
    loop {
        match devices.get(d.id).await {
            Err(e) if e.kind() == ErrorKind::NotFound => break,
            Ok(x) => assert!(
                tokio::time::Instant::now() < end,
                "the device was never deleted: {x:?}"
            ),
            Err(e) => panic!("{e}"),
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        stack.sim.counters().device_removals,
        before + 1,
        "the companion was logged out of the account"
    );
    assert!(
        !stack.sim.phone(phone).is_linked(),
        "the phone no longer lists it"
    );
    assert!(
        auth.scan_prefix(d.id, "").await.unwrap().is_empty(),
        "keys wiped"
    );

    runner.shutdown().await;
    person.abort();
    db.drop().await;
}
