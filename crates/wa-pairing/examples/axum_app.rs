//! wa-pairing inside an existing axum application: the owner-facing API and device page
//! mounted under the app's router, a route of the app's own that uses the same `Owner`
//! extractor with the app's own state, and the runner beside it on the same stores.
//!
//! ```sh
//! export WA_PAIRING_AUTH_KEYS="1:$(openssl rand -base64 32)"
//! export SUPABASE_URL=https://<project-ref>.supabase.co SUPABASE_JWT_SECRET=...
//! cargo run -p wa-pairing --example axum_app --features full
//! ```
//!
//! The in-memory store keeps the example self-contained; a deployment uses
//! `PostgresStore::stores()` (see the facade's README) and the production service.

use std::sync::Arc;

use axum::Json;
use axum::extract::{FromRef, State};
use axum::routing::get;
use wa_pairing::http::{AuthConfig, HttpConfig, Owner, router};
use wa_pairing::runner::{Runner, RunnerConfig};
use wa_pairing::store::{Keyring, MemoryStore, Stores};
use wa_pairing::whatsapp::WhatsAppConfig;

/// The application's own state: its stores and its token check.
#[derive(Clone)]
struct AppState {
    stores: Stores,
    auth: AuthConfig,
}

// `Owner` works in any state that hands it an `AuthConfig`.
impl FromRef<AppState> for AuthConfig {
    fn from_ref(state: &AppState) -> Self {
        state.auth.clone()
    }
}

/// A route of the application's own: how many devices the signed-in owner has.
async fn my_device_count(
    State(app): State<AppState>,
    Owner(user): Owner,
) -> Json<serde_json::Value> {
    let n = app
        .stores
        .devices()
        .list_for_user(user)
        .await
        .map_or(0, |d| d.len());
    Json(serde_json::json!({ "devices": n }))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let project = std::env::var("SUPABASE_URL")?;
    let secret = std::env::var("SUPABASE_JWT_SECRET")?;
    let stores = MemoryStore::new()
        .stores()
        .encrypt(Keyring::from_env()?)
        .build();
    let auth = AuthConfig::supabase(&project)?.hs256(secret);

    // The runner, on the same stores, in the same process.
    let connector = WhatsAppConfig::from_env()?.build()?;
    let runner = Runner::new(stores.clone(), Arc::new(connector), RunnerConfig::default())?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let runner = tokio::spawn(runner.run(async {
        let _ = stopped.await;
    }));

    let app = axum::Router::new()
        .route("/me/device-count", get(my_device_count))
        .with_state(AppState {
            stores: stores.clone(),
            auth: auth.clone(),
        })
        .nest("/whatsapp", router(&stores, HttpConfig::new(auth)));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
    println!("device page on http://127.0.0.1:3000/whatsapp/");
    axum::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    let _ = stop.send(());
    runner.await?;
    Ok(())
}
