//! Tests of the tap glue: batches, sweeps, sinks that panic, the memory budget.

use super::*;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::Dir;
use std::net::SocketAddr;

#[derive(Debug)]
struct Recorder(&'static str, Arc<Mutex<Vec<String>>>);

impl TapSink for Recorder {
    fn on_event(&self, _: &ConnMeta, _: &TapEvent) {}
    fn on_open(&self, _: &ConnMeta) {
        self.1.lock().unwrap().push(format!("open {}", self.0));
    }
    fn on_close(&self, _: &ConnMeta) {
        self.1.lock().unwrap().push(format!("close {}", self.0));
    }
}

#[test]
fn sinks_open_in_order_and_close_in_reverse() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let sinks: Arc<[Arc<dyn TapSink>]> = Arc::from(vec![
        Arc::new(Recorder("observer", log.clone())) as Arc<dyn TapSink>,
        Arc::new(Recorder("telemetry", log.clone())),
    ]);
    let meta = ConnMeta::new(1, SocketAddr::from(([127, 0, 0, 1], 5000)));
    drop(ConnTap::new(
        ConnectionTap::new(TopicNames::new()),
        meta,
        sinks,
    ));
    assert_eq!(
        *log.lock().unwrap(),
        [
            "open observer",
            "open telemetry",
            "close telemetry",
            "close observer"
        ]
    );
}

/// Records events as `kind:correlation id`, and the close.
#[derive(Debug, Default)]
struct Events {
    seen: Mutex<Vec<String>>,
}

impl Events {
    fn new() -> Arc<Events> {
        Arc::new(Events::default())
    }

    fn seen(&self) -> Vec<String> {
        self.seen.lock().unwrap().clone()
    }
}

impl TapSink for Events {
    fn on_event(&self, _: &ConnMeta, ev: &TapEvent) {
        let label = match ev {
            TapEvent::Request(r) => format!("req:{}", r.correlation_id),
            TapEvent::Response(r) => format!("resp:{}", r.correlation_id),
            TapEvent::ParseError(_) => "error".to_owned(),
            other => format!("{other:?}"),
        };
        self.seen.lock().unwrap().push(label);
    }
    fn on_close(&self, _: &ConnMeta) {
        self.seen.lock().unwrap().push("close".to_owned());
    }
}

/// A request frame: ListOffsets v1 (body not decoded) or, `bad`, a Metadata v1 whose body
/// is one byte (a parse error; a kept request whose body decodes to anything but a Fetch
/// is settled at once).
fn request(correlation_id: i32, bad: bool) -> Vec<u8> {
    let (key, version, body): (i16, i16, &[u8]) = if bad {
        (3, 1, &[0])
    } else {
        (2, 1, &[0, 0, 0, 0])
    };
    let mut f = Vec::new();
    f.extend_from_slice(&key.to_be_bytes());
    f.extend_from_slice(&version.to_be_bytes());
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    f.extend_from_slice(body);
    let mut framed = (f.len() as i32).to_be_bytes().to_vec();
    framed.extend_from_slice(&f);
    framed
}

fn response(correlation_id: i32) -> Vec<u8> {
    let mut f = (8i32).to_be_bytes().to_vec();
    f.extend_from_slice(&correlation_id.to_be_bytes());
    f.extend_from_slice(&[0, 0, 0, 0]); // an empty body
    f
}

fn conn(sinks: Vec<Arc<dyn TapSink>>) -> Arc<ConnTap> {
    let meta = ConnMeta::new(7, SocketAddr::from(([127, 0, 0, 1], 5007)));
    Arc::new(ConnTap::new(
        ConnectionTap::new(TopicNames::new()),
        meta,
        sinks.into(),
    ))
}

fn round_trip(tap: &ConnTap, correlation_id: i32) {
    let (mut up, mut down) = (TapHalf::new(Dir::Request), TapHalf::new(Dir::Response));
    tap.observe(&mut up, &request(correlation_id, false));
    tap.observe(&mut down, &response(correlation_id));
}

#[test]
fn frequent_events_reach_batched_sinks_together_and_in_order() {
    let (one, two) = (Events::new(), Events::new());
    let tap = conn(vec![one.clone(), two.clone()]);
    let trips = BATCH_EVENTS as i32 / 2;
    for c in 0..trips - 1 {
        round_trip(&tap, c);
    }
    assert!(one.seen().is_empty(), "{:?}", one.seen());
    round_trip(&tap, trips - 1);
    let expected: Vec<String> = (0..trips)
        .flat_map(|c| [format!("req:{c}"), format!("resp:{c}")])
        .collect();
    assert_eq!(one.seen(), expected);
    assert_eq!(two.seen(), expected);
}

