//! [`Stores`]: every store a runner, a connector, an HTTP router or the conformance suite
//! needs, built once.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use tracing::warn;

use crate::encrypted::{EncryptedAuthState, Keyring};
use crate::error::{ErrorKind, StoreError, StoreResult};
use crate::traits::{
    AuthStateStore, BudgetSecret, Clock, CodeCache, DeviceStore, PairingBudget, SystemClock,
};
use crate::types::{BudgetConfig, BudgetDecision, BudgetKey, BudgetKeyer};
use wa_pairing_phone::{PhoneNumber, PhoneParser, Region};

/// What a set of stores can do beyond the contract every backend meets.
///
/// Backends report the first two ([`DeviceStore::capabilities`]); the others follow from
/// what was added to the [`StoresBuilder`]. The conformance suite runs exactly the
/// behaviour tests these capabilities call for.
///
/// ```
/// use wa_pairing_store::Capabilities;
///
/// // What a backend with a change feed and auth state beside its devices reports.
/// let reported = Capabilities::new().with_change_feed(true).with_auth_cascade(true);
/// assert!(reported.change_feed && reported.auth_cascade && !reported.encrypted);
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[allow(clippy::struct_excessive_bools)] // independent yes/no facts, read by name
pub struct Capabilities {
    /// [`DeviceStore::subscribe`] pushes changes (PostgreSQL LISTEN/NOTIFY, memory).
    pub change_feed: bool,
    /// Deleting a device deletes its auth state too (the auth state lives beside the devices).
    pub auth_cascade: bool,
    /// A [`CodeCache`] is configured.
    pub code_cache: bool,
    /// At least one [`PairingBudget`] is configured.
    pub budget: bool,
    /// Auth state is sealed at rest ([`EncryptedAuthState`]).
    pub encrypted: bool,
}

impl Capabilities {
    /// Nothing beyond the contract (the same as [`Capabilities::default`]).
    pub const fn new() -> Self {
        Self {
            change_feed: false,
            auth_cascade: false,
            code_cache: false,
            budget: false,
            encrypted: false,
        }
    }

    /// With [`change_feed`](Self::change_feed) set to `yes`.
    #[must_use]
    pub const fn with_change_feed(mut self, yes: bool) -> Self {
        self.change_feed = yes;
        self
    }

    /// With [`auth_cascade`](Self::auth_cascade) set to `yes`.
    #[must_use]
    pub const fn with_auth_cascade(mut self, yes: bool) -> Self {
        self.auth_cascade = yes;
        self
    }
}

/// Every store of a deployment in one value: devices, auth state, the optional code cache
/// and pairing budgets, the budget keys and the clock. Built once with [`Stores::builder`] (or
/// a backend's own `stores()`), then handed to the runner, the WhatsApp connector, the HTTP
/// router and the conformance suite. Cheap to clone.
///
/// # Behavior
/// - The auth state handed out is the one every component must write through: sealed when a
///   [`Keyring`] was given ([`StoresBuilder::encrypt`]), so the runner (which wipes a
///   device's keys after a logout) and the connector (which writes them) can never use two
///   different views of it.
/// - [`budget`](Self::budget) answers from every configured budget: a request is denied when
///   any of them denies it; a budget that fails is logged and skipped, so a cache outage never
///   blocks pairing, while a budget kept in the primary store still holds the limit.
///
/// ```
/// use wa_pairing_store::{Keyring, MemoryStore, Stores};
///
/// let (keys, _base64) = Keyring::generate(1);
/// let stores: Stores = MemoryStore::new().stores().encrypt(keys).build();
/// assert!(stores.capabilities().change_feed);
/// assert!(stores.capabilities().encrypted);
/// ```
#[derive(Clone)]
pub struct Stores {
    devices: Arc<dyn DeviceStore>,
    auth: Arc<dyn AuthStateStore>,
    encrypted: Option<Arc<EncryptedAuthState<Arc<dyn AuthStateStore>>>>,
    cache: Option<Arc<dyn CodeCache>>,
    budget: Option<Arc<Budgets>>,
    keyer: Keyer,
    clock: Arc<dyn Clock>,
    phones: PhoneParser,
    capabilities: Capabilities,
}

/// How budget keys are made: a keyer known at build time, or one made from the backend's
/// secret the first time a key is needed (so building stores never waits for a database).
#[derive(Clone)]
enum Keyer {
    Ready(BudgetKeyer),
    FromSecret {
        source: Arc<dyn BudgetSecret>,
        made: Arc<tokio::sync::OnceCell<BudgetKeyer>>,
    },
}

impl fmt::Debug for Stores {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stores")
            .field("capabilities", &self.capabilities)
            .finish_non_exhaustive()
    }
}

impl Stores {
    /// Starts a set of stores from two stores: the devices, and the auth state.
    ///
    /// The change feed is what the device store reports ([`DeviceStore::capabilities`]);
    /// the auth state is not taken to be deleted with its device
    /// ([`Capabilities::auth_cascade`] off), since the two may be kept apart. For one
    /// backend that keeps both, use [`Stores::backend`].
    pub fn builder(devices: impl DeviceStore, auth_state: impl AuthStateStore) -> StoresBuilder {
        let reported = devices.capabilities();
        Self::start(
            Arc::new(devices),
            Arc::new(auth_state),
            reported.with_auth_cascade(false),
        )
    }

