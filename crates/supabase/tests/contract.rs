//! Contract tests: for every operation, the exact request the store sends to PostgREST and
//! how it reads PostgREST's answers, with canned responses in the shapes PostgREST
//! documents (<https://docs.postgrest.org/en/v12/>; the section is named beside each
//! fixture). PostgREST itself is not available here; the live suite (`tests/live.rs`) runs
//! against a real project when one is configured.
#![allow(missing_docs)]

use std::time::Duration;

use serde_json::{Value, json};
use wa_pairing_sql::DEVICE_COLUMNS;
use wa_pairing_store::retry::Classify as _;
use wa_pairing_store::{
    AuthStateStore, BudgetConfig, BudgetDecision, BudgetKeyer, ClaimRequest, DeviceId,
    DeviceStatus, DeviceStore, DeviceUpdate, ErrorKind, Fence, Lease, NewDevice, PairingBudget,
    PairingRequest, UserId,
};
use wa_pairing_supabase::{SupabaseConfig, SupabaseStore};
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{Mock, MockServer, ResponseTemplate};

const SECRET: &str = "sb_secret_contract_test_key";
const DEVICE: &str = "6f1c1c3e-8f7a-4c55-9c1e-3b2f0a9d8e11";
const SKIPPED: &str = "0b7d4f4e-2c1a-4c55-9c1e-3b2f0a9d8e12";
const USER: &str = "0b9d6a0e-2a43-4c3e-9a57-5f1b2f0c7d22";

fn store_for(server: &MockServer, key: &str) -> SupabaseStore {
    SupabaseConfig::new(server.uri(), key)
        .timeout(Duration::from_millis(500))
        .build()
        .unwrap()
}

fn store(server: &MockServer) -> SupabaseStore {
    store_for(server, SECRET)
}

fn id() -> DeviceId {
    DEVICE.parse().unwrap()
}

fn lease(fence: i64) -> Lease {
    Lease {
        device_id: id(),
        owner: "runner-1".into(),
        fence: Fence(fence),
        expires_at: chrono::Utc::now(),
    }
}

/// A `devices` row as PostgREST serialises it ("API > Tables and Views > Read": an array of
/// objects; timestamps as PostgreSQL's JSON text, bigint as a number, NULL as null).
fn row(status: &str) -> Value {
    json!({
        "id": DEVICE,
        "user_id": USER,
        "device_name": "Toko HP",
        "status": status,
        "phone_number": null,
        "connection_method": "pairing",
        "phone_for_pairing": "6281234567890",
        "pairing_code": "ABCD-EFGH",
        "pairing_code_expires_at": "2026-11-24T10:03:00.123456+00:00",
        "qr_code": null,
        "error_message": null,
        "retry_after": null,
        "last_connected_at": null,
        "lease_owner": "runner-1",
        "lease_expires_at": "2026-11-24T10:00:30+00:00",
        "lease_fence": 7,
        "created_at": "2026-11-24T09:59:00+00:00",
        "updated_at": "2026-11-24T10:00:00+00:00"
    })
}

/// PostgREST's error body ("Errors": `code`, `message`, `details`, `hint`).
fn error(status: u16, code: &str, message: &str) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(json!({
        "code": code, "message": message, "details": null, "hint": null
    }))
}

fn rpc(function: &str) -> wiremock::MockBuilder {
    Mock::given(method("POST"))
        .and(path(format!("/rest/v1/rpc/{function}")))
        .and(header("apikey", SECRET))
        .and(header("content-type", "application/json"))
}

// ------------------------------------------------------------------ requests and answers

