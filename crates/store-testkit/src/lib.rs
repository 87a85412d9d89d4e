#![doc = include_str!("../README.md")]
// Every function here is a test: it reports failure by panicking.
#![allow(clippy::missing_panics_doc)]

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{TimeDelta, Utc};
use futures::StreamExt as _;
use wa_pairing_code::{IssuedCode, PairingCode};
use wa_pairing_phone::PhoneNumber;

use wa_pairing_store::{
    AuthStateStore, BudgetConfig, BudgetDecision, BudgetKeyer, Change, ClaimRequest, ClaimedDevice,
    CodeCache, CompanionKey, ConnectionMethod, DEFAULT_MAX_DEVICES_PER_USER,
    DEFAULT_PAIRING_STARTS_PER_MINUTE, Device, DeviceId, DeviceStatus, DeviceStore, DeviceUpdate,
    ErrorKind, Fence, Lease, NewDevice, PairingRequest, StoreError, Stores, UserId,
};

/// The environment variable that turns skips into failures.
pub const STRICT_ENV: &str = "WA_PAIRING_TEST_STRICT";

type Cleanup = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// One isolated backend for one test: its [`Stores`] and how to clean up after.
pub struct TestBackend {
    /// The stores under test.
    pub stores: Stores,
    /// The device store under test.
    pub devices: Arc<dyn DeviceStore>,
    /// The auth-state store under test (paired with `devices` for leases and fences).
    pub auth: Arc<dyn AuthStateStore>,
    cleanup: Option<Cleanup>,
}

impl fmt::Debug for TestBackend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TestBackend")
            .field("capabilities", &self.stores.capabilities())
            .finish_non_exhaustive()
    }
}

impl TestBackend {
    /// A backend made of these stores.
    pub fn new(stores: Stores) -> Self {
        Self {
            devices: Arc::clone(stores.devices()),
            auth: Arc::clone(stores.auth_state()),
            stores,
            cleanup: None,
        }
    }

    /// Runs `cleanup` after the test (drop a database, delete keys...).
    #[must_use]
    pub fn with_cleanup<F, Fut>(mut self, cleanup: F) -> Self
    where
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.cleanup = Some(Box::new(move || Box::pin(cleanup())));
        self
    }

    #[doc(hidden)]
    pub async fn teardown(mut self) {
        if let Some(c) = self.cleanup.take() {
            c().await;
        }
    }

    fn cache(&self) -> &Arc<dyn CodeCache> {
        self.stores
            .code_cache()
            .expect("the code_cache group runs only where a code cache is configured")
    }

    fn budget(&self) -> Arc<dyn wa_pairing_store::PairingBudget> {
        self.stores
            .budget()
            .expect("the budget group runs only where a budget is configured")
    }
}

/// Fails unless the backend's capabilities are exactly those of the `groups` the test crate
/// stamped (see the crate docs); stamped as `declared_capabilities`.
#[doc(hidden)]
pub fn check_capabilities(b: &TestBackend, groups: &[&str]) {
    let caps = b.stores.capabilities();
    for (group, has) in [
        ("auth_cascade", caps.auth_cascade),
        ("code_cache", caps.code_cache),
        ("budget", caps.budget),
        ("change_feed", caps.change_feed),
    ] {
        assert_eq!(
            groups.contains(&group),
            has,
            "the backend {} the `{group}` capability but conformance_tests! {} its group",
            if has { "reports" } else { "does not report" },
            if groups.contains(&group) {
                "lists"
            } else {
                "does not list"
            },
        );
    }
}

/// Why a backend cannot be tested here (its server is not configured or not reachable).
#[derive(Debug, Clone)]
pub struct Skip(pub String);

impl Skip {
    /// A skip with a reason a person can act on ("set WA_PAIRING_TEST_REDIS_URL ...").
    pub fn new(reason: impl Into<String>) -> Self {
        Self(reason.into())
    }
}

/// Whether `WA_PAIRING_TEST_STRICT=1` is set.
pub fn strict() -> bool {
    strict_value(std::env::var(STRICT_ENV).ok().as_deref())
}

fn strict_value(v: Option<&str>) -> bool {
    v.is_some_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// Turns a factory result into a backend, or prints why the test is skipped; panics on a
/// skip under strict mode.
#[doc(hidden)]
pub fn setup(test: &str, made: Result<TestBackend, Skip>) -> Option<TestBackend> {
    setup_with(test, made, strict())
}

fn setup_with(test: &str, made: Result<TestBackend, Skip>, strict: bool) -> Option<TestBackend> {
    match made {
        Ok(b) => Some(b),
        Err(skip) => {
            skip_with(test, "the backend's server", &skip, strict);
            None
        }
    }
}

/// The one skip rule for tests that need something this machine may lack (a server, a
/// browser): prints why `test` is skipped, or panics with the reason under
/// `WA_PAIRING_TEST_STRICT=1`, where nothing may be skipped.
///
/// ```
/// use wa_pairing_store_testkit::{Skip, skip};
///
/// fn my_server() -> Result<String, Skip> {
///     std::env::var("MY_SERVER_URL").map_err(|_| Skip::new("set MY_SERVER_URL to run this test"))
/// }
///
/// # fn main() {
/// # if wa_pairing_store_testkit::strict() { return; }
/// let url = match my_server() {
///     Ok(url) => url,
///     Err(why) => return skip("my test", &why),
/// };
/// # let _ = url;
/// # }
/// ```
///
/// # Panics
/// Under `WA_PAIRING_TEST_STRICT=1`, always.
pub fn skip(test: &str, why: &Skip) {
    skip_with(test, "what it needs", why, strict());
}

fn skip_with(test: &str, needed: &str, Skip(reason): &Skip, strict: bool) {
    use std::io::Write as _;
    assert!(
        !strict,
        "{test}: {needed} is required ({STRICT_ENV}=1) but: {reason}"
    );
    // Straight to the process's standard error, which the test harness does not capture
    // (it captures `eprintln!`), so a person running the tests sees every skip and why.
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {test}: {reason} (set {STRICT_ENV}=1 to make this a failure)"
    );
}

