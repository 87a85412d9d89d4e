//! The Baileys converter and import on fixtures Baileys itself wrote (a device linked by
//! stock Baileys 6.17.16 to the simulator, see `tests/fixtures/baileys/README.md`): both
//! forms convert to the same companion, the import writes what the client reads back, is
//! idempotent, never touches other state unless asked, and every malformed input is refused
//! naming the field, never a value; a folder is read within limits (regular files only, never
//! blocking on a FIFO, each file and the whole capped).

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Value, json};
use wa_pairing_store::{AuthStateStore, Fence};
use wa_pairing_whatsapp::WaBackend;
use wa_pairing_whatsapp::baileys::{
    BaileysAuth, Existing, ImportError, ImportErrorKind, ImportOutcome, MAX_DIR_BYTES,
    MAX_KEY_FILE_BYTES, Overwrite, existing_state, import_baileys,
};
use wacore::store::traits::{AppSyncStore as _, DeviceStore as _, SignalStore as _};

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/baileys")
}

fn session_data() -> Value {
    let text = std::fs::read_to_string(fixtures().join("session_data.json")).expect("fixture");
    serde_json::from_str(&text).expect("fixture JSON")
}

/// A Baileys buffer (`{"type":"Buffer","data":"<base64>"}`, or base64) as bytes.
fn buffer(v: &Value) -> Vec<u8> {
    let text = v
        .get("data")
        .and_then(Value::as_str)
        .or_else(|| v.as_str())
        .expect("a buffer");
    STANDARD.decode(text).expect("base64")
}

/// Every secret of the fixture in the forms a leak would show them (base64 and hex).
fn secrets(session: &Value) -> Vec<String> {
    let creds = &session["creds"];
    let mut raw = vec![
        buffer(&creds["noiseKey"]["private"]),
        buffer(&creds["signedIdentityKey"]["private"]),
        buffer(&creds["signedPreKey"]["keyPair"]["private"]),
        STANDARD
            .decode(creds["advSecretKey"].as_str().expect("adv"))
            .expect("adv base64"),
    ];
    for (_, k) in session["keys"]["pre-key"].as_object().expect("pre-keys") {
        raw.push(buffer(&k["private"]));
    }
    raw.iter()
        .flat_map(|b| [STANDARD.encode(b), hex::encode(b)])
        .collect()
}

#[test]
fn both_forms_convert_to_the_same_companion() {
    let session = session_data();
    let auth = BaileysAuth::from_session_data(&session).expect("converts");
    let summary = auth.summary();
    let me = session["creds"]["me"]["id"].as_str().expect("me.id");
    let (user, rest) = me.split_once(':').expect("number:device@server");
    let device: u16 = rest.split('@').next().unwrap().parse().unwrap();
    assert_eq!(summary.device, device);
    assert_eq!(auth.phone_number(), user);
    assert!(!summary.phone.contains(user), "redacted: {}", summary.phone);
    assert!(summary.has_lid);
    let count = |kind: &str| {
        session["keys"][kind]
            .as_object()
            .map_or(0, serde_json::Map::len)
    };
    assert_eq!(summary.pre_keys, count("pre-key"));
    assert!(summary.pre_keys > 0);
    assert_eq!(summary.app_state_keys, count("app-state-sync-key"));
    for (kind, n) in &summary.not_carried {
        assert_eq!(*n, count(kind), "{kind}");
    }

    let folder = BaileysAuth::from_dir(fixtures().join("auth")).expect("the folder converts");
    assert_eq!(folder.summary(), summary);

    // The creds object alone, and the whole as a JSON string, are accepted too.
    let bare = BaileysAuth::from_session_data(&session["creds"]).expect("creds alone");
    assert_eq!(bare.summary().pre_keys, 0);
    let text = Value::String(session.to_string());
    assert_eq!(
        BaileysAuth::from_session_data(&text).unwrap().summary(),
        summary
    );

    // Nothing secret in Debug or Display.
    let shown = format!("{auth:?} {summary}");
    for s in secrets(&session) {
        assert!(!shown.contains(&s), "a secret in {shown}");
    }
    assert!(!shown.contains(user), "the full number in {shown}");
}

