use std::time::{Duration, Instant};

use super::*;
use crate::event::TopicRef;

fn part(topic: &str, partition: i32, offset: i64) -> FetchRequestPartition {
    FetchRequestPartition {
        topic: TopicRef::named(topic),
        partition,
        fetch_offset: offset,
        partition_max_bytes: 1 << 20,
    }
}

fn req(
    session_id: i32,
    epoch: i32,
    parts: Vec<FetchRequestPartition>,
    forgotten: Vec<(TopicRef, i32)>,
) -> FetchRequestInfo {
    FetchRequestInfo {
        replica: false,
        max_wait_ms: 500,
        min_bytes: 1,
        max_bytes: 50 << 20,
        isolation_level: 0,
        session_id,
        session_epoch: epoch,
        partitions: parts,
        forgotten,
        rack_id: String::new(),
    }
}

/// A session of `n` partitions of topic `t` at offset 0, opened with id `id`.
fn opened(s: &mut FetchSessions, id: i32, n: i32) {
    let mut full = req(0, 0, (0..n).map(|p| part("t", p, 0)).collect(), vec![]);
    s.on_request(id, &mut full);
    s.on_response(id, id);
}

#[test]
fn incremental_fetches_report_what_changed() {
    let mut s = FetchSessions::default();
    let mut full = req(
        0,
        0,
        vec![part("t", 0, 10), part("t", 1, 20), part("u", 0, 5)],
        vec![],
    );
    s.on_request(1, &mut full);
    assert_eq!(
        full.partitions.len(),
        3,
        "a full fetch is reported as listed"
    );
    s.on_response(1, 77);
    assert_eq!(s.partitions(), 3);
    // Epoch 1: only t-0 moved on; u-0 is forgotten.
    let mut inc = req(
        77,
        1,
        vec![part("t", 0, 15)],
        vec![(TopicRef::named("u"), 0)],
    );
    s.on_request(2, &mut inc);
    assert_eq!(inc.partitions, vec![part("t", 0, 15)]);
    assert_eq!(s.partitions(), 2);
    // Epoch 2: a seek back on t-0 shows up as a lower offset.
    let mut back = req(77, 2, vec![part("t", 0, 10)], vec![]);
    s.on_request(3, &mut back);
    assert_eq!(back.partitions, vec![part("t", 0, 10)]);
    // Closing the session.
    let mut close = req(77, -1, vec![], vec![]);
    s.on_request(4, &mut close);
    assert!(s.is_empty());
    assert_eq!(s.partitions(), 0);
}

#[test]
fn a_partition_delivered_and_not_listed_again_is_fetched_again_from_the_session() {
    let mut s = FetchSessions::default();
    let mut full = req(0, 0, vec![part("t", 0, 10), part("t", 1, 20)], vec![]);
    s.on_request(1, &mut full);
    s.on_response(1, 77);
    // The response to the full fetch delivers t-1 (and t-0, which the client moves past).
    s.on_delivered(1, &TopicRef::named("t"), 1);
    s.on_delivered(1, &TopicRef::named("t"), 0);
    s.on_delivered(1, &TopicRef::named("t"), 0);
    let mut inc = req(77, 1, vec![part("t", 0, 30)], vec![]);
    s.on_request(2, &mut inc);
    assert_eq!(
        inc.partitions,
        vec![part("t", 0, 30), part("t", 1, 20)],
        "t-1 is fetched again from 20: the broker delivers it again"
    );
    // Nothing delivered since: nothing new to say about t-1.
    let mut next = req(77, 2, vec![], vec![]);
    s.on_response(2, 77);
    s.on_request(3, &mut next);
    assert!(next.partitions.is_empty());
    // Delivered to another response than the session's: not counted.
    s.on_response(3, 77);
    s.on_delivered(9, &TopicRef::named("t"), 1);
    // Delivered, then forgotten: not fetched.
    s.on_delivered(3, &TopicRef::named("t"), 1);
    let mut forget = req(77, 3, vec![], vec![(TopicRef::named("t"), 1)]);
    s.on_request(4, &mut forget);
    assert!(forget.partitions.is_empty());
}

