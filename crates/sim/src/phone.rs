//! The simulated phone: the primary device's side of pairing, and the fault controls.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;
use tracing::{debug, info};
use wacore::pair_code::PairCodeUtils;
use wacore_binary::builder::NodeBuilder;
use wacore_libsignal::crypto::{aes_256_gcm_decrypt, hmac_sha256};
use wacore_libsignal::protocol::{KeyPair, PublicKey};
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

use crate::model::{
    LoginFailure, Refusal, SimError, SimEvent, SimMessage, SimReceipt, Stage, StreamError, redact,
};
use crate::node::{SERVER, attr, child_bytes, protocol, stream_error};
use crate::state::{Finish, LinkedDevice, Out, Shared};

const ADV_ACCOUNT_SIGNATURE_PREFIX: &[u8] = &[6, 0];
const BUNDLE_KEY_INFO: &[u8] = b"link_code_pairing_key_bundle_encryption_key";
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// A simulated phone: the WhatsApp account of one number, and the person holding it.
///
/// Created on first use by [`Sim::phone`](crate::Sim::phone); cheap to clone.
#[derive(Clone)]
pub struct SimPhone {
    pub(crate) shared: Arc<Shared>,
    pub(crate) number: String,
}

impl std::fmt::Debug for SimPhone {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SimPhone({})", redact(&self.number))
    }
}

fn hkdf(ikm: &[u8], salt: Option<&[u8]>, info: &[u8]) -> Result<[u8; 32], SimError> {
    let mut out = [0u8; 32];
    wacore::crypto::hkdf_sha256_into(ikm, salt, info, &mut out)
        .map_err(|e| SimError::Protocol(format!("hkdf: {e}")))?;
    Ok(out)
}

impl SimPhone {
    /// The phone number (E.164 digits).
    pub fn number(&self) -> &str {
        &self.number
    }

    fn with_account<T>(&self, f: impl FnOnce(&mut crate::state::Account) -> T) -> T {
        let mut st = self.shared.lock();
        f(st.account(&self.number))
    }

    /// Waits until a companion has registered a code for this phone (at most `timeout`).
    pub async fn wait_for_code_request(&self, timeout: Duration) -> Result<(), SimError> {
        let rx = {
            let mut st = self.shared.lock();
            let account = st.account(&self.number);
            if account.pending.is_some() {
                return Ok(());
            }
            let (tx, rx) = oneshot::channel();
            account.code_waiters.push(tx);
            rx
        };
        tokio::time::timeout(timeout, rx)
            .await
            .map_err(|_| SimError::Timeout("a pairing-code request"))?
            .map_err(|_| SimError::ConnectionClosed)
    }

    /// Whether a companion has a live code for this phone.
    pub fn has_pending_code(&self) -> bool {
        self.with_account(|a| a.pending.is_some())
    }

    /// The person types `code` in WhatsApp > Linked devices > Link with phone number.
    ///
    /// Runs the primary's side: unwraps the companion's ephemeral key with the code, sends
    /// `primary_hello`, decrypts the companion's key bundle, derives the shared secret, signs
    /// the companion's identity and sends pair-success; the server then restarts the stream
    /// with 515. The code is accepted with or without its dash, in any case.
    ///
    /// # Errors
    /// [`SimError::NoCodeRequested`] when no code is live; [`SimError::WrongCode`] when the
    /// code does not match (the companion's bundle cannot be opened), which, like WhatsApp,
    /// counts against the code's three attempts; timeouts when the companion goes silent.
    // One protocol script, step by step, reads best in one place.
    #[allow(clippy::too_many_lines)]
    pub async fn enter_code(&self, code: &str) -> Result<(), SimError> {
        let code: String = code
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_uppercase())
            .collect();
        let (wrapped, pairing_ref, conn, companion_noise, identity, silent, finish_rx) = {
            let mut st = self.shared.lock();
            let account = st.account(&self.number);
            let identity = account.identity.clone();
            let silent = account.faults.silent;
            let Some(pending) = account.pending.as_mut() else {
                return Err(SimError::NoCodeRequested);
            };
            let (tx, rx) = oneshot::channel();
            pending.finish_tx = Some(tx);
            (
                pending.wrapped_companion_ephemeral.clone(),
                pending.pairing_ref.clone(),
                pending.conn,
                pending.companion_noise_pub,
                identity,
                silent,
                rx,
            )
        };
        if silent {
            info!(phone = %redact(&self.number), "the phone is silent (fault): nothing is sent");
            return Ok(());
        }
        // Both PBKDF2 runs (131,072 rounds each) off the async threads.
        let typed = code.clone();
        let (companion_eph, phone_eph, wrapped_primary) =
            tokio::task::spawn_blocking(move || -> Result<_, SimError> {
                let companion_eph = PairCodeUtils::decrypt_primary_ephemeral_pub(&wrapped, &typed)
                    .map_err(protocol)?;
                let phone_eph = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
                let eph_pub: [u8; 32] = phone_eph
                    .public_key
                    .public_key_bytes()
                    .try_into()
                    .map_err(protocol)?;
                let wrapped_primary = PairCodeUtils::encrypt_ephemeral_pub(&eph_pub, &typed);
                Ok((companion_eph, phone_eph, wrapped_primary))
            })
            .await
            .map_err(protocol)??;

