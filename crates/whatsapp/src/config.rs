//! The connector's configuration.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use crate::connector::WhatsAppConnector;
use crate::error::Error;

/// WhatsApp's own WebSocket endpoint, the default server.
pub const DEFAULT_SERVER_URL: &str = "wss://web.whatsapp.com/ws/chat";

/// Environment variable read by [`WhatsAppConfig::from_env`] for the server URL.
pub const SERVER_URL_ENV: &str = "WA_PAIRING_WA_SERVER_URL";
/// Environment variable read by [`WhatsAppConfig::from_env`] for the WhatsApp Web version.
pub const WEB_VERSION_ENV: &str = "WA_PAIRING_WA_VERSION";
/// Environment variable read by [`WhatsAppConfig::from_env`] for the device display.
pub const DISPLAY_ENV: &str = "WA_PAIRING_WA_DISPLAY";
/// Environment variable read by [`WhatsAppConfig::from_env`] for the push name.
pub const PUSH_NAME_ENV: &str = "WA_PAIRING_WA_PUSH_NAME";

/// A WhatsApp Web version (`primary.secondary.tertiary`), sent in every login.
///
/// The client never fetches it over HTTP: the configured version is pinned. When WhatsApp
/// stops accepting it, sessions end with
/// [`SessionEvent::ClientOutdated`](wa_pairing_runner::SessionEvent::ClientOutdated); set a
/// newer one (the `client_revision` of web.whatsapp.com's `sw.js`).
///
/// ```
/// use wa_pairing_whatsapp::WebVersion;
///
/// let v: WebVersion = "2.3000.1042742319".parse()?;
/// assert_eq!(v, WebVersion::DEFAULT);
/// assert_eq!(v.to_string(), "2.3000.1042742319");
/// assert!("2.3000".parse::<WebVersion>().is_err());
/// # Ok::<(), wa_pairing_whatsapp::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct WebVersion {
    /// The first number (2).
    pub primary: u32,
    /// The second number (3000).
    pub secondary: u32,
    /// The build (the web client's revision).
    pub tertiary: u32,
}

impl WebVersion {
    /// The version `whatsapp-rust` 0.7.0 ships as its built-in default, 2.3000.1042742319.
    pub const DEFAULT: Self = Self::new(2, 3000, 1_042_742_319);

    /// A version.
    pub const fn new(primary: u32, secondary: u32, tertiary: u32) -> Self {
        Self {
            primary,
            secondary,
            tertiary,
        }
    }

    pub(crate) const fn triple(self) -> (u32, u32, u32) {
        (self.primary, self.secondary, self.tertiary)
    }
}

impl Default for WebVersion {
    fn default() -> Self {
        Self::DEFAULT
    }
}

impl fmt::Display for WebVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.primary, self.secondary, self.tertiary)
    }
}

impl FromStr for WebVersion {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            Error::configuration(format!(
                "{s:?} is not a WhatsApp Web version: write three numbers such as 2.3000.1042742319"
            ))
        };
        let parts: Vec<u32> = s
            .trim()
            .split('.')
            .map(|p| p.parse::<u32>().map_err(|_| bad()))
            .collect::<Result<_, _>>()?;
        match parts.as_slice() {
            [a, b, c] if *a > 0 => Ok(Self::new(*a, *b, *c)),
            _ => Err(bad()),
        }
    }
}

/// A browser WhatsApp recognises in a companion's display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Browser {
    /// Google Chrome.
    Chrome,
    /// Microsoft Edge.
    Edge,
    /// Mozilla Firefox.
    Firefox,
    /// Apple Safari.
    Safari,
    /// Opera.
    Opera,
}

impl Browser {
    /// Every recognised browser.
    pub const ALL: [Self; 5] = [
        Self::Chrome,
        Self::Edge,
        Self::Firefox,
        Self::Safari,
        Self::Opera,
    ];

    /// The name WhatsApp shows.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Chrome => "Chrome",
            Self::Edge => "Edge",
            Self::Firefox => "Firefox",
            Self::Safari => "Safari",
            Self::Opera => "Opera",
        }
    }
}

/// An operating system WhatsApp recognises in a companion's display name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Os {
    /// Microsoft Windows.
    Windows,
    /// Apple macOS (shown as "Mac OS").
    MacOs,
    /// Linux.
    Linux,
}

