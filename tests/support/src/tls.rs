//! Test certificate authorities and the folder of a throwaway TLS server: certificates for
//! `localhost` made at test time, and a watchdog that stops the server and removes its
//! folder once the test process has exited. The PostgreSQL and Redis TLS tests start their
//! servers with these.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The certificates of a test server, written into its folder.
#[derive(Debug, Clone)]
pub struct ServerCertificates {
    /// The CA that signed the server's certificate (`ca.crt`).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server presents (`other-ca.crt`).
    pub other_ca: PathBuf,
    /// The server's certificate, for `localhost` only (`server.crt`).
    pub cert: PathBuf,
    /// The server's private key (`server.key`, mode 0600).
    pub key: PathBuf,
}

impl ServerCertificates {
    /// The file names inside the folder, for a server that must own them.
    pub const FILES: [&'static str; 4] = ["ca.crt", "other-ca.crt", "server.crt", "server.key"];

    /// Makes a CA, a certificate for `localhost` signed by it, and another CA, and writes
    /// them into `dir`.
    pub fn create(dir: &Path) -> Result<Self, String> {
        let (ca_pem, issuer) = make_ca("wa-pairing test CA")?;
        let (other_pem, _) = make_ca("wa-pairing other test CA")?;
        let key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()])
            .map_err(|e| e.to_string())?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        let files = Self {
            ca: dir.join("ca.crt"),
            other_ca: dir.join("other-ca.crt"),
            cert: dir.join("server.crt"),
            key: dir.join("server.key"),
        };
        write(&files.ca, &ca_pem, 0o644)?;
        write(&files.other_ca, &other_pem, 0o644)?;
        write(&files.cert, &cert.pem(), 0o644)?;
        write(&files.key, &key.serialize_pem(), 0o600)?;
        Ok(files)
    }
}

/// A self-signed CA named `name`: its PEM and what signs with it.
fn make_ca(name: &str) -> Result<(String, rcgen::Issuer<'static, rcgen::KeyPair>), String> {
    let key = rcgen::KeyPair::generate().map_err(|e| format!("a CA key: {e}"))?;
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let pem = params
        .self_signed(&key)
        .map_err(|e| format!("the CA certificate: {e}"))?
        .pem();
    Ok((pem, rcgen::Issuer::new(params, key)))
}

/// A new folder `<temp>/<prefix>-<pid>-<random>` (mode 0700) for one server of this test
/// process, after removing the folders of `prefix` that test processes killed before their
/// watchdog could clean up left behind.
pub fn server_dir(prefix: &str) -> Result<PathBuf, String> {
    remove_stale_folders(prefix);
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    set_mode(&dir, 0o700)?;
    Ok(dir)
}

fn remove_stale_folders(prefix: &str) {
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(prefix).and_then(|r| r.strip_prefix('-')) else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty()
            && pid.bytes().all(|b| b.is_ascii_digit())
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

/// Runs `server` (the program and its arguments) under a shell that stops it with `signal`
/// (`TERM`, or `INT` for PostgreSQL's fast shutdown) and removes `dir` once this test
/// process has exited (or the server has). Its output goes to `dir/server.log`.
pub fn watch(dir: &Path, server: &[String], signal: &str) -> Result<(), String> {
    const SCRIPT: &str = r#"
"$@" &
server=$!
while kill -0 "$WA_TEST_PID" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
kill -"$WA_TEST_SIGNAL" "$server" 2>/dev/null
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
        .env("WA_TEST_SIGNAL", signal)
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("sh: {e}"))?;
    Ok(())
}

/// The server's log so far (for an error saying why it did not start).
pub fn server_log(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("server.log")).unwrap_or_default()
}

/// Writes `text` to `path` with the permission bits `mode`.
pub fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}
