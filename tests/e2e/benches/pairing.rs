//! The whole pairing flow, measured: the runner with the real `whatsapp-rust` client against
//! the simulator over loopback, on the in-memory store and on PostgreSQL.
//!
//! ```sh
//! cargo bench -p wa-pairing-e2e --bench pairing            # both stores
//! cargo bench -p wa-pairing-e2e --bench pairing -- memory  # one of: memory, postgres
//! WA_PAIRING_BENCH_SESSIONS=10000 cargo bench -p wa-pairing-e2e --bench pairing -- postgres
//! cargo bench -p wa-pairing-e2e --bench pairing -- takeover # a dead instance's sessions
//! cargo bench -p wa-pairing-e2e --bench pairing -- messages # one session sending texts
//! ```
//!
//! Each store is measured in a process of its own, with the simulator in another, so the
//! resident memory measured is the runner's (client, sessions, stores), not the simulator's.
//! Per store:
//! - 100 devices asked to pair at once, the simulated phones typing each code as it
//!   appears: time until all are connected, pairings per second;
//! - resident memory per connected session at 100, 1,000, 5,000 and 10,000 sessions (as far
//!   as the full count, 1,000 by default), and for PostgreSQL, while idle, the transactions
//!   per second the runner makes, its CPU use and its lease renewal latency;
//! - with those sessions held, 50 devices one at a time: from `connecting` to the code
//!   readable in the store, and from the code being typed to `connected` (p50, p99), and
//!   the auth-state operations per pairing.
//!
//! `takeover` measures a dead instance's sessions coming back: one runner process links the
//! sessions (1,000 by default) and is killed; two instances left in the measuring process
//! take them over at the default resume rate, while new devices ask for codes one after
//! another. PostgreSQL only.
//!
//! `messages` measures one linked session sending texts through the runner's
//! `WhatsAppSession` to another simulated account (`WA_PAIRING_BENCH_MESSAGES`, default
//! 1,000): from `send_text` to the server's ack, one at a time (p50, p99), and messages per
//! second when the application does not wait for each ack; then the friend's phone types as
//! many texts back, timed until the application hears the last. For each part it prints the
//! database transactions and auth-state rows written per message. The client's Signal state
//! lives in PostgreSQL, so every send pays for its writes there; the simulated phones decrypt
//! every copy. PostgreSQL only, the simulator in the same process.
#![allow(missing_docs, clippy::cast_precision_loss)]

use std::collections::HashSet;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::Mutex;
use wa_pairing_e2e::Counting;
use wa_pairing_runner::{Runner, RunnerConfig};
use wa_pairing_sim::{Sim, SimConfig};
use wa_pairing_store::{
    AuthStateStore, DeviceId, DeviceStatus, DeviceStore, Keyring, MemoryStore, NewDevice,
    PairingRequest, Stores, UserId,
};
use wa_pairing_whatsapp::WhatsAppConfig;

const ROLE_ENV: &str = "WA_PAIRING_BENCH_ROLE";
const SESSIONS_ENV: &str = "WA_PAIRING_BENCH_SESSIONS";
/// The database and simulator a `dying` runner process works against.
const DB_ENV: &str = "WA_PAIRING_BENCH_DB_URL";
const SIM_ENV: &str = "WA_PAIRING_BENCH_SIM_URL";
/// Where sessions are measured, as far as the full count.
const CHECKPOINTS: [usize; 4] = [BURST, 1_000, 5_000, 10_000];
const BURST: usize = 100;
const SEQUENTIAL: usize = 50;

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("sim") => rt.block_on(sim_process()),
        Ok("dying") => rt.block_on(dying_process()),
        Ok("takeover") => rt.block_on(takeover_process()),
        Ok("messages") => rt.block_on(messages_process()),
        Ok(store) => rt.block_on(runner_process(store)),
        Err(_) => {
            let only: Vec<String> = std::env::args()
                .skip(1)
                .filter(|a| !a.starts_with("--"))
                .collect();
            for store in ["memory", "postgres", "takeover", "messages"] {
                let asked = only.iter().any(|o| o == store);
                // The takeover and the messages run only when asked for by name.
                if asked || (only.is_empty() && !matches!(store, "takeover" | "messages")) {
                    let status = std::process::Command::new(std::env::current_exe().expect("exe"))
                        .env(ROLE_ENV, store)
                        .status()
                        .expect("the measuring process starts");
                    assert!(status.success(), "measuring {store} failed");
                }
            }
        }
    }
}

