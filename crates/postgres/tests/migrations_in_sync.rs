//! The migrations this crate embeds (its own `migrations/` folder, so the published crate
//! carries them) are the ones the Supabase CLI applies from the repository's
//! `supabase/migrations/` (links to the crate's files), byte for byte and in the same order.

use std::path::Path;

#[test]
fn the_crate_and_the_supabase_folder_hold_the_same_migrations() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let supabase = root.join("../../supabase/migrations");
    let mut theirs: Vec<String> = std::fs::read_dir(&supabase)
        .expect("supabase/migrations exists in the repository")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    theirs.sort();
    let ours: Vec<String> = wa_pairing_postgres::MIGRATIONS
        .iter()
        .map(|(version, _)| format!("{version}.sql"))
        .collect();
    assert_eq!(ours, theirs, "the same migrations, in the same order");
    for (version, sql) in wa_pairing_postgres::MIGRATIONS {
        let copy = std::fs::read_to_string(supabase.join(format!("{version}.sql"))).unwrap();
        assert_eq!(
            *sql, copy,
            "{version}: supabase/migrations must link to crates/postgres/migrations/{version}.sql"
        );
    }
}
