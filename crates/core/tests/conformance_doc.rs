//! docs/conformance.md covers every checklist id the code cites, and every test it names exists.

#![allow(clippy::expect_used)] // a failed expectation is a failed test

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Id prefixes of the checklist (RFC 8461 / RFC 8460 / Postfix sections).
const PREFIXES: &[&str] = &[
    "TXT", "DNS", "DOM", "FETCH", "PHC", "POL", "MXM", "CACHE", "SEC", "DANE", "TRT", "JSON",
    "PFX", "RPT", "RCV", "DLV", "MAIL", "HTTP", "RETRY", "MTA", "SND", "MODE", "OPS", "REP",
];

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let name = entry.file_name();
        if path.is_dir() && name != "target" && name != "corpus" && name != "artifacts" {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// `PREFIX-NN` or `PREFIX-NNa` at `s[i..]`, with a word boundary before it.
fn id_at(s: &str, i: usize) -> Option<String> {
    let bytes = s.as_bytes();
    if i > 0 && (bytes[i - 1].is_ascii_alphanumeric() || bytes[i - 1] == b'_') {
        return None;
    }
    for p in PREFIXES {
        let rest = &s[i..];
        let Some(after) = rest.strip_prefix(p) else {
            continue;
        };
        let after = after.as_bytes();
        if after.len() >= 3
            && after[0] == b'-'
            && after[1].is_ascii_digit()
            && after[2].is_ascii_digit()
        {
            let mut end = 3;
            if after.get(3).is_some_and(|b| b.is_ascii_lowercase())
                && !after.get(4).is_some_and(|b| b.is_ascii_alphanumeric())
            {
                end = 4;
            }
            if after.get(end).is_some_and(|b| b.is_ascii_alphanumeric()) {
                return None;
            }
            return Some(format!("{p}-{}", String::from_utf8_lossy(&after[1..end])));
        }
    }
    None
}

/// Ids in `text`: `TXT-04` as written, and `fn txt_04_…` / `fn pfx_02_03_…` test names.
fn cited(text: &str, out: &mut BTreeSet<String>) {
    for (i, _) in text.char_indices() {
        if let Some(id) = id_at(text, i) {
            out.insert(id);
        }
    }
    for line in text.lines() {
        let Some(name) = line.trim_start().split("fn ").nth(1) else {
            continue;
        };
        let mut parts = name.split('_');
        let Some(prefix) = parts.next().map(str::to_ascii_uppercase) else {
            continue;
        };
        if !PREFIXES.contains(&prefix.as_str()) {
            continue;
        }
        for part in parts {
            let digits = part.bytes().take_while(u8::is_ascii_digit).count();
            let suffix = &part[digits..];
            if digits != 2 || suffix.len() > 1 {
                break;
            }
            out.insert(format!("{prefix}-{part}"));
        }
    }
}

#[test]
fn every_cited_id_is_documented_and_every_named_test_exists() {
    let root = root();
    let doc =
        std::fs::read_to_string(root.join("docs/conformance.md")).expect("docs/conformance.md");
    let mut files = Vec::new();
    rust_files(&root.join("crates"), &mut files);
    rust_files(&root.join("fuzz"), &mut files);
    assert!(files.len() > 30, "found only {} source files", files.len());
    let mut ids = BTreeSet::new();
    for f in &files {
        cited(&std::fs::read_to_string(f).expect("source"), &mut ids);
    }
    assert!(
        ids.len() > 60,
        "found only {} cited ids: {ids:?}",
        ids.len()
    );

    let mut documented = BTreeSet::new();
    let mut problems = Vec::new();
    for row in doc.lines().filter(|l| l.starts_with("| ")) {
        let cells: Vec<&str> = row.split(" | ").collect();
        let id = cells[0].trim_start_matches("| ").trim();
        if id == "id" || id.starts_with("---") {
            continue;
        }
        if !documented.insert(id.to_string()) {
            problems.push(format!("{id}: documented twice"));
        }
        let Some(pinned) = cells.last().map(|c| c.trim_end_matches(" |").trim()) else {
            continue;
        };
        for test in pinned.split(", ") {
            let Some((file, name)) = test.split_once("::") else {
                problems.push(format!("{id}: `{test}` is not file::test"));
                continue;
            };
            match std::fs::read_to_string(root.join(file)) {
                Ok(text) if text.contains(&format!("fn {name}(")) => {}
                Ok(_) => problems.push(format!("{id}: no `fn {name}` in {file}")),
                Err(e) => problems.push(format!("{id}: {file}: {e}")),
            }
        }
    }
    for id in &ids {
        if !documented.contains(id) {
            problems.push(format!(
                "{id}: cited in the code but not in docs/conformance.md"
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_id_scanner_finds_ids_and_test_names() {
    let mut ids = BTreeSet::new();
    cited(
        "// (TXT-04a, PFX-33) UTS-46 XTXT-01\nfn pfx_02_03_keys() {}\nfn pol_04a_dup() {}\nfn helper_01() {}",
        &mut ids,
    );
    let want: BTreeSet<String> = ["TXT-04a", "PFX-33", "PFX-02", "PFX-03", "POL-04a"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(ids, want);
}
