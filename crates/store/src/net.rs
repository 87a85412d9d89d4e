//! Network addresses, as the crates that check a configured URL read them.

use std::net::IpAddr;

/// Whether `host` (a URL's host: a name, an IPv4 address, or an IPv6 address with or
/// without brackets) is this machine's loopback interface: `localhost` (any case, with or
/// without the trailing dot), an address in 127.0.0.0/8, or `::1` (also as an IPv4-mapped
/// address). Names are not resolved: `localhost.example.com` is not loopback.
///
/// The crates above the store ask it before they allow plain HTTP or a test server:
/// Supabase's URL, the JWKS URL of the HTTP API, and the WhatsApp server of a build that
/// skips certificate checks.
///
/// ```
/// use wa_pairing_store::net::is_loopback_host;
///
/// assert!(is_loopback_host("localhost") && is_loopback_host("LOCALHOST."));
/// assert!(is_loopback_host("127.9.8.7") && is_loopback_host("[::1]") && is_loopback_host("::1"));
/// assert!(is_loopback_host("[::ffff:127.0.0.1]"));
/// assert!(!is_loopback_host("localhost.example.com") && !is_loopback_host("10.0.0.1"));
/// assert!(!is_loopback_host("[::2]") && !is_loopback_host(""));
/// ```
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let name = bare.strip_suffix('.').unwrap_or(bare);
    if name.eq_ignore_ascii_case("localhost") {
        return true;
    }
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(ip)) => ip.is_loopback(),
        Ok(IpAddr::V6(ip)) => {
            ip.is_loopback() || ip.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
        Err(_) => false,
    }
}
