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
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use tokio_postgres::NoTls;
use wa_pairing_postgres::{PostgresConfig, PostgresStore};
use wa_pairing_store_testkit::{Skip, TestBackend};
use wa_pairing_test_support::tls::{ServerCertificates, server_dir, server_log, watch, write};

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
            .batch_execute(wa_pairing_test_support::SUPABASE_ROLES_SQL)
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
    let store = PostgresStore::new(&config).expect("pool");
    store.migrate().await.expect("migrations over TLS");
    Ok(TestBackend::new(store.stores().build()).with_cleanup(move || server.drop_db(db)))
}

fn start() -> Result<TlsServer, String> {
    let bindir = bindir()?;
    let as_user = run_as()?;
    let dir = server_dir("wa-pairing-pg-tls")?;

    // Certificates: a CA, the server's certificate for localhost, another CA.
    let certs = ServerCertificates::create(&dir)?;
    let password = uuid::Uuid::new_v4().simple().to_string();
    write(&dir.join("pw"), &password, 0o600)?;
    if let Some((uid, gid)) = as_user {
        for entry in ["", "pw"].into_iter().chain(ServerCertificates::FILES) {
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

    let port = wa_pairing_test_support::free_port();
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
        format!("ssl_cert_file={}", certs.cert.display()),
        format!("ssl_key_file={}", certs.key.display()),
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
    watch(&dir, &server, "INT")?;

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
            let log = server_log(&dir);
            return Err(format!("not ready after 30 s; its log:\n{log}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok(TlsServer {
        port,
        dir,
        ca: certs.ca,
        other_ca: certs.other_ca,
        password,
    })
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
