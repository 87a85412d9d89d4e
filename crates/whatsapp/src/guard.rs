//! The loopback guard: a build whose client skips WhatsApp's server certificate checks may
//! only talk to servers on this machine.

use std::sync::OnceLock;

use whatsapp_rust::buffa::Message as _;
use whatsapp_rust::waproto::whatsapp as wa;

use crate::error::{Error, ErrorKind};

/// Whether the compiled client verifies the signatures of WhatsApp's server certificate
/// chain.
///
/// Asked of the client itself, once per process: a certificate chain with zero-filled
/// signatures is offered to the client's own verification, which refuses it unless the
/// check is compiled out. Cargo unifies features across one build, so the check can be off
/// because of our feature `insecure-sim` or because any other crate in the build enabled
/// `whatsapp-rust/danger-skip-cert-chain-verify`; this answer covers both.
///
/// ```
/// if !wa_pairing_whatsapp::server_certificates_verified() {
///     println!("a test build: the connector talks to loopback servers only");
/// }
/// ```
pub fn server_certificates_verified() -> bool {
    static VERIFIED: OnceLock<bool> = OnceLock::new();
    *VERIFIED.get_or_init(|| {
        let server_static = [0x5a_u8; 32];
        let chain = unsigned_chain(&server_static);
        wacore::noise::HandshakeUtils::verify_server_cert(&chain, &server_static).is_err()
    })
}

/// A structurally valid chain (intermediate issued by WhatsApp's root serial, leaf issued by
/// the intermediate and carrying `server_static`) whose signatures are all zeros.
fn unsigned_chain(server_static: &[u8; 32]) -> Vec<u8> {
    use wa::cert_chain::{NoiseCertificate, noise_certificate::Details};
    let details = |serial: u32, issuer: u32, key: Vec<u8>| {
        Details {
            serial: Some(serial),
            issuer_serial: Some(issuer),
            key: Some(key),
            not_before: Some(0),
            not_after: Some(u64::from(u32::MAX)),
        }
        .encode_to_vec()
    };
    let certificate = |details: Vec<u8>| NoiseCertificate {
        details: Some(details),
        signature: Some(vec![0; 64]),
    };
    wa::CertChain {
        intermediate: whatsapp_rust::buffa::MessageField::some(certificate(details(
            1,
            0,
            vec![0x33; 32],
        ))),
        leaf: whatsapp_rust::buffa::MessageField::some(certificate(details(
            2,
            1,
            server_static.to_vec(),
        ))),
    }
    .encode_to_vec()
}

/// Whether `url`'s host is this machine's loopback interface: `localhost`, an address in
/// 127.0.0.0/8, or `::1` (also as an IPv4-mapped address). The URL is parsed the way the
/// client's transport parses it.
///
/// ```
/// use wa_pairing_whatsapp::is_loopback_url;
///
/// assert!(is_loopback_url("ws://127.0.0.1:9000/ws/chat"));
/// assert!(is_loopback_url("ws://[::1]:9000/ws/chat"));
/// assert!(is_loopback_url("ws://localhost/ws/chat"));
/// assert!(!is_loopback_url("wss://web.whatsapp.com/ws/chat"));
/// // A user-info part does not make a remote host local.
/// assert!(!is_loopback_url("ws://127.0.0.1@example.com/ws/chat"));
/// ```
pub fn is_loopback_url(url: &str) -> bool {
    url.parse::<http::Uri>()
        .ok()
        .and_then(|uri| uri.host().map(wa_pairing_store::net::is_loopback_host))
        .unwrap_or(false)
}

/// Checks a server URL: a `ws` or `wss` URL with a host, and, when this build skips the
/// certificate checks, a loopback host.
pub(crate) fn check_server_url(url: &str) -> Result<(), Error> {
    check_server_url_shape(url)?;
    if !server_certificates_verified() && !is_loopback_url(url) {
        return Err(Error::new(
            ErrorKind::InsecureServer,
            format!(
                "refusing to connect to {url:?}: this build does not verify WhatsApp's server \
                 certificates (feature `insecure-sim`, or whatsapp-rust's \
                 `danger-skip-cert-chain-verify` enabled by another crate in the build), so it \
                 may only talk to a test server on this machine's loopback interface \
                 (127.0.0.0/8, ::1 or localhost); \
                 build without that feature to reach WhatsApp"
            ),
        ));
    }
    Ok(())
}

/// Checks a server URL's shape only: a `ws` or `wss` URL with a host.
pub(crate) fn check_server_url_shape(url: &str) -> Result<(), Error> {
    let uri: http::Uri = url.parse().map_err(|_| {
        Error::configuration(format!(
            "the WhatsApp server URL {url:?} is not a valid URL: use a WebSocket URL such as wss://web.whatsapp.com/ws/chat"
        ))
    })?;
    match uri.scheme_str() {
        Some("ws" | "wss") => {}
        _ => {
            return Err(Error::configuration(format!(
                "the WhatsApp server URL {url:?} must start with wss:// (WhatsApp's is wss://web.whatsapp.com/ws/chat; ws:// is for wa-pairing-sim on loopback, which only a build with the insecure-sim feature can talk to)"
            )));
        }
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(Error::configuration(format!(
            "the WhatsApp server URL {url:?} has no host"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_hosts() {
        for url in [
            "ws://127.0.0.1:1/ws/chat",
            "ws://127.9.8.7/ws/chat",
            "ws://[::1]:9/ws/chat",
            "ws://[::ffff:127.0.0.1]:9/ws/chat",
            "ws://LOCALHOST:80/ws/chat",
            "ws://localhost./ws/chat",
        ] {
            assert!(is_loopback_url(url), "{url}");
        }
        for url in [
            "wss://web.whatsapp.com/ws/chat",
            "ws://128.0.0.1/ws/chat",
            "ws://10.0.0.1/ws/chat",
            "ws://localhost.example.com/ws/chat",
            "ws://127.0.0.1.example.com/ws/chat",
            "ws://127.0.0.1@example.com/ws/chat",
            "ws://[::2]/ws/chat",
            "not a url",
            "/ws/chat",
        ] {
            assert!(!is_loopback_url(url), "{url}");
        }
    }

    #[test]
    fn malformed_urls_are_configuration_errors() {
        for url in [
            "",
            "web.whatsapp.com",
            "https://web.whatsapp.com/ws/chat",
            "ws://",
        ] {
            let err = check_server_url(url).expect_err(url);
            assert_eq!(err.kind(), ErrorKind::Configuration, "{url}");
        }
    }

    #[test]
    fn the_probe_sees_our_feature() {
        // Without our feature the check may still be off (a dev-dependency such as the
        // simulator can unify the danger feature into this test build); with it, never on.
        if cfg!(feature = "insecure-sim") {
            assert!(!server_certificates_verified());
        }
    }

    #[test]
    fn the_probe_chain_fails_only_on_its_signatures() {
        // Every structural check passes, so the probe measures the signature check alone.
        let key = [1; 32];
        match wacore::noise::HandshakeUtils::verify_server_cert(&unsigned_chain(&key), &key) {
            Ok(_) => assert!(!server_certificates_verified()),
            Err(e) => {
                assert!(e.to_string().contains("signature"), "{e}");
                assert!(server_certificates_verified());
            }
        }
    }
}
