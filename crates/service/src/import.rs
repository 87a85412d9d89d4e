//! `import-baileys`: the original system's Baileys sessions (`devices.session_data`, or a
//! `useMultiFileAuthState` folder) written as wa-pairing auth state, device by device, so
//! that the runner resumes them without a new pairing. See docs/migrating-from-baileys.md.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use tracing::{info, warn};
use wa_pairing_postgres::{LegacySession, PostgresStore};
use wa_pairing_store::{DeviceId, DeviceStatus, DeviceStore, DeviceUpdate, Lease, Stores};
use wa_pairing_whatsapp::baileys::{
    BaileysAuth, Existing, ImportErrorKind, ImportOutcome, Overwrite, existing_state,
    import_baileys as import_device,
};

use crate::service::BuildError;
use crate::settings::{Settings, StoreSettings};

/// How long the import holds one device's lease (it needs well under a second).
const IMPORT_LEASE: Duration = Duration::from_secs(60);

/// Rows read from `devices` per round trip (a Baileys state with its keys can reach a
/// megabyte: a page holds a few, not a table's worth).
const PAGE: usize = 16;

/// What `import-baileys` is asked to do.
#[derive(Debug, Clone, Default)]
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
    let raw = PostgresStore::connect(config).map_err(|e| BuildError::store("PostgreSQL", &e))?;
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
        let parsed = BaileysAuth::from_dir(dir);
        let line = importer
            .one(id, device.status, device.phone_number.as_deref(), parsed)
            .await;
        record(&mut report, line);
        return Ok(report);
    }

    let mut after = None;
    loop {
        let page = raw
            .legacy_sessions(after, PAGE)
            .await
            .map_err(|e| BuildError::store("reading devices.session_data", &e))?;
        let Some(last) = page.last() else { break };
        after = Some(last.id);
        for session in page {
            if !options.devices.is_empty() && !options.devices.contains(&session.id) {
                continue;
            }
            let LegacySession {
                id,
                status,
                phone_number,
                session_data,
                ..
            } = session;
            let parsed = BaileysAuth::from_session_data(&session_data);
            drop(session_data);
            let line = importer
                .one(id, status, phone_number.as_deref(), parsed)
                .await;
            record(&mut report, line);
        }
    }
    for wanted in &options.devices {
        if !report.lines.iter().any(|l| l.device == *wanted) {
            record(
                &mut report,
                ImportLine {
                    device: *wanted,
                    action: ImportAction::Skipped,
                    detail: "no such device with session_data: check the id".to_owned(),
                },
            );
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
}

impl Importer<'_> {
    async fn one(
        &self,
        id: DeviceId,
        status: DeviceStatus,
        phone_number: Option<&str>,
        parsed: Result<BaileysAuth, wa_pairing_whatsapp::baileys::ImportError>,
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
            Err(e) => return line(ImportAction::Failed, e.to_string()),
        };
        if phone_number.is_some_and(|n| n != auth.phone_number()) {
            return line(
                ImportAction::Failed,
                "the row's phone_number is not the number these credentials are linked to: the session_data belongs to another device; nothing was imported".to_owned(),
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
                Ok(Existing::SameCompanion) => line(
                    ImportAction::AlreadyImported,
                    "wa-pairing already has this companion's state".to_owned(),
                ),
                Ok(Existing::Other) if self.options.overwrite == Overwrite::Never => line(
                    ImportAction::Skipped,
                    "the device already has wa-pairing state of another companion: left as it is (--overwrite replaces it)".to_owned(),
                ),
                Ok(Existing::Other) => line(
                    ImportAction::WouldImport,
                    format!("{summary}{kept}; replacing its other wa-pairing state"),
                ),
                Ok(_) => line(ImportAction::WouldImport, format!("{summary}{kept}")),
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
                .update(lease, DeviceUpdate::new().phone_number(auth.phone_number()))
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
}