/// Stamps one `#[test]` (on a multi-threaded Tokio runtime) per conformance behaviour of the listed groups into the
/// calling test crate, plus `declared_capabilities` (see the [crate docs](crate)).
///
/// `$factory` is an async function `() -> Result<TestBackend, Skip>` that makes a fresh,
/// isolated backend for each test; the groups follow a semicolon. A backend that needs
/// something CI cannot provide (a hosted project) adds `; ignore = "why"`: its tests are
/// then reported as ignored, and run with `cargo test -- --ignored` where it is configured.
#[macro_export]
macro_rules! conformance_tests {
    ($factory:path; $($group:ident),+ $(,)?) => {
        $crate::conformance_tests!(@stamp $factory; [$($group),+]; []);
    };
    ($factory:path; $($group:ident),+ ; ignore = $reason:literal) => {
        $crate::conformance_tests!(@stamp $factory; [$($group),+]; [#[ignore = $reason]]);
    };
    (@stamp $factory:path; [$($group:ident),+]; $attrs:tt) => {
        $( $crate::__conformance_group!($group, $factory, $attrs); )+
        $crate::__conformance_capabilities!($factory, [$(stringify!($group)),+], $attrs);
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_capabilities {
    ($factory:path, [$($group:expr),+], [$($attr:tt)*]) => {
        #[test]
        $($attr)*
        fn declared_capabilities() {
            $crate::__run(async {
                if let Some(backend) =
                    $crate::setup("declared_capabilities", $factory().await)
                {
                    $crate::check_capabilities(&backend, &[$($group),+]);
                    backend.teardown().await;
                }
            });
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_test {
    ($factory:path, $name:ident, [$($attr:tt)*]) => {
        #[test]
        $($attr)*
        fn $name() {
            $crate::__run(async {
                if let Some(backend) = $crate::setup(stringify!($name), $factory().await) {
                    $crate::$name(&backend).await;
                    backend.teardown().await;
                }
            });
        }
    };
}

/// Runs one stamped test on a fresh multi-threaded runtime (4 workers, every driver on).
///
/// The macros call this instead of stamping `#[tokio::test]`, whose `crate = "..."` path
/// would tie them to this crate's name: through a re-export (`wa_pairing::testkit`) they
/// work the same.
#[doc(hidden)]
pub fn __run<F: Future<Output = ()>>(test: F) {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a Tokio runtime for the conformance test")
        .block_on(test);
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_group {
    (devices, $f:path, $a:tt) => {
        $crate::__conformance_test!($f, create_and_get, $a);
        $crate::__conformance_test!($f, create_validates_the_name, $a);
        $crate::__conformance_test!($f, device_names_keep_their_letters, $a);
        $crate::__conformance_test!($f, pairing_starts_are_paced_per_owner, $a);
        $crate::__conformance_test!($f, claim_drops_a_code_left_by_an_earlier_lease, $a);
        $crate::__conformance_test!($f, create_refuses_past_the_device_cap, $a);
        $crate::__conformance_test!($f, unicode_device_names, $a);
        $crate::__conformance_test!($f, get_missing_is_not_found, $a);
        $crate::__conformance_test!($f, list_only_my_devices, $a);
        $crate::__conformance_test!($f, every_transition_allowed_and_refused, $a);
        $crate::__conformance_test!($f, start_pairing_sets_connecting_and_clears, $a);
        $crate::__conformance_test!($f, start_pairing_refused_when_connected, $a);
        $crate::__conformance_test!($f, start_pairing_refused_while_throttled, $a);
        $crate::__conformance_test!($f, owner_actions_revoke_the_lease, $a);
        $crate::__conformance_test!($f, refresh_restarts_pairing, $a);
        $crate::__conformance_test!($f, disconnect_from_any_status, $a);
        $crate::__conformance_test!($f, disconnect_keeps_the_link, $a);
        $crate::__conformance_test!($f, resume_needs_a_linked_device, $a);
        $crate::__conformance_test!($f, unlink_from_any_status, $a);
        $crate::__conformance_test!($f, delete_removes_the_device, $a);
        $crate::__conformance_test!($f, claim_takes_only_devices_that_need_work, $a);
        $crate::__conformance_test!($f, claim_honours_the_limit, $a);
        $crate::__conformance_test!($f, claim_skips_what_it_is_told_to, $a);
        $crate::__conformance_test!($f, claim_paces_resumes_after_pairings, $a);
        $crate::__conformance_test!($f, concurrent_claimers_never_share, $a);
        $crate::__conformance_test!($f, expired_lease_is_claimable_with_higher_fence, $a);
        $crate::__conformance_test!($f, renew_keeps_and_release_frees, $a);
        $crate::__conformance_test!($f, renew_skips_stale_leases, $a);
        $crate::__conformance_test!($f, stale_fence_is_refused_on_update, $a);
        $crate::__conformance_test!($f, update_returns_the_stored_device, $a);
    };
    (auth_state, $f:path, $a:tt) => {
        $crate::__conformance_test!($f, stale_fence_is_refused_on_auth_writes, $a);
        $crate::__conformance_test!($f, auth_state_binary_round_trip, $a);
        $crate::__conformance_test!($f, auth_state_special_keys, $a);
        $crate::__conformance_test!($f, auth_state_prefix_scan_order, $a);
        $crate::__conformance_test!($f, auth_state_delete_by_prefix, $a);
        $crate::__conformance_test!($f, auth_state_clear, $a);
        $crate::__conformance_test!($f, auth_state_large_values, $a);
        $crate::__conformance_test!($f, auth_state_devices_are_isolated, $a);
        $crate::__conformance_test!($f, auth_state_put_many_is_all_or_none, $a);
        $crate::__conformance_test!($f, auth_state_devices_are_listed_in_pages, $a);
        $crate::__conformance_test!($f, auth_state_replace_is_compare_and_swap, $a);
        $crate::__conformance_test!($f, seal_refuses_every_later_write_under_its_fence, $a);
        $crate::__conformance_test!($f, a_companion_is_stored_for_one_device_only, $a);
        $crate::__conformance_test!($f, concurrent_writes_to_different_devices, $a);
    };
    (auth_cascade, $f:path, $a:tt) => {
        $crate::__conformance_test!($f, delete_removes_the_auth_state, $a);
        $crate::__conformance_test!($f, owner_actions_fence_off_auth_writes, $a);
        $crate::__conformance_test!($f, auth_writes_after_delete_are_refused, $a);
    };
    (code_cache, $f:path, $a:tt) => {
        $crate::__conformance_test!($f, code_cache_put_get_delete, $a);
        $crate::__conformance_test!($f, code_cache_ttl_expiry, $a);
    };
    (budget, $f:path, $a:tt) => {
        $crate::__conformance_test!($f, budget_limits_each_number, $a);
    };
    (change_feed, $f:path, $a:tt) => {
        $crate::__conformance_test!($f, change_feed_announces_changes, $a);
    };
}

// ----------------------------------------------------------------------------- helpers

const LONG: Duration = Duration::from_secs(3600);

fn phone() -> PhoneNumber {
    wa_pairing_phone::parse("+6281234567890").expect("valid test number")
}

fn kind<T: fmt::Debug>(r: Result<T, StoreError>) -> ErrorKind {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(e) => e.kind(),
    }
}

async fn new_device(b: &TestBackend, user: UserId, name: &str) -> Device {
    b.devices
        .create(NewDevice::new(user, name))
        .await
        .expect("create")
}

/// Creates a device, starts pairing and claims it (for one hour) as `owner`.
async fn leased(b: &TestBackend, owner: &str) -> ClaimedDevice {
    let d = new_device(b, UserId::random(), "leased").await;
    b.devices
        .start_pairing(d.id, PairingRequest::Code { phone: phone() })
        .await
        .expect("start_pairing");
    claim_one(b, owner, d.id).await
}

/// Polls `check` every 20 ms until it returns `Some` or `within` passes.
async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Brings a freshly leased `connecting` device to `status` with runner writes.
async fn drive_to(b: &TestBackend, c: &ClaimedDevice, status: DeviceStatus) {
    assert_ne!(
        status,
        DeviceStatus::Unlinking,
        "only the owner unlinks: use leased_in"
    );
    if status != DeviceStatus::Connecting {
        b.devices
            .update(&c.lease, DeviceUpdate::status(status))
            .await
            .unwrap_or_else(|e| panic!("connecting -> {status}: {e}"));
    }
}

/// A device leased by `owner` in `status` (`unlinking` by the owner's action, then claimed).
async fn leased_in(b: &TestBackend, owner: &str, status: DeviceStatus) -> ClaimedDevice {
    let c = leased(b, owner).await;
    if status != DeviceStatus::Unlinking {
        drive_to(b, &c, status).await;
        return c;
    }
    b.devices.unlink(c.device.id).await.expect("unlink");
    claim_one(b, owner, c.device.id).await
}

/// Claims `id` as `owner`, which must be claimable now.
async fn claim_one(b: &TestBackend, owner: &str, id: DeviceId) -> ClaimedDevice {
    let claimed = b
        .devices
        .claim(&ClaimRequest::new(owner, 100, LONG))
        .await
        .expect("claim");
    let mine = claimed
        .into_iter()
        .find(|c| c.device.id == id)
        .expect("the device is claimable");
    b.auth
        .adopt_fence(mine.device.id, mine.lease.fence)
        .await
        .expect("adopt_fence");
    mine
}

/// A device linked to `6281234567890` (connected, with the number stored), then
/// disconnected by its owner, with one auth-state value.
async fn linked_then_disconnected(b: &TestBackend) -> Device {
    let c = leased(b, "r").await;
    b.devices
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Connected).phone_number(phone()),
        )
        .await
        .unwrap();
    b.auth
        .put(c.device.id, c.lease.fence, "identity", b"keys")
        .await
        .unwrap();
    b.devices.disconnect(c.device.id).await.unwrap()
}

// ----------------------------------------------------------------------------- devices

/// `create` returns the stored device; `get` reads it back.
pub async fn create_and_get(b: &TestBackend) {
    let user = UserId::random();
    let d = b
        .devices
        .create(NewDevice::new(user, "  Shop phone  "))
        .await
        .unwrap();
    assert_eq!(d.user_id, user);
    assert_eq!(d.device_name, "Shop phone");
    assert_eq!(d.status, DeviceStatus::Disconnected);
    assert_eq!(d.connection_method, ConnectionMethod::Pairing);
    assert_eq!(d.lease_fence, Fence(0));
    assert!(d.lease_owner.is_none() && d.pairing_code.is_none() && d.phone_for_pairing.is_none());
    let got = b.devices.get(d.id).await.unwrap();
    assert_eq!(got, d);
    let qr = b
        .devices
        .create(NewDevice::new(user, "Till").method(ConnectionMethod::Qr))
        .await
        .unwrap();
    assert_ne!(qr.id, d.id);
    assert_eq!(qr.connection_method, ConnectionMethod::Qr);
}

/// Names are trimmed, 1 to 100 characters.
pub async fn create_validates_the_name(b: &TestBackend) {
    let user = UserId::random();
    for bad in [
        String::new(),
        "   ".to_owned(),
        "x".repeat(101),
        // Only invisible characters: empty once trimmed.
        "\u{200B}\u{200C}\u{200D}\u{2060}\u{FEFF}".to_owned(),
        " \u{200B} \u{00AD} ".to_owned(),
        // Direction overrides and isolates, which make a name read otherwise.
        "Toko \u{202E}enohp".to_owned(),
        "a\u{2066}b\u{2069}".to_owned(),
        "line\nbreak".to_owned(),
    ] {
        let r = b.devices.create(NewDevice::new(user, bad.clone())).await;
        assert_eq!(kind(r), ErrorKind::InvalidInput, "{bad:?}");
    }
    // Invisible characters go at the ends and stay inside (an emoji needs its joiners).
    for (typed, stored) in [
        (" \u{200B}Toko\u{FEFF}\t", "Toko"),
        ("\u{200D}👩\u{200D}💻 desk\u{200C}", "👩\u{200D}💻 desk"),
    ] {
        let d = new_device(b, user, typed).await;
        assert_eq!(d.device_name, stored, "{typed:?}");
        b.devices.delete(d.id).await.unwrap();
    }
    let ok = b
        .devices
        .create(NewDevice::new(user, "y".repeat(100)))
        .await
        .unwrap();
    assert_eq!(ok.device_name.chars().count(), 100);
    assert!(b.devices.list_for_user(user).await.unwrap().len() == 1);
}

/// Names keep every letter they start and end with (an earlier rule trimmed the letter
/// "v"), in every script.
pub async fn device_names_keep_their_letters(b: &TestBackend) {
    let letters = ('a'..='z')
        .chain('A'..='Z')
        .chain(['é', 'ß', 'Ж', 'ب', '中', 'ก', '9']);
    let mut user = UserId::random();
    for (i, c) in letters.enumerate() {
        // Under the device cap, one user per batch.
        if i % DEFAULT_MAX_DEVICES_PER_USER == 0 {
            user = UserId::random();
        }
        for name in [format!("{c}"), format!("{c}ictim {c}"), format!("{c}{c}")] {
            let d = new_device(b, user, &name).await;
            assert_eq!(d.device_name, name, "stored as typed");
            assert_eq!(b.devices.get(d.id).await.unwrap().device_name, name);
            b.devices.delete(d.id).await.unwrap();
        }
    }
}

/// An owner may start (or refresh) pairing [`DEFAULT_PAIRING_STARTS_PER_MINUTE`] times in a
/// burst, across all their devices; the next start is refused with `RateLimited` and the
/// time to wait, and changes nothing. Other owners are not affected.
pub async fn pairing_starts_are_paced_per_owner(b: &TestBackend) {
    let user = UserId::random();
    let first = new_device(b, user, "first").await;
    let second = new_device(b, user, "second").await;
    for i in 0..DEFAULT_PAIRING_STARTS_PER_MINUTE {
        let id = if i % 2 == 0 { first.id } else { second.id };
        if i < 2 {
            b.devices
                .start_pairing(id, PairingRequest::Code { phone: phone() })
                .await
                .unwrap_or_else(|e| panic!("start {i}: {e}"));
        } else {
            b.devices
                .refresh(id)
                .await
                .unwrap_or_else(|e| panic!("refresh {i}: {e}"));
        }
    }
    let before = b.devices.get(first.id).await.unwrap();
    for refused in [
        b.devices.refresh(first.id).await,
        b.devices.start_pairing(second.id, PairingRequest::Qr).await,
    ] {
        let err = refused.expect_err("past the owner's pace");
        assert_eq!(err.kind(), ErrorKind::RateLimited, "{err}");
        assert!(
            err.to_string()
                .starts_with("too many pairing actions: try again in"),
            "{err}"
        );
        let wait = wa_pairing_store::retry::Classify::verdict(&err)
            .retry_after()
            .expect("the time to wait");
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(61),
            "{wait:?}"
        );
    }
    let after = b.devices.get(first.id).await.unwrap();
    assert_eq!(after.lease_fence, before.lease_fence, "nothing changed");
    assert_eq!(
        b.devices.get(second.id).await.unwrap().connection_method,
        ConnectionMethod::Pairing
    );
    // Other actions are not paced; other owners have their own pace.
    b.devices.disconnect(first.id).await.unwrap();
    let other = new_device(b, UserId::random(), "other").await;
    b.devices
        .start_pairing(other.id, PairingRequest::Qr)
        .await
        .unwrap();
}

/// A user may have at most [`DEFAULT_MAX_DEVICES_PER_USER`] devices; other users are not
/// affected, and deleting one makes room again.
pub async fn create_refuses_past_the_device_cap(b: &TestBackend) {
    let user = UserId::random();
    let mut made = Vec::new();
    for i in 0..DEFAULT_MAX_DEVICES_PER_USER {
        made.push(new_device(b, user, &format!("d{i}")).await);
    }
    let err = b
        .devices
        .create(NewDevice::new(user, "one too many"))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::QuotaExceeded, "{err}");
    assert!(
        err.to_string()
            .contains(&DEFAULT_MAX_DEVICES_PER_USER.to_string()),
        "{err}"
    );
    assert_eq!(
        b.devices.list_for_user(user).await.unwrap().len(),
        DEFAULT_MAX_DEVICES_PER_USER
    );
    new_device(b, UserId::random(), "someone else's").await;
    b.devices.delete(made[0].id).await.unwrap();
    new_device(b, user, "room again").await;
}

/// Unicode names come back exactly.
pub async fn unicode_device_names(b: &TestBackend) {
    let user = UserId::random();
    for name in [
        "Toko Ibu Sari 📱",
        "ร้านค้า",
        "Ünïcödé – “quotes” 'and' \\slashes\\",
        "日本語の名前",
    ] {
        let d = new_device(b, user, name).await;
        assert_eq!(b.devices.get(d.id).await.unwrap().device_name, name);
    }
}

/// A missing device is `NotFound` for every operation that names it.
pub async fn get_missing_is_not_found(b: &TestBackend) {
    let id = wa_pairing_store::DeviceId::random();
    assert_eq!(kind(b.devices.get(id).await), ErrorKind::NotFound);
    assert_eq!(kind(b.devices.disconnect(id).await), ErrorKind::NotFound);
    assert_eq!(kind(b.devices.resume(id).await), ErrorKind::NotFound);
    assert_eq!(kind(b.devices.unlink(id).await), ErrorKind::NotFound);
    assert_eq!(kind(b.devices.refresh(id).await), ErrorKind::NotFound);
    assert_eq!(
        kind(b.devices.start_pairing(id, PairingRequest::Qr).await),
        ErrorKind::NotFound
    );
    assert_eq!(kind(b.devices.delete(id).await), ErrorKind::NotFound);
}

/// A user's list holds their devices only, oldest first.
pub async fn list_only_my_devices(b: &TestBackend) {
    let (me, you) = (UserId::random(), UserId::random());
    let first = new_device(b, me, "first").await;
    let yours = new_device(b, you, "yours").await;
    let second = new_device(b, me, "second").await;
    let mine: Vec<_> = b
        .devices
        .list_for_user(me)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(mine, [first.id, second.id]);
    let theirs: Vec<_> = b
        .devices
        .list_for_user(you)
        .await
        .unwrap()
        .into_iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(theirs, [yours.id]);
    assert!(
        b.devices
            .list_for_user(UserId::random())
            .await
            .unwrap()
            .is_empty()
    );
}

/// The allowed status changes, written out independently of
/// [`DeviceStatus::check_transition`] so the suite checks the backend against the spec.
pub const ALLOWED_TRANSITIONS: &[(DeviceStatus, DeviceStatus)] = {
    use DeviceStatus::{Connected, Connecting, Disconnected, Failed, Unlinking, WaitingPairing};
    &[
        (Connecting, Connecting),
        (Connecting, WaitingPairing),
        (Connecting, Connected),
        (Connecting, Disconnected),
        (Connecting, Failed),
        (WaitingPairing, WaitingPairing),
        (WaitingPairing, Connecting),
        (WaitingPairing, Connected),
        (WaitingPairing, Disconnected),
        (WaitingPairing, Failed),
        (Connected, Connected),
        (Connected, Disconnected),
        (Connected, Failed),
        (Disconnected, Disconnected),
        (Disconnected, Connecting),
        (Failed, Failed),
        (Failed, Connecting),
        (Failed, Disconnected),
        (Unlinking, Unlinking),
        (Unlinking, Disconnected),
    ]
};

/// Every one of the 36 status changes a runner can ask for is allowed or refused as the spec
/// says, and a refused change leaves the device as it was.
pub async fn every_transition_allowed_and_refused(b: &TestBackend) {
    for from in DeviceStatus::ALL {
        for to in DeviceStatus::ALL {
            let c = leased_in(b, "transitions", from).await;
            let before = b.devices.get(c.device.id).await.unwrap();
            let result = b.devices.update(&c.lease, DeviceUpdate::status(to)).await;
            if ALLOWED_TRANSITIONS.contains(&(from, to)) {
                let d = result.unwrap_or_else(|e| panic!("{from} -> {to} refused: {e}"));
                assert_eq!(d.status, to);
            } else {
                let err = result.expect_err(&format!("{from} -> {to} was allowed"));
                assert_eq!(
                    err.kind(),
                    ErrorKind::InvalidTransition,
                    "{from} -> {to}: {err}"
                );
                let after = b.devices.get(c.device.id).await.unwrap();
                assert_eq!(
                    after.status, before.status,
                    "{from} -> {to} changed the device"
                );
            }
        }
    }
}

/// Starting pairing sets `connecting`, the method and number, and clears the old code,
/// QR, error and retry-after.
pub async fn start_pairing_sets_connecting_and_clears(b: &TestBackend) {
    let c = leased(b, "r").await;
    let code = IssuedCode::new(
        PairingCode::generate(),
        Utc::now(),
        Duration::from_secs(180),
    );
    b.devices
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Failed)
                .pairing_code(code)
                .qr_code("qr-payload")
                .error("pairing code expired; press refresh")
                .retry_after(Utc::now() - TimeDelta::seconds(5)),
        )
        .await
        .unwrap();
    let d = b
        .devices
        .start_pairing(c.device.id, PairingRequest::Code { phone: phone() })
        .await
        .unwrap();
    assert_eq!(d.status, DeviceStatus::Connecting);
    assert_eq!(d.connection_method, ConnectionMethod::Pairing);
    assert_eq!(
        d.phone_for_pairing.as_ref().map(PhoneNumber::digits),
        Some("6281234567890")
    );
    assert!(d.pairing_code.is_none() && d.pairing_code_expires_at.is_none());
    assert!(d.qr_code.is_none() && d.error_message.is_none() && d.retry_after.is_none());
    assert_eq!(b.devices.get(d.id).await.unwrap(), d);

    // Linking again replaces the old link: the linked number is cleared.
    let linked = linked_then_disconnected(b).await;
    let relinked = b
        .devices
        .start_pairing(linked.id, PairingRequest::Qr)
        .await
        .unwrap();
    assert_eq!(relinked.phone_number, None);

    let qr = b
        .devices
        .start_pairing(d.id, PairingRequest::Qr)
        .await
        .unwrap();
    assert_eq!(qr.connection_method, ConnectionMethod::Qr);
    assert_eq!(qr.status, DeviceStatus::Connecting);
}

/// A connected device, or one being unlinked, cannot start pairing; a refused action
/// changes nothing.
pub async fn start_pairing_refused_when_connected(b: &TestBackend) {
    for status in [DeviceStatus::Connected, DeviceStatus::Unlinking] {
        let c = leased_in(b, "r", status).await;
        let r = b
            .devices
            .start_pairing(c.device.id, PairingRequest::Code { phone: phone() })
            .await;
        assert_eq!(kind(r), ErrorKind::InvalidTransition, "{status}");
        assert_eq!(
            kind(b.devices.refresh(c.device.id).await),
            ErrorKind::InvalidTransition,
            "{status}"
        );
        let d = b.devices.get(c.device.id).await.unwrap();
        assert_eq!(d.status, status);
        assert_eq!(
            d.lease_fence, c.lease.fence,
            "a refused action must not revoke the lease"
        );
    }
}

/// While `retry_after` lies ahead, starting pairing is refused as throttled.
pub async fn start_pairing_refused_while_throttled(b: &TestBackend) {
    let c = leased(b, "r").await;
    b.devices
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Failed)
                .error("WhatsApp is limiting pairing for this number")
                .retry_after(Utc::now() + TimeDelta::hours(1)),
        )
        .await
        .unwrap();
    let err = b
        .devices
        .start_pairing(c.device.id, PairingRequest::Code { phone: phone() })
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Throttled, "{err}");
    assert!(matches!(
        wa_pairing_store::retry::Classify::verdict(&err),
        wa_pairing_store::retry::Verdict::Throttled { .. }
    ));
    assert_eq!(
        kind(b.devices.refresh(c.device.id).await),
        ErrorKind::Throttled
    );
    assert_eq!(
        b.devices.get(c.device.id).await.unwrap().status,
        DeviceStatus::Failed
    );
}

