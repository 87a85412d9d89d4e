//! Example values left in a deployment: `deploy/kubernetes`' ConfigMap and Secret example
//! mark what to replace with `CHANGE-ME` and `<...>` (`<password>`, `<project-ref>`). A
//! setting that still holds one is refused at start, by name, rather than tried against a
//! host that does not exist. The value is never repeated: it may be a secret.

use crate::settings::env;

/// Every setting a placeholder could be left in.
const CHECKED: &[&str] = &[
    env::DATABASE_URL,
    env::PGSSLROOTCERT,
    env::SUPABASE_URL,
    env::SUPABASE_SERVICE_ROLE_KEY,
    env::REDIS_URL,
    env::REDIS_ROOT_CERT,
    env::AUTH_KEYS,
    env::INSTANCE_ID,
    env::HTTP_ADDR,
    env::SUPABASE_JWT_SECRET,
    env::JWKS_URL,
    env::JWT_ISSUER,
    env::ALLOWED_ORIGINS,
    wa_pairing_whatsapp::SERVER_URL_ENV,
    wa_pairing_whatsapp::PUSH_NAME_ENV,
];

/// One problem per setting that still holds an example's placeholder.
pub(crate) fn found(var: impl Fn(&str) -> Option<String>) -> Vec<String> {
    CHECKED
        .iter()
        .filter_map(|name| {
            let value = var(name)?;
            let what = if value.to_ascii_lowercase().contains("change-me") {
                "CHANGE-ME"
            } else if has_angle_placeholder(&value) {
                "<...>"
            } else {
                return None;
            };
            Some(format!(
                "{name} still holds the example's placeholder {what}: replace it with this deployment's real value (see deploy/kubernetes and crates/service/README.md)"
            ))
        })
        .collect()
}

/// `<` then words (letters, digits, spaces, `-`, `_`, `'`, `.`) then `>`, as in
/// `<project-ref>` or `<the project's JWT secret>`.
fn has_angle_placeholder(value: &str) -> bool {
    value.match_indices('<').any(|(at, _)| {
        let rest = &value[at + 1..];
        rest.find('>').is_some_and(|end| {
            let inner = &rest[..end];
            inner.len() >= 2
                && inner.starts_with(|c: char| c.is_ascii_alphabetic())
                && inner
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | '-' | '_' | '\'' | '.'))
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Settings;
    use std::collections::HashMap;

    const KEYS: &str = "1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

    #[test]
    fn angle_placeholders() {
        for yes in [
            "<password>",
            "https://<project-ref>.supabase.co",
            "1:<base64 of 32 random bytes>",
            "<the project's JWT secret>",
        ] {
            assert!(has_angle_placeholder(yes), "{yes}");
        }
        for no in [
            "",
            "<",
            "a<b",
            "x<>y",
            "<1>",
            "p@ss<w0rd!>",
            "x>y<z",
            "postgres://u:p@db:5432/app",
        ] {
            assert!(!has_angle_placeholder(no), "{no}");
        }
    }

    /// The manifests' examples, as a deployment that forgot to replace them would start.
    #[test]
    fn the_examples_placeholders_are_refused_by_name_without_their_values() {
        let vars: HashMap<&str, &str> = HashMap::from([
            (
                "DATABASE_URL",
                "postgres://postgres:<password>@db.<project-ref>.supabase.co:5432/postgres?sslmode=verify-full",
            ),
            ("WA_PAIRING_AUTH_KEYS", "1:<base64 of 32 random bytes>"),
            ("WA_PAIRING_HTTP_ADDR", "0.0.0.0:3000"),
            ("SUPABASE_URL", "https://CHANGE-ME.supabase.co"),
            ("SUPABASE_JWT_SECRET", "<the project's JWT secret>"),
            ("WA_PAIRING_ALLOWED_ORIGINS", "https://change-me.example"),
            ("REDIS_URL", "rediss://default:<password>@<host>:6379"),
        ]);
        let e = Settings::from_lookup(|n| vars.get(n).map(|v| (*v).to_owned())).unwrap_err();
        let text = e.to_string();
        for name in [
            "DATABASE_URL still holds the example's placeholder <...>",
            "WA_PAIRING_AUTH_KEYS still holds",
            "SUPABASE_URL still holds the example's placeholder CHANGE-ME",
            "SUPABASE_JWT_SECRET still holds",
            "WA_PAIRING_ALLOWED_ORIGINS still holds the example's placeholder CHANGE-ME",
            "REDIS_URL still holds",
        ] {
            assert!(text.contains(name), "{name} missing from:\n{text}");
        }
        assert!(!text.contains("project-ref>"), "{text}");
        assert!(!text.contains("JWT secret>"), "{text}");

        // Real values pass.
        let real: HashMap<&str, &str> = HashMap::from([
            (
                "DATABASE_URL",
                "postgres://svc:pw@db.abcd.supabase.co:5432/postgres",
            ),
            ("WA_PAIRING_AUTH_KEYS", KEYS),
            ("WA_PAIRING_HTTP_ADDR", "0.0.0.0:3000"),
            ("SUPABASE_URL", "https://abcd.supabase.co"),
            ("WA_PAIRING_ALLOWED_ORIGINS", "https://app.shop.co.id"),
        ]);
        assert!(Settings::from_lookup(|n| real.get(n).map(|v| (*v).to_owned())).is_ok());
    }
}