impl Os {
    /// Every recognised operating system.
    pub const ALL: [Self; 3] = [Self::Windows, Self::MacOs, Self::Linux];

    /// The name WhatsApp shows (the spelling its web client sends).
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Windows => "Windows",
            Self::MacOs => "Mac OS",
            Self::Linux => "Linux",
        }
    }
}

/// How the linked device appears on the phone ("Linked devices"): `Browser (OS)`.
///
/// Only combinations of a recognised [`Browser`] and [`Os`] are accepted, because WhatsApp
/// silently refuses a pairing whose display it does not recognise.
///
/// ```
/// use wa_pairing_whatsapp::{Browser, DeviceDisplay, Os};
///
/// let d: DeviceDisplay = "chrome (linux)".parse()?;
/// assert_eq!(d, DeviceDisplay::new(Browser::Chrome, Os::Linux));
/// assert_eq!(d.to_string(), "Chrome (Linux)");
/// assert_eq!("Safari (macOS)".parse::<DeviceDisplay>()?.to_string(), "Safari (Mac OS)");
/// assert!("My Bot (Linux)".parse::<DeviceDisplay>().is_err());
/// assert!("Chrome (Plan 9)".parse::<DeviceDisplay>().is_err());
/// # Ok::<(), wa_pairing_whatsapp::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DeviceDisplay {
    /// The browser.
    pub browser: Browser,
    /// The operating system.
    pub os: Os,
}

impl DeviceDisplay {
    /// `browser (os)`.
    pub const fn new(browser: Browser, os: Os) -> Self {
        Self { browser, os }
    }
}

impl Default for DeviceDisplay {
    /// "Chrome (Linux)".
    fn default() -> Self {
        Self::new(Browser::Chrome, Os::Linux)
    }
}

impl fmt::Display for DeviceDisplay {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.browser.as_str(), self.os.as_str())
    }
}

fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_lowercase()
}

impl FromStr for DeviceDisplay {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || {
            let browsers: Vec<&str> = Browser::ALL.iter().map(|b| b.as_str()).collect();
            let systems: Vec<&str> = Os::ALL.iter().map(|o| o.as_str()).collect();
            Error::configuration(format!(
                "{s:?} is not a device display WhatsApp recognises: write \"Browser (OS)\" with a browser among {} and an OS among {}, for example \"Chrome (Linux)\"",
                browsers.join(", "),
                systems.join(", ")
            ))
        };
        let t = s.trim();
        let (browser, rest) = t.split_once('(').ok_or_else(bad)?;
        let os = rest.strip_suffix(')').ok_or_else(bad)?;
        let browser = Browser::ALL
            .into_iter()
            .find(|b| squash(b.as_str()) == squash(browser))
            .ok_or_else(bad)?;
        let os = match squash(os).as_str() {
            "windows" => Os::Windows,
            "macos" | "mac" | "osx" => Os::MacOs,
            "linux" => Os::Linux,
            _ => return Err(bad()),
        };
        Ok(Self::new(browser, os))
    }
}

