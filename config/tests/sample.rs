//! `deploy/sluice.toml`, the sample config, names every key with its help, environment variable
//! and default, and stays a valid config equal to the defaults once every key is uncommented.
//! Regenerate it after adding a key: `SLUICE_BLESS=1 cargo test -p sluice-config --test sample`.

use std::path::PathBuf;

use sluice_config::keys::KEYS;
use sluice_config::{Config, Loader};

fn sample_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../deploy/sluice.toml")
}

/// The default of `path` as TOML text, from the defaults' own rendering.
fn default_of(defaults: &toml::Table, path: &str) -> String {
    let mut cur = defaults;
    let mut parts = path.split('.').peekable();
    while let Some(p) = parts.next() {
        match (cur.get(p), parts.peek()) {
            (Some(toml::Value::Table(t)), Some(_)) => cur = t,
            (Some(toml::Value::Table(t)), None) if t.is_empty() => return "{}".to_owned(),
            (Some(v), None) => return v.to_string(),
            _ => break,
        }
    }
    "\"\"".to_owned()
}

fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = vec![String::new()];
    for word in text.split_whitespace() {
        let last = lines.last_mut().unwrap();
        if !last.is_empty() && last.len() + 1 + word.len() > width {
            lines.push(word.to_owned());
        } else {
            if !last.is_empty() {
                last.push(' ');
            }
            last.push_str(word);
        }
    }
    lines
}

fn render() -> String {
    let defaults: toml::Table = Config::default().to_toml().parse().unwrap();
    let mut out = String::from(
        "# Sluice: every configuration key, with its default, commented out. Uncomment what you change.\n\
         # Precedence: command-line flags > SLUICE_* environment variables > this file > defaults.\n\
         # Validate with `sluice check-config FILE` (every bad key is named; exit 64). Secrets\n\
         # (admin.token, OTLP header values) are shown redacted by every output.\n\
         # Generated from the key schema (config/src/keys.rs) by config/tests/sample.rs.\n",
    );
    let mut section = String::new();
    for key in KEYS {
        let (sec, name) = key.path.rsplit_once('.').unwrap_or(("", key.path));
        if sec != section {
            out.push_str(&format!("\n[{sec}]\n"));
            section = sec.to_owned();
        }
        out.push('\n');
        for line in wrap(key.help, 96) {
            out.push_str(&format!("# {line}\n"));
        }
        out.push_str(&format!("# env {}\n", key.env));
        out.push_str(&format!("# {name} = {}\n", default_of(&defaults, key.path)));
    }
    out.push_str(LISTENERS);
    out
}

/// `[[listeners]]` is an array of tables, not a key: an example, commented out.
const LISTENERS: &str = "
## More listeners in the same process (mixed ports), each with its own upstream and TLS
## settings; every other key is shared. File only (no environment variable). The top-level
## listener is named \"main\".
## [[listeners]]
## name = \"tls\"                     # shown in logs and views; default: the listen address
## listen = \"0.0.0.0:9094\"
## upstream = \"127.0.0.1:19094\"
## [listeners.tls]                   # the keys of [tls]
## cert = \"/etc/sluice/tls/server.pem\"
## key = \"/etc/sluice/tls/server.key\"
## [listeners.upstream_tls]          # the keys of [upstream_tls]
## ca = \"/etc/sluice/tls/ca.pem\"
";

#[test]
fn the_sample_config_names_every_key_and_matches_the_schema() {
    let want = render();
    let path = sample_path();
    if std::env::var_os("SLUICE_BLESS").is_some() {
        std::fs::write(&path, &want).unwrap();
    }
    let have = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        have == want,
        "deploy/sluice.toml is out of date with the key schema; regenerate it with \
         SLUICE_BLESS=1 cargo test -p sluice-config --test sample"
    );
}

#[test]
fn the_sample_config_uncommented_is_valid_and_is_the_defaults() {
    // Every `# key = value` line uncommented: each key lands in its own section.
    let text: String = render()
        .lines()
        .map(|l| match l.strip_prefix("# ") {
            Some(kv) if kv.contains(" = ") && !kv.starts_with("env ") => format!("{kv}\n"),
            _ => format!("{l}\n"),
        })
        .collect();
    let file = std::env::temp_dir().join(format!("sluice-sample-{}.toml", std::process::id()));
    std::fs::write(&file, &text).unwrap();
    let loaded = Loader::new().file(&file).load();
    let _ = std::fs::remove_file(&file);
    let loaded = loaded.unwrap_or_else(|e| panic!("the uncommented sample is not valid: {e}"));
    assert_eq!(loaded, Loader::new().load().unwrap());
    let table: toml::Table = text.parse().unwrap();
    for key in KEYS {
        let mut cur = &table;
        let mut parts: Vec<&str> = key.path.split('.').collect();
        let last = parts.pop().unwrap();
        for p in parts {
            cur = cur[p].as_table().unwrap();
        }
        assert!(
            cur.contains_key(last),
            "{} missing from the sample",
            key.path
        );
    }
}
