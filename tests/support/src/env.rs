//! The service's settings, as the tests give them.

use std::collections::BTreeMap;

/// Environment variables for the service's `Settings::from_lookup`, with what every test
/// sets: the database, the auth-state keys, and the health port on any free port.
///
/// ```
/// use wa_pairing_test_support::ServiceEnv;
///
/// let env = ServiceEnv::new("postgres://svc@127.0.0.1/db", "1:AAAA")
///     .set("WA_PAIRING_INSTANCE_ID", "test-1");
/// assert_eq!(env.get("WA_PAIRING_HEALTH_ADDR").as_deref(), Some("127.0.0.1:0"));
/// assert_eq!(env.get("WA_PAIRING_INSTANCE_ID").as_deref(), Some("test-1"));
/// assert_eq!(env.get("REDIS_URL"), None);
/// // Settings::from_lookup(|name| env.get(name))
/// ```
#[derive(Debug, Clone)]
pub struct ServiceEnv(BTreeMap<String, String>);

impl ServiceEnv {
    /// `DATABASE_URL`, `WA_PAIRING_AUTH_KEYS` (`id:base64,...`) and
    /// `WA_PAIRING_HEALTH_ADDR=127.0.0.1:0`.
    pub fn new(database_url: &str, auth_keys: &str) -> Self {
        Self(BTreeMap::new())
            .set("DATABASE_URL", database_url)
            .set("WA_PAIRING_AUTH_KEYS", auth_keys)
            .set("WA_PAIRING_HEALTH_ADDR", "127.0.0.1:0")
    }

    /// Sets (or replaces) one variable.
    #[must_use]
    pub fn set(mut self, name: &str, value: impl Into<String>) -> Self {
        self.0.insert(name.to_owned(), value.into());
        self
    }

    /// The value of `name`, if set: what `Settings::from_lookup` asks.
    pub fn get(&self, name: &str) -> Option<String> {
        self.0.get(name).cloned()
    }
}