/// The configuration of a [`WhatsAppConnector`].
///
/// # Default
/// - server: [`DEFAULT_SERVER_URL`] (WhatsApp's `wss://web.whatsapp.com/ws/chat`);
/// - WhatsApp Web version: [`WebVersion::DEFAULT`], pinned (never fetched);
/// - display: "Chrome (Linux)";
/// - push name: none (the account's own);
/// - the client's state: wherever the runner says with each session
///   ([`SessionSpec::auth_state`](wa_pairing_runner::SessionSpec::auth_state), the runner's
///   stores' auth state, sealed when the stores were built with keys:
///   [`StoresBuilder::encrypt`](wa_pairing_store::StoresBuilder::encrypt), do it in
///   production);
/// - history sync: skipped (a pairing gateway does not need the chat history);
/// - push notification on the phone for a pairing code: on, as WhatsApp Web does;
/// - reconnects: the client's own (Fibonacci backoff up to 15 minutes after unexpected
///   drops, at once after the server's post-pairing restart);
/// - time allowed for a graceful close: 10 s.
///
/// `Debug` never shows keys.
///
/// ```
/// use wa_pairing_whatsapp::{DEFAULT_SERVER_URL, DeviceDisplay, ErrorKind, WhatsAppConfig};
///
/// let config = WhatsAppConfig::new()
///     .display("Firefox (Windows)".parse::<DeviceDisplay>()?);
/// match config.build() {
///     Ok(connector) => assert_eq!(connector.config().server(), DEFAULT_SERVER_URL),
///     // A build with `insecure-sim` may only reach servers on loopback.
///     Err(e) => assert_eq!(e.kind(), ErrorKind::InsecureServer),
/// }
/// # Ok::<(), wa_pairing_whatsapp::Error>(())
/// ```
///
/// Plain data: it deserialises from a configuration file, every field optional
/// (`web_version` as `"2.3000.1042742319"`, `display` as `"Firefox (Windows)"`,
/// `close_timeout` as `"10s"`), and [`validate`](Self::validate) (which
/// [`build`](Self::build) calls) checks it.
///
/// ```
/// use wa_pairing_whatsapp::WhatsAppConfig;
///
/// let config: WhatsAppConfig = serde_json::from_str(
///     r#"{"display": "Edge (Windows)", "close_timeout": "5s"}"#,
/// )?;
/// assert_eq!(config.server(), wa_pairing_whatsapp::DEFAULT_SERVER_URL);
/// # Ok::<(), serde_json::Error>(())
/// ```
#[derive(Clone, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
#[non_exhaustive]
pub struct WhatsAppConfig {
    #[serde(rename = "server")]
    pub(crate) server_url: String,
    #[serde(with = "from_str")]
    pub(crate) web_version: WebVersion,
    #[serde(with = "from_str")]
    pub(crate) display: DeviceDisplay,
    pub(crate) push_name: Option<String>,
    pub(crate) skip_history_sync: bool,
    pub(crate) show_push_notification: bool,
    #[serde(with = "humantime_serde")]
    pub(crate) close_timeout: Duration,
}

/// Values written as their `Display` text and read with `FromStr`.
mod from_str {
    use std::fmt::Display;
    use std::str::FromStr;

    pub(super) fn deserialize<'de, D, T>(deserializer: D) -> Result<T, D::Error>
    where
        D: serde::Deserializer<'de>,
        T: FromStr,
        T::Err: Display,
    {
        let text = <String as serde::Deserialize>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Debug for WhatsAppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WhatsAppConfig")
            .field("server_url", &self.server_url)
            .field("web_version", &self.web_version)
            .field("display", &self.display)
            .field("push_name", &self.push_name)
            .field("skip_history_sync", &self.skip_history_sync)
            .field("show_push_notification", &self.show_push_notification)
            .field("close_timeout", &self.close_timeout)
            .finish_non_exhaustive()
    }
}

impl Default for WhatsAppConfig {
    fn default() -> Self {
        Self::new()
    }
}

impl WhatsAppConfig {
    /// The defaults (see `# Default`).
    pub fn new() -> Self {
        Self {
            server_url: DEFAULT_SERVER_URL.to_owned(),
            web_version: WebVersion::DEFAULT,
            display: DeviceDisplay::default(),
            push_name: None,
            skip_history_sync: true,
            show_push_notification: true,
            close_timeout: Duration::from_secs(10),
        }
    }

