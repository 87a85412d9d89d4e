//! The device record itself.

use super::prelude::*;

#[async_trait::async_trait]
impl DeviceStore for WaBackend {
    async fn save(&self, device: &Device) -> Result<()> {
        let value = to_json(device)?;
        let _guard = self.locked().await;
        // A linked companion is registered before its state is kept for this device.
        self.check_writable()?;
        self.register_companion(device)
            .await
            .map_err(|e| self.fail(e))?;
        self.put(keys::DEVICE, &value).await
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
