//! `import-baileys`: the original system's Baileys sessions (`devices.session_data`, or a
//! `useMultiFileAuthState` folder) written as wa-pairing auth state, device by device, so
//! that the runner resumes them without a new pairing. See docs/migrating-from-baileys.md.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tracing::{info, warn};
use wa_pairing_postgres::{LegacySession, PostgresStore};
use wa_pairing_store::{
    CompanionKey, DeviceId, DeviceStatus, DeviceStore, DeviceUpdate, Lease, Stores,
};
use wa_pairing_whatsapp::baileys::{
    BaileysAuth, Existing, ImportError, ImportErrorKind, ImportOutcome, MAX_SESSION_DATA_BYTES,
    Overwrite, existing_state, import_baileys as import_device,
};

use crate::service::BuildError;
use crate::settings::{Settings, StoreSettings};

/// How long the import holds one device's lease (it needs well under a second).
const IMPORT_LEASE: Duration = Duration::from_secs(60);

/// What `import-baileys` is asked to do.
///
/// # Default
///
/// Every device with `session_data`, for real, never replacing other state, reading rows of
/// up to [`MAX_SESSION_DATA_BYTES`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ImportOptions {
    /// Report what would be imported and why a device cannot be; write nothing.
    pub dry_run: bool,
    /// Whether a device that already has another companion's wa-pairing state is replaced.
    pub overwrite: Overwrite,
    /// Only these devices (empty: every device with `session_data`).
    pub devices: Vec<DeviceId>,
    /// Read the credentials of the one device in [`Self::devices`] from this
    /// `useMultiFileAuthState` folder instead of `session_data`.
    pub from_dir: Option<PathBuf>,
    /// The largest `session_data` (as JSON text, in bytes) fetched from a row: a larger row
    /// is reported (`failed`, with its size) and never fetched.
    pub max_session_data_bytes: usize,
}

impl Default for ImportOptions {
    fn default() -> Self {
        Self {
            dry_run: false,
            overwrite: Overwrite::default(),
            devices: Vec::new(),
            from_dir: None,
            max_session_data_bytes: MAX_SESSION_DATA_BYTES,
        }
    }
}

impl ImportOptions {
    /// Every device with `session_data`, for real.
    pub fn new() -> Self {
        Self::default()
    }

    /// Reports only.
    #[must_use]
    pub const fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Replaces other state ([`Overwrite::Replace`]) or never does.
    #[must_use]
    pub const fn overwrite(mut self, overwrite: Overwrite) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Only `device` (call again for more).
    #[must_use]
    pub fn device(mut self, device: DeviceId) -> Self {
        self.devices.push(device);
        self
    }

    /// The credentials come from this folder (exactly one device must be given).
    #[must_use]
    pub fn from_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.from_dir = Some(dir.into());
        self
    }

    /// Fetches rows whose `session_data` is at most `bytes` long (as JSON text); larger
    /// ones are reported and left alone.
    #[must_use]
    pub const fn max_session_data_bytes(mut self, bytes: usize) -> Self {
        self.max_session_data_bytes = bytes;
        self
    }
}

/// What happened to one device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ImportAction {
    /// Its state was written; the runner resumes it.
    Imported,
    /// Dry run: it would be imported.
    WouldImport,
    /// It already has this companion's state: nothing to do.
    AlreadyImported,
    /// Left alone on purpose (the detail says why and what to do).
    Skipped,
    /// Its credentials cannot be imported, or the store failed (the detail says which).
    Failed,
}

impl ImportAction {
    /// A stable lower-case name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Imported => "imported",
            Self::WouldImport => "would-import",
            Self::AlreadyImported => "already-imported",
            Self::Skipped => "skipped",
            Self::Failed => "failed",
        }
    }
}

impl fmt::Display for ImportAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One device's line in the report: no key material, no full number.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportLine {
    /// The device.
    pub device: DeviceId,
    /// What happened.
    pub action: ImportAction,
    /// What was carried over, or why not.
    pub detail: String,
}

