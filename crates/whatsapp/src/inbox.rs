//! The application's inbox: incoming messages handed over before WhatsApp is told they
//! arrived, so a crash loses none.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use wa_pairing_store::DeviceId;
use wacore::types::events::InboundMessage;
use whatsapp_rust::Client;
use whatsapp_rust::types::durability_hook::InboundDurabilityHook;

/// Why an [`Inbox`] did not take a batch: anything the application's own storage reports.
pub type InboxError = Box<dyn std::error::Error + Send + Sync>;

/// Where a session's incoming messages go before WhatsApp is told that they arrived: the
/// application's own durable storage (a table, a queue).
///
/// # When a message counts as received
/// Without an inbox, `whatsapp-rust` acknowledges a message (its delivery receipt, which
/// removes it from WhatsApp's offline queue) as soon as it is decrypted, and only then
/// hands it to the event subscribers ([`WhatsAppSession::events`](crate::WhatsAppSession::events)).
/// A process that dies in between, or a subscriber that was not listening yet (the
/// messages WhatsApp kept while the device was offline arrive right after the login, often
/// before the application has taken the new session), loses the message for good: at most
/// once.
///
/// With an inbox ([`WhatsAppConnector::with_inbox`](crate::WhatsAppConnector::with_inbox)),
/// each decrypted batch is first written through the device's auth-state store (the same
/// store, fence and encryption as the rest of the client's state), then handed to
/// [`receive`](Self::receive), and acknowledged only once it returns `Ok`. If the process
/// dies before that, or `receive` fails, nothing is acknowledged: WhatsApp delivers the
/// messages again at the next login (on this instance or the one that takes the device
/// over), and the client hands them over again from the stored copy, even though its
/// Signal ratchet has already moved past them. At least once, in arrival order.
///
/// # Duplicates
/// A crash after `receive` committed and before the acknowledgement reached WhatsApp
/// hands the same messages over again, so `receive` must be idempotent: de-duplicate by
/// the message's chat, sender and id together (`info.source.chat`, `info.source.sender`,
/// `info.id`; an id alone is unique only within one chat and sender). A failed batch is
/// handed over again whole.
///
/// # Keep it short
/// `receive` is awaited inside the client's receive pipeline: a slow inbox slows every
/// incoming message of the session. Store and return; reply from another task (a reply
/// sent from inside `receive` to a sender in the batch can deadlock on the client's
/// per-sender lock).
///
/// What it covers: end-to-end encrypted messages, one-to-one and group, from contacts and
/// from the account's own phone. Not covered: newsletter messages (not encrypted;
/// `whatsapp-rust` acknowledges them on their own path) and placeholders recovered from the
/// phone.
///
/// ```no_run
/// use wa_pairing_store::DeviceId;
/// use wa_pairing_whatsapp::{IncomingText, InboundMessage, Inbox, InboxError, WhatsAppConfig};
///
/// struct Texts;
///
/// #[async_trait::async_trait]
/// impl Inbox for Texts {
///     async fn receive(&self, device: DeviceId, batch: &[InboundMessage]) -> Result<(), InboxError> {
///         for text in batch.iter().filter_map(IncomingText::from_inbound) {
///             // INSERT ... ON CONFLICT (device, chat, sender, id) DO NOTHING, in one
///             // transaction for the batch.
///             println!("{device}: {} characters from {}", text.text.chars().count(), text.chat_redacted());
///         }
///         Ok(())
///     }
/// }
///
/// # fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// let connector = WhatsAppConfig::from_env()?.build()?.with_inbox(Texts);
/// # let _ = connector;
/// # Ok(())
/// # }
/// ```
#[async_trait]
pub trait Inbox: Send + Sync + 'static {
    /// Stores `batch` (decrypted messages of `device`, in arrival order) durably,
    /// all or nothing, and returns `Ok` only once it is stored. Return an error to have
    /// WhatsApp deliver the whole batch again at the session's next login.
    ///
    /// # Errors
    /// Whatever the application's storage reports; the messages stay unacknowledged. The
    /// error itself is not logged (it may quote what was stored): log it in `receive`.
    async fn receive(&self, device: DeviceId, batch: &[InboundMessage]) -> Result<(), InboxError>;
}

/// The client's durability hook for one device's session: hands each batch to the inbox.
pub(crate) struct InboxHook {
    pub(crate) inbox: Arc<dyn Inbox>,
    pub(crate) device: DeviceId,
}

impl fmt::Debug for InboxHook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InboxHook")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl InboundDurabilityHook for InboxHook {
    async fn on_messages(
        &self,
        _client: Arc<Client>,
        batch: &[InboundMessage],
    ) -> whatsapp_rust::anyhow::Result<()> {
        // whatsapp-rust logs this error with the batch's size (a warning); the
        // application's own error is not quoted, since it may repeat what it tried to store.
        self.inbox.receive(self.device, batch).await.map_err(|_| {
            whatsapp_rust::anyhow::anyhow!(
                "the application's inbox did not take the messages of device {}; WhatsApp delivers them again at the next login",
                self.device
            )
        })
    }
}