/// Owner actions revoke the current lease: the holder's writes fail with `LeaseLost` and
/// the device is claimable again (where it needs a worker) with a higher fence.
pub async fn owner_actions_revoke_the_lease(b: &TestBackend) {
    for action in ["start_pairing", "refresh", "disconnect", "resume", "unlink"] {
        let c = if action == "resume" {
            let d = linked_then_disconnected(b).await;
            claim_failed(b, d.id).await
        } else {
            leased(b, "holder").await
        };
        let id = c.device.id;
        let d = owner_act(b, action, id).await.unwrap();
        assert!(d.lease_owner.is_none(), "{action} kept the lease owner");
        assert!(
            d.lease_fence > c.lease.fence,
            "{action} did not bump the fence"
        );
        let r = b
            .devices
            .update(&c.lease, DeviceUpdate::new().error("x"))
            .await;
        assert_eq!(kind(r), ErrorKind::LeaseLost, "{action}");
        if action != "disconnect" {
            // Claimed by a claim round that follows (a runner polls every few seconds). Not
            // always the very first one through the PostgREST-compatible test server: twice
            // in the whole suite under load it answered a claim made right after the refused
            // write with nothing, while the device, read right after, was claimable (owner
            // cleared, fence bumped, `connecting`). The cause is not found yet (a refused
            // write's row lock is released at the error, tested); each empty answer is
            // printed, and a device still not claimed after 5 s fails with what was stored.
            let mut rounds = 0;
            let mine = eventually(Duration::from_secs(5), "the device claimable again", || {
                rounds += 1;
                let round = rounds;
                async move {
                    let again = b
                        .devices
                        .claim(&ClaimRequest::new("next", 100, LONG))
                        .await
                        .unwrap();
                    let found = again.into_iter().find(|x| x.device.id == id);
                    if found.is_none() {
                        let stored = b.devices.get(id).await;
                        eprintln!(
                            "claim round {round} after {action} did not take the device; \
                             as stored now: {stored:?}"
                        );
                    }
                    found
                }
            })
            .await;
            assert!(mine.lease.fence > d.lease_fence);
        }
    }
}

