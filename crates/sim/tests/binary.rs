//! The standalone binary, driven through its line protocol as an outside test harness does:
//! two real clients pair at once, one by code and one by QR, each answered from the events
//! the binary prints.

mod common;

use std::io::{BufRead as _, Write as _};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use common::TestClient;
use tokio::sync::mpsc;
use wacore::store::InMemoryBackend;
use wacore::types::events::Event;

const BY_CODE: &str = "6281234567890";
const BY_QR: &str = "6289876543210";

/// The binary as a child process; its standard output read line by line on a thread.
struct Binary {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::UnboundedReceiver<String>,
    /// Where the binary's log (standard error) goes: a file, as under a process manager.
    log: std::path::PathBuf,
}

impl Binary {
    async fn start() -> (Self, String) {
        let log = std::env::temp_dir().join(format!(
            "wa-pairing-sim-binary-{}-{}.log",
            std::process::id(),
            uuid_like()
        ));
        let mut child = Command::new(env!("CARGO_BIN_EXE_wa-pairing-sim"))
            .env("RUST_LOG", "debug")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("the binary starts");
        let stdin = child.stdin.take().expect("stdin");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::unbounded_channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut bin = Self {
            child,
            stdin,
            lines,
            log,
        };
        let first = bin.next_line().await;
        let url = first
            .split("\"url\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("the first line carries the URL")
            .to_owned();
        (bin, url)
    }

    async fn next_line(&mut self) -> String {
        tokio::time::timeout(Duration::from_secs(60), self.lines.recv())
            .await
            .expect("the binary prints within a minute")
            .expect("the binary is still running")
    }

    /// Reads lines until one contains every one of `parts`.
    async fn wait_for(&mut self, parts: &[&str]) -> String {
        loop {
            let line = self.next_line().await;
            if parts.iter().all(|p| line.contains(p)) {
                return line;
            }
        }
    }

    fn send(&mut self, line: &str) {
        writeln!(self.stdin, "{line}").expect("stdin writable");
        self.stdin.flush().expect("flush");
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
    }
}

/// A name no other run of this test uses at the same time.
fn uuid_like() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_pairs_two_clients_at_once_by_code_and_by_qr() {
    let (mut bin, url) = Binary::start().await;
    let mut by_code = TestClient::start(&url, Arc::new(InMemoryBackend::new())).await;
    let mut by_qr = TestClient::start(&url, Arc::new(InMemoryBackend::new())).await;
    let code = by_code.request_code(BY_CODE).await.expect("a code");
    bin.wait_for(&["\"code_requested\"", BY_CODE]).await;
    let shown = by_qr
        .wait("a QR code", |e| matches!(e, Event::PairingQrCode(_)))
        .await;
    let Event::PairingQrCode(qr) = &*shown else {
        unreachable!()
    };
    // Both commands go in before either is done.
    bin.send(&format!("code {BY_CODE} {code}"));
    bin.send(&format!("qr {BY_QR} {}", qr.code));
    let mut paired = Vec::new();
    while paired.len() < 2 {
        let line = bin.wait_for(&["\"paired\""]).await;
        paired.push(line);
    }
    assert!(paired.iter().any(|l| l.contains(BY_CODE)), "{paired:?}");
    assert!(paired.iter().any(|l| l.contains(BY_QR)), "{paired:?}");
    for client in [&mut by_code, &mut by_qr] {
        client
            .wait("connected", |e| matches!(e, Event::Connected(_)))
            .await;
    }
    // A bad command is answered, not fatal.
    bin.send("refuse 6281234567890 418");
    bin.wait_for(&["\"error\"", "\"refuse\""]).await;
    // Both pairings, and both companions' logins after them, are counted.
    bin.send("counters");
    let counters = bin.wait_for(&["\"counters\""]).await;
    assert!(counters.contains("\"pairings\":2"), "{counters}");
    assert!(counters.contains("\"logins\":2"), "{counters}");
    assert!(
        counters.contains("\"max_logins_per_second\":"),
        "{counters}"
    );
    by_code.stop().await;
    by_qr.stop().await;
    // Its log, written to a file, holds lines and no terminal colour codes.
    let log = std::fs::read_to_string(&bin.log).expect("the log file");
    assert!(
        log.contains("connection"),
        "the debug log was written: {log}"
    );
    assert!(!log.contains('\u{1b}'), "no escape codes in a file: {log}");
    drop(bin);
}
