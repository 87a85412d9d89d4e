//! The in-memory backend, alone and under the encryption wrapper, passes the whole
//! conformance suite.

mod memory {
    use wa_pairing_store::MemoryStore;
    use wa_pairing_store_testkit::{Skip, TestBackend};

    #[allow(clippy::unused_async)]
    async fn backend() -> Result<TestBackend, Skip> {
        Ok(TestBackend::new(MemoryStore::new().stores().build()))
    }

    wa_pairing_store_testkit::conformance_tests!(backend; devices, auth_state, auth_cascade, code_cache, budget, change_feed);
}

mod encrypted_memory {
    use wa_pairing_store::{Keyring, MemoryStore};
    use wa_pairing_store_testkit::{Skip, TestBackend};

    #[allow(clippy::unused_async)]
    async fn backend() -> Result<TestBackend, Skip> {
        let keyring = Keyring::new(2, [7; 32]).with_old_key(1, [9; 32]);
        Ok(TestBackend::new(
            MemoryStore::new().stores().encrypt(keyring).build(),
        ))
    }

    wa_pairing_store_testkit::conformance_tests!(backend; devices, auth_state, auth_cascade, code_cache, budget, change_feed);
}
