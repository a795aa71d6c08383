//! The proxy crate's modules import each other one way: from the binary's commands down to the
//! forwarding path and, below it, the sinks and counters. This test reads the sources and fails
//! on any `crate::module` path that points up or sideways, and on a module that is not placed in
//! a layer, so an import circle cannot creep back in.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Top-level modules by layer, lowest first. A module may use modules of lower layers only.
const LAYERS: &[&[&str]] = &[
    // Leaves: the sink contract, errors, logging, the ticker, buffers, the open file limit.
    &["tls"],
    &["sink", "error", "logging", "every", "buffer", "fds"],
    // Counters and the built-in sink.
    &["stats"],
    // The cluster's own answers about groups (read-only admin questions).
    &["lookup"],
    // The live picture and the detectors.
    &["observer"],
    // Throttle policies: which connections each holds back (matching reads the observer).
    &["throttle"],
    // Connection guards: admission before a connection reaches the broker.
    &["guard"],
    // The tap glue: a connection's tap and its batches to the sinks.
    &["tap"],
    // The forwarding path.
    &["duplex"],
    &["connection"],
    // The accept loop; telemetry (a sink and readers of the observer); the policy file's
    // reloader.
    &["server", "telemetry", "reload"],
    // The admin API over all of it, and the live view over the admin API.
    &["admin"],
    &["top"],
    // From a config to a serving process, then the command line.
    &["app"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every `crate::name` in `text`, skipping comments.
fn crate_paths(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let name: String = after
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.push(name);
            rest = after;
        }
    }
    found
}

#[test]
fn modules_import_downwards_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut wrong: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let top = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        if top == "lib" || top == "main" {
            continue; // the crate root declares and re-exports every module
        }
        let Some(mine) = layer_of(&top) else {
            wrong
                .entry(rel.display().to_string())
                .or_default()
                .push(format!("module `{top}` has no layer in LAYERS"));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for name in crate_paths(&text) {
            if name == top {
                continue;
            }
            match layer_of(&name) {
                Some(theirs) if theirs < mine => {}
                Some(_) => wrong
                    .entry(rel.display().to_string())
                    .or_default()
                    .push(format!(
                        "`{top}` uses `crate::{name}` (same or higher layer)"
                    )),
                None => wrong
                    .entry(rel.display().to_string())
                    .or_default()
                    .push(format!(
                        "`crate::{name}` is not a module with a layer (use the module's own path)"
                    )),
            }
        }
    }
    assert!(wrong.is_empty(), "imports against the layers: {wrong:#?}");
}

#[test]
fn the_check_sees_imports() {
    assert_eq!(
        crate_paths("use crate::stats::ProxyStats; // crate::observer\nx(crate::tap::sweep)"),
        ["stats", "tap"]
    );
}
