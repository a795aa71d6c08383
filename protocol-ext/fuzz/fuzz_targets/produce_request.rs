//! The Produce request walker and `peek_produce_acks` over any bytes: never panic, and the
//! walker's events and outcome do not depend on how the body is split into chunks. The first
//! input byte chooses the version (3 to 13), the second the chunk size; the rest is the body.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sluice_protocol::walk::{peek_produce_acks, ProduceRequestWalker};
use sluice_protocol::{TapError, TapEvent};

fn walk(version: i16, body: &[u8], step: usize) -> (Vec<TapEvent>, Result<(), TapError>) {
    let mut w = ProduceRequestWalker::new(version).expect("a supported version");
    let mut events = Vec::new();
    for chunk in body.chunks(step) {
        if let Err(e) = w.feed(chunk, &mut |e| events.push(e)) {
            // A failed walker stays failed.
            assert_eq!(w.finish(&mut |e| events.push(e)), Err(e.clone()));
            return (events, Err(e));
        }
    }
    let result = w.finish(&mut |e| events.push(e));
    (events, result)
}

fuzz_target!(|data: &[u8]| {
    let [version, step, body @ ..] = data else {
        return;
    };
    let version = 3 + i16::from(version % 11);
    let whole = walk(version, body, body.len().max(1));
    let split = walk(version, body, usize::from(*step).max(1));
    assert_eq!(whole, split);
    // Whenever the walker read the request's start, a peek at the body agrees on acks.
    if let Some(TapEvent::ProduceRequest(start)) = whole.0.first() {
        assert_eq!(peek_produce_acks(version, body), Some(start.acks));
    }
});
