//! A PgBouncer in transaction mode in front of a test PostgreSQL server, so the store can
//! be tested through a pooler as Supabase runs one.

use std::fmt::Write as _;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use wa_pairing_store_testkit::Skip;

/// A PgBouncer process in transaction mode (`default_pool_size = 2`, so server connections
/// are shared between client connections at once), stopped when dropped.
///
/// It trusts every user it forwards (loopback only) and serves every database of the
/// upstream server under the same name.
///
/// ```no_run
/// # async fn demo() -> Result<(), wa_pairing_store_testkit::Skip> {
/// use wa_pairing_test_support::PgBouncer;
///
/// let bouncer = PgBouncer::start("postgres://postgres@127.0.0.1:5432/postgres")?;
/// let url = bouncer.url("my_test_db"); // postgres://postgres@127.0.0.1:<port>/my_test_db?pool_mode=transaction
/// # let _ = url;
/// # Ok(())
/// # }
/// ```
#[derive(Debug)]
pub struct PgBouncer {
    child: Child,
    addr: SocketAddr,
    user: String,
    dir: PathBuf,
}

impl PgBouncer {
    /// Starts PgBouncer in front of the server `upstream` points at (a superuser URL on
    /// loopback, such as the test server's); `Err(Skip)` says why it could not (no
    /// `pgbouncer` on the `PATH`, or it did not start), so strict test runs fail.
    pub fn start(upstream: &str) -> Result<Self, Skip> {
        let pg: tokio_postgres::Config = upstream
            .parse()
            .map_err(|e| Skip::new(format!("the upstream URL does not parse: {e}")))?;
        let user = pg.get_user().unwrap_or("postgres").to_owned();
        let host = match pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
            _ => "127.0.0.1".to_owned(),
        };
        let upstream_port = pg.get_ports().first().copied().unwrap_or(5432);
        let port = crate::free_port();
        let dir = std::env::temp_dir().join(format!(
            "wa-pairing-pgbouncer-{}",
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&dir).map_err(|e| Skip::new(format!("a temp dir: {e}")))?;
        let mut ini = String::new();
        let _ = write!(
            ini,
            "[databases]\n* = host={host} port={upstream_port}\n\n[pgbouncer]\n\
             listen_addr = 127.0.0.1\nlisten_port = {port}\nunix_socket_dir =\n\
             auth_type = trust\nauth_file = {users}\npool_mode = transaction\n\
             default_pool_size = 2\nmax_client_conn = 500\n\
             ignore_startup_parameters = extra_float_digits,options\n\
             logfile = {log}\npidfile = {pid}\n",
            users = dir.join("users.txt").display(),
            log = dir.join("pgbouncer.log").display(),
            pid = dir.join("pgbouncer.pid").display(),
        );
        write(&dir.join("pgbouncer.ini"), &ini)?;
        write(&dir.join("users.txt"), &format!("\"{user}\" \"\"\n"))?;
        // PgBouncer refuses to run as root: run it as the server's own account then.
        let as_root = Command::new("id")
            .arg("-u")
            .output()
            .is_ok_and(|o| o.stdout.starts_with(b"0\n"));
        let ini_path = dir.join("pgbouncer.ini");
        // Debian installs it in /usr/sbin, which is not on every user's PATH.
        let program = if Path::new("/usr/sbin/pgbouncer").exists() {
            "/usr/sbin/pgbouncer"
        } else {
            "pgbouncer"
        };
        let mut command = if as_root {
            for entry in [&dir, &dir.join("pgbouncer.ini"), &dir.join("users.txt")] {
                let _ = Command::new("chown").arg("postgres").arg(entry).status();
            }
            // setpriv execs (no parent left behind), so dropping the child stops PgBouncer.
            let mut c = Command::new("setpriv");
            c.args([
                "--reuid=postgres",
                "--regid=postgres",
                "--init-groups",
                program,
            ])
            .arg(&ini_path);
            c
        } else {
            let mut c = Command::new(program);
            c.arg(&ini_path);
            c
        };
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                Skip::new(format!(
                    "pgbouncer could not be started ({e}): install it (Debian: apt-get install pgbouncer)"
                ))
            })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut bouncer = Self {
            child,
            addr,
            user,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
            if let Ok(Some(status)) = bouncer.child.try_wait() {
                let log =
                    std::fs::read_to_string(bouncer.dir.join("pgbouncer.log")).unwrap_or_default();
                return Err(Skip::new(format!(
                    "pgbouncer exited at start ({status}): {log}"
                )));
            }
            if Instant::now() > deadline {
                return Err(Skip::new("pgbouncer did not listen within 10 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(bouncer)
    }

    /// The URL of `database` through the pooler, saying `pool_mode=transaction`.
    #[must_use]
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgres://{}@{}/{database}?pool_mode=transaction",
            self.user, self.addr
        )
    }

    /// Where it listens.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn write(path: &Path, text: &str) -> Result<(), Skip> {
    std::fs::write(path, text).map_err(|e| Skip::new(format!("writing {}: {e}", path.display())))
}
