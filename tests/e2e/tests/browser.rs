//! The device page in headless Chromium, against the demo stack (the simulator, the in-memory
//! store, the runner with the real WhatsApp client, and `wa-pairing-http`): an owner walks
//! every state the page has (empty, typed, invalid, connecting, code, connected, disconnected
//! and connected again, unlinked and linked again, deleted, QR, failed and refreshed, many
//! devices, an expired session), and the test asserts what the owner sees in each.
//!
//! At each state the page is looked at in a desktop window (1280x900) and a phone's
//! (390x844): a screenshot of each is saved under `browser-screenshots/` in the test's
//! output folder (`CARGO_TARGET_TMPDIR`; never committed), and axe-core checks the page
//! against the WCAG 2.1 A and AA rules, wanting zero violations.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them), and axe-core
//! from `tests/browser-assets` (`npm ci` there; `.ci/run` runs it). Without them the test
//! says why and skips (without axe-core: skips the accessibility checks), which
//! `WA_PAIRING_TEST_STRICT=1` turns into a failure. Other binaries:
//! `WA_PAIRING_TEST_CHROMIUM` and `WA_PAIRING_TEST_CHROMEDRIVER`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use wa_pairing_e2e::{DEADLINE, Stack, access_token};
use wa_pairing_http::{AuthConfig, HttpConfig, router};
use wa_pairing_sim::{Refusal, Stage};
use wa_pairing_store::retry::RetryPolicy;
use wa_pairing_store::{DeviceStatus, NewDevice, UserId};
use wa_pairing_store_testkit::{Skip, skip};

const SECRET: &str = "browser-e2e-jwt-secret-0123456789abcdef";

/// The two windows every state is looked at in: a desktop's and a cheap Android phone's.
const SIZES: [(u32, u32); 2] = [(1280, 900), (390, 844)];

/// The browser and its driver, or why they are not here.
fn browser_binaries() -> Result<(PathBuf, PathBuf), Skip> {
    let find = |env: &str, default: &str| -> Result<PathBuf, Skip> {
        let path = std::env::var_os(env).map_or_else(|| PathBuf::from(default), PathBuf::from);
        if path.is_file() {
            Ok(path)
        } else {
            Err(Skip::new(format!(
                "{} not found: install Debian's chromium and chromium-driver \
                 (`apt-get install chromium chromium-driver`) or set {env}",
                path.display()
            )))
        }
    };
    Ok((
        find("WA_PAIRING_TEST_CHROMIUM", "/usr/bin/chromium")?,
        find("WA_PAIRING_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")?,
    ))
}

/// axe-core's script, from `tests/browser-assets` (`npm ci` there), or why it is missing.
fn axe_source() -> Result<String, Skip> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../browser-assets/node_modules/axe-core/axe.min.js");
    std::fs::read_to_string(&path).map_err(|e| {
        Skip::new(format!(
            "axe-core is not installed ({e}): run `npm ci` in tests/browser-assets"
        ))
    })
}

/// A free loopback port (the driver takes a port number, not a listener).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Starts chromedriver on loopback and waits until it accepts connections.
async fn start_driver(driver: &Path) -> (tokio::process::Child, String) {
    let port = free_port();
    let child = tokio::process::Command::new(driver)
        .arg(format!("--port={port}"))
        .arg("--allowed-ips=127.0.0.1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("chromedriver starts");
    let end = tokio::time::Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            tokio::time::Instant::now() < end,
            "chromedriver did not listen on {port}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    (child, format!("http://127.0.0.1:{port}"))
}

async fn open_browser(chromium: &Path, driver_url: &str) -> Client {
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({
            "binary": chromium,
            // A phone-sized window: the page must be readable on one.
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage",
                     "--disable-gpu", "--window-size=390,844"],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a headless Chromium session")
}

/// Where the screenshots go: the test's output folder, never the repository.
fn screenshots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&dir).expect("the screenshots directory");
    dir
}