        if !self
            .shared
            .stage(&self.number, Stage::PrimaryHello, conn)
            .await
        {
            return Err(SimError::ConnectionClosed);
        }
        let hello = {
            let mut st = self.shared.lock();
            let id = st.next_id();
            NodeBuilder::new("notification")
                .attr("type", "link_code_companion_reg")
                .attr("from", SERVER)
                .attr("id", id)
                .attr("t", wacore::time::now_secs().to_string())
                .children([NodeBuilder::new("link_code_companion_reg")
                    .attr("stage", "primary_hello")
                    .children([
                        NodeBuilder::new("link_code_pairing_wrapped_primary_ephemeral_pub")
                            .bytes(wrapped_primary.to_vec())
                            .build(),
                        NodeBuilder::new("primary_identity_pub")
                            .bytes(identity.public_key.public_key_bytes().to_vec())
                            .build(),
                        NodeBuilder::new("link_code_pairing_ref")
                            .bytes(pairing_ref.clone())
                            .build(),
                    ])
                    .build()])
                .build()
        };
        if !self.shared.lock().send(conn, Out::Node(hello)) {
            return Err(SimError::ConnectionClosed);
        }
        let Finish {
            wrapped_bundle,
            identity_pub,
        } = tokio::time::timeout(STEP_TIMEOUT, finish_rx)
            .await
            .map_err(|_| SimError::Timeout("companion_finish"))?
            .map_err(|_| SimError::ConnectionClosed)?;

        // Open the key bundle: salt (32) || iv (12) || AES-GCM(companion id || primary id || random).
        let companion_eph_pub =
            PublicKey::from_djb_public_key_bytes(&companion_eph).map_err(protocol)?;
        let eph_shared = phone_eph
            .private_key
            .calculate_agreement(&companion_eph_pub)
            .map_err(protocol)?;
        let opened = if wrapped_bundle.len() > 44 {
            let salt = &wrapped_bundle[..32];
            let iv: [u8; 12] = wrapped_bundle[32..44].try_into().map_err(protocol)?;
            let key = hkdf(&eph_shared, Some(salt), BUNDLE_KEY_INFO)?;
            let mut out = Vec::new();
            aes_256_gcm_decrypt(&key, &iv, b"", &wrapped_bundle[44..], &mut out)
                .ok()
                .map(|()| out)
        } else {
            None
        };
        let Some(bundle) = opened.filter(|b| b.len() == 96) else {
            info!(phone = %redact(&self.number), "wrong code typed");
            self.shared.emit(SimEvent::CodeEntered {
                phone: self.number.clone(),
                ok: false,
            });
            return Err(SimError::WrongCode);
        };
        if bundle[..32] != identity_pub[..]
            || bundle[32..64] != *identity.public_key.public_key_bytes()
        {
            return Err(SimError::Protocol(
                "the key bundle names other identities".into(),
            ));
        }
        self.shared.emit(SimEvent::CodeEntered {
            phone: self.number.clone(),
            ok: true,
        });

        let companion_identity =
            PublicKey::from_djb_public_key_bytes(&identity_pub).map_err(protocol)?;
        let identity_shared = identity
            .private_key
            .calculate_agreement(&companion_identity)
            .map_err(protocol)?;
        let mut secret = Vec::with_capacity(96);
        secret.extend_from_slice(&eph_shared);
        secret.extend_from_slice(&identity_shared);
        secret.extend_from_slice(&bundle[64..96]);
        let adv_secret = hkdf(&secret, None, b"adv_secret")?;