async fn owner_act(b: &TestBackend, action: &str, id: DeviceId) -> Result<Device, StoreError> {
    match action {
        "start_pairing" => b.devices.start_pairing(id, PairingRequest::Qr).await,
        "refresh" => b.devices.refresh(id).await,
        "disconnect" => b.devices.disconnect(id).await,
        "resume" => b.devices.resume(id).await,
        "unlink" => b.devices.unlink(id).await,
        other => unreachable!("unknown action {other}"),
    }
}

/// Resumes a linked, disconnected device, claims it and fails it: a `failed`, linked device
/// under a fresh lease (so that an owner action has a lease to revoke).
async fn claim_failed(b: &TestBackend, id: DeviceId) -> ClaimedDevice {
    b.devices.resume(id).await.unwrap();
    let c = claim_one(b, "holder", id).await;
    b.devices
        .update(&c.lease, DeviceUpdate::status(DeviceStatus::Failed))
        .await
        .unwrap();
    c
}

/// Where the auth state lives beside the devices, a write of a deleted device's holder
/// (a session still flushing) is refused and leaves nothing behind.
pub async fn auth_writes_after_delete_are_refused(b: &TestBackend) {
    let c = leased(b, "holder").await;
    let (d, f) = (c.device.id, c.lease.fence);
    b.auth.put(d, f, "device", b"identity").await.unwrap();
    b.devices.delete(d).await.unwrap();
    let r = b.auth.put(d, f, "device", b"late flush").await;
    assert!(
        matches!(kind(r), ErrorKind::NotFound | ErrorKind::LeaseLost),
        "refused"
    );
    assert!(b.auth.scan_prefix(d, "").await.unwrap().is_empty());
}

/// Where the auth state lives beside the devices, an owner action fences off the holder's
/// auth-state writes at once.
pub async fn owner_actions_fence_off_auth_writes(b: &TestBackend) {
    for action in ["start_pairing", "refresh", "disconnect", "unlink"] {
        let c = leased(b, "holder").await;
        b.auth
            .put(c.device.id, c.lease.fence, "k", b"before")
            .await
            .unwrap();
        owner_act(b, action, c.device.id).await.unwrap();
        let r = b.auth.put(c.device.id, c.lease.fence, "k", b"after").await;
        assert_eq!(kind(r), ErrorKind::LeaseLost, "{action}");
        assert_eq!(
            b.auth.get(c.device.id, "k").await.unwrap().as_deref(),
            Some(&b"before"[..]),
            "{action}"
        );
    }
}

/// `refresh` restarts pairing with what is stored; without a number it says what to do.
pub async fn refresh_restarts_pairing(b: &TestBackend) {
    let c = leased(b, "r").await;
    b.devices
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Failed).error("expired"),
        )
        .await
        .unwrap();
    let d = b.devices.refresh(c.device.id).await.unwrap();
    assert_eq!(d.status, DeviceStatus::Connecting);
    assert_eq!(
        d.phone_for_pairing.as_ref().map(PhoneNumber::digits),
        Some("6281234567890")
    );
    assert!(d.error_message.is_none());

    let fresh = new_device(b, UserId::random(), "never paired").await;
    let err = b.devices.refresh(fresh.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
}

/// `disconnect` works from every status and clears the code.
pub async fn disconnect_from_any_status(b: &TestBackend) {
    for status in DeviceStatus::ALL {
        let c = leased_in(b, "r", status).await;
        if status == DeviceStatus::WaitingPairing {
            let code = IssuedCode::new(
                PairingCode::generate(),
                Utc::now(),
                Duration::from_secs(180),
            );
            b.devices
                .update(&c.lease, DeviceUpdate::new().pairing_code(code))
                .await
                .unwrap();
        }
        let d = b.devices.disconnect(c.device.id).await.unwrap();
        assert_eq!(d.status, DeviceStatus::Disconnected, "from {status}");
        assert!(d.pairing_code.is_none() && d.pairing_code_expires_at.is_none());
        let again = b.devices.disconnect(c.device.id).await.unwrap();
        assert_eq!(again.status, DeviceStatus::Disconnected);
    }
    let never = new_device(b, UserId::random(), "n").await;
    assert_eq!(
        b.devices.disconnect(never.id).await.unwrap().status,
        DeviceStatus::Disconnected
    );
}

/// `disconnect` keeps the link: the linked number and the auth state stay, and `resume`
/// brings the device back as `connected`, claimable, without pairing.
pub async fn disconnect_keeps_the_link(b: &TestBackend) {
    let d = linked_then_disconnected(b).await;
    assert_eq!(d.status, DeviceStatus::Disconnected);
    assert_eq!(
        d.phone_number.as_ref().map(PhoneNumber::digits),
        Some("6281234567890")
    );
    assert_eq!(
        b.auth.get(d.id, "identity").await.unwrap().as_deref(),
        Some(&b"keys"[..])
    );
    let resumed = b.devices.resume(d.id).await.unwrap();
    assert_eq!(resumed.status, DeviceStatus::Connected);
    assert_eq!(
        resumed.phone_number.as_ref().map(PhoneNumber::digits),
        Some("6281234567890")
    );
    let c = claim_one(b, "r", d.id).await;
    assert_eq!(c.device.status, DeviceStatus::Connected);
}

/// `resume` needs a linked device that is not running: a device never linked, one being
/// paired, one already connected and one being unlinked are refused with words to act on,
/// and nothing changes.
pub async fn resume_needs_a_linked_device(b: &TestBackend) {
    let never = new_device(b, UserId::random(), "never linked").await;
    let err = b.devices.resume(never.id).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidTransition, "{err}");
    assert!(err.to_string().contains("start pairing"), "{err}");
    for status in [
        DeviceStatus::Connecting,
        DeviceStatus::WaitingPairing,
        DeviceStatus::Connected,
        DeviceStatus::Unlinking,
    ] {
        let c = leased_in(b, "r", status).await;
        let r = b.devices.resume(c.device.id).await;
        assert_eq!(kind(r), ErrorKind::InvalidTransition, "{status}");
        let after = b.devices.get(c.device.id).await.unwrap();
        assert_eq!(after.status, status);
        assert_eq!(after.lease_fence, c.lease.fence, "{status}");
    }
    // A failed device that was linked resumes.
    let linked = linked_then_disconnected(b).await;
    let c = claim_failed(b, linked.id).await;
    assert_eq!(
        b.devices.resume(c.device.id).await.unwrap().status,
        DeviceStatus::Connected
    );
}

/// `unlink` works from every status: the device becomes `unlinking` (claimable by a runner)
/// with the code, QR and error cleared; the runner may then only finish it (`disconnected`).
pub async fn unlink_from_any_status(b: &TestBackend) {
    for status in DeviceStatus::ALL {
        let c = leased_in(b, "r", status).await;
        b.devices
            .update(&c.lease, DeviceUpdate::new().error("old news"))
            .await
            .unwrap();
        let d = b.devices.unlink(c.device.id).await.unwrap();
        assert_eq!(d.status, DeviceStatus::Unlinking, "from {status}");
        assert!(d.error_message.is_none() && d.pairing_code.is_none() && d.qr_code.is_none());
        let worker = claim_one(b, "unlinker", d.id).await;
        for refused in [DeviceStatus::Connected, DeviceStatus::Failed] {
            let r = b
                .devices
                .update(&worker.lease, DeviceUpdate::status(refused))
                .await;
            assert_eq!(
                kind(r),
                ErrorKind::InvalidTransition,
                "unlinking -> {refused}"
            );
        }
        let done = b
            .devices
            .update(
                &worker.lease,
                DeviceUpdate::status(DeviceStatus::Disconnected),
            )
            .await
            .unwrap();
        assert_eq!(done.status, DeviceStatus::Disconnected);
    }
}

/// Deleting a device removes it; a second delete is `NotFound`.
pub async fn delete_removes_the_device(b: &TestBackend) {
    let c = leased(b, "r").await;
    let id = c.device.id;
    b.devices.delete(id).await.unwrap();
    assert_eq!(kind(b.devices.get(id).await), ErrorKind::NotFound);
    assert_eq!(kind(b.devices.delete(id).await), ErrorKind::NotFound);
    assert!(
        b.devices
            .claim(&ClaimRequest::new("r", 100, LONG))
            .await
            .unwrap()
            .iter()
            .all(|c| c.device.id != id)
    );
}

/// Where the auth state lives beside the devices, deleting a device removes its auth state.
pub async fn delete_removes_the_auth_state(b: &TestBackend) {
    let c = leased(b, "r").await;
    let other = leased(b, "r").await;
    let id = c.device.id;
    b.auth
        .put(id, c.lease.fence, "identity", b"secret")
        .await
        .unwrap();
    b.auth
        .put(other.device.id, other.lease.fence, "identity", b"kept")
        .await
        .unwrap();
    b.devices.delete(id).await.unwrap();
    assert!(b.auth.scan_prefix(id, "").await.unwrap().is_empty());
    assert_eq!(b.auth.get(id, "identity").await.unwrap(), None);
    assert_eq!(
        b.auth
            .get(other.device.id, "identity")
            .await
            .unwrap()
            .as_deref(),
        Some(&b"kept"[..])
    );
}

