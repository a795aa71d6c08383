//! Byte-exactness under a policy: a recording relay on each side of the Sluice (clients →
//! front → Sluice → back → broker), the incident's Java consumer looping through it, and what
//! it received compared with what the broker sent, connection by connection. Under a dry-run
//! policy nothing may differ; under an enforced one only the `throttle_time_ms` field of
//! Fetch responses may, and only upwards.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use sluice_integration_tests::findings::report;
use sluice_integration_tests::meter::Meter;
use sluice_integration_tests::net::wait_until;
use sluice_integration_tests::relay::{ConnRecord, RelayedCluster};
use sluice_integration_tests::scenario::poison_backlog;
use sluice_integration_tests::{admin, unique, Client};

use crate::{client_policy, kib, post_policy, relayed, serial, Looper, CAP, TOKEN};

/// Runs the incident's Java consumer (`client.id` `id`) on a new poisoned topic for `secs`
/// seconds (it stops by itself), pausing `backoff_ms` after each failed parse; returns the
/// connections it opened as the front relay and the back relay saw them (all closed), the
/// rate it was sent over its run and in each second of it (KiB/s, as text).
fn loop_through(
    rc: &RelayedCluster,
    id: &str,
    secs: u32,
    backoff_ms: u32,
) -> (Vec<ConnRecord>, Vec<ConnRecord>, f64, String) {
    let topic = unique("exact");
    rc.create_topic(&topic, 1);
    poison_backlog(&rc.tools, &rc.bootstrap(), &topic);
    let looper = Looper {
        id: id.to_owned(),
        ..Looper::new(Client::Java, "exact")
    };
    let mut meter = Meter::new(&rc.events);
    let start = Instant::now();
    let v = looper
        .spawn(
            &rc.tools,
            &rc.bootstrap(),
            &topic,
            secs,
            &["--backoff-ms", &backoff_ms.to_string()],
        )
        .finish(Duration::from_secs(u64::from(secs) + 60))
        .unwrap_or_else(|e| panic!("looper {id}: {e}"));
    assert!(v["failures"].as_u64().unwrap_or(0) > 0, "never looped: {v}");
    meter.update(&rc.events);
    let rate = meter.rate(id, start, start.elapsed());
    // KiB/s in each second from the first response on.
    let first = meter.sent(id).first().map(|s| s.at).unwrap_or(start);
    let seconds: Vec<String> = (0..first.elapsed().as_secs())
        .map(|i| {
            let from = first + Duration::from_secs(i);
            format!(
                "{:.0}",
                meter.rate(id, from, Duration::from_secs(1)) / 1024.0
            )
        })
        .collect();
    // Both relays see every connection of the consumer end.
    wait_until(
        "the looper's connections to close on both relays",
        Duration::from_secs(30),
        || {
            [&rc.front, &rc.back].iter().all(|r| {
                let c = r.opened_by(id);
                !c.is_empty() && c.iter().all(ConnRecord::is_closed)
            })
        },
    );
    let (front, back) = (rc.front.conns_of(id), rc.back.conns_of(id));
    for c in front.iter().chain(&back) {
        assert!(!c.truncated, "the relay could not keep every byte of {id}");
    }
    assert_eq!(
        front.len(),
        back.len(),
        "every connection of {id} reached the broker"
    );
    (front, back, rate, seconds.join(" "))
}

/// The back relay's connection that carried the requests of `front` (all of them, or the
/// first ones: a request held when the client closed is never forwarded).
fn pair<'a>(front: &ConnRecord, back: &'a [ConnRecord]) -> &'a ConnRecord {
    let b = back
        .iter()
        .max_by_key(|b| common_prefix(&front.to_server, &b.to_server))
        .expect("connections reached the broker");
    let common = common_prefix(&front.to_server, &b.to_server);
    assert!(
        common > 0 && common == b.to_server.len(),
        "no connection reached the broker with the requests the client sent ({} bytes; the \
         closest shares {common})",
        front.to_server_len
    );
    b
}

fn common_prefix(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).take_while(|(x, y)| x == y).count()
}

/// What Sluice sent to the client is what the broker sent, or the start of it (a response
/// on its way when the client closed is cut short).
fn assert_same_or_cut(what: &str, to_client: &[u8], from_broker: &[u8]) {
    let common = common_prefix(to_client, from_broker);
    assert!(
        common == to_client.len(),
        "{what}: bytes sent to the client differ from the broker's at byte {common} of {} \
         ({} from the broker)",
        to_client.len(),
        from_broker.len()
    );
}

