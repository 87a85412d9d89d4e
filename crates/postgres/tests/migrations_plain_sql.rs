//! The migrations apply as `supabase db push` applies them: each file of
//! `supabase/migrations/`, in order, as plain SQL in its own transaction (here with
//! `psql -v ON_ERROR_STOP=1 --single-transaction`), on a fresh database with Supabase's
//! roles. And whichever way a database was migrated (plain SQL, this crate's migrator, or one
//! after the other in either order), it ends with the same schema, compared as `pg_dump
//! --schema-only` prints it.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Store as _;
use common::TestDb;
use wa_pairing_store_testkit::{Skip, skip};

/// The migration files as the Supabase CLI finds them, in the order it applies them.
fn supabase_migrations() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../supabase/migrations");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("supabase/migrations exists in the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "the migrations are there: {files:?}");
    files
}

/// Whether a client program of PostgreSQL's is installed.
fn have(program: &str) -> Result<(), Skip> {
    match Command::new(program).arg("--version").output() {
        Ok(o) if o.status.success() => Ok(()),
        _ => Err(Skip::new(format!(
            "{program} is not installed (Debian: apt-get install postgresql-client)"
        ))),
    }
}

/// Applies every file with psql, each in one transaction, stopping at the first error.
fn push(db: &TestDb) {
    for file in supabase_migrations() {
        let out = Command::new("psql")
            .arg(&db.url)
            .args([
                "-X",
                "-q",
                "-v",
                "ON_ERROR_STOP=1",
                "--single-transaction",
                "-f",
            ])
            .arg(&file)
            .output()
            .expect("psql runs");
        assert!(
            out.status.success(),
            "{} does not apply as plain SQL:\n{}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// The schema as `pg_dump --schema-only` prints it, without the per-run random key of its
/// `\restrict` lines.
fn schema(db: &TestDb) -> String {
    let out = Command::new("pg_dump")
        .args(["--schema-only", "--no-comments"])
        .arg(&db.url)
        .output()
        .expect("pg_dump runs");
    assert!(
        out.status.success(),
        "pg_dump: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("UTF-8")
        .lines()
        .filter(|l| !l.starts_with("\\restrict") && !l.starts_with("\\unrestrict"))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn migrate(db: &TestDb) {
    let _ = db.store().await; // migrates
}

/// The first line where two schemas differ, with some context, for the failure message.
fn first_difference(a: &str, b: &str) -> String {
    let (a, b): (Vec<&str>, Vec<&str>) = (a.lines().collect(), b.lines().collect());
    let at = a
        .iter()
        .zip(&b)
        .position(|(x, y)| x != y)
        .unwrap_or(a.len().min(b.len()));
    let from = at.saturating_sub(3);
    format!(
        "line {}:\n  one: {:?}\n  other: {:?}",
        at + 1,
        a.get(from..(at + 3).min(a.len())),
        b.get(from..(at + 3).min(b.len()))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_migration_applies_as_plain_sql_and_every_path_ends_in_one_schema() {
    if let Err(why) = have("psql").and_then(|()| have("pg_dump")) {
        return skip("migrations as plain SQL", &why);
    }
    let mut dbs = Vec::new();
    for _ in 0..4 {
        match common::test_db().await {
            Ok(db) => dbs.push(db),
            Err(why) => return skip("migrations as plain SQL", &why),
        }
    }
    let cleanups: Vec<_> = dbs.iter().map(TestDb::cleanup).collect();
    let [plain, migrator, plain_then_migrator, migrator_then_plain] = &dbs[..] else {
        unreachable!()
    };

    push(plain);
    migrate(migrator).await;
    push(plain_then_migrator);
    migrate(plain_then_migrator).await;
    migrate(migrator_then_plain).await;
    push(migrator_then_plain);

    let expected = schema(migrator);
    assert!(
        expected.contains("CREATE TABLE public.devices")
            && expected.contains("FUNCTION public.wa_auth_seal"),
        "the dump holds the schema"
    );
    for (name, db) in [
        ("plain SQL", plain),
        ("plain SQL, then the migrator", plain_then_migrator),
        ("the migrator, then plain SQL", migrator_then_plain),
    ] {
        let got = schema(db);
        assert!(
            got == expected,
            "{name} ends in another schema than the migrator's: {}",
            first_difference(&got, &expected)
        );
    }
    for cleanup in cleanups {
        cleanup().await;
    }
}