impl fmt::Display for ImportLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.device, self.action, self.detail)
    }
}

/// Every device's line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ImportReport {
    /// In the order visited (device id order).
    pub lines: Vec<ImportLine>,
}

impl ImportReport {
    /// How many lines have `action`.
    pub fn count(&self, action: ImportAction) -> usize {
        self.lines.iter().filter(|l| l.action == action).count()
    }

    /// Whether any device failed.
    pub fn has_failures(&self) -> bool {
        self.count(ImportAction::Failed) > 0
    }
}

/// Imports the original system's Baileys sessions into the auth state of `settings`' store,
/// calling `progress` with each device's line as it is done.
///
/// Reads `devices.session_data` directly, so it needs `DATABASE_URL` (the service role);
/// the auth state is sealed with `WA_PAIRING_AUTH_KEYS` as the service would. Each device
/// is written under a lease of its own, taken only while no runner holds the device.
///
/// One row is held at a time, as JSON text, parsed without building a JSON tree of it: the
/// memory an import needs is about the size of its largest row. A row whose `session_data`
/// is larger than [`ImportOptions::max_session_data_bytes`] is never fetched: its line says
/// how large it is, and nothing is written.
///
/// # Errors
///
/// Refused (exit 2) without a direct PostgreSQL store or auth-state keys, or with a folder
/// but not exactly one device; the store cannot be reached. Per-device problems are lines
/// of the report, never errors.
pub async fn import_baileys(
    settings: &Settings,
    options: &ImportOptions,
    mut progress: impl FnMut(&ImportLine),
) -> Result<ImportReport, BuildError> {
    let StoreSettings::Postgres(config) = &settings.store else {
        return Err(BuildError::refused(
            "import-baileys reads the original devices.session_data column: set DATABASE_URL to the database (Supabase: its direct or session-pooler connection string), not only SUPABASE_URL".to_owned(),
        ));
    };
    if options.from_dir.is_some() && options.devices.len() != 1 {
        return Err(BuildError::refused(
            "--from-dir holds one device's credentials: name exactly one device with --device <id>"
                .to_owned(),
        ));
    }
    let raw = PostgresStore::new(config).map_err(|e| BuildError::store("PostgreSQL", &e))?;
    if settings.migrate {
        raw.migrate()
            .await
            .map_err(|e| BuildError::store("applying the migrations", &e))?;
    }
    let stores = raw.stores().encrypt(settings.keyring.clone()).build();
    let importer = Importer {
        raw: &raw,
        stores: &stores,
        options,
        owner: format!("import:{}", settings.instance_id),
        seen: std::sync::Mutex::default(),
    };
    let mut report = ImportReport::default();
    let mut record = |report: &mut ImportReport, line: ImportLine| {
        progress(&line);
        report.lines.push(line);
    };

    if let Some(dir) = &options.from_dir {
        let id = options.devices[0];
        let device = stores
            .devices()
            .get(id)
            .await
            .map_err(|e| BuildError::store("reading the device", &e))?;
        // Blocking file reads (bounded, and never of a FIFO: see `BaileysAuth::from_dir`).
        let folder = dir.clone();
        let parsed = match tokio::task::spawn_blocking(move || BaileysAuth::from_dir(folder)).await
        {
            Ok(parsed) => parsed.map_err(|e| e.to_string()),
            Err(e) => Err(format!("reading the folder stopped: {e}")),
        };
        let line = importer
            .one(
                id,
                device.status,
                device
                    .phone_number
                    .as_ref()
                    .map(wa_pairing_phone::PhoneNumber::digits),
                parsed,
            )
            .await;
        record(&mut report, line);
        return Ok(report);
    }

    // One row per round trip: a row may hold up to `max` bytes, and one is held at a time.
    let max = options.max_session_data_bytes;
    let read_error = |e| BuildError::store("reading devices.session_data", &e);
    if options.devices.is_empty() {
        let mut after = None;
        while let Some(session) = raw
            .legacy_sessions(after, 1, max)
            .await
            .map_err(read_error)?
            .pop()
        {
            after = Some(session.id);
            let line = importer.session(session, max).await;
            record(&mut report, line);
        }
    } else {
        let mut wanted = options.devices.clone();
        wanted.sort_unstable();
        wanted.dedup();
        for id in wanted {
            let line = match raw.legacy_session(id, max).await.map_err(read_error)? {
                Some(session) => importer.session(session, max).await,
                None => ImportLine {
                    device: id,
                    action: ImportAction::Skipped,
                    detail: "no such device with session_data: check the id".to_owned(),
                },
            };
            record(&mut report, line);
        }
    }
    info!(
        imported = report.count(ImportAction::Imported),
        would_import = report.count(ImportAction::WouldImport),
        already_imported = report.count(ImportAction::AlreadyImported),
        skipped = report.count(ImportAction::Skipped),
        failed = report.count(ImportAction::Failed),
        dry_run = options.dry_run,
        "import of Baileys sessions finished"
    );
    Ok(report)
}

