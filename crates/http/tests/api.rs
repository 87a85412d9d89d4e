//! Every endpoint and every authentication failure, through the router itself.
#![allow(missing_docs)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use http_body_util::BodyExt as _;
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use serde_json::{Value, json};
use tower::ServiceExt as _;
use wa_pairing_http::{AuthConfig, HttpConfig, router};
use wa_pairing_store::code::{IssuedCode, PairingCode};
use wa_pairing_store::{DeviceStatus, DeviceStore, DeviceUpdate, MemoryStore, NewDevice, UserId};

const SECRET: &str = "test-jwt-secret-with-enough-length-0123456789";
/// A P-256 key made for these tests only, and its public half as a JWK.
const EC_PRIVATE: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgm3eDoFu2KlxKnSQ3
JJ7azxpHku11EyCy9GZ1H6m9ZRChRANCAAQ4N57yYXF39aNholrLMNqvbDvfedOw
PGazdg6u4dwuMR3qBxWd6in8YS/Sz6GpemL1pSJOpsj41/ejMHWnG2xm
-----END PRIVATE KEY-----";
const JWKS: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"test-key","use":"sig",
  "x":"ODee8mFxd_WjYaJayzDar2w733nTsDxms3YOruHcLjE","y":"HeoHFZ3qKfxhL9LPoal6YvWlIk6myPjX96MwdacbbGY"}]}"#;
const ISSUER: &str = "https://abcd.supabase.co/auth/v1";

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

fn claims(user: UserId) -> Value {
    json!({"sub": user.to_string(), "aud": "authenticated", "iss": ISSUER, "exp": now() + 3600, "role": "authenticated"})
}

fn hs(claims: &Value) -> String {
    encode(
        &Header::new(Algorithm::HS256),
        claims,
        &EncodingKey::from_secret(SECRET.as_bytes()),
    )
    .unwrap()
}

fn es(claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some("test-key".into());
    encode(
        &h,
        claims,
        &EncodingKey::from_ec_pem(EC_PRIVATE.as_bytes()).unwrap(),
    )
    .unwrap()
}

struct App {
    app: axum::Router,
    store: Arc<MemoryStore>,
}

fn app_with(config: HttpConfig) -> App {
    let store = Arc::new(MemoryStore::new());
    App {
        app: router(store.clone(), config),
        store,
    }
}

fn app() -> App {
    app_with(HttpConfig::new(
        AuthConfig::hs256(SECRET)
            .with_jwks(JWKS)
            .unwrap()
            .issuer(ISSUER),
    ))
}

impl App {
    async fn call(
        &self,
        method: &str,
        uri: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value, axum::http::HeaderMap) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let res = self.app.clone().oneshot(req).await.unwrap();
        let status = res.status();
        let headers = res.headers().clone();
        let bytes = res.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes)
            .unwrap_or(Value::String(String::from_utf8_lossy(&bytes).into()));
        (status, value, headers)
    }

    async fn device_for(&self, user: UserId) -> String {
        let d = self
            .store
            .create(NewDevice::new(user, "Toko"))
            .await
            .unwrap();
        d.id.to_string()
    }
}

// ------------------------------------------------------------------ authentication

