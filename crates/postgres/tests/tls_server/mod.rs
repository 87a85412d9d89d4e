//! A throwaway PostgreSQL cluster with TLS on, for the TLS tests: a CA and a certificate for
//! `localhost` made at test time, `hostssl` only (a plaintext TCP connection is refused),
//! SCRAM passwords over TCP, trust on its private Unix socket for the tests' own setup.
//!
//! One cluster per test binary, started on first use on a free port, in a temporary folder;
//! a watchdog shell stops it and removes the folder when the test process exits. Started
//! as the `postgres` OS user when the tests run as root (initdb refuses root). Needs
//! PostgreSQL's server binaries (`initdb`, `postgres`, `pg_isready`): Debian's under
//! `/usr/lib/postgresql/<version>/bin`, or `WA_PAIRING_TEST_PG_BINDIR`.
#![allow(dead_code, unreachable_pub, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_store_testkit::{Skip, TestBackend};

/// The server binaries' folder, when not Debian's.
pub const BINDIR_ENV: &str = "WA_PAIRING_TEST_PG_BINDIR";

pub struct TlsServer {
    pub port: u16,
    /// The folder of everything: certificates, data, socket, log.
    pub dir: PathBuf,
    /// The CA that signed the server's certificate (for `localhost` only).
    pub ca: PathBuf,
    /// Another CA, which signed nothing the server presents.
    pub other_ca: PathBuf,
    /// The `postgres` role's password (SCRAM over TCP).
    pub password: String,
}

impl TlsServer {
    /// The cluster of this test process, started on first use; `Err(Skip)` with the reason
    /// when it cannot start (no binaries, no `postgres` user...).
    pub fn get() -> Result<&'static Self, Skip> {
        static SERVER: OnceLock<Result<TlsServer, String>> = OnceLock::new();
        SERVER
            .get_or_init(|| {
                start().map_err(|e| format!("the TLS PostgreSQL cluster did not start: {e}"))
            })
            .as_ref()
            .map_err(|e| Skip::new(e.clone()))
    }

    /// `postgres://postgres:<password>@{host}:{port}/{db}` with `params` (`sslmode=...`).
    pub fn url(&self, host: &str, db: &str, params: &str) -> String {
        let mut url = format!(
            "postgres://postgres:{}@{host}:{}/{db}",
            self.password, self.port
        );
        if !params.is_empty() {
            url.push('?');
            url.push_str(params);
        }
        url
    }

    /// `sslmode=verify-full&sslrootcert=<the CA>`.
    pub fn verify_full(&self) -> String {
        format!("sslmode=verify-full&sslrootcert={}", self.ca.display())
    }

    /// A connection over the cluster's Unix socket (trust, no TLS) for the tests' setup.
    pub async fn admin(&self, db: &str) -> tokio_postgres::Client {
        let mut config = tokio_postgres::Config::new();
        config
            .host_path(&self.dir)
            .port(self.port)
            .user("postgres")
            .dbname(db);
        let (client, conn) = config.connect(NoTls).await.expect("the admin socket");
        tokio::spawn(conn);
        client
    }

    /// A fresh database with Supabase's roles, dropped by the returned cleanup.
    pub async fn create_db(&self) -> String {
        let name = format!("wa_tls_{}", uuid::Uuid::new_v4().simple());
        self.admin("postgres")
            .await
            .batch_execute(&format!("create database {name}"))
            .await
            .expect("create the test database");
        self.admin(&name)
            .await
            .batch_execute(include_str!("../fixtures/supabase_roles.sql"))
            .await
            .expect("the Supabase roles fixture");
        name
    }

    pub async fn drop_db(&'static self, name: String) {
        let _ = self
            .admin("postgres")
            .await
            .batch_execute(&format!("drop database if exists {name} with (force)"))
            .await;
    }
}

/// The conformance suite's factory: a fresh database on the TLS cluster, the store connected
/// with `verify-full` (pool and change feed over TLS), the migrations applied over TLS.
pub async fn backend() -> Result<TestBackend, Skip> {
    let server = TlsServer::get()?;
    let db = server.create_db().await;
    let config =
        PostgresConfig::new(server.url("localhost", &db, &server.verify_full())).pool_size(8);
    let store = PostgresStore::connect(&config).expect("pool");
    store.migrate().await.expect("migrations over TLS");
    Ok(TestBackend::new(store.stores().build()).with_cleanup(move || server.drop_db(db)))
}

