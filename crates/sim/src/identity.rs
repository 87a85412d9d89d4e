//! The simulator's Noise identity: a static key and a certificate chain for it.

use wacore_libsignal::protocol::KeyPair;
use waproto::buffa::Message as _;
use waproto::whatsapp as wa;

/// The server's static key and its (unsigned) certificate chain.
///
/// The chain is structurally what WhatsApp sends, with zero signatures (only clients built
/// with `danger-skip-cert-chain-verify` accept it) and validity windows that ended in 2023, so
/// the client never caches it for a Noise IK resume and always performs a full XX handshake.
/// A foreign chain certifies another key than the static one: every client refuses it.
pub(crate) struct ServerIdentity {
    pub(crate) static_kp: KeyPair,
    pub(crate) cert_chain: Vec<u8>,
}

impl ServerIdentity {
    pub(crate) fn generate(foreign: bool) -> Self {
        let new_key = || {
            KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>())
                .public_key
                .public_key_bytes()
                .to_vec()
        };
        let static_kp = KeyPair::generate(&mut rand::make_rng::<rand::rngs::StdRng>());
        let key = if foreign {
            new_key()
        } else {
            static_kp.public_key.public_key_bytes().to_vec()
        };
        let details = |serial, issuer, key: Vec<u8>| {
            wa::cert_chain::noise_certificate::Details {
                serial: Some(serial),
                issuer_serial: Some(issuer),
                key: Some(key),
                not_before: Some(1_600_000_000),
                not_after: Some(1_700_000_000),
            }
            .encode_to_vec()
        };
        let cert = |details: Vec<u8>| wa::cert_chain::NoiseCertificate {
            details: Some(details),
            signature: Some(vec![0u8; 64]),
        };
        let intermediate_key = new_key();
        let chain = wa::CertChain {
            intermediate: waproto::buffa::MessageField::some(cert(details(1, 0, intermediate_key))),
            leaf: waproto::buffa::MessageField::some(cert(details(2, 1, key))),
        };
        Self {
            static_kp,
            cert_chain: chain.encode_to_vec(),
        }
    }
}
