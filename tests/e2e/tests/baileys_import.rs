//! Moving from Baileys without linking again, end to end: stock Baileys (tests/baileys)
//! links a device to the simulator by pairing code, its credentials are stored as the
//! original system stored them (`devices.session_data`), `import-baileys` runs (dry run,
//! import, again), and the runner with the real `whatsapp-rust` client logs in as the same
//! companion: no new pairing, no code, `connected`, and again after a restart.
#![allow(missing_docs)]

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt as _, BufReader};
use wa_pairing_e2e::ServiceEnv;
use wa_pairing_e2e::{PgDb, Stack};
use wa_pairing_postgres::PostgresStore;
use wa_pairing_service::{ImportAction, ImportOptions, ImportReport, Settings, import_baileys};
use wa_pairing_sim::Sim;
use wa_pairing_store::{AuthStateStore, DeviceId, DeviceStatus, DeviceStore};
use wa_pairing_store_testkit::skip;
use wa_pairing_whatsapp::baileys::BaileysAuth;

/// Links `phone` with Baileys: the simulated phone types the code Baileys shows. Returns the
/// session data as the original system stored it; the auth folder is copied to `out_dir`.
async fn link_with_baileys(
    package: &Path,
    sim: &Sim,
    phone: &str,
    out_dir: &Path,
) -> serde_json::Value {
    let mut child = tokio::process::Command::new("node")
        .arg(package.join("bin/link-and-export.js"))
        .args(["--url", &sim.url(), "--phone", phone, "--out-dir"])
        .arg(out_dir)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("node starts");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let linked = tokio::time::timeout(Duration::from_secs(90), async {
        while let Some(line) = lines.next_line().await.expect("read node's output") {
            let Ok(event) = serde_json::from_str::<serde_json::Value>(&line) else {
                continue;
            };
            match event["event"].as_str() {
                Some("code") => {
                    let code = event["code"].as_str().expect("a code").to_owned();
                    let phone = sim.phone(phone);
                    phone
                        .wait_for_code_request(Duration::from_secs(15))
                        .await
                        .expect("the simulator saw Baileys' code request");
                    phone
                        .enter_code(&code)
                        .await
                        .expect("the phone types the code");
                }
                Some("linked") => return event["session_data"].clone(),
                _ => {}
            }
        }
        panic!("Baileys ended without linking (its errors are above)");
    })
    .await
    .expect("Baileys linked within 90 s");
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("node exits within 30 s of linking")
        .expect("node's exit status");
    assert!(status.success(), "the Baileys script failed: {status}");
    linked
}

fn settings(db: &PgDb, sim: &Sim, instance: &str) -> Settings {
    let env = ServiceEnv::new(&db.url, &wa_pairing_e2e::test_keys_setting())
        .set("WA_PAIRING_INSTANCE_ID", instance)
        .set("WA_PAIRING_WA_SERVER_URL", sim.url());
    Settings::from_lookup(|n| env.get(n)).expect("settings")
}

