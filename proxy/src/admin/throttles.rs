//! `/api/v1/throttles`: the throttle policies in force and what each holds back (`GET`), a
//! run-time policy added with an expiry (`POST`) or removed (`DELETE /api/v1/throttles/<name>`).
//!
//! A call that changes behaviour needs `admin.token`: without one configured it is refused
//! with 403 whatever it carries; with one, the router's token check answers 401 to a request
//! without the right `Authorization: Bearer` header before it gets here.
//!
//! The body of a `POST`:
//! ```json
//! {"name": "incident-loop", "match": {"group": "orders-*", "client_id": "legacy-*",
//!  "host": "10.0.0.0/8", "principal": "User:alice", "finding": "fetch_loop"},
//!  "fetch_bytes_per_sec": 262144, "requests_per_sec": 10, "mode": "dry-run",
//!  "expires_in": "10m"}
//! ```
//! checked by the policy file's rules ([`sluice_config::policy_file::policy`]); `expires_in`
//! is required, at most [`MAX_EXPIRES_IN`].

use std::time::{Duration, SystemTime};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use sluice_config::policy_file;
use sluice_config::PolicySpec;

use super::AdminState;
use crate::throttle::{AddError, RemoveError, Source};

/// Longest expiry of a run-time policy.
pub const MAX_EXPIRES_IN: Duration = Duration::from_secs(24 * 3600);

/// Most run-time policies in force at once.
pub const MAX_API_POLICIES: usize = 100;

const CRITERIA: &[&str] = &["group", "client_id", "host", "principal", "finding"];

/// `GET /api/v1/throttles`.
pub(super) async fn list(State(s): State<AdminState>) -> Json<Value> {
    Json(json!({ "policies": s.throttle.status() }))
}

fn no_token() -> Response {
    (
        StatusCode::FORBIDDEN,
        "set admin.token to change behaviour\n",
    )
        .into_response()
}

/// `POST /api/v1/throttles`.
pub(super) async fn add(State(s): State<AdminState>, body: Bytes) -> Response {
    if !s.changes_allowed {
        return no_token();
    }
    let spec = match spec_from_json(&body, SystemTime::now()) {
        Ok(spec) => spec,
        Err(errors) => {
            let errors: Vec<Value> = errors
                .into_iter()
                .map(|(field, message)| json!({ "field": field, "message": message }))
                .collect();
            return (StatusCode::BAD_REQUEST, Json(json!({ "errors": errors }))).into_response();
        }
    };
    let api = s
        .throttle
        .status()
        .iter()
        .filter(|p| p.source == Source::Api)
        .count();
    if api >= MAX_API_POLICIES {
        let e = format!("at most {MAX_API_POLICIES} run-time policies: remove one first\n");
        return (StatusCode::CONFLICT, e).into_response();
    }
    let name = spec.name.clone();
    match s.throttle.add(spec) {
        Ok(()) => {
            tracing::info!(policy = %crate::logging::Escaped(&name), "throttle policy added through the admin API");
            let status = s
                .throttle
                .status()
                .into_iter()
                .find(|p| p.spec.name == name);
            (StatusCode::CREATED, Json(json!(status))).into_response()
        }
        Err(AddError::NameTaken) => {
            (StatusCode::CONFLICT, "a policy of that name is in force\n").into_response()
        }
        Err(AddError::Expired) => {
            (StatusCode::BAD_REQUEST, "the policy has already expired\n").into_response()
        }
    }
}

/// `DELETE /api/v1/throttles/<name>`.
pub(super) async fn remove(State(s): State<AdminState>, Path(name): Path<String>) -> Response {
    if !s.changes_allowed {
        return no_token();
    }
    match s.throttle.remove(&name) {
        Ok(()) => {
            tracing::info!(policy = %crate::logging::Escaped(&name), "throttle policy removed through the admin API");
            StatusCode::NO_CONTENT.into_response()
        }
        Err(RemoveError::NotFound) => {
            (StatusCode::NOT_FOUND, "no run-time policy of that name\n").into_response()
        }
        Err(RemoveError::FromFile) => (
            StatusCode::CONFLICT,
            "a policy from the policy file: edit the policy file\n",
        )
            .into_response(),
    }
}