        self.link(conn, &identity, &identity_pub, &adv_secret, companion_noise)
            .await
    }

    /// The person scans the QR code a companion shows: `ref,noiseKey,identityKey,advSecret`
    /// (keys in standard base64; a fifth field, the companion's platform, is ignored). The
    /// phone links the companion whose registration connection holds that ref, as
    /// WhatsApp's primary device does: the device identity is signed by the account key and
    /// MACed with the companion's adv secret from the QR code, then pair-success, the
    /// acknowledgement and the 515 restart follow as for a code.
    ///
    /// # Errors
    /// [`SimError::Protocol`] for a malformed payload or a ref no connection holds (or one
    /// that expired, as a real phone reports), [`SimError::ConnectionClosed`] and timeouts as
    /// for [`enter_code`](Self::enter_code).
    pub async fn scan_qr(&self, payload: &str) -> Result<(), SimError> {
        let fields: Vec<&str> = payload.trim().split(',').collect();
        let [reference, noise, identity_key, adv, ..] = fields.as_slice() else {
            return Err(SimError::Protocol(
                "a QR payload is ref,noiseKey,identityKey,advSecret".into(),
            ));
        };
        let key = |name: &str, b64: &str| -> Result<[u8; 32], SimError> {
            use base64::Engine as _;
            crate::node::B64
                .decode(b64)
                .ok()
                .and_then(|k| <[u8; 32]>::try_from(k).ok())
                .ok_or_else(|| {
                    SimError::Protocol(format!("the QR's {name} is not 32 bytes of base64"))
                })
        };
        let (noise, identity_pub, adv_secret) = (
            key("noise key", noise)?,
            key("identity key", identity_key)?,
            key("adv secret", adv)?,
        );
        let now = tokio::time::Instant::now();
        let (conn, account_identity) = {
            let mut st = self.shared.lock();
            let conn = st.conns.iter().find_map(|(id, c)| {
                c.qr_refs
                    .iter()
                    .any(|(r, until)| r == reference && *until > now)
                    .then_some(*id)
            });
            let Some(conn) = conn else {
                return Err(SimError::Protocol(
                    "no connection holds this QR ref (unknown or expired)".into(),
                ));
            };
            if let Some(c) = st.conns.get_mut(&conn) {
                // One scan per QR session.
                c.qr_refs.clear();
                c.phone = Some(self.number.clone());
            }
            (conn, st.account(&self.number).identity.clone())
        };
        if self.with_account(|a| a.faults.silent) {
            info!(phone = %redact(&self.number), "the phone is silent (fault): nothing is sent");
            return Ok(());
        }
        self.link(conn, &account_identity, &identity_pub, &adv_secret, noise)
            .await
    }

    /// Links a companion over its registration connection: pair-success with a device
    /// identity signed by the account and MACed with `adv_secret`, the companion's
    /// acknowledgement, then the 515 restart.
    async fn link(
        &self,
        conn: u64,
        identity: &KeyPair,
        identity_pub: &[u8],
        adv_secret: &[u8; 32],
        companion_noise: [u8; 32],
    ) -> Result<(), SimError> {
        let (device, raw_id) = self.with_account(|a| {
            let d = a.next_device;
            a.next_device += 1;
            (d, a.raw_id)
        });
        let container = Self::device_identity(identity, identity_pub, adv_secret, raw_id, device)?;

        if !self
            .shared
            .stage(&self.number, Stage::PairSuccess, conn)
            .await
        {
            return Err(SimError::ConnectionClosed);
        }
        let (success, answer) = {
            let mut st = self.shared.lock();
            let id = st.next_id();
            let lid = st.account(&self.number).lid.clone();
            let (tx, rx) = oneshot::channel();
            st.waiting.insert(id.clone(), tx);
            let node = NodeBuilder::new("iq")
                .attr("type", "set")
                .attr("xmlns", "md")
                .attr("id", id)
                .attr("from", SERVER)
                .attr("t", wacore::time::now_secs().to_string())
                .children([NodeBuilder::new("pair-success")
                    .children([
                        NodeBuilder::new("device-identity").bytes(container).build(),
                        NodeBuilder::new("device")
                            .attr("jid", format!("{}:{device}@s.whatsapp.net", self.number))
                            .attr("lid", format!("{lid}:{device}@lid"))
                            .build(),
                        NodeBuilder::new("platform").attr("name", "android").build(),
                    ])
                    .build()])
                .build();
            (node, rx)
        };
        if !self.shared.lock().send(conn, Out::Node(success)) {
            return Err(SimError::ConnectionClosed);
        }
        let answer = tokio::time::timeout(STEP_TIMEOUT, answer)
            .await
            .map_err(|_| SimError::Timeout("the pair-success acknowledgement"))?
            .map_err(|_| SimError::ConnectionClosed)?;
        let Some(signed) = answer
            .get_optional_child("pair-device-sign")
            .filter(|_| attr(&answer, "type").as_deref() == Some("result"))
        else {
            return Err(SimError::Protocol(
                "the companion refused pair-success".into(),
            ));
        };
        let signed_identity = child_bytes(signed, "device-identity");
        {
            let mut st = self.shared.lock();
            let account = st.account(&self.number);
            account.devices_ts = wacore::time::now_secs_u64();
            account.devices.insert(
                device,
                LinkedDevice {
                    noise_pub: companion_noise,
                    removed: false,
                    keys: None,
                    keys_shared: false,
                    identity: signed_identity,
                    queue: std::collections::VecDeque::new(),
                },
            );
            account.pending = None;
            st.counters.pairings += 1;
        }
        self.shared.emit(SimEvent::Paired {
            phone: self.number.clone(),
            device,
        });
        // The real server restarts the stream shortly after pair-device-sign.
        let shared = Arc::clone(&self.shared);
        let delay = shared.config.restart_delay;
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            let st = shared.lock();
            st.send(conn, Out::Node(stream_error(StreamError::Restart)));
            st.send(conn, Out::Close);
        });
        debug!(phone = %redact(&self.number), device, "paired");
        Ok(())
    }

    /// The ADV device identity for a companion, signed by the account and MACed with the
    /// pairing's shared secret.
    fn device_identity(
        account: &KeyPair,
        companion_identity: &[u8],
        adv_secret: &[u8; 32],
        raw_id: u32,
        device: u32,
    ) -> Result<Vec<u8>, SimError> {
        let details = wa::ADVDeviceIdentity {
            raw_id: Some(raw_id),
            timestamp: Some(wacore::time::now_secs_u64()),
            key_index: Some(device),
            account_type: Some(wa::ADVEncryptionType::E2EE),
            device_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec();
        let mut to_sign = Vec::new();
        to_sign.extend_from_slice(ADV_ACCOUNT_SIGNATURE_PREFIX);
        to_sign.extend_from_slice(&details);
        to_sign.extend_from_slice(companion_identity);
        let signature = account
            .private_key
            .calculate_signature(&to_sign, &mut rand::make_rng::<rand::rngs::StdRng>())
            .map_err(protocol)?;
        let signed = wa::ADVSignedDeviceIdentity {
            details: Some(details),
            account_signature_key: Some(account.public_key.public_key_bytes().to_vec()),
            account_signature: Some(signature.to_vec()),
            device_signature: None,
        }
        .encode_to_vec();
        let hmac = hmac_sha256(adv_secret, &signed).to_vec();
        Ok(wa::ADVSignedDeviceIdentityHMAC {
            details: Some(signed),
            hmac: Some(hmac),
            account_type: Some(wa::ADVEncryptionType::E2EE),
        }
        .encode_to_vec())
    }

    /// The phone asks the companion for a fresh code (`stage="refresh_code"`).
    pub fn request_refresh(&self) -> Result<(), SimError> {
        let mut st = self.shared.lock();
        let id = st.next_id();
        let account = st.account(&self.number);
        let Some(pending) = account.pending.as_ref() else {
            return Err(SimError::NoCodeRequested);
        };
        let (conn, pairing_ref) = (pending.conn, pending.pairing_ref.clone());
        let node = NodeBuilder::new("notification")
            .attr("type", "link_code_companion_reg")
            .attr("from", SERVER)
            .attr("id", id)
            .children([NodeBuilder::new("link_code_companion_reg")
                .attr("stage", "refresh_code")
                .attr("force_manual_refresh", "false")
                .children([NodeBuilder::new("link_code_pairing_ref")
                    .bytes(pairing_ref)
                    .build()])
                .build()])
            .build();
        if st.send(conn, Out::Node(node)) {
            Ok(())
        } else {
            Err(SimError::ConnectionClosed)
        }
    }

    /// The phone loses its Signal sessions (a restored backup, a damaged store): the next
    /// message a companion sends over one of them cannot be decrypted, and the phone asks for
    /// it again with a retry receipt that carries keys for a new session
    /// ([`SimCounters::retry_receipts`](crate::SimCounters::retry_receipts)); the resent
    /// message is a pre-key message that opens that session.
    ///
    /// # Errors
    /// [`SimError::Protocol`] when the phone's Signal state cannot be set up.
    pub async fn forget_sessions(&self) -> Result<(), SimError> {
        let crypto = self.with_account(|a| std::sync::Arc::clone(&a.crypto));
        crypto.lock().await?.forget_sessions();
        Ok(())
    }

    /// The phone reads the message `id` it received from a companion: that companion gets a
    /// read receipt (`<receipt type="read">`), at once when it is online, else from the offline
    /// queue at its next login.
    ///
    /// # Errors
    /// [`SimError::NoSuchMessage`] when the phone received no message `id`.
    pub fn read(&self, id: &str) -> Result<(), SimError> {
        crate::messaging::read(&self.shared, &self.number, id)
    }

    /// The account's push name (the name its owner chose): the initial history sync gives it
    /// to every newly linked companion, and every message the account sends carries it
    /// (`notify`). A new account's is `Sim` and the number's last four digits.
    pub fn push_name(&self) -> String {
        self.with_account(|a| a.push_name.clone())
    }

    /// Renames the account (its push name) for what it sends from now on and for companions
    /// linked from now on.
    pub fn set_push_name(&self, name: &str) {
        self.with_account(|a| name.clone_into(&mut a.push_name));
    }

    /// The account's LID (its user part, without `@lid`), as `<success>` and `usync` give it.
    pub fn lid(&self) -> String {
        self.with_account(|a| a.lid.clone())
    }

    /// The id of the account's app-state sync key, which the phone sends each freshly linked
    /// companion (end-to-end encrypted, over one of the pre-keys the companion uploaded), so a
    /// test can check the client stored it.
    pub fn app_state_key_id(&self) -> Vec<u8> {
        self.with_account(|a| a.app_state_key.id().to_vec())
    }

    /// The person types `text` to `to` (E.164 digits) and sends it: each live companion of
    /// `to` gets a copy, and each of this account's own live companions a copy wrapped as
    /// sent by the account (a `DeviceSentMessage` naming the chat), all Signal-encrypted by
    /// this phone (a `pkmsg` until the companion has answered, then `msg`). Returns the
    /// message id; the companions' receipts arrive in [`receipts`](Self::receipts).
    ///
    /// ```no_run
    /// # async fn demo(sim: wa_pairing_sim::Sim) -> Result<(), wa_pairing_sim::SimError> {
    /// use std::time::Duration;
    /// let friend = sim.phone("6289876543210");
    /// let id = friend.send_text("6281234567890", "hello from the friend's phone").await?;
    /// friend
    ///     .wait_for_receipt(Duration::from_secs(10), |r| r.ids.contains(&id))
    ///     .await?;
    /// # Ok(())
    /// # }
    /// ```
    ///
    /// # Errors
    ///
    /// [`SimError::NoCompanion`] when there is no companion to receive it (one that is not
    /// online gets it from the offline queue when it logs in); [`SimError::Protocol`] when
    /// encrypting fails.
    pub async fn send_text(&self, to: &str, text: &str) -> Result<String, SimError> {
        let to: String = to.chars().filter(char::is_ascii_digit).collect();
        crate::messaging::send_from_phone(&self.shared, &self.number, &to, text).await
    }

    /// How many messages and receipts for this account's companions their clients have not
    /// acknowledged yet: those waiting in the offline queue of a companion that is away, and those sent
    /// but not acknowledged (delivered again on the companion's next login).
    pub fn unacknowledged(&self) -> usize {
        self.with_account(|a| a.devices.values().map(|d| d.queue.len()).sum())
    }

    /// The messages this phone received from companions and decrypted, oldest first.
    pub fn inbox(&self) -> Vec<SimMessage> {
        self.with_account(|a| a.inbox.clone())
    }

    /// Waits (at most `timeout`) for a received message that satisfies `pred`, one already in
    /// the [`inbox`](Self::inbox) included, and returns it.
    ///
    /// # Errors
    ///
    /// [`SimError::Timeout`] when none arrives in time.
    pub async fn wait_for_message(
        &self,
        timeout: Duration,
        pred: impl Fn(&SimMessage) -> bool,
    ) -> Result<SimMessage, SimError> {
        self.poll(timeout, "with the awaited message", || {
            self.with_account(|a| a.inbox.iter().find(|m| pred(m)).cloned())
        })
        .await
    }

    /// The receipts companions sent for this phone's messages, oldest first.
    pub fn receipts(&self) -> Vec<SimReceipt> {
        self.with_account(|a| a.receipts.clone())
    }

    /// Waits (at most `timeout`) for a receipt that satisfies `pred`, one already received
    /// included, and returns it.
    ///
    /// # Errors
    ///
    /// [`SimError::Timeout`] when none arrives in time.
    pub async fn wait_for_receipt(
        &self,
        timeout: Duration,
        pred: impl Fn(&SimReceipt) -> bool,
    ) -> Result<SimReceipt, SimError> {
        self.poll(timeout, "with the awaited receipt", || {
            self.with_account(|a| a.receipts.iter().find(|r| pred(r)).cloned())
        })
        .await
    }

    async fn poll<T>(
        &self,
        timeout: Duration,
        what: &'static str,
        find: impl Fn() -> Option<T>,
    ) -> Result<T, SimError> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = find() {
                return Ok(found);
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(SimError::Timeout(what));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// The linked companions' device numbers (removed ones excluded).
    pub fn linked_devices(&self) -> Vec<u32> {
        self.with_account(|a| {
            a.devices
                .iter()
                .filter(|(_, d)| !d.removed)
                .map(|(n, _)| *n)
                .collect()
        })
    }

    /// Whether any companion is linked.
    pub fn is_linked(&self) -> bool {
        !self.linked_devices().is_empty()
    }

    /// The person removes every linked companion in Linked devices: live sessions get a
    /// `401` stream error and later logins are refused.
    pub fn logout(&self) {
        let devices = self.linked_devices();
        for d in &devices {
            let _ = self.remove_device(*d);
        }
    }

    /// Removes one linked companion.
    pub fn remove_device(&self, device: u32) -> Result<(), SimError> {
        {
            let mut st = self.shared.lock();
            let account = st.account(&self.number);
            account.devices_ts = wacore::time::now_secs_u64();
            match account.devices.get_mut(&device) {
                Some(d) if !d.removed => d.removed = true,
                _ => return Err(SimError::NoSuchDevice(device)),
            }
            st.counters.device_removals += 1;
            for conn in st.sessions_of(&self.number, device) {
                st.send(
                    conn,
                    Out::Node(NodeBuilder::new("stream:error").attr("code", "401").build()),
                );
                st.send(conn, Out::Close);
            }
        }
        self.shared.emit(SimEvent::DeviceRemoved {
            phone: self.number.clone(),
            device,
        });
        Ok(())
    }

    /// Sends `error` to every logged-in session of this phone's companions, now.
    pub fn send_stream_error(&self, error: StreamError) -> usize {
        let conns: Vec<u64> = {
            let st = self.shared.lock();
            st.conns
                .iter()
                .filter(|(_, c)| c.phone.as_deref() == Some(self.number.as_str()))
                .map(|(id, _)| *id)
                .collect()
        };
        let st = self.shared.lock();
        for conn in &conns {
            st.send(*conn, Out::Node(stream_error(error)));
            st.send(*conn, Out::Close);
        }
        drop(st);
        for conn in &conns {
            self.shared.emit(SimEvent::StreamErrorSent {
                conn: *conn,
                code: error.code(),
            });
        }
        conns.len()
    }

    /// Refuses the next `times` code requests (`None`: every one) with `refusal`.
    pub fn refuse_code_requests(&self, refusal: Refusal, times: Option<u32>) {
        self.with_account(|a| a.faults.refuse = Some((refusal, times)));
    }

    /// Delays `stage` by `by`.
    pub fn delay(&self, stage: Stage, by: Duration) {
        self.with_account(|a| {
            a.faults.delays.insert(stage, by);
        });
    }

    /// Drops the connection at `stage`.
    pub fn drop_at(&self, stage: Stage) {
        self.with_account(|a| {
            a.faults.drops.insert(stage);
        });
    }

    /// Refuses the next login with `failure`.
    pub fn fail_next_login(&self, failure: LoginFailure) {
        self.with_account(|a| a.faults.login_failure = Some(failure));
    }

    /// The phone never answers: typed codes are swallowed.
    pub fn go_silent(&self) {
        self.with_account(|a| a.faults.silent = true);
    }

    /// Removes every fault of this phone.
    pub fn clear_faults(&self) {
        self.with_account(|a| a.faults = crate::state::Faults::default());
    }
}
