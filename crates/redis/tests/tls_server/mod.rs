//! A throwaway Redis with TLS only (no plaintext port): a CA and a certificate for
//! `localhost` made at test time, a password, clients not asked for certificates.
//!
//! One server per test binary, started on first use on a free port, in a temporary folder;
//! a watchdog shell stops it and removes the folder when the test process exits. Needs
//! `redis-server` built with TLS (Debian's Redis 7 is), or `WA_PAIRING_TEST_REDIS_SERVER`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wa_pairing_store_testkit::Skip;
use wa_pairing_test_support::tls::{ServerCertificates, server_dir, server_log, watch};

/// The `redis-server` to run, when not the one on `PATH`.
pub const SERVER_ENV: &str = "WA_PAIRING_TEST_REDIS_SERVER";

pub struct TlsRedis {
    pub port: u16,
    pub dir: PathBuf,
    /// The CA that signed the server's certificate (for `localhost` only).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server presents.
    pub other_ca: PathBuf,
    pub password: String,
}

impl TlsRedis {
    /// The server of this test process, started on first use; `Err(Skip)` with the reason
    /// when it cannot start.
    pub fn get() -> Result<&'static Self, Skip> {
        static SERVER: OnceLock<Result<TlsRedis, String>> = OnceLock::new();
        SERVER
            .get_or_init(|| start().map_err(|e| format!("the TLS Redis did not start: {e}")))
            .as_ref()
            .map_err(|e| Skip::new(e.clone()))
    }

    /// `rediss://:<password>@{host}:{port}`.
    pub fn url(&self, host: &str) -> String {
        format!("rediss://:{}@{host}:{}", self.password, self.port)
    }

    /// A raw client that trusts the test CA (for the tests' own cleanup).
    pub fn client(&self) -> redis::Client {
        redis::Client::build_with_tls(
            self.url("localhost").as_str(),
            redis::TlsCertificates {
                client_tls: None,
                root_cert: Some(std::fs::read(&self.ca).expect("the CA file")),
            },
        )
        .expect("a TLS client")
    }
}

fn start() -> Result<TlsRedis, String> {
    let binary = std::env::var(SERVER_ENV).unwrap_or_else(|_| "redis-server".to_owned());
    let dir = server_dir("wa-pairing-redis-tls")?;
    let certs = ServerCertificates::create(&dir)?;
    let password = uuid::Uuid::new_v4().simple().to_string();

    let port = wa_pairing_test_support::free_port();
    let server: Vec<String> = vec![
        binary,
        "--port".into(),
        "0".into(),
        "--tls-port".into(),
        port.to_string(),
        "--bind".into(),
        "127.0.0.1".into(),
        "-::1".into(),
        "--tls-cert-file".into(),
        certs.cert.display().to_string(),
        "--tls-key-file".into(),
        certs.key.display().to_string(),
        "--tls-ca-cert-file".into(),
        certs.ca.display().to_string(),
        "--tls-auth-clients".into(),
        "no".into(),
        "--requirepass".into(),
        password.clone(),
        "--save".into(),
        String::new(),
        "--appendonly".into(),
        "no".into(),
        "--dir".into(),
        dir.display().to_string(),
    ];
    watch(&dir, &server, "TERM")?;

    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = server_log(&dir);
            return Err(format!("not listening after 20 s; its log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(TlsRedis {
        port,
        dir,
        ca: certs.ca,
        other_ca: certs.other_ca,
        password,
    })
}
