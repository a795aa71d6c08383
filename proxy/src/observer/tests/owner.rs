//! The observer's one owner: events reach the state through a bounded queue applied by one
//! thread; a full queue drops batches (counted) but never a close; readers see what the last
//! tick published, and tables built from everything applied when they ask for them.

use std::time::{Duration, Instant};

use super::{delivered, fetch, join, meta, request};
use crate::observer::config::DetectConfig;
use crate::observer::Observer;
use crate::sink::TapSink;

/// Polls `f` until it is true or `deadline` passes.
fn eventually(deadline: Duration, mut f: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    f()
}

#[test]
fn the_thread_applies_events_and_publishes_findings() {
    let o = Observer::new(DetectConfig::default());
    let thread = o.spawn().expect("first spawn");
    assert!(o.spawn().is_none(), "one owner only");
    let c = meta(1, 15631);
    o.on_open(&c);
    o.on_event(&c, &request("order-service", 1));
    o.on_event(&c, &join("billing"));
    for _ in 0..6 {
        o.on_event(&c, &fetch(100));
        o.on_event(&c, &delivered(100, 1099, 1 << 20));
    }
    let found = eventually(Duration::from_secs(10), || {
        o.findings_json()["active"]
            .as_array()
            .is_some_and(|a| a.iter().any(|f| f["kind"] == "fetch_loop"))
    });
    assert!(found, "{:#}", o.findings_json());
    assert_eq!(o.connections_json().as_array().unwrap().len(), 1);
    o.on_close(&c);
    assert!(eventually(Duration::from_secs(5), || o
        .connections_json()
        .as_array()
        .is_some_and(|a| a.is_empty())));
    // Without the thread's state, a manual tick does nothing.
    o.tick(Instant::now());
    thread.stop();
}

#[test]
fn a_full_queue_drops_batches_and_counts_them_but_keeps_every_close() {
    let o = Observer::with_queue(DetectConfig::default(), 4);
    let conns: Vec<_> = (0..8).map(|i| meta(i, 20_000 + i as u16)).collect();
    for c in &conns {
        o.on_open(c); // the first four fill the queue; the others are dropped
    }
    for c in &conns {
        o.on_event(c, &request("svc", 3));
    }
    assert_eq!(
        o.dropped_events(),
        8,
        "every request event found the queue full"
    );
    for c in &conns {
        o.on_close(c);
    }
    o.tick(Instant::now());
    let h = o.health_json();
    assert_eq!(h["connections"], 0, "every close was applied: {h}");
    // Four connections were seen opening and closing; the rest were never known.
    let clients = o.clients_json(crate::observer::api::ClientSort::Opened);
    assert_eq!(clients[0]["connections_open"], 0, "{clients}");
    assert_eq!(clients[0]["connections_closed"], 4, "{clients}");
}

#[test]
fn readers_see_the_last_tick_not_the_events_after_it() {
    let o = Observer::new(DetectConfig::default());
    let c = meta(1, 15000);
    o.on_open(&c);
    assert_eq!(
        o.connections_json().as_array().unwrap().len(),
        0,
        "nothing published yet"
    );
    o.tick(Instant::now());
    assert_eq!(o.connections_json().as_array().unwrap().len(), 1);
    o.on_close(&c);
    assert_eq!(
        o.connections_json().as_array().unwrap().len(),
        1,
        "until the next tick"
    );
    o.tick(Instant::now());
    assert_eq!(o.connections_json().as_array().unwrap().len(), 0);
}

#[test]
fn health_reports_how_long_ticks_take() {
    let o = Observer::new(DetectConfig::default());
    let before = o.health_json();
    assert_eq!(before["tick"]["count"], 0, "no tick yet: {before}");
    assert_eq!(before["tick"]["max_us"], 0, "{before}");
    let c = meta(1, 15000);
    o.on_open(&c);
    o.on_event(&c, &request("svc", 1));
    o.tick(Instant::now());
    o.tick(Instant::now());
    let h = o.health_json();
    let tick = &h["tick"];
    assert_eq!(tick["count"], 2, "{h}");
    let (last, max, total) = (
        tick["last_us"].as_u64().expect("last_us"),
        tick["max_us"].as_u64().expect("max_us"),
        tick["total_us"].as_u64().expect("total_us"),
    );
    assert!(last <= max && max <= total, "{h}");
    // The thread's CPU time within those ticks: some, and no more than their wall clock
    // (each read to the microsecond below, so within a microsecond a tick).
    let cpu = tick["cpu_total_us"].as_u64().expect("cpu_total_us");
    assert!(cpu > 0 && cpu <= total + 2, "{h}");

    // The owner's thread records its ticks too.
    let _thread = o.spawn().expect("spawn");
    assert!(
        eventually(Duration::from_secs(10), || {
            o.health_json()["tick"]["count"].as_u64() >= Some(3)
        }),
        "the thread ticked: {}",
        o.health_json()
    );
}

#[test]
fn tables_are_built_when_a_reader_asks_and_labels_every_tick() {
    let o = Observer::new(DetectConfig::default());
    let thread = o.spawn().expect("spawn");
    let c = meta(7, 17007);
    o.on_open(&c);
    o.on_event(&c, &request("labelled-app", 1));
    o.on_event(&c, &join("labelled-group"));
    // Spans read the labels: published by the tick, no reader asking for tables.
    let labelled = eventually(Duration::from_secs(5), || {
        o.conn_labels(7).is_some_and(|l| {
            l.client_id.as_deref() == Some("labelled-app")
                && l.group.as_deref() == Some("labelled-group")
        })
    });
    assert!(labelled, "{:?}", o.conn_labels(7));
    let s = o.snapshot();
    assert!(s.at.is_some(), "a tick published");
    assert!(s.tables_at.is_none(), "no reader asked: no table built");
    assert!(s.conns.is_empty() && s.clients.is_empty());
    // A reader asking gets the connection without waiting for a tick.
    let asked = Instant::now();
    let fresh = o.fresh_snapshot();
    assert!(
        fresh.tables_at.is_some_and(|t| t >= asked),
        "built for the request"
    );
    let row = fresh.conns.get(&7).expect("the open connection's row");
    assert_eq!(row.client_id.as_deref(), Some("labelled-app"));
    assert_eq!(o.health_json()["tables"]["count"], 1);
    // Events applied since are in the next tables asked for.
    o.on_event(&c, &request("labelled-app", 3));
    let counted = eventually(Duration::from_secs(5), || {
        o.fresh_snapshot()
            .conns
            .get(&7)
            .is_some_and(|r| r.requests.values().sum::<u64>() == 2)
    });
    assert!(counted, "{:?}", o.fresh_snapshot().conns.get(&7));
    // With the thread gone nobody builds them: readers get the last ones at once.
    thread.stop();
    let start = Instant::now();
    let last = o.fresh_snapshot();
    assert!(start.elapsed() < crate::observer::FRESH_WAIT, "no wait");
    assert!(last.conns.get(&7).is_some());
}