#[tokio::test]
async fn create_inserts_one_row_and_asks_for_it_back() {
    let server = MockServer::start().await;
    // "Tables and Views > Insert" with `Prefer: return=representation` answers 201 and the row.
    Mock::given(method("POST"))
        .and(path("/rest/v1/devices"))
        .and(query_param("select", DEVICE_COLUMNS))
        .and(header("prefer", "return=representation"))
        .and(header("apikey", SECRET))
        .and(body_json(json!({
            "user_id": USER, "device_name": "Toko HP", "status": "disconnected",
            "connection_method": "pairing"
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!([row("disconnected")])))
        .expect(1)
        .mount(&server)
        .await;
    let d = store(&server)
        .create(NewDevice::new(
            USER.parse::<UserId>().unwrap(),
            "  Toko HP ",
        ))
        .await
        .unwrap();
    assert_eq!(d.id, id());
    assert_eq!(d.lease_fence, Fence(7));
    assert_eq!(d.pairing_code.unwrap().to_string(), "ABCD-EFGH");
}

#[tokio::test]
async fn get_filters_by_id_and_an_empty_answer_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/devices"))
        .and(query_param("select", DEVICE_COLUMNS))
        .and(query_param("id", format!("eq.{DEVICE}")))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([row("connected")])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let s = store(&server);
    assert_eq!(
        DeviceStore::get(&s, id()).await.unwrap().status,
        DeviceStatus::Connected
    );
    // "Tables and Views > Read": no matching row is 200 with an empty array.
    Mock::given(method("GET"))
        .and(path("/rest/v1/devices"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let e = DeviceStore::get(&s, id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert!(e.message().contains(DEVICE));
}

#[tokio::test]
async fn list_filters_by_owner_in_creation_order() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .and(path("/rest/v1/devices"))
        .and(query_param("user_id", format!("eq.{USER}")))
        .and(query_param("order", "created_at.asc,id.asc"))
        .respond_with(
            ResponseTemplate::new(200).set_body_json(json!([row("connected"), row("failed")])),
        )
        .expect(1)
        .mount(&server)
        .await;
    let list = store(&server)
        .list_for_user(USER.parse().unwrap())
        .await
        .unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(list[1].status, DeviceStatus::Failed);
}

#[tokio::test]
async fn owner_actions_call_their_functions() {
    let server = MockServer::start().await;
    // "Functions > Calling functions with a single row result": a function returning one
    // composite answers with an object, not an array.
    rpc("wa_start_pairing")
        .and(query_param("select", DEVICE_COLUMNS))
        .and(body_json(json!({
            "p_device_id": DEVICE, "p_method": "pairing", "p_phone": "6281234567890"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(row("connecting")))
        .expect(1)
        .mount(&server)
        .await;
    // A QR pairing leaves `p_phone` out (the two-argument overload) rather than sending a JSON
    // null, which not every PostgREST-compatible server passes as NULL.
    rpc("wa_start_pairing")
        .and(body_json(json!({"p_device_id": DEVICE, "p_method": "qr"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(row("connecting")))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_refresh_pairing")
        .and(body_json(json!({"p_device_id": DEVICE})))
        .respond_with(ResponseTemplate::new(200).set_body_json(row("connecting")))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_stop_device")
        .and(body_json(json!({"p_device_id": DEVICE})))
        .respond_with(ResponseTemplate::new(200).set_body_json(row("disconnected")))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_resume_device")
        .and(body_json(json!({"p_device_id": DEVICE})))
        .respond_with(ResponseTemplate::new(200).set_body_json(row("connected")))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_unlink_device")
        .and(body_json(json!({"p_device_id": DEVICE})))
        .respond_with(ResponseTemplate::new(200).set_body_json(row("unlinking")))
        .expect(1)
        .mount(&server)
        .await;
    let s = store(&server);
    let phone = wa_pairing_phone::parse("0812-3456-7890").unwrap();
    let d = s
        .start_pairing(id(), PairingRequest::Code { phone })
        .await
        .unwrap();
    assert_eq!(d.status, DeviceStatus::Connecting);
    s.start_pairing(id(), PairingRequest::Qr).await.unwrap();
    s.refresh(id()).await.unwrap();
    assert_eq!(
        s.disconnect(id()).await.unwrap().status,
        DeviceStatus::Disconnected
    );
    assert_eq!(
        s.resume(id()).await.unwrap().status,
        DeviceStatus::Connected
    );
    assert_eq!(
        s.unlink(id()).await.unwrap().status,
        DeviceStatus::Unlinking
    );
}

#[tokio::test]
async fn delete_asks_for_the_deleted_id_and_nothing_deleted_is_not_found() {
    let server = MockServer::start().await;
    Mock::given(method("DELETE"))
        .and(path("/rest/v1/devices"))
        .and(query_param("id", format!("eq.{DEVICE}")))
        .and(query_param("select", "id"))
        .and(header("prefer", "return=representation"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": DEVICE}])))
        .up_to_n_times(1)
        .mount(&server)
        .await;
    let s = store(&server);
    DeviceStore::delete(&s, id()).await.unwrap();
    Mock::given(method("DELETE"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    assert_eq!(
        DeviceStore::delete(&s, id()).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

/// A paced claim names the resume limit, so PostgREST picks the five-argument form.
#[tokio::test]
async fn a_paced_claim_sends_its_resume_limit() {
    let server = MockServer::start().await;
    rpc("wa_claim_devices")
        .and(query_param("select", DEVICE_COLUMNS))
        .and(body_json(json!({
            "p_owner": "runner-1", "p_limit": 25, "p_lease_seconds": 30.0, "p_skip": [],
            "p_resume_limit": 4
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([row("connected")])))
        .expect(1)
        .mount(&server)
        .await;
    let claimed = store(&server)
        .claim(&ClaimRequest::new("runner-1", 25, Duration::from_secs(30)).resume_limit(4))
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].device.status, DeviceStatus::Connected);
}

#[tokio::test]
async fn claim_renew_and_release_go_through_the_lease_functions() {
    let server = MockServer::start().await;
    // "Functions > Functions that return a table": an array of rows.
    rpc("wa_claim_devices")
        .and(query_param("select", DEVICE_COLUMNS))
        .and(body_json(
            json!({"p_owner": "runner-1", "p_limit": 25, "p_lease_seconds": 30.0, "p_skip": [SKIPPED]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([row("connecting")])))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_renew_leases")
        .and(body_json(json!({
            "p_owner": "runner-1", "p_device_ids": [DEVICE], "p_fences": [7],
            "p_lease_seconds": 30.0
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([
            {"device_id": DEVICE, "lease_fence": 7, "lease_expires_at": "2026-11-24T10:01:00+00:00"}
        ])))
        .expect(1)
        .mount(&server)
        .await;
    // "Functions > Scalar functions": a boolean answers as a bare JSON value.
    rpc("wa_release_lease")
        .and(body_json(json!({"p_device_id": DEVICE, "p_fence": 7})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(true)))
        .expect(1)
        .mount(&server)
        .await;
    let s = store(&server);
    let claimed = s
        .claim(
            &ClaimRequest::new("runner-1", 25, Duration::from_secs(30))
                .skip([SKIPPED.parse::<DeviceId>().unwrap()]),
        )
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert_eq!(claimed[0].lease.fence, Fence(7));
    assert_eq!(claimed[0].lease.owner, "runner-1");
    let renewed = s
        .renew(
            "runner-1",
            &[claimed[0].lease.clone()],
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(
        renewed[0].expires_at.to_rfc3339(),
        "2026-11-24T10:01:00+00:00"
    );
    assert!(s.release(&claimed[0].lease).await.unwrap());
    // Nothing to do means no request at all.
    assert!(
        s.claim(&ClaimRequest::new("runner-1", 0, Duration::from_secs(30)))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.renew("runner-1", &[], Duration::from_secs(30))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn a_fenced_update_sends_only_the_touched_columns() {
    let server = MockServer::start().await;
    rpc("wa_update_device")
        .and(body_json(json!({
            "p_device_id": DEVICE, "p_fence": 7,
            "p_patch": {"status": "failed", "error_message": "WhatsApp refused", "pairing_code": null, "pairing_code_expires_at": null}
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(row("failed")))
        .expect(1)
        .mount(&server)
        .await;
    let update = DeviceUpdate::status(DeviceStatus::Failed)
        .error("WhatsApp refused")
        .clear_pairing_code();
    let d = store(&server).update(&lease(7), update).await.unwrap();
    assert_eq!(d.status, DeviceStatus::Failed);
}

#[tokio::test]
async fn auth_state_bytes_travel_as_hex_bytea_byte_for_byte() {
    let server = MockServer::start().await;
    let all: Vec<u8> = (0..=255).collect();
    let hex = all.iter().fold(String::from("\\x"), |mut s, b| {
        use std::fmt::Write as _;
        let _ = write!(s, "{b:02x}");
        s
    });
    rpc("wa_auth_put")
        .and(body_json(json!({
            "p_device_id": DEVICE, "p_fence": 7,
            "p_keys": ["a", "b"], "p_values": [hex, "\\x"]
        })))
        // "Functions > Void functions": 204 and no body.
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    // "Functions > Scalar functions": a bytea answers as PostgreSQL's hex text.
    rpc("wa_auth_get")
        .and(body_json(json!({"p_device_id": DEVICE, "p_key": "a"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(hex)))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_auth_get")
        .and(body_json(
            json!({"p_device_id": DEVICE, "p_key": "missing"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(Value::Null))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_auth_scan")
        .and(body_json(json!({"p_device_id": DEVICE, "p_prefix": "a"})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"key": "a", "value": hex}])))
        .expect(1)
        .mount(&server)
        .await;
    let s = store(&server);
    // A key given twice keeps its last value; the empty value survives too.
    s.put_many(
        id(),
        Fence(7),
        &[
            ("a".into(), vec![1]),
            ("b".into(), vec![]),
            ("a".into(), all.clone()),
        ],
    )
    .await
    .unwrap();
    assert_eq!(
        AuthStateStore::get(&s, id(), "a").await.unwrap(),
        Some(all.clone())
    );
    assert_eq!(
        AuthStateStore::get(&s, id(), "missing").await.unwrap(),
        None
    );
    assert_eq!(
        s.scan_prefix(id(), "a").await.unwrap(),
        vec![("a".to_owned(), all)]
    );
}

#[tokio::test]
async fn auth_state_deletes_are_fenced() {
    let server = MockServer::start().await;
    rpc("wa_auth_delete")
        .and(body_json(
            json!({"p_device_id": DEVICE, "p_fence": 7, "p_keys": ["k1", "k2"]}),
        ))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_auth_delete_prefix")
        .and(body_json(
            json!({"p_device_id": DEVICE, "p_fence": 7, "p_prefix": "session/"}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(3)))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_auth_clear")
        .and(body_json(json!({"p_device_id": DEVICE, "p_fence": 7})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let s = store(&server);
    s.delete_many(id(), Fence(7), &["k1".into(), "k2".into()])
        .await
        .unwrap();
    assert_eq!(
        s.delete_prefix(id(), Fence(7), "session/").await.unwrap(),
        3
    );
    s.clear(id(), Fence(7)).await.unwrap();
    // Bad keys are refused before any request.
    let e = s.put(id(), Fence(7), "", b"x").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidInput);
}

#[tokio::test]
async fn there_is_no_change_feed() {
    let server = MockServer::start().await;
    assert!(store(&server).subscribe().await.unwrap().is_none());
}

// ------------------------------------------------------------------ keys

#[tokio::test]
async fn a_secret_key_goes_in_apikey_alone_and_a_jwt_also_as_bearer() {
    use base64::Engine as _;
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&server)
        .await;
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    let jwt = format!(
        "{}.{}.sig",
        enc(r#"{"alg":"HS256"}"#),
        enc(r#"{"role":"service_role"}"#)
    );
    store(&server)
        .list_for_user(UserId::random())
        .await
        .unwrap();
    store_for(&server, &jwt)
        .list_for_user(UserId::random())
        .await
        .unwrap();
    let requests = server.received_requests().await.unwrap();
    assert_eq!(requests.len(), 2);
    assert_eq!(requests[0].headers.get("apikey").unwrap(), SECRET);
    assert!(requests[0].headers.get("authorization").is_none());
    assert_eq!(requests[1].headers.get("apikey").unwrap(), jwt.as_str());
    assert_eq!(
        requests[1].headers.get("authorization").unwrap(),
        format!("Bearer {jwt}").as_str()
    );
}

// ------------------------------------------------------------------ redirects

/// A JWT service key (sent as `apikey` and `Authorization: Bearer`), so both headers are
/// checked.
fn service_role_jwt() -> String {
    use base64::Engine as _;
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!(
        "{}.{}.sig",
        enc(r#"{"alg":"HS256"}"#),
        enc(r#"{"role":"service_role","ref":"redirect-test"}"#)
    )
}

#[tokio::test]
async fn a_redirect_is_never_followed_and_the_key_never_reaches_its_target() {
    // The target answers everything with success, so a client that follows the redirect
    // succeeds and hands the target its key.
    let target = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([row("connected")])))
        .mount(&target)
        .await;
    let mut answers = Vec::new();
    for key in [SECRET.to_owned(), service_role_jwt()] {
        for status in [301, 302, 303, 307, 308] {
            let origin = MockServer::start().await;
            let to = target.uri();
            Mock::given(wiremock::matchers::any())
                .respond_with(move |req: &wiremock::Request| {
                    ResponseTemplate::new(status)
                        .insert_header("location", format!("{to}{}", req.url.path()))
                })
                .mount(&origin)
                .await;
            let s = store_for(&origin, &key);
            // One call per request shape: GET, POST and DELETE on the table, POST to `rpc`.
            let results = [
                DeviceStore::get(&s, id()).await.map(drop),
                s.create(NewDevice::new(UserId::random(), "x"))
                    .await
                    .map(drop),
                DeviceStore::delete(&s, id()).await,
                s.claim(&ClaimRequest::new("r", 1, Duration::from_secs(30)))
                    .await
                    .map(drop),
                s.put(id(), Fence(7), "k", b"v").await,
            ];
            // Each call was one request to the origin: not retried.
            assert_eq!(origin.received_requests().await.unwrap().len(), 5);
            answers.extend(results.map(|r| (key.clone(), status, r)));
        }
    }

    let reached = target.received_requests().await.unwrap();
    let with_key = reached
        .iter()
        .filter(|r| r.headers.contains_key("apikey") || r.headers.contains_key("authorization"))
        .count();
    assert_eq!(
        with_key, 0,
        "the redirect's target received the key {with_key} times"
    );
    assert!(
        reached.is_empty(),
        "the redirect was followed {} times",
        reached.len()
    );
    for (key, status, result) in answers {
        let e = result.expect_err("a redirect is an error");
        assert_eq!(e.kind(), ErrorKind::Configuration, "{status}: {e}");
        assert!(!e.verdict().is_retryable(), "{status}: {e}");
        assert!(e.message().contains("redirect"), "{e}");
        assert!(e.message().contains("SUPABASE_URL"), "{e}");
        assert!(e.message().contains("https://"), "{e}");
        assert!(!format!("{e} {e:?}").contains(&key), "the key leaked: {e}");
    }
}

// ------------------------------------------------------------------ errors

#[tokio::test]
async fn pgrst116_is_not_found() {
    let server = MockServer::start().await;
    // "Errors > PostgREST error codes": PGRST116, 406, no rows for a single object.
    rpc("wa_stop_device")
        .respond_with(error(
            406,
            "PGRST116",
            "JSON object requested, multiple (or no) rows returned",
        ))
        .mount(&server)
        .await;
    let e = store(&server).disconnect(id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn our_sqlstates_keep_their_meaning_over_http() {
    let server = MockServer::start().await;
    // "Errors > SQLSTATE to HTTP": a raised custom SQLSTATE answers 400 with that code.
    rpc("wa_update_device")
        .respond_with(error(400, "WAL01", "the lease is no longer held"))
        .mount(&server)
        .await;
    rpc("wa_auth_put")
        .respond_with(error(400, "WAL01", "the lease is no longer held"))
        .mount(&server)
        .await;
    rpc("wa_start_pairing")
        .respond_with(error(400, "WAT01", "cannot start pairing while connected"))
        .mount(&server)
        .await;
    let s = store(&server);
    let e = s.update(&lease(6), DeviceUpdate::new()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
    assert!(!e.verdict().is_retryable());
    let e = s.put(id(), Fence(6), "k", b"v").await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::LeaseLost);
    let e = s.start_pairing(id(), PairingRequest::Qr).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::InvalidTransition);
    assert!(e.message().contains("cannot start pairing"));
}

#[tokio::test]
async fn a_duplicate_is_a_permanent_conflict() {
    let server = MockServer::start().await;
    // "Errors > SQLSTATE to HTTP": 23505 unique_violation answers 409.
    Mock::given(method("POST"))
        .and(path("/rest/v1/devices"))
        .respond_with(error(
            409,
            "23505",
            "duplicate key value violates unique constraint \"devices_pkey\"",
        ))
        .mount(&server)
        .await;
    let e = store(&server)
        .create(NewDevice::new(UserId::random(), "x"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(!e.verdict().is_retryable());
}

#[tokio::test]
async fn an_expired_key_says_which_setting_to_fix_and_never_echoes_it() {
    let server = MockServer::start().await;
    // "Errors > PostgREST error codes": PGRST301 with 401 for a JWT that expired.
    Mock::given(method("GET"))
        .respond_with(error(401, "PGRST301", "JWT expired"))
        .mount(&server)
        .await;
    let e = DeviceStore::get(&store(&server), id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PermissionDenied);
    assert!(!e.verdict().is_retryable());
    assert!(e.message().contains("SUPABASE_SERVICE_ROLE_KEY"), "{e}");
    assert!(e.message().contains("JWT expired"), "{e}");
    assert!(!format!("{e} {e:?}").contains(SECRET));
}

#[tokio::test]
async fn a_lost_database_connection_is_retryable() {
    let server = MockServer::start().await;
    // "Errors > SQLSTATE to HTTP": class 08 (connection exception) answers 503.
    rpc("wa_claim_devices")
        .respond_with(error(503, "08006", "connection failure"))
        .mount(&server)
        .await;
    rpc("wa_renew_leases")
        .respond_with(error(500, "XX000", "internal error"))
        .mount(&server)
        .await;
    let s = store(&server);
    let e = s
        .claim(&ClaimRequest::new("r", 1, Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.verdict().is_retryable());
    let e = s
        .renew("r", &[lease(1)], Duration::from_secs(30))
        .await
        .unwrap_err();
    assert!(e.verdict().is_retryable(), "any 5xx is worth a retry: {e}");
}

#[tokio::test]
async fn a_rate_limit_keeps_the_gateways_wait() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(429).insert_header("retry-after", "12"))
        .mount(&server)
        .await;
    let e = DeviceStore::get(&store(&server), id()).await.unwrap_err();
    assert_eq!(e.verdict().retry_after(), Some(Duration::from_secs(12)));
}

#[tokio::test]
async fn a_missing_function_says_to_apply_the_migrations() {
    let server = MockServer::start().await;
    // "Errors > PostgREST error codes": PGRST202, 404, function not in the schema cache.
    rpc("wa_claim_devices")
        .respond_with(error(
            404,
            "PGRST202",
            "Could not find the function public.wa_claim_devices",
        ))
        .mount(&server)
        .await;
    let e = store(&server)
        .claim(&ClaimRequest::new("r", 1, Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Configuration);
    assert!(e.message().contains("supabase db push"), "{e}");
}

#[tokio::test]
async fn a_slow_answer_times_out_and_may_be_retried() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(
            ResponseTemplate::new(200)
                .set_body_json(json!([]))
                .set_delay(Duration::from_secs(5)),
        )
        .mount(&server)
        .await;
    let e = DeviceStore::get(&store(&server), id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.verdict().is_retryable());
}

#[tokio::test]
async fn malformed_json_is_a_clear_error_not_a_panic() {
    let server = MockServer::start().await;
    Mock::given(method("GET"))
        .respond_with(ResponseTemplate::new(200).set_body_string("[{\"id\": "))
        .mount(&server)
        .await;
    rpc("wa_claim_devices")
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": "not a uuid"}])))
        .mount(&server)
        .await;
    let s = store(&server);
    let e = DeviceStore::get(&s, id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Backend);
    assert!(e.message().contains("cannot read"), "{e}");
    let e = s
        .claim(&ClaimRequest::new("r", 1, Duration::from_secs(30)))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Corrupt);
}

#[tokio::test]
async fn nobody_listening_is_unavailable() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let s = SupabaseConfig::new(format!("http://{addr}"), SECRET)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let e = DeviceStore::get(&s, id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unavailable);
    assert!(e.verdict().is_retryable());
    assert!(e.message().contains("SUPABASE_URL"), "{e}");
}

#[tokio::test]
async fn maintenance_and_the_budget_go_through_their_functions() {
    let server = MockServer::start().await;
    rpc("wa_auth_devices")
        // The first page leaves `p_after` out (the one-argument overload).
        .and(body_json(json!({"p_limit": 100})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([DEVICE])))
        .expect(1)
        .mount(&server)
        .await;
    // bytea travels as \x hex in both directions.
    rpc("wa_auth_replace")
        .and(body_json(json!({
            "p_device_id": DEVICE, "p_key": "k", "p_expected": "\\x6f6c64", "p_value": "\\x6e6577"
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(true)))
        .expect(1)
        .mount(&server)
        .await;
    let keyer = BudgetKeyer::new(b"secret");
    let key = keyer.key(&wa_pairing_phone::parse("+6281234567890").unwrap());
    rpc("wa_budget_acquire")
        .and(body_json(json!({
            "p_key": key.as_str(), "p_capacity": 3, "p_refill_seconds": 200.0
        })))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!(150.5)))
        .expect(1)
        .mount(&server)
        .await;
    let s = store(&server);
    assert_eq!(s.devices(None, 100).await.unwrap(), [id()]);
    assert!(s.replace(id(), "k", b"old", b"new").await.unwrap());
    assert_eq!(
        s.try_acquire(&key, &BudgetConfig::default()).await.unwrap(),
        BudgetDecision::Denied {
            retry_after: Duration::from_secs_f64(150.5)
        }
    );
}

#[tokio::test]
async fn sealing_companions_and_the_budget_secret_go_through_their_functions() {
    let server = MockServer::start().await;
    rpc("wa_auth_seal")
        .and(body_json(json!({"p_device_id": DEVICE, "p_fence": 7})))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    let companion = wa_pairing_store::CompanionKey::of_noise_key(&[7; 32]);
    rpc("wa_companion_register")
        .and(body_json(json!({
            "p_device_id": DEVICE, "p_fence": 7, "p_companion": companion.as_str()
        })))
        .respond_with(ResponseTemplate::new(204))
        .expect(1)
        .mount(&server)
        .await;
    rpc("wa_budget_secret")
        .and(body_json(json!({})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!("0123456789abcdef0123")))
        .expect(1)
        .mount(&server)
        .await;
    let s = store(&server);
    s.seal(id(), Fence(7)).await.unwrap();
    s.register_companion(id(), Fence(7), &companion)
        .await
        .unwrap();
    // Read once, on the first key a budget needs.
    let stores = s.stores().build();
    let phone = wa_pairing_phone::parse("+6281234567890").unwrap();
    let key = stores.budget_key(&phone).await.unwrap();
    assert_eq!(stores.budget_key(&phone).await.unwrap(), key);
    assert_eq!(
        key,
        BudgetKeyer::new(b"0123456789abcdef0123").key(&phone),
        "the database's secret"
    );
}

#[tokio::test]
async fn the_owners_pace_and_a_companion_elsewhere_keep_their_meaning_over_http() {
    let server = MockServer::start().await;
    rpc("wa_refresh_pairing")
        .respond_with(ResponseTemplate::new(400).set_body_json(json!({
            "code": "WAP01",
            "message": "too many pairing actions: try again in 9 s",
            "details": null,
            "hint": "9"
        })))
        .mount(&server)
        .await;
    rpc("wa_companion_register")
        .respond_with(error(
            400,
            "WAC01",
            &format!("this WhatsApp companion is already stored for device {SKIPPED}: unlink or delete that device first"),
        ))
        .mount(&server)
        .await;
    let s = store(&server);
    let e = s.refresh(id()).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited);
    assert_eq!(e.verdict().retry_after(), Some(Duration::from_secs(9)));
    assert_eq!(e.to_string(), "too many pairing actions: try again in 9 s");
    let companion = wa_pairing_store::CompanionKey::of_noise_key(&[7; 32]);
    let e = s
        .register_companion(id(), Fence(7), &companion)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Conflict);
    assert!(e.to_string().contains(SKIPPED), "{e}");
}