#[test]
fn partitions_listed_twice_count_once_with_the_last_offset() {
    let mut s = FetchSessions::default();
    let mut full = req(
        0,
        0,
        vec![part("t", 1, 7), part("t", 0, 1), part("t", 1, 9)],
        vec![],
    );
    s.on_request(1, &mut full);
    s.on_response(1, 5);
    assert_eq!(s.partitions(), 2);
    s.on_delivered(1, &TopicRef::named("t"), 1);
    // New partitions arrive unsorted, one of them twice.
    let mut inc = req(
        5,
        1,
        vec![part("u", 0, 4), part("a", 3, 2), part("u", 0, 6)],
        vec![],
    );
    s.on_request(2, &mut inc);
    assert_eq!(
        inc.partitions,
        vec![part("a", 3, 2), part("u", 0, 6), part("t", 1, 9)],
        "t-1 was delivered, at the last offset listed for it"
    );
    assert_eq!(s.partitions(), 4);
    // Forgetting one that is not there changes nothing.
    let mut forget = req(
        5,
        2,
        vec![part("u", 0, 8)],
        vec![(TopicRef::named("zz"), 0), (TopicRef::named("t"), 0)],
    );
    s.on_request(3, &mut forget);
    assert_eq!(forget.partitions, vec![part("u", 0, 8)]);
    assert_eq!(s.partitions(), 3);
}

#[test]
fn unknown_session_is_counted_and_left_as_listed() {
    let mut s = FetchSessions::default();
    let mut inc = req(5, 3, vec![part("t", 0, 1)], vec![]);
    s.on_request(1, &mut inc);
    assert_eq!(inc.partitions.len(), 1);
    assert_eq!(s.unknown_sessions, 1);
}

/// An incremental request naming one partition of a 100,000-partition session is reported
/// with that one partition: its cost is the request's, not the session's (the whole session
/// was copied into each before).
#[test]
fn an_incremental_request_costs_what_it_lists() {
    let mut s = FetchSessions::default();
    opened(&mut s, 9, 100_000);
    assert_eq!(s.partitions(), 100_000);
    for epoch in 1..=50 {
        let mut inc = req(9, epoch, vec![part("t", epoch, i64::from(epoch))], vec![]);
        s.on_request(10 + epoch, &mut inc);
        assert_eq!(inc.partitions.len(), 1);
        assert!(inc.partitions.capacity() <= 1, "no copy of the session");
    }
}

/// Forgetting every partition of a 100,000-partition session costs one removal each: well
/// under a second even unoptimized, where removing from a sorted list took 8.4 s optimized.
#[test]
fn forgetting_a_whole_session_is_linear() {
    let mut s = FetchSessions::default();
    opened(&mut s, 9, 100_000);
    let all = (0..100_000).map(|p| (TopicRef::named("t"), p)).collect();
    let mut forget = req(9, 1, vec![], all);
    let started = Instant::now();
    s.on_request(10, &mut forget);
    let took = started.elapsed();
    assert!(forget.partitions.is_empty());
    assert_eq!(s.partitions(), 0);
    assert!(took < Duration::from_secs(2), "forgetting took {took:?}");
}

/// A connection keeps at most `MAX_SESSION_PARTITIONS` in all: new sessions push out old ones
/// (16 sessions of 100,000 each were kept before), and a session grows only within the bound.
#[test]
fn a_connection_keeps_a_bounded_number_of_partitions() {
    let mut s = FetchSessions::default();
    for id in 1..=4 {
        opened(&mut s, id, 60_000);
        assert!(s.partitions() <= MAX_SESSION_PARTITIONS);
    }
    assert_eq!(s.len(), 1, "each new session pushed out the one before");
    assert_eq!(s.partitions(), 60_000);
    // Opening ones count too, and the newest fits.
    for c in 10..10 + MAX_OPENING as i32 + 2 {
        let mut full = req(0, 0, (0..30_000).map(|p| part("o", p, 0)).collect(), vec![]);
        s.on_request(c, &mut full);
        assert!(
            s.partitions() <= MAX_SESSION_PARTITIONS,
            "{}",
            s.partitions()
        );
    }
    // An incremental request adds partitions only within the bound.
    opened(&mut s, 50, 90_000);
    let more = (0..50_000).map(|p| part("new", p, 0)).collect();
    let mut inc = req(50, 1, more, vec![]);
    s.on_request(51, &mut inc);
    assert_eq!(inc.partitions.len(), 50_000, "all of them reported");
    assert_eq!(s.partitions(), MAX_SESSION_PARTITIONS);
    assert!(s.approx_bytes() <= MAX_SESSION_PARTITIONS * PARTITION_BYTES + 64 * 1024);
}