/// A run-time policy from a `POST` body, or every bad field (named as in the body, e.g.
/// `match.host`).
pub fn spec_from_json(body: &[u8], now: SystemTime) -> Result<PolicySpec, Vec<(String, String)>> {
    let value: Value = serde_json::from_slice(body)
        .map_err(|e| vec![("body".to_owned(), format!("not JSON: {e}"))])?;
    let Value::Object(fields) = value else {
        return Err(vec![(
            "body".to_owned(),
            "must be a JSON object".to_owned(),
        )]);
    };
    let mut errors = Vec::new();
    let mut table = toml::Table::new();
    let mut expires_in = None;
    for (key, v) in fields {
        match (key.as_str(), v) {
            (_, Value::Null) => {}
            ("match", Value::Object(m)) => {
                for (k, v) in m {
                    if v.is_null() {
                    } else if CRITERIA.contains(&k.as_str()) {
                        table.insert(k, to_toml(v));
                    } else {
                        errors.push((
                            format!("match.{k}"),
                            format!("unknown key (one of {})", CRITERIA.join(", ")),
                        ));
                    }
                }
            }
            ("match", _) => errors.push((
                "match".to_owned(),
                "must be an object of criteria".to_owned(),
            )),
            ("expires_in", Value::String(d)) => match humantime::parse_duration(d.trim()) {
                Ok(d) if !d.is_zero() && d <= MAX_EXPIRES_IN => expires_in = Some(d),
                _ => errors.push((
                    key,
                    format!("`{d}` is not a duration above zero and at most 24h, e.g. 10m"),
                )),
            },
            ("expires_in", _) => errors.push((key, "must be a duration, e.g. \"10m\"".to_owned())),
            ("name" | "fetch_bytes_per_sec" | "requests_per_sec" | "mode", v) => {
                table.insert(key, to_toml(v));
            }
            _ => errors.push((key, "unknown key".to_owned())),
        }
    }
    if expires_in.is_none() && !errors.iter().any(|(k, _)| k == "expires_in") {
        errors.push((
            "expires_in".to_owned(),
            "required: a run-time policy expires (at most 24h), e.g. \"10m\"".to_owned(),
        ));
    }
    let spec = policy_file::policy(&table, now).map_err(|bad| {
        bad.into_iter().map(|(k, m)| {
            let k = if CRITERIA.contains(&k.as_str()) {
                format!("match.{k}")
            } else {
                k
            };
            (k, m)
        })
    });
    match (spec, expires_in) {
        (Ok(mut spec), Some(d)) if errors.is_empty() => {
            spec.expires = Some(now + d);
            Ok(spec)
        }
        (Ok(_), _) => Err(errors),
        (Err(bad), _) => {
            errors.extend(bad);
            Err(errors)
        }
    }
}