fn start() -> Result<TlsServer, String> {
    let bindir = bindir()?;
    let as_user = run_as()?;
    remove_stale_folders();

    let dir = std::env::temp_dir().join(format!(
        "wa-pairing-pg-tls-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    set_mode(&dir, 0o700)?;

    // Certificates: a CA, the server's certificate for localhost, another CA.
    let (ca_pem, issuer) = make_ca("wa-pairing test CA");
    let (other_pem, _) = make_ca("wa-pairing other test CA");
    let server_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let mut params =
        rcgen::CertificateParams::new(vec!["localhost".to_owned()]).map_err(|e| e.to_string())?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "localhost");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let server_cert = params
        .signed_by(&server_key, &issuer)
        .map_err(|e| e.to_string())?;
    let ca = dir.join("ca.crt");
    let other_ca = dir.join("other-ca.crt");
    write(&ca, &ca_pem, 0o644)?;
    write(&other_ca, &other_pem, 0o644)?;
    write(&dir.join("server.crt"), &server_cert.pem(), 0o644)?;
    write(&dir.join("server.key"), &server_key.serialize_pem(), 0o600)?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    write(&dir.join("pw"), &password, 0o600)?;
    if let Some((uid, gid)) = as_user {
        for entry in [
            "",
            "ca.crt",
            "other-ca.crt",
            "server.crt",
            "server.key",
            "pw",
        ] {
            std::os::unix::fs::chown(dir.join(entry), Some(uid), Some(gid))
                .map_err(|e| format!("chown {entry}: {e}"))?;
        }
    }

    let data = dir.join("data");
    let initdb = as_postgres(as_user, &bindir.join("initdb"))
        .arg("-D")
        .arg(&data)
        .args([
            "-U",
            "postgres",
            "-E",
            "UTF8",
            "--no-sync",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ])
        .arg(format!("--pwfile={}", dir.join("pw").display()))
        .current_dir(&dir)
        .output()
        .map_err(|e| format!("initdb: {e}"))?;
    if !initdb.status.success() {
        return Err(format!(
            "initdb failed: {}",
            String::from_utf8_lossy(&initdb.stderr)
        ));
    }
    // TCP only with TLS: a plaintext TCP connection finds no pg_hba.conf entry.
    write(
        &data.join("pg_hba.conf"),
        "local all all trust\n\
         hostssl all all 127.0.0.1/32 scram-sha-256\n\
         hostssl all all ::1/128 scram-sha-256\n",
        0o600,
    )?;
    if let Some((uid, gid)) = as_user {
        std::os::unix::fs::chown(data.join("pg_hba.conf"), Some(uid), Some(gid))
            .map_err(|e| format!("chown pg_hba.conf: {e}"))?;
    }

    let port = free_port();
    let mut server = vec![
        bindir.join("postgres").display().to_string(),
        "-D".to_owned(),
        data.display().to_string(),
        "-p".to_owned(),
        port.to_string(),
        "-k".to_owned(),
        dir.display().to_string(),
    ];
    for setting in [
        "listen_addresses=localhost".to_owned(),
        "ssl=on".to_owned(),
        format!("ssl_cert_file={}", dir.join("server.crt").display()),
        format!("ssl_key_file={}", dir.join("server.key").display()),
        "fsync=off".to_owned(),
        "synchronous_commit=off".to_owned(),
        "full_page_writes=off".to_owned(),
        "max_connections=200".to_owned(),
    ] {
        server.push("-c".to_owned());
        server.push(setting);
    }
    if as_user.is_some() {
        server.splice(
            0..0,
            [
                "setpriv",
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
            ]
            .map(str::to_owned),
        );
    }
    watch(&dir, &server)?;

    // Ready when pg_isready says so over the socket.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let ready = Command::new(bindir.join("pg_isready"))
            .arg("-q")
            .arg("-h")
            .arg(&dir)
            .arg("-p")
            .arg(port.to_string())
            .status()
            .is_ok_and(|s| s.success());
        if ready {
            break;
        }
        if Instant::now() > deadline {
            let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
            return Err(format!("not ready after 30 s; its log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(TlsServer {
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
kill -INT "$server" 2>/dev/null
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
        let Some(rest) = name.strip_prefix("wa-pairing-pg-tls-") else {
            continue;
        };
        let pid = rest.split('-').next().unwrap_or_default();
        if !pid.is_empty() && !Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn bindir() -> Result<PathBuf, String> {
    if let Ok(dir) = std::env::var(BINDIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_string_lossy().parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let out = Command::new("pg_config").arg("--bindir").output();
    match out {
        Ok(o) if o.status.success() => {
            let bin = PathBuf::from(String::from_utf8_lossy(&o.stdout).trim());
            if bin.join("initdb").exists() {
                return Ok(bin);
            }
            Err(format!("no initdb in {}", bin.display()))
        }
        _ => Err(format!(
            "PostgreSQL's server binaries are not installed (apt-get install postgresql), or set {BINDIR_ENV}"
        )),
    }
}

/// The `postgres` user's ids when running as root (PostgreSQL refuses to run as root).
fn run_as() -> Result<Option<(u32, u32)>, String> {
    let me = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("id -u: {e}"))?;
    if String::from_utf8_lossy(&me.stdout).trim() != "0" {
        return Ok(None);
    }
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|e| e.to_string())?;
    let line = passwd
        .lines()
        .find(|l| l.starts_with("postgres:"))
        .ok_or("running as root and there is no postgres user to run the server as")?;
    let fields: Vec<&str> = line.split(':').collect();
    let id = |i: usize| fields.get(i).and_then(|v| v.parse::<u32>().ok());
    match (id(2), id(3)) {
        (Some(uid), Some(gid)) => Ok(Some((uid, gid))),
        _ => Err("the postgres user's entry in /etc/passwd is unreadable".to_owned()),
    }
}

fn as_postgres(as_user: Option<(u32, u32)>, program: &Path) -> Command {
    use std::os::unix::process::CommandExt as _;
    let mut command = Command::new(program);
    if let Some((uid, gid)) = as_user {
        command.uid(uid).gid(gid).env("HOME", "/tmp");
    }
    command
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

fn write(path: &Path, text: &str, mode: u32) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    set_mode(path, mode)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
