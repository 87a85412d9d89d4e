//! The device page in headless Chromium, against the demo stack (the simulator, the in-memory
//! store, the runner with the real WhatsApp client, and `wa-pairing-http`): a person adds a
//! device with a name and a number, sees the code, the simulated phone types what the page
//! shows, and the page turns to "connected". A screenshot of each stage is saved under
//! `target/test-artifacts/`.
//!
//! Needs Debian's `chromium` and `chromium-driver` (`.ci/run` installs them). Without them the
//! test says why and skips, which `WA_PAIRING_TEST_STRICT=1` turns into a failure. Other
//! binaries: `WA_PAIRING_TEST_CHROMIUM` and `WA_PAIRING_TEST_CHROMEDRIVER`.
#![allow(missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;
use wa_pairing_e2e::{DEADLINE, Stack, access_token};
use wa_pairing_http::{AuthConfig, HttpConfig, router};
use wa_pairing_store::{DeviceStatus, UserId};
use wa_pairing_store_testkit::{Skip, skip};

const SECRET: &str = "browser-e2e-jwt-secret-0123456789abcdef";

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
                     "--disable-gpu", "--window-size=412,915"],
        }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(driver_url)
        .await
        .expect("a headless Chromium session")
}

fn artifacts() -> PathBuf {
    let dir = std::env::var_os("CARGO_TARGET_DIR").map_or_else(
        || Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"),
        PathBuf::from,
    );
    let dir = dir.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("the artifacts directory");
    dir
}

async fn screenshot(browser: &Client, name: &str) {
    let png = browser.screenshot().await.expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
    let path = artifacts().join(name);
    std::fs::write(&path, png).expect("the screenshot is saved");
    eprintln!("saved {}", path.display());
}

/// The text of `#id` once it is visible and satisfies `pred`.
/// Waits until the page says the device is connected, with `phone`'s number.
async fn shows_connected(browser: &Client, phone: &str) {
    let connected = until_text(browser, "connected", "\"connected\"", |t| {
        t.contains("Connected")
    })
    .await;
    assert!(connected.contains(&format!("+{phone}")), "{connected}");
}

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

fn looks_like_code(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 9
        && b[4] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || c.is_ascii_alphanumeric())
}

/// The demo stack with the device page served on loopback, open in Chromium for one owner.
struct Page {
    stack: Stack,
    runner: wa_pairing_e2e::RunningRunner,
    browser: Client,
    driver: tokio::process::Child,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    owner: UserId,
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
        let stack = Stack::start(wa_pairing_e2e::memory()).await;
        let runner = stack.runner(Stack::config("browser-e2e"));
        let app = router(
            &stack.stores,
            HttpConfig::new(AuthConfig::new(wa_pairing_e2e::ISSUER).hs256(SECRET)),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port for the page");
        let page = format!("http://{}", listener.local_addr().expect("address"));
        let server = tokio::spawn(async move { axum::serve(listener, app).await });
        let owner = UserId::random();
        let token = access_token(SECRET, owner);
        let (driver, driver_url) = start_driver(&driver).await;
        let browser = open_browser(&chromium, &driver_url).await;
        browser
            .goto(&format!("{page}/#access_token={token}"))
            .await
            .expect("the page opens");
        Some(Self {
            stack,
            runner,
            browser,
            driver,
            server,
            owner,
        })
    }

