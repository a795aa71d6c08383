//! The log's field names are an interface: operators query them in their log stores. This test
//! keeps the README's "Log fields" table and the code in step — every field a `tracing` event
//! or span in `proxy/src` records is documented there, and every documented field is still
//! recorded somewhere — so renaming a field (or adding one) fails here until the table says so.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const MACROS: &[&str] = &[
    "trace",
    "debug",
    "info",
    "warn",
    "error",
    "trace_span",
    "debug_span",
    "info_span",
    "warn_span",
    "error_span",
];

#[test]
fn every_log_field_is_documented_and_every_documented_field_is_logged() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut used: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in rust_files(&root.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        let shown = file.strip_prefix(root).unwrap().display().to_string();
        for field in fields_logged(production_part(&text)) {
            used.entry(field).or_default().insert(shown.clone());
        }
    }
    assert!(
        used.contains_key("client.addr") && used.contains_key("error"),
        "the scan found no fields: {used:?}"
    );
    let readme = std::fs::read_to_string(root.join("../README.md")).unwrap();
    let documented = documented_fields(&readme);
    let missing: Vec<String> = used
        .iter()
        .filter(|(f, _)| !documented.contains(*f))
        .map(|(f, files)| format!("{f} (in {})", Vec::from_iter(files.clone()).join(", ")))
        .collect();
    let stale: Vec<&String> = documented
        .iter()
        .filter(|f| !used.contains_key(*f))
        .collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "README.md's \"Log fields\" table is out of step with the code.\n\
         logged but not documented: {missing:#?}\ndocumented but no longer logged: {stale:#?}"
    );
}

#[test]
fn the_scanner_reads_fields_in_every_form_the_code_uses() {
    let code = r#"
        tracing::info!(listen = %addr, token = config.token.is_some(), "admin API listening");
        debug!(error = %err, side = %err.side(), group, "failed: {}", x);
        tracing::warn!(
            sluice.reason = reason.as_str(),
            client.id = id.map(display), // a comment, with = and "quotes"
            ?state, %peer.addr,
            "refused {n}", n = 3
        );
        tracing::info_span!("conn", client.addr = %peer, broker.addr = %up);
        tracing::info!(target: "x", parent: None, url = "http://a/(b)", "text (with) parens");
        assert!(a == b, "not a log line {x}", x = 1);
    "#;
    let got: Vec<String> = fields_logged(code).collect();
    assert_eq!(
        got,
        [
            "listen",
            "token",
            "error",
            "side",
            "group",
            "sluice.reason",
            "client.id",
            "state",
            "peer.addr",
            "client.addr",
            "broker.addr",
            "url",
        ]
    );
}

/// The file without its `#[cfg(test)] mod tests` (test-only log lines are not an interface).
fn production_part(text: &str) -> &str {
    match text.find("#[cfg(test)]\nmod tests {") {
        Some(at) => &text[..at],
        None => text,
    }
}

fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_name().unwrap().to_string_lossy();
            if !(name == "tests.rs" || name.ends_with("_tests.rs")) {
                out.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Field names recorded by the `tracing` macro calls in `code`, in order.
fn fields_logged(code: &str) -> impl Iterator<Item = String> + '_ {
    let mut out = Vec::new();
    let bytes = code.as_bytes();
    let mut at = 0;
    while let Some(found) = code[at..].find("!(") {
        let bang = at + found;
        at = bang + 2;
        let start = code[..bang]
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |i| i + 1);
        let name = &code[start..bang];
        // `tracing::x!` or a bare `x!` (imported), never `other::x!`.
        let qualified = code[..start].ends_with("tracing::");
        let bare = !code[..start].ends_with("::");
        if !MACROS.contains(&name) || !(qualified || bare) {
            continue;
        }
        let (args, end) = macro_args(bytes, at);
        at = end;
        let is_span = name.ends_with("_span");
        let mut seen_name = false;
        for arg in args {
            if arg.starts_with('"') {
                // A span's first literal is its name; an event's literal is its message, and
                // what follows are format arguments.
                if is_span && !seen_name {
                    seen_name = true;
                    continue;
                }
                break;
            }
            if ["target:", "parent:", "name:"]
                .iter()
                .any(|p| arg.starts_with(p))
            {
                continue;
            }
            let arg = arg.trim_start_matches(['%', '?']).trim_start();
            let field: String = arg
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_' || *c == '.')
                .collect();
            let rest = arg[field.len()..].trim_start();
            let field = field.trim_end_matches('.').to_owned();
            if !field.is_empty() && (rest.is_empty() || rest.starts_with('=')) {
                out.push(field);
            }
        }
    }
    out.into_iter()
}

/// The top-level arguments of the macro call whose `(` is just before `from`, and where the call
/// ends. Strings, comments and nested brackets are skipped over.
fn macro_args(code: &[u8], from: usize) -> (Vec<String>, usize) {
    let (mut args, mut current, mut depth, mut i) = (Vec::new(), Vec::new(), 0usize, from);
    while i < code.len() {
        let c = code[i];
        match c {
            b'"' => {
                let start = i;
                i += 1;
                while i < code.len() && code[i] != b'"' {
                    i += if code[i] == b'\\' { 2 } else { 1 };
                }
                current.extend_from_slice(&code[start..=i.min(code.len() - 1)]);
            }
            b'/' if code.get(i + 1) == Some(&b'/') => {
                while i < code.len() && code[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'(' | b'[' | b'{' => {
                depth += 1;
                current.push(c);
            }
            b')' | b']' | b'}' if depth == 0 => {
                args.push(String::from_utf8_lossy(&current).trim().to_owned());
                return (args.into_iter().filter(|a| !a.is_empty()).collect(), i + 1);
            }
            b')' | b']' | b'}' => {
                depth -= 1;
                current.push(c);
            }
            b',' if depth == 0 => {
                args.push(String::from_utf8_lossy(&current).trim().to_owned());
                current.clear();
            }
            _ => current.push(c),
        }
        i += 1;
    }
    (args, i)
}

/// The names in the first column of the table under the README's "Log fields" heading.
fn documented_fields(readme: &str) -> BTreeSet<String> {
    let section = readme
        .split("\n### Log fields")
        .nth(1)
        .expect("README.md has a \"### Log fields\" section");
    let section = section.split("\n#").next().unwrap();
    let mut names = BTreeSet::new();
    for line in section.lines().filter(|l| l.starts_with("| `")) {
        let first = line.split('|').nth(1).unwrap();
        for part in first.split('`').skip(1).step_by(2) {
            names.insert(part.to_owned());
        }
    }
    assert!(!names.is_empty(), "no table rows under \"### Log fields\"");
    names
}
