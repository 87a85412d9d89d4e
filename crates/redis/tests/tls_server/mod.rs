//! A throwaway Redis with TLS only (no plaintext port): a CA and a certificate for
//! `localhost` made at test time, a password, clients not asked for certificates.
//!
//! One server per test binary, started on first use on a free port, in a temporary folder;
//! a watchdog shell stops it and removes the folder when the test process exits. Needs
//! `redis-server` built with TLS (Debian's Redis 7 is), or `WA_PAIRING_TEST_REDIS_SERVER`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use wa_pairing_store_testkit::Skip;

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
    remove_stale_folders();
    let dir = std::env::temp_dir().join(format!(
        "wa-pairing-redis-tls-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;

    let (ca_pem, issuer) = make_ca("wa-pairing test CA");
    let (other_pem, _) = make_ca("wa-pairing other test CA");
    let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
    let ca = dir.join("ca.crt");
    let other_ca = dir.join("other-ca.crt");
    write(&ca, &ca_pem)?;
    write(&other_ca, &other_pem)?;
    write(&dir.join("server.crt"), &cert.pem())?;
    write(&dir.join("server.key"), &key.serialize_pem())?;
    let password = uuid::Uuid::new_v4().simple().to_string();

    let port = free_port();
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
        dir.join("server.crt").display().to_string(),
        "--tls-key-file".into(),
        dir.join("server.key").display().to_string(),
        "--tls-ca-cert-file".into(),
        ca.display().to_string(),
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
    watch(&dir, &server)?;

    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("not listening after 20 s; its log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(TlsRedis {
        port,
        dir,
        ca,
        other_ca,
        password,
    })
}

/// Runs `server` under a shell that stops it and removes `dir` once this test process has
/// exited (or the server has).
fn watch(dir: &Path, server: &[String]) -> Result<(), String> {
    const SCRIPT: &str = r#"
"$@" &
server=$!
while kill -0 "$WA_TEST_PID" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
kill "$server" 2>/dev/null
wait "$server"
rm -rf "$WA_TEST_DIR"
"#;
    let log = std::fs::File::create(dir.join("server.log")).map_err(|e| e.to_string())?;
    Command::new("sh")
        .arg("-c")
        .arg(SCRIPT)
        .arg("sh")
        .args(server)
        .env("WA_TEST_PID", std::process::id().to_string())
        .env("WA_TEST_DIR", dir)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("sh: {e}"))?;
    Ok(())
}

/// Folders left by test processes that were killed before their watchdog could clean up.
fn remove_stale_folders() {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix("wa-pairing-redis-tls-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn make_ca(name: &str) -> (String, rcgen::Issuer<'static, rcgen::KeyPair>) {
    let key = rcgen::KeyPair::generate().expect("a CA key");
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("CA params");
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params.self_signed(&key).expect("the CA certificate").pem();
    (pem, rcgen::Issuer::new(params, key))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
