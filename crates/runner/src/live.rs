//! Live session handles: what the embedding application uses of the sessions this instance
//! holds.
//!
//! The runner owns every session. An application that wants to use one (send through it,
//! hear what arrives) looks it up here by device id, lists them, or subscribes to sessions
//! coming and going. A [`LiveSession`] is valid only while this instance holds the device's
//! lease and the session is up: the moment the lease is lost (another instance took the
//! device, or its owner stopped it) or the session ends, every copy of the handle reports
//! [`LiveSessionError::NotLive`], so nothing is ever sent under a stale lease.
//!
//! The runner knows nothing of WhatsApp: what a handle carries for the application is
//! whatever the connector offers ([`Session::app_handle`](crate::Session::app_handle)); the
//! WhatsApp connector offers its client, with a typed wrapper in `wa-pairing-whatsapp`.

use std::any::Any;
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;
use wa_pairing_store::{DeviceId, Fence};

/// How many changes a slow subscriber may fall behind before it misses some (it then gets
/// [`broadcast::error::RecvError::Lagged`] and should re-read [`LiveSessions::list`]).
const CHANGES_BUFFERED: usize = 1024;

/// The sessions this runner instance holds live, for the embedding application. Cheap to
/// clone; take it with [`Runner::sessions`](crate::Runner::sessions) before running.
///
/// ```
/// use std::sync::Arc;
/// use wa_pairing_runner::{Connector, Runner, RunnerConfig, SessionChange};
/// use wa_pairing_store::MemoryStore;
///
/// # async fn demo(connector: Arc<dyn Connector>) -> Result<(), Box<dyn std::error::Error>> {
/// let runner = Runner::new(MemoryStore::new().stores().build(), connector, RunnerConfig::default())?;
/// let sessions = runner.sessions();
/// let mut changes = sessions.subscribe();
/// tokio::spawn(runner.run(async { tokio::signal::ctrl_c().await.ok(); }));
/// while let Ok(change) = changes.recv().await {
///     if let SessionChange::Connected { device_id } | SessionChange::Resumed { device_id } = change {
///         let live = sessions.get(device_id).expect("just connected");
///         println!("{device_id} is live under fence {}", live.fence().0);
///     }
/// }
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct LiveSessions(Arc<Inner>);

struct Inner {
    sessions: Mutex<HashMap<DeviceId, LiveSession>>,
    changes: broadcast::Sender<SessionChange>,
}

impl Default for LiveSessions {
    fn default() -> Self {
        Self(Arc::new(Inner {
            sessions: Mutex::default(),
            changes: broadcast::channel(CHANGES_BUFFERED).0,
        }))
    }
}

impl fmt::Debug for LiveSessions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSessions")
            .field("live", &self.len())
            .finish()
    }
}

/// A session coming or going, as [`LiveSessions::subscribe`] reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionChange {
    /// A device was just linked and its session is live.
    Connected {
        /// The device.
        device_id: DeviceId,
    },
    /// A linked device's session is live again on this instance (after a restart or a
    /// takeover).
    Resumed {
        /// The device.
        device_id: DeviceId,
    },
    /// This instance lost the device's lease (another instance took it over, or its owner
    /// stopped or unlinked it): the handle no longer works here.
    Lost {
        /// The device.
        device_id: DeviceId,
    },
    /// The session ended on this instance (shutdown, logout, a failure); its lease is
    /// released or left to lapse as the runner decides.
    Closed {
        /// The device.
        device_id: DeviceId,
    },
}

impl SessionChange {
    /// The device the change is about.
    pub const fn device_id(&self) -> DeviceId {
        match self {
            Self::Connected { device_id }
            | Self::Resumed { device_id }
            | Self::Lost { device_id }
            | Self::Closed { device_id } => *device_id,
        }
    }
}

/// Why a [`LiveSession`] cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LiveSessionError {
    /// The session is not live on this instance any more: its lease was lost or it ended.
    #[error(
        "device {0} has no live session on this instance: its lease moved to another instance or the session ended; look it up again with LiveSessions::get"
    )]
    NotLive(DeviceId),
    /// The connector offers nothing of the asked type for this session.
    #[error(
        "the session of device {device} offers no handle of type {wanted}: use the connector's own wrapper (wa_pairing_whatsapp::WhatsAppSession for WhatsApp)"
    )]
    WrongType {
        /// The device.
        device: DeviceId,
        /// The type asked for.
        wanted: &'static str,
    },
}

/// One live session, for the application. Cheap to clone; every clone stops working at once
/// when the session's lease is lost or the session ends.
///
/// `Debug` shows the device, the fence and whether it is live, never what the connector
/// offers.
#[derive(Clone)]
pub struct LiveSession {
    device_id: DeviceId,
    fence: Fence,
    resumed: bool,
    app: Option<Arc<dyn Any + Send + Sync>>,
    live: CancellationToken,
}

impl fmt::Debug for LiveSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LiveSession")
            .field("device_id", &self.device_id)
            .field("fence", &self.fence.0)
            .field("resumed", &self.resumed)
            .field("live", &self.is_live())
            .finish_non_exhaustive()
    }
}

impl LiveSession {
    /// A handle for `device_id`'s session under the lease with `fence`; `live` is cancelled
    /// when the lease is lost or the session ends.
    pub(crate) fn new(
        device_id: DeviceId,
        fence: Fence,
        resumed: bool,
        app: Option<Arc<dyn Any + Send + Sync>>,
        live: CancellationToken,
    ) -> Self {
        Self {
            device_id,
            fence,
            resumed,
            app,
            live,
        }
    }

    /// The device.
    pub const fn device_id(&self) -> DeviceId {
        self.device_id
    }

    /// The fence of the lease the session runs under.
    pub const fn fence(&self) -> Fence {
        self.fence
    }

