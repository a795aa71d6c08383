//! A caller may hold back the bytes the tap would only count down and hand them over with the
//! next chunk it shows (`TapHalf::hold`, `ConnectionTap::feed`), as Sluice's forwarding loop does:
//! over the captured real sessions, cut into any chunks, that yields exactly the events,
//! counters and state of feeding every byte and settling after every chunk — and it does pass
//! over most of the record data. The same holds when the tap is settled at any other points.

use std::time::Instant;

use proptest::prelude::*;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::{Dir, TapEvent};

fn sessions() -> Vec<(Vec<u8>, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures");
    (0..)
        .map_while(|i| {
            let requests =
                std::fs::read(dir.join(format!("java-session-{i}.requests.bin"))).ok()?;
            let responses =
                std::fs::read(dir.join(format!("java-session-{i}.responses.bin"))).ok()?;
            Some((requests, responses))
        })
        .collect()
}

/// What the tap said over one session, and how many bytes were passed over unseen.
#[derive(Debug, PartialEq)]
struct Seen {
    events: Vec<TapEvent>,
    requests: u64,
    responses: u64,
    parse_errors: u64,
    at_boundary: bool,
    in_flight: usize,
}

/// Feeds the session in `sizes` chunks: every byte (`hold` false), or holding back the quiet
/// ones; settled after every chunk, or with `settle` after the chunks it picks (cycled), when
/// the tap asks, and at the end. Returns what was seen and how many bytes were passed over.
fn follow(
    requests: &[u8],
    responses: &[u8],
    sizes: &[usize],
    hold: bool,
    settle: Option<&[bool]>,
) -> (Seen, u64) {
    let now = Instant::now();
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut when = settle.unwrap_or(&[true]).iter().cycle();
    let mut events = Vec::new();
    let mut passed = 0u64;
    for (dir, stream) in [(Dir::Request, requests), (Dir::Response, responses)] {
        let mut half = TapHalf::new(dir);
        let mut rest = stream;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (chunk, after) = rest.split_at(size.min(rest.len()));
            rest = after;
            if hold && half.hold(chunk) {
                passed += chunk.len() as u64;
            } else {
                tap.feed(&mut half, chunk, now);
            }
            if *when.next().unwrap() || tap.settle_now() {
                tap.settle(&mut |e, _| events.push(e));
            }
        }
        // Bytes held at the end of a stream are inside a frame: the tap ends mid-frame either way.
        tap.feed(&mut half, &[], now);
    }
    tap.settle(&mut |e, _| events.push(e));
    assert_eq!(tap.queued(), 0);
    let c = tap.counters();
    let seen = Seen {
        events,
        requests: c.requests,
        responses: c.responses,
        parse_errors: c.parse_errors,
        at_boundary: tap.at_boundary(),
        in_flight: tap.in_flight(),
    };
    (seen, passed)
}

#[test]
fn small_chunks_pass_over_most_record_data() {
    let sessions = sessions();
    assert!(sessions.len() >= 3, "fixtures missing");
    let (mut passed, mut total) = (0, 0);
    for (requests, responses) in &sessions {
        let (fed, _) = follow(requests, responses, &[7, 13, 64], false, None);
        let (held, n) = follow(requests, responses, &[7, 13, 64], true, None);
        assert_eq!(fed, held);
        assert!(fed.requests > 0 && fed.parse_errors == 0);
        passed += n;
        total += (requests.len() + responses.len()) as u64;
    }
    // Most of a captured session is record data in Produce requests and Fetch responses.
    assert!(passed * 2 > total, "passed over {passed} of {total} bytes");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn settling_at_any_point_changes_nothing(
        session in 0usize..3,
        sizes in prop::collection::vec(1usize..2000, 1..16),
        settle in prop::collection::vec(prop::bool::weighted(0.1), 1..40),
    ) {
        let sessions = sessions();
        let (requests, responses) = &sessions[session];
        let (fed, _) = follow(requests, responses, &sizes, false, None);
        let (settled, _) = follow(requests, responses, &sizes, true, Some(&settle));
        prop_assert_eq!(fed, settled);
    }

    #[test]
    fn holding_quiet_bytes_changes_nothing(
        session in 0usize..3,
        sizes in prop::collection::vec(1usize..2000, 1..16),
    ) {
        let sessions = sessions();
        let (requests, responses) = &sessions[session];
        let (fed, _) = follow(requests, responses, &sizes, false, None);
        let (held, _) = follow(requests, responses, &sizes, true, None);
        prop_assert_eq!(fed, held);
    }
}
