//! The alerting rules (deploy/prometheus/wa-pairing.rules.yml) name only metrics the service
//! exports: each `wa_pairing_...` name in them (less a histogram's `_bucket`, `_count` or
//! `_sum`) is in the one list of metrics, the runner's `metrics` module, with the kind the
//! suffix implies. `promtool check rules` (CI) checks the file's syntax and expressions;
//! this checks the names promtool cannot know.

use std::collections::BTreeMap;
use std::path::Path;

fn read(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

/// Name to kind, from the table of `crates/runner/src/metrics.rs`.
fn exported() -> BTreeMap<String, String> {
    read("crates/runner/src/metrics.rs")
        .lines()
        .filter_map(|l| {
            let row = l.strip_prefix("//! | `wa_pairing_")?;
            let (name, rest) = row.split_once('`')?;
            let kind = rest.trim_start_matches(" |").split('|').next()?.trim();
            Some((format!("wa_pairing_{name}"), kind.to_owned()))
        })
        .collect()
}

fn names_in(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = text;
    while let Some(at) = rest.find("wa_pairing_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.push(tail[..end].to_owned());
        rest = &tail[end..];
    }
    names
}

#[test]
fn every_metric_the_rules_name_is_exported() {
    let exported = exported();
    assert!(
        exported.len() >= 15 && exported.contains_key("wa_pairing_leases_lost_total"),
        "the runner's table: {exported:?}"
    );
    let rules = read("deploy/prometheus/wa-pairing.rules.yml");
    let used = names_in(&rules);
    assert!(used.len() >= 10, "{used:?}");
    for name in used {
        let (base, histogram_part) = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s).map(|b| (b.to_owned(), true)))
            .unwrap_or((name.clone(), false));
        let kind = exported
            .get(&base)
            .unwrap_or_else(|| panic!("{name}: the service exports no {base}"));
        if histogram_part {
            assert_eq!(kind, "histogram", "{name}");
        } else {
            assert_ne!(
                kind, "histogram",
                "{name}: a histogram has only _bucket, _count, _sum"
            );
        }
    }
}
