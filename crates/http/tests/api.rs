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
use wa_pairing_store::{
    ClaimRequest, ClaimedDevice, DeviceStatus, DeviceStore, DeviceUpdate, MemoryStore, NewDevice,
    UserId,
};

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
    app_on(MemoryStore::new(), config)
}

fn app_on(store: MemoryStore, config: HttpConfig) -> App {
    let store = Arc::new(store);
    App {
        app: router(&store.stores().build(), config),
        store,
    }
}

fn auth() -> AuthConfig {
    AuthConfig::new(ISSUER)
        .hs256(SECRET)
        .with_jwks(JWKS)
        .unwrap()
}

fn app() -> App {
    app_with(HttpConfig::new(auth()))
}

/// A runner's claim on the one device that needs one.
async fn claim(store: &MemoryStore) -> ClaimedDevice {
    store
        .claim(&ClaimRequest::new("r", 1, Duration::from_secs(30)))
        .await
        .unwrap()
        .remove(0)
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
    let mut no_iss = claims(user);
    no_iss.as_object_mut().unwrap().remove("iss");
    let mut not_yet = claims(user);
    not_yet["nbf"] = json!(now() + 600);
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
        ("no issuer", Some(hs(&no_iss)), "claim"),
        ("not valid yet", Some(hs(&not_yet)), "not valid yet"),
    ];
    for (what, token, reason) in cases {
        let (status, body, headers) = a.call("GET", "/api/devices", token.as_deref(), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{what}");
        // An expired token has its own code, so that a page can say the session expired.
        let code = if what == "expired" {
            "session_expired"
        } else {
            "unauthorized"
        };
        assert_eq!(body["error"]["code"], code, "{what}");
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
    let jwks_only = app_with(HttpConfig::new(
        AuthConfig::new(ISSUER).with_jwks(JWKS).unwrap(),
    ));
    let (status, _, _) = jwks_only
        .call("GET", "/api/devices", Some(&hs(&claims(user))), None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = jwks_only
        .call("GET", "/api/devices", Some(&es(&claims(user))), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(AuthConfig::new(ISSUER).with_jwks("{\"keys\": []}").is_err());
    assert!(AuthConfig::new(ISSUER).with_jwks("nonsense").is_err());
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
        ("POST", "/resume", None),
        ("POST", "/unlink", None),
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
    let claimed = claim(&a.store).await;
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
    assert_eq!(stopped["linked"], false);

    // Never linked: nothing to resume, and the answer says what to do.
    let (status, refused, _) = a
        .call(
            "POST",
            &format!("/api/devices/{id}/resume"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap()
            .contains("start pairing"),
        "{refused}"
    );
    let (status, unlinking, _) = a
        .call(
            "POST",
            &format!("/api/devices/{id}/unlink"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(unlinking["status"], "unlinking");
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
    // The owner's pace is the store's rule (one for every replica and every writer).
    let a = app_on(
        MemoryStore::new().with_pairing_starts_per_minute(std::num::NonZeroU32::new(2).unwrap()),
        HttpConfig::new(AuthConfig::new(ISSUER).hs256(SECRET)),
    );
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
    let claimed = claim(&a.store).await;
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

#[tokio::test]
async fn the_event_stream_clears_a_code_the_moment_it_expires() {
    // A long poll, so that only the code's own expiry can bring the next event in time.
    let a = app_with(HttpConfig::new(auth()).poll_interval(Duration::from_secs(60)));
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    let phone = wa_pairing_store::phone::parse("081234567890").unwrap();
    a.store
        .start_pairing(
            id.parse().unwrap(),
            wa_pairing_store::PairingRequest::Code { phone },
        )
        .await
        .unwrap();
    let claimed = claim(&a.store).await;
    // Issued almost two minutes ago: two seconds left.
    let code = IssuedCode::new(
        PairingCode::parse("ABCD-EFGH").unwrap(),
        chrono::Utc::now() - chrono::Duration::seconds(118),
        Duration::from_secs(120),
    );
    a.store
        .update(
            &claimed.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).pairing_code(code),
        )
        .await
        .unwrap();
    let req = Request::builder()
        .uri(format!("/api/devices/{id}/events"))
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let mut body = a.app.clone().oneshot(req).await.unwrap().into_body();
    let first = next_event(&mut body, Duration::from_secs(5)).await;
    assert!(first.contains("\"pairing_code\":\"ABCD-EFGH\""), "{first}");
    // Nothing changes in the store; the code's expiry alone ends it on the stream.
    let cleared = next_event(&mut body, Duration::from_secs(10)).await;
    assert!(cleared.contains("\"pairing_code\":null"), "{cleared}");
    assert!(
        cleared.contains("\"status\":\"waiting_pairing\""),
        "{cleared}"
    );
}

// ------------------------------------------------------------------ the security review

/// A store whose clock runs an hour behind: every lease it grants has lapsed already by the
/// API's (real) clock, as when the runner holding a device died.
fn store_whose_runners_are_gone() -> MemoryStore {
    let clock = wa_pairing_store::ManualClock::new(chrono::Utc::now() - chrono::Duration::hours(1));
    MemoryStore::with_clock(Arc::new(clock))
}

#[tokio::test]
async fn a_code_is_not_shown_again_once_another_runner_claims_the_device() {
    let clock = Arc::new(wa_pairing_store::ManualClock::new(chrono::Utc::now()));
    let a = app_on(
        MemoryStore::with_clock(clock.clone()),
        HttpConfig::new(auth()),
    );
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    let phone = wa_pairing_store::phone::parse("081234567890").unwrap();
    a.store
        .start_pairing(
            id.parse().unwrap(),
            wa_pairing_store::PairingRequest::Code { phone },
        )
        .await
        .unwrap();
    let first = claim(&a.store).await;
    let code = IssuedCode::new(
        PairingCode::parse("ABCD-EFGH").unwrap(),
        chrono::Utc::now(),
        Duration::from_secs(180),
    );
    a.store
        .update(
            &first.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).pairing_code(code),
        )
        .await
        .unwrap();
    let uri = format!("/api/devices/{id}");
    let (_, shown, _) = a.call("GET", &uri, Some(&token), None).await;
    assert_eq!(shown["pairing_code"], "ABCD-EFGH", "{shown}");
    // The first runner dies; its lease lapses and another runner takes the device. Until that
    // runner has its own code, the page is told that a new one is coming (no code).
    clock.advance(Duration::from_secs(31));
    let second = claim(&a.store).await;
    assert!(second.lease.fence > first.lease.fence);
    let (status, shown, _) = a.call("GET", &uri, Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["status"], "waiting_pairing");
    assert!(shown["pairing_code"].is_null(), "{shown}");
    assert!(shown["pairing_code_expires_at"].is_null(), "{shown}");
}

#[tokio::test]
async fn no_code_or_qr_is_shown_once_the_runner_that_asked_for_it_is_gone() {
    let a = app_on(store_whose_runners_are_gone(), HttpConfig::new(auth()));
    let user = UserId::random();
    let token = hs(&claims(user));
    let by_code = a.device_for(user).await;
    let phone = wa_pairing_store::phone::parse("081234567890").unwrap();
    a.store
        .start_pairing(
            by_code.parse().unwrap(),
            wa_pairing_store::PairingRequest::Code { phone },
        )
        .await
        .unwrap();
    let claimed = claim(&a.store).await;
    // The code itself is valid for two more minutes.
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
    let by_qr = a.device_for(user).await;
    a.store
        .start_pairing(by_qr.parse().unwrap(), wa_pairing_store::PairingRequest::Qr)
        .await
        .unwrap();
    let claimed = claim(&a.store).await;
    a.store
        .update(
            &claimed.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).qr_code("2@abc,def,ghi"),
        )
        .await
        .unwrap();

    for id in [&by_code, &by_qr] {
        let (status, shown, _) = a
            .call("GET", &format!("/api/devices/{id}"), Some(&token), None)
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(shown["status"], "waiting_pairing");
        assert!(shown["pairing_code"].is_null(), "{shown}");
        assert!(shown["pairing_code_expires_at"].is_null(), "{shown}");
        assert!(shown["qr_code"].is_null(), "{shown}");
    }
    let (_, listed, _) = a.call("GET", "/api/devices", Some(&token), None).await;
    let text = listed.to_string();
    assert!(
        !text.contains("ABCD-EFGH") && !text.contains("2@abc"),
        "{text}"
    );
    let (status, err, _) = a
        .call(
            "GET",
            &format!("/api/devices/{by_qr}/qr.svg"),
            Some(&token),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{err}");
    assert_eq!(err["error"]["code"], "no_qr");
    for id in [&by_code, &by_qr] {
        let req = Request::builder()
            .uri(format!("/api/devices/{id}/events"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap();
        let mut body = a.app.clone().oneshot(req).await.unwrap().into_body();
        let first = next_event(&mut body, Duration::from_secs(5)).await;
        assert!(
            !first.contains("ABCD-EFGH") && !first.contains("2@abc"),
            "{first}"
        );
    }
}

#[tokio::test]
async fn query_tokens_are_accepted_only_by_the_event_stream_and_the_qr_image() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    for (method, uri, body) in [
        ("GET", "/api/devices".to_owned(), None),
        (
            "POST",
            "/api/devices".to_owned(),
            Some(json!({"device_name": "HP Toko"})),
        ),
        ("GET", format!("/api/devices/{id}"), None),
        (
            "POST",
            format!("/api/devices/{id}/pairing"),
            Some(json!({"connection_method": "qr"})),
        ),
        ("POST", format!("/api/devices/{id}/refresh"), None),
        ("POST", format!("/api/devices/{id}/disconnect"), None),
        ("POST", format!("/api/devices/{id}/resume"), None),
        ("POST", format!("/api/devices/{id}/unlink"), None),
    ] {
        let (status, err, _) = a
            .call(method, &format!("{uri}?access_token={token}"), None, body)
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{method} {uri}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains("Authorization header"), "{message}");
        assert!(!message.contains(&token), "the token is never echoed");
    }
    // Nothing was created or started by those calls.
    assert_eq!(a.store.list_for_user(user).await.unwrap().len(), 1);
    let d = a.store.get(id.parse().unwrap()).await.unwrap();
    assert_eq!(d.status, DeviceStatus::Disconnected);

    // The two routes a browser opens without headers take it.
    a.store
        .start_pairing(id.parse().unwrap(), wa_pairing_store::PairingRequest::Qr)
        .await
        .unwrap();
    let claimed = claim(&a.store).await;
    a.store
        .update(
            &claimed.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).qr_code("2@abc,def,ghi"),
        )
        .await
        .unwrap();
    let (status, svg, _) = a
        .call(
            "GET",
            &format!("/api/devices/{id}/qr.svg?access_token={token}&t=1"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{svg}");
    let req = Request::builder()
        .uri(format!("/api/devices/{id}/events?access_token={token}"))
        .body(Body::empty())
        .unwrap();
    let res = a.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    // A bad query token there is refused like a bad header.
    let (status, _, _) = a
        .call(
            "GET",
            &format!("/api/devices/{id}/qr.svg?access_token=not.a.jwt"),
            None,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(start_paused = true)]
async fn the_event_stream_ends_when_its_token_stops_being_accepted() {
    let leeway = 1;
    let a = app_with(HttpConfig::new(auth().leeway(leeway)));
    let user = UserId::random();
    let mut short = claims(user);
    short["exp"] = json!(now() + 2);
    let token = hs(&short);
    let id = a.device_for(user).await;
    let opened = tokio::time::Instant::now();
    let req = Request::builder()
        .uri(format!("/api/devices/{id}/events?access_token={token}"))
        .body(Body::empty())
        .unwrap();
    let res = a.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let mut body = res.into_body();
    let first = next_event(&mut body, Duration::from_secs(5)).await;
    assert!(first.contains("event: device"), "{first}");
    // On Tokio's paused clock: the stream says why it ends, then ends.
    let last = next_event(&mut body, Duration::from_secs(60)).await;
    assert!(last.contains("event: expired"), "{last}");
    assert!(!last.contains(&token));
    let end = tokio::time::timeout(Duration::from_secs(60), body.frame())
        .await
        .expect("the stream ends at once");
    assert!(end.is_none(), "no more frames after `expired`");
    let lived = opened.elapsed();
    assert!(
        lived >= Duration::from_secs(1) && lived <= Duration::from_secs(2 + leeway + 1),
        "the stream lived {lived:?}, not until exp + leeway"
    );
}

#[tokio::test]
async fn the_issuer_is_always_checked() {
    // Every constructor has an issuer: a token without one, or from another, is refused.
    let user = UserId::random();
    let mut no_iss = claims(user);
    no_iss.as_object_mut().unwrap().remove("iss");
    let plain = AuthConfig::new(ISSUER).hs256(SECRET);
    assert!(plain.verify(&hs(&no_iss)).await.is_err());
    assert!(plain.verify(&hs(&claims(user))).await.is_ok());
    // The Supabase constructor derives it from the project URL.
    let project = AuthConfig::supabase("https://abcd.supabase.co/")
        .unwrap()
        .hs256(SECRET);
    let verified = project.verify(&hs(&claims(user))).await.unwrap();
    assert_eq!(verified.user, user);
    let mut other = claims(user);
    other["iss"] = json!("https://other.supabase.co/auth/v1");
    let err = project.verify(&hs(&other)).await.unwrap_err();
    assert!(err.message.contains("issuer"), "{}", err.message);
    for bad in [
        "abcd.supabase.co",
        "http://abcd.supabase.co",
        "https://abcd.supabase.co/auth/v1",
    ] {
        assert!(AuthConfig::supabase(bad).is_err(), "{bad}");
    }
}

#[tokio::test]
async fn verify_returns_the_user_and_the_expiry() {
    let user = UserId::random();
    let mut c = claims(user);
    let exp = now() + 1234;
    c["exp"] = json!(exp);
    let verified = auth().verify(&hs(&c)).await.unwrap();
    assert_eq!(verified.user, user);
    assert_eq!(verified.expires_at.timestamp(), exp);
}

#[tokio::test]
async fn owner_works_in_an_applications_own_router_and_state() {
    use axum::extract::{FromRef, State};
    use wa_pairing_http::Owner;

    #[derive(Clone)]
    struct AppState {
        auth: AuthConfig,
        greeting: &'static str,
    }
    impl FromRef<AppState> for AuthConfig {
        fn from_ref(state: &AppState) -> Self {
            state.auth.clone()
        }
    }
    async fn hello(State(state): State<AppState>, Owner(user): Owner) -> String {
        format!("{} {user}", state.greeting)
    }

    let store = Arc::new(MemoryStore::new());
    let app = axum::Router::new()
        .route("/hello", axum::routing::get(hello))
        .with_state(AppState {
            auth: auth(),
            greeting: "halo",
        })
        .merge(router(&store.stores().build(), HttpConfig::new(auth())));
    let a = App {
        app,
        store: Arc::new(MemoryStore::new()),
    };
    let user = UserId::random();
    let token = hs(&claims(user));
    let (status, body, _) = a.call("GET", "/hello", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, Value::String(format!("halo {user}")));
    let (status, _, _) = a.call("GET", "/hello", None, None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _, _) = a
        .call("GET", &format!("/hello?access_token={token}"), None, None)
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // The library's routes still answer beside it.
    let (status, _, _) = a.call("GET", "/api/devices", Some(&token), None).await;
    assert_eq!(status, StatusCode::OK);
}

// ------------------------------------------------------------------ a JWKS that rotates

/// A second P-256 key, as after a rotation.
const EC_PRIVATE_2: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgPSQgpRZKnML1ePxC
fuj2BQ+1Zy9nnlvHiZ9zCj0IFhehRANCAATbU/KGFnzJ2MyzH9Yl+mXQ+KoYKpAY
I0TG20BMymD75B2aQf6gpQx6rLDqmakAcA43gIV0mijrcwvkNBXhp4dF
-----END PRIVATE KEY-----";
const JWKS_2: &str = r#"{"keys":[{"kty":"EC","crv":"P-256","alg":"ES256","kid":"rotated","use":"sig",
  "x":"21PyhhZ8ydjMsx_WJfpl0PiqGCqQGCNExttATMpg--Q","y":"HZpB_qClDHqssOqZqQBwDjeAhXSaKOtzC-Q0FeGnh0U"}]}"#;
const JWKS_PATH: &str = "/auth/v1/.well-known/jwks.json";

fn es_with(kid: &str, pem: &str, claims: &Value) -> String {
    let mut h = Header::new(Algorithm::ES256);
    h.kid = Some(kid.into());
    encode(
        &h,
        claims,
        &EncodingKey::from_ec_pem(pem.as_bytes()).unwrap(),
    )
    .unwrap()
}

/// Claims for a Supabase project served by `server`.
fn project_claims(server: &wiremock::MockServer, user: UserId) -> Value {
    let mut c = claims(user);
    c["iss"] = json!(format!("{}/auth/v1", server.uri()));
    c
}

async fn serve_jwks(server: &wiremock::MockServer, document: &str) {
    use wiremock::matchers::{method, path};
    server.reset().await;
    wiremock::Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            wiremock::ResponseTemplate::new(200).set_body_raw(document, "application/json"),
        )
        .mount(server)
        .await;
}

async fn fetches(server: &wiremock::MockServer) -> usize {
    server.received_requests().await.unwrap().len()
}

#[tokio::test]
async fn a_rotated_key_verifies_once_the_jwks_is_fetched_again() {
    let server = wiremock::MockServer::start().await;
    serve_jwks(&server, JWKS).await;
    let auth = AuthConfig::supabase(&server.uri())
        .unwrap()
        .jwks_refresh_interval(Duration::ZERO);
    let a = app_with(HttpConfig::new(auth));
    let user = UserId::random();
    let c = project_claims(&server, user);
    let (status, body, _) = a
        .call(
            "GET",
            "/api/devices",
            Some(&es_with("test-key", EC_PRIVATE, &c)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // The project rotates: the new key replaces the old one in the document.
    serve_jwks(&server, JWKS_2).await;
    let (status, body, _) = a
        .call(
            "GET",
            "/api/devices",
            Some(&es_with("rotated", EC_PRIVATE_2, &c)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // The key that left the document no longer verifies.
    let (status, body, _) = a
        .call(
            "GET",
            "/api/devices",
            Some(&es_with("test-key", EC_PRIVATE, &c)),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
}

#[tokio::test]
async fn unknown_keys_cause_at_most_one_fetch_per_interval() {
    let server = wiremock::MockServer::start().await;
    serve_jwks(&server, JWKS).await;
    let auth = AuthConfig::supabase(&server.uri())
        .unwrap()
        .jwks_refresh_interval(Duration::from_secs(30));
    let user = UserId::random();
    let c = project_claims(&server, user);
    // A storm of tokens naming keys nobody knows, all at once, before any fetch.
    let storm: Vec<String> = (0..50)
        .map(|i| es_with(&format!("unknown-{i}"), EC_PRIVATE, &c))
        .collect();
    let answers = futures::future::join_all(storm.iter().map(|t| auth.verify(t))).await;
    assert!(answers.iter().all(Result::is_err));
    assert_eq!(fetches(&server).await, 1, "one fetch for the whole storm");
    // A known key verifies from the keys fetched then; more unknown keys fetch nothing.
    assert!(
        auth.verify(&es_with("test-key", EC_PRIVATE, &c))
            .await
            .is_ok()
    );
    assert!(auth.verify(&storm[0]).await.is_err());
    assert_eq!(fetches(&server).await, 1);

    // Once the interval has passed, an unknown key fetches again, once.
    tokio::time::pause();
    tokio::time::advance(Duration::from_secs(31)).await;
    tokio::time::resume();
    serve_jwks(&server, JWKS_2).await;
    let rotated = es_with("rotated", EC_PRIVATE_2, &c);
    let answers = futures::future::join_all((0..10).map(|_| auth.verify(&rotated))).await;
    assert!(answers.iter().all(Result::is_ok));
    assert_eq!(
        fetches(&server).await,
        1,
        "one more fetch (the mock was reset)"
    );
}

#[tokio::test]
async fn a_failed_fetch_keeps_the_keys_and_redirects_are_not_followed() {
    use wiremock::matchers::{method, path};
    let server = wiremock::MockServer::start().await;
    serve_jwks(&server, JWKS).await;
    let auth = AuthConfig::supabase(&server.uri())
        .unwrap()
        .jwks_refresh_interval(Duration::ZERO);
    assert_eq!(auth.fetch_keys().await, Ok(1));
    let user = UserId::random();
    let c = project_claims(&server, user);
    let known = es_with("test-key", EC_PRIVATE, &c);
    let rotated = es_with("rotated", EC_PRIVATE_2, &c);

    // The server fails: the known key still verifies, the new one does not.
    server.reset().await;
    wiremock::Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(wiremock::ResponseTemplate::new(500))
        .mount(&server)
        .await;
    assert!(auth.verify(&rotated).await.is_err());
    let err = auth.fetch_keys().await.unwrap_err().to_string();
    assert!(err.contains("500"), "{err}");
    assert!(auth.verify(&known).await.is_ok());

    // A redirect elsewhere is not followed.
    let elsewhere = wiremock::MockServer::start().await;
    serve_jwks(&elsewhere, JWKS_2).await;
    server.reset().await;
    wiremock::Mock::given(method("GET"))
        .and(path(JWKS_PATH))
        .respond_with(
            wiremock::ResponseTemplate::new(302)
                .insert_header("location", format!("{}{JWKS_PATH}", elsewhere.uri())),
        )
        .mount(&server)
        .await;
    assert!(auth.verify(&rotated).await.is_err());
    let err = auth.fetch_keys().await.unwrap_err().to_string();
    assert!(err.contains("redirect"), "{err}");
    assert_eq!(fetches(&elsewhere).await, 0);
    assert!(auth.verify(&known).await.is_ok());
    // Nothing secret in what it shows of itself.
    let shown = format!("{:?}", auth.hs256(SECRET));
    assert!(!shown.contains(SECRET), "{shown}");
}

// ------------------------------------------------------------------ the page's product rules

/// The owner's devices as the store holds them.
async fn devices_of(a: &App, user: UserId) -> Vec<wa_pairing_store::Device> {
    a.store.list_for_user(user).await.unwrap()
}

#[tokio::test]
async fn a_refused_name_or_number_creates_no_device() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    for (body, code) in [
        (
            json!({"device_name": "HP Salah", "phone_number": "12"}),
            "invalid_phone",
        ),
        (
            json!({"device_name": "HP Salah", "phone_number": "not a number"}),
            "invalid_phone",
        ),
        (
            json!({"device_name": "   ", "phone_number": "0812-3456-7890"}),
            "invalid_name",
        ),
        (
            json!({"device_name": "x".repeat(101), "connection_method": "qr"}),
            "invalid_name",
        ),
    ] {
        let (status, err, _) = a
            .call("POST", "/api/devices", Some(&token), Some(body.clone()))
            .await;
        assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
        assert_eq!(err["error"]["code"], code, "{body}: {err}");
        assert!(
            devices_of(&a, user).await.is_empty(),
            "{body}: no device left"
        );
    }
    // A good number: created and pairing started, in one request.
    let (status, d, headers) = a
        .call(
            "POST",
            "/api/devices",
            Some(&token),
            Some(json!({"device_name": "HP Kasir", "phone_number": "0812-3456-7890"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(d["status"], "connecting");
    assert_eq!(d["phone_for_pairing"], "6281234567890");
    assert!(d["created_at"].is_string());
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");
    // By QR, no number needed.
    let (status, d, _) = a
        .call(
            "POST",
            "/api/devices",
            Some(&token),
            Some(json!({"device_name": "HP Gudang", "connection_method": "qr"})),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{d}");
    assert_eq!(d["connection_method"], "qr");
    assert_eq!(d["status"], "connecting");
    assert_eq!(devices_of(&a, user).await.len(), 2);
}

#[tokio::test]
async fn a_create_whose_pairing_is_refused_leaves_no_device() {
    let a = app_on(
        MemoryStore::new().with_pairing_starts_per_minute(std::num::NonZeroU32::MIN),
        HttpConfig::new(AuthConfig::new(ISSUER).hs256(SECRET)),
    );
    let user = UserId::random();
    let token = hs(&claims(user));
    let body = json!({"device_name": "HP Toko", "phone_number": "081234567890"});
    let (status, _, _) = a
        .call("POST", "/api/devices", Some(&token), Some(body.clone()))
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, err, headers) = a
        .call("POST", "/api/devices", Some(&token), Some(body))
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(err["error"]["code"], "rate_limited");
    assert!(headers.contains_key(header::RETRY_AFTER));
    assert_eq!(
        devices_of(&a, user).await.len(),
        1,
        "the refused one was taken back"
    );
}

#[tokio::test]
async fn deleting_a_device_that_never_linked_removes_it_at_once() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    let uri = format!("/api/devices/{id}");
    // Another owner cannot.
    let (status, _, _) = a
        .call("DELETE", &uri, Some(&hs(&claims(UserId::random()))), None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = a.call("DELETE", &uri, Some(&token), None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(devices_of(&a, user).await.is_empty());
    let (status, err, _) = a.call("DELETE", &uri, Some(&token), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(err["error"]["code"], "not_found");
}

#[tokio::test]
async fn deleting_a_linked_device_unlinks_it_first_then_removes_it() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    let id = a.device_for(user).await;
    let device: wa_pairing_store::DeviceId = id.parse().unwrap();
    // Linked: a runner paired it and holds its session.
    a.call(
        "POST",
        &format!("/api/devices/{id}/pairing"),
        Some(&token),
        Some(json!({"connection_method": "qr"})),
    )
    .await;
    let claimed = claim(&a.store).await;
    a.store
        .update(
            &claimed.lease,
            DeviceUpdate::status(DeviceStatus::Connected)
                .phone_number(wa_pairing_store::phone::parse("+6281234567890").unwrap()),
        )
        .await
        .unwrap();

    let (status, d, _) = a
        .call("DELETE", &format!("/api/devices/{id}"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{d}");
    assert_eq!(d["status"], "unlinking", "WhatsApp is told first");
    assert!(
        a.store.get(device).await.is_ok(),
        "the row stays until then"
    );
    // Asking again while it unlinks changes nothing.
    let (status, _, _) = a
        .call("DELETE", &format!("/api/devices/{id}"), Some(&token), None)
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    // The runner logs the companion out, wipes the keys and leaves it disconnected: then the
    // row goes.
    let claimed = claim(&a.store).await;
    assert_eq!(claimed.device.status, DeviceStatus::Unlinking);
    a.store
        .update(
            &claimed.lease,
            DeviceUpdate::status(DeviceStatus::Disconnected).clear_phone_number(),
        )
        .await
        .unwrap();
    let end = tokio::time::Instant::now() + Duration::from_secs(10);
    while a.store.get(device).await.is_ok() {
        assert!(
            tokio::time::Instant::now() < end,
            "the unlinked device was not deleted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn the_page_and_the_api_send_their_security_headers() {
    let a = app();
    let user = UserId::random();
    let token = hs(&claims(user));
    for path in ["/", "/assets/app.js", "/assets/app.css"] {
        let (status, _, headers) = a.call("GET", path, None, None).await;
        assert_eq!(status, StatusCode::OK);
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        for part in [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(part), "{path}: {csp} lacks {part}");
        }
        assert!(!csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"));
        assert_eq!(headers[header::REFERRER_POLICY], "no-referrer", "{path}");
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff", "{path}");
        assert_eq!(headers[header::X_FRAME_OPTIONS], "DENY", "{path}");
    }
    // The page has no inline script or style for the policy to block.
    let (_, page, _) = a.call("GET", "/", None, None).await;
    let page = page.as_str().unwrap();
    assert!(!page.contains("<script>") && !page.contains("style="));
    assert!(!page.contains(" onclick="));

    // Every answer that can carry a code or a QR payload is never stored.
    let id = a.device_for(user).await;
    a.call(
        "POST",
        &format!("/api/devices/{id}/pairing"),
        Some(&token),
        Some(json!({"connection_method": "qr"})),
    )
    .await;
    let claimed = claim(&a.store).await;
    a.store
        .update(
            &claimed.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).qr_code("2@abc,def,ghi"),
        )
        .await
        .unwrap();
    for (method, path) in [
        ("GET", "/api/devices".to_owned()),
        ("GET", format!("/api/devices/{id}")),
        ("GET", format!("/api/devices/{id}/qr.svg")),
        ("POST", format!("/api/devices/{id}/disconnect")),
        ("GET", "/api/devices/not-a-device".to_owned()),
    ] {
        let (_, _, headers) = a.call(method, &path, Some(&token), None).await;
        assert_eq!(
            headers[header::CACHE_CONTROL],
            "no-store",
            "{method} {path}"
        );
        assert_eq!(headers[header::X_CONTENT_TYPE_OPTIONS], "nosniff");
    }
    // The event stream too.
    let req = Request::builder()
        .uri(format!("/api/devices/{id}/events?access_token={token}"))
        .body(Body::empty())
        .unwrap();
    let res = a.app.clone().oneshot(req).await.unwrap();
    assert_eq!(res.headers()[header::CACHE_CONTROL], "no-store");
}
