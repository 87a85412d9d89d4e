//! `WaBackend` over the in-memory store against `wacore::store::InMemoryBackend`: the same
//! random call sequences give the same answers, and a restart in the middle loses nothing.

mod common;

use common::oracle::{ops, same_answers};
use proptest::prelude::*;

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn same_answers_as_the_in_memory_backend(ops in ops()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (store, lease) = common::memory_device().await;
            same_answers(store, lease.device_id, lease.fence, &ops).await
        })?;
    }
}
