//! Helpers the workspace's tests share, written once: a throwaway PostgreSQL database
//! ([`TestDb`]), a PgBouncer in transaction mode ([`PgBouncer`]), test certificate
//! authorities and throwaway TLS servers ([`tls`]), the service's settings
//! ([`ServiceEnv`]), and a PostgREST-compatible server configured as Supabase's
//! ([`Postrust`], with Supabase's roles in [`SUPABASE_ROLES_SQL`]). Not published: only dev-dependencies (and the end-to-end tests) use it.
//!
//! Everything that needs something the machine may lack returns
//! [`Skip`](wa_pairing_store_testkit::Skip), so the one skip rule applies
//! (`WA_PAIRING_TEST_STRICT=1` turns a skip into a failure).

// Test helpers: they report failures by panicking.
#![allow(clippy::missing_panics_doc)]

mod env;
mod pg;
mod pgbouncer;
mod postrust;
pub mod tls;

pub use env::ServiceEnv;
pub use pg::{POSTGRES_URL_ENV, TestDb, with_database};
pub use pgbouncer::PgBouncer;
pub use postrust::{POSTRUST_BIN_ENV, Postrust, SUPABASE_ROLES_SQL};

/// A free TCP port on 127.0.0.1 (free when asked: bind it soon).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port on loopback")
}