/// Only `connecting`, `waiting_pairing`, `connected` and `unlinking` devices are claimed.
pub async fn claim_takes_only_devices_that_need_work(b: &TestBackend) {
    let mut expected = HashSet::new();
    let mut held = Vec::new();
    for status in DeviceStatus::ALL {
        let c = leased_in(b, "setup", status).await;
        if status.needs_worker() {
            expected.insert(c.device.id);
        }
        held.push(c.lease);
    }
    for lease in &held {
        assert!(b.devices.release(lease).await.unwrap());
    }
    let _never_started = new_device(b, UserId::random(), "idle").await;
    let claimed: HashSet<_> = b
        .devices
        .claim(&ClaimRequest::new("worker", 100, LONG))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.device.id)
        .collect();
    assert_eq!(claimed, expected);
    assert_eq!(expected.len(), 4);
}

/// A claim never returns the devices it is told to skip; others still claim them.
pub async fn claim_skips_what_it_is_told_to(b: &TestBackend) {
    let user = UserId::random();
    let mut ids = Vec::new();
    for i in 0..4 {
        let d = new_device(b, user, &format!("d{i}")).await;
        b.devices
            .start_pairing(d.id, PairingRequest::Qr)
            .await
            .unwrap();
        ids.push(d.id);
    }
    let skipped = [ids[0], ids[2]];
    let got: HashSet<DeviceId> = b
        .devices
        .claim(&ClaimRequest::new("picky", 100, LONG).skip(skipped))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.device.id)
        .collect();
    assert_eq!(got, HashSet::from([ids[1], ids[3]]));
    let rest: HashSet<DeviceId> = b
        .devices
        .claim(&ClaimRequest::new("other", 100, LONG))
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.device.id)
        .collect();
    assert_eq!(rest, HashSet::from(skipped));
}

