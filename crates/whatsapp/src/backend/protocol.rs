//! LID mappings, device lists, tc-tokens, sent messages and other protocol state.

use super::prelude::*;
use super::tc_cache;

#[async_trait::async_trait]
impl ProtocolStore for WaBackend {
    async fn get_sender_key_devices(&self, group_jid: &str) -> Result<Vec<(String, bool)>> {
        let base = prefix(keys::SENDER_KEY_DEVICE, &[group_jid]);
        let entries = self.scan(&base).await?;
        entries
            .into_iter()
            .map(|(k, v)| {
                let device = keys::unescape(&k[base.len()..]);
                match v.as_slice() {
                    [flag @ (0 | 1)] => Ok((device, *flag == 1)),
                    _ => Err(corrupt("sender-key status")),
                }
            })
            .collect()
    }

    async fn set_sender_key_status(&self, group_jid: &str, entries: &[(&str, bool)]) -> Result<()> {
        let writes: Vec<Entry> = entries
            .iter()
            .map(|(device, has)| {
                (
                    key(keys::SENDER_KEY_DEVICE, &[group_jid, device]),
                    vec![u8::from(*has)],
                )
            })
            .collect();
        self.put_many(&writes).await
    }

    async fn clear_sender_key_devices(&self, group_jid: &str) -> Result<()> {
        if self.logged_out() {
            return Ok(());
        }
        self.store
            .delete_prefix(
                self.device,
                self.fence,
                &prefix(keys::SENDER_KEY_DEVICE, &[group_jid]),
            )
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn delete_sender_key_device_rows(&self, device_jids: &[&str]) -> Result<()> {
        if device_jids.is_empty() {
            return Ok(());
        }
        let entries = self.scan(keys::SENDER_KEY_DEVICE).await?;
        let doomed: Vec<String> = entries
            .into_iter()
            .filter(|(k, _)| {
                keys::components(keys::SENDER_KEY_DEVICE, k)
                    .and_then(|c| c.get(1).cloned())
                    .is_some_and(|device| device_jids.contains(&device.as_str()))
            })
            .map(|(k, _)| k)
            .collect();
        self.delete_many(&doomed).await
    }

    async fn clear_all_sender_key_devices(&self) -> Result<()> {
        if self.logged_out() {
            return Ok(());
        }
        self.store
            .delete_prefix(self.device, self.fence, keys::SENDER_KEY_DEVICE)
            .await
            .map(drop)
            .map_err(|e| self.fail(e))
    }

    async fn get_lid_mapping(&self, lid: &str) -> Result<Option<LidPnMappingEntry>> {
        self.read_lid(lid).await
    }

    async fn get_pn_mapping(&self, phone: &str) -> Result<Option<LidPnMappingEntry>> {
        let Some(lid) = self.get(&key(keys::PN, &[phone])).await? else {
            return Ok(None);
        };
        let lid = String::from_utf8(lid).map_err(|_| corrupt("phone-number index"))?;
        self.read_lid(&lid).await
    }

    async fn put_lid_mapping(&self, entry: &LidPnMappingEntry) -> Result<()> {
        let _guard = self.locked().await;
        self.put_lid_mappings_locked(std::slice::from_ref(entry))
            .await
    }

    async fn put_lid_mappings(&self, entries: &[LidPnMappingEntry]) -> Result<()> {
        let _guard = self.locked().await;
        self.put_lid_mappings_locked(entries).await
    }

    async fn get_all_lid_mappings(&self) -> Result<Vec<LidPnMappingEntry>> {
        let entries = self.scan(keys::LID).await?;
        entries
            .iter()
            .map(|(_, v)| from_json(v, "LID mapping"))
            .collect()
    }

    async fn save_base_key(&self, address: &str, message_id: &str, base_key: &[u8]) -> Result<()> {
        self.put(&key(keys::BASE_KEY, &[address, message_id]), base_key)
            .await
    }

    async fn has_same_base_key(
        &self,
        address: &str,
        message_id: &str,
        current_base_key: &[u8],
    ) -> Result<bool> {
        Ok(self
            .get(&key(keys::BASE_KEY, &[address, message_id]))
            .await?
            .is_some_and(|stored| stored == current_base_key))
    }

    async fn delete_base_key(&self, address: &str, message_id: &str) -> Result<()> {
        self.delete(&key(keys::BASE_KEY, &[address, message_id]))
            .await
    }

    async fn update_device_list(&self, record: DeviceListRecord) -> Result<()> {
        self.put(&key(keys::DEVICE_LIST, &[&record.user]), &to_json(&record)?)
            .await
    }

    async fn update_device_lists(&self, records: Vec<DeviceListRecord>) -> Result<()> {
        let entries = records
            .iter()
            .map(|r| Ok((key(keys::DEVICE_LIST, &[&r.user]), to_json(r)?)))
            .collect::<Result<Vec<Entry>>>()?;
        self.put_many(&entries).await
    }

    async fn get_devices(&self, user: &str) -> Result<Option<DeviceListRecord>> {
        self.get(&key(keys::DEVICE_LIST, &[user]))
            .await?
            .map(|v| from_json(&v, "device list"))
            .transpose()
    }

    async fn delete_devices(&self, user: &str) -> Result<()> {
        self.delete(&key(keys::DEVICE_LIST, &[user])).await
    }

    async fn get_group_metadata(&self, group_jid: &str) -> Result<Option<Vec<u8>>> {
        self.get(&key(keys::GROUP, &[group_jid])).await
    }

    async fn put_group_metadata(&self, group_jid: &str, blob: &[u8]) -> Result<()> {
        self.put(&key(keys::GROUP, &[group_jid]), blob).await
    }

    async fn delete_group_metadata(&self, group_jid: &str) -> Result<()> {
        self.delete(&key(keys::GROUP, &[group_jid])).await
    }

    async fn get_tc_token(&self, jid: &str) -> Result<Option<TcTokenEntry>> {
        // Read before every message sent: known tokens answer without the store.
        if let tc_cache::Known::Stored(known) = self.tc.get(jid) {
            return Ok(known);
        }
        let _guard = self.locked().await;
        self.read_tc(jid).await
    }

    async fn put_tc_token(&self, jid: &str, entry: &TcTokenEntry) -> Result<()> {
        let _guard = self.locked().await;
        self.write_tc(jid, Some(entry.clone())).await
    }

    async fn delete_tc_token(&self, jid: &str) -> Result<()> {
        let _guard = self.locked().await;
        self.write_tc(jid, None).await
    }

    async fn get_all_tc_token_jids(&self) -> Result<Vec<String>> {
        let entries = self.scan(keys::TC_TOKEN).await?;
        Ok(entries
            .iter()
            .map(|(k, _)| keys::unescape(&k[keys::TC_TOKEN.len()..]))
            .collect())
    }

    async fn delete_expired_tc_tokens(&self, token_cutoff: i64, sender_cutoff: i64) -> Result<u32> {
        let _guard = self.locked().await;
        let entries = self.scan(keys::TC_TOKEN).await?;
        let mut doomed = Vec::new();
        for (k, v) in entries {
            let entry: TcTokenEntry = from_json(&v, "trusted-contact token")?;
            let token_live = !entry.token.is_empty() && entry.token_timestamp >= token_cutoff;
            let sender_live = entry.sender_timestamp.is_some_and(|ts| ts >= sender_cutoff);
            if !(token_live || sender_live) {
                doomed.push(k);
            }
        }
        if let Err(e) = self.delete_many(&doomed).await {
            self.tc.forget_all();
            return Err(e);
        }
        for k in &doomed {
            self.tc
                .set(&keys::unescape(&k[keys::TC_TOKEN.len()..]), None);
        }
        Ok(count(doomed.len()))
    }

    async fn touch_tc_token_sender_timestamp(
        &self,
        jid: &str,
        sender_timestamp: i64,
    ) -> Result<()> {
        let _guard = self.locked().await;
        let entry = match self.read_tc(jid).await? {
            Some(existing) => TcTokenEntry {
                sender_timestamp: Some(
                    existing
                        .sender_timestamp
                        .map_or(sender_timestamp, |e| e.max(sender_timestamp)),
                ),
                ..existing
            },
            None => TcTokenEntry {
                token: Vec::new(),
                token_timestamp: sender_timestamp,
                sender_timestamp: Some(sender_timestamp),
            },
        };
        self.write_tc(jid, Some(entry)).await
    }

    async fn store_received_tc_token(
        &self,
        jid: &str,
        token: &[u8],
        token_timestamp: i64,
    ) -> Result<()> {
        let _guard = self.locked().await;
        let existing = self.read_tc(jid).await?;
        // Newer wins; a byte-less placeholder never blocks the first real token.
        if let Some(existing) = &existing
            && !existing.token.is_empty()
            && token_timestamp < existing.token_timestamp
        {
            return Ok(());
        }
        let entry = TcTokenEntry {
            token: token.to_vec(),
            token_timestamp,
            sender_timestamp: existing.and_then(|e| e.sender_timestamp),
        };
        self.write_tc(jid, Some(entry)).await
    }

    async fn store_sent_message(
        &self,
        chat_jid: &str,
        message_id: &str,
        payload: &[u8],
    ) -> Result<()> {
        let now = wacore::time::now_secs();
        let value = stamped(now, payload);
        let _guard = self.locked().await;
        self.put(&key(keys::SENT, &[chat_jid, message_id]), &value)
            .await?;
        // Deleted by a sweep whose cutoff is past its stamp.
        self.sweeps.sent.stored(now + 1);
        Ok(())
    }

    async fn take_sent_message(&self, chat_jid: &str, message_id: &str) -> Result<Option<Vec<u8>>> {
        let k = key(keys::SENT, &[chat_jid, message_id]);
        let _guard = self.locked().await;
        let Some(value) = self.get(&k).await? else {
            return Ok(None);
        };
        let (_, payload) = unstamp(&value, "sent message")?;
        let payload = payload.to_vec();
        self.delete(&k).await?;
        Ok(Some(payload))
    }

    async fn delete_expired_sent_messages(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locked().await;
        // Deleted when stamped before the cutoff: due one second after its stamp.
        self.sweep(keys::SENT, &self.sweeps.sent, cutoff_timestamp, |v| {
            Ok(Some(unstamp(v, "sent message")?.0 + 1))
        })
        .await
    }

    async fn store_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
        message: &[u8],
    ) -> Result<()> {
        let now = wacore::time::now_secs();
        let value = stamped(now, message);
        self.put(&key(keys::PENDING, &[chat, sender, id]), &value)
            .await?;
        self.sweeps.pending.stored(now + 1);
        Ok(())
    }

