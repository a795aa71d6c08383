//! The connection tap over any bytes in both directions: never panics, and what it reports
//! does not depend on how either stream is chunked. The first input byte chooses where the
//! input splits into the request stream and the response stream, the second and third the
//! chunk sizes of each; requests are fed first, then responses.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use sluice_protocol::tap::topics::TopicNames;
use sluice_protocol::tap::ConnectionTap;
use sluice_protocol::TapEvent;

fn run(requests: &[u8], responses: &[u8], req_step: usize, resp_step: usize) -> Vec<TapEvent> {
    let now = Instant::now();
    let mut tap = ConnectionTap::new(TopicNames::new());
    let mut events = Vec::new();
    for c in requests.chunks(req_step) {
        tap.on_request_bytes(c, now, &mut |e| events.push(e));
    }
    for c in responses.chunks(resp_step) {
        tap.on_response_bytes(c, now, &mut |e| events.push(e));
    }
    let opaque = events.iter().filter(|e| matches!(e, TapEvent::Opaque { .. })).count();
    assert!(opaque <= 1, "opaque reported {opaque} times");
    assert_eq!(opaque == 1, tap.is_opaque());
    events
}

fuzz_target!(|data: &[u8]| {
    let [split, req_step, resp_step, rest @ ..] = data else {
        return;
    };
    let at = rest.len() * usize::from(*split) / 255;
    let (requests, responses) = rest.split_at(at);
    let whole = run(requests, responses, requests.len().max(1), responses.len().max(1));
    let split = run(
        requests,
        responses,
        usize::from(*req_step).max(1),
        usize::from(*resp_step).max(1),
    );
    assert_eq!(whole, split);
});
