//! The service as the whole backend, over real sockets: the service's own code with the HTTP
//! API configured from its settings, on the real PostgreSQL and Redis, against the
//! simulator. An owner creates a device and starts pairing over HTTP with a Supabase-style
//! token, reads the code from the event stream, types it on the simulated phone and sees
//! "connected" arrive on the same stream; then Prometheus' scrape of `/metrics` shows the
//! pairing. The service is configured for Malaysia (`WA_PAIRING_DEFAULT_REGION=MY`), and the
//! owner types a Malaysian number the national way. The `metrics` recorder is process-global, so this test has its own binary.
#![allow(missing_docs)]

use std::net::SocketAddr;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt as _;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};
use wa_pairing_e2e::ServiceEnv;
use wa_pairing_e2e::{ISSUER, Stack, access_token, until_event};
use wa_pairing_service::{Service, Settings};
use wa_pairing_store::UserId;
use wa_pairing_store_testkit::{Skip, skip};

const SECRET: &str = "e2e-service-jwt-secret-0123456789abcdef0123";
const APP_ORIGIN: &str = "https://app.example.com";

type HttpClient = Client<HttpConnector, Body>;

async fn call(
    client: &HttpClient,
    method: Method,
    url: &str,
    token: &str,
    body: Value,
) -> (StatusCode, Value) {
    let req = Request::builder()
        .method(method)
        .uri(url)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from(body.to_string()))
        .expect("a request");
    let res = client.request(req).await.expect("the API answers");
    let status = res.status();
    let bytes = res.into_body().collect().await.expect("a body").to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

async fn scrape(client: &HttpClient, health: SocketAddr) -> String {
    let res = client
        .get(format!("http://{health}/metrics").parse().expect("a URI"))
        .await
        .expect("/metrics answers");
    assert_eq!(res.status(), StatusCode::OK);
    let content_type = res.headers()[header::CONTENT_TYPE].to_str().unwrap_or("");
    assert!(
        content_type.starts_with("text/plain; version=0.0.4"),
        "{content_type}"
    );
    let bytes: Bytes = res.into_body().collect().await.expect("a body").to_bytes();
    String::from_utf8(bytes.to_vec()).expect("text")
}