/// The simulator in a process of its own: prints its URL, then reads `PHONE CODE` lines and
/// answers `ok PHONE MICROS` (how long the phone's side took) or `err PHONE REASON`.
async fn sim_process() {
    let sim = Sim::start(SimConfig::default()).await.expect("sim");
    println!("{}", sim.url());
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(line) = rx.recv().await {
            println!("{line}");
        }
    });
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line == "counters" {
            let c = sim.counters();
            let _ = tx.send(format!(
                "counters: {} logins, {} connections, {} open",
                c.logins, c.connections, c.open_connections
            ));
            continue;
        }
        let Some((phone, code)) = line.split_once(' ') else {
            continue;
        };
        let (phone, code) = (phone.to_owned(), code.to_owned());
        let handle = sim.phone(&phone);
        let tx = tx.clone();
        tokio::spawn(async move {
            let t = Instant::now();
            let answer = match handle.enter_code(&code).await {
                Ok(()) => format!("ok {phone} {}", t.elapsed().as_micros()),
                Err(e) => format!("err {phone} {e}"),
            };
            let _ = tx.send(answer);
        });
    }
}

/// The simulated phones, driven from the measuring process.
struct Phones {
    stdin: Mutex<tokio::process::ChildStdin>,
    phone_side: Mutex<Vec<Duration>>,
    _child: tokio::process::Child,
}

impl Phones {
    async fn start() -> (Arc<Self>, String) {
        let mut child = tokio::process::Command::new(std::env::current_exe().expect("exe"))
            .env(ROLE_ENV, "sim")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the simulator process starts");
        let mut out = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let url = out
            .next_line()
            .await
            .expect("the simulator answers")
            .expect("its URL");
        let phones = Arc::new(Self {
            stdin: Mutex::new(child.stdin.take().expect("stdin")),
            phone_side: Mutex::default(),
            _child: child,
        });
        let reader = phones.clone();
        tokio::spawn(async move {
            while let Ok(Some(line)) = out.next_line().await {
                let mut parts = line.split(' ');
                match (parts.next(), parts.next(), parts.next()) {
                    (Some("ok"), _, Some(micros)) => {
                        let us = micros.parse().unwrap_or(0);
                        reader
                            .phone_side
                            .lock()
                            .await
                            .push(Duration::from_micros(us));
                    }
                    _ => eprintln!("simulator: {line}"),
                }
            }
        });
        (phones, url)
    }

    /// Asks the simulator to print its counters (logins, connections) on standard error.
    async fn print_counters(&self) {
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(b"counters\n")
            .await
            .expect("the simulator reads");
        stdin.flush().await.expect("flush");
    }