/// Pairings come before sessions to resume, and a claim returns no more `connected` devices
/// than its resume limit, the longest-lapsed lease first.
pub async fn claim_paces_resumes_after_pairings(b: &TestBackend) {
    let mut sessions = Vec::new();
    for _ in 0..4 {
        sessions.push(leased_in(b, "dead", DeviceStatus::Connected).await);
    }
    // The dead instance's leases lapse in this order: 3, 1, 0, 2.
    for i in [3, 1, 0, 2] {
        let kept = b
            .devices
            .renew(
                "dead",
                std::slice::from_ref(&sessions[i].lease),
                Duration::ZERO,
            )
            .await
            .unwrap();
        assert_eq!(kept.len(), 1, "the dead instance still held session {i}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut pairings = HashSet::new();
    for i in 0..2 {
        let d = new_device(b, UserId::random(), &format!("new{i}")).await;
        b.devices
            .start_pairing(d.id, PairingRequest::Qr)
            .await
            .unwrap();
        pairings.insert(d.id);
    }
    let id = |i: usize| sessions[i].device.id;
    let claim = |limit: usize, resumes: Option<usize>| async move {
        let mut request = ClaimRequest::new("alive", limit, LONG);
        if let Some(n) = resumes {
            request = request.resume_limit(n);
        }
        b.devices
            .claim(&request)
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.device.id)
            .collect::<HashSet<_>>()
    };

    // Both pairings, and of the sessions only the one that lapsed first.
    let mut expected = pairings.clone();
    expected.insert(id(3));
    assert_eq!(claim(3, Some(1)).await, expected);
    // No room for resumes: nothing, although two sessions are claimable.
    assert!(claim(10, Some(0)).await.is_empty());
    // The next two, in the order their leases lapsed.
    assert_eq!(claim(10, Some(2)).await, HashSet::from([id(1), id(0)]));
    // Without a resume limit, `limit` bounds them.
    assert_eq!(claim(10, None).await, HashSet::from([id(2)]));

    // A new pairing is served even when the resume limit is zero.
    let d = new_device(b, UserId::random(), "late").await;
    b.devices
        .start_pairing(d.id, PairingRequest::Qr)
        .await
        .unwrap();
    assert_eq!(claim(1, Some(0)).await, HashSet::from([d.id]));
}

/// Never more than `limit` per call, and the next call takes the rest.
pub async fn claim_honours_the_limit(b: &TestBackend) {
    for i in 0..7 {
        // An owner each: one owner starts only so many pairings a minute.
        let d = new_device(b, UserId::random(), &format!("d{i}")).await;
        b.devices
            .start_pairing(d.id, PairingRequest::Qr)
            .await
            .unwrap();
    }
    let first = b
        .devices
        .claim(&ClaimRequest::new("w", 3, LONG))
        .await
        .unwrap();
    assert_eq!(first.len(), 3);
    for c in &first {
        assert_eq!(c.lease.owner, "w");
        assert_eq!(c.device.lease_owner.as_deref(), Some("w"));
        assert_eq!(c.device.lease_fence, c.lease.fence);
        assert!(c.lease.expires_at > Utc::now() + TimeDelta::minutes(30));
    }
    assert_eq!(
        b.devices
            .claim(&ClaimRequest::new("w", 3, LONG))
            .await
            .unwrap()
            .len(),
        3
    );
    assert_eq!(
        b.devices
            .claim(&ClaimRequest::new("w", 3, LONG))
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        b.devices
            .claim(&ClaimRequest::new("w", 3, LONG))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        b.devices
            .claim(&ClaimRequest::new("w", 0, LONG))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Eight claimers racing over 40 devices never receive the same device, and together take
/// them all.
pub async fn concurrent_claimers_never_share(b: &TestBackend) {
    for i in 0..40 {
        // Owners apart: one user may have only so many devices.
        let d = new_device(b, UserId::random(), &format!("d{i}")).await;
        b.devices
            .start_pairing(d.id, PairingRequest::Qr)
            .await
            .unwrap();
    }
    let mut tasks = Vec::new();
    for w in 0..8 {
        let devices = Arc::clone(&b.devices);
        tasks.push(tokio::spawn(async move {
            let mut mine = Vec::new();
            loop {
                let got = devices
                    .claim(&ClaimRequest::new(format!("w{w}"), 3, LONG))
                    .await
                    .unwrap();
                if got.is_empty() {
                    return mine;
                }
                mine.extend(got.into_iter().map(|c| c.device.id));
            }
        }));
    }
    let mut seen = HashSet::new();
    for t in tasks {
        for id in t.await.unwrap() {
            assert!(seen.insert(id), "device {id} was claimed twice");
        }
    }
    assert_eq!(seen.len(), 40);
}

/// A lapsed lease can be claimed by another runner, with a strictly higher fence; a held one
/// cannot.
pub async fn expired_lease_is_claimable_with_higher_fence(b: &TestBackend) {
    let d = new_device(b, UserId::random(), "d").await;
    b.devices
        .start_pairing(d.id, PairingRequest::Qr)
        .await
        .unwrap();
    let held = b
        .devices
        .claim(&ClaimRequest::new("a", 10, LONG))
        .await
        .unwrap();
    assert_eq!(held.len(), 1);
    assert!(
        b.devices
            .claim(&ClaimRequest::new("b", 10, LONG))
            .await
            .unwrap()
            .is_empty(),
        "a held lease was taken"
    );

    let short = new_device(b, UserId::random(), "short").await;
    b.devices
        .start_pairing(short.id, PairingRequest::Qr)
        .await
        .unwrap();
    let first = b
        .devices
        .claim(&ClaimRequest::new("a", 10, Duration::ZERO))
        .await
        .unwrap();
    assert_eq!(first.len(), 1);
    let second = eventually(Duration::from_secs(10), "the lapsed lease", || async {
        let got = b
            .devices
            .claim(&ClaimRequest::new("b", 10, LONG))
            .await
            .unwrap();
        (!got.is_empty()).then_some(got)
    })
    .await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].device.id, short.id);
    assert_eq!(second[0].lease.owner, "b");
    assert!(second[0].lease.fence > first[0].lease.fence);
    let r = b
        .devices
        .update(&first[0].lease, DeviceUpdate::new().error("late"))
        .await;
    assert_eq!(kind(r), ErrorKind::LeaseLost);
}

/// A code or QR shown under one lease is dropped when another lease claims the device: it
/// belonged to the earlier holder's WhatsApp connection, which is gone.
pub async fn claim_drops_a_code_left_by_an_earlier_lease(b: &TestBackend) {
    for method in [ConnectionMethod::Pairing, ConnectionMethod::Qr] {
        let d = new_device(b, UserId::random(), "d").await;
        let request = match method {
            ConnectionMethod::Pairing => PairingRequest::Code { phone: phone() },
            ConnectionMethod::Qr => PairingRequest::Qr,
        };
        b.devices.start_pairing(d.id, request).await.unwrap();
        let first = b
            .devices
            .claim(&ClaimRequest::new("a", 10, Duration::ZERO))
            .await
            .unwrap()
            .remove(0);
        let code = IssuedCode::new(
            PairingCode::parse("ABCD-EFGH").unwrap(),
            Utc::now(),
            Duration::from_secs(180),
        );
        let shown = DeviceUpdate::status(DeviceStatus::WaitingPairing);
        let shown = match method {
            ConnectionMethod::Pairing => shown.pairing_code(code),
            ConnectionMethod::Qr => shown.qr_code("2@qr-payload"),
        };
        let written = b.devices.update(&first.lease, shown).await.unwrap();
        assert!(written.pairing_code.is_some() || written.qr_code.is_some());
        let second = eventually(Duration::from_secs(10), "the lapsed lease", || async {
            b.devices
                .claim(&ClaimRequest::new("b", 10, LONG))
                .await
                .unwrap()
                .pop()
        })
        .await;
        assert_eq!(second.device.id, d.id);
        for device in [second.device, b.devices.get(d.id).await.unwrap()] {
            assert_eq!(device.status, DeviceStatus::WaitingPairing, "{method:?}");
            assert_eq!(device.pairing_code, None, "{method:?}");
            assert_eq!(device.pairing_code_expires_at, None, "{method:?}");
            assert_eq!(device.qr_code, None, "{method:?}");
        }
    }
}

/// `renew` extends held leases; `release` frees a device for the next claim.
pub async fn renew_keeps_and_release_frees(b: &TestBackend) {
    let d = new_device(b, UserId::random(), "d").await;
    b.devices
        .start_pairing(d.id, PairingRequest::Qr)
        .await
        .unwrap();
    let c = b
        .devices
        .claim(&ClaimRequest::new("a", 1, Duration::from_secs(60)))
        .await
        .unwrap()
        .remove(0);
    let renewed = b
        .devices
        .renew("a", std::slice::from_ref(&c.lease), LONG)
        .await
        .unwrap();
    assert_eq!(renewed.len(), 1);
    assert_eq!(renewed[0].fence, c.lease.fence);
    assert!(renewed[0].expires_at > c.lease.expires_at);
    assert_eq!(
        b.devices.get(d.id).await.unwrap().lease_expires_at,
        Some(renewed[0].expires_at)
    );
    assert!(
        b.devices
            .claim(&ClaimRequest::new("b", 10, LONG))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(b.devices.release(&renewed[0]).await.unwrap());
    assert!(
        !b.devices.release(&renewed[0]).await.unwrap(),
        "released twice"
    );
    let again = b
        .devices
        .claim(&ClaimRequest::new("b", 10, LONG))
        .await
        .unwrap();
    assert_eq!(again.len(), 1);
    assert!(again[0].lease.fence > c.lease.fence);
    assert!(
        b.devices
            .renew("a", &[c.lease], LONG)
            .await
            .unwrap()
            .is_empty()
    );
}

/// `renew` returns only the leases still held; another owner's are not renewed.
pub async fn renew_skips_stale_leases(b: &TestBackend) {
    let kept = leased(b, "a").await;
    let lost = leased(b, "a").await;
    b.devices.disconnect(lost.device.id).await.unwrap();
    let renewed = b
        .devices
        .renew("a", &[kept.lease.clone(), lost.lease.clone()], LONG)
        .await
        .unwrap();
    assert_eq!(
        renewed.iter().map(|l| l.device_id).collect::<Vec<_>>(),
        [kept.device.id]
    );
    assert!(
        b.devices
            .renew("someone-else", std::slice::from_ref(&kept.lease), LONG)
            .await
            .unwrap()
            .is_empty()
    );
}

/// An update with a stale fence is refused, never retryable, and changes nothing.
pub async fn stale_fence_is_refused_on_update(b: &TestBackend) {
    let c = leased(b, "a").await;
    let stale = Lease {
        fence: Fence(c.lease.fence.0 - 1),
        ..c.lease.clone()
    };
    let err = b
        .devices
        .update(&stale, DeviceUpdate::status(DeviceStatus::Connected))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::LeaseLost);
    assert!(!wa_pairing_store::retry::Classify::verdict(&err).is_retryable());
    let future = Lease {
        fence: Fence(c.lease.fence.0 + 1),
        ..c.lease.clone()
    };
    assert_eq!(
        kind(b.devices.update(&future, DeviceUpdate::new()).await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        b.devices.get(c.device.id).await.unwrap().status,
        DeviceStatus::Connecting
    );
    b.devices.release(&c.lease).await.unwrap();
    let r = b
        .devices
        .update(&c.lease, DeviceUpdate::new().error("after release"))
        .await;
    assert_eq!(kind(r), ErrorKind::LeaseLost);
}

/// Auth-state writes with a stale fence are refused, whatever the operation.
pub async fn stale_fence_is_refused_on_auth_writes(b: &TestBackend) {
    let d = new_device(b, UserId::random(), "d").await;
    b.devices
        .start_pairing(d.id, PairingRequest::Qr)
        .await
        .unwrap();
    let old = b
        .devices
        .claim(&ClaimRequest::new("a", 1, Duration::ZERO))
        .await
        .unwrap()
        .remove(0);
    b.auth.adopt_fence(d.id, old.lease.fence).await.unwrap();
    b.auth
        .put(d.id, old.lease.fence, "keep", b"original")
        .await
        .unwrap();
    let new = eventually(Duration::from_secs(10), "the lapsed lease", || async {
        b.devices
            .claim(&ClaimRequest::new("b", 1, LONG))
            .await
            .unwrap()
            .pop()
    })
    .await;
    b.auth.adopt_fence(d.id, new.lease.fence).await.unwrap();
    let f = old.lease.fence;
    let entries = vec![("keep".to_owned(), b"overwritten".to_vec())];
    assert_eq!(
        kind(b.auth.put(d.id, f, "keep", b"overwritten").await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        kind(b.auth.put_many(d.id, f, &entries).await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        kind(b.auth.delete(d.id, f, "keep").await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        kind(b.auth.delete_many(d.id, f, &["keep".to_owned()]).await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        kind(b.auth.delete_prefix(d.id, f, "").await),
        ErrorKind::LeaseLost
    );
    assert_eq!(kind(b.auth.clear(d.id, f).await), ErrorKind::LeaseLost);
    assert_eq!(
        b.auth.get(d.id, "keep").await.unwrap().as_deref(),
        Some(&b"original"[..])
    );
    b.auth
        .put(d.id, new.lease.fence, "keep", b"new owner")
        .await
        .unwrap();
    assert_eq!(
        b.auth.get(d.id, "keep").await.unwrap().as_deref(),
        Some(&b"new owner"[..])
    );
}

/// `seal` wipes a device's auth state and refuses every later write under its fence (a
/// session's late flush), while a newer lease writes again.
pub async fn seal_refuses_every_later_write_under_its_fence(b: &TestBackend) {
    let c = leased(b, "holder").await;
    let (d, f) = (c.device.id, c.lease.fence);
    b.auth.put(d, f, "device", b"identity").await.unwrap();
    b.auth.put(d, f, "session/1", b"ratchet").await.unwrap();
    b.auth.seal(d, f).await.unwrap();
    assert!(b.auth.scan_prefix(d, "").await.unwrap().is_empty(), "wiped");
    let entries = vec![("device".to_owned(), b"late".to_vec())];
    assert_eq!(
        kind(b.auth.put(d, f, "device", b"late").await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        kind(b.auth.put_many(d, f, &entries).await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        kind(b.auth.delete(d, f, "device").await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        kind(b.auth.delete_many(d, f, &["device".to_owned()]).await),
        ErrorKind::LeaseLost
    );
    assert_eq!(
        kind(b.auth.delete_prefix(d, f, "").await),
        ErrorKind::LeaseLost
    );
    assert_eq!(kind(b.auth.clear(d, f).await), ErrorKind::LeaseLost);
    let companion = CompanionKey::of_noise_key(d.0.as_bytes());
    assert_eq!(
        kind(b.auth.register_companion(d, f, &companion).await),
        ErrorKind::LeaseLost
    );
    assert!(
        b.auth.scan_prefix(d, "").await.unwrap().is_empty(),
        "nothing came back"
    );
    // The device row itself is still the holder's to finish (sealing is about auth state).
    b.devices
        .update(&c.lease, DeviceUpdate::status(DeviceStatus::Failed))
        .await
        .expect("the holder finishes the device");
    // The next lease writes again.
    b.devices
        .start_pairing(d, PairingRequest::Code { phone: phone() })
        .await
        .unwrap();
    let next = claim_one(b, "next", d).await;
    assert!(next.lease.fence > f);
    b.auth
        .put(d, next.lease.fence, "device", b"new companion")
        .await
        .unwrap();
    assert_eq!(
        b.auth.get(d, "device").await.unwrap().as_deref(),
        Some(&b"new companion"[..])
    );
    // A stale fence cannot seal.
    assert_eq!(kind(b.auth.seal(d, f).await), ErrorKind::LeaseLost);
    assert!(b.auth.get(d, "device").await.unwrap().is_some());
}

/// One companion is stored for one device at most; clearing or sealing a device's state
/// frees its companion for another.
pub async fn a_companion_is_stored_for_one_device_only(b: &TestBackend) {
    let a = leased(b, "holder").await;
    let other = leased(b, "holder").await;
    let (ida, fa) = (a.device.id, a.lease.fence);
    let (idb, fb) = (other.device.id, other.lease.fence);
    let one = CompanionKey::of_noise_key(&[1; 32]);
    let two = CompanionKey::of_noise_key(&[2; 32]);
    b.auth.register_companion(ida, fa, &one).await.unwrap();
    b.auth.register_companion(ida, fa, &one).await.unwrap();
    let err = b.auth.register_companion(idb, fb, &one).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Conflict, "{err}");
    assert!(
        err.to_string().contains(&ida.to_string()),
        "names the other device: {err}"
    );
    b.auth.register_companion(idb, fb, &two).await.unwrap();
    let err = b.auth.register_companion(ida, fa, &two).await.unwrap_err();
    assert!(err.to_string().contains(&idb.to_string()), "{err}");
    // A new companion replaces a device's old one.
    let three = CompanionKey::of_noise_key(&[3; 32]);
    b.auth.register_companion(ida, fa, &three).await.unwrap();
    b.auth.register_companion(idb, fb, &one).await.unwrap();
    // Clearing frees it.
    b.auth.clear(idb, fb).await.unwrap();
    b.auth.register_companion(ida, fa, &one).await.unwrap();
    // Sealing frees it too.
    b.auth.seal(ida, fa).await.unwrap();
    b.auth.register_companion(idb, fb, &one).await.unwrap();
    // A stale fence is refused.
    b.devices
        .start_pairing(idb, PairingRequest::Qr)
        .await
        .unwrap();
    claim_one(b, "next", idb).await;
    assert_eq!(
        kind(b.auth.register_companion(idb, fb, &two).await),
        ErrorKind::LeaseLost
    );
}

/// `update` changes exactly the fields it sets and returns the stored device.
pub async fn update_returns_the_stored_device(b: &TestBackend) {
    let c = leased(b, "a").await;
    let issued_at = Utc::now();
    let code = IssuedCode::new(
        PairingCode::parse("ABCD-EFGH").unwrap(),
        issued_at,
        Duration::from_secs(180),
    );
    let d = b
        .devices
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::WaitingPairing).pairing_code(code),
        )
        .await
        .unwrap();
    assert_eq!(d.pairing_code, Some(code.code));
    let exp = d.pairing_code_expires_at.unwrap();
    assert!(
        (exp - code.expires_at).num_milliseconds().abs() <= 1,
        "expiry stored as given"
    );
    assert!(d.live_pairing_code(issued_at).is_some());
    assert_eq!(b.devices.get(d.id).await.unwrap(), d);
    assert!(d.updated_at >= c.device.updated_at);

    let now = Utc::now();
    let linked = b
        .devices
        .update(
            &c.lease,
            DeviceUpdate::status(DeviceStatus::Connected)
                .phone_number(phone())
                .clear_pairing_code()
                .last_connected_at(now),
        )
        .await
        .unwrap();
    assert_eq!(linked.status, DeviceStatus::Connected);
    assert_eq!(
        linked.phone_number.as_ref().map(PhoneNumber::digits),
        Some("6281234567890")
    );
    assert!(linked.pairing_code.is_none() && linked.pairing_code_expires_at.is_none());
    assert!(
        (linked.last_connected_at.unwrap() - now)
            .num_milliseconds()
            .abs()
            <= 1
    );
    assert_eq!(
        linked.device_name, c.device.device_name,
        "untouched fields stay"
    );
    assert_eq!(
        linked.phone_for_pairing.as_ref().map(PhoneNumber::digits),
        Some("6281234567890")
    );
}

// ----------------------------------------------------------------------------- code cache

/// Put, get, replace and delete a cached code.
pub async fn code_cache_put_get_delete(b: &TestBackend) {
    let cache = b.cache();
    let id = wa_pairing_store::DeviceId::random();
    assert_eq!(cache.get(id).await.unwrap(), None);
    let first = IssuedCode::new(
        PairingCode::generate(),
        Utc::now(),
        Duration::from_secs(180),
    );
    cache.put(id, &first).await.unwrap();
    let got = cache.get(id).await.unwrap().expect("cached");
    assert_eq!(got.code, first.code);
    let second = IssuedCode::new(
        PairingCode::generate(),
        Utc::now(),
        Duration::from_secs(180),
    );
    cache.put(id, &second).await.unwrap();
    assert_eq!(
        cache.get(id).await.unwrap().map(|c| c.code),
        Some(second.code)
    );
    assert_eq!(
        cache
            .get(wa_pairing_store::DeviceId::random())
            .await
            .unwrap(),
        None
    );
    cache.delete(id).await.unwrap();
    assert_eq!(cache.get(id).await.unwrap(), None);
    cache.delete(id).await.unwrap();
}

/// A cached code lives exactly its remaining validity; an expired code is never returned.
pub async fn code_cache_ttl_expiry(b: &TestBackend) {
    let cache = b.cache();
    let id = wa_pairing_store::DeviceId::random();
    let expired = IssuedCode::new(
        PairingCode::generate(),
        Utc::now() - TimeDelta::seconds(200),
        Duration::from_secs(180),
    );
    cache.put(id, &expired).await.unwrap();
    assert_eq!(cache.get(id).await.unwrap(), None);

    // Issued 178.8 s ago: 1.2 s of validity left.
    let short = IssuedCode::new(
        PairingCode::generate(),
        Utc::now() - TimeDelta::milliseconds(178_800),
        Duration::from_secs(180),
    );
    cache.put(id, &short).await.unwrap();
    let seen = cache.get(id).await.unwrap();
    assert!(
        seen.is_some_and(|c| c.code == short.code),
        "a valid code is readable"
    );
    eventually(Duration::from_secs(10), "the code to expire", || async {
        cache.get(id).await.unwrap().is_none().then_some(())
    })
    .await;
    assert!(
        Utc::now() >= short.expires_at - TimeDelta::milliseconds(50),
        "expired early"
    );
}

// ----------------------------------------------------------------------------- auth state

/// Any bytes come back exactly; the empty value is a value.
pub async fn auth_state_binary_round_trip(b: &TestBackend) {
    let c = leased(b, "a").await;
    let (id, f) = (c.device.id, c.lease.fence);
    let all: Vec<u8> = (0..=255u8).chain((0..=255u8).rev()).collect();
    b.auth.put(id, f, "all-bytes", &all).await.unwrap();
    b.auth.put(id, f, "empty", b"").await.unwrap();
    b.auth.put(id, f, "nul", &[0, 0, 0]).await.unwrap();
    assert_eq!(
        b.auth.get(id, "all-bytes").await.unwrap(),
        Some(all.clone())
    );
    assert_eq!(b.auth.get(id, "empty").await.unwrap(), Some(Vec::new()));
    assert_eq!(b.auth.get(id, "nul").await.unwrap(), Some(vec![0, 0, 0]));
    assert_eq!(b.auth.get(id, "missing").await.unwrap(), None);
    b.auth.put(id, f, "all-bytes", b"replaced").await.unwrap();
    assert_eq!(
        b.auth.get(id, "all-bytes").await.unwrap(),
        Some(b"replaced".to_vec())
    );
    b.auth.delete(id, f, "all-bytes").await.unwrap();
    b.auth.delete(id, f, "never-there").await.unwrap();
    assert_eq!(b.auth.get(id, "all-bytes").await.unwrap(), None);
}

const SPECIAL_KEYS: &[&str] = &[
    "session/6281234567890@s.whatsapp.net:0",
    "sender-key/120363@g.us::6281234567890:12",
    "100%_done*?[x]",
    "quote'double\"back\\slash",
    "space and\ttab",
    "ünïcödé/日本/🔑",
    "a",
    "a/",
    "a/b",
    "a/b/c",
    "a0",
    "a~",
];

/// Keys with `/`, `:`, `%`, `_`, `*`, quotes, whitespace and non-ASCII work, up to 512 bytes;
/// `put_many` and `delete_many` handle them too.
pub async fn auth_state_special_keys(b: &TestBackend) {
    let c = leased(b, "a").await;
    let (id, f) = (c.device.id, c.lease.fence);
    for (i, k) in SPECIAL_KEYS.iter().enumerate() {
        b.auth
            .put(id, f, k, format!("v{i}").as_bytes())
            .await
            .unwrap();
    }
    for (i, k) in SPECIAL_KEYS.iter().enumerate() {
        assert_eq!(
            b.auth.get(id, k).await.unwrap(),
            Some(format!("v{i}").into_bytes()),
            "{k}"
        );
    }
    let long = "k".repeat(512);
    b.auth.put(id, f, &long, b"long").await.unwrap();
    assert_eq!(b.auth.get(id, &long).await.unwrap(), Some(b"long".to_vec()));
    let many: Vec<(String, Vec<u8>)> = SPECIAL_KEYS
        .iter()
        .map(|k| (format!("many/{k}"), k.as_bytes().to_vec()))
        .collect();
    b.auth.put_many(id, f, &many).await.unwrap();
    let scanned = b.auth.scan_prefix(id, "many/").await.unwrap();
    assert_eq!(scanned.len(), SPECIAL_KEYS.len());
    let doomed: Vec<String> = many.iter().map(|(k, _)| k.clone()).collect();
    b.auth.delete_many(id, f, &doomed).await.unwrap();
    assert!(b.auth.scan_prefix(id, "many/").await.unwrap().is_empty());
    b.auth.put_many(id, f, &[]).await.unwrap();
    b.auth.delete_many(id, f, &[]).await.unwrap();
}

/// A prefix scan returns exactly the keys with that prefix, in byte order; `%` and `_` are
/// literal characters, not patterns.
pub async fn auth_state_prefix_scan_order(b: &TestBackend) {
    let c = leased(b, "a").await;
    let (id, f) = (c.device.id, c.lease.fence);
    // Insert in a scrambled order.
    let mut keys: Vec<&str> = SPECIAL_KEYS.to_vec();
    keys.reverse();
    keys.swap(0, 5);
    for k in &keys {
        b.auth.put(id, f, k, k.as_bytes()).await.unwrap();
    }
    let mut sorted: Vec<&str> = SPECIAL_KEYS.to_vec();
    sorted.sort_unstable();
    let all: Vec<String> = b
        .auth
        .scan_prefix(id, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(all, sorted);
    let a: Vec<String> = b
        .auth
        .scan_prefix(id, "a/")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(a, ["a/", "a/b", "a/b/c"]);
    let pct = b.auth.scan_prefix(id, "100%_").await.unwrap();
    assert_eq!(pct.len(), 1);
    assert_eq!(pct[0].1, b"100%_done*?[x]".to_vec());
    assert!(
        b.auth.scan_prefix(id, "10_%").await.unwrap().is_empty(),
        "prefix used as a pattern"
    );
    assert!(
        b.auth.scan_prefix(id, "%").await.unwrap().is_empty(),
        "prefix used as a pattern"
    );
    assert!(b.auth.scan_prefix(id, "zzz").await.unwrap().is_empty());
    let uni = b.auth.scan_prefix(id, "ünï").await.unwrap();
    assert_eq!(uni.len(), 1);
}

/// Deleting by prefix removes exactly those keys and says how many.
pub async fn auth_state_delete_by_prefix(b: &TestBackend) {
    let c = leased(b, "a").await;
    let (id, f) = (c.device.id, c.lease.fence);
    for k in ["pre/1", "pre/2", "pre/3", "pre", "prefix", "other/1"] {
        b.auth.put(id, f, k, b"v").await.unwrap();
    }
    assert_eq!(b.auth.delete_prefix(id, f, "pre/").await.unwrap(), 3);
    let left: Vec<String> = b
        .auth
        .scan_prefix(id, "")
        .await
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert_eq!(left, ["other/1", "pre", "prefix"]);
    assert_eq!(b.auth.delete_prefix(id, f, "pre/").await.unwrap(), 0);
    assert_eq!(
        b.auth.delete_prefix(id, f, "%").await.unwrap(),
        0,
        "prefix used as a pattern"
    );
}

/// `clear` removes every key of one device and nothing of another.
pub async fn auth_state_clear(b: &TestBackend) {
    let one = leased(b, "a").await;
    let two = leased(b, "a").await;
    for k in ["x", "y/z", "w"] {
        b.auth
            .put(one.device.id, one.lease.fence, k, b"1")
            .await
            .unwrap();
        b.auth
            .put(two.device.id, two.lease.fence, k, b"2")
            .await
            .unwrap();
    }
    b.auth.clear(one.device.id, one.lease.fence).await.unwrap();
    assert!(
        b.auth
            .scan_prefix(one.device.id, "")
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(b.auth.get(one.device.id, "x").await.unwrap(), None);
    assert_eq!(
        b.auth.scan_prefix(two.device.id, "").await.unwrap().len(),
        3
    );
    b.auth.clear(one.device.id, one.lease.fence).await.unwrap();
    b.auth
        .put(one.device.id, one.lease.fence, "again", b"ok")
        .await
        .unwrap();
    assert_eq!(
        b.auth.get(one.device.id, "again").await.unwrap(),
        Some(b"ok".to_vec())
    );
}

/// Values of 1 MiB round-trip, alone and in a batch.
pub async fn auth_state_large_values(b: &TestBackend) {
    let c = leased(b, "a").await;
    let (id, f) = (c.device.id, c.lease.fence);
    let big: Vec<u8> = (0..1024 * 1024u32)
        .map(|i| i.wrapping_mul(2_654_435_761).to_be_bytes()[1])
        .collect();
    b.auth.put(id, f, "big", &big).await.unwrap();
    assert_eq!(
        b.auth.get(id, "big").await.unwrap().as_deref(),
        Some(&big[..])
    );
    let batch = vec![
        ("big/1".to_owned(), big.clone()),
        ("big/2".to_owned(), big[..1000].to_vec()),
    ];
    b.auth.put_many(id, f, &batch).await.unwrap();
    let scanned = b.auth.scan_prefix(id, "big/").await.unwrap();
    assert_eq!(scanned, batch);
}

/// Nothing of one device is visible from another, and a fence of one device does not open
/// another.
pub async fn auth_state_devices_are_isolated(b: &TestBackend) {
    let one = leased(b, "a").await;
    let mut two = leased(b, "a").await;
    // Give the second device a higher fence than the first (a released lease claimed again),
    // so that writing to it with the first's fence is a real test of isolation.
    while two.lease.fence <= one.lease.fence {
        assert!(b.devices.release(&two.lease).await.unwrap());
        two = claim_one(b, "a", two.device.id).await;
    }
    assert_ne!(one.lease.fence, two.lease.fence);
    b.auth
        .put(one.device.id, one.lease.fence, "shared-name", b"one")
        .await
        .unwrap();
    assert_eq!(
        b.auth.get(two.device.id, "shared-name").await.unwrap(),
        None
    );
    assert!(
        b.auth
            .scan_prefix(two.device.id, "")
            .await
            .unwrap()
            .is_empty()
    );
    b.auth
        .put(two.device.id, two.lease.fence, "shared-name", b"two")
        .await
        .unwrap();
    assert_eq!(
        b.auth.get(one.device.id, "shared-name").await.unwrap(),
        Some(b"one".to_vec())
    );
    // A fence of one device does not open another.
    let r = b.auth.put(two.device.id, one.lease.fence, "k", b"v").await;
    assert_eq!(kind(r), ErrorKind::LeaseLost);
    assert_eq!(b.auth.get(two.device.id, "k").await.unwrap(), None);
    assert_eq!(
        b.auth
            .delete_prefix(two.device.id, two.lease.fence, "")
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        b.auth.get(one.device.id, "shared-name").await.unwrap(),
        Some(b"one".to_vec())
    );
}

/// `put_many` writes all of a batch or none of it: a batch whose last entry is refused (a
/// key over 512 bytes) leaves every key as it was.
pub async fn auth_state_put_many_is_all_or_none(b: &TestBackend) {
    let c = leased(b, "a").await;
    let (id, f) = (c.device.id, c.lease.fence);
    b.auth.put(id, f, "batch/1", b"before").await.unwrap();
    let batch = vec![
        ("batch/1".to_owned(), b"after".to_vec()),
        ("batch/2".to_owned(), b"new".to_vec()),
        ("k".repeat(513), b"refused".to_vec()),
    ];
    let err = b.auth.put_many(id, f, &batch).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(
        b.auth.scan_prefix(id, "").await.unwrap(),
        vec![("batch/1".to_owned(), b"before".to_vec())]
    );
}

/// `devices` lists each device with auth state once, in id order, in pages.
pub async fn auth_state_devices_are_listed_in_pages(b: &TestBackend) {
    let mut with_state = Vec::new();
    for _ in 0..5 {
        let c = leased(b, "a").await;
        b.auth
            .put(c.device.id, c.lease.fence, "k1", b"v")
            .await
            .unwrap();
        b.auth
            .put(c.device.id, c.lease.fence, "k2", b"v")
            .await
            .unwrap();
        with_state.push(c.device.id);
    }
    let emptied = leased(b, "a").await;
    b.auth
        .put(emptied.device.id, emptied.lease.fence, "k", b"v")
        .await
        .unwrap();
    b.auth
        .clear(emptied.device.id, emptied.lease.fence)
        .await
        .unwrap();
    let _never_written = leased(b, "a").await;
    with_state.sort_unstable();
    let mut listed = Vec::new();
    let mut after = None;
    loop {
        let page = b.auth.devices(after, 2).await.unwrap();
        assert!(page.len() <= 2);
        let Some(last) = page.last() else { break };
        after = Some(*last);
        listed.extend(page);
    }
    assert_eq!(listed, with_state);
}

/// `replace` swaps a value only while it is still the expected one.
pub async fn auth_state_replace_is_compare_and_swap(b: &TestBackend) {
    let c = leased(b, "a").await;
    let (id, f) = (c.device.id, c.lease.fence);
    b.auth.put(id, f, "k", b"one").await.unwrap();
    assert!(b.auth.replace(id, "k", b"one", b"two").await.unwrap());
    assert_eq!(b.auth.get(id, "k").await.unwrap(), Some(b"two".to_vec()));
    assert!(!b.auth.replace(id, "k", b"one", b"three").await.unwrap());
    assert_eq!(b.auth.get(id, "k").await.unwrap(), Some(b"two".to_vec()));
    assert!(!b.auth.replace(id, "missing", b"", b"x").await.unwrap());
    assert_eq!(b.auth.get(id, "missing").await.unwrap(), None);
    // Works without a lease: after a release, the value is still replaced.
    b.devices.release(&c.lease).await.unwrap();
    assert!(b.auth.replace(id, "k", b"two", b"four").await.unwrap());
    assert_eq!(b.auth.get(id, "k").await.unwrap(), Some(b"four".to_vec()));
}

/// Writers on different devices at the same time do not disturb each other.
pub async fn concurrent_writes_to_different_devices(b: &TestBackend) {
    let mut held = Vec::new();
    for _ in 0..6 {
        held.push(leased(b, "a").await);
    }
    let mut tasks = Vec::new();
    for (n, c) in held.iter().enumerate() {
        let auth = Arc::clone(&b.auth);
        let (id, f) = (c.device.id, c.lease.fence);
        tasks.push(tokio::spawn(async move {
            for i in 0..25 {
                auth.put(id, f, &format!("k/{i:02}"), format!("{n}:{i}").as_bytes())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for (n, c) in held.iter().enumerate() {
        let entries = b.auth.scan_prefix(c.device.id, "k/").await.unwrap();
        assert_eq!(entries.len(), 25);
        for (i, (k, v)) in entries.iter().enumerate() {
            assert_eq!(k, &format!("k/{i:02}"));
            assert_eq!(v, format!("{n}:{i}").as_bytes());
        }
    }
}

// ----------------------------------------------------------------------------- change feed

async fn announced(
    feed: &mut wa_pairing_store::ChangeStream,
    id: wa_pairing_store::DeviceId,
) -> bool {
    tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(change) = feed.next().await {
            match change {
                Change::Device(x) if x == id => return true,
                Change::Resync => return true,
                // Another device's change (or a kind of change newer than this suite).
                _ => {}
            }
        }
        false
    })
    .await
    .unwrap_or(false)
}

/// Owner actions and runner writes are announced.
pub async fn change_feed_announces_changes(b: &TestBackend) {
    let mut feed = b
        .devices
        .subscribe()
        .await
        .unwrap()
        .expect("the backend reports a change feed but subscribe() gave none");
    let d = new_device(b, UserId::random(), "watched").await;
    assert!(announced(&mut feed, d.id).await, "create was not announced");
    b.devices
        .start_pairing(d.id, PairingRequest::Qr)
        .await
        .unwrap();
    assert!(
        announced(&mut feed, d.id).await,
        "start_pairing was not announced"
    );
    let c = b
        .devices
        .claim(&ClaimRequest::new("a", 10, LONG))
        .await
        .unwrap()
        .remove(0);
    b.devices
        .update(&c.lease, DeviceUpdate::status(DeviceStatus::WaitingPairing))
        .await
        .unwrap();
    assert!(announced(&mut feed, d.id).await, "update was not announced");
    b.devices.disconnect(d.id).await.unwrap();
    assert!(
        announced(&mut feed, d.id).await,
        "disconnect was not announced"
    );
    b.devices.unlink(d.id).await.unwrap();
    assert!(announced(&mut feed, d.id).await, "unlink was not announced");
}

// ----------------------------------------------------------------------------- budget

/// A budget lets `capacity` requests through per number, then denies with a wait no longer
/// than one refill; other numbers are counted apart.
pub async fn budget_limits_each_number(b: &TestBackend) {
    let budget = b.budget();
    let keyer = BudgetKeyer::random();
    let config = BudgetConfig::new(3, Duration::from_secs(200));
    let one = keyer.key(&phone());
    let two = keyer.key(&wa_pairing_phone::parse("+447911123456").expect("valid"));
    for i in 0..3 {
        assert_eq!(
            budget.try_acquire(&one, &config).await.unwrap(),
            BudgetDecision::Allowed,
            "request {i}"
        );
    }
    match budget.try_acquire(&one, &config).await.unwrap() {
        BudgetDecision::Denied { retry_after } => {
            assert!(
                retry_after > Duration::from_secs(150) && retry_after <= Duration::from_secs(200),
                "{retry_after:?}"
            );
        }
        other => panic!("the fourth request was {other:?}"),
    }
    assert_eq!(
        budget.try_acquire(&two, &config).await.unwrap(),
        BudgetDecision::Allowed
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_values() {
        assert!(strict_value(Some("1")) && strict_value(Some("TRUE")));
        assert!(!strict_value(None) && !strict_value(Some("0")) && !strict_value(Some("")));
    }

    #[test]
    fn a_skip_passes_when_not_strict() {
        assert!(setup_with("t", Err(Skip::new("no server")), false).is_none());
    }

    #[test]
    #[should_panic(expected = "the backend's server is required")]
    fn a_skip_fails_when_strict() {
        let _ = setup_with("t", Err(Skip::new("no server")), true);
    }

    #[test]
    fn the_literal_table_matches_check_transition() {
        for from in DeviceStatus::ALL {
            for to in DeviceStatus::ALL {
                assert_eq!(
                    from.check_transition(to).is_ok(),
                    ALLOWED_TRANSITIONS.contains(&(from, to)),
                    "{from} -> {to}"
                );
            }
        }
    }
}