    /// The defaults, overridden by the environment: [`SERVER_URL_ENV`],
    /// [`WEB_VERSION_ENV`], [`DISPLAY_ENV`], [`PUSH_NAME_ENV`]. Unset or empty variables
    /// keep the default; a malformed one is an error. (The auth-state keys belong to the
    /// runner's [`Stores`](wa_pairing_store::Stores).)
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](crate::ErrorKind::Configuration) naming the variable
    /// that is malformed (see [`validate`](Self::validate)).
    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads the same variables as [`from_env`](Self::from_env) through `lookup` (a
    /// variable's name to its value; empty counts as unset), and checks the result
    /// ([`validate`](Self::validate)). The one reader of these variables: `from_env` and the
    /// service both use it.
    ///
    /// ```
    /// use wa_pairing_whatsapp::WhatsAppConfig;
    ///
    /// let env = |name: &str| (name == "WA_PAIRING_WA_SERVER_URL").then(|| "https://x".to_owned());
    /// let refused = WhatsAppConfig::from_lookup(env).unwrap_err();
    /// assert!(refused.to_string().contains("WA_PAIRING_WA_SERVER_URL"));
    /// ```
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](crate::ErrorKind::Configuration) naming the variable.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let var = |name: &str| {
            lookup(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let named = |name: &str, e: Error| Error::new(e.kind(), format!("{name}: {}", e.message()));
        let mut config = Self::new();
        if let Some(url) = var(SERVER_URL_ENV) {
            config = config.server_url(url);
            crate::guard::check_server_url_shape(&config.server_url)
                .map_err(|e| named(SERVER_URL_ENV, e))?;
        }
        if let Some(v) = var(WEB_VERSION_ENV) {
            config = config.web_version(v.parse().map_err(|e| named(WEB_VERSION_ENV, e))?);
        }
        if let Some(d) = var(DISPLAY_ENV) {
            config = config.display(d.parse().map_err(|e| named(DISPLAY_ENV, e))?);
        }
        if let Some(name) = var(PUSH_NAME_ENV) {
            config = config.push_name(name);
        }
        config.validate()?;
        Ok(config)
    }

    /// Checks the configuration: the server URL is a `ws://` or `wss://` URL with a host,
    /// the push name is not blank, the close timeout is above zero. [`build`](Self::build)
    /// checks the same, and what this build allows: a build that skips certificate checks
    /// (feature `insecure-sim`) reaches servers on loopback only.
    ///
    /// # Errors
    ///
    /// [`ErrorKind::Configuration`](crate::ErrorKind::Configuration) naming the setting and
    /// what to write.
    pub fn validate(&self) -> Result<(), Error> {
        crate::guard::check_server_url_shape(&self.server_url)?;
        if self
            .push_name
            .as_deref()
            .is_some_and(|n| n.trim().is_empty())
        {
            return Err(Error::configuration(
                "push_name is empty: leave it unset or give a name",
            ));
        }
        if self.close_timeout.is_zero() {
            return Err(Error::configuration(
                "close_timeout is 0: give the client time to save its state on close, such as 10s",
            ));
        }
        Ok(())
    }

    /// The WebSocket URL of the server (`wss://`, or `ws://` for a local test server).
    #[must_use]
    pub fn server_url(mut self, url: impl Into<String>) -> Self {
        self.server_url = url.into();
        self
    }

    /// The WhatsApp Web version every login announces.
    #[must_use]
    pub fn web_version(mut self, version: WebVersion) -> Self {
        self.web_version = version;
        self
    }

    /// How the linked device appears on the phone.
    #[must_use]
    pub fn display(mut self, display: DeviceDisplay) -> Self {
        self.display = display;
        self
    }

    /// The push name the client starts with.
    #[must_use]
    pub fn push_name(mut self, name: impl Into<String>) -> Self {
        self.push_name = Some(name.into());
        self
    }

    /// Whether to skip WhatsApp's history sync after linking.
    #[must_use]
    pub fn skip_history_sync(mut self, skip: bool) -> Self {
        self.skip_history_sync = skip;
        self
    }

    /// Whether the phone shows a notification when a pairing code is requested for it.
    #[must_use]
    pub fn show_push_notification(mut self, show: bool) -> Self {
        self.show_push_notification = show;
        self
    }

    /// How long [`disconnect`](wa_pairing_runner::Session::disconnect) waits for the client
    /// to flush its state and stop before it is aborted.
    #[must_use]
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// The server URL.
    pub fn server(&self) -> &str {
        &self.server_url
    }

    /// The WhatsApp Web version.
    pub const fn version(&self) -> WebVersion {
        self.web_version
    }

    /// Checks the configuration and makes the connector.
    ///
    /// # Behavior
    /// - The server URL must be a `ws://` or `wss://` URL with a host
    ///   ([`ErrorKind::Configuration`](crate::ErrorKind::Configuration)).
    /// - When this build skips WhatsApp's certificate checks (feature `insecure-sim`, or the
    ///   client's danger feature enabled anywhere in the build), a server outside loopback is
    ///   refused ([`ErrorKind::InsecureServer`](crate::ErrorKind::InsecureServer)).
    pub fn build(&self) -> Result<WhatsAppConnector, Error> {
        WhatsAppConnector::new(self)
    }
}
