//! A linked device's live WhatsApp session, as the embedding application uses it.

use std::fmt;
use std::sync::Arc;

use tokio::sync::broadcast;
use wa_pairing_phone::{PhoneNumber, RedactedPhone};
use wa_pairing_runner::{LiveSession, LiveSessionError};
use wa_pairing_store::DeviceId;
use wacore::types::events::{Event, InboundMessage};
use whatsapp_rust::Client;

/// How many client events a slow subscriber may fall behind before it misses some.
const EVENTS_BUFFERED: usize = 256;

/// What the WhatsApp connector hands the runner for each session
/// ([`Session::app_handle`](wa_pairing_runner::Session::app_handle)): the client and the
/// application's share of its events.
pub(crate) struct WaApp {
    pub(crate) client: Arc<Client>,
    pub(crate) events: broadcast::Sender<Arc<Event>>,
    /// Numbers WhatsApp said are on WhatsApp, so a second message to one asks no more.
    on_whatsapp: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// How many numbers a session remembers as on WhatsApp before it starts over.
const ON_WHATSAPP_REMEMBERED: usize = 4096;

impl WaApp {
    pub(crate) fn new(client: Arc<Client>) -> Self {
        Self {
            client,
            events: broadcast::channel(EVENTS_BUFFERED).0,
            on_whatsapp: std::sync::Mutex::default(),
        }
    }

    fn known_on_whatsapp(&self, digits: &str) -> bool {
        self.on_whatsapp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .contains(digits)
    }

    fn remember_on_whatsapp(&self, digits: &str) {
        let mut known = self
            .on_whatsapp
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if known.len() >= ON_WHATSAPP_REMEMBERED {
            known.clear();
        }
        known.insert(digits.to_owned());
    }
}

/// One linked device's live WhatsApp session, for the application: send through it and hear
/// what arrives, while this runner instance holds the device's lease.
///
/// Take it from the runner's [`LiveSessions`](wa_pairing_runner::LiveSessions) with
/// [`of`](Self::of). Every call checks that the session is still live here first, so once
/// the lease moved to another instance (or the session ended) nothing more is sent through
/// it: look the device up again and, if another instance holds it, ask that one.
///
/// ```no_run
/// use wa_pairing_runner::{LiveSessions, SessionChange};
/// use wa_pairing_whatsapp::WhatsAppSession;
///
/// # async fn demo(sessions: LiveSessions) -> Result<(), Box<dyn std::error::Error>> {
/// let mut changes = sessions.subscribe();
/// while let Ok(change) = changes.recv().await {
///     let SessionChange::Connected { device_id } = change else { continue };
///     let Some(live) = sessions.get(device_id) else { continue };
///     let wa = WhatsAppSession::of(&live)?;
///     let to = wa_pairing_phone::parse("+62 812-3456-7890")?;
///     let sent = wa.send_text(&to, "Thanks for linking your phone!").await?;
///     println!("sent {}", sent.id);
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct WhatsAppSession {
    live: LiveSession,
    app: Arc<WaApp>,
}

impl fmt::Debug for WhatsAppSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppSession")
            .field("live", &self.live)
            .finish_non_exhaustive()
    }
}

/// A message WhatsApp's server took from this session.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SentMessage {
    /// The message id (the key delivery and read receipts refer to).
    pub id: String,
}

/// Why a message was not sent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// The session is not live on this instance any more: nothing was sent.
    #[error(transparent)]
    NotLive(#[from] LiveSessionError),
    /// The client could not send it. The message says why in general terms, never naming
    /// the recipient.
    #[error("the message to {to} was not sent: {why}")]
    Client {
        /// The recipient, redacted (`62812****7890`).
        to: String,
        /// Why, in general terms.
        why: &'static str,
    },
    /// WhatsApp says the number has no WhatsApp account: nothing was sent. Check the number
    /// (country code first).
    #[error(
        "the message to {to} was not sent: that number is not on WhatsApp (check the number, country code first)"
    )]
    NotOnWhatsApp {
        /// The recipient, redacted (`62812****7890`).
        to: String,
    },
}

