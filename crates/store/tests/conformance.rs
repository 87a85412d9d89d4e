//! The in-memory backend, alone and under the encryption wrapper, passes the whole
//! conformance suite.

mod memory {
    use std::sync::Arc;
    use wa_pairing_store::MemoryStore;
    use wa_pairing_store::testkit::{Skip, TestBackend};

    #[allow(clippy::unused_async)]
    async fn backend() -> Result<TestBackend, Skip> {
        let store = Arc::new(MemoryStore::new());
        Ok(TestBackend::new(store.clone(), store.clone())
            .with_cache(store)
            .with_change_feed())
    }

    wa_pairing_store::conformance_tests!(backend);
}

mod encrypted_memory {
    use std::sync::Arc;
    use wa_pairing_store::testkit::{Skip, TestBackend};
    use wa_pairing_store::{EncryptedAuthState, Keyring, MemoryStore};

    #[allow(clippy::unused_async)]
    async fn backend() -> Result<TestBackend, Skip> {
        let store = MemoryStore::new();
        let keyring = Keyring::new(2, [7; 32]).with_old_key(1, [9; 32]);
        let auth = Arc::new(EncryptedAuthState::new(store.clone(), keyring));
        let store = Arc::new(store);
        Ok(TestBackend::new(store.clone(), auth)
            .with_cache(store)
            .with_change_feed())
    }

    wa_pairing_store::conformance_tests!(backend);
}
