//! A throwaway PostgreSQL database on the server `WA_PAIRING_TEST_POSTGRES_URL` points at.

use std::future::Future;
use std::pin::Pin;

use tokio_postgres::NoTls;
use wa_pairing_store_testkit::Skip;

/// The environment variable naming the test server: a PostgreSQL superuser's URL (for
/// example `postgres://postgres@127.0.0.1:5432/postgres`).
pub const POSTGRES_URL_ENV: &str = "WA_PAIRING_TEST_POSTGRES_URL";

/// `url` with its database replaced by `database`, keeping its parameters
/// (`?sslmode=...`); a URL without a database gets one.
///
/// ```
/// use wa_pairing_test_support::with_database;
///
/// assert_eq!(with_database("postgres://u@h:5432/postgres", "t"), "postgres://u@h:5432/t");
/// assert_eq!(with_database("postgres://u@h:5432/postgres?sslmode=disable", "t"), "postgres://u@h:5432/t?sslmode=disable");
/// assert_eq!(with_database("postgres://u@h:5432", "t"), "postgres://u@h:5432/t");
/// assert_eq!(with_database("postgres://u@h:5432/", "t"), "postgres://u@h:5432/t");
/// ```
pub fn with_database(url: &str, database: &str) -> String {
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
        Some(q) => format!("{base}/{database}?{q}"),
        None => format!("{base}/{database}"),
    }
}

/// An empty database of its own on the test server, dropped by [`drop`](Self::drop) (or
/// the closure of [`cleanup`](Self::cleanup)).
#[derive(Debug)]
pub struct TestDb {
    /// Its URL (the test server's, with this database).
    pub url: String,
    name: String,
    admin_url: String,
}

impl TestDb {
    /// Creates an empty database named `<prefix>_<random>`. `Err(Skip)` when
    /// [`POSTGRES_URL_ENV`] is not set or its server cannot be reached; a database that
    /// cannot be created is a failure (a panic).
    pub async fn create(prefix: &str) -> Result<Self, Skip> {
        let admin_url = std::env::var(POSTGRES_URL_ENV).map_err(|_| {
            Skip::new(format!(
                "{POSTGRES_URL_ENV} is not set; point it at a PostgreSQL superuser (for example postgres://postgres@127.0.0.1:5432/postgres)"
            ))
        })?;
        let (admin, conn) = tokio_postgres::connect(&admin_url, NoTls)
            .await
            .map_err(|e| Skip::new(format!("no PostgreSQL at {POSTGRES_URL_ENV}: {e}")))?;
        tokio::spawn(conn);
        let name = format!("{prefix}_{}", uuid::Uuid::new_v4().simple());
        admin
            .batch_execute(&format!("create database {name}"))
            .await
            .unwrap_or_else(|e| panic!("cannot create the test database {name}: {e}"));
        Ok(Self {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        })
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The test server's superuser URL (the database it names is not this one).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// A plain connection to this database.
    pub async fn connect(&self) -> tokio_postgres::Client {
        let (client, conn) = tokio_postgres::connect(&self.url, NoTls)
            .await
            .expect("connect to the test database");
        tokio::spawn(conn);
        client
    }

    /// Cuts every connection to the database (as a failover or a network cut would), and
    /// returns how many there were.
    pub async fn cut_connections(&self) -> u64 {
        let (client, conn) = tokio_postgres::connect(&self.admin_url, NoTls)
            .await
            .expect("admin connection");
        tokio::spawn(conn);
        client
            .query(
                "select pg_terminate_backend(pid) from pg_stat_activity \
                 where datname = $1 and pid <> pg_backend_pid()",
                &[&self.name],
            )
            .await
            .expect("terminate connections")
            .len() as u64
    }

    /// Drops the database (connections still open to it are cut).
    pub async fn drop(self) {
        drop_database(self.admin_url, self.name).await;
    }

    /// What drops the database, for
    /// [`TestBackend::with_cleanup`](wa_pairing_store_testkit::TestBackend::with_cleanup).
    pub fn cleanup(
        &self,
    ) -> impl FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + 'static {
        let (admin, name) = (self.admin_url.clone(), self.name.clone());
        move || Box::pin(drop_database(admin, name))
    }
}

async fn drop_database(admin_url: String, name: String) {
    if let Ok((admin, conn)) = tokio_postgres::connect(&admin_url, NoTls).await {
        tokio::spawn(conn);
        let _ = admin
            .batch_execute(&format!("drop database if exists {name} with (force)"))
            .await;
    }
}