/// A text message a session received: typed by a contact, or by the account's owner on the
/// phone (or another linked device), in the order the client decrypted them.
///
/// Read from the session's [`events`](WhatsAppSession::events) with
/// [`from_event`](Self::from_event). `Debug` redacts the chat's number and shows the text's
/// length only.
///
/// ```no_run
/// use wa_pairing_whatsapp::{IncomingText, WhatsAppSession};
///
/// # async fn demo(wa: WhatsAppSession) {
/// let mut events = wa.events();
/// while let Ok(event) = events.recv().await {
///     for text in IncomingText::from_event(&event) {
///         if !text.from_me {
///             println!("{} wrote {} characters", text.chat_redacted(), text.text.chars().count());
///         }
///     }
/// }
/// # }
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct IncomingText {
    /// The message id.
    pub id: String,
    /// The chat's JID: `628…@s.whatsapp.net` for a contact addressed by number (for a message
    /// the owner sent from another device, the contact it went to), `…@lid` for one WhatsApp
    /// addresses by LID.
    pub chat: String,
    /// Whether the account itself sent it, from its phone or another linked device.
    pub from_me: bool,
    /// The text.
    pub text: String,
}

impl IncomingText {
    /// The text messages `event` carries; none for any other event.
    pub fn from_event(event: &Event) -> Vec<Self> {
        event.messages().filter_map(Self::from_inbound).collect()
    }

    /// The text `message` carries, if it is a text (an [`Inbox`](crate::Inbox) gets these).
    pub fn from_inbound(message: &InboundMessage) -> Option<Self> {
        use wacore::proto_helpers::MessageExt as _;
        Some(Self {
            id: message.info.id.clone(),
            chat: message.info.source.chat.to_string(),
            from_me: message.info.source.is_from_me,
            text: message.message.text_content()?.to_owned(),
        })
    }

    /// The chat's phone number (digits), when it is addressed by number.
    pub fn chat_number(&self) -> Option<&str> {
        self.chat
            .strip_suffix("@s.whatsapp.net")
            .map(|user| user.split(':').next().unwrap_or(user))
    }

    /// The chat for logs: its number redacted (`62812****7890`), or `a LID chat`.
    pub fn chat_redacted(&self) -> String {
        self.chat_number().map_or_else(
            || "a LID chat".to_owned(),
            |n| RedactedPhone::of_digits(n).to_string(),
        )
    }
}

impl fmt::Debug for IncomingText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingText")
            .field("id", &self.id)
            .field("chat", &self.chat_redacted())
            .field("from_me", &self.from_me)
            .field("text_len", &self.text.len())
            .finish()
    }
}

impl WhatsAppSession {
    /// The WhatsApp session behind `live`.
    ///
    /// # Errors
    /// [`LiveSessionError::NotLive`] when the session is gone;
    /// [`LiveSessionError::WrongType`] when `live` is not a WhatsApp connector's session.
    pub fn of(live: &LiveSession) -> Result<Self, LiveSessionError> {
        Ok(Self {
            app: live.app::<WaApp>()?,
            live: live.clone(),
        })
    }

    /// The runner's handle this wraps.
    pub const fn live(&self) -> &LiveSession {
        &self.live
    }

    /// The device.
    pub const fn device_id(&self) -> DeviceId {
        self.live.device_id()
    }