#[tokio::test]
async fn every_authentication_failure_is_401_with_a_reason() {
    let a = app();
    let user = UserId::random();
    let mut expired = claims(user);
    expired["exp"] = json!(now() - 3600);
    let mut other_aud = claims(user);
    other_aud["aud"] = json!("anon-app");
    let mut other_iss = claims(user);
    other_iss["iss"] = json!("https://evil.example/auth/v1");
    let mut no_sub = claims(user);
    no_sub.as_object_mut().unwrap().remove("sub");
    let wrong_secret = encode(
        &Header::new(Algorithm::HS256),
        &claims(user),
        &EncodingKey::from_secret(b"another secret"),
    )
    .unwrap();
    let cases: Vec<(&str, Option<String>, &str)> = vec![
        ("missing", None, "no access token"),
        ("malformed", Some("not.a.jwt".into()), "malformed"),
        ("expired", Some(hs(&expired)), "expired"),
        ("wrong signature", Some(wrong_secret), "signature"),
        ("wrong audience", Some(hs(&other_aud)), "audience"),
        ("wrong issuer", Some(hs(&other_iss)), "issuer"),
        ("no subject", Some(hs(&no_sub)), "claim"),
    ];
    for (what, token, reason) in cases {
        let (status, body, headers) = a.call("GET", "/api/devices", token.as_deref(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        assert_eq!(body["error"]["code"], "unauthorized", "{what}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains(reason), "{what}: {message}");
        assert_eq!(headers[header::WWW_AUTHENTICATE], "Bearer");
        if let Some(t) = token {
            assert!(!message.contains(&t), "the token is never echoed");
        }
    }
    // A header that is not a bearer token.
    let req = Request::builder()
        .uri("/api/devices")
        .header(header::AUTHORIZATION, "Basic dXNlcjpwYXNz")
        .body(Body::empty())
        .unwrap();
    let res = a.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn hs256_and_jwks_tokens_both_work_and_the_subject_is_the_user() {
    let a = app();
    let user = UserId::random();
    let id = a.device_for(user).await;
    for token in [hs(&claims(user)), es(&claims(user))] {
        let (status, body, _) = a
            .call("GET", &format!("/api/devices/{id}"), Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["id"], id);
    }
    // A JWKS-only server refuses HS256 tokens.
    let jwks_only = app_with(HttpConfig::new(AuthConfig::jwks(JWKS).unwrap()));
    let (status, _, _) = jwks_only
        .call("GET", "/api/devices", Some(&hs(&claims(user))), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = jwks_only
        .call("GET", "/api/devices", Some(&es(&claims(user))), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(AuthConfig::jwks("{\"keys\": []}").is_err());
    assert!(AuthConfig::jwks("nonsense").is_err());
}

#[tokio::test]
async fn another_users_device_is_404_exactly_like_a_missing_one() {
    let a = app();
    let owner = UserId::random();
    let id = a.device_for(owner).await;
    let stranger = hs(&claims(UserId::random()));
    let missing = uuid::Uuid::new_v4();
    for (method, suffix, body) in [
        ("GET", "", None),
        (
            "POST",
            "/pairing",
            Some(json!({"phone_number": "081234567890"})),
        ),
        ("POST", "/refresh", None),
        ("POST", "/disconnect", None),
        ("GET", "/events", None),
        ("GET", "/qr.svg", None),
    ] {
        let (theirs, b1, _) = a
            .call(
                method,
                &format!("/api/devices/{id}{suffix}"),
                Some(&stranger),
                body.clone(),
            )
            .await;
        let (none, b2, _) = a
            .call(
                method,
                &format!("/api/devices/{missing}{suffix}"),
                Some(&stranger),
                body,
            )
            .await;
        assert_eq!(theirs, StatusCode::NOT_FOUND, "{method} {suffix}");
        assert_eq!(none, StatusCode::NOT_FOUND, "{method} {suffix}");
        assert_eq!(b1, b2, "{method} {suffix}: the answers must not differ");
    }
    let (status, _, _) = a
        .call("GET", "/api/devices/not-a-uuid", Some(&stranger), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

// ------------------------------------------------------------------ endpoints

#[tokio::test]
async fn create_list_get_pair_refresh_disconnect() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    let (status, created, _) = a
        .call(
            "POST",
            "/api/devices",
            Some(&token),
            Some(json!({"device_name": "HP Toko"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    assert_eq!(created["status"], "disconnected");
    assert_eq!(created["connection_method"], "pairing");
    let id = created["id"].as_str().unwrap().to_owned();

    let (status, listed, _) = a.call("GET", "/api/devices", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    let (_, others, _) = a
        .call(
            "GET",
            "/api/devices",
            Some(&hs(&claims(UserId::random()))),
            None,
        )
        .await;
    assert!(others.as_array().unwrap().is_empty(), "only my devices");

    let (status, started, _) = a
        .call(
            "POST",
            &format!("/api/devices/{id}/pairing"),
            Some(&token),
            Some(json!({"phone_number": "0812-3456-7890"})),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");
    assert_eq!(started["status"], "connecting");
    assert_eq!(started["phone_for_pairing"], "6281234567890");

    // A runner shows a code: the view carries it while it is valid, as XXXX-XXXX.
    let claimed = a
        .store
        .claim("r", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    let code = IssuedCode::new(
        PairingCode::parse("ABCD-EFGH").unwrap(),
        chrono::Utc::now(),
        Duration::from_secs(120),
    );
    a.store
        .update(
            &claimed.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).pairing_code(code),
        )
        .await
        .unwrap();
    let (_, shown, _) = a
        .call("GET", &format!("/api/devices/{id}"), Some(&token), None)
        .await;
    assert_eq!(shown["status"], "waiting_pairing");
    assert_eq!(shown["pairing_code"], "ABCD-EFGH");
    assert!(shown["pairing_code_expires_at"].is_string());
    let text = shown.to_string();
    for secret in ["lease", "session", "auth"] {
        assert!(
            !text.contains(secret),
            "{secret} must not be exposed: {text}"
        );
    }

    let (status, refreshed, _) = a
        .call(
            "POST",
            &format!("/api/devices/{id}/refresh"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{refreshed}");
    assert!(refreshed["pairing_code"].is_null(), "the old code is gone");

    let (status, stopped, _) = a
        .call(
            "POST",
            &format!("/api/devices/{id}/disconnect"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stopped["status"], "disconnected");
}

#[tokio::test]
async fn a_bad_number_is_422_at_once_and_nothing_changes() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    for body in [
        json!({"phone_number": "12"}),
        json!({"phone_number": "not a number"}),
        json!({}),
    ] {
        let (status, err, _) = a
            .call(
                "POST",
                &format!("/api/devices/{id}/pairing"),
                Some(&token),
                Some(body),
            )
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
        assert_eq!(err["error"]["code"], "invalid_phone");
        assert!(!err["error"]["message"].as_str().unwrap().is_empty());
    }
    let (status, err, _) = a
        .call(
            "POST",
            "/api/devices",
            Some(&token),
            Some(json!({"name": "x"})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("device_name")
    );
    let (status, err, _) = a
        .call(
            "POST",
            "/api/devices",
            Some(&token),
            Some(json!({"device_name": ""})),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    let d = a.store.get(id.parse().unwrap()).await.unwrap();
    assert_eq!(d.status, DeviceStatus::Disconnected);
}

#[tokio::test]
async fn pairing_actions_are_rate_limited_per_user() {
    let a = app_with(HttpConfig::new(AuthConfig::hs256(SECRET)).pairing_actions_per_minute(2));
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    let uri = format!("/api/devices/{id}/pairing");
    let body = json!({"phone_number": "081234567890"});
    for _ in 0..2 {
        let (status, _, _) = a.call("POST", &uri, Some(&token), Some(body.clone())).await;
        assert_eq!(status, StatusCode::ACCEPTED);
    }
    let (status, err, headers) = a.call("POST", &uri, Some(&token), Some(body.clone())).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err["error"]["code"], "rate_limited");
    assert!(headers.contains_key(header::RETRY_AFTER));
    // Another user is not affected.
    let other = UserId::random();
    let other_id = a.device_for(other).await;
    let (status, _, _) = a
        .call(
            "POST",
            &format!("/api/devices/{other_id}/pairing"),
            Some(&hs(&claims(other))),
            Some(body),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
}

#[tokio::test]
async fn the_qr_is_drawn_only_while_shown() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    let (_, _, _) = a
        .call(
            "POST",
            &format!("/api/devices/{id}/pairing"),
            Some(&token),
            Some(json!({"connection_method": "qr"})),
        )
        .await;
    let (status, _, _) = a
        .call(
            "GET",
            &format!("/api/devices/{id}/qr.svg"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let claimed = a
        .store
        .claim("r", 1, Duration::from_secs(30))
        .await
        .unwrap()
        .remove(0);
    a.store
        .update(
            &claimed.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).qr_code("2@abc,def,ghi"),
        )
        .await
        .unwrap();
    let (status, svg, headers) = a
        .call(
            "GET",
            &format!("/api/devices/{id}/qr.svg"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::CONTENT_TYPE], "image/svg+xml");
    assert!(svg.as_str().unwrap().contains("<svg"));
}

#[tokio::test]
async fn the_page_and_its_assets_are_served() {
    let a = app();
    for (path, needle) in [
        ("/", "Tautkan dengan nomor telepon saja"),
        ("/", "Link with phone number instead"),
        ("/assets/app.js", "EventSource"),
        ("/assets/app.css", ".code"),
    ] {
        let (status, body, _) = a.call("GET", path, None, None).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            body.as_str().unwrap().contains(needle),
            "{path} lacks {needle}"
        );
    }
}

// ------------------------------------------------------------------ live updates

async fn next_event(body: &mut Body, within: Duration) -> String {
    let mut text = String::new();
    tokio::time::timeout(within, async {
        loop {
            let frame = body
                .frame()
                .await
                .expect("the stream is open")
                .expect("a frame");
            if let Some(data) = frame.data_ref() {
                text.push_str(&String::from_utf8_lossy(data));
                if text.contains("\n\n") && text.contains("data:") {
                    return;
                }
            }
        }
    })
    .await
    .expect("an event within the deadline");
    text
}

#[tokio::test]
async fn the_event_stream_delivers_each_change() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    // EventSource cannot send headers: the token rides in the query.
    let req = Request::builder()
        .uri(format!("/api/devices/{id}/events?access_token={token}"))
        .body(Body::empty())
        .unwrap();
    let res = a.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = res.into_body();
    let first = next_event(&mut body, Duration::from_secs(5)).await;
    assert!(first.contains("event: device"), "{first}");
    assert!(first.contains("\"status\":\"disconnected\""), "{first}");

    let phone = wa_pairing_store::phone::parse("081234567890").unwrap();
    a.store
        .start_pairing(
            id.parse().unwrap(),
            wa_pairing_store::PairingRequest::Code { phone },
        )
        .await
        .unwrap();
    let second = next_event(&mut body, Duration::from_secs(5)).await;
    assert!(second.contains("\"status\":\"connecting\""), "{second}");

    a.store.delete(id.parse().unwrap()).await.unwrap();
    let last = next_event(&mut body, Duration::from_secs(5)).await;
    assert!(last.contains("event: gone"), "{last}");
}
