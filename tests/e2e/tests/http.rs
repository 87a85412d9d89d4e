//! The owner's whole journey through the HTTP API, with the runner and the real WhatsApp
//! client against the simulator: create a device, ask for a code, watch it arrive on the
//! event stream, type it on the phone, see "connected" arrive on the same stream.
#![allow(missing_docs)]

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use serde_json::{Value, json};
use tower::ServiceExt as _;
use wa_pairing_e2e::{Stack, access_token, until_event};
use wa_pairing_http::{AuthConfig, HttpConfig, router};
use wa_pairing_store::UserId;

const SECRET: &str = "e2e-jwt-secret-0123456789abcdef0123456789";

fn token(user: UserId) -> String {
    access_token(SECRET, user)
}

async fn call(
    app: &axum::Router,
    method: &str,
    uri: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .unwrap();
    let res = app.clone().oneshot(req).await.unwrap();
    let status = res.status();
    let bytes = res.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_links_a_phone_through_the_api_and_its_event_stream() {
    let stack = Stack::start(wa_pairing_e2e::memory()).await;
    let runner = stack.runner(Stack::config("http-e2e"));
    let app = router(
        &stack.stores,
        HttpConfig::new(AuthConfig::new(wa_pairing_e2e::ISSUER).hs256(SECRET)),
    );
    let owner = token(UserId::random());

    let (status, device) = call(
        &app,
        "POST",
        "/api/devices",
        &owner,
        json!({"device_name": "HP Kasir"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED);
    let id = device["id"].as_str().unwrap().to_owned();

    let req = Request::builder()
        .uri(format!("/api/devices/{id}/events?access_token={owner}"))
        .body(Body::empty())
        .unwrap();
    let mut events = app.clone().oneshot(req).await.unwrap().into_body();
    let mut buf = String::new();
    until_event(&mut events, &mut buf, "the first state", |v| {
        v["status"] == "disconnected"
    })
    .await;

    let (status, started) = call(
        &app,
        "POST",
        &format!("/api/devices/{id}/pairing"),
        &owner,
        json!({"phone_number": "+62 812-7777-0001"}),
    )
    .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");

    let shown = until_event(&mut events, &mut buf, "a pairing code", |v| {
        v["pairing_code"].is_string()
    })
    .await;
    let code = shown["pairing_code"].as_str().unwrap().to_owned();
    assert_eq!(code.len(), 9, "XXXX-XXXX: {code}");
    assert_eq!(shown["status"], "waiting_pairing");

    // The person types the code from the page on the phone.
    stack
        .sim
        .phone("6281277770001")
        .enter_code(&code)
        .await
        .expect("the code links");

    let linked = until_event(&mut events, &mut buf, "connected", |v| {
        v["status"] == "connected"
    })
    .await;
    assert_eq!(linked["phone_number"], "6281277770001");
    assert!(
        linked["pairing_code"].is_null(),
        "the code is gone once linked"
    );

    let (status, one) = call(
        &app,
        "GET",
        &format!("/api/devices/{id}"),
        &owner,
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(one["status"], "connected");
    runner.shutdown().await;
}