    /// Sends a text message to `to` (a WhatsApp account's number) and returns once the
    /// client has encrypted it for every device of the recipient (and the account's own
    /// other devices) and written it to the socket.
    ///
    /// The first message to a number asks WhatsApp whether the number is on WhatsApp (one
    /// `usync` query; the session remembers the numbers that are), because the client
    /// itself would "send" to a number with no account without any error.
    ///
    /// # Errors
    /// [`SendError::NotLive`] (nothing sent) once the lease moved or the session ended;
    /// [`SendError::NotOnWhatsApp`] (nothing sent) when the number has no WhatsApp account;
    /// [`SendError::Client`] when the client could not send it.
    pub async fn send_text(&self, to: &PhoneNumber, text: &str) -> Result<SentMessage, SendError> {
        self.live.check()?;
        let jid = whatsapp_rust::Jid::pn(to.digits());
        let redacted = || RedactedPhone::of_digits(to.digits()).to_string();
        if !self.app.known_on_whatsapp(to.digits()) {
            let answer = self
                .app
                .client
                .contacts()
                .is_on_whatsapp(std::slice::from_ref(&jid))
                .await
                .map_err(|_| SendError::Client {
                    to: redacted(),
                    why: "WhatsApp did not answer whether the number is on WhatsApp",
                })?;
            match answer.iter().find(|r| r.jid.user == to.digits()) {
                Some(r) if r.is_registered => self.app.remember_on_whatsapp(to.digits()),
                Some(_) => return Err(SendError::NotOnWhatsApp { to: redacted() }),
                None => {
                    return Err(SendError::Client {
                        to: redacted(),
                        why: "WhatsApp did not say whether the number is on WhatsApp",
                    });
                }
            }
            self.live.check()?;
        }
        match self.app.client.send_text(jid, text).await {
            Ok(sent) => Ok(SentMessage {
                id: sent.message_id,
            }),
            Err(e) => Err(SendError::Client {
                to: redacted(),
                why: send_failure(&e),
            }),
        }
    }

    /// The client's events for this session from now on: incoming messages
    /// (`Event::Messages`, see [`IncomingText`]), receipts (`Event::Receipt`: delivered,
    /// read, ...) and WhatsApp's server acknowledging what the session sent
    /// (`Event::ServerAck`, whose `id` is a [`SentMessage::id`] and whose `error` is set when
    /// the server refused it). A subscriber that falls more than 256 events behind misses the
    /// oldest (the receiver says `Lagged`).
    pub fn events(&self) -> broadcast::Receiver<Arc<Event>> {
        self.app.events.subscribe()
    }

    /// The `whatsapp-rust` client itself, for what this wrapper does not offer. It is not
    /// checked again on each use: call [`LiveSession::check`] before every call, so nothing
    /// is done through a session whose lease moved to another instance.
    ///
    /// # Errors
    /// [`LiveSessionError::NotLive`] when the session is gone.
    pub fn client(&self) -> Result<Arc<Client>, LiveSessionError> {
        self.live.check()?;
        Ok(Arc::clone(&self.app.client))
    }
}

/// A send failure in general terms: the client's own text may name the recipient.
fn send_failure(e: &whatsapp_rust::send::SendError) -> &'static str {
    use whatsapp_rust::send::SendError as E;
    match e {
        E::NotLoggedIn => "the session is not logged in",
        E::Iq(_) => {
            "WhatsApp did not answer a query the send needs (the recipient's devices or keys)"
        }
        E::InvalidRequest(_) => "the request is not valid for this recipient",
        E::Client(_) => "the connection to WhatsApp failed",
        _ => "the client could not encrypt or encode it",
    }
}

#[cfg(test)]
mod tests {
    use super::IncomingText;

    fn text(chat: &str) -> IncomingText {
        IncomingText {
            id: "3EB0AA".into(),
            chat: chat.into(),
            from_me: false,
            text: "a private note".into(),
        }
    }

    #[test]
    fn an_incoming_text_names_its_chat_and_debug_shows_neither_number_nor_text() {
        let pn = text("6281234567890@s.whatsapp.net");
        assert_eq!(pn.chat_number(), Some("6281234567890"));
        let shown = format!("{pn:?}");
        assert!(!shown.contains("6281234567890"), "{shown}");
        assert!(!shown.contains("private note"), "{shown}");
        assert!(shown.contains("text_len: 14"), "{shown}");
        assert_eq!(
            text("6281234567890:3@s.whatsapp.net").chat_number(),
            Some("6281234567890")
        );
        let lid = text("100000000000001@lid");
        assert_eq!(lid.chat_number(), None);
        assert_eq!(lid.chat_redacted(), "a LID chat");
    }
}