#[tokio::test]
async fn the_import_writes_what_the_client_reads_back_and_is_idempotent() {
    let session = session_data();
    let creds = &session["creds"];
    let auth = BaileysAuth::from_session_data(&session).unwrap();
    let (store, lease) = common::memory_device().await;
    let (id, fence) = (lease.device_id, lease.fence);
    assert_eq!(
        existing_state(&*store, id, &auth).await.unwrap(),
        Existing::Nothing
    );

    let outcome = import_baileys(&*store, id, fence, &auth, Overwrite::Never)
        .await
        .unwrap();
    assert_eq!(outcome, ImportOutcome::Imported);
    let written = store.scan_prefix(id, "").await.unwrap();

    // The client's own backend reads the companion back.
    let backend = WaBackend::new(store.clone(), id, fence);
    assert!(backend.is_linked().await.unwrap());
    let device = backend.load().await.unwrap().expect("a device record");
    assert_eq!(
        device.pn.as_ref().map(ToString::to_string).as_deref(),
        creds["me"]["id"].as_str()
    );
    assert_eq!(
        device.lid.as_ref().map(ToString::to_string).as_deref(),
        creds["me"]["lid"].as_str()
    );
    assert_eq!(
        u64::from(device.registration_id),
        creds["registrationId"].as_u64().unwrap()
    );
    assert_eq!(
        device.noise_key.public_key.public_key_bytes(),
        buffer(&creds["noiseKey"]["public"]).as_slice()
    );
    assert_eq!(
        device.identity_key.public_key.public_key_bytes(),
        buffer(&creds["signedIdentityKey"]["public"]).as_slice()
    );
    assert_eq!(
        device.signed_pre_key.public_key.public_key_bytes(),
        buffer(&creds["signedPreKey"]["keyPair"]["public"]).as_slice()
    );
    assert_eq!(
        u64::from(device.signed_pre_key_id),
        creds["signedPreKey"]["keyId"].as_u64().unwrap()
    );
    assert_eq!(
        device.adv_secret_key.to_vec(),
        STANDARD
            .decode(creds["advSecretKey"].as_str().unwrap())
            .unwrap()
    );
    let account = device.account.as_ref().expect("the signed device identity");
    assert_eq!(
        account.details.as_deref(),
        Some(buffer(&creds["account"]["details"]).as_slice())
    );
    assert!(
        device.next_pre_key_id >= u32::try_from(creds["nextPreKeyId"].as_u64().unwrap()).unwrap()
    );

    // Every pre-key, with its public key, readable by the client.
    for (key_id, pair) in session["keys"]["pre-key"].as_object().unwrap() {
        let key_id: u32 = key_id.parse().unwrap();
        let record = backend.load_prekey(key_id).await.unwrap().expect("stored");
        let record = waproto::codec::pre_key_record_decode(&record).expect("a pre-key record");
        assert_eq!(record.id, Some(key_id));
        assert_eq!(
            record.public_key.as_deref(),
            Some(buffer(&pair["public"]).as_slice())
        );
    }
    // The app-state keys, and the one the account uses.
    let sync_keys = session["keys"]["app-state-sync-key"]
        .as_object()
        .expect("the fixture has app-state keys");
    assert!(!sync_keys.is_empty());
    for (key_id, key) in sync_keys {
        let stored = backend
            .get_sync_key(&STANDARD.decode(key_id).unwrap())
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(stored.key_data, buffer(&key["keyData"]));
    }
    assert_eq!(
        backend.get_latest_sync_key_id().await.unwrap(),
        Some(
            STANDARD
                .decode(creds["myAppStateKeyId"].as_str().unwrap())
                .unwrap()
        ),
        "the account's key is the latest"
    );

    // Again: the same companion, nothing written.
    assert_eq!(
        existing_state(&*store, id, &auth).await.unwrap(),
        Existing::SameCompanion
    );
    let again = import_baileys(&*store, id, fence, &auth, Overwrite::Replace)
        .await
        .unwrap();
    assert_eq!(again, ImportOutcome::AlreadyImported);
    assert_eq!(store.scan_prefix(id, "").await.unwrap(), written);
}

