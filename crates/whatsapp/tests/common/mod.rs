//! Shared test helpers.
#![allow(dead_code, unreachable_pub, clippy::missing_panics_doc)]

pub mod oracle;

use std::sync::Arc;
use std::time::Duration;

use wa_pairing_store::{DeviceStore, Lease, MemoryStore, NewDevice, PairingRequest, UserId};

/// A device in `store` claimed by a runner: the lease whose fence auth-state writes carry.
pub async fn claimed_device(store: &dyn DeviceStore) -> Lease {
    let device = store
        .create(NewDevice::new(UserId::random(), "Test device"))
        .await
        .expect("create device");
    store
        .start_pairing(device.id, PairingRequest::Qr)
        .await
        .expect("start pairing");
    let claimed = store
        .claim(&wa_pairing_store::ClaimRequest::new(
            "test-runner",
            1000,
            Duration::from_secs(3600),
        ))
        .await
        .expect("claim");
    claimed
        .into_iter()
        .find(|c| c.device.id == device.id)
        .expect("the new device is claimed")
        .lease
}

/// A memory store with one claimed device.
pub async fn memory_device() -> (Arc<MemoryStore>, Lease) {
    let store = Arc::new(MemoryStore::new());
    let lease = claimed_device(&*store).await;
    (store, lease)
}
