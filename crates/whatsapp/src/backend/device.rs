//! The device record itself.

use super::prelude::*;

#[async_trait::async_trait]
impl DeviceStore for WaBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        let value = to_json(device)?;
        let _guard = self.locked().await;
        let saved = async {
            // A linked companion is registered before its state is kept for this device.
            if self.logged_out() {
                return Ok(());
            }
            if self.is_stale_snapshot(device).await? {
                return Ok(());
            }
            self.register_companion(device)
                .await
                .map_err(|e| self.fail(e))?;
            self.put(keys::DEVICE, &value).await
        }
        .await;
        match saved {
            Err(e) if self.closing() => {
                tracing::debug!(device = %self.device, error = %e, "the closing session's last save was not kept");
                Ok(())
            }
            other => other,
        }
    }

    async fn load(&self) -> Result<Option<Device>> {
        let Some(bytes) = self.get(keys::DEVICE).await? else {
            return Ok(None);
        };
        let mut device: Device = from_json(&bytes, "device")?;
        // Not serialised: without this a restart before pairing would send empty props.
        device.device_props = Arc::new(wacore::store::device::DEVICE_PROPS.clone());
        Ok(Some(device))
    }

    async fn exists(&self) -> Result<bool> {
        Ok(self.get(keys::DEVICE).await?.is_some())
    }

    async fn create(&self) -> Result<i32> {
        let _guard = self.locked().await;
        let last = match self.get(keys::DEVICE_SEQ).await? {
            Some(v) => i32::from_be_bytes(
                v.as_slice()
                    .try_into()
                    .map_err(|_| corrupt("device sequence"))?,
            ),
            None => 0,
        };
        let id = last
            .checked_add(1)
            .ok_or_else(|| corrupt("device sequence"))?;
        let mut writes = vec![(keys::DEVICE_SEQ.to_owned(), id.to_be_bytes().to_vec())];
        if self.get(keys::DEVICE).await?.is_none() {
            writes.push((keys::DEVICE.to_owned(), to_json(&Device::new())?));
        }
        self.put_many(&writes).await?;
        Ok(id)
    }
}

impl WaBackend {
    /// Whether `device` is an older snapshot of the companion already stored as linked: the
    /// same companion (noise key) without the account it has since been linked to.
    ///
    /// Within one session a companion only ever goes from unlinked to linked (a logout stops
    /// every write, and a new pairing clears the state first), but the client's background
    /// saver can take a snapshot before pair-success and write it after the linked state was
    /// written; under the same lease's fence that late write would unlink the stored device,
    /// and the next instance would find nothing to resume (seen once in a cold CI run of
    /// `a_killed_runner_is_taken_over_and_the_session_resumes_without_pairing`).
    async fn is_stale_snapshot(&self, device: &Device) -> Result<bool> {
        if device.pn.is_some() {
            return Ok(false);
        }
        let Some(bytes) = self.get(keys::DEVICE).await? else {
            return Ok(false);
        };
        let Ok(stored) = serde_json::from_slice::<Device>(&bytes) else {
            return Ok(false);
        };
        let same_companion = stored.noise_key.public_key.public_key_bytes()
            == device.noise_key.public_key.public_key_bytes();
        if stored.pn.is_some() && same_companion {
            tracing::debug!(device = %self.device, "an unlinked snapshot of a linked companion was not written over it");
            return Ok(true);
        }
        Ok(false)
    }
}