#[tokio::test]
async fn other_state_is_never_touched_unless_replaced() {
    let auth = BaileysAuth::from_session_data(&session_data()).unwrap();
    let (store, lease) = common::memory_device().await;
    let (id, fence) = (lease.device_id, lease.fence);
    // Another companion: what a fresh pairing writes.
    let backend = WaBackend::new(store.clone(), id, fence);
    backend.create().await.unwrap();
    backend.put_session("111.0", b"a session").await.unwrap();
    let before = store.scan_prefix(id, "").await.unwrap();

    assert_eq!(
        existing_state(&*store, id, &auth).await.unwrap(),
        Existing::Other
    );
    let err = import_baileys(&*store, id, fence, &auth, Overwrite::Never)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::HasOtherState);
    assert_eq!(
        store.scan_prefix(id, "").await.unwrap(),
        before,
        "untouched"
    );

    // Partial state (no device record) counts as other state too.
    let (store2, lease2) = common::memory_device().await;
    store2
        .put(lease2.device_id, lease2.fence, "session/111.0", b"x")
        .await
        .unwrap();
    assert_eq!(
        existing_state(&*store2, lease2.device_id, &auth)
            .await
            .unwrap(),
        Existing::Other
    );

    // Replaced on request: the old entries are gone, the import is there.
    let done = import_baileys(&*store, id, fence, &auth, Overwrite::Replace)
        .await
        .unwrap();
    assert_eq!(done, ImportOutcome::Imported);
    let after = store.scan_prefix(id, "").await.unwrap();
    assert!(!after.iter().any(|(k, _)| k.starts_with("session/")));
    assert_eq!(
        existing_state(&*store, id, &auth).await.unwrap(),
        Existing::SameCompanion
    );
}

#[tokio::test]
async fn a_stale_fence_writes_nothing() {
    let auth = BaileysAuth::from_session_data(&session_data()).unwrap();
    let (store, lease) = common::memory_device().await;
    let err = import_baileys(
        &*store,
        lease.device_id,
        Fence(lease.fence.0 + 7),
        &auth,
        Overwrite::Never,
    )
    .await
    .unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::Storage);
    assert!(
        store
            .scan_prefix(lease.device_id, "")
            .await
            .unwrap()
            .is_empty()
    );
}

/// `session` with `edit` applied at the JSON pointer `path`.
fn edited(session: &Value, path: &str, edit: impl FnOnce(&mut Value)) -> Value {
    let mut s = session.clone();
    edit(
        s.pointer_mut(path)
            .unwrap_or_else(|| panic!("{path} in the fixture")),
    );
    s
}

fn remove(session: &Value, parent: &str, field: &str) -> Value {
    edited(session, parent, |v| {
        v.as_object_mut().unwrap().remove(field);
    })
}

