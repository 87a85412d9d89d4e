//! The whole conformance suite against a live Supabase project: a project dedicated to tests,
//! with the migrations applied (the suite claims whatever devices need work there), given by
//! `WA_PAIRING_TEST_SUPABASE_URL` and `WA_PAIRING_TEST_SUPABASE_KEY`.
//!
//! A Supabase project cannot be provisioned offline, so these tests are ignored by default
//! (and reported as such, never as passes); run them with
//! `cargo test -p wa-pairing-supabase --test live -- --ignored` where a project is configured.
//! The same SQL functions run on the real PostgreSQL server in `wa-pairing-postgres`'s suite,
//! and `tests/contract.rs` checks every request this crate sends.
#![allow(missing_docs)]

use wa_pairing_store_testkit::{Skip, TestBackend};
use wa_pairing_supabase::SupabaseConfig;

const URL_ENV: &str = "WA_PAIRING_TEST_SUPABASE_URL";
const KEY_ENV: &str = "WA_PAIRING_TEST_SUPABASE_KEY";

#[allow(clippy::unused_async)]
async fn live_backend() -> Result<TestBackend, Skip> {
    let (Ok(url), Ok(key)) = (std::env::var(URL_ENV), std::env::var(KEY_ENV)) else {
        return Err(Skip::new(format!(
            "set {URL_ENV} and {KEY_ENV} to a Supabase project with the migrations applied"
        )));
    };
    let store = SupabaseConfig::new(url, key)
        .build()
        .map_err(|e| Skip::new(e.to_string()))?;
    Ok(TestBackend::new(store.stores().build()))
}

wa_pairing_store_testkit::conformance_tests!(
    live_backend; devices, auth_state, auth_cascade, budget;
    ignore = "needs a live Supabase project: set WA_PAIRING_TEST_SUPABASE_URL and WA_PAIRING_TEST_SUPABASE_KEY, then run with --ignored"
);
