//! The local stack's commands are written once for people and once for CI: the code block
//! of docs/getting-started.md's "Run the whole backend offline" must be, line for line, the
//! commands between the markers of scripts/local-stack.sh, which CI runs. Change both
//! together.

use std::path::Path;

const BEGIN: &str = "# --- the documented commands: begin ---";
const END: &str = "# --- the documented commands: end ---";

fn read(relative: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(relative))
        .unwrap_or_else(|e| panic!("{relative}: {e}"))
        .replace("\r\n", "\n")
}

/// The first ```sh block after the heading that contains `heading`.
fn doc_block(doc: &str, heading: &str) -> Vec<String> {
    let mut lines = doc.lines();
    lines
        .by_ref()
        .find(|l| l.starts_with('#') && l.contains(heading))
        .unwrap_or_else(|| panic!("no heading with {heading:?} in the doc"));
    lines
        .by_ref()
        .find(|l| l.trim_end() == "```sh")
        .expect("a ```sh block in the section");
    lines
        .take_while(|l| l.trim_end() != "```")
        .map(str::to_owned)
        .collect()
}

fn script_block(script: &str) -> Vec<String> {
    let mut lines = script.lines();
    lines
        .by_ref()
        .find(|l| l.trim_end() == BEGIN)
        .expect("the script's begin marker");
    let block: Vec<String> = lines
        .by_ref()
        .take_while(|l| l.trim_end() != END)
        .map(str::to_owned)
        .collect();
    block
}

#[test]
fn the_documented_local_stack_is_the_script_ci_runs() {
    let doc = doc_block(
        &read("docs/getting-started.md"),
        "Run the whole backend offline",
    );
    let script_text = read("scripts/local-stack.sh");
    assert!(script_text.contains(END), "the script's end marker");
    let script = script_block(&script_text);
    assert!(script.len() > 10, "the commands: {script:#?}");
    for (i, (d, s)) in doc.iter().zip(&script).enumerate() {
        assert_eq!(
            d,
            s,
            "line {} of the documented commands differs between docs/getting-started.md and scripts/local-stack.sh",
            i + 1
        );
    }
    assert_eq!(
        doc.len(),
        script.len(),
        "docs/getting-started.md shows {} lines, scripts/local-stack.sh runs {}",
        doc.len(),
        script.len()
    );
    // And CI runs the script.
    let ci = read(".ci/run");
    assert!(
        ci.lines()
            .any(|l| l.trim_start().starts_with("scripts/local-stack.sh")),
        ".ci/run runs scripts/local-stack.sh"
    );
}