#[test]
fn malformed_input_is_refused_naming_the_field_and_no_secret() {
    let s = session_data();
    let other_public = s["creds"]["signedIdentityKey"]["public"].clone();
    let first_pre_key = s["keys"]["pre-key"]
        .as_object()
        .unwrap()
        .keys()
        .next()
        .unwrap()
        .clone();
    let cut_short = format!("keys.pre-key.{first_pre_key}.public");
    let cases: Vec<(&str, Value, ImportErrorKind, &str)> = vec![
        (
            "not an object",
            json!([1, 2]),
            ImportErrorKind::Malformed,
            "session_data",
        ),
        (
            "not JSON inside a string",
            json!("{\"creds\":"),
            ImportErrorKind::Malformed,
            "session_data",
        ),
        (
            "no noise key",
            remove(&s, "/creds", "noiseKey"),
            ImportErrorKind::Malformed,
            "creds.noiseKey.private: missing",
        ),
        (
            "a short private key",
            edited(&s, "/creds/noiseKey/private", |v| {
                *v = json!({"type": "Buffer", "data": "AAEC"});
            }),
            ImportErrorKind::Malformed,
            "creds.noiseKey.private: expected 32 bytes, found 3",
        ),
        (
            "not base64",
            edited(&s, "/creds/signedIdentityKey/private", |v| {
                *v = json!({"type": "Buffer", "data": "%%%"});
            }),
            ImportErrorKind::Malformed,
            "creds.signedIdentityKey.private",
        ),
        (
            "a public key of another pair",
            edited(&s, "/creds/noiseKey/public", |v| *v = other_public.clone()),
            ImportErrorKind::Inconsistent,
            "creds.noiseKey",
        ),
        (
            "a signature of something else",
            edited(&s, "/creds/signedPreKey/keyPair", |v| {
                *v = s["creds"]["noiseKey"].clone();
            }),
            ImportErrorKind::Inconsistent,
            "creds.signedPreKey.signature",
        ),
        (
            "an account of another identity",
            edited(&s, "/creds/signedIdentityKey", |v| {
                *v = s["creds"]["noiseKey"].clone();
            }),
            ImportErrorKind::Inconsistent,
            "",
        ),
        (
            "a registration id that is text",
            edited(&s, "/creds/registrationId", |v| *v = json!("abc")),
            ImportErrorKind::Malformed,
            "creds.registrationId",
        ),
        (
            "never linked",
            remove(&s, "/creds", "account"),
            ImportErrorKind::NotLinked,
            "never linked",
        ),
        (
            "a code requested, no pairing",
            edited(&s, "/creds/me/id", |v| {
                *v = json!(format!(
                    "{}@s.whatsapp.net",
                    v.as_str().unwrap().split(':').next().unwrap()
                ));
            }),
            ImportErrorKind::NotLinked,
            "no companion device",
        ),
        (
            "a JID of another server",
            edited(&s, "/creds/me/id", |v| *v = json!("123:4@g.us")),
            ImportErrorKind::Malformed,
            "creds.me.id",
        ),
        (
            "a pre-key id that is not a number",
            edited(&s, "/keys/pre-key", |v| {
                let pk = v[&first_pre_key].clone();
                v.as_object_mut().unwrap().insert("x1".into(), pk);
            }),
            ImportErrorKind::Malformed,
            "keys.pre-key.x1",
        ),
        (
            "a pre-key cut short",
            edited(&s, &format!("/keys/pre-key/{first_pre_key}"), |v| {
                v.as_object_mut().unwrap().remove("public");
            }),
            ImportErrorKind::Malformed,
            &cut_short,
        ),
        (
            "keys that are not an object",
            edited(&s, "/keys", |v| *v = json!(["pre-key"])),
            ImportErrorKind::Malformed,
            "session_data.keys",
        ),
    ];
    let leaks = secrets(&s);
    for (what, input, kind, names) in cases {
        let err = BaileysAuth::from_session_data(&input)
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted"));
        assert_eq!(err.kind(), kind, "{what}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(names),
            "{what}: {text:?} should name {names:?}"
        );
        for secret in &leaks {
            assert!(!text.contains(secret), "{what}: a secret in {text}");
        }
        // The text form says the same.
        let from_text = BaileysAuth::from_session_json(&input.to_string())
            .err()
            .unwrap_or_else(|| panic!("{what}: accepted as text"));
        assert_eq!(from_text.kind(), kind, "{what}: {from_text}");
        assert_eq!(from_text.to_string(), text, "{what}");
    }
}

#[test]
fn an_account_number_that_is_not_a_phone_number_is_refused_without_showing_it() {
    let s = session_data();
    let long = "6".repeat(5_000);
    for user in [long.as_str(), "999123456789", "0812345678901"] {
        let input = edited(&s, "/creds/me/id", |v| {
            *v = json!(format!("{user}:12@s.whatsapp.net"));
        });
        for err in [
            BaileysAuth::from_session_data(&input).unwrap_err(),
            BaileysAuth::from_session_json(&input.to_string()).unwrap_err(),
        ] {
            assert_eq!(err.kind(), ImportErrorKind::Malformed, "{user}: {err}");
            let text = err.to_string();
            assert!(text.starts_with("creds.me.id: "), "names the field: {text}");
            assert!(text.contains("not a valid phone number"), "{text}");
            assert!(!text.contains(&user[..8]), "the number in {text}");
        }
    }
    // The real number is accepted, and shown redacted only.
    let auth = BaileysAuth::from_session_json(&s.to_string()).unwrap();
    assert!(
        auth.summary().phone.contains("****"),
        "{}",
        auth.summary().phone
    );
}

/// A session_data of `sessions` Signal sessions (in Node's `Buffer.toJSON` form, numbers),
/// sender keys and app-state versions besides the fixture's credentials: what the import
/// counts and skips.
fn with_sessions(session: &Value, sessions: usize) -> String {
    let mut s = session.clone();
    let keys = s["keys"].as_object_mut().unwrap();
    let record: Vec<u8> = (0..=255).collect();
    let many = |n: usize| -> serde_json::Map<String, Value> {
        (0..n)
            .map(|i| {
                (
                    format!("628{i:010}.0"),
                    json!({"type": "Buffer", "data": record}),
                )
            })
            .collect()
    };
    keys.insert("session".into(), Value::Object(many(sessions)));
    keys.insert("sender-key".into(), Value::Object(many(3)));
    keys.insert(
        "app-state-sync-version".into(),
        json!({"regular": {"version": 3, "hash": "AAAA", "indexValueMap": {"a": {"valueMac": [1, 2]}}}}),
    );
    s.to_string()
}

