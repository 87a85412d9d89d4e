//! Every fault the simulator can inject surfaces in the real client as PROTOCOL.md says.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::TestClient;
use wa_pairing_sim::{
    LoginFailure, Refusal, Sim, SimConfig, SimError, SimEvent, Stage, StreamError,
};
use wacore::pair_code::PairCodeRejection;
use wacore::store::InMemoryBackend;
use wacore::types::events::Event;

async fn sim() -> Sim {
    Sim::start(SimConfig::default()).await.unwrap()
}

/// Pairs a fresh client for `phone` and waits until it is connected.
async fn paired(sim: &Sim, phone: &str) -> (TestClient, Arc<InMemoryBackend>) {
    let backend = Arc::new(InMemoryBackend::new());
    let mut client = TestClient::start(&sim.url(), backend.clone()).await;
    let code = client.request_code(phone).await.expect("a code");
    sim.phone(phone).enter_code(&code).await.expect("pairs");
    client
        .wait("connected", |e| matches!(e, Event::Connected(_)))
        .await;
    (client, backend)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_refusals_come_back_typed_with_the_servers_backoff() {
    let sim = sim().await;
    let cases = [
        (
            Refusal::BadRequest {
                backoff: Some(Duration::from_secs(120)),
            },
            PairCodeRejection::BadRequest,
            Some(120),
        ),
        (Refusal::Forbidden, PairCodeRejection::Forbidden, None),
        (
            Refusal::RateOverlimit {
                backoff: Some(Duration::from_secs(300)),
            },
            PairCodeRejection::RateOverlimit,
            Some(300),
        ),
        (
            Refusal::RateOverlimit { backoff: None },
            PairCodeRejection::RateOverlimit,
            None,
        ),
        (
            Refusal::FeatureNotAvailable,
            PairCodeRejection::FeatureNotAvailable,
            None,
        ),
        (
            Refusal::InternalServerError,
            PairCodeRejection::InternalServerError,
            None,
        ),
    ];
    for (i, (refusal, rejection, backoff)) in cases.into_iter().enumerate() {
        let phone = format!("62811000000{i:02}");
        sim.phone(&phone).refuse_code_requests(refusal, Some(1));
        let client = TestClient::start(&sim.url(), Arc::new(InMemoryBackend::new())).await;
        let err = client.request_code(&phone).await.expect_err("refused");
        assert_eq!(err.rejection(), Some(rejection), "{refusal:?}: {err}");
        assert_eq!(err.backoff().map(|d| d.as_secs()), backoff, "{refusal:?}");
        // The refusal was for one request only: the next one gets a code.
        assert!(client.request_code(&phone).await.is_ok());
        assert_eq!(sim.counters().code_requests_for(&phone), 2);
        client.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_code_fails_and_the_right_one_still_links() {
    let sim = sim().await;
    let phone = "6281100000100";
    let mut client = TestClient::start(&sim.url(), Arc::new(InMemoryBackend::new())).await;
    let code = client.request_code(phone).await.unwrap();
    let wrong = if code.starts_with('A') {
        "BBBBBBBB"
    } else {
        "AAAAAAAA"
    };
    let err = sim.phone(phone).enter_code(wrong).await.unwrap_err();
    assert!(matches!(err, SimError::WrongCode), "{err}");
    sim.phone(phone)
        .enter_code(&code.to_lowercase())
        .await
        .expect("the right code");
    client
        .wait("pair success", |e| matches!(e, Event::PairSuccess(_)))
        .await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_entered_before_any_request_is_refused() {
    let sim = sim().await;
    let err = sim
        .phone("6281100000101")
        .enter_code("ABCD-EFGH")
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::NoCodeRequested));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_phone_can_ask_for_a_fresh_code() {
    let sim = sim().await;
    let phone = "6281100000102";
    let mut client = TestClient::start(&sim.url(), Arc::new(InMemoryBackend::new())).await;
    client.request_code(phone).await.unwrap();
    sim.phone(phone).request_refresh().unwrap();
    client
        .wait("refresh", |e| matches!(e, Event::PairingCodeRefresh(_)))
        .await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_phone_never_links() {
    let sim = sim().await;
    let phone = "6281100000103";
    let client = TestClient::start(&sim.url(), Arc::new(InMemoryBackend::new())).await;
    let code = client.request_code(phone).await.unwrap();
    sim.phone(phone).go_silent();
    sim.phone(phone).enter_code(&code).await.unwrap();
    assert_eq!(sim.counters().pairings, 0);
    assert!(!sim.phone(phone).is_linked());
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_dropped_at_the_code_request_fails_the_request() {
    let sim = sim().await;
    let phone = "6281100000104";
    sim.phone(phone).drop_at(Stage::CodeRequest);
    let client = TestClient::start(&sim.url(), Arc::new(InMemoryBackend::new())).await;
    let err = client
        .request_code(phone)
        .await
        .expect_err("the socket dropped");
    assert_eq!(
        err.rejection(),
        None,
        "a dropped socket is not a refusal: {err}"
    );
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stream_errors_after_login() {
    let sim = sim().await;
    // 516: logged out.
    let (mut c, _) = paired(&sim, "6281100000110").await;
    sim.phone("6281100000110")
        .send_stream_error(StreamError::LoggedOut);
    c.wait("logged out", |e| matches!(e, Event::LoggedOut(_)))
        .await;
    c.stop().await;
    // 409 replaced: never reconnects.
    let (mut c, _) = paired(&sim, "6281100000111").await;
    sim.phone("6281100000111")
        .send_stream_error(StreamError::Replaced);
    c.wait("replaced", |e| matches!(e, Event::StreamReplaced(_)))
        .await;
    c.stop().await;
    // 503 and 515: the client reconnects and logs in again by itself.
    for (phone, error) in [
        ("6281100000112", StreamError::Unavailable),
        ("6281100000113", StreamError::Restart),
    ] {
        let (c, _) = paired(&sim, phone).await;
        let logins = sim.counters().logins;
        let relogin = sim.wait_for(Duration::from_secs(60), |e| {
            matches!(e, SimEvent::LoggedIn { .. })
        });
        sim.phone(phone).send_stream_error(error);
        relogin.await.expect("logged in again");
        assert!(sim.counters().logins > logins);
        c.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_failures() {
    let sim = sim().await;
    let cases: [(&str, LoginFailure); 3] = [
        ("6281100000120", LoginFailure::LoggedOut),
        (
            "6281100000121",
            LoginFailure::TemporarilyBanned {
                expires_in: Duration::from_secs(3600),
            },
        ),
        ("6281100000122", LoginFailure::ClientOutdated),
    ];
    for (phone, failure) in cases {
        let (c, backend) = paired(&sim, phone).await;
        c.stop().await;
        sim.phone(phone).fail_next_login(failure);
        let mut again = TestClient::start(&sim.url(), backend).await;
        match failure {
            LoginFailure::LoggedOut => {
                let e = again
                    .wait("logged out", |e| matches!(e, Event::LoggedOut(_)))
                    .await;
                let Event::LoggedOut(l) = &*e else {
                    unreachable!()
                };
                assert!(l.on_connect);
            }
            LoginFailure::TemporarilyBanned { .. } => {
                let e = again
                    .wait("ban", |e| matches!(e, Event::TemporaryBan(_)))
                    .await;
                let Event::TemporaryBan(b) = &*e else {
                    unreachable!()
                };
                assert_eq!(b.expire.num_seconds(), 3600);
            }
            _ => {
                again
                    .wait("outdated", |e| matches!(e, Event::ClientOutdated(_)))
                    .await;
            }
        }
        again.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_the_device_on_the_phone_logs_it_out_for_good() {
    let sim = sim().await;
    let phone = "6281100000130";
    let (mut c, backend) = paired(&sim, phone).await;
    sim.phone(phone).logout();
    c.wait("logged out", |e| matches!(e, Event::LoggedOut(_)))
        .await;
    c.stop().await;
    assert!(!sim.phone(phone).is_linked());
    let mut again = TestClient::start(&sim.url(), backend).await;
    again
        .wait("refused at login", |e| matches!(e, Event::LoggedOut(_)))
        .await;
    again.stop().await;
}

#[tokio::test]
async fn the_simulator_refuses_to_listen_outside_loopback() {
    let err = Sim::start(SimConfig::default().bind("0.0.0.0:0".parse().unwrap()))
        .await
        .unwrap_err();
    assert!(matches!(err, SimError::NotLoopback));
    assert!(err.to_string().contains("loopback"));
}
