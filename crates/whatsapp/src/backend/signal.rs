//! Signal sessions, identities, pre-keys and sender keys.

use super::prekeys::{PreKey, chunk_of, fragments};
use super::prelude::*;

#[async_trait::async_trait]
impl SignalStore for WaBackend {
    async fn put_identity(&self, address: &str, key_bytes: [u8; 32]) -> Result<()> {
        self.put(&key(keys::IDENTITY, &[address]), &key_bytes).await
    }

    async fn put_identities_batch(&self, identities: &[(Arc<str>, [u8; 32])]) -> Result<()> {
        let entries: Vec<Entry> = identities
            .iter()
            .map(|(a, k)| (key(keys::IDENTITY, &[a]), k.to_vec()))
            .collect();
        self.put_many(&entries).await
    }

    async fn load_identity(&self, address: &str) -> Result<Option<[u8; 32]>> {
        self.get(&key(keys::IDENTITY, &[address]))
            .await?
            .map(|v| <[u8; 32]>::try_from(v.as_slice()).map_err(|_| corrupt("identity key")))
            .transpose()
    }

    async fn delete_identity(&self, address: &str) -> Result<()> {
        self.delete(&key(keys::IDENTITY, &[address])).await
    }

    async fn get_session(&self, address: &str) -> Result<Option<Bytes>> {
        Ok(self
            .get(&key(keys::SESSION, &[address]))
            .await?
            .map(Bytes::from))
    }

    async fn put_session(&self, address: &str, session: &[u8]) -> Result<()> {
        self.put(&key(keys::SESSION, &[address]), session).await
    }

    async fn put_sessions_batch(&self, sessions: &[(Arc<str>, Bytes)]) -> Result<()> {
        let entries: Vec<Entry> = sessions
            .iter()
            .map(|(a, s)| (key(keys::SESSION, &[a]), s.to_vec()))
            .collect();
        self.put_many(&entries).await
    }

    async fn delete_session(&self, address: &str) -> Result<()> {
        self.delete(&key(keys::SESSION, &[address])).await
    }

    async fn has_session(&self, address: &str) -> Result<bool> {
        Ok(self.get(&key(keys::SESSION, &[address])).await?.is_some())
    }

    async fn has_signal_state_for_user(&self, user: &str) -> Result<bool> {
        Ok(self.has_user_key(keys::SESSION, user).await?
            || self.has_user_key(keys::IDENTITY, user).await?)
    }

    async fn store_prekey(&self, id: u32, record: &[u8], uploaded: bool) -> Result<()> {
        let fragment = fragments([(id, PreKey::new(id, record, uploaded))])?;
        let _guard = self.locked().await;
        self.put_many(&fragment).await
    }

    async fn store_prekeys_batch(&self, pre_keys: &[(u32, Bytes)], uploaded: bool) -> Result<()> {
        if pre_keys.is_empty() {
            return Ok(());
        }
        // Without reading: the batch goes to fragments, folded into their chunks by the next
        // change that reads them (the upload mark that follows every batch).
        let fragment = fragments(
            pre_keys
                .iter()
                .map(|(id, record)| (*id, PreKey::new(*id, record, uploaded))),
        )?;
        let _guard = self.locked().await;
        self.put_many(&fragment).await
    }

    async fn load_prekey(&self, id: u32) -> Result<Option<Bytes>> {
        self.read_one(id)
            .await?
            .map(|k| k.record(id).map(Bytes::from))
            .transpose()
    }

    async fn load_prekeys_batch(&self, ids: &[u32]) -> Result<Vec<(u32, Bytes)>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let numbers: Vec<u32> = ids.iter().map(|id| chunk_of(*id)).collect();
        let loaded = self.read_chunks(Some(&numbers)).await?;
        let mut out = Vec::with_capacity(ids.len());
        for &id in ids {
            if let Some(k) = loaded.get(id) {
                out.push((id, Bytes::from(k.record(id)?)));
            }
        }
        Ok(out)
    }

    async fn mark_prekeys_uploaded(&self, ids: &[u32]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        // Update only: a key consumed in the meantime stays deleted.
        let _guard = self.locked().await;
        let numbers: Vec<u32> = ids.iter().map(|id| chunk_of(*id)).collect();
        let mut loaded = self.read_chunks(Some(&numbers)).await?;
        let mut changed = std::collections::BTreeSet::new();
        for &id in ids {
            let n = chunk_of(id);
            if let Some(k) = loaded.chunks.get_mut(&n).and_then(|c| c.get_mut(&id))
                && !k.uploaded
            {
                k.uploaded = true;
                changed.insert(n);
            }
        }
        if !loaded.folds() {
            loaded.chunks.retain(|n, _| changed.contains(n));
        }
        self.write_chunks(&loaded).await
    }

    async fn remove_prekey(&self, id: u32) -> Result<()> {
        // Without reading, like the delete it replaces: a removal in a fragment.
        let fragment = fragments([(id, PreKey::removed())])?;
        let _guard = self.locked().await;
        self.put_many(&fragment).await
    }

    async fn get_max_prekey_id(&self) -> Result<u32> {
        let loaded = self.read_chunks(None).await?;
        Ok(loaded
            .chunks
            .values()
            .filter_map(|c| c.keys().next_back().copied())
            .max()
            .unwrap_or(0))
    }

    async fn store_signed_prekey(&self, id: u32, record: &[u8]) -> Result<()> {
        self.put(&keys::id_key(keys::SIGNED_PREKEY, id), record)
            .await
    }

    async fn load_signed_prekey(&self, id: u32) -> Result<Option<Vec<u8>>> {
        self.get(&keys::id_key(keys::SIGNED_PREKEY, id)).await
    }

    async fn load_all_signed_prekeys(&self) -> Result<Vec<(u32, Vec<u8>)>> {
        let entries = self.scan(keys::SIGNED_PREKEY).await?;
        entries
            .into_iter()
            .map(|(k, v)| {
                keys::parse_id(keys::SIGNED_PREKEY, &k)
                    .map(|id| (id, v))
                    .ok_or_else(|| corrupt("signed pre-key id"))
            })
            .collect()
    }

    async fn remove_signed_prekey(&self, id: u32) -> Result<()> {
        self.delete(&keys::id_key(keys::SIGNED_PREKEY, id)).await
    }

    async fn put_sender_key(&self, address: &str, record: &[u8]) -> Result<()> {
        self.put(&key(keys::SENDER_KEY, &[address]), record).await
    }

    async fn put_sender_keys_batch(&self, sender_keys: &[(Arc<str>, Bytes)]) -> Result<()> {
        let entries: Vec<Entry> = sender_keys
            .iter()
            .map(|(a, r)| (key(keys::SENDER_KEY, &[a]), r.to_vec()))
            .collect();
        self.put_many(&entries).await
    }

    async fn get_sender_key(&self, address: &str) -> Result<Option<Vec<u8>>> {
        self.get(&key(keys::SENDER_KEY, &[address])).await
    }

    async fn delete_sender_key(&self, address: &str) -> Result<()> {
        self.delete(&key(keys::SENDER_KEY, &[address])).await
    }
}
