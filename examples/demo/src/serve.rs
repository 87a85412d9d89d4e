//! `--serve`: the device page of `wa-pairing-http` against the simulator, so a person can
//! link a (simulated) phone from a browser.

use std::net::SocketAddr;
use std::time::Duration;

use futures::StreamExt as _;
use wa_pairing_http::{AuthConfig, HttpConfig, router};
use wa_pairing_sim::{Sim, SimConfig};
use wa_pairing_store::{Change, DeviceStatus, DeviceStore, MemoryStore, UserId};

use crate::display::Display;

/// How long the simulated phone waits before typing a code shown on the page.
const TYPING_DELAY: Duration = Duration::from_secs(5);

/// The issuer of the demo's own tokens (a Supabase project's is `<url>/auth/v1`).
const ISSUER: &str = "http://localhost/wa-pairing-demo/auth/v1";
pub(crate) async fn serve(ui: &Display, addr: SocketAddr) -> Result<(), String> {
    let sim = Sim::start(SimConfig::default())
        .await
        .map_err(|e| e.to_string())?;
    let store = MemoryStore::new();
    let (stop, runner, _sessions) = crate::start_runner(&sim, &store)?;

    // A secret for this run only, and a token for one demo user signed with it.
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let claims = serde_json::json!({
        "sub": UserId::random().to_string(),
        "aud": "authenticated",
        "iss": ISSUER,
        "exp": chrono::Utc::now().timestamp() + 24 * 3600,
    });
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .map_err(|e| e.to_string())?;
    let app = router(
        &store.stores().build(),
        HttpConfig::new(AuthConfig::new(ISSUER).hs256(&secret)),
    );
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    ui.step("✓", &format!("offline WhatsApp simulator on {}", sim.url()));
    ui.step("✓", "runner started (in-memory store)");
    ui.step("→", &format!("open http://{addr}/#access_token={token}"));
    ui.detail("add a device with any number; the simulated phone types the code it shows");
    ui.detail(&format!(
        "{} s later (Ctrl-C stops)",
        TYPING_DELAY.as_secs()
    ));

    let phone_task = tokio::spawn(simulated_phones(sim.clone(), store.clone()));
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await;
    phone_task.abort();
    let _ = stop.send(());
    let _ = runner.await;
    sim.shutdown().await;
    served.map_err(|e| e.to_string())
}

/// Types every code shown, on the phone it was issued for, after [`TYPING_DELAY`].
async fn simulated_phones(sim: Sim, store: MemoryStore) {
    let Ok(Some(mut feed)) = store.subscribe().await else {
        return;
    };
    let mut typed = std::collections::HashSet::new();
    while let Some(change) = feed.next().await {
        let Change::Device(id) = change else { continue };
        let Ok(d) = store.get(id).await else { continue };
        if d.status != DeviceStatus::WaitingPairing {
            continue;
        }
        let (Some(code), Some(number)) = (d.pairing_code, d.phone_for_pairing) else {
            continue;
        };
        if typed.insert(code.to_string()) {
            let phone = sim.phone(number.digits());
            tokio::spawn(async move {
                tokio::time::sleep(TYPING_DELAY).await;
                let _ = phone.enter_code(&code.to_string()).await;
            });
        }
    }
}
