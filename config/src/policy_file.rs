//! The throttle policy file (`throttle.policy_file`): TOML with one `[[policy]]` table per
//! policy, parsed and validated into [`PolicySpec`]s. Every problem of every policy is reported,
//! each named `policy[<name>].<key>` with the file as its origin; the same rules check a policy
//! added through the admin API ([`policy`]).
//!
//! ```toml
//! [[policy]]
//! name = "incident-loop"               # required, unique
//! group = "orders-*"                   # glob (* and ?)
//! client_id = "legacy-consumer"        # glob
//! host = "10.0.0.0/8"                  # IP or CIDR
//! principal = "User:alice"             # glob over the authenticated principal (or User:<it>)
//! finding = "fetch_without_commit"     # a finding kind
//! fetch_bytes_per_sec = "256KiB"       # byte size or integer
//! requests_per_sec = 50
//! mode = "enforce"                     # or "dry-run"
//! expires = "2026-12-31T00:00:00Z"     # RFC 3339, UTC
//! ```

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use crate::error::{ConfigError, ConfigErrors, Origin};
use crate::policy::{Action, Cidr, Glob, Match, Mode, PolicySpec};
use crate::value::{self, Raw};

/// Finding kinds a policy may name in `finding` (the detectors' kinds).
pub const FINDING_KINDS: &[&str] = &[
    "fetch_loop",
    "fetch_without_commit",
    "egress_amplification",
    "connection_churn",
    "rebalance_storm",
];

/// Keys of one policy, in the order they are documented.
pub const POLICY_KEYS: &[&str] = &[
    "name",
    "group",
    "client_id",
    "host",
    "principal",
    "finding",
    "fetch_bytes_per_sec",
    "requests_per_sec",
    "mode",
    "expires",
];

/// Largest policy file read (a policy takes a few hundred bytes).
pub const MAX_FILE_BYTES: u64 = 1 << 20;

/// One bad key of one policy: the key and what is wrong with it.
pub type KeyError = (String, String);

/// Reads and validates the policy file at `path`; every problem is reported.
pub fn load(path: &Path) -> Result<Vec<PolicySpec>, ConfigErrors> {
    match read(path) {
        Ok(text) => parse(&text, path, SystemTime::now()),
        Err(message) => Err(ConfigErrors(vec![ConfigError {
            path: "throttle.policy_file".to_owned(),
            origin: Origin::File(path.to_owned()),
            message,
        }])),
    }
}

/// The file's text, refusing a file over [`MAX_FILE_BYTES`].
pub fn read(path: &Path) -> Result<String, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut text = String::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read: {e}"))?;
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(format!("larger than {MAX_FILE_BYTES} bytes"));
    }
    Ok(text)
}

/// Parses a policy file's text (`path` names it in errors); `now` judges expiries.
pub fn parse(text: &str, path: &Path, now: SystemTime) -> Result<Vec<PolicySpec>, ConfigErrors> {
    let origin = Origin::File(path.to_owned());
    let err = |path: String, message: String| ConfigError {
        path,
        origin: origin.clone(),
        message,
    };
    let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
        ConfigErrors(vec![err(
            "policy file".to_owned(),
            format!("not valid TOML: {}", e.to_string().trim()),
        )])
    })?;
    let mut errors = Vec::new();
    let mut tables = Vec::new();
    for (key, v) in &table {
        match (key.as_str(), v) {
            ("policy", toml::Value::Array(items)) => {
                for (i, item) in items.iter().enumerate() {
                    match item {
                        toml::Value::Table(t) => tables.push((i, t)),
                        other => errors.push(err(
                            format!("policy[#{}]", i + 1),
                            format!("must be a table, found {}", other.type_str()),
                        )),
                    }
                }
            }
            ("policy", _) => errors.push(err(
                "policy".to_owned(),
                "must be an array of tables ([[policy]])".to_owned(),
            )),
            (other, _) => errors.push(err(
                other.to_owned(),
                "unknown key (the file holds [[policy]] tables only)".to_owned(),
            )),
        }
    }
    let mut good: Vec<PolicySpec> = Vec::new();
    // Every policy's valid match criteria, bad policies' too: a conflict is reported with the
    // rest of what is wrong.
    let mut matches: Vec<(String, Match)> = Vec::new();
    let mut names: BTreeMap<String, usize> = BTreeMap::new();
    for (i, t) in tables {
        let label = match t.get("name") {
            Some(toml::Value::String(n)) if !n.trim().is_empty() => n.trim().to_owned(),
            _ => format!("#{}", i + 1),
        };
        if let Some(first) = names.insert(label.clone(), i) {
            if !label.starts_with('#') {
                errors.push(err(
                    format!("policy[{label}].name"),
                    format!(
                        "duplicate name: policies #{} and #{} are both `{label}`",
                        first + 1,
                        i + 1
                    ),
                ));
            }
        }
        let (matcher, spec) = checked(t, now);
        if let Some(m) = matcher {
            if let Some((same, _)) = matches.iter().find(|(_, other)| *other == m) {
                errors.push(err(
                    format!("policy[{label}].match"),
                    format!(
                        "conflicting matches: the same match criteria as policy `{same}` \
                         (merge them, or make one narrower)"
                    ),
                ));
            }
            matches.push((label.clone(), m));
        }
        match spec {
            Ok(spec) => good.push(spec),
            Err(bad) => {
                for (key, message) in bad {
                    errors.push(err(format!("policy[{label}].{key}"), message));
                }
            }
        }
    }
    if errors.is_empty() {
        Ok(good)
    } else {
        Err(ConfigErrors(errors))
    }
}