#[test]
fn any_other_event_hands_over_the_waiting_ones_first() {
    let later = Events::new();
    let tap = conn(vec![later.clone()]);
    round_trip(&tap, 1);
    tap.observe(&mut TapHalf::new(Dir::Request), &request(2, true));
    assert_eq!(later.seen(), ["req:1", "resp:1", "req:2", "error"]);
}

#[test]
fn quiet_connections_are_swept_and_closed_ones_forgotten() {
    let later = Events::new();
    let registry = TapRegistry::default();
    let tap = conn(vec![later.clone()]);
    registry.add(7, &tap);
    round_trip(&tap, 1);
    registry.sweep_once(Instant::now());
    assert!(
        later.seen().is_empty(),
        "younger than MAX_HOLD: still waiting"
    );
    registry.sweep_once(Instant::now() + MAX_HOLD);
    assert_eq!(later.seen(), ["req:1", "resp:1"]);
    round_trip(&tap, 2);
    drop(tap);
    assert_eq!(
        later.seen(),
        ["req:1", "resp:1", "req:2", "resp:2", "close"],
        "a closing connection hands over what waits before it closes"
    );
    assert_eq!(registry.len(), 1);
    registry.sweep_once(Instant::now());
    assert!(registry.is_empty());
}

/// The start of an OffsetCommit request (its body is collected to be decoded) declaring
/// an 8 MiB body, and `body` bytes of it.
fn big_commit(body: usize) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(10 + (8 << 20) - 64i32).to_be_bytes());
    f.extend_from_slice(&8i16.to_be_bytes()); // OffsetCommit
    f.extend_from_slice(&2i16.to_be_bytes()); // v2
    f.extend_from_slice(&1i32.to_be_bytes());
    f.extend_from_slice(&(-1i16).to_be_bytes()); // no client id
    f.resize(f.len() + body, 0);
    f
}

/// Past the budget, the tap gives up on the connection holding the most — counted, its
/// memory let go, its bytes still accepted — and the others are still followed.
#[test]
fn past_the_memory_budget_the_tap_holding_the_most_is_given_up() {
    let stats = Arc::new(ProxyStats::default());
    let registry = TapRegistry::new(1 << 20, stats.clone());
    let (small_seen, big_seen) = (Events::new(), Events::new());
    let small = conn(vec![small_seen.clone()]);
    let big = conn(vec![big_seen.clone()]);
    registry.add(1, &small);
    registry.add(2, &big);
    round_trip(&small, 1);
    let mut up = TapHalf::new(Dir::Request);
    let flood = big_commit(3 << 20);
    for chunk in flood.chunks(64 << 10) {
        big.observe(&mut up, chunk);
    }
    assert_eq!(ProxyStats::get(&stats.tap_budget_given_up), 1);
    assert!(big.lock().unwrap().tap.is_opaque());
    assert!(big_seen.seen().iter().any(|e| e.starts_with("Opaque")));
    assert!(
        ProxyStats::get(&stats.tap_bytes) < 64 << 10,
        "{} bytes still held",
        ProxyStats::get(&stats.tap_bytes)
    );
    // The other connection is still followed; the one given up takes bytes, parses none.
    round_trip(&small, 2);
    big.observe(&mut up, &request(9, false));
    registry.sweep_once(Instant::now() + MAX_HOLD);
    assert_eq!(small_seen.seen(), ["req:1", "resp:1", "req:2", "resp:2"]);
    assert_eq!(ProxyStats::get(&stats.tap_budget_given_up), 1);
    drop(big);
    drop(small);
    assert_eq!(
        ProxyStats::get(&stats.tap_bytes),
        0,
        "closed taps hold nothing"
    );
}

#[derive(Debug)]
struct Panics;

impl TapSink for Panics {
    fn on_event(&self, _: &ConnMeta, _: &TapEvent) {
        panic!("a sink that panics");
    }
}

#[test]
fn a_panicking_sink_costs_its_connection_the_tap_not_the_sweep() {
    let later = Events::new();
    let registry = TapRegistry::default();
    let bad = conn(vec![Arc::new(Panics)]);
    let good = conn(vec![later.clone()]);
    registry.add(1, &bad);
    registry.add(2, &good);
    round_trip(&bad, 1);
    round_trip(&good, 1);
    registry.sweep_once(Instant::now() + MAX_HOLD);
    assert_eq!(later.seen(), ["req:1", "resp:1"]);
    assert_eq!(
        registry.len(),
        1,
        "the connection whose sink panicked is no longer swept"
    );
    round_trip(&good, 2);
    registry.sweep_once(Instant::now() + MAX_HOLD);
    assert_eq!(later.seen(), ["req:1", "resp:1", "req:2", "resp:2"]);
    // Its forwarding goes on: the tap is given up on, nothing is parsed any more.
    round_trip(&bad, 2);
}