    async fn get_pending_inbound(
        &self,
        chat: &str,
        sender: &str,
        id: &str,
    ) -> Result<Option<Vec<u8>>> {
        self.get(&key(keys::PENDING, &[chat, sender, id]))
            .await?
            .map(|v| unstamp(&v, "pending inbound message").map(|(_, m)| m.to_vec()))
            .transpose()
    }

    async fn delete_pending_inbound(&self, chat: &str, sender: &str, id: &str) -> Result<()> {
        self.delete(&key(keys::PENDING, &[chat, sender, id])).await
    }

    async fn delete_expired_pending_inbound(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locked().await;
        self.sweep(keys::PENDING, &self.sweeps.pending, cutoff_timestamp, |v| {
            Ok(Some(unstamp(v, "pending inbound message")?.0 + 1))
        })
        .await
    }

    async fn store_pending_inbound_batch(&self, rows: &[PendingInboundRow<'_>]) -> Result<()> {
        let now = wacore::time::now_secs();
        let entries: Vec<Entry> = rows
            .iter()
            .map(|r| {
                (
                    key(keys::PENDING, &[r.chat, r.sender, r.id]),
                    stamped(now, r.message),
                )
            })
            .collect();
        self.put_many(&entries).await?;
        if !entries.is_empty() {
            self.sweeps.pending.stored(now + 1);
        }
        Ok(())
    }

    async fn delete_pending_inbound_batch(&self, pending: &[PendingInboundKey<'_>]) -> Result<()> {
        let doomed: Vec<String> = pending
            .iter()
            .map(|k| key(keys::PENDING, &[k.chat, k.sender, k.id]))
            .collect();
        self.delete_many(&doomed).await
    }
}