#[test]
fn the_text_form_reads_like_the_value_form_and_only_counts_what_is_not_carried() {
    let session = session_data();
    let from_value = BaileysAuth::from_session_data(&session).unwrap();
    let text = with_sessions(&session, 2_000);
    let from_text = BaileysAuth::from_session_json(&text).expect("the text converts");
    let summary = from_text.summary();
    assert_eq!(summary.pre_keys, from_value.summary().pre_keys);
    assert_eq!(summary.app_state_keys, from_value.summary().app_state_keys);
    assert_eq!(summary.not_carried.get("session"), Some(&2_000));
    assert_eq!(summary.not_carried.get("sender-key"), Some(&3));
    assert_eq!(summary.not_carried.get("app-state-sync-version"), Some(&1));
    assert_eq!(from_text.phone_number(), from_value.phone_number());

    // As a JSON string holding the JSON (a text column cast to jsonb), too.
    let doubled = Value::String(session.to_string()).to_string();
    assert_eq!(
        BaileysAuth::from_session_json(&doubled).unwrap().summary(),
        from_value.summary()
    );
    // Text that is not JSON says where, never what.
    let cut = &text[..text.len() / 2];
    let err = BaileysAuth::from_session_json(cut).unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::Malformed);
    assert!(
        err.to_string()
            .starts_with("session_data: not JSON (line 1, column "),
        "{err}"
    );
    for secret in secrets(&session) {
        assert!(!err.to_string().contains(&secret), "{err}");
    }
}

