//! Message secrets.

use super::prelude::*;

#[async_trait::async_trait]
impl MsgSecretStore for WaBackend {
    async fn put_msg_secrets(&self, entries: Vec<MsgSecretEntry>) -> Result<usize> {
        let stored = entries.len();
        let _guard = self.locked().await;
        // Entries of one batch may repeat a key: merge through the pending writes.
        let mut pending: BTreeMap<String, (MessageSecret, i64, i64)> = BTreeMap::new();
        for entry in entries {
            let k = key(
                keys::MSG_SECRET,
                &[&entry.chat, &entry.sender, &entry.msg_id],
            );
            let existing = match pending.get(&k) {
                Some(row) => Some(*row),
                None => self
                    .get(&k)
                    .await?
                    .map(|v| parse_msg_secret(&v))
                    .transpose()?,
            };
            let row = match existing {
                Some((_, expires_at, message_ts)) => (
                    entry.secret,
                    merge_msg_secret_expiry(expires_at, entry.expires_at),
                    merge_msg_secret_message_ts(message_ts, entry.message_ts),
                ),
                None => (entry.secret, entry.expires_at, entry.message_ts),
            };
            pending.insert(k, row);
        }
        let expiries: Vec<i64> = pending
            .values()
            .map(|(_, e, _)| *e)
            .filter(|e| *e != 0)
            .collect();
        let writes: Vec<Entry> = pending
            .into_iter()
            .map(|(k, (s, e, t))| (k, msg_secret_value(&s, e, t)))
            .collect();
        self.put_many(&writes).await?;
        for e in expiries {
            self.sweeps.msg_secrets.stored(e);
        }
        Ok(stored)
    }

    async fn get_msg_secret(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self
            .get_msg_secret_with_ts(chat, sender, msg_id)
            .await?
            .map(|(secret, _)| secret))
    }

    async fn get_msg_secret_with_ts(
        &self,
        chat: &str,
        sender: &str,
        msg_id: &str,
    ) -> Result<Option<(Vec<u8>, i64)>> {
        self.get(&key(keys::MSG_SECRET, &[chat, sender, msg_id]))
            .await?
            .map(|v| parse_msg_secret(&v).map(|(s, _, ts)| (s.to_vec(), ts)))
            .transpose()
    }

    async fn delete_expired_msg_secrets(&self, cutoff_timestamp: i64) -> Result<u32> {
        let _guard = self.locked().await;
        self.sweep(
            keys::MSG_SECRET,
            &self.sweeps.msg_secrets,
            cutoff_timestamp,
            |v| {
                let (_, expires_at, _) = parse_msg_secret(v)?;
                Ok((expires_at != 0).then_some(expires_at))
            },
        )
        .await
    }
}