#[test]
fn a_dry_run_policy_changes_no_byte_and_counts_what_it_would_hold() {
    let _serial = serial();
    let rc = relayed();
    let id = unique("dry-looper");
    let (front, back, rate, _) = loop_through(rc, &id, 6, 20);
    assert!(
        rate > 2.0 * CAP as f64,
        "the looper ran at {}: the dry-run policy had nothing to hold",
        kib(rate)
    );
    let mut bytes = 0;
    for f in &front {
        let b = pair(f, &back);
        assert!(
            f.to_server == b.to_server,
            "a dry-run policy held back requests of {id}"
        );
        assert_same_or_cut(&format!("dry-run, {id}"), &f.to_client, &b.to_client);
        bytes += f.to_client_len + f.to_server_len;
    }
    let p = admin::throttle(rc.admin_addr, Some(TOKEN), "dry-looper")
        .expect("the dry-run policy is in force");
    assert_eq!(p["action"]["mode"], "dry-run", "{p:#}");
    assert!(
        p["decisions"].as_u64().unwrap_or(0) > 0 && p["held_bytes"].as_u64().unwrap_or(0) > 0,
        "the dry-run policy counted nothing it would have held: {p:#}"
    );
    report(&format!(
        "throttle: dry-run: {} connections, {bytes} bytes identical on both sides of Sluice, \
         the looper unheld at {}; the policy counted {} decisions, {} bytes and {} ms it would \
         have held",
        front.len(),
        kib(rate),
        p["decisions"],
        p["held_bytes"],
        p["held_ms"]
    ));
}

#[test]
fn an_enforced_policy_changes_nothing_but_throttle_time_ms() {
    let _serial = serial();
    let rc = relayed();
    let id = unique("held-looper");
    let name = unique("held-looper");
    post_policy(rc.admin_addr, &client_policy(&name, &id, "enforce"));
    let (front, back, rate, seconds) = loop_through(rc, &id, 8, 0);
    let (mut frames, mut rewritten) = (0, 0);
    for f in &front {
        let b = pair(f, &back);
        let (n, r) = only_throttle_time_differs(f, b);
        frames += n;
        rewritten += r;
    }
    report(&format!(
        "throttle: enforced: {frames} response frames to the looper, {rewritten} with \
         throttle_time_ms raised and no other byte changed; the looper sent {} over its run, \
         KiB/s per second from its first response: {seconds}",
        kib(rate)
    ));
    assert!(
        rewritten > 0,
        "the looper ran at {} under a 256 KiB/s policy and no response told it to back off",
        kib(rate)
    );
    let del = admin::call(
        rc.admin_addr,
        "DELETE",
        &format!("/api/v1/throttles/{name}"),
        Some(TOKEN),
        None,
    );
    assert_eq!(del.status, 204, "{}", del.body);
}

/// Checks that the client got the frames the broker sent, the same number and sizes, equal
/// but for `throttle_time_ms` of Fetch responses raised in place; (frames, frames rewritten).
fn only_throttle_time_differs(front: &ConnRecord, back: &ConnRecord) -> (usize, usize) {
    let versions = request_versions(&back.to_server);
    let (got, sent) = (frames(&front.to_client), frames(&back.to_client));
    assert!(
        got.len() <= sent.len(),
        "more frames sent to the client than the broker sent"
    );
    // The client may have closed with a response on its way: it got the first ones.
    let mut rewritten = 0;
    for (g, s) in got.iter().zip(&sent) {
        assert_eq!(g.len(), s.len(), "a frame changed size");
        if g == s {
            continue;
        }
        let corr = i32::from_be_bytes(s[4..8].try_into().unwrap());
        let (key, version) = versions[&corr];
        assert!(
            key == 1 && version >= 1,
            "a response to API {key} v{version} was changed"
        );
        // Response header v1 (Fetch v12+) ends with its tagged fields (none: one byte 0).
        let at = if version >= 12 {
            assert_eq!(s[8], 0, "tagged fields in a Fetch response header");
            9
        } else {
            8
        };
        let field = at..at + 4;
        for (i, (x, y)) in g.iter().zip(s.iter()).enumerate() {
            assert!(
                x == y || field.contains(&i),
                "byte {i} of a Fetch v{version} response changed (throttle_time_ms is {field:?})"
            );
        }
        let old = i32::from_be_bytes(s[field.clone()].try_into().unwrap());
        let new = i32::from_be_bytes(g[field].try_into().unwrap());
        assert!(new > old, "throttle_time_ms lowered from {old} to {new}");
        rewritten += 1;
    }
    (got.len(), rewritten)
}

/// The whole frames of a stream, length prefix included (a frame cut short at its end is
/// left out).
fn frames(stream: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = stream;
    while rest.len() >= 4 {
        let n = i32::from_be_bytes(rest[..4].try_into().unwrap());
        let n = usize::try_from(n).expect("a negative frame length") + 4;
        if rest.len() < n {
            break;
        }
        out.push(&rest[..n]);
        rest = &rest[n..];
    }
    out
}

/// API key and version of each request of a stream, by correlation id.
fn request_versions(stream: &[u8]) -> HashMap<i32, (i16, i16)> {
    frames(stream)
        .into_iter()
        .map(|f| {
            let key = i16::from_be_bytes([f[4], f[5]]);
            let version = i16::from_be_bytes([f[6], f[7]]);
            let corr = i32::from_be_bytes(f[8..12].try_into().unwrap());
            (corr, (key, version))
        })
        .collect()
}