#[test]
fn a_damaged_folder_is_refused_with_the_file_named() {
    let dir = std::env::temp_dir().join(format!("wa-pairing-baileys-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let err = BaileysAuth::from_dir(&dir).unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::Io);
    assert!(err.to_string().contains("creds.json"), "{err}");
    for entry in std::fs::read_dir(fixtures().join("auth")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    let pre_key = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("pre-key-"))
        .expect("a pre-key file");
    std::fs::write(dir.join(&pre_key), "{\"private\": {\"type\": \"Buf").unwrap();
    let err = BaileysAuth::from_dir(&dir).unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::Malformed);
    assert!(err.to_string().contains(&pre_key), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A copy of the fixture folder in a fresh temporary folder.
fn fixture_copy() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("wa-pairing-baileys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    for entry in std::fs::read_dir(fixtures().join("auth")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), dir.join(entry.file_name())).unwrap();
    }
    dir
}

/// `BaileysAuth::from_dir` on another thread, failing the test when it has not returned
/// within 30 seconds (a FIFO opened for reading blocks until a writer comes: forever).
fn from_dir_within_deadline(dir: &Path) -> Result<BaileysAuth, ImportError> {
    let (tx, rx) = std::sync::mpsc::channel();
    let folder = dir.to_owned();
    std::thread::spawn(move || {
        let _ = tx.send(BaileysAuth::from_dir(folder));
    });
    rx.recv_timeout(Duration::from_secs(30))
        .expect("from_dir returned within 30 s: it must never open a FIFO")
}

fn mkfifo(path: &Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo {}", path.display());
}

#[test]
fn a_fifo_named_like_a_baileys_file_is_refused_without_blocking() {
    for name in [
        "creds.json",
        "pre-key-999.json",
        "app-state-sync-key-AAAAAA.json",
        "session-6281234567890.0.json",
        "notes.json",
    ] {
        let dir = fixture_copy();
        let _ = std::fs::remove_file(dir.join(name));
        mkfifo(&dir.join(name));
        let err = from_dir_within_deadline(&dir).unwrap_err();
        assert_eq!(err.kind(), ImportErrorKind::Io, "{name}: {err}");
        let text = err.to_string();
        assert!(
            text.starts_with(&format!(
                "{name} is a FIFO (named pipe), not a regular file"
            )),
            "{text}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[cfg(unix)]
#[test]
fn a_symlink_is_followed_only_to_a_regular_file() {
    use std::os::unix::fs::symlink;

    // To a device: refused before anything is read (reading /dev/zero never ends).
    for name in ["creds.json", "pre-key-999.json", "sender-key-x.json"] {
        let dir = fixture_copy();
        let _ = std::fs::remove_file(dir.join(name));
        symlink("/dev/zero", dir.join(name)).unwrap();
        let err = from_dir_within_deadline(&dir).unwrap_err();
        assert_eq!(err.kind(), ImportErrorKind::Io, "{name}: {err}");
        assert!(
            err.to_string()
                .starts_with(&format!("{name} is a device, not a regular file")),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    // A directory named like a key file, and a symlink to nothing.
    let dir = fixture_copy();
    std::fs::create_dir(dir.join("pre-key-998.json")).unwrap();
    let err = from_dir_within_deadline(&dir).unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::Io);
    assert!(
        err.to_string()
            .starts_with("pre-key-998.json is a directory, not a regular file"),
        "{err}"
    );
    std::fs::remove_dir(dir.join("pre-key-998.json")).unwrap();
    symlink(dir.join("gone"), dir.join("pre-key-997.json")).unwrap();
    let err = from_dir_within_deadline(&dir).unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::Io);
    assert!(
        err.to_string().starts_with("reading pre-key-997.json: "),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    // To regular files (as Kubernetes mounts a Secret): read as if they were here.
    let real = fixture_copy();
    let linked = std::env::temp_dir().join(format!("wa-pairing-baileys-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&linked).unwrap();
    for entry in std::fs::read_dir(&real).unwrap() {
        let entry = entry.unwrap();
        symlink(entry.path(), linked.join(entry.file_name())).unwrap();
    }
    let via_links = from_dir_within_deadline(&linked).expect("symlinks to regular files are read");
    let direct = BaileysAuth::from_dir(fixtures().join("auth")).unwrap();
    assert_eq!(via_links.summary(), direct.summary());
    let _ = std::fs::remove_dir_all(&real);
    let _ = std::fs::remove_dir_all(&linked);
}

#[test]
fn files_larger_than_baileys_writes_are_refused_with_their_size() {
    // Sparse files: their size is what counts, and nothing of them is read.
    let sized = |path: &Path, len: u64| {
        std::fs::File::create(path).unwrap().set_len(len).unwrap();
    };
    let dir = fixture_copy();
    sized(&dir.join("creds.json"), 3 << 30);
    let err = from_dir_within_deadline(&dir).unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::TooLarge, "{err}");
    assert!(
        err.to_string().starts_with(
            "creds.json is 3 GiB, more than the 1 MiB a Baileys creds file can be: is this the right folder?"
        ),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);

    let dir = fixture_copy();
    sized(&dir.join("pre-key-5.json"), MAX_KEY_FILE_BYTES + 1);
    let err = from_dir_within_deadline(&dir).unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::TooLarge, "{err}");
    assert!(
        err.to_string().starts_with(
            "pre-key-5.json is 1.0 MiB, more than the 1 MiB a Baileys key file can be"
        ),
        "{err}"
    );
    // A key file that is not carried is never read, whatever its size.
    std::fs::remove_file(dir.join("pre-key-5.json")).unwrap();
    sized(&dir.join("session-6281234567890.0.json"), 5 << 30);
    let auth = from_dir_within_deadline(&dir).expect("a session file is only counted");
    let before = BaileysAuth::from_dir(fixtures().join("auth")).unwrap();
    let sessions = |a: &BaileysAuth| a.summary().not_carried.get("session").copied();
    assert_eq!(sessions(&auth), Some(sessions(&before).unwrap_or(0) + 1));
    let _ = std::fs::remove_dir_all(&dir);

    // Files each within their cap, too many together.
    let dir = fixture_copy();
    let files = MAX_DIR_BYTES / MAX_KEY_FILE_BYTES + 1;
    for id in 0..files {
        sized(
            &dir.join(format!("pre-key-{}.json", 1000 + id)),
            MAX_KEY_FILE_BYTES,
        );
    }
    let err = from_dir_within_deadline(&dir).unwrap_err();
    assert_eq!(err.kind(), ImportErrorKind::TooLarge, "{err}");
    assert!(
        err.to_string()
            .contains("more than the 64 MiB a Baileys folder can hold"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