    async fn type_code(&self, phone: &str, code: &str) {
        let mut stdin = self.stdin.lock().await;
        stdin
            .write_all(format!("{phone} {code}\n").as_bytes())
            .await
            .expect("the simulator reads");
        stdin.flush().await.expect("flush");
    }
}

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(f64::NAN, |kb| kb / 1024.0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn pct(v: &[Duration], p: f64) -> f64 {
    let mut v = v.to_vec();
    v.sort();
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    ms(v[i])
}

fn phone_number(i: usize) -> String {
    format!("62812{:08}", 30_000_000 + i)
}

struct Bench {
    devices: Arc<dyn DeviceStore>,
    user: UserId,
    phones: Arc<Phones>,
    next: usize,
    /// Every device linked by a burst.
    linked: Vec<DeviceId>,
}

impl Bench {
    async fn new_device(&mut self) -> (DeviceId, String) {
        let d = self
            .devices
            .create(NewDevice::new(self.user, "bench"))
            .await
            .expect("create");
        let number = phone_number(self.next);
        self.next += 1;
        let phone = wa_pairing_phone::parse(&format!("+{number}")).expect("valid number");
        self.devices
            .start_pairing(d.id, PairingRequest::Code { phone })
            .await
            .expect("start pairing");
        (d.id, number)
    }

    /// `n` devices at once, each code typed as soon as it is stored; returns the wall time.
    /// Only these devices are polled, so a burst costs the same at 10,000 sessions as at 100.
    async fn burst(&mut self, n: usize) -> Duration {
        let start = Instant::now();
        let mut pending = Vec::with_capacity(n);
        for _ in 0..n {
            pending.push(self.new_device().await);
        }
        let mut typed = HashSet::new();
        let mut linked = HashSet::new();
        while linked.len() < n {
            for (id, number) in &pending {
                if linked.contains(id) {
                    continue;
                }
                let d = self.devices.get(*id).await.expect("get");
                if d.status == DeviceStatus::Connected {
                    linked.insert(*id);
                    continue;
                }
                if typed.contains(id) {
                    continue;
                }
                if let Some(code) = d.pairing_code {
                    self.phones.type_code(number, &code.to_string()).await;
                    typed.insert(*id);
                }
            }
            assert!(
                start.elapsed() < Duration::from_secs(600),
                "{n} devices did not link within 10 minutes"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.linked.extend(pending.into_iter().map(|(id, _)| id));
        start.elapsed()
    }

    /// One device: (connecting -> code stored, code typed -> connected).
    async fn one(&mut self) -> (Duration, Duration) {
        let start = Instant::now();
        let (id, number) = self.new_device().await;
        let code = loop {
            if let Some(code) = self.devices.get(id).await.expect("get").pairing_code {
                break code;
            }
            assert!(start.elapsed() < Duration::from_secs(60), "no code");
            tokio::time::sleep(Duration::from_millis(1)).await;
        };
        let to_code = start.elapsed();
        let typed = Instant::now();
        self.phones.type_code(&number, &code.to_string()).await;
        while self.devices.get(id).await.expect("get").status != DeviceStatus::Connected {
            assert!(typed.elapsed() < Duration::from_secs(60), "not linked");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        (to_code, typed.elapsed())
    }
}

/// Transactions committed in the database so far (PostgreSQL's statistics, flushed about
/// once a second).
async fn pg_transactions(url: &str, db: &str) -> i64 {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    client
        .query_one(
            "select xact_commit + xact_rollback from pg_stat_database where datname = $1",
            &[&db],
        )
        .await
        .expect("pg_stat_database")
        .get(0)
}

/// A connection to the bench database, whose per-owner device cap (20 by default) it lifts:
/// one owner holds every bench device.
async fn uncapped_admin(url: &str) -> tokio_postgres::Client {
    let (admin, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect to the bench database");
    tokio::spawn(conn);
    admin
        .batch_execute(
            "update public.wa_pairing_settings set value = '1000000' \
             where name = 'max_devices_per_user'",
        )
        .await
        .expect("lift the device cap");
    admin
}

/// Stores over `pg` whose auth state counts the client's calls by key family, under the
/// encryption layer.
fn counted_postgres(
    pg: wa_pairing_postgres::PostgresStore,
) -> (Stores, Arc<Counting<Arc<dyn AuthStateStore>>>) {
    let auth = Arc::new(Counting::new(
        Arc::new(pg.clone()) as Arc<dyn AuthStateStore>
    ));
    let stores = Stores::builder(pg.clone(), auth.clone())
        .budget(pg)
        .encrypt(Keyring::generate(1).0)
        .build();
    (stores, auth)
}

/// Rows inserted, updated or deleted so far in `devices` and `device_auth_state`
/// (PostgreSQL's statistics).
async fn row_changes(url: &str) -> (i64, i64) {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
        .expect("connect");
    tokio::spawn(conn);
    let rows = client
        .query(
            "select relname::text, (n_tup_ins + n_tup_upd + n_tup_del)::bigint
               from pg_stat_user_tables where relname in ('devices', 'device_auth_state')",
            &[],
        )
        .await
        .expect("pg_stat_user_tables");
    let of = |name: &str| {
        rows.iter()
            .find(|r| r.get::<_, String>(0) == name)
            .map_or(0, |r| r.get::<_, i64>(1))
    };
    (of("devices"), of("device_auth_state"))
}

/// Transactions and auth-state row changes so far, once the statistics caught up.
async fn db_work(url: &str, db: &str) -> (i64, i64) {
    // PostgreSQL publishes a backend's statistics about once a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    (pg_transactions(url, db).await, row_changes(url).await.1)
}

/// Prints the database work per message since `before`. The runner's background work (its
/// lease renewals, about one a second here) is included.
async fn db_per_message(
    what: &str,
    n: usize,
    span: Duration,
    before: (i64, i64),
    db: &wa_pairing_e2e::PgDb,
    calls: (&Counting<Arc<dyn AuthStateStore>>, &CallCounts),
) {
    let after = db_work(&db.url, db.name()).await;
    // The two statistics reads are transactions of their own.
    let transactions = (after.0 - before.0 - 2) as f64;
    let rows = (after.1 - before.1) as f64;
    println!(
        "  {what}: {:.2} database transactions and {:.2} auth-state rows written per message \
         ({transactions:.0} transactions, {rows:.0} rows for {n} messages in {:.2} s, background included)",
        transactions / n as f64,
        rows / n as f64,
        span.as_secs_f64()
    );
    // Which of the client's storage calls they come from: reads and writes per message by
    // key family, where at least one in ten messages made one.
    let (counting, before) = calls;
    let mut parts = Vec::new();
    for (family, (reads, writes)) in counting.by_family() {
        let (r0, w0) = before.get(&family).copied().unwrap_or_default();
        let (r, w) = (
            (reads - r0) as f64 / n as f64,
            (writes - w0) as f64 / n as f64,
        );
        let name = if family.is_empty() {
            "(device)"
        } else {
            &family
        };
        if r >= 0.1 {
            parts.push(format!("{name} {r:.2} reads"));
        }
        if w >= 0.1 {
            parts.push(format!("{name} {w:.2} writes"));
        }
    }
    println!("    store calls per message: {}", parts.join(", "));
}

/// Reads and writes by key family (`Counting::by_family`).
type CallCounts = std::collections::BTreeMap<String, (u64, u64)>;

async fn idle_tps(url: &str, db: &str) -> f64 {
    // Let the statistics catch up, then count over three heartbeats.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let a = pg_transactions(url, db).await;
    let window = Duration::from_secs(30);
    tokio::time::sleep(window).await;
    let b = pg_transactions(url, db).await;
    // Each sample is a transaction of its own.
    (b - a - 1) as f64 / window.as_secs_f64()
}

/// This process's CPU time (user and system), to measure its use over a window.
struct CpuClock {
    ticks: u64,
    at: Instant,
}

impl CpuClock {
    fn ticks() -> u64 {
        // /proc/self/stat: the 14th and 15th fields, after the command in parentheses.
        let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let field = |i: usize| {
            fields
                .get(i)
                .and_then(|f| f.parse::<u64>().ok())
                .unwrap_or(0)
        };
        // Counted from the state field (the 3rd overall): utime is the 14th, stime the 15th.
        field(11) + field(12)
    }

    fn now() -> Self {
        Self {
            ticks: Self::ticks(),
            at: Instant::now(),
        }
    }

    /// CPU used since [`now`](Self::now), in percent of one core (100 clock ticks a second).
    fn percent(&self) -> f64 {
        let used = (Self::ticks() - self.ticks) as f64 / 100.0;
        used / self.at.elapsed().as_secs_f64() * 100.0
    }
}

/// The runner's lease renewal latency over the last minute or so (p50, p99, milliseconds),
/// from the summary the Prometheus recorder keeps.
fn renew_quantiles(prom: &metrics_exporter_prometheus::PrometheusHandle) -> (f64, f64) {
    let text = prom.render();
    let q = |quantile: &str| {
        let prefix = format!(
            "{}{{quantile=\"{quantile}\"}} ",
            wa_pairing_runner::metrics::RENEW
        );
        text.lines()
            .find_map(|l| l.strip_prefix(prefix.as_str()))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map_or(f64::NAN, |s| s * 1e3)
    };
    (q("0.5"), q("0.99"))
}

async fn runner_process(store: &str) {
    let total: usize = std::env::var(SESSIONS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
        .max(BURST);
    // The auth state is counted where it reaches the store, under the encryption.
    let (stores, auth, pg) = match store {
        "memory" => {
            // One owner holds every bench device: lift the per-owner cap (20 by default).
            let m = MemoryStore::new().with_max_devices_per_user(usize::MAX);
            let auth = Arc::new(Counting::new(Arc::new(m.clone()) as Arc<dyn AuthStateStore>));
            let stores = Stores::builder(m.clone(), auth.clone())
                .code_cache(m.clone())
                .budget(m)
                .encrypt(Keyring::generate(1).0)
                .build();
            (stores, auth, None)
        }
        "postgres" => match wa_pairing_e2e::postgres_store().await {
            Ok((pg, db)) => {
                uncapped_admin(&db.url).await;
                let (stores, auth) = counted_postgres(pg);
                (stores, auth, Some(db))
            }
            Err(skip) => {
                println!("postgres: skipped ({})", skip.0);
                return;
            }
        },
        other => panic!("unknown store {other:?}: memory or postgres"),
    };
    let prom = metrics_exporter_prometheus::PrometheusBuilder::new()
        .install_recorder()
        .expect("the bench's metrics recorder");
    let (phones, url) = Phones::start().await;
    let connector = WhatsAppConfig::new()
        .server_url(url)
        .push_name("wa-pairing bench")
        .build()
        .expect("connector");
    let config = RunnerConfig::default()
        .instance_id("bench")
        .claim_interval(Duration::from_millis(500))
        .max_sessions(total + SEQUENTIAL + 10);
    let runner = Runner::new(stores.clone(), Arc::new(connector), config).expect("runner");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(runner.run(async {
        let _ = stopped.await;
    }));
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss0 = rss_mib();

    let mut bench = Bench {
        devices: Arc::clone(stores.devices()),
        user: UserId::random(),
        phones,
        next: 0,
        linked: Vec::new(),
    };
    println!("\n== {store}: runner process, simulator in its own process");
    let wall = bench.burst(BURST).await;
    println!(
        "{BURST} devices pairing at once: all connected in {:.2} s ({:.1} pairings/s)",
        wall.as_secs_f64(),
        BURST as f64 / wall.as_secs_f64()
    );

    let mut checkpoints: Vec<usize> = CHECKPOINTS.into_iter().filter(|c| *c < total).collect();
    checkpoints.push(total);
    let mut held = BURST;
    for &at in &checkpoints {
        let grown = Instant::now();
        while held < at {
            let n = (at - held).min(BURST);
            bench.burst(n).await;
            held += n;
        }
        if at > BURST {
            println!(
                "  grew to {at} sessions in {:.0} s",
                grown.elapsed().as_secs_f64()
            );
        }
        // Let the new sessions finish their start-up work (pre-key uploads run after
        // `Connected`) before measuring anything.
        tokio::time::sleep(Duration::from_secs(15)).await;
        let rss = rss_mib();
        println!(
            "{at} connected sessions: RSS {rss:.1} MiB ({rss0:.1} MiB with none), {:.3} MiB per session",
            (rss - rss0) / at as f64
        );
        if let Some(db) = &pg {
            // Two windows one after the other: start-up work still running shows as a first
            // window busier than the second. At the full count, a third after six minutes
            // more: every client's first retention sweep (one scan per swept family, about
            // five minutes after it connects) is behind it then, so it shows the steady state.
            let windows: &[&str] = if at == total {
                &["first", "second", "steady"]
            } else {
                &["first", "second"]
            };
            for window in windows {
                if *window == "steady" {
                    tokio::time::sleep(Duration::from_secs(360)).await;
                }
                bench.phones.print_counters().await;
                let cpu = CpuClock::now();
                let (r0, w0) = auth.counts();
                let families0 = auth.by_family();
                let rows0 = row_changes(&db.url).await;
                let tps = idle_tps(&db.url, db.name()).await;
                let (r1, w1) = auth.counts();
                let busy: Vec<(String, u64, u64)> = auth
                    .by_family()
                    .into_iter()
                    .filter_map(|(family, (r, w))| {
                        let (r_before, w_before) =
                            families0.get(&family).copied().unwrap_or_default();
                        (r > r_before || w > w_before).then(|| (family, r - r_before, w - w_before))
                    })
                    .collect();
                let rows1 = row_changes(&db.url).await;
                bench.phones.print_counters().await;
                println!(
                    "  idle with {at} sessions ({window} 30 s): {tps:.2} database transactions/s, runner CPU {:.1} % of one core",
                    cpu.percent()
                );
                println!(
                    "    {} auth-state reads, {} writes; rows changed: {} in devices, {} in device_auth_state",
                    r1 - r0,
                    w1 - w0,
                    rows1.0 - rows0.0,
                    rows1.1 - rows0.1
                );
                if !busy.is_empty() {
                    println!("    auth-state calls by key family (reads, writes): {busy:?}");
                }
            }
            let (p50, p99) = renew_quantiles(&prom);
            println!(
                "  lease renewal ({at} leases in one call, the last minute): p50 {p50:.1} ms, p99 {p99:.1} ms"
            );
        }
    }

    bench.phones.phone_side.lock().await.clear();
    let (r0, w0) = auth.counts();
    let mut to_code = Vec::new();
    let mut to_link = Vec::new();
    for _ in 0..SEQUENTIAL {
        let (c, l) = bench.one().await;
        to_code.push(c);
        to_link.push(l);
    }
    let (r1, w1) = auth.counts();
    println!("{SEQUENTIAL} devices one at a time, {held} sessions held:");
    println!(
        "  connecting -> code in the store: p50 {:.1} ms, p99 {:.1} ms",
        pct(&to_code, 0.5),
        pct(&to_code, 0.99)
    );
    println!(
        "  code typed -> connected:         p50 {:.1} ms, p99 {:.1} ms",
        pct(&to_link, 0.5),
        pct(&to_link, 0.99)
    );
    let phone_side = bench.phones.phone_side.lock().await.clone();
    println!(
        "  the simulated phone's side of it: p50 {:.1} ms",
        pct(&phone_side, 0.5)
    );
    println!(
        "  auth-state operations per pairing: {:.1} reads, {:.1} writes",
        (r1 - r0) as f64 / SEQUENTIAL as f64,
        (w1 - w0) as f64 / SEQUENTIAL as f64
    );

    let _ = stop.send(());
    let _ = task.await;
    if let Some(db) = pg {
        db.drop().await;
    }
}

/// The instance that dies: a runner over the measuring process's database and simulator,
/// holding every session it links until it is killed.
async fn dying_process() {
    let db = std::env::var(DB_ENV).expect("the database URL");
    let sim = std::env::var(SIM_ENV).expect("the simulator URL");
    let total: usize = std::env::var(SESSIONS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .expect("the number of sessions");
    let pg = wa_pairing_postgres::PostgresStore::new(
        &wa_pairing_postgres::PostgresConfig::new(&db).pool_size(8),
    )
    .expect("pool");
    let stores = pg.stores().encrypt(wa_pairing_e2e::test_keyring()).build();
    let connector = WhatsAppConfig::new()
        .server_url(sim)
        .push_name("wa-pairing bench")
        .build()
        .expect("connector");
    let config = RunnerConfig::default()
        .instance_id("dying")
        .claim_interval(Duration::from_millis(500))
        .max_sessions(total);
    let runner = Runner::new(stores, Arc::new(connector), config).expect("runner");
    // Runs until the measuring process kills it: no release, no goodbye, as in a crash.
    runner.run(std::future::pending()).await;
}

/// Resumed sessions among `ids`: connected, held by an instance left, logged in after `t`.
async fn resumed_since(
    client: &tokio_postgres::Client,
    ids: &[uuid::Uuid],
    t: chrono::DateTime<chrono::Utc>,
) -> (
    i64,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<chrono::DateTime<chrono::Utc>>,
) {
    let row = client
        .query_one(
            "select count(*), min(last_connected_at), max(last_connected_at)
               from public.devices
              where id = any($1) and status = 'connected' and lease_owner like 'left-%'
                and last_connected_at > $2",
            &[&ids, &t],
        )
        .await
        .expect("count resumed sessions");
    (row.get(0), row.get(1), row.get(2))
}

/// A dead instance's sessions taken over by the two instances left, at the default pace,
/// while new devices ask for codes.
async fn takeover_process() {
    let total: usize = std::env::var(SESSIONS_ENV)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let (pg, db) = match wa_pairing_e2e::postgres_store().await {
        Ok(x) => x,
        Err(skip) => {
            println!("takeover: skipped ({})", skip.0);
            return;
        }
    };
    let admin = uncapped_admin(&db.url).await;
    let stores = pg.stores().encrypt(wa_pairing_e2e::test_keyring()).build();
    let (phones, url) = Phones::start().await;
    let mut dying = tokio::process::Command::new(std::env::current_exe().expect("exe"))
        .env(ROLE_ENV, "dying")
        .env(DB_ENV, &db.url)
        .env(SIM_ENV, &url)
        .env(SESSIONS_ENV, total.to_string())
        .kill_on_drop(true)
        .spawn()
        .expect("the dying instance starts");
    let mut bench = Bench {
        devices: Arc::clone(stores.devices()),
        user: UserId::random(),
        phones,
        next: 0,
        linked: Vec::new(),
    };
    println!("\n== takeover: {total} sessions, PostgreSQL, default lease (30 s) and resume rate");
    let linking = Instant::now();
    while bench.linked.len() < total {
        let n = (total - bench.linked.len()).min(BURST);
        bench.burst(n).await;
    }
    println!(
        "{total} sessions linked by the instance to be killed in {:.0} s",
        linking.elapsed().as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(15)).await;

    // The two instances left, with the defaults a deployment has.
    let mut left = Vec::new();
    for name in ["left-1", "left-2"] {
        let connector = WhatsAppConfig::new()
            .server_url(url.clone())
            .push_name("wa-pairing bench")
            .build()
            .expect("connector");
        let config = RunnerConfig::default()
            .instance_id(name)
            .max_sessions(total + 100);
        let runner = Runner::new(stores.clone(), Arc::new(connector), config).expect("runner");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(runner.run(async {
            let _ = stopped.await;
        }));
        left.push((stop, task));
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    let ids: Vec<uuid::Uuid> = bench.linked.iter().map(|d| d.0).collect();
    let killed = Instant::now();
    let killed_at = chrono::Utc::now();
    dying.kill().await.expect("kill the instance");
    let mut to_code = Vec::new();
    let (first, last) = loop {
        let (n, f, l) = resumed_since(&admin, &ids, killed_at).await;
        if usize::try_from(n).unwrap_or(0) >= total {
            break (f, l);
        }
        assert!(
            killed.elapsed() < Duration::from_secs(1800),
            "only {n} of {total} sessions resumed within 30 minutes"
        );
        // A person asks for a code while the takeover runs.
        let (code, _) = bench.one().await;
        to_code.push(code);
        tokio::time::sleep(Duration::from_secs(1)).await;
    };
    let all_back = killed.elapsed();
    let secs = |t: Option<chrono::DateTime<chrono::Utc>>| {
        t.map_or(f64::NAN, |t| (t - killed_at).as_seconds_f64())
    };
    let (first, last) = (secs(first), secs(last));
    println!(
        "all {total} sessions back {:.1} s after the kill: the first {first:.1} s after it (its lease lapsing), the last {last:.1} s, {:.1} resumes/s in between",
        all_back.as_secs_f64(),
        total as f64 / (last - first)
    );
    let shares = admin
        .query(
            "select lease_owner, count(*) from public.devices where id = any($1) group by 1 order by 1",
            &[&ids],
        )
        .await
        .expect("shares");
    for row in shares {
        let (owner, n): (Option<String>, i64) = (row.get(0), row.get(1));
        println!("  {}: {n} sessions", owner.unwrap_or_default());
    }
    println!(
        "{} new devices during the takeover, connecting -> code in the store: p50 {:.1} ms, p99 {:.1} ms",
        to_code.len(),
        pct(&to_code, 0.5),
        pct(&to_code, 0.99)
    );
    for (stop, task) in left {
        let _ = stop.send(());
        let _ = task.await;
    }
    db.drop().await;
}

async fn messages_process() {
    let n: usize = std::env::var("WA_PAIRING_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(1_000);
    let (pg, db) = match wa_pairing_e2e::postgres_store().await {
        Ok(x) => x,
        Err(skip) => panic!("the messages benchmark needs PostgreSQL: {}", skip.0),
    };
    let (stores, auth) = counted_postgres(pg);
    let stack = wa_pairing_e2e::Stack::start(stores).await;
    let person = stack.person();
    let (owner, friend_number) = ("6281234599990", "6281234599991");
    let d = stack.device(owner).await;
    let runner = stack.runner(wa_pairing_e2e::Stack::config("bench-messages"));
    stack.connected(d.id).await;
    let friend = stack.sim.phone(friend_number);
    let live = runner.live_session(d.id).await;
    let wa = wa_pairing_whatsapp::WhatsAppSession::of(&live).expect("WhatsApp");
    let mut events = wa.events();
    let to = wa_pairing_phone::parse(&format!("+{friend_number}")).expect("a number");

    // Warm up: the first message opens the session and the friend's reply settles it, so
    // every measured copy is a plain Signal message.
    let first = wa.send_text(&to, "hello").await.expect("sent");
    friend
        .wait_for_message(Duration::from_secs(60), |m| m.id == first.id)
        .await
        .expect("decrypted");
    friend.send_text(owner, "hi").await.expect("the reply");
    wa_pairing_e2e::server_acks(&mut events, &mut HashSet::from([first.id])).await;

    let db_before = db_work(&db.url, db.name()).await;
    let calls_before = auth.by_family();
    let mut latency = Vec::with_capacity(n);
    for i in 0..n {
        let started = Instant::now();
        let sent = wa
            .send_text(&to, &format!("one at a time #{i}"))
            .await
            .expect("sent");
        wa_pairing_e2e::server_acks(&mut events, &mut HashSet::from([sent.id])).await;
        latency.push(started.elapsed());
    }
    latency.sort();
    println!(
        "messages: one session over PostgreSQL, {n} texts one at a time, send_text -> server ack:"
    );
    println!(
        "  p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms",
        ms(latency[(n - 1) / 2]),
        ms(latency[(n - 1) * 99 / 100]),
        ms(latency[n - 1])
    );
    let one_at_a_time = latency.iter().sum::<Duration>();
    db_per_message(
        "one at a time",
        n,
        one_at_a_time,
        db_before,
        &db,
        (&auth, &calls_before),
    )
    .await;

    // A reader keeps up with the acks while the sends go out (the session's event buffer
    // holds 256).
    let (ack_tx, mut ack_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut reader = wa.events();
    let reading = tokio::spawn(async move {
        loop {
            match reader.recv().await {
                Ok(event) => {
                    if let wacore::types::events::Event::ServerAck(ack) = &*event {
                        assert!(ack.error.is_none(), "the server refused a message");
                        let _ = ack_tx.send(ack.id.clone());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    panic!("the ack reader fell {n} events behind")
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return,
            }
        }
    });
    let before = friend.inbox().len();
    let db_before = db_work(&db.url, db.name()).await;
    let calls_before = auth.by_family();
    let started = Instant::now();
    let mut pending = HashSet::with_capacity(n);
    for i in 0..n {
        let sent = wa
            .send_text(&to, &format!("back to back #{i}"))
            .await
            .expect("sent");
        pending.insert(sent.id);
    }
    let written = started.elapsed();
    while !pending.is_empty() {
        let id = tokio::time::timeout(Duration::from_secs(60), ack_rx.recv())
            .await
            .expect("an ack within a minute")
            .expect("the ack reader runs");
        pending.remove(&id);
    }
    reading.abort();
    let acked = started.elapsed();
    let last = format!("back to back #{}", n - 1);
    friend
        .wait_for_message(Duration::from_secs(60), |m| {
            m.text.as_deref() == Some(&*last)
        })
        .await
        .expect("the last one decrypted");
    assert_eq!(
        friend.inbox().len() - before,
        n,
        "every text reached the friend"
    );
    println!(
        "  back to back: {n} texts written in {:.2} s, all acked in {:.2} s: {:.0} messages/s",
        written.as_secs_f64(),
        acked.as_secs_f64(),
        n as f64 / acked.as_secs_f64()
    );
    db_per_message(
        "back to back",
        n,
        acked,
        db_before,
        &db,
        (&auth, &calls_before),
    )
    .await;

    // In: the friend types, the application hears each text (the session's events).
    let mut heard = wa.events();
    let db_before = db_work(&db.url, db.name()).await;
    let calls_before = auth.by_family();
    let started = Instant::now();
    for i in 0..n {
        friend
            .send_text(owner, &format!("incoming #{i}"))
            .await
            .expect("the friend types");
    }
    let last_in = format!("incoming #{}", n - 1);
    tokio::time::timeout(Duration::from_secs(120), async {
        use wacore::proto_helpers::MessageExt as _;
        loop {
            match heard.recv().await {
                Ok(event) => {
                    if event
                        .messages()
                        .any(|m| m.message.text_content() == Some(last_in.as_str()))
                    {
                        return;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => {}
                Err(tokio::sync::broadcast::error::RecvError::Closed) => {
                    panic!("the session ended")
                }
            }
        }
    })
    .await
    .expect("the last incoming text reached the application");
    let heard_in = started.elapsed();
    println!(
        "  in: {n} texts typed on the friend's phone reached the application in {:.2} s: {:.0} messages/s",
        heard_in.as_secs_f64(),
        n as f64 / heard_in.as_secs_f64()
    );
    db_per_message("in", n, heard_in, db_before, &db, (&auth, &calls_before)).await;
    let counters = stack.sim.counters();
    assert_eq!(counters.messages_undecryptable, 0);
    println!(
        "  the phones decrypted {} copies; the process holds {:.1} MiB",
        counters.messages_decrypted,
        rss_mib()
    );
    runner.shutdown().await;
    person.abort();
    db.drop().await;
}
