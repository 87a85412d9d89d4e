//! One lock per device for the whole process.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Weak};

use tokio::sync::Mutex;
use wa_pairing_store::DeviceId;

/// One lock per device for the whole process, so two backends of one device (a restart
/// inside the process, a takeover) never interleave their read-modify-writes.
pub(super) fn device_lock(device: DeviceId) -> Arc<Mutex<()>> {
    static LOCKS: LazyLock<std::sync::Mutex<HashMap<DeviceId, Weak<Mutex<()>>>>> =
        LazyLock::new(Default::default);
    let mut locks = LOCKS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(lock) = locks.get(&device).and_then(Weak::upgrade) {
        return lock;
    }
    locks.retain(|_, l| l.strong_count() > 0);
    let lock = Arc::new(Mutex::new(()));
    locks.insert(device, Arc::downgrade(&lock));
    lock
}
