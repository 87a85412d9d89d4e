//! The original frontend's path with the official client: `tests/supabase-js` (Node,
//! `@supabase/supabase-js` v2, pinned lockfile) signs in as owners and does what the seed's
//! React page did against a Supabase project offline (a PostgREST-compatible server in front
//! of Supabase's roles and our migrations), and what it must not; every refusal carries the
//! HTTP API's error code through `supabase/error-codes.json`, which is checked here against
//! the migrations and the API.
#![allow(missing_docs)]

use std::collections::BTreeMap;
use std::process::Stdio;
use std::time::Duration;

use wa_pairing_http::{ApiError, ErrorCode};
use wa_pairing_sql::{SqlFailure, classify};
use wa_pairing_store_testkit::skip;

/// The table a page reads: error `code` → the HTTP API's code.
fn error_codes() -> BTreeMap<String, String> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../supabase/error-codes.json"
    );
    let text = std::fs::read_to_string(path).expect("supabase/error-codes.json");
    let file: serde_json::Value = serde_json::from_str(&text).expect("valid JSON");
    serde_json::from_value(file["codes"].clone()).expect("`codes`: an object of strings")
}

/// Every SQLSTATE our migrations raise (`errcode = 'XXXXX'`).
fn raised_codes() -> Vec<String> {
    let mut codes: Vec<String> = wa_pairing_postgres::MIGRATIONS
        .iter()
        .flat_map(|(_, sql)| sql.split("errcode = '").skip(1))
        .map(|rest| rest.chars().take_while(|c| *c != '\'').collect())
        .collect();
    codes.sort();
    codes.dedup();
    codes
}

#[test]
fn the_error_codes_map_every_refusal_to_the_apis_code() {
    let table = error_codes();
    let api: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    for (code, api_code) in &table {
        assert!(
            api.contains(&api_code.as_str()),
            "{code} maps to {api_code}, which is not one of the HTTP API's codes {api:?}"
        );
    }
    let raised = raised_codes();
    assert!(
        raised.len() >= 10,
        "the migrations raise our codes: {raised:?}"
    );
    for code in &raised {
        let Some(expected) = table.get(code) else {
            panic!("the migrations raise {code}, which supabase/error-codes.json does not map");
        };
        // What the HTTP API answers when its store is refused with this code. A name or a
        // number the API itself refuses never reaches the store (invalid_name,
        // invalid_phone); one the database refuses alone is the API's invalid_input.
        let via_api = ApiError::from(classify(&SqlFailure {
            code: Some(code),
            message: "refused",
            hint: Some("30"),
        }))
        .code;
        let expected = match expected.as_str() {
            "invalid_name" | "invalid_phone" => "invalid_input",
            other => other,
        };
        if code == "42501" {
            // Privileges and row-level security refuse only an end user's own writes (one
            // owner spending another's pairing starts, a column end users may not write):
            // the API, on the service role, never meets them, and answers one as a fault of
            // its own (internal). A page shows the owner's mistake: invalid_input.
            assert_eq!(via_api, ErrorCode::Internal, "{code}");
            assert_eq!(expected, "invalid_input", "{code}");
            continue;
        }
        assert_eq!(via_api.as_str(), expected, "{code}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_page_writes_through_supabase_js() {
    let package = match wa_pairing_e2e::node_package("supabase-js", "@supabase/supabase-js") {
        Ok(dir) => dir,
        Err(why) => return skip("supabase-js", &why),
    };
    let (db, rest) = match wa_pairing_e2e::supabase_project().await {
        Ok(x) => x,
        Err(why) => return skip("supabase-js", &why),
    };
    let run = tokio::process::Command::new("node")
        .args([
            "--test",
            "--test-force-exit",
            "--test-reporter=tap",
            "test/",
        ])
        .current_dir(&package)
        .env("WA_SUPABASE_URL", rest.url())
        .env("WA_SUPABASE_ANON_KEY", rest.anon_key())
        .env("WA_SUPABASE_SERVICE_KEY", rest.service_role_key())
        .env("WA_SUPABASE_JWT_SECRET", rest.jwt_secret())
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), run)
        .await
        .expect("the supabase-js tests finish within 2 minutes")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let count = |label: &str| -> Option<u32> {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(&format!("# {label} ")))
            .and_then(|n| n.trim().parse().ok())
    };
    assert!(
        out.status.success() && count("fail") == Some(0),
        "the supabase-js tests failed ({}):\n{stdout}\n{stderr}\nserver log:\n{}",
        out.status,
        rest.log()
    );
    assert_eq!(
        count("pass"),
        Some(7),
        "every supabase-js test ran and passed:\n{stdout}"
    );
    drop(rest);
    db.drop().await;
}