    /// Starts a set of stores from one backend that keeps both the devices and the auth
    /// state, with the capabilities it reports ([`DeviceStore::capabilities`]): its change
    /// feed, and whether deleting a device deletes its auth state.
    ///
    /// ```
    /// use wa_pairing_store::{MemoryStore, Stores};
    ///
    /// let stores = Stores::backend(MemoryStore::new()).build();
    /// assert!(stores.capabilities().change_feed && stores.capabilities().auth_cascade);
    /// ```
    pub fn backend<B>(backend: B) -> StoresBuilder
    where
        B: DeviceStore + AuthStateStore + Clone,
    {
        let reported = DeviceStore::capabilities(&backend);
        Self::start(Arc::new(backend.clone()), Arc::new(backend), reported)
    }

    fn start(
        devices: Arc<dyn DeviceStore>,
        auth: Arc<dyn AuthStateStore>,
        reported: Capabilities,
    ) -> StoresBuilder {
        StoresBuilder {
            devices,
            auth,
            keyring: None,
            cache: None,
            budgets: Vec::new(),
            keyer: None,
            budget_secret: None,
            clock: Arc::new(SystemClock),
            region: Region::default(),
            change_feed: reported.change_feed,
            auth_cascade: reported.auth_cascade,
        }
    }

    /// The devices.
    pub fn devices(&self) -> &Arc<dyn DeviceStore> {
        &self.devices
    }

    /// The auth state, as every component must write it (sealed when keys were given).
    pub fn auth_state(&self) -> &Arc<dyn AuthStateStore> {
        &self.auth
    }

    /// The sealed view of the auth state, when keys were given: for key checks and
    /// re-encryption ([`EncryptedAuthState::check_keys`], [`EncryptedAuthState::reencrypt`]).
    pub fn encrypted_auth_state(&self) -> Option<&EncryptedAuthState<Arc<dyn AuthStateStore>>> {
        self.encrypted.as_deref()
    }

    /// The code cache, if any.
    pub fn code_cache(&self) -> Option<&Arc<dyn CodeCache>> {
        self.cache.as_ref()
    }

    /// The pairing budget (every configured budget together), if any.
    pub fn budget(&self) -> Option<Arc<dyn PairingBudget>> {
        self.budget.clone().map(|b| b as Arc<dyn PairingBudget>)
    }

    /// The key the budgets count `phone` under (a keyed hash, never the number).
    ///
    /// Made with, in this order: the keyer given to [`StoresBuilder::budget_keyer`]; the
    /// secret of the backend's [`BudgetSecret`] (read once, on first use: the SQL backends
    /// keep one in the database, so every instance counts alike and a rotation of the
    /// auth-state keys changes nothing); a secret derived from the current auth-state key
    /// (then a rotation starts the budgets afresh); a random one (budgets private to this
    /// process).
    ///
    /// # Errors
    ///
    /// The backend's secret could not be read (it is read again next time).
    pub async fn budget_key(&self, phone: &PhoneNumber) -> Result<BudgetKey, StoreError> {
        match &self.keyer {
            Keyer::Ready(k) => Ok(k.key(phone)),
            Keyer::FromSecret { source, made } => {
                let keyer = made
                    .get_or_try_init(|| async {
                        let secret = zeroize::Zeroizing::new(source.budget_secret().await?);
                        if secret.len() < 16 {
                            return Err(StoreError::new(
                                ErrorKind::Configuration,
                                "the stored pairing-budget secret is shorter than 16 bytes: apply the migrations again",
                            ));
                        }
                        Ok(BudgetKeyer::new(&secret))
                    })
                    .await?;
                Ok(keyer.key(phone))
            }
        }
    }

    /// The clock everything that keeps time outside the database reads.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// How every component reads a number a person typed: national numbers in the
    /// deployment's one default region ([`StoresBuilder::default_region`], Indonesia unless
    /// set), international ones in their own country. The HTTP API, the import and the
    /// embedding application all parse with it, so one setting decides for all of them.
    ///
    /// ```
    /// use wa_pairing_store::{MemoryStore, phone::Region};
    ///
    /// let malaysia: Region = "MY".parse().unwrap();
    /// let stores = MemoryStore::new().stores().default_region(malaysia).build();
    /// assert_eq!(stores.phones().parse("012-345 6789").unwrap().digits(), "60123456789");
    /// ```
    pub const fn phones(&self) -> &PhoneParser {
        &self.phones
    }

    /// What these stores can do.
    pub const fn capabilities(&self) -> Capabilities {
        self.capabilities
    }
}

/// Builds [`Stores`]; from [`Stores::builder`] or a backend's `stores()`.
#[must_use = "call build() to get the Stores"]
pub struct StoresBuilder {
    devices: Arc<dyn DeviceStore>,
    auth: Arc<dyn AuthStateStore>,
    keyring: Option<Keyring>,
    cache: Option<Arc<dyn CodeCache>>,
    budgets: Vec<Arc<dyn PairingBudget>>,
    keyer: Option<BudgetKeyer>,
    budget_secret: Option<Arc<dyn BudgetSecret>>,
    clock: Arc<dyn Clock>,
    region: Region,
    change_feed: bool,
    auth_cascade: bool,
}

