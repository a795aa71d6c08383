//! SASL attribution: a claimed name becomes the principal only on the broker's success, on
//! the connection and on its client key; a refusal is counted per mechanism, shown and logged.

use std::time::Instant;

use sluice_protocol::event::SaslInfo;
use sluice_protocol::TapEvent;

use super::{meta, request};
use crate::logging::logged;
use crate::observer::api::ClientSort;
use crate::observer::config::DetectConfig;
use crate::observer::Observer;
use crate::sink::TapSink;

fn sasl(info: SaslInfo) -> TapEvent {
    TapEvent::Sasl(info)
}

fn outcome(error_code: i16, done: bool) -> TapEvent {
    sasl(SaslInfo::Outcome {
        error_code,
        error_message: (error_code != 0).then(|| "Authentication failed".to_owned()),
        done,
    })
}

/// Handshake and first step of `mechanism`, claiming `user`, on a new connection `id`.
fn started(o: &Observer, id: u64, mechanism: &str, user: &str) -> crate::sink::ConnMeta {
    let c = meta(id, 30_000 + id as u16);
    o.on_open(&c);
    o.on_event(&c, &request("billing-1", 17));
    o.on_event(&c, &sasl(SaslInfo::Mechanism(mechanism.into())));
    o.on_event(&c, &request("billing-1", 36));
    o.on_event(&c, &sasl(SaslInfo::Principal(user.into())));
    c
}

#[test]
fn a_claim_becomes_the_principal_only_when_the_last_step_succeeds() {
    let o = Observer::new(DetectConfig::default());
    let c = started(&o, 1, "SCRAM-SHA-512", "svc-billing");
    // SCRAM's server-first: error code 0, but not the end.
    o.on_event(&c, &outcome(0, false));
    o.tick(Instant::now());
    let conn = &o.connections_json()[0];
    assert_eq!(conn["principal"], serde_json::Value::Null, "{conn:#}");
    assert_eq!(conn["sasl"], "in_progress");
    assert_eq!(conn["sasl_mechanism"], "SCRAM-SHA-512");
    // Client-final answered with the server signature: authenticated.
    o.on_event(&c, &request("billing-1", 36));
    o.on_event(&c, &outcome(0, true));
    o.tick(Instant::now());
    let conn = &o.connections_json()[0];
    assert_eq!(conn["principal"], "svc-billing", "{conn:#}");
    assert_eq!(conn["sasl"], "authenticated");
    let client = &o.clients_json(ClientSort::Connections)[0];
    assert_eq!(client["principal"], "svc-billing", "{client:#}");
    assert_eq!(client["sasl"], serde_json::Value::Null);
    assert_eq!(
        o.snapshot().conn_labels(1).unwrap().principal.as_deref(),
        Some("svc-billing")
    );
}

#[test]
fn a_refusal_is_counted_shown_and_logged_with_the_claimed_name() {
    let o = Observer::new(DetectConfig::default());
    let text = logged(|| {
        let c = started(&o, 1, "PLAIN", "mallory");
        o.on_event(&c, &outcome(58, true));
        let c = started(&o, 2, "OAUTHBEARER", "svc-x");
        o.on_event(&c, &outcome(58, true));
        o.tick(Instant::now());
    });
    let conns = o.connections_json();
    for conn in conns.as_array().unwrap() {
        assert_eq!(conn["sasl"], "failed", "{conn:#}");
        assert_eq!(conn["principal"], serde_json::Value::Null, "{conn:#}");
    }
    let client = &o.clients_json(ClientSort::Connections)[0];
    assert_eq!(client["sasl"], "failed", "{client:#}");
    assert_eq!(client["sasl_failures"], 2);
    assert_eq!(client["principal"], serde_json::Value::Null);
    let by: Vec<(String, u64)> = o
        .snapshot()
        .sasl_failures
        .iter()
        .map(|(m, n)| (m.to_string(), *n))
        .collect();
    assert_eq!(by, [("OAUTHBEARER".into(), 1), ("PLAIN".into(), 1)]);
    let health = o.health_json();
    assert_eq!(health["sasl_failures"]["PLAIN"], 1, "{health:#}");
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("SASL authentication failed"))
        .collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].contains("INFO"), "{}", lines[0]);
    for (line, (mech, user)) in lines
        .iter()
        .zip([("PLAIN", "mallory"), ("OAUTHBEARER", "svc-x")])
    {
        assert!(line.contains("10.0.3.84"), "{line}");
        assert!(line.contains(mech) && line.contains(user), "{line}");
    }
}

#[test]
fn a_later_success_clears_the_failed_mark_and_a_new_claim_waits_for_its_verdict() {
    let o = Observer::new(DetectConfig::default());
    let c = started(&o, 1, "PLAIN", "mallory");
    o.on_event(&c, &outcome(58, true));
    let c = started(&o, 2, "PLAIN", "svc-billing");
    o.on_event(&c, &outcome(0, true));
    // Re-authentication (KIP-368) claiming another name, not yet answered: the principal stays.
    o.on_event(&c, &sasl(SaslInfo::Mechanism("PLAIN".into())));
    o.on_event(&c, &sasl(SaslInfo::Principal("svc-other".into())));
    o.tick(Instant::now());
    let client = &o.clients_json(ClientSort::Connections)[0];
    assert_eq!(client["principal"], "svc-billing", "{client:#}");
    assert_eq!(client["sasl"], serde_json::Value::Null);
    assert_eq!(client["sasl_failures"], 1);
    let conns = o.connections_json();
    let second = conns
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == 2)
        .unwrap();
    assert_eq!(second["principal"], "svc-billing");
}
