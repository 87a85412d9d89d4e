//! A fresh PostgreSQL database per test, with Supabase's roles and the migrations applied.
#![allow(dead_code, unreachable_pub, missing_docs)]

use tokio_postgres::NoTls;
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_store_testkit::{Skip, TestBackend};

pub const URL_ENV: &str = "WA_PAIRING_TEST_POSTGRES_URL";

pub struct TestDb {
    pub url: String,
    pub name: String,
    admin_url: String,
}

fn with_db(url: &str, db: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let base = match base.rsplit_once('/') {
        Some((host, _)) if host.contains("://") && !host.ends_with(':') && !host.ends_with('/') => {
            host.to_owned()
        }
        _ => base.trim_end_matches('/').to_owned(),
    };
    match query {
        Some(q) => format!("{base}/{db}?{q}"),
        None => format!("{base}/{db}"),
    }
}

impl TestDb {
    /// Creates an empty database with the Supabase roles fixture; `Err(Skip)` when no server.
    pub async fn create() -> Result<Self, Skip> {
        let admin_url = std::env::var(URL_ENV)
            .map_err(|_| Skip::new(format!("{URL_ENV} is not set; point it at a PostgreSQL superuser (for example postgres://postgres@127.0.0.1:5432/postgres)")))?;
        let (admin, conn) = tokio_postgres::connect(&admin_url, NoTls)
            .await
            .map_err(|e| Skip::new(format!("no PostgreSQL at {URL_ENV}: {e}")))?;
        tokio::spawn(conn);
        let name = format!("wa_test_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("create database {name}"))
            .await
            .expect("create the test database");
        let url = with_db(&admin_url, &name);
        let (db, conn) = tokio_postgres::connect(&url, NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        db.batch_execute(include_str!("../fixtures/supabase_roles.sql"))
            .await
            .expect("the Supabase roles fixture");
        Ok(Self {
            url,
            name,
            admin_url,
        })
    }

    pub async fn store(&self) -> PostgresStore {
        let store =
            PostgresStore::connect(&PostgresConfig::new(&self.url).pool_size(8)).expect("pool");
        store.migrate().await.expect("migrations");
        store
    }

    pub async fn drop_db(admin_url: String, name: String) {
        if let Ok((admin, conn)) = tokio_postgres::connect(&admin_url, NoTls).await {
            tokio::spawn(conn);
            let _ = admin
                .batch_execute(&format!("drop database if exists {name} with (force)"))
                .await;
        }
    }

    pub fn cleanup(
        &self,
    ) -> impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + 'static
    {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        move || Box::pin(Self::drop_db(admin, name))
    }
}

/// A connection to `url` acting as `role` (Supabase's `anon`, `authenticated`...), as
/// PostgREST would: `set role`, and the user's id where `auth.uid()` reads it.
pub async fn as_role(
    url: &str,
    role: &str,
    user: Option<wa_pairing_store::UserId>,
) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, NoTls).await.unwrap();
    tokio::spawn(conn);
    client
        .batch_execute(&format!("set role {role}"))
        .await
        .unwrap();
    if let Some(u) = user {
        client
            .batch_execute(&format!("set request.jwt.claim.sub = '{u}'"))
            .await
            .unwrap();
    }
    client
}

/// The SQLSTATE of a database error (empty for other failures).
pub fn code(e: &tokio_postgres::Error) -> String {
    e.as_db_error()
        .map(|d| d.code().code().to_owned())
        .unwrap_or_default()
}

pub async fn backend() -> Result<TestBackend, Skip> {
    let db = TestDb::create().await?;
    let store = db.store().await;
    let cleanup = db.cleanup();
    Ok(TestBackend::new(store.stores().build()).with_cleanup(cleanup))
}