/// The value of the sample `name` (with its labels, as rendered) in a scrape.
fn sample(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_links_a_phone_through_the_service_and_prometheus_sees_it() {
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("service HTTP e2e", &why),
    };
    let Ok(redis_url) = std::env::var("WA_PAIRING_TEST_REDIS_URL") else {
        db.drop().await;
        return skip(
            "service HTTP e2e",
            &Skip::new("WA_PAIRING_TEST_REDIS_URL is not set"),
        );
    };
    // This binary's only test: the recorder is installed once per process.
    let metrics = wa_pairing_service::install_metrics().expect("the Prometheus recorder");
    let stack = Stack::start(stores).await;

    let env = ServiceEnv::new(&db.url, &wa_pairing_e2e::test_keys_setting())
        .set("REDIS_URL", redis_url)
        .set("WA_PAIRING_INSTANCE_ID", "service-http-e2e")
        .set("WA_PAIRING_HTTP_ADDR", "127.0.0.1:0")
        .set("WA_PAIRING_JWT_ISSUER", ISSUER)
        .set("SUPABASE_JWT_SECRET", SECRET)
        .set("WA_PAIRING_ALLOWED_ORIGINS", APP_ORIGIN)
        .set("WA_PAIRING_MIGRATE", "true")
        .set("WA_PAIRING_WA_SERVER_URL", stack.sim.url())
        .set("WA_PAIRING_LOG_FORMAT", "text")
        .set("WA_PAIRING_DEFAULT_REGION", "MY");
    let settings = Settings::from_lookup(|n| env.get(n)).expect("settings");
    let service = Service::build(settings)
        .await
        .expect("the service builds")
        .with_metrics(metrics);
    let health = service.health_addr();
    let api = service.http_addr().expect("the API is configured");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));
    let client: HttpClient = Client::builder(TokioExecutor::new()).build(HttpConnector::new());
    let base = format!("http://{api}");

    // Every counter and gauge the docs name is there from the start, at 0.
    let idle = scrape(&client, health).await;
    for name in [
        "wa_pairing_sessions",
        "wa_pairing_leases",
        "wa_pairing_leases_lost_total",
        "wa_pairing_session_stops_total{reason=\"owner_action\"}",
        "wa_pairing_outcomes_total{kind=\"linked\"}",
        "wa_pairing_actor_panics_total",
    ] {
        assert_eq!(sample(&idle, name), Some(0.0), "{name} at start: {idle}");
    }

    // The device page is served, and the API answers only with a valid token.
    let page = client
        .get(format!("{base}/").parse().expect("a URI"))
        .await
        .expect("the page");
    assert_eq!(page.status(), StatusCode::OK);
    let (status, _) = call(
        &client,
        Method::GET,
        &format!("{base}/api/devices"),
        "not-a-token",
        Value::Null,
    )
    .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    // A page on the allowed origin may call the API; another may not.
    for (origin, allowed) in [(APP_ORIGIN, true), ("https://evil.example.com", false)] {
        let preflight = Request::builder()
            .method(Method::OPTIONS)
            .uri(format!("{base}/api/devices"))
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .expect("a request");
        let res = client.request(preflight).await.expect("a preflight answer");
        let allow = res
            .headers()
            .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if allowed {
            assert_eq!(allow.as_deref(), Some(APP_ORIGIN));
        } else {
            assert_eq!(allow, None, "{origin} must not be allowed");
        }
    }

    let owner = access_token(SECRET, UserId::random());
    let (status, device) = call(
        &client,
        Method::POST,
        &format!("{base}/api/devices"),
        &owner,
        json!({"device_name": "HP Kasir"}),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{device}");
    let id = device["id"].as_str().expect("an id").to_owned();

    let res = client
        .get(
            format!("{base}/api/devices/{id}/events?access_token={owner}")
                .parse()
                .expect("a URI"),
        )
        .await
        .expect("the event stream");
    assert_eq!(res.status(), StatusCode::OK);
    let mut events = Body::new(res.into_body());
    let mut buf = String::new();
    until_event(&mut events, &mut buf, "the first state", |v| {
        v["status"] == "disconnected"
    })
    .await;

    // A Malaysian mobile number no earlier run used (so a quick re-run does not find its
    // pairing budget in Redis spent), typed the national way: 012-xxx xxxx.
    let number = wa_pairing_e2e::fresh_number("6012");
    let number = &number[..11];
    let typed = format!("0{}-{} {}", &number[2..4], &number[4..7], &number[7..]);
    let (status, started) = call(
        &client,
        Method::POST,
        &format!("{base}/api/devices/{id}/pairing"),
        &owner,
        json!({"phone_number": typed}),
    )
    .await;
    assert_eq!(
        started["phone_for_pairing"], number,
        "read in the configured region: {started}"
    );
    assert_eq!(status, StatusCode::ACCEPTED, "{started}");

    let shown = until_event(&mut events, &mut buf, "a pairing code", |v| {
        v["pairing_code"].is_string()
    })
    .await;
    let code = shown["pairing_code"].as_str().expect("a code").to_owned();
    assert_eq!(shown["status"], "waiting_pairing");

    // The person types the code the page shows on the phone.
    stack
        .sim
        .phone(number)
        .enter_code(&code)
        .await
        .expect("the code links");
    let linked = until_event(&mut events, &mut buf, "connected", |v| {
        v["status"] == "connected"
    })
    .await;
    assert_eq!(linked["phone_number"], number);
    assert!(linked["pairing_code"].is_null());

    // Prometheus' view of the same pairing. The device is stored as connected when the phone
    // accepts the link; the session gauge rises a moment later, when the actor takes up the
    // live session.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&client, health).await;
        if sample(&text, "wa_pairing_sessions") == Some(1.0)
            || tokio::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(
        sample(&text, "wa_pairing_outcomes_total{kind=\"linked\"}"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "wa_pairing_time_to_code_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "wa_pairing_time_to_link_seconds_count"),
        Some(1.0),
        "{text}"
    );
    assert!(
        sample(&text, "wa_pairing_time_to_link_seconds_bucket{le=\"1200\"}") == Some(1.0),
        "the link's buckets: {text}"
    );
    assert!(
        sample(&text, "wa_pairing_claim_seconds_count").is_some_and(|n| n >= 1.0),
        "{text}"
    );
    assert_eq!(sample(&text, "wa_pairing_sessions"), Some(1.0), "{text}");
    assert!(
        text.contains("# HELP wa_pairing_outcomes_total"),
        "described: {text}"
    );
    assert!(
        !text.contains(&code) && !text.contains(number),
        "no code or number in the metrics"
    );

    // The owner disconnects: the runner stops the session for an owner's action, which is
    // counted as such and never as a lost lease (the metric operators alert on).
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/api/devices/{id}/disconnect"),
        &owner,
        Value::Null,
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    until_event(&mut events, &mut buf, "disconnected", |v| {
        v["status"] == "disconnected"
    })
    .await;
    let stops = "wa_pairing_session_stops_total{reason=\"owner_action\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&client, health).await;
        if (sample(&text, stops) == Some(1.0) && sample(&text, "wa_pairing_sessions") == Some(0.0))
            || tokio::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&text, stops), Some(1.0), "{text}");
    assert_eq!(sample(&text, "wa_pairing_sessions"), Some(0.0), "{text}");
    assert_eq!(
        sample(&text, "wa_pairing_leases_lost_total"),
        Some(0.0),
        "an owner's action is not a lost lease: {text}"
    );

    // Connected again without a code, so that the stop below has a lease to release.
    let (status, body) = call(
        &client,
        Method::POST,
        &format!("{base}/api/devices/{id}/resume"),
        &owner,
        Value::Null,
    )
    .await;
    assert!(status.is_success(), "{status} {body}");
    // The row reads connected at once; the session is back when a runner resumed it.
    let resumed = "wa_pairing_outcomes_total{kind=\"resumed\"}";
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let text = loop {
        let text = scrape(&client, health).await;
        if (sample(&text, resumed) == Some(1.0)
            && sample(&text, "wa_pairing_sessions") == Some(1.0))
            || tokio::time::Instant::now() > deadline
        {
            break text;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(sample(&text, resumed), Some(1.0), "{text}");
    assert_eq!(sample(&text, "wa_pairing_sessions"), Some(1.0), "{text}");
    // The scrape after a link, a disconnect and a resume, for `promtool check metrics` (CI
    // sets the file).
    if let Ok(path) = std::env::var("WA_PAIRING_TEST_METRICS_OUT") {
        std::fs::write(&path, &text).expect("the scrape written");
    }

    // SIGTERM with the owner's event stream still open: it never ends by itself, and the
    // service stops anyway once the API's drain is over.
    let _ = stop.send(());
    let summary = tokio::time::timeout(Duration::from_secs(60), running)
        .await
        .expect("stops in time, the open event stream notwithstanding")
        .expect("the service task");
    drop(events);
    assert!(summary.released >= 1, "{summary:?}");
    assert!(
        tokio::net::TcpStream::connect(api).await.is_err(),
        "the API is closed"
    );
    assert!(
        tokio::net::TcpStream::connect(health).await.is_err(),
        "the health endpoint is closed"
    );
    db.drop().await;
}
