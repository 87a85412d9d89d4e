//! The whole conformance suite against a live Supabase project, when one is configured with
//! `WA_PAIRING_TEST_SUPABASE_URL` and `WA_PAIRING_TEST_SUPABASE_KEY` (a project dedicated to
//! tests, with the migrations applied: the suite claims whatever devices need work there).
//!
//! Without them every test here prints why it did nothing and passes, even under
//! `WA_PAIRING_TEST_STRICT=1`: a Supabase project cannot be provisioned offline, and the
//! same SQL functions are tested on the real PostgreSQL server by `wa-pairing-postgres`.
#![allow(missing_docs)]

use std::sync::Arc;

use wa_pairing_store::testkit::TestBackend;
use wa_pairing_supabase::{SupabaseConfig, SupabaseStore};

const URL_ENV: &str = "WA_PAIRING_TEST_SUPABASE_URL";
const KEY_ENV: &str = "WA_PAIRING_TEST_SUPABASE_KEY";

fn live_backend(test: &str) -> Option<TestBackend> {
    let (Ok(url), Ok(key)) = (std::env::var(URL_ENV), std::env::var(KEY_ENV)) else {
        eprintln!(
            "skipped {test}: set {URL_ENV} and {KEY_ENV} to run it against a Supabase project (optional, also under strict mode)"
        );
        return None;
    };
    let store = SupabaseStore::new(SupabaseConfig::new(url, key).expect("the live settings"))
        .expect("the live store");
    let store = Arc::new(store);
    Some(TestBackend::new(store.clone(), store))
}

macro_rules! live_test {
    ($factory:path, $name:ident) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            if let Some(backend) = $factory(stringify!($name)) {
                wa_pairing_store::testkit::$name(&backend).await;
                backend.teardown().await;
            }
        }
    };
}

wa_pairing_store::__conformance_list!(live_test, live_backend);