/// Validates one policy's table (the keys of [`POLICY_KEYS`]). Every bad key is returned.
pub fn policy(t: &toml::Table, now: SystemTime) -> Result<PolicySpec, Vec<KeyError>> {
    checked(t, now).1
}

/// The policy's match criteria when they are valid (whatever else is wrong), and the policy
/// or every bad key.
fn checked(t: &toml::Table, now: SystemTime) -> (Option<Match>, Result<PolicySpec, Vec<KeyError>>) {
    let mut errors: Vec<KeyError> = Vec::new();
    let mut bad = |key: &str, message: String| errors.push((key.to_owned(), message));
    for key in t.keys() {
        if !POLICY_KEYS.contains(&key.as_str()) {
            let hint = POLICY_KEYS
                .iter()
                .find(|k| close(k, key))
                .map(|k| format!(" (did you mean `{k}`?)"))
                .unwrap_or_default();
            bad(key, format!("unknown key{hint}"));
        }
    }
    let text = |key: &str| -> Result<Option<String>, String> {
        match t.get(key) {
            None => Ok(None),
            Some(toml::Value::String(s)) if s.trim().is_empty() => {
                Err("must not be empty (leave the key out instead)".to_owned())
            }
            Some(toml::Value::String(s)) => Ok(Some(s.trim().to_owned())),
            Some(other) => Err(format!(
                "expected a string, found {} `{other}`",
                other.type_str()
            )),
        }
    };
    let mut get = |key: &str| {
        text(key).unwrap_or_else(|m| {
            bad(key, m);
            None
        })
    };
    let name = get("name");
    let group = get("group").map(Glob);
    let client_id = get("client_id").map(Glob);
    let host_text = get("host");
    let principal = get("principal").map(Glob);
    let finding = get("finding");
    let mode_text = get("mode");
    let expires_text = match t.get("expires") {
        Some(toml::Value::Datetime(d)) => Some(d.to_string()),
        _ => get("expires"),
    };
    if name.is_none() && !t.contains_key("name") {
        bad(
            "name",
            "missing: every policy needs a unique name".to_owned(),
        );
    }
    if let Some(n) = &name {
        if n.len() > 128 || n.chars().any(|c| c.is_control()) {
            bad(
                "name",
                "must be at most 128 characters, none of them control characters".to_owned(),
            );
        }
    }
    let host = host_text.and_then(|h| Cidr::parse(&h).map_err(|m| bad("host", m)).ok());
    if let Some(f) = &finding {
        if !FINDING_KINDS.contains(&f.as_str()) {
            bad(
                "finding",
                format!(
                    "`{f}` is not a finding kind (one of {})",
                    FINDING_KINDS.join(", ")
                ),
            );
        }
    }
    let cap = |key: &str, max: u64, size: bool| -> Result<Option<u64>, String> {
        let Some(v) = t.get(key) else { return Ok(None) };
        let raw = Raw::Toml(v.clone());
        let n = if size {
            value::byte_size(&raw)?
        } else {
            value::count(&raw)?
        };
        if n == 0 {
            return Err(
                "a cap of 0 would stop the client: use a positive cap, or leave the key out"
                    .to_owned(),
            );
        }
        if n > max {
            return Err(format!("`{n}` is too large (at most {max})"));
        }
        Ok(Some(n))
    };
    let fetch = cap("fetch_bytes_per_sec", 1 << 40, true).unwrap_or_else(|m| {
        bad("fetch_bytes_per_sec", m);
        None
    });
    let requests = cap("requests_per_sec", u64::from(u32::MAX), false).unwrap_or_else(|m| {
        bad("requests_per_sec", m);
        None
    });
    let mode = match mode_text.as_deref() {
        None | Some("enforce") => Mode::Enforce,
        Some("dry-run") => Mode::DryRun,
        Some(other) => {
            bad(
                "mode",
                format!("`{other}` is not a mode (enforce or dry-run)"),
            );
            Mode::Enforce
        }
    };
    let expires = expires_text.and_then(|e| match humantime::parse_rfc3339(&e) {
        Ok(at) if at <= now => {
            bad("expires", format!("`{e}` is already past"));
            None
        }
        Ok(at) => Some(at),
        Err(_) => {
            bad(
                "expires",
                format!("`{e}` is not an RFC 3339 time in UTC (e.g. 2026-12-31T00:00:00Z)"),
            );
            None
        }
    });
    let matcher = Match {
        group,
        client_id,
        host,
        principal,
        finding,
    };
    let criteria = ["group", "client_id", "host", "principal", "finding"];
    if !criteria.iter().any(|k| t.contains_key(*k)) {
        bad(
            "match",
            format!("no criterion: give at least one of {}", criteria.join(", ")),
        );
    }
    if !t.contains_key("fetch_bytes_per_sec") && !t.contains_key("requests_per_sec") {
        bad(
            "action",
            "no cap: give fetch_bytes_per_sec, requests_per_sec or both".to_owned(),
        );
    }
    let valid_match = (criteria.iter().any(|k| t.contains_key(*k))
        && !errors.iter().any(|(k, _)| criteria.contains(&k.as_str())))
    .then(|| matcher.clone());
    let spec = match name {
        Some(name) if errors.is_empty() => Ok(PolicySpec {
            name,
            matcher,
            action: Action {
                fetch_bytes_per_sec: fetch,
                requests_per_sec: requests.map(|r| r as u32),
                mode,
            },
            expires,
        }),
        _ => Err(errors),
    };
    (valid_match, spec)
}

