//! `wa-pairing-postrust`: postrust-server, a PostgREST-compatible server, with its REST API
//! under `/rest/v1` as a Supabase project serves PostgREST.
//!
//! Configured like PostgREST, by `PGRST_*` variables (`PGRST_DB_URI`, `PGRST_DB_ANON_ROLE`,
//! `PGRST_JWT_SECRET`, `PGRST_DB_SCHEMAS`, `PGRST_SERVER_HOST`, `PGRST_SERVER_PORT`, with
//! `PGRST_COMPAT_MODE=true` for PostgREST's own answers). `PGRST_SERVER_PORT=0` takes a free
//! port. Its first line on standard output is `listening on http://HOST:PORT`, so that a test
//! starting it learns the address; its log goes to standard error.

use anyhow::Context as _;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("postrust=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let config = postrust_core::AppConfig::try_from_env()?;
    let addr = format!("{}:{}", config.server_host, config.server_port);
    let app = postrust_server::build(config, postrust_server::Host::SERVER).await?;
    let router = axum::Router::new().nest("/rest/v1", app.router);
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(
        postrust_server::lenient_uri::LenientListener(listener),
        router,
    )
    .with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
