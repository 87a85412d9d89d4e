//! App-state sync keys, versions and mutation MACs.

use super::prelude::*;

#[async_trait::async_trait]
impl AppSyncStore for WaBackend {
    async fn get_sync_key(&self, key_id: &[u8]) -> Result<Option<AppStateSyncKey>> {
        self.get(&format!("{}{}", keys::SYNC_KEY, keys::hex(key_id)))
            .await?
            .map(|v| from_json(&v, "app-state sync key"))
            .transpose()
    }

    async fn set_sync_key(&self, key_id: &[u8], sync_key: AppStateSyncKey) -> Result<()> {
        let entries = vec![
            (
                format!("{}{}", keys::SYNC_KEY, keys::hex(key_id)),
                to_json(&sync_key)?,
            ),
            (keys::LATEST_SYNC_KEY.to_owned(), key_id.to_vec()),
        ];
        self.put_many(&entries).await
    }

    async fn get_version(&self, name: &str) -> Result<HashState> {
        Ok(self
            .get(&key(keys::VERSION, &[name]))
            .await?
            .map(|v| from_json(&v, "app-state version"))
            .transpose()?
            .unwrap_or_default())
    }

    async fn set_version(&self, name: &str, state: HashState) -> Result<()> {
        self.put(&key(keys::VERSION, &[name]), &to_json(&state)?)
            .await
    }

    async fn put_mutation_macs(
        &self,
        name: &str,
        _version: u64,
        mutations: &[AppStateMutationMAC],
    ) -> Result<()> {
        let base = prefix(keys::MUTATION_MAC, &[name]);
        let entries: Vec<Entry> = mutations
            .iter()
            .map(|m| {
                (
                    format!("{base}{}", keys::hex(&m.index_mac)),
                    m.value_mac.clone(),
                )
            })
            .collect();
        self.put_many(&entries).await
    }

    async fn get_mutation_mac(&self, name: &str, index_mac: &[u8]) -> Result<Option<Vec<u8>>> {
        self.get(&format!(
            "{}{}",
            prefix(keys::MUTATION_MAC, &[name]),
            keys::hex(index_mac)
        ))
        .await
    }

    async fn delete_mutation_macs(&self, name: &str, index_macs: &[Vec<u8>]) -> Result<()> {
        let base = prefix(keys::MUTATION_MAC, &[name]);
        let doomed: Vec<String> = index_macs
            .iter()
            .map(|m| format!("{base}{}", keys::hex(m)))
            .collect();
        self.delete_many(&doomed).await
    }

    async fn clear_mutation_macs(&self, name: &str) -> Result<()> {
        if self.logged_out() {
            return Ok(());
        }
        self.store
            .delete_prefix(
                self.device,
                self.fence,
                &prefix(keys::MUTATION_MAC, &[name]),
            )
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn get_latest_sync_key_id(&self) -> Result<Option<Vec<u8>>> {
        self.get(keys::LATEST_SYNC_KEY).await
    }
}