    /// Whether the session was resumed (after a restart or takeover) rather than just linked.
    pub const fn resumed(&self) -> bool {
        self.resumed
    }

    /// Whether the session is still live on this instance.
    pub fn is_live(&self) -> bool {
        !self.live.is_cancelled()
    }

    /// `Ok` while the session is live; call it before every use.
    ///
    /// # Errors
    /// [`LiveSessionError::NotLive`] once the lease is lost or the session ended.
    pub fn check(&self) -> Result<(), LiveSessionError> {
        if self.is_live() {
            Ok(())
        } else {
            Err(LiveSessionError::NotLive(self.device_id))
        }
    }

    /// Completes when the session stops being live (lease lost, or the session ended).
    pub async fn ended(&self) {
        self.live.cancelled().await;
    }

    /// What the connector offers for this session, as `T` (the WhatsApp connector's type is
    /// wrapped by `wa_pairing_whatsapp::WhatsAppSession`).
    ///
    /// # Errors
    /// [`LiveSessionError::NotLive`] once the session is gone;
    /// [`LiveSessionError::WrongType`] when the connector offers no `T`.
    pub fn app<T: Any + Send + Sync>(&self) -> Result<Arc<T>, LiveSessionError> {
        self.check()?;
        self.app
            .clone()
            .and_then(|a| a.downcast::<T>().ok())
            .ok_or(LiveSessionError::WrongType {
                device: self.device_id,
                wanted: std::any::type_name::<T>(),
            })
    }
}

impl LiveSessions {
    fn lock(&self) -> MutexGuard<'_, HashMap<DeviceId, LiveSession>> {
        self.0
            .sessions
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The live session of `device_id`, if this instance holds one.
    pub fn get(&self, device_id: DeviceId) -> Option<LiveSession> {
        self.lock().get(&device_id).filter(|s| s.is_live()).cloned()
    }

    /// The devices whose sessions are live here, in no particular order.
    pub fn list(&self) -> Vec<DeviceId> {
        self.lock()
            .values()
            .filter(|s| s.is_live())
            .map(LiveSession::device_id)
            .collect()
    }

    /// How many sessions are live here.
    pub fn len(&self) -> usize {
        self.lock().values().filter(|s| s.is_live()).count()
    }

    /// Whether no session is live here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every change from now on: sessions connected, resumed, lost and closed. A subscriber
    /// that falls more than 1,024 changes behind misses the oldest (the receiver says
    /// `Lagged`); it should then re-read [`list`](Self::list).
    pub fn subscribe(&self) -> broadcast::Receiver<SessionChange> {
        self.0.changes.subscribe()
    }

    /// A session became live.
    pub(crate) fn insert(&self, session: LiveSession) {
        let device_id = session.device_id;
        let change = if session.resumed {
            SessionChange::Resumed { device_id }
        } else {
            SessionChange::Connected { device_id }
        };
        self.lock().insert(device_id, session);
        let _ = self.0.changes.send(change);
    }

    /// The device's lease was lost: its session (if live here) stops being offered.
    pub(crate) fn lost(&self, device_id: DeviceId) {
        let removed = self.lock().remove(&device_id);
        if let Some(s) = removed {
            s.live.cancel();
            let _ = self.0.changes.send(SessionChange::Lost { device_id });
        }
    }

    /// The device's session ended here (if it was live).
    pub(crate) fn closed(&self, device_id: DeviceId, fence: Fence) {
        let removed = {
            let mut map = self.lock();
            match map.get(&device_id) {
                // A newer claim's session is not this one's to close.
                Some(s) if s.fence == fence => map.remove(&device_id),
                _ => None,
            }
        };
        if let Some(s) = removed {
            s.live.cancel();
            let _ = self.0.changes.send(SessionChange::Closed { device_id });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_handle_stops_working_for_every_clone_when_the_lease_is_lost() {
        let sessions = LiveSessions::default();
        let mut changes = sessions.subscribe();
        let id = DeviceId::random();
        let token = CancellationToken::new();
        sessions.insert(LiveSession::new(
            id,
            Fence(3),
            false,
            Some(Arc::new(String::from("client"))),
            token.child_token(),
        ));
        assert_eq!(
            changes.try_recv().unwrap(),
            SessionChange::Connected { device_id: id }
        );
        let handle = sessions.get(id).expect("live");
        let copy = handle.clone();
        assert_eq!(sessions.list(), [id]);
        assert_eq!(*handle.app::<String>().unwrap(), "client");
        assert!(matches!(
            handle.app::<u32>(),
            Err(LiveSessionError::WrongType { .. })
        ));
        // The runner's lease is lost: the actor's token is cancelled.
        token.cancel();
        assert_eq!(copy.check(), Err(LiveSessionError::NotLive(id)));
        assert!(handle.app::<String>().is_err());
        assert!(sessions.get(id).is_none() && sessions.is_empty());
        sessions.lost(id);
        assert_eq!(
            changes.try_recv().unwrap(),
            SessionChange::Lost { device_id: id }
        );
        // Already gone: closing it again says nothing.
        sessions.closed(id, Fence(3));
        assert!(changes.try_recv().is_err());
        assert!(format!("{handle:?}").contains("live: false"));
    }

    #[test]
    fn a_newer_session_is_not_closed_by_the_older_ones_end() {
        let sessions = LiveSessions::default();
        let id = DeviceId::random();
        sessions.insert(LiveSession::new(
            id,
            Fence(2),
            true,
            None,
            CancellationToken::new(),
        ));
        sessions.closed(id, Fence(1));
        assert!(sessions.get(id).is_some(), "fence 1 ended, fence 2 lives");
        sessions.closed(id, Fence(2));
        assert!(sessions.get(id).is_none());
    }
}