impl fmt::Debug for StoresBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoresBuilder")
            .field("encrypted", &self.keyring.is_some())
            .field("code_cache", &self.cache.is_some())
            .field("budgets", &self.budgets.len())
            .finish_non_exhaustive()
    }
}

impl StoresBuilder {
    /// Keeps the auth state here instead (Redis beside a SQL device store, for example).
    /// Deleting a device then no longer deletes its auth state: the cascade is off.
    pub fn auth_state(mut self, auth: impl AuthStateStore) -> Self {
        self.auth = Arc::new(auth);
        self.auth_cascade = false;
        self
    }

    /// Seals the auth state with these keys ([`EncryptedAuthState`]); budget keys are derived
    /// from them unless [`budget_keyer`](Self::budget_keyer) is given.
    pub fn encrypt(mut self, keyring: Keyring) -> Self {
        self.keyring = Some(keyring);
        self
    }

    /// Caches codes here.
    pub fn code_cache(mut self, cache: impl CodeCache) -> Self {
        self.cache = Some(Arc::new(cache));
        self
    }

    /// Adds a pairing budget; with several, a request must pass them all.
    pub fn budget(mut self, budget: impl PairingBudget) -> Self {
        self.budgets.push(Arc::new(budget));
        self
    }

    /// Counts budgets under keys made with this keyer (every instance sharing budgets needs
    /// the same one). Default: see [`Stores::budget_key`].
    pub fn budget_keyer(mut self, keyer: BudgetKeyer) -> Self {
        self.keyer = Some(keyer);
        self
    }

    /// Makes budget keys with the secret `source` keeps (read once, when the first key is
    /// needed), unless a [`budget_keyer`](Self::budget_keyer) is given. The SQL backends'
    /// `stores()` set themselves here.
    pub fn budget_secret(mut self, source: impl BudgetSecret) -> Self {
        self.budget_secret = Some(Arc::new(source));
        self
    }

    /// The clock (default: the system clock; a [`ManualClock`](crate::ManualClock) in tests).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The region numbers typed without a country code are read in, for every component
    /// ([`Stores::phones`]). Default: Indonesia (`ID`).
    pub const fn default_region(mut self, region: Region) -> Self {
        self.region = region;
        self
    }

    /// The stores.
    pub fn build(self) -> Stores {
        let raw = self.auth;
        let keyer = match (self.keyer, self.budget_secret) {
            (Some(k), _) => Keyer::Ready(k),
            (None, Some(source)) => Keyer::FromSecret {
                source,
                made: Arc::default(),
            },
            (None, None) => Keyer::Ready(
                self.keyring
                    .as_ref()
                    .map_or_else(BudgetKeyer::random, Keyring::budget_keyer),
            ),
        };
        let (auth, encrypted): (Arc<dyn AuthStateStore>, _) = match self.keyring {
            Some(keyring) => {
                let sealed = Arc::new(EncryptedAuthState::new(raw, keyring));
                (sealed.clone(), Some(sealed))
            }
            None => (raw, None),
        };
        let capabilities = Capabilities {
            change_feed: self.change_feed,
            auth_cascade: self.auth_cascade,
            code_cache: self.cache.is_some(),
            budget: !self.budgets.is_empty(),
            encrypted: encrypted.is_some(),
        };
        Stores {
            devices: self.devices,
            auth,
            encrypted,
            cache: self.cache,
            budget: (!self.budgets.is_empty()).then(|| Arc::new(Budgets(self.budgets))),
            keyer,
            clock: self.clock,
            phones: PhoneParser::new(self.region),
            capabilities,
        }
    }
}

/// Every configured budget: denied when any denies; failures are skipped.
struct Budgets(Vec<Arc<dyn PairingBudget>>);

#[async_trait]
impl PairingBudget for Budgets {
    async fn try_acquire(
        &self,
        key: &BudgetKey,
        config: &BudgetConfig,
    ) -> StoreResult<BudgetDecision> {
        let mut decision = BudgetDecision::Allowed;
        let mut failures = 0;
        for budget in &self.0 {
            match budget.try_acquire(key, config).await {
                Ok(BudgetDecision::Allowed) => {}
                Ok(denied) => {
                    decision = match (decision, denied) {
                        (
                            BudgetDecision::Denied { retry_after: a },
                            BudgetDecision::Denied { retry_after: b },
                        ) => BudgetDecision::Denied {
                            retry_after: a.max(b),
                        },
                        (_, d) => d,
                    };
                }
                Err(e) => {
                    failures += 1;
                    warn!(error = %e, "a pairing budget could not be consulted; the others decide");
                }
            }
        }
        if failures == self.0.len() {
            return Err(StoreError::new(
                ErrorKind::Unavailable,
                "no pairing budget could be consulted",
            ));
        }
        Ok(decision)
    }
}
