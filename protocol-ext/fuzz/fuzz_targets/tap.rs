//! The connection tap over any bytes in both directions: never panics, and what it reports
//! does not depend on how either stream is chunked. The first input byte chooses where the
//! input splits into the request stream and the response stream, the second and third the
//! chunk sizes of each; requests are fed first, then responses, and the tap is settled after
//! every chunk. Holding back chunks with `TapHalf::hold` (the bytes the tap calls quiet,
//! record batches it walks ahead) and handing them over later (as the proxy does) changes
//! nothing either, nor does settling only every few chunks and when the tap asks, feeding with
//! `ConnectionTap::feed_bounded` and settling when it stops short (as the proxy does). Until the tap gives up, it completes exactly the frames `FrameTracker` counts (one
//! framing rule).
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::{ConnectionTap, TapHalf};
use sluice_protocol::{Dir, FrameTracker, TapEvent};

fn run(
    requests: &[u8],
    responses: &[u8],
    req_step: usize,
    resp_step: usize,
    hold: bool,
    settle_every: usize,
) -> Vec<TapEvent> {
    let now = Instant::now();
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut events = Vec::new();
    let mut chunks = 0usize;
    for (dir, stream, step) in [
        (Dir::Request, requests, req_step),
        (Dir::Response, responses, resp_step),
    ] {
        let mut half = TapHalf::new(dir);
        for c in stream.chunks(step) {
            if hold && half.hold(c) {
                // Kept back: the tap is shown it with the next chunk.
            } else if settle_every > 1 {
                let mut rest = c;
                loop {
                    let followed = tap.feed_bounded(&mut half, rest, now);
                    rest = &rest[followed..];
                    if rest.is_empty() || tap.is_opaque() {
                        break;
                    }
                    tap.settle(&mut |e, _| events.push(e));
                }
            } else {
                tap.feed(&mut half, c, now);
            }
            chunks += 1;
            if tap.settle_now() || chunks % settle_every == 0 {
                tap.settle(&mut |e, _| events.push(e));
            }
        }
    }
    tap.settle(&mut |e, _| events.push(e));
    let opaque = events
        .iter()
        .filter(|e| matches!(e, TapEvent::Opaque { .. }))
        .count();
    assert!(opaque <= 1, "opaque reported {opaque} times");
    assert_eq!(opaque == 1, tap.is_opaque());
    // One framing rule: until it gives up, the tap completes the frames `FrameTracker` counts.
    let (mut up, mut down) = (FrameTracker::new(), FrameTracker::new());
    let frames = (up.feed(requests), down.feed(responses));
    if up.is_lost() || down.is_lost() {
        assert!(tap.is_opaque());
    } else if !tap.is_opaque() {
        let c = tap.counters();
        assert_eq!((c.requests, c.responses), frames);
    }
    events
}

fuzz_target!(|data: &[u8]| {
    let [split, req_step, resp_step, rest @ ..] = data else {
        return;
    };
    let at = rest.len() * usize::from(*split) / 255;
    let (requests, responses) = rest.split_at(at);
    let whole = run(
        requests,
        responses,
        requests.len().max(1),
        responses.len().max(1),
        false,
        1,
    );
    let (req_step, resp_step) = (
        usize::from(*req_step).max(1),
        usize::from(*resp_step).max(1),
    );
    let split = run(requests, responses, req_step, resp_step, false, 1);
    assert_eq!(whole, split);
    let held = run(requests, responses, req_step, resp_step, true, 1);
    assert_eq!(whole, held);
    let batched = run(requests, responses, req_step, resp_step, true, 3);
    assert_eq!(whole, batched);
});