    async fn close(mut self) {
        self.browser.close().await.expect("the browser closes");
        let _ = self.driver.kill().await;
        self.server.abort();
        self.runner.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_links_a_phone_from_the_device_page_in_chromium() {
    let Some(page) = Page::open("the browser test").await else {
        return;
    };
    let (stack, browser, owner) = (&page.stack, &page.browser, page.owner);

    // The token came in the address, so no sign-in form.
    let signin = browser.find(Locator::Id("signin")).await.expect("#signin");
    assert!(!signin.is_displayed().await.expect("displayed"));
    assert!(
        !browser
            .current_url()
            .await
            .expect("url")
            .as_str()
            .contains("access_token"),
        "the token is taken out of the address bar"
    );

    // Add a device with a name and a number, as a person writes it.
    browser
        .find(Locator::Id("name"))
        .await
        .expect("#name")
        .send_keys("HP Kasir")
        .await
        .expect("typing the name");
    browser
        .find(Locator::Id("phone"))
        .await
        .expect("#phone")
        .send_keys("0812-5555-0101")
        .await
        .expect("typing the number");
    browser
        .find(Locator::Css("#add-form button[type=submit]"))
        .await
        .expect("the add button")
        .click()
        .await
        .expect("adding the device");

    // The code, large, with a countdown, exactly as the store holds it.
    let code = until_text(browser, "code", "a pairing code", looks_like_code).await;
    let countdown = until_text(browser, "countdown", "a countdown", |t| t.contains(':')).await;
    assert!(
        countdown.starts_with('2') || countdown.starts_with("3:"),
        "about three minutes left: {countdown}"
    );
    let devices = stack
        .stores
        .devices()
        .list_for_user(owner)
        .await
        .expect("list");
    assert_eq!(
        devices.len(),
        1,
        "the page created one device for its owner"
    );
    let device = &devices[0];
    assert_eq!(device.device_name, "HP Kasir");
    assert_eq!(device.status, DeviceStatus::WaitingPairing);
    assert_eq!(
        device
            .pairing_code
            .as_ref()
            .map(ToString::to_string)
            .as_deref(),
        Some(code.as_str()),
        "the page shows the code the runner stored"
    );
    screenshot(browser, "device-page-code.png").await;

    // The simulated phone types what the page shows.
    stack
        .sim
        .phone("6281255550101")
        .enter_code(&code)
        .await
        .expect("the code on the page links the phone");

    shows_connected(browser, "6281255550101").await;
    let status = until_text(browser, "status", "the status", |t| t.contains("Connected")).await;
    assert_eq!(status, "Terhubung · Connected", "the status in plain words");
    let code_box = browser
        .find(Locator::Id("code-box"))
        .await
        .expect("#code-box");
    assert!(
        !code_box.is_displayed().await.expect("displayed"),
        "the code is gone once linked"
    );
    screenshot(browser, "device-page-connected.png").await;

    // Disconnect keeps the link; reconnecting needs no new code.
    click(browser, "disconnect").await;
    until_text(browser, "status", "disconnected", |t| {
        t.contains("Disconnected")
    })
    .await;
    until_shown(browser, "resume").await;
    click(browser, "resume").await;
    until_text(browser, "connected", "connected again", |t| {
        t.contains("Connected")
    })
    .await;
    until_text(browser, "status", "connected again", |t| {
        t.contains("Connected")
    })
    .await;
    assert_eq!(
        stack.sim.counters().code_requests_for("6281255550101"),
        1,
        "reconnecting asked for no new code"
    );

    // Unlink, after the page asks to be sure: the phone no longer lists the companion.
    click(browser, "unlink").await;
    browser.accept_alert().await.expect("the confirmation");
    until_text(browser, "status", "unlinked", |t| {
        t.contains("Disconnected")
    })
    .await;
    let end = tokio::time::Instant::now() + DEADLINE;
    while stack.sim.phone("6281255550101").is_linked() {
        assert!(
            tokio::time::Instant::now() < end,
            "the companion was not removed"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    screenshot(browser, "device-page-unlinked.png").await;

    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_person_links_a_phone_by_qr_from_the_device_page_in_chromium() {
    let Some(page) = Page::open("the browser QR test").await else {
        return;
    };
    let (stack, browser, owner) = (&page.stack, &page.browser, page.owner);
    browser
        .find(Locator::Id("name"))
        .await
        .expect("#name")
        .send_keys("HP Gudang")
        .await
        .expect("typing the name");
    click(browser, "add-qr").await;

    // The QR, drawn by the server from the payload the runner stored, loads in the page.
    until_shown(browser, "qr").await;
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let loaded = browser
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
    let devices = stack
        .stores
        .devices()
        .list_for_user(owner)
        .await
        .expect("list");
    assert_eq!(devices.len(), 1, "the page created one device");
    let device = &devices[0];
    let payload = device.qr_code.clone().expect("a QR payload stored");
    assert!(device.pairing_code.is_none(), "no code for a QR pairing");
    let code_box = browser
        .find(Locator::Id("code-box"))
        .await
        .expect("#code-box");
    assert!(!code_box.is_displayed().await.expect("displayed"));
    screenshot(browser, "device-page-qr.png").await;

    // The simulated phone scans the QR; the page turns to connected with the phone's number.
    stack
        .sim
        .phone("6281255550202")
        .scan_qr(&payload)
        .await
        .expect("the QR on the page links the phone");
    shows_connected(browser, "6281255550202").await;
    assert!(
        !browser
            .find(Locator::Id("qr-box"))
            .await
            .expect("#qr-box")
            .is_displayed()
            .await
            .expect("displayed"),
        "the QR is gone once linked"
    );
    assert_eq!(
        stack.sim.counters().code_requests_for("6281255550202"),
        0,
        "no pairing code was asked for"
    );
    screenshot(browser, "device-page-qr-connected.png").await;
    page.close().await;
}

async fn click(browser: &fantoccini::Client, id: &str) {
    browser
        .find(Locator::Id(id))
        .await
        .unwrap_or_else(|e| panic!("#{id}: {e}"))
        .click()
        .await
        .unwrap_or_else(|e| panic!("clicking #{id}: {e}"));
}

/// Waits until the element `id` is displayed.
async fn until_shown(browser: &fantoccini::Client, id: &str) {
    let end = tokio::time::Instant::now() + DEADLINE;
    loop {
        let shown = browser
            .find(Locator::Id(id))
            .await
            .unwrap_or_else(|e| panic!("#{id}: {e}"))
            .is_displayed()
            .await
            .unwrap_or(false);
        if shown {
            return;
        }
        assert!(tokio::time::Instant::now() < end, "#{id} never shown");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
