//! At the default log level, a pairing through the service writes no pairing code and no full
//! phone number, in any line of the process (its dependencies' included).
#![allow(missing_docs)]

mod logs;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_default_level_writes_no_code_and_no_number() {
    logs::pair_and_check(wa_pairing_service::logging::DEFAULT_FILTER, false).await;
}
