//! A server the client cannot trust (here the simulator presenting a certificate for another
//! key, as a TLS-intercepting proxy would) fails the owner's pairing at once: the owner reads
//! that the service cannot reach WhatsApp, the operator reads one line naming the server and
//! what to change, and no line carries a build machine's file path.
#![allow(missing_docs)]

mod logs;

use wa_pairing_e2e::ServiceEnv;
use wa_pairing_e2e::Stack;
use wa_pairing_service::logging::{DEFAULT_FILTER, LogFormat, init_logging_with};
use wa_pairing_service::{Service, Settings};
use wa_pairing_sim::SimConfig;
use wa_pairing_store::DeviceStatus;
use wa_pairing_store_testkit::skip;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_untrusted_server_fails_the_pairing_at_once_with_one_clear_line() {
    let captured = logs::Captured::default();
    let sink = captured.clone();
    init_logging_with(LogFormat::Json, DEFAULT_FILTER, move || sink.clone());
    let (stores, db) = match wa_pairing_e2e::postgres().await {
        Ok(x) => x,
        Err(why) => return skip("untrusted server e2e", &why),
    };
    let stack = Stack::start_with(stores, SimConfig::default().foreign_certificate(true)).await;
    let server = stack.sim.url();
    let env = ServiceEnv::new(&db.url, &wa_pairing_e2e::test_keys_setting())
        .set("WA_PAIRING_INSTANCE_ID", "untrusted-e2e")
        .set("WA_PAIRING_WA_SERVER_URL", &server);
    let settings = Settings::from_lookup(|n| env.get(n)).expect("settings");
    let service = Service::build(settings).await.expect("the service builds");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let running = tokio::spawn(service.run(async {
        let _ = stopped.await;
    }));
    let phone = wa_pairing_e2e::fresh_number("6281266");
    let device = stack.device(&phone).await;
    let failed = stack
        .until(device.id, "failed", |d| d.status == DeviceStatus::Failed)
        .await;
    let _ = stop.send(());
    running.await.expect("the service task");
    db.drop().await;

    let message = failed.error_message.expect("a message for the owner");
    assert!(message.contains("cannot reach WhatsApp"), "{message}");
    assert!(
        !message.contains(&server),
        "no address for the owner: {message}"
    );

    let text = captured.text();
    let ours: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("did not prove it is WhatsApp's"))
        .collect();
    assert_eq!(ours.len(), 1, "one line for the operator:\n{text}");
    assert!(ours[0].contains("\"level\":\"ERROR\""), "{}", ours[0]);
    assert!(
        ours[0].contains(&server),
        "it names the server: {}",
        ours[0]
    );
    assert!(
        ours[0].contains("insecure-sim"),
        "it says what to change: {}",
        ours[0]
    );
    let client_lines = text
        .lines()
        .filter(|l| l.contains("certificate verification failed"))
        .count();
    assert!(
        client_lines <= 1,
        "the client's own error is not repeated ({client_lines} lines):\n{text}"
    );
    for line in text.lines() {
        assert!(
            !line.contains("/registry/src/") && !line.contains("\"log.file\""),
            "a build path in a log line: {line}"
        );
    }
}