struct Importer<'a> {
    raw: &'a PostgresStore,
    stores: &'a Stores,
    options: &'a ImportOptions,
    owner: String,
    /// The companion of every device this run imported or would import: a dry run reports
    /// a second device with the same credentials as the real run would (the store refuses
    /// it there).
    seen: std::sync::Mutex<std::collections::HashMap<CompanionKey, DeviceId>>,
}

impl Importer<'_> {
    /// One row of `devices`: its text parsed (and dropped) before anything else is awaited.
    async fn session(&self, session: LegacySession, max: usize) -> ImportLine {
        let LegacySession {
            id,
            status,
            phone_number,
            session_data_len,
            session_data,
            ..
        } = session;
        let parsed = match session_data {
            Some(text) => BaileysAuth::from_session_json(&text).map_err(|e| e.to_string()),
            None => Err(ImportError::session_data_too_large(session_data_len, max).to_string()),
        };
        self.one(id, status, phone_number.as_deref(), parsed).await
    }

    async fn one(
        &self,
        id: DeviceId,
        status: DeviceStatus,
        phone_number: Option<&str>,
        parsed: Result<BaileysAuth, String>,
    ) -> ImportLine {
        let line = |action, detail: String| ImportLine {
            device: id,
            action,
            detail,
        };
        let reason = match status {
            DeviceStatus::Connecting | DeviceStatus::WaitingPairing => Some(
                "a pairing is in progress in wa-pairing (the owner is linking the device again): its Baileys credentials are not imported",
            ),
            DeviceStatus::Unlinking => Some(
                "the owner asked to unlink this device: its Baileys credentials are not imported",
            ),
            _ => None,
        };
        if let Some(reason) = reason {
            return line(ImportAction::Skipped, reason.to_owned());
        }
        let auth = match parsed {
            Ok(a) => a,
            Err(e) => return line(ImportAction::Failed, e),
        };
        if phone_number.is_some_and(|n| n != auth.phone_number()) {
            return line(
                ImportAction::Failed,
                "the row's phone_number is not the number these credentials are linked to: the session_data belongs to another device; nothing was imported".to_owned(),
            );
        }
        // The store refuses a companion another device holds; a dry run says so too, for the
        // devices of earlier imports and for those this run would import.
        let companion = auth.companion();
        let held = if self.options.dry_run {
            match self.raw.companion_holder(&companion).await {
                Ok(holder) => holder,
                Err(e) => return line(ImportAction::Failed, e.to_string()),
            }
        } else {
            None
        };
        let elsewhere = held
            .or_else(|| {
                self.seen
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .get(&companion)
                    .copied()
            })
            .filter(|other| *other != id);
        if let Some(other) = elsewhere {
            return line(
                ImportAction::Failed,
                format!(
                    "{}; nothing was imported",
                    wa_pairing_store::StoreError::companion_elsewhere(other)
                ),
            );
        }
        let summary = auth.summary().to_string();
        let state = self.stores.auth_state().as_ref();
        let kept = match status {
            DeviceStatus::Connected => "",
            _ => " (its status stays as it is: the owner resumes it)",
        };
        if self.options.dry_run {
            return match existing_state(state, id, &auth).await {
                Ok(Existing::SameCompanion) => {
                    self.saw(companion, id);
                    line(
                        ImportAction::AlreadyImported,
                        "wa-pairing already has this companion's state".to_owned(),
                    )
                }
                Ok(Existing::Other) if self.options.overwrite == Overwrite::Never => line(
                    ImportAction::Skipped,
                    "the device already has wa-pairing state of another companion: left as it is (--overwrite replaces it)".to_owned(),
                ),
                Ok(Existing::Other) => {
                    self.saw(companion, id);
                    line(
                        ImportAction::WouldImport,
                        format!("{summary}{kept}; replacing its other wa-pairing state"),
                    )
                }
                Ok(_) => {
                    self.saw(companion, id);
                    line(ImportAction::WouldImport, format!("{summary}{kept}"))
                }
                Err(e) => line(ImportAction::Failed, e.to_string()),
            };
        }
        let lease = match self.raw.lease_device(id, &self.owner, IMPORT_LEASE).await {
            Ok(Some(lease)) => lease,
            Ok(None) => {
                return line(
                    ImportAction::Skipped,
                    "a running wa-pairing instance holds this device: stop every runner before importing (a device must never run in both systems), then import again".to_owned(),
                );
            }
            Err(e) => {
                return line(
                    ImportAction::Failed,
                    format!("taking the device's lease: {e}"),
                );
            }
        };
        let result = self.write(&lease, &auth, phone_number.is_none()).await;
        if let Err(e) = self.stores.devices().release(&lease).await {
            warn!(device = %id, error = %e, "the import's lease was not released; it lapses in a minute");
        }
        if result.is_ok() {
            self.saw(companion, id);
        }
        match result {
            Ok(ImportOutcome::AlreadyImported) => line(
                ImportAction::AlreadyImported,
                "wa-pairing already has this companion's state".to_owned(),
            ),
            Ok(_) => line(ImportAction::Imported, format!("{summary}{kept}")),
            Err((kind, message)) => line(
                if kind == Some(ImportErrorKind::HasOtherState) {
                    ImportAction::Skipped
                } else {
                    ImportAction::Failed
                },
                message,
            ),
        }
    }

    fn saw(&self, companion: CompanionKey, device: DeviceId) {
        self.seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(companion, device);
    }

    async fn write(
        &self,
        lease: &Lease,
        auth: &BaileysAuth,
        set_number: bool,
    ) -> Result<ImportOutcome, (Option<ImportErrorKind>, String)> {
        let outcome = import_device(
            self.stores.auth_state().as_ref(),
            lease.device_id,
            lease.fence,
            auth,
            self.options.overwrite,
        )
        .await
        .map_err(|e| (Some(e.kind()), e.to_string()))?;
        if set_number {
            self.stores
                .devices()
                .update(
                    lease,
                    DeviceUpdate::new().phone_number(auth.phone().clone()),
                )
                .await
                .map_err(|e| {
                    (
                        None,
                        format!(
                            "the state was imported, but the phone number could not be set: {e}"
                        ),
                    )
                })?;
        }
        Ok(outcome)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::path::Path;

    use wa_pairing_postgres::PostgresConfig;
    use wa_pairing_store::AuthStateStore as _;
    use wa_pairing_store_testkit::{Skip, skip};
    use wa_pairing_test_support::TestDb;

    use super::*;

    const KEYS: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    fn settings(vars: &[(&str, &str)]) -> Settings {
        let map: HashMap<&str, &str> = vars.iter().copied().collect();
        Settings::from_lookup(|n| map.get(n).map(|v| (*v).to_owned())).expect("settings")
    }

    #[tokio::test]
    async fn refused_before_touching_anything() {
        // Supabase's REST API cannot read session_data: the import needs the database.
        let rest = settings(&[
            ("SUPABASE_URL", "https://project.supabase.co"),
            ("SUPABASE_SERVICE_ROLE_KEY", "sb_secret_do_not_show"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ]);
        let err = import_baileys(&rest, &ImportOptions::new(), |_| {})
            .await
            .unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("DATABASE_URL"), "{err}");
        assert!(!err.to_string().contains("do_not_show"), "{err}");

        // A folder holds one device: name exactly one. (The database is never reached: the
        // URL points nowhere.)
        let db = settings(&[
            ("DATABASE_URL", "postgres://svc@127.0.0.1:1/none"),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
        ]);
        for options in [
            ImportOptions::new().from_dir("/tmp/auth"),
            ImportOptions::new()
                .from_dir("/tmp/auth")
                .device(DeviceId::random())
                .device(DeviceId::random()),
        ] {
            let err = import_baileys(&db, &options, |_| {}).await.unwrap_err();
            assert_eq!(err.exit_code(), 2);
            assert!(err.to_string().contains("exactly one device"), "{err}");
        }
    }

    /// A fresh database with the migrations applied (dropped by [`TestDb::drop`]), and its
    /// store.
    async fn database() -> Result<(TestDb, PostgresStore), Skip> {
        let db = TestDb::create("wa_import").await?;
        let raw = PostgresStore::new(&PostgresConfig::new(&db.url)).expect("pool");
        raw.migrate().await.expect("migrations");
        Ok((db, raw))
    }

    /// A row as the original system wrote it.
    async fn row(db: &TestDb, phone: Option<&str>, session_data: &serde_json::Value) -> DeviceId {
        let row = db
            .connect()
            .await
            .query_one(
                "insert into public.devices (user_id, device_name, status, connection_method, phone_number, session_data)
                 values ($1, 'Baileys', 'connected', 'pairing', $2, $3) returning id",
                &[&uuid::Uuid::new_v4(), &phone, session_data],
            )
            .await
            .expect("insert a row");
        DeviceId(row.get(0))
    }

    fn fixture() -> serde_json::Value {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../whatsapp/tests/fixtures/baileys/session_data.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("fixture")).expect("JSON")
    }

    fn line(report: &ImportReport, id: DeviceId) -> &ImportLine {
        report
            .lines
            .iter()
            .find(|l| l.device == id)
            .unwrap_or_else(|| panic!("no line for {id} in {report:?}"))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rows_over_the_limit_or_with_a_bad_number_are_reported_and_nothing_is_written() {
        let (db, raw) = match database().await {
            Ok(x) => x,
            Err(why) => return skip("import limits", &why),
        };
        let session = fixture();
        let me = session["creds"]["me"]["id"]
            .as_str()
            .expect("me.id")
            .to_owned();
        let number = me.split(':').next().expect("number").to_owned();
        let fits = row(&db, Some(&number), &session).await;
        // Signal sessions (not carried) make this one large.
        let mut large = session.clone();
        let record: Vec<u8> = (0..=255).collect();
        large["keys"]["session"] = (0..200)
            .map(|i| {
                (
                    format!("628{i:010}.0"),
                    serde_json::json!({"type": "Buffer", "data": record}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
            .into();
        let too_large = row(&db, None, &large).await;
        let digits = "6".repeat(5_000);
        let mut absurd = session.clone();
        absurd["creds"]["me"]["id"] = format!("{digits}:12@s.whatsapp.net").into();
        let bad_number = row(&db, None, &absurd).await;

        // The limit: the first row fits, the second does not.
        let fits_len = raw
            .legacy_session(fits, usize::MAX)
            .await
            .unwrap()
            .expect("the row")
            .session_data_len;
        // Room for the long number's row; the Signal sessions are far more.
        let max = usize::try_from(fits_len).unwrap() + 16 * 1024;
        let skipped = raw.legacy_session(too_large, max).await.unwrap().unwrap();
        assert!(skipped.session_data.is_none(), "never fetched");
        assert!(
            skipped.session_data_len > u64::try_from(max).unwrap() * 4,
            "{skipped:?}"
        );
        let fetched = raw.legacy_session(fits, max).await.unwrap().unwrap();
        assert_eq!(
            fetched.session_data.as_deref().map(str::len),
            Some(usize::try_from(fits_len).unwrap())
        );
        let page = raw.legacy_sessions(None, 10, max).await.unwrap();
        assert_eq!(page.len(), 3);
        assert!(page.windows(2).all(|w| w[0].id < w[1].id), "id order");

        let settings = settings(&[("DATABASE_URL", &db.url), ("WA_PAIRING_AUTH_KEYS", KEYS)]);
        let options = ImportOptions::new().max_session_data_bytes(max);
        let report = import_baileys(&settings, &options, |_| {}).await.unwrap();
        assert_eq!(report.lines.len(), 3, "{report:?}");
        assert_eq!(
            line(&report, fits).action,
            ImportAction::Imported,
            "{report:?}"
        );
        let refused = line(&report, too_large);
        assert_eq!(refused.action, ImportAction::Failed, "{refused}");
        assert_eq!(
            refused.detail,
            ImportError::session_data_too_large(skipped.session_data_len, max).to_string()
        );
        assert!(
            refused.detail.starts_with("session_data is ")
                && refused.detail.contains("nothing was written"),
            "{refused}"
        );
        let refused = line(&report, bad_number);
        assert_eq!(refused.action, ImportAction::Failed, "{refused}");
        assert!(refused.detail.starts_with("creds.me.id: "), "{refused}");
        assert!(!refused.detail.contains("66666666"), "{refused}");
        for id in [too_large, bad_number] {
            assert!(
                raw.scan_prefix(id, "").await.unwrap().is_empty(),
                "nothing written"
            );
        }
        assert!(!raw.scan_prefix(fits, "").await.unwrap().is_empty());

        // Named devices, in id order; one that is not there is said so.
        let missing = DeviceId::random();
        let options = ImportOptions::new()
            .dry_run(true)
            .max_session_data_bytes(max)
            .device(too_large)
            .device(missing)
            .device(fits)
            .device(too_large);
        let report = import_baileys(&settings, &options, |_| {}).await.unwrap();
        let mut order = vec![too_large, missing, fits];
        order.sort_unstable();
        assert_eq!(
            report.lines.iter().map(|l| l.device).collect::<Vec<_>>(),
            order
        );
        assert_eq!(line(&report, fits).action, ImportAction::AlreadyImported);
        assert_eq!(line(&report, too_large).action, ImportAction::Failed);
        assert_eq!(line(&report, missing).action, ImportAction::Skipped);

        // A folder whose creds.json is a FIFO: refused, never waited on.
        let dir = std::env::temp_dir().join(format!("wa-pairing-import-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let status = std::process::Command::new("mkfifo")
            .arg(dir.join("creds.json"))
            .status()
            .expect("mkfifo runs");
        assert!(status.success());
        let options = ImportOptions::new().device(bad_number).from_dir(&dir);
        let report = tokio::time::timeout(
            Duration::from_secs(30),
            import_baileys(&settings, &options, |_| {}),
        )
        .await
        .expect("the import returned within 30 s: it must never open a FIFO")
        .unwrap();
        let refused = line(&report, bad_number);
        assert_eq!(refused.action, ImportAction::Failed, "{refused}");
        assert!(
            refused.detail.starts_with("creds.json is a FIFO"),
            "{refused}"
        );
        let _ = std::fs::remove_dir_all(&dir);

        db.drop().await;
    }
}
