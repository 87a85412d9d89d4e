//! `WaBackend` over the in-memory store against `wacore::store::InMemoryBackend`: the same
//! random call sequences give the same answers, and a restart in the middle loses nothing.

mod common;

use common::oracle::{OP_KINDS, Pair, RawOp, apply};
use proptest::prelude::*;

fn ops() -> impl Strategy<Value = Vec<RawOp>> {
    prop::collection::vec(
        (
            0..=OP_KINDS,
            0usize..8,
            0usize..8,
            0usize..8,
            prop::collection::vec(any::<u8>(), 0..6),
            any::<bool>(),
        ),
        1..80,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn same_answers_as_the_in_memory_backend(ops in ops()) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let (store, lease) = common::memory_device().await;
            let mut pair = Pair::new(store, lease.device_id, lease.fence);
            let mut history = Vec::new();
            for op in &ops {
                if op.0 == OP_KINDS {
                    pair.restart();
                    history.push("-- restart --".to_owned());
                    continue;
                }
                let (desc, oracle, ours) = apply(&mut pair, op).await;
                history.push(desc.clone());
                prop_assert_eq!(&ours, &oracle, "after {:#?}", history);
            }
            Ok(())
        })?;
    }
}