/// A row as the original system wrote it: `connected`, its number, Baileys' state.
async fn original_row(
    db: &PgDb,
    status: &str,
    phone: Option<&str>,
    session: &serde_json::Value,
) -> DeviceId {
    let (client, conn) = tokio_postgres::connect(&db.url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let row = client
        .query_one(
            "insert into public.devices (user_id, device_name, status, connection_method, phone_number, session_data)
             values ($1, 'Shop phone (Baileys)', $2, 'pairing', $3, $4) returning id",
            &[&uuid::Uuid::new_v4(), &status, &phone, session],
        )
        .await
        .expect("insert the original row");
    DeviceId(row.get(0))
}

/// `import-baileys` over the test's database, as the service runs it.
async fn run_import(db: &PgDb, sim: &Sim, options: &ImportOptions, what: &str) -> ImportReport {
    import_baileys(&settings(db, sim, "import"), options, |_| {})
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

fn line(report: &ImportReport, id: DeviceId) -> &wa_pairing_service::ImportLine {
    report
        .lines
        .iter()
        .find(|l| l.device == id)
        .unwrap_or_else(|| panic!("no line for {id} in {report:?}"))
}

async fn values(raw: &PostgresStore, id: DeviceId) -> Vec<(String, Vec<u8>)> {
    raw.scan_prefix(id, "").await.expect("raw auth state")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_baileys_session_moves_over_without_linking_again_and_survives_a_restart() {
    let package = match wa_pairing_e2e::node_package("baileys", "baileys") {
        Ok(p) => p,
        Err(why) => return skip("Baileys import e2e", &why),
    };
    let (raw, db) = match wa_pairing_e2e::postgres_store().await {
        Ok(x) => x,
        Err(why) => return skip("Baileys import e2e", &why),
    };
    let stack = Stack::start(raw.stores().encrypt(wa_pairing_e2e::test_keyring()).build()).await;
    let phone = wa_pairing_e2e::fresh_number("62815");
    let out_dir = std::env::temp_dir().join(format!("wa-pairing-baileys-{}", uuid::Uuid::new_v4()));

    // Baileys links the device, and the original system keeps its state in session_data.
    let session = link_with_baileys(&package, &stack.sim, &phone, &out_dir).await;
    let linked_by_baileys = stack.sim.phone(&phone).linked_devices();
    assert_eq!(linked_by_baileys.len(), 1, "Baileys linked one companion");
    let before = stack.sim.counters();
    assert_eq!(before.pairings, 1);
    let id = original_row(&db, "connected", Some(&phone), &session).await;
    // A second row whose session_data was cut short: reported, never written.
    let mut broken = session.clone();
    broken["creds"]["signedIdentityKey"]
        .as_object_mut()
        .expect("signedIdentityKey")
        .remove("private");
    let broken_id = original_row(&db, "connected", None, &broken).await;

    // Dry run: says what would happen, writes nothing.
    let report = run_import(
        &db,
        &stack.sim,
        &ImportOptions::new().dry_run(true),
        "dry run",
    )
    .await;
    let planned = line(&report, id);
    assert_eq!(planned.action, ImportAction::WouldImport, "{planned}");
    assert!(planned.detail.contains("pre-keys"), "{planned}");
    assert!(
        !planned.detail.contains(&phone),
        "no full number: {planned}"
    );
    let refused = line(&report, broken_id);
    assert_eq!(refused.action, ImportAction::Failed, "{refused}");
    assert!(
        refused.detail.contains("creds.signedIdentityKey.private"),
        "names the field: {refused}"
    );
    assert!(
        values(&raw, id).await.is_empty(),
        "a dry run writes nothing"
    );

    // The import.
    let report = run_import(&db, &stack.sim, &ImportOptions::new(), "import").await;
    assert_eq!(
        line(&report, id).action,
        ImportAction::Imported,
        "{report:?}"
    );
    assert_eq!(line(&report, broken_id).action, ImportAction::Failed);
    assert!(report.has_failures());
    let imported = values(&raw, id).await;
    assert!(
        imported.iter().any(|(k, _)| k == "device"),
        "the device record is stored"
    );
    assert!(
        imported.iter().any(|(k, _)| k.starts_with("prekeys/")),
        "the pre-keys are carried"
    );
    assert!(
        values(&raw, broken_id).await.is_empty(),
        "the broken row got nothing"
    );
    let row = stack.stores.devices().get(id).await.expect("row");
    assert_eq!(row.status, DeviceStatus::Connected);
    assert!(row.lease_owner.is_none(), "the import's lease is released");

    // The same credentials copied into nine more rows: one companion runs on one device
    // only (two sockets with its keys log each other out), so each copy is refused, naming
    // the device that holds it, in a dry run and in the import, and gets nothing.
    let mut clones = Vec::new();
    for _ in 0..9 {
        clones.push(original_row(&db, "connected", Some(&phone), &session).await);
    }
    for (options, what) in [
        (ImportOptions::new().dry_run(true), "dry run with copies"),
        (ImportOptions::new(), "import with copies"),
    ] {
        let report = run_import(&db, &stack.sim, &options, what).await;
        assert_eq!(line(&report, id).action, ImportAction::AlreadyImported);
        for clone in &clones {
            let refused = line(&report, *clone);
            assert_eq!(refused.action, ImportAction::Failed, "{what}: {refused}");
            assert!(
                refused.detail.contains(&id.to_string()),
                "{what}: names the device that holds the companion: {refused}"
            );
            assert!(!refused.detail.contains(&phone), "{refused}");
        }
    }
    for clone in &clones {
        assert!(values(&raw, *clone).await.is_empty(), "a copy got nothing");
        stack.stores.devices().delete(*clone).await.expect("delete");
    }

    // Again: idempotent, nothing rewritten; the folder form is the same companion.
    let report = run_import(&db, &stack.sim, &ImportOptions::new(), "import again").await;
    assert_eq!(line(&report, id).action, ImportAction::AlreadyImported);
    assert_eq!(values(&raw, id).await, imported, "nothing rewritten");
    let from_dir = BaileysAuth::from_dir(&out_dir).expect("the auth folder converts");
    let from_row = BaileysAuth::from_session_data(&session).expect("the row converts");
    assert_eq!(from_dir.summary(), from_row.summary());
    let report = run_import(
        &db,
        &stack.sim,
        &ImportOptions::new().device(id).from_dir(&out_dir),
        "import from the folder",
    )
    .await;
    assert_eq!(line(&report, id).action, ImportAction::AlreadyImported);
    let _ = std::fs::remove_dir_all(&out_dir);

    // The runner resumes it: the simulator sees a login of the same companion, no pairing.
    let runner = stack.runner(Stack::config("runner-1"));
    let first = stack
        .until(id, "resumed by runner-1", |d| {
            d.status == DeviceStatus::Connected
                && d.lease_owner.as_deref() == Some("runner-1")
                && d.last_connected_at.is_some()
        })
        .await;
    let after = stack.sim.counters();
    assert_eq!(after.pairings, before.pairings, "no new pairing");
    assert_eq!(
        after.code_requests_for(&phone),
        before.code_requests_for(&phone),
        "no pairing code asked for"
    );
    assert!(after.logins > before.logins, "the client logged in");
    assert_eq!(
        stack.sim.phone(&phone).linked_devices(),
        linked_by_baileys,
        "the phone lists the same companion, and only it"
    );
    assert_eq!(after.max_sessions_for(&phone), 1, "never two sockets");
    runner.shutdown().await;

    // And after a restart.
    let runner = stack.runner(Stack::config("runner-2"));
    stack
        .until(id, "resumed by runner-2", |d| {
            d.status == DeviceStatus::Connected
                && d.lease_owner.as_deref() == Some("runner-2")
                && d.last_connected_at > first.last_connected_at
        })
        .await;
    assert_eq!(
        stack.sim.counters().pairings,
        before.pairings,
        "still no new pairing"
    );
    assert_eq!(stack.sim.phone(&phone).linked_devices(), linked_by_baileys);
    runner.shutdown().await;
    stack.sim.shutdown().await;
    db.drop().await;
}