/// A JSON value as the TOML value the policy rules read.
fn to_toml(v: Value) -> toml::Value {
    match v {
        Value::String(s) => toml::Value::String(s),
        Value::Bool(b) => toml::Value::Boolean(b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::Array(a) => toml::Value::Array(a.into_iter().map(to_toml).collect()),
        Value::Object(o) => {
            toml::Value::Table(o.into_iter().map(|(k, v)| (k, to_toml(v))).collect())
        }
        Value::Null => toml::Value::String(String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::observer::findings::Kind;

    fn parse(body: &str) -> Result<PolicySpec, Vec<String>> {
        spec_from_json(body.as_bytes(), SystemTime::now())
            .map_err(|e| e.into_iter().map(|(k, _)| k).collect())
    }

    #[test]
    fn a_full_body_is_a_policy_expiring_when_asked() {
        let now = SystemTime::now();
        let p = spec_from_json(
            br#"{"name": "loop", "match": {"group": "orders-*", "host": "10.0.0.0/8",
                 "client_id": null}, "fetch_bytes_per_sec": 262144, "requests_per_sec": 10,
                 "mode": "dry-run", "expires_in": "10m"}"#,
            now,
        )
        .unwrap();
        assert_eq!(p.name, "loop");
        assert_eq!(p.matcher.group.as_ref().unwrap().0, "orders-*");
        assert_eq!(p.matcher.client_id, None);
        assert_eq!(p.action.fetch_bytes_per_sec, Some(262_144));
        assert_eq!(p.action.mode, sluice_config::Mode::DryRun);
        assert_eq!(p.expires, Some(now + Duration::from_secs(600)));
    }

    #[test]
    fn every_bad_field_is_named_as_in_the_body() {
        let mut bad = parse(
            r#"{"match": {"host": "10.0.0.1/8", "finding": "nope", "colour": "red"},
                "fetch_bytes_per_sec": 0, "mode": "gentle", "expires_in": "2d", "extra": 1}"#,
        )
        .unwrap_err();
        bad.sort();
        assert_eq!(
            bad,
            [
                "expires_in",
                "extra",
                "fetch_bytes_per_sec",
                "match.colour",
                "match.finding",
                "match.host",
                "mode",
                "name",
            ]
        );
        assert_eq!(
            parse(r#"{"name": "a", "match": {}, "expires_in": "1m"}"#).unwrap_err(),
            ["match", "action"]
        );
        assert_eq!(
            parse(r#"{"name": "a", "match": {"group": "g"}, "requests_per_sec": 1}"#).unwrap_err(),
            ["expires_in"]
        );
        assert_eq!(parse("[1]").unwrap_err(), ["body"]);
        assert_eq!(parse("{").unwrap_err(), ["body"]);
        assert_eq!(
            parse(r#"{"name": "a", "match": "g", "requests_per_sec": 1, "expires_in": "1m"}"#)
                .unwrap_err(),
            ["match", "match"]
        );
    }

    #[test]
    fn hostile_bodies_are_refused_without_a_panic() {
        let deep = "[".repeat(10_000) + &"]".repeat(10_000);
        let long = "x".repeat(1 << 20);
        for body in [
            "",
            "null",
            "\"text\"",
            deep.as_str(),
            r#"{"name": 5, "match": {"group": ["a", {"b": null}]}, "expires_in": 60}"#,
            r#"{"name": "a", "match": {"group": "g"}, "fetch_bytes_per_sec": 18446744073709551615, "expires_in": "1m"}"#,
            r#"{"name": "a", "match": {"group": "g"}, "fetch_bytes_per_sec": -1, "requests_per_sec": 1.5, "expires_in": "1m"}"#,
            r#"{"name": "a", "match": {"group": "g"}, "fetch_bytes_per_sec": 1e400, "expires_in": "1m"}"#,
            r#"{"name": "a", "match": {"group": "g"}, "requests_per_sec": 1, "expires_in": "99999999999999999999h"}"#,
            r#"{"name": "a\u0000\u001b[2J", "match": {"group": "g"}, "requests_per_sec": 1, "expires_in": "1m"}"#,
        ] {
            assert!(parse(body).is_err(), "{body:.80}");
        }
        let body = format!(
            r#"{{"name": "{long}", "match": {{"group": "g"}}, "requests_per_sec": 1, "expires_in": "1m"}}"#
        );
        assert_eq!(parse(&body).unwrap_err(), ["name"]);
    }

    #[test]
    fn the_config_knows_every_finding_kind() {
        // A new kind must be added to both lists: this match stops compiling until it is.
        let name = |k: Kind| match k {
            Kind::FetchLoop
            | Kind::FetchWithoutCommit
            | Kind::EgressAmplification
            | Kind::ConnectionChurn
            | Kind::RebalanceStorm => k.as_str(),
        };
        let all = [
            Kind::FetchLoop,
            Kind::FetchWithoutCommit,
            Kind::EgressAmplification,
            Kind::ConnectionChurn,
            Kind::RebalanceStorm,
        ];
        let names: Vec<&str> = all.into_iter().map(name).collect();
        assert_eq!(names, policy_file::FINDING_KINDS);
    }
}