/// The text of `#id` once it is visible and satisfies `pred`.
async fn until_text(browser: &Client, id: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let end = tokio::time::Instant::now() + DEADLINE;
    let mut last = String::new();
    loop {
        if let Ok(el) = browser.find(Locator::Id(id)).await
            && el.is_displayed().await.unwrap_or(false)
        {
            last = el.text().await.unwrap_or_default();
            if pred(&last) {
                return last;
            }
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the page never showed {what}; #{id} last read {last:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until the page says the device is connected, with `phone`'s number.
async fn shows_connected(browser: &Client, phone: &str) {
    let connected = until_text(browser, "connected", "\"connected\"", |t| {
        t.contains("Connected")
    })
    .await;
    assert!(connected.contains(&format!("+{phone}")), "{connected}");
    until_text(browser, "status", "the connected status", |t| {
        t == "Terhubung · Connected"
    })
    .await;
}

fn looks_like_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 9
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_alphanumeric())
}

async fn click(browser: &Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking #{id}: {e}"));
}

async fn shown(browser: &Client, id: &str) -> bool {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .is_displayed()
        .await
        .unwrap_or(false)
}

/// Waits until the element `id` is displayed.
async fn until_shown(browser: &Client, id: &str) {
    let end = tokio::time::Instant::now() + DEADLINE;
    while !shown(browser, id).await {
        assert!(tokio::time::Instant::now() < end, "#{id} never shown");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Asserts which of the device's action buttons are offered: exactly `offered`.
async fn offers(browser: &Client, state: &str, offered: &[&str]) {
    const ALL: [&str; 8] = [
        "resume",
        "relink",
        "refresh",
        "change-number",
        "cancel",
        "disconnect",
        "unlink",
        "delete",
    ];
    let mut got = Vec::new();
    for id in ALL {
        if shown(browser, id).await {
            got.push(id);
        }
    }
    let mut want = offered.to_vec();
    want.sort_unstable();
    got.sort_unstable();
    assert_eq!(got, want, "{state}: the buttons offered");
}

async fn type_into(browser: &Client, id: &str, text: &str) {
    let el = browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"));
    el.clear().await.expect("clearing");
    el.send_keys(text).await.expect("typing");
}

/// The demo stack with the device page served on loopback, open in Chromium for one owner.
struct Page {
    stack: Stack,
    runner: wa_pairing_e2e::RunningRunner,
    browser: Client,
    driver: tokio::process::Child,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    owner: UserId,
    url: String,
    /// axe-core's script, when installed.
    axe: Option<String>,
    /// Every state looked at, and axe-core's violations in it.
    violations: Vec<String>,
    looked: usize,
}

impl Page {
    /// `None` when the browser is missing (the test then says why it skipped).
    async fn open(test: &str) -> Option<Self> {
        let (chromium, driver) = match browser_binaries() {
            Ok(found) => found,
            Err(why) => {
                skip(test, &why);
                return None;
            }
        };
        let axe = match axe_source() {
            Ok(source) => Some(source),
            Err(why) => {
                // Under WA_PAIRING_TEST_STRICT=1 this fails the test.
                skip(&format!("{test}'s accessibility checks"), &why);
                None
            }
        };
        let stack = Stack::start(wa_pairing_e2e::memory()).await;
        // One code request each: a refusal fails the pairing at once ("press refresh").
        let runner = stack.runner(
            Stack::config("browser-e2e").code_retry(RetryPolicy::default().max_attempts(1)),
        );
        let app = router(
            &stack.stores,
            HttpConfig::new(AuthConfig::new(wa_pairing_e2e::ISSUER).hs256(SECRET)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the page");
        let url = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let owner = UserId::random();
        let (driver, driver_url) = start_driver(&driver).await;
        let browser = open_browser(&chromium, &driver_url).await;
        let page = Self {
            stack,
            runner,
            browser,
            driver,
            server,
            owner,
            url,
            axe,
            violations: Vec::new(),
            looked: 0,
        };
        page.goto_with(&access_token(SECRET, owner)).await;
        Some(page)
    }

    async fn goto_with(&self, token: &str) {
        self.browser
            .goto(&format!("{}/#access_token={token}", self.url))
            .await
            .expect("the page opens");
    }

    /// Looks at the page in each window size: a screenshot, and axe-core's verdict.
    async fn look(&mut self, state: &str) {
        self.looked += 1;
        for (w, h) in SIZES {
            self.browser
                .set_window_size(w, h)
                .await
                .expect("resizing the window");
            tokio::time::sleep(Duration::from_millis(250)).await;
            let png = self.browser.screenshot().await.expect("a screenshot");
            assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
            let path = screenshots().join(format!("{:02}-{state}-{w}x{h}.png", self.looked));
            std::fs::write(&path, png).expect("the screenshot is saved");
            eprintln!("saved {}", path.display());
            if let Some(found) = self.axe(state, w, h).await {
                self.violations.extend(found);
            }
        }
        // The owner goes on on the phone.
        self.browser
            .set_window_size(SIZES[1].0, SIZES[1].1)
            .await
            .expect("resizing the window");
    }

    /// axe-core's WCAG 2.1 A and AA violations on the page as it is now, one line each.
    async fn axe(&self, state: &str, w: u32, h: u32) -> Option<Vec<String>> {
        let source = self.axe.as_ref()?;
        let loaded = self
            .browser
            .execute("return typeof window.axe === 'object';", vec![])
            .await
            .expect("looking for axe-core");
        if loaded != json!(true) {
            self.browser
                .execute(&format!("{source}\n;return true;"), vec![])
                .await
                .expect("axe-core is injected");
        }
        let result = self
            .browser
            .execute_async(
                r"const done = arguments[arguments.length - 1];
                  axe.run(document, {
                    runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'] },
                    resultTypes: ['violations'],
                  }).then(
                    (r) => done(r.passes.length === 0
                      ? ['axe-core checked nothing']
                      : r.violations.map((v) => v.id + ' (' + v.impact + '): ' + v.help + ' at '
                        + v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join(', '))),
                    (e) => done(['axe-core failed: ' + e]));",
                vec![],
            )
            .await
            .expect("axe-core runs");
        let found: Vec<String> = result
            .as_array()
            .expect("a list of violations")
            .iter()
            .map(|v| format!("{state} at {w}x{h}: {}", v.as_str().unwrap_or_default()))
            .collect();
        for v in &found {
            eprintln!("axe-core: {v}");
        }
        Some(found)
    }

    async fn close(mut self) {
        self.browser.close().await.expect("the browser closes");
        let _ = self.driver.kill().await;
        self.server.abort();
        self.runner.shutdown().await;
        assert!(
            self.violations.is_empty(),
            "axe-core found WCAG 2.1 A/AA violations:\n{}",
            self.violations.join("\n")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_owner_walks_every_state_of_the_device_page_in_chromium() {
    let Some(mut page) = Page::open("the browser test").await else {
        return;
    };
    let owner = page.owner;
    let devices = page.stack.stores.devices().clone();
    let sim = page.stack.sim.clone();

    // ---------------------------------------------------------------- empty
    // The token came in the address, so no sign-in form, and the address no longer has it.
    assert!(!shown(&page.browser, "signin").await);
    assert!(
        !page
            .browser
            .current_url()
            .await
            .expect("url")
            .as_str()
            .contains("access_token"),
        "the token is taken out of the address bar"
    );
    until_text(&page.browser, "list-empty", "the empty list", |t| {
        t.contains("No devices yet")
    })
    .await;
    page.look("empty").await;

    // ---------------------------------------------------------------- typed, invalid
    type_into(&page.browser, "name", "HP Salah").await;
    type_into(&page.browser, "phone", "12 ab").await;
    page.look("typed").await;
    click(&page.browser, "add-submit").await;
    let hint = until_text(&page.browser, "add-error", "the number hint", |t| {
        t.contains("not valid")
    })
    .await;
    assert!(hint.contains("tidak valid"), "both languages: {hint}");
    // A number the page cannot tell is wrong: the server refuses it, before creating anything.
    type_into(&page.browser, "phone", "+999 1234 5678").await;
    click(&page.browser, "add-submit").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let refused = until_text(&page.browser, "add-error", "the server's refusal", |t| {
        t.contains("The WhatsApp number is not valid")
    })
    .await;
    assert!(refused.contains("Nomor WhatsApp tidak valid"), "{refused}");
    assert!(
        devices.list_for_user(owner).await.expect("list").is_empty(),
        "a refused number leaves no device"
    );
    page.look("invalid").await;

    // ---------------------------------------------------------------- connecting, code
    let kasir = sim.phone("6281255550101");
    kasir.delay(Stage::CodeRequest, Duration::from_secs(6));
    type_into(&page.browser, "name", "HP Kasir").await;
    type_into(&page.browser, "phone", "0812-5555-0101").await;
    click(&page.browser, "add-submit").await;
    until_text(&page.browser, "status", "connecting", |t| {
        t.contains("Asking for a code")
    })
    .await;
    offers(&page.browser, "connecting", &["cancel", "delete"]).await;
    page.look("connecting").await;
    kasir.clear_faults();

    let code = until_text(&page.browser, "code", "a pairing code", looks_like_code).await;
    let countdown = until_text(&page.browser, "countdown", "a countdown", |t| {
        t.contains(':')
    })
    .await;
    assert!(
        countdown.starts_with('2') || countdown.starts_with("3:"),
        "about three minutes left: {countdown}"
    );
    let listed = devices.list_for_user(owner).await.expect("list");
    assert_eq!(listed.len(), 1, "the page created one device");
    let kasir_id = listed[0].id;
    assert_eq!(listed[0].device_name, "HP Kasir");
    assert_eq!(
        listed[0].pairing_code.as_ref().map(ToString::to_string),
        Some(code.clone()),
        "the page shows the code the runner stored"
    );
    // A screen reader reads the code as characters.
    let spelled = page
        .browser
        .execute(
            "return document.getElementById('code-spelled').textContent;",
            vec![],
        )
        .await
        .expect("the spelled code");
    let want: Vec<String> = code.replace('-', "").chars().map(String::from).collect();
    assert!(
        spelled
            .as_str()
            .unwrap_or_default()
            .ends_with(&want.join(" ")),
        "{spelled}"
    );
    until_text(&page.browser, "status", "waiting for the code", |t| {
        t.contains("Waiting for the code")
    })
    .await;
    offers(&page.browser, "code", &["refresh", "cancel", "delete"]).await;
    let live = page
        .browser
        .execute(
            "return document.getElementById('status-line').getAttribute('role');",
            vec![],
        )
        .await
        .expect("the status line");
    assert_eq!(live, json!("status"), "status changes are announced");
    page.look("code").await;

    // ---------------------------------------------------------------- connected
    kasir
        .enter_code(&code)
        .await
        .expect("the code on the page links the phone");
    shows_connected(&page.browser, "6281255550101").await;
    assert!(!shown(&page.browser, "code-box").await, "the code is gone");
    offers(
        &page.browser,
        "connected",
        &["disconnect", "unlink", "delete"],
    )
    .await;
    page.look("connected").await;

    // ---------------------------------------------------------------- disconnected → connect
    click(&page.browser, "disconnect").await;
    until_text(&page.browser, "status", "disconnected", |t| {
        t.contains("Disconnected, still linked")
    })
    .await;
    offers(
        &page.browser,
        "disconnected",
        &["resume", "unlink", "delete"],
    )
    .await;
    page.look("disconnected").await;
    click(&page.browser, "resume").await;
    shows_connected(&page.browser, "6281255550101").await;
    assert_eq!(
        sim.counters().code_requests_for("6281255550101"),
        1,
        "connecting again asked for no new code"
    );

    // ---------------------------------------------------------------- unlinked → link again
    click(&page.browser, "unlink").await;
    page.browser.accept_alert().await.expect("the confirmation");
    until_text(&page.browser, "status", "unlinked", |t| {
        t.contains("not linked")
    })
    .await;
    assert!(!kasir.is_linked(), "the companion was removed");
    offers(
        &page.browser,
        "unlinked",
        &["relink", "change-number", "delete"],
    )
    .await;
    page.look("unlinked").await;
    click(&page.browser, "relink").await;
    let again = until_text(&page.browser, "code", "a new code", |t| {
        looks_like_code(t) && t != code
    })
    .await;
    kasir
        .enter_code(&again)
        .await
        .expect("the new code links the phone again");
    shows_connected(&page.browser, "6281255550101").await;

    // ---------------------------------------------------------------- deleted (linked)
    let removals = sim.counters().device_removals;
    click(&page.browser, "delete").await;
    page.browser.accept_alert().await.expect("the confirmation");
    until_text(&page.browser, "notice", "the deletion", |t| {
        t.contains("The device was deleted")
    })
    .await;
    assert!(!shown(&page.browser, "device").await);
    assert!(devices.get(kasir_id).await.is_err(), "the row is gone");
    assert_eq!(
        sim.counters().device_removals,
        removals + 1,
        "deleting a linked device logged it out of the account first"
    );
    assert!(!kasir.is_linked(), "the phone no longer lists it");
    page.look("deleted").await;

    // ---------------------------------------------------------------- QR
    type_into(&page.browser, "name", "HP Gudang").await;
    click(&page.browser, "add-qr").await;
    until_shown(&page.browser, "qr").await;
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let loaded = page
            .browser
            .execute(
                "const i = document.getElementById('qr'); return i.complete && i.naturalWidth > 0;",
                vec![],
            )
            .await
            .expect("reading the image");
        if loaded == json!(true) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the QR image never loaded"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let status = until_text(&page.browser, "status", "the QR status", |t| {
        t.contains("Waiting for the QR scan")
    })
    .await;
    assert!(!status.contains("Waiting for the code"), "{status}");
    let steps = until_text(&page.browser, "qr-box", "the QR steps", |t| {
        t.contains("Link a device")
    })
    .await;
    assert!(steps.contains("Linked devices"), "{steps}");
    assert!(!shown(&page.browser, "code-box").await);
    page.look("qr").await;
    // The simulated phone scans it; the page turns to connected with the phone's number.
    let payload = devices
        .list_for_user(owner)
        .await
        .expect("list")
        .into_iter()
        .find(|d| d.device_name == "HP Gudang")
        .and_then(|d| d.qr_code)
        .expect("a QR payload stored");
    sim.phone("6281255550202")
        .scan_qr(&payload)
        .await
        .expect("the QR on the page links the phone");
    shows_connected(&page.browser, "6281255550202").await;
    assert!(
        !shown(&page.browser, "qr-box").await,
        "the QR is gone once linked"
    );
    assert_eq!(
        sim.counters().code_requests_for("6281255550202"),
        0,
        "no pairing code was asked for"
    );

    // ---------------------------------------------------------------- failed → refresh
    let rusak = sim.phone("6281255550303");
    rusak.refuse_code_requests(Refusal::InternalServerError, Some(1));
    type_into(&page.browser, "name", "HP Rusak").await;
    type_into(&page.browser, "phone", "0812-5555-0303").await;
    click(&page.browser, "add-submit").await;
    until_text(&page.browser, "status", "failed", |t| t.contains("Failed")).await;
    let error = until_text(&page.browser, "device-error", "the failure", |t| {
        t.contains("Linking failed")
    })
    .await;
    assert!(error.contains("Penautan gagal"), "{error}");
    let detail = until_text(&page.browser, "device-detail", "the reason", |t| {
        t.contains("refresh")
    })
    .await;
    assert!(detail.contains("Press refresh"), "{detail}");
    offers(
        &page.browser,
        "failed",
        &["refresh", "change-number", "delete"],
    )
    .await;
    let button = until_text(&page.browser, "refresh", "the refresh button", |t| {
        t.contains("Refresh")
    })
    .await;
    assert_eq!(button, "Minta kode baru · Refresh code");
    page.look("failed").await;
    click(&page.browser, "refresh").await;
    until_text(
        &page.browser,
        "code",
        "a code after refreshing",
        looks_like_code,
    )
    .await;
    until_text(&page.browser, "status", "waiting again", |t| {
        t.contains("Waiting for the code")
    })
    .await;

    // ---------------------------------------------------------------- many devices
    // Up to the cap, with names used more than once (retries): newest first, each told
    // apart, each with its status.
    for i in 0..18 {
        let name = if i % 6 == 0 {
            "HP Toko".to_owned()
        } else {
            format!("HP Cabang {i}")
        };
        devices
            .create(NewDevice::new(owner, name))
            .await
            .expect("a device");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    page.browser.refresh().await.expect("reloading the page");
    let end = tokio::time::Instant::now() + DEADLINE;
    let rows: Vec<String> = loop {
        let rows = page
            .browser
            .execute(
                "return [...document.querySelectorAll('#list .row')].map((b) => b.innerText);",
                vec![],
            )
            .await
            .expect("the list");
        let rows: Vec<String> = rows
            .as_array()
            .map(|r| {
                r.iter()
                    .map(|x| x.as_str().unwrap_or_default().to_owned())
                    .collect()
            })
            .unwrap_or_default();
        if rows.len() == 20 {
            break rows;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the list never showed 20 devices: {rows:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        rows[0].starts_with("HP Cabang 17"),
        "newest first: {rows:?}"
    );
    assert!(rows[19].starts_with("HP Gudang"), "oldest last: {rows:?}");
    for n in 1..=3 {
        assert!(
            rows.iter()
                .any(|r| r.starts_with(&format!("HP Toko ({n})"))),
            "same names told apart: {rows:?}"
        );
    }
    assert!(
        rows.iter().any(|r| r.contains("Waiting for the code")),
        "status at a glance: {rows:?}"
    );
    assert!(rows.iter().all(|r| r.contains(" · ")), "{rows:?}");
    page.look("many").await;
    // Adding a 21st is refused in both languages, and leaves nothing behind.
    type_into(&page.browser, "name", "HP Lebih").await;
    click(&page.browser, "add-qr").await;
    let limit = until_text(&page.browser, "add-error", "the device limit", |t| {
        t.contains("device limit")
    })
    .await;
    assert!(limit.contains("maksimum"), "{limit}");
    assert_eq!(devices.list_for_user(owner).await.expect("list").len(), 20);

    // ---------------------------------------------------------------- expired session
    let expired = {
        let claims = json!({
            "sub": owner.to_string(), "aud": "authenticated", "iss": wa_pairing_e2e::ISSUER,
            "exp": chrono::Utc::now().timestamp() - 3600,
        });
        jsonwebtoken::encode(
            &jsonwebtoken::Header::default(),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()),
        )
        .expect("a token")
    };
    page.goto_with(&expired).await;
    page.browser
        .refresh()
        .await
        .expect("reloading with the expired token");
    let reason = until_text(&page.browser, "signin-reason", "why to sign in", |t| {
        t.contains("session expired")
    })
    .await;
    assert!(reason.contains("Sesi Anda sudah berakhir"), "{reason}");
    assert!(shown(&page.browser, "token").await, "the sign-in form");
    assert!(
        !shown(&page.browser, "add").await,
        "nothing else until signed in"
    );
    page.look("expired-token").await;

    assert!(
        devices
            .list_for_user(owner)
            .await
            .expect("list")
            .iter()
            .all(|d| d.device_name != "HP Salah"),
        "the refused number never made a device"
    );
    assert!(
        devices
            .list_for_user(owner)
            .await
            .expect("list")
            .iter()
            .any(|d| d.status == DeviceStatus::WaitingPairing)
    );
    page.close().await;
}
