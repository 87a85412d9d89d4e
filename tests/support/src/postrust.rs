//! A PostgREST-compatible server in front of a test database, configured as Supabase
//! configures PostgREST, so the Supabase backend can be tested against a live REST API
//! offline.
//!
//! The server is `wa-pairing-postrust` (`tools/postrust`: the `postrust-server` crate,
//! pinned, with the REST API mounted under `/rest/v1` as on a Supabase project). `.ci/run`
//! builds it from `tools/postrust` once per machine, where [`Postrust::start`] finds it.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use wa_pairing_store_testkit::Skip;

use crate::TestDb;

/// The environment variable that names the `wa-pairing-postrust` binary; without it the
/// binary is looked for on the `PATH`, then where `.ci/run` installs it.
pub const POSTRUST_BIN_ENV: &str = "WA_PAIRING_POSTRUST_BIN";

/// Supabase's roles (`anon`, `authenticated`, `service_role`, and `authenticator`, the login
/// role the REST server uses) and `auth.uid()` as Supabase defines it, for plain
/// PostgreSQL. Apply it before the migrations.
pub const SUPABASE_ROLES_SQL: &str = include_str!("../supabase_roles.sql");

/// A running `wa-pairing-postrust` on loopback in front of one database, stopped when
/// dropped: anonymous requests act as `anon`, a JWT signed with [`jwt_secret`](Self::jwt_secret)
/// acts as the role it names (`authenticated`, `service_role`), schema `public`, as on a
/// Supabase project.
///
/// ```no_run
/// # async fn demo() -> Result<(), wa_pairing_store_testkit::Skip> {
/// use wa_pairing_test_support::{Postrust, TestDb};
///
/// let db = TestDb::create("doc").await?;
/// // ... apply SUPABASE_ROLES_SQL and the migrations to `db` ...
/// let rest = Postrust::start(&db)?;
/// let url = rest.url(); // http://127.0.0.1:<port>, serving /rest/v1
/// let key = rest.service_role_key();
/// # let _ = (url, key);
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct Postrust {
    child: Child,
    url: String,
    jwt_secret: String,
    log: PathBuf,
}

impl Postrust {
    /// Starts the server in front of `db`, which must already hold the roles fixture and
    /// the migrations (the server reads the schema once, at start). `Err(Skip)` says why it
    /// could not start (no binary, or it exited), so strict test runs fail.
    pub fn start(db: &TestDb) -> Result<Self, Skip> {
        let program = binary()?;
        let pg: tokio_postgres::Config = db
            .url
            .parse()
            .map_err(|e| Skip::new(format!("the test database URL does not parse: {e}")))?;
        let host = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let port = pg.get_ports().first().copied().unwrap_or(5432);
        let jwt_secret = format!(
            "{}{}",
            uuid::Uuid::new_v4().simple(),
            uuid::Uuid::new_v4().simple()
        );
        let log = std::env::temp_dir().join(format!(
            "wa-pairing-postrust-{}.log",
            uuid::Uuid::new_v4().simple()
        ));
        let log_file = std::fs::File::create(&log)
            .map_err(|e| Skip::new(format!("cannot create {}: {e}", log.display())))?;
        let mut child = Command::new(&program)
            .env(
                "PGRST_DB_URI",
                format!("postgres://authenticator@{host}:{port}/{}", db.name()),
            )
            .env("PGRST_DB_SCHEMAS", "public")
            .env("PGRST_DB_ANON_ROLE", "anon")
            .env("PGRST_JWT_SECRET", &jwt_secret)
            .env("PGRST_SERVER_HOST", "127.0.0.1")
            .env("PGRST_SERVER_PORT", "0")
            .env("PGRST_DB_POOL", "4")
            // PostgREST's own answers: REST at the root (here /rest/v1), database errors in
            // the database's words, and PostgREST's RPC result shapes.
            .env("PGRST_COMPAT_MODE", "true")
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .map_err(|e| Skip::new(format!("{} could not be started: {e}", program.display())))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("listening on ") {
                    let _ = tx.send(url.to_owned());
                }
            }
        });
        let Ok(url) = rx.recv_timeout(Duration::from_secs(30)) else {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let _ = std::fs::remove_file(&log);
            return Err(Skip::new(format!(
                "wa-pairing-postrust did not start within 30 s ({status}): {}",
                tail(&text, 20)
            )));
        };
        Ok(Self {
            child,
            url,
            jwt_secret,
            log,
        })
    }

    /// The project URL, `http://127.0.0.1:<port>`: the REST API is under `/rest/v1`, as on
    /// Supabase, so `SupabaseConfig::new(url, key)` and `createClient(url, key)` take it.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The secret the server verifies JWTs with (HS256), as a Supabase project's JWT secret.
    #[must_use]
    pub fn jwt_secret(&self) -> &str {
        &self.jwt_secret
    }

    /// A `service_role` key (a JWT, as Supabase's legacy service key is), valid for a day.
    #[must_use]
    pub fn service_role_key(&self) -> String {
        self.token("service_role", None)
    }

    /// An `anon` key, as a browser's supabase-js client is given, valid for a day.
    #[must_use]
    pub fn anon_key(&self) -> String {
        self.token("anon", None)
    }

    /// The access token of a signed-in end user `user` (role `authenticated`, `sub` = the
    /// user's id), valid for an hour, as Supabase Auth issues.
    #[must_use]
    pub fn user_token(&self, user: uuid::Uuid) -> String {
        self.token("authenticated", Some(user))
    }

    fn token(&self, role: &str, sub: Option<uuid::Uuid>) -> String {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let mut claims = serde_json::json!({
            "role": role,
            "iss": "supabase",
            "iat": now,
            "exp": now + if sub.is_some() { 3_600 } else { 86_400 },
        });
        if let Some(sub) = sub {
            claims["sub"] = serde_json::Value::String(sub.to_string());
            claims["aud"] = serde_json::Value::String("authenticated".to_owned());
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(self.jwt_secret.as_bytes()),
        )
        .expect("an HS256 token")
    }

    /// The server's log so far (its warnings and errors).
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Postrust {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The binary: [`POSTRUST_BIN_ENV`], else `wa-pairing-postrust` on the `PATH`, else where
/// `.ci/run` installs it (`~/.cache/wa-pairing/tools/bin`).
fn binary() -> Result<PathBuf, Skip> {
    const NAME: &str = "wa-pairing-postrust";
    if let Some(path) = std::env::var_os(POSTRUST_BIN_ENV) {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(Skip::new(format!(
                "{POSTRUST_BIN_ENV} names {}, which is not a file",
                path.display()
            )))
        };
    }
    let on_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(NAME))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))
        .map(|c| c.join("wa-pairing/tools/bin").join(NAME));
    on_path
        .into_iter()
        .chain(cache)
        .find(|p| p.is_file())
        .ok_or_else(|| {
            Skip::new(format!(
                "{NAME} (a PostgREST-compatible server) is not installed: run `cargo install --locked --path tools/postrust`, or set {POSTRUST_BIN_ENV}"
            ))
        })
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
