//! With our own crates at `debug` and every dependency at `info` (where the WhatsApp client
//! logs the number and the code), a pairing through the service still writes no pairing code
//! and no full phone number: the redacting writer catches what the filter lets through.
#![allow(missing_docs)]

mod logs;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn debug_for_our_crates_and_info_for_the_rest_writes_no_code_and_no_number() {
    logs::pair_and_check("info,wa_pairing=debug", true).await;
}