/// One edit (or a swap of neighbours) apart, for "did you mean" hints.
fn close(a: &str, b: &str) -> bool {
    let (a, b): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()] <= 2
}

/// Policies in the file's own form (`[[policy]]` tables), which [`parse`] reads back.
pub fn to_toml(policies: &[PolicySpec]) -> String {
    let mut out = String::new();
    let q = |s: &str| toml::Value::String(s.to_owned()).to_string();
    for p in policies {
        out.push_str("[[policy]]\n");
        out.push_str(&format!("name = {}\n", q(&p.name)));
        let m = &p.matcher;
        for (key, v) in [
            ("group", m.group.as_ref().map(|g| g.0.clone())),
            ("client_id", m.client_id.as_ref().map(|g| g.0.clone())),
            ("host", m.host.map(|h| h.to_string())),
            ("principal", m.principal.as_ref().map(|g| g.0.clone())),
            ("finding", m.finding.clone()),
        ] {
            if let Some(v) = v {
                out.push_str(&format!("{key} = {}\n", q(&v)));
            }
        }
        if let Some(b) = p.action.fetch_bytes_per_sec {
            out.push_str(&format!("fetch_bytes_per_sec = {b}\n"));
        }
        if let Some(r) = p.action.requests_per_sec {
            out.push_str(&format!("requests_per_sec = {r}\n"));
        }
        let mode = match p.action.mode {
            Mode::Enforce => "enforce",
            Mode::DryRun => "dry-run",
        };
        out.push_str(&format!("mode = {}\n", q(mode)));
        if let Some(at) = p.expires {
            let at = humantime::format_rfc3339_seconds(at).to_string();
            out.push_str(&format!("expires = {}\n", q(&at)));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests;
